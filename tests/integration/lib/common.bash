# shellcheck shell=bash disable=SC2034 # variables here are for the tests that source it
# Shared by the tests in tests/integration/ (sourced, never run on its own). Gives a test:
#   $CORRAL_BUILD, $CORRAL, $CORRALD, $CORRAL_INIT, $SRC (the source tree), $TMP (a fresh
#   directory, removed on exit), and cleanup on exit of every process registered with
#   track_pid / track_pgroup;
#   fail MSG / skip REASON; run [-t SECS] CMD... (bounded; sets $rc, $OUT, $ERR);
#   expect_rc WANT WHAT; expect_match REGEX TEXT WHAT; wait_for SECS CMD...;
#   wait_exit PID SECS (sets $rc); need_sdk (the pinned official TypeScript SDK in $sdk).
# Tests run under tests/run-integration.sh, which bounds each one to 120 s as well.

set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CORRAL_BUILD=${CORRAL_BUILD:-$(pwd)/build}
CORRAL=$CORRAL_BUILD/corral
CORRALD=$CORRAL_BUILD/corrald
CORRAL_INIT=$CORRAL_BUILD/corral-init
TEST_NAME=$(basename "$0" .sh)

_pids=()
_pgroups=()
_on_exit=()

_cleanup() {
	local st=$? p
	set +e
	for cmd in "${_on_exit[@]}"; do
		eval "$cmd"
	done
	for p in "${_pgroups[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null
	done
	for p in "${_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${TMP:-}" ] && rm -rf "$TMP"
	exit $st
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

TMP=$(mktemp -d "${TMPDIR:-/tmp}/corral-itest-$TEST_NAME.XXXXXX")

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "$*"
	exit 77
}

# Runs a shell command (a string) on exit, before processes are killed and $TMP is removed.
on_exit() {
	_on_exit+=("$1")
}

track_pid() {
	_pids+=("$1")
}

# A process group (by its leader's pid) to SIGKILL on exit.
track_pgroup() {
	_pgroups+=("$1")
}

need_program() {
	[ -x "$1" ] || fail "$1 is missing or not executable (build first: make; CORRAL_BUILD=$CORRAL_BUILD)"
}

# run [-t SECS] CMD...: runs CMD with stdin from /dev/null, bounded by a timeout (default
# 30 s). Sets rc (exit status), OUT (stdout) and ERR (stderr); fails the test on a timeout.
run() {
	local secs=30
	if [ "$1" = -t ]; then
		secs=$2
		shift 2
	fi
	set +e
	timeout -k 5 "$secs" "$@" >"$TMP/.out" 2>"$TMP/.err" </dev/null
	rc=$?
	set -e
	OUT=$(cat "$TMP/.out")
	ERR=$(cat "$TMP/.err")
	if [ $rc -eq 124 ]; then
		fail "timed out after $secs s: $*"
	fi
	# In a sanitized build (build-asan) a report fails the test whatever the exit status.
	if grep -Eq '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|: runtime error: ' "$TMP/.err"; then
		printf '%s\n' "--- stderr:" "$ERR" >&2
		fail "sanitizer report from: $*"
	fi
	return 0
}

# expect_rc WANT WHAT: the last run's exit status must be WANT.
expect_rc() {
	if [ "$rc" != "$1" ]; then
		printf '%s\n' "--- stdout:" "$OUT" "--- stderr:" "$ERR" >&2
		fail "$2: exit status $rc, want $1"
	fi
}

# expect_match EREGEX TEXT WHAT
expect_match() {
	grep -Eq -- "$1" <<<"$2" || {
		printf '%s\n' "--- text:" "$2" >&2
		fail "$3: no match for /$1/"
	}
}

# expect_no_match EREGEX TEXT WHAT
expect_no_match() {
	if grep -Eq -- "$1" <<<"$2"; then
		printf '%s\n' "--- text:" "$2" >&2
		fail "$3: unexpected match for /$1/"
	fi
}

# wait_for SECS CMD...: polls CMD every 0.05 s until it succeeds; returns 1 after SECS.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# Whether PID (a child of this shell) has exited, i.e. is a zombie or gone.
# The pinned official TypeScript SDK, installed once per build directory (again when the lock
# file changes) by scripts/sdk.sh into $CORRAL_BUILD/sdk; sets $sdk.
need_sdk() {
	command -v node >/dev/null && command -v npm >/dev/null ||
		fail "node and npm are needed (scripts/deps.sh installs them)"
	sdk=$CORRAL_BUILD/sdk
	run -t 300 "$SRC/scripts/sdk.sh" "$sdk"
	expect_rc 0 "installing the pinned SDK: $ERR"
}

_exited() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}

# wait_exit PID SECS: waits at most SECS for the background child PID; sets rc to its exit
# status, or fails the test when it is still running.
wait_exit() {
	wait_for "$2" _exited "$1" || fail "process $1 still running after $2 s"
	set +e
	{ wait "$1"; } 2>/dev/null # (not bash's "Killed" notice)
	rc=$?
	set -e
}

# copy_tree DEST: copies the source tree as git sees it (tracked files plus untracked ones
# that are not ignored, so work in progress is included; never build output or .config)
# to DEST, for tests that configure and build.
copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# Files deleted in the working tree but still in the index are skipped.
		git -C "$SRC" ls-files -z --cached --others --exclude-standard |
			(cd "$SRC" && while IFS= read -r -d '' f; do
				if [ -e "$f" ]; then printf '%s\0' "$f"; fi
			done) | (cd "$SRC" && cpio -pdm0 --quiet "$dest")
	else
		tar -C "$SRC" --exclude=./build --exclude=./build-asan --exclude=./.config \
			--exclude=./.config.old --exclude=./include/config --exclude=./include/generated \
			--exclude=./.cache -cf - . | tar -C "$dest" -xf -
	fi
	[ -f "$dest/Makefile" ] && [ -f "$dest/Kconfig" ] || fail "copy of the source tree in $dest is incomplete"
}

# A make command that ignores the make running the test suite (its jobserver, flags and O=):
# "${CLEAN_MAKE[@]}" TARGET..., also under run.
CLEAN_MAKE=(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u O -u V -u KCONFIG_CONFIG
	-u KCONFIG_AUTOCONFIG -u KCONFIG_AUTOHEADER -u KCONFIG_TRISTATE -u KCONFIG_ALLCONFIG make)

# build_with_option_off OPTION LIB: in a fresh copy of the tree at $TMP/src (which becomes the
# working directory), turns CONFIG_<OPTION> off and builds the programs and the unit tests;
# fails unless .config and autoconf.h say it is off and no program links lib<LIB>. Skips
# without the kconfig tools.
build_with_option_off() {
	local opt=$1 lib=$2 p
	for p in make kconfig-conf kconfig-tweak; do
		command -v $p >/dev/null || skip "$p is not installed (scripts/deps.sh)"
	done
	copy_tree "$TMP/src"
	cd "$TMP/src"
	run -t 60 "${CLEAN_MAKE[@]}" defconfig
	expect_rc 0 "make defconfig"
	kconfig-tweak --file .config --disable "$opt"
	run -t 60 "${CLEAN_MAKE[@]}" olddefconfig
	expect_rc 0 "make olddefconfig"
	grep -qx "# CONFIG_$opt is not set" .config || fail ".config: $opt is still on"
	run -t 300 "${CLEAN_MAKE[@]}" -j2 all build/tests/unit
	if [ "$rc" != 0 ]; then
		printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
		fail "make with $opt off: exit status $rc"
	fi
	if grep -Eq "^#define CONFIG_$opt( |\$)" include/generated/autoconf.h; then
		fail "autoconf.h still defines CONFIG_$opt"
	fi
	if command -v ldd >/dev/null; then
		for p in build/corral build/corrald build/tests/unit; do
			expect_no_match "$lib" "$(ldd $p)" "$p links $lib with $opt off"
		done
	fi
}

# unit_tests_pass FILTER MIN: runs the unit tests matching FILTER (in the current tree's
# build/) one at a time; fails unless all pass and at least MIN of them ran.
unit_tests_pass() {
	run -t 300 build/tests/unit --jobs 1 --filter "$1"
	if [ "$rc" != 0 ]; then
		printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
		fail "unit tests $1: exit status $rc"
	fi
	local summary
	summary=$(printf '%s\n' "$OUT" "$ERR" | grep -E '^unit: ' | tail -n 1)
	[[ $summary =~ ^unit:\ ([0-9]+)\ passed,\ 0\ failed ]] || fail "$1: no clean summary: $summary"
	[ "${BASH_REMATCH[1]}" -ge "$2" ] || fail "$1: only ${BASH_REMATCH[1]} tests ran: $summary"
	echo "$1: $summary"
}
