/*
 * test_parsers.c: table-driven tests of the text formats the collectors
 * parse: CPU lists, "key value" files, PSI lines, the RK devfreq "NN@FREQHz"
 * load and the rknpu debugfs load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "collectors/colctx.h"
#include "collectors/fsread.h"

static void test_cpulist(void **state)
{
	static const struct { const char *in; int ret; uint64_t mask; } cases[] = {
		{ "0-3\n", 0, 0xf }, { "0", 0, 1 }, { "0-1,4-5\n", 0, 0x33 }, { "7", 0, 0x80 },
		{ "\n", 0, 0 }, { "0-63", 0, ~0ULL }, { "3-1", -EINVAL, 0 }, { "a", -EINVAL, 0 },
		{ "1,,2", -EINVAL, 0 }, { "1-", -EINVAL, 0 }, { "0 1", -EINVAL, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t m = 0;
		assert_int_equal(fsr_cpulist(cases[i].in, &m), cases[i].ret);
		if (!cases[i].ret)
			assert_int_equal(m, cases[i].mask);
	}
}

static void test_kv(void **state)
{
	static const char text[] = "nr_periods 5000\nnr_throttled 12\nthrottled_time 99\nbad x\n";
	static const struct { const char *key; int ret; uint64_t v; } cases[] = {
		{ "nr_periods", 0, 5000 }, { "nr_throttled", 0, 12 }, { "throttled_time", 0, 99 },
		{ "throttled", -ENOENT, 0 }, { "bad", -EINVAL, 0 }, { "missing", -ENOENT, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		assert_int_equal(fsr_kv_u64(text, cases[i].key, &v), cases[i].ret);
		if (!cases[i].ret)
			assert_int_equal(v, cases[i].v);
	}
}

static void test_psi(void **state)
{
	static const struct { const char *in; int ret; double some10; bool full; uint64_t total; } cases[] = {
		{ "some avg10=1.50 avg60=0.75 avg300=0.20 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 0, 1.5, true, 123456 },
		{ "some avg10=99.99 avg60=0.00 avg300=0.00 total=1\n", 0, 99.99, false, 1 },
		{ "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", -EINVAL, 0, false, 0 },
		{ "some avg10=x\n", -EINVAL, 0, false, 0 },
		{ "", -EINVAL, 0, false, 0 },
		{ "garbage\n", -EINVAL, 0, false, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct snap_psi_res r;
		assert_int_equal(col_psi_parse(cases[i].in, &r), cases[i].ret);
		if (cases[i].ret)
			continue;
		assert_true(r.valid);
		assert_true(r.some.avg10 == cases[i].some10);
		assert_int_equal(r.has_full, cases[i].full);
		assert_int_equal(r.some.total_us, cases[i].total);
	}
}

static void test_rk_load(void **state)
{
	static const struct { const char *in; int ret; double pct; uint64_t hz; } cases[] = {
		{ "37@800000000Hz\n", 0, 37, 800000000 }, { "0@300000000Hz", 0, 0, 300000000 },
		{ "100@1000000000Hz\n", 0, 100, 1000000000 }, { "101@1Hz", -EINVAL, 0, 0 },
		{ "37", -EINVAL, 0, 0 }, { "busy\n", -EINVAL, 0, 0 }, { "37@800000000Hz x", -EINVAL, 0, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double pct = -1;
		uint64_t hz = 0;
		assert_int_equal(col_parse_rk_load(cases[i].in, &pct, &hz), cases[i].ret);
		if (!cases[i].ret) {
			assert_true(pct == cases[i].pct);
			assert_int_equal(hz, cases[i].hz);
		}
	}
}

static void test_npu_load(void **state)
{
	static const struct { const char *in; int ret; uint32_t n; double c[3]; } cases[] = {
		{ "NPU load:  Core0:  0%, Core1:  0%, Core2:  0%,\n", 0, 3, { 0, 0, 0 } },
		{ "NPU load:  Core0: 12%, Core1:  0%, Core2: 40%,\n", 0, 3, { 12, 0, 40 } },
		{ "NPU load:  Core0: 100%, Core1: 99%, Core2:  1%,", 0, 3, { 100, 99, 1 } },
		{ "NPU load:  25%\n", 0, 1, { 25, 0, 0 } },
		{ "NPU load:  Core0: x%,\n", -EINVAL, 0, { 0 } },
		{ "NPU load:  Core1: 5%,\n", -EINVAL, 0, { 0 } },
		{ "npu busy\n", -EINVAL, 0, { 0 } },
		{ "NPU load:  Core0: 101%,\n", -EINVAL, 0, { 0 } },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double c[SNAP_MAX_NPU_CORES] = { 0 };
		uint32_t n = 0;
		assert_int_equal(col_parse_npu_load(cases[i].in, c, SNAP_MAX_NPU_CORES, &n), cases[i].ret);
		if (cases[i].ret)
			continue;
		assert_int_equal(n, cases[i].n);
		for (uint32_t k = 0; k < n; k++)
			assert_true(c[k] == cases[i].c[k]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpulist),
		cmocka_unit_test(test_kv),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_rk_load),
		cmocka_unit_test(test_npu_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
