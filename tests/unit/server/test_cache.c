/*
 * test_cache.c: LRU order, TTL expiry with an injected clock, replacement,
 * clear (invalidation) and the disabled cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dify-edge-core/server/cache.h"

#define SEC 1000000000LL

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static int get(struct cache *c, const char *k, char **v)
{
	size_t len;
	return cache_get(c, k, strlen(k), v, &len);
}

static void put(struct cache *c, const char *k, const char *v)
{
	assert_int_equal(cache_put(c, k, strlen(k), v, strlen(v)), 0);
}

static void test_lru_eviction(void **state)
{
	struct cache *c = cache_new(3, 30 * SEC, fake_clock, NULL);
	char *v;
	struct cache_stats st;
	fake_now = 0;
	put(c, "a", "1");
	put(c, "b", "2");
	put(c, "c", "3");
	assert_int_equal(get(c, "a", &v), 1); /* a is now most recent */
	assert_string_equal(v, "1");
	free(v);
	put(c, "d", "4"); /* evicts b, the least recently used */
	assert_int_equal(get(c, "b", &v), 0);
	assert_null(v);
	assert_int_equal(get(c, "a", &v), 1);
	free(v);
	assert_int_equal(get(c, "c", &v), 1);
	free(v);
	assert_int_equal(get(c, "d", &v), 1);
	free(v);
	cache_stats(c, &st);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.entries, 3);
	cache_free(c);
}

static void test_ttl(void **state)
{
	struct cache *c = cache_new(8, 30 * SEC, fake_clock, NULL);
	char *v;
	struct cache_stats st;
	fake_now = 100 * SEC;
	put(c, "k", "v");
	fake_now += 29 * SEC;
	assert_int_equal(get(c, "k", &v), 1);
	free(v);
	fake_now += 1 * SEC; /* exactly ttl old: expired */
	assert_int_equal(get(c, "k", &v), 0);
	cache_stats(c, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.entries, 0);
	/* replacement restarts the clock */
	put(c, "k", "v1");
	fake_now += 20 * SEC;
	put(c, "k", "v2");
	fake_now += 20 * SEC;
	assert_int_equal(get(c, "k", &v), 1);
	assert_string_equal(v, "v2");
	free(v);
	cache_free(c);
}

static void test_clear_and_binary_keys(void **state)
{
	struct cache *c = cache_new(1024, 30 * SEC, fake_clock, NULL);
	char *v;
	size_t len;
	const char k1[] = { 'a', 0, 'b' }, k2[] = { 'a', 0, 'c' };
	fake_now = 0;
	assert_int_equal(cache_put(c, k1, 3, "x", 1), 0);
	assert_int_equal(cache_put(c, k2, 3, "y", 1), 0);
	assert_int_equal(cache_get(c, k1, 3, &v, &len), 1);
	assert_string_equal(v, "x");
	free(v);
	cache_clear(c);
	assert_int_equal(cache_get(c, k1, 3, &v, &len), 0);
	assert_int_equal(cache_get(c, k2, 3, &v, &len), 0);
	for (int i = 0; i < 5000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "key%d", i);
		put(c, k, k);
	}
	struct cache_stats st;
	cache_stats(c, &st);
	assert_int_equal(st.entries, 1024);
	assert_int_equal(get(c, "key4999", &v), 1);
	free(v);
	assert_int_equal(get(c, "key0", &v), 0);
	cache_free(c);
}

static void test_disabled(void **state)
{
	struct cache *c = cache_new(0, 30 * SEC, fake_clock, NULL);
	char *v;
	put(c, "a", "b");
	assert_int_equal(get(c, "a", &v), 0);
	cache_free(c);
	cache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_clear_and_binary_keys),
		cmocka_unit_test(test_disabled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
