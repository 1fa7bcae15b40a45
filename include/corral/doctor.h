/* runtime/doctor: what each enforcement layer of corral finds on the running kernel, found
 * by trying it (unshare, a seccomp filter, a BPF load and attach, io_uring_setup, ...), and
 * whether the layers this build requires are all there. Probes leave nothing behind. */
#ifndef CORRAL_DOCTOR_H
#define CORRAL_DOCTOR_H

#include <stdbool.h>

#include <jansson.h>

#include "corral/error.h"

enum cr_layer {
	CR_LAYER_NAMESPACES,
	CR_LAYER_SECCOMP,
	CR_LAYER_CGROUP2,
	CR_LAYER_CGROUP_LIMITS,
	CR_LAYER_BPF_LSM,
	CR_LAYER_CGROUP_BPF,
	CR_LAYER_IO_URING,
	CR_LAYER_LANDLOCK,
	CR_LAYER_COUNT,
};

struct cr_layer_report {
	const char *name; /* stable identifier: "bpf_lsm" */
	const char *title; /* for people: "BPF LSM" */
	bool built; /* compiled into this build (Kconfig) */
	bool present; /* works on this kernel, now */
	bool required; /* by the build configuration or by the caller */
	char detail[512]; /* what was tried and what the kernel said */
	json_t *facts; /* machine-readable findings; owned by the report */
};

struct cr_doctor_report {
	char kernel_release[65];
	char kernel_version[65];
	char machine[65];
	struct cr_layer_report layers[CR_LAYER_COUNT];
};

/* The stable name of a layer ("bpf_lsm"). */
const char *cr_doctor_layer_name(enum cr_layer layer);

/* Layer index of a name ("bpf_lsm" or "bpf-lsm"); -EINVAL if none. */
int cr_doctor_layer_from_name(const char *name);

/* Probes every layer. extra_required is a bit mask (1 << enum cr_layer) of layers the caller
 * requires on top of the build configuration's. Free with cr_doctor_report_done(). */
int cr_doctor_run(struct cr_doctor_report *report, unsigned extra_required, struct cr_error *err);
void cr_doctor_report_done(struct cr_doctor_report *report);

/* Whether every required layer is present. */
bool cr_doctor_required_present(const struct cr_doctor_report *report);

/* The report as a JSON object (new reference owned by the caller); NULL on ENOMEM. */
json_t *cr_doctor_to_json(const struct cr_doctor_report *report);

#endif
