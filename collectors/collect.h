/*
 * collect.h: one snapshot per tick from every source.
 *
 * coll_new resolves the target (a pid, a cgroup, or the whole system),
 * opens every collector of the table in collect.c (bpf-sched, bpf-events,
 * procfs, cgroup, psi, board) and takes the baseline. Each coll_tick then
 * fills a snapshot with what happened since the previous call: the caller
 * decides the pace (sleeping between ticks). A source that cannot open is
 * not fatal: the snapshot's sources[] says which are live and why not.
 *
 * Paths are resolved under a root chosen at run time: opts.sysroot, else
 * the environment's EDGE_SYSROOT, else "/". BPF sources trace the running
 * kernel and are used only when that root is "/".
 */
#ifndef COLLECTORS_COLLECT_H
#define COLLECTORS_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectors/snapshot.h"

struct coll;

struct coll_opts {
	enum snap_target_kind kind;
	int32_t pid;               /* SNAP_TARGET_PID */
	const char *cgroup;        /* SNAP_TARGET_CGROUP: "/a/b" below the hierarchy
	                              root, or a full path under <root>/sys/fs/cgroup */
	const char *sysroot;       /* NULL: $EDGE_SYSROOT or "/" */
	bool no_bpf;               /* use procfs even when BPF would work */
	bool no_events;            /* leave bpf-events out */
	bool no_affinity_events;   /* bpf-events without affinity changes */
	bool affinity_fexit_only;  /* sched_setaffinity only where fexit or the switch
	                              watch catch it (never a syscall hook) */
	bool affinity_syscalls;    /* where fexit is refused, hook sched_setaffinity
	                              (caller and result) rather than watch each
	                              target thread's mask at switch-out */
	const char *btf_path;      /* NULL: $EDGE_VMLINUX_BTF or the kernel's */
};

/* Returns 0 and *out, or a negative errno and a one-line message in err:
 * -ENOENT / -EINVAL for a target that does not exist or a bad option (the
 * caller's input), anything else for a failure. */
int coll_new(const struct coll_opts *o, struct coll **out, char *err, size_t errlen);
void coll_free(struct coll *c);
/* Fill s (reset first) with the tick since the previous call. 0 or -errno
 * (only for failures of the whole tick; a source's trouble is in s). */
int coll_tick(struct coll *c, struct snap *s);
/* the root paths are resolved under ("" for "/") */
const char *coll_sysroot(const struct coll *c);

#endif
