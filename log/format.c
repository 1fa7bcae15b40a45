/* log/format: frame encoding and validation. Little-endian on disk.
 *
 * frame:  u32 len | u32 crc32c(bytes 8..len) | u32 magic | u8 kind | u8 flags | u16 0 | body,
 *         zero-padded to a multiple of 8
 * BATCH:  u64 batch_no | u32 batch_bytes | u32 batch_frames
 * EVENT:  u64 seq | u64 epoch | u64 time_ns | u8 id[16] | u8 session_len | u8 type_len | u16 0 |
 *         u32 payload_len | session | type | payload
 * MARK:   u64 seq | u64 epoch | u64 time_ns | u8 session_len | u8[7] 0 | session
 * CREATE: u64 time_ns | u8 session_len | u8[7] 0 | session */
#include <string.h>

#include "corral/crc32c.h"
#include "log/format.h"

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* x86-64 and every target we build for is little-endian */
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static size_t body_size(const struct log_frame *f)
{
	switch (f->kind) {
	case LOG_BATCH:
		return 16;
	case LOG_EVENT:
		return 48 + f->session_len + f->type_len + f->payload_len;
	case LOG_MARK:
		return 32 + f->session_len;
	case LOG_CREATE:
		return 16 + f->session_len;
	}
	return 0;
}

size_t log_frame_size(const struct log_frame *f)
{
	return log_align(LOG_FRAME_HEADER + body_size(f));
}

size_t log_frame_encode(const struct log_frame *f, uint8_t *out)
{
	size_t len = LOG_FRAME_HEADER + body_size(f), total = log_align(len);
	uint8_t *b = out + LOG_FRAME_HEADER;

	memset(out, 0, total);
	put32(out, (uint32_t)len);
	put32(out + 8, LOG_FRAME_MAGIC);
	out[12] = (uint8_t)f->kind;
	out[13] = (uint8_t)f->flags;
	switch (f->kind) {
	case LOG_BATCH:
		put64(b, f->batch_no);
		put32(b + 8, f->batch_bytes);
		put32(b + 12, f->batch_frames);
		break;
	case LOG_EVENT:
		put64(b, f->seq);
		put64(b + 8, f->epoch);
		put64(b + 16, f->time_ns);
		memcpy(b + 24, f->event_id, 16);
		b[40] = (uint8_t)f->session_len;
		b[41] = (uint8_t)f->type_len;
		put32(b + 44, (uint32_t)f->payload_len);
		memcpy(b + 48, f->session, f->session_len);
		memcpy(b + 48 + f->session_len, f->type, f->type_len);
		memcpy(b + 48 + f->session_len + f->type_len, f->payload, f->payload_len);
		break;
	case LOG_MARK:
		put64(b, f->seq);
		put64(b + 8, f->epoch);
		put64(b + 16, f->time_ns);
		b[24] = (uint8_t)f->session_len;
		memcpy(b + 32, f->session, f->session_len);
		break;
	case LOG_CREATE:
		put64(b, f->time_ns);
		b[8] = (uint8_t)f->session_len;
		memcpy(b + 16, f->session, f->session_len);
		break;
	}
	put32(out + 4, cr_crc32c(0, out + 8, len - 8));
	return total;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int log_frame_decode(const uint8_t *buf, size_t avail, struct log_frame *f)
{
	if (avail < LOG_FRAME_HEADER)
		return avail && !all_zero(buf, avail) ? -1 : 0;
	uint32_t len = get32(buf);
	if (len == 0)
		return all_zero(buf, LOG_FRAME_HEADER) ? 0 : -1;
	if (len < LOG_FRAME_HEADER || len > LOG_FRAME_MAX || len > avail ||
	    get32(buf + 8) != LOG_FRAME_MAGIC)
		return -1;
	if (cr_crc32c(0, buf + 8, len - 8) != get32(buf + 4))
		return -1;
	/* Padding is part of the frame: it must be zero too (a torn write may leave garbage). */
	size_t padded = log_align(len);
	if (padded > avail || !all_zero(buf + len, padded - len))
		return -1;

	const uint8_t *b = buf + LOG_FRAME_HEADER;
	size_t blen = len - LOG_FRAME_HEADER;
	memset(f, 0, sizeof(*f));
	f->kind = buf[12];
	f->flags = buf[13];
	f->len = len;
	switch (f->kind) {
	case LOG_BATCH:
		if (blen != 16)
			return -1;
		f->batch_no = get64(b);
		f->batch_bytes = get32(b + 8);
		f->batch_frames = get32(b + 12);
		return 1;
	case LOG_EVENT:
		if (blen < 48)
			return -1;
		f->seq = get64(b);
		f->epoch = get64(b + 8);
		f->time_ns = get64(b + 16);
		memcpy(f->event_id, b + 24, 16);
		f->session_len = b[40];
		f->type_len = b[41];
		f->payload_len = get32(b + 44);
		if (48 + f->session_len + f->type_len + f->payload_len != blen || !f->session_len ||
		    !f->type_len)
			return -1;
		f->session = (const char *)b + 48;
		f->type = f->session + f->session_len;
		f->payload = f->type + f->type_len;
		return 1;
	case LOG_MARK:
		if (blen < 32)
			return -1;
		f->seq = get64(b);
		f->epoch = get64(b + 8);
		f->time_ns = get64(b + 16);
		f->session_len = b[24];
		if (32 + f->session_len != blen || !f->session_len)
			return -1;
		f->session = (const char *)b + 32;
		return 1;
	case LOG_CREATE:
		if (blen < 16)
			return -1;
		f->time_ns = get64(b);
		f->session_len = b[8];
		if (16 + f->session_len != blen || !f->session_len)
			return -1;
		f->session = (const char *)b + 16;
		return 1;
	}
	return -1;
}

void log_segment_header(uint64_t segno, uint64_t time_ns, uint8_t *out)
{
	memset(out, 0, LOG_SEG_HEADER);
	memcpy(out, LOG_SEG_MAGIC, 8);
	put32(out + 8, LOG_SEG_VERSION);
	put64(out + 16, segno);
	put64(out + 24, time_ns);
	put32(out + 12, cr_crc32c(0, out + 16, 16));
}

bool log_segment_header_valid(const uint8_t *buf, size_t avail, uint64_t *ret_segno)
{
	if (avail < LOG_SEG_HEADER || memcmp(buf, LOG_SEG_MAGIC, 8) != 0 ||
	    get32(buf + 8) != LOG_SEG_VERSION || get32(buf + 12) != cr_crc32c(0, buf + 16, 16))
		return false;
	*ret_segno = get64(buf + 16);
	return true;
}
