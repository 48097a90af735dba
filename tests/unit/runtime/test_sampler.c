/*
 * test_sampler.c: the sampler, table-driven.
 *
 * The PRNG is checked against values computed by an independent Python
 * implementation of splitmix64 + xoshiro256** (Vigna's reference
 * algorithm). Each sampling case gives logits (mostly ln of round
 * probabilities 0.5/0.3/0.15/0.05, so that the expected survivors of top-k,
 * top-p and min-p can be worked out by hand), parameters and a history, and
 * says which ids may be drawn; 4000 draws must stay inside that set and
 * cover it. Greedy and penalty cases give the one expected id.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dify-edge-core/runtime/sampler.h"

static void test_rng_vectors(void **state)
{
	(void)state;
	static const struct {
		uint64_t seed;
		uint64_t want[3];
	} cases[] = {
		{ 0, { 0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL } },
		{ 42, { 0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL, 0xae17533239e499a1ULL } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sampler_rng r;
		sampler_rng_seed(&r, cases[i].seed);
		for (int j = 0; j < 3; j++)
			assert_true(sampler_rng_next(&r) == cases[i].want[j]);
	}
	struct sampler_rng r;
	sampler_rng_seed(&r, 7);
	double sum = 0;
	for (int i = 0; i < 100000; i++) {
		double u = sampler_rng_uniform(&r);
		assert_true(u >= 0 && u < 1);
		sum += u;
	}
	assert_true(fabs(sum / 100000 - 0.5) < 0.01);
}

#define P4 { -0.693147f, -1.203973f, -1.897120f, -2.995732f } /* ln .5 .3 .15 .05 */

struct draw_case {
	const char *name;
	float logits[8];
	int n;
	struct sampler_params par;
	int32_t hist[4];
	int n_hist;
	unsigned allowed; /* bit i: id i may be drawn (and must be, over 4000 draws) */
};

static const struct draw_case draw_cases[] = {
	{ "plain", P4, 4, { .temp = 1, .top_p = 1, .repeat_penalty = 1 }, { 0 }, 0, 0xF },
	{ "top_k 1", P4, 4, { .temp = 1, .top_k = 1, .top_p = 1, .repeat_penalty = 1 }, { 0 }, 0, 0x1 },
	{ "top_k 3", P4, 4, { .temp = 1, .top_k = 3, .top_p = 1, .repeat_penalty = 1 }, { 0 }, 0, 0x7 },
	{ "top_p .45", P4, 4, { .temp = 1, .top_p = 0.45f, .repeat_penalty = 1 }, { 0 }, 0, 0x1 },
	{ "top_p .7", P4, 4, { .temp = 1, .top_p = 0.7f, .repeat_penalty = 1 }, { 0 }, 0, 0x3 },
	{ "top_p .85", P4, 4, { .temp = 1, .top_p = 0.85f, .repeat_penalty = 1 }, { 0 }, 0, 0x7 },
	{ "min_p .5", P4, 4, { .temp = 1, .top_p = 1, .min_p = 0.5f, .repeat_penalty = 1 }, { 0 }, 0, 0x3 },
	{ "min_p .25", P4, 4, { .temp = 1, .top_p = 1, .min_p = 0.25f, .repeat_penalty = 1 }, { 0 }, 0, 0x7 },
	/* top-k 3 renormalizes to .526/.316/.158: top-p .8 keeps 2 */
	{ "top_k 3 + top_p .8", P4, 4, { .temp = 1, .top_k = 3, .top_p = 0.8f, .repeat_penalty = 1 }, { 0 }, 0, 0x3 },
	/* temperature 3 flattens: weights 1, .84, .66, .46; min_p .6 keeps 3 */
	{ "temp 3 + min_p .6", P4, 4, { .temp = 3, .top_p = 1, .min_p = 0.6f, .repeat_penalty = 1 }, { 0 }, 0, 0x7 },
	/* temperature .25 sharpens: weights 1, .13, .004, 5e-5; min_p .01 keeps 2 */
	{ "temp .25 + min_p .01", P4, 4, { .temp = 0.25f, .top_p = 1, .min_p = 0.01f, .repeat_penalty = 1 }, { 0 }, 0, 0x3 },
	/* penalty 100 on id 0 (negative logit: times 100) removes it in practice */
	{ "penalty", P4, 4, { .temp = 1, .top_p = 1, .min_p = 0.01f, .repeat_penalty = 100, .repeat_last_n = 4 },
	  { 0 }, 1, 0xE },
};

static void test_draws(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(draw_cases) / sizeof(draw_cases[0]); i++) {
		const struct draw_case *c = &draw_cases[i];
		struct sampler_params p = c->par;
		p.seed = 1234 + i;
		struct sampler *s = sampler_new(&p, c->n);
		assert_non_null(s);
		int count[8] = { 0 };
		for (int d = 0; d < 4000; d++) {
			for (int h = 0; h < c->n_hist; h++)
				sampler_accept(s, c->hist[h]);
			int32_t id = sampler_sample(s, c->logits);
			assert_true(id >= 0 && id < c->n);
			count[id]++;
			sampler_reset(s, p.seed + (uint64_t)d + 1);
		}
		for (int id = 0; id < c->n; id++) {
			bool want = (c->allowed >> id) & 1;
			if (want != (count[id] > 0))
				print_message("case '%s': id %d drawn %d times, allowed %d\n", c->name, id, count[id], want);
			assert_true(want == (count[id] > 0));
		}
		if (!strcmp(c->name, "plain")) /* frequencies follow .5/.3/.15/.05 */
			for (int id = 0; id < 4; id++)
				assert_true(fabs(count[id] / 4000.0 - (double[]){ .5, .3, .15, .05 }[id]) < 0.03);
		sampler_free(s);
	}
}

struct pick_case {
	const char *name;
	float logits[4];
	float penalty;
	int32_t last_n;
	int32_t hist[4];
	int n_hist;
	int32_t want;
};

static const struct pick_case pick_cases[] = {
	{ "argmax", { 0.1f, 2.0f, 1.9f, -3 }, 1, 0, { 0 }, 0, 1 },
	{ "tie -> lowest id", { 2.0f, 1.0f, 2.0f, 2.0f }, 1, 0, { 0 }, 0, 0 },
	{ "positive divided", { 1.0f, 0.9f, -0.5f, -0.6f }, 2, 8, { 0 }, 1, 1 },
	{ "each id once", { 1.0f, 0.3f, -0.5f, -0.6f }, 2, 8, { 0, 0, 0 }, 3, 0 },
	{ "both penalized", { 1.0f, 0.9f, -0.5f, -0.6f }, 2, 8, { 0, 1 }, 2, 0 },
	{ "negative multiplied", { -1.0f, -1.2f, -5, -6 }, 2, 8, { 0 }, 1, 1 },
	{ "outside the window", { 1.0f, 0.9f, -0.5f, -0.6f }, 2, 2, { 0, 3, 3 }, 3, 0 },
	{ "window off", { 1.0f, 0.9f, -0.5f, -0.6f }, 2, 0, { 0 }, 1, 0 },
};

static void test_greedy_and_penalty(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pick_cases) / sizeof(pick_cases[0]); i++) {
		const struct pick_case *c = &pick_cases[i];
		struct sampler_params p = { .temp = 0, .top_p = 1, .repeat_penalty = c->penalty,
					    .repeat_last_n = c->last_n };
		struct sampler *s = sampler_new(&p, 4);
		assert_non_null(s);
		for (int h = 0; h < c->n_hist; h++)
			sampler_accept(s, c->hist[h]);
		int32_t got = sampler_sample(s, c->logits);
		if (got != c->want)
			print_message("case '%s': got %d, want %d\n", c->name, got, c->want);
		assert_int_equal(got, c->want);
		if (c->penalty == 1)
			assert_int_equal(sampler_argmax(c->logits, 4), c->want);
		sampler_free(s);
	}
}

static void test_seeded_reproducible(void **state)
{
	(void)state;
	float logits[1000];
	for (int i = 0; i < 1000; i++)
		logits[i] = (float)sin(i * 0.37) * 3;
	struct sampler_params p;
	sampler_params_default(&p);
	p.top_k = 0;
	p.min_p = 0;
	p.top_p = 0.99f;
	int32_t a[64], b[64], c[64];
	for (int run = 0; run < 3; run++) {
		p.seed = run == 2 ? 99 : 5;
		struct sampler *s = sampler_new(&p, 1000);
		int32_t *out = run == 0 ? a : run == 1 ? b : c;
		for (int i = 0; i < 64; i++) {
			out[i] = sampler_sample(s, logits);
			sampler_accept(s, out[i]);
		}
		sampler_free(s);
	}
	assert_memory_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, c, sizeof(a));
	/* reset reseeds: the same sequence again */
	struct sampler *s = sampler_new(&p, 1000);
	for (int i = 0; i < 10; i++)
		sampler_sample(s, logits);
	sampler_reset(s, 5);
	for (int i = 0; i < 64; i++) {
		int32_t id = sampler_sample(s, logits);
		sampler_accept(s, id);
		assert_int_equal(id, a[i]);
	}
	sampler_free(s);
}

/* A nucleus far larger than the first 64 candidates selected: equal logits
 * over 1000 ids, top-p .5 keeps exactly the 500 lowest ids (ties go to the
 * lower id). */
static void test_top_p_large_nucleus(void **state)
{
	(void)state;
	static float logits[1000];
	struct sampler_params p = { .temp = 1, .top_p = 0.5f, .repeat_penalty = 1, .seed = 3 };
	struct sampler *s = sampler_new(&p, 1000);
	int max_id = 0;
	for (int i = 0; i < 3000; i++) {
		int32_t id = sampler_sample(s, logits);
		assert_true(id >= 0 && id < 500);
		if (id > max_id)
			max_id = id;
	}
	assert_true(max_id > 400); /* the prefix grew past 64 and 256 */
	sampler_free(s);
}

static void test_bad_params(void **state)
{
	(void)state;
	struct sampler_params p;
	sampler_params_default(&p);
	assert_null(sampler_new(&p, 0));
	p.top_p = 0;
	assert_null(sampler_new(&p, 10));
	sampler_params_default(&p);
	p.repeat_penalty = 0;
	assert_null(sampler_new(&p, 10));
	sampler_params_default(&p);
	p.temp = NAN;
	assert_null(sampler_new(&p, 10));
	sampler_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_vectors),
		cmocka_unit_test(test_draws),
		cmocka_unit_test(test_greedy_and_penalty),
		cmocka_unit_test(test_seeded_reproducible),
		cmocka_unit_test(test_top_p_large_nucleus),
		cmocka_unit_test(test_bad_params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
