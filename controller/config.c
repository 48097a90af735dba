/*
 * config.c: the controller's INI configuration (see config.h).
 *
 * DESIGN
 * One const table describes every key: section, name, type, where it lives
 * in struct ccfg, its default (as text, parsed by the same code as the file,
 * so defaults cannot drift from what the parser accepts), its bounds and a
 * one-line meaning. ccfg_defaults, ccfg_load and ccfg_describe all walk it.
 */
#include "controller/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

enum ktype { K_DOUBLE, K_DURATION, K_INT, K_I64, K_BOOL, K_STR, K_LIST };

struct key {
	const char *section, *name;
	enum ktype type;
	size_t off;
	const char *def;
	double min, max;
	const char *doc;
};

#define F(x) offsetof(struct ccfg, x)

static const struct key keys[] = {
	{ .section = "general", .name = "interval", .type = K_DURATION, .off = F(interval_s), .def = "1s", .min = 0.05, .max = 3600, .doc = "tick length: one snapshot and one policy run per tick" },
	{ .section = "general", .name = "cgroup", .type = K_STR, .off = F(cgroup), .def = "edge/core", .doc = "the core's cgroup (created, or adopted when it exists)" },
	{ .section = "general", .name = "socket", .type = K_STR, .off = F(socket), .def = "/run/edgectl/supervise.sock", .doc = "supervise's Unix socket (/v1/snapshot, /v1/stream, /metrics)" },
	{ .section = "general", .name = "audit_log", .type = K_STR, .off = F(audit_log), .def = "/run/edgectl/audit.jsonl", .doc = "every decision as one JSON line" },
	{ .section = "general", .name = "state", .type = K_STR, .off = F(state), .def = "", .doc = "revert state file (empty: $EDGECTL_STATE or /run/edgectl/state.json)" },
	{ .section = "general", .name = "health_timeout", .type = K_DURATION, .off = F(health_timeout_s), .def = "3s", .min = 0.1, .max = 600, .doc = "restart the core when /health fails this long" },
	{ .section = "general", .name = "start_grace", .type = K_DURATION, .off = F(start_grace_s), .def = "30s", .min = 0, .max = 3600, .doc = "after starting the core, /health failures count only after this (model loading)" },
	{ .section = "general", .name = "sustain_ticks", .type = K_INT, .off = F(sustain_ticks), .def = "2", .min = 1, .max = 600, .doc = "every policy: a condition must hold this many ticks in a row (hysteresis)" },
	{ .section = "general", .name = "affinity_syscall_hook", .type = K_BOOL, .off = F(affinity_syscall_hook), .def = "false", .doc = "no fexit: catch sched_setaffinity by a syscall hook (caller, result; slows every syscall), not by the core's CPU masks at switch-out" },
	{ .section = "general", .name = "history", .type = K_INT, .off = F(history), .def = "30", .min = 2, .max = 600, .doc = "snapshots kept for the policies" },

	{ .section = "threads", .name = "enabled", .type = K_BOOL, .off = F(threads_enabled), .def = "true", .doc = "run the thread-count policy" },
	{ .section = "threads", .name = "min", .type = K_INT, .off = F(threads_min), .def = "1", .min = 1, .max = 1024, .doc = "never fewer threads" },
	{ .section = "threads", .name = "max", .type = K_INT, .off = F(threads_max), .def = "0", .min = 0, .max = 1024, .doc = "never more threads (0: the CPUs the core may use)" },
	{ .section = "threads", .name = "queue_high", .type = K_DOUBLE, .off = F(queue_high), .def = "32", .min = 0, .max = 1e6, .doc = "grow when the request queue is longer than this" },
	{ .section = "threads", .name = "grow_factor", .type = K_DOUBLE, .off = F(grow_factor), .def = "2", .min = 1.01, .max = 16, .doc = "multiply the pool by this to grow" },
	{ .section = "threads", .name = "shrink_factor", .type = K_DOUBLE, .off = F(shrink_factor), .def = "0.75", .min = 0.01, .max = 0.99, .doc = "multiply the pool by this (rounded down) to shrink" },
	{ .section = "threads", .name = "mem_util_low", .type = K_DOUBLE, .off = F(mem_util_low_pct), .def = "40", .min = 0, .max = 100, .doc = "shrink when memory utilisation (%) is below this" },
	{ .section = "threads", .name = "idle", .type = K_DURATION, .off = F(idle_s), .def = "10s", .min = 0, .max = 86400, .doc = "shrink after no queue and no busy slot this long" },
	{ .section = "threads", .name = "cooldown", .type = K_DURATION, .off = F(threads_cooldown_s), .def = "10s", .min = 0, .max = 86400, .doc = "no new change this long after one" },
	{ .section = "threads", .name = "max_step", .type = K_INT, .off = F(threads_max_step), .def = "8", .min = 1, .max = 1024, .doc = "bound on one change, in threads" },

	{ .section = "affinity", .name = "enabled", .type = K_BOOL, .off = F(affinity_enabled), .def = "true", .doc = "run the affinity policy" },
	{ .section = "affinity", .name = "busy_other", .type = K_DOUBLE, .off = F(busy_other_pct), .def = "50", .min = 0, .max = 100, .doc = "avoid CPUs busier than this (%) with other work" },
	{ .section = "affinity", .name = "cooldown", .type = K_DURATION, .off = F(affinity_cooldown_s), .def = "10s", .min = 0, .max = 86400, .doc = "no new placement this long after one (drift re-pins are exempt)" },
	{ .section = "affinity", .name = "reapply", .type = K_BOOL, .off = F(affinity_reapply), .def = "true", .doc = "re-pin when a worker's mask drifts (hotplug, cpuset reset)" },

	{ .section = "bandwidth", .name = "enabled", .type = K_BOOL, .off = F(bandwidth_enabled), .def = "true", .doc = "run the CPU bandwidth policy" },
	{ .section = "bandwidth", .name = "ttft_p99_target", .type = K_DURATION, .off = F(ttft_p99_target_ms), .def = "500ms", .min = 0.0001, .max = 3600, .doc = "time-to-first-token p99 to hold" },
	{ .section = "bandwidth", .name = "hysteresis", .type = K_DOUBLE, .off = F(bw_hysteresis_pct), .def = "10", .min = 0, .max = 100, .doc = "act above target*(1+h%), relax below target*(1-h%)" },
	{ .section = "bandwidth", .name = "neighbours", .type = K_LIST, .off = F(neighbours), .def = "", .doc = "cgroups whose CPU is capped to protect the core (space or comma separated)" },
	{ .section = "bandwidth", .name = "neighbour_idle", .type = K_BOOL, .off = F(neighbour_idle), .def = "true", .doc = "first set a busy neighbour's cpu.idle (kernels >= 5.15: it then runs only on CPU time the core leaves, and yields at once), then cap its quota" },
	{ .section = "bandwidth", .name = "neighbour_min", .type = K_DOUBLE, .off = F(neighbour_min_pct), .def = "10", .min = 1, .max = 100000, .doc = "floor of a neighbour's quota, % of one CPU" },
	{ .section = "bandwidth", .name = "step", .type = K_DOUBLE, .off = F(bw_step_pct), .def = "25", .min = 1, .max = 90, .doc = "bound on one quota change, % of the current quota" },
	{ .section = "bandwidth", .name = "cooldown", .type = K_DURATION, .off = F(bw_cooldown_s), .def = "5s", .min = 0, .max = 86400, .doc = "no new change this long after one" },
	{ .section = "bandwidth", .name = "relax", .type = K_DURATION, .off = F(bw_relax_s), .def = "30s", .min = 0, .max = 86400, .doc = "give back (quota first, the core's weight last) only this long after the last tightening" },
	{ .section = "bandwidth", .name = "knee_hold", .type = K_DURATION, .off = F(bw_knee_hold_s), .def = "300s", .min = 0, .max = 86400, .doc = "a neighbour's quota under which the p99 went over target is not given back again for this long" },
	{ .section = "bandwidth", .name = "period_us", .type = K_I64, .off = F(period_us), .def = "100000", .min = 1000, .max = 1000000, .doc = "CFS period for quotas written" },
	{ .section = "bandwidth", .name = "core_weight", .type = K_I64, .off = F(core_weight), .def = "1000", .min = 1, .max = 10000, .doc = "cpu.weight given to the core while it misses its target (v1: shares = w*1024/100)" },

	{ .section = "bandwidth", .name = "realtime", .type = K_BOOL, .off = F(realtime), .def = "false", .doc = "core over target while a neighbour uses CPU: make its workers SCHED_FIFO before idling or capping neighbours; SCHED_OTHER again once none competes (root)" },
	{ .section = "bandwidth", .name = "realtime_priority", .type = K_INT, .off = F(realtime_priority), .def = "1", .min = 1, .max = 99, .doc = "the workers' SCHED_FIFO priority (1: below every kernel RT thread)" },
	{ .section = "bandwidth", .name = "realtime_settle", .type = K_DURATION, .off = F(realtime_settle_s), .def = "10s", .min = 0, .max = 3600, .doc = "after the workers went SCHED_FIFO, no neighbour is idled or capped this long (supervise's p99 spans 10 ticks)" },
	{ .section = "bandwidth", .name = "realtime_max_busy", .type = K_DOUBLE, .off = F(realtime_max_busy_pct), .def = "50", .min = 1, .max = 100, .doc = "real-time only while the busiest worker runs under this % of the time; above it, back to SCHED_OTHER at once" },
	{ .section = "bandwidth", .name = "realtime_budget", .type = K_DOUBLE, .off = F(realtime_budget_pct), .def = "90", .min = 1, .max = 100, .doc = "v1 RT group scheduling: cpu.rt_runtime_us of the core's cgroup and ancestors, % of cpu.rt_period_us (at most the root's)" },

	{ .section = "tune", .name = "duration", .type = K_DURATION, .off = F(tune_duration_s), .def = "10s", .min = 0.2, .max = 86400, .doc = "profiling time of edgectl tune" },
	{ .section = "tune", .name = "headroom", .type = K_DOUBLE, .off = F(tune_headroom_pct), .def = "25", .min = 0, .max = 1000, .doc = "quota = measured p95 CPU use plus this %" },
	{ .section = "tune", .name = "active_thread", .type = K_DOUBLE, .off = F(tune_active_thread_pct), .def = "10", .min = 0, .max = 100, .doc = "a thread using more CPU (%) than this gets a CPU of its own" },
	{ .section = "tune", .name = "weight", .type = K_I64, .off = F(tune_weight), .def = "100", .min = 1, .max = 10000, .doc = "cpu.weight planned by tune (v1: shares = w*1024/100)" },
	{ .section = "tune", .name = "round", .type = K_DOUBLE, .off = F(tune_round_pct), .def = "5", .min = 0.1, .max = 100, .doc = "round the planned quota up to a multiple of this % of one CPU" },
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

int ccfg_parse_duration(const char *s, double *sec)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		*sec = v;
	else if (!strcmp(end, "ms"))
		*sec = v / 1000;
	else if (!strcmp(end, "us"))
		*sec = v / 1e6;
	else if (!strcmp(end, "m"))
		*sec = v * 60;
	else if (!strcmp(end, "h"))
		*sec = v * 3600;
	else
		return -EINVAL;
	return 0;
}

/* Set one key from text; msg gets the problem. */
static int set_key(struct ccfg *c, const struct key *k, const char *val, char *msg, size_t mlen)
{
	char *p = (char *)c + k->off, *end;
	double d;
	long long ll;

	switch (k->type) {
	case K_DOUBLE:
		errno = 0;
		d = strtod(val, &end);
		if (errno || end == val || *end || !isfinite(d)) {
			seterr(msg, mlen, "'%s' is not a number", val);
			return -EINVAL;
		}
		goto range;
	case K_DURATION:
		if (ccfg_parse_duration(val, &d) < 0) {
			seterr(msg, mlen, "'%s' is not a duration (e.g. 500ms, 10s, 2m)", val);
			return -EINVAL;
		}
		/* the ttft target is kept in ms */
		if (k->off == F(ttft_p99_target_ms)) {
			if (d < k->min || d > k->max) {
				seterr(msg, mlen, "'%s' is outside %g..%g s", val, k->min, k->max);
				return -EINVAL;
			}
			*(double *)p = d * 1000;
			return 0;
		}
		goto range;
	case K_INT:
	case K_I64:
		errno = 0;
		ll = strtoll(val, &end, 10);
		if (errno || end == val || *end) {
			seterr(msg, mlen, "'%s' is not an integer", val);
			return -EINVAL;
		}
		if ((double)ll < k->min || (double)ll > k->max) {
			seterr(msg, mlen, "%lld is outside %g..%g", ll, k->min, k->max);
			return -EINVAL;
		}
		if (k->type == K_INT)
			*(int *)p = (int)ll;
		else
			*(int64_t *)p = ll;
		return 0;
	case K_BOOL:
		if (!strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on") || !strcmp(val, "1"))
			*(bool *)p = true;
		else if (!strcasecmp(val, "false") || !strcasecmp(val, "no") || !strcasecmp(val, "off") ||
			 !strcmp(val, "0"))
			*(bool *)p = false;
		else {
			seterr(msg, mlen, "'%s' is not a boolean (true/false)", val);
			return -EINVAL;
		}
		return 0;
	case K_STR:
		if (strlen(val) >= CCFG_STR) {
			seterr(msg, mlen, "value longer than %d bytes", CCFG_STR - 1);
			return -EINVAL;
		}
		snprintf(p, CCFG_STR, "%s", val);
		return 0;
	case K_LIST: {
		char tmp[CCFG_STR * CCFG_MAX_NEIGHBOURS], *sp = NULL, *t;
		int n = 0;

		snprintf(tmp, sizeof(tmp), "%s", val);
		for (t = strtok_r(tmp, " ,\t", &sp); t; t = strtok_r(NULL, " ,\t", &sp)) {
			if (n == CCFG_MAX_NEIGHBOURS || strlen(t) >= CCFG_STR) {
				seterr(msg, mlen, "at most %d entries of under %d bytes", CCFG_MAX_NEIGHBOURS, CCFG_STR);
				return -EINVAL;
			}
			snprintf(c->neighbours[n++], CCFG_STR, "%s", t);
		}
		c->nneighbours = n;
		return 0;
	}
	}
	return -EINVAL;
range:
	if (d < k->min || d > k->max) {
		seterr(msg, mlen, "%g is outside %g..%g", d, k->min, k->max);
		return -EINVAL;
	}
	*(double *)p = d;
	return 0;
}

void ccfg_defaults(struct ccfg *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		set_key(c, &keys[i], keys[i].def, NULL, 0);
}

struct load_ctx {
	struct ccfg *c;
	char msg[512];
};

static int on_kv(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = user;

	if (lc->msg[0])
		return 0; /* keep the first error: inih goes on and reports the first line */
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char m[256];

		if (strcmp(keys[i].section, section) || strcmp(keys[i].name, name))
			continue;
		if (set_key(lc->c, &keys[i], value, m, sizeof(m)) < 0) {
			snprintf(lc->msg, sizeof(lc->msg), "[%s] %s: %s", section, name, m);
			return 0;
		}
		return 1;
	}
	if (!*section)
		snprintf(lc->msg, sizeof(lc->msg), "key '%s' outside any [section]", name);
	else
		snprintf(lc->msg, sizeof(lc->msg), "unknown key '%s' in [%s]", name, section);
	return 0;
}

int ccfg_load(struct ccfg *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx lc = { .c = c };
	int r = ini_parse(path, on_kv, &lc);

	if (r == -1) {
		seterr(err, errlen, "config %s: %s", path, strerror(errno ? errno : ENOENT));
		return -ENOENT;
	}
	if (r != 0) {
		seterr(err, errlen, "config %s:%d: %s", path, r, lc.msg[0] ? lc.msg : "syntax error");
		return -EINVAL;
	}
	if (c->threads_max && c->threads_max < c->threads_min) {
		seterr(err, errlen, "config %s: [threads] max %d is below min %d", path, c->threads_max, c->threads_min);
		return -EINVAL;
	}
	return 0;
}

void ccfg_describe(FILE *f)
{
	const char *sec = "";

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(sec, keys[i].section)) {
			sec = keys[i].section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		fprintf(f, "# %s\n%s = %s\n", keys[i].doc, keys[i].name, keys[i].def);
	}
}
