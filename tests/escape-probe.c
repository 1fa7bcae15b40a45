/* tests/escape-probe: what a hostile agent would try from inside a sandbox. Static, so it runs
 * in any root. Each attempt prints one line "<name> <result>", where result is "ok" when the
 * attempt worked (a hole) or the errno name that stopped it; tests/test_sandbox.c says which
 * layer each refusal belongs to.
 *
 *   escape-probe HOST_PID HOST_PORT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
	if (rc >= 0)
		printf("%s ok\n", name);
	else
		printf("%s %s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: escape-probe HOST_PID HOST_PORT\n");
		return 2;
	}
	pid_t host_pid = (pid_t)atoi(argv[1]);
	int port = atoi(argv[2]);

	union bpf_attr attr = {
		.map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1
	};
	report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
	struct perf_event_attr pe = { .type = PERF_TYPE_SOFTWARE,
				      .size = sizeof(pe),
				      .config = PERF_COUNT_SW_CPU_CLOCK };
	report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
	report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
	report("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
	char params[120] = { 0 };
	report("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
	mkdir("/tmp/m", 0755);
	report("mount", mount("tmpfs", "/tmp/m", "tmpfs", 0, NULL));
	char handle[64] = { 0 };
	((unsigned *)handle)[0] = 8;
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
	report("mknod", mknod("/tmp/null2", S_IFCHR | 0666, makedev(1, 3)));
	int pt = posix_openpt(O_RDWR | O_NOCTTY);
	report("TIOCSTI", pt < 0 ? -1 : ioctl(pt, TIOCSTI, "x"));
	report("unshare", unshare(CLONE_NEWUSER));
	report("ptrace", ptrace(PTRACE_ATTACH, 1, 0, 0));
	report("kill_host_pid", kill(host_pid, 0));
	report("host_shadow", open("/proc/1/root/etc/shadow", O_RDONLY));
	report("proc_sys_write", open("/proc/sys/kernel/hostname", O_WRONLY));
	struct statvfs sv;
	if (statvfs("/proc/sys", &sv) == 0 && (sv.f_flag & ST_RDONLY))
		errno = EROFS;
	report("proc_sys_mount", statvfs("/proc/sys", &sv) < 0 || (sv.f_flag & ST_RDONLY) ? -1 : 0);
	report("cgroup_write", open("/sys/fs/cgroup/cgroup.procs", O_WRONLY));
	report("chroot", chroot("/tmp"));
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	report("host_loopback", s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof(a)));
	return 0;
}
