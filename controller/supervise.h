/*
 * supervise.h: 'edgectl supervise': run dify-edge serve in its cgroup under
 * live tuning. See supervise.c for the loop; docs/controller.md for the
 * operator's view.
 */
#ifndef CONTROLLER_SUPERVISE_H
#define CONTROLLER_SUPERVISE_H

#include <stddef.h>

#include "controller/config.h"

struct sup_opts {
	struct ccfg cfg;
	int dry_run;              /* decide and log, apply nothing, create nothing */
	const char *state_path;   /* revert state */
	char *const *core_argv;   /* dify-edge serve ... (NULL-terminated) */
	int core_argc;
};

/*
 * Run until SIGTERM or SIGINT: create or adopt the cgroup, start the core
 * in it, tick, decide, apply, serve, restart the core when it dies or fails
 * /health; on exit stop the core and revert everything. Returns 0 after a
 * clean stop, -EINVAL for bad input (err says which), another negative errno
 * for a failure.
 */
int sup_run(const struct sup_opts *o, char *err, size_t errlen);

/* Restart a core that is not running (one that could not start) this long after the last try. */
#define SUP_RETRY_S 2.0

/*
 * How long the loop sleeps in sigtimedwait() (s, >= 0): until the next tick,
 * or sooner, until the next restart try (last_restart + SUP_RETRY_S) of a
 * core that is not running. SIGCHLD, SIGTERM and SIGINT end the wait early,
 * so nothing else needs a wake-up: the loop does not poll (each wake-up
 * preempted a core worker on a busy CPU; 10 a second until 2026-12-04).
 */
double sup_loop_wait(double now, double next_tick, int core_running, double last_restart);

#endif
