#!/usr/bin/env bash
# Previews on the event stream (?event_deltas[]=...; docs/api.md, "Previews"): three streams
# of one session, opened before a message is sent (one without previews, one with those of
# agent.message, one with those of agent.thinking), while the model thinks and then answers.
# The agent.message stream gets an event_start whose id is the final agent.message's, and
# event_deltas of its text that add up to that text, all before the event; the agent.thinking
# stream gets a start-only preview (no deltas) under the final agent.thinking's id and nothing
# of the message; the plain stream gets no preview. A stream resumed with Last-Event-ID gets
# the events again but no preview: previews are not in the log.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
command -v jq >/dev/null || fail "jq is needed (scripts/deps.sh)"

cat >"$TMP/scenario.json" <<'JSON'
{"turns": [{"thinking": "The user says hi; a greeting back will do.",
            "text": "Hello there, from a model that thought first.", "stop_reason": "end_turn"}]}
JSON
start_fake_api "$TMP/scenario.json" --token-rate 200
start_corrald --workers 1
http POST /v1/agents '{"name":"previews","model":"claude-fake-1"}'
[ "$status" = 200 ] || fail "create the agent: $status $body"
agent=$(jq -r .id <<<"$body")
http POST /v1/environments '{"name":"previews","config":{"type":"cloud"}}'
[ "$status" = 200 ] || fail "create the environment: $status $body"
env=$(jq -r .id <<<"$body")
http POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\"}"
[ "$status" = 200 ] || fail "create the session: $status $body"
session=$(jq -r .id <<<"$body")

open_stream() { # open_stream NAME QUERY
	curl -sS -N --unix-socket "$sock" --max-time 60 -o "$TMP/$1.sse" \
		"http://corrald/v1/sessions/$session/events/stream$2" &
	track_pid $!
	streams+=($!)
	wait_for 5 grep -qs 'stream open' "$TMP/$1.sse" || fail "the $1 stream did not open"
}
streams=()
open_stream plain ""
open_stream message "?event_deltas%5B%5D=agent.message"
open_stream thinking "?event_deltas%5B%5D=agent.thinking"
http POST "/v1/sessions/$session/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
[ "$status" = 200 ] || fail "send: $status $body"
for s in plain message thinking; do
	wait_for 30 grep -qs '^event: session.status_idle' "$TMP/$s.sse" ||
		fail "the $s stream did not see the session idle: $(grep '^event:' "$TMP/$s.sse" | sort | uniq -c)"
done
frames() { sed -n 's/^data: //p' "$TMP/$1.sse" | jq -sc .; }

kill "${streams[@]}" 2>/dev/null || true
wait "${streams[@]}" 2>/dev/null || true

# the plain stream: the events, no preview
plain=$(frames plain)
jq -e 'map(select(.type == "event_start" or .type == "event_delta")) | length == 0' <<<"$plain" >/dev/null ||
	fail "a stream that asked for no previews got some"
grep -q '^id: ' "$TMP/plain.sse" || fail "the plain stream has no id: lines"

# agent.message previews: a start under the final event's id, then its text, then the event
msg=$(frames message)
final=$(jq -c 'map(select(.type == "agent.message")) | first' <<<"$msg")
[ "$final" != null ] || fail "no agent.message on the previews stream: $msg"
id=$(jq -r .id <<<"$final")
jq -e --arg id "$id" '
	(map(.type) | index("agent.message")) as $fin
	| (map(.type == "event_start" and .event.id == $id and .event.type == "agent.message") | index(true)) as $start
	| $start != null and $start < $fin
	and ([.[] | select(.type == "event_delta")] | length > 1)
	and (to_entries | map(select(.value.type == "event_delta")) | all(.key > $start and .key < $fin and .value.event_id == $id))
	and ([.[] | select(.type == "event_delta") | .delta.content.text] | add) == ([.[$fin].content[].text] | join("\n"))
	and ([.[] | select(.type == "event_start" and .event.type == "agent.thinking")] | length == 0)' <<<"$msg" >/dev/null ||
	fail "the agent.message previews do not add up to the event: $msg"
echo "ok: agent.message previewed under its id in $(jq '[.[] | select(.type == "event_delta")] | length' <<<"$msg") deltas"

# agent.thinking previews: start-only, under the final agent.thinking's id; no message preview
th=$(frames thinking)
tid=$(jq -r 'map(select(.type == "agent.thinking")) | first | .id' <<<"$th")
[ -n "$tid" ] && [ "$tid" != null ] || fail "no agent.thinking on the thinking stream: $th"
jq -e --arg id "$tid" '
	(map(.type) | index("agent.thinking")) as $fin
	| (map(.type == "event_start" and .event.id == $id and .event.type == "agent.thinking") | index(true)) as $start
	| $start != null and $start < $fin
	and ([.[] | select(.type == "event_delta")] | length == 0)
	and ([.[] | select(.type == "event_start" and .event.type == "agent.message")] | length == 0)' <<<"$th" >/dev/null ||
	fail "the agent.thinking preview is not a start under the event's id alone: $th"
echo "ok: agent.thinking previewed (start only) under its id"

# the non-preview frames of all three streams are the same events
same() { jq -c 'map(select(.type != "event_start" and .type != "event_delta" and .type != "ping") | .id)' <<<"$1"; }
[ "$(same "$plain")" = "$(same "$msg")" ] && [ "$(same "$plain")" = "$(same "$th")" ] ||
	fail "the streams' events differ: $(same "$plain") / $(same "$msg") / $(same "$th")"

# a resumed stream: the events again, no preview
curl -sS -N --unix-socket "$sock" --max-time 2 -o "$TMP/resumed.sse" -H 'Last-Event-ID: 0' \
	"http://corrald/v1/sessions/$session/events/stream?event_deltas%5B%5D=agent.message" 2>/dev/null || true
resumed=$(frames resumed)
jq -e --arg id "$id" 'any(.[]; .id == $id) and (map(select(.type == "event_start" or .type == "event_delta")) | length == 0)' \
	<<<"$resumed" >/dev/null || fail "a resumed stream: $resumed"
echo "ok: a resumed stream replays the events and no preview"
stop_corrald TERM
