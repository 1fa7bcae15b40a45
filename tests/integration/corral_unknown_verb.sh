#!/usr/bin/env bash
# corral with an unknown verb exits 2 and names the verb on stderr.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

run "$CORRAL" frobnicate
expect_rc 2 "corral frobnicate"
expect_match 'frobnicate' "$ERR" "message names the verb"
[ -z "$OUT" ] || fail "stdout is not empty: $OUT"

run "$CORRAL" --frobnicate
expect_rc 2 "corral --frobnicate"
expect_match '--frobnicate' "$ERR" "message names the option"
