/* Unit tests of corral-init's tool server and the host's client (init/, runtime/initclient):
 * each test starts build/corral-init --serve 3 as a child, in a fresh directory, with one end
 * of a socketpair as fd 3, and drives it with cr_init_call. The server is a subreaper, not
 * PID 1; when a test ends its socket closes and the server must exit 0 within seconds, leaving
 * nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/clock.h"
#include "corral/initproto.h"
#include "helpers.h"

static struct {
	pid_t pid;
	int fd;
	char *dir;
	json_t *held; /* every response, freed after the test */
	int next_id;
} srv = { .fd = -1 };

/* Starts corral-init --serve 3 in the test's directory, connected to srv.fd. */
static void srv_spawn(void)
{
	srv.pid = cr_test_spawn_init(srv.dir, &srv.fd);
}

static void srv_start(void)
{
	srv.dir = cr_test_tmpdir("init");
	srv.held = json_array();
	srv_spawn();
}

/* Closes the connection and waits (bounded) for the server to exit; returns its status. */
static int srv_close(void)
{
	int status = cr_test_close_init(srv.pid, srv.fd);
	srv.fd = -1;
	srv.pid = 0;
	return status;
}

static void srv_stop(void)
{
	int status = srv_close();
	json_decref(srv.held);
	srv.held = NULL;
	if (srv.dir) {
		cr_test_rmrf(srv.dir);
		free(srv.dir);
		srv.dir = NULL;
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "corral-init did not exit 0 when its socket closed (status %#x)", status);
}

TestSuite(init, .init = srv_start, .fini = srv_stop, .timeout = 30);

/* --- helpers ------------------------------------------------------------------------------ */

static json_t *hold(json_t *v)
{
	json_array_append_new(srv.held, v);
	return v;
}

/* Sends req (taken; an id is added when it has none) and returns the response (held). */
static json_t *call(json_t *req)
{
	cr_assert_not_null(req, "json_pack");
	if (!json_object_get(req, "id")) {
		char id[32];
		snprintf(id, sizeof(id), "t%d", ++srv.next_id);
		json_object_set_new(req, "id", json_string(id));
	}
	json_t *resp = NULL;
	struct cr_error err;
	int r = cr_init_call(srv.fd, req, 20000, &resp, &err);
	json_decref(req);
	cr_assert_eq(r, 0, "cr_init_call: %s", err.msg);
	return hold(resp);
}

static const char *error_of(json_t *resp)
{
	const char *e = json_string_value(json_object_get(resp, "error"));
	return e ? e : "(no error)";
}

static json_t *call_ok(json_t *req)
{
	json_t *resp = call(req);
	cr_assert(json_is_true(json_object_get(resp, "ok")), "request failed: %s", error_of(resp));
	return resp;
}

/* The error message of a request that must fail. */
static const char *call_err(json_t *req)
{
	json_t *resp = call(req);
	cr_assert(json_is_false(json_object_get(resp, "ok")), "request succeeded, want an error");
	return error_of(resp);
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	cr_assert_not_null(s, "response has no string \"%s\"", key);
	return s;
}

static json_int_t num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "response has no integer \"%s\"", key);
	return json_integer_value(v);
}

static bool flag(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_boolean(v), "response has no boolean \"%s\"", key);
	return json_is_true(v);
}

static json_t *sh(const char *script)
{
	return json_pack("{s:s, s:[s,s,s]}", "op", "exec", "argv", "sh", "-c", script);
}

/* A path in the test's directory (static buffer, one of four). */
static const char *in_dir(const char *name)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *b = buf[next++ % 4];
	snprintf(b, PATH_MAX, "%s/%s", srv.dir, name);
	return b;
}

static void put(const char *name, const char *content)
{
	const char *p = in_dir(name);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", p);
	for (char *s = strchr(dir + strlen(srv.dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(dir, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "create %s", p);
	fputs(content, f);
	fclose(f);
}

static char *slurp(const char *name)
{
	FILE *f = fopen(in_dir(name), "r");
	cr_assert_not_null(f, "open %s", name);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The pid a command wrote to a file in the test's directory (waits for it, bounded). */
static pid_t pid_in(const char *name)
{
	for (int64_t end = cr_now_ms() + 10000; cr_now_ms() < end; usleep(5000)) {
		FILE *f = fopen(in_dir(name), "r");
		int pid = 0;
		if (f) {
			int n = fscanf(f, "%d", &pid);
			fclose(f);
			if (n == 1 && pid > 0)
				return pid;
		}
	}
	cr_assert_fail("no pid in %s within 10 s", name);
	return -1;
}

/* Whether pid is gone (reaped, not merely a zombie) within ms. */
static bool gone_within(pid_t pid, int ms)
{
	for (int64_t end = cr_now_ms() + ms;; usleep(5000)) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		if (cr_now_ms() >= end)
			return false;
	}
}

static int parent_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	int ppid = -1;
	if (p)
		sscanf(p + 1, " %*c %d", &ppid);
	return ppid;
}

/* --- framing and the client --------------------------------------------------------------- */

Test(init, frame_round_trips_and_announces_its_length)
{
	json_t *msg = json_pack("{s:s, s:i}", "id", "x", "n", 7);
	char *frame;
	size_t len;
	struct cr_error err;
	cr_assert_eq(cr_init_frame_encode(msg, &frame, &len, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_init_frame_length((unsigned char *)frame), len - CR_INIT_FRAME_HEADER);
	cr_assert_eq(memcmp(frame + 4, "{\"id\":\"x\",\"n\":7}", len - 4), 0);
	json_t *back;
	cr_assert_eq(cr_init_frame_decode(frame + 4, len - 4, &back, &err), 0, "%s", err.msg);
	cr_assert(json_equal(back, msg));
	json_decref(back);
	json_decref(msg);
	free(frame);

	cr_assert_eq(cr_init_frame_decode("[1]", 3, &back, &err), -EBADMSG);
	cr_assert_eq(cr_init_frame_decode("{\"a\":", 5, &back, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "malformed JSON"), "%s", err.msg);
	unsigned char big[4] = { 0x01, 0x00, 0x00, 0x01 };
	cr_assert_eq(cr_init_frame_length(big), (1u << 24) + 1);
}

Test(init, client_refuses_a_request_without_an_id)
{
	json_t *req = json_pack("{s:s}", "op", "ping");
	json_t *resp = NULL;
	struct cr_error err;
	cr_assert_eq(cr_init_call(srv.fd, req, 1000, &resp, &err), -EINVAL);
	cr_assert_null(resp);
	json_decref(req);
}

Test(init, ping_answers_with_the_server_pid)
{
	json_t *r = call_ok(json_pack("{s:s}", "op", "ping"));
	cr_assert_eq(num(r, "pid"), srv.pid);
}

Test(init, client_times_out_and_the_late_answer_is_skipped)
{
	json_t *req = sh("sleep 1; echo late");
	json_object_set_new(req, "id", json_string("slow"));
	json_t *resp = NULL;
	struct cr_error err;
	int64_t t0 = cr_now_ms();
	cr_assert_eq(cr_init_call(srv.fd, req, 200, &resp, &err), -ETIMEDOUT, "%s", err.msg);
	cr_assert_lt(cr_now_ms() - t0, 1000);
	json_decref(req);
	/* The next call gets its own answer, not the late one. */
	json_t *r = call_ok(sh("echo mine"));
	cr_assert_str_eq(str(r, "stdout"), "mine\n");
}

/* --- malformed input ---------------------------------------------------------------------- */

static void send_raw(const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(srv.fd, p, len, MSG_NOSIGNAL);
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

static void send_frame(const char *payload)
{
	uint32_t len = (uint32_t)strlen(payload);
	unsigned char h[4] = { len >> 24, len >> 16, len >> 8, len };
	send_raw(h, 4);
	send_raw(payload, len);
}

static json_t *recv_one(void)
{
	json_t *msg = NULL;
	struct cr_error err;
	cr_assert_eq(cr_init_recv(srv.fd, 10000, &msg, &err), 0, "%s", err.msg);
	return hold(msg);
}

Test(init, malformed_frames_get_errors_and_the_server_goes_on)
{
	send_frame("this is not json");
	json_t *r = recv_one();
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(json_is_false(json_object_get(r, "ok")));
	cr_assert(strstr(error_of(r), "malformed"), "%s", error_of(r));

	send_frame("[1,2]");
	r = recv_one();
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(strstr(error_of(r), "not a JSON object"), "%s", error_of(r));

	send_frame("{\"id\": 5, \"op\": \"ping\"}");
	r = recv_one();
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(strstr(error_of(r), "\"id\""), "%s", error_of(r));

	char longid[300];
	memset(longid, 'a', 200);
	longid[200] = '\0';
	char frame[400];
	snprintf(frame, sizeof(frame), "{\"id\":\"%s\",\"op\":\"ping\"}", longid);
	send_frame(frame);
	r = recv_one();
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(strstr(error_of(r), "128"), "%s", error_of(r));

	/* Too large: skipped whole, answered, and the stream stays in step. */
	size_t big = CR_INIT_FRAME_MAX + 1;
	unsigned char h[4] = { big >> 24, big >> 16, big >> 8, big };
	send_raw(h, 4);
	char *junk = malloc(big);
	memset(junk, '{', big);
	send_raw(junk, big);
	free(junk);
	r = recv_one();
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(strstr(error_of(r), "exceeds"), "%s", error_of(r));

	/* The client reports a null-id refusal as the answer to its call. */
	struct cr_error err;
	json_t *resp = NULL;
	send_frame("nonsense");
	json_t *req = json_pack("{s:s, s:s}", "id", "after", "op", "ping");
	cr_assert_eq(cr_init_call(srv.fd, req, 10000, &resp, &err), -EPROTO);
	cr_assert(strstr(err.msg, "malformed"), "%s", err.msg);
	json_decref(req);
	/* (the ping's own answer follows and is skipped by the next call) */
	call_ok(json_pack("{s:s}", "op", "ping"));
}

Test(init, unknown_op_and_missing_or_wrong_fields_are_errors)
{
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "frobnicate")), "unknown op"));
	cr_assert(strstr(call_err(json_pack("{s:s}", "x", "y")), "\"op\""));
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "exec")), "\"argv\""));
	cr_assert(strstr(call_err(json_pack("{s:s, s:[]}", "op", "exec", "argv")), "empty"));
	cr_assert(strstr(call_err(json_pack("{s:s, s:[i]}", "op", "exec", "argv", 3)), "argv"));
	cr_assert(strstr(call_err(json_pack("{s:s, s:[s], s:s}", "op", "exec", "argv", "true",
					    "timeout_ms", "soon")),
			 "timeout_ms"));
	cr_assert(strstr(call_err(json_pack("{s:s, s:[s], s:[s]}", "op", "exec", "argv", "true",
					    "env", "NOEQUALS")),
			 "NAME=VALUE"));
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "shell")), "\"command\""));
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "read")), "\"path\""));
	cr_assert(strstr(call_err(json_pack("{s:s, s:s}", "op", "write", "path", "x")),
			 "\"content\""));
	cr_assert(strstr(call_err(json_pack("{s:s, s:s, s:s}", "op", "edit", "path", "x",
					    "old_string", "a")),
			 "\"new_string\""));
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "glob")), "\"pattern\""));
	cr_assert(strstr(call_err(json_pack("{s:s}", "op", "grep")), "\"pattern\""));
	cr_assert(strstr(call_err(json_pack("{s:s, s:s, s:i}", "op", "grep", "pattern", "x",
					    "ignore_case", 1)),
			 "ignore_case"));
}

/* --- exec --------------------------------------------------------------------------------- */

Test(init, exec_reports_exit_code_and_both_streams)
{
	json_t *r = call_ok(sh("echo out; echo err >&2; exit 7"));
	cr_assert_eq(num(r, "exit_code"), 7);
	cr_assert_str_eq(str(r, "stdout"), "out\n");
	cr_assert_str_eq(str(r, "stderr"), "err\n");
	cr_assert_not(flag(r, "timed_out"));
	cr_assert_geq(num(r, "duration_ms"), 0);
	cr_assert_null(json_object_get(r, "signal"));
	r = call_ok(sh("true"));
	cr_assert_eq(num(r, "exit_code"), 0);
}

Test(init, exec_reports_the_signal_that_killed_the_program)
{
	json_t *r = call_ok(sh("kill -KILL $$"));
	cr_assert_str_eq(str(r, "signal"), "SIGKILL");
	cr_assert_null(json_object_get(r, "exit_code"));
	r = call_ok(sh("kill -TERM $$"));
	cr_assert_str_eq(str(r, "signal"), "SIGTERM");
}

Test(init, exec_feeds_stdin_then_end_of_file)
{
	json_t *req =
		json_pack("{s:s, s:[s], s:s}", "op", "exec", "argv", "cat", "stdin", "one\ntwo\n");
	cr_assert_str_eq(str(call_ok(req), "stdout"), "one\ntwo\n");
	/* Without stdin a reader sees end of file at once. */
	json_t *r = call_ok(sh("cat; echo done"));
	cr_assert_str_eq(str(r, "stdout"), "done\n");
}

Test(init, exec_environment_is_exactly_the_given_one)
{
	json_t *r = call_ok(json_pack("{s:s, s:[s], s:[s,s]}", "op", "exec", "argv", "env", "env",
				      "PATH=/usr/bin:/bin", "ANSWER=42"));
	cr_assert_str_eq(str(r, "stdout"), "PATH=/usr/bin:/bin\nANSWER=42\n");
	/* No env: an empty environment (the program is still found on a default PATH). */
	r = call_ok(json_pack("{s:s, s:[s]}", "op", "exec", "argv", "env"));
	cr_assert_str_eq(str(r, "stdout"), "");
	cr_assert_eq(num(r, "exit_code"), 0);
}

Test(init, exec_runs_in_the_given_cwd_relative_to_the_server)
{
	mkdir(in_dir("sub"), 0755);
	json_t *req = sh("pwd");
	json_object_set_new(req, "cwd", json_string("sub"));
	json_t *r = call_ok(req);
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/sub\n", srv.dir);
	cr_assert_str_eq(str(r, "stdout"), want);
	/* Without cwd: the server's own directory. */
	snprintf(want, sizeof(want), "%s\n", srv.dir);
	cr_assert_str_eq(str(call_ok(sh("pwd")), "stdout"), want);

	req = sh("pwd");
	json_object_set_new(req, "cwd", json_string("missing"));
	const char *e = call_err(req);
	cr_assert(strstr(e, "cwd missing") && strstr(e, "No such file"), "%s", e);
}

Test(init, exec_of_a_missing_program_says_so)
{
	const char *e = call_err(json_pack("{s:s, s:[s]}", "op", "exec", "argv", "no-such-prog"));
	cr_assert(strstr(e, "no-such-prog") && strstr(e, "not found in PATH"), "%s", e);
	e = call_err(json_pack("{s:s, s:[s]}", "op", "exec", "argv", "/nonexistent/prog"));
	cr_assert(strstr(e, "/nonexistent/prog") && strstr(e, "No such file"), "%s", e);
}

Test(init, exec_output_cap_keeps_the_head_and_counts_the_rest_exactly)
{
	/* 1000 bytes on stdout, 50 on stderr; a cap of 100 per stream. */
	json_t *req = sh("i=0; while [ $i -lt 100 ]; do printf 0123456789; i=$((i+1)); done; "
			 "printf '%050d' 0 >&2");
	json_object_set_new(req, "output_cap", json_integer(100));
	json_t *r = call_ok(req);
	char want[256];
	char head[101];
	for (int i = 0; i < 100; i++)
		head[i] = (char)('0' + i % 10);
	head[100] = '\0';
	snprintf(want, sizeof(want), "%s\n[output truncated: 900 bytes omitted]\n", head);
	cr_assert_str_eq(str(r, "stdout"), want);
	cr_assert_eq(strlen(str(r, "stderr")), 50, "stderr under its cap is whole");
}

Test(init, exec_timeout_ends_a_program_that_ignores_sigterm)
{
	/* 1 s for sh to set its trap even on a loaded machine, then 0.5 s of grace. */
	json_t *req = sh("trap '' TERM; sleep 100 & echo $! > sleeper; wait; wait; wait");
	json_object_set_new(req, "timeout_ms", json_integer(1000));
	json_object_set_new(req, "grace_ms", json_integer(500));
	int64_t t0 = cr_now_ms();
	json_t *r = call_ok(req);
	int64_t took = cr_now_ms() - t0;
	cr_assert(flag(r, "timed_out"));
	cr_assert_str_eq(str(r, "signal"), "SIGKILL");
	cr_assert_geq(took, 1450, "ended before the grace period: %lld ms", (long long)took);
	cr_assert_lt(took, 6000, "took %lld ms (timeout 1000 + grace 500)", (long long)took);
	cr_assert(gone_within(pid_in("sleeper"), 5000), "the sleeper outlived the timeout");
}

Test(init, exec_timeout_default_grace_then_sigterm_suffices)
{
	/* A program that does not ignore SIGTERM dies of it, before any SIGKILL. */
	json_t *req = sh("sleep 100");
	json_object_set_new(req, "timeout_ms", json_integer(200));
	json_t *r = call_ok(req);
	cr_assert(flag(r, "timed_out"));
	cr_assert_str_eq(str(r, "signal"), "SIGTERM");
	cr_assert_lt(num(r, "duration_ms"), 1900);
}

Test(init, exec_leaves_nothing_in_its_process_group)
{
	json_t *r = call_ok(sh("sleep 100 & echo $! > bg"));
	cr_assert_eq(num(r, "exit_code"), 0);
	cr_assert(gone_within(pid_in("bg"), 5000),
		  "a background process in the command's group outlived it");
}

Test(init, exec_output_that_is_not_utf8_is_escaped)
{
	json_t *r = call_ok(sh("printf 'ok \\377\\376 \\303\\251 \\000!'"));
	cr_assert_str_eq(str(r, "stdout"), "ok \\xff\\xfe \xc3\xa9 \\x00!");
	/* A character cut by the cap is not split into escapes. */
	json_t *req = sh("printf 'ab\\303\\251cd'");
	json_object_set_new(req, "output_cap", json_integer(3));
	r = call_ok(req);
	cr_assert_str_eq(str(r, "stdout"), "ab\n[output truncated: 4 bytes omitted]\n");
}

Test(init, repeated_id_is_answered_without_running_again)
{
	json_t *first = call_ok(json_pack("{s:s, s:s, s:[s,s,s]}", "id", "once", "op", "exec",
					  "argv", "sh", "-c", "echo ran >> log; cat log"));
	json_t *again = call_ok(json_pack("{s:s, s:s, s:[s,s,s]}", "id", "once", "op", "exec",
					  "argv", "sh", "-c", "echo ran >> log; cat log"));
	cr_assert(json_equal(first, again));
	cr_assert_str_eq(slurp("log"), "ran\n");

	/* A repeat that arrives while the first still runs is answered when it completes. */
	json_t *req = json_pack("{s:s, s:s, s:[s,s,s]}", "id", "slow", "op", "exec", "argv", "sh",
				"-c", "sleep 0.3; echo ran >> slowlog");
	struct cr_error err;
	cr_assert_eq(cr_init_send(srv.fd, req, 1000, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_init_send(srv.fd, req, 1000, &err), 0, "%s", err.msg);
	json_decref(req);
	json_t *a = recv_one(), *b = recv_one();
	cr_assert_str_eq(str(a, "id"), "slow");
	cr_assert(json_equal(a, b));
	cr_assert_str_eq(slurp("slowlog"), "ran\n");
}

Test(init, pipelined_requests_are_answered_as_they_complete)
{
	struct cr_error err;
	json_t *slow = json_pack("{s:s, s:s, s:[s,s,s]}", "id", "slow", "op", "exec", "argv", "sh",
				 "-c", "sleep 0.5");
	json_t *fast = json_pack("{s:s, s:s}", "id", "fast", "op", "ping");
	cr_assert_eq(cr_init_send(srv.fd, slow, 1000, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_init_send(srv.fd, fast, 1000, &err), 0, "%s", err.msg);
	json_decref(slow);
	json_decref(fast);
	cr_assert_str_eq(str(recv_one(), "id"), "fast");
	cr_assert_str_eq(str(recv_one(), "id"), "slow");
}

/* --- processes ---------------------------------------------------------------------------- */

Test(init, orphans_are_reaped_and_nothing_outlives_the_server)
{
	/* A sleeper that leaves the command's group and is orphaned (double fork), and a few
	 * quick orphans: the server adopts them (subreaper) and reaps them. */
	/* (It waits for the sleeper to have left the group: the group goes when it exits.) */
	json_t *r = call_ok(sh("setsid sh -c 'echo $$ > orphan.tmp; mv orphan.tmp orphan; "
			       "exec sleep 100' & (sh -c 'exit 0' &); (true &); "
			       "(sleep 0.1 & echo $! > quick); "
			       "while [ ! -s orphan ]; do sleep 0.01; done"));
	cr_assert_eq(num(r, "exit_code"), 0);
	pid_t orphan = pid_in("orphan");
	pid_t quick = pid_in("quick");
	for (int64_t end = cr_now_ms() + 5000; parent_of(orphan) != srv.pid && cr_now_ms() < end;)
		usleep(5000);
	cr_assert_eq(parent_of(orphan), srv.pid, "the orphan was not adopted by the server");
	cr_assert(gone_within(quick, 5000), "a quick orphan was not reaped");

	cr_assert_eq(srv_close(), 0);
	cr_assert(gone_within(orphan, 5000), "the orphan outlived the server");
}

Test(init, server_exits_when_the_socket_closes_and_kills_what_runs)
{
	struct cr_error err;
	json_t *req = sh("echo $$ > running; exec sleep 100");
	json_object_set_new(req, "id", json_string("never-answered"));
	cr_assert_eq(cr_init_send(srv.fd, req, 1000, &err), 0, "%s", err.msg);
	json_decref(req);
	call_ok(json_pack("{s:s, s:s}", "op", "shell", "command", "echo $$ > shell; sleep 100 &"));
	pid_t running = pid_in("running"), shell = pid_in("shell");
	int64_t t0 = cr_now_ms();
	int status = srv_close();
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cr_assert_lt(cr_now_ms() - t0, 5000);
	cr_assert(gone_within(running, 5000), "a running command outlived the server");
	cr_assert(gone_within(shell, 5000), "the shell outlived the server");
}

Test(init, serves_as_pid1_and_ignores_signals_from_inside)
{
	cr_assert_eq(srv_close(), 0);
	/* The next child of this (per-test) process is PID 1 of a new pid namespace. Children
	 * go back to ours at the end: LeakSanitizer's checker at exit is a child too. */
	int ours = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(ours, 0);
	cr_test_need(unshare(CLONE_NEWPID) == 0, "cannot make a pid namespace: %s",
		     strerror(errno));
	srv_spawn();
	cr_assert_eq(num(call_ok(json_pack("{s:s}", "op", "ping")), "pid"), 1);
	/* A process of the sandbox cannot end its PID 1. */
	call_ok(sh("kill -TERM 1; kill -INT 1; kill -HUP 1"));
	cr_assert_eq(num(call_ok(json_pack("{s:s}", "op", "ping")), "pid"), 1);
	json_t *r = call_ok(sh("(sleep 0.1 &); sleep 0.3; echo $PPID"));
	cr_assert_str_eq(str(r, "stdout"), "1\n");
	int64_t t0 = cr_now_ms();
	int status = srv_close();
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cr_assert_lt(cr_now_ms() - t0, 5000);
	cr_assert_eq(setns(ours, CLONE_NEWPID), 0, "back to our pid namespace: %s",
		     strerror(errno));
	close(ours);
}

/* --- shell -------------------------------------------------------------------------------- */

static json_t *shell(const char *command)
{
	return call_ok(json_pack("{s:s, s:s}", "op", "shell", "command", command));
}

Test(init, shell_keeps_cwd_and_variables_between_calls)
{
	mkdir(in_dir("deeper"), 0755);
	json_t *r = shell("cd deeper && GREETING='hello there'");
	cr_assert_eq(num(r, "exit_code"), 0);
	cr_assert_not(flag(r, "restarted"));
	r = shell("echo \"$GREETING in $(basename \"$PWD\")\"");
	cr_assert_str_eq(str(r, "output"), "hello there in deeper\n");
	cr_assert_not(flag(r, "restarted"));
}

Test(init, shell_combines_output_and_reports_the_exit_code)
{
	json_t *r = shell("echo out; echo err >&2; false");
	cr_assert_str_eq(str(r, "output"), "out\nerr\n");
	cr_assert_eq(num(r, "exit_code"), 1);
	cr_assert_not(flag(r, "timed_out"));
	/* Output without a final newline is returned as it is. */
	cr_assert_str_eq(str(shell("printf 'no newline'"), "output"), "no newline");
	/* Quotes of every kind pass through; a syntax error is the command's, not the shell's. */
	cr_assert_str_eq(str(shell("X=kept; echo 'it'\"'\"'s' \"$X\""), "output"), "it's kept\n");
	r = shell("echo \"unterminated");
	cr_assert_neq(num(r, "exit_code"), 0);
	r = shell("echo $X");
	cr_assert_str_eq(str(r, "output"), "kept\n");
	cr_assert_not(flag(r, "restarted"));
	/* A command that reads stdin gets end of file, not the next command. */
	cr_assert_str_eq(str(shell("cat; echo after"), "output"), "after\n");
}

Test(init, shell_output_cap_counts_what_it_omits)
{
	json_t *r = call_ok(json_pack("{s:s, s:s, s:i}", "op", "shell", "command",
				      "printf '%0300d' 0", "output_cap", 10));
	cr_assert_str_eq(str(r, "output"), "0000000000\n[output truncated: 290 bytes omitted]\n");
	cr_assert_eq(num(r, "exit_code"), 0);
}

Test(init, shell_is_restarted_after_it_exits)
{
	shell("X=before");
	json_t *r = shell("echo bye; exit 3");
	cr_assert_eq(num(r, "exit_code"), 3);
	cr_assert_str_eq(str(r, "output"), "bye\n");
	cr_assert(strstr(str(r, "note"), "exited"), "%s", str(r, "note"));
	r = shell("echo \"[$X]\"");
	cr_assert(flag(r, "restarted"));
	cr_assert_str_eq(str(r, "output"), "[]\n");
	cr_assert_not(flag(shell("true"), "restarted"));
}

Test(init, shell_timeout_kills_its_group_and_restarts_it)
{
	/* (The set-up is a call of its own: a loaded machine cannot make the timeout come first.)
	 */
	shell("echo $$ > shellpid; Y=old; sleep 100 & echo $! > bg");
	json_t *r = call_ok(json_pack("{s:s, s:s, s:i}", "op", "shell", "command",
				      "echo started; sleep 100", "timeout_ms", 1000));
	cr_assert(flag(r, "timed_out"));
	cr_assert(flag(r, "restarted"));
	cr_assert(json_is_null(json_object_get(r, "exit_code")));
	cr_assert_str_eq(str(r, "output"), "started\n");
	cr_assert_not_null(json_string_value(json_object_get(r, "note")));
	cr_assert(gone_within(pid_in("shellpid"), 5000), "the timed-out shell lives on");
	cr_assert(gone_within(pid_in("bg"), 5000), "its background job lives on");
	r = shell("echo \"[$Y]\"");
	cr_assert_str_eq(str(r, "output"), "[]\n");
	cr_assert_not(flag(r, "restarted"), "the restart was reported already");
}

Test(init, shell_restart_true_starts_a_fresh_shell)
{
	shell("Z=1");
	json_t *r = call_ok(json_pack("{s:s, s:s, s:b}", "op", "shell", "command", "echo \"[$Z]\"",
				      "restart", 1));
	cr_assert(flag(r, "restarted"));
	cr_assert_str_eq(str(r, "output"), "[]\n");
}

/* --- read, write, edit -------------------------------------------------------------------- */

static json_t *read_req(const char *path)
{
	return json_pack("{s:s, s:s}", "op", "read", "path", path);
}

Test(init, read_returns_lines_and_ranges)
{
	put("f.txt", "one\ntwo\nthree\nfour");
	json_t *r = call_ok(read_req("f.txt"));
	cr_assert_str_eq(str(r, "content"), "one\ntwo\nthree\nfour");
	cr_assert_eq(num(r, "total_lines"), 4);
	cr_assert_not(flag(r, "truncated"));

	json_t *req = read_req(in_dir("f.txt"));
	json_object_set_new(req, "start_line", json_integer(2));
	json_object_set_new(req, "end_line", json_integer(3));
	r = call_ok(req);
	cr_assert_str_eq(str(r, "content"), "two\nthree\n");
	cr_assert_eq(num(r, "total_lines"), 4);
	cr_assert_eq(num(r, "start_line"), 2);
	cr_assert_eq(num(r, "end_line"), 3);

	req = read_req("f.txt");
	json_object_set_new(req, "start_line", json_integer(4));
	json_object_set_new(req, "end_line", json_integer(99));
	cr_assert_str_eq(str(call_ok(req), "content"), "four");

	req = read_req("f.txt");
	json_object_set_new(req, "start_line", json_integer(9));
	cr_assert(strstr(call_err(req), "past the end"));

	put("empty", "");
	r = call_ok(read_req("empty"));
	cr_assert_str_eq(str(r, "content"), "");
	cr_assert_eq(num(r, "total_lines"), 0);
}

Test(init, read_refuses_missing_directories_and_binary_files)
{
	const char *e = call_err(read_req("nope.txt"));
	cr_assert(strstr(e, "nope.txt") && strstr(e, "No such file"), "%s", e);
	mkdir(in_dir("adir"), 0755);
	e = call_err(read_req("adir"));
	cr_assert(strstr(e, "is a directory"), "%s", e);
	FILE *f = fopen(in_dir("bin"), "w");
	fwrite("ELF\0\1\2text", 1, 11, f);
	fclose(f);
	e = call_err(read_req("bin"));
	cr_assert(strstr(e, "binary"), "%s", e);
}

Test(init, read_max_bytes_keeps_whole_lines)
{
	put("long.txt", "aaaa\nbbbb\ncccc\n");
	json_t *req = read_req("long.txt");
	json_object_set_new(req, "max_bytes", json_integer(12));
	json_t *r = call_ok(req);
	cr_assert_str_eq(str(r, "content"), "aaaa\nbbbb\n");
	cr_assert(flag(r, "truncated"));
	cr_assert_eq(num(r, "end_line"), 2);
	cr_assert_eq(num(r, "total_lines"), 3);
}

Test(init, write_replaces_atomically_and_keeps_the_mode)
{
	put("w.txt", "old\n");
	cr_assert_eq(chmod(in_dir("w.txt"), 0640), 0);
	struct stat before, after;
	cr_assert_eq(stat(in_dir("w.txt"), &before), 0);
	int reader = open(in_dir("w.txt"), O_RDONLY | O_CLOEXEC);
	cr_assert_geq(reader, 0);

	json_t *r = call_ok(json_pack("{s:s, s:s, s:s}", "op", "write", "path", "w.txt", "content",
				      "new content\n"));
	cr_assert_eq(num(r, "bytes"), 12);
	cr_assert_not(flag(r, "created"));
	cr_assert_str_eq(slurp("w.txt"), "new content\n");
	cr_assert_eq(stat(in_dir("w.txt"), &after), 0);
	cr_assert_eq(after.st_mode & 07777, 0640);
	/* A new inode renamed over the old one: a reader of the old file still sees all of it. */
	cr_assert_neq(after.st_ino, before.st_ino);
	char buf[16] = { 0 };
	cr_assert_eq(read(reader, buf, sizeof(buf) - 1), 4);
	cr_assert_str_eq(buf, "old\n");
	close(reader);

	/* Nothing but the file is left in the directory (no temporary file). */
	json_t *g = call_ok(json_pack("{s:s, s:s}", "op", "glob", "pattern", ".*"));
	cr_assert_eq(json_array_size(json_object_get(g, "matches")), 0);
}

Test(init, write_creates_the_file_and_its_parent_directories)
{
	json_t *r = call_ok(json_pack("{s:s, s:s, s:s}", "op", "write", "path", "a/b/c.txt",
				      "content", "deep\n"));
	cr_assert(flag(r, "created"));
	cr_assert_str_eq(slurp("a/b/c.txt"), "deep\n");
	mkdir(in_dir("isdir"), 0755);
	const char *e = call_err(
		json_pack("{s:s, s:s, s:s}", "op", "write", "path", "isdir", "content", ""));
	cr_assert(strstr(e, "is a directory"), "%s", e);
}

static json_t *edit_req(const char *old, const char *new, bool all)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b}", "op", "edit", "path", "e.txt", "old_string",
			 old, "new_string", new, "replace_all", all);
}

Test(init, edit_replaces_exactly_one_occurrence)
{
	put("e.txt", "alpha beta gamma\n");
	cr_assert_eq(chmod(in_dir("e.txt"), 0600), 0);
	json_t *r = call_ok(edit_req("beta", "BETA", false));
	cr_assert_eq(num(r, "replacements"), 1);
	cr_assert_str_eq(slurp("e.txt"), "alpha BETA gamma\n");
	struct stat st;
	cr_assert_eq(stat(in_dir("e.txt"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
}

Test(init, edit_says_when_the_string_is_missing_or_not_unique)
{
	put("e.txt", "x = 1; x = 2; x = 3;\n");
	const char *e = call_err(edit_req("y = 1", "y = 0", false));
	cr_assert(strstr(e, "not found") && strstr(e, "e.txt"), "%s", e);
	e = call_err(edit_req("x = ", "y = ", false));
	cr_assert(strstr(e, "found 3 times"), "%s", e);
	cr_assert_str_eq(slurp("e.txt"), "x = 1; x = 2; x = 3;\n", "nothing written on error");
	json_t *r = call_ok(edit_req("x = ", "y = ", true));
	cr_assert_eq(num(r, "replacements"), 3);
	cr_assert_str_eq(slurp("e.txt"), "y = 1; y = 2; y = 3;\n");
	e = call_err(edit_req("", "z", false));
	cr_assert(strstr(e, "empty"), "%s", e);
}

/* --- glob, grep --------------------------------------------------------------------------- */

static void touch_at(const char *name, time_t when)
{
	struct timespec ts[2] = { { .tv_sec = when }, { .tv_sec = when } };
	cr_assert_eq(utimensat(AT_FDCWD, in_dir(name), ts, 0), 0, "utimensat %s", name);
}

Test(init, glob_matches_any_depth_and_braces_newest_first)
{
	put("top.c", "");
	put("src/a.c", "");
	put("src/lib/b.h", "");
	put("src/lib/deep/c.c", "");
	put("src/notes.txt", "");
	put(".hidden/h.c", "");
	touch_at("top.c", 2000);
	touch_at("src/a.c", 1000);
	touch_at("src/lib/b.h", 4000);
	touch_at("src/lib/deep/c.c", 3000);

	json_t *r = call_ok(json_pack("{s:s, s:s}", "op", "glob", "pattern", "**/*.{c,h}"));
	json_t *m = json_object_get(r, "matches");
	cr_assert_eq(json_array_size(m), 4);
	const char *want[] = { "src/lib/b.h", "src/lib/deep/c.c", "top.c", "src/a.c" };
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_eq(json_string_value(json_array_get(m, i)), want[i]);
	cr_assert_not(flag(r, "truncated"));

	/* With a base path the results are named under it; "?" and "[...]" within a segment. */
	r = call_ok(json_pack("{s:s, s:s, s:s}", "op", "glob", "pattern", "*/[ab].?", "path",
			      in_dir("src")));
	m = json_object_get(r, "matches");
	cr_assert_eq(json_array_size(m), 1);
	char want_b[PATH_MAX];
	snprintf(want_b, sizeof(want_b), "%s/src/lib/b.h", srv.dir);
	cr_assert_str_eq(json_string_value(json_array_get(m, 0)), want_b);

	/* A hidden directory is found when the pattern names it. */
	r = call_ok(json_pack("{s:s, s:s}", "op", "glob", "pattern", ".hidden/*.c"));
	cr_assert_eq(json_array_size(json_object_get(r, "matches")), 1);
	const char *e = call_err(
		json_pack("{s:s, s:s, s:s}", "op", "glob", "pattern", "*", "path", "no-such-dir"));
	cr_assert(strstr(e, "no-such-dir"), "%s", e);
}

Test(init, glob_caps_its_matches)
{
	mkdir(in_dir("many"), 0755);
	for (int i = 0; i < 1005; i++) {
		char name[64];
		snprintf(name, sizeof(name), "many/f%d", i);
		int fd = open(in_dir(name), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		cr_assert_geq(fd, 0);
		close(fd);
	}
	json_t *r = call_ok(json_pack("{s:s, s:s}", "op", "glob", "pattern", "many/*"));
	cr_assert_eq(json_array_size(json_object_get(r, "matches")), 1000);
	cr_assert_eq(num(r, "count"), 1005);
	cr_assert(flag(r, "truncated"));
}

Test(init, grep_finds_regex_matches_and_skips_binary_files_and_git)
{
	put("a.txt", "foo\nbar123\nbaz\n");
	put("sub/d.txt", "nothing\nBAR7 here\n");
	put("sub/e.md", "bar5\n");
	put(".git/objects", "bar9\n");
	FILE *f = fopen(in_dir("b.bin"), "w");
	fwrite("bar1\0\0", 1, 6, f);
	fclose(f);

	json_t *r = call_ok(json_pack("{s:s, s:s}", "op", "grep", "pattern", "bar[0-9]+"));
	json_t *m = json_object_get(r, "matches");
	cr_assert_eq(json_array_size(m), 2);
	cr_assert_str_eq(str(json_array_get(m, 0), "path"), "a.txt");
	cr_assert_eq(num(json_array_get(m, 0), "line"), 2);
	cr_assert_str_eq(str(json_array_get(m, 0), "text"), "bar123");
	cr_assert_str_eq(str(json_array_get(m, 1), "path"), "sub/e.md");

	r = call_ok(json_pack("{s:s, s:s, s:s, s:b}", "op", "grep", "pattern", "bar[0-9]", "glob",
			      "*.{txt,py}", "ignore_case", 1));
	m = json_object_get(r, "matches");
	cr_assert_eq(json_array_size(m), 2);
	cr_assert_str_eq(str(json_array_get(m, 1), "path"), "sub/d.txt");
	cr_assert_str_eq(str(json_array_get(m, 1), "text"), "BAR7 here");

	r = call_ok(json_pack("{s:s, s:s, s:s, s:i}", "op", "grep", "pattern", "a", "path",
			      in_dir("a.txt"), "max_matches", 1));
	m = json_object_get(r, "matches");
	cr_assert_eq(json_array_size(m), 1);
	cr_assert_str_eq(str(json_array_get(m, 0), "path"), in_dir("a.txt"));
	cr_assert(flag(r, "truncated"));

	const char *e = call_err(json_pack("{s:s, s:s}", "op", "grep", "pattern", "a(b"));
	cr_assert(strstr(e, "regular expression"), "%s", e);
}

/* --- --listen: several clients at once ---------------------------------------------------- */

static struct {
	pid_t pid;
	char *dir;
	struct sockaddr_un addr;
} lsrv;

static void lsrv_start(void)
{
	lsrv.dir = cr_test_tmpdir("init-listen");
	lsrv.pid = cr_test_spawn_listening_init(lsrv.dir, &lsrv.addr);
}

static void lsrv_stop(void)
{
	int status = -1;
	if (lsrv.pid > 0) {
		kill(lsrv.pid, SIGTERM);
		waitpid(lsrv.pid, &status, 0);
	}
	cr_test_rmrf(lsrv.dir);
	free(lsrv.dir);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "corral-init --listen did not exit 0 on SIGTERM (status %#x)", status);
}

TestSuite(init_listen, .init = lsrv_start, .fini = lsrv_stop, .timeout = 30);

static int client(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&lsrv.addr, sizeof(lsrv.addr)) == 0,
		  "connect: %s", strerror(errno));
	return fd;
}

static void send_req(int fd, const char *id, json_t *req)
{
	json_object_set_new(req, "id", json_string(id));
	struct cr_error err;
	cr_assert_eq(cr_init_send(fd, req, 1000, &err), 0, "%s", err.msg);
	json_decref(req);
}

/* The next response on fd, within timeout_ms; NULL when none came. */
static json_t *recv_within(int fd, int timeout_ms)
{
	json_t *msg = NULL;
	struct cr_error err;
	int r = cr_init_recv(fd, timeout_ms, &msg, &err);
	if (r == -ETIMEDOUT)
		return NULL;
	cr_assert_eq(r, 0, "%s", err.msg);
	return msg;
}

static json_t *exec_req(const char *script)
{
	return json_pack("{s:s, s:[s,s,s]}", "op", "exec", "argv", "sh", "-c", script);
}

Test(init_listen, clients_are_served_at_once_and_each_gets_its_own_answers)
{
	int a = client(), b = client();
	send_req(a, "a-slow", exec_req("sleep 0.5; echo a"));
	send_req(b, "b-ping", json_pack("{s:s}", "op", "ping"));
	/* b is answered while a's request still runs */
	json_t *rb = recv_within(b, 400);
	cr_assert_not_null(rb, "the second client waited for the first");
	cr_assert_str_eq(json_string_value(json_object_get(rb, "id")), "b-ping");
	json_decref(rb);
	json_t *ra = recv_within(a, 5000);
	cr_assert_not_null(ra);
	cr_assert_str_eq(json_string_value(json_object_get(ra, "id")), "a-slow");
	cr_assert_str_eq(json_string_value(json_object_get(ra, "stdout")), "a\n");
	json_decref(ra);
	cr_assert_null(recv_within(b, 200), "a's answer went to a alone");
	close(a);
	close(b);
}

Test(init_listen, an_id_repeated_by_another_client_runs_once_and_answers_both)
{
	int a = client(), b = client();
	send_req(a, "once", exec_req("sleep 0.3; echo ran >> count; cat count"));
	usleep(50000);
	send_req(b, "once", exec_req("sleep 0.3; echo ran >> count; cat count"));
	json_t *ra = recv_within(a, 5000), *rb = recv_within(b, 5000);
	cr_assert(ra && rb);
	cr_assert(json_equal(ra, rb));
	cr_assert_str_eq(json_string_value(json_object_get(ra, "stdout")), "ran\n");
	json_decref(ra);
	json_decref(rb);
	/* a client that went away before its answer: the next one repeating the id gets it */
	send_req(a, "gone", exec_req("sleep 0.2; echo late"));
	close(a);
	usleep(400000);
	int c = client();
	send_req(c, "gone", exec_req("echo must not run"));
	json_t *rc = recv_within(c, 5000);
	cr_assert_not_null(rc);
	cr_assert_str_eq(json_string_value(json_object_get(rc, "stdout")), "late\n");
	json_decref(rc);
	close(b);
	close(c);
}

Test(init_listen, clients_past_the_limit_wait_for_a_free_slot)
{
	enum {
		MAX = 16
	};
	int fds[MAX];
	for (int i = 0; i < MAX; i++) {
		fds[i] = client();
		send_req(fds[i], "p", json_pack("{s:s}", "op", "ping"));
		json_t *r = recv_within(fds[i], 5000);
		cr_assert_not_null(r, "client %d of %d is served", i + 1, MAX);
		json_decref(r);
	}
	int extra = client(); /* (in the listening socket's backlog) */
	send_req(extra, "x", json_pack("{s:s}", "op", "ping"));
	cr_assert_null(recv_within(extra, 300), "a client past the limit waits");
	close(fds[0]);
	json_t *r = recv_within(extra, 5000);
	cr_assert_not_null(r, "served once a slot is free");
	cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "x");
	json_decref(r);
	for (int i = 1; i < MAX; i++)
		close(fds[i]);
	close(extra);
}

Test(init, requests_past_what_the_id_cache_holds_are_refused_not_forgotten, .timeout = 60)
{
	/* 512 shell calls queued behind one that sleeps: each is a running request */
	struct cr_error err;
	for (int i = 0; i < 512; i++) {
		char id[16];
		snprintf(id, sizeof(id), "q%d", i);
		json_t *req = json_pack("{s:s, s:s, s:s}", "id", id, "op", "shell", "command",
					i == 0 ? "sleep 1" : "true");
		cr_assert_eq(cr_init_send(srv.fd, req, 5000, &err), 0, "%s", err.msg);
		json_decref(req);
	}
	json_t *ping = json_pack("{s:s, s:s}", "id", "one-too-many", "op", "ping");
	cr_assert_eq(cr_init_send(srv.fd, ping, 5000, &err), 0, "%s", err.msg);
	json_decref(ping);
	json_t *r = recv_one(); /* the refusal comes first: the rest wait for the sleep */
	cr_assert_str_eq(str(r, "id"), "one-too-many");
	cr_assert(!json_is_true(json_object_get(r, "ok")));
	cr_assert(strstr(error_of(r), "512 requests are running"), "%s", error_of(r));
	int answered = 0;
	for (int i = 0; i < 512; i++) {
		json_t *q = recv_one();
		answered += json_is_true(json_object_get(q, "ok"));
	}
	cr_assert_eq(answered, 512, "every queued call ran and was answered");
	/* once they are done, a new request runs again */
	cr_assert_eq(num(call_ok(json_pack("{s:s}", "op", "ping")), "pid"), srv.pid);
}
