#!/usr/bin/env bash
# Runs the Criterion unit tests (one binary, all tests/test_*.c) under a time bound, then
# checks they left no cgroup behind. Prints the "unit: N passed, N failed, N skipped" line.
set -uo pipefail
build=${CORRAL_BUILD:-$(pwd)/build}
bin=$build/tests/unit
[ -x "$bin" ] || { echo "unit: $bin not built (make $bin)"; exit 1; }

before=$(ls -d /tmp/corral-test-* 2>/dev/null)
# The sandboxes' default parent group: tests must use their own, so it must not appear.
cg_mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
subtree_before=$(ls -d "$cg_mount"/corral 2>/dev/null)
# Groups that were there before (another run's, on a shared machine) are not ours to judge.
cgroups_before=$(ls -d "$cg_mount"/corral-test-* "$cg_mount"/corral-probe-* 2>/dev/null)
veths_before=$(ls /sys/class/net 2>/dev/null | grep '^cr-')
loops_before=$(losetup -a 2>/dev/null | cut -d: -f1)
log=$(mktemp /tmp/corral-unit.XXXXXX)
trap 'rm -f "$log"' EXIT
# Criterion's runner itself leaks 48 bytes when it runs tests in parallel (libcriterion 2.4.1);
# a suppression for it would hide our leaks too (every test's stack passes through it), so
# sanitized builds run one test at a time.
jobs=2
[ "${CORRAL_SANITIZE:-}" = 1 ] && jobs=1
timeout --kill-after=10 "${CORRAL_UNIT_TIMEOUT:-600}" "$bin" --jobs $jobs "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ $rc = 124 ] && echo "unit: timed out after ${CORRAL_UNIT_TIMEOUT:-600} s"

# A leak is reported when a Criterion worker exits, after its test was counted as passed, and
# does not change the exit status: any sanitizer report fails the run, and so does a sanitizer
# that could not check (LeakSanitizer cannot run where its checker would land in another pid
# namespace, for one), since a leak would then go unseen.
if grep -qE 'SUMMARY: [A-Za-z]+Sanitizer|runtime error: |Sanitizer has encountered a fatal error' "$log"; then
	echo "unit: FAILED: a sanitizer reported an error (above)"
	rc=1
fi

# A failed test may leave its group; remove it and say so: a leak is a failure.
mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -n "$mount" ]; then
	leaked="$mount/corral-test-* $mount/corral-probe-*"
	[ -z "$subtree_before" ] && leaked="$leaked $mount/corral"
	for cg in $leaked; do
		[ -d "$cg" ] || continue
		grep -qxF "$cg" <<<"$cgroups_before" && continue
		echo "unit: leaked cgroup $cg"
		find "$cg" -depth -type d | while read -r d; do
			echo 1 > "$d/cgroup.kill" 2>/dev/null
			sleep 0.1
			rmdir "$d"
		done
		rc=1
	done
fi
for d in /tmp/corral-test-*; do
	[ -e "$d" ] || continue
	grep -qxF "$d" <<<"$before" && continue
	echo "unit: leaked temporary file $d"
	rm -rf "$d"
	rc=1
done
# The net tests make their pairs in namespaces of their own; a cr- interface in the machine's
# namespace that was not there before is a leak (reported, and removed where iproute2 can).
for v in $(ls /sys/class/net 2>/dev/null | grep '^cr-'); do
	grep -qxF "$v" <<<"$veths_before" && continue
	echo "unit: leaked network interface $v"
	command -v ip >/dev/null && ip link delete "$v"
	rc=1
done
for l in $(losetup -a 2>/dev/null | cut -d: -f1); do
	grep -qxF "$l" <<<"$loops_before" && continue
	echo "unit: leaked loop device $l"
	losetup -d "$l"
	rc=1
done
exit $rc
