/*
 * kernels_avx2.c: the x86-64 products built for AVX2 + FMA + F16C (-mavx2 -mfma -mf16c), chosen at run time only
 * when the CPU has those features (kernels.c). The code is kernels_x86.h,
 * shared with kernels_avx512.c; see its DESIGN note.
 */
#define KX_OPS kern_ops_avx2
#define KX_NAME "avx2"
#define KX_VNNI 0
#include "dify-edge-core/runtime/kernels_x86.h"
