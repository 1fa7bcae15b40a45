#!/usr/bin/env bash
# The corral command's SSE client on the wire, against a scripted server
# (fixtures/sse-server.mjs) in place of corrald: a BOM, comments, CRLF, CR and LF line ends,
# multi-line data, pings, events split across writes and an event cut short by a dropped
# connection; the client reconnects once with Last-Event-ID = the last complete event, misses
# nothing, dispatches nothing twice, and stops at the idle event (--until-idle). A stream
# that breaks again right after the reconnect ends with one line and exit status 1; a 404
# prints the API's message. Over --url the key of --api-key-file goes as x-api-key.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
command -v node >/dev/null || skip "node is not installed (scripts/deps.sh)"

# start_server SCENARIO: sets $url; requests are logged to $TMP/SCENARIO.log
start_server() {
	rm -f "$TMP/port"
	node "$SRC/tests/integration/fixtures/sse-server.mjs" "$TMP/port" "$TMP/$1.log" "$1" \
		2>"$TMP/$1.err" &
	track_pid $!
	wait_for 10 test -s "$TMP/port" || fail "the SSE server did not start: $(cat "$TMP/$1.err")"
	url=http://127.0.0.1:$(cat "$TMP/port")
}

KEY=sk-cli-test-$RANDOM$RANDOM
printf '%s\n' "$KEY" >"$TMP/key"
chmod 600 "$TMP/key"

# --- a drop in the middle of an event, then a resume ---------------------------------------
start_server resume
run "$CORRAL" sessions:events stream --session-id sesn_test --url "$url" --api-key-file "$TMP/key" \
	--format jsonl --until-idle
expect_rc 0 "stream with one reconnect: $ERR"
seqs=$(jq -r '.seq' <<<"$OUT" | paste -sd, -)
[ "$seqs" = 1,2,3,4,5 ] || fail "events seen: $seqs, want 1,2,3,4,5 (each once, none lost)"
[ "$(jq -r 'select(.seq == 1) | .content[0].text' <<<"$OUT")" = hi ] ||
	fail "the event with two data lines (CRLF) was not joined: $OUT"
[ "$(jq -r 'select(.seq == 3) | .content[0].text' <<<"$OUT")" = $'line one\nline two' ] ||
	fail "the event after a field without a colon: $OUT"
expect_no_match '"ping"|"\{\}"' "$OUT" "pings are not events"
expect_match 'reconnecting after event 3' "$ERR" "the reconnect is said on stderr"
[ "$(wc -l <"$TMP/resume.log")" = 2 ] || fail "want 2 connections: $(cat "$TMP/resume.log")"
first=$(sed -n 1p "$TMP/resume.log")
second=$(sed -n 2p "$TMP/resume.log")
[ "$(jq -r .last_event_id <<<"$first")" = null ] || fail "the first connection sent a Last-Event-ID: $first"
[ "$(jq -r .last_event_id <<<"$second")" = 3 ] || fail "the reconnect's Last-Event-ID: $second"
[ "$(jq -r .url <<<"$first")" = /v1/sessions/sesn_test/events/stream ] || fail "path: $first"
[ "$(jq -r .api_key <<<"$first")" = "$KEY" ] || fail "the key was not sent as x-api-key: $first"
expect_match 'text/event-stream' "$(jq -r .accept <<<"$first")" "Accept"

# --last-event-id and --type: the first connection resumes; only the types asked for print
start_server resume
run "$CORRAL" sessions:events stream --session-id sesn_test --url "$url" --format jsonl \
	--until-idle --type session.status_idle --last-event-id 0
expect_rc 0 "stream --type: $ERR"
[ "$(jq -r .type <<<"$OUT")" = session.status_idle ] || fail "--type printed: $OUT"

# --- a reconnect that breaks again before any byte: one line, exit 1 ------------------------
start_server flaky
run "$CORRAL" sessions:events stream --session-id sesn_test --url "$url" --format jsonl
expect_rc 1 "a stream that keeps breaking"
[ "$(jq -r .seq <<<"$OUT" | paste -sd, -)" = 1,2 ] || fail "flaky: events $OUT"
[ "$(wc -l <"$TMP/flaky.log")" = 3 ] || fail "want 3 connections (1, a reconnect that got an event, one that got none): $(cat "$TMP/flaky.log")"
[ "$(sed -n 3p "$TMP/flaky.log" | jq -r .last_event_id)" = 2 ] || fail "the last reconnect's Last-Event-ID"
last=$(tail -n 1 <<<"$ERR")
expect_match '^corral: the event stream from http://127\.0\.0\.1:[0-9]+ broke again after a reconnect: ' "$last" "the final error"

# --- an API error on the stream -----------------------------------------------------------
start_server error
run "$CORRAL" sessions:events stream --session-id sesn_nope --url "$url"
expect_rc 1 "a 404 stream"
[ "$ERR" = "corral: no session sesn_nope (not_found_error, HTTP 404, request req_test)" ] ||
	fail "the 404's message: $ERR"
