/* cli/run: corral run, a task from the command line to an agent session and back, like
 * Claude Code's headless mode (docs/cli.md). It finds or makes the default agent and
 * environment ("corral-default") unless told which, makes the session (or resumes one), opens
 * the event stream before it sends the task so that no event is missed, and prints the events
 * as text, one JSON result, or Claude Code's stream-json envelope until the session is idle
 * (or terminated). Ctrl-C once sends user.interrupt; twice quits. It decides nothing the
 * session decides: the agent, its tools and when it stops are the API's. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "corral/buf.h"
#include "corral/cleanup.h"

#define _cleanup_json_ _cleanup_(json_decrefp)

#define DEFAULT_NAME "corral-default"
#define DEFAULT_MODEL "claude-sonnet-4-5"
#define DEFAULT_SYSTEM                                                                           \
	"You are a coding agent working in /workspace, a sandbox of your own. Use the tools to " \
	"inspect and change files and to run commands there; check your work; answer briefly "   \
	"when the task is done."
#define STREAM_IDLE_TIMEOUT_S 90
#define FATAL_GRACE_S 30 /* after a session.error that will not be retried, wait this for idle */

enum output {
	OUT_TEXT,
	OUT_JSON,
	OUT_STREAM_JSON,
};

enum outcome {
	OUTCOME_NONE,
	OUTCOME_END_TURN,
	OUTCOME_REQUIRES_ACTION,
	OUTCOME_RETRIES_EXHAUSTED,
	OUTCOME_OTHER_STOP, /* an idle stop reason this client does not know */
	OUTCOME_TERMINATED,
	OUTCOME_DELETED,
	OUTCOME_ERROR, /* a session.error that will not be retried, and no idle came */
};

struct run {
	struct cr_client *client;
	enum output out;
	bool print_only; /* -p */
	const char *session_id;
	char *session_owned;
	const char *model; /* the agent's, for the output */
	json_t *agent; /* the agent object (tools, model) */
	json_t *tool_names;
	const char *task;

	/* progress */
	bool sent; /* the task is in the log */
	char message_id[96]; /* of the task's user.message */
	long long message_seq; /* its seq, 0 unknown */
	bool message_seen; /* it came through the stream */
	bool running_after; /* a session.status_running after it */
	enum outcome outcome;
	char stop_reason[64];
	char error[256]; /* the last session.error, one line */
	bool fatal; /* ... that will not be retried */
	struct timespec fatal_at;
	bool interrupt_sent;
	bool interrupted;
	bool failed; /* a request of this client failed (printed) */
	char *last_text; /* the last agent.message */
	/* text output: the agent.message being previewed (event_deltas), and what of it is
	 * printed already, so that its final event prints only the rest */
	char preview_id[96];
	struct cr_buf preview;
	json_int_t preview_index;
	long turns; /* span.model_request_end events */
	long messages; /* agent.message events */
	json_int_t usage[4];
	json_t *tool_uses; /* event id -> "name: summary", for requires_action */
	struct timespec start;
	int width; /* of a tool line */
};

static const char *const usage_keys[] = { "input_tokens", "output_tokens",
					  "cache_creation_input_tokens",
					  "cache_read_input_tokens" };

static volatile sig_atomic_t sigints;

static void on_sigint(int sig)
{
	(void)sig;
	if (++sigints >= 2) {
		static const char msg[] = "\ncorral run: interrupted twice: quitting (the session "
					  "goes on; corral sessions:events stream shows it)\n";
		ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)n;
		_exit(130);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corral run [-p] [--output-format text|json|stream-json]\n"
		"                  [--resume SESSION | --continue] [--agent ID] [--environment "
		"ID]\n"
		"                  [--model MODEL] [--title TEXT] TASK|-\n"
		"\n"
		"Runs TASK (- reads it from standard input) in an agent session and prints what "
		"the\n"
		"agent does until the session is idle. Without --agent and --environment it uses\n"
		"(making them when missing) the agent and the environment named \"" DEFAULT_NAME
		"\";\n"
		"--model (default $CORRAL_MODEL, else " DEFAULT_MODEL
		") is the default agent's model.\n"
		"  -p, --print          print only the agent's messages (text)\n"
		"  --output-format F    text (default), json (one result object at the end) or\n"
		"                       stream-json (Claude Code's NDJSON envelope)\n"
		"  --resume SESSION     send TASK to an existing session\n"
		"  -c, --continue       ... to the most recent session\n"
		"  --title TEXT         the new session's title (default: TASK's first "
		"line)\n" CR_CLIENT_USAGE "Ctrl-C once interrupts the agent (user.interrupt) and "
		"waits for the session to be\n"
		"idle; twice quits at once. Exit status: 0 when the agent ended its turn, 1 when\n"
		"it stopped otherwise (awaiting a tool confirmation, an error, interrupted) or\n"
		"corrald failed, 2 usage error, 130 interrupted twice.\n");
}

static double elapsed_s(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static int fail(struct run *r, const struct cr_error *err)
{
	fprintf(stderr, "corral: %s\n", err->msg);
	if (!r->error[0])
		cr_cli_one_line(err->msg, r->error, sizeof(r->error));
	r->failed = true;
	return CR_EXIT_FAIL;
}

/* --- the agent, the environment and the session -------------------------------------------- */

/* The first unarchived resource named name under path (every page), or NULL. -errno. */
static int find_named(struct run *r, const char *path, const char *name, json_t **ret,
		      struct cr_error *err)
{
	_cleanup_free_ char *page = NULL;
	*ret = NULL;
	for (int pages = 0; pages < 1000; pages++) {
		_cleanup_free_ char *url = strdup(path);
		if (!url || cr_client_query(&url, "limit", "100") ||
		    (page && cr_client_query(&url, "page", page)))
			return cr_error_set(err, ENOMEM, "no memory");
		_cleanup_json_ json_t *resp = NULL;
		int rc = cr_client_call(r->client, "GET", url, NULL, &resp, err);
		if (rc < 0)
			return rc;
		size_t i;
		json_t *o;
		json_array_foreach (json_object_get(resp, "data"), i, o) {
			const char *n = json_string_value(json_object_get(o, "name"));
			if (n && strcmp(n, name) == 0 &&
			    !json_is_string(json_object_get(o, "archived_at"))) {
				*ret = json_incref(o);
				return 0;
			}
		}
		const char *next = json_string_value(json_object_get(resp, "next_page"));
		if (!next || json_array_size(json_object_get(resp, "data")) == 0 ||
		    (page && strcmp(page, next) == 0))
			return 0;
		free(page);
		page = strdup(next);
		if (!page)
			return cr_error_set(err, ENOMEM, "no memory");
	}
	return 0;
}

static const char *chosen_model(const char *flag)
{
	if (flag)
		return flag;
	const char *e = getenv("CORRAL_MODEL");
	return e && *e ? e : NULL;
}

/* The agent to run: --agent's, else the default one, made (or moved to the model asked
 * for) as needed. */
static int resolve_agent(struct run *r, const char *agent_id, const char *model_flag, json_t **ret,
			 struct cr_error *err)
{
	if (agent_id) {
		_cleanup_free_ char *e = cr_client_escape(agent_id);
		_cleanup_free_ char *path = NULL;
		if (!e || asprintf(&path, "/v1/agents/%s", e) < 0)
			return cr_error_set(err, ENOMEM, "no memory");
		return cr_client_call(r->client, "GET", path, NULL, ret, err);
	}
	const char *want = chosen_model(model_flag);
	json_t *agent = NULL;
	int rc = find_named(r, "/v1/agents", DEFAULT_NAME, &agent, err);
	if (rc < 0)
		return rc;
	if (!agent) {
		_cleanup_json_ json_t *body =
			json_pack("{s:s, s:s, s:s, s:[{s:s}]}", "name", DEFAULT_NAME, "model",
				  want ? want : DEFAULT_MODEL, "system", DEFAULT_SYSTEM, "tools",
				  "type", "agent_toolset_20260401");
		return cr_client_call(r->client, "POST", "/v1/agents", body, ret, err);
	}
	const char *have = cr_cli_model_id(json_object_get(agent, "model"));
	if (want && (!have || strcmp(have, want) != 0)) {
		/* asked for another model: a new version of the default agent */
		_cleanup_json_ json_t *owned = agent;
		_cleanup_free_ char *e =
			cr_client_escape(json_string_value(json_object_get(agent, "id")));
		_cleanup_free_ char *path = NULL;
		if (!e || asprintf(&path, "/v1/agents/%s", e) < 0)
			return cr_error_set(err, ENOMEM, "no memory");
		_cleanup_json_ json_t *body = json_pack("{s:s, s:O}", "model", want, "version",
							json_object_get(agent, "version"));
		if (!body)
			return cr_error_set(err, ENOMEM, "no memory");
		return cr_client_call(r->client, "POST", path, body, ret, err);
	}
	*ret = agent;
	return 0;
}

static int resolve_environment(struct run *r, const char *env_id, char **ret, struct cr_error *err)
{
	if (env_id) {
		*ret = strdup(env_id);
		return *ret ? 0 : cr_error_set(err, ENOMEM, "no memory");
	}
	_cleanup_json_ json_t *env = NULL;
	int rc = find_named(r, "/v1/environments", DEFAULT_NAME, &env, err);
	if (rc < 0)
		return rc;
	if (!env) {
		_cleanup_json_ json_t *body =
			json_pack("{s:s, s:{s:s, s:{s:s}}}", "name", DEFAULT_NAME, "config", "type",
				  "cloud", "networking", "type", "unrestricted");
		rc = cr_client_call(r->client, "POST", "/v1/environments", body, &env, err);
		if (rc < 0)
			return rc;
	}
	const char *id = json_string_value(json_object_get(env, "id"));
	if (!id)
		return cr_error_set(err, EPROTO, "corrald answered an environment without an id");
	*ret = strdup(id);
	return *ret ? 0 : cr_error_set(err, ENOMEM, "no memory");
}

/* The names of the tools an agent object gives the model, for stream-json's init. */
static json_t *tool_names(const json_t *agent)
{
	static const char *const toolset[] = { "bash", "read", "write", "edit", "glob", "grep" };
	json_t *names = json_array();
	size_t i;
	json_t *t;
	json_array_foreach (json_object_get(agent, "tools"), i, t) {
		const char *type = json_string_value(json_object_get(t, "type"));
		if (!type)
			continue;
		if (strcmp(type, "agent_toolset_20260401") == 0) {
			/* each tool on unless its config (or the default config) turns it off */
			json_t *dflt =
				json_object_get(json_object_get(t, "default_config"), "enabled");
			for (size_t k = 0; k < CR_ARRAY_SIZE(toolset); k++) {
				bool on = !json_is_false(dflt);
				size_t j;
				json_t *cfg;
				json_array_foreach (json_object_get(t, "configs"), j, cfg) {
					const char *n =
						json_string_value(json_object_get(cfg, "name"));
					json_t *en = json_object_get(cfg, "enabled");
					if (n && strcmp(n, toolset[k]) == 0 && json_is_boolean(en))
						on = json_is_true(en);
				}
				if (on)
					json_array_append_new(names, json_string(toolset[k]));
			}
		} else if (strcmp(type, "custom") == 0) {
			json_t *n = json_object_get(t, "name");
			if (json_is_string(n))
				json_array_append(names, n);
		} else if (strcmp(type, "mcp_toolset") == 0) {
			const char *server =
				json_string_value(json_object_get(t, "mcp_server_name"));
			char buf[160];
			snprintf(buf, sizeof(buf), "mcp__%s", server ? server : "?");
			json_array_append_new(names, json_string(buf));
		}
	}
	return names;
}

/* --- output -------------------------------------------------------------------------------- */

static void emit(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	if (s)
		puts(s);
	free(s);
	fflush(stdout);
}

static void emit_init(struct run *r)
{
	_cleanup_json_ json_t *o = json_pack(
		"{s:s, s:s, s:s, s:s, s:O, s:[], s:s?, s:s, s:s?}", "type", "system", "subtype",
		"init", "cwd", "/workspace", "session_id", r->session_id, "tools", r->tool_names,
		"mcp_servers", "model", r->model, "permissionMode", "default", "agent_id",
		json_string_value(json_object_get(r->agent, "id")));
	emit(o);
}

static void emit_assistant(struct run *r, const json_t *ev, json_t *content)
{
	_cleanup_json_ json_t *o = json_pack(
		"{s:s, s:{s:s?, s:s, s:s, s:s?, s:o, s:n, s:n}, s:n, s:s}", "type", "assistant",
		"message", "id", json_string_value(json_object_get(ev, "id")), "type", "message",
		"role", "assistant", "model", r->model, "content", content, "stop_reason",
		"stop_sequence", "parent_tool_use_id", "session_id", r->session_id);
	emit(o);
}

static void emit_tool_result(struct run *r, const char *tool_use_id, const json_t *ev)
{
	json_t *content = json_object_get(ev, "content");
	_cleanup_json_ json_t *o =
		json_pack("{s:s, s:{s:s, s:[{s:s, s:s?, s:O, s:b}]}, s:n, s:s}", "type", "user",
			  "message", "role", "user", "content", "type", "tool_result",
			  "tool_use_id", tool_use_id, "content", content ? content : json_null(),
			  "is_error", json_is_true(json_object_get(ev, "is_error")),
			  "parent_tool_use_id", "session_id", r->session_id);
	emit(o);
}

static bool success(const struct run *r)
{
	return r->outcome == OUTCOME_END_TURN && !r->interrupted && !r->failed;
}

static const char *outcome_text(const struct run *r)
{
	if (r->failed)
		return "failed";
	if (r->interrupted && r->outcome != OUTCOME_NONE)
		return "interrupted";
	switch (r->outcome) {
	case OUTCOME_END_TURN:
		return "end_turn";
	case OUTCOME_REQUIRES_ACTION:
		return "requires_action";
	case OUTCOME_RETRIES_EXHAUSTED:
		return "retries_exhausted";
	case OUTCOME_OTHER_STOP:
		return r->stop_reason[0] ? r->stop_reason : "stopped";
	case OUTCOME_TERMINATED:
		return "terminated";
	case OUTCOME_DELETED:
		return "deleted";
	case OUTCOME_ERROR:
		return "error";
	case OUTCOME_NONE:
		break;
	}
	return "incomplete";
}

static void emit_result(struct run *r)
{
	bool ok = success(r);
	json_t *usage = json_object();
	for (size_t i = 0; i < CR_ARRAY_SIZE(usage_keys); i++)
		json_object_set_new(usage, usage_keys[i], json_integer(r->usage[i]));
	long turns = r->turns ? r->turns : r->messages;
	_cleanup_json_ json_t *o = json_pack(
		"{s:s, s:s, s:b, s:I, s:I, s:s, s:s, s:s, s:f, s:o}", "type", "result", "subtype",
		ok ? "success" : "error_during_execution", "is_error", !ok, "duration_ms",
		(json_int_t)(elapsed_s(&r->start) * 1000), "num_turns", (json_int_t)turns, "result",
		r->last_text ? r->last_text : "", "session_id", r->session_id, "stop_reason",
		outcome_text(r), "total_cost_usd", 0.0, "usage", usage);
	if (o && !ok && r->error[0])
		json_object_set_new(o, "error", json_string(r->error));
	if (o)
		emit(o);
}

/* The final line of text output. */
static void print_outcome(struct run *r)
{
	char tail[160];
	long turns = r->turns ? r->turns : r->messages;
	snprintf(tail, sizeof(tail), "%ld turn%s, %.1f s, %lld in / %lld out tokens, session %s",
		 turns, turns == 1 ? "" : "s", elapsed_s(&r->start), (long long)r->usage[0],
		 (long long)r->usage[1], r->session_id);
	if (success(r)) {
		if (!r->print_only)
			printf("\n✓ done (%s; %s)\n", outcome_text(r), tail);
		return;
	}
	FILE *f = r->print_only ? stderr : stdout;
	fprintf(f, "\n✗ %s%s%s (%s)\n", outcome_text(r), r->error[0] ? ": " : "", r->error, tail);
}

/* A tool line, "● bash: ls -la", cut to the terminal's width. */
static void print_tool_use(struct run *r, const char *summary)
{
	if (r->print_only)
		return;
	char line[512];
	size_t w = (size_t)r->width < sizeof(line) ? (size_t)r->width : sizeof(line);
	cr_cli_one_line(summary, line, w > 3 ? w - 2 : sizeof(line));
	printf("● %s\n", line);
}

static void print_tool_result(struct run *r, const json_t *ev)
{
	if (r->print_only)
		return;
	_cleanup_free_ char *text = cr_cli_content_text(json_object_get(ev, "content"));
	bool is_error = json_is_true(json_object_get(ev, "is_error"));
	const char *t = text ? text : "";
	while (*t == '\n')
		t++;
	size_t lines = 0;
	for (const char *p = t; *p; p++)
		if (*p == '\n' && p[1])
			lines++;
	char first[512];
	size_t w = (size_t)r->width < sizeof(first) ? (size_t)r->width : sizeof(first);
	_cleanup_free_ char *head = strndup(t, strcspn(t, "\n"));
	cr_cli_one_line(head ? head : "", first, w > 16 ? w - 14 : sizeof(first));
	printf("  ⎿  %s%s", is_error ? "error: " : "", *first ? first : "(no output)");
	if (lines)
		printf(" (+%zu line%s)", lines, lines == 1 ? "" : "s");
	putchar('\n');
}

/* --- events -------------------------------------------------------------------------------- */

static long long seq_of(const json_t *ev)
{
	json_t *s = json_object_get(ev, "seq");
	return json_is_integer(s) ? (long long)json_integer_value(s) : 0;
}

/* Whether ev came after the task: by seq when both have one, else by having seen the task's
 * event go by. */
static bool after_task(const struct run *r, const json_t *ev)
{
	if (!r->sent)
		return false;
	long long s = seq_of(ev);
	if (s && r->message_seq)
		return s > r->message_seq;
	return r->message_seen;
}

/* Whether the task's user.message was consumed (processed_at set): an idle that comes while
 * it is still pending ended an earlier turn, not the task's. */
static bool task_processed(struct run *r)
{
	_cleanup_free_ char *e = cr_client_escape(r->session_id);
	_cleanup_free_ char *path = NULL;
	if (!e || asprintf(&path, "/v1/sessions/%s/events", e) < 0 ||
	    cr_client_query(&path, "types[]", "user.message") ||
	    cr_client_query(&path, "order", "desc") || cr_client_query(&path, "limit", "50"))
		return true;
	_cleanup_json_ json_t *resp = NULL;
	struct cr_error err;
	if (cr_client_call(r->client, "GET", path, NULL, &resp, &err) < 0)
		return true; /* (cannot tell: the idle is taken) */
	size_t i;
	json_t *ev;
	json_array_foreach (json_object_get(resp, "data"), i, ev) {
		const char *id = json_string_value(json_object_get(ev, "id"));
		if (id && strcmp(id, r->message_id) == 0)
			return !json_is_null(json_object_get(ev, "processed_at"));
	}
	return true;
}

static void on_idle(struct run *r, const json_t *ev)
{
	json_t *sr = json_object_get(ev, "stop_reason");
	const char *type = json_is_string(sr) ? json_string_value(sr)
					      : json_string_value(json_object_get(sr, "type"));
	snprintf(r->stop_reason, sizeof(r->stop_reason), "%s", type ? type : "");
	if (type && strcmp(type, "end_turn") == 0) {
		r->outcome = OUTCOME_END_TURN;
	} else if (type && strcmp(type, "retries_exhausted") == 0) {
		r->outcome = OUTCOME_RETRIES_EXHAUSTED;
	} else if (type && strcmp(type, "requires_action") == 0) {
		r->outcome = OUTCOME_REQUIRES_ACTION;
		json_t *ids = json_object_get(sr, "event_ids");
		fprintf(stderr,
			"corral run: the agent waits for %zu tool call%s to be confirmed:\n",
			json_array_size(ids), json_array_size(ids) == 1 ? "" : "s");
		size_t i;
		json_t *id;
		json_array_foreach (ids, i, id) {
			const char *what = json_string_value(
				json_object_get(r->tool_uses, json_string_value(id)));
			fprintf(stderr, "  ● %s (%s)\n", what ? what : "a tool call",
				json_string_value(id) ? json_string_value(id) : "?");
		}
		const char *one = json_array_size(ids) == 1
					  ? json_string_value(json_array_get(ids, 0))
					  : NULL;
		fprintf(stderr,
			"answer with: corral sessions:events send --session-id %s --allow %s (or "
			"--deny %s)\n",
			r->session_id, one ? one : "ID", one ? one : "ID");
	} else {
		r->outcome = OUTCOME_OTHER_STOP;
	}
	if (r->outcome != OUTCOME_END_TURN && !r->error[0] && r->fatal)
		r->outcome = OUTCOME_RETRIES_EXHAUSTED;
}

/* Ends the line of a preview that got no final event (its model call failed). */
static void preview_end(struct run *r)
{
	if (r->preview.len)
		printf("\n");
	r->preview_id[0] = '\0';
	cr_buf_reset(&r->preview);
}

/* Text output: a preview's text is printed as it comes (docs/api.md, "Previews"). */
static void preview_event(struct run *r, const char *type, const json_t *ev)
{
	if (strcmp(type, "event_start") == 0) {
		const json_t *e = json_object_get(ev, "event");
		const char *id = json_string_value(json_object_get(e, "id"));
		if (!id || strcmp(json_string_value(json_object_get(e, "type")) ?: "",
				  "agent.message") != 0)
			return;
		preview_end(r);
		snprintf(r->preview_id, sizeof(r->preview_id), "%s", id);
		r->preview_index = 0;
		return;
	}
	const char *id = json_string_value(json_object_get(ev, "event_id"));
	const json_t *d = json_object_get(ev, "delta");
	const char *frag =
		json_string_value(json_object_get(json_object_get(d, "content"), "text"));
	if (!id || !*r->preview_id || strcmp(id, r->preview_id) != 0 || !frag)
		return;
	json_int_t index = json_integer_value(json_object_get(d, "index"));
	/* (blocks of one message are joined with a newline, as cr_cli_content_text does) */
	if (index != r->preview_index && r->preview.len && cr_buf_str(&r->preview, "\n") == 0)
		printf("\n");
	r->preview_index = index;
	if (cr_buf_str(&r->preview, frag) == 0)
		fputs(frag, stdout);
	fflush(stdout);
}

/* Handles one event; returns CR_CLIENT_STOP once the run is over. */
static int handle(struct run *r, const json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *id = json_string_value(json_object_get(ev, "id"));
	bool text = r->out == OUT_TEXT, stream = r->out == OUT_STREAM_JSON;
	char buf[512];
	if (!type)
		return 0;
	if (strcmp(type, "event_start") == 0 || strcmp(type, "event_delta") == 0) {
		if (text)
			preview_event(r, type, ev);
		return 0;
	}
	if (strcmp(type, "user.message") == 0) {
		if (id && strcmp(id, r->message_id) == 0)
			r->message_seen = true;
		return 0;
	}
	if (strcmp(type, "agent.message") == 0) {
		_cleanup_free_ char *t = cr_cli_content_text(json_object_get(ev, "content"));
		r->messages++;
		if (t) {
			free(r->last_text);
			r->last_text = TAKE_PTR(t);
		}
		if (text && r->last_text) {
			/* the rest of what its preview showed; the whole if that differs */
			bool previewed = id && *r->preview_id && strcmp(id, r->preview_id) == 0 &&
					 r->preview.len &&
					 strncmp(r->last_text, r->preview.p, r->preview.len) == 0;
			if (previewed)
				printf("%s\n", r->last_text + r->preview.len);
			else {
				preview_end(r);
				printf("%s\n", r->last_text);
			}
			r->preview_id[0] = '\0';
			cr_buf_reset(&r->preview);
		} else if (stream) {
			json_t *content = json_object_get(ev, "content");
			emit_assistant(r, ev, content ? json_incref(content) : json_array());
		}
	} else if (strcmp(type, "agent.tool_use") == 0 ||
		   strcmp(type, "agent.custom_tool_use") == 0 ||
		   strcmp(type, "agent.mcp_tool_use") == 0) {
		cr_cli_event_summary(ev, buf, sizeof(buf));
		if (id)
			json_object_set_new(r->tool_uses, id, json_string(buf));
		if (text)
			print_tool_use(r, buf);
		if (stream) {
			const char *name = json_string_value(json_object_get(ev, "name"));
			const char *server =
				json_string_value(json_object_get(ev, "mcp_server_name"));
			char full[256];
			snprintf(full, sizeof(full), "%s%s%s%s", server ? "mcp__" : "",
				 server ? server : "", server ? "__" : "", name ? name : "?");
			json_t *input = json_object_get(ev, "input");
			json_t *block =
				json_pack("{s:s, s:s?, s:s, s:O}", "type", "tool_use", "id", id,
					  "name", full, "input", input ? input : json_object());
			emit_assistant(r, ev, json_pack("[o]", block));
		}
	} else if (strcmp(type, "agent.tool_result") == 0 ||
		   strcmp(type, "agent.mcp_tool_result") == 0) {
		if (text)
			print_tool_result(r, ev);
		if (stream) {
			const char *use = json_string_value(json_object_get(ev, "tool_use_id"));
			if (!use)
				use = json_string_value(json_object_get(ev, "mcp_tool_use_id"));
			emit_tool_result(r, use, ev);
		}
	} else if (strcmp(type, "span.model_request_end") == 0) {
		if (text)
			preview_end(r); /* (a call that ended without its message) */
		r->turns++;
		json_t *mu = json_object_get(ev, "model_usage");
		for (size_t i = 0; i < CR_ARRAY_SIZE(usage_keys); i++)
			r->usage[i] += json_integer_value(json_object_get(mu, usage_keys[i]));
	} else if (strcmp(type, "session.error") == 0) {
		json_t *e = json_object_get(ev, "error");
		json_t *rs = json_object_get(e, "retry_status");
		const char *retry = json_is_string(rs)
					    ? json_string_value(rs)
					    : json_string_value(json_object_get(rs, "type"));
		cr_cli_event_summary(ev, buf, sizeof(buf));
		fprintf(stderr, "corral run: %s\n", buf);
		cr_cli_one_line(buf, r->error, sizeof(r->error));
		if (!retry || strcmp(retry, "retrying") != 0) {
			r->fatal = true;
			clock_gettime(CLOCK_MONOTONIC, &r->fatal_at);
		}
	} else if (strcmp(type, "session.status_running") == 0) {
		if (after_task(r, ev))
			r->running_after = true;
	} else if (strcmp(type, "session.status_idle") == 0) {
		if (!after_task(r, ev))
			return 0;
		/* an idle while the task still waits ended the turn before it */
		if (!r->running_after && !task_processed(r))
			return 0;
		on_idle(r, ev);
		return CR_CLIENT_STOP;
	} else if (strcmp(type, "session.status_terminated") == 0) {
		r->outcome = OUTCOME_TERMINATED;
		return CR_CLIENT_STOP;
	} else if (strcmp(type, "session.deleted") == 0) {
		r->outcome = OUTCOME_DELETED;
		return CR_CLIENT_STOP;
	} else if (text && !r->print_only &&
		   (strcmp(type, "sandbox.lost") == 0 || strcmp(type, "policy.denied") == 0)) {
		cr_cli_event_summary(ev, buf, sizeof(buf));
		printf("· %s: %s\n", type, buf);
	}
	if (text)
		fflush(stdout);
	return 0;
}

static int on_event(void *arg, const struct cr_sse_event *sse)
{
	struct run *r = arg;
	if (strcmp(sse->type, "ping") == 0)
		return 0;
	_cleanup_json_ json_t *ev = json_loadb(sse->data, sse->data_len, 0, NULL);
	if (!json_is_object(ev)) {
		fprintf(stderr, "corral: an event of the stream (id %s) is not a JSON object\n",
			*sse->id ? sse->id : "none");
		r->failed = true;
		return CR_CLIENT_STOP;
	}
	return handle(r, ev);
}

static int send_events(struct run *r, json_t *events, json_t **ret)
{
	_cleanup_free_ char *e = cr_client_escape(r->session_id);
	_cleanup_free_ char *path = NULL;
	struct cr_error err;
	if (!e || asprintf(&path, "/v1/sessions/%s/events", e) < 0) {
		cr_error_set(&err, ENOMEM, "no memory");
		return fail(r, &err);
	}
	_cleanup_json_ json_t *body = json_pack("{s:o}", "events", events);
	if (cr_client_call(r->client, "POST", path, body, ret, &err) < 0)
		return fail(r, &err);
	return CR_EXIT_OK;
}

/* The stream is open: now the task goes, so every event it causes comes through. */
static int on_open(void *arg)
{
	struct run *r = arg;
	if (r->out == OUT_STREAM_JSON)
		emit_init(r);
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	json_t *events = json_pack("[{s:s, s:[{s:s, s:s}]}]", "type", "user.message", "content",
				   "type", "text", "text", r->task);
	_cleanup_json_ json_t *resp = NULL;
	if (send_events(r, events, &resp) != CR_EXIT_OK)
		return CR_CLIENT_STOP;
	json_t *ev = json_array_get(json_object_get(resp, "data"), 0);
	snprintf(r->message_id, sizeof(r->message_id), "%s",
		 json_string_value(json_object_get(ev, "id")) ?: "");
	r->message_seq = seq_of(ev);
	r->sent = true;
	return 0;
}

static int on_tick(void *arg)
{
	struct run *r = arg;
	if (sigints && !r->interrupt_sent && r->sent) {
		r->interrupt_sent = r->interrupted = true;
		fprintf(stderr, "\ncorral run: interrupting the agent (Ctrl-C again to quit)\n");
		_cleanup_json_ json_t *resp = NULL;
		if (send_events(r, json_pack("[{s:s}]", "type", "user.interrupt"), &resp) !=
		    CR_EXIT_OK)
			return CR_CLIENT_STOP;
	}
	if (r->fatal && elapsed_s(&r->fatal_at) > FATAL_GRACE_S) {
		fprintf(stderr,
			"corral run: the session did not become idle within %d s of the "
			"error; giving up\n",
			FATAL_GRACE_S);
		r->outcome = OUTCOME_ERROR;
		return CR_CLIENT_STOP;
	}
	return 0;
}

static void on_reconnect(void *arg, const char *why, const char *last_id)
{
	(void)arg;
	fprintf(stderr, "corral run: the event stream broke (%s); reconnecting%s%s\n", why,
		*last_id ? " after event " : "", last_id);
}

/* The seq of the session's last event ("0" when it has none): the stream resumes from it, so
 * nothing is missed even when the first connection drops before any event came. */
static int last_seq(struct run *r, char *buf, size_t size, struct cr_error *err)
{
	_cleanup_free_ char *e = cr_client_escape(r->session_id);
	_cleanup_free_ char *path = NULL;
	buf[0] = '\0';
	if (!e || asprintf(&path, "/v1/sessions/%s/events", e) < 0 ||
	    cr_client_query(&path, "order", "desc") || cr_client_query(&path, "limit", "1"))
		return cr_error_set(err, ENOMEM, "no memory");
	_cleanup_json_ json_t *resp = NULL;
	int rc = cr_client_call(r->client, "GET", path, NULL, &resp, err);
	if (rc < 0)
		return rc;
	long long s = seq_of(json_array_get(json_object_get(resp, "data"), 0));
	snprintf(buf, size, "%lld", s > 0 ? s : 0);
	return 0;
}

/* --- the verb ------------------------------------------------------------------------------ */

enum {
	OPT_OUTPUT = 1,
	OPT_RESUME,
	OPT_CONTINUE,
	OPT_AGENT,
	OPT_ENV,
	OPT_MODEL,
	OPT_TITLE,
	OPT_HELP,
};

static char *read_stdin(void)
{
	char *text = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&text, &n);
	if (!m)
		return NULL;
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		fwrite(chunk, 1, got, m);
	fclose(m);
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	return text;
}

/* The session: --resume's, --continue's (the newest), or a new one of the agent and
 * environment. Sets r->session_id, r->agent, r->model. */
static int choose_session(struct run *r, const char *resume, bool cont, const char *agent_id,
			  const char *env_id, const char *model, const char *title)
{
	struct cr_error err;
	_cleanup_json_ json_t *session = NULL;
	if (cont) {
		_cleanup_json_ json_t *resp = NULL;
		if (cr_client_call(r->client, "GET", "/v1/sessions?limit=1&order=desc", NULL, &resp,
				   &err) < 0)
			return fail(r, &err);
		session = json_incref(json_array_get(json_object_get(resp, "data"), 0));
		if (!session) {
			fprintf(stderr, "corral run: --continue: there is no session yet\n");
			return CR_EXIT_FAIL;
		}
	} else if (resume) {
		_cleanup_free_ char *e = cr_client_escape(resume);
		_cleanup_free_ char *path = NULL;
		if (!e || asprintf(&path, "/v1/sessions/%s", e) < 0)
			return CR_EXIT_FAIL;
		if (cr_client_call(r->client, "GET", path, NULL, &session, &err) < 0)
			return fail(r, &err);
	}
	if (session) {
		const char *status = json_string_value(json_object_get(session, "status"));
		if (status && strcmp(status, "terminated") == 0) {
			fprintf(stderr, "corral run: session %s is terminated\n",
				json_string_value(json_object_get(session, "id")));
			return CR_EXIT_FAIL;
		}
		json_t *agent = json_object_get(session, "agent");
		r->agent = json_is_object(agent) ? json_incref(agent) : json_object();
	} else {
		_cleanup_free_ char *env = NULL;
		json_t *agent = NULL;
		if (resolve_agent(r, agent_id, model, &agent, &err) < 0)
			return fail(r, &err);
		r->agent = agent;
		if (resolve_environment(r, env_id, &env, &err) < 0)
			return fail(r, &err);
		char t[81];
		cr_cli_one_line(title ? title : r->task, t, sizeof(t));
		_cleanup_json_ json_t *body =
			json_pack("{s:O, s:s, s:s}", "agent", json_object_get(r->agent, "id"),
				  "environment_id", env, "title", t);
		if (!body) {
			fprintf(stderr, "corral run: corrald answered an agent without an id\n");
			return CR_EXIT_FAIL;
		}
		if (cr_client_call(r->client, "POST", "/v1/sessions", body, &session, &err) < 0)
			return fail(r, &err);
	}
	const char *id = json_string_value(json_object_get(session, "id"));
	if (!id) {
		fprintf(stderr, "corral run: corrald answered a session without an id\n");
		return CR_EXIT_FAIL;
	}
	r->session_owned = strdup(id);
	r->session_id = r->session_owned;
	r->model = cr_cli_model_id(json_object_get(r->agent, "model"));
	r->tool_names = tool_names(r->agent);
	return r->session_id ? CR_EXIT_OK : CR_EXIT_FAIL;
}

static int terminal_width(void)
{
	struct winsize ws;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 160;
}

static int run(struct run *r, const struct cr_client_options *copts, const char *resume, bool cont,
	       const char *agent_id, const char *env_id, const char *model, const char *title)
{
	struct cr_error err;
	if (cr_client_new(copts, &r->client, &err) < 0) {
		fprintf(stderr, "corral: %s\n", err.msg);
		return err.code == EINVAL && strncmp(err.msg, "--", 2) == 0 ? CR_EXIT_USAGE
									    : CR_EXIT_FAIL;
	}
	int rc = choose_session(r, resume, cont, agent_id, env_id, model, title);
	if (rc != CR_EXIT_OK)
		return rc;
	char from[32];
	if (last_seq(r, from, sizeof(from), &err) < 0)
		return fail(r, &err);

	struct sigaction sa = { .sa_handler = on_sigint }; /* (no SA_RESTART: waits end early) */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	_cleanup_free_ char *e = cr_client_escape(r->session_id);
	_cleanup_free_ char *path = NULL;
	/* text output shows the agent's words as they are written: with previews */
	if (!e || asprintf(&path, "/v1/sessions/%s/events/stream%s", e,
			   r->out == OUT_TEXT ? "?event_deltas%5B%5D=agent.message" : "") < 0)
		return CR_EXIT_FAIL;
	struct cr_client_stream_ops ops = {
		.arg = r,
		.on_event = on_event,
		.on_open = on_open,
		.on_tick = on_tick,
		.on_reconnect = on_reconnect,
	};
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	if (cr_client_stream(r->client, path, from, STREAM_IDLE_TIMEOUT_S, &ops, &err) < 0) {
		fail(r, &err);
		if (r->sent)
			fprintf(stderr,
				"corral run: the session goes on without this client: corral "
				"sessions:events stream --session-id %s\n",
				r->session_id);
	}
	if (r->out == OUT_TEXT)
		print_outcome(r);
	else
		emit_result(r);
	return success(r) ? CR_EXIT_OK : CR_EXIT_FAIL;
}

int cr_cli_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "print", no_argument, NULL, 'p' },
		{ "output-format", required_argument, NULL, OPT_OUTPUT },
		{ "resume", required_argument, NULL, OPT_RESUME },
		{ "continue", no_argument, NULL, OPT_CONTINUE },
		{ "agent", required_argument, NULL, OPT_AGENT },
		{ "environment", required_argument, NULL, OPT_ENV },
		{ "model", required_argument, NULL, OPT_MODEL },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ "help", no_argument, NULL, OPT_HELP },
		CR_CLIENT_LONG_OPTIONS,
		{ 0 },
	};
	struct run r = { .out = OUT_TEXT, .tool_uses = json_object(), .width = terminal_width() };
	struct cr_client_options copts = { 0 };
	const char *resume = NULL, *agent = NULL, *env = NULL, *model = NULL, *title = NULL;
	bool cont = false;
	int o;
	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":pc", opts, NULL)) != -1) {
		if (cr_client_option(&copts, o, optarg))
			continue;
		switch (o) {
		case 'p':
			r.print_only = true;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "text") == 0)
				r.out = OUT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				r.out = OUT_JSON;
			else if (strcmp(optarg, "stream-json") == 0)
				r.out = OUT_STREAM_JSON;
			else {
				fprintf(stderr,
					"corral run: --output-format %s: want text, json or "
					"stream-json\n",
					optarg);
				json_decref(r.tool_uses);
				return CR_EXIT_USAGE;
			}
			break;
		case OPT_RESUME:
			resume = optarg;
			break;
		case 'c':
		case OPT_CONTINUE:
			cont = true;
			break;
		case OPT_AGENT:
			agent = optarg;
			break;
		case OPT_ENV:
			env = optarg;
			break;
		case OPT_MODEL:
			model = optarg;
			break;
		case OPT_TITLE:
			title = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			json_decref(r.tool_uses);
			return CR_EXIT_OK;
		default:
			if (o == ':')
				fprintf(stderr, "corral run: option \"%s\" wants an argument\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "corral run: unknown option \"%s\"\n",
					argv[optind - 1]);
			usage(stderr);
			json_decref(r.tool_uses);
			return CR_EXIT_USAGE;
		}
	}
	const char *bad = NULL;
	if (optind >= argc)
		bad = "no TASK (a quoted string, or - to read it from standard input)";
	else if (argc - optind > 1)
		bad = "one TASK, please: quote it (corral run \"fix the tests\")";
	else if (resume && cont)
		bad = "--resume and --continue exclude each other";
	else if ((resume || cont) && (agent || env || model || title))
		bad = "--agent, --environment, --model and --title make a new session: not with "
		      "--resume or --continue";
	if (bad) {
		fprintf(stderr, "corral run: %s (corral run --help)\n", bad);
		json_decref(r.tool_uses);
		return CR_EXIT_USAGE;
	}
	_cleanup_free_ char *task = NULL;
	if (strcmp(argv[optind], "-") == 0) {
		task = read_stdin();
		if (!task || !*task) {
			fprintf(stderr, "corral run: the task from standard input is empty\n");
			json_decref(r.tool_uses);
			return CR_EXIT_USAGE;
		}
		r.task = task;
	} else {
		r.task = argv[optind];
		if (!*r.task) {
			fprintf(stderr, "corral run: the task is empty\n");
			json_decref(r.tool_uses);
			return CR_EXIT_USAGE;
		}
	}
	if (r.out == OUT_TEXT)
		setvbuf(stdout, NULL, _IOLBF, 0);

	int rc = run(&r, &copts, resume, cont, agent, env, model, title);

	cr_client_free(r.client);
	json_decref(r.agent);
	json_decref(r.tool_names);
	json_decref(r.tool_uses);
	free(r.session_owned);
	free(r.last_text);
	cr_buf_free(&r.preview);
	return rc;
}
