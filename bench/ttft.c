/* bench/ttft: corral bench ttft. Time to first token of sessions driven through corrald's API,
 * from the post of a message to the first text on the stream (its previews), with sandboxes
 * provisioned eagerly (from session create on, the first turn waiting for the sandbox) against
 * lazily (at the first tool call), in the same run: it starts a corral-fake-api (first token
 * log-normal) and a corrald with its own state, socket and key in a fresh work directory,
 * makes an agent and the environments, and runs S sessions per mode, C at once, over libcurl
 * on corrald's Unix socket. Half the sessions never need a sandbox, half need one on their
 * first turn. Also: the bare sandbox cost (eager sessions with no added delay, each to its
 * sandbox, against lazy creates), and the wake latency of a 10,000-event session to its next
 * model call, in-process over a brain link as a worker sees it and without the link. It never
 * prints its results and never exits; everything it starts or creates (processes, sessions,
 * sandboxes, files) goes again on every way out. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench-internal.h"
#include "bench.h"
#include "corral/brainlink.h"
#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/fileio.h"
#include "corral/harness.h"
#include "corral/heap.h"
#include "corral/log.h"
#include "corral/model.h"
#include "corral/orchestrator.h"
#include "corral/sandbox.h"
#include "corral/tool.h"

extern char **environ;

#define NAME "ttft"
#define NO_TOOLS_TEXT "no tools, just answer"
#define TOOL_TEXT "run the tool"
#define DELAY_NOTE_DEFAULT \
	"a typical container start with an image pull (~10 s) and a repository clone (~5 s)"
#define PROGRESS_EVERY_NS (5 * 1000000000ull)

void cr_bench_ttft_opts_init(struct cr_bench_ttft_opts *opts)
{
	*opts = (struct cr_bench_ttft_opts){
		.sessions = CR_BENCH_TTFT_SESSIONS_DEFAULT,
		.concurrency = CR_BENCH_TTFT_CONCURRENCY_DEFAULT,
		.added_delay_ms = CR_BENCH_TTFT_DELAY_MS_DEFAULT,
		.first_token_ms = CR_BENCH_TTFT_FIRST_TOKEN_MS_DEFAULT,
		.first_token_p99_ms = CR_BENCH_TTFT_FIRST_TOKEN_P99_MS_DEFAULT,
		.dir = CR_BENCH_TTFT_DIR_DEFAULT,
	};
}

static double ms_of(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* --- children --------------------------------------------------------------------------------- */

/* Whether the file at path contains s (a line of a log the child writes). */
static bool file_has(const char *path, const char *s)
{
	char line[512];
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, s))
			return true;
	return false;
}

/* --- HTTP over corrald's socket --------------------------------------------------------------- */

static size_t buf_write(char *data, size_t size, size_t n, void *arg)
{
	return cr_buf_add(arg, data, size * n) < 0 ? 0 : size * n;
}

/* One thread's connections to corrald: plain requests on a kept-alive handle; a session's
 * event stream and the message sent while it is open, on a multi handle. The message goes
 * over a connection kept alive from the last one, as an API client's does: a stream opens a
 * connection of its own and closes it, so that it never takes the message's. */
struct client {
	const char *sock;
	CURL *req, *stream, *send;
	CURLM *multi;
	const atomic_bool *cancel;
	const atomic_bool *abort; /* the mode running gave up (too many failures); may be NULL */
	bool ignore_cancel; /* cleaning up: runs to the end even when cancelled */
	unsigned delete_timeout_ms;
};

/* Whether the client's work is to stop (a cancel, or its mode gave up). */
static bool stopping(const struct client *c)
{
	return !c->ignore_cancel &&
	       (cr_bench_cancelled(c->cancel) || (c->abort && atomic_load(c->abort)));
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct client *cl = arg;
	(void)a, (void)b, (void)c, (void)d;
	return stopping(cl);
}

static void client_done(struct client *c)
{
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->req)
		curl_easy_cleanup(c->req);
	if (c->stream)
		curl_easy_cleanup(c->stream);
	if (c->send)
		curl_easy_cleanup(c->send);
	*c = (struct client){ 0 };
}

static int client_init(struct client *c, const char *sock, const atomic_bool *cancel,
		       struct cr_error *err)
{
	*c = (struct client){ .sock = sock, .cancel = cancel, .delete_timeout_ms = 60000 };
	c->req = curl_easy_init();
	c->stream = curl_easy_init();
	c->send = curl_easy_init();
	c->multi = curl_multi_init();
	if (!c->req || !c->stream || !c->send || !c->multi) {
		client_done(c);
		return cr_error_set(err, ENOMEM, "libcurl: cannot make a handle");
	}
	return 0;
}

static void setup(struct client *c, CURL *h, const char *path, char *errbuf)
{
	char url[512];
	snprintf(url, sizeof(url), "http://corral%s", path);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->sock);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
}

/* The API's message of an error body, or "". */
static const char *api_message(const json_t *j)
{
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	return m ? m : "";
}

/* One request; a 2xx answer gives 0 and *ret (may be NULL) its parsed body (NULL when empty),
 * owned by the caller; anything else is an error naming the request. */
static int request(struct client *c, const char *method, const char *path, const json_t *body,
		   unsigned timeout_ms, json_t **ret, struct cr_error *err)
{
	_cleanup_free_ char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !payload)
		return cr_error_set(err, ENOMEM, "%s %s: out of memory", method, path);
	char errbuf[CURL_ERROR_SIZE] = "";
	struct cr_buf resp = { 0 };
	struct curl_slist *hdr = NULL;
	CURL *h = c->req;
	setup(c, h, path, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	if (strcmp(method, "POST") == 0) {
		hdr = curl_slist_append(NULL, "content-type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "{}");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	CURLcode cc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		free(resp.p);
		return cr_bench_cancel_error(err);
	}
	if (cc != CURLE_OK) {
		free(resp.p);
		return cr_error_set(err, EIO, "%s %s on %s: %s", method, path, c->sock,
				    *errbuf ? errbuf : curl_easy_strerror(cc));
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json_t *j = resp.len ? json_loadb(resp.p, resp.len, 0, NULL) : NULL;
	free(resp.p);
	if (status / 100 != 2) {
		int r = cr_error_set(err, EREMOTEIO, "%s %s: HTTP %ld: %s", method, path, status,
				     api_message(j));
		json_decref(j);
		return r;
	}
	if (ret)
		*ret = j;
	else
		json_decref(j);
	return 0;
}

/* --- a session's events, as they come --------------------------------------------------------- */

struct sse {
	struct cr_buf line, data;
	char type[64];
	long status;
	bool headers_done;
	uint64_t t_send; /* the user.message's post began */
	uint64_t t_first; /* the first token arrived: the first preview of agent.message text */
	uint64_t t_message; /* the first agent.message (the buffered event) arrived */
	uint64_t t_end; /* session.status_idle (or _terminated) arrived */
	char stop[48]; /* the idle's stop_reason type */
	bool terminated;
	bool broken; /* out of memory */
};

static size_t sse_header(char *data, size_t size, size_t n, void *arg)
{
	struct sse *s = arg;
	size_t len = size * n;
	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', len);
		s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		s->headers_done = false; /* (an interim response's headers come first) */
	} else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
		if (s->status >= 200)
			s->headers_done = true;
	}
	return len;
}

static void sse_dispatch(struct sse *s, uint64_t now)
{
	if (!strcmp(s->type, "event_delta") || !strcmp(s->type, "agent.message")) {
		if (!s->t_first)
			s->t_first = now;
		if (!s->t_message && !strcmp(s->type, "agent.message"))
			s->t_message = now;
	} else if (!strcmp(s->type, "session.status_idle") && !s->t_end) {
		json_t *j = s->data.len ? json_loadb(s->data.p, s->data.len, 0, NULL) : NULL;
		const char *t = json_string_value(
			json_object_get(json_object_get(j, "stop_reason"), "type"));
		snprintf(s->stop, sizeof(s->stop), "%s", t ? t : "?");
		json_decref(j);
		s->t_end = now;
	} else if (!strcmp(s->type, "session.status_terminated") && !s->t_end) {
		s->terminated = true;
		s->t_end = now;
	}
	s->type[0] = '\0';
	s->data.len = 0;
}

static size_t sse_write(char *data, size_t size, size_t n, void *arg)
{
	struct sse *s = arg;
	uint64_t now = cr_now_ns(); /* when these bytes arrived */
	size_t len = size * n;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (cr_buf_add(&s->line, &data[i], 1) < 0) {
				s->broken = true;
				return 0;
			}
			continue;
		}
		char *l = s->line.p ? s->line.p : "";
		size_t ll = s->line.len;
		if (ll && l[ll - 1] == '\r')
			l[--ll] = '\0';
		if (ll == 0) {
			sse_dispatch(s, now);
		} else if (strncmp(l, "event:", 6) == 0) {
			const char *v = l + 6 + (l[6] == ' ');
			snprintf(s->type, sizeof(s->type), "%s", v);
		} else if (strncmp(l, "data:", 5) == 0) {
			const char *v = l + 5 + (l[5] == ' ');
			if ((s->data.len && cr_buf_add(&s->data, "\n", 1) < 0) ||
			    cr_buf_add(&s->data, v, strlen(v)) < 0) {
				s->broken = true;
				return 0;
			}
		}
		s->line.len = 0;
	}
	return len;
}

static void sse_done(struct sse *s)
{
	free(s->line.p);
	free(s->data.p);
}

/* Opens the session's event stream, and once its headers are in (the server has subscribed)
 * posts the user message; reads until the session idles. Fills the stream's times and
 * *ret_send_ns (the post's round trip) and *ret_send_connected (the post had to open a
 * connection). */
static int converse(struct client *c, const char *id, const char *text, uint64_t timeout_ns,
		    struct sse *s, uint64_t *ret_send_ns, bool *ret_send_connected,
		    struct cr_error *err)
{
	char path[160], errbuf[CURL_ERROR_SIZE] = "", send_errbuf[CURL_ERROR_SIZE] = "";
	struct cr_buf resp = { 0 };
	struct curl_slist *accept = curl_slist_append(NULL, "accept: text/event-stream");
	struct curl_slist *ctype = curl_slist_append(NULL, "content-type: application/json");
	json_t *body = json_pack("{s:[{s:s,s:[{s:s,s:s}]}]}", "events", "type", "user.message",
				 "content", "type", "text", "text", text);
	_cleanup_free_ char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	bool stream_in = false, send_in = false, send_done = false;
	uint64_t deadline = cr_now_ns() + timeout_ns, t_send = 0;
	int r = 0;
	if (!accept || !ctype || !payload) {
		r = cr_error_set(err, ENOMEM, "session %s: out of memory", id);
		goto out;
	}

	/* with previews: the first token is the first text of the reply, as a client shows it */
	snprintf(path, sizeof(path),
		 "/v1/sessions/%s/events/stream?event_deltas%%5B%%5D=agent.message", id);
	setup(c, c->stream, path, errbuf);
	curl_easy_setopt(c->stream, CURLOPT_HTTPHEADER, accept);
	curl_easy_setopt(c->stream, CURLOPT_HEADERFUNCTION, sse_header);
	curl_easy_setopt(c->stream, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(c->stream, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(c->stream, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c->stream, CURLOPT_FRESH_CONNECT, 1L); /* (see struct client) */
	curl_easy_setopt(c->stream, CURLOPT_FORBID_REUSE, 1L);
	if (curl_multi_add_handle(c->multi, c->stream) != CURLM_OK) {
		r = cr_error_set(err, EIO, "session %s: libcurl refused the stream", id);
		goto out;
	}
	stream_in = true;

	snprintf(path, sizeof(path), "/v1/sessions/%s/events", id);
	for (;;) {
		int running = 0;
		if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
			r = cr_error_set(err, EIO, "session %s: libcurl failed", id);
			goto out;
		}
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(c->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			if (m->easy_handle == c->send) {
				send_done = true;
				*ret_send_ns = cr_now_ns() - t_send;
				long st = 0, connects = 0;
				curl_easy_getinfo(c->send, CURLINFO_NUM_CONNECTS, &connects);
				*ret_send_connected = connects > 0;
				curl_easy_getinfo(c->send, CURLINFO_RESPONSE_CODE, &st);
				if (m->data.result != CURLE_OK || st / 100 != 2) {
					json_t *j = resp.len ? json_loadb(resp.p, resp.len, 0, NULL)
							     : NULL;
					r = cr_error_set(
						err, EREMOTEIO, "POST %s: %s", path,
						m->data.result != CURLE_OK
							? (*send_errbuf ? send_errbuf
									: curl_easy_strerror(
										  m->data.result))
							: api_message(j));
					json_decref(j);
					goto out;
				}
			} else if (m->easy_handle == c->stream && !s->t_end) {
				r = m->data.result == CURLE_ABORTED_BY_CALLBACK
					    ? cr_bench_cancel_error(err)
					    : cr_error_set(
						      err, EPROTO,
						      "session %s: the event stream ended (HTTP "
						      "%ld%s%s) before the session idled",
						      id, s->status, *errbuf ? ": " : "", errbuf);
				goto out;
			}
		}
		if (s->broken) {
			r = cr_error_set(err, ENOMEM, "session %s: out of memory", id);
			goto out;
		}
		if (s->headers_done && s->status != 200) {
			r = cr_error_set(err, EREMOTEIO,
					 "GET /v1/sessions/%s/events/stream: HTTP %ld", id,
					 s->status);
			goto out;
		}
		if (s->headers_done && !send_in) {
			setup(c, c->send, path, send_errbuf);
			curl_easy_setopt(c->send, CURLOPT_HTTPHEADER, ctype);
			curl_easy_setopt(c->send, CURLOPT_POSTFIELDS, payload);
			curl_easy_setopt(c->send, CURLOPT_WRITEFUNCTION, buf_write);
			curl_easy_setopt(c->send, CURLOPT_WRITEDATA, &resp);
			t_send = s->t_send = cr_now_ns();
			if (curl_multi_add_handle(c->multi, c->send) != CURLM_OK) {
				r = cr_error_set(err, EIO, "session %s: libcurl refused the post",
						 id);
				goto out;
			}
			send_in = true;
			continue; /* start it at once */
		}
		if (s->t_end && send_done)
			break;
		if (stopping(c)) {
			r = cr_bench_cancel_error(err);
			goto out;
		}
		if (cr_now_ns() >= deadline) {
			r = cr_error_set(err, ETIMEDOUT,
					 "session %s: not idle after %" PRIu64 " s (%s)", id,
					 timeout_ns / 1000000000u,
					 !s->headers_done ? "the stream did not open"
					 : !s->t_first	  ? "no agent.message"
							  : "no session.status_idle");
			goto out;
		}
		curl_multi_poll(c->multi, NULL, 0, 100, NULL);
	}
	if (s->terminated)
		r = cr_error_set(err, EPROTO, "session %s terminated", id);
	else if (strcmp(s->stop, "end_turn") != 0)
		r = cr_error_set(err, EPROTO, "session %s idled with stop reason %s", id, s->stop);
	else if (!s->t_first)
		r = cr_error_set(err, EPROTO, "session %s idled without an agent.message", id);
out:
	if (stream_in)
		curl_multi_remove_handle(c->multi, c->stream);
	if (send_in)
		curl_multi_remove_handle(c->multi, c->send);
	curl_easy_setopt(c->stream, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->send, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(accept);
	curl_slist_free_all(ctype);
	free(resp.p);
	return r;
}

/* --- sessions --------------------------------------------------------------------------------- */

enum mode {
	MODE_EAGER,
	MODE_LAZY,
	MODE_WARMUP
};
enum cls {
	CLS_NO_SANDBOX,
	CLS_SANDBOX
}; /* never needs one; needs one on its first turn */

struct sess {
	enum cls cls;
	bool ok, live;
	bool send_connected; /* its message's post opened a connection */
	char id[CR_LOG_ID_MAX];
	double ttft_ms, start_ms, create_ms, send_ms, server_ttft_ms, overhead_ms, total_ms;
	char error[256];
};

/* What the session's events must show: the first span.model_request_end's ttft_ms, a tool
 * call that ran (and only for the class that needs one), a sandbox made exactly when the mode
 * and class call for one. */
static int check_events(const json_t *list, const char *id, enum mode mode, enum cls cls,
			double *ret_server_ttft_ms, struct cr_error *err)
{
	json_t *data = json_object_get(list, "data"), *e;
	size_t i, uses = 0, results_ok = 0, sandboxes = 0;
	double ttft = -1;
	if (!json_is_array(data))
		return cr_error_set(err, EPROTO, "session %s: the events list has no data", id);
	json_array_foreach (data, i, e) {
		const char *t = json_string_value(json_object_get(e, "type"));
		if (!t)
			continue;
		if (!strcmp(t, "span.model_request_end") && ttft < 0) {
			json_t *v = json_object_get(e, "ttft_ms");
			if (!json_is_number(v))
				return cr_error_set(err, EPROTO,
						    "session %s: its span.model_request_end has "
						    "no ttft_ms",
						    id);
			ttft = json_number_value(v);
		} else if (!strcmp(t, "agent.tool_use")) {
			uses++;
		} else if (!strcmp(t, "agent.tool_result")) {
			results_ok += !json_is_true(json_object_get(e, "is_error"));
		} else if (!strcmp(t, "sandbox.provisioned")) {
			sandboxes++;
		}
	}
	size_t want_uses = cls == CLS_SANDBOX ? 1 : 0;
	size_t want_sandboxes = mode == MODE_EAGER || cls == CLS_SANDBOX ? 1 : 0;
	if (ttft < 0)
		return cr_error_set(err, EPROTO, "session %s: no span.model_request_end", id);
	if (uses != want_uses || results_ok != want_uses)
		return cr_error_set(err, EPROTO,
				    "session %s: %zu tool calls, %zu of them successful (want %zu)",
				    id, uses, results_ok, want_uses);
	if (sandboxes != want_sandboxes)
		return cr_error_set(err, EPROTO, "session %s: %zu sandboxes provisioned (want %zu)",
				    id, sandboxes, want_sandboxes);
	*ret_server_ttft_ms = ttft;
	return 0;
}

struct setup_ids {
	char agent[CR_LOG_ID_MAX];
	char env_eager[CR_LOG_ID_MAX], env_lazy[CR_LOG_ID_MAX], env_bare[CR_LOG_ID_MAX];
	unsigned create_timeout_ms, converse_timeout_ms;
};

static int create_session(struct client *c, const struct setup_ids *ids, const char *env,
			  struct sess *s, struct cr_error *err)
{
	json_t *body = json_pack("{s:s,s:s}", "agent", ids->agent, "environment_id", env);
	json_t *got = NULL;
	if (!body)
		return cr_error_set(err, ENOMEM, "out of memory");
	int r = request(c, "POST", "/v1/sessions", body, ids->create_timeout_ms, &got, err);
	json_decref(body);
	if (r < 0)
		return r;
	const char *id = json_string_value(json_object_get(got, "id"));
	if (!id || strlen(id) >= sizeof(s->id))
		r = cr_error_set(err, EPROTO, "POST /v1/sessions: no session id in the answer");
	else {
		snprintf(s->id, sizeof(s->id), "%s", id);
		s->live = true;
	}
	json_decref(got);
	return r;
}

/* Deletes the session (its sandbox goes with it), even when the run is being cancelled. */
static int delete_session(struct client *c, struct sess *s, struct cr_error *err)
{
	if (!s->live)
		return 0;
	char path[128];
	snprintf(path, sizeof(path), "/v1/sessions/%s", s->id);
	bool ignore = c->ignore_cancel;
	c->ignore_cancel = true;
	int r = request(c, "DELETE", path, NULL, c->delete_timeout_ms, NULL, err);
	c->ignore_cancel = ignore;
	if (r == 0)
		s->live = false;
	return r;
}

/* One session: create -> first token -> (a tool call) -> idle, then its events read and the
 * session deleted. */
static int run_session(struct client *c, const struct setup_ids *ids, enum mode mode,
		       struct sess *s, struct cr_error *err)
{
	const char *env = mode == MODE_EAGER ? ids->env_eager : ids->env_lazy;
	struct sse sse = { 0 };
	uint64_t send_ns = 0;
	char path[160];
	json_t *list = NULL;
	uint64_t t0 = cr_now_ns();
	int r = create_session(c, ids, env, s, err);
	uint64_t t_created = cr_now_ns();
	if (r == 0)
		r = converse(c, s->id, s->cls == CLS_SANDBOX ? TOOL_TEXT : NO_TOOLS_TEXT,
			     (uint64_t)ids->converse_timeout_ms * 1000000u, &sse, &send_ns,
			     &s->send_connected, err);
	if (r == 0) {
		snprintf(path, sizeof(path), "/v1/sessions/%s/events?limit=1000", s->id);
		r = request(c, "GET", path, NULL, 60000, &list, err);
	}
	if (r == 0)
		r = check_events(list, s->id, mode, s->cls, &s->server_ttft_ms, err);
	json_decref(list);
	sse_done(&sse);
	if (r == 0) {
		s->ttft_ms = ms_of(sse.t_first - sse.t_send);
		s->start_ms = ms_of(sse.t_first - t0);
		s->create_ms = ms_of(t_created - t0);
		s->send_ms = ms_of(send_ns);
		s->total_ms = ms_of(sse.t_end - t0);
		s->overhead_ms = s->ttft_ms - s->server_ttft_ms;
	}
	struct cr_error e2;
	int d = delete_session(c, s, r < 0 ? &e2 : err);
	if (r == 0 && d < 0)
		r = d;
	s->ok = r == 0;
	return r;
}

/* --- the overhead's baseline: a bare hand-off between two processes --------------------------- */

/* The overhead is mostly hand-offs: the post into corrald, corrald to a worker, the first delta
 * back to corrald and to the client, each waking a process or thread that sat idle, mostly on
 * another CPU (the waker goes on working). What one costs on this machine, at this moment, is
 * measured alongside the lazy mode: a child process pinned to one CPU echoes a byte over a Unix
 * socket pair to a thread pinned to another, after an idle gap of 1 to 20 ms each time; a
 * hand-off is half the round trip. (One CPU: neither is pinned.) */
struct handoff {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int cpus; /* 2: pinned to cpu[0] (the thread) and cpu[1] (the child); 1: not pinned */
	int cpu[2];
	pid_t child;
	int fd; /* the thread's end of the socket pair */
	struct cr_bench_samples s;
	int error; /* an errno that ended the measuring early */
};

static void *handoff_main(void *arg)
{
	struct handoff *h = arg;
	uint64_t x = cr_now_ns() | 1;
	if (h->cpus == 2) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(h->cpu[0], &set);
		int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (e) {
			h->error = e;
			return NULL;
		}
	}
	while (!atomic_load(&h->stop)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* (xorshift64) */
		usleep(1000 + (useconds_t)(x % 19000));
		char c = 'x';
		uint64_t t0 = cr_now_ns();
		/* (MSG_NOSIGNAL: a child that died is an error here, not a SIGPIPE) */
		if (send(h->fd, &c, 1, MSG_NOSIGNAL) != 1 || recv(h->fd, &c, 1, 0) != 1) {
			h->error = errno ? errno : EPIPE;
			break;
		}
		if (cr_bench_samples_add(&h->s, (cr_now_ns() - t0) / 2) < 0) {
			h->error = ENOMEM;
			break;
		}
	}
	return NULL;
}

/* Ends the measuring: the thread joined, the child (its socket closed) reaped. */
static void handoff_stop(struct handoff *h)
{
	atomic_store(&h->stop, true);
	if (h->started)
		pthread_join(h->thread, NULL);
	h->started = false;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	if (h->child > 0)
		while (waitpid(h->child, NULL, 0) < 0 && errno == EINTR)
			;
	h->child = 0;
}

static int handoff_start(struct handoff *h, struct cr_error *err)
{
	int sv[2];
	*h = (struct handoff){ .fd = -1, .cpus = 1 };
	cpu_set_t allowed, child_set;
	CPU_ZERO(&child_set);
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) >= 2) {
		for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
			if (CPU_ISSET(c, &allowed))
				h->cpu[k++] = c;
		h->cpus = 2;
		CPU_SET(h->cpu[1], &child_set);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return cr_error_errno(err, errno, "bench ttft: socketpair");
	pid_t pid = fork();
	if (pid == 0) {
		/* Only system calls: this process has other threads. It ends when the other end
		 * closes, with the benchmark or at handoff_stop. */
		char c;
		if (CPU_COUNT(&child_set) &&
		    sched_setaffinity(0, sizeof(child_set), &child_set) < 0)
			_exit(1);
		close(sv[0]);
		while (recv(sv[1], &c, 1, 0) == 1 && send(sv[1], &c, 1, MSG_NOSIGNAL) == 1)
			;
		_exit(0);
	}
	int e = errno;
	close(sv[1]);
	h->fd = sv[0];
	if (pid < 0) {
		handoff_stop(h);
		return cr_error_errno(err, e, "bench ttft: fork");
	}
	h->child = pid;
	if ((e = pthread_create(&h->thread, NULL, handoff_main, h)) != 0) {
		handoff_stop(h);
		return cr_error_errno(err, e, "bench ttft: start a thread");
	}
	h->started = true;
	return 0;
}

/* handoff_{p50,p95,max}_us, handoff_samples, handoff_cpus and overhead_p50_handoffs (the
 * overhead's p50 over the hand-off's) into o; nulls when the measuring failed before its first
 * sample. */
static int handoff_json(struct handoff *h, double overhead_p50_ms, json_t *o)
{
	if (h->error)
		fprintf(stderr, "bench ttft: the hand-off baseline stopped after %zu samples: %s\n",
			h->s.n, strerror(h->error));
	size_t n = h->s.n;
	double p50 = 0, p95 = 0, max = 0;
	if (n) {
		cr_bench_sort(h->s.v, n);
		p50 = (double)cr_bench_rank(h->s.v, n, 50) / 1e3;
		p95 = (double)cr_bench_rank(h->s.v, n, 95) / 1e3;
		max = (double)h->s.v[n - 1] / 1e3;
	}
	bool ok = cr_bench_put(o, "handoff_p50_us", n ? json_real(p50) : json_null()) == 0 &&
		  cr_bench_put(o, "handoff_p95_us", n ? json_real(p95) : json_null()) == 0 &&
		  cr_bench_put(o, "handoff_max_us", n ? json_real(max) : json_null()) == 0 &&
		  cr_bench_put(o, "handoff_samples", json_integer((json_int_t)n)) == 0 &&
		  cr_bench_put(o, "handoff_cpus", json_integer(h->cpus)) == 0 &&
		  cr_bench_put(o, "overhead_p50_handoffs",
			       p50 > 0 ? json_real(overhead_p50_ms * 1e3 / p50) : json_null()) == 0;
	return ok ? 0 : -1;
}

/* --- a mode: S sessions, C at once ------------------------------------------------------------ */

struct mode_run {
	const struct setup_ids *ids;
	enum mode mode;
	unsigned total;
	struct sess *v; /* total */
	atomic_uint next, done, errors;
	atomic_bool abort; /* more than a tenth of the sessions failed: the rest are not run */
	const atomic_bool *cancel;
};

struct runner {
	pthread_t thread;
	struct client *client;
	struct mode_run *run;
	bool started;
};

static void *runner_main(void *arg)
{
	struct runner *w = arg;
	struct mode_run *m = w->run;
	for (;;) {
		if (cr_bench_cancelled(m->cancel) || atomic_load(&m->abort))
			break;
		unsigned i = atomic_fetch_add(&m->next, 1);
		if (i >= m->total)
			break;
		struct sess *s = &m->v[i];
		struct cr_error err = { 0 };
		if (run_session(w->client, m->ids, m->mode, s, &err) < 0) {
			snprintf(s->error, sizeof(s->error), "%s", err.msg);
			/* (a session cut short by a cancel or by the others' failures is none) */
			if (err.code != ECANCELED &&
			    (atomic_fetch_add(&m->errors, 1) + 1) * 10 > m->total)
				atomic_store(&m->abort, true);
		}
		atomic_fetch_add(&m->done, 1);
	}
	return NULL;
}

static const char *mode_name(enum mode m)
{
	return m == MODE_EAGER ? "eager" : m == MODE_LAZY ? "lazy" : "warm-up";
}

/* The first error of a run's sessions, or NULL. */
static const char *first_error(const struct mode_run *m)
{
	for (unsigned i = 0; i < m->total; i++)
		if (!m->v[i].ok && m->v[i].error[0] && strcmp(m->v[i].error, "interrupted") != 0)
			return m->v[i].error;
	return NULL;
}

/* Runs m->total sessions on n clients (one thread each), the classes alternating; the wall
 * time in *ret_wall_s. Sessions that failed are marked in m->v (with their error); a cancel,
 * no thread, or failures of more than a tenth of the sessions (then the rest are not run)
 * fail the run. */
static int run_mode(struct mode_run *m, struct client *clients, unsigned n, FILE *progress,
		    double *ret_wall_s, struct cr_error *err)
{
	struct runner *w = calloc(n, sizeof(*w));
	if (!w)
		return cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	for (unsigned i = 0; i < m->total; i++)
		m->v[i] = (struct sess){ .cls = m->mode == MODE_WARMUP ? CLS_NO_SANDBOX
								       : (enum cls)(i % 2) };
	uint64_t t0 = cr_now_ns(), next_note = t0 + PROGRESS_EVERY_NS;
	int r = 0;
	for (unsigned i = 0; i < n; i++) {
		clients[i].abort = &m->abort;
		w[i] = (struct runner){ .client = &clients[i], .run = m };
		int e = pthread_create(&w[i].thread, NULL, runner_main, &w[i]);
		if (e) {
			r = cr_error_errno(err, e, "bench ttft: start a thread");
			atomic_store(&m->next, m->total); /* the others stop after their session */
			break;
		}
		w[i].started = true;
	}
	/* (after a cancel the threads end their sessions in flight, which see it too) */
	while (r == 0 && !cr_bench_cancelled(m->cancel) && !atomic_load(&m->abort)) {
		unsigned done = atomic_load(&m->done);
		if (done >= m->total)
			break;
		uint64_t now = cr_now_ns();
		if (now >= next_note) {
			cr_bench_progress(progress, NAME, "%s: %u/%u sessions (%u errors)",
					  mode_name(m->mode), done, m->total,
					  atomic_load(&m->errors));
			next_note = now + PROGRESS_EVERY_NS;
		}
		usleep(50000);
	}
	for (unsigned i = 0; i < n; i++) {
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
		clients[i].abort = NULL;
	}
	free(w);
	*ret_wall_s = (double)(cr_now_ns() - t0) / 1e9;
	if (r < 0)
		return r;
	if (cr_bench_cancelled(m->cancel))
		return cr_bench_cancel_error(err);
	if (atomic_load(&m->abort)) {
		unsigned failed = atomic_load(&m->errors);
		return cr_error_set(err, EIO,
				    "bench ttft: %s: %u of %u sessions failed, more than a tenth; "
				    "the first: %s",
				    mode_name(m->mode), failed, atomic_load(&m->done),
				    first_error(m) ?: "?");
	}
	return 0;
}

/* --- figures ---------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentiles of the sorted v[0..n) (n > 0), as cr_bench_rank. */
static double rank_of(const double *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;
	return v[rank ? rank - 1 : 0];
}

struct tails {
	size_t n;
	double p50, p95, p99, max;
};

enum field {
	F_TTFT,
	F_START,
	F_CREATE,
	F_SEND,
	F_SERVER_TTFT,
	F_OVERHEAD,
	F_TOTAL
};

static double field_of(const struct sess *s, enum field f)
{
	switch (f) {
	case F_TTFT:
		return s->ttft_ms;
	case F_START:
		return s->start_ms;
	case F_CREATE:
		return s->create_ms;
	case F_SEND:
		return s->send_ms;
	case F_SERVER_TTFT:
		return s->server_ttft_ms;
	case F_OVERHEAD:
		return s->overhead_ms;
	case F_TOTAL:
		return s->total_ms;
	}
	return 0;
}

/* The tails of field f over the successful sessions of class cls (-1: all). */
static int tails_of(const struct mode_run *m, int cls, enum field f, struct tails *t)
{
	double *v = calloc(m->total ? m->total : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t n = 0;
	for (unsigned i = 0; i < m->total; i++)
		if (m->v[i].ok && (cls < 0 || (int)m->v[i].cls == cls))
			v[n++] = field_of(&m->v[i], f);
	*t = (struct tails){ .n = n };
	if (n) {
		qsort(v, n, sizeof(*v), cmp_double);
		t->p50 = rank_of(v, n, 50);
		t->p95 = rank_of(v, n, 95);
		t->p99 = rank_of(v, n, 99);
		t->max = v[n - 1];
	}
	free(v);
	return 0;
}

static json_t *num_or_null(bool have, double v)
{
	return have ? json_real(v) : json_null();
}

/* <prefix>_p50_ms, _p95_ms, _p99_ms, _max_ms (null without samples). */
static int put_tails(json_t *o, const char *prefix, const struct tails *t, bool with_max)
{
	char key[80];
	static const char *const names[] = { "p50", "p95", "p99", "max" };
	const double v[] = { t->p50, t->p95, t->p99, t->max };
	for (size_t i = 0; i < CR_ARRAY_SIZE(names) - !with_max; i++) {
		snprintf(key, sizeof(key), "%s_%s_ms", prefix, names[i]);
		if (cr_bench_put(o, key, num_or_null(t->n > 0, v[i])) < 0)
			return -1;
	}
	return 0;
}

/* How much lower lazy is than eager, in percent of eager. */
static double cut_pct(double eager, double lazy)
{
	return eager > 0 ? (eager - lazy) / eager * 100.0 : 0;
}

/* TTFT of both modes, cuts and the lazy overhead, for class cls (-1: all) into o, the keys
 * unprefixed (eager_p50_ms, ..., p50_cut_pct, overhead_p50_ms, ...). */
static int put_comparison(json_t *o, const struct mode_run *eager, const struct mode_run *lazy,
			  int cls, struct tails *ret_eager, struct tails *ret_lazy,
			  struct tails *ret_overhead)
{
	struct tails e, l, ov;
	if (tails_of(eager, cls, F_TTFT, &e) < 0 || tails_of(lazy, cls, F_TTFT, &l) < 0 ||
	    tails_of(lazy, cls, F_OVERHEAD, &ov) < 0)
		return -1;
	bool both = e.n && l.n;
	if (put_tails(o, "eager", &e, true) < 0 || put_tails(o, "lazy", &l, true) < 0 ||
	    cr_bench_put(o, "p50_cut_pct", num_or_null(both, cut_pct(e.p50, l.p50))) < 0 ||
	    cr_bench_put(o, "p95_cut_pct", num_or_null(both, cut_pct(e.p95, l.p95))) < 0 ||
	    put_tails(o, "overhead", &ov, true) < 0)
		return -1;
	if (ret_eager)
		*ret_eager = e;
	if (ret_lazy)
		*ret_lazy = l;
	if (ret_overhead)
		*ret_overhead = ov;
	return 0;
}

/* A mode's own figures: sessions, errors, rate, and where the time went. */
static json_t *mode_json(const struct mode_run *m, double wall_s)
{
	json_t *o = json_object();
	struct tails t;
	unsigned ok = 0, connected = 0;
	for (unsigned i = 0; i < m->total; i++) {
		ok += m->v[i].ok;
		connected += m->v[i].ok && m->v[i].send_connected;
	}
	const char *fe = first_error(m);
	if (!o || cr_bench_put(o, "sessions", json_integer(ok)) < 0 ||
	    cr_bench_put(o, "errors", json_integer(m->total - ok)) < 0 ||
	    cr_bench_put(o, "first_error", fe ? json_string(fe) : json_null()) < 0 ||
	    cr_bench_put(o, "wall_s", json_real(wall_s)) < 0 ||
	    cr_bench_put(o, "sessions_per_s", json_real(wall_s > 0 ? ok / wall_s : 0)) < 0 ||
	    cr_bench_put(o, "send_connects", json_integer(connected)) < 0)
		goto fail;
	static const struct {
		enum field f;
		const char *prefix;
	} fields[] = {
		{ F_TTFT, "ttft" },
		{ F_START, "start" },
		{ F_CREATE, "create" },
		{ F_SEND, "send" },
		{ F_SERVER_TTFT, "server_ttft" },
		{ F_OVERHEAD, "overhead" },
		{ F_TOTAL, "session" },
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(fields); i++)
		if (tails_of(m, -1, fields[i].f, &t) < 0 ||
		    put_tails(o, fields[i].prefix, &t, true) < 0)
			goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* --- wake of a 10,000-event session ----------------------------------------------------------- */

/* Some text of about len bytes, different for each i. */
static void filler(char *buf, size_t size, size_t len, const char *lead, unsigned i)
{
	static const char *const words[] = { "the",    "parser",  "splits", "each",  "token",
					     "before", "the",	  "lexer",  "hands", "it",
					     "to",     "grammar", "rules",  "which", "reduce" };
	size_t n = (size_t)snprintf(buf, size, "%s %u:", lead, i);
	for (size_t k = i; n + 12 < len && n + 12 < size; k += 7)
		n += (size_t)snprintf(buf + n, size - n, " %s", words[k % CR_ARRAY_SIZE(words)]);
	snprintf(buf + n, size - n, ".");
}

struct ev_spec {
	const char *type;
	json_t *payload; /* owned */
};

/* Appends specs[0..n) as one unit under epoch; their results in ret (n of them). */
static int append_group(struct cr_log *log, const char *session, uint64_t epoch,
			struct ev_spec *specs, size_t n, struct cr_log_appended *ret,
			struct cr_error *err)
{
	struct cr_log_append a[CR_LOG_GROUP_MAX] = { 0 };
	char *text[CR_LOG_GROUP_MAX] = { 0 };
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		text[i] = specs[i].payload ? json_dumps(specs[i].payload, JSON_COMPACT) : NULL;
		if (!text[i])
			r = cr_error_set(err, ENOMEM, "bench ttft: out of memory");
		else
			a[i] = (struct cr_log_append){ .session = session,
						       .epoch = epoch,
						       .type = specs[i].type,
						       .payload = text[i],
						       .payload_len = strlen(text[i]) };
	}
	if (r == 0)
		r = cr_log_append_all(log, a, n, ret, err);
	for (size_t i = 0; i < n; i++) {
		free(text[i]);
		json_decref(specs[i].payload);
	}
	return r;
}

static json_t *text_content(const char *text)
{
	return json_pack("[{s:s,s:s}]", "type", "text", "text", text);
}

/* A session of CR_BENCH_TTFT_WAKE_EVENTS events of a realistic conversation, all processed,
 * ending on a tool result so that its next step is a model call: a user.message, the lease
 * and session.status_running; then model turns (span.model_request_start, agent.message of
 * about 200 bytes, a bash agent.tool_use, span.model_request_end) each followed by its
 * agent.tool_result of about 300 bytes. The first turn makes two calls, which brings the count
 * to the round number. Written in two durable groups per turn (the ids a later event names
 * are known once the earlier group is durable). */
static int wake_build(struct cr_log *log, char session[CR_LOG_ID_MAX], const atomic_bool *cancel,
		      struct cr_error *err)
{
	char text[512];
	int r = cr_log_session_create(log, NULL, session, err);
	if (r < 0)
		return r;
	json_t *msg = json_pack("{s:o}", "content",
				text_content("Refactor the parser in src/parser.c so that every "
					     "grammar rule has a test; run the tests as you go."));
	_cleanup_free_ char *msg_text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (!msg_text)
		return cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	struct cr_log_append um = { .session = session,
				    .type = "user.message",
				    .payload = msg_text,
				    .payload_len = strlen(msg_text),
				    .flags = CR_LOG_PENDING };
	struct cr_log_appended user, got[CR_LOG_GROUP_MAX];
	uint64_t epoch = 0;
	if ((r = cr_log_append(log, &um, &user, err)) < 0 ||
	    (r = cr_log_acquire(log, session, &epoch, err)) < 0)
		return r;
	struct ev_spec running = { "session.status_running", json_object() };
	if ((r = append_group(log, session, epoch, &running, 1, NULL, err)) < 0 ||
	    (r = cr_log_mark_processed(log, session, epoch, user.seq, err)) < 0)
		return r;

	/* 3 so far; then 5 per turn, and 2 more for the first turn's second call */
	const unsigned turns = (CR_BENCH_TTFT_WAKE_EVENTS - 3 - 2) / 5;
	struct ev_spec start = { "span.model_request_start", json_object() };
	if ((r = append_group(log, session, epoch, &start, 1, got, err)) < 0)
		return r;
	char start_id[CR_LOG_ID_MAX];
	snprintf(start_id, sizeof(start_id), "%s", got[0].id);
	for (unsigned t = 0; t < turns; t++) {
		if (t % 100 == 0 && cr_bench_cancelled(cancel))
			return cr_bench_cancel_error(err);
		unsigned calls = t == 0 ? 2 : 1;
		struct ev_spec g[8];
		size_t n = 0;
		filler(text, sizeof(text), 200, "Turn", t);
		g[n++] = (struct ev_spec){ "agent.message",
					   json_pack("{s:o}", "content", text_content(text)) };
		for (unsigned k = 0; k < calls; k++) {
			char cmd[96];
			snprintf(cmd, sizeof(cmd), "grep -n 'rule_%u' src/parser.c | head -20",
				 t * 2 + k);
			g[n++] = (struct ev_spec){ "agent.tool_use",
						   json_pack("{s:s,s:{s:s}}", "name", "bash",
							     "input", "command", cmd) };
		}
		g[n++] = (struct ev_spec){
			"span.model_request_end",
			json_pack("{s:s,s:b,s:{s:i,s:i,s:i,s:i},s:s}", "model_request_start_id",
				  start_id, "is_error", 0, "model_usage", "input_tokens", 0,
				  "output_tokens", 0, "cache_creation_input_tokens", 0,
				  "cache_read_input_tokens", 0, "stop_reason", "tool_use")
		};
		if ((r = append_group(log, session, epoch, g, n, got, err)) < 0)
			return r;
		char use_id[2][CR_LOG_ID_MAX];
		for (unsigned k = 0; k < calls; k++)
			snprintf(use_id[k], sizeof(use_id[k]), "%s", got[1 + k].id);
		n = 0;
		for (unsigned k = 0; k < calls; k++) {
			filler(text, sizeof(text), 300, "src/parser.c", t * 2 + k);
			g[n++] = (struct ev_spec){ "agent.tool_result",
						   json_pack("{s:s,s:o,s:b}", "tool_use_id",
							     use_id[k], "content",
							     text_content(text), "is_error", 0) };
		}
		bool last = t + 1 == turns;
		if (!last)
			g[n++] = (struct ev_spec){ "span.model_request_start", json_object() };
		if ((r = append_group(log, session, epoch, g, n, got, err)) < 0)
			return r;
		if (!last)
			snprintf(start_id, sizeof(start_id), "%s", got[n - 1].id);
	}
	return 0;
}

static json_t *wake_agent(void)
{
	return json_pack("{s:{s:s},s:[{s:s}]}", "model", "id", "claude-sonnet-4-5", "tools", "type",
			 CR_TOOLSET_TYPE);
}

static int wake_config(void *arg, const char *session, json_t **ret_agent, json_t **ret_env,
		       struct cr_error *err)
{
	(void)arg;
	(void)session;
	json_t *a = wake_agent(), *e = json_object();
	if (!a || !e) {
		json_decref(a);
		json_decref(e);
		return cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	}
	*ret_agent = a;
	*ret_env = e;
	return 0;
}

/* That the session's next step is a model call, as the harness decides it from its events. */
static int wake_check(struct cr_log *log, const char *session, size_t *ret_events,
		      struct cr_error *err)
{
	struct cr_log_event *ev = NULL;
	size_t n = 0;
	int r = cr_log_get_events(log, session, 0, 0, &ev, &n, err);
	if (r < 0)
		return r;
	json_t *agent_obj = wake_agent();
	struct cr_harness_agent agent;
	struct cr_harness_step s;
	cr_orch_harness_agent(agent_obj, &agent);
	r = agent_obj ? cr_harness_step(&agent, ev, n, &s, err)
		      : cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	if (r == 0) {
		if (s.kind != CR_STEP_MODEL)
			r = cr_error_set(err, EPROTO,
					 "bench ttft: the 10,000-event session's next step is "
					 "not a model call (kind %d)",
					 (int)s.kind);
		cr_harness_step_clear(&s);
	}
	json_decref(agent_obj);
	cr_log_events_free(ev, n);
	if (r == 0)
		*ret_events = n;
	return r;
}

struct wake_serve {
	pthread_t thread;
	sem_t go; /* posted once per wake: the wake's clock starts then */
	int fd;
	const char *session;
	const struct cr_platform *platform;
	unsigned wakes;
	int result;
	struct cr_error err;
};

/* corrald's side of the link: answers the worker's requests for each wake. */
static void *serve_main(void *arg)
{
	struct wake_serve *w = arg;
	for (unsigned i = 0; i < w->wakes; i++) {
		struct cr_brainlink_done d;
		while (sem_wait(&w->go) < 0)
			;
		int r = cr_brainlink_serve(w->fd, w->session, NULL, 0, w->platform, 60000, &d,
					   &w->err);
		if (r < 0) {
			w->result = r;
			break;
		}
	}
	return NULL;
}

/* One wake to its first effect; the time of acquire + read + fold in *ret_ns. The wake stops
 * right after its first step (a model call: never made), so cr_orch_wake ends in -ECANCELED;
 * its result in *ret_result, for the brain link's done. */
static int wake_once(const struct cr_orch_config *oc, const char *session, uint64_t *ret_ns,
		     struct cr_orch_stats *st, int *ret_result, struct cr_error *err)
{
	struct cr_error werr = { 0 };
	*st = (struct cr_orch_stats){ 0 };
	int r = cr_orch_wake(oc, session, st, &werr);
	*ret_result = r;
	if (r < 0 && r != -ECANCELED) {
		*err = werr;
		return cr_error_prefix(err, "bench ttft: wake");
	}
	if (r == 0 || st->steps != 1)
		return cr_error_set(
			err, EPROTO,
			"bench ttft: the wake did not stop at its first step (%u steps)",
			st->steps);
	*ret_ns = st->replay_ns;
	return 0;
}

struct wake_figures {
	size_t events;
	struct cr_bench_samples link, local;
	struct cr_bench_samples read, step; /* of the in-process wake: the log read, the fold */
};

/* The in-process wake's two parts, apart: reading every event of the session from the log,
 * and the harness step over them. */
static int wake_parts(struct cr_log *log, const char *session, struct wake_figures *wf,
		      struct cr_error *err)
{
	struct cr_log_event *ev = NULL;
	size_t n = 0;
	uint64_t t0 = cr_now_ns();
	int r = cr_log_get_events(log, session, 0, 0, &ev, &n, err);
	if (r < 0)
		return r;
	uint64_t t1 = cr_now_ns();
	json_t *agent_obj = wake_agent();
	struct cr_harness_agent agent;
	struct cr_harness_step s;
	cr_orch_harness_agent(agent_obj, &agent);
	uint64_t t2 = cr_now_ns();
	r = agent_obj ? cr_harness_step(&agent, ev, n, &s, err)
		      : cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	uint64_t t3 = cr_now_ns();
	if (r == 0)
		cr_harness_step_clear(&s);
	json_decref(agent_obj);
	cr_log_events_free(ev, n);
	if (r == 0 && (cr_bench_samples_add(&wf->read, t1 - t0) < 0 ||
		       cr_bench_samples_add(&wf->step, t3 - t2) < 0))
		r = cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	return r;
}

static int wake_measure(const char *dir, struct wake_figures *wf, const atomic_bool *cancel,
			FILE *progress, struct cr_error *err)
{
	char path[PATH_MAX], session[CR_LOG_ID_MAX];
	int r = cr_bench_path_join(path, sizeof(path), dir, "wake-log", err);
	if (r < 0)
		return r;
	struct cr_log_options lo;
	cr_log_options_init(&lo);
	lo.create = true;
	struct cr_log *log = NULL;
	struct cr_platform local = { 0 };
	struct cr_model_client *model = NULL;
	struct cr_brainlink *link = NULL;
	struct wake_serve ws = { .fd = -1 };
	sem_init(&ws.go, 0, 0);
	int pair[2] = { -1, -1 };
	bool serving = false;
	const unsigned rounds = CR_BENCH_TTFT_WAKE_REPEATS + 1; /* the first: a warm-up */

	if ((r = cr_log_open(path, &lo, &log, err)) < 0)
		return r;
	cr_bench_progress(progress, NAME, "wake: writing a session of %u events",
			  CR_BENCH_TTFT_WAKE_EVENTS);
	uint64_t t0 = cr_now_ns();
	if ((r = wake_build(log, session, cancel, err)) < 0 ||
	    (r = wake_check(log, session, &wf->events, err)) < 0)
		goto out;
	cr_bench_progress(progress, NAME,
			  "wake: %zu events written in %.1f s; %u wakes over a brain link and %u "
			  "in-process",
			  wf->events, (double)(cr_now_ns() - t0) / 1e9, CR_BENCH_TTFT_WAKE_REPEATS,
			  CR_BENCH_TTFT_WAKE_REPEATS);

	struct cr_platform_local_config pc = { .log = log, .config = wake_config };
	if ((r = cr_platform_local_new(&pc, &local, err)) < 0)
		goto out;
	struct cr_model_config mc;
	cr_model_config_init(&mc);
	mc.base_url = "http://127.0.0.1:9"; /* never called: the wake stops before */
	mc.api_key = "bench-ttft-unused";
	mc.max_retries = 0;
	if ((r = cr_model_client_new(&mc, &model, err)) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
		r = cr_error_errno(err, errno, "socketpair");
		goto out;
	}
	ws.fd = TAKE_FD(pair[0]);
	if ((r = cr_brainlink_new(pair[1], &link, err)) < 0)
		goto out;
	pair[1] = -1; /* the link's now */
	ws.session = session;
	ws.platform = &local;
	ws.wakes = rounds;
	int e = pthread_create(&ws.thread, NULL, serve_main, &ws);
	if (e) {
		r = cr_error_errno(err, e, "bench ttft: start a thread");
		goto out;
	}
	serving = true;

	volatile int stop = 1;
	struct cr_orch_config link_oc = { .platform = cr_brainlink_platform(link),
					  .model = model,
					  .model_retries = -1,
					  .stop = &stop };
	struct cr_orch_config local_oc = link_oc;
	local_oc.platform = local;
	for (unsigned i = 0; i < rounds; i++) {
		if (cr_bench_cancelled(cancel)) {
			r = cr_bench_cancel_error(err);
			goto out;
		}
		for (int k = 0; k < 2; k++) {
			bool over_link = (k == 0) == (i % 2 == 0); /* the order alternates */
			uint64_t ns = 0;
			struct cr_orch_stats st;
			int result = 0;
			if (over_link) {
				/* from corrald's first move: the wake order carries the
				 * session's configuration and first events */
				char got[CR_LOG_ID_MAX];
				struct cr_log_event *early;
				size_t n_early;
				uint64_t t_order = cr_now_ns();
				sem_post(&ws.go);
				if ((r = cr_brainlink_next(link, got, &early, &n_early, err)) < 0)
					goto out;
				cr_log_events_free(early, n_early); /* (none) */
				uint64_t ordered = cr_now_ns() - t_order;
				r = wake_once(&link_oc, got, &ns, &st, &result, err);
				ns += ordered;
				struct cr_error e2;
				int d = cr_brainlink_done(link, got, result, &st, "stopped", &e2);
				if (r == 0 && d < 0) {
					*err = e2;
					r = d;
				}
			} else {
				r = wake_once(&local_oc, session, &ns, &st, &result, err);
			}
			if (r < 0)
				goto out;
			struct cr_log_session_info info;
			if ((r = cr_log_session_info(log, session, &info, err)) < 0)
				goto out;
			if (st.last_seq != info.last_seq) {
				r = cr_error_set(
					err, EPROTO,
					"bench ttft: the wake %s saw events to seq %" PRIu64
					" of %" PRIu64,
					over_link ? "over the link" : "in-process", st.last_seq,
					info.last_seq);
				goto out;
			}
			if (i > 0 &&
			    cr_bench_samples_add(over_link ? &wf->link : &wf->local, ns) < 0) {
				r = cr_error_set(err, ENOMEM, "bench ttft: out of memory");
				goto out;
			}
		}
		if (i > 0 && (r = wake_parts(log, session, wf, err)) < 0)
			goto out;
	}
out:
	cr_brainlink_free(link); /* (the serving thread sees the link close) */
	sem_post(&ws.go); /* (one that waits for its go sees it close then) */
	if (pair[1] >= 0)
		close(pair[1]);
	if (serving)
		pthread_join(ws.thread, NULL);
	sem_destroy(&ws.go);
	if (pair[0] >= 0)
		close(pair[0]);
	if (ws.fd >= 0)
		close(ws.fd);
	if (r == 0 && ws.result < 0) {
		*err = ws.err;
		r = cr_error_prefix(err, "bench ttft: corrald's side of the brain link");
	}
	cr_model_client_free(model);
	if (local.p)
		cr_platform_local_free(&local);
	cr_log_close(log);
	return r;
}

/* --- the servers ------------------------------------------------------------------------------ */

struct servers {
	pid_t fake, corrald;
	char base[64];
	char sock[PATH_MAX], state[PATH_MAX], key_file[PATH_MAX];
	char fake_err[PATH_MAX], corrald_err[PATH_MAX];
};

static int fake_start(struct servers *sv, const struct cr_bench_ttft_opts *o, const char *dir,
		      const char *key, struct cr_error *err)
{
	char scen[PATH_MAX], port_file[PATH_MAX], ft[16], p99[16];
	int r;
	if ((r = cr_bench_path_join(scen, sizeof(scen), dir, "scenario.json", err)) < 0 ||
	    (r = cr_bench_path_join(port_file, sizeof(port_file), dir, "fake.port", err)) < 0 ||
	    (r = cr_bench_path_join(sv->fake_err, sizeof(sv->fake_err), dir, "fake.err", err)) < 0)
		return r;
	json_t *sc =
		json_pack("{s:[{s:{s:s},s:{s:s,s:s}}],s:[{s:s,s:[{s:s,s:{s:s}}]},{s:s,s:s}]}",
			  "rules", "when", "user_text_contains", "no tools", "reply", "text",
			  "Nothing to run: here is the answer.", "stop_reason", "end_turn", "turns",
			  "text", "Running it.", "tool_calls", "name", "bash", "input", "command",
			  "true", "text", "Done.", "stop_reason", "end_turn");
	r = sc && json_dump_file(sc, scen, 0) == 0 ? 0 : cr_error_set(err, EIO, "write %s", scen);
	json_decref(sc);
	if (r < 0)
		return r;
	snprintf(ft, sizeof(ft), "%u", o->first_token_ms);
	snprintf(p99, sizeof(p99), "%u", o->first_token_p99_ms);
	char *argv[] = { (char *)o->fake_api,
			 "--listen",
			 "127.0.0.1:0",
			 "--port-file",
			 port_file,
			 "--api-key",
			 (char *)key,
			 "--scenario",
			 scen,
			 "--first-token-ms",
			 ft,
			 "--first-token-p99-ms",
			 p99,
			 "--token-rate",
			 "0",
			 NULL };
	if ((r = cr_bench_spawn(argv, NULL, sv->fake_err, &sv->fake, err)) < 0)
		return r;
	unsigned port = 0;
	if ((r = cr_bench_wait_port(port_file, &sv->fake, o->fake_api, sv->fake_err, 10000, &port,
				    err)) < 0)
		return r;
	snprintf(sv->base, sizeof(sv->base), "http://127.0.0.1:%u", port);
	return 0;
}

static int corrald_start(struct servers *sv, const struct cr_bench_ttft_opts *o, const char *dir,
			 unsigned workers, struct cr_error *err)
{
	char nworkers[16];
	int r;
	if ((r = cr_bench_path_join(sv->state, sizeof(sv->state), dir, "state", err)) < 0 ||
	    (r = cr_bench_path_join(sv->corrald_err, sizeof(sv->corrald_err), dir, "corrald.err",
				    err)) < 0)
		return r;
	snprintf(nworkers, sizeof(nworkers), "%u", workers);
	char *argv[] = { (char *)o->corrald, "--state-dir",	 sv->state,    "--socket",
			 sv->sock,	     "--workers",	 nworkers,     "--model-base-url",
			 sv->base,	     "--model-key-file", sv->key_file, NULL };
	if ((r = cr_bench_spawn(argv, NULL, sv->corrald_err, &sv->corrald, err)) < 0)
		return r;
	for (int i = 0; i < 6000; i++) { /* 60 s: it checks the kernel's layers first */
		if (file_has(sv->corrald_err, "corrald: serving"))
			return 0;
		if (waitpid(sv->corrald, NULL, WNOHANG) == sv->corrald) {
			sv->corrald = -1;
			break;
		}
		usleep(10000);
	}
	char line[200];
	cr_bench_child_error(sv->corrald_err, line, sizeof(line));
	return cr_error_set(err, EIO, "%s did not start%s%s", o->corrald, *line ? ": " : "", line);
}

/* Sandboxes a stopped corrald left behind (a create cut short by a cancel finishes after the
 * bench stopped waiting for it): destroyed, so that the work directory can go. */
static void sweep_sandboxes(const char *state)
{
	char **ids = NULL;
	size_t n = 0;
	struct cr_error e;
	if (cr_sandbox_list(state, &ids, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct cr_sandbox *sb = NULL;
		if (cr_sandbox_open(state, ids[i], &sb, &e) == 0) {
			if (cr_sandbox_destroy(sb, false, &e) < 0)
				fprintf(stderr, "bench ttft: destroy sandbox %s: %s\n", ids[i],
					e.msg);
			cr_sandbox_free(sb);
		}
		free(ids[i]);
	}
	free(ids);
}

/* --- the benchmark ---------------------------------------------------------------------------- */

static int make_environment(struct client *c, const char *name, const char *provisioning,
			    unsigned delay_ms, char ret_id[CR_LOG_ID_MAX], struct cr_error *err)
{
	json_t *config = json_pack("{s:s,s:s}", "type", "cloud", "provisioning", provisioning);
	if (config && delay_ms)
		json_object_set_new(config, "provision_delay_ms", json_integer(delay_ms));
	json_t *body = config ? json_pack("{s:s,s:o}", "name", name, "config", config) : NULL;
	json_t *got = NULL;
	if (!body)
		return cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	int r = request(c, "POST", "/v1/environments", body, 30000, &got, err);
	json_decref(body);
	if (r < 0)
		return r;
	json_t *cfg = json_object_get(got, "config");
	const char *id = json_string_value(json_object_get(got, "id"));
	json_t *d = json_object_get(cfg, "provision_delay_ms");
	if (!id || strlen(id) >= CR_LOG_ID_MAX)
		r = cr_error_set(err, EPROTO, "POST /v1/environments: no id in the answer");
	else if (strcmp(json_string_value(json_object_get(cfg, "provisioning")) ?: "",
			provisioning) != 0)
		r = cr_error_set(err, EPROTO,
				 "environment %s: corrald did not keep config.provisioning "
				 "\"%s\"",
				 name, provisioning);
	else if (delay_ms && (!json_is_integer(d) || json_integer_value(d) != (json_int_t)delay_ms))
		r = cr_error_set(err, ENOTSUP,
				 "environment %s: corrald did not keep config.provision_delay_ms "
				 "(this corrald's API does not know it), so the added delay would "
				 "not apply: run with --added-delay-ms 0 or a newer corrald",
				 name);
	else
		snprintf(ret_id, CR_LOG_ID_MAX, "%s", id);
	json_decref(got);
	return r;
}

static int make_resources(struct client *c, unsigned delay_ms, struct setup_ids *ids,
			  struct cr_error *err)
{
	json_t *agent = json_pack("{s:s,s:s,s:[{s:s}]}", "name", "bench-ttft", "model",
				  "claude-sonnet-4-5", "tools", "type", CR_TOOLSET_TYPE);
	json_t *got = NULL;
	if (!agent)
		return cr_error_set(err, ENOMEM, "bench ttft: out of memory");
	int r = request(c, "POST", "/v1/agents", agent, 30000, &got, err);
	json_decref(agent);
	if (r < 0)
		return r;
	const char *id = json_string_value(json_object_get(got, "id"));
	if (!id || strlen(id) >= sizeof(ids->agent))
		r = cr_error_set(err, EPROTO, "POST /v1/agents: no id in the answer");
	else
		snprintf(ids->agent, sizeof(ids->agent), "%s", id);
	json_decref(got);
	if (r < 0 ||
	    (r = make_environment(c, "bench-ttft-eager", "eager", delay_ms, ids->env_eager, err)) <
		    0 ||
	    (r = make_environment(c, "bench-ttft-lazy", "lazy", delay_ms, ids->env_lazy, err)) <
		    0 ||
	    (r = make_environment(c, "bench-ttft-eager-bare", "eager", 0, ids->env_bare, err)) < 0)
		return r;
	return 0;
}

/* Waits until session s has its sandbox (a sandbox.provisioned event), polling every
 * millisecond; an eager session's sandbox is made on corrald's thread after the create. */
static int wait_provisioned(struct client *c, const struct sess *s, struct cr_error *err)
{
	char path[200];
	snprintf(path, sizeof(path),
		 "/v1/sessions/%s/events?types%%5B%%5D=sandbox.provisioned&limit=1", s->id);
	for (uint64_t deadline = cr_now_ns() + 60 * 1000000000ull; cr_now_ns() < deadline;) {
		json_t *got = NULL;
		int r = request(c, "GET", path, NULL, 60000, &got, err);
		if (r < 0)
			return r;
		size_t n = json_array_size(json_object_get(got, "data"));
		json_decref(got);
		if (n)
			return 0;
		usleep(1000);
	}
	return cr_error_set(err, ETIMEDOUT, "session %s: no sandbox.provisioned after 60 s", s->id);
}

/* The bare sandbox's cost: from a session's create in an eager environment without added
 * delay to its sandbox.provisioned, against creates in the lazy one (no sandbox), one at a
 * time, alternating. */
static int sandbox_cost(struct client *c, const struct setup_ids *ids, struct tails *ret_eager,
			struct tails *ret_lazy, struct cr_error *err)
{
	double eager[CR_BENCH_TTFT_SANDBOX_SAMPLES], lazy[CR_BENCH_TTFT_SANDBOX_SAMPLES];
	for (unsigned i = 0; i < CR_BENCH_TTFT_SANDBOX_SAMPLES; i++) {
		for (int k = 0; k < 2; k++) {
			bool is_eager = (k == 0) == (i % 2 == 0);
			struct sess s = { 0 };
			uint64_t t0 = cr_now_ns();
			int r = create_session(c, ids, is_eager ? ids->env_bare : ids->env_lazy, &s,
					       err);
			if (r == 0 && is_eager)
				r = wait_provisioned(c, &s, err);
			uint64_t t = cr_now_ns() - t0;
			struct cr_error e2;
			int d = delete_session(c, &s, r < 0 ? &e2 : err);
			if (r < 0 || d < 0)
				return r < 0 ? r : d;
			(is_eager ? eager : lazy)[i] = ms_of(t);
		}
	}
	size_t n = CR_BENCH_TTFT_SANDBOX_SAMPLES;
	qsort(eager, n, sizeof(double), cmp_double);
	qsort(lazy, n, sizeof(double), cmp_double);
	*ret_eager = (struct tails){ n, rank_of(eager, n, 50), rank_of(eager, n, 95),
				     rank_of(eager, n, 99), eager[n - 1] };
	*ret_lazy = (struct tails){ n, rank_of(lazy, n, 50), rank_of(lazy, n, 95),
				    rank_of(lazy, n, 99), lazy[n - 1] };
	return 0;
}

static json_t *wake_json(struct cr_bench_samples *s, const char *prefix, json_t *o)
{
	char key[64];
	cr_bench_sort(s->v, s->n);
	static const char *const names[] = { "", "_p95", "_max" };
	const unsigned pct[] = { 50, 95, 100 };
	for (size_t i = 0; i < CR_ARRAY_SIZE(names); i++) {
		snprintf(key, sizeof(key), "%s%s_ms", prefix, names[i]);
		if (cr_bench_put(o, key,
				 s->n ? json_real(ms_of(cr_bench_rank(s->v, s->n, pct[i])))
				      : json_null()) < 0)
			return NULL;
	}
	return o;
}

int cr_bench_ttft(const struct cr_bench_ttft_opts *opts, json_t **ret, struct cr_error *err)
{
	const struct cr_bench_ttft_opts *o = opts;
	unsigned workers = o->workers ? o->workers : o->concurrency;
	if (o->sessions < 2 || o->sessions > CR_BENCH_TTFT_SESSIONS_MAX || !o->concurrency ||
	    o->concurrency > CR_BENCH_TTFT_CONCURRENCY_MAX || workers > CR_BENCH_TTFT_WORKERS_MAX ||
	    o->added_delay_ms > CR_BENCH_TTFT_MS_MAX || o->first_token_ms > CR_BENCH_TTFT_MS_MAX ||
	    o->first_token_p99_ms > CR_BENCH_TTFT_MS_MAX ||
	    (o->first_token_p99_ms && o->first_token_p99_ms <= o->first_token_ms) || !o->fake_api ||
	    !o->corrald || !o->dir)
		return cr_error_set(err, EINVAL, "bench ttft: bad options");
	cr_heap_keep(); /* (as a worker does: the in-process wakes are timed) */
	int r = cr_bench_check_dir(o->dir, err);
	if (r < 0)
		return r;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cr_error_set(err, EIO, "libcurl: cannot initialize");
	struct cr_bench_workdir w = { .name = NAME };
	if ((r = cr_bench_workdir_make(&w, o->dir, "corral-bench-ttft.XXXXXX", err)) < 0) {
		curl_global_cleanup();
		return r;
	}
	struct servers sv = { .fake = -1, .corrald = -1 };
	struct client *clients = NULL;
	unsigned nclients = 0;
	struct mode_run runs[2] = { 0 }, warm = { 0 };
	struct wake_figures wf = { 0 };
	struct setup_ids ids = { 0 };
	struct handoff ho = { .fd = -1 };
	json_t *out = NULL;
	char key[40];
	uint8_t rnd[16];

	if (getentropy(rnd, sizeof(rnd)) < 0) {
		r = cr_error_errno(err, errno, "getentropy");
		goto out;
	}
	snprintf(key, sizeof(key), "bench-");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(key + 6 + 2 * i, 3, "%02x", rnd[i]);
	if ((r = cr_bench_path_join(sv.key_file, sizeof(sv.key_file), w.path, "model-key", err)) <
		    0 ||
	    (r = cr_bench_path_join(sv.sock, sizeof(sv.sock), w.path, "corrald.sock", err)) < 0 ||
	    (r = cr_store_file(sv.key_file, key, strlen(key), 0600, err)) < 0)
		goto out;
	if (strlen(sv.sock) >= 108) {
		r = cr_error_set(err, ENAMETOOLONG,
				 "%s: too long for a Unix socket: give a shorter --dir", sv.sock);
		goto out;
	}
	cr_bench_progress(o->progress, NAME, "starting corral-fake-api and corrald (%u workers)",
			  workers);
	if ((r = fake_start(&sv, o, w.path, key, err)) < 0 ||
	    (r = corrald_start(&sv, o, w.path, workers, err)) < 0)
		goto out;

	clients = calloc(o->concurrency, sizeof(*clients));
	if (!clients) {
		r = cr_error_set(err, ENOMEM, "bench ttft: out of memory");
		goto out;
	}
	for (; nclients < o->concurrency; nclients++)
		if ((r = client_init(&clients[nclients], sv.sock, o->cancel, err)) < 0)
			goto out;
	if ((r = make_resources(&clients[0], o->added_delay_ms, &ids, err)) < 0)
		goto out;
	/* the wake while corrald idles (the set-up above failed fast), before any session */
	if ((r = wake_measure(w.path, &wf, o->cancel, o->progress, err)) < 0)
		goto out;
	/* a session lasts at most: the delay, two first tokens at their cap (10x the p99), and
	 * the rest; eager ones wait for the delay before their first model call */
	unsigned cap_ms = 10 * (o->first_token_p99_ms ? o->first_token_p99_ms : o->first_token_ms);
	ids.create_timeout_ms = o->added_delay_ms + 120000;
	ids.converse_timeout_ms = o->added_delay_ms + 2 * cap_ms + 120000;

	/* a warm-up wave: every client's connection and the workers' model connections */
	warm = (struct mode_run){
		.ids = &ids, .mode = MODE_WARMUP, .total = o->concurrency, .cancel = o->cancel
	};
	warm.v = calloc(warm.total, sizeof(*warm.v));
	runs[0] = (struct mode_run){
		.ids = &ids, .mode = MODE_EAGER, .total = o->sessions, .cancel = o->cancel
	};
	runs[1] = runs[0];
	runs[1].mode = MODE_LAZY;
	runs[0].v = calloc(o->sessions, sizeof(struct sess));
	runs[1].v = calloc(o->sessions, sizeof(struct sess));
	if (!warm.v || !runs[0].v || !runs[1].v) {
		r = cr_error_set(err, ENOMEM, "bench ttft: out of memory");
		goto out;
	}
	double wall[2] = { 0 }, warm_wall = 0;
	cr_bench_progress(o->progress, NAME, "warm-up: %u sessions", warm.total);
	if ((r = run_mode(&warm, clients, nclients, o->progress, &warm_wall, err)) < 0)
		goto out;
	if (atomic_load(&warm.errors) == warm.total) {
		r = cr_error_set(err, EIO, "bench ttft: every warm-up session failed: %s",
				 first_error(&warm));
		goto out;
	}

	cr_bench_progress(o->progress, NAME,
			  "bare sandbox: %u sessions of an eager environment without added "
			  "delay, each to its sandbox, against %u lazy creates",
			  CR_BENCH_TTFT_SANDBOX_SAMPLES, CR_BENCH_TTFT_SANDBOX_SAMPLES);
	struct tails bare_eager, bare_lazy;
	if ((r = sandbox_cost(&clients[0], &ids, &bare_eager, &bare_lazy, err)) < 0)
		goto out;

	for (int m = 0; m < 2; m++) {
		cr_bench_progress(o->progress, NAME,
				  "%s: %u sessions, %u at once (each %s waits %u ms for its "
				  "sandbox)",
				  mode_name(runs[m].mode), o->sessions, nclients,
				  m == 0 ? "first turn" : "first tool call", o->added_delay_ms);
		if (runs[m].mode == MODE_LAZY && (r = handoff_start(&ho, err)) < 0)
			goto out;
		if ((r = run_mode(&runs[m], clients, nclients, o->progress, &wall[m], err)) < 0)
			goto out;
		handoff_stop(&ho);
		if (atomic_load(&runs[m].errors) == runs[m].total) {
			r = cr_error_set(err, EIO, "bench ttft: every %s session failed: %s",
					 mode_name(runs[m].mode), first_error(&runs[m]));
			goto out;
		}
	}

	/* the figures */
	out = json_object();
	json_t *no_sb = json_object(), *sb = json_object(), *targets = json_object();
	bool all = true;
	struct tails e, l, ov;
	char dist[128];
	if (o->first_token_p99_ms)
		snprintf(dist, sizeof(dist),
			 "log-normal, median %u ms, p99 %u ms, at most %u ms (corral-fake-api)",
			 o->first_token_ms, o->first_token_p99_ms, 10 * o->first_token_p99_ms);
	else
		snprintf(dist, sizeof(dist), "fixed, %u ms (corral-fake-api)", o->first_token_ms);
	const char *note = o->added_delay_ms == 0 ? "none: the bare sandbox cost only"
			   : o->added_delay_ms == CR_BENCH_TTFT_DELAY_MS_DEFAULT
				   ? DELAY_NOTE_DEFAULT
				   : "set with --added-delay-ms";
	unsigned errors = atomic_load(&runs[0].errors) + atomic_load(&runs[1].errors);
	const char *fe = first_error(&runs[0]);
	if (!fe)
		fe = first_error(&runs[1]);
	r = -1;
	if (!out || !no_sb || !sb || !targets) {
		json_decref(no_sb);
		json_decref(sb);
		json_decref(targets);
		goto json_fail;
	}
	if (cr_bench_put(out, "sessions", json_integer(o->sessions)) < 0 ||
	    cr_bench_put(out, "concurrency", json_integer(nclients)) < 0 ||
	    cr_bench_put(out, "workers", json_integer(workers)) < 0 ||
	    cr_bench_put(out, "added_delay_ms", json_integer(o->added_delay_ms)) < 0 ||
	    cr_bench_put(out, "added_delay_models", json_string(note)) < 0 ||
	    cr_bench_put(out, "first_token_ms", json_integer(o->first_token_ms)) < 0 ||
	    cr_bench_put(out, "first_token_p99_ms", json_integer(o->first_token_p99_ms)) < 0 ||
	    cr_bench_put(out, "first_token_distribution", json_string(dist)) < 0 ||
	    cr_bench_put(out, "sandbox_ms_p50", json_real(bare_eager.p50 - bare_lazy.p50)) < 0 ||
	    cr_bench_put(out, "sandbox_samples", json_integer(CR_BENCH_TTFT_SANDBOX_SAMPLES)) < 0 ||
	    cr_bench_put(out, "create_eager_bare_p50_ms", json_real(bare_eager.p50)) < 0 ||
	    cr_bench_put(out, "create_lazy_p50_ms", json_real(bare_lazy.p50)) < 0 ||
	    put_comparison(out, &runs[0], &runs[1], -1, &e, &l, &ov) < 0 ||
	    put_comparison(no_sb, &runs[0], &runs[1], CLS_NO_SANDBOX, NULL, NULL, NULL) < 0 ||
	    put_comparison(sb, &runs[0], &runs[1], CLS_SANDBOX, NULL, NULL, NULL) < 0) {
		json_decref(no_sb);
		json_decref(sb);
		json_decref(targets);
		goto json_fail;
	}
	struct tails cn, cs;
	if (tails_of(&runs[0], CLS_NO_SANDBOX, F_TTFT, &cn) < 0 ||
	    tails_of(&runs[0], CLS_SANDBOX, F_TTFT, &cs) < 0 ||
	    cr_bench_put(no_sb, "sessions", json_integer((json_int_t)cn.n)) < 0 ||
	    cr_bench_put(sb, "sessions", json_integer((json_int_t)cs.n)) < 0 ||
	    cr_bench_put(out, "no_sandbox", no_sb) < 0 ||
	    cr_bench_put(out, "needs_sandbox", sb) < 0) {
		json_decref(targets);
		goto json_fail;
	}
	json_t *me = mode_json(&runs[0], wall[0]), *ml = mode_json(&runs[1], wall[1]);
	if (!me || !ml) {
		json_decref(me);
		json_decref(ml);
		json_decref(targets);
		goto json_fail;
	}
	if (cr_bench_put(out, "eager", me) < 0 || cr_bench_put(out, "lazy", ml) < 0 ||
	    cr_bench_put(out, "errors", json_integer(errors)) < 0 ||
	    cr_bench_put(out, "first_error", fe ? json_string(fe) : json_null()) < 0 ||
	    cr_bench_put(out, "wake_events", json_integer((json_int_t)wf.events)) < 0 ||
	    cr_bench_put(out, "wake_repeats", json_integer(CR_BENCH_TTFT_WAKE_REPEATS)) < 0 ||
	    !wake_json(&wf.link, "wake_10k", out) || !wake_json(&wf.local, "wake_10k_local", out) ||
	    !wake_json(&wf.read, "wake_10k_read", out) ||
	    !wake_json(&wf.step, "wake_10k_step", out)) {
		json_decref(targets);
		goto json_fail;
	}
	double wake_p50 = ms_of(cr_bench_rank(wf.link.v, wf.link.n, 50));
	if (handoff_json(&ho, ov.p50, out) < 0) {
		json_decref(targets);
		goto json_fail;
	}
	if (cr_bench_put(targets, "p50_cut_pct",
			 cr_bench_target(cut_pct(e.p50, l.p50), "at_least", 60, &all)) < 0 ||
	    cr_bench_put(targets, "p95_cut_pct",
			 cr_bench_target(cut_pct(e.p95, l.p95), "at_least", 90, &all)) < 0 ||
	    cr_bench_put(targets, "overhead_p50_ms", cr_bench_target(ov.p50, "at_most", 1, &all)) <
		    0 ||
	    cr_bench_put(targets, "overhead_p95_ms", cr_bench_target(ov.p95, "at_most", 3, &all)) <
		    0 ||
	    cr_bench_put(targets, "wake_10k_ms", cr_bench_target(wake_p50, "at_most", 20, &all)) <
		    0 ||
	    cr_bench_put(out, "targets", targets) < 0 ||
	    cr_bench_put(out, "targets_met", json_boolean(all)) < 0)
		goto json_fail;
	*ret = TAKE_PTR(out);
	r = 0;
	goto out;
json_fail:
	r = cr_error_set(err, ENOMEM, "bench ttft: building the figures");
out:
	/* sessions a failure or a cancel left (their sandboxes go with them), then the servers;
	 * a corrald that does not answer is not asked again (its sandboxes are swept below) */
	bool answers = nclients > 0;
	for (int m = 0; m < 3 && answers; m++) {
		struct mode_run *mr = m < 2 ? &runs[m] : &warm;
		for (unsigned i = 0; mr->v && i < mr->total && answers; i++) {
			struct cr_error e2;
			clients[0].delete_timeout_ms = 15000;
			if (mr->v[i].live && delete_session(&clients[0], &mr->v[i], &e2) < 0 &&
			    e2.code != EREMOTEIO)
				answers = false;
		}
	}
	for (unsigned i = 0; i < nclients; i++)
		client_done(&clients[i]);
	free(clients);
	/* corrald finishes the requests in flight (an eager create waits out the delay) */
	cr_bench_stop_child(&sv.corrald, SIGTERM, o->added_delay_ms + 60000);
	cr_bench_stop_child(&sv.fake, SIGTERM, 10000);
	if (sv.state[0])
		sweep_sandboxes(sv.state);
	free(warm.v);
	free(runs[0].v);
	free(runs[1].v);
	cr_bench_samples_done(&wf.link);
	cr_bench_samples_done(&wf.local);
	cr_bench_samples_done(&wf.read);
	cr_bench_samples_done(&wf.step);
	handoff_stop(&ho);
	cr_bench_samples_done(&ho.s);
	json_decref(out);
	explicit_bzero(key, sizeof(key));
	curl_global_cleanup();
	if (r < 0)
		cr_bench_workdir_cleanup(&w);
	else if ((r = cr_bench_workdir_remove(&w, err)) < 0) {
		json_decref(*ret);
		*ret = NULL;
	}
	return r;
}
