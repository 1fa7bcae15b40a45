/* runtime/model: the Anthropic Messages API client (DESIGN.md, "runtime/ — model"). Two parts:
 *
 * The client (runtime/model.c): streaming POST {base_url}/v1/messages calls, any number at once
 * on one thread, over libcurl's multi interface driven by io_uring (poll requests for curl's
 * sockets, the wait's timeout for its timer), with kept-alive connections, HTTP/2 where TLS
 * offers it, retries as the official SDKs make them, cancellation from any thread, and per
 * call the request-id, attempts, time to first token, duration and usage. The API key is
 * given to it (from the vault, or cr_model_key_load's root-only file) and never appears in
 * anything it prints, returns or logs.
 *
 * The stream parser (runtime/model_stream.c): the bytes of a streaming response body
 * (server-sent events) in, the assembled message out, exactly as the official TypeScript SDK
 * (@anthropic-ai/sdk, MessageStream) assembles it: fed in chunks cut anywhere, SSE lines ended by
 * LF, CRLF or CR, a byte-order mark at a line's start dropped, comments and fields other than event
 * and data ignored, an event without a name (or a ping) skipped, an "error" event an error with its
 * type, unknown event and delta types ignored (the API adds new ones), and a tool_use block's input
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

/* What a call's on_event returns for an event nobody has seen yet (cr_model_call_opts). */
#define CR_MODEL_EVENT_UNSEEN 1

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

/* --- the client ------------------------------------------------------------------------------ */

#define CR_MODEL_BASE_URL_DEFAULT "https://api.anthropic.com"
#define CR_MODEL_VERSION_DEFAULT "2023-06-01"
#define CR_MODEL_MAX_RETRIES_DEFAULT 2
#define CR_MODEL_MAX_RETRIES_MAX 100
#define CR_MODEL_TIMEOUT_MS_DEFAULT 600000 /* to the response's headers, as the SDK's timeout */
#define CR_MODEL_IDLE_MS_DEFAULT 300000 /* between bytes of a response being read */
#define CR_MODEL_KEY_MAX 1024

struct cr_model_client;
struct cr_model_call;

struct cr_model_config {
	/* NULL: $ANTHROPIC_BASE_URL when set and not empty, else CR_MODEL_BASE_URL_DEFAULT. A
	 * trailing slash is dropped; http:// or https:// only. */
	const char *base_url;
	const char *api_key; /* required; copied (and wiped on free); sent as x-api-key */
	const char *version; /* anthropic-version; NULL: CR_MODEL_VERSION_DEFAULT */
	const char *model; /* put in a request body that has no "model"; NULL: none */
	unsigned max_retries; /* retries after the first attempt, 0 to CR_MODEL_MAX_RETRIES_MAX */
	unsigned timeout_ms; /* connect and send, up to the response's status and headers */
	unsigned idle_ms; /* no byte of the response for this long: the attempt timed out */
	size_t max_event_bytes; /* the stream parser's limit; 0: CR_MODEL_EVENT_MAX_DEFAULT */
	bool no_io_uring; /* drive curl with its own poll loop even where io_uring works */
};

/* Fills the defaults: no key, CR_MODEL_MAX_RETRIES_DEFAULT, CR_MODEL_TIMEOUT_MS_DEFAULT,
 * CR_MODEL_IDLE_MS_DEFAULT, the rest NULL or 0. */
void cr_model_config_init(struct cr_model_config *cfg);

/* Reads an API key from path: a regular file (not a link) owned by root or by this process's
 * user, readable by no one else (mode 0600 or stricter), holding the key and optionally a line
 * end, of printable ASCII without spaces and at most CR_MODEL_KEY_MAX bytes. *ret_key is a new
 * string owned by the caller, to be wiped and freed with cr_model_key_free. The key is never
 * part of an error message. -EACCES for a file others could read, -EINVAL for a bad key. */
int cr_model_key_load(const char *path, char **ret_key, struct cr_error *err);
void cr_model_key_free(char *key);

/* A client: one curl multi handle and its event loop, used by one thread at a time (except
 * cr_model_call_cancel). *ret is owned by the caller. -EINVAL for a bad configuration. */
int cr_model_client_new(const struct cr_model_config *cfg, struct cr_model_client **ret,
			struct cr_error *err);
/* Cancels the calls still running (their on_done runs) and frees the client; the calls' own
 * objects are still the caller's to free. */
void cr_model_client_free(struct cr_model_client *c);

/* "io_uring" or "poll": what drives the client's event loop (io_uring unless configured off,
 * not built in, or refused by the kernel). */
const char *cr_model_client_driver(const struct cr_model_client *c);

struct cr_model_usage {
	int64_t input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens;
};

/* How a call went, complete once the call is done. */
struct cr_model_result {
	int status; /* 0, or the negative errno that ended the call (error says why):
		     * -EREMOTEIO the API answered with an error (status or error event),
		     * -ETIMEDOUT, -ECONNRESET (the connection failed or dropped), -EPIPE (the
		     * body ended before message_stop), -EBADMSG / -EMSGSIZE (a bad stream),
		     * -EPROTO (not the API's answer: HTML, a wrong content type),
		     * -ECANCELED, -ENOMEM */
	long http_status; /* of the last attempt; 0 when none answered */
	char request_id[128]; /* the last attempt's request-id header; "" when none */
	char error_type[64]; /* the API's error type ("overloaded_error", ...), "timeout",
			      * "connection_error", or "" */
	unsigned attempts; /* requests sent, 1 + retries */
	unsigned new_connections; /* connections opened (0 each time one was reused) */
	bool retryable; /* a caller may re-issue the call (the client did not, because its
			 * retries ran out or the stream had already delivered events) */
	uint64_t start_ns, ttft_ns, duration_ns; /* CLOCK_MONOTONIC start; first
						  * content_block_delta and end, after start */
	struct cr_model_usage usage; /* from the message, as the last message_delta left it */
	struct cr_error error; /* the message, when status < 0; never holds the key */
};

/* Called once when a call ends, last: it may free that call (not another running one) or start
 * new calls, but not run the loop. */
typedef void (*cr_model_done_fn)(void *arg, struct cr_model_call *call);

struct cr_model_call_opts {
	/* Each event of the stream (not pings), in order, as it is parsed; may cancel (a
	 * negative errno). It returns 0 when the event reached the caller's audience: an attempt
	 * that delivered an event is never retried by the client. It returns
	 * CR_MODEL_EVENT_UNSEEN when nobody saw it yet, and the attempt may still be retried.
	 * May be NULL. */
	cr_model_event_fn on_event;
	cr_model_done_fn on_done; /* may be NULL */
	void *arg;
	/* extra request headers, "Name: value", NULL-terminated (anthropic-beta, ...); copied.
	 * May be NULL. */
	const char *const *headers;
};

/* Starts a streaming call: body (borrowed; a request object of the Messages API) is sent with
 * "stream": true and, when it has none, the configured model. It runs as the client's loop
 * runs (cr_model_client_run or cr_model_call_wait). *ret is owned by the caller
 * (cr_model_call_free). */
int cr_model_call_start(struct cr_model_client *c, json_t *body,
			const struct cr_model_call_opts *opts, struct cr_model_call **ret,
			struct cr_error *err);
/* As cr_model_call_start, with the request as JSON text of len bytes (borrowed; copied), sent as
 * it is: it must hold "stream": true and the model itself, as cr_harness_step's requests do
 * (building them as text spares the tree and its dump, the larger part of a long session's
 * wake). */
int cr_model_call_start_text(struct cr_model_client *c, const char *body, size_t len,
			     const struct cr_model_call_opts *opts, struct cr_model_call **ret,
			     struct cr_error *err);

/* Runs the client's loop until no call is running or timeout_ms passed (-1: no limit);
 * returns the number of calls still running, or a negative errno when the loop itself
 * failed. */
int cr_model_client_run(struct cr_model_client *c, int timeout_ms, struct cr_error *err);

/* Runs the client's loop until call is done; returns its status (its error in err). */
int cr_model_call_wait(struct cr_model_call *call, struct cr_error *err);

/* Ends the call with -ECANCELED at the loop's next turn (at once when it waits to retry). Safe
 * from any thread and from the call's callbacks; nothing once it is done. */
void cr_model_call_cancel(struct cr_model_call *call);

bool cr_model_call_done(const struct cr_model_call *call);
/* The result (borrowed; valid until the call is freed). */
const struct cr_model_result *cr_model_call_result(const struct cr_model_call *call);
/* The assembled message (borrowed), or NULL before message_start; complete when the call
 * succeeded. */
json_t *cr_model_call_message(const struct cr_model_call *call);

/* Frees a call; a call still running is cancelled first (without its on_done). */
void cr_model_call_free(struct cr_model_call *call);

/* The result as the fields corral records on span.model_request_end (docs/model.md): a new
 * object owned by the caller, or NULL without memory. */
json_t *cr_model_result_json(const struct cr_model_result *r);

#endif
