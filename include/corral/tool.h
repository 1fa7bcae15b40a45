/* runtime/tool: the Tool interface of the design, execute(name, input) -> string, for the
 * built-in toolset of the Managed Agents API (agent_toolset_20260401: bash, read, write, edit,
 * glob, grep, with the public API's names and input fields). It owns the tools' definitions
 * (what the harness sends the model), the checking of a tool call's input against them, and
 * the mapping of each call onto a request to the sandbox's corral-init (docs/tools.md).
 *
 * Which sandbox answers, and what happens when it is gone, is the caller's (the sandbox
 * manager's): cr_tool_execute() talks to one corral-init connection and tells a failed
 * connection (an error return) apart from a tool error (a result with is_error). */
#ifndef CORRAL_TOOL_H
#define CORRAL_TOOL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <corral/error.h>

#define CR_TOOLSET_TYPE "agent_toolset_20260401"

/* Default and largest per-call timeout of a tool, in milliseconds. */
#define CR_TOOL_TIMEOUT_MS_DEFAULT 120000
#define CR_TOOL_TIMEOUT_MS_MAX 86400000

/* Whether name is a tool of the built-in toolset. */
bool cr_tool_known(const char *name);

/* The toolset's definitions as the Messages API takes them in "tools": an array of
 * {"name", "description", "input_schema"} objects, in a fixed order. NULL on ENOMEM. */
json_t *cr_toolset_definitions(void);

/* A tool call's outcome: the text of its tool_result, and whether the call failed (bad input,
 * a file not found, a command that timed out: the model sees the text either way). */
struct cr_tool_result {
	char *content; /* owned; free with cr_tool_result_clear() */
	bool is_error;
};

void cr_tool_result_clear(struct cr_tool_result *r);

/* Sets the result to the formatted text (replacing what it held) and is_error; -ENOMEM. */
int cr_tool_result_set(struct cr_tool_result *ret, bool is_error, struct cr_error *err,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Runs tool name with input (a JSON text of input_len bytes) through the corral-init connected
 * at init_fd. call_id names the call for corral-init's at-most-once cache (the tool_use id: a
 * repeated id gets the first call's result instead of running again); NULL draws a random
 * one. Returns 0 with *ret filled, also when the tool failed (ret->is_error). Returns a
 * negative errno only when the sandbox could not be asked: -ECONNRESET (corral-init closed the
 * connection), -ETIMEDOUT (no answer within the call's timeout and a margin), -EPROTO, -ENOMEM.
 * The caller then decides whether the sandbox is lost. */
int cr_tool_execute(int init_fd, const char *call_id, const char *name, const char *input,
		    size_t input_len, struct cr_tool_result *ret, struct cr_error *err);

#endif
