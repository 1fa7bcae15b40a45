/* util/strutil: small string helpers for kernel file contents ("memory pids cpu",
 * "lockdown,capability,bpf"). */
#ifndef CORRAL_STRUTIL_H
#define CORRAL_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Separators of the word lists the kernel prints: space, tab, newline, comma. */
#define CR_WORD_SEPARATORS " \t\n,"

/* Removes trailing whitespace in place; returns s. */
char *cr_strip(char *s);

/* Whether the len bytes at word are one of the words of list. */
bool cr_word_in(const char *list, const char *word, size_t len);

#endif
