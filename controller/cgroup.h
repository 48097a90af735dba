/*
 * cgroup.h: the controller's cgroup v1/v2 naming layer.
 *
 * Callers speak of logical knobs (CPU bandwidth, CPU weight, cpuset CPUs,
 * memory max/high) on a cgroup NAME (a path relative to the hierarchy root,
 * "edge/core"); this layer finds, per controller, whether the machine mounts
 * it on cgroup v1 or v2, maps each knob to that mode's files and converts the
 * values:
 *
 *   knob         v2 file(s)                 v1 file(s)
 *   cpu.max      cpu.max "QUOTA PERIOD"     cpu.cfs_period_us + cpu.cfs_quota_us
 *                ("max" = no limit)         (-1 = no limit)
 *   weight       cpu.weight (1..10000)      cpu.shares (2..262144)
 *   cpus         cpuset.cpus                cpuset.cpus
 *   mems         cpuset.mems                cpuset.mems
 *   memory.max   memory.max                 memory.limit_in_bytes
 *   memory.high  memory.high                memory.soft_limit_in_bytes (nearest v1 knob)
 *
 * Weight <-> shares follows the kernel's own mapping (kernel/sched/core.c:
 * cpu.weight is stored as shares = weight * 1024 / 100, so weight 100 ==
 * shares 1024, the defaults of both); see cg_weight_to_shares().
 *
 * Every path is built under a sysroot chosen at run time (EDGE_SYSROOT, ""
 * for the real machine). Mount detection parses <root>/proc/self/mountinfo
 * (falling back to <root>/proc/mounts).
 *
 * Writes, creation, removal go through libcgroup 2.0.2 when the sysroot is
 * the real machine and the controller is on v1 (libcgroup reads the real
 * /proc/mounts and has no v1/v2 translation of its own). On a fixture tree
 * (non-empty sysroot) or on v2, the same functions do direct file I/O under
 * the root, which is what libcgroup would do. Reads are direct file reads in
 * both cases: libcgroup's read path (cgroup_get_cgroup) reads every file of
 * every mounted controller for one value. Moving a process writes its pid to
 * cgroup.procs (the whole thread group moves; libcgroup's
 * cgroup_attach_task_pid would move one thread on v1).
 *
 * On a v2 fixture tree, a cgroup made by cg_create gets the files the kernel
 * would show (cgroup.controllers = the parent's subtree_control, and cpu.max,
 * cpu.weight, cpuset.cpus, memory.max ... at their defaults for each
 * controller it has), and cg_remove deletes them with the directory.
 *
 * Errors: negative errno, and a one-line message in err naming the cgroup or
 * file and the problem.
 */
#ifndef CONTROLLER_CGROUP_H
#define CONTROLLER_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum cg_ctrl { CG_CPU = 0, CG_CPUACCT, CG_CPUSET, CG_MEMORY, CG_NCTRL };
enum cg_mode { CG_NONE = 0, CG_V1, CG_V2 };
enum cg_knob {
	CG_KNOB_CPU_MAX = 0,
	CG_KNOB_WEIGHT,
	CG_KNOB_CPUS,
	CG_KNOB_MEMS,
	CG_KNOB_MEM_MAX,
	CG_KNOB_MEM_HIGH,
	CG_KNOB_IDLE,
	CG_NKNOB
};

#define CG_NAME_MAX 512
#define CG_PATH_MAX 1024
#define CG_QUOTA_MIN_US 1000 /* the kernel refuses a quota below 1 ms */
#define CG_PERIOD_MIN_US 1000
#define CG_PERIOD_MAX_US 1000000

/* One raw file behind a knob: the controller and the file name. */
struct cg_file {
	enum cg_ctrl ctrl;
	const char *file;
};

struct cg_sys;

/* Detect the cgroup mounts under root ("" or NULL: the real machine). */
struct cg_sys *cg_sys_open(const char *root, char *err, size_t errlen);
void cg_sys_free(struct cg_sys *s);
const char *cg_sys_root(const struct cg_sys *s);
enum cg_mode cg_sys_mode(const struct cg_sys *s, enum cg_ctrl c);
/* The directory of controller c's hierarchy root (under the sysroot). */
const char *cg_sys_mount(const struct cg_sys *s, enum cg_ctrl c);
/* Whether writes go through libcgroup (live machine, v1). */
int cg_sys_uses_libcgroup(const struct cg_sys *s, enum cg_ctrl c);

const char *cg_ctrl_name(enum cg_ctrl c);
int cg_ctrl_from_name(const char *name);
const char *cg_mode_name(enum cg_mode m);
const char *cg_knob_name(enum cg_knob k);

/*
 * Turn what a user typed (a cgroup name "/edge/core", or a filesystem path
 * under a controller's mount "/sys/fs/cgroup/cpu/edge/core") into a
 * normalized name without leading or trailing '/' ("" is the root cgroup).
 * -EINVAL "outside the cgroup hierarchy" when '..' escapes the root or the
 * path is under no mounted controller.
 */
int cg_normalize(const struct cg_sys *s, const char *in, char *name, size_t len,
		 char *err, size_t errlen);

int cg_dir(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *buf, size_t len);
int cg_exists(const struct cg_sys *s, enum cg_ctrl c, const char *name);

/* The raw files behind a knob in this machine's mode; returns how many (0: unavailable). */
int cg_knob_files(const struct cg_sys *s, enum cg_knob k, struct cg_file out[2]);

/* Raw file access. cg_read returns the bytes read (buf NUL-terminated, exactly as the file). */
int cg_read(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file,
	    char *buf, size_t len, char *err, size_t errlen);
int cg_write(const struct cg_sys *s, enum cg_ctrl c, const char *name, const char *file,
	     const char *value, char *err, size_t errlen);

/* Logical knobs. quota_us -1 means no limit. weight is the v2 scale 1..10000. */
int cg_get_cpu_max(const struct cg_sys *s, const char *name, int64_t *quota_us,
		   int64_t *period_us, char *err, size_t errlen);
int cg_set_cpu_max(const struct cg_sys *s, const char *name, int64_t quota_us,
		   int64_t period_us, char *err, size_t errlen);
int cg_get_weight(const struct cg_sys *s, const char *name, int64_t *weight, char *err, size_t errlen);
int cg_set_weight(const struct cg_sys *s, const char *name, int64_t weight, char *err, size_t errlen);
/* cpu.idle (v1 and v2, kernels >= 5.15): 1 makes the cgroup's tasks
 * SCHED_IDLE-like to their siblings (they run only on time nobody else
 * wants, and are preempted at once). get: -ENOENT where the kernel has no
 * such file. */
int cg_get_idle(const struct cg_sys *s, const char *name, int *idle, char *err, size_t errlen);
int cg_set_idle(const struct cg_sys *s, const char *name, int idle, char *err, size_t errlen);
int cg_get_cpus(const struct cg_sys *s, const char *name, int effective, char *buf, size_t len,
		char *err, size_t errlen);
int cg_set_cpus(const struct cg_sys *s, const char *name, const char *cpus, char *err, size_t errlen);
/* bytes -1 means "max" (no limit). */
int cg_get_mem(const struct cg_sys *s, const char *name, enum cg_knob k, int64_t *bytes,
	       char *err, size_t errlen);
int cg_set_mem(const struct cg_sys *s, const char *name, enum cg_knob k, int64_t bytes,
	       char *err, size_t errlen);

/* Validation shared by tune and supervise, nothing written. */
int cg_check_cpu_max(int64_t quota_us, int64_t period_us, char *err, size_t errlen);

/* Kernel mapping between v2 weight and v1 shares (clamped to each range). */
int64_t cg_weight_to_shares(int64_t weight);
int64_t cg_shares_to_weight(int64_t shares);

/*
 * Create name (and any missing parents) in every controller of mask
 * (1 << CG_CPU | ...) that is mounted. On v1 a new cpuset cgroup gets its
 * parent's cpuset.cpus and cpuset.mems so that tasks can join it. created
 * receives one "ctrl:name" entry per directory actually made, outermost first
 * (caller frees each and the array) so that a failure can be undone.
 */
int cg_create(const struct cg_sys *s, const char *name, unsigned mask, char ***created,
	      size_t *ncreated, char *err, size_t errlen);
/*
 * cgroup v2: a child only has a controller's files when every ancestor lists
 * the controller in cgroup.subtree_control. cg_create enables what each
 * ancestor on the path lacks ("+cpu") where its cgroup.controllers offers it,
 * outermost first, before making the child. cg_subtree_missing lists, without
 * writing, the "ctrl:cgroup" pairs (v2 controller name, e.g. "cpu:" for the
 * root, "memory:edge.slice") that cg_create would enable in ANCESTORS THAT
 * EXIST NOW, outermost first, so that a caller can record them before it
 * changes anything (ancestors cg_create makes go away with it). cg_create's
 * own undo on failure removes the directories it made but leaves those
 * ancestors' subtree_control to the caller's revert. On v1, and
 * when nothing is missing, the list is empty. Caller frees each and the array.
 */
int cg_subtree_missing(const struct cg_sys *s, const char *name, unsigned mask, char ***missing,
		       size_t *nmissing, char *err, size_t errlen);
/*
 * Enable (on != 0, "+name") or disable ("-name") v2 controller c in name's
 * cgroup.subtree_control. -EBUSY from the kernel when a child still uses it.
 * On a fixture tree the file is rewritten as the list the kernel would show.
 */
int cg_subtree_set(const struct cg_sys *s, enum cg_ctrl c, const char *name, int on, char *err,
		   size_t errlen);

/* Remove one (empty) cgroup directory. -ENOENT if absent. */
int cg_remove(const struct cg_sys *s, enum cg_ctrl c, const char *name, char *err, size_t errlen);

/* Move a whole process (all its threads) into name, through cgroup.procs. */
int cg_attach_pid(const struct cg_sys *s, enum cg_ctrl c, const char *name, pid_t pid,
		  char *err, size_t errlen);
/* The cgroup (normalized name) that pid belongs to in controller c. */
int cg_pid_cgroup(const struct cg_sys *s, pid_t pid, enum cg_ctrl c, char *name, size_t len,
		  char *err, size_t errlen);
/* The pids in a cgroup (cgroup.procs). Caller frees *pids. */
int cg_pids(const struct cg_sys *s, enum cg_ctrl c, const char *name, pid_t **pids, size_t *n,
	    char *err, size_t errlen);
/* 0 if <root>/proc/PID exists, -ESRCH "no such process" otherwise. */
int cg_check_pid(const struct cg_sys *s, pid_t pid, char *err, size_t errlen);

#endif
