/* Unit tests of runtime/net: the address plan, and (kernel features: network namespaces,
 * CAP_NET_ADMIN, veth) pairs between two namespaces. A test that touches the kernel first moves
 * itself into a network namespace of its own, which plays the host: the tests never change the
 * machine's network, cannot collide with each other when run in parallel, and can send packets
 * only to namespaces they made. Each sandbox is a child process in a further new namespace,
 * held by a pipe. What the library made is checked without it: ioctls, /proc/net/route and
 * /proc/net/if_inet6, read by a process that entered the sandbox's namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/kconfig.h"
#include "corral/net.h"
#include "helpers.h"

static struct in_addr ip(const char *s)
{
	struct in_addr a;
	cr_assert_eq(inet_pton(AF_INET, s, &a), 1, "%s", s);
	return a;
}

static const char *ntoa(struct in_addr a, char buf[INET_ADDRSTRLEN])
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

/* --- the address plan ------------------------------------------------------------------- */

Test(net, range_parse_accepts_cidr)
{
	struct cr_net_range r;
	struct cr_error err;
	cr_assert_eq(cr_net_range_parse("10.213.0.0/16", &r, &err), 0, "%s", err.msg);
	cr_assert_eq(r.network.s_addr, ip("10.213.0.0").s_addr);
	cr_assert_eq(r.prefix, 16);
	cr_assert_eq(cr_net_range_pairs(&r), 16384);

	cr_assert_eq(cr_net_range_parse("192.168.7.8/30", &r, &err), 0, "%s", err.msg);
	cr_assert_eq(r.prefix, 30);
	cr_assert_eq(cr_net_range_pairs(&r), 1);
	cr_assert_eq(cr_net_range_parse("0.0.0.0/0", &r, &err), 0, "%s", err.msg);
	cr_assert_eq(cr_net_range_pairs(&r), 1u << 30);
}

Test(net, range_parse_rejects_malformed_cidr)
{
	static const char *const bad[] = { "",
					   "10.213.0.0",
					   "10.213.0.0/",
					   "/16",
					   "10.213.0/16",
					   "10.213.0.0.0/16",
					   "256.1.0.0/16",
					   "10.213.0.0/33",
					   "10.213.0.0/-1",
					   "10.213.0.0/+16",
					   "10.213.0.0/016",
					   "10.213.0.0/16 ",
					   " 10.213.0.0/16",
					   "10.213.0.0/1a",
					   "10.213.0.0/123",
					   "010.213.0.0/16",
					   "fd00::/64",
					   "10.213.0.0/16/8",
					   "ten.0.0.0/8" };
	struct cr_net_range r = { .prefix = 99 };
	for (size_t i = 0; i < CR_ARRAY_SIZE(bad); i++) {
		struct cr_error err = { 0 };
		cr_assert_eq(cr_net_range_parse(bad[i], &r, &err), -EINVAL, "\"%s\"", bad[i]);
		cr_assert_eq(err.code, EINVAL);
		cr_assert(strstr(err.msg, bad[i]), "\"%s\": %s", bad[i], err.msg);
	}
	cr_assert_eq(cr_net_range_parse(NULL, &r, NULL), -EINVAL);
	cr_assert_eq(r.prefix, 99, "ret was written on failure");
}

Test(net, range_parse_rejects_ranges_too_small_for_one_pair)
{
	struct cr_net_range r;
	struct cr_error err;
	cr_assert_eq(cr_net_range_parse("10.213.0.0/31", &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
	cr_assert_eq(cr_net_range_parse("10.213.0.1/32", &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
}

Test(net, range_parse_rejects_host_bits_and_names_the_network)
{
	struct cr_net_range r;
	struct cr_error err;
	cr_assert_eq(cr_net_range_parse("10.213.0.1/16", &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "host bits") && strstr(err.msg, "10.213.0.0/16"), "%s", err.msg);
	cr_assert_eq(cr_net_range_parse("10.213.0.4/29", &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "10.213.0.0/29"), "%s", err.msg);
}

/* Every pair of a /27: distinct addresses, each pair alone in its /30, inside the range, neither
 * the /30's network nor its broadcast address. */
Test(net, pair_addresses_are_distinct_and_in_range)
{
	struct cr_net_range r;
	struct cr_error err;
	cr_assert_eq(cr_net_range_parse("10.213.4.0/27", &r, &err), 0, "%s", err.msg);
	uint32_t pairs = cr_net_range_pairs(&r);
	cr_assert_eq(pairs, 8);
	uint32_t seen[16];
	size_t n = 0;
	uint32_t base = ntohl(r.network.s_addr);
	for (uint32_t i = 0; i < pairs; i++) {
		struct in_addr h, s;
		uint8_t prefix = 0;
		cr_assert_eq(cr_net_pair_addresses(&r, i, &h, &s, &prefix, &err), 0, "%s", err.msg);
		cr_assert_eq(prefix, 30);
		uint32_t hh = ntohl(h.s_addr), ss = ntohl(s.s_addr);
		cr_assert_eq(hh & ~31u, base, "pair %u outside the range", i);
		cr_assert_eq(ss & ~31u, base, "pair %u outside the range", i);
		cr_assert_eq(hh & ~3u, ss & ~3u, "pair %u not in one /30", i);
		const uint32_t both[] = { hh, ss };
		for (size_t j = 0; j < 2; j++) {
			cr_assert_neq(both[j] & 3, 0, "network address used");
			cr_assert_neq(both[j] & 3, 3, "broadcast address used");
			for (size_t k = 0; k < n; k++)
				cr_assert_neq(seen[k], both[j], "address used twice (pair %u)", i);
			seen[n++] = both[j];
		}
	}
	cr_assert_eq(n, 16);
	char buf[INET_ADDRSTRLEN];
	struct in_addr h, s;
	uint8_t prefix;
	cr_assert_eq(cr_net_pair_addresses(&r, 0, &h, &s, &prefix, &err), 0);
	cr_assert_str_eq(ntoa(h, buf), "10.213.4.1");
	cr_assert_str_eq(ntoa(s, buf), "10.213.4.2");
	cr_assert_eq(cr_net_pair_addresses(&r, 7, &h, &s, &prefix, &err), 0);
	cr_assert_str_eq(ntoa(h, buf), "10.213.4.29");
	cr_assert_str_eq(ntoa(s, buf), "10.213.4.30");
}

Test(net, pair_addresses_past_the_end_are_erange)
{
	struct cr_net_range r;
	struct cr_error err;
	struct in_addr h = { 0 }, s = { 0 };
	uint8_t prefix = 0;
	cr_assert_eq(cr_net_range_parse("10.213.0.0/16", &r, &err), 0);
	cr_assert_eq(cr_net_pair_addresses(&r, 16383, &h, &s, &prefix, &err), 0);
	char buf[INET_ADDRSTRLEN];
	cr_assert_str_eq(ntoa(s, buf), "10.213.255.254");
	h.s_addr = s.s_addr = 0;
	prefix = 0;
	cr_assert_eq(cr_net_pair_addresses(&r, 16384, &h, &s, &prefix, &err), -ERANGE);
	cr_assert(strstr(err.msg, "10.213.0.0/16"), "%s", err.msg);
	cr_assert_eq(cr_net_pair_addresses(&r, UINT32_MAX, &h, &s, &prefix, NULL), -ERANGE);
	cr_assert(h.s_addr == 0 && s.s_addr == 0 && prefix == 0, "outputs written on failure");

	cr_assert_eq(cr_net_range_parse("172.16.0.0/30", &r, &err), 0);
	cr_assert_eq(cr_net_pair_addresses(&r, 0, &h, &s, &prefix, &err), 0);
	cr_assert_eq(cr_net_pair_addresses(&r, 1, &h, &s, &prefix, &err), -ERANGE);
}

/* --- namespaces ------------------------------------------------------------------------- */

static int machine_netns = -1;
static bool host_ready;

/* Moves the test into a network namespace of its own (its "host"); skips without the
 * privileges. */
static void host_setup(void)
{
	cr_test_need(CR_ENABLED(CONFIG_CORRAL_LIBNL),
		     "built without sandbox networking (CONFIG_CORRAL_LIBNL)");
	machine_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(machine_netns, 0, "open /proc/self/ns/net: %s", strerror(errno));
	int r = unshare(CLONE_NEWNET);
	cr_test_need(r == 0, "cannot make a network namespace (needs CAP_SYS_ADMIN): %s",
		     strerror(errno));
	host_ready = true;
}

static void assert_no_veths(const char *where)
{
	char **names = NULL;
	size_t n = 99;
	struct cr_error err;
	cr_assert_eq(cr_net_list_veths(&names, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 0, "%s: %zu cr- interfaces left, the first %s", where, n, names[0]);
	cr_net_names_free(names);
}

/* After every test: no cr- interface in the test's host namespace nor in the machine's. */
static void host_teardown(void)
{
	if (!host_ready)
		return;
	assert_no_veths("the test's host namespace");
	cr_assert_eq(setns(machine_netns, CLONE_NEWNET), 0, "%s", strerror(errno));
	assert_no_veths("the machine's network namespace");
	close(machine_netns);
}

struct sandbox {
	pid_t pid;
	int netns_fd;
	int hold_fd; /* the child lives until this closes */
};

static void sandbox_start(struct sandbox *sb)
{
	int ready[2], hold[2];
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char c = unshare(CLONE_NEWNET) == 0;
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char ok = 0;
	cr_assert_eq(read(ready[0], &ok, 1), 1);
	close(ready[0]);
	cr_assert(ok, "the sandbox child could not make a network namespace");
	struct cr_error err;
	cr_assert_eq(cr_net_netns_open(pid, &sb->netns_fd, &err), 0, "%s", err.msg);
	sb->pid = pid;
	sb->hold_fd = hold[1];
}

static void sandbox_stop(struct sandbox *sb)
{
	/* A later sandbox's child inherited hold_fd too, so closing it is not enough. */
	kill(sb->pid, SIGKILL);
	close(sb->hold_fd);
	close(sb->netns_fd);
	int status;
	cr_assert_eq(waitpid(sb->pid, &status, 0), sb->pid);
}

/* Runs fn in a child (bounded to 10 s) that first entered the namespace of netns_fd (-1: stays
 * where it is); fn's result (0: fine), or -1 if the child died otherwise. */
static int run_in(int netns_fd, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(10);
		if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) {
			fprintf(stderr, "setns: %s\n", strerror(errno));
			_exit(100);
		}
		_exit(fn(arg));
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- checks made in the current namespace, without the library --------------------------- */

struct iface {
	short flags;
	struct in_addr addr;
	int prefix;
};

/* 0, -ENODEV without the interface, -EADDRNOTAVAIL without an IPv4 address. */
static int iface_get(const char *name, struct iface *ret)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ret->flags = ifr.ifr_flags;
	if (ioctl(fd, SIOCGIFADDR, &ifr) < 0)
		return -errno;
	ret->addr = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
	if (ioctl(fd, SIOCGIFNETMASK, &ifr) < 0)
		return -errno;
	ret->prefix = __builtin_popcount(((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr.s_addr);
	return 0;
}

/* The gateway of the IPv4 default route (/proc/net/route); -ENOENT if there is none. */
static int default_gateway(struct in_addr *ret, char dev[IFNAMSIZ])
{
	_cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return -errno;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		char name[IFNAMSIZ];
		unsigned dst, gw, flags, mask;
		if (sscanf(line, "%15s %x %x %x %*d %*d %*d %x", name, &dst, &gw, &flags, &mask) !=
		    5)
			continue; /* the heading */
		if (dst == 0 && mask == 0) {
			ret->s_addr = gw; /* printed as the raw network-order word */
			memcpy(dev, name, IFNAMSIZ);
			return 0;
		}
	}
	return -ENOENT;
}

/* Whether interface name has any IPv6 address (/proc/net/if_inet6). */
static bool has_ipv6(const char *name)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/net/if_inet6", "re");
	if (!f)
		return false; /* no IPv6 in this kernel */
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		char dev[IFNAMSIZ];
		if (sscanf(line, "%*s %*x %*x %*x %*x %15s", dev) == 1 && strcmp(dev, name) == 0)
			return true;
	}
	return false;
}

static bool iface_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

struct expect {
	struct in_addr addr, gateway;
};

/* In the sandbox: eth0 is up with its address/30, the default route goes via the host end,
 * the pair has no IPv6 address. */
static int sandbox_end_is_configured(void *arg)
{
	const struct expect *e = arg;
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	struct iface i;
	int r = iface_get("eth0", &i);
	if (r < 0) {
		fprintf(stderr, "eth0: %s\n", strerror(-r));
		return 1;
	}
	if (!(i.flags & IFF_UP) || i.addr.s_addr != e->addr.s_addr || i.prefix != 30) {
		fprintf(stderr, "eth0: flags %#x address %s/%d, expected up %s/30\n", i.flags,
			ntoa(i.addr, a), i.prefix, ntoa(e->addr, b));
		return 2;
	}
	struct in_addr gw = { 0 };
	char dev[IFNAMSIZ] = "";
	r = default_gateway(&gw, dev);
	if (r < 0 || gw.s_addr != e->gateway.s_addr || strcmp(dev, "eth0") != 0) {
		fprintf(stderr, "default route: %s\n", r < 0 ? strerror(-r) : ntoa(gw, a));
		return 3;
	}
	if (has_ipv6("eth0")) {
		fprintf(stderr, "eth0 has an IPv6 address\n");
		return 4;
	}
	return 0;
}

static int sandbox_has_no_eth0(void *arg)
{
	(void)arg;
	return iface_exists("eth0") ? 1 : 0;
}

static void check_host_end(const struct cr_veth *v)
{
	struct iface i;
	int r = iface_get(v->host_if, &i);
	cr_assert_eq(r, 0, "%s: %s", v->host_if, strerror(-r));
	char a[INET_ADDRSTRLEN];
	cr_assert(i.flags & IFF_UP, "%s is not up", v->host_if);
	cr_assert_eq(i.addr.s_addr, v->host_addr.s_addr, "%s has %s", v->host_if, ntoa(i.addr, a));
	cr_assert_eq(i.prefix, 30);
	cr_assert_not(has_ipv6(v->host_if), "%s has an IPv6 address", v->host_if);
}

static const struct in_addr *a_host(void)
{
	static struct in_addr a;
	a = ip("10.213.0.1");
	return &a;
}

static const struct in_addr *a_sandbox(void)
{
	static struct in_addr a;
	a = ip("10.213.0.2");
	return &a;
}

/* Creates tag's pair into sb with the addresses of pair index of 10.213.0.0/16; skips when the
 * kernel has no veth. */
static void create_pair(const char *tag, struct sandbox *sb, uint32_t index, struct cr_veth *v)
{
	struct cr_net_range range;
	struct in_addr h, s;
	uint8_t prefix;
	struct cr_error err;
	cr_assert_eq(cr_net_range_parse("10.213.0.0/16", &range, &err), 0);
	cr_assert_eq(cr_net_pair_addresses(&range, index, &h, &s, &prefix, &err), 0);
	int r = cr_net_veth_create(tag, sb->netns_fd, &h, &s, prefix, v, &err);
	cr_test_need(r != -EOPNOTSUPP, "the kernel cannot make veth pairs: %s", err.msg);
	cr_assert_eq(r, 0, "%s", err.msg);
}

static void destroy_pair(const struct cr_veth *v)
{
	struct cr_error err;
	cr_assert_eq(cr_net_veth_destroy(v, &err), 0, "%s", err.msg);
}

TestSuite(net);

Test(net, veth_create_configures_both_ends, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	struct cr_veth v;
	create_pair("a1b2c3d4", &sb, 0, &v);
	cr_assert_str_eq(v.host_if, "cr-a1b2c3d4");
	cr_assert_str_eq(v.sandbox_if, "eth0");
	cr_assert_eq(v.prefix, 30);
	cr_assert_eq(v.host_addr.s_addr, a_host()->s_addr);
	cr_assert_eq(v.sandbox_addr.s_addr, a_sandbox()->s_addr);

	check_host_end(&v);
	cr_assert_not(iface_exists("eth0"), "the peer is on the host's side");
	struct expect e = { .addr = v.sandbox_addr, .gateway = v.host_addr };
	cr_assert_eq(run_in(sb.netns_fd, sandbox_end_is_configured, &e), 0);

	destroy_pair(&v);
	sandbox_stop(&sb);
}

static int connect_and_send(void *arg)
{
	const struct sockaddr_in *to = arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		fprintf(stderr, "connect from the sandbox: %s\n", strerror(errno));
		return 1;
	}
	if (write(fd, "hello", 5) != 5)
		return 2;
	close(fd);
	return 0;
}

Test(net, sandbox_connects_to_host_end_with_its_own_source_address, .init = host_setup,
     .fini = host_teardown, .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	struct cr_veth v;
	create_pair("tcp", &sb, 5, &v);

	_cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr = v.host_addr };
	socklen_t len = sizeof(addr);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);

	cr_assert_eq(run_in(sb.netns_fd, connect_and_send, &addr), 0);

	struct pollfd p = { .fd = lfd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 10000), 1, "no connection arrived");
	struct sockaddr_in peer;
	len = sizeof(peer);
	_cleanup_close_ int cfd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
	cr_assert_geq(cfd, 0, "%s", strerror(errno));
	char a[INET_ADDRSTRLEN];
	cr_assert_eq(peer.sin_addr.s_addr, v.sandbox_addr.s_addr, "the host saw %s",
		     ntoa(peer.sin_addr, a));
	char buf[8] = { 0 };
	cr_assert_eq(read(cfd, buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "hello");

	destroy_pair(&v);
	sandbox_stop(&sb);
}

/* 0 if a TCP connection to 127.0.0.1 goes through, 1 if it does not. */
static int loopback_works(void)
{
	_cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_close_ int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr = { .s_addr = htonl(INADDR_LOOPBACK) } };
	socklen_t len = sizeof(addr);
	if (lfd < 0 || cfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&addr, &len) < 0 ||
	    connect(cfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return 1;
	_cleanup_close_ int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return afd < 0;
}

static int loopback_up_in_fresh_netns(void *arg)
{
	(void)arg;
	if (unshare(CLONE_NEWNET) < 0)
		return 10;
	if (loopback_works() == 0) {
		fprintf(stderr, "127.0.0.1 works before lo is up\n");
		return 11;
	}
	struct cr_error err;
	if (cr_net_loopback_up(&err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 12;
	}
	struct iface i;
	if (iface_get("lo", &i) < 0 || !(i.flags & IFF_UP))
		return 13;
	return loopback_works() == 0 ? 0 : 14;
}

Test(net, loopback_up_makes_127_0_0_1_usable, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	/* In a child, so the namespace it makes is its own. */
	cr_assert_eq(run_in(-1, loopback_up_in_fresh_netns, NULL), 0);
}

Test(net, destroy_removes_both_ends_and_is_idempotent, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	struct cr_veth v;
	create_pair("gone", &sb, 1, &v);
	cr_assert(iface_exists("cr-gone"));
	destroy_pair(&v);
	cr_assert_not(iface_exists("cr-gone"));
	cr_assert_eq(run_in(sb.netns_fd, sandbox_has_no_eth0, NULL), 0, "eth0 survived");
	destroy_pair(&v); /* ENODEV is not an error */

	struct cr_veth bad = { .host_if = "eth0" };
	struct cr_error err;
	cr_assert_eq(cr_net_veth_destroy(&bad, &err), -EINVAL);
	cr_assert(strstr(err.msg, "eth0"), "%s", err.msg);
	struct cr_veth empty = { 0 };
	cr_assert_eq(cr_net_veth_destroy(&empty, &err), -EINVAL);
	sandbox_stop(&sb);
}

Test(net, pair_goes_with_its_namespace_and_destroy_after_is_not_an_error, .init = host_setup,
     .fini = host_teardown, .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	struct cr_veth v;
	create_pair("died", &sb, 2, &v);
	sandbox_stop(&sb); /* the process and the last fd of its namespace are gone */
	/* The kernel dismantles a dead namespace from a work queue. */
	for (int i = 0; i < 1000 && iface_exists("cr-died"); i++)
		usleep(10000);
	cr_assert_not(iface_exists("cr-died"), "the host end outlived the sandbox's namespace");
	destroy_pair(&v);
}

static void assert_create_fails(int netns_fd, int code, const char *words)
{
	struct cr_veth v;
	memset(&v, 0xaa, sizeof(v));
	struct cr_veth untouched = v;
	struct cr_error err;
	int r = cr_net_veth_create("bad", netns_fd, a_host(), a_sandbox(), 30, &v, &err);
	cr_assert_eq(r, -code, "fd %d: %d (%s)", netns_fd, r, err.msg);
	cr_assert(strstr(err.msg, words), "fd %d: %s", netns_fd, err.msg);
	cr_assert_eq(memcmp(&v, &untouched, sizeof(v)), 0, "ret written on failure");
	cr_assert_not(iface_exists("cr-bad"));
}

Test(net, create_with_bad_netns_fd_fails_and_leaves_nothing, .init = host_setup,
     .fini = host_teardown, .timeout = 30)
{
	assert_create_fails(-1, EBADF, "fd -1");
	_cleanup_close_ int closed = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int number = closed;
	close(TAKE_FD(closed));
	assert_create_fails(number, EBADF, "fd");
	_cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_create_fails(null, EINVAL, "not a network namespace");
	_cleanup_close_ int uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	assert_create_fails(uts, EINVAL, "not a network namespace");
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_create_fails(self, EINVAL, "own network namespace");
}

Test(net, netns_of_exited_process_is_esrch, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	siginfo_t si;
	/* A zombie: exited, not yet reaped. */
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	int fd = -1;
	struct cr_error err;
	cr_assert_eq(cr_net_netns_open(pid, &fd, &err), -ESRCH);
	cr_assert(strstr(err.msg, "exited"), "%s", err.msg);
	cr_assert_eq(fd, -1);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(cr_net_netns_open(pid, &fd, &err), -ESRCH);
	cr_assert_eq(cr_net_netns_open(0, &fd, &err), -EINVAL);
}

Test(net, create_rejects_bad_tags_and_addresses, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	static const char *const tags[] = { "", "abcdefghijklm", "a/b", "a b", "a.b", "ä" };
	struct cr_veth v;
	struct cr_error err;
	for (size_t i = 0; i < CR_ARRAY_SIZE(tags); i++) {
		cr_assert_eq(cr_net_veth_create(tags[i], sb.netns_fd, a_host(), a_sandbox(), 30, &v,
						&err),
			     -EINVAL, "tag \"%s\"", tags[i]);
		cr_assert(strstr(err.msg, "tag"), "%s", err.msg);
	}
	cr_assert_eq(cr_net_veth_create(NULL, sb.netns_fd, a_host(), a_sandbox(), 30, &v, &err),
		     -EINVAL);
	/* The longest tag fits IFNAMSIZ. */
	create_pair("abcdefghijkl", &sb, 0, &v);
	cr_assert_str_eq(v.host_if, "cr-abcdefghijkl");
	destroy_pair(&v);

	struct in_addr other = ip("10.213.0.6");
	cr_assert_eq(cr_net_veth_create("x", sb.netns_fd, a_host(), a_host(), 30, &v, &err),
		     -EINVAL);
	cr_assert_eq(cr_net_veth_create("x", sb.netns_fd, a_host(), &other, 30, &v, &err), -EINVAL);
	cr_assert(strstr(err.msg, "10.213.0.6"), "%s", err.msg);
	cr_assert_eq(cr_net_veth_create("x", sb.netns_fd, a_host(), a_sandbox(), 32, &v, &err),
		     -EINVAL);
	cr_assert_eq(cr_net_veth_create("x", sb.netns_fd, a_host(), a_sandbox(), 0, &v, &err),
		     -EINVAL);
	cr_assert_eq(run_in(sb.netns_fd, sandbox_has_no_eth0, NULL), 0);
	sandbox_stop(&sb);
}

Test(net, host_name_collision_fails_clearly_and_keeps_the_first_pair, .init = host_setup,
     .fini = host_teardown, .timeout = 30)
{
	struct sandbox one, two;
	sandbox_start(&one);
	sandbox_start(&two);
	struct cr_veth v, w;
	create_pair("dup", &one, 0, &v);

	struct in_addr h = ip("10.213.0.5"), s = ip("10.213.0.6");
	struct cr_error err;
	cr_assert_eq(cr_net_veth_create("dup", two.netns_fd, &h, &s, 30, &w, &err), -EEXIST);
	cr_assert(strstr(err.msg, "cr-dup already exists on the host"), "%s", err.msg);
	cr_assert_eq(run_in(two.netns_fd, sandbox_has_no_eth0, NULL), 0, "half a pair was made");

	check_host_end(&v);
	struct expect e = { .addr = v.sandbox_addr, .gateway = v.host_addr };
	cr_assert_eq(run_in(one.netns_fd, sandbox_end_is_configured, &e), 0);
	destroy_pair(&v);
	sandbox_stop(&one);
	sandbox_stop(&two);
}

Test(net, sandbox_name_collision_fails_clearly_and_makes_no_host_end, .init = host_setup,
     .fini = host_teardown, .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	struct cr_veth v, w;
	create_pair("first", &sb, 0, &v);
	struct in_addr h = ip("10.213.0.5"), s = ip("10.213.0.6");
	struct cr_error err;
	cr_assert_eq(cr_net_veth_create("second", sb.netns_fd, &h, &s, 30, &w, &err), -EEXIST);
	cr_assert(strstr(err.msg, "already has an interface eth0"), "%s", err.msg);
	cr_assert_not(iface_exists("cr-second"));
	destroy_pair(&v);
	sandbox_stop(&sb);
}

/* Gives the namespace a default route through lo (with the legacy route ioctl, so the test needs
 * neither iproute2 nor the library). */
static int add_default_route_via_lo(void *arg)
{
	(void)arg;
	struct cr_error err;
	if (cr_net_loopback_up(&err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct rtentry rt = { 0 };
	struct sockaddr_in any = { .sin_family = AF_INET };
	memcpy(&rt.rt_dst, &any, sizeof(any));
	memcpy(&rt.rt_genmask, &any, sizeof(any));
	rt.rt_flags = RTF_UP;
	char dev[] = "lo";
	rt.rt_dev = dev;
	if (fd < 0 || ioctl(fd, SIOCADDRT, &rt) < 0) {
		fprintf(stderr, "SIOCADDRT: %s\n", strerror(errno));
		return 2;
	}
	return 0;
}

/* The last step fails (the namespace has a default route already): the pair made by the first
 * step is deleted again. */
Test(net, failure_after_the_pair_exists_deletes_it, .init = host_setup, .fini = host_teardown,
     .timeout = 30)
{
	struct sandbox sb;
	sandbox_start(&sb);
	cr_assert_eq(run_in(sb.netns_fd, add_default_route_via_lo, NULL), 0);
	struct cr_veth v;
	struct cr_error err;
	int r = cr_net_veth_create("undo", sb.netns_fd, a_host(), a_sandbox(), 30, &v, &err);
	cr_test_need(r != -EOPNOTSUPP, "the kernel cannot make veth pairs: %s", err.msg);
	cr_assert_eq(r, -EEXIST, "%d: %s", r, err.msg);
	cr_assert(strstr(err.msg, "default route"), "%s", err.msg);
	cr_assert_not(iface_exists("cr-undo"), "the host end was left behind");
	cr_assert_eq(run_in(sb.netns_fd, sandbox_has_no_eth0, NULL), 0, "eth0 was left behind");
	sandbox_stop(&sb);
}

Test(net, list_veths_finds_what_was_made, .init = host_setup, .fini = host_teardown, .timeout = 30)
{
	struct sandbox one, two;
	sandbox_start(&one);
	sandbox_start(&two);
	struct cr_veth v, w;
	create_pair("zz", &one, 3, &v);
	create_pair("aa", &two, 4, &w);

	char **names = NULL;
	size_t n = 0;
	struct cr_error err;
	cr_assert_eq(cr_net_list_veths(&names, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(names[0], "cr-aa");
	cr_assert_str_eq(names[1], "cr-zz");
	cr_assert_null(names[2]);
	cr_net_names_free(names);

	/* Both sandboxes reach their own host end. */
	struct expect e = { .addr = w.sandbox_addr, .gateway = w.host_addr };
	cr_assert_eq(run_in(two.netns_fd, sandbox_end_is_configured, &e), 0);

	/* Leftover cleanup as after a crash: destroy by name alone. */
	cr_assert_eq(cr_net_list_veths(&names, &n, &err), 0, "%s", err.msg);
	for (size_t i = 0; i < n; i++) {
		struct cr_veth left = { 0 };
		snprintf(left.host_if, sizeof(left.host_if), "%s", names[i]);
		destroy_pair(&left);
	}
	cr_net_names_free(names);
	sandbox_stop(&one);
	sandbox_stop(&two);
}

#ifndef CONFIG_CORRAL_LIBNL
Test(net, netlink_calls_fail_clearly_when_built_without_libnl)
{
	struct cr_error err;
	cr_assert_eq(cr_net_loopback_up(&err), -EOPNOTSUPP);
	cr_assert(strstr(err.msg, "CONFIG_CORRAL_LIBNL"), "%s", err.msg);
	struct cr_veth v = { .host_if = "cr-x" };
	cr_assert_eq(cr_net_veth_destroy(&v, &err), -EOPNOTSUPP);
}
#endif
