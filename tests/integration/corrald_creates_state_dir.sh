#!/usr/bin/env bash
# corrald --state-dir DIR creates DIR with mode 0700, owned by its user, passes its start-up
# checks, then exits 1 saying it has nothing to serve yet (it has no API yet). An existing DIR
# of mode 0700 is accepted as it is.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald refuses to start"

state=$TMP/state
run "$CORRALD" --state-dir "$state" --socket "$TMP/sock"
expect_rc 1 "corrald --state-dir $state"
expect_match 'start-up checks passed' "$ERR" "corrald start-up"
expect_match 'nothing to serve yet' "$ERR" "corrald says it has nothing to serve"
expect_match "state $state" "$ERR" "corrald names its state directory"
[ -d "$state" ] || fail "$state was not created"
mode=$(stat -c %a "$state")
[ "$mode" = 700 ] || fail "$state has mode $mode, want 700"
[ "$(stat -c %u "$state")" = "$(id -u)" ] || fail "$state is owned by uid $(stat -c %u "$state")"
[ -z "$(ls -A "$state")" ] || fail "$state is not empty: $(ls -A "$state")"

# Once more with a permissive umask: the mode is still 0700.
rm -rf "$state"
run bash -c 'umask 000; exec "$@"' sh "$CORRALD" --state-dir "$state" --socket "$TMP/sock"
expect_rc 1 "corrald --state-dir $state (umask 000)"
mode=$(stat -c %a "$state")
[ "$mode" = 700 ] || fail "$state has mode $mode under umask 000, want 700"

# Again, now that it exists.
run "$CORRALD" --state-dir "$state" --socket "$TMP/sock"
expect_rc 1 "corrald --state-dir $state (existing)"
expect_match 'nothing to serve yet' "$ERR" "corrald with an existing 0700 state directory"
[ "$(stat -c %a "$state")" = 700 ] || fail "mode of $state changed"
