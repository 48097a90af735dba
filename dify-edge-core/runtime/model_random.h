/*
 * model_random.h: write a complete llama / qwen2 GGUF model with random
 * weights and a synthetic SentencePiece vocabulary, for the demo, the tests
 * and the benchmarks (`dify-edge gguf write-random`).
 *
 * The file is what llama.cpp's converter would write for such a model: the
 * {arch}.* hyper-parameters, tokenizer.ggml.* (model "llama": <unk>, <s>,
 * </s>, the 256 byte tokens <0x00>..<0xFF>, then pieces with decreasing
 * scores: "▁", letters, digits, punctuation, common English words with and
 * without "▁", then letter pairs/triples/quads until the vocabulary is
 * full), token_embd / blk.N.* / output_norm / output tensors (output absent
 * when tied), qwen2's q/k/v biases. Matrices are stored in the chosen type
 * (quantized with kern_quantize_row); norms and biases are f32.
 *
 * Values: matrices uniform with standard deviation 1/sqrt(k) (k = input
 * width) so activations keep unit scale; norm weights 1 + U(-0.1, 0.1);
 * biases U(-0.1, 0.1). The PRNG is sampler_rng (xoshiro256**) seeded with
 * `seed`, so a spec and a seed always give the same bytes.
 */
#ifndef MODEL_RANDOM_H
#define MODEL_RANDOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/model.h"

#define MODEL_RANDOM_MAX_OVERRIDES 4

struct model_random_spec {
	enum model_arch arch;
	enum ggml_type type;   /* matrices: F32, F16, Q8_0, Q4_0 */
	int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx, n_vocab;
	bool tied;             /* no output.weight */
	uint64_t seed;
	/* testing loaders: write general.architecture (and the {arch}.* keys)
	 * under this name instead (NULL: the arch's name) */
	const char *arch_name;
	/* testing loaders: store these tensors in another type; a type the
	 * kernels cannot quantize gets random bytes */
	struct {
		const char *name;
		enum ggml_type type;
	} override[MODEL_RANDOM_MAX_OVERRIDES];
	int n_override;
};

/* llama, q8_0, layers=2,embd=64,ff=192,heads=4,kv_heads=2,ctx=256,
 * vocab=512, untied, seed 1. */
void model_random_defaults(struct model_random_spec *s);

/* Apply a --dims spec: a preset name ("tiny", "qwen2-0.5b") and/or
 * comma-separated key=value pairs with keys layers, embd, ff, heads,
 * kv_heads, ctx, vocab, tied (0/1). Later entries win: "qwen2-0.5b,layers=2". */
int model_random_parse_dims(struct model_random_spec *s, const char *dims,
			    char *err, size_t errlen);

/* A type by its ggml name ("f32", "q8_0", "q4_K", case-insensitive);
 * -EINVAL when unknown. */
int model_random_parse_type(const char *name, enum ggml_type *out);

/* Check the spec (divisibility by heads and by the type's block) and write
 * PATH. Needs memory for the quantized model plus one f32 matrix. */
int model_random_write(const struct model_random_spec *s, const char *path,
		       char *err, size_t errlen);

#endif /* MODEL_RANDOM_H */
