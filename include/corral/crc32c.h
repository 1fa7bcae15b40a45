/* util/crc32c: CRC-32C (Castagnoli), the checksum of every log frame. Uses the CPU's crc32
 * instruction (SSE 4.2) where present, a table otherwise; both give the same answers. */
#ifndef CORRAL_CRC32C_H
#define CORRAL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over len bytes at data; start with crc = 0. */
uint32_t cr_crc32c(uint32_t crc, const void *data, size_t len);

/* The table implementation alone (for tests that compare the two). */
uint32_t cr_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
