/*
 * snapshot.h: one tick of the machine's resource profile.
 *
 * Everything that shows or decides (edgectl profile, edgetop, the controller,
 * recordings, reports) reads snapshots and nothing else. A snapshot is filled
 * once per tick by the collectors (collectors/collect.h) and is plain data:
 * fixed-size arrays, no pointers, so it can be copied with memcpy, kept in a
 * ring of history, and written to / read from its one JSON form (one object
 * per line per tick, documented in docs/snapshot.md).
 *
 * DESIGN
 * The snapshot is grouped by what was measured (cpus, threads, cgroup, psi,
 * topology, thermal, accelerators, core, events). Every group starts with a
 * `struct snap_status`: which source filled it (bpf, procfs, cgroupfs, sysfs,
 * core), whether it is valid, and if not, a one-line reason. A group that no
 * source could fill has valid = false and its counters at zero: readers must
 * test `valid` before trusting numbers.
 *
 * Units are in the field names (_ns, _us, _khz, _hz, _mc = milli-Celsius,
 * _pct = percent 0..100 of the tick, _bytes). Counters named d_* or described
 * as "in the tick" are deltas over the tick; others are cumulative kernel
 * counters copied as read.
 *
 * Stability: fields are only ever added (at the end of a struct), never
 * renamed or re-typed; SNAP_VERSION grows when the JSON form gains fields.
 */
#ifndef COLLECTORS_SNAPSHOT_H
#define COLLECTORS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SNAP_VERSION 1

#define SNAP_MAX_CPUS 64        /* CPUs described (ids >= this are ignored) */
#define SNAP_MAX_THREADS 128    /* threads of the target, busiest first */
#define SNAP_RQ_BUCKETS 26      /* log2 run-queue latency buckets, see below */
#define SNAP_MAX_CLUSTERS 8     /* cpufreq policies / capacity classes */
#define SNAP_MAX_ZONES 24       /* thermal zones */
#define SNAP_MAX_ACCELS 4       /* GPUs and NPUs */
#define SNAP_MAX_NPU_CORES 4
#define SNAP_MAX_CORE_STATS 32  /* key/value slots for the core's own stats */
#define SNAP_MAX_EVENTS 64      /* events kept per tick; more are counted in dropped */
#define SNAP_MAX_SOURCES 8
#define SNAP_COMM_LEN 16
#define SNAP_ERR_LEN 128
#define SNAP_PATH_LEN 256
#define SNAP_MASK_WORDS (SNAP_MAX_CPUS / 64) /* u64 words in a CPU mask */

/*
 * Run-queue latency histogram: bucket 0 counts waits < 1 us, bucket i (i >= 1)
 * counts waits in [2^(i-1), 2^i) us, the last bucket also everything above.
 * p50/p99 are the upper bound of the bucket that holds the percentile (ns),
 * so they are exact to a factor of two, like runqlat's output.
 */

enum snap_source {
	SNAP_SRC_NONE = 0,
	SNAP_SRC_BPF,
	SNAP_SRC_PROCFS,
	SNAP_SRC_CGROUPFS,
	SNAP_SRC_SYSFS,
	SNAP_SRC_CORE,
};

struct snap_status {
	uint8_t source;           /* enum snap_source */
	bool valid;               /* the group's numbers can be trusted */
	char err[SNAP_ERR_LEN];   /* why not valid (or a warning when valid); "" if none */
};

/* ---- CPUs: busy/idle per CPU, split into target and other ---------------- */

struct snap_cpu {
	int32_t cpu;              /* CPU id */
	bool online;
	uint64_t busy_target_ns;  /* in the tick: time running target tasks */
	uint64_t busy_other_ns;   /* in the tick: time running anything else (not idle) */
	uint64_t idle_ns;         /* in the tick: bpf: the rest of the tick (IRQ time included);
	                             procfs: idle + iowait */
	double busy_pct;          /* (target + other) / tick * 100 */
	double target_pct;        /* target / tick * 100 */
	uint64_t switches;        /* in the tick: context switches on this CPU */
	uint64_t migrations_in;   /* in the tick: tasks migrated to this CPU */
	uint64_t rq_count;        /* in the tick: wakeups measured */
	uint64_t rq_hist[SNAP_RQ_BUCKETS];
	uint64_t rq_p50_ns, rq_p99_ns;
};

struct snap_cpus {
	struct snap_status st;
	uint32_t n;               /* entries used in cpu[] (all possible CPUs < SNAP_MAX_CPUS) */
	struct snap_cpu cpu[SNAP_MAX_CPUS];
	uint64_t switches;        /* in the tick, all CPUs */
	uint64_t migrations;      /* in the tick, all CPUs (all tasks) */
	uint64_t target_migrations; /* in the tick, target tasks only */
};

/* ---- threads of the target ---------------------------------------------- */

struct snap_thread {
	int32_t tid, pid;         /* kernel tid and its thread-group id */
	char comm[SNAP_COMM_LEN];
	uint64_t oncpu_ns;        /* in the tick */
	double cpu_pct;           /* oncpu / tick * 100 (100 = one full CPU) */
	uint64_t vol_switches;    /* in the tick: it blocked */
	uint64_t invol_switches;  /* in the tick: it was preempted */
	uint64_t migrations;      /* in the tick */
	int32_t last_cpu;         /* CPU it has run on most (bpf) / last (procfs), -1 unknown */
	uint64_t rq_count;        /* in the tick */
	uint64_t rq_hist[SNAP_RQ_BUCKETS];
	uint64_t rq_p50_ns, rq_p99_ns;
};

struct snap_threads {
	struct snap_status st;
	uint32_t n;               /* entries used, sorted by oncpu_ns descending */
	uint32_t dropped;         /* threads seen but not kept (table full) */
	struct snap_thread t[SNAP_MAX_THREADS];
	uint64_t rq_hist[SNAP_RQ_BUCKETS]; /* all target threads together */
	uint64_t rq_count, rq_p50_ns, rq_p99_ns;
};

/* ---- PSI ---------------------------------------------------------------- */

struct snap_psi_line {
	double avg10, avg60, avg300; /* percent */
	uint64_t total_us;           /* cumulative stall time */
};

struct snap_psi_res {
	bool valid;
	bool has_full;               /* cpu "full" exists only on newer kernels */
	struct snap_psi_line some, full;
};

struct snap_psi {
	struct snap_status st;
	struct snap_psi_res cpu, memory, io;
};

/* ---- cgroup of the target (v1 or v2, normalized) ------------------------- */

enum snap_cg_version { SNAP_CG_NONE = 0, SNAP_CG_V1 = 1, SNAP_CG_V2 = 2 };

#define SNAP_UNLIMITED UINT64_MAX /* memory limit "max", cpu quota "max" */

struct snap_cgroup {
	struct snap_status st;
	uint8_t version;             /* enum snap_cg_version */
	char path[SNAP_PATH_LEN];    /* as given, relative to the hierarchy root ("/a/b") */
	uint64_t cg_id;              /* v2 cgroup id (inode), 0 on v1 */
	uint32_t nr_tasks;           /* threads in the cgroup */
	/* CPU */
	uint64_t usage_ns;           /* cumulative (v2 cpu.stat usage_usec*1000, v1 cpuacct.usage) */
	double cpu_pct;              /* in the tick, 100 = one CPU */
	uint64_t nr_periods, nr_throttled, throttled_ns; /* cumulative */
	uint64_t d_nr_throttled, d_throttled_ns;         /* in the tick */
	uint64_t quota_us;           /* SNAP_UNLIMITED when none (v2 "max", v1 -1) */
	uint64_t period_us;
	uint64_t weight;             /* v2 cpu.weight; v1 shares mapped to 1..10000 */
	uint64_t shares;             /* v1 cpu.shares as read; 0 on v2 */
	/* memory */
	uint64_t mem_current_bytes;
	uint64_t mem_max_bytes;      /* SNAP_UNLIMITED when none */
	uint64_t mem_high_bytes;     /* v2 memory.high; SNAP_UNLIMITED on v1 */
	uint64_t mem_peak_bytes;     /* v1 max_usage_in_bytes, v2 memory.peak (0 if absent) */
	uint64_t mem_events_high, mem_events_max, mem_events_oom, mem_events_oom_kill; /* cumulative */
	bool under_oom;              /* v1 memory.oom_control under_oom */
	bool oom_kill_disable;       /* v1 memory.oom_control */
	struct snap_psi psi;         /* the cgroup's *.pressure (v2 only) */
};

/* ---- board: topology, thermal, accelerators ------------------------------ */

struct snap_topo_cpu {
	int32_t cpu;
	bool online;
	uint32_t capacity;           /* cpu_capacity (1024 = biggest); 1024 if absent */
	int32_t cluster;             /* index in clusters[], -1 unknown */
	uint32_t cur_khz, min_khz, max_khz; /* of its cpufreq policy, 0 if none */
};

struct snap_cluster {
	int32_t policy;              /* cpufreq policyN id (first CPU) or -1 */
	uint32_t capacity;           /* of its CPUs */
	uint32_t ncpus;
	uint64_t cpumask[SNAP_MASK_WORDS];
	uint32_t cur_khz, min_khz, max_khz, cpuinfo_max_khz;
	char governor[16];
};

struct snap_topology {
	struct snap_status st;
	uint32_t ncpus;              /* entries used in cpu[] */
	uint32_t nonline;
	struct snap_topo_cpu cpu[SNAP_MAX_CPUS];
	uint32_t nclusters;          /* sorted by capacity ascending (LITTLE first) */
	struct snap_cluster cluster[SNAP_MAX_CLUSTERS];
};

struct snap_thermal_zone {
	int32_t id;                  /* N of thermal_zoneN */
	char type[32];
	bool valid;
	int32_t temp_mc;             /* milli-degrees Celsius */
};

struct snap_thermal {
	struct snap_status st;
	uint32_t n;
	struct snap_thermal_zone z[SNAP_MAX_ZONES];
	int32_t max_temp_mc;         /* hottest valid zone */
};

enum snap_accel_kind {
	SNAP_ACCEL_NONE = 0,
	SNAP_ACCEL_JETSON_GPU,       /* devfreq/gpu 'load', per-mille */
	SNAP_ACCEL_RK_GPU,           /* mali devfreq 'load', "NN@FREQHz" */
	SNAP_ACCEL_RKNPU,            /* debugfs rknpu/load, per core */
};

struct snap_accel {
	struct snap_status st;
	uint8_t kind;                /* enum snap_accel_kind */
	char name[32];               /* device name, e.g. "17000000.ga10b", "fb000000.gpu", "rknpu" */
	double load_pct;             /* 0..100; for the NPU the mean of its cores */
	uint64_t cur_freq_hz;        /* devfreq cur_freq (or the @FREQ part), 0 unknown */
	uint32_t ncores;
	double core_pct[SNAP_MAX_NPU_CORES];
};

struct snap_accels {
	struct snap_status st;
	uint32_t n;
	struct snap_accel a[SNAP_MAX_ACCELS];
};

/* ---- the core's own stats (filled from its admin socket by the supervisor) */

struct snap_core_stat {
	char key[32];
	double value;
};

struct snap_core {
	struct snap_status st;
	uint32_t n;
	struct snap_core_stat kv[SNAP_MAX_CORE_STATS];
};

/* ---- events in the tick -------------------------------------------------- */

enum snap_event_type {
	SNAP_EV_NONE = 0,
	SNAP_EV_AFFINITY,            /* sched_setaffinity: pid (target), caller, mask, result */
	SNAP_EV_EXEC,                /* pid, comm, path = filename */
	SNAP_EV_EXIT,                /* pid/tid, comm, exit_code */
	SNAP_EV_OOM,                 /* oom:mark_victim: pid, comm, memory figures */
	SNAP_EV_CGROUP_ATTACH,       /* pid, comm, path = destination cgroup, cg_id */
};

struct snap_event {
	uint8_t type;                /* enum snap_event_type */
	uint64_t ts_ns;              /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	int32_t pid;                 /* the task the event is about (tid for affinity) */
	int32_t tgid;                /* its thread group, 0 unknown */
	int32_t caller;              /* affinity: tid of the caller; else 0 */
	char comm[SNAP_COMM_LEN];
	uint64_t cpumask[SNAP_MASK_WORDS]; /* affinity: the requested mask (at_switch: the
	                                      effective one) */
	uint64_t prev_cpumask[SNAP_MASK_WORDS]; /* affinity at_switch: the effective mask before */
	bool at_switch;              /* affinity: seen at the thread's switch-out (no syscall
	                                hook): caller and result unknown, comm the thread's */
	int32_t result;              /* affinity: syscall return; exit: exit code */
	uint64_t cg_id;              /* cgroup attach: destination id */
	uint64_t total_vm_kb, anon_rss_kb, file_rss_kb, shmem_rss_kb, pgtables_kb; /* OOM */
	int32_t oom_score_adj;
	char path[128];              /* exec filename, cgroup attach path */
};

struct snap_events {
	struct snap_status st;
	uint32_t n;
	uint32_t dropped;            /* events lost in the tick (ring full or n full) */
	struct snap_event ev[SNAP_MAX_EVENTS];
};

/* ---- which sources are live --------------------------------------------- */

struct snap_source_info {
	char name[16];               /* collector name: "bpf-sched", "procfs", ... */
	bool live;
	char why[SNAP_ERR_LEN];      /* why not live, or a note ("fallback for bpf-sched") */
};

enum snap_target_kind { SNAP_TARGET_SYSTEM = 0, SNAP_TARGET_PID, SNAP_TARGET_CGROUP };

struct snap_target {
	uint8_t kind;                /* enum snap_target_kind */
	int32_t pid;                 /* SNAP_TARGET_PID */
	char cgroup[SNAP_PATH_LEN];  /* SNAP_TARGET_CGROUP */
};

struct snap {
	uint32_t version;            /* SNAP_VERSION */
	uint64_t seq;                /* tick number, from 0 */
	uint64_t ts_ns;              /* CLOCK_REALTIME at the end of the tick */
	uint64_t mono_ns;            /* CLOCK_MONOTONIC at the end of the tick */
	uint64_t interval_ns;        /* length of the tick actually measured */
	char host[64];
	struct snap_target target;
	uint32_t nsources;
	struct snap_source_info sources[SNAP_MAX_SOURCES];
	struct snap_cpus cpus;
	struct snap_threads threads;
	struct snap_cgroup cgroup;
	struct snap_psi psi;         /* system-wide /proc/pressure */
	struct snap_topology topo;
	struct snap_thermal thermal;
	struct snap_accels accel;
	struct snap_core core;
	struct snap_events events;
};

/* snap_new: a zeroed snapshot (version set); NULL on out of memory.
 * snap_free(NULL) is a no-op. A snapshot is ~100 KiB: keep it on the heap. */
struct snap *snap_new(void);
void snap_free(struct snap *s);
/* snap_reset: zero everything but keep nothing; sets version. */
void snap_reset(struct snap *s);

const char *snap_source_name(enum snap_source src);
const char *snap_event_name(enum snap_event_type t);
const char *snap_accel_name(enum snap_accel_kind k);

/* Histogram helpers: bucket of a latency, and the percentile p (0..100) of a
 * histogram as the upper bound of its bucket in ns (0 for an empty one). */
unsigned snap_rq_bucket(uint64_t ns);
uint64_t snap_hist_pct(const uint64_t hist[SNAP_RQ_BUCKETS], double p);
/* snap_status_set: fill st (source, valid, formatted reason). */
void snap_status_set(struct snap_status *st, enum snap_source src, bool valid,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * JSON, one line per snapshot (docs/snapshot.md).
 * snap_to_json: write the object (no newline) into buf of len bytes; returns
 *   the length it needs without the NUL (like snprintf: the output is
 *   complete when the return is < len), or a negative errno.
 * snap_write_json: write the object and a newline to f; 0 or negative errno.
 * snap_from_json: parse one object into s (reset first); 0, or a negative
 *   errno with a message in err. Unknown fields are ignored, missing ones
 *   stay zero, so older and newer recordings both read.
 */
int snap_to_json(const struct snap *s, char *buf, size_t len);
int snap_write_json(const struct snap *s, FILE *f);
int snap_from_json(struct snap *s, const char *json, char *err, size_t errlen);

#endif
