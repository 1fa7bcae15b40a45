#!/usr/bin/env bash
# corral version and corral --version print the same version line and exit 0.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

run "$CORRAL" version
expect_rc 0 "corral version"
expect_match '^corral [0-9]+\.[0-9]+\.[0-9]+' "$OUT" "corral version"
v=$OUT

run "$CORRAL" --version
expect_rc 0 "corral --version"
[ "$OUT" = "$v" ] || fail "corral --version says \"$OUT\", corral version says \"$v\""

run "$CORRAL" version extra
expect_rc 2 "corral version extra"
