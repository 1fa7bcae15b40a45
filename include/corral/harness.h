/* runtime/harness: the harness step, a pure function from a session's events to its next
 * effect (DESIGN.md, "runtime/"). It folds the log into a Messages API conversation (the
 * agent's system prompt, alternating user and assistant messages, the tool definitions of the
 * agent's tools), decides what happens next (consume client events, call the model, run tool
 * calls, ask for confirmation, compact the context, idle), and says which events record each
 * outcome. It owns no state and does no I/O: the same events always give the same effect, byte
 * for byte, so any worker can take a session over at any point (runtime/orchestrator applies
 * the effects). The event vocabulary and the corral fields it adds: docs/events.md. */
#ifndef CORRAL_HARNESS_H
#define CORRAL_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "corral/error.h"
#include "corral/log.h"

#define CR_HARNESS_MAX_TOKENS_DEFAULT 8192
#define CR_HARNESS_KEEP_TURNS_DEFAULT 4
#define CR_HARNESS_MODEL_RETRIES_DEFAULT 2

/* What the step needs to know of the session's agent (the API's agent object, as the session
 * pinned it). Borrowed: must outlive the call. */
struct cr_harness_agent {
	const char *model; /* the Messages API model id */
	const char *system; /* NULL or "": no system prompt */
	/* The agent's "tools" array as the API stores it: {"type":"agent_toolset_20260401",
	 * "default_config":{...},"configs":[...]} (the built-in tools: runtime/tool), and
	 * {"type":"custom","name","description","input_schema"}. Other types are skipped. NULL:
	 * no tools. */
	const json_t *tools;
	long max_tokens; /* 0: CR_HARNESS_MAX_TOKENS_DEFAULT */
	/* Compaction: when the messages of the next request are estimated above this many tokens
	 * (JSON bytes / 4), the middle of the history is compacted first; 0: never. */
	size_t context_budget;
	unsigned keep_turns; /* recent turns kept verbatim when compacting; 0: the default */
	/* A model call that failed retryably is issued again this many times before the session
	 * idles with retries_exhausted (the model client retries on its own first). -1: default. */
	int model_retries;
};

/* An event the orchestrator is to append: its type and payload (owned), and the id it must
 * get ("": any; the harness leaves it so, the orchestrator sets the id a preview announced). */
struct cr_harness_event {
	char *type;
	json_t *payload;
	char id[CR_LOG_ID_MAX];
};

/* A tool call to run: tool_use_id is the id of its agent.tool_use event (also the call id
 * that corral-init remembers, so a call is never run twice). Owned by the step. */
struct cr_harness_tool {
	char *tool_use_id;
	char *name;
	json_t *input;
};

enum cr_harness_step_kind {
	CR_STEP_WAIT, /* nothing to do until a client event arrives (idle, or waiting on one) */
	CR_STEP_END, /* the session is terminated */
	CR_STEP_APPEND, /* append events[] as one unit, then mark mark[] processed */
	CR_STEP_MODEL, /* call the model with request (after retry_delay_ms) */
	CR_STEP_TOOLS, /* run tools[] (in any order, or at once); each result is one event */
};

struct cr_harness_step {
	enum cr_harness_step_kind kind;
	/* CR_STEP_APPEND */
	struct cr_harness_event *events;
	size_t n_events;
	uint64_t *mark; /* seqs of pending client events this step consumes */
	size_t n_mark;
	/* CR_STEP_MODEL: the Messages API request body as JSON text of request_len bytes (NUL
	 * after them; with "model" and "stream": true, ready to send as it is), and how long to
	 * wait before sending it (a re-issue after a failed call backs off). The orchestrator
	 * appends a span.model_request_start event, calls, then appends cr_harness_model_events().
	 * Blocks of the conversation are the bytes of the log's payloads (or what jansson writes
	 * for a payload that is not written as it writes), so that a request is the one before it
	 * with the new messages added. */
	char *request;
	size_t request_len;
	unsigned retry_delay_ms;
	/* CR_STEP_TOOLS */
	struct cr_harness_tool *tools;
	size_t n_tools;
};

/* The next effect of a session whose durable events are ev[0..n) in sequence order (all of
 * them, from seq 1, pending ones included). Fills *ret (cleared first); free with
 * cr_harness_step_clear(). -EINVAL (err says which event) for a log it cannot fold: a payload
 * that is not what its type requires, a tool result for no tool use. */
int cr_harness_step(const struct cr_harness_agent *agent, const struct cr_log_event *ev, size_t n,
		    struct cr_harness_step *ret, struct cr_error *err);
void cr_harness_step_clear(struct cr_harness_step *s);

/* The events that record a finished model call issued by the CR_STEP_MODEL step of ev[0..n),
 * whose span.model_request_start event has id start_id: message is the assembled Messages API
 * message (cr_model_call_message; NULL when the call failed), result is the call's
 * cr_model_result_json(). On success: agent.thinking, agent.message and agent.tool_use (or
 * agent.custom_tool_use) events in the message's block order, then span.model_request_end. On
 * failure: span.model_request_end with is_error, then session.error whose retry_status says
 * what the next step does (retrying, exhausted, terminal). *ret is owned by the caller
 * (cr_harness_events_free). */
int cr_harness_model_events(const struct cr_harness_agent *agent, const struct cr_log_event *ev,
			    size_t n, const char *start_id, const json_t *message,
			    const json_t *result, struct cr_harness_event **ret, size_t *ret_n,
			    struct cr_error *err);

/* The agent.tool_result event of a tool call: {"tool_use_id", "content":[{"type":"text",
 * "text"}], "is_error"}. *ret owned by the caller (cr_harness_event_clear). */
int cr_harness_tool_result(const char *tool_use_id, const char *text, bool is_error,
			   struct cr_harness_event *ret, struct cr_error *err);

void cr_harness_event_clear(struct cr_harness_event *e);
void cr_harness_events_free(struct cr_harness_event *v, size_t n);

#endif
