/* Unit tests of log/: CRC32C, framing, the API, fencing, pending events, bad input, recovery
 * (torn tails at every byte, bit flips), rotation, the catalog, follow, concurrency, ENOSPC,
 * and a crash test that SIGKILLs appending processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "corral/cleanup.h"
#include "corral/clock.h"
#include "corral/crc32c.h"
#include "corral/id.h"
#include "corral/log.h"
#include "helpers.h"
#include "log/format.h"

/* --- helpers ------------------------------------------------------------------------------- */

static struct cr_log *open_log(const char *dir, uint64_t segment_size)
{
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	if (segment_size)
		o.segment_size = segment_size;
	struct cr_log *log = NULL;
	struct cr_error err;
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), 0, "open %s: %s", dir, err.msg);
	return log;
}

static uint64_t append(struct cr_log *log, const char *session, uint64_t epoch, const char *payload)
{
	struct cr_log_append a = { .session = session,
				   .epoch = epoch,
				   .type = "agent.message",
				   .payload = payload,
				   .payload_len = strlen(payload) };
	struct cr_log_appended out;
	struct cr_error err;
	cr_assert_eq(cr_log_append(log, &a, &out, &err), 0, "append: %s", err.msg);
	return out.seq;
}

/* An asynchronous append, waited for: cr_log_append() without its own path (a blocking call on
 * an idle log writes its batch itself; this always goes through the writer thread's io_uring).
 * Same results as cr_log_append(). */
struct async_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	int result;
	struct cr_log_appended ev;
	struct cr_error err;
};

static void async_wait_done(void *arg, int result, const struct cr_log_appended *ev,
			    const struct cr_error *err)
{
	struct async_wait *w = arg;
	pthread_mutex_lock(&w->m);
	w->result = result;
	if (ev)
		w->ev = *ev;
	if (err)
		w->err = *err;
	w->done = true;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

static int append_via_writer(struct cr_log *log, const struct cr_log_append *a,
			     struct cr_log_appended *ret, struct cr_error *err)
{
	struct async_wait w = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };
	int r = cr_log_append_async(log, a, async_wait_done, &w, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&w.m);
	while (!w.done)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	if (w.result < 0 && err)
		*err = w.err;
	if (w.result == 0 && ret)
		*ret = w.ev;
	return w.result;
}

/* How the fault tests append: blocking (on an idle log, the appending thread writes) or
 * through the writer thread. */
static int append_by(bool via_writer, struct cr_log *log, const struct cr_log_append *a,
		     struct cr_error *err)
{
	return via_writer ? append_via_writer(log, a, NULL, err) : cr_log_append(log, a, NULL, err);
}

static void create(struct cr_log *log, const char *id)
{
	struct cr_error err;
	cr_assert_eq(cr_log_session_create(log, id, NULL, &err), 0, "create %s: %s", id, err.msg);
}

static uint64_t last_seq(struct cr_log *log, const char *session)
{
	struct cr_log_session_info info;
	struct cr_error err;
	cr_assert_eq(cr_log_session_info(log, session, &info, &err), 0, "%s", err.msg);
	return info.last_seq;
}

static char *segment_path(const char *dir, int segno)
{
	char *p;
	cr_assert_geq(asprintf(&p, "%s/%08d.seg", dir, segno), 0);
	return p;
}

static void *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s", path);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	void *buf = malloc((size_t)st.st_size + 1);
	cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void spill(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

/* Offsets of the batch headers of a segment image, and the end of its data. */
static size_t batches(const uint8_t *seg, size_t len, uint64_t *starts, size_t max,
		      uint64_t *ret_end)
{
	size_t n = 0;
	uint64_t pos = LOG_SEG_HEADER;
	struct log_frame f;
	while (log_frame_decode(seg + pos, len - pos, &f) == 1 && f.kind == LOG_BATCH) {
		cr_assert_lt(n, max);
		starts[n++] = pos;
		pos += log_align(f.len) + f.batch_bytes;
	}
	*ret_end = pos;
	return n;
}

/* --- CRC32C and framing -------------------------------------------------------------------- */

Test(log_crc, crc32c_known_vector_and_hw_equals_table)
{
	cr_assert_eq(cr_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(cr_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	uint8_t buf[4099];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < sizeof(buf) - off; len += 97)
			cr_assert_eq(cr_crc32c(0, buf + off, len), cr_crc32c_sw(0, buf + off, len));
	/* continuation equals one pass */
	cr_assert_eq(cr_crc32c(cr_crc32c(0, buf, 100), buf + 100, 200), cr_crc32c(0, buf, 300));
}

static size_t sample_frame(uint8_t *out, struct log_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->kind = LOG_EVENT;
	f->seq = 42;
	f->epoch = 3;
	f->time_ns = 1234567890123;
	memset(f->event_id, 0xab, sizeof(f->event_id));
	f->session = "sesn_abc";
	f->session_len = 8;
	f->type = "user.message";
	f->type_len = 12;
	f->payload = "{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}";
	f->payload_len = strlen(f->payload);
	return log_frame_encode(f, out);
}

Test(log_format, event_frame_round_trips)
{
	uint8_t buf[512];
	struct log_frame in, out;
	size_t n = sample_frame(buf, &in);
	cr_assert_eq(n % 8, 0);
	cr_assert_eq(n, log_frame_size(&in));
	cr_assert_eq(log_frame_decode(buf, n, &out), 1);
	cr_assert_eq(out.seq, 42);
	cr_assert_eq(out.epoch, 3);
	cr_assert_eq(out.time_ns, 1234567890123ull);
	cr_assert_eq(out.session_len, 8);
	cr_assert_eq(memcmp(out.session, "sesn_abc", 8), 0);
	cr_assert_eq(memcmp(out.type, "user.message", 12), 0);
	cr_assert_eq(out.payload_len, in.payload_len);
	cr_assert_eq(memcmp(out.payload, in.payload, in.payload_len), 0);
}

Test(log_format, every_single_bit_flip_is_detected)
{
	uint8_t buf[512], copy[512];
	struct log_frame f;
	size_t n = sample_frame(buf, &f);
	for (size_t bit = 0; bit < n * 8; bit++) {
		memcpy(copy, buf, n);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(log_frame_decode(copy, n, &f), -1, "flip of bit %zu not detected",
			     bit);
	}
}

Test(log_format, every_truncation_is_detected)
{
	uint8_t buf[512];
	struct log_frame f;
	size_t n = sample_frame(buf, &f);
	for (size_t len = 1; len < n; len++)
		cr_assert_eq(log_frame_decode(buf, len, &f), -1, "frame cut at %zu accepted", len);
	uint8_t zeros[32] = { 0 };
	cr_assert_eq(log_frame_decode(zeros, sizeof(zeros), &f), 0, "zeros are the end of data");
}

/* --- the API ------------------------------------------------------------------------------- */

Test(log, append_read_and_reopen)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	char id[CR_LOG_ID_MAX];
	struct cr_error err;
	cr_assert_eq(cr_log_session_create(log, NULL, id, &err), 0, "%s", err.msg);
	cr_assert_eq(strncmp(id, "sesn_", 5), 0);
	cr_assert_eq(strlen(id), 5 + 26);
	for (int i = 1; i <= 20; i++) {
		char p[64];
		snprintf(p, sizeof(p), "{\"n\":%d}", i);
		cr_assert_eq(append(log, id, 0, p), (uint64_t)i, "dense seqs from 1");
	}
	cr_log_close(log);

	log = open_log(dir, 0);
	struct cr_log_event *ev;
	size_t n;
	cr_assert_eq(cr_log_get_events(log, id, 5, 10, &ev, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 10);
	for (size_t i = 0; i < n; i++) {
		char want[64];
		snprintf(want, sizeof(want), "{\"n\":%zu}", i + 6);
		cr_assert_eq(ev[i].seq, i + 6);
		cr_assert_str_eq(ev[i].payload, want);
		cr_assert_str_eq(ev[i].type, "agent.message");
		cr_assert_eq(strncmp(ev[i].id, "sevt_", 5), 0);
		cr_assert_eq(ev[i].processed_ns, ev[i].time_ns);
		if (i)
			cr_assert_str_neq(ev[i].id, ev[i - 1].id);
	}
	cr_log_events_free(ev, n);
	cr_assert_eq(cr_log_get_events(log, id, 20, 0, &ev, &n, &err), 0);
	cr_assert_eq(n, 0);
	cr_log_events_free(ev, n);

	struct cr_log_session_info *list;
	cr_assert_eq(cr_log_list_sessions(log, &list, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].id, id);
	cr_assert_eq(list[0].last_seq, 20);
	free(list);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* An append may name the id its event gets (one a stream announced before the event was
 * written); that id survives a reopen, and a malformed one is refused with nothing written. */
Test(log, an_append_may_name_its_event_id)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	create(log, "s1");
	uint8_t raw[CR_ID_RAW];
	char want[CR_LOG_ID_MAX];
	cr_assert_eq(cr_id_random(raw, NULL), 0);
	cr_assert_eq(cr_id_format("sevt_", raw, want, sizeof(want)), 0);
	struct cr_log_append a[2] = {
		{ .session = "s1",
		  .type = "agent.message",
		  .payload = "{}",
		  .payload_len = 2,
		  .id = want },
		{ .session = "s1",
		  .type = "span.model_request_end",
		  .payload = "{}",
		  .payload_len = 2 },
	};
	struct cr_log_appended got[2];
	cr_assert_eq(cr_log_append_all(log, a, 2, got, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got[0].id, want);
	cr_assert_str_neq(got[1].id, want, "an append without an id gets a drawn one");

	const char *bad[] = { "sesn_0000000000000000000000000", "sevt_x", "sevt_../etc/passwd",
			      "sevt_uuuuuuuuuuuuuuuuuuuuuuuuuu" };
	for (size_t i = 0; i < CR_ARRAY_SIZE(bad); i++) {
		struct cr_log_append b = { .session = "s1",
					   .type = "agent.message",
					   .payload = "{}",
					   .payload_len = 2,
					   .id = bad[i] };
		cr_assert_eq(cr_log_append(log, &b, NULL, &err), -EINVAL, "%s", bad[i]);
	}
	cr_assert_eq(last_seq(log, "s1"), 2, "the refused ones wrote nothing");
	cr_log_close(log);

	log = open_log(dir, 0);
	struct cr_log_event *ev;
	size_t n;
	cr_assert_eq(cr_log_get_events(log, "s1", 0, 0, &ev, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(ev[0].id, want);
	cr_assert_str_eq(ev[1].id, got[1].id);
	cr_log_events_free(ev, n);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* What cr_log_append_all_placed's placed callback sees and does: the group is not durable yet,
 * and an append queued from the callback lands after the group. */
struct placed_probe {
	struct cr_log *log;
	unsigned calls;
	uint64_t seen; /* the session's last durable seq when told */
	pthread_mutex_t m;
	pthread_cond_t c;
	int after_result;
	uint64_t after_seq;
	bool after_done;
};

static void placed_after_done(void *arg, int result, const struct cr_log_appended *ev,
			      const struct cr_error *err)
{
	struct placed_probe *p = arg;
	(void)err;
	pthread_mutex_lock(&p->m);
	p->after_result = result;
	p->after_seq = ev ? ev->seq : 0;
	p->after_done = true;
	pthread_cond_signal(&p->c);
	pthread_mutex_unlock(&p->m);
}

static void placed_told(void *arg)
{
	struct placed_probe *p = arg;
	p->calls++;
	p->seen = last_seq(p->log, "s1");
	struct cr_log_append a = {
		.session = "s1", .type = "after", .payload = "{}", .payload_len = 2
	};
	cr_assert_eq(cr_log_append_async(p->log, &a, placed_after_done, p, NULL), 0);
}

static void *placed_noise(void *arg)
{
	struct placed_probe *p = arg;
	for (int i = 0; i < 400 && !__atomic_load_n(&p->after_done, __ATOMIC_RELAXED); i++)
		append(p->log, "s2", 0, "{\"noise\":true}");
	return NULL;
}

Test(log, a_placed_group_is_told_before_it_is_durable_and_later_appends_follow_it, .timeout = 60)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	create(log, "s1");
	create(log, "s2");
	/* once with the log idle (the group is written by its own thread), then many times with
	 * another thread keeping the writer busy (the group queues) */
	for (int round = 0; round < 40; round++) {
		struct placed_probe p = { .log = log,
					  .m = PTHREAD_MUTEX_INITIALIZER,
					  .c = PTHREAD_COND_INITIALIZER };
		pthread_t noise;
		if (round > 0)
			cr_assert_eq(pthread_create(&noise, NULL, placed_noise, &p), 0);
		uint64_t before = last_seq(log, "s1");
		struct cr_log_append a[2] = {
			{ .session = "s1",
			  .type = "user.message",
			  .payload = "{\"n\":1}",
			  .payload_len = 7,
			  .flags = CR_LOG_PENDING },
			{ .session = "s1",
			  .type = "user.message",
			  .payload = "{\"n\":2}",
			  .payload_len = 7,
			  .flags = CR_LOG_PENDING },
		};
		struct cr_log_placed placed = { placed_told, &p };
		struct cr_log_appended got[2];
		cr_assert_eq(cr_log_append_all_placed(log, a, 2, &placed, got, &err), 0, "%s",
			     err.msg);
		cr_assert_eq(p.calls, 1, "told once");
		cr_assert_eq(p.seen, before, "told before the group was durable");
		cr_assert_eq(got[0].seq, before + 1);
		cr_assert_eq(got[1].seq, before + 2);
		pthread_mutex_lock(&p.m);
		while (!p.after_done)
			pthread_cond_wait(&p.c, &p.m);
		pthread_mutex_unlock(&p.m);
		if (round > 0)
			pthread_join(noise, NULL);
		cr_assert_eq(p.after_result, 0);
		cr_assert_eq(p.after_seq, before + 3, "the append made when told comes after");
	}
	/* a group refused at once is never told */
	struct placed_probe p = { .log = log };
	struct cr_log_append bad = {
		.session = "s1", .type = "Bad Type", .payload = "{}", .payload_len = 2
	};
	struct cr_log_placed placed = { placed_told, &p };
	cr_assert_eq(cr_log_append_all_placed(log, &bad, 1, &placed, NULL, &err), -EINVAL);
	cr_assert_eq(p.calls, 0);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log, fencing_refuses_stale_epoch_and_unexpected_seq)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	create(log, "s1");
	append(log, "s1", 0, "{}");
	uint64_t epoch;
	cr_assert_eq(cr_log_acquire(log, "s1", &epoch, &err), 0, "%s", err.msg);
	cr_assert_eq(epoch, 1);
	cr_assert_eq(last_seq(log, "s1"), 2, "lease.acquired is an event");

	struct cr_log_append a = { .session = "s1",
				   .epoch = 0,
				   .type = "agent.message",
				   .payload = "{}",
				   .payload_len = 2 };
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -ESTALE);
	cr_assert(strstr(err.msg, "conflict") && strstr(err.msg, "epoch"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(append_via_writer(log, &a, NULL, &err), -ESTALE, "the callback says it too");
	cr_assert(strstr(err.msg, "conflict") && strstr(err.msg, "epoch"), "%s", err.msg);
	a.epoch = 2; /* from the future: not the current one either */
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -ESTALE);
	a.epoch = 1;
	a.expected_seq = 7;
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -ESTALE);
	cr_assert(strstr(err.msg, "expected seq 7"), "%s", err.msg);
	cr_assert_eq(last_seq(log, "s1"), 2, "refused appends write nothing");
	a.expected_seq = 3;
	struct cr_log_appended out;
	cr_assert_eq(cr_log_append(log, &a, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.seq, 3);

	struct cr_log_event *ev;
	size_t n;
	cr_assert_eq(cr_log_get_events(log, "s1", 1, 1, &ev, &n, &err), 0);
	cr_assert_str_eq(ev[0].type, "lease.acquired");
	cr_assert_str_eq(ev[0].payload, "{\"epoch\":1}");
	cr_assert_eq(ev[0].epoch, 1);
	cr_log_events_free(ev, n);
	cr_log_close(log);

	/* the epoch survives a reopen: it is in the log */
	log = open_log(dir, 0);
	a.epoch = 0;
	a.expected_seq = 0;
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -ESTALE);
	cr_assert_eq(cr_log_acquire(log, "s1", &epoch, &err), 0);
	cr_assert_eq(epoch, 2);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log, a_group_is_written_whole_in_one_batch_or_not_at_all)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	create(log, "a");
	create(log, "b");
	uint64_t eb;
	cr_assert_eq(cr_log_acquire(log, "b", &eb, &err), 0, "%s", err.msg);
	struct cr_log_append g[3] = {
		{ .session = "a", .type = "x.one", .payload = "{\"n\":1}", .payload_len = 7 },
		{ .session = "a", .type = "x.two", .payload = "{\"n\":2}", .payload_len = 7 },
		{ .session = "b",
		  .epoch = eb,
		  .type = "x.three",
		  .payload = "{}",
		  .payload_len = 2 },
	};
	struct cr_log_appended out[3];
	cr_assert_eq(cr_log_append_all(log, g, 3, out, &err), 0, "%s", err.msg);
	cr_assert_eq(out[0].seq, 1);
	cr_assert_eq(out[1].seq, 2, "two of one session: consecutive, in order");
	cr_assert_eq(out[2].seq, 2, "after b's lease.acquired");
	cr_assert_str_neq(out[0].id, out[1].id);

	/* one stale member refuses the group: nothing of it is written, no number is used */
	g[2].epoch = eb - 1;
	cr_assert_eq(cr_log_append_all(log, g, 3, out, &err), -ESTALE);
	cr_assert(strstr(err.msg, "conflict: session b") && !strstr(err.msg, "not written"),
		  "the refused member's own error: %s", err.msg);
	cr_assert_eq(last_seq(log, "a"), 2);
	cr_assert_eq(last_seq(log, "b"), 2);
	g[0].expected_seq = 9; /* refused first: the others never assigned */
	g[2].epoch = eb;
	cr_assert_eq(cr_log_append_all(log, g, 3, NULL, &err), -ESTALE);
	cr_assert(strstr(err.msg, "expected seq 9"), "%s", err.msg);
	g[0].expected_seq = CR_LOG_ANY_SEQ;
	/* bad input in any member: refused before anything is queued */
	g[1].payload = "{nope";
	g[1].payload_len = 5;
	cr_assert_eq(cr_log_append_all(log, g, 3, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "append 2 of the group"), "%s", err.msg);
	cr_assert_eq(cr_log_append_all(log, g, 0, NULL, &err), -EINVAL);
	cr_assert_eq(cr_log_append_all(log, g, CR_LOG_GROUP_MAX + 1, NULL, &err), -EINVAL);
	cr_assert_eq(last_seq(log, "a"), 2);
	cr_assert_eq(append(log, "a", 0, "{}"), 3, "no gap after refused groups");
	/* through the writer thread too (the log busy with an async append) */
	g[1].payload = "{}";
	g[1].payload_len = 2;
	struct cr_log_append busy = {
		.session = "b", .epoch = eb, .type = "x.busy", .payload = "{}", .payload_len = 2
	};
	cr_assert_eq(cr_log_append_async(log, &busy, NULL, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_append_all(log, g, 3, out, &err), 0, "%s", err.msg);
	cr_assert_eq(out[0].seq, 4);
	cr_assert_eq(out[1].seq, 5);
	cr_log_close(log);

	/* each group is one batch in the segment: a crash keeps all of it or none */
	size_t len;
	_cleanup_free_ char *seg = segment_path(dir, 1);
	_cleanup_free_ uint8_t *img = slurp(seg, &len);
	uint64_t starts[16], end;
	size_t nb = batches(img, len, starts, 16, &end);
	size_t groups = 0;
	for (size_t i = 0; i < nb; i++) {
		struct log_frame f;
		cr_assert_eq(log_frame_decode(img + starts[i], len - starts[i], &f), 1);
		groups += f.batch_frames >= 3;
	}
	cr_assert_eq(groups, 2, "both groups whole in a batch each");
	log = open_log(dir, 0);
	cr_assert_eq(last_seq(log, "a"), 5);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

struct acquirer {
	struct cr_log *log;
	uint64_t epochs[50];
};

static void *acquire_many(void *arg)
{
	struct acquirer *a = arg;
	for (int i = 0; i < 50; i++) {
		struct cr_error err;
		if (cr_log_acquire(a->log, "s", &a->epochs[i], &err) < 0)
			a->epochs[i] = 0;
	}
	return NULL;
}

/* Two workers taking the lease at once must each be told the epoch they got, never the
 * other's: otherwise both believe they hold it. */
Test(log, concurrent_acquires_each_get_their_own_epoch, .timeout = 60)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	create(log, "s");
	struct acquirer a[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		a[i].log = log;
		pthread_create(&t[i], NULL, acquire_many, &a[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	bool seen[201] = { false };
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 50; k++) {
			uint64_t e = a[i].epochs[k];
			cr_assert(e >= 1 && e <= 200, "epoch %llu", (unsigned long long)e);
			cr_assert_not(seen[e], "epoch %llu handed to two acquirers",
				      (unsigned long long)e);
			seen[e] = true;
		}
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log, pending_events_until_marked)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	create(log, "s");
	struct cr_log_append a = { .session = "s",
				   .type = "user.message",
				   .payload = "{\"a\":1}",
				   .payload_len = 7,
				   .flags = CR_LOG_PENDING };
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), 0, "%s", err.msg);
	append(log, "s", 0, "{}");
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), 0);

	struct cr_log_event *ev;
	size_t n;
	cr_assert_eq(cr_log_get_pending(log, "s", &ev, &n, &err), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(ev[0].seq, 1);
	cr_assert_eq(ev[1].seq, 3);
	cr_assert_eq(ev[0].processed_ns, 0, "processed_at is null while pending");
	cr_log_events_free(ev, n);

	cr_assert_eq(cr_log_mark_processed(log, "s", 0, 1, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_mark_processed(log, "s", 0, 1, &err), -EINVAL, "marked twice");
	cr_assert_eq(cr_log_mark_processed(log, "s", 0, 2, &err), -EINVAL, "not a pending one");
	cr_assert_eq(cr_log_mark_processed(log, "s", 5, 3, &err), -ESTALE, "fenced");
	cr_log_close(log);

	log = open_log(dir, 0);
	cr_assert_eq(cr_log_get_pending(log, "s", &ev, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(ev[0].seq, 3);
	cr_log_events_free(ev, n);
	cr_assert_eq(cr_log_get_events(log, "s", 0, 1, &ev, &n, &err), 0);
	cr_assert_gt(ev[0].processed_ns, 0, "processed_at set by the mark");
	cr_assert_geq(ev[0].processed_ns, ev[0].time_ns);
	cr_log_events_free(ev, n);
	struct cr_log_session_info info;
	cr_assert_eq(cr_log_session_info(log, "s", &info, &err), 0);
	cr_assert_eq(info.pending, 1);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log, bad_input_is_refused_and_writes_nothing)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	o.max_payload = 1000;
	struct cr_log *log;
	struct cr_error err;
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), 0, "%s", err.msg);
	create(log, "s");
	struct cr_log_append a = { .session = "s", .type = "agent.message" };

	a.payload = "{\"a\":";
	a.payload_len = strlen(a.payload);
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "not valid JSON"), "%s", err.msg);
	a.payload = "[1,2]";
	a.payload_len = 5;
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "not a JSON object"), "%s", err.msg);
	char big[1100];
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	a.payload = big;
	a.payload_len = sizeof(big);
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -E2BIG);
	a.payload = "{}";
	a.payload_len = 2;
	a.type = "Bad Type";
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -EINVAL);
	a.type = "agent.message";
	a.session = "nosuch";
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -ENOENT);
	cr_assert(strstr(err.msg, "nosuch"), "%s", err.msg);
	a.session = "bad/id";
	cr_assert_eq(cr_log_append(log, &a, NULL, &err), -EINVAL);
	cr_assert_eq(cr_log_session_create(log, "s", NULL, &err), -EEXIST);
	cr_assert_eq(cr_log_session_create(log, "../x", NULL, &err), -EINVAL);
	cr_assert_eq(last_seq(log, "s"), 0);

	/* a second opener is refused while the first holds it */
	struct cr_log *second = NULL;
	cr_assert_eq(cr_log_open(dir, &o, &second, &err), -EBUSY);
	cr_assert(strstr(err.msg, "in use by another process"), "%s", err.msg);
	cr_assert_null(second);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

static const char *second_dir;

static int open_in_other_process(void *arg)
{
	(void)arg;
	struct cr_log_options o;
	cr_log_options_init(&o);
	struct cr_log *log = NULL;
	struct cr_error err;
	int r = cr_log_open(second_dir, &o, &log, &err);
	char want[64];
	snprintf(want, sizeof(want), "(pid %d)", (int)getppid());
	if (r == -EBUSY && strstr(err.msg, "in use by another process") && strstr(err.msg, want))
		return 0;
	fprintf(stderr, "second process: open gave %d: %s\n", r, err.msg);
	return 1;
}

Test(log, a_second_process_is_refused_naming_the_holder)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	second_dir = dir;
	cr_assert_eq(cr_test_run_in_cgroup(NULL, open_in_other_process, NULL), 0);
	cr_log_close(log);
	/* once closed, another process may open it */
	struct cr_error err;
	struct cr_log_options o;
	cr_log_options_init(&o);
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), 0, "%s", err.msg);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log, a_directory_that_is_not_a_log_is_refused)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("notlog");
	_cleanup_free_ char *file = NULL;
	cr_assert_geq(asprintf(&file, "%s/precious.txt", dir), 0);
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	struct cr_log *log = NULL;
	struct cr_error err;
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), -EINVAL);
	cr_assert(strstr(err.msg, "is not a corral log"), "%s", err.msg);
	struct stat st;
	cr_assert_eq(stat(file, &st), 0, "nothing of it was touched");
	o.create = false;
	_cleanup_free_ char *missing = NULL;
	cr_assert_geq(asprintf(&missing, "%s/none", dir), 0);
	cr_assert_eq(cr_log_open(missing, &o, &log, &err), -ENOENT);
	cr_assert_eq(cr_log_open(file, &o, &log, &err), -ENOTDIR);
	cr_test_rmrf(dir);
}

Test(log, segments_rotate_and_all_read_back)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 8192);
	create(log, "s");
	char payload[600];
	memset(payload, 'x', sizeof(payload));
	memcpy(payload, "{\"t\":\"", 6);
	memcpy(payload + sizeof(payload) - 3, "\"}", 3);
	for (int i = 0; i < 100; i++)
		append(log, "s", 0, payload);
	cr_log_close(log);
	_cleanup_free_ char *seg5 = segment_path(dir, 5);
	struct stat st;
	cr_assert_eq(stat(seg5, &st), 0, "100 x 600 bytes in 8 KiB segments make more than 5");

	log = open_log(dir, 8192);
	struct cr_log_event *ev;
	size_t n;
	struct cr_error err;
	cr_assert_eq(cr_log_get_events(log, "s", 0, 0, &ev, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 100);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(ev[i].payload, payload);
	cr_log_events_free(ev, n);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* Whether any extent of the file at path is unwritten (preallocated, never written); -1 when
 * the file system cannot tell (no FIEMAP: tmpfs). */
static int has_unwritten_extents(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	enum {
		N = 256
	};
	struct fiemap *fm = calloc(1, sizeof(*fm) + N * sizeof(struct fiemap_extent));
	cr_assert_not_null(fm);
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = N;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
		int e = errno;
		free(fm);
		cr_assert(e == EOPNOTSUPP || e == ENOTTY, "FIEMAP %s: %s", path, strerror(e));
		return -1;
	}
	cr_assert_gt(fm->fm_mapped_extents, 0, "%s has no extents", path);
	int unwritten = 0;
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
		if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
			unwritten = 1;
	free(fm);
	return unwritten;
}

Test(log, segments_are_made_ahead_written_through_and_leftovers_removed)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 65536);
	create(log, "s");
	cr_log_close(log);
	/* a spare from an earlier run (killed while preparing it) is not part of the log */
	char leftover[PATH_MAX];
	snprintf(leftover, sizeof(leftover), "%s/00000042.seg.tmp", dir);
	int fd = open(leftover, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "junk", 4), 4);
	close(fd);

	log = open_log(dir, 65536);
	cr_assert_eq(access(leftover, F_OK), -1, "open left %s in place", leftover);
	char payload[600];
	memset(payload, 'x', sizeof(payload));
	memcpy(payload, "{\"t\":\"", 6);
	memcpy(payload + sizeof(payload) - 3, "\"}", 3);
	for (int i = 0; i < 300; i++) /* 180 KB: three rotations */
		append(log, "s", 0, payload);
	cr_log_close(log);

	/* every segment's blocks were written when it was made: no unwritten extent is left
	 * for a batch's sync to convert */
	int checked = 0;
	for (int k = 1;; k++) {
		_cleanup_free_ char *seg = segment_path(dir, k);
		if (access(seg, F_OK) < 0) {
			cr_assert_geq(k, 4, "180 KB in 64 KiB segments make at least 3");
			break; /* (the last one, partly filled, matters most) */
		}
		int u = has_unwritten_extents(seg);
		if (u < 0)
			break;
		cr_assert_eq(u, 0, "%s has unwritten extents", seg);
		checked++;
	}
	if (!checked)
		fprintf(stderr, "note: %s has no FIEMAP; extents not checked\n", dir);
	/* closing removed the spare it had made */
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		cr_assert_null(strstr(de->d_name, ".tmp"), "%s left after close", de->d_name);
	closedir(d);

	log = open_log(dir, 65536);
	cr_assert_eq(last_seq(log, "s"), 300);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* --- recovery ------------------------------------------------------------------------------ */

/* A log of 6 single-event batches in one segment; returns the segment's image. */
static uint8_t *six_batches(const char *dir, size_t *len, uint64_t *starts, uint64_t *end)
{
	struct cr_log *log = open_log(dir, 1 << 16);
	create(log, "s");
	for (int i = 1; i <= 5; i++) {
		char p[64];
		snprintf(p, sizeof(p), "{\"n\":%d,\"text\":\"hello there\"}", i);
		append(log, "s", 0, p);
	}
	cr_log_close(log);
	_cleanup_free_ char *seg = segment_path(dir, 1);
	uint8_t *img = slurp(seg, len);
	cr_assert_eq(batches(img, *len, starts, 16, end), 6, "create + 5 appends = 6 batches");
	return img;
}

static int reopen_last_seq(const char *dir, struct cr_error *err, uint64_t *ret)
{
	struct cr_log_options o;
	cr_log_options_init(&o);
	struct cr_log *log;
	int r = cr_log_open(dir, &o, &log, err);
	if (r < 0)
		return r;
	*ret = last_seq(log, "s");
	cr_log_close(log);
	return 0;
}

Test(log_recovery, torn_tail_at_every_byte_is_truncated, .timeout = 120)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	size_t len;
	uint64_t starts[16], end;
	_cleanup_free_ uint8_t *img = six_batches(dir, &len, starts, &end);
	_cleanup_free_ char *seg = segment_path(dir, 1);
	_cleanup_free_ uint8_t *work = malloc(len);

	/* a write torn at byte x of the last batch: the bytes from x on never reached disk (up to
	 * its last non-zero byte: zeroing padding that is zero already tears nothing) */
	uint64_t last_nz = end;
	while (last_nz > starts[5] && img[last_nz - 1] == 0)
		last_nz--;
	for (uint64_t x = starts[5]; x < last_nz; x++) {
		memcpy(work, img, len);
		memset(work + x, 0, end - x);
		spill(seg, work, len);
		struct cr_error err;
		uint64_t seq;
		cr_assert_eq(reopen_last_seq(dir, &err, &seq), 0, "torn at %llu: %s",
			     (unsigned long long)x, err.msg);
		cr_assert_eq(seq, 4, "torn at %llu: the last batch is gone, the rest intact",
			     (unsigned long long)x);
		/* and the log takes appends again where it was cut */
		struct cr_log *log = open_log(dir, 1 << 16);
		cr_assert_eq(append(log, "s", 0, "{\"again\":true}"), 5);
		cr_log_close(log);
		cr_assert_eq(reopen_last_seq(dir, &err, &seq), 0, "%s", err.msg);
		cr_assert_eq(seq, 5);
	}
	/* a file that is physically shorter (no preallocation) */
	for (uint64_t x = starts[5] + 1; x < end; x += 13) {
		spill(seg, img, x);
		struct cr_error err;
		uint64_t seq;
		cr_assert_eq(reopen_last_seq(dir, &err, &seq), 0, "cut at %llu: %s",
			     (unsigned long long)x, err.msg);
		cr_assert_eq(seq, 4);
	}
	cr_test_rmrf(dir);
}

Test(log_recovery, bit_flip_in_the_last_batch_truncates_it, .timeout = 120)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	size_t len;
	uint64_t starts[16], end;
	_cleanup_free_ uint8_t *img = six_batches(dir, &len, starts, &end);
	_cleanup_free_ char *seg = segment_path(dir, 1);
	_cleanup_free_ uint8_t *work = malloc(len);
	for (uint64_t bit = starts[5] * 8; bit < end * 8; bit += 3) {
		memcpy(work, img, len);
		work[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		spill(seg, work, len);
		struct cr_error err;
		uint64_t seq;
		cr_assert_eq(reopen_last_seq(dir, &err, &seq), 0, "flip %llu: %s",
			     (unsigned long long)bit, err.msg);
		cr_assert_eq(seq, 4, "flip of bit %llu", (unsigned long long)bit);
	}
	cr_test_rmrf(dir);
}

Test(log_recovery, bit_flip_followed_by_good_batches_is_corruption, .timeout = 120)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	size_t len;
	uint64_t starts[16], end;
	_cleanup_free_ uint8_t *img = six_batches(dir, &len, starts, &end);
	_cleanup_free_ char *seg = segment_path(dir, 1);
	_cleanup_free_ uint8_t *work = malloc(len);
	/* every bit of the third batch: header frame and event frame, header and payload */
	for (uint64_t bit = starts[2] * 8; bit < starts[3] * 8; bit++) {
		memcpy(work, img, len);
		work[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		spill(seg, work, len);
		struct cr_error err;
		uint64_t seq;
		int r = reopen_last_seq(dir, &err, &seq);
		cr_assert_eq(r, -EUCLEAN, "flip of bit %llu: open gave %d, last seq %llu",
			     (unsigned long long)bit, r, (unsigned long long)seq);
		cr_assert(strstr(err.msg, "00000001.seg offset"), "names segment and offset: %s",
			  err.msg);
	}
	/* nothing was changed by the refused opens: the pristine image opens whole */
	spill(seg, img, len);
	struct cr_error err;
	uint64_t seq;
	cr_assert_eq(reopen_last_seq(dir, &err, &seq), 0, "%s", err.msg);
	cr_assert_eq(seq, 5);
	cr_test_rmrf(dir);
}

Test(log_recovery, catalog_is_repaired_from_the_log)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	create(log, "a");
	create(log, "b");
	append(log, "a", 0, "{}");
	append(log, "a", 0, "{}");
	cr_log_close(log);

	_cleanup_free_ char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/catalog.db", dir), 0);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "UPDATE sessions SET last_seq = 99, epoch = 7 WHERE id = 'a';"
				  "DELETE FROM sessions WHERE id = 'b';"
				  "INSERT INTO sessions (id, created_ns, epoch, last_seq) "
				  "VALUES ('ghost', 1, 0, 3);",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);

	log = open_log(dir, 0);
	cr_log_close(log);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id, epoch, last_seq FROM sessions ORDER BY id",
					-1, &st, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "a");
	cr_assert_eq(sqlite3_column_int64(st, 1), 0);
	cr_assert_eq(sqlite3_column_int64(st, 2), 2);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "b");
	cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "ghost is gone: the log wins");
	sqlite3_finalize(st);
	sqlite3_close(db);
	cr_test_rmrf(dir);
}

static struct cr_log_sandbox sandbox_row(const char *id, const char *session, const char *address)
{
	struct cr_log_sandbox r = { 0 };
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.session, sizeof(r.session), "%s", session);
	snprintf(r.address, sizeof(r.address), "%s", address);
	return r;
}

Test(log, catalog_maps_sandbox_addresses_to_sessions)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct cr_error err;
	struct cr_log_sandbox a = sandbox_row("sbx_a", "sesn_1", "10.213.0.2");
	struct cr_log_sandbox b = sandbox_row("sbx_b", "sesn_2", "");
	struct cr_log_sandbox got;
	cr_assert_eq(cr_log_sandbox_note(log, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_sandbox_note(log, &b, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_sandbox_by_address(log, "10.213.0.2", &got, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got.id, "sbx_a");
	cr_assert_str_eq(got.session, "sesn_1");
	cr_assert_eq(cr_log_sandbox_by_address(log, "10.213.0.6", &got, &err), -ENOENT);
	cr_assert(strstr(err.msg, "10.213.0.6"), "%s", err.msg);
	/* handed off: the same row, another session */
	a = sandbox_row("sbx_a", "sesn_3", "10.213.0.2");
	cr_assert_eq(cr_log_sandbox_note(log, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_sandbox_by_address(log, "10.213.0.2", &got, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got.session, "sesn_3");
	/* a new sandbox with a stale row's address: the address is the new one's alone */
	struct cr_log_sandbox c = sandbox_row("sbx_c", "sesn_1", "10.213.0.2");
	cr_assert_eq(cr_log_sandbox_note(log, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_sandbox_by_address(log, "10.213.0.2", &got, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got.id, "sbx_c");
	struct cr_log_sandbox *v;
	size_t n;
	cr_assert_eq(cr_log_list_sandboxes(log, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2, "sbx_a gave its address up with its row");
	cr_assert_str_eq(v[0].id, "sbx_b");
	cr_assert_str_eq(v[0].address, "", "no egress: no address");
	cr_assert_str_eq(v[1].id, "sbx_c");
	free(v);
	/* bad rows are refused whole */
	struct cr_log_sandbox bad = sandbox_row("sbx_d", "", "");
	cr_assert_eq(cr_log_sandbox_note(log, &bad, &err), -EINVAL);
	cr_assert_eq(cr_log_sandboxes_reset(log, (struct cr_log_sandbox[]){ a, bad }, 2, &err),
		     -EINVAL);
	cr_assert_eq(cr_log_list_sandboxes(log, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2, "a refused reset changes nothing");
	free(v);
	cr_assert_eq(cr_log_sandbox_forget(log, "sbx_b", &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_sandbox_forget(log, "sbx_none", &err), 0, "%s", err.msg);
	cr_log_close(log);

	/* kept across a reopen; a reset makes the table exactly what it is given */
	log = open_log(dir, 0);
	cr_assert_eq(cr_log_sandbox_by_address(log, "10.213.0.2", &got, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got.id, "sbx_c");
	cr_assert_eq(cr_log_sandboxes_reset(log, &a, 1, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_list_sandboxes(log, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].id, "sbx_a");
	free(v);
	cr_assert_eq(cr_log_sandboxes_reset(log, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_log_list_sandboxes(log, &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 0);
	free(v);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

Test(log_recovery, a_version_1_catalog_is_migrated_and_a_newer_one_refused)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	create(log, "a");
	cr_log_close(log);
	_cleanup_free_ char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/catalog.db", dir), 0);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "DROP TABLE sandboxes; PRAGMA user_version = 1;", NULL, NULL,
				  NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);

	log = open_log(dir, 0);
	struct cr_error err;
	struct cr_log_sandbox a = sandbox_row("sbx_a", "a", "10.213.0.2");
	cr_assert_eq(cr_log_sandbox_note(log, &a, &err), 0, "%s", err.msg);
	cr_log_close(log);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct cr_log_options o;
	cr_log_options_init(&o);
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), -EPROTONOSUPPORT);
	cr_assert(strstr(err.msg, "schema version 99"), "%s", err.msg);
	cr_test_rmrf(dir);
}

/* --- follow and concurrency ---------------------------------------------------------------- */

struct later {
	struct cr_log *log;
	int delay_ms;
};

static void *append_later(void *arg)
{
	struct later *l = arg;
	usleep((useconds_t)l->delay_ms * 1000);
	append(l->log, "s", 0, "{\"late\":true}");
	return NULL;
}

Test(log, wait_wakes_on_a_durable_event_and_times_out_otherwise, .timeout = 20)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	create(log, "s");
	struct cr_error err;
	uint64_t seq = 0;
	cr_assert_eq(cr_log_wait(log, "s", 0, 50, &seq, &err), -ETIMEDOUT);
	struct later l = { log, 100 };
	pthread_t t;
	pthread_create(&t, NULL, append_later, &l);
	cr_assert_eq(cr_log_wait(log, "s", 0, 5000, &seq, &err), 0, "%s", err.msg);
	cr_assert_eq(seq, 1);
	pthread_join(t, NULL);
	cr_assert_eq(cr_log_wait(log, "nosuch", 0, 10, &seq, &err), -ENOENT);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

struct kick {
	struct cr_log *log;
	const char *session;
};

static void *kick_later(void *arg)
{
	struct kick *k = arg;
	usleep(100 * 1000);
	cr_log_kick(k->log, k->session);
	return NULL;
}

Test(log, a_kick_ends_the_sessions_waits_without_an_event, .timeout = 20)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	create(log, "s");
	append(log, "s", 0, "{}");
	struct cr_error err;
	uint64_t seq = 0;
	pthread_t t;
	struct kick k = { log, "s" };
	pthread_create(&t, NULL, kick_later, &k);
	int64_t t0 = cr_now_ms();
	cr_assert_eq(cr_log_wait(log, "s", 1, 10000, &seq, &err), 0, "%s", err.msg);
	cr_assert_lt(cr_now_ms() - t0, 5000, "the kick ended the wait, not its timeout");
	cr_assert_eq(seq, 1, "no new event: the last durable seq as it was");
	pthread_join(t, NULL);
	cr_assert_eq(cr_log_wait(log, "s", 1, 50, &seq, &err), -ETIMEDOUT,
		     "a kick before a wait does not end it");
	create(log, "other");
	cr_log_kick(log, "nosuch");
	struct kick other = { log, "other" };
	pthread_create(&t, NULL, kick_later, &other);
	cr_assert_eq(cr_log_wait(log, "s", 1, 400, &seq, &err), -ETIMEDOUT,
		     "a kick of another session does not end it");
	pthread_join(t, NULL);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

struct follow {
	struct cr_log *log;
	char session[16];
	int result;
	int64_t waited_ms;
};

static void *follow_main(void *arg)
{
	struct follow *f = arg;
	struct cr_error err;
	int64_t t0 = cr_now_ms();
	f->result = cr_log_wait(f->log, f->session, 1, 20000, NULL, &err);
	f->waited_ms = cr_now_ms() - t0;
	return NULL;
}

/* An event wakes the waits on its own session only: eight streams on eight sessions, one event
 * to one of them, one of them woken to look. */
Test(log, an_event_wakes_only_the_waits_on_its_session, .timeout = 60)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 0);
	struct follow f[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		f[i] = (struct follow){ .log = log };
		snprintf(f[i].session, sizeof(f[i].session), "s%d", i);
		create(log, f[i].session);
		append(log, f[i].session, 0, "{}");
	}
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, follow_main, &f[i]), 0);
	struct cr_log_stats st;
	int64_t until = cr_now_ms() + 10000;
	do {
		cr_log_get_stats(log, &st);
		if (st.followers < 8)
			usleep(1000);
	} while (st.followers < 8 && cr_now_ms() < until);
	cr_assert_eq(st.followers, 8, "every stream is waiting");
	uint64_t wakes = st.follower_wakes;
	append(log, "s3", 0, "{\"n\":2}");
	pthread_join(t[3], NULL);
	cr_assert_eq(f[3].result, 0);
	cr_log_get_stats(log, &st);
	cr_assert_eq(st.follower_wakes - wakes, 1, "one wait woken, not %" PRIu64,
		     st.follower_wakes - wakes);
	cr_assert_eq(st.followers, 7);
	for (int i = 0; i < 8; i++)
		if (i != 3)
			cr_log_kick(log, f[i].session);
	for (int i = 0; i < 8; i++)
		if (i != 3) {
			pthread_join(t[i], NULL);
			cr_assert_eq(f[i].result, 0);
			cr_assert_lt(f[i].waited_ms, 15000, "the kick ended it");
		}
	cr_log_get_stats(log, &st);
	cr_assert_eq(st.followers, 0);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

#define THREADS 16
#define SESSIONS 8
#define PER_THREAD 200

struct worker {
	struct cr_log *log;
	int id;
};

static void *appender(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char session[16], payload[64];
		snprintf(session, sizeof(session), "s%d", (w->id + i) % SESSIONS);
		snprintf(payload, sizeof(payload), "{\"thread\":%d,\"i\":%d}", w->id, i);
		struct cr_log_append a = { .session = session,
					   .type = "agent.message",
					   .payload = payload,
					   .payload_len = strlen(payload) };
		struct cr_error err;
		if (cr_log_append(w->log, &a, NULL, &err) < 0)
			return (void *)1;
	}
	return NULL;
}

Test(log, many_threads_many_sessions_dense_ordered_seqs, .timeout = 60)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 1 << 20);
	for (int s = 0; s < SESSIONS; s++) {
		char id[16];
		snprintf(id, sizeof(id), "s%d", s);
		create(log, id);
	}
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ log, i };
		pthread_create(&t[i], NULL, appender, &w[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		void *res;
		pthread_join(t[i], &res);
		cr_assert_null(res, "thread %d failed an append", i);
	}
	struct cr_log_stats stats;
	cr_log_get_stats(log, &stats);
	cr_assert_eq(stats.appends, THREADS * PER_THREAD);
	cr_assert_lt(stats.batches, stats.appends, "group commit shares syncs");
	cr_log_close(log);

	log = open_log(dir, 1 << 20);
	size_t total = 0;
	for (int s = 0; s < SESSIONS; s++) {
		char id[16];
		snprintf(id, sizeof(id), "s%d", s);
		struct cr_log_event *ev;
		size_t n;
		struct cr_error err;
		cr_assert_eq(cr_log_get_events(log, id, 0, 0, &ev, &n, &err), 0, "%s", err.msg);
		int last_i[THREADS];
		for (int k = 0; k < THREADS; k++)
			last_i[k] = -1;
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(ev[i].seq, i + 1, "dense");
			int th, idx;
			cr_assert_eq(sscanf(ev[i].payload, "{\"thread\":%d,\"i\":%d}", &th, &idx),
				     2);
			cr_assert_gt(idx, last_i[th], "one thread's appends keep their order");
			last_i[th] = idx;
		}
		total += n;
		cr_log_events_free(ev, n);
	}
	cr_assert_eq(total, THREADS * PER_THREAD);
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* Chains of asynchronous appends, each issuing its next from the completion of its last (as
 * an event loop does), beside threads making blocking appends: the writer thread and appending
 * threads that write their own batch on an idle log hand the writer's role back and forth. */
#define CHAINS 16
#define CHAIN_LEN 150
#define BLOCKERS 4

struct chain {
	struct cr_log *log;
	int id, n;
	uint64_t last_seq;
	char bad[300];
	pthread_mutex_t *m;
	pthread_cond_t *c;
	int *running;
};

static void chain_next(struct chain *ch);

static void chain_done(void *arg, int result, const struct cr_log_appended *ev,
		       const struct cr_error *err)
{
	struct chain *ch = arg;
	if (result < 0)
		snprintf(ch->bad, sizeof(ch->bad), "append %d: %s", ch->n, err->msg);
	else if (ev->seq <= ch->last_seq || strncmp(ev->id, "sevt_", 5) != 0)
		snprintf(ch->bad, sizeof(ch->bad), "append %d: seq %llu after %llu, id %s", ch->n,
			 (unsigned long long)ev->seq, (unsigned long long)ch->last_seq, ev->id);
	else
		ch->last_seq = ev->seq;
	ch->n++;
	if (!ch->bad[0] && ch->n < CHAIN_LEN) {
		chain_next(ch);
		return;
	}
	pthread_mutex_lock(ch->m);
	(*ch->running)--;
	pthread_cond_signal(ch->c);
	pthread_mutex_unlock(ch->m);
}

static void chain_next(struct chain *ch)
{
	char session[16], payload[64];
	snprintf(session, sizeof(session), "a%d", ch->id % 4);
	int len = snprintf(payload, sizeof(payload), "{\"chain\":%d,\"i\":%d}", ch->id, ch->n);
	struct cr_log_append a = { .session = session,
				   .type = "agent.message",
				   .payload = payload,
				   .payload_len = (size_t)len };
	struct cr_error err;
	if (cr_log_append_async(ch->log, &a, chain_done, ch, &err) < 0) {
		struct cr_error copy = err;
		ch->n = CHAIN_LEN; /* ends the chain */
		chain_done(ch, -copy.code, NULL, &copy);
	}
}

static void *blocker(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char session[16], payload[64];
		snprintf(session, sizeof(session), "b%d", w->id);
		int len = snprintf(payload, sizeof(payload), "{\"thread\":%d,\"i\":%d}", w->id, i);
		struct cr_log_append a = { .session = session,
					   .type = "agent.message",
					   .payload = payload,
					   .payload_len = (size_t)len };
		struct cr_log_appended out;
		struct cr_error err;
		if (cr_log_append(w->log, &a, &out, &err) < 0 || out.seq != (uint64_t)i + 1)
			return (void *)1;
		if (i % 16 == 0)
			usleep(500); /* now and then the log goes idle: an inline batch */
	}
	return NULL;
}

Test(log, async_chains_and_blocking_threads_share_the_writer, .timeout = 60)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("log");
	struct cr_log *log = open_log(dir, 256 << 10);
	for (int s = 0; s < 4; s++) {
		char id[16];
		snprintf(id, sizeof(id), "a%d", s);
		create(log, id);
		snprintf(id, sizeof(id), "b%d", s);
		create(log, id);
	}
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	int running = CHAINS;
	struct chain ch[CHAINS];
	pthread_t t[BLOCKERS];
	struct worker w[BLOCKERS];
	for (int i = 0; i < BLOCKERS; i++) {
		w[i] = (struct worker){ log, i };
		pthread_create(&t[i], NULL, blocker, &w[i]);
	}
	for (int i = 0; i < CHAINS; i++) {
		ch[i] = (struct chain){
			.log = log, .id = i, .m = &m, .c = &c, .running = &running
		};
		chain_next(&ch[i]);
	}
	pthread_mutex_lock(&m);
	while (running)
		pthread_cond_wait(&c, &m);
	pthread_mutex_unlock(&m);
	for (int i = 0; i < BLOCKERS; i++) {
		void *res;
		pthread_join(t[i], &res);
		cr_assert_null(res, "blocking thread %d failed an append", i);
	}
	for (int i = 0; i < CHAINS; i++)
		cr_assert_eq(ch[i].bad[0], 0, "chain %d: %s", i, ch[i].bad);
	cr_log_close(log);

	log = open_log(dir, 256 << 10);
	for (int s = 0; s < 4; s++) {
		char id[16];
		snprintf(id, sizeof(id), "a%d", s);
		cr_assert_eq(last_seq(log, id), (uint64_t)(CHAINS / 4 * CHAIN_LEN), "%s", id);
		snprintf(id, sizeof(id), "b%d", s);
		cr_assert_eq(last_seq(log, id), (uint64_t)PER_THREAD, "%s", id);
	}
	cr_log_close(log);
	cr_test_rmrf(dir);
}

/* --- faults -------------------------------------------------------------------------------- */

/* In a child with a private mount namespace: a 1 MiB tmpfs fills up; appends fail with
 * ENOSPC and write nothing; after space is freed they succeed again. */
static int enospc_child(void *arg)
{
	bool via_writer = *(bool *)arg;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	_cleanup_free_ char *dir = cr_test_tmpdir("enospc");
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0)
		return 77;
	char logdir[PATH_MAX], filler[PATH_MAX];
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	o.segment_size = 128 << 10;
	struct cr_log *log;
	struct cr_error err;
	if (cr_log_open(logdir, &o, &log, &err) < 0 || cr_log_session_create(log, "s", NULL, &err))
		return 10;
	/* fill what is left */
	int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	char block[4096] = { 0 };
	while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
		;
	close(fd);
	char payload[2048];
	memset(payload, 'y', sizeof(payload));
	memcpy(payload, "{\"t\":\"", 6);
	memcpy(payload + sizeof(payload) - 2, "\"}", 2);
	struct cr_log_append a = { .session = "s",
				   .type = "agent.message",
				   .payload = payload,
				   .payload_len = sizeof(payload) };
	int r = 0, ok = 0;
	for (int i = 0; i < 200 && r == 0; i++) {
		r = append_by(via_writer, log, &a, &err);
		ok += r == 0;
	}
	if (r != -ENOSPC)
		return 11;
	struct cr_log_session_info info;
	cr_log_session_info(log, "s", &info, &err);
	if (info.last_seq != (uint64_t)ok)
		return 12; /* nothing of the failed append is visible */
	if (append_by(via_writer, log, &a, &err) != -ENOSPC)
		return 13;
	/* two events of one session in a batch that fails: the session's next number goes back
	 * to the first's (no gap after space is freed, checked at the end) */
	struct cr_log_append two[2] = { a, a };
	if (cr_log_append_all(log, two, 2, NULL, &err) != -ENOSPC)
		return 17;
	unlink(filler);
	if (append_by(via_writer, log, &a, &err) != 0)
		return 14; /* space again: appends succeed */
	cr_log_close(log);
	if (cr_log_open(logdir, &o, &log, &err) < 0)
		return 15;
	cr_log_session_info(log, "s", &info, &err);
	cr_log_close(log);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return info.last_seq == (uint64_t)ok + 1 ? 0 : 16;
}

static void disk_full(bool via_writer)
{
	int r = cr_test_run_in_cgroup(NULL, enospc_child, &via_writer);
	cr_test_need(r != 77, "mount namespaces or tmpfs unavailable");
	cr_assert_eq(r, 0, "ENOSPC scenario failed at step %d", r);
}

Test(log_faults, disk_full_fails_appends_until_space_is_freed, .timeout = 60)
{
	disk_full(false);
}

Test(log_faults, disk_full_through_the_writer_thread, .timeout = 60)
{
	disk_full(true);
}

/* Punches out of the loop device's backing file the blocks of log segment 1 past its first
 * 8 KiB (which hold every event appended so far), so that they take new backing space when
 * written. */
static int punch_unused_blocks(const char *logdir, const char *backing)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/00000001.seg", logdir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int bfd = open(backing, O_RDWR | O_CLOEXEC);
	struct stat st;
	int bsz = 0;
	if (fd < 0 || bfd < 0 || fstat(fd, &st) < 0 || ioctl(fd, FIGETBSZ, &bsz) < 0 || bsz <= 0) {
		fprintf(stderr, "segment %s or backing file %s: %s\n", path, backing,
			strerror(errno));
		return -1;
	}
	int punched = 0;
	for (int lblk = 8192 / bsz; (off_t)lblk * bsz < st.st_size; lblk++) {
		int pblk = lblk;
		if (ioctl(fd, FIBMAP, &pblk) < 0 || pblk == 0) {
			fprintf(stderr, "FIBMAP %s block %d: %s\n", path, lblk,
				pblk ? strerror(errno) : "not allocated");
			return -1;
		}
		if (fallocate(bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pblk * bsz,
			      bsz) < 0) {
			fprintf(stderr, "punch %s: %s\n", backing, strerror(errno));
			return -1;
		}
		punched++;
	}
	return punched > 0 ? 0 : -1;
}

/* In a child with a private mount namespace: an ext2 file system on a loop device whose backing
 * file lives on a 16 MiB tmpfs. Once that tmpfs is full, writeback to the loop device fails and
 * so does fdatasync: a real kernel I/O error. The append fails with EIO, every later append is
 * refused (also after space is back: the failure is never retried over), acknowledged events
 * survive a reopen. Returns 77 when loop devices or mke2fs are not to be had. */
static int sync_error_child(void *arg)
{
	bool via_writer = *(bool *)arg;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	_cleanup_free_ char *top = cr_test_tmpdir("eio");
	/* (top is a temporary directory's path: short, whatever TMPDIR is) */
	char back[PATH_MAX / 2], mnt[PATH_MAX / 2], disk[PATH_MAX], filler[PATH_MAX],
		logdir[PATH_MAX], dev[32];
	snprintf(back, sizeof(back), "%s/back", top);
	snprintf(mnt, sizeof(mnt), "%s/mnt", top);
	snprintf(disk, sizeof(disk), "%s/disk", back);
	snprintf(filler, sizeof(filler), "%s/filler", back);
	snprintf(logdir, sizeof(logdir), "%s/log", mnt);
	int step = 77, lfd = -1;
	if (mkdir(back, 0700) < 0 || mkdir(mnt, 0700) < 0 ||
	    mount("tmpfs", back, "tmpfs", 0, "size=16m") < 0) {
		fprintf(stderr, "skip: tmpfs for the backing file: %s\n", strerror(errno));
		goto out_dirs;
	}
	int dfd = open(disk, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int n = ctl >= 0 ? ioctl(ctl, LOOP_CTL_GET_FREE) : -1;
	if (ctl >= 0)
		close(ctl);
	snprintf(dev, sizeof(dev), "/dev/loop%d", n);
	if (dfd < 0 || n < 0 || ftruncate(dfd, 32 << 20) < 0 ||
	    (lfd = open(dev, O_RDWR | O_CLOEXEC)) < 0 || ioctl(lfd, LOOP_SET_FD, dfd) < 0) {
		fprintf(stderr, "skip: loop device %s: %s\n", dev, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto out_back;
	}
	close(dfd);
	/* freed by the kernel once unmounted and closed, even if this process dies first */
	struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
	if (ioctl(lfd, LOOP_SET_STATUS64, &info) < 0)
		fprintf(stderr, "loop autoclear: %s\n", strerror(errno));
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "mke2fs -F -b 4096 -N 128 -m 0 %s >/dev/null 2>&1", dev);
	if (system(cmd) != 0) {
		fprintf(stderr, "skip: %s failed\n", cmd);
		goto out_loop;
	}
	if (mount(dev, mnt, "ext2", 0, "errors=continue") < 0) {
		int e2 = errno;
		if (mount(dev, mnt, "ext4", 0, "errors=continue") < 0) {
			fprintf(stderr, "skip: mount %s as ext2: %s; as ext4: %s\n", dev,
				strerror(e2), strerror(errno));
			goto out_loop;
		}
	}

	step = 1;
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	o.segment_size = 1 << 20;
	struct cr_log *log;
	struct cr_error err;
	if (cr_log_open(logdir, &o, &log, &err) < 0 || cr_log_session_create(log, "s", NULL, &err))
		goto out_mnt;
	struct cr_log_append a = { .session = "s",
				   .type = "agent.message",
				   .payload = "{\"ok\":true}",
				   .payload_len = 11 };
	step = 2;
	for (int i = 0; i < 5; i++)
		if (cr_log_append(log, &a, NULL, &err) < 0)
			goto out_log;
	/* Segments are written full of zeros when made, so their space in the backing file is
	 * already there and writes into them would succeed on a full backing store. Give the
	 * unused part of the active segment back to the backing tmpfs (found with FIBMAP), then
	 * fill that tmpfs: the next batch's writeback fails, a real fdatasync error. */
	if (punch_unused_blocks(logdir, disk) < 0)
		goto out_log;
	int fill = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	char block[65536];
	memset(block, 'f', sizeof(block));
	while (fill >= 0 && write(fill, block, sizeof(block)) > 0)
		;
	if (fill >= 0)
		close(fill);
	step = 3;
	static char big[65536];
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	a.payload = big;
	a.payload_len = sizeof(big);
	int r = 0, acked = 5;
	for (int i = 0; i < 64 && r == 0; i++) {
		r = append_by(via_writer, log, &a, &err);
		acked += r == 0;
	}
	/* (a batch may still get through: writeback of the spare segment, racing with the
	 * filler, can leave a few pages of backing store free) */
	if (r != -EIO || acked - 5 >= 15 || !strstr(err.msg, "fdatasync of the log")) {
		fprintf(stderr,
			"append on a failing disk: %d (%s) after %d acks, want EIO from "
			"the fdatasync of a batch in segment 1\n",
			r, err.msg, acked - 5);
		goto out_log;
	}
	step = 4;
	if (append_by(via_writer, log, &a, &err) != -EIO || !strstr(err.msg, "until reopened")) {
		fprintf(stderr, "second append: %s\n", err.msg);
		goto out_log;
	}
	step = 5;
	unlink(filler);
	if (append_by(via_writer, log, &a, &err) != -EIO)
		goto out_log; /* space is back, but the failure is not retried over */
	if (last_seq(log, "s") != (uint64_t)acked)
		goto out_log; /* nothing of the failed batches was published */
	cr_log_close(log);
	step = 6;
	o.create = false;
	if (cr_log_open(logdir, &o, &log, &err) < 0) {
		fprintf(stderr, "reopen: %s\n", err.msg);
		goto out_mnt;
	}
	struct cr_log_event *ev;
	size_t got;
	if (cr_log_get_events(log, "s", 0, 100, &ev, &got, &err) < 0 || got != (size_t)acked) {
		fprintf(stderr, "after reopen: %zu events, want the %d acknowledged\n", got, acked);
		goto out_log; /* every acknowledged event is there, and none that failed */
	}
	for (size_t i = 0; i < got; i++)
		if (i < 5 ? strcmp(ev[i].payload, "{\"ok\":true}") != 0
			  : ev[i].payload_len != sizeof(big) ||
				    memcmp(ev[i].payload, big, sizeof(big)) != 0)
			goto out_log;
	cr_log_events_free(ev, got);
	step = 0;
out_log:
	cr_log_close(log);
out_mnt:
	umount2(mnt, MNT_DETACH);
out_loop:
	ioctl(lfd, LOOP_CLR_FD, 0);
	close(lfd);
out_back:
	umount2(back, MNT_DETACH);
out_dirs:
	rmdir(mnt);
	rmdir(back);
	rmdir(top);
	return step;
}

static void sync_error(bool via_writer)
{
	int r = cr_test_run_in_cgroup(NULL, sync_error_child, &via_writer);
	cr_test_need(r != 77, "loop devices, tmpfs or mke2fs unavailable");
	cr_assert_eq(r, 0, "I/O error scenario failed at step %d", r);
}

/* blocking appends on an idle log: the appending thread's own write and fdatasync fail */
Test(log_faults, fdatasync_error_fails_the_batch_and_every_later_append, .timeout = 60)
{
	sync_error(false);
}

/* the same through the writer thread: the io_uring's linked write and fsync fail */
Test(log_faults, fdatasync_error_through_the_writer_thread, .timeout = 60)
{
	sync_error(true);
}

/* --- crash test ---------------------------------------------------------------------------- */

#define CRASH_THREADS 8
#define CRASH_SESSIONS 4
#define CRASH_ROUNDS 20

struct crash_worker {
	struct cr_log *log;
	int id, fd;
};

static void *crash_appender(void *arg)
{
	struct crash_worker *w = arg;
	for (unsigned i = 0;; i++) {
		char session[16], payload[128];
		snprintf(session, sizeof(session), "c%d", w->id % CRASH_SESSIONS);
		snprintf(payload, sizeof(payload), "{\"w\":%d,\"i\":%u,\"pad\":\"%0*u\"}", w->id, i,
			 (int)(i % 50), 0u);
		struct cr_log_append a = { .session = session,
					   .type = "agent.message",
					   .payload = payload,
					   .payload_len = strlen(payload) };
		struct cr_log_appended out;
		struct cr_error err;
		if (cr_log_append(w->log, &a, &out, &err) < 0)
			return NULL;
		/* the side channel: what was acknowledged, with its checksum */
		char line[256];
		int n = snprintf(line, sizeof(line), "%s %llu %08x\n", session,
				 (unsigned long long)out.seq,
				 cr_crc32c(0, payload, strlen(payload)));
		if (write(w->fd, line, (size_t)n) != n)
			return NULL;
	}
}

static void crash_child(const char *dir, int fd)
{
	struct cr_log *log;
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	o.segment_size = 256 << 10; /* rotations happen during the test too */
	struct cr_error err;
	if (cr_log_open(dir, &o, &log, &err) < 0) {
		fprintf(stderr, "crash child: %s\n", err.msg);
		_exit(1);
	}
	for (int s = 0; s < CRASH_SESSIONS; s++) {
		char id[16];
		snprintf(id, sizeof(id), "c%d", s);
		cr_log_session_create(log, id, NULL, &err); /* EEXIST after the first round */
	}
	if (write(fd, "ready\n", 6) != 6)
		_exit(1);
	pthread_t t[CRASH_THREADS];
	struct crash_worker w[CRASH_THREADS];
	for (int i = 0; i < CRASH_THREADS; i++) {
		w[i] = (struct crash_worker){ log, i, fd };
		pthread_create(&t[i], NULL, crash_appender, &w[i]);
	}
	for (;;)
		pause();
}

Test(log_crash, sigkill_loses_no_acknowledged_event, .timeout = 240)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("crash");
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	size_t checked = 0;
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		int p[2];
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(p[0]);
			crash_child(dir, p[1]);
		}
		close(p[1]);
		FILE *acks = fdopen(p[0], "r");
		char line[256];
		cr_assert_not_null(fgets(line, sizeof(line), acks), "child did not start");
		cr_assert_str_eq(line, "ready\n");
		usleep((useconds_t)(rand() % 150000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);

		struct cr_log *log = open_log(dir, 256 << 10);
		while (fgets(line, sizeof(line), acks)) {
			char session[16];
			unsigned long long seq;
			unsigned crc;
			if (sscanf(line, "%15s %llu %x", session, &seq, &crc) != 3)
				continue; /* the last line may be cut by the kill */
			struct cr_log_event *ev;
			size_t n;
			struct cr_error err;
			cr_assert_eq(cr_log_get_events(log, session, seq - 1, 1, &ev, &n, &err), 0,
				     "%s", err.msg);
			cr_assert_eq(n, 1, "round %d: acknowledged %s seq %llu is lost", round,
				     session, seq);
			cr_assert_eq(cr_crc32c(0, ev[0].payload, ev[0].payload_len), crc,
				     "round %d: %s seq %llu is not what was acknowledged", round,
				     session, seq);
			cr_log_events_free(ev, n);
			checked++;
		}
		fclose(acks);
		/* every visible event is whole, seqs are dense */
		for (int s = 0; s < CRASH_SESSIONS; s++) {
			char id[16];
			snprintf(id, sizeof(id), "c%d", s);
			struct cr_log_event *ev;
			size_t n;
			struct cr_error err;
			cr_assert_eq(cr_log_get_events(log, id, 0, 0, &ev, &n, &err), 0, "%s",
				     err.msg);
			for (size_t i = 0; i < n; i++)
				cr_assert_eq(ev[i].seq, i + 1);
			cr_log_events_free(ev, n);
		}
		cr_log_close(log);
	}
	cr_assert_gt(checked, 0, "the crash test checked no acknowledged event");
	printf("log_crash: %d rounds, %zu acknowledged events checked\n", CRASH_ROUNDS, checked);
	cr_test_rmrf(dir);
}
