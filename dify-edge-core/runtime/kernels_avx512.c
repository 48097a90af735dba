/*
 * kernels_avx512.c: the x86-64 products built for AVX2 + FMA + F16C plus AVX512-VL/VNNI
 * (256-bit vpdpbusd; -mavx512f -mavx512bw -mavx512vl -mavx512vnni), chosen at run time only
 * when the CPU has those features (kernels.c). The code is kernels_x86.h,
 * shared with kernels_avx2.c; see its DESIGN note.
 *
 * Its table holds only the products VNNI makes faster on Zen 4 (thread CPU
 * time, one core): Q4_0 matvec (19 -> 22 GB/s streamed from DRAM), Q8_0 and
 * Q4_0 matmul (77 -> 92 and 79 -> 107 GFLOP/s). Q8_0 matvec streamed 5-10 %
 * SLOWER than the AVX2 build (e.g. 32 vs 30 GB/s) although faster in cache,
 * and F16/F32 do not use VNNI, so those entries fall back to the AVX2 table.
 */
#define KX_OPS kern_ops_avx512
#define KX_NAME "avx512"
#define KX_VNNI 1
#include "dify-edge-core/runtime/kernels_x86.h"
