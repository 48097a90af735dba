/*
 * fuzz_model.c: libFuzzer target over model loading and one forward pass.
 *
 * The input is a GGUF file (seeds: tiny llama/qwen2 models written by
 * `dify-edge gguf write-random`). It is opened from memory and handed to
 * model_load_gguf(); when the model loads, a small session evaluates a few
 * tokens (batched and one by one) and computes an embedding. Beyond "no
 * crash, no sanitizer report": a refused file leaves *out NULL and a
 * message; an accepted one gives n_past as evaluated and logits for the
 * last token. Values are not checked (fuzzed weights may be NaN).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/model.h"
#include "dify-edge-core/runtime/tpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tpool *pool;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct gguf_file *g = NULL;
	struct model *m = NULL;
	struct model_ctx *c = NULL;

	if (!pool) {
		pool = tpool_new(2, err, sizeof(err));
		if (!pool)
			abort();
	}
	err[0] = 0;
	if (gguf_open_mem(data, size, "fuzz.gguf", &g, err, sizeof(err)) < 0)
		return 0;
	if (model_load_gguf(g, pool, &m, err, sizeof(err)) < 0) {
		if (m || !err[0])
			abort(); /* refused: no model, and a message */
		return 0;
	}
	struct model_ctx_opts co = { .n_ctx = 8, .n_batch = 2 };
	if (model_ctx_new(m, &co, &c, err, sizeof(err)) == 0) {
		int64_t V = model_n_vocab(m);
		int32_t toks[3] = { 0, (int32_t)(1 % V), (int32_t)(V - 1) };
		if (model_eval(c, toks, 3, 0, NULL, err, sizeof(err)) != 0 || model_ctx_n_past(c) != 3 ||
		    !model_ctx_logits(c))
			abort();
		if (model_eval(c, toks, 1, 3, NULL, err, sizeof(err)) != 0 || model_ctx_n_past(c) != 4)
			abort();
		/* past the context: refused, cache unchanged */
		int32_t many[8] = { 0 };
		if (model_eval(c, many, 8, 4, NULL, err, sizeof(err)) == 0)
			abort();
		float *e = malloc(sizeof(float) * (size_t)model_n_embd(m));
		if (e && model_embed(c, toks, 2, MODEL_POOL_MEAN, e, model_n_embd(m), err, sizeof(err)) != 0)
			abort();
		free(e);
	}
	model_ctx_free(c);
	model_free(m);
	return 0;
}
