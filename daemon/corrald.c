/* daemon/corrald: the platform daemon. Today it validates its options, prepares its state
 * directory and checks the kernel layers at start-up (refusing to start when a required one is
 * missing); the session log, API and sandbox manager are later issues, and until they land it
 * says so and exits instead of pretending to serve. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/doctor.h"

struct options {
	const char *state_dir;
	const char *socket;
	const char *listen;
	long workers;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: corrald [--state-dir DIR] [--socket PATH] [--listen 127.0.0.1:PORT] "
		   "[--workers N]\n");
}

/* A decimal number made of digits only (no sign, no spaces) within [min, max]. */
static int parse_number(const char *s, long min, long max, long *ret)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10 || strspn(s, "0123456789") != n)
		return -1;
	long v = strtol(s, NULL, 10);
	if (v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

/* Accepts 127.x.y.z:PORT and [::1]:PORT: the API is never exposed beyond loopback. */
static int check_listen(const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	long port;
	if (parse_number(colon + 1, 1, 65535, &port) < 0)
		return -1;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ? 0 : -1;
	return strcmp(host, "[::1]") == 0 ? 0 : -1;
}

static int make_state_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "corrald: create state directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "corrald: state directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "corrald: state directory %s is not a directory\n", dir);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
		fprintf(stderr,
			"corrald: state directory %s must be owned by uid %u and closed to others "
			"(it is uid %u, mode %03o)\n",
			dir, geteuid(), st.st_uid, st.st_mode & 0777);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct options o = {
		.state_dir = CONFIG_CORRAL_STATE_DIR,
		.socket = CONFIG_CORRAL_RUN_DIR "/corrald.sock",
		.workers = 2,
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.state_dir = optarg;
			break;
		case 'S':
			o.socket = optarg;
			break;
		case 'l':
			if (check_listen(optarg) < 0) {
				fprintf(stderr,
					"corrald: --listen %s: want a loopback address and "
					"port, 127.0.0.1:PORT or [::1]:PORT\n",
					optarg);
				return 2;
			}
			o.listen = optarg;
			break;
		case 'w':
			if (parse_number(optarg, 1, 1024, &o.workers) < 0) {
				fprintf(stderr,
					"corrald: --workers %s: want a number from 1 to 1024\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "corrald: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corrald: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (strlen(o.socket) >= 108) {
		fprintf(stderr, "corrald: --socket %s: longer than a Unix socket path can be\n",
			o.socket);
		return 2;
	}

	struct cr_doctor_report report;
	struct cr_error err;
	if (cr_doctor_run(&report, 0, &err) < 0) {
		fprintf(stderr, "corrald: checking kernel layers: %s\n", err.msg);
		return 1;
	}
	fprintf(stderr, "corrald: kernel %s\n", report.kernel_release);
	for (int i = 0; i < CR_LAYER_COUNT; i++) {
		const struct cr_layer_report *l = &report.layers[i];
		fprintf(stderr, "corrald: %-16s %s%s: %s\n", l->title,
			l->present  ? "ok"
			: !l->built ? "off"
				    : "missing",
			l->required ? " (required)" : "", l->detail);
	}
	bool ok = cr_doctor_required_present(&report);
	cr_doctor_report_done(&report);
	if (!ok) {
		fprintf(stderr,
			"corrald: refusing to start: a required layer is missing (see above; "
			"corral doctor explains each)\n");
		return 1;
	}
	if (make_state_dir(o.state_dir) < 0)
		return 1;

	fprintf(stderr,
		"corrald: start-up checks passed (state %s, socket %s%s%s, %ld workers); "
		"nothing to serve yet: the session log, API and sandboxes are not built\n",
		o.state_dir, o.socket, o.listen ? ", listen " : "", o.listen ? o.listen : "",
		o.workers);
	return 1;
}
