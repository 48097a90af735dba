/*
 * evtrace.h: the record evtrace.bpf.c sends through its ring buffer, and the
 * loader's API (user space only).
 *
 * Events: sched_setaffinity calls (raw syscall tracepoints sys_enter/sys_exit
 * filtered by syscall number; the requested mask is read from the caller's
 * memory at entry and sent with the result at exit), process exec and exit
 * (of target tasks), oom:mark_victim (always) and cgroup:cgroup_attach_task
 * (always). Records are fixed-size; user space drains the ring once per tick.
 */
#ifndef BPF_EVTRACE_H
#define BPF_EVTRACE_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#include "bpf/schedtrace.h"

#define EV_COMM_LEN 16
#define EV_PATH_LEN 128
#define EV_MASK_WORDS 1   /* CPUs 0..63 */

enum ev_type {
	EV_AFFINITY = 1,
	EV_EXEC = 2,
	EV_EXIT = 3,
	EV_OOM = 4,
	EV_CGROUP_ATTACH = 5,
};

struct ev_rec {
	__u32 type;               /* enum ev_type */
	__u32 pid;                /* subject task (affinity: tid given, 0 = caller) */
	__u32 tgid;
	__u32 caller;             /* affinity: tid of the caller */
	__s32 result;             /* affinity: return value; exit: exit_code */
	__s32 oom_score_adj;
	__u64 ts_ns;              /* bpf_ktime_get_ns */
	__u64 mask[EV_MASK_WORDS];
	__u32 mask_len;           /* affinity: len argument */
	__u32 pad;
	__u64 cg_id;              /* cgroup attach: destination cgroup id */
	__u64 total_vm_kb, anon_rss_kb, file_rss_kb, shmem_rss_kb, pgtables_kb;
	char comm[EV_COMM_LEN];
	char path[EV_PATH_LEN];   /* exec filename, cgroup attach path */
};

#ifndef __bpf__
#include <stdbool.h>
#include <stddef.h>

struct evtrace;

struct evtrace_opts {
	enum st_filter filter;
	__u64 cgid;
	int cg_level;
	int pids_fd;              /* share schedtrace's pid set; -1: own (empty) map */
	const char *btf_path;
	bool force_raw_tp;
	bool no_fexit;            /* tests: skip fexit/sched_setaffinity */
	bool no_syscall_tp;       /* tests: skip the per-syscall tracepoints */
	bool no_affinity;         /* no sched_setaffinity programs at all */
	bool affinity_fexit_only; /* sched_setaffinity through fexit or not at all */
};

/* open -> configure -> load -> attach; NULL with a message in err */
struct evtrace *evtrace_open(const struct evtrace_opts *o, char *err, size_t errlen);
void evtrace_free(struct evtrace *ev);
/* "<tp_btf|raw_tp>, <fexit|syscall tracepoints|raw syscalls|no affinity>":
 * how the programs attached, and how sched_setaffinity is caught */
const char *evtrace_mode(const struct evtrace *ev);
/* true when open mounted tracefs (at /sys/kernel/tracing) for the syscall
 * tracepoints; it is left mounted */
bool evtrace_mounted_tracefs(const struct evtrace *ev);
/* drain the ring buffer without waiting: cb for every record; returns the
 * number of records or negative errno. */
int evtrace_poll(struct evtrace *ev, void (*cb)(const struct ev_rec *r, void *arg), void *arg);
/* records the kernel could not put in the ring (full), cumulative */
__u64 evtrace_lost(struct evtrace *ev);
/* run-time statistics (kernel.bpf_stats_enabled) of the programs that catch
 * sched_setaffinity: with raw syscalls they run on every syscall of the
 * machine; otherwise on that syscall only */
int evtrace_syscall_stats(const struct evtrace *ev, __u64 *run_time_ns, __u64 *run_cnt);
#endif

#endif
