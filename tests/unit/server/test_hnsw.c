/*
 * test_hnsw.c: the HNSW index against brute force: recall@10 on random and
 * clustered sets, deletion (tombstones never returned), duplicate labels,
 * bad vectors, exact self-match.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "dify-edge-core/server/hnsw.h"

static uint64_t rs = 12345;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static double recall_at_10(struct hnsw *h, int dim, int nq)
{
	float *q = malloc(sizeof(float) * (size_t)dim);
	int found = 0, total = 0;
	for (int t = 0; t < nq; t++) {
		struct hnsw_hit a[10], b[10];
		for (int i = 0; i < dim; i++)
			q[i] = frand();
		int na = hnsw_search(h, q, 10, 0, a);
		int nb = hnsw_brute_force(h, q, 10, b);
		assert_int_equal(na, nb);
		for (int i = 0; i < nb; i++)
			for (int j = 0; j < na; j++)
				if (a[j].label == b[i].label) {
					found++;
					break;
				}
		total += nb;
		for (int i = 1; i < na; i++)
			assert_true(a[i - 1].score >= a[i].score);
	}
	free(q);
	return (double)found / total;
}

static void test_recall_random(void **state)
{
	const int dim = 48, n = 3000;
	struct hnsw *h = hnsw_new(dim, NULL);
	float *v = malloc(sizeof(float) * dim);
	assert_non_null(h);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < dim; j++)
			v[j] = frand();
		assert_int_equal(hnsw_add(h, 1000 + i, v), 0);
	}
	assert_int_equal(hnsw_count(h), n);
	double r = recall_at_10(h, dim, 200);
	print_message("recall@10 random n=%d dim=%d: %.3f\n", n, dim, r);
	assert_true(r >= 0.95);
	free(v);
	hnsw_free(h);
}

static void test_self_match_and_delete(void **state)
{
	const int dim = 16, n = 500;
	struct hnsw_params p;
	hnsw_params_default(&p);
	p.M = 8;
	struct hnsw *h = hnsw_new(dim, &p);
	float *vs = malloc(sizeof(float) * dim * n);
	struct hnsw_hit hit[5];
	for (int i = 0; i < n * dim; i++)
		vs[i] = frand();
	for (int i = 0; i < n; i++)
		assert_int_equal(hnsw_add(h, i, vs + i * dim), 0);
	assert_int_equal(hnsw_add(h, 7, vs), -EEXIST);
	for (int i = 0; i < n; i += 37) {
		assert_int_equal(hnsw_search(h, vs + i * dim, 1, 0, hit), 1);
		assert_int_equal(hit[0].label, i);
		assert_true(fabsf(hit[0].score - 1.0f) < 1e-4f);
	}
	/* delete every even label: none may come back */
	for (int i = 0; i < n; i += 2)
		assert_int_equal(hnsw_delete(h, i), 0);
	assert_int_equal(hnsw_delete(h, 0), -ENOENT);
	assert_int_equal(hnsw_count(h), n / 2);
	for (int i = 0; i < n; i += 5) {
		int k = hnsw_search(h, vs + i * dim, 5, 0, hit);
		assert_int_equal(k, 5);
		for (int j = 0; j < k; j++)
			assert_true(hit[j].label % 2 == 1);
	}
	/* a deleted label may be added again */
	assert_int_equal(hnsw_add(h, 0, vs), 0);
	assert_int_equal(hnsw_search(h, vs, 1, 0, hit), 1);
	assert_int_equal(hit[0].label, 0);
	free(vs);
	hnsw_free(h);
}

static void test_bad_input(void **state)
{
	float z[4] = { 0 }, nan4[4] = { NAN, 0, 0, 0 };
	struct hnsw_hit hit[3];
	struct hnsw_params p;
	hnsw_params_default(&p);
	assert_null(hnsw_new(0, NULL));
	p.M = 1;
	assert_null(hnsw_new(4, &p));
	struct hnsw *h = hnsw_new(4, NULL);
	assert_int_equal(hnsw_add(h, 1, z), -EINVAL);
	assert_int_equal(hnsw_add(h, 1, nan4), -EINVAL);
	float q[4] = { 1, 0, 0, 0 };
	assert_int_equal(hnsw_search(h, q, 3, 0, hit), 0); /* empty index */
	assert_int_equal(hnsw_add(h, 1, q), 0);
	assert_int_equal(hnsw_search(h, q, 3, 0, hit), 1);
	assert_true(hnsw_cosine(q, q, 4) > 0.999f);
	hnsw_free(h);
	hnsw_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recall_random),
		cmocka_unit_test(test_self_match_and_delete),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
