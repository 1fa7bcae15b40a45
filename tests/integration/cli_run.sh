#!/usr/bin/env bash
# corral run end to end: corrald with its workers calling corral-fake-api, which plays
# fixtures/run-scenario.json (a bash tool call, then an answer). The stream is opened before
# the task is sent, so every event of the turn is printed: as text (tool lines, results, the
# outcome), -p (the agent's messages only), json (Claude Code's result object) and
# stream-json (its init/assistant/user/result envelope). The default agent and environment
# are made once and reused; --model moves the default agent to a new version; --continue and
# --resume send to an existing session; the task can come from stdin. An agent that must ask
# before a tool runs ends the run with what it waits for (exit 1); Ctrl-C once interrupts the
# agent and waits for idle (exit 1), twice quits at once (130). Errors are one line.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is needed (scripts/deps.sh)"

# --- usage errors and no corrald ------------------------------------------------------------
run "$CORRAL" run --socket "$TMP/none.sock" "a task"
expect_rc 1 "corral run without corrald"
[ "$ERR" = "corral: cannot reach corrald at $TMP/none.sock: no such file or directory (is corrald running?)" ] ||
	fail "corral run without corrald: $ERR"
for args in "" "--output-format xml task" "--resume sesn_x --continue task" \
	"--resume sesn_x --agent agent_x task" "--continue --model m task" "two tasks" "--bogus task" \
	"--resume"; do
	# shellcheck disable=SC2086 # word splitting on purpose
	run "$CORRAL" run --socket "$TMP/none.sock" $args
	expect_rc 2 "corral run $args"
done

start_fake_api "$SRC/tests/integration/fixtures/run-scenario.json"
start_corrald
R=(--socket "$sock")

# --- the first run: stream-json; skipped when the workers do not answer ---------------------
"$CORRAL" run "${R[@]}" --output-format stream-json "write a file" >"$TMP/first.out" 2>"$TMP/first.err" &
pid=$!
track_pid $pid
if ! wait_for 20 grep -q '"type":"assistant"' "$TMP/first.out"; then
	kill -KILL $pid 2>/dev/null || true
	skip "no agent.message within 20 s: the workers do not drive sessions yet ($(tail -n 1 "$TMP/first.err"))"
fi
wait_exit $pid 60
OUT=$(cat "$TMP/first.out")
[ "$rc" = 0 ] || fail "the first run: exit $rc: $(cat "$TMP/first.err")"
line() { sed -n "$1p" <<<"$OUT"; }
n=$(wc -l <<<"$OUT")
[ "$n" = 6 ] || fail "stream-json: $n lines, want init, 2 assistant texts, a tool_use, a tool_result and the result: $OUT"
session=$(line 1 | jq -r .session_id)
[[ $session =~ ^sesn_ ]] || fail "stream-json init: $(line 1)"
line 1 | jq -e '.type == "system" and .subtype == "init" and .cwd == "/workspace" and
	.model == "claude-sonnet-4-5" and (.tools | index("bash")) != null' >/dev/null ||
	fail "stream-json init: $(line 1)"
jq -e -s --arg s "$session" 'all(.[]; .session_id == $s)' <<<"$OUT" >/dev/null || fail "one session_id throughout: $OUT"
line 2 | jq -e '.type == "assistant" and .message.role == "assistant" and
	.message.content == [{"type": "text", "text": "Let me write the file."}]' >/dev/null ||
	fail "stream-json assistant text: $(line 2)"
use=$(line 3 | jq -r '.message.content[0] | select(.type == "tool_use" and .name == "bash") | .id')
[ -n "$use" ] || fail "stream-json tool_use: $(line 3)"
line 3 | jq -e '.message.content[0].input.command | startswith("echo corral-was-here")' >/dev/null ||
	fail "stream-json tool_use input: $(line 3)"
line 4 | jq -e --arg u "$use" '.type == "user" and .message.content[0].type == "tool_result" and
	.message.content[0].tool_use_id == $u and .message.content[0].is_error == false and
	(.message.content[0].content | tostring | contains("corral-was-here"))' >/dev/null ||
	fail "stream-json tool_result: $(line 4)"
line 5 | jq -e '.message.content[0].text == "The file says corral-was-here."' >/dev/null ||
	fail "stream-json final text: $(line 5)"
line 6 | jq -e '.type == "result" and .subtype == "success" and .is_error == false and
	.num_turns == 2 and .result == "The file says corral-was-here." and .total_cost_usd == 0 and
	.usage.input_tokens > 0 and .usage.output_tokens > 0 and .duration_ms >= 0' >/dev/null ||
	fail "stream-json result: $(line 6)"

# --- text, -p, json; the defaults made once -----------------------------------------------
run -t 60 "$CORRAL" run "${R[@]}" "write a file"
expect_rc 0 "text: $ERR"
want=$'Let me write the file.\n● bash: echo corral-was-here > /workspace/f && cat /workspace/f\n  ⎿  corral-was-here\nThe file says corral-was-here.'
[ "$(sed '$d' <<<"$OUT")" = "$want" ] || fail "text output: $OUT"
expect_match '^✓ done \(end_turn; 2 turns, [0-9.]+ s, [0-9]+ in / [0-9]+ out tokens, session sesn_[A-Za-z0-9]+\)$' \
	"$(tail -n 1 <<<"$OUT")" "text: the outcome line"
run -t 60 "$CORRAL" run "${R[@]}" -p "write a file"
expect_rc 0 "-p: $ERR"
[ "$OUT" = $'Let me write the file.\nThe file says corral-was-here.' ] || fail "-p printed: $OUT"
run -t 60 "$CORRAL" run "${R[@]}" --output-format json "write a file"
expect_rc 0 "json: $ERR"
[ "$(wc -l <<<"$OUT")" = 1 ] || fail "json: more than one line: $OUT"
jq -e '.type == "result" and .subtype == "success" and .num_turns == 2 and .stop_reason == "end_turn"' <<<"$OUT" >/dev/null ||
	fail "json result: $OUT"
last=$(jq -r .session_id <<<"$OUT")
api agents list
[ "$(jq '[.data[] | select(.name == "corral-default")] | length' <<<"$OUT")" = 1 ] || fail "one default agent: $OUT"
api environments list
[ "$(jq '[.data[] | select(.name == "corral-default")] | length' <<<"$OUT")" = 1 ] || fail "one default environment: $OUT"

# --model: the default agent moves to it (a new version)
run -t 60 "$CORRAL" run "${R[@]}" -p --model claude-other-1 "write a file"
expect_rc 0 "--model: $ERR"
api agents list
jq -e '[.data[] | select(.name == "corral-default")][0] | .version == 2 and
	((.model | if type == "object" then .id else . end) == "claude-other-1")' <<<"$OUT" >/dev/null ||
	fail "--model did not make version 2 of the default agent: $OUT"
api sessions list --limit 1 --order desc
last=$(jq -r '.data[0].id' <<<"$OUT")

# --continue, --resume, the task from stdin
run -t 60 "$CORRAL" run "${R[@]}" --continue --output-format json "again"
expect_rc 0 "--continue: $ERR"
[ "$(jq -r .session_id <<<"$OUT")" = "$last" ] || fail "--continue went to $(jq -r .session_id <<<"$OUT"), not $last"
run -t 60 "$CORRAL" run "${R[@]}" --resume "$session" --output-format json "and again"
expect_rc 0 "--resume: $ERR"
[ "$(jq -r .session_id <<<"$OUT")" = "$session" ] || fail "--resume: $OUT"
run -t 60 sh -c 'echo "write a file" | "$@"' sh "$CORRAL" run "${R[@]}" -p -
expect_rc 0 "the task from stdin: $ERR"
expect_match 'corral-was-here' "$OUT" "the task from stdin"
run "$CORRAL" run "${R[@]}" --resume sesn_doesnotexist "hello"
expect_rc 1 "--resume of an unknown session"
[ "$(wc -l <<<"$ERR")" = 1 ] || fail "--resume unknown: not one line: $ERR"
expect_match 'not_found_error, HTTP 404' "$ERR" "--resume unknown"

# a tool error is marked
run -t 60 "$CORRAL" run "${R[@]}" "read a missing file"
expect_rc 0 "a failing tool: $ERR"
expect_match '^● read: /workspace/missing$' "$OUT" "the read line"
expect_match '^  ⎿  error: ' "$OUT" "the tool's error marked"

# --- an agent that asks first: the run ends saying what it waits for ------------------------
api agents create --json '{"name": "asker", "model": "claude-fake-1", "tools": [{"type":
	"agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}]}'
expect_rc 0 "the asking agent: $ERR"
asker=$(jq -r .id <<<"$OUT")
api environments list
env=$(jq -r '.data[] | select(.name == "corral-default") | .id' <<<"$OUT")
run -t 60 "$CORRAL" run "${R[@]}" --agent "$asker" --environment "$env" "write a file"
expect_rc 1 "requires_action"
expect_match 'waits for 1 tool call to be confirmed' "$ERR" "requires_action said"
expect_match '● bash: echo corral-was-here' "$ERR" "the awaited call named"
expect_match '^✗ requires_action ' "$(tail -n 1 <<<"$OUT")" "the outcome line"
evt=$(grep -o '(sevt_[A-Za-z0-9]*)' <<<"$ERR" | tr -d '()' | head -n 1)
asked=$(grep -o 'session-id sesn_[A-Za-z0-9]*' <<<"$ERR" | cut -d' ' -f2)
api sessions:events send --session-id "$asked" --allow "$evt"
expect_rc 0 "allowing the call: $ERR"
wait_idle "$asked" 30 || fail "the session did not go idle after --allow"
api sessions:events list --session-id "$asked" --type agent.tool_result
jq -e '.data[0].content | tostring | contains("corral-was-here")' <<<"$OUT" >/dev/null ||
	fail "the allowed call did not run: $OUT"

# --- Ctrl-C: once interrupts, twice quits ---------------------------------------------------
"$CORRAL" run "${R[@]}" "take a nap" >"$TMP/nap.out" 2>"$TMP/nap.err" &
pid=$!
track_pid $pid
wait_for 20 grep -q '^● bash: sleep 4' "$TMP/nap.out" || fail "the nap did not start: $(cat "$TMP/nap.err")"
kill -INT $pid
wait_exit $pid 30
[ "$rc" = 1 ] || fail "one Ctrl-C: exit $rc, want 1: $(cat "$TMP/nap.err")"
grep -q 'interrupting the agent' "$TMP/nap.err" || fail "one Ctrl-C: $(cat "$TMP/nap.err")"
expect_match '^✗ interrupted' "$(tail -n 1 "$TMP/nap.out")" "one Ctrl-C: the outcome"
"$CORRAL" run "${R[@]}" "take a nap" >"$TMP/nap2.out" 2>"$TMP/nap2.err" &
pid=$!
track_pid $pid
wait_for 20 grep -q '^● bash: sleep 4' "$TMP/nap2.out" || fail "the second nap did not start"
kill -INT $pid
sleep 0.2
kill -INT $pid
wait_exit $pid 5
[ "$rc" = 130 ] || fail "two Ctrl-C: exit $rc, want 130"
api sessions list --limit 1 --order desc
wait_idle "$(jq -r '.data[0].id' <<<"$OUT")" 30 || fail "the interrupted session did not go idle"
