# shellcheck shell=bash disable=SC2034 # variables here are for the tests that source it
# Shared by the tests that drive corrald (sourced after common.bash). Gives a test:
#   start_fake_api [SCENARIO [OPTION...]]  corral-fake-api on a free loopback port, with the
#                               fake-api options given; sets $model_url
#   start_corrald [ARG...]      corrald with state $TMP/state (a fake model key in it) on the
#                               socket $TMP/sock, its model at $model_url when set, once it
#                               says it serves; sets $state, $sock, $corrald_pid. On exit it is
#                               stopped with SIGTERM and every sandbox it made is destroyed
#                               (sandboxes outlive corrald by design)
#   stop_corrald [SIGNAL]       signals it (default TERM) and waits, failing on a sanitizer
#                               report in its (or its workers') stderr; start_corrald may follow
#   api VERB...                 runs "corral VERB... --socket $sock" under run (so $rc, $OUT,
#                               $ERR), with --format json unless the test gives one
#   http METHOD PATH [JSON]     one raw request with curl; sets $status and $body
#   wait_idle SESSION SECS      waits until the session's status is idle (or terminated)
#   events_of SESSION           every event of the session, as one JSON array
#   transcript SESSION          the session's transcript (lib/transcript.jq)

start_fake_api() {
	need_program "$CORRAL_BUILD/corral-fake-api"
	rm -f "$TMP/fake-api.port"
	local args=(--port-file "$TMP/fake-api.port")
	[ -n "${1:-}" ] && args+=(--scenario "$1")
	[ $# -gt 1 ] && args+=("${@:2}")
	"$CORRAL_BUILD/corral-fake-api" "${args[@]}" >"$TMP/fake-api.out" 2>"$TMP/fake-api.err" &
	track_pid $!
	wait_for 10 test -s "$TMP/fake-api.port" ||
		fail "corral-fake-api did not start: $(cat "$TMP/fake-api.err")"
	model_url=http://127.0.0.1:$(cat "$TMP/fake-api.port")
}

_stop_corrald() {
	local m id
	if [ -n "${corrald_pid:-}" ] && kill -TERM "$corrald_pid" 2>/dev/null; then
		wait_for 15 _exited "$corrald_pid" || kill -KILL "$corrald_pid" 2>/dev/null
	fi
	for id in $("$CORRAL" sandbox ls --state-dir "$state" --json 2>/dev/null | jq -r '.[].id'); do
		"$CORRAL" sandbox destroy --state-dir "$state" "$id" >/dev/null ||
			echo "could not destroy sandbox $id" >&2
	done
	# the sandboxes' cgroup subtree, when this test made it and nothing else is in it
	m=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
	if [ -n "$m" ] && [ -z "$_had_subtree" ] && [ -d "$m/$_subtree" ]; then
		rmdir "$m/$_subtree" 2>/dev/null
	fi
	return 0
}

start_corrald() {
	need_program "$CORRALD"
	state=$TMP/state
	sock=$TMP/sock
	mkdir -p -m 0700 "$state"
	printf 'sk-corral-test-model-key\n' >"$state/model-key"
	chmod 600 "$state/model-key"
	_subtree=$(sed -n 's/^#define CONFIG_CORRAL_CGROUP_SUBTREE "\(.*\)"$/\1/p' \
		"$SRC/include/generated/autoconf.h" 2>/dev/null)
	_subtree=${_subtree:-corral}
	local m
	m=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
	if [ -z "${_had_subtree+set}" ]; then # (a restart must not count its own)
		_had_subtree=
		[ -n "$m" ] && [ -d "$m/$_subtree" ] && _had_subtree=yes
	fi
	local args=(--state-dir "$state" --socket "$sock")
	[ -n "${model_url:-}" ] && args+=(--model-base-url "$model_url")
	# A restart's messages start a fresh corrald.err (the earlier ones go to corrald.err.old).
	[ -e "$TMP/corrald.err" ] && cat "$TMP/corrald.err" >>"$TMP/corrald.err.old"
	"$CORRALD" "${args[@]}" "$@" >"$TMP/corrald.out" 2>"$TMP/corrald.err" &
	corrald_pid=$!
	track_pid "$corrald_pid"
	on_exit _stop_corrald
	wait_for 20 grep -q '^corrald: serving' "$TMP/corrald.err" || {
		tail -n 20 "$TMP/corrald.err" >&2
		fail "corrald did not start"
	}
}

stop_corrald() {
	kill "-${1:-TERM}" "$corrald_pid" 2>/dev/null || true
	wait_exit "$corrald_pid" 30
	# corrald's and its workers' stderr: a sanitized build's reports fail the test.
	if grep -Eq '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|: runtime error: ' "$TMP/corrald.err"; then
		cat "$TMP/corrald.err" >&2
		fail "sanitizer report from corrald or a worker"
	fi
}

api() {
	local fmt=(--format json) a
	for a in "$@"; do
		case $a in --format | --format=*) fmt=() ;; esac
	done
	run "$CORRAL" "$@" --socket "$sock" "${fmt[@]}"
}

_session_status() {
	"$CORRAL" sessions retrieve "$1" --socket "$sock" --format json 2>/dev/null | jq -r .status
}

_session_settled() {
	case $(_session_status "$1") in idle | terminated) return 0 ;; esac
	return 1
}

wait_idle() {
	wait_for "$2" _session_settled "$1"
}

http() {
	local method=$1 path=$2 data=${3:-}
	local args=(-sS --max-time 30 --unix-socket "$sock" -X "$method" -o "$TMP/.http" -w '%{http_code}')
	[ -n "$data" ] && args+=(-H 'content-type: application/json' --data-binary "$data")
	status=$(curl "${args[@]}" "http://corral$path") || fail "curl $method $path failed"
	body=$(cat "$TMP/.http")
}

events_of() {
	local s=$1 page="" all="[]"
	while :; do
		http GET "/v1/sessions/$s/events?limit=1000${page:+&page=$page}"
		[ "$status" = 200 ] || fail "list events of $s: $status $body"
		all=$(jq -c --argjson a "$all" '$a + .data' <<<"$body")
		page=$(jq -r '.next_page // empty' <<<"$body")
		[ -n "$page" ] || break
	done
	printf '%s' "$all"
}

transcript() {
	events_of "$1" | jq -c "$(cat "$SRC/tests/integration/lib/transcript.jq")"
}
