/*
 * sample.c: the controller's interim procfs sampler (see sample.h).
 *
 * DESIGN
 * Two tables of counters, the previous tick's and this one's: per CPU the
 * /proc/stat busy and idle jiffies, per target thread its on-CPU ns. A tick
 * reads both, subtracts, and writes deltas into the snapshot; threads that
 * appeared during the tick count from zero only when first seen after the
 * priming call (they have a previous value of their own start otherwise).
 */
#include "controller/sample.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controller/affinity.h"

#define MAX_TRACK 1024

struct tcount {
	pid_t tid, pid;
	uint64_t ns;
	int last_cpu;
	char comm[SNAP_COMM_LEN];
};

struct csample {
	char root[1024];
	int primed;
	uint64_t mono_ns;
	uint64_t cpu_busy[SNAP_MAX_CPUS], cpu_idle[SNAP_MAX_CPUS]; /* jiffies */
	size_t nprev;
	struct tcount prev[MAX_TRACK];
	struct tcount cur[MAX_TRACK];
	long hz;
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

struct csample *csample_new(const char *root, char *err, size_t errlen)
{
	struct csample *cs = calloc(1, sizeof(*cs));

	if (!cs) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(cs->root, sizeof(cs->root), "%s", root ? root : "");
	cs->hz = sysconf(_SC_CLK_TCK);
	if (cs->hz <= 0)
		cs->hz = 100;
	return cs;
}

void csample_free(struct csample *cs)
{
	free(cs);
}

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int read_proc_stat(const char *root, uint64_t *busy, uint64_t *idle, int *present)
{
	char p[1100], line[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/proc/stat", root);
	f = fopen(p, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[10] = { 0 };
		int cpu;

		if (strncmp(line, "cpu", 3) || !isdigit((unsigned char)line[3]))
			continue;
		if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &v[6], &v[7]) < 5)
			continue;
		if (cpu < 0 || cpu >= SNAP_MAX_CPUS)
			continue;
		busy[cpu] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
		idle[cpu] = v[3] + v[4];
		present[cpu] = 1;
	}
	fclose(f);
	return 0;
}

/* On-CPU ns, last CPU and comm of one thread; -ESRCH when gone. */
static int read_thread(const struct csample *cs, pid_t pid, pid_t tid, struct tcount *t)
{
	char p[1200], b[1024], *rp, *sp = NULL, *tok;
	FILE *f;
	int i = 0;
	unsigned long long ut = 0, st = 0;

	t->tid = tid;
	t->pid = pid;
	t->last_cpu = -1;
	snprintf(p, sizeof(p), "%s/proc/%d/task/%d/stat", cs->root, (int)pid, (int)tid);
	f = fopen(p, "re");
	if (!f)
		return -ESRCH;
	if (!fgets(b, sizeof(b), f)) {
		fclose(f);
		return -ESRCH;
	}
	fclose(f);
	rp = strrchr(b, ')');
	if (!rp)
		return -EINVAL;
	{
		char *lp = strchr(b, '(');
		size_t l = lp ? (size_t)(rp - lp - 1) : 0;

		if (l >= SNAP_COMM_LEN)
			l = SNAP_COMM_LEN - 1;
		memcpy(t->comm, lp ? lp + 1 : "", l);
		t->comm[l] = 0;
	}
	for (tok = strtok_r(rp + 1, " ", &sp); tok; tok = strtok_r(NULL, " ", &sp), i++) {
		/* tok i is stat field i + 3 */
		if (i == 11)
			ut = strtoull(tok, NULL, 10);
		else if (i == 12)
			st = strtoull(tok, NULL, 10);
		else if (i == 36) {
			t->last_cpu = atoi(tok);
			break;
		}
	}
	t->ns = (ut + st) * (1000000000ull / (unsigned long long)cs->hz);
	snprintf(p, sizeof(p), "%s/proc/%d/task/%d/schedstat", cs->root, (int)pid, (int)tid);
	f = fopen(p, "re");
	if (f) {
		unsigned long long ns;

		if (fscanf(f, "%llu", &ns) == 1 && ns > 0)
			t->ns = ns;
		fclose(f);
	}
	return 0;
}

static const struct tcount *find_prev(const struct csample *cs, pid_t tid)
{
	for (size_t i = 0; i < cs->nprev; i++)
		if (cs->prev[i].tid == tid)
			return &cs->prev[i];
	return NULL;
}

static int cmp_oncpu(const void *a, const void *b)
{
	const struct snap_thread *x = a, *y = b;

	return x->oncpu_ns < y->oncpu_ns ? 1 : x->oncpu_ns > y->oncpu_ns ? -1 : 0;
}

static int read_u32(const char *path, uint32_t *v)
{
	FILE *f = fopen(path, "re");
	unsigned long x;
	int ok;

	if (!f)
		return -errno;
	ok = fscanf(f, "%lu", &x) == 1;
	fclose(f);
	if (!ok)
		return -EINVAL;
	*v = (uint32_t)x;
	return 0;
}

int csample_topology(const char *root, struct snap_topology *topo)
{
	cpu_set_t on;
	char p[1200], e[256];
	int ret;

	memset(topo, 0, sizeof(*topo));
	ret = aff_online(root, &on, e, sizeof(e));
	if (ret < 0) {
		snap_status_set(&topo->st, SNAP_SRC_SYSFS, false, "%s", e);
		return ret;
	}
	for (int c = 0; c < SNAP_MAX_CPUS; c++) {
		struct snap_topo_cpu *t;

		snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu%d", root, c);
		if (access(p, F_OK) < 0)
			continue;
		t = &topo->cpu[topo->ncpus++];
		t->cpu = c;
		t->online = CPU_ISSET(c, &on);
		topo->nonline += t->online;
		t->cluster = -1;
		snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu%d/cpu_capacity", root, c);
		if (read_u32(p, &t->capacity) < 0)
			t->capacity = 1024;
		snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", root, c);
		read_u32(p, &t->max_khz);
		snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq", root, c);
		read_u32(p, &t->cur_khz);
	}
	snap_status_set(&topo->st, SNAP_SRC_SYSFS, true, "%s", "");
	return 0;
}

int csample_tick(struct csample *cs, const pid_t *pids, size_t npids, struct snap *out, char *err,
		 size_t errlen)
{
	uint64_t busy[SNAP_MAX_CPUS] = { 0 }, idle[SNAP_MAX_CPUS] = { 0 }, now;
	uint64_t tgt[SNAP_MAX_CPUS] = { 0 };
	int present[SNAP_MAX_CPUS] = { 0 };
	size_t ncur = 0;
	int ret;

	now = mono_now();
	ret = read_proc_stat(cs->root, busy, idle, present);
	if (ret < 0) {
		seterr(err, errlen, "%s/proc/stat: %s", cs->root, strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < npids; i++) {
		pid_t *tids = NULL;
		size_t nt = 0;

		if (aff_tids(cs->root, pids[i], &tids, &nt, NULL, 0) < 0)
			continue;
		for (size_t j = 0; j < nt && ncur < MAX_TRACK; j++)
			if (read_thread(cs, pids[i], tids[j], &cs->cur[ncur]) == 0)
				ncur++;
		free(tids);
	}
	if (!cs->primed) {
		ret = 0;
		goto keep;
	}
	snap_reset(out);
	out->mono_ns = now;
	out->interval_ns = now - cs->mono_ns;
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		out->ts_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	}
	/* threads */
	for (size_t i = 0; i < ncur; i++) {
		const struct tcount *pv = find_prev(cs, cs->cur[i].tid);
		uint64_t d = pv && cs->cur[i].ns >= pv->ns ? cs->cur[i].ns - pv->ns : 0;
		struct snap_thread *t;

		if (out->threads.n == SNAP_MAX_THREADS) {
			out->threads.dropped++;
			continue;
		}
		t = &out->threads.t[out->threads.n++];
		t->tid = cs->cur[i].tid;
		t->pid = cs->cur[i].pid;
		memcpy(t->comm, cs->cur[i].comm, sizeof(t->comm));
		t->oncpu_ns = d;
		t->cpu_pct = out->interval_ns ? (double)d * 100.0 / (double)out->interval_ns : 0;
		t->last_cpu = cs->cur[i].last_cpu;
		if (t->last_cpu >= 0 && t->last_cpu < SNAP_MAX_CPUS)
			tgt[t->last_cpu] += d;
	}
	qsort(out->threads.t, out->threads.n, sizeof(out->threads.t[0]), cmp_oncpu);
	snap_status_set(&out->threads.st, SNAP_SRC_PROCFS, true, "%s", npids ? "" : "no target process (an empty cgroup uses nothing)");
	/* CPUs */
	{
		double ns_per_jiffy = 1e9 / (double)cs->hz;

		for (int c = 0; c < SNAP_MAX_CPUS; c++) {
			struct snap_cpu *sc;
			uint64_t b, id, total;

			if (!present[c])
				continue;
			sc = &out->cpus.cpu[out->cpus.n++];
			sc->cpu = c;
			sc->online = 1;
			b = (uint64_t)((double)(busy[c] - cs->cpu_busy[c]) * ns_per_jiffy);
			id = (uint64_t)((double)(idle[c] - cs->cpu_idle[c]) * ns_per_jiffy);
			total = b + id ? b + id : 1;
			/* scale jiffy counts to the measured interval */
			b = (uint64_t)((double)b * (double)out->interval_ns / (double)total);
			id = out->interval_ns > b ? out->interval_ns - b : 0;
			sc->busy_target_ns = tgt[c] < b ? tgt[c] : b;
			sc->busy_other_ns = b - sc->busy_target_ns;
			sc->idle_ns = id;
			sc->busy_pct = (double)b * 100.0 / (double)out->interval_ns;
			sc->target_pct = (double)sc->busy_target_ns * 100.0 / (double)out->interval_ns;
		}
		snap_status_set(&out->cpus.st, SNAP_SRC_PROCFS, true, "%s",
				"target/other split by each thread's last CPU (procfs)");
	}
	csample_topology(cs->root, &out->topo);
	ret = 1;
keep:
	cs->primed = 1;
	cs->mono_ns = now;
	memcpy(cs->cpu_busy, busy, sizeof(busy));
	memcpy(cs->cpu_idle, idle, sizeof(idle));
	memcpy(cs->prev, cs->cur, ncur * sizeof(cs->cur[0]));
	cs->nprev = ncur;
	return ret;
}
