/* util/json: checks that bytes are one JSON text without building it. The log checks every
 * payload on the append path with it, where a parse that allocates a tree only to free it cost
 * more than the rest of the append. What it accepts is exactly what jansson's
 * json_loadb(JSON_DECODE_ANY) loads, so that an event that got into the log always loads again
 * later: RFC 8259, plus jansson's limits (integers within int64, reals that do not overflow a
 * double, no \u0000 in strings, at most 2048 nested arrays and objects). Duplicate keys are
 * accepted, as jansson does. One difference, on the strict side: a NUL byte is refused
 * wherever it is, where jansson drops one that follows a number. */
#ifndef CORRAL_JSON_H
#define CORRAL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <corral/error.h>

/* The length of the UTF-8 sequence at p (2 to 4 bytes, as jansson accepts them: no overlong
 * forms, surrogates or values past U+10FFFF), or 0 when the bytes at p are not one. For the
 * scanners of JSON text (this one, the harness's). */
size_t cr_json_utf8_seq(const unsigned char *p, const unsigned char *end);

/* Whether any of the 8 bytes of w is a control character, '"', '\\' or non-ASCII: where a scan
 * of a JSON string must stop, tested a word at a time (the classic tests for a byte below n,
 * (w - n*ONES) & ~w & HIGHS, and for a zero byte). */
static inline bool cr_json_word_special(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t quote = w ^ ('"' * ones), backslash = w ^ ('\\' * ones);
	uint64_t below_space = (w - 0x20 * ones) & ~w;
	uint64_t zero_quote = (quote - ones) & ~quote,
		 zero_backslash = (backslash - ones) & ~backslash;
	return ((below_space | zero_quote | zero_backslash) & highs) || (w & highs);
}

/* Deepest nesting of arrays and objects accepted (jansson's JSON_PARSER_MAX_DEPTH). */
#define CR_JSON_MAX_DEPTH 2048

enum cr_json_kind {
	CR_JSON_OBJECT = 1,
	CR_JSON_ARRAY,
	CR_JSON_STRING,
	CR_JSON_NUMBER,
	CR_JSON_TRUE,
	CR_JSON_FALSE,
	CR_JSON_NULL,
};

/* Checks that the len bytes at buf are one JSON value, with only whitespace around it. Returns
 * the kind of that value (> 0), or -EINVAL with err saying what is wrong and at which byte
 * offset ("invalid escape \q in a string at byte 17"). */
int cr_json_check(const char *buf, size_t len, struct cr_error *err);

#endif
