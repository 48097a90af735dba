/*
 * collect.c: the tick driver: resolves the target, runs the table of
 * collectors, and fills one snapshot per call.
 *
 * DESIGN
 * Sources are a const table of col_ops in a fixed order (bpf-sched before
 * procfs, so procfs knows whether it is needed; cgroup before psi, which adds
 * the cgroup's pressure). A source whose open fails stays in the table as
 * "not live" with its reason, reported in every snapshot's sources[]; the
 * rest of the profile is produced regardless.
 * The target is resolved once: a pid must exist under <root>/proc; a cgroup
 * must exist in at least one hierarchy found in <root>/proc/mounts (or at the
 * usual places when that file is absent). Cgroups on v1 controllers are
 * traced by their member pids (cgroup.procs of the cgroup and descendants,
 * refreshed every tick); on v2 by the cgroup's id and depth.
 */
#include "collectors/collect.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

static const struct col_ops *const sources[] = {
	&col_bpfsched_ops,
	&col_bpfevents_ops,
	&col_procfs_ops,
	&col_cgroup_ops,
	&col_psi_ops,
	&col_board_ops,
};
#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

struct coll {
	struct col_ctx ctx;
	void *state[NSOURCES];
	bool live[NSOURCES];
	char why[NSOURCES][SNAP_ERR_LEN];
	uint64_t seq;
	struct snap *scratch;
};

char *col_path(const struct col_ctx *ctx, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s", ctx->root);

	if (n < 0 || (size_t)n >= len) {
		buf[0] = 0;
		return buf;
	}
	va_start(ap, fmt);
	vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return buf;
}

static uint64_t now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- cgroup layout ----------------------------------------------------- */

struct layout {
	char v2[PATH_MAX];       /* mount point under root, "" if none */
	char cpu[PATH_MAX], cpuacct[PATH_MAX], mem[PATH_MAX];
};

static bool has_opt(const char *opts, const char *want)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (!strcmp(t, want))
			return true;
	return false;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static void find_layout(const struct col_ctx *ctx, struct layout *l)
{
	char path[PATH_MAX];
	FILE *f;

	memset(l, 0, sizeof(*l));
	f = fopen(col_path(ctx, path, sizeof(path), "/proc/mounts"), "re");
	if (f) {
		char line[1024];
		while (fgets(line, sizeof(line), f)) {
			char dev[256], mnt[512], type[64], opts[512];
			if (sscanf(line, "%255s %511s %63s %511s", dev, mnt, type, opts) != 4)
				continue;
			if (!strcmp(type, "cgroup2") && !l->v2[0])
				snprintf(l->v2, sizeof(l->v2), "%s%s", ctx->root, mnt);
			if (strcmp(type, "cgroup"))
				continue;
			if (has_opt(opts, "cpu") && !l->cpu[0])
				snprintf(l->cpu, sizeof(l->cpu), "%s%s", ctx->root, mnt);
			if (has_opt(opts, "cpuacct") && !l->cpuacct[0])
				snprintf(l->cpuacct, sizeof(l->cpuacct), "%s%s", ctx->root, mnt);
			if (has_opt(opts, "memory") && !l->mem[0])
				snprintf(l->mem, sizeof(l->mem), "%s%s", ctx->root, mnt);
		}
		fclose(f);
		return;
	}
	/* no mounts file (a bare fixture): the usual places */
	col_path(ctx, path, sizeof(path), "/sys/fs/cgroup/cgroup.controllers");
	if (!access(path, F_OK)) {
		col_path(ctx, l->v2, sizeof(l->v2), "/sys/fs/cgroup");
		return;
	}
	col_path(ctx, path, sizeof(path), "/sys/fs/cgroup/unified");
	if (is_dir(path))
		snprintf(l->v2, sizeof(l->v2), "%s", path);
	static const char *const cpu_names[] = { "cpu,cpuacct", "cpu" };
	for (size_t i = 0; i < 2 && !l->cpu[0]; i++) {
		col_path(ctx, path, sizeof(path), "/sys/fs/cgroup/%s", cpu_names[i]);
		if (is_dir(path))
			snprintf(l->cpu, sizeof(l->cpu), "%s", path);
	}
	static const char *const acct_names[] = { "cpu,cpuacct", "cpuacct" };
	for (size_t i = 0; i < 2 && !l->cpuacct[0]; i++) {
		col_path(ctx, path, sizeof(path), "/sys/fs/cgroup/%s", acct_names[i]);
		if (is_dir(path))
			snprintf(l->cpuacct, sizeof(l->cpuacct), "%s", path);
	}
	col_path(ctx, path, sizeof(path), "/sys/fs/cgroup/memory");
	if (is_dir(path))
		snprintf(l->mem, sizeof(l->mem), "%s", path);
}

static void join(char *out, size_t len, const char *mnt, const char *rel)
{
	if (!mnt[0]) {
		out[0] = 0;
		return;
	}
	snprintf(out, len, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
}

/* strip a mount point from an absolute cgroup path given by the user */
static const char *relative_to(const struct col_ctx *ctx, const struct layout *l, const char *p)
{
	const char *mnts[] = { l->cpu, l->cpuacct, l->mem, l->v2 };
	size_t rl = strlen(ctx->root);

	for (size_t i = 0; i < 4; i++) {
		const char *m = mnts[i];
		if (!m[0])
			continue;
		/* the mount as the user sees it: without the sysroot */
		const char *live = m + (strncmp(m, ctx->root, rl) ? 0 : rl);
		size_t ml = strlen(live);
		if (!strncmp(p, live, ml) && (p[ml] == '/' || !p[ml]))
			return p[ml] ? p + ml : "/";
		ml = strlen(m);
		if (!strncmp(p, m, ml) && (p[ml] == '/' || !p[ml]))
			return p[ml] ? p + ml : "/";
	}
	return p;
}

static int cg_level(const char *rel)
{
	int n = 0;

	for (const char *p = rel; *p; p++)
		if (*p == '/' && p[1] && p[1] != '/')
			n++;
	return n;
}

static int resolve_cgroup(struct col_ctx *ctx, const struct layout *l, const char *given,
			  char *err, size_t errlen)
{
	struct col_target *t = &ctx->target;
	char rel[SNAP_PATH_LEN];
	const char *r = relative_to(ctx, l, given);

	if (r[0] != '/') {
		snprintf(err, errlen, "cgroup %s: not an absolute path (want /a/b below the hierarchy root)", given);
		return -EINVAL;
	}
	snprintf(rel, sizeof(rel), "%s", r);
	size_t n = strlen(rel);
	while (n > 1 && rel[n - 1] == '/')
		rel[--n] = 0;
	if (strstr(rel, "/..")) {
		snprintf(err, errlen, "cgroup %s: '..' is not allowed", given);
		return -EINVAL;
	}
	snprintf(t->cgroup, sizeof(t->cgroup), "%s", rel);
	join(t->cpu_dir, sizeof(t->cpu_dir), l->cpu, rel);
	join(t->cpuacct_dir, sizeof(t->cpuacct_dir), l->cpuacct, rel);
	join(t->mem_dir, sizeof(t->mem_dir), l->mem, rel);
	join(t->v2_dir, sizeof(t->v2_dir), l->v2, rel);
	if (t->cpu_dir[0] && !is_dir(t->cpu_dir))
		t->cpu_dir[0] = 0;
	if (t->cpuacct_dir[0] && !is_dir(t->cpuacct_dir))
		t->cpuacct_dir[0] = 0;
	if (t->mem_dir[0] && !is_dir(t->mem_dir))
		t->mem_dir[0] = 0;
	if (t->v2_dir[0] && !is_dir(t->v2_dir))
		t->v2_dir[0] = 0;
	if (t->cpu_dir[0] || t->mem_dir[0] || t->cpuacct_dir[0]) {
		t->cgver = SNAP_CG_V1;
		snprintf(t->procs_dir, sizeof(t->procs_dir), "%s",
			 t->cpu_dir[0] ? t->cpu_dir : t->mem_dir[0] ? t->mem_dir : t->cpuacct_dir);
	} else if (t->v2_dir[0]) {
		struct stat st;
		t->cgver = SNAP_CG_V2;
		snprintf(t->procs_dir, sizeof(t->procs_dir), "%s", t->v2_dir);
		if (!stat(t->v2_dir, &st))
			t->cgid = (uint64_t)st.st_ino;
		t->cg_level = cg_level(rel);
	} else {
		snprintf(err, errlen, "cgroup %s: no such cgroup", given);
		return -ENOENT;
	}
	return 0;
}

/* the cgroup a pid lives in, from <root>/proc/PID/cgroup */
static void resolve_pid_cgroup(struct col_ctx *ctx, const struct layout *l)
{
	struct col_target *t = &ctx->target;
	char path[PATH_MAX], text[4096], v2rel[SNAP_PATH_LEN] = "", cpurel[SNAP_PATH_LEN] = "",
		acctrel[SNAP_PATH_LEN] = "", memrel[SNAP_PATH_LEN] = "";

	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%d/cgroup", t->pid), text, sizeof(text)) < 0)
		return;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *ctrls = c1 + 1, *p = c2 + 1;
		if (!*ctrls)
			snprintf(v2rel, sizeof(v2rel), "%s", p);
		if (has_opt(ctrls, "cpu"))
			snprintf(cpurel, sizeof(cpurel), "%s", p);
		if (has_opt(ctrls, "cpuacct"))
			snprintf(acctrel, sizeof(acctrel), "%s", p);
		if (has_opt(ctrls, "memory"))
			snprintf(memrel, sizeof(memrel), "%s", p);
	}
	if (l->cpu[0] || l->mem[0]) {
		t->cgver = SNAP_CG_V1;
		snprintf(t->cgroup, sizeof(t->cgroup), "%s", cpurel[0] ? cpurel : memrel);
		join(t->cpu_dir, sizeof(t->cpu_dir), l->cpu, cpurel[0] ? cpurel : "/");
		join(t->cpuacct_dir, sizeof(t->cpuacct_dir), l->cpuacct, acctrel[0] ? acctrel : "/");
		join(t->mem_dir, sizeof(t->mem_dir), l->mem, memrel[0] ? memrel : "/");
	} else if (l->v2[0] && v2rel[0]) {
		struct stat st;
		t->cgver = SNAP_CG_V2;
		snprintf(t->cgroup, sizeof(t->cgroup), "%s", v2rel);
		join(t->v2_dir, sizeof(t->v2_dir), l->v2, v2rel);
		if (!stat(t->v2_dir, &st))
			t->cgid = (uint64_t)st.st_ino;
		t->cg_level = cg_level(v2rel);
	}
}

/* ---- pid set ------------------------------------------------------------ */

static void pids_add(struct col_ctx *ctx, int32_t pid)
{
	if (ctx->npids == ctx->pids_cap) {
		size_t cap = ctx->pids_cap ? ctx->pids_cap * 2 : 64;
		int32_t *p = realloc(ctx->pids, cap * sizeof(*p));
		if (!p)
			return; /* keep what we have: the set is a best effort per tick */
		ctx->pids = p;
		ctx->pids_cap = cap;
	}
	ctx->pids[ctx->npids++] = pid;
}

static void read_procs(struct col_ctx *ctx, const char *dir, int depth)
{
	char path[PATH_MAX];
	FILE *f;
	DIR *d;
	struct dirent *e;

	fsr_fmt(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (f) {
		long v;
		while (fscanf(f, "%ld", &v) == 1)
			pids_add(ctx, (int32_t)v);
		fclose(f);
	}
	if (depth > 16 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
			continue;
		fsr_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (is_dir(path))
			read_procs(ctx, path, depth + 1);
	}
	closedir(d);
}

static void refresh_pids(struct col_ctx *ctx)
{
	ctx->npids = 0;
	if (ctx->target.kind == SNAP_TARGET_PID)
		pids_add(ctx, ctx->target.pid);
	else if (ctx->target.kind == SNAP_TARGET_CGROUP && ctx->target.procs_dir[0])
		read_procs(ctx, ctx->target.procs_dir, 0);
}

/* ---- driver ---------------------------------------------------------------- */

static int fill(struct coll *c, struct snap *s)
{
	struct col_ctx *ctx = &c->ctx;

	snap_reset(s);
	ctx->now_mono = now_ns(CLOCK_MONOTONIC);
	s->mono_ns = ctx->now_mono;
	s->ts_ns = now_ns(CLOCK_REALTIME);
	s->interval_ns = col_delta(ctx->now_mono, ctx->prev_mono);
	s->seq = c->seq;
	gethostname(s->host, sizeof(s->host) - 1);
	s->target.kind = (uint8_t)ctx->target.kind;
	s->target.pid = ctx->target.pid;
	snprintf(s->target.cgroup, sizeof(s->target.cgroup), "%s",
		 ctx->target.kind == SNAP_TARGET_CGROUP ? ctx->target.cgroup : "");
	refresh_pids(ctx);
	snap_status_set(&s->cpus.st, SNAP_SRC_NONE, false, "no source for CPU time");
	snap_status_set(&s->threads.st, SNAP_SRC_NONE, false, "no source for threads");
	snap_status_set(&s->events.st, SNAP_SRC_NONE, false, "bpf-events is not live");
	snap_status_set(&s->core.st, SNAP_SRC_NONE, false, "filled by the supervisor");
	for (size_t i = 0; i < NSOURCES; i++) {
		if (c->live[i])
			sources[i]->sample(ctx, c->state[i], s);
	}
	s->nsources = 0;
	for (size_t i = 0; i < NSOURCES && i < SNAP_MAX_SOURCES; i++) {
		struct snap_source_info *si = &s->sources[s->nsources++];
		snprintf(si->name, sizeof(si->name), "%s", sources[i]->name);
		si->live = c->live[i];
		snprintf(si->why, sizeof(si->why), "%s", c->why[i]);
	}
	/* procfs is live but only a standby while bpf-sched is */
	ctx->prev_mono = ctx->now_mono;
	ctx->first = false;
	return 0;
}

int coll_new(const struct coll_opts *o, struct coll **out, char *err, size_t errlen)
{
	struct coll *c = calloc(1, sizeof(*c));
	struct layout l;
	const char *root;
	int ret = 0;

	*out = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->scratch = snap_new();
	if (!c->scratch) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	root = o->sysroot ? o->sysroot : getenv("EDGE_SYSROOT");
	if (!root || !*root)
		root = "/";
	snprintf(c->ctx.root, sizeof(c->ctx.root), "%s", root);
	size_t rl = strlen(c->ctx.root);
	while (rl > 0 && c->ctx.root[rl - 1] == '/')
		c->ctx.root[--rl] = 0;
	if (rl && !is_dir(c->ctx.root)) {
		snprintf(err, errlen, "sysroot %s: no such directory", root);
		ret = -ENOENT;
		goto fail;
	}
	c->ctx.live = rl == 0;
	c->ctx.no_bpf = o->no_bpf;
	c->ctx.no_events = o->no_events;
	c->ctx.no_affinity_events = o->no_affinity_events;
	c->ctx.affinity_fexit_only = o->affinity_fexit_only;
	c->ctx.affinity_syscalls = o->affinity_syscalls;
	c->ctx.btf_path = o->btf_path;
	c->ctx.clk_tck = sysconf(_SC_CLK_TCK);
	if (c->ctx.clk_tck <= 0)
		c->ctx.clk_tck = 100;
	c->ctx.target.kind = o->kind;
	find_layout(&c->ctx, &l);
	if (o->kind == SNAP_TARGET_PID) {
		char path[PATH_MAX];
		if (o->pid <= 0) {
			snprintf(err, errlen, "pid %d: not a valid pid", o->pid);
			ret = -EINVAL;
			goto fail;
		}
		if (access(col_path(&c->ctx, path, sizeof(path), "/proc/%d/stat", o->pid), F_OK)) {
			snprintf(err, errlen, "pid %d: no such process", o->pid);
			ret = -ENOENT;
			goto fail;
		}
		c->ctx.target.pid = o->pid;
		resolve_pid_cgroup(&c->ctx, &l);
	} else if (o->kind == SNAP_TARGET_CGROUP) {
		if (!o->cgroup || !*o->cgroup) {
			snprintf(err, errlen, "cgroup: empty path");
			ret = -EINVAL;
			goto fail;
		}
		ret = resolve_cgroup(&c->ctx, &l, o->cgroup, err, errlen);
		if (ret)
			goto fail;
	}
	c->ctx.first = true;
	c->ctx.prev_mono = now_ns(CLOCK_MONOTONIC);
	refresh_pids(&c->ctx);
	for (size_t i = 0; i < NSOURCES; i++) {
		int r = sources[i]->open(&c->ctx, &c->state[i], c->why[i], sizeof(c->why[i]));
		c->live[i] = r == 0;
	}
	/* the baseline: every source reads its counters once */
	fill(c, c->scratch);
	*out = c;
	return 0;
fail:
	coll_free(c);
	return ret;
}

void coll_free(struct coll *c)
{
	if (!c)
		return;
	/* close in reverse: bpf-events borrows bpf-sched's pid map */
	for (size_t i = NSOURCES; i-- > 0;)
		if (c->live[i])
			sources[i]->close(c->state[i]);
	free(c->ctx.pids);
	snap_free(c->scratch);
	free(c);
}

int coll_tick(struct coll *c, struct snap *s)
{
	int ret = fill(c, s);

	c->seq++;
	return ret;
}

const char *coll_sysroot(const struct coll *c)
{
	return c->ctx.root;
}
