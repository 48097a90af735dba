/*
 * admin.c: the core's admin API over a Unix socket, through libcurl
 * (see admin.h). Every call is a fresh easy handle: the controller talks to
 * the core once per tick at most, so connection reuse buys nothing and a
 * fresh handle never carries state from a core that was restarted.
 */
#include "controller/admin.h"

#include <errno.h>
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

int cadmin_parse_stats(const char *json, struct cadmin_stats *st, char *err, size_t errlen)
{
	static const char *const k_queue[] = { "queue", "queue_len", "queue_length", "queued", NULL };
	static const char *const k_slots[] = { "slots", "slots_total", "parallel", NULL };
	static const char *const k_busy[] = { "busy_slots", "slots_busy", NULL };
	static const char *const k_threads[] = { "pool_size", "threads", "n_threads", NULL };
	static const char *const k_mem[] = { "resident", "resident_bytes", "rss_bytes", NULL };
	static const char *const k_kv[] = { "kv_used_pct", "kv_cache_used_pct", NULL };
	static const char *const k_ttft[] = { "ttft_p99_ms", NULL };
	static const char *const k_req[] = { "requests", "requests_total", NULL };
	static const char *const k_tid[] = { "tid", "thread_id", NULL };
	static const char *const k_bns[] = { "busy_ns", NULL };
	json_error_t je;
	json_t *root = json_loads(json, 0, &je), *o, *w;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	if (!json_is_object(root)) {
		seterr(err, errlen, "admin stats: not a JSON object (%s)", root ? "wrong type" : je.text);
		ret = -EINVAL;
		goto out;
	}
	o = root;
	st->queue = geti(o, k_queue);
	st->slots = geti(o, k_slots);
	st->busy_slots = geti(o, k_busy);
	st->threads = geti(o, k_threads);
	/* nested objects the server may use */
	if (json_is_object(json_object_get(o, "slots"))) {
		json_t *s = json_object_get(o, "slots");
		static const char *const k_total[] = { "total", "n", NULL };
		static const char *const k_b[] = { "busy", NULL };

		st->slots = geti(s, k_total);
		st->busy_slots = geti(s, k_b);
	}
	if (json_is_object(json_object_get(o, "pool"))) {
		json_t *p = json_object_get(o, "pool");
		static const char *const k_n[] = { "size", "n", "threads", NULL };

		st->threads = geti(p, k_n);
		if (!json_object_get(o, "workers"))
			o = p;
	}
	st->mem_bytes = geti(root, k_mem);
	if (json_is_object(json_object_get(root, "memory"))) {
		json_t *m = json_object_get(root, "memory");
		static const char *const k_r[] = { "resident", "resident_bytes", "rss", "rss_bytes", NULL };

		st->mem_bytes = geti(m, k_r);
	}
	st->kv_used_pct = getd(root, k_kv);
	st->ttft_p99_ms = getd(root, k_ttft);
	st->requests = geti(root, k_req);
	w = json_object_get(o, "workers");
	st->nworkers = 0;
	if (json_is_array(w)) {
		size_t i;
		json_t *e;

		json_array_foreach(w, i, e) {
			if (st->nworkers >= CADMIN_MAX_WORKERS)
				break;
			st->worker_tid[st->nworkers] = (pid_t)geti(e, k_tid);
			st->worker_busy_ns[st->nworkers] = geti(e, k_bns);
			st->nworkers++;
		}
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
		seterr(err, errlen, "admin socket %s: PUT %s %s: HTTP %ld %.120s", sock, path, json, status,
		       body ? body : "");
		ret = -EIO;
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

int cadmin_http_status(const char *url, long timeout_ms, char *err, size_t errlen)
{
	long status = 0;
	int ret = perform(NULL, url, "GET", NULL, timeout_ms, &status, NULL, err, errlen);

	return ret < 0 ? ret : (int)status;
}
