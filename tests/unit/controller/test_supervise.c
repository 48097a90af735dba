/*
 * test_supervise.c: the supervisor loop's pure parts (sup_loop_wait). The
 * loop itself runs the real core in tests/integration/controller_supervise.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "controller/supervise.h"

static void test_loop_wait(void **state)
{
	static const struct {
		const char *name;
		double now, next_tick;
		int core_running;
		double last_restart, want;
	} rows[] = {
		{ "core up: until the next tick", 100.0, 100.6, 1, 0, 0.6 },
		{ "core up: a long interval is not cut to 100 ms", 100.0, 110.0, 1, 0, 10.0 },
		{ "tick overdue: at once", 100.0, 99.5, 1, 0, 0 },
		{ "core up: an old restart does not matter", 100.0, 100.9, 1, 99.5, 0.9 },
		{ "core down: the retry comes before the tick", 100.0, 100.9, 0, 98.5, 0.5 },
		{ "core down: retry due", 100.0, 100.9, 0, 97.0, 0 },
		{ "core down: the tick comes before the retry", 100.0, 100.3, 0, 99.5, 0.3 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double got = sup_loop_wait(rows[i].now, rows[i].next_tick, rows[i].core_running, rows[i].last_restart);

		if (fabs(got - rows[i].want) > 1e-9)
			fail_msg("%s: got %g, want %g", rows[i].name, got, rows[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
