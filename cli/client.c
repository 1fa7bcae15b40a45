/* cli/client: the corral command's HTTP client of corrald's API (libcurl). It connects over
 * corrald's Unix socket by default, or over loopback TCP with the key corrald generated; it
 * sends JSON requests, and reads the SSE event stream, which it parses as the WHATWG rules say
 * (event/id/data fields, multi-line data, comments, CR, LF or CRLF line ends) and resumes once
 * with Last-Event-ID when the connection drops. It prints nothing and never interprets the
 * API's objects: every failure comes back as one line a user can act on, and never holds the
 * key. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/model.h"

#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 120L
#define BODY_MAX (256u << 20) /* of a response: a long --all list, a large event */
#define EVENT_MAX (64u << 20) /* of one SSE line or event */
#define RECONNECT_DELAY_MS 250

struct cr_client {
	CURL *curl; /* for requests, reused (keep-alive) */
	char *socket; /* NULL over TCP */
	char *base; /* "http://localhost" on the socket, else the URL without a trailing '/' */
	char *key; /* NULL without a key file; wiped on free */
	struct curl_slist *headers; /* of every request; holds the key */
};

bool cr_client_option(struct cr_client_options *o, int opt, const char *arg)
{
	switch (opt) {
	case CR_CLIENT_OPT_SOCKET:
		o->socket = arg;
		return true;
	case CR_CLIENT_OPT_URL:
		o->url = arg;
		return true;
	case CR_CLIENT_OPT_API_KEY_FILE:
		o->api_key_file = arg;
		return true;
	default:
		return false;
	}
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* A list of headers with the key in it: wiped before it is freed. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

void cr_client_free(struct cr_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free_headers(c->headers);
	cr_model_key_free(c->key);
	free(c->socket);
	free(c->base);
	free(c);
}

static void cr_client_freep(struct cr_client **c)
{
	cr_client_free(*c);
}

int cr_client_new(const struct cr_client_options *o, struct cr_client **ret, struct cr_error *err)
{
	if (o->socket && o->url)
		return cr_error_set(err, EINVAL, "--socket and --url exclude each other");
	/* a flag beats the environment; of the two variables, CORRAL_URL wins */
	const char *url = o->url, *sock = o->socket;
	if (!url && !sock) {
		url = env("CORRAL_URL");
		sock = url ? NULL : env("CORRAL_SOCKET");
	}
	if (!url && !sock)
		sock = CONFIG_CORRAL_RUN_DIR "/corrald.sock";
	const char *key_file = o->api_key_file ? o->api_key_file : env("CORRAL_API_KEY_FILE");

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cr_error_set(err, ENOMEM, "libcurl: initialization failed");
	_cleanup_(cr_client_freep) struct cr_client *c = calloc(1, sizeof(*c));
	if (!c)
		return cr_error_errno(err, ENOMEM, "client");
	if (sock) {
		if (!*sock || strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return cr_error_set(err, EINVAL,
					    "--socket %s: empty or longer than a Unix socket path "
					    "can be",
					    sock);
		c->socket = strdup(sock);
		c->base = strdup("http://localhost");
	} else {
		size_t n = strlen(url);
		if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
		    n <= 8 || strpbrk(url, " \t\r\n?#"))
			return cr_error_set(err, EINVAL,
					    "--url %s: want http://HOST:PORT (corrald's --listen)",
					    url);
		while (n > 8 && url[n - 1] == '/')
			n--;
		c->base = strndup(url, n);
	}
	if ((sock && !c->socket) || !c->base)
		return cr_error_errno(err, ENOMEM, "client");
	if (key_file) {
		int r = cr_model_key_load(key_file, &c->key, err);
		if (r < 0)
			return r;
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		return cr_error_set(err, ENOMEM, "libcurl: no handle");
	static const char *const fixed[] = {
		"Content-Type: application/json", "anthropic-version: 2023-06-01",
		"anthropic-beta: managed-agents-2026-04-01",
		"Expect:", /* no 100-continue round trip for a large body */
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(fixed); i++) {
		struct curl_slist *h = curl_slist_append(c->headers, fixed[i]);
		if (!h)
			return cr_error_errno(err, ENOMEM, "client");
		c->headers = h;
	}
	if (c->key) {
		_cleanup_free_ char *line = NULL;
		if (asprintf(&line, "x-api-key: %s", c->key) < 0)
			return cr_error_errno(err, ENOMEM, "client");
		struct curl_slist *h = curl_slist_append(c->headers, line);
		explicit_bzero(line, strlen(line));
		if (!h)
			return cr_error_errno(err, ENOMEM, "client");
		c->headers = h;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

char *cr_client_escape(const char *s)
{
	/* (the handle argument is ignored since libcurl 7.82) */
	char *e = curl_easy_escape(NULL, s, (int)strlen(s));
	if (!e)
		return NULL;
	char *copy = strdup(e);
	curl_free(e);
	return copy;
}

int cr_client_query(char **url, const char *key, const char *value)
{
	_cleanup_free_ char *k = cr_client_escape(key);
	_cleanup_free_ char *v = cr_client_escape(value);
	char *next = NULL;
	if (!k || !v || asprintf(&next, "%s%c%s=%s", *url, strchr(*url, '?') ? '&' : '?', k, v) < 0)
		return -ENOMEM;
	free(*url);
	*url = next;
	return 0;
}

/* --- transport ----------------------------------------------------------------------------- */

static const char *where(const struct cr_client *c)
{
	return c->socket ? c->socket : c->base;
}

/* strerror, first letter in lower case, for the middle of a sentence */
static const char *lower_strerror(int e, char *buf, size_t size)
{
	snprintf(buf, size, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

/* The error of a transfer that got no complete answer. */
static int transport_error(struct cr_client *c, CURL *h, CURLcode rc, const char *errbuf,
			   struct cr_error *err)
{
	long os_errno = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	char eb[96];
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		if (os_errno > 0) {
			int e = (int)os_errno;
			const char *hint = e == ECONNREFUSED || e == ENOENT
						   ? " (is corrald running?)"
					   : e == EACCES || e == EPERM
						   ? " (root and the corral group may use it)"
						   : "";
			return cr_error_set(err, e, "cannot reach corrald at %s: %s%s", where(c),
					    lower_strerror(e, eb, sizeof(eb)), hint);
		}
		return cr_error_set(err, ECONNREFUSED,
				    "cannot reach corrald at %s: %s (is corrald running?)",
				    where(c), detail);
	case CURLE_OPERATION_TIMEDOUT:
		return cr_error_set(err, ETIMEDOUT, "corrald at %s did not answer in time: %s",
				    where(c), detail);
	case CURLE_OUT_OF_MEMORY:
		return cr_error_errno(err, ENOMEM, "request to corrald");
	default:
		return cr_error_set(err, ECONNRESET, "corrald at %s: %s", where(c), detail);
	}
}

/* Appends to b unless it would then hold more than max bytes (-EFBIG). */
static int buf_add(struct cr_buf *b, const char *data, size_t n, size_t max)
{
	if (n > max || b->len > max - n)
		return -EFBIG;
	return cr_buf_add(b, data, n);
}

/* A response body being read, and whether it outgrew BODY_MAX. */
struct body {
	struct cr_buf buf;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	int r = buf_add(&b->buf, data, size * n, BODY_MAX);
	if (r == -EFBIG)
		b->too_big = true;
	return r < 0 ? 0 : size * n;
}

/* Sets what every transfer to corrald shares on h. */
static void setup(struct cr_client *c, CURL *h, const char *path, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "corral-cli");
	if (c->socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	_cleanup_free_ char *url = NULL;
	if (asprintf(&url, "%s%s", c->base, path) >= 0)
		curl_easy_setopt(h, CURLOPT_URL, url); /* (curl copies it) */
}

int cr_client_request(struct cr_client *c, const char *method, const char *path, const json_t *body,
		      long *ret_status, json_t **ret_body, struct cr_error *err)
{
	_cleanup_free_ char *payload = NULL;
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			return cr_error_set(err, EINVAL, "%s %s: the body cannot be serialized",
					    method, path);
	}
	CURL *h = c->curl;
	curl_easy_reset(h);
	char errbuf[CURL_ERROR_SIZE] = "";
	struct body resp = { 0 };
	setup(c, h, path, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (payload || strcmp(method, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)(payload ? strlen(payload) : 0));
		}
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR && resp.too_big) {
		cr_buf_free(&resp.buf);
		return cr_error_set(err, EFBIG, "%s %s: the answer is larger than %u MiB", method,
				    path, BODY_MAX >> 20);
	}
	if (rc != CURLE_OK) {
		cr_buf_free(&resp.buf);
		return transport_error(c, h, rc, errbuf, err);
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json_t *parsed = NULL;
	if (resp.buf.len)
		parsed = json_loadb(resp.buf.p, resp.buf.len, JSON_DECODE_ANY, NULL);
	if (!parsed && resp.buf.len && status >= 200 && status < 300) {
		cr_buf_free(&resp.buf);
		return cr_error_set(
			err, EPROTO,
			"%s %s: corrald at %s answered HTTP %ld with a body that is not "
			"JSON",
			method, path, where(c), status);
	}
	if (!parsed && resp.buf.len) {
		/* not the API's error envelope (a proxy's page?): keep its first line */
		resp.buf.p[strcspn(resp.buf.p, "\r\n")] = '\0';
		parsed = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
				   "http_error", "message", resp.buf.p);
	}
	cr_buf_free(&resp.buf);
	*ret_status = status;
	*ret_body = parsed;
	return 0;
}

/* The API's error in body (or the status alone) as a one-line message; returns -errno. */
static int api_error(long status, const json_t *body, struct cr_error *err)
{
	json_t *e = json_object_get(body, "error");
	const char *type = json_string_value(json_object_get(e, "type"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *rid = json_string_value(json_object_get(body, "request_id"));
	int code = status == 404		    ? ENOENT
		   : status == 400 || status == 413 ? EINVAL
		   : status == 401 || status == 403 ? EACCES
		   : status == 409		    ? ESTALE
						    : EREMOTEIO;
	char tail[160];
	snprintf(tail, sizeof(tail), "(%s%sHTTP %ld%s%s)", type ? type : "", type ? ", " : "",
		 status, rid ? ", request " : "", rid ? rid : "");
	if (msg && *msg)
		return cr_error_set(err, code, "%s %s", msg, tail);
	return cr_error_set(err, code, "corrald answered %s", tail);
}

int cr_client_call(struct cr_client *c, const char *method, const char *path, const json_t *body,
		   json_t **ret, struct cr_error *err)
{
	long status;
	json_t *resp;
	int r = cr_client_request(c, method, path, body, &status, &resp, err);
	if (r < 0)
		return r;
	if (status < 200 || status >= 300) {
		r = api_error(status, resp, err);
		json_decref(resp);
		return r;
	}
	if (ret)
		*ret = resp ? resp : json_null();
	else
		json_decref(resp);
	return 0;
}

/* --- Server-Sent Events -------------------------------------------------------------------- */

/* The parser of https://html.spec.whatwg.org/multipage/server-sent-events.html, section
 * "Interpreting an event stream". */
struct sse {
	struct cr_buf line; /* the line being read */
	struct cr_buf data; /* the event's data buffer */
	struct cr_buf type; /* the event type buffer */
	char id[256]; /* the last event ID buffer */
	char last_id[256]; /* the last event ID string: of the last event dispatched */
	bool cr; /* the last byte was a CR: a LF right after it ends nothing */
	bool first_line; /* a BOM is dropped from the stream's first line */
	long retry_ms; /* the server's retry: field, -1 without one */
	const struct cr_client_stream_ops *ops;
	int stop; /* what a callback returned, once it was not 0 */
	int error; /* -EFBIG, -ENOMEM */
};

static void sse_reset(struct sse *s)
{
	/* a new connection: what was half-read is dropped; the last event id stays */
	s->line.len = s->data.len = s->type.len = 0;
	s->cr = false;
	s->first_line = true;
	memcpy(s->id, s->last_id, sizeof(s->id));
}

static void sse_free(struct sse *s)
{
	free(s->line.p);
	free(s->data.p);
	free(s->type.p);
}

static void sse_dispatch(struct sse *s)
{
	memcpy(s->last_id, s->id, sizeof(s->last_id));
	if (s->data.len == 0) {
		s->type.len = 0;
		return;
	}
	s->data.len--; /* the last '\n' */
	s->data.p[s->data.len] = '\0';
	struct cr_sse_event ev = {
		.type = s->type.len ? s->type.p : "message",
		.id = s->last_id,
		.data = s->data.p,
		.data_len = s->data.len,
	};
	int r = s->ops->on_event ? s->ops->on_event(s->ops->arg, &ev) : 0;
	if (r)
		s->stop = r;
	s->data.len = s->type.len = 0;
}

static void sse_line(struct sse *s)
{
	char *l = s->line.p ? s->line.p : (char *)"";
	size_t n = s->line.len;
	if (s->first_line) {
		s->first_line = false;
		if (n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0)
			l += 3, n -= 3;
	}
	if (n == 0) {
		sse_dispatch(s);
		return;
	}
	if (l[0] == ':')
		return; /* a comment */
	const char *colon = memchr(l, ':', n);
	size_t flen = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	size_t vlen = (size_t)(l + n - v);
	if (vlen && *v == ' ')
		v++, vlen--;
	int r = 0;
	if (flen == 5 && memcmp(l, "event", 5) == 0) {
		s->type.len = 0;
		r = buf_add(&s->type, v, vlen, EVENT_MAX);
	} else if (flen == 4 && memcmp(l, "data", 4) == 0) {
		r = buf_add(&s->data, v, vlen, EVENT_MAX);
		if (r == 0)
			r = buf_add(&s->data, "\n", 1, EVENT_MAX);
	} else if (flen == 2 && memcmp(l, "id", 2) == 0) {
		/* an id with a NUL is ignored; ours are sequence numbers, far below the size */
		if (!memchr(v, '\0', vlen) && vlen < sizeof(s->id)) {
			memcpy(s->id, v, vlen);
			s->id[vlen] = '\0';
		}
	} else if (flen == 5 && memcmp(l, "retry", 5) == 0) {
		if (vlen && vlen < 10 && strspn(v, "0123456789") >= vlen)
			s->retry_ms = strtol(v, NULL, 10);
	}
	if (r < 0)
		s->error = r;
}

/* Feeds n bytes of the stream; stops early once a callback said stop or on an error. */
static void sse_feed(struct sse *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && !s->stop && !s->error) {
		if (s->cr) {
			s->cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		int r = buf_add(&s->line, p + i, j - i, EVENT_MAX);
		if (r < 0) {
			s->error = r;
			return;
		}
		if (j == n)
			return; /* the line goes on in the next piece */
		s->cr = p[j] == '\r';
		i = j + 1;
		sse_line(s);
		s->line.len = 0;
	}
}

/* One connection of a stream. */
struct conn {
	struct sse *sse;
	long status; /* once the headers are complete */
	bool headers_done;
	struct cr_buf error_body; /* of an answer other than 200 */
	bool got_bytes; /* of the body */
	struct timespec last_byte;
};

static double since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static size_t on_stream_header(char *data, size_t size, size_t n, void *arg)
{
	struct conn *k = arg;
	size_t len = size * n;
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a status line (another after a 1xx): its code */
		const char *sp = memchr(data, ' ', len);
		k->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		k->headers_done = false;
	} else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
		if (k->status >= 200)
			k->headers_done = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &k->last_byte);
	return len;
}

static size_t on_stream_body(char *data, size_t size, size_t n, void *arg)
{
	struct conn *k = arg;
	size_t len = size * n;
	clock_gettime(CLOCK_MONOTONIC, &k->last_byte);
	if (k->status != 200)
		return buf_add(&k->error_body, data, len, 64u << 10) < 0 ? 0 : len;
	k->got_bytes = true;
	sse_feed(k->sse, data, len);
	return k->sse->stop || k->sse->error ? 0 : len;
}

enum conn_end {
	END_STOPPED, /* a callback said stop */
	END_DROPPED, /* the connection ended or went quiet: reconnect */
	END_FAILED, /* an error that a reconnect would not mend */
};

/* One connection: runs until a callback stops it, it fails or it ends. *opened says whether
 * on_open was called (only on the first connection that got a 200). */
static enum conn_end stream_once(struct cr_client *c, const char *path, struct sse *s,
				 unsigned idle_timeout_s, bool *opened, struct conn *k,
				 struct cr_error *err)
{
	CURL *h = curl_easy_init();
	CURLM *m = curl_multi_init();
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	enum conn_end end = END_FAILED;
	if (!h || !m) {
		cr_error_set(err, ENOMEM, "libcurl: no handle");
		goto out;
	}
	for (struct curl_slist *p = c->headers; p; p = p->next) {
		if (strncasecmp(p->data, "Content-Type:", 13) == 0)
			continue;
		struct curl_slist *nh = curl_slist_append(hdrs, p->data);
		if (!nh)
			goto oom;
		hdrs = nh;
	}
	struct curl_slist *nh = curl_slist_append(hdrs, "Accept: text/event-stream");
	if (!nh)
		goto oom;
	hdrs = nh;
	if (s->last_id[0]) {
		char line[300];
		snprintf(line, sizeof(line), "Last-Event-ID: %s", s->last_id);
		if (!(nh = curl_slist_append(hdrs, line)))
			goto oom;
		hdrs = nh;
	}
	setup(c, h, path, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_stream_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	clock_gettime(CLOCK_MONOTONIC, &k->last_byte);
	if (curl_multi_add_handle(m, h) != CURLM_OK)
		goto oom;

	const struct cr_client_stream_ops *ops = s->ops;
	for (;;) {
		int running = 0;
		CURLMcode mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK) {
			cr_error_set(err, EIO, "libcurl: %s", curl_multi_strerror(mc));
			goto out;
		}
		if (s->stop) {
			end = END_STOPPED;
			goto out;
		}
		if (s->error) {
			cr_error_set(err, -s->error,
				     s->error == -EFBIG
					     ? "an event from corrald is larger than %u MiB"
					     : "no memory for an event (%u MiB at most)",
				     EVENT_MAX >> 20);
			goto out;
		}
		if (k->headers_done && k->status == 200 && !*opened) {
			*opened = true;
			int r = ops->on_open ? ops->on_open(ops->arg) : 0;
			if (r) {
				end = END_STOPPED;
				goto out;
			}
		}
		if (!running) {
			CURLcode rc = CURLE_OK;
			int left;
			CURLMsg *msg;
			while ((msg = curl_multi_info_read(m, &left)))
				if (msg->msg == CURLMSG_DONE)
					rc = msg->data.result;
			if (k->status && k->status != 200 && (rc == CURLE_OK || k->headers_done)) {
				json_t *body = k->error_body.len
						       ? json_loadb(k->error_body.p,
								    k->error_body.len, 0, NULL)
						       : NULL;
				api_error(k->status, body, err);
				json_decref(body);
				goto out;
			}
			if (rc == CURLE_OK) {
				cr_error_set(err, ECONNRESET, "corrald ended the event stream");
				end = END_DROPPED;
			} else if (!k->status) {
				/* never connected: no reconnect would help */
				transport_error(c, h, rc, errbuf, err);
			} else {
				transport_error(c, h, rc, errbuf, err);
				end = END_DROPPED;
			}
			goto out;
		}
		if (ops->on_tick && ops->on_tick(ops->arg)) {
			end = END_STOPPED;
			goto out;
		}
		if (idle_timeout_s && since(&k->last_byte) > idle_timeout_s) {
			cr_error_set(err, ETIMEDOUT,
				     "nothing from corrald, not even a heartbeat, for %u s",
				     idle_timeout_s);
			end = k->status == 200 ? END_DROPPED : END_FAILED;
			goto out;
		}
		/* (a signal ends the wait early: curl's poll takes EINTR as a timeout) */
		mc = curl_multi_poll(m, NULL, 0, 250, NULL);
		if (mc != CURLM_OK) {
			cr_error_set(err, EIO, "libcurl: %s", curl_multi_strerror(mc));
			goto out;
		}
	}
oom:
	cr_error_set(err, ENOMEM, "no memory for the event stream");
out:
	if (m && h)
		curl_multi_remove_handle(m, h);
	if (h)
		curl_easy_cleanup(h);
	if (m)
		curl_multi_cleanup(m);
	free_headers(hdrs);
	return end;
}

int cr_client_stream(struct cr_client *c, const char *path, const char *last_event_id,
		     unsigned idle_timeout_s, const struct cr_client_stream_ops *ops,
		     struct cr_error *err)
{
	struct sse s = { .ops = ops, .retry_ms = -1 };
	if (last_event_id)
		snprintf(s.last_id, sizeof(s.last_id), "%s", last_event_id);
	bool opened = false, reconnected = false;
	int r = 0;
	for (;;) {
		sse_reset(&s);
		struct conn k = { .sse = &s };
		enum conn_end end = stream_once(c, path, &s, idle_timeout_s, &opened, &k, err);
		free(k.error_body.p);
		if (end == END_STOPPED)
			break;
		if (end == END_FAILED || (reconnected && !k.got_bytes)) {
			if (end == END_DROPPED)
				cr_error_prefix(err,
						"the event stream from %s broke again after a "
						"reconnect",
						where(c));
			r = -err->code;
			break;
		}
		/* dropped: once more from the last event seen, unless the last try got nothing */
		if (ops->on_reconnect)
			ops->on_reconnect(ops->arg, err->msg, s.last_id);
		reconnected = true;
		long ms = s.retry_ms >= 0 && s.retry_ms < 5000 ? s.retry_ms : RECONNECT_DELAY_MS;
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
			if (ops->on_tick && ops->on_tick(ops->arg))
				goto done;
		}
	}
done:
	sse_free(&s);
	return r;
}
