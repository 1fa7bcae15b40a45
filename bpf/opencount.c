/* bpf/opencount: loader of bpf/opencount.bpf.c. Owns the skeleton's lifetime; the program
 * stays attached exactly as long as the struct lives. */
#include <errno.h>
#include <stdlib.h>

#include "corral/bpf.h"
#include "bpf-internal.h"

#ifdef CONFIG_CORRAL_BPF_LSM

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/opencount.skel.h"

struct cr_bpf_opencount {
	struct opencount_bpf *skel;
};

void cr_bpf_opencount_free(struct cr_bpf_opencount *oc)
{
	if (!oc)
		return;
	opencount_bpf__destroy(oc->skel);
	free(oc);
}

int cr_bpf_opencount_new(struct cr_bpf_opencount **ret, struct cr_error *err)
{
	cr_bpf_quiet_libbpf();
	struct cr_bpf_opencount *oc = calloc(1, sizeof(*oc));
	if (!oc)
		return cr_error_errno(err, ENOMEM, "opencount");

	oc->skel = opencount_bpf__open();
	if (!oc->skel) {
		int e = errno;
		free(oc);
		return cr_error_errno(err, e, "open BPF object opencount");
	}
	int r = opencount_bpf__load(oc->skel);
	if (r < 0) {
		cr_bpf_opencount_free(oc);
		return cr_error_errno(err, -r, "load BPF LSM program opencount (lsm/file_open)");
	}
	r = opencount_bpf__attach(oc->skel);
	if (r < 0) {
		cr_bpf_opencount_free(oc);
		return cr_error_errno(err, -r, "attach BPF LSM program opencount (lsm/file_open)");
	}
	*ret = oc;
	return 0;
}

int cr_bpf_opencount_watch(struct cr_bpf_opencount *oc, uint64_t cgroup_id, struct cr_error *err)
{
	uint64_t zero = 0;
	int r = bpf_map__update_elem(oc->skel->maps.counts, &cgroup_id, sizeof(cgroup_id), &zero,
				     sizeof(zero), BPF_NOEXIST);
	if (r < 0)
		return cr_error_errno(err, -r, "watch cgroup %llu", (unsigned long long)cgroup_id);
	return 0;
}

int cr_bpf_opencount_read(struct cr_bpf_opencount *oc, uint64_t cgroup_id, uint64_t *ret_count,
			  struct cr_error *err)
{
	uint64_t count;
	int r = bpf_map__lookup_elem(oc->skel->maps.counts, &cgroup_id, sizeof(cgroup_id), &count,
				     sizeof(count), 0);
	if (r < 0)
		return cr_error_errno(err, -r, "read open count of cgroup %llu",
				      (unsigned long long)cgroup_id);
	*ret_count = count;
	return 0;
}

#else /* !CONFIG_CORRAL_BPF_LSM */

struct cr_bpf_opencount {
	int unused;
};

int cr_bpf_opencount_new(struct cr_bpf_opencount **ret, struct cr_error *err)
{
	(void)ret;
	return cr_error_set(err, EOPNOTSUPP,
			    "BPF LSM support is disabled in this build "
			    "(CONFIG_CORRAL_BPF_LSM)");
}

int cr_bpf_opencount_watch(struct cr_bpf_opencount *oc, uint64_t cgroup_id, struct cr_error *err)
{
	(void)oc;
	(void)cgroup_id;
	return cr_error_set(err, EOPNOTSUPP, "BPF LSM support is disabled in this build");
}

int cr_bpf_opencount_read(struct cr_bpf_opencount *oc, uint64_t cgroup_id, uint64_t *ret_count,
			  struct cr_error *err)
{
	(void)oc;
	(void)cgroup_id;
	(void)ret_count;
	return cr_error_set(err, EOPNOTSUPP, "BPF LSM support is disabled in this build");
}

void cr_bpf_opencount_free(struct cr_bpf_opencount *oc)
{
	(void)oc;
}

#endif

int cr_bpf_opencount_supported(struct cr_error *err)
{
	static int cached = -1;
	static struct cr_error cached_err;

	if (cached < 0) {
		struct cr_bpf_opencount *oc = NULL;
		cached = cr_bpf_opencount_new(&oc, &cached_err) == 0;
		cr_bpf_opencount_free(oc);
	}
	if (!cached && err)
		*err = cached_err;
	return cached;
}
