/*
 * kernels.h: the compute kernels whose speed decides tokens/s: fp16
 * conversion, the GGUF block formats F32/F16/Q8_0/Q4_0 (quantize and
 * dequantize), and matrix-vector / matrix-matrix products per weight type.
 *
 * DESIGN
 * A weight matrix W has `rows` rows of k elements, each row stored as
 * ggml_row_size(type, k) bytes (the GGUF layout, read in place from the
 * mapping). The activations x (f32) are first converted once into the
 * "vec-dot type" of W (Q8_0 for Q8_0/Q4_0 weights, F16 for F16, F32 for F32)
 * by kern_prepare(), then each thread computes a range of output rows with
 * kern_matvec()/kern_matmul(): rows are split by the caller (the thread pool
 * claims chunks of rows). Every entry point has a scalar reference version and
 * per-ISA versions (AVX2/FMA, AVX-512 on x86-64; NEON with dotprod on arm64)
 * chosen once at run time by kern_init() from the CPU's features;
 * kern_force_isa() pins one for tests and benchmarks.
 *
 * A prepared row (kern_prepare) starts with the plain vec-dot-type row (e.g.
 * the GGUF Q8_0 blocks); what follows, up to kern_prepare_size() bytes, is
 * private to the kernels (scales as f32, sums for Q4_0). Always size and
 * step prepared buffers with kern_prepare_size(); it is a multiple of 64.
 * See docs/runtime-kernels.md.
 */
#ifndef KERNELS_H
#define KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/gguf.h"

#define QK8_0 32
#define QK4_0 32

typedef uint16_t kern_f16; /* IEEE half, raw bits */

/* Block layouts exactly as GGUF/ggml store them (little-endian). */
struct block_q8_0 {
	kern_f16 d;          /* scale */
	int8_t qs[QK8_0];    /* x[i] = d * qs[i] */
};
struct block_q4_0 {
	kern_f16 d;              /* scale */
	uint8_t qs[QK4_0 / 2];   /* x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8) */
};
_Static_assert(sizeof(struct block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(struct block_q4_0) == 18, "q4_0 block is 18 bytes");

enum kern_isa {
	KERN_ISA_SCALAR = 0,
	KERN_ISA_AVX2,
	KERN_ISA_AVX512,
	KERN_ISA_NEON,
	KERN_ISA_COUNT,
};

/* Detect the CPU and select the best ISA (idempotent, thread-safe); the
 * environment variable EDGE_KERN_ISA (scalar, avx2, avx512, neon) pins one
 * for the process when this CPU and build have it. */
void kern_init(void);
enum kern_isa kern_isa(void);
const char *kern_isa_name(enum kern_isa isa);
/* Pin an ISA (tests/bench); -ENOTSUP if this CPU or build lacks it. */
int kern_force_isa(enum kern_isa isa);
/* Whether compute supports weights of type t (F32, F16, Q8_0, Q4_0). */
int kern_type_supported(enum ggml_type t);

float kern_f16_to_f32(kern_f16 h);
kern_f16 kern_f32_to_f16(float f);

/* Row conversion: k elements (a multiple of the block size). */
void kern_quantize_row(enum ggml_type t, const float *x, void *dst, int64_t k);
void kern_dequantize_row(enum ggml_type t, const void *src, float *y, int64_t k);

/* The type x is converted to before a product with weights of type wt,
 * and the bytes that conversion of k elements takes. */
enum ggml_type kern_vec_dot_type(enum ggml_type wt);
size_t kern_prepare_size(enum ggml_type wt, int64_t k);
/* Convert one activation row x[k] for products with wt into xq. */
void kern_prepare(enum ggml_type wt, const float *x, void *xq, int64_t k);

/* y[r] = sum_i W[r][i] * x[i] for r in [r0, r1).
 * W: rows of ggml_row_size(wt, k) bytes, row 0 at w; xq: from kern_prepare;
 * y: indexed by absolute row number. */
void kern_matvec(enum ggml_type wt, const void *w, const void *xq, float *y,
		 int64_t k, int64_t r0, int64_t r1);
/* Y[j][r] = sum_i W[r][i] * X[j][i] for j in [0, n), r in [r0, r1):
 * n prepared activation rows at xq (stride kern_prepare_size(wt, k)),
 * Y row-major with stride ldy floats. Tiled for weight reuse across j. */
void kern_matmul(enum ggml_type wt, const void *w, const void *xq, int64_t n,
		 float *y, int64_t ldy, int64_t k, int64_t r0, int64_t r1);

/* Read the n bytes at p with the widest loads this CPU has and return a
 * value that depends on every byte (so the reads cannot be optimized away):
 * the memory read bandwidth probe of the benchmarks (the roofline that
 * kern_matvec is measured against). */
uint64_t kern_stream_read(const void *p, size_t n);

#endif /* KERNELS_H */
