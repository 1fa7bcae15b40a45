/* Unit tests of runtime/model's stream parser: a reply with thinking, text and a tool call
 * assembled as the TypeScript SDK assembles it, whatever the chunking (every split point, byte
 * by byte, random) and line endings; the SSE corners (byte-order mark, comments, unknown fields,
 * multi-line data, unnamed events, pings, unknown event and delta types); errors (an "error"
 * event, an early end, an oversized event, a tool input that is not JSON, events out of order);
 * and random garbage and mutations of a real stream for a bounded time. And of the client what
 * needs no server: key files, configuration and requests refused, a refused connection retried
 * and reported. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/model.h"
#include "helpers.h"

/* One reply as the API streams it: every event type, a ping, an event type from the future,
 * tool input cut at awkward places. %s is the line end. */
static const char *const lines[] = {
	"event: message_start",
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
	"\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,"
	"\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}",
	"",
	"event: content_block_start",
	"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
	"\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}",
	"",
	"event: ping",
	"data: {\"type\": \"ping\"}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
	"\"thinking_delta\",\"thinking\":\"Let me \"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
	"\"thinking_delta\",\"thinking\":\"check.\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
	"\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}",
	"",
	"event: content_block_stop",
	"data: {\"type\":\"content_block_stop\",\"index\":0}",
	"",
	"event: content_block_start",
	"data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
	"\"text\":\"\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"Hello\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\", w\xc3\xb6rld \xe2\x9c\x93\\n\"}}   ",
	"",
	"event: content_block_stop",
	"data: {\"type\":\"content_block_stop\",\"index\":1}",
	"",
	"event: content_block_start",
	"data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
	"\"tool_use\",\"id\":\"toolu_01\",\"name\":\"bash\",\"input\":{}}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
	"\"input_json_delta\",\"partial_json\":\"\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
	"\"input_json_delta\",\"partial_json\":\"{\\\"comm\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
	"\"input_json_delta\",\"partial_json\":\"and\\\": \\\"ls -\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
	"\"input_json_delta\",\"partial_json\":\"la\\\"}\"}}",
	"",
	"event: content_block_delta",
	"data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
	"\"some_future_delta\",\"x\":1}}",
	"",
	"event: content_block_stop",
	"data: {\"type\":\"content_block_stop\",\"index\":2}",
	"",
	"event: some_future_event",
	"data: {\"type\":\"some_future_event\",\"x\":1}",
	"",
	"event: message_delta",
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
	"\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}",
	"",
	"event: message_stop",
	"data: {\"type\":\"message_stop\"}",
	"",
};

static const char *const expected =
	"{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
	"\"content\":[{\"type\":\"thinking\",\"thinking\":\"Let me check.\",\"signature\":"
	"\"EqQBCgIYAhIM\"},{\"type\":\"text\",\"text\":\"Hello, w\xc3\xb6rld \xe2\x9c\x93\\n\"},"
	"{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"bash\",\"input\":{\"command\":"
	"\"ls -la\"}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":"
	"{\"input_tokens\":25,\"output_tokens\":89}}";

/* The stream with each line ended by eol (malloc'd). */
static char *stream_with(const char *eol, size_t *ret_len)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		fprintf(m, "%s%s", lines[i], eol);
	fclose(m);
	*ret_len = len;
	return out;
}

/* Feeds buf in the chunks that cuts[] (sorted offsets) makes; returns the finish result. */
static int run(const char *buf, size_t len, const size_t *cuts, size_t ncuts, json_t **ret,
	       struct cr_error *err)
{
	struct cr_model_stream *s;
	cr_assert_eq(cr_model_stream_new(NULL, &s, err), 0);
	size_t at = 0;
	int r = 0;
	for (size_t i = 0; i <= ncuts && r == 0; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		r = cr_model_stream_feed(s, buf + at, end - at, err);
		at = end;
	}
	if (r == 0)
		r = cr_model_stream_finish(s, err);
	if (ret) {
		json_t *m = cr_model_stream_message(s);
		*ret = m ? json_incref(m) : NULL;
	}
	cr_model_stream_free(s);
	return r;
}

static void assert_expected(json_t *m, const char *how)
{
	json_t *want = json_loads(expected, 0, NULL);
	cr_assert_not_null(want);
	if (!json_equal(m, want)) {
		char *got = json_dumps(m, JSON_COMPACT);
		cr_assert_fail("%s: assembled\n%s\nnot\n%s", how, got, expected);
	}
	json_decref(want);
}

Test(model_stream, a_reply_is_assembled_as_the_sdk_does_it)
{
	size_t len;
	char *buf = stream_with("\n", &len);
	json_t *m;
	struct cr_error err;
	cr_assert_eq(run(buf, len, NULL, 0, &m, &err), 0, "%s", err.msg);
	assert_expected(m, "one chunk");
	json_decref(m);
	free(buf);
}

Test(model_stream, every_split_point_and_every_line_ending_give_the_same_message, .timeout = 60)
{
	static const char *const eols[] = { "\n", "\r\n", "\r" };
	for (size_t e = 0; e < 3; e++) {
		size_t len;
		char *buf = stream_with(eols[e], &len);
		struct cr_error err;
		json_t *m;
		for (size_t cut = 0; cut <= len; cut++) {
			cr_assert_eq(run(buf, len, &cut, 1, &m, &err), 0, "eol %zu, cut at %zu: %s",
				     e, cut, err.msg);
			char how[64];
			snprintf(how, sizeof(how), "eol %zu, cut at %zu", e, cut);
			assert_expected(m, how);
			json_decref(m);
		}
		/* byte by byte */
		size_t *cuts = malloc(len * sizeof(*cuts));
		for (size_t i = 0; i < len; i++)
			cuts[i] = i + 1;
		cr_assert_eq(run(buf, len, cuts, len - 1, &m, &err), 0, "%s", err.msg);
		assert_expected(m, "byte by byte");
		json_decref(m);
		free(cuts);
		free(buf);
	}
}

/* Runs one stream given as text; returns the finish result, the message in *ret. */
static int run_text(const char *text, json_t **ret, struct cr_error *err)
{
	return run(text, strlen(text), NULL, 0, ret, err);
}

#define START                                                                                \
	"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"," \
	"\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
#define TEXT_START                                                                         \
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0," \
	"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
#define STOP "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

static const char *text_of(json_t *m)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(m, "content"), 0), "text"));
}

Test(model_stream, sse_corners_read_as_the_sdk_reads_them)
{
	json_t *m;
	struct cr_error err;
	/* a byte-order mark, comments, fields it does not use, "data:" without its space, data
	 * on two lines (joined by a newline), an event without a name (skipped), whitespace after
	 * the JSON */
	const char *text =
		"\xef\xbb\xbf" START ": a comment\nid: 7\nretry: 100\n" TEXT_START
		"event: content_block_delta\ndata:{\"type\":\"content_block_delta\",\"index\":0,\n"
		"data: \"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}  \t\n\n"
		"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
		"\"text_delta\",\"text\":\"SKIPPED\"}}\n\n"
		"event: content_block_delta\nevent: content_block_delta\ndata: {\"type\":"
		"\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
		"\"b\"}}\n\n" STOP "event: ping\ndata: {}\n\n";
	cr_assert_eq(run_text(text, &m, &err), 0, "%s", err.msg);
	cr_assert_str_eq(text_of(m), "ab");
	json_decref(m);
	/* events before message_start and after message_stop are ignored */
	text = TEXT_START START TEXT_START STOP "event: message_start\ndata: {\"type\":"
						"\"message_start\",\"message\":{}}\n\n";
	cr_assert_eq(run_text(text, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(json_object_get(m, "content")), 1);
	json_decref(m);
	/* a tool call without input deltas keeps the start's input; empty deltas make {} */
	text = START "event: content_block_start\ndata: {\"type\":\"content_block_start\","
		     "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
		     "\"n\",\"input\":{\"k\":1}}}\n\nevent: content_block_stop\ndata: {\"type\":"
		     "\"content_block_stop\",\"index\":0}\n\n" STOP;
	cr_assert_eq(run_text(text, &m, &err), 0, "%s", err.msg);
	json_t *input = json_object_get(json_array_get(json_object_get(m, "content"), 0), "input");
	cr_assert_eq(json_integer_value(json_object_get(input, "k")), 1);
	json_decref(m);
}

Test(model_stream, message_delta_usage_is_cumulative_and_overwrites_only_what_it_has)
{
	json_t *m;
	struct cr_error err;
	const char *text =
		START "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
		      "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,\"stop_details\":{"
		      "\"type\":\"x\"}},\"usage\":{\"output_tokens\":5,\"input_tokens\":40,"
		      "\"cache_read_input_tokens\":30,\"cache_creation_input_tokens\":null}}\n\n"
		      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
		      "\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n" STOP;
	cr_assert_eq(run_text(text, &m, &err), 0, "%s", err.msg);
	json_t *u = json_object_get(m, "usage");
	cr_assert_eq(json_integer_value(json_object_get(u, "output_tokens")), 9);
	cr_assert_eq(json_integer_value(json_object_get(u, "input_tokens")), 40);
	cr_assert_eq(json_integer_value(json_object_get(u, "cache_read_input_tokens")), 30);
	cr_assert_null(json_object_get(u, "cache_creation_input_tokens"));
	cr_assert_str_eq(json_string_value(json_object_get(m, "stop_reason")), "end_turn");
	/* assigned from each message_delta, so the second's missing ones are gone */
	cr_assert_null(json_object_get(m, "stop_details"));
	cr_assert_null(json_object_get(m, "stop_sequence"));
	json_decref(m);
}

Test(model_stream, errors_end_the_stream_and_say_why)
{
	json_t *m;
	struct cr_error err;
	/* an error event in the middle: its type and message */
	struct cr_model_stream *s;
	cr_assert_eq(cr_model_stream_new(NULL, &s, &err), 0);
	const char *text = START "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
				 "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
	cr_assert_eq(cr_model_stream_feed(s, text, strlen(text), &err), -EREMOTEIO);
	cr_assert(strstr(err.msg, "overloaded_error: Overloaded"), "%s", err.msg);
	cr_assert_str_eq(cr_model_stream_error_type(s), "overloaded_error");
	cr_assert_eq(cr_model_stream_feed(s, STOP, strlen(STOP), &err), -EREMOTEIO, "it stays");
	cr_assert_eq(cr_model_stream_finish(s, &err), -EREMOTEIO);
	cr_model_stream_free(s);
	/* the body ends early */
	cr_assert_eq(run_text(START TEXT_START, &m, &err), -EPIPE);
	cr_assert(strstr(err.msg, "before message_stop"), "%s", err.msg);
	json_decref(m);
	cr_assert_eq(run_text("", &m, &err), -EPIPE);
	cr_assert_null(m);
	/* a tool input that is not JSON, named */
	text = START "event: content_block_start\ndata: {\"type\":\"content_block_start\","
		     "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
		     "\"n\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":"
		     "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
		     "\"partial_json\":\"{\\\"a\\\": \"}}\n\nevent: content_block_stop\ndata: {"
		     "\"type\":\"content_block_stop\",\"index\":0}\n\n" STOP;
	cr_assert_eq(run_text(text, &m, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "tool_use block 0: its input is not JSON"), "%s", err.msg);
	json_decref(m);
	/* out of order, data that is not an object, an HTML page */
	cr_assert_eq(run_text(START START, &m, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "unexpected event order"), "%s", err.msg);
	json_decref(m);
	cr_assert_eq(run_text("event: message_start\ndata: [1]\n\n", &m, &err), -EBADMSG);
	cr_assert_eq(run_text("event: message_start\ndata: {\"type\":\n\n", &m, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "not a JSON object"), "%s", err.msg);
	cr_assert_eq(run_text("<html><body>502 Bad Gateway</body></html>\n", &m, &err), -EPIPE);
}

Test(model_stream, an_oversized_event_is_refused_in_any_chunking)
{
	struct cr_model_stream_opts o = { .max_event_bytes = 1024 };
	char big[3000];
	memset(big, 'x', sizeof(big));
	memcpy(big, "data: ", 6);
	for (size_t chunk = 1; chunk <= sizeof(big); chunk *= 7) {
		struct cr_model_stream *s;
		struct cr_error err;
		cr_assert_eq(cr_model_stream_new(&o, &s, &err), 0);
		int r = cr_model_stream_feed(s, "event: x\n", 9, &err);
		for (size_t at = 0; at < sizeof(big) && r == 0; at += chunk)
			r = cr_model_stream_feed(
				s, big + at, at + chunk < sizeof(big) ? chunk : sizeof(big) - at,
				&err);
		cr_assert_eq(r, -EMSGSIZE, "chunks of %zu", chunk);
		cr_assert(strstr(err.msg, "more than 1024 bytes"), "%s", err.msg);
		cr_model_stream_free(s);
	}
}

static int count_events(void *arg, json_t *event, struct cr_error *err)
{
	int *n = arg;
	const char *type = json_string_value(json_object_get(event, "type"));
	if (type && strcmp(type, "message_delta") == 0)
		return cr_error_set(err, ECANCELED, "stopped by the caller");
	++*n;
	return 0;
}

Test(model_stream, the_first_delta_is_timed_and_events_reach_the_caller)
{
	int n = 0;
	struct cr_model_stream_opts o = { .on_event = count_events, .arg = &n };
	struct cr_model_stream *s;
	struct cr_error err;
	cr_assert_eq(cr_model_stream_new(&o, &s, &err), 0);
	size_t len;
	char *buf = stream_with("\n", &len);
	const char *first_delta = strstr(buf, "event: content_block_delta");
	size_t before = (size_t)(first_delta - buf);
	cr_assert_eq(cr_model_stream_feed(s, buf, before, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_model_stream_first_delta_ns(s), 0);
	cr_assert_eq(n, 2, "message_start and content_block_start; not the ping");
	cr_assert_eq(cr_model_stream_feed(s, buf + before, len - before, &err), -ECANCELED);
	cr_assert(cr_model_stream_first_delta_ns(s) > 0);
	cr_assert(strstr(err.msg, "stopped by the caller"), "%s", err.msg);
	cr_model_stream_free(s);
	free(buf);
}

/* Random garbage, and the real stream with bytes flipped, cut and repeated, for a bounded
 * time: every outcome is a message or an error, never a crash (the ASan build checks memory). */
Test(model_stream, fuzzed_input_never_crashes, .timeout = 60)
{
	size_t len;
	char *good = stream_with("\n", &len);
	char *work = malloc(len * 2 + 64);
	unsigned seed = (unsigned)time(NULL);
	srand(seed);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t runs = 0, ok = 0;
	do {
		size_t n;
		if (rand() % 4 == 0) {
			n = (size_t)rand() % 512;
			for (size_t i = 0; i < n; i++) {
				static const char alphabet[] =
					"event:data \n\r{}\":,[]0x\xef\xbb\xbf";
				work[i] = rand() % 2 ? (char)rand()
						     : alphabet[rand() % (sizeof(alphabet) - 1)];
			}
		} else {
			memcpy(work, good, len);
			n = len;
			for (int k = rand() % 8; k >= 0; k--) {
				size_t at = (size_t)rand() % n;
				switch (rand() % 3) {
				case 0:
					work[at] = (char)rand();
					break;
				case 1:
					n = at;
					break;
				default: { /* repeat a stretch */
					size_t span = (size_t)rand() % 64;
					if (at + span <= n && n + span <= len * 2 + 64) {
						memmove(work + at + span, work + at, n - at);
						n += span;
					}
				}
				}
				if (n == 0)
					break;
			}
		}
		size_t cuts[8];
		size_t ncuts = n ? (size_t)(rand() % 8) : 0;
		for (size_t i = 0; i < ncuts; i++)
			cuts[i] = (size_t)rand() % (n + 1);
		for (size_t i = 1; i < ncuts; i++) /* sorted */
			for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
				size_t x = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = x;
			}
		json_t *m;
		struct cr_error err;
		ok += run(work, n, cuts, ncuts, &m, &err) == 0;
		json_decref(m);
		runs++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
	cr_log_info("model_stream fuzz: %zu inputs in 2 s (seed %u), %zu whole messages", runs,
		    seed, ok);
	cr_assert_gt(runs, 100);
	free(work);
	free(good);
}

/* --- the client: what needs no server (tests/integration/model_client.sh has the rest) ---- */

static char *key_file(const char *dir, const char *name, const char *content, mode_t mode)
{
	char *path;
	cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
	FILE *f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs(content, f);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

Test(model_client, key_files_are_checked_and_their_key_never_named)
{
	char *dir = cr_test_tmpdir("model-key");
	struct cr_error err;
	char *key = NULL;

	char *good = key_file(dir, "good", "sk-ant-good-1\n", 0600);
	cr_assert_eq(cr_model_key_load(good, &key, &err), 0, "%s", err.msg);
	cr_assert_str_eq(key, "sk-ant-good-1");
	cr_model_key_free(key);

	char *crlf = key_file(dir, "crlf", "sk-ant-crlf-2\r\n", 0400);
	cr_assert_eq(cr_model_key_load(crlf, &key, &err), 0, "%s", err.msg);
	cr_assert_str_eq(key, "sk-ant-crlf-2");
	cr_model_key_free(key);

	char *open_to_group = key_file(dir, "group", "sk-ant-secret-3\n", 0640);
	key = NULL;
	cr_assert_eq(cr_model_key_load(open_to_group, &key, &err), -EACCES);
	cr_assert_null(key);
	cr_assert_not_null(strstr(err.msg, "mode 0640"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "sk-ant-secret-3"), "%s", err.msg);

	static const char *const bad[] = { "", "\n", "two words\n", "sk-ant\x01\n",
					   "sk-ant-a\nsk-ant-b\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[16];
		snprintf(name, sizeof(name), "bad%zu", i);
		char *p = key_file(dir, name, bad[i], 0600);
		cr_assert_eq(cr_model_key_load(p, &key, &err), -EINVAL, "bad key %zu", i);
		cr_assert_null(strstr(err.msg, "sk-ant"), "%s", err.msg);
		free(p);
	}
	char *big = malloc(CR_MODEL_KEY_MAX + 3);
	memset(big, 'k', CR_MODEL_KEY_MAX + 1);
	big[CR_MODEL_KEY_MAX + 1] = '\0';
	char *p = key_file(dir, "big", big, 0600);
	cr_assert_eq(cr_model_key_load(p, &key, &err), -EINVAL, "a key above the limit");
	free(p);
	big[CR_MODEL_KEY_MAX] = '\0';
	p = key_file(dir, "max", big, 0600);
	cr_assert_eq(cr_model_key_load(p, &key, &err), 0, "a key of the largest size: %s", err.msg);
	cr_model_key_free(key);
	free(p);
	free(big);

	char link[PATH_MAX];
	snprintf(link, sizeof(link), "%s/link", dir);
	cr_assert_eq(symlink(good, link), 0);
	cr_assert_eq(cr_model_key_load(link, &key, &err), -ELOOP, "a link is not followed");
	cr_assert_eq(cr_model_key_load(dir, &key, &err), -EINVAL, "a directory");
	snprintf(link, sizeof(link), "%s/missing", dir);
	cr_assert_eq(cr_model_key_load(link, &key, &err), -ENOENT);

	free(good);
	free(crlf);
	free(open_to_group);
	cr_test_rmrf(dir);
	free(dir);
}

Test(model_client, a_bad_configuration_is_refused)
{
	struct cr_model_config cfg;
	struct cr_model_client *c = NULL;
	struct cr_error err;

	cr_model_config_init(&cfg);
	cfg.base_url = "http://127.0.0.1:9";
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "no key");
	cfg.api_key = "has space";
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "a key with a space");
	cr_assert_null(strstr(err.msg, "has space"), "%s", err.msg);
	cfg.api_key = "sk-ant-x";
	cfg.base_url = "ftp://example.invalid";
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "not http");
	cfg.base_url = "http://127.0.0.1:9";
	cfg.version = "2023-06-01\r\nx-evil: 1";
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "a version with a line end");
	cfg.version = NULL;
	cfg.max_retries = CR_MODEL_MAX_RETRIES_MAX + 1;
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "too many retries");
	cfg.max_retries = 2;
	cfg.idle_ms = 0;
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), -EINVAL, "no idle timeout");
	cfg.idle_ms = 1000;
	cr_assert_null(c);

	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), 0, "%s", err.msg);
	json_t *notobj = json_array();
	struct cr_model_call *call = NULL;
	cr_assert_eq(cr_model_call_start(c, notobj, NULL, &call, &err), -EINVAL);
	json_t *body = json_pack("{s:s}", "model", "m");
	const char *const split[] = { "x-a: 1\r\nx-b: 2", NULL };
	struct cr_model_call_opts o = { .headers = split };
	cr_assert_eq(cr_model_call_start(c, body, &o, &call, &err), -EINVAL, "a header with CRLF");
	const char *const noname[] = { "no colon", NULL };
	o.headers = noname;
	cr_assert_eq(cr_model_call_start(c, body, &o, &call, &err), -EINVAL, "a header without :");
	cr_assert_null(call);
	json_decref(notobj);
	json_decref(body);
	cr_model_client_free(c);
}

/* Nothing listens at port 9 of loopback (discard is not served here): the call fails after
 * its retries, the result says so in the fields span.model_request_end takes. */
Test(model_client, a_refused_connection_is_retried_then_reported, .timeout = 30)
{
	struct cr_model_config cfg;
	struct cr_model_client *c;
	struct cr_error err;
	cr_model_config_init(&cfg);
	cfg.base_url = "http://127.0.0.1:9/";
	cfg.api_key = "sk-ant-never-shown";
	cfg.max_retries = 1;
	cr_assert_eq(cr_model_client_new(&cfg, &c, &err), 0, "%s", err.msg);
	json_t *body = json_pack("{s:s,s:i,s:[]}", "model", "m", "max_tokens", 8, "messages");
	struct cr_model_call *call;
	cr_assert_eq(cr_model_call_start(c, body, NULL, &call, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_model_call_wait(call, &err), -ECONNRESET, "%s", err.msg);
	const struct cr_model_result *r = cr_model_call_result(call);
	cr_assert_eq(r->attempts, 2);
	cr_assert(r->retryable);
	cr_assert_str_eq(r->error_type, "connection_error");
	cr_assert_not_null(strstr(r->error.msg, "http://127.0.0.1:9/v1/messages"), "%s",
			   r->error.msg);
	cr_assert(r->duration_ns >= 375000000ull, "the retry waited the backoff");
	json_t *j = cr_model_result_json(r);
	cr_assert(json_is_true(json_object_get(j, "is_error")));
	cr_assert(json_is_null(json_object_get(j, "ttft_ms")));
	cr_assert_eq(json_integer_value(json_object_get(j, "attempts")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
			 "connection_error");
	char *s = json_dumps(j, 0);
	cr_assert_null(strstr(s, "sk-ant-never-shown"));
	free(s);
	json_decref(j);
	cr_assert(cr_model_call_done(call));
	cr_model_call_free(call);
	json_decref(body);
	cr_model_client_free(c);
}
