/* util/cleanup: scope-bound ownership. _cleanup_x_ releases a resource when its variable
 * goes out of scope; TAKE_PTR/TAKE_FD hand ownership out of the scope instead. */
#ifndef CORRAL_CLEANUP_H
#define CORRAL_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void cr_freep(void *p)
{
	free(*(void **)p);
}

static inline void cr_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cr_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void cr_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define _cleanup_free_ _cleanup_(cr_freep)
#define _cleanup_close_ _cleanup_(cr_closep)
#define _cleanup_fclose_ _cleanup_(cr_fclosep)
#define _cleanup_closedir_ _cleanup_(cr_closedirp)

#define TAKE_PTR(p)                       \
	({                                \
		__typeof__(p) _ptr = (p); \
		(p) = NULL;               \
		_ptr;                     \
	})

#define TAKE_FD(fd)             \
	({                      \
		int _fd = (fd); \
		(fd) = -1;      \
		_fd;            \
	})

#define CR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
