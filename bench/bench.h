/* bench: corral's benchmarks, internal to the corral command (cli/bench.c is their front
 * end). A benchmark measures and returns its figures as JSON, with its baselines measured in
 * the same run on the same file system; it never prints its results (only progress lines) and
 * never exits. Whatever it creates on disk it removes again, also on failure. */
#ifndef CORRAL_BENCH_H
#define CORRAL_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "corral/error.h"

#define CR_BENCH_LOG_APPENDERS_DEFAULT 64
#define CR_BENCH_LOG_APPENDERS_MAX 4096
#define CR_BENCH_LOG_SECONDS_DEFAULT 5.0
#define CR_BENCH_LOG_SECONDS_MAX 3600.0
#define CR_BENCH_LOG_DIR_DEFAULT "/var/tmp"
#define CR_BENCH_LOG_LATENCY_ROUNDS 5 /* interleaved slices of the latency comparison */

struct cr_bench_log_opts {
	unsigned appenders; /* appenders, each to a session of its own: 1 to 4096 */
	double seconds; /* length of each timed run (log, sqlite, write+fdatasync, 1 appender);
			 * the latency comparison takes it in CR_BENCH_LOG_LATENCY_ROUNDS slices */
	const char *dir; /* an existing directory; the benchmark works in a fresh one inside */
	bool quick; /* a 32 MiB recovery log instead of 256 MiB */
	FILE *progress; /* progress lines go here; NULL: none */
	/* Polled while running; once true the benchmark stops, cleans up and fails with
	 * -ECANCELED. NULL: never. */
	const atomic_bool *cancel;
};

/* Fills the defaults (64 appenders, 5 s, /var/tmp, the full recovery log, no progress). */
void cr_bench_log_opts_init(struct cr_bench_log_opts *opts);

/* corral bench log: the session event log (cr_log_append with opts->appenders appenders and
 * with one; replay of 10,000 events after a cold open; the recovery scan rate) against SQLite
 * (WAL, synchronous=FULL, one transaction per event) and a plain write+fdatasync per event.
 * On success *ret is a new JSON object owned by the caller: the figures (latencies in
 * microseconds as *_p50_us, *_p99_us, *_max_us; rates per second; MB = 10^6 bytes), and a
 * "targets" object with, per target of the issue, its measured value, its bound ("at_least"
 * or "at_most") and "met". -EINVAL for bad options, -ECANCELED when cancelled, else what
 * failed. */
int cr_bench_log(const struct cr_bench_log_opts *opts, json_t **ret, struct cr_error *err);

#define CR_BENCH_SANDBOX_ITERATIONS_DEFAULT 300
#define CR_BENCH_SANDBOX_ITERATIONS_MAX 100000
#define CR_BENCH_SANDBOX_ROUNDS 5 /* interleaved rounds, each with its share of the iterations */
#define CR_BENCH_SANDBOX_CALLS 4 /* warm and one-shot round trips per iteration, of each */
#define CR_BENCH_SANDBOX_DIR_DEFAULT "/var/tmp"

struct cr_bench_sandbox_opts {
	/* Iterations, 1 to CR_BENCH_SANDBOX_ITERATIONS_MAX. Each is one cold start of a corral
	 * sandbox, one run of each baseline (bwrap, crun, and plain fork+exec) and
	 * CR_BENCH_SANDBOX_CALLS warm and one-shot round trips, in an order that rotates; they
	 * are spread over CR_BENCH_SANDBOX_ROUNDS rounds. */
	unsigned iterations;
	const char *dir; /* an existing directory of at most CR_BENCH_SANDBOX_DIR_MAX bytes; the
			  * benchmark works in a fresh one inside (the sandboxes' state dir) */
	const char *init_path; /* corral-init (required) */
	FILE *progress; /* progress lines go here; NULL: none */
	/* Polled while running; once true the benchmark stops, cleans up and fails with
	 * -ECANCELED. NULL: never. */
	const atomic_bool *cancel;
};

/* Fills the defaults (300 iterations, /var/tmp, no init, no progress). */
void cr_bench_sandbox_opts_init(struct cr_bench_sandbox_opts *opts);

/* corral bench sandbox: a corral sandbox's cold start (cr_sandbox_create, connect to its
 * control socket, exec of /bin/true, answer received; then destroyed, untimed), the warm round
 * trip of "true" in the persistent shell of a running sandbox and of a one-shot exec of
 * /bin/true, against bwrap and crun running /bin/true over the same system directories, and
 * plain fork+exec of /bin/true, all in the same run. Needs root (it makes sandboxes). On
 * success *ret is a new JSON object owned by the caller: latencies in milliseconds (*_p50_ms,
 * *_p95_ms, *_max_ms), a baseline that is not installed or does not work here as null figures
 * with the reason in *_unavailable, and a "targets" object as cr_bench_log's, where a target
 * that needs a missing baseline has "value" and "met" null. -EINVAL for bad options,
 * -ECANCELED when cancelled, else what failed. */
int cr_bench_sandbox(const struct cr_bench_sandbox_opts *opts, json_t **ret, struct cr_error *err);

#define CR_BENCH_MODEL_STREAMS_DEFAULT 64
#define CR_BENCH_MODEL_STREAMS_MAX 1024
#define CR_BENCH_MODEL_TOTAL_DEFAULT 512
#define CR_BENCH_MODEL_TOTAL_MAX 1000000
#define CR_BENCH_MODEL_DELTAS_DEFAULT 300
#define CR_BENCH_MODEL_DELTAS_MAX 100000
#define CR_BENCH_MODEL_RATE_DEFAULT 200
#define CR_BENCH_MODEL_RATE_MAX 1000000
#define CR_BENCH_MODEL_ROUNDS 2 /* corral's client and the SDK alternate */

struct cr_bench_model_opts {
	unsigned streams; /* at once, 1 to CR_BENCH_MODEL_STREAMS_MAX */
	unsigned total; /* streams timed per side, over the rounds, 1 to CR_BENCH_MODEL_TOTAL_MAX */
	unsigned deltas; /* about this many text deltas per reply (then one tool call) */
	unsigned rate; /* deltas per second of each stream in the paced phase */
	const char *fake_api; /* corral-fake-api (required) */
	const char *sdk_dir; /* where node_modules/@anthropic-ai/sdk is; NULL: no baseline */
	const char *node; /* the node program ("node": found in PATH) */
	FILE *progress; /* progress lines go here; NULL: none */
	/* Polled while running; once true the benchmark stops, cleans up and fails with
	 * -ECANCELED. NULL: never. */
	const atomic_bool *cancel;
};

/* Fills the defaults (64 streams, 512 in all, 300 deltas at 200 a second, "node", nothing
 * else). */
void cr_bench_model_opts_init(struct cr_bench_model_opts *opts);

/* corral bench model: corral's Messages API client against the official TypeScript SDK, both
 * streaming the same reply from a corral-fake-api started for the run (bench/model.c says
 * how). On success *ret is a new JSON object owned by the caller: streams, total,
 * client_overhead_{p50,p99,max}_us, cpu_ms_per_stream, streams_per_s, the same with sdk_ in
 * front (null, with sdk_unavailable saying why, when the SDK or node is missing), cpu_vs_sdk,
 * and a "targets" object as cr_bench_log's. -EINVAL for bad options, -ECANCELED when
 * cancelled, else what failed. */
int cr_bench_model(const struct cr_bench_model_opts *opts, json_t **ret, struct cr_error *err);

#define CR_BENCH_TTFT_SESSIONS_DEFAULT 200
#define CR_BENCH_TTFT_SESSIONS_MAX 100000
#define CR_BENCH_TTFT_CONCURRENCY_DEFAULT 16
#define CR_BENCH_TTFT_CONCURRENCY_MAX 256
#define CR_BENCH_TTFT_WORKERS_MAX 1024 /* corrald's limit */
#define CR_BENCH_TTFT_DELAY_MS_DEFAULT 15000 /* an image pull (~10 s) and a clone (~5 s) */
#define CR_BENCH_TTFT_MS_MAX 3600000 /* delays and first-token times */
#define CR_BENCH_TTFT_FIRST_TOKEN_MS_DEFAULT 400
#define CR_BENCH_TTFT_FIRST_TOKEN_P99_MS_DEFAULT 1500
#define CR_BENCH_TTFT_SANDBOX_SAMPLES 8 /* eager and lazy creates for the bare sandbox cost */
#define CR_BENCH_TTFT_WAKE_EVENTS 10000
#define CR_BENCH_TTFT_WAKE_REPEATS 20 /* timed wakes each way, after one untimed */
#define CR_BENCH_TTFT_DIR_DEFAULT "/var/tmp"

struct cr_bench_ttft_opts {
	unsigned sessions; /* per mode, 2 to CR_BENCH_TTFT_SESSIONS_MAX; half never need a
			    * sandbox, half need one on their first turn, alternating */
	unsigned concurrency; /* sessions at once, 1 to CR_BENCH_TTFT_CONCURRENCY_MAX */
	unsigned workers; /* corrald's --workers, 1 to CR_BENCH_TTFT_WORKERS_MAX; 0: concurrency */
	unsigned added_delay_ms; /* each sandbox's provision_delay_ms, 0 to CR_BENCH_TTFT_MS_MAX */
	/* corral-fake-api's first token: log-normal with this median and 99th percentile (0:
	 * fixed at the median; else above it), both at most CR_BENCH_TTFT_MS_MAX */
	unsigned first_token_ms, first_token_p99_ms;
	const char *fake_api; /* corral-fake-api (required) */
	const char *corrald; /* corrald, with corral and corral-init beside it (required) */
	const char *dir; /* an existing directory; the benchmark works in a fresh one inside
			  * (corrald's state, log and sandboxes, its socket) */
	FILE *progress; /* progress lines go here; NULL: none */
	/* Polled while running; once true the benchmark stops, cleans up and fails with
	 * -ECANCELED. NULL: never. */
	const atomic_bool *cancel;
};

/* Fills the defaults (200 sessions, 16 at once, workers as many, 15 s added delay, first token
 * median 400 ms and p99 1500 ms, /var/tmp, no programs, no progress). */
void cr_bench_ttft_opts_init(struct cr_bench_ttft_opts *opts);

/* corral bench ttft: time to first token through corrald's API with sandboxes provisioned
 * eagerly against lazily, in the same run, against a corral-fake-api and a corrald started for
 * it (bench/ttft.c says how), and the wake latency of a 10,000-event session. Needs root (the
 * sessions' tool calls run in sandboxes). On success *ret is a new JSON object owned by the
 * caller: TTFT tails in milliseconds per mode (eager_p50_ms, ..., lazy_p95_ms, ...), for all
 * sessions and per class ("no_sandbox", "needs_sandbox"), the lazy-vs-eager cuts
 * (p50_cut_pct, p95_cut_pct), the orchestration overhead of the lazy mode (overhead_p50_ms,
 * ...: TTFT minus the server's own first-token latency), per mode "eager" and "lazy" objects,
 * sandbox_ms_p50, wake_10k_ms (and wake_10k_local_ms), and a "targets" object as
 * cr_bench_log's. -EINVAL for bad options, -ENOTSUP when corrald does not keep an
 * environment's provision_delay_ms, -ECANCELED when cancelled, else what failed. */
int cr_bench_ttft(const struct cr_bench_ttft_opts *opts, json_t **ret, struct cr_error *err);

#endif
