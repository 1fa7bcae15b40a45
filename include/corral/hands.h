/* runtime/hands: a session's hands, the sandbox manager's unit. Owns the binding of one
 * sandbox to one session through an unguessable handle (a capability: "sbh_" + 128 random
 * bits), the workspace that outlives each sandbox, provisioning (lazily on the first tool call
 * by default, or at once), and what a tool call does when the sandbox is gone: that call is
 * the tool error "sandbox lost: <reason>", the next one provisions a new sandbox on the same
 * workspace. Tool calls go through runtime/tool (cr_tool_execute). The binding is kept in a
 * record (<state_dir>/hands/<handle>.json) so that the hands, and their sandbox, are found again
 * after the host side restarts; with a log, what happens to the sandbox is recorded in the
 * session's events (sandbox.provisioned, sandbox.lost, sandbox.handoff in both sessions), and
 * which sandbox serves which session at which egress address in the catalog's sandboxes.
 * docs/sandbox.md, "Hands". */
#ifndef CORRAL_HANDS_H
#define CORRAL_HANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "corral/error.h"
#include "corral/log.h"
#include "corral/sandbox.h"
#include "corral/tool.h"

#define CR_HANDS_HANDLE_MAX 40 /* "sbh_" + 26 base32 characters + NUL, with room */

struct cr_hands_config {
	/* What each sandbox is made from: state_dir, init_path, limits, egress, ... (workspace
	 * and argv are the hands' own and ignored). The strings it points to must outlive the
	 * hands. */
	struct cr_sandbox_config sandbox;
	bool eager; /* provision in cr_hands_new(), not on the first tool call */
	/* Where the sandbox's events go (NULL: nowhere). They are appended under epoch, the
	 * lease of the worker driving the session (cr_hands_new; later cr_hands_set_epoch()). */
	struct cr_log *log;
	uint64_t epoch;
	/* How long a tool call waits for a paused sandbox to be resumed before it fails (the call
	 * is then not sent, so it never runs later); default CR_TOOL_TIMEOUT_MS_DEFAULT. */
	int paused_wait_ms;
};

void cr_hands_config_init(struct cr_hands_config *cfg);

struct cr_hands;

/* New hands for session: a fresh handle and an empty workspace
 * (<state_dir>/workspaces/<handle>); with cfg->eager a sandbox at once. */
int cr_hands_new(const struct cr_hands_config *cfg, const char *session, struct cr_hands **ret,
		 struct cr_error *err);

/* Finds hands again by their handle from their record, e.g. after the host side restarted. The
 * sandbox is found again if it still runs (cr_sandbox_open); one that stopped meanwhile is
 * destroyed and recorded as lost, and the next tool call provisions anew. -ENOENT for an
 * unknown handle, -EINVAL for one that is not a handle. */
int cr_hands_open(const struct cr_hands_config *cfg, const char *handle, struct cr_hands **ret,
		  struct cr_error *err);

/* The handles recorded under state_dir, sorted; NULL-terminated, owned by the caller. */
int cr_hands_list(const char *state_dir, char ***ret, size_t *ret_n, struct cr_error *err);

/* What each hands record under state_dir binds, read only (nothing is settled, found again or
 * cleaned up, as cr_hands_open does): the session, and its sandbox's id ("" for none). The
 * handle is left out. *ret (in the handles' order) is owned by the caller (free). */
struct cr_hands_binding {
	char session[CR_LOG_ID_MAX];
	char sandbox[CR_SANDBOX_ID_MAX];
};
int cr_hands_bindings(const char *state_dir, struct cr_hands_binding **ret, size_t *ret_n,
		      struct cr_error *err);

/* For the host side to run once at start, before it serves. Destroys the sandboxes that hands
 * made under cfg->sandbox.state_dir (their workspace is under <state_dir>/workspaces/) but that
 * no hands record names any more: left by a crash between making a sandbox and recording it.
 * Their workspaces stay (a record may still name them). With cfg->log, then makes the catalog's
 * sandboxes (cr_log_sandbox_note) exactly the recorded sandboxes that still exist. The number
 * destroyed in *ret_n (may be NULL). */
int cr_hands_sweep(const struct cr_hands_config *cfg, size_t *ret_n, struct cr_error *err);

/* The lease epoch under which the hands append the session's sandbox events. */
void cr_hands_set_epoch(struct cr_hands *h, uint64_t epoch);

const char *cr_hands_handle(const struct cr_hands *h);
const char *cr_hands_session(const struct cr_hands *h);
const char *cr_hands_workspace(const struct cr_hands *h); /* host path */
/* The current sandbox, or NULL (not provisioned yet, or lost and not yet replaced). */
struct cr_sandbox *cr_hands_sandbox(const struct cr_hands *h);
/* Sandboxes made so far (a replacement after a loss counts). */
unsigned cr_hands_provisioned(const struct cr_hands *h);

/* Runs a tool of the built-in toolset in the session's sandbox (see cr_tool_execute for
 * call_id and the result). Provisions first when there is no sandbox; fails as a tool result
 * for a lost sandbox ("sandbox lost: <reason>": its init died, it ran out of memory, it was
 * killed from outside, it stopped answering) and a paused one that was not resumed in time.
 * A command killed by the OOM killer while the sandbox lives is a tool error naming the memory
 * limit. A negative errno only when no sandbox could be made (the error says why). */
int cr_hands_execute(struct cr_hands *h, const char *call_id, const char *name, const char *input,
		     size_t input_len, struct cr_tool_result *ret, struct cr_error *err);

/* Rebinds the hands to another session; the caller must present the handle (-EACCES for a
 * wrong one). The sandbox and workspace carry over untouched. With a log, a sandbox.handoff
 * event is appended to both sessions first, to the old one under the hands' epoch and to the
 * new one under to_epoch (each fenced: -ESTALE, and nothing changes, when the caller does not
 * hold that lease), then the record is rewritten. */
int cr_hands_handoff(struct cr_hands *h, const char *handle, const char *to_session,
		     uint64_t to_epoch, struct cr_error *err);

/* Destroys the sandbox (if any), the record and, unless keep_workspace, the workspace. */
int cr_hands_destroy(struct cr_hands *h, bool keep_workspace, struct cr_error *err);

/* Frees the handle's memory; does not stop the sandbox. NULL is fine. */
void cr_hands_free(struct cr_hands *h);

#endif
