/* cgroups: the cgroup v2 manager. Finds the cgroup2 mount, creates and removes groups,
 * enables controllers, writes limits, moves and kills processes. Knows nothing of sessions
 * or sandboxes, and never touches a cgroup v1 hierarchy (on hybrid hosts those belong to the
 * host's init). */
#ifndef CORRAL_CGROUP_H
#define CORRAL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "corral/error.h"

/* Finds the first cgroup2 mount in mountinfo text (the format of /proc/self/mountinfo);
 * *ret_path is a new string owned by the caller. -ENOENT if there is none. */
int cr_cgroup2_parse_mountinfo(const char *mountinfo, char **ret_path, struct cr_error *err);

/* The cgroup2 mount point of this mount namespace, from /proc/self/mountinfo. */
int cr_cgroup2_mount(char **ret_path, struct cr_error *err);

/* Reads dir/file stripped of its trailing newline into a new string owned by the caller. */
int cr_cgroup_read(const char *dir, const char *file, char **ret, struct cr_error *err);

/* Writes value to dir/file (one write; the kernel's error is the answer). */
int cr_cgroup_write(const char *dir, const char *file, const char *value, struct cr_error *err);

/* Enables the space-separated controllers (e.g. "memory pids cpu") in dir's
 * cgroup.subtree_control, one at a time; the error names the first one refused. */
int cr_cgroup_enable(const char *dir, const char *controllers, struct cr_error *err);

/* Whether every space-separated name in want appears in the space-separated list have. */
int cr_cgroup_has_all(const char *have, const char *want);

/* Creates parent/name (which must not exist); *ret_path, if asked for, is owned by the caller. */
int cr_cgroup_create(const char *parent, const char *name, char **ret_path, struct cr_error *err);

/* Moves pid (0: the caller) into dir. */
int cr_cgroup_attach(const char *dir, pid_t pid, struct cr_error *err);

/* The cgroup id of dir: what bpf_get_current_cgroup_id() returns for its processes. */
int cr_cgroup_id(const char *dir, uint64_t *ret_id, struct cr_error *err);

/* Freezes (frozen true) or thaws every process in dir and its descendants (cgroup.freeze)
 * and waits up to timeout_ms until cgroup.events says it is done. -ETIMEDOUT otherwise. */
int cr_cgroup_freeze(const char *dir, bool frozen, int timeout_ms, struct cr_error *err);

/* Whether dir is frozen (cgroup.freeze reads 1). */
int cr_cgroup_frozen(const char *dir, bool *ret, struct cr_error *err);

/* Kills every process in dir and its descendants (cgroup.kill where the kernel has it,
 * else SIGKILL to each listed pid), waits up to timeout_ms for them to be gone, and removes
 * dir and its descendant groups. -ETIMEDOUT if processes remain. */
int cr_cgroup_destroy(const char *dir, int timeout_ms, struct cr_error *err);

#endif
