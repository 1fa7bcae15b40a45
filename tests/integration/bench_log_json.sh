#!/usr/bin/env bash
# corral bench log --json (--seconds 1 --appenders 8, and --quick: a 32 MiB recovery log
# instead of 256 MiB, to stay well under 30 s) prints one JSON object in which every figure
# the issue asks for is a positive number, with a "met" boolean per target, and removes its
# work directory; the table says PASS or MISS per target; an interrupted run removes its files
# too; bad input (unknown benchmark or option, --appenders 0, > 4096 or not a number,
# --seconds not a positive number, --dir not a writable directory) exits 2 with a message
# and creates nothing.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

work=$TMP/work
mkdir "$work"

# --- a real run, as JSON ---------------------------------------------------------------------
run -t 60 "$CORRAL" bench log --json --seconds 1 --appenders 8 --quick --dir "$work"
expect_rc 0 "corral bench log --json --seconds 1 --appenders 8 --quick"
json=$OUT
jq -e . <<<"$json" >/dev/null || fail "output is not valid JSON: $json"
[ "$(jq -s length <<<"$json")" = 1 ] || fail "output is more than one JSON value"

keys=(appenders appends_per_s ack_p50_us ack_p99_us syncs events_per_sync fdatasync_p50_us
	single_appender_p50_us write_fdatasync_p50_us sqlite_appends_per_s replay_10k_ms
	recovery_mb_per_s overwrite_fdatasync_p50_us overwrite_write_fdatasync_p50_us
	ack_p99_vs_overwrite_fdatasync_p50 single_p50_vs_overwrite_write_fdatasync_p50
	appends ack_max_us batch_write_sync_mean_us threads_appends threads_appends_per_s
	threads_ack_p50_us threads_ack_p99_us threads_ack_max_us threads_syncs
	threads_events_per_sync threads_batch_write_sync_mean_us)
for k in "${keys[@]}"; do
	jq -e --arg k "$k" '.[$k] | type == "number" and . > 0' <<<"$json" >/dev/null ||
		fail ".$k is $(jq -c --arg k "$k" '.[$k]' <<<"$json"), want a positive number"
done
[ "$(jq -r .appenders <<<"$json")" = 8 ] || fail ".appenders is $(jq -c .appenders <<<"$json"), want 8"
[ "$(jq -r .replay_events <<<"$json")" = 10000 ] || fail ".replay_events is not 10000"
jq -e '.ack_p50_us <= .ack_p99_us and .ack_p99_us <= .ack_max_us' <<<"$json" >/dev/null ||
	fail "ack latencies are not p50 <= p99 <= max"
jq -e '.recovered_bytes >= 32 * 1048576' <<<"$json" >/dev/null ||
	fail ".recovered_bytes is $(jq -c .recovered_bytes <<<"$json"), want at least 32 MiB"
for t in appends_vs_sqlite ack_p99_vs_fdatasync_p50 single_p50_vs_write_fdatasync_p50 \
	recovery_mb_per_s; do
	jq -e --arg t "$t" '.targets[$t] | (.value | type == "number" and . > 0) and
		(.met | type == "boolean")' <<<"$json" >/dev/null ||
		fail ".targets.$t is $(jq -c --arg t "$t" '.targets[$t]' <<<"$json")"
done
jq -e '.targets_met | type == "boolean"' <<<"$json" >/dev/null || fail ".targets_met is not a boolean"
[ -z "$(ls -A "$work")" ] || fail "bench log left files in $work: $(ls -A "$work")"

# --- the table (a short run) -----------------------------------------------------------------
run -t 60 "$CORRAL" bench log --seconds 0.3 --appenders 2 --quick --dir "$work"
expect_rc 0 "corral bench log (table)"
[ "$(grep -cE ' (PASS|MISS)$' <<<"$OUT")" = 4 ] || fail "the table does not say PASS or MISS for each of the 4 targets"
expect_match 'sqlite' "$OUT" "the table shows the sqlite baseline"
expect_match 'write\+fdatasync' "$OUT" "the table shows the write+fdatasync baseline"
[ -z "$(ls -A "$work")" ] || fail "bench log left files in $work: $(ls -A "$work")"

# --- interrupted: still cleans up (SIGTERM: a background job of a script ignores SIGINT) ------
"$CORRAL" bench log --seconds 20 --appenders 2 --quick --dir "$work" >/dev/null 2>"$TMP/int.err" &
pid=$!
track_pid "$pid"
wait_for 10 compgen -G "$work/corral-bench-log.*" >/dev/null || fail "no work directory appeared in $work"
kill -TERM "$pid"
wait_exit "$pid" 20
[ "$rc" = 1 ] || fail "interrupted bench log: exit status $rc, want 1 ($(cat "$TMP/int.err"))"
expect_match 'interrupted' "$(cat "$TMP/int.err")" "interrupted bench log says so"
[ -z "$(ls -A "$work")" ] || fail "interrupted bench log left files in $work: $(ls -A "$work")"

# --- bad input: exit 2, a message, nothing created -------------------------------------------
bad() {
	local what=$1 pattern=$2
	shift 2
	run "$CORRAL" bench "$@"
	expect_rc 2 "corral bench $what"
	expect_match "$pattern" "$ERR" "corral bench $what explains"
	[ -z "$OUT" ] || fail "corral bench $what printed on stdout: $OUT"
}
bad "(nothing)" 'log'
bad "nosuch" 'nosuch.*log' nosuch
bad "log --bogus" '--bogus' log --bogus --dir "$work"
bad "log extra" 'extra' log extra --dir "$work"
for n in 0 4097 99999999999 abc -1 '' 1x ' 8'; do
	bad "log --appenders '$n'" '--appenders' log --appenders "$n" --dir "$work"
done
bad "log --appenders (no value)" '--appenders' log --dir "$work" --appenders
for s in 0 0.0 -1 abc nan inf '' . 1.2.3 3601; do
	bad "log --seconds '$s'" '--seconds' log --seconds "$s" --dir "$work"
done
echo "a file" >"$TMP/file"
bad "log --dir (a file)" 'not a directory' log --dir "$TMP/file"
bad "log --dir (missing)" "$TMP/missing" log --dir "$TMP/missing"
bad "log --dir ''" '--dir' log --dir ''
[ ! -e "$TMP/missing" ] || fail "bench log created $TMP/missing"

# Not writable: root may write anywhere, so try as nobody when this runs as root.
ro=$TMP/ro
mkdir "$ro"
chmod 0555 "$ro"
if [ "$(id -u)" != 0 ]; then
	bad "log --dir (not writable)" 'not writable' log --dir "$ro"
elif command -v setpriv >/dev/null; then
	chmod 0711 "$TMP"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$CORRAL" bench log --dir "$ro"
	if [ $rc = 126 ] || [ $rc = 127 ]; then
		echo "note: nobody cannot run $CORRAL here; the not-writable --dir case is not checked"
	else
		expect_rc 2 "corral bench log --dir (not writable, as nobody)"
		expect_match 'not writable' "$ERR" "corral bench log --dir (not writable) explains"
	fi
fi
[ -z "$(ls -A "$ro")" ] || fail "bench log wrote into $ro"
[ -z "$(ls -A "$work")" ] || fail "a refused bench log left files in $work: $(ls -A "$work")"
