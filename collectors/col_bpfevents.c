/*
 * col_bpfevents.c: the "bpf-events" source: affinity changes, exec, exit,
 * OOM victims and cgroup attaches from bpf/evtrace's ring buffer, drained
 * once per tick into the snapshot's events[] (the first SNAP_MAX_EVENTS of
 * the tick; the rest, and what the kernel could not queue, in dropped).
 * It shares bpf-sched's pid set, so both filter the same target.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/evtrace.h"
#include "bpf/schedtrace.h"
#include "collectors/colctx.h"
#include "collectors/fsread.h"

struct estate {
	struct evtrace *ev;
	struct col_ctx *ctx;
	struct snap *s;
	uint64_t lost;
	bool watching;             /* bpf-sched's affinity watch turned on by us */
};

static const uint8_t type_map[] = {
	[EV_AFFINITY] = SNAP_EV_AFFINITY,
	[EV_EXEC] = SNAP_EV_EXEC,
	[EV_EXIT] = SNAP_EV_EXIT,
	[EV_OOM] = SNAP_EV_OOM,
	[EV_CGROUP_ATTACH] = SNAP_EV_CGROUP_ATTACH,
};

static int ev_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	struct evtrace_opts o = { .filter = ST_FILTER_NONE, .pids_fd = -1 };
	struct estate *e;

	*state = NULL;
	if (!ctx->live) {
		fsr_fmt(why, whylen, "sysroot %s is not the running system", ctx->root);
		return -ENOTSUP;
	}
	if (ctx->no_bpf || ctx->no_events) {
		fsr_fmt(why, whylen, "disabled (%s)", ctx->no_bpf ? "--no-bpf" : "--no-events");
		return -ECANCELED;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		fsr_fmt(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (ctx->target.kind == SNAP_TARGET_PID ||
	    (ctx->target.kind == SNAP_TARGET_CGROUP && ctx->target.cgver == SNAP_CG_V1)) {
		o.filter = ST_FILTER_PIDS;
		if (ctx->sched)
			o.pids_fd = schedtrace_pids_fd(ctx->sched);
	} else if (ctx->target.kind == SNAP_TARGET_CGROUP) {
		o.filter = ST_FILTER_CGROUP;
		o.cgid = ctx->target.cgid;
		o.cg_level = ctx->target.cg_level;
	}
	o.btf_path = ctx->btf_path;
	o.no_affinity = ctx->no_affinity_events;
	o.affinity_fexit_only = ctx->affinity_fexit_only;
	o.affinity_syscalls = ctx->affinity_syscalls;
	o.aff_ring_fd = ctx->sched ? schedtrace_affinity_ring_fd(ctx->sched) : -1;
	o.aff_switch = o.aff_ring_fd >= 0;
	e->ev = evtrace_open(&o, why, whylen);
	if (!e->ev) {
		free(e);
		return -EIO;
	}
	/* affinity from bpf-sched's watch: on from now until close */
	if (evtrace_affinity_at_switch(e->ev))
		e->watching = !schedtrace_watch_affinity(ctx->sched, true);
	fsr_fmt(why, whylen, "%s%s", evtrace_mode(e->ev),
		evtrace_mounted_tracefs(e->ev) ? " (mounted tracefs at /sys/kernel/tracing)" : "");
	e->ctx = ctx;
	*state = e;
	return 0;
}

static void ev_close(void *state)
{
	struct estate *e = state;

	if (!e)
		return;
	if (e->watching && e->ctx->sched)
		schedtrace_watch_affinity(e->ctx->sched, false);
	evtrace_free(e->ev);
	free(e);
}

static void on_rec(const struct ev_rec *r, void *arg)
{
	struct estate *e = arg;
	struct snap_events *se = &e->s->events;
	struct snap_event *o;

	if (se->n >= SNAP_MAX_EVENTS) {
		se->dropped++;
		return;
	}
	if (r->type >= sizeof(type_map) || !type_map[r->type])
		return;
	o = &se->ev[se->n++];
	memset(o, 0, sizeof(*o));
	o->type = type_map[r->type];
	o->ts_ns = r->ts_ns;
	o->pid = (int32_t)r->pid;
	o->tgid = (int32_t)r->tgid;
	o->caller = (int32_t)r->caller;
	o->result = r->result;
	o->cpumask[0] = r->mask[0];
	o->prev_cpumask[0] = r->prev_mask[0];
	o->at_switch = (r->flags & EV_F_AT_SWITCH) != 0;
	o->cg_id = r->cg_id;
	o->total_vm_kb = r->total_vm_kb;
	o->anon_rss_kb = r->anon_rss_kb;
	o->file_rss_kb = r->file_rss_kb;
	o->shmem_rss_kb = r->shmem_rss_kb;
	o->pgtables_kb = r->pgtables_kb;
	o->oom_score_adj = r->oom_score_adj;
	memcpy(o->comm, r->comm, sizeof(o->comm));
	o->comm[SNAP_COMM_LEN - 1] = 0;
	memcpy(o->path, r->path, sizeof(o->path) < sizeof(r->path) ? sizeof(o->path) : sizeof(r->path));
	o->path[sizeof(o->path) - 1] = 0;
	if (!o->comm[0]) {
		/* kernels whose mark_victim passes only the pid: the victim is
		 * still there when we read, most of the time */
		char path[PATH_MAX];
		fsr_read_line(col_path(e->ctx, path, sizeof(path), "/proc/%d/comm", o->pid),
			      o->comm, sizeof(o->comm));
	}
}

static void ev_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	struct estate *e = state;
	int n;

	e->s = s;
	s->events.n = 0;
	s->events.dropped = 0;
	n = evtrace_poll(e->ev, on_rec, e);
	uint64_t lost = evtrace_lost(e->ev);
	s->events.dropped += (uint32_t)col_delta(lost, e->lost);
	e->lost = lost;
	if (n < 0)
		snap_status_set(&s->events.st, SNAP_SRC_BPF, false, "bpf-events: ring buffer: %s", strerror(-n));
	else
		snap_status_set(&s->events.st, SNAP_SRC_BPF, true, NULL);
	if (ctx->first)
		s->events.n = 0; /* events before the first tick are not part of it */
}

const struct col_ops col_bpfevents_ops = {
	.name = "bpf-events",
	.open = ev_open,
	.sample = ev_sample,
	.close = ev_close,
};
