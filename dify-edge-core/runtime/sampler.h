/*
 * sampler.h: choosing the next token from logits, and the seeded PRNG.
 *
 * DESIGN
 * A sampler holds its parameters, a scratch array of n_vocab candidates
 * (allocated once by sampler_new, so sampling allocates nothing), the PRNG
 * state and a ring of the last repeat_last_n accepted ids. sampler_sample()
 * applies, in this order (llama.cpp's order):
 *   1. repetition penalty over the ids in the window (each distinct id once:
 *      a positive logit is divided by the penalty, a negative one multiplied);
 *   2. greedy when temp <= 0: the arg-max (lowest id on ties) -- done;
 *   3. top-k (keep the k largest; k <= 0 or >= n_vocab: off);
 *   4. temperature: logits / temp, then softmax;
 *   5. top-p: keep the smallest prefix (by probability, descending) whose
 *      mass reaches p (p >= 1: off; at least one kept);
 *   6. min-p: drop candidates whose probability < min_p * the largest
 *      (min_p <= 0: off);
 *   7. draw from the renormalized remainder with one uniform number.
 * Ties in sorting are broken by the lower id, so runs are reproducible.
 *
 * The PRNG is xoshiro256** (Blackman & Vigna, 2018) seeded by expanding the
 * 64-bit seed with splitmix64; uniform doubles take the top 53 bits. The
 * same seed and the same logits give the same tokens on every machine.
 */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct sampler_rng {
	uint64_t s[4];
};
void sampler_rng_seed(struct sampler_rng *r, uint64_t seed);
uint64_t sampler_rng_next(struct sampler_rng *r);    /* xoshiro256** */
double sampler_rng_uniform(struct sampler_rng *r);   /* [0, 1) */

struct sampler_params {
	float temp;             /* <= 0: greedy */
	int32_t top_k;          /* <= 0: off */
	float top_p;            /* >= 1: off */
	float min_p;            /* <= 0: off */
	float repeat_penalty;   /* 1: off */
	int32_t repeat_last_n;  /* window of accepted ids penalized; 0: off */
	uint64_t seed;
};
/* Defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, penalty 1 (off),
 * last_n 64, seed 0. */
void sampler_params_default(struct sampler_params *p);

struct sampler;
/* NULL on bad parameters (n_vocab < 1, temp NaN, top_p <= 0, penalty <= 0,
 * negative window) or out of memory. */
struct sampler *sampler_new(const struct sampler_params *p, int64_t n_vocab);
void sampler_free(struct sampler *s); /* NULL is a no-op */
const struct sampler_params *sampler_get_params(const struct sampler *s);
/* Forget the accepted ids and reseed the PRNG with seed. */
void sampler_reset(struct sampler *s, uint64_t seed);
/* Record an id (prompt or generated) for the repetition penalty. */
void sampler_accept(struct sampler *s, int32_t id);
/* Pick the next id from logits[n_vocab] (not modified). Does NOT accept it. */
int32_t sampler_sample(struct sampler *s, const float *logits);

/* Greedy pick without a sampler: arg-max, lowest id on ties. */
int32_t sampler_argmax(const float *logits, int64_t n);

#endif /* SAMPLER_H */
