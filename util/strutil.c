/* util/strutil: string helpers. No allocation. */
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
