/* cli/main: the corral command: a table of verbs, nothing else. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "corral/cleanup.h"

#define CORRAL_VERSION "0.1.0"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} verbs[] = {
	{ "doctor", cr_cli_doctor, "report which kernel enforcement layers work here" },
	{ "sandbox", cr_cli_sandbox, "create, run in, pause and destroy sandboxes" },
	{ "bench", cr_cli_bench,
	  "measure corral against its baselines (corral bench log|sandbox)" },
	{ "worker", cr_cli_worker, "drive sessions for corrald (corrald starts these)" },
	{ "run", cr_cli_run, "run a task in an agent session and print what the agent does" },
	{ "agents", cr_cli_agents, "create, list, retrieve, update and archive agents" },
	{ "environments", cr_cli_environments,
	  "create, list, retrieve, update, archive and delete environments" },
	{ "sessions", cr_cli_sessions,
	  "create, list, retrieve, update, archive and delete sessions" },
	{ "sessions:events", cr_cli_session_events, "send, list and stream a session's events" },
	{ "version", cmd_version, "print corral's version" },
	{ "help", cmd_help, "show this help" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: corral VERB [OPTIONS]\n\nverbs:\n");
	for (size_t i = 0; i < CR_ARRAY_SIZE(verbs); i++)
		fprintf(f, "  %-16s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f,
		"\nrun, agents, environments, sessions and sessions:events talk to corrald\n"
		"(docs/cli.md). vault and oci are not built yet; see README.md's status table.\n");
}

static int cmd_version(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "corral version: takes no arguments\n");
		return CR_EXIT_USAGE;
	}
	printf("corral %s\n", CORRAL_VERSION);
	return CR_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return CR_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CR_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv + 1);
	for (size_t i = 0; i < CR_ARRAY_SIZE(verbs); i++)
		if (strcmp(argv[1], verbs[i].name) == 0)
			return verbs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "corral: unknown verb \"%s\" (corral help lists them)\n", argv[1]);
	return CR_EXIT_USAGE;
}
