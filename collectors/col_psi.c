/*
 * col_psi.c: the "psi" source: pressure stall information, system-wide from
 * <root>/proc/pressure/{cpu,memory,io} and for the target's cgroup from its
 * *.pressure files (v2; on v1 only where the kernel offers them).
 * Format of each file (Documentation/accounting/psi.rst):
 *   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
 *   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
 * ("full" is absent for cpu before 5.13).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

static int parse_line(const char *line, struct snap_psi_line *l)
{
	unsigned long long total;

	if (sscanf(line, "avg10=%lf avg60=%lf avg300=%lf total=%llu",
		   &l->avg10, &l->avg60, &l->avg300, &total) != 4)
		return -EINVAL;
	l->total_us = total;
	return 0;
}

int col_psi_parse(const char *text, struct snap_psi_res *r)
{
	bool some = false;

	memset(r, 0, sizeof(*r));
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, "some ", 5)) {
			if (parse_line(p + 5, &r->some))
				return -EINVAL;
			some = true;
		} else if (!strncmp(p, "full ", 5)) {
			if (parse_line(p + 5, &r->full))
				return -EINVAL;
			r->has_full = true;
		} else if (*p != '\n') {
			return -EINVAL;
		}
	}
	if (!some)
		return -EINVAL;
	r->valid = true;
	return 0;
}

static const char *const res_names[] = { "cpu", "memory", "io" };

/* read dir/<res>.pressure (or dir/<res> for /proc/pressure) into p */
static void read_set(const char *dir, bool proc_style, struct snap_psi *p, enum snap_source src)
{
	struct snap_psi_res *res[] = { &p->cpu, &p->memory, &p->io };
	char path[PATH_MAX], text[512], first[SNAP_ERR_LEN] = "";
	int nvalid = 0;

	for (int i = 0; i < 3; i++) {
		fsr_fmt(path, sizeof(path), "%s/%s%s", dir, res_names[i], proc_style ? "" : ".pressure");
		int r = fsr_read(path, text, sizeof(text));
		if (r >= 0)
			r = col_psi_parse(text, res[i]);
		if (r < 0) {
			memset(res[i], 0, sizeof(*res[i]));
			if (!first[0])
				fsr_fmt(first, sizeof(first), "%s: %s", path, r == -EINVAL ? "malformed" : strerror(-r));
			continue;
		}
		nvalid++;
	}
	snap_status_set(&p->st, src, nvalid > 0, "%s", first);
}

static int psi_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	char path[PATH_MAX];

	*state = NULL;
	col_path(ctx, path, sizeof(path), "/proc/pressure/cpu");
	if (access(path, R_OK)) {
		fsr_fmt(why, whylen, "%s: %s (kernel without PSI, or booted with psi=0)", path, strerror(errno));
		/* still live: the cgroup's files may exist */
	}
	return 0;
}

static void psi_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	char dir[PATH_MAX];

	read_set(col_path(ctx, dir, sizeof(dir), "/proc/pressure"), true, &s->psi, SNAP_SRC_PROCFS);
	const struct col_target *t = &ctx->target;
	const char *cgdir = t->cgver == SNAP_CG_V2 ? t->v2_dir : t->cgver == SNAP_CG_V1 ? t->cpuacct_dir : "";
	if (cgdir[0])
		read_set(cgdir, false, &s->cgroup.psi, SNAP_SRC_CGROUPFS);
	else
		snap_status_set(&s->cgroup.psi.st, SNAP_SRC_CGROUPFS, false, "no cgroup");
}

static void psi_close(void *state)
{
	(void)state;
}

const struct col_ops col_psi_ops = {
	.name = "psi",
	.open = psi_open,
	.sample = psi_sample,
	.close = psi_close,
};
