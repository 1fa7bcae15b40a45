/* Unit tests of runtime/doctor: layer names, the required-layer verdict, the JSON report, and
 * on the running kernel, that each answer is consistent with its own facts. */
#include <errno.h>
#include <string.h>

#include "corral/bpf.h"
#include "corral/doctor.h"
#include "helpers.h"

Test(doctor, layer_names_round_trip_in_both_spellings)
{
	for (int i = 0; i < CR_LAYER_COUNT; i++)
		cr_assert_eq(cr_doctor_layer_from_name(cr_doctor_layer_name(i)), i);
	cr_assert_eq(cr_doctor_layer_from_name("bpf-lsm"), CR_LAYER_BPF_LSM);
	cr_assert_eq(cr_doctor_layer_from_name("cgroup-limits"), CR_LAYER_CGROUP_LIMITS);
	cr_assert_eq(cr_doctor_layer_from_name("bpf"), -EINVAL);
	cr_assert_eq(cr_doctor_layer_from_name("bpf_lsmx"), -EINVAL);
	cr_assert_eq(cr_doctor_layer_from_name(""), -EINVAL);
}

Test(doctor, required_layer_missing_fails_the_verdict)
{
	struct cr_doctor_report r = { 0 };
	cr_assert(cr_doctor_required_present(&r));
	r.layers[CR_LAYER_LANDLOCK].required = true;
	cr_assert_not(cr_doctor_required_present(&r));
	r.layers[CR_LAYER_LANDLOCK].present = true;
	cr_assert(cr_doctor_required_present(&r));
	r.layers[CR_LAYER_BPF_LSM].present = false; /* not required: no effect */
	cr_assert(cr_doctor_required_present(&r));
}

Test(doctor, report_on_this_kernel_is_consistent, .timeout = 60)
{
	struct cr_doctor_report r;
	struct cr_error err;
	unsigned want = 1u << CR_LAYER_BPF_LSM | 1u << CR_LAYER_IO_URING;
	cr_assert_eq(cr_doctor_run(&r, want, &err), 0, "%s", err.msg);

	cr_assert_str_neq(r.kernel_release, "");
	cr_assert(r.layers[CR_LAYER_BPF_LSM].required, "extra required layers are honoured");
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		const struct cr_layer_report *l = &r.layers[i];
		cr_assert_str_eq(l->name, cr_doctor_layer_name(i));
		cr_assert_str_neq(l->detail, "", "layer %s explains itself", l->name);
		cr_assert(l->built || !l->present, "a layer not built is never present");
	}

	/* BPF LSM is present exactly when bpf is listed and a program loads */
	const struct cr_layer_report *lsm = &r.layers[CR_LAYER_BPF_LSM];
	json_t *listed = json_object_get(lsm->facts, "listed");
	cr_assert(json_is_boolean(listed));
	struct cr_error load_err;
	bool loads = cr_bpf_opencount_supported(&load_err);
	cr_assert_eq(lsm->present, json_is_true(listed) && loads);
	if (!loads)
		cr_assert(strstr(lsm->detail, load_err.msg), "detail gives the kernel's answer: %s",
			  lsm->detail);

	/* cgroup limits present exactly when the three controllers are offered */
	json_t *available = json_object_get(r.layers[CR_LAYER_CGROUP2].facts, "available");
	if (r.layers[CR_LAYER_CGROUP2].present) {
		cr_assert(json_is_array(available));
		int found = 0;
		size_t i;
		json_t *v;
		json_array_foreach (available, i, v) {
			const char *s = json_string_value(v);
			found += !strcmp(s, "memory") || !strcmp(s, "pids") || !strcmp(s, "cpu");
		}
		cr_assert_eq(r.layers[CR_LAYER_CGROUP_LIMITS].present, found == 3);
	}

	json_t *j = cr_doctor_to_json(&r);
	cr_assert_not_null(j);
	json_t *layers = json_object_get(j, "layers");
	cr_assert_eq(json_object_size(layers), CR_LAYER_COUNT);
	cr_assert(json_is_boolean(json_object_get(json_object_get(layers, "landlock"), "present")));
	cr_assert_eq(json_is_true(json_object_get(j, "ok")), cr_doctor_required_present(&r));
	json_decref(j);

	if (cr_test_in_vm()) {
		/* Debian's stock kernel: every layer must be there */
		for (int i = 0; i < CR_LAYER_COUNT; i++)
			cr_expect(r.layers[i].present || !r.layers[i].built, "VM: %s missing: %s",
				  r.layers[i].name, r.layers[i].detail);
	}
	cr_doctor_report_done(&r);
}
