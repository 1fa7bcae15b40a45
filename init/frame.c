/* init/frame: the frames of the init protocol (include/corral/initproto.h), compiled into both
 * corral-init (static) and libcorral, so the two ends cannot disagree. Libc and jansson only;
 * it never prints and never exits. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/initproto.h"

int cr_init_frame_encode(const json_t *msg, char **ret_frame, size_t *ret_len, struct cr_error *err)
{
	size_t len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	if (len == 0)
		return cr_error_set(err, EINVAL, "cannot encode the message as JSON");
	if (len > CR_INIT_FRAME_MAX)
		return cr_error_set(err, EMSGSIZE,
				    "message of %zu bytes exceeds the %u-byte frame limit", len,
				    CR_INIT_FRAME_MAX);
	char *frame = malloc(CR_INIT_FRAME_HEADER + len);
	if (!frame)
		return cr_error_errno(err, ENOMEM, "frame of %zu bytes", len);
	if (json_dumpb(msg, frame + CR_INIT_FRAME_HEADER, len, JSON_COMPACT) != len) {
		free(frame);
		return cr_error_set(err, EINVAL, "cannot encode the message as JSON");
	}
	frame[0] = (char)(len >> 24);
	frame[1] = (char)(len >> 16);
	frame[2] = (char)(len >> 8);
	frame[3] = (char)len;
	*ret_frame = frame;
	*ret_len = CR_INIT_FRAME_HEADER + len;
	return 0;
}

uint32_t cr_init_frame_length(const unsigned char header[CR_INIT_FRAME_HEADER])
{
	return (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 |
	       header[3];
}

int cr_init_frame_decode(const char *payload, size_t len, json_t **ret_msg, struct cr_error *err)
{
	json_error_t jerr;
	json_t *msg = json_loadb(payload, len, 0, &jerr);
	if (!msg)
		return cr_error_set(err, EBADMSG, "malformed JSON at byte %d: %s", jerr.position,
				    jerr.text);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return cr_error_set(err, EBADMSG, "malformed message: not a JSON object");
	}
	*ret_msg = msg;
	return 0;
}

/* Waits until fd is ready for events or the deadline (-1: none) passes: 1 ready, 0 timed
 * out, negative errno. A hang-up counts as ready: the read or write then says what happened. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - cr_now_ms();
			if (left <= 0)
				return 0;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 1;
	}
}

int cr_init_send(int fd, const json_t *msg, int timeout_ms, struct cr_error *err)
{
	_cleanup_free_ char *frame = NULL;
	size_t len;
	int r = cr_init_frame_encode(msg, &frame, &len, err);
	if (r < 0)
		return r;
	int64_t deadline = timeout_ms < 0 ? -1 : cr_now_ms() + timeout_ms;
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, frame + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return cr_error_errno(err, errno, "send to corral-init");
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return cr_error_errno(err, -r, "poll");
		if (r == 0)
			return cr_error_set(
				err, ETIMEDOUT,
				"send to corral-init: timed out after %d ms (%zu of %zu "
				"bytes sent; the connection is out of step)",
				timeout_ms, off, len);
	}
	return 0;
}

/* Reads exactly len bytes into buf. *got says how many came before a failure. */
static int read_exact(int fd, void *buf, size_t len, int64_t deadline, size_t *got,
		      struct cr_error *err)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = recv(fd, (char *)buf + *got, len - *got, MSG_DONTWAIT);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return cr_error_set(err, ECONNRESET, "corral-init closed the connection");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return cr_error_errno(err, errno, "receive from corral-init");
		int r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return cr_error_errno(err, -r, "poll");
		if (r == 0)
			return cr_error_set(err, ETIMEDOUT, "receive from corral-init: timed out");
	}
	return 0;
}

/* A frame that stopped in the middle: whatever the cause (in err), the stream is out of step. */
static int cut_short(struct cr_error *err, const char *what, size_t got, size_t want)
{
	cr_error_prefix(err, "%s cut short after %zu of %zu bytes, the connection is out of step",
			what, got, want);
	if (err)
		err->code = EPROTO;
	return -EPROTO;
}

int cr_init_recv(int fd, int timeout_ms, json_t **ret_msg, struct cr_error *err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : cr_now_ms() + timeout_ms;
	unsigned char header[CR_INIT_FRAME_HEADER];
	size_t got;
	int r = read_exact(fd, header, sizeof(header), deadline, &got, err);
	if (r == -ETIMEDOUT && got == 0)
		return cr_error_set(err, ETIMEDOUT, "no answer from corral-init within %d ms",
				    timeout_ms);
	if (r == -ETIMEDOUT)
		return cut_short(err, "frame header", got, sizeof(header));
	if (r < 0)
		return r;
	uint32_t len = cr_init_frame_length(header);
	if (len > CR_INIT_FRAME_MAX)
		return cr_error_set(
			err, EPROTO,
			"frame of %u bytes exceeds the %u-byte limit; the connection is "
			"out of step",
			len, CR_INIT_FRAME_MAX);
	_cleanup_free_ char *payload = malloc(len ? len : 1);
	if (!payload)
		return cr_error_errno(err, ENOMEM, "frame of %u bytes", len);
	r = read_exact(fd, payload, len, deadline, &got, err);
	if (r == -ETIMEDOUT)
		return cut_short(err, "frame", got, len);
	if (r < 0)
		return r;
	return cr_init_frame_decode(payload, len, ret_msg, err);
}
