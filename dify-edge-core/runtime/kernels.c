/*
 * kernels.c: fp16 conversion, GGUF block (de)quantization, activation
 * preparation, the scalar reference products, and the run-time choice of an
 * ISA-specific version.
 *
 * DESIGN
 * The scalar code here is the reference the SIMD files are tested against:
 * it is written for clarity, in the same summation structure ggml uses (an
 * exact int32 sum per 32-element block, scaled by d_w * d_x in float and
 * accumulated in float), so SIMD versions differ from it only in the order
 * of float additions.
 *
 * Quantization of weights (kern_quantize_row) follows ggml's
 * quantize_row_q8_0_ref / quantize_row_q4_0_ref operation for operation
 * (same max search, same d = amax/127 or max/-8, same 1/d multiply, same
 * roundf / (int8_t)(x + 8.5f) rounding), so a file we write reads back in
 * llama.cpp exactly as it would had llama.cpp quantized it. fp32->fp16 is
 * round-to-nearest-even (what F16C's vcvtps2ph and ggml's portable
 * conversion both do); NaN becomes a quiet NaN with the sign kept.
 *
 * Dispatch: kern_init() (once, pthread_once) reads the CPU features and
 * stores a pointer to the best struct kern_ops; kern_force_isa() swaps that
 * pointer (atomically; meant for tests and benchmarks, not for use while
 * other threads compute). A NULL entry in an ISA's table means the scalar
 * version.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#include <asm/hwcap.h>
#endif

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/kernels_impl.h"

/* ---------------------------------------------------------------- fp16 */

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

float kern_f16_to_f32(kern_f16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;

	if (exp == 0x1f) /* inf, NaN (payload kept, stays NaN) */
		return f32_from_bits(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24, exact in f32 */
		float v = (float)man * 0x1p-24f;
		return sign ? -v : v;
	}
	return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

kern_f16 kern_f32_to_f16(float f)
{
	/* Round to nearest even by letting the FPU do it: scaling into the
	 * f16 range and adding a bias that puts the f16 ulp at the last
	 * place of the f32 mantissa (the method of FP16 by Maratyszcza,
	 * also used by ggml). Requires round-to-nearest and no FTZ, the
	 * defaults. */
	const float scale_to_inf = 0x1.0p+112f;
	const float scale_to_zero = 0x1.0p-110f;
	float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
	uint32_t w = f32_bits(f);
	uint32_t shl1_w = w + w;
	uint32_t sign = w & 0x80000000u;
	uint32_t bias = shl1_w & 0xff000000u;

	if (bias < 0x71000000u)
		bias = 0x71000000u;
	base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
	uint32_t bits = f32_bits(base);
	uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
	uint32_t mantissa_bits = bits & 0x00000fffu;
	uint32_t nonsign = exp_bits + mantissa_bits;
	return (kern_f16)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

/* ------------------------------------------------------- type helpers */

static int kt_of(enum ggml_type t)
{
	switch (t) {
	case GGML_TYPE_F32: return KT_F32;
	case GGML_TYPE_F16: return KT_F16;
	case GGML_TYPE_Q8_0: return KT_Q8_0;
	case GGML_TYPE_Q4_0: return KT_Q4_0;
	default: return -1;
	}
}

int kern_type_supported(enum ggml_type t)
{
	return kt_of(t) >= 0;
}

/* Bytes of one row of k elements of compute type kt (k a multiple of the
 * block size). Kept here rather than calling gguf's traits so that the
 * kernels stand alone. */
static size_t row_bytes(int kt, int64_t k)
{
	switch (kt) {
	case KT_F32: return (size_t)k * 4;
	case KT_F16: return (size_t)k * 2;
	case KT_Q8_0: return (size_t)(k / QK8_0) * sizeof(struct block_q8_0);
	case KT_Q4_0: return (size_t)(k / QK4_0) * sizeof(struct block_q4_0);
	default: return 0;
	}
}

/* -------------------------------------------------- quantize (ggml ref) */

/* roundf(v) (halves away from zero) for |v| < 2^31, exactly, without the
 * libm call: v - trunc(v) is exact in float, so comparing it with +-0.5
 * decides the rounding as roundf does (adding 0.5 first would not: 0.49999997
 * + 0.5 rounds up to 1). The quantizers only see |v| <= ~127. */
static inline int32_t round_half_away(float v)
{
	int32_t t = (int32_t)v;
	float diff = v - (float)t;
	return t + (diff >= 0.5f) - (diff <= -0.5f);
}

static void quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k)
{
	int64_t nb = k / QK8_0;

	for (int64_t i = 0; i < nb; i++) {
		float amax = 0.0f;
		for (int j = 0; j < QK8_0; j++) {
			float v = fabsf(x[i * QK8_0 + j]);
			amax = amax > v ? amax : v;
		}
		const float d = amax / ((1 << 7) - 1);
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = kern_f32_to_f16(d);
		for (int j = 0; j < QK8_0; j++) {
			const float x0 = x[i * QK8_0 + j] * id;
			y[i].qs[j] = (int8_t)round_half_away(x0); /* = roundf */
		}
	}
}

static void quantize_q4_0(const float *x, struct block_q4_0 *y, int64_t k)
{
	const int qk = QK4_0;
	int64_t nb = k / qk;

	for (int64_t i = 0; i < nb; i++) {
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < qk; j++) {
			const float v = x[i * qk + j];
			if (amax < fabsf(v)) {
				amax = fabsf(v);
				max = v;
			}
		}
		const float d = max / -8;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = kern_f32_to_f16(d);
		for (int j = 0; j < qk / 2; j++) {
			const float x0 = x[i * qk + j] * id;
			const float x1 = x[i * qk + qk / 2 + j] * id;
			/* (int8_t)(x + 8.5f) truncates toward zero, like ggml */
			int8_t t0 = (int8_t)(x0 + 8.5f), t1 = (int8_t)(x1 + 8.5f);
			const uint8_t xi0 = (uint8_t)(t0 < 15 ? t0 : 15);
			const uint8_t xi1 = (uint8_t)(t1 < 15 ? t1 : 15);
			y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
		}
	}
}

static const struct kern_ops *ops_now(void);

/* The current ISA's Q8_0 quantizer (identical results), else the scalar. */
static void quantize_q8_0_any(const float *x, struct block_q8_0 *y, int64_t k)
{
	void (*fn)(const float *, struct block_q8_0 *, int64_t) = NULL;

	for (const struct kern_ops *o = ops_now(); o && !(fn = o->quantize_q8_0); o = o->fallback)
		;
	(fn ? fn : quantize_q8_0)(x, y, k);
}

void kern_quantize_row(enum ggml_type t, const float *x, void *dst, int64_t k)
{
	switch (kt_of(t)) {
	case KT_F32:
		memcpy(dst, x, (size_t)k * sizeof(float));
		break;
	case KT_F16: {
		kern_f16 *h = dst;
		for (int64_t i = 0; i < k; i++)
			h[i] = kern_f32_to_f16(x[i]);
		break;
	}
	case KT_Q8_0:
		quantize_q8_0_any(x, dst, k);
		break;
	case KT_Q4_0:
		quantize_q4_0(x, dst, k);
		break;
	default:
		break;
	}
}

void kern_dequantize_row(enum ggml_type t, const void *src, float *y, int64_t k)
{
	switch (kt_of(t)) {
	case KT_F32:
		memcpy(y, src, (size_t)k * sizeof(float));
		break;
	case KT_F16: {
		const kern_f16 *h = src;
		for (int64_t i = 0; i < k; i++)
			y[i] = kern_f16_to_f32(h[i]);
		break;
	}
	case KT_Q8_0: {
		const struct block_q8_0 *b = src;
		for (int64_t i = 0; i < k / QK8_0; i++) {
			const float d = kern_f16_to_f32(b[i].d);
			for (int j = 0; j < QK8_0; j++)
				y[i * QK8_0 + j] = b[i].qs[j] * d;
		}
		break;
	}
	case KT_Q4_0: {
		const struct block_q4_0 *b = src;
		for (int64_t i = 0; i < k / QK4_0; i++) {
			const float d = kern_f16_to_f32(b[i].d);
			for (int j = 0; j < QK4_0 / 2; j++) {
				y[i * QK4_0 + j] = ((b[i].qs[j] & 15) - 8) * d;
				y[i * QK4_0 + j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
			}
		}
		break;
	}
	default:
		break;
	}
}

/* ------------------------------------------------------------- prepare */

enum ggml_type kern_vec_dot_type(enum ggml_type wt)
{
	switch (kt_of(wt)) {
	case KT_F16: return GGML_TYPE_F16;
	case KT_Q8_0:
	case KT_Q4_0: return GGML_TYPE_Q8_0;
	default: return GGML_TYPE_F32;
	}
}

size_t kern_prepare_size(enum ggml_type wt, int64_t k)
{
	size_t n;
	int64_t nb = k / QK8_0;

	switch (kt_of(wt)) {
	case KT_F16: n = (size_t)k * 2; break;
	case KT_Q8_0: n = kern_prep_d_off(nb) + (size_t)nb * sizeof(float); break;
	case KT_Q4_0: n = kern_prep_bias_off(nb) + (size_t)nb * 8 * sizeof(int32_t); break;
	default: n = (size_t)k * 4; break;
	}
	return (n + 63) & ~(size_t)63;
}

void kern_prepare(enum ggml_type wt, const float *x, void *xq, int64_t k)
{
	int kt = kt_of(wt);

	if (kt == KT_F16) {
		kern_quantize_row(GGML_TYPE_F16, x, xq, k);
		return;
	}
	if (kt != KT_Q8_0 && kt != KT_Q4_0) {
		memcpy(xq, x, (size_t)k * sizeof(float));
		return;
	}
	int64_t nb = k / QK8_0;
	struct block_q8_0 *q = xq;
	float *d = (float *)((char *)xq + kern_prep_d_off(nb));

	quantize_q8_0_any(x, q, k);
	for (int64_t b = 0; b < nb; b++)
		d[b] = kern_f16_to_f32(q[b].d);
	if (kt == KT_Q4_0) {
		int32_t *bias = (int32_t *)((char *)xq + kern_prep_bias_off(nb));
		for (int64_t b = 0; b < nb; b++)
			for (int i = 0; i < 8; i++)
				bias[b * 8 + i] = 8 * (q[b].qs[4 * i] + q[b].qs[4 * i + 1] +
						       q[b].qs[4 * i + 2] + q[b].qs[4 * i + 3]);
	}
}

/* ------------------------------------------------- scalar dot products */

static float dot_f32(const float *w, const float *x, int64_t k)
{
	float s = 0.0f;
	for (int64_t i = 0; i < k; i++)
		s += w[i] * x[i];
	return s;
}

static float dot_f16(const kern_f16 *w, const kern_f16 *x, int64_t k)
{
	float s = 0.0f;
	for (int64_t i = 0; i < k; i++)
		s += kern_f16_to_f32(w[i]) * kern_f16_to_f32(x[i]);
	return s;
}

static float dot_q8_0(const struct block_q8_0 *w, const struct block_q8_0 *x,
		      const float *dx, int64_t nb)
{
	float s = 0.0f;
	for (int64_t b = 0; b < nb; b++) {
		int32_t sum = 0;
		for (int j = 0; j < QK8_0; j++)
			sum += w[b].qs[j] * x[b].qs[j];
		s += (float)sum * (kern_f16_to_f32(w[b].d) * dx[b]);
	}
	return s;
}

static float dot_q4_0(const struct block_q4_0 *w, const struct block_q8_0 *x,
		      const float *dx, int64_t nb)
{
	float s = 0.0f;
	for (int64_t b = 0; b < nb; b++) {
		int32_t sum = 0;
		for (int j = 0; j < QK4_0 / 2; j++) {
			sum += ((w[b].qs[j] & 15) - 8) * x[b].qs[j];
			sum += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
		}
		s += (float)sum * (kern_f16_to_f32(w[b].d) * dx[b]);
	}
	return s;
}

static float dot_row(int kt, const void *wrow, const void *xq, int64_t k)
{
	int64_t nb = k / QK8_0;
	const float *dx = (const float *)((const char *)xq + kern_prep_d_off(nb));

	switch (kt) {
	case KT_F32: return dot_f32(wrow, xq, k);
	case KT_F16: return dot_f16(wrow, xq, k);
	case KT_Q8_0: return dot_q8_0(wrow, xq, dx, nb);
	case KT_Q4_0: return dot_q4_0(wrow, xq, dx, nb);
	default: return 0.0f;
	}
}

#define SCALAR_MATVEC(name, kt)                                                   \
	static void name(const void *w, size_t rb, const void *xq, float *y,     \
			 int64_t k, int64_t r0, int64_t r1)                       \
	{                                                                         \
		for (int64_t r = r0; r < r1; r++)                                 \
			y[r] = dot_row(kt, (const char *)w + (size_t)r * rb, xq, k); \
	}
#define SCALAR_MATMUL(name, kt)                                                  \
	static void name(const void *w, size_t rb, const void *xq, size_t xs,     \
			 int64_t n, float *y, int64_t ldy, int64_t k, int64_t r0,  \
			 int64_t r1)                                              \
	{                                                                         \
		for (int64_t j = 0; j < n; j++)                                   \
			for (int64_t r = r0; r < r1; r++)                         \
				y[j * ldy + r] = dot_row(kt, (const char *)w + (size_t)r * rb, \
							 (const char *)xq + (size_t)j * xs, k); \
	}

SCALAR_MATVEC(matvec_f32_scalar, KT_F32)
SCALAR_MATVEC(matvec_f16_scalar, KT_F16)
SCALAR_MATVEC(matvec_q8_0_scalar, KT_Q8_0)
SCALAR_MATVEC(matvec_q4_0_scalar, KT_Q4_0)
SCALAR_MATMUL(matmul_f32_scalar, KT_F32)
SCALAR_MATMUL(matmul_f16_scalar, KT_F16)
SCALAR_MATMUL(matmul_q8_0_scalar, KT_Q8_0)
SCALAR_MATMUL(matmul_q4_0_scalar, KT_Q4_0)

/* The value every version returns: the xor of the 8-byte words of the
 * leading whole 128-byte blocks, xor the sum of the remaining bytes. */
static uint64_t stream_read_scalar(const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t whole = n / 128 * 128, i;
	uint64_t a = 0, t, tail = 0;

	for (i = 0; i < whole; i += 8) {
		memcpy(&t, c + i, 8);
		a ^= t;
	}
	for (; i < n; i++)
		tail += c[i];
	return a ^ tail;
}

const struct kern_ops kern_ops_scalar = {
	.name = "scalar",
	.stream_read = stream_read_scalar,
	.matvec = {
		[KT_F32] = matvec_f32_scalar,
		[KT_F16] = matvec_f16_scalar,
		[KT_Q8_0] = matvec_q8_0_scalar,
		[KT_Q4_0] = matvec_q4_0_scalar,
	},
	.matmul = {
		[KT_F32] = matmul_f32_scalar,
		[KT_F16] = matmul_f16_scalar,
		[KT_Q8_0] = matmul_q8_0_scalar,
		[KT_Q4_0] = matmul_q4_0_scalar,
	},
};

/* ------------------------------------------------------------ dispatch */

static const char *const isa_names[KERN_ISA_COUNT] = {
	[KERN_ISA_SCALAR] = "scalar",
	[KERN_ISA_AVX2] = "avx2",
	[KERN_ISA_AVX512] = "avx512",
	[KERN_ISA_NEON] = "neon",
};

/* The table of each ISA in this build (NULL: not built for this arch). */
static const struct kern_ops *isa_table(enum kern_isa isa)
{
	switch (isa) {
	case KERN_ISA_SCALAR: return &kern_ops_scalar;
#if defined(__x86_64__)
	case KERN_ISA_AVX2: return &kern_ops_avx2;
	case KERN_ISA_AVX512: return &kern_ops_avx512;
#endif
#if defined(__aarch64__)
#if defined(__linux__)
	case KERN_ISA_NEON:
	{
		/* kernels_neon.c is built with +dotprod+fp16: all three */
		unsigned long need = HWCAP_ASIMDDP | HWCAP_FPHP | HWCAP_ASIMDHP;
		return (getauxval(AT_HWCAP) & need) == need ? &kern_ops_neon : &kern_ops_neon_plain;
	}
#else
	case KERN_ISA_NEON: return &kern_ops_neon_plain;
#endif
#endif
	default: return NULL;
	}
}

#if defined(__x86_64__)
/* F16C by CPUID (clang 14's __builtin_cpu_supports does not know "f16c"). */
static int has_f16c(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	return (c & bit_F16C) != 0;
}
#endif

/* Whether this CPU can run isa's code. */
static int cpu_has(enum kern_isa isa)
{
	switch (isa) {
	case KERN_ISA_SCALAR:
		return 1;
#if defined(__x86_64__)
	case KERN_ISA_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       has_f16c();
	case KERN_ISA_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
		       __builtin_cpu_supports("fma") && has_f16c();
#endif
#if defined(__aarch64__)
	case KERN_ISA_NEON:
		/* ASIMD is part of every ARMv8-A core; isa_table() picks the
		 * SDOT build (kernels_neon.c, armv8.2-a+dotprod+fp16: also
		 * needs the half-precision features) or the plain one. */
		return 1;
#endif
	default:
		return 0;
	}
}

static _Atomic(const struct kern_ops *) cur_ops;
static _Atomic int cur_isa;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
	static const enum kern_isa pref[] = {
		KERN_ISA_AVX512, KERN_ISA_AVX2, KERN_ISA_NEON, KERN_ISA_SCALAR,
	};
	/* EDGE_KERN_ISA=scalar|avx2|avx512|neon pins the choice for a whole
	 * process (benchmarks, A/B comparisons); an unknown or unavailable
	 * name is ignored and the best ISA is used. */
	const char *want = getenv("EDGE_KERN_ISA");
	for (int i = 0; want && i < KERN_ISA_COUNT; i++) {
		const struct kern_ops *ops = isa_table((enum kern_isa)i);
		if (!strcmp(want, isa_names[i]) && ops && cpu_has((enum kern_isa)i)) {
			atomic_store(&cur_isa, i);
			atomic_store(&cur_ops, ops);
			return;
		}
	}
	for (size_t i = 0; i < sizeof(pref) / sizeof(pref[0]); i++) {
		const struct kern_ops *ops = isa_table(pref[i]);
		if (ops && cpu_has(pref[i])) {
			atomic_store(&cur_isa, (int)pref[i]);
			atomic_store(&cur_ops, ops);
			return;
		}
	}
}

void kern_init(void)
{
	pthread_once(&init_once, do_init);
}

enum kern_isa kern_isa(void)
{
	kern_init();
	return (enum kern_isa)atomic_load(&cur_isa);
}

const char *kern_isa_name(enum kern_isa isa)
{
	if ((unsigned)isa >= KERN_ISA_COUNT)
		return "unknown";
	return isa_names[isa];
}

int kern_force_isa(enum kern_isa isa)
{
	const struct kern_ops *ops;

	kern_init();
	if ((unsigned)isa >= KERN_ISA_COUNT)
		return -EINVAL;
	ops = isa_table(isa);
	if (!ops || !cpu_has(isa))
		return -ENOTSUP;
	atomic_store(&cur_isa, (int)isa);
	atomic_store(&cur_ops, ops);
	return 0;
}

static const struct kern_ops *ops_now(void)
{
	const struct kern_ops *ops = atomic_load_explicit(&cur_ops, memory_order_acquire);
	if (__builtin_expect(ops == NULL, 0)) {
		kern_init();
		ops = atomic_load(&cur_ops);
	}
	return ops;
}

void kern_matvec(enum ggml_type wt, const void *w, const void *xq, float *y,
		 int64_t k, int64_t r0, int64_t r1)
{
	int kt = kt_of(wt);
	kern_matvec_fn fn = NULL;

	if (kt < 0 || r1 <= r0)
		return;
	for (const struct kern_ops *o = ops_now(); o && !(fn = o->matvec[kt]); o = o->fallback)
		;
	if (!fn)
		fn = kern_ops_scalar.matvec[kt];
	fn(w, row_bytes(kt, k), xq, y, k, r0, r1);
}

void kern_matmul(enum ggml_type wt, const void *w, const void *xq, int64_t n,
		 float *y, int64_t ldy, int64_t k, int64_t r0, int64_t r1)
{
	int kt = kt_of(wt);
	kern_matmul_fn fn = NULL;

	if (kt < 0 || r1 <= r0 || n <= 0)
		return;
	for (const struct kern_ops *o = ops_now(); o && !(fn = o->matmul[kt]); o = o->fallback)
		;
	if (!fn)
		fn = kern_ops_scalar.matmul[kt];
	fn(w, row_bytes(kt, k), xq, kern_prepare_size(wt, k), n, y, ldy, k, r0, r1);
}

uint64_t kern_stream_read(const void *p, size_t n)
{
	uint64_t (*fn)(const void *, size_t) = NULL;

	for (const struct kern_ops *o = ops_now(); o && !(fn = o->stream_read); o = o->fallback)
		;
	return (fn ? fn : stream_read_scalar)(p, n);
}
