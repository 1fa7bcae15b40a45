#!/usr/bin/env bash
# corrald --state-dir DIR creates DIR with mode 0700, owned by its user (whatever the umask),
# passes its start-up checks and serves until SIGTERM, leaving its log, its API store and the
# API's key in DIR (each closed to others); it then exits 0 and removes its socket. An existing
# DIR of mode 0700 is accepted as it is.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to start"

# (the model's key is kept out of the state directory, which corrald is to make)
printf 'sk-test-model-key\n' >"$TMP/model-key"
chmod 600 "$TMP/model-key"

# serve [WRAPPER...]: corrald on $state and $TMP/sock in the background, until it says it
# serves; then stops it with SIGTERM and checks that it exits 0 and removes its socket.
serve() {
	"$@" "$CORRALD" --state-dir "$state" --socket "$TMP/sock" --model-key-file "$TMP/model-key" \
		>"$TMP/corrald.out" 2>"$TMP/corrald.err" &
	local pid=$!
	track_pid $pid
	up() { grep -q '^corrald: serving on ' "$TMP/corrald.err" || _exited "$pid"; }
	wait_for 30 up || fail "corrald did not start: $(cat "$TMP/corrald.err")"
	_exited $pid && fail "corrald exited: $(cat "$TMP/corrald.err")"
	expect_match "state $state" "$(cat "$TMP/corrald.err")" "corrald names its state directory"
	[ -S "$TMP/sock" ] || fail "no socket at $TMP/sock"
	kill -TERM $pid
	wait_exit $pid 20
	expect_rc 0 "corrald after SIGTERM"
	[ ! -e "$TMP/sock" ] || fail "corrald left its socket"
}

state=$TMP/state
serve
[ -d "$state" ] || fail "$state was not created"
mode=$(stat -c %a "$state")
[ "$mode" = 700 ] || fail "$state has mode $mode, want 700"
[ "$(stat -c %u "$state")" = "$(id -u)" ] || fail "$state is owned by uid $(stat -c %u "$state")"
for f in log api.db api-key; do
	[ -e "$state/$f" ] || fail "$state/$f was not made (the state directory has: $(ls -A "$state"))"
done
for f in api.db api-key; do
	[ "$(stat -c %a "$state/$f")" = 600 ] || fail "$state/$f has mode $(stat -c %a "$state/$f")"
done

# Once more with a permissive umask: the mode is still 0700.
rm -rf "$state"
serve bash -c 'umask 000; exec "$@"' sh
mode=$(stat -c %a "$state")
[ "$mode" = 700 ] || fail "$state has mode $mode under umask 000, want 700"
[ "$(stat -c %a "$state/api-key")" = 600 ] || fail "api-key under umask 000: $(stat -c %a "$state/api-key")"

# Again, now that it exists.
serve
[ "$(stat -c %a "$state")" = 700 ] || fail "mode of $state changed"
