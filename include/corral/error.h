/* util/error: the error every fallible corral call fills in. A function returns 0 (or a
 * non-negative count) on success and a negative errno on failure, with err->msg saying what
 * failed, on what, and why, in words a user can act on. err may be NULL. */
#ifndef CORRAL_ERROR_H
#define CORRAL_ERROR_H

#include <stddef.h>

struct cr_error {
	int code; /* positive errno */
	char msg[256];
};

/* Sets err to code and the formatted message; returns -code. */
int cr_error_set(struct cr_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cr_error_set, appending ": <strerror(errnum)>"; returns -errnum. */
int cr_error_errno(struct cr_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes err's message with the formatted context ("context: message"); returns -err->code. */
int cr_error_prefix(struct cr_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Short symbolic errno name ("EPERM"), or "E?" for one it does not know. */
const char *cr_errno_name(int errnum);

#endif
