/* init/serve: corral-init's tool server (docs/init-protocol.md). One event loop over the
 * connection, a signalfd and the pipes of what runs: requests are read and dispatched, every
 * child is reaped as it exits (orphans too), deadlines are enforced, responses go out as they
 * complete. The last 256 request ids are remembered with their responses, so a repeated id is
 * answered without running it again. Nothing here blocks on a child or on the peer. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/initproto.h"
#include "init/init-internal.h"

/* Request ids remembered, and how many bytes of their responses are kept. An older response
 * beyond that is replaced by a short error that says it ran: a repeat never runs twice. */
#define CACHE_IDS 256
#define CACHE_BYTES (64u << 20)

struct entry {
	char *id;
	bool done;
	bool dropped; /* the response was let go to stay within CACHE_BYTES */
	unsigned waiting; /* repeats of the id that came while it ran */
	char *frame;
	size_t len;
};

struct watch {
	cr_watch_fn *cb;
	void *obj;
};

struct cr_srv {
	int conn, sigfd;
	int listen_fd; /* --listen: connections come and go, jobs and the shell stay; else -1 */
	bool pid1, closing;
	char *in;
	size_t in_len, in_cap;
	uint64_t skip; /* bytes of an oversized frame still to discard */
	char *out;
	size_t out_off, out_len, out_cap;
	struct entry cache[CACHE_IDS * 2]; /* oldest first; running entries are never evicted */
	size_t ncache;
	size_t cache_bytes;
	struct cr_job *jobs;
	struct cr_shell *shell;
	struct pollfd *pfds;
	struct watch *watches;
	size_t nw, wcap;
};

struct cr_job **cr_srv_jobs(struct cr_srv *s)
{
	return &s->jobs;
}

void cr_deadline_min(int64_t *deadline, int64_t at)
{
	if (*deadline < 0 || at < *deadline)
		*deadline = at;
}

void cr_srv_watch(struct cr_srv *s, int fd, short events, cr_watch_fn *cb, void *obj)
{
	if (s->nw == s->wcap) {
		s->wcap = s->wcap ? 2 * s->wcap : 32;
		s->pfds = cr_xrealloc(s->pfds, s->wcap * sizeof(*s->pfds));
		s->watches = cr_xrealloc(s->watches, s->wcap * sizeof(*s->watches));
	}
	s->pfds[s->nw] = (struct pollfd){ .fd = fd, .events = events };
	s->watches[s->nw] = (struct watch){ .cb = cb, .obj = obj };
	s->nw++;
}

/* --- responses ---------------------------------------------------------------------------- */

json_t *cr_ok_response(const char *id)
{
	json_t *r = json_object();
	json_object_set_new(r, "id", json_string(id));
	json_object_set_new(r, "ok", json_true());
	return r;
}

json_t *cr_error_response(const char *id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *r = json_object();
	json_object_set_new(r, "id", id ? json_string(id) : json_null());
	json_object_set_new(r, "ok", json_false());
	/* The message may quote paths or output: not necessarily UTF-8. */
	json_object_set_new(r, "error", cr_text_json(msg, strlen(msg)));
	return r;
}

void cr_response_frame(const char *id, json_t *response, char **ret_frame, size_t *ret_len)
{
	struct cr_error err;
	int r = cr_init_frame_encode(response, ret_frame, ret_len, &err);
	if (r == 0)
		return;
	json_t *e = r == -EMSGSIZE
			    ? cr_error_response(id,
						"the response is larger than the %u-byte "
						"frame limit (%s); ask for less output "
						"(output_cap, max_bytes, a line range, "
						"max_matches)",
						CR_INIT_FRAME_MAX, err.msg)
			    : cr_error_response(id, "cannot encode the response: %s", err.msg);
	r = cr_init_frame_encode(e, ret_frame, ret_len, &err);
	json_decref(e);
	if (r < 0) {
		fprintf(stderr, "corral-init: cannot encode an error response: %s\n", err.msg);
		abort();
	}
}

/* The client has gone. Serving one connection, that is the end; listening, the next client
 * is waited for while jobs and the shell carry on. */
static void drop_conn(struct cr_srv *s)
{
	if (s->listen_fd < 0) {
		s->closing = true;
		return;
	}
	close(s->conn);
	s->conn = -1;
	s->in_len = 0;
	s->skip = 0;
	s->out_off = s->out_len = 0;
}

static void queue_out(struct cr_srv *s, const char *buf, size_t len)
{
	if (s->closing || s->conn < 0)
		return; /* (no client now: a repeat of the request's id gets the result) */
	if (s->out_off > 0 && s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + len > s->out_cap) {
		if (s->out_off > 0) {
			memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
			s->out_len -= s->out_off;
			s->out_off = 0;
		}
		if (s->out_len + len > s->out_cap) {
			s->out_cap = s->out_len + len + 65536;
			s->out = cr_xrealloc(s->out, s->out_cap);
		}
	}
	memcpy(s->out + s->out_len, buf, len);
	s->out_len += len;
}

static void flush_out(struct cr_srv *s)
{
	while (s->out_off < s->out_len && !s->closing) {
		ssize_t n = send(s->conn, s->out + s->out_off, s->out_len - s->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			s->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else {
			/* The peer has gone: nobody is left to serve. */
			drop_conn(s);
			return;
		}
	}
}

/* A response that belongs to no remembered request (a frame that could not be read). */
static void respond_unremembered(struct cr_srv *s, json_t *response)
{
	char *frame;
	size_t len;
	cr_response_frame(NULL, response, &frame, &len);
	json_decref(response);
	queue_out(s, frame, len);
	free(frame);
}

static struct entry *cache_find(struct cr_srv *s, const char *id)
{
	for (size_t i = s->ncache; i-- > 0;)
		if (strcmp(s->cache[i].id, id) == 0)
			return &s->cache[i];
	return NULL;
}

static void entry_set_frame(struct cr_srv *s, struct entry *e, char *frame, size_t len)
{
	s->cache_bytes -= e->len;
	free(e->frame);
	e->frame = frame;
	e->len = len;
	s->cache_bytes += len;
}

/* Keeps the responses within CACHE_BYTES by letting the oldest go: each becomes an error that
 * says the request ran and its result is gone. */
static void cache_trim_bytes(struct cr_srv *s)
{
	for (size_t i = 0; i < s->ncache && s->cache_bytes > CACHE_BYTES; i++) {
		struct entry *e = &s->cache[i];
		if (!e->done || e->dropped)
			continue;
		json_t *r = cr_error_response(e->id,
					      "request %s already ran; its %zu-byte result is no "
					      "longer held, and it is not run again",
					      e->id, e->len);
		char *frame;
		size_t len;
		cr_response_frame(e->id, r, &frame, &len);
		json_decref(r);
		entry_set_frame(s, e, frame, len);
		e->dropped = true;
	}
}

/* A new running entry for id; the oldest finished one goes when CACHE_IDS are held. */
static void cache_add(struct cr_srv *s, const char *id)
{
	if (s->ncache >= CACHE_IDS) {
		for (size_t i = 0; i < s->ncache; i++) {
			struct entry *e = &s->cache[i];
			if (!e->done)
				continue;
			s->cache_bytes -= e->len;
			free(e->id);
			free(e->frame);
			memmove(e, e + 1, (s->ncache - i - 1) * sizeof(*e));
			s->ncache--;
			break;
		}
	}
	if (s->ncache == CR_ARRAY_SIZE(s->cache)) {
		/* More requests running at once than the array holds: this one is not remembered
		 * (cr_srv_respond_frame then answers it without an entry). */
		return;
	}
	s->cache[s->ncache++] = (struct entry){ .id = cr_xstrdup(id) };
}

void cr_srv_respond_frame(struct cr_srv *s, const char *id, char *frame, size_t len)
{
	struct entry *e = cache_find(s, id);
	if (!e || e->done) {
		queue_out(s, frame, len);
		free(frame);
		return;
	}
	for (unsigned i = 0; i <= e->waiting; i++)
		queue_out(s, frame, len);
	e->waiting = 0;
	e->done = true;
	entry_set_frame(s, e, frame, len);
	cache_trim_bytes(s);
	flush_out(s);
}

void cr_srv_respond(struct cr_srv *s, const char *id, json_t *response)
{
	char *frame;
	size_t len;
	cr_response_frame(id, response, &frame, &len);
	json_decref(response);
	cr_srv_respond_frame(s, id, frame, len);
}

/* --- request fields ----------------------------------------------------------------------- */

int cr_req_string(json_t *req, const char *key, bool required, const char **ret,
		  struct cr_error *err)
{
	json_t *v = json_object_get(req, key);
	if (!v || json_is_null(v)) {
		if (required)
			return cr_error_set(err, EINVAL, "missing field \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v))
		return cr_error_set(err, EINVAL, "field \"%s\" must be a string", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return cr_error_set(err, EINVAL, "field \"%s\" holds a NUL character", key);
	*ret = json_string_value(v);
	return 0;
}

int cr_req_int(json_t *req, const char *key, int64_t min, int64_t max, int64_t *ret,
	       struct cr_error *err)
{
	json_t *v = json_object_get(req, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return cr_error_set(err, EINVAL,
				    "field \"%s\" must be an integer from %lld to %lld", key,
				    (long long)min, (long long)max);
	*ret = json_integer_value(v);
	return 0;
}

int cr_req_bool(json_t *req, const char *key, bool *ret, struct cr_error *err)
{
	json_t *v = json_object_get(req, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return cr_error_set(err, EINVAL, "field \"%s\" must be true or false", key);
	*ret = json_is_true(v);
	return 0;
}

/* --- requests ----------------------------------------------------------------------------- */

static const struct {
	const char *name;
	cr_file_op *fn;
} file_ops[] = {
	{ "read", cr_op_read }, { "write", cr_op_write }, { "edit", cr_op_edit },
	{ "glob", cr_op_glob }, { "grep", cr_op_grep },
};

static void handle_request(struct cr_srv *s, const char *payload, size_t len)
{
	struct cr_error err;
	json_t *req;
	if (cr_init_frame_decode(payload, len, &req, &err) < 0) {
		respond_unremembered(s, cr_error_response(NULL, "malformed request: %s", err.msg));
		return;
	}
	json_t *idv = json_object_get(req, "id");
	const char *id = json_string_value(idv);
	if (!id || strlen(id) != json_string_length(idv)) {
		respond_unremembered(s, cr_error_response(NULL, "request without a string \"id\""));
		goto out;
	}
	if (strlen(id) > CR_INIT_ID_MAX) {
		respond_unremembered(s, cr_error_response(NULL, "request id longer than %d bytes",
							  CR_INIT_ID_MAX));
		goto out;
	}

	struct entry *e = cache_find(s, id);
	if (e) {
		/* A repeat: never run twice. Answered now, or when the first completes. */
		if (e->done)
			queue_out(s, e->frame, e->len);
		else
			e->waiting++;
		goto out;
	}
	cache_add(s, id);

	const char *op = NULL;
	int r = cr_req_string(req, "op", true, &op, &err);
	if (r == 0 && strcmp(op, "ping") == 0) {
		json_t *resp = cr_ok_response(id);
		json_object_set_new(resp, "pid", json_integer(getpid()));
		cr_srv_respond(s, id, resp);
		goto out;
	}
	if (r == 0 && strcmp(op, "exec") == 0)
		r = cr_exec_start(s, id, req, &err);
	else if (r == 0 && strcmp(op, "shell") == 0)
		r = cr_shell_request(s, &s->shell, id, req, &err);
	else if (r == 0) {
		size_t i;
		for (i = 0; i < CR_ARRAY_SIZE(file_ops); i++)
			if (strcmp(op, file_ops[i].name) == 0)
				break;
		if (i < CR_ARRAY_SIZE(file_ops))
			r = cr_worker_start(s, id, op, file_ops[i].fn, req, &err);
		else
			r = cr_error_set(&err, EINVAL,
					 "unknown op \"%s\" (ops: exec, shell, read, write, edit, "
					 "glob, grep, ping)",
					 op);
	}
	if (r < 0)
		cr_srv_respond(s, id, cr_error_response(id, "%s", err.msg));
out:
	json_decref(req);
}

/* Takes every complete frame from the input buffer. */
static void parse_input(struct cr_srv *s)
{
	size_t off = 0;
	while (!s->closing) {
		size_t have = s->in_len - off;
		if (s->skip > 0) {
			size_t n = s->skip < have ? (size_t)s->skip : have;
			off += n;
			s->skip -= n;
			if (s->skip > 0)
				break;
			continue;
		}
		if (have < CR_INIT_FRAME_HEADER)
			break;
		uint32_t len = cr_init_frame_length((const unsigned char *)s->in + off);
		if (len > CR_INIT_FRAME_MAX) {
			/* Its id cannot be known without reading it: skipped, answered with a null
			 * id, and the connection stays in step. */
			respond_unremembered(s, cr_error_response(NULL,
								  "request frame of %u bytes "
								  "exceeds the %u-byte limit",
								  len, CR_INIT_FRAME_MAX));
			off += CR_INIT_FRAME_HEADER;
			s->skip = len;
			continue;
		}
		if (have - CR_INIT_FRAME_HEADER < len)
			break;
		handle_request(s, s->in + off + CR_INIT_FRAME_HEADER, len);
		off += CR_INIT_FRAME_HEADER + len;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
}

/* --listen: takes the next client; one at a time, the rest wait in the backlog. */
static void on_accept(struct cr_srv *s)
{
	int c = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c >= 0)
		s->conn = c;
}

static void on_conn(struct cr_srv *s, void *obj, short revents)
{
	(void)obj;
	if (revents & POLLOUT)
		flush_out(s);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	/* A bounded amount per round, so what runs is served too while a big frame arrives. */
	for (int round = 0; round < 64 && !s->closing; round++) {
		if (s->in_cap - s->in_len < 65536) {
			s->in_cap = s->in_len + 65536 * 2;
			s->in = cr_xrealloc(s->in, s->in_cap);
		}
		ssize_t n = recv(s->conn, s->in + s->in_len, s->in_cap - s->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* End of file, or the connection broke: the host is done with us. */
			drop_conn(s);
			break;
		}
		s->in_len += (size_t)n;
		parse_input(s);
	}
}

/* --- children and signals ----------------------------------------------------------------- */

/* Reaps every child that has exited. Each is looked at before it is reaped (WNOWAIT), so a
 * job can kill what it left in its process group while that group's id cannot be reused. */
static void reap(struct cr_srv *s)
{
	for (;;) {
		siginfo_t si = { 0 };
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		pid_t pid = si.si_pid;
		int status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
						      : (si.si_status & 0x7f);
		if (!cr_jobs_exited(s, &s->jobs, pid, status))
			cr_shell_exited(s, s->shell, pid, status);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

static void on_signal(struct cr_srv *s, void *obj, short revents)
{
	(void)obj;
	(void)revents;
	struct signalfd_siginfo si;
	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		/* As PID 1 of a sandbox only a signal from outside it (the manager's, which shows
		 * as pid 0 here) ends the server: the sandbox's own processes cannot. */
		if (!s->pid1 || si.ssi_pid == 0)
			s->closing = true;
	}
	reap(s);
}

static int setup(struct cr_srv *s, int fd, bool listening)
{
	int type = 0, acc = 0;
	socklen_t tl = sizeof(type), al = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
		fprintf(stderr, "corral-init: --serve %d: %s\n", fd, strerror(errno));
		return 2;
	}
	if (type != SOCK_STREAM) {
		fprintf(stderr, "corral-init: --serve %d: not a stream socket\n", fd);
		return 2;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || (bool)acc != listening) {
		fprintf(stderr, "corral-init: %s %d: %s\n", listening ? "--listen" : "--serve", fd,
			listening ? "not a listening socket" : "a listening socket (use --listen)");
		return 2;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		fprintf(stderr, "corral-init: --serve %d: fcntl: %s\n", fd, strerror(errno));
		return 1;
	}
	s->conn = listening ? -1 : fd;
	s->listen_fd = listening ? fd : -1;
	s->pid1 = getpid() == 1;
	/* Pipes must not land on 0, 1 or 2: a child's dup2 onto its stdio would clobber them. */
	for (int i = 0; i < 3; i++)
		if (i != fd && fcntl(i, F_GETFD) < 0 && errno == EBADF &&
		    open("/dev/null", O_RDWR) != i) {
			fprintf(stderr,
				"corral-init: fd %d is closed and /dev/null cannot take it\n", i);
			return 1;
		}

	/* A session of its own, so no terminal of the host is ours (a session leader already
	 * has none it did not open itself). */
	if (getsid(0) != getpid() && setsid() < 0) {
		fprintf(stderr, "corral-init: setsid: %s\n", strerror(errno));
		return 1;
	}
	if (!s->pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "corral-init: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		return 1;
	}
	sigset_t all, mine;
	sigfillset(&all);
	sigemptyset(&mine);
	sigaddset(&mine, SIGCHLD);
	sigaddset(&mine, SIGTERM);
	sigaddset(&mine, SIGINT);
	sigaddset(&mine, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &all, NULL) < 0) {
		fprintf(stderr, "corral-init: sigprocmask: %s\n", strerror(errno));
		return 1;
	}
	s->sigfd = signalfd(-1, &mine, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0) {
		fprintf(stderr, "corral-init: signalfd: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int cr_init_serve(int fd, bool listening)
{
	struct cr_srv *s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "corral-init: out of memory\n");
		return 1;
	}
	s->sigfd = -1;
	int rc = setup(s, fd, listening);
	while (rc == 0 && !s->closing) {
		int64_t deadline = -1;
		s->nw = 0;
		if (s->conn >= 0)
			cr_srv_watch(s, s->conn, POLLIN | (s->out_off < s->out_len ? POLLOUT : 0),
				     on_conn, NULL);
		else
			cr_srv_watch(s, s->listen_fd, POLLIN, NULL, NULL);
		cr_srv_watch(s, s->sigfd, POLLIN, on_signal, NULL);
		cr_jobs_watch(s, s->jobs, &deadline);
		cr_shell_watch(s, s->shell, &deadline);
		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - cr_now_ms();
			timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
		}
		if (poll(s->pfds, s->nw, timeout) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "corral-init: poll: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		/* Pipes first; the connection (which may start jobs) and reaping (which ends them)
		 * after, so no callback below sees an object that was freed this round. */
		for (size_t i = 2; i < s->nw; i++)
			if (s->pfds[i].revents)
				s->watches[i].cb(s, s->watches[i].obj, s->pfds[i].revents);
		if (s->pfds[0].revents) {
			if (s->conn >= 0)
				on_conn(s, NULL, s->pfds[0].revents);
			else
				on_accept(s);
		}
		if (s->pfds[1].revents)
			on_signal(s, NULL, s->pfds[1].revents);
		int64_t now = cr_now_ms();
		cr_jobs_tick(s, &s->jobs, now);
		cr_shell_tick(s, s->shell, now);
		if (s->conn >= 0)
			flush_out(s);
	}

	/* The host closed the connection (or ended us): nothing that was started outlives it.
	 * As PID 1 our exit ends the whole pid namespace; otherwise every descendant (they all
	 * come to us, the subreaper) is killed and reaped here. */
	cr_jobs_kill(&s->jobs);
	cr_shell_free(s->shell);
	if (!s->pid1)
		cr_end_descendants();
	for (size_t i = 0; i < s->ncache; i++) {
		free(s->cache[i].id);
		free(s->cache[i].frame);
	}
	if (s->sigfd >= 0)
		close(s->sigfd);
	free(s->in);
	free(s->out);
	free(s->pfds);
	free(s->watches);
	free(s);
	return rc;
}
