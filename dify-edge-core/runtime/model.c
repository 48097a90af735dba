/*
 * model.c: loading llama / qwen2 GGUF models and running their forward pass.
 *
 * DESIGN
 * Loading validates everything a forward pass will rely on, once: the
 * architecture, the hyper-parameters (divisibility of heads, rotary dims),
 * and for every tensor its presence, shape and type (F32/F16/Q8_0/Q4_0 for
 * matrices, F32 for norms and biases). The model then only holds pointers
 * into the read-only mapping; no weight byte is copied.
 *
 * A session (model_ctx) is planned at creation: for n_batch tokens it
 * allocates the residual stream x, the normalized xn, q/k/v, the attention
 * output, the FFN gate/up, the per-head score rows, the rotary tables, the
 * prepared (quantized) activations for each weight type the model uses,
 * the logits of one token, and the KV cache laid out per layer as
 * [kv head][position][head dim] (f32), so that one head's keys are
 * contiguous rows.
 *
 * The forward pass of a batch of B tokens is ONE tpool_run of fwd_worker():
 *   embed rows -> per layer { rmsnorm+prepare | Q,K,V (+bias) | rope + KV
 *   store | attention per head | prepare | Wo + residual | rmsnorm+prepare |
 *   gate,up | silu*up + prepare | down + residual } -> output norm + prepare
 *   -> logits (or, for embeddings, the normalized hidden states).
 * '|' is a tpool_barrier. Within a stage work is claimed with
 * tpool_chunk_next(): token rows, heads, or fixed blocks of CHUNK_ROWS
 * weight rows. Chunk boundaries do not depend on the thread count and each
 * output element is computed by exactly one thread with the same operation
 * order, so results are bitwise identical for any pool size (the resize
 * test relies on it).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/ops.h"

#define CHUNK_ROWS 32
/* Prepared activations, one buffer per weight type: kern_prepare's layout
 * depends on the weight type, not only on its vec-dot type (Q4_0 adds
 * per-block sums to the Q8_0 blocks), so a model mixing types (a Q4_0 model
 * with a Q8_0 output matrix) prepares each input once per type it meets. */
#define N_SLOTS 4

struct layer {
	const struct gguf_tensor *attn_norm, *wq, *wk, *wv, *wo;
	const struct gguf_tensor *bq, *bk, *bv; /* qwen2 only */
	const struct gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
};

struct model {
	struct gguf_file *g;
	struct tok *tok;
	struct tpool *pool;
	struct model_hparams hp;
	const struct gguf_tensor *tok_embd, *out_norm, *output;
	struct layer *layers; /* [n_layer] */
	size_t weight_bytes;
	enum ggml_type wtype;
};

struct model_ctx {
	struct model *m;
	int64_t n_ctx, n_batch, n_past;
	int32_t *tokens;  /* [n_ctx] ids held in the KV cache */
	float *kv;        /* [n_layer][2][n_head_kv][n_ctx][hd] */
	size_t kv_bytes, mem_bytes;
	/* work buffers, [n_batch][...] unless said otherwise */
	float *x, *xn, *tmp, *q, *k, *v, *att, *gate, *up;
	float *scores;    /* [n_head][n_ctx] */
	float *rope_cs;   /* [n_batch][n_rot] cos/sin pairs */
	float *logits;    /* [n_vocab] */
	void *xq[N_SLOTS];/* per weight type: [n_batch][prepared row of k] */
	/* private per-thread buffers for single-row stages (see prep_stage),
	 * for up to n_thr threads: a float row and a prepared row per type */
	int n_thr;
	int64_t thr_row_len;
	float *thr_row;           /* [n_thr][thr_row_len] */
	void *thr_xq[N_SLOTS];    /* [n_thr][thr_xq_len[s]] */
	size_t thr_xq_len[N_SLOTS];
	bool have_logits;
	/* the job of the current forward pass */
	const int32_t *job_tokens;
	int64_t job_n, job_pos0;
	float *job_logits_all; /* NULL: last only */
	bool job_hidden;       /* stop after the output norm (embeddings, or a
				* batch whose logits nobody reads) */
};

/* ---------------------------------------------------------------- errors */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---------------------------------------------------------------- loading */

static const struct {
	const char *name;
	enum model_arch arch;
	enum model_rope_mode rope;
	bool qkv_bias;
} arch_table[] = {
	{ .name = "llama", .arch = MODEL_ARCH_LLAMA, .rope = MODEL_ROPE_NORMAL, .qkv_bias = false },
	{ .name = "qwen2", .arch = MODEL_ARCH_QWEN2, .rope = MODEL_ROPE_NEOX, .qkv_bias = true },
};

const char *model_arch_name(enum model_arch a)
{
	for (size_t i = 0; i < sizeof(arch_table) / sizeof(arch_table[0]); i++)
		if (arch_table[i].arch == a)
			return arch_table[i].name;
	return "unknown";
}

/* Read "{arch}.suffix" as an integer; -ENOENT when absent and !required
 * leaves *out untouched. */
static int get_int(const struct gguf_file *g, const char *arch, const char *suffix,
		   bool required, int64_t *out, const char *path, char *err, size_t errlen)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	int64_t v;
	int rc = gguf_get_i64(g, key, &v);
	if (rc == -ENOENT && !required)
		return 0;
	if (rc < 0)
		return fail(err, errlen, -EINVAL, "%s: %s metadata %s", path,
			    rc == -ENOENT ? "missing" : "bad", key);
	if (v <= 0 || v > (int64_t)1 << 31)
		return fail(err, errlen, -EINVAL, "%s: metadata %s = %lld out of range",
			    path, key, (long long)v);
	*out = v;
	return 0;
}

static int get_float(const struct gguf_file *g, const char *arch, const char *suffix,
		     float *out, const char *path, char *err, size_t errlen)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	float v;
	int rc = gguf_get_f32(g, key, &v);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0 || !isfinite(v) || v <= 0)
		return fail(err, errlen, -EINVAL, "%s: bad metadata %s", path, key);
	*out = v;
	return 0;
}

/* Find NAME, check its type class and shape [ne0, ne1] (ne1 = 0: a vector). */
static int get_tensor(struct model *m, const char *path, const char *name,
		      int64_t ne0, int64_t ne1, bool matrix, bool optional,
		      const struct gguf_tensor **out, char *err, size_t errlen)
{
	const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
	*out = NULL;
	if (!t) {
		if (optional)
			return 0;
		return fail(err, errlen, -EINVAL, "%s: missing tensor %s", path, name);
	}
	int64_t want_dims = ne1 ? 2 : 1;
	bool shape_ok = t->ne[0] == ne0 && (ne1 ? t->ne[1] == ne1 : t->ne[1] == 1) &&
			t->ne[2] == 1 && t->ne[3] == 1;
	if (!shape_ok)
		return fail(err, errlen, -EINVAL,
			    "%s: tensor %s has shape [%lld, %lld, %lld, %lld], want [%lld, %lld] (%lld dims)",
			    path, name, (long long)t->ne[0], (long long)t->ne[1],
			    (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
			    (long long)(ne1 ? ne1 : 1), (long long)want_dims);
	if (matrix) {
		if (!kern_type_supported(t->type))
			return fail(err, errlen, -ENOTSUP, "%s: unsupported tensor type %s for %s",
				    path, ggml_type_name(t->type), name);
		if (ggml_row_size(t->type, ne0) == 0)
			return fail(err, errlen, -EINVAL,
				    "%s: tensor %s: row of %lld is not a multiple of the %s block",
				    path, name, (long long)ne0, ggml_type_name(t->type));
	} else if (t->type != GGML_TYPE_F32) {
		return fail(err, errlen, -ENOTSUP,
			    "%s: unsupported tensor type %s for %s (norms and biases must be f32)",
			    path, ggml_type_name(t->type), name);
	}
	*out = t;
	return 0;
}

static int load_hparams(struct model *m, const char *path, char *err, size_t errlen)
{
	struct model_hparams *hp = &m->hp;
	const char *s;
	size_t len;
	char arch[32];
	int rc;

	if (gguf_get_str(m->g, "general.architecture", &s, &len) < 0)
		return fail(err, errlen, -EINVAL, "%s: missing metadata general.architecture", path);
	snprintf(arch, sizeof(arch), "%.*s", (int)(len < 31 ? len : 31), s);
	size_t ai = 0, na = sizeof(arch_table) / sizeof(arch_table[0]);
	while (ai < na && (strlen(arch_table[ai].name) != len ||
			   memcmp(arch_table[ai].name, s, len) != 0))
		ai++;
	if (ai == na)
		return fail(err, errlen, -ENOTSUP,
			    "%s: unsupported architecture '%s' (supported: llama, qwen2)", path, arch);
	hp->arch = arch_table[ai].arch;
	hp->rope_mode = arch_table[ai].rope;
	hp->has_qkv_bias = arch_table[ai].qkv_bias;

	hp->n_ctx_train = 2048;
	if ((rc = get_int(m->g, arch, "context_length", false, &hp->n_ctx_train, path, err, errlen)) ||
	    (rc = get_int(m->g, arch, "embedding_length", true, &hp->n_embd, path, err, errlen)) ||
	    (rc = get_int(m->g, arch, "block_count", true, &hp->n_layer, path, err, errlen)) ||
	    (rc = get_int(m->g, arch, "feed_forward_length", true, &hp->n_ff, path, err, errlen)) ||
	    (rc = get_int(m->g, arch, "attention.head_count", true, &hp->n_head, path, err, errlen)))
		return rc;
	hp->n_head_kv = hp->n_head;
	if ((rc = get_int(m->g, arch, "attention.head_count_kv", false, &hp->n_head_kv, path, err, errlen)))
		return rc;
	/* Every block has its own tensors, so a block count above the file's
	 * tensor count is a lie: refuse it before sizing anything by it. */
	if (hp->n_layer > gguf_n_tensors(m->g))
		return fail(err, errlen, -EINVAL, "%s: block_count %lld exceeds the %lld tensors in the file",
			    path, (long long)hp->n_layer, (long long)gguf_n_tensors(m->g));
	if (hp->n_embd % hp->n_head || hp->n_head % hp->n_head_kv)
		return fail(err, errlen, -EINVAL,
			    "%s: embedding %lld, heads %lld and kv heads %lld do not divide",
			    path, (long long)hp->n_embd, (long long)hp->n_head, (long long)hp->n_head_kv);
	hp->n_embd_head = hp->n_embd / hp->n_head;
	hp->n_rot = hp->n_embd_head;
	if ((rc = get_int(m->g, arch, "rope.dimension_count", false, &hp->n_rot, path, err, errlen)))
		return rc;
	if (hp->n_rot > hp->n_embd_head || hp->n_rot % 2)
		return fail(err, errlen, -EINVAL, "%s: rope.dimension_count %lld does not fit head size %lld",
			    path, (long long)hp->n_rot, (long long)hp->n_embd_head);
	hp->rms_eps = 1e-5f;
	hp->rope_freq_base = 10000.0f;
	hp->rope_freq_scale = 1.0f;
	if ((rc = get_float(m->g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, path, err, errlen)) ||
	    (rc = get_float(m->g, arch, "rope.freq_base", &hp->rope_freq_base, path, err, errlen)))
		return rc;
	char key[128];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
	if (gguf_get_str(m->g, key, &s, &len) == 0 && !(len == 4 && !memcmp(s, "none", 4))) {
		if (!(len == 6 && !memcmp(s, "linear", 6)))
			return fail(err, errlen, -ENOTSUP, "%s: unsupported rope scaling '%.*s'",
				    path, (int)(len < 32 ? len : 32), s);
		float factor = 1.0f;
		if ((rc = get_float(m->g, arch, "rope.scaling.factor", &factor, path, err, errlen)))
			return rc;
		hp->rope_freq_scale = 1.0f / factor;
	} else {
		/* older files: {arch}.rope.scale_linear */
		float factor = 1.0f;
		if ((rc = get_float(m->g, arch, "rope.scale_linear", &factor, path, err, errlen)))
			return rc;
		hp->rope_freq_scale = 1.0f / factor;
	}
	return 0;
}

static int load_tensors(struct model *m, const char *path, char *err, size_t errlen)
{
	struct model_hparams *hp = &m->hp;
	const struct gguf_tensor *te = gguf_find_tensor(m->g, "token_embd.weight");
	int64_t E = hp->n_embd, hd = hp->n_embd_head;
	int64_t Eq = hp->n_head * hd, Ekv = hp->n_head_kv * hd;
	char name[96];
	int rc;
	int64_t type_count[GGML_TYPE_COUNT] = { 0 };

	if (!te)
		return fail(err, errlen, -EINVAL, "%s: missing tensor token_embd.weight", path);
	hp->n_vocab = te->ne[1];
	if ((rc = get_tensor(m, path, "token_embd.weight", E, hp->n_vocab, true, false, &m->tok_embd, err, errlen)) ||
	    (rc = get_tensor(m, path, "output_norm.weight", E, 0, false, false, &m->out_norm, err, errlen)) ||
	    (rc = get_tensor(m, path, "output.weight", E, hp->n_vocab, true, true, &m->output, err, errlen)))
		return rc;
	hp->tied_output = m->output == NULL;
	if (!m->output)
		m->output = m->tok_embd;
	m->weight_bytes = m->output->nbytes;

	m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
	if (!m->layers)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", path);
	for (int64_t l = 0; l < hp->n_layer; l++) {
		struct layer *L = &m->layers[l];
		const struct {
			const char *suffix;
			int64_t ne0, ne1;
			bool matrix, optional;
			const struct gguf_tensor **dst;
		} want[] = {
			{ "attn_norm.weight", E, 0, false, false, &L->attn_norm },
			{ "attn_q.weight", E, Eq, true, false, &L->wq },
			{ "attn_k.weight", E, Ekv, true, false, &L->wk },
			{ "attn_v.weight", E, Ekv, true, false, &L->wv },
			{ "attn_output.weight", Eq, E, true, false, &L->wo },
			{ "attn_q.bias", Eq, 0, false, !hp->has_qkv_bias, &L->bq },
			{ "attn_k.bias", Ekv, 0, false, !hp->has_qkv_bias, &L->bk },
			{ "attn_v.bias", Ekv, 0, false, !hp->has_qkv_bias, &L->bv },
			{ "ffn_norm.weight", E, 0, false, false, &L->ffn_norm },
			{ "ffn_gate.weight", E, hp->n_ff, true, false, &L->w_gate },
			{ "ffn_up.weight", E, hp->n_ff, true, false, &L->w_up },
			{ "ffn_down.weight", hp->n_ff, E, true, false, &L->w_down },
		};
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			snprintf(name, sizeof(name), "blk.%lld.%s", (long long)l, want[i].suffix);
			if ((rc = get_tensor(m, path, name, want[i].ne0, want[i].ne1, want[i].matrix,
					     want[i].optional, want[i].dst, err, errlen)))
				return rc;
			const struct gguf_tensor *t = *want[i].dst;
			if (t && want[i].matrix) {
				m->weight_bytes += t->nbytes;
				type_count[t->type] += t->ne[0] * t->ne[1];
			}
		}
	}
	m->wtype = GGML_TYPE_F32;
	for (int t = 0; t < GGML_TYPE_COUNT; t++)
		if (type_count[t] > type_count[m->wtype])
			m->wtype = (enum ggml_type)t;
	return 0;
}

int model_load_gguf(struct gguf_file *g, struct tpool *pool, struct model **out,
		    char *err, size_t errlen)
{
	const char *path = gguf_path(g);
	struct model *m = NULL;
	int rc;

	*out = NULL;
	if (!pool) {
		rc = fail(err, errlen, -EINVAL, "%s: no thread pool", path);
		gguf_close(g);
		goto out;
	}
	kern_init();
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
		gguf_close(g);
		goto out;
	}
	m->pool = pool;
	m->g = g;
	if ((rc = load_hparams(m, path, err, errlen)) < 0 ||
	    (rc = load_tensors(m, path, err, errlen)) < 0)
		goto out;
	char terr[256];
	m->tok = tok_new(m->g, terr, sizeof(terr));
	if (!m->tok) {
		rc = fail(err, errlen, -EINVAL, "%s", terr);
		goto out;
	}
	if (tok_n_vocab(m->tok) > m->hp.n_vocab) {
		rc = fail(err, errlen, -EINVAL, "%s: tokenizer has %d tokens, token_embd.weight only %lld rows",
			  path, tok_n_vocab(m->tok), (long long)m->hp.n_vocab);
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	model_free(m);
	return rc;
}

int model_load(const char *path, struct tpool *pool, const struct model_load_opts *opts,
	       struct model **out, char *err, size_t errlen)
{
	struct gguf_open_opts gopts = { 0 };
	struct gguf_file *g = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	/* gguf_open reports these too; saying it here keeps the message short. */
	if (stat(path, &st) < 0) {
		rc = fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = fail(err, errlen, -EISDIR, "%s: is a directory, not a GGUF file", path);
		goto out;
	}
	if (opts) {
		gopts.mlock = opts->mlock;
		gopts.populate = opts->populate;
	}
	if ((rc = gguf_open(path, &gopts, &g, err, errlen)) < 0)
		goto out;
	rc = model_load_gguf(g, pool, out, err, errlen);
out:
	return rc;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	tok_free(m->tok);
	gguf_close(m->g);
	free(m->layers);
	free(m);
}

const struct model_hparams *model_hparams(const struct model *m) { return &m->hp; }
enum model_arch model_arch(const struct model *m) { return m->hp.arch; }
int64_t model_n_vocab(const struct model *m) { return m->hp.n_vocab; }
int64_t model_n_ctx_train(const struct model *m) { return m->hp.n_ctx_train; }
int64_t model_n_embd(const struct model *m) { return m->hp.n_embd; }
int64_t model_n_layer(const struct model *m) { return m->hp.n_layer; }
const struct tok *model_tok(const struct model *m) { return m->tok; }
const struct gguf_file *model_gguf(const struct model *m) { return m->g; }
struct tpool *model_pool(const struct model *m) { return m->pool; }
size_t model_weight_bytes(const struct model *m) { return m->weight_bytes; }
enum ggml_type model_weight_type(const struct model *m) { return m->wtype; }

/* ---------------------------------------------------------------- sessions */

static int slot_of(enum ggml_type wt)
{
	switch (wt) {
	case GGML_TYPE_F32: return 0;
	case GGML_TYPE_F16: return 1;
	case GGML_TYPE_Q8_0: return 2;
	default: return 3; /* Q4_0: load admits nothing else */
	}
}

static void *xalloc(size_t n, size_t *total, bool *oom)
{
	/* 64-byte aligned so SIMD rows and cache lines line up */
	void *p = NULL;
	size_t sz = (n + 63) & ~(size_t)63;
	if (sz == 0)
		sz = 64;
	if (posix_memalign(&p, 64, sz)) {
		*oom = true;
		return NULL;
	}
	memset(p, 0, sz);
	*total += sz;
	return p;
}

int model_ctx_new(struct model *m, const struct model_ctx_opts *opts,
		  struct model_ctx **out, char *err, size_t errlen)
{
	const struct model_hparams *hp = &m->hp;
	struct model_ctx *c = calloc(1, sizeof(*c));
	bool oom = false;
	int rc;

	*out = NULL;
	if (!c)
		return fail(err, errlen, -ENOMEM, "model session: out of memory");
	c->m = m;
	c->n_ctx = opts && opts->n_ctx > 0 ? opts->n_ctx
					    : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
	c->n_batch = opts && opts->n_batch > 0 ? opts->n_batch : 64;
	if (c->n_batch > c->n_ctx)
		c->n_batch = c->n_ctx;
	if (c->n_ctx > ((int64_t)1 << 24)) {
		rc = fail(err, errlen, -EINVAL, "model session: context of %lld positions is too large",
			  (long long)c->n_ctx);
		goto out;
	}
	int64_t B = c->n_batch, E = hp->n_embd, hd = hp->n_embd_head;
	int64_t Eq = hp->n_head * hd, Ekv = hp->n_head_kv * hd, F = hp->n_ff;
	size_t fs = sizeof(float), tot = 0;

	c->kv_bytes = (size_t)hp->n_layer * 2 * (size_t)Ekv * (size_t)c->n_ctx * fs;
	c->kv = xalloc(c->kv_bytes, &tot, &oom);
	c->tokens = xalloc((size_t)c->n_ctx * sizeof(int32_t), &tot, &oom);
	c->x = xalloc((size_t)(B * E) * fs, &tot, &oom);
	c->xn = xalloc((size_t)(B * E) * fs, &tot, &oom);
	c->tmp = xalloc((size_t)(B * E) * fs, &tot, &oom);
	c->q = xalloc((size_t)(B * Eq) * fs, &tot, &oom);
	c->k = xalloc((size_t)(B * Ekv) * fs, &tot, &oom);
	c->v = xalloc((size_t)(B * Ekv) * fs, &tot, &oom);
	c->att = xalloc((size_t)(B * Eq) * fs, &tot, &oom);
	c->gate = xalloc((size_t)(B * F) * fs, &tot, &oom);
	c->up = xalloc((size_t)(B * F) * fs, &tot, &oom);
	c->scores = xalloc((size_t)(hp->n_head * c->n_ctx) * fs, &tot, &oom);
	c->rope_cs = xalloc((size_t)(B * hp->n_rot) * fs, &tot, &oom);
	c->logits = xalloc((size_t)hp->n_vocab * fs, &tot, &oom);
	/* plan: the largest prepared row per slot over the weights that use it */
	size_t slot_row[N_SLOTS] = { 0 };
	int64_t kmax = E > F ? E : F;
	if (Eq > kmax)
		kmax = Eq;
	enum ggml_type types[GGML_TYPE_COUNT];
	int nt = 0;
	bool seen[GGML_TYPE_COUNT] = { false };
	seen[m->output->type] = true;
	types[nt++] = m->output->type;
	for (int64_t l = 0; l < hp->n_layer; l++) {
		const struct layer *L = &m->layers[l];
		const struct gguf_tensor *w[] = { L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down };
		for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
			if (!seen[w[i]->type]) { seen[w[i]->type] = true; types[nt++] = w[i]->type; }
	}
	for (int i = 0; i < nt; i++) {
		size_t sz = kern_prepare_size(types[i], kmax);
		int s = slot_of(types[i]);
		if (sz > slot_row[s])
			slot_row[s] = sz;
	}
	for (int s = 0; s < N_SLOTS; s++)
		if (slot_row[s])
			c->xq[s] = xalloc(slot_row[s] * (size_t)B, &tot, &oom);
	/* private rows for as many threads as the machine has CPUs (a pool
	 * resized beyond that takes the shared path) */
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	c->n_thr = ncpu < 1 ? 1 : ncpu > TPOOL_MAX_THREADS ? TPOOL_MAX_THREADS : (int)ncpu;
	c->thr_row_len = (kmax + 15) & ~(int64_t)15;
	c->thr_row = xalloc((size_t)c->n_thr * (size_t)c->thr_row_len * fs, &tot, &oom);
	for (int s = 0; s < N_SLOTS; s++)
		if (slot_row[s]) {
			c->thr_xq_len[s] = slot_row[s];
			c->thr_xq[s] = xalloc(slot_row[s] * (size_t)c->n_thr, &tot, &oom);
		}
	if (oom) {
		rc = fail(err, errlen, -ENOMEM, "model session: out of memory for %lld positions",
			  (long long)c->n_ctx);
		goto out;
	}
	c->mem_bytes = tot;
	*out = c;
	c = NULL;
	rc = 0;
out:
	model_ctx_free(c);
	return rc;
}

void model_ctx_free(struct model_ctx *c)
{
	if (!c)
		return;
	free(c->kv);
	free(c->tokens);
	free(c->x);
	free(c->xn);
	free(c->tmp);
	free(c->q);
	free(c->k);
	free(c->v);
	free(c->att);
	free(c->gate);
	free(c->up);
	free(c->scores);
	free(c->rope_cs);
	free(c->logits);
	for (int s = 0; s < N_SLOTS; s++) {
		free(c->xq[s]);
		free(c->thr_xq[s]);
	}
	free(c->thr_row);
	free(c);
}

struct model *model_ctx_model(const struct model_ctx *c) { return c->m; }
int64_t model_ctx_n_ctx(const struct model_ctx *c) { return c->n_ctx; }
int64_t model_ctx_n_batch(const struct model_ctx *c) { return c->n_batch; }
int64_t model_ctx_n_past(const struct model_ctx *c) { return c->n_past; }
const int32_t *model_ctx_tokens(const struct model_ctx *c) { return c->tokens; }
size_t model_ctx_mem_bytes(const struct model_ctx *c) { return c->mem_bytes; }
size_t model_ctx_kv_bytes(const struct model_ctx *c) { return c->kv_bytes; }
const float *model_ctx_logits(const struct model_ctx *c) { return c->have_logits ? c->logits : NULL; }

void model_ctx_truncate(struct model_ctx *c, int64_t n_keep)
{
	if (n_keep < 0)
		n_keep = 0;
	if (n_keep < c->n_past) {
		c->n_past = n_keep;
		c->have_logits = false;
	}
}

void model_ctx_reset(struct model_ctx *c)
{
	model_ctx_truncate(c, 0);
}

int64_t model_ctx_common_prefix(const struct model_ctx *c, const int32_t *tokens, int64_t n)
{
	int64_t i = 0;
	while (i < n && i < c->n_past && c->tokens[i] == tokens[i])
		i++;
	return i;
}

/* ---------------------------------------------------------------- forward */

/* Matrix W (rows out of k) times the inputs prepared for W's type in
 * xq[slot]: rows [r0,r1) of Y[j][r] (ldy floats apart) for j < B. */
static void mat_rows(void *const xq[N_SLOTS], const struct gguf_tensor *W, int64_t B,
		     float *y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t k = W->ne[0];
	const void *x = xq[slot_of(W->type)];
	if (B == 1)
		kern_matvec(W->type, W->data, x, y, k, r0, r1);
	else
		kern_matmul(W->type, W->data, x, B, y, ldy, k, r0, r1);
}

/* Prepare one input row (k floats at src) as row j of the buffers xq[],
 * once for each distinct weight type among ws[0..nw). */
static void prepare_row(void *const xq[N_SLOTS], const float *src, int64_t j, int64_t k,
			const struct gguf_tensor *const *ws, int nw)
{
	bool done[N_SLOTS] = { false };
	for (int i = 0; i < nw; i++) {
		int s = slot_of(ws[i]->type);
		if (done[s])
			continue;
		done[s] = true;
		size_t st = kern_prepare_size(ws[i]->type, k);
		kern_prepare(ws[i]->type, src, (char *)xq[s] + (size_t)j * st, k);
	}
}

/* What a preparation stage does to its input rows before preparing them. */
enum prep_op {
	PREP_NORM,  /* rmsnorm(src) * w */
	PREP_SILU,  /* silu(src) * up */
	PREP_PLAIN, /* src as is */
};

struct prep {
	enum prep_op op;
	float *src;          /* [B][k] rows */
	int64_t k;
	const float *w;      /* PREP_NORM: norm weights; PREP_SILU: the up rows [B][k] */
	const struct gguf_tensor *const *ws; /* the matrices that read the result */
	int nw;
	int64_t first;       /* rows [first, B) are prepared, as rows 0.. */
};

/* Prepare the input of the next products and return (in xq) where it is.
 * For a single row, with a private buffer per thread, every thread does the
 * (small) work itself into its own buffer and no barrier is needed: a
 * generated token then meets 5 barriers per layer instead of 10. Otherwise
 * rows are shared out, written to the session's shared buffers, and a
 * barrier follows. Either way the same operations in the same order produce
 * each value, so results do not depend on the path. */
static void prep_stage(struct model_ctx *c, int ith, int nth, int64_t B, const struct prep *p,
		       void *xq[N_SLOTS])
{
	const struct model_hparams *hp = &c->m->hp;
	int64_t n = B - p->first;
	if (n == 1 && nth <= c->n_thr && !c->job_hidden) {
		float *tmp = c->thr_row + (size_t)ith * (size_t)c->thr_row_len;
		const float *src = p->src + p->first * p->k;
		if (p->op == PREP_NORM)
			ops_rmsnorm(tmp, src, p->w, p->k, hp->rms_eps);
		else if (p->op == PREP_SILU)
			ops_silu_mul_to(tmp, src, p->w + p->first * p->k, p->k);
		else
			memcpy(tmp, src, (size_t)p->k * sizeof(float));
		for (int s = 0; s < N_SLOTS; s++)
			xq[s] = c->thr_xq[s] ? (char *)c->thr_xq[s] + (size_t)ith * c->thr_xq_len[s] : NULL;
		prepare_row(xq, tmp, 0, p->k, p->ws, p->nw);
		return;
	}
	for (int s = 0; s < N_SLOTS; s++)
		xq[s] = c->xq[s];
	int64_t j;
	while ((j = tpool_chunk_next(c->m->pool)) < n) {
		int64_t r = p->first + j;
		float *row = p->src + r * p->k;
		float *dst = row;
		if (p->op == PREP_NORM) {
			dst = c->xn + r * hp->n_embd; /* k == n_embd */
			ops_rmsnorm(dst, row, p->w, p->k, hp->rms_eps);
		} else if (p->op == PREP_SILU) {
			ops_silu_mul_to(row, row, p->w + r * p->k, p->k);
		}
		prepare_row(xq, dst, j, p->k, p->ws, p->nw);
	}
	tpool_barrier(c->m->pool, ith);
}

/* A stage of products: up to 3 matrices sharing their input, split into
 * blocks of rows[i] rows; chunk index ch maps to (matrix, row block). */
struct mgroup {
	const struct gguf_tensor *w[3];
	float *y[3];
	int64_t ldy[3];
	int64_t rows[3];         /* rows per chunk; 0: CHUNK_ROWS */
	const struct gguf_tensor *bias[3];
	float *resid[3];         /* when set: resid[j][r] += y[j][r] after the product */
	int n;
};

/* y[i] += x[i]; restrict lets the compiler vectorize without alias checks */
static void add_to(float *restrict y, const float *restrict x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}

/* Runs the stage; after each chunk calls done(c, i, r0, r1) when set. */
static void run_group(struct model_ctx *c, void *const xq[N_SLOTS], const struct mgroup *g,
		      int64_t B, void (*done)(struct model_ctx *c, int i, int64_t r0, int64_t r1, void *arg),
		      void *arg)
{
	struct tpool *pool = c->m->pool;
	int64_t nch[3], total = 0, per[3];
	for (int i = 0; i < g->n; i++) {
		per[i] = g->rows[i] ? g->rows[i] : CHUNK_ROWS;
		nch[i] = (g->w[i]->ne[1] + per[i] - 1) / per[i];
		total += nch[i];
	}
	for (;;) {
		int64_t ch = tpool_chunk_next(pool);
		if (ch >= total)
			break;
		int i = 0;
		while (ch >= nch[i]) {
			ch -= nch[i];
			i++;
		}
		int64_t rows = g->w[i]->ne[1];
		int64_t r0 = ch * per[i], r1 = r0 + per[i] < rows ? r0 + per[i] : rows;
		mat_rows(xq, g->w[i], B, g->y[i], g->ldy[i], r0, r1);
		if (g->bias[i]) {
			const float *b = g->bias[i]->data;
			for (int64_t j = 0; j < B; j++)
				add_to(g->y[i] + j * g->ldy[i] + r0, b + r0, r1 - r0);
		}
		if (g->resid[i]) {
			for (int64_t j = 0; j < B; j++)
				add_to(g->resid[i] + j * g->ldy[i] + r0, g->y[i] + j * g->ldy[i] + r0, r1 - r0);
		}
		if (done)
			done(c, i, r0, r1, arg);
	}
}

/* After a K or V chunk (one kv head's rows): rotary on K, both into the
 * cache at the batch's positions. */
struct kv_store {
	float *kc, *vc; /* this layer's [kv head][n_ctx][hd] */
};

static void kv_chunk_done(struct model_ctx *c, int i, int64_t r0, int64_t r1, void *arg)
{
	const struct model_hparams *hp = &c->m->hp;
	const struct kv_store *kv = arg;
	int64_t hd = hp->n_embd_head, Ekv = hp->n_head_kv * hd, h = r0 / hd;
	(void)r1;
	if (i == 0)
		return; /* Q: rotated by the attention stage, head by head */
	for (int64_t j = 0; j < c->job_n; j++) {
		int64_t p = c->job_pos0 + j;
		float *src = (i == 1 ? c->k : c->v) + j * Ekv + h * hd;
		if (i == 1)
			ops_rope(src, 1, hd, hp->n_rot, c->rope_cs + j * hp->n_rot,
				 hp->rope_mode == MODEL_ROPE_NEOX);
		memcpy((i == 1 ? kv->kc : kv->vc) + (h * c->n_ctx + p) * hd, src, (size_t)hd * sizeof(float));
	}
}

static void fwd_worker(void *arg, int ith, int nth)
{
	struct model_ctx *c = arg;
	struct model *m = c->m;
	const struct model_hparams *hp = &m->hp;
	struct tpool *pool = m->pool;
	const int64_t B = c->job_n, pos0 = c->job_pos0;
	const int64_t E = hp->n_embd, hd = hp->n_embd_head, F = hp->n_ff;
	const int64_t Eq = hp->n_head * hd, Ekv = hp->n_head_kv * hd;
	const int64_t n_ctx = c->n_ctx, group = hp->n_head / hp->n_head_kv;
	const float scale = 1.0f / sqrtf((float)hd);
	const int neox = hp->rope_mode == MODEL_ROPE_NEOX;
	void *xq[N_SLOTS];
	int64_t j;

	/* embeddings + rotary tables, one token per chunk */
	while ((j = tpool_chunk_next(pool)) < B) {
		const struct gguf_tensor *te = m->tok_embd;
		size_t rs = ggml_row_size(te->type, E);
		kern_dequantize_row(te->type, (const char *)te->data + rs * (size_t)c->job_tokens[j],
				    c->x + j * E, E);
		ops_rope_table(c->rope_cs + j * hp->n_rot, pos0 + j, hp->n_rot,
			       hp->rope_freq_base, hp->rope_freq_scale);
	}
	tpool_barrier(pool, ith);

	for (int64_t l = 0; l < hp->n_layer; l++) {
		const struct layer *L = &m->layers[l];
		struct kv_store kv = { .kc = c->kv + (size_t)l * 2 * (size_t)(Ekv * n_ctx) };
		kv.vc = kv.kc + (size_t)(Ekv * n_ctx);

		/* attention norm | Q, K, V (+ bias; K rotated; K, V cached) */
		const struct gguf_tensor *qkv[3] = { L->wq, L->wk, L->wv };
		struct prep p1 = { .op = PREP_NORM, .src = c->x, .k = E, .w = L->attn_norm->data,
				   .ws = qkv, .nw = 3 };
		prep_stage(c, ith, nth, B, &p1, xq);
		struct mgroup g1 = {
			.w = { L->wq, L->wk, L->wv },
			.y = { c->q, c->k, c->v },
			.ldy = { Eq, Ekv, Ekv },
			.rows = { CHUNK_ROWS, hd, hd },
			.bias = { L->bq, L->bk, L->bv },
			.n = 3,
		};
		run_group(c, xq, &g1, B, kv_chunk_done, &kv);
		tpool_barrier(pool, ith);

		/* attention, one query head per chunk (rotated here), every token */
		int64_t h;
		while ((h = tpool_chunk_next(pool)) < hp->n_head) {
			int64_t kvh = h / group;
			float *sc = c->scores + h * n_ctx;
			for (j = 0; j < B; j++) {
				float *qh = c->q + j * Eq + h * hd;
				ops_rope(qh, 1, hd, hp->n_rot, c->rope_cs + j * hp->n_rot, neox);
				ops_attn_head(c->att + j * Eq + h * hd, qh, kv.kc + kvh * n_ctx * hd,
					      kv.vc + kvh * n_ctx * hd, hd, pos0 + j + 1, hd, scale, sc);
			}
		}
		tpool_barrier(pool, ith);

		/* Wo + residual */
		const struct gguf_tensor *wo1[1] = { L->wo };
		struct prep p2 = { .op = PREP_PLAIN, .src = c->att, .k = Eq, .ws = wo1, .nw = 1 };
		prep_stage(c, ith, nth, B, &p2, xq);
		struct mgroup g2 = {
			.w = { L->wo }, .y = { c->tmp }, .ldy = { E }, .resid = { c->x }, .n = 1,
		};
		run_group(c, xq, &g2, B, NULL, NULL);
		tpool_barrier(pool, ith);

		/* FFN: norm | gate, up | silu(gate) * up | down + residual */
		const struct gguf_tensor *gu[2] = { L->w_gate, L->w_up };
		struct prep p3 = { .op = PREP_NORM, .src = c->x, .k = E, .w = L->ffn_norm->data,
				   .ws = gu, .nw = 2 };
		prep_stage(c, ith, nth, B, &p3, xq);
		struct mgroup g3 = {
			.w = { L->w_gate, L->w_up }, .y = { c->gate, c->up }, .ldy = { F, F }, .n = 2,
		};
		run_group(c, xq, &g3, B, NULL, NULL);
		tpool_barrier(pool, ith);

		const struct gguf_tensor *dn[1] = { L->w_down };
		struct prep p4 = { .op = PREP_SILU, .src = c->gate, .k = F, .w = c->up, .ws = dn, .nw = 1 };
		prep_stage(c, ith, nth, B, &p4, xq);
		struct mgroup g4 = {
			.w = { L->w_down }, .y = { c->tmp }, .ldy = { E }, .resid = { c->x }, .n = 1,
		};
		run_group(c, xq, &g4, B, NULL, NULL);
		tpool_barrier(pool, ith);
	}

	/* output norm of the rows that need it, then the logits (or stop there
	 * for embeddings: the normalized rows are in xn) */
	const struct gguf_tensor *ow[1] = { m->output };
	bool all = c->job_logits_all || c->job_hidden;
	struct prep p5 = { .op = PREP_NORM, .src = c->x, .k = E, .w = m->out_norm->data,
			   .ws = ow, .nw = c->job_hidden ? 0 : 1, .first = all ? 0 : B - 1 };
	prep_stage(c, ith, nth, B, &p5, xq);
	if (c->job_hidden)
		return; /* tpool_run's end is the last barrier */
	struct mgroup g5 = {
		.w = { m->output },
		.y = { c->job_logits_all ? c->job_logits_all : c->logits },
		.ldy = { hp->n_vocab },
		.n = 1,
	};
	run_group(c, xq, &g5, B - p5.first, NULL, NULL);
}

static int check_eval(struct model_ctx *c, const int32_t *tokens, int64_t n, int64_t pos0,
		      char *err, size_t errlen)
{
	if (n < 1 || !tokens)
		return fail(err, errlen, -EINVAL, "eval: no tokens");
	if (pos0 < 0 || pos0 > c->n_past)
		return fail(err, errlen, -EINVAL, "eval: position %lld is past the %lld cached tokens",
			    (long long)pos0, (long long)c->n_past);
	if (n > c->n_ctx - pos0)
		return fail(err, errlen, -ENOSPC, "%lld tokens do not fit the context of %lld (%lld in use)",
			    (long long)n, (long long)c->n_ctx, (long long)pos0);
	for (int64_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
			return fail(err, errlen, -EINVAL, "eval: token id %d out of range (vocabulary %lld)",
				    tokens[i], (long long)c->m->hp.n_vocab);
	return 0;
}

/* One forward pass over n <= n_batch tokens at pos0. */
static void forward(struct model_ctx *c, const int32_t *tokens, int64_t n, int64_t pos0,
		    float *logits_all, bool hidden)
{
	c->job_tokens = tokens;
	c->job_n = n;
	c->job_pos0 = pos0;
	c->job_logits_all = logits_all;
	c->job_hidden = hidden;
	memcpy(c->tokens + pos0, tokens, (size_t)n * sizeof(int32_t));
	tpool_run(c->m->pool, fwd_worker, c);
	c->n_past = pos0 + n;
}

int model_eval(struct model_ctx *c, const int32_t *tokens, int64_t n, int64_t pos0,
	       float *logits_all, char *err, size_t errlen)
{
	int rc = check_eval(c, tokens, n, pos0, err, errlen);
	if (rc < 0)
		return rc;
	c->n_past = pos0;
	c->have_logits = false;
	int64_t V = c->m->hp.n_vocab;
	for (int64_t i = 0; i < n; i += c->n_batch) {
		int64_t b = n - i < c->n_batch ? n - i : c->n_batch;
		bool last = i + b == n;
		/* every batch needs only its last row's logits unless all are wanted,
		 * and only the final batch's last row matters then */
		if (logits_all)
			forward(c, tokens + i, b, pos0 + i, logits_all + i * V, false);
		else /* earlier batches only fill the cache */
			forward(c, tokens + i, b, pos0 + i, NULL, !last);
		if (logits_all && last)
			memcpy(c->logits, logits_all + (n - 1) * V, (size_t)V * sizeof(float));
	}
	c->have_logits = true;
	return 0;
}

int model_embed(struct model_ctx *c, const int32_t *tokens, int64_t n,
		enum model_pooling pooling, float *out, int64_t dim, char *err, size_t errlen)
{
	int64_t E = c->m->hp.n_embd;
	if (dim != E)
		return fail(err, errlen, -EINVAL, "embed: output has %lld floats, the model %lld",
			    (long long)dim, (long long)E);
	if (pooling != MODEL_POOL_MEAN && pooling != MODEL_POOL_LAST)
		return fail(err, errlen, -EINVAL, "embed: unknown pooling %d", (int)pooling);
	model_ctx_reset(c);
	int rc = check_eval(c, tokens, n, 0, err, errlen);
	if (rc < 0)
		return rc;
	/* sum into out (the mean's 1/n vanishes in the L2 normalization) */
	for (int64_t d = 0; d < E; d++)
		out[d] = 0;
	for (int64_t i = 0; i < n; i += c->n_batch) {
		int64_t b = n - i < c->n_batch ? n - i : c->n_batch;
		forward(c, tokens + i, b, i, NULL, true);
		if (pooling == MODEL_POOL_MEAN) {
			for (int64_t j = 0; j < b; j++)
				for (int64_t d = 0; d < E; d++)
					out[d] += c->xn[j * E + d];
		} else if (i + b == n) {
			memcpy(out, c->xn + (b - 1) * E, (size_t)E * sizeof(float));
		}
	}
	double ss = 0;
	for (int64_t d = 0; d < E; d++)
		ss += (double)out[d] * out[d];
	float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
	for (int64_t d = 0; d < E; d++)
		out[d] *= inv;
	c->have_logits = false;
	return 0;
}
