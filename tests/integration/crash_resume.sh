#!/usr/bin/env bash
# Killing brains loses nothing (DESIGN.md, "runtime/"; docs/workers.md): sessions driven by
# corrald's workers against corral-fake-api, with workers killed with SIGKILL at random moments
# (in model streams, in tool calls, between appends), and corrald itself killed and restarted
# mid-session, each reach the transcript of an undisturbed run. The scenario's bash calls count
# their runs in a file, so a tool call run twice would show in the transcript.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
need_program "$CORRAL_BUILD/corral-fake-api"
[ -e /proc/self/ns/user ] || skip "no user namespaces (the tool calls run in sandboxes)"
runs=${CORRAL_CRASH_RUNS:-6}

start_fake_api "$SRC/tests/scenarios/crash.json" --first-token-ms 80 --token-rate 300
start_corrald --workers 2
http POST /v1/agents '{"name":"crash","model":"claude-sonnet-4-5","tools":[{"type":"agent_toolset_20260401"}]}'
[ "$status" = 200 ] || fail "create agent: $status $body"
agent=$(jq -r .id <<<"$body")
http POST /v1/environments '{"name":"crash","config":{"type":"cloud","networking":{"type":"unrestricted"}}}'
[ "$status" = 200 ] || fail "create environment: $status $body"
env=$(jq -r .id <<<"$body")

sessions=()
new_session() {
	http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\"}"
	[ "$status" = 200 ] || fail "create session: $status $body"
	session=$(jq -r .id <<<"$body")
	sessions+=("$session")
	http POST "/v1/sessions/$session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"count the runs"}]}]}'
	[ "$status" = 200 ] || fail "send: $status $body"
}
workers() { pgrep -P "$corrald_pid" -f 'corral worker' || true; }

new_session
wait_idle "$session" 60 || fail "session $session not idle after 60 s: $(events_of "$session" | jq -c '[.[] | .type]')"
want=$(transcript "$session")
jq -e '[.[] | select(.type == "agent.tool_use" and .name == "bash") | .result.content[0].text] ==
	["1\n", "2\n", "one\ntwo\nwritten once\n"]' <<<"$want" >/dev/null ||
	fail "the undisturbed transcript is not what the scenario makes: $want"

kills=0
for i in $(seq 1 "$runs"); do
	new_session
	# Kill a worker every 50 to 450 ms until the session is idle (at most 60 s).
	for _ in $(seq 1 200); do
		sleep "0.$((RANDOM % 4 + 1))$((RANDOM % 10))"
		http GET "/v1/sessions/$session"
		[ "$(jq -r .status <<<"$body")" = idle ] && break
		w=$(workers | shuf -n 1)
		[ -n "$w" ] && kill -KILL "$w" 2>/dev/null && kills=$((kills + 1))
	done
	wait_idle "$session" 60 || fail "session $session not idle after 60 s: $(events_of "$session" | jq -c '[.[] | .type]')"
	got=$(transcript "$session")
	[ "$got" = "$want" ] || fail "run $i: the transcript differs from the undisturbed one:
want $want
got  $got"
done
# A worker killed while idle is replaced within a second too.
two_workers() { [ "$(workers | wc -l)" = 2 ]; }
wait_for 5 two_workers || fail "corrald did not keep 2 workers: $(workers | wc -l)"
echo "$runs sessions, $kills workers killed with SIGKILL: every transcript the undisturbed one"

# corrald killed outright mid-session (its workers die with it): the next corrald resumes it.
new_session
sleep 0.4
stop_corrald KILL
start_corrald --workers 2
grep -q 'resumed after a restart' "$TMP/corrald.err" || fail "the restarted corrald resumed nothing: $(cat "$TMP/corrald.err")"
wait_idle "$session" 60 || fail "session $session not idle after 60 s: $(events_of "$session" | jq -c '[.[] | .type]')"
got=$(transcript "$session")
[ "$got" = "$want" ] || fail "after corrald restarted: the transcript differs:
want $want
got  $got"
echo "corrald killed and restarted mid-session: the session finished with the same transcript"

for s in "${sessions[@]}"; do
	http DELETE "/v1/sessions/$s"
	[ "$status" = 200 ] || fail "delete $s: $status $body"
done
stop_corrald TERM
left=$(find "$TMP/state/sandboxes" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ "$left" = 0 ] || fail "$left sandboxes left after every session was deleted"
