/* runtime/model: the Messages API client of include/corral/model.h. One curl multi handle per
 * client, driven by one thread: with io_uring, a poll request per socket curl asks about and the
 * wait's timeout for curl's timer; without it, curl's own poll loop. A call is a state machine
 * over attempts (waiting to start or retry, running, done); all its ends go through finish(),
 * which calls on_done last, so on_done may free the call or start new ones. The API key lives
 * only in the client (wiped on free) and in the header lists handed to curl (wiped before they
 * are freed); every error message is scrubbed of it before it leaves this file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#ifdef CONFIG_CORRAL_IO_URING
#include <liburing.h>
#endif

#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/model.h"

#define ERROR_BODY_MAX (64u << 10) /* of an error response kept for its message */
#define RING_ENTRIES 256
#define CQE_BATCH 64
#define RETRY_AFTER_MAX_MS 2147483647.0 /* the SDK's bound: one timer's largest delay */

/* --- the key ------------------------------------------------------------------------------- */

void cr_model_key_free(char *key)
{
	if (!key)
		return;
	explicit_bzero(key, strlen(key));
	free(key);
}

/* A key is sent in a header: printable ASCII, no spaces, nothing that could end the line. */
static bool key_ok(const char *k, size_t len)
{
	if (len == 0 || len > CR_MODEL_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (k[i] <= ' ' || k[i] > '~')
			return false;
	return true;
}

int cr_model_key_load(const char *path, char **ret_key, struct cr_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return cr_error_errno(err, errno, "API key file %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cr_error_errno(err, errno, "API key file %s", path);
	if (!S_ISREG(st.st_mode))
		return cr_error_set(err, EINVAL, "API key file %s: not a regular file", path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return cr_error_set(err, EACCES,
				    "API key file %s: owned by uid %u, not by root or this user",
				    path, (unsigned)st.st_uid);
	if (st.st_mode & 077)
		return cr_error_set(err, EACCES,
				    "API key file %s: mode %04o lets others read it (chmod 600 it)",
				    path, (unsigned)(st.st_mode & 07777));
	char buf[CR_MODEL_KEY_MAX + 3];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			explicit_bzero(buf, sizeof(buf));
			return cr_error_errno(err, e, "API key file %s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	bool ok = key_ok(buf, len);
	char *key = ok ? strndup(buf, len) : NULL;
	explicit_bzero(buf, sizeof(buf));
	if (!ok)
		return cr_error_set(err, EINVAL,
				    "API key file %s: not one key of 1 to %u printable characters "
				    "without spaces",
				    path, CR_MODEL_KEY_MAX);
	if (!key)
		return cr_error_errno(err, ENOMEM, "API key file %s", path);
	*ret_key = key;
	return 0;
}

/* Replaces every occurrence of key in msg with "[api key]" (a key shorter than that: with
 * asterisks), in place. */
static void scrub(char *msg, const char *key)
{
	static const char mark[] = "[api key]";
	size_t klen = key ? strlen(key) : 0;
	char *p;
	if (!klen)
		return;
	while ((p = strstr(msg, key))) {
		size_t rest = strlen(p + klen);
		if (klen >= sizeof(mark) - 1) {
			memcpy(p, mark, sizeof(mark) - 1);
			memmove(p + sizeof(mark) - 1, p + klen, rest + 1);
		} else {
			/* A key shorter than the mark: blank it out in place. */
			memset(p, '*', klen);
		}
	}
}

/* --- structures ------------------------------------------------------------------------------ */

/* One socket curl asked about, and the poll request for it (io_uring). Freed only when no
 * request is in flight, at the end of a loop turn. */
struct sock {
	curl_socket_t fd;
	short want; /* POLLIN|POLLOUT curl wants; 0: none */
	short armed; /* the events of the request in flight */
	bool inflight, dead;
	struct sock *prev, *next; /* every sock of the client */
};

enum call_state {
	CALL_WAITING, /* to start its next attempt at retry_at */
	CALL_RUNNING,
	CALL_DONE,
};

struct cr_model_call {
	struct cr_model_client *c;
	struct cr_model_call *prev, *next; /* the client's calls not done */
	struct cr_model_call_opts opts;
	char **headers; /* copied opts.headers */
	char *body;
	enum call_state state;
	atomic_bool cancel;
	uint64_t retry_at;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	/* the attempt */
	uint64_t attempt_start, last_byte;
	struct cr_model_stream *stream;
	bool delivered; /* an event went to on_event */
	bool headers_seen, body_seen, sse;
	struct cr_buf errbody;
	char content_type[128];
	char retry_after[64], retry_after_ms[64];
	int should_retry; /* x-should-retry: -1 absent, 0 false, 1 true */
	int failed; /* an end decided inside curl's callbacks (negative errno) */
	struct cr_error fail;
	char fail_type[64];
	struct cr_model_result result;
};

struct cr_model_client {
	char *url; /* base_url + /v1/messages */
	char *base_url, *key, *version, *model;
	struct cr_model_config cfg; /* with the strings above */
	CURLM *multi;
	bool timer_set;
	uint64_t timer_at;
	uint64_t scan_at; /* calls need a look (start, retry, timeout, cancel) by then */
	struct cr_model_call *calls;
	unsigned ncalls;
	int evfd; /* written by cr_model_call_cancel */
	uint64_t rng;
	bool uring;
#ifdef CONFIG_CORRAL_IO_URING
	struct io_uring ring;
	bool ev_armed;
	uint64_t ev_value;
	struct sock *socks;
#endif
	int loop_error;
	struct cr_error loop_fail;
};

static const char *const driver_names[] = { "poll", "io_uring" };

const char *cr_model_client_driver(const struct cr_model_client *c)
{
	return driver_names[c->uring];
}

void cr_model_config_init(struct cr_model_config *cfg)
{
	*cfg = (struct cr_model_config){
		.max_retries = CR_MODEL_MAX_RETRIES_DEFAULT,
		.timeout_ms = CR_MODEL_TIMEOUT_MS_DEFAULT,
		.idle_ms = CR_MODEL_IDLE_MS_DEFAULT,
	};
}

/* --- io_uring driver ------------------------------------------------------------------------- */

#ifdef CONFIG_CORRAL_IO_URING
#define EVFD_TAG ((uint64_t)1) /* user_data of the eventfd's poll; a sock's is its address */
#define NO_TAG ((uint64_t)0) /* poll removals: their completions are ignored */

static struct io_uring_sqe *get_sqe(struct cr_model_client *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	if (!sqe) {
		io_uring_submit(&c->ring);
		sqe = io_uring_get_sqe(&c->ring);
	}
	return sqe;
}

static int sock_arm(struct cr_model_client *c, struct sock *s)
{
	struct io_uring_sqe *sqe = get_sqe(c);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, s->fd, (unsigned)s->want);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)s);
	s->inflight = true;
	s->armed = s->want;
	return 0;
}

static int sock_disarm(struct cr_model_client *c, struct sock *s)
{
	struct io_uring_sqe *sqe = get_sqe(c);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)s);
	io_uring_sqe_set_data64(sqe, NO_TAG);
	s->armed = 0; /* re-armed with what curl then wants when the removal completes */
	return 0;
}

/* curl's socket callback: keep one poll request per socket matching what curl wants. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct cr_model_client *c = userp;
	struct sock *s = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			s->dead = true;
			s->want = 0;
			if (s->inflight && s->armed)
				return sock_disarm(c, s) < 0 ? -1 : 0;
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	}
	s->want = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
			  ((what & CURL_POLL_OUT) ? POLLOUT : 0));
	if (s->inflight) {
		if (s->armed && s->armed != s->want)
			return sock_disarm(c, s) < 0 ? -1 : 0;
		return 0;
	}
	return s->want && sock_arm(c, s) < 0 ? -1 : 0;
}

static void sock_unlink_free(struct cr_model_client *c, struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* Frees the dead socks no request refers to any more. */
static void socks_sweep(struct cr_model_client *c)
{
	for (struct sock *s = c->socks, *next; s; s = next) {
		next = s->next;
		if (s->dead && !s->inflight)
			sock_unlink_free(c, s);
	}
}

static int ev_arm(struct cr_model_client *c)
{
	struct io_uring_sqe *sqe = get_sqe(c);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, c->evfd, POLLIN);
	io_uring_sqe_set_data64(sqe, EVFD_TAG);
	c->ev_armed = true;
	return 0;
}

static int uring_init(struct cr_model_client *c)
{
	int r = io_uring_queue_init(RING_ENTRIES, &c->ring, 0);
	if (r < 0)
		return r;
	c->uring = true;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	return ev_arm(c);
}

static void uring_exit(struct cr_model_client *c)
{
	if (!c->uring)
		return;
	io_uring_queue_exit(&c->ring); /* the kernel cancels what is in flight */
	while (c->socks)
		sock_unlink_free(c, c->socks);
	c->uring = false;
}

static void handle_cqe(struct cr_model_client *c, uint64_t tag, int res)
{
	if (tag == NO_TAG)
		return;
	if (tag == EVFD_TAG) {
		uint64_t v;
		c->ev_armed = false;
		if (read(c->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return;
		c->scan_at = 0;
		return;
	}
	struct sock *s = (struct sock *)(uintptr_t)tag;
	s->inflight = false;
	if (s->dead || res < 0 || !s->armed)
		return; /* cancelled or replaced: re-armed (when still wanted) by the caller */
	int ev = 0;
	if (res & (POLLIN | POLLHUP))
		ev |= CURL_CSELECT_IN;
	if (res & POLLOUT)
		ev |= CURL_CSELECT_OUT;
	if (res & POLLERR)
		ev |= CURL_CSELECT_ERR;
	int running;
	curl_multi_socket_action(c->multi, s->fd, ev, &running);
}

/* Waits up to wait_ns (UINT64_MAX: no limit) for completions and handles them. */
static int uring_wait(struct cr_model_client *c, uint64_t wait_ns, struct cr_error *err)
{
	if (!c->ev_armed && ev_arm(c) < 0)
		return cr_error_set(err, EBUSY, "model client: io_uring submission queue full");
	struct __kernel_timespec ts = { .tv_sec = (long long)(wait_ns / 1000000000u),
					.tv_nsec = (long long)(wait_ns % 1000000000u) };
	struct io_uring_cqe *cqe;
	int r = io_uring_submit_and_wait_timeout(&c->ring, &cqe, 1,
						 wait_ns == UINT64_MAX ? NULL : &ts, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return cr_error_errno(err, -r, "model client: io_uring wait");
	for (;;) {
		struct io_uring_cqe *batch[CQE_BATCH];
		unsigned n = io_uring_peek_batch_cqe(&c->ring, batch, CQE_BATCH);
		if (!n)
			break;
		struct {
			uint64_t tag;
			int res;
		} got[CQE_BATCH];
		for (unsigned i = 0; i < n; i++) {
			got[i].tag = io_uring_cqe_get_data64(batch[i]);
			got[i].res = batch[i]->res;
		}
		io_uring_cq_advance(&c->ring, n);
		for (unsigned i = 0; i < n; i++) {
			handle_cqe(c, got[i].tag, got[i].res);
		}
		/* Socks curl still wants and no request watches (a completion, a removal). */
		for (struct sock *s = c->socks; s; s = s->next)
			if (!s->dead && !s->inflight && s->want && sock_arm(c, s) < 0)
				return cr_error_set(err, EBUSY,
						    "model client: io_uring submission queue full");
	}
	return 0;
}
#else
static int uring_init(struct cr_model_client *c)
{
	(void)c;
	return -EOPNOTSUPP;
}

static void uring_exit(struct cr_model_client *c)
{
	(void)c;
}

static int uring_wait(struct cr_model_client *c, uint64_t wait_ns, struct cr_error *err)
{
	(void)c;
	(void)wait_ns;
	return cr_error_set(err, EOPNOTSUPP, "io_uring is not built in");
}
#endif

/* curl's timer callback: when to tell it that time passed (-1: never). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct cr_model_client *c = userp;
	(void)multi;
	c->timer_set = timeout_ms >= 0;
	if (c->timer_set)
		c->timer_at = cr_now_ns() + (uint64_t)timeout_ms * 1000000u;
	return 0;
}

/* --- the client ------------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init(void)
{
	curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t rng_next(struct cr_model_client *c)
{
	/* xorshift64*: jitter needs no more */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ull;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int cr_model_client_new(const struct cr_model_config *cfg, struct cr_model_client **ret,
			struct cr_error *err)
{
	const char *base = cfg->base_url;
	if (!base) {
		base = getenv("ANTHROPIC_BASE_URL");
		if (!base || !*base)
			base = CR_MODEL_BASE_URL_DEFAULT;
	}
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
		return cr_error_set(err, EINVAL,
				    "model base URL \"%.200s\": not http:// or https://", base);
	if (!cfg->api_key || !key_ok(cfg->api_key, strlen(cfg->api_key)))
		return cr_error_set(err, EINVAL,
				    "model client: no API key, or not one of printable characters "
				    "without spaces");
	const char *version = cfg->version ? cfg->version : CR_MODEL_VERSION_DEFAULT;
	if (!*version || strpbrk(version, "\r\n"))
		return cr_error_set(err, EINVAL, "model client: bad anthropic-version");
	if (cfg->max_retries > CR_MODEL_MAX_RETRIES_MAX)
		return cr_error_set(err, EINVAL, "model client: max_retries %u: at most %u",
				    cfg->max_retries, CR_MODEL_MAX_RETRIES_MAX);
	if (!cfg->timeout_ms || !cfg->idle_ms)
		return cr_error_set(err, EINVAL, "model client: timeouts must be positive");
	pthread_once(&curl_once, curl_init);
	if (curl_init_code != CURLE_OK)
		return cr_error_set(err, EIO, "curl_global_init: %s",
				    curl_easy_strerror(curl_init_code));

	struct cr_model_client *c = calloc(1, sizeof(*c));
	if (!c)
		return cr_error_errno(err, ENOMEM, "model client");
	c->evfd = -1;
	bool oom = false;
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	c->base_url = strndup(base, blen);
	if (c->base_url && asprintf(&c->url, "%s/v1/messages", c->base_url) < 0)
		c->url = NULL;
	if (!c->base_url || !c->url)
		oom = true;
	c->key = dup_or_null(cfg->api_key, &oom);
	c->version = dup_or_null(version, &oom);
	c->model = dup_or_null(cfg->model, &oom);
	c->cfg = *cfg;
	c->cfg.base_url = c->base_url;
	c->cfg.api_key = c->key;
	c->cfg.version = c->version;
	c->cfg.model = c->model;
	if (oom) {
		cr_model_client_free(c);
		return cr_error_errno(err, ENOMEM, "model client");
	}
	if (getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng) || !c->rng)
		c->rng = cr_now_ns() | 1;
	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->evfd < 0) {
		int e = errno;
		cr_model_client_free(c);
		return cr_error_errno(err, e, "model client: eventfd");
	}
	c->multi = curl_multi_init();
	if (!c->multi) {
		cr_model_client_free(c);
		return cr_error_set(err, ENOMEM, "model client: curl_multi_init failed");
	}
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* One connection cache for the client: enough for hundreds of streams on HTTP/1.1. */
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1024L);
	if (!cfg->no_io_uring && uring_init(c) < 0)
		uring_exit(c); /* curl's own poll loop, then */
	*ret = c;
	return 0;
}

static void finish(struct cr_model_call *call, int status, bool notify);

void cr_model_client_free(struct cr_model_client *c)
{
	if (!c)
		return;
	while (c->calls)
		finish(c->calls, -ECANCELED, true);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	uring_exit(c);
	if (c->evfd >= 0)
		close(c->evfd);
	cr_model_key_free(c->key);
	free(c->url);
	free(c->base_url);
	free(c->version);
	free(c->model);
	free(c);
}

/* --- calls ----------------------------------------------------------------------------------- */

static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *n = l; n; n = n->next)
		explicit_bzero(n->data, strlen(n->data));
	curl_slist_free_all(l);
}

static void attempt_reset(struct cr_model_call *call)
{
	cr_model_stream_free(call->stream);
	call->stream = NULL;
	call->delivered = call->headers_seen = call->body_seen = call->sse = false;
	cr_buf_free(&call->errbody);
	call->content_type[0] = call->retry_after[0] = call->retry_after_ms[0] = '\0';
	call->should_retry = -1;
	call->failed = 0;
	call->fail_type[0] = '\0';
	call->errbuf[0] = '\0';
	call->result.request_id[0] = '\0';
}

static void free_headers(char **h)
{
	if (!h)
		return;
	for (char **p = h; *p; p++)
		free(*p);
	free(h);
}

/* Takes call out of the client's list (its easy handle out of the multi handle). */
static void call_detach(struct cr_model_call *call)
{
	struct cr_model_client *c = call->c;
	if (call->easy) {
		if (call->state == CALL_RUNNING)
			curl_multi_remove_handle(c->multi, call->easy);
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
	}
	slist_wipe_free(call->hdrs);
	call->hdrs = NULL;
	if (call->state != CALL_DONE) {
		if (call->prev)
			call->prev->next = call->next;
		else
			c->calls = call->next;
		if (call->next)
			call->next->prev = call->prev;
		call->prev = call->next = NULL;
		c->ncalls--;
	}
}

static void fill_usage(struct cr_model_call *call)
{
	json_t *m = cr_model_stream_message(call->stream);
	json_t *u = m ? json_object_get(m, "usage") : NULL;
	struct cr_model_usage *r = &call->result.usage;
	r->input_tokens = json_integer_value(json_object_get(u, "input_tokens"));
	r->output_tokens = json_integer_value(json_object_get(u, "output_tokens"));
	r->cache_creation_input_tokens =
		json_integer_value(json_object_get(u, "cache_creation_input_tokens"));
	r->cache_read_input_tokens =
		json_integer_value(json_object_get(u, "cache_read_input_tokens"));
}

/* The call's end: its result completed, scrubbed of the key, then on_done (last: it may free
 * the call). */
static void finish(struct cr_model_call *call, int status, bool notify)
{
	struct cr_model_result *r = &call->result;
	if (call->stream) {
		fill_usage(call);
		uint64_t first = cr_model_stream_first_delta_ns(call->stream);
		if (first)
			r->ttft_ns = first - r->start_ns;
	}
	call_detach(call);
	call->state = CALL_DONE;
	r->status = status;
	r->duration_ns = cr_now_ns() - r->start_ns;
	if (status == 0) { /* what failed attempts left is history */
		r->error = (struct cr_error){ 0 };
		r->error_type[0] = '\0';
		r->retryable = false;
	} else {
		if (!r->error.code)
			cr_error_set(&r->error, -status, "model call: %s", strerror(-status));
		scrub(r->error.msg, call->c->key);
		scrub(r->error_type, call->c->key);
	}
	if (notify && call->opts.on_done)
		call->opts.on_done(call->opts.arg, call);
}

static int stream_event(void *arg, json_t *event, struct cr_error *err)
{
	struct cr_model_call *call = arg;
	if (atomic_load_explicit(&call->cancel, memory_order_relaxed))
		return cr_error_set(err, ECANCELED, "cancelled");
	if (!call->opts.on_event)
		return 0;
	int r = call->opts.on_event(call->opts.arg, event, err);
	if (r == 0)
		call->delivered = true;
	return r < 0 ? r : 0;
}

/* Copies a header's value (after "name:") into out, trimmed. */
static void header_value(const char *v, size_t len, char *out, size_t size)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		       v[len - 1] == '\t'))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(out, v, len);
	out[len] = '\0';
}

static bool header_is(const char *line, size_t len, const char *name, const char **value,
		      size_t *vlen)
{
	size_t n = strlen(name);
	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return false;
	*value = line + n + 1;
	*vlen = len - n - 1;
	return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct cr_model_call *call = arg;
	size_t len = size * nitems;
	const char *v;
	size_t vlen;
	char tmp[16];
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): its own headers only. From here
		 * on the idle timeout applies, which may come before the response's. */
		call->content_type[0] = call->retry_after[0] = call->retry_after_ms[0] = '\0';
		call->should_retry = -1;
		call->result.request_id[0] = '\0';
		call->headers_seen = true;
		uint64_t at = cr_now_ns() + (uint64_t)call->c->cfg.idle_ms * 1000000u;
		if (at < call->c->scan_at)
			call->c->scan_at = at;
	} else if (header_is(line, len, "request-id", &v, &vlen)) {
		header_value(v, vlen, call->result.request_id, sizeof(call->result.request_id));
	} else if (header_is(line, len, "content-type", &v, &vlen)) {
		header_value(v, vlen, call->content_type, sizeof(call->content_type));
	} else if (header_is(line, len, "retry-after-ms", &v, &vlen)) {
		header_value(v, vlen, call->retry_after_ms, sizeof(call->retry_after_ms));
	} else if (header_is(line, len, "retry-after", &v, &vlen)) {
		header_value(v, vlen, call->retry_after, sizeof(call->retry_after));
	} else if (header_is(line, len, "x-should-retry", &v, &vlen)) {
		header_value(v, vlen, tmp, sizeof(tmp));
		call->should_retry = strcmp(tmp, "true") == 0	 ? 1
				     : strcmp(tmp, "false") == 0 ? 0
								 : -1;
	}
	call->last_byte = cr_now_ns();
	return len;
}

static int call_fail(struct cr_model_call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int call_fail(struct cr_model_call *call, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call->fail.msg, sizeof(call->fail.msg), fmt, ap);
	va_end(ap);
	call->fail.code = code;
	call->failed = -code;
	return -code;
}

/* The first bytes of the body: an event stream (200), or an error body to keep. */
static int body_start(struct cr_model_call *call)
{
	long status = 0;
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	call->body_seen = true;
	if (status != 200)
		return 0;
	if (strncasecmp(call->content_type, "text/event-stream", 17) != 0)
		return call_fail(
			call, EPROTO, "%s answered 200 with \"%.60s\" instead of an event stream",
			call->c->url, call->content_type[0] ? call->content_type : "no type");
	call->sse = true;
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct cr_model_call *call = arg;
	size_t len = size * nmemb;
	call->last_byte = cr_now_ns();
	if (atomic_load_explicit(&call->cancel, memory_order_relaxed)) {
		call_fail(call, ECANCELED, "cancelled");
		return 0;
	}
	if (!call->body_seen && body_start(call) < 0)
		return 0;
	if (call->sse) {
		int r = cr_model_stream_feed(call->stream, p, len, &call->fail);
		if (r < 0) {
			call->failed = r;
			const char *t = cr_model_stream_error_type(call->stream);
			if (t)
				snprintf(call->fail_type, sizeof(call->fail_type), "%s", t);
			return 0;
		}
		return len;
	}
	size_t keep = ERROR_BODY_MAX - call->errbody.len;
	if (keep > len)
		keep = len;
	if (keep && cr_buf_add(&call->errbody, p, keep) < 0) {
		call_fail(call, ENOMEM, "out of memory reading an error response");
		return 0;
	}
	return len;
}

/* Starts the call's next attempt: a fresh parser and header list, the easy handle added. */
static int attempt_start(struct cr_model_call *call)
{
	struct cr_model_client *c = call->c;
	struct cr_model_result *r = &call->result;
	attempt_reset(call);
	struct cr_model_stream_opts so = { .max_event_bytes = c->cfg.max_event_bytes,
					   .on_event = stream_event,
					   .arg = call };
	if (cr_model_stream_new(&so, &call->stream, &r->error) < 0)
		return -ENOMEM;
	slist_wipe_free(call->hdrs);
	call->hdrs = NULL;
	char line[CR_MODEL_KEY_MAX + 64];
	struct curl_slist *h = NULL, *t;
	bool ok = true;
#define ADD(...)                                             \
	do {                                                 \
		snprintf(line, sizeof(line), __VA_ARGS__);   \
		if (ok && !(t = curl_slist_append(h, line))) \
			ok = false;                          \
		else if (ok)                                 \
			h = t;                               \
	} while (0)
	ADD("x-api-key: %s", c->key);
	ADD("anthropic-version: %s", c->version);
	ADD("content-type: application/json");
	ADD("accept: text/event-stream");
	ADD("x-stainless-retry-count: %u", r->attempts);
	ADD("Expect:");
	for (char **x = call->headers; x && *x; x++)
		ADD("%s", *x);
#undef ADD
	explicit_bzero(line, sizeof(line));
	if (!ok) {
		slist_wipe_free(h);
		return cr_error_set(&r->error, ENOMEM, "model call: out of memory");
	}
	call->hdrs = h;
	if (!call->easy) {
		call->easy = curl_easy_init();
		if (!call->easy)
			return cr_error_set(&r->error, ENOMEM, "model call: curl_easy_init failed");
		CURL *e = call->easy;
		curl_easy_setopt(e, CURLOPT_PRIVATE, call);
		curl_easy_setopt(e, CURLOPT_URL, c->url);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(call->body));
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.timeout_ms);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_USERAGENT, "corral");
	}
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->hdrs);
	r->attempts++;
	call->attempt_start = call->last_byte = cr_now_ns();
	CURLMcode m = curl_multi_add_handle(c->multi, call->easy);
	if (m != CURLM_OK)
		return cr_error_set(&r->error, EIO, "model call: %s", curl_multi_strerror(m));
	call->state = CALL_RUNNING;
	uint64_t deadline = call->attempt_start + (uint64_t)c->cfg.timeout_ms * 1000000u;
	if (deadline < c->scan_at)
		c->scan_at = deadline;
	return 0;
}

/* The SDK's wait before a retry: retry-after-ms, then retry-after (seconds or an HTTP date),
 * when positive and within one timer's range; else 0.5 s doubled per retry made, up to 8 s,
 * less up to a quarter of jitter. */
static double retry_delay_ms(struct cr_model_call *call)
{
	double ms = NAN;
	char *end;
	if (call->retry_after_ms[0]) {
		double v = strtod(call->retry_after_ms, &end);
		if (end != call->retry_after_ms)
			ms = v;
	}
	if (call->retry_after[0] && (isnan(ms) || ms == 0)) { /* the SDK's !timeoutMillis */
		double v = strtod(call->retry_after, &end);
		if (end != call->retry_after) {
			ms = v * 1000;
		} else {
			time_t when = curl_getdate(call->retry_after, NULL);
			if (when != -1)
				ms = ((double)when - (double)time(NULL)) * 1000;
		}
	}
	if (!isnan(ms) && ms > 0 && ms <= RETRY_AFTER_MAX_MS)
		return ms;
	unsigned made = call->result.attempts - 1;
	double s = made >= 5 ? 8.0 : fmin(0.5 * (double)(1u << made), 8.0);
	double jitter = 1 - (double)(rng_next(call->c) >> 11) / (double)(1ull << 53) * 0.25;
	return s * jitter * 1000;
}

/* After a failed attempt that may be retried: waits and tries again while retries remain,
 * else ends the call with status (its message already in result.error). */
static void retry_or_finish(struct cr_model_call *call, int status)
{
	struct cr_model_client *c = call->c;
	if (call->result.attempts > c->cfg.max_retries) {
		call->result.retryable = true;
		finish(call, status, true);
		return;
	}
	double ms = retry_delay_ms(call);
	if (call->state == CALL_RUNNING)
		curl_multi_remove_handle(c->multi, call->easy);
	call->state = CALL_WAITING;
	call->retry_at = cr_now_ns() + (uint64_t)(ms * 1e6);
	if (call->retry_at < c->scan_at)
		c->scan_at = call->retry_at;
}

/* The connection failed, timed out or ended early: retried unless the stream had already
 * delivered events (the caller has seen them; it may re-issue the call). */
static void transport_failure(struct cr_model_call *call, int status, const char *type,
			      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void transport_failure(struct cr_model_call *call, int status, const char *type,
			      const char *fmt, ...)
{
	struct cr_model_result *r = &call->result;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error.msg, sizeof(r->error.msg), fmt, ap);
	va_end(ap);
	r->error.code = -status;
	snprintf(r->error_type, sizeof(r->error_type), "%s", type);
	if (call->delivered) {
		r->retryable = true;
		finish(call, status, true);
		return;
	}
	retry_or_finish(call, status);
}

/* What a non-API error body says, for the message: its <title>, else its first line. */
static void body_summary(const struct cr_buf *b, char *out, size_t size)
{
	const char *p = b->p ? b->p : "", *end;
	const char *t = strcasestr(p, "<title>");
	if (t && (end = strcasestr(t, "</title>"))) {
		p = t + 7;
	} else {
		end = p + strcspn(p, "\r\n");
	}
	size_t j = 0;
	for (; p < end && j + 1 < size && j < 80; p++)
		out[j++] = (*p >= ' ' && *p <= '~') ? *p : '?';
	out[j] = '\0';
}

/* An answer other than 200: the API's error (its type and message) or something else's. */
static void error_response(struct cr_model_call *call, long status)
{
	struct cr_model_result *r = &call->result;
	json_t *j =
		call->errbody.p ? json_loadb(call->errbody.p, call->errbody.len, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");
	const char *type = json_string_value(json_object_get(e, "type"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	int code;
	if (type && msg && json_is_object(j) &&
	    !strcmp(json_string_value(json_object_get(j, "type")) ?: "", "error")) {
		snprintf(r->error_type, sizeof(r->error_type), "%s", type);
		cr_error_set(&r->error, EREMOTEIO, "%s: HTTP %ld %s: %s", call->c->url, status,
			     type, msg);
		code = -EREMOTEIO;
	} else {
		char what[96];
		body_summary(&call->errbody, what, sizeof(what));
		r->error_type[0] = '\0';
		cr_error_set(&r->error, EPROTO, "%s: HTTP %ld, not an API error (%s%s%s%s)",
			     call->c->url, status,
			     call->content_type[0] ? call->content_type : "no content type",
			     call->errbody.len ? ": \"" : ", empty body", what,
			     call->errbody.len ? "\"" : "");
		code = -EPROTO;
	}
	json_decref(j);
	bool retry = call->should_retry >= 0
			     ? call->should_retry == 1
			     : (status == 408 || status == 409 || status == 429 || status >= 500);
	if (retry) {
		retry_or_finish(call, code);
		return;
	}
	r->retryable = false;
	finish(call, code, true);
}

static bool retryable_type(const char *t)
{
	return !strcmp(t, "overloaded_error") || !strcmp(t, "api_error") ||
	       !strcmp(t, "rate_limit_error") || !strcmp(t, "timeout_error");
}

/* curl finished the call's attempt with code. */
static void attempt_end(struct cr_model_call *call, CURLcode code)
{
	struct cr_model_result *r = &call->result;
	long status = 0, conns = 0;
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &conns);
	r->http_status = status;
	r->new_connections += (unsigned)conns;
	if (call->failed) {
		r->error = call->fail;
		snprintf(r->error_type, sizeof(r->error_type), "%s", call->fail_type);
		r->retryable = call->failed == -EREMOTEIO && retryable_type(call->fail_type);
		if (call->failed != -ECANCELED && call->failed != -EREMOTEIO)
			cr_error_prefix(&r->error, "%s", call->c->url);
		finish(call, call->failed, true);
		return;
	}
	if (code != CURLE_OK) {
		bool timeout = code == CURLE_OPERATION_TIMEDOUT;
		transport_failure(call, timeout ? -ETIMEDOUT : -ECONNRESET,
				  timeout ? "timeout" : "connection_error", "%s: %s", call->c->url,
				  call->errbuf[0] ? call->errbuf : curl_easy_strerror(code));
		return;
	}
	if (status != 200) {
		error_response(call, status);
		return;
	}
	if (!call->sse) {
		transport_failure(call, -EPIPE, "connection_error",
				  "%s: HTTP 200 with an empty body", call->c->url);
		return;
	}
	struct cr_error e;
	int rc = cr_model_stream_finish(call->stream, &e);
	if (rc == 0) {
		finish(call, 0, true);
		return;
	}
	if (rc == -EPIPE) {
		transport_failure(call, -EPIPE, "connection_error", "%s: %s", call->c->url, e.msg);
		return;
	}
	r->error = e;
	cr_error_prefix(&r->error, "%s", call->c->url);
	finish(call, rc, true);
}

/* Ends the attempts curl has finished. */
static void read_done(struct cr_model_client *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct cr_model_call *call = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
		if (call && call->state == CALL_RUNNING)
			attempt_end(call, m->data.result);
	}
}

/* Cancellations, attempts due to start, and timeouts; sets scan_at to the next of these. */
static void scan(struct cr_model_client *c, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	const struct cr_model_config *cfg = &c->cfg;
	c->scan_at = UINT64_MAX; /* lowered by what the scan starts or schedules */
	for (struct cr_model_call *call = c->calls, *nx; call; call = nx) {
		nx = call->next;
		if (atomic_load(&call->cancel)) {
			cr_error_set(&call->result.error, ECANCELED, "cancelled");
			finish(call, -ECANCELED, true);
			continue;
		}
		uint64_t at;
		if (call->state == CALL_WAITING) {
			if (call->retry_at <= now) {
				if (attempt_start(call) < 0) {
					finish(call, -call->result.error.code, true);
					continue;
				}
			} else {
				next = call->retry_at < next ? call->retry_at : next;
				continue;
			}
		}
		bool headers = call->headers_seen;
		at = headers ? call->last_byte + (uint64_t)cfg->idle_ms * 1000000u
			     : call->attempt_start + (uint64_t)cfg->timeout_ms * 1000000u;
		if (at <= now) {
			curl_multi_remove_handle(c->multi, call->easy);
			call->state = CALL_WAITING; /* out of the multi handle */
			transport_failure(call, -ETIMEDOUT, "timeout",
					  headers ? "%s: no data for %u ms"
						  : "%s: no response within %u ms",
					  c->url, headers ? cfg->idle_ms : cfg->timeout_ms);
			if (call->state == CALL_WAITING && call->retry_at < next)
				next = call->retry_at;
			continue;
		}
		next = at < next ? at : next;
	}
	if (next < c->scan_at)
		c->scan_at = next;
}

/* --- the loop -------------------------------------------------------------------------------- */

/* One turn: due scans and timers, then a wait of at most until (CLOCK_MONOTONIC ns) for
 * sockets, timers or a cancellation. */
static int loop_once(struct cr_model_client *c, uint64_t until, struct cr_error *err)
{
	uint64_t now = cr_now_ns();
	if (c->scan_at <= now)
		scan(c, now);
	if (c->uring && c->timer_set && c->timer_at <= now) {
		int running;
		c->timer_set = false;
		curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		read_done(c);
	}
	if (!c->ncalls)
		return 0;
	uint64_t wake = c->scan_at < until ? c->scan_at : until;
	if (c->uring && c->timer_set && c->timer_at < wake)
		wake = c->timer_at;
	now = cr_now_ns();
	uint64_t wait = wake <= now ? 0 : wake - now;
	if (c->uring) {
		int r = uring_wait(c, wait, err);
		read_done(c);
#ifdef CONFIG_CORRAL_IO_URING
		socks_sweep(c);
#endif
		return r;
	}
	/* curl's poll loop, with the eventfd of cancellations among its descriptors */
	int running;
	long ms = wait == UINT64_MAX ? 1000 : (long)((wait + 999999) / 1000000);
	struct curl_waitfd ev = { .fd = c->evfd, .events = CURL_WAIT_POLLIN };
	CURLMcode m = curl_multi_poll(c->multi, &ev, 1, ms > 1000 ? 1000 : (int)ms, NULL);
	if (m == CURLM_OK && ev.revents) {
		uint64_t v;
		if (read(c->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return cr_error_errno(err, errno, "model client: eventfd");
		c->scan_at = 0;
	}
	if (m == CURLM_OK)
		m = curl_multi_perform(c->multi, &running);
	if (m != CURLM_OK)
		return cr_error_set(err, EIO, "model client: %s", curl_multi_strerror(m));
	read_done(c);
	return 0;
}

int cr_model_client_run(struct cr_model_client *c, int timeout_ms, struct cr_error *err)
{
	uint64_t until =
		timeout_ms < 0 ? UINT64_MAX : cr_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (c->ncalls) {
		int r = loop_once(c, until, err);
		if (r < 0)
			return r;
		if (until != UINT64_MAX && cr_now_ns() >= until)
			break;
	}
	return (int)c->ncalls;
}

int cr_model_call_wait(struct cr_model_call *call, struct cr_error *err)
{
	while (call->state != CALL_DONE) {
		int r = loop_once(call->c, UINT64_MAX, err);
		if (r < 0)
			return r;
	}
	if (call->result.status < 0 && err)
		*err = call->result.error;
	return call->result.status;
}

/* --- calls: the public side ------------------------------------------------------------------- */

/* Starts a call of body (owned: freed on failure too; NULL is out of memory). */
static int call_start(struct cr_model_client *c, char *body, const struct cr_model_call_opts *opts,
		      struct cr_model_call **ret, struct cr_error *err)
{
	size_t nh = 0;
	for (const char *const *h = opts ? opts->headers : NULL; h && *h; h++, nh++)
		if (!strchr(*h, ':') || strpbrk(*h, "\r\n")) {
			free(body);
			return cr_error_set(
				err, EINVAL,
				"model call: header \"%.60s\" is not one \"Name: value\" "
				"line",
				*h);
		}
	struct cr_model_call *call = body ? calloc(1, sizeof(*call)) : NULL;
	if (!call) {
		free(body);
		return cr_error_errno(err, ENOMEM, "model call");
	}
	call->c = c;
	if (opts)
		call->opts = *opts;
	call->opts.headers = NULL;
	call->should_retry = -1;
	call->body = body;
	call->headers = nh ? calloc(nh + 1, sizeof(char *)) : NULL;
	bool ok = !nh || call->headers;
	for (size_t i = 0; ok && i < nh; i++)
		ok = (call->headers[i] = strdup(opts->headers[i])) != NULL;
	if (!ok) {
		free_headers(call->headers);
		free(call->body);
		free(call);
		return cr_error_errno(err, ENOMEM, "model call");
	}
	call->state = CALL_WAITING;
	call->result.start_ns = cr_now_ns();
	call->retry_at = 0;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;
	c->scan_at = 0;
	*ret = call;
	return 0;
}

int cr_model_call_start(struct cr_model_client *c, json_t *body,
			const struct cr_model_call_opts *opts, struct cr_model_call **ret,
			struct cr_error *err)
{
	if (!json_is_object(body))
		return cr_error_set(err, EINVAL, "model call: the request is not a JSON object");
	json_t *b = json_copy(body);
	bool ok = b && json_object_set_new(b, "stream", json_true()) == 0;
	if (ok && c->model && !json_object_get(b, "model"))
		ok = json_object_set_new(b, "model", json_string(c->model)) == 0;
	char *text = ok ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	return call_start(c, text, opts, ret, err);
}

int cr_model_call_start_text(struct cr_model_client *c, const char *body, size_t len,
			     const struct cr_model_call_opts *opts, struct cr_model_call **ret,
			     struct cr_error *err)
{
	if (!body || len == 0 || body[0] != '{' || memchr(body, '\0', len))
		return cr_error_set(err, EINVAL, "model call: the request is not a JSON object");
	return call_start(c, strndup(body, len), opts, ret, err);
}

void cr_model_call_cancel(struct cr_model_call *call)
{
	uint64_t one = 1;
	atomic_store(&call->cancel, true);
	/* Wakes the loop. It cannot fail: the counter is never near full, and a full one would
	 * wake the loop too. */
	(void)!write(call->c->evfd, &one, sizeof(one));
}

bool cr_model_call_done(const struct cr_model_call *call)
{
	return call->state == CALL_DONE;
}

const struct cr_model_result *cr_model_call_result(const struct cr_model_call *call)
{
	return &call->result;
}

json_t *cr_model_call_message(const struct cr_model_call *call)
{
	return call->stream ? cr_model_stream_message(call->stream) : NULL;
}

void cr_model_call_free(struct cr_model_call *call)
{
	if (!call)
		return;
	if (call->state != CALL_DONE)
		call_detach(call);
	else if (call->easy)
		curl_easy_cleanup(call->easy);
	slist_wipe_free(call->hdrs);
	cr_model_stream_free(call->stream);
	cr_buf_free(&call->errbody);
	free_headers(call->headers);
	free(call->body);
	free(call);
}

json_t *cr_model_result_json(const struct cr_model_result *r)
{
	json_t *u = json_pack(
		"{s:I,s:I,s:I,s:I}", "input_tokens", (json_int_t)r->usage.input_tokens,
		"output_tokens", (json_int_t)r->usage.output_tokens, "cache_creation_input_tokens",
		(json_int_t)r->usage.cache_creation_input_tokens, "cache_read_input_tokens",
		(json_int_t)r->usage.cache_read_input_tokens);
	json_t *o =
		json_pack("{s:b,s:o,s:I,s:I,s:f}", "is_error", r->status < 0, "model_usage", u,
			  "attempts", (json_int_t)r->attempts, "http_status",
			  (json_int_t)r->http_status, "duration_ms", (double)r->duration_ns / 1e6);
	if (!o)
		return NULL;
	if (json_object_set_new(o, "ttft_ms",
				r->ttft_ns ? json_real((double)r->ttft_ns / 1e6) : json_null()) ||
	    json_object_set_new(o, "request_id",
				r->request_id[0] ? json_string(r->request_id) : json_null())) {
		json_decref(o);
		return NULL;
	}
	if (r->status < 0) {
		json_t *e = json_pack("{s:s,s:s,s:b}", "type",
				      r->error_type[0] ? r->error_type : "client_error", "message",
				      r->error.msg, "retryable", r->retryable);
		if (!e || json_object_set_new(o, "error", e)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
