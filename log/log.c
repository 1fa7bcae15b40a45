/* log/log: the session event log. One writer thread owns the active segment and the io_uring:
 * it takes every append queued while the previous batch was being made durable, checks each
 * against the session's fencing state and assigns sequence numbers (so a failed batch is undone
 * exactly), writes the batch with a linked fdatasync, and only then publishes the events to
 * readers and acknowledges them. Recovery at open rebuilds everything in memory from the
 * segments. Must never acknowledge an append before its sync completed, never retry a failed
 * fdatasync, and never let a stale epoch write. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef CONFIG_CORRAL_IO_URING
#include <liburing.h>
#endif

#include "corral/cleanup.h"
#include "corral/id.h"
#include "corral/json.h"
#include "corral/log.h"
#include "log/catalog.h"
#include "log/format.h"

#define MARKER_FILE "corral-log"
#define MARKER_TEXT "corral session log, format 1\n"
#define LOCK_FILE "LOCK"
#define CATALOG_FILE "catalog.db"
#define BATCH_HEADER_SIZE (log_align(LOG_FRAME_HEADER + 16))
#define BATCH_MAX_BYTES (8u << 20) /* a batch closes at this size; the rest waits for the next */

enum loc_state {
	LOC_DONE,
	LOC_PENDING,
	LOC_MARKING
};

struct loc {
	uint64_t off;
	uint64_t processed_ns; /* 0 while pending */
	uint32_t seg; /* index into log->segs */
	uint32_t len; /* padded frame size */
	uint8_t state;
};

struct session {
	char id[CR_LOG_ID_MAX];
	uint64_t created_ns;
	bool durable; /* its creation is durable: visible to everyone */
	bool creating; /* its creation is in the batch being written */
	bool listed; /* in log->order */
	uint64_t epoch, durable_epoch;
	uint64_t next_seq, durable_seq;
	struct loc *locs; /* locs[seq - 1], valid up to durable_seq */
	size_t locs_cap;
	uint64_t *pending; /* durable pending seqs, ascending */
	size_t npending, pending_cap;
	uint64_t kicks; /* cr_log_kick() calls for it: each ends its waits in progress */
};

/* A thread in cr_log_wait: each has a condition of its own, signalled only when its session
 * moves (a durable event, a kick) or the log closes, so that a batch wakes the streams of the
 * sessions it wrote and not every stream. */
struct follower {
	struct session *s; /* NULL until it waits */
	uint64_t after;
	pthread_cond_t cond;
	struct follower *prev, *next;
};

enum req_kind {
	REQ_EVENT,
	REQ_MARK,
	REQ_CREATE,
	REQ_ACQUIRE
};

struct req {
	struct req *next;
	enum req_kind kind;
	char session[CR_LOG_ID_MAX];
	char type[CR_LOG_TYPE_MAX];
	uint64_t epoch, expected_seq, seq, time_ns;
	char *payload;
	size_t payload_len;
	unsigned flags;
	/* The next request belongs to the same group (cr_log_append_all): the group is written
	 * whole, in one batch, or not at all. */
	bool linked;
	cr_log_done_fn done;
	void *arg;
	/* set by the writer */
	int result;
	struct cr_error err;
	struct session *s;
	uint64_t undo_epoch, undo_next_seq;
	uint8_t event_id[CR_ID_RAW];
	bool given_id; /* event_id is the appender's (cr_log_append.id), not drawn */
	uint64_t batch_off; /* offset of its frame in the batch buffer */
	uint32_t frame_size;
};

struct segment {
	uint64_t segno;
	int fd;
};

struct cr_log {
	char *dir;
	int dirfd, lockfd;
	struct cr_log_options opts;
	sqlite3 *catalog;
	/* The catalog's one connection: the writer's role notes sessions, any thread sandboxes. */
	pthread_mutex_t catalog_lock;

	pthread_mutex_t qlock; /* the queue, stopping and who holds the writer's role */
	pthread_cond_t work;
	struct req *head, *tail;
	bool stopping;
	bool writer_active; /* the writer thread has a batch (or its callbacks) in hand */
	bool inline_active; /* an appending thread writes its own batch (see append_inline) */

	pthread_mutex_t lock; /* sessions, segments, stats, failure, followers */
	struct follower *followers; /* the threads in cr_log_wait */
	bool closed;
	int failed; /* errno of a write/sync failure: no further appends */
	struct cr_error fail_err;

	struct session **table; /* open addressing by id hash */
	size_t table_cap, nsessions;
	struct session **order; /* creation order */
	size_t order_len, order_cap;

	struct segment *segs;
	size_t nsegs, segs_cap;
	uint64_t cur_off, cur_size, next_batch;
	struct cr_log_stats stats;

	pthread_t writer;
	bool writer_started;

	pthread_mutex_t spare_lock; /* the spare segment (see spare_main) */
	pthread_cond_t spare_cond;
	pthread_t spare_thread;
	bool spare_started, spare_busy;
	atomic_bool spare_stop;
	uint64_t spare_want; /* segment number to prepare next; 0: none asked for */
	int spare_fd; /* prepared segment, or -1 */
	uint64_t spare_segno, spare_size;
	uint64_t spare_requested; /* last segment number asked for (writer only) */

	uint8_t *buf;
	size_t buf_cap;
	uint8_t rand_pool[4096]; /* event ids, drawn 16 bytes at a time (writer only) */
	/* "writer only": the writer thread, or an appending thread while inline_active */
	size_t rand_used;
#ifdef CONFIG_CORRAL_IO_URING
	struct io_uring ring;
	bool ring_ready;
	bool ring_disabled; /* until the writer thread enables it */
#endif
};

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cr_log_options_init(struct cr_log_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->segment_size = 64u << 20;
	opts->max_payload = 1u << 20;
}

/* --- sessions table ------------------------------------------------------------------------ */

static uint64_t hash_id(const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	return h;
}

static struct session *lookup_n(struct cr_log *log, const char *id, size_t len)
{
	if (!log->table_cap)
		return NULL;
	size_t mask = log->table_cap - 1;
	for (size_t i = hash_id(id, len) & mask;; i = (i + 1) & mask) {
		struct session *s = log->table[i];
		if (!s)
			return NULL;
		if (strlen(s->id) == len && memcmp(s->id, id, len) == 0)
			return s;
	}
}

static struct session *lookup(struct cr_log *log, const char *id)
{
	return lookup_n(log, id, strlen(id));
}

/* A durable session, or NULL with err set. */
static struct session *find_durable(struct cr_log *log, const char *id, struct cr_error *err)
{
	struct session *s = lookup(log, id);
	if (!s || !s->durable) {
		cr_error_set(err, ENOENT, "no session %s in the log", id);
		return NULL;
	}
	return s;
}

static int table_put(struct cr_log *log, struct session *s)
{
	if ((log->nsessions + 1) * 2 > log->table_cap) {
		size_t cap = log->table_cap ? log->table_cap * 2 : 64;
		struct session **t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < log->table_cap; i++) {
			struct session *o = log->table[i];
			if (!o)
				continue;
			size_t j = hash_id(o->id, strlen(o->id)) & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = o;
		}
		free(log->table);
		log->table = t;
		log->table_cap = cap;
	}
	size_t j = hash_id(s->id, strlen(s->id)) & (log->table_cap - 1);
	while (log->table[j])
		j = (j + 1) & (log->table_cap - 1);
	log->table[j] = s;
	log->nsessions++;
	return 0;
}

/* Creates the in-memory session (not yet durable) or returns the existing one. */
static struct session *session_get_or_add(struct cr_log *log, const char *id, size_t len)
{
	struct session *s = lookup_n(log, id, len);
	if (s)
		return s;
	if (len >= CR_LOG_ID_MAX)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	memcpy(s->id, id, len);
	s->next_seq = 1;
	if (table_put(log, s) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static int order_add(struct cr_log *log, struct session *s)
{
	if (s->listed)
		return 0;
	if (log->order_len == log->order_cap) {
		size_t cap = log->order_cap ? log->order_cap * 2 : 64;
		struct session **o = realloc(log->order, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		log->order = o;
		log->order_cap = cap;
	}
	log->order[log->order_len++] = s;
	s->listed = true;
	return 0;
}

static int locs_reserve(struct session *s, uint64_t seq)
{
	if (seq <= s->locs_cap)
		return 0;
	size_t cap = s->locs_cap ? s->locs_cap * 2 : 16;
	while (cap < seq)
		cap *= 2;
	struct loc *l = realloc(s->locs, cap * sizeof(*l));
	if (!l)
		return -ENOMEM;
	s->locs = l;
	s->locs_cap = cap;
	return 0;
}

static int pending_add(struct session *s, uint64_t seq)
{
	if (s->npending == s->pending_cap) {
		size_t cap = s->pending_cap ? s->pending_cap * 2 : 8;
		uint64_t *p = realloc(s->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->pending = p;
		s->pending_cap = cap;
	}
	s->pending[s->npending++] = seq;
	return 0;
}

static void pending_remove(struct session *s, uint64_t seq)
{
	for (size_t i = 0; i < s->npending; i++) {
		if (s->pending[i] == seq) {
			memmove(&s->pending[i], &s->pending[i + 1],
				(s->npending - i - 1) * sizeof(uint64_t));
			s->npending--;
			return;
		}
	}
}

/* Applies a durable frame to the in-memory state (recovery and the writer both use this). */
static int apply(struct cr_log *log, const struct log_frame *f, uint32_t seg, uint64_t off,
		 struct cr_error *err)
{
	struct session *s;
	switch (f->kind) {
	case LOG_CREATE:
		s = session_get_or_add(log, f->session, f->session_len);
		if (!s)
			return cr_error_errno(err, ENOMEM, "session table");
		if (s->durable)
			return cr_error_set(err, EUCLEAN, "session %s created twice", s->id);
		s->durable = true;
		s->creating = false;
		s->created_ns = f->time_ns;
		return order_add(log, s) < 0 ? cr_error_errno(err, ENOMEM, "session list") : 0;
	case LOG_EVENT:
		s = lookup_n(log, f->session, f->session_len);
		if (!s || !s->durable)
			return cr_error_set(err, EUCLEAN,
					    "event for a session never created (%.*s)",
					    (int)f->session_len, f->session);
		if (f->seq != s->durable_seq + 1)
			return cr_error_set(err, EUCLEAN, "session %s: seq %llu follows %llu",
					    s->id, (unsigned long long)f->seq,
					    (unsigned long long)s->durable_seq);
		if (f->epoch < s->durable_epoch)
			return cr_error_set(
				err, EUCLEAN, "session %s: seq %llu has stale epoch %llu", s->id,
				(unsigned long long)f->seq, (unsigned long long)f->epoch);
		if (locs_reserve(s, f->seq) < 0)
			return cr_error_errno(err, ENOMEM, "index");
		struct loc *l = &s->locs[f->seq - 1];
		l->off = off;
		l->seg = seg;
		l->len = (uint32_t)log_align(f->len);
		if (f->flags & LOG_FLAG_PENDING) {
			l->state = LOC_PENDING;
			l->processed_ns = 0;
			if (pending_add(s, f->seq) < 0)
				return cr_error_errno(err, ENOMEM, "pending list");
		} else {
			l->state = LOC_DONE;
			l->processed_ns = f->time_ns;
		}
		s->durable_seq = f->seq;
		s->durable_epoch = f->epoch;
		if (s->next_seq <= f->seq)
			s->next_seq = f->seq + 1;
		if (s->epoch < f->epoch)
			s->epoch = f->epoch;
		return 0;
	case LOG_MARK:
		s = lookup_n(log, f->session, f->session_len);
		if (!s || !s->durable || f->seq == 0 || f->seq > s->durable_seq ||
		    s->locs[f->seq - 1].state == LOC_DONE)
			return cr_error_set(err, EUCLEAN,
					    "mark of an event that is not pending (%.*s "
					    "seq %llu)",
					    (int)f->session_len, f->session,
					    (unsigned long long)f->seq);
		s->locs[f->seq - 1].state = LOC_DONE;
		s->locs[f->seq - 1].processed_ns = f->time_ns;
		pending_remove(s, f->seq);
		return 0;
	case LOG_BATCH:
		break;
	}
	return cr_error_set(err, EUCLEAN, "unexpected frame kind %d", f->kind);
}

/* --- segments ------------------------------------------------------------------------------ */

static void segment_name(uint64_t segno, char *buf, size_t size)
{
	snprintf(buf, size, "%08llu.seg", (unsigned long long)segno);
}

static int segs_push(struct cr_log *log, uint64_t segno, int fd)
{
	if (log->nsegs == log->segs_cap) {
		size_t cap = log->segs_cap ? log->segs_cap * 2 : 16;
		struct segment *s = realloc(log->segs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		log->segs = s;
		log->segs_cap = cap;
	}
	log->segs[log->nsegs++] = (struct segment){ .segno = segno, .fd = fd };
	return 0;
}

/* fallocate, again when a signal interrupts it (tmpfs returns EINTR then). */
static int fallocate_retry(int fd, int mode, uint64_t off, uint64_t len)
{
	int r;
	do
		r = fallocate(fd, mode, (off_t)off, (off_t)len);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Writes zeros over [off, end) of fd, then syncs it. Writing them, rather than punching a hole
 * or preallocating, leaves the extents written: a later overwrite then syncs its data alone,
 * while a first write into preallocated (unwritten) space must also commit the file system's
 * journal, which on ext4 here made each sync of a 20 KB batch take twice as long. Stops early
 * with -ECANCELED once *stop is set (stop may be NULL). */
static int write_zeros(int fd, uint64_t off, uint64_t end, const atomic_bool *stop)
{
	static const uint8_t zeros[65536];
	struct iovec iov[16];
	for (size_t i = 0; i < sizeof(iov) / sizeof(iov[0]); i++)
		iov[i] = (struct iovec){ .iov_base = (void *)zeros, .iov_len = sizeof(zeros) };
	while (off < end) {
		if (stop && atomic_load(stop))
			return -ECANCELED;
		uint64_t left = end - off;
		int n = 0;
		for (; n < 16 && left; n++) {
			iov[n].iov_len = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
			left -= iov[n].iov_len;
		}
		ssize_t w = pwritev(fd, iov, n, (off_t)off);
		for (int i = 0; i < n; i++)
			iov[i].iov_len = sizeof(zeros);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
	}
	int r;
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static void spare_name(uint64_t segno, char *buf, size_t size)
{
	snprintf(buf, size, "%08llu.seg.tmp", (unsigned long long)segno);
}

/* Makes the file of segment segno, size bytes (rounded up to 4 KiB), under its temporary name:
 * space reserved (so a full disk shows here, not in a later write), header written, the rest
 * zeros, all durable. Its fd in *ret_fd. */
static int segment_prepare(struct cr_log *log, uint64_t segno, uint64_t size,
			   const atomic_bool *stop, int *ret_fd, uint64_t *ret_size,
			   struct cr_error *err)
{
	char name[32];
	spare_name(segno, name, sizeof(name));
	size = (size + 4095) & ~(uint64_t)4095;
	int fd = openat(log->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cr_error_errno(err, errno, "create segment %s/%s", log->dir, name);
	int r = 0;
	if (fallocate_retry(fd, 0, 0, size) < 0) {
		if (errno != EOPNOTSUPP)
			r = cr_error_errno(err, errno, "preallocate %llu bytes for segment %s/%s",
					   (unsigned long long)size, log->dir, name);
		else if (ftruncate(fd, (off_t)size) < 0)
			r = cr_error_errno(err, errno, "size segment %s/%s", log->dir, name);
	}
	uint8_t hdr[LOG_SEG_HEADER];
	log_segment_header(segno, now_ns(CLOCK_REALTIME), hdr);
	if (r == 0 && pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		r = cr_error_errno(err, errno ? errno : EIO, "write segment header %s/%s", log->dir,
				   name);
	if (r == 0 && (r = write_zeros(fd, sizeof(hdr), size, stop)) < 0)
		r = cr_error_errno(err, -r, "fill segment %s/%s with zeros", log->dir, name);
	if (r < 0) {
		close(fd);
		unlinkat(log->dirfd, name, 0);
		return r;
	}
	*ret_fd = fd;
	*ret_size = size;
	return 0;
}

/* The spare-segment thread: keeps the next segment prepared while the writer fills the active
 * one, so that rotation costs a rename and a directory sync instead of writing a whole
 * segment. A failure (a full disk) is not reported here: the writer then prepares the segment
 * itself, and its batch gets the error. */
static void *spare_main(void *arg)
{
	struct cr_log *log = arg;
	/* Filling 64 MiB with zeros is CPU work that must never delay the writer's next batch:
	 * on a small machine the scheduler would otherwise give it the writer's core for a whole
	 * time slice. SCHED_IDLE needs no privilege; where it is refused the thread runs as is. */
	struct sched_param idle = { 0 };
	pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
	pthread_mutex_lock(&log->spare_lock);
	for (;;) {
		while (!log->spare_want && !atomic_load(&log->spare_stop))
			pthread_cond_wait(&log->spare_cond, &log->spare_lock);
		if (atomic_load(&log->spare_stop))
			break;
		uint64_t segno = log->spare_want;
		log->spare_want = 0;
		log->spare_busy = true;
		pthread_mutex_unlock(&log->spare_lock);
		int fd = -1;
		uint64_t size = 0;
		struct cr_error e;
		int r = segment_prepare(log, segno, log->opts.segment_size, &log->spare_stop, &fd,
					&size, &e);
		pthread_mutex_lock(&log->spare_lock);
		log->spare_busy = false;
		if (r == 0) {
			log->spare_fd = fd;
			log->spare_segno = segno;
			log->spare_size = size;
		}
		pthread_cond_broadcast(&log->spare_cond);
	}
	pthread_mutex_unlock(&log->spare_lock);
	return NULL;
}

/* Asks for the segment after the active one to be prepared ahead, once the active one is half
 * full (or there is none): a log that is only opened to be read, or that grows slowly, never
 * writes a segment of zeros it does not need yet. Writer only (or open, before it starts). */
static void spare_maybe_request(struct cr_log *log)
{
	uint64_t next = log->nsegs ? log->segs[log->nsegs - 1].segno + 1 : 1;
	if (log->nsegs && log->cur_off < log->cur_size / 2)
		return;
	if (log->spare_requested == next)
		return;
	log->spare_requested = next;
	pthread_mutex_lock(&log->spare_lock);
	log->spare_want = next;
	pthread_cond_signal(&log->spare_cond);
	pthread_mutex_unlock(&log->spare_lock);
}

/* Drops a prepared segment nobody will use (closing, or too small for a batch). */
static void spare_discard(struct cr_log *log)
{
	if (log->spare_fd < 0)
		return;
	char name[32];
	spare_name(log->spare_segno, name, sizeof(name));
	close(log->spare_fd);
	unlinkat(log->dirfd, name, 0);
	log->spare_fd = -1;
}

/* Makes a new segment with room for need bytes of frames and makes it the active one: the
 * spare if it is ready and big enough, else one prepared here. */
static int rotate(struct cr_log *log, size_t need, struct cr_error *err)
{
	uint64_t segno = log->nsegs ? log->segs[log->nsegs - 1].segno + 1 : 1;
	uint64_t size = log->opts.segment_size;
	if (size < LOG_SEG_HEADER + need)
		size = LOG_SEG_HEADER + need;
	int fd = -1;
	pthread_mutex_lock(&log->spare_lock);
	while (log->spare_busy)
		pthread_cond_wait(&log->spare_cond, &log->spare_lock);
	log->spare_want = 0; /* from here on this segment is ours to make, not the thread's */
	if (log->spare_fd >= 0 && (log->spare_segno != segno || log->spare_size < size))
		spare_discard(log);
	if (log->spare_fd >= 0) {
		fd = log->spare_fd;
		size = log->spare_size;
		log->spare_fd = -1;
	}
	pthread_mutex_unlock(&log->spare_lock);
	int r = 0;
	if (fd < 0 && (r = segment_prepare(log, segno, size, NULL, &fd, &size, err)) < 0)
		return r;

	char tmp[32], name[32];
	spare_name(segno, tmp, sizeof(tmp));
	segment_name(segno, name, sizeof(name));
	if (renameat2(log->dirfd, tmp, log->dirfd, name, RENAME_NOREPLACE) < 0) {
		/* (EEXIST would mean a segment this log does not know of: never replace it) */
		r = cr_error_errno(err, errno, "make segment %s/%s", log->dir, name);
		close(fd);
		unlinkat(log->dirfd, tmp, 0);
		return r;
	}
	if (fsync(log->dirfd) < 0) {
		r = cr_error_errno(err, errno, "sync log directory %s for segment %s", log->dir,
				   name);
		close(fd);
		unlinkat(log->dirfd, name, 0);
		return r;
	}
	pthread_mutex_lock(&log->lock);
	r = segs_push(log, segno, fd);
	pthread_mutex_unlock(&log->lock);
	if (r < 0) {
		close(fd);
		unlinkat(log->dirfd, name, 0);
		return cr_error_errno(err, ENOMEM, "segment list");
	}
	log->cur_off = LOG_SEG_HEADER;
	log->cur_size = size;
	return 0;
}

/* --- recovery ------------------------------------------------------------------------------ */

/* Whether a valid batch frame numbered after last_batch lies at or after from in segment i
 * (in 8-byte steps, as frames are aligned), or, unless only_i, anywhere in a later segment. */
static bool later_batch(struct cr_log *log, uint8_t **maps, uint64_t *sizes, size_t i,
			uint64_t from, uint64_t last_batch, bool only_i)
{
	for (size_t k = i; k < (only_i ? i + 1 : log->nsegs); k++) {
		if (!maps[k])
			continue;
		const uint8_t *m = maps[k];
		uint64_t start = k == i ? (from + 7) & ~(uint64_t)7 : LOG_SEG_HEADER;
		for (uint64_t off = start; off + LOG_FRAME_HEADER <= sizes[k]; off += 8) {
			uint32_t magic;
			memcpy(&magic, m + off + 8, 4);
			if (magic != LOG_FRAME_MAGIC)
				continue;
			struct log_frame f;
			if (log_frame_decode(m + off, sizes[k] - off, &f) == 1 &&
			    f.kind == LOG_BATCH && f.batch_no > last_batch)
				return true;
		}
	}
	return false;
}

struct parsed {
	struct log_frame f;
	uint64_t off;
};

/* Parses the batch at pos of segment i into frames (*ret_n of them, up to cap), without
 * applying anything. Returns the end offset, or 0 with *bad_at set when the batch is not whole
 * and valid. */
static uint64_t parse_batch(const uint8_t *m, uint64_t size, uint64_t pos, uint64_t want_no,
			    struct parsed **frames, size_t *cap, size_t *ret_n, uint64_t *bad_at)
{
	struct log_frame b;
	*ret_n = 0;
	if (log_frame_decode(m + pos, size - pos, &b) != 1 || b.kind != LOG_BATCH ||
	    b.batch_no != want_no) {
		*bad_at = pos;
		return 0;
	}
	uint64_t p = pos + log_align(b.len), end = p + b.batch_bytes;
	if (end > size || b.batch_frames == 0) {
		*bad_at = pos;
		return 0;
	}
	for (uint32_t k = 0; k < b.batch_frames; k++) {
		if (*ret_n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 256;
			struct parsed *n = realloc(*frames, ncap * sizeof(*n));
			if (!n) {
				*bad_at = UINT64_MAX; /* out of memory: not corruption */
				return 0;
			}
			*frames = n;
			*cap = ncap;
		}
		struct parsed *pf = &(*frames)[*ret_n];
		if (p >= end || log_frame_decode(m + p, end - p, &pf->f) != 1 ||
		    pf->f.kind == LOG_BATCH) {
			*bad_at = p;
			return 0;
		}
		pf->off = p;
		p += log_align(pf->f.len);
		(*ret_n)++;
	}
	if (p != end) {
		*bad_at = p;
		return 0;
	}
	return end;
}

static int list_segments(struct cr_log *log, uint64_t **ret, size_t *ret_n, struct cr_error *err)
{
	int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cr_error_errno(err, errno, "read log directory %s", log->dir);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return cr_error_errno(err, errno, "read log directory %s", log->dir);
	}
	uint64_t *nums = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		unsigned long long v = strtoull(de->d_name, &end, 10);
		if (end != de->d_name && strcmp(end, ".seg.tmp") == 0 && end - de->d_name == 8) {
			/* a spare segment from before: never part of the log */
			if (unlinkat(log->dirfd, de->d_name, 0) < 0 && errno != ENOENT) {
				free(nums);
				closedir(d);
				return cr_error_errno(err, errno, "remove %s/%s", log->dir,
						      de->d_name);
			}
			continue;
		}
		if (end == de->d_name || strcmp(end, ".seg") != 0 || end - de->d_name != 8)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *x = realloc(nums, cap * sizeof(*x));
			if (!x) {
				free(nums);
				closedir(d);
				return cr_error_errno(err, ENOMEM, "segment list");
			}
			nums = x;
		}
		nums[n++] = v;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++) /* few segments: insertion sort */
		for (size_t j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
			uint64_t t = nums[j];
			nums[j] = nums[j - 1];
			nums[j - 1] = t;
		}
	for (size_t i = 1; i < n; i++)
		if (nums[i] != nums[i - 1] + 1) {
			unsigned long long missing = nums[i - 1] + 1;
			free(nums);
			return cr_error_set(err, EUCLEAN, "log %s: segment %08llu is missing",
					    log->dir, missing);
		}
	*ret = nums;
	*ret_n = n;
	return 0;
}

static int recover(struct cr_log *log, struct cr_error *err)
{
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	_cleanup_free_ uint64_t *nums = NULL;
	size_t n = 0;
	int r = list_segments(log, &nums, &n, err);
	if (r < 0)
		return r;

	uint8_t **maps = calloc(n ? n : 1, sizeof(*maps));
	uint64_t *sizes = calloc(n ? n : 1, sizeof(*sizes));
	struct parsed *frames = NULL;
	size_t frames_cap = 0;
	if (!maps || !sizes) {
		r = cr_error_errno(err, ENOMEM, "recovery");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char name[32];
		segment_name(nums[i], name, sizeof(name));
		int fd = openat(log->dirfd, name, O_RDWR | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = cr_error_errno(err, errno, "open segment %s/%s", log->dir, name);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if ((r = segs_push(log, nums[i], fd)) < 0) {
			close(fd);
			r = cr_error_errno(err, ENOMEM, "segment list");
			goto out;
		}
		sizes[i] = (uint64_t)st.st_size;
		if (st.st_size > 0) {
			maps[i] = mmap(NULL, (size_t)st.st_size, PROT_READ,
				       MAP_SHARED | MAP_POPULATE, fd, 0);
			if (maps[i] == MAP_FAILED) {
				maps[i] = NULL;
				r = cr_error_errno(err, errno, "map segment %s/%s", log->dir, name);
				goto out;
			}
		}
	}

	uint64_t batch = 0; /* last good batch number */
	size_t last_seg = 0;
	uint64_t end_off = 0; /* end of good data in last_seg */
	bool torn = false;
	size_t torn_seg = 0;
	uint64_t torn_off = 0;
	for (size_t i = 0; i < n && !torn; i++) {
		char name[32];
		segment_name(nums[i], name, sizeof(name));
		uint64_t segno;
		if (!maps[i] || !log_segment_header_valid(maps[i], sizes[i], &segno) ||
		    segno != nums[i]) {
			/* A segment whose header never became durable: only ever the last one. */
			if (i + 1 == n) {
				torn = true;
				torn_seg = i;
				torn_off = 0;
				break;
			}
			r = cr_error_set(err, EUCLEAN, "log %s: segment %s has a bad header",
					 log->dir, name);
			goto out;
		}
		uint64_t pos = LOG_SEG_HEADER;
		last_seg = i;
		for (;;) {
			struct log_frame probe;
			if (log_frame_decode(maps[i] + pos, sizes[i] - pos, &probe) == 0) {
				/* end of this segment's data: nothing valid may follow in it */
				if (later_batch(log, maps, sizes, i, pos + 8, batch, true)) {
					/* zeros, then a batch: a lost batch in the middle */
					r = cr_error_set(
						err, EUCLEAN,
						"log %s: segment %s offset %llu: zeros followed "
						"by valid batches (corrupt log)",
						log->dir, name, (unsigned long long)pos);
					goto out;
				}
				break;
			}
			size_t nf = 0;
			uint64_t bad_at = 0;
			uint64_t end = parse_batch(maps[i], sizes[i], pos, batch + 1, &frames,
						   &frames_cap, &nf, &bad_at);
			if (!end) {
				if (bad_at == UINT64_MAX) {
					r = cr_error_errno(err, ENOMEM, "recovery");
					goto out;
				}
				if (later_batch(log, maps, sizes, i, bad_at + 1, batch, false)) {
					r = cr_error_set(
						err, EUCLEAN,
						"log %s: segment %s offset %llu: bad frame "
						"followed by valid batches (corrupt log)",
						log->dir, name, (unsigned long long)bad_at);
					goto out;
				}
				torn = true;
				torn_seg = i;
				torn_off = pos; /* the whole batch goes: batches are atomic */
				break;
			}
			for (size_t k = 0; k < nf; k++) {
				if ((r = apply(log, &frames[k].f, (uint32_t)i, frames[k].off,
					       err)) < 0) {
					cr_error_prefix(err, "log %s: segment %s offset %llu",
							log->dir, name,
							(unsigned long long)frames[k].off);
					goto out;
				}
			}
			batch++;
			log->stats.recovered_bytes += end - pos;
			pos = end;
			end_off = pos;
		}
		if (!torn)
			end_off = pos;
	}

	if (torn) {
		/* Zero the torn tail so that nothing of it can ever look valid again, and drop any
		 * later segment (none holds a valid batch, or we would not be here). */
		for (uint64_t o = sizes[torn_seg]; o > torn_off; o--)
			if (maps[torn_seg] && maps[torn_seg][o - 1]) {
				log->stats.truncated_bytes = o - torn_off;
				break;
			}
		/* (past the last nonzero byte the segment already reads as zeros) */
		uint64_t dirty_end = torn_off + log->stats.truncated_bytes;
		for (size_t k = n; k-- > torn_seg + (torn_off ? 1 : 0);) {
			char name[32];
			segment_name(log->segs[k].segno, name, sizeof(name));
			if (maps[k])
				munmap(maps[k], sizes[k]);
			maps[k] = NULL;
			close(log->segs[k].fd);
			if (unlinkat(log->dirfd, name, 0) < 0) {
				r = cr_error_errno(err, errno, "remove torn segment %s/%s",
						   log->dir, name);
				log->nsegs = k;
				goto out;
			}
			log->nsegs = k;
		}
		if (fsync(log->dirfd) < 0) {
			r = cr_error_errno(err, errno, "sync log directory %s", log->dir);
			goto out;
		}
		if (torn_off) {
			r = write_zeros(log->segs[torn_seg].fd, torn_off, dirty_end, NULL);
			if (r < 0) {
				r = cr_error_errno(err, -r, "erase torn tail of segment %08llu",
						   (unsigned long long)log->segs[torn_seg].segno);
				goto out;
			}
			last_seg = torn_seg;
			end_off = torn_off;
		}
	}
	if (log->nsegs) {
		log->cur_off = end_off;
		log->cur_size = sizes[last_seg];
	}
	log->next_batch = batch + 1;
	r = 0;
out:
	for (size_t i = 0; maps && i < n; i++)
		if (maps[i])
			munmap(maps[i], sizes[i]);
	free(maps);
	free(sizes);
	free(frames);
	log->stats.recovery_ns = now_ns(CLOCK_MONOTONIC) - t0;
	return r;
}

/* --- writing ------------------------------------------------------------------------------- */

#ifdef CONFIG_CORRAL_IO_URING
/* Queues the batch's write linked to an fdatasync, without waiting. */
static int submit_write_sync(struct cr_log *log, int fd, const uint8_t *buf, size_t len,
			     uint64_t off, struct cr_error *err)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&log->ring);
	io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
	sqe->flags |= IOSQE_IO_LINK;
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(&log->ring);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	sqe->user_data = 2;
	int r;
	do
		r = io_uring_submit(&log->ring);
	while (r == -EINTR);
	return r < 0 ? cr_error_errno(err, -r, "io_uring submit") : 0;
}

/* Waits for the two completions of submit_write_sync(). */
static int wait_write_sync(struct cr_log *log, int *ret_wres, int *ret_sres, struct cr_error *err)
{
	*ret_wres = *ret_sres = -ECANCELED;
	for (int k = 0; k < 2; k++) {
		struct io_uring_cqe *cqe;
		int r;
		do
			r = io_uring_wait_cqe(&log->ring, &cqe);
		while (r == -EINTR);
		if (r < 0)
			return cr_error_errno(err, -r, "io_uring wait");
		if (cqe->user_data == 1)
			*ret_wres = cqe->res;
		else
			*ret_sres = cqe->res;
		io_uring_cqe_seen(&log->ring, cqe);
	}
	return 0;
}

#endif

/* One write of buf at off and, if all of it was written, a sync: on the writer's io_uring, or
 * with plain system calls (ring false; the only way without io_uring). The write's result
 * (bytes or -errno) in *ret_wres; the sync's (0, -errno, or -ECANCELED when it did not run) in
 * *ret_sres. */
static int write_sync_once(struct cr_log *log, bool ring, int fd, const uint8_t *buf, size_t len,
			   uint64_t off, int *ret_wres, int *ret_sres, struct cr_error *err)
{
#ifdef CONFIG_CORRAL_IO_URING
	if (ring) {
		int r = submit_write_sync(log, fd, buf, len, off, err);
		return r < 0 ? r : wait_write_sync(log, ret_wres, ret_sres, err);
	}
#else
	(void)log;
	(void)ring;
	(void)err;
#endif
	ssize_t w;
	do
		w = pwrite(fd, buf, len, (off_t)off);
	while (w < 0 && errno == EINTR);
	*ret_wres = w < 0 ? -errno : (int)w;
	*ret_sres = -ECANCELED;
	if (*ret_wres == (int)len) {
		int r;
		do
			r = fdatasync(fd);
		while (r < 0 && errno == EINTR);
		*ret_sres = r < 0 ? -errno : 0;
	}
	return 0;
}

/* Writes all of buf at off and syncs it, going on after short writes. */
static int write_sync(struct cr_log *log, bool ring, int fd, const uint8_t *buf, size_t len,
		      uint64_t off, unsigned *ret_syncs, struct cr_error *err)
{
	size_t done = 0;
	*ret_syncs = 0;
	while (done < len) {
		int wres, sres;
		int r = write_sync_once(log, ring, fd, buf + done, len - done, off + done, &wres,
					&sres, err);
		if (r < 0)
			return r;
		if (wres < 0)
			return cr_error_errno(err, -wres,
					      "write %zu bytes to the log at offset %llu",
					      len - done, (unsigned long long)(off + done));
		if (wres == 0)
			return cr_error_set(err, EIO, "write to the log made no progress");
		done += (size_t)wres;
		if (done == len && sres < 0)
			return cr_error_errno(err, -sres, "fdatasync of the log");
		if (sres == 0)
			(*ret_syncs)++;
	}
	return 0;
}

#ifdef CONFIG_CORRAL_IO_URING
/* Waits for a submitted write and sync; finishes a short write synchronously. */
static int reap_write_sync(struct cr_log *log, int fd, const uint8_t *buf, size_t len, uint64_t off,
			   unsigned *ret_syncs, struct cr_error *err)
{
	int wres, sres;
	*ret_syncs = 0;
	int r = wait_write_sync(log, &wres, &sres, err);
	if (r < 0)
		return r;
	if (wres < 0)
		return cr_error_errno(err, -wres, "write %zu bytes to the log at offset %llu", len,
				      (unsigned long long)off);
	if ((size_t)wres == len) {
		if (sres < 0)
			return cr_error_errno(err, -sres, "fdatasync of the log");
		*ret_syncs = 1;
		return 0;
	}
	/* short write: the linked sync was cancelled; the rest goes the slow way */
	return write_sync(log, true, fd, buf + wres, len - (size_t)wres, off + (uint64_t)wres,
			  ret_syncs, err);
}
#endif

static void complete(struct req *r)
{
	struct cr_log_appended ev = { .seq = r->seq, .time_ns = r->time_ns, .epoch = r->epoch };
	if (r->result == 0 && (r->kind == REQ_EVENT || r->kind == REQ_ACQUIRE))
		cr_id_format("sevt_", r->event_id, ev.id, sizeof(ev.id));
	if (r->done)
		r->done(r->arg, r->result, r->result == 0 ? &ev : NULL, &r->err);
	free(r->payload);
	free(r);
}

/* 16 random bytes for an event id, from a pool refilled by one getrandom() per 256 ids. */
static int draw_id(struct cr_log *log, uint8_t out[CR_ID_RAW], struct cr_error *err)
{
	if (log->rand_used + CR_ID_RAW > sizeof(log->rand_pool)) {
		for (size_t got = 0; got < sizeof(log->rand_pool);) {
			ssize_t n =
				getrandom(log->rand_pool + got, sizeof(log->rand_pool) - got, 0);
			if (n < 0 && errno != EINTR)
				return cr_error_errno(err, errno, "getrandom");
			if (n > 0)
				got += (size_t)n;
		}
		log->rand_used = 0;
	}
	memcpy(out, log->rand_pool + log->rand_used, CR_ID_RAW);
	explicit_bzero(log->rand_pool + log->rand_used, CR_ID_RAW); /* used once */
	log->rand_used += CR_ID_RAW;
	return 0;
}

/* Checks r against the session state and assigns what it gets; log->lock held. */
static int assign(struct cr_log *log, struct req *r)
{
	struct session *s;
	r->time_ns = now_ns(CLOCK_REALTIME);
	if (r->kind == REQ_CREATE) {
		s = session_get_or_add(log, r->session, strlen(r->session));
		if (!s)
			return cr_error_errno(&r->err, ENOMEM, "create session %s", r->session);
		if (s->durable || s->creating)
			return cr_error_set(&r->err, EEXIST, "session %s exists", r->session);
		s->creating = true;
		r->s = s;
		return 0;
	}
	s = find_durable(log, r->session, &r->err);
	if (!s)
		return -ENOENT;
	r->s = s;
	/* everything that can fail comes before the first change of state */
	if (r->kind != REQ_MARK && !r->given_id && draw_id(log, r->event_id, &r->err) < 0)
		return -r->err.code;
	if (r->kind == REQ_ACQUIRE) {
		char payload[64];
		int n = snprintf(payload, sizeof(payload), "{\"epoch\":%llu}",
				 (unsigned long long)(s->epoch + 1));
		r->payload = strndup(payload, (size_t)n);
		if (!r->payload)
			return cr_error_errno(&r->err, ENOMEM, "lease");
		r->payload_len = (size_t)n;
	}
	r->undo_epoch = s->epoch;
	r->undo_next_seq = s->next_seq;
	if (r->kind == REQ_ACQUIRE) {
		s->epoch++;
		r->epoch = s->epoch;
	} else if (r->epoch != s->epoch) {
		return cr_error_set(
			&r->err, ESTALE,
			"conflict: session %s: epoch %llu is not the current one (%llu)", s->id,
			(unsigned long long)r->epoch, (unsigned long long)s->epoch);
	}
	if (r->kind == REQ_MARK) {
		if (r->seq == 0 || r->seq > s->durable_seq ||
		    s->locs[r->seq - 1].state != LOC_PENDING)
			return cr_error_set(&r->err, EINVAL,
					    "session %s: event %llu is not pending", s->id,
					    (unsigned long long)r->seq);
		s->locs[r->seq - 1].state = LOC_MARKING;
		return 0;
	}
	if (r->expected_seq != CR_LOG_ANY_SEQ && r->expected_seq != s->next_seq)
		return cr_error_set(&r->err, ESTALE,
				    "conflict: session %s: expected seq %llu, but the next is %llu",
				    s->id, (unsigned long long)r->expected_seq,
				    (unsigned long long)s->next_seq);
	r->seq = s->next_seq++;
	return 0;
}

/* Reverses assign() for a request of a batch that failed; log->lock held. Every request
 * assigned after r in the batch is undone too, in any order: a session's epoch and next
 * sequence go back to the lowest any of them saw (with the last one's values alone, a session
 * with two events in a failed batch would skip a sequence number). */
static void undo(struct req *r)
{
	struct session *s = r->s;
	switch (r->kind) {
	case REQ_CREATE:
		s->creating = false;
		break;
	case REQ_MARK:
		s->locs[r->seq - 1].state = LOC_PENDING;
		break;
	case REQ_EVENT:
	case REQ_ACQUIRE:
		if (r->undo_epoch < s->epoch)
			s->epoch = r->undo_epoch;
		if (r->undo_next_seq < s->next_seq)
			s->next_seq = r->undo_next_seq;
		break;
	}
}

/* Wakes the followers of session s that have something to see (a kick: s given, all of its
 * own), or with s NULL those whose session has an event after theirs, or all once the log is
 * closed. Called with log->lock held. */
static void wake_followers(struct cr_log *log, const struct session *s)
{
	for (struct follower *f = log->followers; f; f = f->next)
		if (s ? f->s == s : log->closed || f->s->durable_seq > f->after) {
			pthread_cond_signal(&f->cond);
			log->stats.follower_wakes++;
		}
}

static void frame_of(const struct req *r, struct log_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->session = r->session;
	f->session_len = strlen(r->session);
	f->time_ns = r->time_ns;
	switch (r->kind) {
	case REQ_CREATE:
		f->kind = LOG_CREATE;
		break;
	case REQ_MARK:
		f->kind = LOG_MARK;
		f->seq = r->seq;
		f->epoch = r->epoch;
		break;
	case REQ_EVENT:
	case REQ_ACQUIRE:
		f->kind = LOG_EVENT;
		f->flags = (r->flags & CR_LOG_PENDING) ? LOG_FLAG_PENDING : 0;
		f->seq = r->seq;
		f->epoch = r->epoch;
		memcpy(f->event_id, r->event_id, sizeof(f->event_id));
		f->type = r->kind == REQ_ACQUIRE ? "lease.acquired" : r->type;
		f->type_len = strlen(f->type);
		f->payload = r->payload;
		f->payload_len = r->payload_len;
		break;
	}
}

static int buf_reserve(struct cr_log *log, size_t need)
{
	if (need <= log->buf_cap)
		return 0;
	size_t cap = log->buf_cap ? log->buf_cap : 1 << 16;
	while (cap < need)
		cap *= 2;
	uint8_t *b = realloc(log->buf, cap);
	if (!b)
		return -ENOMEM;
	log->buf = b;
	log->buf_cap = cap;
	return 0;
}

static void catalog_note(struct cr_log *log, struct session *s)
{
	struct catalog_session cs = { .id = s->id,
				      .created_ns = s->created_ns,
				      .epoch = s->durable_epoch,
				      .last_seq = s->durable_seq };
	/* The catalog is a mirror: on failure it is repaired at the next open. */
	pthread_mutex_lock(&log->catalog_lock);
	catalog_put(log->catalog, &cs, NULL);
	pthread_mutex_unlock(&log->catalog_lock);
}

/* Writes one batch: requests in order; completes each. */
/* A batch from its submission to its completion. */
struct batch {
	struct req *reqs;
	bool ring; /* written on the io_uring (by the writer thread), else with system calls */
	size_t used;
	uint32_t nframes;
	bool submitted;
	uint64_t start_ns; /* when its write was submitted */
	int fd;
	uint64_t off;
	int r;
	struct cr_error err;
};

/* fsyncgate: after a failed write or sync the page cache can no longer be trusted to match the
 * disk, so nothing more is written until the log is reopened. */
static void poison(struct cr_log *log, const struct cr_error *why)
{
	pthread_mutex_lock(&log->lock);
	log->failed = EIO;
	log->fail_err = *why;
	cr_error_prefix(&log->fail_err,
			"the log failed earlier and refuses appends until reopened");
	pthread_mutex_unlock(&log->lock);
}

/* Checks and numbers the batch's requests, encodes them and submits the write. */
#define GROUP_REFUSED "not written: another event of its group was refused: "

/* Member bad of the group that starts at first was refused: the group is written not at all.
 * The members before it were assigned and are undone; they and the rest fail with its error. */
static void fail_group(struct req *first, struct req *bad)
{
	bool assigned = true;
	for (struct req *q = first;; q = q->next) {
		if (q == bad) {
			assigned = false;
		} else {
			if (assigned)
				undo(q);
			q->result = bad->result;
			cr_error_set(&q->err, bad->err.code, GROUP_REFUSED "%s", bad->err.msg);
		}
		if (!q->linked)
			break;
	}
}

static void start_batch(struct cr_log *log, struct batch *b)
{
	size_t used = BATCH_HEADER_SIZE;
	uint32_t nframes = 0;

	pthread_mutex_lock(&log->lock);
	int failed = log->failed;
	struct req *group = NULL; /* the first request of the group r is in */
	size_t group_used = used;
	uint32_t group_frames = 0;
	for (struct req *r = b->reqs; r; r = r->next) {
		if (!group) {
			group = r;
			group_used = used;
			group_frames = nframes;
		}
		bool last = !r->linked;
		if (failed) {
			r->result = -failed;
			r->err = log->fail_err;
		} else if ((r->result = assign(log, r)) == 0) {
			struct log_frame f;
			frame_of(r, &f);
			r->frame_size = (uint32_t)log_frame_size(&f);
			r->batch_off = used;
			used += r->frame_size;
			nframes++;
		} else if (group != r || !last) {
			fail_group(group, r);
			used = group_used;
			nframes = group_frames;
			while (r->linked)
				r = r->next;
			last = true;
		}
		if (last)
			group = NULL;
	}
	pthread_mutex_unlock(&log->lock);
	b->used = used;
	b->nframes = nframes;
	if (!nframes)
		return;

	if (buf_reserve(log, used) < 0) {
		b->r = cr_error_errno(&b->err, ENOMEM, "log write buffer");
		return;
	}
	struct log_frame f = { .kind = LOG_BATCH,
			       .batch_no = log->next_batch,
			       .batch_bytes = (uint32_t)(used - BATCH_HEADER_SIZE),
			       .batch_frames = nframes };
	log_frame_encode(&f, log->buf);
	for (struct req *q = b->reqs; q; q = q->next) {
		if (q->result < 0)
			continue;
		frame_of(q, &f);
		log_frame_encode(&f, log->buf + q->batch_off);
	}
	if (!log->nsegs || log->cur_off + used > log->cur_size) {
		b->r = rotate(log, used, &b->err);
		if (b->r == -EIO)
			poison(log, &b->err); /* an I/O error on the log's disk: no more writes */
		if (b->r < 0)
			return;
	}
	b->fd = log->segs[log->nsegs - 1].fd;
	b->off = log->cur_off;
	b->start_ns = now_ns(CLOCK_MONOTONIC);
#ifdef CONFIG_CORRAL_IO_URING
	if (b->ring)
		b->r = submit_write_sync(log, b->fd, log->buf, used, b->off, &b->err);
#endif
	b->submitted = b->r == 0; /* (without the ring, finish_batch writes it) */
}

/* Waits for the batch to be durable, then publishes it; or fails and undoes it. */
static void finish_batch(struct cr_log *log, struct batch *b)
{
	unsigned syncs = 0;
	if (b->submitted) {
#ifdef CONFIG_CORRAL_IO_URING
		if (b->ring)
			b->r = reap_write_sync(log, b->fd, log->buf, b->used, b->off, &syncs,
					       &b->err);
		else
#endif
			b->r = write_sync(log, false, b->fd, log->buf, b->used, b->off, &syncs,
					  &b->err);
		if (b->r < 0) {
			/* Whatever the kernel said (a loop device over a full file system gives
			 * ENOSPC here), the batch may be partly on disk: that is -EIO, never the
			 * "nothing was written" -ENOSPC of a failed preallocation. */
			b->r = -EIO;
			b->err.code = EIO;
			/* After a failed writeback the page cache keeps the batch as if it were
			 * on disk, and a reopen in this boot would recover events whose appends
			 * failed. Overwrite it there (the write may reach the disk or not). */
			write_zeros(b->fd, b->off, b->off + b->used, NULL);
			poison(log, &b->err);
		}
	}

	pthread_mutex_lock(&log->lock);
	uint32_t seg = log->nsegs ? (uint32_t)(log->nsegs - 1) : 0;
	log->stats.syncs += syncs;
	if (b->submitted && b->r == 0)
		log->stats.write_sync_ns += now_ns(CLOCK_MONOTONIC) - b->start_ns;
	for (struct req *q = b->reqs; q; q = q->next) {
		if (q->result < 0)
			continue;
		if (b->r < 0) {
			q->result = b->r;
			q->err = b->err;
			undo(q);
			continue;
		}
		struct log_frame f;
		frame_of(q, &f);
		f.len = q->frame_size; /* apply() pads it again: same value */
		struct cr_error aerr;
		if (apply(log, &f, seg, b->off + q->batch_off, &aerr) < 0)
			q->err =
				aerr; /* only ENOMEM gets here; the event is durable all the same */
		if (q->kind == REQ_EVENT || q->kind == REQ_ACQUIRE)
			log->stats.appends++;
	}
	if (b->nframes && b->r == 0) {
		log->cur_off += b->used;
		spare_maybe_request(log);
		log->next_batch++;
		log->stats.batches++;
		log->stats.bytes += b->used;
		wake_followers(log, NULL);
	}
	pthread_mutex_unlock(&log->lock);
}

static void waiter_done(void *arg, int result, const struct cr_log_appended *ev,
			const struct cr_error *err);

/* The first half of telling a finished batch's requests their result, done by whoever holds the
 * writer's role: notes new sessions and leases in the catalog (one connection, used by the role's
 * holder only) and runs the asynchronous callbacks. Returns the requests of blocked threads, for
 * wake_blocked(), which needs no role. */
static struct req *run_callbacks(struct cr_log *log, struct req *reqs)
{
	struct req *blocked = NULL, **tail = &blocked;
	for (struct req *q = reqs, *next; q; q = next) {
		next = q->next;
		if (q->result == 0 && (q->kind == REQ_CREATE || q->kind == REQ_ACQUIRE))
			catalog_note(log, q->s);
		if (q->done == waiter_done) {
			*tail = q;
			tail = &q->next;
			continue;
		}
		complete(q);
	}
	*tail = NULL;
	return blocked;
}

static void wake_blocked(struct req *blocked)
{
	for (struct req *q = blocked, *next; q; q = next) {
		next = q->next;
		complete(q);
	}
}

/* The writer thread gives up the writer's role if nothing is queued (see append_inline). */
static void writer_release_if_idle(struct cr_log *log)
{
	pthread_mutex_lock(&log->qlock);
	if (!log->head)
		log->writer_active = false;
	pthread_mutex_unlock(&log->qlock);
}

/* Takes everything queued while the last batch was being written, up to a bound. */
static struct req *take_batch(struct cr_log *log)
{
	pthread_mutex_lock(&log->qlock);
	struct req *first = log->head;
	if (first) {
		struct req *last = first;
		size_t bytes = last->payload_len;
		while (last->next && (bytes < BATCH_MAX_BYTES || last->linked)) { /* groups whole */
			last = last->next;
			bytes += last->payload_len + 128;
		}
		log->head = last->next;
		if (!log->head)
			log->tail = NULL;
		last->next = NULL;
	}
	pthread_mutex_unlock(&log->qlock);
	return first;
}

/* The writer. Batch n+1 is formed only once batch n is durable (so a failure is undone
 * exactly). Between the two, batch n's asynchronous callbacks run first, so that the appends
 * they make at once join batch n+1 rather than wait a whole sync for batch n+2 (closed-loop
 * callers would otherwise settle into two groups taking turns, each waiting two syncs). Threads
 * blocked in cr_log_append are woken only after batch n+1 is submitted: waking dozens of
 * threads costs more CPU than a sync takes, and this way it overlaps the next batch's I/O. When
 * there is no batch n+1 the writer gives up its role before waking them, so that a woken
 * thread's next append finds the log idle and writes itself (append_inline). */
static void *writer_main(void *arg)
{
	struct cr_log *log = arg;
	struct req *done = NULL;
#ifdef CONFIG_CORRAL_IO_URING
	if (log->ring_disabled) {
		/* (liburing 2.3 declares io_uring_enable_rings() but does not export it) */
		int r = (int)syscall(__NR_io_uring_register, log->ring.ring_fd,
				     IORING_REGISTER_ENABLE_RINGS, NULL, 0);
		if (r < 0)
			r = -errno;
		if (r < 0) {
			/* no ring: every batch fails with this error, and open's caller sees it */
			pthread_mutex_lock(&log->lock);
			log->failed = -r;
			cr_error_errno(&log->fail_err, -r, "enable the log writer's io_uring");
			pthread_mutex_unlock(&log->lock);
		}
	}
#endif
	for (;;) {
		pthread_mutex_lock(&log->qlock);
		if (!done)
			log->writer_active = false;
		while (log->inline_active || (!log->head && !log->stopping && !done))
			pthread_cond_wait(&log->work, &log->qlock);
		bool idle = !log->head && !done;
		log->writer_active = !idle;
		pthread_mutex_unlock(&log->qlock);
		if (idle)
			break;
		struct req *blocked = done ? run_callbacks(log, done) : NULL;
		struct batch b = { .reqs = take_batch(log), .ring = true };
		if (b.reqs)
			start_batch(log, &b);
		else if (blocked)
			writer_release_if_idle(log);
		wake_blocked(blocked);
		done = NULL;
		if (b.reqs) {
			finish_batch(log, &b);
			done = b.reqs;
		}
	}
	return NULL;
}

/* Queues r and the requests linked after it through next (a group), in one go. */
static int enqueue(struct cr_log *log, struct req *r, struct cr_error *err)
{
	struct req *last = r;
	while (last->next)
		last = last->next;
	pthread_mutex_lock(&log->qlock);
	if (log->stopping) {
		pthread_mutex_unlock(&log->qlock);
		for (struct req *next; r; r = next) {
			next = r->next;
			free(r->payload);
			free(r);
		}
		return cr_error_set(err, ESHUTDOWN, "the log is closing");
	}
	if (log->tail)
		log->tail->next = r;
	else
		log->head = r;
	log->tail = last;
	pthread_cond_signal(&log->work);
	pthread_mutex_unlock(&log->qlock);
	return 0;
}

/* --- blocking calls ------------------------------------------------------------------------ */

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	int result;
	struct cr_error err;
	struct cr_log_appended ev;
};

static void waiter_done(void *arg, int result, const struct cr_log_appended *ev,
			const struct cr_error *err)
{
	struct waiter *w = arg;
	pthread_mutex_lock(&w->m);
	w->result = result;
	if (ev)
		w->ev = *ev;
	if (result < 0 && err)
		w->err = *err;
	w->done = true;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

/* Blocks until waiter_done() has run for w; its result, ev into ret, error into err. */
static int waiter_wait(struct waiter *w, struct cr_log_appended *ret, struct cr_error *err)
{
	pthread_mutex_lock(&w->m);
	while (!w->done)
		pthread_cond_wait(&w->c, &w->m);
	pthread_mutex_unlock(&w->m);
	pthread_mutex_destroy(&w->m);
	pthread_cond_destroy(&w->c);
	if (w->result < 0) {
		if (err)
			*err = w->err;
		return w->result;
	}
	if (ret)
		*ret = w->ev;
	return 0;
}

/* A blocking call that finds the log idle (nothing queued, no batch in hand) writes its request
 * itself, as a batch of one, with write and fdatasync system calls: handing it to the writer
 * thread would cost two thread wake-ups and the io_uring worker's one for the sync, together
 * as long as a fast disk's sync. Whatever arrives meanwhile queues for the writer thread, which
 * waits for this batch to be durable before it forms the next. r may be a group (linked
 * through next). Returns false when the log is not idle; the caller then queues r. */
static bool append_inline(struct cr_log *log, struct req *r, const struct cr_log_placed *placed)
{
	pthread_mutex_lock(&log->qlock);
	bool mine = !log->stopping && !log->head && !log->writer_active && !log->inline_active;
	if (mine)
		log->inline_active = true;
	pthread_mutex_unlock(&log->qlock);
	if (!mine)
		return false;
	if (placed && placed->fn)
		placed->fn(placed->arg);
	struct batch b = { .reqs = r, .ring = false };
	start_batch(log, &b);
	finish_batch(log, &b);
	struct req *blocked = run_callbacks(log, r);
	pthread_mutex_lock(&log->qlock);
	log->inline_active = false;
	pthread_cond_broadcast(&log->work); /* the writer thread may be waiting for the role */
	pthread_mutex_unlock(&log->qlock);
	wake_blocked(blocked);
	return true;
}

static int submit_and_wait(struct cr_log *log, struct req *r, struct cr_log_appended *ret,
			   struct cr_error *err)
{
	struct waiter w = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };
	r->done = waiter_done;
	r->arg = &w;
	if (!append_inline(log, r, NULL)) {
		int res = enqueue(log, r, err);
		if (res < 0)
			return res;
	}
	return waiter_wait(&w, ret, err);
}

static bool valid_chars(const char *s, const char *extra, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr(extra, c)))
			return false;
		if (n + 1 >= max)
			return false;
	}
	return n > 0;
}

static bool valid_session_id(const char *id)
{
	return id && valid_chars(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", CR_LOG_ID_MAX);
}

static struct req *new_req(enum req_kind kind, const char *session)
{
	struct req *r = calloc(1, sizeof(*r));
	if (r) {
		r->kind = kind;
		snprintf(r->session, sizeof(r->session), "%s", session);
	}
	return r;
}

/* Checks an append and makes its request (done and arg still unset). */
static int event_req(struct cr_log *log, const struct cr_log_append *a, struct req **ret,
		     struct cr_error *err)
{
	if (!valid_session_id(a->session))
		return cr_error_set(err, EINVAL, "invalid session id");
	if (!a->type || !valid_chars(a->type, "_.", CR_LOG_TYPE_MAX))
		return cr_error_set(err, EINVAL,
				    "invalid event type \"%s\": want 1 to 63 of [a-z0-9_.]",
				    a->type ? a->type : "(null)");
	if (a->flags & ~CR_LOG_PENDING)
		return cr_error_set(err, EINVAL, "unknown append flags 0x%x", a->flags);
	if (!a->payload)
		return cr_error_set(err, EINVAL, "event %s: no payload", a->type);
	if (a->payload_len > log->opts.max_payload)
		return cr_error_set(err, E2BIG,
				    "event %s: payload of %zu bytes is above the %zu "
				    "byte bound",
				    a->type, a->payload_len, log->opts.max_payload);
	int kind = cr_json_check(a->payload, a->payload_len, err);
	if (kind < 0)
		return cr_error_prefix(err, "event %s: payload is not valid JSON", a->type);
	if (kind != CR_JSON_OBJECT)
		return cr_error_set(err, EINVAL, "event %s: payload is not a JSON object", a->type);
	uint8_t id[CR_ID_RAW];
	bool given_id = a->id && a->id[0];
	if (given_id && cr_id_parse("sevt_", a->id, id) < 0)
		return cr_error_set(err, EINVAL, "event %s: \"%.64s\" is not an event id", a->type,
				    a->id);

	struct req *r = new_req(REQ_EVENT, a->session);
	if (!r || !(r->payload = malloc(a->payload_len + 1))) {
		free(r);
		return cr_error_errno(err, ENOMEM, "append");
	}
	memcpy(r->payload, a->payload, a->payload_len);
	r->payload[a->payload_len] = '\0';
	r->payload_len = a->payload_len;
	snprintf(r->type, sizeof(r->type), "%s", a->type);
	r->epoch = a->epoch;
	r->expected_seq = a->expected_seq;
	r->flags = a->flags;
	if (given_id) {
		memcpy(r->event_id, id, sizeof(id));
		r->given_id = true;
	}
	*ret = r;
	return 0;
}

int cr_log_append_async(struct cr_log *log, const struct cr_log_append *a, cr_log_done_fn done,
			void *arg, struct cr_error *err)
{
	struct req *r;
	int res = event_req(log, a, &r, err);
	if (res < 0)
		return res;
	r->done = done;
	r->arg = arg;
	return enqueue(log, r, err);
}

int cr_log_append(struct cr_log *log, const struct cr_log_append *a, struct cr_log_appended *ret,
		  struct cr_error *err)
{
	struct req *r;
	int res = event_req(log, a, &r, err);
	return res < 0 ? res : submit_and_wait(log, r, ret, err);
}

int cr_log_append_all(struct cr_log *log, const struct cr_log_append *a, size_t n,
		      struct cr_log_appended *ret, struct cr_error *err)
{
	return cr_log_append_all_placed(log, a, n, NULL, ret, err);
}

int cr_log_append_all_placed(struct cr_log *log, const struct cr_log_append *a, size_t n,
			     const struct cr_log_placed *placed, struct cr_log_appended *ret,
			     struct cr_error *err)
{
	if (n == 0 || n > CR_LOG_GROUP_MAX)
		return cr_error_set(err, EINVAL, "a group of %zu appends: want 1 to %d", n,
				    CR_LOG_GROUP_MAX);
	struct req *reqs[CR_LOG_GROUP_MAX] = { 0 }; /* (gcc cannot tell n > 0) */
	struct waiter w[CR_LOG_GROUP_MAX];
	for (size_t i = 0; i < n; i++) {
		int r = event_req(log, &a[i], &reqs[i], err);
		if (r < 0) {
			cr_error_prefix(err, "append %zu of the group", i + 1);
			while (i-- > 0) {
				free(reqs[i]->payload);
				free(reqs[i]);
			}
			return r;
		}
	}
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct waiter){ .m = PTHREAD_MUTEX_INITIALIZER,
					.c = PTHREAD_COND_INITIALIZER };
		reqs[i]->done = waiter_done;
		reqs[i]->arg = &w[i];
		reqs[i]->linked = i + 1 < n;
		reqs[i]->next = i + 1 < n ? reqs[i + 1] : NULL;
	}
	if (!append_inline(log, reqs[0], placed)) {
		int r = enqueue(log, reqs[0], err);
		if (r < 0)
			return r;
		if (placed && placed->fn)
			placed->fn(placed->arg);
	}
	/* every member has the group's outcome; the error told is the refused member's own */
	int res = 0;
	for (size_t i = 0; i < n; i++) {
		struct cr_error e;
		int r = waiter_wait(&w[i], ret ? &ret[i] : NULL, &e);
		if (r < 0 &&
		    (res == 0 || strncmp(e.msg, GROUP_REFUSED, strlen(GROUP_REFUSED)) != 0)) {
			res = r;
			if (err)
				*err = e;
		}
	}
	return res;
}

int cr_log_session_create(struct cr_log *log, const char *id, char ret_id[CR_LOG_ID_MAX],
			  struct cr_error *err)
{
	char fresh[CR_LOG_ID_MAX];
	if (!id) {
		uint8_t raw[CR_ID_RAW];
		int r = cr_id_random(raw, err);
		if (r < 0)
			return r;
		cr_id_format("sesn_", raw, fresh, sizeof(fresh));
		id = fresh;
	} else if (!valid_session_id(id)) {
		return cr_error_set(err, EINVAL,
				    "invalid session id: want 1 to 63 of [A-Za-z0-9_-]");
	}
	struct req *r = new_req(REQ_CREATE, id);
	if (!r)
		return cr_error_errno(err, ENOMEM, "create session");
	int res = submit_and_wait(log, r, NULL, err);
	if (res == 0 && ret_id)
		snprintf(ret_id, CR_LOG_ID_MAX, "%s", id);
	return res;
}

int cr_log_acquire(struct cr_log *log, const char *session, uint64_t *ret_epoch,
		   struct cr_error *err)
{
	if (!valid_session_id(session))
		return cr_error_set(err, EINVAL, "invalid session id");
	struct req *r = new_req(REQ_ACQUIRE, session);
	if (!r)
		return cr_error_errno(err, ENOMEM, "acquire");
	struct cr_log_appended ev;
	int res = submit_and_wait(log, r, &ev, err);
	/* the epoch this lease event was written under, not a later look at the session: another
	 * worker may have taken the lease again since */
	if (res == 0 && ret_epoch)
		*ret_epoch = ev.epoch;
	return res;
}

int cr_log_mark_processed(struct cr_log *log, const char *session, uint64_t epoch, uint64_t seq,
			  struct cr_error *err)
{
	if (!valid_session_id(session))
		return cr_error_set(err, EINVAL, "invalid session id");
	struct req *r = new_req(REQ_MARK, session);
	if (!r)
		return cr_error_errno(err, ENOMEM, "mark");
	r->epoch = epoch;
	r->seq = seq;
	return submit_and_wait(log, r, NULL, err);
}

/* --- reads --------------------------------------------------------------------------------- */

static void info_of(const struct session *s, struct cr_log_session_info *ret)
{
	snprintf(ret->id, sizeof(ret->id), "%s", s->id);
	ret->created_ns = s->created_ns;
	ret->epoch = s->durable_epoch;
	ret->last_seq = s->durable_seq;
	ret->pending = s->npending;
}

int cr_log_session_info(struct cr_log *log, const char *id, struct cr_log_session_info *ret,
			struct cr_error *err)
{
	pthread_mutex_lock(&log->lock);
	struct session *s = find_durable(log, id, err);
	if (s)
		info_of(s, ret);
	pthread_mutex_unlock(&log->lock);
	return s ? 0 : -ENOENT;
}

int cr_log_list_sessions(struct cr_log *log, struct cr_log_session_info **ret, size_t *ret_n,
			 struct cr_error *err)
{
	pthread_mutex_lock(&log->lock);
	struct cr_log_session_info *out = calloc(log->order_len ? log->order_len : 1, sizeof(*out));
	size_t n = 0;
	if (out)
		for (size_t i = 0; i < log->order_len; i++)
			if (log->order[i]->durable)
				info_of(log->order[i], &out[n++]);
	pthread_mutex_unlock(&log->lock);
	if (!out)
		return cr_error_errno(err, ENOMEM, "list sessions");
	*ret = out;
	*ret_n = n;
	return 0;
}

struct read_loc {
	struct loc loc;
	int fd;
	uint64_t segno;
	uint64_t seq;
};

/* Reads of neighbouring frames are merged into one pread of at most this many bytes, when at
 * least half of what it reads is wanted: a session's replay costs a few syscalls, not one per
 * event (its events sit close together in a segment unless many sessions interleave). */
#define READ_WINDOW_MAX (1u << 20)

/* How many locs from i on one read can cover; *ret_len the bytes it reads. */
static size_t read_run(const struct read_loc *locs, size_t n, size_t i, size_t *ret_len)
{
	const struct read_loc *first = &locs[i];
	size_t used = first->loc.len, j = i + 1;
	for (; j < n; j++) {
		const struct read_loc *l = &locs[j], *prev = &locs[j - 1];
		if (l->fd != first->fd || l->loc.off < prev->loc.off + prev->loc.len)
			break;
		uint64_t span = l->loc.off + l->loc.len - first->loc.off;
		if (span > READ_WINDOW_MAX || (used + l->loc.len) * 2 < span)
			break;
		used += l->loc.len;
	}
	const struct read_loc *last = &locs[j - 1];
	*ret_len = (size_t)(last->loc.off + last->loc.len - first->loc.off);
	return j - i;
}

static int read_events(struct cr_log *log, const struct read_loc *locs, size_t n,
		       struct cr_log_event **ret, size_t *ret_n, struct cr_error *err)
{
	struct cr_log_event *ev = calloc(n ? n : 1, sizeof(*ev));
	uint8_t *buf = NULL;
	size_t buf_cap = 0;
	if (!ev)
		return cr_error_errno(err, ENOMEM, "read events");
	int r = 0;
	size_t i = 0;
	while (i < n && r == 0) {
		size_t len, k = read_run(locs, n, i, &len);
		if (len > buf_cap) {
			uint8_t *b = realloc(buf, len);
			if (!b) {
				r = cr_error_errno(err, ENOMEM, "read events");
				break;
			}
			buf = b;
			buf_cap = len;
		}
		ssize_t got;
		do
			got = pread(locs[i].fd, buf, len, (off_t)locs[i].loc.off);
		while (got < 0 && errno == EINTR);
		for (size_t end = i + k; i < end; i++) {
			const struct read_loc *l = &locs[i];
			size_t at = (size_t)(l->loc.off - locs[end - k].loc.off);
			struct log_frame f;
			if (got != (ssize_t)len ||
			    log_frame_decode(buf + at, l->loc.len, &f) != 1 ||
			    f.kind != LOG_EVENT || f.seq != l->seq) {
				r = cr_error_set(err, EIO, "log %s: segment %08llu offset %llu: %s",
						 log->dir, (unsigned long long)l->segno,
						 (unsigned long long)l->loc.off,
						 got < 0 ? strerror(errno)
							 : "frame no longer valid");
				break;
			}
			struct cr_log_event *e = &ev[i];
			e->seq = f.seq;
			e->epoch = f.epoch;
			e->time_ns = f.time_ns;
			e->processed_ns = l->loc.processed_ns;
			cr_id_format("sevt_", f.event_id, e->id, sizeof(e->id));
			snprintf(e->type, sizeof(e->type), "%.*s", (int)f.type_len, f.type);
			e->payload = strndup(f.payload, f.payload_len);
			if (!e->payload) {
				r = cr_error_errno(err, ENOMEM, "read events");
				break;
			}
			e->payload_len = f.payload_len;
		}
	}
	free(buf);
	if (r < 0) {
		cr_log_events_free(ev, i);
		return r;
	}
	*ret = ev;
	*ret_n = n;
	return 0;
}

static struct read_loc *collect(struct cr_log *log, struct session *s, const uint64_t *seqs,
				uint64_t from, size_t n)
{
	struct read_loc *out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = seqs ? seqs[i] : from + i;
		out[i].loc = s->locs[seq - 1];
		out[i].seq = seq;
		out[i].fd = log->segs[out[i].loc.seg].fd;
		out[i].segno = log->segs[out[i].loc.seg].segno;
	}
	return out;
}

int cr_log_get_events(struct cr_log *log, const char *session, uint64_t after_seq, size_t limit,
		      struct cr_log_event **ret, size_t *ret_n, struct cr_error *err)
{
	pthread_mutex_lock(&log->lock);
	struct session *s = find_durable(log, session, err);
	if (!s) {
		pthread_mutex_unlock(&log->lock);
		return -ENOENT;
	}
	size_t n = after_seq >= s->durable_seq ? 0 : (size_t)(s->durable_seq - after_seq);
	if (limit && n > limit)
		n = limit;
	struct read_loc *locs = collect(log, s, NULL, after_seq + 1, n);
	pthread_mutex_unlock(&log->lock);
	if (!locs)
		return cr_error_errno(err, ENOMEM, "read events");
	int r = read_events(log, locs, n, ret, ret_n, err);
	free(locs);
	return r;
}

int cr_log_get_pending(struct cr_log *log, const char *session, struct cr_log_event **ret,
		       size_t *ret_n, struct cr_error *err)
{
	pthread_mutex_lock(&log->lock);
	struct session *s = find_durable(log, session, err);
	if (!s) {
		pthread_mutex_unlock(&log->lock);
		return -ENOENT;
	}
	struct read_loc *locs = collect(log, s, s->pending, 0, s->npending);
	size_t n = s->npending;
	pthread_mutex_unlock(&log->lock);
	if (!locs)
		return cr_error_errno(err, ENOMEM, "read pending events");
	int r = read_events(log, locs, n, ret, ret_n, err);
	free(locs);
	return r;
}

void cr_log_events_free(struct cr_log_event *events, size_t n)
{
	if (!events)
		return;
	for (size_t i = 0; i < n; i++)
		free(events[i].payload);
	free(events);
}

struct cr_log_event *cr_log_events_dup(const struct cr_log_event *events, size_t n)
{
	struct cr_log_event *v = n ? calloc(n, sizeof(*v)) : NULL;
	for (size_t i = 0; v && i < n; i++) {
		v[i] = events[i];
		v[i].payload = strndup(events[i].payload, events[i].payload_len);
		if (!v[i].payload) {
			cr_log_events_free(v, i);
			v = NULL;
		}
	}
	return v;
}

int cr_log_wait(struct cr_log *log, const char *session, uint64_t after_seq, int timeout_ms,
		uint64_t *ret_last_seq, struct cr_error *err)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	int r = 0;
	struct follower f = { .after = after_seq };
	pthread_cond_init(&f.cond, NULL);
	pthread_mutex_lock(&log->lock);
	struct session *s0 = find_durable(log, session, NULL);
	uint64_t kicks = s0 ? s0->kicks : 0;
	for (;;) {
		struct session *s = find_durable(log, session, err);
		if (!s) {
			r = -ENOENT;
			break;
		}
		if (s->durable_seq > after_seq || s->kicks != kicks) {
			if (ret_last_seq)
				*ret_last_seq = s->durable_seq;
			break;
		}
		if (log->closed) {
			r = cr_error_set(err, ESHUTDOWN, "the log is closing");
			break;
		}
		if (!f.s) {
			f.s = s;
			f.next = log->followers;
			if (f.next)
				f.next->prev = &f;
			log->followers = &f;
			log->stats.followers++;
		}
		int w = timeout_ms < 0 ? pthread_cond_wait(&f.cond, &log->lock)
				       : pthread_cond_timedwait(&f.cond, &log->lock, &deadline);
		if (w == ETIMEDOUT) {
			r = cr_error_set(err, ETIMEDOUT, "no event after seq %llu in %d ms",
					 (unsigned long long)after_seq, timeout_ms);
			break;
		}
	}
	if (f.s) {
		if (f.prev)
			f.prev->next = f.next;
		else
			log->followers = f.next;
		if (f.next)
			f.next->prev = f.prev;
		log->stats.followers--;
	}
	pthread_mutex_unlock(&log->lock);
	pthread_cond_destroy(&f.cond);
	return r;
}

void cr_log_kick(struct cr_log *log, const char *session)
{
	pthread_mutex_lock(&log->lock);
	struct session *s = find_durable(log, session, NULL);
	if (s) {
		s->kicks++;
		wake_followers(log, s);
	}
	pthread_mutex_unlock(&log->lock);
}

/* --- the catalog's sandboxes --------------------------------------------------------------- */

static bool sandbox_row_valid(const struct cr_log_sandbox *sb, struct cr_error *err)
{
	if (!sb->id[0] || !sb->session[0]) {
		cr_error_set(err, EINVAL, "catalog: a sandbox needs an id and a session");
		return false;
	}
	if (!memchr(sb->id, 0, sizeof(sb->id)) || !memchr(sb->session, 0, sizeof(sb->session)) ||
	    !memchr(sb->address, 0, sizeof(sb->address))) {
		cr_error_set(err, EINVAL, "catalog: a sandbox field is not terminated");
		return false;
	}
	return true;
}

int cr_log_sandbox_note(struct cr_log *log, const struct cr_log_sandbox *sb, struct cr_error *err)
{
	if (!sandbox_row_valid(sb, err))
		return -EINVAL;
	pthread_mutex_lock(&log->catalog_lock);
	int r = catalog_sandbox_put(log->catalog, sb, err);
	pthread_mutex_unlock(&log->catalog_lock);
	return r;
}

int cr_log_sandbox_forget(struct cr_log *log, const char *id, struct cr_error *err)
{
	pthread_mutex_lock(&log->catalog_lock);
	int r = catalog_sandbox_delete(log->catalog, id, err);
	pthread_mutex_unlock(&log->catalog_lock);
	return r;
}

int cr_log_sandbox_by_address(struct cr_log *log, const char *address, struct cr_log_sandbox *ret,
			      struct cr_error *err)
{
	struct cr_log_sandbox *v = NULL;
	size_t n = 0;
	pthread_mutex_lock(&log->catalog_lock);
	int r = catalog_sandboxes(log->catalog, address, &v, &n, err);
	pthread_mutex_unlock(&log->catalog_lock);
	if (r == 0 && n == 0)
		r = cr_error_set(err, ENOENT, "catalog: no sandbox has address %s", address);
	if (r == 0)
		*ret = v[0]; /* (the address is UNIQUE: at most one) */
	free(v);
	return r;
}

int cr_log_list_sandboxes(struct cr_log *log, struct cr_log_sandbox **ret, size_t *ret_n,
			  struct cr_error *err)
{
	pthread_mutex_lock(&log->catalog_lock);
	int r = catalog_sandboxes(log->catalog, NULL, ret, ret_n, err);
	pthread_mutex_unlock(&log->catalog_lock);
	return r;
}

int cr_log_sandboxes_reset(struct cr_log *log, const struct cr_log_sandbox *v, size_t n,
			   struct cr_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (!sandbox_row_valid(&v[i], err))
			return -EINVAL;
	pthread_mutex_lock(&log->catalog_lock);
	int r = catalog_sandboxes_reset(log->catalog, v, n, err);
	pthread_mutex_unlock(&log->catalog_lock);
	return r;
}

void cr_log_get_stats(struct cr_log *log, struct cr_log_stats *ret)
{
	pthread_mutex_lock(&log->lock);
	*ret = log->stats;
	pthread_mutex_unlock(&log->lock);
}

/* --- open and close ------------------------------------------------------------------------ */

static int open_dir(struct cr_log *log, const char *dir, bool create, struct cr_error *err)
{
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cr_error_errno(err, errno, "create log directory %s", dir);
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0)
		return cr_error_errno(err, errno, "open log directory %s", dir);

	_cleanup_close_ int m = openat(log->dirfd, MARKER_FILE, O_RDONLY | O_CLOEXEC);
	if (m >= 0) {
		char text[64] = "";
		ssize_t n = read(m, text, sizeof(text) - 1);
		if (n < 0 || strncmp(text, MARKER_TEXT, strlen(MARKER_TEXT)) != 0)
			return cr_error_set(err, EINVAL,
					    "%s is not a corral log of a format this "
					    "corral knows (%s/%s)",
					    dir, dir, MARKER_FILE);
		return 0;
	}
	if (errno != ENOENT)
		return cr_error_errno(err, errno, "open %s/%s", dir, MARKER_FILE);

	/* No marker: only an empty directory may become a log. */
	int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return cr_error_errno(err, errno, "read %s", dir);
	}
	bool empty = true;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	if (!empty || !create)
		return cr_error_set(err, EINVAL, "%s is not a corral log (no %s file)%s", dir,
				    MARKER_FILE, empty ? "" : " and is not empty");
	int w = openat(log->dirfd, MARKER_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		       0600);
	if (w < 0)
		return cr_error_errno(err, errno, "create %s/%s", dir, MARKER_FILE);
	ssize_t n = write(w, MARKER_TEXT, strlen(MARKER_TEXT));
	int r = n == (ssize_t)strlen(MARKER_TEXT) && fsync(w) == 0 ? 0 : -1;
	int e = errno;
	close(w);
	if (r < 0 || renameat(log->dirfd, MARKER_FILE ".tmp", log->dirfd, MARKER_FILE) < 0 ||
	    fsync(log->dirfd) < 0)
		return cr_error_errno(err, r < 0 ? (e ? e : EIO) : errno, "create %s/%s", dir,
				      MARKER_FILE);
	return 0;
}

static int take_lock(struct cr_log *log, struct cr_error *err)
{
	log->lockfd = openat(log->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log->lockfd < 0)
		return cr_error_errno(err, errno, "open %s/%s", log->dir, LOCK_FILE);
	if (flock(log->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return cr_error_errno(err, errno, "lock %s/%s", log->dir, LOCK_FILE);
		char pid[32] = "";
		ssize_t n = pread(log->lockfd, pid, sizeof(pid) - 1, 0);
		if (n > 0 && pid[n - 1] == '\n')
			pid[n - 1] = '\0';
		return cr_error_set(err, EBUSY, "log %s is in use by another process%s%s%s",
				    log->dir, n > 0 ? " (pid " : "", n > 0 ? pid : "",
				    n > 0 ? ")" : "");
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(log->lockfd, 0) < 0 || pwrite(log->lockfd, pid, (size_t)n, 0) != n)
		return cr_error_errno(err, errno, "write %s/%s", log->dir, LOCK_FILE);
	return 0;
}

static int repair_catalog(struct cr_log *log, struct cr_error *err)
{
	struct catalog_session *cs = calloc(log->order_len ? log->order_len : 1, sizeof(*cs));
	if (!cs)
		return cr_error_errno(err, ENOMEM, "catalog");
	size_t n = 0;
	for (size_t i = 0; i < log->order_len; i++) {
		struct session *s = log->order[i];
		if (!s->durable)
			continue;
		cs[n++] = (struct catalog_session){ .id = s->id,
						    .created_ns = s->created_ns,
						    .epoch = s->durable_epoch,
						    .last_seq = s->durable_seq };
	}
	int r = catalog_repair(log->catalog, cs, n, err);
	free(cs);
	return r < 0 ? r : 0;
}

static void free_sessions(struct cr_log *log)
{
	for (size_t i = 0; i < log->table_cap; i++) {
		struct session *s = log->table[i];
		if (!s)
			continue;
		free(s->locs);
		free(s->pending);
		free(s);
	}
	free(log->table);
	free(log->order);
}

void cr_log_close(struct cr_log *log)
{
	if (!log)
		return;
	if (log->writer_started) {
		pthread_mutex_lock(&log->qlock);
		log->stopping = true;
		pthread_cond_signal(&log->work);
		pthread_mutex_unlock(&log->qlock);
		pthread_join(log->writer, NULL);
	}
	if (log->spare_started) {
		pthread_mutex_lock(&log->spare_lock);
		atomic_store(&log->spare_stop, true);
		pthread_cond_signal(&log->spare_cond);
		pthread_mutex_unlock(&log->spare_lock);
		pthread_join(log->spare_thread, NULL);
	}
	spare_discard(log);
	pthread_mutex_lock(&log->lock);
	log->closed = true;
	wake_followers(log, NULL);
	pthread_mutex_unlock(&log->lock);
	if (log->catalog) {
		repair_catalog(log, NULL); /* last_seq of every session, in one transaction */
		catalog_close(log->catalog);
	}
#ifdef CONFIG_CORRAL_IO_URING
	if (log->ring_ready)
		io_uring_queue_exit(&log->ring);
#endif
	for (size_t i = 0; i < log->nsegs; i++)
		close(log->segs[i].fd);
	free(log->segs);
	free_sessions(log);
	free(log->buf);
	if (log->lockfd >= 0)
		close(log->lockfd); /* releases the flock */
	if (log->dirfd >= 0)
		close(log->dirfd);
	pthread_mutex_destroy(&log->lock);
	pthread_mutex_destroy(&log->qlock);
	pthread_mutex_destroy(&log->catalog_lock);
	pthread_cond_destroy(&log->work);
	pthread_mutex_destroy(&log->spare_lock);
	pthread_cond_destroy(&log->spare_cond);
	free(log->dir);
	free(log);
}

int cr_log_open(const char *dir, const struct cr_log_options *opts, struct cr_log **ret,
		struct cr_error *err)
{
	struct cr_log *log = calloc(1, sizeof(*log));
	if (!log)
		return cr_error_errno(err, ENOMEM, "open log %s", dir);
	log->dirfd = log->lockfd = log->spare_fd = -1;
	pthread_mutex_init(&log->spare_lock, NULL);
	pthread_cond_init(&log->spare_cond, NULL);
	log->rand_used = sizeof(log->rand_pool); /* empty: the first id fills it */
	pthread_mutex_init(&log->lock, NULL);
	pthread_mutex_init(&log->qlock, NULL);
	pthread_mutex_init(&log->catalog_lock, NULL);
	pthread_cond_init(&log->work, NULL);
	if (opts)
		log->opts = *opts;
	else
		cr_log_options_init(&log->opts);
	if (!log->opts.segment_size)
		log->opts.segment_size = 64u << 20;
	if (!log->opts.max_payload)
		log->opts.max_payload = 1u << 20;
	int r;
	if (log->opts.max_payload > LOG_FRAME_MAX - 4096) {
		r = cr_error_set(err, EINVAL, "max_payload above %u bytes", LOG_FRAME_MAX - 4096);
		goto fail;
	}
	log->dir = strdup(dir);
	if (!log->dir) {
		r = cr_error_errno(err, ENOMEM, "open log %s", dir);
		goto fail;
	}
	if ((r = open_dir(log, dir, log->opts.create, err)) < 0 || (r = take_lock(log, err)) < 0)
		goto fail;
	if ((r = recover(log, err)) < 0)
		goto fail;

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, CATALOG_FILE);
	if ((r = catalog_open(path, &log->catalog, err)) < 0 || (r = repair_catalog(log, err)) < 0)
		goto fail;
#ifdef CONFIG_CORRAL_IO_URING
	/* Completions are run only when the writer waits for them (DEFER_TASKRUN), which saves
	 * an interrupt and a wake-up per completion. That needs a single issuer: the ring starts
	 * disabled and the writer thread enables it, becoming that issuer. Kernels before 6.1
	 * refuse the flags; they get a plain ring. */
	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN |
					      IORING_SETUP_R_DISABLED };
	if ((r = io_uring_queue_init_params(8, &log->ring, &p)) == 0) {
		log->ring_disabled = true;
	} else if ((r = io_uring_queue_init(8, &log->ring, 0)) < 0) {
		r = cr_error_errno(err, -r, "io_uring for the log writer");
		goto fail;
	}
	log->ring_ready = true;
#endif
	if ((r = pthread_create(&log->spare_thread, NULL, spare_main, log)) != 0) {
		r = cr_error_errno(err, r, "start the log's segment preparer");
		goto fail;
	}
	log->spare_started = true;
	spare_maybe_request(log);
	if ((r = pthread_create(&log->writer, NULL, writer_main, log)) != 0) {
		r = cr_error_errno(err, r, "start the log writer");
		goto fail;
	}
	log->writer_started = true;
	*ret = log;
	return 0;
fail:
	cr_log_close(log);
	return r;
}
