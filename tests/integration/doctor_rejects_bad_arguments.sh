#!/usr/bin/env bash
# corral doctor's usage errors exit 2 with a message: an unknown layer in --require (named),
# an unknown option, a positional argument, --require without its value.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

run "$CORRAL" doctor --require nosuchlayer
expect_rc 2 "doctor --require nosuchlayer"
expect_match 'nosuchlayer' "$ERR" "message names the unknown layer"

run "$CORRAL" doctor --require bpf_lsm,nosuchlayer
expect_rc 2 "doctor --require bpf_lsm,nosuchlayer"
expect_match 'nosuchlayer' "$ERR" "message names the unknown layer in a list"

run "$CORRAL" doctor --bogus
expect_rc 2 "doctor --bogus"
expect_match '--bogus' "$ERR" "message names the unknown option"

run "$CORRAL" doctor extra
expect_rc 2 "doctor extra"
expect_match 'extra' "$ERR" "message names the unexpected argument"

run "$CORRAL" doctor --json extra
expect_rc 2 "doctor --json extra"
[ -z "$OUT" ] || fail "doctor --json extra printed a report on stdout: $OUT"

run "$CORRAL" doctor --require
expect_rc 2 "doctor --require (no value)"

# An empty name anywhere in the list requires nothing: that is a mistake, not a no-op.
for empty in '' , 'bpf_lsm,' ',landlock' 'bpf_lsm,,landlock'; do
	run "$CORRAL" doctor --require "$empty"
	expect_rc 2 "doctor --require '$empty'"
	expect_match 'empty layer name' "$ERR" "doctor --require '$empty' explains"
done
