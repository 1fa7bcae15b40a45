#!/usr/bin/env bash
# corrald's API against the official TypeScript SDK (tests/sdk/sessions_api.mjs, the SDK
# pinned in tests/sdk, installed into $CORRAL_BUILD/sdk on first use), over loopback TCP with
# the key corrald generated: agents, environments, sessions, events sent, listed and streamed,
# errors as the SDK's classes, and the agent's turn as the SDK sees it: corrald's workers drive
# the session against corral-fake-api (a reply with a bash call, then a final message), and the
# stream shows session.status_running, agent.message, agent.tool_use, agent.tool_result and
# session.status_idle with end_turn, the same events events.list returns.
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

need_sdk
cp "$SRC"/tests/sdk/*.mjs "$sdk/"

cat >"$TMP/scenario.json" <<'JSON'
{"turns": [
 {"text": "Let me run that.", "tool_calls": [{"name": "bash", "input": {"command": "echo hello from the sandbox"}}]},
 {"text": "It printed a greeting.", "stop_reason": "end_turn"}]}
JSON
start_fake_api "$TMP/scenario.json"
start_corrald --listen 127.0.0.1:0
port_of() {
	port=$(sed -nE 's/^corrald: serving on .* and (127\.0\.0\.1:|port )([0-9]+).*/\2/p' \
		"$TMP/corrald.err")
	[ -n "$port" ]
}
wait_for 20 port_of || fail "corrald did not say its port: $(cat "$TMP/corrald.err")"

[ -e /proc/self/ns/user ] || skip "no user namespaces (the agent's tool call runs in a sandbox)"
run -t 100 env CORRAL_EXPECT_AGENT=1 node "$sdk/sessions_api.mjs" "http://127.0.0.1:$port" "$(cat "$state/api-key")"
printf '%s\n' "$OUT"
expect_rc 0 "the SDK tests: $ERR"
expect_match '^sdk: [0-9]+ passed, 0 failed$' "$OUT" "every SDK test ran"
kill -TERM "$corrald_pid"
wait_exit "$corrald_pid" 20
expect_rc 0 "corrald after SIGTERM"
if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error: ' "$TMP/corrald.err"; then
	cat "$TMP/corrald.err" >&2
	fail "corrald: sanitizer report"
fi
