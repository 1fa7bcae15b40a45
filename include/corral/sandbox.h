/* runtime/sandbox: the hands. Creates a sandbox (clone3 into new user, mount, pid, net, uts,
 * ipc and cgroup namespaces and straight into a fresh cgroup), builds its private root from a
 * mount plan (read-only host binds or a rootfs directory, a writable /workspace kept on the
 * host, tmpfs /tmp, fresh /proc with masked paths, a minimal /dev), drops every capability,
 * sets no_new_privs and the seccomp filter, and execs corral-init as its PID 1. Destroys it with
 * cgroup.kill. Never mounts anything in the host's mount namespace, never maps a sandbox uid to
 * host root, and never lets a host fd or environment variable into the sandbox. */
#ifndef CORRAL_SANDBOX_H
#define CORRAL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "corral/error.h"
#include "corral/net.h"

#define CR_SANDBOX_ID_MAX 40 /* "sbx_" + 26 base32 characters + NUL, with room */
#define CR_SANDBOX_UIDS 65536 /* uids (and gids) mapped into each sandbox */
#define CR_SANDBOX_EGRESS_AUTO UINT32_MAX /* egress_index: pick a free address pair */
/* uid_base for callers without a range of their own: well above any login's uid, below 2^31 */
#define CR_SANDBOX_UID_BASE_DEFAULT 1000000000u

struct cr_sandbox_config {
	const char *state_dir; /* sandboxes live in <state_dir>/sandboxes/<id>/ (required) */
	const char *init_path; /* corral-init on the host (required) */
	const char *rootfs; /* NULL: read-only binds of the host's /usr, /bin, /lib*, ... */
	/* The host directory bound on /workspace: NULL makes <dir>/workspace, removed with the
	 * sandbox; else this existing directory, handed to the sandbox's uid 0 and kept (so a
	 * workspace can outlive its sandbox). */
	const char *workspace;
	const char *hostname; /* NULL: "sandbox" */
	/* cgroup under which the sandbox's own is made; NULL: <cgroup2 mount>/<the configured
	 * subtree, "corral" by default> */
	const char *cgroup_parent;
	uint32_t uid_base; /* uid and gid 0 inside are this on the host; never 0 */
	/* Limits, 0 for none; applied where the cgroup controllers can be enabled. */
	uint64_t memory_max; /* bytes; memory.swap.max is set to 0 with it */
	uint64_t pids_max;
	uint32_t cpu_max_pct; /* percent of one CPU */
	const char *const *env; /* extra "KEY=VALUE" entries, NULL-terminated; may be NULL */
	/* Egress: NULL for none (loopback only). Else a veth pair, host end "cr-<12 characters of
	 * the id>", with the egress_index-th /30 of the range (docs/networking.md): no
	 * forwarding or NAT, so the sandbox reaches only the host's own addresses. */
	const struct cr_net_range *egress_range;
	/* CR_SANDBOX_EGRESS_AUTO: the lowest /30 that no sandbox recorded under state_dir holds,
	 * chosen under a lock on <state_dir>/egress.lock held until this sandbox's record is
	 * written, so that each sandbox's address is its own (cr_sandbox_find_address). */
	uint32_t egress_index;
	/* What PID 1 runs: NULL serves tool requests (corral-init --listen on the sandbox's
	 * control socket); else corral-init runs this program (argv, NULL-terminated) with
	 * the fds below as its stdin, stdout and stderr (-1: /dev/null) and exits with it. */
	const char *const *argv;
	int stdio[3];
};

void cr_sandbox_config_init(struct cr_sandbox_config *cfg);

struct cr_sandbox;

/* Creates and starts a sandbox; *ret is owned by the caller (cr_sandbox_free). The error
 * names the step that failed, inside or outside. limits_applied (may be NULL) tells whether
 * the cgroup limits could be set: on hosts without the controllers they are not, and the
 * sandbox runs without them. */
int cr_sandbox_create(const struct cr_sandbox_config *cfg, struct cr_sandbox **ret,
		      bool *limits_applied, struct cr_error *err);

const char *cr_sandbox_id(const struct cr_sandbox *sb);
pid_t cr_sandbox_pid(const struct cr_sandbox *sb); /* PID 1's pid on the host */
const char *cr_sandbox_cgroup(const struct cr_sandbox *sb);
/* The sandbox's veth, or NULL without egress. */
const struct cr_veth *cr_sandbox_veth(const struct cr_sandbox *sb);
const char *cr_sandbox_dir(const struct cr_sandbox *sb); /* <state>/sandboxes/<id> */
/* The host path of the sandbox's /workspace. */
const char *cr_sandbox_workspace(const struct cr_sandbox *sb);

/* Connects to the control socket on which the sandbox's PID 1 serves tool requests (a sandbox
 * made without cfg->argv; docs/init-protocol.md): a new stream socket, close-on-exec, owned by
 * the caller, for cr_init_call(). Requests sent before corral-init accepts wait in the socket's
 * backlog. -ENOENT when the sandbox has no control socket (it runs a program, or is gone). */
int cr_sandbox_connect(const struct cr_sandbox *sb, struct cr_error *err);

/* How many times the kernel's OOM killer struck inside the sandbox (memory.events oom_kill);
 * 0 where the memory controller is not enabled. */
int cr_sandbox_oom_kills(const struct cr_sandbox *sb, uint64_t *ret, struct cr_error *err);

/* Waits up to timeout_ms (-1: forever) for PID 1 to exit; its wait status in *ret_status.
 * -ETIMEDOUT if it is still running. */
int cr_sandbox_wait(struct cr_sandbox *sb, int timeout_ms, int *ret_status, struct cr_error *err);

/* Kills every process of the sandbox (cgroup.kill), removes its cgroup and, unless
 * keep_workspace, its directory. Safe to call on a sandbox that already died. */
int cr_sandbox_destroy(struct cr_sandbox *sb, bool keep_workspace, struct cr_error *err);

/* Pauses every process of the sandbox (cgroup.freeze) or resumes them; waits until the
 * kernel says it is done. A person can then inspect or edit the sandbox from the host. */
int cr_sandbox_pause(struct cr_sandbox *sb, struct cr_error *err);
int cr_sandbox_resume(struct cr_sandbox *sb, struct cr_error *err);

enum cr_sandbox_state {
	CR_SANDBOX_RUNNING,
	CR_SANDBOX_PAUSED,
	CR_SANDBOX_STOPPED, /* PID 1 and every process are gone (exited, killed, OOM) */
};
int cr_sandbox_state(const struct cr_sandbox *sb, enum cr_sandbox_state *ret, struct cr_error *err);
const char *cr_sandbox_state_name(enum cr_sandbox_state s);

/* When the sandbox was created (CLOCK_REALTIME, ns): the time its record was written, which is
 * once, by cr_sandbox_create. */
int cr_sandbox_created(const struct cr_sandbox *sb, uint64_t *ret_ns, struct cr_error *err);

/* Finds sandbox id again from its record (<state_dir>/sandboxes/<id>/sandbox.json, written
 * by cr_sandbox_create), e.g. in another process or after the host side restarted. The handle
 * can pause, resume, report and destroy it, but not wait for PID 1's status (-ECHILD: it is not
 * this process's child). -ENOENT for an unknown id, -EINVAL for one that is not an id. */
int cr_sandbox_open(const char *state_dir, const char *id, struct cr_sandbox **ret,
		    struct cr_error *err);

/* Which sandbox recorded under state_dir has addr as its (sandbox end) egress address: the
 * address is a sandbox's identity on the host. -ENOENT when none has it. */
int cr_sandbox_find_address(const char *state_dir, const struct in_addr *addr,
			    char ret_id[CR_SANDBOX_ID_MAX], struct cr_error *err);

/* The ids of the sandboxes recorded under state_dir, sorted; *ret is NULL-terminated and owned
 * by the caller (free each, then the array). */
int cr_sandbox_list(const char *state_dir, char ***ret, size_t *ret_n, struct cr_error *err);

/* Frees the handle (closes its fds); does not stop the sandbox. NULL is fine. */
void cr_sandbox_free(struct cr_sandbox *sb);
static inline void cr_sandbox_freep(struct cr_sandbox **sb)
{
	cr_sandbox_free(*sb);
}

/* --- the mount plan (exposed for tests and `corral sandbox create --print-plan`) ------------ */

enum cr_mount_op {
	CR_MNT_TMPFS, /* dst: a tmpfs with data as options */
	CR_MNT_BIND_RO, /* src (host) on dst, read-only, nosuid, nodev */
	CR_MNT_BIND_RW, /* src (host) on dst, nosuid, nodev */
	CR_MNT_DEV_BIND, /* a host device node src on dst (a file) */
	CR_MNT_SYMLINK, /* dst -> src */
	CR_MNT_DIR, /* mkdir dst */
	CR_MNT_FILE, /* dst holds data (mode 0644) */
	CR_MNT_PROC, /* proc on dst */
	CR_MNT_DEVPTS, /* a new devpts instance on dst */
	CR_MNT_MASK, /* /dev/null bound over dst (a file), or an empty read-only tmpfs (a dir) */
	CR_MNT_RO, /* dst (already mounted) made read-only */
	CR_MNT_REMOUNT_RO, /* the root tmpfs itself made read-only (last) */
};

struct cr_mount {
	enum cr_mount_op op;
	const char *src;
	const char *dst; /* inside the new root, absolute */
	const char *data;
	bool optional; /* skipped when src or dst does not exist */
};

struct cr_mount_plan {
	struct cr_mount *ops;
	size_t n, cap;
	char **owned; /* strings the plan allocated */
	size_t nowned, owned_cap;
};

/* The plan for cfg's root: what the sandbox sees and where it comes from. workspace is the
 * host directory bound on /workspace. Owned by the caller (cr_mount_plan_free). */
int cr_mount_plan_build(const struct cr_sandbox_config *cfg, const char *workspace,
			struct cr_mount_plan *ret, struct cr_error *err);
void cr_mount_plan_free(struct cr_mount_plan *plan);
const char *cr_mount_op_name(enum cr_mount_op op);

#endif
