/*
 * schedtrace.h: the types that schedtrace.bpf.c (in the kernel) and its
 * loader schedtrace.c (in user space) share, and the loader's API.
 *
 * The kernel side aggregates everything in per-CPU maps:
 *   cpu_stats   PERCPU_ARRAY[1] of struct st_cpu: busy/idle split by class,
 *               switches, migrations, run-queue histogram, and the state of
 *               the slice now running (curr_rt0, curr_tid, curr_class) so user
 *               space can add the part of the slice not yet ended;
 *   thr_slot    ARRAY of slots (a power of two; tag: tid and start time +
 *               struct st_thread), indexed by tid & (slots - 1): the record
 *               of each target thread whose slot is free (tp_btf), claimed
 *               by compare-and-swap, freed at the thread's last switch-out;
 *               an inlined array access on every switch instead of a helper
 *               call;
 *   thr_ts      TASK_STORAGE struct st_thread, target threads only (tp_btf)
 *               whose slot another live thread holds: found through the
 *               task itself, no hashing, one writer at a time (the CPU the
 *               thread leaves). Slots and task storage are read by the
 *               iter/task program dump_threads, which writes (u64 tid,
 *               record) pairs;
 *   exited      LRU_HASH tid -> struct st_thread: the final record of a
 *               thread at its last switch-out (tp_btf), until user space
 *               has read it;
 *   threads     LRU_PERCPU_HASH tid -> struct st_thread, target threads only
 *               (raw_tp, where task storage may be refused);
 *   aff_ring    RINGBUF of struct ev_rec: a target thread's cpus_mask seen
 *               changed at its switch-out (tp_btf, once user space turns
 *               the watch on): affinity changes without any syscall hook;
 *   mig_in      PERCPU_ARRAY[ST_MAX_CPUS] of u64: migrations into each CPU;
 *   start_ts    TASK_STORAGE wakeup time (tp_btf), or
 *   start       LRU_HASH tid -> wakeup time (raw_tp): the one shared scratch
 *               state, since a wakeup and its switch-in may happen on
 *               different CPUs;
 *   target_pids ARRAY of u64 words, mmapable: a bitmap of target tgids
 *               (bit tgid%64 of word tgid/64), so that classifying a task is
 *               an inlined array load, not a hash lookup (also used by
 *               evtrace).
 * Time on CPU comes from the scheduler's own se.sum_exec_runtime, already
 * brought up to date for prev when sched_switch fires: the hot path reads
 * no clock unless a target task is involved (run-queue latency).
 * Only the loader knows these layouts; callers get the st_* records below.
 */
#ifndef BPF_SCHEDTRACE_H
#define BPF_SCHEDTRACE_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define ST_MAX_CPUS 64
#define ST_RQ_BUCKETS 26    /* same scale as SNAP_RQ_BUCKETS: b0 < 1us, bi in [2^(i-1), 2^i) us */
#define ST_COMM_LEN 16

enum st_class { ST_CLASS_IDLE = 0, ST_CLASS_OTHER = 1, ST_CLASS_TARGET = 2 };
enum st_filter { ST_FILTER_NONE = 0, ST_FILTER_PIDS = 1, ST_FILTER_CGROUP = 2 };

/* the fields every switch touches come first (one cache line), the
 * histogram after: one more line per measured wait */
struct st_cpu {
	__u64 curr_rt0;            /* se.sum_exec_runtime of curr_tid when switched in */
	__u32 curr_tid;            /* task switched in last (0: idle or none yet) */
	__u32 curr_class;          /* its enum st_class */
	__u32 curr_bucket;         /* its run-queue wait at switch-in: bucket + 1, 0 none
	                              (added to its thread record at switch-out) */
	__u32 curr_gen;            /* filter_gen when it was classified: a slice classified
	                              under an older pid set is classified again at
	                              switch-out (and by user space while it runs) */
	__u64 busy_ns[3];          /* indexed by enum st_class (other, target; idle unused:
	                              user space derives idle as tick - busy) */
	__u64 switches;
	__u64 rq_count;            /* target wakeups measured on this CPU */
	__u64 migrations;          /* migrate events seen on this CPU (all tasks) */
	__u64 target_migrations;   /* of target tasks */
	__u64 missed_switch_in;    /* switch-outs of a task not seen switching in here */
	__u64 rq_hist[ST_RQ_BUCKETS];
};

struct st_thread {
	__u64 oncpu_ns;
	__u64 vol, invol;          /* switches out: blocked / preempted */
	__u64 rq_count;
	__u64 comm_ts;             /* when comm was read (creation, exec): the newest copy wins */
	__u64 cpus_mask;           /* task storage, affinity watched: its cpus_mask (CPUs
	                              0..63) at its last switch-out, 0 not seen yet */
	__u32 tgid;
	__s32 last_cpu;            /* the CPU it ran on most (per-CPU records) or last
	                              (task storage) */
	__u64 migrations;
	/* the fields above are what a switch-out touches: one cache line */
	__u64 rq_hist[ST_RQ_BUCKETS];
	char comm[ST_COMM_LEN];
	__u64 seen_ns;             /* exited copies: when a read first returned it (user space) */
};

/* a slot of thr_slot: tid 0 free, ST_SLOT_DYING being freed, else the tid
 * of the thread whose record it holds, with that task's start_time (a new
 * thread that reuses the tid does not match) */
#define ST_SLOT_DYING (1ULL << 63)
struct st_slot {
	__u64 tid;
	__u64 start;               /* task_struct.start_time, ns */
	struct st_thread rec;
};

#ifndef __bpf__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Loader API. schedtrace_open: open, configure, load and attach (tp_btf when
 * the kernel offers it, raw_tp otherwise). filter: ST_FILTER_NONE traces every
 * task as the target; ST_FILTER_PIDS the tgids put with schedtrace_set_pids;
 * ST_FILTER_CGROUP the cgroup v2 whose id is cgid and its descendants.
 * btf_path: a BTF file to use instead of the kernel's (NULL: the kernel's).
 * Returns NULL with a message in err (nothing printed).
 */
struct schedtrace;

struct schedtrace_opts {
	enum st_filter filter;
	__u64 cgid;                /* ST_FILTER_CGROUP: the v2 cgroup's id (inode) */
	int cg_level;              /* and its depth below the v2 root (root = 0) */
	const char *btf_path;
	unsigned max_threads;      /* threads map size, 0: 8192 */
	bool force_raw_tp;         /* skip tp_btf (tests) */
	bool no_run_delay;         /* run-queue waits from wakeup programs even where
	                              the kernel's sched_info would serve (tests, benchmarks) */
	const int32_t *pids;       /* ST_FILTER_PIDS: the initial tgid set, in place before */
	size_t npids;              /* the programs attach (later: schedtrace_set_pids) */
	unsigned exited_keep_ms;   /* tp_btf: an exited thread's final record is returned
	                              by every schedtrace_read_threads until this long
	                              after the first read that returned it (so repeated
	                              reads of one tick all see it, whatever the tick
	                              length), 0: 2000 */
	unsigned thread_slots;     /* tp_btf: size of the slot table (rounded up to a power
	                              of two), 0: 4096 (1.2 MiB); threads whose slot is
	                              taken use task storage */
	bool no_thread_slots;      /* task storage for every thread (benchmarks: what the
	                              slots replace) */
	bool force_lru_threads;    /* thread records in the per-CPU LRU hash even under
	                              tp_btf (benchmarks: the cost of the task storage's
	                              alternative) */
};

struct schedtrace *schedtrace_open(const struct schedtrace_opts *o, char *err, size_t errlen);
void schedtrace_free(struct schedtrace *st);
/* "tp_btf" or "raw_tp": how the programs are attached */
const char *schedtrace_mode(const struct schedtrace *st);
/* true: run-queue waits are the kernel's own sched_info figure (this rq's
 * clock minus the task's last_queued when a target is switched in: what
 * the kernel adds to its run_delay), and no program runs on wakeups; false:
 * sched_wakeup / sched_wakeup_new stamp target tasks, sched_switch measures */
bool schedtrace_run_delay(const struct schedtrace *st);
/* fd of the pid-set map, to share with evtrace */
int schedtrace_pids_fd(const struct schedtrace *st);
/* replace the pid set (tgids) with pids[0..n) and advance the filter
 * generation; returns 0 or negative errno */
int schedtrace_set_pids(struct schedtrace *st, const int32_t *pids, size_t n);
/* the filter generation now: a CPU whose st_cpu.curr_gen differs runs a
 * slice classified under an older pid set */
__u32 schedtrace_filter_gen(const struct schedtrace *st);
/* number of CPUs the per-CPU maps have (libbpf_num_possible_cpus) */
int schedtrace_ncpus(const struct schedtrace *st);
/* sum of each CPU's struct st_cpu (out[cpu], cpu < n); mig_in[cpu] too.
 * Returns the number of CPUs written or negative errno. */
int schedtrace_read_cpus(struct schedtrace *st, struct st_cpu *out, __u64 *mig_in, int n);
/* every target thread's record: cb(tid, record, arg). tp_btf: the task
 * storage of each live thread (through the iter/task program) and the final
 * records of threads that exited, until exited_keep_ms after a read first
 * returned them; raw_tp: the
 * LRU hash, each thread's per-CPU copies summed. Returns the number of
 * threads or negative errno. */
int schedtrace_read_threads(struct schedtrace *st,
			    void (*cb)(__u32 tid, const struct st_thread *t, void *arg), void *arg);
/* the tag of the slot that tid maps to: 0 free, else the tid holding it
 * (ST_SLOT_DYING set while it is being freed); -EOPNOTSUPP without slots
 * (tests, diagnostics) */
int schedtrace_slot_holder(struct schedtrace *st, __u32 tid, __u64 *holder);
/* forget one thread (it exited and has been reported) */
void schedtrace_forget_thread(struct schedtrace *st, __u32 tid);
/* where target threads' records live: "slots + task storage", "task storage"
 * or "per-CPU LRU hash" */
const char *schedtrace_thread_store(const struct schedtrace *st);
/* Affinity changes seen at switch-out: the ring of struct ev_rec (evtrace.h,
 * flags EV_F_AT_SWITCH) that the kernel side fills while the watch is on;
 * -1 where it cannot (raw_tp). schedtrace_watch_affinity turns the watch on
 * or off (0, or -EOPNOTSUPP without the ring). */
int schedtrace_affinity_ring_fd(const struct schedtrace *st);
int schedtrace_watch_affinity(struct schedtrace *st, bool on);
/* run-time statistics of the sched_switch program (kernel.bpf_stats_enabled) */
int schedtrace_switch_stats(const struct schedtrace *st, __u64 *run_time_ns, __u64 *run_cnt);
/* the same summed over every program loaded (switch, wakeups, migrations, exec) */
int schedtrace_all_stats(const struct schedtrace *st, __u64 *run_time_ns, __u64 *run_cnt);
#endif

#endif
