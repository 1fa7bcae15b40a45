/* tests/orch-wake: wake(session) in-process, for the integration tests of the orchestrator that
 * need no corrald: several brains racing to drive one session (fencing), and a session driven
 * end to end over a real log, real sandboxes and a Messages API server. It opens (creating) the
 * log in DIR, makes a session, posts --message as a pending user.message, then runs --wakes
 * wakes of that session at once, each on its own thread with its own model client, and prints
 * one JSON object: {"session", "results":[{"status","epoch","steps","model_calls",
 * "tool_calls","error","replay_us"}...], "events":[every event, {"seq","id","type","epoch",
 * "payload"}]}.
 * Without --state-dir tool calls fail as tool errors (no sandboxes). Exit 0 when the session
 * ended idle, 1 otherwise, 2 on bad usage.
 *
 * --early MODE (one wake) tells the wake of the message as an early event
 * (cr_orch_wake_early), as corrald does for a post still being synced: "placed" appends it and
 * starts the wake once it is in line (cr_log_append_all_placed); "lost" never appends it (an
 * append that failed); "other" appends a different message (another id) in its place. Each
 * result then has "dropped_calls".
 *
 *   orch-wake --log DIR --base-url URL --key-file FILE [--message TEXT] [--wakes N]
 *             [--state-dir DIR --init PATH] [--agent FILE] [--stagger-ms N]
 *             [--early placed|lost|other]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corral/cleanup.h"
#include "corral/id.h"
#include "corral/orchestrator.h"

#define MAX_WAKES 16

static struct cr_model_config model_cfg;
static struct cr_platform platform;
static json_t *agent;
static char session[CR_LOG_ID_MAX];
static long stagger_ms;
static struct cr_log_event early; /* --early: the message the wake is told of */
static const char *early_mode;

struct wake {
	pthread_t thread;
	unsigned index;
	int status;
	struct cr_orch_stats stats;
	struct cr_error err;
};

static int config(void *arg, const char *s, json_t **ret_agent, json_t **ret_env,
		  struct cr_error *err)
{
	(void)arg;
	(void)s;
	(void)err;
	*ret_agent = json_incref(agent);
	*ret_env = json_object();
	return 0;
}

static void *run(void *arg)
{
	struct wake *w = arg;
	struct timespec ts = { (w->index * stagger_ms) / 1000,
			       ((w->index * stagger_ms) % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	struct cr_model_client *c = NULL;
	w->status = cr_model_client_new(&model_cfg, &c, &w->err);
	if (w->status < 0)
		return NULL;
	struct cr_orch_config oc = { .platform = platform, .model = c, .model_retries = -1 };
	w->status =
		cr_orch_wake_early(&oc, session, &early, early_mode ? 1 : 0, &w->stats, &w->err);
	cr_model_client_free(c);
	return NULL;
}

struct start_wakes {
	struct wake *w;
	unsigned n;
};

static void start_wakes(void *arg)
{
	struct start_wakes *sw = arg;
	for (unsigned i = 0; i < sw->n; i++) {
		sw->w[i].index = i;
		pthread_create(&sw->w[i].thread, NULL, run, &sw->w[i]);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: orch-wake --log DIR --base-url URL --key-file FILE "
			"[--message TEXT] [--wakes N] [--state-dir DIR --init PATH] "
			"[--agent FILE] [--stagger-ms N] [--early placed|lost|other]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "base-url", required_argument, NULL, 'b' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "message", required_argument, NULL, 'm' },
		{ "wakes", required_argument, NULL, 'w' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "init", required_argument, NULL, 'i' },
		{ "agent", required_argument, NULL, 'a' },
		{ "stagger-ms", required_argument, NULL, 'g' },
		{ "early", required_argument, NULL, 'e' },
		{ 0 },
	};
	const char *log_dir = NULL, *key_file = NULL, *message = "hello", *state_dir = NULL,
		   *init = NULL, *agent_file = NULL;
	unsigned wakes = 1;
	cr_model_config_init(&model_cfg);
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			log_dir = optarg;
			break;
		case 'b':
			model_cfg.base_url = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'm':
			message = optarg;
			break;
		case 'w':
			wakes = (unsigned)atoi(optarg);
			if (wakes < 1 || wakes > MAX_WAKES)
				usage();
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'i':
			init = optarg;
			break;
		case 'a':
			agent_file = optarg;
			break;
		case 'g':
			stagger_ms = atol(optarg);
			break;
		case 'e':
			early_mode = optarg;
			if (strcmp(optarg, "placed") && strcmp(optarg, "lost") &&
			    strcmp(optarg, "other"))
				usage();
			break;
		default:
			usage();
		}
	}
	if (!log_dir || !key_file || optind < argc || (state_dir && !init) ||
	    (early_mode && wakes != 1))
		usage();

	struct cr_error err;
	char *key = NULL;
	if (cr_model_key_load(key_file, &key, &err) < 0) {
		fprintf(stderr, "orch-wake: %s\n", err.msg);
		return 1;
	}
	model_cfg.api_key = key;
	json_error_t je;
	agent = agent_file ? json_load_file(agent_file, 0, &je)
			   : json_pack("{s:{s:s}, s:[{s:s}]}", "model", "id", "claude-sonnet-4-5",
				       "tools", "type", CR_TOOLSET_TYPE);
	if (!agent) {
		fprintf(stderr, "orch-wake: --agent %s: %s\n", agent_file, je.text);
		return 2;
	}

	struct cr_log_options lo;
	cr_log_options_init(&lo);
	lo.create = true;
	struct cr_log *log = NULL;
	if (cr_log_open(log_dir, &lo, &log, &err) < 0 ||
	    cr_log_session_create(log, NULL, session, &err) < 0) {
		fprintf(stderr, "orch-wake: %s\n", err.msg);
		return 1;
	}
	json_t *msg = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", message);
	_cleanup_free_ char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	struct cr_log_append a = { .session = session,
				   .type = "user.message",
				   .payload = text,
				   .payload_len = strlen(text),
				   .flags = CR_LOG_PENDING };
	if (early_mode) {
		uint8_t raw[CR_ID_RAW];
		if (cr_id_random(raw, &err) < 0) {
			fprintf(stderr, "orch-wake: %s\n", err.msg);
			return 1;
		}
		cr_id_format("sevt_", raw, early.id, sizeof(early.id));
		snprintf(early.type, sizeof(early.type), "user.message");
		early.payload = text;
		early.payload_len = strlen(text);
		a.id = strcmp(early_mode, "placed") == 0 ? early.id : NULL; /* (other: drawn) */
	}
	/* placed: the wake starts once the message is in line, as corrald's early wake does */
	bool placed_start = early_mode && strcmp(early_mode, "placed") == 0;
	bool never = early_mode && strcmp(early_mode, "lost") == 0;

	struct cr_hands_config hc;
	cr_hands_config_init(&hc);
	hc.sandbox.state_dir = state_dir;
	hc.sandbox.init_path = init;
	hc.sandbox.uid_base = CR_SANDBOX_UID_BASE_DEFAULT;
	struct cr_platform_local_config pc = {
		.log = log,
		.hands = state_dir ? &hc : NULL,
		.config = config,
	};
	if (cr_platform_local_new(&pc, &platform, &err) < 0) {
		fprintf(stderr, "orch-wake: %s\n", err.msg);
		return 1;
	}

	struct wake w[MAX_WAKES] = { 0 };
	struct start_wakes sw = { w, wakes };
	struct cr_log_placed placed = { start_wakes, &sw };
	if (!never &&
	    cr_log_append_all_placed(log, &a, 1, placed_start ? &placed : NULL, NULL, &err) < 0) {
		fprintf(stderr, "orch-wake: %s\n", err.msg);
		return 1;
	}
	if (!placed_start)
		start_wakes(&sw);
	for (unsigned i = 0; i < wakes; i++)
		pthread_join(w[i].thread, NULL);

	json_t *out = json_pack("{s:s, s:[], s:[]}", "session", session, "results", "events");
	for (unsigned i = 0; i < wakes; i++) {
		json_array_append_new(
			json_object_get(out, "results"),
			json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:s, s:I}", "status",
				  w[i].status == 0 ? "ok" : cr_errno_name(-w[i].status), "epoch",
				  (json_int_t)w[i].stats.epoch, "steps", w[i].stats.steps,
				  "model_calls", w[i].stats.model_calls, "dropped_calls",
				  w[i].stats.dropped_calls, "tool_calls", w[i].stats.tool_calls,
				  "error", w[i].status ? w[i].err.msg : "", "replay_us",
				  (json_int_t)(w[i].stats.replay_ns / 1000)));
		if (w[i].status < 0 && w[i].status != -ESTALE)
			fprintf(stderr, "orch-wake: wake %u: %s\n", i, w[i].err.msg);
	}
	struct cr_log_event *ev = NULL;
	size_t n = 0;
	int rc = 1;
	if (cr_log_get_events(log, session, 0, 0, &ev, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			json_t *p = json_loads(ev[i].payload, 0, NULL);
			json_array_append_new(
				json_object_get(out, "events"),
				json_pack("{s:I, s:s, s:s, s:I, s:o}", "seq", (json_int_t)ev[i].seq,
					  "id", ev[i].id, "type", ev[i].type, "epoch",
					  (json_int_t)ev[i].epoch, "payload", p ? p : json_null()));
			if (strcmp(ev[i].type, "session.status_idle") == 0)
				rc = 0;
			else if (strncmp(ev[i].type, "session.status_", 15) == 0)
				rc = 1;
		}
		cr_log_events_free(ev, n);
	}
	/* The session's sandbox and workspace go with the test. */
	if (cr_platform_local_release(&platform, session, &err) < 0)
		fprintf(stderr, "orch-wake: %s\n", err.msg);
	char *s = json_dumps(out, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(out);
	cr_platform_local_free(&platform);
	cr_log_close(log);
	json_decref(agent);
	cr_model_key_free(key);
	return rc;
}
