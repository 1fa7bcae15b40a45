#!/usr/bin/env bash
# corral-init exits with its program's status: the exit code, 128+N for a program killed by
# signal N, 127 (with a message) for a program that does not exist, 126 for one that cannot
# be executed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

for code in 0 1 7 100 255; do
	run "$CORRAL_INIT" -- sh -c "exit $code"
	expect_rc $code "corral-init -- sh -c 'exit $code'"
done
# Without "--" too.
run "$CORRAL_INIT" sh -c 'exit 9'
expect_rc 9 "corral-init sh -c 'exit 9'"

# Killed by a signal: 128 + the signal's number.
for sig in KILL USR1 TERM ALRM; do
	n=$(kill -l "$sig")
	run "$CORRAL_INIT" -- sh -c "kill -$sig \$\$; sleep 5"
	expect_rc $((128 + n)) "corral-init -- (killed by SIG$sig)"
done

# The program's output passes through.
run "$CORRAL_INIT" -- sh -c 'echo out; echo err >&2'
expect_rc 0 "corral-init -- sh -c echo"
[ "$OUT" = out ] && [ "$ERR" = err ] || fail "output not passed through: stdout '$OUT', stderr '$ERR'"

run "$CORRAL_INIT" -- "$TMP/no-such-program"
expect_rc 127 "corral-init -- (missing program)"
expect_match "$TMP/no-such-program" "$ERR" "message names the missing program"

run "$CORRAL_INIT" -- no-such-program-in-path-$$
expect_rc 127 "corral-init -- (missing from PATH)"
expect_match "no-such-program-in-path-$$" "$ERR" "message names the missing program"

printf '#!/bin/sh\nexit 0\n' >"$TMP/not-executable"
chmod 0644 "$TMP/not-executable"
run "$CORRAL_INIT" -- "$TMP/not-executable"
expect_rc 126 "corral-init -- (not executable)"
expect_match "not-executable" "$ERR" "message names the program"
