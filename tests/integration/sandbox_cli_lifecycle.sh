#!/usr/bin/env bash
# corral sandbox as a user drives it: create prints an id and the sandbox outlives the
# command; exec runs programs through its PID 1 (corral-init --listen) with their output and
# exit status, and the persistent state (the workspace) is seen from the host; ls shows it
# running, then paused; an exec while paused fails after its timeout, saying why; resume,
# exec again; tool runs the built-in tools (a persistent shell, read, a bad field named);
# destroy removes its cgroup and directory; a session's hands (create --session, handoff, ls
# naming the session, destroy HANDLE). Bad ids and options are usage errors.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
[ -e /proc/self/ns/user ] || skip "no user namespaces"
mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$mount" ] || skip "no cgroup2 mount"
cg=$mount/corral-test-${CORRAL_TEST_RUN:-0}-itest-$$
mkdir "$cg"
state=$TMP/state
mkdir "$state"
# whatever happens: every sandbox destroyed, then the test's cgroup removed
on_exit "for i in \$('$CORRAL' sandbox ls --state-dir '$state' --json | jq -r '.[].id'); do '$CORRAL' sandbox destroy --state-dir '$state' \$i; done; rmdir '$cg'"
sb=(--state-dir "$state")

run "$CORRAL" sandbox create "${sb[@]}" --cgroup-parent "$cg" --hostname itest
expect_rc 0 "sandbox create: $ERR"
id=$OUT
[[ $id =~ ^sbx_[a-z0-9]{26}$ ]] || fail "create printed \"$id\", not an id"

run "$CORRAL" sandbox exec "${sb[@]}" "$id" -- sh -c 'hostname; id -u; echo made > /workspace/f; echo oops >&2; exit 7'
expect_rc 7 "exec's exit status"
expect_match '^itest$' "$OUT" "hostname"
expect_match '^0$' "$OUT" "uid inside"
expect_match 'oops' "$ERR" "stderr"
[ "$(cat "$state/sandboxes/$id/workspace/f")" = made ] || fail "the workspace is not the host's directory"
run "$CORRAL" sandbox exec "${sb[@]}" "$id" -- sh -c 'kill -TERM $$'
expect_rc 143 "a program ended by SIGTERM: 128+15"

# the built-in tools, through the same PID 1
run "$CORRAL" sandbox tool "${sb[@]}" "$id" bash '{"command": "cd /tmp && X=5"}'
expect_rc 0 "tool bash: $ERR"
run "$CORRAL" sandbox tool "${sb[@]}" "$id" bash '{"command": "pwd; echo $X"}'
expect_rc 0 "tool bash again: $ERR"
[ "$OUT" = $'/tmp\n5' ] || fail "the persistent shell lost its state: $OUT"
run "$CORRAL" sandbox tool "${sb[@]}" "$id" read '{"file_path": "/workspace/f"}'
expect_rc 0 "tool read: $ERR"
[ "$OUT" = $'     1\tmade' ] || fail "tool read printed: $OUT"
run "$CORRAL" sandbox tool "${sb[@]}" "$id" read '{"path": "f"}'
expect_rc 1 "tool read with a wrong field"
expect_match 'unknown field "path"' "$ERR" "the bad field named"
run "$CORRAL" sandbox tool "${sb[@]}" --list
expect_rc 0 "tool --list"
[ "$(jq -r '[.[].name] | join(",")' <<<"$OUT")" = bash,read,write,edit,glob,grep ] ||
	fail "tool --list: $OUT"

run "$CORRAL" sandbox ls "${sb[@]}"
expect_rc 0 "ls"
expect_match "^$id +running" "$OUT" "ls shows it running"
run "$CORRAL" sandbox ls "${sb[@]}" --json
[ "$(jq -r '.[0].state' <<<"$OUT")" = running ] || fail "ls --json: $OUT"

run "$CORRAL" sandbox pause "${sb[@]}" "$id"
expect_rc 0 "pause: $ERR"
run "$CORRAL" sandbox ls "${sb[@]}"
expect_match "^$id +paused" "$OUT" "ls shows it paused"
run -t 40 "$CORRAL" sandbox exec "${sb[@]}" --timeout 1000 "$id" -- true
expect_rc 1 "exec while paused"
expect_match 'is paused' "$ERR" "exec while paused says why"
run "$CORRAL" sandbox resume "${sb[@]}" "$id"
expect_rc 0 "resume: $ERR"
run "$CORRAL" sandbox exec "${sb[@]}" "$id" -- cat /workspace/f
expect_rc 0 "exec after resume: $ERR"
[ "$OUT" = made ] || fail "after resume: $OUT"

# usage errors
run "$CORRAL" sandbox exec "${sb[@]}" "../../etc" -- true
expect_rc 2 "a path as an id"
run "$CORRAL" sandbox exec "${sb[@]}" "$id"
expect_rc 2 "exec without a program"
run "$CORRAL" sandbox create "${sb[@]}" --pids many
expect_rc 2 "--pids many"
run "$CORRAL" sandbox frobnicate
expect_rc 2 "unknown verb"

run "$CORRAL" sandbox destroy "${sb[@]}" "$id"
expect_rc 0 "destroy: $ERR"
[ ! -e "$state/sandboxes/$id" ] || fail "destroy left $state/sandboxes/$id"
[ -z "$(ls "$cg")" ] || [ ! -e "$cg/$id" ] || fail "destroy left the cgroup $cg/$id"
run "$CORRAL" sandbox exec "${sb[@]}" "$id" -- true
expect_rc 1 "exec after destroy"
expect_match "no sandbox $id" "$ERR" "exec after destroy says so"

# a session's hands: create --session prints the sandbox's id and the handle; handoff needs the
# handle; destroy HANDLE removes sandbox, workspace and record
run "$CORRAL" sandbox create "${sb[@]}" --cgroup-parent "$cg" --session sesn_one
expect_rc 0 "create --session: $ERR"
hid=$(sed -n 1p <<<"$OUT")
handle=$(sed -n 2p <<<"$OUT")
[[ $hid == sbx_* && $handle == sbh_* ]] || fail "create --session printed: $OUT"
run "$CORRAL" sandbox tool "${sb[@]}" "$hid" write '{"file_path": "w", "content": "hands\n"}'
expect_rc 0 "tool write in the hands' sandbox: $ERR"
[ "$(cat "$state/workspaces/$handle/w")" = hands ] || fail "the hands' workspace is not the host's"
run "$CORRAL" sandbox create "${sb[@]}" --session sesn_x --workspace "$TMP"
expect_rc 2 "--session with --workspace"
run "$CORRAL" sandbox handoff "${sb[@]}" sbh_00000000000000000000000000 sesn_two
expect_rc 1 "handoff with an unknown handle"
run "$CORRAL" sandbox handoff "${sb[@]}" "$handle" sesn_one
expect_rc 2 "handoff to the session that has it"
run "$CORRAL" sandbox handoff "${sb[@]}" "$handle" sesn_two
expect_rc 0 "handoff: $ERR"
expect_match "^$hid: from session sesn_one to session sesn_two$" "$OUT" "handoff says what moved"
[ "$(jq -r .session "$state/hands/$handle.json")" = sesn_two ] || fail "the record still names the old session"
run "$CORRAL" sandbox ls "${sb[@]}"
expect_match "^$hid +running .* sesn_two$" "$OUT" "ls shows the session the sandbox serves"
run "$CORRAL" sandbox ls "${sb[@]}" --json
[ "$(jq -r --arg id "$hid" '.[] | select(.id == $id) | .session' <<<"$OUT")" = sesn_two ] ||
	fail "ls --json has no session for $hid: $OUT"
run "$CORRAL" sandbox destroy "${sb[@]}" "$handle"
expect_rc 0 "destroy HANDLE: $ERR"
[ ! -e "$state/sandboxes/$hid" ] && [ ! -e "$state/workspaces/$handle" ] &&
	[ ! -e "$state/hands/$handle.json" ] || fail "destroy HANDLE left something under $state"
[ ! -e "$cg/$hid" ] || fail "destroy HANDLE left the cgroup $cg/$hid"
