#!/usr/bin/env bash
# Several brains racing to wake one session (runtime/orchestrator over an in-process log, real
# sandboxes and corral-fake-api): each new lease fences the brains before it out, so no event is
# ever appended under an older epoch after a newer one, every brain but the last stops with
# ESTALE or finds nothing to do, each tool call has exactly one result, and the transcript is the
# one an undisturbed run gives (which proves no tool call ran twice: the scenario's bash calls
# count their runs in a file).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
FAKE=$CORRAL_BUILD/corral-fake-api
WAKE=$CORRAL_BUILD/tests/orch-wake
need_program "$FAKE"
need_program "$WAKE"
[ -e /proc/self/ns/user ] || skip "no user namespaces (the tool calls run in sandboxes)"

printf 'sk-race-test\n' >"$TMP/key"
chmod 600 "$TMP/key"
# Model calls of 100 ms or more, so the brains overlap inside calls as well as between them.
"$FAKE" --scenario "$SRC/tests/scenarios/crash.json" --first-token-ms 60 --token-rate 400 \
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
	expect_rc 0 "orch-wake $name: $ERR"
	printf '%s' "$OUT" >"$TMP/$name.json"
}

wake calm
jq -e '[.results[].status] == ["ok"]' "$TMP/calm.json" >/dev/null ||
	fail "an undisturbed wake did not end ok: $(jq -c .results "$TMP/calm.json")"
want=$(jq -c '.events | '"$(cat "$SRC/tests/integration/lib/transcript.jq")" "$TMP/calm.json")
# The calm run's own counts: one run of each bash call, in order.
jq -e '[.[] | select(.type == "agent.tool_use" and .name == "bash") | .result.content[0].text] ==
	["1\n", "2\n", "one\ntwo\nwritten once\n"]' <<<"$want" >/dev/null ||
	fail "the undisturbed transcript is not what the scenario makes: $want"

for stagger in 0 40 130 260; do
	wake "race$stagger" --wakes 4 --stagger-ms "$stagger"
	f=$TMP/race$stagger.json
	# Epochs never go back: after a lease is taken, nothing older is written.
	jq -e '[.events[].epoch] as $e | all(range(1; $e | length); $e[.] >= $e[. - 1])' "$f" \
		>/dev/null || fail "stagger $stagger: an event under an older epoch after a newer lease: $(jq -c '[.events[] | [.seq, .epoch, .type]]' "$f")"
	# Only the last lease's brain may end ok having done something after another took over.
	jq -e '(.results | max_by(.epoch)) as $last | all(.results[]; .status == "ok" or .status == "ESTALE") and $last.status == "ok"' "$f" >/dev/null ||
		fail "stagger $stagger: results $(jq -c .results "$f")"
	jq -e '[.events[] | select(.type == "agent.tool_result") | .payload.tool_use_id] | length == (unique | length)' "$f" >/dev/null ||
		fail "stagger $stagger: a tool call with two results"
	got=$(jq -c '.events | '"$(cat "$SRC/tests/integration/lib/transcript.jq")" "$f")
	[ "$got" = "$want" ] || fail "stagger $stagger: the transcript differs from the undisturbed one:
want $want
got  $got"
	echo "stagger $stagger ms: $(jq -c '[.results[] | "\(.status)@\(.epoch)"]' "$f")"
done
echo "4 brains racing, 4 staggers: one transcript, no tool call run twice, epochs never go back"
