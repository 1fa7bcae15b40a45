/* util/strutil: small string helpers: kernel file contents ("memory pids cpu",
 * "lockdown,capability,bpf") and the numbers of command lines. */
#ifndef CORRAL_STRUTIL_H
#define CORRAL_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Separators of the word lists the kernel prints: space, tab, newline, comma. */
#define CR_WORD_SEPARATORS " \t\n,"

/* Removes trailing whitespace in place; returns s. */
char *cr_strip(char *s);

/* Whether the len bytes at word are one of the words of list. */
bool cr_word_in(const char *list, const char *word, size_t len);

/* s as a decimal number: digits only (no sign, space or prefix), the whole string, within
 * [min, max]. -EINVAL when it is not such a number, -ERANGE when it is outside. */
int cr_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

#endif
