/* kernels_avx2.c: placeholder table (every entry falls back to scalar). */
#include "dify-edge-core/runtime/kernels_impl.h"

const struct kern_ops kern_ops_avx2 = {
	.name = "avx2",
};
