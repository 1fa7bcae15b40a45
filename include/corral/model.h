/* runtime/model: the Anthropic Messages API client (DESIGN.md, "runtime/ — model"). So far its
 * stream parser: the bytes of a streaming POST /v1/messages response body (server-sent events)
 * in, the assembled message out, exactly as the official TypeScript SDK (@anthropic-ai/sdk,
 * MessageStream) assembles it: fed in chunks cut anywhere, SSE lines ended by LF, CRLF or CR, a
 * byte-order mark at a line's start dropped, comments and fields other than event and data
 * ignored, an event without a name (or a ping) skipped, an "error" event an error with its type,
 * unknown event and delta types ignored (the API adds new ones), and a tool_use block's input
 * assembled from its input_json_delta fragments and parsed once, at its content_block_stop.
 * docs/model.md. */
#ifndef CORRAL_MODEL_H
#define CORRAL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "corral/error.h"

#define CR_MODEL_EVENT_MAX_DEFAULT (8u << 20) /* bytes of one event's lines */

struct cr_model_stream;

/* Called for each event parsed (not pings), in order, with the event object (borrowed); a
 * negative return stops the stream with that error. */
typedef int (*cr_model_event_fn)(void *arg, json_t *event, struct cr_error *err);

struct cr_model_stream_opts {
	size_t max_event_bytes; /* 0: CR_MODEL_EVENT_MAX_DEFAULT */
	cr_model_event_fn on_event; /* may be NULL */
	void *arg;
};

int cr_model_stream_new(const struct cr_model_stream_opts *opts, struct cr_model_stream **ret,
			struct cr_error *err);
void cr_model_stream_free(struct cr_model_stream *s);

/* Feeds the next bytes of the body. 0, or a negative errno that ends the stream (every later
 * call returns it again): -EMSGSIZE for an event above max_event_bytes, -EBADMSG for an event
 * whose data is not a JSON object or that breaks the order (a second message_start, a tool
 * input that is not JSON), -EREMOTEIO for an "error" event (cr_model_stream_error_type names
 * its type, err its message). Bytes after message_stop are read and ignored. */
int cr_model_stream_feed(struct cr_model_stream *s, const char *buf, size_t len,
			 struct cr_error *err);

/* The body has ended: 0 when the message is complete (message_stop seen), else -EPIPE ("the
 * stream ended before message_stop") or the error that ended it. */
int cr_model_stream_finish(struct cr_model_stream *s, struct cr_error *err);

/* The message as assembled so far (borrowed; NULL before message_start): content blocks with
 * their text, thinking, signature and tool input, stop_reason, stop_sequence, stop_details and
 * usage as the last message_delta left them. Complete once cr_model_stream_done(). */
json_t *cr_model_stream_message(struct cr_model_stream *s);
bool cr_model_stream_done(const struct cr_model_stream *s);

/* The type of the "error" event that ended the stream ("overloaded_error", ...), or NULL. */
const char *cr_model_stream_error_type(const struct cr_model_stream *s);

/* CLOCK_MONOTONIC nanoseconds at which the first content_block_delta was parsed (time to
 * first token), 0 before it. */
uint64_t cr_model_stream_first_delta_ns(const struct cr_model_stream *s);

#endif
