/*
 * server.h: `dify-edge serve`: the OpenAI-compatible HTTP server, its
 * scheduler, knowledge base, cache, rate limiter, metrics and admin socket,
 * as one object with a start / wait / shutdown life cycle.
 *
 * srv_start() binds the listening sockets at once (so a bad address fails
 * early and /health answers 503 "loading" right away), then loads the model
 * and builds the KB index on a background thread. srv_wait_loaded() tells
 * the caller how loading went. srv_shutdown() is the SIGTERM path: stop
 * accepting connections and jobs, let in-flight requests finish until the
 * deadline, cancel what is left. The library prints nothing; log lines go to
 * cfg.log.
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/server/hnsw.h"

struct srv;

struct srv_config {
	const char *model_path;
	const char *model_alias;   /* id in /v1/models; default: file name */
	const char *host;          /* numeric address; default 127.0.0.1 */
	uint16_t port;             /* default 8080; 0 = any free port */
	int threads;               /* compute pool size; default online CPUs */
	int64_t n_ctx;             /* per slot; default min(training ctx, 4096) */
	int64_t n_batch;           /* default 64 */
	int parallel;              /* decoding slots P; default 1 */
	int queue;                 /* waiting requests beyond the slots; default 16 */
	int64_t n_predict;         /* max_tokens when the request gives none; default 256 */
	const char *kb_path;       /* SQLite file; default ":memory:" (not persistent) */
	struct hnsw_params hnsw;   /* M 16, ef_construction 128, ef_search 64 */
	int kb_chunk_chars;        /* default 512 */
	int kb_overlap_chars;      /* default 64 */
	const char *admin_socket;  /* Unix socket path; NULL: no admin API */
	const char *api_key;       /* NULL: no authentication */
	size_t body_limit;         /* bytes; default 1 MiB */
	unsigned timeout_s;        /* idle connection timeout; default 30 */
	unsigned max_conns;        /* default 256 */
	size_t cache_entries;      /* default 1024; 0 disables */
	unsigned cache_ttl_s;      /* default 30 */
	/* rate limit (GCRA, CL.THROTTLE semantics); count 0 disables (default) */
	int64_t rl_burst, rl_count, rl_period_s;
	void (*log)(void *arg, const char *line);
	void *log_arg;
};
void srv_config_default(struct srv_config *c);

int srv_start(const struct srv_config *c, struct srv **out, char *err, size_t errlen);
/* 0 once the model (and the KB index) are ready; the loader's error
 * (negative errno, message in err) when loading failed; -ETIMEDOUT. */
int srv_wait_loaded(struct srv *s, int timeout_ms, char *err, size_t errlen);
uint16_t srv_port(struct srv *s);
/* Stop accepting, drain in-flight work for up to drain_ms, cancel the rest.
 * Returns how many jobs were still running at the deadline. */
int srv_shutdown(struct srv *s, int drain_ms);
void srv_free(struct srv *s); /* NULL is a no-op */

#endif
