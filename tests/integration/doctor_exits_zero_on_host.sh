#!/usr/bin/env bash
# corral doctor exits 0 on this host: the build's required layers (by default namespaces,
# seccomp and cgroup2) are all present, and the text report says so.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

run "$CORRAL" doctor
expect_rc 0 "corral doctor"
expect_match '^kernel [^ ]+ \(' "$OUT" "report starts with the kernel"
expect_match '^all required layers are present$' "$OUT" "verdict"
expect_no_match '^missing required layers' "$OUT" "verdict"
# Every layer the report marks required (*) is "ok".
for title in namespaces 'seccomp filters' 'cgroup v2'; do
	line=$(grep -E "^  $title +" <<<"$OUT") || fail "no line for layer \"$title\" in the report"
	# In the default configuration these three are required; whatever the configuration, a
	# required layer must be ok when doctor exits 0.
	if grep -Eq "^  $title +[A-Za-z]+ +\*" <<<"$line"; then
		expect_match "^  $title +ok +\*" "$line" "required layer \"$title\""
	fi
done
if grep -E '^  .{17} (MISSING|off) +\*' <<<"$OUT"; then
	fail "doctor exited 0 but a required layer above is not ok"
fi
