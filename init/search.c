/* init/search: the glob and grep ops (run in a worker process, init/proc.c). Patterns are
 * shell-like: "*", "?" and "[...]" within one path segment (fnmatch), "{a,b}" alternatives
 * (expanded first) and "**" as a whole segment for any number of directories. Wildcards do not
 * match a leading dot, and "**" does not enter hidden directories: a name that begins with a
 * dot is found when the pattern spells the dot. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "init/init-internal.h"

#define MAX_PATTERNS 256 /* alternatives one pattern may expand to */
#define GLOB_LIMIT 1000 /* matches returned */
#define GLOB_SCAN_LIMIT 100000 /* matches collected before the walk stops */
#define DEFAULT_GREP_MATCHES 1000
#define MAX_GREP_MATCHES 100000
#define GREP_LINE_MAX 1000 /* bytes of a matching line returned */

struct strv {
	char **v;
	size_t n, cap;
};

static void strv_add(struct strv *s, char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = cr_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = str;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){ 0 };
}

/* Appends every expansion of the {a,b} groups of pat to out. */
static int expand_braces(const char *pat, struct strv *out, struct cr_error *err)
{
	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == '\\' && pat[i + 1]) {
			i++;
			continue;
		}
		if (pat[i] != '{')
			continue;
		/* The matching '}' and the commas at this group's own depth. */
		size_t commas[MAX_PATTERNS], nc = 0, j;
		int depth = 0;
		for (j = i + 1; pat[j]; j++) {
			if (pat[j] == '\\' && pat[j + 1])
				j++;
			else if (pat[j] == '{')
				depth++;
			else if (pat[j] == '}' && depth-- == 0)
				break;
			else if (pat[j] == ',' && depth == 0) {
				if (nc == MAX_PATTERNS)
					return cr_error_set(err, E2BIG,
							    "pattern has more than %d alternatives",
							    MAX_PATTERNS);
				commas[nc++] = j;
			}
		}
		if (!pat[j] || nc == 0)
			continue; /* "{" without "}" or without ",": literal */
		size_t from = i + 1;
		for (size_t k = 0; k <= nc; k++) {
			size_t to = k < nc ? commas[k] : j;
			char *alt;
			if (asprintf(&alt, "%.*s%.*s%s", (int)i, pat, (int)(to - from), pat + from,
				     pat + j + 1) < 0)
				return cr_error_errno(err, ENOMEM, "pattern");
			int r = expand_braces(alt, out, err);
			free(alt);
			if (r < 0)
				return r;
			from = to + 1;
		}
		return 0;
	}
	if (out->n >= MAX_PATTERNS)
		return cr_error_set(err, E2BIG, "pattern expands to more than %d alternatives",
				    MAX_PATTERNS);
	strv_add(out, cr_xstrdup(pat));
	return 0;
}

/* Splits a pattern (or path) at '/' into its non-empty segments (pointing into s). */
static size_t split(char *s, char **segs, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, "/"); tok && n < max; tok = strtok(NULL, "/"))
		segs[n++] = tok;
	return n;
}

static bool has_magic(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

/* Whether the path segments name[0..nn) match the pattern segments pat[0..np). */
static bool match_segs(char **pat, size_t np, char **name, size_t nn)
{
	if (np == 0)
		return nn == 0;
	if (strcmp(pat[0], "**") == 0) {
		for (size_t k = 0; k <= nn; k++) {
			if (k > 0 && name[k - 1][0] == '.')
				return false; /* "**" does not go through hidden directories */
			if (match_segs(pat + 1, np - 1, name + k, nn - k))
				return true;
		}
		return false;
	}
	return nn > 0 && fnmatch(pat[0], name[0], FNM_PERIOD) == 0 &&
	       match_segs(pat + 1, np - 1, name + 1, nn - 1);
}

static char *join(const char *dir, const char *name)
{
	char *p;
	size_t dl = strlen(dir);
	if (asprintf(&p, "%s%s%s", dir, dl && dir[dl - 1] != '/' ? "/" : "", name) < 0)
		abort();
	return p;
}

/* --- glob --------------------------------------------------------------------------------- */

struct found {
	char *path;
	struct timespec mtime;
};

struct glob_walk {
	char **segs;
	size_t nseg;
	struct found *found;
	size_t n, cap;
	bool full; /* GLOB_SCAN_LIMIT reached */
};

static void glob_add(struct glob_walk *g, char *path, const struct stat *st)
{
	if (g->n == GLOB_SCAN_LIMIT) {
		g->full = true;
		free(path);
		return;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->found = cr_xrealloc(g->found, g->cap * sizeof(*g->found));
	}
	g->found[g->n++] = (struct found){ .path = path, .mtime = st->st_mtim };
}

/* Type of dir/name, following a symlink: 'd' directory, 'f' anything else, 0 gone. */
static char entry_type(const char *path, struct stat *st)
{
	if (stat(path, st) < 0 && lstat(path, st) < 0)
		return 0;
	return S_ISDIR(st->st_mode) ? 'd' : 'f';
}

/* Matches segs[i..] below the directory dir. */
static void glob_dir(struct glob_walk *g, const char *dir, size_t i)
{
	if (g->full)
		return;
	const char *seg = g->segs[i];
	bool last = i + 1 == g->nseg;
	struct stat st;
	if (strcmp(seg, "**") == 0) {
		/* Zero directories, then one more for each subdirectory. */
		if (!last)
			glob_dir(g, dir, i + 1);
	} else if (!has_magic(seg)) {
		char *path = join(dir, seg);
		char t = entry_type(path, &st);
		if (t == 'f' && last)
			glob_add(g, path, &st);
		else if (t == 'd' && !last)
			glob_dir(g, path, i + 1);
		if (!(t == 'f' && last))
			free(path);
		return;
	}
	_cleanup_closedir_ DIR *d = opendir(*dir ? dir : ".");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && !g->full) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *path = join(dir, de->d_name);
		if (strcmp(seg, "**") == 0) {
			/* "**" at the end matches every file below; it never follows a symlinked
			 * directory (no loops) nor enters a hidden one. */
			bool hidden = de->d_name[0] == '.';
			if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
				if (!hidden)
					glob_dir(g, path, i);
			} else if (last && !hidden && entry_type(path, &st) == 'f') {
				glob_add(g, path, &st);
				continue;
			}
			free(path);
			continue;
		}
		if (fnmatch(seg, de->d_name, FNM_PERIOD) != 0) {
			free(path);
			continue;
		}
		char t = entry_type(path, &st);
		if (t == 'f' && last) {
			glob_add(g, path, &st);
			continue;
		}
		if (t == 'd' && !last)
			glob_dir(g, path, i + 1);
		free(path);
	}
}

static int by_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->path, y->path);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->path, ((const struct found *)b)->path);
}

int cr_op_glob(json_t *req, json_t *resp, struct cr_error *err)
{
	const char *pattern = NULL, *base = NULL;
	int r;
	if ((r = cr_req_string(req, "pattern", true, &pattern, err)) < 0 ||
	    (r = cr_req_string(req, "path", false, &base, err)) < 0)
		return r;
	if (!*pattern)
		return cr_error_set(err, EINVAL, "pattern is empty");
	if (base) {
		struct stat st;
		if (stat(base, &st) < 0)
			return cr_error_errno(err, errno, "%s", base);
		if (!S_ISDIR(st.st_mode))
			return cr_error_set(err, ENOTDIR, "%s is not a directory", base);
	}
	struct strv pats = { 0 };
	if ((r = expand_braces(pattern, &pats, err)) < 0) {
		strv_free(&pats);
		return r;
	}
	struct glob_walk g = { 0 };
	for (size_t p = 0; p < pats.n && !g.full; p++) {
		/* An absolute pattern ignores the base; results are named as the walk went. */
		const char *start = pats.v[p][0] == '/' ? "/" : base ? base : "";
		char *segs[PATH_MAX / 2];
		g.segs = segs;
		g.nseg = split(pats.v[p], segs, CR_ARRAY_SIZE(segs));
		if (g.nseg > 0)
			glob_dir(&g, start, 0);
	}
	strv_free(&pats);

	/* The same file can be reached twice ({a,a}, "**" twice): once is enough. */
	if (g.n > 1) /* (qsort of nothing may not be given the NULL array) */
		qsort(g.found, g.n, sizeof(*g.found), by_path);
	size_t n = 0;
	for (size_t i = 0; i < g.n; i++) {
		if (n > 0 && strcmp(g.found[n - 1].path, g.found[i].path) == 0) {
			free(g.found[i].path);
			continue;
		}
		g.found[n++] = g.found[i];
	}
	if (n > 1)
		qsort(g.found, n, sizeof(*g.found), by_mtime);
	json_t *matches = json_array();
	for (size_t i = 0; i < n; i++) {
		if (i < GLOB_LIMIT)
			json_array_append_new(
				matches, cr_text_json(g.found[i].path, strlen(g.found[i].path)));
		free(g.found[i].path);
	}
	free(g.found);
	json_object_set_new(resp, "matches", matches);
	json_object_set_new(resp, "count", json_integer((json_int_t)n));
	json_object_set_new(resp, "truncated", json_boolean(n > GLOB_LIMIT || g.full));
	return 0;
}

/* --- grep --------------------------------------------------------------------------------- */

struct grep_walk {
	regex_t re;
	char **filter[MAX_PATTERNS]; /* the file-name filter's alternatives, as segments */
	size_t filter_n[MAX_PATTERNS], nfilter;
	bool filter_path; /* the filter has a '/': it matches the path below the root */
	json_t *matches;
	int64_t max;
	bool truncated;
};

static bool filter_ok(struct grep_walk *g, const char *rel)
{
	if (g->nfilter == 0)
		return true;
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", rel);
	char *names[PATH_MAX / 2];
	size_t nn = split(copy, names, CR_ARRAY_SIZE(names));
	if (nn == 0)
		return false;
	for (size_t i = 0; i < g->nfilter; i++) {
		if (g->filter_path ? match_segs(g->filter[i], g->filter_n[i], names, nn)
				   : fnmatch(g->filter[i][0], names[nn - 1], FNM_PERIOD) == 0)
			return true;
	}
	return false;
}

static void grep_file(struct grep_walk *g, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return;
	struct stat st;
	char probe[8192];
	ssize_t pn;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (pn = pread(fd, probe, sizeof(probe), 0)) < 0 || cr_looks_binary(probe, (size_t)pn)) {
		close(fd);
		return;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	for (int64_t no = 1; (n = getline(&line, &cap, f)) > 0; no++) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (regexec(&g->re, line, 0, NULL, 0) != 0)
			continue;
		if ((int64_t)json_array_size(g->matches) == g->max) {
			g->truncated = true;
			break;
		}
		size_t keep =
			(size_t)n > GREP_LINE_MAX ? cr_utf8_trim(line, GREP_LINE_MAX) : (size_t)n;
		json_t *m = json_object();
		json_object_set_new(m, "path", cr_text_json(path, strlen(path)));
		json_object_set_new(m, "line", json_integer(no));
		json_object_set_new(m, "text", cr_text_json(line, keep));
		json_array_append_new(g->matches, m);
	}
	free(line);
	fclose(f);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Searches the files below dir (named path for the results, rel below the root), in name
 * order; never into .git, never through a symlinked directory. */
static void grep_dir(struct grep_walk *g, const char *path, const char *rel)
{
	_cleanup_closedir_ DIR *d = opendir(*path ? path : ".");
	if (!d)
		return;
	struct strv names = { 0 };
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, ".git"))
			strv_add(&names, cr_xstrdup(de->d_name));
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(*names.v), by_name);
	for (size_t i = 0; i < names.n && !g->truncated; i++) {
		_cleanup_free_ char *p = join(path, names.v[i]);
		_cleanup_free_ char *r = join(rel, names.v[i]);
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			grep_dir(g, p, r);
		else if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && filter_ok(g, r))
			grep_file(g, p);
	}
	strv_free(&names);
}

int cr_op_grep(json_t *req, json_t *resp, struct cr_error *err)
{
	const char *pattern = NULL, *path = NULL, *filter = NULL;
	bool icase = false;
	int64_t max = DEFAULT_GREP_MATCHES;
	int r;
	if ((r = cr_req_string(req, "pattern", true, &pattern, err)) < 0 ||
	    (r = cr_req_string(req, "path", false, &path, err)) < 0 ||
	    (r = cr_req_string(req, "glob", false, &filter, err)) < 0 ||
	    (r = cr_req_bool(req, "ignore_case", &icase, err)) < 0 ||
	    (r = cr_req_int(req, "max_matches", 1, MAX_GREP_MATCHES, &max, err)) < 0)
		return r;
	struct grep_walk g = { .max = max };
	int rc = regcomp(&g.re, pattern, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	if (rc != 0) {
		char msg[128];
		regerror(rc, &g.re, msg, sizeof(msg));
		return cr_error_set(err, EINVAL, "invalid regular expression \"%s\": %s", pattern,
				    msg);
	}
	struct strv pats = { 0 };
	if (filter && !*filter)
		filter = NULL;
	if (filter && (r = expand_braces(filter, &pats, err)) < 0)
		goto out;
	g.filter_path = filter && strchr(filter, '/');
	for (size_t i = 0; i < pats.n; i++) {
		size_t max_segs = strlen(pats.v[i]) / 2 + 1;
		g.filter[i] = cr_xmalloc(max_segs * sizeof(char *));
		g.filter_n[i] = split(pats.v[i], g.filter[i], max_segs);
		if (g.filter_n[i] == 0)
			g.filter[i][g.filter_n[i]++] = pats.v[i]; /* "/": matches nothing */
		g.nfilter++;
	}
	struct stat st;
	const char *root = path ? path : "";
	if (stat(*root ? root : ".", &st) < 0) {
		r = cr_error_errno(err, errno, "%s", root);
		goto out;
	}
	g.matches = json_array();
	if (S_ISDIR(st.st_mode))
		grep_dir(&g, root, "");
	else
		grep_file(&g, root);
	json_object_set_new(resp, "matches", g.matches);
	json_object_set_new(resp, "truncated", json_boolean(g.truncated));
	r = 0;
out:
	for (size_t i = 0; i < g.nfilter; i++)
		free(g.filter[i]);
	strv_free(&pats);
	regfree(&g.re);
	return r;
}
