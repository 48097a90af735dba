/*
 * test_metrics.c: the Prometheus text: counters by route and status,
 * cumulative histogram buckets, gauges, and the "other" status fold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dify-edge-core/server/metrics.h"

static const char *const routes[] = { "/health", "/v1/completions" };

static void test_render(void **state)
{
	struct metrics *m = metrics_new(routes, NULL, 2);
	struct metrics_gauges g = { .queue_len = 3, .slots_busy = 2, .slots_total = 4, .pool_threads = 2, .je_allocated = -1 };
	size_t len;
	metrics_request(m, 0, 200);
	metrics_request(m, 0, 200);
	metrics_request(m, 1, 503);
	metrics_tokens(m, 10, 5);
	metrics_ttft(m, 0.02);
	metrics_ttft(m, 0.3);
	metrics_ttft(m, 100);
	metrics_cache(m, 1);
	metrics_rate_limited(m);
	char *s = metrics_render(m, &g, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	assert_non_null(strstr(s, "dify_edge_http_requests_total{route=\"/health\",status=\"200\"} 2\n"));
	assert_non_null(strstr(s, "dify_edge_http_requests_total{route=\"/v1/completions\",status=\"503\"} 1\n"));
	assert_non_null(strstr(s, "dify_edge_prompt_tokens_total 10\n"));
	assert_non_null(strstr(s, "dify_edge_generated_tokens_total 5\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.007\"} 0\n"));
	assert_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.0075\"}"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.01\"} 0\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"30\"} 2\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(s, "dify_edge_time_to_first_token_seconds_count 3\n"));
	assert_non_null(strstr(s, "dify_edge_queue_length 3\n"));
	assert_non_null(strstr(s, "dify_edge_cache_hits_total 1\n"));
	assert_non_null(strstr(s, "dify_edge_rate_limited_total 1\n"));
	assert_null(strstr(s, "jemalloc")); /* unknown: not rendered */
	free(s);
	assert_int_equal(metrics_requests(m, 0, 200), 2);
	assert_int_equal(metrics_cache_hits(m), 1);
	metrics_free(m);
}

static void test_status_fold(void **state)
{
	struct metrics *m = metrics_new(routes, NULL, 2);
	for (int code = 200; code < 240; code++)
		metrics_request(m, 1, code);
	char *s = metrics_render(m, NULL, NULL);
	assert_non_null(strstr(s, "status=\"other\"}"));
	free(s);
	metrics_request(m, 7, 200); /* unknown route: ignored */
	metrics_free(m);
	metrics_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_status_fold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
