/* Unit tests of runtime/brainlink: the wake order between corrald's side (cr_brainlink_serve
 * over an in-process platform on a log) and a worker's (cr_brainlink_next and the link's
 * platform), over a socket pair. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corral/brainlink.h"
#include "corral/cleanup.h"
#include "corral/id.h"
#include "corral/log.h"
#include "helpers.h"

struct side {
	struct cr_log *log;
	struct cr_platform platform;
	int fd; /* corrald's end */
	const char *session;
	const struct cr_log_event *early;
	size_t n_early;
	int result;
	struct cr_error err;
	struct cr_brainlink_done done;
};

static void *serve_main(void *arg)
{
	struct side *s = arg;
	s->result = cr_brainlink_serve(s->fd, s->session, s->early, s->n_early, &s->platform, 30000,
				       &s->done, &s->err);
	return NULL;
}

static struct cr_log *open_log(const char *dir)
{
	struct cr_log_options o;
	cr_log_options_init(&o);
	o.create = true;
	struct cr_log *log = NULL;
	struct cr_error err;
	cr_assert_eq(cr_log_open(dir, &o, &log, &err), 0, "open %s: %s", dir, err.msg);
	return log;
}

/* Starts corrald's side of a link for one wake of session; *ret_link is the worker's side. */
static void start(struct side *s, pthread_t *t, struct cr_brainlink **ret_link)
{
	int sv[2];
	struct cr_error err;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[0];
	struct cr_platform_local_config pc = { .log = s->log };
	cr_assert_eq(cr_platform_local_new(&pc, &s->platform, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_brainlink_new(sv[1], ret_link, &err), 0, "%s", err.msg);
	cr_assert_eq(pthread_create(t, NULL, serve_main, s), 0);
}

static void finish(struct side *s, pthread_t t, struct cr_brainlink *link, const char *session)
{
	struct cr_orch_stats st = { 0 };
	struct cr_error err;
	cr_assert_eq(cr_brainlink_done(link, session, 0, &st, "", &err), 0, "%s", err.msg);
	pthread_join(t, NULL);
	cr_assert_eq(s->result, 0, "%s", s->err.msg);
	cr_brainlink_free(link);
	close(s->fd);
	cr_platform_local_free(&s->platform);
}

/* A session whose events add up to more than one frame (70 payloads of nearly 1 MiB against a
 * 64 MiB frame) is read whole: the wake order carries what fits, and the pages after it end
 * early, saying there is more, rather than fail. */
Test(brainlink, a_session_larger_than_a_frame_is_read_whole, .timeout = 120)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("brainlink");
	struct side s = { .log = open_log(dir) };
	struct cr_error err;
	char session[CR_LOG_ID_MAX];
	cr_assert_eq(cr_log_session_create(s.log, NULL, session, &err), 0, "%s", err.msg);
	size_t big = (1u << 20) - 64;
	char *payload = malloc(big + 1);
	cr_assert_not_null(payload);
	memset(payload, 'x', big);
	memcpy(payload, "{\"t\":\"", 6);
	memcpy(payload + big - 2, "\"}", 2);
	payload[big] = '\0';
	const size_t n = 70;
	for (size_t i = 0; i < n; i++) {
		payload[6] = (char)('a' + i % 26);
		struct cr_log_append a = { .session = session,
					   .type = "agent.message",
					   .payload = payload,
					   .payload_len = big };
		cr_assert_eq(cr_log_append(s.log, &a, NULL, &err), 0, "%s", err.msg);
	}
	s.session = session;
	pthread_t t;
	struct cr_brainlink *link;
	start(&s, &t, &link);
	char got[CR_LOG_ID_MAX];
	struct cr_log_event *early;
	size_t n_early;
	cr_assert_eq(cr_brainlink_next(link, got, &early, &n_early, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got, session);
	cr_assert_eq(n_early, 0);
	cr_assert_null(early);
	struct cr_platform pf = cr_brainlink_platform(link);
	struct cr_log_event *ev = NULL;
	size_t k = 0;
	cr_assert_eq(pf.ops->events(pf.p, session, 0, 0, &ev, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k, n, "%zu events read over the link, of %zu", k, n);
	for (size_t i = 0; i < k; i++) {
		cr_assert_eq(ev[i].seq, i + 1);
		cr_assert_eq(ev[i].payload_len, big);
		cr_assert_eq(ev[i].payload[6], (char)('a' + i % 26));
	}
	cr_log_events_free(ev, k);
	/* and asked again from the middle, page by page */
	cr_assert_eq(pf.ops->events(pf.p, session, 30, 0, &ev, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k, n - 30);
	cr_assert_eq(ev[0].seq, 31);
	cr_log_events_free(ev, k);
	finish(&s, t, link, session);
	free(payload);
	cr_log_close(s.log);
	cr_test_rmrf(dir);
}

/* The early events a wake is told of arrive as they were given, and the configuration and
 * events that come with the order are what the platform says. */
Test(brainlink, a_wake_order_carries_early_events_configuration_and_events)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("brainlink");
	struct side s = { .log = open_log(dir) };
	struct cr_error err;
	char session[CR_LOG_ID_MAX];
	cr_assert_eq(cr_log_session_create(s.log, NULL, session, &err), 0, "%s", err.msg);
	struct cr_log_append a = { .session = session,
				   .type = "user.message",
				   .payload = "{\"n\":1}",
				   .payload_len = 7,
				   .flags = CR_LOG_PENDING };
	cr_assert_eq(cr_log_append(s.log, &a, NULL, &err), 0, "%s", err.msg);
	struct cr_log_event early[2] = {
		{ .type = "user.message", .payload = "{\"n\":2}", .payload_len = 7 },
		{ .type = "user.interrupt", .payload = "{}", .payload_len = 2 }
	};
	uint8_t raw[CR_ID_RAW];
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(cr_id_random(raw, NULL), 0);
		cr_id_format("sevt_", raw, early[i].id, sizeof(early[i].id));
	}
	s.session = session;
	s.early = early;
	s.n_early = 2;
	pthread_t t;
	struct cr_brainlink *link;
	start(&s, &t, &link);
	char got[CR_LOG_ID_MAX];
	struct cr_log_event *e;
	size_t ne;
	cr_assert_eq(cr_brainlink_next(link, got, &e, &ne, &err), 0, "%s", err.msg);
	cr_assert_eq(ne, 2);
	for (size_t i = 0; i < ne; i++) {
		cr_assert_str_eq(e[i].id, early[i].id);
		cr_assert_str_eq(e[i].type, early[i].type);
		cr_assert_str_eq(e[i].payload, early[i].payload);
	}
	cr_log_events_free(e, ne);
	struct cr_platform pf = cr_brainlink_platform(link);
	json_t *agent = NULL, *env = NULL;
	cr_assert_eq(pf.ops->config(pf.p, session, &agent, &env, &err), 0, "%s", err.msg);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(agent, "model"), "id")),
			 "claude-sonnet-4-5", "the platform's default agent");
	json_decref(agent);
	json_decref(env);
	struct cr_log_event *ev = NULL;
	size_t k = 0;
	cr_assert_eq(pf.ops->events(pf.p, session, 0, 0, &ev, &k, &err), 0, "%s", err.msg);
	cr_assert_eq(k, 1, "only the durable event");
	cr_assert_str_eq(ev[0].payload, "{\"n\":1}");
	cr_log_events_free(ev, k);
	finish(&s, t, link, session);
	cr_log_close(s.log);
	cr_test_rmrf(dir);
}

/* Sends one raw frame: json, and a tail of tail_len bytes of tail. */
static void raw_frame(int fd, const char *json, const char *tail, size_t tail_len)
{
	uint32_t hdr[2] = { htonl((uint32_t)strlen(json)), htonl((uint32_t)tail_len) };
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	cr_assert_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	if (tail_len)
		cr_assert_eq(write(fd, tail, tail_len), (ssize_t)tail_len);
}

/* A wake order that is not one is refused with EPROTO, and nothing is handed to the wake. */
Test(brainlink, a_malformed_wake_order_is_refused)
{
	static const char *const bad[] = {
		"{\"op\":\"done\",\"session\":\"s\"}",
		"{\"op\":\"wake\"}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":\"2\"}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":17}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":1}", /* no tail for it */
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":0,\"events\":-1}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":0,\"events\":5000}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":0,\"config\":{\"agent\":{}}}",
		"{\"op\":\"wake\",\"session\":\"s\",\"early\":0,\"config\":{\"agent\":1,"
		"\"environment\":{}}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int sv[2];
		struct cr_error err;
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		struct cr_brainlink *link;
		cr_assert_eq(cr_brainlink_new(sv[1], &link, &err), 0);
		raw_frame(sv[0], bad[i], NULL, 0);
		char got[CR_LOG_ID_MAX];
		struct cr_log_event *e = (void *)1;
		size_t ne = 99;
		cr_assert_eq(cr_brainlink_next(link, got, &e, &ne, &err), -EPROTO, "%s", bad[i]);
		cr_assert_null(e, "%s", bad[i]);
		cr_assert_eq(ne, 0, "%s", bad[i]);
		cr_brainlink_free(link);
		close(sv[0]);
	}
}
