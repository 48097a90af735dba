/*
 * kernels_arm64.c: the arm64 products built for the baseline ARMv8-A (plain
 * NEON, no SDOT), for cores such as Cortex-A53/A57/A72 that lack the dot
 * product; kernels.c uses this table for the "neon" ISA when HWCAP_ASIMDDP is
 * absent. The code is kernels_neon.h (see its DESIGN note). The file is named
 * so that the build does not give it the dotprod flags of *_neon.c; on other
 * architectures it compiles to nothing.
 */
#if defined(__aarch64__)
#define KN_OPS kern_ops_neon_plain
#define KN_NAME "neon"
#include "dify-edge-core/runtime/kernels_neon.h"
#else
typedef int kernels_arm64_unused; /* ISO C: a translation unit is not empty */
#endif
