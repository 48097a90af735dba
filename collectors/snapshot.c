/*
 * snapshot.c: allocation, histogram helpers and the one JSON form of a
 * snapshot (docs/snapshot.md).
 *
 * DESIGN
 * The JSON form is driven by const tables that describe each struct field
 * by field: JSON name, kind, offset, and for arrays the element table and the
 * offset of the count. The same tables encode and decode, so the two
 * directions cannot drift apart, and adding a field to snapshot.h is one line
 * here. A group's `struct snap_status` is written inline into its object as
 * "src", "valid" and (when set) "err", which is how every field names its
 * source. Conventions of the form:
 *   - u64 counters equal to SNAP_UNLIMITED are written as the string "max";
 *   - histograms are arrays with trailing zero buckets dropped;
 *   - CPU masks are hex strings ("0x3");
 *   - enums are their names ("bpf", "affinity", "rk-gpu");
 *   - fields flagged OMITZERO are left out when zero (event-specific fields).
 * Decoding ignores unknown keys and leaves missing ones zero.
 */
#include "collectors/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct snap *snap_new(void)
{
	struct snap *s = calloc(1, sizeof(*s));

	if (s)
		s->version = SNAP_VERSION;
	return s;
}

void snap_free(struct snap *s)
{
	free(s);
}

void snap_reset(struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->version = SNAP_VERSION;
}

static const char *const source_names[] = {
	[SNAP_SRC_NONE] = "none",
	[SNAP_SRC_BPF] = "bpf",
	[SNAP_SRC_PROCFS] = "procfs",
	[SNAP_SRC_CGROUPFS] = "cgroupfs",
	[SNAP_SRC_SYSFS] = "sysfs",
	[SNAP_SRC_CORE] = "core",
};

static const char *const event_names[] = {
	[SNAP_EV_NONE] = "none",
	[SNAP_EV_AFFINITY] = "affinity",
	[SNAP_EV_EXEC] = "exec",
	[SNAP_EV_EXIT] = "exit",
	[SNAP_EV_OOM] = "oom",
	[SNAP_EV_CGROUP_ATTACH] = "cgroup-attach",
};

static const char *const accel_names[] = {
	[SNAP_ACCEL_NONE] = "none",
	[SNAP_ACCEL_JETSON_GPU] = "jetson-gpu",
	[SNAP_ACCEL_RK_GPU] = "rk-gpu",
	[SNAP_ACCEL_RKNPU] = "rknpu",
};

static const char *const cgver_names[] = {
	[SNAP_CG_NONE] = "none",
	[SNAP_CG_V1] = "v1",
	[SNAP_CG_V2] = "v2",
};

static const char *const target_names[] = {
	[SNAP_TARGET_SYSTEM] = "system",
	[SNAP_TARGET_PID] = "pid",
	[SNAP_TARGET_CGROUP] = "cgroup",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *snap_source_name(enum snap_source src)
{
	return (unsigned)src < NELEM(source_names) ? source_names[src] : "?";
}

const char *snap_event_name(enum snap_event_type t)
{
	return (unsigned)t < NELEM(event_names) ? event_names[t] : "?";
}

const char *snap_accel_name(enum snap_accel_kind k)
{
	return (unsigned)k < NELEM(accel_names) ? accel_names[k] : "?";
}

unsigned snap_rq_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (us) {
		b++;
		us >>= 1;
	}
	return b < SNAP_RQ_BUCKETS ? b : SNAP_RQ_BUCKETS - 1;
}

uint64_t snap_hist_pct(const uint64_t hist[SNAP_RQ_BUCKETS], double p)
{
	uint64_t total = 0, acc = 0;

	for (unsigned i = 0; i < SNAP_RQ_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	/* the rank of the percentile, 1-based, rounded up */
	double want = p / 100.0 * (double)total;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want || rank == 0)
		rank++;
	for (unsigned i = 0; i < SNAP_RQ_BUCKETS; i++) {
		acc += hist[i];
		if (acc >= rank)
			return (1ULL << i) * 1000; /* upper bound of bucket i: 2^i us */
	}
	return (1ULL << (SNAP_RQ_BUCKETS - 1)) * 1000;
}

void snap_status_set(struct snap_status *st, enum snap_source src, bool valid,
		     const char *fmt, ...)
{
	st->source = (uint8_t)src;
	st->valid = valid;
	st->err[0] = 0;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(st->err, sizeof(st->err), fmt, ap);
		va_end(ap);
	}
}

/* ---- field tables --------------------------------------------------------- */

enum fkind {
	F_STATUS,   /* struct snap_status, inline */
	F_BOOL,
	F_U8,
	F_I32,
	F_U32,
	F_U64,      /* SNAP_UNLIMITED <-> "max" */
	F_DBL,
	F_STR,      /* char[size] */
	F_HIST,     /* uint64_t[SNAP_RQ_BUCKETS], trailing zeros dropped */
	F_DBLARR,   /* double[size], first *count entries (count_off) */
	F_MASK,     /* uint64_t[SNAP_MASK_WORDS] as hex */
	F_ENUM,     /* uint8_t with names */
	F_OBJ,      /* nested struct, table sub */
	F_OBJARR,   /* array of sub, count at count_off (uint32_t), elem size esz, cap size */
};

#define OMITZERO 1u

struct fdesc;
struct field {
	const char *name;
	enum fkind kind;
	size_t off;
	size_t size;                 /* F_STR buffer, F_OBJARR/F_DBLARR capacity */
	size_t esz;                  /* F_OBJARR element size */
	size_t count_off;            /* F_OBJARR/F_DBLARR: offset of the uint32_t count */
	const struct fdesc *sub;     /* F_OBJ, F_OBJARR */
	const char *const *names;    /* F_ENUM */
	size_t nnames;
	unsigned flags;
};

struct fdesc {
	const struct field *f;
	size_t n;
};

#define FLD(T, k, m) { .name = #m, .kind = (k), .off = offsetof(T, m) }
#define FLDZ(T, k, m) { .name = #m, .kind = (k), .off = offsetof(T, m), .flags = OMITZERO }
#define FSTR(T, m) { .name = #m, .kind = F_STR, .off = offsetof(T, m), .size = sizeof(((T *)0)->m) }
#define FSTRZ(T, m) { .name = #m, .kind = F_STR, .off = offsetof(T, m), .size = sizeof(((T *)0)->m), .flags = OMITZERO }
#define FSTATUS(T) { .name = "st", .kind = F_STATUS, .off = offsetof(T, st) }
#define FENUM(T, m, tbl) { .name = #m, .kind = F_ENUM, .off = offsetof(T, m), .names = (tbl), .nnames = NELEM(tbl) }
#define FOBJ(T, m, d) { .name = #m, .kind = F_OBJ, .off = offsetof(T, m), .sub = &(d) }
#define FARR(T, m, cnt, d) { .name = #m, .kind = F_OBJARR, .off = offsetof(T, m), \
	.size = NELEM(((T *)0)->m), .esz = sizeof(((T *)0)->m[0]), .count_off = offsetof(T, cnt), .sub = &(d) }
#define FDBLARR(T, m, cnt) { .name = #m, .kind = F_DBLARR, .off = offsetof(T, m), \
	.size = NELEM(((T *)0)->m), .count_off = offsetof(T, cnt) }
#define DESC(tbl) { .f = (tbl), .n = NELEM(tbl) }

static const struct field cpu_f[] = {
	FLD(struct snap_cpu, F_I32, cpu),
	FLD(struct snap_cpu, F_BOOL, online),
	FLD(struct snap_cpu, F_U64, busy_target_ns),
	FLD(struct snap_cpu, F_U64, busy_other_ns),
	FLD(struct snap_cpu, F_U64, idle_ns),
	FLD(struct snap_cpu, F_DBL, busy_pct),
	FLD(struct snap_cpu, F_DBL, target_pct),
	FLD(struct snap_cpu, F_U64, switches),
	FLD(struct snap_cpu, F_U64, migrations_in),
	FLD(struct snap_cpu, F_U64, rq_count),
	FLD(struct snap_cpu, F_HIST, rq_hist),
	FLD(struct snap_cpu, F_U64, rq_p50_ns),
	FLD(struct snap_cpu, F_U64, rq_p99_ns),
};
static const struct fdesc cpu_d = DESC(cpu_f);

static const struct field cpus_f[] = {
	FSTATUS(struct snap_cpus),
	FLD(struct snap_cpus, F_U64, switches),
	FLD(struct snap_cpus, F_U64, migrations),
	FLD(struct snap_cpus, F_U64, target_migrations),
	FARR(struct snap_cpus, cpu, n, cpu_d),
};
static const struct fdesc cpus_d = DESC(cpus_f);

static const struct field thread_f[] = {
	FLD(struct snap_thread, F_I32, tid),
	FLD(struct snap_thread, F_I32, pid),
	FSTR(struct snap_thread, comm),
	FLD(struct snap_thread, F_U64, oncpu_ns),
	FLD(struct snap_thread, F_DBL, cpu_pct),
	FLD(struct snap_thread, F_U64, vol_switches),
	FLD(struct snap_thread, F_U64, invol_switches),
	FLD(struct snap_thread, F_U64, migrations),
	FLD(struct snap_thread, F_I32, last_cpu),
	FLD(struct snap_thread, F_U64, rq_count),
	FLD(struct snap_thread, F_HIST, rq_hist),
	FLD(struct snap_thread, F_U64, rq_p50_ns),
	FLD(struct snap_thread, F_U64, rq_p99_ns),
};
static const struct fdesc thread_d = DESC(thread_f);

static const struct field threads_f[] = {
	FSTATUS(struct snap_threads),
	FLD(struct snap_threads, F_U32, dropped),
	FLD(struct snap_threads, F_U64, rq_count),
	FLD(struct snap_threads, F_HIST, rq_hist),
	FLD(struct snap_threads, F_U64, rq_p50_ns),
	FLD(struct snap_threads, F_U64, rq_p99_ns),
	FARR(struct snap_threads, t, n, thread_d),
};
static const struct fdesc threads_d = DESC(threads_f);

static const struct field psiline_f[] = {
	FLD(struct snap_psi_line, F_DBL, avg10),
	FLD(struct snap_psi_line, F_DBL, avg60),
	FLD(struct snap_psi_line, F_DBL, avg300),
	FLD(struct snap_psi_line, F_U64, total_us),
};
static const struct fdesc psiline_d = DESC(psiline_f);

static const struct field psires_f[] = {
	FLD(struct snap_psi_res, F_BOOL, valid),
	FLD(struct snap_psi_res, F_BOOL, has_full),
	FOBJ(struct snap_psi_res, some, psiline_d),
	FOBJ(struct snap_psi_res, full, psiline_d),
};
static const struct fdesc psires_d = DESC(psires_f);

static const struct field psi_f[] = {
	FSTATUS(struct snap_psi),
	FOBJ(struct snap_psi, cpu, psires_d),
	FOBJ(struct snap_psi, memory, psires_d),
	FOBJ(struct snap_psi, io, psires_d),
};
static const struct fdesc psi_d = DESC(psi_f);

static const struct field cgroup_f[] = {
	FSTATUS(struct snap_cgroup),
	FENUM(struct snap_cgroup, version, cgver_names),
	FSTR(struct snap_cgroup, path),
	FLD(struct snap_cgroup, F_U64, cg_id),
	FLD(struct snap_cgroup, F_U32, nr_tasks),
	FLD(struct snap_cgroup, F_U64, usage_ns),
	FLD(struct snap_cgroup, F_DBL, cpu_pct),
	FLD(struct snap_cgroup, F_U64, nr_periods),
	FLD(struct snap_cgroup, F_U64, nr_throttled),
	FLD(struct snap_cgroup, F_U64, throttled_ns),
	FLD(struct snap_cgroup, F_U64, d_nr_throttled),
	FLD(struct snap_cgroup, F_U64, d_throttled_ns),
	FLD(struct snap_cgroup, F_U64, quota_us),
	FLD(struct snap_cgroup, F_U64, period_us),
	FLD(struct snap_cgroup, F_U64, weight),
	FLD(struct snap_cgroup, F_U64, shares),
	FLD(struct snap_cgroup, F_U64, mem_current_bytes),
	FLD(struct snap_cgroup, F_U64, mem_max_bytes),
	FLD(struct snap_cgroup, F_U64, mem_high_bytes),
	FLD(struct snap_cgroup, F_U64, mem_peak_bytes),
	FLD(struct snap_cgroup, F_U64, mem_events_high),
	FLD(struct snap_cgroup, F_U64, mem_events_max),
	FLD(struct snap_cgroup, F_U64, mem_events_oom),
	FLD(struct snap_cgroup, F_U64, mem_events_oom_kill),
	FLD(struct snap_cgroup, F_BOOL, under_oom),
	FLD(struct snap_cgroup, F_BOOL, oom_kill_disable),
	FOBJ(struct snap_cgroup, psi, psi_d),
};
static const struct fdesc cgroup_d = DESC(cgroup_f);

static const struct field topocpu_f[] = {
	FLD(struct snap_topo_cpu, F_I32, cpu),
	FLD(struct snap_topo_cpu, F_BOOL, online),
	FLD(struct snap_topo_cpu, F_U32, capacity),
	FLD(struct snap_topo_cpu, F_I32, cluster),
	FLD(struct snap_topo_cpu, F_U32, cur_khz),
	FLD(struct snap_topo_cpu, F_U32, min_khz),
	FLD(struct snap_topo_cpu, F_U32, max_khz),
};
static const struct fdesc topocpu_d = DESC(topocpu_f);

static const struct field cluster_f[] = {
	FLD(struct snap_cluster, F_I32, policy),
	FLD(struct snap_cluster, F_U32, capacity),
	FLD(struct snap_cluster, F_U32, ncpus),
	FLD(struct snap_cluster, F_MASK, cpumask),
	FLD(struct snap_cluster, F_U32, cur_khz),
	FLD(struct snap_cluster, F_U32, min_khz),
	FLD(struct snap_cluster, F_U32, max_khz),
	FLD(struct snap_cluster, F_U32, cpuinfo_max_khz),
	FSTR(struct snap_cluster, governor),
};
static const struct fdesc cluster_d = DESC(cluster_f);

static const struct field topo_f[] = {
	FSTATUS(struct snap_topology),
	FLD(struct snap_topology, F_U32, nonline),
	FARR(struct snap_topology, cpu, ncpus, topocpu_d),
	FARR(struct snap_topology, cluster, nclusters, cluster_d),
};
static const struct fdesc topo_d = DESC(topo_f);

static const struct field zone_f[] = {
	FLD(struct snap_thermal_zone, F_I32, id),
	FSTR(struct snap_thermal_zone, type),
	FLD(struct snap_thermal_zone, F_BOOL, valid),
	FLD(struct snap_thermal_zone, F_I32, temp_mc),
};
static const struct fdesc zone_d = DESC(zone_f);

static const struct field thermal_f[] = {
	FSTATUS(struct snap_thermal),
	FLD(struct snap_thermal, F_I32, max_temp_mc),
	FARR(struct snap_thermal, z, n, zone_d),
};
static const struct fdesc thermal_d = DESC(thermal_f);

static const struct field accel_f[] = {
	FSTATUS(struct snap_accel),
	FENUM(struct snap_accel, kind, accel_names),
	FSTR(struct snap_accel, name),
	FLD(struct snap_accel, F_DBL, load_pct),
	FLD(struct snap_accel, F_U64, cur_freq_hz),
	FLD(struct snap_accel, F_U32, ncores),
	FDBLARR(struct snap_accel, core_pct, ncores),
};
static const struct fdesc accel_d = DESC(accel_f);

static const struct field accels_f[] = {
	FSTATUS(struct snap_accels),
	FARR(struct snap_accels, a, n, accel_d),
};
static const struct fdesc accels_d = DESC(accels_f);

static const struct field corekv_f[] = {
	FSTR(struct snap_core_stat, key),
	FLD(struct snap_core_stat, F_DBL, value),
};
static const struct fdesc corekv_d = DESC(corekv_f);

static const struct field core_f[] = {
	FSTATUS(struct snap_core),
	FARR(struct snap_core, kv, n, corekv_d),
};
static const struct fdesc core_d = DESC(core_f);

static const struct field event_f[] = {
	FENUM(struct snap_event, type, event_names),
	FLD(struct snap_event, F_U64, ts_ns),
	FLD(struct snap_event, F_I32, pid),
	FLDZ(struct snap_event, F_I32, tgid),
	FLDZ(struct snap_event, F_I32, caller),
	FSTR(struct snap_event, comm),
	FLDZ(struct snap_event, F_MASK, cpumask),
	FLDZ(struct snap_event, F_MASK, prev_cpumask),
	FLDZ(struct snap_event, F_BOOL, at_switch),
	FLD(struct snap_event, F_I32, result),
	FLDZ(struct snap_event, F_U64, cg_id),
	FLDZ(struct snap_event, F_U64, total_vm_kb),
	FLDZ(struct snap_event, F_U64, anon_rss_kb),
	FLDZ(struct snap_event, F_U64, file_rss_kb),
	FLDZ(struct snap_event, F_U64, shmem_rss_kb),
	FLDZ(struct snap_event, F_U64, pgtables_kb),
	FLDZ(struct snap_event, F_I32, oom_score_adj),
	FSTRZ(struct snap_event, path),
};
static const struct fdesc event_d = DESC(event_f);

static const struct field events_f[] = {
	FSTATUS(struct snap_events),
	FLD(struct snap_events, F_U32, dropped),
	FARR(struct snap_events, ev, n, event_d),
};
static const struct fdesc events_d = DESC(events_f);

static const struct field source_f[] = {
	FSTR(struct snap_source_info, name),
	FLD(struct snap_source_info, F_BOOL, live),
	FSTRZ(struct snap_source_info, why),
};
static const struct fdesc source_d = DESC(source_f);

static const struct field target_f[] = {
	FENUM(struct snap_target, kind, target_names),
	FLDZ(struct snap_target, F_I32, pid),
	FSTRZ(struct snap_target, cgroup),
};
static const struct fdesc target_d = DESC(target_f);

static const struct field snap_f[] = {
	FLD(struct snap, F_U32, version),
	FLD(struct snap, F_U64, seq),
	FLD(struct snap, F_U64, ts_ns),
	FLD(struct snap, F_U64, mono_ns),
	FLD(struct snap, F_U64, interval_ns),
	FSTR(struct snap, host),
	FOBJ(struct snap, target, target_d),
	FARR(struct snap, sources, nsources, source_d),
	FOBJ(struct snap, cpus, cpus_d),
	FOBJ(struct snap, threads, threads_d),
	FOBJ(struct snap, cgroup, cgroup_d),
	FOBJ(struct snap, psi, psi_d),
	FOBJ(struct snap, topo, topo_d),
	FOBJ(struct snap, thermal, thermal_d),
	FOBJ(struct snap, accel, accels_d),
	FOBJ(struct snap, core, core_d),
	FOBJ(struct snap, events, events_d),
};
static const struct fdesc snap_d = DESC(snap_f);

/* ---- encoding ------------------------------------------------------------- */

static json_t *enc_obj(const void *p, const struct fdesc *d);

static json_t *enc_u64(uint64_t v)
{
	if (v == SNAP_UNLIMITED)
		return json_string("max");
	if (v > (uint64_t)INT64_MAX) /* beyond JSON integers in jansson: keep digits */
		return json_real((double)v);
	return json_integer((json_int_t)v);
}

static json_t *enc_mask(const uint64_t *m)
{
	char buf[SNAP_MASK_WORDS * 16 + 3], *w = buf;
	int top = SNAP_MASK_WORDS - 1;

	while (top > 0 && !m[top])
		top--;
	w += sprintf(w, "0x%" PRIx64, m[top]);
	for (int i = top - 1; i >= 0; i--)
		w += sprintf(w, "%016" PRIx64, m[i]);
	return json_string(buf);
}

static bool field_is_zero(const void *fp, const struct field *f)
{
	switch (f->kind) {
	case F_I32: return *(const int32_t *)fp == 0;
	case F_U64: return *(const uint64_t *)fp == 0;
	case F_STR: return *(const char *)fp == 0;
	case F_BOOL: return !*(const bool *)fp;
	case F_MASK:
		for (int i = 0; i < SNAP_MASK_WORDS; i++)
			if (((const uint64_t *)fp)[i])
				return false;
		return true;
	default: return false;
	}
}

static int enc_field(json_t *o, const void *base, const struct field *f)
{
	const char *fp = (const char *)base + f->off;
	json_t *v = NULL;

	if ((f->flags & OMITZERO) && field_is_zero(fp, f))
		return 0;
	switch (f->kind) {
	case F_STATUS: {
		const struct snap_status *st = (const void *)fp;
		if (json_object_set_new(o, "src", json_string(snap_source_name(st->source))) ||
		    json_object_set_new(o, "valid", json_boolean(st->valid)))
			return -ENOMEM;
		if (st->err[0] && json_object_set_new(o, "err", json_stringn(st->err, strnlen(st->err, sizeof(st->err)))))
			return -ENOMEM;
		return 0;
	}
	case F_BOOL: v = json_boolean(*(const bool *)fp); break;
	case F_U8: v = json_integer(*(const uint8_t *)fp); break;
	case F_I32: v = json_integer(*(const int32_t *)fp); break;
	case F_U32: v = json_integer(*(const uint32_t *)fp); break;
	case F_U64: v = enc_u64(*(const uint64_t *)fp); break;
	case F_DBL: v = json_real(*(const double *)fp); break;
	case F_STR: v = json_stringn(fp, strnlen(fp, f->size)); break;
	case F_MASK: v = enc_mask((const uint64_t *)fp); break;
	case F_ENUM: {
		uint8_t e = *(const uint8_t *)fp;
		v = e < f->nnames && f->names[e] ? json_string(f->names[e]) : json_integer(e);
		break;
	}
	case F_HIST: {
		const uint64_t *h = (const uint64_t *)fp;
		int last = SNAP_RQ_BUCKETS - 1;
		while (last >= 0 && !h[last])
			last--;
		v = json_array();
		for (int i = 0; v && i <= last; i++)
			if (json_array_append_new(v, enc_u64(h[i])))
				return json_decref(v), -ENOMEM;
		break;
	}
	case F_DBLARR: {
		uint32_t n = *(const uint32_t *)((const char *)base + f->count_off);
		if (n > f->size)
			n = (uint32_t)f->size;
		v = json_array();
		for (uint32_t i = 0; v && i < n; i++)
			if (json_array_append_new(v, json_real(((const double *)fp)[i])))
				return json_decref(v), -ENOMEM;
		break;
	}
	case F_OBJ: v = enc_obj(fp, f->sub); break;
	case F_OBJARR: {
		uint32_t n = *(const uint32_t *)((const char *)base + f->count_off);
		if (n > f->size)
			n = (uint32_t)f->size;
		v = json_array();
		for (uint32_t i = 0; v && i < n; i++) {
			json_t *e = enc_obj(fp + i * f->esz, f->sub);
			if (!e || json_array_append_new(v, e))
				return json_decref(v), -ENOMEM;
		}
		break;
	}
	}
	if (!v || json_object_set_new(o, f->name, v))
		return -ENOMEM;
	return 0;
}

static json_t *enc_obj(const void *p, const struct fdesc *d)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < d->n; i++) {
		if (enc_field(o, p, &d->f[i]) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

int snap_to_json(const struct snap *s, char *buf, size_t len)
{
	json_t *o = enc_obj(s, &snap_d);
	int ret;

	if (!o)
		return -ENOMEM;
	size_t need = json_dumpb(o, NULL, 0, JSON_FLAGS);
	if (!need) {
		ret = -ENOMEM;
		goto out;
	}
	if (need < len) {
		json_dumpb(o, buf, need, JSON_FLAGS);
		buf[need] = 0;
	} else if (len) {
		buf[0] = 0;
	}
	ret = need > INT32_MAX ? -EOVERFLOW : (int)need;
out:
	json_decref(o);
	return ret;
}

int snap_write_json(const struct snap *s, FILE *f)
{
	json_t *o = enc_obj(s, &snap_d);
	int ret = 0;

	if (!o)
		return -ENOMEM;
	if (json_dumpf(o, f, JSON_FLAGS) < 0 || fputc('\n', f) == EOF)
		ret = -EIO;
	json_decref(o);
	return ret;
}

/* ---- decoding ------------------------------------------------------------- */

static int dec_obj(const json_t *o, void *p, const struct fdesc *d, char *err, size_t errlen);

static int dec_u64(const json_t *v, uint64_t *out)
{
	if (json_is_string(v) && !strcmp(json_string_value(v), "max"))
		*out = SNAP_UNLIMITED;
	else if (json_is_integer(v))
		*out = (uint64_t)json_integer_value(v);
	else if (json_is_real(v))
		*out = (uint64_t)json_real_value(v);
	else
		return -EINVAL;
	return 0;
}

static int dec_mask(const json_t *v, uint64_t *m)
{
	const char *s = json_string_value(v);
	size_t n;

	memset(m, 0, SNAP_MASK_WORDS * sizeof(*m));
	if (!s || strncmp(s, "0x", 2))
		return -EINVAL;
	s += 2;
	n = strlen(s);
	if (!n || n > SNAP_MASK_WORDS * 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[n - 1 - i];
		unsigned d;
		if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
		else return -EINVAL;
		m[i / 16] |= (uint64_t)d << (4 * (i % 16));
	}
	return 0;
}

static int dec_field(const json_t *v, void *base, const struct field *f, char *err, size_t errlen)
{
	char *fp = (char *)base + f->off;
	int ret = 0;

	switch (f->kind) {
	case F_STATUS: break; /* handled by dec_obj */
	case F_BOOL:
		if (!json_is_boolean(v)) goto bad;
		*(bool *)fp = json_is_true(v);
		break;
	case F_U8:
		if (!json_is_integer(v)) goto bad;
		*(uint8_t *)fp = (uint8_t)json_integer_value(v);
		break;
	case F_I32:
		if (!json_is_integer(v)) goto bad;
		*(int32_t *)fp = (int32_t)json_integer_value(v);
		break;
	case F_U32:
		if (!json_is_integer(v)) goto bad;
		*(uint32_t *)fp = (uint32_t)json_integer_value(v);
		break;
	case F_U64:
		if (dec_u64(v, (uint64_t *)fp)) goto bad;
		break;
	case F_DBL:
		if (!json_is_number(v)) goto bad;
		*(double *)fp = json_number_value(v);
		break;
	case F_STR:
		if (!json_is_string(v)) goto bad;
		snprintf(fp, f->size, "%s", json_string_value(v));
		break;
	case F_MASK:
		if (dec_mask(v, (uint64_t *)fp)) goto bad;
		break;
	case F_ENUM: {
		if (json_is_integer(v)) {
			*(uint8_t *)fp = (uint8_t)json_integer_value(v);
			break;
		}
		const char *s = json_string_value(v);
		size_t i;
		if (!s) goto bad;
		for (i = 0; i < f->nnames; i++)
			if (f->names[i] && !strcmp(f->names[i], s))
				break;
		if (i == f->nnames) goto bad;
		*(uint8_t *)fp = (uint8_t)i;
		break;
	}
	case F_HIST: {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) > SNAP_RQ_BUCKETS) goto bad;
		json_array_foreach(v, i, e)
			if (dec_u64(e, (uint64_t *)fp + i)) goto bad;
		break;
	}
	case F_DBLARR: {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) > f->size) goto bad;
		json_array_foreach(v, i, e) {
			if (!json_is_number(e)) goto bad;
			((double *)fp)[i] = json_number_value(e);
		}
		break;
	}
	case F_OBJ:
		if (!json_is_object(v)) goto bad;
		ret = dec_obj(v, fp, f->sub, err, errlen);
		break;
	case F_OBJARR: {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) > f->size) goto bad;
		json_array_foreach(v, i, e) {
			if (!json_is_object(e)) goto bad;
			ret = dec_obj(e, fp + i * f->esz, f->sub, err, errlen);
			if (ret)
				goto out;
		}
		*(uint32_t *)((char *)base + f->count_off) = (uint32_t)json_array_size(v);
		break;
	}
	}
	goto out;
bad:
	snprintf(err, errlen, "field \"%s\": wrong type or value", f->name);
	ret = -EINVAL;
out:
	return ret;
}

static int dec_obj(const json_t *o, void *p, const struct fdesc *d, char *err, size_t errlen)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct field *f = &d->f[i];
		if (f->kind == F_STATUS) {
			struct snap_status *st = (void *)((char *)p + f->off);
			const char *src = json_string_value(json_object_get(o, "src"));
			const char *e = json_string_value(json_object_get(o, "err"));
			for (size_t k = 0; src && k < NELEM(source_names); k++)
				if (!strcmp(source_names[k], src))
					st->source = (uint8_t)k;
			st->valid = json_is_true(json_object_get(o, "valid"));
			snprintf(st->err, sizeof(st->err), "%s", e ? e : "");
			continue;
		}
		json_t *v = json_object_get(o, f->name);
		if (!v || json_is_null(v))
			continue;
		int ret = dec_field(v, p, f, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int snap_from_json(struct snap *s, const char *json, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o;
	int ret;

	snap_reset(s);
	o = json_loads(json, JSON_DISABLE_EOF_CHECK, &je);
	if (!o) {
		snprintf(err, errlen, "bad JSON at line %d column %d: %s", je.line, je.column, je.text);
		ret = -EINVAL;
		goto out;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "not a JSON object");
		ret = -EINVAL;
		goto out;
	}
	ret = dec_obj(o, s, &snap_d, err, errlen);
out:
	json_decref(o);
	return ret;
}
