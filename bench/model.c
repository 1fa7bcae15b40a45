/* bench/model: corral bench model. corral's Messages API client (runtime/model) and, as the
 * baseline in the same run, the official TypeScript SDK (@anthropic-ai/sdk under node) stream
 * the same reply from the same corral-fake-api, started here on loopback with no added latency
 * and asked to stamp each delta with the time it was written (its "stamp" knob), C streams at
 * once. The two sides alternate over CR_BENCH_MODEL_ROUNDS rounds, each after a warm-up wave
 * of their own. Measured: the first delta's delivery latency (stamp to the callback, or to the
 * SDK's event loop), CPU time per stream (this process's rusage; node's process.cpuUsage) and
 * streams per second. Everything started here is stopped and removed again. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-internal.h"
#include "corral/clock.h"
#include "bench.h"
#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/model.h"

extern char **environ;

#define NODE_SCRIPT "sdk-bench.cjs"

/* The SDK's side: the same work as run_c below, timed inside node (its start-up is not). */
static const char node_script[] =
	"'use strict';\n"
	"const path = require('path'), fs = require('fs');\n"
	"const [sdkDir, base, key, streams, total, warmup, bodyFile, staggerMs, knobs] =\n"
	"  process.argv.slice(2);\n"
	"const sdk = require('module').createRequire(path.join(sdkDir, 'package.json'))"
	"('@anthropic-ai/sdk');\n"
	"const Anthropic = sdk.default || sdk.Anthropic || sdk;\n"
	"const client = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });\n"
	"const body = JSON.parse(fs.readFileSync(bodyFile, 'utf8'));\n"
	"const headers = { 'x-fake-api': knobs };\n"
	"let outputTokens = 0;\n"
	"async function one(samples, headers) {\n"
	"  const s = client.messages.stream(body, { headers });\n"
	"  let first = true;\n"
	"  for await (const ev of s) {\n"
	"    if (first && ev.type === 'content_block_delta') {\n"
	"      first = false;\n"
	"      if (samples) samples.push(Number(process.hrtime.bigint() - "
	"BigInt(ev.fake_api_sent_ns)) / 1000);\n"
	"    }\n"
	"  }\n"
	"  const m = await s.finalMessage();\n"
	"  if (!m.content.some((b) => b.type === 'tool_use')) throw new Error('no tool call');\n"
	"  outputTokens = m.usage.output_tokens;\n"
	"}\n"
	"async function run(n, samples, headers, stagger) {\n"
	"  let next = 0;\n"
	"  const worker = async (i) => {\n"
	"    await new Promise((ok) => setTimeout(ok, i * stagger));\n"
	"    while (next < n) { next++; await one(samples, headers); }\n"
	"  };\n"
	"  await Promise.all(Array.from({ length: Math.min(Number(streams), n) }, (_, i) => "
	"worker(i)));\n"
	"}\n"
	"(async () => {\n"
	"  await run(Number(warmup), null, { 'x-fake-api': '{}' }, 0);\n"
	"  const samples = [];\n"
	"  const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();\n"
	"  await run(Number(total), samples, headers, Number(staggerMs));\n"
	"  const wall = Number(process.hrtime.bigint() - t0) / 1e9, c = process.cpuUsage(c0);\n"
	"  process.stdout.write(JSON.stringify({ cpu_ms: (c.user + c.system) / 1000, wall_s: wall,"
	" output_tokens: outputTokens, overhead_us: samples }) + '\\n');\n"
	"})().catch((e) => { process.stderr.write(String((e && e.stack) || e) + '\\n');"
	" process.exit(1); });\n";

void cr_bench_model_opts_init(struct cr_bench_model_opts *opts)
{
	*opts = (struct cr_bench_model_opts){
		.streams = CR_BENCH_MODEL_STREAMS_DEFAULT,
		.total = CR_BENCH_MODEL_TOTAL_DEFAULT,
		.deltas = CR_BENCH_MODEL_DELTAS_DEFAULT,
		.rate = CR_BENCH_MODEL_RATE_DEFAULT,
		.node = "node",
	};
}

/* --- the work -------------------------------------------------------------------------------- */

struct run;

struct slot {
	struct run *run;
	bool first_seen;
};

struct run {
	struct cr_model_client *client;
	json_t *body;
	struct cr_model_call_opts opts;
	unsigned started, done, total;
	struct cr_bench_samples *samples; /* NULL: a warm-up */
	int64_t output_tokens;
	int failed;
	struct cr_error err;
	struct cr_model_call **calls; /* per slot, the call running there */
	struct slot *slots;
	unsigned nslots;
};

static int on_event(void *arg, json_t *ev, struct cr_error *err)
{
	struct slot *s = arg;
	(void)err;
	if (s->first_seen)
		return 0;
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type || strcmp(type, "content_block_delta") != 0)
		return 0;
	uint64_t now = cr_now_ns();
	s->first_seen = true;
	json_int_t sent = json_integer_value(json_object_get(ev, "fake_api_sent_ns"));
	if (s->run->samples && sent > 0 && (uint64_t)sent <= now &&
	    cr_bench_samples_add(s->run->samples, now - (uint64_t)sent) < 0)
		return cr_error_set(err, ENOMEM, "bench samples");
	return 0;
}

static int start_in(struct run *r, struct slot *s, struct cr_error *err);

static void on_done(void *arg, struct cr_model_call *call)
{
	struct slot *s = arg;
	struct run *r = s->run;
	const struct cr_model_result *res = cr_model_call_result(call);
	size_t i = (size_t)(s - r->slots);
	r->calls[i] = NULL;
	r->done++;
	if (res->status < 0 && !r->failed) {
		r->failed = res->status;
		r->err = res->error;
	} else if (res->status == 0) {
		json_t *content = json_object_get(cr_model_call_message(call), "content");
		json_t *last = json_array_get(content, json_array_size(content) - 1);
		const char *t = json_string_value(json_object_get(last, "type"));
		if ((!t || strcmp(t, "tool_use") != 0) && !r->failed) {
			r->failed = -EBADMSG;
			cr_error_set(&r->err, EBADMSG, "a reply without its tool call");
		}
		r->output_tokens = res->usage.output_tokens;
	}
	cr_model_call_free(call);
	if (!r->failed && r->started < r->total && start_in(r, s, &r->err) < 0)
		r->failed = -r->err.code;
}

static int start_in(struct run *r, struct slot *s, struct cr_error *err)
{
	s->first_seen = false;
	struct cr_model_call_opts o = r->opts;
	o.arg = s;
	size_t i = (size_t)(s - r->slots);
	int e = cr_model_call_start(r->client, r->body, &o, &r->calls[i], err);
	if (e < 0)
		return e;
	r->started++;
	return 0;
}

/* n streams through the client, r->nslots at once, slot i starting i * stagger_ns after the
 * first (then each slot starts its next stream when one ends). */
static int run_c(struct run *r, unsigned n, struct cr_bench_samples *samples, uint64_t stagger_ns,
		 const atomic_bool *cancel, struct cr_error *err)
{
	r->started = r->done = 0;
	r->total = n;
	r->samples = samples;
	r->failed = 0;
	uint64_t t0 = cr_now_ns();
	unsigned waiting = 0; /* slots started so far */
	while (r->done < n && !r->failed) {
		uint64_t now = cr_now_ns();
		while (waiting < r->nslots && r->started < n && t0 + waiting * stagger_ns <= now)
			if (start_in(r, &r->slots[waiting++], err) < 0)
				return -err->code;
		int ms = 200;
		if (waiting < r->nslots && r->started < n) {
			uint64_t at = t0 + waiting * stagger_ns;
			ms = at > now ? (int)((at - now) / 1000000u) + 1 : 0;
		}
		if (r->done == r->started) {
			struct timespec ts = { 0, (long)ms * 1000000 };
			nanosleep(&ts, NULL);
		} else {
			int left = cr_model_client_run(r->client, ms, err);
			if (left < 0)
				return left;
		}
		if (cr_bench_cancelled(cancel)) {
			for (unsigned i = 0; i < r->nslots; i++)
				if (r->calls[i])
					cr_model_call_cancel(r->calls[i]);
			cr_model_client_run(r->client, -1, NULL);
			return cr_bench_cancel_error(err);
		}
	}
	/* After a failure, the calls still running end (nothing starts new ones) */
	cr_model_client_run(r->client, -1, NULL);
	if (r->failed) {
		*err = r->err;
		return cr_error_prefix(err, "corral's client");
	}
	return 0;
}

/* --- the figures ----------------------------------------------------------------------------- */

static double usec(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
	       (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

/* p50, p99 and max of samples in microseconds as <prefix>_p50_us etc. */
static int put_tails(json_t *o, const char *prefix, struct cr_bench_samples *s)
{
	static const unsigned pct[] = { 50, 99, 100 };
	static const char *const name[] = { "p50", "p99", "max" };
	char key[96];
	cr_bench_sort(s->v, s->n);
	for (size_t i = 0; i < CR_ARRAY_SIZE(pct); i++) {
		snprintf(key, sizeof(key), "%s_%s_us", prefix, name[i]);
		json_t *v = s->n ? json_real(usec(cr_bench_rank(s->v, s->n, pct[i]))) : json_null();
		if (cr_bench_put(o, key, v) < 0)
			return -1;
	}
	return 0;
}

/* One side's figures in one phase, added up over the rounds. */
struct side {
	double cpu_ms, wall_s;
	unsigned streams;
	int64_t output_tokens;
	struct cr_bench_samples samples;
};

/* A side's figures: <prefix>client_overhead_* (paced), <prefix>flood_client_overhead_*,
 * <prefix>cpu_ms_per_stream and <prefix>streams_per_s (flood: zero added latency),
 * <prefix>paced_cpu_ms_per_stream, and for the SDK its deltas_per_stream. */
static int put_side(json_t *o, const char *prefix, struct side *paced, struct side *flood)
{
	char key[96];
	snprintf(key, sizeof(key), "%sclient_overhead", prefix);
	if (put_tails(o, key, &paced->samples) < 0)
		return -1;
	snprintf(key, sizeof(key), "%sflood_client_overhead", prefix);
	if (put_tails(o, key, &flood->samples) < 0)
		return -1;
	snprintf(key, sizeof(key), "%scpu_ms_per_stream", prefix);
	if (cr_bench_put(o, key, json_real(flood->cpu_ms / flood->streams)) < 0)
		return -1;
	snprintf(key, sizeof(key), "%spaced_cpu_ms_per_stream", prefix);
	if (cr_bench_put(o, key, json_real(paced->cpu_ms / paced->streams)) < 0)
		return -1;
	snprintf(key, sizeof(key), "%sstreams_per_s", prefix);
	if (cr_bench_put(o, key, json_real(flood->streams / flood->wall_s)) < 0)
		return -1;
	if (*prefix) {
		snprintf(key, sizeof(key), "%sdeltas_per_stream", prefix);
		if (cr_bench_put(o, key, json_integer(paced->output_tokens)) < 0)
			return -1;
	}
	return 0;
}

/* node with nargv until it exits; its stdout and stderr to files. */
static int run_node(char *const nargv[], const char *out, const char *errpath,
		    const atomic_bool *cancel, struct cr_error *err)
{
	pid_t node;
	int status, r = cr_bench_spawn(nargv, out, errpath, &node, err);
	if (r < 0)
		return r;
	while (waitpid(node, &status, 0) < 0)
		if (errno != EINTR)
			return cr_error_errno(err, errno, "wait for node");
	if (cr_bench_cancelled(cancel))
		return cr_bench_cancel_error(err);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char line[200];
		cr_bench_child_error(errpath, line, sizeof(line));
		return cr_error_set(err, EIO, "the SDK's run failed (%s %s): %s", nargv[0],
				    nargv[1], *line ? line : "no message");
	}
	return 0;
}

static int read_sdk(const char *path, struct side *t, struct cr_error *err)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j)
		return cr_error_set(err, EBADMSG, "the SDK's figures: %s", je.text);
	json_t *samples = json_object_get(j, "overhead_us");
	size_t i;
	json_t *v;
	int r = 0;
	t->cpu_ms += json_number_value(json_object_get(j, "cpu_ms"));
	t->wall_s += json_number_value(json_object_get(j, "wall_s"));
	t->output_tokens = json_integer_value(json_object_get(j, "output_tokens"));
	json_array_foreach (samples, i, v) {
		double us = json_number_value(v);
		if (us >= 0 && cr_bench_samples_add(&t->samples, (uint64_t)(us * 1000)) < 0) {
			r = cr_error_set(err, ENOMEM, "bench samples");
			break;
		}
	}
	json_decref(j);
	return r;
}

/* The SDK's reason for being unavailable, or NULL when node and the SDK are there. */
static const char *sdk_missing(const struct cr_bench_model_opts *o, char *buf, size_t size)
{
	if (!o->sdk_dir) {
		snprintf(buf, size, "no SDK directory given (--sdk DIR)");
		return buf;
	}
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/node_modules/@anthropic-ai/sdk/package.json", o->sdk_dir);
	if (access(p, R_OK) < 0) {
		snprintf(buf, size,
			 "@anthropic-ai/sdk is not installed in %s (make sdk installs the pinned "
			 "one)",
			 o->sdk_dir);
		return buf;
	}
	return NULL;
}

/* --- the benchmark --------------------------------------------------------------------------- */

/* The paced phase's CPUs: with two or more allowed, the last for its server and the others
 * for the clients (this thread, and node started from it). */
struct cpus {
	cpu_set_t all, clients, server;
	bool split;
};

static int cpus_plan(struct cpus *c, struct cr_error *err)
{
	if (sched_getaffinity(0, sizeof(c->all), &c->all) < 0)
		return cr_error_errno(err, errno, "sched_getaffinity");
	c->split = CPU_COUNT(&c->all) >= 2;
	if (!c->split)
		return 0;
	int last = -1;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &c->all))
			last = i;
	c->clients = c->all;
	CPU_CLR(last, &c->clients);
	CPU_ZERO(&c->server);
	CPU_SET(last, &c->server);
	return 0;
}

/* A corral-fake-api of the run; pinned to cpus (NULL: not) before it makes any thread. */
struct server {
	pid_t pid;
	char base[64];
	char port_file[PATH_MAX], err_file[PATH_MAX];
};

static int server_start(struct server *sv, const char *prog, const char *dir, const char *name,
			char *key, char *scenario_file, const cpu_set_t *cpus, struct cr_error *err)
{
	char pf[64], ef[64];
	snprintf(pf, sizeof(pf), "%s.port", name);
	snprintf(ef, sizeof(ef), "%s.err", name);
	int r;
	if ((r = cr_bench_path_join(sv->port_file, sizeof(sv->port_file), dir, pf, err)) < 0 ||
	    (r = cr_bench_path_join(sv->err_file, sizeof(sv->err_file), dir, ef, err)) < 0)
		return r;
	char *argv[] = { (char *)prog,	"--listen",
			 "127.0.0.1:0", "--port-file",
			 sv->port_file, "--api-key",
			 key,		"--scenario",
			 scenario_file, "--token-rate",
			 "0",		"--first-token-ms",
			 "0",		NULL };
	if ((r = cr_bench_spawn(argv, NULL, sv->err_file, &sv->pid, err)) < 0)
		return r;
	if (cpus && sched_setaffinity(sv->pid, sizeof(*cpus), cpus) < 0)
		return cr_error_errno(err, errno, "sched_setaffinity of %s", prog);
	unsigned port = 0;
	if ((r = cr_bench_wait_port(sv->port_file, &sv->pid, prog, sv->err_file, 5000, &port,
				    err)) < 0)
		return r;
	snprintf(sv->base, sizeof(sv->base), "http://127.0.0.1:%u", port);
	return 0;
}

static json_t *scenario(unsigned deltas)
{
	static const char *const words[] = { "the",   "session", "log",	    "holds",   "every",
					     "event", "and",	 "sandbox", "answers", "tool",
					     "calls", "while",	 "workers", "resume",  "it" };
	size_t want = (size_t)deltas * 4; /* the server's pieces are 2 to 6 bytes */
	char *text = malloc(want + 16);
	if (!text)
		return NULL;
	size_t len = 0;
	for (size_t i = 0; len < want; i++) {
		const char *w = words[(i * 7) % CR_ARRAY_SIZE(words)];
		len += (size_t)sprintf(text + len, "%s%s", len ? " " : "", w);
	}
	json_t *j = json_pack("{s:[{s:s,s:[{s:s,s:{s:s,s:i}}]}]}", "turns", "text", text,
			      "tool_calls", "name", "bash", "input", "command",
			      "wc -l /workspace/src/*.c", "timeout_ms", 30000);
	free(text);
	return j;
}

int cr_bench_model(const struct cr_bench_model_opts *opts, json_t **ret, struct cr_error *err)
{
	const struct cr_bench_model_opts *o = opts;
	if (!o->streams || o->streams > CR_BENCH_MODEL_STREAMS_MAX || !o->total ||
	    o->total > CR_BENCH_MODEL_TOTAL_MAX || !o->deltas ||
	    o->deltas > CR_BENCH_MODEL_DELTAS_MAX || !o->rate ||
	    o->rate > CR_BENCH_MODEL_RATE_MAX || !o->fake_api || !o->node)
		return cr_error_set(err, EINVAL, "bench model: bad options");
	const char *tmp = getenv("TMPDIR");
	struct cr_bench_workdir w = { .name = "model" };
	int r = cr_bench_workdir_make(&w, tmp && *tmp ? tmp : "/tmp", "corral-bench-model.XXXXXX",
				      err);
	if (r < 0)
		return r;
	struct server paced_sv = { .pid = -1 }, flood_sv = { .pid = -1 };
	struct cpus cpus = { 0 };
	struct cr_model_client *paced_client = NULL, *flood_client = NULL;
	json_t *body = NULL, *out = NULL;
	struct side c_paced = { 0 }, c_flood = { 0 }, s_paced = { 0 }, s_flood = { 0 };
	struct run run = { 0 };
	char key[40], scen_file[PATH_MAX], body_file[PATH_MAX];
	char script[PATH_MAX], sdk_out[PATH_MAX], sdk_err[PATH_MAX];
	char why_buf[PATH_MAX + 128];
	const char *sdk_why = sdk_missing(o, why_buf, sizeof(why_buf));
	char sdk_dir[PATH_MAX]; /* absolute: node resolves the SDK from it */
	if (!sdk_why && !realpath(o->sdk_dir, sdk_dir)) {
		snprintf(why_buf, sizeof(why_buf), "%s: %s", o->sdk_dir, strerror(errno));
		sdk_why = why_buf;
	}

	uint8_t rnd[16];
	if (getentropy(rnd, sizeof(rnd)) < 0) {
		r = cr_error_errno(err, errno, "getentropy");
		goto out;
	}
	snprintf(key, sizeof(key), "bench-");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(key + 6 + 2 * i, 3, "%02x", rnd[i]);
	if ((r = cr_bench_path_join(scen_file, sizeof(scen_file), w.path, "scenario.json", err)) <
		    0 ||
	    (r = cr_bench_path_join(body_file, sizeof(body_file), w.path, "body.json", err)) < 0 ||
	    (r = cr_bench_path_join(script, sizeof(script), w.path, NODE_SCRIPT, err)) < 0 ||
	    (r = cr_bench_path_join(sdk_out, sizeof(sdk_out), w.path, "sdk.out", err)) < 0 ||
	    (r = cr_bench_path_join(sdk_err, sizeof(sdk_err), w.path, "sdk.err", err)) < 0)
		goto out;

	json_t *sc = scenario(o->deltas);
	body = json_pack("{s:s,s:i,s:[{s:s,s:s}],s:[{s:s,s:s,s:{s:s,s:{s:{s:s}},s:[s]}}]}", "model",
			 "claude-bench", "max_tokens", 4096, "messages", "role", "user", "content",
			 "Count the lines of the workspace's sources.", "tools", "name", "bash",
			 "description", "Run a shell command", "input_schema", "type", "object",
			 "properties", "command", "type", "string", "required", "command");
	if (!sc || !body || json_dump_file(sc, scen_file, 0) < 0 ||
	    json_dump_file(body, body_file, 0) < 0 ||
	    cr_store_file(script, node_script, sizeof(node_script) - 1, 0600, err) < 0) {
		json_decref(sc);
		r = err->code ? -err->code : cr_error_set(err, EIO, "write %s", w.path);
		goto out;
	}
	json_decref(sc);

	/* The servers: the paced phase's on a CPU of its own when there are two, so that its 64
	 * threads do not take the client's CPU and the latency measured is the client's, not the
	 * scheduler's; the flood phase's shares every CPU, as a host would. */
	if ((r = cpus_plan(&cpus, err)) < 0 ||
	    (r = server_start(&paced_sv, o->fake_api, w.path, "paced", key, scen_file,
			      cpus.split ? &cpus.server : NULL, err)) < 0 ||
	    (r = server_start(&flood_sv, o->fake_api, w.path, "flood", key, scen_file, NULL, err)) <
		    0)
		goto out;

	/* corral's client */
	struct cr_model_config cfg;
	cr_model_config_init(&cfg);
	cfg.api_key = key;
	cfg.max_retries = 0;
	cfg.base_url = paced_sv.base;
	if ((r = cr_model_client_new(&cfg, &paced_client, err)) < 0)
		goto out;
	cfg.base_url = flood_sv.base;
	if ((r = cr_model_client_new(&cfg, &flood_client, err)) < 0)
		goto out;
	char paced_knobs[96], paced_hdr[128];
	snprintf(paced_knobs, sizeof(paced_knobs), "{\"stamp\":1,\"token_rate\":%u}", o->rate);
	snprintf(paced_hdr, sizeof(paced_hdr), "x-fake-api: %s", paced_knobs);
	const char *const paced[] = { paced_hdr, NULL };
	static const char *const flood[] = { "x-fake-api: {\"stamp\":1}", NULL };
	run.body = body;
	run.opts = (struct cr_model_call_opts){ .on_event = on_event, .on_done = on_done };
	run.nslots = o->streams;
	run.slots = calloc(o->streams, sizeof(*run.slots));
	run.calls = calloc(o->streams, sizeof(*run.calls));
	if (!run.slots || !run.calls) {
		r = cr_error_errno(err, ENOMEM, "bench model");
		goto out;
	}
	for (unsigned i = 0; i < o->streams; i++)
		run.slots[i].run = &run;

	/* A stream of the paced phase lasts deltas/rate seconds: the slots start spread over it. */
	uint64_t stagger_ns = (uint64_t)(1e9 * o->deltas / o->rate / o->streams);
	char stagger_ms[32];
	snprintf(stagger_ms, sizeof(stagger_ms), "%.3f", (double)stagger_ns / 1e6);
	unsigned per_round = (o->total + CR_BENCH_MODEL_ROUNDS - 1) / CR_BENCH_MODEL_ROUNDS;
	unsigned done = 0;
	for (unsigned round = 0; round < CR_BENCH_MODEL_ROUNDS && done < o->total; round++) {
		unsigned n = per_round < o->total - done ? per_round : o->total - done;
		for (int phase = 0; phase < 2; phase++) {
			struct side *cs = phase ? &c_flood : &c_paced;
			struct side *ss = phase ? &s_flood : &s_paced;
			const char *name = phase ? "flood" : "paced";
			cr_bench_progress(o->progress, "model",
					  "round %u/%u, %s: corral's client, %u streams", round + 1,
					  CR_BENCH_MODEL_ROUNDS, name, n);
			/* the paced phase on the clients' CPUs (node inherits them), the flood on
			 * all */
			run.client = phase ? flood_client : paced_client;
			if (cpus.split &&
			    sched_setaffinity(0, sizeof(cpu_set_t),
					      phase ? &cpus.all : &cpus.clients) < 0) {
				r = cr_error_errno(err, errno, "sched_setaffinity");
				goto out;
			}
			char *base = phase ? flood_sv.base : paced_sv.base;
			run.opts.headers = flood; /* the warm-up: connections opened, caches warm */
			if ((r = run_c(&run, o->streams, NULL, 0, o->cancel, err)) < 0)
				goto out;
			run.opts.headers = phase ? flood : paced;
			double c0 = cpu_ms();
			uint64_t t0 = cr_now_ns();
			if ((r = run_c(&run, n, &cs->samples, phase ? 0 : stagger_ns, o->cancel,
				       err)) < 0)
				goto out;
			cs->wall_s += (double)(cr_now_ns() - t0) / 1e9;
			cs->cpu_ms += cpu_ms() - c0;
			cs->streams += n;
			cs->output_tokens = run.output_tokens;
			if (sdk_why)
				continue;
			cr_bench_progress(o->progress, "model",
					  "round %u/%u, %s: the TypeScript SDK, %u streams",
					  round + 1, CR_BENCH_MODEL_ROUNDS, name, n);
			char nstreams[16], ntotal[16];
			snprintf(nstreams, sizeof(nstreams), "%u", o->streams);
			snprintf(ntotal, sizeof(ntotal), "%u", n);
			char *nargv[] = { (char *)o->node,
					  script,
					  sdk_dir,
					  base,
					  key,
					  nstreams,
					  ntotal,
					  nstreams,
					  body_file,
					  phase ? "0" : stagger_ms,
					  phase ? "{\"stamp\":1}" : paced_knobs,
					  NULL };
			if ((r = run_node(nargv, sdk_out, sdk_err, o->cancel, err)) < 0 ||
			    (r = read_sdk(sdk_out, ss, err)) < 0)
				goto out;
			ss->streams += n;
		}
		done += n;
	}

	if (!c_paced.samples.n) {
		r = cr_error_set(err, EPROTO,
				 "%s sent no delta with fake_api_sent_ns (its \"stamp\" knob)",
				 o->fake_api);
		goto out;
	}
	out = json_object();
	bool all = true;
	double cpu_per = c_paced.cpu_ms / c_paced.streams;
	double flood_cpu_per = c_flood.cpu_ms / c_flood.streams;
	r = -1;
	if (!out || cr_bench_put(out, "streams", json_integer(o->streams)) < 0 ||
	    cr_bench_put(out, "total", json_integer(done)) < 0 ||
	    cr_bench_put(out, "rounds", json_integer(CR_BENCH_MODEL_ROUNDS)) < 0 ||
	    cr_bench_put(out, "rate", json_integer(o->rate)) < 0 ||
	    cr_bench_put(out, "deltas_per_stream", json_integer(c_paced.output_tokens)) < 0 ||
	    cr_bench_put(out, "driver", json_string(cr_model_client_driver(paced_client))) < 0 ||
	    cr_bench_put(out, "paced_server_cpu_of_its_own", json_boolean(cpus.split)) < 0 ||
	    put_side(out, "", &c_paced, &c_flood) < 0)
		goto json_fail;
	if (s_paced.streams) {
		double sdk_cpu_per = s_paced.cpu_ms / s_paced.streams;
		double sdk_flood_cpu_per = s_flood.cpu_ms / s_flood.streams;
		if (put_side(out, "sdk_", &s_paced, &s_flood) < 0 ||
		    cr_bench_put(out, "cpu_vs_sdk", json_real(flood_cpu_per / sdk_flood_cpu_per)) <
			    0 ||
		    cr_bench_put(out, "paced_cpu_vs_sdk", json_real(cpu_per / sdk_cpu_per)) < 0)
			goto json_fail;
	} else {
		static const char *const keys[] = { "sdk_client_overhead_p50_us",
						    "sdk_client_overhead_p99_us",
						    "sdk_client_overhead_max_us",
						    "sdk_cpu_ms_per_stream",
						    "sdk_streams_per_s",
						    "sdk_deltas_per_stream",
						    "sdk_flood_client_overhead_p50_us",
						    "sdk_flood_client_overhead_p99_us",
						    "sdk_flood_client_overhead_max_us",
						    "sdk_paced_cpu_ms_per_stream",
						    "cpu_vs_sdk",
						    "paced_cpu_vs_sdk" };
		for (size_t i = 0; i < CR_ARRAY_SIZE(keys); i++)
			if (cr_bench_put(out, keys[i], json_null()) < 0)
				goto json_fail;
		if (cr_bench_put(out, "sdk_unavailable", json_string(sdk_why)) < 0)
			goto json_fail;
	}
	json_t *targets = json_object();
	json_t *t_cpu =
		s_flood.streams
			? cr_bench_target(flood_cpu_per / (s_flood.cpu_ms / s_flood.streams),
					  "at_most", 0.2, &all)
			: json_pack("{s:n,s:f,s:n}", "value", "at_most", 0.2, "met");
	if (!targets ||
	    cr_bench_put(
		    targets, "client_overhead_p50_us",
		    cr_bench_target(usec(cr_bench_rank(c_paced.samples.v, c_paced.samples.n, 50)),
				    "at_most", 200, &all)) < 0 ||
	    cr_bench_put(targets, "cpu_vs_sdk", t_cpu) < 0 ||
	    cr_bench_put(out, "targets", targets) < 0 ||
	    cr_bench_put(out, "targets_met", s_flood.streams ? json_boolean(all) : json_null()) < 0)
		goto json_fail;
	*ret = TAKE_PTR(out);
	r = 0;
	goto out;
json_fail:
	r = cr_error_set(err, ENOMEM, "bench model: building the figures");
out:
	for (unsigned i = 0; run.calls && i < run.nslots; i++)
		cr_model_call_free(run.calls[i]);
	cr_model_client_free(paced_client);
	cr_model_client_free(flood_client);
	free(run.slots);
	free(run.calls);
	cr_bench_stop_child(&paced_sv.pid, SIGTERM, 0);
	cr_bench_stop_child(&flood_sv.pid, SIGTERM, 0);
	if (cpus.split)
		sched_setaffinity(0, sizeof(cpus.all), &cpus.all);
	json_decref(out);
	json_decref(body);
	cr_bench_samples_done(&c_paced.samples);
	cr_bench_samples_done(&c_flood.samples);
	cr_bench_samples_done(&s_paced.samples);
	cr_bench_samples_done(&s_flood.samples);
	explicit_bzero(key, sizeof(key));
	if (r < 0)
		cr_bench_workdir_cleanup(&w);
	else if ((r = cr_bench_workdir_remove(&w, err)) < 0) {
		json_decref(*ret);
		*ret = NULL;
	}
	return r;
}
