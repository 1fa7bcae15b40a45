/* bpf: corral's kernel programs (bpf/NAME.bpf.c), their loaders, and the probes that say
 * whether each kind of program really loads on the running kernel. A loader opens, sets
 * configuration, loads and attaches a skeleton; nothing is hand-rolled. Knows nothing of
 * sessions. */
#ifndef CORRAL_BPF_H
#define CORRAL_BPF_H

#include <stdint.h>

#include "corral/error.h"

/* The open-counting LSM program. Owned by the caller; free with cr_bpf_opencount_free(). */
struct cr_bpf_opencount;

/* Opens, loads and attaches the program. -EOPNOTSUPP when built without BPF LSM. */
int cr_bpf_opencount_new(struct cr_bpf_opencount **ret, struct cr_error *err);
/* Starts counting opens by processes whose cgroup id is cgroup_id. */
int cr_bpf_opencount_watch(struct cr_bpf_opencount *oc, uint64_t cgroup_id, struct cr_error *err);
/* Opens counted for a watched cgroup; -ENOENT if it is not watched. */
int cr_bpf_opencount_read(struct cr_bpf_opencount *oc, uint64_t cgroup_id, uint64_t *ret_count,
			  struct cr_error *err);
/* Detaches and frees; NULL is fine. */
void cr_bpf_opencount_free(struct cr_bpf_opencount *oc);

/* Tries, once per process, to load and attach the opencount LSM program and detaches it
 * again. Returns 1 if that worked, 0 if not (err says why, e.g. "...: Operation not
 * permitted"). The answer is cached; later calls repeat it and its message. */
int cr_bpf_opencount_supported(struct cr_error *err);

/* The active LSMs as a comma-separated list (/sys/kernel/security/lsm, or the
 * lsm_list_modules system call where securityfs is not mounted); owned by the caller.
 * -ENOENT when neither source exists. */
int cr_bpf_lsm_list(char **ret_list, struct cr_error *err);

/* Tries, once per process, to load a cgroup/connect4 program and attach it to a temporary
 * group under the cgroup2 mount cgroup2 (removed again). 1 if both worked, else 0 with err. */
int cr_bpf_cgroup_hooks_supported(const char *cgroup2, struct cr_error *err);

#endif
