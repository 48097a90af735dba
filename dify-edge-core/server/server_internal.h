/*
 * server_internal.h: the server object, shared by server.c (HTTP API and
 * life cycle) and admin.c (the admin API on a Unix socket). Not for use
 * outside dify-edge-core/server/.
 */
#ifndef SERVER_SERVER_INTERNAL_H
#define SERVER_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/tpool.h"
#include "dify-edge-core/server/cache.h"
#include "dify-edge-core/server/chat.h"
#include "dify-edge-core/server/http.h"
#include "dify-edge-core/server/kb.h"
#include "dify-edge-core/server/metrics.h"
#include "dify-edge-core/server/ratelimit.h"
#include "dify-edge-core/server/sched.h"
#include "dify-edge-core/server/server.h"

struct srv_slot {
	struct model_ctx *ctx;
	atomic_llong kv_used;   /* positions in use, updated by the slot thread */
	atomic_int busy;
};

struct srv {
	struct srv_config cfg;
	char *model_path, *alias, *host, *kb_path, *admin_path, *api_key;
	int64_t t_start_ns;
	time_t created;

	struct http_server *http;
	struct metrics *metrics;
	struct cache *cache;
	struct rl *rl;

	/* set by the loader thread, then read-only */
	pthread_t loader;
	bool loader_started;
	pthread_mutex_t load_mu;
	pthread_cond_t load_cv;
	bool load_done;
	int load_rc;
	char load_err[512];
	atomic_bool model_loaded, kb_ready;
	struct tpool *pool;
	struct model *model;
	const struct tok *tok;
	struct srv_slot *slots;
	struct sched *sched;
	struct kb *kb;
	enum chat_family chat;
	int64_t n_ctx;
	int dim;

	/* admin */
	struct http_server *admin;
	int admin_fd;
	pthread_mutex_t admin_mu; /* resize/affinity requests */

	atomic_bool stopping;
	atomic_ullong next_id;
};

void srv_log(struct srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* jemalloc stats.allocated/active/resident; -1 each without jemalloc. */
void srv_jemalloc_stats(int64_t *allocated, int64_t *active, int64_t *resident);
/* Gauges for /metrics and /admin/stats; cheap = false also reads the KV
 * sizes and jemalloc's stats (an epoch refresh: too slow for /health). */
void srv_gauges(struct srv *s, struct metrics_gauges *g, bool cheap);

/* admin.c */
int admin_start(struct srv *s, const char *path, char *err, size_t errlen);
void admin_stop(struct srv *s);
/* Parse a CPU list "0-3,6" into set; -EINVAL with err. */
#include <sched.h>
int admin_parse_cpulist(const char *s, cpu_set_t *set, char *err, size_t errlen);

#endif
