#!/usr/bin/env bash
# In a copy of the source tree, with CONFIG_CORRAL_SECCOMP off: the tree builds without
# libseccomp (CONFIG_CORRAL_REQUIRE_SECCOMP goes with it), runtime/seccomp is the stub whose
# cr_seccomp_load_sandbox() fails with EOPNOTSUPP naming the option (its unit tests say so),
# and that build's doctor reports the seccomp layer as not built.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
for tool in make kconfig-conf kconfig-tweak jq; do
	command -v $tool >/dev/null || skip "$tool is not installed (scripts/deps.sh)"
done

src=$TMP/src
copy_tree "$src"
cd "$src"

run -t 60 "${CLEAN_MAKE[@]}" defconfig
expect_rc 0 "make defconfig"
kconfig-tweak --file .config --disable CORRAL_SECCOMP
run -t 60 "${CLEAN_MAKE[@]}" olddefconfig
expect_rc 0 "make olddefconfig"
grep -qx '# CONFIG_CORRAL_SECCOMP is not set' .config || fail ".config: seccomp is still on"
expect_no_match '^CONFIG_CORRAL_REQUIRE_SECCOMP=' "$(cat .config)" ".config after olddefconfig"

run -t 300 "${CLEAN_MAKE[@]}" -j2 all build/tests/unit
if [ $rc != 0 ]; then
	printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
	fail "make with seccomp off: exit status $rc"
fi
if grep -Eq '^#define CONFIG_CORRAL_SECCOMP( |$)' include/generated/autoconf.h; then
	fail "autoconf.h still defines CONFIG_CORRAL_SECCOMP"
fi
if command -v ldd >/dev/null; then
	for p in build/corral build/corrald build/tests/unit; do
		expect_no_match 'libseccomp' "$(ldd $p)" "$p links libseccomp with seccomp off"
	done
fi

run -t 60 build/tests/unit --jobs 1 --filter 'seccomp/*'
if [ $rc != 0 ]; then
	printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
	fail "seccomp unit tests with seccomp off: exit status $rc"
fi
summary=$(printf '%s\n' "$OUT" "$ERR" | grep -E '^unit: ' | tail -n 1)
[[ $summary =~ ^unit:\ ([0-9]+)\ passed,\ 0\ failed ]] || fail "no clean summary: $summary"
[ "${BASH_REMATCH[1]}" -ge 3 ] || fail "only ${BASH_REMATCH[1]} seccomp tests ran: $summary"

run build/corral doctor --json
[ $rc = 0 ] || [ $rc = 1 ] || fail "doctor of the seccomp-off build: exit status $rc: $ERR"
[ "$(jq -r '.layers.seccomp.built' <<<"$OUT")" = false ] || fail ".layers.seccomp.built is not false"
[ "$(jq -r '.layers.seccomp.present' <<<"$OUT")" = false ] || fail ".layers.seccomp.present is not false"
echo "seccomp off: $summary"
