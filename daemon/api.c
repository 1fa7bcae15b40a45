/* daemon/api: corrald's HTTP API in the shape of Claude Managed Agents (DESIGN.md, "corrald and
 * the API"; docs/api.md), on libmicrohttpd with a thread per connection (an SSE stream blocks
 * in its callback). It owns the transports (the Unix socket, checked with SO_PEERCRED, and the
 * optional loopback TCP listener, which demands the key in <state_dir>/api-key), the routing,
 * the validation of what clients send, the rendering of resources and log events, and the
 * stream. Resources live in the store (daemon/api_store.c); everything a session does lives in
 * the log, which the API only appends client events to (pending) and reads. It never runs a
 * harness step and never answers a 5xx once an append is durable: the SDK would post again. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <search.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "corral/api.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/crc32c.h"
#include "corral/id.h"
#include "daemon/api-internal.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define PING_MS_DEFAULT 15000
#define WAIT_SLICE_MS 250 /* how long a stream sleeps before it looks for a stop or delete */
#define PREVIEW_RING 256 /* previews a session keeps for its streams to catch up on */
#define PREVIEW_CLOSED 8 /* previewed events a stream remembers having sent in full */
#define REQUEST_TIMEOUT_S 60 /* an idle connection is closed after this long */
#define CONNECTION_LIMIT 512
#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 100
#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 1000
#define EVENTS_PER_POST CR_LOG_GROUP_MAX /* one cr_log_append_all() unit */
#define READ_CHUNK 256 /* events read from the log at a time */
#define METADATA_KEYS_MAX 16
#define METADATA_KEY_MAX 64
#define METADATA_VALUE_MAX 512
#define KEY_PREFIX "sk-corral-"
#define KEY_CHARS 43 /* base64url of 32 bytes, unpadded */

/* The configurations cr_api_session_config gave (or a create made), so that a session's wake,
 * which reads its configuration first, finds it without two store reads and a parse: on this
 * VM those took 0.1-0.2 ms of the path from a post to the model call. Direct-mapped by the
 * session's id; an entry holds only while gen is the cache's, which a change to any session or
 * environment moves on (a deleted session is told by its state's flag). */
#define CONFIG_CACHE_SLOTS 256

struct config_entry {
	char session[CR_LOG_ID_MAX];
	json_t *agent, *environment;
	uint64_t gen;
};

struct config_cache {
	pthread_mutex_t lock;
	uint64_t gen;
	struct config_entry e[CONFIG_CACHE_SLOTS];
};

/* One MHD daemon per transport; its closure says which. */
struct listener {
	struct cr_api *api;
	bool tcp;
};

enum session_status {
	ST_IDLE,
	ST_RUNNING,
	ST_RESCHEDULING,
	ST_TERMINATED
};

/* What the API folds from a session's log for its status, usage and stats: a cache, caught up
 * with the events after last_seq whenever it is read. Entries live until cr_api_stop. */
struct session_state {
	char id[CR_LOG_ID_MAX];
	uint64_t last_seq;
	enum session_status status;
	uint64_t running_since_ns; /* 0: not running */
	uint64_t active_ns; /* closed stretches of running */
	uint64_t ended_ns; /* when it terminated (0: it has not) */
	uint64_t input_tokens, output_tokens, cache_read, cache_creation, cache_5m, cache_1h;
	atomic_bool deleted; /* streams end */
	/* Previews (cr_api_preview), numbered from 1: frame k is in previews[k % PREVIEW_RING]
	 * while k > n_previews - PREVIEW_RING; the ring is made at the first. Guarded by the
	 * API's states_lock. */
	struct preview_frame *previews;
	uint64_t n_previews;
};

struct preview_frame {
	char *json;
	char kind[16]; /* "event_start" or "event_delta": the SSE event's name */
	char of_type[CR_LOG_TYPE_MAX]; /* the previewed event's type */
	char of_id[CR_LOG_ID_MAX]; /* and its id */
};

static void state_free(void *p)
{
	struct session_state *s = p;
	if (s->previews)
		for (size_t i = 0; i < PREVIEW_RING; i++)
			free(s->previews[i].json);
	free(s->previews);
	free(s);
}

struct cr_api {
	struct cr_log *log;
	struct cr_api_hooks hooks;
	struct api_store *store;
	char *state_dir;
	char *socket_path;
	size_t max_body;
	int ping_ms;
	char key[sizeof(KEY_PREFIX) + KEY_CHARS];
	bool have_group;
	gid_t group;
	struct listener unix_listener, tcp_listener;
	struct MHD_Daemon *unix_daemon, *tcp_daemon;
	dev_t sock_dev; /* the socket we bound, so that stop removes only ours */
	ino_t sock_ino;
	unsigned port;
	atomic_bool stopping;
	pthread_mutex_t states_lock;
	void *states; /* tsearch tree of struct session_state */
	struct config_cache configs;
};

/* One HTTP request, from its first callback to MHD's completion notice. */
struct request {
	struct cr_api *api;
	bool tcp;
	char id[CR_LOG_ID_MAX]; /* "req_..." */
	char *body;
	size_t len, cap;
	bool too_large;
	bool answered; /* a response is queued: the rest of the body, if any, is dropped */
};

struct problem {
	unsigned status;
	char msg[512];
};

/* What a handler works with, and leaves behind. */
struct ctx {
	struct cr_api *api;
	struct MHD_Connection *conn;
	struct request *req;
	const char *method;
	const char *seg[8]; /* the path's segments after /v1/ */
	size_t nseg;
	char *segbuf; /* (holds seg's strings) */
	const char *path; /* the URL's path */
	json_t *body; /* the request's JSON object; NULL without a body */
	json_t *reply; /* 200's body, owned */
	struct problem prob;
	const char *allow; /* for a 405: the methods there are (in allow_buf) */
	char allow_buf[64];
	char wake[CR_LOG_ID_MAX]; /* a session to wake once the answer is queued */
	uint64_t wake_through; /* the last seq of the events that wake it (0: none) */
	bool queued; /* the handler queued its own response (the stream) */
};

/* (json_decrefp is jansson's) */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* --- small things ------------------------------------------------------------------------- */

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* RFC 3339 in UTC with milliseconds: 2026-11-28T14:01:44.123Z */
static void format_time(uint64_t ns, char out[32])
{
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ns % 1000000000u / 1000000u));
}

static json_t *json_time(uint64_t ns)
{
	if (!ns)
		return json_null();
	char t[32];
	format_time(ns, t);
	return json_string(t);
}

static int digits(const char **p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	*ret = v;
	return 0;
}

/* Parses an RFC 3339 time (2026-11-28T14:01:44.123Z, or with an offset) into ns. */
static int parse_time(const char *s, uint64_t *ret)
{
	struct tm tm = { 0 };
	const char *p = s;
	int y, mo, d, h, mi, sec;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
	    digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	uint64_t frac = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		for (; isdigit((unsigned char)*p); p++, n++)
			if (n < 9)
				frac = frac * 10 + (uint64_t)(*p - '0');
		if (n == 0)
			return -1;
		for (; n < 9; n++)
			frac *= 10;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
			return -1;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || t - offset < 0)
		return -1;
	*ret = (uint64_t)(t - offset) * 1000000000u + frac;
	return 0;
}

/* A fresh public id ("agent_...", "req_..."). */
static int make_id(const char *prefix, char out[CR_LOG_ID_MAX], struct cr_error *err)
{
	uint8_t raw[CR_ID_RAW];
	int r = cr_id_random(raw, err);
	if (r < 0)
		return r;
	return cr_id_format(prefix, raw, out, CR_LOG_ID_MAX);
}

/* Sets the problem a handler answers with; returns -1 for "return bad(...)". */
__attribute__((format(printf, 3, 4))) static int bad(struct ctx *c, unsigned status,
						     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->prob.msg, sizeof(c->prob.msg), fmt, ap);
	va_end(ap);
	c->prob.status = status;
	return -1;
}

/* A store or log failure that is not the client's doing. */
static int internal(struct ctx *c, const struct cr_error *err)
{
	fprintf(stderr, "corrald: api: %s %s: %s\n", c->method, c->path ? c->path : "?", err->msg);
	return bad(c, 500, "%s", err->msg);
}

static const char *error_type(unsigned status)
{
	switch (status) {
	case 400:
	case 405:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 409:
		return "conflict_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 529:
		return "overloaded_error";
	default:
		return "api_error";
	}
}

/* --- JSON fields ---------------------------------------------------------------------------- */

enum kind {
	K_STRING,
	K_OBJECT,
	K_ARRAY,
	K_INT,
	K_BOOL
};
enum {
	F_REQUIRED = 1,
	F_NULLABLE = 2
};

static bool is_kind(const json_t *v, enum kind k)
{
	switch (k) {
	case K_STRING:
		return json_is_string(v);
	case K_OBJECT:
		return json_is_object(v);
	case K_ARRAY:
		return json_is_array(v);
	case K_INT:
		return json_is_integer(v);
	case K_BOOL:
		return json_is_boolean(v);
	}
	return false;
}

static const char *kind_name(enum kind k)
{
	static const char *const names[] = { "a string", "an object", "an array", "an integer",
					     "a boolean" };
	return names[k];
}

/* The dotted path of a field for messages: "events[0].content" ("" where: just key). */
static void field_path(char *out, size_t size, const char *where, const char *key)
{
	snprintf(out, size, "%s%s%s", where, *where && key[0] != '[' ? "." : "", key);
}

/* Looks key up in obj and checks its kind: 1 with *ret (borrowed) when present and not null,
 * 0 when absent or null (null is accepted only with F_NULLABLE), -1 with the problem set. */
static int field(struct ctx *c, const json_t *obj, const char *where, const char *key, enum kind k,
		 unsigned flags, json_t **ret)
{
	char path[160];
	json_t *v = json_object_get(obj, key);
	*ret = NULL;
	if (!v || (json_is_null(v) && (flags & F_NULLABLE))) {
		if (flags & F_REQUIRED) {
			field_path(path, sizeof(path), where, key);
			return bad(c, 400, "%s: field required", path);
		}
		return 0;
	}
	if (!is_kind(v, k)) {
		field_path(path, sizeof(path), where, key);
		return bad(c, 400, "%s: expected %s%s", path, kind_name(k),
			   flags & F_NULLABLE ? " or null" : "");
	}
	*ret = v;
	return 1;
}

/* A string field, by value (NULL when absent or null). */
static int string_field(struct ctx *c, const json_t *obj, const char *where, const char *key,
			unsigned flags, const char **ret)
{
	json_t *v;
	int r = field(c, obj, where, key, K_STRING, flags, &v);
	*ret = r > 0 ? json_string_value(v) : NULL;
	return r;
}

/* A string that must be one of choices (NULL-terminated). */
static int choice_field(struct ctx *c, const json_t *obj, const char *where, const char *key,
			unsigned flags, const char *const *choices, const char **ret)
{
	int r = string_field(c, obj, where, key, flags, ret);
	if (r <= 0)
		return r;
	for (const char *const *ch = choices; *ch; ch++)
		if (strcmp(*ret, *ch) == 0)
			return 1;
	char path[160], list[256] = "";
	size_t n = 0;
	for (const char *const *ch = choices; *ch; ch++)
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s\"%s\"",
				      ch == choices ? "" : ", ", *ch);
	field_path(path, sizeof(path), where, key);
	return bad(c, 400, "%s: \"%.64s\" is not one of %s", path, *ret, list);
}

/* Sets key of out to a copy of a string field (null when absent or null). */
static int copy_string(struct ctx *c, json_t *out, const json_t *in, const char *where,
		       const char *key, unsigned flags)
{
	json_t *v;
	int r = field(c, in, where, key, K_STRING, flags, &v);
	if (r < 0)
		return r;
	json_object_set_new(out, key, r > 0 ? json_copy(v) : json_null());
	return 0;
}

/* An array whose every element is a string. */
static int string_array(struct ctx *c, const json_t *v, const char *where)
{
	size_t i;
	json_t *e;
	json_array_foreach (v, i, e)
		if (!json_is_string(e))
			return bad(c, 400, "%s[%zu]: expected a string", where, i);
	return 0;
}

/* Metadata: an object of strings within the public limits. With base (an update), a patch:
 * a key set to null (or, with empty_deletes, "") is removed, others are set. *ret is new. */
static int metadata(struct ctx *c, const json_t *v, const char *where, const json_t *base,
		    bool empty_deletes, json_t **ret)
{
	if (!json_is_object(v))
		return bad(c, 400, "%s: expected an object of strings", where);
	_cleanup_json_ json_t *out = base ? json_deep_copy(base) : json_object();
	const char *k;
	json_t *val;
	json_object_foreach ((json_t *)v, k, val) {
		if (base && (json_is_null(val) ||
			     (empty_deletes && json_is_string(val) && !json_string_length(val)))) {
			json_object_del(out, k);
			continue;
		}
		if (!json_is_string(val))
			return bad(c, 400, "%s.%.64s: expected a string", where, k);
		if (!*k || strlen(k) > METADATA_KEY_MAX)
			return bad(c, 400, "%s: keys must be 1 to %d characters", where,
				   METADATA_KEY_MAX);
		if (json_string_length(val) > METADATA_VALUE_MAX)
			return bad(c, 400, "%s.%.64s: values must be at most %d characters", where,
				   k, METADATA_VALUE_MAX);
		json_object_set(out, k, val);
	}
	if (json_object_size(out) > METADATA_KEYS_MAX)
		return bad(c, 400, "%s: at most %d keys", where, METADATA_KEYS_MAX);
	*ret = TAKE_PTR(out);
	return 0;
}

/* --- query strings -------------------------------------------------------------------------- */

static const char *query(struct ctx *c, const char *key)
{
	return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, key);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	size_t n = strlen(s);
	if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
		return -1;
	*ret = strtoull(s, NULL, 10);
	return 0;
}

static int query_limit(struct ctx *c, size_t def, size_t max, size_t *ret)
{
	const char *s = query(c, "limit");
	uint64_t v = def;
	if (s && (parse_u64(s, &v) < 0 || v < 1 || v > max))
		return bad(c, 400, "limit: want an integer from 1 to %zu", max);
	*ret = (size_t)v;
	return 0;
}

static int query_bool(struct ctx *c, const char *key, bool *ret)
{
	const char *s = query(c, key);
	if (!s)
		return 0;
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*ret = true;
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*ret = false;
	else
		return bad(c, 400, "%s: want true or false", key);
	return 0;
}

/* order=asc|desc; *desc keeps its default when absent. */
static int query_order(struct ctx *c, bool *desc)
{
	const char *s = query(c, "order");
	if (!s)
		return 0;
	if (strcmp(s, "asc") == 0)
		*desc = false;
	else if (strcmp(s, "desc") == 0)
		*desc = true;
	else
		return bad(c, 400, "order: want \"asc\" or \"desc\"");
	return 0;
}

/* Cursors are "page_n<pos>" (the items past pos in the list's order) and, for the lists that
 * page both ways, "page_p<pos>" (the page before pos). Opaque to clients. */
static json_t *cursor(char dir, int64_t pos)
{
	char s[40];
	snprintf(s, sizeof(s), "page_%c%" PRId64, dir, pos);
	return json_string(s);
}

static int query_cursor(struct ctx *c, bool both_ways, int64_t *ret_pos, bool *ret_prev)
{
	const char *s = query(c, "page");
	*ret_pos = 0;
	*ret_prev = false;
	if (!s || !*s)
		return 0;
	uint64_t v;
	if (strncmp(s, "page_", 5) != 0 || (s[5] != 'n' && !(both_ways && s[5] == 'p')) ||
	    parse_u64(s + 6, &v) < 0 || v == 0 || v > INT64_MAX)
		return bad(c, 400, "page: \"%.64s\" is not a page cursor of this list", s);
	*ret_pos = (int64_t)v;
	*ret_prev = s[5] == 'p';
	return 0;
}

/* created_at[gt|gte|lt|lte] as inclusive ns bounds (0: none). */
static int query_created(struct ctx *c, uint64_t *ret_min, uint64_t *ret_max)
{
	static const char *const keys[] = { "created_at[gt]", "created_at[gte]", "created_at[lt]",
					    "created_at[lte]" };
	*ret_min = *ret_max = 0;
	for (size_t i = 0; i < CR_ARRAY_SIZE(keys); i++) {
		const char *s = query(c, keys[i]);
		uint64_t t;
		if (!s)
			continue;
		if (parse_time(s, &t) < 0)
			return bad(c, 400, "%s: \"%.64s\" is not an RFC 3339 time", keys[i], s);
		/* compared in the milliseconds the API shows: gt of a created_at shown excludes
		 * that record, whatever its nanoseconds */
		uint64_t ms = t / 1000000u;
		if (i == 2 && ms == 0)
			return bad(c, 400, "%s: before the epoch", keys[i]);
		t = i == 0   ? (ms + 1) * 1000000u
		    : i == 1 ? ms * 1000000u
		    : i == 2 ? ms * 1000000u - 1
			     : ms * 1000000u + 999999u;
		if (i < 2)
			*ret_min = t > *ret_min ? t : *ret_min;
		else
			*ret_max = !*ret_max || t < *ret_max ? t : *ret_max;
	}
	return 0;
}

/* --- session state: status, usage and stats folded from the log ---------------------------- */

static int state_cmp(const void *a, const void *b)
{
	return strcmp(((const struct session_state *)a)->id, ((const struct session_state *)b)->id);
}

/* The state of session id, made on first use; NULL when out of memory. states_lock held. */
static struct session_state *state_of(struct cr_api *api, const char *id)
{
	struct session_state key;
	snprintf(key.id, sizeof(key.id), "%s", id);
	void *found = tfind(&key, &api->states, state_cmp);
	if (found)
		return *(struct session_state **)found;
	struct session_state *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	if (!tsearch(s, &api->states, state_cmp)) {
		free(s);
		return NULL;
	}
	return s;
}

static size_t config_slot(const char *session)
{
	return cr_crc32c(0, session, strlen(session)) % CONFIG_CACHE_SLOTS;
}

static uint64_t config_gen(struct cr_api *api)
{
	pthread_mutex_lock(&api->configs.lock);
	uint64_t gen = api->configs.gen;
	pthread_mutex_unlock(&api->configs.lock);
	return gen;
}

/* A session's or an environment's configuration changed: every entry goes stale. */
static void config_changed(struct cr_api *api)
{
	pthread_mutex_lock(&api->configs.lock);
	api->configs.gen++;
	pthread_mutex_unlock(&api->configs.lock);
}

/* Keeps copies of session's configuration as read when the cache's gen was gen. */
static void config_put(struct cr_api *api, const char *session, const json_t *agent,
		       const json_t *environment, uint64_t gen)
{
	json_t *a = json_deep_copy(agent), *e = json_deep_copy(environment);
	struct config_entry *x = &api->configs.e[config_slot(session)];
	pthread_mutex_lock(&api->configs.lock);
	if (a && e && gen == api->configs.gen) {
		snprintf(x->session, sizeof(x->session), "%s", session);
		x->gen = gen;
		json_t *oa = x->agent, *oe = x->environment;
		x->agent = a;
		x->environment = e;
		a = oa;
		e = oe;
	}
	pthread_mutex_unlock(&api->configs.lock);
	json_decref(a);
	json_decref(e);
}

/* Copies of session's configuration from the cache: false when it has none that holds. */
static bool config_get(struct cr_api *api, const char *session, json_t **ret_agent,
		       json_t **ret_environment)
{
	struct session_state key;
	snprintf(key.id, sizeof(key.id), "%s", session);
	pthread_mutex_lock(&api->states_lock);
	void *found = tfind(&key, &api->states, state_cmp); /* (a delete makes its state) */
	bool deleted = found && atomic_load(&(*(struct session_state **)found)->deleted);
	pthread_mutex_unlock(&api->states_lock);
	if (deleted) /* (the store says how) */
		return false;
	json_t *a = NULL, *e = NULL;
	struct config_entry *x = &api->configs.e[config_slot(session)];
	pthread_mutex_lock(&api->configs.lock);
	if (x->agent && x->gen == api->configs.gen && strcmp(x->session, session) == 0) {
		a = json_deep_copy(x->agent);
		e = json_deep_copy(x->environment);
	}
	pthread_mutex_unlock(&api->configs.lock);
	if (!a || !e) {
		json_decref(a);
		json_decref(e);
		return false;
	}
	*ret_agent = a;
	*ret_environment = e;
	return true;
}

static uint64_t usage_field(const json_t *u, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(u, key));
	return v > 0 ? (uint64_t)v : 0;
}

static void fold_event(struct session_state *s, const struct cr_log_event *ev)
{
	static const struct {
		const char *type;
		enum session_status status;
	} statuses[] = {
		{ "session.status_running", ST_RUNNING },
		{ "session.status_idle", ST_IDLE },
		{ "session.status_rescheduled", ST_RESCHEDULING },
		{ "session.status_terminated", ST_TERMINATED },
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(statuses); i++) {
		if (strcmp(ev->type, statuses[i].type) != 0)
			continue;
		if (statuses[i].status == ST_RUNNING) {
			if (!s->running_since_ns)
				s->running_since_ns = ev->time_ns;
		} else if (s->running_since_ns) {
			if (ev->time_ns > s->running_since_ns)
				s->active_ns += ev->time_ns - s->running_since_ns;
			s->running_since_ns = 0;
		}
		s->status = statuses[i].status;
		s->ended_ns = s->status == ST_TERMINATED ? ev->time_ns : 0;
		return;
	}
	if (strcmp(ev->type, "span.model_request_end") != 0)
		return;
	json_error_t je;
	_cleanup_json_ json_t *p = json_loadb(ev->payload, ev->payload_len, 0, &je);
	const json_t *u = json_object_get(p, "model_usage");
	if (!json_is_object(u))
		return;
	s->input_tokens += usage_field(u, "input_tokens");
	s->output_tokens += usage_field(u, "output_tokens");
	s->cache_read += usage_field(u, "cache_read_input_tokens");
	uint64_t created = usage_field(u, "cache_creation_input_tokens");
	s->cache_creation += created;
	/* the Messages API's breakdown by lifetime when the worker kept it, else all 5 minutes */
	const json_t *cc = json_object_get(u, "cache_creation");
	if (json_is_object(cc)) {
		s->cache_5m += usage_field(cc, "ephemeral_5m_input_tokens");
		s->cache_1h += usage_field(cc, "ephemeral_1h_input_tokens");
	} else {
		s->cache_5m += created;
	}
}

/* Folds the events s has not seen yet. states_lock held. */
static int catch_up(struct cr_api *api, struct session_state *s, struct cr_error *err)
{
	for (;;) {
		struct cr_log_event *ev = NULL;
		size_t n = 0;
		int r = cr_log_get_events(api->log, s->id, s->last_seq, READ_CHUNK, &ev, &n, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			fold_event(s, &ev[i]);
			s->last_seq = ev[i].seq;
		}
		cr_log_events_free(ev, n);
		if (n < READ_CHUNK)
			return 0;
	}
}

/* A caught-up copy of session id's state (a fresh one when it cannot be read). */
static void session_snapshot(struct cr_api *api, const char *id, struct session_state *ret)
{
	struct cr_error err;
	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&api->states_lock);
	struct session_state *s = state_of(api, id);
	if (s) {
		if (catch_up(api, s, &err) < 0)
			fprintf(stderr, "corrald: api: session %s: %s\n", id, err.msg);
		memcpy(ret, s, sizeof(*ret));
	}
	pthread_mutex_unlock(&api->states_lock);
}

static const char *status_name(enum session_status st)
{
	static const char *const names[] = { "idle", "running", "rescheduling", "terminated" };
	return names[st];
}

/* --- rendering ------------------------------------------------------------------------------ */

/* Copies key of body (or null) into out: the store's bodies always have every key, but a body
 * from an older corral may lack a newer one. */
static void copy_key(json_t *out, const json_t *body, const char *key)
{
	json_t *v = json_object_get(body, key);
	json_object_set_new(out, key, v ? json_incref(v) : json_null());
}

static const char *const agent_keys[] = { "name",      "description", "system",
					  "model",     "tools",	      "mcp_servers",
					  "skills",    "metadata",    "execution_identity",
					  "multiagent" };

/* BetaManagedAgentsAgent, of one version. */
static json_t *render_agent(const struct api_record *rec)
{
	json_t *out = json_object();
	json_object_set_new(out, "id", json_string(rec->id));
	json_object_set_new(out, "type", json_string("agent"));
	json_object_set_new(out, "version", json_integer(rec->version));
	for (size_t i = 0; i < CR_ARRAY_SIZE(agent_keys); i++)
		copy_key(out, rec->body, agent_keys[i]);
	json_object_set_new(out, "created_at", json_time(rec->created_ns));
	json_object_set_new(out, "updated_at", json_time(rec->updated_ns));
	json_object_set_new(out, "archived_at", json_time(rec->archived_ns));
	return out;
}

/* BetaManagedAgentsSessionAgent: the agent a session pins (its version's configuration). */
static json_t *render_session_agent(const struct api_record *rec)
{
	json_t *out = json_object();
	json_object_set_new(out, "id", json_string(rec->id));
	json_object_set_new(out, "type", json_string("agent"));
	json_object_set_new(out, "version", json_integer(rec->version));
	for (size_t i = 0; i < CR_ARRAY_SIZE(agent_keys); i++)
		if (strcmp(agent_keys[i], "metadata") != 0)
			copy_key(out, rec->body, agent_keys[i]);
	return out;
}

/* BetaEnvironment. */
static json_t *render_environment(const struct api_record *rec)
{
	json_t *out = json_object();
	json_object_set_new(out, "id", json_string(rec->id));
	json_object_set_new(out, "type", json_string("environment"));
	copy_key(out, rec->body, "name");
	copy_key(out, rec->body, "description");
	copy_key(out, rec->body, "config");
	copy_key(out, rec->body, "metadata");
	copy_key(out, rec->body, "scope");
	json_object_set_new(out, "created_at", json_time(rec->created_ns));
	json_object_set_new(out, "updated_at", json_time(rec->updated_ns));
	json_object_set_new(out, "archived_at", json_time(rec->archived_ns));
	return out;
}

/* BetaManagedAgentsSession: the store's fields and what the log says of it now. */
static json_t *render_session(struct cr_api *api, const struct api_record *rec)
{
	struct session_state s;
	session_snapshot(api, rec->id, &s);
	uint64_t now = now_realtime_ns();
	uint64_t active = s.active_ns;
	if (s.running_since_ns && now > s.running_since_ns)
		active += now - s.running_since_ns;
	uint64_t end = s.ended_ns ? s.ended_ns : now;
	double duration = end > rec->created_ns ? (double)(end - rec->created_ns) / 1e9 : 0;

	json_t *out = json_object();
	json_object_set_new(out, "id", json_string(rec->id));
	json_object_set_new(out, "type", json_string("session"));
	json_object_set_new(out, "status", json_string(status_name(s.status)));
	copy_key(out, rec->body, "agent");
	json_object_set_new(out, "environment_id", json_string(rec->environment));
	copy_key(out, rec->body, "title");
	copy_key(out, rec->body, "metadata");
	copy_key(out, rec->body, "resources");
	copy_key(out, rec->body, "vault_ids");
	json_object_set_new(out, "usage",
			    json_pack("{s:I, s:I, s:I, s:{s:I, s:I}, s:I, s:f}", "input_tokens",
				      (json_int_t)s.input_tokens, "output_tokens",
				      (json_int_t)s.output_tokens, "cache_read_input_tokens",
				      (json_int_t)s.cache_read, "cache_creation",
				      "ephemeral_5m_input_tokens", (json_int_t)s.cache_5m,
				      "ephemeral_1h_input_tokens", (json_int_t)s.cache_1h,
				      "cache_creation_input_tokens", (json_int_t)s.cache_creation,
				      "active_seconds", (double)active / 1e9));
	json_object_set_new(out, "stats",
			    json_pack("{s:f, s:f}", "active_seconds", (double)active / 1e9,
				      "duration_seconds", duration));
	json_object_set_new(out, "outcome_evaluations", json_array());
	json_object_set_new(out, "budget", json_null());
	json_object_set_new(out, "created_at", json_time(rec->created_ns));
	json_object_set_new(out, "updated_at", json_time(rec->updated_ns));
	json_object_set_new(out, "archived_at", json_time(rec->archived_ns));
	return out;
}

/* An event as the API shows it, in lists and in the stream alike: type and id, the payload's
 * fields, processed_at (null while pending) and corral's seq. The log's own fields win over a
 * payload that names them. NULL when out of memory. */
static json_t *render_event(const struct cr_log_event *ev)
{
	json_t *out = json_object();
	if (!out)
		return NULL;
	json_object_set_new(out, "type", json_string(ev->type));
	json_object_set_new(out, "id", json_string(ev->id));
	json_error_t je;
	_cleanup_json_ json_t *p = json_loadb(ev->payload, ev->payload_len, 0, &je);
	const char *k;
	json_t *v;
	json_object_foreach (p, k, v)
		if (strcmp(k, "type") && strcmp(k, "id") && strcmp(k, "processed_at") &&
		    strcmp(k, "seq"))
			json_object_set(out, k, v);
	json_object_set_new(out, "processed_at", json_time(ev->processed_ns));
	json_object_set_new(out, "seq", json_integer((json_int_t)ev->seq));
	return out;
}

/* --- agents: what clients send, made into what the API shows ------------------------------- */

static const char *const policies[] = { "always_allow", "always_ask", "auto", NULL };

/* A permission policy object, checked and copied ({"type": ...}). */
static int policy(struct ctx *c, const json_t *v, const char *where, json_t **ret)
{
	const char *type;
	if (!json_is_object(v))
		return bad(c, 400, "%s: expected an object", where);
	if (choice_field(c, v, where, "type", F_REQUIRED, policies, &type) < 0)
		return -1;
	*ret = json_pack("{s:s}", "type", type);
	return 0;
}

/* BetaManagedAgentsModelConfig from a model name or a model config. */
static int model_config(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const efforts[] = { "low", "medium", "high", "xhigh", "max", NULL };
	static const char *const speeds[] = { "standard", "fast", NULL };
	if (json_is_string(v)) {
		if (!json_string_length(v))
			return bad(c, 400, "model: must not be empty");
		*ret = json_pack("{s:O}", "id", v);
		return 0;
	}
	if (!json_is_object(v))
		return bad(c, 400, "model: expected a model name or an object with an id");
	const char *id, *effort = NULL, *speed, *geo;
	if (string_field(c, v, "model", "id", F_REQUIRED, &id) < 0)
		return -1;
	if (!*id)
		return bad(c, 400, "model.id: must not be empty");
	json_t *e = json_object_get(v, "effort");
	if (json_is_object(e)) {
		if (choice_field(c, e, "model.effort", "type", F_REQUIRED, efforts, &effort) < 0)
			return -1;
	} else if (choice_field(c, v, "model", "effort", F_NULLABLE, efforts, &effort) < 0) {
		return -1;
	}
	if (choice_field(c, v, "model", "speed", F_NULLABLE, speeds, &speed) < 0 ||
	    string_field(c, v, "model", "inference_geo", F_NULLABLE, &geo) < 0)
		return -1;
	json_t *out = json_pack("{s:s}", "id", id);
	if (effort)
		json_object_set_new(out, "effort", json_pack("{s:s}", "type", effort));
	if (speed)
		json_object_set_new(out, "speed", json_string(speed));
	if (geo)
		json_object_set_new(out, "inference_geo", json_string(geo));
	*ret = out;
	return 0;
}

/* A toolset's default_config with its defaults filled: enabled, always_allow. */
static int default_config(struct ctx *c, const json_t *tool, const char *where, json_t **ret)
{
	char path[96];
	json_t *dc, *en, *pp;
	snprintf(path, sizeof(path), "%s.default_config", where);
	if (field(c, tool, where, "default_config", K_OBJECT, F_NULLABLE, &dc) < 0 ||
	    (dc && field(c, dc, path, "enabled", K_BOOL, F_NULLABLE, &en) < 0))
		return -1;
	_cleanup_json_ json_t *pol = NULL;
	if (dc && (pp = json_object_get(dc, "permission_policy")) && !json_is_null(pp)) {
		snprintf(path, sizeof(path), "%s.default_config.permission_policy", where);
		if (policy(c, pp, path, &pol) < 0)
			return -1;
	}
	*ret = json_pack("{s:b, s:o}", "enabled", dc && en ? json_is_true(en) : true,
			 "permission_policy",
			 pol ? json_incref(pol) : json_pack("{s:s}", "type", "always_allow"));
	return 0;
}

/* A toolset's configs, each with enabled and permission_policy from default_config unless it
 * sets its own. builtin: the agent toolset (names from its list; type equals name). */
static int tool_configs(struct ctx *c, const json_t *tool, const char *where, const json_t *dc,
			bool builtin, json_t **ret)
{
	static const char *const names[] = { "bash", "edit",	  "read",	"write", "glob",
					     "grep", "web_fetch", "web_search", NULL };
	static const char *const passed[] = { "allowed_domains", "blocked_domains",
					      "max_content_tokens", "user_location" };
	json_t *configs;
	if (field(c, tool, where, "configs", K_ARRAY, F_NULLABLE, &configs) < 0)
		return -1;
	_cleanup_json_ json_t *out = json_array();
	size_t i;
	json_t *cfg;
	json_array_foreach (configs, i, cfg) {
		char path[128];
		const char *name, *type;
		json_t *en, *pp;
		snprintf(path, sizeof(path), "%s.configs[%zu]", where, i);
		if (!json_is_object(cfg))
			return bad(c, 400, "%s: expected an object", path);
		if ((builtin ? choice_field(c, cfg, path, "name", F_REQUIRED, names, &name)
			     : string_field(c, cfg, path, "name", F_REQUIRED, &name)) < 0 ||
		    string_field(c, cfg, path, "type", F_NULLABLE, &type) < 0 ||
		    field(c, cfg, path, "enabled", K_BOOL, F_NULLABLE, &en) < 0)
			return -1;
		if (builtin && type && strcmp(type, name) != 0)
			return bad(c, 400, "%s.type: \"%.64s\" is not its name \"%s\"", path, type,
				   name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(
					   json_object_get(json_array_get(out, j), "name")),
				   name) == 0)
				return bad(c, 400, "%s.name: \"%.64s\" is configured twice", path,
					   name);
		json_t *o = json_object();
		json_array_append_new(out, o);
		json_object_set_new(o, "name", json_string(name));
		if (builtin)
			json_object_set_new(o, "type", json_string(name));
		json_object_set_new(o, "enabled",
				    en ? json_incref(en)
				       : json_incref(json_object_get(dc, "enabled")));
		if ((pp = json_object_get(cfg, "permission_policy")) && !json_is_null(pp)) {
			json_t *pol;
			strncat(path, ".permission_policy", sizeof(path) - strlen(path) - 1);
			if (policy(c, pp, path, &pol) < 0)
				return -1;
			json_object_set_new(o, "permission_policy", pol);
		} else {
			json_object_set(o, "permission_policy",
					json_object_get(dc, "permission_policy"));
		}
		if (builtin && strcmp(name, "web_fetch") == 0) {
			json_t *us = json_object_get(cfg, "url_sources");
			json_object_set_new(o, "url_sources", us ? json_incref(us) : json_null());
		}
		for (size_t j = 0; builtin && j < CR_ARRAY_SIZE(passed); j++) {
			json_t *v = json_object_get(cfg, passed[j]);
			if (v && !json_is_null(v))
				json_object_set(o, passed[j], v);
		}
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int tool(struct ctx *c, const json_t *t, const char *where, json_t **ret)
{
	static const char *const types[] = { "agent_toolset_20260401", "mcp_toolset", "custom",
					     NULL };
	const char *type;
	if (!json_is_object(t))
		return bad(c, 400, "%s: expected an object", where);
	if (choice_field(c, t, where, "type", F_REQUIRED, types, &type) < 0)
		return -1;
	if (strcmp(type, "custom") == 0) {
		const char *name, *desc;
		json_t *schema;
		char path[96];
		snprintf(path, sizeof(path), "%s.input_schema", where);
		if (string_field(c, t, where, "name", F_REQUIRED, &name) < 0 ||
		    string_field(c, t, where, "description", F_REQUIRED, &desc) < 0 ||
		    field(c, t, where, "input_schema", K_OBJECT, F_REQUIRED, &schema) < 0)
			return -1;
		const char *stype;
		static const char *const object[] = { "object", NULL };
		if (!*name)
			return bad(c, 400, "%s.name: must not be empty", where);
		if (choice_field(c, schema, path, "type", F_REQUIRED, object, &stype) < 0)
			return -1;
		*ret = json_pack("{s:s, s:s, s:s, s:O}", "type", "custom", "name", name,
				 "description", desc, "input_schema", schema);
		return 0;
	}
	bool builtin = strcmp(type, "agent_toolset_20260401") == 0;
	const char *server = NULL;
	if (!builtin && string_field(c, t, where, "mcp_server_name", F_REQUIRED, &server) < 0)
		return -1;
	_cleanup_json_ json_t *dc = NULL;
	json_t *configs = NULL;
	if (default_config(c, t, where, &dc) < 0 ||
	    tool_configs(c, t, where, dc, builtin, &configs) < 0)
		return -1;
	json_t *out = json_pack("{s:s}", "type", type);
	if (server)
		json_object_set_new(out, "mcp_server_name", json_string(server));
	json_object_set(out, "default_config", dc);
	json_object_set_new(out, "configs", configs);
	*ret = out;
	return 0;
}

static int tools(struct ctx *c, const json_t *v, json_t **ret)
{
	_cleanup_json_ json_t *out = json_array();
	size_t i;
	json_t *t;
	if (json_array_size(v) > 256)
		return bad(c, 400, "tools: at most 256");
	json_array_foreach (v, i, t) {
		char where[32];
		json_t *one = NULL;
		snprintf(where, sizeof(where), "tools[%zu]", i);
		if (tool(c, t, where, &one) < 0)
			return -1;
		json_array_append_new(out, one);
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int mcp_servers(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const url[] = { "url", NULL };
	_cleanup_json_ json_t *out = json_array();
	size_t i;
	json_t *s;
	json_array_foreach (v, i, s) {
		char where[40];
		const char *type, *name, *u;
		snprintf(where, sizeof(where), "mcp_servers[%zu]", i);
		if (!json_is_object(s))
			return bad(c, 400, "%s: expected an object", where);
		if (choice_field(c, s, where, "type", F_REQUIRED, url, &type) < 0 ||
		    string_field(c, s, where, "name", F_REQUIRED, &name) < 0 ||
		    string_field(c, s, where, "url", F_REQUIRED, &u) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(
					   json_object_get(json_array_get(out, j), "name")),
				   name) == 0)
				return bad(c, 400, "%s.name: \"%.64s\" is used twice", where, name);
		json_array_append_new(
			out, json_pack("{s:s, s:s, s:s}", "type", type, "name", name, "url", u));
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int skills(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const types[] = { "anthropic", "custom", NULL };
	_cleanup_json_ json_t *out = json_array();
	size_t i;
	json_t *s;
	json_array_foreach (v, i, s) {
		char where[32];
		const char *type, *id, *version;
		snprintf(where, sizeof(where), "skills[%zu]", i);
		if (!json_is_object(s))
			return bad(c, 400, "%s: expected an object", where);
		if (choice_field(c, s, where, "type", F_REQUIRED, types, &type) < 0 ||
		    string_field(c, s, where, "skill_id", F_REQUIRED, &id) < 0 ||
		    string_field(c, s, where, "version", F_NULLABLE, &version) < 0)
			return -1;
		json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "type", type, "skill_id",
						     id, "version", version ? version : "latest"));
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static int execution_identity(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const types[] = { "service_account", "aws_role", NULL };
	const char *type, *arn;
	if (json_is_null(v)) {
		*ret = json_pack("{s:s}", "type", "service_account");
		return 0;
	}
	if (!json_is_object(v))
		return bad(c, 400, "execution_identity: expected an object or null");
	if (choice_field(c, v, "execution_identity", "type", F_REQUIRED, types, &type) < 0)
		return -1;
	if (strcmp(type, "aws_role") == 0) {
		if (string_field(c, v, "execution_identity", "role_arn", F_REQUIRED, &arn) < 0)
			return -1;
		*ret = json_pack("{s:s, s:s}", "type", type, "role_arn", arn);
	} else {
		*ret = json_pack("{s:s}", "type", type);
	}
	return 0;
}

/* An agent version's configuration (the store's body) from a create (base NULL: name and
 * model required, the rest defaulted) or an update of base (only what the request names
 * changes; null clears where the SDK says it does). *ret is new. */
static int agent_spec(struct ctx *c, const json_t *req, const json_t *base, json_t **ret)
{
	_cleanup_json_ json_t *spec = NULL;
	if (base) {
		spec = json_deep_copy(base);
	} else {
		spec = json_pack("{s:n, s:n, s:n, s:n, s:[], s:[], s:[], s:{}, s:{s:s}, s:n}",
				 "name", "description", "system", "model", "tools", "mcp_servers",
				 "skills", "metadata", "execution_identity", "type",
				 "service_account", "multiagent");
	}
	unsigned req_create = base ? 0 : F_REQUIRED;
	const char *name;
	json_t *v, *made = NULL;
	if (string_field(c, req, "", "name", req_create, &name) < 0)
		return -1;
	if (name && (!*name || strlen(name) > 256))
		return bad(c, 400, "name: want 1 to 256 characters");
	if (name)
		json_object_set_new(spec, "name", json_string(name));
	for (size_t i = 0; i < 2; i++) {
		const char *key = i ? "system" : "description";
		if ((v = json_object_get(req, key)) &&
		    copy_string(c, spec, req, "", key, F_NULLABLE) < 0)
			return -1;
		/* an empty string clears, as null does */
		if (v && json_is_string(v) && !json_string_length(v))
			json_object_set_new(spec, key, json_null());
	}
	if ((v = json_object_get(req, "model")) || !base) {
		if (!v || json_is_null(v))
			return bad(c, 400, "model: field required");
		if (model_config(c, v, &made) < 0)
			return -1;
		json_object_set_new(spec, "model", made);
	}
	if ((v = json_object_get(req, "tools"))) {
		if (!json_is_null(v) && !json_is_array(v))
			return bad(c, 400, "tools: expected an array");
		if (tools(c, v, &made) < 0)
			return -1;
		json_object_set_new(spec, "tools", made);
	}
	if ((v = json_object_get(req, "mcp_servers"))) {
		if (!json_is_null(v) && !json_is_array(v))
			return bad(c, 400, "mcp_servers: expected an array");
		if (mcp_servers(c, v, &made) < 0)
			return -1;
		json_object_set_new(spec, "mcp_servers", made);
	}
	if ((v = json_object_get(req, "skills"))) {
		if (!json_is_null(v) && !json_is_array(v))
			return bad(c, 400, "skills: expected an array");
		if (skills(c, v, &made) < 0)
			return -1;
		json_object_set_new(spec, "skills", made);
	}
	if ((v = json_object_get(req, "metadata")) && !json_is_null(v)) {
		if (metadata(c, v, "metadata", base ? json_object_get(spec, "metadata") : NULL,
			     false, &made) < 0)
			return -1;
		json_object_set_new(spec, "metadata", made);
	}
	if ((v = json_object_get(req, "execution_identity"))) {
		if (execution_identity(c, v, &made) < 0)
			return -1;
		json_object_set_new(spec, "execution_identity", made);
	}
	if ((v = json_object_get(req, "multiagent")) && !json_is_null(v))
		return bad(c, 400, "multiagent: corral does not run multiagent sessions yet");
	*ret = TAKE_PTR(spec);
	return 0;
}

/* --- environments --------------------------------------------------------------------------- */

static const char *const package_managers[] = { "apt", "cargo", "gem", "go", "npm", "pip" };

static int networking(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const types[] = { "unrestricted", "limited", NULL };
	const char *type;
	if (!json_is_object(v))
		return bad(c, 400, "config.networking: expected an object");
	if (choice_field(c, v, "config.networking", "type", F_REQUIRED, types, &type) < 0)
		return -1;
	if (strcmp(type, "unrestricted") == 0) {
		*ret = json_pack("{s:s}", "type", type);
		return 0;
	}
	json_t *hosts, *mcp, *pkg;
	if (field(c, v, "config.networking", "allowed_hosts", K_ARRAY, F_NULLABLE, &hosts) < 0 ||
	    field(c, v, "config.networking", "allow_mcp_servers", K_BOOL, F_NULLABLE, &mcp) < 0 ||
	    field(c, v, "config.networking", "allow_package_managers", K_BOOL, F_NULLABLE, &pkg) <
		    0 ||
	    (hosts && string_array(c, hosts, "config.networking.allowed_hosts") < 0))
		return -1;
	*ret = json_pack("{s:s, s:o, s:b, s:b}", "type", type, "allowed_hosts",
			 hosts ? json_deep_copy(hosts) : json_array(), "allow_mcp_servers",
			 mcp && json_is_true(mcp), "allow_package_managers",
			 pkg && json_is_true(pkg));
	return 0;
}

static int packages(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const types[] = { "packages", NULL };
	const char *type;
	if (!json_is_object(v))
		return bad(c, 400, "config.packages: expected an object");
	if (choice_field(c, v, "config.packages", "type", F_NULLABLE, types, &type) < 0)
		return -1;
	_cleanup_json_ json_t *out = json_pack("{s:s}", "type", "packages");
	for (size_t i = 0; i < CR_ARRAY_SIZE(package_managers); i++) {
		char where[40];
		json_t *list;
		snprintf(where, sizeof(where), "config.packages.%s", package_managers[i]);
		if (field(c, v, "config.packages", package_managers[i], K_ARRAY, F_NULLABLE,
			  &list) < 0 ||
		    (list && string_array(c, list, where) < 0))
			return -1;
		json_object_set_new(out, package_managers[i],
				    list ? json_deep_copy(list) : json_array());
	}
	*ret = TAKE_PTR(out);
	return 0;
}

/* corral's sandbox limits: the keys cr_sandbox_config knows, non-negative integers. An unknown
 * key is refused rather than ignored: a limit that silently does nothing is worse than none. */
static int limits(struct ctx *c, const json_t *v, json_t **ret)
{
	static const char *const keys[] = { "memory_max", "pids_max", "cpu_max_pct" };
	if (!json_is_object(v))
		return bad(c, 400, "config.limits: expected an object");
	const char *k;
	json_t *val;
	json_object_foreach ((json_t *)v, k, val) {
		size_t i = 0;
		while (i < CR_ARRAY_SIZE(keys) && strcmp(k, keys[i]) != 0)
			i++;
		if (i == CR_ARRAY_SIZE(keys))
			return bad(c, 400,
				   "config.limits.%.64s: not a limit corral knows (memory_max, "
				   "pids_max, cpu_max_pct)",
				   k);
		if (!json_is_null(val) && (!json_is_integer(val) || json_integer_value(val) < 0))
			return bad(c, 400, "config.limits.%s: expected a non-negative integer", k);
	}
	*ret = json_deep_copy(v);
	return 0;
}

/* An environment's config from a create (base NULL: the defaults) or an update of base, where
 * omitted fields keep their value. */
static int environment_config(struct ctx *c, const json_t *v, const json_t *base, json_t **ret)
{
	static const char *const types[] = { "cloud", "self_hosted", NULL };
	static const char *const provisionings[] = { "lazy", "eager", NULL };
	_cleanup_json_ json_t *out = NULL;
	if (base)
		out = json_deep_copy(base);
	else
		out = json_pack("{s:s, s:{s:s}, s:{s:s, s:[], s:[], s:[], s:[], s:[], s:[]}, s:s}",
				"type", "cloud", "networking", "type", "unrestricted", "packages",
				"type", "packages", "apt", "cargo", "gem", "go", "npm", "pip",
				"provisioning", "lazy");
	if (!v || json_is_null(v)) {
		*ret = TAKE_PTR(out);
		return 0;
	}
	if (!json_is_object(v))
		return bad(c, 400, "config: expected an object");
	const char *type, *prov, *rootfs;
	json_t *x, *made = NULL;
	if (choice_field(c, v, "config", "type", F_REQUIRED, types, &type) < 0)
		return -1;
	if (strcmp(type, "self_hosted") == 0)
		return bad(c, 400,
			   "config.type: corral runs \"cloud\" environments only (its own "
			   "sandboxes); \"self_hosted\" is not supported");
	if ((x = json_object_get(v, "networking")) && !json_is_null(x)) {
		if (networking(c, x, &made) < 0)
			return -1;
		json_object_set_new(out, "networking", made);
	}
	if ((x = json_object_get(v, "packages")) && !json_is_null(x)) {
		if (packages(c, x, &made) < 0)
			return -1;
		json_object_set_new(out, "packages", made);
	}
	if (choice_field(c, v, "config", "provisioning", F_NULLABLE, provisionings, &prov) < 0)
		return -1;
	if (prov)
		json_object_set_new(out, "provisioning", json_string(prov));
	if ((x = json_object_get(v, "rootfs"))) {
		if (string_field(c, v, "config", "rootfs", F_NULLABLE, &rootfs) < 0)
			return -1;
		if (rootfs && rootfs[0] != '/')
			return bad(c, 400, "config.rootfs: want an absolute path");
		if (rootfs)
			json_object_set_new(out, "rootfs", json_string(rootfs));
		else
			json_object_del(out, "rootfs");
	}
	/* A wait before each sandbox is made, standing for an image pull and a clone (corral
	 * bench ttft models a real environment's start with it). */
	if ((x = json_object_get(v, "provision_delay_ms"))) {
		if (json_is_null(x)) {
			json_object_del(out, "provision_delay_ms");
		} else if (!json_is_integer(x) || json_integer_value(x) < 0 ||
			   json_integer_value(x) > 3600000) {
			return bad(c, 400,
				   "config.provision_delay_ms: expected an integer from 0 to "
				   "3600000");
		} else {
			json_object_set(out, "provision_delay_ms", x);
		}
	}
	if ((x = json_object_get(v, "limits"))) {
		if (json_is_null(x)) {
			json_object_del(out, "limits");
		} else {
			if (limits(c, x, &made) < 0)
				return -1;
			json_object_set_new(out, "limits", made);
		}
	}
	*ret = TAKE_PTR(out);
	return 0;
}

/* An environment's body from a create or an update of base. */
static int environment_spec(struct ctx *c, const json_t *req, const json_t *base, json_t **ret)
{
	static const char *const scopes[] = { "organization", NULL };
	_cleanup_json_ json_t *spec =
		base ? json_deep_copy(base)
		     : json_pack("{s:n, s:n, s:n, s:{}, s:s}", "name", "description", "config",
				 "metadata", "scope", "organization");
	const char *name, *scope;
	json_t *v, *made = NULL;
	if (string_field(c, req, "", "name", base ? F_NULLABLE : F_REQUIRED, &name) < 0)
		return -1;
	if (name && (!*name || strlen(name) > 256))
		return bad(c, 400, "name: want 1 to 256 characters");
	if (name)
		json_object_set_new(spec, "name", json_string(name));
	if (json_object_get(req, "description") &&
	    copy_string(c, spec, req, "", "description", F_NULLABLE) < 0)
		return -1;
	if (choice_field(c, req, "", "scope", F_NULLABLE, scopes, &scope) < 0)
		return -1;
	if (environment_config(c, json_object_get(req, "config"),
			       base ? json_object_get(base, "config") : NULL, &made) < 0)
		return -1;
	json_object_set_new(spec, "config", made);
	if ((v = json_object_get(req, "metadata")) && !json_is_null(v)) {
		if (metadata(c, v, "metadata", base ? json_object_get(spec, "metadata") : NULL,
			     true, &made) < 0)
			return -1;
		json_object_set_new(spec, "metadata", made);
	}
	*ret = TAKE_PTR(spec);
	return 0;
}

/* --- client events -------------------------------------------------------------------------- */

/* Content blocks: objects with a string type; text blocks need their text. */
static int content_blocks(struct ctx *c, const json_t *blocks, const char *where, bool text_only)
{
	size_t i;
	json_t *b;
	json_array_foreach (blocks, i, b) {
		char path[96];
		const char *type, *text;
		snprintf(path, sizeof(path), "%s[%zu]", where, i);
		if (!json_is_object(b))
			return bad(c, 400, "%s: expected a content block object", path);
		if (string_field(c, b, path, "type", F_REQUIRED, &type) < 0)
			return -1;
		if (text_only && strcmp(type, "text") != 0)
			return bad(c, 400, "%s.type: only \"text\" blocks are allowed here", path);
		if (strcmp(type, "text") == 0 &&
		    string_field(c, b, path, "text", F_REQUIRED, &text) < 0)
			return -1;
		if ((strcmp(type, "image") == 0 || strcmp(type, "document") == 0) &&
		    field(c, b, path, "source", K_OBJECT, F_REQUIRED, &(json_t *){ NULL }) < 0)
			return -1;
	}
	return 0;
}

/* Checks one event a client sends and makes its payload: the event without the fields the
 * log owns (type, id, processed_at, seq). *ret_type points into ev. */
static int client_event(struct ctx *c, const json_t *ev, size_t i, const char **ret_type,
			json_t **ret_payload)
{
	static const char *const results[] = { "allow", "deny", NULL };
	char where[32];
	const char *type, *s;
	json_t *v;
	snprintf(where, sizeof(where), "events[%zu]", i);
	if (!json_is_object(ev))
		return bad(c, 400, "%s: expected an event object", where);
	if (string_field(c, ev, where, "type", F_REQUIRED, &type) < 0)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "%s.content", where);
	if (strcmp(type, "user.message") == 0) {
		if (field(c, ev, where, "content", K_ARRAY, F_REQUIRED, &v) < 0)
			return -1;
		if (!json_array_size(v))
			return bad(c, 400, "%s: must not be empty", path);
		if (content_blocks(c, v, path, false) < 0)
			return -1;
	} else if (strcmp(type, "user.interrupt") == 0) {
		if (string_field(c, ev, where, "session_thread_id", F_NULLABLE, &s) < 0)
			return -1;
	} else if (strcmp(type, "user.tool_confirmation") == 0) {
		if (string_field(c, ev, where, "tool_use_id", F_REQUIRED, &s) < 0 ||
		    choice_field(c, ev, where, "result", F_REQUIRED, results, &s) < 0 ||
		    string_field(c, ev, where, "deny_message", F_NULLABLE, &s) < 0)
			return -1;
	} else if (strcmp(type, "user.custom_tool_result") == 0) {
		if (string_field(c, ev, where, "custom_tool_use_id", F_REQUIRED, &s) < 0 ||
		    field(c, ev, where, "content", K_ARRAY, F_NULLABLE, &v) < 0 ||
		    (v && content_blocks(c, v, path, false) < 0) ||
		    field(c, ev, where, "is_error", K_BOOL, F_NULLABLE, &v) < 0)
			return -1;
	} else if (strcmp(type, "system.message") == 0) {
		if (field(c, ev, where, "content", K_ARRAY, F_REQUIRED, &v) < 0)
			return -1;
		if (!json_array_size(v))
			return bad(c, 400, "%s: must not be empty", path);
		if (content_blocks(c, v, path, true) < 0)
			return -1;
	} else if (strcmp(type, "user.define_outcome") == 0 ||
		   strcmp(type, "user.tool_result") == 0) {
		return bad(c, 400, "%s.type: corral does not take \"%s\" events yet", where, type);
	} else {
		return bad(c, 400,
			   "%s.type: \"%.64s\" is not an event a client sends (user.message, "
			   "user.interrupt, user.tool_confirmation, user.custom_tool_result, "
			   "system.message)",
			   where, type);
	}
	json_t *payload = json_deep_copy(ev);
	if (!payload)
		return bad(c, 500, "out of memory");
	json_object_del(payload, "type");
	json_object_del(payload, "id");
	json_object_del(payload, "processed_at");
	json_object_del(payload, "seq");
	*ret_type = type;
	*ret_payload = payload;
	return 0;
}

struct early_wake {
	struct cr_api *api;
	const char *session;
	const struct cr_log_event *ev;
	size_t n;
};

static void early_wake(void *arg)
{
	struct early_wake *e = arg;
	e->api->hooks.wake_early(e->api->hooks.arg, e->session, e->ev, e->n);
}

/* Appends events (already checked) to session as one unit, pending, under its current epoch:
 * a worker that takes the lease between the look and the append makes it -ESTALE, and then
 * the append is tried again under the new epoch. ret gets n results. With early, the session
 * is woken as soon as the events are in line (hooks.wake_early), and the model call they lead
 * to goes out while they are being synced. */
static int append_client_events(struct cr_api *api, const char *session, const char *const *types,
				char *const *payloads, size_t n, bool early,
				struct cr_log_appended *ret, struct cr_error *err)
{
	struct cr_log_append a[CR_LOG_GROUP_MAX];
	struct cr_log_event ev[CR_LOG_GROUP_MAX];
	struct early_wake ew = { api, session, ev, n };
	struct cr_log_placed placed = { early_wake, &ew };
	early = early && api->hooks.wake_early;
	for (size_t i = 0; early && i < n; i++) {
		/* the ids are drawn here, so that the wake knows them */
		uint8_t raw[CR_ID_RAW];
		int r = cr_id_random(raw, err);
		if (r < 0)
			return r;
		ev[i] = (struct cr_log_event){ .payload = payloads[i],
					       .payload_len = strlen(payloads[i]) };
		cr_id_format("sevt_", raw, ev[i].id, sizeof(ev[i].id));
		snprintf(ev[i].type, sizeof(ev[i].type), "%s", types[i]);
	}
	int r = -ESTALE;
	for (int attempt = 0; attempt < 100 && r == -ESTALE; attempt++) {
		struct cr_log_session_info info;
		if ((r = cr_log_session_info(api->log, session, &info, err)) < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			a[i] = (struct cr_log_append){
				.session = session,
				.epoch = info.epoch,
				.expected_seq = CR_LOG_ANY_SEQ,
				.type = types[i],
				.payload = payloads[i],
				.payload_len = strlen(payloads[i]),
				.flags = CR_LOG_PENDING,
				.id = early ? ev[i].id : NULL,
			};
		r = cr_log_append_all_placed(api->log, a, n, early ? &placed : NULL, ret, err);
	}
	return r;
}

/* --- handlers: common ----------------------------------------------------------------------- */

static int need_body(struct ctx *c)
{
	if (!c->body)
		return bad(c, 400, "the request needs a JSON object as its body");
	return 0;
}

static const char *kind_noun(enum api_kind kind)
{
	return kind == API_ENVIRONMENT ? "environment" : kind == API_SESSION ? "session" : "agent";
}

static const char *kind_prefix(enum api_kind kind)
{
	return kind == API_ENVIRONMENT ? "env_" : kind == API_SESSION ? "sesn_" : "agent_";
}

/* The record of id, or the 404 a client gets for an unknown id (well-formed or not). */
static int load(struct ctx *c, enum api_kind kind, const char *id, int64_t version,
		struct api_record *ret)
{
	struct cr_error err;
	if (!cr_id_valid(kind_prefix(kind), id))
		return bad(c, 404, "%s %.64s not found", kind_noun(kind), id);
	int r = api_store_get(c->api->store, kind, id, version, false, ret, &err);
	if (r == -ENOENT && kind == API_AGENT_VERSION)
		return bad(c, 404, "agent %s has no version %" PRId64, id, version);
	if (r == -ENOENT)
		return bad(c, 404, "%s %s not found", kind_noun(kind), id);
	if (r < 0)
		return internal(c, &err);
	return 0;
}

typedef json_t *(*render_fn)(struct cr_api *api, const struct api_record *rec);
typedef bool (*filter_fn)(struct ctx *c, const struct api_record *rec, unsigned arg);

static json_t *render_agent_fn(struct cr_api *api, const struct api_record *rec)
{
	(void)api;
	return render_agent(rec);
}

static json_t *render_environment_fn(struct cr_api *api, const struct api_record *rec)
{
	(void)api;
	return render_environment(rec);
}

/* A page of q's records: {"data", "next_page"} (and "prev_page" for lists that page both
 * ways). A cursor is given only when a record lies past it, so a client that follows
 * next_page blindly stops. filter (may be NULL) drops records the store cannot. */
static int list_records(struct ctx *c, struct api_query q, bool both_ways, render_fn render,
			filter_fn filter, unsigned filter_arg)
{
	struct cr_error err;
	size_t limit;
	int64_t pos;
	bool prev;
	if (query_limit(c, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit) < 0 ||
	    query_cursor(c, both_ways, &pos, &prev) < 0)
		return -1;
	if (prev)
		q.desc = !q.desc;
	q.after = pos;
	struct api_record *got = calloc(limit + 1, sizeof(*got));
	if (!got)
		return bad(c, 500, "out of memory");
	size_t n = 0;
	int r = 0;
	for (;;) {
		struct api_record *rows;
		size_t nrows;
		q.limit = limit + 1;
		if ((r = api_store_list(c->api->store, &q, &rows, &nrows, &err)) < 0)
			break;
		for (size_t i = 0; i < nrows; i++) {
			q.after = rows[i].pos;
			if (n <= limit && (!filter || filter(c, &rows[i], filter_arg))) {
				got[n++] = rows[i];
				rows[i].body = NULL; /* (moved) */
			}
		}
		api_records_free(rows, nrows);
		if (n > limit || nrows < q.limit)
			break;
	}
	if (r < 0) {
		api_records_free(got, n);
		return internal(c, &err);
	}
	bool more = n > limit;
	if (more)
		api_record_clear(&got[--n]);
	for (size_t i = 0; prev && i < n / 2; i++) {
		struct api_record t = got[i];
		got[i] = got[n - 1 - i];
		got[n - 1 - i] = t;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(data, render(c->api, &got[i]));
	json_t *next, *before;
	if (!prev) {
		next = more ? cursor('n', got[n - 1].pos) : json_null();
		before = pos && n ? cursor('p', got[0].pos) : json_null();
	} else {
		next = n ? cursor('n', got[n - 1].pos) : json_null();
		before = more ? cursor('p', got[0].pos) : json_null();
	}
	c->reply = json_pack("{s:o, s:o}", "data", data, "next_page", next);
	if (both_ways)
		json_object_set_new(c->reply, "prev_page", before);
	else
		json_decref(before);
	api_records_free(got, n);
	return 0;
}

/* --- agents --------------------------------------------------------------------------------- */

static int agents_create(struct ctx *c, const char *unused)
{
	(void)unused;
	struct cr_error err;
	struct api_record rec = { 0 };
	if (need_body(c) < 0 || agent_spec(c, c->body, NULL, &rec.body) < 0)
		return -1;
	int r = make_id("agent_", rec.id, &err);
	if (r == 0) {
		rec.created_ns = rec.updated_ns = now_realtime_ns();
		r = api_store_insert(c->api->store, API_AGENT, &rec, &err);
	}
	if (r == 0)
		c->reply = render_agent(&rec);
	api_record_clear(&rec);
	return r < 0 ? internal(c, &err) : 0;
}

static int agents_list(struct ctx *c, const char *unused)
{
	(void)unused;
	struct api_query q = { .kind = API_AGENT, .desc = true };
	if (query_bool(c, "include_archived", &q.include_archived) < 0 ||
	    query_created(c, &q.created_min, &q.created_max) < 0)
		return -1;
	return list_records(c, q, false, render_agent_fn, NULL, 0);
}

static int agents_get(struct ctx *c, const char *id)
{
	struct api_record rec = { 0 };
	const char *v = query(c, "version");
	uint64_t version = 0;
	if (v && (parse_u64(v, &version) < 0 || version < 1 || version > INT64_MAX))
		return bad(c, 400, "version: want an integer from 1");
	if (load(c, version ? API_AGENT_VERSION : API_AGENT, id, (int64_t)version, &rec) < 0)
		return -1;
	c->reply = render_agent(&rec);
	api_record_clear(&rec);
	return 0;
}

static int agents_update(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record cur = { 0 }, rec = { 0 };
	json_t *v;
	_cleanup_json_ json_t *spec = NULL;
	if (need_body(c) < 0 || field(c, c->body, "", "version", K_INT, F_NULLABLE, &v) < 0)
		return -1;
	json_int_t expect = v ? json_integer_value(v) : 0;
	if (v && expect < 1)
		return bad(c, 400, "version: want an integer from 1");
	if (load(c, API_AGENT, id, 0, &cur) < 0)
		return -1;
	int r = 0;
	if (cur.archived_ns)
		r = bad(c, 400, "agent %s is archived: it cannot be changed", id);
	else if (expect && expect != cur.version)
		r = bad(c, 409,
			"version %" PRId64 " is not the current version of agent %s (%" PRId64
			"): retrieve it and apply the change again",
			(int64_t)expect, id, cur.version);
	else if (agent_spec(c, c->body, cur.body, &spec) < 0)
		r = -1;
	if (r < 0 || json_equal(spec, cur.body)) {
		/* (an update that changes nothing makes no version) */
		if (r == 0)
			c->reply = render_agent(&cur);
		api_record_clear(&cur);
		return r;
	}
	api_record_clear(&cur);
	r = api_store_update(c->api->store, API_AGENT, id, expect, spec, now_realtime_ns(), &rec,
			     &err);
	if (r == -ESTALE)
		return bad(c, 409, "%s", err.msg);
	if (r == -ENOENT)
		return bad(c, 404, "agent %s not found", id);
	if (r < 0)
		return internal(c, &err);
	c->reply = render_agent(&rec);
	api_record_clear(&rec);
	return 0;
}

/* Archives id of kind and answers with the record as it is now. */
static int archive(struct ctx *c, enum api_kind kind, const char *id, bool *ret_changed)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	if (load(c, kind, id, 0, &rec) < 0)
		return -1;
	bool was = rec.archived_ns != 0;
	api_record_clear(&rec);
	int r = was ? 0 : api_store_archive(c->api->store, kind, id, now_realtime_ns(), &err);
	if (!was && kind == API_ENVIRONMENT)
		config_changed(c->api); /* (an archived environment renders differently) */
	if (r < 0)
		return internal(c, &err);
	if (load(c, kind, id, 0, &rec) < 0)
		return -1;
	c->reply = kind == API_AGENT	     ? render_agent(&rec)
		   : kind == API_ENVIRONMENT ? render_environment(&rec)
					     : render_session(c->api, &rec);
	api_record_clear(&rec);
	if (ret_changed)
		*ret_changed = !was;
	return 0;
}

static int agents_archive(struct ctx *c, const char *id)
{
	return archive(c, API_AGENT, id, NULL);
}

static int agents_versions(struct ctx *c, const char *id)
{
	struct api_record rec = { 0 };
	if (load(c, API_AGENT, id, 0, &rec) < 0)
		return -1;
	api_record_clear(&rec);
	struct api_query q = {
		.kind = API_AGENT_VERSION, .agent = id, .desc = true, .include_archived = true
	};
	return list_records(c, q, false, render_agent_fn, NULL, 0);
}

/* --- environments --------------------------------------------------------------------------- */

static int environments_create(struct ctx *c, const char *unused)
{
	(void)unused;
	struct cr_error err;
	struct api_record rec = { 0 };
	if (need_body(c) < 0 || environment_spec(c, c->body, NULL, &rec.body) < 0)
		return -1;
	int r = make_id("env_", rec.id, &err);
	if (r == 0) {
		rec.created_ns = rec.updated_ns = now_realtime_ns();
		r = api_store_insert(c->api->store, API_ENVIRONMENT, &rec, &err);
	}
	if (r == 0)
		c->reply = render_environment(&rec);
	api_record_clear(&rec);
	return r < 0 ? internal(c, &err) : 0;
}

static int environments_list(struct ctx *c, const char *unused)
{
	(void)unused;
	struct api_query q = { .kind = API_ENVIRONMENT, .desc = true };
	if (query_bool(c, "include_archived", &q.include_archived) < 0)
		return -1;
	return list_records(c, q, false, render_environment_fn, NULL, 0);
}

static int environments_get(struct ctx *c, const char *id)
{
	struct api_record rec = { 0 };
	if (load(c, API_ENVIRONMENT, id, 0, &rec) < 0)
		return -1;
	c->reply = render_environment(&rec);
	api_record_clear(&rec);
	return 0;
}

static int environments_update(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record cur = { 0 }, rec = { 0 };
	_cleanup_json_ json_t *spec = NULL;
	if (need_body(c) < 0 || load(c, API_ENVIRONMENT, id, 0, &cur) < 0)
		return -1;
	int r = 0;
	if (cur.archived_ns)
		r = bad(c, 400, "environment %s is archived: it cannot be changed", id);
	else if (environment_spec(c, c->body, cur.body, &spec) < 0)
		r = -1;
	if (r < 0 || json_equal(spec, cur.body)) {
		if (r == 0)
			c->reply = render_environment(&cur);
		api_record_clear(&cur);
		return r;
	}
	api_record_clear(&cur);
	r = api_store_update(c->api->store, API_ENVIRONMENT, id, 0, spec, now_realtime_ns(), &rec,
			     &err);
	config_changed(c->api);
	if (r == -ENOENT)
		return bad(c, 404, "environment %s not found", id);
	if (r < 0)
		return internal(c, &err);
	c->reply = render_environment(&rec);
	api_record_clear(&rec);
	return 0;
}

static int environments_delete(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	if (load(c, API_ENVIRONMENT, id, 0, &rec) < 0)
		return -1;
	api_record_clear(&rec);
	/* (kept in the store for the sessions that use it: cr_api_session_config still finds it) */
	int r = api_store_delete(c->api->store, API_ENVIRONMENT, id, now_realtime_ns(), &err);
	config_changed(c->api); /* (a deleted environment renders differently) */
	if (r < 0)
		return internal(c, &err);
	c->reply = json_pack("{s:s, s:s}", "id", id, "type", "environment_deleted");
	return 0;
}

static int environments_archive(struct ctx *c, const char *id)
{
	return archive(c, API_ENVIRONMENT, id, NULL);
}

/* --- sessions ------------------------------------------------------------------------------- */

static json_t *render_session_fn(struct cr_api *api, const struct api_record *rec)
{
	return render_session(api, rec);
}

/* The agent a new session pins: an id (its latest version), {"type":"agent", id, version?}, or
 * {"type":"agent_with_overrides", id, version?, model?, system?, tools?, mcp_servers?,
 * skills?}. *ret_pinned is new; ret_rec gets the version's record. */
static int session_agent(struct ctx *c, const json_t *v, json_t **ret_pinned,
			 struct api_record *ret_rec)
{
	static const char *const types[] = { "agent", "agent_with_overrides", NULL };
	static const char *const overridable[] = { "model", "system", "tools", "mcp_servers",
						   "skills" };
	const char *id, *type = "agent";
	json_t *ver = NULL;
	if (json_is_string(v)) {
		id = json_string_value(v);
	} else if (json_is_object(v)) {
		if (choice_field(c, v, "agent", "type", F_REQUIRED, types, &type) < 0 ||
		    string_field(c, v, "agent", "id", F_REQUIRED, &id) < 0 ||
		    field(c, v, "agent", "version", K_INT, F_NULLABLE, &ver) < 0)
			return -1;
		if (ver && json_integer_value(ver) < 1)
			return bad(c, 400, "agent.version: want an integer from 1");
	} else {
		return bad(c, 400, "agent: expected an agent id or an agent object");
	}
	struct api_record rec = { 0 };
	if (ver) {
		/* (an unknown agent says so, not that it lacks the version) */
		if (load(c, API_AGENT, id, 0, &rec) < 0)
			return -1;
		api_record_clear(&rec);
	}
	if (load(c, ver ? API_AGENT_VERSION : API_AGENT, id, ver ? json_integer_value(ver) : 0,
		 &rec) < 0)
		return -1;
	if (rec.archived_ns) {
		api_record_clear(&rec);
		return bad(c, 400, "agent %s is archived", id);
	}
	if (strcmp(type, "agent_with_overrides") == 0) {
		_cleanup_json_ json_t *sub = json_object();
		for (size_t i = 0; i < CR_ARRAY_SIZE(overridable); i++) {
			json_t *o = json_object_get(v, overridable[i]);
			if (o)
				json_object_set(sub, overridable[i], o);
		}
		json_t *spec;
		if (agent_spec(c, sub, rec.body, &spec) < 0) {
			api_record_clear(&rec);
			return -1;
		}
		json_decref(rec.body);
		rec.body = spec;
	}
	*ret_pinned = render_session_agent(&rec);
	*ret_rec = rec;
	return 0;
}

/* Fields a session takes that corral does not have yet: refused, not ignored. */
static int session_unsupported(struct ctx *c)
{
	json_t *v;
	if ((v = json_object_get(c->body, "resources")) && !json_is_null(v) &&
	    (!json_is_array(v) || json_array_size(v)))
		return bad(c, 400, "resources: corral does not mount session resources yet");
	if ((v = json_object_get(c->body, "vault_ids")) && !json_is_null(v) &&
	    (!json_is_array(v) || json_array_size(v)))
		return bad(c, 400, "vault_ids: corral has no vaults yet");
	if ((v = json_object_get(c->body, "budget")) && !json_is_null(v))
		return bad(c, 400, "budget: corral does not enforce session budgets yet");
	return 0;
}

/* initial_events: user.message events only, checked; types and payloads filled. */
static int initial_events(struct ctx *c, const char **types, char **payloads, size_t *ret_n)
{
	json_t *evs, *ev;
	size_t i;
	*ret_n = 0;
	if (field(c, c->body, "", "initial_events", K_ARRAY, F_NULLABLE, &evs) < 0)
		return -1;
	if (json_array_size(evs) > EVENTS_PER_POST)
		return bad(c, 400, "initial_events: at most %d", EVENTS_PER_POST);
	json_array_foreach (evs, i, ev) {
		json_t *payload;
		if (json_is_object(ev) && !json_is_null(json_object_get(ev, "type")) &&
		    !(json_is_string(json_object_get(ev, "type")) &&
		      strcmp(json_string_value(json_object_get(ev, "type")), "user.message") == 0))
			return bad(c, 400,
				   "initial_events[%zu].type: only user.message is taken here", i);
		if (client_event(c, ev, i, &types[i], &payload) < 0)
			return -1;
		payloads[i] = json_dumps(payload, JSON_COMPACT);
		json_decref(payload);
		if (!payloads[i])
			return bad(c, 500, "out of memory");
		*ret_n = i + 1;
	}
	return 0;
}

static void free_payloads(char **payloads, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(payloads[i]);
}

static int sessions_create(struct ctx *c, const char *unused)
{
	(void)unused;
	struct cr_error err;
	struct api_record agent = { 0 }, env = { 0 }, rec = { 0 };
	_cleanup_json_ json_t *pinned = NULL, *meta = NULL, *env_obj = NULL;
	const char *env_id, *title;
	json_t *v;
	const char *types[EVENTS_PER_POST];
	char *payloads[EVENTS_PER_POST];
	size_t nev = 0;
	int r = -1;
	if (need_body(c) < 0 || session_unsupported(c) < 0)
		return -1;
	if (!(v = json_object_get(c->body, "agent")) || json_is_null(v))
		return bad(c, 400, "agent: field required");
	if (string_field(c, c->body, "", "environment_id", F_REQUIRED, &env_id) < 0 ||
	    string_field(c, c->body, "", "title", F_NULLABLE, &title) < 0)
		return -1;
	if ((v = json_object_get(c->body, "metadata")) && !json_is_null(v) &&
	    metadata(c, v, "metadata", NULL, false, &meta) < 0)
		return -1;
	if (initial_events(c, types, payloads, &nev) < 0)
		goto out;
	if (session_agent(c, json_object_get(c->body, "agent"), &pinned, &agent) < 0)
		goto out;
	uint64_t gen = config_gen(c->api); /* (before the environment is read) */
	if (load(c, API_ENVIRONMENT, env_id, 0, &env) < 0)
		goto out;
	if (env.archived_ns) {
		bad(c, 400, "environment %s is archived", env_id);
		goto out;
	}
	env_obj = render_environment(&env);

	struct cr_log_session_info info;
	if (cr_log_session_create(c->api->log, NULL, rec.id, &err) < 0 ||
	    cr_log_session_info(c->api->log, rec.id, &info, &err) < 0) {
		internal(c, &err);
		goto out;
	}
	rec.created_ns = rec.updated_ns = info.created_ns;
	snprintf(rec.agent, sizeof(rec.agent), "%s", agent.id);
	rec.agent_version = agent.version;
	snprintf(rec.environment, sizeof(rec.environment), "%s", env.id);
	rec.body = json_pack("{s:O, s:s?, s:o, s:[], s:[]}", "agent", pinned, "title", title,
			     "metadata", meta ? json_incref(meta) : json_object(), "resources",
			     "vault_ids");
	if (api_store_insert(c->api->store, API_SESSION, &rec, &err) < 0) {
		/* (the log's session stays, unseen: the API knows sessions by its store) */
		internal(c, &err);
		goto out;
	}
	if (nev) {
		struct cr_log_appended done[EVENTS_PER_POST];
		/* (no early wake: the session's eager sandbox is asked for below, and its first
		 * turn must find it asked for) */
		if (append_client_events(c->api, rec.id, types, payloads, nev, false, done, &err) <
		    0) {
			struct cr_error e2;
			api_store_delete(c->api->store, API_SESSION, rec.id, now_realtime_ns(),
					 &e2);
			internal(c, &err);
			goto out;
		}
		snprintf(c->wake, sizeof(c->wake), "%s", rec.id);
	}
	if (pinned && env_obj) /* (what its wakes read first) */
		config_put(c->api, rec.id, pinned, env_obj, gen);
	if (c->api->hooks.session_created)
		c->api->hooks.session_created(c->api->hooks.arg, rec.id, env_obj);
	c->reply = render_session(c->api, &rec);
	r = 0;
out:
	free_payloads(payloads, nev);
	api_record_clear(&agent);
	api_record_clear(&env);
	api_record_clear(&rec);
	return r;
}

static bool status_filter(struct ctx *c, const struct api_record *rec, unsigned mask)
{
	struct session_state s;
	session_snapshot(c->api, rec->id, &s);
	return mask & (1u << s.status);
}

struct status_args {
	struct ctx *c;
	unsigned mask;
	int bad;
};

static enum MHD_Result status_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	struct status_args *a = cls;
	(void)kind;
	if (strcmp(key, "statuses[]") != 0 && strcmp(key, "statuses") != 0)
		return MHD_YES;
	for (unsigned st = ST_IDLE; st <= ST_TERMINATED; st++)
		if (value && strcmp(value, status_name(st)) == 0) {
			a->mask |= 1u << st;
			return MHD_YES;
		}
	a->bad = bad(a->c, 400,
		     "statuses: \"%.64s\" is not one of rescheduling, running, idle, terminated",
		     value ? value : "");
	return MHD_NO;
}

static int sessions_list(struct ctx *c, const char *unused)
{
	(void)unused;
	struct api_query q = { .kind = API_SESSION, .desc = true };
	struct status_args sa = { .c = c };
	const char *agent = query(c, "agent_id"), *ver = query(c, "agent_version");
	uint64_t v = 0;
	if (query_bool(c, "include_archived", &q.include_archived) < 0 ||
	    query_order(c, &q.desc) < 0 || query_created(c, &q.created_min, &q.created_max) < 0)
		return -1;
	if (ver && (parse_u64(ver, &v) < 0 || v < 1 || v > INT64_MAX))
		return bad(c, 400, "agent_version: want an integer from 1");
	if (agent && !cr_id_valid("agent_", agent))
		return bad(c, 400, "agent_id: \"%.64s\" is not an agent id", agent);
	if (query(c, "deployment_id") || query(c, "memory_store_id"))
		return bad(c, 400, "corral has no deployments or memory stores yet");
	q.agent = agent;
	q.agent_version = (int64_t)v;
	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, status_arg, &sa);
	if (sa.bad)
		return -1;
	return list_records(c, q, true, render_session_fn, sa.mask ? status_filter : NULL, sa.mask);
}

static int sessions_get(struct ctx *c, const char *id)
{
	struct api_record rec = { 0 };
	if (load(c, API_SESSION, id, 0, &rec) < 0)
		return -1;
	c->reply = render_session(c->api, &rec);
	api_record_clear(&rec);
	return 0;
}

/* A session update's agent: only tools and mcp_servers change, and not while it runs. */
static int session_agent_update(struct ctx *c, const char *id, const json_t *upd, json_t *body)
{
	json_t *v, *made = NULL;
	if (!json_is_object(upd))
		return bad(c, 400, "agent: expected an object with tools and/or mcp_servers");
	struct session_state s;
	session_snapshot(c->api, id, &s);
	if (s.status == ST_RUNNING)
		return bad(c, 400, "session %s is running: its agent changes only while it is not",
			   id);
	json_t *agent = json_object_get(body, "agent");
	if ((v = json_object_get(upd, "tools")) && !json_is_null(v)) {
		if (!json_is_array(v))
			return bad(c, 400, "agent.tools: expected an array");
		if (tools(c, v, &made) < 0)
			return -1;
		json_object_set_new(agent, "tools", made);
	}
	if ((v = json_object_get(upd, "mcp_servers")) && !json_is_null(v)) {
		if (!json_is_array(v))
			return bad(c, 400, "agent.mcp_servers: expected an array");
		if (mcp_servers(c, v, &made) < 0)
			return -1;
		json_object_set_new(agent, "mcp_servers", made);
	}
	return 0;
}

static int sessions_update(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record cur = { 0 }, rec = { 0 };
	_cleanup_json_ json_t *body = NULL;
	json_t *v, *made = NULL;
	if (need_body(c) < 0 || load(c, API_SESSION, id, 0, &cur) < 0)
		return -1;
	body = json_deep_copy(cur.body);
	int r = 0;
	if (cur.archived_ns)
		r = bad(c, 400, "session %s is archived: it cannot be changed", id);
	else if ((v = json_object_get(c->body, "vault_ids")) && !json_is_null(v))
		r = bad(c, 400, "vault_ids: corral has no vaults yet");
	else if ((v = json_object_get(c->body, "budget")) && !json_is_null(v))
		r = bad(c, 400, "budget: corral does not enforce session budgets yet");
	else if (json_object_get(c->body, "title") &&
		 copy_string(c, body, c->body, "", "title", F_NULLABLE) < 0)
		r = -1;
	else if ((v = json_object_get(c->body, "metadata")) && !json_is_null(v)) {
		if (metadata(c, v, "metadata", json_object_get(body, "metadata"), false, &made) < 0)
			r = -1;
		else
			json_object_set_new(body, "metadata", made);
	}
	if (r == 0 && (v = json_object_get(c->body, "agent")) && !json_is_null(v))
		r = session_agent_update(c, id, v, body);
	if (r < 0 || json_equal(body, cur.body)) {
		if (r == 0)
			c->reply = render_session(c->api, &cur);
		api_record_clear(&cur);
		return r;
	}
	api_record_clear(&cur);
	r = api_store_update(c->api->store, API_SESSION, id, 0, body, now_realtime_ns(), &rec,
			     &err);
	config_changed(c->api); /* (whether or not it took: it may have) */
	if (r == -ENOENT)
		return bad(c, 404, "session %s not found", id);
	if (r < 0)
		return internal(c, &err);
	c->reply = render_session(c->api, &rec);
	api_record_clear(&rec);
	return 0;
}

static int sessions_archive(struct ctx *c, const char *id)
{
	bool changed = false;
	if (archive(c, API_SESSION, id, &changed) < 0)
		return -1;
	if (changed && c->api->hooks.session_ended)
		c->api->hooks.session_ended(c->api->hooks.arg, id);
	return 0;
}

/* Appends a session.deleted event (the public API's last word to a stream), as the log's
 * current lease holder would: a worker still driving the session loses nothing it needs. */
static void append_deleted(struct cr_api *api, const char *id)
{
	struct cr_error err;
	int r = -ESTALE;
	for (int attempt = 0; attempt < 100 && r == -ESTALE; attempt++) {
		struct cr_log_session_info info;
		if ((r = cr_log_session_info(api->log, id, &info, &err)) < 0)
			break;
		struct cr_log_append a = {
			.session = id,
			.epoch = info.epoch,
			.expected_seq = CR_LOG_ANY_SEQ,
			.type = "session.deleted",
			.payload = "{}",
			.payload_len = 2,
		};
		r = cr_log_append(api->log, &a, NULL, &err);
	}
	if (r < 0)
		fprintf(stderr, "corrald: api: session %s: appending session.deleted: %s\n", id,
			err.msg);
}

static int sessions_delete(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	if (load(c, API_SESSION, id, 0, &rec) < 0)
		return -1;
	bool ended = rec.archived_ns != 0; /* (its archive already said so) */
	api_record_clear(&rec);
	/* first the event, then the flag the streams end on: a stream sees both */
	append_deleted(c->api, id);
	if (api_store_delete(c->api->store, API_SESSION, id, now_realtime_ns(), &err) < 0)
		return internal(c, &err);
	pthread_mutex_lock(&c->api->states_lock);
	struct session_state *s = state_of(c->api, id);
	if (s)
		atomic_store(&s->deleted, true);
	pthread_mutex_unlock(&c->api->states_lock);
	if (!ended && c->api->hooks.session_ended)
		c->api->hooks.session_ended(c->api->hooks.arg, id);
	c->reply = json_pack("{s:s, s:s}", "id", id, "type", "session_deleted");
	return 0;
}

/* --- events --------------------------------------------------------------------------------- */

static int events_post(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	json_t *evs, *ev;
	const char *types[EVENTS_PER_POST];
	char *payloads[EVENTS_PER_POST];
	struct cr_log_appended done[EVENTS_PER_POST];
	size_t i, n = 0;
	if (need_body(c) < 0 || load(c, API_SESSION, id, 0, &rec) < 0)
		return -1;
	bool archived = rec.archived_ns != 0;
	api_record_clear(&rec);
	if (archived)
		return bad(c, 400, "session %s is archived: it takes no more events", id);
	if (field(c, c->body, "", "events", K_ARRAY, F_REQUIRED, &evs) < 0)
		return -1;
	if (!json_array_size(evs))
		return bad(c, 400, "events: send at least one event");
	if (json_array_size(evs) > EVENTS_PER_POST)
		return bad(c, 400, "events: at most %d in one request", EVENTS_PER_POST);
	int r = 0;
	json_array_foreach (evs, i, ev) {
		json_t *payload;
		if ((r = client_event(c, ev, i, &types[i], &payload)) < 0)
			break;
		payloads[i] = json_dumps(payload, JSON_COMPACT);
		json_decref(payload);
		if (!payloads[i]) {
			r = bad(c, 500, "out of memory");
			break;
		}
		n = i + 1;
	}
	if (r == 0 &&
	    (r = append_client_events(c->api, id, types, payloads, n, true, done, &err)) < 0) {
		if (r == -ENOENT)
			r = bad(c, 404, "session %s not found", id);
		else if (r == -E2BIG)
			r = bad(c, 413, "%s", err.msg);
		else if (r == -EINVAL)
			r = bad(c, 400, "%s", err.msg);
		else
			r = internal(c, &err); /* (nothing was written: a retry is safe) */
	}
	if (r == 0) {
		/* durable: from here on the answer is a success whatever else fails */
		json_t *data = json_array();
		for (i = 0; i < n; i++) {
			struct cr_log_event e = {
				.seq = done[i].seq,
				.time_ns = done[i].time_ns,
				.epoch = done[i].epoch,
				.payload = payloads[i],
				.payload_len = strlen(payloads[i]),
			};
			snprintf(e.id, sizeof(e.id), "%s", done[i].id);
			snprintf(e.type, sizeof(e.type), "%s", types[i]);
			json_array_append_new(data, render_event(&e));
		}
		c->reply = json_pack("{s:o}", "data", data);
		snprintf(c->wake, sizeof(c->wake), "%s", id);
		c->wake_through = done[n - 1].seq;
	}
	free_payloads(payloads, n);
	return r;
}

struct type_args {
	struct ctx *c;
	const char *types[64];
	size_t n;
	int bad;
};

static enum MHD_Result type_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct type_args *a = cls;
	(void)kind;
	if (strcmp(key, "types[]") != 0 && strcmp(key, "types") != 0)
		return MHD_YES;
	if (a->n == CR_ARRAY_SIZE(a->types)) {
		a->bad = bad(a->c, 400, "types: at most %zu", CR_ARRAY_SIZE(a->types));
		return MHD_NO;
	}
	a->types[a->n++] = value ? value : "";
	return MHD_YES;
}

static bool type_wanted(const struct type_args *a, const char *type)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->types[i], type) == 0)
			return true;
	return a->n == 0;
}

/* Adds ev to data when its type is wanted and there is room; returns false once a wanted
 * event did not fit (there is a next page). */
static bool take_event(const struct type_args *ta, const struct cr_log_event *ev, json_t *data,
		       size_t limit, uint64_t *last)
{
	if (!type_wanted(ta, ev->type))
		return true;
	if (json_array_size(data) == limit)
		return false;
	json_t *j = render_event(ev);
	if (j)
		json_array_append_new(data, j);
	*last = ev->seq;
	return true;
}

static int events_list(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	struct type_args ta = { .c = c };
	size_t limit;
	int64_t pos;
	bool prev, desc = false;
	if (load(c, API_SESSION, id, 0, &rec) < 0)
		return -1;
	api_record_clear(&rec);
	if (query_limit(c, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, &limit) < 0 ||
	    query_order(c, &desc) < 0 || query_cursor(c, false, &pos, &prev) < 0)
		return -1;
	if (query(c, "created_at[gt]") || query(c, "created_at[gte]") ||
	    query(c, "created_at[lt]") || query(c, "created_at[lte]"))
		return bad(c, 400,
			   "created_at filters on events are not supported yet: page by "
			   "seq (an event's seq and the next_page cursor)");
	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, type_arg, &ta);
	if (ta.bad)
		return -1;
	struct cr_log_session_info info;
	if (cr_log_session_info(c->api->log, id, &info, &err) < 0)
		return internal(c, &err);

	_cleanup_json_ json_t *data = json_array();
	bool more = false;
	uint64_t last = 0;
	/* asc: the events after pos; desc: those before pos, newest first. Read in chunks, as a
	 * filter may skip many. */
	uint64_t after = (uint64_t)pos, upper = pos ? (uint64_t)pos - 1 : info.last_seq;
	while (!more && (desc ? upper > 0 : true)) {
		uint64_t from = desc ? (upper > READ_CHUNK ? upper - READ_CHUNK : 0) : after;
		size_t want = desc ? (size_t)(upper - from) : READ_CHUNK;
		struct cr_log_event *ev = NULL;
		size_t n = 0;
		if (cr_log_get_events(c->api->log, id, from, want, &ev, &n, &err) < 0)
			return internal(c, &err);
		for (size_t i = 0; i < n && !more; i++) {
			const struct cr_log_event *e = &ev[desc ? n - 1 - i : i];
			more = !take_event(&ta, e, data, limit, &last);
		}
		if (n)
			after = ev[n - 1].seq;
		cr_log_events_free(ev, n);
		upper = from;
		if (!desc && n < want)
			break;
	}
	c->reply = json_pack("{s:O, s:o}", "data", data, "next_page",
			     more ? cursor('n', (int64_t)last) : json_null());
	return 0;
}

/* --- previews: event_start and event_delta (?event_deltas[]=...) --------------------------- */

void cr_api_preview(struct cr_api *api, const char *session, const char *json)
{
	json_error_t je;
	_cleanup_json_ json_t *j = json_loads(json, 0, &je);
	const char *kind = json_string_value(json_object_get(j, "type"));
	const char *of_type = NULL, *of_id = NULL;
	if (kind && strcmp(kind, "event_start") == 0) {
		json_t *e = json_object_get(j, "event");
		of_type = json_string_value(json_object_get(e, "type"));
		of_id = json_string_value(json_object_get(e, "id"));
	} else if (kind && strcmp(kind, "event_delta") == 0) {
		of_type = "agent.message"; /* (the only type with deltas) */
		of_id = json_string_value(json_object_get(j, "event_id"));
	}
	if (!of_type || !of_id || strlen(of_type) >= CR_LOG_TYPE_MAX ||
	    strlen(of_id) >= CR_LOG_ID_MAX)
		return;
	char *copy = strdup(json);
	if (!copy)
		return;
	pthread_mutex_lock(&api->states_lock);
	struct session_state *s = state_of(api, session);
	if (s && !s->previews)
		s->previews = calloc(PREVIEW_RING, sizeof(*s->previews));
	if (s && s->previews) {
		struct preview_frame *f = &s->previews[++s->n_previews % PREVIEW_RING];
		free(f->json);
		f->json = TAKE_PTR(copy);
		snprintf(f->kind, sizeof(f->kind), "%s", kind);
		snprintf(f->of_type, sizeof(f->of_type), "%s", of_type);
		snprintf(f->of_id, sizeof(f->of_id), "%s", of_id);
	}
	pthread_mutex_unlock(&api->states_lock);
	free(copy);
	cr_log_kick(api->log, session); /* (the streams wait on the log) */
}

/* An SSE stream: what the reader still has to hand to MHD, and where it is in the log. */
struct stream {
	struct cr_api *api;
	struct session_state *state; /* (its deleted flag, its previews) */
	char session[CR_LOG_ID_MAX];
	int fd; /* the connection, to notice a client that went away */
	uint64_t after; /* last seq sent */
	int64_t ping_at; /* monotonic ms */
	bool opened;
	/* previews: of which types (none: no previews), the next one to send, and the ids of
	 * the last previewed events sent in full (a late delta of one is not sent after it) */
	bool deltas_message, deltas_thinking;
	uint64_t preview_next;
	char closed[PREVIEW_CLOSED][CR_LOG_ID_MAX];
	unsigned n_closed;
	char *buf;
	size_t len, off, cap;
};

static bool stream_wants_preview(const struct stream *s, const struct preview_frame *f)
{
	if (strcmp(f->of_type, "agent.message") == 0	? !s->deltas_message
	    : strcmp(f->of_type, "agent.thinking") == 0 ? !s->deltas_thinking
							: true)
		return false;
	for (unsigned i = 0; i < PREVIEW_CLOSED && i < s->n_closed; i++)
		if (strcmp(s->closed[i], f->of_id) == 0)
			return false;
	return true;
}

static int stream_put(struct stream *s, const char *type, uint64_t seq, const char *data);

/* Puts the previews published since the last call; the number put, or -1 on an error. */
static int stream_previews(struct stream *s)
{
	if (!s->deltas_message && !s->deltas_thinking)
		return 0;
	int put = 0;
	pthread_mutex_lock(&s->api->states_lock);
	const struct session_state *st = s->state;
	if (st->n_previews >= PREVIEW_RING && s->preview_next <= st->n_previews - PREVIEW_RING)
		s->preview_next = st->n_previews - PREVIEW_RING + 1; /* (too slow: lost) */
	for (; s->preview_next <= st->n_previews && put >= 0; s->preview_next++) {
		const struct preview_frame *f = &st->previews[s->preview_next % PREVIEW_RING];
		if (stream_wants_preview(s, f))
			put = stream_put(s, f->kind, 0, f->json) < 0 ? -1 : put + 1;
	}
	pthread_mutex_unlock(&s->api->states_lock);
	return put;
}

static int stream_put(struct stream *s, const char *type, uint64_t seq, const char *data)
{
	size_t need = strlen(type) + strlen(data) + 64;
	if (s->len + need > s->cap) {
		size_t cap = (s->len + need) * 2;
		char *b = realloc(s->buf, cap);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	int n = seq ? snprintf(s->buf + s->len, s->cap - s->len,
			       "event: %s\nid: %" PRIu64 "\ndata: %s\n\n", type, seq, data)
		    : snprintf(s->buf + s->len, s->cap - s->len, "event: %s\ndata: %s\n\n", type,
			       data);
	s->len += (size_t)n;
	return 0;
}

/* Whether the client hung up: it sends nothing while it reads a stream, so only a hangup
 * makes the socket readable-with-RDHUP. */
static bool client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Fills s->buf with the next frames: 1, or 0 at the end of the stream, or -1 on an error. */
static int stream_fill(struct stream *s)
{
	struct cr_error err;
	if (!s->opened) {
		/* libmicrohttpd sends the headers with the first bytes of the body, and a client
		 * waits for the headers (the SDK's stream() resolves on them, and only then may
		 * its caller post events): an SSE comment gets them out at once */
		s->opened = true;
		static const char open[] = ": stream open\n\n";
		s->buf = strdup(open);
		if (!s->buf)
			return -1;
		s->len = strlen(open);
		s->cap = s->len + 1;
		return 1;
	}
	for (;;) {
		if (atomic_load(&s->api->stopping) || client_gone(s->fd))
			return 0;
		struct cr_log_event *ev = NULL;
		size_t n = 0;
		int r = cr_log_get_events(s->api->log, s->session, s->after, 64, &ev, &n, &err);
		if (r < 0)
			return r == -ENOENT ? 0 : -1;
		/* The previews go before the events just read: every preview of an event is
		 * published before the event is appended, so none of them comes after it. */
		int previews = stream_previews(s);
		if (previews < 0) {
			cr_log_events_free(ev, n);
			return -1;
		}
		for (size_t i = 0; i < n && r == 0; i++) {
			_cleanup_json_ json_t *j = render_event(&ev[i]);
			_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
			r = text ? stream_put(s, ev[i].type, ev[i].seq, text) : -ENOMEM;
			s->after = ev[i].seq;
			if (strcmp(ev[i].type, "agent.message") == 0 ||
			    strcmp(ev[i].type, "agent.thinking") == 0)
				snprintf(s->closed[s->n_closed++ % PREVIEW_CLOSED],
					 sizeof(s->closed[0]), "%s", ev[i].id);
		}
		cr_log_events_free(ev, n);
		if (r < 0)
			return -1;
		int64_t now = cr_now_ms();
		if (n || previews) {
			s->ping_at = now + s->api->ping_ms;
			return 1;
		}
		/* (only after the events: the last one of a deleted session is session.deleted) */
		if (atomic_load(&s->state->deleted))
			return 0;
		if (now >= s->ping_at) {
			s->ping_at = now + s->api->ping_ms;
			return stream_put(s, "ping", 0, "{\"type\":\"ping\"}") < 0 ? -1 : 1;
		}
		int64_t wait = s->ping_at - now;
		r = cr_log_wait(s->api->log, s->session, s->after,
				(int)(wait < WAIT_SLICE_MS ? wait : WAIT_SLICE_MS), NULL, &err);
		if (r == -ESHUTDOWN || r == -ENOENT)
			return 0;
	}
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	(void)pos;
	if (s->off == s->len) {
		s->off = s->len = 0;
		int r = stream_fill(s);
		if (r <= 0)
			return r == 0 ? MHD_CONTENT_READER_END_OF_STREAM
				      : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	free(s->buf);
	free(s);
}

struct delta_args {
	struct ctx *c;
	bool message, thinking;
	int bad;
};

static enum MHD_Result delta_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct delta_args *a = cls;
	(void)kind;
	if (strcmp(key, "event_deltas[]") != 0 && strcmp(key, "event_deltas") != 0)
		return MHD_YES;
	if (value && strcmp(value, "agent.message") == 0)
		a->message = true;
	else if (value && strcmp(value, "agent.thinking") == 0)
		a->thinking = true;
	else {
		a->bad = bad(a->c, 400,
			     "event_deltas: \"%.64s\" has no previews (agent.message or "
			     "agent.thinking)",
			     value ? value : "");
		return MHD_NO;
	}
	return MHD_YES;
}

static int events_stream(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct api_record rec = { 0 };
	if (load(c, API_SESSION, id, 0, &rec) < 0)
		return -1;
	api_record_clear(&rec);
	struct cr_log_session_info info;
	if (cr_log_session_info(c->api->log, id, &info, &err) < 0)
		return internal(c, &err);
	/* Last-Event-ID resumes after that seq; without it the stream starts now (a client that
	 * must not miss anything lists the events after opening it and drops duplicates). */
	const char *last = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Last-Event-ID");
	uint64_t after = info.last_seq;
	struct delta_args da = { .c = c };
	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, delta_arg, &da);
	if (da.bad)
		return da.bad;
	if (last && *last) {
		if (parse_u64(last, &after) < 0)
			return bad(c, 400, "Last-Event-ID: \"%.32s\" is not an event's seq", last);
		if (after > info.last_seq)
			after = info.last_seq;
	}
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return bad(c, 500, "out of memory");
	snprintf(s->session, sizeof(s->session), "%s", id);
	s->api = c->api;
	s->after = after;
	s->ping_at = cr_now_ms() + c->api->ping_ms;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->fd = ci ? ci->connect_fd : -1;
	s->deltas_message = da.message;
	s->deltas_thinking = da.thinking;
	pthread_mutex_lock(&c->api->states_lock);
	s->state = state_of(c->api, id);
	if (s->state)
		s->preview_next = s->state->n_previews + 1;
	pthread_mutex_unlock(&c->api->states_lock);
	if (!s->state) {
		free(s);
		return bad(c, 500, "out of memory");
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								      stream_read, s, stream_free);
	if (!resp) {
		free(s);
		return bad(c, 500, "out of memory");
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	MHD_add_response_header(resp, "request-id", c->req->id);
	/* idle only between pings; a client that stops reading is dropped after a few */
	unsigned timeout = (unsigned)(c->api->ping_ms / 1000) * 4 + REQUEST_TIMEOUT_S;
	MHD_set_connection_option(c->conn, MHD_CONNECTION_OPTION_TIMEOUT, timeout);
	MHD_queue_response(c->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	c->queued = true;
	return 0;
}

/* --- routing -------------------------------------------------------------------------------- */

struct route {
	const char *method;
	int (*fn)(struct ctx *c, const char *id);
};

/* Runs the route for c's method, or answers 405 naming the ones there are. */
static int pick(struct ctx *c, const char *id, const struct route *routes, size_t n)
{
	char *allow = c->allow_buf;
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(c->method, routes[i].method) == 0)
			return routes[i].fn(c, id);
		len += (size_t)snprintf(allow + len, sizeof(c->allow_buf) - len, "%s%s",
					i ? ", " : "", routes[i].method);
	}
	c->allow = allow;
	return bad(c, 405, "%s is not allowed on %s (allowed: %s)", c->method, c->path, allow);
}

#define PICK(c, id, ...)                                          \
	({                                                        \
		static const struct route _r[] = { __VA_ARGS__ }; \
		pick(c, id, _r, CR_ARRAY_SIZE(_r));               \
	})

static int corral_route(struct ctx *c, const char *url);

static int route(struct ctx *c, const char *url)
{
	if (strncmp(url, "/v1/", 4) != 0)
		return bad(c, 404, "no such endpoint: %.128s", url);
	c->path = url;
	c->segbuf = strdup(url);
	if (!c->segbuf)
		return bad(c, 500, "out of memory");
	char *save = NULL;
	for (char *p = strtok_r(c->segbuf + 4, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (c->nseg == CR_ARRAY_SIZE(c->seg))
			return bad(c, 404, "no such endpoint: %.128s", url);
		c->seg[c->nseg++] = p;
	}
	const char *const *s = c->seg;
	size_t n = c->nseg;
	const char *id = n > 1 ? s[1] : NULL;
	if (n == 0)
		return bad(c, 404, "no such endpoint: %.128s", url);
	if (strcmp(s[0], "corral") == 0)
		return corral_route(c, url);
	if (strcmp(s[0], "agents") == 0) {
		if (n == 1)
			return PICK(c, id, { "GET", agents_list }, { "POST", agents_create });
		if (n == 2)
			return PICK(c, id, { "GET", agents_get }, { "POST", agents_update });
		if (n == 3 && strcmp(s[2], "archive") == 0)
			return PICK(c, id, { "POST", agents_archive });
		if (n == 3 && strcmp(s[2], "versions") == 0)
			return PICK(c, id, { "GET", agents_versions });
	} else if (strcmp(s[0], "environments") == 0) {
		if (n == 1)
			return PICK(c, id, { "GET", environments_list },
				    { "POST", environments_create });
		if (n == 2)
			return PICK(c, id, { "GET", environments_get },
				    { "POST", environments_update },
				    { "DELETE", environments_delete });
		if (n == 3 && strcmp(s[2], "archive") == 0)
			return PICK(c, id, { "POST", environments_archive });
	} else if (strcmp(s[0], "sessions") == 0) {
		if (n == 1)
			return PICK(c, id, { "GET", sessions_list }, { "POST", sessions_create });
		if (n == 2)
			return PICK(c, id, { "GET", sessions_get }, { "POST", sessions_update },
				    { "DELETE", sessions_delete });
		if (n == 3 && strcmp(s[2], "archive") == 0)
			return PICK(c, id, { "POST", sessions_archive });
		if (n == 3 && strcmp(s[2], "events") == 0)
			return PICK(c, id, { "GET", events_list }, { "POST", events_post });
		if (n == 4 && strcmp(s[2], "events") == 0 && strcmp(s[3], "stream") == 0)
			return PICK(c, id, { "GET", events_stream });
	}
	return bad(c, 404, "no such endpoint: %.128s", url);
}

/* --- corral's own: sandboxes (/v1/corral/sandboxes) ---------------------------------------- */

#define EXEC_ARGS_MAX 1024
#define EXEC_TIMEOUT_MS_DEFAULT 120000 /* corral sandbox exec's */
#define EXEC_TIMEOUT_MS_MAX 600000

/* The answer to a failure of the sandbox manager (struct cr_api_sandbox_ops says which). */
static int sandbox_failed(struct ctx *c, int r, const struct cr_error *err)
{
	switch (-r) {
	case ENOENT:
		return bad(c, 404, "%s", err->msg);
	case EACCES:
		return bad(c, 403, "%s", err->msg);
	case EINVAL:
		return bad(c, 400, "%s", err->msg);
	case EBUSY:
	case EEXIST:
	case EAGAIN:
	case ESRCH:
	case ESTALE:
	case ESHUTDOWN:
		return bad(c, 409, "%s", err->msg);
	default:
		return internal(c, err);
	}
}

/* A sandbox as the API shows it: what serves which session, never the handle. */
static json_t *render_sandbox(const struct cr_api_sandbox *sb)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "sandbox", "id", sb->id, "session_id",
			 sb->session, "status", sb->status, "created_at",
			 json_time(sb->created_ns));
}

/* Answers sandbox id as it is now. */
static int sandbox_reply(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct cr_api_sandbox sb;
	int r = c->api->hooks.sandboxes->get(c->api->hooks.arg, id, &sb, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	c->reply = render_sandbox(&sb);
	return 0;
}

/* Every sandbox in one page: there are as many as sessions with a sandbox on this host. */
static int sandboxes_list(struct ctx *c, const char *unused)
{
	(void)unused;
	struct cr_error err;
	struct cr_api_sandbox *v;
	size_t n;
	int r = c->api->hooks.sandboxes->list(c->api->hooks.arg, &v, &n, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	json_t *data = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(data, render_sandbox(&v[i]));
	free(v);
	c->reply = json_pack("{s:o, s:n}", "data", data, "next_page");
	return 0;
}

static int sandboxes_get(struct ctx *c, const char *id)
{
	return sandbox_reply(c, id);
}

/* {"command": [PROGRAM, ARG...], "timeout_ms": N}: argv, not shell text, run through the
 * sandbox's PID 1 as `corral sandbox exec` runs it. Everything is checked before anything runs. */
static int sandboxes_exec(struct ctx *c, const char *id)
{
	struct cr_error err;
	json_t *cmd, *t, *v;
	size_t i;
	if (need_body(c) < 0 || field(c, c->body, "", "command", K_ARRAY, F_REQUIRED, &cmd) < 0 ||
	    field(c, c->body, "", "timeout_ms", K_INT, F_NULLABLE, &t) < 0)
		return -1;
	size_t n = json_array_size(cmd);
	if (n == 0)
		return bad(c, 400,
			   "command: give the program and its arguments, e.g. "
			   "[\"/bin/ls\", \"-l\"]");
	if (n > EXEC_ARGS_MAX)
		return bad(c, 400, "command: at most %d elements", EXEC_ARGS_MAX);
	json_array_foreach (cmd, i, v) {
		if (!json_is_string(v))
			return bad(c, 400, "command[%zu]: expected a string", i);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return bad(c, 400, "command[%zu]: contains a NUL character", i);
	}
	if (!json_string_length(json_array_get(cmd, 0)))
		return bad(c, 400, "command[0]: the program must not be empty");
	json_int_t timeout = t ? json_integer_value(t) : EXEC_TIMEOUT_MS_DEFAULT;
	if (timeout < 1 || timeout > EXEC_TIMEOUT_MS_MAX)
		return bad(c, 400, "timeout_ms: want an integer from 1 to %d", EXEC_TIMEOUT_MS_MAX);
	_cleanup_free_ const char **argv = calloc(n + 1, sizeof(*argv));
	if (!argv)
		return bad(c, 500, "out of memory");
	json_array_foreach (cmd, i, v)
		argv[i] = json_string_value(v);
	json_t *resp = NULL;
	int r = c->api->hooks.sandboxes->exec(c->api->hooks.arg, id, argv, (unsigned)timeout, &resp,
					      &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	/* corral-init's answer: the program's exit code, or the signal that ended it */
	json_t *code = json_object_get(resp, "exit_code");
	json_t *sig = json_object_get(resp, "signal");
	json_t *out = json_object_get(resp, "stdout"), *errs = json_object_get(resp, "stderr");
	c->reply =
		json_pack("{s:s, s:s, s:O, s:O, s:b, s:O, s:s, s:s}", "type", "sandbox_exec_result",
			  "sandbox_id", id, "exit_code", json_is_integer(code) ? code : json_null(),
			  "signal", json_is_string(sig) ? sig : json_null(), "timed_out",
			  json_is_true(json_object_get(resp, "timed_out")), "duration_ms",
			  json_is_integer(json_object_get(resp, "duration_ms"))
				  ? json_object_get(resp, "duration_ms")
				  : json_null(),
			  "stdout", json_is_string(out) ? json_string_value(out) : "", "stderr",
			  json_is_string(errs) ? json_string_value(errs) : "");
	json_decref(resp);
	return 0;
}

static int sandbox_pause(struct ctx *c, const char *id, bool pause)
{
	struct cr_error err;
	int r = c->api->hooks.sandboxes->pause(c->api->hooks.arg, id, pause, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	return sandbox_reply(c, id);
}

static int sandboxes_pause(struct ctx *c, const char *id)
{
	return sandbox_pause(c, id, true);
}

static int sandboxes_resume(struct ctx *c, const char *id)
{
	return sandbox_pause(c, id, false);
}

/* A session a sandbox may be handed from or to: known, not archived, not running (a brain
 * driving it would find its sandbox changed between two tool calls). */
static int handoff_party(struct ctx *c, const char *session)
{
	struct api_record rec = { 0 };
	if (load(c, API_SESSION, session, 0, &rec) < 0)
		return -1;
	bool archived = rec.archived_ns != 0;
	api_record_clear(&rec);
	if (archived)
		return bad(c, 400, "session %s is archived", session);
	struct session_state s;
	session_snapshot(c->api, session, &s);
	if (s.status == ST_RUNNING || s.status == ST_RESCHEDULING)
		return bad(c, 409,
			   "session %s is running: a sandbox is handed off only between sessions "
			   "that are not (wait until it is idle)",
			   session);
	return 0;
}

/* {"handle": "sbh_...", "session_id": "sesn_..."}: the hands move to that session, the caller
 * showing that it holds them (the handle is a capability). */
static int sandboxes_handoff(struct ctx *c, const char *id)
{
	struct cr_error err;
	struct cr_api_sandbox sb;
	const char *handle, *to;
	if (need_body(c) < 0 || string_field(c, c->body, "", "handle", F_REQUIRED, &handle) < 0 ||
	    string_field(c, c->body, "", "session_id", F_REQUIRED, &to) < 0)
		return -1;
	int r = c->api->hooks.sandboxes->get(c->api->hooks.arg, id, &sb, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	if (handoff_party(c, sb.session) < 0 || handoff_party(c, to) < 0)
		return -1;
	r = c->api->hooks.sandboxes->handoff(c->api->hooks.arg, id, sb.session, handle, to, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	return sandbox_reply(c, id);
}

/* DELETE, ?keep_workspace=true to keep the workspace on the host. */
static int sandboxes_destroy(struct ctx *c, const char *id)
{
	struct cr_error err;
	bool keep = false;
	if (query_bool(c, "keep_workspace", &keep) < 0)
		return -1;
	int r = c->api->hooks.sandboxes->destroy(c->api->hooks.arg, id, keep, &err);
	if (r < 0)
		return sandbox_failed(c, r, &err);
	c->reply = json_pack("{s:s, s:s}", "id", id, "type", "sandbox_deleted");
	return 0;
}

static int corral_route(struct ctx *c, const char *url)
{
	const char *const *s = c->seg;
	size_t n = c->nseg;
	const char *id = n > 2 ? s[2] : NULL;
	if (n >= 2 && strcmp(s[1], "sandboxes") == 0) {
		if (!c->api->hooks.sandboxes)
			return bad(c, 404, "this corrald has no sandbox manager");
		if (n == 2)
			return PICK(c, id, { "GET", sandboxes_list });
		if (n == 3)
			return PICK(c, id, { "GET", sandboxes_get },
				    { "DELETE", sandboxes_destroy });
		if (n == 4 && strcmp(s[3], "exec") == 0)
			return PICK(c, id, { "POST", sandboxes_exec });
		if (n == 4 && strcmp(s[3], "pause") == 0)
			return PICK(c, id, { "POST", sandboxes_pause });
		if (n == 4 && strcmp(s[3], "resume") == 0)
			return PICK(c, id, { "POST", sandboxes_resume });
		if (n == 4 && strcmp(s[3], "handoff") == 0)
			return PICK(c, id, { "POST", sandboxes_handoff });
	}
	return bad(c, 404, "no such endpoint: %.128s", url);
}

/* --- HTTP ----------------------------------------------------------------------------------- */

/* Queues status with body (taken; NULL: out of memory, answered as such where it can be). */
static enum MHD_Result send_json(struct MHD_Connection *conn, struct request *rq, unsigned status,
				 json_t *body, const char *allow)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		/* a 200 stays a 200: after an append, anything else would be a lie */
		static const char ok[] = "{}",
				  oom[] = "{\"type\":\"error\",\"error\":{\"type\":"
					  "\"api_error\",\"message\":\"out of memory\"}}";
		text = strdup(status == 200 ? ok : oom);
		if (!text)
			return MHD_NO;
		if (status != 200)
			status = 500;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "request-id", rq->id);
	/* the SDK retries 408, 409, 429 and 5xx unless told: a deterministic error is final */
	if (status >= 400 && status < 500)
		MHD_add_response_header(resp, "x-should-retry", "false");
	if (allow)
		MHD_add_response_header(resp, "Allow", allow);
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result send_problem(struct MHD_Connection *conn, struct request *rq,
				    const struct problem *p, const char *allow)
{
	json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type",
				 error_type(p->status), "message", p->msg, "request_id", rq->id);
	return send_json(conn, rq, p->status, body, allow);
}

/* Compares the key in constant time (in the length of what the client sent). */
static bool key_matches(const struct cr_api *api, const char *given)
{
	size_t n = strlen(api->key), m = strlen(given);
	unsigned char diff = n != m;
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)given[i] ^ (unsigned char)api->key[i < n ? i : 0];
	return diff == 0;
}

static bool peer_in_group(const struct cr_api *api, int fd, const struct ucred *cred)
{
	if (cred->gid == api->group)
		return true;
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == api->group)
			return true;
	return false;
}

/* Who may ask: on TCP, whoever has the key; on the Unix socket, root, corrald's own user and
 * the corral group (the socket's mode says so too; this holds if its mode is changed). */
static bool access_ok(struct request *rq, struct MHD_Connection *conn, struct problem *p)
{
	struct cr_api *api = rq->api;
	if (rq->tcp) {
		const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
		const char *auth =
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
		bool ok = k && key_matches(api, k);
		if (!ok && auth && strncasecmp(auth, "Bearer ", 7) == 0)
			ok = key_matches(api, auth + 7 + strspn(auth + 7, " "));
		if (ok)
			return true;
		p->status = 401;
		snprintf(p->msg, sizeof(p->msg), "%s",
			 k || auth ? "invalid API key"
				   : "missing API key: send corrald's key (its state directory's "
				     "api-key file) as x-api-key or Authorization: Bearer");
		return false;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		p->status = 403;
		snprintf(p->msg, sizeof(p->msg), "cannot tell who is asking (SO_PEERCRED)");
		return false;
	}
	if (cred.uid == 0 || cred.uid == geteuid() ||
	    (api->have_group && peer_in_group(api, ci->connect_fd, &cred)))
		return true;
	p->status = 403;
	snprintf(p->msg, sizeof(p->msg),
		 "uid %u may not use corrald: it is not root, not corrald's user and not in the "
		 "corral group",
		 (unsigned)cred.uid);
	return false;
}

static enum MHD_Result dispatch(struct request *rq, struct MHD_Connection *conn, const char *url,
				const char *method)
{
	struct ctx c = { .api = rq->api, .conn = conn, .req = rq, .method = method };
	int r = 0;
	if (rq->len) {
		json_error_t je;
		c.body = json_loadb(rq->body, rq->len, 0, &je);
		if (!c.body)
			r = bad(&c, 400, "the body is not valid JSON: %s (line %d, column %d)",
				je.text, je.line, je.column);
		else if (!json_is_object(c.body))
			r = bad(&c, 400, "the body must be a JSON object");
	}
	if (r == 0)
		r = route(&c, url);
	enum MHD_Result ret = MHD_YES;
	if (!c.queued)
		ret = r < 0 ? send_problem(conn, rq, &c.prob, c.allow)
			    : send_json(conn, rq, 200, TAKE_PTR(c.reply), NULL);
	if (r == 0 && c.wake[0] && rq->api->hooks.wake)
		rq->api->hooks.wake(rq->api->hooks.arg, c.wake, c.wake_through);
	json_decref(c.body);
	json_decref(c.reply);
	free(c.segbuf);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct listener *l = cls;
	struct request *rq = *con_cls;
	(void)version;
	if (!rq) {
		struct cr_error err;
		struct problem p = { 0 };
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->api = l->api;
		rq->tcp = l->tcp;
		if (make_id("req_", rq->id, &err) < 0)
			snprintf(rq->id, sizeof(rq->id), "req_unknown");
		*con_cls = rq;
		/* answered before the body is read: MHD then closes the connection after the
		 * answer (curl's Expect: 100-continue sends no body at all) */
		const char *cl =
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		uint64_t len;
		if (!access_ok(rq, conn, &p)) {
			rq->answered = true;
			return send_problem(conn, rq, &p, NULL);
		}
		if (cl && parse_u64(cl, &len) == 0 && len > rq->api->max_body) {
			rq->answered = true;
			p.status = 413;
			snprintf(p.msg, sizeof(p.msg),
				 "the body (%" PRIu64 " bytes) is larger than "
				 "corrald takes (%zu)",
				 len, rq->api->max_body);
			return send_problem(conn, rq, &p, NULL);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (rq->answered || rq->too_large)
			return MHD_YES;
		if (rq->len + n > rq->api->max_body) {
			/* read on and drop the rest, to answer 413 on a connection still in step */
			rq->too_large = true;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
			return MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			while (cap < rq->len + n)
				cap *= 2;
			char *b = realloc(rq->body, cap);
			if (!b)
				return MHD_NO;
			rq->body = b;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		return MHD_YES;
	}
	if (rq->answered)
		return MHD_YES;
	rq->answered = true;
	if (rq->too_large) {
		struct problem p = { .status = 413 };
		snprintf(p.msg, sizeof(p.msg), "the body is larger than corrald takes (%zu bytes)",
			 rq->api->max_body);
		return send_problem(conn, rq, &p, NULL);
	}
	return dispatch(rq, conn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "corrald: api: %s%s", msg,
		msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
}

/* --- the TCP key ---------------------------------------------------------------------------- */

static bool key_valid(const char *k)
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t p = strlen(KEY_PREFIX);
	return strncmp(k, KEY_PREFIX, p) == 0 && strlen(k) == p + KEY_CHARS &&
	       strspn(k + p, b64url) == KEY_CHARS;
}

/* "sk-corral-" + base64url (unpadded) of 32 random bytes. */
static int new_key(char out[sizeof(KEY_PREFIX) + KEY_CHARS], struct cr_error *err)
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[33] = { 0 }; /* (32 random, one zero for the last group) */
	size_t got = 0;
	while (got < 32) {
		ssize_t r = getrandom(raw + got, 32 - got, 0);
		if (r < 0 && errno != EINTR)
			return cr_error_errno(err, errno, "getrandom");
		if (r > 0)
			got += (size_t)r;
	}
	size_t o = strlen(KEY_PREFIX);
	memcpy(out, KEY_PREFIX, o);
	for (size_t i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		for (int j = 3; j >= 0 && o < strlen(KEY_PREFIX) + KEY_CHARS; j--)
			out[o++] = b64url[(v >> (6 * j)) & 63];
	}
	out[o] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* Reads the key at path, which must be a regular file of ours, mode 0600. */
static int read_key(struct cr_api *api, const char *path, int fd, struct cr_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cr_error_errno(err, errno, "api key %s", path);
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 07777) != 0600)
		return cr_error_set(err, EPERM,
				    "api key %s must be a regular file of uid %u with mode 0600 "
				    "(it is uid %u, mode %04o): fix it or remove it for a new key",
				    path, (unsigned)geteuid(), (unsigned)st.st_uid,
				    (unsigned)(st.st_mode & 07777));
	char buf[128];
	ssize_t n;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return cr_error_errno(err, errno, "read api key %s", path);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!key_valid(buf))
		return cr_error_set(err, EINVAL,
				    "api key %s does not hold a corral key (%s + %d characters of "
				    "base64url): remove it for a new one",
				    path, KEY_PREFIX, KEY_CHARS);
	memcpy(api->key, buf, sizeof(api->key)); /* (key_valid: exactly that long, NUL included) */
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* Loads <state_dir>/api-key, or makes it on first start: written to a temporary file (0600,
 * O_EXCL), synced, then linked into place, which fails rather than replace a key another
 * process made meanwhile. */
static int load_key(struct cr_api *api, struct cr_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/api-key", api->state_dir) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.api-key.XXXXXX", api->state_dir) >= sizeof(tmp))
		return cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	for (int attempt = 0; attempt < 2; attempt++) {
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			return read_key(api, path, fd, err);
		if (errno == ELOOP)
			return cr_error_set(err, ELOOP, "api key %s is a symbolic link", path);
		if (errno != ENOENT)
			return cr_error_errno(err, errno, "open api key %s", path);
		char key[sizeof(api->key)];
		int r = new_key(key, err);
		if (r < 0)
			return r;
		_cleanup_close_ int t = mkostemp(tmp, O_CLOEXEC); /* (0600, O_EXCL) */
		if (t < 0)
			return cr_error_errno(err, errno, "create %s", tmp);
		char line[sizeof(key) + 1];
		snprintf(line, sizeof(line), "%s\n", key);
		size_t len = strlen(line);
		ssize_t w = write(t, line, len);
		explicit_bzero(line, sizeof(line));
		explicit_bzero(key, sizeof(key));
		if (w != (ssize_t)len || fsync(t) < 0) {
			r = cr_error_errno(err, w < 0 ? errno : EIO, "write %s", tmp);
			unlink(tmp);
			return r;
		}
		r = link(tmp, path) < 0 ? -errno : 0;
		unlink(tmp);
		if (r == -EEXIST)
			continue; /* (made meanwhile: read that one) */
		if (r < 0)
			return cr_error_errno(err, -r, "create api key %s", path);
		_cleanup_close_ int dir = open(api->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir < 0 || fsync(dir) < 0)
			return cr_error_errno(err, errno, "sync %s", api->state_dir);
	}
	return cr_error_set(err, EAGAIN, "api key %s: made and gone again", path);
}

/* --- sockets -------------------------------------------------------------------------------- */

/* The Unix socket: its directory made (0755) if missing; a stale socket (nothing answers)
 * replaced, a live one refused; bound, 0660, group corral when there is one. */
static int unix_listen(struct cr_api *api, int *ret_fd, struct cr_error *err)
{
	const char *path = api->socket_path;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return cr_error_set(err, ENAMETOOLONG, "socket path %s is too long", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);

	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return cr_error_errno(err, errno, "create socket directory %s", dir);
	}

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return cr_error_set(err, EEXIST, "%s exists and is not a socket", path);
		_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return cr_error_errno(err, errno, "socket");
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return cr_error_set(err, EADDRINUSE,
					    "another corrald is serving on %s: stop it first",
					    path);
		if (errno != ECONNREFUSED)
			return cr_error_errno(err, errno, "probe %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return cr_error_errno(err, errno, "remove stale socket %s", path);
	} else if (errno != ENOENT) {
		return cr_error_errno(err, errno, "%s", path);
	}

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return cr_error_errno(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return cr_error_errno(err, errno, "bind %s", path);
	/* (no connection can come before listen(): mode and group are set first) */
	if (chmod(path, 0660) < 0)
		return cr_error_errno(err, errno, "chmod %s", path);
	if (api->have_group && chown(path, (uid_t)-1, api->group) < 0)
		return cr_error_errno(err, errno, "chown %s to group corral", path);
	if (stat(path, &st) < 0)
		return cr_error_errno(err, errno, "%s", path);
	api->sock_dev = st.st_dev;
	api->sock_ino = st.st_ino;
	if (listen(fd, 128) < 0)
		return cr_error_errno(err, errno, "listen on %s", path);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* The loopback TCP listener of listen ("127.0.0.1:PORT" or "[::1]:PORT"; port 0: any). */
static int tcp_listen(struct cr_api *api, const char *listen_at, int *ret_fd, bool *ret_v6,
		      struct cr_error *err)
{
	char host[64];
	const char *colon = strrchr(listen_at, ':');
	size_t hl = colon ? (size_t)(colon - listen_at) : 0;
	uint64_t port;
	if (!colon || hl == 0 || hl >= sizeof(host) || parse_u64(colon + 1, &port) < 0 ||
	    port > 65535)
		return cr_error_set(err, EINVAL, "listen address %s: want HOST:PORT", listen_at);
	memcpy(host, listen_at, hl);
	host[hl] = '\0';
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	bool v6 = host[0] == '[' && host[hl - 1] == ']';
	if (v6) {
		host[hl - 1] = '\0';
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return cr_error_set(err, EINVAL, "listen address %s: bad IPv6 address",
					    listen_at);
		sl = sizeof(*a6);
	} else {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return cr_error_set(err, EINVAL, "listen address %s: bad IPv4 address",
					    listen_at);
		sl = sizeof(*a4);
	}
	_cleanup_close_ int fd =
		socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return cr_error_errno(err, errno, "socket");
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0))
		return cr_error_errno(err, errno, "setsockopt");
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
		return cr_error_errno(err, errno, "bind %s", listen_at);
	if (listen(fd, 128) < 0)
		return cr_error_errno(err, errno, "listen on %s", listen_at);
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return cr_error_errno(err, errno, "getsockname");
	api->port = ntohs(v6 ? a6->sin6_port : a4->sin_port);
	*ret_v6 = v6;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static struct MHD_Daemon *start_daemon(struct cr_api *api, struct listener *l, int fd, bool v6)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	l->api = api;
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, l, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)REQUEST_TIMEOUT_S,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
}

/* --- start and stop ------------------------------------------------------------------------- */

static int ping_interval(void)
{
	const char *s = getenv("CORRAL_API_PING_MS");
	uint64_t v;
	if (s && parse_u64(s, &v) == 0 && v >= 10 && v <= 3600000)
		return (int)v;
	return PING_MS_DEFAULT;
}

int cr_api_start(const struct cr_api_config *cfg, struct cr_api **ret, struct cr_error *err)
{
	if (!cfg->log || !cfg->state_dir || !cfg->socket_path)
		return cr_error_set(err, EINVAL,
				    "api: a log, a state directory and a socket path "
				    "are needed");
	struct cr_api *api = calloc(1, sizeof(*api));
	if (!api)
		return cr_error_errno(err, ENOMEM, "api");
	api->log = cfg->log;
	api->hooks = cfg->hooks;
	api->max_body = cfg->max_body ? cfg->max_body : CR_API_MAX_BODY_DEFAULT;
	api->ping_ms = ping_interval();
	pthread_mutex_init(&api->states_lock, NULL);
	pthread_mutex_init(&api->configs.lock, NULL);
	api->state_dir = strdup(cfg->state_dir);
	api->socket_path = strdup(cfg->socket_path);
	int r;
	if (!api->state_dir || !api->socket_path) {
		r = cr_error_errno(err, ENOMEM, "api");
		goto fail;
	}
	/* (getgrnam_r: the group's name is all corrald needs; a missing group is fine) */
	struct group gr, *grp = NULL;
	char grbuf[4096];
	if (getgrnam_r("corral", &gr, grbuf, sizeof(grbuf), &grp) == 0 && grp) {
		api->have_group = true;
		api->group = grp->gr_gid;
	}
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/api.db", cfg->state_dir) >= sizeof(path)) {
		r = cr_error_set(err, ENAMETOOLONG, "state directory path too long");
		goto fail;
	}
	if ((r = api_store_open(path, &api->store, err)) < 0 || (r = load_key(api, err)) < 0)
		goto fail;

	int fd = -1;
	if ((r = unix_listen(api, &fd, err)) < 0)
		goto fail;
	api->unix_listener.tcp = false;
	/* MHD owns a listen socket it was given from here on and closes it when it stops; when
	 * it fails to start, whether it closed it is not said, so it is left (a leak at worst, on
	 * the way out; a second close could hit another thread's fd) */
	api->unix_daemon = start_daemon(api, &api->unix_listener, fd, false);
	if (!api->unix_daemon) {
		r = cr_error_set(err, EIO, "api: cannot serve on %s (libmicrohttpd did not start)",
				 cfg->socket_path);
		goto fail;
	}
	if (cfg->listen) {
		bool v6 = false;
		if ((r = tcp_listen(api, cfg->listen, &fd, &v6, err)) < 0)
			goto fail;
		api->tcp_listener.tcp = true;
		api->tcp_daemon = start_daemon(api, &api->tcp_listener, fd, v6);
		if (!api->tcp_daemon) {
			r = cr_error_set(err, EIO,
					 "api: cannot serve on %s (libmicrohttpd did not start)",
					 cfg->listen);
			goto fail;
		}
	}
	*ret = api;
	return 0;
fail:
	cr_api_stop(api);
	return r;
}

void cr_api_stop(struct cr_api *api)
{
	if (!api)
		return;
	/* streams see this within WAIT_SLICE_MS and end; MHD then joins their threads */
	atomic_store(&api->stopping, true);
	if (api->tcp_daemon)
		MHD_stop_daemon(api->tcp_daemon);
	if (api->unix_daemon) {
		MHD_stop_daemon(api->unix_daemon);
		/* only our socket: a corrald started since may have replaced it */
		struct stat st;
		if (lstat(api->socket_path, &st) == 0 && st.st_dev == api->sock_dev &&
		    st.st_ino == api->sock_ino)
			unlink(api->socket_path);
	}
	api_store_close(api->store);
	tdestroy(api->states, state_free);
	pthread_mutex_destroy(&api->states_lock);
	for (size_t i = 0; i < CONFIG_CACHE_SLOTS; i++) {
		json_decref(api->configs.e[i].agent);
		json_decref(api->configs.e[i].environment);
	}
	pthread_mutex_destroy(&api->configs.lock);
	explicit_bzero(api->key, sizeof(api->key));
	free(api->state_dir);
	free(api->socket_path);
	free(api);
}

unsigned cr_api_port(const struct cr_api *api)
{
	return api ? api->port : 0;
}

int cr_api_session_config(struct cr_api *api, const char *session, json_t **ret_agent,
			  json_t **ret_environment, struct cr_error *err)
{
	struct api_record rec = { 0 }, env = { 0 };
	if (!cr_id_valid("sesn_", session))
		return cr_error_set(err, ENOENT, "session %s not found", session);
	if (config_get(api, session, ret_agent, ret_environment))
		return 0;
	uint64_t gen = config_gen(api);
	int r = api_store_get(api->store, API_SESSION, session, 0, false, &rec, err);
	if (r < 0)
		return r;
	/* (a deleted environment still describes the sessions made with it) */
	r = api_store_get(api->store, API_ENVIRONMENT, rec.environment, 0, true, &env, err);
	if (r == 0) {
		json_t *agent = json_object_get(rec.body, "agent");
		*ret_agent = agent ? json_deep_copy(agent) : json_object();
		*ret_environment = render_environment(&env);
		if (*ret_agent && *ret_environment)
			config_put(api, session, *ret_agent, *ret_environment, gen);
	} else if (r == -ENOENT) {
		r = cr_error_set(err, ENOENT, "session %s: its environment %s is gone", session,
				 rec.environment);
	}
	api_record_clear(&rec);
	api_record_clear(&env);
	return r;
}
