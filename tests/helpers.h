/* tests/helpers: shared by the unit tests. Kernel-feature tests call cr_test_need(): on the
 * host a missing feature skips the test with the printed reason; in the VM (CORRAL_VM=1) the
 * kernel must have it, so a missing feature fails the test instead. */
#ifndef CORRAL_TEST_HELPERS_H
#define CORRAL_TEST_HELPERS_H

#include <stdbool.h>
#include <sys/types.h>

#include <criterion/criterion.h>

bool cr_test_in_vm(void);

#define cr_test_need(cond, fmt, ...)                                                       \
	do {                                                                               \
		if (!(cond)) {                                                             \
			if (cr_test_in_vm())                                               \
				cr_assert_fail("required in the VM: " fmt, ##__VA_ARGS__); \
			else                                                               \
				cr_skip_test(fmt, ##__VA_ARGS__);                          \
		}                                                                          \
	} while (0)

/* A cgroup for one test under the cgroup2 mount: "<mount>/corral-test-<pid>-<tag>". Skips
 * (fails in the VM) when there is no cgroup2 mount. The caller frees and destroys it. */
char *cr_test_cgroup(const char *tag, char **ret_mount);

/* Forks a child that moves itself into cgroup (NULL: stays where it is), runs fn and exits
 * with its result; returns that exit status, or -1 if the child died otherwise. */
int cr_test_run_in_cgroup(const char *cgroup, int (*fn)(void *), void *arg);

/* A new empty directory under /tmp (owned by the caller; remove with cr_test_rmrf()). */
char *cr_test_tmpdir(const char *tag);

/* Removes path and everything below it. */
void cr_test_rmrf(const char *path);

/* Starts build/corral-init --serve 3 (or $CORRAL_BUILD's) as a child working in dir, with one
 * end of a socketpair as its fd 3; the other end in *ret_fd. Returns the child's pid. */
pid_t cr_test_spawn_init(const char *dir, int *ret_fd);

/* The same with --listen 3: a socket listening at <dir>/control.sock (its address in
 * *ret_addr) as fd 3. Returns the child's pid; end it with SIGTERM. */
struct sockaddr_un;
pid_t cr_test_spawn_listening_init(const char *dir, struct sockaddr_un *ret_addr);

/* Closes fd and waits up to 10 s for the corral-init at pid to exit (SIGKILL after that, and
 * a failed assertion); returns its wait status. */
int cr_test_close_init(pid_t pid, int fd);

#endif
