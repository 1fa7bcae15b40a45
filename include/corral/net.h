/* runtime/net: sandbox networking. A sandbox has its own network namespace: loopback only by
 * default, or, with egress, one veth pair whose host end is "cr-<tag>" in the caller's network
 * namespace and whose sandbox end is "eth0" inside the sandbox's, with one /30 of a host-local
 * IPv4 range and a default route via the host end. The sandbox's address is its identity on the
 * host (the broker goes by source address). Everything goes over rtnetlink (libnl-route-3);
 * nothing here forwards, NATs, or touches ip_forward, iptables or nftables.
 * With CONFIG_CORRAL_LIBNL off, the rtnetlink calls fail with -EOPNOTSUPP; the address plan
 * (ranges and pairs) is plain arithmetic and always built. See docs/networking.md. */
#ifndef CORRAL_NET_H
#define CORRAL_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "corral/error.h"

/* Host-side interface names are CR_NET_IF_PREFIX + tag; a tag is 1..CR_NET_TAG_MAX characters
 * of [A-Za-z0-9_-], so the name fits IFNAMSIZ. */
#define CR_NET_IF_PREFIX "cr-"
#define CR_NET_TAG_MAX (IFNAMSIZ - 1 - (sizeof(CR_NET_IF_PREFIX) - 1))
/* The sandbox end's name inside the sandbox's network namespace. */
#define CR_NET_SANDBOX_IF "eth0"
/* Each sandbox gets one /30 of the range: network, host end, sandbox end, broadcast. */
#define CR_NET_PAIR_PREFIX 30

/* An IPv4 range used only on this host, e.g. 10.213.0.0/16 (network has no host bits set). */
struct cr_net_range {
	struct in_addr network;
	uint8_t prefix; /* 0..CR_NET_PAIR_PREFIX */
};

/* Parses "a.b.c.d/N" (dotted quad, decimal prefix, nothing else). -EINVAL, with the reason, for
 * anything else: not IPv4, host bits set, or a prefix too long to hold one /30. */
int cr_net_range_parse(const char *cidr, struct cr_net_range *ret, struct cr_error *err);

/* How many sandbox pairs (/30s) the range holds. */
uint32_t cr_net_range_pairs(const struct cr_net_range *r);

/* The index-th /30 of the range: its first usable address for the host end, its second for the
 * sandbox end, and the prefix (30). -ERANGE when index >= cr_net_range_pairs(r). */
int cr_net_pair_addresses(const struct cr_net_range *r, uint32_t index, struct in_addr *ret_host,
			  struct in_addr *ret_sandbox, uint8_t *ret_prefix, struct cr_error *err);

/* Opens the network namespace of process pid (/proc/PID/ns/net, O_CLOEXEC); the fd is the
 * caller's. -ESRCH when the process has exited (a zombie no longer has namespaces). */
int cr_net_netns_open(pid_t pid, int *ret_fd, struct cr_error *err);

/* Brings "lo" up in the calling thread's network namespace (127.0.0.1 and ::1 become usable). */
int cr_net_loopback_up(struct cr_error *err);

struct cr_veth {
	char host_if[IFNAMSIZ]; /* "cr-<tag>", in the caller's network namespace */
	char sandbox_if[IFNAMSIZ]; /* "eth0", in the sandbox's */
	struct in_addr host_addr, sandbox_addr;
	uint8_t prefix;
};

/* Creates the pair from the caller's network namespace in one request: the host end "cr-<tag>"
 * here, the peer made directly inside the network namespace of netns_fd (an fd of
 * /proc/PID/ns/net; never the caller's own) as "eth0". Assigns host/prefix and sandbox/prefix,
 * brings both ends up, and adds a default route via host inside the sandbox's namespace. The
 * calling thread never changes namespace: a short-lived thread enters the sandbox's namespace
 * only to open a netlink socket there. On any failure the pair is deleted again. Errors: -EINVAL
 * (bad tag, addresses, or fd that is not another network namespace), -EBADF, -EEXIST (the host
 * name is taken, the namespace already has an eth0 or a default route), or the kernel's. */
int cr_net_veth_create(const char *tag, int netns_fd, const struct in_addr *host,
		       const struct in_addr *sandbox, uint8_t prefix, struct cr_veth *ret,
		       struct cr_error *err);

/* Deletes the host end, which takes the sandbox end with it. A pair that is already gone
 * (ENODEV: its namespace died and took it) is not an error. Refuses a name without the "cr-"
 * prefix. */
int cr_net_veth_destroy(const struct cr_veth *v, struct cr_error *err);

/* The names of the veth interfaces in the caller's network namespace whose name starts with
 * "cr-" (leftovers after a crash: delete them with cr_net_veth_destroy), sorted. *ret_names is
 * NULL-terminated and owned by the caller: free it with cr_net_names_free(). */
int cr_net_list_veths(char ***ret_names, size_t *ret_n, struct cr_error *err);

/* Frees a list from cr_net_list_veths (NULL is fine). */
void cr_net_names_free(char **names);

#endif
