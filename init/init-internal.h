/* init/init-internal: what the parts of corral-init's tool server share (serve.c: event loop,
 * connection, request ids; proc.c: exec and file-op workers; shell.c: the persistent shell;
 * files.c, search.c: the file ops; text.c: output capture and UTF-8). Never used outside init/. */
#ifndef CORRAL_INIT_INTERNAL_H
#define CORRAL_INIT_INTERNAL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/clock.h"
#include "corral/error.h"

/* --- text.c ------------------------------------------------------------------------------- */

/* A JSON string of len bytes of buf: valid UTF-8 is kept, every other byte (and NUL) becomes
 * the four characters "\xNN". Never NULL (aborts the process on out-of-memory: PID 1 cannot
 * answer anyway). */
json_t *cr_text_json(const char *buf, size_t len);

/* len less a last UTF-8 sequence the end of buf cuts short: where to cut text that was cut at
 * a byte count, so a character is not split into escaped bytes. */
size_t cr_utf8_trim(const char *buf, size_t len);

/* An output stream of a command: the first cap bytes are kept, the rest only counted. */
struct cr_capture {
	char *head;
	size_t len, cap;
	uint64_t total;
};

void cr_capture_add(struct cr_capture *c, const char *buf, size_t n);
/* The kept head as JSON text, and when more came, "\n[output truncated: N bytes omitted]\n". */
json_t *cr_capture_json(const struct cr_capture *c);
void cr_capture_free(struct cr_capture *c);

/* Reads what the non-blocking fd has now, at most rounds * 64 KiB, into c: 1 when more may
 * come, 0 at end of file, a negative errno on failure. */
int cr_capture_read(struct cr_capture *c, int fd, int rounds);

/* "SIGKILL" for SIGKILL; "SIG<n>" for one without a name. Static storage for unnamed ones. */
const char *cr_signal_name(int sig);

void *cr_xmalloc(size_t n);
void *cr_xrealloc(void *p, size_t n);
char *cr_xstrdup(const char *s);

/* --- serve.c ------------------------------------------------------------------------------ */

struct cr_srv;

/* The response skeleton {"id": id, "ok": true}; the caller adds the op's fields. */
json_t *cr_ok_response(const char *id);
/* {"id": id, "ok": false, "error": message} (id NULL: null). */
json_t *cr_error_response(const char *id, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Encodes a response as one frame; a response too large for a frame becomes an error response
 * that says so. The caller frees *ret_frame. */
void cr_response_frame(const char *id, json_t *response, char **ret_frame, size_t *ret_len);

/* Completes request id: the response goes out (to every repeat of the id that waits too) and
 * is remembered. Takes the response (and the frame). */
void cr_srv_respond(struct cr_srv *s, const char *id, json_t *response);
void cr_srv_respond_frame(struct cr_srv *s, const char *id, char *frame, size_t len);

/* Asks the event loop to poll fd for events and call cb(s, obj, revents) when ready. Called
 * while the loop gathers its descriptors (the *_watch functions below). */
typedef void cr_watch_fn(struct cr_srv *s, void *obj, short revents);
void cr_srv_watch(struct cr_srv *s, int fd, short events, cr_watch_fn *cb, void *obj);

/* Lowers *deadline (ms, CLOCK_MONOTONIC; -1: none yet) to at. */
void cr_deadline_min(int64_t *deadline, int64_t at);

/* Field readers for requests: 0, or a negative errno with err saying which field is wrong.
 * An absent optional field leaves *ret as it was (the default). */
int cr_req_string(json_t *req, const char *key, bool required, const char **ret,
		  struct cr_error *err);
int cr_req_int(json_t *req, const char *key, int64_t min, int64_t max, int64_t *ret,
	       struct cr_error *err);
int cr_req_bool(json_t *req, const char *key, bool *ret, struct cr_error *err);

/* --- proc.c: exec and file-op workers ----------------------------------------------------- */

struct cr_job;

/* Limits shared by exec and shell. */
#define CR_INIT_DEFAULT_TIMEOUT_MS 120000
#define CR_INIT_MAX_TIMEOUT_MS (24 * 3600 * 1000)
#define CR_INIT_DEFAULT_OUTPUT_CAP 100000
#define CR_INIT_MAX_OUTPUT_CAP (4 << 20)

/* Prepares a child after fork: default signal dispositions, nothing blocked, its own process
 * group. */
void cr_child_reset(void);

/* Starts argv (argv[0] without a '/' is looked up in the PATH of envp) in a process group of
 * its own, with stdin, stdout and stderr from stdio and in cwd (NULL: ours). Returns once the
 * program runs, with its pid; or an error that says why it could not (the child is reaped). */
int cr_spawn(char *const argv[], char *const envp[], const char *cwd, const int stdio[3],
	     pid_t *ret_pid, struct cr_error *err);

int cr_nonblocking(int fd);

static inline void cr_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int cr_exec_start(struct cr_srv *s, const char *id, json_t *req, struct cr_error *err);

/* A file op: runs in a worker process, fills response (already {"id", "ok": true}) and
 * returns 0, or a negative errno with err saying why. */
typedef int cr_file_op(json_t *req, json_t *response, struct cr_error *err);
int cr_worker_start(struct cr_srv *s, const char *id, const char *op, cr_file_op *fn, json_t *req,
		    struct cr_error *err);

/* Each loop: descriptors to watch, the nearest deadline, expired deadlines. */
void cr_jobs_watch(struct cr_srv *s, struct cr_job *jobs, int64_t *deadline);
void cr_jobs_tick(struct cr_srv *s, struct cr_job **jobs, int64_t now);
/* A child exited (still a zombie, status as from waitpid): true if it was a job's, which is
 * then completed and freed. */
bool cr_jobs_exited(struct cr_srv *s, struct cr_job **jobs, pid_t pid, int status);
/* Kills every job's processes (SIGKILL) and forgets the jobs. */
void cr_jobs_kill(struct cr_job **jobs);

struct cr_job **cr_srv_jobs(struct cr_srv *s);

/* --- shell.c ------------------------------------------------------------------------------ */

struct cr_shell;

int cr_shell_request(struct cr_srv *s, struct cr_shell **shell, const char *id, json_t *req,
		     struct cr_error *err);
void cr_shell_watch(struct cr_srv *s, struct cr_shell *sh, int64_t *deadline);
void cr_shell_tick(struct cr_srv *s, struct cr_shell *sh, int64_t now);
bool cr_shell_exited(struct cr_srv *s, struct cr_shell *sh, pid_t pid, int status);
/* Kills the shell's process group and frees it (NULL is fine). */
void cr_shell_free(struct cr_shell *sh);

/* --- files.c, search.c -------------------------------------------------------------------- */

int cr_op_read(json_t *req, json_t *response, struct cr_error *err);
int cr_op_write(json_t *req, json_t *response, struct cr_error *err);
int cr_op_edit(json_t *req, json_t *response, struct cr_error *err);
int cr_op_glob(json_t *req, json_t *response, struct cr_error *err);
int cr_op_grep(json_t *req, json_t *response, struct cr_error *err);

/* Whether the first bytes of a file look binary (a NUL byte). */
bool cr_looks_binary(const char *buf, size_t len);

/* --- corral-init.c ------------------------------------------------------------------------ */

/* Serves requests on fd until the peer closes it; returns the exit status. */
int cr_init_serve(int fd, bool listening);

/* SIGKILLs and reaps every descendant (subreaper or PID 1: all of them come to us). */
void cr_end_descendants(void);

#endif
