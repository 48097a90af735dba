/*
 * supervise.c: the supervisor: the core under live tuning.
 *
 * DESIGN
 * One thread runs the loop; libmicrohttpd's threads only read what the loop
 * publishes. The loop waits in sigtimedwait() for SIGCHLD, SIGTERM or SIGINT
 * (blocked in every thread) until the next tick (sup_loop_wait), so a core
 * that dies is restarted at once, a tick starts on time, and between ticks
 * the supervisor does not wake (a wake-up takes a CPU from a core worker).
 * A tick:
 *   1. samples the core's cgroup (its pid in a dry run) through the
 *      collectors (collect.h: BPF where it loads, else procfs; the
 *      controller's own procfs sampler, sample.h, if they cannot open),
 *      its admin stats (queue, slots, pool, workers, KV use) and the
 *      time-to-first-token histogram of its /metrics (p99 over the last
 *      10 ticks, from bucket deltas), into the snapshot's core stats;
 *   2. reads back what the actuators control (cpuset, worker masks, the
 *      core's weight, each neighbour's cpu.max and CPU use);
 *   3. runs the policies (policy.h) on the snapshot history;
 *   4. applies each decision, recording first in the state file whatever it
 *      is about to change (the same state as tune: 'edgectl revert' works
 *      after a kill -9 of the supervisor), and writes it to the audit log;
 *   5. publishes {"tick","snapshot","decisions"} for /v1/snapshot and
 *      /v1/stream.
 * Real-time workers (the bandwidth policy's set_realtime, [bandwidth]
 * realtime): the workers' old class goes into the state, the core's cgroup
 * chain gets a cpu.rt_runtime_us budget where the kernel has RT group
 * scheduling (v1; each file recorded first), then PUT /admin/sched.
 * The core is checked every tick on its /health: failing for longer than
 * health_timeout (after start_grace) gets it killed and restarted. On
 * SIGTERM/SIGINT the core is stopped (SIGTERM, then SIGKILL after 10 s) and
 * everything recorded is reverted, including the cgroups made here.
 */
#include "controller/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "collectors/collect.h"
#include "collectors/snapshot.h"
#include "controller/admin.h"
#include "controller/affinity.h"
#include "controller/cgroup.h"
#include "controller/policy.h"
#include "controller/sample.h"
#include "controller/state.h"
#include "controller/supserver.h"

/* Messages and paths are built into fixed buffers; a truncated message is still one clear line. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define TTFT_WIN 10
#define MAX_BUCKETS 32
#define CORE_CTRLS ((1u << CG_CPU) | (1u << CG_CPUACCT) | (1u << CG_CPUSET) | (1u << CG_MEMORY))

struct sup {
	const struct sup_opts *o;
	const struct ccfg *c;
	struct cg_sys *s;
	char cg[CG_NAME_MAX];
	struct cstate *st;
	int dry;
	/* the core */
	char **argv;
	pid_t core;
	double started, last_ok, last_restart;
	int restarts, saw_ok;
	int affinity_noted_for; /* core pid whose thread masks are in the state */
	char admin_sock[256], health_url[320], metrics_url[320];
	/* measuring: the collectors, filtered to the core; csample if they cannot open */
	struct coll *coll;
	char coll_why[256];
	struct csample *cs;
	struct snap **hist;
	size_t nhist;
	uint64_t tick;
	double ttft_bounds[MAX_BUCKETS];
	uint64_t ttft_cum[TTFT_WIN][MAX_BUCKETS];
	int ttft_nb, ttft_n;
	uint64_t nb_usage_prev[CCFG_MAX_NEIGHBOURS];
	double nb_t_prev;
	/* the workers' busy_ns at the previous tick, for their busy share */
	pid_t wb_tid[CADMIN_MAX_WORKERS];
	int64_t wb_ns[CADMIN_MAX_WORKERS];
	int wb_n;
	double wb_t;
	/* deciding */
	struct pol_mem mem;
	FILE *audit;
	struct supsrv *srv;
	/* for /metrics (read by server threads) */
	pthread_mutex_t mu;
	uint64_t n_decisions[POL_NKIND], n_failed, n_ticks;
	double last_threads, last_queue, last_ttft, tick_work_s;
	int core_up;
	double cpu_busy[SNAP_MAX_CPUS];
	int ncpu;
};

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

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void iso_now(char *b, size_t l)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(b, l, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* ---- audit log -------------------------------------------------------------- */

static void audit_write(struct sup *u, json_t *o)
{
	char ts[40], *t;

	iso_now(ts, sizeof(ts));
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "tick", json_integer((json_int_t)u->tick));
	t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (t && u->audit) {
		fprintf(u->audit, "%s\n", t);
		fflush(u->audit);
	}
	free(t);
}

static void audit_event(struct sup *u, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void audit_event(struct sup *u, const char *event, const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:i, s:s}", "event", event, "pid", (int)u->core, "reason", reason);
	if (o) {
		audit_write(u, o);
		json_decref(o);
	}
}

static json_t *decision_json(const struct pol_decision *d, int applied, const char *error, int dry)
{
	json_error_t je;
	json_t *inputs = d->inputs[0] ? json_loads(d->inputs, 0, &je) : NULL;
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "policy", pol_kind_name(d->policy), "action",
			      pol_action_name(d->action), "target", d->target, "from", (json_int_t)d->from, "to",
			      (json_int_t)d->to);

	if (!o) {
		json_decref(inputs);
		return NULL;
	}
	if (d->action == POL_ACT_SET_CPU_MAX)
		json_object_set_new(o, "period_us", json_integer((json_int_t)d->period_us));
	if (d->action == POL_ACT_PIN_WORKERS) {
		json_t *w = json_array();

		for (int i = 0; i < d->nworkers; i++)
			json_array_append_new(w, json_pack("{s:i, s:i}", "tid", (int)d->tid[i], "cpu", d->cpu[i]));
		json_object_set_new(o, "workers", w);
		json_object_set_new(o, "cpus", json_string(d->cpus));
	}
	json_object_set_new(o, "reason", json_string(d->reason));
	json_object_set_new(o, "inputs", inputs ? inputs : json_string(d->inputs));
	json_object_set_new(o, "applied", json_boolean(applied));
	json_object_set_new(o, "dry_run", json_boolean(dry));
	json_object_set_new(o, "error", error ? json_string(error) : json_null());
	return o;
}

/* ---- the core process --------------------------------------------------------- */

static int has_opt(char *const *argv, const char *name, const char **val)
{
	size_t l = strlen(name);

	for (int i = 0; argv[i]; i++) {
		if (!strcmp(argv[i], name) && argv[i + 1]) {
			*val = argv[i + 1];
			return 1;
		}
		if (!strncmp(argv[i], name, l) && argv[i][l] == '=') {
			*val = argv[i] + l + 1;
			return 1;
		}
	}
	return 0;
}

/* Build the core's argv (adding --admin-socket when absent) and its URLs. */
static int core_argv(struct sup *u, char *err, size_t errlen)
{
	const char *v = NULL;
	int n = u->o->core_argc, k = 0;
	char host[256] = "127.0.0.1:8080";

	u->argv = calloc((size_t)n + 3, sizeof(char *));
	if (!u->argv) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		u->argv[k++] = u->o->core_argv[i];
	if (has_opt(u->o->core_argv, "--admin-socket", &v)) {
		snprintf(u->admin_sock, sizeof(u->admin_sock), "%s", v);
	} else {
		snprintf(u->admin_sock, sizeof(u->admin_sock), "%s.core-admin", u->c->socket);
		u->argv[k++] = "--admin-socket";
		u->argv[k++] = u->admin_sock;
	}
	if (has_opt(u->o->core_argv, "--host", &v)) {
		const char *colon = strrchr(v, ':');

		if (!colon)
			snprintf(host, sizeof(host), "%s:8080", v);
		else if (colon == v)
			snprintf(host, sizeof(host), "127.0.0.1%s", v);
		else if (!strncmp(v, "0.0.0.0:", 8))
			snprintf(host, sizeof(host), "127.0.0.1%s", colon);
		else
			snprintf(host, sizeof(host), "%s", v);
	}
	snprintf(u->health_url, sizeof(u->health_url), "http://%s/health", host);
	snprintf(u->metrics_url, sizeof(u->metrics_url), "http://%s/metrics", host);
	return 0;
}

static void coll_reopen(struct sup *u);

static int core_start(struct sup *u, char *err, size_t errlen)
{
	int pfd[2];
	pid_t pid;
	char msg[512];
	ssize_t r;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		seterr(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		seterr(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;
		char e[400];

		close(pfd[0]);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* join the cgroup before exec: every thread the core makes is born inside */
		for (int c = 0; c < CG_NCTRL && !u->dry; c++) {
			if (cg_sys_mode(u->s, (enum cg_ctrl)c) == CG_NONE || !cg_exists(u->s, (enum cg_ctrl)c, u->cg))
				continue;
			if (cg_attach_pid(u->s, (enum cg_ctrl)c, u->cg, getpid(), e, sizeof(e)) < 0) {
				(void)!write(pfd[1], e, strlen(e));
				_exit(127);
			}
		}
		execvp(u->argv[0], u->argv);
		snprintf(e, sizeof(e), "%s: %s", u->argv[0], strerror(errno));
		(void)!write(pfd[1], e, strlen(e));
		_exit(127);
	}
	close(pfd[1]);
	r = read(pfd[0], msg, sizeof(msg) - 1);
	close(pfd[0]);
	if (r > 0) {
		msg[r] = 0;
		waitpid(pid, NULL, 0);
		seterr(err, errlen, "starting the core: %s", msg);
		return -ENOEXEC;
	}
	u->core = pid;
	u->started = mono();
	u->last_ok = u->started;
	u->saw_ok = 0;
	pthread_mutex_lock(&u->mu);
	u->core_up = 1;
	pthread_mutex_unlock(&u->mu);
	return 0;
}

/* (Re)open the collectors on the core: its cgroup when it has one, else its pid. */
static void coll_reopen(struct sup *u)
{
	struct coll_opts co = { 0 };
	char cgpath[CG_NAME_MAX + 2];

	coll_free(u->coll);
	u->coll = NULL;
	if (!u->dry && cg_exists(u->s, CG_CPU, u->cg)) {
		snprintf(cgpath, sizeof(cgpath), "/%s", u->cg);
		co.kind = SNAP_TARGET_CGROUP;
		co.cgroup = cgpath;
	} else {
		co.kind = SNAP_TARGET_PID;
		co.pid = u->core;
	}
	co.sysroot = cg_sys_root(u->s)[0] ? cg_sys_root(u->s) : NULL;
	/* supervising must not tax the core's syscalls: affinity events where
	 * fexit makes them free, the syscall hook only when asked for */
	co.affinity_fexit_only = !u->c->affinity_syscall_hook;
	co.affinity_syscalls = u->c->affinity_syscall_hook;
	if (coll_new(&co, &u->coll, u->coll_why, sizeof(u->coll_why)) < 0)
		u->coll = NULL; /* the procfs sampler stands in; coll_why says why */
	else
		u->coll_why[0] = 0;
}

static void core_stop(struct sup *u)
{
	double t0;

	if (u->core <= 0)
		return;
	kill(u->core, SIGTERM);
	t0 = mono();
	while (mono() - t0 < 10) {
		if (waitpid(u->core, NULL, WNOHANG) == u->core)
			goto gone;
		usleep(20000);
	}
	kill(u->core, SIGKILL);
	waitpid(u->core, NULL, 0);
gone:
	u->core = 0;
	pthread_mutex_lock(&u->mu);
	u->core_up = 0;
	pthread_mutex_unlock(&u->mu);
}

static void core_restart(struct sup *u, const char *why)
{
	char err[512];

	if (u->core > 0) {
		kill(u->core, SIGKILL);
		waitpid(u->core, NULL, 0);
		u->core = 0;
	}
	pthread_mutex_lock(&u->mu); /* read by the socket's /metrics thread */
	u->restarts++;
	pthread_mutex_unlock(&u->mu);
	u->last_restart = mono();
	if (core_start(u, err, sizeof(err)) < 0) {
		audit_event(u, "core_restart_failed", "%s; %s", why, err);
		pthread_mutex_lock(&u->mu);
		u->core_up = 0;
		pthread_mutex_unlock(&u->mu);
		return;
	}
	audit_event(u, "core_restart", "%s", why);
	coll_reopen(u);
}

/* ---- one tick ------------------------------------------------------------------- */

/* The busiest pool worker's share of the time since the previous stats, %
 * (NAN on the first tick, or when no worker is known from then). */
static double workers_busy(struct sup *u, const struct cadmin_stats *as)
{
	double now = mono(), best = NAN;

	for (int64_t i = 0; i < as->nworkers; i++)
		for (int k = 0; k < u->wb_n; k++)
			if (u->wb_tid[k] == as->worker_tid[i] && as->worker_busy_ns[i] >= u->wb_ns[k] && now > u->wb_t) {
				double pct = (double)(as->worker_busy_ns[i] - u->wb_ns[k]) / 1e9 / (now - u->wb_t) * 100.0;

				if (isnan(best) || pct > best)
					best = pct;
				break;
			}
	u->wb_n = 0;
	for (int64_t i = 0; i < as->nworkers && i < CADMIN_MAX_WORKERS; i++) {
		u->wb_tid[u->wb_n] = as->worker_tid[i];
		u->wb_ns[u->wb_n++] = as->worker_busy_ns[i];
	}
	u->wb_t = now;
	return best;
}

static void kv_set(struct snap *s, const char *k, double v)
{
	if (isnan(v) || v < 0 || s->core.n >= SNAP_MAX_CORE_STATS)
		return;
	snprintf(s->core.kv[s->core.n].key, sizeof(s->core.kv[0].key), "%s", k);
	s->core.kv[s->core.n++].value = v;
}

/* p99 of time to first token over the last TTFT_WIN ticks, ms; NAN when no request finished. */
static double ttft_p99(struct sup *u)
{
	char *body = NULL, e[256];
	double b[MAX_BUCKETS];
	uint64_t cum[MAX_BUCKETS], d[MAX_BUCKETS];
	int n, oldest;
	double q;

	if (cadmin_http_get(u->metrics_url, 500, &body, e, sizeof(e)) < 0)
		return NAN;
	n = cadmin_parse_hist(body, "dify_edge_time_to_first_token_seconds", b, cum, MAX_BUCKETS);
	free(body);
	if (n < 1)
		return NAN;
	if (n != u->ttft_nb) { /* (re)start the window: first tick, or a restarted core */
		u->ttft_nb = n;
		u->ttft_n = 0;
		memcpy(u->ttft_bounds, b, sizeof(double) * (size_t)n);
	}
	/* a restarted core starts its counters again */
	if (u->ttft_n && cum[n - 1] < u->ttft_cum[(u->ttft_n - 1) % TTFT_WIN][n - 1])
		u->ttft_n = 0;
	memcpy(u->ttft_cum[u->ttft_n % TTFT_WIN], cum, sizeof(uint64_t) * (size_t)n);
	u->ttft_n++;
	oldest = u->ttft_n > TTFT_WIN ? (u->ttft_n - TTFT_WIN) % TTFT_WIN : 0;
	for (int i = 0; i < n; i++)
		d[i] = cum[i] - (u->ttft_n > 1 ? u->ttft_cum[oldest][i] : 0);
	q = cadmin_hist_quantile(u->ttft_bounds, d, n, 0.99);
	return isnan(q) ? NAN : q * 1000.0;
}

/*
 * CPU time used by a cgroup, ns: cpuacct.usage (v1) or cpu.stat usage_usec
 * (v2); where the cgroup has no cpuacct directory (v1 with cpu and cpuacct
 * mounted apart), the sum of its processes' utime+stime.
 */
static uint64_t cg_usage_ns(struct sup *u, const char *name)
{
	char b[512];

	if (cg_sys_mode(u->s, CG_CPUACCT) == CG_V1 && cg_exists(u->s, CG_CPUACCT, name)) {
		if (cg_read(u->s, CG_CPUACCT, name, "cpuacct.usage", b, sizeof(b), NULL, 0) > 0)
			return strtoull(b, NULL, 10);
		return 0;
	}
	if (cg_sys_mode(u->s, CG_CPU) == CG_V2) {
		if (cg_read(u->s, CG_CPU, name, "cpu.stat", b, sizeof(b), NULL, 0) > 0) {
			char *p = strstr(b, "usage_usec ");

			if (p)
				return strtoull(p + 11, NULL, 10) * 1000;
		}
		return 0;
	}
	{
		pid_t *pids = NULL;
		size_t n = 0;
		uint64_t sum = 0;
		long hz = sysconf(_SC_CLK_TCK);

		if (cg_pids(u->s, CG_CPU, name, &pids, &n, NULL, 0) < 0)
			return 0;
		for (size_t i = 0; i < n; i++) {
			char p[1100], line[1024], *rp;
			FILE *f;

			snprintf(p, sizeof(p), "%s/proc/%d/stat", cg_sys_root(u->s), (int)pids[i]);
			f = fopen(p, "re");
			if (!f)
				continue;
			if (fgets(line, sizeof(line), f) && (rp = strrchr(line, ')'))) {
				unsigned long long ut = 0, st = 0;

				/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
				if (sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
					sum += (ut + st) * (1000000000ull / (unsigned long long)(hz > 0 ? hz : 100));
			}
			fclose(f);
		}
		free(pids);
		return sum;
	}
}

static void read_env(struct sup *u, const struct cadmin_stats *as, struct pol_env *env)
{
	char list[1024];
	double now = mono();

	memset(env, 0, sizeof(*env));
	if (aff_online(cg_sys_root(u->s), &env->allowed, NULL, 0) < 0)
		CPU_SET(0, &env->allowed);
	if (!u->dry && cg_sys_mode(u->s, CG_CPUSET) != CG_NONE && cg_exists(u->s, CG_CPUSET, u->cg) &&
	    cg_get_cpus(u->s, u->cg, 1, list, sizeof(list), NULL, 0) == 0) {
		cpu_set_t eff;

		if (aff_parse_list(list, &eff, NULL, 0) == 0)
			CPU_AND(&env->allowed, &env->allowed, &eff);
	}
	if (as) {
		for (int64_t i = 0; i < as->nworkers && i < POL_MAX_WORKERS; i++) {
			env->worker_tid[env->nworkers] = as->worker_tid[i];
			if (aff_get(as->worker_tid[i], &env->worker_mask[env->nworkers], NULL, 0) < 0)
				continue;
			env->nworkers++;
		}
	}
	env->worker_rt = as ? as->rt_prio : -1;
	env->core_weight = 100;
	pol_weight_cgroup(u->cg, (const char (*)[CCFG_STR])u->c->neighbours, u->c->nneighbours, env->weight_cg,
			  sizeof(env->weight_cg));
	if (!u->dry && cg_exists(u->s, CG_CPU, env->weight_cg))
		cg_get_weight(u->s, env->weight_cg, &env->core_weight, NULL, 0);
	for (int i = 0; i < u->c->nneighbours; i++) {
		struct pol_neighbour *nb = &env->nb[env->nneighbours];
		uint64_t us;

		snprintf(nb->name, sizeof(nb->name), "%s", u->c->neighbours[i]);
		if (cg_get_cpu_max(u->s, nb->name, &nb->quota_us, &nb->period_us, NULL, 0) < 0)
			continue; /* gone or never there: nothing to cap */
		if (cg_get_idle(u->s, nb->name, &nb->idle, NULL, 0) < 0)
			nb->idle = -1; /* no cpu.idle here (kernel < 5.15) */
		us = cg_usage_ns(u, nb->name);
		if (u->nb_t_prev > 0 && us >= u->nb_usage_prev[i])
			nb->usage_pct = (double)(us - u->nb_usage_prev[i]) / 1e9 / (now - u->nb_t_prev) * 100.0;
		u->nb_usage_prev[i] = us;
		env->nneighbours++;
	}
	u->nb_t_prev = now;
}

static int read_i64(const struct cg_sys *s, const char *name, const char *file, long long *v, char *err, size_t errlen)
{
	char buf[64];
	int ret = cg_read(s, CG_CPU, name, file, buf, sizeof(buf), err, errlen);

	if (ret < 0)
		return ret;
	if (sscanf(buf, "%lld", v) != 1) {
		seterr(err, errlen, "cgroup %s: %s: '%.20s' is not a number", *name ? name : "/", file, buf);
		return -EINVAL;
	}
	return 0;
}

/*
 * RT group scheduling (cgroup v1 with cpu.rt_runtime_us): a task may only be
 * real-time in a cgroup with a budget, and a cgroup's budget is bounded by
 * its parent's. Give the core's cgroup and each ancestor below the root
 * realtime_budget % of the root's period (at most the root's own budget),
 * top-down, each file recorded in the state first. Nothing to do on v2 or
 * where the kernel has no RT group scheduling (no such file at the root).
 */
static int rt_budget(struct sup *u, char *err, size_t errlen)
{
	long long root_rt, period, want;
	char prefix[CCFG_STR], buf[64];
	int ret;

	if (cg_sys_mode(u->s, CG_CPU) != CG_V1 || cg_read(u->s, CG_CPU, "", "cpu.rt_runtime_us", buf, sizeof(buf), NULL, 0) < 0)
		return 0;
	if ((ret = read_i64(u->s, "", "cpu.rt_runtime_us", &root_rt, err, errlen)) < 0 ||
	    (ret = read_i64(u->s, "", "cpu.rt_period_us", &period, err, errlen)) < 0)
		return ret;
	want = llround((double)period * u->c->realtime_budget_pct / 100.0);
	if (root_rt >= 0 && want > root_rt)
		want = root_rt;
	for (size_t i = 0, n = strlen(u->cg); i <= n; i++) {
		long long cur;
		char v[32];

		if (u->cg[i] != '/' && u->cg[i] != 0)
			continue;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)i, u->cg);
		if (!prefix[0])
			continue;
		if ((ret = read_i64(u->s, prefix, "cpu.rt_runtime_us", &cur, err, errlen)) < 0)
			return ret;
		if (cur < 0 || cur >= want)
			continue; /* unlimited, or enough already */
		if ((ret = cstate_note_file(u->st, u->s, CG_CPU, prefix, "cpu.rt_runtime_us", err, errlen)) < 0 ||
		    (ret = cstate_save(u->st, err, errlen)) < 0)
			return ret;
		snprintf(v, sizeof(v), "%lld", want);
		if ((ret = cg_write(u->s, CG_CPU, prefix, "cpu.rt_runtime_us", v, err, errlen)) < 0) {
			char e2[256];

			snprintf(e2, sizeof(e2), "%s", err ? err : "");
			seterr(err, errlen, "real-time budget: %s (the RT budgets of %s's siblings may leave its parent too little)",
			       e2, prefix);
			return ret;
		}
	}
	return 0;
}

/* Record what d is about to change, then change it. 0 or negative errno (err set). */
static int apply(struct sup *u, const struct pol_decision *d, const struct pol_env *env, char *err, size_t errlen)
{
	int ret = 0;

	switch (d->action) {
	case POL_ACT_SET_THREADS:
		ret = cstate_note_threads(u->st, u->admin_sock, (int)d->from);
		if (!ret)
			ret = cstate_save(u->st, err, errlen);
		if (!ret)
			ret = cadmin_set_threads(u->admin_sock, (int)d->to, err, errlen);
		break;
	case POL_ACT_PIN_WORKERS:
		if (u->affinity_noted_for != u->core) {
			ret = cstate_note_affinity(u->st, cg_sys_root(u->s), u->core, err, errlen);
			if (!ret)
				ret = cstate_save(u->st, err, errlen);
			if (!ret)
				u->affinity_noted_for = u->core;
		}
		for (int i = 0; i < d->nworkers && !ret; i++) {
			cpu_set_t one;

			CPU_ZERO(&one);
			CPU_SET(d->cpu[i], &one);
			ret = aff_set(d->tid[i], &one, err, errlen);
		}
		break;
	case POL_ACT_SET_CPU_MAX:
		ret = cstate_note_knob(u->st, u->s, CG_KNOB_CPU_MAX, d->target, err, errlen);
		if (!ret)
			ret = cstate_save(u->st, err, errlen);
		if (!ret)
			ret = cg_set_cpu_max(u->s, d->target, d->to, d->period_us, err, errlen);
		break;
	case POL_ACT_SET_IDLE:
		ret = cstate_note_knob(u->st, u->s, CG_KNOB_IDLE, d->target, err, errlen);
		if (!ret)
			ret = cstate_save(u->st, err, errlen);
		if (!ret)
			ret = cg_set_idle(u->s, d->target, (int)d->to, err, errlen);
		break;
	case POL_ACT_SET_WEIGHT:
		ret = cstate_note_knob(u->st, u->s, CG_KNOB_WEIGHT, d->target, err, errlen);
		if (!ret)
			ret = cstate_save(u->st, err, errlen);
		if (!ret)
			ret = cg_set_weight(u->s, d->target, d->to, err, errlen);
		break;
	case POL_ACT_SET_REALTIME:
		if (d->to > 0) {
			/* the workers as this tick's admin stats listed them */
			ret = cstate_note_sched(u->st, u->admin_sock, u->core, (int)d->from, env->worker_tid,
						env->nworkers);
			if (!ret)
				ret = cstate_save(u->st, err, errlen);
			if (!ret)
				ret = rt_budget(u, err, errlen);
		}
		if (!ret)
			ret = cadmin_set_rt(u->admin_sock, (int)d->to, err, errlen);
		break;
	default:
		break;
	}
	return ret;
}

static void tick(struct sup *u)
{
	struct snap *s;
	struct cadmin_stats as;
	int have_stats = 0, r;
	pid_t pid = u->core;
	char err[512];
	struct pol_env env;
	struct pol_decision dec[POL_MAX_DECISIONS * 3];
	int nd = 0;
	json_t *decs = json_array();
	double t0 = mono();

	/* recycle the oldest snapshot when the history is full */
	if (u->nhist == (size_t)u->c->history) {
		s = u->hist[0];
		memmove(u->hist, u->hist + 1, (u->nhist - 1) * sizeof(*u->hist));
		u->nhist--;
	} else {
		s = snap_new();
		if (!s)
			goto out;
	}
	r = -1;
	if (u->coll && coll_tick(u->coll, s) == 0 && s->interval_ns)
		r = 1;
	if (r < 0) {
		r = csample_tick(u->cs, &pid, pid > 0 ? 1 : 0, s, err, sizeof(err));
		if (r > 0 && u->coll_why[0] && s->nsources < SNAP_MAX_SOURCES) {
			struct snap_source_info *si = &s->sources[s->nsources++];

			snprintf(si->name, sizeof(si->name), "collectors");
			si->live = false;
			snprintf(si->why, sizeof(si->why), "%s (controller's procfs sampler used)", u->coll_why);
		}
	}
	if (r <= 0) { /* priming tick, or /proc unreadable */
		snap_free(s);
		goto out;
	}
	s->seq = u->tick;
	s->target.kind = SNAP_TARGET_CGROUP;
	snprintf(s->target.cgroup, sizeof(s->target.cgroup), "/%s", u->cg);
	if (gethostname(s->host, sizeof(s->host)) < 0)
		s->host[0] = 0;
	if (u->core > 0 && cadmin_get_stats(u->admin_sock, &as, err, sizeof(err)) == 0) {
		double ttft = ttft_p99(u);

		have_stats = 1;
		snap_status_set(&s->core.st, SNAP_SRC_CORE, true, "%s", "");
		kv_set(s, POL_K_QUEUE, (double)as.queue);
		kv_set(s, POL_K_SLOTS, (double)as.slots);
		kv_set(s, POL_K_BUSY_SLOTS, (double)as.busy_slots);
		kv_set(s, POL_K_THREADS, (double)as.threads);
		kv_set(s, POL_K_MEM_UTIL, as.kv_used_pct);
		kv_set(s, POL_K_TTFT_P99, ttft);
		kv_set(s, POL_K_WORKERS_BUSY, workers_busy(u, &as));
		kv_set(s, "mem_bytes", (double)as.mem_bytes);
		kv_set(s, "restarts", u->restarts);
		pthread_mutex_lock(&u->mu);
		u->last_threads = (double)as.threads;
		u->last_queue = (double)as.queue;
		u->last_ttft = ttft;
		pthread_mutex_unlock(&u->mu);
	} else {
		snap_status_set(&s->core.st, SNAP_SRC_CORE, false, "%s", u->core > 0 ? err : "core not running");
	}
	u->hist[u->nhist++] = s;
	read_env(u, have_stats ? &as : NULL, &env);

	if (have_stats) {
		const struct snap *const *h = (const struct snap *const *)u->hist;
		int k;

		k = pol_threads(h, u->nhist, u->c, &env, &u->mem, dec + nd, 1, NULL, 0);
		nd += k;
		/* placement follows the pool size decided this tick on the next one */
		if (!k)
			nd += pol_affinity(h, u->nhist, u->c, &env, &u->mem, dec + nd, 1, NULL, 0);
		nd += pol_bandwidth(h, u->nhist, u->c, &env, &u->mem, dec + nd, POL_MAX_DECISIONS, NULL, 0);
	}
	for (int i = 0; i < nd; i++) {
		int ok = 1;
		json_t *dj;

		err[0] = 0;
		if (!u->dry && apply(u, &dec[i], &env, err, sizeof(err)) < 0)
			ok = 0;
		if (ok)
			pol_mem_commit(&u->mem, &dec[i], &env, (double)s->mono_ns / 1e9);
		else
			pol_mem_failed(&u->mem, &dec[i], (double)s->mono_ns / 1e9);
		dj = decision_json(&dec[i], ok && !u->dry, ok ? NULL : err, u->dry);
		if (dj) {
			audit_write(u, dj);
			json_object_del(dj, "ts");
			json_object_del(dj, "tick");
			json_array_append_new(decs, dj);
		}
		pthread_mutex_lock(&u->mu);
		u->n_decisions[dec[i].policy]++;
		u->n_failed += !ok;
		pthread_mutex_unlock(&u->mu);
	}
	pthread_mutex_lock(&u->mu);
	u->n_ticks++;
	u->ncpu = 0;
	for (uint32_t i = 0; i < s->cpus.n && i < SNAP_MAX_CPUS; i++) {
		u->cpu_busy[i] = s->cpus.cpu[i].busy_pct;
		u->ncpu++;
	}
	u->tick_work_s = mono() - t0;
	pthread_mutex_unlock(&u->mu);
	{
		int need = snap_to_json(s, NULL, 0);
		char *sj = need > 0 ? malloc((size_t)need + 1) : NULL;
		char *dj = json_dumps(decs, JSON_COMPACT);
		char *line = NULL;

		if (sj && dj && snap_to_json(s, sj, (size_t)need + 1) >= 0 &&
		    asprintf(&line, "{\"tick\":%" PRIu64 ",\"core_pid\":%d,\"restarts\":%d,\"snapshot\":%s,\"decisions\":%s}",
			     u->tick, (int)u->core, u->restarts, sj, dj) > 0)
			supsrv_publish(u->srv, line);
		free(line);
		free(sj);
		free(dj);
	}
out:
	json_decref(decs);
	u->tick++;
}

static void health(struct sup *u)
{
	char err[256];
	double now = mono();
	int st;

	if (u->core <= 0)
		return;
	st = cadmin_http_status(u->health_url, 500, err, sizeof(err));
	if (st == 200) {
		u->last_ok = now;
		u->saw_ok = 1;
		return;
	}
	if (!u->saw_ok && now - u->started < u->c->start_grace_s)
		return;
	if (now - u->last_ok > u->c->health_timeout_s) {
		char why[400];

		snprintf(why, sizeof(why), "failed %s for %.1f s (> %.1f s): %s", u->health_url, now - u->last_ok,
			 u->c->health_timeout_s, st > 0 ? "HTTP error status" : err);
		core_restart(u, why);
	}
}

/* ---- /metrics ---------------------------------------------------------------------- */

static char *metrics_text(void *ud)
{
	struct sup *u = ud;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct rusage ru;

	if (!f)
		return NULL;
	getrusage(RUSAGE_SELF, &ru);
	pthread_mutex_lock(&u->mu);
	fprintf(f, "# HELP edgectl_ticks_total Ticks run by the supervisor.\n# TYPE edgectl_ticks_total counter\n");
	fprintf(f, "edgectl_ticks_total %" PRIu64 "\n", u->n_ticks);
	fprintf(f, "# HELP edgectl_core_up Whether the core process is running.\n# TYPE edgectl_core_up gauge\n");
	fprintf(f, "edgectl_core_up %d\n", u->core_up);
	fprintf(f, "# HELP edgectl_core_restarts_total Restarts of the core.\n# TYPE edgectl_core_restarts_total counter\n");
	fprintf(f, "edgectl_core_restarts_total %d\n", u->restarts);
	fprintf(f, "# HELP edgectl_decisions_total Decisions taken, by policy.\n# TYPE edgectl_decisions_total counter\n");
	for (int k = 0; k < POL_NKIND; k++)
		fprintf(f, "edgectl_decisions_total{policy=\"%s\"} %" PRIu64 "\n", pol_kind_name((enum pol_kind)k),
			u->n_decisions[k]);
	fprintf(f, "# HELP edgectl_decisions_failed_total Decisions that could not be applied.\n"
		   "# TYPE edgectl_decisions_failed_total counter\n");
	fprintf(f, "edgectl_decisions_failed_total %" PRIu64 "\n", u->n_failed);
	fprintf(f, "# HELP edgectl_core_threads The core's thread-pool size.\n# TYPE edgectl_core_threads gauge\n");
	fprintf(f, "edgectl_core_threads %g\n", u->last_threads);
	fprintf(f, "# HELP edgectl_core_queue Requests waiting in the core.\n# TYPE edgectl_core_queue gauge\n");
	fprintf(f, "edgectl_core_queue %g\n", u->last_queue);
	if (!isnan(u->last_ttft)) {
		fprintf(f, "# HELP edgectl_core_ttft_p99_seconds Time-to-first-token p99 over the last %d ticks.\n"
			   "# TYPE edgectl_core_ttft_p99_seconds gauge\n",
			TTFT_WIN);
		fprintf(f, "edgectl_core_ttft_p99_seconds %g\n", u->last_ttft / 1000);
	}
	fprintf(f, "# HELP edgectl_cpu_busy_percent CPU busy in the last tick.\n# TYPE edgectl_cpu_busy_percent gauge\n");
	for (int i = 0; i < u->ncpu; i++)
		fprintf(f, "edgectl_cpu_busy_percent{cpu=\"%d\"} %.1f\n", i, u->cpu_busy[i]);
	fprintf(f, "# HELP edgectl_tick_work_seconds Time the last tick took.\n# TYPE edgectl_tick_work_seconds gauge\n");
	fprintf(f, "edgectl_tick_work_seconds %.6f\n", u->tick_work_s);
	pthread_mutex_unlock(&u->mu);
	fprintf(f, "# HELP edgectl_cpu_seconds_total CPU time of the supervisor itself.\n"
		   "# TYPE edgectl_cpu_seconds_total counter\n");
	fprintf(f, "edgectl_cpu_seconds_total %.6f\n",
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
			(double)ru.ru_stime.tv_usec / 1e6);
	fclose(f);
	return buf;
}

double sup_loop_wait(double now, double next_tick, int core_running, double last_restart)
{
	double wait = next_tick - now;

	if (!core_running && last_restart + SUP_RETRY_S - now < wait)
		wait = last_restart + SUP_RETRY_S - now;
	return wait > 0 ? wait : 0;
}

/* ---- setup and the loop --------------------------------------------------------------- */

static int mkparent(const char *path)
{
	char d[512], *slash;

	snprintf(d, sizeof(d), "%s", path);
	slash = strrchr(d, '/');
	if (!slash || slash == d)
		return 0;
	*slash = 0;
	for (char *p = d + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(d, 0755);
			*p = '/';
		}
	return mkdir(d, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Create or adopt the core's cgroup: everything recorded before it is touched. */
static int setup_cgroup(struct sup *u, char *err, size_t errlen)
{
	char **created = NULL;
	size_t n = 0;
	int ret;

	ret = cstate_open(u->o->state_path, "edgectl supervise", &u->st, err, errlen);
	if (ret < 0)
		return ret;
	/* note the directories that will be made, outermost first */
	for (int c = 0; c < CG_NCTRL; c++) {
		size_t l = strlen(u->cg);

		if (!(CORE_CTRLS & (1u << c)) || cg_sys_mode(u->s, (enum cg_ctrl)c) == CG_NONE)
			continue;
		for (size_t i = 0; i <= l; i++) {
			char prefix[CG_NAME_MAX];

			if (u->cg[i] != '/' && u->cg[i])
				continue;
			memcpy(prefix, u->cg, i);
			prefix[i] = 0;
			if (!cg_exists(u->s, (enum cg_ctrl)c, prefix))
				cstate_note_created(u->st, (enum cg_ctrl)c, prefix);
		}
	}
	/* v2: controllers cg_create will enable in the ancestors' subtree_control */
	ret = cstate_note_subtree_missing(u->st, u->s, u->cg, CORE_CTRLS, err, errlen);
	if (ret < 0)
		return ret;
	/* an adopted cgroup: its knobs are ours to restore */
	if (cg_exists(u->s, CG_CPU, u->cg)) {
		ret = cstate_note_knob(u->st, u->s, CG_KNOB_CPU_MAX, u->cg, err, errlen);
		if (!ret)
			ret = cstate_note_knob(u->st, u->s, CG_KNOB_WEIGHT, u->cg, err, errlen);
		if (ret < 0)
			return ret;
	}
	ret = cstate_save(u->st, err, errlen);
	if (ret < 0)
		return ret;
	ret = cg_create(u->s, u->cg, CORE_CTRLS, &created, &n, err, errlen);
	for (size_t i = 0; i < n; i++)
		free(created[i]);
	free(created);
	return ret;
}

static void revert_log(void *ud, const char *line)
{
	struct sup *u = ud;

	audit_event(u, "revert", "%s", line);
}

int sup_run(const struct sup_opts *o, char *err, size_t errlen)
{
	struct sup *u = calloc(1, sizeof(*u));
	sigset_t set;
	int ret = 0, sig, stop = 0;
	double next_tick;

	if (!u) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	u->o = o;
	u->c = &o->cfg;
	u->dry = o->dry_run;
	u->last_ttft = NAN;
	pthread_mutex_init(&u->mu, NULL);
	pol_mem_init(&u->mem);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	u->s = cg_sys_open(getenv("EDGE_SYSROOT"), err, errlen);
	if (!u->s) {
		ret = -ENODEV;
		goto out;
	}
	ret = cg_normalize(u->s, o->cfg.cgroup, u->cg, sizeof(u->cg), err, errlen);
	if (ret < 0)
		goto out;
	if (!u->cg[0]) {
		seterr(err, errlen, "cgroup /: the core needs a cgroup of its own");
		ret = -EINVAL;
		goto out;
	}
	for (int i = 0; i < o->cfg.nneighbours; i++) {
		char nb[CG_NAME_MAX];

		ret = cg_normalize(u->s, o->cfg.neighbours[i], nb, sizeof(nb), err, errlen);
		if (ret < 0)
			goto out;
		if (!cg_exists(u->s, CG_CPU, nb)) {
			seterr(err, errlen, "neighbour cgroup %s: no such cgroup in the cpu hierarchy", o->cfg.neighbours[i]);
			ret = -EINVAL;
			goto out;
		}
		snprintf((char *)o->cfg.neighbours[i], CCFG_STR, "%s", nb);
	}
	u->hist = calloc((size_t)o->cfg.history, sizeof(*u->hist));
	u->cs = csample_new(cg_sys_root(u->s), err, errlen);
	if (!u->hist || !u->cs) {
		ret = -ENOMEM;
		goto out;
	}
	ret = core_argv(u, err, errlen);
	if (ret < 0)
		goto out;
	if (mkparent(o->cfg.audit_log) < 0 || !(u->audit = fopen(o->cfg.audit_log, "ae"))) {
		seterr(err, errlen, "audit log %s: %s", o->cfg.audit_log, strerror(errno));
		ret = -errno;
		goto out;
	}
	mkparent(o->cfg.socket);
	ret = supsrv_start(o->cfg.socket, metrics_text, u, &u->srv, err, errlen);
	if (ret < 0)
		goto out;
	if (!u->dry) {
		ret = setup_cgroup(u, err, errlen);
		if (ret < 0) {
			char e2[256];

			if (u->st)
				cstate_revert(u->st, u->s, NULL, NULL, e2, sizeof(e2));
			goto out;
		}
	}
	ret = core_start(u, err, errlen);
	if (ret < 0)
		goto out_revert;
	audit_event(u, "core_start", "supervise %s: core in cgroup /%s (%s), admin socket %s", u->dry ? "dry run" : "live",
		    u->cg, cg_mode_name(cg_sys_mode(u->s, CG_CPU)), u->admin_sock);
	coll_reopen(u);

	next_tick = mono();
	while (!stop) {
		double wait = sup_loop_wait(mono(), next_tick, u->core > 0, u->last_restart);
		struct timespec ts;
		siginfo_t si;

		ts.tv_sec = (time_t)wait;
		ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
		sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			audit_event(u, "stop", "signal %d: stopping the core and reverting", sig);
			stop = 1;
			break;
		}
		if (u->core > 0) {
			int status;
			pid_t w = waitpid(u->core, &status, WNOHANG);

			if (w == u->core) {
				char why[128];

				if (WIFSIGNALED(status))
					snprintf(why, sizeof(why), "core pid %d killed by signal %d", (int)u->core, WTERMSIG(status));
				else
					snprintf(why, sizeof(why), "core pid %d exited with status %d", (int)u->core,
						 WEXITSTATUS(status));
				audit_event(u, "core_exit", "%s", why);
				u->core = 0;
				/* at most one restart a second: a core that cannot start must not spin */
				if (mono() - u->last_restart < 1)
					usleep(1000000);
				core_restart(u, why);
			}
		} else if (mono() - u->last_restart >= SUP_RETRY_S) {
			core_restart(u, "core not running");
		}
		if (mono() >= next_tick) {
			health(u);
			tick(u);
			next_tick += o->cfg.interval_s;
			if (next_tick < mono())
				next_tick = mono() + o->cfg.interval_s;
		}
	}
	ret = 0;
out_revert:
	core_stop(u);
	if (u->st) {
		char e2[512];

		if (cstate_revert(u->st, u->s, revert_log, u, e2, sizeof(e2)) < 0) {
			seterr(err, errlen, "revert incomplete: %s (state kept in %s; run edgectl revert)", e2,
			       o->state_path);
			if (!ret)
				ret = -EIO;
		}
	}
out:
	supsrv_stop(u->srv);
	if (u->audit)
		fclose(u->audit);
	for (size_t i = 0; i < u->nhist; i++)
		snap_free(u->hist[i]);
	free(u->hist);
	free(u->argv);
	coll_free(u->coll);
	csample_free(u->cs);
	cstate_free(u->st);
	cg_sys_free(u->s);
	pthread_mutex_destroy(&u->mu);
	free(u);
	return ret;
}
