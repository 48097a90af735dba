/*
 * gen_gguf_seeds.c: writes the tiny seed corpus of fuzz_gguf with the
 * project's GGUF writer (tests/fuzz/runtime/fuzz_gguf.corpus/). Not built by
 * make; regenerate with:
 *   cc -std=gnu11 -I. -o /tmp/gen tests/fuzz/runtime/gen_gguf_seeds.c \
 *      dify-edge-core/runtime/gguf.c dify-edge-core/runtime/gguf_write.c \
 *      && /tmp/gen tests/fuzz/runtime/fuzz_gguf.corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/gguf.h"

static uint8_t *le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static int save(struct gguf_writer *w, const char *dir, const char *name)
{
	char path[4096], err[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (gguf_writer_write(w, path, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	gguf_writer_free(w);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const toks[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81h", "i" };
	static const float scores[] = { 0, 0, 0, -1, -2 };
	static const int32_t types[] = { 2, 3, 3, 1, 1 };
	static uint8_t data[4096];
	int64_t ne2[2] = { 32, 2 }, ne1[1] = { 8 };
	uint8_t enc[256], *p;
	struct gguf_writer *w;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_gguf_seeds DIR\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31);

	/* a small model: scalars, a vocabulary, tensors of four types */
	w = gguf_writer_new();
	gguf_writer_set_str(w, "general.architecture", "llama");
	gguf_writer_set_u32(w, "llama.block_count", 1);
	gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
	gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
	gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 5);
	gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 5);
	gguf_writer_add_tensor(w, "a", GGML_TYPE_Q8_0, 2, ne2, data);
	gguf_writer_add_tensor(w, "b", GGML_TYPE_Q4_0, 2, ne2, data);
	gguf_writer_add_tensor(w, "c", GGML_TYPE_F16, 1, ne1, data);
	gguf_writer_add_tensor(w, "d", GGML_TYPE_F32, 1, ne1, data);
	rc |= save(w, argv[1], "model.gguf");

	/* vocab only (no tensors, ends after the infos), version 2 */
	w = gguf_writer_new();
	gguf_writer_set_version(w, 2);
	gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
	rc |= save(w, argv[1], "vocab-v2.gguf");

	/* every scalar type, nested arrays, alignment 64 */
	w = gguf_writer_new();
	gguf_writer_set_alignment(w, 64);
	gguf_writer_set_i32(w, "i32", -1);
	gguf_writer_set_u64(w, "u64", 1ULL << 40);
	gguf_writer_set_i64(w, "i64", -7);
	gguf_writer_set_f64(w, "f64", 0.5);
	gguf_writer_set_raw(w, "u8", GGUF_TYPE_UINT8, "\x07", 1);
	gguf_writer_set_raw(w, "i8", GGUF_TYPE_INT8, "\xf0", 1);
	gguf_writer_set_raw(w, "u16", GGUF_TYPE_UINT16, "\x01\x02", 2);
	gguf_writer_set_raw(w, "i16", GGUF_TYPE_INT16, "\x01\x82", 2);
	/* [[u16 1, 2], [u16 3]] */
	p = le64(le32(enc, GGUF_TYPE_ARRAY), 2);
	p = le64(le32(p, GGUF_TYPE_UINT16), 2);
	memcpy(p, "\x01\x00\x02\x00", 4);
	p += 4;
	p = le64(le32(p, GGUF_TYPE_UINT16), 1);
	*p++ = 3;
	*p++ = 0;
	gguf_writer_set_raw(w, "nested", GGUF_TYPE_ARRAY, enc, (size_t)(p - enc));
	p = le64(le32(enc, GGUF_TYPE_ARRAY), 1);
	p = le64(le32(p, GGUF_TYPE_STRING), 2);
	p = le64(p, 1);
	*p++ = 'x';
	p = le64(p, 0);
	gguf_writer_set_raw(w, "strs", GGUF_TYPE_ARRAY, enc, (size_t)(p - enc));
	gguf_writer_add_tensor(w, "t", GGML_TYPE_Q6_K, 1, (int64_t[]){ 256 }, data);
	rc |= save(w, argv[1], "types.gguf");
	return rc;
}
