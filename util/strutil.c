/* util/strutil: string helpers. No allocation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "corral/strutil.h"

char *cr_strip(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

bool cr_word_in(const char *list, const char *word, size_t len)
{
	for (const char *p = list; *p;) {
		p += strspn(p, CR_WORD_SEPARATORS);
		size_t n = strcspn(p, CR_WORD_SEPARATORS);
		if (n && n == len && memcmp(p, word, len) == 0)
			return true;
		p += n;
	}
	return false;
}

int cr_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	size_t n = strlen(s);
	if (n == 0 || strspn(s, "0123456789") != n)
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}
