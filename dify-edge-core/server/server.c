/*
 * server.c: the OpenAI-compatible HTTP API of `dify-edge serve`: routes,
 * request handling, the jobs the decoding slots run, and the life cycle.
 *
 * DESIGN
 * Everything that needs the model (generation, embeddings, KB ingestion and
 * queries) is a job for the scheduler, so the P decoding slots -- each with
 * its own model session (KV cache) -- are the only users of the model and
 * the queue bounds the work in flight. HTTP threads parse and validate,
 * tokenize (the tokenizer is read-only and thread-safe), check the prompt
 * against the context, submit, and then either stream the job's text as
 * server-sent events or wait for it and answer in one body. A client that
 * goes away cancels its job (http_client_gone() is polled while waiting;
 * the stream's free callback cancels too), which frees the slot at the next
 * token.
 *
 * Route flags decide the checks before a handler runs (admit()): the API
 * key, the rate limit (GCRA per API key, else per peer address; headers on
 * every limited route, 429 + Retry-After when over) and "model loaded"
 * (503 + Retry-After while loading). Embeddings and KB queries are cached
 * (LRU + TTL) under a key made of the route, the model id, the KB generation
 * and the request body; the cache is cleared whenever the KB changes.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dify-edge-core/runtime/generate.h"
#include "dify-edge-core/runtime/sampler.h"
#include "dify-edge-core/runtime/tokenizer.h"
#include "dify-edge-core/server/api.h"
#include "dify-edge-core/server/server_internal.h"

/* jemalloc is linked into the binary, not into sanitizer builds: look it up weakly. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

#define IRE "invalid_request_error"

enum route_flags {
	F_AUTH = 1 << 0,  /* API key required when configured */
	F_LIMIT = 1 << 1, /* rate limited */
	F_MODEL = 1 << 2, /* needs the model loaded */
};

enum route_id {
	R_HEALTH, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT, R_EMBEDDINGS, R_TOKENIZE, R_DETOKENIZE,
	R_KB_ADD, R_KB_LIST, R_KB_GET, R_KB_DELETE, R_KB_QUERY, R_COUNT,
};

static const char *const route_names[R_COUNT] = {
	[R_HEALTH] = "/health",
	[R_METRICS] = "/metrics",
	[R_MODELS] = "/v1/models",
	[R_COMPLETIONS] = "/v1/completions",
	[R_CHAT] = "/v1/chat/completions",
	[R_EMBEDDINGS] = "/v1/embeddings",
	[R_TOKENIZE] = "/tokenize",
	[R_DETOKENIZE] = "/detokenize",
	[R_KB_ADD] = "/v1/kb/documents",
	[R_KB_LIST] = "/v1/kb/documents",
	[R_KB_GET] = "/v1/kb/documents/{id}",
	[R_KB_DELETE] = "/v1/kb/documents/{id}",
	[R_KB_QUERY] = "/v1/kb/query",
};

static const char *const route_methods[R_COUNT] = {
	[R_HEALTH] = "GET", [R_METRICS] = "GET", [R_MODELS] = "GET", [R_COMPLETIONS] = "POST", [R_CHAT] = "POST",
	[R_EMBEDDINGS] = "POST", [R_TOKENIZE] = "POST", [R_DETOKENIZE] = "POST", [R_KB_ADD] = "POST",
	[R_KB_LIST] = "GET", [R_KB_GET] = "GET", [R_KB_DELETE] = "DELETE", [R_KB_QUERY] = "POST",
};

static void h_health(void *ud, struct http_req *r);
static void h_metrics(void *ud, struct http_req *r);
static void h_models(void *ud, struct http_req *r);
static void h_completions(void *ud, struct http_req *r);
static void h_chat(void *ud, struct http_req *r);
static void h_embeddings(void *ud, struct http_req *r);
static void h_tokenize(void *ud, struct http_req *r);
static void h_detokenize(void *ud, struct http_req *r);
static void h_kb_add(void *ud, struct http_req *r);
static void h_kb_list(void *ud, struct http_req *r);
static void h_kb_get(void *ud, struct http_req *r);
static void h_kb_delete(void *ud, struct http_req *r);
static void h_kb_query(void *ud, struct http_req *r);

static const struct http_route routes[] = {
	{ .method = "GET", .path = "/health", .fn = h_health, .id = R_HEALTH },
	{ .method = "GET", .path = "/metrics", .fn = h_metrics, .id = R_METRICS },
	{ .method = "GET", .path = "/v1/models", .fn = h_models, .id = R_MODELS, .flags = F_AUTH },
	{ .method = "POST", .path = "/v1/completions", .fn = h_completions, .id = R_COMPLETIONS, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/v1/chat/completions", .fn = h_chat, .id = R_CHAT, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/v1/embeddings", .fn = h_embeddings, .id = R_EMBEDDINGS, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/tokenize", .fn = h_tokenize, .id = R_TOKENIZE, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/detokenize", .fn = h_detokenize, .id = R_DETOKENIZE, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/v1/kb/documents", .fn = h_kb_add, .id = R_KB_ADD, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "GET", .path = "/v1/kb/documents", .fn = h_kb_list, .id = R_KB_LIST, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "GET", .path = "/v1/kb/documents/", .prefix = true, .fn = h_kb_get, .id = R_KB_GET, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "DELETE", .path = "/v1/kb/documents/", .prefix = true, .fn = h_kb_delete, .id = R_KB_DELETE, .flags = F_AUTH | F_LIMIT | F_MODEL },
	{ .method = "POST", .path = "/v1/kb/query", .fn = h_kb_query, .id = R_KB_QUERY, .flags = F_AUTH | F_LIMIT | F_MODEL },
};

void srv_log(struct srv *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	if (!s->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_arg, buf);
}

void srv_config_default(struct srv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->host = "127.0.0.1";
	c->port = 8080;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	c->threads = n > 0 ? (int)n : 1;
	c->parallel = 1;
	c->queue = 16;
	c->n_batch = 64;
	c->n_predict = 256;
	c->kb_path = ":memory:";
	hnsw_params_default(&c->hnsw);
	c->kb_chunk_chars = KB_DEFAULT_CHUNK_CHARS;
	c->kb_overlap_chars = KB_DEFAULT_OVERLAP_CHARS;
	c->body_limit = 1 << 20;
	c->timeout_s = 30;
	c->max_conns = 256;
	c->cache_entries = 1024;
	c->cache_ttl_s = 30;
}

void srv_jemalloc_stats(int64_t *allocated, int64_t *active, int64_t *resident)
{
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch), v;
	*allocated = *active = *resident = -1;
	if (!mallctl)
		return;
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	sz = sizeof(v);
	if (!mallctl("stats.allocated", &v, &sz, NULL, 0))
		*allocated = (int64_t)v;
	sz = sizeof(v);
	if (!mallctl("stats.active", &v, &sz, NULL, 0))
		*active = (int64_t)v;
	sz = sizeof(v);
	if (!mallctl("stats.resident", &v, &sz, NULL, 0))
		*resident = (int64_t)v;
}

void srv_gauges(struct srv *s, struct metrics_gauges *g, bool cheap)
{
	struct sched_stats st;
	struct cache_stats cs;
	memset(g, 0, sizeof(*g));
	g->uptime_s = (double)(sched_now_ns() - s->t_start_ns) / 1e9;
	g->model_loaded = atomic_load(&s->model_loaded);
	g->vector_store_ready = atomic_load(&s->kb_ready);
	if (g->model_loaded) {
		sched_stats(s->sched, &st);
		g->queue_len = st.queued;
		g->queue_cap = st.queue_cap;
		g->slots_busy = st.busy;
		g->slots_total = st.n_slots;
		g->pool_threads = tpool_size(s->pool);
		for (int i = 0; !cheap && i < s->cfg.parallel; i++) {
			g->kv_used_tokens += atomic_load(&s->slots[i].kv_used);
			g->kv_total_tokens += s->n_ctx;
			g->kv_bytes += (int64_t)model_ctx_kv_bytes(s->slots[i].ctx);
		}
	}
	if (atomic_load(&s->kb_ready))
		kb_counts(s->kb, &g->kb_documents, &g->kb_chunks);
	g->je_allocated = g->je_active = g->je_resident = -1;
	if (cheap)
		return;
	cache_stats(s->cache, &cs);
	g->cache_entries = (int64_t)cs.entries;
	srv_jemalloc_stats(&g->je_allocated, &g->je_active, &g->je_resident);
}

/* ---- jobs (run on slot threads) ---- */

enum job_kind { JOB_GEN, JOB_EMBED, JOB_INGEST, JOB_QUERY };

struct job {
	enum job_kind kind;
	struct srv *s;
	struct sched_job *sj; /* back pointer, set by the slot thread */
	/* GEN */
	int32_t *prompt;
	int64_t n_prompt, max_tokens;
	bool ignore_eos;
	struct sampler_params sp;
	char *stop[API_MAX_STOP + 1];
	size_t n_stop;
	int64_t n_gen, t_first_ns, t_last_ns;
	enum gen_stop_reason stop_reason;
	/* EMBED: n_in token lists -> vecs[n_in * dim] */
	int32_t **toks;
	int64_t *n_toks;
	size_t n_in;
	float *vecs;
	/* INGEST */
	struct api_kb_doc doc;
	int64_t doc_id;
	int n_chunks;
	/* QUERY */
	char *query;
	int top_k;
	struct kb_hit *hits;
	int n_hits;
	int64_t query_tokens;
	/* result */
	int err;
	int err_status; /* HTTP status for err (400 bad input, 500 ...) */
	char errmsg[256];
};

static void job_free(void *p)
{
	struct job *j = p;
	if (!j)
		return;
	free(j->prompt);
	for (size_t i = 0; i < j->n_stop; i++)
		free(j->stop[i]);
	for (size_t i = 0; i < j->n_in; i++)
		free(j->toks ? j->toks[i] : NULL);
	free(j->toks);
	free(j->n_toks);
	free(j->vecs);
	api_kb_doc_free(&j->doc);
	free(j->query);
	if (j->hits) {
		kb_hits_free(j->hits, j->n_hits);
		free(j->hits);
	}
	free(j);
}

struct slot_run {
	struct srv *s;
	struct srv_slot *slot;
	struct job *j;
	struct sched_job *sj;
};

static int on_gen_text(void *arg, const char *text, size_t len)
{
	struct slot_run *sr = arg;
	sched_job_emit(sr->sj, text, len);
	return sched_job_cancelled(sr->sj);
}

static int on_gen_token(void *arg, int32_t id)
{
	struct slot_run *sr = arg;
	struct job *j = sr->j;
	int64_t now = sched_now_ns();
	(void)id;
	if (!j->t_first_ns) {
		j->t_first_ns = now;
		metrics_ttft(sr->s->metrics, (double)(now - sched_job_submitted_ns(sr->sj)) / 1e9);
	} else {
		metrics_itl(sr->s->metrics, (double)(now - j->t_last_ns) / 1e9);
	}
	j->t_last_ns = now;
	j->n_gen++;
	atomic_store(&sr->slot->kv_used, model_ctx_n_past(sr->slot->ctx) + 1);
	return sched_job_cancelled(sr->sj);
}

/* Tokenize text into a malloc'd array; *n the count. */
static int tokenize(struct srv *s, const char *text, bool add_bos, bool special, int32_t **out, int64_t *n)
{
	size_t len = strlen(text), cap = len + 8;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	int64_t k;
	if (!ids)
		return -ENOMEM;
	k = tok_encode(s->tok, text, len, add_bos, special, ids, cap);
	if (k > (int64_t)cap) {
		int32_t *n2 = realloc(ids, (size_t)k * sizeof(int32_t));
		if (!n2) {
			free(ids);
			return -ENOMEM;
		}
		ids = n2;
		k = tok_encode(s->tok, text, len, add_bos, special, ids, (size_t)k);
	}
	if (k < 0) {
		free(ids);
		return (int)k;
	}
	*out = ids;
	*n = k;
	return 0;
}

static bool want_bos(struct srv *s)
{
	return tok_bos(s->tok) >= 0 && tok_add_bos_default(s->tok);
}

static int embed_tokens(struct srv_slot *slot, struct srv *s, int32_t *ids, int64_t n, float *out, char *err, size_t errlen)
{
	if (n > s->n_ctx)
		n = s->n_ctx; /* documented: inputs longer than the context are truncated for embeddings */
	if (n < 1)
		return -EINVAL;
	int rc = model_embed(slot->ctx, ids, n, MODEL_POOL_MEAN, out, s->dim, err, errlen);
	atomic_store(&slot->kv_used, 0);
	return rc;
}

struct embed_arg {
	struct srv *s;
	struct srv_slot *slot;
	struct sched_job *sj;
};

static int kb_embed_cb(void *arg, const char *text, float *out, int dim, char *err, size_t errlen)
{
	struct embed_arg *ea = arg;
	int32_t *ids = NULL;
	int64_t n = 0;
	int rc;
	if (sched_job_cancelled(ea->sj)) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	rc = tokenize(ea->s, text, want_bos(ea->s), false, &ids, &n);
	if (rc) {
		snprintf(err, errlen, "kb: cannot tokenize a chunk (%s)", strerror(-rc));
		return rc;
	}
	if (n == 0) {
		/* whitespace-only chunk: embed BOS alone, or a unit vector */
		free(ids);
		for (int i = 0; i < dim; i++)
			out[i] = i == 0 ? 1.0f : 0.0f;
		return 0;
	}
	rc = embed_tokens(ea->slot, ea->s, ids, n, out, err, errlen);
	free(ids);
	return rc;
}

static void run_job(void *ud, int slot_idx, struct sched_job *sj)
{
	struct srv *s = ud;
	struct srv_slot *slot = &s->slots[slot_idx];
	struct job *j = sched_job_payload(sj);
	struct slot_run sr = { .s = s, .slot = slot, .j = j, .sj = sj };
	int rc = 0;

	atomic_store(&slot->busy, 1);
	switch (j->kind) {
	case JOB_GEN: {
		struct sampler *smp = sampler_new(&j->sp, model_n_vocab(s->model));
		struct gen_params gp = {
			.max_tokens = j->max_tokens,
			.n_stop = j->n_stop,
			.ignore_eog = j->ignore_eos,
			.on_text = on_gen_text,
			.on_token = on_gen_token,
			.arg = &sr,
		};
		struct gen_result res = { 0 };
		if (!smp) {
			rc = -EINVAL;
			snprintf(j->errmsg, sizeof(j->errmsg), "bad sampling parameters");
			j->err_status = 400;
			break;
		}
		for (size_t i = 0; i < j->n_stop && i < GEN_MAX_STOP; i++)
			gp.stop[i] = j->stop[i];
		rc = gen_run(slot->ctx, smp, j->prompt, j->n_prompt, &gp, &res, j->errmsg, sizeof(j->errmsg));
		sampler_free(smp);
		j->stop_reason = res.stop;
		j->n_gen = res.n_gen;
		atomic_store(&slot->kv_used, model_ctx_n_past(slot->ctx));
		if (rc)
			j->err_status = rc == -ENOSPC ? 400 : 500;
		metrics_tokens(s->metrics, res.n_prompt_eval, res.n_gen);
		break;
	}
	case JOB_EMBED:
		for (size_t i = 0; i < j->n_in && !rc; i++) {
			if (sched_job_cancelled(sj)) {
				rc = -ECANCELED;
				break;
			}
			rc = embed_tokens(slot, s, j->toks[i], j->n_toks[i], j->vecs + i * (size_t)s->dim, j->errmsg,
					  sizeof(j->errmsg));
			metrics_tokens(s->metrics, j->n_toks[i], 0);
		}
		if (rc)
			j->err_status = 500;
		break;
	case JOB_INGEST: {
		struct embed_arg ea = { .s = s, .slot = slot, .sj = sj };
		rc = kb_add(s->kb, j->doc.name, j->doc.text, j->doc.chunk_chars ? j->doc.chunk_chars : s->cfg.kb_chunk_chars,
			    j->doc.overlap_chars >= 0 ? j->doc.overlap_chars : s->cfg.kb_overlap_chars, kb_embed_cb, &ea,
			    &j->doc_id, &j->n_chunks, j->errmsg, sizeof(j->errmsg));
		if (!rc)
			cache_clear(s->cache);
		else
			j->err_status = 500;
		break;
	}
	case JOB_QUERY: {
		struct embed_arg ea = { .s = s, .slot = slot, .sj = sj };
		float *q = malloc((size_t)s->dim * sizeof(float));
		if (!q) {
			rc = -ENOMEM;
			break;
		}
		rc = kb_embed_cb(&ea, j->query, q, s->dim, j->errmsg, sizeof(j->errmsg));
		if (!rc) {
			j->hits = calloc((size_t)j->top_k, sizeof(*j->hits));
			if (!j->hits) {
				rc = -ENOMEM;
			} else {
				int n = kb_query(s->kb, q, j->top_k, s->cfg.hnsw.ef_search, j->hits);
				if (n < 0)
					rc = n;
				else
					j->n_hits = n;
			}
		}
		free(q);
		if (rc)
			j->err_status = 500;
		break;
	}
	}
	j->err = rc;
	if (rc && !j->errmsg[0])
		snprintf(j->errmsg, sizeof(j->errmsg), "%s", strerror(-rc));
	sched_job_set_status(sj, rc);
	atomic_store(&slot->busy, 0);
}

/* ---- helpers for handlers ---- */

static struct job *job_new(struct srv *s, enum job_kind kind)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = kind;
		j->s = s;
		j->doc.overlap_chars = -1;
	}
	return j;
}

/* Submit; on failure answer the request (503 + Retry-After) and return NULL. */
static struct sched_job *submit(struct srv *s, struct http_req *r, struct job *j)
{
	struct sched_job *sj = sched_job_new(j, job_free);
	int rc;
	if (!sj) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		return NULL;
	}
	rc = sched_submit(s->sched, sj);
	if (rc) {
		sched_job_unref(sj);
		http_add_header(r, "Retry-After", "1");
		if (rc == -EAGAIN) {
			metrics_rejected_full(s->metrics);
			http_reply_errorf(r, 503, "server_error", "queue_full",
					  "all %d slots are busy and %d requests are waiting: retry later", s->cfg.parallel,
					  s->cfg.queue);
		} else {
			http_reply_errorf(r, 503, "server_error", "shutting_down", "the server is shutting down");
		}
		return NULL;
	}
	return sj;
}

/* Wait for a job while watching the client; false (job cancelled, nothing
 * replied worth reading) when the client went away. */
static bool wait_job(struct srv *s, struct http_req *r, struct sched_job *sj)
{
	size_t off = 0, len;
	char *t;
	bool done = false;
	while (!done) {
		sched_job_read(sj, &off, 200, &t, &len, &done);
		free(t);
		if (!done && http_client_gone(r)) {
			sched_job_cancel(sj);
			metrics_cancelled(s->metrics);
			return false;
		}
	}
	http_touch(r);
	return true;
}

static void reply_job_error(struct http_req *r, struct job *j)
{
	int st = j->err_status ? j->err_status : 500;
	http_reply_errorf(r, st, st < 500 ? IRE : "server_error", st == 400 ? "context_length_exceeded" : "internal_error",
			  "%s", j->errmsg);
}

static void reply_jsonobj(struct http_req *r, int status, json_t *o)
{
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!txt)
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "cannot build the response");
	else
		http_reply_json(r, status, txt);
	free(txt);
	json_decref(o);
}

/* A JSON string of arbitrary model bytes (invalid UTF-8 replaced). */
static json_t *jstr_bytes(const char *p, size_t n)
{
	char *c = api_utf8_sanitize(p, n, &n);
	json_t *v = c ? json_stringn(c, n) : NULL;
	free(c);
	return v ? v : json_string("");
}

static const char *finish_reason(enum gen_stop_reason r)
{
	switch (r) {
	case GEN_STOP_LENGTH:
	case GEN_STOP_CONTEXT:
		return "length";
	default:
		return "stop";
	}
}

/* ---- generation (completions + chat) ---- */

struct stream_state {
	struct srv *s;
	struct sched_job *sj;
	struct job *j;
	bool chat, include_usage;
	char id[48];
	time_t created;
	int fd;
	int phase; /* 0 role, 1 body, 2 final, 3 end */
	size_t off;
	char *pend;
	size_t pend_len, pend_off;
	json_t *kb_ctx;
};

static void stream_free(void *arg)
{
	struct stream_state *st = arg;
	if (!sched_job_done(st->sj) && !sched_job_cancelled(st->sj)) {
		sched_job_cancel(st->sj);
		metrics_cancelled(st->s->metrics);
	}
	sched_job_unref(st->sj);
	json_decref(st->kb_ctx);
	free(st->pend);
	free(st);
}

static json_t *chunk_obj(struct stream_state *st, json_t *choice)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(st->id));
	json_object_set_new(o, "object", json_string(st->chat ? "chat.completion.chunk" : "text_completion"));
	json_object_set_new(o, "created", json_integer(st->created));
	json_object_set_new(o, "model", json_string(st->s->alias));
	json_t *arr = json_array();
	if (choice)
		json_array_append_new(arr, choice);
	json_object_set_new(o, "choices", arr);
	return o;
}

static json_t *choice_delta(struct stream_state *st, json_t *text, const char *finish, bool role)
{
	json_t *c = json_object();
	json_object_set_new(c, "index", json_integer(0));
	if (st->chat) {
		json_t *d = json_object();
		if (role)
			json_object_set_new(d, "role", json_string("assistant"));
		if (text)
			json_object_set_new(d, "content", text);
		json_object_set_new(c, "delta", d);
	} else {
		json_object_set_new(c, "text", text ? text : json_string(""));
	}
	json_object_set_new(c, "logprobs", json_null());
	json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
	return c;
}

static json_t *usage_obj(struct job *j)
{
	return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)j->n_prompt, "completion_tokens",
			 (json_int_t)j->n_gen, "total_tokens", (json_int_t)(j->n_prompt + j->n_gen));
}

/* Append "data: <json>\n\n" to the pending buffer (takes o). */
static void pend_event(struct stream_state *st, json_t *o)
{
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!txt)
		return;
	size_t n = strlen(txt), need = st->pend_len + n + 8;
	char *p = realloc(st->pend, need + 1);
	if (p) {
		st->pend = p;
		st->pend_len += (size_t)sprintf(st->pend + st->pend_len, "data: %s\n\n", txt);
	}
	free(txt);
}

static void pend_raw(struct stream_state *st, const char *txt)
{
	size_t n = strlen(txt);
	char *p = realloc(st->pend, st->pend_len + n + 1);
	if (p) {
		st->pend = p;
		memcpy(st->pend + st->pend_len, txt, n + 1);
		st->pend_len += n;
	}
}

static ssize_t stream_next(void *arg, char *buf, size_t max)
{
	struct stream_state *st = arg;
	for (;;) {
		if (st->pend_off < st->pend_len) {
			size_t n = st->pend_len - st->pend_off;
			if (n > max)
				n = max;
			memcpy(buf, st->pend + st->pend_off, n);
			st->pend_off += n;
			return (ssize_t)n;
		}
		st->pend_len = st->pend_off = 0;
		switch (st->phase) {
		case 0:
			st->phase = 1;
			if (st->chat) {
				json_t *o = chunk_obj(st, choice_delta(st, json_string(""), NULL, true));
				if (st->kb_ctx)
					json_object_set(o, "kb_context", st->kb_ctx);
				pend_event(st, o);
			}
			break;
		case 1: {
			char *t;
			size_t len;
			bool done;
			sched_job_read(st->sj, &st->off, 250, &t, &len, &done);
			if (t) {
				pend_event(st, chunk_obj(st, choice_delta(st, jstr_bytes(t, len), NULL, false)));
				free(t);
			}
			if (done) {
				st->phase = 2;
			} else if (!t && http_fd_gone(st->fd)) {
				/* nothing new and the client left: stop generating for it */
				sched_job_cancel(st->sj);
				metrics_cancelled(st->s->metrics);
				return HTTP_STREAM_ERROR;
			}
			break;
		}
		case 2:
			st->phase = 3;
			if (st->j->err && st->j->err != -ECANCELED) {
				struct api_error e = { .status = st->j->err_status ? st->j->err_status : 500,
						       .type = "server_error", .code = "generation_failed" };
				snprintf(e.message, sizeof(e.message), "%s", st->j->errmsg);
				char *ej = api_error_json(&e);
				if (ej) {
					pend_raw(st, "data: ");
					pend_raw(st, ej);
					pend_raw(st, "\n\n");
					free(ej);
				}
			} else {
				pend_event(st, chunk_obj(st, choice_delta(st, NULL, finish_reason(st->j->stop_reason), false)));
				if (st->include_usage) {
					json_t *o = chunk_obj(st, NULL);
					json_object_set_new(o, "usage", usage_obj(st->j));
					pend_event(st, o);
				}
			}
			pend_raw(st, "data: [DONE]\n\n");
			break;
		default:
			return HTTP_STREAM_END;
		}
	}
}

static void make_id(struct srv *s, const char *prefix, char *out, size_t n)
{
	unsigned long long k = atomic_fetch_add(&s->next_id, 1);
	snprintf(out, n, "%s-%llx%06llx", prefix, (unsigned long long)s->created, k & 0xffffff);
}

/* Takes kb_ctx (may be NULL). */
static void do_generate(struct srv *s, struct http_req *r, bool chat, const struct api_gen *g,
			const char *text, json_t *kb_ctx)
{
	struct job *j = job_new(s, JOB_GEN);
	struct sched_job *sj = NULL;
	int rc;

	if (!j) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		goto out;
	}
	rc = tokenize(s, text, want_bos(s), true, &j->prompt, &j->n_prompt);
	if (rc) {
		http_reply_errorf(r, 400, IRE, "invalid_prompt", "the prompt cannot be tokenized (%s)", strerror(-rc));
		goto out;
	}
	if (j->n_prompt == 0) {
		http_reply_errorf(r, 400, IRE, "invalid_prompt",
				  "the prompt is empty and this vocabulary has no BOS token to start from");
		goto out;
	}
	if (j->n_prompt >= s->n_ctx) {
		struct api_error e = { .status = 400, .type = IRE, .code = "context_length_exceeded" };
		snprintf(e.param, sizeof(e.param), "%s", chat ? "messages" : "prompt");
		snprintf(e.message, sizeof(e.message),
			 "the prompt is %lld tokens but the context holds %lld (--ctx %lld): shorten the prompt",
			 (long long)j->n_prompt, (long long)s->n_ctx, (long long)s->n_ctx);
		http_reply_error(r, &e);
		goto out;
	}
	j->max_tokens = g->max_tokens >= 0 ? g->max_tokens : s->cfg.n_predict;
	j->ignore_eos = g->ignore_eos;
	sampler_params_default(&j->sp);
	j->sp.temp = (float)g->temperature;
	j->sp.top_p = (float)g->top_p;
	j->sp.top_k = g->top_k;
	j->sp.min_p = (float)g->min_p;
	j->sp.repeat_penalty = (float)g->repeat_penalty;
	j->sp.seed = g->has_seed ? g->seed : ((uint64_t)sched_now_ns() ^ (atomic_load(&s->next_id) << 32));
	for (size_t i = 0; i < g->n_stop; i++)
		if ((j->stop[j->n_stop] = strdup(g->stop[i])))
			j->n_stop++;
	if (chat && chat_stop(s->chat) && (j->stop[j->n_stop] = strdup(chat_stop(s->chat))))
		j->n_stop++;

	sj = submit(s, r, j);
	j = NULL; /* owned by sj now (or freed) */
	if (!sj)
		goto out;
	j = sched_job_payload(sj);

	if (g->stream) {
		struct stream_state *st = calloc(1, sizeof(*st));
		if (!st) {
			sched_job_cancel(sj);
			sched_job_unref(sj);
			http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
			j = NULL;
			goto out;
		}
		st->s = s;
		st->sj = sj;
		st->j = j;
		st->chat = chat;
		st->include_usage = g->include_usage;
		st->created = time(NULL);
		st->fd = http_fd(r);
		st->kb_ctx = kb_ctx;
		kb_ctx = NULL;
		make_id(s, chat ? "chatcmpl" : "cmpl", st->id, sizeof(st->id));
		http_reply_stream(r, 200, "text/event-stream", stream_next, st, stream_free);
		j = NULL;
		goto out;
	}

	if (!wait_job(s, r, sj)) {
		http_reply_errorf(r, 400, IRE, "client_closed", "the client closed the connection");
		sched_job_unref(sj);
		j = NULL;
		goto out;
	}
	if (j->err) {
		reply_job_error(r, j);
	} else {
		size_t off = 0, len;
		char *t = NULL, id[48];
		bool done;
		sched_job_read(sj, &off, 0, &t, &len, &done);
		json_t *o = json_object(), *choice = json_object();
		make_id(s, chat ? "chatcmpl" : "cmpl", id, sizeof(id));
		json_object_set_new(o, "id", json_string(id));
		json_object_set_new(o, "object", json_string(chat ? "chat.completion" : "text_completion"));
		json_object_set_new(o, "created", json_integer(time(NULL)));
		json_object_set_new(o, "model", json_string(s->alias));
		json_object_set_new(choice, "index", json_integer(0));
		if (chat)
			json_object_set_new(choice, "message", json_pack("{s:s,s:o}", "role", "assistant", "content",
									 jstr_bytes(t ? t : "", t ? len : 0)));
		else
			json_object_set_new(choice, "text", jstr_bytes(t ? t : "", t ? len : 0));
		json_object_set_new(choice, "logprobs", json_null());
		json_object_set_new(choice, "finish_reason", json_string(finish_reason(j->stop_reason)));
		json_object_set_new(o, "choices", json_pack("[o]", choice));
		json_object_set_new(o, "usage", usage_obj(j));
		if (kb_ctx) {
			json_object_set_new(o, "kb_context", kb_ctx);
			kb_ctx = NULL;
		}
		free(t);
		reply_jsonobj(r, 200, o);
	}
	sched_job_unref(sj);
	j = NULL;
out:
	json_decref(kb_ctx);
	job_free(j);
}

static void h_completions(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_completion c;
	struct api_error e = { 0 };
	size_t len;
	const char *body = http_body(r, &len);
	if (api_parse_completion(body, len, &c, &e)) {
		http_reply_error(r, &e);
		return;
	}
	do_generate(s, r, false, &c.g, c.prompt, NULL);
	api_completion_free(&c);
}

/* Run a KB query job for text and wait; hits returned in a JSON array, or
 * NULL after answering the request with an error. */
static json_t *kb_retrieve(struct srv *s, struct http_req *r, const char *text, int k)
{
	struct job *j = job_new(s, JOB_QUERY);
	struct sched_job *sj;
	json_t *arr = NULL;
	if (!j || !(j->query = strdup(text))) {
		job_free(j);
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		return NULL;
	}
	j->top_k = k;
	if (!(sj = submit(s, r, j)))
		return NULL;
	j = sched_job_payload(sj);
	if (!wait_job(s, r, sj)) {
		http_reply_errorf(r, 400, IRE, "client_closed", "the client closed the connection");
	} else if (j->err) {
		reply_job_error(r, j);
	} else {
		arr = json_array();
		for (int i = 0; i < j->n_hits; i++)
			json_array_append_new(arr, json_pack("{s:I,s:s,s:I,s:i,s:f,s:o}", "document_id", (json_int_t)j->hits[i].doc_id,
							     "document_name", j->hits[i].doc_name, "chunk_id",
							     (json_int_t)j->hits[i].chunk_id, "chunk_index", j->hits[i].chunk_index,
							     "score", (double)j->hits[i].score, "text",
							     jstr_bytes(j->hits[i].text, strlen(j->hits[i].text))));
	}
	sched_job_unref(sj);
	return arr;
}

static void h_chat(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_chat c;
	struct api_error e = { 0 };
	size_t len;
	const char *body = http_body(r, &len);
	char *prompt = NULL, *ctx_text = NULL;
	json_t *kb_ctx = NULL;
	struct chat_msg *msgs = NULL;

	if (api_parse_chat(body, len, &c, &e)) {
		http_reply_error(r, &e);
		return;
	}
	msgs = c.msgs;
	size_t n = c.n_msgs;
	if (c.kb) {
		/* RAG: retrieve with the last user message, put the chunks in a
		 * system message in front of the conversation */
		const char *q = NULL;
		for (size_t i = n; i-- > 0;)
			if (!strcmp(c.msgs[i].role, "user")) {
				q = c.msgs[i].content;
				break;
			}
		if (!q || !q[0]) {
			http_reply_errorf(r, 400, IRE, "invalid_value", "'kb' needs a non-empty user message to search with");
			goto out;
		}
		kb_ctx = kb_retrieve(s, r, q, c.kb_top_k);
		if (!kb_ctx)
			goto out;
		char *buf = NULL;
		size_t sz = 0;
		FILE *f = open_memstream(&buf, &sz);
		if (!f)
			goto oom;
		fprintf(f, "Answer using the following context from the knowledge base.\n");
		size_t i;
		json_t *h;
		json_array_foreach(kb_ctx, i, h)
			fprintf(f, "[%zu] %s\n", i + 1, json_string_value(json_object_get(h, "text")));
		fclose(f);
		ctx_text = buf;
		msgs = calloc(n + 1, sizeof(*msgs));
		if (!msgs)
			goto oom;
		msgs[0].role = "system";
		msgs[0].content = ctx_text;
		memcpy(msgs + 1, c.msgs, n * sizeof(*msgs));
		n++;
	}
	prompt = chat_render(s->chat, msgs, n);
	if (!prompt)
		goto oom;
	do_generate(s, r, true, &c.g, prompt, kb_ctx);
	kb_ctx = NULL;
	goto out;
oom:
	http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
out:
	json_decref(kb_ctx);
	if (msgs != c.msgs)
		free(msgs);
	free(ctx_text);
	free(prompt);
	api_chat_free(&c);
}

/* ---- cache helpers ---- */

static char *cache_key(struct srv *s, int route, const char *body, size_t len, size_t *klen)
{
	uint64_t gen = atomic_load(&s->kb_ready) ? kb_generation(s->kb) : 0;
	size_t al = strlen(s->alias);
	char head[64];
	int hl = snprintf(head, sizeof(head), "%d|%llu|", route, (unsigned long long)gen);
	char *k = malloc((size_t)hl + al + 1 + len);
	if (!k)
		return NULL;
	memcpy(k, head, (size_t)hl);
	memcpy(k + hl, s->alias, al);
	k[(size_t)hl + al] = '|';
	memcpy(k + hl + al + 1, body, len);
	*klen = (size_t)hl + al + 1 + len;
	return k;
}

static bool cache_try(struct srv *s, struct http_req *r, const char *key, size_t klen)
{
	char *v;
	size_t vl;
	if (!key || cache_get(s->cache, key, klen, &v, &vl) != 1) {
		metrics_cache(s->metrics, 0);
		return false;
	}
	metrics_cache(s->metrics, 1);
	http_add_header(r, "X-Cache", "hit");
	http_reply(r, 200, "application/json", v, vl);
	free(v);
	return true;
}

static void reply_and_cache(struct srv *s, struct http_req *r, const char *key, size_t klen, json_t *o)
{
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!txt) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "cannot build the response");
		return;
	}
	if (key)
		cache_put(s->cache, key, klen, txt, strlen(txt));
	http_add_header(r, "X-Cache", "miss");
	http_reply_json(r, 200, txt);
	free(txt);
}

static void h_embeddings(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_embeddings in;
	struct api_error e = { 0 };
	size_t len, klen = 0;
	const char *body = http_body(r, &len);
	char *key = NULL;
	struct job *j = NULL;
	struct sched_job *sj = NULL;
	int64_t total = 0;

	if (api_parse_embeddings(body, len, &in, &e)) {
		http_reply_error(r, &e);
		return;
	}
	key = cache_key(s, R_EMBEDDINGS, body, len, &klen);
	if (cache_try(s, r, key, klen))
		goto out;
	j = job_new(s, JOB_EMBED);
	if (!j || !(j->toks = calloc(in.n_input, sizeof(*j->toks))) || !(j->n_toks = calloc(in.n_input, sizeof(int64_t))) ||
	    !(j->vecs = malloc(in.n_input * (size_t)s->dim * sizeof(float))))
		goto oom;
	for (size_t i = 0; i < in.n_input; i++) {
		int rc = tokenize(s, in.input[i], want_bos(s), false, &j->toks[i], &j->n_toks[i]);
		j->n_in = i + 1;
		if (rc) {
			http_reply_errorf(r, 400, IRE, "invalid_value", "input[%zu] cannot be tokenized", i);
			goto out;
		}
		if (j->n_toks[i] > s->n_ctx) {
			struct api_error ce = { .status = 400, .type = IRE, .code = "context_length_exceeded" };
			snprintf(ce.param, sizeof(ce.param), "input");
			snprintf(ce.message, sizeof(ce.message), "input[%zu] is %lld tokens but the context holds %lld (--ctx)", i,
				 (long long)j->n_toks[i], (long long)s->n_ctx);
			http_reply_error(r, &ce);
			goto out;
		}
		if (j->n_toks[i] == 0) {
			http_reply_errorf(r, 400, IRE, "invalid_value", "input[%zu] has no tokens", i);
			goto out;
		}
		total += j->n_toks[i];
	}
	sj = submit(s, r, j);
	j = NULL;
	if (!sj)
		goto out;
	j = sched_job_payload(sj);
	if (!wait_job(s, r, sj)) {
		http_reply_errorf(r, 400, IRE, "client_closed", "the client closed the connection");
	} else if (j->err) {
		reply_job_error(r, j);
	} else {
		json_t *data = json_array();
		for (size_t i = 0; i < in.n_input; i++) {
			json_t *v = json_array();
			for (int k = 0; k < s->dim; k++)
				json_array_append_new(v, json_real(j->vecs[i * (size_t)s->dim + (size_t)k]));
			json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)i,
							      "embedding", v));
		}
		json_t *o = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", s->alias,
				      "usage", "prompt_tokens", (json_int_t)total, "total_tokens", (json_int_t)total);
		reply_and_cache(s, r, key, klen, o);
	}
	sched_job_unref(sj);
	j = NULL;
	goto out;
oom:
	http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
out:
	job_free(j);
	free(key);
	api_embeddings_free(&in);
}

/* ---- tokenizer routes ---- */

static void h_tokenize(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_tokenize in;
	struct api_error e = { 0 };
	size_t len;
	const char *body = http_body(r, &len);
	int32_t *ids = NULL;
	int64_t n = 0;
	if (api_parse_tokenize(body, len, &in, &e)) {
		http_reply_error(r, &e);
		return;
	}
	int rc = tokenize(s, in.content, in.add_special && tok_bos(s->tok) >= 0, true, &ids, &n);
	if (rc) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'content' cannot be tokenized (%s)", strerror(-rc));
		goto out;
	}
	json_t *arr = json_array();
	for (int64_t i = 0; i < n; i++) {
		if (in.with_pieces) {
			char piece[256];
			int64_t pl = tok_piece(s->tok, ids[i], false, true, piece, sizeof(piece));
			if (pl < 0)
				pl = 0;
			if (pl > (int64_t)sizeof(piece))
				pl = sizeof(piece);
			json_array_append_new(arr, json_pack("{s:i,s:o}", "id", ids[i], "piece", jstr_bytes(piece, (size_t)pl)));
		} else {
			json_array_append_new(arr, json_integer(ids[i]));
		}
	}
	reply_jsonobj(r, 200, json_pack("{s:o}", "tokens", arr));
out:
	free(ids);
	api_tokenize_free(&in);
}

static void h_detokenize(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_detokenize in;
	struct api_error e = { 0 };
	size_t len;
	const char *body = http_body(r, &len);
	char *buf = NULL;
	if (api_parse_detokenize(body, len, &in, &e)) {
		http_reply_error(r, &e);
		return;
	}
	for (size_t i = 0; i < in.n; i++)
		if (in.tokens[i] >= tok_n_vocab(s->tok)) {
			struct api_error te = { .status = 400, .type = IRE, .code = "invalid_value" };
			snprintf(te.param, sizeof(te.param), "tokens");
			snprintf(te.message, sizeof(te.message), "'tokens[%zu]' = %d is outside the vocabulary (0..%d)", i,
				 in.tokens[i], tok_n_vocab(s->tok) - 1);
			http_reply_error(r, &te);
			goto out;
		}
	int64_t need = tok_decode(s->tok, in.tokens, in.n, false, NULL, 0);
	if (need < 0) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'tokens' cannot be decoded");
		goto out;
	}
	buf = malloc((size_t)need + 1);
	if (!buf) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		goto out;
	}
	tok_decode(s->tok, in.tokens, in.n, false, buf, (size_t)need + 1);
	reply_jsonobj(r, 200, json_pack("{s:o}", "content", jstr_bytes(buf, (size_t)need)));
out:
	free(buf);
	api_detokenize_free(&in);
}

/* ---- knowledge base routes ---- */

static void h_kb_add(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_error e = { 0 };
	size_t len;
	const char *body = http_body(r, &len);
	struct job *j = job_new(s, JOB_INGEST);
	struct sched_job *sj;
	if (!j) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		return;
	}
	if (api_parse_kb_doc(body, len, &j->doc, &e)) {
		job_free(j);
		http_reply_error(r, &e);
		return;
	}
	if (!(sj = submit(s, r, j)))
		return;
	j = sched_job_payload(sj);
	if (!wait_job(s, r, sj))
		http_reply_errorf(r, 400, IRE, "client_closed", "the client closed the connection");
	else if (j->err)
		reply_job_error(r, j);
	else
		reply_jsonobj(r, 200, json_pack("{s:I,s:s,s:s,s:i}", "id", (json_int_t)j->doc_id, "object", "kb.document",
						"name", j->doc.name, "n_chunks", j->n_chunks));
	sched_job_unref(sj);
}

static void h_kb_list(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	char *js;
	if (kb_list_json(s->kb, &js)) {
		http_reply_errorf(r, 500, "server_error", "kb_error", "cannot list the knowledge base");
		return;
	}
	http_reply_json(r, 200, js);
	free(js);
}

static bool doc_id(struct http_req *r, int64_t *id)
{
	const char *p = http_path_rest(r);
	char *end;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (!*p || *end || errno || v <= 0) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'%s' is not a document id", p);
		return false;
	}
	*id = v;
	return true;
}

static void h_kb_get(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	int64_t id;
	char *js;
	if (!doc_id(r, &id))
		return;
	int rc = kb_get_json(s->kb, id, &js);
	if (rc == -ENOENT) {
		http_reply_errorf(r, 404, IRE, "not_found", "no document %lld", (long long)id);
		return;
	}
	if (rc) {
		http_reply_errorf(r, 500, "server_error", "kb_error", "cannot read document %lld", (long long)id);
		return;
	}
	http_reply_json(r, 200, js);
	free(js);
}

static void h_kb_delete(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	int64_t id;
	if (!doc_id(r, &id))
		return;
	int rc = kb_delete(s->kb, id);
	if (rc == -ENOENT) {
		http_reply_errorf(r, 404, IRE, "not_found", "no document %lld", (long long)id);
		return;
	}
	if (rc) {
		http_reply_errorf(r, 500, "server_error", "kb_error", "cannot delete document %lld", (long long)id);
		return;
	}
	cache_clear(s->cache);
	reply_jsonobj(r, 200, json_pack("{s:I,s:s,s:b}", "id", (json_int_t)id, "object", "kb.document", "deleted", 1));
}

static void h_kb_query(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct api_kb_query q;
	struct api_error e = { 0 };
	size_t len, klen = 0;
	const char *body = http_body(r, &len);
	char *key;
	if (api_parse_kb_query(body, len, &q, &e)) {
		http_reply_error(r, &e);
		return;
	}
	key = cache_key(s, R_KB_QUERY, body, len, &klen);
	if (!cache_try(s, r, key, klen)) {
		json_t *hits = kb_retrieve(s, r, q.query, q.top_k);
		if (hits)
			reply_and_cache(s, r, key, klen, json_pack("{s:s,s:o}", "object", "list", "data", hits));
	}
	free(key);
	api_kb_query_free(&q);
}

/* ---- status routes ---- */

static void h_health(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct metrics_gauges g;
	bool failed;
	srv_gauges(s, &g, true);
	pthread_mutex_lock(&s->load_mu);
	failed = s->load_done && s->load_rc;
	pthread_mutex_unlock(&s->load_mu);
	bool ok = g.model_loaded && g.vector_store_ready && !atomic_load(&s->stopping);
	const char *status = ok ? "ok" : failed ? "error" : atomic_load(&s->stopping) ? "stopping" : "loading";
	json_t *o = json_pack("{s:s,s:f,s:b,s:b,s:s,s:I,s:I,s:I,s:I}", "status", status, "uptime_s", g.uptime_s,
			      "model_loaded", g.model_loaded, "vector_store_ready", g.vector_store_ready, "model", s->alias,
			      "slots_idle", (json_int_t)(g.slots_total - g.slots_busy), "slots_processing",
			      (json_int_t)g.slots_busy, "queue_length", (json_int_t)g.queue_len, "kb_documents",
			      (json_int_t)g.kb_documents);
	if (!ok)
		http_add_header(r, "Retry-After", "1");
	reply_jsonobj(r, ok ? 200 : 503, o);
}

static void h_metrics(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct metrics_gauges g;
	size_t len;
	srv_gauges(s, &g, false);
	char *txt = metrics_render(s->metrics, &g, &len);
	if (!txt) {
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
		return;
	}
	http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", txt, len);
	free(txt);
}

static void h_models(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", s->alias, "object", "model", "created", (json_int_t)s->created,
			      "owned_by", "dify-edge");
	if (atomic_load(&s->model_loaded)) {
		const struct model_hparams *hp = model_hparams(s->model);
		json_object_set_new(m, "meta", json_pack("{s:s,s:I,s:I,s:I,s:I,s:s,s:s}", "arch", model_arch_name(hp->arch),
							 "n_vocab", (json_int_t)hp->n_vocab, "n_ctx_train",
							 (json_int_t)hp->n_ctx_train, "n_ctx", (json_int_t)s->n_ctx, "n_embd",
							 (json_int_t)hp->n_embd, "chat_template", chat_family_name(s->chat),
							 "weight_type", ggml_type_name(model_weight_type(s->model))));
	}
	reply_jsonobj(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", m));
}

/* ---- admission: auth, rate limit, model ---- */

static bool admit(void *ud, struct http_req *r, const struct http_route *rt)
{
	struct srv *s = ud;
	const char *auth = http_header(r, "Authorization");
	const char *token = NULL;
	char key[300];

	if (auth && !strncasecmp(auth, "Bearer ", 7))
		token = auth + 7;
	if ((rt->flags & F_AUTH) && s->api_key) {
		if (!token || strcmp(token, s->api_key)) {
			http_add_header(r, "WWW-Authenticate", "Bearer");
			http_reply_errorf(r, 401, IRE, "invalid_api_key",
					  token ? "the API key is not valid" : "an API key is required (Authorization: Bearer KEY)");
			return false;
		}
	}
	if ((rt->flags & F_LIMIT) && s->rl) {
		struct rl_result res;
		char v[32];
		/* the key only identifies a client when keys are checked; otherwise
		 * a client could dodge the limit by inventing tokens */
		if (token && s->api_key)
			snprintf(key, sizeof(key), "key:%.256s", token);
		else
			snprintf(key, sizeof(key), "ip:%s", http_peer(r));
		if (!rl_throttle(s->rl, key, 1, sched_now_ns(), &res)) {
			snprintf(v, sizeof(v), "%lld", (long long)res.limit);
			http_add_header(r, "X-RateLimit-Limit", v);
			snprintf(v, sizeof(v), "%lld", (long long)res.remaining);
			http_add_header(r, "X-RateLimit-Remaining", v);
			snprintf(v, sizeof(v), "%lld", (long long)(res.reset_after_s > 0 ? res.reset_after_s : 0));
			http_add_header(r, "X-RateLimit-Reset", v);
			if (res.limited) {
				snprintf(v, sizeof(v), "%lld", (long long)(res.retry_after_s > 0 ? res.retry_after_s : 1));
				http_add_header(r, "Retry-After", v);
				metrics_rate_limited(s->metrics);
				http_reply_errorf(r, 429, "rate_limit_error", "rate_limit_exceeded",
						  "rate limit exceeded: %lld requests per %lld s with bursts of %lld; retry in %s s",
						  (long long)s->cfg.rl_count, (long long)s->cfg.rl_period_s, (long long)res.limit, v);
				return false;
			}
		}
	}
	if ((rt->flags & F_MODEL) && !atomic_load(&s->model_loaded)) {
		http_add_header(r, "Retry-After", "1");
		http_reply_errorf(r, 503, "server_error", "model_loading", "the model is loading: retry shortly");
		return false;
	}
	if ((rt->flags & F_MODEL) && (rt->id >= R_KB_ADD && rt->id <= R_KB_QUERY) && !atomic_load(&s->kb_ready)) {
		http_add_header(r, "Retry-After", "1");
		http_reply_errorf(r, 503, "server_error", "kb_loading", "the knowledge base index is being built: retry shortly");
		return false;
	}
	return true;
}

static void on_done(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	if (http_route_id(r) >= 0)
		metrics_request(s->metrics, http_route_id(r), http_status(r));
}

static void http_log(void *ud, const char *msg)
{
	srv_log(ud, "%s", msg);
}

/* ---- life cycle ---- */

static void *loader_main(void *arg)
{
	struct srv *s = arg;
	char err[512] = "";
	int rc = 0;
	const char *tmpl = NULL;
	size_t tlen = 0;

	s->pool = tpool_new(s->cfg.threads, err, sizeof(err));
	if (!s->pool) {
		rc = -ENOMEM;
		goto out;
	}
	rc = model_load(s->model_path, s->pool, NULL, &s->model, err, sizeof(err));
	if (rc)
		goto out;
	s->tok = model_tok(s->model);
	s->dim = (int)model_n_embd(s->model);
	s->slots = calloc((size_t)s->cfg.parallel, sizeof(*s->slots));
	if (!s->slots) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	for (int i = 0; i < s->cfg.parallel; i++) {
		struct model_ctx_opts co = { .n_ctx = s->cfg.n_ctx, .n_batch = s->cfg.n_batch };
		rc = model_ctx_new(s->model, &co, &s->slots[i].ctx, err, sizeof(err));
		if (rc)
			goto out;
	}
	s->n_ctx = model_ctx_n_ctx(s->slots[0].ctx);
	gguf_get_str(model_gguf(s->model), "tokenizer.chat_template", &tmpl, &tlen);
	s->chat = chat_detect(tmpl, tlen, tok_lookup(s->tok, "<|im_start|>", 12) >= 0);
	s->sched = sched_new(s->cfg.parallel, s->cfg.queue, run_job, s, err, sizeof(err));
	if (!s->sched) {
		rc = -EINVAL;
		goto out;
	}
	atomic_store(&s->model_loaded, true);
	srv_log(s, "model %s loaded: %s, %lld layers, n_embd %d, context %lld per slot, %d slots, %d threads, chat template %s",
		s->model_path, model_arch_name(model_arch(s->model)), (long long)model_n_layer(s->model), s->dim,
		(long long)s->n_ctx, s->cfg.parallel, tpool_size(s->pool), chat_family_name(s->chat));

	struct kb_opts ko = { .dim = s->dim, .hnsw = s->cfg.hnsw };
	rc = kb_open(s->kb_path, &ko, &s->kb, err, sizeof(err));
	if (rc)
		goto out;
	int64_t t0 = sched_now_ns();
	rc = kb_build_index(s->kb, err, sizeof(err));
	if (rc)
		goto out;
	int64_t docs, chunks;
	kb_counts(s->kb, &docs, &chunks);
	atomic_store(&s->kb_ready, true);
	srv_log(s, "knowledge base %s: %lld documents, %lld chunks, index built in %.1f ms", s->kb_path, (long long)docs,
		(long long)chunks, (double)(sched_now_ns() - t0) / 1e6);
out:
	pthread_mutex_lock(&s->load_mu);
	s->load_done = true;
	s->load_rc = rc;
	snprintf(s->load_err, sizeof(s->load_err), "%s", err);
	pthread_cond_broadcast(&s->load_cv);
	pthread_mutex_unlock(&s->load_mu);
	return NULL;
}

static char *dup_or_null(const char *p)
{
	return p ? strdup(p) : NULL;
}

int srv_start(const struct srv_config *c, struct srv **out, char *err, size_t errlen)
{
	int rc = 0;
	struct srv *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->cfg = *c;
	pthread_mutex_init(&s->load_mu, NULL);
	pthread_cond_init(&s->load_cv, NULL);
	pthread_mutex_init(&s->admin_mu, NULL);
	s->admin_fd = -1;
	s->t_start_ns = sched_now_ns();
	s->created = time(NULL);
	if (!c->model_path || c->parallel < 1 || c->threads < 1 || c->threads > TPOOL_MAX_THREADS) {
		snprintf(err, errlen, "bad configuration: a model path, --parallel >= 1 and --threads 1..%d are required",
			 TPOOL_MAX_THREADS);
		rc = -EINVAL;
		goto fail;
	}
	s->model_path = strdup(c->model_path);
	s->host = strdup(c->host ? c->host : "127.0.0.1");
	s->kb_path = strdup(c->kb_path ? c->kb_path : ":memory:");
	s->admin_path = dup_or_null(c->admin_socket);
	s->api_key = dup_or_null(c->api_key);
	if (c->model_alias) {
		s->alias = strdup(c->model_alias);
	} else {
		const char *b = strrchr(c->model_path, '/');
		s->alias = strdup(b ? b + 1 : c->model_path);
	}
	if (!s->model_path || !s->host || !s->kb_path || !s->alias || (c->admin_socket && !s->admin_path) ||
	    (c->api_key && !s->api_key)) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	s->cfg.model_path = s->model_path;
	s->cfg.host = s->host;
	s->cfg.kb_path = s->kb_path;
	s->cfg.admin_socket = s->admin_path;
	s->cfg.api_key = s->api_key;
	s->cfg.model_alias = s->alias;
	s->metrics = metrics_new(route_names, route_methods, R_COUNT);
	s->cache = cache_new(c->cache_entries, (int64_t)c->cache_ttl_s * 1000000000LL, NULL, NULL);
	if (!s->metrics || !s->cache) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	if (c->rl_count > 0) {
		s->rl = rl_new(c->rl_burst, c->rl_count, c->rl_period_s, 65536, err, errlen);
		if (!s->rl) {
			rc = -EINVAL;
			goto fail;
		}
	}
	struct http_opts ho = {
		.routes = routes,
		.n_routes = sizeof(routes) / sizeof(routes[0]),
		.ud = s,
		.host = s->host,
		.port = c->port,
		.listen_fd = -1,
		.body_limit = c->body_limit,
		.timeout_s = c->timeout_s,
		.max_conns = c->max_conns,
		.admit = admit,
		.done = on_done,
		.log = http_log,
	};
	s->http = http_start(&ho, err, errlen);
	if (!s->http) {
		rc = -EADDRNOTAVAIL;
		goto fail;
	}
	if (s->admin_path && (rc = admin_start(s, s->admin_path, err, errlen)))
		goto fail;
	if (pthread_create(&s->loader, NULL, loader_main, s)) {
		snprintf(err, errlen, "cannot start the loader thread");
		rc = -EAGAIN;
		goto fail;
	}
	s->loader_started = true;
	*out = s;
	return 0;
fail:
	srv_free(s);
	return rc;
}

uint16_t srv_port(struct srv *s)
{
	return http_port(s->http);
}

int srv_wait_loaded(struct srv *s, int timeout_ms, char *err, size_t errlen)
{
	struct timespec dl;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->load_mu);
	while (!s->load_done)
		if (pthread_cond_timedwait(&s->load_cv, &s->load_mu, &dl) == ETIMEDOUT)
			break;
	if (!s->load_done) {
		rc = -ETIMEDOUT;
		snprintf(err, errlen, "still loading");
	} else if (s->load_rc) {
		rc = s->load_rc;
		snprintf(err, errlen, "%s", s->load_err);
	}
	pthread_mutex_unlock(&s->load_mu);
	return rc;
}

int srv_shutdown(struct srv *s, int drain_ms)
{
	int left = 0;
	atomic_store(&s->stopping, true);
	http_quiesce(s->http);
	if (s->loader_started) {
		pthread_join(s->loader, NULL);
		s->loader_started = false;
	}
	if (s->sched) {
		struct sched_stats st;
		sched_stop_accepting(s->sched);
		if (sched_wait_idle(s->sched, drain_ms)) {
			sched_stats(s->sched, &st);
			left = st.busy + st.queued;
		}
	}
	return left;
}

void srv_free(struct srv *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	if (s->loader_started)
		pthread_join(s->loader, NULL);
	admin_stop(s);
	/* the scheduler first: it cancels queued jobs and waits for running
	 * ones, so the HTTP threads waiting on them return */
	sched_free(s->sched);
	s->sched = NULL;
	http_stop(s->http);
	kb_close(s->kb);
	for (int i = 0; s->slots && i < s->cfg.parallel; i++)
		model_ctx_free(s->slots[i].ctx);
	free(s->slots);
	model_free(s->model);
	tpool_free(s->pool);
	rl_free(s->rl);
	cache_free(s->cache);
	metrics_free(s->metrics);
	pthread_mutex_destroy(&s->load_mu);
	pthread_cond_destroy(&s->load_cv);
	pthread_mutex_destroy(&s->admin_mu);
	free(s->model_path);
	free(s->alias);
	free(s->host);
	free(s->kb_path);
	free(s->admin_path);
	free(s->api_key);
	free(s);
}
