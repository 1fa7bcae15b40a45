/* runtime/brainlink: corrald <-> worker wire protocol (include/corral/brainlink.h,
 * docs/workers.md). A frame is two 4-byte big-endian lengths (JSON, tail), a compact JSON
 * object, and a binary tail that only the events reply uses: the events' payloads go as the
 * bytes the log holds, never parsed and printed again on their way to the worker. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corral/brainlink.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/id.h"
#include "corral/json.h"

#define EVENTS_PAGE 4096 /* events per reply: the worker asks again while pages are full */
/* bytes of events per reply (a page ends early rather than make a frame too large: it then says
 * "more"), and of the events a wake order carries */
#define PAGE_BYTES (CR_BRAINLINK_FRAME_MAX / 2)
#define PREFETCH_BYTES (8u << 20)
#define PREVIEW_MAX (256u << 10) /* largest preview frame passed on */

/* Record header of one event in the events reply's tail (all big-endian). */
struct wire_event {
	uint64_t seq, time_ns, processed_ns, epoch;
	uint32_t id_len, type_len, payload_len;
} __attribute__((packed));

struct frame {
	json_t *msg;
	char *tail;
	size_t tail_len;
};

static void frame_clear(struct frame *f)
{
	json_decref(f->msg);
	free(f->tail);
	*f = (struct frame){ 0 };
}

static uint64_t be64(uint64_t v)
{
	return ((uint64_t)htonl((uint32_t)v) << 32) | htonl((uint32_t)(v >> 32));
}

static int write_all(int fd, const char *buf, size_t len, struct cr_error *err)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cr_error_errno(err, errno == EPIPE ? ECONNRESET : errno,
					      "brain link: send");
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, char *buf, size_t len, struct cr_error *err)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cr_error_errno(err, errno, "brain link: receive");
		if (n == 0)
			return cr_error_set(err, ECONNRESET,
					    "brain link: the other side closed it");
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, const json_t *msg, const char *tail, size_t tail_len,
		      struct cr_error *err)
{
	_cleanup_free_ char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	size_t len = strlen(text);
	if (len + tail_len > CR_BRAINLINK_FRAME_MAX)
		return cr_error_set(err, EMSGSIZE, "brain link: a frame of %zu bytes is too large",
				    len + tail_len);
	uint32_t hdr[2] = { htonl((uint32_t)len), htonl((uint32_t)tail_len) };
	int r = write_all(fd, (const char *)hdr, sizeof(hdr), err);
	if (r == 0)
		r = write_all(fd, text, len, err);
	if (r == 0 && tail_len)
		r = write_all(fd, tail, tail_len, err);
	return r;
}

/* Reads one frame; silence_ms bounds the wait for its first byte (-1: none). */
static int recv_frame(int fd, int silence_ms, struct frame *ret, struct cr_error *err)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;
	while ((n = poll(&p, 1, silence_ms)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return cr_error_errno(err, errno, "brain link: poll");
	if (n == 0)
		return cr_error_set(err, ETIMEDOUT, "brain link: nothing for %d ms", silence_ms);
	uint32_t hdr[2];
	int r = read_all(fd, (char *)hdr, sizeof(hdr), err);
	if (r < 0)
		return r;
	size_t len = ntohl(hdr[0]), tail_len = ntohl(hdr[1]);
	if (len + tail_len > CR_BRAINLINK_FRAME_MAX || len == 0)
		return cr_error_set(err, EPROTO, "brain link: a frame of %zu bytes",
				    len + tail_len);
	_cleanup_free_ char *text = malloc(len);
	_cleanup_free_ char *tail = malloc(tail_len ? tail_len : 1);
	if (!text || !tail)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	if ((r = read_all(fd, text, len, err)) < 0 || (r = read_all(fd, tail, tail_len, err)) < 0)
		return r;
	json_error_t je;
	json_t *msg = json_loadb(text, len, 0, &je);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return cr_error_set(err, EPROTO, "brain link: a frame that is not a JSON object");
	}
	*ret = (struct frame){ .msg = msg, .tail = TAKE_PTR(tail), .tail_len = tail_len };
	return 0;
}

/* --- the worker's side --------------------------------------------------------------------- */

/* What corrald sent with the wake order, so that the wake's first reads need no round trip:
 * the session's configuration and its first page of events, each used once. */
struct prefetch {
	char session[CR_LOG_ID_MAX];
	json_t *agent, *env; /* NULL: none (ask) */
	struct cr_log_event *ev;
	size_t n;
	bool have_events;
	bool more; /* the session has events after these */
};

struct cr_brainlink {
	int fd;
	struct prefetch pre;
};

static void prefetch_clear(struct prefetch *p)
{
	json_decref(p->agent);
	json_decref(p->env);
	cr_log_events_free(p->ev, p->n);
	*p = (struct prefetch){ 0 };
}

int cr_brainlink_new(int fd, struct cr_brainlink **ret, struct cr_error *err)
{
	struct cr_brainlink *l = calloc(1, sizeof(*l));
	if (!l)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	l->fd = fd;
	*ret = l;
	return 0;
}

void cr_brainlink_free(struct cr_brainlink *l)
{
	if (!l)
		return;
	prefetch_clear(&l->pre);
	close(l->fd);
	free(l);
}

/* One request and its answer. An answer {"ok":false,"code":N,"message":M} is the error -N. */
static int call(struct cr_brainlink *l, json_t *req, struct frame *ret, struct cr_error *err)
{
	if (!req)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	int r = send_frame(l->fd, req, NULL, 0, err);
	json_decref(req);
	struct frame f = { 0 };
	if (r == 0)
		r = recv_frame(l->fd, -1, &f, err);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(f.msg, "ok"))) {
		int code = (int)json_integer_value(json_object_get(f.msg, "code"));
		const char *m = json_string_value(json_object_get(f.msg, "message"));
		r = cr_error_set(err, code > 0 ? code : EPROTO, "%s", m ? m : "brain link: error");
		frame_clear(&f);
		return r;
	}
	if (ret)
		*ret = f;
	else
		frame_clear(&f);
	return 0;
}

static int rl_acquire(void *p, const char *session, uint64_t *ret_epoch, struct cr_error *err)
{
	struct frame f;
	int r = call(p, json_pack("{s:s, s:s}", "op", "acquire", "session", session), &f, err);
	if (r < 0)
		return r;
	*ret_epoch = (uint64_t)json_integer_value(json_object_get(f.msg, "epoch"));
	frame_clear(&f);
	return 0;
}

/* Parses an events reply's tail into n events. */
static int parse_events(const struct frame *f, size_t n, struct cr_log_event *v,
			struct cr_error *err)
{
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		struct wire_event w;
		if (f->tail_len - off < sizeof(w))
			return cr_error_set(err, EPROTO, "brain link: events cut short");
		memcpy(&w, f->tail + off, sizeof(w));
		off += sizeof(w);
		size_t id_len = ntohl(w.id_len), type_len = ntohl(w.type_len),
		       len = ntohl(w.payload_len);
		if (id_len >= CR_LOG_ID_MAX || type_len >= CR_LOG_TYPE_MAX ||
		    f->tail_len - off < id_len + type_len + len)
			return cr_error_set(err, EPROTO, "brain link: a malformed event");
		struct cr_log_event *e = &v[i];
		e->seq = be64(w.seq);
		e->time_ns = be64(w.time_ns);
		e->processed_ns = be64(w.processed_ns);
		e->epoch = be64(w.epoch);
		memcpy(e->id, f->tail + off, id_len);
		e->id[id_len] = '\0';
		off += id_len;
		memcpy(e->type, f->tail + off, type_len);
		e->type[type_len] = '\0';
		off += type_len;
		e->payload = malloc(len + 1);
		if (!e->payload)
			return cr_error_set(err, ENOMEM, "brain link: out of memory");
		memcpy(e->payload, f->tail + off, len);
		e->payload[len] = '\0';
		e->payload_len = len;
		off += len;
	}
	return 0;
}

/* Asks page by page (a frame is bounded), up to limit events (0: all of them). */
static int rl_events(void *p, const char *session, uint64_t after_seq, size_t limit,
		     struct cr_log_event **ret, size_t *ret_n, struct cr_error *err)
{
	struct cr_brainlink *l = p;
	struct cr_log_event *v = NULL;
	size_t n = 0;
	if (l->pre.have_events && after_seq == 0 && (!limit || limit >= l->pre.n) &&
	    strcmp(l->pre.session, session) == 0) {
		/* the first page came with the wake order; a full one is continued from here */
		v = TAKE_PTR(l->pre.ev);
		n = l->pre.n;
		l->pre.n = 0;
		l->pre.have_events = false;
		if (!l->pre.more || n == 0 || (limit && n == limit)) {
			*ret = v;
			*ret_n = n;
			return 0;
		}
		after_seq = v[n - 1].seq;
	}
	for (;;) {
		size_t page = EVENTS_PAGE;
		if (limit && limit - n < page)
			page = limit - n;
		struct frame f;
		int r = call(p,
			     json_pack("{s:s, s:s, s:I, s:I}", "op", "events", "session", session,
				       "after", (json_int_t)after_seq, "limit", (json_int_t)page),
			     &f, err);
		if (r < 0) {
			cr_log_events_free(v, n);
			return r;
		}
		size_t k = (size_t)json_integer_value(json_object_get(f.msg, "n"));
		bool more = json_is_true(json_object_get(f.msg, "more"));
		struct cr_log_event *nv = k ? realloc(v, (n + k) * sizeof(*v)) : v;
		if (k && !nv) {
			frame_clear(&f);
			cr_log_events_free(v, n);
			return cr_error_set(err, ENOMEM, "brain link: out of memory");
		}
		v = nv;
		if (k) {
			memset(v + n, 0, k * sizeof(*v));
			r = parse_events(&f, k, v + n, err);
		}
		frame_clear(&f);
		n += k;
		if (r < 0) {
			cr_log_events_free(v, n);
			return r;
		}
		if ((k < page && !more) || k == 0 || (limit && n == limit))
			break;
		after_seq = v[n - 1].seq;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int rl_append(void *p, const char *session, uint64_t epoch,
		     const struct cr_harness_event *ev, size_t n, struct cr_log_appended *ret,
		     struct cr_error *err)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++)
		if (json_array_append_new(list, json_pack("{s:s, s:O, s:s}", "type", ev[i].type,
							  "payload", ev[i].payload, "id",
							  ev[i].id)) < 0) {
			json_decref(list);
			list = NULL;
		}
	if (!list)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	struct frame f;
	int r = call(p,
		     json_pack("{s:s, s:s, s:I, s:o}", "op", "append", "session", session, "epoch",
			       (json_int_t)epoch, "events", list),
		     &f, err);
	if (r < 0)
		return r;
	json_t *got = json_object_get(f.msg, "appended");
	if (ret && json_array_size(got) == n) {
		for (size_t i = 0; i < n; i++) {
			json_t *a = json_array_get(got, i);
			ret[i] = (struct cr_log_appended){
				.seq = (uint64_t)json_integer_value(json_object_get(a, "seq")),
				.time_ns =
					(uint64_t)json_integer_value(json_object_get(a, "time_ns")),
				.epoch = (uint64_t)json_integer_value(json_object_get(a, "epoch")),
			};
			snprintf(ret[i].id, sizeof(ret[i].id), "%s",
				 json_string_value(json_object_get(a, "id")) ?: "");
		}
	} else if (ret) {
		r = cr_error_set(err, EPROTO, "brain link: an append answered without its events");
	}
	frame_clear(&f);
	return r;
}

static int rl_mark(void *p, const char *session, uint64_t epoch, const uint64_t *seqs, size_t n,
		   struct cr_error *err)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++)
		if (json_array_append_new(list, json_integer((json_int_t)seqs[i])) < 0) {
			json_decref(list);
			list = NULL;
		}
	if (!list)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	return call(p,
		    json_pack("{s:s, s:s, s:I, s:o}", "op", "mark", "session", session, "epoch",
			      (json_int_t)epoch, "seqs", list),
		    NULL, err);
}

static int rl_tool(void *p, const char *session, uint64_t epoch, const char *call_id,
		   const char *name, const char *input, struct cr_tool_result *ret,
		   struct cr_error *err)
{
	struct frame f;
	int r = call(p,
		     json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "op", "tool", "session", session,
			       "epoch", (json_int_t)epoch, "call_id", call_id, "name", name,
			       "input", input),
		     &f, err);
	if (r < 0)
		return r;
	const char *content = json_string_value(json_object_get(f.msg, "content"));
	r = cr_tool_result_set(ret, json_is_true(json_object_get(f.msg, "is_error")), err, "%s",
			       content ? content : "");
	frame_clear(&f);
	return r;
}

static int rl_config(void *p, const char *session, json_t **ret_agent, json_t **ret_env,
		     struct cr_error *err)
{
	struct cr_brainlink *l = p;
	if (l->pre.agent && strcmp(l->pre.session, session) == 0) {
		*ret_agent = TAKE_PTR(l->pre.agent);
		*ret_env = TAKE_PTR(l->pre.env);
		return 0;
	}
	struct frame f;
	int r = call(p, json_pack("{s:s, s:s}", "op", "config", "session", session), &f, err);
	if (r < 0)
		return r;
	json_t *agent = json_object_get(f.msg, "agent"),
	       *env = json_object_get(f.msg, "environment");
	if (!json_is_object(agent) || !json_is_object(env)) {
		frame_clear(&f);
		return cr_error_set(err, EPROTO, "brain link: a configuration without its agent");
	}
	*ret_agent = json_incref(agent);
	*ret_env = json_incref(env);
	frame_clear(&f);
	return 0;
}

static int rl_heartbeat(void *p, const char *session, uint64_t epoch, struct cr_error *err)
{
	return call(p,
		    json_pack("{s:s, s:s, s:I}", "op", "heartbeat", "session", session, "epoch",
			      (json_int_t)epoch),
		    NULL, err);
}

/* A preview goes as the frame's tail and is not answered: the stream does not wait for it. */
static void rl_preview(void *p, const char *session, const char *json)
{
	struct cr_brainlink *l = p;
	json_t *m = json_pack("{s:s, s:s}", "op", "preview", "session", session);
	struct cr_error e;
	if (m)
		send_frame(l->fd, m, json, strlen(json),
			   &e); /* (a dead link fails the next call) */
	json_decref(m);
}

static const struct cr_platform_ops link_ops = {
	.acquire = rl_acquire,
	.events = rl_events,
	.append = rl_append,
	.mark = rl_mark,
	.tool = rl_tool,
	.config = rl_config,
	.heartbeat = rl_heartbeat,
	.preview = rl_preview,
};

struct cr_platform cr_brainlink_platform(struct cr_brainlink *l)
{
	return (struct cr_platform){ .ops = &link_ops, .p = l };
}

int cr_brainlink_next(struct cr_brainlink *l, char ret_session[CR_LOG_ID_MAX],
		      struct cr_log_event **ret_early, size_t *ret_n_early, struct cr_error *err)
{
	struct frame f;
	*ret_early = NULL;
	*ret_n_early = 0;
	int r = recv_frame(l->fd, -1, &f, err);
	if (r < 0)
		return r;
	const char *op = json_string_value(json_object_get(f.msg, "op"));
	const char *s = json_string_value(json_object_get(f.msg, "session"));
	json_t *early = json_object_get(f.msg, "early");
	size_t n = (size_t)json_integer_value(early);
	if (!op || strcmp(op, "wake") != 0 || !s || strlen(s) >= CR_LOG_ID_MAX ||
	    (early && (!json_is_integer(early) || n > CR_LOG_GROUP_MAX))) {
		frame_clear(&f);
		return cr_error_set(err, EPROTO, "brain link: expected a wake order");
	}
	/* the tail: the early events, then the prefetched ones */
	json_t *events = json_object_get(f.msg, "events"),
	       *config = json_object_get(f.msg, "config");
	size_t m = (size_t)json_integer_value(events);
	if ((events && (!json_is_integer(events) || m > EVENTS_PAGE)) ||
	    (config && (!json_is_object(json_object_get(config, "agent")) ||
			!json_is_object(json_object_get(config, "environment"))))) {
		frame_clear(&f);
		return cr_error_set(err, EPROTO, "brain link: a malformed wake order");
	}
	prefetch_clear(&l->pre);
	struct cr_log_event *v = calloc(n + m + 1, sizeof(*v));
	if (!v)
		r = cr_error_set(err, ENOMEM, "brain link: out of memory");
	else if ((r = parse_events(&f, n + m, v, err)) < 0)
		cr_log_events_free(v, n + m);
	if (r == 0 && events) {
		l->pre.ev = m ? calloc(m, sizeof(*v)) : NULL;
		if (m && !l->pre.ev) {
			cr_log_events_free(v, n + m);
			r = cr_error_set(err, ENOMEM, "brain link: out of memory");
		} else {
			if (m)
				memcpy(l->pre.ev, v + n, m * sizeof(*v));
			l->pre.n = m;
			l->pre.have_events = true;
			l->pre.more = json_is_true(json_object_get(f.msg, "more"));
		}
	}
	if (r == 0) {
		snprintf(ret_session, CR_LOG_ID_MAX, "%s", s);
		snprintf(l->pre.session, sizeof(l->pre.session), "%s", s);
		if (config) {
			l->pre.agent = json_incref(json_object_get(config, "agent"));
			l->pre.env = json_incref(json_object_get(config, "environment"));
		}
	}
	frame_clear(&f);
	if (r < 0)
		return r;
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*ret_early = v;
	*ret_n_early = n;
	return 0;
}

int cr_brainlink_done(struct cr_brainlink *l, const char *session, int result,
		      const struct cr_orch_stats *stats, const char *msg, struct cr_error *err)
{
	json_t *m = json_pack("{s:s, s:s, s:i, s:I, s:s}", "op", "done", "session", session,
			      "result", result, "last_seq", (json_int_t)stats->last_seq, "message",
			      msg ? msg : "");
	if (!m)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	int r = send_frame(l->fd, m, NULL, 0, err);
	json_decref(m);
	return r;
}

/* --- corrald's side ------------------------------------------------------------------------ */

static int reply_error(int fd, int r, const struct cr_error *e, struct cr_error *err)
{
	json_t *m = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", -r, "message", e->msg);
	if (!m)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	int w = send_frame(fd, m, NULL, 0, err);
	json_decref(m);
	return w;
}

static int reply(int fd, json_t *m, struct cr_error *err)
{
	if (!m)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	int r = send_frame(fd, m, NULL, 0, err);
	json_decref(m);
	return r;
}

/* How many of ev[0..n) go in one frame of at most budget bytes of them (at least one: an event
 * is at most the log's largest payload, far below a frame). */
static size_t events_fit(const struct cr_log_event *ev, size_t n, size_t budget)
{
	size_t k = 0, len = 0;
	for (; k < n; k++) {
		len += sizeof(struct wire_event) + strlen(ev[k].id) + strlen(ev[k].type) +
		       ev[k].payload_len;
		if (len > budget && k > 0)
			break;
	}
	return k;
}

/* The tail that carries events ev[0..n) (parse_events reads it back); *ret is malloc'ed. */
static int events_tail(const struct cr_log_event *ev, size_t n, char **ret, size_t *ret_len,
		       struct cr_error *err)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += sizeof(struct wire_event) + strlen(ev[i].id) + strlen(ev[i].type) +
		       ev[i].payload_len;
	char *tail = malloc(len ? len : 1);
	if (!tail)
		return cr_error_set(err, ENOMEM, "brain link: out of memory");
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t il = strlen(ev[i].id), tl = strlen(ev[i].type);
		struct wire_event w = {
			.seq = be64(ev[i].seq),
			.time_ns = be64(ev[i].time_ns),
			.processed_ns = be64(ev[i].processed_ns),
			.epoch = be64(ev[i].epoch),
			.id_len = htonl((uint32_t)il),
			.type_len = htonl((uint32_t)tl),
			.payload_len = htonl((uint32_t)ev[i].payload_len),
		};
		memcpy(tail + off, &w, sizeof(w));
		off += sizeof(w);
		memcpy(tail + off, ev[i].id, il);
		off += il;
		memcpy(tail + off, ev[i].type, tl);
		off += tl;
		memcpy(tail + off, ev[i].payload, ev[i].payload_len);
		off += ev[i].payload_len;
	}
	*ret = tail;
	*ret_len = len;
	return 0;
}

static int serve_events(int fd, const struct cr_platform *pf, const char *session, json_t *req,
			struct cr_error *err)
{
	uint64_t after = (uint64_t)json_integer_value(json_object_get(req, "after"));
	size_t limit = (size_t)json_integer_value(json_object_get(req, "limit"));
	if (limit == 0 || limit > EVENTS_PAGE)
		limit = EVENTS_PAGE; /* (a frame is bounded) */
	struct cr_log_event *ev = NULL;
	size_t n = 0;
	struct cr_error e;
	int r = pf->ops->events(pf->p, session, after, limit, &ev, &n, &e);
	if (r < 0)
		return reply_error(fd, r, &e, err);
	size_t k = events_fit(ev, n, PAGE_BYTES);
	char *tail;
	size_t len;
	r = events_tail(ev, k, &tail, &len, err);
	cr_log_events_free(ev, n);
	if (r < 0)
		return r;
	json_t *m = json_pack("{s:b, s:I, s:b}", "ok", 1, "n", (json_int_t)k, "more", k < n);
	r = m ? send_frame(fd, m, tail, len, err) : cr_error_set(err, ENOMEM, "out of memory");
	json_decref(m);
	free(tail);
	return r;
}

static int serve_append(int fd, const struct cr_platform *pf, const char *session, uint64_t epoch,
			json_t *req, struct cr_error *err)
{
	json_t *list = json_object_get(req, "events");
	size_t n = json_array_size(list);
	struct cr_harness_event *ev = calloc(n ? n : 1, sizeof(*ev));
	struct cr_log_appended *got = calloc(n ? n : 1, sizeof(*got));
	int r = 0;
	if (!ev || !got) {
		r = cr_error_set(err, ENOMEM, "brain link: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(list, i);
		ev[i].type = (char *)json_string_value(json_object_get(e, "type"));
		ev[i].payload = json_object_get(e, "payload");
		const char *id = json_string_value(json_object_get(e, "id"));
		if (id && *id && cr_id_valid("sevt_", id))
			snprintf(ev[i].id, sizeof(ev[i].id), "%s", id);
		if (!ev[i].type || !json_is_object(ev[i].payload) || (id && *id && !ev[i].id[0])) {
			struct cr_error e2;
			cr_error_set(&e2, EINVAL, "brain link: an append of a malformed event");
			r = reply_error(fd, -EINVAL, &e2, err);
			goto out;
		}
	}
	struct cr_error e;
	r = pf->ops->append(pf->p, session, epoch, ev, n, got, &e);
	if (r < 0) {
		r = reply_error(fd, r, &e, err);
		goto out;
	}
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:I}", "seq",
							 (json_int_t)got[i].seq, "id", got[i].id,
							 "time_ns", (json_int_t)got[i].time_ns,
							 "epoch", (json_int_t)got[i].epoch)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	r = reply(fd, arr ? json_pack("{s:b, s:o}", "ok", 1, "appended", arr) : NULL, err);
out:
	free(ev);
	free(got);
	return r;
}

static int serve_one(int fd, const struct cr_platform *pf, const char *op, json_t *req,
		     struct cr_error *err)
{
	const char *session = json_string_value(json_object_get(req, "session"));
	uint64_t epoch = (uint64_t)json_integer_value(json_object_get(req, "epoch"));
	struct cr_error e;
	int r;
	if (!session)
		return cr_error_set(err, EPROTO, "brain link: a request without a session");
	if (strcmp(op, "events") == 0)
		return serve_events(fd, pf, session, req, err);
	if (strcmp(op, "append") == 0)
		return serve_append(fd, pf, session, epoch, req, err);
	if (strcmp(op, "acquire") == 0) {
		uint64_t got = 0;
		r = pf->ops->acquire(pf->p, session, &got, &e);
		return r < 0 ? reply_error(fd, r, &e, err)
			     : reply(fd, json_pack("{s:b, s:I}", "ok", 1, "epoch", (json_int_t)got),
				     err);
	}
	if (strcmp(op, "mark") == 0) {
		json_t *list = json_object_get(req, "seqs");
		size_t n = json_array_size(list);
		_cleanup_free_ uint64_t *seqs = calloc(n ? n : 1, sizeof(*seqs));
		if (!seqs)
			return cr_error_set(err, ENOMEM, "brain link: out of memory");
		for (size_t i = 0; i < n; i++)
			seqs[i] = (uint64_t)json_integer_value(json_array_get(list, i));
		r = pf->ops->mark(pf->p, session, epoch, seqs, n, &e);
		return r < 0 ? reply_error(fd, r, &e, err)
			     : reply(fd, json_pack("{s:b}", "ok", 1), err);
	}
	if (strcmp(op, "tool") == 0) {
		const char *id = json_string_value(json_object_get(req, "call_id"));
		const char *name = json_string_value(json_object_get(req, "name"));
		const char *input = json_string_value(json_object_get(req, "input"));
		if (!id || !name || !input)
			return cr_error_set(err, EPROTO, "brain link: a malformed tool request");
		struct cr_tool_result res = { 0 };
		r = pf->ops->tool(pf->p, session, epoch, id, name, input, &res, &e);
		if (r < 0)
			return reply_error(fd, r, &e, err);
		r = reply(fd,
			  json_pack("{s:b, s:s, s:b}", "ok", 1, "content",
				    res.content ? res.content : "", "is_error", res.is_error),
			  err);
		cr_tool_result_clear(&res);
		return r;
	}
	if (strcmp(op, "config") == 0) {
		json_t *agent = NULL, *env = NULL;
		r = pf->ops->config(pf->p, session, &agent, &env, &e);
		return r < 0 ? reply_error(fd, r, &e, err)
			     : reply(fd,
				     json_pack("{s:b, s:o, s:o}", "ok", 1, "agent", agent,
					       "environment", env),
				     err);
	}
	if (strcmp(op, "heartbeat") == 0) {
		r = pf->ops->heartbeat(pf->p, session, epoch, &e);
		return r < 0 ? reply_error(fd, r, &e, err)
			     : reply(fd, json_pack("{s:b}", "ok", 1), err);
	}
	return cr_error_set(err, EPROTO, "brain link: unknown request \"%s\"", op);
}

/* A preview is passed on if it is a JSON object and the platform takes previews; never
 * answered, and a malformed one is dropped (previews are best effort). */
static void serve_preview(const struct cr_platform *pf, const struct frame *f)
{
	const char *session = json_string_value(json_object_get(f->msg, "session"));
	if (!session || !pf->ops->preview || f->tail_len == 0 || f->tail_len > PREVIEW_MAX)
		return;
	_cleanup_free_ char *json = strndup(f->tail, f->tail_len);
	if (json && strlen(json) == f->tail_len &&
	    cr_json_check(json, f->tail_len, NULL) == CR_JSON_OBJECT)
		pf->ops->preview(pf->p, session, json);
}

/* The wake order, with the early events and what the wake reads first: the session's
 * configuration and its first page of events (each left out when it cannot be read: the worker
 * then asks, and hears why). */
static int send_wake(int fd, const char *session, const struct cr_log_event *early, size_t n_early,
		     const struct cr_platform *pf, struct cr_error *err)
{
	struct cr_error e;
	json_t *agent = NULL, *env = NULL;
	struct cr_log_event *ev = NULL;
	size_t n = 0;
	/* (the configuration first: it waits for an eager sandbox being made, whose events the
	 * read then sees) */
	bool have_config = pf->ops->config(pf->p, session, &agent, &env, &e) == 0;
	bool have_events = pf->ops->events(pf->p, session, 0, EVENTS_PAGE, &ev, &n, &e) == 0;
	size_t k = have_events ? events_fit(ev, n, PREFETCH_BYTES) : 0;
	struct cr_log_event *all = calloc(n_early + k + 1, sizeof(*all));
	json_t *m = json_pack("{s:s, s:s, s:I}", "op", "wake", "session", session, "early",
			      (json_int_t)n_early);
	int r = all && m ? 0 : -1;
	if (r == 0 && have_events)
		r = json_object_set_new(m, "events", json_integer((json_int_t)k)) ||
		    json_object_set_new(m, "more", json_boolean(k < n || n == EVENTS_PAGE));
	if (r == 0 && have_config)
		r = json_object_set_new(
			m, "config", json_pack("{s:O, s:O}", "agent", agent, "environment", env));
	if (r < 0)
		r = cr_error_set(err, ENOMEM, "brain link: out of memory");
	char *tail = NULL;
	size_t len = 0;
	if (r == 0) {
		if (n_early)
			memcpy(all, early, n_early * sizeof(*all));
		if (k)
			memcpy(all + n_early, ev, k * sizeof(*all));
		r = events_tail(all, n_early + k, &tail, &len, err);
	}
	if (r == 0)
		r = send_frame(fd, m, tail, len, err);
	free(tail);
	free(all); /* (the payloads are ev's and early's) */
	json_decref(m);
	json_decref(agent);
	json_decref(env);
	cr_log_events_free(ev, n);
	return r;
}

int cr_brainlink_serve(int fd, const char *session, const struct cr_log_event *early,
		       size_t n_early, const struct cr_platform *platform, int silence_ms,
		       struct cr_brainlink_done *ret, struct cr_error *err)
{
	int r = send_wake(fd, session, early, n_early, platform, err);
	while (r == 0) {
		struct frame f;
		r = recv_frame(fd, silence_ms, &f, err);
		if (r < 0)
			break;
		const char *op = json_string_value(json_object_get(f.msg, "op"));
		if (op && strcmp(op, "done") == 0) {
			*ret = (struct cr_brainlink_done){
				.result = (int)json_integer_value(json_object_get(f.msg, "result")),
				.last_seq = (uint64_t)json_integer_value(
					json_object_get(f.msg, "last_seq")),
			};
			snprintf(ret->message, sizeof(ret->message), "%s",
				 json_string_value(json_object_get(f.msg, "message")) ?: "");
			frame_clear(&f);
			return 0;
		}
		if (op && strcmp(op, "preview") == 0) {
			serve_preview(platform, &f);
			frame_clear(&f);
			continue;
		}
		r = op ? serve_one(fd, platform, op, f.msg, err)
		       : cr_error_set(err, EPROTO, "brain link: a request without an op");
		frame_clear(&f);
	}
	return r;
}
