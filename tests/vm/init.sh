#!/bin/sh
# PID 1 of the test VM (busybox sh). Mounts what the kernel tests need, loads the modules
# scripts/vmtest.sh packed, runs each step, prints "vm: N passed, N failed" and the
# CORRAL-VM-EXIT=<status> line the host reads, and powers off. In here CORRAL_VM=1: a test
# that needs a kernel feature must run, never skip.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/ CORRAL_VM=1 CORRAL_BUILD=/corral

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
ip link set lo up

pass=0
fail=0
step() {
	name=$1
	shift
	echo "vm: RUN  $name"
	"$@"
	rc=$?
	if [ $rc = 0 ]; then
		pass=$((pass + 1))
		echo "vm: PASS $name"
	else
		fail=$((fail + 1))
		echo "vm: FAIL $name (exit $rc)"
	fi
}

load_modules() {
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "/lib/modules/$m" || { echo "insmod $m failed"; return 1; }
	done < /lib/modules/load
}

# Every layer must be present on Debian's stock kernel, BPF LSM included.
doctor() {
	/corral/corral doctor --require \
		namespaces,seccomp,cgroup2,cgroup_limits,bpf_lsm,cgroup_bpf,io_uring,landlock
}

# Criterion counts a test as passed before LeakSanitizer reports at the worker's exit, and the
# exit status stays 0: a sanitizer report anywhere fails the step.
unit() {
	/corral/tests/unit --jobs 1 --color=never >/tmp/unit.log 2>&1
	rc=$?
	cat /tmp/unit.log
	if grep -qE 'SUMMARY: [A-Za-z]+Sanitizer|runtime error: |Sanitizer has encountered a fatal error' /tmp/unit.log; then
		echo "a sanitizer reported an error"
		return 1
	fi
	return $rc
}

no_leaked_cgroups() {
	leaked=$(ls -d /sys/fs/cgroup/corral-* 2>/dev/null)
	[ -z "$leaked" ] || { echo "leaked cgroups: $leaked"; return 1; }
}

no_leaked_veths() {
	leaked=$(ls /sys/class/net | grep '^cr-')
	[ -z "$leaked" ] || { echo "leaked network interfaces: $leaked"; return 1; }
}

echo "vm: kernel $(uname -r); LSMs: $(cat /sys/kernel/security/lsm)"
step modules load_modules
step doctor doctor
step unit unit
step no-leaked-cgroups no_leaked_cgroups
step no-leaked-veths no_leaked_veths

if [ $fail -gt 0 ]; then
	echo "vm: the kernel's last messages:"
	dmesg | tail -n 25 | sed 's/^/vm: dmesg: /'
fi
echo "vm: $pass passed, $fail failed"
echo "CORRAL-VM-EXIT=$fail"
sync
poweroff -f
