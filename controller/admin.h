/*
 * admin.h: a client for the core's admin API (HTTP/1.1 on a Unix socket,
 * libcurl with CURLOPT_UNIX_SOCKET_PATH) and for its TCP /health.
 *
 * GET /admin/stats is parsed into struct cadmin_stats; PUT /admin/threads
 * {"n":N} resizes the core's thread pool. Keys of /admin/stats are read
 * tolerantly (the shape dify-edge serve documents, plus flat spellings);
 * a missing key leaves its field at -1.
 */
#ifndef CONTROLLER_ADMIN_H
#define CONTROLLER_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CADMIN_MAX_WORKERS 128

struct cadmin_stats {
	int64_t queue;          /* requests waiting */
	int64_t slots, busy_slots;
	int64_t threads;        /* thread-pool size */
	int64_t nworkers;       /* entries in worker_tid[] */
	pid_t worker_tid[CADMIN_MAX_WORKERS];
	int64_t worker_busy_ns[CADMIN_MAX_WORKERS];
	int64_t mem_bytes;      /* resident (jemalloc resident, else RSS) */
	double kv_used_pct;     /* KV-cache use 0..100, -1 unknown */
	double ttft_p99_ms;     /* time to first token p99, -1 unknown */
	int64_t requests;       /* requests served (cumulative), -1 unknown */
	/* the workers' class as read back per worker: 0 every worker SCHED_OTHER,
	 * N > 0 every worker SCHED_FIFO or SCHED_RR priority N, -2 mixed, -1
	 * unknown (a core that does not report it) */
	int rt_prio;
};

/* One request on the admin socket. *body (NUL-terminated, caller frees) may be NULL. */
int cadmin_request(const char *sock, const char *method, const char *path, const char *json,
		   long *status, char **body, char *err, size_t errlen);
int cadmin_get_stats(const char *sock, struct cadmin_stats *st, char *err, size_t errlen);
/* Parse a /admin/stats body (exported for tests). */
int cadmin_parse_stats(const char *json, struct cadmin_stats *st, char *err, size_t errlen);
int cadmin_set_threads(const char *sock, int n, char *err, size_t errlen);
int cadmin_set_affinity(const char *sock, const char *cpus, char *err, size_t errlen);
/* PUT /admin/sched: prio 0 = SCHED_OTHER, N = SCHED_FIFO priority N. The core's
 * refusal (HTTP 409: EPERM, no RT budget) comes back as -EPERM with its message. */
int cadmin_set_rt(const char *sock, int prio, char *err, size_t errlen);
/* GET url (TCP) and return its body (caller frees); -EIO unless HTTP 200. */
int cadmin_http_get(const char *url, long timeout_ms, char **body, char *err, size_t errlen);
/* GET url (TCP, e.g. http://127.0.0.1:3000/health) with a timeout; returns the HTTP status or negative errno. */
int cadmin_http_status(const char *url, long timeout_ms, char *err, size_t errlen);

/*
 * Prometheus text: the cumulative buckets of histogram `name`
 * (name_bucket{le="..."} lines, +Inf as INFINITY), in file order. Returns
 * the number of buckets (at most max), 0 when absent.
 */
int cadmin_parse_hist(const char *text, const char *name, double *bounds, uint64_t *cum, int max);
/* Quantile q (0..1) of a window given as cumulative counts: linear between the
 * bounds of the bucket holding rank q * count (the first bucket from 0; the last
 * finite bound when it falls in +Inf), as Prometheus' histogram_quantile(); NAN when empty. */
double cadmin_hist_quantile(const double *bounds, const uint64_t *cum, int n, double q);

#endif
