/* fakeapi/main: corral-fake-api's command line. Listens on a loopback address only, says where
 * on standard output ("listening on 127.0.0.1:PORT"), and serves each connection in a thread of
 * its own until SIGTERM or SIGINT end it. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakeapi/fakeapi-internal.h"

#define USAGE                                                                                      \
	"usage: corral-fake-api [--listen 127.0.0.1:PORT] [--port-file FILE] [--api-key KEY]\n"    \
	"                       [--scenario FILE] [--first-token-ms N] [--first-token-p99-ms N]\n" \
	"                       [--token-rate N] [--max-body BYTES] [--verbose]\n"

static struct api api;

struct conn_arg {
	int fd;
};

static void *serve(void *arg)
{
	struct conn_arg *ca = arg;
	struct http_conn c = { .fd = ca->fd };
	free(ca);
	for (;;) {
		struct http_request req;
		enum http_read r = http_read_request(&c, api.max_body, &req);
		if (r == HTTP_CLOSED) {
			http_request_clear(&req);
			break;
		}
		if (r != HTTP_OK) {
			char msg[128];
			int status = r == HTTP_TOO_LARGE	? 413
				     : r == HTTP_HEAD_TOO_LARGE ? 431
								: 400;
			if (status == 413)
				snprintf(msg, sizeof(msg),
					 "Request exceeds the maximum size of %zu bytes",
					 api.max_body);
			else
				snprintf(msg, sizeof(msg), "%s",
					 status == 431 ? "Request headers too large"
						       : "Malformed HTTP request");
			api_respond_error(
				c.fd, status,
				status == 413 ? "request_too_large" : "invalid_request_error", msg);
			http_request_clear(&req);
			break;
		}
		bool keep = api_handle(&api, c.fd, &req);
		http_request_clear(&req);
		if (!keep)
			break;
	}
	close(c.fd);
	free(c.buf);
	return NULL;
}

/* 127.x.y.z:PORT or [::1]:PORT, nothing else: the server must never face a network. */
static int listen_on(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || (size_t)(colon - spec) >= sizeof(host) || end == colon + 1 || *end ||
	    port < 0 || port > 65535) {
		fprintf(stderr, "corral-fake-api: --listen %s: want ADDRESS:PORT\n", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1 &&
	    (ntohl(in->sin_addr.s_addr) >> 24) == 127) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		sl = sizeof(*in);
	} else if (strcmp(host, "[::1]") == 0) {
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*in6);
	} else {
		fprintf(stderr,
			"corral-fake-api: --listen %s: only a loopback address (127.x.y.z or "
			"[::1])\n",
			spec);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
		fprintf(stderr, "corral-fake-api: listen on %s: %s\n", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static bool parse_num(const char *opt, const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "corral-fake-api: %s %s: want an integer from %lld to %lld\n", opt,
			s, (long long)min, (long long)max);
		return false;
	}
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	const char *listen_spec = "127.0.0.1:0", *port_file = NULL, *scenario = NULL;
	api.max_body = 32u << 20; /* the real API's limit */
	api.knobs = (struct knobs){ .fail_attempts = -1,
				    .retry_after_s = -1,
				    .retry_after_ms = -1,
				    .should_retry = -1,
				    .error_after = -1,
				    .drop_after = -1,
				    .stall_after = -1,
				    .truncate_after = -1 };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "api-key", required_argument, NULL, 'k' },
		{ "scenario", required_argument, NULL, 's' },
		{ "first-token-ms", required_argument, NULL, 'f' },
		{ "first-token-p99-ms", required_argument, NULL, 'P' },
		{ "token-rate", required_argument, NULL, 'r' },
		{ "max-body", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	int64_t v;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'k':
			api.api_key = optarg;
			break;
		case 's':
			scenario = optarg;
			break;
		case 'f':
			if (!parse_num("--first-token-ms", optarg, 0, 3600000,
				       &api.knobs.first_token_ms))
				return 2;
			break;
		case 'P':
			if (!parse_num("--first-token-p99-ms", optarg, 0, 3600000,
				       &api.knobs.first_token_p99_ms))
				return 2;
			break;
		case 'r':
			if (!parse_num("--token-rate", optarg, 0, 1000000, &api.knobs.token_rate))
				return 2;
			break;
		case 'b':
			if (!parse_num("--max-body", optarg, 1, INT32_MAX, &v))
				return 2;
			api.max_body = (size_t)v;
			break;
		case 'v':
			api.verbose = true;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		default:
			fputs(USAGE, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "corral-fake-api: unexpected argument \"%s\"\n" USAGE,
			argv[optind]);
		return 2;
	}
	if (api.knobs.first_token_p99_ms &&
	    api.knobs.first_token_p99_ms <= api.knobs.first_token_ms) {
		fprintf(stderr,
			"corral-fake-api: --first-token-p99-ms %lld must be greater than "
			"--first-token-ms %lld (the median), or 0\n",
			(long long)api.knobs.first_token_p99_ms,
			(long long)api.knobs.first_token_ms);
		return 2;
	}
	if (scenario && !(api.scenario = api_load_scenario(scenario)))
		return 2;
	int l = listen_on(listen_spec);
	if (l < 0)
		return 1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getsockname(l, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr,
				  sizeof(addr));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			snprintf(addr, sizeof(addr), "[::1]");
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
			fprintf(stderr, "corral-fake-api: --port-file %s: %s\n", port_file,
				strerror(errno));
			return 1;
		}
	}
	printf("listening on %s:%d\n", addr, port);
	fflush(stdout);

	/* SIGTERM and SIGINT end it by their default action: it keeps nothing to save */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE)
				continue;
			fprintf(stderr, "corral-fake-api: accept: %s\n", strerror(errno));
			return 1;
		}
		/* Each event is one write: without this, Nagle holds a delta back until the
		 * client's delayed ACK of the one before (40 ms). The real API's servers stream
		 * without that pause. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn_arg *ca = malloc(sizeof(*ca));
		pthread_t t;
		if (!ca) {
			close(fd);
			continue;
		}
		ca->fd = fd;
		/* EAGAIN: threads that are ending still count; wait for them a little */
		int e = EAGAIN;
		for (int tries = 0; e == EAGAIN && tries < 200; tries++)
			if ((e = pthread_create(&t, &attr, serve, ca)) == EAGAIN)
				usleep(5000);
		if (e != 0) {
			fprintf(stderr, "corral-fake-api: a thread for a connection: %s\n",
				strerror(e));
			close(fd);
			free(ca);
		}
	}
}
