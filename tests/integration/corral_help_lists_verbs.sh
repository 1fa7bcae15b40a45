#!/usr/bin/env bash
# corral help (and --help) exits 0 and lists the verbs, doctor among them, on stdout.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"

for arg in help --help; do
	run "$CORRAL" $arg
	expect_rc 0 "corral $arg"
	expect_match '^usage: corral ' "$OUT" "corral $arg prints usage"
	expect_match '^ +doctor +[^ ]' "$OUT" "corral $arg lists doctor"
	expect_match '^ +version +[^ ]' "$OUT" "corral $arg lists version"
done
