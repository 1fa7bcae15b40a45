#!/usr/bin/env bash
# Installs the official TypeScript SDK (@anthropic-ai/sdk, the version pinned in
# tests/sdk/package.json and package-lock.json) from npm's registry into DIR/node_modules, with
# "npm ci". Does nothing when DIR already holds that lock file's install. Used by "make sdk",
# the API tests and "corral bench model" (which looks for it in sdk/ beside the corral program).
#   scripts/sdk.sh DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/sdk.sh DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)/tests/sdk
dir=$1
command -v npm >/dev/null || { echo "sdk: npm is needed (scripts/deps.sh installs it)" >&2; exit 1; }
if cmp -s "$src/package-lock.json" "$dir/package-lock.json" &&
	[ -d "$dir/node_modules/@anthropic-ai/sdk" ]; then
	exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
if ! npm ci --prefix "$dir" --no-audit --no-fund >"$dir/npm.log" 2>&1; then
	echo "sdk: npm ci of the pinned SDK failed (is the npm registry reachable?):" >&2
	tail -5 "$dir/npm.log" >&2
	rm -rf "$dir/node_modules" "$dir/package-lock.json"
	exit 1
fi
