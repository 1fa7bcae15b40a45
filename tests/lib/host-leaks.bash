# tests/lib/host-leaks.bash: what a test run may leave on the host, checked by the runners.
# Sourced. Several runs may share a machine, so a run judges only what it can tell is its own:
#
#   leaks_init      gives the run a tag (CORRAL_TEST_RUN, exported; tests put it in the names
#                   of their cgroups, and every process they start inherits it) and a private
#                   TMPDIR (exported; the tests' temporary files go there);
#   leaks_snapshot  records what is there before a test (or the whole run);
#   leaks_check TAG reports as "TAG: leaked ..." what appeared since and returns 1 if anything
#                   did. The run's own leftovers are removed: cgroups with its tag, processes
#                   of corral (corral-init, corrald, corral, corral-fake-api) or of the
#                   baselines (bwrap, crun) that carry its tag in their environment, files in
#                   its TMPDIR. What it cannot attribute (a new corral, corral-probe-* or
#                   corral-bench-* cgroup, cr- interface, loop device, mount naming corral) is
#                   reported only: it may be another run's, in use;
#   leaks_finish    removes the private TMPDIR.

leaks_init() {
	export CORRAL_TEST_RUN=${CORRAL_TEST_RUN:-$$$RANDOM}
	# short: sandboxes under it need room for a control socket path (108 bytes)
	leaks_tmp=$(mktemp -d /tmp/crr.XXXXXX)
	chmod 0755 "$leaks_tmp" # (tests that drop to another uid reach their directories below)
	export TMPDIR=$leaks_tmp
}

leaks_finish() {
	[ -n "${leaks_tmp:-}" ] && rm -rf "$leaks_tmp"
	return 0
}

leaks__cgroup2() {
	awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

# The run's own groups.
leaks__cgroups() {
	local m
	m=$(leaks__cgroup2)
	[ -n "$m" ] || return 0
	ls -d "$m/corral-test-$CORRAL_TEST_RUN-"* 2>/dev/null
	return 0
}

# Groups of corral's that no run's tag names.
leaks__other_cgroups() {
	local m
	m=$(leaks__cgroup2)
	[ -n "$m" ] || return 0
	# (the sandboxes a test's corrald or hands made sit in corral/)
	ls -d "$m"/corral "$m"/corral/sbx_* "$m"/corral-probe-* "$m"/corral-bench-* 2>/dev/null
	return 0
}

leaks__veths() {
	local v
	for v in /sys/class/net/cr-*; do
		[ -e "$v" ] && echo "${v##*/}"
	done
	return 0
}

leaks__loops() {
	losetup -a 2>/dev/null | cut -d: -f1
}

leaks__mounts() {
	awk '$5 ~ /corral/ { print $5 }' /proc/self/mountinfo
}

# pid and name of the run's processes of corral and the baselines. Zombies are not counted:
# bwrap's inner process, orphaned when the outer one exits, is reaped by the host's init a
# moment later.
leaks__procs() {
	local pid name
	ps -eo pid=,stat=,comm= |
		awk '$2 !~ /^Z/ && $3 ~ /^(corral-init|corrald|corral|corral-fake-api|bwrap|crun)$/ {
			print $1, $3 }' |
		while read -r pid name; do
			tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
				grep -qx "CORRAL_TEST_RUN=$CORRAL_TEST_RUN" && echo "$pid $name"
		done
	return 0
}

leaks__tmp() {
	local d
	[ -n "${leaks_tmp:-}" ] || return 0
	for d in "$leaks_tmp"/* "$leaks_tmp"/.[!.]*; do
		[ -e "$d" ] && echo "$d"
	done
	return 0
}

leaks_snapshot() {
	leaks_before_cgroups=$(leaks__cgroups)
	leaks_before_other=$(leaks__other_cgroups)
	leaks_before_veths=$(leaks__veths)
	leaks_before_loops=$(leaks__loops)
	leaks_before_mounts=$(leaks__mounts)
	leaks_before_procs=$(leaks__procs)
	leaks_before_tmp=$(leaks__tmp)
}

# The lines of $2 that are not in $1.
leaks__new() {
	local line
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		grep -qxF -- "$line" <<<"$1" || printf '%s\n' "$line"
	done <<<"$2"
}

# leaks__report TAG WHAT UNDONE BEFORE NOW: reports what is in NOW and not in BEFORE, leaving
# it alone (it may be another run's); returns 1 if anything is.
leaks__report() {
	local x rc=0
	for x in $(leaks__new "$4" "$5"); do
		echo "$1: leaked $2 $x (or another run's: not $3)"
		rc=1
	done
	return $rc
}

leaks_check() {
	local tag=$1 rc=0 x
	for x in $(leaks__new "$leaks_before_cgroups" "$(leaks__cgroups)"); do
		echo "$tag: leaked cgroup $x"
		find "$x" -depth -type d | while read -r d; do
			echo 1 >"$d/cgroup.kill" 2>/dev/null
			sleep 0.1
			rmdir "$d"
		done
		rc=1
	done
	while IFS= read -r x; do
		[ -n "$x" ] || continue
		echo "$tag: leaked process ${x#* } (pid ${x%% *})"
		kill -KILL "${x%% *}" 2>/dev/null
		rc=1
	done < <(leaks__new "$leaks_before_procs" "$(leaks__procs)")
	for x in $(leaks__new "$leaks_before_tmp" "$(leaks__tmp)"); do
		echo "$tag: leaked temporary file $x"
		rm -rf "$x"
		rc=1
	done
	# not attributable: reported, left alone
	leaks__report "$tag" "cgroup" "removed" "$leaks_before_other" "$(leaks__other_cgroups)" || rc=1
	leaks__report "$tag" "network interface" "removed" "$leaks_before_veths" "$(leaks__veths)" ||
		rc=1
	leaks__report "$tag" "loop device" "detached" "$leaks_before_loops" "$(leaks__loops)" || rc=1
	leaks__report "$tag" "mount" "unmounted" "$leaks_before_mounts" "$(leaks__mounts)" || rc=1
	return $rc
}
