/* Unit tests of runtime/hands: lazy and eager provisioning, a sandbox lost (its init killed
 * from the host) and replaced on the same workspace, a paused sandbox, handoff, the OOM killer
 * named as a tool error (in the VM, where the memory controller exists), and clean-up. Real
 * sandboxes, in a cgroup made for each test. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/cleanup.h"
#include "corral/fileio.h"
#include "corral/hands.h"
#include "corral/log.h"
#include "helpers.h"

struct fixture {
	char *dir, *cgroup, *init;
	struct cr_hands_config cfg;
	struct cr_hands *h;
};

static void setup(struct fixture *f, bool eager)
{
	struct stat st;
	cr_test_need(stat("/proc/self/ns/user", &st) == 0, "no user namespaces");
	f->dir = cr_test_tmpdir("hands");
	f->cgroup = cr_test_cgroup("hands", NULL);
	const char *b = getenv("CORRAL_BUILD");
	cr_assert(asprintf(&f->init, "%s/corral-init", b ? b : "build") > 0);
	cr_hands_config_init(&f->cfg);
	f->cfg.sandbox.state_dir = f->dir;
	f->cfg.sandbox.init_path = f->init;
	f->cfg.sandbox.uid_base = 300000;
	f->cfg.sandbox.cgroup_parent = f->cgroup;
	f->cfg.eager = eager;
	struct cr_error err;
	cr_assert_eq(cr_hands_new(&f->cfg, "sesn_a", &f->h, &err), 0, "%s", err.msg);
}

static void teardown(struct fixture *f)
{
	struct cr_error err;
	cr_assert_eq(cr_hands_destroy(f->h, false, &err), 0, "%s", err.msg);
	struct stat st;
	cr_assert_neq(stat(cr_hands_workspace(f->h), &st), 0, "workspace removed");
	cr_hands_free(f->h);
	char **list;
	size_t n;
	cr_assert_eq(cr_hands_list(f->dir, &list, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 0, "the record is removed with the hands");
	free(list);
	cr_assert_eq(rmdir(f->cgroup), 0, "no sandbox cgroup left under %s: %s", f->cgroup,
		     strerror(errno));
	cr_test_rmrf(f->dir);
	free(f->dir);
	free(f->cgroup);
	free(f->init);
}

static struct cr_tool_result call(struct fixture *f, const char *name, const char *input)
{
	struct cr_tool_result res;
	struct cr_error err;
	cr_assert_eq(cr_hands_execute(f->h, NULL, name, input, strlen(input), &res, &err), 0,
		     "%s %s: %s", name, input, err.msg);
	return res;
}

static void bash_ok(struct fixture *f, const char *command, const char *want)
{
	char input[512];
	snprintf(input, sizeof(input), "{\"command\": \"%s\"}", command);
	struct cr_tool_result res = call(f, "bash", input);
	cr_assert(!res.is_error, "%s: %s", command, res.content);
	if (want)
		cr_assert_str_eq(res.content, want, "%s", command);
	cr_tool_result_clear(&res);
}

Test(hands, lazy_by_default_and_provisioned_once, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	cr_assert_null(cr_hands_sandbox(f.h), "nothing made before the first call");
	cr_assert_eq(strncmp(cr_hands_handle(f.h), "sbh_", 4), 0);
	cr_assert_eq(strlen(cr_hands_handle(f.h)), 4 + 26, "128 bits in base32");
	/* a call that cannot run makes no sandbox either */
	struct cr_tool_result res = call(&f, "Bash", "{}");
	cr_assert(res.is_error && strstr(res.content, "unknown tool"));
	cr_tool_result_clear(&res);
	cr_assert_null(cr_hands_sandbox(f.h));
	bash_ok(&f, "id -u; hostname; pwd", "0\nsandbox\n/workspace\n");
	bash_ok(&f, "echo kept > note", "");
	cr_assert_not_null(cr_hands_sandbox(f.h));
	cr_assert_eq(cr_hands_provisioned(f.h), 1);
	teardown(&f);
}

Test(hands, eager_provisions_at_once, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, true);
	cr_assert_not_null(cr_hands_sandbox(f.h));
	cr_assert_eq(cr_hands_provisioned(f.h), 1);
	bash_ok(&f, "true", "");
	cr_assert_eq(cr_hands_provisioned(f.h), 1);
	teardown(&f);
}

Test(hands, a_killed_init_is_lost_once_then_replaced_on_the_same_workspace, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	bash_ok(&f, "echo survives > note; X=1", "");
	struct cr_sandbox *first = cr_hands_sandbox(f.h);
	cr_assert_eq(kill(cr_sandbox_pid(first), SIGKILL), 0);
	struct cr_tool_result res = call(&f, "bash", "{\"command\": \"echo $X\"}");
	cr_assert(res.is_error);
	cr_assert(strstr(res.content, "sandbox lost: its init was killed by signal 9"), "%s",
		  res.content);
	cr_tool_result_clear(&res);
	cr_assert_null(cr_hands_sandbox(f.h), "the lost sandbox is gone");
	/* the next call provisions anew; the workspace carried over, the shell did not */
	bash_ok(&f, "cat note; echo \\\"[$X]\\\"", "survives\n[]\n");
	cr_assert_eq(cr_hands_provisioned(f.h), 2);
	teardown(&f);
}

Test(hands, a_call_to_a_paused_sandbox_waits_then_fails_and_never_runs, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, true);
	/* paused_wait_ms is read at cr_hands_new: new hands with a short one */
	struct cr_error err;
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.cfg.paused_wait_ms = 300;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), 0, "%s", err.msg);
	struct cr_sandbox *sb = cr_hands_sandbox(f.h);
	cr_assert_eq(cr_sandbox_pause(sb, &err), 0, "%s", err.msg);
	struct cr_tool_result res = call(&f, "bash", "{\"command\": \"touch ran\"}");
	cr_assert(res.is_error && strstr(res.content, "is paused; the call waited 300 ms"), "%s",
		  res.content);
	cr_tool_result_clear(&res);
	cr_assert_eq(cr_sandbox_resume(sb, &err), 0, "%s", err.msg);
	bash_ok(&f, "test -e ran && echo ran || echo not run", "not run\n");
	cr_assert_eq(cr_hands_sandbox(f.h), sb, "paused is not lost");
	teardown(&f);
}

Test(hands, handoff_needs_the_handle_and_keeps_the_sandbox, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	bash_ok(&f, "X=7", "");
	struct cr_sandbox *sb = cr_hands_sandbox(f.h);
	struct cr_error err;
	cr_assert_eq(cr_hands_handoff(f.h, "sbh_guess", "sesn_b", 0, &err), -EACCES);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_a");
	char handle[CR_HANDS_HANDLE_MAX];
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(f.h));
	cr_assert_eq(cr_hands_handoff(f.h, handle, "sesn_b", 0, &err), 0, "%s", err.msg);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_b");
	cr_assert_eq(cr_hands_sandbox(f.h), sb);
	bash_ok(&f, "echo $X", "7\n");
	teardown(&f);
}

Test(hands, the_oom_killer_is_a_tool_error_naming_the_memory_limit, .timeout = 120)
{
	struct fixture f = { 0 };
	setup(&f, false);
	struct cr_error err;
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.cfg.sandbox.memory_max = 64 << 20;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), 0, "%s", err.msg);
	bash_ok(&f, "true", "");
	char path[4096];
	snprintf(path, sizeof(path), "%s/memory.max", cr_sandbox_cgroup(cr_hands_sandbox(f.h)));
	bool limited = access(path, F_OK) == 0;
	if (!limited)
		teardown(&f);
	cr_test_need(limited, "no memory controller in this cgroup2 (the VM test runs this)");
	/* dd allocates its whole 256 MiB block at once, above memory.max (no swap) */
	struct cr_tool_result res =
		call(&f, "bash", "{\"command\": \"dd if=/dev/zero of=/dev/null bs=256M count=1\"}");
	cr_assert(res.is_error, "%s", res.content);
	cr_assert(strstr(res.content, "OOM killer") && strstr(res.content, "67108864 bytes"), "%s",
		  res.content);
	cr_tool_result_clear(&res);
	bash_ok(&f, "echo still here", "still here\n");
	cr_assert_eq(cr_hands_provisioned(f.h), 1, "a process died, not the sandbox");
	teardown(&f);
}

Test(hands, found_again_after_a_restart_with_the_same_shell, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	bash_ok(&f, "X=9", "");
	char handle[CR_HANDS_HANDLE_MAX];
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(f.h));
	cr_hands_free(f.h); /* the host side goes away; the sandbox runs on */
	f.h = NULL;
	char **list;
	size_t n;
	struct cr_error err;
	cr_assert_eq(cr_hands_list(f.dir, &list, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0], handle);
	free(list[0]);
	free(list);
	cr_assert_eq(cr_hands_open(&f.cfg, "sbh_nope", &f.h, &err), -EINVAL);
	cr_assert_eq(cr_hands_open(&f.cfg, "sbh_00000000000000000000000000", &f.h, &err), -ENOENT);
	cr_assert_eq(cr_hands_open(&f.cfg, handle, &f.h, &err), 0, "%s", err.msg);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_a");
	bash_ok(&f, "echo $X", "9\n");
	cr_assert_eq(cr_hands_provisioned(f.h), 0, "the same sandbox, not a new one");
	teardown(&f);
}

Test(hands, a_sandbox_that_died_while_down_is_cleaned_up_and_reported_once, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	bash_ok(&f, "echo kept > note", "");
	char handle[CR_HANDS_HANDLE_MAX], cgroup[4096];
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(f.h));
	snprintf(cgroup, sizeof(cgroup), "%s", cr_sandbox_cgroup(cr_hands_sandbox(f.h)));
	pid_t pid = cr_sandbox_pid(cr_hands_sandbox(f.h));
	cr_hands_free(f.h);
	f.h = NULL;
	cr_assert_eq(kill(pid, SIGKILL), 0);
	/* the host side comes back once the sandbox is gone (every process out of its cgroup) */
	char events[4200];
	snprintf(events, sizeof(events), "%s/cgroup.events", cgroup);
	bool empty = false;
	for (int i = 0; i < 500 && !empty; i++) {
		_cleanup_free_ char *text = NULL;
		empty = cr_read_file(events, 4096, &text, NULL, NULL) == 0 &&
			strstr(text, "populated 0");
		if (!empty)
			usleep(10000);
	}
	cr_assert(empty, "the killed sandbox's processes did not leave its cgroup");
	struct cr_error err;
	cr_assert_eq(cr_hands_open(&f.cfg, handle, &f.h, &err), 0, "%s", err.msg);
	struct stat st;
	cr_assert_neq(stat(cgroup, &st), 0, "the dead sandbox's cgroup is removed at once");
	struct cr_tool_result res = call(&f, "bash", "{\"command\": \"true\"}");
	cr_assert(res.is_error && strstr(res.content,
					 "sandbox lost: it stopped while the host side was down"),
		  "%s", res.content);
	cr_tool_result_clear(&res);
	bash_ok(&f, "cat note", "kept\n");
	cr_assert_eq(cr_hands_provisioned(f.h), 1);
	teardown(&f);
}

/* The events of session id, as "type payload" lines. */
static char *events_of(struct cr_log *log, const char *id)
{
	struct cr_log_event *ev;
	size_t n;
	struct cr_error err;
	cr_assert_eq(cr_log_get_events(log, id, 0, 0, &ev, &n, &err), 0, "%s", err.msg);
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	for (size_t i = 0; i < n; i++)
		fprintf(m, "%s %s\n", ev[i].type, ev[i].payload);
	fclose(m);
	cr_log_events_free(ev, n);
	return out;
}

/* A new log in the fixture's directory with sessions sesn_a and sesn_b. */
static struct cr_log *log_of_two_sessions(const struct fixture *f)
{
	_cleanup_free_ char *logdir = NULL;
	cr_assert(asprintf(&logdir, "%s/log", f->dir) > 0);
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	struct cr_log *log;
	struct cr_error err;
	cr_assert_eq(cr_log_open(logdir, &o, &log, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_session_create(log, "sesn_a", NULL, &err), 0);
	cr_assert_eq(cr_log_session_create(log, "sesn_b", NULL, &err), 0);
	return log;
}

Test(hands, the_sandbox_events_go_to_the_sessions_logs, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	struct cr_log *log = log_of_two_sessions(&f);
	struct cr_error err;
	uint64_t ea, eb;
	cr_assert_eq(cr_log_acquire(log, "sesn_a", &ea, &err), 0);
	cr_assert_eq(cr_log_acquire(log, "sesn_b", &eb, &err), 0);
	cr_assert_eq(cr_log_acquire(log, "sesn_b", &eb, &err), 0); /* epoch 2 */
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.cfg.log = log;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), 0, "%s", err.msg);
	cr_hands_set_epoch(f.h, ea);
	bash_ok(&f, "true", "");
	char id[CR_SANDBOX_ID_MAX], handle[CR_HANDS_HANDLE_MAX];
	snprintf(id, sizeof(id), "%s", cr_sandbox_id(cr_hands_sandbox(f.h)));
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(f.h));
	/* a stale lease on either side: refused, nothing changes, in neither log */
	cr_assert_eq(cr_hands_handoff(f.h, handle, "sesn_b", 1, &err), -ESTALE, "%s", err.msg);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_a");
	cr_hands_set_epoch(f.h, ea + 1);
	cr_assert_eq(cr_hands_handoff(f.h, handle, "sesn_b", eb, &err), -ESTALE, "%s", err.msg);
	cr_hands_set_epoch(f.h, ea);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_a");
	{
		_cleanup_free_ char *a0 = events_of(log, "sesn_a");
		_cleanup_free_ char *b0 = events_of(log, "sesn_b");
		cr_assert_null(strstr(a0, "sandbox.handoff"), "%s", a0);
		cr_assert_null(strstr(b0, "sandbox.handoff"), "%s", b0);
	}
	cr_assert_eq(cr_hands_handoff(f.h, handle, "sesn_b", eb, &err), 0, "%s", err.msg);
	kill(cr_sandbox_pid(cr_hands_sandbox(f.h)), SIGKILL);
	struct cr_tool_result res = call(&f, "bash", "{\"command\": \"true\"}");
	cr_assert(res.is_error && strstr(res.content, "sandbox lost"), "%s", res.content);
	cr_tool_result_clear(&res);
	_cleanup_free_ char *a = events_of(log, "sesn_a");
	_cleanup_free_ char *b = events_of(log, "sesn_b");
	char want[512];
	snprintf(want, sizeof(want), "sandbox.provisioned {\"sandbox_id\":\"%s\",\"address\":null}",
		 id);
	cr_assert(strstr(a, want), "%s", a);
	snprintf(want, sizeof(want),
		 "sandbox.handoff {\"sandbox_id\":\"%s\",\"from_session\":\"sesn_a\","
		 "\"to_session\":\"sesn_b\"}",
		 id);
	cr_assert(strstr(a, want), "%s", a);
	cr_assert(strstr(b, want), "%s", b);
	cr_assert(strstr(b, "sandbox.lost {\"sandbox_id\""), "the loss is the new session's: %s",
		  b);
	cr_assert_null(strstr(a, "sandbox.lost"), "%s", a);
	cr_assert_null(strstr(a, handle), "the handle is never logged");
	cr_assert_null(strstr(b, handle), "the handle is never logged");
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0, "%s",
		     err.msg); /* while the log is open */
	cr_log_close(log);
	teardown(&f);
}

/* In a child with its own network namespace (the host, for egress): the catalog maps each
 * sandbox's egress address to its hands and session, through handoff, a loss and a new
 * sandbox, and the sweep makes it agree with the records. Returns 0, 77 to skip, or the failing
 * step. */
struct catalog_args {
	struct fixture *f;
	const char *logdir;
	struct cr_log *log;
	uint64_t ea, eb;
};

static bool row_is(struct cr_log *log, const char *address, const char *id, const char *session)
{
	struct cr_log_sandbox got;
	struct cr_error err;
	if (cr_log_sandbox_by_address(log, address, &got, &err) < 0) {
		fprintf(stderr, "catalog: %s\n", err.msg);
		return false;
	}
	if (strcmp(got.id, id) != 0 || strcmp(got.session, session) != 0) {
		fprintf(stderr, "catalog: %s is %s/%s, not %s/%s\n", address, got.id, got.session,
			id, session);
		return false;
	}
	return true;
}

static size_t rows(struct cr_log *log)
{
	struct cr_log_sandbox *v;
	size_t n = 999;
	struct cr_error err;
	if (cr_log_list_sandboxes(log, &v, &n, &err) == 0)
		free(v);
	return n;
}

static int catalog_child(void *arg)
{
	struct catalog_args *ca = arg;
	struct fixture *f = ca->f;
	if (unshare(CLONE_NEWNET) < 0)
		return 77;
	struct cr_net_range range;
	struct cr_error err;
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	/* (the log's threads would not survive the fork into this child: it opens the log) */
	if (cr_net_range_parse("10.215.0.0/24", &range, &err) < 0 ||
	    cr_log_open(ca->logdir, &o, &ca->log, &err) < 0 ||
	    cr_log_session_create(ca->log, "sesn_a", NULL, &err) < 0 ||
	    cr_log_session_create(ca->log, "sesn_b", NULL, &err) < 0 ||
	    cr_log_acquire(ca->log, "sesn_a", &ca->ea, &err) < 0 ||
	    cr_log_acquire(ca->log, "sesn_b", &ca->eb, &err) < 0) {
		fprintf(stderr, "log: %s\n", err.msg);
		return 10;
	}
	f->cfg.log = ca->log;
	f->cfg.epoch = ca->ea; /* (the eager provision is recorded under it) */
	f->cfg.eager = true;
	f->cfg.sandbox.egress_range = &range;
	f->cfg.sandbox.egress_index = CR_SANDBOX_EGRESS_AUTO;
	struct cr_hands *h;
	if (cr_hands_new(&f->cfg, "sesn_a", &h, &err) < 0) {
		fprintf(stderr, "hands: %s\n", err.msg);
		cr_log_close(ca->log);
		return 11;
	}
	char id[CR_SANDBOX_ID_MAX], handle[CR_HANDS_HANDLE_MAX];
	snprintf(id, sizeof(id), "%s", cr_sandbox_id(cr_hands_sandbox(h)));
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(h));
	int step = 12; /* the first pair's sandbox end is .2 */
	if (!row_is(ca->log, "10.215.0.2", id, "sesn_a") || rows(ca->log) != 1)
		goto out;
	step = 13;
	if (cr_hands_handoff(h, handle, "sesn_b", ca->eb, &err) < 0 ||
	    !row_is(ca->log, "10.215.0.2", id, "sesn_b"))
		goto out;
	step = 14; /* a catalog that drifted (a stale row, a lost one) is set right by the sweep */
	struct cr_log_sandbox stale = { .id = "sbx_stale",
					.session = "sesn_x",
					.address = "10.215.0.6" };
	size_t swept;
	if (cr_log_sandbox_note(ca->log, &stale, &err) < 0 ||
	    cr_log_sandbox_forget(ca->log, id, &err) < 0 ||
	    cr_hands_sweep(&f->cfg, &swept, &err) < 0 || swept != 0 ||
	    !row_is(ca->log, "10.215.0.2", id, "sesn_b") || rows(ca->log) != 1)
		goto out;
	step = 15; /* lost: the row goes with the sandbox; the next one has a row of its own */
	kill(cr_sandbox_pid(cr_hands_sandbox(h)), SIGKILL);
	struct cr_tool_result res = { 0 };
	const char *in = "{\"command\": \"true\"}";
	if (cr_hands_execute(h, NULL, "bash", in, strlen(in), &res, &err) < 0 || !res.is_error ||
	    rows(ca->log) != 0)
		goto out;
	cr_tool_result_clear(&res);
	step = 16;
	if (cr_hands_execute(h, NULL, "bash", in, strlen(in), &res, &err) < 0 || res.is_error ||
	    !cr_hands_sandbox(h) ||
	    !row_is(ca->log, "10.215.0.2", cr_sandbox_id(cr_hands_sandbox(h)), "sesn_b"))
		goto out;
	step = 17;
	if (cr_hands_destroy(h, false, &err) < 0 || rows(ca->log) != 0)
		goto out;
	step = 0;
out:
	cr_tool_result_clear(&res);
	if (step)
		cr_hands_destroy(h, false, NULL);
	cr_hands_free(h);
	cr_log_close(ca->log);
	return step;
}

Test(hands, the_catalog_maps_each_sandbox_address_to_its_session, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	_cleanup_free_ char *logdir = NULL;
	cr_assert(asprintf(&logdir, "%s/log", f.dir) > 0);
	struct catalog_args ca = { .f = &f, .logdir = logdir };
	int r = cr_test_run_in_cgroup(NULL, catalog_child, &ca);
	cr_test_need(r != 77, "network namespaces unavailable");
	cr_assert_eq(r, 0, "catalog scenario failed at step %d", r);
	teardown(&f);
}

Test(hands, a_provision_that_cannot_be_recorded_leaves_no_sandbox, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	struct cr_log *log = log_of_two_sessions(&f);
	struct cr_error err;
	uint64_t epoch;
	cr_assert_eq(cr_log_acquire(log, "sesn_a", &epoch, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.cfg.log = log;
	f.cfg.epoch = epoch - 1; /* a lease that is no longer held */
	f.cfg.eager = true;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), -ESTALE, "%s", err.msg);
	f.cfg.eager = false;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), 0, "%s", err.msg);
	struct cr_tool_result res = { 0 };
	const char *in = "{\"command\": \"true\"}";
	cr_assert_eq(cr_hands_execute(f.h, NULL, "bash", in, strlen(in), &res, &err), -ESTALE, "%s",
		     err.msg);
	cr_assert_null(cr_hands_sandbox(f.h), "no sandbox kept for a stale lease");
	_cleanup_free_ char *events = events_of(log, "sesn_a");
	cr_assert_null(strstr(events, "sandbox.provisioned"), "%s", events);
	cr_hands_set_epoch(f.h, epoch);
	bash_ok(&f, "true", "");
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0, "%s",
		     err.msg); /* while the log is open */
	cr_log_close(log);
	teardown(&f); /* (its rmdir of the test's cgroup fails if a sandbox was left in it) */
}

/* Rewrites the hands record as the host side left it when it stopped in the middle of a
 * handoff from session from: the intent recorded, the binding not yet changed. */
static void record_intent(struct fixture *f, const char *handle, const char *from, const char *to,
			  uint64_t after_seq)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/hands/%s.json", f->dir, handle);
	json_t *o = json_load_file(path, 0, NULL);
	cr_assert_not_null(o);
	json_object_set_new(o, "session", json_string(from));
	json_object_set_new(
		o, "handoff",
		json_pack("{s:s, s:I}", "to_session", to, "after_seq", (json_int_t)after_seq));
	cr_assert_eq(json_dump_file(o, path, 0), 0);
	json_decref(o);
}

Test(hands, a_handoff_cut_short_by_a_restart_is_settled_from_the_log, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	struct cr_log *log = log_of_two_sessions(&f);
	struct cr_error err;
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.cfg.log = log;
	cr_assert_eq(cr_hands_new(&f.cfg, "sesn_a", &f.h, &err), 0, "%s", err.msg);
	bash_ok(&f, "X=5", "");
	char handle[CR_HANDS_HANDLE_MAX];
	snprintf(handle, sizeof(handle), "%s", cr_hands_handle(f.h));
	struct cr_log_session_info info;
	cr_assert_eq(cr_log_session_info(log, "sesn_a", &info, &err), 0);
	uint64_t before = info.last_seq;

	/* stopped after the intent, before the events: still sesn_a's */
	cr_hands_free(f.h);
	record_intent(&f, handle, "sesn_a", "sesn_b", before);
	cr_assert_eq(cr_hands_open(&f.cfg, handle, &f.h, &err), 0, "%s", err.msg);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_a");
	/* the handoff happens; then the host side is found stopped before the binding changed */
	cr_assert_eq(cr_hands_handoff(f.h, handle, "sesn_b", 0, &err), 0, "%s", err.msg);
	cr_hands_free(f.h);
	record_intent(&f, handle, "sesn_a", "sesn_b", before);
	cr_assert_eq(cr_hands_open(&f.cfg, handle, &f.h, &err), 0, "%s", err.msg);
	cr_assert_str_eq(cr_hands_session(f.h), "sesn_b", "the log says it was handed off");
	bash_ok(&f, "echo $X", "5\n");
	char path[4096];
	snprintf(path, sizeof(path), "%s/hands/%s.json", f.dir, handle);
	json_t *rec = json_load_file(path, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "session")), "sesn_b");
	cr_assert_null(json_object_get(rec, "handoff"), "settled: the intent is gone");
	json_decref(rec);
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0, "%s",
		     err.msg); /* while the log is open */
	cr_log_close(log);
	teardown(&f);
}

/* In a child with a private mount namespace, the workspaces live on a 1 MiB tmpfs: filling it
 * is a tool error (from write, from a command), never a lost sandbox, and once space is freed
 * the same sandbox writes again. Returns 0, 77 to skip, or the failing step. */
static int full_disk_child(void *arg)
{
	struct fixture *f = arg;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	char ws[4096];
	snprintf(ws, sizeof(ws), "%s/workspaces", f->dir);
	if (mkdir(ws, 0700) < 0 || mount("tmpfs", ws, "tmpfs", 0, "size=1m,mode=0700") < 0)
		return 77;
	struct cr_error err;
	if (cr_hands_new(&f->cfg, "sesn_a", &f->h, &err) < 0) {
		fprintf(stderr, "hands: %s\n", err.msg);
		return 1;
	}
	int step = 0;
	struct cr_tool_result res = { 0 };
	static char big[2 << 20];
	memset(big, 'x', sizeof(big) - 1);
	json_t *in = json_pack("{s:s, s:s}", "file_path", "big", "content", big);
	char *text = json_dumps(in, JSON_COMPACT);
	json_decref(in);
	step = 2;
	if (cr_hands_execute(f->h, NULL, "write", text, strlen(text), &res, &err) < 0 ||
	    !res.is_error || !strstr(res.content, "No space left on device")) {
		fprintf(stderr, "write on a full disk: %s\n", res.content ? res.content : err.msg);
		goto out;
	}
	cr_tool_result_clear(&res);
	step = 3;
	const char *fill = "{\"command\": \"head -c 2000000 /dev/zero > fill; echo status $?\"}";
	/* (GNU head says "No space left on device", busybox's "I/O error") */
	if (cr_hands_execute(f->h, NULL, "bash", fill, strlen(fill), &res, &err) < 0 ||
	    !strstr(res.content, "head:") || !strstr(res.content, "status 1")) {
		fprintf(stderr, "a command on a full disk: %s\n",
			res.content ? res.content : err.msg);
		goto out;
	}
	cr_tool_result_clear(&res);
	step = 4;
	const char *again = "{\"command\": \"rm fill && echo small > f && cat f\"}";
	if (cr_hands_execute(f->h, NULL, "bash", again, strlen(again), &res, &err) < 0 ||
	    res.is_error || strcmp(res.content, "small\n") != 0 ||
	    cr_hands_provisioned(f->h) != 1) {
		fprintf(stderr, "after freeing space: %s\n", res.content ? res.content : err.msg);
		goto out;
	}
	step = 0;
out:
	cr_tool_result_clear(&res);
	free(text);
	cr_hands_destroy(f->h, false, NULL);
	cr_hands_free(f->h);
	umount2(ws, MNT_DETACH);
	return step;
}

Test(hands, a_full_workspace_disk_is_a_tool_error, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	struct cr_error err;
	cr_assert_eq(cr_hands_destroy(f.h, false, &err), 0);
	cr_hands_free(f.h);
	f.h = NULL;
	/* setup's workspaces/ goes: the child mounts a small file system there */
	char ws[4096];
	snprintf(ws, sizeof(ws), "%s/workspaces", f.dir);
	rmdir(ws);
	int r = cr_test_run_in_cgroup(NULL, full_disk_child, &f);
	/* teardown's checks, with hands that are already gone (the child destroyed them) */
	cr_assert_eq(rmdir(f.cgroup), 0, "no sandbox cgroup left: %s", strerror(errno));
	cr_test_need(r != 77, "mount namespaces or tmpfs unavailable");
	cr_assert_eq(r, 0, "full workspace disk scenario failed at step %d", r);
	cr_test_rmrf(f.dir);
	free(f.dir);
	free(f.cgroup);
	free(f.init);
}

Test(hands, sweep_destroys_hands_sandboxes_no_record_names, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, true);
	/* a sandbox of the command line's, not the hands': never swept */
	struct cr_sandbox_config c = f.cfg.sandbox;
	struct cr_sandbox *other;
	struct cr_error err;
	cr_assert_eq(cr_sandbox_create(&c, &other, NULL, &err), 0, "%s", err.msg);
	size_t n = 99;
	cr_assert_eq(cr_hands_sweep(&f.cfg, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 0, "every hands sandbox is recorded");
	/* a crash between making the sandbox and recording it: the record is gone */
	char cgroup[4096], record[4096];
	snprintf(cgroup, sizeof(cgroup), "%s", cr_sandbox_cgroup(cr_hands_sandbox(f.h)));
	snprintf(record, sizeof(record), "%s/hands/%s.json", f.dir, cr_hands_handle(f.h));
	cr_assert_eq(unlink(record), 0);
	cr_assert_eq(cr_hands_sweep(&f.cfg, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	struct stat st;
	cr_assert_neq(stat(cgroup, &st), 0, "the unrecorded sandbox's cgroup is gone");
	enum cr_sandbox_state state;
	cr_assert_eq(cr_sandbox_state(other, &state, &err), 0, "%s", err.msg);
	cr_assert_eq(state, CR_SANDBOX_RUNNING, "the other sandbox runs on");
	cr_assert_eq(cr_sandbox_destroy(other, false, &err), 0, "%s", err.msg);
	cr_sandbox_free(other);
	teardown(&f);
}

Test(hands, paths_that_escape_resolve_inside_the_sandbox, .timeout = 60)
{
	struct fixture f = { 0 };
	setup(&f, false);
	/* .. past /workspace ends at the sandbox's own root: its generated /etc/passwd */
	struct cr_tool_result res = call(&f, "read", "{\"file_path\": \"../../../../etc/passwd\"}");
	cr_assert(!res.is_error && strstr(res.content, "root:x:0:0") &&
			  !strstr(res.content, "daemon:"),
		  "%s", res.content);
	cr_tool_result_clear(&res);
	/* a symlink to / is the sandbox's / */
	bash_ok(&f, "ln -s / up", "");
	res = call(&f, "read", "{\"file_path\": \"up/etc/shadow\"}");
	cr_assert(res.is_error && strstr(res.content, "No such file"), "%s", res.content);
	cr_tool_result_clear(&res);
	/* a write through .. lands in the sandbox's /tmp, never the host's */
	char input[256], host[128];
	snprintf(host, sizeof(host), "/tmp/corral-escape-%d", (int)getpid());
	snprintf(input, sizeof(input), "{\"file_path\": \"../../..%s\", \"content\": \"x\"}", host);
	res = call(&f, "write", input);
	cr_assert(!res.is_error, "%s", res.content);
	cr_tool_result_clear(&res);
	cr_assert_neq(access(host, F_OK), 0, "the write escaped to the host's %s", host);
	teardown(&f);
}
