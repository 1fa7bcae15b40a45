/* cli/doctor: corral doctor [--json] [--require LAYER[,LAYER...]] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "corral/cleanup.h"
#include "corral/doctor.h"

static void doctor_usage(FILE *f)
{
	fprintf(f,
		"usage: corral doctor [--json] [--require LAYER[,LAYER...]]\n\n"
		"Tries each kernel enforcement layer and says what works. Exits 0 when every\n"
		"required layer (the build's, plus --require) is present, 1 when one is missing.\n"
		"Layers:");
	for (int i = 0; i < CR_LAYER_COUNT; i++)
		fprintf(f, " %s", cr_doctor_layer_name(i));
	fprintf(f, "\n");
}

static const char *state_word(const struct cr_layer_report *l)
{
	if (l->present)
		return "ok";
	if (!l->built)
		return "off";
	return l->required ? "MISSING" : "absent";
}

static int parse_required(const char *arg, unsigned *mask)
{
	for (const char *p = arg;; p++) {
		size_t n = strcspn(p, ",");
		char name[64];
		if (n == 0 || n >= sizeof(name)) {
			fprintf(stderr, "corral doctor: --require \"%s\": %s layer name\n", arg,
				n ? "too long a" : "empty");
			return -1;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		int layer = cr_doctor_layer_from_name(name);
		if (layer < 0) {
			fprintf(stderr, "corral doctor: unknown layer \"%s\" in --require\n", name);
			return -1;
		}
		*mask |= 1u << layer;
		p += n;
		if (!*p)
			return 0;
	}
}

int cr_cli_doctor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "require", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	unsigned required = 0;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'r':
			if (parse_required(optarg, &required) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'h':
			doctor_usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr, "corral doctor: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			doctor_usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral doctor: unexpected argument \"%s\"\n", argv[optind]);
		return CR_EXIT_USAGE;
	}

	struct cr_doctor_report report;
	struct cr_error err;
	if (cr_doctor_run(&report, required, &err) < 0) {
		fprintf(stderr, "corral doctor: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	bool ok = cr_doctor_required_present(&report);

	if (json) {
		json_t *j = cr_doctor_to_json(&report);
		if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) < 0) {
			json_decref(j);
			cr_doctor_report_done(&report);
			fprintf(stderr, "corral doctor: cannot write JSON\n");
			return CR_EXIT_FAIL;
		}
		putchar('\n');
		json_decref(j);
	} else {
		printf("kernel %s (%s)\n", report.kernel_release, report.machine);
		for (int i = 0; i < CR_LAYER_COUNT; i++) {
			const struct cr_layer_report *l = &report.layers[i];
			const char *state = state_word(l);
			printf("  %-17s %-8s%s %s\n", l->title, state, l->required ? "*" : " ",
			       l->detail);
		}
		printf("(* required by this configuration)\n");
		if (ok) {
			printf("all required layers are present\n");
		} else {
			printf("missing required layers:");
			for (int i = 0; i < CR_LAYER_COUNT; i++)
				if (report.layers[i].required && !report.layers[i].present)
					printf(" %s", report.layers[i].name);
			printf("\n");
		}
	}
	cr_doctor_report_done(&report);
	return ok ? CR_EXIT_OK : CR_EXIT_FAIL;
}
