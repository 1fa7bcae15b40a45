/* bench/sandbox: corral bench sandbox, the measuring half. Times a corral sandbox's cold start
 * (from nothing to the answer of its first exec), the warm round trip through the persistent
 * shell of a running sandbox and a one-shot exec round trip, and in the same run, interleaved
 * with them, the baselines: bwrap and crun running /bin/true over the same system directories
 * as the sandbox, and a plain fork+exec of /bin/true. Owns a fresh work directory (the
 * sandboxes' state directory, crun's bundle and state) and a cgroup of its own under the cgroup2
 * mount; on every way out each sandbox is destroyed, each crun container deleted, the cgroup and
 * the directory removed. Uses sandboxes only through include/corral/sandbox.h and initproto.h;
 * it must never print results (cli/bench.c does), never exit, and never mount anything outside
 * the private mount namespace of a child it made for crun. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-internal.h"
#include "corral/clock.h"
#include "bench.h"
#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/initproto.h"
#include "corral/sandbox.h"
#include "corral/tool.h"

#define NAME "sandbox" /* of the benchmark, in progress lines */
#define WORKDIR_TEMPLATE "bench-sandbox.XXXXXX"
#define SANDBOX_ID_LEN 30 /* "sbx_" + 26 */
#define CALL_TIMEOUT_MS 10000 /* a round trip, a first exec */
#define RUN_TIMEOUT_MS 10000 /* a baseline run; then it is killed */
#define CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define TRUE_PATH "/bin/true"
#define ARGV_MAX 64
#define MS 1e6 /* nanoseconds */

void cr_bench_sandbox_opts_init(struct cr_bench_sandbox_opts *opts)
{
	*opts = (struct cr_bench_sandbox_opts){
		.iterations = CR_BENCH_SANDBOX_ITERATIONS_DEFAULT,
		.dir = CR_BENCH_SANDBOX_DIR_DEFAULT,
	};
}

/* --- a program run as a baseline ----------------------------------------------------------- */

/* How a baseline is started: fork, then in the child its own process group (a ^C on the
 * terminal is the benchmark's to handle), no blocked signal, stdin /dev/null, stdout and stderr
 * to the benchmark's output file, no other fd; with private_mounts, first a mount namespace of
 * its own (/ made a slave, so nothing reaches the host) with a tmpfs over tmpfs_over when that
 * is set; then execve with nothing but PATH in the environment. */
struct program {
	const char *path;
	char *argv[ARGV_MAX];
	bool private_mounts;
	const char *tmpfs_over;
};

/* In the child, which may only make async-signal-safe calls: says what failed on stderr (the
 * output file) and exits 127. */
static _Noreturn void child_fail(const char *what, const char *arg, int e)
{
	const char *desc = strerrordesc_np(e);
	const char *parts[] = { what, " ", arg, ": ", desc ? desc : "unknown error", "\n" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(parts); i++)
		if (write(2, parts[i], strlen(parts[i])) < 0)
			break;
	_exit(127);
}

static _Noreturn void child_main(const struct program *p, int null_fd, int out_fd)
{
	static char *const envp[] = { CHILD_PATH, NULL };
	sigset_t none;

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(127);
	syscall(SYS_close_range, 3, ~0U, 0);
	if (p->private_mounts) {
		if (unshare(CLONE_NEWNS) < 0)
			child_fail("unshare", "CLONE_NEWNS", errno);
		if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
			child_fail("make / a slave mount", "in the new namespace", errno);
		if (p->tmpfs_over && mount("tmpfs", p->tmpfs_over, "tmpfs",
					   MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") < 0)
			child_fail("mount a tmpfs over", p->tmpfs_over, errno);
	}
	execve(p->path, p->argv, envp);
	child_fail("execve", p->path, errno);
}

/* What the last run printed: its last non-empty line, for an error message. */
static void last_line(int out_fd, char *buf, size_t size)
{
	char text[4096];
	struct stat st;
	ssize_t n = 0;

	buf[0] = '\0';
	if (fstat(out_fd, &st) == 0) {
		off_t from = st.st_size > (off_t)sizeof(text) - 1
				     ? st.st_size - (off_t)sizeof(text) + 1
				     : 0;
		n = pread(out_fd, text, sizeof(text) - 1, from);
	}
	if (n <= 0) {
		snprintf(buf, size, "(it printed nothing)");
		return;
	}
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\r'))
		n--;
	text[n] = '\0';
	char *nl = strrchr(text, '\n');
	snprintf(buf, size, "%.*s", (int)size - 1, nl ? nl + 1 : text);
}

struct runner {
	int null_fd, out_fd; /* /dev/null; the output file the children write to (O_APPEND) */
};

/* Runs p to its exit, timing fork to reaped exit in *ret_ns. A run that does not end within
 * RUN_TIMEOUT_MS is killed (its process group). Exit status 0 is success; anything else is an
 * error naming p->argv[0], its status and the last line it printed. */
static int run_program(const struct runner *rn, const struct program *p, uint64_t *ret_ns,
		       struct cr_error *err)
{
	if (ftruncate(rn->out_fd, 0) < 0)
		return cr_error_errno(err, errno, "truncate the baselines' output file");
	uint64_t t0 = cr_now_ns();
	pid_t pid = fork();
	if (pid < 0)
		return cr_error_errno(err, errno, "fork for %s", p->argv[0]);
	if (pid == 0)
		child_main(p, rn->null_fd, rn->out_fd);
	setpgid(pid, pid); /* (also in the child: whichever runs first) */
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool timed_out = false;
	if (pidfd >= 0) {
		struct pollfd pf = { .fd = pidfd, .events = POLLIN };
		int n;
		do
			n = poll(&pf, 1, RUN_TIMEOUT_MS);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
	}
	int status = 0;
	pid_t w;
	do
		w = waitpid(pid, &status, 0);
	while (w < 0 && errno == EINTR);
	uint64_t t1 = cr_now_ns();
	if (w < 0)
		return cr_error_errno(err, errno, "wait for %s", p->argv[0]);
	if (timed_out)
		return cr_error_set(err, ETIMEDOUT, "%s did not end within %d ms; killed",
				    p->argv[0], RUN_TIMEOUT_MS);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char line[200];
		last_line(rn->out_fd, line, sizeof(line));
		if (WIFEXITED(status))
			return cr_error_set(err, EIO, "%s exited with status %d: %s", p->argv[0],
					    WEXITSTATUS(status), line);
		return cr_error_set(err, EIO, "%s was killed by SIG%s: %s", p->argv[0],
				    sigabbrev_np(WTERMSIG(status)) ?: "?", line);
	}
	*ret_ns = t1 - t0;
	return 0;
}

/* The program named name in PATH (or the usual directories without one) into buf; false when
 * there is none. */
static bool find_program(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = CHILD_PATH + 5;
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		int n = snprintf(buf, size, "%.*s/%s", (int)len, p, name);
		if (len > 0 && n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
			return true;
		p += len;
		if (*p == ':')
			p++;
	}
	return false;
}

/* --- the baselines ------------------------------------------------------------------------- */

/* The host's top-level system entries the sandbox's own mount plan has (the read-only binds
 * of /usr, /bin, /lib*... and the symlinks of a merged /usr): the baselines get the same, so
 * that all three run /bin/true from the same file systems. */
struct system_entry {
	char path[64]; /* "/usr" */
	char target[256]; /* a symlink's target; "" for a directory bound read-only */
};

struct system {
	struct system_entry e[16];
	size_t n;
};

static int system_entries(const char *init_path, struct system *ret, struct cr_error *err)
{
	struct cr_sandbox_config cfg;
	struct cr_mount_plan plan;

	cr_sandbox_config_init(&cfg);
	cfg.init_path = init_path;
	int r = cr_mount_plan_build(&cfg, "/nonexistent", &plan, err);
	if (r < 0)
		return r;
	ret->n = 0;
	for (size_t i = 0; i < plan.n; i++) {
		const struct cr_mount *m = &plan.ops[i];
		bool top = m->dst[0] == '/' && !strchr(m->dst + 1, '/');
		bool bind = m->op == CR_MNT_BIND_RO && m->src && strcmp(m->src, m->dst) == 0;
		if (!top || !(bind || m->op == CR_MNT_SYMLINK) || ret->n == CR_ARRAY_SIZE(ret->e))
			continue;
		struct system_entry *e = &ret->e[ret->n++];
		snprintf(e->path, sizeof(e->path), "%s", m->dst);
		snprintf(e->target, sizeof(e->target), "%s", bind ? "" : m->src);
	}
	cr_mount_plan_free(&plan);
	if (ret->n == 0)
		return cr_error_set(err, ENOENT,
				    "the sandbox's mount plan binds no system directory");
	return 0;
}

struct baseline {
	const char *name; /* "bwrap", "crun" */
	char path[PATH_MAX];
	bool available;
	char unavailable[sizeof(((struct cr_error *)0)->msg) + 64]; /* why not, when not */
	char command[1024]; /* what runs, for the output */
};

static void command_line(const struct program *p, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; p->argv[i] && len < size; i++) {
		int n = snprintf(buf + len, size - len, "%s%s", i ? " " : "", p->argv[i]);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* bwrap --unshare-all (user, ipc, pid, net, uts, cgroup namespaces) over the system entries
 * bound read-only (symlinks kept), the host's /etc read-only, a new /dev, /proc and tmpfs /tmp.
 * The argv points into sys, which must outlive it. */
static int bwrap_program(const struct baseline *b, const struct system *sys, struct program *ret)
{
	size_t n = 0;
	*ret = (struct program){ .path = b->path };
	char **a = ret->argv;
	a[n++] = "bwrap";
	a[n++] = "--unshare-all";
	a[n++] = "--die-with-parent";
	for (size_t i = 0; i < sys->n; i++) {
		const struct system_entry *e = &sys->e[i];
		if (n + 4 > ARGV_MAX - 12)
			return -E2BIG;
		if (e->target[0]) {
			a[n++] = "--symlink";
			a[n++] = (char *)e->target;
			a[n++] = (char *)e->path;
		} else {
			a[n++] = "--ro-bind";
			a[n++] = (char *)e->path;
			a[n++] = (char *)e->path;
		}
	}
	static char *const tail[] = { "--ro-bind", "/etc",    "/etc", "--dev",	 "/dev", "--proc",
				      "/proc",	   "--tmpfs", "/tmp", TRUE_PATH, NULL };
	for (size_t i = 0; i < CR_ARRAY_SIZE(tail); i++)
		a[n++] = tail[i];
	return 0;
}

/* crun's bundle: config.json and a read-only rootfs of mount points and the system symlinks.
 * The mounts are the sandbox's: the system directories and /etc bound read-only, proc, a tmpfs
 * /dev (crun adds the default devices), devpts, /dev/shm, a tmpfs /tmp; no /sys, like the
 * sandbox. Namespaces as "crun spec" makes them (pid, network, ipc, uts, mount): no user
 * namespace, which crun does not need as root; no cgroup namespace, as --cgroup-manager=disabled
 * puts the container in no cgroup of its own. Masked and read-only paths as "crun spec". */
static int make_bundle(const char *bundle, const struct system *sys, struct cr_error *err)
{
	char path[PATH_MAX];
	int r = cr_bench_path_join(path, sizeof(path), bundle, "rootfs", err);
	if (r < 0)
		return r;
	if (mkdir(bundle, 0755) < 0 || mkdir(path, 0755) < 0)
		return cr_error_errno(err, errno, "create the crun bundle %s", bundle);
	static const char *const dirs[] = { "etc", "proc", "dev", "tmp" };
	char sub[PATH_MAX];
	for (size_t i = 0; i < CR_ARRAY_SIZE(dirs); i++) {
		if ((r = cr_bench_path_join(sub, sizeof(sub), path, dirs[i], err)) < 0)
			return r;
		if (mkdir(sub, 0755) < 0)
			return cr_error_errno(err, errno, "create %s", sub);
	}

	json_t *mounts = json_pack(
		"[{s:s, s:s, s:s}, {s:s, s:s, s:s, s:[s,s,s,s]}, {s:s, s:s, s:s, s:[s,s,s,s,s]},"
		" {s:s, s:s, s:s, s:[s,s,s,s,s]}, {s:s, s:s, s:s, s:[s,s,s]},"
		" {s:s, s:s, s:s, s:[s,s,s,s]}]",
		"destination", "/proc", "type", "proc", "source", "proc", /**/
		"destination", "/dev", "type", "tmpfs", "source", "tmpfs", "options", "nosuid",
		"strictatime", "mode=755", "size=65536k", /**/
		"destination", "/dev/pts", "type", "devpts", "source", "devpts", "options",
		"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", /**/
		"destination", "/dev/shm", "type", "tmpfs", "source", "shm", "options", "nosuid",
		"noexec", "nodev", "mode=1777", "size=65536k", /**/
		"destination", "/tmp", "type", "tmpfs", "source", "tmpfs", "options", "nosuid",
		"nodev", "mode=1777", /**/
		"destination", "/etc", "type", "bind", "source", "/etc", "options", "rbind", "ro",
		"nosuid", "nodev");
	if (!mounts)
		return cr_error_set(err, ENOMEM, "no memory for config.json");
	for (size_t i = 0; i < sys->n; i++) {
		const struct system_entry *e = &sys->e[i];
		if ((r = cr_bench_path_join(sub, sizeof(sub), path, e->path + 1, err)) < 0) {
			json_decref(mounts);
			return r;
		}
		if (e->target[0] ? symlink(e->target, sub) < 0 : mkdir(sub, 0755) < 0) {
			json_decref(mounts);
			return cr_error_errno(err, errno, "create %s", sub);
		}
		if (!e->target[0] &&
		    json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s,s,s,s]}",
							    "destination", e->path, "type", "bind",
							    "source", e->path, "options", "rbind",
							    "ro", "nosuid", "nodev")) < 0) {
			json_decref(mounts);
			return cr_error_set(err, ENOMEM, "no memory for config.json");
		}
	}
	json_t *config = json_pack(
		"{s:s, s:{s:b, s:{s:i, s:i}, s:[s], s:[s], s:s, s:b}, s:{s:s, s:b}, s:s, s:o,"
		" s:{s:[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}], s:[s,s,s,s,s,s,s,s,s,s],"
		" s:[s,s,s,s,s]}}",
		"ociVersion", "1.0.2", /**/
		"process", "terminal", 0, "user", "uid", 0, "gid", 0, "args", TRUE_PATH, "env",
		CHILD_PATH, "cwd", "/", "noNewPrivileges", 1, /**/
		"root", "path", "rootfs", "readonly", 1, /**/
		"hostname", "crun", "mounts", mounts, /**/
		"linux", "namespaces", "type", "pid", "type", "network", "type", "ipc", "type",
		"uts", "type", "mount", /**/
		"maskedPaths", "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/sys/firmware", "/proc/scsi", /**/
		"readonlyPaths", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
		"/proc/sysrq-trigger");
	if (!config)
		return cr_error_set(err, ENOMEM, "no memory for config.json");
	if ((r = cr_bench_path_join(sub, sizeof(sub), bundle, "config.json", err)) < 0) {
		json_decref(config);
		return r;
	}
	r = json_dump_file(config, sub, JSON_INDENT(2));
	json_decref(config);
	if (r < 0)
		return cr_error_errno(err, errno ? errno : EIO, "write %s", sub);
	return 0;
}

/* --- the run ------------------------------------------------------------------------------- */

struct bench {
	const struct cr_bench_sandbox_opts *opts;
	char work[PATH_MAX];
	struct runner rn;
	char *cgroup; /* the sandboxes' parent group, ours */
	struct cr_sandbox_config cfg; /* of every sandbox */
	struct cr_sandbox *warm; /* the running sandbox of the round trips */
	int warm_fd; /* connected to its control socket */
	unsigned long calls; /* request ids */
	unsigned long containers; /* crun container ids */

	struct baseline bwrap, crun;
	struct program bwrap_prog, crun_prog, wrapper_prog, spawn_prog;
	char crun_root[PATH_MAX], bundle[PATH_MAX], container[64];
	bool crun_wrapped; /* in a private mount namespace with a tmpfs over the cgroup2 mount */
	char crun_note[PATH_MAX + 512];
	char cgroup2[PATH_MAX];

	struct cr_bench_samples cold, create, first_exec, destroy, warm_exec, oneshot, bwrap_s,
		crun_s, wrapper_s, spawn_s;
	struct round {
		size_t cold, bwrap, crun; /* where the round's samples start */
	} rounds[CR_BENCH_SANDBOX_ROUNDS + 1];
};

static void bench_done(struct bench *b)
{
	struct cr_bench_samples *all[] = { &b->cold,	  &b->create,  &b->first_exec, &b->destroy,
					   &b->warm_exec, &b->oneshot, &b->bwrap_s,    &b->crun_s,
					   &b->wrapper_s, &b->spawn_s };
	for (size_t i = 0; i < CR_ARRAY_SIZE(all); i++)
		cr_bench_samples_done(all[i]);
}

static int add_sample(struct cr_bench_samples *s, uint64_t ns, struct cr_error *err)
{
	if (cr_bench_samples_add(s, ns) < 0)
		return cr_error_set(err, ENOMEM, "no memory for latencies");
	return 0;
}

/* crun delete -f of the container id, as crun itself runs (in the same wrapper); untimed,
 * its status ignored: the caller checks crun's state directory. */
static void crun_delete(struct bench *b, const char *id)
{
	struct program p = b->crun_prog;
	size_t n = 0;
	p.argv[n++] = "crun";
	p.argv[n++] = "--root";
	p.argv[n++] = b->crun_root;
	p.argv[n++] = "delete";
	p.argv[n++] = "-f";
	p.argv[n++] = (char *)id;
	p.argv[n] = NULL;
	uint64_t ns;
	struct cr_error e;
	run_program(&b->rn, &p, &ns, &e);
}

/* Deletes every container left in crun's state directory (made only when crun was found). */
static int crun_sweep(struct bench *b, struct cr_error *err)
{
	if (!b->crun_root[0])
		return 0;
	_cleanup_closedir_ DIR *d = opendir(b->crun_root);
	if (!d)
		return errno == ENOENT ? 0 : cr_error_errno(err, errno, "open %s", b->crun_root);
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			crun_delete(b, de->d_name);
	rewinddir(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			return cr_error_set(err, EBUSY, "crun delete -f left container %s in %s",
					    de->d_name, b->crun_root);
	return 0;
}

/* Every way out: the warm sandbox destroyed, crun's containers deleted, the cgroup (with
 * whatever is still in it) removed. Failures are warned about: the caller's error, if any, is
 * the one to report. */
static void bench_teardown(struct bench *b)
{
	struct cr_error e;

	if (b->warm_fd >= 0)
		close(b->warm_fd);
	b->warm_fd = -1;
	if (b->warm) {
		if (cr_sandbox_destroy(b->warm, false, &e) < 0)
			fprintf(stderr, "bench %s: %s\n", NAME, e.msg);
		cr_sandbox_free(b->warm);
		b->warm = NULL;
	}
	if (crun_sweep(b, &e) < 0)
		fprintf(stderr, "bench %s: %s\n", NAME, e.msg);
	if (b->cgroup) {
		if (cr_cgroup_destroy(b->cgroup, 5000, &e) < 0)
			fprintf(stderr, "bench %s: remove cgroup %s: %s\n", NAME, b->cgroup, e.msg);
		free(b->cgroup);
		b->cgroup = NULL;
	}
	if (b->rn.out_fd >= 0)
		close(b->rn.out_fd);
	if (b->rn.null_fd >= 0)
		close(b->rn.null_fd);
	b->rn.out_fd = b->rn.null_fd = -1;
	bench_done(b);
}

/* An exec of /bin/true, with a fresh id. Owned by the caller. */
static json_t *exec_request(struct bench *b)
{
	char id[32];
	snprintf(id, sizeof(id), "e%lu", ++b->calls);
	return json_pack("{s:s, s:s, s:[s], s:i}", "id", id, "op", "exec", "argv", TRUE_PATH,
			 "timeout_ms", CALL_TIMEOUT_MS);
}

/* One round trip of req on fd, timed in *ret_ns; the program must have run and exited 0. */
static int call(int fd, json_t *req, uint64_t *ret_ns, struct cr_error *err)
{
	_cleanup_(json_decrefp) json_t *resp = NULL;
	const char *op = json_string_value(json_object_get(req, "op"));

	uint64_t t0 = cr_now_ns();
	int r = cr_init_call(fd, req, CALL_TIMEOUT_MS, &resp, err);
	uint64_t t1 = cr_now_ns();
	if (r < 0)
		return cr_error_prefix(err, "%s of true", op);
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *why = json_string_value(json_object_get(resp, "error"));
		return cr_error_set(err, EIO, "%s of true: corral-init: %s", op,
				    why ? why : "failed");
	}
	json_t *code = json_object_get(resp, "exit_code");
	if (!json_is_integer(code) || json_integer_value(code) != 0)
		return cr_error_set(err, EIO, "%s of true: it did not exit 0", op);
	*ret_ns = t1 - t0;
	return 0;
}

/* The warm round trip as the harness makes it: execute("bash", {"command": "true"}) through
 * runtime/tool on the running sandbox, which must succeed with nothing to say. */
static int execute_true(struct bench *b, uint64_t *ret_ns, struct cr_error *err)
{
	static const char input[] = "{\"command\": \"true\"}";
	struct cr_tool_result res;
	uint64_t t0 = cr_now_ns();
	int r = cr_tool_execute(b->warm_fd, NULL, "bash", input, sizeof(input) - 1, &res, err);
	uint64_t t1 = cr_now_ns();
	if (r < 0)
		return cr_error_prefix(err, "warm execute(bash, true)");
	bool ok = !res.is_error && res.content[0] == '\0';
	if (!ok)
		r = cr_error_set(err, EIO, "warm execute(bash, true): %s", res.content);
	cr_tool_result_clear(&res);
	*ret_ns = t1 - t0;
	return r;
}

/* One cold start: create, connect, exec /bin/true, answer; then destroy (timed apart). */
static int cold_start(struct bench *b, struct cr_error *err)
{
	_cleanup_(json_decrefp) json_t *req = exec_request(b);
	struct cr_sandbox *sb = NULL;
	uint64_t exec_ns = 0;
	struct cr_error e;

	if (!req)
		return cr_error_set(err, ENOMEM, "no memory for a request");
	uint64_t t0 = cr_now_ns();
	int r = cr_sandbox_create(&b->cfg, &sb, NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "cold start");
	uint64_t t1 = cr_now_ns();
	int fd = cr_sandbox_connect(sb, err);
	r = fd < 0 ? fd : call(fd, req, &exec_ns, err);
	uint64_t t2 = cr_now_ns();
	if (fd >= 0)
		close(fd);
	uint64_t t3 = cr_now_ns();
	int d = cr_sandbox_destroy(sb, false, &e);
	uint64_t t4 = cr_now_ns();
	cr_sandbox_free(sb);
	if (r < 0)
		return cr_error_prefix(err, "cold start, first exec");
	if (d < 0) {
		*err = e;
		return cr_error_prefix(err, "cold start, destroy");
	}
	r = add_sample(&b->cold, t2 - t0, err);
	r = r ?: add_sample(&b->create, t1 - t0, err);
	r = r ?: add_sample(&b->first_exec, t2 - t1, err);
	r = r ?: add_sample(&b->destroy, t4 - t3, err);
	return r;
}

static int run_crun(struct bench *b, uint64_t *ret_ns, struct cr_error *err)
{
	snprintf(b->container, sizeof(b->container), "corral-bench-%d-%lu", (int)getpid(),
		 ++b->containers);
	int r = run_program(&b->rn, &b->crun_prog, ret_ns, err);
	if (r < 0) {
		crun_delete(b, b->container);
		return r;
	}
	return 0;
}

enum step {
	STEP_COLD,
	STEP_BWRAP,
	STEP_CRUN,
	STEP_WRAPPER,
	STEP_SPAWN,
	STEP_CALLS,
	STEPS
};

static int step(struct bench *b, enum step s, struct cr_error *err)
{
	uint64_t ns = 0;
	int r;

	switch (s) {
	case STEP_COLD:
		return cold_start(b, err);
	case STEP_BWRAP:
		if (!b->bwrap.available)
			return 0;
		r = run_program(&b->rn, &b->bwrap_prog, &ns, err);
		return r < 0 ? cr_error_prefix(err, "bwrap baseline")
			     : add_sample(&b->bwrap_s, ns, err);
	case STEP_CRUN:
		if (!b->crun.available)
			return 0;
		r = run_crun(b, &ns, err);
		return r < 0 ? cr_error_prefix(err, "crun baseline")
			     : add_sample(&b->crun_s, ns, err);
	case STEP_WRAPPER:
		if (!b->crun.available || !b->crun_wrapped)
			return 0;
		r = run_program(&b->rn, &b->wrapper_prog, &ns, err);
		return r < 0 ? cr_error_prefix(err, "crun's wrapper alone")
			     : add_sample(&b->wrapper_s, ns, err);
	case STEP_SPAWN:
		r = run_program(&b->rn, &b->spawn_prog, &ns, err);
		return r < 0 ? cr_error_prefix(err, "fork+exec baseline")
			     : add_sample(&b->spawn_s, ns, err);
	case STEP_CALLS:
		for (unsigned i = 0; i < CR_BENCH_SANDBOX_CALLS; i++) {
			r = execute_true(b, &ns, err);
			if (r < 0 || (r = add_sample(&b->warm_exec, ns, err)) < 0)
				return r;
			_cleanup_(json_decrefp) json_t *req = exec_request(b);
			if (!req)
				return cr_error_set(err, ENOMEM, "no memory for a request");
			r = call(b->warm_fd, req, &ns, err);
			if (r < 0)
				return cr_error_prefix(err, "one-shot round trip");
			r = add_sample(&b->oneshot, ns, err);
			if (r < 0)
				return r;
		}
		return 0;
	default:
		return 0;
	}
}

/* --- figures ------------------------------------------------------------------------------- */

struct summary {
	size_t n;
	double p50_ms, p95_ms, max_ms;
};

/* The summary of n samples from v (n may be 0: all zero); v is left as it is. */
static int summarize(const uint64_t *v, size_t n, struct summary *ret, struct cr_error *err)
{
	*ret = (struct summary){ .n = n };
	if (n == 0)
		return 0;
	_cleanup_free_ uint64_t *s = reallocarray(NULL, n, sizeof(*s));
	if (!s)
		return cr_error_set(err, ENOMEM, "no memory for %zu latencies", n);
	memcpy(s, v, n * sizeof(*s));
	cr_bench_sort(s, n);
	ret->p50_ms = (double)cr_bench_rank(s, n, 50) / MS;
	ret->p95_ms = (double)cr_bench_rank(s, n, 95) / MS;
	ret->max_ms = (double)s[n - 1] / MS;
	return 0;
}

/* A figure, or null when it was not measured. */
static json_t *ms_or_null(const struct summary *s, double v)
{
	return s->n ? json_real(v) : json_null();
}

/* prefix_n, prefix_p50_ms, prefix_p95_ms, prefix_max_ms */
static int put_summary(json_t *o, const char *prefix, const struct summary *s)
{
	char key[64];
	int bad = 0;
	snprintf(key, sizeof(key), "%s_n", prefix);
	bad |= cr_bench_put(o, key, json_integer((json_int_t)s->n));
	snprintf(key, sizeof(key), "%s_p50_ms", prefix);
	bad |= cr_bench_put(o, key, ms_or_null(s, s->p50_ms));
	snprintf(key, sizeof(key), "%s_p95_ms", prefix);
	bad |= cr_bench_put(o, key, ms_or_null(s, s->p95_ms));
	snprintf(key, sizeof(key), "%s_max_ms", prefix);
	bad |= cr_bench_put(o, key, ms_or_null(s, s->max_ms));
	return bad;
}

/* A target whose baseline may be missing: value and met null then, with the reason. */
static json_t *target_or_unknown(const struct baseline *base, double value, double limit,
				 bool *all_met, bool *unknown)
{
	if (base->available)
		return cr_bench_target(value, "at_most", limit, all_met);
	*unknown = true;
	return json_pack("{s:n, s:f, s:n, s:s}", "value", "at_most", limit, "met", "unknown",
			 base->unavailable);
}

static json_t *figures_json(struct bench *b)
{
	struct summary cold, create, first, destroy, warm, oneshot, bwrap, crun, wrapper, spawn;
	struct cr_error e;
	const struct {
		struct cr_bench_samples *s;
		struct summary *sum;
	} all[] = {
		{ &b->cold, &cold },	   { &b->create, &create },  { &b->first_exec, &first },
		{ &b->destroy, &destroy }, { &b->warm_exec, &warm }, { &b->oneshot, &oneshot },
		{ &b->bwrap_s, &bwrap },   { &b->crun_s, &crun },    { &b->wrapper_s, &wrapper },
		{ &b->spawn_s, &spawn },
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(all); i++)
		if (summarize(all[i].s->v, all[i].s->n, all[i].sum, &e) < 0)
			return NULL;

	json_t *o = json_object();
	int bad = 0;
	if (!o)
		return NULL;
	bad |= cr_bench_put(o, "iterations", json_integer(b->opts->iterations));
	bad |= cr_bench_put(o, "rounds", json_integer(CR_BENCH_SANDBOX_ROUNDS));
	bad |= cr_bench_put(o, "calls_per_iteration", json_integer(CR_BENCH_SANDBOX_CALLS));
	bad |= cr_bench_put(o, "dir", json_string(b->opts->dir));
	bad |= cr_bench_put(o, "init", json_string(b->opts->init_path));
	bad |= cr_bench_put(o, "cgroup2", json_string(b->cgroup2));

	bad |= put_summary(o, "cold", &cold);
	bad |= put_summary(o, "cold_create", &create);
	bad |= put_summary(o, "cold_first_exec", &first);
	bad |= put_summary(o, "destroy", &destroy);
	bad |= put_summary(o, "warm_exec", &warm);
	bad |= put_summary(o, "oneshot_exec", &oneshot);
	bad |= put_summary(o, "spawn", &spawn);

	bad |= put_summary(o, "bwrap", &bwrap);
	bad |= cr_bench_put(o, "bwrap_command", json_string(b->bwrap.command));
	bad |= cr_bench_put(o, "bwrap_unavailable",
			    b->bwrap.available ? json_null() : json_string(b->bwrap.unavailable));
	bad |= put_summary(o, "crun", &crun);
	bad |= cr_bench_put(o, "crun_command", json_string(b->crun.command));
	bad |= cr_bench_put(o, "crun_unavailable",
			    b->crun.available ? json_null() : json_string(b->crun.unavailable));
	bad |= cr_bench_put(o, "crun_note", json_string(b->crun_note));
	bad |= put_summary(o, "crun_wrapper", &wrapper);

	/* the cold start's p50 in each round beside the baselines' in the same round: the drift
	 * of a shared machine shows here */
	json_t *rounds = json_array();
	if (!rounds) {
		json_decref(o);
		return NULL;
	}
	for (unsigned k = 0; k < CR_BENCH_SANDBOX_ROUNDS; k++) {
		const struct round *r0 = &b->rounds[k], *r1 = &b->rounds[k + 1];
		struct summary c, w, x;
		if (summarize(b->cold.v + r0->cold, r1->cold - r0->cold, &c, &e) < 0 ||
		    summarize(b->bwrap_s.v + r0->bwrap, r1->bwrap - r0->bwrap, &w, &e) < 0 ||
		    summarize(b->crun_s.v + r0->crun, r1->crun - r0->crun, &x, &e) < 0) {
			json_decref(rounds);
			json_decref(o);
			return NULL;
		}
		bad |= json_array_append_new(
			rounds, json_pack("{s:I, s:o, s:o, s:o}", "cold_n", (json_int_t)c.n,
					  "cold_p50_ms", ms_or_null(&c, c.p50_ms), "bwrap_p50_ms",
					  ms_or_null(&w, w.p50_ms), "crun_p50_ms",
					  ms_or_null(&x, x.p50_ms)));
	}
	bad |= cr_bench_put(o, "per_round", rounds);

	double vs_crun = crun.n ? cold.p50_ms / crun.p50_ms : 0;
	double vs_bwrap = bwrap.n ? cold.p50_ms / bwrap.p50_ms : 0;
	bad |= cr_bench_put(o, "cold_p50_vs_crun_p50", crun.n ? json_real(vs_crun) : json_null());
	bad |= cr_bench_put(o, "cold_p50_vs_bwrap_p50",
			    bwrap.n ? json_real(vs_bwrap) : json_null());
	bad |= cr_bench_put(o, "cold_p95_vs_crun_p95",
			    crun.n ? json_real(cold.p95_ms / crun.p95_ms) : json_null());
	bad |= cr_bench_put(o, "cold_p95_vs_bwrap_p95",
			    bwrap.n ? json_real(cold.p95_ms / bwrap.p95_ms) : json_null());

	bool all_met = true, unknown = false;
	json_t *t = json_object();
	if (!t) {
		json_decref(o);
		return NULL;
	}
	bad |= cr_bench_put(t, "cold_p50_vs_crun_p50",
			    target_or_unknown(&b->crun, vs_crun, 0.5, &all_met, &unknown));
	bad |= cr_bench_put(t, "cold_p50_vs_bwrap_p50",
			    target_or_unknown(&b->bwrap, vs_bwrap, 1.5, &all_met, &unknown));
	bad |= cr_bench_put(t, "warm_exec_p50_ms",
			    cr_bench_target(warm.p50_ms, "at_most", 1, &all_met));
	bad |= cr_bench_put(o, "targets", t);
	/* false when one is missed; null (unknown) when none is missed but one could not be
	 * measured */
	bad |= cr_bench_put(o, "targets_met",
			    !all_met  ? json_false()
			    : unknown ? json_null()
				      : json_true());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* "12.34 ms", or "-" for a figure not measured */
static const char *ms_text(const struct summary *s, char *buf, size_t size)
{
	if (!s->n)
		return "-";
	snprintf(buf, size, "%.2f ms", s->p50_ms);
	return buf;
}

static void round_progress(const struct bench *b, unsigned k, unsigned n)
{
	const struct round *r0 = &b->rounds[k], *r1 = &b->rounds[k + 1];
	struct summary c, w, x;
	struct cr_error e;
	char cb[32], wb[32], xb[32];

	if (!b->opts->progress || n == 0)
		return;
	if (summarize(b->cold.v + r0->cold, r1->cold - r0->cold, &c, &e) < 0 ||
	    summarize(b->bwrap_s.v + r0->bwrap, r1->bwrap - r0->bwrap, &w, &e) < 0 ||
	    summarize(b->crun_s.v + r0->crun, r1->crun - r0->crun, &x, &e) < 0)
		return;
	cr_bench_progress(b->opts->progress, NAME,
			  "round %u/%u: %u iteration%s; p50 cold start %s, bwrap %s, crun %s",
			  k + 1, CR_BENCH_SANDBOX_ROUNDS, n, n == 1 ? "" : "s",
			  ms_text(&c, cb, sizeof(cb)), ms_text(&w, wb, sizeof(wb)),
			  ms_text(&x, xb, sizeof(xb)));
}

/* --- set-up -------------------------------------------------------------------------------- */

/* bwrap: found, its command line built, tried once (untimed: also a warm-up). */
static int setup_bwrap(struct bench *b, const struct system *sys, struct cr_error *err)
{
	struct baseline *bw = &b->bwrap;
	bw->name = "bwrap";
	if (!find_program("bwrap", bw->path, sizeof(bw->path))) {
		snprintf(bw->unavailable, sizeof(bw->unavailable),
			 "not installed (no bwrap in PATH; Debian: apt-get install bubblewrap)");
		snprintf(bw->path, sizeof(bw->path), "bwrap");
	}
	if (bwrap_program(bw, sys, &b->bwrap_prog) < 0)
		return cr_error_set(err, E2BIG, "bwrap: too many system directories");
	command_line(&b->bwrap_prog, bw->command, sizeof(bw->command));
	if (bw->unavailable[0])
		return 0;
	uint64_t ns;
	struct cr_error e;
	if (run_program(&b->rn, &b->bwrap_prog, &ns, &e) < 0) {
		snprintf(bw->unavailable, sizeof(bw->unavailable), "does not work here: %s", e.msg);
		return 0;
	}
	bw->available = true;
	return 0;
}

/* crun: found, its bundle made, wrapped where the host needs it, tried once. */
static int setup_crun(struct bench *b, const struct system *sys, struct cr_error *err)
{
	struct baseline *cr = &b->crun;
	int r;

	cr->name = "crun";
	if (!find_program("crun", cr->path, sizeof(cr->path))) {
		snprintf(cr->unavailable, sizeof(cr->unavailable),
			 "not installed (no crun in PATH; Debian: apt-get install crun)");
		snprintf(cr->path, sizeof(cr->path), "crun");
	}
	r = cr_bench_path_join(b->bundle, sizeof(b->bundle), b->work, "bundle", err);
	r = r ?: cr_bench_path_join(b->crun_root, sizeof(b->crun_root), b->work, "crun", err);
	if (r < 0)
		return r;
	/* crun refuses a hybrid host (cgroup2 mounted below a tmpfs /sys/fs/cgroup beside the
	 * v1 hierarchies) even with --cgroup-manager=disabled; with a tmpfs over the cgroup2
	 * mount, in a mount namespace of its own, it sees a legacy host and runs */
	b->crun_wrapped = strcmp(b->cgroup2, "/sys/fs/cgroup") != 0;
	struct program *p = &b->crun_prog;
	*p = (struct program){ .path = cr->path,
			       .private_mounts = b->crun_wrapped,
			       .tmpfs_over = b->crun_wrapped ? b->cgroup2 : NULL };
	size_t n = 0;
	p->argv[n++] = "crun";
	p->argv[n++] = "--root";
	p->argv[n++] = b->crun_root;
	p->argv[n++] = "--cgroup-manager=disabled";
	p->argv[n++] = "run";
	p->argv[n++] = "--bundle";
	p->argv[n++] = b->bundle;
	p->argv[n++] = b->container;
	p->argv[n] = NULL;
	snprintf(b->container, sizeof(b->container), "ID");
	command_line(p, cr->command, sizeof(cr->command));
	if (b->crun_wrapped)
		snprintf(b->crun_note, sizeof(b->crun_note),
			 "crun runs in a private mount namespace (/ a slave) with a tmpfs over %s "
			 "and --cgroup-manager=disabled: crun 1.8 refuses a hybrid cgroup host "
			 "otherwise; the container gets no cgroup of its own. The wrapper alone "
			 "(fork, unshare, two mounts, exec of /bin/true) is crun_wrapper_*",
			 b->cgroup2);
	else
		snprintf(b->crun_note, sizeof(b->crun_note),
			 "crun runs with --cgroup-manager=disabled: the container gets no cgroup "
			 "of its own");
	b->wrapper_prog = (struct program){ .path = TRUE_PATH,
					    .argv = { "true", NULL },
					    .private_mounts = true,
					    .tmpfs_over = b->cgroup2 };
	if (cr->unavailable[0])
		return 0;
	r = make_bundle(b->bundle, sys, err);
	if (r < 0)
		return r;
	if (mkdir(b->crun_root, 0700) < 0)
		return cr_error_errno(err, errno, "create %s", b->crun_root);
	uint64_t ns;
	struct cr_error e;
	if (run_crun(b, &ns, &e) < 0) {
		snprintf(cr->unavailable, sizeof(cr->unavailable), "does not work here: %s", e.msg);
		return 0;
	}
	cr->available = true;
	return 0;
}

static int check_opts(const struct cr_bench_sandbox_opts *opts, struct cr_error *err)
{
	struct stat st;

	if (opts->iterations < 1 || opts->iterations > CR_BENCH_SANDBOX_ITERATIONS_MAX)
		return cr_error_set(err, EINVAL, "iterations: %u is not 1 to %u", opts->iterations,
				    CR_BENCH_SANDBOX_ITERATIONS_MAX);
	int r = cr_bench_check_dir(opts->dir, err);
	if (r < 0)
		return r;
	if (!opts->init_path)
		return cr_error_set(err, EINVAL, "no corral-init");
	if (stat(opts->init_path, &st) < 0)
		return cr_error_errno(err, errno, "corral-init %s", opts->init_path);
	if (!S_ISREG(st.st_mode) || access(opts->init_path, X_OK) < 0)
		return cr_error_set(err, EACCES, "corral-init %s: not an executable file",
				    opts->init_path);
	if (geteuid() != 0)
		return cr_error_set(
			err, EPERM,
			"making sandboxes (cgroups, uid maps) needs root: run it as root");
	return 0;
}

int cr_bench_sandbox(const struct cr_bench_sandbox_opts *opts, json_t **ret, struct cr_error *err)
{
	_cleanup_(cr_bench_workdir_cleanup) struct cr_bench_workdir wd = { .name = NAME };
	_cleanup_(bench_teardown) struct bench b = { .opts = opts,
						     .warm_fd = -1,
						     .rn = { .null_fd = -1, .out_fd = -1 } };
	_cleanup_free_ char *cg2 = NULL;
	struct system sys;
	char path[PATH_MAX];
	int r;

	r = check_opts(opts, err);
	if (r < 0)
		return r;
	r = cr_cgroup2_mount(&cg2, err);
	if (r < 0)
		return r;
	snprintf(b.cgroup2, sizeof(b.cgroup2), "%s", cg2);
	r = system_entries(opts->init_path, &sys, err);
	if (r < 0)
		return r;

	r = cr_bench_workdir_make(&wd, opts->dir, WORKDIR_TEMPLATE, err);
	if (r < 0)
		return r;
	snprintf(b.work, sizeof(b.work), "%s", wd.path);
	r = cr_bench_path_join(path, sizeof(path), b.work, "baselines.out", err);
	if (r < 0)
		return r;
	b.rn.out_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (b.rn.out_fd < 0)
		return cr_error_errno(err, errno, "create %s", path);
	b.rn.null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (b.rn.null_fd < 0)
		return cr_error_errno(err, errno, "open /dev/null");

	char name[64];
	snprintf(name, sizeof(name), "corral-bench-sandbox.%d", (int)getpid());
	r = cr_cgroup_create(b.cgroup2, name, &b.cgroup, err);
	if (r < 0)
		return r;
	cr_sandbox_config_init(&b.cfg);
	b.cfg.state_dir = b.work;
	b.cfg.init_path = opts->init_path;
	b.cfg.uid_base = CR_SANDBOX_UID_BASE_DEFAULT;
	b.cfg.cgroup_parent = b.cgroup;
	b.spawn_prog = (struct program){ .path = TRUE_PATH, .argv = { "true", NULL } };

	cr_bench_progress(opts->progress, NAME,
			  "working in %s, sandboxes under cgroup %s; %u iterations in %u rounds",
			  b.work, b.cgroup, opts->iterations, CR_BENCH_SANDBOX_ROUNDS);
	r = setup_bwrap(&b, &sys, err);
	r = r ?: setup_crun(&b, &sys, err);
	if (r < 0)
		return r;
	const struct baseline *bases[] = { &b.bwrap, &b.crun };
	for (size_t i = 0; i < CR_ARRAY_SIZE(bases); i++)
		cr_bench_progress(opts->progress, NAME, "baseline %s: %s", bases[i]->name,
				  bases[i]->available ? bases[i]->command : bases[i]->unavailable);
	if (b.crun.available)
		cr_bench_progress(opts->progress, NAME, "%s", b.crun_note);

	/* the running sandbox of the round trips; its shell started and one exec made before
	 * any is timed, and one cold start as a warm-up */
	r = cr_sandbox_create(&b.cfg, &b.warm, NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "the warm sandbox");
	b.warm_fd = cr_sandbox_connect(b.warm, err);
	if (b.warm_fd < 0)
		return b.warm_fd;
	r = step(&b, STEP_CALLS, err);
	r = r ?: cold_start(&b, err);
	r = r ?: step(&b, STEP_SPAWN, err);
	if (r < 0)
		return cr_error_prefix(err, "warm-up");
	bench_done(&b);

	/* Interleaved: each iteration takes one sample of each kind, starting with a different
	 * kind each time, so that neither a machine's drift nor what one kind leaves behind (a
	 * namespace being torn down) falls on one kind more than on another. */
	unsigned it = 0;
	for (unsigned k = 0; k < CR_BENCH_SANDBOX_ROUNDS; k++) {
		unsigned n = opts->iterations / CR_BENCH_SANDBOX_ROUNDS +
			     (k < opts->iterations % CR_BENCH_SANDBOX_ROUNDS);
		b.rounds[k] = (struct round){ b.cold.n, b.bwrap_s.n, b.crun_s.n };
		for (unsigned i = 0; i < n; i++, it++) {
			for (unsigned s = 0; s < STEPS; s++) {
				if (cr_bench_cancelled(opts->cancel))
					return cr_bench_cancel_error(err);
				r = step(&b, (enum step)((it + s) % STEPS), err);
				if (r < 0)
					return r;
			}
		}
		b.rounds[k + 1] = (struct round){ b.cold.n, b.bwrap_s.n, b.crun_s.n };
		round_progress(&b, k, n);
	}

	close(b.warm_fd);
	b.warm_fd = -1;
	r = cr_sandbox_destroy(b.warm, false, err);
	if (r < 0)
		return cr_error_prefix(err, "destroy the warm sandbox");
	cr_sandbox_free(TAKE_PTR(b.warm));
	r = crun_sweep(&b, err);
	if (r < 0)
		return r;

	json_t *j = figures_json(&b);
	if (!j)
		return cr_error_set(err, ENOMEM, "no memory for the results");
	char *cg = TAKE_PTR(b.cgroup);
	r = cr_cgroup_destroy(cg, 5000, err);
	free(cg);
	if (r < 0) {
		json_decref(j);
		return cr_error_prefix(err, "remove the benchmark's cgroup");
	}
	cr_bench_progress(opts->progress, NAME, "removing %s", b.work);
	r = cr_bench_workdir_remove(&wd, err);
	if (r < 0) {
		json_decref(j);
		return r;
	}
	*ret = j;
	return 0;
}
