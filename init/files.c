/* init/files: the read, write and edit ops. They run in a worker process (init/proc.c), take
 * paths as given (relative ones against the server's working directory: the sandbox is the
 * confinement, not this code) and replace files atomically: a temporary file in the same
 * directory, fsync, rename over the old one. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "init/init-internal.h"

#define BINARY_PROBE 8192
#define DEFAULT_READ_BYTES (256 << 10)
#define MAX_READ_BYTES (8 << 20)
#define MAX_EDIT_BYTES (64 << 20)

bool cr_looks_binary(const char *buf, size_t len)
{
	return memchr(buf, '\0', len < BINARY_PROBE ? len : BINARY_PROBE) != NULL;
}

/* Opens path for reading: a regular file, else an error that says what it is. */
static int open_regular(const char *path, struct stat *st, struct cr_error *err)
{
	/* O_NONBLOCK: opening a FIFO must not hang the op. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return cr_error_errno(err, errno, "%s", path);
	if (fstat(fd, st) < 0) {
		int r = cr_error_errno(err, errno, "stat %s", path);
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		if (S_ISDIR(st->st_mode))
			return cr_error_set(err, EISDIR,
					    "%s is a directory (glob lists what is in it)", path);
		return cr_error_set(err, EINVAL, "%s is not a regular file", path);
	}
	return fd;
}

/* Reads all of fd (at most max bytes: -EFBIG beyond) into a new buffer. */
static int read_all(int fd, const char *path, size_t max, char **ret, size_t *ret_len,
		    struct cr_error *err)
{
	size_t len = 0, cap = 65536;
	_cleanup_free_ char *buf = cr_xmalloc(cap);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = cr_xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cr_error_errno(err, errno, "read %s", path);
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return cr_error_set(err, EFBIG, "%s is larger than %zu bytes", path, max);
	}
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int cr_op_read(json_t *req, json_t *resp, struct cr_error *err)
{
	const char *path = NULL;
	int64_t start = 1, end = INT64_MAX, max_bytes = DEFAULT_READ_BYTES;
	int r;
	if ((r = cr_req_string(req, "path", true, &path, err)) < 0 ||
	    (r = cr_req_int(req, "start_line", 1, INT64_MAX, &start, err)) < 0 ||
	    (r = cr_req_int(req, "end_line", 1, INT64_MAX, &end, err)) < 0 ||
	    (r = cr_req_int(req, "max_bytes", 1, MAX_READ_BYTES, &max_bytes, err)) < 0)
		return r;
	if (end < start)
		return cr_error_set(err, EINVAL, "end_line %lld is before start_line %lld",
				    (long long)end, (long long)start);
	struct stat st;
	_cleanup_close_ int fd = open_regular(path, &st, err);
	if (fd < 0)
		return fd;
	char probe[BINARY_PROBE];
	ssize_t pn = pread(fd, probe, sizeof(probe), 0);
	if (pn < 0)
		return cr_error_errno(err, errno, "read %s", path);
	if (cr_looks_binary(probe, (size_t)pn))
		return cr_error_set(
			err, EINVAL,
			"%s is a binary file (it holds NUL bytes): read shows text only", path);
	_cleanup_fclose_ FILE *f = fdopen(fd, "r");
	if (!f)
		return cr_error_errno(err, errno, "%s", path);
	fd = -1; /* f owns it now */

	_cleanup_free_ char *line = NULL;
	size_t line_cap = 0;
	_cleanup_free_ char *content = cr_xmalloc((size_t)max_bytes);
	size_t clen = 0;
	int64_t lines = 0, last = 0;
	bool truncated = false;
	ssize_t n;
	while ((n = getline(&line, &line_cap, f)) > 0) {
		lines++;
		if (lines < start || lines > end || truncated)
			continue;
		if (clen + (size_t)n > (size_t)max_bytes) {
			/* Whole lines only, unless even the first does not fit. */
			if (clen == 0) {
				clen = cr_utf8_trim(line, (size_t)max_bytes);
				memcpy(content, line, clen);
				last = lines;
			}
			truncated = true;
			continue;
		}
		memcpy(content + clen, line, (size_t)n);
		clen += (size_t)n;
		last = lines;
	}
	if (ferror(f))
		return cr_error_errno(err, errno, "read %s", path);
	if (start > lines && !(start == 1 && lines == 0))
		return cr_error_set(err, EINVAL,
				    "start_line %lld is past the end of %s (%lld lines)",
				    (long long)start, path, (long long)lines);
	json_object_set_new(resp, "content", cr_text_json(content, clen));
	json_object_set_new(resp, "total_lines", json_integer(lines));
	json_object_set_new(resp, "start_line", json_integer(start));
	json_object_set_new(resp, "end_line", json_integer(last));
	json_object_set_new(resp, "truncated", json_boolean(truncated));
	return 0;
}

/* Creates the missing directories above path. */
static int make_parents(const char *path, struct cr_error *err)
{
	_cleanup_free_ char *p = cr_xstrdup(path);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0777) < 0 && errno != EEXIST)
			return cr_error_errno(err, errno, "create directory %s", p);
		*s = '/';
	}
	return 0;
}

/* Replaces (or creates) path with len bytes of data, atomically: readers see the old file or
 * the new one, never a part. An existing file keeps its mode (and owner, where we may set
 * it); a symlink is written through to its target. *ret_created says whether it is new. */
static int write_atomic(const char *path, const char *data, size_t len, bool *ret_created,
			struct cr_error *err)
{
	_cleanup_free_ char *target = NULL;
	struct stat st;
	bool exists = lstat(path, &st) == 0;
	int stat_errno = errno;
	if (exists && S_ISLNK(st.st_mode)) {
		target = realpath(path, NULL);
		if (!target)
			return cr_error_errno(
				err, errno, "%s is a symbolic link that cannot be followed", path);
		path = target;
		exists = stat(path, &st) == 0;
		stat_errno = errno;
	}
	if (exists && S_ISDIR(st.st_mode))
		return cr_error_set(err, EISDIR, "%s is a directory", path);
	if (exists && !S_ISREG(st.st_mode))
		return cr_error_set(err, EINVAL, "%s is not a regular file", path);
	if (!exists && stat_errno != ENOENT)
		return cr_error_errno(err, stat_errno, "%s", path);
	if (!exists) {
		int r = make_parents(path, err);
		if (r < 0)
			return r;
	}

	_cleanup_free_ char *dir_copy = cr_xstrdup(path), *base_copy = cr_xstrdup(path);
	const char *dir = dirname(dir_copy), *base = basename(base_copy);
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.corral-XXXXXX", dir, base) >= (int)sizeof(tmp))
		return cr_error_set(err, ENAMETOOLONG, "%s: path too long", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cr_error_errno(err, errno, "create a temporary file in %s", dir);
	int r = 0;
	mode_t mode;
	if (exists) {
		mode = st.st_mode & 07777;
		if (geteuid() == 0)
			(void)!fchown(fd, st.st_uid, st.st_gid);
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	if (fchmod(fd, mode) < 0) {
		r = cr_error_errno(err, errno, "chmod %s", tmp);
		goto fail;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = cr_error_errno(err, errno, "write %s", tmp);
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = cr_error_errno(err, errno, "fsync %s", tmp);
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = cr_error_errno(err, errno, "rename %s to %s", tmp, path);
		goto fail;
	}
	/* The rename itself is durable once the directory is synced. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	*ret_created = !exists;
	return 0;
fail:
	unlink(tmp);
	return r;
}

int cr_op_write(json_t *req, json_t *resp, struct cr_error *err)
{
	const char *path = NULL, *content = NULL;
	int r;
	if ((r = cr_req_string(req, "path", true, &path, err)) < 0 ||
	    (r = cr_req_string(req, "content", true, &content, err)) < 0)
		return r;
	bool created;
	size_t len = strlen(content);
	r = write_atomic(path, content, len, &created, err);
	if (r < 0)
		return r;
	json_object_set_new(resp, "bytes", json_integer((json_int_t)len));
	json_object_set_new(resp, "created", json_boolean(created));
	return 0;
}

int cr_op_edit(json_t *req, json_t *resp, struct cr_error *err)
{
	const char *path = NULL, *old = NULL, *new = NULL;
	bool all = false;
	int r;
	if ((r = cr_req_string(req, "path", true, &path, err)) < 0 ||
	    (r = cr_req_string(req, "old_string", true, &old, err)) < 0 ||
	    (r = cr_req_string(req, "new_string", true, &new, err)) < 0 ||
	    (r = cr_req_bool(req, "replace_all", &all, err)) < 0)
		return r;
	if (!*old)
		return cr_error_set(err, EINVAL, "old_string is empty (write creates a file)");
	if (strcmp(old, new) == 0)
		return cr_error_set(err, EINVAL,
				    "old_string and new_string are the same: nothing to change");
	struct stat st;
	_cleanup_close_ int fd = open_regular(path, &st, err);
	if (fd < 0)
		return fd;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if ((r = read_all(fd, path, MAX_EDIT_BYTES, &text, &len, err)) < 0)
		return r;
	if (cr_looks_binary(text, len))
		return cr_error_set(err, EINVAL, "%s is a binary file (it holds NUL bytes)", path);

	size_t olen = strlen(old), nlen = strlen(new), count = 0;
	for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), old, olen)); p += olen)
		count++;
	if (count == 0)
		return cr_error_set(err, ENOENT,
				    "old_string was not found in %s (it must match exactly, "
				    "whitespace included)",
				    path);
	if (count > 1 && !all)
		return cr_error_set(
			err, EEXIST,
			"old_string was found %zu times in %s; give more context to make "
			"it unique, or set replace_all",
			count, path);

	size_t out_len = len - count * olen + count * nlen;
	_cleanup_free_ char *out = cr_xmalloc(out_len);
	char *o = out;
	const char *p = text, *m;
	while ((m = memmem(p, len - (size_t)(p - text), old, olen))) {
		memcpy(o, p, (size_t)(m - p));
		o += m - p;
		memcpy(o, new, nlen);
		o += nlen;
		p = m + olen;
	}
	memcpy(o, p, len - (size_t)(p - text));
	bool created;
	if ((r = write_atomic(path, out, out_len, &created, err)) < 0)
		return r;
	json_object_set_new(resp, "replacements", json_integer((json_int_t)count));
	return 0;
}
