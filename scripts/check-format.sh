#!/usr/bin/env bash
# Checks that the C sources follow .clang-format ("make format" fixes them).
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -d "" files < <(find util cgroups bpf bench runtime log vault cli daemon init fakeapi include/corral tests \
	-name '*.[ch]' -print0 2>/dev/null | sort -z)
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
	printf 'format: needs "make format": %s\n' "${bad[@]}"
	echo "format: $((${#files[@]} - ${#bad[@]})) passed, ${#bad[@]} failed"
	exit 1
fi
echo "format: ${#files[@]} passed, 0 failed"
