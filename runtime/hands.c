/* runtime/hands: one session's sandbox, made when first needed, replaced after it is lost,
 * found again through its record after a restart. */
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

#include <arpa/inet.h>
#include <jansson.h>

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
	uint64_t epoch; /* the session's lease, for the events */
	/* A handoff under way (with a log): recorded before its events are appended, so that
	 * cr_hands_open can tell from the log whether it happened. */
	char *handoff_to;
	uint64_t handoff_after; /* the old session's last seq before the events */
	/* found again after a restart with its sandbox gone: the next call reports it lost */
	char lost_pending[200];
	char lost_sandbox[CR_SANDBOX_ID_MAX];
};

/* --- record and events --------------------------------------------------------------------- */

static bool valid_handle(const char *handle)
{
	return cr_id_valid("sbh_", handle);
}

static int hands_dir(const char *state_dir, char *buf, size_t size, struct cr_error *err)
{
	if (snprintf(buf, size, "%s/hands", state_dir) >= (int)size)
		return cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return 0;
}

static int record_path(const struct cr_hands *h, const char *suffix, char *buf, size_t size,
		       struct cr_error *err)
{
	if (snprintf(buf, size, "%s/hands/%s.json%s", h->cfg.sandbox.state_dir, h->handle,
		     suffix) >= (int)size)
		return cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return 0;
}

/* Writes the record, durably (cr_store_file): it is what binds the session to its workspace,
 * and a handoff's intent must be on disk before the handoff's events are. */
static int save(struct cr_hands *h, struct cr_error *err)
{
	char path[PATH_MAX];
	int r = record_path(h, "", path, sizeof(path), err);
	if (r < 0)
		return r;
	json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "handle", h->handle, "session", h->session,
			      "workspace", h->workspace, "sandbox",
			      h->sb ? json_string(cr_sandbox_id(h->sb)) : json_null());
	if (o && h->handoff_to &&
	    json_object_set_new(o, "handoff",
				json_pack("{s:s, s:I}", "to_session", h->handoff_to, "after_seq",
					  (json_int_t)h->handoff_after)) < 0) {
		json_decref(o);
		o = NULL;
	}
	char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text)
		return cr_error_errno(err, ENOMEM, "hands record");
	r = cr_store_file(path, text, strlen(text), 0600, err);
	free(text);
	return r;
}

/* Appends one of the session's sandbox events (payload: a JSON object, taken) when there is a
 * log. */
static int event(struct cr_hands *h, const char *session, uint64_t epoch, const char *type,
		 json_t *payload, struct cr_error *err)
{
	if (!h->cfg.log) {
		json_decref(payload);
		return 0;
	}
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (!text)
		return cr_error_errno(err, ENOMEM, "%s event", type);
	struct cr_log_append a = { .session = session,
				   .epoch = epoch,
				   .expected_seq = CR_LOG_ANY_SEQ,
				   .type = type,
				   .payload = text,
				   .payload_len = strlen(text) };
	int r = cr_log_append(h->cfg.log, &a, NULL, err);
	free(text);
	return r < 0 ? cr_error_prefix(err, "record %s in session %s", type, session) : 0;
}

void cr_hands_set_epoch(struct cr_hands *h, uint64_t epoch)
{
	h->epoch = epoch;
}

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

_Static_assert(CR_LOG_SANDBOX_ID_MAX >= CR_SANDBOX_ID_MAX,
	       "the catalog's sandbox rows must hold sandbox ids");

/* The catalog's row of sandbox sb (id), serving session: the sandbox manager's mapping of
 * egress address to sandbox to session. */
static void catalog_row(const char *id, const char *session, const struct cr_sandbox *sb,
			struct cr_log_sandbox *ret)
{
	*ret = (struct cr_log_sandbox){ 0 };
	snprintf(ret->id, sizeof(ret->id), "%s", id);
	snprintf(ret->session, sizeof(ret->session), "%s", session);
	const struct cr_veth *v = cr_sandbox_veth(sb);
	if (v)
		inet_ntop(AF_INET, &v->sandbox_addr, ret->address, sizeof(ret->address));
}

/* Notes sandbox sb of the hands in the catalog. A mirror: a failure here is repaired by the
 * next cr_hands_sweep. */
static void catalog_note(struct cr_hands *h, const struct cr_sandbox *sb)
{
	if (!h->cfg.log || !sb)
		return;
	struct cr_log_sandbox row;
	catalog_row(cr_sandbox_id(sb), h->session, sb, &row);
	cr_log_sandbox_note(h->cfg.log, &row, NULL);
}

/* Ends the current sandbox (the workspace stays). */
static void drop_sandbox(struct cr_hands *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	if (h->sb) {
		if (h->cfg.log)
			cr_log_sandbox_forget(h->cfg.log, cr_sandbox_id(h->sb), NULL);
		cr_sandbox_destroy(h->sb, true, NULL);
		cr_sandbox_free(h->sb);
		h->sb = NULL;
	}
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
	if (h->fd < 0 || (r = save(h, err)) < 0) {
		r = h->fd < 0 ? h->fd : r;
		if (h->fd >= 0)
			close(h->fd);
		h->fd = -1;
		cr_sandbox_destroy(h->sb, true, NULL);
		cr_sandbox_free(h->sb);
		h->sb = NULL;
		save(h, NULL);
		return cr_error_prefix(err, "provision a sandbox for session %s", h->session);
	}
	catalog_note(h, h->sb);
	const struct cr_veth *v = cr_sandbox_veth(h->sb);
	char addr[INET_ADDRSTRLEN] = "";
	if (v)
		inet_ntop(AF_INET, &v->sandbox_addr, addr, sizeof(addr));
	r = event(h, h->session, h->epoch, "sandbox.provisioned",
		  json_pack("{s:s, s:o}", "sandbox_id", cr_sandbox_id(h->sb), "address",
			    v ? json_string(addr) : json_null()),
		  err);
	if (r < 0) {
		/* Not recorded (a stale lease, say): a caller that may not write the session's
		 * events gets no sandbox either, and none is left running. */
		drop_sandbox(h);
		save(h, NULL);
	}
	return r;
}

/* The sandbox is lost: it goes, and the call's result says why; recorded in the session. */
static int lose(struct cr_hands *h, const char *id, const char *why, struct cr_tool_result *ret,
		struct cr_error *err)
{
	drop_sandbox(h);
	save(h, NULL); /* (a stale record names a sandbox that cr_hands_open finds gone) */
	int r = event(h, h->session, h->epoch, "sandbox.lost",
		      json_pack("{s:s, s:s}", "sandbox_id", id, "reason", why), err);
	if (r < 0)
		return r;
	return cr_tool_result_set(ret, true, err,
				  "sandbox lost: %s (sandbox %s; the next call starts a new one, "
				  "with the same /workspace)",
				  why, id);
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
	h->epoch = cfg->epoch;
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
	if (r == 0 && (r = hands_dir(cfg->sandbox.state_dir, dir, sizeof(dir), err)) == 0 &&
	    mkdir(dir, 0700) < 0 && errno != EEXIST)
		r = cr_error_errno(err, errno, "create %s", dir);
	if (r == 0)
		r = save(h, err);
	if (r == 0 && cfg->eager)
		r = provision(h, err);
	if (r < 0) {
		char path[PATH_MAX];
		if (record_path(h, "", path, sizeof(path), NULL) == 0)
			unlink(path);
		if (h->workspace)
			rmdir(h->workspace);
		cr_hands_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

/* Whether session's events after seq after hold the sandbox.handoff to to_session of sandbox
 * sbid (NULL: none). */
static int handoff_logged(struct cr_log *log, const char *session, uint64_t after,
			  const char *to_session, const char *sbid, bool *ret, struct cr_error *err)
{
	*ret = false;
	for (;;) {
		struct cr_log_event *ev;
		size_t n;
		int r = cr_log_get_events(log, session, after, 256, &ev, &n, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n && !*ret; i++) {
			if (strcmp(ev[i].type, "sandbox.handoff") != 0)
				continue;
			json_t *p = json_loads(ev[i].payload, 0, NULL);
			const char *to = json_string_value(json_object_get(p, "to_session"));
			const char *id = json_string_value(json_object_get(p, "sandbox_id"));
			*ret = to && strcmp(to, to_session) == 0 &&
			       (sbid ? id && strcmp(id, sbid) == 0 : !id);
			json_decref(p);
		}
		if (n)
			after = ev[n - 1].seq;
		cr_log_events_free(ev, n);
		if (*ret || n < 256)
			return 0;
	}
}

/* A record that names a handoff under way: the host side stopped between recording the intent
 * and binding the new session. The log says whether the handoff's events were written (they
 * are written together or not at all): if so the hands are the new session's, else still the
 * old one's. Without a log, or with the old session gone from it, the intent is dropped. */
static int settle_handoff(struct cr_hands *h, json_t *intent, const char *sbid,
			  struct cr_error *err)
{
	const char *to = json_string_value(json_object_get(intent, "to_session"));
	json_t *after = json_object_get(intent, "after_seq");
	bool happened = false;
	if (to && json_is_integer(after) && json_integer_value(after) >= 0 && h->cfg.log) {
		struct cr_error e;
		if (handoff_logged(h->cfg.log, h->session, (uint64_t)json_integer_value(after), to,
				   sbid, &happened, &e) < 0)
			happened = false;
	}
	if (happened) {
		char *s = strdup(to);
		if (!s)
			return cr_error_errno(err, ENOMEM, "hands");
		free(h->session);
		h->session = s;
	}
	return 0;
}

int cr_hands_open(const struct cr_hands_config *cfg, const char *handle, struct cr_hands **ret,
		  struct cr_error *err)
{
	if (!valid_handle(handle))
		return cr_error_set(err, EINVAL, "\"%s\" is not a hands handle",
				    handle ? handle : "");
	struct cr_hands *h = calloc(1, sizeof(*h));
	if (!h)
		return cr_error_errno(err, ENOMEM, "hands");
	h->cfg = *cfg;
	h->fd = -1;
	h->epoch = cfg->epoch;
	if (h->cfg.paused_wait_ms <= 0)
		h->cfg.paused_wait_ms = CR_TOOL_TIMEOUT_MS_DEFAULT;
	snprintf(h->handle, sizeof(h->handle), "%s", handle);
	char path[PATH_MAX];
	int r = record_path(h, "", path, sizeof(path), err);
	json_error_t je;
	json_t *o = r < 0 ? NULL : json_load_file(path, 0, &je);
	if (r == 0 && !o)
		r = access(path, F_OK) < 0
			    ? cr_error_errno(err, errno, "hands %s", handle)
			    : cr_error_set(err, EIO, "hands record %s: %s", path, je.text);
	const char *session = json_string_value(json_object_get(o, "session"));
	const char *ws = json_string_value(json_object_get(o, "workspace"));
	const char *sbid = json_string_value(json_object_get(o, "sandbox"));
	if (r == 0 && (!session || !ws))
		r = cr_error_set(err, EIO, "hands record %s: no session or workspace", path);
	if (r == 0 && (!(h->session = strdup(session)) || !(h->workspace = strdup(ws))))
		r = cr_error_errno(err, ENOMEM, "hands");
	json_t *intent = json_object_get(o, "handoff");
	if (r == 0 && intent)
		r = settle_handoff(h, intent, sbid, err);
	if (r == 0 && sbid) {
		struct cr_error e;
		enum cr_sandbox_state st = CR_SANDBOX_STOPPED;
		if (cr_sandbox_open(cfg->sandbox.state_dir, sbid, &h->sb, &e) < 0 ||
		    cr_sandbox_state(h->sb, &st, &e) < 0 || st == CR_SANDBOX_STOPPED) {
			/* gone while nobody watched: clean up now, report at the next call */
			if (cfg->log)
				cr_log_sandbox_forget(cfg->log, sbid, NULL);
			snprintf(h->lost_sandbox, sizeof(h->lost_sandbox), "%s", sbid);
			snprintf(h->lost_pending, sizeof(h->lost_pending),
				 "it stopped while the host side was down");
			drop_sandbox(h);
			save(h, NULL);
		} else {
			catalog_note(h, h->sb);
		}
	}
	if (r == 0 && intent)
		r = save(h, err); /* settled: the record without the intent */
	json_decref(o);
	if (r < 0) {
		cr_hands_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int cr_hands_bindings(const char *state_dir, struct cr_hands_binding **ret, size_t *ret_n,
		      struct cr_error *err)
{
	char **handles = NULL;
	size_t nh = 0;
	int r = cr_hands_list(state_dir, &handles, &nh, err);
	if (r < 0)
		return r;
	struct cr_hands_binding *v = calloc(nh ? nh : 1, sizeof(*v));
	size_t n = 0;
	if (!v)
		r = cr_error_errno(err, ENOMEM, "hands bindings");
	for (size_t i = 0; r == 0 && i < nh; i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/hands/%s.json", state_dir, handles[i]) >=
		    (int)sizeof(path)) {
			r = cr_error_set(err, ENAMETOOLONG, "state directory path too long");
			break;
		}
		json_t *o = json_load_file(path, 0, NULL);
		const char *session = json_string_value(json_object_get(o, "session"));
		const char *sb = json_string_value(json_object_get(o, "sandbox"));
		if (session) { /* (a record removed meanwhile, or unreadable: not listed) */
			snprintf(v[n].session, sizeof(v[n].session), "%s", session);
			snprintf(v[n].sandbox, sizeof(v[n].sandbox), "%s", sb ? sb : "");
			n++;
		}
		json_decref(o);
	}
	for (size_t i = 0; i < nh; i++)
		free(handles[i]);
	free(handles);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The session of the hands whose record names sandbox id, or NULL. */
static const char *bound_session(const struct cr_hands_binding *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].sandbox, id) == 0)
			return v[i].session;
	return NULL;
}

/* Adds the catalog's row for a recorded sandbox that still exists. */
static int add_row(struct cr_log_sandbox **rows, size_t *n, const char *id, const char *session,
		   const struct cr_sandbox *sb, struct cr_error *err)
{
	if (!session || !*session)
		return 0; /* (a record without a session: cr_hands_open refuses it too) */
	struct cr_log_sandbox *v = realloc(*rows, (*n + 1) * sizeof(**rows));
	if (!v)
		return cr_error_errno(err, ENOMEM, "hands sweep");
	*rows = v;
	catalog_row(id, session, sb, &v[(*n)++]);
	return 0;
}

int cr_hands_sweep(const struct cr_hands_config *cfg, size_t *ret_n, struct cr_error *err)
{
	const char *state_dir = cfg->sandbox.state_dir;
	char **ids = NULL;
	size_t nb = 0, ns = 0, swept = 0, nrows = 0;
	struct cr_hands_binding *bound = NULL;
	struct cr_log_sandbox *rows = NULL;
	char prefix[PATH_MAX];
	int r = 0;
	if (!state_dir)
		return cr_error_set(err, EINVAL, "hands sweep: no state directory");
	if (snprintf(prefix, sizeof(prefix), "%s/workspaces/", state_dir) >= (int)sizeof(prefix))
		r = cr_error_set(err, ENAMETOOLONG, "state directory path too long");
	if (r == 0)
		r = cr_hands_bindings(state_dir, &bound, &nb, err);
	if (r == 0)
		r = cr_sandbox_list(state_dir, &ids, &ns, err);
	for (size_t i = 0; r == 0 && i < ns; i++) {
		struct cr_sandbox *sb;
		if (cr_sandbox_open(state_dir, ids[i], &sb, NULL) < 0)
			continue;
		const char *session = bound_session(bound, nb, ids[i]);
		if (session)
			r = add_row(&rows, &nrows, ids[i], session, sb, err);
		/* hands made it (its workspace is theirs), and no record names it */
		else if (strncmp(cr_sandbox_workspace(sb), prefix, strlen(prefix)) == 0 &&
			 (r = cr_sandbox_destroy(sb, true, err)) == 0)
			swept++;
		cr_sandbox_free(sb);
	}
	/* the catalog's rows: exactly the recorded sandboxes that exist */
	if (r == 0 && cfg->log)
		r = cr_log_sandboxes_reset(cfg->log, rows, nrows, err);
	free(rows);
	free(bound);
	for (size_t i = 0; ids && ids[i]; i++)
		free(ids[i]);
	free(ids);
	if (r == 0 && ret_n)
		*ret_n = swept;
	return r;
}

/* <handle>.json, listed as the handle. */
static bool handle_record(const char *name, char *out, size_t size, void *arg)
{
	(void)arg;
	const char *dot = strrchr(name, '.');
	if (!dot || strcmp(dot, ".json") != 0 || (size_t)(dot - name) >= size)
		return false;
	memcpy(out, name, (size_t)(dot - name));
	out[dot - name] = '\0';
	return valid_handle(out);
}

int cr_hands_list(const char *state_dir, char ***ret, size_t *ret_n, struct cr_error *err)
{
	char dir[PATH_MAX];
	int r = hands_dir(state_dir, dir, sizeof(dir), err);
	return r < 0 ? r : cr_dir_list(dir, handle_record, NULL, ret, ret_n, err);
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
	if (h->lost_pending[0]) {
		char why[sizeof(h->lost_pending)];
		snprintf(why, sizeof(why), "%s", h->lost_pending);
		h->lost_pending[0] = '\0';
		return lose(h, h->lost_sandbox, why, ret, err);
	}
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
	int r = h->fd >= 0 ? 0 : (h->fd = cr_sandbox_connect(h->sb, &call_err));
	if (r >= 0)
		r = cr_tool_execute(h->fd, call_id, name, input, input_len, ret, &call_err);
	if (r == -ENOMEM) {
		*err = call_err;
		return r;
	}
	if (r < 0) {
		char why[300], id[CR_SANDBOX_ID_MAX];
		lost_reason(h, r, &call_err, why, sizeof(why));
		snprintf(id, sizeof(id), "%s", cr_sandbox_id(h->sb));
		return lose(h, id, why, ret, err);
	}
	return note_oom(h, ret, err);
}

/* Whether the handle a caller shows is h's, in time that does not depend on where they
 * differ (the handle is a capability: a timing of the comparison must not spell it out). */
static bool handle_is(const struct cr_hands *h, const char *handle)
{
	size_t n = strlen(h->handle);
	if (!handle || strnlen(handle, n + 1) != n)
		return false;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(handle[i] ^ h->handle[i]);
	return diff == 0;
}

int cr_hands_handoff(struct cr_hands *h, const char *handle, const char *to_session,
		     uint64_t to_epoch, struct cr_error *err)
{
	if (!handle_is(h, handle))
		return cr_error_set(err, EACCES, "handoff: not this sandbox's handle");
	if (!to_session || !*to_session)
		return cr_error_set(err, EINVAL, "handoff: no session to hand the sandbox to");
	if (strcmp(to_session, h->session) == 0)
		return cr_error_set(err, EINVAL, "handoff: the sandbox is already session %s's",
				    to_session);
	char *to = strdup(to_session);
	if (!to)
		return cr_error_errno(err, ENOMEM, "handoff");
	int r = 0;
	if (h->cfg.log) {
		/* The intent first, then both sessions' events as one unit (both durable or
		 * neither, each fenced on its lease: a caller that does not hold both changes
		 * nothing), then the record binds the new session. A crash between the steps is
		 * settled by cr_hands_open from the log. */
		struct cr_log_session_info info;
		r = cr_log_session_info(h->cfg.log, h->session, &info, err);
		if (r == 0) {
			h->handoff_to = to;
			h->handoff_after = info.last_seq;
			r = save(h, err);
		}
		/* the handle is a capability: it never goes into a log */
		const char *id = h->sb ? cr_sandbox_id(h->sb) : NULL;
		json_t *p = json_pack("{s:o, s:s, s:s}", "sandbox_id",
				      id ? json_string(id) : json_null(), "from_session",
				      h->session, "to_session", to_session);
		char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
		json_decref(p);
		if (r == 0 && !text)
			r = cr_error_errno(err, ENOMEM, "handoff event");
		if (r == 0) {
			struct cr_log_append ev[2] = {
				{ .session = h->session,
				  .epoch = h->epoch,
				  .type = "sandbox.handoff",
				  .payload = text,
				  .payload_len = strlen(text) },
				{ .session = to_session,
				  .epoch = to_epoch,
				  .type = "sandbox.handoff",
				  .payload = text,
				  .payload_len = strlen(text) },
			};
			r = cr_log_append_all(h->cfg.log, ev, 2, NULL, err);
			if (r < 0)
				cr_error_prefix(err, "handoff from session %s to %s", h->session,
						to_session);
		}
		free(text);
		h->handoff_to = NULL;
		if (r < 0) {
			save(h, NULL); /* (the intent goes; open would find no events anyway) */
			free(to);
			return r;
		}
	}
	free(h->session);
	h->session = to;
	h->epoch = to_epoch;
	r = save(h, err);
	catalog_note(h, h->sb);
	return r;
}

int cr_hands_destroy(struct cr_hands *h, bool keep_workspace, struct cr_error *err)
{
	drop_sandbox(h);
	char path[PATH_MAX];
	if (record_path(h, "", path, sizeof(path), err) == 0 && unlink(path) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "remove %s", path);
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
