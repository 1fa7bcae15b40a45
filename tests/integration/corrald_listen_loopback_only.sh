#!/usr/bin/env bash
# corrald --listen takes only a loopback address with a port from 0 to 65535 (127.x.y.z:PORT
# or [::1]:PORT; 0 picks a free port): anything else is a usage error (exit 2) before any
# start-up work, while an accepted address lets it go on to its start-up checks. Serving, it
# says the port it got and answers there (401 without the key).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"

for bad in 0.0.0.0:8080 192.168.1.1:8080 127.0.0.1:70000 127.0.0.1:65536 127.0.0.1:abc \
	127.0.0.1: 127.0.0.1 localhost localhost:8080 :8080 '[::]:8080' ::1:8080 \
	'127.0.0.1: 80' 127.0.0.1:+80 '127.0.0.1:80 ' 127.0.0.1:-1; do
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --listen "$bad"
	expect_rc 2 "corrald --listen $bad"
	expect_match '--listen' "$ERR" "corrald --listen $bad explains"
	[ ! -e "$TMP/state" ] || fail "corrald --listen $bad created the state directory"
done

for good in 127.0.0.1:8080 '[::1]:8080' 127.0.0.1:65535 127.0.0.1:1 127.0.0.1:0; do
	rm -rf "$TMP/state"
	# (no model key: corrald stops after its checks, before it serves)
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --listen "$good"
	[ "$rc" != 2 ] || fail "corrald --listen $good refused as a usage error: $ERR"
	expect_no_match 'want a loopback address' "$ERR" "corrald --listen $good"
	# Past option parsing it checks the kernel layers, one line each.
	expect_match '^corrald: kernel ' "$ERR" "corrald --listen $good runs its start-up checks"
done

# Serving on port 0: the port it got is said, and it is corrald's (401 without the key).
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"
command -v curl >/dev/null || fail "curl is not installed (scripts/deps.sh)"
run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to serve"
printf 'sk-test-model-key\n' >"$TMP/model-key"
chmod 600 "$TMP/model-key"
rm -rf "$TMP/state"
"$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --listen 127.0.0.1:0 \
	--model-key-file "$TMP/model-key" >"$TMP/corrald.out" 2>"$TMP/corrald.err" &
pid=$!
track_pid $pid
on_exit "kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null"
up() { grep -q '^corrald: serving on ' "$TMP/corrald.err" || _exited "$pid"; }
wait_for 30 up || fail "corrald did not start: $(cat "$TMP/corrald.err")"
port=$(sed -nE 's/^corrald: serving on .* and (127\.0\.0\.1:|port )([0-9]+).*/\2/p' "$TMP/corrald.err")
[ -n "$port" ] && [ "$port" -gt 0 ] || fail "corrald did not say its port: $(cat "$TMP/corrald.err")"
run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/agents"
expect_rc 0 "curl to port $port: $ERR"
[ "$OUT" = 401 ] || fail "port $port answered $OUT without a key, want 401"
kill -TERM $pid
wait_exit $pid 20
expect_rc 0 "corrald after SIGTERM"
