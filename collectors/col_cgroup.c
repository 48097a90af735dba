/*
 * col_cgroup.c: the "cgroup" source: CPU, throttling and memory of the
 * target's cgroup, read from cgroupfs, v1 or v2, into one normalized form.
 *
 * v2 (one directory): cpu.stat (usage_usec, nr_periods, nr_throttled,
 *   throttled_usec), cpu.max ("max 100000" | "QUOTA PERIOD"), cpu.weight,
 *   memory.current / max / high / peak, memory.events (high, max, oom,
 *   oom_kill), cgroup.threads for the task count.
 * v1 (one directory per controller): cpuacct.usage (ns), cpu.stat
 *   (nr_periods, nr_throttled, throttled_time in ns), cpu.cfs_quota_us (-1 =
 *   none) and cpu.cfs_period_us, cpu.shares (mapped to a v2 weight with the
 *   kernel's formula 1 + (shares - 2) * 9999 / 262142), memory.usage_in_bytes,
 *   limit_in_bytes (>= 2^62 means none), max_usage_in_bytes, failcnt (as
 *   mem_events_max), memory.oom_control (oom_kill_disable, under_oom,
 *   oom_kill), tasks for the task count.
 * A missing or malformed file leaves its field zero and is named in the
 * group's err; the group stays valid when the cgroup itself is readable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

struct cstate {
	uint64_t prev_usage, prev_throttled, prev_nr_throttled;
	bool have_prev;
};

static int cg_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	struct cstate *c;

	*state = NULL;
	if (ctx->target.cgver == SNAP_CG_NONE) {
		fsr_fmt(why, whylen, "%s", ctx->target.kind == SNAP_TARGET_SYSTEM ?
			 "no cgroup target (system-wide profile)" : "the target's cgroup was not found");
		return -ENOENT;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		fsr_fmt(why, whylen, "out of memory");
		return -ENOMEM;
	}
	fsr_fmt(why, whylen, "cgroup %s", ctx->target.cgver == SNAP_CG_V2 ? "v2" : "v1");
	*state = c;
	return 0;
}

static void cg_close(void *state)
{
	free(state);
}

/* note a file problem in the group's err (first one wins, count the rest) */
struct notes {
	char first[SNAP_ERR_LEN];
	int n;
};

static void note(struct notes *nt, const char *path, int err)
{
	if (!nt->n++)
		fsr_fmt(nt->first, sizeof(nt->first), "%s: %s", path,
			 err == -EINVAL ? "malformed" : strerror(-err));
}

static void rd_u64(const char *dir, const char *file, uint64_t *v, struct notes *nt)
{
	char path[PATH_MAX];
	int r;

	if (!dir[0])
		return;
	fsr_fmt(path, sizeof(path), "%s/%s", dir, file);
	r = fsr_read_u64(path, v);
	if (r)
		note(nt, path, r);
}

/* "max" or a number */
static void rd_max(const char *dir, const char *file, uint64_t *v, struct notes *nt)
{
	char path[PATH_MAX], text[64];
	int r;

	fsr_fmt(path, sizeof(path), "%s/%s", dir, file);
	r = fsr_read_line(path, text, sizeof(text));
	if (r) {
		if (r != -ENOENT || strcmp(file, "memory.peak")) /* peak is >= 5.19 only */
			note(nt, path, r);
		return;
	}
	if (!strcmp(text, "max"))
		*v = SNAP_UNLIMITED;
	else if (fsr_parse_u64(text, v))
		note(nt, path, -EINVAL);
}

static void rd_text(const char *dir, const char *file, char *text, size_t len, struct notes *nt)
{
	char path[PATH_MAX];
	int r;

	text[0] = 0;
	if (!dir[0])
		return;
	fsr_fmt(path, sizeof(path), "%s/%s", dir, file);
	r = fsr_read(path, text, len);
	if (r < 0) {
		text[0] = 0;
		note(nt, path, r);
	}
}

static void kv(const char *text, const char *key, uint64_t *v, const char *dir, const char *file,
	       struct notes *nt)
{
	char path[PATH_MAX];

	if (!text[0])
		return;
	int r = fsr_kv_u64(text, key, v);
	if (r && r != -ENOENT) {
		fsr_fmt(path, sizeof(path), "%s/%s (%s)", dir, file, key);
		note(nt, path, r);
	}
}

static uint32_t count_lines(const char *dir, const char *file)
{
	char path[PATH_MAX];
	uint32_t n = 0;
	int ch;
	FILE *f;

	fsr_fmt(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static void sample_v2(const struct col_target *t, struct snap_cgroup *g, struct notes *nt)
{
	const char *d = t->v2_dir;
	char text[1024], path[PATH_MAX];
	uint64_t usec = 0, thr_usec = 0;

	rd_text(d, "cpu.stat", text, sizeof(text), nt);
	kv(text, "usage_usec", &usec, d, "cpu.stat", nt);
	kv(text, "nr_periods", &g->nr_periods, d, "cpu.stat", nt);
	kv(text, "nr_throttled", &g->nr_throttled, d, "cpu.stat", nt);
	kv(text, "throttled_usec", &thr_usec, d, "cpu.stat", nt);
	g->usage_ns = usec * 1000;
	g->throttled_ns = thr_usec * 1000;
	g->quota_us = SNAP_UNLIMITED;
	fsr_fmt(path, sizeof(path), "%s/cpu.max", d);
	if (!fsr_read_line(path, text, sizeof(text))) {
		char q[32];
		unsigned long long period = 0;
		if (sscanf(text, "%31s %llu", q, &period) == 2) {
			g->period_us = period;
			if (strcmp(q, "max") && fsr_parse_u64(q, &g->quota_us))
				note(nt, path, -EINVAL);
		} else {
			note(nt, path, -EINVAL);
		}
	}
	/* cpu.max and cpu.weight exist only where the cpu controller is enabled */
	fsr_fmt(path, sizeof(path), "%s/cpu.weight", d);
	if (!access(path, F_OK))
		rd_u64(d, "cpu.weight", &g->weight, nt);
	fsr_fmt(path, sizeof(path), "%s/memory.current", d);
	if (!access(path, F_OK)) {
		rd_u64(d, "memory.current", &g->mem_current_bytes, nt);
		rd_max(d, "memory.max", &g->mem_max_bytes, nt);
		rd_max(d, "memory.high", &g->mem_high_bytes, nt);
		rd_max(d, "memory.peak", &g->mem_peak_bytes, nt);
		rd_text(d, "memory.events", text, sizeof(text), nt);
		kv(text, "high", &g->mem_events_high, d, "memory.events", nt);
		kv(text, "max", &g->mem_events_max, d, "memory.events", nt);
		kv(text, "oom", &g->mem_events_oom, d, "memory.events", nt);
		kv(text, "oom_kill", &g->mem_events_oom_kill, d, "memory.events", nt);
	} else {
		g->mem_max_bytes = g->mem_high_bytes = SNAP_UNLIMITED;
	}
	g->nr_tasks = count_lines(d, "cgroup.threads");
	g->cg_id = t->cgid;
}

static void sample_v1(const struct col_target *t, struct snap_cgroup *g, struct notes *nt)
{
	char text[1024];
	int64_t quota = -1;
	char path[PATH_MAX];

	if (t->cpuacct_dir[0])
		rd_u64(t->cpuacct_dir, "cpuacct.usage", &g->usage_ns, nt);
	g->quota_us = SNAP_UNLIMITED;
	if (t->cpu_dir[0]) {
		rd_text(t->cpu_dir, "cpu.stat", text, sizeof(text), nt);
		kv(text, "nr_periods", &g->nr_periods, t->cpu_dir, "cpu.stat", nt);
		kv(text, "nr_throttled", &g->nr_throttled, t->cpu_dir, "cpu.stat", nt);
		kv(text, "throttled_time", &g->throttled_ns, t->cpu_dir, "cpu.stat", nt);
		fsr_fmt(path, sizeof(path), "%s/cpu.cfs_quota_us", t->cpu_dir);
		int r = fsr_read_i64(path, &quota);
		if (r)
			note(nt, path, r);
		else if (quota >= 0)
			g->quota_us = (uint64_t)quota;
		rd_u64(t->cpu_dir, "cpu.cfs_period_us", &g->period_us, nt);
		rd_u64(t->cpu_dir, "cpu.shares", &g->shares, nt);
		if (g->shares >= 2)
			g->weight = 1 + ((g->shares - 2) * 9999) / 262142;
		g->nr_tasks = count_lines(t->cpu_dir, "tasks");
	}
	g->mem_max_bytes = g->mem_high_bytes = SNAP_UNLIMITED;
	if (t->mem_dir[0]) {
		uint64_t limit = 0;
		rd_u64(t->mem_dir, "memory.usage_in_bytes", &g->mem_current_bytes, nt);
		rd_u64(t->mem_dir, "memory.limit_in_bytes", &limit, nt);
		if (limit && limit < (1ULL << 62))
			g->mem_max_bytes = limit;
		rd_u64(t->mem_dir, "memory.max_usage_in_bytes", &g->mem_peak_bytes, nt);
		rd_u64(t->mem_dir, "memory.failcnt", &g->mem_events_max, nt);
		rd_text(t->mem_dir, "memory.oom_control", text, sizeof(text), nt);
		uint64_t v = 0;
		kv(text, "oom_kill_disable", &v, t->mem_dir, "memory.oom_control", nt);
		g->oom_kill_disable = v != 0;
		v = 0;
		kv(text, "under_oom", &v, t->mem_dir, "memory.oom_control", nt);
		g->under_oom = v != 0;
		kv(text, "oom_kill", &g->mem_events_oom_kill, t->mem_dir, "memory.oom_control", nt);
		if (!t->cpu_dir[0])
			g->nr_tasks = count_lines(t->mem_dir, "tasks");
	}
}

static void cg_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	struct cstate *c = state;
	struct snap_cgroup *g = &s->cgroup;
	struct notes nt = { .n = 0 };
	uint64_t interval = col_delta(ctx->now_mono, ctx->prev_mono);
	const struct col_target *t = &ctx->target;

	g->version = (uint8_t)t->cgver;
	snprintf(g->path, sizeof(g->path), "%s", t->cgroup);
	const char *dir = t->cgver == SNAP_CG_V2 ? t->v2_dir : t->procs_dir;
	if (dir[0] && access(dir, F_OK)) {
		snap_status_set(&g->st, SNAP_SRC_CGROUPFS, false, "cgroup %s: gone", t->cgroup);
		return;
	}
	if (t->cgver == SNAP_CG_V2)
		sample_v2(t, g, &nt);
	else
		sample_v1(t, g, &nt);
	if (c->have_prev) {
		g->d_nr_throttled = col_delta(g->nr_throttled, c->prev_nr_throttled);
		g->d_throttled_ns = col_delta(g->throttled_ns, c->prev_throttled);
		if (interval)
			g->cpu_pct = 100.0 * (double)col_delta(g->usage_ns, c->prev_usage) / (double)interval;
	}
	c->prev_usage = g->usage_ns;
	c->prev_throttled = g->throttled_ns;
	c->prev_nr_throttled = g->nr_throttled;
	if (nt.n > 1)
		snprintf(nt.first + strlen(nt.first), sizeof(nt.first) - strlen(nt.first), " (+%d more)", nt.n - 1);
	snap_status_set(&g->st, SNAP_SRC_CGROUPFS, c->have_prev, "%s", c->have_prev ? nt.first : "baseline");
	c->have_prev = true;
}

const struct col_ops col_cgroup_ops = {
	.name = "cgroup",
	.open = cg_open,
	.sample = cg_sample,
	.close = cg_close,
};
