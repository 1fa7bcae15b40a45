/* Unit tests for runtime/sandbox: identity, namespaces, the private root, the environment,
 * capabilities and clean-up, each tried from inside a real sandbox as an agent would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/sandbox.h"
#include "corral/seccomp.h"
#include "helpers.h"

#define UID_BASE 200000

struct run {
	char *dir; /* state directory */
	char *cgroup; /* parent cgroup of the sandbox's, made for the test */
	struct cr_sandbox *sb;
	char out[65536];
	size_t len;
	int status;
};

static char *init_path(void)
{
	const char *b = getenv("CORRAL_BUILD");
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/corral-init", b ? b : "build") > 0);
	return p;
}

/* Whether this host can make the namespaces at all (the VM must). */
static void need_namespaces(void)
{
	struct stat st;
	cr_test_need(stat("/proc/self/ns/user", &st) == 0, "no user namespaces");
}

static void cfg_defaults(struct cr_sandbox_config *cfg, const char *state, const char *init)
{
	cr_sandbox_config_init(cfg);
	cfg->state_dir = state;
	cfg->init_path = init;
	cfg->uid_base = UID_BASE;
	cfg->hostname = "box";
}

/* The test's own cgroup as the sandboxes' parent, so none is left on the host. */
static void cfg_cgroup(struct run *r, struct cr_sandbox_config *cfg)
{
	r->cgroup = cr_test_cgroup("sbx", NULL);
	cfg->cgroup_parent = r->cgroup;
}

/* Creates a sandbox running argv with its stdout and stderr on a pipe; returns the pipe's
 * read end (collect() reads it). */
static int start(struct run *r, struct cr_sandbox_config *cfg, const char *const *argv,
		 bool *ret_limits)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cfg->argv = argv;
	cfg->stdio[1] = cfg->stdio[2] = p[1];
	struct cr_error err;
	int rc = cr_sandbox_create(cfg, &r->sb, ret_limits, &err);
	close(p[1]);
	cr_assert_eq(rc, 0, "create: %s", err.msg);
	return p[0];
}

/* Reads the sandbox's output to the end (closing fd) and waits for its PID 1. */
static void collect(struct run *r, int fd, const char *what)
{
	ssize_t n;
	r->len = 0;
	while ((n = read(fd, r->out + r->len, sizeof(r->out) - 1 - r->len)) > 0)
		r->len += (size_t)n;
	close(fd);
	r->out[r->len] = '\0';
	if (getenv("CORRAL_TEST_VERBOSE"))
		fprintf(stderr, "--- sandbox output of: %s\n%s---\n", what, r->out);
	struct cr_error err;
	cr_assert_eq(cr_sandbox_wait(r->sb, 60000, &r->status, &err), 0, "%s", err.msg);
}

/* Runs script with /bin/sh -c in a new sandbox and collects its output and exit status; the
 * sandbox is left for the caller to inspect and destroy. */
static void run_in(struct run *r, struct cr_sandbox_config *cfg, const char *script)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	collect(r, start(r, cfg, argv, NULL), script);
}

static void done(struct run *r);

static void run_limited(struct run *r, const char *script, uint64_t memory_max, uint64_t pids_max)
{
	need_namespaces();
	r->dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, r->dir, init);
	cfg_cgroup(r, &cfg);
	cfg.memory_max = memory_max;
	cfg.pids_max = pids_max;
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	bool limits = false;
	int fd = start(r, &cfg, argv, &limits);
	if (!limits) {
		close(fd);
		done(r);
	}
	cr_test_need(limits, "cgroup limits unavailable (controllers cannot be enabled)");
	collect(r, fd, script);
}

static void run(struct run *r, const char *script)
{
	need_namespaces();
	r->dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, r->dir, init);
	cfg_cgroup(r, &cfg);
	run_in(r, &cfg, script);
}

static void done(struct run *r)
{
	struct cr_error err;
	if (r->sb) {
		char cg[4096];
		snprintf(cg, sizeof(cg), "%s", cr_sandbox_cgroup(r->sb));
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", cr_sandbox_dir(r->sb));
		cr_assert_eq(cr_sandbox_destroy(r->sb, false, &err), 0, "%s", err.msg);
		struct stat st;
		cr_assert_neq(stat(cg, &st), 0, "cgroup %s left after destroy", cg);
		cr_assert_neq(stat(dir, &st), 0, "%s left after destroy", dir);
		cr_sandbox_free(r->sb);
	}
	cr_test_rmrf(r->dir);
	free(r->dir);
	if (r->cgroup) {
		struct cr_error e;
		cr_assert_eq(cr_cgroup_destroy(r->cgroup, 5000, &e), 0, "%s", e.msg);
		free(r->cgroup);
	}
}

static bool exited_zero(const struct run *r)
{
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

Test(sandbox, uid_0_inside_is_an_unprivileged_host_uid, .timeout = 30)
{
	struct run r = { 0 };
	run(&r, "id -u; id -g; id -G; cat /proc/self/uid_map /proc/self/gid_map; "
		"echo x > /workspace/owned");
	cr_assert(exited_zero(&r), "status %d: %s", r.status, r.out);
	unsigned a, b, c;
	char line[4][64];
	cr_assert_eq(
		sscanf(r.out, "%63s %63s %63s %u %u %u", line[0], line[1], line[2], &a, &b, &c), 6,
		"%s", r.out);
	cr_assert_str_eq(line[0], "0");
	cr_assert_str_eq(line[1], "0");
	cr_assert_str_eq(line[2], "0", "no supplementary host groups: %s", r.out);
	cr_assert(a == 0 && b == UID_BASE && c == 65536, "uid_map %u %u %u", a, b, c);
	char path[4096];
	snprintf(path, sizeof(path), "%s/owned", cr_sandbox_workspace(r.sb));
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "the workspace is the host's %s", path);
	cr_assert_eq(st.st_uid, UID_BASE, "root inside writes as host uid %u", st.st_uid);
	done(&r);
}

static void *parked(void *arg)
{
	char b;
	while (read(*(int *)arg, &b, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* A threaded creator (corrald, corral bench sandbox) whose other thread has not run yet when
 * clone3 copies it: glibc's setgroups/setresuid wait for every thread of the process to be
 * started, and the child has none of them. The new thread shares this one's only CPU, so it
 * has not started when cr_sandbox_create runs (a new task does not preempt its parent). */
Test(sandbox, created_while_another_thread_of_the_creator_starts, .timeout = 30)
{
	need_namespaces();
	struct run r = { 0 };
	r.dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, r.dir, init);
	cfg_cgroup(&r, &cfg);
	cpu_set_t all, one;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	for (int i = 0; i < 5; i++) {
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, parked, &p[0]), 0);
		const char *argv[] = { "/bin/true", NULL };
		collect(&r, start(&r, &cfg, argv, NULL), "true");
		cr_assert(exited_zero(&r), "status %d: %s", r.status, r.out);
		struct cr_error err;
		cr_assert_eq(cr_sandbox_destroy(r.sb, false, &err), 0, "%s", err.msg);
		cr_sandbox_free(r.sb);
		r.sb = NULL;
		cr_assert_eq(write(p[1], "x", 1), 1);
		cr_assert_eq(pthread_join(t, NULL), 0);
	}
	close(p[0]);
	close(p[1]);
	sched_setaffinity(0, sizeof(all), &all);
	done(&r);
}

Test(sandbox, sees_only_its_own_processes_and_hostname, .timeout = 30)
{
	struct run r = { 0 };
	run(&r, "hostname; ls /proc | grep -c '^[0-9]'; tr '\\0' ' ' < /proc/1/cmdline");
	cr_assert(exited_zero(&r), "%s", r.out);
	char host[64], init[256];
	int procs;
	cr_assert_eq(sscanf(r.out, "%63s %d %255[^\n]", host, &procs, init), 3, "%s", r.out);
	cr_assert_str_eq(host, "box");
	cr_assert_leq(procs, 5, "%d processes visible: host processes leak in", procs);
	cr_assert(strstr(init, "corral-init"), "PID 1 is %s", init);
	done(&r);
}

Test(sandbox, root_and_system_binds_are_read_only_workspace_and_tmp_are_not, .timeout = 30)
{
	struct run r = { 0 };
	run(&r, "for f in /usr/x /x /etc/x /proc/sys/kernel/hostname; do"
		"  if echo 1 > $f; then echo WROTE $f; fi 2>/dev/null; done;"
		"echo hi > /workspace/f && echo hi > /tmp/f && echo WS-OK;"
		"mount -o remount,rw /usr 2>/dev/null && echo REMOUNTED; true");
	cr_assert(strstr(r.out, "WS-OK"), "%s", r.out);
	cr_assert_null(strstr(r.out, "WROTE"), "%s", r.out);
	cr_assert_null(strstr(r.out, "REMOUNTED"), "%s", r.out);
	done(&r);
}

Test(sandbox, environment_is_the_allowlist_only, .timeout = 30)
{
	setenv("CORRAL_TEST_SECRET", "s3cret", 1);
	struct run r = { 0 };
	run(&r, "env | sort");
	unsetenv("CORRAL_TEST_SECRET");
	cr_assert(exited_zero(&r), "%s", r.out);
	cr_assert_null(strstr(r.out, "s3cret"), "%s", r.out);
	cr_assert(strstr(r.out, "HOME=/workspace\n"), "%s", r.out);
	cr_assert(strstr(r.out, "PATH=/usr/local/sbin:"), "%s", r.out);
	/* nothing but the allowlist (sh adds PWD itself) */
	for (char *line = r.out; *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		static const char *const ok[] = { "PATH=",    "HOME=",	 "LANG=", "USER=",
						  "LOGNAME=", "SHELL=",	 "TERM=", "PWD=",
						  "SHLVL=",   "OLDPWD=", "_=" };
		bool found = false;
		for (size_t i = 0; i < CR_ARRAY_SIZE(ok); i++)
			found |= strncmp(line, ok[i], strlen(ok[i])) == 0;
		cr_assert(found, "unexpected variable: %.*s", (int)n, line);
		line = nl ? nl + 1 : line + n;
	}
	done(&r);
}

Test(sandbox, no_host_fd_no_capability_no_network_no_secrets, .timeout = 30)
{
	struct run r = { 0 };
	run(&r, "for fd in /proc/self/fd/*; do readlink $fd; done;"
		"grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status;"
		"grep -E '^NoNewPrivs' /proc/self/status;"
		"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ';"
		"ls /etc; test -e /etc/shadow && echo SHADOW; true");
	cr_assert(exited_zero(&r), "%s", r.out);
	for (char *line = r.out; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "/", 1) == 0 || strncmp(line, "pipe:", 5) == 0)
			cr_assert(strcmp(line, "/dev/null") == 0 ||
					  strncmp(line, "pipe:", 5) == 0 ||
					  strncmp(line, "/proc/", 6) == 0,
				  "fd open on %s", line);
		if (strncmp(line, "Cap", 3) == 0)
			cr_assert(strstr(line, "0000000000000000"), "%s", line);
		if (strncmp(line, "NoNewPrivs", 10) == 0)
			cr_assert(strstr(line, "1"), "%s", line);
		if (strcmp(line, "eth0") == 0 || strncmp(line, "veth", 4) == 0)
			cr_assert_fail("interface %s visible", line);
		cr_assert_str_neq(line, "SHADOW");
		line = nl ? nl + 1 : line + strlen(line);
	}
	done(&r);
}

Test(sandbox, bad_configuration_is_refused_and_leaves_nothing, .timeout = 30)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	struct cr_sandbox *sb = NULL;
	struct cr_error err;
	const char *argv[] = { "/bin/true", NULL };

	cfg_defaults(&cfg, dir, init);
	cfg.argv = argv;
	cfg.uid_base = 0;
	cr_assert_eq(cr_sandbox_create(&cfg, &sb, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "uid_base"), "%s", err.msg);

	cfg_defaults(&cfg, dir, "/nonexistent/corral-init");
	cfg.argv = argv;
	cr_assert_eq(cr_sandbox_create(&cfg, &sb, NULL, &err), -ENOENT);

	const char *env[] = { "1BAD=x", NULL };
	cfg_defaults(&cfg, dir, init);
	cfg.argv = argv;
	cfg.env = env;
	cr_assert_eq(cr_sandbox_create(&cfg, &sb, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "1BAD"), "%s", err.msg);

	/* a rootfs that is not there fails before anything runs, and cleans up */
	need_namespaces();
	cfg_defaults(&cfg, dir, init);
	_cleanup_free_ char *cg = cr_test_cgroup("sbx", NULL);
	cfg.cgroup_parent = cg;
	cfg.argv = argv;
	cfg.rootfs = "/nonexistent-rootfs";
	cr_assert_lt(cr_sandbox_create(&cfg, &sb, NULL, &err), 0);
	cr_assert(strstr(err.msg, "/nonexistent-rootfs"), "%s", err.msg);
	char path[4096];
	snprintf(path, sizeof(path), "%s/sandboxes", dir);
	int n = 0;
	DIR *d = opendir(path);
	for (struct dirent *de; d && (de = readdir(d));)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	cr_assert_eq(n, 0, "a failed create left %d sandbox directories", n);
	cr_assert_eq(cr_cgroup_destroy(cg, 5000, &err), 0, "a failed create left a cgroup: %s",
		     err.msg);
	cr_test_rmrf(dir);
}

Test(sandbox, a_fork_bomb_stops_at_pids_max, .timeout = 60)
{
	struct run r = { 0 };
	/* 200 sleepers wanted, pids.max 40. A shell that cannot fork gives up, so the loop runs
	 * in a subshell that notes each sleeper it started; the count is taken with builtins
	 * only, as nothing can fork any more. */
	run_limited(&r,
		    "( i=0; while [ $i -lt 200 ]; do sleep 5 & echo x >> /tmp/n; i=$((i+1)); "
		    "done ) 2>/dev/null; n=0; while read l; do n=$((n+1)); done < /tmp/n; "
		    "echo started $n",
		    0, 40);
	const char *p = strstr(r.out, "started ");
	cr_assert_not_null(p, "%s", r.out);
	int n = atoi(p + 8);
	cr_assert(n > 0 && n < 40, "%d sleepers under pids.max 40", n);
	_cleanup_free_ char *events = NULL;
	struct cr_error err;
	cr_assert_eq(cr_cgroup_read(cr_sandbox_cgroup(r.sb), "pids.events", &events, &err), 0, "%s",
		     err.msg);
	cr_assert(strstr(events, "max ") && atoi(strstr(events, "max ") + 4) > 0,
		  "the kernel refused no fork: %s", events);
	done(&r); /* and cgroup.kill ends the sleepers */
}

Test(sandbox, an_allocation_above_memory_max_is_oom_killed, .timeout = 60)
{
	struct run r = { 0 };
	/* dd allocates its whole 256 MiB block at once; memory.max is 64 MiB, no swap */
	run_limited(&r, "dd if=/dev/zero of=/dev/null bs=256M count=1; echo dd $?", 64 << 20, 0);
	uint64_t kills = 0;
	struct cr_error err;
	cr_assert_eq(cr_sandbox_oom_kills(r.sb, &kills, &err), 0, "%s", err.msg);
	cr_assert_geq(kills, 1, "no OOM kill recorded: %s", r.out);
	cr_assert(strstr(r.out, "dd 137"), "dd was not SIGKILLed: %s", r.out);
	done(&r);
}

/* What stops each attempt of tests/escape-probe, and the answer that shows it. */
static const struct {
	const char *attempt, *want, *layer, *seccomp_rule;
} escapes[] = {
	{ "bpf", "EPERM", "seccomp", "bpf" },
	{ "perf_event_open", "EPERM", "seccomp", "perf_event_open" },
	{ "keyctl", "EPERM", "seccomp", "keyctl" },
	{ "userfaultfd", "EPERM", "seccomp", "userfaultfd" },
	{ "io_uring_setup", "EPERM", "seccomp", "io_uring_setup" },
	{ "mount", "EPERM", "seccomp (and no CAP_SYS_ADMIN)", "mount" },
	{ "open_by_handle_at", "EPERM", "seccomp (and no CAP_DAC_READ_SEARCH)",
	  "open_by_handle_at" },
	{ "TIOCSTI", "EPERM", "seccomp", "ioctl" },
	{ "unshare", "EPERM", "seccomp", "unshare" },
	{ "ptrace", "EPERM", "seccomp", "ptrace" },
	{ "chroot", "EPERM", "seccomp", "chroot" },
	{ "mknod", "EPERM", "capabilities (no CAP_MKNOD)", NULL },
	{ "kill_host_pid", "ESRCH", "pid namespace", NULL },
	{ "host_shadow", "ENOENT", "mount namespace (its own root)", NULL },
	{ "proc_sys_write", "EACCES", "ownership (host root's files, unmapped here)", NULL },
	{ "proc_sys_mount", "EROFS", "read-only mount of /proc/sys", NULL },
	{ "cgroup_write", "ENOENT", "no cgroup file system in the sandbox", NULL },
	{ "host_loopback", "ECONNREFUSED", "network namespace (its own lo)", NULL },
};

Test(sandbox, a_hostile_agent_is_stopped_and_we_know_by_what, .timeout = 60)
{
	need_namespaces();
	struct run r = { 0 };
	r.dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	char ws[2048], probe[4096], cmd[8192], pid[16], port[16];
	snprintf(ws, sizeof(ws), "%s/ws", r.dir);
	cr_assert_eq(mkdir(ws, 0755), 0);
	const char *b = getenv("CORRAL_BUILD");
	snprintf(cmd, sizeof(cmd), "cp %s/tests/escape-probe %s/escape-probe", b ? b : "build", ws);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(probe, sizeof(probe), "%s/escape-probe", ws);

	/* a service on the host's loopback the sandbox must not reach */
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	cr_assert(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 4) == 0 &&
		  getsockname(l, (struct sockaddr *)&a, &alen) == 0);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));

	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, r.dir, init);
	cfg_cgroup(&r, &cfg);
	cfg.workspace = ws;
	const char *argv[] = { "/workspace/escape-probe", pid, port, NULL };
	collect(&r, start(&r, &cfg, argv, NULL), "escape-probe");
	close(l);
	struct cr_error err;
	cr_assert(exited_zero(&r), "probe status %d: %s", r.status, r.out);

	size_t nrules;
	const struct cr_seccomp_rule *rules = cr_seccomp_rules(&nrules);
	for (size_t i = 0; i < CR_ARRAY_SIZE(escapes); i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s ", escapes[i].attempt);
		const char *line = strstr(r.out, key);
		cr_assert_not_null(line, "no answer for %s in: %s", escapes[i].attempt, r.out);
		char got[32] = "";
		sscanf(line + strlen(key), "%31s", got);
		cr_assert_str_eq(got, escapes[i].want, "%s: got %s, want %s (%s)",
				 escapes[i].attempt, got, escapes[i].want, escapes[i].layer);
		if (escapes[i].seccomp_rule) {
			bool listed = false;
			for (size_t k = 0; k < nrules; k++)
				listed |= strcmp(rules[k].syscall, escapes[i].seccomp_rule) == 0;
			cr_assert(listed, "%s: said to be seccomp's, but no rule for %s",
				  escapes[i].attempt, escapes[i].seccomp_rule);
		}
		cr_log_info("%-18s %-13s stopped by %s", escapes[i].attempt, got, escapes[i].layer);
	}
	/* a workspace given by the caller outlives the sandbox */
	cr_assert_eq(cr_sandbox_destroy(r.sb, false, &err), 0, "%s", err.msg);
	cr_assert_eq(access(probe, F_OK), 0, "the given workspace was removed with the sandbox");
	cr_sandbox_free(r.sb);
	r.sb = NULL;
	done(&r);
}

/* In a private network namespace playing the host: a sandbox with egress gets eth0 and a
 * default route, reaches a listener on its host-side address, and is seen there with its own
 * address (its identity on the host); destroy leaves no interface. Exit status: failing step. */
struct egress_args {
	const char *state, *cgroup;
};

/* Whether any cr- interface is left in this network namespace (or they cannot be listed). */
static bool veths_left(void)
{
	char **names = NULL;
	size_t n;
	struct cr_error err;
	bool left = cr_net_list_veths(&names, &n, &err) < 0 || n != 0;
	cr_net_names_free(names);
	return left;
}

static int egress_child(void *arg)
{
	const struct egress_args *ea = arg;
	const char *state = ea->state;
	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	struct cr_net_range range;
	struct in_addr host, sbx;
	uint8_t prefix;
	struct cr_error err;
	if (cr_net_range_parse("10.213.0.0/24", &range, &err) < 0 ||
	    cr_net_pair_addresses(&range, 3, &host, &sbx, &prefix, &err) < 0)
		return 10;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		return 11;
	char script[512], hs[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &host, hs, sizeof(hs));
	snprintf(script, sizeof(script),
		 "grep -q eth0 /proc/net/dev || exit 3; grep -q '^eth0\t00000000' /proc/net/route "
		 "|| exit 4; if command -v bash >/dev/null; then bash -c 'echo hi > "
		 "/dev/tcp/%s/%d'; else echo hi | nc %s %d; fi",
		 hs, ntohs(a.sin_port), hs, ntohs(a.sin_port));
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, state, init);
	cfg.cgroup_parent = ea->cgroup;
	cfg.egress_range = &range;
	cfg.egress_index = 3;
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	cfg.argv = argv;
	struct cr_sandbox *sb;
	if (cr_sandbox_create(&cfg, &sb, NULL, &err) < 0) {
		fprintf(stderr, "create: %s\n", err.msg);
		return 12;
	}
	int step = 0;
	struct pollfd p = { .fd = l, .events = POLLIN };
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char buf[8] = "";
	int c = -1;
	if (poll(&p, 1, 20000) != 1 ||
	    (c = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC)) < 0)
		step = 13;
	else if (peer.sin_addr.s_addr != sbx.s_addr)
		step = 14; /* the host sees the sandbox's own address */
	else if (read(c, buf, sizeof(buf) - 1) < 2 || strncmp(buf, "hi", 2) != 0)
		step = 15;
	if (c >= 0)
		close(c); /* (busybox nc exits only when the other side closes) */
	int status;
	if (cr_sandbox_wait(sb, 20000, &status, &err) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "sandbox script: status %d\n", status);
		step = step ?: 16;
	}
	if (cr_sandbox_destroy(sb, false, &err) < 0)
		step = step ?: 17;
	cr_sandbox_free(sb);
	if (veths_left())
		step = step ?: 18;
	return step;
}

/* Runs an egress scenario in a child with its own network namespace, a state directory and a
 * cgroup of the test's; the cgroup is gone before the verdict. */
static void egress_scenario(int (*child)(void *), const char *what)
{
	need_namespaces();
	_cleanup_free_ char *dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *cg = cr_test_cgroup("sbx", NULL);
	struct egress_args ea = { dir, cg };
	int r = cr_test_run_in_cgroup(NULL, child, &ea);
	struct cr_error err;
	cr_assert_eq(cr_cgroup_destroy(cg, 5000, &err), 0, "%s", err.msg);
	cr_test_need(r != 77, "network namespaces unavailable");
	cr_assert_eq(r, 0, "%s scenario failed at step %d", what, r);
	cr_test_rmrf(dir);
}

Test(sandbox, egress_is_a_veth_pair_and_the_host_sees_the_sandbox_address, .timeout = 60)
{
	egress_scenario(egress_child, "egress");
}

/* Sandboxes with CR_SANDBOX_EGRESS_AUTO get the lowest free address pairs, each its own; an
 * address names its sandbox; a destroyed sandbox's pair is given out again. */
static int egress_auto_child(void *arg)
{
	const struct egress_args *ea = arg;
	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	struct cr_net_range range;
	struct cr_error err;
	if (cr_net_range_parse("10.214.0.0/29", &range, &err) < 0) /* two pairs only */
		return 10;
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, ea->state, init);
	cfg.cgroup_parent = ea->cgroup;
	cfg.egress_range = &range;
	cfg.egress_index = CR_SANDBOX_EGRESS_AUTO;
	struct cr_sandbox *a = NULL, *b = NULL, *c = NULL;
	int step = 11;
	if (cr_sandbox_create(&cfg, &a, NULL, &err) < 0 ||
	    cr_sandbox_create(&cfg, &b, NULL, &err) < 0)
		goto out;
	step = 12;
	struct in_addr want_a, want_b, host;
	uint8_t prefix;
	cr_net_pair_addresses(&range, 0, &host, &want_a, &prefix, NULL);
	cr_net_pair_addresses(&range, 1, &host, &want_b, &prefix, NULL);
	if (cr_sandbox_veth(a)->sandbox_addr.s_addr != want_a.s_addr ||
	    cr_sandbox_veth(b)->sandbox_addr.s_addr != want_b.s_addr)
		goto out;
	step = 13;
	char id[CR_SANDBOX_ID_MAX];
	if (cr_sandbox_find_address(ea->state, &want_b, id, &err) < 0 ||
	    strcmp(id, cr_sandbox_id(b)) != 0)
		goto out;
	step = 14; /* the range is used up */
	if (cr_sandbox_create(&cfg, &c, NULL, &err) != -EADDRNOTAVAIL)
		goto out;
	step = 15; /* a's pair is free again once a is gone */
	if (cr_sandbox_destroy(a, false, &err) < 0)
		goto out;
	cr_sandbox_free(a);
	a = NULL;
	if (cr_sandbox_find_address(ea->state, &want_a, id, &err) != -ENOENT ||
	    cr_sandbox_create(&cfg, &c, NULL, &err) < 0 ||
	    cr_sandbox_veth(c)->sandbox_addr.s_addr != want_a.s_addr)
		goto out;
	step = 0;
out:
	if (step)
		fprintf(stderr, "egress auto, step %d: %s\n", step, err.msg);
	struct cr_sandbox *all[] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		if (all[i] && cr_sandbox_destroy(all[i], false, &err) < 0)
			step = step ?: 16;
		cr_sandbox_free(all[i]);
	}
	if (veths_left())
		step = step ?: 17;
	return step;
}

Test(sandbox, egress_auto_gives_each_sandbox_its_own_address, .timeout = 60)
{
	egress_scenario(egress_auto_child, "egress auto");
}

Test(sandbox, found_again_by_id_paused_resumed_and_destroyed_from_another_handle, .timeout = 60)
{
	need_namespaces();
	struct run r = { 0 };
	r.dir = cr_test_tmpdir("sbx");
	_cleanup_free_ char *init = init_path();
	struct cr_sandbox_config cfg;
	cfg_defaults(&cfg, r.dir, init);
	cfg_cgroup(&r, &cfg);
	const char *argv[] = { "/bin/sleep", "60", NULL };
	cfg.argv = argv;
	struct cr_error err;
	cr_assert_eq(cr_sandbox_create(&cfg, &r.sb, NULL, &err), 0, "%s", err.msg);

	char **ids;
	size_t n;
	cr_assert_eq(cr_sandbox_list(r.dir, &ids, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(ids[0], cr_sandbox_id(r.sb));
	free(ids[0]);
	free(ids);

	struct cr_sandbox *other;
	cr_assert_eq(cr_sandbox_open(r.dir, cr_sandbox_id(r.sb), &other, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_sandbox_pid(other), cr_sandbox_pid(r.sb));
	enum cr_sandbox_state st;
	cr_assert_eq(cr_sandbox_state(other, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st, CR_SANDBOX_RUNNING, "%s", cr_sandbox_state_name(st));
	cr_assert_eq(cr_sandbox_pause(other, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_sandbox_state(other, &st, &err), 0);
	cr_assert_eq(st, CR_SANDBOX_PAUSED, "%s", cr_sandbox_state_name(st));
	cr_assert_eq(cr_sandbox_resume(other, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_sandbox_state(other, &st, &err), 0);
	cr_assert_eq(st, CR_SANDBOX_RUNNING, "%s", cr_sandbox_state_name(st));
	int ws;
	cr_assert_eq(cr_sandbox_wait(other, 0, &ws, &err), -ECHILD, "not our child to wait for");

	/* bad ids */
	struct cr_sandbox *x;
	cr_assert_eq(cr_sandbox_open(r.dir, "../../etc", &x, &err), -EINVAL);
	cr_assert_eq(cr_sandbox_open(r.dir, "sbx_00000000000000000000000000", &x, &err), -ENOENT);

	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", cr_sandbox_dir(other));
	cr_assert_eq(cr_sandbox_destroy(other, false, &err), 0, "%s", err.msg);
	cr_sandbox_free(other);
	cr_assert_eq(access(dir, F_OK), -1, "%s left after destroy", dir);
	cr_assert_eq(cr_sandbox_wait(r.sb, 10000, &ws, &err), 0, "%s", err.msg);
	cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "PID 1 ended with %d", ws);
	cr_assert_eq(cr_sandbox_list(r.dir, &ids, &n, &err), 0);
	cr_assert_eq(n, 0, "still listed after destroy");
	free(ids);
	cr_sandbox_free(r.sb);
	r.sb = NULL;
	done(&r);
}
