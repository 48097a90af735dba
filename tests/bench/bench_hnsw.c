/*
 * bench_hnsw.c: the knowledge base's HNSW index on random vectors: build
 * time, recall@k against exact brute force, and query latency (p50/p99)
 * for several ef_search values.
 *
 * usage: bench-hnsw [--n N] [--dim D] [--queries Q] [--k K] [--M M]
 *                   [--ef-construction EF] [--ef LIST] [--seed S]
 *                   [--dist gauss|uniform|uniform01]
 *                   [--clusters C [--spread X]] [--intrinsic D2]
 * defaults: n 100000, dim 384, queries 200, k 10, M 16, ef_construction 128,
 * ef "64,128,256", dist gauss. Vectors are, by --dist: gauss (the default):
 * independent N(0, 1) coordinates, i.e. after the index's normalization
 * uniformly random directions on the unit sphere -- what "random
 * embeddings" usually means, and the hardest case for graph indexes: no
 * structure, every point nearly equidistant (cosines ~ 0 +- 0.05 at 384-d);
 * uniform: uniform in [-1, 1]^dim (behaves like gauss); uniform01: uniform
 * in [0, 1)^dim (one orthant: all cosines ~ 0.75, the ranking decided by
 * the same isotropic fluctuations, so about as hard); or with
 * --clusters C: a random centre (uniform) plus uniform noise of half-width X
 * (default 0.5) per coordinate, queries drawn the same way -- data with
 * structure; or with --intrinsic D2: points of a random D2-dimensional
 * subspace (A z, z uniform in [-1, 1]^D2, A a random dim x D2 matrix) plus
 * 1% noise -- low intrinsic dimension, as real text embeddings have.
 * Prints a Markdown table.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dify-edge-core/server/hnsw.h"

static uint64_t rng = 88172645463325252ULL;
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

enum dist_kind { DIST_GAUSS, DIST_UNIFORM, DIST_UNIFORM01 };
static const char *const dist_names[] = {
	[DIST_GAUSS] = "gauss",
	[DIST_UNIFORM] = "uniform",
	[DIST_UNIFORM01] = "uniform01",
};
static const char *const dist_desc[] = {
	[DIST_GAUSS] = "Gaussian random vectors (N(0,1) coordinates, normalized: random directions)",
	[DIST_UNIFORM] = "uniform random vectors in [-1, 1]^dim",
	[DIST_UNIFORM01] = "uniform random vectors in [0, 1)^dim (one orthant, cosines ~0.75)",
};
static enum dist_kind dist = DIST_GAUSS;

/* A standard normal deviate (Box-Muller on frand's uniform (-1, 1)). */
static float grand(void)
{
	double u1 = (frand() + 1.0) * 0.5, u2 = (frand() + 1.0) * 0.5;
	if (u1 < 1e-300)
		u1 = 1e-300;
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static float coord(void)
{
	switch (dist) {
	case DIST_GAUSS:
		return grand();
	case DIST_UNIFORM01:
		return (frand() + 1.0f) * 0.5f;
	case DIST_UNIFORM:
		break;
	}
	return frand();
}

/* One data point into out[dim] (see the header for the three kinds). */
static void gen_point(float *out, int dim, const float *centres, long clusters, double spread,
		      const float *basis, float *z, int intrinsic)
{
	if (intrinsic > 0) {
		for (int j = 0; j < intrinsic; j++)
			z[j] = frand();
		for (int i = 0; i < dim; i++) {
			float acc = 0.01f * frand();
			for (int j = 0; j < intrinsic; j++)
				acc += basis[(size_t)i * (size_t)intrinsic + (size_t)j] * z[j];
			out[i] = acc;
		}
		return;
	}
	const float *c = centres ? centres + (size_t)(rng % (uint64_t)clusters) * (size_t)dim : NULL;
	for (int j = 0; j < dim; j++)
		out[j] = c ? c[j] + (float)spread * frand() : coord();
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long n = 100000, q = 200;
	int dim = 384, k = 10;
	char efs[128] = "64,128,256";
	long clusters = 0;
	int intrinsic = 0;
	float *basis = NULL, *z = NULL;
	double spread = 0.5;
	float *centres = NULL;
	struct hnsw_params p;
	hnsw_params_default(&p);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: bench-hnsw [--n N] [--dim D] [--queries Q] [--k K] [--M M] [--ef-construction EF] [--ef LIST] [--seed S] [--dist gauss|uniform|uniform01] [--clusters C [--spread X]] [--intrinsic D2]\n");
			return 0;
		}
		if (!v) {
			fprintf(stderr, "bench-hnsw: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--n")) n = atol(v);
		else if (!strcmp(a, "--dim")) dim = atoi(v);
		else if (!strcmp(a, "--queries")) q = atol(v);
		else if (!strcmp(a, "--k")) k = atoi(v);
		else if (!strcmp(a, "--M")) p.M = atoi(v);
		else if (!strcmp(a, "--ef-construction")) p.ef_construction = atoi(v);
		else if (!strcmp(a, "--ef")) snprintf(efs, sizeof(efs), "%s", v);
		else if (!strcmp(a, "--seed")) rng = strtoull(v, NULL, 10) | 1;
		else if (!strcmp(a, "--dist")) {
			size_t d;
			for (d = 0; d < sizeof(dist_names) / sizeof(dist_names[0]); d++)
				if (!strcmp(v, dist_names[d]))
					break;
			if (d == sizeof(dist_names) / sizeof(dist_names[0])) {
				fprintf(stderr, "bench-hnsw: --dist %s: not gauss, uniform or uniform01\n", v);
				return 2;
			}
			dist = (enum dist_kind)d;
		}
		else if (!strcmp(a, "--clusters")) clusters = atol(v);
		else if (!strcmp(a, "--spread")) spread = atof(v);
		else if (!strcmp(a, "--intrinsic")) intrinsic = atoi(v);
		else {
			fprintf(stderr, "bench-hnsw: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (n < 1 || q < 1 || dim < 1 || k < 1) {
		fprintf(stderr, "bench-hnsw: bad sizes\n");
		return 2;
	}
	struct hnsw *h = hnsw_new(dim, &p);
	float *v = malloc(sizeof(float) * (size_t)dim);
	float *qs = malloc(sizeof(float) * (size_t)dim * (size_t)q);
	struct hnsw_hit *exact = malloc(sizeof(*exact) * (size_t)k * (size_t)q), *got = malloc(sizeof(*got) * (size_t)k);
	double *lat = malloc(sizeof(double) * (size_t)q);
	if (!h || !v || !qs || !exact || !got || !lat) {
		fprintf(stderr, "bench-hnsw: out of memory\n");
		return 1;
	}
	if (clusters > 0) {
		centres = malloc(sizeof(float) * (size_t)dim * (size_t)clusters);
		if (!centres)
			return 1;
		for (long i = 0; i < clusters * dim; i++)
			centres[i] = frand();
	}
	if (intrinsic > 0) {
		basis = malloc(sizeof(float) * (size_t)dim * (size_t)intrinsic);
		z = malloc(sizeof(float) * (size_t)intrinsic);
		if (!basis || !z)
			return 1;
		for (long i = 0; i < (long)dim * intrinsic; i++)
			basis[i] = frand();
	}
	double t0 = now_s(), c0 = cpu_s();
	for (long i = 0; i < n; i++) {
		gen_point(v, dim, centres, clusters, spread, basis, z, intrinsic);
		if (hnsw_add(h, i, v)) {
			fprintf(stderr, "bench-hnsw: insert %ld failed\n", i);
			return 1;
		}
	}
	double build = now_s() - t0, build_cpu = cpu_s() - c0;
	for (long t = 0; t < q; t++)
		gen_point(qs + t * dim, dim, centres, clusters, spread, basis, z, intrinsic);
	t0 = now_s();
	for (long t = 0; t < q; t++)
		hnsw_brute_force(h, qs + t * dim, k, exact + t * k);
	double brute = (now_s() - t0) / (double)q;

	if (intrinsic)
		printf("HNSW: n=%ld dim=%d M=%d ef_construction=%d k=%d queries=%ld, %d-dimensional subspace + 1%% noise\n\n", n,
		       dim, p.M, p.ef_construction, k, q, intrinsic);
	else if (clusters)
		printf("HNSW: n=%ld dim=%d M=%d ef_construction=%d k=%d queries=%ld, %ld clusters (centre + uniform noise +-%.2f)\n\n",
		       n, dim, p.M, p.ef_construction, k, q, clusters, spread);
	else
		printf("HNSW: n=%ld dim=%d M=%d ef_construction=%d k=%d queries=%ld, %s\n\n", n, dim, p.M,
		       p.ef_construction, k, q, dist_desc[dist]);
	printf("build: %.1f s wall, %.1f s CPU (%.0f inserts/s of CPU, one thread), index memory %.1f MiB; brute force: "
	       "%.2f ms/query\n\n",
	       build, build_cpu, (double)n / build_cpu, (double)hnsw_mem_bytes(h) / 1048576.0, brute * 1e3);
	printf("| ef_search | recall@%d | p50 ms | p99 ms | queries/s |\n|---:|---:|---:|---:|---:|\n", k);
	char *save = NULL, *tok;
	for (tok = strtok_r(efs, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int ef = atoi(tok);
		long found = 0;
		double tot = 0;
		for (long t = 0; t < q; t++) {
			double a = now_s();
			int m = hnsw_search(h, qs + t * dim, k, ef, got);
			lat[t] = now_s() - a;
			tot += lat[t];
			for (int i = 0; i < k; i++)
				for (int j = 0; j < m; j++)
					if (got[j].label == exact[t * k + i].label) {
						found++;
						break;
					}
		}
		qsort(lat, (size_t)q, sizeof(double), cmp_d);
		printf("| %d | %.3f | %.3f | %.3f | %.0f |\n", ef, (double)found / (double)(q * k), lat[q / 2] * 1e3,
		       lat[(q * 99) / 100 < q ? (q * 99) / 100 : q - 1] * 1e3, (double)q / tot);
	}
	hnsw_free(h);
	free(v);
	free(qs);
	free(exact);
	free(got);
	free(lat);
	free(centres);
	free(basis);
	free(z);
	return 0;
}
