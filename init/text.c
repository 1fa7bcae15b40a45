/* init/text: turning bytes from commands and files into JSON text (valid UTF-8 kept, anything
 * else escaped as "\xNN", so a response is always valid JSON) and capping a command's output
 * streams. Never touches processes or the connection. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "init/init-internal.h"

void *cr_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "corral-init: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

void *cr_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "corral-init: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

char *cr_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(cr_xmalloc(n), s, n);
}

/* Length of the valid UTF-8 sequence at p (at most len bytes available), 0 when the bytes are
 * not one: the rules jansson checks (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t len)
{
	unsigned char c = p[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

json_t *cr_text_json(const char *buf, size_t len)
{
	if (len == 0)
		buf = ""; /* (jansson refuses NULL, even for nothing) */
	const unsigned char *p = (const unsigned char *)buf;
	/* The common case: nothing to escape, one copy. */
	size_t extra = 0;
	for (size_t i = 0; i < len;) {
		size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
		if (n == 0) {
			extra += 3;
			i++;
		} else {
			i += n;
		}
	}
	json_t *s;
	if (extra == 0) {
		s = json_stringn_nocheck(buf, len);
	} else {
		char *out = cr_xmalloc(len + extra);
		size_t o = 0;
		for (size_t i = 0; i < len;) {
			size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
			if (n == 0) {
				static const char hex[] = "0123456789abcdef";
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[i] >> 4];
				out[o++] = hex[p[i] & 15];
				i++;
			} else {
				memcpy(out + o, p + i, n);
				o += n;
				i += n;
			}
		}
		s = json_stringn_nocheck(out, o);
		free(out);
	}
	if (!s) {
		fprintf(stderr, "corral-init: out of memory (JSON string of %zu bytes)\n", len);
		abort();
	}
	return s;
}

size_t cr_utf8_trim(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t start = len;
	while (start > 0 && len - start < 3 && (p[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return len;
	start--; /* the byte that would lead the last sequence */
	unsigned char c = p[start];
	size_t n = c >= 0xc2 && c <= 0xdf   ? 2
		   : c >= 0xe0 && c <= 0xef ? 3
		   : c >= 0xf0 && c <= 0xf4 ? 4
					    : 0;
	return n > 0 && start + n > len ? start : len;
}

void cr_capture_add(struct cr_capture *c, const char *buf, size_t n)
{
	c->total += n;
	if (n == 0 || c->len >= c->cap)
		return; /* (buf may be NULL with n 0: nothing to copy) */
	size_t keep = c->cap - c->len < n ? c->cap - c->len : n;
	c->head = cr_xrealloc(c->head, c->len + keep);
	memcpy(c->head + c->len, buf, keep);
	c->len += keep;
}

json_t *cr_capture_json(const struct cr_capture *c)
{
	if (c->total == c->len)
		return cr_text_json(c->head, c->len);
	/* Bytes went past the cap: the head is cut, and not inside a character. */
	size_t kept = cr_utf8_trim(c->head, c->len);
	char marker[80];
	int m = snprintf(marker, sizeof(marker), "\n[output truncated: %llu bytes omitted]\n",
			 (unsigned long long)(c->total - kept));
	json_t *head = cr_text_json(c->head, kept);
	size_t hl = json_string_length(head);
	char *all = cr_xmalloc(hl + (size_t)m);
	memcpy(all, json_string_value(head), hl);
	memcpy(all + hl, marker, (size_t)m);
	json_t *s = json_stringn_nocheck(all, hl + (size_t)m);
	free(all);
	json_decref(head);
	if (!s)
		abort();
	return s;
}

void cr_capture_free(struct cr_capture *c)
{
	free(c->head);
	c->head = NULL;
	c->len = 0;
	c->total = 0;
}

int cr_capture_read(struct cr_capture *c, int fd, int rounds)
{
	char buf[65536];
	for (int i = 0; i < rounds; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			cr_capture_add(c, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 1;
		return -errno;
	}
	return 1; /* more may be there: the next round of the loop reads it */
}

const char *cr_signal_name(int sig)
{
	static char buf[4][16];
	static unsigned next;
	const char *abbrev = sigabbrev_np(sig);
	char *b = buf[next++ % 4];
	if (abbrev)
		snprintf(b, sizeof(buf[0]), "SIG%s", abbrev);
	else
		snprintf(b, sizeof(buf[0]), "SIG%d", sig);
	return b;
}
