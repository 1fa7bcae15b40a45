#!/usr/bin/env bash
# Eager provisioning through corrald's API: a session of an environment with
# "provisioning": "eager" is answered at once, its sandbox is made on corrald's side in the
# background (here after a provision_delay_ms of 1.5 s), and its first turn waits for it: the
# model is called only once sandbox.provisioned is in the log, and the create did not wait.
# A lazy session is answered and served without a sandbox. corrald stopped while a sandbox
# is still being made (a 60 s delay) stops at once, cutting the delay short.
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
[ -e /proc/self/ns/user ] || skip "no user namespaces (eager sessions make a sandbox)"

cat >"$TMP/scenario.json" <<'JSON'
{"turns": [{"text": "Here is the answer.", "stop_reason": "end_turn"}]}
JSON
start_fake_api "$TMP/scenario.json"
start_corrald

ms() { date +%s%3N; }
idled() { events_of "$1" | jq -e 'any(.[]; .type == "session.status_idle")' >/dev/null; }
http POST /v1/agents '{"name":"eager","model":"claude-fake-1","tools":[{"type":"agent_toolset_20260401"}]}'
[ "$status" = 200 ] || fail "create the agent: $status $body"
agent=$(jq -r .id <<<"$body")
env_of() {
	http POST /v1/environments "{\"name\":\"$1\",\"config\":{\"type\":\"cloud\",\"provisioning\":\"$1\",\"provision_delay_ms\":$2}}"
	[ "$status" = 200 ] || fail "create the $1 environment: $status $body"
	jq -r .id <<<"$body"
}
eager=$(env_of eager 1500)
lazy=$(env_of lazy 1500)

# --- eager: the create is answered at once, the first turn waits for the sandbox ------------
t0=$(ms)
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$eager\"}"
t1=$(ms)
[ "$status" = 200 ] || fail "create the eager session: $status $body"
session=$(jq -r .id <<<"$body")
[ $((t1 - t0)) -lt 1000 ] || fail "the eager create took $((t1 - t0)) ms: it waited for the sandbox"
http POST "/v1/sessions/$session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
[ "$status" = 200 ] || fail "post to the eager session: $status $body"
wait_for 30 idled "$session" || fail "the eager session did not idle"
t2=$(ms)
[ $((t2 - t0)) -ge 1500 ] || fail "the eager session idled $((t2 - t0)) ms after its create, before its sandbox could be made"
events=$(events_of "$session")
order=$(jq -r '[.[] | select(.type == "sandbox.provisioned" or .type == "span.model_request_start" or .type == "agent.message") | .type] | join(" ")' <<<"$events")
[ "$order" = "sandbox.provisioned span.model_request_start agent.message" ] ||
	fail "the first turn did not wait for the eager sandbox: $order"
[ "$(jq -r '[.[] | select(.type == "session.status_idle")][0].stop_reason.type' <<<"$events")" = end_turn ] ||
	fail "the eager session did not end its turn: $events"
echo "ok: eager: the create answered in $((t1 - t0)) ms; the first turn waited for the sandbox"

# --- lazy: no sandbox for a turn that runs no tool ------------------------------------------
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$lazy\"}"
[ "$status" = 200 ] || fail "create the lazy session: $status $body"
lazy_session=$(jq -r .id <<<"$body")
t0=$(ms)
http POST "/v1/sessions/$lazy_session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
wait_for 30 idled "$lazy_session" || fail "the lazy session did not idle"
t1=$(ms)
[ $((t1 - t0)) -lt 1500 ] || fail "the lazy session's turn took $((t1 - t0)) ms: it waited for a sandbox"
[ "$(events_of "$lazy_session" | jq '[.[] | select(.type == "sandbox.provisioned")] | length')" = 0 ] ||
	fail "the lazy session made a sandbox without a tool call"
echo "ok: lazy: the turn ran in $((t1 - t0)) ms without a sandbox"

# --- corrald stops while an eager sandbox is still being made --------------------------------
slow=$(env_of eager 60000)
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$slow\"}"
[ "$status" = 200 ] || fail "create the slow eager session: $status $body"
t0=$(ms)
stop_corrald TERM
t1=$(ms)
[ $((t1 - t0)) -lt 10000 ] || fail "corrald took $((t1 - t0)) ms to stop: the provision delay held it"
grep -q "eager sandbox: .*stopping" "$TMP/corrald.err" ||
	fail "corrald did not say the eager sandbox was given up: $(cat "$TMP/corrald.err")"
echo "ok: corrald stopped in $((t1 - t0)) ms with an eager sandbox still waiting"
