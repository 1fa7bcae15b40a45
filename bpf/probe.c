/* bpf/probe: answers "which BPF facilities does the running kernel really offer" by trying
 * them (load, attach, detach), never by reading version numbers. Leaves nothing attached. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "corral/bpf.h"
#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/strutil.h"
#include "bpf-internal.h"

#ifdef CONFIG_CORRAL_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int print_if_debug(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (!getenv("CORRAL_BPF_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void cr_bpf_quiet_libbpf(void)
{
	libbpf_set_print(print_if_debug);
}
#else
void cr_bpf_quiet_libbpf(void)
{
}
#endif

#ifndef SYS_lsm_list_modules
#define SYS_lsm_list_modules 461
#endif

/* include/uapi/linux/lsm.h (6.8+): LSM_ID_* values and the names securityfs uses. */
static const char *lsm_name(uint64_t id)
{
	static const char *const names[] = {
		"capability", "selinux",  "smack", "tomoyo",   "apparmor", "yama", "loadpin",
		"safesetid",  "lockdown", "bpf",   "landlock", "ima",	   "evm",  "ipe",
	};
	if (id >= 100 && id - 100 < CR_ARRAY_SIZE(names))
		return names[id - 100];
	return NULL;
}

int cr_bpf_lsm_list(char **ret_list, struct cr_error *err)
{
	char *text = NULL;
	int r = cr_read_file("/sys/kernel/security/lsm", 4096, &text, NULL, NULL);
	if (r == 0) {
		*ret_list = cr_strip(text);
		return 0;
	}

	uint64_t ids[64];
	uint32_t size = sizeof(ids);
	long n = syscall(SYS_lsm_list_modules, ids, &size, 0);
	if (n < 0)
		return cr_error_set(
			err, ENOENT,
			"active LSM list unknown: /sys/kernel/security/lsm is not there "
			"(securityfs not mounted) and lsm_list_modules() failed (%s)",
			cr_errno_name(errno));
	char buf[1024] = "";
	size_t len = 0;
	for (long i = 0; i < n && i < (long)CR_ARRAY_SIZE(ids); i++) {
		const char *name = lsm_name(ids[i]);
		char num[32];
		if (!name) {
			snprintf(num, sizeof(num), "lsm%llu", (unsigned long long)ids[i]);
			name = num;
		}
		int w = snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", name);
		if (w < 0 || (size_t)w >= sizeof(buf) - len)
			break;
		len += (size_t)w;
	}
	char *list = strdup(buf);
	if (!list)
		return cr_error_errno(err, ENOMEM, "LSM list");
	*ret_list = list;
	return 0;
}

#ifdef CONFIG_CORRAL_CGROUP_BPF
static int try_cgroup_hooks(const char *cgroup2, struct cr_error *err)
{
	/* r0 = 1 (allow); exit */
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_INET4_CONNECT);

	cr_bpf_quiet_libbpf();
	_cleanup_close_ int prog = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "corral_probe",
						 "GPL", insns, CR_ARRAY_SIZE(insns), &opts);
	if (prog < 0)
		return cr_error_errno(err, -prog, "load cgroup/connect4 program");
	if (!cgroup2)
		return cr_error_set(err, ENOENT,
				    "cgroup/connect4 program loads, but there is no cgroup2 mount "
				    "to attach it to");

	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/corral-probe-%d", cgroup2, (int)getpid());
	if (mkdir(dir, 0755) < 0)
		return cr_error_errno(err, errno, "create probe cgroup %s", dir);
	int r = 0;
	int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		r = cr_error_errno(err, errno, "open %s", dir);
	} else {
		r = bpf_prog_attach(prog, cg, BPF_CGROUP_INET4_CONNECT, 0);
		if (r < 0)
			r = cr_error_errno(err, -r, "attach cgroup/connect4 program to %s", dir);
		else
			bpf_prog_detach2(prog, cg, BPF_CGROUP_INET4_CONNECT);
		close(cg);
	}
	if (rmdir(dir) < 0 && r == 0)
		r = cr_error_errno(err, errno, "remove probe cgroup %s", dir);
	return r;
}
#else
static int try_cgroup_hooks(const char *cgroup2, struct cr_error *err)
{
	(void)cgroup2;
	return cr_error_set(
		err, EOPNOTSUPP,
		"cgroup socket hooks are disabled in this build (CONFIG_CORRAL_CGROUP_BPF)");
}
#endif

int cr_bpf_cgroup_hooks_supported(const char *cgroup2, struct cr_error *err)
{
	static int cached = -1;
	static struct cr_error cached_err;

	if (cached < 0)
		cached = try_cgroup_hooks(cgroup2, &cached_err) == 0;
	if (!cached && err)
		*err = cached_err;
	return cached;
}
