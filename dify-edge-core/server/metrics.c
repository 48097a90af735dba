/*
 * metrics.c: Prometheus counters and histograms of the server.
 *
 * DESIGN
 * Requests are counted per (route, status): each route keeps a short array
 * of the status codes it has answered (at most METRICS_MAX_CODES distinct
 * ones; more are folded into code 0, rendered "other"). Histograms have fixed
 * upper bounds chosen for CPU inference on small boards (TTFT up to 30 s,
 * inter-token latency up to 2 s) and are rendered cumulatively as Prometheus
 * expects (_bucket{le=...}, _sum, _count).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/server/metrics.h"

#define METRICS_MAX_CODES 12
#define HIST_MAX 24

struct hist {
	const double *bounds;
	int n;
	uint64_t counts[HIST_MAX + 1]; /* last: +Inf */
	double sum;
	uint64_t count;
};

struct route_counts {
	int codes[METRICS_MAX_CODES];
	uint64_t n[METRICS_MAX_CODES];
	int used;
};

struct metrics {
	pthread_mutex_t mu;
	const char *const *names;
	const char *const *methods;
	int n_routes;
	struct route_counts *rc;
	uint64_t prompt_tokens, gen_tokens, rate_limited, cache_hits, cache_misses;
	uint64_t cancelled, rejected_full;
	struct hist ttft, itl;
};

/* from 1 ms, in 1 ms steps up to 10 ms: small models on fast cores answer in
 * milliseconds, and supervise's bandwidth policy reads its p99 from these
 * buckets against a target +-10 % (with 7.5 and 10 ms bounds its band of
 * 7.2..8.8 ms saw 7.5 for anything between) */
static const double ttft_bounds[] = { 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.0125,
				      0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
static const double itl_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2 };
_Static_assert(sizeof(ttft_bounds) / sizeof(ttft_bounds[0]) <= HIST_MAX && sizeof(itl_bounds) / sizeof(itl_bounds[0]) <= HIST_MAX,
	       "a histogram has at most HIST_MAX finite bounds");

struct metrics *metrics_new(const char *const *route_names, const char *const *methods, int n_routes)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->rc = calloc((size_t)(n_routes > 0 ? n_routes : 1), sizeof(*m->rc));
	if (!m->rc) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	m->names = route_names;
	m->methods = methods;
	m->n_routes = n_routes;
	m->ttft.bounds = ttft_bounds;
	m->ttft.n = (int)(sizeof(ttft_bounds) / sizeof(ttft_bounds[0]));
	m->itl.bounds = itl_bounds;
	m->itl.n = (int)(sizeof(itl_bounds) / sizeof(itl_bounds[0]));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m->rc);
	free(m);
}

void metrics_request(struct metrics *m, int route, int status)
{
	struct route_counts *rc;
	int i;
	if (route < 0 || route >= m->n_routes)
		return;
	pthread_mutex_lock(&m->mu);
	rc = &m->rc[route];
	for (i = 0; i < rc->used; i++)
		if (rc->codes[i] == status)
			break;
	if (i == rc->used) {
		if (rc->used < METRICS_MAX_CODES - 1) {
			rc->codes[rc->used++] = status;
		} else {
			/* fold into "other" (code 0) in the last slot */
			i = METRICS_MAX_CODES - 1;
			rc->codes[i] = 0;
			rc->used = METRICS_MAX_CODES;
		}
	}
	rc->n[i]++;
	pthread_mutex_unlock(&m->mu);
}

#define LOCKED_ADD(m, field, v)                 \
	do {                                    \
		pthread_mutex_lock(&(m)->mu);   \
		(m)->field += (v);              \
		pthread_mutex_unlock(&(m)->mu); \
	} while (0)

void metrics_tokens(struct metrics *m, int64_t prompt, int64_t generated)
{
	pthread_mutex_lock(&m->mu);
	m->prompt_tokens += (uint64_t)(prompt > 0 ? prompt : 0);
	m->gen_tokens += (uint64_t)(generated > 0 ? generated : 0);
	pthread_mutex_unlock(&m->mu);
}

static void hist_add(struct hist *h, double v)
{
	int i;
	for (i = 0; i < h->n; i++)
		if (v <= h->bounds[i])
			break;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

void metrics_ttft(struct metrics *m, double s)
{
	pthread_mutex_lock(&m->mu);
	hist_add(&m->ttft, s);
	pthread_mutex_unlock(&m->mu);
}

void metrics_itl(struct metrics *m, double s)
{
	pthread_mutex_lock(&m->mu);
	hist_add(&m->itl, s);
	pthread_mutex_unlock(&m->mu);
}

void metrics_rate_limited(struct metrics *m)
{
	LOCKED_ADD(m, rate_limited, 1);
}

void metrics_cache(struct metrics *m, int hit)
{
	pthread_mutex_lock(&m->mu);
	if (hit)
		m->cache_hits++;
	else
		m->cache_misses++;
	pthread_mutex_unlock(&m->mu);
}

void metrics_cancelled(struct metrics *m)
{
	LOCKED_ADD(m, cancelled, 1);
}

void metrics_rejected_full(struct metrics *m)
{
	LOCKED_ADD(m, rejected_full, 1);
}

uint64_t metrics_requests(struct metrics *m, int route, int status)
{
	uint64_t n = 0;
	if (route < 0 || route >= m->n_routes)
		return 0;
	pthread_mutex_lock(&m->mu);
	for (int i = 0; i < m->rc[route].used; i++)
		if (m->rc[route].codes[i] == status)
			n = m->rc[route].n[i];
	pthread_mutex_unlock(&m->mu);
	return n;
}

uint64_t metrics_cache_hits(struct metrics *m)
{
	uint64_t n;
	pthread_mutex_lock(&m->mu);
	n = m->cache_hits;
	pthread_mutex_unlock(&m->mu);
	return n;
}

static void put_hist(FILE *f, const char *name, const char *help, const struct hist *h)
{
	uint64_t cum = 0;
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < h->n; i++) {
		cum += h->counts[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
	}
	cum += h->counts[h->n];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	fprintf(f, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void put_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
		(unsigned long long)v);
}

static void put_gauge(FILE *f, const char *name, const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	pthread_mutex_lock(&m->mu);
	fprintf(f, "# HELP dify_edge_http_requests_total HTTP requests answered, by route and status.\n"
		   "# TYPE dify_edge_http_requests_total counter\n");
	for (int r = 0; r < m->n_routes; r++)
		for (int i = 0; i < m->rc[r].used; i++) {
			char code[16];
			if (m->rc[r].codes[i])
				snprintf(code, sizeof(code), "%d", m->rc[r].codes[i]);
			else
				snprintf(code, sizeof(code), "other");
			if (m->methods)
				fprintf(f, "dify_edge_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
					m->methods[r], m->names[r], code, (unsigned long long)m->rc[r].n[i]);
			else
				fprintf(f, "dify_edge_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
					m->names[r], code, (unsigned long long)m->rc[r].n[i]);
		}
	put_counter(f, "dify_edge_prompt_tokens_total", "Prompt tokens processed.", m->prompt_tokens);
	put_counter(f, "dify_edge_generated_tokens_total", "Tokens generated.", m->gen_tokens);
	put_counter(f, "dify_edge_rate_limited_total", "Requests refused with 429 by the rate limiter.", m->rate_limited);
	put_counter(f, "dify_edge_cache_hits_total", "Response cache hits.", m->cache_hits);
	put_counter(f, "dify_edge_cache_misses_total", "Response cache misses.", m->cache_misses);
	put_counter(f, "dify_edge_cancelled_total", "Generations cancelled because the client went away.", m->cancelled);
	put_counter(f, "dify_edge_queue_rejected_total", "Requests refused with 503 because the queue was full.", m->rejected_full);
	put_hist(f, "dify_edge_time_to_first_token_seconds", "Time from request admission to the first generated token.", &m->ttft);
	put_hist(f, "dify_edge_inter_token_latency_seconds", "Time between consecutive generated tokens.", &m->itl);
	pthread_mutex_unlock(&m->mu);
	if (g) {
		put_gauge(f, "dify_edge_uptime_seconds", "Seconds since the server started.", g->uptime_s);
		put_gauge(f, "dify_edge_model_loaded", "1 when the model is loaded.", g->model_loaded);
		put_gauge(f, "dify_edge_vector_store_ready", "1 when the KB index is built.", g->vector_store_ready);
		put_gauge(f, "dify_edge_queue_length", "Requests waiting for a slot.", (double)g->queue_len);
		put_gauge(f, "dify_edge_queue_capacity", "Most requests that may wait.", (double)g->queue_cap);
		put_gauge(f, "dify_edge_slots_busy", "Decoding slots in use.", (double)g->slots_busy);
		put_gauge(f, "dify_edge_slots_total", "Decoding slots.", (double)g->slots_total);
		put_gauge(f, "dify_edge_threadpool_threads", "Compute thread-pool size.", (double)g->pool_threads);
		put_gauge(f, "dify_edge_kv_cache_used_tokens", "KV-cache positions in use over all slots.", (double)g->kv_used_tokens);
		put_gauge(f, "dify_edge_kv_cache_total_tokens", "KV-cache positions over all slots.", (double)g->kv_total_tokens);
		put_gauge(f, "dify_edge_kv_cache_bytes", "Bytes allocated for KV caches.", (double)g->kv_bytes);
		if (g->je_allocated >= 0) {
			put_gauge(f, "dify_edge_jemalloc_allocated_bytes", "jemalloc stats.allocated.", (double)g->je_allocated);
			put_gauge(f, "dify_edge_jemalloc_active_bytes", "jemalloc stats.active.", (double)g->je_active);
			put_gauge(f, "dify_edge_jemalloc_resident_bytes", "jemalloc stats.resident.", (double)g->je_resident);
		}
		put_gauge(f, "dify_edge_cache_entries", "Entries in the response cache.", (double)g->cache_entries);
		put_gauge(f, "dify_edge_kb_documents", "Documents in the knowledge base.", (double)g->kb_documents);
		put_gauge(f, "dify_edge_kb_chunks", "Chunks in the knowledge base.", (double)g->kb_chunks);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	if (len)
		*len = sz;
	return buf;
}
