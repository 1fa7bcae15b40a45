#!/usr/bin/env bash
# A wake told of a message that is still being synced (cr_orch_wake_early, what corrald does
# for a post): it sends the model call at once and keeps it only if the log then holds the
# message as told. Placed in line before the wake starts (corrald's order), the call stands and
# the transcript is the one a wake after the sync gives; a message that never lands, or another
# one in its place, gets its call dropped unanswered and nothing written for it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
FAKE=$CORRAL_BUILD/corral-fake-api
WAKE=$CORRAL_BUILD/tests/orch-wake
need_program "$FAKE"
need_program "$WAKE"
[ -e /proc/self/ns/user ] || skip "no user namespaces (the tool calls run in sandboxes)"

printf 'sk-early-test\n' >"$TMP/key"
chmod 600 "$TMP/key"
"$FAKE" --scenario "$SRC/tests/scenarios/crash.json" --first-token-ms 20 \
	--port-file "$TMP/port" >/dev/null 2>"$TMP/fake.err" &
track_pid $!
wait_for 10 test -s "$TMP/port" || fail "corral-fake-api did not start: $(cat "$TMP/fake.err")"
base=http://127.0.0.1:$(cat "$TMP/port")

wake() { # wake NAME ARGS...: one orch-wake run in $TMP/NAME
	local name=$1
	shift
	mkdir -m 700 "$TMP/$name"
	run -t 90 "$WAKE" --log "$TMP/$name/log" --state-dir "$TMP/$name" --init "$CORRAL_INIT" \
		--base-url "$base" --key-file "$TMP/key" --message "count the runs" "$@"
	printf '%s' "$OUT" >"$TMP/$name.json"
}
transcript() { jq -c '.events | '"$(cat "$SRC/tests/integration/lib/transcript.jq")" "$1"; }

wake calm
expect_rc 0 "orch-wake calm: $ERR"
want=$(transcript "$TMP/calm.json")

for i in 1 2 3; do
	wake "placed$i" --early placed
	expect_rc 0 "orch-wake --early placed: $ERR"
	f=$TMP/placed$i.json
	jq -e '.results[0].status == "ok" and .results[0].dropped_calls == 0' "$f" >/dev/null ||
		fail "placed: the early call did not stand: $(jq -c .results "$f")"
	# the message is the first event, the lease behind it
	jq -e '[.events[0:2][].type] == ["user.message", "lease.acquired"]' "$f" >/dev/null ||
		fail "placed: $(jq -c '[.events[0:3][] | .type]' "$f")"
	got=$(transcript "$f")
	[ "$got" = "$want" ] || fail "placed: the transcript differs from a wake after the sync:
want $want
got  $got"
done

wake lost --early lost
expect_rc 1 "orch-wake --early lost (the session is not idle: nothing ran)"
jq -e '.results[0].status == "ok" and .results[0].dropped_calls == 1 and
	.results[0].model_calls == 0' "$TMP/lost.json" >/dev/null ||
	fail "lost: $(jq -c .results "$TMP/lost.json")"
jq -e '[.events[].type] == ["lease.acquired"]' "$TMP/lost.json" >/dev/null ||
	fail "lost: events were written for a message that never landed: $(jq -c '[.events[].type]' "$TMP/lost.json")"

wake other --early other
expect_rc 0 "orch-wake --early other: $ERR"
jq -e '.results[0].status == "ok" and .results[0].dropped_calls == 1' "$TMP/other.json" \
	>/dev/null || fail "other: $(jq -c .results "$TMP/other.json")"
got=$(transcript "$TMP/other.json")
[ "$got" = "$want" ] || fail "other: the message that did land was not answered as in a calm run:
want $want
got  $got"
echo "early wake: placed x3 kept its call (same transcript); lost and other dropped theirs"
