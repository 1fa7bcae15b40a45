/* runtime/net: a sandbox's network, made over rtnetlink with libnl-route-3. Owns the address
 * plan (a host-local IPv4 range cut into /30s), the "cr-" veth pairs and the loopback of a
 * fresh namespace. Must never leave the calling thread in another network namespace, run the
 * ip command, or turn on forwarding, NAT or firewall rules: what a sandbox may reach through
 * its pair is decided elsewhere (the cgroup socket hooks), not by routing set up here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corral/cleanup.h"
#include "corral/net.h"

/* --- the address plan ------------------------------------------------------------------- */

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

int cr_net_range_parse(const char *cidr, struct cr_net_range *ret, struct cr_error *err)
{
	if (!cidr)
		return cr_error_set(err, EINVAL, "no address range given");
	const char *slash = strchr(cidr, '/');
	if (!slash)
		return cr_error_set(
			err, EINVAL,
			"address range \"%s\": expected an IPv4 CIDR like 10.213.0.0/16", cidr);
	char quad[INET_ADDRSTRLEN];
	size_t n = (size_t)(slash - cidr);
	struct in_addr network;
	if (n == 0 || n >= sizeof(quad))
		return cr_error_set(err, EINVAL, "address range \"%s\": not an IPv4 address", cidr);
	memcpy(quad, cidr, n);
	quad[n] = '\0';
	/* inet_pton takes only the four-part dotted quad, no leading zeros, no spaces. */
	if (inet_pton(AF_INET, quad, &network) != 1)
		return cr_error_set(err, EINVAL,
				    "address range \"%s\": \"%s\" is not an IPv4 address", cidr,
				    quad);

	const char *p = slash + 1;
	size_t digits = strspn(p, "0123456789");
	if (digits == 0 || digits > 2 || p[digits] != '\0' || (digits == 2 && p[0] == '0'))
		return cr_error_set(
			err, EINVAL,
			"address range \"%s\": the prefix length must be a number 0..32", cidr);
	unsigned prefix = (unsigned)atoi(p);
	if (prefix > 32)
		return cr_error_set(
			err, EINVAL,
			"address range \"%s\": the prefix length must be a number 0..32", cidr);
	if (prefix > CR_NET_PAIR_PREFIX)
		return cr_error_set(err, EINVAL,
				    "address range \"%s\" is too small: each sandbox needs a /%d "
				    "(4 addresses), so the range must be a /%d or larger",
				    cidr, CR_NET_PAIR_PREFIX, CR_NET_PAIR_PREFIX);

	uint32_t base = ntohl(network.s_addr);
	uint32_t mask = prefix_mask(prefix);
	if (base & ~mask) {
		struct in_addr masked = { .s_addr = htonl(base & mask) };
		char buf[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &masked, buf, sizeof(buf));
		return cr_error_set(err, EINVAL,
				    "address range \"%s\" has host bits set (did you mean %s/%u?)",
				    cidr, buf, prefix);
	}
	ret->network = network;
	ret->prefix = (uint8_t)prefix;
	return 0;
}

uint32_t cr_net_range_pairs(const struct cr_net_range *r)
{
	if (r->prefix > CR_NET_PAIR_PREFIX)
		return 0;
	return UINT32_C(1) << (CR_NET_PAIR_PREFIX - r->prefix);
}

int cr_net_pair_addresses(const struct cr_net_range *r, uint32_t index, struct in_addr *ret_host,
			  struct in_addr *ret_sandbox, uint8_t *ret_prefix, struct cr_error *err)
{
	uint32_t pairs = cr_net_range_pairs(r);
	if (index >= pairs) {
		char buf[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &r->network, buf, sizeof(buf));
		return cr_error_set(err, ERANGE,
				    "sandbox address %" PRIu32 " is past the end of %s/%u (%" PRIu32
				    " pairs)",
				    index, buf, r->prefix, pairs);
	}
	uint32_t subnet = ntohl(r->network.s_addr) + (index << (32 - CR_NET_PAIR_PREFIX));
	ret_host->s_addr = htonl(subnet + 1);
	ret_sandbox->s_addr = htonl(subnet + 2);
	*ret_prefix = CR_NET_PAIR_PREFIX;
	return 0;
}

int cr_net_netns_open(pid_t pid, int *ret_fd, struct cr_error *err)
{
	if (pid <= 0)
		return cr_error_set(err, EINVAL, "no process %d", (int)pid);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* ENOENT: the pid is gone, or a zombie that has already dropped its namespaces. */
		if (errno == ENOENT || errno == ESRCH)
			return cr_error_set(
				err, ESRCH,
				"network namespace of process %d: the process has exited",
				(int)pid);
		return cr_error_errno(err, errno, "open %s", path);
	}
	*ret_fd = fd;
	return 0;
}

void cr_net_names_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

#ifdef CONFIG_CORRAL_LIBNL

#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet6.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

/* --- libnl ownership and errors --------------------------------------------------------- */

static void nl_sock_freep(struct nl_sock **s)
{
	if (*s)
		nl_socket_free(*s); /* closes its fd */
}

static void link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}

static void rtaddr_putp(struct rtnl_addr **a)
{
	if (*a)
		rtnl_addr_put(*a);
}

static void route_putp(struct rtnl_route **r)
{
	if (*r)
		rtnl_route_put(*r);
}

static void nladdr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}

static void cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}

#define _cleanup_nl_sock_ _cleanup_(nl_sock_freep)
#define _cleanup_link_ _cleanup_(link_putp)

/* libnl folds the kernel's errno into its own codes; this unfolds the ones that matter. */
static int nl_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_EXIST:
		return EEXIST;
	case NLE_NODEV:
		return ENODEV;
	case NLE_OBJ_NOTFOUND:
		return ENOENT;
	case NLE_PERM:
		return EPERM;
	case NLE_NOACCESS:
		return EACCES;
	case NLE_INVAL:
		return EINVAL;
	case NLE_RANGE:
		return ERANGE;
	case NLE_NOMEM:
		return ENOMEM;
	case NLE_BUSY:
		return EBUSY;
	case NLE_AGAIN:
		return EAGAIN;
	case NLE_INTR:
		return EINTR;
	case NLE_OPNOTSUPP:
		return EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return EAFNOSUPPORT;
	case NLE_NOADDR:
		return EADDRNOTAVAIL;
	case NLE_BAD_SOCK:
		return EBADF;
	case NLE_PROTO_MISMATCH:
		return EPROTONOSUPPORT;
	default:
		return EIO;
	}
}

/* Fills err with "<what>: <libnl's words>" and returns the errno of nlerr. */
static int nl_fail(struct cr_error *err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int nl_fail(struct cr_error *err, int nlerr, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cr_error_set(err, nl_to_errno(nlerr), "%s: %s", what, nl_geterror(nlerr));
}

/* A netlink socket in the calling thread's network namespace. */
static int route_socket(struct nl_sock **ret, struct cr_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sock = nl_socket_alloc();
	if (!sock)
		return cr_error_errno(err, ENOMEM, "allocate a netlink socket");
	int r = nl_connect(sock, NETLINK_ROUTE); /* SOCK_CLOEXEC */
	if (r < 0)
		return nl_fail(err, r, "open a rtnetlink socket");
	*ret = TAKE_PTR(sock);
	return 0;
}

/* A netlink socket stays bound to the network namespace it was made in, so a thread that
 * enters the sandbox's namespace, makes the socket and ends leaves the caller a handle on that
 * namespace without ever moving the caller. The thread's namespace ends with the thread. */
struct netns_socket_job {
	int netns_fd;
	struct nl_sock *sock;
	int setns_errno;
	struct cr_error err;
};

static void *netns_socket_thread(void *arg)
{
	struct netns_socket_job *job = arg;
	if (setns(job->netns_fd, CLONE_NEWNET) < 0) {
		job->setns_errno = errno;
		return NULL;
	}
	route_socket(&job->sock, &job->err);
	return NULL;
}

static int netns_socket(int netns_fd, struct nl_sock **ret, struct cr_error *err)
{
	struct netns_socket_job job = { .netns_fd = netns_fd };
	pthread_t thread;
	int r = pthread_create(&thread, NULL, netns_socket_thread, &job);
	if (r != 0)
		return cr_error_errno(err, r,
				      "start a thread to enter the sandbox's network namespace");
	r = pthread_join(thread, NULL);
	if (r != 0) /* cannot happen for a joinable thread we just made */
		return cr_error_errno(err, r, "join the network namespace thread");
	if (job.setns_errno)
		return cr_error_errno(err, job.setns_errno,
				      "enter the sandbox's network namespace (fd %d)", netns_fd);
	if (!job.sock) {
		if (err) {
			*err = job.err;
			cr_error_prefix(err, "in the sandbox's network namespace");
		}
		return -job.err.code;
	}
	*ret = job.sock;
	return 0;
}

/* netns_fd must be an open network namespace other than the caller's: the peer is made there
 * as "eth0", and the caller's own namespace (the host's) has an eth0 of its own. */
static int check_netns_fd(int netns_fd, struct cr_error *err)
{
	struct stat st, self;
	if (netns_fd < 0 || fstat(netns_fd, &st) < 0)
		return cr_error_errno(err, EBADF, "sandbox network namespace fd %d", netns_fd);
	int type = ioctl(netns_fd, NS_GET_NSTYPE);
	if (type < 0 || type != CLONE_NEWNET)
		return cr_error_set(err, EINVAL,
				    "fd %d is not a network namespace (expected an fd of "
				    "/proc/PID/ns/net)",
				    netns_fd);
	if (stat("/proc/thread-self/ns/net", &self) < 0)
		return cr_error_errno(err, errno, "stat /proc/thread-self/ns/net");
	if (st.st_dev == self.st_dev && st.st_ino == self.st_ino)
		return cr_error_set(err, EINVAL,
				    "fd %d is the caller's own network namespace, not a sandbox's",
				    netns_fd);
	return 0;
}

/* Spelled out rather than isalnum(), which follows the locale. */
#define TAG_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static int host_if_name(const char *tag, char name[IFNAMSIZ], struct cr_error *err)
{
	size_t n = tag ? strlen(tag) : 0;
	if (n == 0 || n > CR_NET_TAG_MAX)
		return cr_error_set(err, EINVAL,
				    "sandbox network tag \"%s\": must be 1..%zu characters",
				    tag ? tag : "", (size_t)CR_NET_TAG_MAX);
	for (size_t i = 0; i < n; i++)
		if (!strchr(TAG_CHARS, tag[i]))
			return cr_error_set(err, EINVAL,
					    "sandbox network tag \"%s\": only letters, digits, '-' "
					    "and '_' may be used",
					    tag);
	snprintf(name, IFNAMSIZ, "%s%s", CR_NET_IF_PREFIX, tag);
	return 0;
}

static int link_index(struct nl_sock *sock, const char *name, int *ret_ifindex,
		      struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sock, 0, name, &link);
	if (r < 0)
		return nl_fail(err, r, "look up interface %s", name);
	*ret_ifindex = rtnl_link_get_ifindex(link);
	return 0;
}

static int link_change(struct nl_sock *sock, const char *name, struct rtnl_link *change,
		       const char *what, struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sock, 0, name, &link);
	if (r < 0)
		return nl_fail(err, r, "look up interface %s", name);
	r = rtnl_link_change(sock, link, change, 0);
	if (r < 0)
		return nl_fail(err, r, "%s %s", what, name);
	return 0;
}

static int link_up(struct nl_sock *sock, const char *name, struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return cr_error_errno(err, ENOMEM, "bring %s up", name);
	rtnl_link_set_flags(change, IFF_UP);
	return link_change(sock, name, change, "bring up", err);
}

/* The pair carries IPv4 alone: without this the kernel gives each end an IPv6 link-local
 * address when it comes up, a second way to the host that the address plan knows nothing of.
 * Must happen while the link is down. A kernel without IPv6 has nothing to turn off. */
static int link_no_ipv6(struct nl_sock *sock, const char *name, struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return cr_error_errno(err, ENOMEM, "turn off IPv6 addresses on %s", name);
	int r = rtnl_link_inet6_set_addr_gen_mode(change, IN6_ADDR_GEN_MODE_NONE);
	if (r < 0)
		return nl_fail(err, r, "turn off IPv6 addresses on %s", name);
	r = link_change(sock, name, change, "turn off IPv6 addresses on", err);
	return r == -EAFNOSUPPORT ? 0 : r;
}

static struct nl_addr *inet_nl_addr(const struct in_addr *a, unsigned prefix)
{
	struct nl_addr *na = nl_addr_build(AF_INET, a, sizeof(*a));
	if (na)
		nl_addr_set_prefixlen(na, (int)prefix);
	return na;
}

static int addr_add(struct nl_sock *sock, const char *name, int ifindex, const struct in_addr *a,
		    unsigned prefix, struct cr_error *err)
{
	char buf[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, a, buf, sizeof(buf));
	_cleanup_(rtaddr_putp) struct rtnl_addr *ra = rtnl_addr_alloc();
	_cleanup_(nladdr_putp) struct nl_addr *local = inet_nl_addr(a, prefix);
	struct in_addr brd = { .s_addr = htonl(ntohl(a->s_addr) | ~prefix_mask(prefix)) };
	_cleanup_(nladdr_putp) struct nl_addr *broadcast = inet_nl_addr(&brd, prefix);
	if (!ra || !local || !broadcast)
		return cr_error_errno(err, ENOMEM, "add %s/%u to %s", buf, prefix, name);
	rtnl_addr_set_family(ra, AF_INET);
	rtnl_addr_set_ifindex(ra, ifindex);
	int r = rtnl_addr_set_local(ra, local);
	if (r == 0)
		rtnl_addr_set_prefixlen(ra, (int)prefix);
	/* As "ip addr add ... brd +"; a /31 has no broadcast address (RFC 3021). */
	if (r == 0 && prefix < 31)
		r = rtnl_addr_set_broadcast(ra, broadcast);
	if (r == 0)
		r = rtnl_addr_add(sock, ra, NLM_F_EXCL);
	if (r < 0)
		return nl_fail(err, r, "add %s/%u to %s", buf, prefix, name);
	return 0;
}

static int default_route_add(struct nl_sock *sock, const char *name, int ifindex,
			     const struct in_addr *gateway, struct cr_error *err)
{
	char buf[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, gateway, buf, sizeof(buf));
	const struct in_addr any = { .s_addr = INADDR_ANY };
	_cleanup_(route_putp) struct rtnl_route *route = rtnl_route_alloc();
	_cleanup_(nladdr_putp) struct nl_addr *dst = inet_nl_addr(&any, 0);
	_cleanup_(nladdr_putp) struct nl_addr *gw = inet_nl_addr(gateway, 32);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	if (!route || !dst || !gw || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		return cr_error_errno(err, ENOMEM, "add default route via %s", buf);
	}
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(route, nh); /* the route owns nh now */
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	int r = rtnl_route_set_family(route, AF_INET);
	if (r == 0)
		r = rtnl_route_set_type(route, RTN_UNICAST);
	if (r == 0)
		r = rtnl_route_set_dst(route, dst);
	if (r == 0)
		r = rtnl_route_add(sock, route, NLM_F_EXCL);
	if (r == -NLE_EXIST)
		return cr_error_set(
			err, EEXIST,
			"add default route via %s dev %s: there is a default route already", buf,
			name);
	if (r < 0)
		return nl_fail(err, r, "add default route via %s dev %s", buf, name);
	return 0;
}

/* Deletes interface name in sock's namespace; 1 if it was there, 0 if it was not. */
static int link_delete(struct nl_sock *sock, const char *name, struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *link = rtnl_link_alloc();
	if (!link)
		return cr_error_errno(err, ENOMEM, "delete %s", name);
	rtnl_link_set_name(link, name);
	int r = rtnl_link_delete(sock, link);
	if (r == -NLE_NODEV || r == -NLE_OBJ_NOTFOUND)
		return 0;
	if (r < 0)
		return nl_fail(err, r, "delete %s", name);
	return 1;
}

/* Makes the pair in one RTM_NEWLINK: the peer is created inside the target namespace under its
 * final name, so it never exists in the host's namespace (where "eth0" is usually taken) and a
 * failure leaves nothing behind. */
static int veth_add(struct nl_sock *host, struct nl_sock *sandbox, const char *host_if,
		    int netns_fd, struct cr_error *err)
{
	_cleanup_link_ struct rtnl_link *link = rtnl_link_veth_alloc();
	if (!link)
		return cr_error_errno(err, ENOMEM, "create veth %s", host_if);
	_cleanup_link_ struct rtnl_link *peer = rtnl_link_veth_get_peer(link);
	if (!peer)
		return cr_error_set(err, EIO, "create veth %s: libnl made no peer", host_if);
	rtnl_link_set_name(link, host_if);
	rtnl_link_set_name(peer, CR_NET_SANDBOX_IF);
	rtnl_link_set_ns_fd(peer, netns_fd);
	int r = rtnl_link_add(host, link, NLM_F_CREATE | NLM_F_EXCL);
	if (r == -NLE_EXIST) {
		/* Say which of the two names is taken. */
		_cleanup_link_ struct rtnl_link *found = NULL;
		if (rtnl_link_get_kernel(host, 0, host_if, &found) == 0)
			return cr_error_set(
				err, EEXIST,
				"create veth %s: an interface %s already exists on the "
				"host (another sandbox with this tag, or a leftover: see "
				"cr_net_list_veths)",
				host_if, host_if);
		if (rtnl_link_get_kernel(sandbox, 0, CR_NET_SANDBOX_IF, &found) == 0)
			return cr_error_set(
				err, EEXIST,
				"create veth %s: the sandbox's network namespace already "
				"has an interface %s",
				host_if, CR_NET_SANDBOX_IF);
	}
	if (r < 0)
		return nl_fail(err, r, "create veth %s with peer %s in the sandbox's namespace",
			       host_if, CR_NET_SANDBOX_IF);
	return 0;
}

static int veth_configure(struct nl_sock *host, struct nl_sock *sandbox, const struct cr_veth *v,
			  struct cr_error *err)
{
	int host_index, sandbox_index;
	int r = link_index(host, v->host_if, &host_index, err);
	if (r == 0)
		r = addr_add(host, v->host_if, host_index, &v->host_addr, v->prefix, err);
	if (r == 0)
		r = link_no_ipv6(host, v->host_if, err);
	if (r == 0)
		r = link_up(host, v->host_if, err);
	if (r < 0)
		return r;

	r = link_index(sandbox, v->sandbox_if, &sandbox_index, err);
	if (r == 0)
		r = addr_add(sandbox, v->sandbox_if, sandbox_index, &v->sandbox_addr, v->prefix,
			     err);
	if (r == 0)
		r = link_no_ipv6(sandbox, v->sandbox_if, err);
	if (r == 0)
		r = link_up(sandbox, v->sandbox_if, err);
	if (r == 0)
		r = default_route_add(sandbox, v->sandbox_if, sandbox_index, &v->host_addr, err);
	if (r < 0 && err)
		cr_error_prefix(err, "in the sandbox's network namespace");
	return r;
}

static int check_addresses(const struct in_addr *host, const struct in_addr *sandbox,
			   uint8_t prefix, struct cr_error *err)
{
	char h[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, host, h, sizeof(h));
	inet_ntop(AF_INET, sandbox, s, sizeof(s));
	if (prefix < 1 || prefix > 31)
		return cr_error_set(err, EINVAL, "veth prefix /%u: must be 1..31", prefix);
	uint32_t mask = prefix_mask(prefix);
	uint32_t hh = ntohl(host->s_addr), ss = ntohl(sandbox->s_addr);
	if (hh == ss || (hh & mask) != (ss & mask))
		return cr_error_set(err, EINVAL,
				    "veth addresses %s and %s: must be two addresses of one /%u", h,
				    s, prefix);
	return 0;
}

int cr_net_veth_create(const char *tag, int netns_fd, const struct in_addr *host,
		       const struct in_addr *sandbox, uint8_t prefix, struct cr_veth *ret,
		       struct cr_error *err)
{
	struct cr_veth v = { .host_addr = *host, .sandbox_addr = *sandbox, .prefix = prefix };
	int r = host_if_name(tag, v.host_if, err);
	if (r < 0)
		return r;
	snprintf(v.sandbox_if, sizeof(v.sandbox_if), "%s", CR_NET_SANDBOX_IF);
	r = check_addresses(host, sandbox, prefix, err);
	if (r < 0)
		return r;
	r = check_netns_fd(netns_fd, err);
	if (r < 0)
		return r;

	_cleanup_nl_sock_ struct nl_sock *host_sock = NULL;
	_cleanup_nl_sock_ struct nl_sock *sandbox_sock = NULL;
	r = route_socket(&host_sock, err);
	if (r < 0)
		return r;
	r = netns_socket(netns_fd, &sandbox_sock, err);
	if (r < 0)
		return r;

	r = veth_add(host_sock, sandbox_sock, v.host_if, netns_fd, err);
	if (r < 0)
		return r;
	r = veth_configure(host_sock, sandbox_sock, &v, err);
	if (r < 0) {
		struct cr_error undo_err;
		if (link_delete(host_sock, v.host_if, &undo_err) < 0 && err) {
			size_t len = strlen(err->msg);
			snprintf(err->msg + len, sizeof(err->msg) - len,
				 "; removing %s again failed too (%s)", v.host_if, undo_err.msg);
		}
		return r;
	}
	*ret = v;
	return 0;
}

int cr_net_veth_destroy(const struct cr_veth *v, struct cr_error *err)
{
	size_t n = strnlen(v->host_if, sizeof(v->host_if));
	if (n == sizeof(v->host_if) || n <= strlen(CR_NET_IF_PREFIX) ||
	    strncmp(v->host_if, CR_NET_IF_PREFIX, strlen(CR_NET_IF_PREFIX)) != 0)
		return cr_error_set(
			err, EINVAL,
			"refusing to delete interface \"%.*s\": not a sandbox veth (%s*)", (int)n,
			v->host_if, CR_NET_IF_PREFIX);
	_cleanup_nl_sock_ struct nl_sock *sock = NULL;
	int r = route_socket(&sock, err);
	if (r < 0)
		return r;
	r = link_delete(sock, v->host_if, err);
	return r < 0 ? r : 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cr_net_list_veths(char ***ret_names, size_t *ret_n, struct cr_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sock = NULL;
	int r = route_socket(&sock, err);
	if (r < 0)
		return r;
	_cleanup_(cache_freep) struct nl_cache *cache = NULL;
	r = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache);
	if (r < 0)
		return nl_fail(err, r, "list network interfaces");

	size_t n = 0, cap = (size_t)nl_cache_nitems(cache) + 1;
	char **names = calloc(cap, sizeof(*names));
	if (!names)
		return cr_error_errno(err, ENOMEM, "list network interfaces");
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *link = (struct rtnl_link *)o;
		const char *name = rtnl_link_get_name(link);
		const char *type = rtnl_link_get_type(link);
		if (!name || strncmp(name, CR_NET_IF_PREFIX, strlen(CR_NET_IF_PREFIX)) != 0 ||
		    !type || strcmp(type, "veth") != 0 || n + 1 >= cap)
			continue;
		names[n] = strdup(name);
		if (!names[n]) {
			cr_net_names_free(names);
			return cr_error_errno(err, ENOMEM, "list network interfaces");
		}
		n++;
	}
	qsort(names, n, sizeof(*names), compare_names);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

int cr_net_loopback_up(struct cr_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sock = NULL;
	int r = route_socket(&sock, err);
	if (r < 0)
		return r;
	return link_up(sock, "lo", err);
}

#else /* !CONFIG_CORRAL_LIBNL */

#define NO_LIBNL "sandbox networking is disabled in this build (CONFIG_CORRAL_LIBNL)"

int cr_net_loopback_up(struct cr_error *err)
{
	return cr_error_set(err, EOPNOTSUPP, NO_LIBNL);
}

int cr_net_veth_create(const char *tag, int netns_fd, const struct in_addr *host,
		       const struct in_addr *sandbox, uint8_t prefix, struct cr_veth *ret,
		       struct cr_error *err)
{
	(void)tag;
	(void)netns_fd;
	(void)host;
	(void)sandbox;
	(void)prefix;
	(void)ret;
	return cr_error_set(err, EOPNOTSUPP, NO_LIBNL);
}

int cr_net_veth_destroy(const struct cr_veth *v, struct cr_error *err)
{
	(void)v;
	return cr_error_set(err, EOPNOTSUPP, NO_LIBNL);
}

int cr_net_list_veths(char ***ret_names, size_t *ret_n, struct cr_error *err)
{
	(void)ret_names;
	(void)ret_n;
	return cr_error_set(err, EOPNOTSUPP, NO_LIBNL);
}

#endif /* CONFIG_CORRAL_LIBNL */
