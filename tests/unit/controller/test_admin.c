/*
 * test_admin.c: parsing what the core says: /admin/stats in the shape
 * dify-edge serve writes (dify-edge-core/server/admin.c) and flat, bad
 * bodies, and the time-to-first-token histogram of its /metrics with the
 * window quantile the bandwidth policy reads.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "controller/admin.h"

static void test_stats_server_shape(void **state)
{
	static const char body[] =
		"{\"pid\":42,\"model\":\"m.gguf\",\"uptime_s\":3.0,\"model_loaded\":true,\"vector_store_ready\":true,"
		"\"queue\":{\"length\":13,\"capacity\":64,\"submitted\":20,\"rejected\":0,\"completed\":5,\"cancelled\":0},"
		"\"slots\":[{\"id\":0,\"busy\":true,\"kv_used\":128,\"n_ctx\":256},{\"id\":1,\"busy\":false,\"kv_used\":0,\"n_ctx\":256}],"
		"\"slots_busy\":1,"
		"\"pool\":{\"threads\":2,\"workers\":[{\"index\":0,\"tid\":101,\"busy_ns\":5000,\"idle_ns\":1,\"runs\":3,\"cpu\":0},"
		"{\"index\":1,\"tid\":102,\"busy_ns\":7000,\"idle_ns\":1,\"runs\":3,\"cpu\":1}]},"
		"\"memory\":{\"rss_bytes\":10764288,\"kv_bytes\":262144,\"jemalloc\":{\"allocated\":1,\"active\":2,\"resident\":4804608}},"
		"\"cache_entries\":0,\"kb\":{\"documents\":0,\"chunks\":0}}";
	struct cadmin_stats st;
	char err[256];

	(void)state;
	assert_int_equal(cadmin_parse_stats(body, &st, err, sizeof(err)), 0);
	assert_int_equal(st.queue, 13);
	assert_int_equal(st.slots, 2);
	assert_int_equal(st.busy_slots, 1);
	assert_int_equal(st.threads, 2);
	assert_int_equal(st.nworkers, 2);
	assert_int_equal(st.worker_tid[1], 102);
	assert_int_equal(st.worker_busy_ns[1], 7000);
	assert_int_equal(st.mem_bytes, 4804608);
	assert_true(fabs(st.kv_used_pct - 25.0) < 1e-9); /* 128 of 512 positions */
	assert_int_equal(st.requests, 5);
}

/* Table: the workers' class, as each worker reports it -> rt_prio. */
static void test_stats_worker_class(void **state)
{
	static const struct {
		const char *workers;
		int want;
	} cases[] = {
		{ "[{\"tid\":1,\"sched\":\"other\",\"priority\":0},{\"tid\":2,\"sched\":\"other\",\"priority\":0}]", 0 },
		{ "[{\"tid\":1,\"sched\":\"fifo\",\"priority\":3},{\"tid\":2,\"sched\":\"fifo\",\"priority\":3}]", 3 },
		{ "[{\"tid\":1,\"sched\":\"rr\",\"priority\":1}]", 1 },
		{ "[{\"tid\":1,\"sched\":\"fifo\",\"priority\":1},{\"tid\":2,\"sched\":\"other\",\"priority\":0}]", -2 },
		{ "[{\"tid\":1,\"sched\":\"fifo\",\"priority\":1},{\"tid\":2,\"sched\":\"fifo\",\"priority\":2}]", -2 },
		{ "[{\"tid\":1,\"sched\":\"batch\",\"priority\":0}]", -2 },
		{ "[{\"tid\":1},{\"tid\":2}]", -1 }, /* a core that does not say */
		{ "[]", -1 },
	};
	char body[512], err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cadmin_stats st;

		snprintf(body, sizeof(body), "{\"pool\":{\"threads\":2,\"workers\":%s}}", cases[i].workers);
		assert_int_equal(cadmin_parse_stats(body, &st, err, sizeof(err)), 0);
		print_message("%-100s -> %d\n", cases[i].workers, st.rt_prio);
		assert_int_equal(st.rt_prio, cases[i].want);
	}
}

/* Table: other bodies -> what is known. */
static void test_stats_other_bodies(void **state)
{
	static const struct {
		const char *body;
		int ok;
		int64_t queue, threads, nworkers, mem;
	} cases[] = {
		{ .body = "{\"queue\":3,\"threads\":4,\"workers\":[{\"tid\":9}],\"memory\":{\"rss_bytes\":100}}", .ok = 1,
		  .queue = 3, .threads = 4, .nworkers = 1, .mem = 100 },
		{ .body = "{\"model_loaded\":false,\"memory\":{\"rss_bytes\":5,\"jemalloc\":null}}", .ok = 1, .queue = -1,
		  .threads = -1, .nworkers = 0, .mem = 5 },
		{ .body = "{}", .ok = 1, .queue = -1, .threads = -1, .nworkers = 0, .mem = -1 },
		{ .body = "[1,2]", .ok = 0 },
		{ .body = "{\"queue\":", .ok = 0 },
		{ .body = "", .ok = 0 },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cadmin_stats st;
		int r = cadmin_parse_stats(cases[i].body, &st, err, sizeof(err));

		assert_int_equal(r == 0, cases[i].ok);
		if (!cases[i].ok) {
			assert_int_equal(r, -EINVAL);
			assert_non_null(strstr(err, "admin stats"));
			continue;
		}
		assert_int_equal(st.queue, cases[i].queue);
		assert_int_equal(st.threads, cases[i].threads);
		assert_int_equal(st.nworkers, cases[i].nworkers);
		assert_int_equal(st.mem_bytes, cases[i].mem);
	}
}

static void test_ttft_histogram(void **state)
{
	static const char text[] =
		"# HELP dify_edge_time_to_first_token_seconds Time from request admission to the first generated token.\n"
		"# TYPE dify_edge_time_to_first_token_seconds histogram\n"
		"dify_edge_time_to_first_token_seconds_bucket{le=\"0.01\"} 10\n"
		"dify_edge_time_to_first_token_seconds_bucket{le=\"0.025\"} 50\n"
		"dify_edge_time_to_first_token_seconds_bucket{le=\"0.05\"} 98\n"
		"dify_edge_time_to_first_token_seconds_bucket{le=\"0.1\"} 100\n"
		"dify_edge_time_to_first_token_seconds_bucket{le=\"+Inf\"} 100\n"
		"dify_edge_time_to_first_token_seconds_sum 2.5\n"
		"dify_edge_time_to_first_token_seconds_count 100\n"
		"dify_edge_inter_token_latency_seconds_bucket{le=\"0.01\"} 7\n";
	double b[8];
	uint64_t cum[8], d[8], prev[8];
	int n;

	(void)state;
	n = cadmin_parse_hist(text, "dify_edge_time_to_first_token_seconds", b, cum, 8);
	assert_int_equal(n, 5);
	assert_true(b[0] == 0.01 && b[3] == 0.1 && isinf(b[4]));
	assert_int_equal(cum[2], 98);
	/* p99 of 100: rank 99 is half-way into the 0.05..0.1 bucket; p50: rank 50 tops 0.025 */
	assert_true(fabs(cadmin_hist_quantile(b, cum, n, 0.99) - 0.075) < 1e-12);
	assert_true(fabs(cadmin_hist_quantile(b, cum, n, 0.50) - 0.025) < 1e-12);
	/* a window: the last 10 requests, all slow (+Inf bucket -> last finite bound) */
	memcpy(prev, cum, sizeof(prev));
	for (int i = 0; i < n; i++)
		d[i] = (i == 4 ? cum[i] + 10 : cum[i]) - prev[i];
	assert_true(cadmin_hist_quantile(b, d, n, 0.99) == 0.1);
	/* an empty window */
	memset(d, 0, sizeof(d));
	assert_true(isnan(cadmin_hist_quantile(b, d, n, 0.99)));
	assert_int_equal(cadmin_parse_hist("nothing here\n", "dify_edge_time_to_first_token_seconds", b, cum, 8), 0);
}

/* cadmin_hist_quantile: linear inside the bucket holding rank q * count */
static void test_hist_quantile(void **state)
{
	static const double inf = INFINITY;
	static const struct {
		const char *name;
		double bounds[6];
		uint64_t cum[6];
		int n;
		double q, want; /* want NAN: no quantile */
	} rows[] = {
		{ "p99 of 100, rank 99 mid-bucket", { 0.005, 0.0075, 0.01, inf }, { 90, 98, 100, 100 }, 4, 0.99, 0.00875 },
		{ "p99 of 95, rank 94.05 near the top", { 0.005, 0.006, 0.007, 0.008, inf }, { 80, 90, 94, 95, 95 }, 5, 0.99, 0.00705 },
		{ "p50 in the first bucket, from 0", { 0.002, 0.004, inf }, { 100, 100, 100 }, 3, 0.5, 0.001 },
		{ "rank exactly at a bound", { 0.001, 0.002, inf }, { 50, 100, 100 }, 3, 0.5, 0.001 },
		{ "empty buckets below are skipped", { 0.001, 0.002, 0.003, inf }, { 0, 0, 10, 10 }, 4, 0.99, 0.00299 },
		{ "rank in +Inf: the last finite bound", { 0.005, 0.01, inf }, { 1, 2, 10 }, 3, 0.99, 0.01 },
		{ "only +Inf", { inf }, { 3 }, 1, 0.99, NAN },
		{ "empty window", { 0.005, inf }, { 0, 0 }, 2, 0.99, NAN },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double got = cadmin_hist_quantile(rows[i].bounds, rows[i].cum, rows[i].n, rows[i].q);

		if (isnan(rows[i].want)) {
			if (!isnan(got))
				fail_msg("%s: got %g, want NAN", rows[i].name, got);
		} else if (isnan(got) || fabs(got - rows[i].want) > 1e-9) {
			fail_msg("%s: got %g, want %g", rows[i].name, got, rows[i].want);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_server_shape),
		cmocka_unit_test(test_hist_quantile),
		cmocka_unit_test(test_stats_other_bodies),
		cmocka_unit_test(test_stats_worker_class),
		cmocka_unit_test(test_ttft_histogram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
