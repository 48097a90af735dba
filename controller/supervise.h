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

#endif
