/* util/id: public object ids: a prefix ("sesn_", "sevt_", ...) and 26 characters of base32
 * over 128 random bits from getrandom(): unguessable. */
#ifndef CORRAL_ID_H
#define CORRAL_ID_H

#include <stddef.h>
#include <stdint.h>

#include "corral/error.h"

#define CR_ID_RAW 16 /* random bytes in an id */

/* 16 random bytes for an id. */
int cr_id_random(uint8_t raw[CR_ID_RAW], struct cr_error *err);

#include <stdbool.h>

#define CR_ID_CHARS 26 /* base32 characters after the prefix */

/* Writes prefix + base32(raw) to out (size bytes); -ENAMETOOLONG if it does not fit. */
int cr_id_format(const char *prefix, const uint8_t raw[CR_ID_RAW], char *out, size_t size);

/* Whether s has the shape of an id with that prefix: the prefix, then CR_ID_CHARS of [a-z0-9]
 * (so it is safe as a file name: no '/', no dots). */
bool cr_id_valid(const char *prefix, const char *s);

/* The 16 bytes behind an id that cr_id_format made with prefix: the inverse of cr_id_format.
 * -EINVAL when s is not such an id (wrong prefix or length, a character outside the alphabet,
 * padding bits set). */
int cr_id_parse(const char *prefix, const char *s, uint8_t raw[CR_ID_RAW]);

#endif
