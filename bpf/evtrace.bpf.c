// SPDX-License-Identifier: GPL-2.0
/*
 * evtrace.bpf.c: scheduler-relevant events through a ring buffer:
 * sched_setaffinity calls, exec and exit of target processes, OOM victims
 * and cgroup attaches.
 *
 * DESIGN
 * sched_setaffinity has no scheduler tracepoint. Where BPF trampolines work
 * an fexit program on the kernel's sched_setaffinity() reports it (no cost
 * to any other syscall). Elsewhere the raw syscall tracepoints fire on every
 * syscall, so their programs test the syscall number first and return: that
 * compare is the whole cost for other syscalls (sys_exit reads the number
 * from pt_regs: a direct load under tp_btf). At entry the pid,
 * length and up to 64 bits of the requested mask (read from the caller's
 * memory with bpf_probe_read_user) are parked in `pending` by caller tid;
 * at exit they are sent with the result. oom:mark_victim passes the task on
 * kernels >= 6.8 and only its pid before: the loader tells which through
 * rodata (oom_has_task) after looking at the tracepoint's BTF prototype.
 * Memory figures are the ones the kernel's own trace event prints (pages of
 * total_vm and the rss counters, converted to kB with 4 KiB pages).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "bpf/evtrace.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 filter_mode = ST_FILTER_NONE;
const volatile __u64 target_cgid = 0;
const volatile __s32 target_level = 0;
const volatile long nr_setaffinity = -1;
const volatile bool oom_has_task = true;
const volatile __u32 page_shift = 12;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);          /* pid_max / 64: shared with schedtrace */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} target_pids SEC(".maps");

struct pend {
	__u32 pid;
	__u32 len;
	__u64 mask[EV_MASK_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct pend);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

#include "bpf/filter.bpf.h"

/* flavors for older kernels */
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));
struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));
struct mm_struct___new {
	struct percpu_counter rss_stat[4];
} __attribute__((preserve_access_index));
struct pt_regs___edge_arm64 {
	int syscallno;
} __attribute__((preserve_access_index));

static __always_inline struct ev_rec *ev_new(__u32 type)
{
	struct ev_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r) {
		__u32 zero = 0;
		__u64 *l = bpf_map_lookup_elem(&lost, &zero);
		if (l)
			(*l)++;
		return NULL;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->type = type;
	r->ts_ns = bpf_ktime_get_ns();
	return r;
}

/* sched_setaffinity(pid, len, user_mask_ptr) entered: keep its arguments
 * and the mask it asks for until the syscall returns */
static __always_inline int aff_enter(__u32 pid, __u32 len, const void *uptr)
{
	struct pend p = {};
	__u32 key = (__u32)bpf_get_current_pid_tgid();

	p.pid = pid;
	p.len = len;
	if (p.len >= 8)
		bpf_probe_read_user(&p.mask, 8, uptr);
	else if (p.len >= 4)
		bpf_probe_read_user(&p.mask, 4, uptr);
	bpf_map_update_elem(&pending, &key, &p, BPF_ANY);
	return 0;
}

static __always_inline int on_sys_enter(struct pt_regs *regs, long id)
{
	if (id != nr_setaffinity)
		return 0;
	return aff_enter((__u32)PT_REGS_PARM1_CORE_SYSCALL(regs), (__u32)PT_REGS_PARM2_CORE_SYSCALL(regs),
			 (const void *)PT_REGS_PARM3_CORE_SYSCALL(regs));
}

static __always_inline int on_sys_exit(long nr, long ret)
{
	struct pend *p;
	struct ev_rec *r;
	__u64 pt;
	__u32 key;

	if (nr != nr_setaffinity)
		return 0;
	pt = bpf_get_current_pid_tgid();
	key = (__u32)pt;
	p = bpf_map_lookup_elem(&pending, &key);
	if (!p)
		return 0;
	r = ev_new(EV_AFFINITY);
	if (r) {
		r->pid = p->pid ? p->pid : key;
		r->caller = key;
		r->tgid = p->pid ? 0 : (__u32)(pt >> 32);
		r->result = (__s32)ret;
		r->mask[0] = p->mask[0];
		r->mask_len = p->len;
		bpf_get_current_comm(r->comm, sizeof(r->comm));
		bpf_ringbuf_submit(r, 0);
	}
	bpf_map_delete_elem(&pending, &key);
	return 0;
}

static __always_inline long regs_syscall_nr(struct pt_regs *regs, bool btf)
{
#if defined(__TARGET_ARCH_x86)
	return btf ? (long)regs->orig_ax : (long)BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	struct pt_regs___edge_arm64 *r = (void *)regs;
	return btf ? (long)r->syscallno : (long)BPF_CORE_READ(r, syscallno);
#else
	return -1;
#endif
}

static __always_inline int on_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	__u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
	struct ev_rec *r;

	if (!task_is_target(p, pid, tgid, false))
		return 0;
	r = ev_new(EV_EXEC);
	if (!r)
		return 0;
	r->pid = pid;
	r->tgid = tgid;
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), &p->comm);
	bpf_probe_read_kernel_str(r->path, sizeof(r->path), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

static __always_inline int on_exit(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
	struct ev_rec *r;

	if (pid != tgid || !task_is_target(p, pid, tgid, false))
		return 0; /* threads other than the leader: not a process exit */
	r = ev_new(EV_EXIT);
	if (!r)
		return 0;
	r->pid = pid;
	r->tgid = tgid;
	r->result = BPF_CORE_READ(p, exit_code);
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), &p->comm);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

static __always_inline __u64 pages_kb(__u64 pages)
{
	return page_shift >= 10 ? pages << (page_shift - 10) : pages;
}

static __always_inline int on_oom(__u64 arg0)
{
	struct ev_rec *r = ev_new(EV_OOM);
	struct task_struct *p;
	struct mm_struct *mm;

	if (!r)
		return 0;
	if (!oom_has_task) {
		r->pid = (__u32)arg0; /* comm and figures: user space, from /proc */
		bpf_ringbuf_submit(r, 0);
		return 0;
	}
	p = (struct task_struct *)arg0;
	r->pid = BPF_CORE_READ(p, pid);
	r->tgid = BPF_CORE_READ(p, tgid);
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), &p->comm);
	r->oom_score_adj = BPF_CORE_READ(p, signal, oom_score_adj);
	mm = BPF_CORE_READ(p, mm);
	if (mm) {
		r->total_vm_kb = pages_kb(BPF_CORE_READ(mm, total_vm));
		r->pgtables_kb = (__u64)BPF_CORE_READ(mm, pgtables_bytes.counter) >> 10;
		if (bpf_core_type_exists(struct mm_rss_stat___old)) {
			struct mm_struct___old *o = (void *)mm;
			r->file_rss_kb = pages_kb(BPF_CORE_READ(o, rss_stat.count[0].counter));
			r->anon_rss_kb = pages_kb(BPF_CORE_READ(o, rss_stat.count[1].counter));
			r->shmem_rss_kb = pages_kb(BPF_CORE_READ(o, rss_stat.count[3].counter));
		} else {
			struct mm_struct___new *n = (void *)mm;
			r->file_rss_kb = pages_kb(BPF_CORE_READ(n, rss_stat[0].count));
			r->anon_rss_kb = pages_kb(BPF_CORE_READ(n, rss_stat[1].count));
			r->shmem_rss_kb = pages_kb(BPF_CORE_READ(n, rss_stat[3].count));
		}
	}
	bpf_ringbuf_submit(r, 0);
	return 0;
}

static __always_inline int on_attach(struct cgroup *dst, const char *path, struct task_struct *p)
{
	struct ev_rec *r = ev_new(EV_CGROUP_ATTACH);

	if (!r)
		return 0;
	r->pid = BPF_CORE_READ(p, pid);
	r->tgid = BPF_CORE_READ(p, tgid);
	r->cg_id = BPF_CORE_READ(dst, kn, id);
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), &p->comm);
	bpf_probe_read_kernel_str(r->path, sizeof(r->path), path);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* sched_setaffinity on kernels with BPF trampolines: fexit on the kernel
 * function sees the copied mask and the result at once, and costs nothing
 * to other syscalls (the loader falls back to the syscall tracepoints) */
SEC("fexit/sched_setaffinity")
int BPF_PROG(aff_fexit, pid_t pid, const struct cpumask *in_mask, long ret)
{
	struct ev_rec *r = ev_new(EV_AFFINITY);
	__u64 pt = bpf_get_current_pid_tgid();

	if (!r)
		return 0;
	r->pid = pid ? (__u32)pid : (__u32)pt;
	r->caller = (__u32)pt;
	r->tgid = pid ? 0 : (__u32)(pt >> 32);
	r->result = (__s32)ret;
	r->mask[0] = BPF_CORE_READ(in_mask, bits[0]);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* the per-syscall tracepoints (syscalls:sys_{enter,exit}_sched_setaffinity):
 * they fire for this one syscall only, so other syscalls pay nothing. Their
 * record (tracefs format): common fields (8 bytes), int __syscall_nr at 8,
 * the arguments (or the return value) as 8-byte fields from 16. */
struct sc_enter_rec {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct sc_exit_rec {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_sched_setaffinity")
int aff_enter_tp(struct sc_enter_rec *ctx)
{
	return aff_enter((__u32)ctx->args[0], (__u32)ctx->args[1], (const void *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_sched_setaffinity")
int aff_exit_tp(struct sc_exit_rec *ctx)
{
	return on_sys_exit(nr_setaffinity, (long)ctx->ret);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_btf, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_btf, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs_syscall_nr(regs, true), ret);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exit_btf, struct task_struct *p)
{
	return on_exit(p);
}

SEC("tp_btf/mark_victim")
int BPF_PROG(oom_btf, __u64 arg0)
{
	return on_oom(arg0);
}

SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(attach_btf, struct cgroup *dst, const char *path, struct task_struct *p)
{
	return on_attach(dst, path, p);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter_raw, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit_raw, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs_syscall_nr(regs, false), ret);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(exit_raw, struct task_struct *p)
{
	return on_exit(p);
}

SEC("raw_tp/mark_victim")
int BPF_PROG(oom_raw, __u64 arg0)
{
	return on_oom(arg0);
}

SEC("raw_tp/cgroup_attach_task")
int BPF_PROG(attach_raw, struct cgroup *dst, const char *path, struct task_struct *p)
{
	return on_attach(dst, path, p);
}
