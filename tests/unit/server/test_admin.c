/*
 * test_admin.c: the admin API's CPU-list parser (the format of
 * /proc/PID/task/TID/status Cpus_allowed_list and of `taskset -c`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dify-edge-core/server/server_internal.h"

struct cpu_case {
	const char *in;
	int ok;
	const int cpus[8]; /* -1 terminated */
};

static const struct cpu_case cases[] = {
	{ .in = "0", .ok = 1, .cpus = { 0, -1 } },
	{ .in = "2-5", .ok = 1, .cpus = { 2, 3, 4, 5, -1 } },
	{ .in = "0,2,4-5", .ok = 1, .cpus = { 0, 2, 4, 5, -1 } },
	{ .in = "7,1", .ok = 1, .cpus = { 1, 7, -1 } },
	{ .in = "", .ok = 0 },
	{ .in = "a", .ok = 0 },
	{ .in = "5-2", .ok = 0 },
	{ .in = "1-", .ok = 0 },
	{ .in = "-1", .ok = 0 },
	{ .in = "1,,2", .ok = 0 },
	{ .in = "1 2", .ok = 0 },
	{ .in = "99999", .ok = 0 },
};

static void test_cpulist(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cpu_set_t set;
		char err[160];
		int rc = admin_parse_cpulist(cases[i].in, &set, err, sizeof(err));
		if ((rc == 0) != cases[i].ok)
			print_message("case '%s': rc %d\n", cases[i].in, rc);
		assert_int_equal(rc == 0, cases[i].ok);
		if (!cases[i].ok) {
			assert_non_null(strstr(err, "CPU list"));
			continue;
		}
		int n = 0;
		for (; cases[i].cpus[n] >= 0; n++)
			assert_true(CPU_ISSET(cases[i].cpus[n], &set));
		assert_int_equal(CPU_COUNT(&set), n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpulist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
