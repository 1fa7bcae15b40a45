#!/usr/bin/env bash
# The README's main job: installs the build dependencies, builds corral, and shows what it can
# do on this machine today. Agent sessions arrive with the log, sandbox, model and API issues;
# until then this says so instead of pretending.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
make -j"$(nproc)"
echo
echo "== corral doctor: which kernel enforcement layers work on this machine =="
rc=0
./build/corral doctor || rc=$?
echo
echo "Agent sessions are not built yet: the session log, sandboxes, the model client and the"
echo "Managed-Agents-compatible API are later issues (see the status table in README.md)."
exit $rc
