/* util/fileio: whole-file reads and single-write stores for small kernel and config files
 * (cgroupfs, procfs, sysfs), where the error of the one write() is the answer. */
#ifndef CORRAL_FILEIO_H
#define CORRAL_FILEIO_H

#include <stddef.h>

#include "corral/error.h"

/* Reads at most max bytes of the file at dirfd/path (dirfd may be AT_FDCWD) into a new
 * NUL-terminated buffer owned by the caller; -EFBIG if the file is longer. */
int cr_read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
		    struct cr_error *err);
int cr_read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct cr_error *err);

/* Writes value to an existing file at dirfd/path with one write(); a short write is -EIO. */
int cr_write_file_at(int dirfd, const char *path, const char *value, struct cr_error *err);
int cr_write_file(const char *path, const char *value, struct cr_error *err);

/* Removes path and everything below it without following a symbolic link anywhere (a tree a
 * sandbox wrote may hold links to anything). A missing path is not an error. */
int cr_remove_tree(const char *path, struct cr_error *err);

#endif
