#!/usr/bin/env bash
# Not PID 1, corral-init still leaves nothing behind: when its program exits, every descendant
# the program left (in its process group, in a session of its own, or orphaned by a double
# fork) is killed and reaped, as the kernel does for a pid namespace whose PID 1 exits. The
# program's exit status still comes back.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

# Durations unique to this run, so only our sleeps match.
tag=$((1000 + RANDOM % 8000)).$$
on_exit "pkill -KILL -f 'sleep (7|8|9)$tag' || true"
run -t 20 "$CORRAL_INIT" -- sh -c "sleep 7$tag & setsid sleep 8$tag & (sleep 9$tag &); sleep 0.2; exit 3"
expect_rc 3 "program's exit status"
left=$(pgrep -af "sleep (7|8|9)$tag" || true)
[ -z "$left" ] || fail "descendants outlived corral-init: $left"

# Control: without corral-init the same program does leave them behind (the check sees them).
sh -c "sleep 7$tag & setsid sleep 8$tag & (sleep 9$tag &); sleep 0.2; exit 3" || true
wait_for 5 pgrep -f "sleep 9$tag" >/dev/null || fail "control: the check does not see leftovers"
n=$(pgrep -cf "sleep (7|8|9)$tag")
[ "$n" = 3 ] || fail "control: $n leftovers, want 3"
echo "control: 3 leftovers without corral-init; none with it"
