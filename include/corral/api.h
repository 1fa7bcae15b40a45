/* daemon/api: corrald's HTTP API, in the shape of Claude Managed Agents (DESIGN.md, "corrald
 * and the API"; docs/api.md). It owns the HTTP servers (libmicrohttpd: the Unix socket, checked
 * with SO_PEERCRED, and the optional loopback TCP listener, which demands the key it generated
 * into the state directory), the resource store (agents, environments and the sessions' own
 * fields, in <state_dir>/api.db), the rendering of log events as API events, and the SSE
 * stream. Everything a session does is in the log: the API appends client events (pending) and
 * reads; it never runs a harness step. What the rest of corrald must do when something happens
 * (wake a session, provision eagerly, destroy a sandbox) it asks through the hooks; corral's own
 * endpoints (/v1/corral/sandboxes) act on the sandbox manager through hooks.sandboxes. */
#ifndef CORRAL_API_H
#define CORRAL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "corral/error.h"
#include "corral/log.h"

#define CR_API_SANDBOX_ID_MAX 40 /* "sbx_" + 26 characters + NUL, with room */

/* A sandbox as corral's own endpoints show it (never its handle). */
struct cr_api_sandbox {
	char id[CR_API_SANDBOX_ID_MAX];
	char session[CR_LOG_ID_MAX];
	const char *status; /* "running", "paused" or "stopped" (static) */
	uint64_t created_ns; /* 0: unknown */
};

/* What corral's own endpoints (/v1/corral/sandboxes) ask of the sandbox manager; called on API
 * threads. Each fails with a negative errno and a message for the client: -ENOENT (no such
 * sandbox: 404), -EACCES (a wrong handle: 403), -EINVAL (400), -EBUSY, -EEXIST, -EAGAIN,
 * -ESRCH, -ESTALE, -ESHUTDOWN (409: the state of the sandbox or session does not allow it now);
 * anything else is a 500. docs/api.md, "corral's sandboxes". */
struct cr_api_sandbox_ops {
	/* Every sandbox the sessions' hands hold; *ret (owned by the caller: free) oldest first. */
	int (*list)(void *arg, struct cr_api_sandbox **ret, size_t *ret_n, struct cr_error *err);
	int (*get)(void *arg, const char *id, struct cr_api_sandbox *ret, struct cr_error *err);
	/* Runs argv (NULL-terminated) through the sandbox's PID 1; *ret: corral-init's answer. */
	int (*exec)(void *arg, const char *id, const char *const *argv, unsigned timeout_ms,
		    json_t **ret, struct cr_error *err);
	/* Pauses (pause) or resumes it, recording sandbox.paused / sandbox.resumed; a no-op when
	 * it is so already. */
	int (*pause)(void *arg, const char *id, bool pause, struct cr_error *err);
	/* Hands it from from_session (whose it must be) to to_session, given its handle. */
	int (*handoff)(void *arg, const char *id, const char *from_session, const char *handle,
		       const char *to_session, struct cr_error *err);
	/* Destroys it with its hands (and their workspace unless keep_workspace). */
	int (*destroy)(void *arg, const char *id, bool keep_workspace, struct cr_error *err);
};

struct cr_api_hooks {
	void *arg; /* for every hook, and the sandboxes' ops */
	/* Client events were durably appended to session, through seq through (or a session needs
	 * driving: 0): wake it. Called on an API thread; must not block. NULL: nothing. */
	void (*wake)(void *arg, const char *session, uint64_t through);
	/* Client events ev[0..n) are in line to be appended to session (their ids, types and
	 * payloads as the log will hold them; borrowed) but not yet durable: wake it early
	 * (cr_workers_wake_early); wake follows once they are durable. Called on an API thread
	 * inside the append; must not block, nor wait for the log. NULL: only wake. */
	void (*wake_early)(void *arg, const char *session, const struct cr_log_event *ev, size_t n);
	/* A session was created; environment is its environment object (borrowed). For eager
	 * provisioning. May block briefly. NULL: nothing. */
	void (*session_created)(void *arg, const char *session, const json_t *environment);
	/* A session was archived or deleted: its sandbox goes. NULL: nothing. */
	void (*session_ended)(void *arg, const char *session);
	/* corral's sandbox endpoints (borrowed; NULL: they answer 404). */
	const struct cr_api_sandbox_ops *sandboxes;
};

struct cr_api_config {
	struct cr_log *log; /* borrowed; outlives the API */
	const char *state_dir; /* api.db and api-key live here */
	const char *socket_path; /* the Unix socket (made 0660; its directory is created) */
	const char *listen; /* NULL, or "127.0.0.1:PORT" / "[::1]:PORT" (PORT 0: any free one) */
	size_t max_body; /* largest request body; 0: the default (CR_API_MAX_BODY_DEFAULT) */
	struct cr_api_hooks hooks;
};

#define CR_API_MAX_BODY_DEFAULT (4u << 20)

struct cr_api;

/* Opens the store, generates the TCP key if there is none (<state_dir>/api-key, 0600), binds
 * and starts serving on threads of its own. *ret is owned by the caller (cr_api_stop). */
int cr_api_start(const struct cr_api_config *cfg, struct cr_api **ret, struct cr_error *err);

/* Stops serving (open streams end), closes the store. NULL is fine. */
void cr_api_stop(struct cr_api *api);

/* The TCP listener's port (0 without --listen), e.g. after asking for port 0. */
unsigned cr_api_port(const struct cr_api *api);

/* Shows json (a preview of an event being made: an event_start or event_delta object) to the
 * session's streams that asked for previews of that event's type (?event_deltas[]=...), at
 * once and never again: previews are not in the log. Thread-safe; does not block. */
void cr_api_preview(struct cr_api *api, const char *session, const char *json);

/* What a worker needs to drive session: the agent object as the session pinned it (with its
 * version) and the environment object, as the API renders them. *ret_* owned by the caller.
 * -ENOENT for an unknown session. Thread-safe. */
int cr_api_session_config(struct cr_api *api, const char *session, json_t **ret_agent,
			  json_t **ret_environment, struct cr_error *err);

#endif
