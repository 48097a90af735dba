/*
 * kernels_neon.c: the arm64 products built for ARMv8.2-A with the dot product
 * (-march=armv8.2-a+dotprod+fp16: SDOT for the int8 blocks), chosen at run
 * time when HWCAP_ASIMDDP is set (kernels.c). The code is kernels_neon.h,
 * shared with kernels_arm64.c (plain NEON for cores without SDOT).
 */
#define KN_OPS kern_ops_neon
#define KN_NAME "neon"
#include "dify-edge-core/runtime/kernels_neon.h"
