/*
 * kernels_impl.h: private to the kernels module (kernels.c and the per-ISA
 * files kernels_avx2.c, kernels_avx512.c, kernels_neon.c). Nothing outside
 * dify-edge-core/runtime/kernels*.c includes it.
 *
 * DESIGN
 * Each ISA file exports one const table (struct kern_ops) of function
 * pointers indexed by the compute type (enum kern_t). A NULL entry means "this
 * ISA has no special version": the dispatcher in kernels.c follows the
 * table's `fallback` (AVX512 -> AVX2) and finally uses the scalar reference,
 * so an ISA table holds only what it does better.
 *
 * Prepared activations (what kern_prepare writes, kern_prepare_size bytes,
 * always a multiple of 64 so consecutive rows keep the caller's alignment):
 *   F32 weights:  float x[k]
 *   F16 weights:  kern_f16 x[k]
 *   Q8_0 weights: struct block_q8_0 q[nb]      (nb = k/32, the GGUF Q8_0 row)
 *                 float d[nb]                  at kern_prep_d_off(nb): q[b].d as f32
 *   Q4_0 weights: the same, then
 *                 int32_t bias[nb][8]          at kern_prep_bias_off(nb):
 *                 bias[b][i] = 8 * (q[b].qs[4i] + ... + q[b].qs[4i+3])
 *                 so that sum_j (w_j - 8) * x_j = sum_j w_j * x_j - sum_i bias[i]
 *                 with unsigned nibbles w_j (what x86 maddubs/dpbusd want).
 * Only the first part (the Q8_0 row) is the GGUF format; the rest is private.
 */
#ifndef KERNELS_IMPL_H
#define KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/kernels.h"

enum kern_t {
	KT_F32 = 0,
	KT_F16,
	KT_Q8_0,
	KT_Q4_0,
	KT_COUNT,
};

/* Rows [r0, r1) of W (row stride rb bytes, row 0 at w) times one prepared
 * activation row xq; y indexed by absolute row. */
typedef void (*kern_matvec_fn)(const void *w, size_t rb, const void *xq, float *y,
			       int64_t k, int64_t r0, int64_t r1);
/* The same for n prepared rows (stride xs bytes) into Y (stride ldy floats). */
typedef void (*kern_matmul_fn)(const void *w, size_t rb, const void *xq, size_t xs,
			       int64_t n, float *y, int64_t ldy, int64_t k,
			       int64_t r0, int64_t r1);

struct kern_ops {
	const char *name;
	kern_matvec_fn matvec[KT_COUNT];
	kern_matmul_fn matmul[KT_COUNT];
	uint64_t (*stream_read)(const void *p, size_t n);
	/* Q8_0 quantization, bit-identical to the scalar (ggml) reference. */
	void (*quantize_q8_0)(const float *x, struct block_q8_0 *y, int64_t k);
	/* Where NULL entries go first (another ISA's table); then scalar. */
	const struct kern_ops *fallback;
};

static inline size_t kern_prep_d_off(int64_t nb)
{
	return ((size_t)nb * sizeof(struct block_q8_0) + 31) & ~(size_t)31;
}

static inline size_t kern_prep_bias_off(int64_t nb)
{
	return (kern_prep_d_off(nb) + (size_t)nb * sizeof(float) + 31) & ~(size_t)31;
}

extern const struct kern_ops kern_ops_scalar;
#if defined(__x86_64__)
extern const struct kern_ops kern_ops_avx2;
extern const struct kern_ops kern_ops_avx512;
#endif
#if defined(__aarch64__)
extern const struct kern_ops kern_ops_neon;        /* with SDOT (kernels_neon.c) */
extern const struct kern_ops kern_ops_neon_plain;  /* without (kernels_arm64.c) */
#endif

#endif /* KERNELS_IMPL_H */
