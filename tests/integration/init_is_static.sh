#!/usr/bin/env bash
# corral-init is statically linked (it runs inside arbitrary root file systems): no program
# interpreter, and ldd or file say so.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

# An ELF executable at all (ldd says "not a dynamic executable" of a script too).
[ "$(head -c 4 "$CORRAL_INIT" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "$CORRAL_INIT is not an ELF file"
said=
if command -v ldd >/dev/null; then
	run ldd "$CORRAL_INIT"
	if grep -q 'not a dynamic executable' <<<"$OUT$ERR"; then
		said="ldd: not a dynamic executable"
	elif grep -Eq '=>|ld-linux' <<<"$OUT"; then
		fail "ldd lists shared libraries: $OUT"
	fi
fi
if [ -z "$said" ] && command -v file >/dev/null; then
	run file -b "$CORRAL_INIT"
	expect_match 'ELF' "$OUT" "file"
	expect_match 'statically linked' "$OUT" "file says statically linked"
	said="file: statically linked"
fi
[ -n "$said" ] || fail "neither ldd nor file could tell"
echo "$said"
if command -v readelf >/dev/null; then
	run readelf -lW "$CORRAL_INIT"
	expect_rc 0 "readelf -l"
	expect_no_match 'INTERP|program interpreter' "$OUT" "readelf: program headers"
	run readelf -dW "$CORRAL_INIT"
	expect_no_match 'NEEDED' "$OUT" "readelf: dynamic section"
fi
# And it runs with nothing but itself: from an empty environment with no PATH lookups needed.
run env -i "$CORRAL_INIT" -- /bin/sh -c 'exit 3'
expect_rc 3 "corral-init in an empty environment"
