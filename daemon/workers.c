/* daemon/workers: the supervisor of corrald's worker processes (include/corral/workers.h). Each
 * worker has a thread here that owns its socket: it hands the worker a session, answers the
 * worker's requests through the platform, and replaces the worker when it dies. A session is in
 * at most one of the queue and the set being driven; the log decides the rest. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corral/brainlink.h"
#include "corral/cleanup.h"
#include "corral/workers.h"

struct slot {
	struct cr_workers *w;
	unsigned index;
	pthread_t thread;
	pid_t pid;
	int fd;
	pthread_cond_t cond; /* its thread waits here for a session */
	bool listed; /* in the idle list */
};

struct driven {
	char session[CR_LOG_ID_MAX];
	bool again; /* woken while being driven */
	bool told_early; /* its wake was told of early events */
	uint64_t through; /* told_early: events through this seq became durable meanwhile */
};

/* A session waiting for a worker, with the events posted to it that were still being synced when
 * it was queued (cr_workers_wake_early), which its wake is told of. */
struct queued {
	char session[CR_LOG_ID_MAX];
	struct cr_log_event *early;
	size_t n_early;
};

struct cr_workers {
	struct cr_workers_config cfg;
	char **argv; /* the workers' command line, argv[2] is the fd */
	pthread_mutex_t lock;
	bool stopping;
	/* The slots waiting for a session, the one that last finished one on top: a wake goes to
	 * the worker that ran last, whose memory is still in the caches (one idle for a while
	 * takes its first steps several times slower, docs/workers.md). */
	struct slot **idle;
	unsigned n_idle;
	struct queued *queue;
	size_t qn, qcap;
	struct driven *driven;
	size_t dn;
	struct slot *slots;
	unsigned conds; /* slots whose cond is made */
	unsigned started; /* threads started */
	struct cr_workers_stats stats;
};

static struct queued *find_queued(struct cr_workers *w, const char *session)
{
	for (size_t i = 0; i < w->qn; i++)
		if (strcmp(w->queue[i].session, session) == 0)
			return &w->queue[i];
	return NULL;
}

static struct driven *find_driven(struct cr_workers *w, const char *session)
{
	for (size_t i = 0; i < w->dn; i++)
		if (strcmp(w->driven[i].session, session) == 0)
			return &w->driven[i];
	return NULL;
}

/* Puts session in the queue (at the front for a session a dead worker left); its entry, new or
 * not, or NULL when there was no room. Called locked. */
static struct queued *enqueue(struct cr_workers *w, const char *session, bool front)
{
	struct queued *q = find_queued(w, session);
	if (q)
		return q;
	if (w->qn == w->qcap) {
		size_t cap = w->qcap ? w->qcap * 2 : 64;
		void *v = realloc(w->queue, cap * sizeof(*w->queue));
		if (!v) {
			fprintf(stderr, "corrald: out of memory queueing session %s\n", session);
			return NULL;
		}
		w->queue = v;
		w->qcap = cap;
	}
	if (front) {
		memmove(w->queue + 1, w->queue, w->qn * sizeof(*w->queue));
		q = &w->queue[0];
	} else {
		q = &w->queue[w->qn];
	}
	*q = (struct queued){ 0 };
	snprintf(q->session, CR_LOG_ID_MAX, "%s", session);
	w->qn++;
	if (w->n_idle) { /* (taken off the list here, so the next entry wakes another) */
		struct slot *s = w->idle[--w->n_idle];
		s->listed = false;
		pthread_cond_signal(&s->cond);
	}
	return q;
}

/* Lists s as waiting: on top when it just finished a session, else at the bottom. Locked. */
static void list_idle(struct cr_workers *w, struct slot *s, bool top)
{
	if (!top)
		memmove(w->idle + 1, w->idle, w->n_idle * sizeof(*w->idle));
	w->idle[top ? w->n_idle : 0] = s;
	w->n_idle++;
	s->listed = true;
}

static void unlist_idle(struct cr_workers *w, struct slot *s)
{
	for (unsigned i = 0; i < w->n_idle; i++)
		if (w->idle[i] == s) {
			memmove(w->idle + i, w->idle + i + 1,
				(w->n_idle - i - 1) * sizeof(*w->idle));
			w->n_idle--;
			break;
		}
	s->listed = false;
}

void cr_workers_wake(struct cr_workers *w, const char *session, uint64_t through)
{
	if (!w || strlen(session) >= CR_LOG_ID_MAX)
		return;
	pthread_mutex_lock(&w->lock);
	struct driven *d = find_driven(w, session);
	if (d && d->told_early && through)
		d->through = through > d->through ? through : d->through;
	else if (d)
		d->again = true;
	else
		enqueue(w, session, false); /* (a queued wake reads the log later: enough) */
	pthread_mutex_unlock(&w->lock);
}

void cr_workers_wake_early(struct cr_workers *w, const char *session,
			   const struct cr_log_event *early, size_t n_early)
{
	if (!w || strlen(session) >= CR_LOG_ID_MAX)
		return;
	/* (copied before the lock: it may be a megabyte of payloads) */
	struct cr_log_event *copy = cr_log_events_dup(early, n_early);
	pthread_mutex_lock(&w->lock);
	struct driven *d = find_driven(w, session);
	if (d) {
		d->again = true; /* (after the wake in progress, the log has them) */
	} else {
		struct queued *q = enqueue(w, session, false);
		if (q && copy && !q->n_early) {
			q->early = TAKE_PTR(copy);
			q->n_early = n_early;
		}
	}
	pthread_mutex_unlock(&w->lock);
	cr_log_events_free(copy, n_early);
}

/* Takes the next session off the queue into the driven set for slot s: 1 (its entry in *q), or
 * 0 when none came within wait_ms, or -1 when stopping. fresh: s just finished a session (or
 * started), so its worker is the warmest of those waiting. */
static int take(struct slot *s, struct queued *q, int wait_ms, bool fresh)
{
	struct cr_workers *w = s->w;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	int r = 0;
	while (!w->stopping && w->qn == 0 && r == 0) {
		if (!s->listed) /* (again after a wake another slot beat it to) */
			list_idle(w, s, fresh);
		r = pthread_cond_timedwait(&s->cond, &w->lock, &until);
	}
	if (s->listed)
		unlist_idle(w, s);
	int ret = w->stopping ? -1 : w->qn == 0 ? 0 : 1;
	if (ret == 1) {
		*q = w->queue[0];
		const char *session = q->session;
		memmove(w->queue, w->queue + 1, --w->qn * sizeof(*w->queue));
		struct driven *d = realloc(w->driven, (w->dn + 1) * sizeof(*d));
		if (d) {
			w->driven = d;
			d[w->dn] = (struct driven){ .told_early = q->n_early > 0 };
			snprintf(d[w->dn].session, CR_LOG_ID_MAX, "%s", session);
			w->dn++;
		}
		w->stats.wakes++;
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* The worker is done with session (died: lost). Decides whether it needs driving again. */
static void finished(struct cr_workers *w, const char *session, bool lost, uint64_t seen)
{
	bool again = lost;
	pthread_mutex_lock(&w->lock);
	struct driven *d = find_driven(w, session);
	if (d) {
		again = again || d->again || (d->told_early && d->through > seen);
		*d = w->driven[--w->dn];
	}
	pthread_mutex_unlock(&w->lock);
	if (!again) {
		/* Posted between the worker's last look at the log and its report. */
		struct cr_log_session_info info;
		if (cr_log_session_info(w->cfg.log, session, &info, NULL) == 0 &&
		    info.pending > 0 && info.last_seq > seen)
			again = true;
	}
	if (again) {
		pthread_mutex_lock(&w->lock);
		if (!w->stopping)
			enqueue(w, session, lost);
		pthread_mutex_unlock(&w->lock);
	}
}

static int spawn(struct slot *s, struct cr_error *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return cr_error_errno(err, errno, "worker %u: socketpair", s->index);
	sigset_t none;
	sigemptyset(&none);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return cr_error_errno(err, e, "worker %u: fork", s->index);
	}
	if (pid == 0) {
		/* Only async-signal-safe calls until exec: this process has other threads. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 0);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(s->w->cfg.program, s->w->argv);
		_exit(127);
	}
	close(sv[1]);
	pthread_mutex_lock(&s->w->lock); /* cr_workers_stop reads it */
	s->pid = pid;
	pthread_mutex_unlock(&s->w->lock);
	s->fd = sv[0];
	return 0;
}

/* Kills and waits for the slot's worker. The pid is cleared under the lock before the wait, so
 * cr_workers_stop never signals a pid that may have been reused. */
static void reap(struct slot *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	pthread_mutex_lock(&s->w->lock);
	pid_t pid = s->pid;
	s->pid = 0;
	if (pid > 0)
		kill(pid, SIGKILL);
	pthread_mutex_unlock(&s->w->lock);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

static void *slot_main(void *arg)
{
	struct slot *s = arg;
	struct cr_workers *w = s->w;
	struct queued q;
	const char *session = q.session;
	int silence = w->cfg.silence_ms > 0 ? w->cfg.silence_ms : 30000;
	bool fresh = true;

	for (;;) {
		struct cr_error err;
		int t = take(s, &q, 1000, fresh);
		fresh = t != 0;
		if (t < 0)
			break;
		if (t == 0) {
			/* An idle worker that died (killed from outside, or it failed) is
			 * replaced now, not when the next session would find it gone. */
			pthread_mutex_lock(&w->lock);
			pid_t dead = s->pid;
			if (dead > 0 && waitpid(dead, NULL, WNOHANG) == dead) {
				s->pid = 0;
				w->stats.restarts++;
			} else {
				dead = 0;
			}
			pthread_mutex_unlock(&w->lock);
			if (dead) {
				fprintf(stderr,
					"corrald: worker %u (pid %d) died while idle; "
					"replacing it\n",
					s->index, (int)dead);
				reap(s);
			}
			if (s->fd < 0 && spawn(s, &err) < 0)
				fprintf(stderr, "corrald: %s\n", err.msg);
			continue;
		}
		if (s->fd < 0 && spawn(s, &err) < 0) {
			fprintf(stderr, "corrald: %s\n", err.msg);
			cr_log_events_free(q.early, q.n_early);
			finished(w, session, true, 0);
			sleep(1);
			continue;
		}
		struct cr_brainlink_done done;
		int r = cr_brainlink_serve(s->fd, session, q.early, q.n_early, w->cfg.platform,
					   silence, &done, &err);
		cr_log_events_free(q.early, q.n_early);
		if (r < 0) {
			pthread_mutex_lock(&w->lock);
			bool stopping = w->stopping;
			w->stats.restarts++;
			if (r == -ETIMEDOUT)
				w->stats.killed_silent++;
			pthread_mutex_unlock(&w->lock);
			if (!stopping)
				fprintf(stderr,
					"corrald: worker %u (pid %d) lost while driving %s: %s; "
					"another takes it over\n",
					s->index, (int)s->pid, session, err.msg);
			reap(s);
			/* Replaced at once, not on the next wake: the pool stays whole. */
			if (!stopping && spawn(s, &err) < 0)
				fprintf(stderr, "corrald: %s\n", err.msg);
			finished(w, session, true, 0);
			continue;
		}
		if (done.result < 0 && done.result != -ESTALE)
			fprintf(stderr, "corrald: session %s: %s\n", session, done.message);
		finished(w, session, false, done.last_seq);
	}
	reap(s);
	return NULL;
}

int cr_workers_start(const struct cr_workers_config *cfg, struct cr_workers **ret,
		     struct cr_error *err)
{
	if (cfg->count == 0)
		return cr_error_set(err, EINVAL, "workers: at least one is needed");
	struct cr_workers *w = calloc(1, sizeof(*w));
	if (!w)
		return cr_error_set(err, ENOMEM, "workers: out of memory");
	w->cfg = *cfg;
	pthread_mutex_init(&w->lock, NULL);
	size_t extra = 0;
	while (cfg->worker_args && cfg->worker_args[extra])
		extra++;
	w->argv = calloc(extra + 4, sizeof(*w->argv));
	w->slots = calloc(cfg->count, sizeof(*w->slots));
	w->idle = calloc(cfg->count, sizeof(*w->idle));
	if (!w->argv || !w->slots || !w->idle) {
		cr_workers_stop(w);
		return cr_error_set(err, ENOMEM, "workers: out of memory");
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (unsigned i = 0; i < cfg->count; i++) {
		w->slots[i] = (struct slot){ .w = w, .index = i, .fd = -1 };
		pthread_cond_init(&w->slots[i].cond, &ca);
		w->conds++;
	}
	pthread_condattr_destroy(&ca);
	w->argv[0] = "corral";
	w->argv[1] = "worker";
	w->argv[2] = "--fd=3";
	for (size_t i = 0; i < extra; i++)
		w->argv[3 + i] = (char *)cfg->worker_args[i];
	for (unsigned i = 0; i < cfg->count; i++) {
		struct slot *s = &w->slots[i];
		/* Started now, not on the first wake: a worker that cannot start says so at once.
		 */
		if (spawn(s, err) < 0) {
			cr_workers_stop(w);
			return -err->code;
		}
		int e = pthread_create(&s->thread, NULL, slot_main, s);
		if (e) {
			reap(s);
			cr_workers_stop(w);
			return cr_error_errno(err, e, "workers: start a thread");
		}
		w->started++;
	}
	*ret = w;
	return 0;
}

void cr_workers_stop(struct cr_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	for (unsigned i = 0; i < w->started; i++)
		pthread_cond_signal(&w->slots[i].cond);
	/* A worker in the middle of a session dies now; its thread sees the link close. The log
	 * keeps the session where it was, for the next corrald. */
	for (unsigned i = 0; i < w->started; i++)
		if (w->slots[i].pid > 0)
			kill(w->slots[i].pid, SIGKILL);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->started; i++)
		pthread_join(w->slots[i].thread, NULL);
	pthread_mutex_destroy(&w->lock);
	for (unsigned i = 0; i < w->conds; i++)
		pthread_cond_destroy(&w->slots[i].cond);
	for (size_t i = 0; i < w->qn; i++)
		cr_log_events_free(w->queue[i].early, w->queue[i].n_early);
	free(w->queue);
	free(w->driven);
	free(w->slots);
	free(w->idle);
	free(w->argv);
	free(w);
}

void cr_workers_get_stats(struct cr_workers *w, struct cr_workers_stats *ret)
{
	pthread_mutex_lock(&w->lock);
	*ret = w->stats;
	pthread_mutex_unlock(&w->lock);
}
