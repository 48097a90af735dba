/*
 * admin.c: the admin API, HTTP on a Unix socket, for the controller and
 * operators (`curl --unix-socket PATH http://x/admin/stats`).
 *
 * DESIGN
 * We bind the AF_UNIX socket ourselves (mode 0600, a stale socket file is
 * replaced, anything else at the path is refused) and hand the listening fd
 * to a second libmicrohttpd daemon. Every request's peer is checked with
 * SO_PEERCRED: only our own uid or root may use it (403 otherwise), so the
 * file mode is not the only guard. Routes:
 *   GET  /admin/stats            queue, slots, pool (worker tids, busy/idle ns,
 *                                last CPU), memory (RSS, KV, jemalloc)
 *   PUT  /admin/threads          {"n":N}: resize the compute pool (applies
 *                                between forward passes)
 *   PUT  /admin/affinity         {"cpus":"2-5"} every worker, or
 *                                {"worker":i,"cpus":"3"}, or
 *                                {"workers":[{"worker":i,"cpus":"..."},...]}
 *   PUT  /admin/sched            {"policy":"fifo"|"rr"|"other","priority":N}:
 *                                the workers' scheduling class (all or none;
 *                                workers started later take it too); 409
 *                                with the kernel's reason when it refuses
 *   POST /admin/heap/dump        {"path":"/tmp/x.heap"}: jemalloc prof.dump
 *   PUT  /admin/heap/profiling   {"active":true|false}: jemalloc prof.active
 * Heap profiling needs jemalloc started with MALLOC_CONF=prof:true (profiling
 * compiled in and enabled, sampling inactive until prof.active is set; use
 * MALLOC_CONF=prof:true,prof_active:false to start it off).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "dify-edge-core/server/server_internal.h"

extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

#define IRE "invalid_request_error"

int admin_parse_cpulist(const char *str, cpu_set_t *set, char *err, size_t errlen)
{
	const char *p = str;
	int n = 0;
	CPU_ZERO(set);
	if (!str || !*str)
		goto bad;
	while (*p) {
		char *end;
		long a, b;
		if (*p < '0' || *p > '9')
			goto bad;
		a = strtol(p, &end, 10);
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				goto bad;
			b = strtol(p, &end, 10);
			p = end;
		}
		if (a > b || b >= CPU_SETSIZE)
			goto bad;
		for (long c = a; c <= b; c++) {
			CPU_SET((int)c, set);
			n++;
		}
		if (*p == ',')
			p++;
		else if (*p)
			goto bad;
	}
	if (n)
		return 0;
bad:
	snprintf(err, errlen, "'%s' is not a CPU list like \"2-5\" or \"0,2,4-7\" (CPUs 0..%d)", str ? str : "",
		 CPU_SETSIZE - 1);
	return -EINVAL;
}

static void cpus_string(const cpu_set_t *set, char *buf, size_t n)
{
	size_t o = 0;
	buf[0] = 0;
	for (int c = 0; c < CPU_SETSIZE && o + 16 < n; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		o += (size_t)snprintf(buf + o, n - o, o ? ",%d" : "%d", c);
		if (e > c)
			o += (size_t)snprintf(buf + o, n - o, "-%d", e);
		c = e;
	}
}

/* The process's resident set (bytes) from /proc/self/statm under EDGE_SYSROOT. */
static int64_t rss_bytes(void)
{
	const char *root = getenv("EDGE_SYSROOT");
	char path[512];
	long long size = 0, res = 0;
	FILE *f;
	snprintf(path, sizeof(path), "%s/proc/self/statm", root && *root ? root : "");
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld %lld", &size, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static const char *policy_name(int pol)
{
	switch (pol) {
	case SCHED_OTHER: return "other";
	case SCHED_FIFO: return "fifo";
	case SCHED_RR: return "rr";
	case SCHED_BATCH: return "batch";
	case SCHED_IDLE: return "idle";
	default: return "unknown";
	}
}

static json_t *pool_json(struct srv *s)
{
	struct tpool_worker_stats ws[TPOOL_MAX_THREADS];
	int n = tpool_stats(s->pool, ws, TPOOL_MAX_THREADS);
	json_t *arr = json_array();
	for (int i = 0; i < n && i < TPOOL_MAX_THREADS; i++) {
		json_t *w = json_pack("{s:i,s:i,s:I,s:I,s:I,s:i}", "index", i, "tid", (int)ws[i].tid, "busy_ns",
				      (json_int_t)ws[i].busy_ns, "idle_ns", (json_int_t)ws[i].idle_ns, "runs",
				      (json_int_t)ws[i].runs, "cpu", ws[i].cpu);
		cpu_set_t set;
		char cpus[256];
		if (ws[i].tid > 0 && !sched_getaffinity(ws[i].tid, sizeof(set), &set)) {
			cpus_string(&set, cpus, sizeof(cpus));
			json_object_set_new(w, "cpus_allowed", json_string(cpus));
		}
		if (ws[i].policy >= 0) {
			json_object_set_new(w, "sched", json_string(policy_name(ws[i].policy)));
			json_object_set_new(w, "priority", json_integer(ws[i].prio));
		}
		json_array_append_new(arr, w);
	}
	int pol, prio;
	tpool_get_sched(s->pool, &pol, &prio);
	return json_pack("{s:i,s:o,s:s,s:i}", "threads", tpool_size(s->pool), "workers", arr, "sched", policy_name(pol),
			 "priority", prio);
}

static void reply_obj(struct http_req *r, int status, json_t *o)
{
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (t)
		http_reply_json(r, status, t);
	else
		http_reply_errorf(r, 500, "server_error", "out_of_memory", "out of memory");
	free(t);
}

static bool need_model(struct srv *s, struct http_req *r)
{
	if (atomic_load(&s->model_loaded))
		return true;
	http_add_header(r, "Retry-After", "1");
	http_reply_errorf(r, 503, "server_error", "model_loading", "the model is loading: the pool is not there yet");
	return false;
}

static json_t *body_obj(struct http_req *r)
{
	size_t len;
	const char *b = http_body(r, &len);
	json_error_t je;
	json_t *o = len ? json_loadb(b, len, 0, &je) : NULL;
	if (!o || !json_is_object(o)) {
		json_decref(o);
		if (!len)
			http_reply_errorf(r, 400, IRE, "empty_body", "request body is empty: expected a JSON object");
		else
			http_reply_errorf(r, 400, IRE, "invalid_json", "request body must be a JSON object");
		return NULL;
	}
	return o;
}

static void a_stats(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	struct metrics_gauges g;
	json_t *o;
	srv_gauges(s, &g, false);
	o = json_pack("{s:i,s:s,s:f,s:b,s:b}", "pid", (int)getpid(), "model", s->alias, "uptime_s", g.uptime_s,
		      "model_loaded", g.model_loaded, "vector_store_ready", g.vector_store_ready);
	if (g.model_loaded) {
		struct sched_stats st;
		sched_stats(s->sched, &st);
		json_object_set_new(o, "queue", json_pack("{s:i,s:i,s:I,s:I,s:I,s:I}", "length", st.queued, "capacity",
							  st.queue_cap, "submitted", (json_int_t)st.submitted, "rejected",
							  (json_int_t)st.rejected, "completed", (json_int_t)st.completed,
							  "cancelled", (json_int_t)st.cancelled));
		json_t *slots = json_array();
		for (int i = 0; i < s->cfg.parallel; i++)
			json_array_append_new(slots, json_pack("{s:i,s:b,s:I,s:I}", "id", i, "busy",
							       atomic_load(&s->slots[i].busy), "kv_used",
							       (json_int_t)atomic_load(&s->slots[i].kv_used), "n_ctx",
							       (json_int_t)s->n_ctx));
		json_object_set_new(o, "slots", slots);
		json_object_set_new(o, "slots_busy", json_integer(st.busy));
		json_object_set_new(o, "pool", pool_json(s));
	}
	json_t *mem = json_pack("{s:I,s:I}", "rss_bytes", (json_int_t)rss_bytes(), "kv_bytes", (json_int_t)g.kv_bytes);
	if (g.je_allocated >= 0) {
		json_t *je = json_pack("{s:I,s:I,s:I}", "allocated", (json_int_t)g.je_allocated, "active",
				       (json_int_t)g.je_active, "resident", (json_int_t)g.je_resident);
		bool prof = false, active = false;
		size_t sz = sizeof(bool);
		int have = !mallctl("opt.prof", &prof, &sz, NULL, 0);
		sz = sizeof(bool);
		if (have && prof)
			mallctl("prof.active", &active, &sz, NULL, 0);
		json_object_set_new(je, "profiling_enabled", json_boolean(have && prof));
		json_object_set_new(je, "profiling_active", json_boolean(active));
		json_object_set_new(mem, "jemalloc", je);
	} else {
		json_object_set_new(mem, "jemalloc", json_null());
	}
	json_object_set_new(o, "memory", mem);
	json_object_set_new(o, "cache_entries", json_integer(g.cache_entries));
	json_object_set_new(o, "kb", json_pack("{s:I,s:I}", "documents", (json_int_t)g.kb_documents, "chunks",
					       (json_int_t)g.kb_chunks));
	reply_obj(r, 200, o);
}

static void a_threads(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *o, *n;
	if (!need_model(s, r) || !(o = body_obj(r)))
		return;
	n = json_object_get(o, "n");
	if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > TPOOL_MAX_THREADS) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'n' must be an integer from 1 to %d", TPOOL_MAX_THREADS);
		goto out;
	}
	pthread_mutex_lock(&s->admin_mu);
	int old = tpool_size(s->pool);
	int rc = tpool_resize(s->pool, (int)json_integer_value(n));
	pthread_mutex_unlock(&s->admin_mu);
	if (rc) {
		http_reply_errorf(r, 500, "server_error", "resize_failed", "cannot resize the pool to %d: %s",
				  (int)json_integer_value(n), strerror(-rc));
		goto out;
	}
	srv_log(s, "admin: thread pool %d -> %d", old, tpool_size(s->pool));
	json_t *res = pool_json(s);
	json_object_set_new(res, "previous", json_integer(old));
	reply_obj(r, 200, res);
out:
	json_decref(o);
}

static int set_one(struct srv *s, json_t *w, char *err, size_t errlen)
{
	json_t *cpus = json_object_get(w, "cpus"), *idx = json_object_get(w, "worker");
	cpu_set_t set;
	int rc;
	if (!json_is_string(cpus)) {
		snprintf(err, errlen, "'cpus' must be a CPU list string like \"2-5\"");
		return -EINVAL;
	}
	if ((rc = admin_parse_cpulist(json_string_value(cpus), &set, err, errlen)))
		return rc;
	if (!idx)
		return tpool_set_affinity_all(s->pool, &set);
	if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) >= TPOOL_MAX_THREADS) {
		snprintf(err, errlen, "'worker' must be a worker index from 0 to %d", TPOOL_MAX_THREADS - 1);
		return -EINVAL;
	}
	rc = tpool_set_affinity(s->pool, (int)json_integer_value(idx), &set);
	if (rc == -EINVAL)
		snprintf(err, errlen, "worker %lld: no such worker or CPUs not allowed", (long long)json_integer_value(idx));
	return rc;
}

static void a_affinity(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *o, *ws;
	char err[256] = "";
	int rc = 0;
	if (!need_model(s, r) || !(o = body_obj(r)))
		return;
	pthread_mutex_lock(&s->admin_mu);
	ws = json_object_get(o, "workers");
	if (ws) {
		size_t i;
		json_t *w;
		if (!json_is_array(ws)) {
			rc = -EINVAL;
			snprintf(err, sizeof(err), "'workers' must be an array of {\"worker\":i,\"cpus\":\"...\"}");
		}
		json_array_foreach(ws, i, w) {
			if (rc)
				break;
			if (!json_is_object(w) || !json_object_get(w, "worker")) {
				rc = -EINVAL;
				snprintf(err, sizeof(err), "'workers[%zu]' must be {\"worker\":i,\"cpus\":\"...\"}", i);
				break;
			}
			rc = set_one(s, w, err, sizeof(err));
		}
	} else {
		rc = set_one(s, o, err, sizeof(err));
	}
	pthread_mutex_unlock(&s->admin_mu);
	if (rc) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "%s", err[0] ? err : strerror(-rc));
	} else {
		srv_log(s, "admin: affinity set");
		reply_obj(r, 200, pool_json(s));
	}
	json_decref(o);
}

static void a_sched(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *o, *pj, *qj;
	int pol, prio = 0, old_pol, old_prio, rc;
	const char *name;
	if (!need_model(s, r) || !(o = body_obj(r)))
		return;
	pj = json_object_get(o, "policy");
	qj = json_object_get(o, "priority");
	name = json_is_string(pj) ? json_string_value(pj) : "";
	if (!strcmp(name, "other"))
		pol = SCHED_OTHER;
	else if (!strcmp(name, "fifo"))
		pol = SCHED_FIFO;
	else if (!strcmp(name, "rr"))
		pol = SCHED_RR;
	else {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'policy' must be \"fifo\", \"rr\" or \"other\"");
		goto out;
	}
	if (qj && !json_is_integer(qj)) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'priority' must be an integer");
		goto out;
	}
	if (qj)
		prio = (int)json_integer_value(qj);
	else if (pol != SCHED_OTHER)
		prio = 1;
	if (pol == SCHED_OTHER ? prio != 0 : prio < 1 || prio > 99) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'priority' must be %s for policy %s",
				  pol == SCHED_OTHER ? "0" : "from 1 to 99", name);
		goto out;
	}
	pthread_mutex_lock(&s->admin_mu);
	tpool_get_sched(s->pool, &old_pol, &old_prio);
	rc = tpool_set_sched(s->pool, pol, prio);
	pthread_mutex_unlock(&s->admin_mu);
	if (rc) {
		http_reply_errorf(r, 409, "server_error", "sched_refused",
				  "cannot make the workers SCHED_%s priority %d: %s%s", pol == SCHED_FIFO ? "FIFO" : pol == SCHED_RR ? "RR" : "OTHER",
				  prio, strerror(-rc),
				  rc == -EPERM ? " (needs CAP_SYS_NICE or RLIMIT_RTPRIO, and a cpu.rt_runtime_us budget in the cgroup where the kernel has RT group scheduling)" : "");
		goto out;
	}
	srv_log(s, "admin: workers %s %d -> %s %d", policy_name(old_pol), old_prio, name, prio);
	json_t *res = pool_json(s);
	json_object_set_new(res, "previous", json_pack("{s:s,s:i}", "sched", policy_name(old_pol), "priority", old_prio));
	reply_obj(r, 200, res);
out:
	json_decref(o);
}

static void a_heap_dump(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *o, *p;
	bool prof = false;
	size_t sz = sizeof(prof);
	if (!(o = body_obj(r)))
		return;
	p = json_object_get(o, "path");
	if (!json_is_string(p) || !json_string_value(p)[0]) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'path' must be a file path string");
		goto out;
	}
	if (!mallctl) {
		http_reply_errorf(r, 501, "server_error", "no_jemalloc", "this build does not use jemalloc (sanitizer build)");
		goto out;
	}
	if (mallctl("opt.prof", &prof, &sz, NULL, 0) || !prof) {
		http_reply_errorf(r, 409, IRE, "profiling_disabled",
				  "heap profiling is not enabled: start the server with MALLOC_CONF=prof:true");
		goto out;
	}
	const char *path = json_string_value(p);
	int rc = mallctl("prof.dump", NULL, NULL, &path, sizeof(path));
	if (rc) {
		http_reply_errorf(r, 500, "server_error", "dump_failed", "prof.dump to %s failed: %s", path, strerror(rc));
		goto out;
	}
	srv_log(s, "admin: heap profile written to %s", path);
	reply_obj(r, 200, json_pack("{s:s,s:b}", "path", path, "dumped", 1));
out:
	json_decref(o);
}

static void a_heap_profiling(void *ud, struct http_req *r)
{
	struct srv *s = ud;
	json_t *o, *a;
	bool prof = false, active;
	size_t sz = sizeof(prof);
	if (!(o = body_obj(r)))
		return;
	a = json_object_get(o, "active");
	if (!json_is_boolean(a)) {
		http_reply_errorf(r, 400, IRE, "invalid_value", "'active' must be true or false");
		goto out;
	}
	if (!mallctl) {
		http_reply_errorf(r, 501, "server_error", "no_jemalloc", "this build does not use jemalloc (sanitizer build)");
		goto out;
	}
	if (mallctl("opt.prof", &prof, &sz, NULL, 0) || !prof) {
		http_reply_errorf(r, 409, IRE, "profiling_disabled",
				  "heap profiling is not enabled: start the server with MALLOC_CONF=prof:true");
		goto out;
	}
	active = json_is_true(a);
	int rc = mallctl("prof.active", NULL, NULL, &active, sizeof(active));
	if (rc) {
		http_reply_errorf(r, 500, "server_error", "mallctl_failed", "prof.active: %s", strerror(rc));
		goto out;
	}
	srv_log(s, "admin: heap profiling %s", active ? "on" : "off");
	reply_obj(r, 200, json_pack("{s:b}", "active", active));
out:
	json_decref(o);
}

static const struct http_route admin_routes[] = {
	{ .method = "GET", .path = "/admin/stats", .fn = a_stats },
	{ .method = "PUT", .path = "/admin/threads", .fn = a_threads },
	{ .method = "PUT", .path = "/admin/affinity", .fn = a_affinity },
	{ .method = "PUT", .path = "/admin/sched", .fn = a_sched },
	{ .method = "POST", .path = "/admin/heap/dump", .fn = a_heap_dump },
	{ .method = "PUT", .path = "/admin/heap/profiling", .fn = a_heap_profiling },
};

static bool admin_admit(void *ud, struct http_req *r, const struct http_route *rt)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	(void)ud;
	(void)rt;
	if (getsockopt(http_fd(r), SOL_SOCKET, SO_PEERCRED, &cr, &len) || (cr.uid != geteuid() && cr.uid != 0)) {
		http_reply_errorf(r, 403, "permission_error", "forbidden",
				  "the admin API is for uid %d and root only", (int)geteuid());
		return false;
	}
	return true;
}

static void admin_log(void *ud, const char *msg)
{
	srv_log(ud, "admin %s", msg);
}

int admin_start(struct srv *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd = -1, rc = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "admin socket %s: path longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "admin socket %s: exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path); /* stale socket of an earlier run */
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "admin socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) || listen(fd, 32)) {
		rc = -errno;
		snprintf(err, errlen, "admin socket %s: %s", path, strerror(errno));
		goto out;
	}
	struct http_opts ho = {
		.routes = admin_routes,
		.n_routes = sizeof(admin_routes) / sizeof(admin_routes[0]),
		.ud = s,
		.listen_fd = fd,
		.body_limit = 64 * 1024,
		.timeout_s = 30,
		.max_conns = 32,
		.admit = admin_admit,
		.log = admin_log,
	};
	s->admin = http_start(&ho, err, errlen);
	if (!s->admin) {
		rc = -EIO;
		goto out;
	}
	s->admin_fd = fd;
	fd = -1;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return rc;
}

void admin_stop(struct srv *s)
{
	if (!s->admin)
		return;
	http_stop(s->admin);
	s->admin = NULL;
	if (s->admin_fd >= 0)
		close(s->admin_fd);
	s->admin_fd = -1;
	if (s->admin_path)
		unlink(s->admin_path);
}
