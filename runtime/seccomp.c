/* runtime/seccomp: the sandbox's system call filter. The rules are one table; the filter
 * (libseccomp, default allow, native x86-64 only) is built from it and nothing else, so what
 * docs/seccomp.md and the tests check is what the kernel enforces. This file never decides
 * where the filter is loaded: the sandbox manager calls cr_seccomp_load_sandbox() in the
 * sandbox's child, after no_new_privs and just before it execs corral-init. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/personality.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef CONFIG_CORRAL_SECCOMP
#include <seccomp.h>
#endif

#include "corral/cleanup.h"
#include "corral/seccomp.h"

/* The filter is written for the x86-64 system call table: numbers below, clone's flags in
 * its first argument (on s390 they are the second), i386 and x32 refused as other ABIs. */
#ifndef __x86_64__
#error "runtime/seccomp: the sandbox filter is written for x86-64 (see docs/seccomp.md)"
#endif

/* Numbers that older or newer kernel headers may lack (arch/x86/entry/syscalls). */
#ifndef __NR_uselib
#define __NR_uselib 134
#endif
#ifndef __NR_lookup_dcookie
#define __NR_lookup_dcookie 212
#endif
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif

#define CLONE_NEW_ANY                                                                  \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
	 CLONE_NEWPID | CLONE_NEWNET)

/* The flags the kernel itself clears when exec gains privilege (PER_CLEAR_ON_SETID): the
 * ones that weaken a process's memory protections. Bit 31 is no persona's and is refused
 * too, so that the query 0xffffffff can be let through exactly (see add_rule()). */
#define PERSONA_REFUSED (READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE | MMAP_PAGE_ZERO | 0x80000000u)

#define SC(name) .syscall = #name, .nr = __NR_##name
#define DENY(name, why_)                                                              \
	{                                                                             \
		SC(name), .action_errno = EPERM, .match = CR_SECCOMP_ALL, .why = why_ \
	}

static const struct cr_seccomp_rule rules[] = {
	/* Kernel programs, tracing and key stores: large attack surface, and the platform's. */
	DENY(bpf, "BPF programs and maps are the platform's (LSM, socket hooks); a large kernel "
		  "attack surface"),
	DENY(perf_event_open, "performance counters and kprobes: kernel attack surface and "
			      "side channels"),
	DENY(userfaultfd, "lets a process stall the kernel mid-copy, the usual aid to "
			  "exploiting kernel races"),
	DENY(io_uring_setup, "io_uring: a large, often-exploited kernel surface whose operations "
			     "(open, connect, ...) no seccomp filter sees"),
	DENY(io_uring_enter, "io_uring (see io_uring_setup)"),
	DENY(io_uring_register, "io_uring (see io_uring_setup)"),
	DENY(keyctl, "kernel keyrings: only partly namespaced, a frequent source of kernel bugs"),
	DENY(add_key, "kernel keyrings (see keyctl)"),
	DENY(request_key, "kernel keyrings (see keyctl); can also upcall to host helpers"),

	/* Reaching into other processes. */
	DENY(ptrace, "no tracing or poking other processes, inside the sandbox either"),
	DENY(process_vm_readv, "reads another process's memory (ptrace's check)"),
	DENY(process_vm_writev, "writes another process's memory (ptrace's check)"),
	DENY(process_madvise, "acts on another process's memory (ptrace's check)"),
	DENY(pidfd_getfd, "steals a file descriptor from another process (ptrace's check)"),
	DENY(kcmp, "compares other processes' kernel objects (ptrace's check)"),

	/* Mounts: the sandbox's root is built by the platform and stays as built. */
	DENY(mount, "the file system view is the platform's: no mounts, remounts or binds"),
	DENY(umount2, "unmounting could uncover what the sandbox's mounts hide"),
	DENY(pivot_root, "the root is set up by the platform"),
	DENY(chroot, "no tool an agent runs needs it; with mounts refused it only serves "
		     "nested containers and chroot-escape tricks"),
	DENY(move_mount, "new mount API (see mount)"),
	DENY(open_tree, "new mount API: clones mount trees (see mount)"),
	DENY(open_tree_attr, "new mount API (6.15): open_tree with attributes (see mount)"),
	DENY(fsopen, "new mount API (see mount)"),
	DENY(fsconfig, "new mount API (see mount)"),
	DENY(fsmount, "new mount API (see mount)"),
	DENY(fspick, "new mount API: reconfigures existing mounts (see mount)"),
	DENY(mount_setattr, "could clear read-only or nosuid on the sandbox's mounts"),

	/* New namespaces: a nested user namespace hands its creator every capability again. */
	DENY(unshare, "no new namespaces: nested user namespaces reopen kernel attack surface"),
	DENY(setns, "no joining namespaces"),
	{ SC(clone), .action_errno = EPERM, .match = CR_SECCOMP_ARG_ANY_BIT, .arg = 0,
	  .value = CLONE_NEW_ANY,
	  .arg_filter = "flags & (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET)",
	  .why = "no new namespaces (see unshare); plain fork, vfork and threads are untouched" },
	{ SC(clone3), .action_errno = ENOSYS, .match = CR_SECCOMP_ALL,
	  .why = "its flags are in memory a filter cannot read; ENOSYS makes glibc fall back "
		 "to clone" },

	/* The machine, not the sandbox: modules, kexec, power, swap, clock, accounting. */
	DENY(init_module, "kernel modules"),
	DENY(finit_module, "kernel modules"),
	DENY(delete_module, "kernel modules"),
	DENY(kexec_load, "replaces the running kernel"),
	DENY(kexec_file_load, "replaces the running kernel"),
	DENY(reboot, "the machine's power, or the pid namespace's init"),
	DENY(swapon, "the machine's swap"),
	DENY(swapoff, "the machine's swap"),
	DENY(settimeofday, "the clock is the machine's (it dates every session event)"),
	DENY(clock_settime, "the clock is the machine's (see settimeofday)"),
	DENY(adjtimex, "adjusts the machine's clock; reading time needs only clock_gettime"),
	DENY(clock_adjtime, "adjusts the machine's clock (see adjtimex)"),
	DENY(acct, "process accounting writes a file for the whole machine"),
	DENY(syslog, "the kernel log: other sandboxes' traces and kernel addresses"),
	DENY(quotactl, "disk quotas are the machine's"),
	DENY(quotactl_fd, "disk quotas are the machine's"),
	DENY(lookup_dcookie, "profiling interface (removed in 6.7); leaks paths"),
	DENY(vhangup, "hangs up the terminal, which may be a person's"),
	DENY(iopl, "raw I/O port access"),
	DENY(ioperm, "raw I/O port access"),
	DENY(uselib, "a.out library loader: legacy, past kernel bugs, nothing uses it"),
	DENY(fanotify_init, "file system wide monitoring; tools watch files with inotify"),

	/* File handles: open_by_handle_at opens any file of a mount by number, past the
	 * sandbox's root ("shocker"); name_to_handle_at only feeds it. */
	DENY(open_by_handle_at, "opens files by handle, around the sandbox's root"),
	DENY(name_to_handle_at, "only feeds open_by_handle_at; leaks inode identities"),

	{ SC(personality), .action_errno = EPERM, .match = CR_SECCOMP_ARG_ANY_BIT_NOT_ALL_ONES,
	  .arg = 0, .value = PERSONA_REFUSED,
	  .arg_filter = "persona & (READ_IMPLIES_EXEC|ADDR_NO_RANDOMIZE|MMAP_PAGE_ZERO|bit 31), "
			"unless it is the query 0xffffffff",
	  .why = "executable data, no ASLR, page zero; PER_LINUX, linux32 and UNAME26 stay" },

	/* Terminals: the sandbox may share one with a person. */
	{ SC(ioctl), .action_errno = EPERM, .match = CR_SECCOMP_ARG_EQ, .arg = 1, .value = TIOCSTI,
	  .arg_filter = "request == TIOCSTI",
	  .why = "types input into a terminal, to be run by whoever reads it next" },
	{ SC(ioctl), .action_errno = EPERM, .match = CR_SECCOMP_ARG_EQ, .arg = 1,
	  .value = TIOCLINUX, .arg_filter = "request == TIOCLINUX",
	  .why = "virtual console selection and paste: the same as TIOCSTI" },
};

const struct cr_seccomp_rule *cr_seccomp_rules(size_t *ret_n)
{
	*ret_n = CR_ARRAY_SIZE(rules);
	return rules;
}

#ifdef CONFIG_CORRAL_SECCOMP

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define _cleanup_seccomp_ _cleanup_(seccomp_releasep)

/* (args[arg] & mask) == value on the low 32 bits: the upper half of mask is 0. */
static struct scmp_arg_cmp low32(unsigned arg, uint32_t mask, uint32_t value)
{
	return (struct scmp_arg_cmp){
		.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value
	};
}

static int add_cmp(scmp_filter_ctx ctx, const struct cr_seccomp_rule *r, unsigned n,
		   const struct scmp_arg_cmp *cmp, struct cr_error *err)
{
	int rc = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ERRNO((uint32_t)r->action_errno), r->nr,
					      n, cmp);
	if (rc < 0)
		return cr_error_errno(err, -rc, "seccomp: adding the rule for %s%s%s%s", r->syscall,
				      r->arg_filter ? " (" : "", r->arg_filter ? r->arg_filter : "",
				      r->arg_filter ? ")" : "");
	return 0;
}

/* One table row as libseccomp rules. A libseccomp rule is an AND of comparisons, at most
 * one per argument, and a system call's rules are ORed, so "any bit of M" is one rule per
 * bit. "Any bit of M, but not 0xffffffff" takes a pivot p, the highest bit of M: refuse
 * (b set, p clear) for every other bit b of M, and (p set, j clear) for every other bit j.
 * With p clear that is exactly "some bit of M set"; with p set, exactly "not all ones". */
static int add_rule(scmp_filter_ctx ctx, const struct cr_seccomp_rule *r, struct cr_error *err)
{
	struct scmp_arg_cmp cmp;
	int rc = 0;

	switch (r->match) {
	case CR_SECCOMP_ALL:
		return add_cmp(ctx, r, 0, NULL, err);
	case CR_SECCOMP_ARG_EQ:
		cmp = low32(r->arg, 0xffffffffu, r->value);
		return add_cmp(ctx, r, 1, &cmp, err);
	case CR_SECCOMP_ARG_ANY_BIT:
		for (unsigned i = 0; i < 32 && rc == 0; i++) {
			uint32_t b = 1u << i;
			if (r->value & b) {
				cmp = low32(r->arg, b, b);
				rc = add_cmp(ctx, r, 1, &cmp, err);
			}
		}
		return rc;
	case CR_SECCOMP_ARG_ANY_BIT_NOT_ALL_ONES: {
		if (!r->value)
			break;
		uint32_t p = 1u << (31 - __builtin_clz(r->value));
		for (unsigned i = 0; i < 32 && rc == 0; i++) {
			uint32_t b = 1u << i;
			if (b == p)
				continue;
			cmp = low32(r->arg, b | p, p); /* p set, b clear */
			rc = add_cmp(ctx, r, 1, &cmp, err);
			if (rc == 0 && (r->value & b)) {
				cmp = low32(r->arg, b | p, b); /* b set, p clear */
				rc = add_cmp(ctx, r, 1, &cmp, err);
			}
		}
		return rc;
	}
	}
	return cr_error_set(err, EINVAL, "seccomp: the rule for %s has an invalid match",
			    r->syscall);
}

static int build(scmp_filter_ctx *ret_ctx, struct cr_error *err)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return cr_error_set(err, ENOMEM, "seccomp: seccomp_init failed");

	/* seccomp_init() admits the native ABI only; a system call of any other (i386 through
	 * int 0x80, x32 through __X32_SYSCALL_BIT) would not meet these rules, so it kills
	 * the whole process instead of one thread. Kernel errors come back as their errno. */
	static const struct {
		enum scmp_filter_attr attr;
		uint32_t value;
		const char *name;
	} attrs[] = {
		{ SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "ACT_BADARCH" },
		{ SCMP_FLTATR_API_SYSRAWRC, 1, "API_SYSRAWRC" },
		{ SCMP_FLTATR_CTL_OPTIMIZE, 2, "CTL_OPTIMIZE" },
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(attrs); i++) {
		int rc = seccomp_attr_set(ctx, attrs[i].attr, attrs[i].value);
		if (rc < 0)
			return cr_error_errno(err, -rc, "seccomp: setting %s", attrs[i].name);
	}
	for (size_t i = 0; i < CR_ARRAY_SIZE(rules); i++) {
		int rc = add_rule(ctx, &rules[i], err);
		if (rc < 0)
			return rc;
	}
	*ret_ctx = TAKE_PTR(ctx);
	return 0;
}

static pthread_once_t program_once = PTHREAD_ONCE_INIT;
static struct sock_fprog program;
static int program_rc;
static struct cr_error program_err;

/* The filter exported as BPF (seccomp_export_bpf writes to an fd: a memfd here). */
static void build_program(void)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
	program_rc = build(&ctx, &program_err);
	if (program_rc < 0)
		return;
	_cleanup_close_ int fd = memfd_create("corral-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		program_rc = cr_error_errno(&program_err, errno, "seccomp: memfd_create");
		return;
	}
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		program_rc =
			cr_error_errno(&program_err, -rc, "seccomp: exporting the filter as BPF");
		return;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	struct sock_filter *insns = size > 0 ? malloc((size_t)size) : NULL;
	if (size <= 0 || size % (off_t)sizeof(*insns) != 0 ||
	    size / (off_t)sizeof(*insns) > 65535 || !insns ||
	    pread(fd, insns, (size_t)size, 0) != size) {
		free(insns);
		program_rc = cr_error_set(&program_err, EIO,
					  "seccomp: the exported filter is %lld bytes, not a BPF "
					  "program",
					  (long long)size);
		return;
	}
	program = (struct sock_fprog){ .len = (unsigned short)(size / (off_t)sizeof(*insns)),
				       .filter = insns };
}

int cr_seccomp_sandbox_program(const struct sock_fprog **ret, struct cr_error *err)
{
	pthread_once(&program_once, build_program);
	if (program_rc < 0) {
		if (err)
			*err = program_err;
		return program_rc;
	}
	*ret = &program;
	return 0;
}

int cr_seccomp_install(const struct sock_fprog *prog)
{
	/* what seccomp_load() does with the attributes build() sets: no_new_privs, no flags */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return -errno;
	return 0;
}

int cr_seccomp_load_sandbox(struct cr_error *err)
{
	const struct sock_fprog *prog;
	int rc = cr_seccomp_sandbox_program(&prog, err);
	if (rc < 0)
		return rc;
	rc = cr_seccomp_install(prog);
	if (rc < 0)
		return cr_error_errno(err, -rc, "seccomp: loading the sandbox filter");
	return 0;
}

int cr_seccomp_export_pfc(int fd, struct cr_error *err)
{
	_cleanup_seccomp_ scmp_filter_ctx ctx = NULL;
	int rc = build(&ctx, err);
	if (rc < 0)
		return rc;
	rc = seccomp_export_pfc(ctx, fd);
	if (rc < 0)
		return cr_error_errno(err, -rc, "seccomp: exporting the sandbox filter");
	return 0;
}

#else

int cr_seccomp_sandbox_program(const struct sock_fprog **ret, struct cr_error *err)
{
	(void)ret;
	return cr_error_set(err, EOPNOTSUPP,
			    "seccomp: this corral was built without seccomp filters "
			    "(CONFIG_CORRAL_SECCOMP is off): the sandbox filter cannot be loaded");
}

int cr_seccomp_install(const struct sock_fprog *prog)
{
	(void)prog;
	return -EOPNOTSUPP;
}

int cr_seccomp_load_sandbox(struct cr_error *err)
{
	return cr_error_set(err, EOPNOTSUPP,
			    "seccomp: this corral was built without seccomp filters "
			    "(CONFIG_CORRAL_SECCOMP is off): the sandbox filter cannot be loaded");
}

int cr_seccomp_export_pfc(int fd, struct cr_error *err)
{
	(void)fd;
	return cr_error_set(err, EOPNOTSUPP,
			    "seccomp: this corral was built without seccomp filters "
			    "(CONFIG_CORRAL_SECCOMP is off)");
}

#endif
