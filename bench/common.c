/* bench/common: the helpers the benchmarks share (bench/bench-internal.h). Prints nothing but
 * progress lines and the warning about a work directory it could not remove. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-internal.h"
#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/fileio.h"

bool cr_bench_cancelled(const atomic_bool *cancel)
{
	return cancel && atomic_load(cancel);
}

int cr_bench_cancel_error(struct cr_error *err)
{
	return cr_error_set(err, ECANCELED, "interrupted");
}

void cr_bench_progress(FILE *f, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (!f)
		return;
	fprintf(f, "bench %s: ", name);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

int cr_bench_path_join(char *buf, size_t size, const char *dir, const char *name,
		       struct cr_error *err)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		return cr_error_set(err, ENAMETOOLONG, "%s/%s: path too long", dir, name);
	return 0;
}

/* --- latency samples ----------------------------------------------------------------------- */

int cr_bench_samples_add(struct cr_bench_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uint64_t *v = reallocarray(s->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

void cr_bench_samples_done(struct cr_bench_samples *s)
{
	free(s->v);
	*s = (struct cr_bench_samples){ 0 };
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

void cr_bench_sort(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

uint64_t cr_bench_rank(const uint64_t *sorted, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;
	return sorted[rank ? rank - 1 : 0];
}

/* --- the work directory -------------------------------------------------------------------- */

int cr_bench_check_dir(const char *dir, struct cr_error *err)
{
	struct stat st;
	if (!dir)
		return cr_error_set(err, EINVAL, "no directory");
	if (stat(dir, &st) < 0)
		return cr_error_errno(err, errno, "%s", dir);
	if (!S_ISDIR(st.st_mode))
		return cr_error_set(err, ENOTDIR, "%s: not a directory", dir);
	return 0;
}

int cr_bench_workdir_make(struct cr_bench_workdir *w, const char *parent, const char *template,
			  struct cr_error *err)
{
	int r = cr_bench_path_join(w->path, sizeof(w->path), parent, template, err);
	if (r < 0)
		return r;
	if (!mkdtemp(w->path))
		return cr_error_errno(err, errno, "create a work directory in %s", parent);
	w->made = true;
	return 0;
}

int cr_bench_workdir_remove(struct cr_bench_workdir *w, struct cr_error *err)
{
	if (!w->made)
		return 0;
	int r = cr_remove_tree(w->path, err);
	if (r < 0)
		return r;
	w->made = false;
	return 0;
}

void cr_bench_workdir_cleanup(struct cr_bench_workdir *w)
{
	struct cr_error e;

	if (cr_bench_workdir_remove(w, &e) < 0)
		fprintf(stderr, "bench %s: could not remove %s: %s\n", w->name, w->path, e.msg);
}

/* --- results ------------------------------------------------------------------------------- */

int cr_bench_put(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) < 0 ? -1 : 0;
}

json_t *cr_bench_target(double value, const char *bound, double limit, bool *all_met)
{
	bool met = strcmp(bound, "at_least") == 0 ? value >= limit : value <= limit;
	if (!met)
		*all_met = false;
	return json_pack("{s:f, s:f, s:b}", "value", value, bound, limit, "met", met);
}

int cr_bench_spawn(char *const argv[], const char *out, const char *errpath, pid_t *ret_pid,
		   struct cr_error *err)
{
	posix_spawn_file_actions_t fa;
	int r = posix_spawn_file_actions_init(&fa);
	if (r)
		return cr_error_errno(err, r, "start %s", argv[0]);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, errpath ? errpath : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	r = posix_spawnp(ret_pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return cr_error_errno(err, r, "start %s", argv[0]);
	return 0;
}

void cr_bench_stop_child(pid_t *pid, int sig, unsigned wait_ms)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	uint64_t until = cr_now_ns() + (uint64_t)wait_ms * 1000000u;
	for (;;) {
		pid_t w = waitpid(*pid, NULL, wait_ms ? WNOHANG : 0);
		if (w == *pid || (w < 0 && errno != EINTR))
			break;
		if (wait_ms && cr_now_ns() >= until) {
			kill(*pid, SIGKILL);
			while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (wait_ms)
			usleep(10000);
	}
	*pid = -1;
}

int cr_bench_wait_port(const char *port_file, pid_t *pid, const char *prog, const char *err_file,
		       unsigned timeout_ms, unsigned *ret_port, struct cr_error *err)
{
	unsigned port = 0;
	for (unsigned waited = 0; !port && waited <= timeout_ms; waited += 5) {
		_cleanup_fclose_ FILE *f = fopen(port_file, "re");
		if (!f || fscanf(f, "%u", &port) != 1)
			port = 0;
		if (port)
			break;
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = -1;
			break;
		}
		usleep(5000);
	}
	if (!port) {
		char line[200];
		cr_bench_child_error(err_file, line, sizeof(line));
		return cr_error_set(err, EIO, "%s did not start%s%s", prog, *line ? ": " : "",
				    line);
	}
	*ret_port = port;
	return 0;
}

void cr_bench_child_error(const char *path, char *buf, size_t size)
{
	char line[512];
	buf[0] = '\0';
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!*line)
			continue;
		bool names = strstr(line, "rror") || strstr(line, "cannot") ||
			     strstr(line, "refus") || strstr(line, "must");
		snprintf(buf, size, "%.*s", (int)(size - 1), line);
		if (names)
			break;
	}
}
