/* util/id: random ids. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "corral/id.h"

int cr_id_random(uint8_t raw[CR_ID_RAW], struct cr_error *err)
{
	size_t got = 0;
	while (got < CR_ID_RAW) {
		ssize_t r = getrandom(raw + got, CR_ID_RAW - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return cr_error_errno(err, errno, "getrandom");
		}
		got += (size_t)r;
	}
	return 0;
}

int cr_id_format(const char *prefix, const uint8_t raw[CR_ID_RAW], char *out, size_t size)
{
	static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz"; /* Crockford */
	size_t plen = strlen(prefix);
	if (plen + 26 + 1 > size)
		return -ENAMETOOLONG;
	memcpy(out, prefix, plen);
	/* 128 bits in 26 groups of 5 (the last group has 3 bits) */
	unsigned bits = 0, acc = 0;
	size_t o = plen;
	for (int i = 0; i < CR_ID_RAW; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits)
		out[o++] = alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return 0;
}

bool cr_id_valid(const char *prefix, const char *s)
{
	size_t pl = strlen(prefix);
	if (!s || strncmp(s, prefix, pl) != 0 || strlen(s) != pl + CR_ID_CHARS)
		return false;
	for (const char *p = s + pl; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return false;
	return true;
}
