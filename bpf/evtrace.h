/*
 * evtrace.h: the record evtrace.bpf.c sends through its ring buffer, and the
 * loader's API (user space only).
 *
 * Events: sched_setaffinity calls (fexit, or the syscall's tracepoints, or the
 * raw syscall tracepoints filtered by syscall number: the requested mask is
 * read from the caller's memory at entry and sent with the result at exit),
 * or affinity changes seen at switch-out (schedtrace's ring), process exec and exit
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

/* affinity seen at the thread's switch-out (schedtrace's cpus_mask watch),
 * not at a sched_setaffinity call: caller and result unknown (0), mask the
 * effective one (the request ANDed with the cpuset's CPUs), comm the
 * thread's own, prev_mask the effective mask before */
#define EV_F_AT_SWITCH 1u

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
	__u32 flags;              /* EV_F_* */
	__u64 prev_mask[EV_MASK_WORDS]; /* affinity seen at a switch: the mask before */
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
	bool affinity_fexit_only; /* sched_setaffinity through fexit or the switch watch,
	                             never the syscall hooks */
	bool aff_switch;          /* aff_ring_fd is schedtrace's affinity ring: where fexit */
	int aff_ring_fd;          /* is refused, drain it instead of hooking the syscall
	                             (the caller then turns schedtrace's watch on) */
	bool affinity_syscalls;   /* where fexit is refused, hook the syscall (caller and
	                             result seen; every syscall slower) before the watch */
};

/* open -> configure -> load -> attach; NULL with a message in err */
struct evtrace *evtrace_open(const struct evtrace_opts *o, char *err, size_t errlen);
void evtrace_free(struct evtrace *ev);
/* "<tp_btf|raw_tp>, <fexit|syscall tracepoints|raw syscalls|no affinity|
 * affinity seen at switch-out>":
 * how the programs attached, and how sched_setaffinity is caught */
const char *evtrace_mode(const struct evtrace *ev);
/* true when affinity changes come from schedtrace's ring (the caller must
 * turn its watch on: schedtrace_watch_affinity) */
bool evtrace_affinity_at_switch(const struct evtrace *ev);
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
