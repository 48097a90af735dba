/*
 * kernels_avx2.c: AVX2 + FMA + F16C products for x86-64 (built with
 * -mavx2 -mfma -mf16c; chosen at run time only when the CPU has them).
 *
 * DESIGN
 * Every product is one register-tiled kernel: a tile of R weight rows times C
 * activation rows, R*C float accumulators, walking k once. matvec is the
 * C = 1 case (R = 4 rows at once: each activation block is loaded and
 * prepared once for 4 weight rows, the 4 row streams keep the hardware
 * prefetchers busy); matmul uses R = 4, C = 2 tiles over a block of up to
 * COLS_BLOCK activation rows, so each weight block is read from memory once
 * per COLS_BLOCK activation rows and the activations stay in L2.
 *
 * Q8_0 x Q8_0: maddubs needs an unsigned operand, so the classic sign trick:
 * |x| (unsigned) times w carrying the sign of x; pairs are summed to 16 bits
 * (|x|,|w| <= 127 -- activations are made by our quantizer, which never
 * produces -128; a -128 weight still gives 2*128*127 < 32767), then to 32
 * bits by madd with ones: an exact int32 per 4 elements, converted to float
 * and multiplied by d_w*d_x. Q4_0 x Q8_0: the nibbles are unsigned already,
 * so maddubs(nibble, x) directly, minus the prepared bias 8*sum(x) (see
 * kernels_impl.h), exact as well. The only difference from the scalar
 * reference is therefore the order of float additions.
 */
#include <immintrin.h>
#include <string.h>

#include "dify-edge-core/runtime/kernels_impl.h"

#define COLS_BLOCK 64

#define AI static inline __attribute__((always_inline))

AI float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Broadcast an f16 scale from memory (unaligned) as 8 floats. */
AI __m256 bcast_f16(const void *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/* ------------------------------------------------------------- Q8_0 */

/* Y[c][r] for r in [r, r+R), c in [j, j+C). */
AI void tile_q8_0(const char *w, size_t rb, const char *xq, size_t xs, int64_t nb,
		  float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	const size_t doff = kern_prep_d_off(nb);
	const __m256i ones = _mm256_set1_epi16(1);
	__m256 acc[4][2];

	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		__m256i xv[2], xa[2];
		__m256 dx[2];
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			xv[c] = _mm256_loadu_si256((const __m256i *)(xr + (size_t)b * 34 + 2));
			xa[c] = _mm256_abs_epi8(xv[c]);
			dx[c] = _mm256_broadcast_ss((const float *)(xr + doff) + b);
		}
		for (int a = 0; a < R; a++) {
			const char *wb = w + (size_t)(r + a) * rb + (size_t)b * 34;
			const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 2));
			const __m256 dw = bcast_f16(wb);
			for (int c = 0; c < C; c++) {
				__m256i p = _mm256_maddubs_epi16(xa[c], _mm256_sign_epi8(wv, xv[c]));
				p = _mm256_madd_epi16(p, ones);
				acc[a][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_mul_ps(dw, dx[c]), acc[a][c]);
			}
		}
	}
	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++)
			y[(j + c) * ldy + r + a] = hsum(acc[a][c]);
}

/* ------------------------------------------------------------- Q4_0 */

AI void tile_q4_0(const char *w, size_t rb, const char *xq, size_t xs, int64_t nb,
		  float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	const size_t doff = kern_prep_d_off(nb), boff = kern_prep_bias_off(nb);
	const __m256i ones = _mm256_set1_epi16(1);
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	__m256 acc[4][2];

	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		__m256i xv[2], bias[2];
		__m256 dx[2];
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			xv[c] = _mm256_loadu_si256((const __m256i *)(xr + (size_t)b * 34 + 2));
			bias[c] = _mm256_loadu_si256((const __m256i *)(xr + boff) + b);
			dx[c] = _mm256_broadcast_ss((const float *)(xr + doff) + b);
		}
		for (int a = 0; a < R; a++) {
			const char *wb = w + (size_t)(r + a) * rb + (size_t)b * 18;
			const __m128i q = _mm_loadu_si128((const __m128i *)(wb + 2));
			const __m256i wv = _mm256_and_si256(
				_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
			const __m256 dw = bcast_f16(wb);
			for (int c = 0; c < C; c++) {
				__m256i p = _mm256_maddubs_epi16(wv, xv[c]);
				p = _mm256_sub_epi32(_mm256_madd_epi16(p, ones), bias[c]);
				acc[a][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_mul_ps(dw, dx[c]), acc[a][c]);
			}
		}
	}
	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++)
			y[(j + c) * ldy + r + a] = hsum(acc[a][c]);
}

/* ------------------------------------------------------------ F16/F32 */

AI __m256 load8(const void *p, const int f16)
{
	if (f16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
	return _mm256_loadu_ps((const float *)p);
}

AI float scalar_at(const void *p, int64_t i, const int f16)
{
	if (f16) {
		__m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128(((const uint16_t *)p)[i]));
		return _mm_cvtss_f32(v);
	}
	return ((const float *)p)[i];
}

AI void tile_fp(const char *w, size_t rb, const char *xq, size_t xs, int64_t k,
		float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C,
		const int f16)
{
	const int es = f16 ? 2 : 4;
	__m256 acc[4][2];
	int64_t i;

	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (i = 0; i + 8 <= k; i += 8) {
		__m256 xv[2];
		for (int c = 0; c < C; c++)
			xv[c] = load8(xq + (size_t)(j + c) * xs + (size_t)i * es, f16);
		for (int a = 0; a < R; a++) {
			__m256 wv = load8(w + (size_t)(r + a) * rb + (size_t)i * es, f16);
			for (int c = 0; c < C; c++)
				acc[a][c] = _mm256_fmadd_ps(wv, xv[c], acc[a][c]);
		}
	}
	for (int a = 0; a < R; a++)
		for (int c = 0; c < C; c++) {
			float s = hsum(acc[a][c]);
			for (int64_t t = i; t < k; t++)
				s += scalar_at(w + (size_t)(r + a) * rb, t, f16) *
				     scalar_at(xq + (size_t)(j + c) * xs, t, f16);
			y[(j + c) * ldy + r + a] = s;
		}
}

/* ---------------------------------------------------------- drivers */

enum { T_Q8, T_Q4, T_F16, T_F32 };

AI void tile(const int t, const char *w, size_t rb, const char *xq, size_t xs, int64_t k,
	     float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	switch (t) {
	case T_Q8: tile_q8_0(w, rb, xq, xs, k / 32, y, ldy, r, j, R, C); break;
	case T_Q4: tile_q4_0(w, rb, xq, xs, k / 32, y, ldy, r, j, R, C); break;
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

const struct kern_ops kern_ops_avx2 = {
	.name = "avx2",
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
