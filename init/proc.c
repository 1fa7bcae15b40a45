/* init/proc: the processes behind requests. An exec job is one program in its own process
 * group with captured output, a deadline (SIGTERM to the group, SIGKILL after a grace period)
 * and, once the program has exited, nothing left in its group. A worker job is a forked copy
 * of corral-init that runs one file op and writes its response frame to a pipe, so a slow or
 * crashing file op never stalls or takes down PID 1. Nothing here waits for a child: the event
 * loop reports exits (cr_jobs_exited) and deadlines (cr_jobs_tick). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/initproto.h"
#include "init/init-internal.h"

#define DEFAULT_GRACE_MS 2000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum job_kind {
	JOB_EXEC,
	JOB_WORKER
};

struct cr_job {
	struct cr_job *next;
	enum job_kind kind;
	char *id;
	char *op;
	pid_t pid; /* an exec job's pid is its process group too */
	int out_fd, err_fd, in_fd;
	struct cr_capture out, err;
	char *in_data;
	size_t in_len, in_off;
	int64_t start, term_at, kill_at; /* 0: not set */
	int64_t timeout_ms, grace_ms;
	bool timed_out;
};

static void job_free(struct cr_job *j)
{
	cr_close_fd(&j->out_fd);
	cr_close_fd(&j->err_fd);
	cr_close_fd(&j->in_fd);
	cr_capture_free(&j->out);
	cr_capture_free(&j->err);
	free(j->in_data);
	free(j->id);
	free(j->op);
	free(j);
}

static struct cr_job *job_new(enum job_kind kind, const char *id, const char *op)
{
	struct cr_job *j = cr_xmalloc(sizeof(*j));
	*j = (struct cr_job){ .kind = kind, .out_fd = -1, .err_fd = -1, .in_fd = -1 };
	j->id = cr_xstrdup(id);
	j->op = cr_xstrdup(op);
	j->start = cr_now_ms();
	return j;
}

void cr_child_reset(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* (SIGKILL, SIGSTOP and libc's own refuse: fine) */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
	/* Ours are all close-on-exec already; this catches any the server inherited. */
	close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
}

/* --- exec --------------------------------------------------------------------------------- */

/* Why a child could not become the program: written by the child into the parent's memory,
 * which it shares until it execs or exits (see cr_spawn). */
struct spawn_failure {
	int in_chdir; /* 1: chdir to cwd failed, 0: execve */
	int err;
};

/* execvp with the program's own PATH (or DEFAULT_PATH): returns the errno that explains the
 * failure (EACCES if some candidate was not executable, else the last one's). */
static int exec_search(char *const argv[], char *const envp[])
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return errno;
	}
	const char *path = DEFAULT_PATH;
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	bool eacces = false;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		char buf[PATH_MAX];
		int n = end == p ? snprintf(buf, sizeof(buf), "%s", file)
				 : snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, file);
		if (n > 0 && (size_t)n < sizeof(buf)) {
			execve(buf, argv, envp);
			if (errno == EACCES)
				eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG)
				return errno;
		}
		if (*end == '\0')
			break;
		p = end;
	}
	return eacces ? EACCES : ENOENT;
}

/* A NULL-terminated copy of a JSON array of strings (the strings stay the array's). */
static int string_array(json_t *req, const char *key, bool required, const char ***ret,
			struct cr_error *err)
{
	json_t *a = json_object_get(req, key);
	if (!a || json_is_null(a)) {
		if (required)
			return cr_error_set(err, EINVAL, "missing field \"%s\"", key);
		*ret = NULL;
		return 0;
	}
	if (!json_is_array(a))
		return cr_error_set(err, EINVAL, "field \"%s\" must be an array of strings", key);
	const char **v = cr_xmalloc((json_array_size(a) + 1) * sizeof(*v));
	size_t i;
	json_t *e;
	json_array_foreach (a, i, e) {
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
			free(v);
			return cr_error_set(err, EINVAL,
					    "field \"%s\": element %zu is not a string (without "
					    "NUL characters)",
					    key, i);
		}
		v[i] = json_string_value(e);
	}
	v[json_array_size(a)] = NULL;
	*ret = v;
	return 0;
}

int cr_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct spawn_args {
	char *const *argv, *const *envp;
	const char *cwd;
	const int *stdio;
	struct spawn_failure f;
};

static int spawn_child(void *arg)
{
	struct spawn_args *a = arg;
	cr_child_reset();
	if (dup2(a->stdio[0], 0) < 0 || dup2(a->stdio[1], 1) < 0 || dup2(a->stdio[2], 2) < 0) {
		a->f.err = errno;
	} else if (a->cwd && chdir(a->cwd) < 0) {
		a->f.in_chdir = 1;
		a->f.err = errno;
	} else {
		a->f.err = exec_search(a->argv, a->envp);
	}
	_exit(127);
}

/* The child's stack while it shares our memory (PID 1 has one thread, and CLONE_VFORK stops it
 * until the child has exec'd or exited, so one will do). */
static char spawn_stack[64 * 1024] __attribute__((aligned(16)));

int cr_spawn(char *const argv[], char *const envp[], const char *cwd, const int stdio[3],
	     pid_t *ret_pid, struct cr_error *err)
{
	/* A vfork: the child borrows our memory until its execve, instead of a copy of our page
	 * tables that execve throws away at once (and copy-on-write faults for us after). Where
	 * page-table work is dear, as in a VM with shadow paging, that halves the time to start a
	 * program. Every signal stays blocked until the child has reset the handlers it copied,
	 * so none of ours ever runs in it. */
	struct spawn_args a = { .argv = argv, .envp = envp, .cwd = cwd, .stdio = stdio };
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid_t pid = clone(spawn_child, spawn_stack + sizeof(spawn_stack),
			  CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	int e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		return cr_error_errno(err, e, "clone");
	struct spawn_failure f = a.f;
	if (!f.err) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (f.in_chdir)
		return cr_error_errno(err, f.err, "cwd %s", cwd);
	if (f.err == ENOENT && !strchr(argv[0], '/'))
		return cr_error_set(err, ENOENT, "cannot run \"%s\": not found in PATH", argv[0]);
	if (f.err == ENOEXEC)
		return cr_error_set(
			err, ENOEXEC,
			"cannot run \"%s\": not an executable (a script needs a #! line)", argv[0]);
	return cr_error_errno(err, f.err, "cannot run \"%s\"", argv[0]);
}

int cr_exec_start(struct cr_srv *s, const char *id, json_t *req, struct cr_error *err)
{
	_cleanup_free_ const char **argv = NULL;
	_cleanup_free_ const char **envp = NULL;
	const char *cwd = NULL, *in = NULL;
	int64_t timeout_ms = CR_INIT_DEFAULT_TIMEOUT_MS, cap = CR_INIT_DEFAULT_OUTPUT_CAP;
	int64_t grace_ms = DEFAULT_GRACE_MS;
	int r = string_array(req, "argv", true, &argv, err);
	if (r < 0)
		return r;
	if (!argv[0])
		return cr_error_set(err, EINVAL, "field \"argv\" is empty: it needs the program");
	if ((r = string_array(req, "env", false, &envp, err)) < 0 ||
	    (r = cr_req_string(req, "cwd", false, &cwd, err)) < 0 ||
	    (r = cr_req_string(req, "stdin", false, &in, err)) < 0 ||
	    (r = cr_req_int(req, "timeout_ms", 1, CR_INIT_MAX_TIMEOUT_MS, &timeout_ms, err)) < 0 ||
	    (r = cr_req_int(req, "grace_ms", 0, CR_INIT_MAX_TIMEOUT_MS, &grace_ms, err)) < 0 ||
	    (r = cr_req_int(req, "output_cap", 0, CR_INIT_MAX_OUTPUT_CAP, &cap, err)) < 0)
		return r;
	static const char *empty_env[] = { NULL };
	for (const char **e = envp; e && *e; e++)
		if (!strchr(*e, '='))
			return cr_error_set(err, EINVAL, "field \"env\": \"%s\" is not NAME=VALUE",
					    *e);

	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
	pid_t pid;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(inp, O_CLOEXEC) < 0)
		r = cr_error_errno(err, errno, "pipe");
	else
		r = cr_spawn((char **)argv, (char **)(envp ? envp : empty_env), cwd,
			     (int[3]){ inp[0], out[1], errp[1] }, &pid, err);
	cr_close_fd(&out[1]);
	cr_close_fd(&errp[1]);
	cr_close_fd(&inp[0]);
	if (r < 0) {
		cr_close_fd(&out[0]);
		cr_close_fd(&errp[0]);
		cr_close_fd(&inp[1]);
		return r;
	}

	struct cr_job *j = job_new(JOB_EXEC, id, "exec");
	j->pid = pid;
	j->out_fd = out[0];
	j->err_fd = errp[0];
	j->in_fd = inp[1];
	cr_nonblocking(j->out_fd);
	cr_nonblocking(j->err_fd);
	cr_nonblocking(j->in_fd);
	j->out.cap = j->err.cap = (size_t)cap;
	if (in && *in) {
		j->in_len = strlen(in);
		j->in_data = cr_xstrdup(in);
	} else {
		cr_close_fd(&j->in_fd); /* the program reads end of file */
	}
	j->timeout_ms = timeout_ms;
	j->grace_ms = grace_ms;
	j->term_at = j->start + timeout_ms;
	j->next = *cr_srv_jobs(s);
	*cr_srv_jobs(s) = j;
	return 0;
}

static json_t *exec_response(struct cr_job *j, int status)
{
	json_t *resp = cr_ok_response(j->id);
	json_object_set_new(resp, "stdout", cr_capture_json(&j->out));
	json_object_set_new(resp, "stderr", cr_capture_json(&j->err));
	if (WIFEXITED(status))
		json_object_set_new(resp, "exit_code", json_integer(WEXITSTATUS(status)));
	else
		json_object_set_new(resp, "signal", json_string(cr_signal_name(WTERMSIG(status))));
	json_object_set_new(resp, "timed_out", json_boolean(j->timed_out));
	json_object_set_new(resp, "duration_ms", json_integer(cr_now_ms() - j->start));
	return resp;
}

/* --- file-op workers ---------------------------------------------------------------------- */

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		buf += n;
		len -= (size_t)n;
	}
}

int cr_worker_start(struct cr_srv *s, const char *id, const char *op, cr_file_op *fn, json_t *req,
		    struct cr_error *err)
{
	int64_t timeout_ms = CR_INIT_DEFAULT_TIMEOUT_MS;
	int r = cr_req_int(req, "timeout_ms", 1, CR_INIT_MAX_TIMEOUT_MS, &timeout_ms, err);
	if (r < 0)
		return r;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cr_error_errno(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		r = cr_error_errno(err, errno, "fork");
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		cr_child_reset();
		/* The response frame goes to stdout; nothing else of the server's stays open. */
		if (dup2(p[1], 1) < 0)
			_exit(1);
		close_range(3, ~0u, 0);
		json_t *resp = cr_ok_response(id);
		struct cr_error e;
		if (fn(req, resp, &e) < 0) {
			json_decref(resp);
			resp = cr_error_response(id, "%s", e.msg);
		}
		char *frame;
		size_t len;
		cr_response_frame(id, resp, &frame, &len);
		write_all(1, frame, len);
		_exit(0);
	}
	close(p[1]);
	struct cr_job *j = job_new(JOB_WORKER, id, op);
	j->pid = pid;
	j->out_fd = p[0];
	cr_nonblocking(j->out_fd);
	j->out.cap = CR_INIT_FRAME_HEADER + CR_INIT_FRAME_MAX;
	j->timeout_ms = timeout_ms;
	j->term_at = j->start + timeout_ms;
	j->next = *cr_srv_jobs(s);
	*cr_srv_jobs(s) = j;
	return 0;
}

static void worker_done(struct cr_srv *s, struct cr_job *j, int status)
{
	const char *frame = j->out.head;
	size_t len = j->out.len;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && len >= CR_INIT_FRAME_HEADER &&
	    len == j->out.total &&
	    cr_init_frame_length((const unsigned char *)frame) == len - CR_INIT_FRAME_HEADER) {
		cr_srv_respond_frame(s, j->id, TAKE_PTR(j->out.head), len);
		j->out.len = j->out.total = 0;
		return;
	}
	if (j->timed_out)
		cr_srv_respond(s, j->id,
			       cr_error_response(j->id, "%s did not finish within %lld ms", j->op,
						 (long long)j->timeout_ms));
	else if (WIFSIGNALED(status))
		cr_srv_respond(s, j->id,
			       cr_error_response(j->id, "%s failed: its worker was killed by %s",
						 j->op, cr_signal_name(WTERMSIG(status))));
	else
		cr_srv_respond(s, j->id,
			       cr_error_response(j->id,
						 "%s failed: its worker exited with status %d "
						 "without a complete answer",
						 j->op, WEXITSTATUS(status)));
}

/* --- the event loop's side ---------------------------------------------------------------- */

static void on_out(struct cr_srv *s, void *obj, short revents)
{
	(void)s;
	(void)revents;
	struct cr_job *j = obj;
	if (cr_capture_read(&j->out, j->out_fd, 16) <= 0)
		cr_close_fd(&j->out_fd);
}

static void on_err(struct cr_srv *s, void *obj, short revents)
{
	(void)s;
	(void)revents;
	struct cr_job *j = obj;
	if (cr_capture_read(&j->err, j->err_fd, 16) <= 0)
		cr_close_fd(&j->err_fd);
}

static void on_in(struct cr_srv *s, void *obj, short revents)
{
	(void)s;
	struct cr_job *j = obj;
	if (revents & POLLERR) {
		cr_close_fd(&j->in_fd);
		return;
	}
	while (j->in_off < j->in_len) {
		ssize_t n = write(j->in_fd, j->in_data + j->in_off, j->in_len - j->in_off);
		if (n > 0) {
			j->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break; /* EPIPE: the program stopped reading; the rest is dropped */
	}
	cr_close_fd(&j->in_fd);
}

void cr_jobs_watch(struct cr_srv *s, struct cr_job *jobs, int64_t *deadline)
{
	for (struct cr_job *j = jobs; j; j = j->next) {
		if (j->out_fd >= 0)
			cr_srv_watch(s, j->out_fd, POLLIN, on_out, j);
		if (j->err_fd >= 0)
			cr_srv_watch(s, j->err_fd, POLLIN, on_err, j);
		if (j->in_fd >= 0)
			cr_srv_watch(s, j->in_fd, POLLOUT, on_in, j);
		if (j->term_at)
			cr_deadline_min(deadline, j->term_at);
		if (j->kill_at)
			cr_deadline_min(deadline, j->kill_at);
	}
}

void cr_jobs_tick(struct cr_srv *s, struct cr_job **jobs, int64_t now)
{
	(void)s;
	for (struct cr_job *j = *jobs; j; j = j->next) {
		if (j->term_at && now >= j->term_at) {
			j->term_at = 0;
			j->timed_out = true;
			if (j->kind == JOB_WORKER) {
				kill(j->pid, SIGKILL);
				continue;
			}
			/* SIGCONT too: a stopped process would not act on SIGTERM. */
			kill(-j->pid, SIGTERM);
			kill(-j->pid, SIGCONT);
			j->kill_at = now + j->grace_ms;
		}
		if (j->kill_at && now >= j->kill_at) {
			j->kill_at = 0;
			kill(-j->pid, SIGKILL);
		}
	}
}

bool cr_jobs_exited(struct cr_srv *s, struct cr_job **jobs, pid_t pid, int status)
{
	struct cr_job **pj = jobs;
	while (*pj && (*pj)->pid != pid)
		pj = &(*pj)->next;
	struct cr_job *j = *pj;
	if (!j)
		return false;
	*pj = j->next;
	if (j->kind == JOB_EXEC) {
		/* The program is a zombie, so its group id is still its own: whatever it left in
		 * the group goes now, and what it wrote before it exited is read. */
		kill(-j->pid, SIGKILL);
		if (j->out_fd >= 0)
			cr_capture_read(&j->out, j->out_fd, 64);
		if (j->err_fd >= 0)
			cr_capture_read(&j->err, j->err_fd, 64);
		cr_srv_respond(s, j->id, exec_response(j, status));
	} else {
		if (j->out_fd >= 0)
			cr_capture_read(&j->out, j->out_fd, INT_MAX);
		worker_done(s, j, status);
	}
	job_free(j);
	return true;
}

void cr_jobs_kill(struct cr_job **jobs)
{
	while (*jobs) {
		struct cr_job *j = *jobs;
		*jobs = j->next;
		kill(j->kind == JOB_EXEC ? -j->pid : j->pid, SIGKILL);
		job_free(j);
	}
}
