/* util/fileio: whole-file reads and single-write stores for small kernel and config files
 * (cgroupfs, procfs, sysfs), where the error of the one write() is the answer; durable
 * whole-file replacement for records; and walks and removals of directory trees that never
 * follow a symbolic link. */
#ifndef CORRAL_FILEIO_H
#define CORRAL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "corral/error.h"

/* Reads at most max bytes of the file at dirfd/path (dirfd may be AT_FDCWD) into a new
 * NUL-terminated buffer owned by the caller; -EFBIG if the file is longer. */
int cr_read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
		    struct cr_error *err);
int cr_read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct cr_error *err);

/* Writes value to an existing file at dirfd/path with one write(); a short write is -EIO. */
int cr_write_file_at(int dirfd, const char *path, const char *value, struct cr_error *err);
int cr_write_file(const char *path, const char *value, struct cr_error *err);

/* Replaces the file at path with data, durably and whole: written to path.tmp, fsync'ed,
 * renamed over path, and the directory fsync'ed. A crash leaves the old file or the new one
 * (and perhaps a stale path.tmp, which the next store removes first, link or not). */
int cr_store_file(const char *path, const char *data, size_t len, mode_t mode,
		  struct cr_error *err);

/* A post-order walk of the tree at top that never follows a symbolic link: file() for each
 * entry that is not a directory, dir() (with an fd of it) for each directory once its entries
 * are done. Deeper than max_depth is -ELOOP. */
struct cr_walk {
	const char *top;
	bool missing_ok; /* an entry gone before it is looked at is skipped */
	unsigned max_depth;
	int (*file)(struct cr_walk *w, int at, const char *name, const struct stat *st,
		    struct cr_error *err);
	int (*dir)(struct cr_walk *w, int at, const char *name, int fd, struct cr_error *err);
	size_t files; /* counted by the actions that want to */
};

int cr_walk(struct cr_walk *w, struct cr_error *err);

/* The names of dir's entries that keep() accepts, sorted, NULL-terminated, owned by the caller
 * (free each, then the array). keep() may rename an entry: it writes the name to list into
 * out (size bytes) and returns true. A missing dir is an empty list. */
int cr_dir_list(const char *dir, bool (*keep)(const char *name, char *out, size_t size, void *arg),
		void *arg, char ***ret, size_t *ret_n, struct cr_error *err);

/* Removes path and everything below it without following a symbolic link anywhere (a tree a
 * sandbox wrote may hold links to anything); a link given as path is removed itself. A missing
 * path is not an error; a tree deeper than 256 directories is -ELOOP. */
int cr_remove_tree(const char *path, struct cr_error *err);

#endif
