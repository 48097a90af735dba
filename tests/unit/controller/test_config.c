/*
 * test_config.c: the controller's INI file: defaults, overrides, and every
 * kind of bad input answered with FILE:LINE and the key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/config.h"

static void write_tmp(char *path, size_t len, const char *text)
{
	FILE *f;

	snprintf(path, len, "/tmp/ctl-cfg-test.%d.ini", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_defaults(void **state)
{
	struct ccfg c;

	(void)state;
	ccfg_defaults(&c);
	assert_true(c.interval_s == 1.0);
	assert_string_equal(c.cgroup, "edge/core");
	assert_true(c.threads_enabled);
	assert_int_equal(c.threads_min, 1);
	assert_int_equal(c.threads_max, 0);
	assert_true(c.queue_high == 32);
	assert_true(c.grow_factor == 2);
	assert_true(c.shrink_factor == 0.75);
	assert_true(c.mem_util_low_pct == 40);
	assert_true(c.health_timeout_s == 3);
	assert_true(c.ttft_p99_target_ms == 500);
	assert_int_equal(c.period_us, 100000);
	assert_int_equal(c.tune_weight, 100);
	assert_int_equal(c.nneighbours, 0);
}

static void test_load_overrides(void **state)
{
	char path[128], err[256];
	struct ccfg c;

	(void)state;
	write_tmp(path, sizeof(path),
		  "; comment\n[general]\ninterval = 500ms\ncgroup = edge.slice/core\n\n[threads]\nqueue_high = 16\nmax = 4\n"
		  "[bandwidth]\nneighbours = edge.slice/hog, batch\nttft_p99_target = 0.8s\n[affinity]\nreapply = no\n");
	ccfg_defaults(&c);
	assert_int_equal(ccfg_load(&c, path, err, sizeof(err)), 0);
	assert_true(c.interval_s == 0.5);
	assert_string_equal(c.cgroup, "edge.slice/core");
	assert_true(c.queue_high == 16);
	assert_int_equal(c.threads_max, 4);
	assert_int_equal(c.nneighbours, 2);
	assert_string_equal(c.neighbours[0], "edge.slice/hog");
	assert_string_equal(c.neighbours[1], "batch");
	assert_true(c.ttft_p99_target_ms == 800);
	assert_false(c.affinity_reapply);
	unlink(path);
}

/* Table: a bad file -> the message it must give. */
static void test_bad_files(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ .text = "[threads]\nqueue_high = 32\nqueue_hgih = 8\n", .want = ":3: unknown key 'queue_hgih' in [threads]" },
		{ .text = "[thread]\nmax = 4\n", .want = ":2: unknown key 'max' in [thread]" },
		{ .text = "interval = 1s\n", .want = ":1: key 'interval' outside any [section]" },
		{ .text = "[general]\ninterval = soon\n", .want = ":2: [general] interval: 'soon' is not a duration" },
		{ .text = "[threads]\nmax = -3\n", .want = ":2: [threads] max: -3 is outside 0..1024" },
		{ .text = "[threads]\ngrow_factor = 1\n", .want = ":2: [threads] grow_factor: 1 is outside" },
		{ .text = "[affinity]\nenabled = maybe\n", .want = "'maybe' is not a boolean" },
		{ .text = "[threads]\nmin = 4\nmax = 2\n", .want = "[threads] max 2 is below min 4" },
		{ .text = "[general]\nthis line has no equals sign\n", .want = ":2: syntax error" },
		{ .text = "[tune]\nheadroom = 10\n[tune]\nheadroom = x\nbogus = 1\n", .want = ":4: [tune] headroom" },
	};
	char path[128], err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ccfg c;

		write_tmp(path, sizeof(path), cases[i].text);
		ccfg_defaults(&c);
		assert_int_equal(ccfg_load(&c, path, err, sizeof(err)), -EINVAL);
		print_message("%s\n", err);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, cases[i].want));
	}
	unlink(path);
	{
		struct ccfg c;

		ccfg_defaults(&c);
		assert_int_equal(ccfg_load(&c, "/nonexistent/edge.ini", err, sizeof(err)), -ENOENT);
		assert_non_null(strstr(err, "/nonexistent/edge.ini"));
	}
}

static void test_durations(void **state)
{
	static const struct {
		const char *in;
		double want;
		int ok;
	} cases[] = {
		{ "10s", 10, 1 }, { "500ms", 0.5, 1 }, { "2m", 120, 1 }, { "1.5", 1.5, 1 }, { "250us", 0.00025, 1 },
		{ "1h", 3600, 1 }, { "", 0, 0 },       { "10x", 0, 0 },  { "-1s", 0, 0 },   { "s", 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = -1;
		int r = ccfg_parse_duration(cases[i].in, &v);

		assert_int_equal(r == 0, cases[i].ok);
		if (cases[i].ok)
			assert_true(v > cases[i].want - 1e-9 && v < cases[i].want + 1e-9);
	}
}

static void test_describe_lists_every_default(void **state)
{
	char *buf = NULL, path[128], err[256];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct ccfg a, b;

	(void)state;
	ccfg_describe(f);
	fclose(f);
	/* the description is itself a valid config that yields the defaults */
	write_tmp(path, sizeof(path), buf);
	ccfg_defaults(&a);
	memset(&b, 0x5a, sizeof(b));
	ccfg_defaults(&b);
	assert_int_equal(ccfg_load(&b, path, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_non_null(strstr(buf, "[bandwidth]"));
	assert_non_null(strstr(buf, "queue_high = 32"));
	free(buf);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_load_overrides),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_describe_lists_every_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
