#!/usr/bin/env bash
# corrald --listen takes only a loopback address with a port from 1 to 65535 (127.x.y.z:PORT
# or [::1]:PORT): anything else is a usage error (exit 2) before any start-up work, while an
# accepted address lets it go on to its start-up checks.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRALD"

for bad in 0.0.0.0:8080 192.168.1.1:8080 127.0.0.1:0 127.0.0.1:70000 127.0.0.1:abc \
	127.0.0.1: 127.0.0.1 localhost localhost:8080 :8080 '[::]:8080' ::1:8080 \
	'127.0.0.1: 80' 127.0.0.1:+80 '127.0.0.1:80 '; do
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --listen "$bad"
	expect_rc 2 "corrald --listen $bad"
	expect_match '--listen' "$ERR" "corrald --listen $bad explains"
	[ ! -e "$TMP/state" ] || fail "corrald --listen $bad created the state directory"
done

for good in 127.0.0.1:8080 '[::1]:8080' 127.0.0.1:65535 127.0.0.1:1; do
	rm -rf "$TMP/state"
	run "$CORRALD" --state-dir "$TMP/state" --socket "$TMP/sock" --listen "$good"
	[ "$rc" != 2 ] || fail "corrald --listen $good refused as a usage error: $ERR"
	expect_no_match 'want a loopback address' "$ERR" "corrald --listen $good"
	# Past option parsing it checks the kernel layers, one line each.
	expect_match '^corrald: kernel ' "$ERR" "corrald --listen $good runs its start-up checks"
	if grep -q 'start-up checks passed' <<<"$ERR"; then
		expect_match "listen $(sed 's/[][.]/\\&/g' <<<"$good")" "$ERR" "corrald --listen $good reports the address"
	fi
done
