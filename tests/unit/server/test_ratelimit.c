/*
 * test_ratelimit.c: the GCRA limiter against redis-cell's own replies:
 * the README example (CL.THROTTLE user123 15 30 60 -> 0 16 15 -1 2) and the
 * case table of redis-cell's it_rate_limits test (limit 5, 1 per second),
 * replayed with an injected clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <cmocka.h>

#include "dify-edge-core/server/ratelimit.h"

#define S 1000000000LL
#define MS 1000000LL

static void test_readme_example(void **state)
{
	char err[128];
	struct rl *r = rl_new(15, 30, 60, 0, err, sizeof(err));
	struct rl_result res;
	assert_non_null(r);
	assert_int_equal(rl_throttle(r, "user123", 1, 1000 * S, &res), 0);
	assert_false(res.limited);
	assert_int_equal(res.limit, 16);
	assert_int_equal(res.remaining, 15);
	assert_int_equal(res.retry_after_s, -1);
	assert_int_equal(res.reset_after_s, 2);
	rl_free(r);
}

struct rl_case {
	int64_t now_ms, volume, remaining, reset_ms, retry_ms;
	bool limited;
};

/* redis-cell redis-cell-impl/src/lib.rs it_rate_limits, -1 s written as -1000 ms. */
static const struct rl_case cases[] = {
	{ .now_ms = 0, .volume = 6, .remaining = 5, .reset_ms = 0, .retry_ms = -1000, .limited = true },
	{ .now_ms = 0, .volume = 1, .remaining = 4, .reset_ms = 1000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 0, .volume = 1, .remaining = 3, .reset_ms = 2000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 0, .volume = 1, .remaining = 2, .reset_ms = 3000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 0, .volume = 1, .remaining = 1, .reset_ms = 4000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 0, .volume = 1, .remaining = 0, .reset_ms = 5000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 0, .volume = 1, .remaining = 0, .reset_ms = 5000, .retry_ms = 1000, .limited = true },
	{ .now_ms = 3000, .volume = 1, .remaining = 2, .reset_ms = 3000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 3100, .volume = 1, .remaining = 1, .reset_ms = 3900, .retry_ms = -1000, .limited = false },
	{ .now_ms = 4000, .volume = 1, .remaining = 1, .reset_ms = 4000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 8000, .volume = 1, .remaining = 4, .reset_ms = 1000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 9500, .volume = 1, .remaining = 4, .reset_ms = 1000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 9500, .volume = 0, .remaining = 4, .reset_ms = 1000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 9500, .volume = 2, .remaining = 2, .reset_ms = 3000, .retry_ms = -1000, .limited = false },
	{ .now_ms = 9500, .volume = 5, .remaining = 2, .reset_ms = 3000, .retry_ms = 3000, .limited = true },
};

static void test_redis_cell_table(void **state)
{
	char err[128];
	struct rl *r = rl_new(4, 1, 1, 0, err, sizeof(err));
	int64_t start = 1700000000LL * S;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rl_case *c = &cases[i];
		struct rl_result res;
		print_message("case %zu\n", i);
		assert_int_equal(rl_throttle(r, "foo", c->volume, start + c->now_ms * MS, &res), 0);
		assert_int_equal(res.limited, c->limited);
		assert_int_equal(res.limit, 5);
		assert_int_equal(res.remaining, c->remaining);
		assert_int_equal(res.reset_after_ns, c->reset_ms * MS);
		assert_int_equal(res.retry_after_ns, c->retry_ms * MS);
	}
	rl_free(r);
}

static void test_keys_independent_and_bounded(void **state)
{
	char err[128], key[32];
	struct rl *r = rl_new(0, 1, 10, 64, err, sizeof(err));
	struct rl_result res;
	assert_non_null(r);
	assert_int_equal(rl_throttle(r, "a", 1, 0, &res), 0);
	assert_false(res.limited);
	assert_int_equal(rl_throttle(r, "a", 1, 0, &res), 0);
	assert_true(res.limited);
	assert_int_equal(res.retry_after_s, 10);
	assert_int_equal(rl_throttle(r, "b", 1, 0, &res), 0);
	assert_false(res.limited);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(rl_throttle(r, key, 1, (int64_t)i * 20 * S, &res), 0);
		assert_false(res.limited);
	}
	assert_true(rl_keys(r) <= 64);
	rl_free(r);
}

static void test_bad_config(void **state)
{
	char err[128];
	assert_null(rl_new(1, 0, 1, 0, err, sizeof(err)));
	assert_null(rl_new(1, 1, 0, 0, err, sizeof(err)));
	assert_null(rl_new(-1, 1, 1, 0, err, sizeof(err)));
	rl_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readme_example),
		cmocka_unit_test(test_redis_cell_table),
		cmocka_unit_test(test_keys_independent_and_bounded),
		cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
