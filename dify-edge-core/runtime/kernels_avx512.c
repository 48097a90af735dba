/*
 * kernels_avx512.c: the x86-64 products built for AVX2 + FMA + F16C plus AVX512-VL/VNNI
 * (256-bit vpdpbusd; -mavx512f -mavx512bw -mavx512vl -mavx512vnni), chosen at run time only
 * when the CPU has those features (kernels.c). The code is kernels_x86.h,
 * shared with kernels_avx2.c; see its DESIGN note.
 */
#define KX_OPS kern_ops_avx512
#define KX_NAME "avx512"
#define KX_VNNI 1
#include "dify-edge-core/runtime/kernels_x86.h"
