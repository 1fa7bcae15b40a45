/* runtime/model_stream: the Messages API stream parser of include/corral/model.h. Two layers:
 * the SSE decoder (bytes to events, as the TypeScript SDK's _iterSSEMessages reads them) and
 * the message assembler (events to the message, as its MessageStream accumulates them). Text,
 * thinking and tool-input fragments go to growing buffers, written into the message only when
 * it is asked for, so a long reply costs linear time. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corral/buf.h"
#include "corral/clock.h"
#include "corral/model.h"

/* One content block: its object in the message, and the fragments not yet written into it. */
struct block {
	json_t *obj; /* borrowed from the message's content array */
	const char *field; /* "text" or "thinking": what the buffer accumulates; NULL: nothing */
	struct cr_buf acc;
	bool tool; /* tool_use or server_tool_use: input comes as JSON fragments */
	struct cr_buf json;
	bool json_seen; /* an input_json_delta came (the SDK then replaces the start's input) */
	bool dirty; /* acc holds more than obj says */
};

struct cr_model_stream {
	struct cr_model_stream_opts opts;
	/* the SSE decoder */
	struct cr_buf line;
	bool after_cr; /* the last byte was CR: an LF right after it ends nothing more */
	struct cr_buf event, data;
	bool has_event;
	size_t ndata;
	/* the message */
	json_t *message;
	struct block *blocks;
	size_t nblocks, blocks_cap;
	bool done;
	uint64_t first_delta_ns;
	/* how it ended, when it did */
	int failed;
	struct cr_error fail;
	char *error_type;
};

int cr_model_stream_new(const struct cr_model_stream_opts *opts, struct cr_model_stream **ret,
			struct cr_error *err)
{
	struct cr_model_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return cr_error_errno(err, ENOMEM, "model stream");
	if (opts)
		s->opts = *opts;
	if (!s->opts.max_event_bytes)
		s->opts.max_event_bytes = CR_MODEL_EVENT_MAX_DEFAULT;
	*ret = s;
	return 0;
}

void cr_model_stream_free(struct cr_model_stream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nblocks; i++) {
		free(s->blocks[i].acc.p);
		free(s->blocks[i].json.p);
	}
	free(s->blocks);
	json_decref(s->message);
	free(s->line.p);
	free(s->event.p);
	free(s->data.p);
	free(s->error_type);
	free(s);
}

/* Ends the stream with an error; every later call returns it. */
static int fail(struct cr_model_stream *s, struct cr_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct cr_model_stream *s, struct cr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[sizeof(s->fail.msg)];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->failed = code;
	cr_error_set(&s->fail, code, "%s", msg);
	if (err)
		*err = s->fail;
	return -code;
}

static int failed(struct cr_model_stream *s, struct cr_error *err)
{
	if (err)
		*err = s->fail;
	return -s->failed;
}

/* --- the message --------------------------------------------------------------------------- */

/* Writes the buffered text or thinking of each block into its object. */
static int sync_blocks(struct cr_model_stream *s)
{
	for (size_t i = 0; i < s->nblocks; i++) {
		struct block *b = &s->blocks[i];
		if (!b->dirty)
			continue;
		json_t *v = json_stringn_nocheck(b->acc.p ? b->acc.p : "", b->acc.len);
		if (!v || json_object_set_new(b->obj, b->field, v) < 0)
			return -ENOMEM;
		b->dirty = false;
	}
	return 0;
}

static int on_block_start(struct cr_model_stream *s, json_t *ev, struct cr_error *err)
{
	json_t *cb = json_object_get(ev, "content_block");
	json_t *content = json_object_get(s->message, "content");
	if (!json_is_object(cb))
		return fail(s, err, EBADMSG, "content_block_start without a content_block object");
	if (!json_is_array(content)) {
		content = json_array();
		if (!content || json_object_set_new(s->message, "content", content) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	json_t *copy = json_deep_copy(cb);
	if (!copy || json_array_append_new(content, copy) < 0)
		return fail(s, err, ENOMEM, "model stream: out of memory");
	if (s->nblocks == s->blocks_cap) {
		size_t cap = s->blocks_cap ? 2 * s->blocks_cap : 8;
		struct block *nb = realloc(s->blocks, cap * sizeof(*nb));
		if (!nb)
			return fail(s, err, ENOMEM, "model stream: out of memory");
		s->blocks = nb;
		s->blocks_cap = cap;
	}
	/* The SDK's snapshot indexes blocks by their position in content: so do we. */
	struct block *b = &s->blocks[s->nblocks++];
	*b = (struct block){ .obj = copy };
	const char *type = json_string_value(json_object_get(copy, "type"));
	if (type && (strcmp(type, "text") == 0 || strcmp(type, "thinking") == 0)) {
		b->field = strcmp(type, "text") == 0 ? "text" : "thinking";
		json_t *start = json_object_get(copy, b->field);
		const char *v = json_string_value(start);
		if (v && cr_buf_add(&b->acc, v, json_string_length(start)) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	b->tool = type && (strcmp(type, "tool_use") == 0 || strcmp(type, "server_tool_use") == 0);
	return 0;
}

static struct block *block_at(struct cr_model_stream *s, json_t *ev)
{
	json_t *i = json_object_get(ev, "index");
	if (!json_is_integer(i) || json_integer_value(i) < 0 ||
	    (size_t)json_integer_value(i) >= s->nblocks)
		return NULL; /* (the SDK ignores a delta for a block it does not have) */
	return &s->blocks[json_integer_value(i)];
}

static int on_block_delta(struct cr_model_stream *s, json_t *ev, struct cr_error *err)
{
	if (!s->first_delta_ns)
		s->first_delta_ns = cr_now_ns();
	struct block *b = block_at(s, ev);
	json_t *d = json_object_get(ev, "delta");
	const char *dtype = json_string_value(json_object_get(d, "type"));
	if (!b || !dtype)
		return 0;
	const char *btype = json_string_value(json_object_get(b->obj, "type"));
	bool text = btype && strcmp(btype, "text") == 0;
	bool thinking = btype && strcmp(btype, "thinking") == 0;
	json_t *v;
	if ((strcmp(dtype, "text_delta") == 0 && text &&
	     json_is_string(v = json_object_get(d, "text"))) ||
	    (strcmp(dtype, "thinking_delta") == 0 && thinking &&
	     json_is_string(v = json_object_get(d, "thinking")))) {
		if (cr_buf_add(&b->acc, json_string_value(v), json_string_length(v)) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
		b->dirty = true;
	} else if (strcmp(dtype, "input_json_delta") == 0 && b->tool &&
		   json_is_string(v = json_object_get(d, "partial_json"))) {
		if (cr_buf_add(&b->json, json_string_value(v), json_string_length(v)) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
		b->json_seen = true;
	} else if (strcmp(dtype, "signature_delta") == 0 && thinking &&
		   (v = json_object_get(d, "signature"))) {
		if (json_object_set(b->obj, "signature", v) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	} else if (strcmp(dtype, "citations_delta") == 0 && text &&
		   (v = json_object_get(d, "citation"))) {
		json_t *c = json_object_get(b->obj, "citations");
		if (!json_is_array(c)) {
			c = json_array();
			if (!c || json_object_set_new(b->obj, "citations", c) < 0)
				return fail(s, err, ENOMEM, "model stream: out of memory");
		}
		if (json_array_append(c, v) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	return 0; /* other delta types: ignored, as the API adds new ones */
}

/* A tool block's input: its fragments parsed once, here ("" is {}, as in the SDK). */
static int on_block_stop(struct cr_model_stream *s, json_t *ev, struct cr_error *err)
{
	struct block *b = block_at(s, ev);
	if (!b || !b->tool || !b->json_seen)
		return 0;
	json_t *input;
	if (b->json.len == 0) {
		input = json_object();
	} else {
		json_error_t je;
		input = json_loadb(b->json.p, b->json.len, JSON_DECODE_ANY, &je);
		if (!input)
			return fail(s, err, EBADMSG,
				    "tool_use block %zu: its input is not JSON (%s at byte %d)",
				    (size_t)(b - s->blocks), je.text, je.position);
	}
	if (json_object_set_new(b->obj, "input", input) < 0)
		return fail(s, err, ENOMEM, "model stream: out of memory");
	return 0;
}

/* message_delta: what the SDK's accumulator does, field for field. */
static int on_message_delta(struct cr_model_stream *s, json_t *ev, struct cr_error *err)
{
	json_t *d = json_object_get(ev, "delta");
	json_t *u = json_object_get(ev, "usage");
	static const char *const stops[] = { "stop_reason", "stop_sequence", "stop_details" };
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		json_t *v = json_object_get(d, stops[i]);
		/* assigned even when absent (undefined there: no such key) */
		if (v ? json_object_set(s->message, stops[i], v) < 0
		      : (json_object_del(s->message, stops[i]), false))
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	json_t *c = json_object_get(d, "container");
	if (c && !json_is_null(c) && json_object_set(s->message, "container", c) < 0)
		return fail(s, err, ENOMEM, "model stream: out of memory");
	json_t *usage = json_object_get(s->message, "usage");
	if (!json_is_object(usage)) {
		usage = json_object();
		if (!usage || json_object_set_new(s->message, "usage", usage) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	json_t *out = json_object_get(u, "output_tokens");
	if (out ? json_object_set(usage, "output_tokens", out) < 0
		: (json_object_del(usage, "output_tokens"), false))
		return fail(s, err, ENOMEM, "model stream: out of memory");
	/* the rest are cumulative totals, omitted when they do not apply: overwrite when there */
	static const char *const totals[] = { "input_tokens", "cache_creation_input_tokens",
					      "cache_read_input_tokens", "server_tool_use",
					      "output_tokens_details" };
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
		json_t *v = json_object_get(u, totals[i]);
		if (v && !json_is_null(v) && json_object_set(usage, totals[i], v) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
	}
	return 0;
}

static int accumulate(struct cr_model_stream *s, json_t *ev, struct cr_error *err)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type)
		return 0;
	if (strcmp(type, "message_start") == 0) {
		if (s->message)
			return fail(s, err, EBADMSG,
				    "unexpected event order: message_start before message_stop");
		json_t *m = json_object_get(ev, "message");
		if (!json_is_object(m))
			return fail(s, err, EBADMSG, "message_start without a message object");
		if (!(s->message = json_deep_copy(m)))
			return fail(s, err, ENOMEM, "model stream: out of memory");
		return 0;
	}
	if (!s->message)
		return 0; /* (before message_start: the SDK ignores it too) */
	if (strcmp(type, "content_block_start") == 0)
		return on_block_start(s, ev, err);
	if (strcmp(type, "content_block_delta") == 0)
		return on_block_delta(s, ev, err);
	if (strcmp(type, "content_block_stop") == 0)
		return on_block_stop(s, ev, err);
	if (strcmp(type, "message_delta") == 0)
		return on_message_delta(s, ev, err);
	if (strcmp(type, "message_stop") == 0) {
		if (sync_blocks(s) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
		s->done = true;
	}
	return 0; /* unknown event types are ignored */
}

/* --- the SSE decoder ----------------------------------------------------------------------- */

/* A complete event: what the SDK's Stream.fromSSEResponse does with it. */
static int dispatch(struct cr_model_stream *s, struct cr_error *err)
{
	const char *name = s->has_event ? s->event.p : NULL;
	const char *data = s->data.p ? s->data.p : "";
	if (!name || strcmp(name, "ping") == 0 || s->done)
		return 0; /* an event without a name is skipped, as in the SDK */
	json_error_t je;
	if (strcmp(name, "error") == 0) {
		json_t *body = json_loadb(data, s->data.len, 0, &je);
		json_t *e = json_object_get(body, "error");
		const char *type = json_string_value(json_object_get(e, "type"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		free(s->error_type);
		s->error_type = strdup(type ? type : "unknown_error");
		int r = fail(s, err, EREMOTEIO, "the API sent an error event: %s: %s",
			     type ? type : "(no type)", msg ? msg : data);
		json_decref(body);
		return r;
	}
	if (s->data.len == 0)
		return 0;
	json_t *ev = json_loadb(data, s->data.len, 0, &je);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return fail(s, err, EBADMSG, "event \"%s\": its data is not a JSON object (%s)",
			    name, ev ? "another JSON value" : je.text);
	}
	int r = 0;
	if (s->opts.on_event) {
		struct cr_error e;
		r = s->opts.on_event(s->opts.arg, ev, &e);
		if (r < 0)
			r = fail(s, err, -r, "%s", e.msg);
	}
	if (r == 0)
		r = accumulate(s, ev, err);
	json_decref(ev);
	return r;
}

static int take_line(struct cr_model_stream *s, struct cr_error *err)
{
	char *line = s->line.p ? s->line.p : "";
	size_t len = s->line.len;
	s->line.len = 0;
	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3; /* a byte-order mark at a line's start */
		len -= 3;
	}
	if (len == 0) {
		int r = 0;
		if (s->has_event || s->ndata)
			r = dispatch(s, err);
		s->has_event = false;
		s->ndata = 0;
		s->event.len = s->data.len = 0;
		return r;
	}
	if (line[0] == ':')
		return 0; /* a comment */
	char *colon = memchr(line, ':', len);
	size_t flen = colon ? (size_t)(colon - line) : len;
	const char *value = colon ? colon + 1 : line + len;
	if (colon && value < line + len && *value == ' ')
		value++;
	size_t vlen = (size_t)(line + len - value);
	int r = 0;
	if (flen == 5 && memcmp(line, "event", 5) == 0) {
		s->event.len = 0;
		r = cr_buf_add(&s->event, value, vlen);
		s->has_event = true;
	} else if (flen == 4 && memcmp(line, "data", 4) == 0) {
		if (s->ndata++)
			r = cr_buf_add(&s->data, "\n", 1);
		if (r == 0)
			r = cr_buf_add(&s->data, value, vlen);
	}
	if (r < 0)
		return fail(s, err, ENOMEM, "model stream: out of memory");
	if (s->event.len + s->data.len > s->opts.max_event_bytes)
		return fail(s, err, EMSGSIZE, "an event of more than %zu bytes",
			    s->opts.max_event_bytes);
	return 0;
}

int cr_model_stream_feed(struct cr_model_stream *s, const char *buf, size_t len,
			 struct cr_error *err)
{
	if (s->failed)
		return failed(s, err);
	size_t i = 0;
	if (s->after_cr && len > 0 && buf[0] == '\n')
		i = 1; /* the LF of a CRLF cut between two chunks */
	s->after_cr = false;
	while (i < len) {
		const char *p = buf + i;
		size_t n = len - i;
		/* the next line end: LF or CR */
		const char *lf = memchr(p, '\n', n);
		const char *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);
		const char *end = cr ? cr : lf;
		size_t take = end ? (size_t)(end - p) : n;
		if (take && cr_buf_add(&s->line, p, take) < 0)
			return fail(s, err, ENOMEM, "model stream: out of memory");
		if (s->line.len > s->opts.max_event_bytes)
			return fail(s, err, EMSGSIZE, "an event of more than %zu bytes",
				    s->opts.max_event_bytes);
		if (!end)
			break;
		i += take + 1;
		if (*end == '\r') {
			if (i < len && buf[i] == '\n')
				i++;
			else if (i == len)
				s->after_cr = true;
		}
		int r = take_line(s, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int cr_model_stream_finish(struct cr_model_stream *s, struct cr_error *err)
{
	if (s->failed)
		return failed(s, err);
	/* What is left is at most a line that ends no event: the SDK drops it too. */
	if (!s->done)
		return fail(s, err, EPIPE, "the stream ended before message_stop");
	return 0;
}

json_t *cr_model_stream_message(struct cr_model_stream *s)
{
	if (s->message && sync_blocks(s) < 0)
		return NULL;
	return s->message;
}

bool cr_model_stream_done(const struct cr_model_stream *s)
{
	return s->done;
}

const char *cr_model_stream_error_type(const struct cr_model_stream *s)
{
	return s->error_type;
}

uint64_t cr_model_stream_first_delta_ns(const struct cr_model_stream *s)
{
	return s->first_delta_ns;
}
