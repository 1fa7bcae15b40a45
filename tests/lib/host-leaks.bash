# tests/lib/host-leaks.bash: what a test run may leave on the host, checked by the runners.
# Sourced. leaks_snapshot records what is there before the tests; leaks_check TAG reports (as
# "TAG: leaked ...") and removes what appeared since: cgroups of the tests and benchmarks (and
# the default corral subtree), cr- network interfaces, loop devices, mounts whose mount point
# names corral, processes of corral and of the baselines it runs, and temporary directories.
# leaks_check returns 1 when anything leaked. Only what is new counts: another run's leftovers
# on a shared machine are not ours to judge.

leaks__cgroup2() {
	awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

leaks__cgroups() {
	local m
	m=$(leaks__cgroup2)
	[ -n "$m" ] || return 0
	ls -d "$m"/corral "$m"/corral-test-* "$m"/corral-probe-* "$m"/corral-bench-* 2>/dev/null
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

leaks__procs() {
	# pid and name; the runner's own shells are bash and never match. Zombies are not counted:
	# bwrap's inner process, orphaned when the outer one exits, is reaped by the host's init a
	# moment later.
	ps -eo pid=,stat=,comm= |
		awk '$2 !~ /^Z/ && $3 ~ /^(corral-init|corrald|corral|corral-fake-api|bwrap|crun)$/ { print $1 " " $3 }'
}

leaks__tmp() {
	local d
	for d in /tmp/corral-test-* /tmp/corral-itest-*; do
		[ -e "$d" ] && [[ $d != /tmp/corral-itest-log.* ]] && echo "$d"
	done
	return 0
}

leaks_snapshot() {
	leaks_before_cgroups=$(leaks__cgroups)
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
	for x in $(leaks__new "$leaks_before_veths" "$(leaks__veths)"); do
		echo "$tag: leaked network interface $x"
		command -v ip >/dev/null && ip link delete "$x"
		rc=1
	done
	for x in $(leaks__new "$leaks_before_loops" "$(leaks__loops)"); do
		echo "$tag: leaked loop device $x"
		losetup -d "$x"
		rc=1
	done
	for x in $(leaks__new "$leaks_before_mounts" "$(leaks__mounts)"); do
		echo "$tag: leaked mount $x"
		umount -l "$x"
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
	return $rc
}
