#!/usr/bin/env bash
# corrald refuses a state directory that is not a directory or is open to others (exit 1,
# with a message saying which), and leaves it as it was.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
[ "$(jq -r .ok <<<"$OUT")" = true ] ||
	skip "a required layer is missing here ($(jq -c .missing_required <<<"$OUT")), so corrald stops before its state directory"

# A regular file.
echo "not a directory" >"$TMP/file"
chmod 0600 "$TMP/file"
run "$CORRALD" --state-dir "$TMP/file" --socket "$TMP/sock"
expect_rc 1 "corrald --state-dir (a regular file)"
expect_match 'not a directory' "$ERR" "corrald explains a file state dir"
expect_no_match 'serving on' "$ERR" "corrald with a file state dir"
[ -f "$TMP/file" ] && [ "$(cat "$TMP/file")" = "not a directory" ] && [ "$(stat -c %a "$TMP/file")" = 600 ] ||
	fail "the file was changed"

# Directories open to group or others.
for m in 755 750 701 770; do
	d=$TMP/state-$m
	mkdir "$d"
	chmod "$m" "$d"
	run "$CORRALD" --state-dir "$d" --socket "$TMP/sock"
	expect_rc 1 "corrald --state-dir (mode $m)"
	expect_match "mode 0?$m" "$ERR" "corrald names the mode $m"
	expect_no_match 'serving on' "$ERR" "corrald with a mode $m state dir"
	now=$(stat -c %a "$d")
	[ "$now" = "$m" ] || fail "corrald changed the mode of $d from $m to $now"
	[ -z "$(ls -A "$d")" ] || fail "corrald wrote into the refused $d: $(ls -A "$d")"
done

# A missing parent: exit 1, nothing created.
run "$CORRALD" --state-dir "$TMP/no/such/state" --socket "$TMP/sock"
expect_rc 1 "corrald --state-dir (missing parent)"
expect_match "$TMP/no/such/state" "$ERR" "corrald names the directory"
[ ! -e "$TMP/no" ] || fail "corrald created $TMP/no"
