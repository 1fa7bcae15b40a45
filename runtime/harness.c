/* runtime/harness: the step as a fold of the log followed by a decision (harness.h). The fold
 * turns the events into a list of items, each one content block of the conversation with its
 * role and the seq of the event it came from, and into the state of every tool use, of the last
 * model call and of the session; the decision reads only that. Nothing here does I/O, reads a
 * clock or keeps anything between calls: the output is a function of the input, byte for byte.
 * That is what lets any worker take a session over, and what keeps the model's prompt cache
 * warm: the request of one turn is the request of the turn before with the new messages added.
 * How the log is read: docs/events.md, "How the harness reads the log". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/harness.h"
#include "corral/tool.h"

#define RETRY_DELAY_BASE_MS 1000u
#define RETRY_DELAY_MAX_MS 30000u
#define SUMMARY_TEXT_MAX 200 /* bytes of a message's text on its line of a compaction summary */
#define SUMMARY_TOOL_MAX 100 /* bytes of a tool call's input or result on its line */

static const char interrupted_text[] = "interrupted by the user";
static const char denied_text[] = "the user denied this tool call";
static const char refusal_explanation[] = "the model declined to continue";

static void json_releasep(json_t **p)
{
	json_decref(*p);
}
#define _cleanup_json_ _cleanup_(json_releasep)

static int oom(struct cr_error *err)
{
	return cr_error_set(err, ENOMEM, "harness: out of memory");
}

static int bad(struct cr_error *err, const struct cr_log_event *e, const char *what)
{
	return cr_error_set(err, EINVAL, "harness: event %" PRIu64 " (%s): %s", e->seq, e->type,
			    what);
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Sets o[key] to v, taking the reference (also when it fails); a NULL v is out of memory. */
static int set_new(json_t *o, const char *key, json_t *v, struct cr_error *err)
{
	return json_object_set_new(o, key, v) < 0 ? oom(err) : 0;
}

static int append_new(json_t *a, json_t *v, struct cr_error *err)
{
	return json_array_append_new(a, v) < 0 ? oom(err) : 0;
}

static json_t *ephemeral(void)
{
	return json_pack("{s:s}", "type", "ephemeral");
}

/* --- the agent ------------------------------------------------------------------------------ */

struct config {
	const struct cr_harness_agent *agent;
	const json_t *toolset; /* the agent_toolset_20260401 entry of agent->tools, or NULL */
	long max_tokens;
	unsigned keep_turns;
	unsigned retries;
};

static int config_init(const struct cr_harness_agent *agent, struct config *ret,
		       struct cr_error *err)
{
	if (!agent || !agent->model || !agent->model[0])
		return cr_error_set(err, EINVAL, "harness: the agent has no model");
	if (agent->tools && !json_is_array(agent->tools))
		return cr_error_set(err, EINVAL, "harness: the agent's tools are not an array");

	struct config c = {
		.agent = agent,
		.max_tokens =
			agent->max_tokens > 0 ? agent->max_tokens : CR_HARNESS_MAX_TOKENS_DEFAULT,
		.keep_turns = agent->keep_turns ? agent->keep_turns : CR_HARNESS_KEEP_TURNS_DEFAULT,
		.retries = agent->model_retries >= 0 ? (unsigned)agent->model_retries
						     : CR_HARNESS_MODEL_RETRIES_DEFAULT,
	};
	size_t i;
	json_t *t;
	json_array_foreach (agent->tools, i, t) {
		const char *type = str(t, "type");
		if (streq(type, CR_TOOLSET_TYPE) && !c.toolset) {
			c.toolset = t;
		} else if (streq(type, "custom") &&
			   (!str(t, "name") ||
			    !json_is_object(json_object_get(t, "input_schema")))) {
			return cr_error_set(
				err, EINVAL,
				"harness: the agent's tool %zu (custom) needs a name and "
				"an input_schema object",
				i);
		}
	}
	*ret = c;
	return 0;
}

static bool custom_tool(const struct config *cfg, const char *name)
{
	size_t i;
	json_t *t;
	json_array_foreach (cfg->agent->tools, i, t) {
		if (streq(str(t, "type"), "custom") && streq(str(t, "name"), name))
			return true;
	}
	return false;
}

/* The toolset's configs[] entry of a built-in tool, or NULL. */
static const json_t *tool_config(const struct config *cfg, const char *name)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(cfg->toolset, "configs"), i, c) {
		if (streq(str(c, "name"), name))
			return c;
	}
	return NULL;
}

/* A tool's own setting wins over the toolset's default_config, which wins over the API's
 * default (enabled). Without a toolset in the agent no built-in tool is enabled. */
static bool builtin_enabled(const struct config *cfg, const char *name)
{
	if (!cfg->toolset || !name || !cr_tool_known(name))
		return false;
	json_t *e = json_object_get(tool_config(cfg, name), "enabled");
	if (json_is_boolean(e))
		return json_is_true(e);
	e = json_object_get(json_object_get(cfg->toolset, "default_config"), "enabled");
	return json_is_boolean(e) ? json_is_true(e) : true;
}

static bool builtin_asks(const struct config *cfg, const char *name)
{
	const char *p = str(json_object_get(tool_config(cfg, name), "permission_policy"), "type");
	if (!p)
		p = str(json_object_get(json_object_get(cfg->toolset, "default_config"),
					"permission_policy"),
			"type");
	/* "auto" has no evaluator in corral yet: it runs, as always_allow does. */
	return streq(p, "always_ask");
}

/* The request's "tools": the enabled built-in tools in the toolset's order, then the custom
 * ones in the agent's order. New objects every time, so cache_control on the last one never
 * touches the agent's. *ret is NULL when there are none. */
static int tool_definitions(const struct config *cfg, json_t **ret, struct cr_error *err)
{
	_cleanup_json_ json_t *tools = json_array();
	if (!tools)
		return oom(err);
	size_t i;
	json_t *t;
	if (cfg->toolset) {
		_cleanup_json_ json_t *defs = cr_toolset_definitions();
		if (!defs)
			return oom(err);
		json_array_foreach (defs, i, t) {
			if (builtin_enabled(cfg, str(t, "name")) && json_array_append(tools, t) < 0)
				return oom(err);
		}
	}
	json_array_foreach (cfg->agent->tools, i, t) {
		if (!streq(str(t, "type"), "custom"))
			continue;
		json_t *d = json_object();
		if (append_new(tools, d, err) < 0 ||
		    set_new(d, "name", json_string(str(t, "name")), err) < 0)
			return -ENOMEM;
		if (str(t, "description") &&
		    set_new(d, "description", json_string(str(t, "description")), err) < 0)
			return -ENOMEM;
		if (set_new(d, "input_schema", json_deep_copy(json_object_get(t, "input_schema")),
			    err) < 0)
			return -ENOMEM;
	}
	size_t n = json_array_size(tools);
	if (n == 0) {
		*ret = NULL;
		return 0;
	}
	if (set_new(json_array_get(tools, n - 1), "cache_control", ephemeral(), err) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(tools);
	return 0;
}

/* --- the fold ------------------------------------------------------------------------------- */

/* One content block of the conversation. */
struct item {
	json_t *block; /* owned reference */
	uint64_t seq; /* of the event it came from */
	bool assistant;
	bool tool_result; /* goes first in its user message */
};

struct items {
	struct item *v;
	size_t n, cap;
};

static void items_clear(struct items *l)
{
	for (size_t i = 0; i < l->n; i++)
		json_decref(l->v[i].block);
	free(l->v);
	*l = (struct items){ 0 };
}

/* Appends block, taking the reference (also when it fails; NULL is out of memory). */
static int items_add(struct items *l, json_t *block, uint64_t seq, bool assistant,
		     struct cr_error *err)
{
	if (!block)
		return oom(err);
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct item *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v) {
			json_decref(block);
			return oom(err);
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] =
		(struct item){ block, seq, assistant, streq(str(block, "type"), "tool_result") };
	return 0;
}

/* Moves every item of from to the end of to; from is left empty. */
static int items_move(struct items *to, struct items *from, struct cr_error *err)
{
	int r = 0;
	for (size_t i = 0; i < from->n; i++) {
		struct item *it = &from->v[i];
		if (r == 0)
			r = items_add(to, it->block, it->seq, it->assistant, err);
		else
			json_decref(it->block);
	}
	from->n = 0;
	items_clear(from);
	return r;
}

enum confirmation {
	CONFIRM_NONE,
	CONFIRM_ALLOW,
	CONFIRM_DENY
};

/* A tool call of the model: an agent.tool_use or agent.custom_tool_use event. */
struct use {
	const char *id; /* the event's id (borrowed from the log) */
	const char *name; /* borrowed from the fold's payloads, as are input and deny_message */
	json_t *input;
	bool custom;
	bool answered; /* its tool_result is in the conversation */
	enum confirmation confirmation; /* the first processed user.tool_confirmation */
	const char *deny_message;
};

enum status {
	STATUS_NONE,
	STATUS_RUNNING,
	STATUS_IDLE,
	STATUS_TERMINATED
};
enum call_state {
	CALL_NONE,
	CALL_OPEN,
	CALL_OK,
	CALL_FAILED
};

/* A client event still pending (its payload borrowed from the fold). */
struct pending {
	const struct cr_log_event *e;
	const json_t *p;
};

struct fold {
	json_t *payloads; /* every payload parsed: what the borrowed pointers point into */
	struct items items; /* the conversation, in order */
	/* uses[0..n_committed) belong to completed calls; the rest to the open call */
	struct use *uses;
	size_t n_uses, n_committed, cap_uses;

	/* Between a span.model_request_start and its end the call's blocks wait in call_items,
	 * and user-role content that arrives meanwhile waits in deferred: it was not part of the
	 * call's request, so it goes after the call's answer. */
	const char *open_id;
	struct items call_items, deferred;

	enum status status;
	const json_t *idle_reason; /* stop_reason of the last lifecycle event, if an idle */

	enum call_state call; /* of the last model call */
	const char *stop_reason; /* of the last call, when it succeeded (may be NULL) */
	bool content_after_call; /* user-role content came after the last call's answer */
	unsigned failures; /* consecutive failed calls, since the last success or idle */
	const char *retry_status; /* of the session.error after the last failed call */
	bool idle_after_failure;

	uint64_t compacted_through; /* the largest through_seq of the compactions */
	json_t *summaries; /* their summaries (strings), in order */

	struct pending *pending;
	size_t n_pending, cap_pending;
	const struct cr_log_event *interrupt; /* the first pending user.interrupt */
};

static void fold_done(struct fold *f)
{
	items_clear(&f->items);
	items_clear(&f->call_items);
	items_clear(&f->deferred);
	free(f->uses);
	free(f->pending);
	json_decref(f->summaries);
	json_decref(f->payloads);
	*f = (struct fold){ 0 };
}

static bool is_client_type(const char *type)
{
	return strncmp(type, "user.", 5) == 0 || strcmp(type, "system.message") == 0;
}

/* Types the fold reads; every other one is skipped without parsing its payload. */
static bool is_folded_type(const char *type)
{
	static const char *const types[] = {
		"agent.thinking",
		"agent.message",
		"agent.tool_use",
		"agent.custom_tool_use",
		"agent.tool_result",
		"agent.thread_context_compacted",
		"span.model_request_start",
		"span.model_request_end",
		"session.status_running",
		"session.status_idle",
		"session.status_terminated",
		"session.deleted",
		"session.error",
	};
	if (is_client_type(type))
		return true;
	for (size_t i = 0; i < CR_ARRAY_SIZE(types); i++) {
		if (strcmp(type, types[i]) == 0)
			return true;
	}
	return false;
}

static bool opt_bool(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return !v || json_is_null(v) || json_is_boolean(v);
}

static bool opt_string(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return !v || json_is_null(v) || json_is_string(v);
}

/* An array of content blocks: objects with a string type. */
static bool blocks(const json_t *a)
{
	size_t i;
	json_t *b;
	if (!json_is_array(a))
		return false;
	json_array_foreach (a, i, b) {
		if (!str(b, "type"))
			return false;
	}
	return true;
}

static bool opt_blocks(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return !v || json_is_null(v) || blocks(v);
}

/* What a client event must hold, checked whether it is pending or not: a client can only
 * send these through the API, which checks them too, so a bad one is a damaged log. */
static int check_client(const struct cr_log_event *e, const json_t *p, struct cr_error *err)
{
	if (!strcmp(e->type, "user.message") || !strcmp(e->type, "system.message")) {
		if (!blocks(json_object_get(p, "content")))
			return bad(err, e, "\"content\" is not an array of content blocks");
	} else if (!strcmp(e->type, "user.tool_confirmation")) {
		const char *r = str(p, "result");
		if (!str(p, "tool_use_id") || !(streq(r, "allow") || streq(r, "deny")) ||
		    !opt_string(p, "deny_message"))
			return bad(err, e,
				   "needs a \"tool_use_id\" and a \"result\" of allow or deny");
	} else if (!strcmp(e->type, "user.custom_tool_result")) {
		if (!str(p, "custom_tool_use_id") || !opt_blocks(p, "content") ||
		    !opt_bool(p, "is_error"))
			return bad(err, e,
				   "needs a \"custom_tool_use_id\" (and content blocks, is_error)");
	}
	return 0;
}

/* A tool use of a completed call, or NULL (the latest are the likeliest). */
static struct use *find_use(struct fold *f, const char *id)
{
	for (size_t i = f->n_committed; id && i-- > 0;) {
		if (strcmp(f->uses[i].id, id) == 0)
			return &f->uses[i];
	}
	return NULL;
}

static int add_user(struct fold *f, json_t *block, uint64_t seq, struct cr_error *err)
{
	if (f->open_id)
		return items_add(&f->deferred, block, seq, false, err);
	f->content_after_call = true;
	return items_add(&f->items, block, seq, false, err);
}

/* The API refuses empty text blocks, which a tool with no output gives (bash's "true"): the
 * log keeps them, requests never carry them. */
static bool empty_text(const json_t *b)
{
	return streq(str(b, "type"), "text") && json_string_length(json_object_get(b, "text")) == 0;
}

static json_t *tool_result_block(const char *tool_use_id, const json_t *p)
{
	_cleanup_json_ json_t *b =
		json_pack("{s:s,s:s}", "type", "tool_result", "tool_use_id", tool_use_id);
	_cleanup_json_ json_t *content = json_array();
	if (!b || !content)
		return NULL;
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(p, "content"), i, c) {
		if (!empty_text(c) && json_array_append(content, c) < 0)
			return NULL;
	}
	if (json_array_size(content) > 0 && json_object_set(b, "content", content) < 0)
		return NULL;
	if (json_is_true(json_object_get(p, "is_error")) &&
	    json_object_set_new(b, "is_error", json_true()) < 0)
		return NULL;
	return TAKE_PTR(b);
}

/* The blocks of content whose type is one of types (NULL-terminated), as items. */
static int add_blocks(struct fold *f, const struct cr_log_event *e, const json_t *content,
		      const char *const *types, bool assistant, struct cr_error *err)
{
	size_t i;
	json_t *b;
	json_array_foreach (content, i, b) {
		const char *type = str(b, "type");
		bool wanted = false;
		for (size_t k = 0; types[k] && !wanted; k++)
			wanted = streq(type, types[k]);
		if (!wanted || empty_text(b))
			continue;
		int r = assistant ? items_add(&f->call_items, json_incref(b), e->seq, true, err)
				  : add_user(f, json_incref(b), e->seq, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int fold_client(struct fold *f, const struct cr_log_event *e, const json_t *p,
		       struct cr_error *err)
{
	static const char *const user_types[] = { "text", "image", "document", NULL };
	static const char *const text_types[] = { "text", NULL };

	if (!strcmp(e->type, "user.message"))
		return add_blocks(f, e, json_object_get(p, "content"), user_types, false, err);
	if (!strcmp(e->type, "system.message"))
		return add_blocks(f, e, json_object_get(p, "content"), text_types, false, err);
	if (!strcmp(e->type, "user.tool_confirmation")) {
		/* One for an unknown, custom or answered tool use, or a second one, changes
		 * nothing: the client raced the session, which went on without it. */
		struct use *u = find_use(f, str(p, "tool_use_id"));
		if (!u || u->custom || u->answered || u->confirmation != CONFIRM_NONE)
			return 0;
		u->confirmation = streq(str(p, "result"), "allow") ? CONFIRM_ALLOW : CONFIRM_DENY;
		u->deny_message = str(p, "deny_message");
		return 0;
	}
	if (!strcmp(e->type, "user.custom_tool_result")) {
		struct use *u = find_use(f, str(p, "custom_tool_use_id"));
		if (!u || !u->custom || u->answered)
			return 0;
		u->answered = true;
		return add_user(f, tool_result_block(u->id, p), e->seq, err);
	}
	return 0; /* user.interrupt is the step's; other client types are not read */
}

/* The open call produced no message: its blocks and tool uses go, and what waited for it
 * joins the conversation. */
static int drop_call(struct fold *f, struct cr_error *err)
{
	items_clear(&f->call_items);
	f->n_uses = f->n_committed;
	f->open_id = NULL;
	return items_move(&f->items, &f->deferred, err);
}

static int fold_tool_use(struct fold *f, const struct cr_log_event *e, const json_t *p,
			 struct cr_error *err)
{
	const char *name = str(p, "name");
	json_t *input = json_object_get(p, "input");
	if (!name || !json_is_object(input))
		return bad(err, e, "needs a \"name\" and an \"input\" object");
	if (!f->open_id)
		return 0; /* outside a model call: part of no message */
	json_t *b = json_pack("{s:s,s:s,s:s,s:O}", "type", "tool_use", "id", e->id, "name", name,
			      "input", input);
	int r = items_add(&f->call_items, b, e->seq, true, err);
	if (r < 0)
		return r;
	if (f->n_uses == f->cap_uses) {
		size_t cap = f->cap_uses ? 2 * f->cap_uses : 16;
		struct use *v = reallocarray(f->uses, cap, sizeof(*v));
		if (!v)
			return oom(err);
		f->uses = v;
		f->cap_uses = cap;
	}
	f->uses[f->n_uses++] = (struct use){
		.id = e->id,
		.name = name,
		.input = input,
		.custom = !strcmp(e->type, "agent.custom_tool_use"),
	};
	return 0;
}

static int fold_model_end(struct fold *f, const struct cr_log_event *e, const json_t *p,
			  struct cr_error *err)
{
	const char *start = str(p, "model_request_start_id");
	if (!start || !opt_bool(p, "is_error") || !opt_string(p, "stop_reason"))
		return bad(err, e,
			   "needs a \"model_request_start_id\" (and is_error, stop_reason)");
	/* The end of a call that is not the open one belongs to an abandoned call. */
	if (!f->open_id || strcmp(start, f->open_id) != 0)
		return 0;
	if (json_is_true(json_object_get(p, "is_error"))) {
		f->call = CALL_FAILED;
		f->failures++;
		f->retry_status = NULL;
		f->idle_after_failure = false;
		return drop_call(f, err);
	}
	/* The API's conversation starts with a user message, and so must the log's. */
	if (f->items.n == 0 && f->call_items.n > 0)
		return bad(err, e, "a model's answer before any user message");
	f->call = CALL_OK;
	f->stop_reason = str(p, "stop_reason");
	f->failures = 0;
	f->n_committed = f->n_uses;
	f->open_id = NULL;
	/* What waited for the call was not in its request: it comes after the answer. */
	f->content_after_call = f->deferred.n > 0;
	int r = items_move(&f->items, &f->call_items, err);
	return r < 0 ? r : items_move(&f->items, &f->deferred, err);
}

static int fold_event(struct fold *f, const struct cr_log_event *e, uint64_t assume_through,
		      struct cr_error *err)
{
	static const char *const text_types[] = { "text", NULL };
	const char *t = e->type;
	if (!is_folded_type(t))
		return 0;

	json_error_t jerr;
	json_t *p = e->payload ? json_loadb(e->payload, e->payload_len, 0, &jerr) : NULL;
	if (!json_is_object(p)) {
		json_decref(p);
		return bad(err, e, "the payload is not a JSON object");
	}
	if (json_array_append_new(f->payloads, p) < 0)
		return oom(err);

	if (is_client_type(t)) {
		int r = check_client(e, p, err);
		if (r < 0)
			return r;
		if (e->processed_ns == 0 && e->seq > assume_through) {
			if (f->n_pending == f->cap_pending) {
				size_t cap = f->cap_pending ? 2 * f->cap_pending : 8;
				struct pending *v = reallocarray(f->pending, cap, sizeof(*v));
				if (!v)
					return oom(err);
				f->pending = v;
				f->cap_pending = cap;
			}
			f->pending[f->n_pending++] = (struct pending){ e, p };
			if (!f->interrupt && !strcmp(t, "user.interrupt"))
				f->interrupt = e;
			return 0;
		}
		return fold_client(f, e, p, err);
	}

	if (!strcmp(t, "agent.thinking")) {
		const char *thinking = str(p, "thinking"), *signature = str(p, "signature");
		/* The public type has no fields: one without corral's cannot be sent back. */
		if (!f->open_id || !thinking || !signature)
			return 0;
		return items_add(&f->call_items,
				 json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking",
					   thinking, "signature", signature),
				 e->seq, true, err);
	}
	if (!strcmp(t, "agent.message")) {
		if (!blocks(json_object_get(p, "content")))
			return bad(err, e, "\"content\" is not an array of content blocks");
		if (!f->open_id)
			return 0;
		return add_blocks(f, e, json_object_get(p, "content"), text_types, true, err);
	}
	if (!strcmp(t, "agent.tool_use") || !strcmp(t, "agent.custom_tool_use"))
		return fold_tool_use(f, e, p, err);
	if (!strcmp(t, "agent.tool_result")) {
		const char *id = str(p, "tool_use_id");
		if (!id || !opt_blocks(p, "content") || !opt_bool(p, "is_error"))
			return bad(err, e,
				   "needs a \"tool_use_id\" (and content blocks, is_error)");
		struct use *u = find_use(f, id);
		if (!u)
			return bad(err, e,
				   "a tool result for no tool use of a completed model call");
		if (u->answered)
			return 0; /* the first result of a tool use is its result */
		u->answered = true;
		return add_user(f, tool_result_block(u->id, p), e->seq, err);
	}
	if (!strcmp(t, "agent.thread_context_compacted")) {
		json_t *summary = json_object_get(p, "summary");
		json_t *through = json_object_get(p, "through_seq");
		if (!json_is_string(summary) || !json_is_integer(through) ||
		    json_integer_value(through) < 0)
			return bad(err, e, "needs a \"summary\" string and a \"through_seq\"");
		if ((uint64_t)json_integer_value(through) > f->compacted_through)
			f->compacted_through = (uint64_t)json_integer_value(through);
		return append_new(f->summaries, json_incref(summary), err);
	}
	if (!strcmp(t, "span.model_request_start")) {
		int r = f->open_id ? drop_call(f, err) : 0; /* the open one was cut off */
		f->open_id = e->id;
		f->call = CALL_OPEN;
		return r;
	}
	if (!strcmp(t, "span.model_request_end"))
		return fold_model_end(f, e, p, err);
	if (!strcmp(t, "session.status_running")) {
		f->status = STATUS_RUNNING;
		f->idle_reason = NULL;
	} else if (!strcmp(t, "session.status_idle")) {
		json_t *reason = json_object_get(p, "stop_reason");
		if (!str(reason, "type"))
			return bad(err, e, "needs a \"stop_reason\" with a type");
		f->status = STATUS_IDLE;
		f->idle_reason = reason;
		f->failures = 0;
		if (f->call == CALL_FAILED)
			f->idle_after_failure = true;
	} else if (!strcmp(t, "session.status_terminated") || !strcmp(t, "session.deleted")) {
		/* A deleted session ends too: its brain stops at its next step. */
		f->status = STATUS_TERMINATED;
		f->idle_reason = NULL;
	} else if (!strcmp(t, "session.error")) {
		json_t *error = json_object_get(p, "error");
		if (!json_is_object(error))
			return bad(err, e, "needs an \"error\" object");
		if (f->call == CALL_FAILED && !f->idle_after_failure)
			f->retry_status = str(json_object_get(error, "retry_status"), "type");
	}
	return 0;
}

/* Folds ev[0..n). Pending client events with seq <= assume_through are folded as if they were
 * processed (the interrupt's step consumes them). */
static int fold_run(struct fold *f, const struct cr_log_event *ev, size_t n,
		    uint64_t assume_through, struct cr_error *err)
{
	f->payloads = json_array();
	f->summaries = json_array();
	if (!f->payloads || !f->summaries)
		return oom(err);
	for (size_t i = 0; i < n; i++) {
		int r = fold_event(f, &ev[i], assume_through, err);
		if (r < 0)
			return r;
	}
	/* A call cut off at the end is to be issued again, with what arrived meanwhile. */
	return f->open_id ? drop_call(f, err) : 0;
}

/* --- the conversation as messages ------------------------------------------------------------ */

struct msg {
	bool assistant;
	json_t *content; /* owned */
	uint64_t max_seq; /* of the events folded into it */
};

struct conv {
	struct msg *v;
	size_t n;
};

static void conv_clear(struct conv *c)
{
	for (size_t i = 0; i < c->n; i++)
		json_decref(c->v[i].content);
	free(c->v);
	*c = (struct conv){ 0 };
}

/* Consecutive items of one role are one message, so that roles alternate; in a user message
 * the tool results go first, as the API requires. The items of compacted messages are left out
 * and the summaries added to the first message. */
static int render(const struct fold *f, struct conv *ret, struct cr_error *err)
{
	const struct items *l = &f->items; /* starts with a user item: fold_model_end */
	/* The first message is kept whole: compaction drops what came after it. */
	uint64_t first_end = 0;
	size_t k = 0;
	for (; k < l->n && !l->v[k].assistant; k++)
		first_end = l->v[k].seq > first_end ? l->v[k].seq : first_end;
	_cleanup_free_ const struct item **kept = calloc(l->n ? l->n : 1, sizeof(*kept));
	if (!kept)
		return oom(err);
	size_t nk = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (i < k || l->v[i].seq <= first_end || l->v[i].seq > f->compacted_through)
			kept[nk++] = &l->v[i];
	}

	struct conv c = { .v = calloc(nk ? nk : 1, sizeof(*c.v)) };
	if (!c.v)
		return oom(err);
	for (size_t i = 0, end; i < nk; i = end) {
		bool assistant = kept[i]->assistant;
		for (end = i; end < nk && kept[end]->assistant == assistant;)
			end++;
		struct msg *m = &c.v[c.n++];
		m->assistant = assistant;
		m->content = json_array();
		if (!m->content)
			goto nomem;
		/* User messages: tool results first, then the rest, each in seq order. */
		for (int pass = assistant ? 1 : 0; pass < 2; pass++) {
			for (size_t j = i; j < end; j++) {
				if (!assistant && kept[j]->tool_result != (pass == 0))
					continue;
				if (json_array_append(m->content, kept[j]->block) < 0)
					goto nomem;
				if (kept[j]->seq > m->max_seq)
					m->max_seq = kept[j]->seq;
			}
		}
	}
	size_t i;
	json_t *s;
	json_array_foreach (f->summaries, i, s) {
		if (c.n == 0 ||
		    json_array_append_new(c.v[0].content,
					  json_pack("{s:s,s:O}", "type", "text", "text", s)) < 0)
			goto nomem;
	}
	*ret = c;
	return 0;
nomem:
	conv_clear(&c);
	return oom(err);
}

/* The messages array of c. With cache, the last block of the last message is a copy carrying
 * cache_control: the fold's blocks stay as they are, so the earlier messages of the next
 * request are the same bytes. */
static int messages_json(const struct conv *c, bool cache, json_t **ret, struct cr_error *err)
{
	_cleanup_json_ json_t *a = json_array();
	if (!a)
		return oom(err);
	for (size_t i = 0; i < c->n; i++) {
		json_t *content = json_incref(c->v[i].content);
		size_t nb = json_array_size(content);
		if (cache && i == c->n - 1 && nb > 0) {
			json_t *copy = json_array();
			for (size_t j = 0; copy && j + 1 < nb; j++) {
				if (json_array_append(copy, json_array_get(content, j)) < 0)
					json_decref(TAKE_PTR(copy));
			}
			json_t *last = json_copy(json_array_get(content, nb - 1));
			json_decref(content);
			content = copy;
			if (!last || !copy ||
			    json_object_set_new(last, "cache_control", ephemeral()) < 0 ||
			    json_array_append_new(copy, TAKE_PTR(last)) < 0) {
				json_decref(last);
				json_decref(copy);
				return oom(err);
			}
		}
		json_t *m = json_pack("{s:s,s:o}", "role", c->v[i].assistant ? "assistant" : "user",
				      "content", content);
		if (append_new(a, m, err) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

static int build_request(const struct config *cfg, const struct conv *c, json_t **ret,
			 struct cr_error *err)
{
	_cleanup_json_ json_t *req = json_object();
	if (!req || set_new(req, "model", json_string(cfg->agent->model), err) < 0 ||
	    set_new(req, "max_tokens", json_integer(cfg->max_tokens), err) < 0)
		return oom(err);
	const char *sys = cfg->agent->system;
	if (sys && sys[0] &&
	    set_new(req, "system",
		    json_pack("[{s:s,s:s,s:o}]", "type", "text", "text", sys, "cache_control",
			      ephemeral()),
		    err) < 0)
		return -ENOMEM;
	json_t *tools = NULL;
	int r = tool_definitions(cfg, &tools, err);
	if (r < 0)
		return r;
	if (tools && set_new(req, "tools", tools, err) < 0)
		return -ENOMEM;
	json_t *messages = NULL;
	r = messages_json(c, true, &messages, err);
	if (r < 0)
		return r;
	if (set_new(req, "messages", messages, err) < 0 ||
	    set_new(req, "stream", json_true(), err) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(req);
	return 0;
}

/* --- compaction ----------------------------------------------------------------------------- */

/* A buffer whose first failed append makes every later one a no-op: the summary is built in
 * many small pieces and checked once. */
struct sbuf {
	struct cr_buf buf;
	bool failed;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (!b->failed && cr_buf_add(&b->buf, s, n) < 0)
		b->failed = true;
}

static void sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

/* At most max bytes of s, cut at a character boundary, line ends made spaces: the summary has
 * one line per thing. */
static void sbuf_snippet(struct sbuf *b, const char *s, size_t len, size_t max)
{
	size_t n = len;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
		sbuf_add(b, &ch, 1);
	}
}

/* The text blocks of content (an array, or a string as a tool result may hold), joined. */
static void sbuf_text(struct sbuf *b, const json_t *content)
{
	if (json_is_string(content)) {
		sbuf_add(b, json_string_value(content), json_string_length(content));
		return;
	}
	size_t i, n = 0;
	json_t *blk;
	json_array_foreach (content, i, blk) {
		json_t *t = json_object_get(blk, "text");
		if (!streq(str(blk, "type"), "text") || !json_is_string(t))
			continue;
		if (n++ > 0)
			sbuf_add(b, " ", 1);
		sbuf_add(b, json_string_value(t), json_string_length(t));
	}
}

/* One message's lines: tool results (of the calls of the message before), its text, its
 * tool calls. */
static void summarize(struct sbuf *b, const struct msg *m)
{
	size_t i;
	json_t *blk;
	struct sbuf text = { 0 };
	json_array_foreach (m->content, i, blk) {
		if (!streq(str(blk, "type"), "tool_result"))
			continue;
		cr_buf_reset(&text.buf);
		sbuf_text(&text, json_object_get(blk, "content"));
		sbuf_str(b, json_is_true(json_object_get(blk, "is_error")) ? "tool result (error): "
									   : "tool result: ");
		sbuf_snippet(b, text.buf.p ? text.buf.p : "", text.buf.len, SUMMARY_TOOL_MAX);
		sbuf_add(b, "\n", 1);
	}
	cr_buf_reset(&text.buf);
	sbuf_text(&text, m->content);
	if (text.buf.len > 0) {
		sbuf_str(b, m->assistant ? "assistant: " : "user: ");
		sbuf_snippet(b, text.buf.p, text.buf.len, SUMMARY_TEXT_MAX);
		sbuf_add(b, "\n", 1);
	}
	b->failed |= text.failed;
	cr_buf_free(&text.buf);
	json_array_foreach (m->content, i, blk) {
		if (!streq(str(blk, "type"), "tool_use"))
			continue;
		char *input = json_dumps(json_object_get(blk, "input"), JSON_COMPACT);
		if (!input) {
			b->failed = true;
			continue;
		}
		sbuf_str(b, "assistant called ");
		sbuf_str(b, str(blk, "name") ? str(blk, "name") : "?");
		sbuf_add(b, "(", 1);
		sbuf_snippet(b, input, strlen(input), SUMMARY_TOOL_MAX);
		sbuf_add(b, ")\n", 2);
		free(input);
	}
}

static int add_event(struct cr_harness_step *s, const char *type, json_t *payload,
		     struct cr_error *err);

/* When the messages are estimated above the budget and more than keep_turns turns follow the
 * first message, adds the agent.thread_context_compacted event that drops the older turns to s
 * and sets *ret_done. The kept tail starts with an assistant message, so a tool use and its
 * result are never parted. */
static int compact(const struct config *cfg, const struct conv *c, struct cr_harness_step *s,
		   bool *ret_done, struct cr_error *err)
{
	*ret_done = false;
	if (cfg->agent->context_budget == 0 || c->n < 2)
		return 0;
	_cleanup_json_ json_t *messages = NULL;
	int r = messages_json(c, false, &messages, err);
	if (r < 0)
		return r;
	if (json_dumpb(messages, NULL, 0, JSON_COMPACT) / 4 <= cfg->agent->context_budget)
		return 0;

	size_t turns = 0;
	for (size_t i = 1; i < c->n; i++)
		turns += c->v[i].assistant;
	if (turns <= cfg->keep_turns)
		return 0;
	/* The tail: from the (turns - keep_turns + 1)-th assistant message on. */
	size_t cut = 1;
	for (size_t seen = 0; cut < c->n; cut++) {
		if (c->v[cut].assistant && ++seen == turns - cfg->keep_turns + 1)
			break;
	}

	size_t k = cut - 1;
	uint64_t through = 0;
	struct sbuf b = { 0 };
	char head[96];
	snprintf(head, sizeof(head), "Earlier conversation (%zu messages) compacted by corral:\n",
		 k);
	sbuf_str(&b, head);
	for (size_t i = 1; i < cut; i++) {
		summarize(&b, &c->v[i]);
		through = c->v[i].max_seq > through ? c->v[i].max_seq : through;
	}
	if (b.failed || !b.buf.p) {
		cr_buf_free(&b.buf);
		return oom(err);
	}
	if (b.buf.len > 0 && b.buf.p[b.buf.len - 1] == '\n')
		b.buf.p[--b.buf.len] = '\0';
	json_t *payload = json_pack("{s:s,s:I,s:I}", "summary", b.buf.p, "through_seq",
				    (json_int_t)through, "compacted_messages", (json_int_t)k);
	cr_buf_free(&b.buf);
	r = add_event(s, "agent.thread_context_compacted", payload, err);
	if (r < 0)
		return r;
	s->kind = CR_STEP_APPEND;
	*ret_done = true;
	return 0;
}

/* --- the step ------------------------------------------------------------------------------- */

/* Adds an event to append, taking the payload's reference (NULL is out of memory). */
static int add_event(struct cr_harness_step *s, const char *type, json_t *payload,
		     struct cr_error *err)
{
	if (!payload)
		return oom(err);
	struct cr_harness_event *v = reallocarray(s->events, s->n_events + 1, sizeof(*v));
	if (!v) {
		json_decref(payload);
		return oom(err);
	}
	s->events = v;
	char *t = strdup(type);
	if (!t) {
		json_decref(payload);
		return oom(err);
	}
	v[s->n_events++] = (struct cr_harness_event){ .type = t, .payload = payload };
	return 0;
}

static int add_mark(struct cr_harness_step *s, uint64_t seq, struct cr_error *err)
{
	uint64_t *v = reallocarray(s->mark, s->n_mark + 1, sizeof(*v));
	if (!v)
		return oom(err);
	s->mark = v;
	v[s->n_mark++] = seq;
	return 0;
}

static int add_idle(struct cr_harness_step *s, const char *reason, struct cr_error *err)
{
	s->kind = CR_STEP_APPEND;
	return add_event(s, "session.status_idle",
			 json_pack("{s:{s:s},s:n}", "stop_reason", "type", reason, "stop_details"),
			 err);
}

static int add_tool_error(struct cr_harness_step *s, const char *tool_use_id, const char *text,
			  struct cr_error *err)
{
	struct cr_harness_event e;
	int r = cr_harness_tool_result(tool_use_id, text, true, &e, err);
	if (r < 0)
		return r;
	r = add_event(s, e.type, TAKE_PTR(e.payload), err);
	cr_harness_event_clear(&e);
	return r;
}

enum verdict {
	RUN,
	ASK,
	UNKNOWN,
	DENIED
};

/* What becomes of a tool use without a result. */
static enum verdict judge(const struct config *cfg, const struct use *u)
{
	if (u->custom)
		return ASK;
	/* Before the permission policy: asking the user about a tool that cannot run is
	 * pointless. */
	if (!builtin_enabled(cfg, u->name))
		return UNKNOWN;
	if (u->confirmation == CONFIRM_DENY)
		return DENIED;
	if (u->confirmation == CONFIRM_NONE && builtin_asks(cfg, u->name))
		return ASK;
	return RUN;
}

static bool any_runnable(const struct config *cfg, const struct fold *f)
{
	for (size_t i = 0; i < f->n_committed; i++) {
		if (!f->uses[i].answered && judge(cfg, &f->uses[i]) == RUN)
			return true;
	}
	return false;
}

static unsigned retry_delay(unsigned failures)
{
	unsigned shift = failures > 0 ? failures - 1 : 0;
	if (shift >= 5)
		return RETRY_DELAY_MAX_MS;
	unsigned d = RETRY_DELAY_BASE_MS << shift;
	return d < RETRY_DELAY_MAX_MS ? d : RETRY_DELAY_MAX_MS;
}

static int model_step(const struct config *cfg, const struct fold *f, unsigned delay_ms,
		      struct cr_harness_step *s, struct cr_error *err)
{
	_cleanup_(conv_clear) struct conv c = { 0 };
	int r = render(f, &c, err);
	if (r < 0)
		return r;
	if (c.n == 0)
		return cr_error_set(err, EINVAL, "harness: a model call with no messages to send");
	bool compacted;
	r = compact(cfg, &c, s, &compacted, err);
	if (r < 0 || compacted)
		return r;
	r = build_request(cfg, &c, &s->request, err);
	if (r < 0)
		return r;
	s->kind = CR_STEP_MODEL;
	s->retry_delay_ms = delay_ms;
	return 0;
}

/* 2: an interrupt ends the turn: every tool use without a result gets an error result, the
 * session idles, and the interrupt and the client events before it are consumed. */
static int interrupt_step(const struct fold *f, const struct cr_log_event *ev, size_t n,
			  struct cr_harness_step *s, struct cr_error *err)
{
	uint64_t through = f->interrupt->seq;
	/* Fold again with those events processed: a custom tool result among them answers its
	 * tool use, and a message among them is part of the conversation from now on. */
	_cleanup_(fold_done) struct fold g = { 0 };
	int r = fold_run(&g, ev, n, through, err);
	if (r < 0)
		return r;
	s->kind = CR_STEP_APPEND;
	size_t outstanding = 0;
	for (size_t i = 0; i < g.n_committed; i++) {
		if (g.uses[i].answered)
			continue;
		outstanding++;
		r = add_tool_error(s, g.uses[i].id, interrupted_text, err);
		if (r < 0)
			return r;
	}
	if (outstanding > 0 || g.status == STATUS_RUNNING) {
		r = add_idle(s, "end_turn", err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < f->n_pending; i++) {
		if (f->pending[i].e->seq <= through &&
		    (r = add_mark(s, f->pending[i].e->seq, err)) < 0)
			return r;
	}
	return 0;
}

/* 3: client events to consume. Returns 1 when it decided the step. */
static int pending_step(const struct config *cfg, struct fold *f, struct cr_harness_step *s,
			struct cr_error *err)
{
	if (f->n_pending == 0)
		return 0;
	bool effective = false, answers = false;
	for (size_t i = 0; i < f->n_pending; i++) {
		const char *t = f->pending[i].e->type;
		const json_t *p = f->pending[i].p;
		struct use *u = NULL;
		if (!strcmp(t, "user.message") || !strcmp(t, "system.message")) {
			effective = true;
		} else if (!strcmp(t, "user.tool_confirmation")) {
			u = find_use(f, str(p, "tool_use_id"));
			if (u && !u->custom && !u->answered)
				effective = answers = true;
		} else if (!strcmp(t, "user.custom_tool_result")) {
			u = find_use(f, str(p, "custom_tool_use_id"));
			if (u && u->custom && !u->answered)
				effective = answers = true;
		}
	}
	/* Tool calls already decided run before the conversation moves on. */
	if (!answers && any_runnable(cfg, f))
		return 0;
	s->kind = CR_STEP_APPEND;
	int r;
	if (effective && f->status != STATUS_RUNNING &&
	    (r = add_event(s, "session.status_running", json_object(), err)) < 0)
		return r;
	for (size_t i = 0; i < f->n_pending; i++) {
		if ((r = add_mark(s, f->pending[i].e->seq, err)) < 0)
			return r;
	}
	return 1;
}

static void tools_clear(struct cr_harness_step *s)
{
	for (size_t i = 0; i < s->n_tools; i++) {
		free(s->tools[i].tool_use_id);
		free(s->tools[i].name);
		json_decref(s->tools[i].input);
	}
	free(s->tools);
	s->tools = NULL;
	s->n_tools = 0;
}

static int add_tool(struct cr_harness_step *s, const struct use *u, struct cr_error *err)
{
	struct cr_harness_tool *v = reallocarray(s->tools, s->n_tools + 1, sizeof(*v));
	if (!v)
		return oom(err);
	s->tools = v;
	struct cr_harness_tool *t = &v[s->n_tools++];
	*t = (struct cr_harness_tool){ strdup(u->id), strdup(u->name), json_incref(u->input) };
	return t->tool_use_id && t->name ? 0 : oom(err);
}

/* 4: the tool uses without a result. Returns 1 when it decided the step. */
static int tools_step(const struct config *cfg, struct fold *f, struct cr_harness_step *s,
		      struct cr_error *err)
{
	_cleanup_json_ json_t *ask = json_array();
	if (!ask)
		return oom(err);
	for (size_t i = 0; i < f->n_committed; i++) {
		const struct use *u = &f->uses[i];
		if (u->answered)
			continue;
		_cleanup_free_ char *unknown = NULL;
		int r = 0;
		switch (judge(cfg, u)) {
		case RUN:
			r = add_tool(s, u, err);
			break;
		case ASK:
			r = append_new(ask, json_string(u->id), err);
			break;
		case UNKNOWN:
			if (asprintf(&unknown, "unknown tool: %s", u->name) < 0)
				return oom(err);
			r = add_tool_error(s, u->id, unknown, err);
			break;
		case DENIED:
			r = add_tool_error(s, u->id,
					   u->deny_message && u->deny_message[0] ? u->deny_message
										 : denied_text,
					   err);
			break;
		}
		if (r < 0)
			return r;
	}
	/* Refusals are appended first, on their own; the calls that run come with the next
	 * step, which finds them again. */
	if (s->n_events > 0) {
		tools_clear(s);
		s->kind = CR_STEP_APPEND;
		return 1;
	}
	if (s->n_tools > 0) {
		s->kind = CR_STEP_TOOLS;
		return 1;
	}
	if (json_array_size(ask) == 0)
		return 0;
	/* Waiting on the client: said once, by an idle naming what it waits for. */
	if (streq(str(f->idle_reason, "type"), "requires_action") &&
	    json_equal(json_object_get(f->idle_reason, "event_ids"), ask)) {
		s->kind = CR_STEP_WAIT;
		return 1;
	}
	s->kind = CR_STEP_APPEND;
	int r = add_event(s, "session.status_idle",
			  json_pack("{s:{s:s,s:O},s:n}", "stop_reason", "type", "requires_action",
				    "event_ids", ask, "stop_details"),
			  err);
	return r < 0 ? r : 1;
}

static int decide(const struct config *cfg, struct fold *f, const struct cr_log_event *ev, size_t n,
		  struct cr_harness_step *s, struct cr_error *err)
{
	if (f->status == STATUS_TERMINATED) {
		s->kind = CR_STEP_END;
		return 0;
	}
	if (f->interrupt)
		return interrupt_step(f, ev, n, s, err);
	int r = pending_step(cfg, f, s, err);
	if (r != 0)
		return r < 0 ? r : 0;
	r = tools_step(cfg, f, s, err);
	if (r != 0)
		return r < 0 ? r : 0;
	if (f->status != STATUS_RUNNING) {
		s->kind = CR_STEP_WAIT;
		return 0;
	}
	if (f->call == CALL_FAILED && !f->idle_after_failure) {
		/* The session.error says; without one (a worker died between the two
		 * appends) the count does, as cr_harness_model_events would have. */
		bool retrying = f->retry_status ? streq(f->retry_status, "retrying")
						: f->failures - 1 < cfg->retries;
		if (retrying)
			return model_step(cfg, f, retry_delay(f->failures), s, err);
		return add_idle(s, "retries_exhausted", err);
	}
	if (f->call == CALL_OK && !f->content_after_call) {
		if (streq(f->stop_reason, "pause_turn"))
			return model_step(cfg, f, 0, s, err);
		if (streq(f->stop_reason, "refusal")) {
			s->kind = CR_STEP_APPEND;
			return add_event(s, "session.status_idle",
					 json_pack("{s:{s:s},s:{s:s,s:n,s:s}}", "stop_reason",
						   "type", "refusal", "stop_details", "type",
						   "refusal", "category", "explanation",
						   refusal_explanation),
					 err);
		}
		/* end_turn, stop_sequence, max_tokens; and tool_use or none with nothing
		 * left to do, which would otherwise call the model for nothing. */
		return add_idle(s, "end_turn", err);
	}
	if (f->call == CALL_OPEN || (f->items.n > 0 && !f->items.v[f->items.n - 1].assistant))
		return model_step(cfg, f, 0, s, err);
	/* Running with nothing to answer. */
	return add_idle(s, "end_turn", err);
}

int cr_harness_step(const struct cr_harness_agent *agent, const struct cr_log_event *ev, size_t n,
		    struct cr_harness_step *ret, struct cr_error *err)
{
	memset(ret, 0, sizeof(*ret));
	struct config cfg;
	int r = config_init(agent, &cfg, err);
	if (r < 0)
		return r;
	_cleanup_(fold_done) struct fold f = { 0 };
	r = fold_run(&f, ev, n, 0, err);
	if (r < 0)
		return r;
	struct cr_harness_step s = { 0 };
	r = decide(&cfg, &f, ev, n, &s, err);
	if (r < 0) {
		cr_harness_step_clear(&s);
		return r;
	}
	*ret = s;
	return 0;
}

void cr_harness_step_clear(struct cr_harness_step *s)
{
	if (!s)
		return;
	cr_harness_events_free(s->events, s->n_events);
	free(s->mark);
	json_decref(s->request);
	tools_clear(s);
	memset(s, 0, sizeof(*s));
}

/* --- recording a model call ------------------------------------------------------------------ */

static const char *error_type(const char *api_type)
{
	if (streq(api_type, "rate_limit_error"))
		return "model_rate_limited_error";
	if (streq(api_type, "overloaded_error"))
		return "model_overloaded_error";
	return "model_request_failed_error";
}

/* span.model_request_end's payload: the SDK's fields, then corral's. */
static json_t *end_payload(const char *start_id, bool is_error, const json_t *message,
			   const json_t *result)
{
	static const char *const usage_keys[] = { "input_tokens", "output_tokens",
						  "cache_creation_input_tokens",
						  "cache_read_input_tokens" };
	_cleanup_json_ json_t *p =
		json_pack("{s:s,s:b}", "model_request_start_id", start_id, "is_error", is_error);
	json_t *usage = json_object();
	if (!p || json_object_set_new(p, "model_usage", usage) < 0)
		return NULL;
	const json_t *from = json_object_get(result, "model_usage");
	for (size_t i = 0; i < CR_ARRAY_SIZE(usage_keys); i++) {
		json_int_t v = json_integer_value(json_object_get(from, usage_keys[i]));
		if (json_object_set_new(usage, usage_keys[i], json_integer(v)) < 0)
			return NULL;
	}
	if (!is_error) {
		const char *sr = str(message, "stop_reason");
		if (json_object_set_new(p, "stop_reason", sr ? json_string(sr) : json_null()) < 0)
			return NULL;
	}
	json_t *ttft = json_object_get(result, "ttft_ms");
	json_t *attempts = json_object_get(result, "attempts");
	if (json_object_set_new(p, "ttft_ms", ttft ? json_copy(ttft) : json_null()) < 0 ||
	    json_object_set_new(p, "attempts", attempts ? json_copy(attempts) : json_integer(0)) <
		    0)
		return NULL;
	const char *rid = str(result, "request_id");
	if (rid && json_object_set_new(p, "request_id", json_string(rid)) < 0)
		return NULL;
	return TAKE_PTR(p);
}

struct events {
	struct cr_harness_event *v;
	size_t n;
};

static int events_add(struct events *l, const char *type, json_t *payload, struct cr_error *err)
{
	/* The step's list has the growth and ownership rules wanted here. */
	struct cr_harness_step s = { .events = l->v, .n_events = l->n };
	int r = add_event(&s, type, payload, err);
	l->v = s.events;
	l->n = s.n_events;
	return r;
}

static int message_events(const struct config *cfg, const json_t *message, struct events *l,
			  struct cr_error *err)
{
	const json_t *content = json_object_get(message, "content");
	if (!json_is_array(content))
		return cr_error_set(err, EINVAL, "harness: the model's message has no content");
	json_t *text = NULL; /* the run of text blocks being collected */
	size_t i;
	json_t *b;
	int r = 0;
	json_array_foreach (content, i, b) {
		const char *type = str(b, "type");
		if (streq(type, "text")) {
			json_t *t = json_object_get(b, "text");
			if (!json_is_string(t)) {
				json_decref(text);
				return cr_error_set(
					err, EINVAL,
					"harness: the model's text block %zu has no text", i);
			}
			if (!text && !(text = json_array()))
				return oom(err);
			if (append_new(text, json_pack("{s:s,s:O}", "type", "text", "text", t),
				       err) < 0)
				goto out;
			continue;
		}
		if (text) {
			r = events_add(l, "agent.message", json_pack("{s:o}", "content", text),
				       err);
			text = NULL;
			if (r < 0)
				return r;
		}
		if (streq(type, "thinking")) {
			const char *th = str(b, "thinking"), *sig = str(b, "signature");
			r = events_add(l, "agent.thinking",
				       json_pack("{s:s,s:s}", "thinking", th ? th : "", "signature",
						 sig ? sig : ""),
				       err);
		} else if (streq(type, "tool_use")) {
			const char *name = str(b, "name"), *id = str(b, "id");
			json_t *input = json_object_get(b, "input");
			if (!name || !json_is_object(input))
				return cr_error_set(
					err, EINVAL,
					"harness: the model's tool_use block %zu has no "
					"name or input",
					i);
			json_t *p = json_pack("{s:s,s:O}", "name", name, "input", input);
			if (p && id && json_object_set_new(p, "model_tool_use_id", json_string(id)))
				json_decref(TAKE_PTR(p));
			r = events_add(l,
				       custom_tool(cfg, name) ? "agent.custom_tool_use"
							      : "agent.tool_use",
				       p, err);
		}
		/* Other blocks (server tools, redacted thinking) have no event of their own:
		 * corral enables neither. */
		if (r < 0)
			return r;
	}
	if (text)
		return events_add(l, "agent.message", json_pack("{s:o}", "content", text), err);
	return 0;
out:
	json_decref(text);
	return -ENOMEM;
}

int cr_harness_model_events(const struct cr_harness_agent *agent, const struct cr_log_event *ev,
			    size_t n, const char *start_id, const json_t *message,
			    const json_t *result, struct cr_harness_event **ret, size_t *ret_n,
			    struct cr_error *err)
{
	struct config cfg;
	int r = config_init(agent, &cfg, err);
	if (r < 0)
		return r;
	if (!start_id || !start_id[0])
		return cr_error_set(err, EINVAL, "harness: a model call without its start event");

	struct events l = { 0 };
	if (message) {
		r = message_events(&cfg, message, &l, err);
		if (r == 0)
			r = events_add(&l, "span.model_request_end",
				       end_payload(start_id, false, message, result), err);
	} else {
		/* The failures before this one, as the step counts them. */
		_cleanup_(fold_done) struct fold f = { 0 };
		r = fold_run(&f, ev, n, 0, err);
		const json_t *e = json_object_get(result, "error");
		const char *retry = !json_is_true(json_object_get(e, "retryable")) ? "terminal"
				    : f.failures < cfg.retries			   ? "retrying"
										   : "exhausted";
		const char *msg = str(e, "message");
		if (r == 0)
			r = events_add(&l, "span.model_request_end",
				       end_payload(start_id, true, NULL, result), err);
		if (r == 0)
			r = events_add(&l, "session.error",
				       json_pack("{s:{s:s,s:s,s:{s:s}}}", "error", "type",
						 error_type(str(e, "type")), "message",
						 msg ? msg : "the model call failed",
						 "retry_status", "type", retry),
				       err);
	}
	if (r < 0) {
		cr_harness_events_free(l.v, l.n);
		return r;
	}
	*ret = l.v;
	*ret_n = l.n;
	return 0;
}

int cr_harness_tool_result(const char *tool_use_id, const char *text, bool is_error,
			   struct cr_harness_event *ret, struct cr_error *err)
{
	if (!tool_use_id || !text)
		return cr_error_set(err, EINVAL, "harness: a tool result needs its id and text");
	json_t *p = json_pack("{s:s,s:[{s:s,s:s}],s:b}", "tool_use_id", tool_use_id, "content",
			      "type", "text", "text", text, "is_error", is_error);
	char *type = strdup("agent.tool_result");
	if (!p || !type) {
		json_decref(p);
		free(type);
		return oom(err);
	}
	*ret = (struct cr_harness_event){ .type = type, .payload = p };
	return 0;
}

void cr_harness_event_clear(struct cr_harness_event *e)
{
	if (!e)
		return;
	free(e->type);
	json_decref(e->payload);
	e->type = NULL;
	e->payload = NULL;
}

void cr_harness_events_free(struct cr_harness_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_harness_event_clear(&v[i]);
	free(v);
}
