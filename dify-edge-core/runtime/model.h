/*
 * model.h: llama / qwen2 transformer inference over a GGUF file mapped
 * read-only.
 *
 * DESIGN
 * A `struct model` is the read-only part: the gguf_file (the mapping), the
 * hyper-parameters read from `{arch}.*` metadata, pointers to every weight
 * tensor IN the mapping (nothing is copied: a 500 MB file costs 500 MB of
 * page cache, shared, and only the pages touched become resident), the
 * tokenizer, and a borrowed thread pool. Many sessions may share one model.
 *
 * A `struct model_ctx` is one session: its KV cache (n_ctx positions, f32,
 * per layer), the token ids the cache holds (for prefix reuse), and every
 * work buffer a forward pass needs for up to n_batch tokens, sized once by a
 * plan step at creation, so model_eval() allocates nothing.
 *
 * A forward pass is one tpool_run(): stages (embedding lookup, RMSNorm +
 * activation quantization, Q/K/V products, rotary + KV store, attention per
 * head, output projection + residual, FFN ...) are separated by
 * tpool_barrier(), and matrix rows are claimed in fixed-size chunks with
 * tpool_chunk_next(), so results do not depend on the number of threads.
 * One token uses kern_matvec(); a prompt batch uses kern_matmul().
 *
 * Threading: a model may be used by several sessions, but the calls that run
 * a forward pass (model_eval, model_embed) on the same pool take turns inside
 * tpool_run(). A model_ctx is used by one thread at a time. The pool belongs
 * to the caller, who may tpool_resize() it at any time (it applies between
 * runs); it must outlive the model.
 *
 * Errors: functions return 0 (or a count) or a negative errno, and write one
 * line into (err, errlen) when given, e.g.
 *   "m.gguf: unsupported tensor type q4_K for blk.0.attn_q.weight".
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/tokenizer.h"
#include "dify-edge-core/runtime/tpool.h"

struct model;
struct model_ctx;

enum model_arch {
	MODEL_ARCH_LLAMA = 1,
	MODEL_ARCH_QWEN2 = 2,
};

/* How rotary embedding pairs dimensions (ggml's modes). */
enum model_rope_mode {
	MODEL_ROPE_NORMAL = 0, /* pairs (2i, 2i+1): llama as stored in GGUF */
	MODEL_ROPE_NEOX = 2,   /* pairs (i, i + n_rot/2): qwen2 */
};

struct model_hparams {
	enum model_arch arch;
	int64_t n_vocab;
	int64_t n_ctx_train;   /* {arch}.context_length */
	int64_t n_embd;        /* {arch}.embedding_length */
	int64_t n_layer;       /* {arch}.block_count */
	int64_t n_ff;          /* {arch}.feed_forward_length */
	int64_t n_head;        /* {arch}.attention.head_count */
	int64_t n_head_kv;     /* {arch}.attention.head_count_kv (default n_head) */
	int64_t n_embd_head;   /* n_embd / n_head */
	int64_t n_rot;         /* {arch}.rope.dimension_count (default n_embd_head) */
	float rms_eps;         /* {arch}.attention.layer_norm_rms_epsilon */
	float rope_freq_base;  /* {arch}.rope.freq_base (default 10000) */
	float rope_freq_scale; /* 1/{arch}.rope.scaling.factor for "linear", else 1 */
	enum model_rope_mode rope_mode;
	bool tied_output;      /* no output.weight: logits use token_embd */
	bool has_qkv_bias;
};

struct model_load_opts {
	bool mlock;    /* lock the mapping in RAM (best effort) */
	bool populate; /* fault every page in at load (MAP_POPULATE) */
};

/* Open PATH, validate it and build the model. pool is borrowed (not owned)
 * and must outlive the model. opts may be NULL. On failure *out is NULL and
 * err holds one line; the status is -ENOENT (missing file), -EISDIR,
 * -EINVAL (malformed GGUF or model), -ENOTSUP (architecture, tensor type or
 * rope scaling not supported), -ENOMEM. */
int model_load(const char *path, struct tpool *pool,
	       const struct model_load_opts *opts, struct model **out,
	       char *err, size_t errlen);
/* The same over a gguf_file already open (from gguf_open or gguf_open_mem:
 * fuzzing, tests). The model takes ownership of g: it is closed by
 * model_free(), or at once when loading fails. */
int model_load_gguf(struct gguf_file *g, struct tpool *pool, struct model **out,
		    char *err, size_t errlen);
void model_free(struct model *m); /* NULL is a no-op; free the ctxs first */

const struct model_hparams *model_hparams(const struct model *m);
enum model_arch model_arch(const struct model *m);
const char *model_arch_name(enum model_arch a); /* "llama", "qwen2" */
int64_t model_n_vocab(const struct model *m);
int64_t model_n_ctx_train(const struct model *m);
int64_t model_n_embd(const struct model *m);
int64_t model_n_layer(const struct model *m);
/* Borrowed pointers, valid for the model's lifetime. */
const struct tok *model_tok(const struct model *m);
const struct gguf_file *model_gguf(const struct model *m);
struct tpool *model_pool(const struct model *m);
/* Bytes of weight tensor data one generated token reads (every layer plus
 * the output matrix): the traffic that bounds generation speed. */
size_t model_weight_bytes(const struct model *m);
/* The most common weight type of the blocks' matrices (for display). */
enum ggml_type model_weight_type(const struct model *m);

/* ---- sessions ---- */

struct model_ctx_opts {
	int64_t n_ctx;   /* KV positions; 0: min(n_ctx_train, 4096) */
	int64_t n_batch; /* tokens per forward pass; 0: 64. Longer inputs are
			  * processed in batches of this size. */
};

/* Create a session; opts may be NULL. Allocates the KV cache and all work
 * buffers now (see model_ctx_mem_bytes). */
int model_ctx_new(struct model *m, const struct model_ctx_opts *opts,
		  struct model_ctx **out, char *err, size_t errlen);
void model_ctx_free(struct model_ctx *c); /* NULL is a no-op */

struct model *model_ctx_model(const struct model_ctx *c);
int64_t model_ctx_n_ctx(const struct model_ctx *c);
int64_t model_ctx_n_batch(const struct model_ctx *c);
/* Positions currently in the KV cache (the next eval starts here). */
int64_t model_ctx_n_past(const struct model_ctx *c);
/* The token ids held in the cache, n_past of them. */
const int32_t *model_ctx_tokens(const struct model_ctx *c);
/* Bytes allocated by the session: KV cache + work buffers. */
size_t model_ctx_mem_bytes(const struct model_ctx *c);
size_t model_ctx_kv_bytes(const struct model_ctx *c);

/* Forget positions >= n_keep (keep a prefix for reuse). n_keep is clamped to
 * [0, n_past]. Cheap: nothing is cleared. */
void model_ctx_truncate(struct model_ctx *c, int64_t n_keep);
void model_ctx_reset(struct model_ctx *c); /* = truncate(c, 0) */
/* How many leading ids of tokens[0..n) equal the cached ones. */
int64_t model_ctx_common_prefix(const struct model_ctx *c,
				const int32_t *tokens, int64_t n);

/* Run tokens[0..n) at positions pos0..pos0+n-1 (pos0 <= n_past; positions
 * >= pos0 are forgotten first) and append them to the cache.
 * logits_all: NULL, or n * n_vocab floats receiving the logits of every
 * token (row i = after token i). Either way the last token's logits are
 * kept in the session (model_ctx_logits).
 * Errors: -EINVAL (n < 1, a token id outside the vocabulary, pos0 > n_past),
 * -ENOSPC (pos0 + n > n_ctx: "N tokens do not fit the context of M"). */
int model_eval(struct model_ctx *c, const int32_t *tokens, int64_t n,
	       int64_t pos0, float *logits_all, char *err, size_t errlen);
/* The logits (n_vocab floats) of the last token evaluated; valid until the
 * next call on this session. NULL before any eval. */
const float *model_ctx_logits(const struct model_ctx *c);

enum model_pooling {
	MODEL_POOL_MEAN = 0, /* mean of every token's final hidden state */
	MODEL_POOL_LAST = 1, /* the last token's (decoder models' usual choice) */
};

/* Embedding of tokens[0..n): the final hidden states (after output_norm)
 * pooled, then L2-normalized, written to out[0..dim) (dim must be n_embd).
 * Resets the session's cache (it runs the tokens from position 0) and leaves
 * them in it. Skips the output matrix. Errors as model_eval. */
int model_embed(struct model_ctx *c, const int32_t *tokens, int64_t n,
		enum model_pooling pooling, float *out, int64_t dim,
		char *err, size_t errlen);

#endif /* MODEL_H */
