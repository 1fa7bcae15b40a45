#!/usr/bin/env bash
# In a copy of the source tree, with CONFIG_CORRAL_IO_URING off: the tree builds without
# liburing, and the session log, now written with pwrite+fdatasync, passes every one of its
# unit tests (framing, recovery, fencing, concurrency, faults and the crash test). The log's
# contract must not depend on which writer a build has.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
for tool in make kconfig-conf kconfig-tweak; do
	command -v $tool >/dev/null || skip "$tool is not installed (scripts/deps.sh)"
done

src=$TMP/src
copy_tree "$src"
cd "$src"

run -t 60 "${CLEAN_MAKE[@]}" defconfig
expect_rc 0 "make defconfig"
kconfig-tweak --file .config --disable CORRAL_IO_URING
run -t 60 "${CLEAN_MAKE[@]}" olddefconfig
expect_rc 0 "make olddefconfig"
grep -qx '# CONFIG_CORRAL_IO_URING is not set' .config || fail ".config: io_uring is still on"

run -t 300 "${CLEAN_MAKE[@]}" -j2 all build/tests/unit
if [ $rc != 0 ]; then
	printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
	fail "make with io_uring off: exit status $rc"
fi
if grep -Eq '^#define CONFIG_CORRAL_IO_URING( |$)' include/generated/autoconf.h; then
	fail "autoconf.h still defines CONFIG_CORRAL_IO_URING"
fi
if command -v ldd >/dev/null; then
	for p in build/corral build/corrald build/tests/unit; do
		expect_no_match 'liburing' "$(ldd $p)" "$p links liburing with io_uring off"
	done
fi

# The log's tests, one job at a time as tests/run-unit.sh would on a busy machine.
run -t 300 build/tests/unit --jobs 1 --filter 'log*/*'
if [ $rc != 0 ]; then
	printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
	fail "log unit tests with io_uring off: exit status $rc"
fi
summary=$(printf '%s\n' "$OUT" "$ERR" | grep -E '^unit: ' | tail -n 1)
[[ $summary =~ ^unit:\ ([0-9]+)\ passed,\ 0\ failed ]] || fail "no clean summary: $summary"
[ "${BASH_REMATCH[1]}" -ge 20 ] || fail "only ${BASH_REMATCH[1]} log tests ran: $summary"
echo "io_uring off: $summary"
