#!/usr/bin/env bash
# In a copy of the source tree, with CONFIG_CORRAL_SECCOMP off: the tree builds without
# libseccomp (CONFIG_CORRAL_REQUIRE_SECCOMP goes with it), runtime/seccomp is the stub whose
# cr_seccomp_load_sandbox() fails with EOPNOTSUPP naming the option (its unit tests say so),
# and that build's doctor reports the seccomp layer as not built.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
command -v jq >/dev/null || skip "jq is not installed (scripts/deps.sh)"
build_with_option_off CORRAL_SECCOMP libseccomp
expect_no_match '^CONFIG_CORRAL_REQUIRE_SECCOMP=' "$(cat .config)" ".config after olddefconfig"
unit_tests_pass 'seccomp/*' 3

run build/corral doctor --json
[ $rc = 0 ] || [ $rc = 1 ] || fail "doctor of the seccomp-off build: exit status $rc: $ERR"
[ "$(jq -r '.layers.seccomp.built' <<<"$OUT")" = false ] || fail ".layers.seccomp.built is not false"
[ "$(jq -r '.layers.seccomp.present' <<<"$OUT")" = false ] || fail ".layers.seccomp.present is not false"
echo "seccomp off: doctor reports the layer as not built"
