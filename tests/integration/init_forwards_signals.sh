#!/usr/bin/env bash
# corral-init (not PID 1) forwards SIGTERM, and the other termination signals, to its program:
# a program that traps SIGTERM with "exit 42" makes corral-init exit 42 soon after corral-init
# is sent SIGTERM; the same for SIGHUP and SIGUSR1 with their own codes.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

check_forward() {
	local sig=$1 code=$2 ready=$TMP/ready-$1 pid prog
	# The program announces its pid once its trap is set; the loop never ends on its own.
	"$CORRAL_INIT" -- sh -c 'trap "exit $1" '"$sig"'; echo $$ >"$2.tmp"; mv "$2.tmp" "$2"; while :; do sleep 0.1; done' \
		sh "$code" "$ready" </dev/null 2>>"$TMP/program.err" &
	pid=$!
	track_pid $pid
	wait_for 10 test -s "$ready" || fail "SIG$sig: the program did not start within 10 s"
	prog=$(cat "$ready")
	track_pgroup "$prog"
	track_pid "$prog"
	# Still running: it does not end on its own.
	sleep 0.2
	_exited $pid && fail "SIG$sig: corral-init exited before it was signalled"
	kill -"$sig" $pid
	wait_exit $pid 5
	[ "$rc" = "$code" ] || fail "SIG$sig: corral-init exited $rc, want $code (the program's trap)"
	# The program and its loop are gone.
	wait_for 5 bash -c '! kill -0 -- -"$1" 2>/dev/null' sh "$prog" ||
		fail "SIG$sig: the program's process group $prog is still alive"
	echo "SIG$sig forwarded: exit $rc"
}

check_forward TERM 42
check_forward HUP 43
check_forward USR1 44

# A program that does not trap SIGTERM dies of it, and corral-init reports 128+15.
"$CORRAL_INIT" -- sh -c 'echo $$ >"$1.tmp"; mv "$1.tmp" "$1"; while :; do sleep 0.1; done' sh "$TMP/ready-plain" </dev/null 2>>"$TMP/program.err" &
pid=$!
track_pid $pid
wait_for 10 test -s "$TMP/ready-plain" || fail "plain: the program did not start within 10 s"
track_pgroup "$(cat "$TMP/ready-plain")"
track_pid "$(cat "$TMP/ready-plain")"
kill -TERM $pid
wait_exit $pid 5
[ "$rc" = 143 ] || fail "plain SIGTERM: corral-init exited $rc, want 143"
