/* runtime/tool: one table describes each tool's input fields; the published input schemas and
 * the checking of a call's input are both made from it, so they cannot disagree. Each tool then
 * builds its corral-init request and turns the response into the text the model reads. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corral/cleanup.h"
#include "corral/id.h"
#include "corral/initproto.h"
#include "corral/tool.h"

/* corral-init answers within the call's own timeout; this much more is allowed for the round
 * trip and for killing what timed out (its grace period is 2 s) before the sandbox is deemed
 * unresponsive. */
#define CALL_MARGIN_MS 10000
/* Output kept of a bash call (corral-init cuts it with a marker saying how much it left out). */
#define BASH_OUTPUT_CAP 100000

static void json_releasep(json_t **p)
{
	json_decref(*p);
}

enum field_type {
	F_STRING,
	F_BOOL,
	F_INT,
	F_RANGE
};

struct field {
	const char *name;
	enum field_type type;
	bool required;
	const char *description;
};

struct tool;
typedef int (*tool_fn)(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		       struct cr_error *err);

struct tool {
	const char *name;
	const char *description;
	struct field fields[5]; /* ends at a NULL name */
	tool_fn run;
};

static int run_bash(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err);
static int run_read(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err);
static int run_write(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		     struct cr_error *err);
static int run_edit(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err);
static int run_glob(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err);
static int run_grep(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err);

static const struct tool tools[] = {
	{ "bash",
	  "Runs a command in a persistent bash shell in the sandbox. The working directory, "
	  "variables and functions carry over between calls. stdout and stderr are returned "
	  "together, with the exit status when it is not 0. A call that runs past its timeout "
	  "is killed and the shell restarted. Set restart to start a fresh shell.",
	  { { "command", F_STRING, false, "Shell command to run. Omit only when restart is true." },
	    { "restart", F_BOOL, false,
	      "Restart the persistent shell instead of running a command." },
	    { "timeout_ms", F_INT, false,
	      "Timeout for this call in milliseconds; 0 or omitted: 120000." } },
	  run_bash },
	{ "read",
	  "Reads a text file in the sandbox. Lines are returned numbered from 1, as cat -n "
	  "prints them. view_range limits the lines returned.",
	  { { "file_path", F_STRING, true, "Path of the file to read." },
	    { "view_range", F_RANGE, false,
	      "[start_line, end_line], 1-based and inclusive; an end_line of 0 or less means the "
	      "end of the file." } },
	  run_read },
	{ "write",
	  "Writes a file in the sandbox, replacing all of its contents (missing parent "
	  "directories are created). The write is atomic.",
	  { { "file_path", F_STRING, true, "Path of the file to write." },
	    { "content", F_STRING, true, "The file's full new contents." } },
	  run_write },
	{ "edit",
	  "Replaces text in a file in the sandbox. old_string must match the file's text "
	  "exactly and occur exactly once, unless replace_all is true.",
	  { { "file_path", F_STRING, true, "Path of the file to edit." },
	    { "old_string", F_STRING, true, "The exact text to replace." },
	    { "new_string", F_STRING, true, "The text to put in its place." },
	    { "replace_all", F_BOOL, false,
	      "Replace every occurrence instead of requiring exactly one." } },
	  run_edit },
	{ "glob",
	  "Finds files in the sandbox whose paths match a glob pattern (**/*.c: any depth), "
	  "newest first.",
	  { { "pattern", F_STRING, true, "Glob pattern, e.g. **/*.py or src/*.{c,h}." },
	    { "path", F_STRING, false,
	      "Directory to search under; default: the working directory (/workspace)." } },
	  run_glob },
	{ "grep",
	  "Searches file contents in the sandbox for a regular expression (POSIX extended) and "
	  "returns the matching lines as path:line:text.",
	  { { "pattern", F_STRING, true, "Regular expression to search for." },
	    { "path", F_STRING, false,
	      "File or directory to search; default: the working directory (/workspace)." } },
	  run_grep },
};

#define NTOOLS (sizeof(tools) / sizeof(tools[0]))

static const struct tool *find_tool(const char *name)
{
	for (size_t i = 0; name && i < NTOOLS; i++)
		if (strcmp(tools[i].name, name) == 0)
			return &tools[i];
	return NULL;
}

bool cr_tool_known(const char *name)
{
	return find_tool(name) != NULL;
}

/* --- definitions --------------------------------------------------------------------------- */

static json_t *field_schema(const struct field *f)
{
	switch (f->type) {
	case F_STRING:
		return json_pack("{s:s, s:s}", "type", "string", "description", f->description);
	case F_BOOL:
		return json_pack("{s:s, s:s}", "type", "boolean", "description", f->description);
	case F_INT:
		return json_pack("{s:s, s:i, s:i, s:s}", "type", "integer", "minimum", 0, "maximum",
				 CR_TOOL_TIMEOUT_MS_MAX, "description", f->description);
	case F_RANGE:
		return json_pack("{s:s, s:{s:s}, s:i, s:i, s:s}", "type", "array", "items", "type",
				 "integer", "minItems", 2, "maxItems", 2, "description",
				 f->description);
	}
	return NULL;
}

static json_t *tool_definition(const struct tool *t)
{
	_cleanup_(json_releasep) json_t *props = json_object(), *required = json_array();
	if (!props || !required)
		return NULL;
	for (const struct field *f = t->fields; f->name; f++) {
		if (json_object_set_new(props, f->name, field_schema(f)) < 0)
			return NULL;
		if (f->required && json_array_append_new(required, json_string(f->name)) < 0)
			return NULL;
	}
	return json_pack("{s:s, s:s, s:{s:s, s:O, s:O, s:b}}", "name", t->name, "description",
			 t->description, "input_schema", "type", "object", "properties", props,
			 "required", required, "additionalProperties", false);
}

json_t *cr_toolset_definitions(void)
{
	json_t *defs = json_array();
	for (size_t i = 0; defs && i < NTOOLS; i++) {
		if (json_array_append_new(defs, tool_definition(&tools[i])) < 0) {
			json_decref(defs);
			return NULL;
		}
	}
	return defs;
}

/* --- results ------------------------------------------------------------------------------- */

void cr_tool_result_clear(struct cr_tool_result *r)
{
	free(r->content);
	r->content = NULL;
	r->is_error = false;
}

int cr_tool_result_set(struct cr_tool_result *ret, bool is_error, struct cr_error *err,
		       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return cr_error_errno(err, ENOMEM, "tool result");
	free(ret->content);
	ret->content = s;
	ret->is_error = is_error;
	return 0;
}

/* A growing text. */
struct text {
	char *s;
	size_t len, cap;
	bool failed;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = realloc(t->s, cap);
		if (!p) {
			t->failed = true;
			return;
		}
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		t->failed = true;
	else
		text_add(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Hands the text to the result; -ENOMEM when building it failed. */
static int result_take(struct cr_tool_result *ret, struct text *t, bool is_error,
		       struct cr_error *err)
{
	if (t->failed || (!t->s && (text_add(t, "", 0), t->failed))) {
		free(t->s);
		return cr_error_errno(err, ENOMEM, "tool result");
	}
	free(ret->content);
	ret->content = t->s;
	ret->is_error = is_error;
	t->s = NULL;
	return 0;
}

/* --- calls --------------------------------------------------------------------------------- */

/* Sends the request (its "id" set to id) and waits up to timeout_ms plus the margin. A
 * response with ok false becomes a tool error carrying corral-init's message (*ret_resp
 * NULL); with ok true it is returned in *ret_resp. */
static int call(int fd, const char *id, json_t *req, int timeout_ms, json_t **ret_resp,
		struct cr_tool_result *ret, struct cr_error *err)
{
	*ret_resp = NULL;
	if (json_object_set_new(req, "id", json_string(id)) < 0)
		return cr_error_errno(err, ENOMEM, "tool request");
	json_t *resp = NULL;
	int r = cr_init_call(fd, req, timeout_ms + CALL_MARGIN_MS, &resp, err);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *msg = json_string_value(json_object_get(resp, "error"));
		r = cr_tool_result_set(ret, true, err, "%s",
				       msg ? msg : "the sandbox refused the request");
		json_decref(resp);
		return r;
	}
	*ret_resp = resp;
	return 0;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int run_bash(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err)
{
	const char *command = str(in, "command");
	bool restart = json_is_true(json_object_get(in, "restart"));
	json_int_t timeout = json_integer_value(json_object_get(in, "timeout_ms"));
	if (timeout == 0)
		timeout = CR_TOOL_TIMEOUT_MS_DEFAULT;
	if (!command && !restart)
		return cr_tool_result_set(
			ret, true, err,
			"bash: \"command\" is required (unless \"restart\" is true)");
	_cleanup_(json_releasep) json_t *req = json_pack(
		"{s:s, s:s, s:I, s:i, s:b}", "op", "shell", "command", command ? command : ":",
		"timeout_ms", timeout, "output_cap", BASH_OUTPUT_CAP, "restart", restart);
	if (!req)
		return cr_error_errno(err, ENOMEM, "tool request");
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = call(fd, id, req, (int)timeout, &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	if (!command)
		return cr_tool_result_set(ret, false, err, "The bash shell was restarted.");
	struct text t = { 0 };
	const char *output = str(resp, "output");
	text_add(&t, output ? output : "", output ? strlen(output) : 0);
	bool timed_out = json_is_true(json_object_get(resp, "timed_out"));
	json_t *code = json_object_get(resp, "exit_code");
	const char *sig = str(resp, "signal");
	const char *note = str(resp, "note");
	if (t.len && t.s[t.len - 1] != '\n' &&
	    (timed_out || sig || note || (json_is_integer(code) && json_integer_value(code))))
		text_add(&t, "\n", 1);
	if (timed_out)
		text_printf(&t, "[timed out after %lld ms]\n", (long long)timeout);
	else if (sig)
		text_printf(&t, "[killed by %s]\n", sig);
	else if (json_is_integer(code) && json_integer_value(code) != 0)
		text_printf(&t, "[exit status %lld]\n", (long long)json_integer_value(code));
	if (note)
		text_printf(&t, "[%s]\n", note);
	return result_take(ret, &t, timed_out, err);
}

static int run_read(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err)
{
	const char *path = str(in, "file_path");
	json_t *range = json_object_get(in, "view_range");
	json_int_t start = 1, end = 0;
	if (range) {
		start = json_integer_value(json_array_get(range, 0));
		end = json_integer_value(json_array_get(range, 1));
		if (start < 1)
			return cr_tool_result_set(
				ret, true, err,
				"read: view_range's start_line is %lld; lines count "
				"from 1",
				(long long)start);
		if (end > 0 && end < start)
			return cr_tool_result_set(
				ret, true, err,
				"read: view_range [%lld, %lld] ends before it starts",
				(long long)start, (long long)end);
	}
	_cleanup_(json_releasep) json_t *req =
		json_pack("{s:s, s:s, s:I}", "op", "read", "path", path, "start_line", start);
	if (!req || (end > 0 && json_object_set_new(req, "end_line", json_integer(end)) < 0))
		return cr_error_errno(err, ENOMEM, "tool request");
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = call(fd, id, req, CR_TOOL_TIMEOUT_MS_DEFAULT, &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	const char *content = str(resp, "content");
	json_int_t line = json_integer_value(json_object_get(resp, "start_line"));
	json_int_t last = json_integer_value(json_object_get(resp, "end_line"));
	json_int_t total = json_integer_value(json_object_get(resp, "total_lines"));
	struct text t = { 0 };
	if (total == 0)
		return cr_tool_result_set(ret, false, err, "%s is empty.", path);
	for (const char *p = content ? content : ""; *p; line++) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		text_printf(&t, "%6lld\t", (long long)line);
		text_add(&t, p, n);
		text_add(&t, "\n", 1);
		p += n + (nl != NULL);
	}
	if (json_is_true(json_object_get(resp, "truncated")) || last < total)
		text_printf(&t, "[lines %lld-%lld of %lld shown]\n",
			    (long long)json_integer_value(json_object_get(resp, "start_line")),
			    (long long)last, (long long)total);
	return result_take(ret, &t, false, err);
}

static int run_write(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		     struct cr_error *err)
{
	const char *path = str(in, "file_path");
	_cleanup_(json_releasep) json_t *req =
		json_pack("{s:s, s:s, s:O}", "op", "write", "path", path, "content",
			  json_object_get(in, "content"));
	if (!req)
		return cr_error_errno(err, ENOMEM, "tool request");
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = call(fd, id, req, CR_TOOL_TIMEOUT_MS_DEFAULT, &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	json_int_t bytes = json_integer_value(json_object_get(resp, "bytes"));
	bool created = json_is_true(json_object_get(resp, "created"));
	return cr_tool_result_set(ret, false, err, "%s %s (%lld bytes).",
				  created ? "Created" : "Wrote", path, (long long)bytes);
}

static int run_edit(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err)
{
	const char *path = str(in, "file_path");
	_cleanup_(json_releasep) json_t *req = json_pack(
		"{s:s, s:s, s:O, s:O, s:b}", "op", "edit", "path", path, "old_string",
		json_object_get(in, "old_string"), "new_string", json_object_get(in, "new_string"),
		"replace_all", json_is_true(json_object_get(in, "replace_all")));
	if (!req)
		return cr_error_errno(err, ENOMEM, "tool request");
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = call(fd, id, req, CR_TOOL_TIMEOUT_MS_DEFAULT, &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	json_int_t n = json_integer_value(json_object_get(resp, "replacements"));
	return cr_tool_result_set(ret, false, err, "Edited %s: %lld replacement%s.", path,
				  (long long)n, n == 1 ? "" : "s");
}

/* Runs glob or grep (op) with the input's pattern and path. A response with matches is
 * returned in *ret_resp; without any, the result says "<none> <pattern>." and *ret_resp is
 * NULL. */
static int search(int fd, const char *id, const char *op, json_t *in, const char *none,
		  json_t **ret_resp, struct cr_tool_result *ret, struct cr_error *err)
{
	*ret_resp = NULL;
	_cleanup_(json_releasep) json_t *req =
		json_pack("{s:s, s:O}", "op", op, "pattern", json_object_get(in, "pattern"));
	json_t *path = json_object_get(in, "path");
	if (!req || (path && json_object_set(req, "path", path) < 0))
		return cr_error_errno(err, ENOMEM, "tool request");
	json_t *resp = NULL;
	int r = call(fd, id, req, CR_TOOL_TIMEOUT_MS_DEFAULT, &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	if (json_array_size(json_object_get(resp, "matches")) == 0) {
		json_decref(resp);
		return cr_tool_result_set(ret, false, err, "%s %s.", none, str(in, "pattern"));
	}
	*ret_resp = resp;
	return 0;
}

static int run_glob(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err)
{
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = search(fd, id, "glob", in, "No files match", &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	json_t *matches = json_object_get(resp, "matches");
	struct text t = { 0 };
	size_t i;
	json_t *m;
	json_array_foreach (matches, i, m) {
		text_add(&t, json_string_value(m), strlen(json_string_value(m)));
		text_add(&t, "\n", 1);
	}
	if (json_is_true(json_object_get(resp, "truncated")))
		text_printf(&t, "[%zu of %lld matches shown, newest first]\n",
			    json_array_size(matches),
			    (long long)json_integer_value(json_object_get(resp, "count")));
	return result_take(ret, &t, false, err);
}

static int run_grep(int fd, const char *id, json_t *in, struct cr_tool_result *ret,
		    struct cr_error *err)
{
	_cleanup_(json_releasep) json_t *resp = NULL;
	int r = search(fd, id, "grep", in, "No matches for", &resp, ret, err);
	if (r < 0 || !resp)
		return r;
	json_t *matches = json_object_get(resp, "matches");
	struct text t = { 0 };
	size_t i;
	json_t *m;
	json_array_foreach (matches, i, m) {
		const char *path = str(m, "path"), *line = str(m, "text");
		text_printf(&t, "%s:%lld:", path ? path : "",
			    (long long)json_integer_value(json_object_get(m, "line")));
		text_add(&t, line ? line : "", line ? strlen(line) : 0);
		text_add(&t, "\n", 1);
	}
	if (json_is_true(json_object_get(resp, "truncated")))
		text_printf(&t, "[the first %zu matches shown]\n", json_array_size(matches));
	return result_take(ret, &t, false, err);
}

/* --- input ---------------------------------------------------------------------------------- */

static const char *type_name(enum field_type type)
{
	switch (type) {
	case F_STRING:
		return "a string";
	case F_BOOL:
		return "a boolean";
	case F_INT:
		return "an integer from 0 to 86400000";
	case F_RANGE:
		return "an array of two integers";
	}
	return "?";
}

static bool field_ok(const struct field *f, json_t *v)
{
	switch (f->type) {
	case F_STRING:
		return json_is_string(v);
	case F_BOOL:
		return json_is_boolean(v);
	case F_INT:
		return json_is_integer(v) && json_integer_value(v) >= 0 &&
		       json_integer_value(v) <= CR_TOOL_TIMEOUT_MS_MAX;
	case F_RANGE:
		return json_is_array(v) && json_array_size(v) == 2 &&
		       json_is_integer(json_array_get(v, 0)) &&
		       json_is_integer(json_array_get(v, 1));
	}
	return false;
}

/* Checks input against the tool's fields: a tool error naming the field, or 0 with *ret_in. */
static int check_input(const struct tool *t, const char *input, size_t len, json_t **ret_in,
		       struct cr_tool_result *ret, struct cr_error *err)
{
	*ret_in = NULL;
	json_error_t jerr;
	json_t *in = json_loadb(input ? input : "", input ? len : 0, 0, &jerr);
	if (!in)
		return cr_tool_result_set(ret, true, err, "%s: the input is not valid JSON: %s",
					  t->name, jerr.text);
	if (!json_is_object(in)) {
		json_decref(in);
		return cr_tool_result_set(ret, true, err, "%s: the input must be a JSON object",
					  t->name);
	}
	const char *key;
	json_t *v;
	json_object_foreach (in, key, v) {
		const struct field *f = t->fields;
		while (f->name && strcmp(f->name, key) != 0)
			f++;
		if (!f->name) {
			struct text names = { 0 };
			for (f = t->fields; f->name; f++)
				text_printf(&names, "%s%s", f == t->fields ? "" : ", ", f->name);
			int r = cr_tool_result_set(ret, true, err,
						   "%s: unknown field \"%s\" (its fields: %s)",
						   t->name, key, names.s ? names.s : "");
			free(names.s);
			json_decref(in);
			return r;
		}
		if (!field_ok(f, v)) {
			json_decref(in);
			return cr_tool_result_set(ret, true, err, "%s: field \"%s\" must be %s",
						  t->name, f->name, type_name(f->type));
		}
	}
	for (const struct field *f = t->fields; f->name; f++) {
		if (f->required && !json_object_get(in, f->name)) {
			json_decref(in);
			return cr_tool_result_set(ret, true, err, "%s: field \"%s\" is required",
						  t->name, f->name);
		}
	}
	*ret_in = in;
	return 0;
}

int cr_tool_execute(int init_fd, const char *call_id, const char *name, const char *input,
		    size_t input_len, struct cr_tool_result *ret, struct cr_error *err)
{
	*ret = (struct cr_tool_result){ 0 };
	const struct tool *t = find_tool(name);
	if (!t) {
		struct text names = { 0 };
		for (size_t i = 0; i < NTOOLS; i++)
			text_printf(&names, "%s%s", i ? ", " : "", tools[i].name);
		int r = cr_tool_result_set(ret, true, err, "unknown tool \"%s\" (the tools: %s)",
					   name ? name : "(null)", names.s ? names.s : "");
		free(names.s);
		return r;
	}
	char id[CR_ID_RAW * 2 + 8];
	if (!call_id) {
		uint8_t raw[CR_ID_RAW];
		int r = cr_id_random(raw, err);
		if (r < 0)
			return r;
		cr_id_format("call_", raw, id, sizeof(id));
		call_id = id;
	}
	_cleanup_(json_releasep) json_t *in = NULL;
	int r = check_input(t, input, input_len, &in, ret, err);
	if (r < 0 || !in)
		return r;
	r = t->run(init_fd, call_id, in, ret, err);
	if (r < 0)
		cr_tool_result_clear(ret);
	return r;
}
