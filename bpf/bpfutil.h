/*
 * bpfutil.h: what the BPF loaders of bpf/ share: libbpf's log captured
 * instead of printed, the tp_btf probe, and run-time statistics of a program.
 */
#ifndef BPF_BPFUTIL_H
#define BPF_BPFUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <linux/types.h>

/* Route libbpf's messages into a buffer (idempotent; nothing is printed).
 * bpfutil_last_log copies the last warning line libbpf gave, "" if none. */
void bpfutil_quiet_libbpf(void);
void bpfutil_last_log(char *buf, size_t len);
/* true when the kernel can attach a tp_btf program to tracepoint `name` */
bool bpfutil_probe_tp_btf(const char *name);
/* run_time_ns and run_cnt of a loaded program (0 when bpf_stats are off) */
int bpfutil_prog_stats(int prog_fd, __u64 *run_time_ns, __u64 *run_cnt);
/* the same summed over progs[0..n) (libbpf programs; those not loaded count 0) */
struct bpf_program;
void bpfutil_progs_stats(struct bpf_program *const *progs, size_t n, __u64 *run_time_ns, __u64 *run_cnt);
/* the BTF file the loaders will use: path if given, else EDGE_VMLINUX_BTF
 * from the environment, else NULL (the kernel's). Checks it is readable:
 * returns 0, or a negative errno with a message in err. */
int bpfutil_btf_path(const char *path, const char **out, char *err, size_t errlen);

#endif
