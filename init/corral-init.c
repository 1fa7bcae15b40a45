/* init/corral-init: PID 1 of a sandbox. Statically linked (libc and jansson): it runs inside
 * arbitrary root file systems. It must never leak an fd or a zombie.
 *
 *   corral-init [--] PROGRAM [ARG...]
 *   corral-init --serve FD
 *
 * The first form runs one program in a session of its own (no controlling terminal of the
 * host), forwards termination signals to that program's process group, reaps every orphan that
 * is reparented to it, and exits with the program's status. The second is the sandbox's tool
 * server (init/serve.c, docs/init-protocol.md) on the connected stream socket FD, until the
 * host closes it.
 *
 * When not PID 1 it makes itself a child subreaper, so orphans still come to it, and when the
 * program exits (or the connection closes) it kills and reaps whatever is left behind, as the
 * kernel does for a pid namespace whose PID 1 exits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "init/init-internal.h"

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

/* SIGKILLs every child of ours (from /proc: ppid == us). Returns how many it found. */
static int kill_children(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int found = 0;
	pid_t self = getpid();
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[sizeof(de->d_name) + 16], buf[512];
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid ...: comm may hold anything, so go by the last ')' */
		char *p = strrchr(buf, ')');
		int ppid;
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == self) {
			kill((pid_t)atoi(de->d_name), SIGKILL);
			found++;
		}
	}
	closedir(d);
	return found;
}

/* Killing a child hands its children to us (we are a subreaper or PID 1), so this repeats
 * until nothing is left to wait for. */
void cr_end_descendants(void)
{
	for (;;) {
		kill_children();
		pid_t pid = waitpid(-1, NULL, 0);
		if (pid < 0 && errno == ECHILD)
			return;
		if (pid < 0 && errno != EINTR)
			return;
	}
}

#define USAGE                                                                       \
	"usage: corral-init [--] PROGRAM [ARG...]\n       corral-init --serve FD\n" \
	"       corral-init --listen FD\n"

int main(int argc, char **argv)
{
	int first = 1;
	if (argc > 1 && (strcmp(argv[1], "--serve") == 0 || strcmp(argv[1], "--listen") == 0)) {
		char *end;
		errno = 0;
		long fd = argc == 3 ? strtol(argv[2], &end, 10) : -1;
		if (argc != 3 || errno || *end || end == argv[2] || fd < 0 || fd > INT32_MAX) {
			fprintf(stderr, "corral-init: %s needs one file descriptor number\n" USAGE,
				argv[1]);
			return 2;
		}
		return cr_init_serve((int)fd, strcmp(argv[1], "--listen") == 0);
	}
	if (argc > 1 && strcmp(argv[1], "--") == 0)
		first = 2;
	else if (argc > 1 && argv[1][0] == '-') {
		fprintf(stderr, "corral-init: unknown option \"%s\"\n" USAGE, argv[1]);
		return 2;
	}
	if (first >= argc) {
		fprintf(stderr, USAGE);
		return 2;
	}

	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "corral-init: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		return 1;
	}

	sigset_t all, old;
	sigfillset(&all);
	if (sigprocmask(SIG_BLOCK, &all, &old) < 0) {
		fprintf(stderr, "corral-init: sigprocmask: %s\n", strerror(errno));
		return 1;
	}

	/* Closed by the child's exec (or exit): until then the program's process group may not
	 * exist yet, and a signal forwarded to it would be lost. Signals stay blocked meanwhile,
	 * so one that arrives now is pending, not missed. */
	int started[2];
	if (pipe2(started, O_CLOEXEC) < 0) {
		fprintf(stderr, "corral-init: pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "corral-init: fork: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		close(started[0]);
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (setsid() < 0) {
			fprintf(stderr, "corral-init: setsid: %s\n", strerror(errno));
			_exit(127);
		}
		execvp(argv[first], argv + first);
		fprintf(stderr, "corral-init: exec %s: %s\n", argv[first], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	close(started[1]);
	char c;
	while (read(started[0], &c, 1) < 0 && errno == EINTR)
		;
	close(started[0]);

	int exit_code = -1;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "corral-init: sigwaitinfo: %s\n", strerror(errno));
			return 1;
		}
		if (sig != SIGCHLD) {
			for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
				if (sig == forwarded[i] && exit_code < 0)
					kill(-child, sig);
			continue;
		}
		/* One SIGCHLD may stand for many exits: reap until nothing is left to reap. */
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);
			if (pid <= 0)
				break;
			if (pid == child)
				exit_code = status_to_exit(status);
		}
		if (exit_code >= 0) {
			if (getpid() != 1) {
				kill(-child, SIGKILL);
				cr_end_descendants();
			}
			return exit_code;
		}
	}
}
