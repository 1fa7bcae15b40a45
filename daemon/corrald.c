/* daemon/corrald: the platform daemon. It validates its options, checks the kernel layers at
 * start-up (refusing to start when a required one is missing), prepares its state directory,
 * opens the session log (<state_dir>/log), serves the API (daemon/api) and supervises the
 * workers (daemon/workers) until SIGTERM or SIGINT. It never runs a harness step itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/api.h"
#include "corral/cleanup.h"
#include "corral/doctor.h"
#include "corral/hands.h"
#include "corral/heap.h"
#include "corral/log.h"
#include "corral/model.h"
#include "corral/orchestrator.h"
#include "corral/strutil.h"
#include "corral/workers.h"

struct options {
	const char *state_dir;
	const char *socket;
	const char *listen;
	long workers;
	const char *model_key_file; /* NULL: <state_dir>/model-key */
	const char *model_base_url; /* NULL: the model client's default ($ANTHROPIC_BASE_URL) */
	long context_budget;
	long model_retries; /* -1: the model client's default */
	const char *model_headers[9]; /* extra request headers for the model, NULL-terminated */
	size_t n_headers;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corrald [--state-dir DIR] [--socket PATH] [--listen 127.0.0.1:PORT] "
		"[--workers N]\n"
		"               [--model-key-file FILE] [--model-base-url URL] "
		"[--model-retries N]\n"
		"               [--model-header \"Name: value\"]... [--context-budget TOKENS]\n");
}

/* A decimal number made of digits only (no sign, no spaces) within [min, max]. */
static int parse_number(const char *s, long min, long max, long *ret)
{
	uint64_t v;
	if (cr_parse_u64(s, (uint64_t)min, (uint64_t)max, &v) < 0)
		return -1;
	*ret = (long)v;
	return 0;
}

/* Accepts 127.x.y.z:PORT and [::1]:PORT: the API is never exposed beyond loopback. */
static int check_listen(const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	long port;
	if (parse_number(colon + 1, 0, 65535, &port) < 0) /* (0: any free port) */
		return -1;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ? 0 : -1;
	return strcmp(host, "[::1]") == 0 ? 0 : -1;
}

static int make_state_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "corrald: create state directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "corrald: state directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "corrald: state directory %s is not a directory\n", dir);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
		fprintf(stderr,
			"corrald: state directory %s must be owned by uid %u and closed to others "
			"(it is uid %u, mode %03o)\n",
			dir, geteuid(), st.st_uid, st.st_mode & 0777);
		return -1;
	}
	return 0;
}

/* This program's directory + name: corral and corral-init are installed beside corrald (or
 * corral-init in ../libexec/corral, as "make install" puts it). */
static int beside_self(const char *name, char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(buf, size, "%s/%s", self, name) >= size)
		return -1;
	if (access(buf, X_OK) == 0)
		return 0;
	if ((size_t)snprintf(buf, size, "%s/../libexec/corral/%s", self, name) >= size)
		return -1;
	return access(buf, X_OK);
}

struct daemon {
	struct cr_log *log;
	struct cr_api *api;
	struct cr_platform platform;
	struct cr_workers *workers;
};

static void hook_wake(void *arg, const char *session, uint64_t through)
{
	struct daemon *d = arg;
	cr_workers_wake(d->workers, session, through);
}

static void hook_wake_early(void *arg, const char *session, const struct cr_log_event *ev, size_t n)
{
	struct daemon *d = arg;
	cr_workers_wake_early(d->workers, session, ev, n);
}

static void eager_done(void *arg, const char *session, int result, const struct cr_error *err)
{
	(void)arg;
	if (result < 0)
		fprintf(stderr, "corrald: session %s: eager sandbox: %s\n", session, err->msg);
}

/* An eager environment's sandbox is made on a thread of its own: the create is answered at
 * once, and the session's first turn waits for the sandbox (cr_platform_local_provision_start). */
static void hook_created(void *arg, const char *session, const json_t *env)
{
	struct daemon *d = arg;
	json_t *config = json_object_get(env, "config");
	const char *prov = json_string_value(json_object_get(config, "provisioning"));
	if (!prov || strcmp(prov, "eager") != 0)
		return;
	struct cr_error err;
	if (cr_platform_local_provision_start(&d->platform, session, eager_done, d, &err) < 0)
		fprintf(stderr, "corrald: session %s: eager sandbox: %s\n", session, err.msg);
}

/* A brain's preview of an event it is making: to the session's streams that want previews. */
static void platform_preview(void *arg, const char *session, const char *json)
{
	struct daemon *d = arg;
	if (d->api)
		cr_api_preview(d->api, session, json);
}

static void hook_ended(void *arg, const char *session)
{
	struct daemon *d = arg;
	struct cr_error err;
	if (cr_platform_local_release(&d->platform, session, &err) < 0)
		fprintf(stderr, "corrald: session %s: destroy its sandbox: %s\n", session, err.msg);
}

/* corral's sandbox endpoints, on the local platform's sandboxes */

_Static_assert(CR_API_SANDBOX_ID_MAX >= CR_SANDBOX_ID_MAX, "the API must hold sandbox ids");

static void api_sandbox(const struct cr_platform_sandbox *v, struct cr_api_sandbox *ret)
{
	*ret = (struct cr_api_sandbox){ .status = cr_sandbox_state_name(v->state),
					.created_ns = v->created_ns };
	snprintf(ret->id, sizeof(ret->id), "%s", v->id);
	snprintf(ret->session, sizeof(ret->session), "%s", v->session);
}

static int sandboxes_list(void *arg, struct cr_api_sandbox **ret, size_t *ret_n,
			  struct cr_error *err)
{
	struct daemon *d = arg;
	struct cr_platform_sandbox *v;
	size_t n;
	int r = cr_platform_local_sandboxes(&d->platform, &v, &n, err);
	if (r < 0)
		return r;
	struct cr_api_sandbox *out = calloc(n ? n : 1, sizeof(*out));
	if (!out) {
		free(v);
		return cr_error_set(err, ENOMEM, "sandboxes: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		api_sandbox(&v[i], &out[i]);
	free(v);
	*ret = out;
	*ret_n = n;
	return 0;
}

static int sandboxes_get(void *arg, const char *id, struct cr_api_sandbox *ret,
			 struct cr_error *err)
{
	struct daemon *d = arg;
	struct cr_platform_sandbox v;
	int r = cr_platform_local_sandbox(&d->platform, id, &v, err);
	if (r == 0)
		api_sandbox(&v, ret);
	return r;
}

static int sandboxes_exec(void *arg, const char *id, const char *const *argv, unsigned timeout_ms,
			  json_t **ret, struct cr_error *err)
{
	struct daemon *d = arg;
	return cr_platform_local_exec(&d->platform, id, argv, timeout_ms, ret, err);
}

static int sandboxes_pause(void *arg, const char *id, bool pause, struct cr_error *err)
{
	struct daemon *d = arg;
	return cr_platform_local_pause(&d->platform, id, pause, err);
}

static int sandboxes_handoff(void *arg, const char *id, const char *from_session,
			     const char *handle, const char *to_session, struct cr_error *err)
{
	struct daemon *d = arg;
	return cr_platform_local_handoff(&d->platform, id, from_session, handle, to_session, err);
}

static int sandboxes_destroy(void *arg, const char *id, bool keep_workspace, struct cr_error *err)
{
	struct daemon *d = arg;
	return cr_platform_local_destroy(&d->platform, id, keep_workspace, err);
}

static const struct cr_api_sandbox_ops sandbox_ops = {
	.list = sandboxes_list,
	.get = sandboxes_get,
	.exec = sandboxes_exec,
	.pause = sandboxes_pause,
	.handoff = sandboxes_handoff,
	.destroy = sandboxes_destroy,
};

static int platform_config(void *arg, const char *session, json_t **ret_agent, json_t **ret_env,
			   struct cr_error *err)
{
	struct daemon *d = arg;
	return cr_api_session_config(d->api, session, ret_agent, ret_env, err);
}

/* Whether the session's last status event is session.status_running. Read backwards a page at
 * a time: a session's last status is usually among its last events, so start-up reads a few
 * hundred events per session, not all of them. */
static bool left_running(struct cr_log *log, const struct cr_log_session_info *info)
{
	enum {
		PAGE = 256
	};
	for (uint64_t hi = info->last_seq; hi > 0;) {
		uint64_t lo = hi > PAGE ? hi - PAGE : 0;
		struct cr_log_event *ev = NULL;
		size_t k = 0;
		struct cr_error err;
		if (cr_log_get_events(log, info->id, lo, (size_t)(hi - lo), &ev, &k, &err) < 0) {
			fprintf(stderr, "corrald: session %s: %s\n", info->id, err.msg);
			return false;
		}
		for (size_t j = k; j-- > 0;) {
			if (strncmp(ev[j].type, "session.status_", 15) != 0)
				continue;
			bool running = strcmp(ev[j].type, "session.status_running") == 0;
			cr_log_events_free(ev, k);
			return running;
		}
		cr_log_events_free(ev, k);
		hi = lo;
	}
	return false;
}

/* Sessions a stopped corrald left in the middle of something: client events not yet taken, or
 * a status of running. They are woken as soon as the workers run. */
static void recover(struct daemon *d)
{
	struct cr_log_session_info *v = NULL;
	size_t n = 0;
	struct cr_error err;
	if (cr_log_list_sessions(d->log, &v, &n, &err) < 0) {
		fprintf(stderr, "corrald: list sessions: %s\n", err.msg);
		return;
	}
	size_t woken = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].pending > 0 || left_running(d->log, &v[i])) {
			cr_workers_wake(d->workers, v[i].id, 0);
			woken++;
		}
	}
	free(v);
	if (woken)
		fprintf(stderr, "corrald: %zu session(s) resumed after a restart\n", woken);
}

/* Opens the log, starts the API, the platform and the workers, and waits for SIGTERM or SIGINT,
 * then shuts down in the reverse order. */
static int serve(const struct options *o)
{
	struct cr_error err;
	char path[PATH_MAX], key_file[PATH_MAX], corral[PATH_MAX], init[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/log", o->state_dir) >= sizeof(path) ||
	    (size_t)snprintf(key_file, sizeof(key_file), "%s/model-key", o->state_dir) >=
		    sizeof(key_file)) {
		fprintf(stderr, "corrald: state directory path too long\n");
		return 1;
	}
	if (o->model_key_file)
		snprintf(key_file, sizeof(key_file), "%s", o->model_key_file);
	/* The workers load the key; corrald checks it first, so a missing or open key is one
	 * clear error at start rather than one per worker. */
	char *key = NULL;
	if (cr_model_key_load(key_file, &key, &err) < 0) {
		fprintf(stderr,
			"corrald: the model API key: %s (write the key to %s, mode 0600, or name "
			"another file with --model-key-file)\n",
			err.msg, key_file);
		return 1;
	}
	cr_model_key_free(key);
	if (beside_self("corral", corral, sizeof(corral)) < 0 ||
	    beside_self("corral-init", init, sizeof(init)) < 0) {
		fprintf(stderr,
			"corrald: corral and corral-init must be installed beside corrald\n");
		return 1;
	}

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGPIPE);
	/* Every thread started from here on inherits the mask: the signals are taken below. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct daemon d = { 0 };
	struct cr_log_options lo;
	cr_log_options_init(&lo);
	lo.create = true;
	if (cr_log_open(path, &lo, &d.log, &err) < 0) {
		fprintf(stderr, "corrald: %s\n", err.msg);
		return 1;
	}
	struct cr_hands_config hc;
	cr_hands_config_init(&hc);
	hc.sandbox.state_dir = o->state_dir;
	hc.sandbox.init_path = init;
	hc.sandbox.uid_base = CR_SANDBOX_UID_BASE_DEFAULT;
	hc.log = d.log;
	size_t swept = 0;
	if (cr_hands_sweep(&hc, &swept, &err) < 0)
		fprintf(stderr, "corrald: sweeping sandboxes: %s\n", err.msg);
	struct cr_platform_local_config pc = {
		.log = d.log,
		.hands = &hc,
		.config = platform_config,
		.config_arg = &d,
		.preview = platform_preview,
		.preview_arg = &d,
	};
	int rc = 1;
	if (cr_platform_local_new(&pc, &d.platform, &err) < 0) {
		fprintf(stderr, "corrald: %s\n", err.msg);
		goto out;
	}
	struct cr_api_config ac = {
		.log = d.log,
		.state_dir = o->state_dir,
		.socket_path = o->socket,
		.listen = o->listen,
		.hooks = { .arg = &d,
			   .wake = hook_wake,
			   .wake_early = hook_wake_early,
			   .session_created = hook_created,
			   .session_ended = hook_ended,
			   .sandboxes = &sandbox_ops },
	};
	if (cr_api_start(&ac, &d.api, &err) < 0) {
		fprintf(stderr, "corrald: %s\n", err.msg);
		goto out;
	}
	char budget[32], retries[32];
	snprintf(budget, sizeof(budget), "--context-budget=%ld", o->context_budget);
	snprintf(retries, sizeof(retries), "--model-retries=%ld", o->model_retries);
	const char *args[32];
	size_t na = 0;
	for (size_t i = 0; i < o->n_headers; i++) {
		args[na++] = "--model-header";
		args[na++] = o->model_headers[i];
	}
	if (o->model_retries >= 0)
		args[na++] = retries;
	args[na++] = "--model-key-file";
	args[na++] = key_file;
	if (o->model_base_url) {
		args[na++] = "--model-base-url";
		args[na++] = o->model_base_url;
	}
	args[na++] = budget;
	args[na] = NULL;
	struct cr_workers_config wc = {
		.count = (unsigned)o->workers,
		.program = corral,
		.worker_args = args,
		.platform = &d.platform,
		.log = d.log,
	};
	if (cr_workers_start(&wc, &d.workers, &err) < 0) {
		fprintf(stderr, "corrald: %s\n", err.msg);
		goto out;
	}
	recover(&d);
	fprintf(stderr, "corrald: serving on %s", o->socket);
	if (o->listen)
		fprintf(stderr, " and port %u", cr_api_port(d.api));
	fprintf(stderr, " with %ld workers (state %s)\n", o->workers, o->state_dir);

	int sig;
	do
		sig = 0, sigwait(&sigs, &sig);
	while (sig == SIGPIPE);
	fprintf(stderr, "corrald: %s: shutting down\n", strsignal(sig));
	rc = 0;
out:
	/* The API first: nothing new arrives while the workers stop. */
	cr_api_stop(d.api);
	cr_workers_stop(d.workers);
	cr_platform_local_free(&d.platform);
	cr_log_close(d.log);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "model-key-file", required_argument, NULL, 'k' },
		{ "model-base-url", required_argument, NULL, 'u' },
		{ "context-budget", required_argument, NULL, 'b' },
		{ "model-retries", required_argument, NULL, 'r' },
		{ "model-header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct options o = {
		.state_dir = CONFIG_CORRAL_STATE_DIR,
		.socket = CONFIG_CORRAL_RUN_DIR "/corrald.sock",
		.workers = 2,
		.model_retries = -1,
	};
	int c;

	cr_heap_keep(); /* (the brain link's pages and the API's reads come and go) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.state_dir = optarg;
			break;
		case 'S':
			o.socket = optarg;
			break;
		case 'l':
			if (check_listen(optarg) < 0) {
				fprintf(stderr,
					"corrald: --listen %s: want a loopback address and "
					"port, 127.0.0.1:PORT or [::1]:PORT\n",
					optarg);
				return 2;
			}
			o.listen = optarg;
			break;
		case 'w':
			if (parse_number(optarg, 1, 1024, &o.workers) < 0) {
				fprintf(stderr,
					"corrald: --workers %s: want a number from 1 to 1024\n",
					optarg);
				return 2;
			}
			break;
		case 'k':
			o.model_key_file = optarg;
			break;
		case 'u':
			o.model_base_url = optarg;
			break;
		case 'r':
			if (parse_number(optarg, 0, CR_MODEL_MAX_RETRIES_MAX, &o.model_retries) <
			    0) {
				fprintf(stderr,
					"corrald: --model-retries %s: want a number from 0 to %d\n",
					optarg, CR_MODEL_MAX_RETRIES_MAX);
				return 2;
			}
			break;
		case 'H':
			if (o.n_headers == 8 || !strchr(optarg, ':')) {
				fprintf(stderr,
					"corrald: --model-header %s: want \"Name: value\" (at most "
					"8)\n",
					optarg);
				return 2;
			}
			o.model_headers[o.n_headers++] = optarg;
			break;
		case 'b':
			if (parse_number(optarg, 0, 2000000000, &o.context_budget) < 0) {
				fprintf(stderr,
					"corrald: --context-budget %s: want a number of tokens "
					"(0: never compact)\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "corrald: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corrald: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (strlen(o.socket) >= 108) {
		fprintf(stderr, "corrald: --socket %s: longer than a Unix socket path can be\n",
			o.socket);
		return 2;
	}

	struct cr_doctor_report report;
	struct cr_error err;
	if (cr_doctor_run(&report, 0, &err) < 0) {
		fprintf(stderr, "corrald: checking kernel layers: %s\n", err.msg);
		return 1;
	}
	fprintf(stderr, "corrald: kernel %s\n", report.kernel_release);
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		const struct cr_layer_report *l = &report.layers[i];
		fprintf(stderr, "corrald: %-16s %s%s: %s\n", l->title,
			l->present  ? "ok"
			: !l->built ? "off"
				    : "missing",
			l->required ? " (required)" : "", l->detail);
	}
	bool ok = cr_doctor_required_present(&report);
	cr_doctor_report_done(&report);
	if (!ok) {
		fprintf(stderr,
			"corrald: refusing to start: a required layer is missing (see above; "
			"corral doctor explains each)\n");
		return 1;
	}
	if (make_state_dir(o.state_dir) < 0)
		return 1;

	return serve(&o);
}
