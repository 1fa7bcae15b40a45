/* Unit tests of cgroups/: mountinfo parsing, group life cycle on the real cgroup2 mount, and
 * (kernel feature: memory, pids and cpu controllers) a pids.max limit refusing a fork. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "helpers.h"

static const char hybrid_mountinfo[] =
	"25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
	"35 33 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory\n"
	"34 33 0:29 / /sys/fs/cgroup/unified\\040dir rw,nosuid,nodev shared:10 - cgroup2 cgroup2 "
	"rw,nsdelegate\n";

Test(cgroup, mountinfo_finds_cgroup2_among_v1_and_unescapes)
{
	_cleanup_free_ char *path = NULL;
	struct cr_error err;
	cr_assert_eq(cr_cgroup2_parse_mountinfo(hybrid_mountinfo, &path, &err), 0, "%s", err.msg);
	cr_assert_str_eq(path, "/sys/fs/cgroup/unified dir");
}

Test(cgroup, mountinfo_with_optional_fields)
{
	_cleanup_free_ char *path = NULL;
	const char text[] = "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 "
			    "cgroup2 rw";
	cr_assert_eq(cr_cgroup2_parse_mountinfo(text, &path, NULL), 0);
	cr_assert_str_eq(path, "/sys/fs/cgroup");
}

Test(cgroup, mountinfo_without_cgroup2_is_enoent)
{
	char *path = NULL;
	struct cr_error err;
	const char text[] = "35 33 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
	cr_assert_eq(cr_cgroup2_parse_mountinfo(text, &path, &err), -ENOENT);
	cr_assert_null(path);
	cr_assert_str_eq(err.msg, "no cgroup2 file system is mounted");
	cr_assert_eq(cr_cgroup2_parse_mountinfo("", &path, NULL), -ENOENT);
}

Test(cgroup, has_all_matches_whole_words)
{
	cr_assert(cr_cgroup_has_all("cpuset cpu io memory pids", "memory pids cpu"));
	cr_assert_not(cr_cgroup_has_all("cpuset io memory pids", "memory pids cpu"));
	cr_assert_not(cr_cgroup_has_all("hugetlb", "memory"));
	cr_assert(cr_cgroup_has_all("hugetlb", ""));
}

Test(cgroup, create_refuses_names_that_escape)
{
	struct cr_error err;
	cr_assert_eq(cr_cgroup_create("/tmp", "../x", NULL, &err), -EINVAL);
	cr_assert_eq(cr_cgroup_create("/tmp", "..", NULL, &err), -EINVAL);
	cr_assert_eq(cr_cgroup_create("/tmp", "", NULL, &err), -EINVAL);
}

static __attribute__((noreturn)) void sleep_forever(void)
{
	for (;;)
		pause();
}

Test(cgroup, destroy_kills_members_and_removes_nested_groups, .timeout = 20)
{
	_cleanup_free_ char *cg = cr_test_cgroup("destroy", NULL);
	_cleanup_free_ char *sub = NULL;
	struct cr_error err;
	cr_assert_eq(cr_cgroup_create(cg, "nested", &sub, &err), 0, "%s", err.msg);

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (cr_cgroup_attach(sub, 0, NULL) < 0)
			_exit(1);
		sleep_forever();
	}
	/* wait until the child is in the group */
	for (int i = 0; i < 2000; i++) {
		_cleanup_free_ char *procs = NULL;
		cr_assert_eq(cr_cgroup_read(sub, "cgroup.procs", &procs, &err), 0, "%s", err.msg);
		if (*procs)
			break;
		usleep(1000);
	}
	uint64_t id;
	cr_assert_eq(cr_cgroup_id(cg, &id, &err), 0);
	cr_assert_gt(id, 1);

	cr_assert_eq(cr_cgroup_destroy(cg, 5000, &err), 0, "%s", err.msg);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	struct stat st;
	cr_assert_eq(stat(cg, &st), -1);
	cr_assert_eq(errno, ENOENT);
}

Test(cgroup, write_error_names_file_and_value)
{
	_cleanup_free_ char *cg = cr_test_cgroup("badwrite", NULL);
	struct cr_error err;
	int r = cr_cgroup_write(cg, "cgroup.procs", "not-a-pid", &err);
	cr_assert_lt(r, 0);
	cr_assert(strstr(err.msg, "\"not-a-pid\"") && strstr(err.msg, "cgroup.procs"), "%s",
		  err.msg);
	cr_assert_eq(cr_cgroup_destroy(cg, 5000, &err), 0, "%s", err.msg);
}

/* In a cgroup with pids.max = 4 the caller is one task; forks until refused. */
static int fork_until_refused(void *arg)
{
	(void)arg;
	pid_t kids[16];
	int n = 0, result = 100;
	for (; n < 16; n++) {
		kids[n] = fork();
		if (kids[n] == 0) {
			pause();
			_exit(0);
		}
		if (kids[n] < 0) {
			result = errno == EAGAIN ? n : 101;
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	return result;
}

Test(cgroup, pids_max_refuses_a_fork, .timeout = 30)
{
	_cleanup_free_ char *mount = NULL, *available = NULL;
	struct cr_error err;
	cr_test_need(cr_cgroup2_mount(&mount, &err) == 0, "cgroup2 unavailable: %s", err.msg);
	cr_assert_eq(cr_cgroup_read(mount, "cgroup.controllers", &available, &err), 0, "%s",
		     err.msg);
	cr_test_need(cr_cgroup_has_all(available, "memory pids cpu"),
		     "cgroup2 controllers memory, pids, cpu unavailable (offered: \"%s\")",
		     available);

	cr_assert_eq(cr_cgroup_enable(mount, "memory pids cpu", &err), 0, "%s", err.msg);
	_cleanup_free_ char *parent = cr_test_cgroup("pids", NULL);
	_cleanup_free_ char *leaf = NULL;
	cr_assert_eq(cr_cgroup_enable(parent, "memory pids cpu", &err), 0, "%s", err.msg);
	_cleanup_free_ char *enabled = NULL;
	cr_assert_eq(cr_cgroup_read(parent, "cgroup.subtree_control", &enabled, &err), 0);
	cr_assert(cr_cgroup_has_all(enabled, "memory pids cpu"), "enabled: %s", enabled);
	cr_assert_eq(cr_cgroup_create(parent, "leaf", &leaf, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_cgroup_write(leaf, "pids.max", "4", &err), 0, "%s", err.msg);

	int forked = cr_test_run_in_cgroup(leaf, fork_until_refused, NULL);
	cr_expect_eq(forked, 3, "forks before EAGAIN: %d (want 3 with pids.max=4)", forked);

	_cleanup_free_ char *events = NULL;
	cr_assert_eq(cr_cgroup_read(leaf, "pids.events", &events, &err), 0, "%s", err.msg);
	cr_expect(strstr(events, "max ") && !strstr(events, "max 0"), "pids.events: %s", events);
	cr_assert_eq(cr_cgroup_destroy(parent, 5000, &err), 0, "%s", err.msg);
}
