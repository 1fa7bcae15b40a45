/* bench/bench-internal: what the benchmarks in bench/ share (bench/common.c): the clock,
 * cancellation, progress lines, latency samples and their ranks, the fresh work directory,
 * the children a benchmark starts, and the JSON of a target. Never used outside bench/. */
#ifndef CORRAL_BENCH_INTERNAL_H
#define CORRAL_BENCH_INTERNAL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "corral/error.h"

/* Whether cancel (may be NULL: never) asks the benchmark to stop. */
bool cr_bench_cancelled(const atomic_bool *cancel);
/* Sets err to "interrupted"; returns -ECANCELED. */
int cr_bench_cancel_error(struct cr_error *err);

/* One progress line, "bench <name>: <text>", to f (NULL: none), flushed. */
void cr_bench_progress(FILE *f, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* dir/name into buf; -ENAMETOOLONG when it does not fit. */
int cr_bench_path_join(char *buf, size_t size, const char *dir, const char *name,
		       struct cr_error *err);

/* Latency samples in nanoseconds. */
struct cr_bench_samples {
	uint64_t *v;
	size_t n, cap;
};

int cr_bench_samples_add(struct cr_bench_samples *s, uint64_t ns); /* -ENOMEM */
void cr_bench_samples_done(struct cr_bench_samples *s);
void cr_bench_sort(uint64_t *v, size_t n);
/* Nearest rank of n > 0 sorted samples: the smallest sample that pct percent of them do not
 * exceed. */
uint64_t cr_bench_rank(const uint64_t *sorted, size_t n, unsigned pct);

/* That dir (an option's value) names an existing directory: -EINVAL for none, else the errno
 * of stat, or -ENOTDIR. */
int cr_bench_check_dir(const char *dir, struct cr_error *err);

/* A fresh directory parent/<template> (template ends in XXXXXX), removed on every way out. */
struct cr_bench_workdir {
	const char *name; /* the benchmark's, for the warning of cr_bench_workdir_cleanup */
	char path[PATH_MAX];
	bool made;
};

int cr_bench_workdir_make(struct cr_bench_workdir *w, const char *parent, const char *template,
			  struct cr_error *err);
int cr_bench_workdir_remove(struct cr_bench_workdir *w, struct cr_error *err);
/* On the way out after a failure: the failure is the error to report, so a leftover is only
 * warned about (on stderr). */
void cr_bench_workdir_cleanup(struct cr_bench_workdir *w);

/* --- children: the servers and baselines a benchmark starts ---------------------------- */

#include <sys/types.h>

/* Starts argv (argv[0] a path, or a name looked up in PATH) with stdin from /dev/null, stdout
 * and stderr to the given files (NULL: /dev/null), and no signal blocked (the benchmarks'
 * signal thread blocks them in the process that starts it). */
int cr_bench_spawn(char *const argv[], const char *out, const char *errpath, pid_t *ret_pid,
		   struct cr_error *err);
/* Sends sig to *pid and waits for it, at most wait_ms (0: as long as it takes) before it is
 * killed; then *pid is -1. Nothing when *pid is not positive. */
void cr_bench_stop_child(pid_t *pid, int sig, unsigned wait_ms);
/* What a child said on its way out, for an error message: the first line of the file at path
 * naming an error ("error", "cannot", "refused", "must"), else its last line; "" when it has
 * none. */
void cr_bench_child_error(const char *path, char *buf, size_t size);
/* Waits up to timeout_ms for the child *pid (prog, its stderr in err_file) to write the port it
 * listens on into port_file. -EIO, naming what the child said (cr_bench_child_error), when it
 * exited first (*pid is then -1) or the time ran out. */
int cr_bench_wait_port(const char *port_file, pid_t *pid, const char *prog, const char *err_file,
		       unsigned timeout_ms, unsigned *ret_port, struct cr_error *err);

/* Sets o[key] to v (taking it); -1 when that failed (v is then freed). */
int cr_bench_put(json_t *o, const char *key, json_t *v);
/* A target as the JSON of every benchmark shows it: {"value", bound ("at_least" or "at_most"):
 * limit, "met"}; clears *all_met when it is not met. */
json_t *cr_bench_target(double value, const char *bound, double limit, bool *all_met);

#endif
