/*
 * evtrace.c: loader of evtrace.bpf.c and reader of its ring buffer.
 *
 * open -> configure (filter, syscall number of sched_setaffinity for this
 * architecture, the shape of oom:mark_victim read from the kernel's BTF, page
 * size) -> share schedtrace's pid set -> pick tp_btf or raw_tp -> load ->
 * attach. Affinity changes go through fexit/sched_setaffinity when the
 * kernel has BPF trampolines; if that load or attach fails, through
 * schedtrace's cpus_mask watch where the caller passes its ring (no program
 * here: schedtrace compares a target thread's mask at each switch-out, and
 * this loader drains that ring with its own), unless the caller prefers the
 * syscall hooks (affinity_syscalls: they see the caller and the result).
 * Those are the tracepoints of that one syscall
 * (syscalls:sys_{enter,exit}_sched_setaffinity; tracefs is mounted for their
 * ids if it is not), and failing those the raw syscall tracepoints. Either
 * puts every syscall of the machine on the kernel's slower path. Records are drained once per tick with ring_buffer__consume, which
 * never blocks. Errors are returned with a message, never printed.
 */
#include "bpf/evtrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/bpfutil.h"
#include "bpf/evtrace.skel.h"

/* how sched_setaffinity calls are caught, cheapest first */
enum aff_how {
	AFF_FEXIT,       /* fexit/sched_setaffinity: BPF trampolines */
	AFF_SYSCALL_TP,  /* syscalls:sys_{enter,exit}_sched_setaffinity (tracefs) */
	AFF_RAW_SYSCALLS, /* raw_syscalls sys_enter/sys_exit: every syscall pays */
	AFF_NONE,        /* not watched (evtrace_opts.no_affinity) */
	AFF_SWITCH       /* schedtrace's cpus_mask watch at switch-out (its ring) */
};

struct evtrace {
	struct evtrace_bpf *skel;
	struct ring_buffer *rb;
	bool btf_mode;
	enum aff_how aff;          /* how sched_setaffinity is seen */
	bool mounted_tracefs;      /* this loader mounted tracefs for it */
	void (*cb)(const struct ev_rec *r, void *arg);
	void *cb_arg;
};

#if defined(__x86_64__)
#define NR_SETAFFINITY 203
#elif defined(__aarch64__)
#define NR_SETAFFINITY 122
#else
#define NR_SETAFFINITY -1
#endif

static void set_err(char *err, size_t errlen, const char *what, int e)
{
	char log[256];

	bpfutil_last_log(log, sizeof(log));
	snprintf(err, errlen, "bpf-events: %s: %s%s%s", what, strerror(e < 0 ? -e : e),
		 log[0] ? "; libbpf: " : "", log);
}

/* Does btf_trace_mark_victim take the task (>= 6.8) or only its pid? */
static bool oom_passes_task(const char *btf_path)
{
	struct btf *btf = btf_path ? btf__parse(btf_path, NULL) : btf__load_vmlinux_btf();
	bool task = true;
	int id;

	if (!btf)
		return true;
	id = btf__find_by_name_kind(btf, "btf_trace_mark_victim", BTF_KIND_TYPEDEF);
	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, (__u32)id);
		t = btf__type_by_id(btf, t->type);               /* pointer */
		if (t && btf_is_ptr(t))
			t = btf__type_by_id(btf, t->type);       /* func proto */
		if (t && btf_is_func_proto(t) && btf_vlen(t) >= 2) {
			const struct btf_param *p = btf_params(t);
			const struct btf_type *a = btf__type_by_id(btf, p[1].type);
			while (a && (btf_is_typedef(a) || btf_is_const(a) || btf_is_volatile(a)))
				a = btf__type_by_id(btf, a->type);
			task = a && btf_is_ptr(a);
		}
	}
	btf__free(btf);
	return task;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct evtrace *ev = ctx;

	if (size < sizeof(struct ev_rec))
		return 0;
	ev->cb((const struct ev_rec *)data, ev->cb_arg);
	return 0;
}

/* the per-syscall tracepoints are classic tracepoints: libbpf reads their
 * ids from tracefs. Where tracefs is not mounted (it may not be), mount it
 * at its standard place; false if they still cannot be found. */
static bool syscall_tp_ready(struct evtrace *ev)
{
	static const char *const ev_dirs[] = {
		"/sys/kernel/tracing/events/syscalls/sys_enter_sched_setaffinity",
		"/sys/kernel/debug/tracing/events/syscalls/sys_enter_sched_setaffinity",
	};

	for (size_t i = 0; i < sizeof(ev_dirs) / sizeof(ev_dirs[0]); i++)
		if (!access(ev_dirs[i], F_OK))
			return true;
	if (access("/sys/kernel/tracing", F_OK) || access("/sys/kernel/tracing/events", F_OK) == 0)
		return false; /* no mount point, or tracefs without syscall events */
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL))
		return false;
	ev->mounted_tracefs = true;
	return !access(ev_dirs[0], F_OK);
}

/* one attempt: affinity the way `aff` says, tp_btf or raw_tp for the rest */
static int try_open(struct evtrace *ev, const struct evtrace_opts *o, const char *btf,
		    enum aff_how aff, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	long page;
	int ret;

	oo.btf_custom_path = btf;
	ev->skel = evtrace_bpf__open_opts(&oo);
	if (!ev->skel) {
		ret = -errno;
		set_err(err, errlen, "opening the BPF object", ret);
		return ret;
	}
	ev->skel->rodata->filter_mode = o->filter;
	ev->skel->rodata->target_cgid = o->cgid;
	ev->skel->rodata->target_level = o->filter == ST_FILTER_CGROUP ? o->cg_level : 0;
	ev->skel->rodata->nr_setaffinity = NR_SETAFFINITY;
	ev->skel->rodata->oom_has_task = oom_passes_task(btf);
	page = sysconf(_SC_PAGESIZE);
	ev->skel->rodata->page_shift = (__u32)__builtin_ctzl(page > 0 ? (unsigned long)page : 4096UL);
	if (o->pids_fd >= 0) {
		ret = bpf_map__reuse_fd(ev->skel->maps.target_pids, o->pids_fd);
		if (ret) {
			set_err(err, errlen, "sharing the pid set", ret);
			return ret;
		}
	}
	{
		struct bpf_program *btfp[] = {
			ev->skel->progs.exec_btf, ev->skel->progs.exit_btf,
			ev->skel->progs.oom_btf, ev->skel->progs.attach_btf,
		};
		struct bpf_program *rawp[] = {
			ev->skel->progs.exec_raw, ev->skel->progs.exit_raw,
			ev->skel->progs.oom_raw, ev->skel->progs.attach_raw,
		};
		for (size_t i = 0; i < sizeof(btfp) / sizeof(btfp[0]); i++) {
			bpf_program__set_autoload(btfp[i], ev->btf_mode);
			bpf_program__set_autoload(rawp[i], !ev->btf_mode);
		}
		bool raw_sc = aff == AFF_RAW_SYSCALLS;
		bpf_program__set_autoload(ev->skel->progs.aff_fexit, aff == AFF_FEXIT);
		bpf_program__set_autoload(ev->skel->progs.aff_enter_tp, aff == AFF_SYSCALL_TP);
		bpf_program__set_autoload(ev->skel->progs.aff_exit_tp, aff == AFF_SYSCALL_TP);
		bpf_program__set_autoload(ev->skel->progs.sys_enter_btf, raw_sc && ev->btf_mode);
		bpf_program__set_autoload(ev->skel->progs.sys_exit_btf, raw_sc && ev->btf_mode);
		bpf_program__set_autoload(ev->skel->progs.sys_enter_raw, raw_sc && !ev->btf_mode);
		bpf_program__set_autoload(ev->skel->progs.sys_exit_raw, raw_sc && !ev->btf_mode);
	}
	ret = evtrace_bpf__load(ev->skel);
	if (ret) {
		set_err(err, errlen, "loading (verifier or BTF)", ret);
		return ret;
	}
	ret = evtrace_bpf__attach(ev->skel);
	if (ret) {
		set_err(err, errlen, ev->btf_mode ? "attaching tp_btf programs" : "attaching raw_tp programs", ret);
		return ret;
	}
	ev->aff = aff;
	return 0;
}

struct evtrace *evtrace_open(const struct evtrace_opts *o, char *err, size_t errlen)
{
	struct evtrace *ev = calloc(1, sizeof(*ev));
	const char *btf = NULL;
	int ret;

	bpfutil_quiet_libbpf();
	if (!ev) {
		snprintf(err, errlen, "bpf-events: out of memory");
		return NULL;
	}
	ret = bpfutil_btf_path(o->btf_path, &btf, err, errlen);
	if (ret)
		goto fail;
	ev->btf_mode = !o->force_raw_tp && !btf && bpfutil_probe_tp_btf("sys_enter");
	ret = -1;
	if (o->no_affinity) {
		ret = try_open(ev, o, btf, AFF_NONE, err, errlen);
		if (ret)
			goto fail;
	}
	/* cheapest first: fexit (BPF trampolines), then the two tracepoints of
	 * this one syscall, then the raw syscall tracepoints that every syscall
	 * of the machine runs through */
	if (ret && ev->btf_mode && !o->no_fexit) {
		ret = try_open(ev, o, btf, AFF_FEXIT, err, errlen);
		if (ret) {
			evtrace_bpf__destroy(ev->skel);
			ev->skel = NULL;
		}
	}
	if (ret && o->aff_switch && (!o->affinity_syscalls || o->affinity_fexit_only)) {
		ret = try_open(ev, o, btf, AFF_NONE, err, errlen);
		if (ret)
			goto fail;
		ev->aff = AFF_SWITCH;
	}
	if (ret && o->affinity_fexit_only) {
		ret = try_open(ev, o, btf, AFF_NONE, err, errlen);
		if (ret)
			goto fail;
	}
	if (ret && !o->no_syscall_tp && syscall_tp_ready(ev)) {
		ret = try_open(ev, o, btf, AFF_SYSCALL_TP, err, errlen);
		if (ret) {
			evtrace_bpf__destroy(ev->skel);
			ev->skel = NULL;
		}
	}
	if (ret) {
		ret = try_open(ev, o, btf, AFF_RAW_SYSCALLS, err, errlen);
		if (ret)
			goto fail;
	}
	ev->rb = ring_buffer__new(bpf_map__fd(ev->skel->maps.events), on_sample, ev, NULL);
	if (!ev->rb) {
		ret = -errno;
		set_err(err, errlen, "opening the ring buffer", ret);
		goto fail;
	}
	if (ev->aff == AFF_SWITCH) {
		ret = ring_buffer__add(ev->rb, o->aff_ring_fd, on_sample, ev);
		if (ret) {
			set_err(err, errlen, "adding schedtrace's affinity ring", ret);
			goto fail;
		}
	}
	return ev;
fail:
	evtrace_free(ev);
	return NULL;
}

void evtrace_free(struct evtrace *ev)
{
	if (!ev)
		return;
	ring_buffer__free(ev->rb);
	evtrace_bpf__destroy(ev->skel);
	free(ev);
}

bool evtrace_affinity_at_switch(const struct evtrace *ev)
{
	return ev->aff == AFF_SWITCH;
}

bool evtrace_mounted_tracefs(const struct evtrace *ev)
{
	return ev->mounted_tracefs;
}

const char *evtrace_mode(const struct evtrace *ev)
{
	static const char *const names[2][5] = {
		{ "raw_tp, fexit", "raw_tp, syscall tracepoints", "raw_tp, raw syscalls", "raw_tp, no affinity",
		  "raw_tp, affinity seen at switch-out" },
		{ "tp_btf, fexit", "tp_btf, syscall tracepoints", "tp_btf, raw syscalls", "tp_btf, no affinity",
		  "tp_btf, affinity seen at switch-out" },
	};

	return names[ev->btf_mode][ev->aff];
}

int evtrace_poll(struct evtrace *ev, void (*cb)(const struct ev_rec *r, void *arg), void *arg)
{
	int n;

	ev->cb = cb;
	ev->cb_arg = arg;
	n = ring_buffer__consume(ev->rb);
	return n;
}

__u64 evtrace_lost(struct evtrace *ev)
{
	int ncpus = libbpf_num_possible_cpus();
	__u32 zero = 0;
	__u64 sum = 0;

	if (ncpus <= 0)
		return 0;
	__u64 *v = calloc((size_t)ncpus, sizeof(*v));
	if (v && !bpf_map_lookup_elem(bpf_map__fd(ev->skel->maps.lost), &zero, v))
		for (int i = 0; i < ncpus; i++)
			sum += v[i];
	free(v);
	return sum;
}

int evtrace_syscall_stats(const struct evtrace *ev, __u64 *run_time_ns, __u64 *run_cnt)
{
	struct bpf_program *progs[] = {
		ev->skel->progs.sys_enter_btf, ev->skel->progs.sys_exit_btf,
		ev->skel->progs.sys_enter_raw, ev->skel->progs.sys_exit_raw,
		ev->skel->progs.aff_enter_tp, ev->skel->progs.aff_exit_tp,
		ev->skel->progs.aff_fexit,
	};

	bpfutil_progs_stats(progs, sizeof(progs) / sizeof(progs[0]), run_time_ns, run_cnt);
	return 0;
}
