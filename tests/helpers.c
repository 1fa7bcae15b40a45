/* tests/helpers: summary line, VM-aware skipping, per-test cgroups. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/hooks.h>
#include <criterion/stats.h>

#include "corral/cgroup.h"
#include "corral/clock.h"
#include "helpers.h"

/* Criterion prints a skip's reason only when verbose; a skip must always say why. */
ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
	if (stats->test_status == CR_STATUS_SKIPPED)
		printf("[SKIP] %s::%s: %s\n", stats->test->category, stats->test->name,
		       stats->message ? stats->message : "(no reason given)");
}

/* Criterion's own synthesis line leaves skipped tests out; this one names them. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	printf("unit: %zu passed, %zu failed, %zu skipped\n", stats->tests_passed,
	       stats->tests_failed + stats->tests_crashed, stats->tests_skipped);
	fflush(stdout);
}

bool cr_test_in_vm(void)
{
	const char *v = getenv("CORRAL_VM");
	return v && strcmp(v, "1") == 0;
}

char *cr_test_cgroup(const char *tag, char **ret_mount)
{
	struct cr_error err;
	char *mount = NULL;
	int r = cr_cgroup2_mount(&mount, &err);
	cr_test_need(r == 0, "cgroup2 unavailable: %s", err.msg);

	/* the run's tag (tests/lib/host-leaks.bash): the runner judges only its own groups */
	const char *run = getenv("CORRAL_TEST_RUN");
	char name[128];
	snprintf(name, sizeof(name), "corral-test-%s-%d-%s", run && *run ? run : "0", (int)getpid(),
		 tag);
	char *path = NULL;
	r = cr_cgroup_create(mount, name, &path, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	if (ret_mount)
		*ret_mount = mount;
	else
		free(mount);
	return path;
}

int cr_test_run_in_cgroup(const char *cgroup, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct cr_error err;
		if (cgroup && cr_cgroup_attach(cgroup, 0, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			_exit(120);
		}
		_exit(fn(arg));
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *cr_test_tmpdir(const char *tag)
{
	char *path = NULL;
	const char *tmp = getenv("TMPDIR");
	cr_assert_geq(asprintf(&path, "%s/corral-test-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag),
		      0);
	cr_assert_not_null(mkdtemp(path), "mkdtemp %s", path);
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0; /* keep going: remove what can be removed */
}

void cr_test_rmrf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* corral-init run in dir with fd as its fd 3, given with option (--serve or --listen). */
static pid_t spawn_init(const char *dir, int fd, const char *option)
{
	const char *build = getenv("CORRAL_BUILD");
	char rel[PATH_MAX], prog[PATH_MAX];
	snprintf(rel, sizeof(rel), "%s/corral-init", build ? build : "build");
	/* Absolute: the server starts in dir. */
	cr_assert_not_null(realpath(rel, prog), "%s: not built (make)", rel);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
			_exit(126);
		if (chdir(dir) < 0)
			_exit(126);
		execl(prog, "corral-init", option, "3", (char *)NULL);
		_exit(127);
	}
	close(fd);
	return pid;
}

pid_t cr_test_spawn_init(const char *dir, int *ret_fd)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*ret_fd = sv[0];
	return spawn_init(dir, sv[1], "--serve");
}

pid_t cr_test_spawn_listening_init(const char *dir, struct sockaddr_un *ret_addr)
{
	*ret_addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	cr_assert_lt(
		snprintf(ret_addr->sun_path, sizeof(ret_addr->sun_path), "%s/control.sock", dir),
		(int)sizeof(ret_addr->sun_path));
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(l >= 0 && bind(l, (struct sockaddr *)ret_addr, sizeof(*ret_addr)) == 0 &&
			  listen(l, 64) == 0,
		  "control socket %s: %s", ret_addr->sun_path, strerror(errno));
	return spawn_init(dir, l, "--listen");
}

int cr_test_close_init(pid_t pid, int fd)
{
	if (fd >= 0)
		close(fd);
	if (pid <= 0)
		return 0;
	int status = -1;
	for (int64_t end = cr_now_ms() + 10000; cr_now_ms() < end;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(5000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert_fail("corral-init did not exit within 10 s of its socket closing");
	return -1;
}
