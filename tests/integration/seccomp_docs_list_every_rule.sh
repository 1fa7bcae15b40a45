#!/usr/bin/env bash
# docs/seccomp.md lists every rule of runtime/seccomp.c's table, with its number and action,
# and no rule the table does not have: the page is what the kernel enforces.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"

code=$SRC/runtime/seccomp.c
doc=$SRC/docs/seccomp.md
[ -f "$code" ] && [ -f "$doc" ] || skip "no source tree at $SRC"

# Rows of the table in the code: DENY(name, ...) and { SC(name), ... } entries (not the
# macros themselves, whose parameter is "name").
mapfile -t rules < <(grep -oE '(DENY|SC)\([a-z0-9_]+' "$code" | sed -E 's/^(DENY|SC)\(//' | grep -vx name)
[ ${#rules[@]} -gt 50 ] || fail "found only ${#rules[@]} rules in $code"
# Rows of the tables in the page: | `name` | nr | action | ...
mapfile -t rows < <(grep -oE '^\| `[a-z0-9_]+` \| [0-9]+ \| (\*\*)?(EPERM|ENOSYS)' "$doc")
[ ${#rows[@]} = ${#rules[@]} ] ||
	fail "$doc has ${#rows[@]} rule rows, $code has ${#rules[@]} rules"

for name in "${rules[@]}"; do
	grep -qE "^\| \`$name\` \|" "$doc" || fail "$doc has no row for $name"
done
for row in "${rows[@]}"; do
	name=$(sed -E 's/^\| `([a-z0-9_]+)`.*/\1/' <<<"$row")
	printf '%s\n' "${rules[@]}" | grep -qx "$name" || fail "$doc lists $name, which has no rule"
	nr=$(sed -E 's/^[^|]*\| [^|]*\| ([0-9]+) .*/\1/' <<<"$row")
	want=$(printf '#include <sys/syscall.h>\n#ifndef __NR_%s\n#define __NR_%s -1\n#endif\n__NR_%s\n' \
		"$name" "$name" "$name" | cpp -P - 2>/dev/null | tail -n 1 | tr -d ' ')
	[ "$want" = -1 ] || [ "$want" = "$nr" ] || fail "$doc: $name is $nr, the headers say $want"
	case $name in
	clone3) expect_match 'ENOSYS' "$row" "$doc: clone3's action" ;;
	*) expect_match 'EPERM' "$row" "$doc: $name's action" ;;
	esac
done
echo "docs/seccomp.md lists all ${#rules[@]} rules"
