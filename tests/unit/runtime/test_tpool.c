/*
 * test_tpool.c: the thread pool's contract: every chunk of a stage is claimed
 * exactly once, barriers separate stages (under stress), the pool can be
 * resized many times from another thread while runs go on (no deadlock, the
 * results stay right), worker affinity reads back from the kernel by thread
 * id, the per-worker statistics move, and the workers' scheduling class
 * (SCHED_FIFO/RR/OTHER) reads back by thread id, all or none, new workers
 * included. Run it under TSan as well
 * (make SANITIZE=thread).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dify-edge-core/runtime/tpool.h"

/* ---------------------------------------------------- chunks exactly once */

#define NCHUNK 1000
#define NSTAGE 3

struct chunk_job {
	struct tpool *p;
	_Atomic int claimed[NSTAGE][NCHUNK];
	_Atomic int overrun; /* indexes >= NCHUNK claimed: fine, just counted */
	_Atomic int calls;
	_Atomic int bad_nth;
	int want_nth;
};

static void chunk_fn(void *arg, int ith, int nth)
{
	struct chunk_job *j = arg;

	atomic_fetch_add(&j->calls, 1);
	if (nth != j->want_nth || ith < 0 || ith >= nth)
		atomic_fetch_add(&j->bad_nth, 1);
	for (int s = 0; s < NSTAGE; s++) {
		int64_t c;
		while ((c = tpool_chunk_next(j->p)) < NCHUNK)
			atomic_fetch_add(&j->claimed[s][c], 1);
		atomic_fetch_add(&j->overrun, 1);
		tpool_barrier(j->p, ith);
	}
}

static void test_chunks_once(void **state)
{
	static const int sizes[] = {1, 2, 3, 4, 7};
	(void)state;

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		char err[128] = "";
		struct tpool *p = tpool_new(sizes[si], err, sizeof(err));
		assert_non_null(p);
		assert_int_equal(tpool_size(p), sizes[si]);
		for (int rep = 0; rep < 20; rep++) {
			struct chunk_job *j = calloc(1, sizeof(*j));
			assert_non_null(j);
			j->p = p;
			j->want_nth = sizes[si];
			tpool_run(p, chunk_fn, j);
			assert_int_equal(atomic_load(&j->calls), sizes[si]);
			assert_int_equal(atomic_load(&j->bad_nth), 0);
			for (int s = 0; s < NSTAGE; s++)
				for (int c = 0; c < NCHUNK; c++)
					if (atomic_load(&j->claimed[s][c]) != 1)
						fail_msg("n=%d stage %d chunk %d claimed %d times",
							 sizes[si], s, c, atomic_load(&j->claimed[s][c]));
			free(j);
		}
		tpool_free(p);
	}
}

/* ------------------------------------------------------ barrier stress */

#define BAR_ROUNDS 2000

struct bar_job {
	struct tpool *p;
	_Atomic int slot[TPOOL_MAX_THREADS];
	_Atomic int errors;
};

static void bar_fn(void *arg, int ith, int nth)
{
	struct bar_job *j = arg;

	for (int r = 1; r <= BAR_ROUNDS; r++) {
		atomic_store_explicit(&j->slot[ith], r, memory_order_relaxed);
		tpool_barrier(j->p, ith);
		/* everyone has written round r, nobody has written r+1 */
		for (int i = 0; i < nth; i++)
			if (atomic_load_explicit(&j->slot[i], memory_order_relaxed) != r)
				atomic_fetch_add(&j->errors, 1);
		tpool_barrier(j->p, ith);
	}
}

static void test_barrier_stress(void **state)
{
	static const int sizes[] = {2, 3, 4};
	(void)state;

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		struct tpool *p = tpool_new(sizes[si], NULL, 0);
		struct bar_job j;
		assert_non_null(p);
		memset(&j, 0, sizeof(j));
		j.p = p;
		tpool_run(p, bar_fn, &j);
		assert_int_equal(atomic_load(&j.errors), 0);
		tpool_free(p);
	}
}

/* --------------------------------------------- resize while runs go on */

#define SUM_N 100000

struct sum_job {
	struct tpool *p;
	const int32_t *data;
	_Atomic int64_t sum;
	_Atomic int max_nth;
};

static void sum_fn(void *arg, int ith, int nth)
{
	struct sum_job *j = arg;
	int64_t c, s = 0;

	(void)ith;
	if (nth > atomic_load(&j->max_nth))
		atomic_store(&j->max_nth, nth);
	while ((c = tpool_chunk_next(j->p)) * 1000 < SUM_N) {
		for (int64_t i = c * 1000; i < (c + 1) * 1000 && i < SUM_N; i++)
			s += j->data[i];
	}
	atomic_fetch_add(&j->sum, s);
}

struct resizer {
	struct tpool *p;
	int times;
	_Atomic int done;
	int errors;
};

static void *resize_thread(void *arg)
{
	struct resizer *r = arg;
	unsigned seed = 12345;

	for (int i = 0; i < r->times; i++) {
		int n = 1 + (int)(rand_r(&seed) % 4);
		if (tpool_resize(r->p, n) != 0 || tpool_size(r->p) != n)
			r->errors++;
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		if (i % 7 == 0 && tpool_set_affinity(r->p, i % 4, (i & 8) ? &set : NULL) != 0)
			r->errors++;
	}
	atomic_store(&r->done, 1);
	return NULL;
}

static void test_resize_while_running(void **state)
{
	int32_t *data = malloc(SUM_N * sizeof(*data));
	int64_t want = 0;
	pthread_t th;
	struct resizer r = {.times = 300};
	int runs = 0;
	(void)state;

	assert_non_null(data);
	for (int i = 0; i < SUM_N; i++) {
		data[i] = (i * 7919) % 1000 - 500;
		want += data[i];
	}
	r.p = tpool_new(2, NULL, 0);
	assert_non_null(r.p);
	assert_int_equal(pthread_create(&th, NULL, resize_thread, &r), 0);
	while (!atomic_load(&r.done) || runs < 100) {
		struct sum_job j = {.p = r.p, .data = data};
		tpool_run(r.p, sum_fn, &j);
		if (atomic_load(&j.sum) != want)
			fail_msg("run %d: sum %lld, want %lld", runs,
				 (long long)atomic_load(&j.sum), (long long)want);
		runs++;
	}
	pthread_join(th, NULL);
	assert_int_equal(r.errors, 0);
	print_message("%d runs during %d resizes\n", runs, r.times);
	tpool_free(r.p);
	free(data);
}

/* Two threads calling tpool_run at once take turns. */
struct runner {
	struct tpool *p;
	const int32_t *data;
	int64_t want;
	int bad;
};

static void *runner_thread(void *arg)
{
	struct runner *r = arg;
	for (int i = 0; i < 200; i++) {
		struct sum_job j = {.p = r->p, .data = r->data};
		tpool_run(r->p, sum_fn, &j);
		if (atomic_load(&j.sum) != r->want)
			r->bad++;
	}
	return NULL;
}

static void test_concurrent_runs(void **state)
{
	int32_t *data = malloc(SUM_N * sizeof(*data));
	struct runner r[2];
	pthread_t th[2];
	int64_t want = 0;
	(void)state;

	assert_non_null(data);
	for (int i = 0; i < SUM_N; i++) {
		data[i] = i % 13;
		want += data[i];
	}
	struct tpool *p = tpool_new(3, NULL, 0);
	assert_non_null(p);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct runner){.p = p, .data = data, .want = want};
		assert_int_equal(pthread_create(&th[i], NULL, runner_thread, &r[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].bad, 0);
	}
	tpool_free(p);
	free(data);
}

/* ------------------------------------------------------------ affinity */

static int allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

static void spin_fn(void *arg, int ith, int nth)
{
	volatile uint64_t x = 0;
	(void)arg; (void)ith; (void)nth;
	for (int i = 0; i < 200000; i++)
		x += (uint64_t)i;
}

static void test_affinity(void **state)
{
	int cpus[8], ncpu = allowed_cpus(cpus, 8);
	struct tpool_worker_stats st[4];
	(void)state;

	if (ncpu < 1) {
		print_message("skip: sched_getaffinity failed\n");
		skip();
	}
	struct tpool *p = tpool_new(2, NULL, 0);
	assert_non_null(p);
	/* worker i on cpus[i % ncpu]; worker 2 (not started yet) remembered */
	for (int i = 0; i < 3; i++) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpus[(i + 1) % ncpu], &set);
		assert_int_equal(tpool_set_affinity(p, i, &set), 0);
	}
	assert_int_equal(tpool_resize(p, 3), 0);
	tpool_run(p, spin_fn, NULL);
	assert_int_equal(tpool_stats(p, st, 4), 3);
	for (int i = 0; i < 3; i++) {
		cpu_set_t got;
		assert_true(st[i].tid > 0);
		assert_int_equal(sched_getaffinity(st[i].tid, sizeof(got), &got), 0);
		assert_int_equal(CPU_COUNT(&got), 1);
		assert_true(CPU_ISSET(cpus[(i + 1) % ncpu], &got));
		/* it ran there, since the kernel cannot run it elsewhere */
		assert_int_equal(st[i].cpu, cpus[(i + 1) % ncpu]);
	}
	/* back to every CPU */
	assert_int_equal(tpool_set_affinity_all(p, NULL), 0);
	assert_int_equal(tpool_stats(p, st, 4), 3);
	for (int i = 0; i < 3; i++) {
		cpu_set_t got;
		assert_int_equal(sched_getaffinity(st[i].tid, sizeof(got), &got), 0);
		assert_int_equal(CPU_COUNT(&got), ncpu);
	}
	assert_int_equal(tpool_set_affinity(p, TPOOL_MAX_THREADS, NULL), -EINVAL);
	tpool_free(p);
}

/* --------------------------------------------------------------- stats */

static void test_stats(void **state)
{
	struct tpool_worker_stats a[4], b[4];
	(void)state;

	struct tpool *p = tpool_new(2, NULL, 0);
	assert_non_null(p);
	assert_int_equal(tpool_stats(p, a, 4), 2);
	assert_true(a[0].tid > 0 && a[1].tid > 0);
	assert_true(a[0].tid != a[1].tid);
	assert_true(a[0].tid != (pid_t)syscall(SYS_gettid));
	for (int i = 0; i < 10; i++)
		tpool_run(p, spin_fn, NULL);
	usleep(20000); /* idle: asleep by now; idle time must still grow */
	assert_int_equal(tpool_stats(p, b, 4), 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(b[i].tid, a[i].tid);
		assert_int_equal(b[i].runs, a[i].runs + 10);
		assert_true(b[i].busy_ns > a[i].busy_ns);
		assert_true(b[i].idle_ns >= a[i].idle_ns + 15000000ull);
		assert_true(b[i].cpu >= 0);
	}
	/* fewer out slots than workers: returns the count, fills max */
	assert_int_equal(tpool_stats(p, b, 1), 2);
	tpool_free(p);
}

/* ------------------------------------------------------ scheduling class */

static void check_class(struct tpool *p, int n, int policy, int prio)
{
	struct tpool_worker_stats st[8];

	assert_int_equal(tpool_stats(p, st, 8), n);
	for (int i = 0; i < n; i++) {
		struct sched_param sp;
		assert_true(st[i].tid > 0);
		assert_int_equal(st[i].policy, policy);
		assert_int_equal(st[i].prio, prio);
		/* and as the kernel says it, by thread id */
		assert_int_equal(sched_getscheduler(st[i].tid), policy);
		assert_int_equal(sched_getparam(st[i].tid, &sp), 0);
		assert_int_equal(sp.sched_priority, prio);
	}
}

static void test_sched_class(void **state)
{
	int pol, prio, rc;
	(void)state;

	struct tpool *p = tpool_new(2, NULL, 0);
	assert_non_null(p);
	check_class(p, 2, SCHED_OTHER, 0);
	/* bad arguments change nothing */
	assert_int_equal(tpool_set_sched(p, SCHED_FIFO, 0), -EINVAL);
	assert_int_equal(tpool_set_sched(p, SCHED_FIFO, 100), -EINVAL);
	assert_int_equal(tpool_set_sched(p, SCHED_OTHER, 5), -EINVAL);
	assert_int_equal(tpool_set_sched(p, 42, 1), -EINVAL);
	check_class(p, 2, SCHED_OTHER, 0);

	rc = tpool_set_sched(p, SCHED_FIFO, 1);
	if (rc == -EPERM) {
		/* all or none: nobody was left real-time */
		check_class(p, 2, SCHED_OTHER, 0);
		tpool_get_sched(p, &pol, &prio);
		assert_int_equal(pol, SCHED_OTHER);
		tpool_free(p);
		print_message("skip: SCHED_FIFO refused here (EPERM: no CAP_SYS_NICE, or no cpu.rt_runtime_us budget "
			      "in this cgroup); the refusal left every worker SCHED_OTHER\n");
		skip();
	}
	assert_int_equal(rc, 0);
	tpool_get_sched(p, &pol, &prio);
	assert_int_equal(pol, SCHED_FIFO);
	assert_int_equal(prio, 1);
	check_class(p, 2, SCHED_FIFO, 1);
	/* a worker started later takes the class; runs stay exact */
	assert_int_equal(tpool_resize(p, 3), 0);
	check_class(p, 3, SCHED_FIFO, 1);
	struct chunk_job *j = calloc(1, sizeof(*j));
	assert_non_null(j);
	j->p = p;
	j->want_nth = 3;
	for (int r = 0; r < 20; r++)
		tpool_run(p, chunk_fn, j);
	for (int s = 0; s < NSTAGE; s++)
		for (int c = 0; c < NCHUNK; c++)
			assert_int_equal(atomic_load(&j->claimed[s][c]), 20);
	assert_int_equal(atomic_load(&j->bad_nth), 0);
	free(j);
	assert_int_equal(tpool_set_sched(p, SCHED_RR, 2), 0);
	check_class(p, 3, SCHED_RR, 2);
	/* and back */
	assert_int_equal(tpool_set_sched(p, SCHED_OTHER, 0), 0);
	check_class(p, 3, SCHED_OTHER, 0);
	assert_int_equal(tpool_resize(p, 4), 0);
	check_class(p, 4, SCHED_OTHER, 0);
	tpool_free(p);
}

struct nested {
	struct tpool *p;
	_Atomic int rc;
};

static void resize_inside_fn(void *arg, int ith, int nth)
{
	struct nested *j = arg;
	(void)nth;
	if (ith == 0)
		atomic_store(&j->rc, tpool_resize(j->p, 3));
}

static void test_resize_from_inside_run(void **state)
{
	(void)state;
	struct nested j = {.p = tpool_new(2, NULL, 0)};
	assert_non_null(j.p);
	tpool_run(j.p, resize_inside_fn, &j);
	assert_int_equal(atomic_load(&j.rc), -EDEADLK);
	assert_int_equal(tpool_size(j.p), 2);
	tpool_free(j.p);
}

static void test_bad_sizes(void **state)
{
	char err[128] = "";
	(void)state;

	assert_null(tpool_new(0, err, sizeof(err)));
	assert_non_null(strstr(err, "out of range"));
	assert_null(tpool_new(TPOOL_MAX_THREADS + 1, NULL, 0));
	struct tpool *p = tpool_new(1, NULL, 0);
	assert_non_null(p);
	assert_int_equal(tpool_resize(p, 0), -EINVAL);
	assert_int_equal(tpool_size(p), 1);
	tpool_free(p);
	tpool_free(NULL);
}

/* Never more threads than asked: count the process's threads. */
static int count_threads(void)
{
	int n = 0;
	/* the Threads: line of /proc/self/status is the kernel's count */
	FILE *st = fopen("/proc/self/status", "r");
	char line[256];
	if (!st)
		return -1;
	while (fgets(line, sizeof(line), st))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(st);
	return n;
}

#define SETTLE_NS 2000000000ll /* how long a count may take to settle */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * The count once it reaches want, or the last one read after SETTLE_NS.
 * On a native kernel a joined thread is gone from the count at once, but
 * under qemu-user pthread_join() returns when the emulated thread clears its
 * tid, a moment before the host thread that ran it exits, so the count lags
 * a join. Starting a thread is never late (clone() has returned), so the
 * extra threads seen while polling are only ones on their way out.
 */
static int threads_settled(int want)
{
	int64_t end = now_ns() + SETTLE_NS;
	int n;

	while ((n = count_threads()) != want && now_ns() < end)
		usleep(1000);
	return n;
}

/* The count before the pool: earlier tests' joined threads may still be
 * leaving (qemu-user), so wait until it has held still for 100 ms. */
static int base_settled(void)
{
	int64_t end = now_ns() + SETTLE_NS, still = now_ns();
	int n = count_threads(), m;

	while (n >= 0 && now_ns() < end && now_ns() - still < 100000000ll) {
		usleep(1000);
		if ((m = count_threads()) != n) {
			n = m;
			still = now_ns();
		}
	}
	return n;
}

static void test_thread_count(void **state)
{
	(void)state;
	int base = base_settled();
	if (base < 0) {
		print_message("skip: /proc/self/status unreadable\n");
		skip();
	}
	struct tpool *p = tpool_new(3, NULL, 0);
	assert_non_null(p);
	/* growing: clone() has returned for every worker, none may be extra */
	assert_int_equal(count_threads(), base + 3);
	assert_int_equal(tpool_resize(p, 1), 0);
	assert_int_equal(threads_settled(base + 1), base + 1);
	assert_int_equal(tpool_resize(p, 2), 0);
	assert_int_equal(threads_settled(base + 2), base + 2);
	/* and it stays there: no late starter */
	usleep(20000);
	assert_int_equal(count_threads(), base + 2);
	tpool_free(p);
	assert_int_equal(threads_settled(base), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_once),
		cmocka_unit_test(test_barrier_stress),
		cmocka_unit_test(test_resize_while_running),
		cmocka_unit_test(test_concurrent_runs),
		cmocka_unit_test(test_affinity),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_resize_from_inside_run),
		cmocka_unit_test(test_thread_count),
		cmocka_unit_test(test_sched_class),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
