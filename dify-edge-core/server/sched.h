/*
 * sched.h: the request scheduler: a bounded FIFO queue feeding P decoding
 * slots, each slot a thread that owns one model session.
 *
 * DESIGN
 * HTTP threads create a job (a refcounted object carrying a caller payload),
 * submit it, then read its output as it grows. A full queue refuses at once
 * (-EAGAIN: the server answers 503 + Retry-After) so that latency stays
 * bounded instead of requests piling up. Slot threads pop jobs in order and
 * call the run function with their slot index; the run function appends text
 * to the job with sched_job_emit() and checks sched_job_cancelled() between
 * tokens. A client that disconnects cancels its job: a queued job is then
 * skipped, a running one stops at its next token and frees its slot.
 *
 * The forward passes of all slots go through the one compute thread pool
 * (tpool_run serializes them), so P slots interleave token by token: P
 * concurrent streams each get about 1/P of the generation speed, and the
 * time to first token of a new request does not wait for others to finish.
 *
 * Output buffer: the job keeps all emitted text (bounded by max_tokens);
 * readers keep their own offset, so the streaming reader and the final
 * response both read the same bytes.
 */
#ifndef SERVER_SCHED_H
#define SERVER_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched;
struct sched_job;

/* Runs on slot thread `slot` (0..P-1). Emit text, then return; the
 * scheduler finishes the job after run returns (status from
 * sched_job_set_status, default 0). */
typedef void (*sched_run_fn)(void *ud, int slot, struct sched_job *job);

struct sched *sched_new(int n_slots, int queue_cap, sched_run_fn run, void *ud,
			char *err, size_t errlen);
/* Cancels queued and running jobs, waits for the slots to stop, joins
 * them. NULL is a no-op. */
void sched_free(struct sched *s);

/* 0, -EAGAIN (queue full), -ESHUTDOWN (draining). Takes a reference. */
int sched_submit(struct sched *s, struct sched_job *j);
/* Refuse new jobs from now on (SIGTERM). */
void sched_stop_accepting(struct sched *s);
/* Wait until no job is queued or running; 0, or -ETIMEDOUT. */
int sched_wait_idle(struct sched *s, int timeout_ms);

struct sched_stats {
	int n_slots, busy, queue_cap, queued;
	uint64_t submitted, rejected, completed, cancelled;
};
void sched_stats(struct sched *s, struct sched_stats *out);

/* ---- jobs ---- */
/* payload is owned by the job from now on and freed by payload_free (may be
 * NULL) with the last reference. Returns NULL on ENOMEM (payload freed). */
struct sched_job *sched_job_new(void *payload, void (*payload_free)(void *));
void *sched_job_payload(struct sched_job *j);
void sched_job_ref(struct sched_job *j);
void sched_job_unref(struct sched_job *j); /* NULL is a no-op */

void sched_job_cancel(struct sched_job *j);
bool sched_job_cancelled(struct sched_job *j);
/* Worker side: append output (wakes readers); -ENOMEM. */
int sched_job_emit(struct sched_job *j, const char *text, size_t len);
void sched_job_set_status(struct sched_job *j, int status);

/* Reader side: wait up to timeout_ms (< 0: forever) for output beyond *off
 * or the end. On return *text (malloc'd, caller frees, may be NULL when
 * nothing new) holds the new bytes, *off advances, *done tells whether the
 * job has finished (and everything was read). Returns 0, or -ETIMEDOUT when
 * nothing happened, -ENOMEM. */
int sched_job_read(struct sched_job *j, size_t *off, int timeout_ms, char **text,
		   size_t *len, bool *done);
/* After done: the status the worker set (0 success, or negative errno). */
int sched_job_status(struct sched_job *j);
bool sched_job_done(struct sched_job *j);
/* Monotonic ns: when submitted and when a slot took it (0: not yet). */
int64_t sched_job_submitted_ns(struct sched_job *j);
int64_t sched_job_started_ns(struct sched_job *j);

int64_t sched_now_ns(void);

#endif
