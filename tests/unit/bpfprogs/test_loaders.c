/*
 * test_loaders.c: the BPF loaders against the running kernel, in both
 * attach modes: tp_btf (the default) and raw_tp (the fallback for kernels
 * whose tracepoints cannot take tp_btf programs, forced here). Each mode must
 * load, count this process's own context switches as the target, fill the
 * pid-set bitmap, and report an affinity change through the ring buffer.
 * Skips with the reason when not root, when there is no bpf() syscall (ENOSYS:
 * qemu-user, which runs the ARCH=arm64 unit tests, does not emulate it) or
 * when the kernel has no BTF.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

#include <cmocka.h>

#include "bpf/bpfutil.h"
#include "bpf/evtrace.h"
#include "bpf/schedtrace.h"

static bool can_run(void)
{
	if (geteuid() != 0) {
		print_message("not root: loading BPF programs needs CAP_BPF/CAP_PERFMON\n");
		return false;
	}
	/* the smallest bpf() call there is: a one-entry array map. Only ENOSYS
	 * skips; any other failure is left to the loader under test to report */
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	if (fd >= 0)
		close((int)fd);
	else if (errno == ENOSYS) {
		print_message("no bpf() syscall (%s): emulated (qemu-user) or a kernel without BPF\n",
			      strerror(errno));
		return false;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		print_message("no /sys/kernel/btf/vmlinux: CO-RE programs cannot load\n");
		return false;
	}
	return true;
}

/* one thread's record, as read from the threads map */
struct found {
	__u32 tid;
	bool seen;
	__u64 vol;
	__u64 rq_count;
	__u64 oncpu_ns;
};

static void on_thread(__u32 tid, const struct st_thread *t, void *arg)
{
	struct found *f = arg;

	if (tid == f->tid) {
		f->seen = true;
		f->vol = t->vol;
		f->rq_count = t->rq_count;
		f->oncpu_ns = t->oncpu_ns;
	}
}

/* The record of a thread just joined. pthread_join returns when the kernel
 * clears the thread's tid, before the thread's last switch-out writes its
 * final record; a thread preempted between the two is briefly in neither the
 * task list nor `exited` (CI under load, 2026-12-06), so read up to 200 ms. */
static void read_joined(struct schedtrace *st, struct found *g)
{
	for (int i = 0; i < 200; i++) {
		g->seen = false;
		g->oncpu_ns = 0;
		schedtrace_read_threads(st, on_thread, g);
		if (g->seen)
			return;
		usleep(1000);
	}
}

/* thread records in the per-CPU LRU hash even under tp_btf (what the loader
 * falls back to where task storage is refused) */
static bool force_lru;
/* task storage for every thread under tp_btf (no slot table) */
static bool no_slots;

static void sched_mode(bool raw, bool wakeups)
{
	struct schedtrace_opts o = { .filter = ST_FILTER_PIDS, .force_raw_tp = raw, .no_run_delay = wakeups,
				     .force_lru_threads = force_lru, .no_thread_slots = no_slots };
	char err[512] = "";
	struct schedtrace *st = schedtrace_open(&o, err, sizeof(err));

	if (!st)
		print_message("%s\n", err);
	assert_non_null(st);
	assert_string_equal(schedtrace_mode(st), raw ? "raw_tp" : "tp_btf");
	assert_string_equal(schedtrace_thread_store(st), raw || force_lru ? "per-CPU LRU hash"
							 : no_slots ? "task storage" : "slots + task storage");
	{
		/* open visited every CPU: each has seen a switch, so each knows
		 * what runs there (a lone spinner is not left uncounted) */
		struct st_cpu c0[64];
		__u64 m0[64];
		cpu_set_t all;
		int nc = schedtrace_read_cpus(st, c0, m0, 64);
		assert_true(nc >= 1);
		assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
		for (int i = 0; i < nc; i++)
			if (CPU_ISSET(i, &all))
				assert_true(c0[i].switches >= 1);
	}
	int32_t me = getpid();
	assert_int_equal(schedtrace_set_pids(st, &me, 1), 0);
	for (int i = 0; i < 50; i++)
		usleep(1000); /* 50 voluntary switches */
	struct found f = { .tid = (__u32)gettid() };
	assert_true(schedtrace_read_threads(st, on_thread, &f) >= 1);
	assert_true(f.vol >= 40);
	/* a run-queue wait per slice, whichever way it is measured */
	print_message("run-queue waits from %s: %llu for 50 sleeps\n",
		      schedtrace_run_delay(st) ? "sched_info" : "wakeup programs",
		      (unsigned long long)f.rq_count);
	if (wakeups)
		assert_false(schedtrace_run_delay(st));
	assert_true(f.rq_count >= 40);
	struct st_cpu cpus[64];
	__u64 mig[64];
	int n = schedtrace_read_cpus(st, cpus, mig, 64);
	assert_true(n >= 1);
	__u64 target = 0, sw = 0;
	for (int i = 0; i < n; i++) {
		target += cpus[i].busy_ns[ST_CLASS_TARGET];
		sw += cpus[i].switches;
	}
	assert_true(target > 0);
	assert_true(sw >= 50);
	/* the set replaced: we are no longer the target */
	int32_t other = 1;
	assert_int_equal(schedtrace_set_pids(st, &other, 1), 0);
	f.vol = 0;
	schedtrace_read_threads(st, on_thread, &f);
	__u64 before = f.vol;
	for (int i = 0; i < 20; i++)
		usleep(1000);
	f.vol = 0;
	schedtrace_read_threads(st, on_thread, &f);
	/* the slice running when the set changed is classified again at its
	 * switch-out (the filter generation moved): nothing after the change
	 * counts */
	assert_int_equal(f.vol, before);
	schedtrace_free(st);
}

static __u64 thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static void spin_cpu_ns(__u64 ns)
{
	__u64 t0 = thread_cpu_ns();

	while (thread_cpu_ns() - t0 < ns)
		;
}


/* the pid set given to schedtrace_open is in place before the programs
 * attach; a slice that began under the old set and ends under the new one
 * is charged by the new one */
static void sched_gen(bool raw)
{
	int32_t me = getpid(), other = 1;
	struct schedtrace_opts o = { .filter = ST_FILTER_PIDS, .force_raw_tp = raw, .pids = &me, .npids = 1 };
	char err[512] = "";
	struct schedtrace *st = schedtrace_open(&o, err, sizeof(err));
	struct found f = { .tid = (__u32)gettid() };

	if (!st)
		print_message("%s\n", err);
	assert_non_null(st);
	for (int i = 0; i < 10; i++)
		usleep(1000);
	assert_true(schedtrace_read_threads(st, on_thread, &f) >= 1);
	assert_true(f.seen); /* the set from the options, no set_pids call */
	schedtrace_free(st);

	o.pids = &other;
	st = schedtrace_open(&o, err, sizeof(err));
	assert_non_null(st);
	__u32 g0 = schedtrace_filter_gen(st);
	usleep(1000);
	spin_cpu_ns(5000000); /* a slice begins while we are not the target */
	assert_int_equal(schedtrace_set_pids(st, &me, 1), 0);
	assert_true(schedtrace_filter_gen(st) != g0);
	spin_cpu_ns(30000000); /* 30 ms of CPU as the target */
	usleep(1000);          /* switch out */
	f.seen = false;
	f.oncpu_ns = 0;
	schedtrace_read_threads(st, on_thread, &f);
	print_message("on-CPU after the set changed mid-slice: %llu ns (>= 30 ms wanted)\n",
		      (unsigned long long)f.oncpu_ns);
	assert_true(f.seen);
	assert_true(f.oncpu_ns >= 29000000ULL);
	schedtrace_free(st);
}

static volatile int stop_spin;

static void *spin_thread(void *arg)
{
	(void)arg;
	while (!stop_spin)
		;
	return NULL;
}

static void pin_to(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

struct hist_of {
	__u32 tid;
	__u64 hist[ST_RQ_BUCKETS];
};

static void on_thread_hist(__u32 tid, const struct st_thread *t, void *arg)
{
	struct hist_of *h = arg;

	if (tid == h->tid)
		memcpy(h->hist, t->rq_hist, sizeof(h->hist));
}

/* two spinners time-sharing one CPU: each waits about a scheduler slice
 * (milliseconds) before most of its slices, whichever way waits are
 * measured */
static void sched_contended(bool raw, bool wakeups)
{
	int32_t me = getpid();
	struct schedtrace_opts o = { .filter = ST_FILTER_PIDS, .force_raw_tp = raw, .no_run_delay = wakeups,
				     .pids = &me, .npids = 1 };
	char err[512] = "";
	struct schedtrace *st = schedtrace_open(&o, err, sizeof(err));
	struct hist_of h = { .tid = (__u32)gettid() };
	cpu_set_t old;
	pthread_attr_t a;
	pthread_t t;
	__u64 n = 0, ms = 0;

	if (!st)
		print_message("%s\n", err);
	assert_non_null(st);
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	pin_to(0);
	stop_spin = 0;
	pthread_attr_init(&a);
	{
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(0, &one);
		pthread_attr_setaffinity_np(&a, sizeof(one), &one);
	}
	assert_int_equal(pthread_create(&t, &a, spin_thread, NULL), 0);
	spin_cpu_ns(60000000); /* 60 ms of CPU, shared with the other spinner */
	stop_spin = 1;
	pthread_join(t, NULL);
	pthread_attr_destroy(&a);
	sched_setaffinity(0, sizeof(old), &old);
	usleep(1000);
	schedtrace_read_threads(st, on_thread_hist, &h);
	for (int b = 0; b < ST_RQ_BUCKETS; b++) {
		n += h.hist[b];
		if (b >= 10) /* >= 512 us */
			ms += h.hist[b];
	}
	print_message("%s, %s: %llu waits of the spinner, %llu of them >= 512 us\n", raw ? "raw_tp" : "tp_btf",
		      schedtrace_run_delay(st) ? "sched_info" : "wakeup programs", (unsigned long long)n,
		      (unsigned long long)ms);
	/* other work on the machine adds short waits; the slice-long ones must
	 * be there, and not a stray few */
	assert_true(ms >= 3);
	assert_true(ms * 5 >= n);
	schedtrace_free(st);
}

static void test_schedtrace_tp_btf(void **state)
{
	(void)state;
	if (!can_run())
		skip();
	sched_mode(false, false);
	sched_mode(false, true);
	force_lru = true;
	sched_mode(false, false);
	force_lru = false;
	no_slots = true;
	sched_mode(false, false);
	no_slots = false;
	sched_gen(false);
	sched_contended(false, false);
	sched_contended(false, true);
}

static void test_schedtrace_raw_tp(void **state)
{
	(void)state;
	if (!can_run())
		skip();
	sched_mode(true, false);
	sched_mode(true, true);
	sched_gen(true);
	sched_contended(true, false);
	sched_contended(true, true);
}

struct evseen {
	int n;
	__u32 pid;
	__u64 mask;
};

static void on_ev(const struct ev_rec *r, void *arg)
{
	struct evseen *e = arg;

	if (r->type == EV_AFFINITY && r->caller == (__u32)gettid()) {
		if (++e->n == 1)
			e->mask = r->mask[0]; /* the first call's */
		e->pid = r->pid;
	}
}

/* one affinity path: no_fexit / no_syscall_tp rule out the cheaper ones */
static void ev_path(bool raw, bool no_fexit, bool no_sctp)
{
	struct evtrace_opts o = { .filter = ST_FILTER_NONE, .pids_fd = -1, .force_raw_tp = raw,
				  .no_fexit = no_fexit, .no_syscall_tp = no_sctp };
	char err[512] = "";
	struct evtrace *ev = evtrace_open(&o, err, sizeof(err));
	cpu_set_t old, set;

	if (!ev)
		print_message("%s\n", err);
	assert_non_null(ev);
	print_message("evtrace mode: %s\n", evtrace_mode(ev));
	/* "tp_btf, fexit" where trampolines work */
	assert_true(!strncmp(evtrace_mode(ev), raw ? "raw_tp" : "tp_btf", 6));
	if (no_fexit)
		assert_null(strstr(evtrace_mode(ev), "fexit"));
	if (no_sctp)
		assert_null(strstr(evtrace_mode(ev), "syscall tracepoints"));
	if (no_fexit && no_sctp)
		assert_non_null(strstr(evtrace_mode(ev), "raw syscalls"));
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
	sched_setaffinity(0, sizeof(old), &old);
	struct evseen e = { 0 };
	assert_true(evtrace_poll(ev, on_ev, &e) >= 2);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.pid, (__u32)gettid()); /* pid 0 means the caller */
	assert_int_equal(e.mask, 1);              /* the mask asked for first */
	evtrace_free(ev);
}

/* no_affinity: the other programs load, sched_setaffinity goes unseen */
static void ev_no_affinity(bool raw)
{
	struct evtrace_opts o = { .filter = ST_FILTER_NONE, .pids_fd = -1, .force_raw_tp = raw, .no_affinity = true };
	char err[512] = "";
	struct evtrace *ev = evtrace_open(&o, err, sizeof(err));
	cpu_set_t old, set;
	struct evseen e = { 0 };

	if (!ev)
		print_message("%s\n", err);
	assert_non_null(ev);
	assert_non_null(strstr(evtrace_mode(ev), "no affinity"));
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
	sched_setaffinity(0, sizeof(old), &old);
	evtrace_poll(ev, on_ev, &e);
	assert_int_equal(e.n, 0);
	evtrace_free(ev);
}

/* affinity_fexit_only: fexit where the kernel has trampolines, else nothing */
static void ev_fexit_only(bool raw)
{
	struct evtrace_opts o = { .filter = ST_FILTER_NONE, .pids_fd = -1, .force_raw_tp = raw,
				  .affinity_fexit_only = true };
	char err[512] = "";
	struct evtrace *ev = evtrace_open(&o, err, sizeof(err));

	if (!ev)
		print_message("%s\n", err);
	assert_non_null(ev);
	print_message("evtrace mode, fexit only: %s\n", evtrace_mode(ev));
	assert_true(strstr(evtrace_mode(ev), "fexit") || strstr(evtrace_mode(ev), "no affinity"));
	evtrace_free(ev);
}

/* every affinity path this kernel offers, cheapest first, and none */
static void ev_mode(bool raw)
{
	ev_path(raw, false, false);
	ev_path(raw, true, false);
	ev_path(raw, true, true);
	ev_no_affinity(raw);
	ev_fexit_only(raw);
}

static void test_evtrace_tp_btf(void **state)
{
	(void)state;
	if (!can_run())
		skip();
	ev_mode(false);
}

static void test_evtrace_raw_tp(void **state)
{
	(void)state;
	if (!can_run())
		skip();
	ev_mode(true);
}

struct atsw {
	int n;
	__u64 mask[2], prev[2];
	__u32 flags;
};

static void on_atsw(const struct ev_rec *r, void *arg)
{
	struct atsw *a = arg;

	if (r->type != EV_AFFINITY || r->pid != (__u32)gettid())
		return;
	if (a->n < 2) {
		a->mask[a->n] = r->mask[0];
		a->prev[a->n] = r->prev_mask[0];
		a->flags |= r->flags;
	}
	a->n++;
}

static void *short_lived(void *arg)
{
	*(__u32 *)arg = (__u32)gettid();
	spin_cpu_ns(20000000ULL);
	return NULL;
}

/* system-wide: after 20 sleeps this thread's record is among the others */
static void expect_own_record(struct schedtrace *st)
{
	struct found f = { .tid = (__u32)gettid() };

	for (int i = 0; i < 20; i++)
		usleep(1000);
	assert_true(schedtrace_read_threads(st, on_thread, &f) >= 2);
	assert_true(f.seen);
	assert_true(f.vol >= 15);
}

/* tp_btf: thread records in slots + task storage, system-wide (read through the
 * iter/task program); a thread's final record outlives it for
 * exited_keep_ms; affinity changes seen at switch-out through schedtrace's
 * ring, drained by evtrace (no syscall hook) */
static void test_task_storage_and_switch_watch(void **state)
{
	struct schedtrace_opts so = { .filter = ST_FILTER_NONE, .exited_keep_ms = 300 };
	char err[512] = "";
	struct schedtrace *st;
	struct evtrace *ev;
	cpu_set_t old, set;
	pthread_t t;
	__u32 gone = 0;

	(void)state;
	if (!can_run())
		skip();
	st = schedtrace_open(&so, err, sizeof(err));
	if (!st)
		print_message("%s\n", err);
	assert_non_null(st);
	if (strcmp(schedtrace_mode(st), "tp_btf")) {
		schedtrace_free(st);
		print_message("SKIP: no tp_btf here: task storage and the switch watch are tp_btf only\n");
		skip();
	}
	assert_string_equal(schedtrace_thread_store(st), "slots + task storage");
	assert_true(schedtrace_affinity_ring_fd(st) >= 0);

	/* every task is traced: this thread's record is found among them */
	expect_own_record(st);

	/* a thread that ran 20 ms and exited: its final record is still read */
	assert_int_equal(pthread_create(&t, NULL, short_lived, &gone), 0);
	pthread_join(t, NULL);
	struct found g = { .tid = gone };
	read_joined(st, &g);
	print_message("exited thread %u: %llu ns on CPU in its final record\n", gone, (unsigned long long)g.oncpu_ns);
	assert_true(g.seen);
	assert_true(g.oncpu_ns >= 15000000ULL);
	/* a second read of the same tick sees it too */
	g.seen = false;
	schedtrace_read_threads(st, on_thread, &g);
	assert_true(g.seen);
	/* and it is forgotten exited_keep_ms after the first read */
	usleep(400000);
	g.seen = false;
	schedtrace_read_threads(st, on_thread, &g);
	assert_false(g.seen);

	/* the switch watch: where fexit is refused (no_fexit), affinity changes
	 * come from schedtrace's ring, not a syscall hook */
	struct evtrace_opts eo = { .filter = ST_FILTER_NONE, .pids_fd = -1, .no_fexit = true,
				   .aff_switch = true, .aff_ring_fd = schedtrace_affinity_ring_fd(st) };
	ev = evtrace_open(&eo, err, sizeof(err));
	if (!ev)
		print_message("%s\n", err);
	assert_non_null(ev);
	print_message("evtrace mode: %s\n", evtrace_mode(ev));
	assert_true(evtrace_affinity_at_switch(ev));
	assert_string_equal(evtrace_mode(ev), "tp_btf, affinity seen at switch-out");
	assert_int_equal(schedtrace_watch_affinity(st, true), 0);
	usleep(1000); /* a switch-out: the watch learns this thread's mask */
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	__u64 oldbits = 0;
	for (int c = 0; c < 64; c++)
		if (CPU_ISSET(c, &old))
			oldbits |= 1ULL << c;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
	usleep(1000);
	sched_setaffinity(0, sizeof(old), &old);
	usleep(1000);
	struct atsw a = { 0 };
	evtrace_poll(ev, on_atsw, &a);
	print_message("seen at switch-out: %d changes, 0x%llx -> 0x%llx -> 0x%llx\n", a.n,
		      (unsigned long long)a.prev[0], (unsigned long long)a.mask[0], (unsigned long long)a.mask[1]);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.flags, EV_F_AT_SWITCH);
	assert_int_equal(a.prev[0], oldbits);
	assert_int_equal(a.mask[0], 1);
	assert_int_equal(a.prev[1], 1);
	assert_int_equal(a.mask[1], oldbits);
	/* watch off: no more */
	assert_int_equal(schedtrace_watch_affinity(st, false), 0);
	sched_setaffinity(0, sizeof(set), &set);
	usleep(1000);
	sched_setaffinity(0, sizeof(old), &old);
	usleep(1000);
	a.n = 0;
	evtrace_poll(ev, on_atsw, &a);
	assert_int_equal(a.n, 0);
	evtrace_free(ev);

	/* the caller may prefer the syscall hook (caller and result) */
	eo.affinity_syscalls = true;
	ev = evtrace_open(&eo, err, sizeof(err));
	assert_non_null(ev);
	assert_false(evtrace_affinity_at_switch(ev));
	assert_null(strstr(evtrace_mode(ev), "switch-out"));
	evtrace_free(ev);
	/* supervise's choice (fexit_only): the watch, never a syscall hook */
	eo.affinity_fexit_only = true;
	ev = evtrace_open(&eo, err, sizeof(err));
	assert_non_null(ev);
	assert_true(evtrace_affinity_at_switch(ev));
	evtrace_free(ev);
	schedtrace_free(st);
}

/* a thread that runs 20 ms, then (told to) exits; its tid is published first */
struct held {
	__u32 tid;
	volatile int go;
};

static void *held_thread(void *arg)
{
	struct held *h = arg;

	__atomic_store_n(&h->tid, (__u32)gettid(), __ATOMIC_RELEASE);
	spin_cpu_ns(20000000ULL);
	usleep(1000); /* a switch-out with its record up to date */
	while (!__atomic_load_n(&h->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	return NULL;
}

/* the slot table under tp_btf, system-wide: a thread's record is in its
 * slot while it lives and the slot is free again after its last
 * switch-out, its final record kept; with one slot for the whole machine
 * (every thread but one colliding) each thread's record is still whole,
 * from task storage */
static void slots_case(unsigned nslots)
{
	struct schedtrace_opts so = { .filter = ST_FILTER_NONE, .exited_keep_ms = 300, .thread_slots = nslots };
	char err[512] = "";
	struct schedtrace *st = schedtrace_open(&so, err, sizeof(err));
	struct held h = { 0 };
	pthread_t t;
	__u64 tag = 0;

	if (!st)
		print_message("%s\n", err);
	assert_non_null(st);
	assert_string_equal(schedtrace_thread_store(st), "slots + task storage");
	expect_own_record(st);

	assert_int_equal(pthread_create(&t, NULL, held_thread, &h), 0);
	while (!__atomic_load_n(&h.tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	usleep(40000); /* its 20 ms of CPU and a switch-out */
	struct found g = { .tid = h.tid };
	schedtrace_read_threads(st, on_thread, &g);
	assert_true(g.seen);
	assert_true(g.oncpu_ns >= 15000000ULL);
	assert_int_equal(schedtrace_slot_holder(st, h.tid, &tag), 0);
	bool in_slot = tag == h.tid;
	print_message("%u slot(s): thread %u's slot held by %llu (%s)\n", nslots ? nslots : 4096, h.tid, (unsigned long long)tag,
		      in_slot ? "its own" : "another thread: its record is in task storage");
	/* one slot: this thread and the held one cannot both be in it, so
	 * the records checked here come from task storage for one of them */
	__atomic_store_n(&h.go, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	/* its final record, whichever store it was in */
	read_joined(st, &g);
	assert_true(g.seen);
	assert_true(g.oncpu_ns >= 15000000ULL);
	if (in_slot) {
		/* freed at its last switch-out (another thread mapping there
		 * may have claimed it since: then not by the dead thread) */
		for (int i = 0; i < 200; i++) { /* its last switch-out may still be ahead (read_joined) */
			assert_int_equal(schedtrace_slot_holder(st, h.tid, &tag), 0);
			if (tag != h.tid)
				break;
			usleep(1000);
		}
		print_message("after its exit the slot is held by %llu\n", (unsigned long long)tag);
		assert_true(tag != h.tid);
	}
	schedtrace_free(st);
}

static void test_thread_slots(void **state)
{
	(void)state;
	if (!can_run())
		skip();
	if (!bpfutil_probe_tp_btf("sched_switch")) {
		print_message("SKIP: no tp_btf here: the slot table is tp_btf only\n");
		skip();
	}
	slots_case(0);
	slots_case(1);
}

static void test_bad_btf(void **state)
{
	struct schedtrace_opts o = { .filter = ST_FILTER_NONE, .btf_path = "/nonexistent/btf" };
	char err[512] = "";

	(void)state;
	assert_null(schedtrace_open(&o, err, sizeof(err)));
	assert_string_equal(err, "kernel BTF /nonexistent/btf: No such file or directory (CO-RE programs need it)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedtrace_tp_btf),
		cmocka_unit_test(test_schedtrace_raw_tp),
		cmocka_unit_test(test_evtrace_tp_btf),
		cmocka_unit_test(test_evtrace_raw_tp),
		cmocka_unit_test(test_task_storage_and_switch_watch),
		cmocka_unit_test(test_thread_slots),
		cmocka_unit_test(test_bad_btf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
