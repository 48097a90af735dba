/*
 * config.h: the controller's configuration: one INI file (parsed by inih),
 * every key with a default, unknown keys and bad values refused with
 * "FILE:LINE: ..." naming the key. docs/controller.md lists every key; so
 * does `ccfg_describe` (edgectl supervise --print-config).
 */
#ifndef CONTROLLER_CONFIG_H
#define CONTROLLER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CCFG_STR 256
#define CCFG_MAX_NEIGHBOURS 8

struct ccfg {
	/* [general] */
	double interval_s;            /* tick length */
	char cgroup[CCFG_STR];        /* the core's cgroup (created or adopted) */
	char socket[CCFG_STR];        /* supervise's own Unix socket */
	char audit_log[CCFG_STR];     /* JSON lines, one per decision */
	char state[CCFG_STR];         /* revert state file ("" = $EDGECTL_STATE or default) */
	double health_timeout_s;      /* restart the core after failing /health this long */
	double start_grace_s;         /* /health failures do not count this long after a start */
	int history;                  /* snapshots kept for the policies */
	int sustain_ticks;            /* a condition must hold this many ticks (hysteresis), every policy */
	bool affinity_syscall_hook;   /* affinity events also where only a syscall hook can catch them */
	/* [threads] */
	bool threads_enabled;
	int threads_min, threads_max; /* max 0 = the CPUs the core may use */
	double queue_high;            /* grow when queue > this */
	double grow_factor;
	double shrink_factor;
	double mem_util_low_pct;      /* shrink when memory utilisation below this */
	double idle_s;                /* shrink after being idle this long */
	double threads_cooldown_s;
	int threads_max_step;         /* bound on one change, in threads */
	/* [affinity] */
	bool affinity_enabled;
	double busy_other_pct;        /* avoid CPUs busier than this with other work */
	double affinity_cooldown_s;
	bool affinity_reapply;        /* re-pin after hotplug or a cpuset reset */
	/* [bandwidth] */
	bool bandwidth_enabled;
	double ttft_p99_target_ms;
	double bw_hysteresis_pct;
	char neighbours[CCFG_MAX_NEIGHBOURS][CCFG_STR];
	int nneighbours;
	double neighbour_min_pct;     /* floor of a neighbour's quota, % of one CPU */
	bool neighbour_idle;          /* first make a busy neighbour cpu.idle, then cap it */
	double bw_step_pct;           /* bound on one change of a quota, relative */
	double bw_cooldown_s;
	double bw_relax_s;            /* under target this long after the last tightening before giving back */
	double bw_knee_hold_s;        /* a quota that proved too generous is not given back again for this long */
	int64_t period_us;
	int64_t core_weight;          /* weight given to the core's cgroup when it misses its target */
	bool realtime;                /* may make the core's workers SCHED_FIFO while a neighbour competes */
	int realtime_priority;        /* their SCHED_FIFO priority */
	double realtime_settle_s;
	double realtime_max_busy_pct; /* real-time only while the busiest worker stays under this */     /* after the switch, neighbours wait this long (the p99 window refills) */
	double realtime_budget_pct;   /* RT group scheduling (v1): the core's cpu.rt_runtime_us, % of cpu.rt_period_us */
	/* [tune] */
	double tune_duration_s;
	double tune_headroom_pct;
	double tune_active_thread_pct;
	int64_t tune_weight;
	double tune_round_pct;
};

void ccfg_defaults(struct ccfg *c);
/* Load path over the defaults. -EINVAL with "PATH:LINE: ..." in err. */
int ccfg_load(struct ccfg *c, const char *path, char *err, size_t errlen);
/* Print every key with its default and meaning, INI form. */
void ccfg_describe(FILE *f);
/* Parse a duration: "10s", "500ms", "2m", or seconds. */
int ccfg_parse_duration(const char *s, double *sec);

#endif
