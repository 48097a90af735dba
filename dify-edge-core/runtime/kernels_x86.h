/*
 * kernels_x86.h: the x86-64 product kernels, written once and compiled
 * twice: by kernels_avx2.c (AVX2 + FMA + F16C) and by kernels_avx512.c
 * (the same plus AVX512-VL/VNNI, which fuses the int8 multiply, the pair sums
 * and, for Q4_0, the bias subtraction into one vpdpbusd). Private to those
 * two files: it defines static functions and the ops table named KX_OPS.
 * Before including it define KX_OPS (the table's name), KX_NAME (a string)
 * and KX_VNNI (0 or 1).
 *
 * DESIGN
 * Every product is one register-tiled kernel: a tile of R weight rows times
 * C activation rows, R*C float accumulators, walking k once. matvec is the
 * C = 1 case (R = 4 rows at once: each activation block is loaded and
 * prepared once for 4 weight rows, and the 4 row streams keep the hardware
 * prefetchers busy); matmul uses R = 4, C = 2 tiles over blocks of up to
 * COLS_BLOCK activation rows, so each weight block is read from memory once
 * per COLS_BLOCK activation rows while those stay in L2.
 *
 * Q8_0 x Q8_0: maddubs needs an unsigned operand, so the classic sign trick:
 * |x| (unsigned) times w carrying the sign of x; pairs summed to 16 bits
 * (|x|,|w| <= 127 -- activations come from our quantizer, which never
 * produces -128; a -128 weight still gives 2*128*127 < 32767), then to 32
 * bits by madd with ones: an exact int32 per 4 elements. Q4_0 x Q8_0: the
 * nibbles are unsigned already, so maddubs(nibble, x) directly, minus the
 * prepared bias 8*sum(x) (kernels_impl.h), exact as well. The int32 lanes
 * are converted to float and accumulated with the block's scale d_w*d_x.
 *
 * Scales: the R weight scales of a block are gathered as integers into
 * 64-bit words, converted with one vcvtph2ps, multiplied by d_x once, and
 * each row's lane is broadcast with one vpermps, instead of a broadcast +
 * convert + multiply per row and block (a stack array + broadcast loads was
 * measured 6-13% slower: store-forwarding stalls).
 * The only difference from the scalar reference is the order of additions.
 */
#include <immintrin.h>
#include <string.h>

#include "dify-edge-core/runtime/kernels_impl.h"

#define COLS_BLOCK 64
#define MAXR 8     /* most weight rows in a tile */
#define MV_ROWS 4  /* weight rows per matvec tile (8 measured no faster) */

#define AI static inline __attribute__((always_inline))
/* Tile loops have compile-time bounds; unrolled, the accumulator arrays live
 * in registers (GCC -O2 would otherwise keep them on the stack). */
#define UNROLL _Pragma("GCC unroll 8")

AI float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* f32 -> f16, round to nearest even: the same as kern_f32_to_f16 (tested) */
AI uint16_t f32_to_f16_hw(float f)
{
	return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}

AI uint16_t ld16(const void *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return h;
}

/* Broadcast an f16 scale from memory as 8 floats. */
AI __m256 bcast_f16(const void *p)
{
	return _mm256_cvtph_ps(_mm_set1_epi16((short)ld16(p)));
}

/* The f16 scales of R (<= 8) weight rows at byte offset off, as floats. */
AI __m256 row_scales(const char *w, size_t rb, int64_t r, size_t off, const int R)
{
	uint64_t v[2] = {0, 0};
	UNROLL
	for (int a = 0; a < R; a++)
		v[a / 4] |= (uint64_t)ld16(w + (size_t)(r + a) * rb + off) << (16 * (a % 4));
	return _mm256_cvtph_ps(_mm_set_epi64x((long long)v[1], (long long)v[0]));
}

/* Software prefetch for matvec: the R rows of a tile are contiguous, and so
 * is the next tile's region [nx, nx + R*rb). Interleaving R row streams
 * defeats the hardware prefetchers (measured: ~9 of 35 GB/s), so each
 * iteration `it` of the tile walk prefetches the next `span` bytes of the
 * next tile's region, finishing it as the current tile finishes. Prefetch
 * hints never fault, so running past the matrix end is harmless. */
AI void pf_next(const char *nx, int64_t it, const int span, int to_l2)
{
	const char *p = nx + (size_t)it * (size_t)span;
	if (to_l2) {
		_mm_prefetch(p, _MM_HINT_T1);
		_mm_prefetch(p + 64, _MM_HINT_T1);
		if (span > 128)
			_mm_prefetch(p + 128, _MM_HINT_T1);
	} else {
		_mm_prefetch(p, _MM_HINT_T0);
		_mm_prefetch(p + 64, _MM_HINT_T0);
		if (span > 128)
			_mm_prefetch(p + 128, _MM_HINT_T0);
	}
}

/* Prefetch into L2 rather than L1 when a tile's region is large (long rows):
 * the current and the next region would not both fit in L1. Measured on Zen 4
 * (32 KiB L1D): into L1 up to 16 KiB tiles (F32 896 wide: 25 -> 30 GB/s
 * against an 8 KiB limit), into L2 above (Q8_0 4864 wide: 21 -> 29 GB/s).
 * Prefetching each row at a fixed distance instead was much worse (15 GB/s),
 * two tiles ahead no better. */
#define PF_L2(R, rb) ((size_t)(R) * (rb) > 16384)

/* int32 lanes of sum(u8 a * s8 b) over groups of 4 bytes, plus acc. */
AI __m256i dot_u8s8(__m256i acc, __m256i a, __m256i b)
{
#if KX_VNNI
	return _mm256_dpbusd_epi32(acc, a, b);
#else
	const __m256i ones = _mm256_set1_epi16(1);
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
#endif
}

/* The same with acc = 0 (saves the add without VNNI). */
AI __m256i dot_u8s8_0(__m256i a, __m256i b)
{
#if KX_VNNI
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b);
#else
	const __m256i ones = _mm256_set1_epi16(1);
	return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones);
#endif
}

/* ------------------------------------------------------------- Q8_0 */

/* Y[c][r] for r in [r, r+R), c in [j, j+C). */
AI void tile_q8_0(const char *w, size_t rb, const char *xq, size_t xs, int64_t nb,
		  float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	const size_t doff = kern_prep_d_off(nb);
	__m256 acc[MAXR][2];
	__m256 scv[2];

	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		__m256i xv[2], xa[2];
		const __m256 dw = row_scales(w, rb, r, (size_t)b * 34, R);
		if (C == 1)
			pf_next(w + (size_t)(r + R) * rb, b, R * 34, PF_L2(R, rb));
		UNROLL
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			xv[c] = _mm256_loadu_si256((const __m256i *)(xr + (size_t)b * 34 + 2));
			xa[c] = _mm256_abs_epi8(xv[c]);
			scv[c] = _mm256_mul_ps(dw, _mm256_set1_ps(((const float *)(xr + doff))[b]));
		}
		UNROLL
		for (int a = 0; a < R; a++) {
			const char *wb = w + (size_t)(r + a) * rb + (size_t)b * 34;
			const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 2));
			UNROLL
			for (int c = 0; c < C; c++) {
				__m256i p = dot_u8s8_0(xa[c], _mm256_sign_epi8(wv, xv[c]));
				acc[a][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_permutevar8x32_ps(scv[c], _mm256_set1_epi32(a)), acc[a][c]);
			}
		}
	}
	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			y[(j + c) * ldy + r + a] = hsum(acc[a][c]);
}

/* ------------------------------------------------------------- Q4_0 */

AI void tile_q4_0(const char *w, size_t rb, const char *xq, size_t xs, int64_t nb,
		  float *y, int64_t ldy, int64_t r, int64_t j, const int R, const int C)
{
	const size_t doff = kern_prep_d_off(nb), boff = kern_prep_bias_off(nb);
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i shift = _mm256_set_epi64x(4, 4, 0, 0);
	__m256 acc[MAXR][2];
	__m256 scv[2];

	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		__m256i xv[2], nbias[2];
		const __m256 dw = row_scales(w, rb, r, (size_t)b * 18, R);
		if (C == 1)
			pf_next(w + (size_t)(r + R) * rb, b, R * 18, PF_L2(R, rb));
		UNROLL
		for (int c = 0; c < C; c++) {
			const char *xr = xq + (size_t)(j + c) * xs;
			xv[c] = _mm256_loadu_si256((const __m256i *)(xr + (size_t)b * 34 + 2));
			nbias[c] = _mm256_sub_epi32(_mm256_setzero_si256(),
				_mm256_loadu_si256((const __m256i *)(xr + boff) + b));
			scv[c] = _mm256_mul_ps(dw, _mm256_set1_ps(((const float *)(xr + doff))[b]));
		}
		UNROLL
		for (int a = 0; a < R; a++) {
			const char *wb = w + (size_t)(r + a) * rb + (size_t)b * 18;
			/* [qs, qs] (a load-port broadcast), the upper copy
			 * shifted right by 4: low nibbles = elements 0..15,
			 * high nibbles = 16..31, in x's order */
			const __m256i q = _mm256_broadcastsi128_si256(
				_mm_loadu_si128((const __m128i *)(wb + 2)));
			const __m256i wv = _mm256_and_si256(_mm256_srlv_epi64(q, shift), m4);
			UNROLL
			for (int c = 0; c < C; c++) {
				__m256i p = dot_u8s8(nbias[c], wv, xv[c]);
				acc[a][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_permutevar8x32_ps(scv[c], _mm256_set1_epi32(a)), acc[a][c]);
			}
		}
	}
	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
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
	__m256 acc[MAXR][2];
	int64_t i;

	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
		for (int c = 0; c < C; c++)
			acc[a][c] = _mm256_setzero_ps();
	for (i = 0; i + 8 <= k; i += 8) {
		__m256 xv[2];
		if (C == 1)
			pf_next(w + (size_t)(r + R) * rb, i / 8, R * 8 * es, PF_L2(R, rb));
		UNROLL
		for (int c = 0; c < C; c++)
			xv[c] = load8(xq + (size_t)(j + c) * xs + (size_t)i * es, f16);
		UNROLL
		for (int a = 0; a < R; a++) {
			__m256 wv = load8(w + (size_t)(r + a) * rb + (size_t)i * es, f16);
			UNROLL
			for (int c = 0; c < C; c++)
				acc[a][c] = _mm256_fmadd_ps(wv, xv[c], acc[a][c]);
		}
	}
	UNROLL
	for (int a = 0; a < R; a++)
		UNROLL
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

	for (; r + MV_ROWS <= r1; r += MV_ROWS)
		tile(t, w, rb, xq, 0, k, y, 0, r, 0, MV_ROWS, 1);
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
	__attribute__((unused)) static void matvec_##name(const void *w, size_t rb, const void *xq, float *y,   \
				  int64_t k, int64_t r0, int64_t r1)                     \
	{                                                                               \
		matvec_t(t, w, rb, xq, y, k, r0, r1);                                   \
	}                                                                               \
	__attribute__((unused)) static void matmul_##name(const void *w, size_t rb, const void *xq, size_t xs,  \
				  int64_t n, float *y, int64_t ldy, int64_t k,          \
				  int64_t r0, int64_t r1)                                \
	{                                                                               \
		matmul_t(t, w, rb, xq, xs, n, y, ldy, k, r0, r1);                       \
	}

DEFINE(q8_0, T_Q8)
DEFINE(q4_0, T_Q4)
DEFINE(f16, T_F16)
DEFINE(f32, T_F32)

/* Q8_0 quantization with the scalar reference's exact operations (kernels.c,
 * ggml's quantize_row_q8_0_ref): amax by max of |x| (exact), d = amax / 127
 * and id = 1/d as scalars, x * id per lane (the same IEEE product), then
 * round half away from zero exactly: t = trunc(v), v - t is exact, +-1 when
 * |v - t| >= 0.5. So the bytes are identical (the tests check it). */
__attribute__((unused)) static void quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k)
{
	const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
	const __m256 mhalf = _mm256_set1_ps(-0.5f);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);

	for (int64_t b = 0; b < k / 32; b++) {
		const float *xb = x + b * 32;
		__m256 v[4], m;
		UNROLL
		for (int i = 0; i < 4; i++)
			v[i] = _mm256_loadu_ps(xb + 8 * i);
		m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
				  _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		const float amax = _mm_cvtss_f32(m4);
		const float d = amax / 127;
		const float id = d ? 1.0f / d : 0.0f;
		const __m256 idv = _mm256_set1_ps(id);
		__m256i q[4];
		UNROLL
		for (int i = 0; i < 4; i++) {
			__m256 s = _mm256_mul_ps(v[i], idv);
			__m256i t = _mm256_cvttps_epi32(s);
			__m256 diff = _mm256_sub_ps(s, _mm256_cvtepi32_ps(t));
			/* compare masks are -1 where true: t + ge - le */
			__m256i ge = _mm256_castps_si256(_mm256_cmp_ps(diff, half, _CMP_GE_OQ));
			__m256i le = _mm256_castps_si256(_mm256_cmp_ps(diff, mhalf, _CMP_LE_OQ));
			q[i] = _mm256_add_epi32(_mm256_sub_epi32(t, ge), le);
		}
		/* int32 -> int8, restoring element order across the 128-bit
		 * lanes that packs works within */
		__m256i p01 = _mm256_packs_epi32(q[0], q[1]);
		__m256i p23 = _mm256_packs_epi32(q[2], q[3]);
		__m256i p = _mm256_packs_epi16(p01, p23);
		p = _mm256_permutevar8x32_epi32(p, perm);
		y[b].d = f32_to_f16_hw(d);
		_mm256_storeu_si256((__m256i *)y[b].qs, p);
	}
}

/* Four independent 32-byte load streams per iteration (xor keeps the
 * dependency chains short); the tail goes byte by byte. */
__attribute__((unused)) static uint64_t stream_read(const void *p, size_t n)
{
	const char *c = p;
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	uint64_t tail = 0, out[4];
	size_t i = 0;

	for (; i + 128 <= n; i += 128) {
		a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(c + i)));
		a1 = _mm256_xor_si256(a1, _mm256_loadu_si256((const __m256i *)(c + i + 32)));
		a2 = _mm256_xor_si256(a2, _mm256_loadu_si256((const __m256i *)(c + i + 64)));
		a3 = _mm256_xor_si256(a3, _mm256_loadu_si256((const __m256i *)(c + i + 96)));
	}
	for (; i < n; i++)
		tail += (unsigned char)c[i];
	a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
	_mm256_storeu_si256((__m256i *)out, a0);
	return out[0] ^ out[1] ^ out[2] ^ out[3] ^ tail;
}

#if KX_VNNI
/* Only what VNNI measured faster (kernels_avx512.c's note); the rest is the
 * AVX2 build's. */
const struct kern_ops KX_OPS = {
	.name = KX_NAME,
	.fallback = &kern_ops_avx2,
	.matvec = {
		[KT_Q4_0] = matvec_q4_0,
	},
	.matmul = {
		[KT_Q8_0] = matmul_q8_0,
		[KT_Q4_0] = matmul_q4_0,
	},
};
#else
const struct kern_ops KX_OPS = {
	.name = KX_NAME,
	.stream_read = stream_read,
	.quantize_q8_0 = quantize_q8_0,
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
#endif
