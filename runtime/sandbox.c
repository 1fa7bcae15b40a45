/* runtime/sandbox: creates, watches and destroys sandboxes (see include/corral/sandbox.h).
 *
 * The parent prepares everything (directories, the cgroup, the mount plan, file contents, the
 * environment), then clone3()s the child straight into new namespaces and the cgroup. The child
 * only makes system calls on what the parent prepared (no malloc: the parent may be threaded),
 * reports a failure as text on a close-on-exec pipe, and otherwise ends in execve() of
 * corral-init. It must never touch the host's mount namespace (everything it mounts is in its
 * own, made a slave of the host's first) and never keep a capability, host uid or host fd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/id.h"
#include "corral/kconfig.h"
#include "corral/net.h"
#include "corral/sandbox.h"
#include "corral/seccomp.h"

#define INIT_IN_SANDBOX "/.corral/init"
#define SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ENV_MAX 64

void cr_sandbox_config_init(struct cr_sandbox_config *cfg)
{
	*cfg = (struct cr_sandbox_config){ .stdio = { -1, -1, -1 } };
}

struct cr_sandbox {
	char id[CR_SANDBOX_ID_MAX];
	char *dir, *workspace, *cgroup;
	pid_t pid;
	int pidfd;
	bool reaped;
	int status;
	bool has_veth;
	struct cr_veth veth;
	bool own_workspace; /* the workspace is <dir>/workspace, removed with the sandbox */
	bool not_child; /* found again with cr_sandbox_open: not ours to wait for */
};

const struct cr_veth *cr_sandbox_veth(const struct cr_sandbox *sb)
{
	return sb->has_veth ? &sb->veth : NULL;
}

const char *cr_sandbox_id(const struct cr_sandbox *sb)
{
	return sb->id;
}

pid_t cr_sandbox_pid(const struct cr_sandbox *sb)
{
	return sb->pid;
}

const char *cr_sandbox_cgroup(const struct cr_sandbox *sb)
{
	return sb->cgroup;
}

const char *cr_sandbox_dir(const struct cr_sandbox *sb)
{
	return sb->dir;
}

const char *cr_sandbox_workspace(const struct cr_sandbox *sb)
{
	return sb->workspace;
}

/* The address of the control socket in directory dir, reached through dfd (an O_PATH fd of
 * dir, owned by the caller): a path through /proc/self/fd, so that a state directory of any
 * length fits in sun_path's 108 bytes. */
static int control_addr(const char *dir, int *ret_dfd, struct sockaddr_un *a, struct cr_error *err)
{
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cr_error_errno(err, errno, "open %s", dir);
	*a = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/control.sock", dfd);
	*ret_dfd = dfd;
	return 0;
}

int cr_sandbox_connect(const struct cr_sandbox *sb, struct cr_error *err)
{
	struct sockaddr_un a;
	_cleanup_close_ int dfd = -1;
	int r = control_addr(sb->dir, &dfd, &a, err);
	if (r < 0)
		return r == -ENOENT ? -ENOENT : r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cr_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return cr_error_errno(err, errno, "connect to sandbox %s (%s/control.sock)", sb->id,
				      sb->dir);
	return TAKE_FD(fd);
}

/* --- the mount plan ------------------------------------------------------------------------ */

static const char *const op_names[] = {
	[CR_MNT_TMPFS] = "tmpfs",     [CR_MNT_BIND_RO] = "ro-bind",
	[CR_MNT_BIND_RW] = "bind",    [CR_MNT_DEV_BIND] = "dev-bind",
	[CR_MNT_SYMLINK] = "symlink", [CR_MNT_DIR] = "dir",
	[CR_MNT_FILE] = "file",	      [CR_MNT_PROC] = "proc",
	[CR_MNT_DEVPTS] = "devpts",   [CR_MNT_MASK] = "mask",
	[CR_MNT_RO] = "remount-ro",   [CR_MNT_REMOUNT_RO] = "root-ro",
};

const char *cr_mount_op_name(enum cr_mount_op op)
{
	return (size_t)op < CR_ARRAY_SIZE(op_names) ? op_names[op] : "?";
}

void cr_mount_plan_free(struct cr_mount_plan *plan)
{
	for (size_t i = 0; i < plan->nowned; i++)
		free(plan->owned[i]);
	free(plan->owned);
	free(plan->ops);
	*plan = (struct cr_mount_plan){ 0 };
}

static const char *keep(struct cr_mount_plan *p, char *s)
{
	if (!s)
		return NULL;
	if (p->nowned == p->owned_cap) {
		size_t cap = p->owned_cap ? p->owned_cap * 2 : 16;
		char **o = reallocarray(p->owned, cap, sizeof(*o));
		if (!o) {
			free(s);
			return NULL;
		}
		p->owned = o;
		p->owned_cap = cap;
	}
	p->owned[p->nowned++] = s;
	return s;
}

static int add(struct cr_mount_plan *p, enum cr_mount_op op, const char *src, const char *dst,
	       const char *data, bool optional)
{
	if (!dst)
		return -ENOMEM;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct cr_mount *o = reallocarray(p->ops, cap, sizeof(*o));
		if (!o)
			return -ENOMEM;
		p->ops = o;
		p->cap = cap;
	}
	p->ops[p->n++] = (struct cr_mount){ op, src, dst, data, optional };
	return 0;
}

/* The host's top-level system directories: symlinks stay symlinks (merged /usr), directories
 * are bound read-only. */
static int add_host_system(struct cr_mount_plan *p)
{
	static const char *const dirs[] = { "/usr",   "/bin",	"/sbin",  "/lib",
					    "/lib32", "/lib64", "/libx32" };
	int r = 0;
	for (size_t i = 0; i < CR_ARRAY_SIZE(dirs) && r == 0; i++) {
		struct stat st;
		if (lstat(dirs[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(dirs[i], target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			r = add(p, CR_MNT_SYMLINK, keep(p, strdup(target)), dirs[i], NULL, false);
		} else if (S_ISDIR(st.st_mode)) {
			r = add(p, CR_MNT_BIND_RO, dirs[i], dirs[i], NULL, false);
		}
	}
	return r;
}

/* A generated /etc: who is who, where names resolve, and a few harmless host files the
 * dynamic loader and common tools need. Nothing else of the host's /etc (secrets) is there. */
static int add_etc(struct cr_mount_plan *p, const char *hostname)
{
	static const char *const host_files[] = {
		"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
		"/etc/localtime",   "/etc/ssl/certs",  "/etc/bash.bashrc",  "/etc/mime.types",
	};
	char *hosts = NULL;
	if (asprintf(&hosts, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		     hostname) < 0)
		return -ENOMEM;
	int r = add(p, CR_MNT_DIR, NULL, "/etc", NULL, false);
	r = r
		    ?: add(p, CR_MNT_FILE, NULL, "/etc/passwd",
			   "root:x:0:0:root:/workspace:/bin/bash\n"
			   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			   false);
	r = r ?: add(p, CR_MNT_FILE, NULL, "/etc/group", "root:x:0:\nnogroup:x:65534:\n", false);
	r = r ?: add(p, CR_MNT_FILE, NULL, "/etc/hosts", keep(p, hosts), false);
	r = r ?: add(p, CR_MNT_FILE, NULL, "/etc/hostname", keep(p, strdup(hostname)), false);
	r = r
		    ?: add(p, CR_MNT_FILE, NULL, "/etc/resolv.conf",
			   "# corral: names resolve only through /etc/hosts unless the platform "
			   "says\n"
			   "options timeout:1 attempts:1\n",
			   false);
	r = r
		    ?: add(p, CR_MNT_FILE, NULL, "/etc/nsswitch.conf",
			   "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
			   "networks: files\nprotocols: files\nservices: files\n",
			   false);
	r = r ?: add(p, CR_MNT_DIR, NULL, "/etc/ssl", NULL, false);
	for (size_t i = 0; i < CR_ARRAY_SIZE(host_files) && r == 0; i++)
		r = add(p, CR_MNT_BIND_RO, host_files[i], host_files[i], NULL, true);
	return r;
}

/* An OCI-style rootfs directory: each of its top-level entries bound read-only, except the
 * ones the sandbox makes itself. */
static int add_rootfs(struct cr_mount_plan *p, const char *rootfs)
{
	static const char *const own[] = { "proc", "dev", "sys", "tmp", "workspace", ".corral" };
	_cleanup_closedir_ DIR *d = opendir(rootfs);
	if (!d)
		return -errno;
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool skip = false;
		for (size_t i = 0; i < CR_ARRAY_SIZE(own); i++)
			skip |= strcmp(de->d_name, own[i]) == 0;
		if (skip)
			continue;
		char *src = NULL, *dst = NULL;
		if (asprintf(&src, "%s/%s", rootfs, de->d_name) < 0 ||
		    asprintf(&dst, "/%s", de->d_name) < 0) {
			free(src);
			return -ENOMEM;
		}
		const char *s = keep(p, src), *t = keep(p, dst);
		if (!s || !t)
			return -ENOMEM;
		struct stat st;
		if (lstat(s, &st) < 0)
			return -errno;
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(s, target, sizeof(target) - 1);
			if (n < 0)
				return -errno;
			target[n] = '\0';
			r = add(p, CR_MNT_SYMLINK, keep(p, strdup(target)), t, NULL, false);
		} else {
			r = add(p, CR_MNT_BIND_RO, s, t, NULL, false);
		}
	}
	return r;
}

int cr_mount_plan_build(const struct cr_sandbox_config *cfg, const char *workspace,
			struct cr_mount_plan *ret, struct cr_error *err)
{
	struct cr_mount_plan p = { 0 };
	const char *hostname = cfg->hostname ? cfg->hostname : "sandbox";
	int r;

	if (cfg->rootfs) {
		r = add_rootfs(&p, cfg->rootfs);
		if (r < 0) {
			cr_mount_plan_free(&p);
			return cr_error_errno(err, -r, "rootfs %s", cfg->rootfs);
		}
	} else {
		r = add_host_system(&p);
		r = r ?: add_etc(&p, hostname);
	}
	/* the workspace, scratch space, and the sandbox's PID 1 */
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/workspace", NULL, false);
	r = r ?: add(&p, CR_MNT_BIND_RW, workspace, "/workspace", NULL, false);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/tmp", NULL, false);
	r = r ?: add(&p, CR_MNT_TMPFS, NULL, "/tmp", "mode=1777,size=1g", false);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/var", NULL, true);
	r = r ?: add(&p, CR_MNT_SYMLINK, "/tmp", "/var/tmp", NULL, true);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/run", NULL, true);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/sys", NULL, true); /* empty: sysfs is not mounted */
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/.corral", NULL, false);
	r = r ?: add(&p, CR_MNT_BIND_RO, cfg->init_path, INIT_IN_SANDBOX, NULL, false);
	/* a fresh /proc of the sandbox's pid namespace, with what a container runtime masks */
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/proc", NULL, false);
	r = r ?: add(&p, CR_MNT_PROC, NULL, "/proc", NULL, false);
	static const char *const masked[] = { "/proc/kcore",	     "/proc/keys",
					      "/proc/timer_list",    "/proc/sched_debug",
					      "/proc/latency_stats", "/proc/acpi",
					      "/proc/scsi",	     "/proc/kallsyms" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(masked) && r == 0; i++)
		r = add(&p, CR_MNT_MASK, NULL, masked[i], NULL, true);
	static const char *const ro[] = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
					  "/proc/bus", "/proc/fs" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(ro) && r == 0; i++)
		r = add(&p, CR_MNT_RO, NULL, ro[i], NULL, true);
	/* a minimal /dev: host nodes bound (a user namespace cannot make device nodes) */
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/dev", NULL, false);
	r = r ?: add(&p, CR_MNT_TMPFS, NULL, "/dev", "mode=0755,size=64k", false);
	static const char *const devs[] = { "/dev/null",   "/dev/zero",	   "/dev/full",
					    "/dev/random", "/dev/urandom", "/dev/tty" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(devs) && r == 0; i++)
		r = add(&p, CR_MNT_DEV_BIND, devs[i], devs[i], NULL, false);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/dev/pts", NULL, false);
	r = r
		    ?: add(&p, CR_MNT_DEVPTS, NULL, "/dev/pts",
			   "newinstance,ptmxmode=0666,mode=0620", false);
	r = r ?: add(&p, CR_MNT_SYMLINK, "pts/ptmx", "/dev/ptmx", NULL, false);
	r = r ?: add(&p, CR_MNT_DIR, NULL, "/dev/shm", NULL, false);
	r = r ?: add(&p, CR_MNT_TMPFS, NULL, "/dev/shm", "mode=1777,size=256m", false);
	r = r ?: add(&p, CR_MNT_SYMLINK, "/proc/self/fd", "/dev/fd", NULL, false);
	r = r ?: add(&p, CR_MNT_SYMLINK, "/proc/self/fd/0", "/dev/stdin", NULL, false);
	r = r ?: add(&p, CR_MNT_SYMLINK, "/proc/self/fd/1", "/dev/stdout", NULL, false);
	r = r ?: add(&p, CR_MNT_SYMLINK, "/proc/self/fd/2", "/dev/stderr", NULL, false);
	r = r ?: add(&p, CR_MNT_REMOUNT_RO, NULL, "/", NULL, false);
	if (r < 0) {
		cr_mount_plan_free(&p);
		return cr_error_errno(err, -r, "mount plan");
	}
	*ret = p;
	return 0;
}

/* --- the child ----------------------------------------------------------------------------- */

/* How long the parent waits for the child to reach corral-init's execve. */
#define SETUP_TIMEOUT_MS 30000

struct child {
	const struct cr_mount_plan *plan;
	const char *root; /* host path of the staging directory for the new root */
	const char *hostname;
	char *const *argv; /* for execve of corral-init */
	char *const *envp;
	int sync_fd; /* read: the parent has written the id maps */
	int err_fd; /* write: why the set-up failed (close-on-exec) */
	int parent_fds[2]; /* the parent's ends of those two pipes, closed first */
	int control_fd; /* becomes fd 3, or -1 */
	int stdio[3];
	int *src_fds; /* per plan op: its source opened O_PATH before leaving host uid 0, or -1 */
	const struct sock_fprog *seccomp; /* built by the parent: the child must not allocate */
};

/* Reports "what: strerror(e)" to the parent and exits. Async-signal-safe only. */
static _Noreturn void child_fail(const struct child *c, const char *what, const char *arg, int e)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
			 strerror(e));
	if (n > 0)
		(void)!write(c->err_fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	_exit(127);
}

static int mount_setattr_rec(const char *path, uint64_t set, unsigned flags)
{
	struct mount_attr attr = { .attr_set = set };
	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof(attr));
}

/* An empty file to bind a file (or device node) on. */
static int mknod_file(const char *dst)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* The source of op i as a path the kernel resolves to what was opened as host uid 0
 * (the state directory need not be reachable by the sandbox's uid). */
static const char *src_path(const struct child *c, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", c->src_fds[i]);
	return buf;
}

/* Runs op i with the new root as the working directory (dst relative to it). */
static void run_op(const struct child *c, size_t i)
{
	const struct cr_mount *m = &c->plan->ops[i];
	const char *dst = m->dst[1] ? m->dst + 1 : ".";
	char srcbuf[64];
	const char *src = m->src;
	struct stat st;

	if (m->op == CR_MNT_BIND_RO || m->op == CR_MNT_BIND_RW || m->op == CR_MNT_DEV_BIND) {
		if (c->src_fds[i] < 0) {
			if (m->optional)
				return;
			child_fail(c, "open", m->src, ENOENT);
		}
		src = src_path(c, i, srcbuf, sizeof(srcbuf));
	}
	if (m->optional) {
		if ((m->op == CR_MNT_MASK || m->op == CR_MNT_RO) && lstat(dst, &st) < 0)
			return;
		if (m->op == CR_MNT_SYMLINK || m->op == CR_MNT_DIR) {
			char parent[PATH_MAX];
			snprintf(parent, sizeof(parent), "%s", dst);
			char *slash = strrchr(parent, '/');
			if (slash && stat(slash == parent ? "." : (*slash = '\0', parent), &st) < 0)
				return;
		}
	}
	switch (m->op) {
	case CR_MNT_DIR:
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			child_fail(c, "mkdir", m->dst, errno);
		break;
	case CR_MNT_SYMLINK:
		if (symlink(m->src, dst) < 0 && errno != EEXIST)
			child_fail(c, "symlink", m->dst, errno);
		break;
	case CR_MNT_FILE: {
		int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			child_fail(c, "create", m->dst, errno);
		size_t len = strlen(m->data);
		if (write(fd, m->data, len) != (ssize_t)len)
			child_fail(c, "write", m->dst, errno ? errno : EIO);
		close(fd);
		break;
	}
	case CR_MNT_TMPFS:
		if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, m->data) < 0)
			child_fail(c, "mount tmpfs on", m->dst, errno);
		break;
	case CR_MNT_BIND_RO:
	case CR_MNT_BIND_RW:
	case CR_MNT_DEV_BIND:
		if (fstat(c->src_fds[i], &st) < 0)
			child_fail(c, "stat", m->src, errno);
		if (S_ISDIR(st.st_mode) ? mkdir(dst, 0755) < 0 && errno != EEXIST
					: mknod_file(dst) < 0)
			child_fail(c, "make mount point", m->dst, errno);
		if (mount(src, dst, NULL, m->op == CR_MNT_DEV_BIND ? MS_BIND : MS_BIND | MS_REC,
			  NULL) < 0)
			child_fail(c, "bind", m->src, errno);
		if (m->op == CR_MNT_DEV_BIND)
			break;
		if (m->op == CR_MNT_BIND_RW) {
			if (mount_setattr_rec(dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
					      AT_RECURSIVE) < 0)
				child_fail(c, "nosuid,nodev on", m->dst, errno);
			break;
		}
		/* read-only through every submount, so none of them is a way to write */
		if (mount_setattr_rec(dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
				      AT_RECURSIVE) < 0)
			child_fail(c, "make read-only", m->dst, errno);
		break;
	case CR_MNT_PROC:
		if (mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			child_fail(c, "mount proc on", m->dst, errno);
		break;
	case CR_MNT_DEVPTS:
		if (mount("devpts", dst, "devpts", MS_NOSUID | MS_NOEXEC, m->data) < 0)
			child_fail(c, "mount devpts on", m->dst, errno);
		break;
	case CR_MNT_MASK:
		if (lstat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", dst, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
				  "size=0") < 0)
				child_fail(c, "mask", m->dst, errno);
		} else if (mount("/dev/null", dst, NULL, MS_BIND, NULL) < 0) {
			child_fail(c, "mask", m->dst, errno);
		}
		break;
	case CR_MNT_RO:
		if (mount(dst, dst, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount_setattr_rec(dst, MOUNT_ATTR_RDONLY, AT_RECURSIVE) < 0)
			child_fail(c, "make read-only", m->dst, errno);
		break;
	case CR_MNT_REMOUNT_RO:
		break; /* done after pivot_root, see child_main */
	}
}

static void drop_capabilities(const struct child *c)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		child_fail(c, "clear ambient capabilities", NULL, errno);
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(c, "drop capability from the bounding set", NULL, errno);
	/* With empty bounding and inheritable sets, execve gives even uid 0 no capability. */
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };
	if (syscall(SYS_capget, &h, d) < 0)
		child_fail(c, "capget", NULL, errno);
	d[0].inheritable = d[1].inheritable = 0;
	if (syscall(SYS_capset, &h, d) < 0)
		child_fail(c, "capset", NULL, errno);
}

/* Brings up lo in the sandbox's network namespace: loopback is all it has by default. */
static void loopback_up(const struct child *c)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		child_fail(c, "socket for lo", NULL, errno);
	struct ifreq ifr = { 0 };
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		child_fail(c, "read the flags of", "lo", errno);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		child_fail(c, "bring up", "lo", errno);
	close(fd);
}

/* Every signal's disposition back to the default, while all are blocked (as the parent made
 * them for clone3): a handler of the parent's must never run in the child, which shares its
 * memory until execve. */
static void reset_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} dfl = { 0 }; /* the kernel's struct sigaction: SIG_DFL */
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
}

static _Noreturn void child_main(struct child *c)
{
	char b;
	close(c->parent_fds[0]);
	close(c->parent_fds[1]);
	reset_signals(); /* (while the parent writes the maps) */
	/* the parent writes the uid and gid maps, then one byte (or closes: it failed) */
	if (read(c->sync_fd, &b, 1) != 1)
		_exit(127);
	close(c->sync_fd);
	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		child_fail(c, "sethostname", NULL, errno);
	loopback_up(c);
	/* nothing mounted here may ever reach the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		child_fail(c, "make / a slave mount", NULL, errno);
	/* Still host uid 0 (unmapped here): open every source and enter the new root, since
	 * the state directory is closed to the sandbox's uid. uid=0 makes the root tmpfs the
	 * sandbox root's. */
	for (size_t i = 0; i < c->plan->n; i++) {
		const struct cr_mount *m = &c->plan->ops[i];
		c->src_fds[i] = -1;
		if (m->op == CR_MNT_BIND_RO || m->op == CR_MNT_BIND_RW ||
		    m->op == CR_MNT_DEV_BIND) {
			c->src_fds[i] = open(m->src, O_PATH | O_CLOEXEC);
			if (c->src_fds[i] < 0 && !(m->optional && errno == ENOENT))
				child_fail(c, "open", m->src, errno);
		}
	}
	if (mount("tmpfs", c->root, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=16m,uid=0,gid=0") < 0)
		child_fail(c, "mount the root tmpfs on", c->root, errno);
	if (chdir(c->root) < 0)
		child_fail(c, "chdir", c->root, errno);
	/* uid and gid 0 of the sandbox (uid_base on the host), no supplementary groups. System
	 * calls, not glibc's wrappers: in a threaded parent those signal every other thread to
	 * change its ids too, and wait for any that has not started yet; the child has none of
	 * them, so it would wait forever. */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		child_fail(c, "setgroups", NULL, errno);
	if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)
		child_fail(c, "become uid 0 of the sandbox", NULL, errno);
	for (size_t i = 0; i < c->plan->n; i++)
		run_op(c, i);
	for (size_t i = 0; i < c->plan->n; i++)
		if (c->src_fds[i] >= 0)
			close(c->src_fds[i]);

	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			child_fail(c, "detach the old root", NULL, errno);
	} else if (errno == EINVAL) {
		/* The host runs from its initramfs (rootfs cannot be pivoted away from): move the
		 * new root over / and chroot into it, as runc does there. The old root stays
		 * below, out of reach: the sandbox has no capability and seccomp denies chroot,
		 * mount and pivot_root. */
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
			child_fail(c, "move the new root over /", NULL, errno);
	} else {
		child_fail(c, "pivot_root", c->root, errno);
	}
	if (chdir("/") < 0)
		child_fail(c, "chdir /", NULL, errno);
	if (mount_setattr_rec("/", MOUNT_ATTR_RDONLY, 0) < 0)
		child_fail(c, "make the root read-only", NULL, errno);

	drop_capabilities(c);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(c, "no_new_privs", NULL, errno);

	for (int i = 0; i < 3; i++) {
		int fd = c->stdio[i];
		if (fd < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || dup2(fd, i) < 0)
			child_fail(c, "set up stdio", NULL, errno);
	}
	if (c->control_fd >= 0 && dup2(c->control_fd, 3) < 0)
		child_fail(c, "control socket", NULL, errno);
	int first = c->control_fd >= 0 ? 4 : 3;
	/* nothing of the host survives but the error pipe, which closes on exec */
	if (c->err_fd >= first) {
		if (dup2(c->err_fd, 100) < 0 || fcntl(100, F_SETFD, FD_CLOEXEC) < 0)
			child_fail(c, "move the error pipe", NULL, errno);
		((struct child *)c)->err_fd = 100;
		if (syscall(SYS_close_range, first, 99, 0) < 0 ||
		    syscall(SYS_close_range, 101, ~0U, 0) < 0)
			child_fail(c, "close_range", NULL, errno);
	} else if (syscall(SYS_close_range, first, ~0U, 0) < 0) {
		child_fail(c, "close_range", NULL, errno);
	}
	if (setsid() < 0)
		child_fail(c, "setsid", NULL, errno);
	if (chdir("/workspace") < 0)
		child_fail(c, "chdir /workspace", NULL, errno);
	int e = -cr_seccomp_install(c->seccomp);
	if (e)
		child_fail(c, "seccomp: install the sandbox filter", NULL, e);
	uint64_t none = 0;
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none)) < 0)
		child_fail(c, "unblock signals", NULL, errno);
	execve(INIT_IN_SANDBOX, c->argv, c->envp);
	child_fail(c, "execve", INIT_IN_SANDBOX, errno);
}

/* --- clone3 on a stack of the child's own ------------------------------------------------- */

/* The child shares the parent's memory until its execve (CLONE_VM, as posix_spawn's child
 * does) instead of getting a copy of the parent's page tables that execve throws away at once,
 * with a copy-on-write fault for each page the parent writes meanwhile. Where page-table work
 * is dear (a VM with shadow paging, like this project's CI machine) that copy and those faults
 * were a third of a sandbox's start. Not CLONE_VFORK: the parent writes the child's id maps
 * while the child waits. The child runs child_main on a stack of its own and never comes back.
 * This takes a few lines of assembly, so x86-64 only; elsewhere, and under AddressSanitizer
 * (whose per-thread state the child would share with the parent's thread), the child gets a
 * copy as with fork. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CHILD_SHARES_VM 1
#define CHILD_STACK (256 * 1024)

static long clone3_on_stack(struct clone_args *ca, void (*fn)(struct child *), struct child *arg)
{
	register long rax __asm__("rax") = SYS_clone3;
	register struct clone_args *rdi __asm__("rdi") = ca;
	register size_t rsi __asm__("rsi") = sizeof(*ca);
	register void (*r12)(struct child *) __asm__("r12") = fn;
	register struct child *r13 __asm__("r13") = arg;
	__asm__ volatile("syscall\n\t"
			 "testq %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 /* the child, on the new stack (16-byte aligned): fn(arg), no return */
			 "xorl %%ebp, %%ebp\n\t"
			 "movq %%r13, %%rdi\n\t"
			 "callq *%%r12\n\t"
			 "ud2\n"
			 "1:"
			 : "+r"(rax)
			 : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
			 : "rcx", "r11", "memory", "cc");
	return rax;
}

/* One stack is kept for the next sandbox, its pages already faulted in. */
static void *spare_stack;

/* CHILD_STACK bytes above a guard page; NULL when out of memory. */
static void *stack_get(void)
{
	void *s = __atomic_exchange_n(&spare_stack, NULL, __ATOMIC_ACQ_REL);
	if (s)
		return s;
	long page = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, CHILD_STACK + (size_t)page, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m + page, CHILD_STACK, PROT_READ | PROT_WRITE) < 0) {
		munmap(m, CHILD_STACK + (size_t)page);
		return NULL;
	}
	return m + page;
}

/* Only once the child has exec'd or died. */
static void stack_put(void *s)
{
	if (s && (s = __atomic_exchange_n(&spare_stack, s, __ATOMIC_ACQ_REL))) {
		long page = sysconf(_SC_PAGESIZE);
		munmap((char *)s - page, CHILD_STACK + (size_t)page);
	}
}
#endif

/* clone3s the child into child_main: its pid, or -errno. */
static long clone_child(struct clone_args *ca, struct child *c, void **ret_stack)
{
	*ret_stack = NULL;
#ifdef CHILD_SHARES_VM
	void *stack = stack_get();
	if (!stack)
		return -ENOMEM;
	ca->flags |= CLONE_VM;
	ca->stack = (uint64_t)(uintptr_t)stack;
	ca->stack_size = CHILD_STACK;
	long pid = clone3_on_stack(ca, child_main, c);
	if (pid < 0)
		stack_put(stack);
	else
		*ret_stack = stack;
	return pid;
#else
	long pid = syscall(SYS_clone3, ca, sizeof(*ca));
	if (pid == 0)
		child_main(c);
	return pid < 0 ? -errno : pid;
#endif
}

/* Starts the child with every signal blocked: it resets what it inherited before it unblocks
 * them (reset_signals), so no handler of ours ever runs in it. */
static long start_child(struct clone_args *ca, struct child *c, void **ret_stack)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	long pid = clone_child(ca, c, ret_stack);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid;
}

static void stack_done(void *stack)
{
#ifdef CHILD_SHARES_VM
	stack_put(stack);
#else
	(void)stack;
#endif
}

/* --- the parent ---------------------------------------------------------------------------- */

static bool valid_env_entry(const char *s)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return false;
	for (const char *p = s; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
		      (p > s && *p >= '0' && *p <= '9')))
			return false;
	return true;
}

/* Makes the state directories; the workspace belongs to the sandbox's uid 0. */
static int make_dirs(struct cr_sandbox *sb, const char *state_dir, const char *workspace,
		     uint32_t uid_base, struct cr_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/sandboxes", state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return cr_error_errno(err, errno, "create %s", path);
	if (asprintf(&sb->dir, "%s/%s", path, sb->id) < 0 ||
	    (workspace ? !(sb->workspace = strdup(workspace))
		       : asprintf(&sb->workspace, "%s/workspace", sb->dir) < 0))
		return cr_error_errno(err, ENOMEM, "sandbox paths");
	if (mkdir(sb->dir, 0700) < 0)
		return cr_error_errno(err, errno, "create %s", sb->dir);
	snprintf(path, sizeof(path), "%s/root", sb->dir);
	if (mkdir(path, 0700) < 0)
		return cr_error_errno(err, errno, "create %s", path);
	if ((!workspace && mkdir(sb->workspace, 0755) < 0) ||
	    chown(sb->workspace, (uid_t)uid_base, (gid_t)uid_base) < 0)
		return cr_error_errno(err, errno, "workspace %s", sb->workspace);
	return 0;
}

/* Enables controllers in mount's subtree_control and in each group on the way down to (and
 * including) parent, which lies below mount. */
static int enable_down(const char *mount, const char *parent, const char *controllers,
		       struct cr_error *err)
{
	size_t ml = strlen(mount);
	if (strncmp(parent, mount, ml) != 0 || (parent[ml] && parent[ml] != '/'))
		return cr_error_set(err, EINVAL, "cgroup %s is not under %s", parent, mount);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", parent);
	for (size_t i = ml;; i++) {
		if (path[i] == '/' || path[i] == '\0') {
			char saved = path[i];
			path[i] = '\0';
			int r = cr_cgroup_enable(path, controllers, err);
			path[i] = saved;
			if (r < 0)
				return r;
			if (!saved)
				return 0;
		}
	}
}

/* The sandbox's cgroup under the corral subtree, with limits where controllers allow. */
static int make_cgroup(struct cr_sandbox *sb, const struct cr_sandbox_config *cfg, bool *ret_limits,
		       struct cr_error *err)
{
	_cleanup_free_ char *mount = NULL;
	int r = cr_cgroup2_mount(&mount, err);
	if (r < 0)
		return r;
	char subtree[PATH_MAX];
	if (cfg->cgroup_parent)
		snprintf(subtree, sizeof(subtree), "%s", cfg->cgroup_parent);
	else
		snprintf(subtree, sizeof(subtree), "%s/%s", mount, CONFIG_CORRAL_CGROUP_SUBTREE);
	if (mkdir(subtree, 0755) < 0 && errno != EEXIST)
		return cr_error_errno(err, errno, "create cgroup %s", subtree);
	r = cr_cgroup_create(subtree, sb->id, &sb->cgroup, err);
	if (r < 0)
		return r;

	bool want = cfg->memory_max || cfg->pids_max || cfg->cpu_max_pct;
	struct cr_error e;
	*ret_limits = false;
	if (!want)
		return 0;
	/* the controllers must be enabled in every group from the root down to the parent */
	if (enable_down(mount, subtree, "memory pids cpu", &e) < 0)
		return 0; /* limits unavailable on this host: the caller says so */
	char v[64];
	if (cfg->memory_max) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cfg->memory_max);
		if ((r = cr_cgroup_write(sb->cgroup, "memory.max", v, err)) < 0 ||
		    (r = cr_cgroup_write(sb->cgroup, "memory.swap.max", "0", err)) < 0)
			return r;
	}
	if (cfg->pids_max) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cfg->pids_max);
		if ((r = cr_cgroup_write(sb->cgroup, "pids.max", v, err)) < 0)
			return r;
	}
	if (cfg->cpu_max_pct) {
		snprintf(v, sizeof(v), "%u 100000", cfg->cpu_max_pct * 1000);
		if ((r = cr_cgroup_write(sb->cgroup, "cpu.max", v, err)) < 0)
			return r;
	}
	*ret_limits = true;
	return 0;
}

static int write_id_maps(pid_t pid, uint32_t base, struct cr_error *err)
{
	char path[64], map[64];
	snprintf(map, sizeof(map), "0 %u %u\n", base, CR_SANDBOX_UIDS);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	int r = cr_write_file(path, map, err);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	return r < 0 ? r : cr_write_file(path, map, err);
}

#define RECORD "sandbox.json"

/* <dir>/sandbox.json: what another process needs to find the sandbox again. */
static int write_record(const struct cr_sandbox *sb, const struct cr_sandbox_config *cfg,
			struct cr_error *err)
{
	char host[INET_ADDRSTRLEN] = "", sandbox[INET_ADDRSTRLEN] = "";
	if (sb->has_veth) {
		inet_ntop(AF_INET, &sb->veth.host_addr, host, sizeof(host));
		inet_ntop(AF_INET, &sb->veth.sandbox_addr, sandbox, sizeof(sandbox));
	}
	json_t *o = json_pack(
		"{s:s, s:i, s:s, s:s, s:b, s:i, s:o}", "id", sb->id, "pid", (json_int_t)sb->pid,
		"cgroup", sb->cgroup, "workspace", sb->workspace, "own_workspace",
		sb->own_workspace, "uid_base", (json_int_t)cfg->uid_base, "veth",
		sb->has_veth ? json_pack("{s:s, s:s, s:s, s:i}", "host_if", sb->veth.host_if,
					 "host_addr", host, "sandbox_addr", sandbox, "prefix",
					 (json_int_t)sb->veth.prefix)
			     : json_null());
	if (!o)
		return cr_error_errno(err, ENOMEM, "sandbox record");
	char path[PATH_MAX - 8], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", sb->dir, RECORD);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int r = json_dump_file(o, tmp, JSON_INDENT(2));
	json_decref(o);
	if (r < 0 || rename(tmp, path) < 0)
		return cr_error_errno(err, errno ? errno : EIO, "write %s", path);
	return 0;
}

static bool valid_id(const char *id)
{
	return cr_id_valid("sbx_", id);
}

int cr_sandbox_open(const char *state_dir, const char *id, struct cr_sandbox **ret,
		    struct cr_error *err)
{
	if (!valid_id(id))
		return cr_error_set(err, EINVAL, "\"%s\" is not a sandbox id (sbx_...)", id);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/sandboxes/%s/%s", state_dir, id, RECORD);
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o) {
		if (access(path, F_OK) < 0)
			return cr_error_set(err, ENOENT, "no sandbox %s under %s", id, state_dir);
		return cr_error_set(err, EINVAL, "%s: %s", path, je.text);
	}
	struct cr_sandbox *sb = calloc(1, sizeof(*sb));
	const char *cg = NULL, *ws = NULL, *rid = NULL, *hif = NULL, *ha = NULL, *sa = NULL;
	json_int_t pid = 0, prefix = 0;
	int own = 0;
	json_t *veth = NULL;
	int r = 0;
	if (!sb)
		r = cr_error_errno(err, ENOMEM, "sandbox");
	else if (json_unpack_ex(o, &je, 0, "{s:s, s:I, s:s, s:s, s:b, s?o}", "id", &rid, "pid",
				&pid, "cgroup", &cg, "workspace", &ws, "own_workspace", &own,
				"veth", &veth) < 0 ||
		 strcmp(rid, id) != 0 || pid <= 0)
		r = cr_error_set(err, EINVAL, "%s: not a sandbox record (%s)", path, je.text);
	else if (veth && !json_is_null(veth) &&
		 json_unpack_ex(veth, &je, 0, "{s:s, s:s, s:s, s:I}", "host_if", &hif, "host_addr",
				&ha, "sandbox_addr", &sa, "prefix", &prefix) < 0)
		r = cr_error_set(err, EINVAL, "%s: bad veth (%s)", path, je.text);
	if (r == 0) {
		snprintf(sb->id, sizeof(sb->id), "%s", id);
		sb->pid = (pid_t)pid;
		sb->pidfd = -1;
		sb->not_child = true;
		sb->own_workspace = own;
		snprintf(path, sizeof(path), "%s/sandboxes/%s", state_dir, id);
		sb->dir = strdup(path);
		sb->cgroup = strdup(cg);
		sb->workspace = strdup(ws);
		if (hif) {
			sb->has_veth = true;
			snprintf(sb->veth.host_if, sizeof(sb->veth.host_if), "%s", hif);
			snprintf(sb->veth.sandbox_if, sizeof(sb->veth.sandbox_if), "%s",
				 CR_NET_SANDBOX_IF);
			inet_pton(AF_INET, ha, &sb->veth.host_addr);
			inet_pton(AF_INET, sa, &sb->veth.sandbox_addr);
			sb->veth.prefix = (uint8_t)prefix;
		}
		if (!sb->dir || !sb->cgroup || !sb->workspace)
			r = cr_error_errno(err, ENOMEM, "sandbox");
	}
	json_decref(o);
	if (r < 0) {
		cr_sandbox_free(sb);
		return r;
	}
	/* PID 1 is ours to watch only while it still lives in the sandbox's cgroup (not a
	 * recycled pid) */
	sb->pidfd = (int)syscall(SYS_pidfd_open, sb->pid, 0);
	if (sb->pidfd >= 0) {
		char p2[64];
		snprintf(p2, sizeof(p2), "/proc/%d/cgroup", (int)sb->pid);
		_cleanup_free_ char *cgtext = NULL;
		struct cr_error e;
		const char *leaf = strrchr(sb->cgroup, '/');
		if (cr_read_file(p2, 65536, &cgtext, NULL, &e) < 0 || !leaf ||
		    !strstr(cgtext, leaf)) {
			close(sb->pidfd);
			sb->pidfd = -1;
		}
	}
	*ret = sb;
	return 0;
}

/* A sandbox's directory that still holds its record (not only a kept workspace). */
static bool recorded_sandbox(const char *name, char *out, size_t size, void *arg)
{
	char rec[PATH_MAX];
	if (!valid_id(name) ||
	    snprintf(rec, sizeof(rec), "%s/%s/%s", (const char *)arg, name, RECORD) >=
		    (int)sizeof(rec) ||
	    access(rec, F_OK) < 0)
		return false;
	snprintf(out, size, "%s", name);
	return true;
}

int cr_sandbox_list(const char *state_dir, char ***ret, size_t *ret_n, struct cr_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/sandboxes", state_dir) >= (int)sizeof(path))
		return cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return cr_dir_list(path, recorded_sandbox, path, ret, ret_n, err);
}

int cr_sandbox_pause(struct cr_sandbox *sb, struct cr_error *err)
{
	int r = cr_cgroup_freeze(sb->cgroup, true, 5000, err);
	return r < 0 ? cr_error_prefix(err, "pause sandbox %s", sb->id) : 0;
}

int cr_sandbox_resume(struct cr_sandbox *sb, struct cr_error *err)
{
	int r = cr_cgroup_freeze(sb->cgroup, false, 5000, err);
	return r < 0 ? cr_error_prefix(err, "resume sandbox %s", sb->id) : 0;
}

const char *cr_sandbox_state_name(enum cr_sandbox_state s)
{
	switch (s) {
	case CR_SANDBOX_RUNNING:
		return "running";
	case CR_SANDBOX_PAUSED:
		return "paused";
	case CR_SANDBOX_STOPPED:
		return "stopped";
	}
	return "?";
}

int cr_sandbox_state(const struct cr_sandbox *sb, enum cr_sandbox_state *ret, struct cr_error *err)
{
	_cleanup_free_ char *events = NULL;
	struct cr_error e;
	int r = cr_cgroup_read(sb->cgroup, "cgroup.events", &events, &e);
	if (r == -ENOENT) {
		*ret = CR_SANDBOX_STOPPED;
		return 0;
	}
	if (r < 0) {
		if (err)
			*err = e;
		return r;
	}
	if (strstr(events, "populated 0"))
		*ret = CR_SANDBOX_STOPPED;
	else if (strstr(events, "frozen 1"))
		*ret = CR_SANDBOX_PAUSED;
	else
		*ret = CR_SANDBOX_RUNNING;
	return 0;
}

/* Calls fn for the sandbox end address of every recorded sandbox with egress under state_dir,
 * until it returns nonzero (which is returned). */
static int each_address(const char *state_dir,
			int (*fn)(const char *id, const struct in_addr *addr, void *arg), void *arg,
			struct cr_error *err)
{
	char **ids;
	size_t n;
	int r = cr_sandbox_list(state_dir, &ids, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct cr_sandbox *sb;
		if (r == 0 && cr_sandbox_open(state_dir, ids[i], &sb, NULL) == 0) {
			if (sb->has_veth)
				r = fn(sb->id, &sb->veth.sandbox_addr, arg);
			cr_sandbox_free(sb);
		}
		free(ids[i]);
	}
	free(ids);
	return r;
}

struct find_address {
	struct in_addr addr;
	char *id;
};

static int match_address(const char *id, const struct in_addr *addr, void *arg)
{
	struct find_address *f = arg;
	if (addr->s_addr != f->addr.s_addr)
		return 0;
	snprintf(f->id, CR_SANDBOX_ID_MAX, "%s", id);
	return 1;
}

int cr_sandbox_find_address(const char *state_dir, const struct in_addr *addr,
			    char ret_id[CR_SANDBOX_ID_MAX], struct cr_error *err)
{
	struct find_address f = { .addr = *addr, .id = ret_id };
	int r = each_address(state_dir, match_address, &f, err);
	if (r < 0)
		return r;
	if (r == 0) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, addr, a, sizeof(a));
		return cr_error_set(err, ENOENT, "no sandbox under %s has the address %s",
				    state_dir, a);
	}
	return 0;
}

struct used_pairs {
	const struct cr_net_range *range;
	uint8_t *used; /* one per /30 of the range */
	uint32_t n;
};

static int mark_used(const char *id, const struct in_addr *addr, void *arg)
{
	(void)id;
	struct used_pairs *u = arg;
	uint32_t a = ntohl(addr->s_addr), net = ntohl(u->range->network.s_addr);
	uint32_t i = (a - net) >> (32 - CR_NET_PAIR_PREFIX);
	if (a >= net && i < u->n)
		u->used[i] = 1;
	return 0;
}

/* The lowest /30 of the range that no recorded sandbox holds. The caller holds the egress lock
 * until its own record is written. */
static int free_pair(const char *state_dir, const struct cr_net_range *range, uint32_t *ret,
		     struct cr_error *err)
{
	struct used_pairs u = { .range = range, .n = cr_net_range_pairs(range) };
	u.used = calloc(u.n ? u.n : 1, 1);
	if (!u.used)
		return cr_error_errno(err, ENOMEM, "egress addresses");
	int r = each_address(state_dir, mark_used, &u, err);
	uint32_t i = 0;
	while (r == 0 && i < u.n && u.used[i])
		i++;
	free(u.used);
	if (r < 0)
		return r;
	if (i == u.n)
		return cr_error_set(err, EADDRNOTAVAIL,
				    "egress: all %u address pairs of the range are in use", u.n);
	*ret = i;
	return 0;
}

/* Takes <state_dir>/egress.lock: one sandbox at a time picks its addresses and records them. */
static int lock_egress(const char *state_dir, struct cr_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/egress.lock", state_dir) >= (int)sizeof(path))
		return cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return cr_error_errno(err, errno, "open %s", path);
	int r;
	do
		r = flock(fd, LOCK_EX);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = cr_error_errno(err, errno, "lock %s", path);
		close(fd);
		return r;
	}
	return fd;
}

/* The veth pair of a sandbox with egress, made while its child still waits. */
static int make_veth(struct cr_sandbox *sb, const struct cr_sandbox_config *cfg, uint32_t index,
		     struct cr_error *err)
{
	struct in_addr host, sandbox;
	uint8_t prefix;
	int r = cr_net_pair_addresses(cfg->egress_range, index, &host, &sandbox, &prefix, err);
	if (r < 0)
		return r;
	_cleanup_close_ int ns = -1;
	r = cr_net_netns_open(sb->pid, &ns, err);
	if (r < 0)
		return r;
	char tag[13];
	snprintf(tag, sizeof(tag), "%s", sb->id + 4); /* after "sbx_" */
	r = cr_net_veth_create(tag, ns, &host, &sandbox, prefix, &sb->veth, err);
	if (r < 0)
		return cr_error_prefix(err, "sandbox %s: egress", sb->id);
	sb->has_veth = true;
	return 0;
}

static void sandbox_cleanup(struct cr_sandbox *sb)
{
	struct cr_error e;
	if (sb->has_veth && cr_net_veth_destroy(&sb->veth, &e) == 0)
		sb->has_veth = false;
	if (sb->cgroup)
		cr_cgroup_destroy(sb->cgroup, 5000, &e);
	if (sb->pid > 0 && !sb->reaped)
		waitpid(sb->pid, NULL, 0);
	sb->reaped = true;
	if (sb->dir)
		cr_remove_tree(sb->dir, &e);
}

int cr_sandbox_create(const struct cr_sandbox_config *cfg, struct cr_sandbox **ret,
		      bool *limits_applied, struct cr_error *err)
{
	if (!cfg->state_dir || !cfg->init_path)
		return cr_error_set(err, EINVAL, "sandbox: state_dir and init_path are required");
	if (cfg->uid_base == 0 || cfg->uid_base > UINT32_MAX - CR_SANDBOX_UIDS)
		return cr_error_set(err, EINVAL,
				    "sandbox: uid_base %u: must map to unprivileged host uids "
				    "(not 0)",
				    cfg->uid_base);
	if (access(cfg->init_path, X_OK) < 0)
		return cr_error_errno(err, errno, "sandbox init %s", cfg->init_path);
	const char *hostname = cfg->hostname ? cfg->hostname : "sandbox";
	if (strlen(hostname) > 64 || !*hostname)
		return cr_error_set(err, EINVAL, "sandbox: hostname must be 1 to 64 bytes");

	/* the environment: an allowlist, nothing of ours */
	char *envp[ENV_MAX + 1];
	size_t nenv = 0;
	static char *const base_env[] = { "PATH=" SANDBOX_PATH, "HOME=/workspace",
					  "LANG=C.UTF-8",	"USER=root",
					  "LOGNAME=root",	"SHELL=/bin/bash",
					  "TERM=dumb" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(base_env); i++)
		envp[nenv++] = base_env[i];
	for (size_t i = 0; cfg->env && cfg->env[i]; i++) {
		if (!valid_env_entry(cfg->env[i]))
			return cr_error_set(err, EINVAL,
					    "sandbox environment entry \"%s\": not KEY=VALUE",
					    cfg->env[i]);
		if (nenv == ENV_MAX)
			return cr_error_set(err, E2BIG, "sandbox environment: more than %d entries",
					    ENV_MAX);
		envp[nenv++] = (char *)cfg->env[i];
	}
	envp[nenv] = NULL;

	char *argv[64];
	size_t na = 0;
	argv[na++] = "corral-init";
	if (cfg->argv) {
		argv[na++] = "--";
		for (size_t i = 0; cfg->argv[i]; i++) {
			if (na == CR_ARRAY_SIZE(argv) - 1)
				return cr_error_set(err, E2BIG,
						    "sandbox program: too many arguments");
			argv[na++] = (char *)cfg->argv[i];
		}
	} else {
		argv[na++] = "--listen";
		argv[na++] = "3";
	}
	argv[na] = NULL;

	struct cr_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return cr_error_errno(err, ENOMEM, "sandbox");
	sb->pidfd = -1;
	uint8_t raw[CR_ID_RAW];
	int r = cr_id_random(raw, err);
	if (r == 0)
		cr_id_format("sbx_", raw, sb->id, sizeof(sb->id));
	bool limits = false;
	struct cr_mount_plan plan = { 0 };
	_cleanup_free_ int *src_fds = NULL;
	_cleanup_close_ int cgfd = -1, control = -1;
	int sync[2] = { -1, -1 }, errp[2] = { -1, -1 }, egress_lock = -1;
	char root[PATH_MAX];
	void *stack = NULL; /* the child's, while it shares our memory */

	r = r ?: make_dirs(sb, cfg->state_dir, cfg->workspace, cfg->uid_base, err);
	r = r ?: make_cgroup(sb, cfg, &limits, err);
	r = r ?: cr_mount_plan_build(cfg, sb->workspace, &plan, err);
	if (r < 0)
		goto fail;
	snprintf(root, sizeof(root), "%s/root", sb->dir);
	cgfd = open(sb->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		r = cr_error_errno(err, errno, "open cgroup %s", sb->cgroup);
		goto fail;
	}
	if (!cfg->argv) {
		/* the control socket PID 1 listens on (docs/init-protocol.md); in the sandbox's
		 * 0700 directory, so only host root reaches it */
		struct sockaddr_un a;
		_cleanup_close_ int dfd = -1;
		if ((r = control_addr(sb->dir, &dfd, &a, err)) < 0)
			goto fail;
		control = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (control < 0 || bind(control, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    fchmodat(dfd, "control.sock", 0600, 0) < 0 || listen(control, 16) < 0) {
			r = cr_error_errno(err, errno, "control socket %s/control.sock", sb->dir);
			goto fail;
		}
	}
	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		r = cr_error_errno(err, errno, "pipe");
		goto fail;
	}

	src_fds = calloc(plan.n ? plan.n : 1, sizeof(int));
	if (!src_fds) {
		r = cr_error_errno(err, ENOMEM, "sandbox");
		goto fail;
	}
	const struct sock_fprog *filter;
	r = cr_seccomp_sandbox_program(&filter, err);
	if (r < 0)
		goto fail;
	struct child c = { .plan = &plan,
			   .seccomp = filter,
			   .src_fds = src_fds,
			   .root = root,
			   .hostname = hostname,
			   .argv = argv,
			   .envp = envp,
			   .sync_fd = sync[0],
			   .err_fd = errp[1],
			   .parent_fds = { sync[1], errp[0] },
			   .control_fd = control,
			   .stdio = { cfg->stdio[0], cfg->stdio[1], cfg->stdio[2] } };
	struct clone_args ca = {
		.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
			 CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_INTO_CGROUP | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&sb->pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)cgfd,
	};
	long pid = start_child(&ca, &c, &stack);
	if (pid < 0) {
		r = cr_error_errno(err, (int)-pid, "clone3 into new namespaces and cgroup %s",
				   sb->cgroup);
		goto fail;
	}
	sb->pid = (pid_t)pid;
	close(sync[0]);
	close(errp[1]);
	sync[0] = errp[1] = -1;

	r = write_id_maps(sb->pid, cfg->uid_base, err);
	if (r < 0) {
		cr_error_prefix(err, "sandbox %s: uid/gid map", sb->id);
		goto fail; /* closing sync ends the child */
	}
	if (cfg->egress_range) {
		uint32_t index = cfg->egress_index;
		if (index == CR_SANDBOX_EGRESS_AUTO) {
			egress_lock = lock_egress(cfg->state_dir, err);
			r = egress_lock < 0
				    ? egress_lock
				    : free_pair(cfg->state_dir, cfg->egress_range, &index, err);
			if (r < 0)
				goto fail;
		}
		r = make_veth(sb, cfg, index, err);
		if (r < 0)
			goto fail;
	}
	if (write(sync[1], "x", 1) != 1) {
		r = cr_error_errno(err, errno, "start sandbox %s", sb->id);
		goto fail;
	}
	close(sync[1]);
	sync[1] = -1;
	/* EOF: execve succeeded (the pipe is close-on-exec); text: the child's error. Bounded: a
	 * child stuck in its set-up (a hung file system under a bind source, say) is killed. */
	char msg[512];
	ssize_t n = -1;
	struct pollfd pfd = { .fd = errp[0], .events = POLLIN };
	int pr;
	do
		pr = poll(&pfd, 1, SETUP_TIMEOUT_MS);
	while (pr < 0 && errno == EINTR);
	if (pr == 0) {
		r = cr_error_set(err, ETIMEDOUT, "sandbox %s set-up did not finish within %d s",
				 sb->id, SETUP_TIMEOUT_MS / 1000);
		goto fail; /* (sandbox_cleanup kills it with its cgroup) */
	}
	do
		n = read(errp[0], msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		msg[n] = '\0';
		r = cr_error_set(err, EPERM, "sandbox %s set-up: %s", sb->id, msg);
		goto fail;
	}
	close(errp[0]);
	errp[0] = -1;
	stack_done(stack); /* the child runs corral-init now, in memory of its own */
	stack = NULL;
	sb->own_workspace = !cfg->workspace;
	r = write_record(sb, cfg, err);
	if (r < 0)
		goto fail;
	if (egress_lock >= 0)
		close(egress_lock); /* the record holds the addresses now */
	cr_mount_plan_free(&plan);
	if (limits_applied)
		*limits_applied = limits;
	*ret = sb;
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		if (sync[i] >= 0)
			close(sync[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	sandbox_cleanup(sb); /* (kills and reaps the child first) */
	stack_done(stack);
	cr_mount_plan_free(&plan);
	cr_sandbox_free(sb);
	if (egress_lock >= 0)
		close(egress_lock);
	return r < 0 ? r : -EIO;
}

int cr_sandbox_oom_kills(const struct cr_sandbox *sb, uint64_t *ret, struct cr_error *err)
{
	_cleanup_free_ char *events = NULL;
	struct cr_error e;
	int r = cr_cgroup_read(sb->cgroup, "memory.events", &events, &e);
	if (r == -ENOENT) {
		*ret = 0;
		return 0;
	}
	if (r < 0) {
		if (err)
			*err = e;
		return r;
	}
	const char *p = strstr(events, "oom_kill ");
	*ret = p ? strtoull(p + 9, NULL, 10) : 0;
	return 0;
}

int cr_sandbox_wait(struct cr_sandbox *sb, int timeout_ms, int *ret_status, struct cr_error *err)
{
	if (sb->not_child)
		return cr_error_set(err, ECHILD, "sandbox %s: PID 1 is not this process's child",
				    sb->id);
	if (!sb->reaped) {
		struct pollfd p = { .fd = sb->pidfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return cr_error_errno(err, errno, "wait for sandbox %s", sb->id);
		if (r == 0)
			return cr_error_set(err, ETIMEDOUT, "sandbox %s is still running", sb->id);
		if (waitpid(sb->pid, &sb->status, 0) < 0)
			return cr_error_errno(err, errno, "reap sandbox %s", sb->id);
		sb->reaped = true;
	}
	*ret_status = sb->status;
	return 0;
}

int cr_sandbox_destroy(struct cr_sandbox *sb, bool keep_workspace, struct cr_error *err)
{
	int r = 0;
	if (sb->cgroup) {
		r = cr_cgroup_destroy(sb->cgroup, 5000, err);
		if (r < 0)
			return r;
		free(sb->cgroup);
		sb->cgroup = NULL;
	}
	if (!sb->reaped && !sb->not_child && sb->pid > 0) {
		if (waitpid(sb->pid, &sb->status, 0) < 0 && errno != ECHILD)
			return cr_error_errno(err, errno, "reap sandbox %s", sb->id);
		sb->reaped = true;
	}
	if (sb->has_veth) {
		/* (usually gone already: the namespace died with its last process) */
		r = cr_net_veth_destroy(&sb->veth, err);
		if (r < 0)
			return r;
		sb->has_veth = false;
	}
	if (!sb->dir)
		return 0;
	if (keep_workspace && sb->own_workspace) {
		/* everything but the workspace goes, so the sandbox is no longer listed */
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/root", sb->dir);
		if (rmdir(path) < 0 && errno != ENOENT)
			return cr_error_errno(err, errno, "remove %s", path);
		snprintf(path, sizeof(path), "%s/%s", sb->dir, RECORD);
		if (unlink(path) < 0 && errno != ENOENT)
			return cr_error_errno(err, errno, "remove %s", path);
		return 0;
	}
	return cr_remove_tree(sb->dir, err);
}

int cr_sandbox_created(const struct cr_sandbox *sb, uint64_t *ret_ns, struct cr_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	if (!sb->dir)
		return cr_error_set(err, ENOENT, "sandbox %s has no record", sb->id);
	if (snprintf(path, sizeof(path), "%s/%s", sb->dir, RECORD) >= (int)sizeof(path))
		return cr_error_set(err, ENAMETOOLONG, "sandbox %s: path too long", sb->id);
	if (stat(path, &st) < 0)
		return cr_error_errno(err, errno, "stat %s", path);
	*ret_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

void cr_sandbox_free(struct cr_sandbox *sb)
{
	if (!sb)
		return;
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	free(sb->dir);
	free(sb->workspace);
	free(sb->cgroup);
	free(sb);
}
