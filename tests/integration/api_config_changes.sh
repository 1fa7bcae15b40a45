#!/usr/bin/env bash
# A session's wake reads its configuration (its agent, its environment) as it is now: corrald
# keeps the configurations its wakes read, and a change to an environment makes the next wake
# read it again. A lazy session runs a turn with its environment's provision_delay_ms at 0
# (the wake keeps that configuration), the environment is updated to a delay of 2 s, and the
# next turn's tool call, whose sandbox is made then, waits those 2 s.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is needed (scripts/deps.sh)"

run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to start"
[ -e /proc/self/ns/user ] || skip "no user namespaces (the tool call makes a sandbox)"

cat >"$TMP/scenario.json" <<'JSON'
{"rules": [
  {"when": {"tool_result_contains": "TOOL-OK"}, "reply": {"text": "It ran.", "stop_reason": "end_turn"}},
  {"when": {"user_text_contains": "probe"},
   "reply": {"text": "Running it.", "tool_calls": [{"name": "bash", "input": {"command": "echo TOOL-OK"}}]}},
  {"when": {"user_text_contains": "hello"}, "reply": {"text": "Hi.", "stop_reason": "end_turn"}}
]}
JSON
start_fake_api "$TMP/scenario.json"
start_corrald --workers 1 # (one worker: the second wake is sure to find what the first kept)

http POST /v1/agents '{"name":"cfg","model":"claude-fake-1","tools":[{"type":"agent_toolset_20260401"}]}'
[ "$status" = 200 ] || fail "create the agent: $status $body"
agent=$(jq -r .id <<<"$body")
http POST /v1/environments '{"name":"cfg","config":{"type":"cloud","provision_delay_ms":0}}'
[ "$status" = 200 ] || fail "create the environment: $status $body"
env=$(jq -r .id <<<"$body")
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\"}"
[ "$status" = 200 ] || fail "create the session: $status $body"
s=$(jq -r .id <<<"$body")

send() {
	http POST "/v1/sessions/$s/events" \
		"{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"$1\"}]}]}"
	[ "$status" = 200 ] || fail "send \"$1\": $status $body"
}
count() { events_of "$s" | jq --arg t "$1" '[.[] | select(.type == $t)] | length'; }
_turns() { [ "$(count session.status_idle)" -ge "$1" ]; }

send hello
wait_for 30 _turns 1 || fail "the first turn did not end: $(events_of "$s" | jq -c '[.[] | .type]')"

http POST "/v1/environments/$env" '{"config":{"type":"cloud","provision_delay_ms":2000}}'
[ "$status" = 200 ] || fail "update the environment: $status $body"
jq -e '.config.provision_delay_ms == 2000' <<<"$body" >/dev/null || fail "update answer: $body"

send probe
wait_for 60 _turns 2 || fail "the second turn did not end: $(events_of "$s" | jq -c '[.[] | .type]')"
all=$(events_of "$s")
jq -e 'any(.[]; .type == "agent.tool_result" and (.is_error | not))' <<<"$all" >/dev/null ||
	fail "the tool call did not succeed: $(jq -c '[.[] | select(.type == "agent.tool_result")]' <<<"$all")"
# the sandbox was made with the updated delay: 2 s between the call and the sandbox
waited=$(jq -r '
	def t: sub("\\.[0-9]+Z$"; "Z") as $s | (.[0:19] + "Z" | fromdateiso8601) +
		((capture("\\.(?<f>[0-9]+)Z$").f // "0") | ("0." + .) | tonumber);
	([.[] | select(.type == "agent.tool_use")][0].processed_at | t) as $use |
	([.[] | select(.type == "sandbox.provisioned")][0].processed_at | t) as $made |
	$made - $use' <<<"$all")
awk -v w="$waited" 'BEGIN { exit !(w >= 1.9) }' ||
	fail "the sandbox came ${waited} s after the tool call: the wake used the environment as it was before the update"
stop_corrald
echo "ok: the tool call's sandbox waited ${waited} s, the updated environment's delay"
