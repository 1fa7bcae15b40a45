// SPDX-License-Identifier: GPL-2.0
/* bpf/opencount: an LSM program on file_open that counts, per watched cgroup, the files its
 * processes open. User space puts the cgroup ids to watch in "counts" (value 0); processes
 * of other cgroups are not counted. It never denies: it only proves the pipeline and serves
 * as the "does a BPF LSM program load and run here" probe. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64); /* cgroup id */
	__type(value, __u64); /* files opened */
} counts SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(opencount_file_open, struct file *file, int ret)
{
	if (ret)
		return ret; /* never override an earlier denial */

	__u64 cgid = bpf_get_current_cgroup_id();
	__u64 *count = bpf_map_lookup_elem(&counts, &cgid);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}
