#!/usr/bin/env bash
# As PID 1 of a fresh pid namespace, corral-init reaps the orphans reparented to it: after
# several double-forked children have exited, no process in the namespace is a zombie.
#
# That the check can see a zombie is shown by a control run of the same script in a namespace
# whose PID 1 is "sleep", which never waits: there its orphans stay zombies and the check finds
# them. Both runs also record that an orphan's parent is PID 1, so the orphans really are
# PID 1's to reap.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"
[ "$(id -u)" = 0 ] || skip "needs root for unshare --pid --mount-proc"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
run -t 10 unshare --pid --fork --mount-proc true
[ $rc = 0 ] || skip "cannot make a pid namespace here: $ERR"

# The script run in the namespace; $1 is a directory for its findings. No fixed sleeps: it
# waits (bounded) for events, so a loaded machine makes it slower, not wrong.
cat >"$TMP/orphans.sh" <<'SCRIPT'
out=$1
: >"$out/orphans"
# Double forks: each subshell exits at once, so its background child is reparented.
( sh -c 'exit 0' & echo $! >>"$out/orphans" )
( sh -c 'exit 3' & echo $! >>"$out/orphans" )
( true & echo $! >>"$out/orphans" )
# (A quick one may exit before its subshell does and be reaped by it: those above may never
# be orphans. The two below outlive their subshells, so they surely are.)
( sleep 0.2 & echo $! >>"$out/orphans"; echo $! >>"$out/slow" )
# One that waits to be released, so its parent can be looked at while it lives.
( while [ ! -e "$out/release" ]; do sleep 0.05; done & echo $! >>"$out/orphans"; echo $! >>"$out/slow"; echo $! >"$out/held" )
held=$(cat "$out/held")
sed -n 's/^PPid:[[:space:]]*//p' "/proc/$held/status" >"$out/orphan.ppid"
touch "$out/release"
exited() { [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# Wait (at most 10 s) until every orphan has exited: gone (reaped) or a zombie.
i=0
while :; do
	running=
	for p in $(cat "$out/orphans"); do exited "$p" || running="$running $p"; done
	[ -z "$running" ] || [ $i -ge 200 ] && break
	sleep 0.05
	i=$((i + 1))
done
echo "$running" >"$out/running"
# Then give PID 1 up to 3 s to reap them; whatever is a zombie after that was not reaped.
i=0
while :; do
	grep -l '^State:.*Z' /proc/[0-9]*/status >"$out/zombies" 2>/dev/null
	[ ! -s "$out/zombies" ] || [ $i -ge 60 ] && break
	sleep 0.05
	i=$((i + 1))
done
ls -d /proc/[0-9]* >"$out/procs"
echo done >"$out/done"
SCRIPT

# Control: PID 1 is "sleep", which reaps nothing; the script runs as its background child.
# The namespace is ended once the script is done.
mkdir "$TMP/control"
unshare --pid --fork --mount-proc --kill-child \
	sh -c 'sh "$0" "$1" & exec sleep 60' "$TMP/orphans.sh" "$TMP/control" </dev/null 2>"$TMP/control.err" &
ns=$!
track_pid $ns
wait_for 30 test -e "$TMP/control/done" || fail "control run did not finish: $(cat "$TMP/control.err")"
# (unshare ignores SIGTERM while it waits; SIGKILL ends it and, by --kill-child, the namespace)
kill -KILL $ns
wait_exit $ns 10
[ -z "$(tr -d ' \n' <"$TMP/control/running")" ] || fail "control: orphans still running: $(cat "$TMP/control/running")"
[ "$(cat "$TMP/control/orphan.ppid")" = 1 ] ||
	fail "control: an orphan's parent is $(cat "$TMP/control/orphan.ppid"), not PID 1"
# Each orphan that surely was one is found as a zombie.
for p in $(cat "$TMP/control/slow"); do
	grep -qx "/proc/$p/status" "$TMP/control/zombies" ||
		fail "control: with a PID 1 that does not reap, the check did not find orphan $p as a zombie (found: $(tr '\n' ' ' <"$TMP/control/zombies")): it cannot see zombies"
done
echo "control (PID 1 = sleep): $(wc -l <"$TMP/control/zombies") zombies found, the $(wc -w <"$TMP/control/slow") sure orphans among them, as expected"

# The test: PID 1 is corral-init, whose program is the script; its exit status comes back.
mkdir "$TMP/init"
run -t 30 unshare --pid --fork --mount-proc --kill-child \
	"$CORRAL_INIT" -- sh -c 'sh "$0" "$1"; echo "pid $$"' "$TMP/orphans.sh" "$TMP/init"
expect_rc 0 "corral-init as PID 1"
[ -f "$TMP/init/done" ] || fail "the script did not finish: $ERR"
[ -z "$(tr -d ' \n' <"$TMP/init/running")" ] || fail "orphans still running: $(cat "$TMP/init/running")"
[ "$(cat "$TMP/init/orphan.ppid")" = 1 ] ||
	fail "an orphan's parent is $(cat "$TMP/init/orphan.ppid"), not PID 1 (corral-init)"
# The program is PID 1's child, i.e. corral-init really was PID 1.
[ "$OUT" = "pid 2" ] || fail "the program is not the first child of PID 1: $OUT"
if [ -s "$TMP/init/zombies" ]; then
	fail "zombies under corral-init as PID 1: $(tr '\n' ' ' <"$TMP/init/zombies")"
fi
echo "corral-init as PID 1: no zombies among $(wc -l <"$TMP/init/procs") processes"

# Exit statuses propagate out of the namespace too.
run -t 20 unshare --pid --fork --mount-proc --kill-child "$CORRAL_INIT" -- sh -c 'exit 5'
expect_rc 5 "corral-init as PID 1, program exits 5"
