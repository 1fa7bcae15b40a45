/* runtime/orchestrator: wake(session_id), the brain's loop (DESIGN.md, "runtime/"). It takes
 * the session's lease (a new epoch), replays the log, and drives harness step -> effect ->
 * append until the session idles or ends, heartbeating the lease while a model call or a tool
 * call runs and stopping at once when an append is refused for a stale epoch (another brain
 * took the session over). It holds no state a crash could lose: everything it learns is
 * appended before it acts on it, tool calls carry their agent.tool_use event id as the call id
 * (corral-init runs a call once and replays its result), and a model call cut off by a crash is
 * issued again by the next wake because its span has no end.
 *
 * It reaches the log, the sandbox and the session's configuration only through a platform
 * (struct cr_platform): in-process over a cr_log and hands (cr_platform_local, used by corrald
 * itself and by tests), or from a worker process over its socket to corrald (runtime/brain). */
#ifndef CORRAL_ORCHESTRATOR_H
#define CORRAL_ORCHESTRATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "corral/error.h"
#include "corral/harness.h"
#include "corral/hands.h"
#include "corral/log.h"
#include "corral/model.h"
#include "corral/tool.h"

/* What a brain may do to a session. Every call may fail with -ESTALE when epoch is no longer
 * the session's lease: the caller must stop driving the session. */
struct cr_platform_ops {
	/* Takes the lease: a new epoch (lease.acquired is appended). */
	int (*acquire)(void *p, const char *session, uint64_t *ret_epoch, struct cr_error *err);
	/* The durable events after after_seq, in order, at most limit (0: all of them);
	 * cr_log_events_free. */
	int (*events)(void *p, const char *session, uint64_t after_seq, size_t limit,
		      struct cr_log_event **ret, size_t *ret_n, struct cr_error *err);
	/* Appends ev[0..n) as one unit under epoch (fenced on the epoch only: client events may
	 * land in between). ret (may be NULL) gets n results. */
	int (*append)(void *p, const char *session, uint64_t epoch,
		      const struct cr_harness_event *ev, size_t n, struct cr_log_appended *ret,
		      struct cr_error *err);
	/* Marks pending client events processed. */
	int (*mark)(void *p, const char *session, uint64_t epoch, const uint64_t *seqs, size_t n,
		    struct cr_error *err);
	/* Runs a built-in tool in the session's sandbox (call_id: the agent.tool_use event id). A
	 * tool failure is a result with is_error; a negative errno only when no sandbox could be
	 * asked at all. */
	int (*tool)(void *p, const char *session, uint64_t epoch, const char *call_id,
		    const char *name, const char *input, struct cr_tool_result *ret,
		    struct cr_error *err);
	/* The session's agent and environment objects (owned by the caller). */
	int (*config)(void *p, const char *session, json_t **ret_agent, json_t **ret_environment,
		      struct cr_error *err);
	/* The brain still drives session under epoch (called every heartbeat_ms while a model
	 * call runs). */
	int (*heartbeat)(void *p, const char *session, uint64_t epoch, struct cr_error *err);
	/* Hands a preview of an event still being made (json: an SSE event's data, an
	 * "event_start" or "event_delta" object; docs/api.md) to the session's streams that asked
	 * for previews. Best effort and never durable: no answer, no error. NULL: none. */
	void (*preview)(void *p, const char *session, const char *json);
};

struct cr_platform {
	const struct cr_platform_ops *ops;
	void *p;
};

/* --- the in-process platform ---------------------------------------------------------------- */

typedef int (*cr_platform_config_fn)(void *arg, const char *session, json_t **ret_agent,
				     json_t **ret_environment, struct cr_error *err);
typedef void (*cr_platform_preview_fn)(void *arg, const char *session, const char *json);

struct cr_platform_local_config {
	struct cr_log *log; /* borrowed */
	/* Sandboxes for the sessions' tool calls: the hands' template (log and epoch are set per
	 * call). NULL: every tool call fails as a tool error ("no sandbox: ..."). */
	const struct cr_hands_config *hands;
	cr_platform_config_fn config; /* NULL: an agent with no tools, model "claude-sonnet-4-5" */
	void *config_arg;
	cr_platform_preview_fn preview; /* where previews go (NULL: nowhere) */
	void *preview_arg;
};

/* A platform over log and hands. The hands of each session are made on its first tool call
 * (provisioned lazily or eagerly as the hands config says) and found again from their records
 * when the platform starts (cr_platform_local_new opens every record under the hands' state
 * directory). Thread-safe. */
int cr_platform_local_new(const struct cr_platform_local_config *cfg, struct cr_platform *ret,
			  struct cr_error *err);
void cr_platform_local_free(struct cr_platform *p);
/* Makes the session's hands now (eager provisioning); nothing when they exist. */
int cr_platform_local_provision(struct cr_platform *p, const char *session, bool eager,
				struct cr_error *err);
/* The same on a thread of its own: returns at once, and the session's brains wait for it (a
 * wake asks for the session's configuration first, and that waits until the making ended, made
 * or failed, as eager provisioning means: the agent starts with its sandbox there). done (may
 * be NULL) is called on that thread with the outcome. Nothing when a making already runs.
 * cr_platform_local_free waits for makings still running and cuts their provision delay
 * short. */
typedef void (*cr_platform_provision_done_fn)(void *arg, const char *session, int result,
					      const struct cr_error *err);
int cr_platform_local_provision_start(struct cr_platform *p, const char *session,
				      cr_platform_provision_done_fn done, void *arg,
				      struct cr_error *err);
/* Destroys the session's hands (sandbox, record and workspace), if any. */
int cr_platform_local_release(struct cr_platform *p, const char *session, struct cr_error *err);

/* --- the platform's sandboxes, for corral's own API (/v1/corral/sandboxes) ------------------
 *
 * The sandboxes the sessions' hands hold, by sandbox id. None of these gives out or takes a
 * handle except handoff, which must be shown it. What a sandbox serves is read from the hands'
 * records (cr_hands_bindings), so listing never waits for a tool call; what changes the hands
 * (handoff, destroy) takes the session's entry without waiting: while a tool call, a
 * provisioning or a release holds it, the answer is -EBUSY. */

struct cr_platform_sandbox {
	char id[CR_SANDBOX_ID_MAX];
	char session[CR_LOG_ID_MAX];
	enum cr_sandbox_state state;
	uint64_t created_ns; /* 0: unknown */
};

/* Every sandbox a session's hands hold, oldest first; *ret owned by the caller (free). */
int cr_platform_local_sandboxes(struct cr_platform *p, struct cr_platform_sandbox **ret,
				size_t *ret_n, struct cr_error *err);
/* One of them; -ENOENT when no hands hold sandbox id. */
int cr_platform_local_sandbox(struct cr_platform *p, const char *id,
			      struct cr_platform_sandbox *ret, struct cr_error *err);
/* Runs argv (NULL-terminated) in sandbox id through its PID 1, as `corral sandbox exec` does,
 * waiting up to timeout_ms for it; *ret gets corral-init's answer (stdout, stderr, exit_code or
 * signal, timed_out, duration_ms; owned by the caller). -ENOENT: no such sandbox; -EAGAIN: it
 * is paused (nothing is sent); -ESRCH: it is stopped or did not answer; -EINVAL: corral-init
 * refused the request (the error says why, e.g. a program not found). */
int cr_platform_local_exec(struct cr_platform *p, const char *id, const char *const *argv,
			   unsigned timeout_ms, json_t **ret, struct cr_error *err);
/* Pauses (cgroup.freeze) or resumes sandbox id and appends sandbox.paused or sandbox.resumed
 * to its session under the session's current epoch. Pausing a paused sandbox (resuming a
 * running one) changes nothing and appends nothing. -ESRCH: it is stopped. */
int cr_platform_local_pause(struct cr_platform *p, const char *id, bool pause,
			    struct cr_error *err);
/* Rebinds the hands that hold sandbox id, which must be from_session's, to to_session
 * (cr_hands_handoff: sandbox.handoff in both sessions, each under its current epoch). The
 * session entries follow: to_session's next tool call uses the sandbox, from_session's makes
 * new hands. -EACCES: a wrong handle; -EEXIST: to_session has hands already; -ESHUTDOWN:
 * to_session has ended; -EBUSY: either session's entry is in use; -ESTALE: a brain took either
 * session's lease meanwhile. Nothing changes on failure. */
int cr_platform_local_handoff(struct cr_platform *p, const char *id, const char *from_session,
			      const char *handle, const char *to_session, struct cr_error *err);
/* Destroys the hands that hold sandbox id (cr_hands_destroy: the sandbox, the record and,
 * unless keep_workspace, the workspace); the session's next tool call makes new hands.
 * -EBUSY: the session's entry is in use. */
int cr_platform_local_destroy(struct cr_platform *p, const char *id, bool keep_workspace,
			      struct cr_error *err);

/* --- wake ----------------------------------------------------------------------------------- */

struct cr_orch_config {
	struct cr_platform platform;
	struct cr_model_client *model; /* the brain's client (kept-alive connections) */
	unsigned heartbeat_ms; /* 0: 1000 */
	size_t context_budget; /* the harness's (0: no compaction) */
	int model_retries; /* the harness's (-1: its default) */
	const char *const *model_headers; /* extra request headers (may be NULL) */
	/* Set to stop: the loop ends at its next step (a running model call is cancelled). */
	volatile int *stop;
};

struct cr_orch_stats {
	unsigned steps, model_calls, tool_calls;
	/* model calls sent ahead of their writes and dropped unanswered: a client event landed
	 * meanwhile, or early events did not land as told */
	unsigned dropped_calls;
	uint64_t epoch; /* the lease the wake held */
	uint64_t last_seq; /* the last event seen */
	uint64_t replay_ns; /* acquire + read + fold, to the first effect */
	enum cr_harness_step_kind end; /* CR_STEP_WAIT or CR_STEP_END when it returned 0 */
};

/* Drives session until it waits for a client or ends (0), another brain takes its lease
 * (-ESTALE), or something fails that a later wake must retry (a negative errno: the platform
 * could not be reached, the log refused a write). stats (may be NULL) is filled either way. */
int cr_orch_wake(const struct cr_orch_config *cfg, const char *session, struct cr_orch_stats *stats,
		 struct cr_error *err);

/* cr_orch_wake, told of events (early, n_early; may be 0) a client posted that were still being
 * made durable when the wake was ordered: their id, type and payload are those the log is
 * writing, in order; their seq, times and epoch are ignored. The wake steps on them as if they
 * were durable, but before that only sends a model call; its first write (the lease, which the
 * log puts after them) shows whether they landed as told, with nothing between, and a call
 * made on events that did not is dropped unanswered. So a model call a message leads to goes
 * out while the message is being synced. Events the log already holds (the same ids) are
 * not added twice. */
int cr_orch_wake_early(const struct cr_orch_config *cfg, const char *session,
		       const struct cr_log_event *early, size_t n_early,
		       struct cr_orch_stats *stats, struct cr_error *err);

/* The harness agent of an API agent object (borrows from it: keep agent alive). */
void cr_orch_harness_agent(const json_t *agent, struct cr_harness_agent *ret);

#endif
