/* Unit tests of util/: errors, small-file I/O and directory listings, ids. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/buf.h"
#include "corral/cleanup.h"
#include "corral/error.h"
#include "corral/fileio.h"
#include "corral/id.h"
#include "corral/strutil.h"
#include "helpers.h"

Test(strutil, parse_u64_takes_whole_decimal_numbers_in_range)
{
	uint64_t v = 7;
	cr_assert_eq(cr_parse_u64("42", 1, 100, &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(cr_parse_u64("0", 0, 0, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(cr_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	v = 7;
	const char *bad[] = { "", "-1", "+1", " 1", "1 ", "0x10", "1e3", "12a" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cr_parse_u64(bad[i], 0, 100, &v), -EINVAL, "\"%s\"", bad[i]);
	cr_assert_eq(cr_parse_u64("101", 0, 100, &v), -ERANGE);
	cr_assert_eq(cr_parse_u64("0", 1, 100, &v), -ERANGE);
	cr_assert_eq(cr_parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	cr_assert_eq(v, 7, "nothing written on failure");
}

Test(buf, grows_keeps_bytes_and_stays_terminated)
{
	struct cr_buf b = { 0 };
	char chunk[100];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)('a' + i % 26);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(cr_buf_add(&b, chunk, sizeof(chunk)), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_geq(b.cap, b.len + 1);
	cr_assert_eq(b.p[b.len], '\0');
	cr_assert_eq(memcmp(b.p + 99900, chunk, sizeof(chunk)), 0);
	cr_assert_eq(cr_buf_add(&b, "\0x", 2), 0, "NUL bytes are bytes");
	cr_assert_eq(b.len, 100002);
	cr_buf_reset(&b);
	cr_assert_eq(b.len, 0);
	cr_assert_str_eq(b.p, "");
	cr_assert_eq(cr_buf_str(&b, "hello"), 0);
	cr_assert_str_eq(b.p, "hello");
	cr_assert_eq(cr_buf_add(&b, "", 0), 0);
	cr_assert_str_eq(b.p, "hello");
	cr_buf_free(&b);
	cr_assert_null(b.p);
	cr_assert_eq(b.len + b.cap, 0);
	cr_assert_eq(cr_buf_add(&b, "x", (size_t)-1), -ENOMEM, "a length that cannot fit");
	cr_assert_null(b.p);
}

Test(error, errno_message_names_object_and_cause)
{
	struct cr_error err;
	int r = cr_error_errno(&err, ENOENT, "open %s", "/x/y.seg");
	cr_assert_eq(r, -ENOENT);
	cr_assert_eq(err.code, ENOENT);
	cr_assert_str_eq(err.msg, "open /x/y.seg: No such file or directory");
}

Test(error, nonpositive_code_becomes_eio)
{
	struct cr_error err;
	cr_assert_eq(cr_error_set(&err, 0, "x"), -EIO);
	cr_assert_eq(err.code, EIO);
}

Test(error, null_error_is_allowed)
{
	cr_assert_eq(cr_error_set(NULL, EPERM, "x"), -EPERM);
	cr_assert_eq(cr_error_errno(NULL, EPERM, "x"), -EPERM);
}

Test(error, prefix_adds_context_and_keeps_the_start_when_long)
{
	struct cr_error err;
	cr_error_set(&err, EBUSY, "write 1 to cgroup.kill");
	cr_assert_eq(cr_error_prefix(&err, "destroy %s", "sbx"), -EBUSY);
	cr_assert_str_eq(err.msg, "destroy sbx: write 1 to cgroup.kill");

	char longctx[400];
	memset(longctx, 'a', sizeof(longctx) - 1);
	longctx[sizeof(longctx) - 1] = '\0';
	cr_error_prefix(&err, "%s", longctx);
	cr_assert_eq(strlen(err.msg), sizeof(err.msg) - 1);
	cr_assert_eq(err.msg[0], 'a');
}

Test(error, errno_names)
{
	cr_assert_str_eq(cr_errno_name(EPERM), "EPERM");
	cr_assert_str_eq(cr_errno_name(99999), "E?");
}

Test(fileio, read_whole_file_and_strip)
{
	char path[] = "/tmp/corral-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "hello\n\n", 7), 7);
	close(fd);

	_cleanup_free_ char *text = NULL;
	size_t len;
	struct cr_error err;
	cr_assert_eq(cr_read_file(path, 100, &text, &len, &err), 0, "%s", err.msg);
	cr_assert_eq(len, 7);
	cr_assert_str_eq(cr_strip(text), "hello");
	unlink(path);
}

Test(fileio, read_refuses_files_longer_than_the_bound)
{
	char path[] = "/tmp/corral-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	char buf[10000];
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);

	char *text = NULL;
	struct cr_error err;
	cr_assert_eq(cr_read_file(path, 9999, &text, NULL, &err), -EFBIG);
	cr_assert_null(text);
	cr_assert(strstr(err.msg, path));
	/* exactly at the bound is fine */
	cr_assert_eq(cr_read_file(path, 10000, &text, NULL, &err), 0);
	cr_assert_eq(strlen(text), 10000);
	free(text);
	unlink(path);
}

Test(fileio, missing_file_is_enoent_naming_the_path)
{
	char *text = NULL;
	struct cr_error err;
	cr_assert_eq(cr_read_file("/nonexistent/corral", 10, &text, NULL, &err), -ENOENT);
	cr_assert_str_eq(err.msg, "open /nonexistent/corral: No such file or directory");
}

Test(fileio, write_reports_the_kernels_refusal)
{
	struct cr_error err;
	/* /proc/self/oom_score_adj takes -1000..1000: the write itself is refused. */
	int r = cr_write_file("/proc/self/oom_score_adj", "5000", &err);
	cr_assert_eq(r, -EINVAL);
	cr_assert(strstr(err.msg, "write \"5000\" to /proc/self/oom_score_adj"), "%s", err.msg);
}

static void touch(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "create %s", p);
	close(fd);
}

Test(fileio, remove_tree_removes_everything_and_follows_no_link)
{
	_cleanup_free_ char *top = cr_test_tmpdir("rmtree");
	char tree[2048], outside[2048], p[4096];
	snprintf(tree, sizeof(tree), "%s/tree", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	cr_assert_eq(mkdir(tree, 0700), 0);
	cr_assert_eq(mkdir(outside, 0700), 0);
	touch(outside, "precious");
	snprintf(p, sizeof(p), "%s/a", tree);
	cr_assert_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/a/b", tree);
	cr_assert_eq(mkdir(p, 0000), 0); /* unreadable to others: root removes it all the same */
	touch(tree, "f");
	snprintf(p, sizeof(p), "%s/a/link-to-outside", tree);
	cr_assert_eq(symlink(outside, p), 0);
	snprintf(p, sizeof(p), "%s/link-to-root", tree);
	cr_assert_eq(symlink("/", p), 0);

	struct cr_error err;
	cr_assert_eq(cr_remove_tree(tree, &err), 0, "%s", err.msg);
	cr_assert_eq(access(tree, F_OK), -1, "the tree is still there");
	snprintf(p, sizeof(p), "%s/precious", outside);
	cr_assert_eq(access(p, F_OK), 0, "a link was followed: %s is gone", p);
	cr_assert_eq(cr_remove_tree(tree, &err), 0, "a missing tree is not an error");
	/* a link given as the top is removed, not followed */
	snprintf(p, sizeof(p), "%s/toplink", top);
	cr_assert_eq(symlink(outside, p), 0);
	cr_assert_eq(cr_remove_tree(p, &err), 0, "%s", err.msg);
	snprintf(p, sizeof(p), "%s/precious", outside);
	cr_assert_eq(access(p, F_OK), 0);
	cr_test_rmrf(top);
}

Test(strutil, word_in_matches_whole_words_in_space_and_comma_lists)
{
	cr_assert(cr_word_in("lockdown,capability,bpf", "bpf", 3));
	cr_assert(cr_word_in("cpuset cpu io\n", "cpu", 3));
	cr_assert_not(cr_word_in("cpuset io", "cpu", 3), "a prefix of a word is not the word");
	cr_assert_not(cr_word_in("bpf_foo,lockdown", "bpf", 3));
	cr_assert_not(cr_word_in("", "bpf", 3));
	cr_assert_not(cr_word_in("a,,b", "", 0), "empty words never match");
}

Test(id, valid_accepts_formatted_ids_only)
{
	uint8_t raw[CR_ID_RAW];
	char id[64];
	cr_assert_eq(cr_id_random(raw, NULL), 0);
	cr_assert_eq(cr_id_format("sbx_", raw, id, sizeof(id)), 0);
	cr_assert(cr_id_valid("sbx_", id));
	cr_assert_not(cr_id_valid("sbh_", id), "another prefix");
	id[10] = '/';
	cr_assert_not(cr_id_valid("sbx_", id), "a slash");
	cr_assert_not(cr_id_valid("sbx_", "sbx_abc"), "too short");
	cr_assert_not(cr_id_valid("sbx_", "sbx_../../../../../../../../../.."), "dots");
	cr_assert_not(cr_id_valid("sbx_", NULL));
}

Test(id, parse_inverts_format)
{
	for (int round = 0; round < 200; round++) {
		uint8_t raw[CR_ID_RAW], back[CR_ID_RAW];
		char id[64];
		cr_assert_eq(cr_id_random(raw, NULL), 0);
		if (round == 0)
			memset(raw, 0xff, sizeof(raw));
		if (round == 1)
			memset(raw, 0, sizeof(raw));
		cr_assert_eq(cr_id_format("sevt_", raw, id, sizeof(id)), 0);
		cr_assert_eq(cr_id_parse("sevt_", id, back), 0, "%s", id);
		cr_assert_eq(memcmp(raw, back, sizeof(raw)), 0, "%s", id);
	}
	uint8_t raw[CR_ID_RAW];
	char id[64];
	memset(raw, 0, sizeof(raw));
	cr_assert_eq(cr_id_format("sevt_", raw, id, sizeof(id)), 0);
	cr_assert_eq(cr_id_parse("sesn_", id, raw), -EINVAL, "another prefix");
	id[6] = 'u';
	cr_assert_eq(cr_id_parse("sevt_", id, raw), -EINVAL, "u is not a Crockford digit");
	id[6] = '0';
	id[strlen(id) - 1] = '1';
	cr_assert_eq(cr_id_parse("sevt_", id, raw), -EINVAL, "padding bits set");
	cr_assert_eq(cr_id_parse("sevt_", "sevt_abc", raw), -EINVAL, "too short");
	cr_assert_eq(cr_id_parse("sevt_", NULL, raw), -EINVAL);
}

static bool keep_txt_stem(const char *name, char *out, size_t size, void *arg)
{
	(void)arg;
	size_t n = strlen(name);
	if (n < 5 || strcmp(name + n - 4, ".txt") != 0 || n - 4 >= size)
		return false;
	memcpy(out, name, n - 4);
	out[n - 4] = '\0';
	return true;
}

Test(fileio, dir_list_keeps_renames_and_sorts)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("util");
	static const char *files[] = { "b.txt", "a.txt", "c.dat", "c.txt" };
	for (size_t i = 0; i < 4; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		cr_assert_geq(fd, 0);
		close(fd);
	}
	char **names;
	size_t n;
	struct cr_error err;
	cr_assert_eq(cr_dir_list(dir, keep_txt_stem, NULL, &names, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(names[0], "a");
	cr_assert_str_eq(names[1], "b");
	cr_assert_str_eq(names[2], "c");
	cr_assert_null(names[3]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	char missing[4200];
	snprintf(missing, sizeof(missing), "%s/none", dir);
	cr_assert_eq(cr_dir_list(missing, keep_txt_stem, NULL, &names, &n, &err), 0);
	cr_assert_eq(n, 0, "a missing directory is an empty list");
	free(names);
	cr_test_rmrf(dir);
}

Test(fileio, store_replaces_the_file_whole_with_its_mode_and_leaves_no_temporary)
{
	_cleanup_free_ char *dir = cr_test_tmpdir("store");
	_cleanup_free_ char *path = NULL, *tmp = NULL;
	cr_assert(asprintf(&path, "%s/rec.json", dir) > 0 && asprintf(&tmp, "%s.tmp", path) > 0);
	struct cr_error err;
	cr_assert_eq(cr_store_file(path, "first", 5, 0600, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_store_file(path, "second\n", 7, 0600, &err), 0, "%s", err.msg);
	char *got;
	size_t len;
	cr_assert_eq(cr_read_file(path, 64, &got, &len, &err), 0, "%s", err.msg);
	cr_assert_str_eq(got, "second\n");
	free(got);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_neq(stat(tmp, &st), 0, "no temporary left");
	/* a stale temporary (a crash's) is replaced, and a link there is never written through */
	_cleanup_free_ char *target = NULL;
	cr_assert(asprintf(&target, "%s/target", dir) > 0);
	cr_assert_eq(symlink(target, tmp), 0);
	cr_assert_eq(cr_store_file(path, "x", 1, 0600, &err), 0, "%s", err.msg);
	cr_assert_neq(lstat(target, &st), 0, "the link's target was not created");
	cr_assert_neq(lstat(tmp, &st), 0);
	_cleanup_free_ char *missing = NULL;
	cr_assert(asprintf(&missing, "%s/no/such/rec.json", dir) > 0);
	cr_assert_eq(cr_store_file(missing, "x", 1, 0600, &err), -ENOENT);
	cr_test_rmrf(dir);
}
