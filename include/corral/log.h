/* log: the session event log, the authoritative state of every session (DESIGN.md, "log/").
 * Append-only segment files written by one io_uring writer thread with group commit: the
 * appends that arrive while a batch is being written and fdatasync'ed form the next batch, and
 * an append is acknowledged only after the sync that covers it completed. Per-session fencing
 * (epoch + expected sequence) shuts stale writers out. A SQLite catalog (WAL) mirrors the
 * sessions; on open the log wins and the catalog is repaired. The catalog also holds the sandbox
 * manager's table of sandboxes (cr_log_sandbox_note), which the log only stores. The log
 * validates framing, sizes and JSON, never the meaning of event types.
 *
 * Thread safety: every call may be made from any thread at once, except cr_log_close(). */
#ifndef CORRAL_LOG_H
#define CORRAL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corral/error.h"

#define CR_LOG_ID_MAX 64 /* session and event ids, with their prefix and NUL */
#define CR_LOG_TYPE_MAX 64 /* event type, with NUL */

/* expected_seq that accepts whatever the next sequence number is. */
#define CR_LOG_ANY_SEQ 0

struct cr_log;

struct cr_log_options {
	bool create; /* make the directory and an empty log if there is none */
	uint64_t segment_size; /* rotate at this many bytes; default 64 MiB */
	size_t max_payload; /* largest event payload; default 1 MiB */
};

/* Fills the defaults. */
void cr_log_options_init(struct cr_log_options *opts);

/* Opens (and with opts->create, creates) the log in dir: takes an exclusive lock (a second
 * process gets -EBUSY), recovers (truncates a torn tail; -EUCLEAN naming segment and offset
 * for a bad frame followed by good ones), rebuilds the index, repairs the catalog, and starts
 * the writer. -ENOTDIR/-EINVAL when dir is not a corral log. *ret is owned by the caller. */
int cr_log_open(const char *dir, const struct cr_log_options *opts, struct cr_log **ret,
		struct cr_error *err);

/* Waits for appends in flight to complete (or fail), stops the writer, closes. NULL is fine. */
void cr_log_close(struct cr_log *log);

/* --- sessions ------------------------------------------------------------------------------ */

struct cr_log_session_info {
	char id[CR_LOG_ID_MAX];
	uint64_t created_ns; /* CLOCK_REALTIME */
	uint64_t epoch; /* lease generation: appends must name it */
	uint64_t last_seq; /* last durable sequence number (0: no events) */
	size_t pending; /* client events not yet marked processed */
};

/* Creates a session, durably. id may be NULL (a fresh "sesn_..." id is made) or a caller's id
 * (1 to 63 bytes of [A-Za-z0-9_-]); -EEXIST if it exists. ret_id (may be NULL) receives it.
 * A new session has epoch 0 and no events. */
int cr_log_session_create(struct cr_log *log, const char *id, char ret_id[CR_LOG_ID_MAX],
			  struct cr_error *err);

int cr_log_session_info(struct cr_log *log, const char *id, struct cr_log_session_info *ret,
			struct cr_error *err);

/* All sessions, oldest first; *ret is a new array owned by the caller (free()). */
int cr_log_list_sessions(struct cr_log *log, struct cr_log_session_info **ret, size_t *ret_n,
			 struct cr_error *err);

/* Takes the session's lease: durably appends a "lease.acquired" event ({"epoch":N}) carrying
 * the new epoch N = old + 1; from then on appends naming an older epoch fail with -ESTALE. */
int cr_log_acquire(struct cr_log *log, const char *session, uint64_t *ret_epoch,
		   struct cr_error *err);

/* --- appends ------------------------------------------------------------------------------- */

#define CR_LOG_PENDING 0x1u /* a client-sent event: processed_at stays null until marked */

struct cr_log_append {
	const char *session;
	uint64_t epoch; /* must equal the session's current epoch */
	uint64_t expected_seq; /* the sequence number this event must get, or CR_LOG_ANY_SEQ */
	const char *type; /* 1 to 63 bytes of [a-z0-9_.] */
	const char *payload; /* a JSON object */
	size_t payload_len;
	unsigned flags; /* CR_LOG_PENDING */
	/* NULL or "": the log draws the event's id. Else the id it gets, "sevt_..." as
	 * cr_id_format makes it, drawn at random by the caller (an id announced before the event
	 * was written: a stream's preview of it). The log does not look for duplicates. */
	const char *id;
};

struct cr_log_appended {
	uint64_t seq;
	char id[CR_LOG_ID_MAX]; /* "sevt_..." */
	uint64_t time_ns;
	uint64_t epoch; /* the epoch it was written under (a lease's new epoch) */
};

/* Called once per accepted append, on the writer thread, after the append is durable (result
 * 0, ev set) or has failed (result < 0, err says why; ev NULL). Must not block for long and
 * must not call back into the log's blocking calls. */
typedef void (*cr_log_done_fn)(void *arg, int result, const struct cr_log_appended *ev,
			       const struct cr_error *err);

/* Queues an append. Bad input (unknown session is checked later, by the writer) fails at once
 * with a negative errno and done is never called; otherwise returns 0 and done is called
 * exactly once. Errors: -EINVAL (bad JSON, type or flags), -E2BIG (payload too large),
 * -ENOENT (unknown session), -ESTALE (conflict: stale epoch or unexpected sequence; nothing is
 * written), -ENOSPC (no room; nothing written; later appends may succeed), -EIO (write or
 * fdatasync failed: every append of that batch fails and the log refuses all further appends
 * until reopened), -ESHUTDOWN (closing). */
int cr_log_append_async(struct cr_log *log, const struct cr_log_append *a, cr_log_done_fn done,
			void *arg, struct cr_error *err);

/* Blocking wrapper: returns once the append is durable or failed. ret may be NULL. */
int cr_log_append(struct cr_log *log, const struct cr_log_append *a, struct cr_log_appended *ret,
		  struct cr_error *err);

#define CR_LOG_GROUP_MAX 16 /* appends in one cr_log_append_all() */

/* Appends a[0..n) as one unit, blocking: all are written in one batch (each durable exactly
 * when the others are; a crash keeps all or none) or none is. Each is fenced on its own
 * session's epoch and expected_seq as with cr_log_append, and one refused refuses them all
 * (the error is the refused one's). The events may be of different sessions; two of one
 * session get consecutive sequence numbers in order. ret (may be NULL) gets n results. */
int cr_log_append_all(struct cr_log *log, const struct cr_log_append *a, size_t n,
		      struct cr_log_appended *ret, struct cr_error *err);

/* Told when a group holds its place in the log's order: every append queued from then on is
 * sequenced after it (or fails), though the group itself may still fail. Called once, on the
 * appending thread, before the wait for the sync; not called when the group is refused at once
 * (bad input, a closing log). It must not block on the log (a blocking append from it would
 * wait for itself): what it may do is tell another thread, which then appends. */
struct cr_log_placed {
	void (*fn)(void *arg);
	void *arg;
};

/* cr_log_append_all, telling placed (may be NULL) once the group is in line: for a caller that
 * starts work on the events before they are durable, and whose next append (behind them)
 * shows whether they were. */
int cr_log_append_all_placed(struct cr_log *log, const struct cr_log_append *a, size_t n,
			     const struct cr_log_placed *placed, struct cr_log_appended *ret,
			     struct cr_error *err);

/* Marks a pending event processed, durably (itself an appended record: the log stays
 * append-only); fenced like an append. -EINVAL if that event is not pending. */
int cr_log_mark_processed(struct cr_log *log, const char *session, uint64_t epoch, uint64_t seq,
			  struct cr_error *err);

/* --- reads --------------------------------------------------------------------------------- */

struct cr_log_event {
	uint64_t seq;
	char id[CR_LOG_ID_MAX];
	char type[CR_LOG_TYPE_MAX];
	uint64_t time_ns; /* when appended */
	uint64_t processed_ns; /* 0 while pending (processed_at: null) */
	uint64_t epoch; /* the epoch it was appended under */
	char *payload; /* NUL-terminated JSON object */
	size_t payload_len;
};

/* Durable events of session with seq > after_seq, at most limit (0: no limit), in order.
 * *ret is owned by the caller: cr_log_events_free(). */
int cr_log_get_events(struct cr_log *log, const char *session, uint64_t after_seq, size_t limit,
		      struct cr_log_event **ret, size_t *ret_n, struct cr_error *err);

/* Pending (client-sent, not yet processed) events of session, in order. */
int cr_log_get_pending(struct cr_log *log, const char *session, struct cr_log_event **ret,
		       size_t *ret_n, struct cr_error *err);

void cr_log_events_free(struct cr_log_event *events, size_t n);

/* A copy of events[0..n) with payloads of its own (cr_log_events_free); NULL when out of memory
 * or n is 0. */
struct cr_log_event *cr_log_events_dup(const struct cr_log_event *events, size_t n);

/* Follow: blocks until session has a durable event with seq > after_seq, or timeout_ms passes
 * (-ETIMEDOUT; -1 waits forever), or the log closes (-ESHUTDOWN), or cr_log_kick() is called.
 * Returns the last durable seq in *ret_last_seq. */
int cr_log_wait(struct cr_log *log, const char *session, uint64_t after_seq, int timeout_ms,
		uint64_t *ret_last_seq, struct cr_error *err);

/* Ends the cr_log_waits in progress on session at once: each returns 0 with the session's last
 * durable seq, which may be no later than its after_seq. For a waiter that has something
 * besides the log to look at (a stream's previews). An unknown session: nothing. */
void cr_log_kick(struct cr_log *log, const char *session);

/* --- the catalog's sandboxes -------------------------------------------------------------- */

#define CR_LOG_SANDBOX_ID_MAX 40 /* a sandbox id, with NUL (see runtime/sandbox) */

/* Which sandbox serves which session at which egress address. The
 * address is the sandbox's identity on the host: the credential broker finds the session
 * behind a connection by its source address (cr_log_sandbox_by_address). Noted by the sandbox
 * manager (runtime/hands) as sandboxes come and go; like the rest of the catalog a mirror, made
 * to agree with the sandbox manager's own records when it starts (cr_hands_sweep). The hands
 * handle, a capability, is not in it: the catalog is for other programs to read. */
struct cr_log_sandbox {
	char id[CR_LOG_SANDBOX_ID_MAX]; /* "sbx_..." */
	char session[CR_LOG_ID_MAX];
	char address[16]; /* the sandbox end's IPv4 address, dotted; "" without egress */
};

/* Inserts or replaces the row of sb->id (a row holding the same address gives way). */
int cr_log_sandbox_note(struct cr_log *log, const struct cr_log_sandbox *sb, struct cr_error *err);
/* Removes the row of sandbox id (none is fine). */
int cr_log_sandbox_forget(struct cr_log *log, const char *id, struct cr_error *err);
/* The sandbox holding address (dotted IPv4); -ENOENT when none does. */
int cr_log_sandbox_by_address(struct cr_log *log, const char *address, struct cr_log_sandbox *ret,
			      struct cr_error *err);
/* Every row, sorted by id; *ret is owned by the caller (free). */
int cr_log_list_sandboxes(struct cr_log *log, struct cr_log_sandbox **ret, size_t *ret_n,
			  struct cr_error *err);
/* Makes the table exactly v[0..n), in one transaction. */
int cr_log_sandboxes_reset(struct cr_log *log, const struct cr_log_sandbox *v, size_t n,
			   struct cr_error *err);

/* --- numbers ------------------------------------------------------------------------------- */

struct cr_log_stats {
	uint64_t appends; /* acknowledged appends since open */
	uint64_t batches; /* batches written */
	uint64_t syncs; /* fdatasync calls completed */
	uint64_t write_sync_ns; /* time from submitting batches to their sync completing */
	uint64_t bytes; /* bytes written since open */
	uint64_t recovered_bytes; /* log bytes scanned at open */
	uint64_t recovery_ns; /* time the open's recovery scan took */
	uint64_t truncated_bytes; /* torn tail removed at open */
	uint64_t followers; /* threads in cr_log_wait now */
	uint64_t follower_wakes; /* times one of them was woken to look (an event, a kick) */
};

void cr_log_get_stats(struct cr_log *log, struct cr_log_stats *ret);

#endif
