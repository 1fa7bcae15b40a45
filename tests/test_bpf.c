/* Unit tests of bpf/: the opencount LSM program counts opens per watched cgroup (kernel
 * feature: BPF LSM), the cgroup hook probe, and the active LSM list. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/bpf.h"
#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/kconfig.h"
#include "helpers.h"

#define OPENS 50

static int open_files(void *arg)
{
	int n = *(int *)arg;
	for (int i = 0; i < n; i++) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 1;
		close(fd);
	}
	return 0;
}

Test(bpf, opencount_counts_opens_inside_the_watched_cgroup_only, .timeout = 60)
{
	struct cr_error err;
	cr_test_need(CR_ENABLED(CONFIG_CORRAL_BPF_LSM), "BPF LSM disabled in this build");
	int ok = cr_bpf_opencount_supported(&err);
	cr_test_need(ok, "BPF LSM unavailable: %s", cr_errno_name(err.code));

	_cleanup_free_ char *inside = cr_test_cgroup("oc-in", NULL);
	_cleanup_free_ char *empty = cr_test_cgroup("oc-empty", NULL);
	uint64_t in_id, empty_id, count;
	cr_assert_eq(cr_cgroup_id(inside, &in_id, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_cgroup_id(empty, &empty_id, &err), 0, "%s", err.msg);

	struct cr_bpf_opencount *oc = NULL;
	cr_assert_eq(cr_bpf_opencount_new(&oc, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_bpf_opencount_watch(oc, in_id, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_bpf_opencount_watch(oc, empty_id, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_bpf_opencount_read(oc, 12345, &count, &err), -ENOENT,
		     "an unwatched cgroup has no count");

	int inside_opens = OPENS, outside_opens = 4 * OPENS;
	cr_assert_eq(cr_test_run_in_cgroup(inside, open_files, &inside_opens), 0);
	/* outside: a process in the test's own cgroup, which is not watched */
	cr_assert_eq(cr_test_run_in_cgroup(NULL, open_files, &outside_opens), 0);

	cr_assert_eq(cr_bpf_opencount_read(oc, in_id, &count, &err), 0, "%s", err.msg);
	/* the child's own exit path may open nothing more; allow a few opens of libc's own */
	cr_expect(count >= OPENS && count < OPENS + 5, "opens counted inside: %llu (want %d)",
		  (unsigned long long)count, OPENS);
	cr_assert_eq(cr_bpf_opencount_read(oc, empty_id, &count, &err), 0, "%s", err.msg);
	cr_expect_eq(count, 0, "opens counted for a cgroup with no processes: %llu",
		     (unsigned long long)count);

	/* a fresh instance (the first one detached and freed) counts from zero, and only the
	 * opens made while it is attached */
	cr_bpf_opencount_free(oc);
	oc = NULL;
	cr_assert_eq(cr_test_run_in_cgroup(inside, open_files, &inside_opens), 0);
	cr_assert_eq(cr_bpf_opencount_new(&oc, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_bpf_opencount_watch(oc, in_id, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_bpf_opencount_read(oc, in_id, &count, &err), 0, "%s", err.msg);
	cr_expect_eq(count, 0, "a new instance starts at 0, not %llu", (unsigned long long)count);
	int few = 7;
	cr_assert_eq(cr_test_run_in_cgroup(inside, open_files, &few), 0);
	cr_assert_eq(cr_bpf_opencount_read(oc, in_id, &count, &err), 0, "%s", err.msg);
	cr_expect(count >= 7 && count < 12, "opens counted by the new instance: %llu",
		  (unsigned long long)count);
	cr_bpf_opencount_free(oc);

	cr_assert_eq(cr_cgroup_destroy(inside, 5000, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_cgroup_destroy(empty, 5000, &err), 0, "%s", err.msg);
}

Test(bpf, opencount_supported_repeats_its_answer_and_reason)
{
	struct cr_error a = { 0 }, b = { 0 };
	int first = cr_bpf_opencount_supported(&a);
	int second = cr_bpf_opencount_supported(&b);
	cr_assert_eq(first, second);
	if (!first) {
		cr_assert_str_eq(a.msg, b.msg);
		cr_assert_neq(a.code, 0);
	}
}

Test(bpf, cgroup_hooks_probe_leaves_no_group_behind, .timeout = 20)
{
	_cleanup_free_ char *mount = NULL;
	struct cr_error err;
	cr_test_need(cr_cgroup2_mount(&mount, &err) == 0, "cgroup2 unavailable: %s", err.msg);
	int ok = cr_bpf_cgroup_hooks_supported(mount, &err);
	cr_test_need(ok, "cgroup BPF hooks unavailable: %s", err.msg);

	char probe[4096];
	snprintf(probe, sizeof(probe), "%s/corral-probe-%d", mount, (int)getpid());
	struct stat st;
	cr_assert_eq(stat(probe, &st), -1, "%s left behind", probe);
}

Test(bpf, lsm_list_names_the_active_modules)
{
	_cleanup_free_ char *list = NULL;
	struct cr_error err;
	int r = cr_bpf_lsm_list(&list, &err);
	cr_test_need(r == 0, "active LSM list unknown: %s", err.msg);
	/* capability is always first-class since 6.8's list; older lists may omit it */
	cr_assert(strlen(list) > 0);
	cr_assert_null(strchr(list, '\n'));
	if (cr_test_in_vm())
		cr_assert(strstr(list, "bpf"), "the VM kernel has bpf in its LSM list: %s", list);
}
