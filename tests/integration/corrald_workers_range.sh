#!/usr/bin/env bash
# corrald --workers takes a number from 1 to 1024; anything else is a usage error (exit 2).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"

for bad in 0 -1 1025 5000 x 3x 0x10 '' ' 5' '5 ' +3 007x 99999999999999999999; do
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --workers "$bad"
	expect_rc 2 "corrald --workers '$bad'"
	expect_match '--workers' "$ERR" "corrald --workers '$bad' explains"
	[ ! -e "$TMP/state" ] || fail "corrald --workers '$bad' created the state directory"
done

for good in 1 7 1024; do
	rm -rf "$TMP/state"
	# (no model key: corrald stops after its checks, before it starts workers)
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --workers "$good"
	[ "$rc" != 2 ] || fail "corrald --workers $good refused as a usage error: $ERR"
	expect_match '^corrald: kernel ' "$ERR" "corrald --workers $good runs its start-up checks"
done
