/* runtime/orchestrator: wake(session_id) and the in-process platform (include/corral/
 * orchestrator.h). The loop decides nothing itself: each turn asks the harness step what comes
 * next, carries it out through the platform and reads back what the log now holds. It must never
 * act on something it has not appended first, so that a brain killed at any moment leaves a log
 * the next brain can fold into the same decision. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/id.h"
#include "corral/initproto.h"
#include "corral/orchestrator.h"

/* --- the in-process platform ----------------------------------------------------------------- */

/* A session's hands. Entries are made on first use and kept until the platform is freed, so
 * a pointer to one stays valid however the session ends; the entry's lock serializes making,
 * using and destroying its sandbox. */
struct local_hands {
	char session[CR_LOG_ID_MAX];
	struct cr_hands *hands; /* NULL until made, or after a failed making */
	bool released; /* the session ended: no more sandboxes for it */
	bool provisioning; /* an eager making runs on its own thread (guarded by local.lock) */
	char *rootfs; /* the environment's root file system, which the hands point at */
	pthread_mutex_t lock;
};

struct local {
	struct cr_log *log;
	bool have_hands;
	struct cr_hands_config hands_cfg;
	cr_platform_config_fn config;
	void *config_arg;
	cr_platform_preview_fn preview;
	void *preview_arg;
	pthread_mutex_t lock; /* guards v, the entries' provisioning, inflight and stopping */
	pthread_cond_t provisioned; /* an eager making ended */
	unsigned inflight; /* eager makings running */
	atomic_bool stopping; /* the platform is being freed: makings give up their waits */
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
				.id = ev[off + i].id,
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

static struct local_hands *local_find(struct local *l, const char *session);

static int local_config(void *p, const char *session, json_t **ret_agent, json_t **ret_env,
			struct cr_error *err)
{
	struct local *l = p;
	/* A session provisioned eagerly starts once its sandbox is there: a brain asks for the
	 * configuration before anything else. */
	pthread_mutex_lock(&l->lock);
	for (;;) {
		const struct local_hands *e = local_find(l, session);
		if (!e || !e->provisioning || atomic_load(&l->stopping))
			break;
		pthread_cond_wait(&l->provisioned, &l->lock);
	}
	pthread_mutex_unlock(&l->lock);
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

/* The environment's provision delay, cut short when the platform is being freed. */
static int provision_wait(struct local *l, const char *session, unsigned ms, struct cr_error *err)
{
	for (unsigned left = ms; left > 0;) {
		if (atomic_load(&l->stopping))
			return cr_error_set(err, ECANCELED, "session %s: corrald is stopping",
					    session);
		unsigned d = left < 50 ? left : 50;
		sleep_ms(d);
		left -= d;
	}
	return 0;
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
	int r = es.delay_ms ? provision_wait(l, e->session, es.delay_ms, err) : 0;
	if (r < 0) {
		free(es.rootfs);
		return r;
	}
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

static void local_preview(void *p, const char *session, const char *json)
{
	struct local *l = p;
	if (l->preview)
		l->preview(l->preview_arg, session, json);
}

static const struct cr_platform_ops local_ops = {
	.acquire = local_acquire,
	.events = local_events,
	.append = local_append,
	.mark = local_mark,
	.tool = local_tool,
	.config = local_config,
	.heartbeat = local_heartbeat,
	.preview = local_preview,
};

void cr_platform_local_free(struct cr_platform *p)
{
	if (!p || !p->p)
		return;
	struct local *l = p->p;
	pthread_mutex_lock(&l->lock);
	atomic_store(&l->stopping, true);
	pthread_cond_broadcast(&l->provisioned);
	while (l->inflight)
		pthread_cond_wait(&l->provisioned, &l->lock);
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < l->n; i++) {
		cr_hands_free(l->v[i]->hands); /* the sandboxes run on, for the next start */
		free(l->v[i]->rootfs);
		pthread_mutex_destroy(&l->v[i]->lock);
		free(l->v[i]);
	}
	free(l->v);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->provisioned);
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
	l->preview = cfg->preview;
	l->preview_arg = cfg->preview_arg;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->provisioned, NULL);
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

struct provision_job {
	struct cr_platform platform;
	struct local_hands *e;
	char session[CR_LOG_ID_MAX];
	cr_platform_provision_done_fn done;
	void *arg;
};

static void *provision_main(void *arg)
{
	struct provision_job *j = arg;
	struct local *l = j->platform.p;
	struct cr_error err = { 0 };
	int r = cr_platform_local_provision(&j->platform, j->session, true, &err);
	if (j->done)
		j->done(j->arg, j->session, r, &err);
	pthread_mutex_lock(&l->lock);
	j->e->provisioning = false;
	l->inflight--;
	pthread_cond_broadcast(&l->provisioned);
	pthread_mutex_unlock(&l->lock);
	free(j);
	return NULL;
}

int cr_platform_local_provision_start(struct cr_platform *p, const char *session,
				      cr_platform_provision_done_fn done, void *arg,
				      struct cr_error *err)
{
	struct local *l = p->p;
	if (!l->have_hands)
		return 0;
	struct local_hands *e;
	int r = local_entry(l, session, &e, err);
	if (r < 0)
		return r;
	struct provision_job *j = calloc(1, sizeof(*j));
	if (!j)
		return cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	*j = (struct provision_job){ .platform = *p, .e = e, .done = done, .arg = arg };
	snprintf(j->session, sizeof(j->session), "%s", session);
	pthread_mutex_lock(&l->lock);
	if (e->provisioning || atomic_load(&l->stopping)) {
		pthread_mutex_unlock(&l->lock);
		free(j);
		return 0;
	}
	e->provisioning = true;
	l->inflight++;
	pthread_mutex_unlock(&l->lock);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int rc = pthread_create(&t, &attr, provision_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_lock(&l->lock);
		e->provisioning = false;
		l->inflight--;
		pthread_cond_broadcast(&l->provisioned);
		pthread_mutex_unlock(&l->lock);
		free(j);
		return cr_error_errno(err, rc, "session %s: start its sandbox's making", session);
	}
	return 0;
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

/* The loop's view of the session: every event so far, in order; the last `early` of them are
 * a wake's early events, not yet known to be durable. */
struct history {
	struct cr_log_event *ev;
	size_t n;
	size_t early;
};

static void history_clear(struct history *h)
{
	cr_log_events_free(h->ev, h->n);
	h->ev = NULL;
	h->n = 0;
}

/* Forgets the early events: the log says what became of them. */
static void history_drop_early(struct history *h)
{
	for (; h->early > 0; h->early--)
		free(h->ev[--h->n].payload);
}

/* Reads what the log holds after the last durable event seen (early ones are read again, as
 * the log has them). */
static int history_refresh(const struct cr_platform *pf, const char *session, struct history *h,
			   struct cr_error *err)
{
	history_drop_early(h);
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

/* Adds a wake's early events to h (read from the log already: nothing), numbered after its
 * last event as the log will number them if nothing comes between. */
static int history_add_early(struct history *h, const struct cr_log_event *early, size_t n,
			     struct cr_error *err)
{
	if (n == 0)
		return 0;
	for (size_t j = h->n; j-- > 0;)
		if (strcmp(h->ev[j].id, early[0].id) == 0)
			return 0; /* (a group is durable whole or not at all) */
	struct cr_log_event *copy = cr_log_events_dup(early, n);
	struct cr_log_event *v = copy ? realloc(h->ev, (h->n + n) * sizeof(*v)) : NULL;
	if (!v) {
		cr_log_events_free(copy, n);
		return cr_error_set(err, ENOMEM, "out of memory");
	}
	h->ev = v;
	uint64_t seq = h->n ? h->ev[h->n - 1].seq : 0;
	for (size_t i = 0; i < n; i++) {
		/* pending, as a client's events are; numbered as the log will number them */
		copy[i].seq = ++seq;
		copy[i].time_ns = copy[i].processed_ns = copy[i].epoch = 0;
	}
	memcpy(v + h->n, copy, n * sizeof(*v));
	free(copy); /* (the payloads moved into h) */
	h->n += n;
	h->early += n;
	return 0;
}

/* Once the lease is taken (the log put its lease.acquired after the early events): reads what
 * landed and whether it is the early events exactly, under their ids and numbers, followed by
 * nothing but that lease.acquired. A step taken on them then holds. */
static int history_settle_early(const struct cr_platform *pf, const char *session,
				struct history *h, uint64_t epoch, bool *ret_same,
				struct cr_error *err)
{
	size_t base = h->n - h->early, n = h->early;
	char(*ids)[CR_LOG_ID_MAX] = calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		return cr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		memcpy(ids[i], h->ev[base + i].id, sizeof(ids[0]));
	int r = history_refresh(pf, session, h, err);
	size_t k = 0;
	bool same = r == 0;
	for (size_t i = base; same && i < h->n; i++) {
		const struct cr_log_event *e = &h->ev[i];
		if (k == n)
			same = strcmp(e->type, "lease.acquired") == 0 && e->epoch == epoch;
		else
			same = strcmp(e->id, ids[k++]) == 0;
	}
	*ret_same = same && k == n;
	free(ids);
	return r;
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
 * posted meanwhile), besides the lease.acquired of our own epoch when the lease was taken in
 * between: then a step taken on the speculative history holds for the real one. */
static bool only_ours(const struct history *h, size_t before, const struct cr_harness_step *pre,
		      uint64_t epoch)
{
	size_t k = 0;
	for (size_t i = before; i < h->n; i++) {
		const struct cr_log_event *e = &h->ev[i];
		if (strcmp(e->type, "lease.acquired") == 0 && e->epoch == epoch)
			continue;
		if (k == pre->n_events || strcmp(e->type, pre->events[k].type) != 0)
			return false;
		k++;
	}
	return k == pre->n_events;
}

/* The session's lease, taken at the latest moment: a wake whose first step is a model call
 * sends it before it takes the lease (model_turn), so the first token waits for neither. */
struct lease {
	uint64_t epoch;
	bool held;
};

static int lease_take(const struct cr_platform *pf, const char *session, struct lease *l,
		      struct cr_orch_stats *st, struct cr_error *err)
{
	if (l->held)
		return 0;
	int r = pf->ops->acquire(pf->p, session, &l->epoch, err);
	if (r == 0) {
		l->held = true;
		st->epoch = l->epoch;
	}
	return r;
}

/* --- previews ------------------------------------------------------------------------------- */

#define PREVIEW_MESSAGES 64 /* agent.message events of one reply that get a preview */

/* What a model call's stream shows of the agent.message events it is making, before they are
 * written (docs/api.md, "Previews"). Each run of text blocks, which cr_harness_model_events
 * makes one agent.message, gets a fresh event id at its first block, announced in an
 * event_start; its text goes out in event_deltas; the event is then appended under that id.
 * Until the call is known to stand (its span's start is appended), frames are held, and they
 * are dropped with a call that does not. */
struct preview {
	const struct cr_platform *pf;
	const char *session;
	char ids[PREVIEW_MESSAGES][CR_LOG_ID_MAX];
	size_t n; /* ids announced */
	size_t runs; /* runs of text blocks seen (more than n once PREVIEW_MESSAGES is reached) */
	/* thinking blocks, one agent.thinking each: previews that are only an event_start */
	char thinking_ids[PREVIEW_MESSAGES][CR_LOG_ID_MAX];
	size_t n_thinking, thinking_blocks;
	bool open; /* a run is open: its id is ids[n - 1] */
	unsigned index; /* the open run's current block */
	bool live; /* frames go out at once */
	char **held;
	size_t n_held;
};

static void preview_free(struct preview *pv)
{
	for (size_t i = 0; i < pv->n_held; i++)
		free(pv->held[i]);
	free(pv->held);
	pv->held = NULL;
	pv->n_held = 0;
}

/* Sends (or holds) one frame (taken). A frame that cannot be made is left out: previews are
 * best effort. */
static void preview_put(struct preview *pv, json_t *frame)
{
	char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
	json_decref(frame);
	if (!text)
		return;
	if (pv->live) {
		pv->pf->ops->preview(pv->pf->p, pv->session, text);
		free(text);
		return;
	}
	char **v = reallocarray(pv->held, pv->n_held + 1, sizeof(*v));
	if (!v) {
		free(text);
		return;
	}
	pv->held = v;
	pv->held[pv->n_held++] = text;
}

static void preview_go_live(struct preview *pv)
{
	pv->live = true;
	for (size_t i = 0; i < pv->n_held; i++)
		pv->pf->ops->preview(pv->pf->p, pv->session, pv->held[i]);
	preview_free(pv);
}

static void preview_text(struct preview *pv, const char *text)
{
	if (!text || !*text)
		return;
	preview_put(pv,
		    json_pack("{s:s, s:s, s:{s:s, s:i, s:{s:s, s:s}}}", "type", "event_delta",
			      "event_id", pv->ids[pv->n - 1], "delta", "type", "content_delta",
			      "index", (int)pv->index, "content", "type", "text", "text", text));
}

/* Announces a fresh id for an event of type in ids[*n] (a full list: nothing). */
static void preview_start(struct preview *pv, char (*ids)[CR_LOG_ID_MAX], size_t *n,
			  const char *type)
{
	uint8_t raw[CR_ID_RAW];
	if (*n == PREVIEW_MESSAGES || cr_id_random(raw, NULL) < 0)
		return;
	cr_id_format("sevt_", raw, ids[*n], sizeof(ids[0]));
	preview_put(pv, json_pack("{s:s, s:{s:s, s:s}}", "type", "event_start", "event", "id",
				  ids[*n], "type", type));
	(*n)++;
}

/* The model call's on_event: CR_MODEL_EVENT_UNSEEN until a frame went out (or is held), so
 * the client may still retry an attempt that showed nothing. */
static int preview_event(void *arg, json_t *event, struct cr_error *err)
{
	struct preview *pv = arg;
	(void)err;
	const char *type = json_string_value(json_object_get(event, "type"));
	if (type && strcmp(type, "content_block_start") == 0) {
		json_t *b = json_object_get(event, "content_block");
		const char *bt = json_string_value(json_object_get(b, "type"));
		if (bt && strcmp(bt, "thinking") == 0) {
			/* agent.thinking: start-only, its text comes with the event */
			pv->thinking_blocks++;
			preview_start(pv, pv->thinking_ids, &pv->n_thinking, "agent.thinking");
		}
		if (!bt || strcmp(bt, "text") != 0) {
			pv->open = false; /* (any other block ends the run, as in the harness) */
			return pv->n || pv->n_thinking ? 0 : CR_MODEL_EVENT_UNSEEN;
		}
		if (pv->open) {
			pv->index++;
		} else {
			pv->runs++;
			size_t before = pv->n;
			preview_start(pv, pv->ids, &pv->n, "agent.message");
			if (pv->n == before) /* (no room: this run goes without) */
				return pv->n || pv->n_thinking ? 0 : CR_MODEL_EVENT_UNSEEN;
			pv->open = true;
			pv->index = 0;
		}
		preview_text(pv, json_string_value(json_object_get(b, "text")));
	} else if (type && strcmp(type, "content_block_delta") == 0 && pv->open) {
		json_t *d = json_object_get(event, "delta");
		const char *dt = json_string_value(json_object_get(d, "type"));
		if (dt && strcmp(dt, "text_delta") == 0)
			preview_text(pv, json_string_value(json_object_get(d, "text")));
	}
	return pv->n || pv->n_thinking ? 0 : CR_MODEL_EVENT_UNSEEN;
}

/* Gives the call's events of type the ids their previews announced (ids[0..n)), in order,
 * when the reply made exactly as many as the previews saw (seen; else the previews end
 * unanswered, closed by the span's end, as for a call that failed). */
static void preview_assign(struct cr_harness_event *ev, size_t n_ev, const char *type,
			   const char (*ids)[CR_LOG_ID_MAX], size_t n, size_t seen)
{
	size_t made = 0;
	for (size_t i = 0; i < n_ev; i++)
		made += strcmp(ev[i].type, type) == 0;
	if (made != seen)
		return;
	for (size_t i = 0, k = 0; i < n_ev && k < n; i++)
		if (strcmp(ev[i].type, type) == 0)
			snprintf(ev[i].id, sizeof(ev[i].id), "%s", ids[k++]);
}

static void preview_ids(const struct preview *pv, struct cr_harness_event *ev, size_t n)
{
	preview_assign(ev, n, "agent.message", pv->ids, pv->n, pv->runs);
	preview_assign(ev, n, "agent.thinking", (const char(*)[CR_LOG_ID_MAX])pv->thinking_ids,
		       pv->n_thinking, pv->thinking_blocks);
}

/* One model call: sent before anything is written, since a call changes nothing anywhere (a
 * brain that dies during it leaves a span without an end, and the call is made again), so the
 * writes that precede it in the log (pre: the client events it answers marked processed and
 * session.status_running, then span.model_request_start) are made while the request is on its
 * way rather than before it leaves: the first token does not wait for three fdatasyncs. If a
 * client event landed meanwhile, the call is dropped and the loop steps again on what the log
 * holds. The events that record the call are appended after it, as one unit. */
static int model_turn(const struct cr_orch_config *cfg, const struct cr_harness_agent *agent,
		      const char *session, struct lease *lease, struct history *h,
		      const struct cr_harness_step *pre, const char *request, size_t request_len,
		      unsigned delay_ms, struct cr_orch_stats *st, struct cr_error *err)
{
	const struct cr_platform *pf = &cfg->platform;
	unsigned beat = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
	int r = 0;
	/* (only a wake's first step comes here without the lease, and it has pre) */
	if (!lease->held && (!pre || delay_ms))
		r = lease_take(pf, session, lease, st, err);
	if (r == 0 && delay_ms)
		r = backoff(cfg, session, lease->epoch, delay_ms, err);
	if (r < 0)
		return r;
	struct preview pv = { .pf = pf, .session = session };
	struct cr_model_call_opts opts = { .headers = cfg->model_headers };
	if (pf->ops->preview) {
		opts.on_event = preview_event;
		opts.arg = &pv;
	}
	struct cr_model_call *call = NULL;
	if ((r = cr_model_call_start_text(cfg->model, request, request_len, &opts, &call, err)) < 0)
		return r;
	/* One turn of the loop: connects (or takes a kept-alive connection) and sends. */
	if ((r = cr_model_client_run(cfg->model, 0, err)) < 0)
		goto out;
	st->model_calls++;

	if (pre) {
		size_t before = h->n;
		r = lease_take(pf, session, lease, st, err);
		if (r < 0)
			goto out;
		if (h->early) {
			bool same = false;
			r = history_settle_early(pf, session, h, lease->epoch, &same, err);
			if (r < 0)
				goto out;
			if (!same) {
				st->model_calls--; /* dropped unanswered, as below */
				st->dropped_calls++;
				goto out;
			}
			before = h->n; /* (its lease.acquired is read: only pre's events follow) */
		}
		r = apply_append(pf, session, lease->epoch, pre->events, pre->n_events, err);
		if (r == 0 && pre->n_mark)
			r = pf->ops->mark(pf->p, session, lease->epoch, pre->mark, pre->n_mark,
					  err);
		if (r == 0)
			history_marked(h, pre->mark, pre->n_mark);
		if (r == 0)
			r = history_refresh(pf, session, h, err);
		if (r < 0)
			goto out;
		if (!only_ours(h, before, pre, lease->epoch)) {
			st->model_calls--; /* dropped unanswered: the next step decides again */
			st->dropped_calls++;
			goto out;
		}
	}
	struct cr_harness_event start = { .type = "span.model_request_start",
					  .payload = json_object() };
	struct cr_log_appended started = { 0 };
	if (!start.payload)
		r = cr_error_set(err, ENOMEM, "session %s: out of memory", session);
	else
		r = pf->ops->append(pf->p, session, lease->epoch, &start, 1, &started, err);
	json_decref(start.payload);
	if (r == 0)
		r = history_refresh(pf, session, h, err);
	if (r < 0)
		goto out;
	preview_go_live(&pv);

	while (!cr_model_call_done(call)) {
		int left = cr_model_client_run(cfg->model, (int)beat, err);
		if (left < 0) {
			r = left;
			goto out;
		}
		if (cr_model_call_done(call))
			break;
		r = pf->ops->heartbeat(pf->p, session, lease->epoch, err);
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
	if (r == 0) {
		preview_ids(&pv, out, n_out);
		r = apply_append(pf, session, lease->epoch, out, n_out, err);
	}
	cr_harness_events_free(out, n_out);
out:
	cr_model_call_free(call); /* (cancels it first if it still runs) */
	preview_free(&pv);
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

/* Takes the lease for a step that must not run without it, and reads what landed meanwhile:
 * the loop then steps again on that. */
static int retake(const struct cr_platform *pf, const char *session, struct lease *lease,
		  struct history *h, struct cr_orch_stats *st, struct cr_error *err)
{
	int r = lease_take(pf, session, lease, st, err);
	return r < 0 ? r : history_refresh(pf, session, h, err);
}

int cr_orch_wake(const struct cr_orch_config *cfg, const char *session, struct cr_orch_stats *stats,
		 struct cr_error *err)
{
	return cr_orch_wake_early(cfg, session, NULL, 0, stats, err);
}

int cr_orch_wake_early(const struct cr_orch_config *cfg, const char *session,
		       const struct cr_log_event *early, size_t n_early,
		       struct cr_orch_stats *stats, struct cr_error *err)
{
	const struct cr_platform *pf = &cfg->platform;
	struct cr_orch_stats st = { 0 };
	struct history h = { 0 };
	json_t *agent_obj = NULL, *env_obj = NULL;
	uint64_t t0 = cr_now_ns();
	struct lease lease = { 0 };

	int r = pf->ops->config(pf->p, session, &agent_obj, &env_obj, err);
	if (r == 0)
		r = history_refresh(pf, session, &h, err);
	if (r == 0)
		r = history_add_early(&h, early, n_early, err);
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
		/* Early events lead only to a model call (after their append): any other effect
		 * waits until they are durable, as the lease's taking shows. */
		if (h.early && (s.kind == CR_STEP_MODEL || s.kind == CR_STEP_TOOLS)) {
			cr_harness_step_clear(&s);
			r = retake(pf, session, &lease, &h, &st, err);
			continue;
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
				r = model_turn(cfg, &agent, session, &lease, &h, &s, next.request,
					       next.request_len, next.retry_delay_ms, &st, err);
			} else if (r == 0 && !lease.held) {
				r = retake(pf, session, &lease, &h, &st, err);
			} else if (r == 0) {
				r = apply_append(pf, session, lease.epoch, s.events, s.n_events,
						 err);
				if (r == 0 && s.n_mark)
					r = pf->ops->mark(pf->p, session, lease.epoch, s.mark,
							  s.n_mark, err);
				if (r == 0)
					history_marked(&h, s.mark, s.n_mark);
			}
			cr_harness_step_clear(&next);
			break;
		}
		case CR_STEP_MODEL:
			r = model_turn(cfg, &agent, session, &lease, &h, NULL, s.request,
				       s.request_len, s.retry_delay_ms, &st, err);
			break;
		case CR_STEP_TOOLS:
			r = lease.held ? run_tools(cfg, session, lease.epoch, &s, &st, err)
				       : retake(pf, session, &lease, &h, &st, err);
			break;
		}
		cr_harness_step_clear(&s);
		if (r == 0)
			r = history_refresh(pf, session, &h, err);
	}
out:
	history_drop_early(&h); /* (the last event seen is the last durable one) */
	st.last_seq = h.n ? h.ev[h.n - 1].seq : 0;
	if (stats)
		*stats = st;
	history_clear(&h);
	json_decref(agent_obj);
	json_decref(env_obj);
	return r;
}

/* --- the platform's sandboxes, for corral's own API ------------------------------------------ */

/* Pause and resume look at a sandbox's state and then change it: one at a time in the process,
 * so that two requests for one sandbox make one event, not two. (A freeze waits at most 5 s.) */
static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;

/* The session whose hands' record names sandbox id (read from the records: no entry's lock
 * is taken, so this never waits for a tool call). -ENOENT when none does. */
static int bound_to(struct local *l, const char *id, char session[CR_LOG_ID_MAX],
		    struct cr_error *err)
{
	if (!l->have_hands || !cr_id_valid("sbx_", id))
		return cr_error_set(err, ENOENT, "sandbox %.64s not found", id);
	struct cr_hands_binding *b = NULL;
	size_t n = 0;
	int r = cr_hands_bindings(l->hands_cfg.sandbox.state_dir, &b, &n, err);
	if (r < 0)
		return r;
	r = cr_error_set(err, ENOENT, "sandbox %s not found", id);
	for (size_t i = 0; i < n; i++)
		if (strcmp(b[i].sandbox, id) == 0) {
			snprintf(session, CR_LOG_ID_MAX, "%s", b[i].session);
			r = 0;
			break;
		}
	free(b);
	return r;
}

/* What sandbox id of session is now, from its own record and cgroup. -ENOENT when it is gone. */
static int sandbox_info(struct local *l, const char *id, const char *session,
			struct cr_platform_sandbox *ret, struct cr_error *err)
{
	struct cr_sandbox *sbp;
	int r = cr_sandbox_open(l->hands_cfg.sandbox.state_dir, id, &sbp, err);
	if (r == -EINVAL) { /* (its record is not one: not the client's doing) */
		if (err)
			err->code = EIO;
		return -EIO;
	}
	if (r < 0)
		return r;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	struct cr_platform_sandbox v = { 0 };
	snprintf(v.id, sizeof(v.id), "%s", id);
	snprintf(v.session, sizeof(v.session), "%s", session);
	if ((r = cr_sandbox_state(sb, &v.state, err)) < 0)
		return r;
	if (cr_sandbox_created(sb, &v.created_ns, NULL) < 0)
		v.created_ns = 0; /* (unknown: its record went meanwhile) */
	*ret = v;
	return 0;
}

static int sandbox_cmp(const void *a, const void *b)
{
	const struct cr_platform_sandbox *x = a, *y = b;
	if (x->created_ns != y->created_ns)
		return x->created_ns < y->created_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

int cr_platform_local_sandboxes(struct cr_platform *p, struct cr_platform_sandbox **ret,
				size_t *ret_n, struct cr_error *err)
{
	struct local *l = p->p;
	struct cr_hands_binding *b = NULL;
	size_t nb = 0, n = 0;
	int r = 0;
	if (l->have_hands &&
	    (r = cr_hands_bindings(l->hands_cfg.sandbox.state_dir, &b, &nb, err)) < 0)
		return r;
	struct cr_platform_sandbox *v = calloc(nb ? nb : 1, sizeof(*v));
	if (!v)
		r = cr_error_set(err, ENOMEM, "sandboxes: out of memory");
	for (size_t i = 0; r == 0 && i < nb; i++) {
		if (!b[i].sandbox[0])
			continue; /* (hands without a sandbox now) */
		r = sandbox_info(l, b[i].sandbox, b[i].session, &v[n], err);
		if (r == 0)
			n++;
		else if (r == -ENOENT || r == -EIO)
			r = 0; /* (destroyed since its record was read, or an unreadable record) */
	}
	free(b);
	if (r < 0) {
		free(v);
		return r;
	}
	qsort(v, n, sizeof(*v), sandbox_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

int cr_platform_local_sandbox(struct cr_platform *p, const char *id,
			      struct cr_platform_sandbox *ret, struct cr_error *err)
{
	struct local *l = p->p;
	char session[CR_LOG_ID_MAX];
	int r = bound_to(l, id, session, err);
	if (r == 0)
		r = sandbox_info(l, id, session, ret, err);
	return r;
}

/* Sandbox id, opened, and the session whose hands hold it. */
static int open_bound(struct local *l, const char *id, char session[CR_LOG_ID_MAX],
		      struct cr_sandbox **ret, struct cr_error *err)
{
	int r = bound_to(l, id, session, err);
	return r < 0 ? r : cr_sandbox_open(l->hands_cfg.sandbox.state_dir, id, ret, err);
}

int cr_platform_local_exec(struct cr_platform *p, const char *id, const char *const *argv,
			   unsigned timeout_ms, json_t **ret, struct cr_error *err)
{
	struct local *l = p->p;
	char session[CR_LOG_ID_MAX];
	struct cr_sandbox *sbp;
	int r = open_bound(l, id, session, &sbp, err);
	if (r < 0)
		return r;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	enum cr_sandbox_state st;
	if ((r = cr_sandbox_state(sb, &st, err)) < 0)
		return r;
	if (st == CR_SANDBOX_PAUSED)
		return cr_error_set(err, EAGAIN, "sandbox %s is paused: resume it first", id);
	if (st == CR_SANDBOX_STOPPED)
		return cr_error_set(err, ESRCH, "sandbox %s is stopped", id);

	uint8_t raw[CR_ID_RAW];
	char call_id[CR_LOG_ID_MAX];
	if ((r = cr_id_random(raw, err)) < 0)
		return r;
	if (cr_id_format("exec_", raw, call_id, sizeof(call_id)) < 0)
		return cr_error_set(err, ENAMETOOLONG, "exec: no room for a request id");
	json_t *args = json_array();
	for (size_t i = 0; args && argv[i]; i++)
		if (json_array_append_new(args, json_string(argv[i])) < 0) {
			json_decref(args);
			args = NULL;
		}
	_cleanup_(json_decrefp) json_t *req =
		args ? json_pack("{s:s, s:s, s:o, s:I}", "id", call_id, "op", "exec", "argv", args,
				 "timeout_ms", (json_int_t)timeout_ms)
		     : NULL;
	if (!req)
		return cr_error_set(err, ENOMEM, "exec in sandbox %s: out of memory", id);
	struct cr_error e;
	_cleanup_close_ int fd = cr_sandbox_connect(sb, &e);
	if (fd < 0)
		return cr_error_set(err, ESRCH, "sandbox %s does not answer: %s", id, e.msg);
	json_t *resp = NULL;
	/* corral-init ends the program at timeout_ms (and grace_ms later kills it): give it that
	 * and some, as corral sandbox exec does */
	r = cr_init_call(fd, req, (int)timeout_ms + 10000, &resp, &e);
	if (r < 0) {
		if (r == -ETIMEDOUT && cr_sandbox_state(sb, &st, NULL) == 0 &&
		    st == CR_SANDBOX_PAUSED)
			return cr_error_set(err, EAGAIN,
					    "sandbox %s was paused: no answer within the timeout",
					    id);
		return cr_error_set(err, ESRCH, "sandbox %s did not answer: %s", id, e.msg);
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *why = json_string_value(json_object_get(resp, "error"));
		r = cr_error_set(err, EINVAL, "%s", why ? why : "corral-init refused the command");
		json_decref(resp);
		return r;
	}
	*ret = resp;
	return 0;
}

/* Appends one of the session's sandbox events ({"sandbox_id": id}) as its lease holder would:
 * under its current epoch, read again when a brain takes the lease in between (-ESTALE), as the
 * API does for the events clients send. */
static int sandbox_event(struct local *l, const char *session, const char *type, const char *id,
			 struct cr_error *err)
{
	json_t *o = json_pack("{s:s}", "sandbox_id", id);
	_cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return cr_error_set(err, ENOMEM, "%s event: out of memory", type);
	int r = -ESTALE;
	for (int attempt = 0; attempt < 100 && r == -ESTALE; attempt++) {
		struct cr_log_session_info info;
		if ((r = cr_log_session_info(l->log, session, &info, err)) < 0)
			break;
		struct cr_log_append a = {
			.session = session,
			.epoch = info.epoch,
			.expected_seq = CR_LOG_ANY_SEQ,
			.type = type,
			.payload = text,
			.payload_len = strlen(text),
		};
		r = cr_log_append(l->log, &a, NULL, err);
	}
	return r < 0 ? cr_error_prefix(err, "record %s in session %s", type, session) : 0;
}

int cr_platform_local_pause(struct cr_platform *p, const char *id, bool pause, struct cr_error *err)
{
	struct local *l = p->p;
	char session[CR_LOG_ID_MAX];
	struct cr_sandbox *sbp;
	int r = open_bound(l, id, session, &sbp, err);
	if (r < 0)
		return r;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	enum cr_sandbox_state st;
	pthread_mutex_lock(&pause_lock);
	r = cr_sandbox_state(sb, &st, err);
	if (r == 0 && st == CR_SANDBOX_STOPPED)
		r = cr_error_set(err, ESRCH, "sandbox %s is stopped", id);
	if (r == 0 && st != (pause ? CR_SANDBOX_PAUSED : CR_SANDBOX_RUNNING)) {
		r = pause ? cr_sandbox_pause(sb, err) : cr_sandbox_resume(sb, err);
		if (r == 0 &&
		    (r = sandbox_event(l, session, pause ? "sandbox.paused" : "sandbox.resumed", id,
				       err)) < 0) {
			/* not recorded: undone, so that the log says what the sandbox is */
			if (pause)
				cr_sandbox_resume(sb, NULL);
			else
				cr_sandbox_pause(sb, NULL);
		}
	}
	pthread_mutex_unlock(&pause_lock);
	return r;
}

/* The entry of session, if it has one (it is never freed before the platform). */
static struct local_hands *local_lookup(struct local *l, const char *session)
{
	pthread_mutex_lock(&l->lock);
	struct local_hands *e = local_find(l, session);
	pthread_mutex_unlock(&l->lock);
	return e;
}

/* Whether e's hands hold sandbox id now; e->lock held. */
static bool holds(const struct local_hands *e, const char *id)
{
	struct cr_sandbox *sb = e->hands ? cr_hands_sandbox(e->hands) : NULL;
	return sb && strcmp(cr_sandbox_id(sb), id) == 0;
}

/* Takes e->lock without waiting: a tool call can hold it for minutes (its command, or a
 * paused sandbox), and an API request must not hang behind it. */
static int try_entry(struct local_hands *e, struct cr_error *err)
{
	if (pthread_mutex_trylock(&e->lock) != 0)
		return cr_error_set(err, EBUSY,
				    "session %s's sandbox is in use (a tool call or a provisioning "
				    "runs): try again when it ends",
				    e->session);
	return 0;
}

int cr_platform_local_handoff(struct cr_platform *p, const char *id, const char *from_session,
			      const char *handle, const char *to_session, struct cr_error *err)
{
	struct local *l = p->p;
	char session[CR_LOG_ID_MAX];
	int r = bound_to(l, id, session, err);
	if (r < 0)
		return r;
	if (strcmp(session, from_session) != 0)
		return cr_error_set(err, EBUSY,
				    "sandbox %s changed hands meanwhile (now session %s's)", id,
				    session);
	if (strcmp(from_session, to_session) == 0)
		return cr_error_set(err, EINVAL, "sandbox %s is session %s's already", id,
				    to_session);
	struct local_hands *from = local_lookup(l, from_session), *to;
	if (!from)
		return cr_error_set(err, ENOENT, "sandbox %s is not held by this corrald's hands",
				    id);
	if ((r = local_entry(l, to_session, &to, err)) < 0)
		return r;
	if ((r = try_entry(from, err)) < 0)
		return r;
	if ((r = try_entry(to, err)) < 0) {
		pthread_mutex_unlock(&from->lock);
		return r;
	}
	struct cr_log_session_info fi, ti;
	if (!holds(from, id))
		r = cr_error_set(err, ENOENT, "sandbox %s is no longer session %s's", id,
				 from_session);
	else if (to->released)
		r = cr_error_set(err, ESHUTDOWN, "session %s has ended", to_session);
	else if (to->hands)
		r = cr_error_set(
			err, EEXIST,
			"session %s has hands (a sandbox) of its own already: destroy them "
			"first",
			to_session);
	else if ((r = cr_log_session_info(l->log, from_session, &fi, err)) == 0 &&
		 (r = cr_log_session_info(l->log, to_session, &ti, err)) == 0) {
		/* each session's events under its current lease: fenced, so a brain that takes
		 * either lease meanwhile makes it -ESTALE and nothing changes */
		cr_hands_set_epoch(from->hands, fi.epoch);
		r = cr_hands_handoff(from->hands, handle, to_session, ti.epoch, err);
	}
	/* Bound to the new session (even if its record could not be rewritten after the events):
	 * the entries follow, the root file system's path the hands point at with them. */
	if (from->hands && strcmp(cr_hands_session(from->hands), to_session) == 0) {
		to->hands = TAKE_PTR(from->hands);
		free(to->rootfs);
		to->rootfs = TAKE_PTR(from->rootfs);
	}
	pthread_mutex_unlock(&to->lock);
	pthread_mutex_unlock(&from->lock);
	return r;
}

int cr_platform_local_destroy(struct cr_platform *p, const char *id, bool keep_workspace,
			      struct cr_error *err)
{
	struct local *l = p->p;
	char session[CR_LOG_ID_MAX];
	int r = bound_to(l, id, session, err);
	if (r < 0)
		return r;
	struct local_hands *e = local_lookup(l, session);
	if (!e)
		return cr_error_set(err, ENOENT, "sandbox %s is not held by this corrald's hands",
				    id);
	if ((r = try_entry(e, err)) < 0)
		return r;
	if (!holds(e, id)) {
		r = cr_error_set(err, ENOENT, "sandbox %s is no longer session %s's", id, session);
	} else {
		/* the hands go whole; the session is not released, so its next tool call makes
		 * new ones (cr_hands_destroy leaves nothing to make another sandbox with) */
		r = cr_hands_destroy(e->hands, keep_workspace, err);
		cr_hands_free(e->hands);
		e->hands = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}
