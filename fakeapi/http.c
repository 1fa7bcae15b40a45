/* fakeapi/http: HTTP/1.1 on one connection, as much as API clients use: a request line,
 * headers, a Content-Length or chunked body, keep-alive; responses whole or chunked, each
 * response (or chunk) in one write, so that a client sees it when it is sent and no later. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fakeapi/fakeapi-internal.h"

void http_request_clear(struct http_request *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->body);
	memset(r, 0, sizeof(*r));
}

const char *http_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

/* Reads more into c->buf; false at end of file or error. */
static bool fill(struct http_conn *c)
{
	if (c->cap - c->len < 65536) {
		size_t cap = c->cap ? c->cap * 2 : 131072;
		char *b = realloc(c->buf, cap);
		if (!b)
			return false;
		c->buf = b;
		c->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		return true;
	}
}

/* Drops the first n bytes of the buffer. */
static void consume(struct http_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	if (c->buf)
		c->buf[c->len] = '\0';
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* Parses the head (request line and headers, NUL-terminated, CRLF lines). */
static enum http_read parse_head(char *head, struct http_request *r)
{
	char *save, *line = strtok_r(head, "\r\n", &save);
	char version[16];
	if (!line || sscanf(line, "%15s %1023s %15s", r->method, r->path, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)version[7]))
		return HTTP_BAD;
	r->minor = version[7] - '0';
	r->keep_alive = r->minor >= 1;
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		char *colon = strchr(line, ':');
		if (!colon || colon == line || r->nheaders == HTTP_HEADERS_MAX)
			return HTTP_BAD;
		*colon = '\0';
		for (char *p = line; *p; p++) {
			if (*p == ' ' || *p == '\t')
				return HTTP_BAD;
			*p = (char)tolower((unsigned char)*p);
		}
		r->headers[r->nheaders].name = strdup(line);
		r->headers[r->nheaders].value = strdup(trim(colon + 1));
		if (!r->headers[r->nheaders].name || !r->headers[r->nheaders].value)
			return HTTP_BAD;
		r->nheaders++;
	}
	const char *conn = http_header(r, "connection");
	if (conn && strcasecmp(conn, "close") == 0)
		r->keep_alive = false;
	if (conn && strcasecmp(conn, "keep-alive") == 0)
		r->keep_alive = true;
	return HTTP_OK;
}

/* A chunked body: size lines, data, a final 0 chunk and its (ignored) trailers. */
static enum http_read read_chunked(struct http_conn *c, size_t max_body, struct http_request *r)
{
	size_t off = 0, total = 0;
	char *body = NULL;
	for (;;) {
		char *eol;
		while (!(eol = memmem(c->buf + off, c->len - off, "\r\n", 2)))
			if (!fill(c))
				goto bad;
		char *end;
		unsigned long long n = strtoull(c->buf + off, &end, 16);
		if (end == c->buf + off)
			goto bad;
		off = (size_t)(eol - c->buf) + 2;
		if (n == 0) {
			/* trailers up to an empty line */
			for (;;) {
				while (!(eol = memmem(c->buf + off, c->len - off, "\r\n", 2)))
					if (!fill(c))
						goto bad;
				size_t l = (size_t)(eol - (c->buf + off));
				off += l + 2;
				if (l == 0)
					break;
			}
			consume(c, off);
			r->body = body ? body : strdup("");
			r->body_len = total;
			return r->body ? HTTP_OK : HTTP_BAD;
		}
		if (n > max_body || total + n > max_body) {
			free(body);
			return HTTP_TOO_LARGE;
		}
		while (c->len - off < n + 2)
			if (!fill(c))
				goto bad;
		char *nb = realloc(body, total + n + 1);
		if (!nb)
			goto bad;
		body = nb;
		memcpy(body + total, c->buf + off, n);
		total += n;
		body[total] = '\0';
		off += n;
		if (memcmp(c->buf + off, "\r\n", 2) != 0)
			goto bad;
		off += 2;
		consume(c, off);
		off = 0;
	}
bad:
	free(body);
	return HTTP_BAD;
}

enum http_read http_read_request(struct http_conn *c, size_t max_body, struct http_request *r)
{
	memset(r, 0, sizeof(*r));
	char *end;
	while (!(end = c->buf ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL)) {
		if (c->len > HTTP_HEAD_MAX)
			return HTTP_HEAD_TOO_LARGE;
		if (!fill(c))
			return c->len ? HTTP_BAD : HTTP_CLOSED;
	}
	size_t head_len = (size_t)(end - c->buf) + 4;
	char *head = strndup(c->buf, head_len - 2);
	if (!head)
		return HTTP_BAD;
	enum http_read res = parse_head(head, r);
	free(head);
	consume(c, head_len);
	if (res != HTTP_OK)
		return res;
	const char *te = http_header(r, "transfer-encoding");
	if (te && strcasecmp(te, "chunked") == 0)
		return read_chunked(c, max_body, r);
	if (te)
		return HTTP_BAD;
	const char *cl = http_header(r, "content-length");
	unsigned long long n = 0;
	if (cl) {
		char *e;
		errno = 0;
		n = strtoull(cl, &e, 10);
		if (errno || e == cl || *e || cl[0] == '-')
			return HTTP_BAD;
	}
	if (n > max_body) {
		/* Read it to its end first (up to a bound), as a real server does: a client still
		 * sending its body would not read the 413, only a reset connection. */
		if (n <= HTTP_DRAIN_MAX) {
			while (n > 0) {
				size_t drop = c->len < n ? c->len : (size_t)n;
				consume(c, drop);
				n -= drop;
				if (n > 0 && !fill(c))
					break;
			}
		}
		return HTTP_TOO_LARGE;
	}
	while (c->len < n)
		if (!fill(c))
			return HTTP_BAD;
	r->body = malloc(n + 1);
	if (!r->body)
		return HTTP_BAD;
	memcpy(r->body, c->buf, n);
	r->body[n] = '\0';
	r->body_len = n;
	consume(c, n);
	return HTTP_OK;
}

bool http_write(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Writes all of iov[0..n); false when the client has gone. Changes iov. */
static bool write_iov(int fd, struct iovec *iov, size_t n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
	while (m.msg_iovlen > 0) {
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		size_t done = (size_t)w;
		while (m.msg_iovlen > 0 && done >= m.msg_iov->iov_len) {
			done -= m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen > 0) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + done;
			m.msg_iov->iov_len -= done;
		}
	}
	return true;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Overloaded";
	default:
		return "Status";
	}
}

bool http_respond_cut(int fd, int status, const char *content_type, const char *extra_headers,
		      const char *body, size_t len, size_t cut, bool keep_alive)
{
	char head[2048];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: %s\r\n%s\r\n",
			 status, http_reason(status), content_type, len,
			 keep_alive ? "keep-alive" : "close", extra_headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return false;
	struct iovec iov[] = { { head, (size_t)n }, { (char *)body, cut < len ? cut : len } };
	return write_iov(fd, iov, 2);
}

bool http_respond(int fd, int status, const char *content_type, const char *extra_headers,
		  const char *body, size_t len, bool keep_alive)
{
	return http_respond_cut(fd, status, content_type, extra_headers, body, len, len,
				keep_alive);
}

bool http_stream_start(int fd, int status, const char *content_type, const char *extra_headers,
		       bool keep_alive)
{
	char head[2048];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
			 "Cache-Control: no-cache\r\nConnection: %s\r\n%s\r\n",
			 status, http_reason(status), content_type,
			 keep_alive ? "keep-alive" : "close", extra_headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return false;
	return http_write(fd, head, (size_t)n);
}

/* The chunk's size line, its first cut bytes and, when it is whole, its end. */
static bool chunk(int fd, const char *buf, size_t len, size_t cut)
{
	char size[32];
	int n = snprintf(size, sizeof(size), "%zx\r\n", len);
	struct iovec iov[] = { { size, (size_t)n }, { (char *)buf, cut }, { "\r\n", 2 } };
	return write_iov(fd, iov, cut < len ? 2 : 3);
}

bool http_chunk(int fd, const char *buf, size_t len)
{
	if (len == 0)
		return http_write(fd, "0\r\n\r\n", 5);
	return chunk(fd, buf, len, len);
}

bool http_chunk_cut(int fd, const char *buf, size_t len, size_t cut)
{
	return chunk(fd, buf, len, cut < len ? cut : len);
}
