/* bench/log: corral bench log, the measuring half. Owns a fresh work directory (removed again
 * on every way out), the appender threads, and the baselines of the same run: SQLite (WAL,
 * synchronous=FULL, one transaction per event) and a plain write+fdatasync per event. Uses the
 * log only through include/corral/log.h; it must never print results (cli/bench.c does) and
 * never exits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench-internal.h"
#include "corral/clock.h"
#include "bench.h"
#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/log.h"

#define EVENT_SIZE 200 /* bytes of JSON payload per timed event */
#define EVENT_TYPE "bench.event"

#define REPLAY_EVENTS 10000
#define REPLAY_PAGE 1000 /* events per cr_log_get_events call */
#define REPLAY_WINDOW 1024 /* async appends in flight while building the session */

#define RECOVERY_EVENT_SIZE (64 * 1024)
#define RECOVERY_BYTES (256ull << 20)
#define RECOVERY_BYTES_QUICK (32ull << 20)
#define RECOVERY_SESSIONS 16
#define RECOVERY_WINDOW 64

#define SQLITE_BUSY_MS 1000 /* each connection's busy timeout; a busy insert is retried */
#define PLAIN_FILE_WRAP (64ull << 20) /* the appending baseline's file starts over here */
#define PLAIN_OVERWRITE_BYTES (16ull << 20) /* the overwriting baseline's file, written once */
#define THREAD_STACK (512 * 1024)
#define TREE_DEPTH_MAX 16
#define MB 1000000.0 /* MB/s means 10^6 bytes per second */

static const char sqlite_schema[] =
	"CREATE TABLE events(id INTEGER PRIMARY KEY, session TEXT NOT NULL, payload TEXT NOT NULL)";
static const char sqlite_insert[] = "INSERT INTO events(session, payload) VALUES(?1, ?2)";

void cr_bench_log_opts_init(struct cr_bench_log_opts *opts)
{
	*opts = (struct cr_bench_log_opts){
		.appenders = CR_BENCH_LOG_APPENDERS_DEFAULT,
		.seconds = CR_BENCH_LOG_SECONDS_DEFAULT,
		.dir = CR_BENCH_LOG_DIR_DEFAULT,
	};
}

/* --- small helpers ------------------------------------------------------------------------- */

/* A JSON object payload of exactly len bytes ({"text":"xxx...x"}); owned by the caller. */
static char *make_payload(size_t len)
{
	static const char head[] = "{\"text\":\"";
	static const char tail[] = "\"}";
	size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;

	if (len < fixed)
		return NULL;
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	memcpy(p, head, sizeof(head) - 1);
	memset(p + sizeof(head) - 1, 'x', len - fixed);
	memcpy(p + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	p[len] = '\0';
	return p;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *fs_name(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53:
		return "ext4";
	case 0x58465342:
		return "xfs";
	case 0x9123683E:
		return "btrfs";
	case 0x01021994:
		return "tmpfs";
	case 0x794C7630:
		return "overlayfs";
	case 0xF2F52010:
		return "f2fs";
	case 0x2FC12FC1:
		return "zfs";
	case 0x6969:
		return "nfs";
	default:
		return "other";
	}
}

static void log_closep(struct cr_log **log)
{
	cr_log_close(*log);
}

/* --- latency samples ----------------------------------------------------------------------- */

struct latency {
	size_t n;
	double p50_us, p99_us, max_us;
};

/* Sorts v (n > 0) and summarizes it. */
static void latency_of(uint64_t *v, size_t n, struct latency *ret)
{
	cr_bench_sort(v, n);
	ret->n = n;
	ret->p50_us = (double)cr_bench_rank(v, n, 50) / 1e3;
	ret->p99_us = (double)cr_bench_rank(v, n, 99) / 1e3;
	ret->max_us = (double)v[n - 1] / 1e3;
}

/* Eviction: every regular file is fsynced and its pages dropped from the page cache, every
 * directory fsynced, so the next open reads from the disk. */
static int evict_file(struct cr_walk *w, int at, const char *name, const struct stat *st,
		      struct cr_error *err)
{
	if (!S_ISREG(st->st_mode))
		return 0;
	_cleanup_close_ int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cr_error_errno(err, errno, "open %s in %s", name, w->top);
	if (fsync(fd) < 0)
		return cr_error_errno(err, errno, "fsync %s in %s", name, w->top);
	int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (e)
		return cr_error_errno(err, e, "posix_fadvise DONTNEED %s in %s", name, w->top);
	w->files++;
	return 0;
}

static int evict_dir(struct cr_walk *w, int at, const char *name, int fd, struct cr_error *err)
{
	(void)at;
	if (fsync(fd) < 0)
		return cr_error_errno(err, errno, "fsync directory %s in %s", name, w->top);
	return 0;
}

/* --- timed runs: N appender threads, one clock ---------------------------------------------- */

struct worker;

/* What a timed run appends with. setup runs on the worker's own thread before the clock
 * starts (sessions are created, connections opened, in parallel); append is one timed append:
 * 0 done, 1 gave up at the deadline (not counted), negative failed. teardown always runs. */
struct workload {
	const char *name;
	void *shared;
	int (*setup)(struct worker *w, struct cr_error *err);
	int (*append)(struct worker *w, struct cr_error *err);
	void (*teardown)(struct worker *w);
	void (*at_start)(void *shared); /* on the main thread, when the clock starts */
};

struct runner {
	const struct workload *load;
	const atomic_bool *cancel;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;
	bool go, abort;
	uint64_t start_ns, deadline_ns;
};

struct worker {
	struct runner *runner;
	unsigned index;
	void *state; /* the workload's, owned by setup/teardown */
	uint64_t deadline_ns;
	struct cr_bench_samples lat;
	uint64_t end_ns; /* when its last append returned */
	uint64_t retries;
	int r;
	struct cr_error err;
	pthread_t thread;
};

struct crew {
	struct worker *w;
	unsigned n;
};

static void crew_free(struct crew *c)
{
	for (unsigned i = 0; c->w && i < c->n; i++)
		cr_bench_samples_done(&c->w[i].lat);
	free(c->w);
}

struct run_result {
	uint64_t appends;
	double seconds; /* from the start to the last append that returned */
	double per_s;
	uint64_t retries;
	struct latency lat;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct runner *run = w->runner;
	const struct workload *load = run->load;

	w->r = load->setup ? load->setup(w, &w->err) : 0;
	pthread_mutex_lock(&run->lock);
	run->ready++;
	if (w->r < 0)
		run->abort = true;
	pthread_cond_broadcast(&run->cond);
	while (!run->go)
		pthread_cond_wait(&run->cond, &run->lock);
	bool go = !run->abort;
	w->deadline_ns = run->deadline_ns;
	pthread_mutex_unlock(&run->lock);

	uint64_t now = cr_now_ns();
	while (go && now < w->deadline_ns && !cr_bench_cancelled(run->cancel)) {
		uint64_t t0 = cr_now_ns(); /* (not now: that would count samples_add's realloc) */
		int r = load->append(w, &w->err);
		now = cr_now_ns();
		if (r < 0) {
			w->r = r;
			break;
		}
		if (r > 0)
			break;
		if (cr_bench_samples_add(&w->lat, now - t0) < 0) {
			w->r = cr_error_set(&w->err, ENOMEM, "%s: no memory for latencies",
					    load->name);
			break;
		}
		w->end_ns = now;
	}
	if (load->teardown)
		load->teardown(w);
	return NULL;
}

/* Runs the workload with n threads for the given time. Its latencies are also appended to keep
 * unless that is NULL. */
static int run_timed(const struct workload *load, unsigned n, double seconds,
		     const atomic_bool *cancel, struct run_result *ret,
		     struct cr_bench_samples *keep, struct cr_error *err)
{
	struct runner run = {
		.load = load,
		.cancel = cancel,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	_cleanup_(crew_free) struct crew crew = { .w = calloc(n, sizeof(struct worker)), .n = n };
	pthread_attr_t attr;
	unsigned started = 0;
	int r = 0, e;

	if (!crew.w)
		return cr_error_set(err, ENOMEM, "%s: no memory for %u appenders", load->name, n);
	e = pthread_attr_init(&attr);
	if (e)
		return cr_error_errno(err, e, "%s: pthread_attr_init", load->name);
	e = pthread_attr_setstacksize(&attr, THREAD_STACK);
	if (e) {
		pthread_attr_destroy(&attr);
		return cr_error_errno(err, e, "%s: pthread_attr_setstacksize", load->name);
	}
	for (; started < n; started++) {
		struct worker *w = &crew.w[started];
		w->runner = &run;
		w->index = started;
		e = pthread_create(&w->thread, &attr, worker_main, w);
		if (e) {
			r = cr_error_errno(err, e, "%s: create appender thread %u of %u",
					   load->name, started + 1, n);
			break;
		}
	}
	pthread_attr_destroy(&attr);

	pthread_mutex_lock(&run.lock);
	while (run.ready < started)
		pthread_cond_wait(&run.cond, &run.lock);
	if (r < 0 || cr_bench_cancelled(cancel))
		run.abort = true;
	if (!run.abort && load->at_start)
		load->at_start(load->shared);
	run.start_ns = cr_now_ns();
	run.deadline_ns = run.start_ns + (uint64_t)(seconds * 1e9);
	run.go = true;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);

	uint64_t end = run.start_ns, appends = 0, retries = 0;
	size_t total = 0;
	for (unsigned i = 0; i < started; i++) {
		struct worker *w = &crew.w[i];
		e = pthread_join(w->thread, NULL);
		if (e && r == 0)
			r = cr_error_errno(err, e, "%s: join appender thread %u", load->name,
					   i + 1);
		if (w->r < 0 && r == 0) {
			if (err)
				*err = w->err;
			r = w->r;
		}
		appends += w->lat.n;
		total += w->lat.n;
		retries += w->retries;
		if (w->end_ns > end)
			end = w->end_ns;
	}
	if (r < 0)
		return r;
	if (cr_bench_cancelled(cancel))
		return cr_bench_cancel_error(err);
	if (appends == 0)
		return cr_error_set(err, ETIMEDOUT, "%s: no append completed in %.3g s", load->name,
				    seconds);

	_cleanup_free_ uint64_t *all = reallocarray(NULL, total, sizeof(uint64_t));
	if (!all)
		return cr_error_set(err, ENOMEM, "%s: no memory for %zu latencies", load->name,
				    total);
	size_t k = 0;
	for (unsigned i = 0; i < started; i++) {
		if (crew.w[i].lat.n == 0) /* an appender that never got through (sqlite: busy) */
			continue;
		memcpy(all + k, crew.w[i].lat.v, crew.w[i].lat.n * sizeof(uint64_t));
		k += crew.w[i].lat.n;
	}
	for (size_t i = 0; keep && i < total; i++)
		if (cr_bench_samples_add(keep, all[i]) < 0)
			return cr_error_set(err, ENOMEM, "%s: no memory for latencies", load->name);
	latency_of(all, total, &ret->lat);
	ret->appends = appends;
	ret->retries = retries;
	ret->seconds = (double)(end - run.start_ns) / 1e9;
	ret->per_s = (double)appends / ret->seconds;
	return 0;
}

/* --- the log under test -------------------------------------------------------------------- */

struct log_load {
	struct cr_log *log;
	const char *prefix; /* of the session ids */
	const char *payload;
	struct cr_log_stats at_start;
};

static int log_setup(struct worker *w, struct cr_error *err)
{
	const struct log_load *l = w->runner->load->shared;
	char *session = malloc(CR_LOG_ID_MAX);

	if (!session)
		return cr_error_set(err, ENOMEM, "no memory for a session id");
	w->state = session;
	snprintf(session, CR_LOG_ID_MAX, "%s%u", l->prefix, w->index);
	int r = cr_log_session_create(l->log, session, NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "create session %s", session);
	return 0;
}

static int log_append(struct worker *w, struct cr_error *err)
{
	const struct log_load *l = w->runner->load->shared;
	const struct cr_log_append a = {
		.session = w->state,
		.epoch = 0,
		.expected_seq = CR_LOG_ANY_SEQ,
		.type = EVENT_TYPE,
		.payload = l->payload,
		.payload_len = EVENT_SIZE,
	};
	int r = cr_log_append(l->log, &a, NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "cr_log_append to session %s", (const char *)w->state);
	return 0;
}

static void log_teardown(struct worker *w)
{
	free(w->state);
	w->state = NULL;
}

static void log_at_start(void *shared)
{
	struct log_load *l = shared;
	cr_log_get_stats(l->log, &l->at_start);
}

/* The log's figures, added up over the slices of a run (see cr_bench_log), then finished. */
struct log_result {
	struct cr_bench_samples lat; /* every acknowledgement latency */
	uint64_t appends;
	double seconds;
	struct cr_log_stats stats; /* differences over the timed slices, added up */
	/* finished */
	struct run_result run;
	uint64_t syncs, stats_appends;
	double events_per_sync;
	double write_sync_mean_us; /* a batch's write and sync, submit to completion */
};

static void log_result_add(struct log_result *ret, const struct cr_log_stats *before,
			   const struct cr_log_stats *after, uint64_t appends, double seconds)
{
	ret->appends += appends;
	ret->seconds += seconds;
	ret->stats.appends += after->appends - before->appends;
	ret->stats.syncs += after->syncs - before->syncs;
	ret->stats.batches += after->batches - before->batches;
	ret->stats.write_sync_ns += after->write_sync_ns - before->write_sync_ns;
}

static void log_result_finish(struct log_result *ret)
{
	ret->run.appends = ret->appends;
	ret->run.seconds = ret->seconds;
	ret->run.per_s = ret->seconds > 0 ? (double)ret->appends / ret->seconds : 0;
	if (ret->lat.n)
		latency_of(ret->lat.v, ret->lat.n, &ret->run.lat);
	ret->syncs = ret->stats.syncs;
	ret->stats_appends = ret->stats.appends;
	ret->events_per_sync = ret->syncs ? (double)ret->stats_appends / (double)ret->syncs : 0;
	if (ret->stats.batches)
		ret->write_sync_mean_us =
			(double)ret->stats.write_sync_ns / (double)ret->stats.batches / 1e3;
}

static int open_fresh_log(const char *dir, struct cr_log **ret, struct cr_error *err)
{
	struct cr_log_options lo;
	cr_log_options_init(&lo);
	lo.create = true;
	int r = cr_log_open(dir, &lo, ret, err);
	return r < 0 ? cr_error_prefix(err, "open log %s", dir) : 0;
}

/* Appends to log with n threads, each to a session of its own named prefix<i>, for the given
 * time; adds the figures to ret. */
static int bench_log_appends(struct cr_log *log, unsigned n, const char *prefix,
			     const char *payload, double seconds, const atomic_bool *cancel,
			     struct log_result *ret, struct cr_error *err)
{
	struct log_load l = { .log = log, .prefix = prefix, .payload = payload };
	const struct workload load = {
		.name = "log",
		.shared = &l,
		.setup = log_setup,
		.append = log_append,
		.teardown = log_teardown,
		.at_start = log_at_start,
	};
	struct run_result run;
	struct cr_log_stats after;
	int r = run_timed(&load, n, seconds, cancel, &run, &ret->lat, err);
	if (r < 0)
		return r;
	cr_log_get_stats(log, &after);
	log_result_add(ret, &l.at_start, &after, run.appends, run.seconds);
	return 0;
}

/* --- the log with asynchronous appenders ---------------------------------------------------- */

/* n logical appenders, each with one append outstanding: it issues the next from the
 * completion callback of the last (on the log's writer thread). This times the log's own
 * acknowledgement, as an event loop such as corrald's API server sees it, without the cost of
 * waking n threads on a machine with fewer cores. */
struct async_client {
	struct async_run *run;
	char session[CR_LOG_ID_MAX];
	uint64_t start_ns;
};

struct async_run {
	struct cr_log *log;
	const char *payload;
	uint64_t deadline_ns, last_ack_ns;
	struct cr_bench_samples lat; /* touched only by the writer thread until the run ends */
	uint64_t acks;
	int error;
	struct cr_error err;
	pthread_mutex_t m;
	pthread_cond_t c;
	unsigned outstanding;
};

static void async_done(void *arg, int result, const struct cr_log_appended *ev,
		       const struct cr_error *err);

static int async_issue(struct async_client *cl, struct cr_error *err)
{
	const struct cr_log_append a = { .session = cl->session,
					 .expected_seq = CR_LOG_ANY_SEQ,
					 .type = EVENT_TYPE,
					 .payload = cl->run->payload,
					 .payload_len = EVENT_SIZE };
	cl->start_ns = cr_now_ns();
	return cr_log_append_async(cl->run->log, &a, async_done, cl, err);
}

static void async_finish_one(struct async_run *run, int error, const struct cr_error *err)
{
	pthread_mutex_lock(&run->m);
	if (error && !run->error) {
		run->error = error;
		if (err)
			run->err = *err;
	}
	if (--run->outstanding == 0)
		pthread_cond_signal(&run->c);
	pthread_mutex_unlock(&run->m);
}

static void async_done(void *arg, int result, const struct cr_log_appended *ev,
		       const struct cr_error *err)
{
	struct async_client *cl = arg;
	struct async_run *run = cl->run;
	(void)ev;
	uint64_t now = cr_now_ns();
	if (result < 0) {
		async_finish_one(run, result, err);
		return;
	}
	run->acks++;
	run->last_ack_ns = now;
	if (cr_bench_samples_add(&run->lat, now - cl->start_ns) < 0) {
		async_finish_one(run, -ENOMEM, NULL);
		return;
	}
	if (now >= run->deadline_ns) {
		async_finish_one(run, 0, NULL);
		return;
	}
	struct cr_error e;
	int r = async_issue(cl, &e);
	if (r < 0)
		async_finish_one(run, r, &e);
}

/* n asynchronous appenders on log, each to a session of its own named prefix<i>, for the given
 * time; adds the figures to ret. */
static int bench_log_async(struct cr_log *log, unsigned n, const char *prefix, const char *payload,
			   double seconds, struct log_result *ret, struct cr_error *err)
{
	int r;
	_cleanup_free_ struct async_client *cl = calloc(n, sizeof(*cl));
	struct async_run run = { .log = log, .payload = payload };
	if (!cl)
		return cr_error_set(err, ENOMEM, "no memory for %u appenders", n);
	pthread_mutex_init(&run.m, NULL);
	pthread_cond_init(&run.c, NULL);
	for (unsigned i = 0; i < n; i++) {
		cl[i].run = &run;
		snprintf(cl[i].session, sizeof(cl[i].session), "%s%u", prefix, i);
		if ((r = cr_log_session_create(log, cl[i].session, NULL, err)) < 0)
			goto out;
	}
	struct cr_log_stats before, after;
	cr_log_get_stats(log, &before);
	uint64_t start = cr_now_ns();
	run.deadline_ns = start + (uint64_t)(seconds * 1e9);
	pthread_mutex_lock(&run.m);
	for (unsigned i = 0; i < n; i++) {
		struct cr_error e;
		if (async_issue(&cl[i], &e) < 0) {
			if (!run.error) {
				run.error = -e.code;
				run.err = e;
			}
			break;
		}
		run.outstanding++;
	}
	while (run.outstanding)
		pthread_cond_wait(&run.c, &run.m);
	pthread_mutex_unlock(&run.m);
	cr_log_get_stats(log, &after);
	if (run.error) {
		r = run.error;
		if (err)
			*err = run.err;
		goto out;
	}
	if (run.acks == 0) {
		r = cr_error_set(err, EIO, "no append was acknowledged");
		goto out;
	}
	for (size_t k = 0; k < run.lat.n; k++)
		if (cr_bench_samples_add(&ret->lat, run.lat.v[k]) < 0) {
			r = cr_error_set(err, ENOMEM, "no memory for latencies");
			goto out;
		}
	log_result_add(ret, &before, &after, run.acks, (double)(run.last_ack_ns - start) / 1e9);
	r = 0;
out:
	/* (no callback is left: outstanding came down to zero before anything after it ran) */
	cr_bench_samples_done(&run.lat);
	pthread_mutex_destroy(&run.m);
	pthread_cond_destroy(&run.c);
	return r;
}

/* --- baseline 1: SQLite, WAL, synchronous=FULL, one transaction per event ------------------- */

struct sqlite_load {
	const char *path;
	const char *payload;
	const atomic_bool *cancel;
};

struct sqlite_conn {
	sqlite3 *db;
	sqlite3_stmt *insert;
	char session[32];
};

static int sqlite_error(struct cr_error *err, sqlite3 *db, int rc, const char *what,
			const char *path)
{
	return cr_error_set(err, EIO, "sqlite %s %s: %s", what, path,
			    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static void sqlite_conn_free(struct sqlite_conn *c)
{
	if (!c)
		return;
	sqlite3_finalize(c->insert);
	sqlite3_close(c->db);
	free(c);
}

static void sqlite_closep(sqlite3 **db)
{
	sqlite3_close(*db);
}

static void sqlite_finalizep(sqlite3_stmt **stmt)
{
	sqlite3_finalize(*stmt);
}

static int sqlite_setup(struct worker *w, struct cr_error *err)
{
	const struct sqlite_load *s = w->runner->load->shared;
	struct sqlite_conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return cr_error_set(err, ENOMEM, "no memory for a sqlite connection");
	w->state = c;
	snprintf(c->session, sizeof(c->session), "sqlite-%u", w->index);
	rc = sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, c->db, rc, "open", s->path);
	rc = sqlite3_busy_timeout(c->db, SQLITE_BUSY_MS);
	if (rc != SQLITE_OK)
		return sqlite_error(err, c->db, rc, "set the busy timeout of", s->path);
	rc = sqlite3_exec(c->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, c->db, rc, "PRAGMA synchronous=FULL on", s->path);
	rc = sqlite3_prepare_v2(c->db, sqlite_insert, -1, &c->insert, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, c->db, rc, "prepare the insert into", s->path);
	rc = sqlite3_bind_text(c->insert, 1, c->session, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(c->insert, 2, s->payload, EVENT_SIZE, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return sqlite_error(err, c->db, rc, "bind the insert into", s->path);
	return 0;
}

/* One autocommit INSERT: its own transaction, synced to the WAL before it returns. A writer
 * that finds the database busy (after the busy timeout) tries again until the deadline. */
static int sqlite_append(struct worker *w, struct cr_error *err)
{
	const struct sqlite_load *s = w->runner->load->shared;
	struct sqlite_conn *c = w->state;

	for (;;) {
		int rc = sqlite3_step(c->insert);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(c->insert);
			return 0;
		}
		int primary = rc & 0xff;
		if (primary != SQLITE_BUSY && primary != SQLITE_LOCKED) {
			int r = sqlite_error(err, c->db, rc, "insert into", s->path);
			sqlite3_reset(c->insert);
			return r;
		}
		sqlite3_reset(c->insert);
		w->retries++;
		if (cr_now_ns() >= w->deadline_ns || cr_bench_cancelled(s->cancel))
			return 1;
	}
}

static void sqlite_teardown(struct worker *w)
{
	sqlite_conn_free(w->state);
	w->state = NULL;
}

/* Creates the database with its table, in WAL mode (which stays with the file). */
static int sqlite_create(const char *path, struct cr_error *err)
{
	_cleanup_(sqlite_closep) sqlite3 *db = NULL;
	_cleanup_(sqlite_finalizep) sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, db, rc, "create", path);
	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, db, rc, "PRAGMA journal_mode=WAL on", path);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW)
		return sqlite_error(err, db, rc, "PRAGMA journal_mode=WAL on", path);
	const unsigned char *mode = sqlite3_column_text(stmt, 0);
	if (!mode || strcmp((const char *)mode, "wal") != 0)
		return cr_error_set(err, ENOTSUP, "sqlite %s: journal mode is %s, not wal", path,
				    mode ? (const char *)mode : "unknown");
	rc = sqlite3_exec(db, sqlite_schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, db, rc, "create the table in", path);
	return 0;
}

/* The rows the run inserted: every acknowledged insert must be there. */
static int sqlite_count(const char *path, uint64_t *ret, struct cr_error *err)
{
	_cleanup_(sqlite_closep) sqlite3 *db = NULL;
	_cleanup_(sqlite_finalizep) sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, db, rc, "open", path);
	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return sqlite_error(err, db, rc, "count the rows of", path);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW)
		return sqlite_error(err, db, rc, "count the rows of", path);
	*ret = (uint64_t)sqlite3_column_int64(stmt, 0);
	return 0;
}

static int bench_sqlite(const char *path, const char *payload, const struct cr_bench_log_opts *opts,
			struct run_result *ret, struct cr_error *err)
{
	struct sqlite_load s = { .path = path, .payload = payload, .cancel = opts->cancel };
	const struct workload load = {
		.name = "sqlite",
		.shared = &s,
		.setup = sqlite_setup,
		.append = sqlite_append,
		.teardown = sqlite_teardown,
	};
	uint64_t rows = 0;

	if (!sqlite3_threadsafe())
		return cr_error_set(err, ENOTSUP, "this SQLite library is built without threads");
	int r = sqlite_create(path, err);
	if (r < 0)
		return r;
	r = run_timed(&load, opts->appenders, opts->seconds, opts->cancel, ret, NULL, err);
	if (r < 0)
		return r;
	r = sqlite_count(path, &rows, err);
	if (r < 0)
		return r;
	if (rows != ret->appends)
		return cr_error_set(err, EIO,
				    "sqlite %s: %" PRIu64 " rows after %" PRIu64
				    " acknowledged inserts",
				    path, rows, ret->appends);
	return 0;
}

/* --- baseline 2: write(200 bytes) + fdatasync, one thread, two ways ----------------------- */

/* Added up over the slices of a run, then finished. */
struct plain_result {
	struct cr_bench_samples both, sync; /* write + fdatasync; the fdatasync alone */
	double seconds;
	/* finished */
	uint64_t n;
	double per_s;
	struct latency write_fdatasync;
	struct latency fdatasync;
};

static void plain_result_finish(struct plain_result *ret)
{
	ret->n = ret->both.n;
	ret->per_s = ret->seconds > 0 ? (double)ret->n / ret->seconds : 0;
	if (ret->n) {
		latency_of(ret->both.v, ret->both.n, &ret->write_fdatasync);
		latency_of(ret->sync.v, ret->sync.n, &ret->fdatasync);
	}
}

/* How the write+fdatasync baseline writes its events. */
enum plain_mode {
	/* appending to a new file: the plain baseline the issue names, and the one the targets
	 * use. Each fdatasync also carries the file's new size (and now and then a new block's
	 * allocation). */
	PLAIN_APPEND,
	/* over a file written full of zeros and synced beforehand (not timed), as the log writes
	 * its segments: each fdatasync carries the event's data alone, the cheapest durable
	 * write of an event on the disk. The targets' ratios are also given against this one. */
	PLAIN_OVERWRITE,
};

/* Makes the overwriting baseline's file: PLAIN_OVERWRITE_BYTES of zeros, synced. Once per run,
 * before the timed slices, so that no slice follows a large writeback of its own. */
static int plain_zeros(const char *path, struct cr_error *err)
{
	static const char zeros[65536];
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return cr_error_errno(err, errno, "create %s", path);
	for (uint64_t off = 0; off < PLAIN_OVERWRITE_BYTES; off += sizeof(zeros)) {
		int r = write_all(fd, zeros, sizeof(zeros));
		if (r < 0)
			return cr_error_errno(err, -r, "fill %s with zeros", path);
	}
	if (fdatasync(fd) < 0)
		return cr_error_errno(err, errno, "sync %s", path);
	return 0;
}

/* write(200 bytes) + fdatasync in a loop for the given time, appending to a new file at path,
 * or over the file of zeros plain_zeros() made there, from its start; adds the figures to
 * ret. */
static int bench_plain(const char *path, enum plain_mode mode, const char *payload, double seconds,
		       const atomic_bool *cancel, struct plain_result *ret, struct cr_error *err)
{
	int flags = mode == PLAIN_APPEND ? O_CREAT | O_EXCL : 0;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
	uint64_t size = 0, n = 0;

	if (fd < 0)
		return cr_error_errno(err, errno, "open %s", path);
	uint64_t start = cr_now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
	uint64_t now = start, end = start;
	while (now < deadline && !cr_bench_cancelled(cancel)) {
		if (mode == PLAIN_OVERWRITE && size + EVENT_SIZE > PLAIN_OVERWRITE_BYTES) {
			if (lseek(fd, 0, SEEK_SET) < 0) /* over the same blocks again */
				return cr_error_errno(err, errno, "seek in %s", path);
			size = 0;
		}
		if (mode == PLAIN_APPEND && size >= PLAIN_FILE_WRAP) {
			/* Bounds the file on a fast disk; not timed. */
			if (ftruncate(fd, 0) < 0)
				return cr_error_errno(err, errno, "truncate %s", path);
			if (lseek(fd, 0, SEEK_SET) < 0)
				return cr_error_errno(err, errno, "seek in %s", path);
			size = 0;
		}
		uint64_t t0 = cr_now_ns();
		int r = write_all(fd, payload, EVENT_SIZE);
		if (r < 0)
			return cr_error_errno(err, -r, "write %s", path);
		uint64_t t1 = cr_now_ns();
		if (fdatasync(fd) < 0)
			return cr_error_errno(err, errno, "fdatasync %s", path);
		now = cr_now_ns();
		size += EVENT_SIZE;
		if (cr_bench_samples_add(&ret->both, now - t0) < 0 ||
		    cr_bench_samples_add(&ret->sync, now - t1) < 0)
			return cr_error_set(err, ENOMEM,
					    "write+fdatasync: no memory for latencies");
		n++;
		end = now;
	}
	if (cr_bench_cancelled(cancel))
		return cr_bench_cancel_error(err);
	if (n == 0)
		return cr_error_set(err, ETIMEDOUT, "write+fdatasync: no sync completed in %.3g s",
				    seconds);
	ret->seconds += (double)(end - start) / 1e9;
	return 0;
}

/* --- filling a log quickly (replay and recovery): async appends, a bounded window ----------- */

struct fill {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t in_flight;
	int r; /* the first failure */
	struct cr_error err;
};

static void fill_done(void *arg, int result, const struct cr_log_appended *ev,
		      const struct cr_error *err)
{
	struct fill *f = arg;

	(void)ev;
	pthread_mutex_lock(&f->lock);
	if (result < 0 && f->r == 0) {
		f->r = result;
		if (err)
			f->err = *err;
		else
			cr_error_set(&f->err, -result, "append failed without a message");
	}
	f->in_flight--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* Appends count events round-robin to the sessions, at most window in flight; returns once
 * every append it queued is done (so nothing refers to this stack frame any more). */
static int fill_log(struct cr_log *log, char (*sessions)[CR_LOG_ID_MAX], size_t nsessions,
		    const char *payload, size_t len, uint64_t count, size_t window,
		    const atomic_bool *cancel, struct cr_error *err)
{
	struct fill f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	int r = 0;

	for (uint64_t i = 0; i < count; i++) {
		if (cr_bench_cancelled(cancel)) {
			r = cr_bench_cancel_error(err);
			break;
		}
		pthread_mutex_lock(&f.lock);
		while (f.in_flight >= window && f.r == 0)
			pthread_cond_wait(&f.cond, &f.lock);
		bool failed = f.r < 0;
		if (!failed)
			f.in_flight++;
		pthread_mutex_unlock(&f.lock);
		if (failed)
			break;

		const char *session = sessions[i % nsessions];
		const struct cr_log_append a = {
			.session = session,
			.epoch = 0,
			.expected_seq = CR_LOG_ANY_SEQ,
			.type = EVENT_TYPE,
			.payload = payload,
			.payload_len = len,
		};
		r = cr_log_append_async(log, &a, fill_done, &f, err);
		if (r < 0) {
			cr_error_prefix(err, "cr_log_append_async to session %s", session);
			pthread_mutex_lock(&f.lock);
			f.in_flight--;
			pthread_mutex_unlock(&f.lock);
			break;
		}
	}
	pthread_mutex_lock(&f.lock);
	while (f.in_flight > 0)
		pthread_cond_wait(&f.cond, &f.lock);
	pthread_mutex_unlock(&f.lock);
	if (r == 0 && f.r < 0) {
		if (err)
			*err = f.err;
		r = cr_error_prefix(err, "cr_log_append_async");
	}
	return r;
}

/* --- replay: 10,000 events after a cold open ----------------------------------------------- */

struct replay_result {
	double open_ms;
	double total_ms; /* open + reading all events */
	size_t events;
	size_t files_evicted;
};

static int bench_replay(const char *dir, const char *payload, const struct cr_bench_log_opts *opts,
			struct replay_result *ret, struct cr_error *err)
{
	char session[1][CR_LOG_ID_MAX] = { "replay" };
	_cleanup_(log_closep) struct cr_log *log = NULL;
	struct cr_log_options lo;
	size_t total = 0;
	int r;

	cr_log_options_init(&lo);
	lo.create = true;
	r = cr_log_open(dir, &lo, &log, err);
	if (r < 0)
		return cr_error_prefix(err, "open log %s", dir);
	r = cr_log_session_create(log, session[0], NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "create session %s", session[0]);
	r = fill_log(log, session, 1, payload, EVENT_SIZE, REPLAY_EVENTS, REPLAY_WINDOW,
		     opts->cancel, err);
	if (r < 0)
		return r;
	cr_log_close(TAKE_PTR(log));

	struct cr_walk evict = {
		.top = dir, .max_depth = TREE_DEPTH_MAX, .file = evict_file, .dir = evict_dir
	};
	r = cr_walk(&evict, err);
	if (r < 0)
		return r;
	if (cr_bench_cancelled(opts->cancel))
		return cr_bench_cancel_error(err);

	lo.create = false;
	uint64_t t0 = cr_now_ns();
	r = cr_log_open(dir, &lo, &log, err);
	if (r < 0)
		return cr_error_prefix(err, "reopen log %s", dir);
	uint64_t t1 = cr_now_ns();
	for (uint64_t after = 0;;) {
		struct cr_log_event *ev = NULL;
		size_t n = 0;
		r = cr_log_get_events(log, session[0], after, REPLAY_PAGE, &ev, &n, err);
		if (r < 0)
			return cr_error_prefix(err, "cr_log_get_events of %s after %" PRIu64,
					       session[0], after);
		if (n == 0) {
			cr_log_events_free(ev, n); /* the (empty) array is ours all the same */
			break;
		}
		bool in_order = true;
		for (size_t i = 0; i < n; i++) {
			if (ev[i].seq <= after || ev[i].payload_len != EVENT_SIZE)
				in_order = false;
			after = ev[i].seq;
		}
		cr_log_events_free(ev, n);
		if (!in_order)
			return cr_error_set(err, EIO,
					    "cr_log_get_events of %s: events out of order or "
					    "with the wrong payload size near seq %" PRIu64,
					    session[0], after);
		total += n;
		if (n > REPLAY_PAGE)
			return cr_error_set(err, EIO,
					    "cr_log_get_events of %s: %zu events for a limit of %u",
					    session[0], n, REPLAY_PAGE);
	}
	uint64_t t2 = cr_now_ns();
	if (total != REPLAY_EVENTS)
		return cr_error_set(err, EIO, "replay of %s: %zu events read back, %u appended",
				    session[0], total, REPLAY_EVENTS);
	ret->open_ms = (double)(t1 - t0) / 1e6;
	ret->total_ms = (double)(t2 - t0) / 1e6;
	ret->events = total;
	ret->files_evicted = evict.files;
	return 0;
}

/* --- recovery scan rate -------------------------------------------------------------------- */

struct recovery_result {
	uint64_t log_bytes; /* written by the fill, from cr_log_get_stats */
	uint64_t recovered_bytes; /* scanned by the reopen */
	uint64_t recovery_ns;
	double mb_per_s;
};

static int bench_recovery(const char *dir, uint64_t target, const struct cr_bench_log_opts *opts,
			  struct recovery_result *ret, struct cr_error *err)
{
	char sessions[RECOVERY_SESSIONS][CR_LOG_ID_MAX];
	_cleanup_(log_closep) struct cr_log *log = NULL;
	_cleanup_free_ char *payload = make_payload(RECOVERY_EVENT_SIZE);
	struct cr_log_options lo;
	struct cr_log_stats st;
	int r;

	if (!payload)
		return cr_error_set(err, ENOMEM, "no memory for a %u-byte payload",
				    RECOVERY_EVENT_SIZE);
	cr_log_options_init(&lo);
	lo.create = true;
	r = cr_log_open(dir, &lo, &log, err);
	if (r < 0)
		return cr_error_prefix(err, "open log %s", dir);
	for (unsigned i = 0; i < RECOVERY_SESSIONS; i++) {
		snprintf(sessions[i], sizeof(sessions[i]), "recovery-%02u", i);
		r = cr_log_session_create(log, sessions[i], NULL, err);
		if (r < 0)
			return cr_error_prefix(err, "create session %s", sessions[i]);
	}
	uint64_t count = (target + RECOVERY_EVENT_SIZE - 1) / RECOVERY_EVENT_SIZE;
	r = fill_log(log, sessions, RECOVERY_SESSIONS, payload, RECOVERY_EVENT_SIZE, count,
		     RECOVERY_WINDOW, opts->cancel, err);
	if (r < 0)
		return r;
	cr_log_get_stats(log, &st);
	ret->log_bytes = st.bytes;
	cr_log_close(TAKE_PTR(log));
	if (cr_bench_cancelled(opts->cancel))
		return cr_bench_cancel_error(err);

	lo.create = false;
	r = cr_log_open(dir, &lo, &log, err);
	if (r < 0)
		return cr_error_prefix(err, "reopen log %s", dir);
	cr_log_get_stats(log, &st);
	cr_log_close(TAKE_PTR(log));
	if (st.recovery_ns == 0 || st.recovered_bytes == 0)
		return cr_error_set(err, EIO,
				    "reopen of log %s: cr_log_get_stats says %" PRIu64
				    " bytes recovered in %" PRIu64 " ns after %" PRIu64
				    " bytes were written; no rate to compute",
				    dir, st.recovered_bytes, st.recovery_ns, ret->log_bytes);
	ret->recovered_bytes = st.recovered_bytes;
	ret->recovery_ns = st.recovery_ns;
	ret->mb_per_s = (double)st.recovered_bytes / MB / ((double)st.recovery_ns / 1e9);
	return 0;
}

/* --- the whole benchmark ------------------------------------------------------------------- */

/* Each appender's SQLite connection holds a few descriptors (database, WAL); the log holds
 * its own. Raises the soft limit toward the hard one when that is not enough. */
static int ensure_files(unsigned appenders, struct cr_error *err)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)appenders * 3 + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return cr_error_errno(err, errno, "getrlimit RLIMIT_NOFILE");
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rlim_t want =
			rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		if (want > rl.rlim_cur) {
			rl.rlim_cur = want;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				return cr_error_errno(err, errno, "setrlimit RLIMIT_NOFILE");
		}
		if (want < need)
			return cr_error_set(err, EMFILE,
					    "%u appenders need about %llu open files; the limit "
					    "is %llu",
					    appenders, (unsigned long long)need,
					    (unsigned long long)want);
	}
	return 0;
}

static int ensure_space(const char *dir, uint64_t need, struct cr_error *err)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) < 0)
		return cr_error_errno(err, errno, "statvfs %s", dir);
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail < need)
		return cr_error_set(err, ENOSPC,
				    "%s has %" PRIu64 " MiB free; the benchmark needs "
				    "about %" PRIu64 " MiB",
				    dir, avail >> 20, need >> 20);
	return 0;
}

/* A run of appenders' figures under prefix: <prefix>appends, _per_s, ack_p50/p99/max_us, syncs,
 * events_per_sync, batch_write_sync_mean_us. Nonzero when one could not be added. */
static int put_appenders(json_t *o, const char *prefix, const struct log_result *r)
{
	const struct {
		const char *name;
		json_t *v;
	} kv[] = {
		{ "appends", json_integer((json_int_t)r->run.appends) },
		{ "appends_per_s", json_real(r->run.per_s) },
		{ "ack_p50_us", json_real(r->run.lat.p50_us) },
		{ "ack_p99_us", json_real(r->run.lat.p99_us) },
		{ "ack_max_us", json_real(r->run.lat.max_us) },
		{ "syncs", json_integer((json_int_t)r->syncs) },
		{ "events_per_sync", json_real(r->events_per_sync) },
		{ "batch_write_sync_mean_us", json_real(r->write_sync_mean_us) },
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		char key[96];
		snprintf(key, sizeof(key), "%s%s", prefix, kv[i].name);
		bad |= cr_bench_put(o, key, kv[i].v);
	}
	return bad;
}

struct figures {
	struct plain_result plain, plain_over; /* appending (the issue's); over zeros */
	struct log_result async, many, one;
	struct run_result sqlite;
	struct replay_result replay;
	struct recovery_result recovery;
};

static void figures_done(struct figures *f)
{
	cr_bench_samples_done(&f->plain_over.both);
	cr_bench_samples_done(&f->plain_over.sync);
	cr_bench_samples_done(&f->plain.both);
	cr_bench_samples_done(&f->plain.sync);
	cr_bench_samples_done(&f->one.lat);
	cr_bench_samples_done(&f->async.lat);
	cr_bench_samples_done(&f->many.lat);
}

static json_t *figures_json(const struct cr_bench_log_opts *opts, const char *fs,
			    const struct figures *f)
{
	json_t *o = json_object();
	bool all = true;
	int bad = 0;

	if (!o)
		return NULL;
	bad |= cr_bench_put(o, "appenders", json_integer(opts->appenders));
	bad |= cr_bench_put(o, "seconds", json_real(opts->seconds));
	bad |= cr_bench_put(o, "dir", json_string(opts->dir));
	bad |= cr_bench_put(o, "fs", json_string(fs));
	bad |= cr_bench_put(o, "quick", json_boolean(opts->quick));
	bad |= cr_bench_put(o, "event_bytes", json_integer(EVENT_SIZE));

	/* the log's acknowledgement: asynchronous appenders (see bench_log_async) */
	bad |= put_appenders(o, "", &f->async);
	bad |= cr_bench_put(o, "appends_seconds", json_real(f->async.run.seconds));
	bad |= cr_bench_put(o, "stats_appends", json_integer((json_int_t)f->async.stats_appends));
	/* the same with one thread per appender, blocking in cr_log_append: thread wake-ups and
	 * scheduling included */
	bad |= put_appenders(o, "threads_", &f->many);

	bad |= cr_bench_put(o, "single_appender_appends",
			    json_integer((json_int_t)f->one.run.appends));
	bad |= cr_bench_put(o, "single_appender_appends_per_s", json_real(f->one.run.per_s));
	bad |= cr_bench_put(o, "single_appender_p50_us", json_real(f->one.run.lat.p50_us));
	bad |= cr_bench_put(o, "single_appender_p99_us", json_real(f->one.run.lat.p99_us));
	bad |= cr_bench_put(o, "single_appender_max_us", json_real(f->one.run.lat.max_us));
	bad |= cr_bench_put(o, "single_appender_syncs", json_integer((json_int_t)f->one.syncs));

	/* the issue's baseline: appending to a file */
	bad |= cr_bench_put(o, "write_fdatasync_samples", json_integer((json_int_t)f->plain.n));
	bad |= cr_bench_put(o, "write_fdatasync_per_s", json_real(f->plain.per_s));
	bad |= cr_bench_put(o, "write_fdatasync_p50_us",
			    json_real(f->plain.write_fdatasync.p50_us));
	bad |= cr_bench_put(o, "write_fdatasync_p99_us",
			    json_real(f->plain.write_fdatasync.p99_us));
	bad |= cr_bench_put(o, "write_fdatasync_max_us",
			    json_real(f->plain.write_fdatasync.max_us));
	bad |= cr_bench_put(o, "fdatasync_p50_us", json_real(f->plain.fdatasync.p50_us));
	bad |= cr_bench_put(o, "fdatasync_p99_us", json_real(f->plain.fdatasync.p99_us));
	bad |= cr_bench_put(o, "fdatasync_max_us", json_real(f->plain.fdatasync.max_us));
	/* the stricter one: over a file of zeros, as the log's segments */
	const struct plain_result *ow = &f->plain_over;
	bad |= cr_bench_put(o, "overwrite_write_fdatasync_samples",
			    json_integer((json_int_t)ow->n));
	bad |= cr_bench_put(o, "overwrite_write_fdatasync_per_s", json_real(ow->per_s));
	bad |= cr_bench_put(o, "overwrite_write_fdatasync_p50_us",
			    json_real(ow->write_fdatasync.p50_us));
	bad |= cr_bench_put(o, "overwrite_write_fdatasync_p99_us",
			    json_real(ow->write_fdatasync.p99_us));
	bad |= cr_bench_put(o, "overwrite_write_fdatasync_max_us",
			    json_real(ow->write_fdatasync.max_us));
	bad |= cr_bench_put(o, "overwrite_fdatasync_p50_us", json_real(ow->fdatasync.p50_us));
	bad |= cr_bench_put(o, "overwrite_fdatasync_p99_us", json_real(ow->fdatasync.p99_us));
	bad |= cr_bench_put(o, "overwrite_fdatasync_max_us", json_real(ow->fdatasync.max_us));

	bad |= cr_bench_put(o, "sqlite_appends", json_integer((json_int_t)f->sqlite.appends));
	bad |= cr_bench_put(o, "sqlite_appends_per_s", json_real(f->sqlite.per_s));
	bad |= cr_bench_put(o, "sqlite_p50_us", json_real(f->sqlite.lat.p50_us));
	bad |= cr_bench_put(o, "sqlite_p99_us", json_real(f->sqlite.lat.p99_us));
	bad |= cr_bench_put(o, "sqlite_max_us", json_real(f->sqlite.lat.max_us));
	bad |= cr_bench_put(o, "sqlite_busy_retries", json_integer((json_int_t)f->sqlite.retries));

	bad |= cr_bench_put(o, "replay_events", json_integer((json_int_t)f->replay.events));
	bad |= cr_bench_put(o, "replay_open_ms", json_real(f->replay.open_ms));
	bad |= cr_bench_put(o, "replay_10k_ms", json_real(f->replay.total_ms));
	bad |= cr_bench_put(o, "replay_files_evicted",
			    json_integer((json_int_t)f->replay.files_evicted));

	bad |= cr_bench_put(o, "recovery_log_bytes",
			    json_integer((json_int_t)f->recovery.log_bytes));
	bad |= cr_bench_put(o, "recovered_bytes",
			    json_integer((json_int_t)f->recovery.recovered_bytes));
	bad |= cr_bench_put(o, "recovery_ms", json_real((double)f->recovery.recovery_ns / 1e6));
	bad |= cr_bench_put(o, "recovery_mb_per_s", json_real(f->recovery.mb_per_s));
	bad |= cr_bench_put(o, "recovery_cache", json_string("warm"));
	bad |= cr_bench_put(o, "mb_bytes", json_integer((json_int_t)MB));

	double vs_sqlite = f->async.run.per_s / f->sqlite.per_s;
	double p99_vs_sync = f->async.run.lat.p99_us / f->plain.fdatasync.p50_us;
	double one_vs_plain = f->one.run.lat.p50_us / f->plain.write_fdatasync.p50_us;
	bad |= cr_bench_put(o, "threads_ack_p99_vs_fdatasync_p50",
			    json_real(f->many.run.lat.p99_us / f->plain.fdatasync.p50_us));
	bad |= cr_bench_put(o, "threads_appends_vs_sqlite",
			    json_real(f->many.run.per_s / f->sqlite.per_s));
	/* the disk's own tail: the target compares a p99 with a median, and here a single
	 * fdatasync's p99 alone is often above twice its median */
	bad |= cr_bench_put(o, "ack_p99_vs_fdatasync_p99",
			    json_real(f->async.run.lat.p99_us / f->plain.fdatasync.p99_us));
	bad |= cr_bench_put(o, "fdatasync_p99_vs_p50",
			    json_real(f->plain.fdatasync.p99_us / f->plain.fdatasync.p50_us));
	/* the two latency targets' ratios again, against the stricter baseline */
	bad |= cr_bench_put(o, "ack_p99_vs_overwrite_fdatasync_p50",
			    json_real(f->async.run.lat.p99_us / ow->fdatasync.p50_us));
	bad |= cr_bench_put(o, "single_p50_vs_overwrite_write_fdatasync_p50",
			    json_real(f->one.run.lat.p50_us / ow->write_fdatasync.p50_us));
	json_t *t = json_object();
	if (!t) {
		json_decref(o);
		return NULL;
	}
	bad |= cr_bench_put(t, "appends_vs_sqlite",
			    cr_bench_target(vs_sqlite, "at_least", 10, &all));
	bad |= cr_bench_put(t, "ack_p99_vs_fdatasync_p50",
			    cr_bench_target(p99_vs_sync, "at_most", 3, &all));
	bad |= cr_bench_put(t, "single_p50_vs_write_fdatasync_p50",
			    cr_bench_target(one_vs_plain, "at_most", 1.5, &all));
	bad |= cr_bench_put(t, "recovery_mb_per_s",
			    cr_bench_target(f->recovery.mb_per_s, "at_least", 1000, &all));
	bad |= cr_bench_put(o, "targets", t);
	bad |= cr_bench_put(o, "targets_met", json_boolean(all));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int cr_bench_log(const struct cr_bench_log_opts *opts, json_t **ret, struct cr_error *err)
{
	_cleanup_(cr_bench_workdir_cleanup) struct cr_bench_workdir wd = { .name = "log" };
	_cleanup_free_ char *payload = make_payload(EVENT_SIZE);
	char path[PATH_MAX];
	_cleanup_(figures_done) struct figures f = { 0 };
	_cleanup_(log_closep) struct cr_log *one = NULL;
	_cleanup_(log_closep) struct cr_log *async = NULL;
	_cleanup_(log_closep) struct cr_log *many = NULL;
	int r;

	if (opts->appenders < 1 || opts->appenders > CR_BENCH_LOG_APPENDERS_MAX)
		return cr_error_set(err, EINVAL, "appenders: %u is not 1 to %u", opts->appenders,
				    CR_BENCH_LOG_APPENDERS_MAX);
	if (!(opts->seconds > 0 && opts->seconds <= CR_BENCH_LOG_SECONDS_MAX))
		return cr_error_set(err, EINVAL, "seconds: %g is not more than 0 and at most %g",
				    opts->seconds, CR_BENCH_LOG_SECONDS_MAX);
	if ((r = cr_bench_check_dir(opts->dir, err)) < 0)
		return r;
	if (!payload)
		return cr_error_set(err, ENOMEM, "no memory for a payload");

	uint64_t recovery_target = opts->quick ? RECOVERY_BYTES_QUICK : RECOVERY_BYTES;
	r = ensure_files(opts->appenders, err);
	if (r < 0)
		return r;
	r = ensure_space(opts->dir, recovery_target + (256ull << 20), err);
	if (r < 0)
		return r;
	const char *fs = fs_name(opts->dir);
	r = cr_bench_workdir_make(&wd, opts->dir, "corral-bench-log.XXXXXX", err);
	if (r < 0)
		return r;
	cr_bench_progress(opts->progress, "log",
			  "working in %s (%s); %u appenders, %g s per timed run", wd.path, fs,
			  opts->appenders, opts->seconds);
	if (strcmp(fs, "tmpfs") == 0)
		cr_bench_progress(opts->progress, "log",
				  "%s is tmpfs: fdatasync does nothing there, durability is not "
				  "measured",
				  opts->dir);

	/* The three figures the latency targets compare are measured in interleaved slices
	 * (write+fdatasync, the log with one appender, the log with n asynchronous ones, and
	 * again), each log kept open throughout: on a shared machine the disk's speed drifts
	 * within seconds, and ratios of figures taken at different times would measure the drift.
	 */
	double slice = opts->seconds / CR_BENCH_LOG_LATENCY_ROUNDS;
	cr_bench_progress(
		opts->progress, "log",
		"%u rounds of %g s each: baseline write(%u bytes)+fdatasync (1 thread), over "
		"zeros and appending; log, 1 appender; log, %u asynchronous appenders",
		CR_BENCH_LOG_LATENCY_ROUNDS, slice, EVENT_SIZE, opts->appenders);
	r = cr_bench_path_join(path, sizeof(path), wd.path, "log-one", err);
	if (r < 0 || (r = open_fresh_log(path, &one, err)) < 0)
		return r;
	r = cr_bench_path_join(path, sizeof(path), wd.path, "log-async", err);
	if (r < 0 || (r = open_fresh_log(path, &async, err)) < 0)
		return r;
	char zeros_path[PATH_MAX];
	r = cr_bench_path_join(zeros_path, sizeof(zeros_path), wd.path, "plain-zeros", err);
	if (r < 0 || (r = plain_zeros(zeros_path, err)) < 0)
		return r;
	for (unsigned k = 0; k < CR_BENCH_LOG_LATENCY_ROUNDS; k++) {
		char name[32], prefix[32];
		snprintf(name, sizeof(name), "plain-%u", k);
		r = cr_bench_path_join(path, sizeof(path), wd.path, name, err);
		if (r < 0)
			return r;
		r = bench_plain(path, PLAIN_APPEND, payload, slice, opts->cancel, &f.plain, err);
		if (r < 0)
			return cr_error_prefix(err, "write+fdatasync baseline");
		r = bench_plain(zeros_path, PLAIN_OVERWRITE, payload, slice, opts->cancel,
				&f.plain_over, err);
		if (r < 0)
			return cr_error_prefix(err, "write+fdatasync baseline, over zeros");
		snprintf(prefix, sizeof(prefix), "one-%u-", k);
		r = bench_log_appends(one, 1, prefix, payload, slice, opts->cancel, &f.one, err);
		if (r < 0)
			return cr_error_prefix(err, "log, 1 appender");
		snprintf(prefix, sizeof(prefix), "async-%u-", k);
		r = bench_log_async(async, opts->appenders, prefix, payload, slice, &f.async, err);
		if (r < 0)
			return cr_error_prefix(err, "log, %u asynchronous appenders",
					       opts->appenders);
		if (cr_bench_cancelled(opts->cancel))
			return cr_bench_cancel_error(err);
	}
	cr_log_close(TAKE_PTR(one));
	cr_log_close(TAKE_PTR(async));
	plain_result_finish(&f.plain_over);
	plain_result_finish(&f.plain);
	log_result_finish(&f.one);
	log_result_finish(&f.async);

	cr_bench_progress(opts->progress, "log", "log: %u appender threads, %g s", opts->appenders,
			  opts->seconds);
	r = cr_bench_path_join(path, sizeof(path), wd.path, "log-many", err);
	if (r < 0 || (r = open_fresh_log(path, &many, err)) < 0)
		return r;
	r = bench_log_appends(many, opts->appenders, "many-", payload, opts->seconds, opts->cancel,
			      &f.many, err);
	if (r < 0)
		return cr_error_prefix(err, "log, %u appenders", opts->appenders);
	cr_log_close(TAKE_PTR(many));
	log_result_finish(&f.many);

	cr_bench_progress(opts->progress, "log",
			  "baseline: sqlite WAL synchronous=FULL, %u connections, %g s",
			  opts->appenders, opts->seconds);
	r = cr_bench_path_join(path, sizeof(path), wd.path, "sqlite.db", err);
	if (r < 0)
		return r;
	r = bench_sqlite(path, payload, opts, &f.sqlite, err);
	if (r < 0)
		return cr_error_prefix(err, "sqlite baseline");

	cr_bench_progress(opts->progress, "log",
			  "replay: building a session of %u events, evicting it, cold open",
			  REPLAY_EVENTS);
	r = cr_bench_path_join(path, sizeof(path), wd.path, "log-replay", err);
	if (r < 0)
		return r;
	r = bench_replay(path, payload, opts, &f.replay, err);
	if (r < 0)
		return cr_error_prefix(err, "replay");

	cr_bench_progress(opts->progress, "log",
			  "recovery: writing a %" PRIu64 " MiB log, reopening",
			  recovery_target >> 20);
	r = cr_bench_path_join(path, sizeof(path), wd.path, "log-recovery", err);
	if (r < 0)
		return r;
	r = bench_recovery(path, recovery_target, opts, &f.recovery, err);
	if (r < 0)
		return cr_error_prefix(err, "recovery");

	json_t *j = figures_json(opts, fs, &f);
	if (!j)
		return cr_error_set(err, ENOMEM, "no memory for the results");
	cr_bench_progress(opts->progress, "log", "removing %s", wd.path);
	r = cr_bench_workdir_remove(&wd, err);
	if (r < 0) {
		json_decref(j);
		return r;
	}
	*ret = j;
	return 0;
}
