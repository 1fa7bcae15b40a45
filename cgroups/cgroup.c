/* cgroups/cgroup: cgroup v2 files and groups. Every operation is a path plus a file the
 * kernel answers for; nothing is cached, so a group removed behind our back is an ENOENT,
 * not a stale belief. Must never create, move or remove anything in a v1 hierarchy. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "corral/cgroup.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/fileio.h"
#include "corral/strutil.h"

#define CGROUP_FILE_MAX (1 << 20)

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int cr_cgroup2_parse_mountinfo(const char *mountinfo, char **ret_path, struct cr_error *err)
{
	const char *line = mountinfo;
	while (line && *line) {
		const char *end = strchrnul(line, '\n');
		/* id parent maj:min root mountpoint options [optional...] - fstype source opts */
		const char *sep = strstr(line, " - ");
		if (sep && sep < end && strncmp(sep + 3, "cgroup2 ", 8) == 0) {
			const char *p = line;
			for (int field = 0; field < 4 && p < end; field++) {
				p = memchr(p, ' ', (size_t)(end - p));
				if (!p)
					break;
				p++;
			}
			if (p && p < end) {
				const char *q = memchr(p, ' ', (size_t)(end - p));
				if (q) {
					char *path = strndup(p, (size_t)(q - p));
					if (!path)
						return cr_error_errno(err, ENOMEM, "cgroup2 mount");
					unescape_octal(path);
					*ret_path = path;
					return 0;
				}
			}
		}
		line = *end ? end + 1 : NULL;
	}
	return cr_error_set(err, ENOENT, "no cgroup2 file system is mounted");
}

int cr_cgroup2_mount(char **ret_path, struct cr_error *err)
{
	_cleanup_free_ char *text = NULL;
	int r = cr_read_file("/proc/self/mountinfo", 16 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	return cr_cgroup2_parse_mountinfo(text, ret_path, err);
}

static int join(const char *dir, const char *file, char *buf, size_t size, struct cr_error *err)
{
	int n = snprintf(buf, size, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= size)
		return cr_error_set(err, ENAMETOOLONG, "cgroup path %s/%s too long", dir, file);
	return 0;
}

int cr_cgroup_read(const char *dir, const char *file, char **ret, struct cr_error *err)
{
	char path[PATH_MAX];
	char *text;
	int r = join(dir, file, path, sizeof(path), err);
	if (r < 0)
		return r;
	r = cr_read_file(path, CGROUP_FILE_MAX, &text, NULL, err);
	if (r < 0)
		return r;
	*ret = cr_strip(text);
	return 0;
}

int cr_cgroup_write(const char *dir, const char *file, const char *value, struct cr_error *err)
{
	char path[PATH_MAX];
	int r = join(dir, file, path, sizeof(path), err);
	if (r < 0)
		return r;
	return cr_write_file(path, value, err);
}

int cr_cgroup_has_all(const char *have, const char *want)
{
	for (const char *p = want; *p;) {
		p += strspn(p, CR_WORD_SEPARATORS);
		size_t n = strcspn(p, CR_WORD_SEPARATORS);
		if (n && !cr_word_in(have, p, n))
			return 0;
		p += n;
	}
	return 1;
}

int cr_cgroup_enable(const char *dir, const char *controllers, struct cr_error *err)
{
	for (const char *p = controllers; *p;) {
		p += strspn(p, CR_WORD_SEPARATORS);
		size_t n = strcspn(p, CR_WORD_SEPARATORS);
		if (n == 0)
			break;
		char word[64];
		if (n + 2 > sizeof(word))
			return cr_error_set(err, EINVAL, "controller name too long");
		word[0] = '+';
		memcpy(word + 1, p, n);
		word[n + 1] = '\0';
		int r = cr_cgroup_write(dir, "cgroup.subtree_control", word, err);
		if (r < 0)
			return cr_error_prefix(err, "enable controller %s in %s", word + 1, dir);
		p += n;
	}
	return 0;
}

int cr_cgroup_create(const char *parent, const char *name, char **ret_path, struct cr_error *err)
{
	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return cr_error_set(err, EINVAL, "invalid cgroup name \"%s\"", name);
	char path[PATH_MAX];
	int r = join(parent, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	if (mkdir(path, 0755) < 0)
		return cr_error_errno(err, errno, "create cgroup %s", path);
	if (ret_path) {
		char *p = strdup(path);
		if (!p) {
			rmdir(path);
			return cr_error_errno(err, ENOMEM, "create cgroup %s", path);
		}
		*ret_path = p;
	}
	return 0;
}

int cr_cgroup_attach(const char *dir, pid_t pid, struct cr_error *err)
{
	char value[32];
	snprintf(value, sizeof(value), "%d", pid ? (int)pid : (int)getpid());
	int r = cr_cgroup_write(dir, "cgroup.procs", value, err);
	if (r < 0)
		return cr_error_prefix(err, "move pid %s into %s", value, dir);
	return 0;
}

int cr_cgroup_id(const char *dir, uint64_t *ret_id, struct cr_error *err)
{
	/* cgroup2 is kernfs: a group's inode number is its kernfs node id, the cgroup id. */
	struct stat st;
	if (stat(dir, &st) < 0)
		return cr_error_errno(err, errno, "stat cgroup %s", dir);
	*ret_id = (uint64_t)st.st_ino;
	return 0;
}

/* SIGKILL to every pid listed in dir/cgroup.procs (kernels without cgroup.kill). */
static int kill_listed(const char *dir, struct cr_error *err)
{
	_cleanup_free_ char *procs = NULL;
	int r = cr_cgroup_read(dir, "cgroup.procs", &procs, err);
	if (r < 0)
		return r;
	for (char *p = procs; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH)
			return cr_error_errno(err, errno, "kill pid %ld of %s", pid, dir);
		p = end;
	}
	return 0;
}

static int destroy_at(const char *dir, long long deadline, struct cr_error *err)
{
	/* Children first: rmdir needs an empty leaf. */
	{
		_cleanup_closedir_ DIR *d = opendir(dir);
		if (!d)
			return cr_error_errno(err, errno, "open cgroup %s", dir);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			char sub[PATH_MAX];
			int r = join(dir, de->d_name, sub, sizeof(sub), err);
			if (r < 0)
				return r;
			r = destroy_at(sub, deadline, err);
			if (r < 0)
				return r;
		}
	}

	bool have_kill = true;
	struct cr_error kill_err;
	int r = cr_cgroup_write(dir, "cgroup.kill", "1", &kill_err);
	if (r == -ENOENT) {
		have_kill = false; /* before 5.14 */
	} else if (r < 0) {
		if (err)
			*err = kill_err;
		return r;
	}

	for (;;) {
		_cleanup_free_ char *events = NULL;
		r = cr_cgroup_read(dir, "cgroup.events", &events, err);
		if (r < 0)
			return r;
		if (strstr(events, "populated 0"))
			break;
		if (!have_kill) {
			r = kill_listed(dir, err);
			if (r < 0)
				return r;
		}
		if (cr_now_ms() > deadline)
			return cr_error_set(err, ETIMEDOUT,
					    "remove cgroup %s: processes still there after SIGKILL",
					    dir);
		poll(NULL, 0, 5);
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		return cr_error_errno(err, errno, "remove cgroup %s", dir);
	return 0;
}

int cr_cgroup_destroy(const char *dir, int timeout_ms, struct cr_error *err)
{
	return destroy_at(dir, cr_now_ms() + timeout_ms, err);
}

int cr_cgroup_freeze(const char *dir, bool frozen, int timeout_ms, struct cr_error *err)
{
	int r = cr_cgroup_write(dir, "cgroup.freeze", frozen ? "1" : "0", err);
	if (r < 0)
		return r;
	long long deadline = cr_now_ms() + timeout_ms;
	const char *want = frozen ? "frozen 1" : "frozen 0";
	for (;;) {
		_cleanup_free_ char *events = NULL;
		r = cr_cgroup_read(dir, "cgroup.events", &events, err);
		if (r < 0)
			return r;
		if (strstr(events, want))
			return 0;
		if (cr_now_ms() > deadline)
			return cr_error_set(err, ETIMEDOUT, "cgroup %s: not %s after %d ms", dir,
					    frozen ? "frozen" : "thawed", timeout_ms);
		poll(NULL, 0, 2);
	}
}

int cr_cgroup_frozen(const char *dir, bool *ret, struct cr_error *err)
{
	_cleanup_free_ char *v = NULL;
	int r = cr_cgroup_read(dir, "cgroup.freeze", &v, err);
	if (r < 0)
		return r;
	*ret = strcmp(v, "1") == 0;
	return 0;
}
