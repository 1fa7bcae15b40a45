/* cli: the corral command's verbs. One file per verb group; each parses its own options and
 * calls the library. Exit statuses: 0 success, 1 the operation failed or found a problem,
 * 2 usage error. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#define CR_EXIT_OK 0
#define CR_EXIT_FAIL 1
#define CR_EXIT_USAGE 2

int cr_cli_doctor(int argc, char **argv);
int cr_cli_bench(int argc, char **argv);
int cr_cli_sandbox(int argc, char **argv);
int cr_cli_worker(int argc, char **argv); /* cli/worker: one of corrald's brains */

/* The default corral-init: beside this program (build/), else ../libexec/corral/ from it (where
 * "make install" puts it). A new string owned by the caller, or NULL when /proc/self/exe cannot
 * be read. */
char *cr_cli_default_init(void);

/* dir/name, where dir is this program's directory: a new string owned by the caller, or NULL
 * when /proc/self/exe cannot be read (or without memory). */
char *cr_cli_beside_self(const char *name);

/* --- cli/client: corrald's API, for the verbs that use it (docs/cli.md) --------------------- */

#include <stdbool.h>
#include <stddef.h>
#include <getopt.h>
#include <jansson.h>

#include "corral/error.h"

/* Where corrald is: the flags win over the environment (CORRAL_SOCKET, CORRAL_URL,
 * CORRAL_API_KEY_FILE); without either, the Unix socket CONFIG_CORRAL_RUN_DIR/corrald.sock. */
struct cr_client_options {
	const char *socket; /* --socket PATH */
	const char *url; /* --url http://127.0.0.1:PORT (loopback TCP) */
	const char *api_key_file; /* --api-key-file FILE: the key, sent as x-api-key */
};

enum {
	CR_CLIENT_OPT_SOCKET = 0x4000,
	CR_CLIENT_OPT_URL,
	CR_CLIENT_OPT_API_KEY_FILE,
};

/* The client's long options, for the getopt_long table of every verb that talks to corrald. */
/* clang-format off */
#define CR_CLIENT_LONG_OPTIONS \
	{ "socket", required_argument, NULL, CR_CLIENT_OPT_SOCKET }, \
	{ "url", required_argument, NULL, CR_CLIENT_OPT_URL }, \
	{ "api-key-file", required_argument, NULL, CR_CLIENT_OPT_API_KEY_FILE }
/* clang-format on */

/* Takes option opt (one of CR_CLIENT_OPT_*) into o; false for any other option. */
bool cr_client_option(struct cr_client_options *o, int opt, const char *arg);

/* The options' usage lines, for a verb's usage message. */
/* clang-format off */
#define CR_CLIENT_USAGE \
	"  --socket PATH        corrald's Unix socket (default $CORRAL_SOCKET, else\n" \
	"                       " CONFIG_CORRAL_RUN_DIR "/corrald.sock)\n" \
	"  --url URL            corrald over loopback TCP, http://127.0.0.1:PORT (default\n" \
	"                       $CORRAL_URL)\n" \
	"  --api-key-file FILE  the key --url needs (default $CORRAL_API_KEY_FILE)\n"
/* clang-format on */

struct cr_client;

/* A client of corrald as o (and the environment) say; nothing is connected yet. -EINVAL for
 * a bad URL or socket path (a usage error), or the key file's error. *ret owned by the caller
 * (cr_client_free). */
int cr_client_new(const struct cr_client_options *o, struct cr_client **ret, struct cr_error *err);
void cr_client_free(struct cr_client *c);

/* A request: method ("GET", "POST", "DELETE"), path with its query ("/v1/sessions?limit=5"),
 * body a JSON value to send or NULL. On an answer, whatever its status, 0 with *ret_status and
 * *ret_body (the parsed body, NULL when it is empty or not JSON; owned by the caller). A
 * negative errno when corrald could not be reached or the exchange broke ("cannot reach
 * corrald at /run/corral/corrald.sock: connection refused (is corrald running?)"). */
int cr_client_request(struct cr_client *c, const char *method, const char *path, const json_t *body,
		      long *ret_status, json_t **ret_body, struct cr_error *err);

/* cr_client_request, where an answer other than 2xx is an error too, with the API's message,
 * type, status and request id ("no session sesn_x (not_found_error, HTTP 404, request req_y)"):
 * -ENOENT for 404, -EINVAL for 400, -EACCES for 401 and 403, -ESTALE for 409, else
 * -EREMOTEIO. *ret (may be NULL) is the body, owned by the caller (json null when empty). */
int cr_client_call(struct cr_client *c, const char *method, const char *path, const json_t *body,
		   json_t **ret, struct cr_error *err);

/* path + (first ? "?" : "&") + key=value, both escaped, as a new string in *url (freed and
 * replaced). -ENOMEM. */
int cr_client_query(char **url, const char *key, const char *value);

/* An id made safe for a path segment: a new string owned by the caller, NULL without memory. */
char *cr_client_escape(const char *s);

/* One event of a Server-Sent Events stream. Pointers valid during the callback only. */
struct cr_sse_event {
	const char *type; /* the event: field, "message" without one */
	const char
		*id; /* the last event id (this event's id: field or an earlier one's); "" none */
	const char *data; /* the data: lines joined by '\n', NUL-terminated */
	size_t data_len;
};

#define CR_CLIENT_STOP 1

struct cr_client_stream_ops {
	void *arg;
	/* Each event (pings included). Returns 0 to go on, CR_CLIENT_STOP to end the stream. */
	int (*on_event)(void *arg, const struct cr_sse_event *ev);
	/* Once, when the first connection's headers have come with status 200 (the server has
	 * subscribed), before any event. NULL: nothing. Returns like on_event. */
	int (*on_open)(void *arg);
	/* At least every 250 ms, and soon after a signal interrupts the wait. NULL: nothing.
	 * Returns like on_event. */
	int (*on_tick)(void *arg);
	/* Before reconnecting after the connection dropped (why), with the Last-Event-ID it will
	 * send. NULL: nothing. */
	void (*on_reconnect)(void *arg, const char *why, const char *last_event_id);
};

/* GETs the SSE stream at path (with Last-Event-ID: last_event_id unless NULL), calling ops
 * for each event until a callback returns CR_CLIENT_STOP (then 0). When the connection drops,
 * or nothing (not even a heartbeat) comes for idle_timeout_s, it reconnects once, with the
 * last event id seen, so no event is missed; another drop before any byte came back ends it.
 * Negative errno: corrald could not be reached, answered other than 200 (the API's message,
 * as cr_client_call), or the stream ended twice. */
int cr_client_stream(struct cr_client *c, const char *path, const char *last_event_id,
		     unsigned idle_timeout_s, const struct cr_client_stream_ops *ops,
		     struct cr_error *err);

/* --- cli/resources: the API's resource verbs, and the renderings cli/run shares ------------- */

int cr_cli_agents(int argc, char **argv);
int cr_cli_environments(int argc, char **argv);
int cr_cli_sessions(int argc, char **argv);
int cr_cli_session_events(int argc, char **argv);

/* The text of a content value (a string, or an array of blocks whose text blocks are joined
 * with '\n'): a new string owned by the caller ("" when there is none), NULL without memory. */
char *cr_cli_content_text(const json_t *content);

/* What a tool call does, on one line: bash's command, the file_path of read, write and edit,
 * the pattern (and path) of glob and grep, else the input as compact JSON. Into buf (size > 0,
 * cut at a character with "..." when longer); returns buf. */
const char *cr_cli_tool_summary(const char *name, const json_t *input, char *buf, size_t size);

/* One line saying what event ev (an API event object) holds: a message's first line, a tool
 * call's summary, a result's first line, the stop reason, the error. Into buf; returns buf. */
const char *cr_cli_event_summary(const json_t *ev, char *buf, size_t size);

/* s on one line (line ends and tabs as spaces) into buf, cut at a character with "..." when
 * longer than size - 1 bytes; returns buf. */
const char *cr_cli_one_line(const char *s, char *buf, size_t size);

/* The JSON value of a --json argument: the text itself, "@FILE", or "-" (or "@-") for stdin.
 * Prints "PROG: --json: why" and returns CR_EXIT_USAGE when it cannot be read or parsed;
 * CR_EXIT_OK with *ret owned by the caller. */
int cr_cli_json_arg(const char *prog, const char *arg, json_t **ret);

/* The model id of an agent's model field (a string, or {"id": ...}); NULL without one. */
const char *cr_cli_model_id(const json_t *model);

/* --- cli/run ------------------------------------------------------------------------------ */

int cr_cli_run(int argc, char **argv);

#endif
