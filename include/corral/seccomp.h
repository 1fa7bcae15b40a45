/* runtime/seccomp: the system call filter every sandbox process runs under. It owns the
 * sandbox's deny list (one table, cr_seccomp_rules(), from which the filter is built and the
 * documentation and tests are checked) and loading it into the calling thread. Default allow:
 * the filter takes away kernel attack surface and ways out of the sandbox's namespaces; it
 * never cuts the network (the network namespace and the socket hooks do) and never touches
 * what ordinary tools need. Only the native x86-64 system call ABI passes: an i386 (int 0x80)
 * or x32 system call kills the process. Policy and reasons: docs/seccomp.md. */
#ifndef CORRAL_SECCOMP_H
#define CORRAL_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "corral/error.h"

/* Which calls of a system call a rule refuses. Arguments are compared on their low 32 bits
 * only: every argument filtered here is a 32-bit value to the kernel (clone's flags, ioctl's
 * request, personality's persona), which ignores the upper half of the register, so a caller
 * cannot dodge a rule by setting high bits. */
enum cr_seccomp_match {
	CR_SECCOMP_ALL, /* every call */
	CR_SECCOMP_ARG_EQ, /* args[arg] == value */
	CR_SECCOMP_ARG_ANY_BIT, /* args[arg] & value != 0 */
	CR_SECCOMP_ARG_ANY_BIT_NOT_ALL_ONES, /* as ARG_ANY_BIT, except args[arg] == 0xffffffff */
};

struct cr_seccomp_rule {
	const char *syscall; /* "bpf" */
	int nr; /* its x86-64 number, which the filter matches */
	int action_errno; /* what the call fails with: EPERM, or ENOSYS where libc falls back */
	enum cr_seccomp_match match;
	unsigned arg; /* the argument compared (0-based), for CR_SECCOMP_ARG_* */
	uint32_t value; /* the value or the bits compared, for CR_SECCOMP_ARG_* */
	const char *arg_filter; /* NULL for every call, else the calls refused, for people */
	const char *why; /* one line */
};

/* The rules, in the order docs/seccomp.md lists them; a system call may have several. Static
 * storage, valid for the life of the process. Available in every build (it is only data). */
const struct cr_seccomp_rule *cr_seccomp_rules(size_t *ret_n);

struct sock_fprog;

/* The sandbox filter as a BPF program, built from cr_seccomp_rules() once per process (the
 * first call; thread-safe) and kept for its life. The sandbox manager takes it before clone3,
 * so that the child, a copy of a possibly threaded process, never runs libseccomp (which
 * allocates: a lock another thread held at the copy would never be released). -EOPNOTSUPP
 * when built without CONFIG_CORRAL_SECCOMP. */
int cr_seccomp_sandbox_program(const struct sock_fprog **ret, struct cr_error *err);

/* Sets no_new_privs and installs prog on the calling thread with the seccomp system call:
 * async-signal-safe, nothing allocated. 0 or -errno. */
int cr_seccomp_install(const struct sock_fprog *prog);

/* Builds the sandbox filter from cr_seccomp_rules() and loads it into the calling thread
 * (no TSYNC: the caller is the sandbox's single-threaded child, about to exec PID 1). It
 * sets no_new_privs if the caller has not. Irreversible for the thread and every process it
 * starts. -EOPNOTSUPP when built without CONFIG_CORRAL_SECCOMP. */
int cr_seccomp_load_sandbox(struct cr_error *err);

/* Writes the filter in libseccomp's readable pseudo filter code (PFC) to fd, for debugging
 * and tests; loads nothing. -EOPNOTSUPP when built without CONFIG_CORRAL_SECCOMP. */
int cr_seccomp_export_pfc(int fd, struct cr_error *err);

#endif
