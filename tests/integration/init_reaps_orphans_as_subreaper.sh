#!/usr/bin/env bash
# Not PID 1, corral-init makes itself a child subreaper: its program's orphans are reparented
# to corral-init (not to the host's init) and reaped when they exit.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

# The orphan lives until released, so its parent can be looked at; after its release the
# script waits (at most 10 s) for it to be reaped, and reports it if it stays a zombie.
run -t 30 "$CORRAL_INIT" -- sh -c '
	out=$0
	( while [ ! -e "$out/release" ]; do sleep 0.05; done & echo $! >"$out/orphan" )
	o=$(cat "$out/orphan")
	echo "init $PPID"
	sed -n "s/^PPid:[[:space:]]*/parent /p" "/proc/$o/status"
	touch "$out/release"
	i=0
	while [ -e "/proc/$o" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	if [ -e "/proc/$o" ]; then
		grep "^State:" "/proc/$o/status" | sed "s/^/orphan $o /"
	fi
	echo done' "$TMP"
expect_rc 0 "corral-init -- sh (orphan maker)"
init=$(sed -n 's/^init //p' <<<"$OUT")
parent=$(sed -n 's/^parent //p' <<<"$OUT")
[ -n "$init" ] && [ -n "$parent" ] || fail "unexpected output: $OUT"
[ "$parent" = "$init" ] || fail "the orphan's parent is $parent, not corral-init ($init)"
expect_no_match '^orphan ' "$OUT" "orphan reaped (not left a zombie or running)"
expect_match '^done$' "$OUT" "script finished"
