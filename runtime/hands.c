/* runtime/hands: one session's sandbox, made when first needed, replaced after it is lost. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/fileio.h"
#include "corral/hands.h"
#include "corral/id.h"

#define PAUSE_POLL_US 20000
#define LOST_WAIT_MS 2000 /* for PID 1's exit after its connection closed */

struct cr_hands {
	struct cr_hands_config cfg;
	char handle[CR_HANDS_HANDLE_MAX];
	char *session;
	char *workspace;
	struct cr_sandbox *sb;
	int fd; /* connection to the sandbox's corral-init, or -1 */
	uint64_t ooms_seen; /* the sandbox's OOM kills already reported */
	unsigned provisioned;
};

void cr_hands_config_init(struct cr_hands_config *cfg)
{
	*cfg = (struct cr_hands_config){ .paused_wait_ms = CR_TOOL_TIMEOUT_MS_DEFAULT };
	cr_sandbox_config_init(&cfg->sandbox);
}

const char *cr_hands_handle(const struct cr_hands *h)
{
	return h->handle;
}

const char *cr_hands_session(const struct cr_hands *h)
{
	return h->session;
}

const char *cr_hands_workspace(const struct cr_hands *h)
{
	return h->workspace;
}

struct cr_sandbox *cr_hands_sandbox(const struct cr_hands *h)
{
	return h->sb;
}

unsigned cr_hands_provisioned(const struct cr_hands *h)
{
	return h->provisioned;
}

static int provision(struct cr_hands *h, struct cr_error *err)
{
	struct cr_sandbox_config c = h->cfg.sandbox;
	c.workspace = h->workspace;
	c.argv = NULL; /* corral-init serves tool requests */
	int r = cr_sandbox_create(&c, &h->sb, NULL, err);
	if (r < 0)
		return cr_error_prefix(err, "provision a sandbox for session %s", h->session);
	h->provisioned++;
	h->ooms_seen = 0;
	h->fd = cr_sandbox_connect(h->sb, err);
	if (h->fd < 0) {
		r = h->fd;
		cr_sandbox_destroy(h->sb, true, NULL);
		cr_sandbox_free(h->sb);
		h->sb = NULL;
		return cr_error_prefix(err, "provision a sandbox for session %s", h->session);
	}
	return 0;
}

/* Ends the current sandbox (the workspace stays). */
static void drop_sandbox(struct cr_hands *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	if (h->sb) {
		cr_sandbox_destroy(h->sb, true, NULL);
		cr_sandbox_free(h->sb);
		h->sb = NULL;
	}
}

int cr_hands_new(const struct cr_hands_config *cfg, const char *session, struct cr_hands **ret,
		 struct cr_error *err)
{
	if (!cfg->sandbox.state_dir || !cfg->sandbox.init_path)
		return cr_error_set(err, EINVAL, "hands: no state directory or corral-init path");
	if (!session || !*session)
		return cr_error_set(err, EINVAL, "hands: no session");
	struct cr_hands *h = calloc(1, sizeof(*h));
	if (!h || !(h->session = strdup(session))) {
		free(h);
		return cr_error_errno(err, ENOMEM, "hands");
	}
	h->cfg = *cfg;
	h->fd = -1;
	if (h->cfg.paused_wait_ms <= 0)
		h->cfg.paused_wait_ms = CR_TOOL_TIMEOUT_MS_DEFAULT;
	uint8_t raw[CR_ID_RAW];
	int r = cr_id_random(raw, err);
	if (r == 0)
		r = cr_id_format("sbh_", raw, h->handle, sizeof(h->handle));
	char dir[PATH_MAX];
	if (r == 0 &&
	    snprintf(dir, sizeof(dir), "%s/workspaces", cfg->sandbox.state_dir) >= (int)sizeof(dir))
		r = cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	if (r == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		r = cr_error_errno(err, errno, "create %s", dir);
	if (r == 0 && asprintf(&h->workspace, "%s/%s", dir, h->handle) < 0) {
		h->workspace = NULL;
		r = cr_error_errno(err, ENOMEM, "hands");
	}
	if (r == 0 && mkdir(h->workspace, 0700) < 0)
		r = cr_error_errno(err, errno, "create workspace %s", h->workspace);
	if (r == 0 && cfg->eager)
		r = provision(h, err);
	if (r < 0) {
		if (h->workspace)
			rmdir(h->workspace);
		cr_hands_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

/* Why the sandbox no longer answers, after a call failed with call_r. */
static void lost_reason(struct cr_hands *h, int call_r, const struct cr_error *call_err, char *buf,
			size_t size)
{
	uint64_t ooms = 0;
	cr_sandbox_oom_kills(h->sb, &ooms, NULL);
	/* A closed connection means PID 1 is gone or going: give its exit a moment to show. */
	int status = 0;
	bool exited =
		cr_sandbox_wait(h->sb, call_r == -ETIMEDOUT ? 0 : LOST_WAIT_MS, &status, NULL) == 0;
	enum cr_sandbox_state st = CR_SANDBOX_RUNNING;
	cr_sandbox_state(h->sb, &st, NULL);
	if (ooms > h->ooms_seen)
		snprintf(buf, size,
			 "out of memory: the kernel's OOM killer ended it at its memory limit "
			 "(memory.max %llu bytes)",
			 (unsigned long long)h->cfg.sandbox.memory_max);
	else if (exited && WIFSIGNALED(status))
		snprintf(buf, size, "its init was killed by signal %d (%s), from outside",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (exited)
		snprintf(buf, size, "its init exited with status %d", WEXITSTATUS(status));
	else if (st == CR_SANDBOX_STOPPED)
		snprintf(buf, size, "its processes were killed from outside");
	else if (call_r == -ETIMEDOUT)
		snprintf(buf, size, "it stopped answering (%s)", call_err->msg);
	else
		snprintf(buf, size, "its init closed the connection (%s)", call_err->msg);
}

/* Waits while the sandbox is paused, up to the configured time; false if still paused. */
static bool wait_unpaused(struct cr_hands *h)
{
	int64_t deadline = cr_now_ms() + h->cfg.paused_wait_ms;
	for (;;) {
		enum cr_sandbox_state st;
		if (cr_sandbox_state(h->sb, &st, NULL) < 0 || st != CR_SANDBOX_PAUSED)
			return true;
		if (cr_now_ms() >= deadline)
			return false;
		usleep(PAUSE_POLL_US);
	}
}

/* After a call that was answered: a process the OOM killer ended makes it a tool error. */
static int note_oom(struct cr_hands *h, struct cr_tool_result *ret, struct cr_error *err)
{
	uint64_t ooms = 0;
	if (cr_sandbox_oom_kills(h->sb, &ooms, NULL) < 0 || ooms <= h->ooms_seen)
		return 0;
	h->ooms_seen = ooms;
	char *s = NULL;
	if (asprintf(&s,
		     "%s%s[the kernel's OOM killer ended a process: the sandbox's memory "
		     "limit is %llu bytes (memory.max)]\n",
		     ret->content,
		     *ret->content && ret->content[strlen(ret->content) - 1] != '\n' ? "\n" : "",
		     (unsigned long long)h->cfg.sandbox.memory_max) < 0)
		return cr_error_errno(err, ENOMEM, "tool result");
	free(ret->content);
	ret->content = s;
	ret->is_error = true;
	return 0;
}

int cr_hands_execute(struct cr_hands *h, const char *call_id, const char *name, const char *input,
		     size_t input_len, struct cr_tool_result *ret, struct cr_error *err)
{
	*ret = (struct cr_tool_result){ 0 };
	if (!cr_tool_known(name))
		/* no sandbox is made for a call that cannot run */
		return cr_tool_execute(-1, call_id, name, input, input_len, ret, err);
	if (!h->sb) {
		int r = provision(h, err);
		if (r < 0)
			return r;
	}
	if (!wait_unpaused(h))
		return cr_tool_result_set(
			ret, true, err,
			"sandbox %s is paused; the call waited %d ms for it to be resumed "
			"and was not run",
			cr_sandbox_id(h->sb), h->cfg.paused_wait_ms);
	struct cr_error call_err;
	int r = cr_tool_execute(h->fd, call_id, name, input, input_len, ret, &call_err);
	if (r == -ENOMEM) {
		*err = call_err;
		return r;
	}
	if (r < 0) {
		char why[300];
		lost_reason(h, r, &call_err, why, sizeof(why));
		char id[CR_SANDBOX_ID_MAX];
		snprintf(id, sizeof(id), "%s", cr_sandbox_id(h->sb));
		drop_sandbox(h);
		return cr_tool_result_set(ret, true, err,
					  "sandbox lost: %s (sandbox %s; the next call starts a "
					  "new one, with the same /workspace)",
					  why, id);
	}
	return note_oom(h, ret, err);
}

int cr_hands_handoff(struct cr_hands *h, const char *handle, const char *to_session,
		     struct cr_error *err)
{
	if (!handle || strcmp(handle, h->handle) != 0)
		return cr_error_set(err, EACCES, "handoff: not this sandbox's handle");
	if (!to_session || !*to_session)
		return cr_error_set(err, EINVAL, "handoff: no session to hand the sandbox to");
	char *s = strdup(to_session);
	if (!s)
		return cr_error_errno(err, ENOMEM, "handoff");
	free(h->session);
	h->session = s;
	return 0;
}

int cr_hands_destroy(struct cr_hands *h, bool keep_workspace, struct cr_error *err)
{
	drop_sandbox(h);
	if (!keep_workspace && h->workspace) {
		int r = cr_remove_tree(h->workspace, err);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

void cr_hands_free(struct cr_hands *h)
{
	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	cr_sandbox_free(h->sb);
	free(h->session);
	free(h->workspace);
	free(h);
}
