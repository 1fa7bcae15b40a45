/* tests/model-call: corral's Messages API client (include/corral/model.h) from the command line,
 * for the integration tests. Reads one request body (JSON) on standard input, makes the call
 * --concurrent times at once (default 1), and prints per call one line
 * {"message": ..., "result": {...cr_model_result_json..., "status", "new_connections",
 * "driver"}}; errors also go to standard error. Exit 0 when every call succeeded, 1 when one
 * failed, 2 on bad usage.
 *
 *   model-call --base-url URL --key-file FILE [--header "Name: value"]... [--retries N]
 *              [--timeout-ms N] [--idle-ms N] [--max-event-bytes N] [--poll]
 *              [--concurrent N] [--repeat N] [--cancel-after-ms N]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corral/cleanup.h"
#include "corral/model.h"

#define MAX_HEADERS 16
#define MAX_CALLS 1024

static struct cr_model_call *calls[MAX_CALLS];
static unsigned ncalls;
static long cancel_after_ms = -1;

static void usage(void)
{
	fprintf(stderr,
		"usage: model-call --base-url URL --key-file FILE [--header H]... "
		"[--retries N] [--timeout-ms N] [--idle-ms N] [--max-event-bytes N] "
		"[--poll] [--concurrent N] [--repeat N] [--cancel-after-ms N] <body.json\n");
	exit(2);
}

static unsigned long number(const char *opt, const char *s, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max) {
		fprintf(stderr, "model-call: %s \"%s\": not a number from 0 to %lu\n", opt, s, max);
		exit(2);
	}
	return v;
}

static void *canceller(void *arg)
{
	(void)arg;
	struct timespec ts = { cancel_after_ms / 1000, (cancel_after_ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	for (unsigned i = 0; i < ncalls; i++)
		cr_model_call_cancel(calls[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "base-url", required_argument, NULL, 'b' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "header", required_argument, NULL, 'H' },
		{ "retries", required_argument, NULL, 'r' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "max-event-bytes", required_argument, NULL, 'm' },
		{ "poll", no_argument, NULL, 'p' },
		{ "concurrent", required_argument, NULL, 'c' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "cancel-after-ms", required_argument, NULL, 'x' },
		{ 0 },
	};
	struct cr_model_config cfg;
	const char *key_file = NULL, *headers[MAX_HEADERS + 1] = { 0 };
	unsigned nheaders = 0, concurrent = 1, repeat = 1;
	cr_model_config_init(&cfg);
	int o;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'b':
			cfg.base_url = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'H':
			if (nheaders == MAX_HEADERS)
				usage();
			headers[nheaders++] = optarg;
			break;
		case 'r':
			cfg.max_retries = (unsigned)number("--retries", optarg, 1000);
			break;
		case 't':
			cfg.timeout_ms = (unsigned)number("--timeout-ms", optarg, 86400000);
			break;
		case 'i':
			cfg.idle_ms = (unsigned)number("--idle-ms", optarg, 86400000);
			break;
		case 'm':
			cfg.max_event_bytes = number("--max-event-bytes", optarg, 1ul << 30);
			break;
		case 'p':
			cfg.no_io_uring = true;
			break;
		case 'c':
			concurrent = (unsigned)number("--concurrent", optarg, MAX_CALLS);
			break;
		case 'R':
			repeat = (unsigned)number("--repeat", optarg, 1000);
			break;
		case 'x':
			cancel_after_ms = (long)number("--cancel-after-ms", optarg, 3600000);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !key_file || !concurrent || !repeat)
		usage();

	struct cr_error err = { 0 };
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *body = json_loadf(stdin, 0, &jerr);
	if (!body) {
		fprintf(stderr, "model-call: the body on standard input: %s\n", jerr.text);
		return 2;
	}
	char *key;
	if (cr_model_key_load(key_file, &key, &err) < 0) {
		fprintf(stderr, "model-call: %s\n", err.msg);
		return 1;
	}
	cfg.api_key = key;
	struct cr_model_client *c;
	int r = cr_model_client_new(&cfg, &c, &err);
	cr_model_key_free(key);
	if (r < 0) {
		fprintf(stderr, "model-call: %s\n", err.msg);
		return 1;
	}
	struct cr_model_call_opts opts = { .headers = nheaders ? headers : NULL };
	int rc = 0;
	for (unsigned round = 0; round < repeat; round++) {
		for (ncalls = 0; ncalls < concurrent; ncalls++) {
			if (cr_model_call_start(c, body, &opts, &calls[ncalls], &err) < 0) {
				fprintf(stderr, "model-call: %s\n", err.msg);
				return 1;
			}
		}
		pthread_t t;
		if (cancel_after_ms >= 0 && pthread_create(&t, NULL, canceller, NULL) != 0) {
			fprintf(stderr, "model-call: cannot start the cancelling thread\n");
			return 1;
		}
		if ((r = cr_model_client_run(c, -1, &err)) != 0) {
			fprintf(stderr, "model-call: the client's loop: %s\n", err.msg);
			return 1;
		}
		if (cancel_after_ms >= 0)
			pthread_join(t, NULL);
		for (unsigned i = 0; i < ncalls; i++) {
			const struct cr_model_result *res = cr_model_call_result(calls[i]);
			json_t *rj = cr_model_result_json(res);
			json_t *m = cr_model_call_message(calls[i]);
			json_t *line = json_pack("{s:O?,s:o?}", "message",
						 res->status == 0 ? m : NULL, "result", rj);
			json_object_set_new(
				rj, "status",
				json_string(res->status ? strerror(-res->status) : "ok"));
			json_object_set_new(
				rj, "errno",
				json_string(res->status ? cr_errno_name(-res->status) : ""));
			json_object_set_new(rj, "new_connections",
					    json_integer(res->new_connections));
			json_object_set_new(rj, "driver", json_string(cr_model_client_driver(c)));
			if (!line || json_dumpf(line, stdout, JSON_COMPACT | JSON_SORT_KEYS) < 0) {
				fprintf(stderr, "model-call: cannot print the result\n");
				return 1;
			}
			putchar('\n');
			json_decref(line);
			if (res->status < 0) {
				fprintf(stderr, "model-call: %s\n", res->error.msg);
				rc = 1;
			}
			cr_model_call_free(calls[i]);
		}
	}
	cr_model_client_free(c);
	return fflush(stdout) == 0 ? rc : 1;
}
