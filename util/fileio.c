/* util/fileio: small whole-file reads and single-write stores. Every fd is O_CLOEXEC. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/fileio.h"

int cr_read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
		    struct cr_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cr_error_errno(err, errno, "open %s", path);

	if (max > SIZE_MAX - 2)
		return cr_error_set(err, EINVAL, "read %s: bound too large", path);
	/* Room for max bytes, one more to notice a longer file, and the NUL. */
	size_t limit = max + 2, cap = limit < 4096 ? limit : 4096, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return cr_error_errno(err, ENOMEM, "read %s", path);
	for (;;) {
		if (len + 1 >= cap) {
			size_t ncap = cap * 2 < limit ? cap * 2 : limit;
			char *n = realloc(buf, ncap);
			if (!n)
				return cr_error_errno(err, ENOMEM, "read %s", path);
			buf = n;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return cr_error_errno(err, errno, "read %s", path);
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max)
			return cr_error_set(err, EFBIG, "read %s: longer than %zu bytes", path,
					    max);
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

int cr_read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct cr_error *err)
{
	return cr_read_file_at(AT_FDCWD, path, max, ret, ret_len, err);
}

int cr_write_file_at(int dirfd, const char *path, const char *value, struct cr_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cr_error_errno(err, errno, "open %s", path);
	size_t len = strlen(value);
	ssize_t r;
	do
		r = write(fd, value, len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return cr_error_errno(err, errno, "write \"%s\" to %s", value, path);
	if ((size_t)r != len)
		return cr_error_set(err, EIO, "write \"%s\" to %s: short write (%zd of %zu bytes)",
				    value, path, r, len);
	return 0;
}

int cr_write_file(const char *path, const char *value, struct cr_error *err)
{
	return cr_write_file_at(AT_FDCWD, path, value, err);
}

/* Empties the directory fd (which it closes); depth bounds the recursion. */
static int empty_dir(int fd, const char *path, int depth, struct cr_error *err)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return cr_error_errno(err, e, "read %s", path);
	}
	_cleanup_closedir_ DIR *dp = d;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM)
			return cr_error_errno(err, errno, "remove %s/%s", path, de->d_name);
		if (depth > 256)
			return cr_error_set(err, ELOOP, "remove %s: nested too deep", path);
		int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return cr_error_errno(err, errno, "open %s/%s", path, de->d_name);
		char subpath[PATH_MAX];
		snprintf(subpath, sizeof(subpath), "%s/%s", path, de->d_name);
		int r = empty_dir(sub, subpath, depth + 1, err);
		if (r < 0)
			return r;
		if (unlinkat(fd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return cr_error_errno(err, errno, "remove %s", subpath);
	}
	if (errno)
		return cr_error_errno(err, errno, "read %s", path);
	return 0;
}

int cr_remove_tree(const char *path, struct cr_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlink(path) < 0 && errno != ENOENT
				       ? cr_error_errno(err, errno, "remove %s", path)
				       : 0;
		return cr_error_errno(err, errno, "open %s", path);
	}
	int r = empty_dir(fd, path, 0, err);
	if (r < 0)
		return r;
	if (rmdir(path) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "remove %s", path);
	return 0;
}
