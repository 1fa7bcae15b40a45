/* util/buf: the growable byte buffer (include/corral/buf.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "corral/buf.h"

int cr_buf_add(struct cr_buf *b, const void *s, size_t n)
{
	if (n > (size_t)-1 / 2 - b->len)
		return -ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int cr_buf_str(struct cr_buf *b, const char *s)
{
	return cr_buf_add(b, s, strlen(s));
}

void cr_buf_free(struct cr_buf *b)
{
	free(b->p);
	*b = (struct cr_buf){ 0 };
}
