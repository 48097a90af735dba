/*
 * kernels_neon.h: the arm64 product kernels, written once and compiled
 * twice: by kernels_neon.c (built with -march=armv8.2-a+dotprod+fp16, so
 * __ARM_FEATURE_DOTPROD is set and the int8 products use SDOT) and by
 * kernels_arm64.c (the baseline armv8-a build: plain NEON, SMULL + SADALP),
 * for cores without the dot product (Cortex-A53/A57/A72). Private to those
 * two files: it defines static functions and the table named KN_OPS; define
 * KN_OPS and KN_NAME before including it.
 *
 * DESIGN
 * The same register tiling as the x86 kernels (kernels_x86.h): R weight rows
 * times C activation rows per tile, R*C float32x4 accumulators, one walk
 * over k; matvec is R = 4, C = 1; matmul R = 4, C = 2 over blocks of up to
 * COLS_BLOCK activation rows. Q8_0 and Q4_0 blocks are multiplied exactly
 * in int32 (SDOT: 4 int8 products per lane; without it SMULL to int16 --
 * |w*x| <= 128*127 fits -- then pairwise-add into int32), converted to float
 * and accumulated with the block's d_w*d_x (vfmaq_n_f32, no broadcast
 * needed). Q4_0 nibbles are made signed (q - 8) before the product, so the
 * Q4_0 bias of the prepared row is not used here. F16 weights are widened to
 * f32 (FCVTL, base ARMv8) and accumulated in f32.
 */
#include <arm_neon.h>
#include <string.h>

#include "dify-edge-core/runtime/kernels_impl.h"

#define COLS_BLOCK 64
#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

AI float f16_at(const void *p)
{
	__fp16 h;
	memcpy(&h, p, 2);
	return (float)h;
}

/* Exact int32 lanes of w (32 int8 in two halves) times x (the same). */
AI int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1)
{
#if defined(__ARM_FEATURE_DOTPROD)
	return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else
	int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
	int16x8_t p1 = vmull_high_s8(w0, x0);
	int16x8_t p2 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1));
	int16x8_t p3 = vmull_high_s8(w1, x1);
	int32x4_t s = vpaddlq_s16(p0);
	s = vpadalq_s16(s, p1);
	s = vpadalq_s16(s, p2);
	return vpadalq_s16(s, p3);
#endif
}

/* Y[c][r] for r in [r, r+R), c in [j, j+C); q4: weights are Q4_0. */
AI void tile_q(const char *w, size_t rb, const char *xq, size_t xs, int64_t nb,
	       float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C,
	       const int q4)
{
	const size_t doff = kern_prep_d_off(nb);
	const size_t bs = q4 ? 18 : 34;
	float32x4_t acc[4][2];

	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			acc[a][c] = vdupq_n_f32(0.0f);
	for (int64_t b = 0; b < nb; b++) {
		int8x16_t x0[2], x1[2];
		float dx[2];
		if (C == 1) {
			/* matvec: prefetch the next tile's (contiguous) rows,
			 * spread over this tile's walk, as on x86 where it took
			 * Q8_0 from 9 to 32 GB/s; hints never fault */
			const char *p = w + (size_t)(r + R) * rb + (size_t)b * R * bs;
			__builtin_prefetch(p);
			__builtin_prefetch(p + 64);
			if (R * bs > 128)
				__builtin_prefetch(p + 128);
		}
		UNROLL
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			const int8_t *qs = (const int8_t *)(xr + (size_t)b * 34 + 2);
			x0[c] = vld1q_s8(qs);
			x1[c] = vld1q_s8(qs + 16);
			dx[c] = ((const float *)(xr + doff))[b];
		}
		UNROLL
		for (int a = 0; a < R; a++) {
			const char *wb = w + (size_t)(r + a) * rb + (size_t)b * bs;
			int8x16_t w0, w1;
			if (q4) {
				const uint8x16_t q = vld1q_u8((const uint8_t *)(wb + 2));
				const int8x16_t eight = vdupq_n_s8(8);
				w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
				w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
			} else {
				w0 = vld1q_s8((const int8_t *)(wb + 2));
				w1 = vld1q_s8((const int8_t *)(wb + 18));
			}
			const float dw = f16_at(wb);
			UNROLL
			for (int c = 0; c < C; c++)
				acc[a][c] = vfmaq_n_f32(acc[a][c],
							vcvtq_f32_s32(dot32(w0, w1, x0[c], x1[c])),
							dw * dx[c]);
		}
	}
	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			y[(j + c) * ldy + r + a] = vaddvq_f32(acc[a][c]);
}

AI float32x4_t load4(const void *p, int64_t i, const int f16)
{
	if (f16)
		return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + i)));
	return vld1q_f32((const float *)p + i);
}

AI float scalar_at(const void *p, int64_t i, const int f16)
{
	if (f16)
		return f16_at((const uint16_t *)p + i);
	return ((const float *)p)[i];
}

AI void tile_fp(const char *w, size_t rb, const char *xq, size_t xs, int64_t k,
		float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C,
		const int f16)
{
	float32x4_t acc[4][2][2];
	int64_t i;

	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			acc[a][c][0] = acc[a][c][1] = vdupq_n_f32(0.0f);
	for (i = 0; i + 8 <= k; i += 8) {
		float32x4_t xv[2][2];
		UNROLL
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			xv[c][0] = load4(xr, i, f16);
			xv[c][1] = load4(xr, i + 4, f16);
		}
		UNROLL
		for (int a = 0; a < R; a++) {
			const char *wr = w + (size_t)(r + a) * rb;
			float32x4_t w0 = load4(wr, i, f16), w1 = load4(wr, i + 4, f16);
			UNROLL
			for (int c = 0; c < C; c++) {
				acc[a][c][0] = vfmaq_f32(acc[a][c][0], w0, xv[c][0]);
				acc[a][c][1] = vfmaq_f32(acc[a][c][1], w1, xv[c][1]);
			}
		}
	}
	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++) {
			float s = vaddvq_f32(vaddq_f32(acc[a][c][0], acc[a][c][1]));
			for (int64_t t = i; t < k; t++)
				s += scalar_at(w + (size_t)(r + a) * rb, t, f16) *
				     scalar_at(xq + (size_t)(j + c) * xs, t, f16);
			y[(j + c) * ldy + r + a] = s;
		}
}

enum { T_Q8, T_Q4, T_F16, T_F32 };

AI void tile(const int t, const char *w, size_t rb, const char *xq, size_t xs, int64_t k,
	     float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	switch (t) {
	case T_Q8: tile_q(w, rb, xq, xs, k / 32, y, ldy, r, j, R, C, 0); break;
	case T_Q4: tile_q(w, rb, xq, xs, k / 32, y, ldy, r, j, R, C, 1); break;
	case T_F16: tile_fp(w, rb, xq, xs, k, y, ldy, r, j, R, C, 1); break;
	default: tile_fp(w, rb, xq, xs, k, y, ldy, r, j, R, C, 0); break;
	}
}

AI void matvec_t(const int t, const void *w, size_t rb, const void *xq, float *y,
		 int64_t k, int64_t r0, int64_t r1)
{
	int64_t r = r0;

	for (; r + 4 <= r1; r += 4)
		tile(t, w, rb, xq, 0, k, y, 0, r, 0, 4, 1);
	for (; r < r1; r++)
		tile(t, w, rb, xq, 0, k, y, 0, r, 0, 1, 1);
}

AI void matmul_t(const int t, const void *w, size_t rb, const void *xq, size_t xs,
		 int64_t n, float *y, int64_t ldy, int64_t k, int64_t r0, int64_t r1)
{
	for (int64_t j0 = 0; j0 < n; j0 += COLS_BLOCK) {
		int64_t j1 = j0 + COLS_BLOCK < n ? j0 + COLS_BLOCK : n;
		int64_t r = r0;
		for (; r + 4 <= r1; r += 4) {
			int64_t j = j0;
			for (; j + 2 <= j1; j += 2)
				tile(t, w, rb, xq, xs, k, y, ldy, r, j, 4, 2);
			for (; j < j1; j++)
				tile(t, w, rb, xq, xs, k, y, ldy, r, j, 4, 1);
		}
		for (; r < r1; r++) {
			int64_t j = j0;
			for (; j + 2 <= j1; j += 2)
				tile(t, w, rb, xq, xs, k, y, ldy, r, j, 1, 2);
			for (; j < j1; j++)
				tile(t, w, rb, xq, xs, k, y, ldy, r, j, 1, 1);
		}
	}
}

#define DEFINE(name, t)                                                                 \
	static void matvec_##name(const void *w, size_t rb, const void *xq, float *y,   \
				  int64_t k, int64_t r0, int64_t r1)                     \
	{                                                                               \
		matvec_t(t, w, rb, xq, y, k, r0, r1);                                   \
	}                                                                               \
	static void matmul_##name(const void *w, size_t rb, const void *xq, size_t xs,  \
				  int64_t n, float *y, int64_t ldy, int64_t k,          \
				  int64_t r0, int64_t r1)                                \
	{                                                                               \
		matmul_t(t, w, rb, xq, xs, n, y, ldy, k, r0, r1);                       \
	}

DEFINE(q8_0, T_Q8)
DEFINE(q4_0, T_Q4)
DEFINE(f16, T_F16)
DEFINE(f32, T_F32)

static uint64_t stream_read(const void *p, size_t n)
{
	const uint8_t *c = p;
	uint8x16_t a0 = vdupq_n_u8(0), a1 = a0, a2 = a0, a3 = a0;
	uint64_t tail = 0;
	size_t i = 0;

	for (; i + 128 <= n; i += 64) { /* whole 128-byte blocks, as kernels.c */
		a0 = veorq_u8(a0, vld1q_u8(c + i));
		a1 = veorq_u8(a1, vld1q_u8(c + i + 16));
		a2 = veorq_u8(a2, vld1q_u8(c + i + 32));
		a3 = veorq_u8(a3, vld1q_u8(c + i + 48));
		i += 64;
		a0 = veorq_u8(a0, vld1q_u8(c + i));
		a1 = veorq_u8(a1, vld1q_u8(c + i + 16));
		a2 = veorq_u8(a2, vld1q_u8(c + i + 32));
		a3 = veorq_u8(a3, vld1q_u8(c + i + 48));
	}
	for (; i < n; i++)
		tail += c[i];
	uint64x2_t s = vreinterpretq_u64_u8(veorq_u8(veorq_u8(a0, a1), veorq_u8(a2, a3)));
	return vgetq_lane_u64(s, 0) ^ vgetq_lane_u64(s, 1) ^ tail;
}

const struct kern_ops KN_OPS = {
	.name = KN_NAME,
	.stream_read = stream_read,
	.matvec = {
		[KT_F32] = matvec_f32,
		[KT_F16] = matvec_f16,
		[KT_Q8_0] = matvec_q8_0,
		[KT_Q4_0] = matvec_q4_0,
	},
	.matmul = {
		[KT_F32] = matmul_f32,
		[KT_F16] = matmul_f16,
		[KT_Q8_0] = matmul_q8_0,
		[KT_Q4_0] = matmul_q4_0,
	},
};
