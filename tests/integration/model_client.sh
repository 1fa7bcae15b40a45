#!/usr/bin/env bash
# corral's Messages API client (runtime/model, driven by tests/model-call) against
# corral-fake-api: the scenario's replies equal to the official TypeScript SDK's finalMessage()
# for the same requests, on io_uring and on curl's poll loop; 200 streams at once; a kept-alive
# connection reused; retries as the SDK makes them (429 after retry-after-ms, 529 until they run
# out, x-should-retry, no retry of a 400); a dropped connection and a truncated stream retried;
# a proxy's HTML page, a mid-stream error event, an oversized event, a stall and a server that
# never answers each ending with a clear error; cancellation from another thread; the key file
# checked, and the key never printed, even when a server echoes it back.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
FAKE=$CORRAL_BUILD/corral-fake-api
CALL=$CORRAL_BUILD/tests/model-call
need_program "$FAKE"
need_program "$CALL"
need_sdk
cp "$SRC"/tests/sdk/*.mjs "$sdk/"

KEY=sk-corral-test-$RANDOM$RANDOM-NEVER-PRINT
printf '%s\n' "$KEY" >"$TMP/key"
chmod 600 "$TMP/key"
"$FAKE" --api-key "$KEY" --scenario "$SRC/tests/sdk/scenario.json" --port-file "$TMP/port" \
	>"$TMP/fake.out" 2>"$TMP/fake.err" &
pid=$!
track_pid "$pid"
wait_for 10 test -s "$TMP/port" || fail "corral-fake-api did not start: $(cat "$TMP/fake.err")"
base=http://127.0.0.1:$(cat "$TMP/port")

outputs=() # every file our client wrote: none may hold the key
# run redirects stdin from /dev/null: the body goes by file
body() { # body NAME JSON: writes $TMP/NAME.json
	printf '%s' "$2" >"$TMP/$1.json"
}
with_body() { # with_body BODYFILE NAME [options...]
	local f=$1
	shift
	run sh -c 'b=$1; shift; exec "$@" <"$b"' sh "$f" "$CALL" --base-url "$base" \
		--key-file "$TMP/key" "${@:2}"
	printf '%s' "$OUT" >"$TMP/$1.out"
	printf '%s' "$ERR" >"$TMP/$1.err"
	outputs+=("$TMP/$1.out" "$TMP/$1.err")
}
norm='del(.id) | del(.parsed_output) | .content |= map(del(.id?))'

# --- the same messages as the SDK ---------------------------------------------------------
turn0='{"model":"claude-fake-1","max_tokens":1024,"messages":[{"role":"user","content":"List the workspace."}]}'
turn1='{"model":"claude-fake-1","max_tokens":1024,"messages":[
 {"role":"user","content":"List the workspace."},
 {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"bash","input":{"command":"ls"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a b c"}]}]}'
rule='{"model":"claude-fake-1","max_tokens":1024,"messages":[
 {"role":"user","content":"List the workspace."},
 {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"bash","input":{"command":"ls"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ls: permission denied"}]}]}'
for t in turn0 turn1 rule; do
	body "$t" "${!t}"
	run -t 60 node "$sdk/final.mjs" "$base" "$KEY" "$TMP/$t.json"
	expect_rc 0 "the SDK's $t: $ERR"
	sdk_msg=$(jq -S "$norm" <<<"$OUT")
	for driver in io_uring poll; do
		opt=()
		[ "$driver" = poll ] && opt=(--poll)
		with_body "$TMP/$t.json" "$t-$driver" "${opt[@]}"
		expect_rc 0 "the C client's $t ($driver): $ERR"
		expect_match "\"driver\":\"$driver\"" "$OUT" "$t ran on $driver"
		c_msg=$(jq -S ".message | $norm" <<<"$OUT")
		[ "$c_msg" = "$sdk_msg" ] || fail "$t ($driver): the C client and the SDK differ:
C:   $c_msg
SDK: $sdk_msg"
	done
done
# and what the scenario says
expect_match '"stop_reason":"tool_use"' "$(cat "$TMP/turn0-io_uring.out")" "turn 0 ends in a tool call"
jq -e '.message.content | map(.type) == ["thinking","text","tool_use"]' "$TMP/turn0-io_uring.out" >/dev/null ||
	fail "turn 0 has thinking, text and the tool call"
jq -e '.message.content[2].input.note == "quotes \" and \\ and ünï"' "$TMP/turn0-io_uring.out" >/dev/null ||
	fail "the tool input, assembled from its fragments, is the scenario's"
jq -e '.message.content[0].text == "I cannot read that directory."' "$TMP/rule-poll.out" >/dev/null ||
	fail "the rule's reply"
jq -e '.result | .attempts == 1 and .http_status == 200 and (.request_id | startswith("req_"))
	and .ttft_ms > 0 and .duration_ms >= .ttft_ms and .model_usage.output_tokens > 0
	and .model_usage.input_tokens > 0 and .is_error == false' "$TMP/turn0-io_uring.out" >/dev/null ||
	fail "the result records request-id, attempts, TTFT, duration and usage: $(cat "$TMP/turn0-io_uring.out")"

# --- many at once, and a kept-alive connection ----------------------------------------------
for driver in io_uring poll; do
	opt=()
	[ "$driver" = poll ] && opt=(--poll)
	with_body "$TMP/turn0.json" "many-$driver" --concurrent 200 "${opt[@]}"
	expect_rc 0 "200 streams at once ($driver): $ERR"
	[ "$(jq -r .result.status <<<"$OUT" | grep -c '^ok$')" = 200 ] || fail "200 streams at once ($driver) all ok"
done
with_body "$TMP/turn0.json" keepalive --repeat 3
expect_rc 0 "three calls one after the other: $ERR"
[ "$(jq -c '[.result.new_connections]' <<<"$OUT" | tr -d '\n')" = '[1][0][0]' ] ||
	fail "the later calls reuse the first one's connection: $(jq -c .result.new_connections <<<"$OUT" | tr '\n' ' ')"

# --- retries --------------------------------------------------------------------------------
knob() { printf 'x-fake-api: %s' "$1"; }
with_body "$TMP/turn0.json" r429 --header "$(knob '{"fail_status":429,"fail_attempts":1,"retry_after_ms":300}')"
expect_rc 0 "a 429 with retry-after-ms is retried: $ERR"
jq -e '.result.attempts == 2 and .result.duration_ms >= 300' <<<"$OUT" >/dev/null ||
	fail "the retry waited retry-after-ms (300 ms): $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" r429s --header "$(knob '{"fail_status":429,"fail_attempts":1,"retry_after_s":1}')"
expect_rc 0 "a 429 with retry-after (seconds) is retried: $ERR"
jq -e '.result.attempts == 2 and .result.duration_ms >= 1000' <<<"$OUT" >/dev/null ||
	fail "the retry waited retry-after (1 s): $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" r529 --retries 2 --header "$(knob '{"fail_status":529,"retry_after_ms":10}')"
expect_rc 1 "a 529 on every attempt"
jq -e '.result | .attempts == 3 and .errno == "EREMOTEIO" and .error.type == "overloaded_error"
	and .error.retryable == true and .http_status == 529' <<<"$OUT" >/dev/null ||
	fail "a 529 is retried until the retries run out: $(jq -c .result <<<"$OUT")"
expect_match 'HTTP 529 overloaded_error' "$ERR" "the error says what the API said"
with_body "$TMP/turn0.json" backoff --retries 1 --header "$(knob '{"fail_status":500}')"
jq -e '.result.attempts == 2 and .result.duration_ms >= 375' <<<"$OUT" >/dev/null ||
	fail "without retry-after the first retry waits 0.5 s less up to a quarter: $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" r400 --header "$(knob '{"fail_status":400}')"
jq -e '.result | .attempts == 1 and .error.type == "invalid_request_error" and .error.retryable == false' \
	<<<"$OUT" >/dev/null || fail "a 400 is not retried: $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" shouldnot --header "$(knob '{"fail_status":529,"should_retry":0}')"
jq -e '.result.attempts == 1' <<<"$OUT" >/dev/null || fail "x-should-retry: false stops the retry of a 529"
with_body "$TMP/turn0.json" should --header "$(knob '{"fail_status":400,"fail_attempts":1,"should_retry":1,"retry_after_ms":10}')"
expect_rc 0 "x-should-retry: true retries a 400: $ERR"
jq -e '.result.attempts == 2' <<<"$OUT" >/dev/null || fail "x-should-retry: true retries a 400"

# --- faults ---------------------------------------------------------------------------------
with_body "$TMP/turn0.json" drop --retries 1 --header "$(knob '{"drop_after":5}')"
expect_rc 1 "a connection dropped mid-stream on every attempt"
jq -e '.result | .attempts == 2 and .errno == "ECONNRESET" and .error.type == "connection_error"
	and .error.retryable' <<<"$OUT" >/dev/null || fail "a dropped connection is retried: $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" trunc --retries 1 --header "$(knob '{"truncate_after":400}')"
expect_rc 1 "a truncated stream"
jq -e '.result | .attempts == 2 and (.errno == "EPIPE" or .errno == "ECONNRESET")' <<<"$OUT" >/dev/null ||
	fail "a truncated stream is retried and then an error: $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" html --retries 1 --header "$(knob '{"html_status":502,"retry_after_ms":10}')"
expect_rc 1 "a proxy's HTML page"
jq -e '.result | .attempts == 2 and .errno == "EPROTO" and .http_status == 502 and .request_id == null' \
	<<<"$OUT" >/dev/null || fail "a 502 HTML page is retried, then an error: $(jq -c .result <<<"$OUT")"
expect_match 'HTTP 502, not an API error \(text/html: "502 Bad Gateway"\)' "$ERR" "the HTML error is named"
with_body "$TMP/turn0.json" html1 --header "$(knob '{"html_status":502,"fail_attempts":1,"retry_after_ms":10}')"
expect_rc 0 "one 502 page, then the answer: $ERR"
with_body "$TMP/turn0.json" errev --header "$(knob '{"error_after":3}')"
expect_rc 1 "an error event mid-stream"
jq -e '.result | .attempts == 1 and .error.type == "overloaded_error" and .error.retryable' <<<"$OUT" >/dev/null ||
	fail "an error event ends the attempt with its type, not retried: $(jq -c .result <<<"$OUT")"
with_body "$TMP/turn0.json" big --max-event-bytes 120
expect_rc 1 "an event above the limit"
jq -e '.result.errno == "EMSGSIZE"' <<<"$OUT" >/dev/null || fail "an oversized event: $(jq -c .result <<<"$OUT")"
expect_match 'an event of more than 120 bytes' "$ERR" "the oversized event is named"
with_body "$TMP/turn0.json" stall --idle-ms 300 --retries 1 --header "$(knob '{"stall_after":3,"stall_ms":5000}')"
expect_rc 1 "a stalled stream"
jq -e '.result | .attempts == 2 and .errno == "ETIMEDOUT" and .error.type == "timeout" and .duration_ms < 4000' \
	<<<"$OUT" >/dev/null || fail "a stall times out and is retried: $(jq -c .result <<<"$OUT")"
expect_match 'no data for 300 ms' "$ERR" "the stall is named"
# a server that accepts and never answers
node -e 'const s = require("net").createServer(() => {}).listen(0, "127.0.0.1",
	() => console.log(s.address().port))' >"$TMP/mute.port" &
track_pid $!
wait_for 10 test -s "$TMP/mute.port" || fail "the mute server did not start"
run sh -c 'exec "$0" --base-url "$1" --key-file "$2" --timeout-ms 300 --retries 1 <"$3"' "$CALL" \
	"http://127.0.0.1:$(cat "$TMP/mute.port")" "$TMP/key" "$TMP/turn0.json"
outputs+=("$TMP/mute.out")
printf '%s%s' "$OUT" "$ERR" >"$TMP/mute.out"
expect_rc 1 "a server that never answers"
expect_match 'no response within 300 ms' "$ERR" "the silent server is named"
jq -e '.result.attempts == 2' <<<"$OUT" >/dev/null || fail "a timeout before the answer is retried"
# nothing listening
run sh -c 'exec "$0" --base-url http://127.0.0.1:1 --key-file "$1" --retries 0 <"$2"' "$CALL" \
	"$TMP/key" "$TMP/turn0.json"
expect_rc 1 "nothing listening"
expect_match 'Failed to connect to 127.0.0.1 port 1' "$ERR" "a refused connection is named"
# cancellation, from another thread, on both drivers
for driver in io_uring poll; do
	opt=()
	[ "$driver" = poll ] && opt=(--poll)
	with_body "$TMP/turn0.json" "cancel-$driver" --concurrent 4 --cancel-after-ms 200 "${opt[@]}" \
		--header "$(knob '{"first_token_ms":5000}')"
	expect_rc 1 "cancelled calls ($driver)"
	[ "$(jq -r 'select(.result.errno == "ECANCELED" and .result.duration_ms < 2000) | 1' <<<"$OUT" | wc -l)" = 4 ] ||
		fail "every call ends cancelled within 2 s ($driver): $(jq -c .result <<<"$OUT")"
done

# --- the key --------------------------------------------------------------------------------
chmod 644 "$TMP/key"
with_body "$TMP/turn0.json" keymode
expect_rc 1 "a key file others can read"
expect_match 'mode 0644 lets others read it' "$ERR" "the mode is named"
chmod 600 "$TMP/key"
ln -s "$TMP/key" "$TMP/keylink"
run sh -c 'exec "$0" --base-url "$1" --key-file "$2" <"$3"' "$CALL" "$base" "$TMP/keylink" "$TMP/turn0.json"
expect_rc 1 "a key file that is a link"
printf 'two words\n' >"$TMP/badkey"
chmod 600 "$TMP/badkey"
run sh -c 'exec "$0" --base-url "$1" --key-file "$2" <"$3"' "$CALL" "$base" "$TMP/badkey" "$TMP/turn0.json"
expect_rc 1 "a key with a space"
expect_match 'not one key' "$ERR" "the bad key is refused"
# ANTHROPIC_BASE_URL is honoured when no base URL is given
run sh -c 'ANTHROPIC_BASE_URL=$0 exec "$1" --key-file "$2" <"$3"' "$base" "$CALL" "$TMP/key" "$TMP/turn0.json"
expect_rc 0 "ANTHROPIC_BASE_URL: $ERR"
# a server that echoes the key it got in its error message: the client scrubs it
node -e 'const http = require("http");
const s = http.createServer((q, r) => { r.writeHead(400, {"content-type": "application/json"});
  r.end(JSON.stringify({type: "error", error: {type: "invalid_request_error",
    message: "bad key " + q.headers["x-api-key"]}})); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port))' >"$TMP/echo.port" &
track_pid $!
wait_for 10 test -s "$TMP/echo.port" || fail "the echoing server did not start"
run sh -c 'exec "$0" --base-url "$1" --key-file "$2" <"$3"' "$CALL" \
	"http://127.0.0.1:$(cat "$TMP/echo.port")" "$TMP/key" "$TMP/turn0.json"
printf '%s%s' "$OUT" "$ERR" >"$TMP/echo.out"
outputs+=("$TMP/echo.out")
expect_rc 1 "the echoing server's 400"
expect_match 'bad key \[api key\]' "$ERR" "the key in the server's message is replaced"
for f in "${outputs[@]}"; do
	if grep -qF -- "$KEY" "$f"; then
		fail "the API key appears in $(basename "$f")"
	fi
done
echo "the key appears in none of ${#outputs[@]} outputs"
grep -q 'Sanitizer' "$TMP/fake.err" && fail "corral-fake-api: $(cat "$TMP/fake.err")"
exit 0
