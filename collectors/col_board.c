/*
 * col_board.c: the "board" source: CPU topology and frequencies, thermal
 * zones, and accelerator loads, from sysfs and debugfs under the root.
 *
 * Topology: /sys/devices/system/cpu/{possible,online}, cpuN/cpu_capacity
 * (1024 when absent: a symmetric machine), cpufreq/policyN/{related_cpus,
 * scaling_cur_freq, scaling_min_freq, scaling_max_freq, cpuinfo_max_freq,
 * scaling_governor}. Each policy is a cluster; without cpufreq, CPUs of equal
 * capacity form one. Clusters are sorted LITTLE first (capacity, then
 * maximum frequency).
 * Thermal: /sys/class/thermal/thermal_zoneN/{type,temp} (milli-Celsius).
 * Accelerators, from /sys/class/devfreq/<dev>:
 *   - Jetson GPU (JetPack 5 17000000.ga10b, JetPack 6 17000000.gpu, older
 *     gv11b/gp10b): <dev>/device/load holds the load in per-mille;
 *   - RK3588 Mali GPU (fb000000.gpu): <dev>/load holds "NN@FREQHz";
 *   - RK NPU: debugfs rknpu/load (or /proc/rknpu/load), "NPU load:  Core0:
 *     0%, Core1:  0%, Core2:  0%," on RK3588 or "NPU load:  N%" on single-core
 *     parts; its frequency from the *npu devfreq device.
 * Every file that is missing where expected or does not parse is named in the
 * status of its group; the other readings are still reported.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

struct notes {
	char first[SNAP_ERR_LEN];
	int n;
};

static void note(struct notes *nt, const char *path, int err)
{
	if (!nt->n++)
		fsr_fmt(nt->first, sizeof(nt->first), "%s: %s", path,
			 err == -EINVAL ? "malformed" : strerror(-err));
}

static void finish_notes(struct notes *nt)
{
	size_t l = strlen(nt->first);

	if (nt->n > 1)
		snprintf(nt->first + l, sizeof(nt->first) - l, " (+%d more)", nt->n - 1);
}

static int board_open(struct col_ctx *ctx, void **state, char *why, size_t whylen)
{
	*state = NULL;
	return 0;
}

static void board_close(void *state)
{
	(void)state;
}

/* ---- topology ------------------------------------------------------------ */

static int cmp_cluster(const void *a, const void *b)
{
	const struct snap_cluster *x = a, *y = b;

	if (x->capacity != y->capacity)
		return x->capacity < y->capacity ? -1 : 1;
	if (x->cpuinfo_max_khz != y->cpuinfo_max_khz)
		return x->cpuinfo_max_khz < y->cpuinfo_max_khz ? -1 : 1;
	return x->policy - y->policy;
}

static int cmp_str(const void *a, const void *b)
{
	return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* sorted names in dir that start with prefix; caller frees each and the array */
static size_t list_dir(const char *dir, const char *prefix, char ***out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0, cap = 0, pl = strlen(prefix);

	*out = NULL;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, pl))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n] = strdup(e->d_name);
		if (v[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	return n;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void rd_khz(const char *dir, const char *file, uint32_t *v, struct notes *nt)
{
	char path[PATH_MAX];
	uint64_t x = 0;
	int r;

	fsr_fmt(path, sizeof(path), "%s/%s", dir, file);
	r = fsr_read_u64(path, &x);
	if (r) {
		note(nt, path, r);
		return;
	}
	*v = (uint32_t)x;
}

static void sample_topology(struct col_ctx *ctx, struct snap_topology *tp)
{
	char path[PATH_MAX], text[256];
	uint64_t possible = 0, online = 0;
	struct notes nt = { .n = 0 };
	int r;

	r = fsr_read(col_path(ctx, path, sizeof(path), "/sys/devices/system/cpu/possible"), text, sizeof(text));
	if (r < 0 || fsr_cpulist(text, &possible) || !possible) {
		snap_status_set(&tp->st, SNAP_SRC_SYSFS, false, "%s: %s", path,
				r < 0 ? strerror(-r) : "malformed");
		return;
	}
	r = fsr_read(col_path(ctx, path, sizeof(path), "/sys/devices/system/cpu/online"), text, sizeof(text));
	if (r < 0 || fsr_cpulist(text, &online)) {
		note(&nt, path, r < 0 ? r : -EINVAL);
		online = possible;
	}
	tp->ncpus = 0;
	tp->nonline = 0;
	for (int c = 0; c < SNAP_MAX_CPUS; c++) {
		if (!((possible >> c) & 1))
			continue;
		struct snap_topo_cpu *o = &tp->cpu[tp->ncpus++];
		uint64_t cap = 1024;
		o->cpu = c;
		o->online = (online >> c) & 1;
		o->cluster = -1;
		tp->nonline += o->online;
		col_path(ctx, path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpu_capacity", c);
		r = fsr_read_u64(path, &cap);
		if (r == -EINVAL)
			note(&nt, path, r);
		o->capacity = r ? 1024 : (uint32_t)cap;
	}
	/* clusters from cpufreq policies */
	char dir[PATH_MAX], **pol;
	size_t np = list_dir(col_path(ctx, dir, sizeof(dir), "/sys/devices/system/cpu/cpufreq"), "policy", &pol);
	tp->nclusters = 0;
	for (size_t i = 0; i < np && tp->nclusters < SNAP_MAX_CLUSTERS; i++) {
		char pdir[PATH_MAX];
		struct snap_cluster *cl = &tp->cluster[tp->nclusters];
		memset(cl, 0, sizeof(*cl));
		fsr_fmt(pdir, sizeof(pdir), "%s/%s", dir, pol[i]);
		cl->policy = atoi(pol[i] + 6);
		fsr_fmt(path, sizeof(path), "%s/related_cpus", pdir);
		r = fsr_read(path, text, sizeof(text));
		if (r < 0) {
			fsr_fmt(path, sizeof(path), "%s/affected_cpus", pdir);
			r = fsr_read(path, text, sizeof(text));
		}
		/* related_cpus is space-separated ("4 5 6 7 "): make it a list */
		if (r >= 0) {
			char *e = text + strlen(text);
			while (e > text && (e[-1] == ' ' || e[-1] == '\n'))
				*--e = 0;
			for (char *q = text; *q; q++)
				if (*q == ' ')
					*q = ',';
		}
		if (r < 0 || fsr_cpulist(text, &cl->cpumask[0]) || !cl->cpumask[0]) {
			note(&nt, path, r < 0 ? r : -EINVAL);
			continue;
		}
		rd_khz(pdir, "scaling_cur_freq", &cl->cur_khz, &nt);
		rd_khz(pdir, "scaling_min_freq", &cl->min_khz, &nt);
		rd_khz(pdir, "scaling_max_freq", &cl->max_khz, &nt);
		rd_khz(pdir, "cpuinfo_max_freq", &cl->cpuinfo_max_khz, &nt);
		fsr_fmt(path, sizeof(path), "%s/scaling_governor", pdir);
		if (fsr_read_line(path, cl->governor, sizeof(cl->governor)))
			cl->governor[0] = 0;
		tp->nclusters++;
	}
	free_list(pol, np);
	if (!tp->nclusters) {
		/* no cpufreq: group by capacity */
		for (uint32_t i = 0; i < tp->ncpus; i++) {
			uint32_t k;
			for (k = 0; k < tp->nclusters; k++)
				if (tp->cluster[k].capacity == tp->cpu[i].capacity)
					break;
			if (k == tp->nclusters) {
				if (k >= SNAP_MAX_CLUSTERS)
					continue;
				memset(&tp->cluster[k], 0, sizeof(tp->cluster[k]));
				tp->cluster[k].policy = -1;
				tp->cluster[k].capacity = tp->cpu[i].capacity;
				tp->nclusters++;
			}
			tp->cluster[k].cpumask[0] |= 1ULL << tp->cpu[i].cpu;
		}
	}
	/* capacity of a policy's CPUs, then order LITTLE first */
	for (uint32_t k = 0; k < tp->nclusters; k++) {
		struct snap_cluster *cl = &tp->cluster[k];
		cl->ncpus = (uint32_t)__builtin_popcountll(cl->cpumask[0]);
		for (uint32_t i = 0; i < tp->ncpus; i++)
			if ((cl->cpumask[0] >> tp->cpu[i].cpu) & 1) {
				cl->capacity = tp->cpu[i].capacity;
				break;
			}
	}
	qsort(tp->cluster, tp->nclusters, sizeof(tp->cluster[0]), cmp_cluster);
	for (uint32_t k = 0; k < tp->nclusters; k++) {
		const struct snap_cluster *cl = &tp->cluster[k];
		for (uint32_t i = 0; i < tp->ncpus; i++)
			if ((cl->cpumask[0] >> tp->cpu[i].cpu) & 1) {
				tp->cpu[i].cluster = (int32_t)k;
				tp->cpu[i].cur_khz = cl->cur_khz;
				tp->cpu[i].min_khz = cl->min_khz;
				tp->cpu[i].max_khz = cl->max_khz;
			}
	}
	finish_notes(&nt);
	snap_status_set(&tp->st, SNAP_SRC_SYSFS, true, "%s", nt.first);
}

/* ---- thermal ------------------------------------------------------------- */

static void sample_thermal(struct col_ctx *ctx, struct snap_thermal *th)
{
	char dir[PATH_MAX], path[PATH_MAX], **zones;
	struct notes nt = { .n = 0 };
	size_t nz = list_dir(col_path(ctx, dir, sizeof(dir), "/sys/class/thermal"), "thermal_zone", &zones);

	th->n = 0;
	th->max_temp_mc = 0;
	bool any = false;
	for (size_t i = 0; i < nz && th->n < SNAP_MAX_ZONES; i++) {
		struct snap_thermal_zone *z = &th->z[th->n++];
		int64_t t;
		memset(z, 0, sizeof(*z));
		z->id = atoi(zones[i] + 12);
		fsr_fmt(path, sizeof(path), "%s/%s/type", dir, zones[i]);
		if (fsr_read_line(path, z->type, sizeof(z->type)))
			snprintf(z->type, sizeof(z->type), "%s", zones[i]);
		fsr_fmt(path, sizeof(path), "%s/%s/temp", dir, zones[i]);
		int r = fsr_read_i64(path, &t);
		if (r) {
			note(&nt, path, r);
			continue;
		}
		z->valid = true;
		z->temp_mc = (int32_t)t;
		if (!any || z->temp_mc > th->max_temp_mc)
			th->max_temp_mc = z->temp_mc;
		any = true;
	}
	free_list(zones, nz);
	finish_notes(&nt);
	if (!nz)
		snap_status_set(&th->st, SNAP_SRC_SYSFS, false, "%s: no thermal zones", dir);
	else
		snap_status_set(&th->st, SNAP_SRC_SYSFS, any, "%s", nt.first);
}

/* ---- accelerators --------------------------------------------------------- */

int col_parse_rk_load(const char *text, double *pct, uint64_t *freq_hz)
{
	unsigned long long f = 0;
	unsigned load = 0;
	int used = 0;

	if (sscanf(text, "%u@%lluHz%n", &load, &f, &used) != 2 || load > 100)
		return -EINVAL;
	while (text[used] == '\n' || text[used] == ' ')
		used++;
	if (text[used])
		return -EINVAL;
	*pct = load;
	*freq_hz = f;
	return 0;
}

int col_parse_npu_load(const char *text, double *core_pct, uint32_t max, uint32_t *ncores)
{
	const char *p;
	uint32_t n = 0;

	if (strncmp(text, "NPU load:", 9))
		return -EINVAL;
	p = text + 9;
	if (!strstr(p, "Core")) {
		unsigned v;
		if (sscanf(p, " %u%%", &v) != 1 || v > 100)
			return -EINVAL;
		core_pct[0] = v;
		*ncores = 1;
		return 0;
	}
	while ((p = strstr(p, "Core"))) {
		unsigned idx, v;
		int used = 0;
		if (sscanf(p, "Core%u: %u%%%n", &idx, &v, &used) != 2 || v > 100 || idx != n)
			return -EINVAL;
		if (n < max)
			core_pct[n] = v;
		n++;
		p += used;
	}
	*ncores = n < max ? n : max;
	return n ? 0 : -EINVAL;
}

static bool name_has(const char *name, const char *part)
{
	return strstr(name, part) != NULL;
}

static void sample_accels(struct col_ctx *ctx, struct snap_accels *ac)
{
	char dir[PATH_MAX], path[PATH_MAX], text[256], **devs;
	size_t nd = list_dir(col_path(ctx, dir, sizeof(dir), "/sys/class/devfreq"), "", &devs);
	uint64_t npu_freq = 0;
	int bad = 0;

	ac->n = 0;
	for (size_t i = 0; i < nd && ac->n < SNAP_MAX_ACCELS; i++) {
		const char *name = devs[i];
		bool gpu = name_has(name, "gpu") || name_has(name, "ga10b") || name_has(name, "gv11b") ||
			   name_has(name, "gp10b");
		uint64_t cur = 0;
		fsr_fmt(path, sizeof(path), "%s/%s/cur_freq", dir, name);
		fsr_read_u64(path, &cur);
		if (name_has(name, "npu")) {
			npu_freq = cur;
			continue;
		}
		if (!gpu)
			continue;
		struct snap_accel *a = &ac->a[ac->n];
		memset(a, 0, sizeof(*a));
		snprintf(a->name, sizeof(a->name), "%s", name);
		a->cur_freq_hz = cur;
		/* Jetson: device/load in per-mille */
		fsr_fmt(path, sizeof(path), "%s/%s/device/load", dir, name);
		int r = fsr_read(path, text, sizeof(text));
		if (r >= 0 && !strchr(text, '@')) {
			uint64_t pm;
			a->kind = SNAP_ACCEL_JETSON_GPU;
			if (fsr_parse_u64(text, &pm) || pm > 1000) {
				snap_status_set(&a->st, SNAP_SRC_SYSFS, false, "%s: malformed (want per-mille 0..1000)", path);
				bad++;
			} else {
				a->load_pct = (double)pm / 10.0;
				snap_status_set(&a->st, SNAP_SRC_SYSFS, true, NULL);
			}
			ac->n++;
			continue;
		}
		/* Rockchip (Mali): load "NN@FREQHz" */
		fsr_fmt(path, sizeof(path), "%s/%s/load", dir, name);
		r = fsr_read(path, text, sizeof(text));
		if (r < 0)
			continue; /* a devfreq GPU without a load file: nothing to report */
		a->kind = SNAP_ACCEL_RK_GPU;
		uint64_t f = 0;
		if (col_parse_rk_load(text, &a->load_pct, &f)) {
			snap_status_set(&a->st, SNAP_SRC_SYSFS, false, "%s: malformed (want NN@FREQHz)", path);
			bad++;
		} else {
			if (f)
				a->cur_freq_hz = f;
			snap_status_set(&a->st, SNAP_SRC_SYSFS, true, NULL);
		}
		ac->n++;
	}
	free_list(devs, nd);
	/* RK NPU */
	static const char *const npu_files[] = { "/sys/kernel/debug/rknpu/load", "/proc/rknpu/load" };
	for (size_t i = 0; i < 2 && ac->n < SNAP_MAX_ACCELS; i++) {
		int r = fsr_read(col_path(ctx, path, sizeof(path), "%s", npu_files[i]), text, sizeof(text));
		if (r < 0)
			continue;
		struct snap_accel *a = &ac->a[ac->n++];
		memset(a, 0, sizeof(*a));
		a->kind = SNAP_ACCEL_RKNPU;
		snprintf(a->name, sizeof(a->name), "rknpu");
		a->cur_freq_hz = npu_freq;
		if (col_parse_npu_load(text, a->core_pct, SNAP_MAX_NPU_CORES, &a->ncores)) {
			snap_status_set(&a->st, SNAP_SRC_SYSFS, false, "%s: malformed (want \"NPU load: Core0: N%%, ...\")", path);
			a->ncores = 0;
			bad++;
		} else {
			double sum = 0;
			for (uint32_t k = 0; k < a->ncores; k++)
				sum += a->core_pct[k];
			a->load_pct = a->ncores ? sum / a->ncores : 0;
			snap_status_set(&a->st, SNAP_SRC_SYSFS, true, NULL);
		}
		break;
	}
	if (!ac->n)
		snap_status_set(&ac->st, SNAP_SRC_SYSFS, false, "no GPU or NPU load found under %s%s",
				ctx->root[0] ? ctx->root : "", "/sys/class/devfreq or rknpu debugfs");
	else
		snap_status_set(&ac->st, SNAP_SRC_SYSFS, true, "%s", bad ? "an accelerator's load is unreadable" : "");
}

static void board_sample(struct col_ctx *ctx, void *state, struct snap *s)
{
	sample_topology(ctx, &s->topo);
	sample_thermal(ctx, &s->thermal);
	sample_accels(ctx, &s->accel);
}

const struct col_ops col_board_ops = {
	.name = "board",
	.open = board_open,
	.sample = board_sample,
	.close = board_close,
};
