#!/usr/bin/env bash
# Model faults as sessions see them (runtime/harness, runtime/orchestrator; docs/events.md):
# corrald's workers call corral-fake-api with a fault injected into every request
# (--model-header "x-fake-api: ..."). A 429 with retry-after-ms is retried by the model client
# and the session finishes; a 529, an error event mid-stream, a dropped stream and a server
# that is down each end in session.error events whose retry_status says "retrying" while the
# harness re-issues the call and "exhausted" on the last, then session.status_idle with
# retries_exhausted; a 400 is "terminal" at once. A stream dropped after its text went out as
# previews (event_deltas) is not retried by the model client but by the harness, each preview
# closed by its failed span.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
need_program "$CORRAL_BUILD/corral-fake-api"

printf '{"turns":[{"text":"Hello from the model.","stop_reason":"end_turn"}]}' >"$TMP/hello.json"
start_fake_api "$TMP/hello.json"
good_url=$model_url
start_corrald --workers 1
http POST /v1/agents '{"name":"faults","model":"claude-sonnet-4-5"}'
[ "$status" = 200 ] || fail "create agent: $status $body"
agent=$(jq -r .id <<<"$body")
http POST /v1/environments '{"name":"faults","config":{"type":"cloud","networking":{"type":"unrestricted"}}}'
[ "$status" = 200 ] || fail "create environment: $status $body"
env=$(jq -r .id <<<"$body")

session_with() { # session_with CORRALD-OPTIONS...: a session run under a restarted corrald
	stop_corrald TERM
	start_corrald --workers 1 "$@"
	http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\"}"
	[ "$status" = 200 ] || fail "create session: $status $body"
	session=$(jq -r .id <<<"$body")
	http POST "/v1/sessions/$session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
	[ "$status" = 200 ] || fail "send: $status $body"
	wait_idle "$session" 60 || fail "session $session not idle after 60 s: $(events_of "$session" | jq -c '[.[] | .type]')"
	ev=$(events_of "$session")
}
errors() { jq -c '[.[] | select(.type == "session.error") | [.error.type, .error.retry_status.type]]' <<<"$ev"; }
stop_reason() { jq -r '[.[] | select(.type == "session.status_idle")] | last | .stop_reason.type' <<<"$ev"; }

# 429 with retry-after-ms on each call's first attempt: retried by the client, no session.error.
session_with --model-header 'x-fake-api: {"fail_status":429,"retry_after_ms":20,"fail_attempts":1}'
[ "$(errors)" = '[]' ] || fail "429: session errors $(errors)"
[ "$(stop_reason)" = end_turn ] || fail "429: stop reason $(stop_reason)"
jq -e '[.[] | select(.type == "agent.message")] | length == 1' <<<"$ev" >/dev/null || fail "429: no message"
jq -e '[.[] | select(.type == "span.model_request_end")] | last | .attempts == 2 and .is_error == false' <<<"$ev" >/dev/null ||
	fail "429: the span does not record 2 attempts: $(jq -c '[.[] | select(.type == "span.model_request_end")]' <<<"$ev")"
echo "429 + retry-after-ms: retried by the client, the session finished"

exhausted() { # exhausted TYPE WHAT: retrying, retrying, exhausted, then retries_exhausted
	local want="[[\"$1\",\"retrying\"],[\"$1\",\"retrying\"],[\"$1\",\"exhausted\"]]"
	[ "$(errors)" = "$want" ] || fail "$2: session errors $(errors), want $want"
	[ "$(stop_reason)" = retries_exhausted ] || fail "$2: stop reason $(stop_reason)"
	jq -e '[.[] | select(.type == "span.model_request_end" and .is_error)] | length == 3' <<<"$ev" >/dev/null ||
		fail "$2: not 3 failed spans"
	echo "$2: $1 retrying, retrying, exhausted; idle with retries_exhausted"
}
session_with --model-retries 0 --model-header 'x-fake-api: {"fail_status":529}'
exhausted model_overloaded_error "529"
session_with --model-retries 0 --model-header 'x-fake-api: {"error_after":2}'
exhausted model_overloaded_error "an error event mid-stream"
session_with --model-retries 0 --model-header 'x-fake-api: {"drop_after":2}'
exhausted model_request_failed_error "a dropped stream"
session_with --model-retries 0 --model-header 'x-fake-api: {"fail_status":429}'
exhausted model_rate_limited_error "429 every time"

# A stream dropped after its text was previewed: the model client does not retry it itself
# (the client saw text; a retry would show it twice), the harness does, and each failed call's
# preview is closed by its failed span: three previews under three ids, no agent.message.
stop_corrald TERM
start_corrald --workers 1 --model-retries 2 --model-header 'x-fake-api: {"drop_after":2}'
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\"}"
[ "$status" = 200 ] || fail "create session: $status $body"
session=$(jq -r .id <<<"$body")
curl -sS -N --unix-socket "$sock" --max-time 60 -o "$TMP/previews.sse" \
	"http://corrald/v1/sessions/$session/events/stream?event_deltas%5B%5D=agent.message" &
curl_pid=$!
track_pid $curl_pid
wait_for 5 grep -qs 'stream open' "$TMP/previews.sse" || fail "the previews stream did not open"
http POST "/v1/sessions/$session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
[ "$status" = 200 ] || fail "send: $status $body"
wait_for 60 grep -qs '^event: session.status_idle' "$TMP/previews.sse" ||
	fail "the previewed session did not idle: $(grep '^event:' "$TMP/previews.sse" | sort | uniq -c)"
ev=$(events_of "$session")
exhausted model_request_failed_error "a stream dropped after its preview"
jq -e '[.[] | select(.type == "span.model_request_end")] | all(.attempts == 1)' <<<"$ev" >/dev/null ||
	fail "a previewed call was retried by the model client: $(jq -c '[.[] | select(.type == "span.model_request_end") | .attempts]' <<<"$ev")"
frames=$(sed -n 's/^data: //p' "$TMP/previews.sse" | jq -sc .)
starts=$(jq -c '[.[] | select(.type == "event_start") | .event.id]' <<<"$frames")
[ "$(jq 'length' <<<"$starts")" = 3 ] && [ "$(jq 'unique | length' <<<"$starts")" = 3 ] ||
	fail "want three previews under three ids: $starts"
jq -e --argjson s "$starts" '[.[] | select(.type == "event_delta" and (.event_id | IN($s[])))] | length >= 3' <<<"$frames" >/dev/null ||
	fail "the previews had no text: $frames"
jq -e '[.[] | select(.type == "agent.message")] | length == 0' <<<"$frames" >/dev/null ||
	fail "an agent.message came from a dropped call"
kill "$curl_pid" 2>/dev/null || true
wait "$curl_pid" 2>/dev/null || true
echo "a stream dropped after its preview: not retried by the client, three closed previews"
model_url=http://127.0.0.1:1 # nothing listens there
session_with --model-retries 0
exhausted model_request_failed_error "the server down"
model_url=$good_url

session_with --model-header 'x-fake-api: {"fail_status":400}'
[ "$(errors)" = '[["model_request_failed_error","terminal"]]' ] || fail "400: session errors $(errors)"
[ "$(stop_reason)" = retries_exhausted ] || fail "400: stop reason $(stop_reason)"
echo "400: terminal at once"
stop_corrald TERM
