/* runtime/brainlink: the link between corrald and one of its worker processes (a brain), a
 * stream socket pair corrald makes when it starts the worker. corrald sends "wake SESSION"
 * (with the session's configuration, first events and any early events); the worker then
 * drives the session with cr_orch_wake_early over a platform whose every call is one
 * request on the link, which corrald answers through its own (in-process) platform, and ends
 * with "done". A worker holds nothing of its own: when it dies, the link closes and corrald
 * gives the session to another worker. docs/workers.md has the wire format.
 *
 * One request at a time per link, in either direction's turn; not thread-safe per link. */
#ifndef CORRAL_BRAINLINK_H
#define CORRAL_BRAINLINK_H

#include <stdint.h>

#include "corral/error.h"
#include "corral/orchestrator.h"

/* Largest frame (JSON plus its binary tail) either way. */
#define CR_BRAINLINK_FRAME_MAX (64u << 20)

/* --- the worker's side --------------------------------------------------------------------- */

struct cr_brainlink;

/* A link over fd (owned from now on: closed by cr_brainlink_free). */
int cr_brainlink_new(int fd, struct cr_brainlink **ret, struct cr_error *err);
void cr_brainlink_free(struct cr_brainlink *l);

/* The platform whose calls go over the link (valid while the link lives). */
struct cr_platform cr_brainlink_platform(struct cr_brainlink *l);

/* Waits for corrald's next order: 0 with the session to wake in ret_session and the events
 * posted to it that were still being synced (cr_orch_wake_early; *ret_early owned by the
 * caller: cr_log_events_free, may be NULL with none), -ECONNRESET when corrald closed the link
 * (the worker should exit), or another negative errno. */
int cr_brainlink_next(struct cr_brainlink *l, char ret_session[CR_LOG_ID_MAX],
		      struct cr_log_event **ret_early, size_t *ret_n_early, struct cr_error *err);

/* Reports the end of a wake: result is cr_orch_wake's return (its message in msg). */
int cr_brainlink_done(struct cr_brainlink *l, const char *session, int result,
		      const struct cr_orch_stats *stats, const char *msg, struct cr_error *err);

/* --- corrald's side ------------------------------------------------------------------------ */

struct cr_brainlink_done {
	int result; /* the wake's: 0, or a negative errno */
	uint64_t last_seq; /* the last event the worker saw */
	char message[256];
};

/* Orders the worker at fd to wake session, told of its early events (n_early may be 0) and
 * given the session's configuration and first events (read through platform first), then
 * answers its requests through platform until it reports done (0, *ret filled), the link
 * closes (-ECONNRESET: the worker died), or no request comes for silence_ms (-ETIMEDOUT: the
 * worker hangs; -1 waits forever). A tool call runs here, on the calling thread, for as long
 * as it takes. */
int cr_brainlink_serve(int fd, const char *session, const struct cr_log_event *early,
		       size_t n_early, const struct cr_platform *platform, int silence_ms,
		       struct cr_brainlink_done *ret, struct cr_error *err);

#endif
