#!/usr/bin/env bash
# corral-init's usage errors exit 2 with its usage: no arguments, "--" alone, an unknown
# option.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL_INIT"

run "$CORRAL_INIT"
expect_rc 2 "corral-init (no arguments)"
expect_match '^usage: corral-init' "$ERR" "usage on stderr"

run "$CORRAL_INIT" --
expect_rc 2 "corral-init --"
expect_match '^usage: corral-init' "$ERR" "usage on stderr"

for opt in -x --bogus; do
	run "$CORRAL_INIT" "$opt" true
	expect_rc 2 "corral-init $opt"
	expect_match "\"$opt\"" "$ERR" "message names $opt"
done
