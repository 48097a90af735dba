/*
 * metrics.h: the server's counters and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * Counters and histograms live here and are updated from any thread (one
 * mutex; updates are a few additions per request or per token). Gauges
 * (queue length, busy slots, pool size, KV use, memory) are read by the
 * caller at scrape time and passed in a struct, so this module knows nothing
 * about the scheduler, the pool or the allocator.
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;

/* Routes are numbered by the caller; names and methods are borrowed (static
 * strings); methods may be NULL (then no method label is written). */
struct metrics *metrics_new(const char *const *route_names, const char *const *methods, int n_routes);
void metrics_free(struct metrics *m); /* NULL is a no-op */

void metrics_request(struct metrics *m, int route, int status);
void metrics_tokens(struct metrics *m, int64_t prompt, int64_t generated);
void metrics_ttft(struct metrics *m, double seconds);
void metrics_itl(struct metrics *m, double seconds);   /* inter-token latency */
void metrics_rate_limited(struct metrics *m);
void metrics_cache(struct metrics *m, int hit);
void metrics_cancelled(struct metrics *m);
void metrics_rejected_full(struct metrics *m);          /* 503: queue full */

struct metrics_gauges {
	double uptime_s;
	int model_loaded, vector_store_ready;
	int64_t queue_len, queue_cap, slots_busy, slots_total;
	int64_t pool_threads;
	int64_t kv_used_tokens, kv_total_tokens, kv_bytes;
	int64_t je_allocated, je_active, je_resident; /* -1: unknown */
	int64_t cache_entries;
	int64_t kb_documents, kb_chunks;
};

/* A malloc'd NUL-terminated text; *len its length. NULL on ENOMEM. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len);

/* Counter values, for tests and /admin/stats. */
uint64_t metrics_requests(struct metrics *m, int route, int status);
uint64_t metrics_cache_hits(struct metrics *m);

#endif
