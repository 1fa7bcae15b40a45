/* fakeapi: corral-fake-api, a local server of the Anthropic Messages API for tests, the demo
 * and benchmarks (docs/fake-api.md). http.c reads requests and writes responses on one
 * connection; api.c answers them; main.c listens and gives each connection a thread. */
#ifndef CORRAL_FAKEAPI_INTERNAL_H
#define CORRAL_FAKEAPI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HTTP_HEADERS_MAX 100
#define HTTP_HEAD_MAX (64u << 10)
#define HTTP_DRAIN_MAX (256u << 20) /* a body above the limit is read and dropped up to this */

struct http_request {
	char method[16];
	char path[1024];
	int minor; /* HTTP/1.minor */
	struct {
		char *name; /* lower case */
		char *value;
	} headers[HTTP_HEADERS_MAX];
	size_t nheaders;
	char *body;
	size_t body_len;
	bool keep_alive;
};

/* One client connection: its fd and what was read beyond the last request. */
struct http_conn {
	int fd;
	char *buf;
	size_t len, cap;
};

enum http_read {
	HTTP_OK,
	HTTP_CLOSED, /* the client closed (or broke) the connection between requests */
	HTTP_BAD, /* malformed: answer 400 and close */
	HTTP_TOO_LARGE, /* body above max_body: answer 413 and close */
	HTTP_HEAD_TOO_LARGE, /* headers above HTTP_HEAD_MAX: answer 431 and close */
};

/* Reads the next request (Content-Length or chunked body, at most max_body bytes). */
enum http_read http_read_request(struct http_conn *c, size_t max_body, struct http_request *ret);
void http_request_clear(struct http_request *r);
/* The value of header name (lower case), or NULL. */
const char *http_header(const struct http_request *r, const char *name);

/* Writes all of buf; false when the client has gone. */
bool http_write(int fd, const char *buf, size_t len);
/* The reason phrase of a status ("Bad Gateway"). */
const char *http_reason(int status);
/* A whole response with a body, in one write; extra_headers is "Name: value\r\n" lines or "". */
bool http_respond(int fd, int status, const char *content_type, const char *extra_headers,
		  const char *body, size_t len, bool keep_alive);
/* The same response, of which only the first cut bytes of the body are written (all of it when
 * cut >= len): the head still announces len, and the caller then ends the connection. */
bool http_respond_cut(int fd, int status, const char *content_type, const char *extra_headers,
		      const char *body, size_t len, size_t cut, bool keep_alive);
/* The head of a streamed (chunked) response; then http_chunk() for each piece and
 * http_chunk(fd, NULL, 0) to end it. */
bool http_stream_start(int fd, int status, const char *content_type, const char *extra_headers,
		       bool keep_alive);
/* One chunk, in one write. */
bool http_chunk(int fd, const char *buf, size_t len);
/* A chunk of len bytes of which only the head and the first cut (< len) are written: a stream
 * cut short, which the caller then ends without its last chunk. */
bool http_chunk_cut(int fd, const char *buf, size_t len, size_t cut);

/* --- api.c --------------------------------------------------------------------------------- */

/* The server's settings (command line); a request may override the knobs with its
 * x-fake-api header (a JSON object with the same names). */
struct knobs {
	int64_t first_token_ms; /* before the first delta (streaming) or the response */
	int64_t first_token_p99_ms; /* above first_token_ms: that wait is drawn (0: off) */
	int64_t token_rate; /* deltas per second; 0: as fast as the socket takes them */
	int64_t stamp; /* 1: each content_block_delta carries fake_api_sent_ns */
	int64_t html_status; /* answer as a failing proxy: this status, an HTML page (0: none) */
	int64_t fail_status; /* answer with this error status instead (0: none) */
	int64_t fail_attempts; /* only while x-stainless-retry-count is below this (-1: always) */
	int64_t retry_after_s, retry_after_ms; /* headers sent with a failure (-1: none) */
	int64_t should_retry; /* x-should-retry: false (0) or true (1) with a failure (-1: none) */
	int64_t error_after; /* an error event after this many deltas (-1: none) */
	int64_t drop_after; /* the connection is dropped after this many deltas (-1: none) */
	int64_t stall_after, stall_ms; /* a pause after this many deltas (-1: none) */
	int64_t truncate_after; /* bytes of body sent before the connection is cut (-1: all) */
};

struct api {
	const char *api_key; /* NULL: any non-empty key */
	json_t *scenario; /* NULL: a default reply */
	struct knobs knobs;
	size_t max_body;
	bool verbose;
};

/* Loads and checks a scenario file (docs/fake-api.md); NULL with a message on stderr. */
json_t *api_load_scenario(const char *path);
/* Answers one request on fd; false when the connection must be closed afterwards. */
bool api_handle(const struct api *api, int fd, const struct http_request *req);
/* An error response for a request that could not be read. */
void api_respond_error(int fd, int status, const char *type, const char *message);

#endif
