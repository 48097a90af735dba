/*
 * col_procfs.c: the "procfs" source, the fallback of bpf-sched when BPF is
 * not available (not root, no BTF, a fixture root, --no-bpf).
 *
 * DESIGN
 * CPUs: /proc/stat per-CPU jiffies; busy = all - idle - iowait, idle = idle +
 * iowait. Threads: /proc/PID/task/TID/stat (comm, utime+stime, the CPU it
 * last ran on) and schedstat (on-CPU ns, when the kernel has it), plus status
 * (voluntary / nonvoluntary switches) for pid and cgroup targets. A thread's
 * on-CPU time in the tick is charged to the CPU it last ran on: exact for
 * pinned threads, approximate for threads that move. Run-queue histograms
 * need BPF; procfs leaves them empty (rq_count 0).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

struct ptrec {
	int32_t tid, pid;
	int32_t cpu;
	uint64_t oncpu_ns, vol, invol;
	char comm[SNAP_COMM_LEN];
};

struct pstate {
	uint64_t prev_busy[SNAP_MAX_CPUS], prev_idle[SNAP_MAX_CPUS];
	bool prev_seen[SNAP_MAX_CPUS];
	struct ptrec *cur, *old;
	size_t ncur, nold, cap;
	bool have_prev;
	bool standby;
	char *buf;          /* /proc/stat text */
	size_t buflen;
};

static int pf_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	struct pstate *p = calloc(1, sizeof(*p));
	char path[PATH_MAX];

	*state = NULL;
	if (!p) {
		fsr_fmt(why, whylen, "out of memory");
		return -ENOMEM;
	}
	p->buflen = 64 * 1024;
	p->buf = malloc(p->buflen);
	p->cap = 4096;
	p->cur = calloc(p->cap, sizeof(*p->cur));
	p->old = calloc(p->cap, sizeof(*p->old));
	if (!p->buf || !p->cur || !p->old) {
		free(p->buf);
		free(p->cur);
		free(p->old);
		free(p);
		fsr_fmt(why, whylen, "out of memory");
		return -ENOMEM;
	}
	int r = fsr_read(col_path(ctx, path, sizeof(path), "/proc/stat"), p->buf, 16);
	if (r < 0) {
		fsr_fmt(why, whylen, "%s: %s", path, strerror(-r));
		free(p->buf);
		free(p->cur);
		free(p->old);
		free(p);
		return r;
	}
	p->standby = ctx->bpf_sched_live;
	fsr_fmt(why, whylen, "%s", p->standby ? "standby (bpf-sched is live)" : "fallback for bpf-sched");
	*state = p;
	return 0;
}

static void pf_close(void *state)
{
	struct pstate *p = state;

	if (!p)
		return;
	free(p->buf);
	free(p->cur);
	free(p->old);
	free(p);
}

static int cmp_tid(const void *a, const void *b)
{
	const struct ptrec *x = a, *y = b;

	return (x->tid > y->tid) - (x->tid < y->tid);
}

/* /proc/PID/task/TID/stat: "tid (comm) S ppid ..." -- comm may hold spaces
 * and parentheses, so fields are counted from the last ')' */
static int parse_stat(const char *text, struct ptrec *r, long clk_tck)
{
	const char *open = strchr(text, '('), *close = strrchr(text, ')');
	unsigned long long utime = 0, stime = 0;
	int cpu = -1;

	if (!open || !close || close < open)
		return -EINVAL;
	size_t cl = (size_t)(close - open - 1);
	if (cl >= sizeof(r->comm))
		cl = sizeof(r->comm) - 1;
	memcpy(r->comm, open + 1, cl);
	r->comm[cl] = 0;
	/* after ") ": field 3 is state; utime is field 14, stime 15, processor 39 */
	const char *p = close + 2;
	int field = 3;
	while (*p && field < 39) {
		if (field == 14)
			utime = strtoull(p, NULL, 10);
		else if (field == 15)
			stime = strtoull(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
		field++;
	}
	if (field == 39)
		cpu = atoi(p);
	r->cpu = cpu;
	r->oncpu_ns = (utime + stime) * (1000000000ULL / (unsigned long long)clk_tck);
	return 0;
}

static void read_task(struct col_ctx *ctx, struct pstate *p, int32_t pid, int32_t tid, bool detail)
{
	char path[PATH_MAX], text[1024];
	struct ptrec r = { .tid = tid, .pid = pid, .cpu = -1 };

	if (p->ncur >= p->cap)
		return;
	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid), text, sizeof(text)) < 0)
		return; /* gone */
	if (parse_stat(text, &r, ctx->clk_tck))
		return;
	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid), text, sizeof(text)) > 0) {
		unsigned long long run = 0;
		if (sscanf(text, "%llu", &run) == 1)
			r.oncpu_ns = run;
	}
	if (detail && fsr_read(col_path(ctx, path, sizeof(path), "/proc/%d/task/%d/status", pid, tid), text, sizeof(text)) > 0) {
		const char *v = strstr(text, "\nvoluntary_ctxt_switches:");
		const char *nv = strstr(text, "\nnonvoluntary_ctxt_switches:");
		if (v)
			r.vol = strtoull(v + 25, NULL, 10);
		if (nv)
			r.invol = strtoull(nv + 28, NULL, 10);
	}
	p->cur[p->ncur++] = r;
}

static void read_process(struct col_ctx *ctx, struct pstate *p, int32_t pid, bool detail)
{
	char path[PATH_MAX];
	DIR *d = opendir(col_path(ctx, path, sizeof(path), "/proc/%d/task", pid));
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (isdigit((unsigned char)e->d_name[0]))
			read_task(ctx, p, pid, (int32_t)atoi(e->d_name), detail);
	closedir(d);
}

static int cmp_thread_busy(const void *a, const void *b)
{
	const struct snap_thread *x = a, *y = b;

	return (x->oncpu_ns < y->oncpu_ns) - (x->oncpu_ns > y->oncpu_ns);
}

static void pf_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	struct pstate *p = state;
	uint64_t interval = col_delta(ctx->now_mono, ctx->prev_mono);
	uint64_t tick_ns = 1000000000ULL / (uint64_t)ctx->clk_tck;
	uint64_t target_on_cpu[SNAP_MAX_CPUS] = { 0 };
	uint64_t busy[SNAP_MAX_CPUS] = { 0 }, idle[SNAP_MAX_CPUS] = { 0 };
	bool seen[SNAP_MAX_CPUS] = { false };
	char path[PATH_MAX];
	int maxcpu = -1, r;

	if (p->standby)
		return;
	/* threads of the target (all processes for the system) */
	p->ncur = 0;
	if (ctx->target.kind == SNAP_TARGET_SYSTEM) {
		DIR *d = opendir(col_path(ctx, path, sizeof(path), "/proc"));
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (isdigit((unsigned char)e->d_name[0]))
				read_process(ctx, p, (int32_t)atoi(e->d_name), false);
		if (d)
			closedir(d);
	} else {
		for (size_t i = 0; i < ctx->npids; i++)
			read_process(ctx, p, ctx->pids[i], true);
	}
	qsort(p->cur, p->ncur, sizeof(*p->cur), cmp_tid);
	struct snap_thread *all = calloc(p->ncur ? p->ncur : 1, sizeof(*all));
	size_t nall = 0, j = 0;
	for (size_t i = 0; all && i < p->ncur && p->have_prev; i++) {
		const struct ptrec *c = &p->cur[i];
		while (j < p->nold && p->old[j].tid < c->tid)
			j++;
		const struct ptrec *o = j < p->nold && p->old[j].tid == c->tid ? &p->old[j] : NULL;
		struct snap_thread t = { .tid = c->tid, .pid = c->pid, .last_cpu = c->cpu };
		memcpy(t.comm, c->comm, sizeof(t.comm));
		t.oncpu_ns = col_delta(c->oncpu_ns, o ? o->oncpu_ns : 0);
		t.vol_switches = col_delta(c->vol, o ? o->vol : 0);
		t.invol_switches = col_delta(c->invol, o ? o->invol : 0);
		if (o && o->cpu != c->cpu)
			t.migrations = 1; /* at least one; procfs cannot count them */
		if (c->cpu >= 0 && c->cpu < SNAP_MAX_CPUS)
			target_on_cpu[c->cpu] += t.oncpu_ns;
		if (!t.oncpu_ns && !t.vol_switches && !t.invol_switches)
			continue;
		if (interval)
			t.cpu_pct = 100.0 * (double)t.oncpu_ns / (double)interval;
		all[nall++] = t;
	}
	if (all) {
		qsort(all, nall, sizeof(*all), cmp_thread_busy);
		s->threads.n = (uint32_t)(nall < SNAP_MAX_THREADS ? nall : SNAP_MAX_THREADS);
		memcpy(s->threads.t, all, s->threads.n * sizeof(*all));
		s->threads.dropped = (uint32_t)(nall - s->threads.n);
		free(all);
	}
	snap_status_set(&s->threads.st, SNAP_SRC_PROCFS, p->have_prev,
			p->have_prev ? "no run-queue latency without BPF" : "baseline");
	struct ptrec *tmp = p->old;
	p->old = p->cur;
	p->nold = p->ncur;
	p->cur = tmp;

	/* CPUs */
	r = fsr_read(col_path(ctx, path, sizeof(path), "/proc/stat"), p->buf, p->buflen);
	if (r < 0) {
		snap_status_set(&s->cpus.st, SNAP_SRC_PROCFS, false, "%s: %s", path, strerror(-r));
		p->have_prev = true;
		return;
	}
	for (char *save = NULL, *line = strtok_r(p->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long v[10] = { 0 };
		int cpu;
		if (strncmp(line, "cpu", 3) || !isdigit((unsigned char)line[3]))
			continue;
		int got = sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
				 &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
		if (got < 5 || cpu < 0 || cpu >= SNAP_MAX_CPUS)
			continue;
		/* guest time is already in user/nice */
		uint64_t total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
		idle[cpu] = (v[3] + v[4]) * tick_ns;
		busy[cpu] = (total - v[3] - v[4]) * tick_ns;
		seen[cpu] = true;
		if (cpu > maxcpu)
			maxcpu = cpu;
	}
	s->cpus.n = (uint32_t)(maxcpu + 1);
	for (int i = 0; i <= maxcpu; i++) {
		struct snap_cpu *o = &s->cpus.cpu[i];
		o->cpu = i;
		o->online = seen[i];
		if (!seen[i] || !p->prev_seen[i] || !p->have_prev)
			continue;
		uint64_t db = col_delta(busy[i], p->prev_busy[i]);
		uint64_t di = col_delta(idle[i], p->prev_idle[i]);
		uint64_t tgt = ctx->target.kind == SNAP_TARGET_SYSTEM ? db : target_on_cpu[i];
		/* jiffies and schedstat ns disagree by up to a tick: clamp */
		if (tgt > db)
			tgt = db;
		o->busy_target_ns = tgt;
		o->busy_other_ns = db - tgt;
		o->idle_ns = di;
		uint64_t span = db + di ? db + di : interval;
		if (span) {
			o->busy_pct = 100.0 * (double)db / (double)span;
			o->target_pct = 100.0 * (double)tgt / (double)span;
		}
	}
	memcpy(p->prev_busy, busy, sizeof(busy));
	memcpy(p->prev_idle, idle, sizeof(idle));
	memcpy(p->prev_seen, seen, sizeof(seen));
	snap_status_set(&s->cpus.st, SNAP_SRC_PROCFS, p->have_prev,
			p->have_prev ? "target split by each thread's last CPU" : "baseline");
	p->have_prev = true;
}

const struct col_ops col_procfs_ops = {
	.name = "procfs",
	.open = pf_open,
	.sample = pf_sample,
	.close = pf_close,
};
