/*
 * sched.c: bounded queue + slot threads (see sched.h).
 *
 * One mutex guards the queue and the counters; each job has its own mutex
 * and condition variable for its output, so readers of different jobs never
 * contend. The queue is a ring of n_slots + queue_cap pointers: the jobs
 * waiting plus those a free slot is about to take.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dify-edge-core/server/sched.h"

struct sched_job {
	atomic_int refs;
	atomic_bool cancelled;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *out;
	size_t out_len, out_cap;
	bool done;
	int status;
	int64_t submitted_ns, started_ns;
	void *payload;
	void (*payload_free)(void *);
};

struct sched_slot {
	struct sched *s;
	int idx;
	pthread_t th;
	bool started;
	struct sched_job *running; /* under s->mu */
};

struct sched {
	pthread_mutex_t mu;
	pthread_cond_t cv_work; /* queue not empty or stopping */
	pthread_cond_t cv_idle; /* a job finished */
	struct sched_job **ring; /* ringsz = n_slots + cap: waiting + about to start */
	int cap, ringsz, head, count;
	int n_slots, busy;
	bool accepting, stopping;
	struct sched_slot *slots;
	sched_run_fn run;
	void *ud;
	uint64_t submitted, rejected, completed, cancelled;
};

int64_t sched_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* ---- jobs ---- */

struct sched_job *sched_job_new(void *payload, void (*payload_free)(void *))
{
	struct sched_job *j = calloc(1, sizeof(*j));
	if (!j) {
		if (payload_free)
			payload_free(payload);
		return NULL;
	}
	atomic_init(&j->refs, 1);
	atomic_init(&j->cancelled, false);
	pthread_mutex_init(&j->mu, NULL);
	cond_init_mono(&j->cv);
	j->payload = payload;
	j->payload_free = payload_free;
	return j;
}

void *sched_job_payload(struct sched_job *j)
{
	return j->payload;
}

void sched_job_ref(struct sched_job *j)
{
	atomic_fetch_add(&j->refs, 1);
}

void sched_job_unref(struct sched_job *j)
{
	if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	if (j->payload_free)
		j->payload_free(j->payload);
	free(j->out);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

void sched_job_cancel(struct sched_job *j)
{
	atomic_store(&j->cancelled, true);
	pthread_mutex_lock(&j->mu);
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

bool sched_job_cancelled(struct sched_job *j)
{
	return atomic_load(&j->cancelled);
}

int sched_job_emit(struct sched_job *j, const char *text, size_t len)
{
	int err = 0;
	if (!len)
		return 0;
	pthread_mutex_lock(&j->mu);
	if (j->out_len + len + 1 > j->out_cap) {
		size_t nc = j->out_cap ? j->out_cap : 256;
		while (nc < j->out_len + len + 1)
			nc *= 2;
		char *n = realloc(j->out, nc);
		if (!n) {
			err = -ENOMEM;
			goto out;
		}
		j->out = n;
		j->out_cap = nc;
	}
	memcpy(j->out + j->out_len, text, len);
	j->out_len += len;
	j->out[j->out_len] = 0;
	pthread_cond_broadcast(&j->cv);
out:
	pthread_mutex_unlock(&j->mu);
	return err;
}

void sched_job_set_status(struct sched_job *j, int status)
{
	pthread_mutex_lock(&j->mu);
	j->status = status;
	pthread_mutex_unlock(&j->mu);
}

static void job_finish(struct sched_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

int sched_job_read(struct sched_job *j, size_t *off, int timeout_ms, char **text,
		   size_t *len, bool *done)
{
	int err = 0;
	struct timespec dl;

	*text = NULL;
	*len = 0;
	*done = false;
	if (timeout_ms >= 0)
		deadline_in(&dl, timeout_ms);
	pthread_mutex_lock(&j->mu);
	while (j->out_len <= *off && !j->done && !atomic_load(&j->cancelled)) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&j->cv, &j->mu);
		} else if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) == ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	}
	if (j->out_len > *off) {
		*len = j->out_len - *off;
		*text = malloc(*len + 1);
		if (!*text) {
			*len = 0;
			err = -ENOMEM;
			goto out;
		}
		memcpy(*text, j->out + *off, *len);
		(*text)[*len] = 0;
		*off = j->out_len;
		err = 0;
	}
	*done = j->done && *off == j->out_len;
out:
	pthread_mutex_unlock(&j->mu);
	return err;
}

int sched_job_status(struct sched_job *j)
{
	int s;
	pthread_mutex_lock(&j->mu);
	s = j->status;
	pthread_mutex_unlock(&j->mu);
	return s;
}

bool sched_job_done(struct sched_job *j)
{
	bool d;
	pthread_mutex_lock(&j->mu);
	d = j->done;
	pthread_mutex_unlock(&j->mu);
	return d;
}

int64_t sched_job_submitted_ns(struct sched_job *j)
{
	return j->submitted_ns;
}

int64_t sched_job_started_ns(struct sched_job *j)
{
	int64_t t;
	pthread_mutex_lock(&j->mu);
	t = j->started_ns;
	pthread_mutex_unlock(&j->mu);
	return t;
}

/* ---- scheduler ---- */

static void *slot_main(void *arg)
{
	struct sched_slot *sl = arg;
	struct sched *s = sl->s;

	for (;;) {
		struct sched_job *j;
		pthread_mutex_lock(&s->mu);
		while (!s->count && !s->stopping)
			pthread_cond_wait(&s->cv_work, &s->mu);
		if (!s->count && s->stopping) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		j = s->ring[s->head];
		s->head = (s->head + 1) % s->ringsz;
		s->count--;
		s->busy++;
		sl->running = j;
		if (s->stopping)
			sched_job_cancel(j);
		pthread_mutex_unlock(&s->mu);

		pthread_mutex_lock(&j->mu);
		j->started_ns = sched_now_ns();
		pthread_mutex_unlock(&j->mu);
		bool skipped = sched_job_cancelled(j);
		if (!skipped)
			s->run(s->ud, sl->idx, j);
		bool was_cancelled = sched_job_cancelled(j);
		job_finish(j);

		/* forget the job under the lock before dropping our reference:
		 * sched_free() cancels running jobs through sl->running */
		pthread_mutex_lock(&s->mu);
		sl->running = NULL;
		s->busy--;
		if (was_cancelled)
			s->cancelled++;
		else
			s->completed++;
		pthread_cond_broadcast(&s->cv_idle);
		pthread_mutex_unlock(&s->mu);
		sched_job_unref(j);
	}
	return NULL;
}

struct sched *sched_new(int n_slots, int queue_cap, sched_run_fn run, void *ud,
			char *err, size_t errlen)
{
	struct sched *s = NULL;

	if (n_slots < 1 || n_slots > 256 || queue_cap < 0 || queue_cap > 1 << 20 || !run) {
		snprintf(err, errlen, "scheduler: slots must be 1..256 and queue 0..%d (got %d, %d)", 1 << 20,
			 n_slots, queue_cap);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv_work, NULL);
	cond_init_mono(&s->cv_idle);
	s->cap = queue_cap;
	s->ringsz = n_slots + queue_cap;
	s->ring = calloc((size_t)s->ringsz, sizeof(*s->ring));
	s->slots = calloc((size_t)n_slots, sizeof(*s->slots));
	if (!s->ring || !s->slots)
		goto oom;
	s->run = run;
	s->ud = ud;
	s->accepting = true;
	s->n_slots = n_slots;
	for (int i = 0; i < n_slots; i++) {
		s->slots[i].s = s;
		s->slots[i].idx = i;
		if (pthread_create(&s->slots[i].th, NULL, slot_main, &s->slots[i])) {
			snprintf(err, errlen, "scheduler: cannot start slot thread %d", i);
			sched_free(s);
			return NULL;
		}
		s->slots[i].started = true;
	}
	return s;
oom:
	snprintf(err, errlen, "scheduler: out of memory");
	sched_free(s);
	return NULL;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->accepting = false;
	s->stopping = true;
	/* cancel what is queued (slots skip it) and what is running (it stops
	 * at its next token) */
	for (int i = 0; i < s->count; i++)
		sched_job_cancel(s->ring[(s->head + i) % s->ringsz]);
	for (int i = 0; s->slots && i < s->n_slots; i++)
		if (s->slots[i].running)
			sched_job_cancel(s->slots[i].running);
	pthread_cond_broadcast(&s->cv_work);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; s->slots && i < s->n_slots; i++)
		if (s->slots[i].started)
			pthread_join(s->slots[i].th, NULL);
	free(s->slots);
	free(s->ring);
	pthread_cond_destroy(&s->cv_work);
	pthread_cond_destroy(&s->cv_idle);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int sched_submit(struct sched *s, struct sched_job *j)
{
	int err = 0;
	pthread_mutex_lock(&s->mu);
	if (!s->accepting) {
		err = -ESHUTDOWN;
		goto out;
	}
	/* free slots take jobs at once; beyond them, at most cap may wait */
	if (s->count + s->busy >= s->ringsz) {
		s->rejected++;
		err = -EAGAIN;
		goto out;
	}
	sched_job_ref(j);
	j->submitted_ns = sched_now_ns();
	s->ring[(s->head + s->count) % s->ringsz] = j;
	s->count++;
	s->submitted++;
	pthread_cond_signal(&s->cv_work);
out:
	pthread_mutex_unlock(&s->mu);
	return err;
}

void sched_stop_accepting(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	s->accepting = false;
	pthread_mutex_unlock(&s->mu);
}

int sched_wait_idle(struct sched *s, int timeout_ms)
{
	int err = 0;
	struct timespec dl;
	deadline_in(&dl, timeout_ms);
	pthread_mutex_lock(&s->mu);
	while (s->count || s->busy) {
		if (pthread_cond_timedwait(&s->cv_idle, &s->mu, &dl) == ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return err;
}

void sched_stats(struct sched *s, struct sched_stats *out)
{
	pthread_mutex_lock(&s->mu);
	out->n_slots = s->n_slots;
	out->busy = s->busy;
	out->queue_cap = s->cap;
	/* jobs in the ring that a free slot is about to take are not waiting */
	int free_slots = s->n_slots - s->busy;
	out->queued = s->count > free_slots ? s->count - free_slots : 0;
	out->submitted = s->submitted;
	out->rejected = s->rejected;
	out->completed = s->completed;
	out->cancelled = s->cancelled;
	pthread_mutex_unlock(&s->mu);
}
