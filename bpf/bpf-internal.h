/* bpf-internal: helpers shared by the loaders in bpf/, not part of the public API. */
#ifndef CORRAL_BPF_INTERNAL_H
#define CORRAL_BPF_INTERNAL_H

/* Routes libbpf's messages to stderr only when CORRAL_BPF_DEBUG is set: its default hint for
 * EPERM ("try raising ulimit -l") is wrong on locked-down kernels and would mislead users. */
void cr_bpf_quiet_libbpf(void);

#endif
