/* cli: the corral command's verbs. One file per verb group; each parses its own options and
 * calls the library. Exit statuses: 0 success, 1 the operation failed or found a problem,
 * 2 usage error. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#define CR_EXIT_OK 0
#define CR_EXIT_FAIL 1
#define CR_EXIT_USAGE 2

int cr_cli_doctor(int argc, char **argv);
int cr_cli_bench(int argc, char **argv);
int cr_cli_sandbox(int argc, char **argv);

/* The default corral-init: beside this program (build/), else ../libexec/corral/ from it (where
 * "make install" puts it). A new string owned by the caller, or NULL when /proc/self/exe cannot
 * be read. */
char *cr_cli_default_init(void);

/* dir/name, where dir is this program's directory: a new string owned by the caller, or NULL
 * when /proc/self/exe cannot be read (or without memory). */
char *cr_cli_beside_self(const char *name);

#endif
