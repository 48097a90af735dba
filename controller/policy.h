/*
 * policy.h: the controller's policies, pure functions.
 *
 * Each policy reads the recent snapshots (oldest first, newest last), the
 * configuration, the actuators' state read back this tick (struct pol_env)
 * and its own memory of past decisions (struct pol_mem), and fills at most a
 * few decisions, each with its inputs and a reason. Nothing here touches the
 * machine, the clock or a global: the same arguments give the same decisions,
 * which is what the table-driven tests rely on. Hysteresis (a condition must
 * hold sustain_ticks in a row, bands around targets), cooldowns (measured on
 * the snapshots' monotonic clock) and bounded steps all live here; the caller
 * applies a decision and then records it with pol_mem_commit().
 *
 * The core's own numbers come from snap->core (filled from its admin socket
 * by the supervisor) under the keys POL_K_*.
 */
#ifndef CONTROLLER_POLICY_H
#define CONTROLLER_POLICY_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "collectors/snapshot.h"
#include "controller/config.h"

#define POL_K_QUEUE "queue"
#define POL_K_SLOTS "slots"
#define POL_K_BUSY_SLOTS "busy_slots"
#define POL_K_THREADS "threads"
#define POL_K_MEM_UTIL "mem_util_pct"
#define POL_K_TTFT_P99 "ttft_p99_ms"
#define POL_K_WORKERS_BUSY "workers_busy_pct" /* the busiest pool worker's share of the last tick, % */

#define POL_MAX_WORKERS SNAP_MAX_CPUS
#define POL_MAX_DECISIONS (2 + CCFG_MAX_NEIGHBOURS)

enum pol_kind { POL_THREADS = 0, POL_AFFINITY, POL_BANDWIDTH, POL_NKIND };
enum pol_action {
	POL_ACT_NONE = 0,
	POL_ACT_SET_THREADS,     /* core thread pool: from -> to */
	POL_ACT_PIN_WORKERS,     /* worker tid[i] -> cpu[i] */
	POL_ACT_SET_CPU_MAX,     /* cgroup target: quota from -> to (us, -1 = max), period_us */
	POL_ACT_SET_WEIGHT,      /* cgroup target: weight from -> to */
	POL_ACT_SET_IDLE,        /* cgroup target: cpu.idle from -> to (0/1) */
	POL_ACT_SET_REALTIME,    /* core's workers: SCHED_FIFO priority from -> to (0 = SCHED_OTHER) */
};

struct pol_decision {
	enum pol_kind policy;
	enum pol_action action;
	char target[CCFG_STR];   /* "core" or a cgroup name */
	int64_t from, to;
	int64_t period_us;
	int nworkers;
	pid_t tid[POL_MAX_WORKERS];
	int cpu[POL_MAX_WORKERS];
	char cpus[256];          /* the CPUs chosen, list form */
	char reason[320];
	char inputs[512];        /* the inputs that decided, as a JSON object */
};

/* A neighbour cgroup as read back this tick. */
struct pol_neighbour {
	char name[CCFG_STR];
	int64_t quota_us;        /* -1 = no limit */
	int64_t period_us;
	double usage_pct;        /* CPU use in the last tick, 100 = one CPU */
	int idle;                /* cpu.idle: 0, 1, or -1 where the kernel has none */
};

/* What the actuators read back this tick. */
struct pol_env {
	cpu_set_t allowed;       /* CPUs the core's cgroup may use (cpuset effective) */
	int nworkers;
	pid_t worker_tid[POL_MAX_WORKERS];
	cpu_set_t worker_mask[POL_MAX_WORKERS]; /* each worker's affinity as read back */
	int64_t core_weight;     /* the weight of weight_cg now */
	int worker_rt;           /* the workers' class read back: 0 SCHED_OTHER, N SCHED_FIFO/RR priority N,
	                          * -2 mixed, -1 unknown (see cadmin_stats.rt_prio) */
	/* where the core's weight counts: its ancestor (or itself) that is a
	 * child of the lowest common ancestor with the neighbours, since CPU
	 * weight only divides time among siblings. "": the core's cgroup. */
	char weight_cg[CCFG_STR];
	int nneighbours;
	struct pol_neighbour nb[CCFG_MAX_NEIGHBOURS];
};

/* The policies' memory of what they did (updated only by pol_mem_commit). */
struct pol_mem {
	double last_change_s[POL_NKIND];  /* monotonic seconds; < 0: never */
	int last_dir[POL_NKIND];          /* +1 up/grow, -1 down/shrink */
	int naff;                         /* the last placement */
	pid_t aff_tid[POL_MAX_WORKERS];
	int aff_cpu[POL_MAX_WORKERS];
	int capped[CCFG_MAX_NEIGHBOURS];  /* we lowered this neighbour's quota */
	int64_t orig_quota[CCFG_MAX_NEIGHBOURS]; /* its quota before we capped it */
	int idled[CCFG_MAX_NEIGHBOURS];   /* we set its cpu.idle to 1 */
	int64_t knee_quota[CCFG_MAX_NEIGHBOURS]; /* the quota (us; -1 none) under which the p99 last went
	                                          * over: give-backs stay below it until knee_s + knee_hold */
	double knee_s[CCFG_MAX_NEIGHBOURS];
	int64_t core_weight_orig;         /* -1 until we raised the core's weight */
	double last_tighten_s;            /* the bandwidth policy's last cap or weight raise */
	int rt_set;                       /* we made the workers real-time ... */
	double rt_on_s;                   /* ... at this time */
	double rt_refused_s;              /* when that was last refused (EPERM, no RT budget) */
};

void pol_mem_init(struct pol_mem *m);
/* weight_cg for core cgroup `core` and neighbours nb[0..n) (cgroup paths with
 * or without a leading '/'): the core's path cut one level below its deepest
 * common ancestor with any neighbour; the core's own path when n == 0. */
void pol_weight_cgroup(const char *core, const char (*nb)[CCFG_STR], int n, char *out, size_t outlen);
/* Record that d was applied at monotonic time now_s. */
void pol_mem_commit(struct pol_mem *m, const struct pol_decision *d, const struct pol_env *env, double now_s);
/* Record that applying d failed at now_s (a refused real-time switch is not
 * tried again for knee_hold; other actions are simply retried). */
void pol_mem_failed(struct pol_mem *m, const struct pol_decision *d, double now_s);

/*
 * Each returns the number of decisions written to out (at most max), 0 when
 * the policy holds; *why (may be NULL) receives the reason for holding.
 */
int pol_threads(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen);
int pol_affinity(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		 const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen);
int pol_bandwidth(const struct snap *const *h, size_t n, const struct ccfg *c, const struct pol_env *env,
		  const struct pol_mem *m, struct pol_decision *out, int max, char *why, size_t whylen);

/* The value of a core stat in a snapshot, or dflt when absent. */
double pol_core_stat(const struct snap *s, const char *key, double dflt);

/*
 * Order candidate CPUs for placement: fastest first (cpu_capacity, then max
 * frequency), then least busy with other work, then lowest id. CPUs busier
 * than busy_other_pct with other work go last. Writes up to max CPU ids into
 * order and returns how many; busy_pct[cpu] (may be NULL) is the other-work
 * load used.
 */
int pol_rank_cpus(const struct snap_topology *topo, const cpu_set_t *cand, const double *busy_pct,
		  double busy_other_pct, int *order, int max);

/* ---- edgectl tune: a one-shot plan from a profile ------------------------ */

struct pol_plan {
	int ncpus;
	int cpu[POL_MAX_WORKERS];
	char cpus[256];
	int64_t quota_us, period_us;   /* quota -1: no limit */
	double quota_pct;              /* of one CPU */
	int64_t weight;
	double usage_mean_pct, usage_p95_pct;
	int active_threads;
	int threads;                   /* planned pool size when the target is dify-edge, else 0 */
	char reason_cpus[320], reason_quota[320], reason_weight[160], reason_threads[200];
};

/*
 * Plan from a profile h[0..n) of the target (snapshots with cpus, threads and
 * topo). is_core: the target is dify-edge, whose pool is sized by the plan:
 * it gets every CPU of the fastest class that is not busy with other work,
 * one worker per CPU.
 */
int pol_tune_plan(const struct snap *const *h, size_t n, const struct ccfg *c, const cpu_set_t *allowed,
		  int is_core, struct pol_plan *p, char *err, size_t errlen);

const char *pol_kind_name(enum pol_kind k);
const char *pol_action_name(enum pol_action a);

#endif
