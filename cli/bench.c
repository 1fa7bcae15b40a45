/* cli/bench: corral bench BENCHMARK [OPTIONS]. Parses options, turns SIGINT/SIGTERM/SIGHUP
 * into a cancel request (so the benchmark can remove its files), and prints the figures the
 * benchmark returns, as a table or as JSON. No measuring here: that is bench/. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bench/bench.h"
#include "cli.h"
#include "corral/cleanup.h"

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: corral bench BENCHMARK [OPTIONS]\n\n"
		"benchmarks:\n"
		"  log        the session event log against SQLite and write+fdatasync\n"
		"             (corral bench log --help)\n"
		"  sandbox    a sandbox's cold start and round trips against bwrap and crun\n"
		"             (corral bench sandbox --help)\n"
		"  model      the Messages API client against the official TypeScript SDK\n"
		"             (corral bench model --help)\n"
		"  ttft       time to first token through corrald, sandboxes eager against lazy\n"
		"             (corral bench ttft --help)\n");
}

static void bench_log_usage(FILE *f)
{
	fprintf(f,
		"usage: corral bench log [--json] [--appenders N] [--seconds S] [--dir DIR]\n"
		"                        [--quick]\n"
		"\n"
		"Measures the session event log with N appenders (default %u) appending\n"
		"200-byte events, each to a session of its own, for S seconds (default %g):\n"
		"asynchronously (each appender issues its next append from the completion of\n"
		"its last: the log's own acknowledgement) and as N threads blocking in\n"
		"cr_log_append. In the same run, on the same file system: SQLite (WAL,\n"
		"synchronous=FULL, one transaction per event, N connections), a plain\n"
		"write+fdatasync per event (one thread) appending to a file (the baseline the\n"
		"targets use) and the same over a file written full of zeros beforehand, as the\n"
		"log's segments are (its syncs carry no file size: the stricter baseline), the\n"
		"log with one appender, the replay\n"
		"of 10,000 events after a cold open (page cache dropped), and the recovery\n"
		"scan rate of a 256 MiB log on reopen. The figures the latency targets compare\n"
		"(both write+fdatasync, one appender, N asynchronous appenders) are taken in %u\n"
		"interleaved slices of S/%u seconds each, so that a shared disk's drift does\n"
		"not skew their ratios. Works in a fresh directory inside DIR\n"
		"(default %s) and removes it afterwards. Latencies are in microseconds\n"
		"(p50, p99, max); MB is 10^6 bytes. Progress goes to stderr.\n"
		"\n"
		"  --json          print one JSON object instead of the table\n"
		"  --appenders N   appenders and SQLite connections, 1 to %u\n"
		"  --seconds S     length of each timed run, more than 0 and at most %g\n"
		"  --dir DIR       an existing writable directory to work in\n"
		"  --quick         a 32 MiB recovery log instead of 256 MiB (for tests)\n"
		"\n"
		"Targets (reported, not enforced by the exit status): at N appenders at least\n"
		"10x SQLite's appends/s; ack p99 at most 3x the median single fdatasync; with\n"
		"one appender, ack p50 at most 1.5x the write+fdatasync p50; recovery at least\n"
		"1000 MB/s. Exits 0 when the benchmark ran, 1 when it failed, 2 on bad usage.\n",
		CR_BENCH_LOG_APPENDERS_DEFAULT, CR_BENCH_LOG_SECONDS_DEFAULT,
		CR_BENCH_LOG_LATENCY_ROUNDS, CR_BENCH_LOG_LATENCY_ROUNDS, CR_BENCH_LOG_DIR_DEFAULT,
		CR_BENCH_LOG_APPENDERS_MAX, CR_BENCH_LOG_SECONDS_MAX);
}

/* Digits only, 1 to max (at most 9 digits), for bench's option opt. */
static int parse_count(const char *bench, const char *opt, const char *arg, unsigned max,
		       unsigned *ret)
{
	unsigned long v = 0;

	if (!*arg || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 9) {
		fprintf(stderr, "corral bench %s: %s \"%s\": not a number from 1 to %u\n", bench,
			opt, arg, max);
		return -1;
	}
	v = strtoul(arg, NULL, 10);
	if (v < 1 || v > max) {
		fprintf(stderr, "corral bench %s: %s %s: out of range (1 to %u)\n", bench, opt, arg,
			max);
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* A plain decimal ("5", "0.5"): no sign, exponent, hex, inf or nan. */
static int parse_seconds(const char *arg, double *ret)
{
	size_t len = strlen(arg);
	const char *dot = strchr(arg, '.');
	char *end = NULL;
	double v = 0;

	if (len > 0 && strspn(arg, "0123456789.") == len && !(dot && strchr(dot + 1, '.')) &&
	    strspn(arg, ".") != len)
		v = strtod(arg, &end);
	if (!end || end != arg + len || !(v > 0)) {
		fprintf(stderr,
			"corral bench log: --seconds \"%s\": not a positive number of seconds "
			"(like 5 or 0.5)\n",
			arg);
		return -1;
	}
	if (v > CR_BENCH_LOG_SECONDS_MAX) {
		fprintf(stderr, "corral bench log: --seconds %s: at most %g\n", arg,
			CR_BENCH_LOG_SECONDS_MAX);
		return -1;
	}
	*ret = v;
	return 0;
}

/* An existing writable directory for bench's --dir, of at most max_len bytes (0: any). */
static int check_dir(const char *bench, const char *dir)
{
	struct stat st;

	if (!*dir) {
		fprintf(stderr, "corral bench %s: --dir: empty\n", bench);
		return -1;
	}
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "corral bench %s: --dir %s: %m\n", bench, dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "corral bench %s: --dir %s: not a directory\n", bench, dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		fprintf(stderr, "corral bench %s: --dir %s: not writable: %m\n", bench, dir);
		return -1;
	}
	return 0;
}

/* --- cancelling on a signal ---------------------------------------------------------------- */

static atomic_bool cancel_requested;

struct sigwatch {
	sigset_t set, old;
	pthread_t thread;
	atomic_bool stopping;
	bool running;
};

/* The first signal asks the benchmark to stop and clean up; a second one quits at once. The
 * signals are blocked in every thread (the log's writer included) and only waited for here,
 * so no system call of the log or of SQLite is interrupted by them. The thread ends by
 * returning (woken by a signal of its own), not by pthread_cancel, which ASan misreports. */
static void *sigwatch_main(void *arg)
{
	struct sigwatch *w = arg;

	for (;;) {
		int sig = 0;
		if (sigwait(&w->set, &sig) != 0)
			continue;
		if (atomic_load(&w->stopping))
			return NULL;
		if (atomic_exchange(&cancel_requested, true)) {
			fprintf(stderr, "corral bench: %s again: quitting without cleaning up\n",
				strsignal(sig));
			_exit(128 + sig);
		}
		fprintf(stderr,
			"corral bench: %s: stopping and removing the benchmark's files "
			"(again to quit at once)\n",
			strsignal(sig));
	}
}

static int sigwatch_start(struct sigwatch *w)
{
	sigemptyset(&w->set);
	sigaddset(&w->set, SIGINT);
	sigaddset(&w->set, SIGTERM);
	sigaddset(&w->set, SIGHUP);
	int e = pthread_sigmask(SIG_BLOCK, &w->set, &w->old);
	if (e) {
		fprintf(stderr, "corral bench: pthread_sigmask: %s\n", strerror(e));
		return -1;
	}
	e = pthread_create(&w->thread, NULL, sigwatch_main, w);
	if (e) {
		fprintf(stderr, "corral bench: cannot start the signal thread: %s\n", strerror(e));
		pthread_sigmask(SIG_SETMASK, &w->old, NULL);
		return -1;
	}
	w->running = true;
	return 0;
}

static void sigwatch_stop(struct sigwatch *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stopping, true);
	int e = pthread_kill(w->thread, SIGHUP);
	if (e == 0)
		pthread_join(w->thread, NULL);
	else
		pthread_detach(w->thread);
	pthread_sigmask(SIG_SETMASK, &w->old, NULL);
	w->running = false;
}

/* --- printing ------------------------------------------------------------------------------ */

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* A row of the table: label, rate (per_s key), then prefix's p50, p99 and max. */
static void print_row(const json_t *j, const char *label, const char *per_s, const char *prefix)
{
	char key[64];

	printf("  %-40s %11.1f", label, num(j, per_s));
	static const char *const tails[] = { "p50_us", "p99_us", "max_us" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(tails); i++) {
		snprintf(key, sizeof(key), "%s_%s", prefix, tails[i]);
		printf(" %10.1f", num(j, key));
	}
	printf("\n");
}

/* A target's row: PASS or MISS, or "unknown" when it could not be measured (a null value). */
static void print_target(const json_t *targets, const char *key, const char *label,
			 const char *unit)
{
	const json_t *t = json_object_get(targets, key);
	const json_t *least = json_object_get(t, "at_least");
	const json_t *value = json_object_get(t, "value");
	double limit = json_number_value(least ? least : json_object_get(t, "at_most"));
	char want[32], got[32];

	snprintf(want, sizeof(want), "%s %g%s", least ? ">=" : "<=", limit, unit);
	if (json_is_number(value))
		snprintf(got, sizeof(got), "%.2f%s", json_number_value(value), unit);
	else
		snprintf(got, sizeof(got), "-");
	printf("  %-48s %-12s %-12s %s\n", label, want, got,
	       !json_is_number(value)			 ? "unknown"
	       : json_is_true(json_object_get(t, "met")) ? "PASS"
							 : "MISS");
}

static void print_table(const json_t *j)
{
	const json_t *targets = json_object_get(j, "targets");
	char label[64];
	unsigned n = (unsigned)num(j, "appenders");

	printf("corral bench log: %u appenders, %g s per timed run, in %s (%s), %g-byte events\n\n",
	       n, num(j, "seconds"), json_string_value(json_object_get(j, "dir")),
	       json_string_value(json_object_get(j, "fs")), num(j, "event_bytes"));
	printf("  %-40s %11s %10s %10s %10s\n", "durable appends", "appends/s", "p50 us", "p99 us",
	       "max us");
	snprintf(label, sizeof(label), "log, %u async appender%s", n, n == 1 ? "" : "s");
	printf("  %-40s %11.1f %10.1f %10.1f %10.1f\n", label, num(j, "appends_per_s"),
	       num(j, "ack_p50_us"), num(j, "ack_p99_us"), num(j, "ack_max_us"));
	snprintf(label, sizeof(label), "log, %u appender thread%s", n, n == 1 ? "" : "s");
	print_row(j, label, "threads_appends_per_s", "threads_ack");
	print_row(j, "log, 1 appender", "single_appender_appends_per_s", "single_appender");
	snprintf(label, sizeof(label), "sqlite WAL sync=FULL, %u connection%s", n,
		 n == 1 ? "" : "s");
	print_row(j, label, "sqlite_appends_per_s", "sqlite");
	print_row(j, "write+fdatasync, 1 thread, appending", "write_fdatasync_per_s",
		  "write_fdatasync");
	printf("  %-40s %11s %10.1f %10.1f %10.1f\n", "  of which the fdatasync", "",
	       num(j, "fdatasync_p50_us"), num(j, "fdatasync_p99_us"), num(j, "fdatasync_max_us"));
	print_row(j, "write+fdatasync, 1 thread, over zeros", "overwrite_write_fdatasync_per_s",
		  "overwrite_write_fdatasync");
	printf("  %-40s %11s %10.1f %10.1f %10.1f\n", "  of which the fdatasync", "",
	       num(j, "overwrite_fdatasync_p50_us"), num(j, "overwrite_fdatasync_p99_us"),
	       num(j, "overwrite_fdatasync_max_us"));
	printf("\n");
	printf("  log, %u async appenders: %.0f appends, %.0f syncs, %.1f events per sync, a "
	       "batch's write+sync %.1f us on average\n",
	       n, num(j, "appends"), num(j, "syncs"), num(j, "events_per_sync"),
	       num(j, "batch_write_sync_mean_us"));
	printf("  tails: ack p99 %.2fx the fdatasync p99; the fdatasync's own p99 is %.2fx its "
	       "p50\n",
	       num(j, "ack_p99_vs_fdatasync_p99"), num(j, "fdatasync_p99_vs_p50"));
	printf("  log, %u appender threads: %.0f appends, %.0f syncs, %.1f events per sync; ack "
	       "p99 %.2fx the fdatasync p50 (thread wake-ups on %ld cores included)\n",
	       n, num(j, "threads_appends"), num(j, "threads_syncs"),
	       num(j, "threads_events_per_sync"), num(j, "threads_ack_p99_vs_fdatasync_p50"),
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("  sqlite: %.0f busy retries\n", num(j, "sqlite_busy_retries"));
	printf("  replay of %.0f events after a cold open: %.1f ms (of which cr_log_open %.1f "
	       "ms)\n",
	       num(j, "replay_events"), num(j, "replay_10k_ms"), num(j, "replay_open_ms"));
	printf("  recovery scan: %.0f bytes in %.1f ms = %.1f MB/s (MB = 10^6 bytes; page cache "
	       "%s)\n",
	       num(j, "recovered_bytes"), num(j, "recovery_ms"), num(j, "recovery_mb_per_s"),
	       json_string_value(json_object_get(j, "recovery_cache")));
	printf("\n  %-48s %-12s %s\n", "target", "want", "measured");
	snprintf(label, sizeof(label), "appends/s at %u appenders vs sqlite", n);
	print_target(targets, "appends_vs_sqlite", label, "x");
	print_target(targets, "ack_p99_vs_fdatasync_p50", "ack p99 vs median single fdatasync",
		     "x");
	print_target(targets, "single_p50_vs_write_fdatasync_p50",
		     "1-appender ack p50 vs write+fdatasync p50", "x");
	print_target(targets, "recovery_mb_per_s", "recovery scan rate (MB/s)", "");
	printf("  against write+fdatasync over zeros: ack p99 %.2fx its fdatasync p50; 1-appender "
	       "ack p50 %.2fx its write+fdatasync p50\n",
	       num(j, "ack_p99_vs_overwrite_fdatasync_p50"),
	       num(j, "single_p50_vs_overwrite_write_fdatasync_p50"));
}

/* Prints a benchmark's figures as one JSON object or as its table; the exit status. */
static int print_results(const char *bench, const json_t *j, bool json,
			 void (*table)(const json_t *j))
{
	if (json) {
		if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) < 0) {
			fprintf(stderr, "corral bench %s: cannot write JSON\n", bench);
			return CR_EXIT_FAIL;
		}
		putchar('\n');
	} else {
		table(j);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "corral bench %s: cannot write the results: %m\n", bench);
		return CR_EXIT_FAIL;
	}
	return CR_EXIT_OK;
}

/* --- corral bench log ---------------------------------------------------------------------- */

static int bench_log(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "appenders", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cr_bench_log_opts o;
	bool json = false;
	int c;

	cr_bench_log_opts_init(&o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'a':
			if (parse_count("log", "--appenders", optarg, CR_BENCH_LOG_APPENDERS_MAX,
					&o.appenders) < 0)
				return CR_EXIT_USAGE;
			break;
		case 's':
			if (parse_seconds(optarg, &o.seconds) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'd':
			if (check_dir("log", optarg) < 0)
				return CR_EXIT_USAGE;
			o.dir = optarg;
			break;
		case 'q':
			o.quick = true;
			break;
		case 'h':
			bench_log_usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr, "corral bench log: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			bench_log_usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral bench log: unexpected argument \"%s\"\n", argv[optind]);
		return CR_EXIT_USAGE;
	}

	_cleanup_(sigwatch_stop) struct sigwatch watch = { 0 };
	if (sigwatch_start(&watch) < 0)
		return CR_EXIT_FAIL;
	o.progress = stderr;
	o.cancel = &cancel_requested;

	_cleanup_(json_decrefp) json_t *j = NULL;
	struct cr_error err;
	if (cr_bench_log(&o, &j, &err) < 0) {
		fprintf(stderr, "corral bench log: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	return print_results("log", j, json, print_table);
}

/* --- corral bench sandbox ------------------------------------------------------------------ */

static void bench_sandbox_usage(FILE *f)
{
	fprintf(f,
		"usage: corral bench sandbox [--json] [--iterations N] [--dir DIR] [--init PATH]\n"
		"\n"
		"Measures a corral sandbox (default root: read-only binds of the host's /usr,\n"
		"/bin, /lib*; no egress) against bubblewrap and crun, in the same run:\n"
		"  cold start    cr_sandbox_create, connect to its control socket, exec of\n"
		"                /bin/true through corral-init, answer received (the sandbox is\n"
		"                then destroyed, untimed: shown apart);\n"
		"  warm exec     the round trip of \"true\" in the persistent shell (bash) of a\n"
		"                running sandbox, on a connection kept open;\n"
		"  one-shot      the round trip of an exec of /bin/true in that sandbox;\n"
		"  bwrap         bwrap --unshare-all with the same system directories\n"
		"                read-only, /etc read-only, --dev, --proc, --tmpfs /tmp, running\n"
		"                /bin/true, fork to exit;\n"
		"  crun          crun run of a bundle the benchmark makes (the same system\n"
		"                directories and /etc bound read-only, /proc, /dev, /tmp;\n"
		"                namespaces pid, network, ipc, uts, mount; no user namespace)\n"
		"                running /bin/true, with --cgroup-manager=disabled; on a hybrid\n"
		"                cgroup host in a private mount namespace with a tmpfs over the\n"
		"                cgroup2 mount, which crun 1.8 needs there (the wrapper alone is\n"
		"                timed too);\n"
		"  fork+exec     of /bin/true with no isolation: the floor of them all.\n"
		"Each of N iterations (default %u) takes one sample of each kind and %u warm\n"
		"and %u one-shot round trips, the order rotating, over %u rounds. A baseline\n"
		"that is not installed is reported as such and its targets as unknown. Works in\n"
		"a fresh directory inside DIR (default %s; the sandboxes' state directory)\n"
		"and a cgroup of its own under the cgroup2 mount, and removes both. Needs root.\n"
		"Latencies in milliseconds (p50, p95, max). Progress goes to stderr.\n"
		"\n"
		"  --json           print one JSON object instead of the table\n"
		"  --iterations N   1 to %u\n"
		"  --dir DIR        an existing writable directory\n"
		"  --init PATH      corral-init (default: beside this program)\n"
		"\n"
		"Targets (reported, not enforced by the exit status): cold start p50 at most\n"
		"0.5x crun's and at most 1.5x bwrap's; warm round trip p50 at most 1 ms. Exits 0\n"
		"when the benchmark ran, 1 when it failed, 2 on bad usage.\n",
		CR_BENCH_SANDBOX_ITERATIONS_DEFAULT, CR_BENCH_SANDBOX_CALLS, CR_BENCH_SANDBOX_CALLS,
		CR_BENCH_SANDBOX_ROUNDS, CR_BENCH_SANDBOX_DIR_DEFAULT,
		CR_BENCH_SANDBOX_ITERATIONS_MAX);
}

static int check_init(const char *path)
{
	struct stat st;

	if (!*path) {
		fprintf(stderr, "corral bench sandbox: --init: empty\n");
		return -1;
	}
	if (stat(path, &st) < 0) {
		fprintf(stderr, "corral bench sandbox: --init %s: %m\n", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
		fprintf(stderr, "corral bench sandbox: --init %s: not an executable file\n", path);
		return -1;
	}
	return 0;
}

/* A row of latencies in ms (prefix_n, _p50_ms, _p95_ms, _max_ms), or why there are none. */
static void print_ms_row(const json_t *j, const char *label, const char *prefix,
			 const char *unavailable)
{
	char key[64];

	snprintf(key, sizeof(key), "%s_n", prefix);
	double n = num(j, key);
	if (n == 0) {
		const char *why =
			unavailable ? json_string_value(json_object_get(j, unavailable)) : NULL;
		printf("  %-50s %s\n", label,
		       why && strncmp(why, "not installed", 13) == 0 ? "not installed"
								     : "unavailable (see below)");
		return;
	}
	printf("  %-50s %6.0f", label, n);
	static const char *const tails[] = { "p50_ms", "p95_ms", "max_ms" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(tails); i++) {
		snprintf(key, sizeof(key), "%s_%s", prefix, tails[i]);
		printf(" %9.2f", num(j, key));
	}
	printf("\n");
}

/* "1.23" or "-" (null: not measured) */
static const char *ms_or_dash(const json_t *v, char *buf, size_t size)
{
	if (!json_is_number(v))
		return "-";
	snprintf(buf, size, "%.2f", json_number_value(v));
	return buf;
}

static void print_sandbox_table(const json_t *j)
{
	const json_t *targets = json_object_get(j, "targets");
	char a[32], b[32], c[32];

	printf("corral bench sandbox: %.0f iterations in %.0f interleaved rounds, in %s\n\n",
	       num(j, "iterations"), num(j, "rounds"),
	       json_string_value(json_object_get(j, "dir")));
	printf("  %-50s %6s %9s %9s %9s\n", "cold start: nothing to the first exec's answer", "n",
	       "p50 ms", "p95 ms", "max ms");
	print_ms_row(j, "corral: create, connect, exec /bin/true, answer", "cold", NULL);
	print_ms_row(j, "  of which cr_sandbox_create", "cold_create", NULL);
	print_ms_row(j, "  of which connect, first exec, answer", "cold_first_exec", NULL);
	print_ms_row(j, "bwrap --unshare-all ... /bin/true", "bwrap", "bwrap_unavailable");
	print_ms_row(j, "crun run of /bin/true (see the note)", "crun", "crun_unavailable");
	if (num(j, "crun_wrapper_n") > 0)
		print_ms_row(j, "  crun's namespace wrapper alone", "crun_wrapper", NULL);
	print_ms_row(j, "fork+exec /bin/true, no isolation", "spawn", NULL);
	print_ms_row(j, "corral: destroy (not part of the cold start)", "destroy", NULL);
	printf("\n  %-50s %6s %9s %9s %9s\n", "round trips in a running sandbox", "n", "p50 ms",
	       "p95 ms", "max ms");
	print_ms_row(j, "warm: shell \"true\" (persistent bash)", "warm_exec", NULL);
	print_ms_row(j, "one-shot: exec /bin/true", "oneshot_exec", NULL);

	printf("\n  p50 per round, ms (cold start / bwrap / crun):");
	const json_t *rounds = json_object_get(j, "per_round");
	for (size_t i = 0; i < json_array_size(rounds); i++) {
		const json_t *r = json_array_get(rounds, i);
		if (num(r, "cold_n") == 0)
			continue;
		printf("  %zu: %s / %s / %s", i + 1,
		       ms_or_dash(json_object_get(r, "cold_p50_ms"), a, sizeof(a)),
		       ms_or_dash(json_object_get(r, "bwrap_p50_ms"), b, sizeof(b)),
		       ms_or_dash(json_object_get(r, "crun_p50_ms"), c, sizeof(c)));
	}
	printf("\n  tails: cold start p95 vs bwrap p95: %s%s; vs crun p95: %s%s\n",
	       ms_or_dash(json_object_get(j, "cold_p95_vs_bwrap_p95"), a, sizeof(a)),
	       json_is_number(json_object_get(j, "cold_p95_vs_bwrap_p95")) ? "x" : "",
	       ms_or_dash(json_object_get(j, "cold_p95_vs_crun_p95"), b, sizeof(b)),
	       json_is_number(json_object_get(j, "cold_p95_vs_crun_p95")) ? "x" : "");

	const json_t *why = json_object_get(j, "bwrap_unavailable");
	printf("\n  bwrap: %s\n", json_is_string(why)
					  ? json_string_value(why)
					  : json_string_value(json_object_get(j, "bwrap_command")));
	why = json_object_get(j, "crun_unavailable");
	if (json_is_string(why))
		printf("  crun: %s\n", json_string_value(why));
	else
		printf("  crun: %s\n  note: %s\n",
		       json_string_value(json_object_get(j, "crun_command")),
		       json_string_value(json_object_get(j, "crun_note")));

	printf("\n  %-48s %-12s %s\n", "target", "want", "measured");
	print_target(targets, "cold_p50_vs_crun_p50", "cold start p50 vs crun p50", "x");
	print_target(targets, "cold_p50_vs_bwrap_p50", "cold start p50 vs bwrap p50", "x");
	print_target(targets, "warm_exec_p50_ms", "warm round trip p50 (ms)", "");
}

static int bench_sandbox(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "init", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cr_bench_sandbox_opts o;
	_cleanup_free_ char *init = NULL;
	bool json = false;
	int c;

	cr_bench_sandbox_opts_init(&o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			if (parse_count("sandbox", "--iterations", optarg,
					CR_BENCH_SANDBOX_ITERATIONS_MAX, &o.iterations) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'd':
			if (check_dir("sandbox", optarg) < 0)
				return CR_EXIT_USAGE;
			o.dir = optarg;
			break;
		case 'i':
			if (check_init(optarg) < 0)
				return CR_EXIT_USAGE;
			o.init_path = optarg;
			break;
		case 'h':
			bench_sandbox_usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr,
				"corral bench sandbox: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			bench_sandbox_usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral bench sandbox: unexpected argument \"%s\"\n", argv[optind]);
		return CR_EXIT_USAGE;
	}
	if (!o.init_path) {
		init = cr_cli_default_init();
		if (!init) {
			fprintf(stderr,
				"corral bench sandbox: cannot find corral-init: give --init\n");
			return CR_EXIT_FAIL;
		}
		o.init_path = init;
	}

	_cleanup_(sigwatch_stop) struct sigwatch watch = { 0 };
	if (sigwatch_start(&watch) < 0)
		return CR_EXIT_FAIL;
	o.progress = stderr;
	o.cancel = &cancel_requested;

	_cleanup_(json_decrefp) json_t *j = NULL;
	struct cr_error err;
	if (cr_bench_sandbox(&o, &j, &err) < 0) {
		fprintf(stderr, "corral bench sandbox: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	return print_results("sandbox", j, json, print_sandbox_table);
}

/* --- corral bench model -------------------------------------------------------------------- */

static void bench_model_usage(FILE *f)
{
	fprintf(f,
		"usage: corral bench model [--json] [--streams N] [--total N] [--deltas N]\n"
		"                          [--rate N] [--sdk DIR] [--fake-api PATH] [--node PATH]\n"
		"\n"
		"corral's Messages API client (libcurl on io_uring) against the official\n"
		"TypeScript SDK (@anthropic-ai/sdk under node) in the same run: both stream the\n"
		"same reply (about N text deltas, then a tool call) from corral-fake-api servers\n"
		"started for the run on loopback, N streams at once, alternating over %u rounds,\n"
		"each after a warm-up. Two phases:\n"
		"  paced  each stream at --rate deltas a second, the streams' starts spread over\n"
		"         one stream's length, the server on a CPU of its own (when there are "
		"two):\n"
		"         the first delta's delivery latency, from the server's write (stamped "
		"into\n"
		"         the event) to the client's callback or the SDK's event loop;\n"
		"  flood  zero added latency (the server writes as fast as it can, on any CPU):\n"
		"         CPU time per stream (this process; node's own count), streams a second.\n"
		"Latencies in microseconds (p50, p99, max). Progress goes to stderr.\n"
		"\n"
		"  --json           print one JSON object instead of the table\n"
		"  --streams N      at once, 1 to %u (default %u)\n"
		"  --total N        streams timed per side and phase, 1 to %u (default %u)\n"
		"  --deltas N       text deltas per reply, 1 to %u (default %u)\n"
		"  --rate N         deltas per second per stream when paced, 1 to %u (default %u)\n"
		"  --sdk DIR        where node_modules/@anthropic-ai/sdk is (default: sdk beside\n"
		"                   this program, where \"make sdk\" installs the pinned one);\n"
		"                   without it the baseline is reported as unavailable\n"
		"  --fake-api PATH  corral-fake-api (default: beside this program)\n"
		"  --node PATH      node (default: found in PATH)\n"
		"\n"
		"Targets (reported, not enforced by the exit status): paced first-delta delivery\n"
		"p50 at most 200 us; flood CPU per stream at most 0.2x the SDK's. Exits 0 when\n"
		"the benchmark ran, 1 when it failed, 2 on bad usage.\n",
		CR_BENCH_MODEL_ROUNDS, CR_BENCH_MODEL_STREAMS_MAX, CR_BENCH_MODEL_STREAMS_DEFAULT,
		CR_BENCH_MODEL_TOTAL_MAX, CR_BENCH_MODEL_TOTAL_DEFAULT, CR_BENCH_MODEL_DELTAS_MAX,
		CR_BENCH_MODEL_DELTAS_DEFAULT, CR_BENCH_MODEL_RATE_MAX,
		CR_BENCH_MODEL_RATE_DEFAULT);
}
/* "12.3" or "-" for a figure that is null */
static const char *fig(const json_t *j, const char *key, int decimals, char *buf, size_t size)
{
	const json_t *v = json_object_get(j, key);
	if (!json_is_number(v))
		return "-";
	snprintf(buf, size, "%.*f", decimals, json_number_value(v));
	return buf;
}

static void print_model_table(const json_t *j)
{
	char a[32], b[32];
	static const struct {
		const char *label, *key;
		int decimals;
	} rows[] = {
		{ "paced: first delta delivery p50 (us)", "client_overhead_p50_us", 1 },
		{ "paced: first delta delivery p99 (us)", "client_overhead_p99_us", 1 },
		{ "paced: first delta delivery max (us)", "client_overhead_max_us", 1 },
		{ "paced: CPU per stream (ms)", "paced_cpu_ms_per_stream", 3 },
		{ "flood: CPU per stream (ms)", "cpu_ms_per_stream", 3 },
		{ "flood: streams per second", "streams_per_s", 1 },
		{ "flood: first delta delivery p50 (us)", "flood_client_overhead_p50_us", 1 },
		{ "deltas per stream", "deltas_per_stream", 0 },
	};

	printf("corral bench model: %.0f streams at once, %.0f per side and phase over %.0f "
	       "rounds;\n  paced at %.0f deltas/s per stream (server on %s), flood at zero added "
	       "latency;\n  client driver: %s\n\n",
	       num(j, "streams"), num(j, "total"), num(j, "rounds"), num(j, "rate"),
	       json_is_true(json_object_get(j, "paced_server_cpu_of_its_own"))
		       ? "a CPU of its own"
		       : "the clients' only CPU",
	       json_string_value(json_object_get(j, "driver")));
	printf("  %-40s %12s %12s\n", "", "corral", "SDK");
	for (size_t i = 0; i < CR_ARRAY_SIZE(rows); i++) {
		char sdk_key[64];
		snprintf(sdk_key, sizeof(sdk_key), "sdk_%s", rows[i].key);
		printf("  %-40s %12s %12s\n", rows[i].label,
		       fig(j, rows[i].key, rows[i].decimals, a, sizeof(a)),
		       fig(j, sdk_key, rows[i].decimals, b, sizeof(b)));
	}
	const json_t *why = json_object_get(j, "sdk_unavailable");
	if (json_is_string(why))
		printf("\n  SDK: %s\n", json_string_value(why));
	printf("\n  %-48s %-12s %s\n", "target", "want", "measured");
	const json_t *targets = json_object_get(j, "targets");
	print_target(targets, "client_overhead_p50_us", "paced: first delta delivery p50 (us)", "");
	print_target(targets, "cpu_vs_sdk", "flood: CPU per stream vs the SDK's", "x");
}

static int bench_model(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "streams", required_argument, NULL, 's' },
		{ "total", required_argument, NULL, 'n' },
		{ "deltas", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "sdk", required_argument, NULL, 'S' },
		{ "fake-api", required_argument, NULL, 'f' },
		{ "node", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cr_bench_model_opts o;
	_cleanup_free_ char *fake = NULL, *sdk = NULL;
	bool json = false;
	int c;

	cr_bench_model_opts_init(&o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			if (parse_count("model", "--streams", optarg, CR_BENCH_MODEL_STREAMS_MAX,
					&o.streams) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'n':
			if (parse_count("model", "--total", optarg, CR_BENCH_MODEL_TOTAL_MAX,
					&o.total) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'd':
			if (parse_count("model", "--deltas", optarg, CR_BENCH_MODEL_DELTAS_MAX,
					&o.deltas) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'r':
			if (parse_count("model", "--rate", optarg, CR_BENCH_MODEL_RATE_MAX,
					&o.rate) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'S':
			if (check_dir("model", optarg) < 0)
				return CR_EXIT_USAGE;
			o.sdk_dir = optarg;
			break;
		case 'f':
			if (access(optarg, X_OK) < 0) {
				fprintf(stderr, "corral bench model: --fake-api %s: %m\n", optarg);
				return CR_EXIT_USAGE;
			}
			o.fake_api = optarg;
			break;
		case 'N':
			if (!*optarg) {
				fprintf(stderr, "corral bench model: --node: empty\n");
				return CR_EXIT_USAGE;
			}
			o.node = optarg;
			break;
		case 'h':
			bench_model_usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr, "corral bench model: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			bench_model_usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral bench model: unexpected argument \"%s\"\n", argv[optind]);
		return CR_EXIT_USAGE;
	}
	if (!o.fake_api) {
		fake = cr_cli_beside_self("corral-fake-api");
		if (!fake || access(fake, X_OK) < 0) {
			fprintf(stderr,
				"corral bench model: cannot find corral-fake-api beside this "
				"program: give --fake-api\n");
			return CR_EXIT_FAIL;
		}
		o.fake_api = fake;
	}
	if (!o.sdk_dir) {
		sdk = cr_cli_beside_self("sdk");
		o.sdk_dir = sdk;
	}

	_cleanup_(sigwatch_stop) struct sigwatch watch = { 0 };
	if (sigwatch_start(&watch) < 0)
		return CR_EXIT_FAIL;
	o.progress = stderr;
	o.cancel = &cancel_requested;

	_cleanup_(json_decrefp) json_t *j = NULL;
	struct cr_error err;
	if (cr_bench_model(&o, &j, &err) < 0) {
		fprintf(stderr, "corral bench model: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	return print_results("model", j, json, print_model_table);
}

/* --- corral bench ttft --------------------------------------------------------------------- */

static void bench_ttft_usage(FILE *f)
{
	fprintf(f,
		"usage: corral bench ttft [--json] [--sessions S] [--concurrency C] [--workers W]\n"
		"                         [--added-delay-ms D] [--first-token-ms N]\n"
		"                         [--first-token-p99-ms N] [--fake-api PATH]\n"
		"                         [--corrald PATH] [--dir DIR]\n"
		"\n"
		"Time to first token (TTFT) of sessions driven through corrald's API, with\n"
		"sandboxes provisioned eagerly (from session create on, the first turn waiting\n"
		"for it) and lazily (at the first tool call), in the same run. It starts a\n"
		"corral-fake-api (first token log-normal, median --first-token-ms, p99\n"
		"--first-token-p99-ms) and a corrald with W workers in a fresh directory inside\n"
		"DIR, then per mode runs S sessions, C at once: each is created, its event stream\n"
		"opened with previews (event_deltas), a user message posted, and the stream read\n"
		"to the first text of the reply (the TTFT, from the post; also reported from\n"
		"before the create) and on until the session idles; then it is deleted. Half the\n"
		"sessions never need a sandbox (the\n"
		"model answers), half need one on their first turn (a bash call, then an\n"
		"answer), alternating. Every sandbox first waits D ms (the environment's\n"
		"provision_delay_ms), modelling an image pull and a repository clone; the bare\n"
		"sandbox cost is measured too (an eager create without delay to its sandbox\n"
		"against a lazy create).\n"
		"The orchestration overhead is a lazy session's TTFT minus the server's own\n"
		"first-token latency as the worker measured it. Also: the wake of a %u-event\n"
		"session to its next model call, over a brain link as a worker sees it and\n"
		"in-process (%u wakes each). Needs root. Latencies in milliseconds (p50, p95,\n"
		"p99, max). Progress goes to stderr. A default run takes several minutes.\n"
		"\n"
		"  --json                 print one JSON object instead of the table\n"
		"  --sessions S           per mode, 2 to %u (default %u)\n"
		"  --concurrency C        sessions at once, 1 to %u (default %u)\n"
		"  --workers W            corrald's workers, 1 to %u (default C)\n"
		"  --added-delay-ms D     0 to %u (default %u: a typical container start with an\n"
		"                         image pull (~10 s) and a repository clone (~5 s))\n"
		"  --first-token-ms N     the server's median first token, 0 to %u (default %u)\n"
		"  --first-token-p99-ms N its 99th percentile, above the median, or 0 for a\n"
		"                         fixed wait (default %u)\n"
		"  --fake-api PATH        corral-fake-api (default: beside this program)\n"
		"  --corrald PATH         corrald, with corral and corral-init beside it "
		"(default:\n"
		"                         beside this program)\n"
		"  --dir DIR              an existing writable directory (default %s)\n"
		"\n"
		"Targets (reported, not enforced by the exit status): lazy cuts the TTFT p50 by\n"
		"at least 60%% and the p95 by at least 90%% against eager; overhead p50 at most\n"
		"1 ms and p95 at most 3 ms; the wake of the %u-event session at most 20 ms. Exits\n"
		"0 when the benchmark ran, 1 when it failed, 2 on bad usage.\n",
		CR_BENCH_TTFT_WAKE_EVENTS, CR_BENCH_TTFT_WAKE_REPEATS, CR_BENCH_TTFT_SESSIONS_MAX,
		CR_BENCH_TTFT_SESSIONS_DEFAULT, CR_BENCH_TTFT_CONCURRENCY_MAX,
		CR_BENCH_TTFT_CONCURRENCY_DEFAULT, CR_BENCH_TTFT_WORKERS_MAX, CR_BENCH_TTFT_MS_MAX,
		CR_BENCH_TTFT_DELAY_MS_DEFAULT, CR_BENCH_TTFT_MS_MAX,
		CR_BENCH_TTFT_FIRST_TOKEN_MS_DEFAULT, CR_BENCH_TTFT_FIRST_TOKEN_P99_MS_DEFAULT,
		CR_BENCH_TTFT_DIR_DEFAULT, CR_BENCH_TTFT_WAKE_EVENTS);
}

/* Digits only, 0 to max (at most 9 digits), for ttft's option opt. */
static int parse_ms(const char *opt, const char *arg, unsigned max, unsigned *ret)
{
	size_t len = strlen(arg);
	unsigned long v;

	if (!len || strspn(arg, "0123456789") != len || len > 9 ||
	    (v = strtoul(arg, NULL, 10)) > max) {
		fprintf(stderr,
			"corral bench ttft: %s \"%s\": not a number of milliseconds from 0 to %u\n",
			opt, arg, max);
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* An option naming a program: it must be executable. */
static int check_program(const char *opt, const char *path)
{
	struct stat st;

	if (!*path || stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
		fprintf(stderr, "corral bench ttft: %s %s: %s\n", opt, path,
			!*path ? "empty" : "not an executable file");
		return -1;
	}
	return 0;
}

/* A "12.3" cell, or "-" for a figure that is null. */
static const char *cell(const json_t *o, const char *key, char *buf, size_t size)
{
	return fig(o, key, 1, buf, size);
}

/* A TTFT row: label, n, then p50, p95, p99 and max of <mode>_* in o. */
static void print_ttft_row(const json_t *o, const char *label, const char *mode, double n)
{
	char key[64], b[4][32];
	static const char *const tails[] = { "p50", "p95", "p99", "max" };

	printf("  %-36s %6.0f", label, n);
	for (size_t i = 0; i < CR_ARRAY_SIZE(tails); i++) {
		snprintf(key, sizeof(key), "%s_%s_ms", mode, tails[i]);
		printf(" %9s", cell(o, key, b[i], sizeof(b[i])));
	}
	printf("\n");
}

static void print_ttft_table(const json_t *j)
{
	const json_t *no_sb = json_object_get(j, "no_sandbox");
	const json_t *sb = json_object_get(j, "needs_sandbox");
	const json_t *eager = json_object_get(j, "eager"), *lazy = json_object_get(j, "lazy");
	char a[32], b[32], c[32], d[32];

	printf("corral bench ttft: %.0f sessions per mode (half never need a sandbox, half need "
	       "one on their first turn),\n  %.0f at once, corrald with %.0f workers\n",
	       num(j, "sessions"), num(j, "concurrency"), num(j, "workers"));
	printf("  model: first token %s\n",
	       json_string_value(json_object_get(j, "first_token_distribution")));
	printf("  sandbox: %.0f ms added (%s) + the bare sandbox, %.2f ms p50 as measured\n"
	       "  (an eager create to its sandbox %.2f ms against a lazy create %.2f ms, p50 of "
	       "%.0f each)\n"
	       "  TTFT: from the post of the user message to the first text on the stream\n\n",
	       num(j, "added_delay_ms"),
	       json_string_value(json_object_get(j, "added_delay_models")),
	       num(j, "sandbox_ms_p50"), num(j, "create_eager_bare_p50_ms"),
	       num(j, "create_lazy_p50_ms"), num(j, "sandbox_samples"));
	printf("  %-36s %6s %9s %9s %9s %9s\n", "TTFT (ms)", "n", "p50", "p95", "p99", "max");
	print_ttft_row(j, "eager, all", "eager", num(eager, "sessions"));
	print_ttft_row(no_sb, "eager, never need a sandbox", "eager", num(no_sb, "sessions"));
	print_ttft_row(sb, "eager, first turn needs one", "eager", num(sb, "sessions"));
	print_ttft_row(j, "lazy, all", "lazy", num(lazy, "sessions"));
	print_ttft_row(no_sb, "lazy, never need a sandbox", "lazy", num(no_sb, "sessions"));
	print_ttft_row(sb, "lazy, first turn needs one", "lazy", num(sb, "sessions"));
	printf("  %-36s %6s %9s %9s %9s %9s\n", "lazy overhead (TTFT - server's)", "", "", "", "",
	       "");
	print_ttft_row(j, "  all", "overhead", num(lazy, "sessions"));
	print_ttft_row(no_sb, "  never need a sandbox", "overhead", num(no_sb, "sessions"));
	print_ttft_row(sb, "  first turn needs one", "overhead", num(sb, "sessions"));
	printf("  baseline, alongside the lazy mode: a bare hand-off between two processes (half a "
	       "socket round trip\n    after 1-20 ms idle, %.0f samples) p50 %s us, p95 %s us, max "
	       "%s us; the overhead p50 is %s of them\n",
	       num(j, "handoff_samples"), fig(j, "handoff_p50_us", 1, a, sizeof(a)),
	       fig(j, "handoff_p95_us", 1, b, sizeof(b)), fig(j, "handoff_max_us", 0, c, sizeof(c)),
	       fig(j, "overhead_p50_handoffs", 1, d, sizeof(d)));
	printf("\n  lazy against eager: p50 cut %s%% (never need a sandbox %s%%, first turn needs "
	       "one %s%%)\n",
	       cell(j, "p50_cut_pct", a, sizeof(a)), cell(no_sb, "p50_cut_pct", b, sizeof(b)),
	       cell(sb, "p50_cut_pct", c, sizeof(c)));
	printf("                      p95 cut %s%% (never need a sandbox %s%%, first turn needs "
	       "one %s%%)\n",
	       cell(j, "p95_cut_pct", a, sizeof(a)), cell(no_sb, "p95_cut_pct", b, sizeof(b)),
	       cell(sb, "p95_cut_pct", c, sizeof(c)));
	for (int m = 0; m < 2; m++) {
		const json_t *o = m ? lazy : eager;
		printf("  %-6s %.2f sessions/s, %.0f errors; p50 create %s ms, send %s ms, "
		       "server's "
		       "first token %s ms,\n         create to first token %s ms\n",
		       m ? "lazy:" : "eager:", num(o, "sessions_per_s"), num(o, "errors"),
		       fig(o, "create_p50_ms", 2, a, sizeof(a)),
		       fig(o, "send_p50_ms", 2, b, sizeof(b)),
		       fig(o, "server_ttft_p50_ms", 1, c, sizeof(c)),
		       fig(o, "start_p50_ms", 1, d, sizeof(d)));
	}
	const json_t *fe = json_object_get(j, "first_error");
	if (json_is_string(fe))
		printf("  first error: %s\n", json_string_value(fe));
	printf("  wake of a %.0f-event session to its next model call (%.0f wakes): over the brain "
	       "link p50 %s ms, p95 %s ms;\n    in-process p50 %s ms, p95 %s ms",
	       num(j, "wake_events"), num(j, "wake_repeats"),
	       fig(j, "wake_10k_ms", 2, a, sizeof(a)), fig(j, "wake_10k_p95_ms", 2, b, sizeof(b)),
	       fig(j, "wake_10k_local_ms", 2, c, sizeof(c)),
	       fig(j, "wake_10k_local_p95_ms", 2, d, sizeof(d)));
	printf(", of which reading the log %s ms and the harness step %s ms (p50)\n",
	       fig(j, "wake_10k_read_ms", 2, a, sizeof(a)),
	       fig(j, "wake_10k_step_ms", 2, b, sizeof(b)));

	printf("\n  %-48s %-12s %s\n", "target", "want", "measured");
	const json_t *targets = json_object_get(j, "targets");
	print_target(targets, "p50_cut_pct", "lazy cuts TTFT p50 against eager (%)", "");
	print_target(targets, "p95_cut_pct", "lazy cuts TTFT p95 against eager (%)", "");
	print_target(targets, "overhead_p50_ms", "orchestration overhead p50 (ms)", "");
	print_target(targets, "overhead_p95_ms", "orchestration overhead p95 (ms)", "");
	print_target(targets, "wake_10k_ms", "wake of 10,000 events p50 (ms)", "");
}

static int bench_ttft(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "sessions", required_argument, NULL, 's' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "added-delay-ms", required_argument, NULL, 'D' },
		{ "first-token-ms", required_argument, NULL, 't' },
		{ "first-token-p99-ms", required_argument, NULL, 'p' },
		{ "fake-api", required_argument, NULL, 'f' },
		{ "corrald", required_argument, NULL, 'C' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cr_bench_ttft_opts o;
	_cleanup_free_ char *fake = NULL, *corrald = NULL;
	bool json = false;
	int c;

	cr_bench_ttft_opts_init(&o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			if (parse_count("ttft", "--sessions", optarg, CR_BENCH_TTFT_SESSIONS_MAX,
					&o.sessions) < 0)
				return CR_EXIT_USAGE;
			if (o.sessions < 2) {
				fprintf(stderr,
					"corral bench ttft: --sessions %s: at least 2 (one "
					"of each kind)\n",
					optarg);
				return CR_EXIT_USAGE;
			}
			break;
		case 'c':
			if (parse_count("ttft", "--concurrency", optarg,
					CR_BENCH_TTFT_CONCURRENCY_MAX, &o.concurrency) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'w':
			if (parse_count("ttft", "--workers", optarg, CR_BENCH_TTFT_WORKERS_MAX,
					&o.workers) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'D':
			if (parse_ms("--added-delay-ms", optarg, CR_BENCH_TTFT_MS_MAX,
				     &o.added_delay_ms) < 0)
				return CR_EXIT_USAGE;
			break;
		case 't':
			if (parse_ms("--first-token-ms", optarg, CR_BENCH_TTFT_MS_MAX,
				     &o.first_token_ms) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'p':
			if (parse_ms("--first-token-p99-ms", optarg, CR_BENCH_TTFT_MS_MAX,
				     &o.first_token_p99_ms) < 0)
				return CR_EXIT_USAGE;
			break;
		case 'f':
			if (check_program("--fake-api", optarg) < 0)
				return CR_EXIT_USAGE;
			o.fake_api = optarg;
			break;
		case 'C':
			if (check_program("--corrald", optarg) < 0)
				return CR_EXIT_USAGE;
			o.corrald = optarg;
			break;
		case 'd':
			if (check_dir("ttft", optarg) < 0)
				return CR_EXIT_USAGE;
			o.dir = optarg;
			break;
		case 'h':
			bench_ttft_usage(stdout);
			return CR_EXIT_OK;
		default:
			fprintf(stderr, "corral bench ttft: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			bench_ttft_usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corral bench ttft: unexpected argument \"%s\"\n", argv[optind]);
		return CR_EXIT_USAGE;
	}
	if (o.first_token_p99_ms && o.first_token_p99_ms <= o.first_token_ms) {
		fprintf(stderr,
			"corral bench ttft: --first-token-p99-ms %u: must be above "
			"--first-token-ms (%u), or 0 for a fixed first token\n",
			o.first_token_p99_ms, o.first_token_ms);
		return CR_EXIT_USAGE;
	}
	if (!o.fake_api) {
		fake = cr_cli_beside_self("corral-fake-api");
		if (!fake || access(fake, X_OK) < 0) {
			fprintf(stderr,
				"corral bench ttft: cannot find corral-fake-api beside this "
				"program: give --fake-api\n");
			return CR_EXIT_FAIL;
		}
		o.fake_api = fake;
	}
	if (!o.corrald) {
		corrald = cr_cli_beside_self("corrald");
		if (!corrald || access(corrald, X_OK) < 0) {
			fprintf(stderr, "corral bench ttft: cannot find corrald beside this "
					"program: give --corrald\n");
			return CR_EXIT_FAIL;
		}
		o.corrald = corrald;
	}

	_cleanup_(sigwatch_stop) struct sigwatch watch = { 0 };
	if (sigwatch_start(&watch) < 0)
		return CR_EXIT_FAIL;
	o.progress = stderr;
	o.cancel = &cancel_requested;

	_cleanup_(json_decrefp) json_t *j = NULL;
	struct cr_error err;
	if (cr_bench_ttft(&o, &j, &err) < 0) {
		fprintf(stderr, "corral bench ttft: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	return print_results("ttft", j, json, print_ttft_table);
}

int cr_cli_bench(int argc, char **argv)
{
	if (argc < 2) {
		bench_usage(stderr);
		return CR_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		bench_usage(stdout);
		return CR_EXIT_OK;
	}
	if (strcmp(argv[1], "log") == 0)
		return bench_log(argc - 1, argv + 1);
	if (strcmp(argv[1], "sandbox") == 0)
		return bench_sandbox(argc - 1, argv + 1);
	if (strcmp(argv[1], "model") == 0)
		return bench_model(argc - 1, argv + 1);
	if (strcmp(argv[1], "ttft") == 0)
		return bench_ttft(argc - 1, argv + 1);
	fprintf(stderr,
		"corral bench: unknown benchmark \"%s\" (benchmarks: log, sandbox, model, ttft)\n",
		argv[1]);
	return CR_EXIT_USAGE;
}
