// SPDX-License-Identifier: GPL-2.0
/*
 * schedtrace.bpf.c: per-CPU busy/idle split into target and other, per-thread
 * on-CPU time and switches, run-queue latency histograms and migrations, all
 * aggregated in per-CPU maps so that no event costs anything in user space.
 *
 * DESIGN
 * sched_switch is the hot path (every context switch of the machine), so it
 * does one classification per event: the task switched IN (next) is sorted
 * into idle / other / target and the class is kept in this CPU's record with
 * the switch time. At the next switch on this CPU the time since then is the
 * slice of the task that now leaves (prev), and its class is already known:
 * no second lookup. Target tasks alone touch their thread records;
 * untraced tasks cost the classification plus the per-CPU counters.
 * Thread records (tp_btf): a direct-mapped table of slots indexed by tid
 * (thr_slot, tagged with the tid and the task's start time) holds them where
 * a thread's slot is free; a thread whose slot another live thread holds
 * keeps its record in its task storage instead. A slot is an inlined array
 * access, where bpf_task_storage_get is a helper call into the local-storage
 * code: with every task traced, that call was the largest part of a switch's
 * cost (with retpolines and Safe RET on this build machine, ~50 ns of wall
 * time per switch). A slot is claimed with a compare-and-swap on its tag,
 * freed at its thread's last switch-out (TASK_DEAD); each thread has one
 * record, in a slot or in task storage, never both (a claim checks).
 * Classification: filter NONE -> every non-idle task is the target; PIDS ->
 * one bit of the target_pids bitmap (an inlined array load); CGROUP -> the
 * task's cgroup v2 ancestor at the target's level has the target's id.
 * Each program exists twice: tp_btf (direct, BTF-checked loads) and raw_tp
 * (BPF_CORE_READ). The loader enables one set.
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
/* run-queue waits from the scheduler's own sched_info (set by the loader
 * where the kernel keeps it): no wakeup programs at all */
const volatile bool use_sched_info = false;
/* advanced by user space each time it changes target_pids */
volatile __u32 filter_gen = 0;
/* thread records in task storage (tp_btf; set by the loader) or in the
 * per-CPU LRU hash */
const volatile bool thr_task_storage = false;
/* thread records in thr_slot where a thread's slot is free (tp_btf, with
 * thr_task_storage for the rest; set by the loader), slot_mask = slots - 1 */
const volatile bool thr_slots = false;
const volatile __u32 slot_mask = 0;
/* set by user space: report a target thread's cpus_mask change seen at its
 * switch-out through aff_ring (tp_btf only) */
volatile bool aff_watch = false;

#define TASK_RUNNING 0
#define TASK_DEAD 0x80

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_cpu);
} cpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX_CPUS);
	__type(key, __u32);
	__type(value, __u64);
} mig_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct st_thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct st_thread);
} thr_ts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct st_thread);
} exited SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);              /* a power of two, set by the loader */
	__type(key, __u32);
	__type(value, struct st_slot);
} thr_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} aff_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} start_ts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);          /* pid_max / 64, set by the loader */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} target_pids SEC(".maps");

static const struct st_thread zero_thread;

/* CONFIG_SCHED_INFO: a task put on a run queue gets sched_info.last_queued
 * = that rq's clock; when it is switched in, the kernel adds rq clock -
 * last_queued to its run_delay and clears last_queued, just after the
 * sched_switch tracepoint. So at the tracepoint the wait of the task being
 * switched in is this CPU's rq clock (brought up to date by __schedule
 * before picking it) minus its last_queued: the kernel's own figure. The rq
 * is reached through a fair task's cfs_rq (CONFIG_FAIR_GROUP_SCHED): the
 * per-CPU `runqueues` symbol needs CONFIG_KALLSYMS_ALL, which kernels such
 * as this CI guest's lack. */
struct rq___edge {
	unsigned long long clock;
} __attribute__((preserve_access_index));
struct cfs_rq___edge {
	struct rq___edge *rq;
} __attribute__((preserve_access_index));
struct sched_entity___edge {
	struct cfs_rq___edge *cfs_rq;
} __attribute__((preserve_access_index));
struct sched_info___edge {
	unsigned long long last_queued;
} __attribute__((preserve_access_index));
struct task_struct___edge {
	unsigned int policy;
	struct sched_entity___edge se;
	struct sched_info___edge sched_info;
} __attribute__((preserve_access_index));

#define SCHED_NORMAL 0
#define SCHED_BATCH 3
#define SCHED_IDLE 5

/* older kernels: task_struct.state, cgroup.ancestor_ids[] */
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 rq_bucket(__u64 ns)
{
	__u64 us = ns / 1000;
	__u32 b = 0;

	/* b = bit length of us: 0 for 0, 1 for 1, 2 for 2..3, ... */
	if (us >= (1ULL << 16)) { b += 16; us >>= 16; }
	if (us >= (1ULL << 8)) { b += 8; us >>= 8; }
	if (us >= (1ULL << 4)) { b += 4; us >>= 4; }
	if (us >= (1ULL << 2)) { b += 2; us >>= 2; }
	if (us >= (1ULL << 1)) { b += 1; us >>= 1; }
	b += (__u32)us;
	return b < ST_RQ_BUCKETS ? b : ST_RQ_BUCKETS - 1;
}

#include "bpf/filter.bpf.h"

static __always_inline __u32 classify(struct task_struct *t, __u32 pid, __u32 tgid, bool btf)
{
	if (pid == 0)
		return ST_CLASS_IDLE;
	return task_is_target(t, pid, tgid, btf) ? ST_CLASS_TARGET : ST_CLASS_OTHER;
}

/* t's slot (tp_btf only: start_time is read directly) */
static __always_inline struct st_slot *slot_of(__u32 tid)
{
	__u32 idx = tid & slot_mask;

	return bpf_map_lookup_elem(&thr_slot, &idx);
}

static __always_inline bool slot_is(const struct st_slot *sl, __u32 tid, struct task_struct *t)
{
	return sl->tid == tid && sl->start == t->start_time;
}

/* the record of target thread t, made on first use. tp_btf: its slot
 * (an array access) or, where another thread holds the slot, its task
 * storage (a pointer walk from the task and a helper call); raw_tp: this
 * CPU's copy in the LRU hash */
static __always_inline struct st_thread *thread_get(__u32 tid, struct task_struct *t, bool btf)
{
	struct st_thread *th;

	if (btf && thr_slots) {
		struct st_slot *sl = slot_of(tid);
		if (sl) {
			if (slot_is(sl, tid, t))
				return &sl->rec;
			/* free, and t has no record elsewhere: claim it (freed
			 * slots are zeroed before their tag is cleared) */
			if (!sl->tid && !bpf_task_storage_get(&thr_ts, t, 0, 0) &&
			    __sync_val_compare_and_swap(&sl->tid, 0, (__u64)tid) == 0) {
				sl->start = t->start_time;
				th = &sl->rec;
				goto fill;
			}
		}
	}
	if (btf && thr_task_storage) {
		th = bpf_task_storage_get(&thr_ts, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!th || th->comm_ts)
			return th;
	} else {
		th = bpf_map_lookup_elem(&threads, &tid);
		if (th)
			return th;
		bpf_map_update_elem(&threads, &tid, &zero_thread, BPF_NOEXIST);
		th = bpf_map_lookup_elem(&threads, &tid);
		if (!th)
			return NULL;
	}
fill:
	th->tgid = btf ? t->tgid : BPF_CORE_READ(t, tgid);
	bpf_probe_read_kernel_str(th->comm, sizeof(th->comm), &t->comm);
	th->comm_ts = bpf_ktime_get_ns();
	return th;
}

/* the record of t if it has one */
static __always_inline struct st_thread *thread_find(__u32 tid, struct task_struct *t, bool btf)
{
	if (btf && thr_slots) {
		struct st_slot *sl = slot_of(tid);
		if (sl && slot_is(sl, tid, t))
			return &sl->rec;
	}
	if (btf && thr_task_storage)
		return bpf_task_storage_get(&thr_ts, t, 0, 0);
	return bpf_map_lookup_elem(&threads, &tid);
}

/* Affinity changes without a syscall hook: a target thread's cpus_mask (the
 * effective mask: what sched_setaffinity asked for within its cpuset, also
 * changed by cpuset writes and CPU hotplug) compared at each switch-out with
 * the one its record saw last. The change is reported when the thread next
 * leaves a CPU after it, so a sleeping thread's when it has run again. */
static __always_inline void aff_check(struct task_struct *t, __u32 tid, struct st_thread *th)
{
	__u64 m = t->cpus_mask.bits[0];
	struct ev_rec *r;

	if (m == th->cpus_mask)
		return;
	if (th->cpus_mask) {
		r = bpf_ringbuf_reserve(&aff_ring, sizeof(*r), 0);
		if (r) {
			__builtin_memset(r, 0, sizeof(*r));
			r->type = EV_AFFINITY;
			r->flags = EV_F_AT_SWITCH;
			r->ts_ns = bpf_ktime_get_ns();
			r->pid = tid;
			r->tgid = th->tgid;
			r->mask[0] = m;
			r->prev_mask[0] = th->cpus_mask;
			__builtin_memcpy(r->comm, th->comm, sizeof(r->comm));
			bpf_ringbuf_submit(r, 0);
		}
	}
	th->cpus_mask = m;
}

/* t's last switch-out: free its slot if it holds one. The tag goes to
 * ST_SLOT_DYING first, so that no reader takes the record being zeroed for
 * t's, and no claimer the slot before it is zeroed */
static __always_inline void slot_free(__u32 tid, struct task_struct *t)
{
	struct st_slot *sl = slot_of(tid);

	if (!sl || sl->start != t->start_time)
		return;
	if (__sync_val_compare_and_swap(&sl->tid, (__u64)tid, ST_SLOT_DYING) != (__u64)tid)
		return;
	__builtin_memset(&sl->rec, 0, sizeof(sl->rec));
	sl->start = 0;
	__sync_val_compare_and_swap(&sl->tid, ST_SLOT_DYING, 0);
}

static __always_inline long task_state(struct task_struct *t, bool btf)
{
	if (bpf_core_field_exists(t->__state))
		return btf ? t->__state : BPF_CORE_READ(t, __state);
	if (btf)
		return ((struct task_struct___old *)t)->state;
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}

/* the wakeup time of a task: task storage under tp_btf (no hashing, no
 * lock once created), an LRU hash by tid under raw_tp */
static __always_inline void start_set(struct task_struct *t, __u32 pid, __u64 now, bool btf)
{
	if (btf) {
		__u64 *v = bpf_task_storage_get(&start_ts, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (v)
			*v = now;
	} else {
		bpf_map_update_elem(&start, &pid, &now, BPF_ANY);
	}
}

/* take (and clear) the wakeup time; 0 if none */
static __always_inline __u64 start_take(struct task_struct *t, __u32 pid, bool btf)
{
	__u64 ts = 0;

	if (btf) {
		__u64 *v = bpf_task_storage_get(&start_ts, t, 0, 0);
		if (v) {
			ts = *v;
			*v = 0;
		}
	} else {
		__u64 *v = bpf_map_lookup_elem(&start, &pid);
		if (v) {
			ts = *v;
			bpf_map_delete_elem(&start, &pid);
		}
	}
	return ts;
}

static __always_inline bool is_fair(struct task_struct___edge *e, bool btf)
{
	unsigned int pol = btf ? e->policy : BPF_CORE_READ(e, policy);

	return pol == SCHED_NORMAL || pol == SCHED_BATCH || pol == SCHED_IDLE;
}

/* the wait of next, about to run here, since it was queued; false if it
 * was not queued, or no clock of this rq is at hand (neither next nor prev
 * is a fair task), or the kernel keeps no sched_info */
static __always_inline bool queued_wait(struct task_struct *prev, struct task_struct *next, bool btf, __u64 *wait)
{
	struct task_struct___edge *n = (void *)next, *p = (void *)prev, *via;
	__u64 lq, now;

	if (!bpf_core_field_exists(n->sched_info) || !bpf_core_field_exists(n->se.cfs_rq))
		return false;
	lq = btf ? n->sched_info.last_queued : BPF_CORE_READ(n, sched_info.last_queued);
	if (!lq)
		return false;
	via = is_fair(n, btf) ? n : is_fair(p, btf) ? p : NULL;
	if (!via)
		return false;
	if (btf) {
		struct cfs_rq___edge *cfs = via->se.cfs_rq;
		struct rq___edge *rq = cfs ? cfs->rq : NULL;
		if (!rq)
			return false;
		now = rq->clock;
	} else {
		now = BPF_CORE_READ(via, se.cfs_rq, rq, clock);
	}
	if (!now)
		return false;
	*wait = now > lq ? now - lq : 0;
	return true;
}

static __always_inline __u64 runtime(struct task_struct *t, bool btf)
{
	return btf ? t->se.sum_exec_runtime : BPF_CORE_READ(t, se.sum_exec_runtime);
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev,
				     struct task_struct *next, bool btf)
{
	__u32 zero = 0;
	struct st_cpu *c = bpf_map_lookup_elem(&cpu_stats, &zero);
	__u32 prev_pid, next_pid, next_tgid, next_class, prev_class;
	__u64 now = 0;

	if (!c)
		return 0;
	c->switches++;
	prev_class = c->curr_class;
	prev_pid = btf ? prev->pid : BPF_CORE_READ(prev, pid);
	__u64 rt = 0, delta = 0;
	if (prev_pid == c->curr_tid) {
		/* the class and start belong to the task switched in last time;
		 * classified under an older pid set: classify it again */
		if (prev_pid && c->curr_gen != filter_gen) {
			__u32 prev_tgid = btf ? prev->tgid : BPF_CORE_READ(prev, tgid);
			prev_class = classify(prev, prev_pid, prev_tgid, btf);
		}
		if (prev_class != ST_CLASS_IDLE) {
			rt = runtime(prev, btf);
			delta = rt > c->curr_rt0 ? rt - c->curr_rt0 : 0;
		}
	} else if (prev_pid) {
		/* its switch-in was not seen here (it happens for some freshly
		 * forked tasks): classify it now and take the slice from the
		 * scheduler's own mark (se.prev_sum_exec_runtime, set when a fair
		 * task is picked); a span over 1 s is not a slice: skip it */
		__u32 prev_tgid = btf ? prev->tgid : BPF_CORE_READ(prev, tgid);
		__u64 mark = btf ? prev->se.prev_sum_exec_runtime : BPF_CORE_READ(prev, se.prev_sum_exec_runtime);
		prev_class = classify(prev, prev_pid, prev_tgid, btf);
		rt = runtime(prev, btf);
		delta = rt > mark && rt - mark < 1000000000ULL ? rt - mark : 0;
		c->missed_switch_in++;
	} else {
		prev_class = ST_CLASS_IDLE;
	}
	if (prev_class != ST_CLASS_IDLE) {
		c->busy_ns[prev_class == ST_CLASS_TARGET ? ST_CLASS_TARGET : ST_CLASS_OTHER] += delta;
		if (prev_class == ST_CLASS_TARGET) {
			struct st_thread *th = thread_get(prev_pid, prev, btf);
			long state = task_state(prev, btf);
			bool invol = preempt || state == TASK_RUNNING;
			if (th) {
				__u32 b = prev_pid == c->curr_tid ? c->curr_bucket : 0;
				th->oncpu_ns += delta;
				if (invol)
					th->invol++;
				else
					th->vol++;
				/* its wait before this slice, measured at switch-in */
				if (b) {
					__u32 idx = b - 1;
					asm volatile("" : "+r"(idx));
					if (idx < ST_RQ_BUCKETS) {
						th->rq_count++;
						th->rq_hist[idx]++;
					}
				}
				if (btf && thr_task_storage) {
					th->last_cpu = (__s32)bpf_get_smp_processor_id();
					if (aff_watch)
						aff_check(prev, prev_pid, th);
					/* its last switch: the task storage goes with
					 * the task, so keep the final figures for
					 * user space's next read */
					if (state == TASK_DEAD) {
						bpf_map_update_elem(&exited, &prev_pid, th, BPF_ANY);
						if (thr_slots)
							slot_free(prev_pid, prev);
					}
				}
			}
			/* preempted: back on the run queue from now */
			if (invol && !use_sched_info) {
				now = bpf_ktime_get_ns();
				start_set(prev, prev_pid, now, btf);
			}
		}
	}
	next_pid = btf ? next->pid : BPF_CORE_READ(next, pid);
	next_tgid = btf ? next->tgid : BPF_CORE_READ(next, tgid);
	next_class = classify(next, next_pid, next_tgid, btf);
	c->curr_tid = next_pid;
	c->curr_class = next_class;
	c->curr_gen = filter_gen;
	c->curr_bucket = 0;
	if (next_class != ST_CLASS_IDLE)
		c->curr_rt0 = runtime(next, btf);

	if (next_class == ST_CLASS_TARGET) {
		__u64 wait = 0;
		bool have;
		if (use_sched_info) {
			have = queued_wait(prev, next, btf, &wait);
		} else {
			__u64 ts = start_take(next, next_pid, btf);
			have = ts != 0;
			if (have) {
				if (!now)
					now = bpf_ktime_get_ns();
				wait = now > ts ? now - ts : 0;
			}
		}
		if (have) {
			__u32 b = rq_bucket(wait);
			/* keep the verifier sure of the bound after the compiler's rewrites */
			asm volatile("" : "+r"(b));
			if (b >= ST_RQ_BUCKETS)
				return 0;
			c->rq_count++;
			c->rq_hist[b]++;
			c->curr_bucket = b + 1;
		}
	}
	return 0;
}

static __always_inline int on_wakeup(struct task_struct *p, bool btf)
{
	__u32 pid = btf ? p->pid : BPF_CORE_READ(p, pid);
	__u32 tgid = btf ? p->tgid : BPF_CORE_READ(p, tgid);
	__u64 now;

	if (classify(p, pid, tgid, btf) != ST_CLASS_TARGET)
		return 0;
	now = bpf_ktime_get_ns();
	start_set(p, pid, now, btf);
	return 0;
}

static __always_inline int on_migrate(struct task_struct *p, int dest, bool btf)
{
	__u32 zero = 0, d = (__u32)dest;
	struct st_cpu *c = bpf_map_lookup_elem(&cpu_stats, &zero);
	__u64 *m = bpf_map_lookup_elem(&mig_in, &d);
	__u32 pid, tgid;

	if (!c)
		return 0;
	c->migrations++;
	if (m)
		(*m)++;
	pid = btf ? p->pid : BPF_CORE_READ(p, pid);
	tgid = btf ? p->tgid : BPF_CORE_READ(p, tgid);
	if (classify(p, pid, tgid, btf) != ST_CLASS_TARGET)
		return 0;
	c->target_migrations++;
	struct st_thread *th = thread_find(pid, p, btf);
	if (th)
		th->migrations++;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next, true);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("tp_btf/sched_migrate_task")
int BPF_PROG(migrate_btf, struct task_struct *p, int dest_cpu)
{
	return on_migrate(p, dest_cpu, true);
}

/* exec renames a thread: refresh the name of a thread already tracked */
static __always_inline int on_exec(struct task_struct *p, bool btf)
{
	__u32 pid = btf ? p->pid : BPF_CORE_READ(p, pid);
	struct st_thread *th = thread_find(pid, p, btf);

	if (!th)
		return 0;
	th->tgid = btf ? p->tgid : BPF_CORE_READ(p, tgid);
	bpf_probe_read_kernel_str(th->comm, sizeof(th->comm), &p->comm);
	th->comm_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p)
{
	return on_exec(p, true);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_raw, struct task_struct *p)
{
	return on_exec(p, false);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next, false);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("raw_tp/sched_migrate_task")
int BPF_PROG(migrate_raw, struct task_struct *p, int dest_cpu)
{
	return on_migrate(p, dest_cpu, false);
}

/* user space's read of the thread records (slots and task storage): one
 * (u64 tid, struct st_thread) pair per thread that has one */
SEC("iter/task")
int dump_threads(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct st_thread *th = NULL;
	__u64 tid;

	if (!t)
		return 0;
	tid = (__u32)t->pid;
	if (thr_slots) {
		struct st_slot *sl = slot_of((__u32)tid);
		if (sl && slot_is(sl, (__u32)tid, t))
			th = &sl->rec;
	}
	if (!th)
		th = bpf_task_storage_get(&thr_ts, t, 0, 0);
	if (!th)
		return 0;
	bpf_seq_write(seq, &tid, sizeof(tid));
	bpf_seq_write(seq, th, sizeof(*th));
	return 0;
}
