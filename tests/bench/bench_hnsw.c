/*
 * bench_hnsw.c: the knowledge base's HNSW index on random vectors: build
 * time, recall@k against exact brute force, and query latency (p50/p99)
 * for several ef_search values.
 *
 * usage: bench-hnsw [--n N] [--dim D] [--queries Q] [--k K] [--M M]
 *                   [--ef-construction EF] [--ef LIST] [--seed S]
 * defaults: n 100000, dim 384, queries 200, k 10, M 16, ef_construction 128,
 * ef "64,128,256". Vectors are uniform in [-1, 1]^dim (the hardest case for
 * graph indexes: no cluster structure). Prints a Markdown table.
 */
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	struct hnsw_params p;
	hnsw_params_default(&p);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: bench-hnsw [--n N] [--dim D] [--queries Q] [--k K] [--M M] [--ef-construction EF] [--ef LIST] [--seed S]\n");
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
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		for (int j = 0; j < dim; j++)
			v[j] = frand();
		if (hnsw_add(h, i, v)) {
			fprintf(stderr, "bench-hnsw: insert %ld failed\n", i);
			return 1;
		}
	}
	double build = now_s() - t0;
	for (long i = 0; i < q * dim; i++)
		qs[i] = frand();
	t0 = now_s();
	for (long t = 0; t < q; t++)
		hnsw_brute_force(h, qs + t * dim, k, exact + t * k);
	double brute = (now_s() - t0) / (double)q;

	printf("HNSW: n=%ld dim=%d M=%d ef_construction=%d k=%d queries=%ld, uniform random vectors\n\n", n, dim, p.M,
	       p.ef_construction, k, q);
	printf("build: %.1f s (%.0f inserts/s, one thread), index memory %.1f MiB; brute force: %.2f ms/query\n\n", build,
	       (double)n / build, (double)hnsw_mem_bytes(h) / 1048576.0, brute * 1e3);
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
	return 0;
}
