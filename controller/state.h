/*
 * state.h: the revert state file.
 *
 * Before the controller changes anything it records what was there: the raw
 * bytes of every cgroup file it will write, the cgroup each moved process was
 * in, every thread's CPU affinity, the cgroups it is about to create, and the
 * core's thread-pool size. The file is JSON, written to FILE.tmp, fsync'd,
 * renamed over FILE, and the directory fsync'd, so after a crash (or kill -9)
 * it is either the old or the new complete state, never half.
 *
 * The first recorded value of a thing wins: noting a knob that is already
 * noted keeps the older value, so tune after tune (or supervise after tune)
 * still reverts to the machine as it was before the first.
 *
 * cstate_revert restores in this order: the workers' scheduling class and the
 * thread-pool size (a cgroup's cpu.rt_runtime_us cannot go back to 0 while a
 * real-time task is in it); cgroup files (in
 * reverse order of recording); process membership; thread affinities (last,
 * because moving a task between v1 cpusets resets its affinity); then the
 * cgroups it created are removed (innermost first; tasks still inside are
 * moved to where the recorded process came from); last, the v2 controllers
 * it enabled in pre-existing ancestors' cgroup.subtree_control are disabled
 * again (innermost first; -EBUSY is logged, not a failure). It keeps going past
 * failures and reports each one; the state file is removed only when
 * everything was restored.
 */
#ifndef CONTROLLER_STATE_H
#define CONTROLLER_STATE_H

#include <stddef.h>
#include <sys/types.h>

#include "controller/cgroup.h"

#define CSTATE_DEFAULT_PATH "/run/edgectl/state.json"

struct cstate;

/* The state file path: $EDGECTL_STATE, else CSTATE_DEFAULT_PATH. */
const char *cstate_default_path(void);

/* A new empty state bound to path, or the one already at path (merged into). */
int cstate_open(const char *path, const char *who, struct cstate **out, char *err, size_t errlen);
/* Load an existing state; -ENOENT when there is none. */
int cstate_load(const char *path, struct cstate **out, char *err, size_t errlen);
void cstate_free(struct cstate *st);
int cstate_save(struct cstate *st, char *err, size_t errlen);
int cstate_empty(const struct cstate *st);
const char *cstate_path(const struct cstate *st);

/* Record the current raw bytes of a cgroup file (no-op if already recorded). */
int cstate_note_file(struct cstate *st, const struct cg_sys *s, enum cg_ctrl c, const char *name,
		     const char *file, char *err, size_t errlen);
/* Record every raw file behind a logical knob. */
int cstate_note_knob(struct cstate *st, const struct cg_sys *s, enum cg_knob k, const char *name,
		     char *err, size_t errlen);
/* Record a cgroup directory about to be created by us. */
int cstate_note_created(struct cstate *st, enum cg_ctrl c, const char *name);
/*
 * Record a v2 controller ("cpu", "cpuset", "memory") about to be enabled in
 * the cgroup.subtree_control of a cgroup that exists now; revert disables it
 * ("-cpu") after removing the cgroups it created, innermost first (-EBUSY, a
 * child someone else made now uses it, is logged and not a failure).
 */
int cstate_note_subtree(struct cstate *st, const char *ctrl, const char *name);
/* Note every pair cg_subtree_missing(s, name, mask) lists: call before cg_create. */
int cstate_note_subtree_missing(struct cstate *st, const struct cg_sys *s, const char *name, unsigned mask,
				char *err, size_t errlen);
/* Record the cgroup pid is in now for controller c. */
int cstate_note_membership(struct cstate *st, const struct cg_sys *s, pid_t pid, enum cg_ctrl c,
			   char *err, size_t errlen);
/* Record the affinity of every thread of pid. */
int cstate_note_affinity(struct cstate *st, const char *root, pid_t pid, char *err, size_t errlen);
/* Record the core's thread-pool size (admin socket). */
int cstate_note_threads(struct cstate *st, const char *admin_sock, int n);
/* Record the core workers' scheduling class before making them real-time:
 * prio 0 = SCHED_OTHER, N = SCHED_FIFO N; tids are the workers now (revert
 * puts them back through the admin socket, or thread by thread where the
 * socket is gone but pid still runs). */
int cstate_note_sched(struct cstate *st, const char *admin_sock, pid_t pid, int prio, const pid_t *tids, int ntids);

/*
 * Restore everything (see top). log receives one line per action or failure
 * (may be NULL). Returns 0 when everything recorded is back (and removes the
 * state file), -EIO when something could not be restored (err names the
 * first failure; the file is kept so that revert can be tried again).
 */
typedef void (*cstate_log_fn)(void *ud, const char *line);
int cstate_revert(struct cstate *st, const struct cg_sys *s, cstate_log_fn log, void *ud, char *err,
		  size_t errlen);

#endif
