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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/harness.h"
#include "corral/json.h"
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

/* --- payloads as text ----------------------------------------------------------------------- */

/* The fold reads payloads as text and never builds them as trees: the conversation's blocks are
 * copied into the request as the bytes they are in the log. That gives the bytes the request
 * had when it was a jansson tree dumped with JSON_COMPACT only when the text is already what
 * jansson writes, so a payload is read as it is when it is canonical (what json_dumps(
 * json_loadb(payload), JSON_COMPACT) gives back unchanged: no whitespace, no escape jansson
 * would not write, no duplicate key, numbers as jansson prints them), and otherwise as that
 * dump, made once. Every payload corral writes is canonical (the API and the orchestrator
 * append json_dumps' output); the other way is there so that any payload jansson loads gives
 * the request it always gave. */

/* A JSON value's text: n bytes at p; p is NULL when there is none. */
struct jtext {
	const char *p;
	size_t n;
};

/* Memory for what the fold decodes and builds (strings, blocks), freed at once. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

#define ARENA_CHUNK (64 * 1024)

static void arena_free(struct arena_chunk **a)
{
	while (*a) {
		struct arena_chunk *next = (*a)->next;
		free(*a);
		*a = next;
	}
}

static char *arena_alloc(struct arena_chunk **a, size_t n)
{
	struct arena_chunk *c = *a;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		*c = (struct arena_chunk){ .next = *a, .cap = cap };
		*a = c;
	}
	char *p = c->data + c->used;
	c->used += n;
	return p;
}

/* A copy of n bytes at s with a NUL after them. */
static char *arena_dup(struct arena_chunk **a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* -- canonical text: what jansson writes -- */

#define CANON_MAX_DEPTH 32 /* deeper payloads are read through jansson */
#define CANON_MAX_KEYS 32 /* as are objects with more keys (duplicates are looked for) */

static int hex_upper(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string as jansson writes it: non-ASCII as UTF-8, the short escapes for '"', '\\', \b, \f,
 * \n, \r and \t, \u00XX (upper case) for the other control characters, nothing else escaped. */
static bool canon_string(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;
	if (p >= end || *p != '"')
		return false;
	p++;
	for (;;) {
		uint64_t w;
		while (end - p >= 8 && (memcpy(&w, p, 8), !cr_json_word_special(w)))
			p += 8;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p >= end)
			return false;
		if (*p == '"') {
			*pp = p + 1;
			return true;
		}
		if (*p == '\\') {
			if (end - p < 2)
				return false;
			if (strchr("\"\\bfnrt", p[1]) && p[1]) {
				p += 2;
				continue;
			}
			if (p[1] != 'u' || end - p < 6 || p[2] != '0' || p[3] != '0' ||
			    (p[4] != '0' && p[4] != '1') || hex_upper(p[5]) < 0)
				return false;
			int v = (p[4] - '0') * 16 + hex_upper(p[5]);
			if (v == 0 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
				return false;
			p += 6;
			continue;
		}
		if (*p < 0x20)
			return false;
		size_t n = cr_json_utf8_seq(p, end);
		if (!n)
			return false;
		p += n;
	}
}

/* Whether the integer digits (no sign, no leading zero) fit int64 with that sign. */
static bool int_fits(const unsigned char *d, size_t n, bool negative)
{
	static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
	if (n != sizeof(max) - 1)
		return n < sizeof(max) - 1;
	return memcmp(d, negative ? min : max, n) <= 0;
}

/* Whether a real number's text is what jansson prints for the double it reads as: "%.17g",
 * with ".0" added to what would read as an integer and the exponent without '+' or leading
 * zeros (jansson's jsonp_dtostr). In a locale whose decimal point is not '.', no real is
 * canonical here and every payload with one goes through jansson. */
static bool canon_real(const unsigned char *tok, size_t n)
{
	char in[64], out[64];
	if (n >= sizeof(in))
		return false;
	memcpy(in, tok, n);
	in[n] = '\0';
	double v = strtod(in, NULL);
	if (!isfinite(v))
		return false;
	int len = snprintf(out, sizeof(out), "%.17g", v);
	if (len < 0 || (size_t)len + 3 > sizeof(out))
		return false;
	if (!strchr(out, '.') && !strchr(out, 'e'))
		memcpy(out + len, ".0", 3);
	char *e = strchr(out, 'e');
	if (e) {
		char *start = e + 1, *after = e + 2;
		if (*start == '-')
			start++;
		while (*after == '0')
			after++;
		if (after != start)
			memmove(start, after, strlen(after) + 1);
	}
	return strlen(out) == n && memcmp(out, tok, n) == 0;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static bool canon_number(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *tok = *pp, *p = tok;
	bool negative = *p == '-';
	if (negative)
		p++;
	if (!is_digit(p, end))
		return false;
	const unsigned char *digits = p;
	if (*p == '0')
		p++;
	else
		while (is_digit(p, end))
			p++;
	size_t int_digits = (size_t)(p - digits);
	bool real = false;
	if (p < end && *p == '.') {
		p++;
		if (!is_digit(p, end))
			return false;
		while (is_digit(p, end))
			p++;
		real = true;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return false;
		while (is_digit(p, end))
			p++;
		real = true;
	}
	*pp = p;
	if (real)
		return canon_real(tok, (size_t)(p - tok));
	/* -0 reads as the integer 0 */
	return !(negative && *digits == '0') && int_fits(digits, int_digits, negative);
}

static bool canon_literal(const unsigned char **pp, const unsigned char *end, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(end - *pp) < n || memcmp(*pp, word, n) != 0)
		return false;
	*pp += n;
	return true;
}

static bool canon_value(const unsigned char **pp, const unsigned char *end, unsigned depth)
{
	const unsigned char *p = *pp;
	if (p >= end)
		return false;
	switch (*p) {
	case '"':
		return canon_string(pp, end);
	case 't':
		return canon_literal(pp, end, "true");
	case 'f':
		return canon_literal(pp, end, "false");
	case 'n':
		return canon_literal(pp, end, "null");
	case '[':
		if (depth == CANON_MAX_DEPTH)
			return false;
		if (++p < end && *p == ']') {
			*pp = p + 1;
			return true;
		}
		for (;;) {
			if (!canon_value(&p, end, depth + 1) || p >= end)
				return false;
			if (*p == ']') {
				*pp = p + 1;
				return true;
			}
			if (*p++ != ',')
				return false;
		}
	case '{': {
		if (depth == CANON_MAX_DEPTH)
			return false;
		if (++p < end && *p == '}') {
			*pp = p + 1;
			return true;
		}
		const unsigned char *keys[CANON_MAX_KEYS];
		size_t key_len[CANON_MAX_KEYS], nk = 0;
		for (;;) {
			const unsigned char *k = p;
			if (nk == CANON_MAX_KEYS || !canon_string(&p, end))
				return false;
			for (size_t i = 0; i < nk; i++) {
				if (key_len[i] == (size_t)(p - k) &&
				    memcmp(keys[i], k, key_len[i]) == 0)
					return false;
			}
			keys[nk] = k;
			key_len[nk++] = (size_t)(p - k);
			if (p >= end || *p++ != ':' || !canon_value(&p, end, depth + 1) || p >= end)
				return false;
			if (*p == '}') {
				*pp = p + 1;
				return true;
			}
			if (*p++ != ',')
				return false;
		}
	}
	default:
		return (*p == '-' || (*p >= '0' && *p <= '9')) && canon_number(pp, end);
	}
}

/* Whether the n bytes at s are one JSON object written as jansson writes it. */
static bool canonical_object(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	return n > 0 && *p == '{' && canon_value(&p, end, 0) && p == end;
}

/* -- reading canonical text (trusted: it was checked, or jansson wrote it) -- */

/* Past the string whose opening quote is at p. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++;;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		/* escaped when an odd number of backslashes comes before it */
		size_t bs = 0;
		while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			return q + 1;
		p = q + 1;
	}
}

/* Past the value at p. */
static const char *skip_value(const char *p, const char *end)
{
	if (*p == '"')
		return skip_string(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && *p != ',' && *p != '}' && *p != ']')
			p++;
		return p;
	}
	size_t depth = 0;
	do {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		p++;
	} while (depth > 0);
	return p;
}

static bool jt_object(struct jtext v)
{
	return v.p && v.p[0] == '{';
}

static bool jt_array(struct jtext v)
{
	return v.p && v.p[0] == '[';
}

static bool jt_string(struct jtext v)
{
	return v.p && v.p[0] == '"';
}

static bool jt_is(struct jtext v, const char *literal)
{
	return v.p && v.n == strlen(literal) && memcmp(v.p, literal, v.n) == 0;
}

static bool jt_true(struct jtext v)
{
	return jt_is(v, "true");
}

/* A number without fraction or exponent: jansson's integer. */
static bool jt_integer(struct jtext v)
{
	if (!v.p || !(v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9')))
		return false;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] == '.' || v.p[i] == 'e' || v.p[i] == 'E')
			return false;
	}
	return true;
}

/* Whether v is the string s (of characters jansson writes as they are). */
static bool jt_streq(struct jtext v, const char *s)
{
	size_t n = strlen(s);
	return jt_string(v) && v.n == n + 2 && memcmp(v.p + 1, s, n) == 0;
}

/* The value of o's member key (o's keys are unique), or none. */
static struct jtext jt_get(struct jtext o, const char *key)
{
	if (!jt_object(o))
		return (struct jtext){ 0 };
	const char *p = o.p + 1, *end = o.p + o.n;
	size_t kn = strlen(key);
	while (*p == '"') {
		const char *k = p;
		p = skip_string(p, end);
		bool match = (size_t)(p - k) == kn + 2 && memcmp(k + 1, key, kn) == 0;
		const char *v = p + 1;
		p = skip_value(v, end);
		if (match)
			return (struct jtext){ v, (size_t)(p - v) };
		if (*p != ',')
			break;
		p++;
	}
	return (struct jtext){ 0 };
}

/* Walks the elements of an array: it->p starts at its '['. */
struct jt_iter {
	const char *p, *end;
};

static struct jt_iter jt_elements(struct jtext a)
{
	return jt_array(a) ? (struct jt_iter){ a.p + 1, a.p + a.n } : (struct jt_iter){ 0 };
}

static bool jt_next(struct jt_iter *it, struct jtext *ret)
{
	if (!it->p || *it->p == ']')
		return false;
	const char *v = it->p;
	it->p = skip_value(v, it->end);
	*ret = (struct jtext){ v, (size_t)(it->p - v) };
	if (*it->p == ',')
		it->p++;
	return true;
}

/* The string v decoded (a new NUL-terminated copy in the arena), or NULL when v is not a
 * string (or without memory: *ret_oom). The escapes are jansson's, the only ones canonical
 * text has; no \u0000, so the copy is a C string. */
static const char *jt_cstr(struct arena_chunk **a, struct jtext v, bool *ret_oom)
{
	if (!jt_string(v))
		return NULL;
	const char *s = v.p + 1;
	size_t n = v.n - 2;
	if (!memchr(s, '\\', n)) {
		char *d = arena_dup(a, s, n);
		*ret_oom |= !d;
		return d;
	}
	char *d = arena_alloc(a, n + 1), *o = d;
	if (!d) {
		*ret_oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			*o++ = s[i];
			continue;
		}
		char c = s[++i];
		switch (c) {
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': /* \u00XX */
			*o++ = (char)(hex_upper((unsigned char)s[i + 3]) * 16 +
				      hex_upper((unsigned char)s[i + 4]));
			i += 4;
			break;
		default: /* '"', '\\' */
			*o++ = c;
		}
	}
	*o = '\0';
	return d;
}

/* -- writing text as jansson writes it -- */

/* Text being written, or only measured (p NULL): the request is measured first, so that it is
 * written once into memory of its exact size. */
struct out {
	char *p;
	size_t len;
};

static void out_add(struct out *o, const char *s, size_t n)
{
	if (o->p)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_jt(struct out *o, struct jtext v)
{
	out_add(o, v.p, v.n);
}

/* Whether s is UTF-8, which jansson requires of every string it builds. */
static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	while (p < end) {
		size_t n = *p < 0x80 ? 1 : cr_json_utf8_seq(p, end);
		if (!n)
			return false;
		p += n;
	}
	return true;
}

/* The C string s (UTF-8: utf8_ok) as a JSON string, escaped as jansson escapes. */
static void out_string(struct out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	out_add(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		const unsigned char *run = p;
		while (*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		out_add(o, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		char esc[6] = { '\\', (char)*p };
		size_t n = 2;
		switch (*p) {
		case '"':
		case '\\':
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			n = 6;
		}
		out_add(o, esc, n);
		p++;
	}
	out_add(o, "\"", 1);
}

/* --- the fold ------------------------------------------------------------------------------- */

/* One content block of the conversation: the text of a block of a payload, or what a block is
 * made of (parts of a payload, an event's id), written when the request is. */
enum item_kind {
	ITEM_BLOCK, /* a: the block */
	ITEM_TOOL_USE, /* {"type":"tool_use","id","name","input"}: id, a: name, b: input */
	ITEM_TOOL_RESULT, /* {"type":"tool_result","tool_use_id","content","is_error"}: id, a:
			   * the result's payload (its non-empty content blocks, is_error if true)
			   */
	ITEM_THINKING, /* {"type":"thinking","thinking","signature"}: a, b */
	ITEM_SUMMARY, /* {"type":"text","text"}: a, a compaction's summary */
};

struct item {
	enum item_kind kind;
	struct jtext a, b; /* in the events' payloads (or the fold's arena) */
	const char *id; /* borrowed from the log */
	size_t len; /* of its text */
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
	free(l->v);
	*l = (struct items){ 0 };
}

static int items_put(struct items *l, const struct item *it, struct cr_error *err)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct item *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return oom(err);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *it;
	return 0;
}

/* Moves every item of from to the end of to; from is left empty. */
static int items_move(struct items *to, struct items *from, struct cr_error *err)
{
	int r = 0;
	for (size_t i = 0; i < from->n && r == 0; i++)
		r = items_put(to, &from->v[i], err);
	from->n = 0;
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
	const char *name; /* decoded in the fold's arena, as is deny_message */
	struct jtext input; /* an object */
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

/* A client event still pending, and the tool use it names (user.tool_confirmation,
 * user.custom_tool_result), if any. */
struct pending {
	const struct cr_log_event *e;
	struct jtext use_id;
};

struct fold {
	struct arena_chunk *arena; /* decoded strings, payloads jansson rewrote */
	bool oom; /* an arena allocation failed (checked once per event) */
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
	struct jtext idle_reason; /* stop_reason of the last lifecycle event, if an idle */

	enum call_state call; /* of the last model call */
	struct jtext stop_reason; /* of the last call, when it succeeded (may be none or null) */
	bool content_after_call; /* user-role content came after the last call's answer */
	unsigned failures; /* consecutive failed calls, since the last success or idle */
	struct jtext retry_status; /* of the session.error after the last failed call: a string */
	bool idle_after_failure;

	uint64_t compacted_through; /* the largest through_seq of the compactions */
	struct items summaries; /* their summaries, as text blocks, in order */

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
	items_clear(&f->summaries);
	arena_free(&f->arena);
	*f = (struct fold){ 0 };
}

static const char *cstr(struct fold *f, struct jtext v)
{
	return jt_cstr(&f->arena, v, &f->oom);
}

/* o[key] decoded, or NULL when it is not a string. */
static const char *get_str(struct fold *f, struct jtext o, const char *key)
{
	return cstr(f, jt_get(o, key));
}

/* Whether v is the string s. */
static bool jt_eq_cstr(struct fold *f, struct jtext v, const char *s)
{
	if (!jt_string(v))
		return false;
	if (!memchr(v.p, '\\', v.n))
		return v.n - 2 == strlen(s) && memcmp(v.p + 1, s, v.n - 2) == 0;
	const char *d = cstr(f, v);
	return d && strcmp(d, s) == 0;
}

static bool is_client_type(const char *type)
{
	return strncmp(type, "user.", 5) == 0 || strcmp(type, "system.message") == 0;
}

/* Types the fold reads; every other one is skipped without reading its payload. */
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

/* The payload of e as canonical text: as it is, or as jansson writes it. */
static int payload_text(struct fold *f, const struct cr_log_event *e, struct jtext *ret,
			struct cr_error *err)
{
	if (e->payload && canonical_object(e->payload, e->payload_len)) {
		*ret = (struct jtext){ e->payload, e->payload_len };
		return 0;
	}
	json_error_t jerr;
	json_t *p = e->payload ? json_loadb(e->payload, e->payload_len, 0, &jerr) : NULL;
	if (!json_is_object(p)) {
		json_decref(p);
		return bad(err, e, "the payload is not a JSON object");
	}
	size_t n = json_dumpb(p, NULL, 0, JSON_COMPACT);
	char *t = n ? arena_alloc(&f->arena, n + 1) : NULL;
	if (t && json_dumpb(p, t, n, JSON_COMPACT) == n)
		t[n] = '\0';
	else
		t = NULL;
	json_decref(p);
	if (!t)
		return oom(err);
	*ret = (struct jtext){ t, n };
	return 0;
}

static bool opt_bool(struct jtext o, const char *key)
{
	struct jtext v = jt_get(o, key);
	return !v.p || jt_is(v, "null") || jt_is(v, "true") || jt_is(v, "false");
}

static bool opt_string(struct jtext o, const char *key)
{
	struct jtext v = jt_get(o, key);
	return !v.p || jt_is(v, "null") || jt_string(v);
}

/* An array of content blocks: objects with a string type. */
static bool blocks(struct jtext a)
{
	if (!jt_array(a))
		return false;
	struct jt_iter it = jt_elements(a);
	struct jtext b;
	while (jt_next(&it, &b)) {
		if (!jt_string(jt_get(b, "type")))
			return false;
	}
	return true;
}

static bool opt_blocks(struct jtext o, const char *key)
{
	struct jtext v = jt_get(o, key);
	return !v.p || jt_is(v, "null") || blocks(v);
}

/* What a client event must hold, checked whether it is pending or not: a client can only
 * send these through the API, which checks them too, so a bad one is a damaged log. */
static int check_client(const struct cr_log_event *e, struct jtext p, struct cr_error *err)
{
	if (!strcmp(e->type, "user.message") || !strcmp(e->type, "system.message")) {
		if (!blocks(jt_get(p, "content")))
			return bad(err, e, "\"content\" is not an array of content blocks");
	} else if (!strcmp(e->type, "user.tool_confirmation")) {
		struct jtext r = jt_get(p, "result");
		if (!jt_string(jt_get(p, "tool_use_id")) ||
		    !(jt_streq(r, "allow") || jt_streq(r, "deny")) ||
		    !opt_string(p, "deny_message"))
			return bad(err, e,
				   "needs a \"tool_use_id\" and a \"result\" of allow or deny");
	} else if (!strcmp(e->type, "user.custom_tool_result")) {
		if (!jt_string(jt_get(p, "custom_tool_use_id")) || !opt_blocks(p, "content") ||
		    !opt_bool(p, "is_error"))
			return bad(err, e,
				   "needs a \"custom_tool_use_id\" (and content blocks, is_error)");
	}
	return 0;
}

/* The tool use of a completed call whose id is the string id, or NULL (the latest are the
 * likeliest). */
static struct use *find_use(struct fold *f, struct jtext id)
{
	if (!jt_string(id))
		return NULL;
	const char *s = id.p + 1;
	size_t n = id.n - 2;
	if (memchr(s, '\\', n)) {
		s = cstr(f, id);
		n = s ? strlen(s) : 0;
	}
	for (size_t i = f->n_committed; s && i-- > 0;) {
		if (strncmp(f->uses[i].id, s, n) == 0 && f->uses[i].id[n] == '\0')
			return &f->uses[i];
	}
	return NULL;
}

static int add_user(struct fold *f, const struct item *it, struct cr_error *err)
{
	if (f->open_id)
		return items_put(&f->deferred, it, err);
	f->content_after_call = true;
	return items_put(&f->items, it, err);
}

/* The API refuses empty text blocks, which a tool with no output gives (bash's "true"): the
 * log keeps them, requests never carry them. (A text block without a text string counts as
 * empty, as it did when jansson measured the text.) */
static bool empty_text(struct jtext b)
{
	if (!jt_streq(jt_get(b, "type"), "text"))
		return false;
	struct jtext t = jt_get(b, "text");
	return !jt_string(t) || t.n == 2;
}

static const char ephemeral_member[] = "\"cache_control\":{\"type\":\"ephemeral\"}";

/* A block of a payload with "cache_control":{"type":"ephemeral"}: in place of its own
 * cache_control, or as its last member (where json_object_set put it in a copy of the tree's
 * block). */
static void out_cached_block(struct out *o, struct jtext block)
{
	struct jtext old = jt_get(block, "cache_control");
	if (old.p) {
		const char *key = old.p - strlen("\"cache_control\":");
		out_add(o, block.p, (size_t)(key - block.p));
		out_str(o, ephemeral_member);
		out_add(o, old.p + old.n, (size_t)(block.p + block.n - (old.p + old.n)));
	} else if (block.n <= 2) { /* {} */
		out_add(o, "{", 1);
		out_str(o, ephemeral_member);
		out_add(o, "}", 1);
	} else {
		out_add(o, block.p, block.n - 1);
		out_add(o, ",", 1);
		out_str(o, ephemeral_member);
		out_add(o, "}", 1);
	}
}

/* The text of it, with cache_control when cache: the bytes jansson wrote for the tree's block
 * (the keys in the order the tree had them). */
static void out_item(struct out *o, const struct item *it, bool cache)
{
	if (!o->p && !cache && it->len) {
		o->len += it->len;
		return;
	}
	switch (it->kind) {
	case ITEM_BLOCK:
		if (cache)
			out_cached_block(o, it->a);
		else
			out_jt(o, it->a);
		return;
	case ITEM_TOOL_USE:
		out_str(o, "{\"type\":\"tool_use\",\"id\":");
		out_string(o, it->id);
		out_str(o, ",\"name\":");
		out_jt(o, it->a);
		out_str(o, ",\"input\":");
		out_jt(o, it->b);
		break;
	case ITEM_TOOL_RESULT: {
		out_str(o, "{\"type\":\"tool_result\",\"tool_use_id\":");
		out_string(o, it->id);
		struct jt_iter iter = jt_elements(jt_get(it->a, "content"));
		struct jtext c;
		size_t n = 0;
		while (jt_next(&iter, &c)) {
			if (empty_text(c))
				continue;
			out_str(o, n++ ? "," : ",\"content\":[");
			out_jt(o, c);
		}
		if (n > 0)
			out_add(o, "]", 1);
		if (jt_true(jt_get(it->a, "is_error")))
			out_str(o, ",\"is_error\":true");
		break;
	}
	case ITEM_THINKING:
		out_str(o, "{\"type\":\"thinking\",\"thinking\":");
		out_jt(o, it->a);
		out_str(o, ",\"signature\":");
		out_jt(o, it->b);
		break;
	case ITEM_SUMMARY:
		out_str(o, "{\"type\":\"text\",\"text\":");
		out_jt(o, it->a);
		break;
	}
	if (cache) {
		out_add(o, ",", 1);
		out_str(o, ephemeral_member);
	}
	out_add(o, "}", 1);
}

/* An item of kind with its length measured. */
static struct item new_item(enum item_kind kind, const struct cr_log_event *e, const char *id,
			    struct jtext a, struct jtext b, bool assistant)
{
	struct item it = { .kind = kind,
			   .a = a,
			   .b = b,
			   .id = id,
			   .seq = e->seq,
			   .assistant = assistant,
			   .tool_result = kind == ITEM_TOOL_RESULT };
	struct out o = { 0 };
	out_item(&o, &it, false);
	it.len = o.len;
	return it;
}

static int add_tool_result(struct fold *f, const struct cr_log_event *e, const struct use *u,
			   struct jtext p, struct cr_error *err)
{
	struct item it = new_item(ITEM_TOOL_RESULT, e, u->id, p, (struct jtext){ 0 }, false);
	return add_user(f, &it, err);
}

/* The blocks of content whose type is one of types (NULL-terminated), as items. */
static int add_blocks(struct fold *f, const struct cr_log_event *e, struct jtext content,
		      const char *const *types, bool assistant, struct cr_error *err)
{
	struct jt_iter iter = jt_elements(content);
	struct jtext b;
	while (jt_next(&iter, &b)) {
		struct jtext type = jt_get(b, "type");
		bool wanted = false;
		for (size_t k = 0; types[k] && !wanted; k++)
			wanted = jt_streq(type, types[k]);
		if (!wanted || empty_text(b))
			continue;
		struct item it = new_item(ITEM_BLOCK, e, NULL, b, (struct jtext){ 0 }, assistant);
		int r = assistant ? items_put(&f->call_items, &it, err) : add_user(f, &it, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int fold_client(struct fold *f, const struct cr_log_event *e, struct jtext p,
		       struct cr_error *err)
{
	static const char *const user_types[] = { "text", "image", "document", NULL };
	static const char *const text_types[] = { "text", NULL };

	if (!strcmp(e->type, "user.message"))
		return add_blocks(f, e, jt_get(p, "content"), user_types, false, err);
	if (!strcmp(e->type, "system.message"))
		return add_blocks(f, e, jt_get(p, "content"), text_types, false, err);
	if (!strcmp(e->type, "user.tool_confirmation")) {
		/* One for an unknown, custom or answered tool use, or a second one, changes
		 * nothing: the client raced the session, which went on without it. */
		struct use *u = find_use(f, jt_get(p, "tool_use_id"));
		if (!u || u->custom || u->answered || u->confirmation != CONFIRM_NONE)
			return 0;
		u->confirmation =
			jt_streq(jt_get(p, "result"), "allow") ? CONFIRM_ALLOW : CONFIRM_DENY;
		u->deny_message = get_str(f, p, "deny_message");
		return 0;
	}
	if (!strcmp(e->type, "user.custom_tool_result")) {
		struct use *u = find_use(f, jt_get(p, "custom_tool_use_id"));
		if (!u || !u->custom || u->answered)
			return 0;
		u->answered = true;
		return add_tool_result(f, e, u, p, err);
	}
	return 0; /* user.interrupt is the step's; other client types are not read */
}

/* The open call produced no message: its blocks and tool uses go, and what waited for it
 * joins the conversation. */
static int drop_call(struct fold *f, struct cr_error *err)
{
	f->call_items.n = 0;
	f->n_uses = f->n_committed;
	f->open_id = NULL;
	return items_move(&f->items, &f->deferred, err);
}

static int fold_tool_use(struct fold *f, const struct cr_log_event *e, struct jtext p,
			 struct cr_error *err)
{
	struct jtext name = jt_get(p, "name"), input = jt_get(p, "input");
	if (!jt_string(name) || !jt_object(input))
		return bad(err, e, "needs a \"name\" and an \"input\" object");
	if (!f->open_id)
		return 0; /* outside a model call: part of no message */
	if (!utf8_ok(e->id))
		return bad(err, e, "an event id that is not UTF-8");
	const char *n = cstr(f, name);
	if (f->oom)
		return oom(err);
	struct item it = new_item(ITEM_TOOL_USE, e, e->id, name, input, true);
	int r = items_put(&f->call_items, &it, err);
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
		.name = n,
		.input = input,
		.custom = !strcmp(e->type, "agent.custom_tool_use"),
	};
	return 0;
}

static int fold_model_end(struct fold *f, const struct cr_log_event *e, struct jtext p,
			  struct cr_error *err)
{
	struct jtext start = jt_get(p, "model_request_start_id");
	if (!jt_string(start) || !opt_bool(p, "is_error") || !opt_string(p, "stop_reason"))
		return bad(err, e,
			   "needs a \"model_request_start_id\" (and is_error, stop_reason)");
	/* The end of a call that is not the open one belongs to an abandoned call. */
	if (!f->open_id || !jt_eq_cstr(f, start, f->open_id))
		return 0;
	if (jt_true(jt_get(p, "is_error"))) {
		f->call = CALL_FAILED;
		f->failures++;
		f->retry_status = (struct jtext){ 0 };
		f->idle_after_failure = false;
		return drop_call(f, err);
	}
	/* The API's conversation starts with a user message, and so must the log's. */
	if (f->items.n == 0 && f->call_items.n > 0)
		return bad(err, e, "a model's answer before any user message");
	f->call = CALL_OK;
	f->stop_reason = jt_get(p, "stop_reason");
	f->failures = 0;
	f->n_committed = f->n_uses;
	f->open_id = NULL;
	/* What waited for the call was not in its request: it comes after the answer. */
	f->content_after_call = f->deferred.n > 0;
	int r = items_move(&f->items, &f->call_items, err);
	return r < 0 ? r : items_move(&f->items, &f->deferred, err);
}

static int add_pending(struct fold *f, const struct cr_log_event *e, struct jtext p,
		       struct cr_error *err)
{
	if (f->n_pending == f->cap_pending) {
		size_t cap = f->cap_pending ? 2 * f->cap_pending : 8;
		struct pending *v = reallocarray(f->pending, cap, sizeof(*v));
		if (!v)
			return oom(err);
		f->pending = v;
		f->cap_pending = cap;
	}
	struct jtext use_id = { 0 };
	if (!strcmp(e->type, "user.tool_confirmation"))
		use_id = jt_get(p, "tool_use_id");
	else if (!strcmp(e->type, "user.custom_tool_result"))
		use_id = jt_get(p, "custom_tool_use_id");
	f->pending[f->n_pending++] = (struct pending){ e, use_id };
	if (!f->interrupt && !strcmp(e->type, "user.interrupt"))
		f->interrupt = e;
	return 0;
}

static int fold_compacted(struct fold *f, const struct cr_log_event *e, struct jtext p,
			  struct cr_error *err)
{
	struct jtext summary = jt_get(p, "summary"), through = jt_get(p, "through_seq");
	if (!jt_string(summary) || !jt_integer(through) || through.p[0] == '-')
		return bad(err, e, "needs a \"summary\" string and a \"through_seq\"");
	uint64_t t = strtoull(through.p, NULL, 10);
	if (t > f->compacted_through)
		f->compacted_through = t;
	/* The text block that carries it in the first message. */
	struct item it = new_item(ITEM_SUMMARY, e, NULL, summary, (struct jtext){ 0 }, false);
	return items_put(&f->summaries, &it, err);
}

static int fold_payload(struct fold *f, const struct cr_log_event *e, struct jtext p,
			uint64_t assume_through, struct cr_error *err)
{
	static const char *const text_types[] = { "text", NULL };
	const char *t = e->type;

	if (is_client_type(t)) {
		int r = check_client(e, p, err);
		if (r < 0)
			return r;
		if (e->processed_ns == 0 && e->seq > assume_through)
			return add_pending(f, e, p, err);
		return fold_client(f, e, p, err);
	}

	if (!strcmp(t, "agent.thinking")) {
		struct jtext thinking = jt_get(p, "thinking"), signature = jt_get(p, "signature");
		/* The public type has no fields: one without corral's cannot be sent back. */
		if (!f->open_id || !jt_string(thinking) || !jt_string(signature))
			return 0;
		struct item it = new_item(ITEM_THINKING, e, NULL, thinking, signature, true);
		return items_put(&f->call_items, &it, err);
	}
	if (!strcmp(t, "agent.message")) {
		if (!blocks(jt_get(p, "content")))
			return bad(err, e, "\"content\" is not an array of content blocks");
		if (!f->open_id)
			return 0;
		return add_blocks(f, e, jt_get(p, "content"), text_types, true, err);
	}
	if (!strcmp(t, "agent.tool_use") || !strcmp(t, "agent.custom_tool_use"))
		return fold_tool_use(f, e, p, err);
	if (!strcmp(t, "agent.tool_result")) {
		struct jtext id = jt_get(p, "tool_use_id");
		if (!jt_string(id) || !opt_blocks(p, "content") || !opt_bool(p, "is_error"))
			return bad(err, e,
				   "needs a \"tool_use_id\" (and content blocks, is_error)");
		struct use *u = find_use(f, id);
		if (!u)
			return bad(err, e,
				   "a tool result for no tool use of a completed model call");
		if (u->answered)
			return 0; /* the first result of a tool use is its result */
		u->answered = true;
		return add_tool_result(f, e, u, p, err);
	}
	if (!strcmp(t, "agent.thread_context_compacted"))
		return fold_compacted(f, e, p, err);
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
		f->idle_reason = (struct jtext){ 0 };
	} else if (!strcmp(t, "session.status_idle")) {
		struct jtext reason = jt_get(p, "stop_reason");
		if (!jt_string(jt_get(reason, "type")))
			return bad(err, e, "needs a \"stop_reason\" with a type");
		f->status = STATUS_IDLE;
		f->idle_reason = reason;
		f->failures = 0;
		if (f->call == CALL_FAILED)
			f->idle_after_failure = true;
	} else if (!strcmp(t, "session.status_terminated") || !strcmp(t, "session.deleted")) {
		/* A deleted session ends too: its brain stops at its next step. */
		f->status = STATUS_TERMINATED;
		f->idle_reason = (struct jtext){ 0 };
	} else if (!strcmp(t, "session.error")) {
		struct jtext error = jt_get(p, "error");
		if (!jt_object(error))
			return bad(err, e, "needs an \"error\" object");
		struct jtext rs = jt_get(jt_get(error, "retry_status"), "type");
		if (f->call == CALL_FAILED && !f->idle_after_failure)
			f->retry_status = jt_string(rs) ? rs : (struct jtext){ 0 };
	}
	return 0;
}

static int fold_event(struct fold *f, const struct cr_log_event *e, uint64_t assume_through,
		      struct cr_error *err)
{
	if (!is_folded_type(e->type))
		return 0;
	struct jtext p;
	int r = payload_text(f, e, &p, err);
	if (r == 0)
		r = fold_payload(f, e, p, assume_through, err);
	if (r == 0 && f->oom)
		r = oom(err);
	return r;
}

/* Folds ev[0..n). Pending client events with seq <= assume_through are folded as if they were
 * processed (the interrupt's step consumes them). */
static int fold_run(struct fold *f, const struct cr_log_event *ev, size_t n,
		    uint64_t assume_through, struct cr_error *err)
{
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
	const struct item **blocks; /* in the conv's blocks */
	size_t n_blocks;
	uint64_t max_seq; /* of the events folded into it */
};

struct conv {
	struct msg *v;
	size_t n;
	const struct item **blocks; /* every message's, in order */
};

static void conv_clear(struct conv *c)
{
	free(c->v);
	free(c->blocks);
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
	if (nk == 0 && f->summaries.n > 0)
		return oom(err); /* (as the tree harness said: no first message to carry them) */

	struct conv c = { .v = calloc(nk ? nk : 1, sizeof(*c.v)),
			  .blocks = calloc(nk + f->summaries.n + 1, sizeof(*c.blocks)) };
	if (!c.v || !c.blocks) {
		conv_clear(&c);
		return oom(err);
	}
	size_t nb = 0;
	for (size_t i = 0, end; i < nk; i = end) {
		bool assistant = kept[i]->assistant;
		for (end = i; end < nk && kept[end]->assistant == assistant;)
			end++;
		struct msg *m = &c.v[c.n++];
		m->assistant = assistant;
		m->blocks = &c.blocks[nb];
		/* User messages: tool results first, then the rest, each in seq order. */
		for (int pass = assistant ? 1 : 0; pass < 2; pass++) {
			for (size_t j = i; j < end; j++) {
				if (!assistant && kept[j]->tool_result != (pass == 0))
					continue;
				c.blocks[nb++] = kept[j];
				if (kept[j]->seq > m->max_seq)
					m->max_seq = kept[j]->seq;
			}
		}
		if (c.n == 1) {
			for (size_t s = 0; s < f->summaries.n; s++)
				c.blocks[nb++] = &f->summaries.v[s];
		}
		m->n_blocks = (size_t)(&c.blocks[nb] - m->blocks);
	}
	*ret = c;
	return 0;
}

static const char user_head[] = "{\"role\":\"user\",\"content\":[";
static const char assistant_head[] = "{\"role\":\"assistant\",\"content\":[";

/* The messages array of c. With cache, the last block of the last message carries
 * cache_control: the blocks stay as they are, so the earlier messages of the next request are
 * the same bytes. Without, its size is what json_dumpb said of the tree. */
static void out_messages(struct out *o, const struct conv *c, bool cache)
{
	out_add(o, "[", 1);
	for (size_t i = 0; i < c->n; i++) {
		const struct msg *m = &c->v[i];
		if (i)
			out_add(o, ",", 1);
		out_str(o, m->assistant ? assistant_head : user_head);
		for (size_t j = 0; j < m->n_blocks; j++) {
			if (j)
				out_add(o, ",", 1);
			out_item(o, m->blocks[j], cache && i + 1 == c->n && j + 1 == m->n_blocks);
		}
		out_add(o, "]}", 2);
	}
	out_add(o, "]", 1);
}

static size_t messages_size(const struct conv *c)
{
	struct out o = { 0 };
	out_messages(&o, c, false);
	return o.len;
}

/* The request, its keys in the order the tree had them. */
static void out_request(struct out *o, const struct config *cfg, const struct conv *c,
			const char *tools)
{
	char num[32];
	snprintf(num, sizeof(num), "%ld", cfg->max_tokens);
	out_str(o, "{\"model\":");
	out_string(o, cfg->agent->model);
	out_str(o, ",\"max_tokens\":");
	out_str(o, num);
	const char *sys = cfg->agent->system;
	if (sys && sys[0]) {
		out_str(o, ",\"system\":[{\"type\":\"text\",\"text\":");
		out_string(o, sys);
		out_str(o, ",\"cache_control\":{\"type\":\"ephemeral\"}}]");
	}
	if (tools) {
		out_str(o, ",\"tools\":");
		out_str(o, tools);
	}
	out_str(o, ",\"messages\":");
	out_messages(o, c, true);
	out_str(o, ",\"stream\":true}");
}

/* The request as JSON text (NUL-terminated), measured, then written once. Owned by the
 * caller. */
static int build_request(const struct config *cfg, const struct conv *c, char **ret,
			 size_t *ret_len, struct cr_error *err)
{
	if (!utf8_ok(cfg->agent->model))
		return cr_error_set(err, EINVAL, "harness: the agent's model is not UTF-8");
	if (cfg->agent->system && !utf8_ok(cfg->agent->system))
		return cr_error_set(err, EINVAL, "harness: the agent's system prompt is not UTF-8");
	_cleanup_json_ json_t *tools = NULL;
	int r = tool_definitions(cfg, &tools, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *tools_text = tools ? json_dumps(tools, JSON_COMPACT) : NULL;
	if (tools && !tools_text)
		return oom(err);
	struct out o = { 0 };
	out_request(&o, cfg, c, tools_text);
	size_t len = o.len;
	o = (struct out){ .p = malloc(len + 1) };
	if (!o.p)
		return oom(err);
	out_request(&o, cfg, c, tools_text);
	o.p[o.len] = '\0';
	*ret = o.p;
	*ret_len = o.len;
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
static void summarize_content(struct sbuf *b, const struct msg *m, const json_t *content)
{
	size_t i;
	json_t *blk;
	struct sbuf text = { 0 };
	json_array_foreach (content, i, blk) {
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
	sbuf_text(&text, content);
	if (text.buf.len > 0) {
		sbuf_str(b, m->assistant ? "assistant: " : "user: ");
		sbuf_snippet(b, text.buf.p, text.buf.len, SUMMARY_TEXT_MAX);
		sbuf_add(b, "\n", 1);
	}
	b->failed |= text.failed;
	cr_buf_free(&text.buf);
	json_array_foreach (content, i, blk) {
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

/* The message's blocks are read as trees here: compaction is rare, and its summary is built from
 * their decoded text. */
static void summarize(struct sbuf *b, const struct msg *m)
{
	_cleanup_json_ json_t *content = json_array();
	for (size_t i = 0; content && i < m->n_blocks; i++) {
		const struct item *it = m->blocks[i];
		_cleanup_free_ char *text = malloc(it->len + 1);
		struct out o = { .p = text };
		if (text)
			out_item(&o, it, false);
		json_t *blk = text ? json_loadb(text, o.len, 0, NULL) : NULL;
		if (!blk || json_array_append_new(content, blk) < 0)
			json_decref(TAKE_PTR(content));
	}
	if (!content) {
		b->failed = true;
		return;
	}
	summarize_content(b, m, content);
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
	if (messages_size(c) / 4 <= cfg->agent->context_budget)
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
	int r = add_event(s, "agent.thread_context_compacted", payload, err);
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
	r = build_request(cfg, &c, &s->request, &s->request_len, err);
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
		struct use *u = NULL;
		if (!strcmp(t, "user.message") || !strcmp(t, "system.message")) {
			effective = true;
		} else if (!strcmp(t, "user.tool_confirmation")) {
			u = find_use(f, f->pending[i].use_id);
			if (u && !u->custom && !u->answered)
				effective = answers = true;
		} else if (!strcmp(t, "user.custom_tool_result")) {
			u = find_use(f, f->pending[i].use_id);
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
	*t = (struct cr_harness_tool){ strdup(u->id), strdup(u->name),
				       json_loadb(u->input.p, u->input.n, 0, NULL) };
	return t->tool_use_id && t->name && t->input ? 0 : oom(err);
}

/* Whether v is an array of the strings of ids, in order. */
static bool same_ids(struct fold *f, struct jtext v, const json_t *ids)
{
	struct jt_iter it = jt_elements(v);
	struct jtext id;
	size_t n = 0;
	while (jt_next(&it, &id)) {
		const char *s = cstr(f, id);
		if (!s || n >= json_array_size(ids) ||
		    strcmp(s, json_string_value(json_array_get(ids, n))) != 0)
			return false;
		n++;
	}
	return jt_array(v) && n == json_array_size(ids);
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
	if (jt_streq(jt_get(f->idle_reason, "type"), "requires_action") &&
	    same_ids(f, jt_get(f->idle_reason, "event_ids"), ask)) {
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
		bool retrying = f->retry_status.p ? jt_streq(f->retry_status, "retrying")
						  : f->failures - 1 < cfg->retries;
		if (retrying)
			return model_step(cfg, f, retry_delay(f->failures), s, err);
		return add_idle(s, "retries_exhausted", err);
	}
	if (f->call == CALL_OK && !f->content_after_call) {
		if (jt_streq(f->stop_reason, "pause_turn"))
			return model_step(cfg, f, 0, s, err);
		if (jt_streq(f->stop_reason, "refusal")) {
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
	free(s->request);
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
