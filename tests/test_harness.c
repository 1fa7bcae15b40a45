/* Unit tests of runtime/harness: the step over logs made by hand, and over logs grown by playing
 * the orchestrator's part (appending what a step says, marking what it consumes, answering a
 * MODEL step with a message through cr_harness_model_events, a TOOLS step with results). Every
 * stop reason; parallel, confirmed, denied, custom and unknown tool calls; interrupts; failed
 * and cut-off model calls; compaction; malformed logs; and the determinism that lets any worker
 * take a session over and keeps the prompt cache warm. Every step is taken twice and must
 * come out the same, byte for byte. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "corral/cleanup.h"
#include "corral/harness.h"
#include "helpers.h"

/* --- logs ----------------------------------------------------------------------------------- */

struct tlog {
	struct cr_log_event *ev;
	size_t n, cap;
	uint64_t clock;
};

/* Test JSON is written with ' for " (no test text has an apostrophe). A new string. */
static char *unquote(const char *s)
{
	char *d = strdup(s);
	cr_assert_not_null(d);
	for (char *p = d; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return d;
}

static json_t *loads(const char *s)
{
	char *t = unquote(s);
	json_error_t jerr;
	json_t *j = json_loads(t, 0, &jerr);
	cr_assert_not_null(j, "bad test JSON %s: %s", t, jerr.text);
	free(t);
	return j;
}

/* Appends an event with seq = its index + 1 and id "sevt_<seq>"; takes payload. */
static void tl_push(struct tlog *l, const char *type, char *payload, bool pending)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->ev = realloc(l->ev, l->cap * sizeof(*l->ev));
		cr_assert_not_null(l->ev);
	}
	struct cr_log_event *e = &l->ev[l->n];
	memset(e, 0, sizeof(*e));
	e->seq = l->n + 1;
	snprintf(e->id, sizeof(e->id), "sevt_%" PRIu64, e->seq);
	snprintf(e->type, sizeof(e->type), "%s", type);
	e->time_ns = ++l->clock;
	e->processed_ns = pending ? 0 : e->time_ns;
	e->epoch = 1;
	e->payload = payload;
	e->payload_len = strlen(payload);
	l->n++;
}

static void tl_add(struct tlog *l, const char *type, const char *payload, bool pending)
{
	tl_push(l, type, unquote(payload), pending);
}

static void tl_add_json(struct tlog *l, const char *type, const json_t *payload)
{
	char *s = json_dumps(payload, JSON_COMPACT);
	cr_assert_not_null(s);
	tl_push(l, type, s, false);
}

static void tl_free(struct tlog *l)
{
	cr_log_events_free(l->ev, l->n);
	*l = (struct tlog){ 0 };
}

struct triple {
	const char *type;
	const char *payload;
	bool pending;
};

/* A log of the (type, payload, pending) triples, in order. */
static struct tlog tl_from(const struct triple *t, size_t n)
{
	struct tlog l = { 0 };
	for (size_t i = 0; i < n; i++)
		tl_add(&l, t[i].type, t[i].payload, t[i].pending);
	return l;
}

#define LOG(...)                                        \
	tl_from((const struct triple[]){ __VA_ARGS__ }, \
		sizeof((const struct triple[]){ __VA_ARGS__ }) / sizeof(struct triple))

static const char *id_of(const struct tlog *l, uint64_t seq)
{
	return l->ev[seq - 1].id;
}

/* The seq of the last event of type. */
static uint64_t last_of(const struct tlog *l, const char *type)
{
	for (size_t i = l->n; i-- > 0;) {
		if (!strcmp(l->ev[i].type, type))
			return l->ev[i].seq;
	}
	cr_assert_fail("no %s in the log", type);
	return 0;
}

/* --- the agent ------------------------------------------------------------------------------ */

static json_t *agent_tools;
static struct cr_harness_agent agent;

static void setup(void)
{
	agent_tools = loads("[{'type':'agent_toolset_20260401',"
			    "'default_config':{'enabled':true,'permission_policy':{'type':"
			    "'always_allow'}},"
			    "'configs':[{'name':'write','type':'write','enabled':true,"
			    "'permission_policy':{'type':'always_ask'}},"
			    "{'name':'grep','type':'grep','enabled':false,'permission_policy':{"
			    "'type':'always_allow'}}]},"
			    "{'type':'custom','name':'lookup','description':'Looks a word up.',"
			    "'input_schema':{'type':'object','properties':{'word':{'type':"
			    "'string'}}}},"
			    "{'type':'mcp_toolset','mcp_server_name':'x'}]");
	agent = (struct cr_harness_agent){
		.model = "claude-test",
		.system = "You are a test agent.",
		.tools = agent_tools,
		.model_retries = -1,
	};
}

/* The requests read back as trees by request_of(), freed after each test. */
static json_t *parsed[64];
static size_t n_parsed;

static void teardown(void)
{
	json_decref(agent_tools);
	for (size_t i = 0; i < n_parsed; i++)
		json_decref(parsed[i]);
	n_parsed = 0;
}

TestSuite(harness, .init = setup, .fini = teardown, .timeout = 30);

/* --- steps ---------------------------------------------------------------------------------- */

static const char *kind_name(enum cr_harness_step_kind k)
{
	static const char *const names[] = { "WAIT", "END", "APPEND", "MODEL", "TOOLS" };
	return names[k];
}

/* A MODEL step's request, read as a tree (borrowed: freed after the test). The text must be
 * JSON, and what jansson writes for it: the bytes the tree-built request had. */
static json_t *request_of(const struct cr_harness_step *s)
{
	cr_assert_not_null(s->request);
	cr_assert_eq(strlen(s->request), s->request_len);
	json_error_t jerr;
	json_t *j = json_loadb(s->request, s->request_len, 0, &jerr);
	cr_assert_not_null(j, "the request is not JSON: %s: %s", jerr.text, s->request);
	char *again = json_dumps(j, JSON_COMPACT);
	cr_assert_str_eq(again, s->request, "the request is not what jansson writes");
	free(again);
	cr_assert_lt(n_parsed, CR_ARRAY_SIZE(parsed));
	parsed[n_parsed++] = j;
	return j;
}

/* Everything a step says, as one JSON text (new string). */
static char *step_json(const struct cr_harness_step *s)
{
	json_t *o = json_pack("{s:s,s:[],s:[],s:O?,s:i,s:[]}", "kind", kind_name(s->kind), "events",
			      "mark", "request", s->request ? request_of(s) : NULL,
			      "retry_delay_ms", (int)s->retry_delay_ms, "tools");
	cr_assert_not_null(o);
	for (size_t i = 0; i < s->n_events; i++)
		json_array_append_new(json_object_get(o, "events"),
				      json_pack("{s:s,s:O}", "type", s->events[i].type, "payload",
						s->events[i].payload));
	for (size_t i = 0; i < s->n_mark; i++)
		json_array_append_new(json_object_get(o, "mark"),
				      json_integer((json_int_t)s->mark[i]));
	for (size_t i = 0; i < s->n_tools; i++)
		json_array_append_new(json_object_get(o, "tools"),
				      json_pack("{s:s,s:s,s:O}", "id", s->tools[i].tool_use_id,
						"name", s->tools[i].name, "input",
						s->tools[i].input));
	char *d = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	cr_assert_not_null(d);
	return d;
}

/* The step of l with agent a, taken twice: both must say the same, byte for byte. */
static struct cr_harness_step step_with(const struct cr_harness_agent *a, const struct tlog *l)
{
	struct cr_harness_step s, again;
	struct cr_error err = { 0 };
	int r = cr_harness_step(a, l->ev, l->n, &s, &err);
	cr_assert_eq(r, 0, "step: %s", err.msg);
	r = cr_harness_step(a, l->ev, l->n, &again, &err);
	cr_assert_eq(r, 0, "step again: %s", err.msg);
	char *j1 = step_json(&s), *j2 = step_json(&again);
	cr_assert_str_eq(j1, j2, "the same events gave two steps");
	free(j1);
	free(j2);
	cr_harness_step_clear(&again);
	return s;
}

static struct cr_harness_step step(const struct tlog *l)
{
	return step_with(&agent, l);
}

static void expect_kind(const struct cr_harness_step *s, enum cr_harness_step_kind k)
{
	if (s->kind != k) {
		char *j = step_json(s);
		cr_assert_fail("step is %s, not %s: %s", kind_name(s->kind), kind_name(k), j);
	}
}

/* What the orchestrator does with an APPEND step. */
static void apply(struct tlog *l, const struct cr_harness_step *s)
{
	expect_kind(s, CR_STEP_APPEND);
	for (size_t i = 0; i < s->n_events; i++)
		tl_add_json(l, s->events[i].type, s->events[i].payload);
	for (size_t i = 0; i < s->n_mark; i++) {
		cr_assert(s->mark[i] >= 1 && s->mark[i] <= l->n);
		struct cr_log_event *e = &l->ev[s->mark[i] - 1];
		cr_assert_eq(e->processed_ns, 0, "event %" PRIu64 " marked twice", e->seq);
		e->processed_ns = ++l->clock;
	}
}

/* Steps, applying APPEND steps, until one is something else (returned; the caller clears). */
static struct cr_harness_step settle_with(const struct cr_harness_agent *a, struct tlog *l)
{
	for (int i = 0; i < 20; i++) {
		struct cr_harness_step s = step_with(a, l);
		if (s.kind != CR_STEP_APPEND)
			return s;
		apply(l, &s);
		cr_harness_step_clear(&s);
	}
	cr_assert_fail("the session appends for ever");
	return (struct cr_harness_step){ 0 };
}

static struct cr_harness_step settle(struct tlog *l)
{
	return settle_with(&agent, l);
}

static const char ok_result[] =
	"{'is_error':false,'model_usage':{'input_tokens':10,'output_tokens':5,"
	"'cache_creation_input_tokens':1,'cache_read_input_tokens':2},'attempts':1,"
	"'http_status':200,'duration_ms':12.5,'ttft_ms':3.5,'request_id':'req_1'}";

static const char overloaded_result[] =
	"{'is_error':true,'model_usage':{'input_tokens':0,'output_tokens':0,"
	"'cache_creation_input_tokens':0,'cache_read_input_tokens':0},'attempts':3,"
	"'http_status':529,'duration_ms':40.0,'ttft_ms':null,'request_id':'req_2',"
	"'error':{'type':'overloaded_error','message':'Overloaded','retryable':true}}";

/* What the orchestrator does with a MODEL step: the start span, then the events of the
 * model's reply (message, or NULL when the call failed with result). */
static void model_reply_with(const struct cr_harness_agent *a, struct tlog *l, const char *message,
			     const char *result)
{
	tl_add(l, "span.model_request_start", "{}", false);
	char start[CR_LOG_ID_MAX];
	snprintf(start, sizeof(start), "%s", l->ev[l->n - 1].id);
	json_t *m = message ? loads(message) : NULL;
	json_t *res = loads(result ? result : ok_result);
	struct cr_harness_event *out = NULL;
	size_t n = 0;
	struct cr_error err = { 0 };
	int r = cr_harness_model_events(a, l->ev, l->n, start, m, res, &out, &n, &err);
	cr_assert_eq(r, 0, "model events: %s", err.msg);
	for (size_t i = 0; i < n; i++)
		tl_add_json(l, out[i].type, out[i].payload);
	cr_harness_events_free(out, n);
	json_decref(m);
	json_decref(res);
}

static void model_reply(struct tlog *l, const char *message)
{
	model_reply_with(&agent, l, message, NULL);
}

/* A reply of one text block. */
static void model_says(struct tlog *l, const char *text, const char *stop_reason)
{
	char *m;
	cr_assert_geq(asprintf(&m,
			       "{'role':'assistant','content':[{'type':'text','text':'%s'}],"
			       "'stop_reason':'%s'}",
			       text, stop_reason),
		      0);
	model_reply(l, m);
	free(m);
}

/* What the orchestrator does with a TOOLS step: one result per call, in reverse order. */
static void tool_results(struct tlog *l, const struct cr_harness_step *s, const char *text)
{
	expect_kind(s, CR_STEP_TOOLS);
	for (size_t i = s->n_tools; i-- > 0;) {
		struct cr_harness_event e;
		struct cr_error err;
		cr_assert_eq(cr_harness_tool_result(s->tools[i].tool_use_id, text, false, &e, &err),
			     0);
		tl_add_json(l, e.type, e.payload);
		cr_harness_event_clear(&e);
	}
}

static void user_says(struct tlog *l, const char *text)
{
	json_t *p = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
	char *s = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	tl_push(l, "user.message", s, true);
}

/* The payload of an event of the log (a new reference). */
static json_t *payload_of(const struct tlog *l, uint64_t seq)
{
	json_t *j = json_loads(l->ev[seq - 1].payload, 0, NULL);
	cr_assert_not_null(j);
	return j;
}

static void expect_json(const json_t *j, const char *want)
{
	char *got = json_dumps(j, JSON_COMPACT);
	char *w = unquote(want);
	cr_assert_str_eq(got, w);
	free(got);
	free(w);
}

static json_t *last_message(const struct cr_harness_step *s)
{
	json_t *m = json_object_get(request_of(s), "messages");
	return json_array_get(m, json_array_size(m) - 1);
}

/* A session that has been asked "hi" and is calling the model. */
static struct tlog started(void)
{
	struct tlog l = LOG({ "lease.acquired", "{'epoch':1}", false },
			    { "user.message", "{'content':[{'type':'text','text':'hi'}]}", true });
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_harness_step_clear(&s);
	return l;
}

/* --- the conversation ----------------------------------------------------------------------- */

Test(harness, first_message_starts_the_session_and_calls_the_model)
{
	struct tlog l = LOG({ "lease.acquired", "{'epoch':1}", false },
			    { "user.message", "{'content':[{'type':'text','text':'hi'}]}", true });
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "session.status_running");
	expect_json(s.events[0].payload, "{}");
	cr_assert_eq(s.n_mark, 1);
	cr_assert_eq(s.mark[0], 2);
	apply(&l, &s);
	cr_harness_step_clear(&s);

	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_assert_eq(s.retry_delay_ms, 0);
	/* Key order is fixed; built-in tools in the toolset's order (grep disabled), then the
	 * custom one; the mcp toolset is not the harness's. */
	const char *keys[] = { "model", "max_tokens", "system", "tools", "messages", "stream" };
	size_t i = 0;
	const char *k;
	json_t *v, *req = request_of(&s);
	json_object_foreach (req, k, v) {
		cr_assert_lt(i, 6);
		cr_assert_str_eq(k, keys[i++]);
	}
	cr_assert_str_eq(json_string_value(json_object_get(request_of(&s), "model")),
			 "claude-test");
	cr_assert_eq(json_integer_value(json_object_get(request_of(&s), "max_tokens")),
		     CR_HARNESS_MAX_TOKENS_DEFAULT);
	expect_json(json_object_get(request_of(&s), "system"),
		    "[{'type':'text','text':'You are a test agent.','cache_control':{'type':"
		    "'ephemeral'}}]");
	json_t *tools = json_object_get(request_of(&s), "tools");
	const char *names[] = { "bash", "read", "write", "edit", "glob", "lookup" };
	cr_assert_eq(json_array_size(tools), 6);
	for (i = 0; i < 6; i++) {
		json_t *t = json_array_get(tools, i);
		cr_assert_str_eq(json_string_value(json_object_get(t, "name")), names[i]);
		cr_assert_not_null(json_object_get(t, "input_schema"));
		cr_assert_eq(json_object_get(t, "cache_control") != NULL, i == 5);
	}
	expect_json(json_object_get(json_array_get(tools, 5), "input_schema"),
		    "{'type':'object','properties':{'word':{'type':'string'}}}");
	expect_json(json_object_get(request_of(&s), "messages"),
		    "[{'role':'user','content':[{'type':'text','text':'hi','cache_control':{"
		    "'type':'ephemeral'}}]}]");
	cr_assert(json_is_true(json_object_get(request_of(&s), "stream")));
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, end_turn_idles_the_session)
{
	struct tlog l = started();
	model_says(&l, "Hello.", "end_turn");
	/* The reply as recorded: the message, then the end span with corral's fields. */
	cr_assert_str_eq(l.ev[l.n - 2].type, "agent.message");
	json_t *msg = payload_of(&l, l.n - 1);
	expect_json(msg, "{'content':[{'type':'text','text':'Hello.'}]}");
	json_decref(msg);
	char want[512];
	snprintf(want, sizeof(want),
		 "{'model_request_start_id':'%s','is_error':false,'model_usage':{"
		 "'input_tokens':10,'output_tokens':5,'cache_creation_input_tokens':1,"
		 "'cache_read_input_tokens':2},'stop_reason':'end_turn','ttft_ms':3.5,"
		 "'attempts':1,'request_id':'req_1'}",
		 id_of(&l, l.n - 2));
	json_t *end = payload_of(&l, l.n);
	expect_json(end, want);
	json_decref(end);

	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "session.status_idle");
	expect_json(s.events[0].payload, "{'stop_reason':{'type':'end_turn'},'stop_details':null}");
	cr_assert_eq(s.n_mark, 0);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, stop_sequence_and_max_tokens_idle_with_end_turn)
{
	const char *reasons[] = { "stop_sequence", "max_tokens" };
	for (size_t i = 0; i < 2; i++) {
		struct tlog l = started();
		model_says(&l, "Cut", reasons[i]);
		struct cr_harness_step s = step(&l);
		expect_kind(&s, CR_STEP_APPEND);
		cr_assert_eq(s.n_events, 1);
		expect_json(s.events[0].payload,
			    "{'stop_reason':{'type':'end_turn'},'stop_details':null}");
		cr_harness_step_clear(&s);
		tl_free(&l);
	}
}

Test(harness, refusal_idles_with_its_stop_details)
{
	struct tlog l = started();
	model_says(&l, "No.", "refusal");
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "session.status_idle");
	expect_json(s.events[0].payload,
		    "{'stop_reason':{'type':'refusal'},'stop_details':{'type':'refusal',"
		    "'category':null,'explanation':'the model declined to continue'}}");
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, pause_turn_continues_the_assistant_message)
{
	struct tlog l = started();
	model_says(&l, "Searching", "pause_turn");
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	/* The request ends with the paused message, as it was. */
	expect_json(last_message(&s), "{'role':'assistant','content':[{'type':'text','text':"
				      "'Searching','cache_control':{'type':'ephemeral'}}]}");
	cr_harness_step_clear(&s);

	model_says(&l, "Found it.", "end_turn");
	s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	user_says(&l, "Thanks");
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	/* The two calls' content is one assistant message: roles alternate. */
	expect_json(json_object_get(request_of(&s), "messages"),
		    "[{'role':'user','content':[{'type':'text','text':'hi'}]},"
		    "{'role':'assistant','content':[{'type':'text','text':'Searching'},"
		    "{'type':'text','text':'Found it.'}]},"
		    "{'role':'user','content':[{'type':'text','text':'Thanks','cache_control':{"
		    "'type':'ephemeral'}}]}]");
	cr_harness_step_clear(&s);
	tl_free(&l);
}

/* --- tools ---------------------------------------------------------------------------------- */

static const char two_calls[] =
	"{'role':'assistant','content':[{'type':'text','text':'Looking.'},"
	"{'type':'tool_use','id':'toolu_1','name':'bash','input':{'command':'ls'}},"
	"{'type':'tool_use','id':'toolu_2','name':'read','input':{'file_path':'a.txt'}}],"
	"'stop_reason':'tool_use'}";

Test(harness, parallel_tool_calls_run_in_one_step_and_answer_in_one_message)
{
	struct tlog l = started();
	model_reply(&l, two_calls);
	uint64_t use1 = l.n - 2, use2 = l.n - 1;
	cr_assert_str_eq(l.ev[use1 - 1].type, "agent.tool_use");
	json_t *p = payload_of(&l, use1);
	expect_json(p, "{'name':'bash','input':{'command':'ls'},'model_tool_use_id':'toolu_1'}");
	json_decref(p);

	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_TOOLS);
	cr_assert_eq(s.n_tools, 2);
	cr_assert_str_eq(s.tools[0].tool_use_id, id_of(&l, use1));
	cr_assert_str_eq(s.tools[0].name, "bash");
	expect_json(s.tools[0].input, "{'command':'ls'}");
	cr_assert_str_eq(s.tools[1].tool_use_id, id_of(&l, use2));
	cr_assert_str_eq(s.tools[1].name, "read");
	tool_results(&l, &s, "out"); /* in reverse order */
	cr_harness_step_clear(&s);

	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	json_t *msgs = json_object_get(request_of(&s), "messages");
	cr_assert_eq(json_array_size(msgs), 3);
	char want[1024];
	snprintf(want, sizeof(want),
		 "{'role':'assistant','content':[{'type':'text','text':'Looking.'},"
		 "{'type':'tool_use','id':'%s','name':'bash','input':{'command':'ls'}},"
		 "{'type':'tool_use','id':'%s','name':'read','input':{'file_path':'a.txt'}}]}",
		 id_of(&l, use1), id_of(&l, use2));
	expect_json(json_array_get(msgs, 1), want);
	/* One user message with both results, in the order they were appended. */
	snprintf(want, sizeof(want),
		 "{'role':'user','content':[{'type':'tool_result','tool_use_id':'%s','content':[{"
		 "'type':'text','text':'out'}]},{'type':'tool_result','tool_use_id':'%s',"
		 "'content':[{'type':'text','text':'out'}],'cache_control':{'type':'ephemeral'}}]}",
		 id_of(&l, use2), id_of(&l, use1));
	expect_json(json_array_get(msgs, 2), want);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, message_sent_during_tool_calls_waits_for_their_results)
{
	struct tlog l = started();
	model_reply(&l, two_calls);
	user_says(&l, "also check b");
	uint64_t msg = l.n;
	/* The calls were decided before the message came: they run first. */
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_TOOLS);
	cr_assert_eq(s.n_tools, 2);
	tool_results(&l, &s, "ok");
	cr_harness_step_clear(&s);

	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 0, "the session is running already");
	cr_assert_eq(s.n_mark, 1);
	cr_assert_eq(s.mark[0], msg);
	apply(&l, &s);
	cr_harness_step_clear(&s);

	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	/* The message's seq is before the results', but tool results go first. */
	json_t *content = json_object_get(last_message(&s), "content");
	cr_assert_eq(json_array_size(content), 3);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 0), "type")),
			 "tool_result");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 1), "type")),
			 "tool_result");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 2), "text")),
			 "also check b");
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, interrupt_ends_outstanding_tool_calls_and_idles)
{
	struct tlog l = started();
	model_reply(&l, two_calls);
	uint64_t use1 = l.n - 2, use2 = l.n - 1;
	user_says(&l, "wait");
	uint64_t msg = l.n;
	tl_add(&l, "user.interrupt", "{}", true);
	uint64_t intr = l.n;
	user_says(&l, "after");
	uint64_t after = l.n;

	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 3);
	for (size_t i = 0; i < 2; i++) {
		char want[256];
		snprintf(want, sizeof(want),
			 "{'tool_use_id':'%s','content':[{'type':'text','text':"
			 "'interrupted by the user'}],'is_error':true}",
			 id_of(&l, i == 0 ? use1 : use2));
		cr_assert_str_eq(s.events[i].type, "agent.tool_result");
		expect_json(s.events[i].payload, want);
	}
	cr_assert_str_eq(s.events[2].type, "session.status_idle");
	expect_json(s.events[2].payload, "{'stop_reason':{'type':'end_turn'},'stop_details':null}");
	/* The interrupt and what came before it; not what came after. */
	cr_assert_eq(s.n_mark, 2);
	cr_assert_eq(s.mark[0], msg);
	cr_assert_eq(s.mark[1], intr);
	apply(&l, &s);
	cr_harness_step_clear(&s);

	/* The message after the interrupt starts the next turn, which has everything. */
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_str_eq(s.events[0].type, "session.status_running");
	cr_assert_eq(s.n_mark, 1);
	cr_assert_eq(s.mark[0], after);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	json_t *content = json_object_get(last_message(&s), "content");
	cr_assert_eq(json_array_size(content), 4);
	cr_assert(json_is_true(json_object_get(json_array_get(content, 0), "is_error")));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 2), "text")),
			 "wait");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 3), "text")),
			 "after");
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, interrupt_keeps_an_answer_sent_before_it)
{
	struct tlog l = started();
	model_reply(&l, "{'role':'assistant','content':["
			"{'type':'tool_use','id':'t1','name':'lookup','input':{'word':'a'}},"
			"{'type':'tool_use','id':'t2','name':'lookup','input':{'word':'b'}}],"
			"'stop_reason':'tool_use'}");
	uint64_t use1 = l.n - 2, use2 = l.n - 1;
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	char p[256];
	snprintf(p, sizeof(p), "{'custom_tool_use_id':'%s','content':[{'type':'text','text':'A'}]}",
		 id_of(&l, use1));
	tl_add(&l, "user.custom_tool_result", p, true);
	tl_add(&l, "user.interrupt", "{}", true);
	/* The answer to the first call stands; only the second is interrupted. */
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 2);
	cr_assert_str_eq(json_string_value(json_object_get(s.events[0].payload, "tool_use_id")),
			 id_of(&l, use2));
	cr_assert_str_eq(s.events[1].type, "session.status_idle");
	cr_assert_eq(s.n_mark, 2);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	user_says(&l, "go on");
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	json_t *content = json_object_get(last_message(&s), "content");
	cr_assert_eq(json_array_size(content), 3);
	cr_assert_null(json_object_get(json_array_get(content, 0), "is_error"));
	cr_assert(json_is_true(json_object_get(json_array_get(content, 1), "is_error")));
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, interrupt_while_idle_is_only_consumed)
{
	struct tlog l = started();
	model_says(&l, "Hello.", "end_turn");
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_add(&l, "user.interrupt", "{}", true);
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 0);
	cr_assert_eq(s.n_mark, 1);
	cr_assert_eq(s.mark[0], l.n);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

static const char write_call[] =
	"{'role':'assistant','content':[{'type':'tool_use','id':'toolu_w','name':'write',"
	"'input':{'file_path':'x','content':'y'}}],'stop_reason':'tool_use'}";

/* A session whose write call (always_ask) waits for the user; returns the call's seq. */
static uint64_t waiting_for_confirmation(struct tlog *l)
{
	*l = started();
	model_reply(l, write_call);
	uint64_t use = l->n - 1;
	struct cr_harness_step s = step(l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	char want[256];
	snprintf(want, sizeof(want),
		 "{'stop_reason':{'type':'requires_action','event_ids':['%s']},"
		 "'stop_details':null}",
		 id_of(l, use));
	expect_json(s.events[0].payload, want);
	apply(l, &s);
	cr_harness_step_clear(&s);
	/* Said once: then the session waits. */
	s = step(l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	return use;
}

Test(harness, always_ask_tool_runs_once_allowed)
{
	struct tlog l;
	uint64_t use = waiting_for_confirmation(&l);
	char p[128];
	snprintf(p, sizeof(p), "{'result':'allow','tool_use_id':'%s'}", id_of(&l, use));
	tl_add(&l, "user.tool_confirmation", p, true);
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "session.status_running");
	cr_assert_eq(s.n_mark, 1);
	cr_assert_eq(s.mark[0], l.n);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_TOOLS);
	cr_assert_eq(s.n_tools, 1);
	cr_assert_str_eq(s.tools[0].name, "write");
	cr_assert_str_eq(s.tools[0].tool_use_id, id_of(&l, use));
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, always_ask_tool_denied_gets_an_error_result)
{
	const char *deny[] = { "'deny_message':'not in /etc',", "" };
	const char *text[] = { "not in /etc", "the user denied this tool call" };
	for (size_t i = 0; i < 2; i++) {
		struct tlog l;
		uint64_t use = waiting_for_confirmation(&l);
		char p[128];
		snprintf(p, sizeof(p), "{'result':'deny',%s'tool_use_id':'%s'}", deny[i],
			 id_of(&l, use));
		tl_add(&l, "user.tool_confirmation", p, true);
		struct cr_harness_step s = step(&l);
		expect_kind(&s, CR_STEP_APPEND);
		apply(&l, &s);
		cr_harness_step_clear(&s);
		s = step(&l);
		expect_kind(&s, CR_STEP_APPEND);
		cr_assert_eq(s.n_events, 1);
		char want[256];
		snprintf(want, sizeof(want),
			 "{'tool_use_id':'%s','content':[{'type':'text','text':'%s'}],"
			 "'is_error':true}",
			 id_of(&l, use), text[i]);
		expect_json(s.events[0].payload, want);
		apply(&l, &s);
		cr_harness_step_clear(&s);
		s = step(&l);
		expect_kind(&s, CR_STEP_MODEL);
		json_t *b = json_array_get(json_object_get(last_message(&s), "content"), 0);
		cr_assert(json_is_true(json_object_get(b, "is_error")));
		cr_harness_step_clear(&s);
		tl_free(&l);
	}
}

Test(harness, custom_tool_requires_action_until_its_result)
{
	struct tlog l = started();
	model_reply(&l, "{'role':'assistant','content':[{'type':'tool_use','id':'toolu_c',"
			"'name':'lookup','input':{'word':'corral'}}],'stop_reason':'tool_use'}");
	uint64_t use = l.n - 1;
	cr_assert_str_eq(l.ev[use - 1].type, "agent.custom_tool_use");
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	char want[512];
	snprintf(want, sizeof(want),
		 "{'stop_reason':{'type':'requires_action','event_ids':['%s']},"
		 "'stop_details':null}",
		 id_of(&l, use));
	expect_json(s.events[0].payload, want);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);

	char p[256];
	snprintf(p, sizeof(p),
		 "{'custom_tool_use_id':'%s','content':[{'type':'text','text':'a pen'}]}",
		 id_of(&l, use));
	tl_add(&l, "user.custom_tool_result", p, true);
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_str_eq(s.events[0].type, "session.status_running");
	cr_assert_eq(s.mark[0], l.n);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	snprintf(want, sizeof(want),
		 "{'role':'user','content':[{'type':'tool_result','tool_use_id':'%s','content':[{"
		 "'type':'text','text':'a pen'}],'cache_control':{'type':'ephemeral'}}]}",
		 id_of(&l, use));
	expect_json(last_message(&s), want);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, unknown_and_disabled_tools_get_error_results_first)
{
	struct tlog l = started();
	model_reply(&l, "{'role':'assistant','content':["
			"{'type':'tool_use','id':'t1','name':'grep','input':{'pattern':'x'}},"
			"{'type':'tool_use','id':'t2','name':'bash','input':{'command':'true'}},"
			"{'type':'tool_use','id':'t3','name':'frobnicate','input':{}}],"
			"'stop_reason':'tool_use'}");
	uint64_t grep = l.n - 3, bash = l.n - 2, frob = l.n - 1;
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 2);
	char want[256];
	snprintf(want, sizeof(want),
		 "{'tool_use_id':'%s','content':[{'type':'text','text':'unknown tool: grep'}],"
		 "'is_error':true}",
		 id_of(&l, grep));
	expect_json(s.events[0].payload, want);
	snprintf(want, sizeof(want),
		 "{'tool_use_id':'%s','content':[{'type':'text','text':'unknown tool: "
		 "frobnicate'}],'is_error':true}",
		 id_of(&l, frob));
	expect_json(s.events[1].payload, want);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_TOOLS);
	cr_assert_eq(s.n_tools, 1);
	cr_assert_str_eq(s.tools[0].tool_use_id, id_of(&l, bash));
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, empty_tool_output_is_sent_without_empty_text)
{
	struct tlog l = started();
	model_reply(&l, "{'role':'assistant','content':[{'type':'tool_use','id':'t1','name':'bash',"
			"'input':{'command':'true'}}],'stop_reason':'tool_use'}");
	uint64_t use = l.n - 1;
	struct cr_harness_step s = step(&l);
	tool_results(&l, &s, "");
	cr_harness_step_clear(&s);
	/* The log keeps what the tool said; the API refuses an empty text block. */
	json_t *p = payload_of(&l, l.n);
	cr_assert_eq(json_array_size(json_object_get(p, "content")), 1);
	json_decref(p);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	char want[256];
	snprintf(want, sizeof(want),
		 "{'role':'user','content':[{'type':'tool_result','tool_use_id':'%s',"
		 "'cache_control':{'type':'ephemeral'}}]}",
		 id_of(&l, use));
	expect_json(last_message(&s), want);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

/* --- model failures ------------------------------------------------------------------------- */

Test(harness, retryable_failures_back_off_then_exhaust)
{
	struct tlog l = started();
	struct cr_harness_step first = step(&l);
	unsigned delays[] = { 1000, 2000 };
	for (size_t i = 0; i < 2; i++) {
		model_reply_with(&agent, &l, NULL, overloaded_result);
		char want[512];
		snprintf(want, sizeof(want),
			 "{'model_request_start_id':'%s','is_error':true,'model_usage':{"
			 "'input_tokens':0,'output_tokens':0,'cache_creation_input_tokens':0,"
			 "'cache_read_input_tokens':0},'ttft_ms':null,'attempts':3,"
			 "'request_id':'req_2'}",
			 id_of(&l, l.n - 2));
		json_t *p = payload_of(&l, l.n - 1);
		expect_json(p, want);
		json_decref(p);
		p = payload_of(&l, l.n);
		expect_json(p, "{'error':{'type':'model_overloaded_error','message':'Overloaded',"
			       "'retry_status':{'type':'retrying'}}}");
		json_decref(p);
		struct cr_harness_step s = step(&l);
		expect_kind(&s, CR_STEP_MODEL);
		cr_assert_eq(s.retry_delay_ms, delays[i]);
		/* The same request again: a failed call added nothing. */
		cr_assert(strcmp(s.request, first.request) == 0);
		cr_harness_step_clear(&s);
	}
	/* The third failure is past the two re-issues of the default. */
	model_reply_with(&agent, &l, NULL, overloaded_result);
	json_t *p = payload_of(&l, l.n);
	expect_json(p, "{'error':{'type':'model_overloaded_error','message':'Overloaded',"
		       "'retry_status':{'type':'exhausted'}}}");
	json_decref(p);
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	expect_json(s.events[0].payload,
		    "{'stop_reason':{'type':'retries_exhausted'},'stop_details':null}");
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);

	/* A new message starts afresh: the count was reset by the idle. */
	user_says(&l, "again");
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_assert_eq(s.retry_delay_ms, 0);
	cr_harness_step_clear(&s);
	model_reply_with(&agent, &l, NULL, overloaded_result);
	p = payload_of(&l, l.n);
	cr_assert_str_eq(
		json_string_value(json_object_get(
			json_object_get(json_object_get(p, "error"), "retry_status"), "type")),
		"retrying");
	json_decref(p);
	cr_harness_step_clear(&first);
	tl_free(&l);
}

Test(harness, terminal_failure_idles_at_once_and_errors_are_named)
{
	static const char *const api[] = { "invalid_request_error", "rate_limit_error",
					   "overloaded_error" };
	static const char *const ours[] = { "model_request_failed_error",
					    "model_rate_limited_error", "model_overloaded_error" };
	for (size_t i = 0; i < 3; i++) {
		struct tlog l = started();
		char res[512];
		snprintf(res, sizeof(res),
			 "{'is_error':true,'attempts':1,'ttft_ms':null,'request_id':null,"
			 "'error':{'type':'%s','message':'bad','retryable':false}}",
			 api[i]);
		model_reply_with(&agent, &l, NULL, res);
		json_t *end = payload_of(&l, l.n - 1);
		cr_assert_null(json_object_get(end, "request_id"));
		expect_json(json_object_get(end, "model_usage"),
			    "{'input_tokens':0,'output_tokens':0,'cache_creation_input_tokens':0,"
			    "'cache_read_input_tokens':0}");
		json_decref(end);
		char want[256];
		snprintf(want, sizeof(want),
			 "{'error':{'type':'%s','message':'bad','retry_status':{'type':"
			 "'terminal'}}}",
			 ours[i]);
		json_t *p = payload_of(&l, l.n);
		expect_json(p, want);
		json_decref(p);
		struct cr_harness_step s = step(&l);
		expect_kind(&s, CR_STEP_APPEND);
		expect_json(s.events[0].payload,
			    "{'stop_reason':{'type':'retries_exhausted'},'stop_details':null}");
		cr_harness_step_clear(&s);
		tl_free(&l);
	}
}

Test(harness, backoff_doubles_up_to_its_cap)
{
	struct cr_harness_agent a = agent;
	a.model_retries = 20;
	struct tlog l = started();
	unsigned want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		model_reply_with(&a, &l, NULL, overloaded_result);
		struct cr_harness_step s = step_with(&a, &l);
		expect_kind(&s, CR_STEP_MODEL);
		cr_assert_eq(s.retry_delay_ms, want[i], "failure %zu: %u ms", i + 1,
			     s.retry_delay_ms);
		cr_harness_step_clear(&s);
	}
	tl_free(&l);
}

Test(harness, cut_off_model_call_is_issued_again)
{
	struct tlog l = started();
	struct cr_harness_step first = step(&l);
	expect_kind(&first, CR_STEP_MODEL);
	/* A worker died mid-call, after appending part of the reply. */
	tl_add(&l, "span.model_request_start", "{}", false);
	tl_add(&l, "agent.message", "{'content':[{'type':'text','text':'Half'}]}", false);
	tl_add(&l, "agent.tool_use", "{'name':'bash','input':{'command':'ls'}}", false);
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_assert_eq(s.retry_delay_ms, 0);
	cr_assert_str_eq(first.request, s.request);
	cr_harness_step_clear(&s);

	/* The re-issued call's reply is the one that counts. */
	model_says(&l, "Whole.", "end_turn");
	user_says(&l, "ok");
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	expect_json(json_array_get(json_object_get(request_of(&s), "messages"), 1),
		    "{'role':'assistant','content':[{'type':'text','text':'Whole.'}]}");
	cr_harness_step_clear(&s);
	cr_harness_step_clear(&first);
	tl_free(&l);
}

Test(harness, message_sent_during_a_model_call_follows_its_answer)
{
	struct tlog l = started();
	tl_add(&l, "span.model_request_start", "{}", false);
	user_says(&l, "one more thing"); /* sent while the model was answering */
	tl_add(&l, "agent.message", "{'content':[{'type':'text','text':'Answer.'}]}", false);
	char end[256];
	snprintf(end, sizeof(end),
		 "{'model_request_start_id':'%s','is_error':false,'model_usage':{'input_tokens':1,"
		 "'output_tokens':1,'cache_creation_input_tokens':0,'cache_read_input_tokens':0},"
		 "'stop_reason':'end_turn'}",
		 id_of(&l, l.n - 2));
	tl_add(&l, "span.model_request_end", end, false);
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	expect_json(json_object_get(request_of(&s), "messages"),
		    "[{'role':'user','content':[{'type':'text','text':'hi'}]},"
		    "{'role':'assistant','content':[{'type':'text','text':'Answer.'}]},"
		    "{'role':'user','content':[{'type':'text','text':'one more thing',"
		    "'cache_control':{'type':'ephemeral'}}]}]");
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, pending_message_while_idle_starts_running)
{
	struct tlog l = started();
	model_says(&l, "Hello.", "end_turn");
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_add(&l, "system.message", "{'content':[{'type':'text','text':'note'}]}", true);
	user_says(&l, "Next");
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "session.status_running");
	cr_assert_eq(s.n_mark, 2);
	cr_assert_eq(s.mark[0], l.n - 1);
	cr_assert_eq(s.mark[1], l.n);
	apply(&l, &s);
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	expect_json(last_message(&s), "{'role':'user','content':[{'type':'text','text':'note'},"
				      "{'type':'text','text':'Next','cache_control':{'type':"
				      "'ephemeral'}}]}");
	cr_harness_step_clear(&s);

	/* A confirmation that answers nothing is consumed without waking the session. */
	model_says(&l, "Done.", "end_turn");
	s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_add(&l, "user.tool_confirmation", "{'result':'allow','tool_use_id':'sevt_nope'}", true);
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 0);
	cr_assert_eq(s.n_mark, 1);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, terminated_session_ends_and_empty_one_waits)
{
	struct tlog l = LOG({ "lease.acquired", "{'epoch':1}", false });
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	tl_free(&l);
	l = LOG({ "user.message", "{'content':[{'type':'text','text':'hi'}]}", false },
		{ "session.status_running", "{}", false },
		{ "session.status_terminated", "{}", false },
		{ "user.message", "{'content':[{'type':'text','text':'more'}]}", true });
	s = step(&l);
	expect_kind(&s, CR_STEP_END);
	cr_harness_step_clear(&s);
	tl_free(&l);
	/* A session deleted while its brain had tool calls to run ends as well. */
	l = LOG({ "user.message", "{'content':[{'type':'text','text':'hi'}]}", false },
		{ "session.status_running", "{}", false },
		{ "span.model_request_start", "{}", false },
		{ "agent.tool_use", "{'name':'bash','input':{'command':'ls'}}", false },
		{ "span.model_request_end",
		  "{'model_request_start_id':'sevt_3','is_error':false,'stop_reason':'tool_use'}",
		  false },
		{ "session.deleted", "{}", false });
	s = step(&l);
	expect_kind(&s, CR_STEP_END);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

/* --- determinism ---------------------------------------------------------------------------- */

static void strip_cache_control(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j)) {
		json_object_del(j, "cache_control");
		json_object_foreach (j, k, v)
			strip_cache_control(v);
	} else if (json_is_array(j)) {
		json_array_foreach (j, i, v)
			strip_cache_control(v);
	}
}

static char *stripped(const json_t *request, const char *key)
{
	json_t *c = json_deep_copy(json_object_get(request, key));
	strip_cache_control(c);
	char *s = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	return s;
}

Test(harness, each_request_extends_the_one_before_byte_for_byte)
{
	struct tlog l = started();
	json_t *requests[5];
	size_t n = 0;
	struct cr_harness_step s = step(&l);
	requests[n++] = json_incref(request_of(&s));
	cr_harness_step_clear(&s);

	model_reply(&l, two_calls); /* turn 2: tool results */
	s = step(&l);
	tool_results(&l, &s, "x");
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	requests[n++] = json_incref(request_of(&s));
	cr_harness_step_clear(&s);

	model_says(&l, "Done.", "end_turn"); /* turn 3: a new message */
	user_says(&l, "And now?");
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	requests[n++] = json_incref(request_of(&s));
	cr_harness_step_clear(&s);

	model_reply(&l, write_call); /* turn 4: a confirmed call */
	s = settle(&l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	char p[128];
	snprintf(p, sizeof(p), "{'result':'allow','tool_use_id':'%s'}",
		 id_of(&l, last_of(&l, "agent.tool_use")));
	tl_add(&l, "user.tool_confirmation", p, true);
	s = settle(&l);
	tool_results(&l, &s, "written");
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_MODEL);
	requests[n++] = json_incref(request_of(&s));
	cr_harness_step_clear(&s);

	for (size_t i = 0; i + 1 < n; i++) {
		char *a = stripped(requests[i], "messages"),
		     *b = stripped(requests[i + 1], "messages");
		size_t la = strlen(a);
		cr_assert_eq(a[la - 1], ']');
		cr_assert_gt(strlen(b), la);
		cr_assert(strncmp(a, b, la - 1) == 0,
			  "request %zu is not a prefix of the next:\n%s\n%s", i + 1, a, b);
		free(a);
		free(b);
		/* What comes before the messages is the same bytes, cache_control included. */
		char *ta = json_dumps(json_object_get(requests[i], "tools"), JSON_COMPACT);
		char *tb = json_dumps(json_object_get(requests[i + 1], "tools"), JSON_COMPACT);
		cr_assert_str_eq(ta, tb);
		free(ta);
		free(tb);
		/* Only the last block of the last message carries cache_control. */
		json_t *msgs = json_object_get(requests[i], "messages");
		json_t *m;
		size_t k;
		json_array_foreach (msgs, k, m) {
			json_t *content = json_object_get(m, "content");
			for (size_t j = 0; j < json_array_size(content); j++) {
				bool last = k + 1 == json_array_size(msgs) &&
					    j + 1 == json_array_size(content);
				cr_assert_eq(json_object_get(json_array_get(content, j),
							     "cache_control") != NULL,
					     last);
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		json_decref(requests[i]);
	tl_free(&l);
}

/* --- compaction ----------------------------------------------------------------------------- */

/* Four turns after "start", a new message pending; returns the long message's seq. */
static uint64_t long_session(struct tlog *l, char *long_text, size_t size)
{
	*l = LOG({ "user.message", "{'content':[{'type':'text','text':'start'}]}", true });
	struct cr_harness_step s = settle(l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_harness_step_clear(&s);
	model_reply(l, "{'role':'assistant','content':[{'type':'text','text':'Looking.'},"
		       "{'type':'tool_use','id':'t1','name':'bash','input':{'command':'ls'}}],"
		       "'stop_reason':'tool_use'}");
	s = step(l);
	tool_results(l, &s, "a.txt\nb.txt");
	cr_harness_step_clear(&s);
	s = step(l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_harness_step_clear(&s);
	model_says(l, "Two files.", "end_turn");
	s = settle(l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	/* 199 bytes of ASCII, then a two-byte character across the 200-byte cut. */
	memset(long_text, 'a', 199);
	snprintf(long_text + 199, size - 199, "\xc3\xa9\nmore");
	user_says(l, long_text);
	uint64_t seq = l->n;
	s = settle(l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_harness_step_clear(&s);
	model_reply(l, "{'role':'assistant','content':[{'type':'tool_use','id':'t2',"
		       "'name':'read','input':{'file_path':'a.txt'}}],'stop_reason':'tool_use'}");
	struct cr_harness_event e;
	cr_assert_eq(cr_harness_tool_result(id_of(l, l->n - 1), "no such file", true, &e, NULL), 0);
	tl_add_json(l, e.type, e.payload);
	cr_harness_event_clear(&e);
	s = step(l);
	expect_kind(&s, CR_STEP_MODEL);
	cr_harness_step_clear(&s);
	model_says(l, "Done.", "end_turn");
	s = settle(l);
	expect_kind(&s, CR_STEP_WAIT);
	cr_harness_step_clear(&s);
	user_says(l, "thanks");
	return seq;
}

Test(harness, compaction_summarizes_old_turns_and_keeps_recent_ones)
{
	struct cr_harness_agent a = agent;
	a.context_budget = 50;
	a.keep_turns = 2;
	struct tlog l;
	char long_text[256];
	uint64_t long_seq = long_session(&l, long_text, sizeof(long_text));

	/* Without compaction, for comparison. */
	struct cr_harness_step full = settle(&l);
	expect_kind(&full, CR_STEP_MODEL);
	char *full_json = strdup(full.request);
	cr_assert_eq(json_array_size(json_object_get(request_of(&full), "messages")), 9);

	struct cr_harness_step s = step_with(&a, &l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_eq(s.n_events, 1);
	cr_assert_str_eq(s.events[0].type, "agent.thread_context_compacted");
	char want[1024];
	snprintf(want, sizeof(want),
		 "Earlier conversation (4 messages) compacted by corral:\n"
		 "assistant: Looking.\n"
		 "assistant called bash({\"command\":\"ls\"})\n"
		 "tool result: a.txt b.txt\n"
		 "assistant: Two files.\n"
		 "user: %.199s",
		 long_text);
	json_t *p = s.events[0].payload;
	cr_assert_str_eq(json_string_value(json_object_get(p, "summary")), want);
	cr_assert_eq(json_integer_value(json_object_get(p, "through_seq")), (json_int_t)long_seq);
	cr_assert_eq(json_integer_value(json_object_get(p, "compacted_messages")), 4);
	apply(&l, &s);
	cr_harness_step_clear(&s);

	/* Now the model is called with the first message, the summary, the last two turns. */
	s = step_with(&a, &l);
	expect_kind(&s, CR_STEP_MODEL);
	char *json = strdup(s.request);
	cr_assert_lt(strlen(json), strlen(full_json));
	json_t *msgs = json_object_get(request_of(&s), "messages");
	cr_assert_eq(json_array_size(msgs), 5);
	json_t *first = json_object_get(json_array_get(msgs, 0), "content");
	cr_assert_eq(json_array_size(first), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(first, 0), "text")),
			 "start");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(first, 1), "text")),
			 want);
	/* The tail starts with an assistant message, and every result has its call before it. */
	const char *roles[] = { "user", "assistant", "user", "assistant", "user" };
	for (size_t i = 0; i < 5; i++) {
		json_t *m = json_array_get(msgs, i);
		cr_assert_str_eq(json_string_value(json_object_get(m, "role")), roles[i]);
		size_t j;
		json_t *b;
		json_array_foreach (json_object_get(m, "content"), j, b) {
			if (strcmp(json_string_value(json_object_get(b, "type")), "tool_result"))
				continue;
			const char *id = json_string_value(json_object_get(b, "tool_use_id"));
			bool found = false;
			size_t q;
			json_t *u;
			json_array_foreach (json_object_get(json_array_get(msgs, i - 1), "content"),
					    q, u) {
				found |= !strcmp(json_string_value(json_object_get(u, "type")),
						 "tool_use") &&
					 !strcmp(json_string_value(json_object_get(u, "id")), id);
			}
			cr_assert(found, "tool result for %s without its call", id);
		}
	}
	/* Fewer turns than keep_turns remain: no second compaction, however large. */
	cr_harness_step_clear(&s);
	s = step_with(&a, &l);
	expect_kind(&s, CR_STEP_MODEL);
	char *again = strdup(s.request);
	cr_assert_str_eq(json, again);
	free(again);
	free(json);
	free(full_json);
	cr_harness_step_clear(&s);
	cr_harness_step_clear(&full);
	tl_free(&l);
}

/* --- bad logs ------------------------------------------------------------------------------- */

static void expect_einval(struct tlog *l, const char *says)
{
	struct cr_harness_step s;
	struct cr_error err = { 0 };
	int r = cr_harness_step(&agent, l->ev, l->n, &s, &err);
	cr_assert_eq(r, -EINVAL, "step returned %d (%s)", r, err.msg);
	cr_assert(strstr(err.msg, says), "\"%s\" does not say \"%s\"", err.msg, says);
	cr_assert_eq(s.kind, CR_STEP_WAIT);
	cr_assert_null(s.events);
	cr_assert_null(s.request);
	tl_free(l);
}

Test(harness, malformed_logs_are_refused)
{
	struct tlog l = LOG({ "user.message", "{'content':'hi'}", true });
	expect_einval(&l, "event 1 (user.message)");
	l = LOG({ "user.message", "not json", false });
	expect_einval(&l, "not a JSON object");
	l = LOG({ "user.message", "{'content':[{'type':'text','text':'hi'}]}", false },
		{ "session.status_running", "{}", false },
		{ "agent.tool_result", "{'tool_use_id':'sevt_9','content':[]}", false });
	expect_einval(&l, "event 3 (agent.tool_result)");
	l = LOG({ "user.tool_confirmation", "{'result':'maybe','tool_use_id':'sevt_1'}", true });
	expect_einval(&l, "allow or deny");
	l = LOG({ "session.status_running", "{}", false },
		{ "span.model_request_start", "{}", false },
		{ "agent.message", "{'content':[{'type':'text','text':'first!'}]}", false },
		{ "span.model_request_end",
		  "{'model_request_start_id':'sevt_2','is_error':false,'stop_reason':'end_turn'}",
		  false },
		{ "user.message", "{'content':[{'type':'text','text':'hi'}]}", false });
	expect_einval(&l, "before any user message");
	l = LOG({ "user.message", "{'content':[{'type':'text','text':'hi'}]}", false },
		{ "agent.thread_context_compacted", "{'summary':3}", false });
	expect_einval(&l, "through_seq");

	struct cr_harness_agent a = { .model = NULL };
	struct cr_harness_step s;
	struct cr_error err;
	cr_assert_eq(cr_harness_step(&a, NULL, 0, &s, &err), -EINVAL);
}

/* The fold reads payloads as text: what jansson would not load must still be refused, and what
 * it loads but the text reader leaves to it (deep nesting, many keys) still read. */
Test(harness, payloads_are_read_as_jansson_reads_them)
{
	static const char *const refused[] = {
		"{\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000b\"}]}",
		"{\"content\":[{\"type\":\"text\",\"text\":\"a\xff\"}]}",
		"{\"content\":[{\"type\":\"text\",\"text\":\"a\tb\"}]}",
		"{\"content\":[],\"n\":123456789012345678901234567890}",
		"{\"content\":[]} x",
		"{\"content\":[}",
	};
	for (size_t i = 0; i < CR_ARRAY_SIZE(refused); i++) {
		struct tlog l = { 0 };
		tl_push(&l, "user.message", strdup(refused[i]), false);
		expect_einval(&l, "not a JSON object");
	}

	/* 40 levels and 40 keys: valid, and sent as jansson writes them */
	char deep[2048] = "{\"content\":[{\"type\":\"image\",\"source\":";
	for (int i = 0; i < 40; i++)
		strcat(deep, "{\"a\":");
	strcat(deep, "1");
	for (int i = 0; i < 40; i++)
		strcat(deep, "}");
	for (int i = 0; i < 40; i++)
		snprintf(deep + strlen(deep), sizeof(deep) - strlen(deep), ",\"k%d\":%d", i, i);
	strcat(deep, "}]}");
	struct tlog l = { 0 };
	tl_push(&l, "user.message", strdup(deep), true);
	struct cr_harness_step s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	json_t *want = json_loads(deep, 0, NULL);
	cr_assert_not_null(want);
	json_t *block = json_array_get(
		json_object_get(json_array_get(json_object_get(request_of(&s), "messages"), 0),
				"content"),
		0);
	json_object_del(block, "cache_control");
	cr_assert(json_equal(block, json_array_get(json_object_get(want, "content"), 0)));
	json_decref(want);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

/* --- recording ------------------------------------------------------------------------------ */

Test(harness, model_events_follow_the_message_block_order)
{
	struct tlog l = started();
	model_reply(&l, "{'role':'assistant','content':["
			"{'type':'thinking','thinking':'Hmm.','signature':'sig'},"
			"{'type':'text','text':'A'},{'type':'text','text':'B'},"
			"{'type':'tool_use','id':'toolu_1','name':'bash','input':{'command':'ls'}},"
			"{'type':'text','text':'C'},"
			"{'type':'tool_use','id':'toolu_2','name':'lookup','input':{'word':'w'}}],"
			"'stop_reason':'tool_use'}");
	const char *types[] = {
		"span.model_request_start", "agent.thinking", "agent.message",
		"agent.tool_use",	    "agent.message",  "agent.custom_tool_use",
		"span.model_request_end"
	};
	size_t base = l.n - 7;
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(l.ev[base + i].type, types[i]);
	const char *payloads[] = {
		"{}",
		"{'thinking':'Hmm.','signature':'sig'}",
		"{'content':[{'type':'text','text':'A'},{'type':'text','text':'B'}]}",
		"{'name':'bash','input':{'command':'ls'},'model_tool_use_id':'toolu_1'}",
		"{'content':[{'type':'text','text':'C'}]}",
		"{'name':'lookup','input':{'word':'w'},'model_tool_use_id':'toolu_2'}",
	};
	for (size_t i = 0; i < 6; i++) {
		json_t *p = payload_of(&l, base + i + 1);
		expect_json(p, payloads[i]);
		json_decref(p);
	}
	/* The built-in call runs; the custom one waits for the client after it. */
	struct cr_harness_step s = step(&l);
	expect_kind(&s, CR_STEP_TOOLS);
	cr_assert_eq(s.n_tools, 1);
	tool_results(&l, &s, "ok");
	cr_harness_step_clear(&s);
	s = step(&l);
	expect_kind(&s, CR_STEP_APPEND);
	cr_assert_str_eq(s.events[0].type, "session.status_idle");
	cr_harness_step_clear(&s);
	/* The assistant message as the model gave it, thinking included. */
	char p[256];
	snprintf(p, sizeof(p),
		 "{'custom_tool_use_id':'%s','content':[{'type':'text','text':'word'}]}",
		 id_of(&l, base + 6));
	tl_add(&l, "user.custom_tool_result", p, true);
	s = settle(&l);
	expect_kind(&s, CR_STEP_MODEL);
	json_t *asst = json_object_get(
		json_array_get(json_object_get(request_of(&s), "messages"), 1), "content");
	cr_assert_eq(json_array_size(asst), 6);
	expect_json(json_array_get(asst, 0),
		    "{'type':'thinking','thinking':'Hmm.','signature':'sig'}");
	cr_assert_eq(json_array_size(json_object_get(last_message(&s), "content")), 2);
	cr_harness_step_clear(&s);
	tl_free(&l);
}

Test(harness, tool_result_event_shape)
{
	struct cr_harness_event e;
	struct cr_error err;
	cr_assert_eq(cr_harness_tool_result("sevt_7", "fine", false, &e, &err), 0);
	cr_assert_str_eq(e.type, "agent.tool_result");
	expect_json(e.payload, "{'tool_use_id':'sevt_7','content':[{'type':'text','text':'fine'}],'"
			       "is_error':false}");
	cr_harness_event_clear(&e);
	cr_harness_event_clear(&e); /* twice is fine */
}

/* --- the step's bytes, pinned ------------------------------------------------------------------
 */

/* A log that goes through most of what the fold reads, with payloads written as a client or
 * another JSON writer might: whitespace, escapes jansson would not write (\u00e9, \/), a
 * duplicate key, reals and -0 in a tool's input, empty and text-less text blocks, a client's own
 * cache_control; thinking, parallel, confirmed, denied, custom and unknown tool calls, a
 * failed call and its retry, an idle, a system message, a compaction, a call cut off, an
 * interrupt. Payloads are JSON as is (no ' for "). */
static const struct triple varied_log[] = {
	{ "lease.acquired", "{\"epoch\":1}", false },
	{ "user.message",
	  "{\"content\": [ {\"type\":\"text\",\"text\":\"h\\u00e9llo \\/ \\\"q\\\" \\ud83d\\ude00 "
	  "tab\\t\\u0001\"}, {\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
	  "\"image/png\",\"data\":\"iVBOR\"}}, {\"type\":\"text\",\"text\":\"\"}, "
	  "{\"type\":\"text\"}, {\"type\":\"document\",\"source\":{\"type\":\"text\","
	  "\"media_type\":\"text/plain\",\"data\":\"doc\"},\"title\":\"T\",\"cache_control\":{"
	  "\"type\":\"ephemeral\",\"ttl\":\"5m\"}} ] }",
	  false },
	{ "session.status_running", "{}", false },
	{ "span.model_request_start", "{}", false },
	{ "agent.thinking", "{\"thinking\":\"let me think\\n\",\"signature\":\"sig==\"}", false },
	{ "agent.message",
	  "{\"content\":[{\"type\":\"text\",\"text\":\"I'll run ls\"},{\"type\":\"text\","
	  "\"text\":\"\"}]}",
	  false },
	{ "agent.tool_use",
	  "{\"name\":\"bash\",\"input\":{\"command\":\"ls -la\",\"timeout\":0.1,\"n\":-0,"
	  "\"big\":1e5, \"z\":{\"a\":1,\"a\":2},\"k\":[true,false,null,1.5,-2]}}",
	  false },
	{ "agent.tool_use",
	  "{\"name\":\"write\",\"input\":{\"file_path\":\"/tmp/x\",\"content\":\"\\u007f\\u001F"
	  "\\u00E9\"}}",
	  false },
	{ "agent.custom_tool_use", "{\"name\":\"lookup\",\"input\":{\"word\":\"caf\\u00E9\"}}",
	  false },
	{ "agent.tool_use", "{\"name\":\"grep\",\"input\":{}}", false },
	{ "span.model_request_end",
	  "{\"model_request_start_id\":\"sevt_4\",\"is_error\":false,\"model_usage\":{"
	  "\"input_tokens\":1,\"output_tokens\":2,\"cache_creation_input_tokens\":0,"
	  "\"cache_read_input_tokens\":0},\"stop_reason\":\"tool_use\",\"ttft_ms\":3.5,"
	  "\"attempts\":1,\"request_id\":\"req_1\"}",
	  false },
	{ "agent.tool_result",
	  "{\"tool_use_id\":\"sevt_7\",\"content\":[{\"type\":\"text\",\"text\":\"out\\r\\n\"},"
	  "{\"type\":\"text\",\"text\":\"\"}],\"is_error\":false}",
	  false },
	{ "agent.tool_result",
	  "{\"tool_use_id\":\"sevt_10\",\"content\":[{\"type\":\"text\",\"text\":\"unknown tool: "
	  "grep\"}],\"is_error\":true}",
	  false },
	{ "user.tool_confirmation",
	  "{\"tool_use_id\":\"sevt_8\",\"result\":\"deny\",\"deny_message\":\"no \\\"way\\\"\"}",
	  false },
	{ "agent.tool_result",
	  "{\"tool_use_id\":\"sevt_8\",\"content\":[{\"type\":\"text\",\"text\":\"no "
	  "\\\"way\\\"\"}],\"is_error\":true}",
	  false },
	{ "user.custom_tool_result",
	  "{\"custom_tool_use_id\":\"sevt_9\",\"content\":[{\"type\":\"text\",\"text\":\"a "
	  "drink\"}],\"is_error\":true}",
	  false },
	{ "span.model_request_start", "{}", false },
	{ "span.model_request_end", "{\"model_request_start_id\":\"sevt_17\",\"is_error\":true}",
	  false },
	{ "session.error",
	  "{\"error\":{\"type\":\"model_overloaded_error\",\"message\":\"x\",\"retry_status\":{"
	  "\"type\":\"retrying\"}}}",
	  false },
	{ "span.model_request_start", "{}", false },
	{ "agent.message",
	  "{\"content\":[{\"type\":\"text\",\"text\":\"Done with \xc3\xbcn\xc3\xaf"
	  "c\xc3\xb6"
	  "d\xc3\xa9 and a \\\\ backslash\"}]}",
	  false },
	{ "span.model_request_end",
	  "{\"model_request_start_id\":\"sevt_20\",\"is_error\":false,\"stop_reason\":"
	  "\"end_turn\"}",
	  false },
	{ "session.status_idle", "{\"stop_reason\":{\"type\":\"end_turn\"},\"stop_details\":null}",
	  false },
	{ "system.message",
	  "{\"content\":[{\"type\":\"text\",\"text\":\"system note\"},{\"type\":\"image\","
	  "\"source\":{}}]}",
	  false },
	{ "user.message",
	  "{\"content\":[{\"type\":\"text\",\"text\":\"again\",\"cache_control\":{\"type\":"
	  "\"ephemeral\"}}]}",
	  false },
	{ "session.status_running", "{}", false },
	{ "span.model_request_start", "{}", false },
	{ "agent.message", "{\"content\":[{\"type\":\"text\",\"text\":\"turn 2\"}]}", false },
	{ "agent.tool_use", "{\"name\":\"bash\",\"input\":{\"command\":\"echo 2\"}}", false },
	{ "agent.tool_use", "{\"name\":\"write\",\"input\":{\"file_path\":\"/y\"}}", false },
	{ "span.model_request_end",
	  "{\"model_request_start_id\":\"sevt_27\",\"is_error\":false,\"stop_reason\":"
	  "\"tool_use\"}",
	  false },
	{ "agent.tool_result",
	  "{\"tool_use_id\":\"sevt_29\",\"content\":[{\"type\":\"text\",\"text\":\"2\"}],"
	  "\"is_error\":false}",
	  false },
	{ "session.status_idle",
	  "{\"stop_reason\":{\"type\":\"requires_action\",\"event_ids\":[\"sevt_30\"]},"
	  "\"stop_details\":null}",
	  false },
	{ "user.tool_confirmation", "{\"tool_use_id\":\"sevt_30\",\"result\":\"allow\"}", false },
	{ "session.status_running", "{}", false },
	{ "agent.tool_result",
	  "{\"tool_use_id\":\"sevt_30\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],"
	  "\"is_error\":false}",
	  false },
	{ "agent.thread_context_compacted",
	  "{\"summary\":\"Earlier: \\\"stuff\\\"\\nline2\",\"through_seq\":16,"
	  "\"compacted_messages\":2}",
	  false },
	{ "span.model_request_start", "{}", false },
	{ "agent.message", "{\"content\":[{\"type\":\"text\",\"text\":\"cut\"}]}", false },
	{ "user.message", "{\"content\":[{\"type\":\"text\",\"text\":\"meanwhile\"}]}", true },
	{ "user.tool_confirmation", "{\"tool_use_id\":\"sevt_8\",\"result\":\"allow\"}", true },
	{ "user.interrupt", "{}", true },
	{ "user.message", "{\"content\":[{\"type\":\"text\",\"text\":\"after\"}]}", true },
};

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
	return fnv1a(h, s, strlen(s) + 1); /* with its NUL: "ab","c" differs from "a","bc" */
}

/* A digest of everything a step says, its request's bytes included, or of its error. */
static uint64_t step_digest(const struct cr_harness_agent *a, const struct cr_log_event *ev,
			    size_t n)
{
	struct cr_harness_step s;
	struct cr_error err = { 0 };
	uint64_t h = 14695981039346656037ull;
	char num[64];
	int r = cr_harness_step(a, ev, n, &s, &err);
	if (r < 0) {
		snprintf(num, sizeof(num), "error %d", r);
		return fnv1a_str(fnv1a_str(h, num), err.msg);
	}
	snprintf(num, sizeof(num), "%d %u", (int)s.kind, s.retry_delay_ms);
	h = fnv1a_str(h, num);
	if (s.request)
		h = fnv1a_str(h, s.request);
	for (size_t i = 0; i < s.n_events; i++) {
		char *p = json_dumps(s.events[i].payload, JSON_COMPACT);
		h = fnv1a_str(fnv1a_str(h, s.events[i].type), p);
		free(p);
	}
	for (size_t i = 0; i < s.n_mark; i++) {
		snprintf(num, sizeof(num), "%" PRIu64, s.mark[i]);
		h = fnv1a_str(h, num);
	}
	for (size_t i = 0; i < s.n_tools; i++) {
		char *in = json_dumps(s.tools[i].input, JSON_COMPACT);
		h = fnv1a_str(fnv1a_str(fnv1a_str(h, s.tools[i].tool_use_id), s.tools[i].name), in);
		free(in);
	}
	cr_harness_step_clear(&s);
	return h;
}

/* The step of every prefix of varied_log, for three agents (this suite's; one that compacts
 * at once, keeping 1 turn; one with neither a system prompt nor tools), digested. The digests
 * were taken from the harness that built the request as a jansson tree and dumped it
 * (JSON_COMPACT), as runtime/model sent it: the text-built request must be those bytes. */
Test(harness, steps_are_the_bytes_the_tree_harness_gave)
{
	static const uint64_t want[][CR_ARRAY_SIZE(varied_log)] = {
		{
			0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0x81db82a2c47db6b2ull, 0x81db82a2c47db6b2ull,
			0xc872045de3adcbf0ull, 0x56fa7317a6cfcfabull, 0xff4cb714cea2d221ull,
			0x733652864eb30906ull, 0x733652864eb30906ull, 0xe53bbf8c5e3aaa2bull,
			0xe53bbf8c5e3aaa2bull, 0x733652864eb30906ull, 0x733652864eb30906ull,
			0x34888f993c9e4526ull, 0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull,
			0x37a835f99ce7ddd5ull, 0xbd21a3821f0b9a65ull, 0xbd21a3821f0b9a65ull,
			0xbd21a3821f0b9a65ull, 0xbd21a3821f0b9a65ull, 0xbd21a3821f0b9a65ull,
			0x6f955f5c91e668afull, 0x683d82138eae3c23ull, 0x37a835f99ce7ddd5ull,
			0x7a678a0edb1c0682ull, 0x7a678a0edb1c0682ull, 0x3909d94f845ab9ddull,
			0x8fe4ba68833f2397ull, 0x8fe4ba68833f2397ull, 0x8fe4ba68833f2397ull,
			0x07ee1ad9b463f4b1ull, 0xc595a76a62d5cffeull, 0xcd399f6435dfd96bull,
			0xcd399f6435dfd96bull,
		},
		{
			0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull, 0xb49cfde8ae67e30bull,
			0xb49cfde8ae67e30bull, 0x81db82a2c47db6b2ull, 0x81db82a2c47db6b2ull,
			0xc872045de3adcbf0ull, 0x56fa7317a6cfcfabull, 0xff4cb714cea2d221ull,
			0x733652864eb30906ull, 0x733652864eb30906ull, 0xe53bbf8c5e3aaa2bull,
			0xe53bbf8c5e3aaa2bull, 0x733652864eb30906ull, 0x733652864eb30906ull,
			0x34888f993c9e4526ull, 0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull,
			0x37a835f99ce7ddd5ull, 0x1b7b62966e39cd1full, 0x1b7b62966e39cd1full,
			0x1b7b62966e39cd1full, 0x1b7b62966e39cd1full, 0x1b7b62966e39cd1full,
			0x6f955f5c91e668afull, 0x683d82138eae3c23ull, 0x37a835f99ce7ddd5ull,
			0x7a678a0edb1c0682ull, 0x7a678a0edb1c0682ull, 0x42b20cc241a840feull,
			0x283460623f14818bull, 0x283460623f14818bull, 0x283460623f14818bull,
			0x07ee1ad9b463f4b1ull, 0xc595a76a62d5cffeull, 0xcd399f6435dfd96bull,
			0xcd399f6435dfd96bull,
		},
		{
			0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull, 0xb2fdb5c419e64d3full,
			0xb2fdb5c419e64d3full, 0xb2fdb5c419e64d3full, 0xb2fdb5c419e64d3full,
			0xb2fdb5c419e64d3full, 0xb2fdb5c419e64d3full, 0xb2fdb5c419e64d3full,
			0xb2fdb5c419e64d3full, 0xe1b43618eaff1854ull, 0x0e6452f9262ed427ull,
			0xf990b7246feed9b2ull, 0xf990b7246feed9b2ull, 0xff4cb714cea2d221ull,
			0x36be09d605c82592ull, 0x36be09d605c82592ull, 0x6b0da326b4a9f7efull,
			0x6b0da326b4a9f7efull, 0x36be09d605c82592ull, 0x36be09d605c82592ull,
			0x34888f993c9e4526ull, 0x37a835f99ce7ddd5ull, 0x37a835f99ce7ddd5ull,
			0x37a835f99ce7ddd5ull, 0x5548b8b365a61b51ull, 0x5548b8b365a61b51ull,
			0x5548b8b365a61b51ull, 0x5548b8b365a61b51ull, 0x5548b8b365a61b51ull,
			0xe52494c4334d9088ull, 0x899c7d681837a139ull, 0x899c7d681837a139ull,
			0x899c7d681837a139ull, 0x899c7d681837a139ull, 0x1d016355f233ee89ull,
			0x05c0bb15b8a1b3bbull, 0x05c0bb15b8a1b3bbull, 0x05c0bb15b8a1b3bbull,
			0x07ee1ad9b463f4b1ull, 0xc595a76a62d5cffeull, 0xcd399f6435dfd96bull,
			0xcd399f6435dfd96bull,
		},
	};
	struct cr_harness_agent agents[3] = { agent, agent, agent };
	agents[1].context_budget = 10;
	agents[1].keep_turns = 1;
	agents[2].system = NULL;
	agents[2].tools = NULL;
	agents[2].max_tokens = 123456789;
	struct tlog l = { 0 };
	for (size_t i = 0; i < CR_ARRAY_SIZE(varied_log); i++)
		tl_push(&l, varied_log[i].type, strdup(varied_log[i].payload),
			varied_log[i].pending);
	for (size_t k = 0; k < CR_ARRAY_SIZE(agents); k++) {
		for (size_t n = 1; n <= l.n; n++) {
			uint64_t d = step_digest(&agents[k], l.ev, n);
			cr_expect_eq(d, want[k][n - 1],
				     "agent %zu, the first %zu events: digest 0x%016" PRIx64
				     ", want 0x%016" PRIx64,
				     k, n, d, want[k][n - 1]);
		}
	}
	tl_free(&l);
}
