/*
 * colctx.h: what the collectors of collectors/ share (internal header).
 *
 * Each source is one module behind `struct col_ops` (open / sample / close),
 * listed in a const table in collect.c. The driver owns a `struct col_ctx`:
 * the root every path is built under, the resolved target (cgroup
 * directories for v1 or v2, the v2 id and level, the pid set refreshed each
 * tick), the tick's clock, and which sources are live, so that the procfs
 * module knows whether it is the fallback of bpf-sched.
 */
#ifndef COLLECTORS_COLCTX_H
#define COLLECTORS_COLCTX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectors/snapshot.h"

struct schedtrace;

struct col_target {
	enum snap_target_kind kind;
	int32_t pid;
	char cgroup[SNAP_PATH_LEN];      /* relative to the hierarchy root: "/a/b" */
	enum snap_cg_version cgver;      /* where the cgroup (or the pid's) lives */
	char v2_dir[PATH_MAX];           /* <root>/sys/fs/cgroup[/unified]/<cgroup> */
	char cpu_dir[PATH_MAX];          /* v1: <root>/.../cpu/<cgroup> ("" if none) */
	char cpuacct_dir[PATH_MAX];      /* v1 */
	char mem_dir[PATH_MAX];          /* v1 */
	char procs_dir[PATH_MAX];        /* where cgroup.procs lists the members */
	uint64_t cgid;                   /* v2 id (inode of the directory) */
	int cg_level;                    /* v2 depth below the root */
};

struct col_ctx {
	char root[PATH_MAX];             /* "" for "/", else without trailing '/' */
	bool live;                       /* root is the running system */
	bool no_bpf;
	bool no_events;
	bool no_affinity_events;
	bool affinity_fexit_only;
	bool affinity_syscalls;
	const char *btf_path;
	struct col_target target;
	int32_t *pids;                   /* target tgids (pid or cgroup targets) */
	size_t npids, pids_cap;
	uint64_t prev_mono, now_mono;    /* CLOCK_MONOTONIC ns: the tick is (prev, now] */
	bool first;                      /* the baseline sample (from coll_new) */
	bool bpf_sched_live;
	struct schedtrace *sched;        /* bpf-sched's handle (bpf-events shares its pid map) */
	long clk_tck;
};

struct col_ops {
	const char *name;
	/* 0 and *state, or negative errno with why (the source is then not live) */
	int (*open)(struct col_ctx *ctx, void **state, char *why, size_t whylen);
	/* fill the groups this source owns; trouble goes into their status */
	void (*sample)(struct col_ctx *ctx, void *state, struct snap *s);
	void (*close)(void *state);
};

extern const struct col_ops col_bpfsched_ops;
extern const struct col_ops col_bpfevents_ops;
extern const struct col_ops col_procfs_ops;
extern const struct col_ops col_cgroup_ops;
extern const struct col_ops col_psi_ops;
extern const struct col_ops col_board_ops;

/* <root>/<rel> into buf; rel starts with '/'. Returns buf. */
char *col_path(const struct col_ctx *ctx, char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* a tick delta that survives counter resets */
static inline uint64_t col_delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : 0;
}

/* parse one PSI file's text into r; 0 or -EINVAL (exposed for tests) */
int col_psi_parse(const char *text, struct snap_psi_res *r);
/* parse accelerator load texts (exposed for tests) */
int col_parse_rk_load(const char *text, double *pct, uint64_t *freq_hz);
int col_parse_npu_load(const char *text, double *core_pct, uint32_t max, uint32_t *ncores);

#endif
