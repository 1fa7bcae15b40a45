/* fakeapi/api: the Messages API's answers. Checks a request as the real API does (authentication,
 * required fields, roles, tool results that answer the previous message's tool calls), picks a
 * reply (a scenario's turn or rule, or an echo), and sends it whole or as the server-sent events
 * the real API sends, with the knobs' latency, rate, timestamps and injected failures (errors,
 * a proxy's HTML page, cut connections). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stddef.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "corral/clock.h"
#include "fakeapi/fakeapi-internal.h"

#define SIGNATURE "ErUBCkYIBRgCIkD0fakeapiSignatureForThinkingBlocks"

static void random_id(const char *prefix, char *out, size_t size)
{
	static const char alphabet[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char raw[24];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 7, sizeof(raw));
	size_t p = (size_t)snprintf(out, size, "%s", prefix);
	for (size_t i = 0; i < sizeof(raw) && p + 1 < size; i++)
		out[p++] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[p] = '\0';
}

static void sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec t = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void sleep_ms(int64_t ms)
{
	sleep_ns(ms > INT64_MAX / 1000000 ? INT64_MAX : ms * 1000000);
}

/* --- drawing latencies --------------------------------------------------------------------- */

/* A generator per thread (splitmix64), seeded from getrandom: connections draw without a lock. */
static __thread uint64_t rng_state;
static __thread bool rng_seeded;

/* Uniform in [0, 1). */
static double uniform(void)
{
	if (!rng_seeded) {
		if (getrandom(&rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state))
			rng_state = cr_now_ns() ^ (uint64_t)(uintptr_t)&rng_state;
		rng_seeded = true;
	}
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1p-53;
}

/* A standard normal draw (Marsaglia's polar form of Box-Muller). */
static double normal(void)
{
	double u, v, q;
	do {
		u = 2 * uniform() - 1;
		v = 2 * uniform() - 1;
		q = u * u + v * v;
	} while (q >= 1 || q == 0);
	return u * sqrt(-2 * log(q) / q);
}

/* The wait before the first token: first_token_ms, or when first_token_p99_ms is above it, a
 * draw from the log-normal distribution with that median and 99th percentile (sigma =
 * ln(p99 / median) / z(0.99)), at most 10 times the p99. */
static void first_token_wait(const struct knobs *k)
{
	int64_t median = k->first_token_ms, p99 = k->first_token_p99_ms;
	if (median <= 0 || p99 <= median) {
		sleep_ms(median);
		return;
	}
	double ratio = (double)p99 / (double)median;
	double x = log(ratio) / 2.3263478740408408 * normal();
	if (x >= log(10 * ratio)) /* (compared as logarithms: e^x may be huge) */
		sleep_ms(10 * p99);
	else
		sleep_ns((int64_t)((double)median * 1e6 * exp(x)));
}

/* --- errors -------------------------------------------------------------------------------- */

static const char *error_type(int status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
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

/* A whole response, or with truncate_after (k may be NULL: none) only the head and the start
 * of its body, and then the connection is shut down. False when it was cut or could not be
 * written: the connection must be closed. */
static bool respond(int fd, const struct knobs *k, int status, const char *content_type,
		    const char *headers, const char *body, size_t len, bool keep_alive)
{
	if (!k || k->truncate_after < 0)
		return http_respond(fd, status, content_type, headers, body, len, keep_alive);
	size_t cut = (uint64_t)k->truncate_after < len ? (size_t)k->truncate_after : len;
	http_respond_cut(fd, status, content_type, headers, body, len, cut, keep_alive);
	shutdown(fd, SHUT_RDWR);
	return false;
}

/* {"type":"error","error":{...},"request_id":...} with a request-id header (and extra); k as in
 * respond(). */
static bool send_error(int fd, const struct knobs *k, int status, const char *type,
		       const char *message, const char *request_id, const char *extra,
		       bool keep_alive)
{
	json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type", type,
			      "message", message, "request_id", request_id);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	char headers[512];
	snprintf(headers, sizeof(headers), "request-id: %s\r\n%s", request_id, extra ? extra : "");
	bool ok = body && respond(fd, k, status, "application/json", headers, body, strlen(body),
				  keep_alive);
	free(body);
	return ok;
}

/* What a reverse proxy in front of the API answers when it fails: its own HTML page, without
 * the API's request-id. */
static bool send_html(int fd, const struct knobs *k, int status, const char *extra, bool keep_alive)
{
	char body[512];
	const char *reason = http_reason(status);
	int n = snprintf(body, sizeof(body),
			 "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
			 "<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n"
			 "</body>\r\n</html>\r\n",
			 status, reason, status, reason);
	char headers[256];
	snprintf(headers, sizeof(headers), "Server: nginx\r\n%s", extra);
	return respond(fd, k, status, "text/html", headers, body, (size_t)n, keep_alive);
}

void api_respond_error(int fd, int status, const char *type, const char *message)
{
	char rid[40];
	random_id("req_", rid, sizeof(rid));
	send_error(fd, NULL, status, type, message, rid, NULL, false);
}

/* --- checking a request -------------------------------------------------------------------- */

struct check {
	char msg[512];
};

static bool bad(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(struct check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* The ids of the tool_use blocks of message m (an array of strings, new). */
static json_t *tool_use_ids(json_t *m)
{
	json_t *ids = json_array();
	json_t *content = json_object_get(m, "content");
	size_t i;
	json_t *b;
	json_array_foreach (content, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		json_t *id = json_object_get(b, "id");
		if (type && strcmp(type, "tool_use") == 0 && json_is_string(id))
			json_array_append(ids, id);
	}
	return ids;
}

static bool has_id(json_t *ids, const char *id)
{
	size_t i;
	json_t *v;
	json_array_foreach (ids, i, v)
		if (strcmp(json_string_value(v), id) == 0)
			return true;
	return false;
}

static bool check_messages(json_t *body, struct check *c)
{
	json_t *msgs = json_object_get(body, "messages");
	if (!msgs)
		return bad(c, "messages: Field required");
	if (!json_is_array(msgs))
		return bad(c, "messages: Input should be a valid list");
	if (json_array_size(msgs) == 0)
		return bad(c, "messages: at least one message is required");
	size_t i;
	json_t *m;
	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!json_is_object(m))
			return bad(c, "messages.%zu: Input should be a valid dictionary", i);
		if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
			return bad(c, "messages.%zu.role: Input should be 'user' or 'assistant'",
				   i);
		if (i == 0 && strcmp(role, "user") != 0)
			return bad(c, "messages: first message must use the \"user\" role");
		json_t *content = json_object_get(m, "content");
		if (!content)
			return bad(c, "messages.%zu.content: Field required", i);
		if (!json_is_string(content) && !json_is_array(content))
			return bad(c,
				   "messages.%zu.content: Input should be a valid string or list",
				   i);
		size_t j;
		json_t *b;
		json_t *prev_ids = NULL;
		json_array_foreach (content, j, b) {
			const char *type = json_string_value(json_object_get(b, "type"));
			if (!type) {
				json_decref(prev_ids);
				return bad(c, "messages.%zu.content.%zu.type: Field required", i,
					   j);
			}
			if (strcmp(type, "tool_result") != 0)
				continue;
			const char *id = json_string_value(json_object_get(b, "tool_use_id"));
			if (strcmp(role, "user") != 0) {
				json_decref(prev_ids);
				return bad(c,
					   "messages.%zu.content.%zu: tool_result blocks belong in "
					   "user messages",
					   i, j);
			}
			if (!prev_ids)
				prev_ids = i > 0 ? tool_use_ids(json_array_get(msgs, i - 1))
						 : json_array();
			if (!id || !has_id(prev_ids, id)) {
				json_decref(prev_ids);
				return bad(
					c,
					"messages.%zu.content.%zu: unexpected `tool_use_id` found "
					"in `tool_result` blocks: %s. Each `tool_result` block "
					"must "
					"have a corresponding `tool_use` block in the previous "
					"message.",
					i, j, id ? id : "(none)");
			}
		}
		json_decref(prev_ids);
	}
	return true;
}

static bool check_body(json_t *body, bool count_tokens, struct check *c)
{
	json_t *model = json_object_get(body, "model");
	if (!model)
		return bad(c, "model: Field required");
	if (!json_is_string(model) || json_string_length(model) == 0)
		return bad(c, "model: Input should be a valid string");
	if (!count_tokens) {
		json_t *mt = json_object_get(body, "max_tokens");
		if (!mt)
			return bad(c, "max_tokens: Field required");
		if (!json_is_integer(mt) || json_integer_value(mt) < 1)
			return bad(c, "max_tokens: Input should be a positive integer");
		json_t *st = json_object_get(body, "stream");
		if (st && !json_is_boolean(st))
			return bad(c, "stream: Input should be a valid boolean");
	}
	return check_messages(body, c);
}

/* --- knobs --------------------------------------------------------------------------------- */

static bool override_knobs(struct knobs *k, const char *header, struct check *c)
{
	json_error_t je;
	json_t *o = json_loads(header, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return bad(c, "x-fake-api: not a JSON object (%s)", je.text);
	}
#define KNOB(name) #name, offsetof(struct knobs, name)
	static const struct {
		const char *name;
		size_t off;
		int64_t min, max;
	} fields[] = {
		{ KNOB(first_token_ms), INT64_MIN, INT64_MAX },
		{ KNOB(first_token_p99_ms), 0, 3600000 },
		{ KNOB(token_rate), INT64_MIN, INT64_MAX },
		{ KNOB(stamp), 0, 1 },
		{ KNOB(html_status), 400, 599 },
		{ KNOB(fail_status), 400, 599 },
		{ KNOB(fail_attempts), INT64_MIN, INT64_MAX },
		{ KNOB(retry_after_s), INT64_MIN, INT64_MAX },
		{ KNOB(retry_after_ms), INT64_MIN, INT64_MAX },
		{ KNOB(should_retry), -1, 1 },
		{ KNOB(error_after), INT64_MIN, INT64_MAX },
		{ KNOB(drop_after), INT64_MIN, INT64_MAX },
		{ KNOB(stall_after), INT64_MIN, INT64_MAX },
		{ KNOB(stall_ms), INT64_MIN, INT64_MAX },
		{ KNOB(truncate_after), 0, INT64_MAX },
	};
#undef KNOB
	const char *key;
	json_t *v;
	bool ok = true;
	json_object_foreach (o, key, v) {
		size_t i;
		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i].name) == 0)
				break;
		json_int_t n = json_integer_value(v);
		if (i == sizeof(fields) / sizeof(fields[0]))
			ok = bad(c, "x-fake-api: unknown knob \"%s\"", key);
		else if (!json_is_integer(v))
			ok = bad(c, "x-fake-api: %s must be an integer", key);
		else if ((n < fields[i].min || n > fields[i].max) && fields[i].max == INT64_MAX)
			ok = bad(c, "x-fake-api: %s must be %lld or more", key,
				 (long long)fields[i].min);
		else if (n < fields[i].min || n > fields[i].max)
			ok = bad(c, "x-fake-api: %s must be from %lld to %lld", key,
				 (long long)fields[i].min, (long long)fields[i].max);
		else
			*(int64_t *)((char *)k + fields[i].off) = n;
		if (!ok)
			break; /* (the message is written while key is still o's) */
	}
	json_decref(o);
	/* (the header's or the command line's: either may have set one of the two) */
	if (ok && k->first_token_p99_ms && k->first_token_p99_ms <= k->first_token_ms)
		ok = bad(c,
			 "x-fake-api: first_token_p99_ms (%lld) must be greater than "
			 "first_token_ms (%lld), or 0",
			 (long long)k->first_token_p99_ms, (long long)k->first_token_ms);
	return ok;
}

/* --- the reply ----------------------------------------------------------------------------- */

/* What to answer: a scenario turn ({"thinking", "text", "tool_calls", "stop_reason"}, new). */
static json_t *pick_reply(const struct api *api, json_t *body)
{
	json_t *msgs = json_object_get(body, "messages");
	size_t assistant = 0, i;
	json_t *m, *last_user = NULL;
	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (strcmp(role, "assistant") == 0)
			assistant++;
		else
			last_user = m;
	}
	/* the text of the last user message, and of its tool results */
	char *text = NULL, *results = NULL;
	size_t tlen = 0, rlen = 0;
	FILE *tf = open_memstream(&text, &tlen), *rf = open_memstream(&results, &rlen);
	json_t *content = json_object_get(last_user, "content");
	if (json_is_string(content))
		fputs(json_string_value(content), tf);
	json_t *b;
	json_array_foreach (content, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		if (type && strcmp(type, "text") == 0)
			fputs(json_string_value(json_object_get(b, "text")) ?: "", tf);
		if (type && strcmp(type, "tool_result") == 0) {
			json_t *rc = json_object_get(b, "content");
			if (json_is_string(rc))
				fputs(json_string_value(rc), rf);
			size_t k;
			json_t *rb;
			json_array_foreach (rc, k, rb)
				fputs(json_string_value(json_object_get(rb, "text")) ?: "", rf);
		}
	}
	fclose(tf);
	fclose(rf);

	json_t *reply = NULL;
	if (api->scenario) {
		json_t *rule;
		json_array_foreach (json_object_get(api->scenario, "rules"), i, rule) {
			const char *in_result = json_string_value(json_object_get(
				json_object_get(rule, "when"), "tool_result_contains"));
			const char *in_text = json_string_value(json_object_get(
				json_object_get(rule, "when"), "user_text_contains"));
			if ((in_result && strstr(results, in_result)) ||
			    (in_text && strstr(text, in_text))) {
				reply = json_deep_copy(json_object_get(rule, "reply"));
				break;
			}
		}
		json_t *turns = json_object_get(api->scenario, "turns");
		if (!reply && json_array_size(turns)) {
			size_t n = json_array_size(turns);
			reply = json_deep_copy(
				json_array_get(turns, assistant < n ? assistant : n - 1));
		}
	}
	if (!reply) {
		char echo[300];
		snprintf(echo, sizeof(echo), "You said: %.200s", text);
		reply = json_pack("{s:s}", "text", echo);
	}
	free(text);
	free(results);
	return reply;
}

/* The reply's content blocks, each with its full content (tool_use ids drawn now). */
static json_t *reply_blocks(json_t *reply)
{
	json_t *blocks = json_array();
	const char *thinking = json_string_value(json_object_get(reply, "thinking"));
	const char *text = json_string_value(json_object_get(reply, "text"));
	if (thinking)
		json_array_append_new(blocks,
				      json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking",
						thinking, "signature", SIGNATURE));
	if (text)
		json_array_append_new(blocks,
				      json_pack("{s:s, s:s}", "type", "text", "text", text));
	size_t i;
	json_t *call;
	json_array_foreach (json_object_get(reply, "tool_calls"), i, call) {
		char id[40];
		random_id("toolu_", id, sizeof(id));
		json_t *input = json_object_get(call, "input");
		json_array_append_new(
			blocks, json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id", id,
					  "name", json_string_value(json_object_get(call, "name")),
					  "input", input ? input : json_object()));
	}
	return blocks;
}

static const char *stop_reason(json_t *reply, json_t *blocks)
{
	const char *s = json_string_value(json_object_get(reply, "stop_reason"));
	if (s)
		return s;
	json_t *last = json_array_get(blocks, json_array_size(blocks) - 1);
	const char *type = json_string_value(json_object_get(last, "type"));
	return type && strcmp(type, "tool_use") == 0 ? "tool_use" : "end_turn";
}

/* Pieces of s: at most max bytes each, cut at UTF-8 character boundaries. */
static size_t next_piece(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 1 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	if (n == 1 && ((unsigned char)s[1] & 0xc0) == 0x80) /* a character longer than max */
		while (n < len && ((unsigned char)s[n] & 0xc0) == 0x80)
			n++;
	return n;
}

/* --- streaming ----------------------------------------------------------------------------- */

struct stream {
	int fd;
	const struct knobs *k;
	int64_t deltas; /* sent so far */
	int64_t sent; /* bytes of the body (the events, not the chunks' framing) */
	bool broken; /* the client went away, or the knobs ended the stream */
	struct timespec next; /* when the next delta may go (token_rate) */
};

/* With truncate_after: the connection is shut down without the last chunk. */
static void cut_stream(struct stream *s)
{
	shutdown(s->fd, SHUT_RDWR);
	s->broken = true;
}

/* One event in one chunk, or as much of it as truncate_after leaves. */
static bool send_frame(struct stream *s, const char *frame, size_t len)
{
	int64_t left = s->k->truncate_after - s->sent;
	if (s->k->truncate_after >= 0 && (uint64_t)left < len) {
		if (left > 0)
			http_chunk_cut(s->fd, frame, len, (size_t)left);
		cut_stream(s);
		return false;
	}
	s->sent += (int64_t)len;
	return http_chunk(s->fd, frame, len);
}

/* The last chunk; never sent with truncate_after, whose stream is cut instead. */
static bool end_stream(struct stream *s)
{
	if (s->k->truncate_after >= 0) {
		cut_stream(s);
		return false;
	}
	return http_chunk(s->fd, NULL, 0);
}

static bool event(struct stream *s, const char *name, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	size_t len = text ? strlen(text) : 0, cap = strlen(name) + len + 96;
	char *frame = text ? malloc(cap) : NULL;
	int n = -1;
	if (frame && s->k->stamp && strcmp(name, "content_block_delta") == 0 && len > 2)
		/* the stamp is taken last, just before the write: a client's delivery latency is
		 * measured from it. (data is an object, so its text ends with the brace.) */
		n = snprintf(frame, cap, "event: %s\ndata: %.*s,\"fake_api_sent_ns\":%lld}\n\n",
			     name, (int)len - 1, text, (long long)cr_now_ns());
	else if (frame)
		n = snprintf(frame, cap, "event: %s\ndata: %s\n\n", name, text);
	free(text);
	if (n < 0 || (size_t)n >= cap || s->broken || !send_frame(s, frame, (size_t)n))
		s->broken = true;
	free(frame);
	return !s->broken;
}

/* Paces a delta: latency before the first, the rate after, and the knobs' failures. */
static bool before_delta(struct stream *s)
{
	const struct knobs *k = s->k;
	if (s->deltas == 0)
		first_token_wait(k);
	if (k->stall_after >= 0 && s->deltas == k->stall_after)
		sleep_ms(k->stall_ms > 0 ? k->stall_ms : 3600 * 1000);
	if (k->drop_after >= 0 && s->deltas == k->drop_after) {
		shutdown(s->fd, SHUT_RDWR);
		s->broken = true;
		return false;
	}
	if (k->error_after >= 0 && s->deltas == k->error_after) {
		event(s, "error",
		      json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
				"overloaded_error", "message", "Overloaded"));
		if (!s->broken)
			end_stream(s);
		s->broken = true;
		return false;
	}
	if (k->token_rate > 0) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (s->deltas == 0)
			s->next = now;
		if (now.tv_sec < s->next.tv_sec ||
		    (now.tv_sec == s->next.tv_sec && now.tv_nsec < s->next.tv_nsec))
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &s->next, NULL) ==
			       EINTR)
				;
		int64_t step = 1000000000 / k->token_rate;
		s->next.tv_nsec += step % 1000000000;
		s->next.tv_sec += step / 1000000000 + s->next.tv_nsec / 1000000000;
		s->next.tv_nsec %= 1000000000;
	}
	s->deltas++;
	return true;
}

static bool delta(struct stream *s, size_t index, json_t *d)
{
	if (!before_delta(s)) {
		json_decref(d);
		return false;
	}
	return event(s, "content_block_delta",
		     json_pack("{s:s, s:I, s:o}", "type", "content_block_delta", "index",
			       (json_int_t)index, "delta", d));
}

/* The text of a block as text_delta or thinking_delta pieces of a few bytes (about a token). */
static bool text_deltas(struct stream *s, size_t index, const char *dtype, const char *field,
			const char *text)
{
	size_t len = strlen(text), sizes[] = { 4, 3, 5, 2, 4, 6 };
	for (size_t off = 0, i = 0; off < len; i++) {
		size_t n = next_piece(text + off, len - off, sizes[i % 6]);
		json_t *d = json_pack("{s:s, s:s%}", "type", dtype, field, text + off, n);
		if (!delta(s, index, d))
			return false;
		off += n;
	}
	return true;
}

static bool stream_reply(int fd, const struct knobs *k, const char *request_id, json_t *body,
			 json_t *reply, bool keep_alive, int64_t input_tokens)
{
	json_t *blocks = reply_blocks(reply);
	char mid[40];
	random_id("msg_", mid, sizeof(mid));
	char headers[256];
	snprintf(headers, sizeof(headers), "request-id: %s\r\n", request_id);
	struct stream s = { .fd = fd, .k = k };
	if (!http_stream_start(fd, 200, "text/event-stream; charset=utf-8", headers, keep_alive)) {
		json_decref(blocks);
		return false;
	}
	event(&s, "message_start",
	      json_pack("{s:s, s:{s:s, s:s, s:s, s:O, s:[], s:n, s:n, s:{s:I, s:i, s:i, s:i}}}",
			"type", "message_start", "message", "id", mid, "type", "message", "role",
			"assistant", "model", json_object_get(body, "model"), "content",
			"stop_reason", "stop_sequence", "usage", "input_tokens",
			(json_int_t)input_tokens, "cache_creation_input_tokens", 0,
			"cache_read_input_tokens", 0, "output_tokens", 1));
	size_t i;
	json_t *b;
	bool pinged = false;
	json_array_foreach (blocks, i, b) {
		if (s.broken)
			break;
		const char *type = json_string_value(json_object_get(b, "type"));
		json_t *start;
		if (strcmp(type, "thinking") == 0)
			start = json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", "",
					  "signature", "");
		else if (strcmp(type, "text") == 0)
			start = json_pack("{s:s, s:s}", "type", "text", "text", "");
		else
			start = json_pack("{s:s, s:O, s:O, s:{}}", "type", "tool_use", "id",
					  json_object_get(b, "id"), "name",
					  json_object_get(b, "name"), "input");
		event(&s, "content_block_start",
		      json_pack("{s:s, s:I, s:o}", "type", "content_block_start", "index",
				(json_int_t)i, "content_block", start));
		if (!pinged) {
			event(&s, "ping", json_pack("{s:s}", "type", "ping"));
			pinged = true;
		}
		if (strcmp(type, "thinking") == 0) {
			if (!text_deltas(&s, i, "thinking_delta", "thinking",
					 json_string_value(json_object_get(b, "thinking"))) ||
			    !delta(&s, i,
				   json_pack("{s:s, s:s}", "type", "signature_delta", "signature",
					     SIGNATURE)))
				break;
		} else if (strcmp(type, "text") == 0) {
			if (!text_deltas(&s, i, "text_delta", "text",
					 json_string_value(json_object_get(b, "text"))))
				break;
		} else {
			/* the input as JSON in fragments cut at awkward places, after an empty one
			 */
			char *in = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
			size_t len = in ? strlen(in) : 0, sizes[] = { 1, 5, 3, 8, 2, 7 };
			bool ok = delta(&s, i,
					json_pack("{s:s, s:s}", "type", "input_json_delta",
						  "partial_json", ""));
			for (size_t off = 0, j = 0; ok && off < len; j++) {
				size_t n = next_piece(in + off, len - off, sizes[j % 6]);
				ok = delta(&s, i,
					   json_pack("{s:s, s:s%}", "type", "input_json_delta",
						     "partial_json", in + off, n));
				off += n;
			}
			free(in);
			if (!ok)
				break;
		}
		event(&s, "content_block_stop",
		      json_pack("{s:s, s:I}", "type", "content_block_stop", "index",
				(json_int_t)i));
	}
	if (!s.broken) {
		event(&s, "message_delta",
		      json_pack("{s:s, s:{s:s, s:n}, s:{s:I}}", "type", "message_delta", "delta",
				"stop_reason", stop_reason(reply, blocks), "stop_sequence", "usage",
				"output_tokens", (json_int_t)(s.deltas ? s.deltas : 1)));
		event(&s, "message_stop", json_pack("{s:s}", "type", "message_stop"));
		if (!s.broken && !end_stream(&s))
			s.broken = true;
	}
	json_decref(blocks);
	return !s.broken && keep_alive;
}

static bool whole_reply(int fd, const struct knobs *k, const char *request_id, json_t *body,
			json_t *reply, bool keep_alive, int64_t input_tokens)
{
	json_t *blocks = reply_blocks(reply);
	int64_t out = 0;
	size_t i;
	json_t *b;
	json_array_foreach (blocks, i, b) {
		const char *t = json_string_value(json_object_get(b, "text"))
					?: json_string_value(json_object_get(b, "thinking"));
		out += t ? (int64_t)(strlen(t) + 3) / 4 : 8;
	}
	char mid[40];
	random_id("msg_", mid, sizeof(mid));
	json_t *m = json_pack(
		"{s:s, s:s, s:s, s:O, s:o, s:s, s:n, s:{s:I, s:i, s:i, s:I}}", "id", mid, "type",
		"message", "role", "assistant", "model", json_object_get(body, "model"), "content",
		blocks, "stop_reason", stop_reason(reply, blocks), "stop_sequence", "usage",
		"input_tokens", (json_int_t)input_tokens, "cache_creation_input_tokens", 0,
		"cache_read_input_tokens", 0, "output_tokens", (json_int_t)(out ?: 1));
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	first_token_wait(k);
	char headers[256];
	snprintf(headers, sizeof(headers), "request-id: %s\r\n", request_id);
	bool ok = text &&
		  respond(fd, k, 200, "application/json", headers, text, strlen(text), keep_alive);
	free(text);
	return ok && keep_alive;
}

/* --- a request ----------------------------------------------------------------------------- */

static bool authorized(const struct api *api, const struct http_request *req)
{
	const char *key = http_header(req, "x-api-key");
	const char *auth = http_header(req, "authorization");
	if (!key && auth && strncasecmp(auth, "Bearer ", 7) == 0)
		key = auth + 7;
	if (!key || !*key)
		return false;
	return !api->api_key || strcmp(key, api->api_key) == 0;
}

bool api_handle(const struct api *api, int fd, const struct http_request *req)
{
	char rid[40];
	random_id("req_", rid, sizeof(rid));
	bool keep = req->keep_alive;
	char path[sizeof(req->path)];
	snprintf(path, sizeof(path), "%s", req->path);
	char *q = strchr(path, '?');
	if (q)
		*q = '\0'; /* (the SDK adds ?beta=true to beta calls) */
	bool messages = strcmp(path, "/v1/messages") == 0;
	bool count = strcmp(path, "/v1/messages/count_tokens") == 0;
	if (api->verbose)
		fprintf(stderr, "corral-fake-api: %s %s %s\n", req->method, req->path, rid);

	/* The knobs first: html_status plays a proxy in front of the API, which answers before
	 * the API sees the request. */
	struct knobs k = api->knobs;
	struct check c = { 0 };
	const char *kh = http_header(req, "x-fake-api");
	if (kh && !override_knobs(&k, kh, &c))
		return send_error(fd, NULL, 400, "invalid_request_error", c.msg, rid, NULL, keep) &&
		       keep;
	const char *rc = http_header(req, "x-stainless-retry-count");
	long retry = rc ? strtol(rc, NULL, 10) : 0;
	bool fail = k.fail_attempts < 0 || retry < k.fail_attempts;
	char extra[128] = "";
	if (fail && (k.html_status || k.fail_status)) {
		int n = 0;
		if (k.retry_after_s >= 0)
			n += snprintf(extra, sizeof(extra), "retry-after: %lld\r\n",
				      (long long)k.retry_after_s);
		if (k.retry_after_ms >= 0)
			n += snprintf(extra + n, sizeof(extra) - (size_t)n,
				      "retry-after-ms: %lld\r\n", (long long)k.retry_after_ms);
		if (k.should_retry >= 0)
			snprintf(extra + n, sizeof(extra) - (size_t)n, "x-should-retry: %s\r\n",
				 k.should_retry ? "true" : "false");
	}
	if (fail && k.html_status)
		return send_html(fd, &k, (int)k.html_status, extra, keep) && keep;

	if (!messages && !count)
		return send_error(fd, &k, 404, "not_found_error", "Not found", rid, NULL, keep) &&
		       keep;
	if (strcmp(req->method, "POST") != 0)
		return send_error(fd, &k, 405, "invalid_request_error", "Method not allowed", rid,
				  "Allow: POST\r\n", keep) &&
		       keep;
	if (!authorized(api, req))
		return send_error(fd, &k, 401, "authentication_error",
				  http_header(req, "x-api-key") || http_header(req, "authorization")
					  ? "invalid x-api-key"
					  : "x-api-key header is required",
				  rid, NULL, keep) &&
		       keep;
	if (fail && k.fail_status) {
		int status = (int)k.fail_status;
		const char *msg = status == 529	  ? "Overloaded"
				  : status == 429 ? "Number of requests has exceeded your "
						    "rate limit"
						  : "Internal server error";
		return send_error(fd, &k, status, error_type(status), msg, rid, extra, keep) &&
		       keep;
	}

	json_error_t je;
	json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &je);
	if (!json_is_object(body)) {
		char msg[300];
		snprintf(msg, sizeof(msg), "There was an error parsing the body: %s",
			 body ? "the body must be a JSON object" : je.text);
		json_decref(body);
		return send_error(fd, &k, 400, "invalid_request_error", msg, rid, NULL, keep) &&
		       keep;
	}
	if (!check_body(body, count, &c)) {
		json_decref(body);
		return send_error(fd, &k, 400, "invalid_request_error", c.msg, rid, NULL, keep) &&
		       keep;
	}
	int64_t input_tokens = (int64_t)(req->body_len + 3) / 4;
	bool ok;
	if (count) {
		char text[64];
		int n = snprintf(text, sizeof(text), "{\"input_tokens\":%lld}",
				 (long long)input_tokens);
		char headers[256];
		snprintf(headers, sizeof(headers), "request-id: %s\r\n", rid);
		ok = respond(fd, &k, 200, "application/json", headers, text, (size_t)n, keep) &&
		     keep;
	} else {
		json_t *reply = pick_reply(api, body);
		ok = json_is_true(json_object_get(body, "stream"))
			     ? stream_reply(fd, &k, rid, body, reply, keep, input_tokens)
			     : whole_reply(fd, &k, rid, body, reply, keep, input_tokens);
		json_decref(reply);
	}
	json_decref(body);
	return ok;
}

/* --- scenarios ----------------------------------------------------------------------------- */

static bool check_turn(json_t *t, const char *where, const char *path)
{
	if (!json_is_object(t)) {
		fprintf(stderr, "corral-fake-api: %s: %s is not an object\n", path, where);
		return false;
	}
	const char *key;
	json_t *v;
	json_object_foreach (t, key, v) {
		bool str = strcmp(key, "text") == 0 || strcmp(key, "thinking") == 0 ||
			   strcmp(key, "stop_reason") == 0;
		if (str && !json_is_string(v)) {
			fprintf(stderr, "corral-fake-api: %s: %s.%s must be a string\n", path,
				where, key);
			return false;
		}
		if (!str && strcmp(key, "tool_calls") != 0) {
			fprintf(stderr, "corral-fake-api: %s: %s: unknown field \"%s\"\n", path,
				where, key);
			return false;
		}
	}
	json_t *calls = json_object_get(t, "tool_calls");
	size_t i;
	json_t *call;
	if (calls && !json_is_array(calls)) {
		fprintf(stderr, "corral-fake-api: %s: %s.tool_calls must be an array\n", path,
			where);
		return false;
	}
	json_array_foreach (calls, i, call) {
		json_t *in = json_object_get(call, "input");
		if (!json_is_string(json_object_get(call, "name")) || (in && !json_is_object(in))) {
			fprintf(stderr,
				"corral-fake-api: %s: %s.tool_calls[%zu] needs a string \"name\" "
				"and an object \"input\"\n",
				path, where, i);
			return false;
		}
	}
	if (!json_object_get(t, "text") && !json_object_get(t, "thinking") &&
	    !json_array_size(calls)) {
		fprintf(stderr, "corral-fake-api: %s: %s produces nothing\n", path, where);
		return false;
	}
	return true;
}

json_t *api_load_scenario(const char *path)
{
	json_error_t je;
	json_t *s = json_load_file(path, 0, &je);
	if (!s) {
		fprintf(stderr, "corral-fake-api: scenario %s: %s (line %d)\n", path, je.text,
			je.line);
		return NULL;
	}
	json_t *turns = json_object_get(s, "turns"), *rules = json_object_get(s, "rules");
	bool ok = json_is_object(s) && (!turns || json_is_array(turns)) &&
		  (!rules || json_is_array(rules)) &&
		  (json_array_size(turns) || json_array_size(rules));
	if (!ok)
		fprintf(stderr,
			"corral-fake-api: scenario %s: want an object with \"turns\" and/or "
			"\"rules\" arrays, not empty\n",
			path);
	size_t i;
	json_t *t;
	char where[64];
	json_array_foreach (turns, i, t) {
		snprintf(where, sizeof(where), "turns[%zu]", i);
		ok = ok && check_turn(t, where, path);
	}
	json_array_foreach (rules, i, t) {
		json_t *when = json_object_get(t, "when");
		snprintf(where, sizeof(where), "rules[%zu].reply", i);
		if (ok && (!json_is_object(when) ||
			   (!json_is_string(json_object_get(when, "tool_result_contains")) &&
			    !json_is_string(json_object_get(when, "user_text_contains"))))) {
			fprintf(stderr,
				"corral-fake-api: %s: rules[%zu].when needs "
				"\"tool_result_contains\" "
				"or \"user_text_contains\" (a string)\n",
				path, i);
			ok = false;
		}
		ok = ok && check_turn(json_object_get(t, "reply"), where, path);
	}
	if (!ok) {
		json_decref(s);
		return NULL;
	}
	return s;
}
