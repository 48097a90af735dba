/*
 * schedtrace.c: loader of schedtrace.bpf.c and reader of its per-CPU maps.
 *
 * Order, as in bcc's libbpf-tools: open the skeleton (with a custom BTF path
 * if asked), configure rodata (filter mode, cgroup id and level) and map
 * sizes, pick tp_btf or raw_tp programs (tp_btf when the kernel can attach
 * one to sched_switch), load, attach. Any failure is returned as a negative
 * errno with a one-line message; libbpf's own log is captured, not printed.
 * Reading sums each map's per-CPU copies into one record per CPU / thread.
 */
#include "bpf/schedtrace.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/bpfutil.h"
#include "bpf/schedtrace.skel.h"

struct schedtrace {
	struct schedtrace_bpf *skel;
	bool btf_mode;
	int ncpus;
	struct st_cpu *cpubuf;     /* ncpus records: one lookup's per-CPU values */
	__u64 *migbuf;             /* ncpus */
	struct st_thread *thbuf;   /* ncpus */
	__u64 *pidbits;            /* target_pids mapped: bit tgid%64 of word tgid/64 */
	size_t npidwords;
	bool run_delay;            /* run-queue waits from the kernel's sched_info */
	int32_t *pids;             /* the set now in pidbits */
	size_t npids;
	bool task_storage;         /* thread records in thr_ts (tp_btf) */
	bool ts_refused;           /* an object with them did not load: LRU hash */
	bool slots;                /* and in thr_slot where a thread's slot is free */
	bool slots_refused;        /* an object with slots did not load */
	__u32 nslots;
	__u64 exited_keep_ns;
	unsigned char *iterbuf;    /* one read of dump_threads */
	size_t itercap;
	__u32 *gone;               /* tids of the exited records of this read */
	size_t ngone, gonecap;
};

/* words of the tgid bitmap: pid_max / 64, rounded up */
static size_t pid_words(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
	long max = 4194304;

	if (f) {
		if (fscanf(f, "%ld", &max) != 1 || max <= 0 || max > 4194304)
			max = 4194304;
		fclose(f);
	}
	return (size_t)(max + 63) / 64;
}

static void set_err(char *err, size_t errlen, const char *what, int e)
{
	char log[256];

	bpfutil_last_log(log, sizeof(log));
	snprintf(err, errlen, "bpf-sched: %s: %s%s%s", what, strerror(e < 0 ? -e : e),
		 log[0] ? "; libbpf: " : "", log);
}

/* A CPU's record learns who runs there at its first switch after attach; a
 * spinner alone on a CPU may not be switched out for seconds, and until then
 * its time is nobody's. So visit every online CPU once from a short-lived
 * thread (pinning itself to each in turn): each visit is a switch there,
 * charging the running task's slice and recording it. The caller's own
 * affinity is left alone. */
static void *prime_thread(void *arg)
{
	cpu_set_t all, one;

	(void)arg;
	if (sched_getaffinity(0, sizeof(all), &all))
		return NULL;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			sched_yield();
	}
	return NULL;
}

static void prime_cpus(void)
{
	pthread_t t;
	pthread_attr_t a;
	cpu_set_t all;

	/* the thread may use every online CPU, whatever the caller is pinned to */
	CPU_ZERO(&all);
	for (long c = 0, n = sysconf(_SC_NPROCESSORS_CONF); c < n && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &all);
	if (pthread_attr_init(&a))
		return;
	pthread_attr_setaffinity_np(&a, sizeof(all), &all);
	if (!pthread_create(&t, &a, prime_thread, NULL))
		pthread_join(t, NULL);
	pthread_attr_destroy(&a);
}

/* Does the kernel keep sched_info, and live? /proc/PID/schedstat exists
 * exactly with CONFIG_SCHED_INFO, and its second field (run_delay, ns) is
 * above zero for a task that has ever waited on a run queue, unless the
 * kernel skips the accounting (older kernels with delay accounting off).
 * init has waited; a process just started may not have yet. */
static unsigned long long run_delay_of(const char *path)
{
	unsigned long long run, delay = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &run, &delay) != 2)
		delay = 0;
	fclose(f);
	return delay;
}

static bool sched_info_live(void)
{
	return run_delay_of("/proc/1/schedstat") > 0 || run_delay_of("/proc/self/schedstat") > 0;
}

/* open, configure and load the skeleton into st->skel; 0 or negative errno
 * (err set) */
static int open_load(struct schedtrace *st, const struct schedtrace_opts *o, struct bpf_object_open_opts *oo,
		     const char *btf, char *err, size_t errlen)
{
	int ret;

	st->skel = schedtrace_bpf__open_opts(oo);
	if (!st->skel) {
		ret = -errno;
		set_err(err, errlen, "opening the BPF object", ret);
		return ret;
	}
	/* configure */
	st->skel->rodata->filter_mode = o->filter;
	st->skel->rodata->target_cgid = o->cgid;
	st->skel->rodata->target_level = o->filter == ST_FILTER_CGROUP ? o->cg_level : 0;
	st->skel->rodata->use_sched_info = st->run_delay;
	st->npidwords = pid_words();
	bpf_map__set_max_entries(st->skel->maps.target_pids, (__u32)st->npidwords);
	if (o->max_threads) {
		bpf_map__set_max_entries(st->skel->maps.threads, o->max_threads);
		bpf_map__set_max_entries(st->skel->maps.start, o->max_threads);
	}
	st->btf_mode = !o->force_raw_tp && !btf && bpfutil_probe_tp_btf("sched_switch");
	st->task_storage = st->btf_mode && !o->force_lru_threads && !st->ts_refused;
	st->skel->rodata->thr_task_storage = st->task_storage;
	st->slots = st->task_storage && !o->no_thread_slots && !st->slots_refused;
	st->skel->rodata->thr_slots = st->slots;
	st->skel->rodata->slot_mask = st->slots ? st->nslots - 1 : 0;
	if (st->slots)
		bpf_map__set_max_entries(st->skel->maps.thr_slot, st->nslots);
	/* the per-CPU LRU hash is preallocated (entries x CPUs x record): keep
	 * it small where task storage holds the threads */
	if (st->task_storage)
		bpf_map__set_max_entries(st->skel->maps.threads, 64);
	bpf_program__set_autoload(st->skel->progs.dump_threads, st->task_storage);
	{
		struct bpf_program *btfp[] = {
			st->skel->progs.switch_btf, st->skel->progs.wakeup_btf,
			st->skel->progs.wakeup_new_btf, st->skel->progs.migrate_btf,
			st->skel->progs.exec_btf,
		};
		struct bpf_program *rawp[] = {
			st->skel->progs.switch_raw, st->skel->progs.wakeup_raw,
			st->skel->progs.wakeup_new_raw, st->skel->progs.migrate_raw,
			st->skel->progs.exec_raw,
		};
		for (size_t i = 0; i < sizeof(btfp) / sizeof(btfp[0]); i++) {
			bool wakeup = i == 1 || i == 2;
			bpf_program__set_autoload(btfp[i], st->btf_mode && !(wakeup && st->run_delay));
			bpf_program__set_autoload(rawp[i], !st->btf_mode && !(wakeup && st->run_delay));
		}
	}
	ret = schedtrace_bpf__load(st->skel);
	if (ret)
		set_err(err, errlen, "loading (verifier or BTF)", ret);
	return ret;
}

struct schedtrace *schedtrace_open(const struct schedtrace_opts *o, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct schedtrace *st = calloc(1, sizeof(*st));
	const char *btf = NULL;
	int ret;

	bpfutil_quiet_libbpf();
	if (!st) {
		snprintf(err, errlen, "bpf-sched: out of memory");
		return NULL;
	}
	ret = bpfutil_btf_path(o->btf_path, &btf, err, errlen);
	if (ret)
		goto fail;
	oo.btf_custom_path = btf;
	st->ncpus = libbpf_num_possible_cpus();
	if (st->ncpus <= 0) {
		ret = st->ncpus ? st->ncpus : -EINVAL;
		set_err(err, errlen, "counting possible CPUs", ret);
		goto fail;
	}
	st->cpubuf = calloc((size_t)st->ncpus, sizeof(*st->cpubuf));
	st->migbuf = calloc((size_t)st->ncpus, sizeof(*st->migbuf));
	st->thbuf = calloc((size_t)st->ncpus, sizeof(*st->thbuf));
	if (!st->cpubuf || !st->migbuf || !st->thbuf) {
		ret = -ENOMEM;
		set_err(err, errlen, "allocating buffers", ret);
		goto fail;
	}
	st->exited_keep_ns = (o->exited_keep_ms ? o->exited_keep_ms : 2000) * 1000000ULL;
	/* Thread records in task storage and run-queue waits from sched_info
	 * where the kernel allows; an object that does not load is tried again
	 * without the first (kernels whose tracing programs may not use task
	 * storage, or without the iter/task target: the per-CPU LRU hash), then
	 * without the second too (the wakeup programs) */
	st->run_delay = !o->no_run_delay && sched_info_live();
	/* the slot table: a power of two, at most 2^20 */
	st->nslots = 1;
	while (st->nslots < (o->thread_slots ? o->thread_slots : 4096) && st->nslots < (1u << 20))
		st->nslots <<= 1;
	for (;;) {
		ret = open_load(st, o, &oo, btf, err, errlen);
		if (!ret)
			break;
		schedtrace_bpf__destroy(st->skel);
		st->skel = NULL;
		if (st->slots) /* no 64-bit compare-and-swap (before 5.12) */
			st->slots_refused = true;
		else if (st->task_storage)
			st->ts_refused = true;
		else if (st->run_delay)
			st->run_delay = false;
		else
			break;
	}
	if (ret)
		goto fail;
	st->pidbits = mmap(NULL, st->npidwords * sizeof(__u64), PROT_READ | PROT_WRITE, MAP_SHARED,
			   bpf_map__fd(st->skel->maps.target_pids), 0);
	if (st->pidbits == MAP_FAILED) {
		st->pidbits = NULL;
		ret = -errno;
		set_err(err, errlen, "mapping the pid set", ret);
		goto fail;
	}
	/* the initial pid set goes in before the programs run, so that no slice
	 * starts under an empty set */
	if (o->filter == ST_FILTER_PIDS && o->npids) {
		ret = schedtrace_set_pids(st, o->pids, o->npids);
		if (ret && ret != -ERANGE) { /* ERANGE: a pid over pid_max, left out */
			set_err(err, errlen, "setting the pid set", ret);
			goto fail;
		}
	}
	ret = schedtrace_bpf__attach(st->skel);
	if (ret) {
		set_err(err, errlen, st->btf_mode ? "attaching tp_btf programs" : "attaching raw_tp programs", ret);
		goto fail;
	}
	prime_cpus();
	return st;
fail:
	schedtrace_free(st);
	return NULL;
}

void schedtrace_free(struct schedtrace *st)
{
	if (!st)
		return;
	if (st->pidbits)
		munmap(st->pidbits, st->npidwords * sizeof(__u64));
	free(st->pids);
	schedtrace_bpf__destroy(st->skel);
	free(st->cpubuf);
	free(st->migbuf);
	free(st->thbuf);
	free(st->iterbuf);
	free(st->gone);
	free(st);
}

bool schedtrace_run_delay(const struct schedtrace *st)
{
	return st->run_delay;
}

const char *schedtrace_mode(const struct schedtrace *st)
{
	return st->btf_mode ? "tp_btf" : "raw_tp";
}

int schedtrace_pids_fd(const struct schedtrace *st)
{
	return bpf_map__fd(st->skel->maps.target_pids);
}

int schedtrace_ncpus(const struct schedtrace *st)
{
	return st->ncpus;
}

int schedtrace_set_pids(struct schedtrace *st, const int32_t *pids, size_t n)
{
	int32_t *copy = malloc((n ? n : 1) * sizeof(*copy));
	size_t limit = st->npidwords * 64;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, pids, n * sizeof(*copy));
	/* set the new bits first, then clear the ones no longer wanted: a task
	 * that stays in the set is never missing from the bitmap */
	for (size_t i = 0; i < n; i++) {
		if (pids[i] <= 0 || (size_t)pids[i] >= limit) {
			ret = -ERANGE;
			continue;
		}
		__atomic_or_fetch(&st->pidbits[pids[i] / 64], 1ULL << (pids[i] % 64), __ATOMIC_RELAXED);
	}
	for (size_t i = 0; i < st->npids; i++) {
		int32_t p = st->pids[i];
		bool keep = false;
		for (size_t k = 0; k < n && !keep; k++)
			keep = pids[k] == p;
		if (!keep && p > 0 && (size_t)p < limit)
			__atomic_and_fetch(&st->pidbits[p / 64], ~(1ULL << (p % 64)), __ATOMIC_RELAXED);
	}
	free(st->pids);
	st->pids = copy;
	st->npids = n;
	/* after the bits: a slice classified before this store is classified
	 * again at its switch-out */
	__atomic_store_n(&st->skel->bss->filter_gen, st->skel->bss->filter_gen + 1, __ATOMIC_RELEASE);
	return ret;
}

__u32 schedtrace_filter_gen(const struct schedtrace *st)
{
	return __atomic_load_n(&st->skel->bss->filter_gen, __ATOMIC_ACQUIRE);
}

int schedtrace_read_cpus(struct schedtrace *st, struct st_cpu *out, __u64 *mig_in, int n)
{
	__u32 zero = 0;
	int cfd = bpf_map__fd(st->skel->maps.cpu_stats);
	int mfd = bpf_map__fd(st->skel->maps.mig_in);
	int m = n < st->ncpus ? n : st->ncpus;

	if (bpf_map_lookup_elem(cfd, &zero, st->cpubuf))
		return -errno;
	for (int i = 0; i < m; i++)
		out[i] = st->cpubuf[i];
	for (int i = 0; i < m && mig_in; i++) {
		__u32 k = (__u32)i;
		mig_in[i] = 0;
		if (i >= ST_MAX_CPUS || bpf_map_lookup_elem(mfd, &k, st->migbuf))
			continue;
		for (int c = 0; c < st->ncpus; c++)
			mig_in[i] += st->migbuf[c];
	}
	return m;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return (x > y) - (x < y);
}

/* the final records of exited threads: cb for each, and its tid noted in
 * st->gone (sorted) so that a zombie's task storage is not returned twice.
 * The first read that returns one stamps it (seen_ns); once that is older
 * than exited_keep_ns it is deleted instead: every read of the tick that
 * first saw it sees it too, and a tick, however long, sees it at least once */
static int read_exited(struct schedtrace *st, void (*cb)(__u32 tid, const struct st_thread *t, void *arg),
		       void *arg)
{
	int fd = bpf_map__fd(st->skel->maps.exited), count = 0;
	__u64 now = mono_ns();
	__u32 key, next;
	void *cur = NULL;
	struct st_thread t;

	st->ngone = 0;
	while (!bpf_map_get_next_key(fd, cur, &next)) {
		key = next;
		cur = &key;
		if (bpf_map_lookup_elem(fd, &key, &t))
			continue;
		if (!t.seen_ns) {
			t.seen_ns = now;
			bpf_map_update_elem(fd, &key, &t, BPF_EXIST);
		} else if (now > t.seen_ns && now - t.seen_ns > st->exited_keep_ns) {
			bpf_map_delete_elem(fd, &key); /* the iteration goes on from the next key */
			continue;
		}
		if (st->ngone == st->gonecap) {
			size_t cap = st->gonecap ? st->gonecap * 2 : 64;
			__u32 *g = realloc(st->gone, cap * sizeof(*g));
			if (!g)
				return -ENOMEM;
			st->gone = g;
			st->gonecap = cap;
		}
		st->gone[st->ngone++] = key;
		cb(key, &t, arg);
		count++;
	}
	if (st->ngone > 1)
		qsort(st->gone, st->ngone, sizeof(*st->gone), cmp_u32);
	return count;
}

/* the live threads' task storage through the iter/task program: one read
 * of the iterator yields (u64 tid, struct st_thread) pairs */
static int read_task_storage(struct schedtrace *st,
			     void (*cb)(__u32 tid, const struct st_thread *t, void *arg), void *arg)
{
	const size_t rec = sizeof(__u64) + sizeof(struct st_thread);
	size_t len = 0;
	int fd, count, ret = 0;

	count = read_exited(st, cb, arg);
	if (count < 0)
		return count;
	fd = bpf_iter_create(bpf_link__fd(st->skel->links.dump_threads));
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (st->itercap - len < 4096) {
			size_t cap = st->itercap ? st->itercap * 2 : 64 * 1024;
			unsigned char *b = realloc(st->iterbuf, cap);
			if (!b) {
				ret = -ENOMEM;
				goto out;
			}
			st->iterbuf = b;
			st->itercap = cap;
		}
		n = read(fd, st->iterbuf + len, st->itercap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	for (size_t off = 0; off + rec <= len; off += rec) {
		__u64 tid;
		struct st_thread t;
		__u32 k;
		memcpy(&tid, st->iterbuf + off, sizeof(tid));
		memcpy(&t, st->iterbuf + off + sizeof(tid), sizeof(t));
		k = (__u32)tid;
		if (st->ngone && bsearch(&k, st->gone, st->ngone, sizeof(*st->gone), cmp_u32))
			continue; /* a zombie: its final record was returned above */
		cb(k, &t, arg);
		count++;
	}
	ret = count;
out:
	close(fd);
	return ret;
}

int schedtrace_read_threads(struct schedtrace *st,
			    void (*cb)(__u32 tid, const struct st_thread *t, void *arg), void *arg)
{
	int fd = bpf_map__fd(st->skel->maps.threads);
	__u32 key, next;
	void *cur = NULL;
	int count = 0;

	if (st->task_storage)
		return read_task_storage(st, cb, arg);
	while (!bpf_map_get_next_key(fd, cur, &next)) {
		key = next;
		cur = &key;
		if (bpf_map_lookup_elem(fd, &key, st->thbuf))
			continue; /* gone between the two calls */
		struct st_thread sum = st->thbuf[0];
		__u64 most = st->thbuf[0].oncpu_ns;
		sum.last_cpu = 0;
		for (int c = 1; c < st->ncpus; c++) {
			const struct st_thread *t = &st->thbuf[c];
			sum.oncpu_ns += t->oncpu_ns;
			sum.vol += t->vol;
			sum.invol += t->invol;
			sum.migrations += t->migrations;
			sum.rq_count += t->rq_count;
			for (int b = 0; b < ST_RQ_BUCKETS; b++)
				sum.rq_hist[b] += t->rq_hist[b];
			if (t->comm_ts > sum.comm_ts) {
				sum.comm_ts = t->comm_ts;
				sum.tgid = t->tgid;
				memcpy(sum.comm, t->comm, sizeof(sum.comm));
			}
			if (t->oncpu_ns > most) {
				most = t->oncpu_ns;
				sum.last_cpu = c; /* the CPU it ran on most */
			}
		}
		cb(key, &sum, arg);
		count++;
	}
	return count;
}

int schedtrace_slot_holder(struct schedtrace *st, __u32 tid, __u64 *holder)
{
	__u32 idx = tid & (st->nslots - 1);
	struct st_slot sl;

	if (!st->slots)
		return -EOPNOTSUPP;
	if (bpf_map_lookup_elem(bpf_map__fd(st->skel->maps.thr_slot), &idx, &sl))
		return -errno;
	*holder = sl.tid;
	return 0;
}

void schedtrace_forget_thread(struct schedtrace *st, __u32 tid)
{
	bpf_map_delete_elem(bpf_map__fd(st->skel->maps.threads), &tid);
	bpf_map_delete_elem(bpf_map__fd(st->skel->maps.exited), &tid);
}

const char *schedtrace_thread_store(const struct schedtrace *st)
{
	return st->slots ? "slots + task storage" : st->task_storage ? "task storage" : "per-CPU LRU hash";
}

int schedtrace_affinity_ring_fd(const struct schedtrace *st)
{
	return st->task_storage ? bpf_map__fd(st->skel->maps.aff_ring) : -1;
}

int schedtrace_watch_affinity(struct schedtrace *st, bool on)
{
	if (!st->task_storage)
		return -EOPNOTSUPP;
	__atomic_store_n(&st->skel->bss->aff_watch, on, __ATOMIC_RELEASE);
	return 0;
}

int schedtrace_switch_stats(const struct schedtrace *st, __u64 *run_time_ns, __u64 *run_cnt)
{
	struct bpf_program *p = st->btf_mode ? st->skel->progs.switch_btf : st->skel->progs.switch_raw;

	return bpfutil_prog_stats(bpf_program__fd(p), run_time_ns, run_cnt);
}

int schedtrace_all_stats(const struct schedtrace *st, __u64 *run_time_ns, __u64 *run_cnt)
{
	struct bpf_program *progs[] = {
		st->skel->progs.switch_btf, st->skel->progs.wakeup_btf, st->skel->progs.wakeup_new_btf,
		st->skel->progs.migrate_btf, st->skel->progs.exec_btf, st->skel->progs.switch_raw,
		st->skel->progs.wakeup_raw, st->skel->progs.wakeup_new_raw, st->skel->progs.migrate_raw,
		st->skel->progs.exec_raw,
	};

	/* dump_threads runs on user space's reads, not on the kernel's events */
	bpfutil_progs_stats(progs, sizeof(progs) / sizeof(progs[0]), run_time_ns, run_cnt);
	return 0;
}
