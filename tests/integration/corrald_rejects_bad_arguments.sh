#!/usr/bin/env bash
# corrald's other usage errors exit 2 with its usage: an unknown option, a positional
# argument, an option without its value, a socket path too long for a Unix socket.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"

run "$CORRALD" --state-dir "$TMP/state" --bogus
expect_rc 2 "corrald --bogus"
expect_match '--bogus' "$ERR" "corrald --bogus names the option"
expect_match '^usage: corrald' "$ERR" "corrald --bogus prints usage"

run "$CORRALD" --state-dir "$TMP/state" serve
expect_rc 2 "corrald serve"
expect_match '"serve"' "$ERR" "corrald serve names the argument"

run "$CORRALD" --state-dir
expect_rc 2 "corrald --state-dir (no value)"

long=$TMP/$(printf 's%.0s' {1..120})
run "$CORRALD" --state-dir "$TMP/state" --socket "$long"
expect_rc 2 "corrald --socket (120+ characters)"

[ ! -e "$TMP/state" ] || fail "a usage error created the state directory"

run "$CORRALD" --help
expect_rc 0 "corrald --help"
expect_match '^usage: corrald' "$OUT" "corrald --help"
