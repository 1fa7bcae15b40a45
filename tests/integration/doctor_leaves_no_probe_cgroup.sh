#!/usr/bin/env bash
# corral doctor's cgroup BPF probe makes a corral-probe-PID group under the cgroup2 mount and
# must remove it: after doctor exits there is no such group for its pid, nor any other whose
# process is gone.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
expect_rc 0 "corral doctor --json"
mount=$(jq -r '.layers.cgroup2.mount // empty' <<<"$OUT")
[ -n "$mount" ] || skip "no cgroup2 mount reported, so no probe cgroup can be made"
[ -d "$mount" ] || fail ".layers.cgroup2.mount $mount is not a directory"
probed=$(jq -r '.layers.cgroup_bpf.present' <<<"$OUT")
echo "cgroup2 at $mount; cgroup BPF probe attached: $probed"

# Run doctor under a known pid (exec keeps it), three times.
for i in 1 2 3; do
	run bash -c 'echo $$ >"$1"; exec "$2" doctor' sh "$TMP/pid" "$CORRAL"
	expect_rc 0 "corral doctor (run $i)"
	pid=$(cat "$TMP/pid")
	[ ! -e "$mount/corral-probe-$pid" ] || fail "doctor (pid $pid) left $mount/corral-probe-$pid"
done

# No probe group of a process that has gone (one of a doctor running now is fine).
for d in "$mount"/corral-probe-*; do
	[ -e "$d" ] || continue
	pid=${d##*/corral-probe-}
	[ -d "/proc/$pid" ] || fail "leftover probe cgroup $d (process $pid is gone)"
done
