/*
 * bench_kernels.c: how close the kernels come to this machine's limits.
 *
 *   1. memory read bandwidth: kern_stream_read over a buffer much larger
 *      than the last-level cache, with 1 and 2 threads (the roofline for
 *      generation, which streams every weight once per token);
 *   2. matvec: GB/s of weights streamed for F32/F16/Q8_0/Q4_0 at the
 *      Qwen2-0.5B shapes, per ISA, with 1 and 2 pool threads, and on the
 *      main thread timed by its CPU time (robust on a shared machine, where
 *      wall-clock numbers include waiting for a CPU). Each shape is
 *      replicated until the set is WSET_BYTES (> 4x LLC), like the 24 layers
 *      of a model, so the weights come from DRAM and not from cache;
 *   3. matmul: GFLOP/s of a 128-row prompt batch per type and ISA;
 *   4. thread pool: cost of an empty run and of a barrier.
 *
 * Usage: bench-kernels [--quick] [--threads N] [--mem MiB]
 * Every measurement repeats until it has run MIN_TIME seconds and reports
 * the best pass, so the whole program stays within about a minute.
 * Exit status: 0, or 2 for bad usage, 1 when memory cannot be had.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/tpool.h"

#define CHUNK_ROWS 32

static double min_time = 0.25; /* seconds per measurement */
static size_t wset_bytes = 256u << 20;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: unlike wall time it does not count the
 * time this thread waits for a CPU, so single-thread numbers taken with it
 * stay meaningful on a machine shared with other work (memory contention
 * still shows). */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *big_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, n, MADV_HUGEPAGE);
	return p;
}

/* ------------------------------------------------------- 1. bandwidth */

struct bw_job {
	const char *buf;
	size_t n;
	_Atomic uint64_t sink;
};

static void bw_fn(void *arg, int ith, int nth)
{
	struct bw_job *j = arg;
	size_t per = (j->n / (size_t)nth) & ~(size_t)4095;
	size_t off = per * (size_t)ith;
	size_t len = ith == nth - 1 ? j->n - off : per;
	atomic_fetch_xor(&j->sink, kern_stream_read(j->buf + off, len));
}

static double bench_bandwidth(struct tpool *pool, const char *buf, size_t n)
{
	struct bw_job j = {.buf = buf, .n = n};
	double best = 1e30, t0 = now_s();
	int passes = 0;

	while (passes < 2 || now_s() - t0 < min_time) {
		double a = now_s();
		tpool_run(pool, bw_fn, &j);
		double d = now_s() - a;
		if (d < best)
			best = d;
		passes++;
	}
	return (double)n / best / 1e9;
}

/* ---------------------------------------------------------- 2. matvec */

struct mv_job {
	struct tpool *pool;
	enum ggml_type t;
	const char *w;       /* one matrix */
	const void *xq;
	float *y;
	int64_t k, rows, n;  /* n: activation rows (1 = matvec) */
};

static void mv_fn(void *arg, int ith, int nth)
{
	struct mv_job *j = arg;
	int64_t c;

	(void)ith; (void)nth;
	while ((c = tpool_chunk_next(j->pool)) * CHUNK_ROWS < j->rows) {
		int64_t r0 = c * CHUNK_ROWS, r1 = r0 + CHUNK_ROWS < j->rows ? r0 + CHUNK_ROWS : j->rows;
		if (j->n == 1)
			kern_matvec(j->t, j->w, j->xq, j->y, j->k, r0, r1);
		else
			kern_matmul(j->t, j->w, j->xq, j->n, j->y, j->rows, j->k, r0, r1);
	}
}

static size_t row_size(enum ggml_type t, int64_t k)
{
	switch (t) {
	case GGML_TYPE_F32: return (size_t)k * 4;
	case GGML_TYPE_F16: return (size_t)k * 2;
	case GGML_TYPE_Q8_0: return (size_t)k / 32 * 34;
	default: return (size_t)k / 32 * 18;
	}
}

/* Fill `copies` matrices of rows x k of type t: random rows quantized once
 * and repeated (content does not change the speed; scales are sane). */
static void fill_weights(enum ggml_type t, char *w, int64_t rows, int64_t k, int copies)
{
	enum { NR = 16 };
	size_t rb = row_size(t, k);
	float *tmp = malloc((size_t)k * sizeof(float));
	char *src = malloc(rb * NR);
	unsigned s = 1;

	for (int r = 0; r < NR; r++) {
		for (int64_t i = 0; i < k; i++)
			tmp[i] = (float)((rand_r(&s) % 2001) - 1000) * 1e-4f;
		kern_quantize_row(t, tmp, src + rb * (size_t)r, k);
	}
	for (int64_t r = 0; r < rows * copies; r++)
		memcpy(w + rb * (size_t)r, src + rb * (size_t)(r % NR), rb);
	free(tmp);
	free(src);
}

struct shape {
	const char *name;
	int64_t k, rows;
};

static const struct shape shapes[] = {
	{"ffn_up 896->4864", 896, 4864},
	{"ffn_down 4864->896", 4864, 896},
	{"output 896->151936", 896, 151936},
};

static const struct {
	enum ggml_type t;
	const char *name;
} types[] = {
	{GGML_TYPE_Q8_0, "q8_0"}, {GGML_TYPE_Q4_0, "q4_0"},
	{GGML_TYPE_F16, "f16"}, {GGML_TYPE_F32, "f32"},
};

/* Seconds for one pass of job over `copies` matrices (best of passes). */
static double time_passes(struct tpool *pool, struct mv_job *j, int copies, size_t mat_bytes,
			  double budget)
{
	double best = 1e30, t0 = now_s();
	int passes = 0;
	const char *base = j->w;

	while (passes < 2 || now_s() - t0 < budget) {
		double a = now_s();
		for (int c = 0; c < copies; c++) {
			j->w = base + mat_bytes * (size_t)c;
			tpool_run(pool, mv_fn, j);
		}
		double d = now_s() - a;
		if (d < best)
			best = d;
		passes++;
		if (passes >= 50)
			break;
	}
	j->w = base;
	return best;
}

/* ------------------------------------------------------------ 4. pool */

static void empty_fn(void *arg, int ith, int nth)
{
	(void)arg; (void)ith; (void)nth;
}

struct bar_job {
	struct tpool *pool;
	int iters;
};

static void bar_fn(void *arg, int ith, int nth)
{
	struct bar_job *j = arg;
	(void)nth;
	for (int i = 0; i < j->iters; i++)
		tpool_barrier(j->pool, ith);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-kernels [--quick] [--threads N] [--mem MiB]\n"
		   "  --quick      shorter measurements (about 4x faster, noisier)\n"
		   "  --threads N  largest pool size measured (default 2)\n"
		   "  --mem MiB    bandwidth buffer and matvec working set (default 1024 / 256)\n");
}

int main(int argc, char **argv)
{
	int max_threads = 2;
	size_t bw_bytes = 1024u << 20;
	int rc = 0;
	char err[256];
	enum { NB = 128 };       /* activation rows of the matmul batch */
	size_t maxmat = 0;       /* bytes mapped at w */
	char *w = NULL;
	float *x = NULL, *y = NULL;
	void *xq = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			min_time = 0.06;
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			char *e;
			long v = strtol(argv[++i], &e, 10);
			if (*e || v < 1 || v > TPOOL_MAX_THREADS) {
				fprintf(stderr, "bench-kernels: --threads %s: not a number in 1..%d\n",
					argv[i], TPOOL_MAX_THREADS);
				return 2;
			}
			max_threads = (int)v;
		} else if (!strcmp(argv[i], "--mem") && i + 1 < argc) {
			char *e;
			long v = strtol(argv[++i], &e, 10);
			if (*e || v < 64 || v > 65536) {
				fprintf(stderr, "bench-kernels: --mem %s: not a size in 64..65536 MiB\n",
					argv[i]);
				return 2;
			}
			bw_bytes = (size_t)v << 20;
			wset_bytes = bw_bytes / 4;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bench-kernels: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	kern_init();
	enum kern_isa best_isa = kern_isa();
	enum kern_isa isas[KERN_ISA_COUNT];
	int nisa = 0;
	for (int i = 0; i < KERN_ISA_COUNT; i++)
		if (kern_force_isa((enum kern_isa)i) == 0)
			isas[nisa++] = (enum kern_isa)i;
	kern_force_isa(best_isa);

	struct tpool *pool = tpool_new(1, err, sizeof(err));
	if (!pool) {
		fprintf(stderr, "bench-kernels: %s\n", err);
		return 1;
	}
	printf("# bench-kernels: ISA %s (available:", kern_isa_name(best_isa));
	for (int i = 0; i < nisa; i++)
		printf(" %s", kern_isa_name(isas[i]));
	printf("), %ld online CPUs, pool sizes 1..%d\n\n", sysconf(_SC_NPROCESSORS_ONLN), max_threads);

	/* ---- 1. bandwidth ---- */
	double bw[TPOOL_MAX_THREADS + 1] = {0}; /* [0]: 1 thread, CPU time */
	{
		char *buf = big_alloc(bw_bytes);
		if (!buf) {
			fprintf(stderr, "bench-kernels: cannot map %zu MiB: %s\n", bw_bytes >> 20,
				strerror(errno));
			rc = 1;
			goto out;
		}
		memset(buf, 0x5a, bw_bytes);
		printf("## memory read bandwidth (kern_stream_read, %zu MiB buffer, best pass)\n\n",
		       bw_bytes >> 20);
		printf("| threads | GB/s |\n|---:|---:|\n");
		for (int t = 1; t <= max_threads; t++) {
			tpool_resize(pool, t);
			bw[t] = bench_bandwidth(pool, buf, bw_bytes);
			printf("| %d | %.1f |\n", t, bw[t]);
			fflush(stdout);
		}
		{
			double best = 1e30;
			for (int i = 0; i < 3; i++) {
				double a = cpu_s();
				volatile uint64_t v = kern_stream_read(buf, bw_bytes);
				(void)v;
				double d = cpu_s() - a;
				best = d < best ? d : best;
			}
			bw[0] = (double)bw_bytes / best / 1e9;
			printf("| 1, CPU time | %.1f |\n", bw[0]);
		}
		printf("\n");
		munmap(buf, bw_bytes);
	}

	/* ---- 2. matvec ---- */
	maxmat = 0;
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
			size_t b = row_size(types[t].t, shapes[s].k) * (size_t)shapes[s].rows;
			size_t set = b >= wset_bytes ? b : b * ((wset_bytes + b - 1) / b);
			if (set > maxmat)
				maxmat = set;
		}
	w = big_alloc(maxmat);
	x = malloc((size_t)NB * 4864 * sizeof(float));
	xq = aligned_alloc(64, kern_prepare_size(GGML_TYPE_F32, 4864) * NB);
	y = malloc((size_t)4864 * NB * sizeof(float)); /* >= 151936 */
	if (!w || !x || !xq || !y) {
		fprintf(stderr, "bench-kernels: cannot allocate %zu MiB of weights\n", maxmat >> 20);
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < (size_t)NB * 4864; i++)
		x[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;

	printf("## matvec: weights streamed, GB/s (one token; working set >= %zu MiB)\n\n",
	       wset_bytes >> 20);
	printf("| shape | type | ISA | 1 thr CPU-time GB/s | %% of CPU-time BW |");
	for (int t = 1; t <= max_threads; t++)
		printf(" %d thr GB/s | %% of %d-thr read BW |", t, t);
	printf("\n|---|---|---|---:|---:|");
	for (int t = 1; t <= max_threads; t++)
		printf("---:|---:|");
	printf("\n");
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
			enum ggml_type tt = types[ti].t;
			int64_t k = shapes[s].k, rows = shapes[s].rows;
			size_t mb = row_size(tt, k) * (size_t)rows;
			int copies = mb >= wset_bytes ? 1 : (int)((wset_bytes + mb - 1) / mb);
			fill_weights(tt, w, rows, k, copies);
			kern_prepare(tt, x, xq, k);
			for (int ii = 0; ii < nisa; ii++) {
				kern_force_isa(isas[ii]);
				printf("| %s | %s | %s |", shapes[s].name, types[ti].name,
				       kern_isa_name(isas[ii]));
				{
					/* on this thread, no pool, timed by CPU time */
					double best = 1e30, t0 = now_s();
					int passes = 0;
					while (passes < 2 || (isas[ii] != KERN_ISA_SCALAR &&
							      now_s() - t0 < min_time && passes < 50)) {
						double a = cpu_s();
						for (int c = 0; c < copies; c++)
							kern_matvec(tt, w + mb * (size_t)c, xq, y, k, 0, rows);
						double d = cpu_s() - a;
						best = d < best ? d : best;
						passes++;
					}
					double gbs = (double)mb * copies / best / 1e9;
					printf(" %.1f | %.0f%% |", gbs, 100 * gbs / bw[0]);
				}
				for (int t = 1; t <= max_threads; t++) {
					tpool_resize(pool, t);
					struct mv_job j = {.pool = pool, .t = tt, .w = w, .xq = xq,
							   .y = y, .k = k, .rows = rows, .n = 1};
					/* scalar is slow: one pass is enough to know */
					double budget = isas[ii] == KERN_ISA_SCALAR ? 0 : min_time;
					double sec = time_passes(pool, &j, copies, mb, budget);
					double gbs = (double)mb * copies / sec / 1e9;
					printf(" %.1f | %.0f%% |", gbs, 100 * gbs / bw[t]);
					fflush(stdout);
				}
				printf("\n");
			}
			kern_force_isa(best_isa);
		}
	printf("\n");

	/* ---- 3. matmul ---- */
	printf("## matmul: %d-row prompt batch, GFLOP/s (2*rows*k*%d per product; "
	       "scalar skipped: too slow to matter)\n\n", NB, NB);
	printf("| shape | type | ISA | 1 thr CPU-time GFLOP/s |");
	for (int t = 1; t <= max_threads; t++)
		printf(" %d thr GFLOP/s |", t);
	printf("\n|---|---|---|---:|");
	for (int t = 1; t <= max_threads; t++)
		printf("---:|");
	printf("\n");
	for (size_t s = 0; s < 2; s++)
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
			enum ggml_type tt = types[ti].t;
			int64_t k = shapes[s].k, rows = shapes[s].rows;
			size_t mb = row_size(tt, k) * (size_t)rows, ps = kern_prepare_size(tt, k);
			fill_weights(tt, w, rows, k, 1);
			for (int j = 0; j < NB; j++)
				kern_prepare(tt, x + (size_t)j * k, (char *)xq + ps * (size_t)j, k);
			for (int ii = 0; ii < nisa; ii++) {
				if (isas[ii] == KERN_ISA_SCALAR)
					continue;
				kern_force_isa(isas[ii]);
				printf("| %s | %s | %s |", shapes[s].name, types[ti].name,
				       kern_isa_name(isas[ii]));
				{
					double best = 1e30, t0 = now_s();
					int passes = 0;
					while (passes < 2 || (now_s() - t0 < min_time && passes < 50)) {
						double a = cpu_s();
						kern_matmul(tt, w, xq, NB, y, rows, k, 0, rows);
						double d = cpu_s() - a;
						best = d < best ? d : best;
						passes++;
					}
					printf(" %.1f |", 2.0 * rows * k * NB / best / 1e9);
				}
				for (int t = 1; t <= max_threads; t++) {
					tpool_resize(pool, t);
					struct mv_job j = {.pool = pool, .t = tt, .w = w, .xq = xq,
							   .y = y, .k = k, .rows = rows, .n = NB};
					double sec = time_passes(pool, &j, 1, mb, min_time);
					printf(" %.1f |", 2.0 * rows * k * NB / sec / 1e9);
					fflush(stdout);
				}
				printf("\n");
			}
			kern_force_isa(best_isa);
		}
	printf("\n");

	/* ---- 4. pool ---- */
	printf("## thread pool: dispatch and barrier cost\n\n");
	printf("| threads | empty run, us | barrier, us |\n|---:|---:|---:|\n");
	for (int t = 1; t <= max_threads; t++) {
		tpool_resize(pool, t);
		int n = 20000;
		double a = now_s();
		for (int i = 0; i < n; i++)
			tpool_run(pool, empty_fn, NULL);
		double run_us = (now_s() - a) / n * 1e6;
		struct bar_job bj = {.pool = pool, .iters = 20000};
		a = now_s();
		tpool_run(pool, bar_fn, &bj);
		double bar_us = (now_s() - a) / bj.iters * 1e6;
		printf("| %d | %.2f | %.3f |\n", t, run_us, bar_us);
	}
	printf("\n");
out:
	if (w)
		munmap(w, maxmat);
	free(x);
	free(xq);
	free(y);
	tpool_free(pool);
	return rc;
}
