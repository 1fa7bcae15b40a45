/* log/format: the on-disk format of the session log (docs/log-format.md): segment headers and
 * frames, their encoding and validation. Pure functions over buffers: no I/O, no state. */
#ifndef CORRAL_LOG_FORMAT_H
#define CORRAL_LOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_SEG_MAGIC "CORRALSG"
#define LOG_SEG_VERSION 1
#define LOG_SEG_HEADER 32 /* bytes before the first frame of a segment */
#define LOG_FRAME_MAGIC 0x314c5243u /* "CRL1" */
#define LOG_FRAME_HEADER 16 /* len, crc, magic, kind, flags, reserved */
#define LOG_FRAME_ALIGN 8
#define LOG_FRAME_MAX (64u << 20) /* no frame is larger */

enum log_kind {
	LOG_BATCH = 1, /* starts every batch: batch number, bytes and frames that follow */
	LOG_EVENT = 2, /* a session event */
	LOG_MARK = 3, /* a pending event of a session was processed */
	LOG_CREATE = 4, /* a session was created */
};

#define LOG_FLAG_PENDING 0x1u

/* A decoded frame; strings point into the buffer they were decoded from (not NUL-terminated). */
struct log_frame {
	enum log_kind kind;
	unsigned flags;
	uint32_t len; /* unpadded frame length */
	/* LOG_BATCH */
	uint64_t batch_no;
	uint32_t batch_bytes; /* bytes of the frames after this one, padding included */
	uint32_t batch_frames;
	/* LOG_EVENT, LOG_MARK (seq: the marked event), LOG_CREATE (time only) */
	uint64_t seq, epoch, time_ns;
	uint8_t event_id[16];
	const char *session;
	size_t session_len;
	const char *type;
	size_t type_len;
	const char *payload;
	size_t payload_len;
};

static inline size_t log_align(size_t n)
{
	return (n + LOG_FRAME_ALIGN - 1) & ~(size_t)(LOG_FRAME_ALIGN - 1);
}

/* Bytes an encoded frame takes, padding included. */
size_t log_frame_size(const struct log_frame *f);

/* Encodes f at out (log_frame_size(f) bytes, zero padding included); returns that size. */
size_t log_frame_encode(const struct log_frame *f, uint8_t *out);

/* Validates and decodes the frame at buf (avail bytes readable). Returns 1 and fills f for a
 * whole valid frame, 0 for a position holding zeros (end of data), -1 for anything else:
 * torn, corrupt or not a frame. */
int log_frame_decode(const uint8_t *buf, size_t avail, struct log_frame *f);

/* Segment header of segment number segno at out (LOG_SEG_HEADER bytes). */
void log_segment_header(uint64_t segno, uint64_t time_ns, uint8_t *out);
bool log_segment_header_valid(const uint8_t *buf, size_t avail, uint64_t *ret_segno);

#endif
