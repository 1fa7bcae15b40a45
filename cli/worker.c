/* cli/worker: `corral worker`, one of corrald's brains (runtime/brainlink, daemon/workers).
 * corrald starts it on a socket; it waits for a session to wake, drives it with cr_orch_wake,
 * reports, and waits again, until corrald closes the socket. It keeps nothing between wakes but
 * its model client's connections, so killing it at any moment loses nothing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "corral/brainlink.h"
#include "corral/heap.h"
#include "corral/orchestrator.h"
#include "corral/strutil.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corral worker --fd N --model-key-file FILE [--model-base-url URL]\n"
		"  [--context-budget TOKENS]\n"
		"Started by corrald, one per --workers: drives sessions corrald hands it over the\n"
		"socket at fd N, calling the model with the key in FILE.\n");
}

int cr_cli_worker(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "model-key-file", required_argument, NULL, 'k' },
		{ "model-base-url", required_argument, NULL, 'u' },
		{ "context-budget", required_argument, NULL, 'b' },
		{ "model-retries", required_argument, NULL, 'r' },
		{ "model-header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t fd = 0, budget = 0, retries = CR_MODEL_MAX_RETRIES_DEFAULT;
	const char *headers[9] = { 0 };
	size_t n_headers = 0;
	bool have_fd = false;
	const char *key_file = NULL, *base_url = NULL;
	int c;
	cr_heap_keep(); /* (a wake frees what it read: the next reuses it) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (cr_parse_u64(optarg, 0, 1 << 20, &fd) < 0) {
				fprintf(stderr,
					"corral worker: --fd %s: want a descriptor number\n",
					optarg);
				return CR_EXIT_USAGE;
			}
			have_fd = true;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'u':
			base_url = optarg;
			break;
		case 'b':
			if (cr_parse_u64(optarg, 0, 1ull << 40, &budget) < 0) {
				fprintf(stderr,
					"corral worker: --context-budget %s: want a number\n",
					optarg);
				return CR_EXIT_USAGE;
			}
			break;
		case 'r':
			if (cr_parse_u64(optarg, 0, CR_MODEL_MAX_RETRIES_MAX, &retries) < 0) {
				fprintf(stderr,
					"corral worker: --model-retries %s: want a number\n",
					optarg);
				return CR_EXIT_USAGE;
			}
			break;
		case 'H':
			if (n_headers == 8) {
				fprintf(stderr, "corral worker: at most 8 --model-header\n");
				return CR_EXIT_USAGE;
			}
			headers[n_headers++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr, "corral worker: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (!have_fd || !key_file || optind < argc) {
		usage(stderr);
		return CR_EXIT_USAGE;
	}

	struct cr_error err;
	char *key = NULL;
	if (cr_model_key_load(key_file, &key, &err) < 0) {
		fprintf(stderr, "corral worker: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	struct cr_model_config mc;
	cr_model_config_init(&mc);
	mc.base_url = base_url;
	mc.api_key = key;
	mc.max_retries = (unsigned)retries;
	struct cr_model_client *model = NULL;
	int r = cr_model_client_new(&mc, &model, &err);
	cr_model_key_free(key);
	if (r < 0) {
		fprintf(stderr, "corral worker: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	struct cr_brainlink *link = NULL;
	if (cr_brainlink_new((int)fd, &link, &err) < 0) {
		fprintf(stderr, "corral worker: %s\n", err.msg);
		cr_model_client_free(model);
		return CR_EXIT_FAIL;
	}
	struct cr_orch_config oc = {
		.platform = cr_brainlink_platform(link),
		.model = model,
		.context_budget = budget,
		.model_retries = -1,
		.model_headers = n_headers ? headers : NULL,
	};
	char session[CR_LOG_ID_MAX];
	struct cr_log_event *early;
	size_t n_early;
	while ((r = cr_brainlink_next(link, session, &early, &n_early, &err)) == 0) {
		struct cr_orch_stats st;
		struct cr_error werr = { 0 };
		int w = cr_orch_wake_early(&oc, session, early, n_early, &st, &werr);
		cr_log_events_free(early, n_early);
		if (cr_brainlink_done(link, session, w, &st, w < 0 ? werr.msg : "", &err) < 0) {
			r = -err.code;
			break;
		}
	}
	cr_brainlink_free(link);
	cr_model_client_free(model);
	/* corrald closing the link is how a worker is told to go. */
	if (r == -ECONNRESET)
		return CR_EXIT_OK;
	fprintf(stderr, "corral worker: %s\n", err.msg);
	return CR_EXIT_FAIL;
}
