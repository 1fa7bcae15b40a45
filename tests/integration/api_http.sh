#!/usr/bin/env bash
# corrald's HTTP API on the wire (docs/api.md), with curl over the Unix socket and loopback TCP:
# the key (none, wrong, x-api-key, Bearer; none needed on the socket), the files it keeps
# (api-key 0600, api.db 0600, the socket 0660); agents (versions, 409 on a stale one, archive),
# environments and sessions created, read, listed (limit 1 walks every page, no cursor twice,
# both ways for sessions), changed, archived, deleted; every error in the Messages API's
# envelope with its status, request_id and x-should-retry: false, and nothing appended when a
# post is refused (malformed JSON, a wrong type, too many events, an oversized body, an unknown
# or archived session); the event list (types[], order, pages); the SSE stream (event, id and
# data lines; pings; Last-Event-ID resumes with no gap and no duplicate; it ends when its
# session is deleted); clients that drop streams leave no thread behind; a second corrald on
# the same socket is refused, a stale socket replaced, an open key file refused; the key and
# the resources survive a restart; SIGTERM stops corrald cleanly.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# shellcheck source=SCRIPTDIR/lib/corrald.bash
source "$(dirname "$0")/lib/corrald.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v curl >/dev/null || fail "curl is needed (scripts/deps.sh)"
command -v jq >/dev/null || fail "jq is needed (scripts/deps.sh)"

run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to start"

export CORRAL_API_PING_MS=300
start_fake_api '' # (the workers' model: each reply is "You said: ...", no tools)
# serve: corrald with the TCP listener too; sets port and tcp
serve() {
	start_corrald --listen 127.0.0.1:0
	port_of() {
		port=$(sed -nE 's/^corrald: serving on .* and (127\.0\.0\.1:|port )([0-9]+).*/\2/p' \
			"$TMP/corrald.err")
		[ -n "$port" ]
	}
	wait_for 20 port_of || fail "corrald did not say its port: $(cat "$TMP/corrald.err")"
	tcp=http://127.0.0.1:$port
}
serve
key=$(cat "$state/api-key")

# --- helpers -------------------------------------------------------------------------------

# req [-t|-k KEY|-n] METHOD PATH [BODY [CURL ARG...]]: over the socket, or over TCP with the
# key (-t), another key (-k) or none (-n). Sets code, body and head. (Few processes per
# request: the test makes hundreds.)
req() {
	local via=unix k=$key
	case $1 in
	-t) via=tcp ;;
	-k) via=tcp k=$2 && shift ;;
	-n) via=tcp k= ;;
	esac
	[ $via = unix ] || shift
	local method=$1 path=$2
	shift 2
	local args=(-sS -X "$method" -D "$TMP/head" -o "$TMP/body" -w '%{http_code}')
	if [ $# -ge 1 ]; then
		[ -z "$1" ] || args+=(-H 'content-type: application/json' --data-binary "$1")
		shift
	fi
	if [ $via = unix ]; then
		args+=("$@" --unix-socket "$sock" "http://corrald$path")
	else
		[ -z "$k" ] || args+=(-H "x-api-key: $k")
		args+=("$@" "$tcp$path")
	fi
	code=$(timeout 30 curl "${args[@]}" 2>"$TMP/curl.err") ||
		fail "curl $method $path: exit $?: $(<"$TMP/curl.err")"
	body=$(<"$TMP/body")
	head=$(<"$TMP/head")
	head=${head//$'\r'/}
}

# has_line REGEX TEXT: TEXT has a line matching the (anchored) extended REGEX
has_line() {
	local line
	while IFS= read -r line; do
		[[ $line =~ ^$1$ ]] && return 0
	done <<<"$2"
	return 1
}

ok() { # ok WHAT: the last answer was a 200 with a request-id
	[ "$code" = 200 ] || fail "$1: HTTP $code: $body"
	has_line 'request-id: req_[0-9a-z]{26}' "$head" || fail "$1: no request-id: $head"
}

# refused STATUS TYPE WHAT [MESSAGE-EREGEX]: the Messages API's error envelope, final
refused() {
	[ "$code" = "$1" ] || fail "$3: HTTP $code, want $1: $body"
	local type etype id msg
	IFS=$'\t' read -r type etype id msg < <(jq -r '[.type, .error.type, .request_id,
		.error.message] | @tsv' <<<"$body") || fail "$3: not JSON: $body"
	[ "$type" = error ] || fail "$3: not an error envelope: $body"
	[ "$etype" = "$2" ] || fail "$3: error type $etype, want $2: $body"
	[[ $id =~ ^req_[0-9a-z]{26}$ ]] || fail "$3: request_id $id"
	has_line "request-id: $id" "$head" || fail "$3: request_id is not the request-id header: $head"
	has_line 'x-should-retry: false' "$head" || fail "$3: no x-should-retry: false: $head"
	[ -z "${4:-}" ] || [[ $msg =~ $4 ]] || fail "$3: message \"$msg\" does not match /$4/"
}

rfc3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'

# walk PATH: follows next_page with limit=1 from PATH (which has a query string); prints the
# ids in order; fails on a repeated cursor or a page of other than one item but the last.
walk() {
	local path=$1 page='' seen=" " ids=()
	while :; do
		req GET "$path&limit=1${page:+&page=$page}"
		ok "walk $path"
		local n
		n=$(jq '.data | length' <<<"$body")
		page=$(jq -r '.next_page // empty' <<<"$body")
		[ "$n" = 1 ] || [ -z "$page" ] || fail "walk $path: a page of $n with a next page"
		mapfile -t -O "${#ids[@]}" ids < <(jq -r '.data[].id' <<<"$body")
		[ -n "$page" ] || break
		case $seen in *" $page "*) fail "walk $path: cursor $page came twice" ;; esac
		seen+="$page "
	done
	echo "${ids[@]}"
}

all_events() { # all_events SESSION: the whole event list, as one JSON array
	req GET "/v1/sessions/$1/events?limit=1000"
	ok "events of $1"
	jq -c .data <<<"$body"
}

# settle SESSION: waits until the workers are done with it (it is not running and its log has
# not grown for a second), so that what a check compares does not move under it
settle() {
	local last='' now='' same=0 deadline=$((SECONDS + 30))
	while [ $SECONDS -lt $deadline ]; do
		req GET "/v1/sessions/$1"
		now="$(jq -r .status <<<"$body") $(all_events "$1" | jq length)"
		if [ "$now" = "$last" ] && [ "${now%% *}" != running ]; then
			same=$((same + 1))
			[ $same -lt 5 ] || return 0
		else
			same=0
		fi
		last=$now
		sleep 0.2
	done
	fail "session $1 did not settle: $now"
}

# --- transport and keys --------------------------------------------------------------------
expect_match '^sk-corral-[A-Za-z0-9_-]{43}$' "$key" "the api-key file holds a corral key"
[ "$(stat -c %a "$state/api-key")" = 600 ] || fail "api-key mode $(stat -c %a "$state/api-key")"
[ "$(stat -c %a "$state/api.db")" = 600 ] || fail "api.db mode $(stat -c %a "$state/api.db")"
[ "$(stat -c %a "$sock")" = 660 ] || fail "socket mode $(stat -c %a "$sock")"

req -n GET /v1/agents
refused 401 authentication_error "TCP without a key" 'missing API key'
req -k sk-corral-wrong GET /v1/agents
refused 401 authentication_error "TCP with a wrong key" 'invalid API key'
req -k "${key}x" GET /v1/agents
refused 401 authentication_error "TCP with a longer key"
req -n POST /v1/agents '{"name":"x","model":"m"}'
refused 401 authentication_error "TCP POST without a key"
req -t GET '/v1/agents?beta=true' '' -H 'anthropic-version: 2023-06-01' -H 'anthropic-beta: managed-agents-2026-04-01'
ok "TCP with x-api-key, anthropic-version, anthropic-beta and ?beta=true"
req -n GET /v1/agents '' -H "Authorization: Bearer $key"
ok "TCP with Authorization: Bearer"
req -n GET /v1/agents '' -H "Authorization: Bearer sk-corral-wrong"
refused 401 authentication_error "TCP with a wrong Bearer"
req GET /v1/agents
ok "the socket needs no key"

# --- agents --------------------------------------------------------------------------------
req POST /v1/agents '{"name":"itest-agent","model":"claude-fake-1","system":"Be brief.",
	"tools":[{"type":"agent_toolset_20260401"}],"metadata":{"team":"corral"},"newer_field":1}'
ok "create an agent (an unknown field is ignored)"
agent=$(jq -r .id <<<"$body")
expect_match '^agent_[0-9a-z]{26}$' "$agent" "agent id"
jq -e --arg r "$rfc3339" '.type == "agent" and .version == 1 and .name == "itest-agent" and
	.model == {"id": "claude-fake-1"} and .system == "Be brief." and .description == null and
	.tools == [{"type": "agent_toolset_20260401", "default_config": {"enabled": true,
		"permission_policy": {"type": "always_allow"}}, "configs": []}] and
	.mcp_servers == [] and .skills == [] and .metadata == {"team": "corral"} and
	.execution_identity == {"type": "service_account"} and .multiagent == null and
	(.created_at | test($r)) and (.updated_at | test($r)) and .archived_at == null' \
	<<<"$body" >/dev/null || fail "the agent as created: $body"
req POST /v1/agents '{"name":"itest-tools","model":{"id":"claude-fake-1","effort":"high"},
	"tools":[{"type":"agent_toolset_20260401","default_config":{"permission_policy":{"type":"always_ask"}},
		"configs":[{"name":"bash","enabled":false},{"name":"web_fetch"}]},
	{"type":"mcp_toolset","mcp_server_name":"docs"},
	{"type":"custom","name":"lookup","description":"Looks up","input_schema":{"type":"object"}}],
	"mcp_servers":[{"type":"url","name":"docs","url":"https://mcp.example/"}]}'
ok "create an agent with every kind of tool"
jq -e '.model == {"id": "claude-fake-1", "effort": {"type": "high"}} and
	.tools[0].configs == [{"name": "bash", "type": "bash", "enabled": false,
		"permission_policy": {"type": "always_ask"}}, {"name": "web_fetch", "type": "web_fetch",
		"enabled": true, "permission_policy": {"type": "always_ask"}, "url_sources": null}] and
	.tools[1] == {"type": "mcp_toolset", "mcp_server_name": "docs", "default_config":
		{"enabled": true, "permission_policy": {"type": "always_allow"}}, "configs": []} and
	.tools[2] == {"type": "custom", "name": "lookup", "description": "Looks up",
		"input_schema": {"type": "object"}} and
	.mcp_servers == [{"type": "url", "name": "docs", "url": "https://mcp.example/"}]' \
	<<<"$body" >/dev/null || fail "tools with their defaults filled: $body"
tools_agent=$(jq -r .id <<<"$body")

req POST /v1/agents '{"model":"m"}'
refused 400 invalid_request_error "an agent without a name" '^name: field required$'
req POST /v1/agents '{"name":"x","model":7}'
refused 400 invalid_request_error "a model of the wrong type" '^model: '
req POST /v1/agents '{"name":"x","model":"m","tools":[{"type":"hammer"}]}'
refused 400 invalid_request_error "an unknown tool type" '^tools\[0\]\.type: "hammer" is not one of'
req POST /v1/agents '{"name":"x","model":"m","metadata":{"k":1}}'
refused 400 invalid_request_error "metadata of the wrong type" '^metadata\.k: expected a string$'
req POST /v1/agents '{"name":"x","model":"m",'
refused 400 invalid_request_error "malformed JSON" '^the body is not valid JSON: '
req POST /v1/agents '[]'
refused 400 invalid_request_error "a body that is not an object" 'must be a JSON object'
req POST /v1/agents
refused 400 invalid_request_error "no body" 'needs a JSON object'

req GET "/v1/agents/$agent"
ok "retrieve the agent"
[ "$(jq -r .name <<<"$body")" = itest-agent ] || fail "retrieved: $body"
req POST "/v1/agents/$agent" '{"version":1,"name":"itest-agent-2","metadata":{"team":null,"tier":"a"}}'
ok "update the agent naming version 1"
jq -e '.version == 2 and .name == "itest-agent-2" and .metadata == {"tier": "a"} and
	.system == "Be brief."' <<<"$body" >/dev/null || fail "the update: $body"
req POST "/v1/agents/$agent" '{"version":1,"name":"late"}'
refused 409 conflict_error "an update naming a stale version" 'not the current version'
req POST "/v1/agents/$agent" '{"version":"2"}'
refused 400 invalid_request_error "a version of the wrong type" '^version: expected an integer'
req POST "/v1/agents/$agent" '{"version":2,"name":"itest-agent-2"}'
ok "an update that changes nothing"
[ "$(jq .version <<<"$body")" = 2 ] || fail "an update without a change made a version: $body"
req GET "/v1/agents/$agent?version=1"
ok "retrieve version 1"
jq -e '.version == 1 and .name == "itest-agent"' <<<"$body" >/dev/null || fail "version 1: $body"
req GET "/v1/agents/$agent?version=9"
refused 404 not_found_error "a version that does not exist"
req GET "/v1/agents/$agent/versions"
ok "list the versions"
[ "$(jq -c '[.data[].version]' <<<"$body")" = "[2,1]" ] || fail "versions, newest first: $body"
for bad in agent_nope agent_0000000000000000000000000z "agent_%2E%2E" sesn_x; do
	req GET "/v1/agents/$bad"
	refused 404 not_found_error "agent id $bad"
done
req DELETE "/v1/agents/$agent"
refused 405 invalid_request_error "DELETE on an agent"
has_line 'Allow: GET, POST' "$head" || fail "405 does not say what is allowed: $head"

# pages: six more agents, walked one by one, newest first
for i in 1 2 3 4 5 6; do
	req POST /v1/agents "{\"name\":\"page-$i\",\"model\":\"m\"}"
	ok "create page-$i"
done
req GET '/v1/agents?limit=100'
ok "list agents"
all=$(jq -r '.data[].id' <<<"$body" | paste -sd' ')
[ "$(jq '.data | length' <<<"$body")" = 8 ] || fail "8 agents listed: $body"
[ "$(jq -r .next_page <<<"$body")" = null ] || fail "a next_page after the last agent"
[ "$(jq -r '.data[0].name' <<<"$body")" = page-6 ] || fail "agents are not newest first"
walked=$(walk '/v1/agents?x=1')
[ "$walked" = "$all" ] || fail "limit=1 walked $walked, the list is $all"
req GET '/v1/agents?limit=0'
refused 400 invalid_request_error "limit 0" '^limit: '
req GET '/v1/agents?limit=101'
refused 400 invalid_request_error "limit 101" '^limit: '
req GET '/v1/agents?page=bogus'
refused 400 invalid_request_error "a bogus cursor" '^page: '

req POST "/v1/agents/$tools_agent/archive"
ok "archive an agent"
expect_match "$rfc3339" "$(jq -r .archived_at <<<"$body")" "archived_at"
req GET '/v1/agents?limit=100'
[ "$(jq '.data | length' <<<"$body")" = 7 ] || fail "an archived agent is still listed"
req GET '/v1/agents?limit=100&include_archived=true'
[ "$(jq '.data | length' <<<"$body")" = 8 ] || fail "include_archived=true: $body"
req POST "/v1/agents/$tools_agent" '{"name":"again"}'
refused 400 invalid_request_error "an update of an archived agent" 'archived'

# --- environments --------------------------------------------------------------------------
req POST /v1/environments '{"name":"itest-env","config":{"type":"cloud",
	"networking":{"type":"limited","allowed_hosts":["example.com"]},"packages":{"pip":["requests"]},
	"rootfs":"/srv/rootfs","limits":{"memory_max":268435456,"pids_max":128}},"metadata":{"a":"b"}}'
ok "create an environment"
env=$(jq -r .id <<<"$body")
expect_match '^env_[0-9a-z]{26}$' "$env" "environment id"
jq -e '.type == "environment" and .name == "itest-env" and .config.type == "cloud" and
	.config.networking == {"type": "limited", "allowed_hosts": ["example.com"],
		"allow_mcp_servers": false, "allow_package_managers": false} and
	.config.packages == {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [],
		"npm": [], "pip": ["requests"]} and .config.provisioning == "lazy" and
	.config.rootfs == "/srv/rootfs" and .config.limits == {"memory_max": 268435456, "pids_max": 128} and
	.metadata == {"a": "b"} and .archived_at == null' <<<"$body" >/dev/null ||
	fail "the environment as created: $body"
req POST /v1/environments '{"name":"plain"}'
ok "an environment with the default config"
jq -e '.config.networking == {"type": "unrestricted"} and .config.provisioning == "lazy"' \
	<<<"$body" >/dev/null || fail "default config: $body"
plain_env=$(jq -r .id <<<"$body")
req POST /v1/environments '{"name":"x","config":{"type":"cloud","limits":{"memory_max":"1G"}}}'
refused 400 invalid_request_error "a limit of the wrong type" '^config\.limits\.memory_max: '
req POST /v1/environments '{"name":"x","config":{"type":"cloud","limits":{"disk_max":1}}}'
refused 400 invalid_request_error "an unknown limit" 'disk_max: not a limit corral knows'
req POST /v1/environments '{"name":"x","config":{"type":"cloud","provisioning":"soon"}}'
refused 400 invalid_request_error "an unknown provisioning" '^config\.provisioning: '
req POST /v1/environments '{"name":"x","config":{"type":"self_hosted"}}'
refused 400 invalid_request_error "a self-hosted environment" 'self_hosted'
req POST /v1/environments '{"name":"x","config":{"type":"cloud","rootfs":"relative"}}'
refused 400 invalid_request_error "a relative rootfs" 'absolute path'
req POST "/v1/environments/$env" '{"name":"itest-env-2","config":{"type":"cloud","provisioning":"lazy"},"metadata":{"a":""}}'
ok "update an environment"
jq -e '.name == "itest-env-2" and .config.rootfs == "/srv/rootfs" and .metadata == {}' \
	<<<"$body" >/dev/null || fail "an update keeps what it does not name: $body"
req GET "/v1/environments?limit=100"
ok "list environments"
[ "$(jq -r '[.data[].id] | join(" ")' <<<"$body")" = "$plain_env $env" ] || fail "environments: $body"
req DELETE "/v1/environments/$plain_env"
ok "delete an environment"
[ "$(jq -c . <<<"$body")" = "{\"id\":\"$plain_env\",\"type\":\"environment_deleted\"}" ] ||
	fail "deleted environment: $body"
req GET "/v1/environments/$plain_env"
refused 404 not_found_error "a deleted environment"
req POST /v1/environments '{"name":"to-archive"}'
archived_env=$(jq -r .id <<<"$body")
req POST "/v1/environments/$archived_env/archive"
ok "archive an environment"
expect_match "$rfc3339" "$(jq -r .archived_at <<<"$body")" "environment archived_at"

# --- sessions ------------------------------------------------------------------------------
req POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\",\"title\":\"itest\",\"metadata\":{\"k\":\"v\"}}"
ok "create a session"
session=$(jq -r .id <<<"$body")
expect_match '^sesn_[0-9a-z]{26}$' "$session" "session id"
jq -e --arg a "$agent" --arg e "$env" '.type == "session" and .status == "idle" and
	.agent.id == $a and .agent.version == 2 and .agent.name == "itest-agent-2" and
	.agent.type == "agent" and .environment_id == $e and .title == "itest" and
	.metadata == {"k": "v"} and .resources == [] and .vault_ids == [] and
	.usage.input_tokens == 0 and .usage.output_tokens == 0 and
	(.stats.duration_seconds | type) == "number" and .archived_at == null' <<<"$body" >/dev/null ||
	fail "the session as created: $body"
req POST /v1/sessions "{\"agent\":{\"type\":\"agent\",\"id\":\"$agent\",\"version\":1},\"environment_id\":\"$env\"}"
ok "a session pinned to version 1"
[ "$(jq '.agent.version' <<<"$body")" = 1 ] || fail "pinned version: $body"
quiet=$(jq -r .id <<<"$body") # (never sent an event: no worker touches it)
req POST /v1/sessions "{\"agent\":\"agent_0000000000000000000000000z\",\"environment_id\":\"$env\"}"
refused 404 not_found_error "a session of an unknown agent" 'agent agent_0+z not found'
req POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"env_nope\"}"
refused 404 not_found_error "a session in an unknown environment"
req POST /v1/sessions "{\"agent\":\"$agent\"}"
refused 400 invalid_request_error "a session without environment_id" '^environment_id: field required$'
req POST /v1/sessions "{\"agent\":\"$tools_agent\",\"environment_id\":\"$env\"}"
refused 400 invalid_request_error "a session of an archived agent" 'archived'
req POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$archived_env\"}"
refused 400 invalid_request_error "a session in an archived environment" 'archived'
req POST /v1/sessions "{\"agent\":{\"type\":\"agent\",\"id\":\"$agent\",\"version\":7},\"environment_id\":\"$env\"}"
refused 404 not_found_error "a session of a missing version" 'no version 7'
req GET "/v1/sessions/$session"
ok "retrieve the session"
req GET /v1/sessions/sesn_nope
refused 404 not_found_error "an unknown session id"
req POST "/v1/sessions/$session" '{"title":"renamed","metadata":{"k":null,"n":"1"}}'
ok "update a session"
jq -e '.title == "renamed" and .metadata == {"n": "1"}' <<<"$body" >/dev/null || fail "session update: $body"
req POST "/v1/sessions/$session" '{"title":5}'
refused 400 invalid_request_error "a title of the wrong type" '^title: expected a string or null$'

for i in 1 2 3; do
	req POST /v1/sessions "{\"agent\":\"$agent\",\"environment_id\":\"$env\",\"title\":\"p$i\"}"
	ok "session p$i"
done
req GET '/v1/sessions?limit=100'
ok "list sessions"
all=$(jq -r '.data[].id' <<<"$body" | paste -sd' ')
[ "$(jq '.data | length' <<<"$body")" = 5 ] || fail "5 sessions: $body"
[ "$(jq -r '.data[0].title' <<<"$body")" = p3 ] || fail "sessions are not newest first"
jq -e '.prev_page == null and .next_page == null' <<<"$body" >/dev/null || fail "one page: $body"
walked=$(walk '/v1/sessions?x=1')
[ "$walked" = "$all" ] || fail "sessions walked $walked, the list is $all"
req GET '/v1/sessions?limit=2'
first=$(jq -c '[.data[].id]' <<<"$body")
req GET "/v1/sessions?limit=2&page=$(jq -r .next_page <<<"$body")"
ok "the second page of sessions"
req GET "/v1/sessions?limit=2&page=$(jq -r .prev_page <<<"$body")"
ok "back to the first page"
[ "$(jq -c '[.data[].id]' <<<"$body")" = "$first" ] || fail "prev_page: $body, want $first"
[ "$(jq -r .prev_page <<<"$body")" = null ] || fail "a prev_page before the first page"
req GET '/v1/sessions?limit=100&order=asc'
[ "$(jq -r '.data[-1].title' <<<"$body")" = p3 ] || fail "order=asc: $body"
req GET "/v1/sessions?limit=100&agent_id=$agent&agent_version=1"
[ "$(jq -r '[.data[].id] | join(" ")' <<<"$body")" = "$quiet" ] || fail "agent_version filter: $body"
req GET "/v1/sessions?limit=100&statuses%5B%5D=idle&statuses%5B%5D=running"
ok "statuses[] filter"
req GET "/v1/sessions?statuses%5B%5D=asleep"
refused 400 invalid_request_error "an unknown status" '^statuses: '

# --- events: refused posts append nothing --------------------------------------------------
before=$(all_events "$quiet")
[ "$before" = "[]" ] || fail "a new session has events: $before"
msg='{"type":"user.message","content":[{"type":"text","text":"hello"}]}'
for bad in '{"events":' '{"events":{}}' '{"events":[]}' '{"events":[{"type":"user.message"}]}' \
	'{"events":[{"type":"user.message","content":"hi"}]}' \
	'{"events":[{"type":"user.message","content":[{"type":"text","text":7}]}]}' \
	"{\"events\":[$msg,{\"type\":\"agent.message\",\"content\":[]}]}" \
	"{\"events\":[$msg,{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"t\",\"result\":\"maybe\"}]}" \
	'{"events":[{"type":"user.custom_tool_result"}]}' '{"events":[{"content":[]}]}' \
	"{\"events\":[$(printf "$msg,%.0s" {1..16})$msg]}"; do
	req POST "/v1/sessions/$quiet/events" "$bad"
	refused 400 invalid_request_error "post $bad"
done
req POST "/v1/sessions/$quiet/events" "{\"events\":[$msg,{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":7}]}]}"
refused 400 invalid_request_error "a good event beside a bad one" '^events\[1\]\.content\[0\]\.text: expected a string$'
big=$(head -c 5000000 /dev/zero | tr '\0' x)
printf '{"events":[{"type":"user.message","content":[{"type":"text","text":"%s"}]}]}' "$big" >"$TMP/big.json"
req POST "/v1/sessions/$quiet/events" "@$TMP/big.json"
refused 413 request_too_large "an oversized body"
req POST "/v1/sessions/$quiet/events" "@$TMP/big.json" -H 'Transfer-Encoding: chunked'
refused 413 request_too_large "an oversized chunked body"
req POST /v1/sessions/sesn_0000000000000000000000000z/events "{\"events\":[$msg]}"
refused 404 not_found_error "events of an unknown session"
[ "$(all_events "$quiet")" = "$before" ] || fail "a refused post appended: $(all_events "$quiet")"

# --- events: posted, listed ----------------------------------------------------------------
req POST "/v1/sessions/$session/events" "{\"events\":[$msg,{\"type\":\"user.message\",\"id\":\"sevt_mine\",\"processed_at\":\"2020-01-01T00:00:00Z\",\"content\":[{\"type\":\"text\",\"text\":\"two\"}]}]}"
ok "post two events"
jq -e '(.data | length) == 2 and .data[0].type == "user.message" and .data[0].seq == 1 and
	.data[1].seq == 2 and .data[0].processed_at == null and .data[1].processed_at == null and
	(.data[1].id | test("^sevt_[0-9a-z]{26}$")) and .data[1].content[0].text == "two"' \
	<<<"$body" >/dev/null || fail "the posted events (the log's id and processed_at, not the client's): $body"
posted=$(jq -c '[.data[] | del(.processed_at)]' <<<"$body")
listed=$(all_events "$session" | jq -c '[.[:2][] | del(.processed_at)]')
[ "$listed" = "$posted" ] || fail "listed $listed, posted $posted"
req POST "/v1/sessions/$session/events" '{"events":[{"type":"user.interrupt"},{"type":"system.message","content":[{"type":"text","text":"note"}]}]}'
ok "post user.interrupt and system.message"
settle "$session"
req GET "/v1/sessions/$session/events?types%5B%5D=user.interrupt&types%5B%5D=system.message"
ok "types[] filter"
[ "$(jq -c '[.data[].type]' <<<"$body")" = '["user.interrupt","system.message"]' ] || fail "types[]: $body"
req GET "/v1/sessions/$session/events?order=desc&limit=2"
ok "events newest first"
n=$(all_events "$session" | jq length)
jq -e --argjson n "$n" '.data[0].seq == $n and .data[1].seq == $n - 1 and .next_page != null' \
	<<<"$body" >/dev/null || fail "order=desc: $body"
page='' got=()
while :; do
	req GET "/v1/sessions/$session/events?limit=1${page:+&page=$page}"
	mapfile -t -O "${#got[@]}" got < <(jq -r '.data[].seq' <<<"$body")
	page=$(jq -r '.next_page // empty' <<<"$body")
	[ -n "$page" ] || break
done
[ "${got[*]}" = "$(seq -s ' ' 1 "$n")" ] || fail "events walked one by one: ${got[*]}, want 1..$n"

# --- the stream ----------------------------------------------------------------------------
# check_sse FILE: every event is "event: T", "id: N", "data: {...}" with T the data's type and
# N its seq; prints the seqs
check_sse() {
	awk '/^event: / { ev = substr($0, 8); next }
		/^id: / { id = substr($0, 5); next }
		/^data: / { print ev "\t" id "\t" substr($0, 7); ev = ""; id = "" }' "$1" |
		while IFS=$'\t' read -r ev id data; do
			[ "$ev" = ping ] && continue
			[ "$(jq -r .type <<<"$data")" = "$ev" ] || fail "$1: event name $ev, data $data"
			[ "$(jq -r .seq <<<"$data")" = "$id" ] || fail "$1: id $id, data $data"
			echo "$id"
		done
}
run curl -sS -N -D "$TMP/sse.head" -o "$TMP/all.sse" --max-time 1.5 --unix-socket "$sock" \
	-H 'Last-Event-ID: 0' "http://corrald/v1/sessions/$session/events/stream"
[ "$rc" = 28 ] || fail "a stream ended before --max-time: curl exit $rc ($ERR)"
expect_match '^Content-Type: text/event-stream' "$(tr -d '\r' <"$TMP/sse.head")" "stream content type"
expect_match '^Cache-Control: no-cache' "$(tr -d '\r' <"$TMP/sse.head")" "stream cache control"
expect_match '^event: ping$' "$(cat "$TMP/all.sse")" "pings on a quiet stream"
expect_match '^data: \{"type":"ping"\}$' "$(cat "$TMP/all.sse")" "a ping's data"
all_seqs=$(check_sse "$TMP/all.sse" | paste -sd' ')
n=$(all_events "$session" | jq length)
[ "$all_seqs" = "$(seq -s ' ' 1 "$n")" ] || fail "Last-Event-ID 0 streamed $all_seqs, the log has 1..$n"
run curl -sS -N -o "$TMP/resumed.sse" --max-time 1 --unix-socket "$sock" -H 'Last-Event-ID: 2' \
	"http://corrald/v1/sessions/$session/events/stream"
resumed=$(check_sse "$TMP/resumed.sse" | paste -sd' ')
[ "$resumed" = "$(seq -s ' ' 3 "$n")" ] || fail "Last-Event-ID 2 streamed $resumed, want 3..$n"

# a stream opened without Last-Event-ID sees what comes after it, over TCP with the key
curl -sS -N -o "$TMP/live.sse" --max-time 2 -H "x-api-key: $key" \
	"$tcp/v1/sessions/$quiet/events/stream" 2>/dev/null &
live=$!
track_pid $live
wait_for 5 grep -qs 'stream open' "$TMP/live.sse" || fail "the stream's first bytes did not come at once"
req POST "/v1/sessions/$quiet/events" "{\"events\":[$msg]}"
ok "post to the streamed session"
wait_for 5 grep -qs '^event: user.message$' "$TMP/live.sse" || fail "the live stream did not get the event"
wait_exit $live 10
settle "$quiet"
live_seqs=$(check_sse "$TMP/live.sse" | paste -sd' ')
first_live=${live_seqs%% *}
[ "$first_live" = 1 ] || fail "the live stream started at $first_live: $live_seqs"
# reconnect after the last seen: no gap, no duplicate
last_live=${live_seqs##* }
run curl -sS -N -o "$TMP/again.sse" --max-time 1 --unix-socket "$sock" -H "Last-Event-ID: $last_live" \
	"http://corrald/v1/sessions/$quiet/events/stream"
again=$(check_sse "$TMP/again.sse" | paste -sd' ')
n=$(all_events "$quiet" | jq length)
[ "$live_seqs${again:+ $again}" = "$(seq -s ' ' 1 "$n")" ] ||
	fail "stream then resume: $live_seqs + $again, the log has 1..$n"
req GET /v1/sessions/sesn_0000000000000000000000000z/events/stream
refused 404 not_found_error "the stream of an unknown session"
req GET "/v1/sessions/$session/events/stream" '' -H 'Last-Event-ID: soon'
refused 400 invalid_request_error "a Last-Event-ID that is not a seq"
req GET "/v1/sessions/$session/events/stream?event_deltas%5B%5D=agent.tool_use"
refused 400 invalid_request_error "previews of an event type that has none"

# clients that drop their streams: corrald goes on, and their threads end
pid=$corrald_pid
threads() { find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l; }
base=$(threads)
for i in 1 2 3 4 5; do
	curl -sS -N -o /dev/null --max-time 0.5 --unix-socket "$sock" \
		"http://corrald/v1/sessions/$session/events/stream" 2>/dev/null &
	track_pid $!
done
sleep 1
req GET /v1/agents
ok "corrald answers after clients dropped their streams"
stable() { [ "$(threads)" -le "$base" ]; }
wait_for 5 stable || fail "stream threads left behind: $(threads) threads, $base before"

# archived and deleted sessions
req POST "/v1/sessions/$quiet/archive"
ok "archive a session"
expect_match "$rfc3339" "$(jq -r .archived_at <<<"$body")" "session archived_at"
before=$(all_events "$quiet")
req POST "/v1/sessions/$quiet/events" "{\"events\":[$msg]}"
refused 400 invalid_request_error "events to an archived session" "session $quiet is archived"
[ "$(all_events "$quiet")" = "$before" ] || fail "an event was appended to an archived session"
req GET '/v1/sessions?limit=100'
jq -e --arg q "$quiet" '[.data[].id] | index($q) == null' <<<"$body" >/dev/null ||
	fail "an archived session is listed"

curl -sS -N -o "$TMP/deleted.sse" --max-time 10 --unix-socket "$sock" \
	"http://corrald/v1/sessions/$session/events/stream" 2>/dev/null &
watcher=$!
track_pid $watcher
wait_for 5 grep -qs 'stream open' "$TMP/deleted.sse" || fail "no stream to watch the delete"
req DELETE "/v1/sessions/$session"
ok "delete a session"
[ "$(jq -c . <<<"$body")" = "{\"id\":\"$session\",\"type\":\"session_deleted\"}" ] || fail "deleted: $body"
wait_exit $watcher 5
[ "$rc" = 0 ] || fail "the stream of a deleted session did not end cleanly: curl exit $rc"
expect_match '^event: session.deleted$' "$(cat "$TMP/deleted.sse")" "the stream's last word"
req GET "/v1/sessions/$session"
refused 404 not_found_error "a deleted session"
req GET "/v1/sessions/$session/events"
refused 404 not_found_error "the events of a deleted session"
req POST "/v1/sessions/$session/events" "{\"events\":[$msg]}"
refused 404 not_found_error "events to a deleted session"
req GET /v1/corral/nothing
refused 404 not_found_error "an unknown path of corral's own" 'no such endpoint'
req GET /v1/nothing
refused 404 not_found_error "an unknown path"

# --- one corrald per socket; SIGTERM; a restart ----------------------------------------------
mkdir -m 0700 "$TMP/state2"
cp -p "$state/model-key" "$TMP/state2/"
run -t 60 "$CORRALD" --state-dir "$TMP/state2" --socket "$sock"
expect_rc 1 "a second corrald on the same socket"
expect_match "another corrald is serving on $sock" "$ERR" "the second corrald says why"
req GET /v1/agents
ok "the first corrald still serves"

# stop: SIGTERM, a clean exit, no socket left, no sanitizer report (in the ASan build)
stop() {
	kill -TERM "$corrald_pid"
	wait_exit "$corrald_pid" 20
	expect_rc 0 "corrald after SIGTERM"
	expect_match 'shutting down' "$(cat "$TMP/corrald.err")" "corrald says it stops"
	[ ! -e "$sock" ] || fail "the socket is left after SIGTERM"
	if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error: ' "$TMP/corrald.err"; then
		cat "$TMP/corrald.err" >&2
		fail "corrald: sanitizer report"
	fi
}
stop

# a stale socket is replaced; an open key file is refused; the key and resources persist
if command -v python3 >/dev/null; then
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
	[ -S "$sock" ] || fail "no stale socket made"
fi
chmod 644 "$state/api-key"
run -t 60 "$CORRALD" --state-dir "$state" --socket "$sock"
expect_rc 1 "corrald with an api-key file of mode 644"
expect_match 'api-key must be a regular file .* mode 0600' "$ERR" "an open key file is refused"
chmod 600 "$state/api-key"
serve
[ "$(cat "$state/api-key")" = "$key" ] || fail "the key changed across a restart"
req -t GET "/v1/agents/$agent"
ok "the agent after a restart, over TCP with the same key"
[ "$(jq .version <<<"$body")" = 2 ] || fail "the agent after a restart: $body"
req GET "/v1/sessions/$quiet"
ok "an archived session after a restart"
expect_match "$rfc3339" "$(jq -r .archived_at <<<"$body")" "archived_at after a restart"
req GET "/v1/sessions/$session"
refused 404 not_found_error "a deleted session after a restart"
stop
