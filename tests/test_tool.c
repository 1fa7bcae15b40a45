/* Unit tests of runtime/tool: the toolset's definitions, the checking of tool input (a tool
 * error naming the field), and every tool run for real through a corral-init started as a
 * child (tests/helpers: cr_test_spawn_init) in a fresh directory. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/tool.h"
#include "helpers.h"

static struct {
	pid_t pid;
	int fd;
	char *dir;
} srv = { .fd = -1 };

static void srv_start(void)
{
	srv.dir = cr_test_tmpdir("tool");
	srv.pid = cr_test_spawn_init(srv.dir, &srv.fd);
}

static void srv_stop(void)
{
	bool running = srv.pid > 0;
	int status = cr_test_close_init(srv.pid, srv.fd);
	srv.fd = -1;
	srv.pid = 0;
	cr_test_rmrf(srv.dir);
	free(srv.dir);
	cr_assert(!running || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
		  "corral-init did not exit 0 when its socket closed (status %#x)", status);
}

TestSuite(tool, .init = srv_start, .fini = srv_stop, .timeout = 60);

/* Runs a tool; asserts it could be asked. The caller frees the result. */
static struct cr_tool_result run(const char *id, const char *name, const char *input)
{
	struct cr_tool_result res;
	struct cr_error err;
	int r = cr_tool_execute(srv.fd, id, name, input, strlen(input), &res, &err);
	cr_assert_eq(r, 0, "%s %s: %s", name, input, err.msg);
	cr_assert_not_null(res.content);
	return res;
}

/* Runs a tool that must succeed; returns its text (static storage until the next call). */
static const char *ok(const char *name, const char *input)
{
	static struct cr_tool_result res;
	cr_tool_result_clear(&res);
	res = run(NULL, name, input);
	cr_assert(!res.is_error, "%s %s failed: %s", name, input, res.content);
	return res.content;
}

/* Runs a tool that must fail as a tool error whose text holds want. */
static void fails(const char *name, const char *input, const char *want)
{
	struct cr_tool_result res = run(NULL, name, input);
	cr_assert(res.is_error, "%s %s succeeded: %s", name, input, res.content);
	cr_assert(strstr(res.content, want), "%s %s: \"%s\" does not say \"%s\"", name, input,
		  res.content, want);
	cr_tool_result_clear(&res);
}

Test(tool, definitions_name_the_six_tools_with_closed_schemas)
{
	static const char *names[] = { "bash", "read", "write", "edit", "glob", "grep" };
	json_t *defs = cr_toolset_definitions();
	cr_assert_not_null(defs);
	cr_assert_eq(json_array_size(defs), 6);
	for (size_t i = 0; i < 6; i++) {
		json_t *d = json_array_get(defs, i);
		cr_assert_str_eq(json_string_value(json_object_get(d, "name")), names[i]);
		cr_assert(cr_tool_known(names[i]));
		cr_assert_gt(strlen(json_string_value(json_object_get(d, "description"))), 20);
		json_t *schema = json_object_get(d, "input_schema");
		cr_assert_str_eq(json_string_value(json_object_get(schema, "type")), "object");
		cr_assert(json_is_false(json_object_get(schema, "additionalProperties")));
		json_t *props = json_object_get(schema, "properties");
		cr_assert_gt(json_object_size(props), 0);
		/* every required field is a property */
		size_t k;
		json_t *req;
		json_array_foreach (json_object_get(schema, "required"), k, req)
			cr_assert_not_null(json_object_get(props, json_string_value(req)));
	}
	cr_assert(!cr_tool_known("Bash"));
	cr_assert(!cr_tool_known("mcp__x__y"));
	/* the public API's fields, exactly */
	json_t *edit = json_object_get(json_array_get(defs, 3), "input_schema");
	cr_assert_eq(json_array_size(json_object_get(edit, "required")), 3);
	cr_assert_not_null(json_object_get(json_object_get(edit, "properties"), "replace_all"));
	json_decref(defs);
}

Test(tool, bad_input_is_a_tool_error_naming_the_field)
{
	fails("read", "{}", "field \"file_path\" is required");
	fails("read", "{\"file_path\": 3}", "field \"file_path\" must be a string");
	fails("read", "{\"file_path\": \"a\", \"view_range\": [1]}",
	      "field \"view_range\" must be an array of two integers");
	fails("read", "{\"file_path\": \"a\", \"view_range\": [0, 3]}", "lines count from 1");
	fails("read", "{\"file_path\": \"a\", \"view_range\": [5, 3]}", "ends before it starts");
	fails("read", "{\"file_path\": \"a\", \"lines\": 3}", "unknown field \"lines\"");
	fails("write", "{\"file_path\": \"a\"}", "field \"content\" is required");
	fails("edit",
	      "{\"file_path\": \"a\", \"old_string\": \"x\", \"new_string\": \"y\", "
	      "\"replace_all\": \"yes\"}",
	      "field \"replace_all\" must be a boolean");
	fails("bash", "{}", "\"command\" is required");
	fails("bash", "{\"command\": \"true\", \"timeout_ms\": -1}",
	      "field \"timeout_ms\" must be");
	fails("bash", "{\"command\": \"true\", \"timeout_ms\": 1.5}",
	      "field \"timeout_ms\" must be");
	fails("glob", "[\"*.c\"]", "must be a JSON object");
	fails("grep", "{\"pattern\": ", "not valid JSON");
	fails("Bash", "{\"command\": \"true\"}", "unknown tool \"Bash\"");
}

Test(tool, bash_is_one_persistent_shell)
{
	ok("bash", "{\"command\": \"mkdir -p sub && cd sub && X=41\"}");
	cr_assert(strstr(ok("bash", "{\"command\": \"pwd; echo $((X + 1))\"}"), "/sub\n42\n"));
	const char *out = ok("bash", "{\"command\": \"echo oops >&2; exit 3\"}");
	cr_assert(strstr(out, "oops\n") && strstr(out, "[exit status 3]"), "%s", out);
	/* the shell ended with exit 3: the next call says it is a new one */
	cr_assert_not_null(ok("bash", "{\"command\": \"pwd\"}"));
	ok("bash", "{\"command\": \"cd sub; Y=1\"}");
	cr_assert_str_eq(ok("bash", "{\"restart\": true}"), "The bash shell was restarted.");
	cr_assert(!strstr(ok("bash", "{\"command\": \"pwd\"}"), "/sub"), "restart reset the cwd");
}

Test(tool, bash_timeout_kills_and_restarts)
{
	struct cr_tool_result res =
		run(NULL, "bash", "{\"command\": \"trap '' TERM; sleep 30\", \"timeout_ms\": 300}");
	cr_assert(res.is_error);
	cr_assert(strstr(res.content, "[timed out after 300 ms]"), "%s", res.content);
	cr_tool_result_clear(&res);
	cr_assert_str_eq(ok("bash", "{\"command\": \"echo alive\"}"), "alive\n");
}

Test(tool, bash_output_is_capped_with_a_marker)
{
	const char *out = ok("bash", "{\"command\": \"head -c 300000 /dev/zero | tr '\\\\0' a\"}");
	cr_assert(strstr(out, "[output truncated: 200000 bytes omitted]"), "%.200s",
		  out + strlen(out) - 100);
}

Test(tool, write_read_edit_round_trip)
{
	cr_assert_str_eq(
		ok("write", "{\"file_path\": \"d/f.txt\", \"content\": \"one\\ntwo\\nthree\\n\"}"),
		"Created d/f.txt (14 bytes).");
	cr_assert_str_eq(ok("read", "{\"file_path\": \"d/f.txt\"}"),
			 "     1\tone\n     2\ttwo\n     3\tthree\n");
	cr_assert_str_eq(ok("read", "{\"file_path\": \"d/f.txt\", \"view_range\": [2, 0]}"),
			 "     2\ttwo\n     3\tthree\n");
	cr_assert_str_eq(ok("read", "{\"file_path\": \"d/f.txt\", \"view_range\": [1, 1]}"),
			 "     1\tone\n[lines 1-1 of 3 shown]\n");
	cr_assert_str_eq(ok("edit", "{\"file_path\": \"d/f.txt\", \"old_string\": \"two\", "
				    "\"new_string\": \"2\"}"),
			 "Edited d/f.txt: 1 replacement.");
	fails("edit",
	      "{\"file_path\": \"d/f.txt\", \"old_string\": \"two\", \"new_string\": \"x\"}",
	      "was not found");
	ok("write", "{\"file_path\": \"d/f.txt\", \"content\": \"a a a\"}");
	fails("edit", "{\"file_path\": \"d/f.txt\", \"old_string\": \"a\", \"new_string\": \"b\"}",
	      "found 3 times");
	cr_assert_str_eq(ok("edit", "{\"file_path\": \"d/f.txt\", \"old_string\": \"a\", "
				    "\"new_string\": \"b\", \"replace_all\": true}"),
			 "Edited d/f.txt: 3 replacements.");
	cr_assert_str_eq(ok("read", "{\"file_path\": \"d/f.txt\"}"), "     1\tb b b\n");
	fails("read", "{\"file_path\": \"nope.txt\"}", "No such file or directory");
	ok("write", "{\"file_path\": \"empty\", \"content\": \"\"}");
	cr_assert_str_eq(ok("read", "{\"file_path\": \"empty\"}"), "empty is empty.");
}

Test(tool, glob_and_grep_report_paths)
{
	ok("write", "{\"file_path\": \"src/a.c\", \"content\": \"int main;\\n// TODO one\\n\"}");
	ok("write", "{\"file_path\": \"src/sub/b.c\", \"content\": \"// TODO two\\n\"}");
	ok("write", "{\"file_path\": \"README\", \"content\": \"no\\n\"}");
	const char *g = ok("glob", "{\"pattern\": \"**/*.c\"}");
	cr_assert(strstr(g, "src/a.c\n") && strstr(g, "src/sub/b.c\n") && !strstr(g, "README"),
		  "%s", g);
	cr_assert_str_eq(ok("glob", "{\"pattern\": \"*.h\"}"), "No files match *.h.");
	const char *m = ok("grep", "{\"pattern\": \"TODO [a-z]+\", \"path\": \"src\"}");
	cr_assert(strstr(m, "src/a.c:2:// TODO one\n") && strstr(m, "src/sub/b.c:1:// TODO two\n"),
		  "%s", m);
	cr_assert_str_eq(ok("grep", "{\"pattern\": \"absent\"}"), "No matches for absent.");
	fails("grep", "{\"pattern\": \"(\"}", "invalid regular expression");
}

Test(tool, a_repeated_call_id_runs_once)
{
	struct cr_tool_result a =
		run("toolu_01", "bash", "{\"command\": \"echo x >> count; wc -l < count\"}");
	struct cr_tool_result b =
		run("toolu_01", "bash", "{\"command\": \"echo x >> count; wc -l < count\"}");
	cr_assert_str_eq(a.content, "1\n");
	cr_assert_str_eq(b.content, a.content, "the repeat got the first result");
	cr_assert_str_eq(ok("bash", "{\"command\": \"wc -l < count\"}"), "1\n", "and did not run");
	cr_tool_result_clear(&a);
	cr_tool_result_clear(&b);
}

Test(tool, a_dead_sandbox_is_an_error_not_a_tool_result)
{
	kill(srv.pid, SIGKILL);
	waitpid(srv.pid, NULL, 0);
	srv.pid = 0;
	struct cr_tool_result res;
	struct cr_error err;
	int r = cr_tool_execute(srv.fd, NULL, "bash", "{\"command\": \"true\"}", 19, &res, &err);
	cr_assert(r == -ECONNRESET || r == -EPIPE, "got %d (%s)", r, err.msg);
	cr_assert_null(res.content);
}
