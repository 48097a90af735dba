/*
 * ops.c: see ops.h. Plain C written so that the compiler can keep several
 * independent accumulators (dot) and vectorize the element-wise loops; these
 * operations are a few percent of a forward pass, the weight products in
 * kernels.c are the rest.
 */
#include <math.h>
#include <stdbool.h>

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/ops.h"

void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
	for (int64_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

void ops_rope_table(float *cs, int64_t pos, int64_t n_rot, float freq_base,
		    float freq_scale)
{
	for (int64_t i = 0; i < n_rot / 2; i++) {
		double theta = (double)pos * freq_scale *
			       pow(freq_base, -2.0 * (double)i / (double)n_rot);
		cs[2 * i] = (float)cos(theta);
		cs[2 * i + 1] = (float)sin(theta);
	}
}

void ops_rope(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot,
	      const float *cs, int neox)
{
	int64_t half = n_rot / 2;
	for (int64_t h = 0; h < n_head; h++) {
		float *v = x + h * head_dim;
		for (int64_t i = 0; i < half; i++) {
			int64_t a = neox ? i : 2 * i;
			int64_t b = neox ? i + half : 2 * i + 1;
			float c = cs[2 * i], s = cs[2 * i + 1];
			float x0 = v[a], x1 = v[b];
			v[a] = x0 * c - x1 * s;
			v[b] = x0 * s + x1 * c;
		}
	}
}

void ops_softmax(float *x, int64_t n)
{
	float m = x[0];
	for (int64_t i = 1; i < n; i++)
		if (x[i] > m)
			m = x[i];
	double sum = 0;
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - m);
		sum += x[i];
	}
	float inv = (float)(1.0 / sum);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
}

void ops_silu_mul(float *g, const float *u, int64_t n)
{
	ops_silu_mul_to(g, g, u, n);
}

#if defined(__x86_64__)
/* the kernels' ISA decides (a forced scalar run stays scalar) */
static bool simd_ok(void)
{
	enum kern_isa isa = kern_isa();
	return isa == KERN_ISA_AVX2 || isa == KERN_ISA_AVX512;
}
#endif

void ops_silu_mul_to(float *out, const float *g, const float *u, int64_t n)
{
#if defined(__x86_64__)
	if (simd_ok()) {
		ops_silu_mul_to_avx2(out, g, u, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float ops_dot(const float *a, const float *b, int64_t n)
{
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	float r = 0;
	for (; i < n; i++)
		r += a[i] * b[i];
	return r + ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void ops_axpy(float *y, float a, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

void ops_attn_head(float *out, const float *q, const float *k, const float *v,
		   int64_t stride, int64_t n_pos, int64_t hd, float scale,
		   float *scores)
{
	float (*dot)(const float *, const float *, int64_t) = ops_dot;
	void (*axpy)(float *, float, const float *, int64_t) = ops_axpy;
#if defined(__x86_64__)
	if (simd_ok()) {
		dot = ops_dot_avx2;
		axpy = ops_axpy_avx2;
	}
#endif
	for (int64_t t = 0; t < n_pos; t++)
		scores[t] = dot(q, k + t * stride, hd) * scale;
	ops_softmax(scores, n_pos);
	for (int64_t d = 0; d < hd; d++)
		out[d] = 0;
	for (int64_t t = 0; t < n_pos; t++)
		axpy(out, scores[t], v + t * stride, hd);
}
