/*
 * tpool.c: the persistent, resizable compute thread pool (see tpool.h).
 *
 * DESIGN
 * Dispatch. A run publishes (fn, arg, nth) and a "pending" count of nth,
 * then increments the 32-bit generation counter `gen`. Each worker waits for
 * `gen` to move past the value it last saw: it spins (pause, then polling
 * with sched_yield so it never holds a CPU someone else needs) for up to
 * SPIN_NS, then sleeps in futex(FUTEX_WAIT) on `gen`. The dispatcher only
 * calls futex(FUTEX_WAKE) when a worker announced it is going to sleep
 * (`sleepers`, Dekker-style with sequentially consistent atomics, so a wake
 * is never lost and never paid for when everyone is spinning). A worker that
 * returns from fn decrements `pending`; the calling thread waits for zero the
 * same way (short spin, then futex on `pending`, woken only if it sleeps).
 * Every change of `gen` is a full run that all live workers acknowledge, so a
 * worker can never skip a run nor see the parameters of the next one early.
 *
 * Inside a run: tpool_barrier() is generation based (count arrivals; the
 * last one resets the count and the chunk counter, then bumps `bar_gen`;
 * the others spin, then futex-wait on `bar_gen`). tpool_chunk_next() is a
 * fetch-add on `chunk`. Each of these hot words sits on its own cache line.
 *
 * Resizing and freeing are runs too: an internal function tells workers
 * with index >= the new size to leave their loop after acknowledging, and
 * the resizer joins them; growing starts new threads (with the affinity
 * remembered for their index) and then runs an empty function so that their
 * thread ids are published before tpool_resize() returns. Runs and resizes
 * are serialized by a FIFO ticket lock (a mutex + condition variable), so a
 * controller thread calling tpool_resize() is not starved by a generation
 * loop that calls tpool_run() back to back.
 *
 * Real-time workers (tpool_set_sched: SCHED_FIFO/RR, for a core that must not
 * lose its CPU to a fair-class neighbour at a scheduler tick) spin only
 * PAUSE_NS before sleeping, and never poll with sched_yield (which yields only
 * to real-time peers): past that a spinning worker would hold the CPU from the
 * ordinary thread that dispatches the next run. New workers take the class
 * from the pool when they start.
 *
 * Statistics and affinity only take `slots_lock` (a plain mutex protecting
 * the worker slots), never the run lock, so they answer during a run.
 * Per-worker busy/idle time is kept as totals plus "in state since" stamps,
 * so a sleeping worker's idle time is current when read.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dify-edge-core/runtime/tpool.h"

#define CACHELINE 64
#define SPIN_NS 100000ull       /* worker: spin this long for the next run */
#define WAIT_SPIN_NS 5000ull    /* caller: spin this long for the end of a run */
#define BARRIER_SPIN_NS 200000ull
#define PAUSE_NS 10000ull       /* pure pause-spin before yielding */

struct worker {
	struct tpool *p;
	int idx;
	bool live;              /* thread started and not yet joined */
	bool has_set;           /* `set` is to be applied */
	bool quit;              /* set by the exit run: leave the loop */
	uint32_t start_gen;     /* gen when the thread was created */
	pthread_t th;
	cpu_set_t set;
	_Atomic pid_t tid;
	_Atomic int cpu;
	_Atomic int in_run;     /* 1: busy since `since`, 0: idle since `since` */
	_Atomic uint64_t since;
	_Atomic uint64_t busy_ns;
	_Atomic uint64_t idle_ns;
	_Atomic uint64_t runs;
} __attribute__((aligned(CACHELINE)));

struct tpool {
	/* --- dispatch, written by the runner before bumping gen --- */
	tpool_fn fn;
	void *arg;
	int nth;                /* workers taking part in the current run */
	bool internal;          /* fn is a pool-internal run (not counted) */
	int keep;               /* exit run: workers with idx >= keep quit */

	_Alignas(CACHELINE) _Atomic uint32_t gen;
	_Alignas(CACHELINE) _Atomic uint32_t sleepers;
	_Alignas(CACHELINE) _Atomic uint32_t pending;
	_Alignas(CACHELINE) _Atomic uint32_t caller_sleeping;
	_Alignas(CACHELINE) _Atomic int64_t chunk;
	_Alignas(CACHELINE) _Atomic uint32_t bar_count;
	_Alignas(CACHELINE) _Atomic uint32_t bar_gen;
	_Alignas(CACHELINE) _Atomic uint32_t bar_sleepers;

	/* --- FIFO ticket lock serializing runs and resizes --- */
	_Alignas(CACHELINE) pthread_mutex_t tk_mu;
	pthread_cond_t tk_cv;
	uint64_t tk_next, tk_serving;

	/* --- worker slots --- */
	pthread_mutex_t slots_lock;
	_Atomic int n;          /* live workers */
	int sched_policy;       /* workers' class (SCHED_OTHER by default) */
	int sched_prio;
	_Atomic uint64_t spin_ns;      /* idle spin before sleeping (cut short when real-time) */
	_Atomic uint64_t bar_spin_ns;
	bool has_def;           /* def_set applies to slots without their own */
	cpu_set_t def_set;
	struct worker *w[TPOOL_MAX_THREADS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	/* EAGAIN (value changed), EINTR and spurious wake-ups: the callers
	 * re-check their condition in a loop. */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Wait until *word != old: spin with `pause` for PAUSE_NS, then keep polling
 * with sched_yield() between checks up to spin_ns (a thread that needs this
 * CPU -- the caller woken at the end of a run on a box with no spare CPU, or
 * another process -- gets it at once instead of after our time slice:
 * measured on a loaded 2-CPU machine, empty runs went from ~60 to ~2 us with
 * 1 worker and from ~250 to ~60 us with 2), then sleep on the futex,
 * announcing the sleep in *sleepers. */
static void wait_change(_Atomic uint32_t *word, uint32_t old, _Atomic uint32_t *sleepers,
			uint64_t spin_ns)
{
	uint64_t t0 = 0;

	for (unsigned i = 0;; i++) {
		if (atomic_load_explicit(word, memory_order_acquire) != old)
			return;
		if ((i & 63) == 63) {
			uint64_t t = now_ns();
			if (!t0)
				t0 = t;
			else if (t - t0 > spin_ns)
				break;
			if (t0 && t - t0 > PAUSE_NS && spin_ns > PAUSE_NS)
				sched_yield();
		}
		cpu_relax();
	}
	for (;;) {
		atomic_fetch_add(sleepers, 1);
		if (atomic_load(word) == old)
			futex_wait(word, old);
		atomic_fetch_sub(sleepers, 1);
		if (atomic_load_explicit(word, memory_order_acquire) != old)
			return;
	}
}

/* ------------------------------------------------------------ workers */

/* The pool whose worker this thread is (NULL elsewhere): resizing or running
 * a pool from inside one of its own runs would wait for itself. */
static __thread struct tpool *tls_pool;

static void *worker_main(void *argp)
{
	struct worker *w = argp;
	struct tpool *p = w->p;
	uint32_t seen;

	tls_pool = p;
	/* The pool's class, and our tid published, under slots_lock: a
	 * tpool_set_sched() either sees our tid or we see its class. A refusal
	 * leaves us SCHED_OTHER, which tpool_stats() shows. */
	pthread_mutex_lock(&p->slots_lock);
	if (p->sched_policy != SCHED_OTHER) {
		struct sched_param sp = { .sched_priority = p->sched_prio };
		(void)sched_setscheduler(0, p->sched_policy, &sp);
	}
	atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
	pthread_mutex_unlock(&p->slots_lock);
	atomic_store(&w->cpu, sched_getcpu());
	/* Not a fresh read of gen: the run that follows our creation may
	 * already have bumped it, and we must take part in that run. */
	seen = w->start_gen;
	for (;;) {
		wait_change(&p->gen, seen, &p->sleepers, atomic_load_explicit(&p->spin_ns, memory_order_relaxed));
		seen = atomic_load_explicit(&p->gen, memory_order_acquire);

		uint64_t t1 = now_ns();
		bool internal = p->internal;
		tpool_fn fn = p->fn;
		void *arg = p->arg;
		int nth = p->nth;
		if (!internal) {
			atomic_fetch_add_explicit(&w->idle_ns, t1 - atomic_load(&w->since),
						  memory_order_relaxed);
			atomic_store(&w->since, t1);
			atomic_store(&w->in_run, 1);
		}
		if (fn)
			fn(arg, w->idx, nth);
		if (internal && w->idx >= p->keep)
			w->quit = true;
		if (!internal) {
			uint64_t t2 = now_ns();
			atomic_fetch_add_explicit(&w->busy_ns, t2 - t1, memory_order_relaxed);
			atomic_fetch_add_explicit(&w->runs, 1, memory_order_relaxed);
			atomic_store(&w->since, t2);
			atomic_store(&w->in_run, 0);
			atomic_store(&w->cpu, sched_getcpu());
		}
		bool quit = w->quit;
		/* After this decrement the pool may free or reuse p's run
		 * fields; touch nothing of p's run state below. */
		if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping))
			futex_wake_all(&p->pending);
		if (quit)
			break;
	}
	return NULL;
}

/* --------------------------------------------------------- ticket lock */

static void run_lock(struct tpool *p)
{
	pthread_mutex_lock(&p->tk_mu);
	uint64_t t = p->tk_next++;
	while (t != p->tk_serving)
		pthread_cond_wait(&p->tk_cv, &p->tk_mu);
	pthread_mutex_unlock(&p->tk_mu);
}

static void run_unlock(struct tpool *p)
{
	pthread_mutex_lock(&p->tk_mu);
	p->tk_serving++;
	pthread_cond_broadcast(&p->tk_cv);
	pthread_mutex_unlock(&p->tk_mu);
}

/* Dispatch one run to the n live workers and wait for all; run lock held. */
static void dispatch(struct tpool *p, tpool_fn fn, void *arg, bool internal, int keep)
{
	int n = atomic_load(&p->n);

	if (n == 0)
		return;
	p->fn = fn;
	p->arg = arg;
	p->nth = n;
	p->internal = internal;
	p->keep = keep;
	atomic_store(&p->chunk, 0);
	atomic_store(&p->bar_count, 0);
	atomic_store(&p->pending, (uint32_t)n);
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->sleepers))
		futex_wake_all(&p->gen);

	/* Wait for pending == 0: spin briefly, then sleep. */
	uint64_t t0 = 0;
	for (unsigned i = 0;; i++) {
		if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
			return;
		cpu_relax();
		if ((i & 63) == 63) {
			uint64_t t = now_ns();
			if (!t0)
				t0 = t;
			else if (t - t0 > WAIT_SPIN_NS)
				break;
		}
	}
	for (;;) {
		uint32_t v;
		atomic_store(&p->caller_sleeping, 1);
		v = atomic_load(&p->pending);
		if (v != 0)
			futex_wait(&p->pending, v);
		atomic_store(&p->caller_sleeping, 0);
		if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
			return;
	}
}

static void noop_fn(void *arg, int ith, int nth)
{
	(void)arg; (void)ith; (void)nth;
}

/* Start workers [n, want); run lock held. Returns 0 or -errno (the
 * workers started so far stay). */
static int grow(struct tpool *p, int want)
{
	int n = atomic_load(&p->n);
	int rc = 0;

	for (int i = n; i < want; i++) {
		struct worker *w;
		pthread_attr_t attr;

		pthread_mutex_lock(&p->slots_lock);
		w = p->w[i];
		if (!w) {
			w = aligned_alloc(CACHELINE, sizeof(*w));
			if (!w) {
				pthread_mutex_unlock(&p->slots_lock);
				rc = -ENOMEM;
				break;
			}
			memset(w, 0, sizeof(*w));
			w->p = p;
			w->idx = i;
			p->w[i] = w;
		}
		w->quit = false;
		w->start_gen = atomic_load(&p->gen);
		atomic_store(&w->tid, 0);
		atomic_store(&w->cpu, -1);
		atomic_store(&w->in_run, 0);
		atomic_store(&w->since, now_ns());
		const cpu_set_t *set = w->has_set ? &w->set : p->has_def ? &p->def_set : NULL;
		pthread_attr_init(&attr);
		if (set)
			pthread_attr_setaffinity_np(&attr, sizeof(*set), set);
		int e = pthread_create(&w->th, &attr, worker_main, w);
		pthread_attr_destroy(&attr);
		if (e == EINVAL && set) {
			/* the remembered set has no usable CPU: start unpinned */
			e = pthread_create(&w->th, NULL, worker_main, w);
		}
		if (e) {
			pthread_mutex_unlock(&p->slots_lock);
			rc = -e;
			break;
		}
		w->live = true;
		atomic_store(&p->n, i + 1);
		pthread_mutex_unlock(&p->slots_lock);
	}
	/* Make every new worker publish its tid and reach its wait loop. */
	dispatch(p, noop_fn, NULL, true, INT_MAX);
	return rc;
}

/* Stop workers [want, n); run lock held. */
static void shrink(struct tpool *p, int want)
{
	int n = atomic_load(&p->n);

	if (want >= n)
		return;
	dispatch(p, noop_fn, NULL, true, want);
	for (int i = want; i < n; i++)
		pthread_join(p->w[i]->th, NULL);
	pthread_mutex_lock(&p->slots_lock);
	for (int i = want; i < n; i++) {
		struct worker *w = p->w[i];
		uint64_t t = now_ns();
		/* close the idle interval, keep the totals for a later restart */
		atomic_fetch_add(&w->idle_ns, t - atomic_load(&w->since));
		atomic_store(&w->since, t);
		w->live = false;
		atomic_store(&w->tid, 0);
	}
	atomic_store(&p->n, want);
	pthread_mutex_unlock(&p->slots_lock);
}

/* ------------------------------------------------------------- public */

struct tpool *tpool_new(int n, char *err, size_t errlen)
{
	struct tpool *p = NULL;
	int rc;

	if (n < 1 || n > TPOOL_MAX_THREADS) {
		if (err && errlen)
			snprintf(err, errlen, "thread pool: %d threads is out of range 1..%d",
				 n, TPOOL_MAX_THREADS);
		goto out;
	}
	p = aligned_alloc(CACHELINE, sizeof(*p));
	if (!p) {
		if (err && errlen)
			snprintf(err, errlen, "thread pool: out of memory");
		goto out;
	}
	memset(p, 0, sizeof(*p));
	p->sched_policy = SCHED_OTHER;
	atomic_store(&p->spin_ns, SPIN_NS);
	atomic_store(&p->bar_spin_ns, BARRIER_SPIN_NS);
	pthread_mutex_init(&p->tk_mu, NULL);
	pthread_cond_init(&p->tk_cv, NULL);
	pthread_mutex_init(&p->slots_lock, NULL);
	run_lock(p);
	rc = grow(p, n);
	run_unlock(p);
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "thread pool: starting worker %d of %d: %s",
				 atomic_load(&p->n), n, strerror(-rc));
		tpool_free(p);
		p = NULL;
	}
out:
	return p;
}

void tpool_free(struct tpool *p)
{
	if (!p)
		return;
	run_lock(p);
	shrink(p, 0);
	run_unlock(p);
	for (int i = 0; i < TPOOL_MAX_THREADS; i++)
		free(p->w[i]);
	pthread_mutex_destroy(&p->slots_lock);
	pthread_cond_destroy(&p->tk_cv);
	pthread_mutex_destroy(&p->tk_mu);
	free(p);
}

int tpool_size(const struct tpool *p)
{
	return atomic_load(&((struct tpool *)p)->n);
}

int tpool_resize(struct tpool *p, int n)
{
	int rc = 0;

	if (n < 1 || n > TPOOL_MAX_THREADS)
		return -EINVAL;
	if (tls_pool == p)
		return -EDEADLK;
	run_lock(p);
	if (n > atomic_load(&p->n))
		rc = grow(p, n);
	else
		shrink(p, n);
	run_unlock(p);
	return rc;
}

void tpool_run(struct tpool *p, tpool_fn fn, void *arg)
{
	run_lock(p);
	dispatch(p, fn, arg, false, INT_MAX);
	run_unlock(p);
}

void tpool_barrier(struct tpool *p, int ith)
{
	int nth = p->nth;

	(void)ith;
	if (nth <= 1) {
		atomic_store(&p->chunk, 0);
		return;
	}
	uint32_t g = atomic_load_explicit(&p->bar_gen, memory_order_acquire);
	if (atomic_fetch_add(&p->bar_count, 1) == (uint32_t)nth - 1) {
		atomic_store(&p->chunk, 0);
		atomic_store(&p->bar_count, 0);
		atomic_fetch_add(&p->bar_gen, 1);
		if (atomic_load(&p->bar_sleepers))
			futex_wake_all(&p->bar_gen);
		return;
	}
	wait_change(&p->bar_gen, g, &p->bar_sleepers, atomic_load_explicit(&p->bar_spin_ns, memory_order_relaxed));
}

int64_t tpool_chunk_next(struct tpool *p)
{
	return atomic_fetch_add_explicit(&p->chunk, 1, memory_order_relaxed);
}

/* Apply set (NULL: every CPU) to a live worker; slots_lock held. */
static int apply_affinity(struct worker *w, const cpu_set_t *set)
{
	cpu_set_t all;
	int e;

	if (!w->live)
		return 0;
	if (!set) {
		/* Every CPU: the kernel intersects the mask with the CPUs
		 * online and allowed by our cpuset. */
		CPU_ZERO(&all);
		for (int c = 0; c < CPU_SETSIZE; c++)
			CPU_SET(c, &all);
		set = &all;
	}
	e = pthread_setaffinity_np(w->th, sizeof(*set), set);
	return -e;
}

int tpool_set_affinity(struct tpool *p, int worker, const cpu_set_t *set)
{
	int rc = 0;
	struct worker *w;

	if (worker < 0 || worker >= TPOOL_MAX_THREADS)
		return -EINVAL;
	pthread_mutex_lock(&p->slots_lock);
	w = p->w[worker];
	if (!w) {
		w = aligned_alloc(CACHELINE, sizeof(*w));
		if (!w) {
			rc = -ENOMEM;
			goto out;
		}
		memset(w, 0, sizeof(*w));
		w->p = p;
		w->idx = worker;
		atomic_store(&w->cpu, -1);
		p->w[worker] = w;
	}
	w->has_set = set != NULL;
	if (set)
		w->set = *set;
	rc = apply_affinity(w, set ? set : p->has_def ? &p->def_set : NULL);
out:
	pthread_mutex_unlock(&p->slots_lock);
	return rc;
}

int tpool_set_affinity_all(struct tpool *p, const cpu_set_t *set)
{
	int rc = 0;

	pthread_mutex_lock(&p->slots_lock);
	p->has_def = set != NULL;
	if (set)
		p->def_set = *set;
	for (int i = 0; i < TPOOL_MAX_THREADS; i++) {
		struct worker *w = p->w[i];
		if (!w)
			continue;
		w->has_set = false;
		int e = apply_affinity(w, set);
		if (e < 0 && rc == 0)
			rc = e;
	}
	pthread_mutex_unlock(&p->slots_lock);
	return rc;
}

int tpool_stats(const struct tpool *cp, struct tpool_worker_stats *out, int max)
{
	struct tpool *p = (struct tpool *)cp;
	int n;

	pthread_mutex_lock(&p->slots_lock);
	n = atomic_load(&p->n);
	uint64_t t = now_ns();
	for (int i = 0; i < n && i < max; i++) {
		struct worker *w = p->w[i];
		uint64_t since = atomic_load(&w->since);
		uint64_t busy = atomic_load(&w->busy_ns), idle = atomic_load(&w->idle_ns);
		uint64_t cur = t > since ? t - since : 0;
		if (atomic_load(&w->in_run))
			busy += cur;
		else
			idle += cur;
		out[i] = (struct tpool_worker_stats){
			.tid = atomic_load(&w->tid),
			.busy_ns = busy,
			.idle_ns = idle,
			.runs = atomic_load(&w->runs),
			.cpu = atomic_load(&w->cpu),
			.policy = -1,
			.prio = -1,
		};
		if (out[i].tid > 0) {
			struct sched_param sp;
			int pol = sched_getscheduler(out[i].tid);
			if (pol >= 0 && sched_getparam(out[i].tid, &sp) == 0) {
				out[i].policy = pol & ~SCHED_RESET_ON_FORK;
				out[i].prio = sp.sched_priority;
			}
		}
	}
	pthread_mutex_unlock(&p->slots_lock);
	return n;
}

static int valid_sched(int policy, int prio)
{
	if (policy == SCHED_OTHER)
		return prio == 0;
	if (policy == SCHED_FIFO || policy == SCHED_RR)
		return prio >= sched_get_priority_min(policy) && prio <= sched_get_priority_max(policy);
	return 0;
}

int tpool_set_sched(struct tpool *p, int policy, int prio)
{
	struct sched_param sp = { .sched_priority = prio };
	int rc = 0, i, n;

	if (!valid_sched(policy, prio))
		return -EINVAL;
	pthread_mutex_lock(&p->slots_lock);
	n = atomic_load(&p->n);
	for (i = 0; i < n; i++) {
		pid_t tid = atomic_load(&p->w[i]->tid);
		if (tid > 0 && sched_setscheduler(tid, policy, &sp) < 0) {
			rc = -errno;
			break;
		}
	}
	if (rc) {
		/* all or none: put back the workers already changed */
		struct sched_param old = { .sched_priority = p->sched_prio };
		for (int k = 0; k < i; k++) {
			pid_t tid = atomic_load(&p->w[k]->tid);
			if (tid > 0)
				(void)sched_setscheduler(tid, p->sched_policy, &old);
		}
	} else {
		bool rt = policy != SCHED_OTHER;
		p->sched_policy = policy;
		p->sched_prio = prio;
		atomic_store(&p->spin_ns, rt ? PAUSE_NS : SPIN_NS);
		atomic_store(&p->bar_spin_ns, rt ? PAUSE_NS : BARRIER_SPIN_NS);
	}
	pthread_mutex_unlock(&p->slots_lock);
	return rc;
}

void tpool_get_sched(const struct tpool *cp, int *policy, int *prio)
{
	struct tpool *p = (struct tpool *)cp;

	pthread_mutex_lock(&p->slots_lock);
	if (policy)
		*policy = p->sched_policy;
	if (prio)
		*prio = p->sched_prio;
	pthread_mutex_unlock(&p->slots_lock);
}
