/*
 * policy.c: threads, affinity and bandwidth policies, and tune's plan
 * (see policy.h for the contract: pure functions of their arguments).
 *
 * DESIGN
 * threads: grow by grow_factor when the queue stayed above queue_high for
 *   sustain_ticks; shrink by shrink_factor (rounded down) when the core was
 *   idle (no queue, no busy slot) for `idle`, or memory utilisation stayed
 *   below mem_util_low with no queue pressure; steps bounded by max_step,
 *   results bounded by [min, max] and by the CPUs the core may use. A pool
 *   larger than the CPUs allowed is cut at once (a hard limit, not a
 *   preference, so not held by the cooldown).
 * affinity: candidates are the allowed online CPUs ranked fastest first
 *   (capacity, then max frequency), least busy with other work next. A
 *   worker keeps its CPU while that CPU stays a good candidate (hysteresis),
 *   moves when its CPU went offline, left the cpuset, became busy with other
 *   work, or a faster CPU is free; workers get distinct CPUs while there are
 *   enough. A worker whose mask no longer matches the last placement
 *   (hotplug, or a cpuset write that reset it) is re-pinned at once.
 * bandwidth: above target*(1+h) for sustain_ticks, first raise the core's
 *   weight, then lower each busy neighbour's quota by at most step %, never
 *   below neighbour_min (from what it uses when that is below its quota);
 *   below target*(1-h), give neighbours back step % at a time until they
 *   reach the quota they had before, but for knee_hold never up to a quota
 *   under which the p99 went over (the quota a cap came down from). One
 *   direction change per cooldown.
 */
#include "controller/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/affinity.h"
#include "controller/cgroup.h"

static void fmt(char *b, size_t l, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *b, size_t l, const char *f, ...)
{
	va_list ap;

	if (!b || !l)
		return;
	va_start(ap, f);
	vsnprintf(b, l, f, ap);
	va_end(ap);
}

static const char *const kind_names[POL_NKIND] = {
	[POL_THREADS] = "threads",
	[POL_AFFINITY] = "affinity",
	[POL_BANDWIDTH] = "bandwidth",
};

static const char *const action_names[] = {
	[POL_ACT_NONE] = "none",
	[POL_ACT_SET_THREADS] = "set_threads",
	[POL_ACT_PIN_WORKERS] = "pin_workers",
	[POL_ACT_SET_CPU_MAX] = "set_cpu_max",
	[POL_ACT_SET_WEIGHT] = "set_weight",
	[POL_ACT_SET_IDLE] = "set_idle",
	[POL_ACT_SET_REALTIME] = "set_realtime",
};

const char *pol_kind_name(enum pol_kind k)
{
	return (unsigned)k < POL_NKIND ? kind_names[k] : "?";
}

const char *pol_action_name(enum pol_action a)
{
	return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

void pol_mem_init(struct pol_mem *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < POL_NKIND; i++)
		m->last_change_s[i] = -1e18;
	m->core_weight_orig = -1;
	m->last_tighten_s = -1e18;
	m->rt_refused_s = -1e18;
	for (int i = 0; i < CCFG_MAX_NEIGHBOURS; i++) {
		m->knee_quota[i] = -1;
		m->knee_s[i] = -1e18;
	}
}

/* The most quota a neighbour can use in `period` us: every allowed CPU. */
static int64_t nb_ceiling(const struct pol_env *env, int64_t period)
{
	int ncpu = CPU_COUNT(&env->allowed);

	return period * (ncpu > 0 ? ncpu : 1);
}

static int nb_index(const struct pol_env *env, const char *name)
{
	for (int i = 0; i < env->nneighbours; i++)
		if (!strcmp(env->nb[i].name, name))
			return i;
	return -1;
}

void pol_mem_commit(struct pol_mem *m, const struct pol_decision *d, const struct pol_env *env, double now_s)
{
	m->last_change_s[d->policy] = now_s;
	m->last_dir[d->policy] = d->to > d->from ? 1 : d->to < d->from ? -1 : 0;
	switch (d->action) {
	case POL_ACT_PIN_WORKERS:
		m->naff = d->nworkers;
		memcpy(m->aff_tid, d->tid, sizeof(d->tid));
		memcpy(m->aff_cpu, d->cpu, sizeof(d->cpu));
		break;
	case POL_ACT_SET_CPU_MAX: {
		int i = nb_index(env, d->target);

		if (i < 0)
			break;
		if (!m->capped[i]) {
			m->orig_quota[i] = d->from;
			m->capped[i] = 1;
		}
		if (d->to == m->orig_quota[i])
			m->capped[i] = 0;
		/* lowering a quota is "down"; -1 (no limit) counts as the top */
		m->last_dir[d->policy] = d->from < 0 ? -1 : d->to < 0 ? 1 : m->last_dir[d->policy];
		if (d->to >= 0 && (d->from < 0 || d->to < d->from)) {
			m->last_tighten_s = now_s;
			/* the p99 went over under quota `from`: a knee (no limit
			 * counts as the most the neighbour can use) */
			m->knee_quota[i] = d->from >= 0 ? d->from : nb_ceiling(env, d->period_us > 0 ? d->period_us : 100000);
			m->knee_s[i] = now_s;
		}
		break;
	}
	case POL_ACT_SET_IDLE: {
		int i = nb_index(env, d->target);

		if (d->to)
			m->last_tighten_s = now_s;
		if (i >= 0)
			m->idled[i] = d->to != 0;
		break;
	}
	case POL_ACT_SET_REALTIME:
		m->rt_set = d->to > 0;
		if (d->to > 0) {
			m->last_tighten_s = now_s;
			m->rt_on_s = now_s;
		}
		break;
	case POL_ACT_SET_WEIGHT:
		if (d->to > d->from)
			m->last_tighten_s = now_s;
		if (m->core_weight_orig < 0)
			m->core_weight_orig = d->from;
		else if (d->to == m->core_weight_orig)
			m->core_weight_orig = -1;
		break;
	default:
		break;
	}
}

void pol_mem_failed(struct pol_mem *m, const struct pol_decision *d, double now_s)
{
	if (d->action == POL_ACT_SET_REALTIME && d->to > 0)
		m->rt_refused_s = now_s;
}

double pol_core_stat(const struct snap *s, const char *key, double dflt)
{
	if (!s || !s->core.st.valid)
		return dflt;
	for (uint32_t i = 0; i < s->core.n && i < SNAP_MAX_CORE_STATS; i++)
		if (!strcmp(s->core.kv[i].key, key))
			return s->core.kv[i].value;
	return dflt;
}

static double now_of(const struct snap *s)
{
	return (double)s->mono_ns / 1e9;
}

/* Whether the last k snapshots all have stat key satisfying op against v. */
enum cmp { GT, LT, LE };
static int sustained(const struct snap *const *h, size_t n, int k, const char *key, enum cmp op, double v,
		     double *last)
{
	if (k < 1)
		k = 1;
	if (n < (size_t)k)
		return 0;
	for (size_t i = n - (size_t)k; i < n; i++) {
		double x = pol_core_stat(h[i], key, NAN);

		if (isnan(x))
			return 0;
		if (last)
			*last = x;
		if ((op == GT && !(x > v)) || (op == LT && !(x < v)) || (op == LE && !(x <= v)))
			return 0;
	}
	return 1;
}

int pol_threads(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen)
{
	const struct snap *s;
	double now, cur_d, q = 0, mem = 0, cd_left;
	int cur, ncpu, maxn, to;

	if (!c->threads_enabled) {
		fmt(why, whylen, "threads policy disabled");
		return 0;
	}
	if (!n || max < 1) {
		fmt(why, whylen, "no snapshot yet");
		return 0;
	}
	s = h[n - 1];
	now = now_of(s);
	cur_d = pol_core_stat(s, POL_K_THREADS, NAN);
	if (isnan(cur_d) || cur_d < 1) {
		fmt(why, whylen, "core thread count unknown (admin stats unavailable)");
		return 0;
	}
	cur = (int)cur_d;
	ncpu = CPU_COUNT(&env->allowed);
	if (ncpu < 1)
		ncpu = 1;
	maxn = c->threads_max ? (c->threads_max < ncpu ? c->threads_max : ncpu) : ncpu;
	if (maxn < c->threads_min)
		maxn = c->threads_min < ncpu ? c->threads_min : ncpu;
	memset(out, 0, sizeof(*out));
	out->policy = POL_THREADS;
	out->action = POL_ACT_SET_THREADS;
	snprintf(out->target, sizeof(out->target), "core");
	out->from = cur;

	if (cur > maxn) {
		out->to = maxn;
		fmt(out->reason, sizeof(out->reason), "%d threads exceed the %d the core may use (%d CPUs allowed)", cur,
		    maxn, ncpu);
		fmt(out->inputs, sizeof(out->inputs), "{\"threads\":%d,\"cpus_allowed\":%d,\"max\":%d}", cur, ncpu, maxn);
		return 1;
	}
	cd_left = c->threads_cooldown_s - (now - m->last_change_s[POL_THREADS]);
	if (cd_left > 0) {
		fmt(why, whylen, "cooldown: %.1f s left", cd_left);
		return 0;
	}
	/* grow */
	if (sustained(h, n, c->sustain_ticks, POL_K_QUEUE, GT, c->queue_high, &q)) {
		to = (int)floor(cur * c->grow_factor);
		if (to > cur + c->threads_max_step)
			to = cur + c->threads_max_step;
		if (to > maxn)
			to = maxn;
		if (to > cur) {
			out->to = to;
			fmt(out->reason, sizeof(out->reason),
			    "queue %.0f > %.0f for %d ticks: grow x%g from %d to %d (max %d, %d CPUs allowed)", q,
			    c->queue_high, c->sustain_ticks, c->grow_factor, cur, to, maxn, ncpu);
			fmt(out->inputs, sizeof(out->inputs),
			    "{\"queue\":%.0f,\"queue_high\":%g,\"threads\":%d,\"max\":%d,\"cpus_allowed\":%d}", q,
			    c->queue_high, cur, maxn, ncpu);
			return 1;
		}
		fmt(why, whylen, "queue %.0f > %.0f but already at the maximum of %d threads", q, c->queue_high, maxn);
		return 0;
	}
	/* shrink when idle for idle_s */
	{
		size_t i = n;
		double since = now;
		int idle_run = 0;

		while (i > 0) {
			const struct snap *x = h[i - 1];
			double qq = pol_core_stat(x, POL_K_QUEUE, NAN), bb = pol_core_stat(x, POL_K_BUSY_SLOTS, NAN);

			if (isnan(qq) || isnan(bb) || qq > 0 || bb > 0)
				break;
			since = now_of(x) - (double)x->interval_ns / 1e9;
			idle_run++;
			i--;
		}
		if (idle_run && now - since >= c->idle_s) {
			to = (int)floor(cur * c->shrink_factor);
			if (to < cur - c->threads_max_step)
				to = cur - c->threads_max_step;
			if (to < c->threads_min)
				to = c->threads_min;
			if (to < cur) {
				out->to = to;
				fmt(out->reason, sizeof(out->reason),
				    "idle (no queue, no busy slot) for %.1f s >= %.1f s: shrink x%g from %d to %d", now - since,
				    c->idle_s, c->shrink_factor, cur, to);
				fmt(out->inputs, sizeof(out->inputs), "{\"idle_s\":%.1f,\"threads\":%d,\"min\":%d}",
				    now - since, cur, c->threads_min);
				return 1;
			}
		}
	}
	/* shrink when memory utilisation stays low and the queue is not pressing */
	if (sustained(h, n, c->sustain_ticks, POL_K_MEM_UTIL, LT, c->mem_util_low_pct, &mem) &&
	    sustained(h, n, c->sustain_ticks, POL_K_QUEUE, LE, c->queue_high, &q)) {
		to = (int)floor(cur * c->shrink_factor);
		if (to < cur - c->threads_max_step)
			to = cur - c->threads_max_step;
		if (to < c->threads_min)
			to = c->threads_min;
		if (to < cur) {
			out->to = to;
			fmt(out->reason, sizeof(out->reason),
			    "memory utilisation %.1f%% < %.0f%% for %d ticks (queue %.0f): shrink x%g from %d to %d", mem,
			    c->mem_util_low_pct, c->sustain_ticks, q, c->shrink_factor, cur, to);
			fmt(out->inputs, sizeof(out->inputs),
			    "{\"mem_util_pct\":%.1f,\"mem_util_low\":%g,\"queue\":%.0f,\"threads\":%d,\"min\":%d}", mem,
			    c->mem_util_low_pct, q, cur, c->threads_min);
			return 1;
		}
	}
	fmt(why, whylen, "steady at %d threads", cur);
	return 0;
}

static double topo_cap(const struct snap_topology *t, int cpu)
{
	if (t && t->st.valid)
		for (uint32_t i = 0; i < t->ncpus && i < SNAP_MAX_CPUS; i++)
			if (t->cpu[i].cpu == cpu)
				return t->cpu[i].capacity ? t->cpu[i].capacity : 1024;
	return 1024;
}

static double topo_maxf(const struct snap_topology *t, int cpu)
{
	if (t && t->st.valid)
		for (uint32_t i = 0; i < t->ncpus && i < SNAP_MAX_CPUS; i++)
			if (t->cpu[i].cpu == cpu)
				return t->cpu[i].max_khz;
	return 0;
}

static int topo_online(const struct snap_topology *t, int cpu)
{
	if (t && t->st.valid)
		for (uint32_t i = 0; i < t->ncpus && i < SNAP_MAX_CPUS; i++)
			if (t->cpu[i].cpu == cpu)
				return t->cpu[i].online;
	return 1;
}

struct rank_ctx {
	const struct snap_topology *t;
	const double *busy;
	double thr;
};

static int rank_cmp(const struct rank_ctx *r, int a, int b)
{
	int ba = r->busy && r->busy[a] > r->thr, bb = r->busy && r->busy[b] > r->thr;
	double x, y;

	if (ba != bb)
		return ba - bb;
	x = topo_cap(r->t, a);
	y = topo_cap(r->t, b);
	if (x != y)
		return x > y ? -1 : 1;
	x = topo_maxf(r->t, a);
	y = topo_maxf(r->t, b);
	if (x != y)
		return x > y ? -1 : 1;
	x = r->busy ? r->busy[a] : 0;
	y = r->busy ? r->busy[b] : 0;
	if (fabs(x - y) > 5) /* under 5 points apart counts as equally busy */
		return x < y ? -1 : 1;
	return a - b;
}

int pol_rank_cpus(const struct snap_topology *topo, const cpu_set_t *cand, const double *busy_pct,
		  double busy_other_pct, int *order, int max)
{
	struct rank_ctx r = { .t = topo, .busy = busy_pct, .thr = busy_other_pct };
	int n = 0;

	for (int c = 0; c < SNAP_MAX_CPUS && n < max; c++)
		if (CPU_ISSET(c, cand) && topo_online(topo, c))
			order[n++] = c;
	/* insertion sort: a few dozen CPUs at most */
	for (int i = 1; i < n; i++) {
		int v = order[i], j = i - 1;

		while (j >= 0 && rank_cmp(&r, order[j], v) > 0) {
			order[j + 1] = order[j];
			j--;
		}
		order[j + 1] = v;
	}
	return n;
}

/* Other-work load per CPU, averaged over the last k snapshots (percent). */
static void busy_other(const struct snap *const *h, size_t n, int k, double *busy)
{
	int cnt[SNAP_MAX_CPUS] = { 0 };

	memset(busy, 0, sizeof(double) * SNAP_MAX_CPUS);
	if (k < 1)
		k = 1;
	for (size_t i = n > (size_t)k ? n - (size_t)k : 0; i < n; i++) {
		const struct snap_cpus *c = &h[i]->cpus;

		if (!c->st.valid || !h[i]->interval_ns)
			continue;
		for (uint32_t j = 0; j < c->n && j < SNAP_MAX_CPUS; j++) {
			int id = c->cpu[j].cpu;

			if (id < 0 || id >= SNAP_MAX_CPUS)
				continue;
			busy[id] += (double)c->cpu[j].busy_other_ns * 100.0 / (double)h[i]->interval_ns;
			cnt[id]++;
		}
	}
	for (int i = 0; i < SNAP_MAX_CPUS; i++)
		if (cnt[i])
			busy[i] /= cnt[i];
}

static int mem_cpu_of(const struct pol_mem *m, pid_t tid)
{
	for (int i = 0; i < m->naff; i++)
		if (m->aff_tid[i] == tid)
			return m->aff_cpu[i];
	return -1;
}

int pol_affinity(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		 const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen)
{
	const struct snap *s;
	const struct snap_topology *topo;
	double busy[SNAP_MAX_CPUS], now, cd_left;
	int order[SNAP_MAX_CPUS], nc, used[SNAP_MAX_CPUS] = { 0 };
	int plan[POL_MAX_WORKERS];
	int nw, changed = 0, drift = -1, moved_offline = 0;
	char why_move[160] = "";
	cpu_set_t cand, chosen;

	if (!c->affinity_enabled) {
		fmt(why, whylen, "affinity policy disabled");
		return 0;
	}
	if (!n || max < 1) {
		fmt(why, whylen, "no snapshot yet");
		return 0;
	}
	nw = env->nworkers < POL_MAX_WORKERS ? env->nworkers : POL_MAX_WORKERS;
	if (nw < 1) {
		fmt(why, whylen, "no worker threads known (admin stats unavailable)");
		return 0;
	}
	s = h[n - 1];
	now = now_of(s);
	topo = &s->topo;
	busy_other(h, n, c->sustain_ticks, busy);
	cand = env->allowed;
	nc = pol_rank_cpus(topo, &cand, busy, c->busy_other_pct, order, SNAP_MAX_CPUS);
	if (nc < 1) {
		fmt(why, whylen, "no allowed CPU is online");
		return 0;
	}
	/* keep CPUs that remain good (hysteresis), then fill from the best free ones */
	for (int w = 0; w < nw; w++) {
		int prev = mem_cpu_of(m, env->worker_tid[w]), ok = 0;

		plan[w] = -1;
		if (prev < 0)
			continue;
		for (int i = 0; i < nc; i++)
			if (order[i] == prev)
				ok = 1;
		if (!ok) {
			moved_offline = 1;
			fmt(why_move, sizeof(why_move), "CPU %d left the allowed online set", prev);
			continue;
		}
		if (busy[prev] > c->busy_other_pct) {
			fmt(why_move, sizeof(why_move), "CPU %d is %.0f%% busy with other work (> %.0f%%)", prev, busy[prev],
			    c->busy_other_pct);
			continue;
		}
		if (used[prev])
			continue;
		plan[w] = prev;
		used[prev] = 1;
	}
	for (int w = 0; w < nw; w++) {
		if (plan[w] >= 0)
			continue;
		for (int i = 0; i < nc; i++)
			if (!used[order[i]]) {
				plan[w] = order[i];
				used[order[i]] = 1;
				break;
			}
		if (plan[w] < 0) /* more workers than CPUs: share, best CPUs first */
			plan[w] = order[w % nc];
	}
	/* a worker on a slower CPU while a faster candidate is free moves up */
	for (int w = 0; w < nw; w++)
		for (int i = 0; i < nc; i++) {
			int f = order[i];

			if (used[f] || busy[f] > c->busy_other_pct)
				continue;
			if (topo_cap(topo, f) > topo_cap(topo, plan[w]) ||
			    (topo_cap(topo, f) == topo_cap(topo, plan[w]) && topo_maxf(topo, f) > topo_maxf(topo, plan[w]))) {
				fmt(why_move, sizeof(why_move), "CPU %d is faster than CPU %d", f, plan[w]);
				used[plan[w]] = 0;
				plan[w] = f;
				used[f] = 1;
			}
			break;
		}
	for (int w = 0; w < nw; w++) {
		if (plan[w] != mem_cpu_of(m, env->worker_tid[w]))
			changed = 1;
		else if (drift < 0 && (CPU_COUNT(&env->worker_mask[w]) != 1 || !CPU_ISSET(plan[w], &env->worker_mask[w])))
			drift = w;
	}
	memset(out, 0, sizeof(*out));
	out->policy = POL_AFFINITY;
	out->action = POL_ACT_PIN_WORKERS;
	snprintf(out->target, sizeof(out->target), "core");
	out->nworkers = nw;
	CPU_ZERO(&chosen);
	for (int w = 0; w < nw; w++) {
		out->tid[w] = env->worker_tid[w];
		out->cpu[w] = plan[w];
		CPU_SET(plan[w], &chosen);
	}
	aff_format_list(&chosen, out->cpus, sizeof(out->cpus));
	out->from = m->naff;
	out->to = nw;
	{
		char bl[256] = "";
		size_t o = 0;

		for (int i = 0; i < nc && o < sizeof(bl) - 32; i++)
			o += (size_t)snprintf(bl + o, sizeof(bl) - o, "%s\"%d\":%.0f", i ? "," : "", order[i], busy[order[i]]);
		fmt(out->inputs, sizeof(out->inputs), "{\"workers\":%d,\"candidates_ranked_busy_other_pct\":{%s}}", nw, bl);
	}
	if (!changed && drift < 0) {
		fmt(why, whylen, "placement unchanged (%s)", out->cpus);
		return 0;
	}
	if (!changed && drift >= 0) {
		char ml[128];

		if (!c->affinity_reapply) {
			fmt(why, whylen, "worker %d drifted but reapply is off", (int)env->worker_tid[drift]);
			return 0;
		}
		aff_format_list(&env->worker_mask[drift], ml, sizeof(ml));
		fmt(out->reason, sizeof(out->reason),
		    "worker tid %d has mask %s, placed on CPU %d: re-pin (CPU hotplug or cpuset reset)",
		    (int)env->worker_tid[drift], ml, plan[drift]);
		return 1;
	}
	cd_left = c->affinity_cooldown_s - (now - m->last_change_s[POL_AFFINITY]);
	if (cd_left > 0 && !moved_offline && m->naff) {
		fmt(why, whylen, "cooldown: %.1f s left", cd_left);
		return 0;
	}
	if (!m->naff && nw > nc)
		fmt(out->reason, sizeof(out->reason),
		    "first placement: %d workers share %d CPUs %s (fewer CPUs than workers), fastest first", nw, nc,
		    out->cpus);
	else if (!m->naff)
		fmt(out->reason, sizeof(out->reason),
		    "first placement: %d workers on distinct CPUs %s, fastest first (capacity %.0f), avoiding CPUs > %.0f%% busy with other work",
		    nw, out->cpus, topo_cap(topo, order[0]), c->busy_other_pct);
	else
		fmt(out->reason, sizeof(out->reason), "re-place workers on %s: %s", out->cpus,
		    why_move[0] ? why_move : "worker set changed");
	return 1;
}

static int64_t pct_to_quota(double pct, int64_t period)
{
	int64_t q = (int64_t)llround(pct / 100.0 * (double)period);

	return q < 1000 ? 1000 : q;
}

/* the next bandwidth decision in out[*nd]: zeroed, with its action, target
 * and from -> to; the caller adds the rest (period, reason, inputs) */
/* A busy neighbour whose cpu.idle we would set first (neighbour_idle): it is
 * limited or uses more than the floor, and is not idle yet. */
static int needs_idle(const struct pol_neighbour *nb, const struct ccfg *c)
{
	return c->neighbour_idle && nb->idle == 0 && !(nb->quota_us < 0 && nb->usage_pct <= c->neighbour_min_pct);
}

/* The neighbour using the most CPU above the floor (neighbour_min), or NULL. */
static const struct pol_neighbour *busiest_neighbour(const struct pol_env *env, const struct ccfg *c)
{
	const struct pol_neighbour *b = NULL;

	for (int i = 0; i < env->nneighbours; i++)
		if (env->nb[i].usage_pct > c->neighbour_min_pct && (!b || env->nb[i].usage_pct > b->usage_pct))
			b = &env->nb[i];
	return b;
}

static struct pol_decision *bw_decision(struct pol_decision *out, int *nd, enum pol_action action,
					const char *target, int64_t from, int64_t to)
{
	struct pol_decision *d = &out[(*nd)++];

	memset(d, 0, sizeof(*d));
	d->policy = POL_BANDWIDTH;
	d->action = action;
	snprintf(d->target, sizeof(d->target), "%s", target);
	d->from = from;
	d->to = to;
	return d;
}

int pol_bandwidth(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		  const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen)
{
	double now, p99 = 0, hi, lo, cd_left, wbusy = 0;
	int nd = 0, over, under, held = 0, rt_pending = 0, idle_pending = 0;
	const struct pol_neighbour *busy;

	if (!c->bandwidth_enabled) {
		fmt(why, whylen, "bandwidth policy disabled");
		return 0;
	}
	if (!n || max < 1) {
		fmt(why, whylen, "no snapshot yet");
		return 0;
	}
	now = now_of(h[n - 1]);
	/* a hard limit, cooldown or not: real-time workers that run most of
	 * the time reach the RT budget, and the kernel then stops them to the
	 * end of its period (100 ms of each second at 90 %), and they keep the
	 * core's own fair-class threads (HTTP) off their CPUs between tokens */
	if (m->rt_set && env->worker_rt > 0 &&
	    sustained(h, n, c->sustain_ticks, POL_K_WORKERS_BUSY, GT, c->realtime_max_busy_pct, &wbusy)) {
		struct pol_decision *d = bw_decision(out, &nd, POL_ACT_SET_REALTIME, "core", env->worker_rt, 0);

		fmt(d->reason, sizeof(d->reason),
		    "busiest worker %.0f%% busy > realtime_max_busy %.0f%% for %d ticks: core workers back to SCHED_OTHER at once (past the RT budget the kernel throttles them)",
		    wbusy, c->realtime_max_busy_pct, c->sustain_ticks);
		fmt(d->inputs, sizeof(d->inputs), "{\"workers_busy_pct\":%.1f,\"max_busy_pct\":%g,\"workers_rt\":%d}", wbusy,
		    c->realtime_max_busy_pct, env->worker_rt);
		return nd;
	}
	if (isnan(pol_core_stat(h[n - 1], POL_K_TTFT_P99, NAN))) {
		fmt(why, whylen, "core ttft p99 unknown");
		return 0;
	}
	hi = c->ttft_p99_target_ms * (1 + c->bw_hysteresis_pct / 100);
	lo = c->ttft_p99_target_ms * (1 - c->bw_hysteresis_pct / 100);
	over = sustained(h, n, c->sustain_ticks, POL_K_TTFT_P99, GT, hi, &p99);
	under = !over && sustained(h, n, c->sustain_ticks, POL_K_TTFT_P99, LT, lo, &p99);
	if (!over && !under) {
		fmt(why, whylen, "ttft p99 %.5g ms within %.5g..%.5g ms (or not sustained)",
		    pol_core_stat(h[n - 1], POL_K_TTFT_P99, 0), lo, hi);
		return 0;
	}
	cd_left = c->bw_cooldown_s - (now - m->last_change_s[POL_BANDWIDTH]);
	if (cd_left > 0) {
		fmt(why, whylen, "cooldown: %.1f s left (ttft p99 %.5g ms)", cd_left, p99);
		return 0;
	}
	if (over) {
		if (env->core_weight > 0 && env->core_weight < c->core_weight && nd < max) {
			struct pol_decision *d = bw_decision(out, &nd, POL_ACT_SET_WEIGHT,
							     env->weight_cg[0] ? env->weight_cg : c->cgroup,
							     env->core_weight, c->core_weight);

			fmt(d->reason, sizeof(d->reason), "ttft p99 %.5g ms > target %.5g ms +%.0f%%: core weight %" PRId64 " -> %" PRId64,
			    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, d->from, d->to);
			fmt(d->inputs, sizeof(d->inputs), "{\"ttft_p99_ms\":%.1f,\"target_ms\":%g,\"weight\":%" PRId64 "}", p99,
			    c->ttft_p99_target_ms, env->core_weight);
		}
		/* real-time workers after the idle flags and before any cap: an
		 * idle or capped fair-class neighbour still gets a worker's CPU
		 * for a whole scheduler tick whenever EEVDF re-picks there (a
		 * slice ends, a kthread preempts); a SCHED_FIFO worker is never
		 * re-picked away from, and the neighbour keeps every cycle the
		 * core leaves. The idle flag first, because the core's other
		 * threads (HTTP, the one that dispatches each run) stay in the
		 * fair class, and only cpu.idle makes them preempt the
		 * neighbour at once when they wake */
		busy = busiest_neighbour(env, c);
		wbusy = pol_core_stat(h[n - 1], POL_K_WORKERS_BUSY, NAN);
		rt_pending = c->realtime && env->worker_rt == 0 && busy && now - m->rt_refused_s >= c->bw_knee_hold_s &&
			     !isnan(wbusy) && wbusy <= c->realtime_max_busy_pct;
		for (int i = 0; i < env->nneighbours; i++)
			idle_pending |= needs_idle(&env->nb[i], c);
		if (rt_pending && !idle_pending && nd < max) {
			struct pol_decision *d = bw_decision(out, &nd, POL_ACT_SET_REALTIME, "core", 0, c->realtime_priority);

			fmt(d->reason, sizeof(d->reason),
			    "ttft p99 %.5g ms > target %.5g ms +%.0f%% for %d ticks while neighbour %s uses %.0f%% of a CPU: core workers SCHED_OTHER -> SCHED_FIFO %d",
			    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, c->sustain_ticks, busy->name, busy->usage_pct,
			    c->realtime_priority);
			fmt(d->inputs, sizeof(d->inputs),
			    "{\"ttft_p99_ms\":%.1f,\"target_ms\":%g,\"neighbour\":\"%s\",\"neighbour_usage_pct\":%.1f,\"workers_rt\":0}",
			    p99, c->ttft_p99_target_ms, busy->name, busy->usage_pct);
			return nd; /* no cap this tick: this may be enough */
		}
		/* the p99 still holds requests served before the switch: judge
		 * the real-time workers on their own before a neighbour pays */
		if (m->rt_set && env->worker_rt > 0 && now - m->rt_on_s < c->realtime_settle_s) {
			if (!nd)
				fmt(why, whylen, "ttft p99 %.5g ms over target: workers SCHED_FIFO %.0f s ago, neighbours wait for realtime_settle (%.0f s)",
				    p99, now - m->rt_on_s, c->realtime_settle_s);
			return nd;
		}
		for (int i = 0; i < env->nneighbours && nd < max; i++) {
			const struct pol_neighbour *nb = &env->nb[i];
			int64_t period = nb->period_us > 0 ? nb->period_us : c->period_us;
			/* from its quota, or from what it uses when that is less (a
			 * quota above its use binds nothing: halving 700 % of a CPU
			 * for a neighbour using 180 % took three ticks to bite) */
			double floor_pct = c->neighbour_min_pct, to_pct;
			double cur_pct = nb->quota_us > 0 ? (double)nb->quota_us * 100.0 / (double)period : nb->usage_pct;
			if (nb->quota_us > 0 && nb->usage_pct >= 0 && nb->usage_pct < cur_pct)
				cur_pct = nb->usage_pct > floor_pct ? nb->usage_pct : floor_pct;
			struct pol_decision *d;

			if (nb->quota_us < 0 && nb->usage_pct <= floor_pct)
				continue; /* not limited and hardly using anything: leave it */
			if (needs_idle(nb, c)) {
				/* first step for a busy neighbour: idle, not capped. It
				 * keeps every CPU cycle the core leaves, and yields at
				 * once when the core wakes */
				d = bw_decision(out, &nd, POL_ACT_SET_IDLE, nb->name, 0, 1);
				fmt(d->reason, sizeof(d->reason),
				    "ttft p99 %.5g ms > target %.5g ms +%.0f%% for %d ticks: neighbour %s cpu.idle 0 -> 1 (it runs on what the core leaves)",
				    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, c->sustain_ticks, nb->name);
				fmt(d->inputs, sizeof(d->inputs),
				    "{\"ttft_p99_ms\":%.1f,\"target_ms\":%g,\"neighbour_usage_pct\":%.1f,\"idle\":0}", p99,
				    c->ttft_p99_target_ms, nb->usage_pct);
				continue;
			}
			if (cur_pct <= floor_pct + 0.01 || rt_pending)
				continue; /* at the floor, or real-time workers come first */
			to_pct = cur_pct * (1 - c->bw_step_pct / 100);
			if (to_pct < floor_pct)
				to_pct = floor_pct;
			d = bw_decision(out, &nd, POL_ACT_SET_CPU_MAX, nb->name, nb->quota_us, pct_to_quota(to_pct, period));
			d->period_us = period;
			fmt(d->reason, sizeof(d->reason),
			    "ttft p99 %.5g ms > target %.5g ms +%.0f%% for %d ticks: neighbour %s quota %.0f%% -> %.0f%% of a CPU (step %.0f%%, floor %.0f%%)",
			    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, c->sustain_ticks, nb->name, cur_pct, to_pct,
			    c->bw_step_pct, floor_pct);
			fmt(d->inputs, sizeof(d->inputs),
			    "{\"ttft_p99_ms\":%.1f,\"target_ms\":%g,\"neighbour_usage_pct\":%.1f,\"quota_us\":%" PRId64 ",\"period_us\":%" PRId64 "}",
			    p99, c->ttft_p99_target_ms, nb->usage_pct, nb->quota_us, period);
		}
		if (!nd)
			fmt(why, whylen, "ttft p99 %.5g ms over target, but no neighbour left to cap", p99);
		return nd;
	}
	/* under target: give back, step by step, what we took; but only once the
	 * target has held for `relax` since the last tightening (a cap that made
	 * the p99 good is not lifted the moment it works), quotas first, the
	 * core's weight last */
	if (now - m->last_tighten_s < c->bw_relax_s) {
		fmt(why, whylen, "ttft p99 %.5g ms under target: holding, relax in %.1f s", p99,
		    c->bw_relax_s - (now - m->last_tighten_s));
		return 0;
	}
	for (int i = 0; i < env->nneighbours && nd < max; i++) {
		const struct pol_neighbour *nb = &env->nb[i];
		int64_t period = nb->period_us > 0 ? nb->period_us : c->period_us, to;
		struct pol_decision *d;

		if (!m->capped[i] || nb->quota_us < 0)
			continue;
		to = (int64_t)llround((double)nb->quota_us * (1 + c->bw_step_pct / 100));
		/* a quota of every allowed CPU limits nothing: the original next */
		if (m->orig_quota[i] < 0 ? to >= nb_ceiling(env, period) : to >= m->orig_quota[i])
			to = m->orig_quota[i];
		/* never back up to a quota under which the p99 went over, for
		 * knee_hold: each such probe costs the core ~10 ticks of tail */
		if (m->knee_quota[i] >= 0 && now - m->knee_s[i] < c->bw_knee_hold_s && (to < 0 || to >= m->knee_quota[i])) {
			fmt(why, whylen, "ttft p99 %.5g ms under target: neighbour %s held below %.0f%% of a CPU (the p99 went over there %.0f s ago; knee_hold %.0f s)",
			    p99, nb->name, (double)m->knee_quota[i] * 100.0 / (double)period, now - m->knee_s[i],
			    c->bw_knee_hold_s);
			held = 1;
			continue;
		}
		d = bw_decision(out, &nd, POL_ACT_SET_CPU_MAX, nb->name, nb->quota_us, to);
		d->period_us = period;
		fmt(d->reason, sizeof(d->reason), "ttft p99 %.5g ms < target %.5g ms -%.0f%%: give neighbour %s back %s", p99,
		    c->ttft_p99_target_ms, c->bw_hysteresis_pct, nb->name, to < 0 ? "its unlimited quota" : "one step");
		fmt(d->inputs, sizeof(d->inputs), "{\"ttft_p99_ms\":%.1f,\"target_ms\":%g,\"quota_us\":%" PRId64 "}", p99,
		    c->ttft_p99_target_ms, nb->quota_us);
	}
	/* then the real-time workers, but only once no neighbour competes
	 * (while one does, they and its idle flag stay: the pair is what
	 * holds the target) */
	if (!nd && !held && m->rt_set && env->worker_rt > 0) {
		busy = busiest_neighbour(env, c);
		if (busy) {
			fmt(why, whylen, "ttft p99 %.5g ms under target: workers stay SCHED_FIFO while neighbour %s uses %.0f%% of a CPU",
			    p99, busy->name, busy->usage_pct);
			return 0;
		}
		struct pol_decision *d = bw_decision(out, &nd, POL_ACT_SET_REALTIME, "core", env->worker_rt, 0);

		fmt(d->reason, sizeof(d->reason),
		    "ttft p99 %.5g ms < target %.5g ms -%.0f%% and no neighbour above %.0f%% of a CPU: core workers back to SCHED_OTHER",
		    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, c->neighbour_min_pct);
		fmt(d->inputs, sizeof(d->inputs), "{\"ttft_p99_ms\":%.1f,\"workers_rt\":%d}", p99, env->worker_rt);
		return nd;
	}
	/* then the idle flags we set, once that neighbour's quota is back */
	for (int i = 0; i < env->nneighbours && nd < max; i++) {
		const struct pol_neighbour *nb = &env->nb[i];
		struct pol_decision *d;

		if (!m->idled[i] || nb->idle != 1 || m->capped[i])
			continue;
		d = bw_decision(out, &nd, POL_ACT_SET_IDLE, nb->name, 1, 0);
		fmt(d->reason, sizeof(d->reason), "ttft p99 %.5g ms < target %.5g ms -%.0f%%: neighbour %s cpu.idle back to 0",
		    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, nb->name);
		fmt(d->inputs, sizeof(d->inputs), "{\"ttft_p99_ms\":%.1f,\"idle\":1}", p99);
	}
	if (!nd && !held && nd < max && m->core_weight_orig > 0 && env->core_weight != m->core_weight_orig) {
		struct pol_decision *d = bw_decision(out, &nd, POL_ACT_SET_WEIGHT,
						     env->weight_cg[0] ? env->weight_cg : c->cgroup, env->core_weight,
						     m->core_weight_orig);

		fmt(d->reason, sizeof(d->reason), "ttft p99 %.5g ms < target %.5g ms -%.0f%%: core weight back to %" PRId64,
		    p99, c->ttft_p99_target_ms, c->bw_hysteresis_pct, d->to);
		fmt(d->inputs, sizeof(d->inputs), "{\"ttft_p99_ms\":%.1f,\"weight\":%" PRId64 "}", p99, env->core_weight);
	}
	if (!nd && !held)
		fmt(why, whylen, "ttft p99 %.5g ms under target, nothing to give back", p99);
	return nd;
}

/* length of the first `depth` components of path p (no leading '/') */
static size_t prefix_len(const char *p, int depth)
{
	size_t i = 0;

	for (int k = 0; k < depth && p[i]; k++) {
		while (p[i] && p[i] != '/')
			i++;
		if (k + 1 < depth && p[i] == '/')
			i++;
	}
	return i;
}

void pol_weight_cgroup(const char *core, const char (*nb)[CCFG_STR], int n, char *out, size_t outlen)
{
	int keep = -1; /* components of the core's path to keep */

	while (*core == '/')
		core++;
	for (int i = 0; i < n; i++) {
		const char *a = core, *b = nb[i];
		int common = 0;

		while (*b == '/')
			b++;
		/* count the leading components the two paths share */
		for (;;) {
			size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
			if (!la || la != lb || strncmp(a, b, la))
				break;
			common++;
			a += la;
			b += lb;
			if (*a != '/' || *b != '/')
				break;
			a++;
			b++;
		}
		if (keep < 0 || common + 1 < keep)
			keep = common + 1;
	}
	if (keep < 0) {
		snprintf(out, outlen, "%s", core);
		return;
	}
	snprintf(out, outlen, "%.*s", (int)prefix_len(core, keep), core);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int pol_tune_plan(const struct snap *const *h, size_t n, const struct ccfg *c, const cpu_set_t *allowed,
		  int is_core, struct pol_plan *p, char *err, size_t errlen)
{
	double *tot = NULL, busy[SNAP_MAX_CPUS], raw_pct, pct;
	struct {
		int32_t tid;
		double sum;
	} th[SNAP_MAX_THREADS * 2];
	int nth = 0, order[SNAP_MAX_CPUS], nc, ret = 0;
	size_t used = 0;
	cpu_set_t chosen;

	memset(p, 0, sizeof(*p));
	if (!n) {
		fmt(err, errlen, "profile: no samples");
		return -EINVAL;
	}
	tot = calloc(n, sizeof(*tot));
	if (!tot) {
		fmt(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct snap_threads *t = &h[i]->threads;

		if (!t->st.valid)
			continue;
		used++;
		for (uint32_t j = 0; j < t->n && j < SNAP_MAX_THREADS; j++) {
			int k;

			tot[i] += t->t[j].cpu_pct;
			for (k = 0; k < nth; k++)
				if (th[k].tid == t->t[j].tid)
					break;
			if (k == nth) {
				if (nth == (int)(sizeof(th) / sizeof(th[0])))
					continue;
				th[nth].tid = t->t[j].tid;
				th[nth++].sum = 0;
			}
			th[k].sum += t->t[j].cpu_pct;
		}
	}
	if (!used) {
		fmt(err, errlen, "profile: no valid thread samples (%s)", h[n - 1]->threads.st.err);
		ret = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		p->usage_mean_pct += tot[i] / (double)used;
	qsort(tot, n, sizeof(*tot), cmp_double);
	p->usage_p95_pct = tot[(size_t)ceil(0.95 * (double)n) - 1];
	for (int k = 0; k < nth; k++)
		if (th[k].sum / (double)used >= c->tune_active_thread_pct)
			p->active_threads++;

	/* CPUs: one per active thread, fastest first, avoiding busy ones */
	busy_other(h, n, (int)n, busy);
	nc = pol_rank_cpus(&h[n - 1]->topo, allowed, busy, c->busy_other_pct, order, SNAP_MAX_CPUS);
	if (nc < 1) {
		fmt(err, errlen, "no allowed CPU is online");
		ret = -EINVAL;
		goto out;
	}
	p->ncpus = p->active_threads > 0 ? p->active_threads : 1;
	if (is_core) {
		/* the whole fastest class that is free of other work */
		double top = topo_cap(&h[n - 1]->topo, order[0]);
		int k = 0;

		while (k < nc && topo_cap(&h[n - 1]->topo, order[k]) == top && busy[order[k]] <= c->busy_other_pct)
			k++;
		p->ncpus = k > 0 ? k : 1;
		p->threads = p->ncpus;
		fmt(p->reason_threads, sizeof(p->reason_threads),
		    "dify-edge: one worker per CPU of the fastest class free of other work (%d)", p->threads);
	}
	if (p->ncpus > nc)
		p->ncpus = nc;
	CPU_ZERO(&chosen);
	for (int i = 0; i < p->ncpus; i++) {
		p->cpu[i] = order[i];
		CPU_SET(order[i], &chosen);
	}
	aff_format_list(&chosen, p->cpus, sizeof(p->cpus));
	{
		int nbusy = 0;

		for (int i = 0; i < nc; i++)
			nbusy += busy[order[i]] > c->busy_other_pct;
		fmt(p->reason_cpus, sizeof(p->reason_cpus),
		    "%d thread%s above %.0f%% CPU; %d CPU%s chosen fastest first (capacity %.0f)%s, %d of %d allowed CPUs busy > %.0f%% with other work",
		    p->active_threads, p->active_threads == 1 ? "" : "s", c->tune_active_thread_pct, p->ncpus,
		    p->ncpus == 1 ? "" : "s", topo_cap(&h[n - 1]->topo, order[0]),
		    p->active_threads ? "" : " (none active: one CPU)", nbusy, nc, c->busy_other_pct);
	}

	/* quota: p95 plus headroom, rounded up, within [1 ms, the CPUs chosen] */
	p->period_us = c->period_us;
	raw_pct = p->usage_p95_pct * (1 + c->tune_headroom_pct / 100);
	pct = ceil(raw_pct / c->tune_round_pct - 1e-9) * c->tune_round_pct;
	if (pct < c->tune_round_pct)
		pct = c->tune_round_pct;
	if (pct > 100.0 * p->ncpus)
		pct = 100.0 * p->ncpus;
	p->quota_pct = pct;
	p->quota_us = pct_to_quota(pct, p->period_us);
	fmt(p->reason_quota, sizeof(p->reason_quota),
	    "measured CPU use mean %.1f%%, p95 %.1f%% of one CPU over %zu samples; +%.0f%% headroom = %.1f%%, rounded up to %.0f%%%s",
	    p->usage_mean_pct, p->usage_p95_pct, used, c->tune_headroom_pct, raw_pct, c->tune_round_pct,
	    raw_pct > 100.0 * p->ncpus ? ", capped at the CPUs chosen" : "");
	p->weight = c->tune_weight;
	fmt(p->reason_weight, sizeof(p->reason_weight), "configured [tune] weight %" PRId64 " (v1 shares %" PRId64 ")",
	    p->weight, cg_weight_to_shares(p->weight));
out:
	free(tot);
	return ret;
}
