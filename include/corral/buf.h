/* util/buf: a growable byte buffer, always NUL-terminated after its bytes (so it can be read as
 * a string when it holds text). The one buffer the parsers and clients append to. */
#ifndef CORRAL_BUF_H
#define CORRAL_BUF_H

#include <stddef.h>

struct cr_buf {
	char *p; /* NULL until the first append */
	size_t len, cap;
};

/* Appends n bytes of s, growing by doubling; -ENOMEM (b unchanged) without memory. */
int cr_buf_add(struct cr_buf *b, const void *s, size_t n);
/* Appends the string s. */
int cr_buf_str(struct cr_buf *b, const char *s);
/* Empties b, keeping its memory. */
static inline void cr_buf_reset(struct cr_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}
/* Frees b's memory and empties it. */
void cr_buf_free(struct cr_buf *b);

#endif
