#!/usr/bin/env bash
# Host integration tests: runs every tests/integration/*.sh in sorted order, each under
# "timeout 120", with CORRAL_BUILD set to the absolute path of the build directory (default
# ./build; the Makefile exports it, build-asan for sanitized builds).
#
#   tests/run-integration.sh [NAME...]    NAME: a test's name (file name without .sh) or a
#                                         shell pattern; none runs them all
#
# A test exits 0 to pass, 77 to skip (after printing its reason) and anything else to fail; one
# that leaves anything on the host (tests/lib/host-leaks.bash: cgroups, interfaces, mounts,
# processes, temporary directories) fails too, whatever it exited with.
# The last line is always "integration: N passed, N failed, N skipped"; the exit status is 1
# when a test failed, else 0.
set -uo pipefail

limit=120
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

CORRAL_BUILD=${CORRAL_BUILD:-$(pwd)/build}
case $CORRAL_BUILD in
/*) ;;
*) CORRAL_BUILD=$(pwd)/$CORRAL_BUILD ;;
esac
export CORRAL_BUILD

log=$(mktemp /tmp/corral-itest-log.XXXXXX)
# shellcheck source=SCRIPTDIR/lib/host-leaks.bash
source "$here/lib/host-leaks.bash"
leaks_init # (the tests' TMPDIR, and the tag their cgroups and processes carry)
trap 'rm -f "$log"; leaks_finish' EXIT

wanted() {
	local name=$1 pattern
	[ ${#selection[@]} -eq 0 ] && return 0
	for pattern in "${selection[@]}"; do
		# shellcheck disable=SC2053 # a pattern on purpose
		[[ $name == $pattern ]] && return 0
	done
	return 1
}
selection=("$@")

mapfile -t tests < <(find "$here/integration" -maxdepth 1 -type f -name '*.sh' -print | LC_ALL=C sort)

passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	wanted "$name" || continue
	start=$SECONDS
	leaks_snapshot
	# (stderr of the group: bash's own "Killed" notice when timeout has to use SIGKILL)
	{ timeout -k 10 "$limit" bash "$t" >"$log" 2>&1 </dev/null; } 2>/dev/null
	rc=$?
	elapsed=$((SECONDS - start))
	left=
	leaks_check "$name" >>"$log" || left=yes
	if [ $rc -eq 0 ] && [ -z "$left" ]; then
		echo "PASS $name"
		passed=$((passed + 1))
	elif [ $rc -eq 77 ] && [ -z "$left" ]; then
		reason=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
		echo "SKIP $name: ${reason:-no reason given}"
		skipped=$((skipped + 1))
	else
		# 124: timeout sent SIGTERM; 137: it had to follow with SIGKILL.
		if [ $rc -eq 124 ] || { [ $rc -eq 137 ] && [ $elapsed -ge $limit ]; }; then
			why="timed out after ${limit} s"
		elif [ -n "$left" ]; then
			why="exit status $rc, and it left things on the host (the last lines)"
		else
			why="exit status $rc"
		fi
		echo "---- output of $name ($why) ----"
		cat "$log"
		echo "---- end of $name ----"
		if [ "$why" = "exit status $rc" ]; then
			echo "FAIL $name"
		else
			echo "FAIL $name: $why"
		fi
		failed=$((failed + 1))
	fi
done

echo "integration: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
