/*
 * cmd_bench.c: 'dify-edge bench': prompt processing and generation speed,
 * load time and memory of one model, printed like llama-bench.
 *
 * DESIGN
 * The model is loaded once with a pool of the largest thread count asked
 * for; each thread count is then reached with tpool_resize() (the same
 * operation the controller uses). Per thread count and repetition:
 *   ppP: the session is reset and P random prompt tokens are evaluated in
 *        batches of P (one forward pass for P <= 512), timed as a whole;
 *   tgN: the session is reset and N tokens are evaluated one at a time
 *        from position 0 (llama-bench's tg: generation cost without the
 *        prompt), timed as a whole.
 * One untimed warm-up of each runs first. Reported: mean ± sample stddev
 * of tokens/s over the repetitions, and for tg the weight bytes streamed per
 * second (model_weight_bytes() x tokens/s: every generated token reads every
 * layer's matrices and the output matrix once).
 *
 * Load and memory: the time from model_load() to a ready session
 * (model_ctx_new()), VmRSS from /proc/self/status before and after, the
 * resident bytes of the model file's mapping from /proc/self/smaps (the
 * pages touched so far), and the session's own allocation (KV cache + work
 * buffers, all touched at creation). /proc paths are built under
 * $EDGE_SYSROOT (default "/").
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dify-edge-core/app/cmds.h"
#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/sampler.h"
#include "dify-edge-core/runtime/tpool.h"

#define MAX_T 16
#define MIB (1024.0 * 1024.0)

/* getopt_long failed on argv[optind - 1]: an unknown option or a missing value */
static void bad_option(const char *cmd, char **argv)
{
	fprintf(stderr, "dify-edge: %s: unknown option or missing value: '%s' (see --help)\n", cmd,
		optind > 0 ? argv[optind - 1] : "?");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dify-edge bench --model M [-t T[,T...]] [-p 128] [-n 64] [-r 5]\n"
		"\n"
		"Prompt (ppP) and generation (tgN) tokens/s, mean ± stddev over R repetitions,\n"
		"plus load time and memory.\n"
		"  -m, --model M     GGUF model\n"
		"  -t, --threads T   comma-separated thread counts (default: online CPUs)\n"
		"  -p, --n-prompt P  prompt tokens (default 128; 0 skips pp)\n"
		"  -n, --n-gen N     generated tokens (default 64; 0 skips tg)\n"
		"  -r, --reps R      repetitions (default 5)\n"
		"\n"
		"example:\n"
		"  dify-edge bench -m build/bench/qwen2-0.5b-q8_0.gguf -t 1,2 -p 128 -n 64 -r 5\n");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void proc_path(char *buf, size_t cap, const char *rel)
{
	const char *root = getenv("EDGE_SYSROOT");
	if (!root || !*root)
		root = "/";
	snprintf(buf, cap, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", rel);
}

/* VmRSS in bytes, or -1 */
static double vm_rss(void)
{
	char path[PATH_MAX], line[256];
	double kb = -1;
	proc_path(path, sizeof(path), "proc/self/status");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/* Resident bytes of the mappings of file PATH (by its real path), or -1. */
static double mapping_rss(const char *file)
{
	char path[PATH_MAX], real[PATH_MAX], line[PATH_MAX + 128];
	double total = -1, kb;
	bool in = false;
	if (!realpath(file, real))
		return -1;
	proc_path(path, sizeof(path), "proc/self/smaps");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t rl = strlen(real);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		/* a mapping header: "start-end perms offset dev inode   path" */
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
			in = n >= rl && !strcmp(line + n - rl, real) && line[n - rl - 1] == ' ';
			continue;
		}
		if (in && sscanf(line, "Rss: %lf kB", &kb) == 1)
			total = (total < 0 ? 0 : total) + kb * 1024;
	}
	fclose(f);
	return total;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "dify-edge: bench: bad %s '%s' (want %ld..%ld)\n", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static void stats(const double *x, int n, double *mean, double *sd)
{
	double s = 0, ss = 0;
	for (int i = 0; i < n; i++)
		s += x[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		ss += (x[i] - *mean) * (x[i] - *mean);
	*sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "n-prompt", required_argument, NULL, 'p' },
		{ "n-gen", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	long threads[MAX_T], n_thr = 0, n_p = 128, n_g = 64, reps = 5;
	struct tpool *pool = NULL;
	struct model *m = NULL;
	struct model_ctx *c = NULL;
	int32_t *toks = NULL;
	double *tps = NULL;
	char err[512];
	int ch, ret = 2, rc;

	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's */
	while ((ch = getopt_long(argc, argv, "m:t:p:n:r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': path = optarg; break;
		case 't': {
			char *save = NULL, buf[256];
			snprintf(buf, sizeof(buf), "%s", optarg);
			n_thr = 0;
			for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
				if (n_thr == MAX_T) {
					fprintf(stderr, "dify-edge: bench: at most %d thread counts\n", MAX_T);
					goto out;
				}
				if (parse_int("-t", s, 1, TPOOL_MAX_THREADS, &threads[n_thr++]))
					goto out;
			}
			break;
		}
		case 'p': if (parse_int("-p", optarg, 0, 1 << 20, &n_p)) goto out; break;
		case 'n': if (parse_int("-n", optarg, 0, 1 << 20, &n_g)) goto out; break;
		case 'r': if (parse_int("-r", optarg, 1, 1000, &reps)) goto out; break;
		case 'h': usage(stdout); ret = 0; goto out;
		default: bad_option("bench", argv); goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dify-edge: bench: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (!path) {
		fprintf(stderr, "dify-edge: bench: --model is required (see --help)\n");
		goto out;
	}
	if (n_thr == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads[n_thr++] = n > 0 ? (n < TPOOL_MAX_THREADS ? n : TPOOL_MAX_THREADS) : 1;
	}
	long max_t = 0;
	for (long i = 0; i < n_thr; i++)
		if (threads[i] > max_t)
			max_t = threads[i];

	pool = tpool_new((int)max_t, err, sizeof(err));
	if (!pool) {
		fprintf(stderr, "dify-edge: bench: %s\n", err);
		ret = 1;
		goto out;
	}
	double rss0 = vm_rss();
	double t0 = now_s();
	rc = model_load(path, pool, NULL, &m, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		ret = rc == -ENOMEM ? 1 : 2;
		goto out;
	}
	double t1 = now_s();
	double rss_load = vm_rss(), map_load = mapping_rss(path);
	struct model_ctx_opts co = { .n_ctx = (n_p > n_g ? n_p : n_g) + 1, .n_batch = n_p > 512 ? 512 : (n_p ? n_p : 1) };
	rc = model_ctx_new(m, &co, &c, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dify-edge: %s\n", err);
		ret = rc == -ENOMEM ? 1 : 2;
		goto out;
	}
	double t2 = now_s();
	double rss_ctx = vm_rss();

	const struct model_hparams *hp = model_hparams(m);
	const struct gguf_file *g = model_gguf(m);
	double params = 0, tbytes = 0;
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		params += (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
		tbytes += (double)t->nbytes;
	}
	long n_tok = n_p > n_g ? n_p : n_g;
	toks = malloc(sizeof(*toks) * (size_t)(n_tok + 1));
	tps = malloc(sizeof(*tps) * (size_t)reps);
	if (!toks || !tps) {
		fprintf(stderr, "dify-edge: bench: out of memory\n");
		ret = 1;
		goto out;
	}
	struct sampler_rng rng;
	sampler_rng_seed(&rng, 1);
	for (long i = 0; i < n_tok; i++)
		toks[i] = (int32_t)(sampler_rng_next(&rng) % (uint64_t)hp->n_vocab);

	char name[64];
	snprintf(name, sizeof(name), "%s %s", model_arch_name(hp->arch),
		 ggml_type_name(model_weight_type(m)));
	printf("| %-18s | %10s | %9s | %-7s | %7s | %6s | %20s | %11s |\n",
	       "model", "size", "params", "isa", "threads", "test", "t/s", "weights GB/s");
	printf("| %-18s | %10s | %9s | %-7s | %7s | %6s | %20s | %11s |\n",
	       "------------------", "---------:", "--------:", "-------", "------:", "-----:",
	       "-------------------:", "----------:");
	for (long ti = 0; ti < n_thr; ti++) {
		if (tpool_resize(pool, (int)threads[ti]) < 0) {
			fprintf(stderr, "dify-edge: bench: cannot resize the pool to %ld threads\n", threads[ti]);
			ret = 1;
			goto out;
		}
		for (int test = 0; test < 2; test++) {
			long n = test == 0 ? n_p : n_g;
			if (n == 0)
				continue;
			for (long r = -1; r < reps; r++) { /* r = -1: warm-up */
				model_ctx_reset(c);
				double a = now_s();
				if (test == 0) {
					rc = model_eval(c, toks, n, 0, NULL, err, sizeof(err));
				} else {
					rc = 0;
					for (long i = 0; i < n && rc == 0; i++)
						rc = model_eval(c, &toks[i], 1, i, NULL, err, sizeof(err));
				}
				double b = now_s();
				if (rc < 0) {
					fprintf(stderr, "dify-edge: bench: %s\n", err);
					ret = 1;
					goto out;
				}
				if (r >= 0)
					tps[r] = (double)n / (b - a);
			}
			double mean, sd;
			stats(tps, (int)reps, &mean, &sd);
			char tname[16], tval[32], gbs[16] = "";
			snprintf(tname, sizeof(tname), "%s%ld", test == 0 ? "pp" : "tg", n);
			snprintf(tval, sizeof(tval), "%.2f ± %.2f", mean, sd);
			if (test == 1)
				snprintf(gbs, sizeof(gbs), "%.2f", mean * (double)model_weight_bytes(m) / 1e9);
			printf("| %-18s | %6.1f MiB | %7.2f M | %-7s | %7ld | %6s | %21s | %11s |\n", name,
			       tbytes / MIB, params / 1e6, kern_isa_name(kern_isa()), threads[ti], tname, tval, gbs);
			fflush(stdout);
		}
	}
	double rss_end = vm_rss(), map_end = mapping_rss(path);
	printf("\nload: ready in %.1f ms (model_load %.1f ms + session %.1f ms); file %.1f MiB, "
	       "weights read per token %.1f MiB\n",
	       (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (double)gguf_size(g) / MIB,
	       (double)model_weight_bytes(m) / MIB);
	printf("memory: VmRSS before load %.1f MiB, after load %.1f MiB, with session %.1f MiB, after bench %.1f MiB\n",
	       rss0 / MIB, rss_load / MIB, rss_ctx / MIB, rss_end / MIB);
	printf("memory: model mapping resident %.1f MiB after load, %.1f MiB after bench (of %.1f MiB); "
	       "session %.1f MiB (KV cache %.1f MiB for %lld positions + work buffers %.1f MiB)\n",
	       map_load / MIB, map_end / MIB, (double)gguf_size(g) / MIB,
	       (double)model_ctx_mem_bytes(c) / MIB, (double)model_ctx_kv_bytes(c) / MIB,
	       (long long)model_ctx_n_ctx(c),
	       (double)(model_ctx_mem_bytes(c) - model_ctx_kv_bytes(c)) / MIB);
	printf("memory: after bench, VmRSS - before = %.1f MiB = mapping %.1f + session %.1f + other %.1f MiB "
	       "(tokenizer index, pool stacks, allocator)\n",
	       (rss_end - rss0) / MIB, map_end / MIB, (double)model_ctx_mem_bytes(c) / MIB,
	       (rss_end - rss0 - map_end - (double)model_ctx_mem_bytes(c)) / MIB);
	ret = 0;
out:
	free(toks);
	free(tps);
	model_ctx_free(c);
	model_free(m);
	tpool_free(pool);
	return ret;
}
