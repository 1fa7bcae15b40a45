#!/usr/bin/env bash
# corral's own sandbox endpoints (docs/api.md, "corral's sandboxes"), with curl over the Unix
# socket against corrald driving sessions with corral-fake-api (tests/scenarios/sandbox_api.json:
# "probe" makes one bash call that prints TOOL-OK and /workspace/mark): the list (empty, then a
# session's eager sandbox with its session, status and time, and never a handle anywhere);
# retrieve; exec (exit code, output, a signal; bad bodies refused with nothing run); pause
# (idempotent, one sandbox.paused; exec refused; the session's tool call waits, and handoff and
# destroy are refused meanwhile) and resume; handoff (a wrong handle is a 403 and changes
# nothing; the right one moves the sandbox, sandbox.handoff lands in both sessions, the new
# session's tool call uses it and the old one's gets a new sandbox; a session with a sandbox
# takes no other); destroy (gone from the list, the session's next tool call gets a new
# sandbox; keep_workspace keeps the workspace); unknown ids (404) and methods (405).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v curl >/dev/null || fail "curl is needed (scripts/deps.sh)"
command -v jq >/dev/null || fail "jq is needed (scripts/deps.sh)"
[ -e /proc/self/ns/user ] || skip "no user namespaces (the sandboxes need them)"
run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to start"

start_fake_api "$SRC/tests/scenarios/sandbox_api.json"
start_corrald --workers 2

# --- helpers -------------------------------------------------------------------------------

# req METHOD PATH [BODY]: sets code, body and head; every answer's body is kept in
# $TMP/bodies (none may hold a handle).
req() {
	local args=(-sS -X "$1" -D "$TMP/head" -o "$TMP/body" -w '%{http_code}')
	[ -z "${3:-}" ] || args+=(-H 'content-type: application/json' --data-binary "$3")
	code=$(timeout 60 curl "${args[@]}" --unix-socket "$sock" "http://corrald$2" 2>"$TMP/curl.err") ||
		fail "curl $1 $2: $(<"$TMP/curl.err")"
	body=$(<"$TMP/body")
	head=$(<"$TMP/head")
	head=${head//$'\r'/}
	printf '%s\n' "$body" >>"$TMP/bodies"
}

ok() { # ok WHAT
	[ "$code" = 200 ] || fail "$1: HTTP $code: $body"
}

# refused STATUS TYPE WHAT [MESSAGE-EREGEX]: the Messages API's error envelope, final
refused() {
	[ "$code" = "$1" ] || fail "$3: HTTP $code, want $1: $body"
	jq -e --arg t "$2" '.type == "error" and .error.type == $t and
		(.request_id | test("^req_[0-9a-z]{26}$"))' <<<"$body" >/dev/null ||
		fail "$3: not a $2 envelope: $body"
	grep -qi '^x-should-retry: false$' <<<"$head" || fail "$3: no x-should-retry: false: $head"
	[ -z "${4:-}" ] || [[ $(jq -r .error.message <<<"$body") =~ $4 ]] ||
		fail "$3: message $(jq .error.message <<<"$body") does not match /$4/"
}

rfc3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'

# The handle of the hands holding sandbox $1: only in their record (root-only) on the host.
handle_of() {
	jq -r --arg id "$1" 'select(.sandbox == $id) | .handle' "$state"/hands/*.json
}

new_session() { # new_session ENV: sets session
	req POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$1\"}"
	ok "create session"
	session=$(jq -r .id <<<"$body")
}

probe() { # probe SESSION: one user message, one bash call, back to idle
	req POST "/v1/sessions/$1/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"probe"}]}]}'
	ok "send probe to $1"
}

# last_result SESSION: the text of the session's last tool result
last_result() {
	events_of "$1" | jq -r '[.[] | select(.type == "agent.tool_result")] | last | .content[0].text'
}

count_events() { # count_events SESSION TYPE
	events_of "$1" | jq --arg t "$2" '[.[] | select(.type == $t)] | length'
}

wait_results() { # wait_results SESSION N: until the session has N tool results and is idle
	_n_results() { [ "$(count_events "$1" agent.tool_result)" -ge "$2" ] && _session_settled "$1"; }
	wait_for 60 _n_results "$1" "$2" ||
		fail "session $1: not idle with $2 tool results: $(events_of "$1" | jq -c '[.[] | .type]')"
}

sandbox_ids() {
	req GET /v1/corral/sandboxes
	ok "list sandboxes"
	jq -r '.data[].id' <<<"$body" | sort | tr '\n' ' '
}

# --- the list, empty, then with a session's eager sandbox -------------------------------------

req GET /v1/corral/sandboxes
ok "list with no sandbox"
jq -e '.data == [] and .next_page == null' <<<"$body" >/dev/null || fail "empty list: $body"

req POST /v1/agents '{"name":"a","model":"claude-sonnet-4-5","tools":[{"type":"agent_toolset_20260401"}]}'
ok "create agent"
agent=$(jq -r .id <<<"$body")
req POST /v1/environments '{"name":"eager","config":{"type":"cloud","provisioning":"eager"}}'
ok "create eager environment"
eager=$(jq -r .id <<<"$body")
req POST /v1/environments '{"name":"lazy","config":{"type":"cloud"}}'
ok "create lazy environment"
lazy=$(jq -r .id <<<"$body")

new_session "$eager"
a=$session
# (an eager sandbox is made after the create is answered)
listed() {
	req GET /v1/corral/sandboxes
	[ "$code" = 200 ] && [ "$(jq '.data | length' <<<"$body")" -ge 1 ]
}
wait_for 30 listed || fail "the eager session's sandbox was never listed: $code $body"
ok "list"
jq -e --arg s "$a" '(.data | length) == 1 and .next_page == null and
	(.data[0] | .type == "sandbox" and .session_id == $s and .status == "running" and
	 (.id | test("^sbx_[0-9a-z]{26}$")))' <<<"$body" >/dev/null ||
	fail "the eager session's sandbox is not listed as its: $body"
[[ $(jq -r '.data[0].created_at' <<<"$body") =~ $rfc3339 ]] || fail "created_at: $body"
sa=$(jq -r '.data[0].id' <<<"$body")
listed=$(jq -c '.data[0]' <<<"$body")
[ -n "$(handle_of "$sa")" ] || fail "no hands record names sandbox $sa"

req GET "/v1/corral/sandboxes/$sa"
ok "retrieve"
[ "$(jq -c . <<<"$body")" = "$listed" ] || fail "retrieve differs from the list: $body vs $listed"

# --- exec ------------------------------------------------------------------------------------

req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["/bin/sh","-c","echo hi; echo oops >&2; exit 3"]}'
ok "exec"
jq -e --arg id "$sa" '.type == "sandbox_exec_result" and .sandbox_id == $id and
	.exit_code == 3 and .signal == null and .stdout == "hi\n" and .stderr == "oops\n" and
	.timed_out == false and (.duration_ms | type) == "number"' <<<"$body" >/dev/null ||
	fail "exec answer: $body"
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["/bin/sh","-c","kill -KILL $$"]}'
ok "exec killed"
jq -e '.exit_code == null and .signal == "SIGKILL"' <<<"$body" >/dev/null ||
	fail "a program killed by a signal: $body"
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["/bin/sleep","5"],"timeout_ms":300}'
ok "exec timed out"
jq -e '.timed_out == true and .exit_code == null and .signal == "SIGTERM"' <<<"$body" >/dev/null ||
	fail "a program past its timeout: $body"
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["no-such-program"]}'
refused 400 invalid_request_error "a program that does not exist" 'no-such-program'

touch_bad='"/bin/sh","-c","touch /workspace/bad"'
req POST "/v1/corral/sandboxes/$sa/exec" 'this is not JSON'
refused 400 invalid_request_error "exec with a body that is not JSON" 'not valid JSON'
req POST "/v1/corral/sandboxes/$sa/exec"
refused 400 invalid_request_error "exec without a body"
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":"touch /workspace/bad"}'
refused 400 invalid_request_error "command as a string" '^command: expected an array'
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":[]}'
refused 400 invalid_request_error "an empty command" '^command: '
req POST "/v1/corral/sandboxes/$sa/exec" "{\"command\":[$touch_bad,5]}"
refused 400 invalid_request_error "a command with a number" '^command\[3\]: expected a string'
req POST "/v1/corral/sandboxes/$sa/exec" "{\"command\":[\"\",\"x\"]}"
refused 400 invalid_request_error "an empty program" '^command\[0\]'
req POST "/v1/corral/sandboxes/$sa/exec" "{\"command\":[$touch_bad],\"timeout_ms\":\"soon\"}"
refused 400 invalid_request_error "timeout_ms as a string" '^timeout_ms'
req POST "/v1/corral/sandboxes/$sa/exec" "{\"command\":[$touch_bad],\"timeout_ms\":0}"
refused 400 invalid_request_error "timeout_ms 0" '^timeout_ms'
req POST "/v1/corral/sandboxes/$sa/exec" '{"timeout_ms":1000}'
refused 400 invalid_request_error "no command" '^command: field required'
req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["/bin/sh","-c","test -e /workspace/bad"]}'
ok "exec test"
[ "$(jq .exit_code <<<"$body")" = 1 ] || fail "a refused exec ran: /workspace/bad exists: $body"

# --- unknown ids, paths and methods ----------------------------------------------------------

unknown=sbx_00000000000000000000000000
for p in "GET $unknown" "GET nonsense" "DELETE $unknown" "POST $unknown/pause" \
	"POST $unknown/resume"; do
	req "${p%% *}" "/v1/corral/sandboxes/${p#* }"
	refused 404 not_found_error "$p" 'not found'
done
req POST /v1/corral/sandboxes/sbx_00000000000000000000000000/exec '{"command":["/bin/true"]}'
refused 404 not_found_error "exec in an unknown sandbox" 'not found'
req POST /v1/corral/sandboxes/sbx_00000000000000000000000000/handoff '{"handle":"sbh_x","session_id":"sesn_x"}'
refused 404 not_found_error "handoff of an unknown sandbox" 'not found'
req GET /v1/corral/nothing
refused 404 not_found_error "an unknown corral path" 'no such endpoint'
req GET "/v1/corral/sandboxes/$sa/nothing"
refused 404 not_found_error "an unknown sandbox verb" 'no such endpoint'
req POST /v1/corral/sandboxes '{}'
refused 405 invalid_request_error "POST on the list" 'allowed: GET'
req POST "/v1/corral/sandboxes/$sa" '{}'
refused 405 invalid_request_error "POST on a sandbox" 'allowed: GET, DELETE'
grep -qi '^allow: GET, DELETE$' <<<"$head" || fail "405 without Allow: $head"
req GET "/v1/corral/sandboxes/$sa/exec"
refused 405 invalid_request_error "GET on exec" 'allowed: POST'
req DELETE "/v1/corral/sandboxes/$sa/pause"
refused 405 invalid_request_error "DELETE on pause" 'allowed: POST'

# --- pause and resume ------------------------------------------------------------------------

req POST "/v1/corral/sandboxes/$sa/exec" '{"command":["/bin/sh","-c","echo from-a >/workspace/mark"]}'
ok "write the mark"
req POST "/v1/corral/sandboxes/$sa/pause"
ok "pause"
jq -e --arg id "$sa" '.id == $id and .status == "paused" and .type == "sandbox"' <<<"$body" >/dev/null ||
	fail "pause answer: $body"
req POST "/v1/corral/sandboxes/$sa/pause"
ok "pause again"
[ "$(jq -r .status <<<"$body")" = paused ] || fail "pause again: $body"
req GET "/v1/corral/sandboxes/$sa"
[ "$(jq -r .status <<<"$body")" = paused ] || fail "retrieve after pause: $body"
[ "$(count_events "$a" sandbox.paused)" = 1 ] ||
	fail "want one sandbox.paused: $(events_of "$a" | jq -c '[.[] | .type]')"
events_of "$a" | jq -e --arg id "$sa" '[.[] | select(.type == "sandbox.paused")][0].sandbox_id == $id' >/dev/null ||
	fail "sandbox.paused does not name $sa"
req POST "/v1/corral/sandboxes/$sa/exec" "{\"command\":[$touch_bad]}"
refused 409 conflict_error "exec in a paused sandbox" 'paused'

# The session's tool call waits for the sandbox; meanwhile the session runs, and its sandbox
# can be neither handed off nor destroyed.
probe "$a"
_tool_use_seen() { [ "$(count_events "$a" agent.tool_use)" -ge 1 ]; }
wait_for 30 _tool_use_seen || fail "no tool call in $a: $(events_of "$a" | jq -c '[.[] | .type]')"
sleep 1
[ "$(count_events "$a" agent.tool_result)" = 0 ] || fail "a tool call ran in a paused sandbox"
[ "$(_session_status "$a")" = running ] || fail "session $a is not running while its call waits"
new_session "$lazy"
b=$session
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$(handle_of "$sa")\",\"session_id\":\"$b\"}"
refused 409 conflict_error "handoff from a running session" 'running'
req DELETE "/v1/corral/sandboxes/$sa"
refused 409 conflict_error "destroy while a tool call waits" 'in use'

req POST "/v1/corral/sandboxes/$sa/resume"
ok "resume"
[ "$(jq -r .status <<<"$body")" = running ] || fail "resume answer: $body"
req POST "/v1/corral/sandboxes/$sa/resume"
ok "resume again"
wait_results "$a" 1
[ "$(last_result "$a")" = $'TOOL-OK\nfrom-a' ] || fail "the waiting call: $(last_result "$a")"
[ "$(count_events "$a" sandbox.resumed)" = 1 ] || fail "want one sandbox.resumed"
echo "pause: one event, exec refused, the session's call waited and ran after resume"

# --- handoff ---------------------------------------------------------------------------------

handle=$(handle_of "$sa")
[[ $handle =~ ^sbh_[0-9a-z]{26}$ ]] || fail "handle of $sa: $handle"
wrong=sbh_$(printf '%026d' 0)
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$wrong\",\"session_id\":\"$b\"}"
refused 403 permission_error "handoff with a wrong handle" 'handle'
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"session_id\":\"$b\"}"
refused 400 invalid_request_error "handoff without a handle" '^handle: field required'
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$handle\",\"session_id\":\"sesn_00000000000000000000000000\"}"
refused 404 not_found_error "handoff to an unknown session" 'not found'
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$handle\",\"session_id\":\"$a\"}"
refused 400 invalid_request_error "handoff to its own session" 'already'
new_session "$lazy"
archived=$session
req POST "/v1/sessions/$archived/archive"
ok "archive"
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$handle\",\"session_id\":\"$archived\"}"
refused 400 invalid_request_error "handoff to an archived session" 'archived'
req GET "/v1/corral/sandboxes/$sa"
[ "$(jq -r .session_id <<<"$body")" = "$a" ] || fail "a refused handoff moved the sandbox: $body"
[ "$(count_events "$a" sandbox.handoff)$(count_events "$b" sandbox.handoff)" = 00 ] ||
	fail "a refused handoff left sandbox.handoff events"

req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$handle\",\"session_id\":\"$b\"}"
ok "handoff"
jq -e --arg id "$sa" --arg s "$b" '.id == $id and .session_id == $s' <<<"$body" >/dev/null ||
	fail "handoff answer: $body"
for s in "$a" "$b"; do
	events_of "$s" | jq -e --arg id "$sa" --arg a "$a" --arg b "$b" '[.[] | select(.type ==
		"sandbox.handoff")] | length == 1 and .[0].sandbox_id == $id and
		.[0].from_session == $a and .[0].to_session == $b' >/dev/null ||
		fail "session $s: no sandbox.handoff from $a to $b: $(events_of "$s" | jq -c '[.[] | select(.type | startswith("sandbox."))]')"
done
# b's next call uses the sandbox it was handed; a's makes a new one
probe "$b"
wait_results "$b" 1
[ "$(last_result "$b")" = $'TOOL-OK\nfrom-a' ] || fail "b's call did not run in the handed-off sandbox: $(last_result "$b")"
probe "$a"
wait_results "$a" 2
[ "$(last_result "$a")" = $'TOOL-OK\nno-mark' ] || fail "a's call after the handoff: $(last_result "$a")"
sa2=$(events_of "$a" | jq -r '[.[] | select(.type == "sandbox.provisioned")] | last | .sandbox_id')
[[ $sa2 =~ ^sbx_ && $sa2 != "$sa" ]] || fail "a has no new sandbox after the handoff: $sa2"
[ "$(sandbox_ids)" = "$(printf '%s\n' "$sa" "$sa2" | sort | tr '\n' ' ')" ] ||
	fail "after the handoff the list holds $(sandbox_ids), want $sa and $sa2"
req GET "/v1/corral/sandboxes/$sa2"
[ "$(jq -r .session_id <<<"$body")" = "$a" ] || fail "a's new sandbox: $body"
# a session with hands takes no other sandbox
req POST "/v1/corral/sandboxes/$sa/handoff" "{\"handle\":\"$handle\",\"session_id\":\"$a\"}"
refused 409 conflict_error "handoff to a session with a sandbox" 'of its own'
echo "handoff: 403 for a wrong handle, then the sandbox moved with an event in both sessions"

# --- destroy ---------------------------------------------------------------------------------

req DELETE "/v1/corral/sandboxes/$sa?keep_workspace=maybe"
refused 400 invalid_request_error "keep_workspace=maybe" 'keep_workspace'
req DELETE "/v1/corral/sandboxes/$sa"
ok "destroy"
jq -e --arg id "$sa" '.id == $id and .type == "sandbox_deleted"' <<<"$body" >/dev/null ||
	fail "destroy answer: $body"
[ "$(sandbox_ids)" = "$sa2 " ] || fail "after destroy the list holds $(sandbox_ids)"
req GET "/v1/corral/sandboxes/$sa"
refused 404 not_found_error "a destroyed sandbox" 'not found'
[ ! -e "$state/hands/$handle.json" ] || fail "the destroyed hands' record is still there"
[ ! -e "$state/workspaces/$handle" ] || fail "the destroyed hands' workspace is still there"
probe "$b"
wait_results "$b" 2
[ "$(last_result "$b")" = $'TOOL-OK\nno-mark' ] || fail "b's call after destroy: $(last_result "$b")"
sb2=$(events_of "$b" | jq -r '[.[] | select(.type == "sandbox.provisioned")] | last | .sandbox_id')
[[ $sb2 =~ ^sbx_ && $sb2 != "$sa" ]] || fail "b has no new sandbox after destroy: $sb2"

handle2=$(handle_of "$sa2")
req DELETE "/v1/corral/sandboxes/$sa2?keep_workspace=true"
ok "destroy, keeping the workspace"
[ -d "$state/workspaces/$handle2" ] || fail "keep_workspace: the workspace went"
[ "$(sandbox_ids)" = "$sb2 " ] || fail "after the second destroy the list holds $(sandbox_ids)"
echo "destroy: gone from the list, the session's next call made a new sandbox"

# No handle in anything the API said, nor in any session's events.
for s in "$a" "$b"; do
	events_of "$s" >>"$TMP/bodies"
done
if grep -q 'sbh_' "$TMP/bodies"; then
	grep -o 'sbh_[0-9a-z]*' "$TMP/bodies" | sort -u >&2
	fail "a handle appeared in an API answer"
fi

stop_corrald TERM
echo "corral's sandbox endpoints: list, retrieve, exec, pause, resume, handoff, destroy"
