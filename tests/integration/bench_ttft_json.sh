#!/usr/bin/env bash
# corral bench ttft, as a short smoke run (8 sessions per mode, 4 at once, 300 ms added to each
# sandbox): one JSON object with every figure the issue asks for (TTFT p50/p95 of eager and of
# lazy provisioning, the orchestration overhead, the wake of a 10,000-event session) as a
# number, per-class figures for the sessions that never need a sandbox and those whose first
# turn needs one, no session failed, eager sessions' first turns waiting out the added delay
# while lazy ones do not, and a "met" boolean per target; the table names every target; bad options exit 2 with
# a message; nothing is left behind (no file in the work directory, no process in the test's
# cgroup, no sandbox).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
need_program "$CORRALD"
need_program "$CORRAL_INIT"
need_program "$CORRAL_BUILD/corral-fake-api"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"
[ "$(id -u)" = 0 ] || skip "needs root (the sessions' tool calls run in sandboxes)"
[ -e /proc/self/ns/user ] || skip "no user namespaces"
mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$mount" ] || skip "no cgroup2 mount"

# corrald's socket lives in the work directory: a short one, not $TMP.
work=$(mktemp -d /var/tmp/cbt-itest.XXXXXX)
on_exit "rm -rf '$work'"
# The benchmark runs in a cgroup of the test's, so that any process it leaves is found there.
cg=$mount/corral-test-${CORRAL_TEST_RUN:-0}-itest-bench-ttft-$$
mkdir "$cg"
on_exit "echo 1 > '$cg/cgroup.kill' 2>/dev/null; sleep 0.2; rmdir '$cg'"

bench() { # bench SECS ARGS...: corral bench ttft ARGS in the test's cgroup (bounded)
	local secs=$1
	shift
	# shellcheck disable=SC2016 # $$, $0 and $@ are the inner shell's
	run -t "$secs" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" \
		"$CORRAL" bench ttft --dir "$work" "$@"
}

left_behind() {
	[ -z "$(ls -A "$work")" ] || fail "$1 left files in $work: $(ls -A "$work")"
	[ -z "$(cat "$cg/cgroup.procs")" ] || fail "$1 left processes: $(cat "$cg/cgroup.procs")"
}

# --- a tiny run, as JSON ---------------------------------------------------------------------
t0=$SECONDS
bench 60 --json --sessions 8 --concurrency 4 --added-delay-ms 300
expect_rc 0 "corral bench ttft --json: $ERR"
json=$OUT
[ "$(jq -s length <<<"$json")" = 1 ] || fail "output is not one JSON value: $json"
for k in eager_p50_ms eager_p95_ms lazy_p50_ms lazy_p95_ms overhead_p50_ms overhead_p95_ms \
	wake_10k_ms wake_10k_p95_ms wake_10k_local_ms wake_10k_read_ms wake_10k_step_ms \
	sandbox_ms_p50 create_eager_bare_p50_ms create_lazy_p50_ms; do
	jq -e --arg k "$k" '.[$k] | type == "number" and . > 0' <<<"$json" >/dev/null ||
		fail ".$k is $(jq -c --arg k "$k" '.[$k]' <<<"$json"), want a positive number"
done
jq -e '.sessions == 8 and .concurrency == 4 and .workers == 4 and .added_delay_ms == 300 and
	.first_token_ms == 400 and .first_token_p99_ms == 1500 and .wake_events == 10000 and
	.wake_repeats == 20 and (.first_token_distribution | test("log-normal")) and
	(.added_delay_models | type == "string") and (.p50_cut_pct | type == "number") and
	(.p95_cut_pct | type == "number")' <<<"$json" >/dev/null ||
	fail "the run's settings: $(jq -c '{sessions, concurrency, workers, added_delay_ms,
		first_token_ms, first_token_p99_ms, wake_events, p50_cut_pct}' <<<"$json")"
jq -e '.errors == 0 and .eager.errors == 0 and .lazy.errors == 0 and .eager.sessions == 8 and
	.lazy.sessions == 8' <<<"$json" >/dev/null ||
	fail "sessions failed: $(jq -c '{errors, first_error}' <<<"$json")"
# the hand-off baseline ran alongside the lazy mode
jq -e '.handoff_samples > 0 and .handoff_p50_us > 0 and .handoff_p50_us <= .handoff_p95_us and
	.handoff_p95_us <= .handoff_max_us and (.handoff_cpus == 1 or .handoff_cpus == 2) and
	.overhead_p50_handoffs > 0' <<<"$json" >/dev/null ||
	fail "the hand-off baseline: $(jq -c '{handoff_samples, handoff_p50_us, handoff_p95_us,
		handoff_max_us, handoff_cpus, overhead_p50_handoffs}' <<<"$json")"
# each message went over its thread's kept-alive connection (the warm-up opened them)
jq -e '.eager.send_connects == 0 and .lazy.send_connects == 0' <<<"$json" >/dev/null ||
	fail "posts opened connections: $(jq -c '[.eager.send_connects, .lazy.send_connects]' \
		<<<"$json")"
for c in no_sandbox needs_sandbox; do
	jq -e --arg c "$c" '.[$c] | .sessions == 4 and
		([.eager_p50_ms, .eager_p95_ms, .lazy_p50_ms, .lazy_p95_ms, .overhead_p50_ms,
		  .overhead_p95_ms] | all(type == "number" and . > 0)) and
		(.p50_cut_pct | type == "number") and (.p95_cut_pct | type == "number")' \
		<<<"$json" >/dev/null || fail ".$c is $(jq -c --arg c "$c" '.[$c]' <<<"$json")"
done
jq -e '.eager_p50_ms <= .eager_p95_ms and .eager_p95_ms <= .eager_max_ms and
	.lazy_p50_ms <= .lazy_p95_ms and .lazy_p95_ms <= .lazy_max_ms and
	.overhead_p50_ms <= .overhead_p95_ms and .wake_10k_ms <= .wake_10k_p95_ms' \
	<<<"$json" >/dev/null || fail "latencies are not p50 <= p95 <= max"
# An eager create is answered at once and its session's first turn waits out the added delay
# for its sandbox; a lazy one does neither, so every eager TTFT holds the delay; TTFT counts
# from the post (start from the create); the overhead is TTFT minus the server's first token.
jq -e '.eager.create_p50_ms < 300 and .lazy.create_p50_ms < 300 and .eager_p50_ms >= 300 and
	.eager.start_p50_ms >= .eager.ttft_p50_ms and .lazy.start_p50_ms >= .lazy.ttft_p50_ms and
	.create_eager_bare_p50_ms > .create_lazy_p50_ms and
	.overhead_p50_ms < .lazy_p50_ms and .lazy.server_ttft_p50_ms > 0' <<<"$json" >/dev/null ||
	fail "eager sessions do not wait for the delay in their first turn: $(jq -c '{eager:
		.eager.create_p50_ms, lazy: .lazy.create_p50_ms, eager_p50_ms,
		starts: [.eager.start_p50_ms, .lazy.start_p50_ms]}' <<<"$json")"
for t in p50_cut_pct p95_cut_pct overhead_p50_ms overhead_p95_ms wake_10k_ms; do
	jq -e --arg t "$t" '.targets[$t] | (.value | type == "number") and
		(.met | type == "boolean") and ((.at_least // .at_most) | type == "number")' \
		<<<"$json" >/dev/null || fail ".targets.$t is $(jq -c --arg t "$t" '.targets[$t]' <<<"$json")"
done
jq -e '.targets.p50_cut_pct.at_least == 60 and .targets.p95_cut_pct.at_least == 90 and
	.targets.overhead_p50_ms.at_most == 1 and .targets.overhead_p95_ms.at_most == 3 and
	.targets.wake_10k_ms.at_most == 20 and (.targets_met | type == "boolean")' \
	<<<"$json" >/dev/null || fail "target bounds: $(jq -c .targets <<<"$json")"
left_behind "bench ttft --json"
echo "smoke run in $((SECONDS - t0)) s: $(jq -c '{eager_p50_ms, lazy_p50_ms, p50_cut_pct,
	overhead_p50_ms, sandbox_ms_p50, wake_10k_ms, targets_met}' <<<"$json")"

# --- the table, without added delay ---------------------------------------------------------
bench 60 --sessions 2 --concurrency 2 --added-delay-ms 0 --first-token-ms 20 --first-token-p99-ms 0
expect_rc 0 "corral bench ttft (table): $ERR"
for m in 'eager, first turn needs one' 'lazy, never need a sandbox' 'lazy overhead' \
	'p50 cut' 'wake of a 10000-event session' 'fixed, 20 ms' \
	'lazy cuts TTFT p50 against eager' 'lazy cuts TTFT p95 against eager' \
	'orchestration overhead p50' 'orchestration overhead p95' 'wake of 10,000 events p50'; do
	expect_match "$m" "$OUT" "the table shows \"$m\""
done
left_behind "bench ttft (table)"

# --- bad usage: exit 2, a message, nothing made ------------------------------------------------
for bad in "--sessions 1" "--sessions 100001" "--concurrency 0" "--workers 1025" \
	"--added-delay-ms -1" "--added-delay-ms 3600001" "--first-token-ms x" \
	"--first-token-ms 500 --first-token-p99-ms 400" "--fake-api $TMP/none" \
	"--corrald $TMP/none" "--dir $TMP/none" "--bogus" "extra"; do
	# shellcheck disable=SC2086 # the words are the options
	run "$CORRAL" bench ttft $bad
	expect_rc 2 "corral bench ttft $bad"
	[ -n "$ERR" ] || fail "corral bench ttft $bad: no message"
done
left_behind "bad usage"
exit 0
