/* runtime/orchestrator: wake(session_id) and the in-process platform (include/corral/
 * orchestrator.h). The loop decides nothing itself: each turn asks the harness step what comes
 * next, carries it out through the platform and reads back what the log now holds. It must never
 * act on something it has not appended first, so that a brain killed at any moment leaves a log
 * the next brain can fold into the same decision. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/orchestrator.h"

/* --- the in-process platform ----------------------------------------------------------------- */

/* A session's hands. Entries are made on first use and kept until the platform is freed, so
 * a pointer to one stays valid however the session ends; the entry's lock serializes making,
 * using and destroying its sandbox. */
struct local_hands {
	char session[CR_LOG_ID_MAX];
	struct cr_hands *hands; /* NULL until made, or after a failed making */
	bool released; /* the session ended: no more sandboxes for it */
	char *rootfs; /* the environment's root file system, which the hands point at */
	pthread_mutex_t lock;
};

struct local {
	struct cr_log *log;
	bool have_hands;
	struct cr_hands_config hands_cfg;
	cr_platform_config_fn config;
	void *config_arg;
	pthread_mutex_t lock; /* guards v */
	struct local_hands **v;
	size_t n;
};

static int local_acquire(void *p, const char *session, uint64_t *ret_epoch, struct cr_error *err)
{
	struct local *l = p;
	return cr_log_acquire(l->log, session, ret_epoch, err);
}

static int local_events(void *p, const char *session, uint64_t after_seq, size_t limit,
			struct cr_log_event **ret, size_t *ret_n, struct cr_error *err)
{
	struct local *l = p;
	return cr_log_get_events(l->log, session, after_seq, limit, ret, ret_n, err);
}

static int local_append(void *p, const char *session, uint64_t epoch,
			const struct cr_harness_event *ev, size_t n, struct cr_log_appended *ret,
			struct cr_error *err)
{
	struct local *l = p;
	int r = 0;
	/* One unit when it fits (a crash keeps all or none); a longer run (a model reply of more
	 * than CR_LOG_GROUP_MAX blocks) goes in units of that size: the harness drops a model
	 * call's blocks unless its span's end, which comes last, is durable. */
	for (size_t off = 0; off < n && r == 0;) {
		size_t k = n - off < CR_LOG_GROUP_MAX ? n - off : CR_LOG_GROUP_MAX;
		struct cr_log_append a[CR_LOG_GROUP_MAX];
		char *text[CR_LOG_GROUP_MAX] = { 0 };
		for (size_t i = 0; i < k; i++) {
			text[i] = json_dumps(ev[off + i].payload, JSON_COMPACT);
			if (!text[i]) {
				r = cr_error_set(err, ENOMEM, "append to %s: out of memory",
						 session);
				break;
			}
			a[i] = (struct cr_log_append){
				.session = session,
				.epoch = epoch,
				.expected_seq = CR_LOG_ANY_SEQ,
				.type = ev[off + i].type,
				.payload = text[i],
				.payload_len = strlen(text[i]),
			};
		}
		if (r == 0)
			r = cr_log_append_all(l->log, a, k, ret ? ret + off : NULL, err);
		for (size_t i = 0; i < k; i++)
			free(text[i]);
		off += k;
	}
	return r;
}

static int local_mark(void *p, const char *session, uint64_t epoch, const uint64_t *seqs, size_t n,
		      struct cr_error *err)
{
	struct local *l = p;
	for (size_t i = 0; i < n; i++) {
		int r = cr_log_mark_processed(l->log, session, epoch, seqs[i], err);
		/* Marked already (by a brain that died before it could go on): nothing to do. */
		if (r == -EINVAL)
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

static int local_heartbeat(void *p, const char *session, uint64_t epoch, struct cr_error *err)
{
	struct local *l = p;
	struct cr_log_session_info info;
	int r = cr_log_session_info(l->log, session, &info, err);
	if (r < 0)
		return r;
	if (info.epoch != epoch)
		return cr_error_set(err, ESTALE, "session %s: lease %llu was taken over (now %llu)",
				    session, (unsigned long long)epoch,
				    (unsigned long long)info.epoch);
	return 0;
}

static int local_config(void *p, const char *session, json_t **ret_agent, json_t **ret_env,
			struct cr_error *err)
{
	struct local *l = p;
	if (l->config)
		return l->config(l->config_arg, session, ret_agent, ret_env, err);
	json_t *agent = json_pack("{s:s, s:{s:s}, s:[]}", "type", "agent", "model", "id",
				  "claude-sonnet-4-5", "tools");
	json_t *env = json_object();
	if (!agent || !env) {
		json_decref(agent);
		json_decref(env);
		return cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	}
	*ret_agent = agent;
	*ret_env = env;
	return 0;
}

static struct local_hands *local_find(struct local *l, const char *session)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i]->session, session) == 0)
			return l->v[i];
	return NULL;
}

/* The session's entry, made when there is none. */
static int local_entry(struct local *l, const char *session, struct local_hands **ret,
		       struct cr_error *err)
{
	pthread_mutex_lock(&l->lock);
	struct local_hands *e = local_find(l, session);
	if (!e) {
		struct local_hands **v = realloc(l->v, (l->n + 1) * sizeof(*v));
		if (v)
			l->v = v;
		e = v ? calloc(1, sizeof(*e)) : NULL;
		if (e) {
			snprintf(e->session, sizeof(e->session), "%s", session);
			pthread_mutex_init(&e->lock, NULL);
			l->v[l->n++] = e;
		}
	}
	pthread_mutex_unlock(&l->lock);
	if (!e)
		return cr_error_set(err, ENOMEM, "hands: out of memory");
	*ret = e;
	return 0;
}

/* What a session's environment says of its sandboxes (corral's own fields of its config):
 * rootfs, limits, and provision_delay_ms, a wait before each sandbox is made standing for what
 * a real environment spends pulling an image and cloning a repository (corral bench ttft). */
struct env_sandbox {
	unsigned delay_ms;
	char *rootfs; /* owned; NULL: the host's binds */
	uint64_t memory_max, pids_max;
	uint32_t cpu_max_pct;
};

static void env_sandbox(struct local *l, const char *session, struct env_sandbox *ret)
{
	*ret = (struct env_sandbox){ 0 };
	json_t *agent = NULL, *env = NULL;
	if (!l->config || l->config(l->config_arg, session, &agent, &env, NULL) < 0)
		return;
	json_t *config = json_object_get(env, "config");
	json_t *v = json_object_get(config, "provision_delay_ms");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 3600000)
		ret->delay_ms = (unsigned)json_integer_value(v);
	const char *rootfs = json_string_value(json_object_get(config, "rootfs"));
	if (rootfs)
		ret->rootfs = strdup(rootfs);
	json_t *limits = json_object_get(config, "limits");
	json_int_t n;
	if ((n = json_integer_value(json_object_get(limits, "memory_max"))) > 0)
		ret->memory_max = (uint64_t)n;
	if ((n = json_integer_value(json_object_get(limits, "pids_max"))) > 0)
		ret->pids_max = (uint64_t)n;
	if ((n = json_integer_value(json_object_get(limits, "cpu_max_pct"))) > 0)
		ret->cpu_max_pct = n > 100000 ? 100000 : (uint32_t)n;
	json_decref(agent);
	json_decref(env);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Makes the entry's hands if it has none; called with e->lock held (one making per session,
 * while other sessions make theirs). */
static int local_make(struct local *l, struct local_hands *e, uint64_t epoch, bool eager,
		      struct cr_error *err)
{
	if (e->released)
		return cr_error_set(err, ESHUTDOWN, "session %s has ended", e->session);
	if (e->hands)
		return 0;
	struct env_sandbox es;
	env_sandbox(l, e->session, &es);
	if (es.delay_ms)
		sleep_ms(es.delay_ms);
	struct cr_hands_config cfg = l->hands_cfg;
	cfg.log = l->log;
	cfg.epoch = epoch;
	cfg.eager = eager;
	/* The hands keep pointing at the root's path: the entry keeps it as long as it lives. */
	free(e->rootfs);
	e->rootfs = es.rootfs;
	if (e->rootfs)
		cfg.sandbox.rootfs = e->rootfs;
	if (es.memory_max)
		cfg.sandbox.memory_max = es.memory_max;
	if (es.pids_max)
		cfg.sandbox.pids_max = es.pids_max;
	if (es.cpu_max_pct)
		cfg.sandbox.cpu_max_pct = es.cpu_max_pct;
	return cr_hands_new(&cfg, e->session, &e->hands, err);
}

static int local_tool(void *p, const char *session, uint64_t epoch, const char *call_id,
		      const char *name, const char *input, struct cr_tool_result *ret,
		      struct cr_error *err)
{
	struct local *l = p;
	if (!l->have_hands)
		return cr_tool_result_set(ret, true, err,
					  "no sandbox: this corral has no sandboxes "
					  "configured for tool calls");
	struct local_hands *e;
	int r = local_entry(l, session, &e, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&e->lock);
	r = local_make(l, e, epoch, false, err);
	if (r == 0) {
		cr_hands_set_epoch(e->hands, epoch);
		r = cr_hands_execute(e->hands, call_id, name, input, strlen(input), ret, err);
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

static const struct cr_platform_ops local_ops = {
	.acquire = local_acquire,
	.events = local_events,
	.append = local_append,
	.mark = local_mark,
	.tool = local_tool,
	.config = local_config,
	.heartbeat = local_heartbeat,
};

void cr_platform_local_free(struct cr_platform *p)
{
	if (!p || !p->p)
		return;
	struct local *l = p->p;
	for (size_t i = 0; i < l->n; i++) {
		cr_hands_free(l->v[i]->hands); /* the sandboxes run on, for the next start */
		free(l->v[i]->rootfs);
		pthread_mutex_destroy(&l->v[i]->lock);
		free(l->v[i]);
	}
	free(l->v);
	pthread_mutex_destroy(&l->lock);
	free(l);
	p->p = NULL;
}

int cr_platform_local_new(const struct cr_platform_local_config *cfg, struct cr_platform *ret,
			  struct cr_error *err)
{
	struct local *l = calloc(1, sizeof(*l));
	if (!l)
		return cr_error_set(err, ENOMEM, "platform: out of memory");
	l->log = cfg->log;
	l->config = cfg->config;
	l->config_arg = cfg->config_arg;
	pthread_mutex_init(&l->lock, NULL);
	struct cr_platform p = { .ops = &local_ops, .p = l };
	if (!cfg->hands) {
		*ret = p;
		return 0;
	}
	l->have_hands = true;
	l->hands_cfg = *cfg->hands;
	l->hands_cfg.log = cfg->log;

	/* Hands recorded by an earlier run: found again, so a session keeps its sandbox and
	 * workspace across restarts. A record that cannot be opened is reported, not fatal: its
	 * session gets new hands on its next tool call. */
	char **handles = NULL;
	size_t n = 0;
	int r = cr_hands_list(l->hands_cfg.sandbox.state_dir, &handles, &n, err);
	if (r < 0) {
		cr_platform_local_free(&p);
		return r;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		struct cr_hands *h = NULL;
		struct cr_error e2;
		if (cr_hands_open(&l->hands_cfg, handles[i], &h, &e2) < 0)
			continue;
		struct local_hands *e;
		r = local_entry(l, cr_hands_session(h), &e, err);
		if (r == 0 && !e->hands)
			e->hands = TAKE_PTR(h);
		cr_hands_free(h);
	}
	for (size_t i = 0; i < n; i++)
		free(handles[i]);
	free(handles);
	if (r < 0) {
		cr_platform_local_free(&p);
		return r;
	}
	*ret = p;
	return 0;
}

int cr_platform_local_provision(struct cr_platform *p, const char *session, bool eager,
				struct cr_error *err)
{
	struct local *l = p->p;
	if (!l->have_hands)
		return 0;
	struct cr_log_session_info info;
	int r = cr_log_session_info(l->log, session, &info, err);
	struct local_hands *e;
	if (r == 0)
		r = local_entry(l, session, &e, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&e->lock);
	r = local_make(l, e, info.epoch, eager, err);
	pthread_mutex_unlock(&e->lock);
	return r;
}

int cr_platform_local_release(struct cr_platform *p, const char *session, struct cr_error *err)
{
	struct local *l = p->p;
	pthread_mutex_lock(&l->lock);
	struct local_hands *e = local_find(l, session);
	pthread_mutex_unlock(&l->lock);
	if (!e)
		return 0;
	pthread_mutex_lock(&e->lock);
	int r = 0;
	e->released = true;
	if (e->hands)
		r = cr_hands_destroy(e->hands, false, err);
	cr_hands_free(e->hands);
	e->hands = NULL;
	pthread_mutex_unlock(&e->lock);
	return r;
}

/* --- wake ----------------------------------------------------------------------------------- */

void cr_orch_harness_agent(const json_t *agent, struct cr_harness_agent *ret)
{
	*ret = (struct cr_harness_agent){ .model_retries = -1 };
	json_t *model = json_object_get(agent, "model");
	if (json_is_object(model))
		model = json_object_get(model, "id");
	ret->model = json_is_string(model) ? json_string_value(model) : "claude-sonnet-4-5";
	ret->system = json_string_value(json_object_get(agent, "system"));
	ret->tools = json_object_get(agent, "tools");
}

/* The loop's view of the session: every event so far, in order. */
struct history {
	struct cr_log_event *ev;
	size_t n;
};

static void history_clear(struct history *h)
{
	cr_log_events_free(h->ev, h->n);
	h->ev = NULL;
	h->n = 0;
}

/* Reads what the log holds after the last event seen. */
static int history_refresh(const struct cr_platform *pf, const char *session, struct history *h,
			   struct cr_error *err)
{
	uint64_t after = h->n ? h->ev[h->n - 1].seq : 0;
	struct cr_log_event *more = NULL;
	size_t k = 0;
	int r = pf->ops->events(pf->p, session, after, 0, &more, &k, err);
	if (r < 0)
		return r;
	if (k == 0) {
		free(more);
		return 0;
	}
	struct cr_log_event *v = realloc(h->ev, (h->n + k) * sizeof(*v));
	if (!v) {
		cr_log_events_free(more, k);
		return cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	}
	memcpy(v + h->n, more, k * sizeof(*v));
	free(more); /* the payloads moved into v */
	h->ev = v;
	h->n += k;
	return 0;
}

/* Marks change events already read: the history learns it here rather than by reading the
 * whole log again (the harness only asks whether an event is still pending). */
static void history_marked(struct history *h, const uint64_t *seqs, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (size_t i = 0; i < n; i++)
		for (size_t j = h->n; j-- > 0;)
			if (h->ev[j].seq == seqs[i]) {
				if (!h->ev[j].processed_ns)
					h->ev[j].processed_ns = now;
				break;
			}
}

/* Waits delay_ms before a re-issued model call, heartbeating the lease. */
static int backoff(const struct cr_orch_config *cfg, const char *session, uint64_t epoch,
		   unsigned delay_ms, struct cr_error *err)
{
	unsigned beat = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
	while (delay_ms > 0) {
		if (cfg->stop && *cfg->stop)
			return cr_error_set(err, ECANCELED, "session %s: stopped", session);
		unsigned d = delay_ms < beat ? delay_ms : beat;
		sleep_ms(d);
		delay_ms -= d;
		int r = cfg->platform.ops->heartbeat(cfg->platform.p, session, epoch, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int apply_append(const struct cr_platform *pf, const char *session, uint64_t epoch,
			const struct cr_harness_event *ev, size_t n, struct cr_error *err)
{
	if (n == 0)
		return 0;
	return pf->ops->append(pf->p, session, epoch, ev, n, NULL, err);
}

/* The history as it will be once pre (an APPEND step) is applied: a shallow copy of h's
 * events (payloads borrowed) with pre's events added (payloads owned: spec_free) under ids of
 * their own, and pre's marks set. What the harness steps on to see whether a model call
 * follows the append. */
static int spec_history(const struct history *h, const struct cr_harness_step *pre,
			struct history *ret, struct cr_error *err)
{
	struct cr_log_event *v = calloc(h->n + pre->n_events + 1, sizeof(*v));
	if (!v)
		return cr_error_set(err, ENOMEM, "out of memory");
	if (h->n)
		memcpy(v, h->ev, h->n * sizeof(*v));
	uint64_t seq = h->n ? h->ev[h->n - 1].seq : 0;
	for (size_t i = 0; i < pre->n_events; i++) {
		struct cr_log_event *e = &v[h->n + i];
		e->seq = ++seq;
		snprintf(e->id, sizeof(e->id), "sevt_speculative%zu", i);
		snprintf(e->type, sizeof(e->type), "%s", pre->events[i].type);
		e->payload = json_dumps(pre->events[i].payload, JSON_COMPACT);
		if (!e->payload) {
			for (size_t j = 0; j < i; j++)
				free(v[h->n + j].payload);
			free(v);
			return cr_error_set(err, ENOMEM, "out of memory");
		}
		e->payload_len = strlen(e->payload);
	}
	*ret = (struct history){ .ev = v, .n = h->n + pre->n_events };
	history_marked(ret, pre->mark, pre->n_mark);
	return 0;
}

static void spec_free(struct history *spec, size_t borrowed)
{
	for (size_t i = borrowed; i < spec->n; i++)
		free(spec->ev[i].payload);
	free(spec->ev);
	*spec = (struct history){ 0 };
}

/* Whether the events read after an append are exactly the ones appended (nothing a client
 * posted meanwhile): then a step taken on the speculative history holds for the real one. */
static bool only_ours(const struct history *h, size_t before, const struct cr_harness_step *pre)
{
	if (h->n - before != pre->n_events)
		return false;
	for (size_t i = 0; i < pre->n_events; i++)
		if (strcmp(h->ev[before + i].type, pre->events[i].type) != 0)
			return false;
	return true;
}

/* One model call: sent before anything is written, since a call changes nothing anywhere (a
 * brain that dies during it leaves a span without an end, and the call is made again), so the
 * writes that precede it in the log (pre: the client events it answers marked processed and
 * session.status_running, then span.model_request_start) are made while the request is on its
 * way rather than before it leaves: the first token does not wait for three fdatasyncs. If a
 * client event landed meanwhile, the call is dropped and the loop steps again on what the log
 * holds. The events that record the call are appended after it, as one unit. */
static int model_turn(const struct cr_orch_config *cfg, const struct cr_harness_agent *agent,
		      const char *session, uint64_t epoch, struct history *h,
		      const struct cr_harness_step *pre, const char *request, size_t request_len,
		      unsigned delay_ms, struct cr_orch_stats *st, struct cr_error *err)
{
	const struct cr_platform *pf = &cfg->platform;
	unsigned beat = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
	int r = 0;
	if (delay_ms && (r = backoff(cfg, session, epoch, delay_ms, err)) < 0)
		return r;
	struct cr_model_call_opts opts = { .headers = cfg->model_headers };
	struct cr_model_call *call = NULL;
	if ((r = cr_model_call_start_text(cfg->model, request, request_len, &opts, &call, err)) < 0)
		return r;
	/* One turn of the loop: connects (or takes a kept-alive connection) and sends. */
	if ((r = cr_model_client_run(cfg->model, 0, err)) < 0)
		goto out;
	st->model_calls++;

	if (pre) {
		size_t before = h->n;
		r = apply_append(pf, session, epoch, pre->events, pre->n_events, err);
		if (r == 0 && pre->n_mark)
			r = pf->ops->mark(pf->p, session, epoch, pre->mark, pre->n_mark, err);
		if (r == 0)
			history_marked(h, pre->mark, pre->n_mark);
		if (r == 0)
			r = history_refresh(pf, session, h, err);
		if (r < 0)
			goto out;
		if (!only_ours(h, before, pre)) {
			st->model_calls--; /* dropped unanswered: the next step decides again */
			goto out;
		}
	}
	struct cr_harness_event start = { .type = "span.model_request_start",
					  .payload = json_object() };
	struct cr_log_appended started = { 0 };
	if (!start.payload)
		r = cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	else
		r = pf->ops->append(pf->p, session, epoch, &start, 1, &started, err);
	json_decref(start.payload);
	if (r == 0)
		r = history_refresh(pf, session, h, err);
	if (r < 0)
		goto out;

	while (!cr_model_call_done(call)) {
		int left = cr_model_client_run(cfg->model, (int)beat, err);
		if (left < 0) {
			r = left;
			goto out;
		}
		if (cr_model_call_done(call))
			break;
		r = pf->ops->heartbeat(pf->p, session, epoch, err);
		if (r == 0 && cfg->stop && *cfg->stop)
			r = cr_error_set(err, ECANCELED, "session %s: stopped", session);
		if (r < 0)
			goto out;
	}
	const struct cr_model_result *res = cr_model_call_result(call);
	json_t *message = res->status == 0 ? cr_model_call_message(call) : NULL;
	json_t *result = cr_model_result_json(res);
	struct cr_harness_event *out = NULL;
	size_t n_out = 0;
	if (!result)
		r = cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	else
		r = cr_harness_model_events(agent, h->ev, h->n, started.id, message, result, &out,
					    &n_out, err);
	json_decref(result);
	if (r == 0)
		r = apply_append(pf, session, epoch, out, n_out, err);
	cr_harness_events_free(out, n_out);
out:
	cr_model_call_free(call); /* (cancels it first if it still runs) */
	return r;
}

static int run_tools(const struct cr_orch_config *cfg, const char *session, uint64_t epoch,
		     const struct cr_harness_step *s, struct cr_orch_stats *st,
		     struct cr_error *err)
{
	const struct cr_platform *pf = &cfg->platform;
	for (size_t i = 0; i < s->n_tools; i++) {
		const struct cr_harness_tool *t = &s->tools[i];
		if (cfg->stop && *cfg->stop)
			return cr_error_set(err, ECANCELED, "session %s: stopped", session);
		_cleanup_free_ char *input = json_dumps(t->input, JSON_COMPACT);
		if (!input)
			return cr_error_set(err, ENOMEM, "session %s: out of memory", session);
		struct cr_tool_result res = { 0 };
		int r = pf->ops->tool(pf->p, session, epoch, t->tool_use_id, t->name, input, &res,
				      err);
		if (r == -ESTALE)
			return r;
		/* No sandbox could be asked (none could be made): the model hears it as the
		 * call's error, as it would a lost sandbox, and the session goes on. */
		if (r < 0 && cr_tool_result_set(&res, true, NULL, "%s", err->msg) < 0)
			return cr_error_set(err, ENOMEM, "session %s: out of memory", session);
		st->tool_calls++;
		struct cr_harness_event ev = { 0 };
		r = cr_harness_tool_result(t->tool_use_id, res.content ? res.content : "",
					   res.is_error, &ev, err);
		cr_tool_result_clear(&res);
		if (r == 0)
			r = apply_append(pf, session, epoch, &ev, 1, err);
		cr_harness_event_clear(&ev);
		if (r < 0)
			return r;
	}
	return 0;
}

int cr_orch_wake(const struct cr_orch_config *cfg, const char *session, struct cr_orch_stats *stats,
		 struct cr_error *err)
{
	const struct cr_platform *pf = &cfg->platform;
	struct cr_orch_stats st = { 0 };
	struct history h = { 0 };
	json_t *agent_obj = NULL, *env_obj = NULL;
	uint64_t t0 = cr_now_ns();
	uint64_t epoch = 0;

	int r = pf->ops->acquire(pf->p, session, &epoch, err);
	if (r == 0)
		r = pf->ops->config(pf->p, session, &agent_obj, &env_obj, err);
	if (r == 0)
		r = history_refresh(pf, session, &h, err);
	st.epoch = epoch;
	struct cr_harness_agent agent;
	if (r == 0) {
		cr_orch_harness_agent(agent_obj, &agent);
		agent.context_budget = cfg->context_budget;
		agent.model_retries = cfg->model_retries;
	}

	while (r == 0) {
		struct cr_harness_step s;
		r = cr_harness_step(&agent, h.ev, h.n, &s, err);
		if (r < 0)
			break;
		if (st.steps++ == 0)
			st.replay_ns = cr_now_ns() - t0;
		if (cfg->stop && *cfg->stop && s.kind != CR_STEP_WAIT && s.kind != CR_STEP_END) {
			cr_harness_step_clear(&s);
			r = cr_error_set(err, ECANCELED, "session %s: stopped", session);
			break;
		}
		switch (s.kind) {
		case CR_STEP_WAIT:
		case CR_STEP_END:
			st.end = s.kind;
			cr_harness_step_clear(&s);
			goto out;
		case CR_STEP_APPEND: {
			/* When a model call follows this append (a user message taken up), it
			 * is sent first: see model_turn. */
			struct history spec = { 0 };
			struct cr_harness_step next = { 0 };
			r = spec_history(&h, &s, &spec, err);
			if (r == 0) {
				r = cr_harness_step(&agent, spec.ev, spec.n, &next, err);
				spec_free(&spec, h.n);
			}
			if (r == 0 && next.kind == CR_STEP_MODEL) {
				r = model_turn(cfg, &agent, session, epoch, &h, &s, next.request,
					       next.request_len, next.retry_delay_ms, &st, err);
			} else if (r == 0) {
				r = apply_append(pf, session, epoch, s.events, s.n_events, err);
				if (r == 0 && s.n_mark)
					r = pf->ops->mark(pf->p, session, epoch, s.mark, s.n_mark,
							  err);
				if (r == 0)
					history_marked(&h, s.mark, s.n_mark);
			}
			cr_harness_step_clear(&next);
			break;
		}
		case CR_STEP_MODEL:
			r = model_turn(cfg, &agent, session, epoch, &h, NULL, s.request,
				       s.request_len, s.retry_delay_ms, &st, err);
			break;
		case CR_STEP_TOOLS:
			r = run_tools(cfg, session, epoch, &s, &st, err);
			break;
		}
		cr_harness_step_clear(&s);
		if (r == 0)
			r = history_refresh(pf, session, &h, err);
	}
out:
	st.last_seq = h.n ? h.ev[h.n - 1].seq : 0;
	if (stats)
		*stats = st;
	history_clear(&h);
	json_decref(agent_obj);
	json_decref(env_obj);
	return r;
}
