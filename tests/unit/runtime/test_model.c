/*
 * test_model.c: the llama / qwen2 model, its sessions and the generation loop.
 *
 *  - stories260K.gguf (a real trained model) must produce exactly the 200
 *    greedy ids of stories260K.greedy200.txt from BOS, with 1 and 2 threads;
 *  - random-weight models of both architectures and every weight type
 *    (written by model_random_write with GQA, biases for qwen2, tied and
 *    untied output) must give the logits of an independent double-precision
 *    reference (ref_forward.h) within a per-type tolerance, for a prompt run
 *    in batches and token by token, with the best and the scalar kernels;
 *  - logits do not depend on the pool size (bitwise);
 *  - resizing the pool from another thread while generating neither
 *    deadlocks nor changes the greedy ids;
 *  - prefix reuse (truncate and continue) equals a fresh run; embeddings are
 *    the L2-normalized pooled hidden states of the reference;
 *  - bad input is refused with the right errno and message.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dify-edge-core/runtime/generate.h"
#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/model_random.h"
#include "dify-edge-core/runtime/sampler.h"
#include "dify-edge-core/runtime/tpool.h"
#include "ref_forward.h"

static char tmpdir[64];

static const char *testdata(void)
{
	const char *d = getenv("TESTDATA");
	struct stat st;
	if (!d || !*d)
		d = "../shared/testdata";
	if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return d;
}

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_model.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write a random model for spec into tmpdir; returns its path (static buffer per call site). */
static void write_model(const struct model_random_spec *s, char *path, size_t cap)
{
	static int seq;
	char err[256];
	snprintf(path, cap, "%s/m%d.gguf", tmpdir, seq++);
	int rc = model_random_write(s, path, err, sizeof(err));
	if (rc)
		print_message("model_random_write: %s\n", err);
	assert_int_equal(rc, 0);
}

static void small_spec(struct model_random_spec *s, enum model_arch arch, enum ggml_type type)
{
	char err[128];
	model_random_defaults(s);
	s->arch = arch;
	s->type = type;
	assert_int_equal(model_random_parse_dims(s, "layers=2,embd=64,ff=96,heads=4,kv_heads=2,ctx=64,vocab=320",
						 err, sizeof(err)), 0);
	s->seed = 7 + (uint64_t)type * 3 + (uint64_t)arch;
}

/* ---------------------------------------------------------------- stories260K */

static int read_expected(const char *dir, int32_t *ids, int cap)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/stories260K.greedy200.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = 0;
	if (fscanf(f, "ids:") == 0)
		while (n < cap && fscanf(f, "%d", &ids[n]) == 1)
			n++;
	fclose(f);
	return n;
}

struct collect {
	int32_t ids[512];
	int n;
};

static int collect_token(void *arg, int32_t id)
{
	struct collect *c = arg;
	if (c->n < 512)
		c->ids[c->n++] = id;
	return 0;
}

/* Greedy generation of n ids after BOS into out (via gen_run). */
static void greedy(struct model *m, int n, struct collect *out)
{
	struct model_ctx *c = NULL;
	char err[256];
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temp = 0;
	struct sampler *s = sampler_new(&sp, model_n_vocab(m));
	assert_non_null(s);
	assert_int_equal(model_ctx_new(m, NULL, &c, err, sizeof(err)), 0);
	int32_t bos = tok_bos(model_tok(m));
	struct gen_params gp = { .max_tokens = n, .ignore_eog = true, .on_token = collect_token, .arg = out };
	out->n = 0;
	struct gen_result res;
	int rc = gen_run(c, s, &bos, 1, &gp, &res, err, sizeof(err));
	if (rc)
		print_message("gen_run: %s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(res.n_gen, n);
	sampler_free(s);
	model_ctx_free(c);
}

static void test_stories_greedy(void **state)
{
	(void)state;
	const char *dir = testdata();
	if (!dir) {
		print_message("testdata not found (set TESTDATA)\n");
		skip();
	}
	int32_t want[256];
	int nw = read_expected(dir, want, 256);
	assert_int_equal(nw, 200);
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
	for (int threads = 1; threads <= 2; threads++) {
		struct tpool *p = tpool_new(threads, err, sizeof(err));
		struct model *m = NULL;
		assert_non_null(p);
		int rc = model_load(path, p, NULL, &m, err, sizeof(err));
		if (rc)
			print_message("model_load: %s\n", err);
		assert_int_equal(rc, 0);
		assert_int_equal(model_arch(m), MODEL_ARCH_LLAMA);
		struct collect got;
		greedy(m, 200, &got);
		for (int i = 0; i < 200; i++)
			if (got.ids[i] != want[i]) {
				print_message("threads %d: id %d is %d, want %d\n", threads, i, got.ids[i], want[i]);
				fail();
			}
		model_free(m);
		tpool_free(p);
	}
}

/* ---------------------------------------------------------------- reference logits */

struct ref_case {
	enum model_arch arch;
	enum ggml_type type;
	bool tied;
	bool mixed; /* some matrices in other types (see mixed_types) */
	/* max |logit - ref| / rms(ref logits) allowed against the exact
	 * reference, and against the reference that rounds activations the way
	 * the kernels do (see the comment below) */
	double tol, tol_emul;
};

/*
 * Tolerances, relative to the RMS of the reference logits (about 1 for these
 * models: 2 layers, width 64, FFN 96, 4 heads / 2 KV heads).
 *
 * The reference uses the very same quantized weights (it decodes the blocks
 * itself), so weight quantization is not part of the difference: a wrong
 * block decode, layout, rotary pairing or head mapping shows up as an O(1)
 * error. What remains is how the runtime rounds ACTIVATIONS:
 *  - F32: nothing but float32 arithmetic (sums of <= 96 products, exp,
 *    sqrt) through 2 layers: ~1e-6 [measured 3e-6]. tol 1e-4.
 *  - F16: each product's input row is rounded to f16 (kern_prepare):
 *    relative 2^-11 = 4.9e-4 per element, ~7 products per layer, errors
 *    partly averaging: a few 1e-3 [measured 2.5e-3]. tol 2e-2.
 *  - Q8_0 / Q4_0: each input row is quantized to Q8_0 (32-element blocks,
 *    8 bits, error up to amax/254 per element, ~0.3% of the block's range
 *    RMS); over a dozen products and the residual stream this reaches a few
 *    percent of the logits' RMS at the worst position [measured 5e-2 ..
 *    7.5e-2 over the cases below]. tol 1.5e-1.
 * The second, tight check runs the reference with the same activation
 * rounding (ref_forward.h REF_ACT_*): then only float32-vs-double
 * arithmetic remains (measured ~1e-6 or less), except where a value sits
 * within float error of a rounding boundary and rounds the other way (one
 * element one f16 ulp or one Q8_0 step = amax/127 apart), after which that
 * position and later ones differ by up to ~1e-3 (F16) / ~1e-2 (Q8_0). So
 * all positions must agree within tol_emul = 5e-3 (F16), 3e-2 (Q8_0/Q4_0),
 * 1e-4 (F32), and the test prints how many agree within 1e-4.
 */
static const struct ref_case ref_cases[] = {
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_F32, .tol = 1e-4, .tol_emul = 1e-4 },
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_F16, .tol = 2e-2, .tol_emul = 5e-3 },
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_Q8_0, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_Q4_0, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_F32, .tol = 1e-4, .tol_emul = 1e-4 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_F16, .tol = 2e-2, .tol_emul = 5e-3 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_Q8_0, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_Q4_0, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_Q8_0, .tied = true, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_Q4_0, .tied = true, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_LLAMA, .type = GGML_TYPE_Q4_0, .mixed = true, .tol = 1.5e-1, .tol_emul = 3e-2 },
	{ .arch = MODEL_ARCH_QWEN2, .type = GGML_TYPE_Q8_0, .mixed = true, .tol = 1.5e-1, .tol_emul = 3e-2 },
};

/* A model whose matrices are not all one type (as llama.cpp's quantizer
 * writes them: e.g. a Q4_0 model with a Q8_0 output matrix): every input
 * gets prepared for each type that reads it. */
static const struct {
	const char *name;
	enum ggml_type type;
} mixed_types[MODEL_RANDOM_MAX_OVERRIDES] = {
	{ "output.weight", GGML_TYPE_Q8_0 },
	{ "blk.0.attn_k.weight", GGML_TYPE_F16 },
	{ "blk.0.ffn_up.weight", GGML_TYPE_Q4_0 },
	{ "blk.1.ffn_down.weight", GGML_TYPE_F32 },
};

#define NTOK 11

static double rel_err(const float *got, const double *ref, int64_t n)
{
	double ss = 0, mx = 0;
	for (int64_t i = 0; i < n; i++)
		ss += ref[i] * ref[i];
	double rms = sqrt(ss / (double)n);
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		if (!(d <= mx)) /* NaN counts as infinite */
			mx = isnan(d) ? INFINITY : d;
	}
	return mx / (rms > 0 ? rms : 1);
}

static void test_ref_logits(void **state)
{
	(void)state;
	const int32_t toks[NTOK] = { 1, 300, 17, 259, 42, 42, 7, 311, 100, 2, 260 };
	char path[256], err[256];
	struct tpool *p = tpool_new(2, err, sizeof(err));
	assert_non_null(p);
	for (size_t ci = 0; ci < sizeof(ref_cases) / sizeof(ref_cases[0]); ci++) {
		const struct ref_case *rc = &ref_cases[ci];
		struct model_random_spec s;
		small_spec(&s, rc->arch, rc->type);
		s.tied = rc->tied;
		if (rc->mixed) {
			for (int i = 0; i < MODEL_RANDOM_MAX_OVERRIDES; i++) {
				s.override[i].name = mixed_types[i].name;
				s.override[i].type = mixed_types[i].type;
			}
			s.n_override = MODEL_RANDOM_MAX_OVERRIDES;
		}
		write_model(&s, path, sizeof(path));

		struct model *m = NULL;
		assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
		assert_int_equal(model_hparams(m)->tied_output, rc->tied);
		int64_t V = model_n_vocab(m), E = model_n_embd(m);
		struct ref_model ref;
		assert_int_equal(ref_load(&ref, model_gguf(m)), 0);
		double *rl = malloc(sizeof(double) * (size_t)(NTOK * V));
		double *rle = malloc(sizeof(double) * (size_t)(NTOK * V));
		double *rh = malloc(sizeof(double) * (size_t)(NTOK * E));
		ref_forward(&ref, toks, NTOK, rl, rh);
		ref.emulate = 1;
		ref_forward(&ref, toks, NTOK, rle, NULL);

		float *lg = malloc(sizeof(float) * (size_t)(NTOK * V));
		float *lg1 = malloc(sizeof(float) * (size_t)V);
		double worst = 0, worst_emul = 0;
		int exact_positions = 0;
		for (int isa_pass = 0; isa_pass < 2; isa_pass++) {
			enum kern_isa best = kern_isa();
			if (isa_pass == 1)
				assert_int_equal(kern_force_isa(KERN_ISA_SCALAR), 0);
			/* batches of 4: matmul path, batch boundaries inside the prompt */
			struct model_ctx *c = NULL;
			struct model_ctx_opts co = { .n_ctx = 32, .n_batch = 4 };
			assert_int_equal(model_ctx_new(m, &co, &c, err, sizeof(err)), 0);
			assert_int_equal(model_eval(c, toks, NTOK, 0, lg, err, sizeof(err)), 0);
			for (int t = 0; t < NTOK; t++) {
				double e = rel_err(lg + t * V, rl + t * V, V);
				double ee = rel_err(lg + t * V, rle + t * V, V);
				worst = fmax(worst, e);
				worst_emul = fmax(worst_emul, ee);
				exact_positions += ee <= 1e-4;
				if (e > rc->tol || ee > rc->tol_emul)
					print_message("%s %s%s isa %s: position %d error %.3g (tol %.3g), vs rounding reference %.3g (tol %.3g)\n",
						      model_arch_name(rc->arch), ggml_type_name(rc->type),
						      rc->tied ? " tied" : rc->mixed ? " mixed" : "", kern_isa_name(kern_isa()), t, e, rc->tol,
						      ee, rc->tol_emul);
				assert_true(e <= rc->tol);
				assert_true(ee <= rc->tol_emul);
			}
			assert_memory_equal(model_ctx_logits(c), lg + (NTOK - 1) * V, sizeof(float) * (size_t)V);
			/* information: positions that agree with the rounding
			 * reference to float precision (no rounding tie yet) */
			if (isa_pass == 0)
				print_message("%s %-4s%s: %d of %d positions within 1e-4 of the rounding reference\n",
					      model_arch_name(rc->arch), ggml_type_name(rc->type),
					      rc->tied ? " tied" : rc->mixed ? " mixed" : "", exact_positions, NTOK);
			/* token by token: the matvec path and the KV cache across calls */
			model_ctx_reset(c);
			for (int t = 0; t < NTOK; t++) {
				assert_int_equal(model_eval(c, &toks[t], 1, t, NULL, err, sizeof(err)), 0);
				memcpy(lg1, model_ctx_logits(c), sizeof(float) * (size_t)V);
				double e = rel_err(lg1, rl + t * V, V);
				double ee = rel_err(lg1, rle + t * V, V);
				worst = fmax(worst, e);
				worst_emul = fmax(worst_emul, ee);
				assert_true(e <= rc->tol);
				assert_true(ee <= rc->tol_emul);
			}
			assert_int_equal(model_ctx_n_past(c), NTOK);
			/* embeddings: pooled reference hidden states, normalized */
			float emb[256];
			for (int pool_kind = 0; pool_kind < 2; pool_kind++) {
				assert_int_equal(model_embed(c, toks, NTOK, (enum model_pooling)pool_kind, emb, E,
							     err, sizeof(err)), 0);
				double want[256] = { 0 }, nn = 0, en = 0, md = 0;
				for (int t = pool_kind ? NTOK - 1 : 0; t < NTOK; t++)
					for (int64_t d = 0; d < E; d++)
						want[d] += rh[t * E + d];
				for (int64_t d = 0; d < E; d++)
					nn += want[d] * want[d];
				for (int64_t d = 0; d < E; d++) {
					en += (double)emb[d] * emb[d];
					double diff = fabs(emb[d] - want[d] / sqrt(nn));
					if (diff > md)
						md = diff;
				}
				assert_true(fabs(en - 1.0) < 1e-5);
				/* unit vectors of dimension 64: entries ~0.125; the
				 * hidden states carry the same error as the logits */
				assert_true(md <= rc->tol * 0.5);
			}
			model_ctx_free(c);
			if (isa_pass == 1)
				kern_force_isa(best);
		}
		print_message("%s %-4s%s: max relative logit error %.3g (tol %.2g); vs activation-rounding reference %.3g (tol %.2g)\n",
			      model_arch_name(rc->arch), ggml_type_name(rc->type), rc->tied ? " tied" : rc->mixed ? " mixed" : "",
			      worst, rc->tol, worst_emul, rc->tol_emul);
		free(lg);
		free(lg1);
		free(rl);
		free(rle);
		free(rh);
		ref_free(&ref);
		model_free(m);
	}
	tpool_free(p);
}

/* ---------------------------------------------------------------- threads */

static void test_threads_bitwise(void **state)
{
	(void)state;
	char path[256], err[256];
	struct model_random_spec s;
	small_spec(&s, MODEL_ARCH_QWEN2, GGML_TYPE_Q4_0);
	write_model(&s, path, sizeof(path));
	const int32_t toks[NTOK] = { 1, 5, 6, 7, 300, 301, 302, 9, 10, 11, 12 };
	float *ref = NULL;
	for (int threads = 1; threads <= 3; threads++) {
		struct tpool *p = tpool_new(threads, err, sizeof(err));
		struct model *m = NULL;
		struct model_ctx *c = NULL;
		assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
		int64_t V = model_n_vocab(m);
		struct model_ctx_opts co = { .n_ctx = 32, .n_batch = 5 };
		assert_int_equal(model_ctx_new(m, &co, &c, err, sizeof(err)), 0);
		float *lg = malloc(sizeof(float) * (size_t)(NTOK * V));
		assert_int_equal(model_eval(c, toks, NTOK, 0, lg, err, sizeof(err)), 0);
		if (!ref)
			ref = lg;
		else {
			assert_memory_equal(ref, lg, sizeof(float) * (size_t)(NTOK * V));
			free(lg);
		}
		model_ctx_free(c);
		model_free(m);
		tpool_free(p);
	}
	free(ref);
}

struct resizer {
	struct tpool *p;
	int stop;      /* atomic */
	long resizes;  /* read after join */
};

static void *resize_loop(void *arg)
{
	struct resizer *r = arg;
	int n = 1;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		n = n % 3 + 1;
		assert_int_equal(tpool_resize(r->p, n), 0);
		r->resizes++;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void resize_case(const char *path, int n_gen, int rounds)
{
	char err[256];
	struct tpool *p = tpool_new(2, err, sizeof(err));
	struct model *m = NULL;
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
	struct collect base, got;
	greedy(m, n_gen, &base);
	struct resizer r = { .p = p };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, resize_loop, &r), 0);
	for (int i = 0; i < rounds; i++) {
		greedy(m, n_gen, &got);
		assert_int_equal(got.n, base.n);
		assert_memory_equal(got.ids, base.ids, sizeof(int32_t) * (size_t)base.n);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	print_message("%d generations of %d tokens during %ld resizes: same ids\n", rounds, n_gen, r.resizes);
	assert_true(r.resizes > 0);
	model_free(m);
	tpool_free(p);
}

static void test_resize_while_generating(void **state)
{
	(void)state;
	char path[256];
	struct model_random_spec s;
	small_spec(&s, MODEL_ARCH_LLAMA, GGML_TYPE_Q8_0);
	write_model(&s, path, sizeof(path));
	resize_case(path, 48, 10);
	const char *dir = testdata();
	if (dir) {
		char sp[512];
		snprintf(sp, sizeof(sp), "%s/stories260K.gguf", dir);
		resize_case(sp, 100, 5);
	}
}

/* Two sessions of one model generating at once from two threads (the
 * server's slots): their forward passes take turns in tpool_run, and each
 * gets exactly the ids it gets alone. */
struct gen_job {
	struct model *m;
	struct collect out;
};

static void *gen_thread(void *arg)
{
	struct gen_job *j = arg;
	greedy(j->m, 40, &j->out);
	return NULL;
}

static void test_concurrent_sessions(void **state)
{
	(void)state;
	char path[256], err[256];
	struct model_random_spec s;
	small_spec(&s, MODEL_ARCH_QWEN2, GGML_TYPE_Q8_0);
	write_model(&s, path, sizeof(path));
	struct tpool *p = tpool_new(2, err, sizeof(err));
	struct model *m = NULL;
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
	struct collect base;
	greedy(m, 40, &base);
	struct gen_job jobs[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		jobs[i].m = m;
		assert_int_equal(pthread_create(&th[i], NULL, gen_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].out.n, base.n);
		assert_memory_equal(jobs[i].out.ids, base.ids, sizeof(int32_t) * (size_t)base.n);
	}
	model_free(m);
	tpool_free(p);
}

/* ---------------------------------------------------------------- sessions */

static void test_prefix_reuse(void **state)
{
	(void)state;
	char path[256], err[256];
	struct model_random_spec s;
	small_spec(&s, MODEL_ARCH_QWEN2, GGML_TYPE_F32);
	write_model(&s, path, sizeof(path));
	struct tpool *p = tpool_new(2, err, sizeof(err));
	struct model *m = NULL;
	struct model_ctx *a = NULL, *b = NULL;
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
	int64_t V = model_n_vocab(m);
	assert_int_equal(model_ctx_new(m, NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(model_ctx_new(m, NULL, &b, err, sizeof(err)), 0);
	const int32_t x[8] = { 1, 10, 20, 30, 40, 50, 60, 70 };
	const int32_t y[8] = { 1, 10, 20, 30, 99, 98, 97, 96 };
	assert_int_equal(model_eval(a, x, 8, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(model_ctx_common_prefix(a, y, 8), 4);
	model_ctx_truncate(a, 4);
	assert_int_equal(model_ctx_n_past(a), 4);
	assert_null(model_ctx_logits(a));
	assert_int_equal(model_eval(a, y + 4, 4, 4, NULL, err, sizeof(err)), 0);
	assert_int_equal(model_eval(b, y, 8, 0, NULL, err, sizeof(err)), 0);
	/* same kernels, same order: identical up to the batch split */
	const float *la = model_ctx_logits(a), *lb = model_ctx_logits(b);
	for (int64_t i = 0; i < V; i++)
		assert_true(fabsf(la[i] - lb[i]) <= 1e-4f * (1 + fabsf(lb[i])));
	/* eval at a position inside the cache forgets what follows */
	assert_int_equal(model_eval(a, y + 2, 6, 2, NULL, err, sizeof(err)), 0);
	assert_int_equal(model_ctx_n_past(a), 8);
	assert_memory_equal(model_ctx_tokens(a), y, sizeof(y));
	/* errors */
	int32_t bad = (int32_t)V;
	assert_int_equal(model_eval(a, &bad, 1, 8, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(model_eval(a, x, 1, 9, NULL, err, sizeof(err)), -EINVAL);
	int32_t many[300];
	for (int i = 0; i < 300; i++)
		many[i] = i % 200 + 3;
	assert_int_equal(model_eval(b, many, 300, 0, NULL, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "do not fit the context"));
	float e[10];
	assert_int_equal(model_embed(b, x, 8, MODEL_POOL_MEAN, e, 10, err, sizeof(err)), -EINVAL);
	model_ctx_free(a);
	model_ctx_free(b);
	model_free(m);
	tpool_free(p);
}

/* ---------------------------------------------------------------- generation */

struct textbuf {
	char s[4096];
	size_t n;
	int chunks;
};

static int collect_text(void *arg, const char *t, size_t n)
{
	struct textbuf *b = arg;
	if (b->n + n < sizeof(b->s)) {
		memcpy(b->s + b->n, t, n);
		b->n += n;
		b->s[b->n] = 0;
	}
	b->chunks++;
	return 0;
}

static void test_stop_strings(void **state)
{
	(void)state;
	const char *dir = testdata();
	if (!dir) {
		print_message("testdata not found (set TESTDATA)\n");
		skip();
	}
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
	struct tpool *p = tpool_new(1, err, sizeof(err));
	struct model *m = NULL;
	struct model_ctx *c = NULL;
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
	assert_int_equal(model_ctx_new(m, NULL, &c, err, sizeof(err)), 0);
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temp = 0;
	struct sampler *s = sampler_new(&sp, model_n_vocab(m));
	int32_t bos = tok_bos(model_tok(m));
	/* the greedy text: "Once upon a time, there was a little girl named Lily. ..." */
	static const struct {
		const char *stop;
		const char *want; /* the whole output */
		enum gen_stop_reason reason;
	} cases[] = {
		{ "little", "Once upon a time, there was a ", GEN_STOP_STRING },
		{ "ime, th", "Once upon a t", GEN_STOP_STRING },   /* split across tokens */
		{ ".", "Once upon a time, there was a little girl named Lily", GEN_STOP_STRING },
		{ "zzz", NULL, GEN_STOP_LENGTH },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct textbuf tb = { .n = 0 };
		struct gen_params gp = { .max_tokens = 30, .on_text = collect_text, .arg = &tb, .n_stop = 1 };
		gp.stop[0] = cases[i].stop;
		struct gen_result res;
		sampler_reset(s, 0);
		assert_int_equal(gen_run(c, s, &bos, 1, &gp, &res, err, sizeof(err)), 0);
		assert_int_equal(res.stop, cases[i].reason);
		if (cases[i].want)
			assert_string_equal(tb.s, cases[i].want);
		else
			assert_int_equal(res.n_gen, 30);
		/* the second run reused the cached BOS (only re-evaluated it) */
		assert_int_equal(res.n_prompt_eval, 1);
	}
	sampler_free(s);
	model_ctx_free(c);
	model_free(m);
	tpool_free(p);
}

/* Streaming: the chunks handed to on_text, concatenated, are exactly the
 * decoded generated ids (a random model emits many byte tokens, so UTF-8
 * sequences are split across tokens), no sequence is split between two
 * chunks (a chunk may end with a lead byte only when what follows is not
 * its continuation: invalid UTF-8), and with a stop string the text
 * is the decoded text cut before the stop string's first occurrence. */
struct stream {
	struct textbuf tb;
	struct collect ids;
	bool prev_split;  /* the previous chunk ended with a lead byte short of its continuation bytes */
	bool violation;   /* ... and this one went on with them: a sequence was split */
};

static int stream_text(void *arg, const char *t, size_t n)
{
	struct stream *st = arg;
	if (st->prev_split && n && ((unsigned char)t[0] & 0xC0) == 0x80)
		st->violation = true;
	st->prev_split = false;
	/* does this chunk end with a lead byte missing continuation bytes? */
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char ch = (unsigned char)t[n - back];
		if ((ch & 0xC0) == 0x80)
			continue;
		size_t need = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
		st->prev_split = need > back;
		break;
	}
	return collect_text(&st->tb, t, n);
}

static int stream_token(void *arg, int32_t id)
{
	struct stream *st = arg;
	return collect_token(&st->ids, id);
}

/* Valid UTF-8 (no overlongs, surrogates or values past U+10FFFF)? */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (!need || i + need > n)
			return false;
		uint32_t cp = need == 1 ? c : c & (0x7Fu >> need);
		for (size_t k = 1; k < need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
		if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += need;
	}
	return true;
}

struct valid_chunks {
	int chunks, invalid, replacements;
};

static int check_chunk(void *arg, const char *t, size_t n)
{
	struct valid_chunks *v = arg;
	v->chunks++;
	v->invalid += !utf8_valid((const unsigned char *)t, n);
	for (size_t i = 0; i + 3 <= n; i++)
		v->replacements += !memcmp(t + i, "\xef\xbf\xbd", 3);
	return 0;
}

static void test_stream_equals_decode(void **state)
{
	(void)state;
	char path[256], err[256];
	struct model_random_spec s;
	small_spec(&s, MODEL_ARCH_LLAMA, GGML_TYPE_Q8_0);
	s.n_vocab = 600;
	write_model(&s, path, sizeof(path));
	struct tpool *p = tpool_new(2, err, sizeof(err));
	struct model *m = NULL;
	struct model_ctx *c = NULL;
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), 0);
	struct model_ctx_opts co = { .n_ctx = 256 };
	assert_int_equal(model_ctx_new(m, &co, &c, err, sizeof(err)), 0);
	const struct tok *tk = model_tok(m);
	int32_t bos = tok_bos(tk);
	static char dec[8192];
	int with_bytes = 0, stops = 0;
	for (uint64_t seed = 1; seed <= 6; seed++) {
		struct sampler_params sp = { .temp = 1.5f, .top_p = 1, .repeat_penalty = 1, .seed = seed };
		struct sampler *smp = sampler_new(&sp, model_n_vocab(m));
		struct stream st = { .violation = false };
		struct gen_params gp = { .max_tokens = 150, .ignore_eog = true, .on_text = stream_text,
					 .on_token = stream_token, .arg = &st };
		const char *stop = "e ";
		if (seed > 3) {
			gp.stop[0] = stop;
			gp.n_stop = 1;
		}
		struct gen_result res;
		assert_int_equal(gen_run(c, smp, &bos, 1, &gp, &res, err, sizeof(err)), 0);
		int64_t n = tok_decode(tk, (const int32_t *)st.ids.ids, (size_t)st.ids.n, false, dec, sizeof(dec) - 1);
		assert_true(n >= 0 && n < (int64_t)sizeof(dec));
		dec[n] = 0;
		for (int i = 0; i < st.ids.n; i++)
			with_bytes += tok_token_type(tk, st.ids.ids[i]) == 6;
		if (seed <= 3) {
			assert_int_equal(res.stop, GEN_STOP_LENGTH);
			assert_int_equal((int64_t)st.tb.n, n);
			assert_memory_equal(st.tb.s, dec, (size_t)n);
		} else {
			const char *cut = strstr(dec, stop);
			if (res.stop == GEN_STOP_STRING) {
				stops++;
				assert_non_null(cut);
				assert_int_equal((int64_t)st.tb.n, cut - dec);
			} else {
				assert_null(cut);
				assert_int_equal((int64_t)st.tb.n, n);
			}
			assert_memory_equal(st.tb.s, dec, st.tb.n);
		}
		assert_false(st.violation);
		sampler_free(smp);
	}
	/* utf8_replace: every chunk is valid UTF-8; invalid bytes became U+FFFD */
	struct valid_chunks vc = { 0 };
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sampler_params sp = { .temp = 1.5f, .top_p = 1, .repeat_penalty = 1, .seed = seed };
		struct sampler *smp = sampler_new(&sp, model_n_vocab(m));
		struct gen_params gp = { .max_tokens = 150, .ignore_eog = true, .utf8_replace = true,
					 .on_text = check_chunk, .arg = &vc };
		assert_int_equal(gen_run(c, smp, &bos, 1, &gp, NULL, err, sizeof(err)), 0);
		sampler_free(smp);
	}
	print_message("utf8_replace: %d chunks, %d invalid, %d replacement characters\n", vc.chunks,
		      vc.invalid, vc.replacements);
	assert_int_equal(vc.invalid, 0);
	assert_true(vc.replacements > 0);
	print_message("%d byte tokens generated, %d of 3 runs ended by the stop string\n", with_bytes, stops);
	assert_true(with_bytes > 0); /* byte tokens were exercised */
	assert_true(stops > 0);
	model_ctx_free(c);
	model_free(m);
	tpool_free(p);
}

/* ---------------------------------------------------------------- bad input */

static void test_bad_models(void **state)
{
	(void)state;
	char path[256], err[256];
	struct tpool *p = tpool_new(1, err, sizeof(err));
	struct model *m = NULL;
	struct model_random_spec s;

	assert_int_equal(model_load("/nonexistent/x.gguf", p, NULL, &m, err, sizeof(err)), -ENOENT);
	assert_null(m);
	assert_int_equal(model_load(tmpdir, p, NULL, &m, err, sizeof(err)), -EISDIR);

	small_spec(&s, MODEL_ARCH_LLAMA, GGML_TYPE_Q8_0);
	s.arch_name = "gpt2";
	write_model(&s, path, sizeof(path));
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "unsupported architecture 'gpt2'"));

	small_spec(&s, MODEL_ARCH_LLAMA, GGML_TYPE_Q8_0);
	assert_int_equal(model_random_parse_dims(&s, "embd=256,heads=4,kv_heads=2,ff=256", err, sizeof(err)), 0);
	s.override[0].name = "blk.0.attn_q.weight";
	s.override[0].type = GGML_TYPE_Q4_K;
	s.n_override = 1;
	write_model(&s, path, sizeof(path));
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "unsupported tensor type q4_K for blk.0.attn_q.weight"));

	/* a norm stored as f16 */
	small_spec(&s, MODEL_ARCH_QWEN2, GGML_TYPE_F16);
	s.override[0].name = "output_norm.weight";
	s.override[0].type = GGML_TYPE_F16;
	s.n_override = 1;
	write_model(&s, path, sizeof(path));
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), -ENOTSUP);

	/* truncated: every failure is a clean error */
	small_spec(&s, MODEL_ARCH_LLAMA, GGML_TYPE_Q4_0);
	write_model(&s, path, sizeof(path));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
	assert_int_equal(model_load(path, p, NULL, &m, err, sizeof(err)), -EINVAL);
	assert_null(m);
	tpool_free(p);
}

/* ---------------------------------------------------------------- real F16 file */

static void test_llama2_tiny_random(void **state)
{
	(void)state;
	const char *dir = testdata();
	if (!dir) {
		print_message("testdata not found (set TESTDATA)\n");
		skip();
	}
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/llama-2-tiny-random.gguf", dir);
	struct tpool *p = tpool_new(2, err, sizeof(err));
	struct model *m = NULL;
	int rc = model_load(path, p, NULL, &m, err, sizeof(err));
	if (rc)
		print_message("model_load: %s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(model_weight_type(m), GGML_TYPE_F16);
	/* the reference agrees on the real file too (F16 tolerance) */
	struct ref_model ref;
	assert_int_equal(ref_load(&ref, model_gguf(m)), 0);
	int64_t V = model_n_vocab(m);
	const int32_t toks[4] = { 1, 450, 4996, 17354 };
	double *rl = malloc(sizeof(double) * (size_t)(4 * V));
	float *lg = malloc(sizeof(float) * (size_t)(4 * V));
	ref_forward(&ref, toks, 4, rl, NULL);
	struct model_ctx *c = NULL;
	assert_int_equal(model_ctx_new(m, NULL, &c, err, sizeof(err)), 0);
	assert_int_equal(model_eval(c, toks, 4, 0, lg, err, sizeof(err)), 0);
	for (int t = 0; t < 4; t++) {
		double e = rel_err(lg + t * V, rl + t * V, V);
		print_message("llama-2-tiny-random position %d: relative error %.3g\n", t, e);
		assert_true(e <= 1e-2);
	}
	model_ctx_free(c);
	struct collect got;
	greedy(m, 16, &got);
	for (int i = 0; i < got.n; i++)
		assert_true(got.ids[i] >= 0 && got.ids[i] < V);
	free(rl);
	free(lg);
	ref_free(&ref);
	model_free(m);
	tpool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stories_greedy),
		cmocka_unit_test(test_ref_logits),
		cmocka_unit_test(test_threads_bitwise),
		cmocka_unit_test(test_resize_while_generating),
		cmocka_unit_test(test_concurrent_sessions),
		cmocka_unit_test(test_prefix_reuse),
		cmocka_unit_test(test_stop_strings),
		cmocka_unit_test(test_stream_equals_decode),
		cmocka_unit_test(test_bad_models),
		cmocka_unit_test(test_llama2_tiny_random),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
