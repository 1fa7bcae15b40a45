/* daemon/workers: corrald's supervisor of brains. It keeps N worker processes (`corral worker`,
 * each on a socket pair: runtime/brainlink) and a queue of sessions to wake. A free worker takes
 * the next session and drives it through corrald's platform until it idles; a session is driven
 * by one worker at a time, and events posted while it runs wake it again when that worker is
 * done. A worker that dies (or stays silent past the lease timeout, and is then killed) is
 * replaced at once and its session goes back to the front of the queue: the next worker takes
 * the lease over, which fences out anything the old one might still write. docs/workers.md. */
#ifndef CORRAL_WORKERS_H
#define CORRAL_WORKERS_H

#include "corral/error.h"
#include "corral/log.h"
#include "corral/orchestrator.h"

struct cr_workers_config {
	unsigned count; /* worker processes, at least 1 */
	const char *program; /* the corral program that runs `corral worker` */
	const char *const *worker_args; /* extra arguments for each worker (NULL-terminated) */
	struct cr_platform *platform; /* borrowed: what the workers' requests are answered with */
	struct cr_log *log; /* borrowed: to see whether a session needs waking again */
	int silence_ms; /* a worker driving a session silent this long is killed; 0: 30000 */
};

struct cr_workers;

int cr_workers_start(const struct cr_workers_config *cfg, struct cr_workers **ret,
		     struct cr_error *err);

/* Wakes session: a free worker takes it; if a worker drives it now, it is driven again after
 * that, unless that wake was told of these events early and saw them durable (through: the
 * last seq of the events that caused it; 0: none in particular). Never blocks for long; any
 * thread. */
void cr_workers_wake(struct cr_workers *w, const char *session, uint64_t through);

/* Wakes session for events posted to it that the log is still syncing (n_early may be 0; they
 * are copied): its wake, if it is not being driven now, is told of them (cr_orch_wake_early).
 * Must be followed by cr_workers_wake(through: their last seq) once they are durable: a wake
 * told of them then does not run again unless it ended without seeing them in the log. */
void cr_workers_wake_early(struct cr_workers *w, const char *session,
			   const struct cr_log_event *early, size_t n_early);

/* Stops the workers (SIGTERM, then SIGKILL), joins the threads. NULL is fine. */
void cr_workers_stop(struct cr_workers *w);

struct cr_workers_stats {
	unsigned long wakes, restarts, killed_silent;
};
void cr_workers_get_stats(struct cr_workers *w, struct cr_workers_stats *ret);

#endif
