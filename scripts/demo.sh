#!/usr/bin/env bash
# The README's main job: installs the build dependencies, builds corral, says which kernel
# layers work here, then runs a real agent session end to end. It starts corrald with its state
# under ./demo/ (the session log, the API's store, the sandboxes' workspaces), and the local
# Messages API server (corral-fake-api) with a scripted scenario, and runs
#   corral run "Create a small project with a test, run it, and fix what fails."
# which prints the conversation as it happens: the agent writes two files in its sandbox, runs
# the tests with bash, fixes the failing one with edit, runs them again and finishes.
# With ANTHROPIC_API_KEY set (and the API reachable), the same session uses the real model.
# Everything it started is stopped at the end; ./demo/ stays, for `corral sessions list`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
make -j"$(nproc)"
echo
echo "== corral doctor: which kernel enforcement layers work on this machine =="
./build/corral doctor || true
echo

dir=$PWD/demo
mkdir -p -m 700 "$dir"
sock=$dir/corrald.sock
key=$dir/model-key
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

args=()
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
	echo "== the real Messages API (ANTHROPIC_API_KEY is set) =="
	(umask 077 && printf '%s\n' "$ANTHROPIC_API_KEY" >"$key")
	model=${CORRAL_MODEL:-claude-sonnet-4-5}
else
	echo "== the local Messages API server with a scripted scenario (configs/scenarios/demo.json) =="
	(umask 077 && printf 'sk-corral-demo-local\n' >"$key")
	rm -f "$dir/fake-api.port"
	./build/corral-fake-api --scenario configs/scenarios/demo.json --first-token-ms 300 \
		--token-rate 200 --port-file "$dir/fake-api.port" >/dev/null 2>"$dir/fake-api.log" &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$dir/fake-api.port" ] && break; sleep 0.05; done
	args+=(--model-base-url "http://127.0.0.1:$(cat "$dir/fake-api.port")")
	model=claude-sonnet-4-5
fi

./build/corrald --state-dir "$dir" --socket "$sock" --model-key-file "$key" "${args[@]}" \
	2>"$dir/corrald.log" &
pids+=($!)
for _ in $(seq 200); do grep -q '^corrald: serving' "$dir/corrald.log" && break; sleep 0.05; done
grep -q '^corrald: serving' "$dir/corrald.log" || {
	cat "$dir/corrald.log" >&2
	exit 1
}
grep '^corrald: serving' "$dir/corrald.log"
echo

rc=0
CORRAL_SOCKET=$sock ./build/corral run --model "$model" \
	"Create a small project with a test, run it, and fix what fails." || rc=$?
# Archived, the session keeps its events but not its sandbox: nothing runs on after the demo.
sid=$(CORRAL_SOCKET=$sock ./build/corral sessions list --limit 1 --format jsonl |
	sed -n 's/.*"id" *: *"\(sesn_[a-z0-9]*\)".*/\1/p' | head -1)
[ -n "$sid" ] && CORRAL_SOCKET=$sock ./build/corral sessions archive "$sid" >/dev/null
echo
echo "Session $sid stays in the log under $dir. To look at it,"
echo "start corrald on that state again and run: corral sessions:events list --session-id $sid"
exit $rc
