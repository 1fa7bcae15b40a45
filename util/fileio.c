/* util/fileio: small whole-file reads and single-write stores, and tree walks that follow no
 * symbolic link. Every fd is O_CLOEXEC. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
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

int cr_store_file(const char *path, const char *data, size_t len, mode_t mode, struct cr_error *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return cr_error_set(err, ENAMETOOLONG, "store %s: path too long", path);
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	/* a stale temporary (a crash's) goes first, whatever it is: never written through */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "store %s: remove the stale %s", path, tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return cr_error_errno(err, errno, "store %s: create %s", path, tmp);
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			return cr_error_errno(err, e, "store %s: write", path);
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return cr_error_errno(err, e, "store %s: fsync", path);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return cr_error_errno(err, e, "store %s: rename", path);
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cr_error_errno(err, errno, "store %s: open its directory", path);
	int r = fsync(dfd) < 0 ? cr_error_errno(err, errno, "store %s: fsync its directory", path)
			       : 0;
	close(dfd);
	return r;
}

static int walk_at(struct cr_walk *w, int at, const char *name, unsigned depth,
		   struct cr_error *err)
{
	struct stat st;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT && w->missing_ok)
			return 0;
		return cr_error_errno(err, errno, "stat %s in %s", name, w->top);
	}
	if (!S_ISDIR(st.st_mode))
		return w->file(w, at, name, &st, err);
	if (depth >= w->max_depth)
		return cr_error_set(err, ELOOP, "%s: directories nested deeper than %u", w->top,
				    w->max_depth);
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cr_error_errno(err, errno, "open directory %s in %s", name, w->top);
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return cr_error_errno(err, e, "read directory %s in %s", name, w->top);
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				return cr_error_errno(err, errno, "read directory %s in %s", name,
						      w->top);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = walk_at(w, dirfd(d), de->d_name, depth + 1, err);
		if (r < 0)
			return r;
	}
	return w->dir(w, at, name, dirfd(d), err);
}

int cr_walk(struct cr_walk *w, struct cr_error *err)
{
	return walk_at(w, AT_FDCWD, w->top, 0, err);
}

static int remove_file(struct cr_walk *w, int at, const char *name, const struct stat *st,
		       struct cr_error *err)
{
	(void)st;
	if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "remove %s in %s", name, w->top);
	return 0;
}

static int remove_dir(struct cr_walk *w, int at, const char *name, int fd, struct cr_error *err)
{
	(void)fd;
	if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "remove directory %s in %s", name, w->top);
	return 0;
}

int cr_remove_tree(const char *path, struct cr_error *err)
{
	struct cr_walk w = { .top = path,
			     .missing_ok = true,
			     .max_depth = 256,
			     .file = remove_file,
			     .dir = remove_dir };
	return cr_walk(&w, err);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cr_dir_list(const char *dir, bool (*keep)(const char *name, char *out, size_t size, void *arg),
		void *arg, char ***ret, size_t *ret_n, struct cr_error *err)
{
	char **names = calloc(1, sizeof(char *));
	size_t n = 0;
	if (!names)
		return cr_error_errno(err, ENOMEM, "list %s", dir);
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d && errno != ENOENT) {
		free(names);
		return cr_error_errno(err, errno, "read %s", dir);
	}
	for (struct dirent *de; d && (de = readdir(d));) {
		char name[256];
		if (!keep(de->d_name, name, sizeof(name), arg))
			continue;
		char *copy = strdup(name);
		char **x = copy ? reallocarray(names, n + 2, sizeof(char *)) : NULL;
		if (!x) {
			free(copy);
			for (size_t i = 0; i < n; i++)
				free(names[i]);
			free(names);
			return cr_error_errno(err, ENOMEM, "list %s", dir);
		}
		names = x;
		names[n++] = copy;
		names[n] = NULL;
	}
	qsort(names, n, sizeof(char *), cmp_names);
	*ret = names;
	*ret_n = n;
	return 0;
}
