/* util/crc32c: CRC-32C, reflected polynomial 0x82F63B78, initial and final XOR ~0. */
#include <stdbool.h>
#include <string.h>

#include "corral/crc32c.h"

static uint32_t table[256];

static void init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
}

uint32_t cr_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	static bool ready;
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		init_table(); /* idempotent: a race only computes the same table twice */
		__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
	}
	const unsigned char *p = data;
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							    size_t len)
{
	const unsigned char *p = data;
	uint64_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

uint32_t cr_crc32c(uint32_t crc, const void *data, size_t len)
{
	static int hw = -1;
	if (hw < 0)
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	return hw ? crc32c_hw(crc, data, len) : cr_crc32c_sw(crc, data, len);
}
#else
uint32_t cr_crc32c(uint32_t crc, const void *data, size_t len)
{
	return cr_crc32c_sw(crc, data, len);
}
#endif
