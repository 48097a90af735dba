/*
 * sample.h: a small procfs sampler that fills the parts of a snapshot that
 * tune and supervise need (per-CPU busy split into target and other work,
 * the target's threads, CPU topology), for a set of target pids.
 *
 * It exists because the collectors library (collectors/collect.h, by the
 * collectors' owner) was not there when the controller was written; it
 * writes the same struct snap with source "procfs"/"sysfs", so switching to
 * the collectors is a change of one call in tune and supervise.
 *
 * Target CPU time per thread comes from /proc/PID/task/TID/schedstat (ns)
 * when present, else utime+stime from .../stat (clock ticks); it is charged
 * to the CPU the thread last ran on (stat field 39), so the per-CPU target /
 * other split is exact only for threads that stay on one CPU in a tick.
 */
#ifndef CONTROLLER_SAMPLE_H
#define CONTROLLER_SAMPLE_H

#include <stddef.h>
#include <sys/types.h>

#include "collectors/snapshot.h"

struct csample;

struct csample *csample_new(const char *root, char *err, size_t errlen);
void csample_free(struct csample *cs);
/*
 * Take one tick for the target pids (all their threads). The first call only
 * primes the counters (returns 0 and leaves interval_ns 0); later calls fill
 * out with the deltas since the previous call and return 1.
 */
int csample_tick(struct csample *cs, const pid_t *pids, size_t npids, struct snap *out, char *err,
		 size_t errlen);
/* Fill out->topo from <root>/sys/devices/system/cpu. */
int csample_topology(const char *root, struct snap_topology *topo);

#endif
