/* Unit tests of util/json: cr_json_check() against a table of edge cases and, differentially,
 * against jansson itself on generated and mutated documents: for every input both must agree
 * on accept or reject (and on the kind of the value), since the log relies on everything it
 * admitted loading again with jansson. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "corral/json.h"
#include "helpers.h"

static int jansson_kind(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
	if (!j)
		return -EINVAL;
	int kind = json_is_object(j)   ? CR_JSON_OBJECT
		   : json_is_array(j)  ? CR_JSON_ARRAY
		   : json_is_string(j) ? CR_JSON_STRING
		   : json_is_number(j) ? CR_JSON_NUMBER
		   : json_is_true(j)   ? CR_JSON_TRUE
		   : json_is_false(j)  ? CR_JSON_FALSE
				       : CR_JSON_NULL;
	json_decref(j);
	return kind;
}

/* Exact agreement, but for one quirk of jansson's: it drops a NUL byte that follows a number
 * ("[1\0]" loads), where cr_json_check refuses a NUL byte anywhere. Stricter is safe: all that
 * must hold is that what cr_json_check accepts, jansson loads. */
static void check_agrees(const char *buf, size_t len)
{
	struct cr_error err = { 0 };
	int mine = cr_json_check(buf, len, &err);
	int theirs = jansson_kind(buf, len);
	if (memchr(buf, 0, len)) {
		cr_assert_eq(mine, -EINVAL, "a NUL byte accepted in \"%.*s\"", (int)len, buf);
		return;
	}
	if (mine != theirs) {
		fprintf(stderr, "disagreement on %zu bytes:", len);
		for (size_t i = 0; i < len && i < 200; i++)
			fprintf(stderr, " %02x", (unsigned char)buf[i]);
		fprintf(stderr, "\n");
	}
	cr_assert_eq(mine, theirs, "cr_json_check %d (%s), jansson %d on \"%.*s\"", mine,
		     mine < 0 ? err.msg : "ok", theirs, (int)(len < 200 ? len : 200), buf);
}

struct json_case {
	const char *text;
	int kind; /* expected: > 0 accepted as that kind, -EINVAL refused */
};

Test(json, edge_cases_match_expectation_and_jansson)
{
	static const struct json_case cases[] = {
		{ "{}", CR_JSON_OBJECT },
		{ " \t\r\n{ \"a\" : [ 1 , -0 , 0.5 , 1e3 , -1E-3 , true , false , null ] } \n",
		  CR_JSON_OBJECT },
		{ "[]", CR_JSON_ARRAY },
		{ "\"\"", CR_JSON_STRING },
		{ "0", CR_JSON_NUMBER },
		{ "true", CR_JSON_TRUE },
		{ "false", CR_JSON_FALSE },
		{ "null", CR_JSON_NULL },
		{ "{\"a\":1,\"a\":2}",
		  CR_JSON_OBJECT }, /* duplicate keys: jansson keeps the last */
		{ "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"", CR_JSON_STRING },
		{ "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"",
		  CR_JSON_STRING },
		{ "9223372036854775807", CR_JSON_NUMBER },
		{ "-9223372036854775808", CR_JSON_NUMBER },
		{ "9223372036854775808", -EINVAL },
		{ "-9223372036854775809", -EINVAL },
		{ "12345678901234567890", -EINVAL },
		{ "1.7976931348623157e308", CR_JSON_NUMBER },
		{ "17976931348623157000000000000000000000000000000000000000000000000000000000000000"
		  "0"
		  "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
		  "0"
		  "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
		  "0"
		  "00000000000000000000000000000000000000000000000000000000000000000.0",
		  CR_JSON_NUMBER },
		{ "1.8e308", -EINVAL },
		{ "-1e309", -EINVAL },
		{ "0.0000001e310", CR_JSON_NUMBER },
		{ "1e-400", CR_JSON_NUMBER }, /* underflow is not an error */
		{ "1e99999999999999999999", -EINVAL },
		{ "", -EINVAL },
		{ "   ", -EINVAL },
		{ "{", -EINVAL },
		{ "{\"a\"}", -EINVAL },
		{ "{\"a\":}", -EINVAL },
		{ "{\"a\":1,}", -EINVAL },
		{ "[1,]", -EINVAL },
		{ "[,1]", -EINVAL },
		{ "{1:2}", -EINVAL },
		{ "{'a':1}", -EINVAL },
		{ "{}{}", -EINVAL },
		{ "{} x", -EINVAL },
		{ "01", -EINVAL },
		{ "-", -EINVAL },
		{ "1.", -EINVAL },
		{ ".5", -EINVAL },
		{ "1e", -EINVAL },
		{ "1e+", -EINVAL },
		{ "+1", -EINVAL },
		{ "0x10", -EINVAL },
		{ "NaN", -EINVAL },
		{ "Infinity", -EINVAL },
		{ "tru", -EINVAL },
		{ "truee", -EINVAL },
		{ "nul", -EINVAL },
		{ "\"abc", -EINVAL },
		{ "\"a\tb\"", -EINVAL }, /* raw control character */
		{ "\"\\u0000\"", -EINVAL },
		{ "\"\\uD800\"", -EINVAL },
		{ "\"\\uD800\\u0041\"", -EINVAL },
		{ "\"\\uDC00\"", -EINVAL },
		{ "\"\\u12\"", -EINVAL },
		{ "\"\\u12G4\"", -EINVAL },
		{ "\"\\x41\"", -EINVAL },
		{ "\"\\", -EINVAL },
		{ "\"\xc0\xaf\"", -EINVAL }, /* overlong '/' */
		{ "\"\xe0\x80\xaf\"", -EINVAL }, /* overlong, 3 bytes */
		{ "\"\xed\xa0\x80\"", -EINVAL }, /* a surrogate in UTF-8 */
		{ "\"\xf4\x90\x80\x80\"", -EINVAL }, /* above U+10FFFF */
		{ "\"\xf5\x80\x80\x80\"", -EINVAL },
		{ "\"\x80\"", -EINVAL },
		{ "\"\xc3\"", -EINVAL },
		{ "\"\xe2\x82\"", -EINVAL },
		{ "\xef\xbb\xbf{}", -EINVAL }, /* a byte order mark */
		{ "[\xc3\xa9]", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct json_case *c = &cases[i];
		struct cr_error err = { 0 };
		int r = cr_json_check(c->text, strlen(c->text), &err);
		cr_assert_eq(r, c->kind, "case %zu \"%s\": got %d (%s)", i, c->text, r,
			     r < 0 ? err.msg : "ok");
		if (r < 0) {
			cr_assert_eq(err.code, EINVAL);
			cr_assert(strstr(err.msg, " at byte "), "no position in \"%s\"", err.msg);
		}
		check_agrees(c->text, strlen(c->text));
	}
}

Test(json, a_nul_byte_is_refused_anywhere)
{
	static const char with_nul[][8] = { "{\0}", "[1\0]", "\"a\0b\"", "{}\0" };
	static const size_t lens[] = { 3, 4, 5, 3 };
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(cr_json_check(with_nul[i], lens[i], NULL), -EINVAL, "case %zu", i);
		check_agrees(with_nul[i], lens[i]);
	}
}

Test(json, error_names_the_byte)
{
	struct cr_error err;
	cr_assert_eq(cr_json_check("{\"type\": \"a\\qb\"}", 16, &err), -EINVAL);
	cr_assert_str_eq(err.msg, "invalid escape in a string at byte 11");
	cr_assert_eq(cr_json_check("{\"n\": 99999999999999999999}", 27, &err), -EINVAL);
	cr_assert_str_eq(err.msg, "integer outside the 64-bit range at byte 6");
}

/* depth arrays around an empty object: [[[...{}...]]] */
static char *nested(size_t depth, size_t *ret_len)
{
	char *s = malloc(2 * depth);
	cr_assert_not_null(s);
	for (size_t i = 0; i < depth; i++) {
		s[i] = i + 1 == depth ? '{' : '[';
		s[depth + i] = i == 0 ? '}' : ']';
	}
	*ret_len = 2 * depth;
	return s;
}

Test(json, nesting_bound_is_janssons)
{
	size_t len;
	char *ok = nested(CR_JSON_MAX_DEPTH, &len);
	cr_assert_eq(cr_json_check(ok, len, NULL), CR_JSON_ARRAY);
	check_agrees(ok, len);
	free(ok);
	struct cr_error err;
	char *deep = nested(CR_JSON_MAX_DEPTH + 1, &len);
	cr_assert_eq(cr_json_check(deep, len, &err), -EINVAL);
	cr_assert(strstr(err.msg, "nested too deep"), "%s", err.msg);
	check_agrees(deep, len);
	free(deep);
}

/* --- differential fuzzing ----------------------------------------------------------------- */

struct gen {
	uint64_t state;
	char *buf;
	size_t len, cap;
};

static uint64_t rnd(struct gen *g)
{
	g->state ^= g->state << 13;
	g->state ^= g->state >> 7;
	g->state ^= g->state << 17;
	return g->state;
}

static void put(struct gen *g, const char *s, size_t n)
{
	if (g->len + n > g->cap) {
		g->cap = (g->len + n) * 2;
		g->buf = realloc(g->buf, g->cap);
		cr_assert_not_null(g->buf);
	}
	memcpy(g->buf + g->len, s, n);
	g->len += n;
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void gen_ws(struct gen *g)
{
	static const char *ws[] = { "", "", "", " ", "\n", "\t ", "\r\n" };
	puts_(g, ws[rnd(g) % 7]);
}

static void gen_string(struct gen *g)
{
	static const char *pieces[] = {
		"a",
		"key",
		"type",
		" ",
		"\\\"",
		"\\\\",
		"\\/",
		"\\n",
		"\\t",
		"\\u00e9",
		"\\u0041",
		"\\uD83D\\uDE00",
		"\\u20AC",
		"\xc3\xa9",
		"\xe2\x82\xac",
		"\xf0\x9f\x98\x80",
		"0",
		"{",
		"]",
		":",
		",",
		/* long runs: mutations land in the 8-byte fast path at every alignment */
		"the quick brown fox jumps over the lazy dog",
		"0123456789abcdefghijklmnopqrstuv",
	};
	put(g, "\"", 1);
	for (uint64_t n = rnd(g) % 6; n > 0; n--)
		puts_(g, pieces[rnd(g) % (sizeof(pieces) / sizeof(pieces[0]))]);
	put(g, "\"", 1);
}

static void gen_number(struct gen *g)
{
	static const char *nums[] = {
		"0",
		"-0",
		"1",
		"-1",
		"42",
		"3.25",
		"-0.5",
		"1e10",
		"1E-7",
		"2.5e+3",
		"9223372036854775807",
		"-9223372036854775808",
		"9223372036854775808",
		"1.7976931348623157e308",
		"1.8e308",
		"1e308",
		"10e308",
		"0.1e309",
		"123456789e300",
		"1e-400",
	};
	puts_(g, nums[rnd(g) % (sizeof(nums) / sizeof(nums[0]))]);
}

static void gen_value(struct gen *g, int depth)
{
	uint64_t k = rnd(g) % (depth > 5 ? 4 : 7);
	switch (k) {
	case 0:
		gen_string(g);
		break;
	case 1:
		gen_number(g);
		break;
	case 2: {
		static const char *lits[] = { "true", "false", "null" };
		puts_(g, lits[rnd(g) % 3]);
		break;
	}
	case 3:
	case 4:
	case 5: {
		put(g, "{", 1);
		for (uint64_t n = rnd(g) % 4, i = 0; i < n; i++) {
			if (i)
				put(g, ",", 1);
			gen_ws(g);
			gen_string(g);
			gen_ws(g);
			put(g, ":", 1);
			gen_ws(g);
			gen_value(g, depth + 1);
			gen_ws(g);
		}
		put(g, "}", 1);
		break;
	}
	default: {
		put(g, "[", 1);
		for (uint64_t n = rnd(g) % 4, i = 0; i < n; i++) {
			if (i)
				put(g, ",", 1);
			gen_ws(g);
			gen_value(g, depth + 1);
			gen_ws(g);
		}
		put(g, "]", 1);
		break;
	}
	}
}

static void mutate(struct gen *g)
{
	static const char interesting[] =
		"{}[]\",:\\u0-.eE+ \t\n\x00\x01\x7f\x80\xbf\xc0\xc3\xed\xf4\xf5\xff";
	for (uint64_t n = 1 + rnd(g) % 3; n > 0 && g->len > 0; n--) {
		size_t at = rnd(g) % g->len;
		switch (rnd(g) % 5) {
		case 0: /* overwrite a byte */
			g->buf[at] = interesting[rnd(g) % (sizeof(interesting) - 1)];
			break;
		case 1: /* flip a bit */
			g->buf[at] ^= (char)(1u << rnd(g) % 8);
			break;
		case 2: /* delete a byte */
			memmove(g->buf + at, g->buf + at + 1, g->len - at - 1);
			g->len--;
			break;
		case 3: /* truncate */
			g->len = at;
			break;
		default: { /* insert a byte */
			char c = interesting[rnd(g) % (sizeof(interesting) - 1)];
			put(g, &c, 1);
			memmove(g->buf + at + 1, g->buf + at, g->len - at - 1);
			g->buf[at] = c;
			break;
		}
		}
	}
}

Test(json, agrees_with_jansson_on_generated_and_mutated_documents, .timeout = 120)
{
	struct gen g = { .state = 0x9e3779b97f4a7c15ull };
	size_t accepted = 0, refused = 0;
	for (int i = 0; i < 200000; i++) {
		g.len = 0;
		gen_ws(&g);
		gen_value(&g, 0);
		gen_ws(&g);
		if (i % 4)
			mutate(&g);
		struct cr_error err;
		if (cr_json_check(g.buf, g.len, &err) > 0)
			accepted++;
		else
			refused++;
		check_agrees(g.buf, g.len);
	}
	free(g.buf);
	/* both outcomes well represented, or the comparison proves little */
	cr_assert_gt(accepted, 40000);
	cr_assert_gt(refused, 40000);
}
