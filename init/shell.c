/* init/shell: the persistent shell behind the "shell" op. One bash (or /bin/sh) in its own
 * process group reads commands on a pipe, so its working directory and variables carry over
 * from call to call; stdout and stderr come back combined on one pipe. Calls run one at a
 * time, in order. Each call is written as
 *
 *	command eval '<command>' </dev/null
 *	printf '\n%s %d\n' '<token>' "$?"
 *
 * with a fresh random token: the output up to the token line is the call's, the number after
 * it the exit status. ("command" keeps a syntax error in the command from ending a POSIX sh;
 * stdin from /dev/null keeps a command that reads stdin from eating the lines after it.)
 * A call that times out takes the shell's process group with it and a new shell is started;
 * a shell that exits (the command said "exit") is replaced at the next call. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "init/init-internal.h"

#define TOKEN_PREFIX "__corral_done_"

struct call {
	struct call *next;
	char *id;
	char *command;
	bool restart; /* asked for a fresh shell first */
	bool restarted; /* the shell this call ran in is not the one the last call saw */
	int64_t timeout_ms, start, deadline;
	char needle[64]; /* "\n<token> " */
	size_t needle_len;
	char *script;
	size_t script_len, script_off;
	struct cr_capture out;
	char *pending; /* output not yet known to be the command's (it may begin the token line) */
	size_t plen;
};

struct cr_shell {
	pid_t pid; /* 0: no shell running */
	int in_fd, out_fd;
	bool started_once;
	bool lost; /* the last shell died or was killed: the next call says restarted */
	struct call *current;
	struct call *queue, **queue_tail;
};

static void call_free(struct call *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->command);
	free(c->script);
	free(c->pending);
	cr_capture_free(&c->out);
	free(c);
}

/* Kills the shell's process group; its zombie is reaped by the event loop like any orphan. */
static void shell_stop(struct cr_shell *sh)
{
	if (sh->pid > 0)
		kill(-sh->pid, SIGKILL);
	sh->pid = 0;
	cr_close_fd(&sh->in_fd);
	cr_close_fd(&sh->out_fd);
}

static int shell_start(struct cr_shell *sh, struct cr_error *err)
{
	char *bash_argv[] = { "/bin/bash", "--noprofile", "--norc", NULL };
	char *sh_argv[] = { "/bin/sh", NULL };
	char **argv = access(bash_argv[0], X_OK) == 0 ? bash_argv : sh_argv;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t pid;
	int r;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		r = cr_error_errno(err, errno, "shell: pipe");
	else
		r = cr_spawn(argv, environ, NULL, (int[3]){ in[0], out[1], out[1] }, &pid, err);
	cr_close_fd(&in[0]);
	cr_close_fd(&out[1]);
	if (r < 0) {
		cr_close_fd(&in[1]);
		cr_close_fd(&out[0]);
		return cr_error_prefix(err, "cannot start the shell");
	}
	cr_nonblocking(in[1]);
	cr_nonblocking(out[0]);
	sh->pid = pid;
	sh->in_fd = in[1];
	sh->out_fd = out[0];
	return 0;
}

/* The script for one call: the command as one single-quoted word, then the token line. */
static void call_script(struct call *c)
{
	unsigned char rnd[16];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "corral-init: getrandom: %s\n", strerror(errno));
			abort();
		}
		got += (size_t)n;
	}
	char token[sizeof(TOKEN_PREFIX) + 2 * sizeof(rnd)];
	int tl = snprintf(token, sizeof(token), "%s", TOKEN_PREFIX);
	for (size_t i = 0; i < sizeof(rnd); i++)
		tl += snprintf(token + tl, sizeof(token) - (size_t)tl, "%02x", rnd[i]);
	c->needle_len = (size_t)snprintf(c->needle, sizeof(c->needle), "\n%s ", token);

	size_t quotes = 0;
	for (const char *p = c->command; *p; p++)
		quotes += *p == '\'';
	size_t len = strlen(c->command);
	c->script = cr_xmalloc(len + 3 * quotes + 2 * sizeof(token) + 128);
	char *o = c->script;
	o += sprintf(o, "command eval '");
	for (const char *p = c->command; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	o += sprintf(o, "' </dev/null\nprintf '\\n%%s %%d\\n' '%s' \"$?\"\n", token);
	c->script_len = (size_t)(o - c->script);
	c->script_off = 0;
}

static void finish(struct cr_srv *s, struct cr_shell *sh, json_t *resp)
{
	struct call *c = sh->current;
	sh->current = NULL;
	cr_srv_respond(s, c->id, resp);
	call_free(c);
}

static json_t *call_response(struct call *c)
{
	json_t *resp = cr_ok_response(c->id);
	json_object_set_new(resp, "output", cr_capture_json(&c->out));
	json_object_set_new(resp, "restarted", json_boolean(c->restarted));
	json_object_set_new(resp, "duration_ms", json_integer(cr_now_ms() - c->start));
	return resp;
}

/* Moves the first n pending bytes into the call's output. */
static void commit(struct call *c, size_t n)
{
	if (n == 0)
		return; /* (pending is NULL until output comes) */
	cr_capture_add(&c->out, c->pending, n);
	memmove(c->pending, c->pending + n, c->plen - n);
	c->plen -= n;
}

/* Looks for the token line in what has come: true when the call is complete. */
static bool scan(struct cr_srv *s, struct cr_shell *sh)
{
	struct call *c = sh->current;
	char *p = memmem(c->pending, c->plen, c->needle, c->needle_len);
	if (!p) {
		/* All but a tail that may begin the token line is the command's. */
		if (c->plen >= c->needle_len)
			commit(c, c->plen - (c->needle_len - 1));
		return false;
	}
	commit(c, (size_t)(p - c->pending));
	char *num = c->pending + c->needle_len;
	char *nl = memchr(num, '\n', c->plen - c->needle_len);
	if (!nl)
		return false; /* the rest of the line is still on its way */
	*nl = '\0';
	int code = atoi(num);
	/* What follows the token line (a background job's output) is nobody's. */
	c->plen = 0;
	json_t *resp = call_response(c);
	json_object_set_new(resp, "exit_code", json_integer(code));
	json_object_set_new(resp, "timed_out", json_false());
	finish(s, sh, resp);
	return true;
}

static void start_next(struct cr_srv *s, struct cr_shell *sh);

/* Reads the shell's output: into the current call, or dropped between calls. True when that
 * completed the current call. */
static bool read_output(struct cr_srv *s, struct cr_shell *sh)
{
	char buf[65536];
	for (int round = 0; round < 16 && sh->out_fd >= 0; round++) {
		ssize_t n = read(sh->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* The shell (and all it started) closed its output: no token can come;
			 * the call ends when the shell exits or at its deadline. */
			cr_close_fd(&sh->out_fd);
			break;
		}
		struct call *c = sh->current;
		if (!c)
			continue;
		c->pending = cr_xrealloc(c->pending, c->plen + (size_t)n);
		memcpy(c->pending + c->plen, buf, (size_t)n);
		c->plen += (size_t)n;
		if (scan(s, sh))
			return true;
	}
	return false;
}

static void on_output(struct cr_srv *s, void *obj, short revents)
{
	(void)revents;
	struct cr_shell *sh = obj;
	if (read_output(s, sh))
		start_next(s, sh);
}

static void on_input(struct cr_srv *s, void *obj, short revents)
{
	(void)s;
	struct cr_shell *sh = obj;
	struct call *c = sh->current;
	if (!c || (revents & POLLERR)) {
		cr_close_fd(&sh->in_fd);
		return;
	}
	while (c->script_off < c->script_len) {
		ssize_t n =
			write(sh->in_fd, c->script + c->script_off, c->script_len - c->script_off);
		if (n > 0) {
			c->script_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EPIPE: the shell is gone; its exit ends the call. */
		cr_close_fd(&sh->in_fd);
		return;
	}
}

static void start_next(struct cr_srv *s, struct cr_shell *sh)
{
	while (!sh->current && sh->queue) {
		struct call *c = sh->queue;
		sh->queue = c->next;
		if (!sh->queue)
			sh->queue_tail = &sh->queue;
		c->next = NULL;
		sh->current = c;
		c->start = cr_now_ms();
		c->deadline = c->start + c->timeout_ms;
		if (c->restart && sh->pid > 0) {
			shell_stop(sh);
			sh->lost = true;
		}
		if (sh->pid <= 0) {
			struct cr_error err;
			if (shell_start(sh, &err) < 0) {
				finish(s, sh, cr_error_response(c->id, "%s", err.msg));
				continue;
			}
			c->restarted = sh->lost || c->restart;
			sh->lost = false;
			sh->started_once = true;
		}
		call_script(c);
	}
}

int cr_shell_request(struct cr_srv *s, struct cr_shell **shp, const char *id, json_t *req,
		     struct cr_error *err)
{
	const char *command = NULL;
	int64_t timeout_ms = CR_INIT_DEFAULT_TIMEOUT_MS, cap = CR_INIT_DEFAULT_OUTPUT_CAP;
	bool restart = false;
	int r;
	if ((r = cr_req_string(req, "command", true, &command, err)) < 0 ||
	    (r = cr_req_int(req, "timeout_ms", 1, CR_INIT_MAX_TIMEOUT_MS, &timeout_ms, err)) < 0 ||
	    (r = cr_req_int(req, "output_cap", 0, CR_INIT_MAX_OUTPUT_CAP, &cap, err)) < 0 ||
	    (r = cr_req_bool(req, "restart", &restart, err)) < 0)
		return r;
	if (!*shp) {
		struct cr_shell *sh = cr_xmalloc(sizeof(*sh));
		*sh = (struct cr_shell){ .in_fd = -1, .out_fd = -1 };
		sh->queue_tail = &sh->queue;
		*shp = sh;
	}
	struct cr_shell *sh = *shp;
	struct call *c = cr_xmalloc(sizeof(*c));
	*c = (struct call){ .restart = restart, .timeout_ms = timeout_ms };
	c->id = cr_xstrdup(id);
	c->command = cr_xstrdup(command);
	c->out.cap = (size_t)cap;
	*sh->queue_tail = c;
	sh->queue_tail = &c->next;
	start_next(s, sh);
	return 0;
}

void cr_shell_watch(struct cr_srv *s, struct cr_shell *sh, int64_t *deadline)
{
	if (!sh)
		return;
	if (sh->out_fd >= 0)
		cr_srv_watch(s, sh->out_fd, POLLIN, on_output, sh);
	struct call *c = sh->current;
	if (sh->in_fd >= 0 && c && c->script_off < c->script_len)
		cr_srv_watch(s, sh->in_fd, POLLOUT, on_input, sh);
	if (c)
		cr_deadline_min(deadline, c->deadline);
}

void cr_shell_tick(struct cr_srv *s, struct cr_shell *sh, int64_t now)
{
	if (!sh || !sh->current || now < sh->current->deadline)
		return;
	struct call *c = sh->current;
	/* Whatever the command did to the shell is lost with it: a new one starts now. */
	shell_stop(sh);
	commit(c, c->plen);
	json_t *resp = call_response(c);
	json_object_set_new(resp, "exit_code", json_null());
	json_object_set_new(resp, "timed_out", json_true());
	json_object_set_new(resp, "restarted", json_true());
	struct cr_error err;
	if (shell_start(sh, &err) < 0) {
		sh->lost = true;
		json_object_set_new(resp, "note",
				    json_pack("s+",
					      "the command timed out and the shell was killed; ",
					      err.msg));
	} else {
		char note[256];
		snprintf(
			note, sizeof(note),
			"the command did not finish within %lld ms: the shell and everything in "
			"its "
			"process group were killed, and a new shell started (working directory and "
			"variables are reset)",
			(long long)c->timeout_ms);
		json_object_set_new(resp, "note", json_string(note));
	}
	finish(s, sh, resp);
	start_next(s, sh);
}

bool cr_shell_exited(struct cr_srv *s, struct cr_shell *sh, pid_t pid, int status)
{
	if (!sh || pid != sh->pid)
		return false;
	/* Its group goes with it; what it wrote before it exited is read first. */
	kill(-pid, SIGKILL);
	if (sh->current)
		read_output(s, sh);
	shell_stop(sh);
	sh->lost = true;
	struct call *c = sh->current;
	if (c) {
		commit(c, c->plen);
		json_t *resp = call_response(c);
		char note[256];
		if (WIFEXITED(status)) {
			json_object_set_new(resp, "exit_code", json_integer(WEXITSTATUS(status)));
			snprintf(note, sizeof(note),
				 "the shell exited with status %d; the next call starts a new one "
				 "(working directory and variables are reset)",
				 WEXITSTATUS(status));
		} else {
			json_object_set_new(resp, "exit_code", json_null());
			json_object_set_new(resp, "signal",
					    json_string(cr_signal_name(WTERMSIG(status))));
			snprintf(note, sizeof(note),
				 "the shell was killed by %s; the next call starts a new one "
				 "(working directory and variables are reset)",
				 cr_signal_name(WTERMSIG(status)));
		}
		json_object_set_new(resp, "timed_out", json_false());
		json_object_set_new(resp, "note", json_string(note));
		finish(s, sh, resp);
	}
	start_next(s, sh);
	return true;
}

void cr_shell_free(struct cr_shell *sh)
{
	if (!sh)
		return;
	shell_stop(sh);
	call_free(sh->current);
	while (sh->queue) {
		struct call *c = sh->queue;
		sh->queue = c->next;
		call_free(c);
	}
	free(sh);
}
