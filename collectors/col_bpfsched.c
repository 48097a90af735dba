/*
 * col_bpfsched.c: the "bpf-sched" source: CPU busy/idle split into target
 * and other, per-thread on-CPU time, switches, run-queue latency and
 * migrations, from the per-CPU maps of bpf/schedtrace.
 *
 * DESIGN
 * The kernel keeps cumulative counters; this module keeps the previous
 * tick's values and reports deltas. Time on CPU is the scheduler's own
 * se.sum_exec_runtime, charged when a task is switched out; the slice running
 * on each CPU at the moment of reading is not charged yet, so it is added
 * here: the task's runtime now (/proc/TID/schedstat, first field) minus its
 * runtime when switched in (curr_rt0). A spinner that never switches is
 * still seen at 100 %. Idle is what is left of the interval, this source's
 * own from read to read (IRQ time, which sum_exec_runtime leaves out, counts
 * as idle here). Threads are read
 * from the map, sorted by tid, merged with the previous tick's sorted copy,
 * and the busiest SNAP_MAX_THREADS are kept.
 * The pid set of the filter is pushed to the kernel only when it changed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpf/schedtrace.h"
#include "collectors/colctx.h"
#include "collectors/fsread.h"

struct trec {
	__u32 tid;
	struct st_thread t;
};

struct bstate {
	struct schedtrace *st;
	int ncpus;
	struct st_cpu *cpus;       /* ncpus: this read */
	__u64 *mig;                /* ncpus */
	uint64_t (*prev_busy)[3];  /* ncpus, cumulative incl. the running slice */
	struct st_cpu *prev;       /* ncpus, previous read */
	struct st_cpu *chk;        /* ncpus, the read after the threads' */
	__u64 *prev_mig;
	struct trec *cur, *old;    /* sorted by tid */
	size_t ncur, nold, cap;
	int32_t *pids;             /* last set pushed, sorted */
	size_t npids;
	bool have_prev;
	uint64_t read_ns;          /* CLOCK_MONOTONIC of the previous read */
};

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_tid(const void *a, const void *b)
{
	const struct trec *x = a, *y = b;

	return (x->tid > y->tid) - (x->tid < y->tid);
}

static void bstate_free(struct bstate *b)
{
	if (!b)
		return;
	schedtrace_free(b->st);
	free(b->cpus);
	free(b->mig);
	free(b->prev_busy);
	free(b->prev);
	free(b->chk);
	free(b->prev_mig);
	free(b->cur);
	free(b->old);
	free(b->pids);
	free(b);
}

static int bs_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	struct schedtrace_opts o = { .filter = ST_FILTER_NONE };
	struct bstate *b;
	int ret = 0;

	*state = NULL;
	if (!ctx->live) {
		fsr_fmt(why, whylen, "sysroot %s is not the running system", ctx->root);
		return -ENOTSUP;
	}
	if (ctx->no_bpf) {
		fsr_fmt(why, whylen, "disabled (--no-bpf)");
		return -ECANCELED;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		fsr_fmt(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (ctx->target.kind == SNAP_TARGET_PID ||
	    (ctx->target.kind == SNAP_TARGET_CGROUP && ctx->target.cgver == SNAP_CG_V1)) {
		o.filter = ST_FILTER_PIDS;
	} else if (ctx->target.kind == SNAP_TARGET_CGROUP) {
		o.filter = ST_FILTER_CGROUP;
		o.cgid = ctx->target.cgid;
		o.cg_level = ctx->target.cg_level;
	}
	o.btf_path = ctx->btf_path;
	if (o.filter == ST_FILTER_PIDS && ctx->npids) {
		b->pids = malloc(ctx->npids * sizeof(*b->pids));
		if (!b->pids) {
			fsr_fmt(why, whylen, "out of memory");
			ret = -ENOMEM;
			goto fail;
		}
		memcpy(b->pids, ctx->pids, ctx->npids * sizeof(*b->pids));
		qsort(b->pids, ctx->npids, sizeof(*b->pids), cmp_i32);
		b->npids = ctx->npids;
		o.pids = b->pids;
		o.npids = b->npids;
	}
	b->st = schedtrace_open(&o, why, whylen);
	if (!b->st) {
		ret = -EIO;
		goto fail;
	}
	b->ncpus = schedtrace_ncpus(b->st);
	b->cap = 8192;
	b->cpus = calloc((size_t)b->ncpus, sizeof(*b->cpus));
	b->prev = calloc((size_t)b->ncpus, sizeof(*b->prev));
	b->chk = calloc((size_t)b->ncpus, sizeof(*b->chk));
	b->mig = calloc((size_t)b->ncpus, sizeof(*b->mig));
	b->prev_mig = calloc((size_t)b->ncpus, sizeof(*b->prev_mig));
	b->prev_busy = calloc((size_t)b->ncpus, sizeof(*b->prev_busy));
	b->cur = calloc(b->cap, sizeof(*b->cur));
	b->old = calloc(b->cap, sizeof(*b->old));
	if (!b->cpus || !b->prev || !b->chk || !b->mig || !b->prev_mig || !b->prev_busy || !b->cur || !b->old) {
		fsr_fmt(why, whylen, "out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	ctx->bpf_sched_live = true;
	ctx->sched = b->st;
	fsr_fmt(why, whylen, "%s, threads in %s%s", schedtrace_mode(b->st), schedtrace_thread_store(b->st),
		schedtrace_run_delay(b->st) ? "" : ", waits from wakeup programs");
	*state = b;
	return 0;
fail:
	bstate_free(b);
	return ret;
}

static void bs_close(void *state)
{
	bstate_free(state);
}

static void push_pids(struct col_ctx *ctx, struct bstate *b)
{
	int32_t *sorted;

	if (ctx->target.kind == SNAP_TARGET_SYSTEM ||
	    (ctx->target.kind == SNAP_TARGET_CGROUP && ctx->target.cgver == SNAP_CG_V2))
		return;
	sorted = malloc((ctx->npids ? ctx->npids : 1) * sizeof(*sorted));
	if (!sorted)
		return;
	memcpy(sorted, ctx->pids, ctx->npids * sizeof(*sorted));
	qsort(sorted, ctx->npids, sizeof(*sorted), cmp_i32);
	if (b->pids && b->npids == ctx->npids && !memcmp(sorted, b->pids, ctx->npids * sizeof(*sorted))) {
		free(sorted);
		return;
	}
	schedtrace_set_pids(b->st, sorted, ctx->npids);
	free(b->pids);
	b->pids = sorted;
	b->npids = ctx->npids;
}

/* se.sum_exec_runtime of a running task, from the first field of schedstat */
static int read_runtime(const struct col_ctx *ctx, __u32 tid, uint64_t *rt)
{
	char path[PATH_MAX], text[128];
	unsigned long long v;

	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%u/schedstat", tid), text, sizeof(text)) <= 0)
		return -ENOENT;
	if (sscanf(text, "%llu", &v) != 1)
		return -EINVAL;
	*rt = v;
	return 0;
}

/* the tgid of thread tid (/proc/TID/status), -1 if unknown */
static int32_t proc_tgid(const struct col_ctx *ctx, __u32 tid)
{
	char path[PATH_MAX], text[1024];
	const char *t;
	int32_t tgid;

	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%u/status", tid), text, sizeof(text)) <= 0)
		return -1;
	t = strstr(text, "\nTgid:");
	if (!t || sscanf(t + 6, "%d", &tgid) != 1)
		return -1;
	return tgid;
}

static void proc_comm(const struct col_ctx *ctx, __u32 tid, char *comm, size_t len)
{
	char path[PATH_MAX];

	if (fsr_read(col_path(ctx, path, sizeof(path), "/proc/%u/comm", tid), comm, len) <= 0)
		comm[0] = 0;
	comm[strcspn(comm, "\n")] = 0;
}

/* is tid a thread of a process in the pid set (b->pids, sorted)? */
static bool tid_in_set(const struct col_ctx *ctx, const struct bstate *b, __u32 tid)
{
	int32_t tgid;

	if (ctx->target.kind == SNAP_TARGET_SYSTEM)
		return true;
	tgid = proc_tgid(ctx, tid);
	return tgid > 0 && b->npids && bsearch(&tgid, b->pids, b->npids, sizeof(*b->pids), cmp_i32);
}

static void on_thread(__u32 tid, const struct st_thread *t, void *arg)
{
	struct bstate *b = arg;

	if (b->ncur >= b->cap)
		return;
	b->cur[b->ncur].tid = tid;
	b->cur[b->ncur].t = *t;
	b->ncur++;
}

static void pct_fill(uint64_t hist[SNAP_RQ_BUCKETS], uint64_t *p50, uint64_t *p99)
{
	*p50 = snap_hist_pct(hist, 50);
	*p99 = snap_hist_pct(hist, 99);
}

static int cmp_thread_busy(const void *a, const void *b)
{
	const struct snap_thread *x = a, *y = b;

	return (x->oncpu_ns < y->oncpu_ns) - (x->oncpu_ns > y->oncpu_ns);
}

static void bs_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	struct bstate *b = state;
	uint64_t interval = col_delta(ctx->now_mono, ctx->prev_mono), read_ns;
	struct timespec ts;
	uint64_t online = ~0ULL, pend[SNAP_MAX_CPUS];
	__u32 curr_cls[SNAP_MAX_CPUS];
	__u32 gen;
	char path[PATH_MAX], text[256];
	int n, nt;

	push_pids(ctx, b);
	gen = schedtrace_filter_gen(b->st);
	/* the interval is this source's own, from read to read: the tick's
	 * timestamp is taken before every source runs, and a collector delayed
	 * between the two (a loaded CPU) would see a short tick's worth of busy
	 * time over a full tick, then the rest clamped away */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	read_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (b->have_prev && read_ns > b->read_ns)
		interval = read_ns - b->read_ns;
	/* The CPUs, then the threads, as one consistent read: a target switched
	 * out in between has its slice in its thread record already, and the
	 * running slice added below (from the CPU's record read before) would
	 * count it twice in this tick and take it from the next (seen under
	 * emulation: a lone spinner's thread at 71-94 % in the tick after, its
	 * CPU at 99.8 %). So read the CPUs again after the threads and start
	 * over (at most 3 times) while a CPU that was running a target (or a
	 * task classified under an older pid set) has switched in between. */
	for (int tries = 0;; tries++) {
		bool same = true;
		n = schedtrace_read_cpus(b->st, b->cpus, b->mig, b->ncpus);
		if (n < 0) {
			snap_status_set(&s->cpus.st, SNAP_SRC_BPF, false, "bpf-sched: reading cpu_stats: %s", strerror(-n));
			return;
		}
		b->ncur = 0;
		nt = schedtrace_read_threads(b->st, on_thread, b);
		if (nt < 0 || tries == 2 || schedtrace_read_cpus(b->st, b->chk, NULL, b->ncpus) != n)
			break;
		for (int i = 0; i < n && same; i++)
			same = b->chk[i].switches == b->cpus[i].switches ||
			       (b->cpus[i].curr_class != ST_CLASS_TARGET && b->cpus[i].curr_gen == gen);
		if (same)
			break;
	}
	b->read_ns = read_ns;
	if (fsr_read(col_path(ctx, path, sizeof(path), "/sys/devices/system/cpu/online"), text, sizeof(text)) > 0)
		fsr_cpulist(text, &online);
	/* CPUs */
	s->cpus.n = 0;
	for (int i = 0; i < n && i < SNAP_MAX_CPUS; i++) {
		const struct st_cpu *c = &b->cpus[i];
		uint64_t cum[3];
		struct snap_cpu *o = &s->cpus.cpu[s->cpus.n++];
		for (int k = 0; k < 3; k++)
			cum[k] = c->busy_ns[k];
		pend[i] = 0;
		curr_cls[i] = ST_CLASS_IDLE;
		if (c->curr_class != ST_CLASS_IDLE && c->curr_tid) {
			uint64_t rt;
			__u32 cls = c->curr_class;
			if (!read_runtime(ctx, c->curr_tid, &rt) && rt > c->curr_rt0)
				pend[i] = rt - c->curr_rt0;
			/* classified under an older pid set: the kernel classifies it
			 * again at switch-out; do the same for the part now */
			if (c->curr_gen != gen)
				cls = tid_in_set(ctx, b, c->curr_tid) ? ST_CLASS_TARGET : ST_CLASS_OTHER;
			cum[cls == ST_CLASS_TARGET ? ST_CLASS_TARGET : ST_CLASS_OTHER] += pend[i];
			curr_cls[i] = cls;
		}
		o->cpu = i;
		o->online = (online >> i) & 1;
		if (b->have_prev) {
			const struct st_cpu *p = &b->prev[i];
			o->busy_other_ns = col_delta(cum[ST_CLASS_OTHER], b->prev_busy[i][ST_CLASS_OTHER]);
			o->busy_target_ns = col_delta(cum[ST_CLASS_TARGET], b->prev_busy[i][ST_CLASS_TARGET]);
			/* slices are charged at switch-out: a tick can hold a little of
			 * the previous one; clamp to the tick */
			if (o->busy_target_ns > interval)
				o->busy_target_ns = interval;
			if (o->busy_target_ns + o->busy_other_ns > interval)
				o->busy_other_ns = interval - o->busy_target_ns;
			o->idle_ns = interval - o->busy_target_ns - o->busy_other_ns;
			o->switches = col_delta(c->switches, p->switches);
			o->migrations_in = col_delta(b->mig[i], b->prev_mig[i]);
			o->rq_count = col_delta(c->rq_count, p->rq_count);
			for (int k = 0; k < SNAP_RQ_BUCKETS && k < ST_RQ_BUCKETS; k++)
				o->rq_hist[k] = col_delta(c->rq_hist[k], p->rq_hist[k]);
			pct_fill(o->rq_hist, &o->rq_p50_ns, &o->rq_p99_ns);
			s->cpus.switches += o->switches;
			s->cpus.migrations += col_delta(c->migrations, p->migrations);
			s->cpus.target_migrations += col_delta(c->target_migrations, p->target_migrations);
			if (interval) {
				o->busy_pct = 100.0 * (double)(o->busy_target_ns + o->busy_other_ns) / (double)interval;
				o->target_pct = 100.0 * (double)o->busy_target_ns / (double)interval;
				if (o->busy_pct > 100.0)
					o->busy_pct = 100.0;
				if (o->target_pct > 100.0)
					o->target_pct = 100.0;
			}
		}
		memcpy(b->prev_busy[i], cum, sizeof(cum));
	}
	memcpy(b->prev, b->cpus, (size_t)b->ncpus * sizeof(*b->prev));
	memcpy(b->prev_mig, b->mig, (size_t)b->ncpus * sizeof(*b->prev_mig));
	snap_status_set(&s->cpus.st, SNAP_SRC_BPF, b->have_prev, b->have_prev ? NULL : "baseline");

	/* threads (read above) */
	if (nt < 0) {
		snap_status_set(&s->threads.st, SNAP_SRC_BPF, false, "bpf-sched: reading threads: %s", strerror(-nt));
		b->have_prev = true;
		return;
	}
	/* the running slices of target threads */
	for (int i = 0; i < n && i < SNAP_MAX_CPUS; i++) {
		const struct st_cpu *c = &b->cpus[i];
		size_t k;
		if (curr_cls[i] != ST_CLASS_TARGET || !pend[i])
			continue;
		for (k = 0; k < b->ncur; k++)
			if (b->cur[k].tid == c->curr_tid)
				break;
		if (k == b->ncur) {
			/* running since before its first switch-out as a target: the
			 * kernel has no record of it yet */
			if (b->ncur >= b->cap)
				continue;
			memset(&b->cur[k], 0, sizeof(b->cur[k]));
			b->cur[k].tid = c->curr_tid;
			b->cur[k].t.tgid = (__u32)proc_tgid(ctx, c->curr_tid);
			proc_comm(ctx, c->curr_tid, b->cur[k].t.comm, sizeof(b->cur[k].t.comm));
			b->ncur++;
		}
		b->cur[k].t.oncpu_ns += pend[i];
	}
	qsort(b->cur, b->ncur, sizeof(*b->cur), cmp_tid);
	s->threads.n = 0;
	s->threads.dropped = 0;
	struct snap_thread *all = calloc(b->ncur ? b->ncur : 1, sizeof(*all));
	size_t nall = 0, j = 0;
	for (size_t i = 0; all && i < b->ncur && b->have_prev; i++) {
		const struct trec *c = &b->cur[i];
		while (j < b->nold && b->old[j].tid < c->tid)
			j++;
		const struct st_thread *p = j < b->nold && b->old[j].tid == c->tid ? &b->old[j].t : NULL;
		struct snap_thread t = { 0 };
		t.tid = (int32_t)c->tid;
		t.pid = (int32_t)c->t.tgid;
		memcpy(t.comm, c->t.comm, sizeof(t.comm) < sizeof(c->t.comm) ? sizeof(t.comm) : sizeof(c->t.comm));
		t.comm[SNAP_COMM_LEN - 1] = 0;
		t.oncpu_ns = col_delta(c->t.oncpu_ns, p ? p->oncpu_ns : 0);
		t.vol_switches = col_delta(c->t.vol, p ? p->vol : 0);
		t.invol_switches = col_delta(c->t.invol, p ? p->invol : 0);
		t.migrations = col_delta(c->t.migrations, p ? p->migrations : 0);
		t.rq_count = col_delta(c->t.rq_count, p ? p->rq_count : 0);
		for (int k = 0; k < SNAP_RQ_BUCKETS && k < ST_RQ_BUCKETS; k++)
			t.rq_hist[k] = col_delta(c->t.rq_hist[k], p ? p->rq_hist[k] : 0);
		t.last_cpu = c->t.last_cpu;
		if (!t.oncpu_ns && !t.rq_count && !t.vol_switches && !t.invol_switches)
			continue; /* nothing in this tick */
		pct_fill(t.rq_hist, &t.rq_p50_ns, &t.rq_p99_ns);
		if (interval)
			t.cpu_pct = 100.0 * (double)t.oncpu_ns / (double)interval;
		for (int k = 0; k < SNAP_RQ_BUCKETS; k++)
			s->threads.rq_hist[k] += t.rq_hist[k];
		s->threads.rq_count += t.rq_count;
		all[nall++] = t;
	}
	if (all) {
		qsort(all, nall, sizeof(*all), cmp_thread_busy);
		s->threads.n = (uint32_t)(nall < SNAP_MAX_THREADS ? nall : SNAP_MAX_THREADS);
		memcpy(s->threads.t, all, s->threads.n * sizeof(*all));
		s->threads.dropped = (uint32_t)(nall - s->threads.n);
		free(all);
	}
	pct_fill(s->threads.rq_hist, &s->threads.rq_p50_ns, &s->threads.rq_p99_ns);
	snap_status_set(&s->threads.st, SNAP_SRC_BPF, b->have_prev, b->have_prev ? NULL : "baseline");
	/* swap */
	struct trec *tmp = b->old;
	b->old = b->cur;
	b->nold = b->ncur;
	b->cur = tmp;
	b->have_prev = true;
}

const struct col_ops col_bpfsched_ops = {
	.name = "bpf-sched",
	.open = bs_open,
	.sample = bs_sample,
	.close = bs_close,
};
