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

int cr_id_parse(const char *prefix, const char *s, uint8_t raw[CR_ID_RAW])
{
	static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
	if (!cr_id_valid(prefix, s))
		return -EINVAL;
	const char *p = s + strlen(prefix);
	unsigned bits = 0, acc = 0;
	size_t o = 0;
	for (int i = 0; i < CR_ID_CHARS; i++) {
		const char *at = strchr(alphabet, p[i]);
		if (!at)
			return -EINVAL; /* (i, l, o and u are not Crockford digits) */
		acc = (acc << 5) | (unsigned)(at - alphabet);
		bits += 5;
		if (bits >= 8) {
			raw[o++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
		acc &= (1u << bits) - 1;
	}
	/* the last character carries 3 bits and 2 of padding, which cr_id_format leaves 0 */
	return acc == 0 && o == CR_ID_RAW ? 0 : -EINVAL;
}
