/*
 * test_sched.c: the scheduler with a fake run function: output streaming,
 * P busy slots plus a bounded queue (a full queue refuses), cancellation of
 * running and queued jobs frees the slot, draining.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dify-edge-core/server/sched.h"

struct payload {
	int mode;   /* 0: emit n words; 1: loop until cancelled; 2: wait for gate */
	int n;
	atomic_int *ran;
};

static atomic_int gate;

static void run(void *ud, int slot, struct sched_job *j)
{
	struct payload *p = sched_job_payload(j);
	char w[32];
	atomic_fetch_add(p->ran, 1);
	if (p->mode == 0) {
		for (int i = 0; i < p->n; i++) {
			int n = snprintf(w, sizeof(w), "w%d ", i);
			sched_job_emit(j, w, (size_t)n);
		}
		sched_job_set_status(j, 0);
	} else if (p->mode == 1) {
		while (!sched_job_cancelled(j)) {
			sched_job_emit(j, "x", 1);
			usleep(1000);
		}
		sched_job_set_status(j, -ECANCELED);
	} else {
		while (!atomic_load(&gate) && !sched_job_cancelled(j))
			usleep(1000);
		sched_job_emit(j, "ok", 2);
	}
}

static struct sched_job *mkjob(int mode, int n, atomic_int *ran)
{
	struct payload *p = calloc(1, sizeof(*p));
	p->mode = mode;
	p->n = n;
	p->ran = ran;
	return sched_job_new(p, free);
}

static char *read_all(struct sched_job *j)
{
	size_t off = 0, len, tot = 0;
	char *acc = calloc(1, 1), *t;
	bool done = false;
	while (!done) {
		int rc = sched_job_read(j, &off, 5000, &t, &len, &done);
		assert_true(rc == 0 || rc == -ETIMEDOUT);
		if (t) {
			acc = realloc(acc, tot + len + 1);
			memcpy(acc + tot, t, len + 1);
			tot += len;
			free(t);
		}
	}
	return acc;
}

static void test_stream(void **state)
{
	char err[128];
	atomic_int ran = 0;
	struct sched *s = sched_new(2, 4, run, NULL, err, sizeof(err));
	assert_non_null(s);
	struct sched_job *j = mkjob(0, 5, &ran);
	assert_int_equal(sched_submit(s, j), 0);
	char *out = read_all(j);
	assert_string_equal(out, "w0 w1 w2 w3 w4 ");
	free(out);
	assert_true(sched_job_done(j));
	assert_int_equal(sched_job_status(j), 0);
	assert_true(sched_job_started_ns(j) >= sched_job_submitted_ns(j));
	sched_job_unref(j);
	sched_free(s);
}

static void test_full_queue(void **state)
{
	char err[128];
	atomic_int ran = 0;
	struct sched_stats st;
	struct sched_job *j[6];
	atomic_store(&gate, 0);
	struct sched *s = sched_new(2, 2, run, NULL, err, sizeof(err));
	for (int i = 0; i < 6; i++)
		j[i] = mkjob(2, 0, &ran);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sched_submit(s, j[i]), 0);
	/* wait for both slots to pick a job */
	for (int t = 0; t < 2000 && atomic_load(&ran) < 2; t++)
		usleep(1000);
	sched_stats(s, &st);
	assert_int_equal(st.busy, 2);
	assert_int_equal(st.queued, 2);
	assert_int_equal(sched_submit(s, j[4]), -EAGAIN);
	sched_stats(s, &st);
	assert_int_equal(st.rejected, 1);
	atomic_store(&gate, 1);
	for (int i = 0; i < 4; i++) {
		char *o = read_all(j[i]);
		assert_string_equal(o, "ok");
		free(o);
	}
	assert_int_equal(sched_wait_idle(s, 5000), 0);
	assert_int_equal(sched_submit(s, j[5]), 0);
	free(read_all(j[5]));
	sched_stop_accepting(s);
	assert_int_equal(sched_submit(s, j[4]), -ESHUTDOWN);
	for (int i = 0; i < 6; i++)
		sched_job_unref(j[i]);
	sched_free(s);
}

static void test_cancel(void **state)
{
	char err[128];
	atomic_int ran = 0;
	struct sched_stats st;
	struct sched *s = sched_new(1, 2, run, NULL, err, sizeof(err));
	struct sched_job *a = mkjob(1, 0, &ran), *b = mkjob(0, 1, &ran), *c = mkjob(0, 2, &ran);
	assert_int_equal(sched_submit(s, a), 0);
	assert_int_equal(sched_submit(s, b), 0);
	assert_int_equal(sched_submit(s, c), 0);
	sched_job_cancel(b); /* queued: must be skipped */
	size_t off = 0, len;
	char *t;
	bool done;
	assert_int_equal(sched_job_read(a, &off, 5000, &t, &len, &done), 0);
	free(t);
	sched_job_cancel(a); /* running: must stop and free the slot */
	char *o = read_all(c);
	assert_string_equal(o, "w0 w1 ");
	free(o);
	assert_true(sched_job_done(a));
	assert_int_equal(sched_job_status(a), -ECANCELED);
	assert_int_equal(sched_wait_idle(s, 5000), 0);
	assert_int_equal(atomic_load(&ran), 2); /* a and c, not b */
	sched_stats(s, &st);
	assert_int_equal(st.cancelled, 2);
	assert_int_equal(st.completed, 1);
	assert_int_equal(st.busy, 0);
	sched_job_unref(a);
	sched_job_unref(b);
	sched_job_unref(c);
	sched_free(s);
}

static void test_free_with_queued(void **state)
{
	char err[128];
	atomic_int ran = 0;
	atomic_store(&gate, 0);
	struct sched *s = sched_new(1, 3, run, NULL, err, sizeof(err));
	struct sched_job *j[3];
	for (int i = 0; i < 3; i++) {
		j[i] = mkjob(2, 0, &ran);
		assert_int_equal(sched_submit(s, j[i]), 0);
	}
	for (int t = 0; t < 2000 && atomic_load(&ran) < 1; t++)
		usleep(1000);
	sched_job_cancel(j[0]);
	sched_free(s); /* must not hang; queued jobs finish cancelled */
	for (int i = 0; i < 3; i++) {
		assert_true(sched_job_done(j[i]));
		sched_job_unref(j[i]);
	}
	assert_null(sched_new(0, 1, run, NULL, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_full_queue),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_free_with_queued),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
