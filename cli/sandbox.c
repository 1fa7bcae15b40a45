/* cli/sandbox: corral sandbox create|exec|ls|pause|resume|destroy. Parses options and calls
 * runtime/sandbox and the corral-init client; no logic of its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "corral/cleanup.h"
#include "corral/hands.h"
#include "corral/initproto.h"
#include "corral/net.h"
#include "corral/sandbox.h"
#include "corral/strutil.h"
#include "corral/tool.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corral sandbox create [OPTIONS]\n"
		"       corral sandbox exec [OPTIONS] ID [--timeout MS] -- PROGRAM [ARG...]\n"
		"       corral sandbox tool [OPTIONS] ID NAME [INPUT]\n"
		"       corral sandbox ls [OPTIONS] [--json]\n"
		"       corral sandbox pause|resume [OPTIONS] ID\n"
		"       corral sandbox destroy [OPTIONS] [--keep-workspace] ID|HANDLE\n"
		"       corral sandbox handoff [OPTIONS] HANDLE SESSION\n"
		"\n"
		"Options of every verb:\n"
		"  --state-dir DIR   where sandboxes live (default %s)\n"
		"Options of create:\n"
		"  --init PATH       corral-init to run as PID 1 (default: beside this program,\n"
		"                    or ../libexec/corral/ from it)\n"
		"  --uid-base N      host uid of uid 0 inside (default %u; never 0)\n"
		"  --rootfs DIR      a root file system instead of the host's /usr, /bin, /lib*\n"
		"  --workspace DIR   an existing host directory as /workspace (kept on destroy)\n"
		"  --memory BYTES    memory.max (swap off)\n"
		"  --pids N          pids.max\n"
		"  --cpu PERCENT     cpu.max, percent of one CPU\n"
		"  --egress CIDR[:N] a veth pair with the N-th /30 of CIDR, or without N the\n"
		"                    lowest one no sandbox holds (docs/networking.md)\n"
		"  --hostname NAME   (default \"sandbox\")\n"
		"  --cgroup-parent DIR  cgroup2 group to create it under (default <cgroup2>/%s)\n"
		"  --session SESSION the sandbox of a session's hands (docs/sandbox.md, "
		"\"Hands\"):\n"
		"                    create prints the sandbox's id and then the hands' handle, a\n"
		"                    capability; handoff rebinds the hands to another session;\n"
		"                    destroy HANDLE removes sandbox, workspace and record\n"
		"create prints the new sandbox's id. exec runs PROGRAM in the sandbox through its\n"
		"PID 1, prints its output and exits with its status (128+N for signal N).\n"
		"tool runs tool NAME of the built-in toolset (bash, read, write, edit, glob, "
		"grep;\n"
		"docs/tools.md) with INPUT, a JSON object (default {}), prints the text the model\n"
		"would read and exits 0, or 1 when the tool call failed. \"tool --list\" prints\n"
		"the tools' definitions as JSON.\n",
		CONFIG_CORRAL_STATE_DIR, CR_SANDBOX_UID_BASE_DEFAULT, CONFIG_CORRAL_CGROUP_SUBTREE);
}

/* A decimal number in [min, max]; the whole string. */
static int parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	int r = cr_parse_u64(s, min, max, ret);
	if (r == -EINVAL)
		fprintf(stderr, "corral sandbox: %s \"%s\": not a number\n", what, s);
	else if (r < 0)
		fprintf(stderr, "corral sandbox: %s %s: not from %llu to %llu\n", what, s,
			(unsigned long long)min, (unsigned long long)max);
	return r < 0 ? -1 : 0;
}

char *cr_cli_beside_self(const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	char *p = NULL;
	if (asprintf(&p, "%s/%s", self, name) < 0)
		return NULL;
	return p;
}

char *cr_cli_default_init(void)
{
	char *p = cr_cli_beside_self("corral-init");
	if (!p || access(p, X_OK) == 0)
		return p;
	/* installed: bin/corral and libexec/corral/corral-init (make install) */
	char *installed = cr_cli_beside_self("../libexec/corral/corral-init");
	if (installed && access(installed, X_OK) == 0) {
		free(p);
		return installed;
	}
	free(installed);
	return p; /* (missing: the error will name the path beside this program) */
}

struct common {
	const char *state_dir;
};

enum {
	OPT_STATE = 1000,
	OPT_INIT,
	OPT_UID,
	OPT_ROOTFS,
	OPT_WS,
	OPT_MEM,
	OPT_PIDS,
	OPT_CPU,
	OPT_EGRESS,
	OPT_HOST,
	OPT_KEEP,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_CGROUP,
	OPT_SESSION,
	OPT_LIST
};

/* create --session: the sandbox of a session's hands, made at once; prints its id and the
 * hands' handle. */
static int create_hands(const struct cr_sandbox_config *cfg, const char *session)
{
	if (cfg->workspace) {
		fprintf(stderr, "corral sandbox create: --workspace and --session exclude each "
				"other (a session's hands keep their own workspace)\n");
		return CR_EXIT_USAGE;
	}
	struct cr_hands_config hc;
	cr_hands_config_init(&hc);
	hc.sandbox = *cfg;
	hc.eager = true;
	struct cr_hands *h;
	struct cr_error err;
	if (cr_hands_new(&hc, session, &h, &err) < 0) {
		fprintf(stderr, "corral sandbox create: %s\n", err.msg);
		return err.code == EINVAL ? CR_EXIT_USAGE : CR_EXIT_FAIL;
	}
	printf("%s\n%s\n", cr_sandbox_id(cr_hands_sandbox(h)), cr_hands_handle(h));
	cr_hands_free(h);
	return CR_EXIT_OK;
}

static int cmd_create(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "init", required_argument, NULL, OPT_INIT },
		{ "uid-base", required_argument, NULL, OPT_UID },
		{ "rootfs", required_argument, NULL, OPT_ROOTFS },
		{ "workspace", required_argument, NULL, OPT_WS },
		{ "memory", required_argument, NULL, OPT_MEM },
		{ "pids", required_argument, NULL, OPT_PIDS },
		{ "cpu", required_argument, NULL, OPT_CPU },
		{ "egress", required_argument, NULL, OPT_EGRESS },
		{ "hostname", required_argument, NULL, OPT_HOST },
		{ "cgroup-parent", required_argument, NULL, OPT_CGROUP },
		{ "session", required_argument, NULL, OPT_SESSION },
		{ 0 },
	};
	const char *session = NULL;
	struct cr_sandbox_config cfg;
	cr_sandbox_config_init(&cfg);
	cfg.uid_base = CR_SANDBOX_UID_BASE_DEFAULT;
	_cleanup_free_ char *init = NULL;
	struct cr_net_range range;
	struct cr_error err;
	uint64_t v;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case OPT_STATE:
			c->state_dir = optarg;
			break;
		case OPT_INIT:
			cfg.init_path = optarg;
			break;
		case OPT_UID:
			if (parse_u64("--uid-base", optarg, 1, UINT32_MAX - CR_SANDBOX_UIDS, &v) <
			    0)
				return CR_EXIT_USAGE;
			cfg.uid_base = (uint32_t)v;
			break;
		case OPT_ROOTFS:
			cfg.rootfs = optarg;
			break;
		case OPT_WS:
			cfg.workspace = optarg;
			break;
		case OPT_MEM:
			if (parse_u64("--memory", optarg, 1 << 20, UINT64_MAX, &cfg.memory_max) < 0)
				return CR_EXIT_USAGE;
			break;
		case OPT_PIDS:
			if (parse_u64("--pids", optarg, 1, 1u << 22, &cfg.pids_max) < 0)
				return CR_EXIT_USAGE;
			break;
		case OPT_CPU:
			if (parse_u64("--cpu", optarg, 1, 100000, &v) < 0)
				return CR_EXIT_USAGE;
			cfg.cpu_max_pct = (uint32_t)v;
			break;
		case OPT_EGRESS: {
			/* CIDR (the lowest free pair) or CIDR:INDEX */
			char *colon = strrchr(optarg, ':');
			if (colon)
				*colon = '\0';
			if (cr_net_range_parse(optarg, &range, &err) < 0) {
				fprintf(stderr, "corral sandbox: --egress: %s\n", err.msg);
				return CR_EXIT_USAGE;
			}
			v = CR_SANDBOX_EGRESS_AUTO;
			if (colon &&
			    parse_u64("--egress index", colon + 1, 0, UINT32_MAX - 1, &v) < 0)
				return CR_EXIT_USAGE;
			cfg.egress_range = &range;
			cfg.egress_index = (uint32_t)v;
			break;
		}
		case OPT_HOST:
			cfg.hostname = optarg;
			break;
		case OPT_CGROUP:
			cfg.cgroup_parent = optarg;
			break;
		case OPT_SESSION:
			session = optarg;
			break;
		default:
			usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "corral sandbox create: unexpected argument \"%s\"\n",
			argv[optind]);
		return CR_EXIT_USAGE;
	}
	if (!cfg.init_path) {
		init = cr_cli_default_init();
		cfg.init_path = init;
	}
	cfg.state_dir = c->state_dir;
	if (session)
		return create_hands(&cfg, session);
	struct cr_sandbox *sb;
	bool limits;
	if (cr_sandbox_create(&cfg, &sb, &limits, &err) < 0) {
		fprintf(stderr, "corral sandbox create: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	if ((cfg.memory_max || cfg.pids_max || cfg.cpu_max_pct) && !limits)
		fprintf(stderr, "corral sandbox create: limits unavailable on this host (cgroup "
				"controllers cannot be enabled); running without them\n");
	printf("%s\n", cr_sandbox_id(sb));
	cr_sandbox_free(sb);
	return CR_EXIT_OK;
}

static int open_id(struct common *c, int argc, char **argv, struct cr_sandbox **ret)
{
	if (optind >= argc) {
		fprintf(stderr, "corral sandbox: which sandbox? (an id, see corral sandbox ls)\n");
		return CR_EXIT_USAGE;
	}
	struct cr_error err;
	if (cr_sandbox_open(c->state_dir, argv[optind], ret, &err) < 0) {
		fprintf(stderr, "corral sandbox: %s\n", err.msg);
		return err.code == EINVAL ? CR_EXIT_USAGE : CR_EXIT_FAIL;
	}
	optind++;
	return CR_EXIT_OK;
}

/* The number of a signal named like "SIGKILL" (as corral-init reports it); SIGKILL when it
 * is not one. */
static int signal_number(const char *name)
{
	for (int n = 1; name && strncmp(name, "SIG", 3) == 0 && n < NSIG; n++) {
		const char *abbrev = sigabbrev_np(n);
		if (abbrev && strcmp(abbrev, name + 3) == 0)
			return n;
	}
	return SIGKILL;
}

static int cmd_exec(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ 0 },
	};
	uint64_t timeout_ms = 120000;
	int o;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (o == OPT_STATE)
			c->state_dir = optarg;
		else if (o == OPT_TIMEOUT) {
			if (parse_u64("--timeout", optarg, 1, 24 * 3600 * 1000ull, &timeout_ms) < 0)
				return CR_EXIT_USAGE;
		} else {
			usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	struct cr_sandbox *sbp;
	int rc = open_id(c, argc, argv, &sbp);
	if (rc != CR_EXIT_OK)
		return rc;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc) {
		fprintf(stderr, "corral sandbox exec: no program (-- PROGRAM [ARG...])\n");
		return CR_EXIT_USAGE;
	}
	json_t *args = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(args, json_string(argv[i]));
	char id[64];
	snprintf(id, sizeof(id), "cli-%d-%ld", (int)getpid(), (long)time(NULL));
	json_t *req = json_pack("{s:s, s:s, s:o, s:I}", "id", id, "op", "exec", "argv", args,
				"timeout_ms", (json_int_t)timeout_ms);
	struct cr_error err;
	int fd = cr_sandbox_connect(sb, &err);
	if (fd < 0 || !req) {
		json_decref(req);
		fprintf(stderr, "corral sandbox exec: %s\n", fd < 0 ? err.msg : "no memory");
		return CR_EXIT_FAIL;
	}
	json_t *resp = NULL;
	int r = cr_init_call(fd, req, (int)timeout_ms + 10000, &resp, &err);
	close(fd);
	json_decref(req);
	if (r < 0) {
		enum cr_sandbox_state st;
		struct cr_error e2;
		if (r == -ETIMEDOUT && cr_sandbox_state(sb, &st, &e2) == 0 &&
		    st == CR_SANDBOX_PAUSED)
			fprintf(stderr,
				"corral sandbox exec: sandbox %s is paused: no answer within "
				"the timeout (corral sandbox resume %s)\n",
				cr_sandbox_id(sb), cr_sandbox_id(sb));
		else
			fprintf(stderr, "corral sandbox exec: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "corral sandbox exec: %s\n",
			json_string_value(json_object_get(resp, "error")) ?: "failed");
		json_decref(resp);
		return CR_EXIT_FAIL;
	}
	const char *out = json_string_value(json_object_get(resp, "stdout"));
	const char *errs = json_string_value(json_object_get(resp, "stderr"));
	if (out)
		fputs(out, stdout);
	if (errs)
		fputs(errs, stderr);
	int status = 1;
	json_t *code = json_object_get(resp, "exit_code");
	if (json_is_integer(code))
		status = (int)json_integer_value(code);
	else if (json_is_true(json_object_get(resp, "timed_out")))
		status = 124;
	else
		status = 128 + signal_number(json_string_value(json_object_get(resp, "signal")));
	json_decref(resp);
	return status;
}

/* The flags of the verbs that take nothing but flags and operands. */
enum {
	FLAG_JSON = 1,
	FLAG_KEEP = 2,
	FLAG_LIST = 4
};

/* Parses --state-dir and the flags in allowed (FLAG_*) into *ret; with stop_at_operand,
 * options after the first operand are left alone (they belong to it). Prints the usage and
 * returns CR_EXIT_USAGE for anything else. */
static int parse_flags(int argc, char **argv, struct common *c, unsigned allowed,
		       bool stop_at_operand, unsigned *ret)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "keep-workspace", no_argument, NULL, OPT_KEEP },
		{ "list", no_argument, NULL, OPT_LIST },
		{ 0 },
	};
	*ret = 0;
	int o;
	while ((o = getopt_long(argc, argv, stop_at_operand ? "+" : "", opts, NULL)) != -1) {
		unsigned flag = o == OPT_JSON	? FLAG_JSON
				: o == OPT_KEEP ? FLAG_KEEP
				: o == OPT_LIST ? FLAG_LIST
						: 0;
		if (o == OPT_STATE) {
			c->state_dir = optarg;
		} else if (flag && (allowed & flag)) {
			*ret |= flag;
		} else {
			usage(stderr);
			return CR_EXIT_USAGE;
		}
	}
	return CR_EXIT_OK;
}

static int cmd_ls(int argc, char **argv, struct common *c)
{
	unsigned flags;
	int rc = parse_flags(argc, argv, c, FLAG_JSON, false, &flags);
	if (rc != CR_EXIT_OK)
		return rc;
	bool json = flags & FLAG_JSON;
	char **ids;
	size_t n;
	struct cr_error err;
	if (cr_sandbox_list(c->state_dir, &ids, &n, &err) < 0) {
		fprintf(stderr, "corral sandbox ls: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	/* the session each sandbox serves, for those that hands made */
	struct cr_hands_binding *bound = NULL;
	size_t nb = 0;
	if (cr_hands_bindings(c->state_dir, &bound, &nb, &err) < 0) {
		fprintf(stderr, "corral sandbox ls: %s\n", err.msg);
		bound = NULL;
		nb = 0;
	}
	json_t *arr = json_array();
	if (!json)
		printf("%-32s %-8s %8s  %-15s  %s\n", "ID", "STATE", "PID", "ADDRESS", "SESSION");
	for (size_t i = 0; i < n; i++) {
		struct cr_sandbox *sb;
		const char *state = "unknown";
		char addr[32] = "-";
		long pid = 0;
		if (cr_sandbox_open(c->state_dir, ids[i], &sb, &err) == 0) {
			enum cr_sandbox_state st;
			if (cr_sandbox_state(sb, &st, &err) == 0)
				state = cr_sandbox_state_name(st);
			pid = cr_sandbox_pid(sb);
			const struct cr_veth *v = cr_sandbox_veth(sb);
			if (v)
				inet_ntop(AF_INET, &v->sandbox_addr, addr, sizeof(addr));
			cr_sandbox_free(sb);
		}
		const char *session = NULL;
		for (size_t j = 0; j < nb && !session; j++)
			if (strcmp(bound[j].sandbox, ids[i]) == 0)
				session = bound[j].session;
		if (json)
			json_array_append_new(
				arr, json_pack("{s:s, s:s, s:I, s:s?, s:s?}", "id", ids[i], "state",
					       state, "pid", (json_int_t)pid, "address",
					       addr[0] == '-' ? NULL : addr, "session", session));
		else
			printf("%-32s %-8s %8ld  %-15s  %s\n", ids[i], state, pid, addr,
			       session ? session : "-");
		free(ids[i]);
	}
	free(ids);
	free(bound);
	if (json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
	}
	json_decref(arr);
	return CR_EXIT_OK;
}

/* handoff HANDLE SESSION, and destroy HANDLE: the hands found again by their handle. */
static int open_hands(struct common *c, const char *handle, struct cr_hands **ret)
{
	struct cr_hands_config hc;
	cr_hands_config_init(&hc);
	hc.sandbox.state_dir = c->state_dir;
	_cleanup_free_ char *init = cr_cli_default_init();
	hc.sandbox.init_path = init; /* (not used to open; required by the config) */
	struct cr_error err;
	if (cr_hands_open(&hc, handle, ret, &err) < 0) {
		fprintf(stderr, "corral sandbox: %s\n", err.msg);
		return err.code == EINVAL ? CR_EXIT_USAGE : CR_EXIT_FAIL;
	}
	return CR_EXIT_OK;
}

static int cmd_simple(int argc, char **argv, struct common *c, const char *verb)
{
	unsigned flags;
	int rc = parse_flags(argc, argv, c, strcmp(verb, "destroy") == 0 ? FLAG_KEEP : 0, false,
			     &flags);
	if (rc != CR_EXIT_OK)
		return rc;
	bool keep = flags & FLAG_KEEP;
	if (strcmp(verb, "destroy") == 0 && optind + 1 == argc &&
	    strncmp(argv[optind], "sbh_", 4) == 0) {
		/* a session's hands: the sandbox, the record and (unless kept) the workspace */
		struct cr_hands *h;
		rc = open_hands(c, argv[optind], &h);
		if (rc != CR_EXIT_OK)
			return rc;
		struct cr_error err;
		int r = cr_hands_destroy(h, keep, &err);
		cr_hands_free(h);
		if (r < 0) {
			fprintf(stderr, "corral sandbox destroy: %s\n", err.msg);
			return CR_EXIT_FAIL;
		}
		return CR_EXIT_OK;
	}
	struct cr_sandbox *sbp;
	rc = open_id(c, argc, argv, &sbp);
	if (rc != CR_EXIT_OK)
		return rc;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	if (optind != argc) {
		fprintf(stderr, "corral sandbox %s: unexpected argument \"%s\"\n", verb,
			argv[optind]);
		return CR_EXIT_USAGE;
	}
	struct cr_error err;
	int r = strcmp(verb, "pause") == 0    ? cr_sandbox_pause(sb, &err)
		: strcmp(verb, "resume") == 0 ? cr_sandbox_resume(sb, &err)
					      : cr_sandbox_destroy(sb, keep, &err);
	if (r < 0) {
		fprintf(stderr, "corral sandbox %s: %s\n", verb, err.msg);
		return CR_EXIT_FAIL;
	}
	return CR_EXIT_OK;
}

static int cmd_handoff(int argc, char **argv, struct common *c)
{
	unsigned flags;
	int rc = parse_flags(argc, argv, c, 0, false, &flags);
	if (rc != CR_EXIT_OK)
		return rc;
	if (argc - optind != 2) {
		fprintf(stderr, "corral sandbox handoff: want HANDLE SESSION\n");
		return CR_EXIT_USAGE;
	}
	struct cr_hands *h;
	rc = open_hands(c, argv[optind], &h);
	if (rc != CR_EXIT_OK)
		return rc;
	struct cr_error err;
	const char *from = cr_hands_session(h);
	_cleanup_free_ char *was = strdup(from);
	int r = cr_hands_handoff(h, argv[optind], argv[optind + 1], 0, &err);
	if (r < 0) {
		fprintf(stderr, "corral sandbox handoff: %s\n", err.msg);
		cr_hands_free(h);
		return r == -EINVAL ? CR_EXIT_USAGE : CR_EXIT_FAIL;
	}
	struct cr_sandbox *sb = cr_hands_sandbox(h);
	printf("%s: from session %s to session %s\n", sb ? cr_sandbox_id(sb) : "(no sandbox)",
	       was ? was : "?", cr_hands_session(h));
	cr_hands_free(h);
	return CR_EXIT_OK;
}

static int cmd_tool(int argc, char **argv, struct common *c)
{
	unsigned flags;
	int rc = parse_flags(argc, argv, c, FLAG_LIST, true, &flags);
	if (rc != CR_EXIT_OK)
		return rc;
	if (flags & FLAG_LIST) {
		json_t *defs = cr_toolset_definitions();
		if (!defs || json_dumpf(defs, stdout, JSON_INDENT(2)) < 0) {
			json_decref(defs);
			fprintf(stderr, "corral sandbox tool: no memory\n");
			return CR_EXIT_FAIL;
		}
		json_decref(defs);
		putchar('\n');
		return CR_EXIT_OK;
	}
	struct cr_sandbox *sbp;
	rc = open_id(c, argc, argv, &sbp);
	if (rc != CR_EXIT_OK)
		return rc;
	_cleanup_(cr_sandbox_freep) struct cr_sandbox *sb = sbp;
	if (optind >= argc) {
		fprintf(stderr, "corral sandbox tool: no tool name (bash, read, write, edit, glob, "
				"grep)\n");
		return CR_EXIT_USAGE;
	}
	const char *name = argv[optind++];
	const char *input = optind < argc ? argv[optind++] : "{}";
	if (optind < argc) {
		fprintf(stderr, "corral sandbox tool: one INPUT (a JSON object) after the name\n");
		return CR_EXIT_USAGE;
	}
	struct cr_error err;
	_cleanup_close_ int fd = cr_sandbox_connect(sb, &err);
	if (fd < 0) {
		fprintf(stderr, "corral sandbox tool: %s\n", err.msg);
		return CR_EXIT_FAIL;
	}
	struct cr_tool_result res;
	int r = cr_tool_execute(fd, NULL, name, input, strlen(input), &res, &err);
	if (r < 0) {
		fprintf(stderr, "corral sandbox tool: sandbox %s did not answer: %s\n",
			cr_sandbox_id(sb), err.msg);
		return CR_EXIT_FAIL;
	}
	fputs(res.content, res.is_error ? stderr : stdout);
	if (*res.content && res.content[strlen(res.content) - 1] != '\n')
		fputc('\n', res.is_error ? stderr : stdout);
	bool failed = res.is_error;
	cr_tool_result_clear(&res);
	return failed ? CR_EXIT_FAIL : CR_EXIT_OK;
}

int cr_cli_sandbox(int argc, char **argv)
{
	struct common c = { .state_dir = CONFIG_CORRAL_STATE_DIR };
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CR_EXIT_USAGE : CR_EXIT_OK;
	}
	const char *verb = argv[1];
	argc--;
	argv++;
	optind = 1;
	if (strcmp(verb, "create") == 0)
		return cmd_create(argc, argv, &c);
	if (strcmp(verb, "exec") == 0)
		return cmd_exec(argc, argv, &c);
	if (strcmp(verb, "ls") == 0)
		return cmd_ls(argc, argv, &c);
	if (strcmp(verb, "tool") == 0)
		return cmd_tool(argc, argv, &c);
	if (strcmp(verb, "handoff") == 0)
		return cmd_handoff(argc, argv, &c);
	if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 ||
	    strcmp(verb, "destroy") == 0)
		return cmd_simple(argc, argv, &c, verb);
	fprintf(stderr, "corral sandbox: unknown verb \"%s\" (corral sandbox help)\n", verb);
	return CR_EXIT_USAGE;
}
