/* util/json: one pass over the bytes with an explicit stack of one bit per open container;
 * nothing is allocated unless a real number is long enough to need strtod's verdict on
 * overflow. The rules follow jansson 2.14's lexer and parser (see json.h). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <corral/cleanup.h>
#include <corral/json.h>

struct scan {
	const unsigned char *start, *p, *end;
	struct cr_error *err;
};

static int fail(const struct scan *s, const unsigned char *at, const char *what)
{
	return cr_error_set(s->err, EINVAL, "%s at byte %zu", what, (size_t)(at - s->start));
}

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
		s->p++;
}

static bool is_digit(const struct scan *s, const unsigned char *q)
{
	return q < s->end && *q >= '0' && *q <= '9';
}

/* Bytes a string's fast loop must stop at: control characters, '"', '\\' and non-ASCII. */
static bool string_special(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

static int hex4(const struct scan *s, const unsigned char *q, unsigned *ret)
{
	unsigned v = 0;
	if (s->end - q < 4)
		return fail(s, q, "truncated \\u escape in a string");
	for (int i = 0; i < 4; i++) {
		unsigned char c = q[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail(s, q, "invalid \\u escape in a string");
		v = v << 4 | d;
	}
	*ret = v;
	return 0;
}

/* One backslash escape; s->p is at the backslash. */
static int scan_escape(struct scan *s)
{
	const unsigned char *at = s->p++;
	if (s->p >= s->end)
		return fail(s, at, "unterminated string");
	switch (*s->p) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		s->p++;
		return 0;
	case 'u':
		break;
	default:
		return fail(s, at, "invalid escape in a string");
	}
	unsigned cp;
	int r = hex4(s, s->p + 1, &cp);
	if (r < 0)
		return r;
	s->p += 5;
	if (cp == 0)
		return fail(s, at, "\\u0000 in a string");
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return fail(s, at, "unpaired low surrogate \\u escape in a string");
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		unsigned lo;
		if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
			return fail(s, at, "unpaired high surrogate \\u escape in a string");
		r = hex4(s, s->p + 2, &lo);
		if (r < 0)
			return r;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return fail(s, at, "unpaired high surrogate \\u escape in a string");
		s->p += 6;
	}
	return 0;
}

size_t cr_json_utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = *p;
	size_t n;
	uint32_t v;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, v = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, v = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, v = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000))
		return 0;
	return n;
}

/* One UTF-8 sequence of 2 to 4 bytes (cr_json_utf8_seq). */
static int scan_utf8(struct scan *s)
{
	const unsigned char *at = s->p;
	size_t n = cr_json_utf8_seq(at, s->end);
	if (n == 0) {
		unsigned char c = *at;
		size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
		bool lead = c >= 0xC2 && c <= 0xF4;
		return fail(s, at,
			    lead && (size_t)(s->end - at) < want ? "truncated UTF-8 in a string"
								 : "invalid UTF-8 in a string");
	}
	s->p += n;
	return 0;
}

/* A string; s->p is at its opening quote. */
static int scan_string(struct scan *s)
{
	const unsigned char *open = s->p++;
	for (;;) {
		uint64_t w;
		while (s->end - s->p >= 8 && (memcpy(&w, s->p, 8), !cr_json_word_special(w)))
			s->p += 8;
		while (s->p < s->end && !string_special(*s->p))
			s->p++;
		if (s->p >= s->end)
			return fail(s, open, "unterminated string");
		unsigned char c = *s->p;
		int r = 0;
		if (c == '"') {
			s->p++;
			return 0;
		} else if (c == '\\') {
			r = scan_escape(s);
		} else if (c < 0x20) {
			r = fail(s, s->p, "control character in a string (escape it)");
		} else {
			r = scan_utf8(s);
		}
		if (r < 0)
			return r;
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

/* Whether a real number overflows a double, as strtod() (jansson's converter) says. Most are
 * cleared by their size alone: below 10^308 there is no overflow. */
static bool real_overflows(const unsigned char *tok, size_t len, size_t int_digits, bool int_zero,
			   const unsigned char *exp, bool exp_negative)
{
	long e = 0;
	if (exp) {
		for (const unsigned char *q = exp; q < tok + len && e < 1000000; q++)
			e = e * 10 + (*q - '0');
		if (exp_negative)
			e = -e;
	}
	if ((int_zero ? 0 : (long)int_digits) + e <= 308)
		return false;
	_cleanup_free_ char *copy = strndup((const char *)tok, len);
	if (!copy)
		return true; /* cannot tell: refuse rather than store what may not load again */
	errno = 0;
	double v = strtod(copy, NULL);
	return errno == ERANGE && isinf(v);
}

/* A number; s->p is at its '-' or first digit. */
static int scan_number(struct scan *s)
{
	const unsigned char *tok = s->p, *q = s->p;
	bool negative = *q == '-';
	if (negative)
		q++;
	if (!is_digit(s, q))
		return fail(s, tok, "invalid number");
	const unsigned char *digits = q;
	if (*q == '0')
		q++;
	else
		while (is_digit(s, q))
			q++;
	size_t int_digits = (size_t)(q - digits);
	bool int_zero = *digits == '0', real = false, exp_negative = false;
	const unsigned char *exp = NULL;
	if (q < s->end && *q == '.') {
		q++;
		if (!is_digit(s, q))
			return fail(s, tok, "invalid number");
		while (is_digit(s, q))
			q++;
		real = true;
	}
	if (q < s->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < s->end && (*q == '+' || *q == '-'))
			exp_negative = *q++ == '-';
		if (!is_digit(s, q))
			return fail(s, tok, "invalid number");
		exp = q;
		while (is_digit(s, q))
			q++;
		real = true;
	}
	s->p = q;
	if (!real && !int_fits(digits, int_digits, negative))
		return fail(s, tok, "integer outside the 64-bit range");
	if (real && real_overflows(tok, (size_t)(q - tok), int_digits, int_zero, exp, exp_negative))
		return fail(s, tok, "real number overflows a double");
	return 0;
}

static int scan_literal(struct scan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, s->p, "invalid literal (want true, false or null)");
	s->p += n;
	return 0;
}

static bool innermost_is_object(const uint8_t *is_object, size_t depth)
{
	return is_object[(depth - 1) / 8] & (1u << (depth - 1) % 8);
}

int cr_json_check(const char *buf, size_t len, struct cr_error *err)
{
	struct scan s = { .start = (const unsigned char *)buf,
			  .p = (const unsigned char *)buf,
			  .end = (const unsigned char *)buf + len,
			  .err = err };
	uint8_t is_object[CR_JSON_MAX_DEPTH / 8] = { 0 };
	size_t depth = 0;
	int kind = 0, r;

	skip_ws(&s);
value:
	if (s.p >= s.end)
		return fail(&s, s.p, depth ? "unterminated array or object" : "no JSON value");
	switch (*s.p) {
	case '{':
	case '[': {
		bool object = *s.p == '{';
		if (depth == CR_JSON_MAX_DEPTH)
			return fail(&s, s.p, "arrays and objects nested too deep");
		if (!kind)
			kind = object ? CR_JSON_OBJECT : CR_JSON_ARRAY;
		if (object)
			is_object[depth / 8] |= (uint8_t)(1u << depth % 8);
		else
			is_object[depth / 8] &= (uint8_t) ~(1u << depth % 8);
		depth++;
		s.p++;
		skip_ws(&s);
		if (s.p < s.end && *s.p == (object ? '}' : ']')) {
			s.p++;
			depth--;
			goto after;
		}
		if (object)
			goto key;
		goto value;
	}
	case '"':
		kind = kind ? kind : CR_JSON_STRING;
		r = scan_string(&s);
		break;
	case 't':
		kind = kind ? kind : CR_JSON_TRUE;
		r = scan_literal(&s, "true", 4);
		break;
	case 'f':
		kind = kind ? kind : CR_JSON_FALSE;
		r = scan_literal(&s, "false", 5);
		break;
	case 'n':
		kind = kind ? kind : CR_JSON_NULL;
		r = scan_literal(&s, "null", 4);
		break;
	default:
		if (*s.p != '-' && !(*s.p >= '0' && *s.p <= '9'))
			return fail(&s, s.p, "unexpected character (want a JSON value)");
		kind = kind ? kind : CR_JSON_NUMBER;
		r = scan_number(&s);
		break;
	}
	if (r < 0)
		return r;
after:
	if (!depth)
		goto done;
	skip_ws(&s);
	if (s.p >= s.end)
		return fail(&s, s.p, "unterminated array or object");
	bool object = innermost_is_object(is_object, depth);
	if (*s.p == ',') {
		s.p++;
		skip_ws(&s);
		if (object)
			goto key;
		goto value;
	}
	if (*s.p != (object ? '}' : ']'))
		return fail(&s, s.p,
			    object ? "want ',' or '}' after an object member"
				   : "want ',' or ']' after an array element");
	s.p++;
	depth--;
	goto after;
key:
	if (s.p >= s.end)
		return fail(&s, s.p, "unterminated object");
	if (*s.p != '"')
		return fail(&s, s.p, "want a string key in an object");
	r = scan_string(&s);
	if (r < 0)
		return r;
	skip_ws(&s);
	if (s.p >= s.end || *s.p != ':')
		return fail(&s, s.p, "want ':' after an object key");
	s.p++;
	skip_ws(&s);
	goto value;
done:
	skip_ws(&s);
	if (s.p != s.end)
		return fail(&s, s.p, "extra data after the JSON value");
	return kind;
}
