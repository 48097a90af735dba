/*
 * fuzz_tokenizer.c: libFuzzer target over tok_encode / tok_decode.
 *
 * Vocabularies: the real LLaMA SPM and GPT-2 BPE vocabularies from
 * $TESTDATA (or ../shared/testdata) when present, else small ones written
 * with the GGUF writer (an SPM vocabulary with byte tokens, a qwen2-style
 * BPE vocabulary with the 256 byte characters and a few merges).
 *
 * The first input byte picks the vocabulary and the flags (add_bos,
 * parse_special); the rest is the text. Properties checked beyond "no
 * crash, no sanitizer report":
 *  - the count is the same whatever the buffer size (cap 0, then exact);
 *  - every id is in range;
 *  - BPE always, SPM without parse_special for valid UTF-8 without U+2581:
 *    decoding with render_special gives the text back (after the BOS);
 *  - BPE refuses exactly the texts that are not valid UTF-8;
 *  - SPM word-by-word merging (tok_spm_chunks_ok) equals whole-text merging.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/tokenizer.h"
#include "dify-edge-core/runtime/tokenizer_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gguf_file *files[2];
static struct tok *toks[2]; /* 0: SPM, 1: BPE */

static struct tok *open_path(const char *path, struct gguf_file **g)
{
	char err[512];
	if (gguf_open(path, NULL, g, err, sizeof(err)) < 0)
		return NULL;
	struct tok *t = tok_new(*g, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", err);
		abort();
	}
	return t;
}

static struct tok *open_real(const char *name, struct gguf_file **g)
{
	const char *dirs[] = { getenv("TESTDATA"), "../shared/testdata", "/work/shared/testdata" };
	char path[4096];
	for (size_t i = 0; i < 3; i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, R_OK) == 0)
			return open_path(path, g);
	}
	return NULL;
}

static struct tok *write_small(bool bpe, struct gguf_file **g)
{
	static char bytes[256][8];
	const char *strs[300];
	float scores[300];
	int32_t types[300];
	size_t n = 0;
	char path[] = "/tmp/fuzz_tokenizer.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	close(fd);
	if (!bpe) {
		strs[n] = "<unk>"; types[n] = 2; scores[n++] = 0;
		strs[n] = "<s>"; types[n] = 3; scores[n++] = 0;
		strs[n] = "</s>"; types[n] = 3; scores[n++] = 0;
	}
	for (int b = 0; b < 256; b++) {
		if (bpe) {
			size_t k = tok_bpe_byte_char((uint8_t)b, bytes[b]);
			bytes[b][k] = '\0';
		} else {
			snprintf(bytes[b], sizeof(bytes[b]), "<0x%02X>", b);
		}
		strs[n] = bytes[b]; types[n] = bpe ? 1 : 6; scores[n++] = 0;
	}
	static const char *const extra_spm[] = { "\xe2\x96\x81", "\342\226\201a", "ab", "a", "b", "<s" };
	static const char *const extra_bpe[] = { "ab", "\304\240a", "12", "<|im_end|>" };
	static const char *const merges[] = { "a b", "\xc4\xa0 a", "1 2" };
	const char *const *ex = bpe ? extra_bpe : extra_spm;
	size_t nex = bpe ? 4 : 6;
	for (size_t i = 0; i < nex; i++) {
		strs[n] = ex[i];
		types[n] = !strcmp(ex[i], "<|im_end|>") ? 3 : 1;
		scores[n++] = -(float)i;
	}
	struct gguf_writer *w = gguf_writer_new();
	char err[256];
	if (!w || gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama") < 0 ||
	    (bpe && gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2") < 0) ||
	    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, n) < 0 ||
	    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n) < 0 ||
	    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n) < 0 ||
	    (bpe && gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 3) < 0) ||
	    gguf_writer_write(w, path, err, sizeof(err)) < 0)
		abort();
	gguf_writer_free(w);
	struct tok *t = open_path(path, g);
	unlink(path);
	if (!t)
		abort();
	return t;
}

static void init(void)
{
	if (toks[0])
		return;
	toks[0] = open_real("ggml-vocab-llama-spm.gguf", &files[0]);
	if (!toks[0])
		toks[0] = write_small(false, &files[0]);
	toks[1] = open_real("ggml-vocab-gpt-2.gguf", &files[1]);
	if (!toks[1])
		toks[1] = write_small(true, &files[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	init();
	uint8_t flags = data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	const struct tok *t = toks[flags & 1];
	bool bos = flags & 2, special = flags & 4;

	int64_t n = tok_encode(t, text, len, bos, special, NULL, 0);
	if (tok_kind(t) == TOK_KIND_BPE) {
		bool valid = tok_utf8_valid(text, len);
		if (!valid) {
			if (n != -EINVAL)
				abort();
			return 0;
		}
	}
	if (n < 0)
		abort();
	int32_t *ids = malloc(((size_t)n + 1) * sizeof(*ids));
	if (!ids)
		return 0;
	if (tok_encode(t, text, len, bos, special, ids, (size_t)n + 1) != n)
		abort();
	for (int64_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= tok_n_vocab(t))
			abort();
	/* SPM: merging word by word must give what one merge over the whole
	 * text gives (a shallow copy with the shortcut off shares the tables) */
	if (tok_kind(t) == TOK_KIND_SPM && t->spm_chunks) {
		struct tok whole = *t;
		whole.spm_chunks = false;
		int32_t *ids2 = malloc(((size_t)n + 1) * sizeof(*ids2));
		if (ids2) {
			if (tok_encode(&whole, text, len, bos, special, ids2, (size_t)n + 1) != n ||
			    memcmp(ids, ids2, (size_t)n * sizeof(*ids)) != 0)
				abort();
			free(ids2);
		}
	}
	size_t skip = bos && tok_bos(t) >= 0 ? 1 : 0;
	/* SPM round-trips valid UTF-8 without U+2581 (the escaped space itself
	 * decodes to a space; an invalid sequence can swallow an escaped space
	 * into byte tokens), as llama.cpp's does. */
	bool spm_rt = !special && tok_utf8_valid(text, len) &&
		!memmem(text, len, "\xe2\x96\x81", 3);
	if ((size_t)n >= skip && (tok_kind(t) == TOK_KIND_BPE || spm_rt)) {
		size_t cap = len * 4 + 64;
		char *dec = malloc(cap);
		if (dec) {
			int64_t d = tok_decode(t, ids + skip, (size_t)n - skip, true, dec, cap);
			if (d != (int64_t)len || memcmp(dec, text, len) != 0)
				abort();
			free(dec);
		}
	}
	free(ids);
	return 0;
}
