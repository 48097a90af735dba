/*
 * ops.h: the small f32 operations of a transformer forward pass that are not
 * weight products: RMSNorm, rotary embedding, softmax, SiLU gating, dot and
 * axpy for attention over the KV cache. They work on one row (a token, or a
 * head of a token); the model's forward pass spreads rows over the pool.
 * Matrix products with the weights live in kernels.h.
 */
#ifndef OPS_H
#define OPS_H

#include <stdint.h>

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x. */
void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Rotary tables for one position: cs[2i] = cos(theta_i), cs[2i+1] =
 * sin(theta_i), theta_i = pos * freq_scale * freq_base^(-2i/n_rot),
 * i in [0, n_rot/2). Computed in double, stored as float. */
void ops_rope_table(float *cs, int64_t pos, int64_t n_rot, float freq_base,
		    float freq_scale);
/* Rotate the first n_rot dims of each of n_head heads of head_dim floats.
 * neox = 0: pairs (2i, 2i+1) (ggml mode 0); neox = 1: pairs (i, i+n_rot/2). */
void ops_rope(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot,
	      const float *cs, int neox);

/* In place, numerically stable (max subtracted). */
void ops_softmax(float *x, int64_t n);
/* g[i] = silu(g[i]) * u[i] */
void ops_silu_mul(float *g, const float *u, int64_t n);
/* out[i] = silu(g[i]) * u[i]; out may alias g */
void ops_silu_mul_to(float *out, const float *g, const float *u, int64_t n);
float ops_dot(const float *a, const float *b, int64_t n);
/* y[i] += a * x[i] */
void ops_axpy(float *y, float a, const float *x, int64_t n);

/* Causal attention of one query head over n_pos cached positions:
 * k, v: [n_pos][stride] rows (this head's hd floats at the row start);
 * scores: scratch of n_pos floats; out[hd] = softmax(q.k * scale) . v */
void ops_attn_head(float *out, const float *q, const float *k, const float *v,
		   int64_t stride, int64_t n_pos, int64_t hd, float scale,
		   float *scores);

#if defined(__x86_64__)
/* ops_avx2.c (AVX2 + FMA); ops.c picks them when the kernels run at AVX2
 * or better. */
float ops_dot_avx2(const float *a, const float *b, int64_t n);
void ops_axpy_avx2(float *y, float a, const float *x, int64_t n);
void ops_silu_mul_to_avx2(float *out, const float *g, const float *u, int64_t n);
#endif

#endif /* OPS_H */
