/*
 * tpool.h: the persistent compute thread pool of the runtime.
 *
 * DESIGN
 * n worker threads live as long as the pool. tpool_run(pool, fn, arg) makes
 * every worker call fn(arg, ith, nth) once and returns when all have
 * returned; the calling thread only dispatches and waits. Inside fn, stages
 * are separated by tpool_barrier(), and work is shared by claiming chunks from
 * an atomic counter (tpool_chunk_next()) that the barrier resets. Idle workers
 * spin for a short while (so a forward pass made of many short runs does not
 * pay a wake-up per run) and then sleep on a futex.
 *
 * The controller changes the pool while the core serves: tpool_resize() and
 * tpool_set_affinity() may be called from any thread at any time; they take
 * effect between runs (a run in progress finishes first, with the size it
 * started with). Workers beyond the new size exit; new ones start. Per-worker
 * busy/idle nanoseconds and kernel thread ids are readable at any time.
 */
#ifndef TPOOL_H
#define TPOOL_H

#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

#define TPOOL_MAX_THREADS 256

struct tpool;
typedef void (*tpool_fn)(void *arg, int ith, int nth);

/* Start n workers (1..TPOOL_MAX_THREADS). NULL on failure, with err set. */
struct tpool *tpool_new(int n, char *err, size_t errlen);
void tpool_free(struct tpool *p); /* joins the workers; NULL is a no-op */

int tpool_size(const struct tpool *p);
/* Change the number of workers to n; waits for a run in progress.
 * -EINVAL for n outside 1..TPOOL_MAX_THREADS; -EDEADLK when called from
 * inside one of p's own runs (it would wait for itself). */
int tpool_resize(struct tpool *p, int n);

/* Run fn(arg, ith, nth) on every worker; returns when all are done.
 * Runs are serialized: concurrent callers take turns (in FIFO order, shared
 * with tpool_resize). Not from inside fn: a run cannot wait for itself. */
void tpool_run(struct tpool *p, tpool_fn fn, void *arg);

/* Inside fn: wait for all nth workers; also resets the chunk counter. */
void tpool_barrier(struct tpool *p, int ith);
/* Inside fn: claim the next chunk index (0, 1, 2, ...) of the current stage. */
int64_t tpool_chunk_next(struct tpool *p);

/* CPU placement. Worker i runs on set (NULL: every allowed CPU). Applied at
 * once to live workers and kept for workers started later by a resize. */
int tpool_set_affinity(struct tpool *p, int worker, const cpu_set_t *set);
int tpool_set_affinity_all(struct tpool *p, const cpu_set_t *set);

/*
 * Scheduling class of the workers: SCHED_OTHER (prio 0, the default), or
 * SCHED_FIFO / SCHED_RR with prio 1..99. Applied at once to live workers (all
 * or none: on a failure the ones already changed are put back) and kept for
 * workers started later by a resize. Needs CAP_SYS_NICE or RLIMIT_RTPRIO, and
 * on kernels with RT group scheduling a cpu.rt_runtime_us budget in the
 * workers' cgroup (else -EPERM). While the workers are real-time their idle
 * spin is cut short (PAUSE_NS, no sched_yield polling): a spinning real-time
 * worker would keep ordinary threads -- the one that dispatches the next run,
 * the HTTP threads -- off its CPU. -EINVAL for an unknown policy or a prio
 * outside its range.
 */
int tpool_set_sched(struct tpool *p, int policy, int prio);
void tpool_get_sched(const struct tpool *p, int *policy, int *prio);

struct tpool_worker_stats {
	pid_t tid;           /* kernel thread id */
	uint64_t busy_ns;    /* time inside fn */
	uint64_t idle_ns;    /* time spinning or asleep between runs */
	uint64_t runs;
	int cpu;             /* CPU it last ran on, -1 unknown */
	int policy, prio;    /* as the kernel reports it (sched_getscheduler); -1 unknown */
};
/* Fill up to max entries; returns the number of workers. */
int tpool_stats(const struct tpool *p, struct tpool_worker_stats *out, int max);

#endif /* TPOOL_H */
