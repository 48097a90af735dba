/*
 * test_snapshot.c: the snapshot's JSON form round-trips field for field,
 * "max" stands for SNAP_UNLIMITED, histograms drop trailing zeros, and the
 * percentile helper returns bucket upper bounds (table-driven).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collectors/snapshot.h"

static void fill(struct snap *s)
{
	s->seq = 7;
	s->ts_ns = 1700000000123456789ULL;
	s->mono_ns = 5555;
	s->interval_ns = 1000000000;
	snprintf(s->host, sizeof(s->host), "orin");
	s->target.kind = SNAP_TARGET_CGROUP;
	snprintf(s->target.cgroup, sizeof(s->target.cgroup), "/edge/llm");
	s->nsources = 2;
	snprintf(s->sources[0].name, 16, "bpf-sched");
	s->sources[0].live = true;
	snprintf(s->sources[1].name, 16, "procfs");
	snprintf(s->sources[1].why, SNAP_ERR_LEN, "not needed");
	snap_status_set(&s->cpus.st, SNAP_SRC_BPF, true, NULL);
	s->cpus.n = 2;
	s->cpus.cpu[1].cpu = 1;
	s->cpus.cpu[1].online = true;
	s->cpus.cpu[1].busy_target_ns = 950000000;
	s->cpus.cpu[1].busy_pct = 95.5;
	s->cpus.cpu[1].rq_hist[3] = 12;
	s->cpus.cpu[1].rq_hist[0] = 1;
	snap_status_set(&s->threads.st, SNAP_SRC_BPF, true, NULL);
	s->threads.n = 1;
	s->threads.t[0].tid = 1234;
	snprintf(s->threads.t[0].comm, 16, "spin \"x\"");
	s->threads.t[0].invol_switches = 9;
	snap_status_set(&s->cgroup.st, SNAP_SRC_CGROUPFS, false, "cgroup %s: %s", "/x", "gone");
	s->cgroup.version = SNAP_CG_V1;
	s->cgroup.mem_max_bytes = SNAP_UNLIMITED;
	s->cgroup.quota_us = 50000;
	s->cgroup.psi.cpu.valid = true;
	s->cgroup.psi.cpu.some.avg10 = 1.25;
	s->topo.nclusters = 2;
	s->topo.cluster[1].cpumask[0] = 0xf0;
	s->topo.cluster[1].capacity = 1024;
	snap_status_set(&s->accel.st, SNAP_SRC_SYSFS, true, NULL);
	s->accel.n = 1;
	s->accel.a[0].kind = SNAP_ACCEL_RKNPU;
	s->accel.a[0].ncores = 3;
	s->accel.a[0].core_pct[2] = 42;
	s->events.n = 1;
	s->events.ev[0].type = SNAP_EV_AFFINITY;
	s->events.ev[0].pid = 99;
	s->events.ev[0].cpumask[0] = 0x2;
	s->events.ev[0].result = -22;
	s->core.n = 1;
	snprintf(s->core.kv[0].key, 32, "tokens_per_s");
	s->core.kv[0].value = 12.5;
}

static void test_roundtrip(void **state)
{
	struct snap *a = snap_new(), *b = snap_new();
	char err[128] = "";
	char *buf;
	int n;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	fill(a);
	n = snap_to_json(a, NULL, 0);
	assert_true(n > 0);
	buf = malloc((size_t)n + 1);
	assert_int_equal(snap_to_json(a, buf, (size_t)n + 1), n);
	assert_int_equal(strlen(buf), (size_t)n);
	assert_null(strchr(buf, '\n'));
	assert_non_null(strstr(buf, "\"mem_max_bytes\":\"max\""));
	assert_non_null(strstr(buf, "\"rq_hist\":[1,0,0,12]"));
	assert_non_null(strstr(buf, "\"cpumask\":\"0x2\""));
	assert_non_null(strstr(buf, "\"src\":\"cgroupfs\",\"valid\":false,\"err\":\"cgroup /x: gone\""));
	assert_int_equal(snap_from_json(b, buf, err, sizeof(err)), 0);
	/* doubles pass through 6 significant digits; the chosen values are exact */
	assert_memory_equal(a, b, sizeof(*a));
	free(buf);
	snap_free(a);
	snap_free(b);
}

static void test_from_json_errors(void **state)
{
	struct snap *s = snap_new();
	char err[128] = "";

	(void)state;
	assert_int_not_equal(snap_from_json(s, "{\"seq\":", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "bad JSON"));
	assert_int_not_equal(snap_from_json(s, "[1]", err, sizeof(err)), 0);
	assert_int_not_equal(snap_from_json(s, "{\"cpus\":{\"cpu\":[{\"cpu\":\"x\"}]}}", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "\"cpu\""));
	/* unknown fields ignored, missing ones zero */
	assert_int_equal(snap_from_json(s, "{\"seq\":3,\"future\":{\"a\":1}}", err, sizeof(err)), 0);
	assert_int_equal(s->seq, 3);
	assert_int_equal(s->version, SNAP_VERSION);
	snap_free(s);
	snap_free(NULL);
}

static void test_buffer_too_small(void **state)
{
	struct snap *s = snap_new();
	char small[16];

	(void)state;
	int n = snap_to_json(s, small, sizeof(small));
	assert_true(n >= (int)sizeof(small));
	assert_string_equal(small, "");
	snap_free(s);
}

static void test_buckets(void **state)
{
	static const struct { uint64_t ns; unsigned bucket; } cases[] = {
		{ 0, 0 }, { 999, 0 }, { 1000, 1 }, { 1999, 1 }, { 2000, 2 },
		{ 3999, 2 }, { 4000, 3 }, { 1000000, 10 }, { 1048576000, 21 },
		{ UINT64_MAX, SNAP_RQ_BUCKETS - 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(snap_rq_bucket(cases[i].ns), cases[i].bucket);
}

static void test_percentiles(void **state)
{
	uint64_t h[SNAP_RQ_BUCKETS] = { 0 };

	(void)state;
	assert_int_equal(snap_hist_pct(h, 50), 0);
	h[2] = 98;   /* 2..4 us */
	h[12] = 2;   /* 2..4 ms */
	assert_int_equal(snap_hist_pct(h, 50), 4000);
	assert_int_equal(snap_hist_pct(h, 98), 4000);
	assert_int_equal(snap_hist_pct(h, 99), 4096000);
	assert_int_equal(snap_hist_pct(h, 100), 4096000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_from_json_errors),
		cmocka_unit_test(test_buffer_too_small),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_percentiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
