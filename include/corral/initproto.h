/* init/frame + runtime/initclient: the wire protocol between the host and corral-init's tool
 * server (docs/init-protocol.md). A frame is a 4-byte big-endian length and that many bytes of
 * one UTF-8 JSON object. The framing here is the only copy: corral-init and libcorral both
 * link init/frame.c. The host side (cr_init_call) is for one caller at a time per fd. */
#ifndef CORRAL_INITPROTO_H
#define CORRAL_INITPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "corral/error.h"

/* Largest JSON payload of one frame, either direction. */
#define CR_INIT_FRAME_MAX (16u << 20)
/* Bytes of a frame's length header. */
#define CR_INIT_FRAME_HEADER 4
/* Longest request id, in bytes. */
#define CR_INIT_ID_MAX 128

/* Encodes msg (compact JSON) as one frame, header included, into a new buffer the caller
 * frees. -EMSGSIZE when the JSON is longer than CR_INIT_FRAME_MAX, -EINVAL when msg cannot
 * be encoded (a string that is not UTF-8). */
int cr_init_frame_encode(const json_t *msg, char **ret_frame, size_t *ret_len,
			 struct cr_error *err);

/* The payload length a frame header announces (it may exceed CR_INIT_FRAME_MAX). */
uint32_t cr_init_frame_length(const unsigned char header[CR_INIT_FRAME_HEADER]);

/* Parses one frame's payload as a JSON object; the caller owns *ret_msg. -EBADMSG (with the
 * parser's complaint) when it is not valid JSON or not an object. */
int cr_init_frame_decode(const char *payload, size_t len, json_t **ret_msg, struct cr_error *err);

/* Writes msg as one frame to the stream socket fd, waiting at most timeout_ms in all (-1: no
 * limit). -ETIMEDOUT may leave part of the frame written: the connection is then out of step
 * and must be closed. -EPIPE when the peer has gone. */
int cr_init_send(int fd, const json_t *msg, int timeout_ms, struct cr_error *err);

/* Reads one frame from fd, waiting at most timeout_ms in all (-1: no limit); the caller owns
 * *ret_msg. -ETIMEDOUT when no byte of a frame came (the connection stays usable), -EPROTO when
 * a frame was cut short by the timeout or is larger than CR_INIT_FRAME_MAX (the connection is
 * out of step: close it), -ECONNRESET when the peer closed it, -EBADMSG for a payload that is
 * not a JSON object (its bytes are consumed; the connection stays usable). */
int cr_init_recv(int fd, int timeout_ms, json_t **ret_msg, struct cr_error *err);

/* Sends request (a JSON object with a string "id") and reads frames until the response with
 * the same id, waiting at most timeout_ms in all (-1: no limit). Responses with other ids (a
 * late answer to an earlier call that timed out) are dropped: one caller at a time per fd. The
 * response, "ok" true or false, goes to *ret_response (the caller owns it) and 0 is returned.
 * A response with a null id is the server refusing a frame it could not read; it is returned
 * as -EPROTO with the server's message. Other errors as for cr_init_send and cr_init_recv. */
int cr_init_call(int fd, json_t *request, int timeout_ms, json_t **ret_response,
		 struct cr_error *err);

#endif
