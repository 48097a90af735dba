/*
 * test_kernels.c: the compute kernels against independent references.
 *
 * - fp16: all 65536 half values decoded and compared with a ldexp-based
 *   decoder; every non-NaN value round-trips; NaN stays NaN with its sign;
 *   rounding of f32 to f16 is to nearest even (checked at every midpoint,
 *   and against the CPU's F16C instruction on random bit patterns).
 * - quantization matches ggml's reference rules (known blocks) and its
 *   round-trip error stays within the bound the format allows.
 * - products: for every ISA this CPU runs, matvec and matmul of every weight
 *   type agree with the scalar reference. Two tables: "exact" data (integer
 *   values and power-of-two scales, so every sum is exact in float and the
 *   results must be bit-identical whatever the summation order) catches any
 *   indexing mistake; random data checks the realistic case within a
 *   rigorous rounding bound (see tol_for()).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dify-edge-core/runtime/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static float frand(void) /* uniform in [-1, 1) */
{
	return (float)((double)rnd() / 2147483648.0 - 1.0);
}

static float grand(void) /* roughly normal */
{
	return (frand() + frand() + frand()) * 0.7f;
}

static double ref_f16(uint16_t h) /* independent decoder */
{
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;

	if (e == 31)
		return m ? NAN : (s ? -INFINITY : INFINITY);
	if (e == 0)
		v = ldexp(m, -24);
	else
		v = ldexp(1024 + m, e - 25);
	return s ? -v : v;
}

/* ---------------------------------------------------------------- fp16 */

static void test_f16_exhaustive(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = kern_f16_to_f32((kern_f16)h);
		double r = ref_f16((uint16_t)h);
		int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);

		if (is_nan) {
			if (!isnan(f))
				fail_msg("f16 %#x: NaN decoded as %g", h, f);
			kern_f16 back = kern_f32_to_f16(f);
			if (((back >> 10) & 31) != 31 || !(back & 1023) || (back >> 15) != (h >> 15))
				fail_msg("f16 NaN %#x re-encoded as %#x", h, back);
			continue;
		}
		if ((double)f != r || !signbit(f) != !signbit(r))
			fail_msg("f16 %#x: got %.10g want %.10g", h, f, r);
		if (kern_f32_to_f16(f) != h)
			fail_msg("f16 %#x does not round-trip (%#x)", h, kern_f32_to_f16(f));
	}
}

static void test_f16_rounding(void **state)
{
	(void)state;
	/* midpoints between neighbours go to the even one; just above/below
	 * go to the nearer one */
	for (uint32_t h = 0; h < 0x7bff; h++) {
		double a = ref_f16((uint16_t)h), b = ref_f16((uint16_t)(h + 1));
		float mid = (float)((a + b) / 2); /* exact: f16 has 11 bits */
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
		assert_int_equal(kern_f32_to_f16(mid), even);
		assert_int_equal(kern_f32_to_f16(-mid), even | 0x8000);
		assert_int_equal(kern_f32_to_f16(nextafterf(mid, 0)), h);
		assert_int_equal(kern_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
	}
	/* overflow: above the midpoint to 2^16 is infinity */
	assert_int_equal(kern_f32_to_f16(65520.0f), 0x7c00);
	assert_int_equal(kern_f32_to_f16(65519.99f), 0x7bff);
	assert_int_equal(kern_f32_to_f16(-1e30f), 0xfc00);
	assert_int_equal(kern_f32_to_f16(INFINITY), 0x7c00);
	assert_int_equal(kern_f32_to_f16(1e-9f), 0x0000);
	assert_int_equal(kern_f32_to_f16(-0.0f), 0x8000);
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
	return (uint16_t)_cvtss_sh(f, 0);
}

static void test_f16_vs_f16c(void **state)
{
	unsigned a, b, c, d;
	(void)state;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C)) {
		print_message("skip: this CPU has no F16C\n");
		skip();
	}
	for (int i = 0; i < 2000000; i++) {
		uint32_t bits = rnd();
		float f;
		memcpy(&f, &bits, 4);
		uint16_t hw = hw_f32_to_f16(f), sw = kern_f32_to_f16(f);
		if (isnan(f)) {
			if ((sw & 0x7c00) != 0x7c00 || !(sw & 0x3ff) || (sw & 0x8000) != (hw & 0x8000))
				fail_msg("NaN %#x: sw %#x hw %#x", bits, sw, hw);
		} else if (hw != sw) {
			fail_msg("%#x (%g): sw %#x hw %#x", bits, f, sw, hw);
		}
	}
}
#else
static void test_f16_vs_f16c(void **state)
{
	(void)state;
	print_message("skip: not x86-64 (no F16C to compare with)\n");
	skip();
}
#endif

/* -------------------------------------------------------- quantization */

static void test_quantize_known_blocks(void **state)
{
	float x[32];
	struct block_q8_0 q8;
	struct block_q4_0 q4;
	(void)state;

	/* x = j - 16: amax 16. Q8_0 (ggml): d = 16/127, q = roundf(x * 127/16)
	 * with id = 1/d computed in float. */
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16);
	kern_quantize_row(GGML_TYPE_Q8_0, x, &q8, 32);
	assert_int_equal(q8.d, kern_f32_to_f16(16.0f / 127));
	{
		const float id = 1.0f / (16.0f / 127);
		for (int j = 0; j < 32; j++)
			assert_int_equal(q8.qs[j], (int)roundf(x[j] * id));
	}
	assert_int_equal(q8.qs[0], -127);
	assert_int_equal(q8.qs[16], 0);
	assert_int_equal(q8.qs[31], 119); /* 15*127/16 = 119.06 */

	/* Q4_0 (ggml): max = the signed value of largest magnitude (first
	 * one wins: -16), d = max / -8 = 2, q = min(15, (int8)(x/2 + 8.5)):
	 * x = -16 -> 0, x = -15 -> 1, x = 0 -> 8, x = 14 -> 15, x = 15 ->
	 * 16 clamped to 15. Low nibbles hold elements 0..15, high 16..31. */
	kern_quantize_row(GGML_TYPE_Q4_0, x, &q4, 32);
	assert_int_equal(q4.d, kern_f32_to_f16(2.0f));
	static const uint8_t want_lo[16] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8};
	static const uint8_t want_hi[16] = {8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 15};
	for (int j = 0; j < 16; j++) {
		assert_int_equal(q4.qs[j] & 15, want_lo[j]);
		assert_int_equal(q4.qs[j] >> 4, want_hi[j]);
	}
	/* positive max: x = 16 - j: max = +16, d = -2 */
	for (int j = 0; j < 32; j++)
		x[j] = (float)(16 - j);
	kern_quantize_row(GGML_TYPE_Q4_0, x, &q4, 32);
	assert_int_equal(q4.d, kern_f32_to_f16(-2.0f));
	assert_int_equal(q4.qs[0] & 15, 0);

	/* all zero: d = 0, q = 0 (Q8_0) and 8 (Q4_0); ggml's Q4_0 scale is
	 * 0.0f / -8 = -0.0f, stored as 0x8000 */
	memset(x, 0, sizeof(x));
	kern_quantize_row(GGML_TYPE_Q8_0, x, &q8, 32);
	kern_quantize_row(GGML_TYPE_Q4_0, x, &q4, 32);
	assert_int_equal(q8.d, 0);
	assert_int_equal(q4.d, 0x8000);
	for (int j = 0; j < 32; j++)
		assert_int_equal(q8.qs[j], 0);
	for (int j = 0; j < 16; j++)
		assert_int_equal(q4.qs[j], 0x88);
}

static void test_quantize_roundtrip(void **state)
{
	enum { K = 4096 };
	static float x[K], y[K];
	static unsigned char buf[K * 4];
	static const struct {
		enum ggml_type t;
		const char *name;
	} types[] = {
		{GGML_TYPE_F32, "f32"}, {GGML_TYPE_F16, "f16"},
		{GGML_TYPE_Q8_0, "q8_0"}, {GGML_TYPE_Q4_0, "q4_0"},
	};
	static const float scales[] = {1.0f, 1e-3f, 100.0f};
	(void)state;

	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
		for (size_t si = 0; si < sizeof(scales) / sizeof(scales[0]); si++) {
			for (int i = 0; i < K; i++)
				x[i] = grand() * scales[si];
			kern_quantize_row(types[ti].t, x, buf, K);
			kern_dequantize_row(types[ti].t, buf, y, K);
			for (int b = 0; b < K / 32; b++) {
				float amax = 0;
				for (int j = 0; j < 32; j++)
					amax = fmaxf(amax, fabsf(x[b * 32 + j]));
				for (int j = 0; j < 32; j++) {
					int i = b * 32 + j;
					double err = fabs((double)x[i] - y[i]), bound;
					/* error of a scale d stored as f16: half an ulp,
					 * 2^-11 relative, or 2^-25 absolute when d is
					 * an f16 subnormal (below 2^-14) */
					double d8 = amax / 127.0, d4 = amax / 8.0;
					double e8 = fmax(d8 * 0x1p-11, 0x1p-25), e4 = fmax(d4 * 0x1p-11, 0x1p-25);
					switch (types[ti].t) {
					case GGML_TYPE_F32:
						bound = 0;
						break;
					case GGML_TYPE_F16:
						/* half an f16 ulp: 2^-11 relative (normal range) */
						bound = fabs(x[i]) * 0x1p-11 + 0x1p-25;
						break;
					case GGML_TYPE_Q8_0:
						/* d = amax/127; rounding to the grid costs d/2;
						 * storing d as f16 (rel. error 2^-11) moves
						 * the |q| <= 127 grid points by 127*e8 */
						bound = (d8 * 0.5 + 127 * e8) * (1 + 1e-5);
						break;
					default:
						/* d = amax/8; d/2 for most values, but the
						 * value opposite to the max (x/d = +8)
						 * clamps to 7: error up to d; plus the f16
						 * scale's 8*e4 */
						bound = (d4 + 8 * e4) * (1 + 1e-5);
						break;
					}
					if (err > bound)
						fail_msg("%s scale %g: x[%d] = %g -> %g (err %g > %g)",
							 types[ti].name, scales[si], i, x[i], y[i], err, bound);
				}
			}
		}
}

static void test_prepare_layout(void **state)
{
	enum { K = 256 };
	float x[K];
	static unsigned char xq[4096] __attribute__((aligned(64)));
	struct block_q8_0 q8[K / 32];
	(void)state;

	for (int i = 0; i < K; i++)
		x[i] = grand();
	assert_int_equal(kern_vec_dot_type(GGML_TYPE_Q4_0), GGML_TYPE_Q8_0);
	assert_int_equal(kern_vec_dot_type(GGML_TYPE_Q8_0), GGML_TYPE_Q8_0);
	assert_int_equal(kern_vec_dot_type(GGML_TYPE_F16), GGML_TYPE_F16);
	assert_int_equal(kern_vec_dot_type(GGML_TYPE_F32), GGML_TYPE_F32);
	/* the first part of a prepared row is the plain vec-dot-type row */
	kern_quantize_row(GGML_TYPE_Q8_0, x, q8, K);
	kern_prepare(GGML_TYPE_Q4_0, x, xq, K);
	assert_memory_equal(xq, q8, sizeof(q8));
	assert_true(kern_prepare_size(GGML_TYPE_Q4_0, K) % 64 == 0);
	assert_true(kern_prepare_size(GGML_TYPE_Q4_0, K) >= sizeof(q8));
	assert_true(kern_prepare_size(GGML_TYPE_F32, K) >= K * 4);
	assert_true(kern_type_supported(GGML_TYPE_Q4_0));
	assert_false(kern_type_supported(GGML_TYPE_Q4_K));
}

/* ------------------------------------------------------------ products */

struct isa_list {
	enum kern_isa isa[KERN_ISA_COUNT];
	int n;
};

static struct isa_list available_isas(void)
{
	struct isa_list l = {.n = 0};
	enum kern_isa best = kern_isa();

	for (int i = 0; i < KERN_ISA_COUNT; i++)
		if (kern_force_isa((enum kern_isa)i) == 0)
			l.isa[l.n++] = (enum kern_isa)i;
	kern_force_isa(best);
	return l;
}

static const struct {
	enum ggml_type t;
	const char *name;
} wtypes[] = {
	{GGML_TYPE_F32, "f32"}, {GGML_TYPE_F16, "f16"},
	{GGML_TYPE_Q8_0, "q8_0"}, {GGML_TYPE_Q4_0, "q4_0"},
};

static const struct {
	int64_t rows, k, n;     /* n activation rows for matmul */
	int64_t r0, r1;         /* row range computed */
} shapes[] = {
	{1, 32, 1, 0, 1},
	{5, 64, 3, 0, 5},
	{17, 96, 5, 3, 14},
	{64, 896, 7, 0, 64},
	{33, 4864, 4, 1, 33},
	{130, 256, 70, 0, 130},  /* more than one matmul column block */
};

static size_t row_size(enum ggml_type t, int64_t k)
{
	switch (t) {
	case GGML_TYPE_F32: return (size_t)k * 4;
	case GGML_TYPE_F16: return (size_t)k * 2;
	case GGML_TYPE_Q8_0: return (size_t)k / 32 * 34;
	default: return (size_t)k / 32 * 18;
	}
}

/* Weights with integer values and power-of-two scales: every product and
 * every partial sum is an integer times a power of two below 2^24, so exact
 * in float. Quantized blocks get d = 1 and small |q| <= 8; activations are
 * integers in [-127, 127] with one +-127 per block, so their Q8_0 scale is
 * exactly 1 and the quantization is exact. */
static void make_exact(enum ggml_type t, void *w, int64_t rows, int64_t k, float *x,
		       int64_t n)
{
	for (int64_t r = 0; r < rows; r++) {
		unsigned char *row = (unsigned char *)w + (size_t)r * row_size(t, k);
		for (int64_t b = 0; b < k / 32; b++) {
			if (t == GGML_TYPE_Q8_0) {
				struct block_q8_0 *q = (struct block_q8_0 *)row + b;
				q->d = kern_f32_to_f16(1.0f);
				for (int j = 0; j < 32; j++)
					q->qs[j] = (int8_t)((int)(rnd() % 17) - 8);
			} else if (t == GGML_TYPE_Q4_0) {
				struct block_q4_0 *q = (struct block_q4_0 *)row + b;
				q->d = kern_f32_to_f16(1.0f);
				for (int j = 0; j < 16; j++)
					q->qs[j] = (uint8_t)rnd();
			}
		}
		for (int64_t i = 0; i < k; i++) {
			float v = (float)((int)(rnd() % 17) - 8);
			if (t == GGML_TYPE_F32)
				((float *)row)[i] = v;
			else if (t == GGML_TYPE_F16)
				((kern_f16 *)row)[i] = kern_f32_to_f16(v);
		}
	}
	for (int64_t i = 0; i < n * k; i++) {
		x[i] = (float)((int)(rnd() % 255) - 127);
		if (i % 32 == 5)
			x[i] = (rnd() & 1) ? 127.0f : -127.0f;
	}
}

static void make_random(enum ggml_type t, void *w, int64_t rows, int64_t k, float *x,
			int64_t n)
{
	float *tmp = malloc((size_t)k * sizeof(float));
	assert_non_null(tmp);
	for (int64_t r = 0; r < rows; r++) {
		for (int64_t i = 0; i < k; i++)
			tmp[i] = grand() * 0.05f;
		kern_quantize_row(t, tmp, (unsigned char *)w + (size_t)r * row_size(t, k), k);
	}
	for (int64_t i = 0; i < n * k; i++)
		x[i] = grand() * 3.0f;
	free(tmp);
}

/* Sum of |w_i * x_i| over a row, in double, from the dequantized weights and
 * the prepared (quantized) activations: the scale of the rounding error. */
static double abs_dot(enum ggml_type t, const void *wrow, const float *x, int64_t k)
{
	float *wd = malloc((size_t)k * 4), *xd = malloc((size_t)k * 4);
	void *xq = malloc(kern_prepare_size(t, k));
	double s = 0;

	assert_non_null(wd);
	assert_non_null(xd);
	assert_non_null(xq);
	kern_dequantize_row(t, wrow, wd, k);
	kern_prepare(t, x, xq, k);
	kern_dequantize_row(kern_vec_dot_type(t), xq, xd, k);
	for (int64_t i = 0; i < k; i++)
		s += fabs((double)wd[i] * xd[i]);
	free(wd);
	free(xd);
	free(xq);
	return s;
}

/* Rigorous bound for |SIMD - scalar|. Both compute the same terms (exact
 * int32 block sums times the same f32 scale product, or f32 products of
 * exactly representable f16/f32 inputs) and differ only in how the terms are
 * added: m terms summed in any order in float are each within
 * (m-1)*eps*sum|terms| of the exact sum (Higham, recursive summation), so
 * the two differ by at most 2*(m-1)*eps*sum|terms|, plus one rounding of each
 * term product (eps each) for the f32/f16 FMA vs mul+add difference.
 * m = k/32 block terms for quantized types, k for f16/f32. */
static double tol_for(enum ggml_type t, int64_t k, double absdot)
{
	double m = (t == GGML_TYPE_Q8_0 || t == GGML_TYPE_Q4_0) ? (double)(k / 32) : (double)k;
	return (2 * m + 2) * FLT_EPSILON * absdot + 1e-30;
}

static void check_products(int exact)
{
	struct isa_list isas = available_isas();
	enum kern_isa best = kern_isa();

	for (size_t ti = 0; ti < sizeof(wtypes) / sizeof(wtypes[0]); ti++)
		for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
			enum ggml_type t = wtypes[ti].t;
			int64_t rows = shapes[si].rows, k = shapes[si].k, n = shapes[si].n;
			int64_t r0 = shapes[si].r0, r1 = shapes[si].r1;
			size_t rb = row_size(t, k), ps = kern_prepare_size(t, k);
			unsigned char *w = malloc(rb * (size_t)rows);
			float *x = malloc((size_t)(n * k) * sizeof(float));
			unsigned char *xq = aligned_alloc(64, ps * (size_t)n);
			float *yref = malloc((size_t)(n * rows) * sizeof(float));
			float *y = malloc((size_t)(n * rows) * sizeof(float));
			float *yv = malloc((size_t)rows * sizeof(float));
			double *tol = malloc((size_t)(n * rows) * sizeof(double));

			assert_true(w && x && xq && yref && y && yv && tol);
			if (exact)
				make_exact(t, w, rows, k, x, n);
			else
				make_random(t, w, rows, k, x, n);
			for (int64_t j = 0; j < n; j++)
				kern_prepare(t, x + j * k, xq + (size_t)j * ps, k);
			for (int64_t j = 0; j < n; j++)
				for (int64_t r = 0; r < rows; r++)
					tol[j * rows + r] = exact ? 0.0 :
						tol_for(t, k, abs_dot(t, w + (size_t)r * rb, x + j * k, k));

			assert_int_equal(kern_force_isa(KERN_ISA_SCALAR), 0);
			for (int64_t i = 0; i < n * rows; i++)
				yref[i] = NAN;
			kern_matmul(t, w, xq, n, yref, rows, k, r0, r1);

			for (int ii = 0; ii < isas.n; ii++) {
				enum kern_isa isa = isas.isa[ii];
				assert_int_equal(kern_force_isa(isa), 0);
				/* matmul, and matvec for each activation row */
				for (int64_t i = 0; i < n * rows; i++)
					y[i] = -7.0f;
				kern_matmul(t, w, xq, n, y, rows, k, r0, r1);
				for (int64_t j = 0; j < n; j++) {
					for (int64_t r = 0; r < rows; r++)
						yv[r] = -7.0f;
					kern_matvec(t, w, xq + (size_t)j * ps, yv, k, r0, r1);
					for (int64_t r = 0; r < rows; r++) {
						float want = yref[j * rows + r];
						if (r < r0 || r >= r1) {
							if (y[j * rows + r] != -7.0f || yv[r] != -7.0f)
								fail_msg("%s %s: row %lld outside [%lld,%lld) written",
									 kern_isa_name(isa), wtypes[ti].name,
									 (long long)r, (long long)r0, (long long)r1);
							continue;
						}
						double tl = tol[j * rows + r];
						if (!(fabs((double)y[j * rows + r] - want) <= tl) ||
						    !(fabs((double)yv[r] - want) <= tl))
							fail_msg("%s %s %s rows=%lld k=%lld n=%lld: "
								 "[%lld][%lld] matmul %.9g matvec %.9g scalar %.9g tol %.3g",
								 exact ? "exact" : "random", kern_isa_name(isa),
								 wtypes[ti].name, (long long)rows, (long long)k,
								 (long long)n, (long long)j, (long long)r,
								 y[j * rows + r], yv[r], want, tl);
					}
				}
			}
			if (exact) {
				/* and the scalar reference itself against integer math */
				for (int64_t j = 0; j < n; j++)
					for (int64_t r = r0; r < r1; r++) {
						float *wd = malloc((size_t)k * 4);
						assert_non_null(wd);
						kern_dequantize_row(t, w + (size_t)r * rb, wd, k);
						double s = 0;
						for (int64_t i = 0; i < k; i++)
							s += (double)wd[i] * x[j * k + i];
						free(wd);
						if ((double)yref[j * rows + r] != s)
							fail_msg("scalar %s k=%lld: %.9g, exact %.9g", wtypes[ti].name,
								 (long long)k, yref[j * rows + r], s);
					}
			}
			free(w); free(x); free(xq); free(yref); free(y); free(yv); free(tol);
		}
	kern_force_isa(best);
}

static void test_products_exact(void **state)
{
	(void)state;
	check_products(1);
}

static void test_products_random(void **state)
{
	(void)state;
	check_products(0);
}

/* Q8_0 quantization (kern_quantize_row and kern_prepare use the ISA's
 * version) gives the same bytes on every ISA as the scalar reference, on
 * random blocks of many magnitudes and on blocks made of rounding ties:
 * one element +-127 makes d = 1 exactly, so the others are rounded as they
 * are, and roundf's halves-away-from-zero must hold (+-0.5, +-1.5, ...,
 * and 0.49999997, which a naive "add 0.5 and truncate" gets wrong). */
static void test_quantize_same_on_every_isa(void **state)
{
	enum { K = 32 * 64 };
	static float x[K];
	static struct block_q8_0 want[K / 32], got[K / 32];
	static const float ties[] = {
		0.5f, 1.5f, 2.5f, 63.5f, 126.5f, 0.49999997f, 0.50000006f,
		1.4999999f, 2.5000002f, 0.0f, 1e-30f, 126.49999f,
	};
	struct isa_list l = available_isas();
	enum kern_isa best = kern_isa();
	(void)state;

	for (int rep = 0; rep < 40; rep++) {
		for (int i = 0; i < K; i++) {
			if (rep % 2) {
				float t = ties[rnd() % (sizeof(ties) / sizeof(ties[0]))];
				x[i] = (rnd() & 1) ? -t : t;
				if (i % 32 == 7)
					x[i] = (rnd() & 1) ? 127.0f : -127.0f;
			} else {
				/* magnitudes from 1e-8 to 1e8 per block */
				float scale = powf(10.0f, (float)((int)((i / 32 + rep) % 17) - 8));
				x[i] = grand() * scale;
			}
		}
		assert_int_equal(kern_force_isa(KERN_ISA_SCALAR), 0);
		kern_quantize_row(GGML_TYPE_Q8_0, x, want, K);
		if (rep % 2)
			for (int i = 0; i < K; i++)
				if (i % 32 != 7 && want[i / 32].qs[i % 32] != (int8_t)roundf(x[i]))
					fail_msg("scalar: x = %.9g -> %d, roundf %g", x[i],
						 want[i / 32].qs[i % 32], roundf(x[i]));
		for (int ii = 0; ii < l.n; ii++) {
			assert_int_equal(kern_force_isa(l.isa[ii]), 0);
			kern_quantize_row(GGML_TYPE_Q8_0, x, got, K);
			for (int b = 0; b < K / 32; b++)
				if (memcmp(&want[b], &got[b], sizeof(got[b])))
					fail_msg("%s: rep %d block %d differs from scalar (d %#x vs %#x)",
						 kern_isa_name(l.isa[ii]), rep, b, got[b].d, want[b].d);
		}
	}
	kern_force_isa(best);
}

/* kern_stream_read: every ISA gives the scalar value (xor of the 8-byte
 * lanes of the 32-byte blocks plus the sum of the tail bytes is the same
 * however wide the loads are), and it depends on every byte. */
static void test_stream_read(void **state)
{
	static const size_t sizes[] = {0, 1, 31, 32, 127, 128, 1000, 4096 + 77};
	struct isa_list l = available_isas();
	enum kern_isa best = kern_isa();
	unsigned char *buf = malloc(8192);
	(void)state;

	assert_non_null(buf);
	for (int i = 0; i < 8192; i++)
		buf[i] = (unsigned char)rnd();
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];
		assert_int_equal(kern_force_isa(KERN_ISA_SCALAR), 0);
		uint64_t want = kern_stream_read(buf + 3, n);
		for (int ii = 0; ii < l.n; ii++) {
			assert_int_equal(kern_force_isa(l.isa[ii]), 0);
			uint64_t got = kern_stream_read(buf + 3, n);
			if (got != want)
				fail_msg("%s: stream_read(%zu) %#llx, scalar %#llx",
					 kern_isa_name(l.isa[ii]), n, (unsigned long long)got,
					 (unsigned long long)want);
			if (n) {
				buf[3 + n - 1] ^= 1;
				assert_true(kern_stream_read(buf + 3, n) != got);
				buf[3 + n - 1] ^= 1;
			}
		}
	}
	kern_force_isa(best);
	free(buf);
}

static void test_dispatch(void **state)
{
	struct isa_list l = available_isas();
	(void)state;

	print_message("best ISA: %s; available:", kern_isa_name(kern_isa()));
	for (int i = 0; i < l.n; i++)
		print_message(" %s", kern_isa_name(l.isa[i]));
	print_message("\n");
	assert_true(l.n >= 1);
	assert_int_equal(l.isa[0], KERN_ISA_SCALAR);
	assert_string_equal(kern_isa_name(KERN_ISA_AVX2), "avx2");
	assert_string_equal(kern_isa_name((enum kern_isa)99), "unknown");
	assert_int_equal(kern_force_isa((enum kern_isa)99), -EINVAL);
#if defined(__x86_64__)
	assert_int_equal(kern_force_isa(KERN_ISA_NEON), -ENOTSUP);
	if (__builtin_cpu_supports("avx2") && !getenv("EDGE_KERN_ISA"))
		assert_true(kern_isa() != KERN_ISA_SCALAR);
#elif defined(__aarch64__)
	assert_int_equal(kern_force_isa(KERN_ISA_AVX2), -ENOTSUP);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_f16_exhaustive),
		cmocka_unit_test(test_f16_rounding),
		cmocka_unit_test(test_f16_vs_f16c),
		cmocka_unit_test(test_quantize_known_blocks),
		cmocka_unit_test(test_quantize_roundtrip),
		cmocka_unit_test(test_prepare_layout),
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_stream_read),
		cmocka_unit_test(test_quantize_same_on_every_isa),
		cmocka_unit_test(test_products_exact),
		cmocka_unit_test(test_products_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
