/*
 * hnsw_avx2.c: the HNSW index's dot product for x86-64 CPUs with AVX2 and
 * FMA (this file is built with -mavx2 -mfma; hnsw.c calls it only after
 * __builtin_cpu_supports says both are there, else it uses its portable
 * loop).
 *
 * Distances dominate HNSW's cost: an insert at ef_construction 128 computes
 * a few thousand 384-float dot products, a search several hundred. Four
 * independent 8-float FMA accumulators (32 floats per step) hide the FMA
 * latency; a tail of fewer than 32 floats runs 8 at a time, then scalar.
 * On other architectures this file compiles to nothing but a typedef.
 */
#include "dify-edge-core/server/hnsw.h"

#if defined(__x86_64__)
#include <immintrin.h>

float hnsw_dot_avx2(const float *a, const float *b, int dim)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 32 <= dim; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= dim; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	s0 = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	float s = _mm_cvtss_f32(h);
	for (; i < dim; i++)
		s += a[i] * b[i];
	return s;
}
#else
typedef int hnsw_avx2_unused;
#endif
