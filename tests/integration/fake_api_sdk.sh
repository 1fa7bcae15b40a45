#!/usr/bin/env bash
# corral-fake-api against real clients: the official TypeScript SDK (pinned in tests/sdk,
# installed from npm into $CORRAL_BUILD/sdk on first use) streams and creates the scenario's
# replies, maps every error status to its class, retries a 429 after retry-after; the C stream
# parser (tests/model-stream) and the SDK assemble the same message from the same bytes; curl
# checks the wire: request-id on every response, x-api-key or Bearer, the error bodies, SSE
# framing; bad command lines and scenarios are refused.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
FAKE=$CORRAL_BUILD/corral-fake-api
PARSE=$CORRAL_BUILD/tests/model-stream
need_program "$FAKE"
need_program "$PARSE"
command -v node >/dev/null && command -v npm >/dev/null ||
	fail "node and npm are needed (scripts/deps.sh installs them)"
command -v curl >/dev/null || fail "curl is needed (scripts/deps.sh installs it)"

# the pinned SDK, installed once per build directory (again when the lock file changes)
sdk=$CORRAL_BUILD/sdk
if ! cmp -s "$SRC/tests/sdk/package-lock.json" "$sdk/package-lock.json" ||
	[ ! -d "$sdk/node_modules/@anthropic-ai/sdk" ]; then
	rm -rf "$sdk"
	mkdir -p "$sdk"
	cp "$SRC/tests/sdk/package.json" "$SRC/tests/sdk/package-lock.json" "$sdk/"
	run -t 300 npm ci --prefix "$sdk" --no-audit --no-fund
	expect_rc 0 "npm ci of the pinned SDK (is the npm registry reachable?): $ERR"
fi
cp "$SRC"/tests/sdk/*.mjs "$sdk/"

# refused: a non-loopback address, a bad number, a bad scenario
run "$FAKE" --listen 0.0.0.0:0
expect_rc 1 "--listen 0.0.0.0:0"
expect_match 'only a loopback address' "$ERR" "--listen 0.0.0.0:0 explains"
run "$FAKE" --token-rate -3
expect_rc 2 "--token-rate -3"
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

# the server itself: still serving, and no sanitizer report (in the ASan build)
post /v1/messages "$body" -H 'x-api-key: secret'
expect_match '^HTTP/1.1 200' "$OUT" "the server still serves after all of the above"
if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error: ' "$TMP/fake.err"; then
	cat "$TMP/fake.err" >&2
	fail "corral-fake-api: sanitizer report"
fi
