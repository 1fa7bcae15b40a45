#!/usr/bin/env bash
# corral-fake-api against real clients: the official TypeScript SDK (pinned in tests/sdk,
# installed from npm into $CORRAL_BUILD/sdk on first use) streams and creates the scenario's
# replies, maps every error status to its class, retries a 429 after retry-after; the C stream
# parser (tests/model-stream) and the SDK assemble the same message from the same bytes; curl
# checks the wire: request-id on every response, x-api-key or Bearer, the error bodies, SSE
# framing, the knobs that draw the first token's latency, stamp the deltas, answer as a failing
# proxy and cut responses short; bad command lines and scenarios are refused.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
FAKE=$CORRAL_BUILD/corral-fake-api
PARSE=$CORRAL_BUILD/tests/model-stream
need_program "$FAKE"
need_program "$PARSE"
command -v curl >/dev/null || fail "curl is needed (scripts/deps.sh installs it)"

need_sdk
cp "$SRC"/tests/sdk/*.mjs "$sdk/"

# refused: a non-loopback address, a bad number, a bad scenario
run "$FAKE" --listen 0.0.0.0:0
expect_rc 1 "--listen 0.0.0.0:0"
expect_match 'only a loopback address' "$ERR" "--listen 0.0.0.0:0 explains"
run "$FAKE" --token-rate -3
expect_rc 2 "--token-rate -3"
run "$FAKE" --first-token-ms 100 --first-token-p99-ms 100
expect_rc 2 "a --first-token-p99-ms that is not above --first-token-ms"
expect_match 'first-token-p99-ms 100 must be greater than --first-token-ms 100' "$ERR" \
	"--first-token-p99-ms explains"
printf '{"turns": [{"text": 5}]}' >"$TMP/bad.json"
run "$FAKE" --scenario "$TMP/bad.json"
expect_rc 2 "a scenario with a number for text"
expect_match 'turns\[0\]\.text must be a string' "$ERR" "the scenario error names the field"
run "$FAKE" --scenario "$TMP/missing.json"
expect_rc 2 "a missing scenario"

"$FAKE" --api-key secret --max-body 1000000 --scenario "$SRC/tests/sdk/scenario.json" \
	--port-file "$TMP/port" >"$TMP/fake.out" 2>"$TMP/fake.err" &
pid=$!
track_pid "$pid"
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true"
wait_for 10 test -s "$TMP/port" || fail "corral-fake-api did not start: $(cat "$TMP/fake.err")"
port=$(cat "$TMP/port")
base=http://127.0.0.1:$port
expect_match "^listening on 127\.0\.0\.1:$port\$" "$(cat "$TMP/fake.out")" "it says where it listens"

# the SDK
run -t 120 node "$sdk/messages.mjs" "$base" secret "$SRC/tests/sdk/scenario.json"
printf '%s\n' "$OUT"
expect_rc 0 "the SDK tests: $ERR"
expect_match '^sdk: [0-9]+ passed, 0 failed$' "$OUT" "every SDK test ran"

# the wire, with curl
body='{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"What is in the workspace?"}]}'
post() { # post PATH BODY [CURL ARGS...]: sets OUT (headers and body)
	local path=$1 data=$2
	shift 2
	run curl -sS -i -X POST "$base$path" -H 'content-type: application/json' --data-binary "$data" "$@"
	expect_rc 0 "curl $path: $ERR"
}
post /v1/messages "$body" -H 'x-api-key: secret' -H 'anthropic-version: 2023-06-01'
expect_match '^HTTP/1.1 200' "$OUT" "x-api-key is accepted"
expect_match '^request-id: req_' "$OUT" "a request-id header"
post /v1/messages "$body"
expect_match '^HTTP/1.1 401' "$OUT" "no key: 401"
expect_match '"type":"authentication_error"' "$OUT" "no key: authentication_error"
expect_match '^request-id: req_' "$OUT" "an error has a request-id header too"
expect_match '"request_id":"req_' "$OUT" "and a request_id in its body"
post /v1/messages '{"model": "m", "max_tokens": 1, "messages": [' -H 'Authorization: Bearer secret'
expect_match '^HTTP/1.1 400' "$OUT" "malformed JSON: 400"
expect_match '"type":"invalid_request_error"' "$OUT" "malformed JSON: invalid_request_error"
post /v1/messages '{"max_tokens": 1, "messages": []}' -H 'Authorization: Bearer secret'
expect_match 'model: Field required' "$OUT" "a missing model is named"
post /v1/nope '{}' -H 'x-api-key: secret'
expect_match '^HTTP/1.1 404' "$OUT" "unknown path: 404"
expect_match '"type":"not_found_error"' "$OUT" "unknown path: not_found_error"
run curl -sS -i "$base/v1/messages" -H 'x-api-key: secret'
expect_match '^HTTP/1.1 405' "$OUT" "GET: 405"
post /v1/messages "$body" -H 'x-api-key: secret' -H 'x-fake-api: {"no_such_knob": 1}'
expect_match 'unknown knob \\"no_such_knob\\"' "$OUT" "an unknown knob is refused, named"
post /v1/messages "$body" -H 'x-api-key: secret' -H 'x-fake-api: {"token_rate": "fast"}'
expect_match 'token_rate must be an integer' "$OUT" "a knob that is not an integer is refused"
post /v1/messages "$body" -H 'x-api-key: secret' -H 'x-fake-api: {"fail_status": 200}'
expect_match 'fail_status must be from 400 to 599' "$OUT" "fail_status out of range is refused"
post /v1/messages "$body" -H 'x-api-key: secret' -H 'x-fake-api: [1'
expect_match 'x-fake-api: not a JSON object' "$OUT" "a knob header that is not JSON is refused"

# SSE framing: event line, data line, blank line; a ping after the first block's start
stream_body='{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"What is in the workspace?"}]}'
run curl -sS -N -o "$TMP/stream.sse" "$base/v1/messages" -H 'x-api-key: secret' \
	--data-binary "$stream_body"
expect_rc 0 "curl stream: $ERR"
first_lines=$(head -n 9 "$TMP/stream.sse")
expect_match '^event: message_start$' "$first_lines" "the stream starts with message_start"
expect_match '^event: ping$' "$first_lines" "a ping after the first content_block_start"
awk 'NR % 3 == 1 && !/^event: / { exit 1 } NR % 3 == 2 && !/^data: \{/ { exit 1 }
	NR % 3 == 0 && $0 != "" { exit 1 }' "$TMP/stream.sse" ||
	fail "the stream is not event/data/blank line triples"
[ "$(grep -c '"partial_json"' "$TMP/stream.sse")" -gt 5 ] ||
	fail "the tool input is not split into several input_json_delta fragments"

# the C parser and the SDK make the same message of the same bytes (the SDK adds its own
# client-side parsed_output)
run sh -c 'exec "$0" 5 <"$1"' "$PARSE" "$TMP/stream.sse" # (run reads /dev/null)
expect_rc 0 "tests/model-stream: $ERR"
c_msg=$(jq -S . <<<"$OUT")
run -t 60 node "$sdk/replay.mjs" "$TMP/stream.sse"
expect_rc 0 "the SDK's replay: $ERR"
sdk_msg=$(jq -S 'del(.parsed_output)' <<<"$OUT")
[ "$c_msg" = "$sdk_msg" ] || {
	printf '%s\n' "--- C:" "$c_msg" "--- SDK:" "$sdk_msg" >&2
	fail "the C parser and the SDK assembled different messages"
}
[ "$(jq -r '.content | map(.type) | join(",")' <<<"$c_msg")" = thinking,text,tool_use ] ||
	fail "the compared message lacks a block type: $c_msg"

# first_token_p99_ms: the first token's latency is drawn (log-normal, median first_token_ms),
# so 40 replies on one connection take different times around the median
args=()
for _ in $(seq 40); do
	args+=(--next -sS -o /dev/null -w '%{time_total}\n' -H 'x-api-key: secret'
		-H 'x-fake-api: {"first_token_ms": 20, "first_token_p99_ms": 200}'
		--data-binary "$body" "$base/v1/messages")
done
run -t 60 curl "${args[@]:1}"
expect_rc 0 "40 requests with first_token_p99_ms: $ERR"
times=$(sort -n <<<"$OUT")
[ "$(wc -l <<<"$times")" -eq 40 ] || fail "40 times were wanted: $OUT"
[ "$(sort -u <<<"$times" | wc -l)" -gt 1 ] || fail "first_token_p99_ms: all 40 times are equal"
# (a fixed wait would keep them all within a few ms; 40 draws with sigma ln(10)/2.33 spread far
# wider than a factor of 2)
awk 'NR == 1 { min = $1 } NR == 20 { lo = $1 } NR == 21 { hi = $1 } { max = $1 }
	END { med = (lo + hi) / 2; exit !(med >= 0.010 && med <= 0.080 && max > 2 * min && max < 3) }' \
	<<<"$times" ||
	fail "first_token_p99_ms: the times are not spread around 20 ms: $(tr '\n' ' ' <<<"$times")"
post /v1/messages "$body" -H 'x-api-key: secret' \
	-H 'x-fake-api: {"first_token_ms": 50, "first_token_p99_ms": 50}'
expect_match '^HTTP/1.1 400' "$OUT" "a first_token_p99_ms not above first_token_ms: 400"
expect_match 'first_token_p99_ms \(50\) must be greater than first_token_ms \(50\)' "$OUT" \
	"a first_token_p99_ms not above first_token_ms is explained"

# stamp: every content_block_delta, and nothing else, carries an integer fake_api_sent_ns (the
# SDK's check of the same stream is in messages.mjs)
run curl -sS -N -o "$TMP/stamped.sse" "$base/v1/messages" -H 'x-api-key: secret' \
	-H 'x-fake-api: {"stamp": 1}' --data-binary "$stream_body"
expect_rc 0 "curl stream with stamp: $ERR"
deltas=$(grep -c '^data: {"type":"content_block_delta"' "$TMP/stamped.sse")
[ "$deltas" -gt 5 ] || fail "stamp: only $deltas deltas"
[ "$(grep -c '^data: {"type":"content_block_delta",.*,"fake_api_sent_ns":[0-9]\+}$' \
	"$TMP/stamped.sse")" -eq "$deltas" ] || fail "stamp: a delta without an integer stamp"
[ "$(grep -c 'fake_api_sent_ns' "$TMP/stamped.sse")" -eq "$deltas" ] ||
	fail "stamp: an event other than content_block_delta has a stamp"
sed -n 's/^data: //p' "$TMP/stamped.sse" | jq -se '
	map(select(.type == "content_block_delta") | .fake_api_sent_ns) as $t
	| all($t[]; type == "number" and . > 0 and . == floor) and $t == ($t | sort)' >/dev/null ||
	fail "stamp: the stamps are not increasing integers"

# html_status: a proxy's page, before authentication (no key here), without a request-id; the
# connection stays usable (one new connection for both transfers)
run curl -sS -i "$base/v1/messages" -H 'x-fake-api: {"html_status": 502}' --data-binary "$body" \
	-w '%{num_connects}\n' --next -sS -o /dev/null -w '%{http_code} %{num_connects}\n' \
	-H 'x-api-key: secret' --data-binary "$body" "$base/v1/messages"
expect_rc 0 "html_status: $ERR"
expect_match '^HTTP/1.1 502 Bad Gateway' "$OUT" "html_status: the status"
expect_match '^Content-Type: text/html' "$OUT" "html_status: an HTML page"
expect_match '<title>502 Bad Gateway</title>' "$OUT" "html_status: the page names the status"
expect_no_match '^[Rr]equest-[Ii][Dd]:' "$OUT" "html_status: no request-id header"
expect_match '^1$' "$OUT" "html_status: the first request opened one connection"
expect_match '^200 0$' "$OUT" "the request after an html_status page reuses its connection"

# truncate_after: a whole reply stops after N bytes of its announced body, a stream after N
# bytes of SSE (inside a chunk, without the last one); curl sees both as cut short
run curl -sS -D "$TMP/cut.head" -o "$TMP/cut.json" "$base/v1/messages" -H 'x-api-key: secret' \
	-H 'x-fake-api: {"truncate_after": 57}' --data-binary "$body"
expect_rc 18 "truncate_after on a whole reply: a partial file"
[ "$(wc -c <"$TMP/cut.json")" -eq 57 ] ||
	fail "truncate_after 57: $(wc -c <"$TMP/cut.json") bytes of body"
length=$(sed -n 's/^Content-Length: \([0-9]*\).*/\1/p' "$TMP/cut.head")
[ "${length:-0}" -gt 57 ] || fail "truncate_after: Content-Length ${length:-none}, not the whole"
expect_match '^\{"id":"msg_' "$(cat "$TMP/cut.json")" "truncate_after: the reply's first bytes"
for n in 1000 0; do
	rm -f "$TMP/cut.sse"
	run curl -sS -N -o "$TMP/cut.sse" "$base/v1/messages" -H 'x-api-key: secret' \
		-H "x-fake-api: {\"truncate_after\": $n}" --data-binary "$stream_body"
	[ "$rc" = 18 ] || [ "$rc" = 56 ] || fail "truncate_after $n on a stream: curl exit $rc ($ERR)"
	got=0
	[ ! -e "$TMP/cut.sse" ] || got=$(wc -c <"$TMP/cut.sse") # (curl makes no empty file)
	[ "$got" -eq "$n" ] || fail "truncate_after $n on a stream: $got bytes"
	[ "$n" = 0 ] || expect_match '^event: message_start$' "$(head -n 1 "$TMP/cut.sse")" \
		"truncate_after on a stream: the stream's first bytes"
done
run curl -sS -N -o "$TMP/cut.sse" "$base/v1/messages" -H 'x-api-key: secret' \
	-H 'x-fake-api: {"truncate_after": 10000000}' --data-binary "$stream_body"
[ "$rc" = 18 ] || [ "$rc" = 56 ] || fail "truncate_after past the end: curl exit $rc, want an error"
expect_match '^event: message_stop' "$(cat "$TMP/cut.sse")" \
	"truncate_after past the end: the whole stream, without its last chunk"
post /v1/messages "$body" -H 'x-api-key: secret' -H 'x-fake-api: {"truncate_after": -1}'
expect_match 'truncate_after must be 0 or more' "$OUT" "a negative truncate_after is refused"

# the server itself: still serving, and no sanitizer report (in the ASan build)
post /v1/messages "$body" -H 'x-api-key: secret'
expect_match '^HTTP/1.1 200' "$OUT" "the server still serves after all of the above"
if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error: ' "$TMP/fake.err"; then
	cat "$TMP/fake.err" >&2
	fail "corral-fake-api: sanitizer report"
fi
