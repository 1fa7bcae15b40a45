/* util/error: filling struct cr_error. Never prints and never exits: callers decide. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "corral/error.h"

static int vset(struct cr_error *err, int code, const char *suffix, const char *fmt, va_list ap)
{
	if (code <= 0)
		code = EIO;
	if (err) {
		int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		if (suffix && n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", suffix);
		err->code = code;
	}
	return -code;
}

int cr_error_set(struct cr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return r;
}

int cr_error_errno(struct cr_error *err, int errnum, const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	if (errnum <= 0)
		errnum = EIO;
	const char *s = strerror_r(errnum, buf, sizeof(buf));
	va_start(ap, fmt);
	int r = vset(err, errnum, s, fmt, ap);
	va_end(ap);
	return r;
}

int cr_error_prefix(struct cr_error *err, const char *fmt, ...)
{
	char prefix[sizeof(err->msg)];
	char old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return -EIO;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Keeps what fits: the start of a message says the most. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) >= (int)sizeof(err->msg))
		err->msg[sizeof(err->msg) - 1] = '\0';
	return -(err->code > 0 ? err->code : EIO);
}

const char *cr_errno_name(int errnum)
{
	const char *name = strerrorname_np(errnum);
	return name ? name : "E?";
}
