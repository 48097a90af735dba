/*
 * tokenizer_internal.h: what tokenizer.c (vocabulary, special tokens, the
 * public API) shares with tokenizer_spm.c and tokenizer_bpe.c (the two
 * encoders). Not for use outside the tokenizer files, except by their unit
 * test, which checks the pre-tokenizer split through tok_bpe_split().
 *
 * The struct tok is immutable once tok_new() returns: every encode call
 * keeps its scratch state on its own heap buffers, so one tok may be used
 * by any number of threads at once (the server encodes prompts from its
 * connection threads).
 */
#ifndef TOKENIZER_INTERNAL_H
#define TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/tokenizer.h"

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type
 * (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte). */
enum {
	TOK_ATTR_UNDEFINED = 0,
	TOK_ATTR_UNKNOWN = 1 << 0,
	TOK_ATTR_UNUSED = 1 << 1,
	TOK_ATTR_NORMAL = 1 << 2,
	TOK_ATTR_CONTROL = 1 << 3,
	TOK_ATTR_USER_DEFINED = 1 << 4,
	TOK_ATTR_BYTE = 1 << 5,
};

/* The pre-tokenizer rule of a byte-level BPE vocabulary (tokenizer.ggml.pre). */
enum tok_pre {
	TOK_PRE_GPT2 = 0, /* 's|'t|... ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	TOK_PRE_QWEN2,    /* contractions any case, single digits, newline runs */
	TOK_PRE_LLAMA3,   /* qwen2's with \p{N}{1,3}, and whole-word tokens skip merges */
};

struct tok_token {
	const char *s;   /* text, in the gguf mapping, not NUL-terminated */
	uint32_t len;    /* bytes */
	float score;     /* SPM merge priority (tokenizer.ggml.scores), 0 when absent */
	uint8_t attr;    /* TOK_ATTR_* */
};

/* One BPE merge "left right": both halves and their concatenation are tokens. */
struct tok_merge {
	uint64_t key;    /* (uint64_t)left_id << 32 | right_id */
	int32_t rank;    /* order in tokenizer.ggml.merges; -1: empty slot */
	int32_t result;  /* id of left+right */
};

struct tok_bpe; /* compiled pre-tokenizer, tokenizer_bpe.c */

struct tok {
	enum tok_kind kind;
	int32_t n_vocab;
	struct tok_token *tokens;   /* [n_vocab] */

	/* token text -> id: open addressing, linear probing, -1 empty */
	int32_t *map;
	size_t map_mask;            /* slots - 1, slots a power of two */

	int32_t bos, eos, eot, eom, unk;
	bool add_bos;
	bool add_space_prefix;      /* SPM: prepend a space to the text (and drop it when decoding) */
	bool spm_chunks;            /* SPM: tok_spm_chunks_ok() */

	int32_t *eog;               /* sorted ids that end generation */
	size_t n_eog;
	int32_t *special;           /* control, user-defined and unknown tokens, longest text first */
	size_t n_special;

	/* SPM: the token standing for each byte (<0xXX>, else the byte itself as
	 * text, else -1). BPE: the token of the byte's bytes_to_unicode
	 * character, or -1. */
	int32_t byte_tok[256];

	/* BPE */
	enum tok_pre pre;
	struct tok_merge *merges;   /* open addressing on key */
	size_t merges_mask;
	struct tok_bpe *bpe;
};

/* A growable vector of ids: the encoders append to it. */
struct tok_ids {
	int32_t *v;
	size_t n, cap;
};
int tok_ids_push(struct tok_ids *ids, int32_t id); /* 0 or -ENOMEM */

/* Hash of a merge key (murmur3's finalizer). */
static inline uint64_t tok_hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Id of the exact text, -1 when absent. */
int32_t tok_map_find(const struct tok *t, const char *s, size_t len);

/* Strict UTF-8 check (no overlong forms, surrogates or values > U+10FFFF). */
bool tok_utf8_valid(const char *s, size_t len);
/* Bytes of the UTF-8 sequence that starts with byte c, as llama.cpp counts
 * them (continuation and invalid lead bytes count 1). */
size_t tok_utf8_len(unsigned char c);

/* ---- SPM (tokenizer_spm.c) ---- */
/* True when no token has U+2581 at a byte offset > 0 that does not follow
 * another U+2581: then a text may be merged word by word. */
bool tok_spm_chunks_ok(const struct tok *t);
/* Encode one fragment of raw text; with prefix_space a space goes first. */
int tok_spm_encode(const struct tok *t, const char *text, size_t len,
		   bool prefix_space, struct tok_ids *out);

/* ---- BPE (tokenizer_bpe.c) ---- */
/* Compile the pre-tokenizer for t->pre and the byte map; err gets one line. */
int tok_bpe_init(struct tok *t, char *err, size_t errlen);
void tok_bpe_free(struct tok *t);
/* Encode one fragment of valid UTF-8. */
int tok_bpe_encode(const struct tok *t, const char *text, size_t len, struct tok_ids *out);
/* Call fn for every pre-tokenizer word of text (valid UTF-8), in order;
 * the words tile the text. Returns 0, fn's non-zero value, or a negative errno. */
int tok_bpe_split(const struct tok *t, const char *text, size_t len,
		  int (*fn)(void *arg, size_t off, size_t len), void *arg);
/* GPT-2 bytes_to_unicode: the UTF-8 of byte b's character (1 or 2 bytes). */
size_t tok_bpe_byte_char(uint8_t b, char out[2]);
/* Inverse: the byte of code point cp, or -1. */
int tok_bpe_char_byte(uint32_t cp);

/*
 * TOK_HEAP_DEFINE(name, T, before): a binary heap of T values, `before(a, b)`
 * true when *a comes out first, for the two encoders' merge queues (SPM:
 * best score first; BPE: lowest rank first; both: leftmost on ties). It
 * defines struct name { T *v; size_t n, cap; } (zero-initialised: empty;
 * the owner frees v), name_push (0 or -ENOMEM) and name_pop (n > 0).
 * A macro rather than void* and a comparator: the comparison inlines.
 */
#define TOK_HEAP_DEFINE(name, T, before)                                         \
	struct name {                                                            \
		T *v;                                                            \
		size_t n, cap;                                                   \
	};                                                                       \
	static int name##_push(struct name *h, T x)                              \
	{                                                                        \
		size_t i;                                                        \
		if (h->n == h->cap) {                                            \
			size_t cap = h->cap ? h->cap * 2 : 64;                   \
			T *v = realloc(h->v, cap * sizeof(*v));                  \
			if (!v)                                                  \
				return -ENOMEM;                                  \
			h->v = v;                                                \
			h->cap = cap;                                            \
		}                                                                \
		for (i = h->n++; i > 0;) {                                       \
			size_t p = (i - 1) / 2;                                  \
			if (!before(&x, &h->v[p]))                               \
				break;                                           \
			h->v[i] = h->v[p];                                       \
			i = p;                                                   \
		}                                                                \
		h->v[i] = x;                                                     \
		return 0;                                                        \
	}                                                                        \
	static T name##_pop(struct name *h)                                      \
	{                                                                        \
		T top = h->v[0], last = h->v[--h->n];                            \
		size_t i = 0;                                                    \
		for (;;) {                                                       \
			size_t c = 2 * i + 1;                                    \
			if (c >= h->n)                                           \
				break;                                           \
			if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))      \
				c++;                                             \
			if (!before(&h->v[c], &last))                            \
				break;                                           \
			h->v[i] = h->v[c];                                       \
			i = c;                                                   \
		}                                                                \
		if (h->n)                                                        \
			h->v[i] = last;                                          \
		return top;                                                      \
	}

#endif /* TOKENIZER_INTERNAL_H */
