/* init/serve: corral-init's tool server (docs/init-protocol.md). One event loop over the
 * connections (up to CONNS_MAX clients at once with --listen), a signalfd and the pipes of what
 * runs: requests are read and dispatched, every child is reaped as it exits (orphans too),
 * deadlines are enforced, responses go out as they complete, each to the connections that asked
 * for it. The last 256 request ids are remembered with their responses, so a repeated id is
 * answered without running it again. Nothing here blocks on a child or on a peer. */
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
/* Clients served at once with --listen; more wait in the listening socket's backlog. */
#define CONNS_MAX 16

struct entry {
	char *id;
	bool done;
	bool dropped; /* the response was let go to stay within CACHE_BYTES */
	/* While it runs: the connections (by serial) owed its response, the one that asked and
	 * any that repeated the id meanwhile (a connection once for each time it asked). */
	uint64_t *owed;
	size_t nowed;
	char *frame;
	size_t len;
};

/* A client. Slots are reused; the serial, never: a response owed to a connection that has
 * gone never reaches the next one in its slot. */
struct conn {
	int fd; /* -1: a free slot */
	uint64_t serial;
	char *in;
	size_t in_len, in_cap;
	uint64_t skip; /* bytes of an oversized frame still to discard */
	char *out;
	size_t out_off, out_len, out_cap;
};

struct watch {
	cr_watch_fn *cb;
	void *obj;
};

struct cr_srv {
	int sigfd;
	int listen_fd; /* --listen: connections come and go, jobs and the shell stay; else -1 */
	bool pid1, closing;
	struct conn conns[CONNS_MAX]; /* --serve: the one in conns[0] */
	uint64_t next_serial;
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

/* The client has gone. Serving one connection, that is the end; listening, the others carry
 * on and the next client is accepted, while jobs and the shell carry on too. */
static void drop_conn(struct cr_srv *s, struct conn *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	*c = (struct conn){ .fd = -1 };
	if (s->listen_fd < 0)
		s->closing = true;
}

static struct conn *conn_of(struct cr_srv *s, uint64_t serial)
{
	for (size_t i = 0; i < CONNS_MAX; i++)
		if (s->conns[i].fd >= 0 && s->conns[i].serial == serial)
			return &s->conns[i];
	return NULL;
}

static void queue_out(struct conn *c, const char *buf, size_t len)
{
	if (!c || c->fd < 0)
		return; /* (the client has gone: a repeat of the request's id gets the result) */
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + len > c->out_cap) {
			c->out_cap = c->out_len + len + 65536;
			c->out = cr_xrealloc(c->out, c->out_cap);
		}
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
}

static void flush_out(struct cr_srv *s, struct conn *c)
{
	while (c->fd >= 0 && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else {
			drop_conn(s, c); /* the peer has gone */
			return;
		}
	}
}

/* A response that belongs to no remembered request (a frame that could not be read: id NULL,
 * or one refused before it ran), to the connection that sent it. */
static void respond_unremembered(struct conn *c, const char *id, json_t *response)
{
	char *frame;
	size_t len;
	cr_response_frame(id, response, &frame, &len);
	json_decref(response);
	queue_out(c, frame, len);
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

static void owe(struct entry *e, const struct conn *c)
{
	e->owed = cr_xrealloc(e->owed, (e->nowed + 1) * sizeof(*e->owed));
	e->owed[e->nowed++] = c->serial;
}

/* A new running entry for id, owed to c; the oldest finished one goes when CACHE_IDS are held.
 * NULL when as many requests run at once as the cache holds. */
static struct entry *cache_add(struct cr_srv *s, const char *id, const struct conn *c)
{
	if (s->ncache >= CACHE_IDS) {
		for (size_t i = 0; i < s->ncache; i++) {
			struct entry *e = &s->cache[i];
			if (!e->done)
				continue;
			s->cache_bytes -= e->len;
			free(e->id);
			free(e->frame);
			free(e->owed);
			memmove(e, e + 1, (s->ncache - i - 1) * sizeof(*e));
			s->ncache--;
			break;
		}
	}
	if (s->ncache == CR_ARRAY_SIZE(s->cache))
		return NULL; /* every entry runs: the request is refused, so each has one */
	struct entry *e = &s->cache[s->ncache++];
	*e = (struct entry){ .id = cr_xstrdup(id) };
	owe(e, c);
	return e;
}

void cr_srv_respond_frame(struct cr_srv *s, const char *id, char *frame, size_t len)
{
	struct entry *e = cache_find(s, id);
	if (!e || e->done) {
		free(frame); /* (every running request has an entry: cannot happen) */
		return;
	}
	for (size_t i = 0; i < e->nowed; i++) {
		struct conn *c = conn_of(s, e->owed[i]);
		if (c) {
			queue_out(c, frame, len);
			flush_out(s, c);
		}
	}
	free(e->owed);
	e->owed = NULL;
	e->nowed = 0;
	e->done = true;
	entry_set_frame(s, e, frame, len);
	cache_trim_bytes(s);
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

static void handle_request(struct cr_srv *s, struct conn *c, const char *payload, size_t len)
{
	struct cr_error err;
	json_t *req;
	if (cr_init_frame_decode(payload, len, &req, &err) < 0) {
		respond_unremembered(c, NULL,
				     cr_error_response(NULL, "malformed request: %s", err.msg));
		return;
	}
	json_t *idv = json_object_get(req, "id");
	const char *id = json_string_value(idv);
	if (!id || strlen(id) != json_string_length(idv)) {
		respond_unremembered(c, NULL,
				     cr_error_response(NULL, "request without a string \"id\""));
		goto out;
	}
	if (strlen(id) > CR_INIT_ID_MAX) {
		respond_unremembered(
			c, NULL,
			cr_error_response(NULL, "request id longer than %d bytes", CR_INIT_ID_MAX));
		goto out;
	}

	struct entry *e = cache_find(s, id);
	if (e) {
		/* A repeat (from any client): never run twice. Answered now, or when the first
		 * completes. */
		if (e->done)
			queue_out(c, e->frame, e->len);
		else
			owe(e, c);
		goto out;
	}
	if (!cache_add(s, id, c)) {
		respond_unremembered(c, id,
				     cr_error_response(id,
						       "%zu requests are running: wait for one to "
						       "finish",
						       CR_ARRAY_SIZE(s->cache)));
		goto out;
	}

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

/* Takes every complete frame from c's input buffer. */
static void parse_input(struct cr_srv *s, struct conn *c)
{
	size_t off = 0;
	while (!s->closing && c->fd >= 0) {
		size_t have = c->in_len - off;
		if (c->skip > 0) {
			size_t n = c->skip < have ? (size_t)c->skip : have;
			off += n;
			c->skip -= n;
			if (c->skip > 0)
				break;
			continue;
		}
		if (have < CR_INIT_FRAME_HEADER)
			break;
		uint32_t len = cr_init_frame_length((const unsigned char *)c->in + off);
		if (len > CR_INIT_FRAME_MAX) {
			/* Its id cannot be known without reading it: skipped, answered with a null
			 * id, and the connection stays in step. */
			respond_unremembered(c, NULL,
					     cr_error_response(NULL,
							       "request frame of %u bytes "
							       "exceeds the %u-byte limit",
							       len, CR_INIT_FRAME_MAX));
			off += CR_INIT_FRAME_HEADER;
			c->skip = len;
			continue;
		}
		if (have - CR_INIT_FRAME_HEADER < len)
			break;
		handle_request(s, c, c->in + off + CR_INIT_FRAME_HEADER, len);
		off += CR_INIT_FRAME_HEADER + len;
	}
	if (c->fd < 0)
		return; /* (dropped meanwhile: its buffers are gone) */
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static struct conn *free_slot(struct cr_srv *s)
{
	for (size_t i = 0; i < CONNS_MAX; i++)
		if (s->conns[i].fd < 0)
			return &s->conns[i];
	return NULL;
}

static void conn_open(struct cr_srv *s, struct conn *slot, int fd)
{
	*slot = (struct conn){ .fd = fd, .serial = ++s->next_serial };
}

/* --listen: takes the clients waiting, as many as there are free slots. */
static void on_accept(struct cr_srv *s, void *obj, short revents)
{
	(void)obj;
	(void)revents;
	struct conn *slot;
	while ((slot = free_slot(s))) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		conn_open(s, slot, fd);
	}
}

static void on_conn(struct cr_srv *s, void *obj, short revents)
{
	struct conn *c = obj;
	if (c->fd < 0)
		return;
	if (revents & POLLOUT)
		flush_out(s, c);
	if (c->fd < 0 || !(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	/* A bounded amount per round, so what runs is served too while a big frame arrives. */
	for (int round = 0; round < 64 && !s->closing && c->fd >= 0; round++) {
		if (c->in_cap - c->in_len < 65536) {
			c->in_cap = c->in_len + 65536 * 2;
			c->in = cr_xrealloc(c->in, c->in_cap);
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* End of file, or the connection broke: this client is done with us. */
			drop_conn(s, c);
			break;
		}
		c->in_len += (size_t)n;
		parse_input(s, c);
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
	for (size_t i = 0; i < CONNS_MAX; i++)
		s->conns[i].fd = -1;
	if (!listening)
		conn_open(s, &s->conns[0], fd);
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
		for (size_t i = 0; i < CONNS_MAX; i++) {
			struct conn *c = &s->conns[i];
			if (c->fd >= 0)
				cr_srv_watch(s, c->fd,
					     POLLIN | (c->out_off < c->out_len ? POLLOUT : 0),
					     on_conn, c);
		}
		if (s->listen_fd >= 0 && free_slot(s))
			cr_srv_watch(s, s->listen_fd, POLLIN, on_accept, NULL);
		cr_srv_watch(s, s->sigfd, POLLIN, on_signal, NULL);
		size_t fixed = s->nw; /* the connections, the listener and the signalfd */
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
		/* Pipes first; then the connections (which may start jobs), the listener and
		 * reaping (which ends jobs), so no callback sees an object freed this round. */
		for (size_t i = fixed; i < s->nw; i++)
			if (s->pfds[i].revents)
				s->watches[i].cb(s, s->watches[i].obj, s->pfds[i].revents);
		for (size_t i = 0; i < fixed; i++)
			if (s->pfds[i].revents)
				s->watches[i].cb(s, s->watches[i].obj, s->pfds[i].revents);
		int64_t now = cr_now_ms();
		cr_jobs_tick(s, &s->jobs, now);
		cr_shell_tick(s, s->shell, now);
		for (size_t i = 0; i < CONNS_MAX; i++)
			flush_out(s, &s->conns[i]);
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
		free(s->cache[i].owed);
	}
	if (s->sigfd >= 0)
		close(s->sigfd);
	for (size_t i = 0; i < CONNS_MAX; i++) {
		free(s->conns[i].in);
		free(s->conns[i].out);
	}
	free(s->pfds);
	free(s->watches);
	free(s);
	return rc;
}
