#!/usr/bin/env bash
# corral-init runs its program in a session of its own: the program is the leader of a new
# session (and process group), not in the caller's.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

# Field 6 of /proc/PID/stat is the session, 5 the process group; the command name (field 2)
# is cut off first since it may hold spaces.
ids() {
	local s
	s=$(cat "/proc/$1/stat")
	s=${s##*) }
	read -r _state _ppid pgrp sid _ <<<"$s"
	echo "$pgrp $sid"
}
read -r my_pgrp my_sid <<<"$(ids $$)"

run "$CORRAL_INIT" -- sh -c 's=$(cat /proc/$$/stat); s=${s##*) }; set -- $s; echo "$$ $3 $4"'
expect_rc 0 "corral-init -- sh -c (print ids)"
read -r pid pgrp sid <<<"$OUT"
echo "caller: session $my_sid, group $my_pgrp; program: pid $pid, group $pgrp, session $sid"
[ -n "$sid" ] || fail "no ids printed: $OUT"
[ "$sid" != "$my_sid" ] || fail "program runs in the caller's session $my_sid"
[ "$sid" = "$pid" ] || fail "program (pid $pid) is not its session's leader (session $sid)"
[ "$pgrp" = "$pid" ] || fail "program (pid $pid) does not lead its process group ($pgrp)"

# The same seen with ps.
if command -v ps >/dev/null; then
	run "$CORRAL_INIT" -- sh -c 'ps -o sid= -p $$'
	expect_rc 0 "corral-init -- ps"
	psid=$(tr -d ' ' <<<"$OUT")
	[ "$psid" != "$(ps -o sid= -p $$ | tr -d ' ')" ] || fail "ps: program in the caller's session"
fi

# No controlling terminal is carried over (checked when the caller has one to carry).
s=$(cat /proc/$$/stat)
s=${s##*) }
read -r _ _ _ _ my_tty _ <<<"$s"
if [ "$my_tty" != 0 ]; then
	run "$CORRAL_INIT" -- sh -c 'cat /proc/$$/stat'
	s=${OUT##*) }
	read -r _ _ _ _ tty _ <<<"$s"
	[ "$tty" = 0 ] || fail "program has the caller's controlling terminal ($tty)"
else
	echo "no controlling terminal here: not checking that none is carried over"
fi
