/*
 * sampler.c: next-token selection (see sampler.h for the order of the steps).
 *
 * The candidates live in one array of n_vocab {id, logit, p} allocated by
 * sampler_new(); nothing is allocated per token. Work is kept proportional
 * to what survives: top-k is a quickselect (no full sort of a 150k
 * vocabulary), min-p is a linear filter, and top-p sorts (in place, heapsort)
 * only a selected best-first prefix that grows until it holds the mass. Every comparison breaks ties by
 * the lower id, so the result is a pure function of (logits, params, seed,
 * history).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/sampler.h"

/* ---- PRNG: splitmix64 seeding, xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sampler_rng_seed(struct sampler_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sampler_rng_next(struct sampler_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double sampler_rng_uniform(struct sampler_rng *r)
{
	return (double)(sampler_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- sampler ---- */

struct cand {
	int32_t id;
	float logit;
	float p;
};

struct sampler {
	struct sampler_params par;
	int64_t n_vocab;
	struct cand *cand;     /* [n_vocab] scratch */
	int32_t *hist;         /* ring of the last repeat_last_n accepted ids */
	int64_t n_hist, hist_pos;
	struct sampler_rng rng;
};

void sampler_params_default(struct sampler_params *p)
{
	*p = (struct sampler_params){
		.temp = 0.8f,
		.top_k = 40,
		.top_p = 0.95f,
		.min_p = 0.05f,
		.repeat_penalty = 1.0f,
		.repeat_last_n = 64,
		.seed = 0,
	};
}

struct sampler *sampler_new(const struct sampler_params *p, int64_t n_vocab)
{
	struct sampler *s = NULL;

	if (!p || n_vocab < 1 || n_vocab > INT32_MAX || isnan(p->temp) ||
	    !(p->top_p > 0) || isnan(p->min_p) || !(p->repeat_penalty > 0) ||
	    p->repeat_last_n < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->par = *p;
	s->n_vocab = n_vocab;
	s->cand = malloc((size_t)n_vocab * sizeof(*s->cand));
	s->hist = malloc(((size_t)p->repeat_last_n + 1) * sizeof(*s->hist));
	if (!s->cand || !s->hist) {
		sampler_free(s);
		return NULL;
	}
	sampler_reset(s, p->seed);
	return s;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s->hist);
	free(s);
}

const struct sampler_params *sampler_get_params(const struct sampler *s)
{
	return &s->par;
}

void sampler_reset(struct sampler *s, uint64_t seed)
{
	s->n_hist = 0;
	s->hist_pos = 0;
	s->par.seed = seed;
	sampler_rng_seed(&s->rng, seed);
}

void sampler_accept(struct sampler *s, int32_t id)
{
	int64_t w = s->par.repeat_last_n;
	if (w <= 0)
		return;
	s->hist[s->hist_pos] = id;
	s->hist_pos = (s->hist_pos + 1) % w;
	if (s->n_hist < w)
		s->n_hist++;
}

int32_t sampler_argmax(const float *logits, int64_t n)
{
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = i;
	return (int32_t)best;
}

/* a before b in "best first" order by logit */
static inline int better_logit(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void swap_cand(struct cand *a, struct cand *b)
{
	struct cand t = *a;
	*a = *b;
	*b = t;
}

/* Reorder c[0..n) so that its k best (by logit, then lower id) come first,
 * in any order. Hoare-style quickselect with a median-of-three pivot. */
static void select_top_k(struct cand *c, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (better_logit(&c[mid], &c[lo]))
			swap_cand(&c[mid], &c[lo]);
		if (better_logit(&c[hi], &c[lo]))
			swap_cand(&c[hi], &c[lo]);
		if (better_logit(&c[hi], &c[mid]))
			swap_cand(&c[hi], &c[mid]);
		struct cand pivot = c[mid];
		int64_t i = lo, j = hi;
		while (i <= j) {
			while (better_logit(&c[i], &pivot))
				i++;
			while (better_logit(&pivot, &c[j]))
				j--;
			if (i <= j) {
				swap_cand(&c[i], &c[j]);
				i++;
				j--;
			}
		}
		/* [lo, j] >= pivot side, [i, hi] <= pivot side */
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

/* Sort c[0..n) best first (by logit, then lower id), in place: heapsort,
 * no allocation (glibc's qsort may malloc), O(n log n). */
static void sift_down(struct cand *c, int64_t root, int64_t n)
{
	for (;;) {
		int64_t child = 2 * root + 1;
		if (child >= n)
			return;
		/* min-heap on "better": the worst element at the root */
		if (child + 1 < n && better_logit(&c[child], &c[child + 1]))
			child++;
		if (!better_logit(&c[root], &c[child]))
			return;
		swap_cand(&c[root], &c[child]);
		root = child;
	}
}

static void sort_best_first(struct cand *c, int64_t n)
{
	for (int64_t i = n / 2 - 1; i >= 0; i--)
		sift_down(c, i, n);
	for (int64_t end = n - 1; end > 0; end--) {
		swap_cand(&c[0], &c[end]); /* the worst goes last */
		sift_down(c, 0, end);
	}
}

int32_t sampler_sample(struct sampler *s, const float *logits)
{
	const struct sampler_params *par = &s->par;
	struct cand *c = s->cand;
	int64_t n = s->n_vocab;

	for (int64_t i = 0; i < n; i++)
		c[i] = (struct cand){ .id = (int32_t)i, .logit = logits[i], .p = 0 };

	/* 1. repetition penalty: each distinct id of the window once */
	if (par->repeat_penalty != 1.0f && s->n_hist > 0) {
		int64_t w = par->repeat_last_n;
		for (int64_t a = 0; a < s->n_hist; a++) {
			int32_t id = s->hist[(s->hist_pos - 1 - a + w) % w];
			int dup = 0;
			for (int64_t b = 0; b < a && !dup; b++)
				dup = s->hist[(s->hist_pos - 1 - b + w) % w] == id;
			if (dup || id < 0 || id >= n)
				continue;
			float *l = &c[id].logit;
			*l = *l > 0 ? *l / par->repeat_penalty : *l * par->repeat_penalty;
		}
	}

	/* 2. greedy */
	if (!(par->temp > 0)) {
		int64_t best = 0;
		for (int64_t i = 1; i < n; i++)
			if (c[i].logit > c[best].logit)
				best = i;
		return c[best].id;
	}

	/* 3. top-k */
	if (par->top_k > 0 && par->top_k < n) {
		select_top_k(c, n, par->top_k);
		n = par->top_k;
	}

	/* 4. temperature + softmax (unnormalized weights are enough) */
	float maxl = -FLT_MAX;
	for (int64_t i = 0; i < n; i++)
		if (c[i].logit > maxl)
			maxl = c[i].logit;
	double sum = 0;
	for (int64_t i = 0; i < n; i++) {
		c[i].p = expf((c[i].logit - maxl) / par->temp);
		sum += c[i].p;
	}

	/* 6. min-p (a filter; order-independent with top-p below since both
	 * keep a best-first prefix measured on the same probabilities) */
	if (par->min_p > 0) {
		float thr = par->min_p; /* the best has weight exp(0) = 1 */
		int64_t m = 0;
		for (int64_t i = 0; i < n; i++)
			if (c[i].p >= thr)
				c[m++] = c[i];
		n = m > 0 ? m : 1; /* the best always passes; m >= 1 */
	}

	/* 5. top-p: the nucleus is usually small, so select the best m (64,
	 * then 4x more while their mass falls short), sort only those. p is
	 * monotonic in the logit, so "best" is by logit (then lower id). */
	if (par->top_p < 1.0f) {
		double target = par->top_p * sum;
		int64_t m = n < 64 ? n : 64, keep = -1;
		while (keep < 0) {
			if (m < n)
				select_top_k(c, n, m);
			sort_best_first(c, m);
			double acc = 0;
			for (int64_t i = 0; i < m && keep < 0; i++) {
				acc += c[i].p;
				if (acc >= target)
					keep = i + 1;
			}
			if (keep < 0 && m == n)
				keep = n; /* rounding: the whole mass fell short */
			m = m * 4 < n ? m * 4 : n;
		}
		n = keep;
	}

	/* 7. draw */
	double tot = 0;
	for (int64_t i = 0; i < n; i++)
		tot += c[i].p;
	double u = sampler_rng_uniform(&s->rng) * tot;
	double acc = 0;
	for (int64_t i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc)
			return c[i].id;
	}
	return c[n - 1].id;
}
