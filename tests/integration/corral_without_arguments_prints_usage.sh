#!/usr/bin/env bash
# corral with no arguments exits 2 and prints its usage on stderr, nothing on stdout.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

run "$CORRAL"
expect_rc 2 "corral (no arguments)"
expect_match '^usage: corral ' "$ERR" "usage on stderr"
expect_match 'doctor' "$ERR" "usage lists the verbs"
[ -z "$OUT" ] || fail "stdout is not empty: $OUT"
