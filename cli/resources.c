/* cli/resources: corral agents|environments|sessions|sessions:events, the API's resources as
 * verbs (docs/cli.md). Each verb parses its options into a request, sends it with cli/client
 * and prints the answer as json, jsonl or a short table; it never decides anything the API
 * decides (validation beyond a usage error, defaults, state). Also the renderings of events
 * that cli/run shares. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "corral/cleanup.h"
#include "corral/strutil.h"

#define _cleanup_json_ _cleanup_(json_decrefp)

/* --- renderings ---------------------------------------------------------------------------- */

/* A string field of o, or "-". */
static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

const char *cr_cli_one_line(const char *s, char *buf, size_t size)
{
	size_t o = 0;
	if (!s)
		s = "";
	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	for (; *s && o + 1 < size; s++)
		buf[o++] = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
	if (*s && size > 4) {
		/* cut: make room for "...", never inside a UTF-8 character */
		o = o > size - 4 ? size - 4 : o;
		while (o > 0 && ((unsigned char)buf[o] & 0xC0) == 0x80)
			o--;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

char *cr_cli_content_text(const json_t *content)
{
	if (json_is_string(content))
		return strdup(json_string_value(content));
	char *out = strdup("");
	size_t i;
	json_t *b;
	json_array_foreach (content, i, b) {
		const char *text = json_string_value(json_object_get(b, "text"));
		if (!text || !out)
			continue;
		char *next = NULL;
		if (asprintf(&next, "%s%s%s", out, *out ? "\n" : "", text) < 0)
			next = NULL;
		free(out);
		out = next;
	}
	return out;
}

const char *cr_cli_model_id(const json_t *model)
{
	if (json_is_string(model))
		return json_string_value(model);
	return json_string_value(json_object_get(model, "id"));
}

const char *cr_cli_tool_summary(const char *name, const json_t *input, char *buf, size_t size)
{
	const char *s = NULL;
	char tmp[1024];
	if (!name)
		name = "";
	if (strcmp(name, "bash") == 0) {
		s = json_string_value(json_object_get(input, "command"));
		if (!s && json_is_true(json_object_get(input, "restart")))
			s = "(restart the shell)";
	} else if (strcmp(name, "read") == 0 || strcmp(name, "write") == 0 ||
		   strcmp(name, "edit") == 0) {
		s = json_string_value(json_object_get(input, "file_path"));
	} else if (strcmp(name, "glob") == 0 || strcmp(name, "grep") == 0) {
		const char *pattern = json_string_value(json_object_get(input, "pattern"));
		const char *path = json_string_value(json_object_get(input, "path"));
		if (pattern) {
			snprintf(tmp, sizeof(tmp), "%s%s%s", pattern, path ? " in " : "",
				 path ? path : "");
			s = tmp;
		}
	}
	if (s)
		return cr_cli_one_line(s, buf, size);
	_cleanup_free_ char *j = input ? json_dumps(input, JSON_COMPACT) : NULL;
	return cr_cli_one_line(j ? j : "", buf, size);
}

/* The stop reason of a session.status_idle event (an object with a type, or a string). */
static const char *stop_reason(const json_t *ev)
{
	json_t *sr = json_object_get(ev, "stop_reason");
	if (json_is_string(sr))
		return json_string_value(sr);
	return json_string_value(json_object_get(sr, "type"));
}

const char *cr_cli_event_summary(const json_t *ev, char *buf, size_t size)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	char tmp[512];
	buf[0] = '\0';
	if (!type)
		return buf;
	if (strcmp(type, "agent.tool_use") == 0 || strcmp(type, "agent.custom_tool_use") == 0 ||
	    strcmp(type, "agent.mcp_tool_use") == 0) {
		const char *name = json_string_value(json_object_get(ev, "name"));
		const char *server = json_string_value(json_object_get(ev, "mcp_server_name"));
		cr_cli_tool_summary(name, json_object_get(ev, "input"), tmp, sizeof(tmp));
		if (server)
			snprintf(buf, size, "mcp__%s__%s: %s", server, name ? name : "?", tmp);
		else
			snprintf(buf, size, "%s: %s", name ? name : "?", tmp);
		return buf;
	}
	json_t *content = json_object_get(ev, "content");
	if (content) {
		_cleanup_free_ char *text = cr_cli_content_text(content);
		bool is_error = json_is_true(json_object_get(ev, "is_error"));
		cr_cli_one_line(text, tmp, sizeof(tmp));
		snprintf(buf, size, "%s%s", is_error ? "error: " : "", tmp);
		return buf;
	}
	if (strcmp(type, "session.status_idle") == 0) {
		json_t *ids = json_object_get(json_object_get(ev, "stop_reason"), "event_ids");
		const char *sr = stop_reason(ev);
		if (json_array_size(ids))
			snprintf(buf, size, "%s (%zu events)", sr ? sr : "?", json_array_size(ids));
		else
			snprintf(buf, size, "%s", sr ? sr : "");
		return buf;
	}
	json_t *e = json_object_get(ev, "error");
	if (e) {
		const char *etype = json_string_value(json_object_get(e, "type"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		json_t *rs = json_object_get(e, "retry_status");
		const char *retry = json_is_string(rs)
					    ? json_string_value(rs)
					    : json_string_value(json_object_get(rs, "type"));
		snprintf(tmp, sizeof(tmp), "%s: %s%s%s%s", etype ? etype : "error", msg ? msg : "",
			 retry ? " (" : "", retry ? retry : "", retry ? ")" : "");
		cr_cli_one_line(tmp, buf, size);
		return buf;
	}
	json_t *usage = json_object_get(ev, "model_usage");
	if (usage) {
		json_int_t in = json_integer_value(json_object_get(usage, "input_tokens"));
		json_int_t out = json_integer_value(json_object_get(usage, "output_tokens"));
		json_t *ttft = json_object_get(ev, "ttft_ms");
		int n = snprintf(buf, size, "%s%lld in, %lld out",
				 json_is_true(json_object_get(ev, "is_error")) ? "error, " : "",
				 (long long)in, (long long)out);
		if (json_is_number(ttft) && n > 0 && (size_t)n < size)
			snprintf(buf + n, size - (size_t)n, ", first token %.0f ms",
				 json_number_value(ttft));
		return buf;
	}
	if (strcmp(type, "user.tool_confirmation") == 0) {
		const char *r = json_string_value(json_object_get(ev, "result"));
		const char *id = json_string_value(json_object_get(ev, "tool_use_id"));
		snprintf(buf, size, "%s %s", r ? r : "?", id ? id : "?");
		return buf;
	}
	if (strncmp(type, "sandbox.", 8) == 0) {
		const char *reason = json_string_value(json_object_get(ev, "reason"));
		const char *to = json_string_value(json_object_get(ev, "to_session"));
		snprintf(tmp, sizeof(tmp), "%s%s%s%s%s", str(ev, "sandbox_id"), reason ? ": " : "",
			 reason ? reason : "", to ? " to " : "", to ? to : "");
		return cr_cli_one_line(tmp, buf, size);
	}
	if (strcmp(type, "policy.denied") == 0) {
		snprintf(tmp, sizeof(tmp), "%s denied %s %s", str(ev, "layer"),
			 str(ev, "operation"), str(ev, "target"));
		return cr_cli_one_line(tmp, buf, size);
	}
	/* corral's other events: their fields, compact (epoch...) */
	_cleanup_json_ json_t *rest = json_deep_copy(ev);
	static const char *const common[] = { "type", "id", "seq", "processed_at" };
	for (size_t i = 0; rest && i < CR_ARRAY_SIZE(common); i++)
		json_object_del(rest, common[i]);
	if (rest && json_object_size(rest)) {
		_cleanup_free_ char *j = json_dumps(rest, JSON_COMPACT);
		cr_cli_one_line(j, buf, size);
	}
	return buf;
}

int cr_cli_json_arg(const char *prog, const char *arg, json_t **ret)
{
	json_error_t je;
	json_t *v;
	const char *what = arg;
	if (strcmp(arg, "-") == 0 || strcmp(arg, "@-") == 0) {
		what = "standard input";
		v = json_loadf(stdin, 0, &je);
	} else if (arg[0] == '@') {
		what = arg + 1;
		_cleanup_fclose_ FILE *f = fopen(arg + 1, "re");
		if (!f) {
			fprintf(stderr, "%s: --json %s: %s\n", prog, arg, strerror(errno));
			return CR_EXIT_USAGE;
		}
		v = json_loadf(f, 0, &je);
	} else {
		what = "its argument";
		v = json_loads(arg, 0, &je);
	}
	if (!v) {
		fprintf(stderr, "%s: --json: %s is not JSON: %s (line %d, column %d)\n", prog, what,
			je.text, je.line, je.column);
		return CR_EXIT_USAGE;
	}
	*ret = v;
	return CR_EXIT_OK;
}

/* --- options ------------------------------------------------------------------------------- */

enum format {
	FORMAT_JSON,
	FORMAT_JSONL,
	FORMAT_PRETTY,
};

enum opt {
	O_JSON = 1,
	O_FORMAT,
	O_LIMIT,
	O_PAGE,
	O_ALL,
	O_ORDER,
	O_TYPE,
	O_INCLUDE_ARCHIVED,
	O_NAME,
	O_MODEL,
	O_SYSTEM,
	O_DESCRIPTION,
	O_TOOLSET,
	O_METADATA,
	O_PROVISIONING,
	O_AGENT,
	O_AGENT_VERSION,
	O_ENVIRONMENT,
	O_TITLE,
	O_SESSION,
	O_MESSAGE,
	O_INTERRUPT,
	O_ALLOW,
	O_DENY,
	O_DENY_MESSAGE,
	O_LAST_EVENT_ID,
	O_UNTIL_IDLE,
	O_HELP,
};

#define B(o) (1ull << (o))

static const struct option long_opts[] = {
	{ "json", required_argument, NULL, O_JSON },
	{ "format", required_argument, NULL, O_FORMAT },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "page", required_argument, NULL, O_PAGE },
	{ "all", no_argument, NULL, O_ALL },
	{ "order", required_argument, NULL, O_ORDER },
	{ "type", required_argument, NULL, O_TYPE },
	{ "include-archived", no_argument, NULL, O_INCLUDE_ARCHIVED },
	{ "name", required_argument, NULL, O_NAME },
	{ "model", required_argument, NULL, O_MODEL },
	{ "system", required_argument, NULL, O_SYSTEM },
	{ "description", required_argument, NULL, O_DESCRIPTION },
	{ "toolset", no_argument, NULL, O_TOOLSET },
	{ "metadata", required_argument, NULL, O_METADATA },
	{ "provisioning", required_argument, NULL, O_PROVISIONING },
	{ "agent", required_argument, NULL, O_AGENT },
	{ "agent-version", required_argument, NULL, O_AGENT_VERSION },
	{ "environment", required_argument, NULL, O_ENVIRONMENT },
	{ "title", required_argument, NULL, O_TITLE },
	{ "session-id", required_argument, NULL, O_SESSION },
	{ "message", required_argument, NULL, O_MESSAGE },
	{ "interrupt", no_argument, NULL, O_INTERRUPT },
	{ "allow", required_argument, NULL, O_ALLOW },
	{ "deny", required_argument, NULL, O_DENY },
	{ "deny-message", required_argument, NULL, O_DENY_MESSAGE },
	{ "last-event-id", required_argument, NULL, O_LAST_EVENT_ID },
	{ "until-idle", no_argument, NULL, O_UNTIL_IDLE },
	{ "help", no_argument, NULL, O_HELP },
	CR_CLIENT_LONG_OPTIONS,
	{ 0 },
};

struct ctx {
	char prog[64]; /* "corral agents create", for messages */
	const struct resource *res;
	const struct verb *verb;
	struct cr_client_options copts;
	struct cr_client *client;
	enum format format;
	json_t *body; /* --json */
	const char *limit, *page, *order, *id;
	bool all, include_archived, toolset, interrupt, until_idle;
	json_t *types; /* --type, an array of strings */
	const char *name, *model, *system, *description, *provisioning, *agent, *agent_version,
		*environment, *title, *session, *message, *deny_message, *last_event_id;
	json_t *metadata; /* --metadata KEY=VALUE, an object */
	json_t *allow, *deny; /* tool use event ids */
};

enum kind {
	KIND_AGENT,
	KIND_ENVIRONMENT,
	KIND_SESSION,
	KIND_EVENT,
};

struct resource {
	const char *name; /* the verb group: "agents" */
	const char *path; /* "/v1/agents" */
	enum kind kind;
};

struct verb {
	const char *name;
	uint64_t opts; /* B(O_*) it takes */
	bool id; /* takes an id operand */
	int (*run)(struct ctx *c);
};

static int usage_error(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (corral %s help)\n", c->res->name);
	return CR_EXIT_USAGE;
}

/* An error of the client or the API: one line, "corral: ...". */
static int failed(const struct cr_error *err)
{
	fprintf(stderr, "corral: %s\n", err->msg);
	return err->code == EINVAL && strncmp(err->msg, "--", 2) == 0 ? CR_EXIT_USAGE
								      : CR_EXIT_FAIL;
}

static int connect_client(struct ctx *c)
{
	struct cr_error err;
	if (cr_client_new(&c->copts, &c->client, &err) < 0)
		return failed(&err);
	return CR_EXIT_OK;
}

/* --- output -------------------------------------------------------------------------------- */

static void print_json(const json_t *v, bool compact)
{
	char *s = json_dumps(v, compact ? JSON_COMPACT | JSON_ENCODE_ANY
					: JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s)
		puts(s);
	free(s);
	fflush(stdout);
}

/* The first line of s, at most n bytes, into buf. */
static const char *cut(const char *s, char *buf, size_t n)
{
	return cr_cli_one_line(s ? s : "-", buf, n);
}

static void row_header(enum kind k)
{
	switch (k) {
	case KIND_AGENT:
		printf("%-32s %-24s %-22s %4s  %s\n", "ID", "NAME", "MODEL", "VER", "CREATED");
		break;
	case KIND_ENVIRONMENT:
		printf("%-32s %-24s %-8s %s\n", "ID", "NAME", "CONFIG", "CREATED");
		break;
	case KIND_SESSION:
		printf("%-32s %-12s %-32s %s\n", "ID", "STATUS", "AGENT", "TITLE");
		break;
	case KIND_EVENT:
		printf("%6s  %-28s %s\n", "SEQ", "TYPE", "SUMMARY");
		break;
	}
}

static void print_row(enum kind k, const json_t *o)
{
	char a[64], b[64], line[512];
	bool archived = json_is_string(json_object_get(o, "archived_at"));
	switch (k) {
	case KIND_AGENT:
		printf("%-32s %-24s %-22s %4lld  %s%s\n", str(o, "id"), cut(str(o, "name"), a, 25),
		       cut(cr_cli_model_id(json_object_get(o, "model")), b, 23),
		       (long long)json_integer_value(json_object_get(o, "version")),
		       str(o, "created_at"), archived ? " (archived)" : "");
		break;
	case KIND_ENVIRONMENT:
		printf("%-32s %-24s %-8s %s%s\n", str(o, "id"), cut(str(o, "name"), a, 25),
		       str(json_object_get(o, "config"), "type"), str(o, "created_at"),
		       archived ? " (archived)" : "");
		break;
	case KIND_SESSION: {
		json_t *agent = json_object_get(o, "agent");
		const char *aid =
			json_is_string(agent) ? json_string_value(agent) : str(agent, "id");
		printf("%-32s %-12s %-32s %s%s\n", str(o, "id"), str(o, "status"), aid,
		       cut(json_string_value(json_object_get(o, "title")), a, 40),
		       archived ? " (archived)" : "");
		break;
	}
	case KIND_EVENT: {
		json_t *seq = json_object_get(o, "seq");
		char seqs[24] = "-";
		if (json_is_integer(seq))
			snprintf(seqs, sizeof(seqs), "%lld", (long long)json_integer_value(seq));
		bool pending = json_is_null(json_object_get(o, "processed_at")) &&
			       json_object_get(o, "processed_at");
		printf("%6s  %-28s %s%s\n", seqs, str(o, "type"), pending ? "(pending) " : "",
		       cr_cli_event_summary(o, line, 160));
		break;
	}
	}
}

static void field(const char *name, const char *value)
{
	if (value)
		printf("%-13s %s\n", name, value);
}

/* A resource in a few lines: what a person looks for first. --format json has the rest. */
static void print_detail(enum kind k, const json_t *o)
{
	char buf[256];
	const char *type = json_string_value(json_object_get(o, "type"));
	if (type && (strstr(type, "_deleted") || strcmp(type, "deleted") == 0)) {
		printf("deleted %s\n", str(o, "id"));
		return;
	}
	if (k == KIND_EVENT) {
		print_row(k, o);
		return;
	}
	field("id", str(o, "id"));
	if (k == KIND_AGENT) {
		field("name", str(o, "name"));
		field("model", cr_cli_model_id(json_object_get(o, "model")));
		snprintf(buf, sizeof(buf), "%lld",
			 (long long)json_integer_value(json_object_get(o, "version")));
		field("version", buf);
		if (json_is_string(json_object_get(o, "system")))
			field("system", cut(str(o, "system"), buf, 72));
		json_t *tools = json_object_get(o, "tools");
		size_t i;
		json_t *t;
		buf[0] = '\0';
		json_array_foreach (tools, i, t) {
			const char *tt = json_string_value(json_object_get(t, "type"));
			const char *tn = json_string_value(json_object_get(t, "name"));
			size_t n = strlen(buf);
			snprintf(buf + n, sizeof(buf) - n, "%s%s%s%s", n ? ", " : "", tt ? tt : "?",
				 tn ? " " : "", tn ? tn : "");
		}
		field("tools", *buf ? buf : "none");
	} else if (k == KIND_ENVIRONMENT) {
		field("name", str(o, "name"));
		json_t *cfg = json_object_get(o, "config");
		field("config", str(cfg, "type"));
		json_t *net = json_object_get(cfg, "networking");
		if (net)
			field("networking", str(net, "type"));
		const char *prov = json_string_value(json_object_get(cfg, "provisioning"));
		if (!prov)
			prov = json_string_value(json_object_get(o, "provisioning"));
		field("provisioning", prov);
	} else if (k == KIND_SESSION) {
		field("status", str(o, "status"));
		if (json_is_string(json_object_get(o, "title")))
			field("title", cut(str(o, "title"), buf, 72));
		json_t *agent = json_object_get(o, "agent");
		if (json_is_object(agent)) {
			snprintf(buf, sizeof(buf), "%s (%s, version %lld)", str(agent, "id"),
				 str(agent, "name"),
				 (long long)json_integer_value(json_object_get(agent, "version")));
			field("agent", buf);
		} else {
			field("agent", json_string_value(agent));
		}
		field("environment", str(o, "environment_id"));
		json_t *usage = json_object_get(o, "usage");
		if (json_object_size(usage)) {
			snprintf(buf, sizeof(buf), "%lld in, %lld out",
				 (long long)json_integer_value(
					 json_object_get(usage, "input_tokens")),
				 (long long)json_integer_value(
					 json_object_get(usage, "output_tokens")));
			field("tokens", buf);
		}
	}
	field("created_at", str(o, "created_at"));
	if (json_is_string(json_object_get(o, "archived_at")))
		field("archived_at", str(o, "archived_at"));
}

static void print_object(struct ctx *c, const json_t *o)
{
	if (c->format == FORMAT_PRETTY)
		print_detail(c->res->kind, o);
	else
		print_json(o, c->format == FORMAT_JSONL);
}

/* --- requests ------------------------------------------------------------------------------ */

/* res->path [+ "/" + id [+ suffix]]: a new string; NULL without memory. */
static char *resource_path(const struct ctx *c, const char *id, const char *suffix)
{
	_cleanup_free_ char *e = id ? cr_client_escape(id) : NULL;
	char *p = NULL;
	if (id && !e)
		return NULL;
	if (asprintf(&p, "%s%s%s%s", c->res->path, id ? "/" : "", id ? e : "",
		     suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

static int call(struct ctx *c, const char *method, const char *path, const json_t *body,
		json_t **ret)
{
	struct cr_error err;
	if (!path) {
		fprintf(stderr, "%s: no memory\n", c->prog);
		return CR_EXIT_FAIL;
	}
	if (cr_client_call(c->client, method, path, body, ret, &err) < 0)
		return failed(&err);
	return CR_EXIT_OK;
}

static int call_and_print(struct ctx *c, const char *method, const char *path, const json_t *body)
{
	_cleanup_json_ json_t *resp = NULL;
	int rc = call(c, method, path, body, &resp);
	if (rc == CR_EXIT_OK)
		print_object(c, resp);
	return rc;
}

/* The body of create and update: --json's object (or {}), then the flags set over it. */
static int body_from_flags(struct ctx *c, json_t **ret)
{
	_cleanup_json_ json_t *b = c->body ? json_incref(c->body) : json_object();
	if (!json_is_object(b))
		return usage_error(c, "--json: want a JSON object");
	struct {
		const char *key, *value;
	} strs[] = {
		{ "name", c->name },	 { "model", c->model },
		{ "system", c->system }, { "description", c->description },
		{ "title", c->title },
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(strs); i++)
		if (strs[i].value)
			json_object_set_new(b, strs[i].key, json_string(strs[i].value));
	if (c->metadata) {
		json_t *md = json_object_get(b, "metadata");
		if (!json_is_object(md))
			json_object_set(b, "metadata", c->metadata);
		else
			json_object_update(md, c->metadata);
	}
	if (c->toolset) {
		json_t *tools = json_object_get(b, "tools");
		if (!json_is_array(tools)) {
			tools = json_array();
			json_object_set_new(b, "tools", tools);
		}
		json_array_append_new(tools, json_pack("{s:s}", "type", "agent_toolset_20260401"));
	}
	if (c->provisioning) {
		json_t *cfg = json_object_get(b, "config");
		if (!json_is_object(cfg)) {
			cfg = json_pack("{s:s}", "type", "cloud");
			json_object_set_new(b, "config", cfg);
		}
		json_object_set_new(cfg, "provisioning", json_string(c->provisioning));
	}
	if (c->environment)
		json_object_set_new(b, "environment_id", json_string(c->environment));
	if (c->agent) {
		if (c->agent_version)
			json_object_set_new(
				b, "agent",
				json_pack("{s:s, s:s, s:I}", "type", "agent", "id", c->agent,
					  "version",
					  (json_int_t)strtoll(c->agent_version, NULL, 10)));
		else
			json_object_set_new(b, "agent", json_string(c->agent));
	}
	*ret = TAKE_PTR(b);
	return CR_EXIT_OK;
}

static int need(struct ctx *c, const json_t *body, const char *key, const char *flag)
{
	if (json_object_get(body, key))
		return CR_EXIT_OK;
	return usage_error(c, "%s is required (or \"%s\" in --json)", flag, key);
}

static int cmd_create(struct ctx *c)
{
	_cleanup_json_ json_t *body = NULL;
	int rc = body_from_flags(c, &body);
	if (rc != CR_EXIT_OK)
		return rc;
	switch (c->res->kind) {
	case KIND_AGENT:
		if ((rc = need(c, body, "name", "--name")) ||
		    (rc = need(c, body, "model", "--model")))
			return rc;
		break;
	case KIND_ENVIRONMENT:
		if ((rc = need(c, body, "name", "--name")))
			return rc;
		break;
	case KIND_SESSION:
		if ((rc = need(c, body, "agent", "--agent")) ||
		    (rc = need(c, body, "environment_id", "--environment")))
			return rc;
		break;
	case KIND_EVENT:
		break;
	}
	if ((rc = connect_client(c)))
		return rc;
	_cleanup_free_ char *path = resource_path(c, NULL, NULL);
	return call_and_print(c, "POST", path, body);
}

static int cmd_retrieve(struct ctx *c)
{
	int rc = connect_client(c);
	if (rc)
		return rc;
	_cleanup_free_ char *path = resource_path(c, c->id, NULL);
	return call_and_print(c, "GET", path, NULL);
}

static int cmd_update(struct ctx *c)
{
	_cleanup_json_ json_t *body = NULL;
	int rc = body_from_flags(c, &body);
	if (rc != CR_EXIT_OK)
		return rc;
	if (json_object_size(body) == 0)
		return usage_error(c, "nothing to update (--json, or a flag such as --name)");
	if ((rc = connect_client(c)))
		return rc;
	_cleanup_free_ char *path = resource_path(c, c->id, NULL);
	if (c->res->kind == KIND_AGENT && !json_object_get(body, "version")) {
		/* an agent's update names the version it changes: the current one */
		_cleanup_json_ json_t *cur = NULL;
		if ((rc = call(c, "GET", path, NULL, &cur)))
			return rc;
		json_t *v = json_object_get(cur, "version");
		if (json_is_integer(v))
			json_object_set(body, "version", v);
	}
	return call_and_print(c, "POST", path, body);
}

static int cmd_archive(struct ctx *c)
{
	int rc = connect_client(c);
	if (rc)
		return rc;
	_cleanup_free_ char *path = resource_path(c, c->id, "/archive");
	return call_and_print(c, "POST", path, NULL);
}

static int cmd_delete(struct ctx *c)
{
	int rc = connect_client(c);
	if (rc)
		return rc;
	_cleanup_free_ char *path = resource_path(c, c->id, NULL);
	return call_and_print(c, "DELETE", path, NULL);
}

/* GET path with the list options, following next_page with --all; prints as it goes (pretty
 * and jsonl) or at the end (json: one body, every page's data in it). */
static int list_pages(struct ctx *c, const char *base)
{
	_cleanup_free_ char *page = c->page ? strdup(c->page) : NULL;
	_cleanup_json_ json_t *all = json_array();
	_cleanup_json_ json_t *last = NULL;
	bool header = false;
	for (;;) {
		char *path = strdup(base);
		int bad = !path;
		if (c->limit)
			bad = bad || cr_client_query(&path, "limit", c->limit);
		if (page)
			bad = bad || cr_client_query(&path, "page", page);
		if (c->order)
			bad = bad || cr_client_query(&path, "order", c->order);
		if (c->include_archived)
			bad = bad || cr_client_query(&path, "include_archived", "true");
		size_t i;
		json_t *t;
		json_array_foreach (c->types, i, t) {
			bad = bad || cr_client_query(&path, "types[]", json_string_value(t));
		}
		if (bad) {
			free(path);
			fprintf(stderr, "%s: no memory\n", c->prog);
			return CR_EXIT_FAIL;
		}
		json_decref(last);
		last = NULL;
		int rc = call(c, "GET", path, NULL, &last);
		free(path);
		if (rc)
			return rc;
		json_t *data = json_object_get(last, "data");
		if (!json_is_array(data)) {
			fprintf(stderr, "corral: corrald answered a list without \"data\"\n");
			return CR_EXIT_FAIL;
		}
		if (c->format == FORMAT_PRETTY && !header) {
			row_header(c->res->kind);
			header = true;
		}
		json_array_foreach (data, i, t) {
			if (c->format == FORMAT_PRETTY)
				print_row(c->res->kind, t);
			else if (c->format == FORMAT_JSONL)
				print_json(t, true);
			else if (c->all)
				json_array_append(all, t);
		}
		fflush(stdout);
		const char *next = json_string_value(json_object_get(last, "next_page"));
		if (!c->all || !next || json_array_size(data) == 0)
			break;
		if (page && strcmp(page, next) == 0) {
			fprintf(stderr,
				"corral: corrald answered the same next_page twice; stopping\n");
			return CR_EXIT_FAIL;
		}
		free(page);
		page = strdup(next);
		if (!page)
			return CR_EXIT_FAIL;
	}
	if (c->format == FORMAT_JSON) {
		if (c->all) {
			_cleanup_json_ json_t *out =
				json_pack("{s:O, s:n}", "data", all, "next_page");
			print_json(out, false);
		} else {
			print_json(last, false);
		}
	} else if (c->format == FORMAT_PRETTY && !c->all) {
		const char *next = json_string_value(json_object_get(last, "next_page"));
		if (next)
			fprintf(stderr, "(more: --page %s, or --all)\n", next);
	}
	return CR_EXIT_OK;
}

static int cmd_list(struct ctx *c)
{
	int rc = connect_client(c);
	if (rc)
		return rc;
	return list_pages(c, c->res->path);
}

/* --- sessions:events ----------------------------------------------------------------------- */

static char *events_path(const struct ctx *c, const char *suffix)
{
	_cleanup_free_ char *e = cr_client_escape(c->session);
	char *p = NULL;
	if (!e || asprintf(&p, "/v1/sessions/%s/events%s", e, suffix) < 0)
		return NULL;
	return p;
}

static int need_session(struct ctx *c)
{
	if (!c->session)
		return usage_error(c, "--session-id ID is required");
	return CR_EXIT_OK;
}

static json_t *text_event(const char *type, const char *text)
{
	return json_pack("{s:s, s:[{s:s, s:s}]}", "type", type, "content", "type", "text", "text",
			 text);
}

/* What to send: --json (an event, an array of them, or {"events": [...]}), --message,
 * --interrupt, --allow and --deny, in that order. */
static int events_to_send(struct ctx *c, json_t **ret)
{
	_cleanup_json_ json_t *events = json_array();
	if (c->body) {
		json_t *list = json_is_object(c->body) ? json_object_get(c->body, "events") : NULL;
		if (json_is_array(list))
			json_array_extend(events, list);
		else if (json_is_array(c->body))
			json_array_extend(events, c->body);
		else if (json_is_object(c->body) && json_object_get(c->body, "type"))
			json_array_append(events, c->body);
		else
			return usage_error(c, "--json: want an event, an array of events or "
					      "{\"events\": [...]}");
	}
	if (c->message) {
		_cleanup_free_ char *text = NULL;
		if (strcmp(c->message, "-") == 0) {
			size_t n = 0;
			FILE *m = open_memstream(&text, &n);
			char chunk[4096];
			size_t got;
			while (m && (got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
				fwrite(chunk, 1, got, m);
			if (m)
				fclose(m);
		} else {
			text = strdup(c->message);
		}
		if (!text || !*text)
			return usage_error(c, "--message: empty");
		json_array_append_new(events, text_event("user.message", text));
	}
	if (c->interrupt)
		json_array_append_new(events, json_pack("{s:s}", "type", "user.interrupt"));
	size_t i;
	json_t *id;
	json_array_foreach (c->allow, i, id) {
		json_array_append_new(events,
				      json_pack("{s:s, s:O, s:s}", "type", "user.tool_confirmation",
						"tool_use_id", id, "result", "allow"));
	}
	json_array_foreach (c->deny, i, id) {
		json_t *ev = json_pack("{s:s, s:O, s:s}", "type", "user.tool_confirmation",
				       "tool_use_id", id, "result", "deny");
		if (c->deny_message)
			json_object_set_new(ev, "deny_message", json_string(c->deny_message));
		json_array_append_new(events, ev);
	}
	if (json_array_size(events) == 0)
		return usage_error(c, "nothing to send (--message TEXT, --interrupt, --allow ID, "
				      "--deny ID or --json)");
	*ret = TAKE_PTR(events);
	return CR_EXIT_OK;
}

static int cmd_events_send(struct ctx *c)
{
	int rc = need_session(c);
	if (rc)
		return rc;
	_cleanup_json_ json_t *events = NULL;
	if ((rc = events_to_send(c, &events)))
		return rc;
	if ((rc = connect_client(c)))
		return rc;
	_cleanup_free_ char *path = events_path(c, "");
	_cleanup_json_ json_t *body = json_pack("{s:O}", "events", events);
	_cleanup_json_ json_t *resp = NULL;
	if ((rc = call(c, "POST", path, body, &resp)))
		return rc;
	if (c->format == FORMAT_JSON) {
		print_json(resp, false);
		return CR_EXIT_OK;
	}
	size_t i;
	json_t *ev;
	json_array_foreach (json_object_get(resp, "data"), i, ev) {
		if (c->format == FORMAT_JSONL)
			print_json(ev, true);
		else
			printf("sent %s %s (seq %lld)\n", str(ev, "type"), str(ev, "id"),
			       (long long)json_integer_value(json_object_get(ev, "seq")));
	}
	return CR_EXIT_OK;
}

static int cmd_events_list(struct ctx *c)
{
	int rc = need_session(c);
	if (rc || (rc = connect_client(c)))
		return rc;
	_cleanup_free_ char *path = events_path(c, "");
	if (!path)
		return CR_EXIT_FAIL;
	return list_pages(c, path);
}

struct stream_state {
	struct ctx *c;
	bool header;
	bool failed; /* a bad event */
};

static bool wanted_type(const struct ctx *c, const char *type)
{
	if (json_array_size(c->types) == 0)
		return true;
	size_t i;
	json_t *t;
	json_array_foreach (c->types, i, t) {
		if (strcmp(json_string_value(t), type) == 0)
			return true;
	}
	return false;
}

static int on_stream_event(void *arg, const struct cr_sse_event *sse)
{
	struct stream_state *st = arg;
	struct ctx *c = st->c;
	if (strcmp(sse->type, "ping") == 0)
		return 0;
	json_error_t je;
	_cleanup_json_ json_t *ev = json_loadb(sse->data, sse->data_len, 0, &je);
	if (!json_is_object(ev)) {
		fprintf(stderr, "corral: an event of the stream (id %s) is not a JSON object: %s\n",
			*sse->id ? sse->id : "none", je.text);
		st->failed = true;
		return CR_CLIENT_STOP;
	}
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type)
		type = sse->type;
	if (wanted_type(c, type)) {
		if (c->format == FORMAT_PRETTY) {
			if (!st->header)
				row_header(KIND_EVENT);
			st->header = true;
			print_row(KIND_EVENT, ev);
			fflush(stdout);
		} else {
			print_json(ev, true);
		}
	}
	if (c->until_idle && (strcmp(type, "session.status_idle") == 0 ||
			      strcmp(type, "session.status_terminated") == 0 ||
			      strcmp(type, "session.deleted") == 0))
		return CR_CLIENT_STOP;
	return 0;
}

static void on_stream_reconnect(void *arg, const char *why, const char *last_id)
{
	(void)arg;
	fprintf(stderr, "corral: the event stream broke (%s); reconnecting%s%s\n", why,
		*last_id ? " after event " : "", last_id);
}

static int cmd_events_stream(struct ctx *c)
{
	int rc = need_session(c);
	if (rc || (rc = connect_client(c)))
		return rc;
	_cleanup_free_ char *path = events_path(c, "/stream");
	if (!path)
		return CR_EXIT_FAIL;
	struct stream_state st = { .c = c };
	struct cr_client_stream_ops ops = {
		.arg = &st,
		.on_event = on_stream_event,
		.on_reconnect = on_stream_reconnect,
	};
	struct cr_error err;
	if (cr_client_stream(c->client, path, c->last_event_id, 90, &ops, &err) < 0)
		return failed(&err);
	return st.failed ? CR_EXIT_FAIL : CR_EXIT_OK;
}

/* --- the verb groups ----------------------------------------------------------------------- */

#define LIST_OPTS (B(O_LIMIT) | B(O_PAGE) | B(O_ALL) | B(O_ORDER) | B(O_INCLUDE_ARCHIVED))

static const struct verb agent_verbs[] = {
	{ "create",
	  B(O_JSON) | B(O_NAME) | B(O_MODEL) | B(O_SYSTEM) | B(O_DESCRIPTION) | B(O_TOOLSET) |
		  B(O_METADATA),
	  false, cmd_create },
	{ "list", LIST_OPTS, false, cmd_list },
	{ "retrieve", 0, true, cmd_retrieve },
	{ "update",
	  B(O_JSON) | B(O_NAME) | B(O_MODEL) | B(O_SYSTEM) | B(O_DESCRIPTION) | B(O_TOOLSET) |
		  B(O_METADATA),
	  true, cmd_update },
	{ "archive", 0, true, cmd_archive },
	{ 0 },
};

static const struct verb environment_verbs[] = {
	{ "create", B(O_JSON) | B(O_NAME) | B(O_DESCRIPTION) | B(O_PROVISIONING) | B(O_METADATA),
	  false, cmd_create },
	{ "list", LIST_OPTS, false, cmd_list },
	{ "retrieve", 0, true, cmd_retrieve },
	{ "update", B(O_JSON) | B(O_NAME) | B(O_DESCRIPTION) | B(O_PROVISIONING) | B(O_METADATA),
	  true, cmd_update },
	{ "archive", 0, true, cmd_archive },
	{ "delete", 0, true, cmd_delete },
	{ 0 },
};

static const struct verb session_verbs[] = {
	{ "create",
	  B(O_JSON) | B(O_AGENT) | B(O_AGENT_VERSION) | B(O_ENVIRONMENT) | B(O_TITLE) |
		  B(O_METADATA),
	  false, cmd_create },
	{ "list", LIST_OPTS, false, cmd_list },
	{ "retrieve", 0, true, cmd_retrieve },
	{ "update", B(O_JSON) | B(O_TITLE) | B(O_METADATA), true, cmd_update },
	{ "archive", 0, true, cmd_archive },
	{ "delete", 0, true, cmd_delete },
	{ 0 },
};

static const struct verb event_verbs[] = {
	{ "send",
	  B(O_SESSION) | B(O_JSON) | B(O_MESSAGE) | B(O_INTERRUPT) | B(O_ALLOW) | B(O_DENY) |
		  B(O_DENY_MESSAGE),
	  false, cmd_events_send },
	{ "list", B(O_SESSION) | B(O_LIMIT) | B(O_PAGE) | B(O_ALL) | B(O_ORDER) | B(O_TYPE), false,
	  cmd_events_list },
	{ "stream", B(O_SESSION) | B(O_TYPE) | B(O_LAST_EVENT_ID) | B(O_UNTIL_IDLE), false,
	  cmd_events_stream },
	{ 0 },
};

static const struct resource agents = { "agents", "/v1/agents", KIND_AGENT };
static const struct resource environments = { "environments", "/v1/environments",
					      KIND_ENVIRONMENT };
static const struct resource sessions = { "sessions", "/v1/sessions", KIND_SESSION };
static const struct resource events = { "sessions:events", NULL, KIND_EVENT };

static void usage(FILE *f, const struct resource *r)
{
	switch (r->kind) {
	case KIND_AGENT:
		fprintf(f,
			"usage: corral agents create (--name NAME --model MODEL [--system TEXT]\n"
			"                             [--description TEXT] [--toolset]\n"
			"                             [--metadata KEY=VALUE]... | --json BODY)\n"
			"       corral agents list [--limit N] [--page CURSOR] [--all] "
			"[--include-archived]\n"
			"       corral agents retrieve|archive ID\n"
			"       corral agents update ID [the flags of create] [--json BODY]\n"
			"update names the agent's current version unless BODY holds one.\n");
		break;
	case KIND_ENVIRONMENT:
		fprintf(f, "usage: corral environments create (--name NAME [--provisioning "
			   "lazy|eager]\n"
			   "                                   [--description TEXT] [--metadata "
			   "KEY=VALUE]... | --json BODY)\n"
			   "       corral environments list [--limit N] [--page CURSOR] [--all] "
			   "[--include-archived]\n"
			   "       corral environments retrieve|archive|delete ID\n"
			   "       corral environments update ID [the flags of create] [--json "
			   "BODY]\n");
		break;
	case KIND_SESSION:
		fprintf(f, "usage: corral sessions create (--agent ID [--agent-version N] "
			   "--environment ID\n"
			   "                               [--title TEXT] [--metadata "
			   "KEY=VALUE]... | --json BODY)\n"
			   "       corral sessions list [--limit N] [--page CURSOR] [--all] "
			   "[--order asc|desc]\n"
			   "       corral sessions retrieve|archive|delete ID\n"
			   "       corral sessions update ID [--title TEXT] [--metadata "
			   "KEY=VALUE]... [--json BODY]\n");
		break;
	case KIND_EVENT:
		fprintf(f,
			"usage: corral sessions:events send --session-id ID (--message TEXT|- | "
			"--interrupt |\n"
			"                                   --allow EVENT_ID | --deny EVENT_ID "
			"[--deny-message TEXT] |\n"
			"                                   --json EVENT|[EVENT...]|{\"events\": "
			"[...]})\n"
			"       corral sessions:events list --session-id ID [--limit N] [--page "
			"CURSOR] [--all]\n"
			"                                   [--order asc|desc] [--type TYPE]...\n"
			"       corral sessions:events stream --session-id ID [--type TYPE]... "
			"[--until-idle]\n"
			"                                   [--last-event-id SEQ]\n");
		break;
	}
	fprintf(f,
		"\nOptions of every verb:\n"
		"  --format json|jsonl|pretty  json: the API's answer; jsonl: one object a "
		"line;\n"
		"                       pretty: a short table (the default on a "
		"terminal)\n" CR_CLIENT_USAGE
		"BODY is JSON: the text itself, @FILE, or - for standard input. Exit status: 0 "
		"done,\n"
		"1 corrald failed or refused (its message is printed), 2 usage error. docs/cli.md "
		"has\nthe details.\n");
}

static int parse_number(struct ctx *c, const char *flag, const char *s, long long max)
{
	uint64_t v;
	if (cr_parse_u64(s, 1, (uint64_t)max, &v) < 0)
		return usage_error(c, "%s %s: want a number from 1 to %lld", flag, s, max);
	return CR_EXIT_OK;
}

static int parse(struct ctx *c, int argc, char **argv)
{
	int o;
	int rc;
	opterr = 0;
	optind = 1;
	uint64_t allowed = c->verb->opts | B(O_FORMAT);
	int li = -1;
	while ((o = getopt_long(argc, argv, ":", long_opts, &li)) != -1) {
		if (cr_client_option(&c->copts, o, optarg))
			continue;
		if (o == O_HELP) {
			usage(stdout, c->res);
			return -1;
		}
		if (o == ':')
			return usage_error(c, "option \"%s\" wants an argument", argv[optind - 1]);
		if (o == '?' || o <= 0 || o >= 64)
			return usage_error(c, "unknown option \"%s\"", argv[optind - 1]);
		if (!(allowed & B(o)))
			return usage_error(c, "--%s is not an option of %s",
					   li >= 0 ? long_opts[li].name : "?", c->verb->name);
		li = -1;
		switch (o) {
		case O_JSON:
			json_decref(c->body);
			c->body = NULL;
			if ((rc = cr_cli_json_arg(c->prog, optarg, &c->body)))
				return rc;
			break;
		case O_FORMAT:
			if (strcmp(optarg, "json") == 0)
				c->format = FORMAT_JSON;
			else if (strcmp(optarg, "jsonl") == 0)
				c->format = FORMAT_JSONL;
			else if (strcmp(optarg, "pretty") == 0)
				c->format = FORMAT_PRETTY;
			else
				return usage_error(c, "--format %s: want json, jsonl or pretty",
						   optarg);
			break;
		case O_LIMIT:
			if ((rc = parse_number(c, "--limit", optarg, 1000)))
				return rc;
			c->limit = optarg;
			break;
		case O_PAGE:
			c->page = optarg;
			break;
		case O_ALL:
			c->all = true;
			break;
		case O_ORDER:
			if (strcmp(optarg, "asc") != 0 && strcmp(optarg, "desc") != 0)
				return usage_error(c, "--order %s: want asc or desc", optarg);
			c->order = optarg;
			break;
		case O_TYPE:
			if (!*optarg || strlen(optarg) > 63 ||
			    strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789_.") !=
				    strlen(optarg))
				return usage_error(c,
						   "--type %s: not an event type "
						   "(session.status_idle, agent.message...)",
						   optarg);
			json_array_append_new(c->types, json_string(optarg));
			break;
		case O_INCLUDE_ARCHIVED:
			c->include_archived = true;
			break;
		case O_NAME:
			c->name = optarg;
			break;
		case O_MODEL:
			c->model = optarg;
			break;
		case O_SYSTEM:
			c->system = optarg;
			break;
		case O_DESCRIPTION:
			c->description = optarg;
			break;
		case O_TOOLSET:
			c->toolset = true;
			break;
		case O_METADATA: {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				return usage_error(c, "--metadata %s: want KEY=VALUE", optarg);
			_cleanup_free_ char *k = strndup(optarg, (size_t)(eq - optarg));
			json_object_set_new(c->metadata, k, json_string(eq + 1));
			break;
		}
		case O_PROVISIONING:
			if (strcmp(optarg, "lazy") != 0 && strcmp(optarg, "eager") != 0)
				return usage_error(c, "--provisioning %s: want lazy or eager",
						   optarg);
			c->provisioning = optarg;
			break;
		case O_AGENT:
			c->agent = optarg;
			break;
		case O_AGENT_VERSION:
			if ((rc = parse_number(c, "--agent-version", optarg, INT32_MAX)))
				return rc;
			c->agent_version = optarg;
			break;
		case O_ENVIRONMENT:
			c->environment = optarg;
			break;
		case O_TITLE:
			c->title = optarg;
			break;
		case O_SESSION:
			c->session = optarg;
			break;
		case O_MESSAGE:
			c->message = optarg;
			break;
		case O_INTERRUPT:
			c->interrupt = true;
			break;
		case O_ALLOW:
			json_array_append_new(c->allow, json_string(optarg));
			break;
		case O_DENY:
			json_array_append_new(c->deny, json_string(optarg));
			break;
		case O_DENY_MESSAGE:
			c->deny_message = optarg;
			break;
		case O_LAST_EVENT_ID:
			if (!*optarg || strspn(optarg, "0123456789") != strlen(optarg) ||
			    strlen(optarg) > 19)
				return usage_error(c, "--last-event-id %s: want a sequence number",
						   optarg);
			c->last_event_id = optarg;
			break;
		case O_UNTIL_IDLE:
			c->until_idle = true;
			break;
		}
	}
	if (c->verb->id) {
		if (optind >= argc)
			return usage_error(c, "which one? (an id, see corral %s list)",
					   c->res->name);
		c->id = argv[optind++];
		if (!*c->id)
			return usage_error(c, "an empty id");
	}
	if (optind < argc)
		return usage_error(c, "unexpected argument \"%s\"", argv[optind]);
	if (c->agent_version && !c->agent)
		return usage_error(c, "--agent-version needs --agent");
	if (c->deny_message && json_array_size(c->deny) == 0)
		return usage_error(c, "--deny-message needs --deny");
	return CR_EXIT_OK;
}

static void ctx_done(struct ctx *c)
{
	cr_client_free(c->client);
	json_decref(c->body);
	json_decref(c->types);
	json_decref(c->metadata);
	json_decref(c->allow);
	json_decref(c->deny);
}

static int run_group(const struct resource *r, const struct verb *verbs, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout, r);
		return argc < 2 ? CR_EXIT_USAGE : CR_EXIT_OK;
	}
	const struct verb *v = verbs;
	while (v->name && strcmp(v->name, argv[1]) != 0)
		v++;
	if (!v->name) {
		fprintf(stderr, "corral %s: unknown verb \"%s\" (corral %s help)\n", r->name,
			argv[1], r->name);
		return CR_EXIT_USAGE;
	}
	struct ctx c = {
		.res = r,
		.verb = v,
		.format = isatty(STDOUT_FILENO) ? FORMAT_PRETTY : FORMAT_JSON,
		.types = json_array(),
		.metadata = json_object(),
		.allow = json_array(),
		.deny = json_array(),
	};
	snprintf(c.prog, sizeof(c.prog), "corral %s %s", r->name, v->name);
	int rc = parse(&c, argc - 1, argv + 1);
	if (rc == -1)
		rc = CR_EXIT_OK;
	else if (rc == CR_EXIT_OK) {
		if (json_object_size(c.metadata) == 0) {
			json_decref(c.metadata);
			c.metadata = NULL;
		}
		rc = v->run(&c);
	}
	ctx_done(&c);
	return rc;
}

int cr_cli_agents(int argc, char **argv)
{
	return run_group(&agents, agent_verbs, argc, argv);
}

int cr_cli_environments(int argc, char **argv)
{
	return run_group(&environments, environment_verbs, argc, argv);
}

int cr_cli_sessions(int argc, char **argv)
{
	return run_group(&sessions, session_verbs, argc, argv);
}

int cr_cli_session_events(int argc, char **argv)
{
	return run_group(&events, event_verbs, argc, argv);
}
