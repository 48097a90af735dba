/*
 * test_hnsw.c: the HNSW index against brute force: recall@10 on random and
 * clustered sets, deletion (tombstones never returned), duplicate labels,
 * bad vectors, exact self-match; the AVX2+FMA dot product against a double
 * reference for lengths with every kind of tail; recall at 384 dimensions on
 * Gaussian random vectors (random directions) as ef_search grows.
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

/* A standard normal deviate (Box-Muller). */
static float grand(void)
{
	double u1 = (frand() + 1.0) * 0.5, u2 = (frand() + 1.0) * 0.5;
	if (u1 < 1e-300)
		u1 = 1e-300;
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static double recall_at_10_ef(struct hnsw *h, int dim, int nq, int ef, float (*gen)(void))
{
	float *q = malloc(sizeof(float) * (size_t)dim);
	int found = 0, total = 0;
	for (int t = 0; t < nq; t++) {
		struct hnsw_hit a[10], b[10];
		for (int i = 0; i < dim; i++)
			q[i] = gen();
		int na = hnsw_search(h, q, 10, ef, a);
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

static double recall_at_10(struct hnsw *h, int dim, int nq)
{
	return recall_at_10_ef(h, dim, nq, 0, frand);
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

/* 2000 random directions in 384-d (the benchmark's data, smaller): a
 * correct HNSW (hnswlib measures the same) finds most of the true top 10
 * at the default ef 64 and nearly all at 256; recall must not fall as ef
 * grows. */
static void test_recall_gauss_384(void **state)
{
	const int dim = 384, n = 2000;
	static const struct {
		int ef;
		double min_recall;
	} cases[] = {
		{ .ef = 64, .min_recall = 0.70 },
		{ .ef = 256, .min_recall = 0.97 },
		{ .ef = 1024, .min_recall = 0.995 },
	};
	struct hnsw *h = hnsw_new(dim, NULL);
	float *v = malloc(sizeof(float) * dim);
	double prev = 0;
	assert_non_null(h);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < dim; j++)
			v[j] = grand();
		assert_int_equal(hnsw_add(h, i, v), 0);
	}
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint64_t save = rs; /* the same queries for every ef */
		double r = recall_at_10_ef(h, dim, 100, cases[c].ef, grand);
		rs = save;
		print_message("recall@10 gauss n=%d dim=%d ef=%d: %.3f\n", n, dim, cases[c].ef, r);
		assert_true(r >= cases[c].min_recall);
		assert_true(r >= prev - 0.01);
		prev = r;
	}
	free(v);
	hnsw_free(h);
}

/* The AVX2+FMA dot product (when the CPU has it) against a double sum, for
 * lengths with no tail, an 8-float tail, a scalar tail and all three. */
static void test_dot_avx2(void **state)
{
#if defined(__x86_64__)
	static const int dims[] = { 1, 7, 8, 31, 32, 33, 47, 384, 385, 391, 1000 };
	float *a = malloc(sizeof(float) * 1000), *b = malloc(sizeof(float) * 1000);
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
		print_message("skip: this CPU has no AVX2+FMA\n");
		free(a);
		free(b);
		skip();
	}
	for (int i = 0; i < 1000; i++) {
		a[i] = frand();
		b[i] = frand();
	}
	for (size_t c = 0; c < sizeof(dims) / sizeof(dims[0]); c++) {
		double ref = 0, mag = 0;
		for (int i = 0; i < dims[c]; i++) {
			ref += (double)a[i] * b[i];
			mag += fabs((double)a[i] * b[i]);
		}
		float got = hnsw_dot_avx2(a, b, dims[c]);
		assert_true(fabs((double)got - ref) <= 1e-5 * (mag + 1));
	}
	free(a);
	free(b);
#else
	print_message("skip: not x86-64\n");
	skip();
#endif
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
		cmocka_unit_test(test_recall_gauss_384),
		cmocka_unit_test(test_dot_avx2),
		cmocka_unit_test(test_self_match_and_delete),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
