#!/usr/bin/env bash
# corral bench sandbox --json (--iterations 5: one per round) prints one JSON object in which
# every figure is a positive number, or null with the reason when a baseline is missing, with a
# "met" boolean per target (null when its baseline is missing); the table says PASS, MISS or
# unknown per target and "not installed" for a baseline that is not; a run with neither bwrap
# nor crun in PATH still runs; nothing is left behind by a run or an interrupted run: no file
# in the work directory, no cgroup (the benchmark's own, or the default corral subtree), no
# process (the run is kept in a cgroup of the test's, which must be empty afterwards), no cr-
# interface; bad input exits 2 with a message and creates nothing; not root exits 1.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
need_program "$CORRAL_INIT"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"
[ "$(id -u)" = 0 ] || skip "needs root (it makes sandboxes)"
[ -e /proc/self/ns/user ] || skip "no user namespaces"
mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$mount" ] || skip "no cgroup2 mount"

# The work directory must be short (a sandbox's control socket lives below it): not $TMP.
work=$(mktemp -d /var/tmp/cbs-itest.XXXXXX)
on_exit "rm -rf '$work'"
# The benchmark runs in a cgroup of the test's, so that any process it leaves is found there.
cg=$mount/corral-test-${CORRAL_TEST_RUN:-0}-itest-bench-$$
mkdir "$cg"
on_exit "echo 1 > '$cg/cgroup.kill' 2>/dev/null; sleep 0.2; rmdir '$cg'"
subtree_before=$(ls -d "$mount/corral" 2>/dev/null || true)
groups_before=$(ls -d "$mount"/corral-bench-sandbox.* 2>/dev/null || true)
veths_before=$(ls /sys/class/net | grep '^cr-' || true)

# bench [ENV=VALUE...] -- ARGS...: corral bench ARGS inside the test's cgroup (bounded, as run)
bench() {
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	run -t 60 bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" env "${envs[@]}" \
		"$CORRAL" bench "$@"
}

left_behind() {
	local what=$1 g v
	[ -z "$(ls -A "$work")" ] || fail "$what left files in $work: $(ls -A "$work")"
	[ -z "$(cat "$cg/cgroup.procs")" ] || fail "$what left processes: $(cat "$cg/cgroup.procs")"
	if [ -z "$subtree_before" ] && [ -e "$mount/corral" ]; then
		fail "$what created the default cgroup subtree $mount/corral"
	fi
	for g in "$mount"/corral-bench-sandbox.*; do
		[ -e "$g" ] || continue
		grep -qxF "$g" <<<"$groups_before" || fail "$what left the cgroup $g"
	done
	for v in $(ls /sys/class/net | grep '^cr-' || true); do
		grep -qxF "$v" <<<"$veths_before" || fail "$what left the interface $v"
	done
}

positive() { # positive JSON KEY...
	local json=$1 k
	shift
	for k in "$@"; do
		jq -e --arg k "$k" '.[$k] | type == "number" and . > 0' <<<"$json" >/dev/null ||
			fail ".$k is $(jq -c --arg k "$k" '.[$k]' <<<"$json"), want a positive number"
	done
}

# A baseline's figures are positive numbers when it ran, null with a reason when it did not.
baseline() { # baseline JSON NAME TARGET
	local json=$1 b=$2 t=$3
	if jq -e --arg b "$b" '.[$b + "_unavailable"] == null' <<<"$json" >/dev/null; then
		positive "$json" "${b}_p50_ms" "${b}_p95_ms" "${b}_max_ms" "cold_p50_vs_${b}_p50"
		[ "$(jq -r --arg b "$b" '.[$b + "_n"]' <<<"$json")" = 5 ] || fail ".${b}_n is not 5"
		jq -e --arg t "$t" '.targets[$t] | (.value | type == "number" and . > 0) and
			(.met | type == "boolean")' <<<"$json" >/dev/null ||
			fail ".targets.$t is $(jq -c --arg t "$t" '.targets[$t]' <<<"$json")"
	else
		jq -e --arg b "$b" '(.[$b + "_unavailable"] | type == "string" and length > 0) and
			.[$b + "_p50_ms"] == null and .[$b + "_p95_ms"] == null and .[$b + "_n"] == 0 and
			.["cold_p50_vs_" + $b + "_p50"] == null' <<<"$json" >/dev/null ||
			fail "$b is unavailable but its figures are not null with a reason: $json"
		jq -e --arg t "$t" '.targets[$t] | .value == null and .met == null and
			(.unknown | type == "string")' <<<"$json" >/dev/null ||
			fail ".targets.$t is $(jq -c --arg t "$t" '.targets[$t]' <<<"$json")"
		echo "note: $b: $(jq -r --arg b "$b" '.[$b + "_unavailable"]' <<<"$json")"
	fi
}

# --- a real run, as JSON ---------------------------------------------------------------------
bench -- sandbox --json --iterations 5 --dir "$work"
expect_rc 0 "corral bench sandbox --json --iterations 5"
json=$OUT
jq -e . <<<"$json" >/dev/null || fail "output is not valid JSON: $json"
[ "$(jq -s length <<<"$json")" = 1 ] || fail "output is more than one JSON value"
positive "$json" cold_p50_ms cold_p95_ms cold_max_ms cold_create_p50_ms cold_first_exec_p50_ms \
	destroy_p50_ms warm_exec_p50_ms warm_exec_p95_ms oneshot_exec_p50_ms oneshot_exec_p95_ms \
	spawn_p50_ms spawn_p95_ms
jq -e '.iterations == 5 and .cold_n == 5 and .warm_exec_n == 20 and .oneshot_exec_n == 20 and
	.spawn_n == 5 and .rounds == 5 and (.per_round | length) == 5' <<<"$json" >/dev/null ||
	fail "counts: $(jq -c '{iterations, cold_n, warm_exec_n, oneshot_exec_n, spawn_n, rounds}' <<<"$json")"
jq -e '.cold_p50_ms <= .cold_p95_ms and .cold_p95_ms <= .cold_max_ms and
	.warm_exec_p50_ms <= .warm_exec_p95_ms' <<<"$json" >/dev/null ||
	fail "latencies are not p50 <= p95 <= max"
jq -e '.cold_create_p50_ms < .cold_max_ms' <<<"$json" >/dev/null ||
	fail "the create part is not less than the whole cold start"
baseline "$json" bwrap cold_p50_vs_bwrap_p50
baseline "$json" crun cold_p50_vs_crun_p50
jq -e '.targets.warm_exec_p50_ms | (.value | type == "number" and . > 0) and
	.at_most == 1 and (.met | type == "boolean")' <<<"$json" >/dev/null ||
	fail ".targets.warm_exec_p50_ms is $(jq -c .targets.warm_exec_p50_ms <<<"$json")"
jq -e '.targets.cold_p50_vs_crun_p50.at_most == 0.5 and
	.targets.cold_p50_vs_bwrap_p50.at_most == 1.5' <<<"$json" >/dev/null || fail "target bounds"
jq -e '(.targets | [.[].met] | if any(. == false) then false elif any(. == null) then null
	else true end) as $want | .targets_met == $want' <<<"$json" >/dev/null ||
	fail ".targets_met $(jq -c .targets_met <<<"$json") does not follow the targets"
jq -e '.crun_note | type == "string" and length > 0' <<<"$json" >/dev/null || fail "no .crun_note"
left_behind "bench sandbox --json"

# --- the table -------------------------------------------------------------------------------
bench -- sandbox --iterations 2 --dir "$work"
expect_rc 0 "corral bench sandbox (table)"
[ "$(grep -cE ' (PASS|MISS|unknown)$' <<<"$OUT")" = 3 ] ||
	fail "the table does not say PASS, MISS or unknown for each of the 3 targets: $OUT"
expect_match 'bwrap' "$OUT" "the table shows the bwrap baseline"
expect_match 'crun' "$OUT" "the table shows the crun baseline"
expect_match 'warm: shell' "$OUT" "the table shows the warm round trip"
left_behind "bench sandbox (table)"

# --- neither baseline in PATH: still runs, says so --------------------------------------------
bench PATH=/nonexistent -- sandbox --iterations 1 --dir "$work"
expect_rc 0 "corral bench sandbox without bwrap and crun"
[ "$(grep -cE ' not installed$' <<<"$OUT")" = 2 ] || fail "the table does not say 'not installed' twice: $OUT"
[ "$(grep -cE ' unknown$' <<<"$OUT")" = 2 ] || fail "the baselines' targets are not unknown: $OUT"
expect_match 'warm round trip.* (PASS|MISS)$' "$OUT" "the warm target is still judged"
bench PATH=/nonexistent -- sandbox --json --iterations 1 --dir "$work"
expect_rc 0 "corral bench sandbox --json without bwrap and crun"
jq -e '(.bwrap_unavailable | test("not installed")) and (.crun_unavailable | test("not installed"))
	and .bwrap_p50_ms == null and .crun_p50_ms == null and .targets_met != true and
	.targets.cold_p50_vs_crun_p50.met == null' <<<"$OUT" >/dev/null ||
	fail "without bwrap and crun: $(jq -c '{bwrap_unavailable, crun_unavailable, targets, targets_met}' <<<"$OUT")"
left_behind "bench sandbox without baselines"

# --- interrupted: still cleans up (SIGTERM: a background job of a script ignores SIGINT) ------
bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$CORRAL" bench sandbox \
	--iterations 2000 --dir "$work" >/dev/null 2>"$TMP/int.err" &
pid=$!
track_pid "$pid"
wait_for 10 grep -q 'round 1/5\|baseline crun' "$TMP/int.err" || fail "the benchmark did not start: $(cat "$TMP/int.err")"
sleep 0.5
kill -TERM "$pid"
wait_exit "$pid" 30
[ "$rc" = 1 ] || fail "interrupted bench sandbox: exit status $rc, want 1 ($(cat "$TMP/int.err"))"
expect_match 'interrupted' "$(cat "$TMP/int.err")" "interrupted bench sandbox says so"
left_behind "an interrupted bench sandbox"

# --- bad input: exit 2, a message, nothing created -------------------------------------------
bad() {
	local what=$1 pattern=$2
	shift 2
	run "$CORRAL" bench sandbox "$@"
	expect_rc 2 "corral bench sandbox $what"
	expect_match "$pattern" "$ERR" "corral bench sandbox $what explains"
	[ -z "$OUT" ] || fail "corral bench sandbox $what printed on stdout: $OUT"
}
bad "--bogus" '--bogus' --bogus --dir "$work"
bad "extra" 'extra' extra --dir "$work"
for n in 0 100001 99999999999 abc -1 '' 1x ' 8'; do
	bad "--iterations '$n'" '--iterations' --iterations "$n" --dir "$work"
done
bad "--iterations (no value)" '--iterations' --dir "$work" --iterations
file=$(mktemp /var/tmp/cbs-itest-file.XXXXXX)
on_exit "rm -f '$file'"
bad "--dir (a file)" 'not a directory' --dir "$file"
bad "--dir (missing)" "/var/tmp/cbs-missing-$$" --dir "/var/tmp/cbs-missing-$$"
bad "--dir ''" '--dir' --dir ''
bad "--init (missing)" "$TMP/no-init" --init "$TMP/no-init" --dir "$work"
bad "--init (a directory)" 'not an executable' --init "$TMP" --dir "$work"
bad "--init (not executable)" 'not an executable' --init "$file" --dir "$work"
bad "--init ''" '--init' --init '' --dir "$work"
[ ! -e "/var/tmp/cbs-missing-$$" ] || fail "bench sandbox created /var/tmp/cbs-missing-$$"
left_behind "a refused bench sandbox"

# Not root: a failure (1) that says why, before anything is made.
if command -v setpriv >/dev/null; then
	chmod 0711 "$TMP"
	chmod 1777 "$work"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$CORRAL" bench sandbox \
		--iterations 1 --dir "$work" --init "$CORRAL_INIT"
	if [ $rc = 126 ] || [ $rc = 127 ] || grep -q 'Permission denied' <<<"$ERR"; then
		echo "note: nobody cannot run $CORRAL here; the not-root case is not checked"
	else
		expect_rc 1 "corral bench sandbox as nobody"
		expect_match 'root' "$ERR" "corral bench sandbox as nobody says it needs root"
	fi
	chmod 0700 "$work"
	left_behind "bench sandbox as nobody"
fi
