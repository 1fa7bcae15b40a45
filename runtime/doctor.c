/* runtime/doctor: probes each enforcement layer by trying it. Probes that change process
 * state (unshare, seccomp) run in a forked child that reports back over a pipe, so the caller
 * is never altered; probes that create kernel objects remove them before returning. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef CONFIG_CORRAL_SECCOMP
#include <seccomp.h>
#endif
#ifdef CONFIG_CORRAL_IO_URING
#include <liburing.h>
#endif

#include "corral/bpf.h"
#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/doctor.h"
#include "corral/fileio.h"
#include "corral/kconfig.h"
#include "corral/seccomp.h"
#include "corral/strutil.h"

static const struct {
	const char *name;
	const char *title;
	bool built;
	bool required;
} layer_info[CR_LAYER_COUNT] = {
	[CR_LAYER_NAMESPACES] = { "namespaces", "namespaces", true,
				  CR_ENABLED(CONFIG_CORRAL_REQUIRE_NAMESPACES) },
	[CR_LAYER_SECCOMP] = { "seccomp", "seccomp filters", CR_ENABLED(CONFIG_CORRAL_SECCOMP),
			       CR_ENABLED(CONFIG_CORRAL_REQUIRE_SECCOMP) },
	[CR_LAYER_CGROUP2] = { "cgroup2", "cgroup v2", true,
			       CR_ENABLED(CONFIG_CORRAL_REQUIRE_CGROUP2) },
	[CR_LAYER_CGROUP_LIMITS] = { "cgroup_limits", "cgroup limits", true,
				     CR_ENABLED(CONFIG_CORRAL_REQUIRE_CGROUP_LIMITS) },
	[CR_LAYER_BPF_LSM] = { "bpf_lsm", "BPF LSM", CR_ENABLED(CONFIG_CORRAL_BPF_LSM),
			       CR_ENABLED(CONFIG_CORRAL_REQUIRE_BPF_LSM) },
	[CR_LAYER_CGROUP_BPF] = { "cgroup_bpf", "cgroup BPF hooks",
				  CR_ENABLED(CONFIG_CORRAL_CGROUP_BPF),
				  CR_ENABLED(CONFIG_CORRAL_REQUIRE_CGROUP_BPF) },
	[CR_LAYER_IO_URING] = { "io_uring", "io_uring", CR_ENABLED(CONFIG_CORRAL_IO_URING),
				CR_ENABLED(CONFIG_CORRAL_REQUIRE_IO_URING) },
	[CR_LAYER_LANDLOCK] = { "landlock", "Landlock", CR_ENABLED(CONFIG_CORRAL_LANDLOCK),
				CR_ENABLED(CONFIG_CORRAL_REQUIRE_LANDLOCK) },
};

/* The controllers a sandbox's limits need. */
#define LIMIT_CONTROLLERS "memory pids cpu"

const char *cr_doctor_layer_name(enum cr_layer layer)
{
	return layer < CR_LAYER_COUNT ? layer_info[layer].name : "?";
}

int cr_doctor_layer_from_name(const char *name)
{
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		const char *a = layer_info[i].name, *b = name;
		while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
			a++;
			b++;
		}
		if (!*a && !*b)
			return i;
	}
	return -EINVAL;
}

static void detail(struct cr_layer_report *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void detail(struct cr_layer_report *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->detail, sizeof(l->detail), fmt, ap);
	va_end(ap);
}

static void fact_str(struct cr_layer_report *l, const char *key, const char *value)
{
	json_object_set_new(l->facts, key, value ? json_string(value) : json_null());
}

/* A list such as "memory pids" or "lockdown,bpf" as a JSON array of its words. */
static void fact_words(struct cr_layer_report *l, const char *key, const char *list)
{
	json_t *a = json_array();
	for (const char *p = list; a && *p;) {
		p += strspn(p, CR_WORD_SEPARATORS);
		size_t n = strcspn(p, CR_WORD_SEPARATORS);
		if (n)
			json_array_append_new(a, json_stringn(p, n));
		p += n;
	}
	json_object_set_new(l->facts, key, a);
}

/* Reads a small integer sysctl; -1 when the file is absent or unreadable. */
static long read_sysctl(const char *path)
{
	_cleanup_free_ char *text = NULL;
	if (cr_read_file(path, 64, &text, NULL, NULL) < 0)
		return -1;
	return strtol(text, NULL, 10);
}

/* Runs fn in a forked child; fn writes a message for the caller into msg. Returns fn's
 * result (0 or 1 for "worked"/"did not"), or -errno if the child could not be run. */
static int in_child(int (*fn)(char *msg, size_t size), char *msg, size_t size)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(msg, size, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		snprintf(msg, size, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		char buf[512] = "";
		close(pipefd[0]);
		int r = fn(buf, sizeof(buf));
		ssize_t w = write(pipefd[1], buf, strlen(buf));
		(void)w;
		_exit(r == 0 ? 0 : 1);
	}
	close(pipefd[1]);
	size_t len = 0;
	for (;;) {
		ssize_t r = read(pipefd[0], msg + len, size - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == size - 1)
			break;
	}
	msg[len] = '\0';
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(msg, size, "waitpid: %s", strerror(errno));
			return -errno;
		}
	}
	if (WIFSIGNALED(status)) {
		snprintf(msg, size, "probe killed by signal %d", WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int try_namespaces(char *msg, size_t size)
{
	static const struct {
		int flag;
		const char *name;
	} ns[] = {
		{ CLONE_NEWUSER, "user" },     { CLONE_NEWNS, "mount" }, { CLONE_NEWPID, "pid" },
		{ CLONE_NEWNET, "net" },       { CLONE_NEWUTS, "uts" },	 { CLONE_NEWIPC, "ipc" },
		{ CLONE_NEWCGROUP, "cgroup" },
	};
	/* One by one, the user namespace first, as a sandbox's clone3 creates them. */
	for (size_t i = 0; i < CR_ARRAY_SIZE(ns); i++) {
		if (unshare(ns[i].flag) < 0) {
			snprintf(msg, size, "unshare(CLONE_NEW%s) failed: %s", ns[i].name,
				 cr_errno_name(errno));
			return 1;
		}
	}
	snprintf(msg, size, "user, mount, pid, net, uts, ipc and cgroup namespaces can be created");
	return 0;
}

static void probe_namespaces(struct cr_layer_report *l)
{
	l->present = in_child(try_namespaces, l->detail, sizeof(l->detail)) == 0;
	long max = read_sysctl("/proc/sys/user/max_user_namespaces");
	json_object_set_new(l->facts, "max_user_namespaces",
			    max < 0 ? json_null() : json_integer(max));
	if (max == 0) {
		l->present = false;
		detail(l, "user.max_user_namespaces is 0: user namespaces are switched off");
	}
}

#ifdef CONFIG_CORRAL_SECCOMP
static int try_seccomp(char *msg, size_t size)
{
	/* The sandbox's own filter (runtime/seccomp), loaded here in a throwaway child: it must
	 * load, deny what it denies (keyctl: EPERM; clone3: ENOSYS) and let the rest through. */
	struct cr_error err;
	if (cr_seccomp_load_sandbox(&err) < 0) {
		snprintf(msg, size, "loading the sandbox filter failed: %s", err.msg);
		return 1;
	}
	bool keyctl_denied = syscall(SYS_keyctl, 0, 0, 0, 0, 0) == -1 && errno == EPERM;
	bool clone3_enosys = syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS;
	if (!keyctl_denied || !clone3_enosys || syscall(SYS_getppid) <= 0) {
		snprintf(msg, size, "the sandbox filter loaded but did not act as written");
		return 1;
	}
	size_t n;
	cr_seccomp_rules(&n);
	const struct scmp_version *v = seccomp_version();
	snprintf(msg, size,
		 "the sandbox filter (%zu rules) loads and acts (libseccomp %u.%u.%u, API level "
		 "%u)",
		 n, v->major, v->minor, v->micro, seccomp_api_get());
	return 0;
}
#endif

static void probe_seccomp(struct cr_layer_report *l)
{
#ifdef CONFIG_CORRAL_SECCOMP
	l->present = in_child(try_seccomp, l->detail, sizeof(l->detail)) == 0;
	_cleanup_free_ char *actions = NULL;
	if (cr_read_file("/proc/sys/kernel/seccomp/actions_avail", 1024, &actions, NULL, NULL) == 0)
		fact_str(l, "actions_avail", cr_strip(actions));
#else
	(void)l;
#endif
}

static void probe_cgroups(struct cr_layer_report *cg2, struct cr_layer_report *lim,
			  char **ret_mount)
{
	struct cr_error err;
	_cleanup_free_ char *mount = NULL, *available = NULL, *enabled = NULL;

	if (cr_cgroup2_mount(&mount, &err) < 0) {
		detail(cg2, "%s", err.msg);
		detail(lim, "no cgroup2 mount");
		return;
	}
	fact_str(cg2, "mount", mount);
	if (cr_cgroup_read(mount, "cgroup.controllers", &available, &err) < 0 ||
	    cr_cgroup_read(mount, "cgroup.subtree_control", &enabled, &err) < 0) {
		detail(cg2, "cgroup2 at %s, but: %s", mount, err.msg);
		detail(lim, "cgroup2 controllers unknown");
		return;
	}
	cg2->present = true;
	fact_words(cg2, "available", available);
	fact_words(cg2, "enabled", enabled);
	detail(cg2, "mounted at %s; controllers that can be enabled: %s; enabled: %s", mount,
	       *available ? available : "none", *enabled ? enabled : "none");

	lim->present = cr_cgroup_has_all(available, LIMIT_CONTROLLERS);
	if (lim->present)
		detail(lim, "memory, pids and cpu can be enabled: memory.max, pids.max and cpu.max "
			    "are enforced");
	else
		detail(lim,
		       "limits unavailable: cgroup2 at %s offers \"%s\", not all of \"%s\" (on "
		       "a hybrid host they are bound to v1 hierarchies)",
		       mount, available, LIMIT_CONTROLLERS);
	*ret_mount = TAKE_PTR(mount);
}

static void probe_bpf_lsm(struct cr_layer_report *l)
{
	struct cr_error err;
	_cleanup_free_ char *lsms = NULL;
	bool listed = false;

	if (cr_bpf_lsm_list(&lsms, &err) == 0) {
		listed = cr_word_in(lsms, "bpf", 3);
		fact_words(l, "active_lsms", lsms);
	} else {
		fact_str(l, "active_lsms", NULL);
	}
	json_object_set_new(l->facts, "listed", json_boolean(listed));
	if (!l->built) {
		fact_str(l, "program_load", "not built");
		detail(l, "disabled in this build (CONFIG_CORRAL_BPF_LSM)");
		return;
	}
	struct cr_error load_err;
	bool loads = cr_bpf_opencount_supported(&load_err);
	fact_str(l, "program_load", loads ? "ok" : cr_errno_name(load_err.code));
	l->present = listed && loads;
	if (l->present)
		detail(l, "bpf is an active LSM (%s); an LSM program loads and attaches", lsms);
	else if (!lsms)
		detail(l, "%s; program: %s", err.msg, loads ? "loads and attaches" : load_err.msg);
	else if (!listed)
		detail(l,
		       "bpf is not in the active LSM list (%s): boot with lsm=...,bpf; program: %s",
		       lsms, loads ? "loads but would never run" : load_err.msg);
	else
		detail(l, "bpf is an active LSM (%s), but the kernel refuses LSM programs: %s",
		       lsms, load_err.msg);
}

static void probe_cgroup_bpf(struct cr_layer_report *l, const char *cgroup2)
{
	struct cr_error err;
	if (!l->built) {
		detail(l, "disabled in this build (CONFIG_CORRAL_CGROUP_BPF)");
		return;
	}
	l->present = cr_bpf_cgroup_hooks_supported(cgroup2, &err);
	if (l->present)
		detail(l, "a cgroup/connect4 program loads and attaches to a cgroup");
	else
		detail(l, "%s", err.msg);
}

static void probe_io_uring(struct cr_layer_report *l)
{
	long disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
	json_object_set_new(l->facts, "io_uring_disabled",
			    disabled < 0 ? json_null() : json_integer(disabled));
#ifdef CONFIG_CORRAL_IO_URING
	struct io_uring ring;
	int r = io_uring_queue_init(2, &ring, 0);
	if (r < 0) {
		detail(l, "io_uring_setup failed: %s%s", cr_errno_name(-r),
		       disabled > 0 ? " (kernel.io_uring_disabled is set)" : "");
		return;
	}
	io_uring_queue_exit(&ring);
	l->present = true;
	if (disabled < 0)
		detail(l, "a ring can be set up");
	else
		detail(l, "a ring can be set up (kernel.io_uring_disabled=%ld)", disabled);
#else
	(void)l;
#endif
}

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)

static void probe_landlock(struct cr_layer_report *l)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	json_object_set_new(l->facts, "abi", abi < 0 ? json_null() : json_integer(abi));
	if (abi < 0) {
		int e = errno;
		detail(l, "landlock_create_ruleset: %s (%s)", cr_errno_name(e),
		       e == EOPNOTSUPP ? "built in but not enabled at boot: add landlock to lsm="
		       : e == ENOSYS   ? "not in this kernel"
				       : strerror(e));
		return;
	}
	l->present = l->built;
	if (l->built)
		detail(l, "ABI version %ld", abi);
	else
		detail(l,
		       "kernel offers ABI version %ld, but disabled in this build "
		       "(CONFIG_CORRAL_LANDLOCK)",
		       abi);
}

int cr_doctor_run(struct cr_doctor_report *report, unsigned extra_required, struct cr_error *err)
{
	memset(report, 0, sizeof(*report));
	struct utsname u;
	if (uname(&u) < 0)
		return cr_error_errno(err, errno, "uname");
	snprintf(report->kernel_release, sizeof(report->kernel_release), "%s", u.release);
	snprintf(report->kernel_version, sizeof(report->kernel_version), "%s", u.version);
	snprintf(report->machine, sizeof(report->machine), "%s", u.machine);

	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		struct cr_layer_report *l = &report->layers[i];
		l->name = layer_info[i].name;
		l->title = layer_info[i].title;
		l->built = layer_info[i].built;
		l->required = layer_info[i].required || (extra_required & (1u << i));
		l->facts = json_object();
		if (!l->facts) {
			cr_doctor_report_done(report);
			return cr_error_errno(err, ENOMEM, "doctor");
		}
		if (!l->built)
			detail(l, "disabled in this build");
	}

	_cleanup_free_ char *cgroup2 = NULL;
	struct cr_layer_report *L = report->layers;
	probe_namespaces(&L[CR_LAYER_NAMESPACES]);
	probe_seccomp(&L[CR_LAYER_SECCOMP]);
	probe_cgroups(&L[CR_LAYER_CGROUP2], &L[CR_LAYER_CGROUP_LIMITS], &cgroup2);
	probe_bpf_lsm(&L[CR_LAYER_BPF_LSM]);
	probe_cgroup_bpf(&L[CR_LAYER_CGROUP_BPF], cgroup2);
	probe_io_uring(&L[CR_LAYER_IO_URING]);
	probe_landlock(&L[CR_LAYER_LANDLOCK]);
	return 0;
}

void cr_doctor_report_done(struct cr_doctor_report *report)
{
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		json_decref(report->layers[i].facts);
		report->layers[i].facts = NULL;
	}
}

bool cr_doctor_required_present(const struct cr_doctor_report *report)
{
	for (int i = 0; i < CR_LAYER_COUNT; i++)
		if (report->layers[i].required && !report->layers[i].present)
			return false;
	return true;
}

json_t *cr_doctor_to_json(const struct cr_doctor_report *report)
{
	json_t *layers = json_object();
	json_t *missing = json_array();
	json_t *root = json_pack("{s:{s:s,s:s,s:s}}", "kernel", "release", report->kernel_release,
				 "version", report->kernel_version, "machine", report->machine);
	if (!layers || !missing || !root)
		goto fail;
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		const struct cr_layer_report *l = &report->layers[i];
		json_t *o = json_pack("{s:s,s:b,s:b,s:b,s:s}", "title", l->title, "built", l->built,
				      "present", l->present, "required", l->required, "detail",
				      l->detail);
		if (!o || json_object_update(o, l->facts) < 0 ||
		    json_object_set_new(layers, l->name, o) < 0) {
			json_decref(o);
			goto fail;
		}
		if (l->required && !l->present &&
		    json_array_append_new(missing, json_string(l->name)))
			goto fail;
	}
	if (json_object_set_new(root, "layers", layers) < 0) {
		layers = NULL;
		goto fail;
	}
	layers = NULL;
	if (json_object_set_new(root, "missing_required", missing) < 0) {
		missing = NULL;
		goto fail;
	}
	missing = NULL;
	if (json_object_set_new(root, "ok", json_boolean(cr_doctor_required_present(report))) < 0)
		goto fail;
	return root;
fail:
	json_decref(layers);
	json_decref(missing);
	json_decref(root);
	return NULL;
}
