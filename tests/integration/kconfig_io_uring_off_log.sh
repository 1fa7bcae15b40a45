#!/usr/bin/env bash
# In a copy of the source tree, with CONFIG_CORRAL_IO_URING off: the tree builds without
# liburing, and the session log, now written with pwrite+fdatasync, passes every one of its
# unit tests (framing, recovery, fencing, concurrency, faults and the crash test). The log's
# contract must not depend on which writer a build has.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
build_with_option_off CORRAL_IO_URING liburing
# The log's tests, one job at a time as tests/run-unit.sh would on a busy machine.
unit_tests_pass 'log*/*' 20
