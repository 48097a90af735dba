/*
 * admin.c: the core's admin API over a Unix socket, through libcurl
 * (see admin.h). Every call is a fresh easy handle: the controller talks to
 * the core once per tick at most, so connection reuse buys nothing and a
 * fresh handle never carries state from a core that was restarted.
 */
#include "controller/admin.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t add = size * nmemb;
	char *np;

	if (b->n + add > (16u << 20))
		return 0; /* refuse absurd bodies */
	np = realloc(b->p, b->n + add + 1);
	if (!np)
		return 0;
	memcpy(np + b->n, ptr, add);
	b->n += add;
	np[b->n] = 0;
	b->p = np;
	return add;
}

static int perform(const char *sock, const char *url, const char *method, const char *json, long timeout_ms,
		   long *status, char **body, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct buf b = { 0 };
	CURLcode rc;
	int ret = 0;

	if (body)
		*body = NULL;
	if (!c) {
		seterr(err, errlen, "libcurl: cannot create a handle");
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (json) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		seterr(err, errlen, "%s%s%s: %s %s: %s", sock ? "admin socket " : "", sock ? sock : "", sock ? "" : url,
		       method, sock ? strchr(url + 7, '/') : "", curl_easy_strerror(rc));
		ret = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (body) {
		*body = b.p;
		b.p = NULL;
	}
out:
	free(b.p);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return ret;
}

int cadmin_request(const char *sock, const char *method, const char *path, const char *json, long *status,
		   char **body, char *err, size_t errlen)
{
	char url[512];

	snprintf(url, sizeof(url), "http://localhost%s", path);
	return perform(sock, url, method, json, 2000, status, body, err, errlen);
}

static int64_t geti(json_t *o, const char *const *keys)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(o, *keys);

		if (json_is_integer(v))
			return (int64_t)json_integer_value(v);
		if (json_is_real(v))
			return (int64_t)json_real_value(v);
	}
	return -1;
}

static double getd(json_t *o, const char *const *keys)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(o, *keys);

		if (json_is_number(v))
			return json_number_value(v);
	}
	return -1;
}

/*
 * The core's /admin/stats (dify-edge-core/server/admin.c):
 *   {"queue":{"length":N,...}, "slots":[{"id","busy","kv_used","n_ctx"}...],
 *    "slots_busy":N, "pool":{"threads":N,"workers":[{"tid","busy_ns",...}]},
 *    "memory":{"rss_bytes":N,"kv_bytes":N,"jemalloc":{"resident":N,...}}}
 * Flat spellings ("queue":N, "threads":N, "workers":[...]) are read too.
 */
int cadmin_parse_stats(const char *json, struct cadmin_stats *st, char *err, size_t errlen)
{
	static const char *const k_len[] = { "length", "len", NULL };
	static const char *const k_busy[] = { "slots_busy", "busy_slots", NULL };
	static const char *const k_threads[] = { "threads", "pool_size", "size", NULL };
	static const char *const k_tid[] = { "tid", "thread_id", NULL };
	static const char *const k_bns[] = { "busy_ns", NULL };
	static const char *const k_rss[] = { "rss_bytes", "resident", NULL };
	static const char *const k_res[] = { "resident", NULL };
	static const char *const k_ttft[] = { "ttft_p99_ms", NULL };
	static const char *const k_prio[] = { "priority", NULL };
	json_error_t je;
	json_t *root = json_loads(json, 0, &je), *q, *sl, *pool, *w, *mem;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	st->queue = st->slots = st->busy_slots = st->threads = st->mem_bytes = st->requests = -1;
	st->kv_used_pct = st->ttft_p99_ms = -1;
	st->rt_prio = -1;
	if (!json_is_object(root)) {
		seterr(err, errlen, "admin stats: not a JSON object (%s)", root ? "wrong type" : je.text);
		ret = -EINVAL;
		goto out;
	}
	q = json_object_get(root, "queue");
	st->queue = json_is_object(q) ? geti(q, k_len) : json_is_integer(q) ? (int64_t)json_integer_value(q) : -1;
	st->busy_slots = geti(root, k_busy);
	sl = json_object_get(root, "slots");
	if (json_is_array(sl)) {
		size_t i;
		json_t *e;
		double used = 0, cap = 0;
		int64_t busy = 0;

		st->slots = (int64_t)json_array_size(sl);
		json_array_foreach(sl, i, e) {
			used += (double)json_integer_value(json_object_get(e, "kv_used"));
			cap += (double)json_integer_value(json_object_get(e, "n_ctx"));
			busy += json_is_true(json_object_get(e, "busy"));
		}
		if (cap > 0)
			st->kv_used_pct = used * 100.0 / cap;
		if (st->busy_slots < 0)
			st->busy_slots = busy;
	} else if (json_is_integer(sl)) {
		st->slots = (int64_t)json_integer_value(sl);
	}
	pool = json_object_get(root, "pool");
	if (!json_is_object(pool))
		pool = root;
	st->threads = geti(pool, k_threads);
	w = json_object_get(pool, "workers");
	if (json_is_array(w)) {
		size_t i;
		json_t *e;

		json_array_foreach(w, i, e) {
			if (st->nworkers >= CADMIN_MAX_WORKERS)
				break;
			st->worker_tid[st->nworkers] = (pid_t)geti(e, k_tid);
			st->worker_busy_ns[st->nworkers] = geti(e, k_bns);
			st->nworkers++;
			/* each worker's class, as the kernel reports it */
			json_t *sj = json_object_get(e, "sched");
			if (json_is_string(sj) && st->rt_prio != -2) {
				const char *pn = json_string_value(sj);
				int pr = !strcmp(pn, "fifo") || !strcmp(pn, "rr") ? (int)geti(e, k_prio)
					 : !strcmp(pn, "other") ? 0 : -2;
				st->rt_prio = st->rt_prio == -1 || st->rt_prio == pr ? pr : -2;
			}
		}
	}
	mem = json_object_get(root, "memory");
	if (json_is_object(mem)) {
		json_t *je2 = json_object_get(mem, "jemalloc");

		st->mem_bytes = json_is_object(je2) ? geti(je2, k_res) : -1;
		if (st->mem_bytes < 0)
			st->mem_bytes = geti(mem, k_rss);
	}
	st->ttft_p99_ms = getd(root, k_ttft);
	q = json_object_get(root, "queue");
	if (json_is_object(q)) {
		static const char *const k_done[] = { "completed", NULL };

		st->requests = geti(q, k_done);
	}
out:
	json_decref(root);
	return ret;
}

int cadmin_get_stats(const char *sock, struct cadmin_stats *st, char *err, size_t errlen)
{
	long status = 0;
	char *body = NULL;
	int ret = cadmin_request(sock, "GET", "/admin/stats", NULL, &status, &body, err, errlen);

	if (ret < 0)
		goto out;
	if (status != 200 || !body) {
		seterr(err, errlen, "admin socket %s: GET /admin/stats: HTTP %ld", sock, status);
		ret = -EIO;
		goto out;
	}
	ret = cadmin_parse_stats(body, st, err, errlen);
out:
	free(body);
	return ret;
}

static int put_json(const char *sock, const char *path, const char *json, char *err, size_t errlen)
{
	long status = 0;
	char *body = NULL;
	int ret = cadmin_request(sock, "PUT", path, json, &status, &body, err, errlen);

	if (ret == 0 && (status < 200 || status >= 300)) {
		/* the core's error body: {"error":{"message":...}} */
		json_t *o = body ? json_loads(body, 0, NULL) : NULL;
		json_t *m = json_object_get(json_object_get(o, "error"), "message");

		if (json_is_string(m))
			seterr(err, errlen, "admin socket %s: PUT %s %s: HTTP %ld: %s", sock, path, json, status,
			       json_string_value(m));
		else
			seterr(err, errlen, "admin socket %s: PUT %s %s: HTTP %ld %.120s", sock, path, json, status,
			       body ? body : "");
		json_decref(o);
		ret = status == 409 ? -EPERM : -EIO;
	}
	free(body);
	return ret;
}

int cadmin_set_threads(const char *sock, int n, char *err, size_t errlen)
{
	char j[64];

	snprintf(j, sizeof(j), "{\"n\":%d}", n);
	return put_json(sock, "/admin/threads", j, err, errlen);
}

int cadmin_set_affinity(const char *sock, const char *cpus, char *err, size_t errlen)
{
	char j[512];

	snprintf(j, sizeof(j), "{\"cpus\":\"%s\"}", cpus);
	return put_json(sock, "/admin/affinity", j, err, errlen);
}

int cadmin_set_rt(const char *sock, int prio, char *err, size_t errlen)
{
	char j[64];

	if (prio > 0)
		snprintf(j, sizeof(j), "{\"policy\":\"fifo\",\"priority\":%d}", prio);
	else
		snprintf(j, sizeof(j), "{\"policy\":\"other\"}");
	return put_json(sock, "/admin/sched", j, err, errlen);
}

int cadmin_http_get(const char *url, long timeout_ms, char **body, char *err, size_t errlen)
{
	long status = 0;
	int ret = perform(NULL, url, "GET", NULL, timeout_ms, &status, body, err, errlen);

	if (ret == 0 && status != 200) {
		seterr(err, errlen, "%s: HTTP %ld", url, status);
		free(*body);
		*body = NULL;
		ret = -EIO;
	}
	return ret;
}

int cadmin_http_status(const char *url, long timeout_ms, char *err, size_t errlen)
{
	long status = 0;
	int ret = perform(NULL, url, "GET", NULL, timeout_ms, &status, NULL, err, errlen);

	return ret < 0 ? ret : (int)status;
}

int cadmin_parse_hist(const char *text, const char *name, double *bounds, uint64_t *cum, int max)
{
	char want[160];
	const char *p = text;
	int n = 0;

	snprintf(want, sizeof(want), "%s_bucket{", name);
	while (p && *p && n < max) {
		const char *nl = strchr(p, '\n');

		if (!strncmp(p, want, strlen(want))) {
			const char *le = strstr(p, "le=\""), *close = le ? strchr(le + 4, '"') : NULL;
			const char *val = close ? strchr(close, '}') : NULL;

			if (le && close && val && (!nl || val < nl)) {
				char b[64];
				size_t l = (size_t)(close - (le + 4));

				if (l >= sizeof(b))
					l = sizeof(b) - 1;
				memcpy(b, le + 4, l);
				b[l] = 0;
				bounds[n] = !strcmp(b, "+Inf") ? INFINITY : strtod(b, NULL);
				cum[n] = strtoull(val + 1, NULL, 10);
				n++;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

double cadmin_hist_quantile(const double *bounds, const uint64_t *cum, int n, double q)
{
	double rank, lo, below;
	uint64_t total;

	if (n < 1 || !cum[n - 1])
		return NAN;
	total = cum[n - 1];
	/* linear within the bucket, as Prometheus' histogram_quantile(): a p99
	 * read as the bucket's upper bound moved in whole buckets (5 -> 7.5 ->
	 * 10 ms), and a policy band narrower than a bucket saw no change */
	rank = q * (double)total;
	for (int i = 0; i < n; i++) {
		if ((double)cum[i] < rank || !cum[i])
			continue;
		if (isinf(bounds[i]))
			return i > 0 ? bounds[i - 1] : NAN;
		lo = i > 0 ? bounds[i - 1] : 0;
		below = i > 0 ? (double)cum[i - 1] : 0;
		if ((double)cum[i] <= below)
			return bounds[i];
		return lo + (bounds[i] - lo) * (rank - below) / ((double)cum[i] - below);
	}
	return NAN;
}
