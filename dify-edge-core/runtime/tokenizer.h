/*
 * tokenizer.h: text <-> token ids from a GGUF file's tokenizer.ggml.* metadata.
 *
 * Two families, as llama.cpp implements them:
 *  - "llama": SentencePiece-style (scores, merges by score, byte fallback
 *    <0xXX>, the leading-space rule: a space is prepended and spaces become
 *    U+2581);
 *  - "gpt2": byte-level BPE (merges by rank) after a pre-tokenizer split
 *    chosen by tokenizer.ggml.pre ("gpt-2", "qwen2", ... ; default gpt-2).
 * Special/control tokens (token_type 3/4) are matched in text only when the
 * caller asks (parse_special). Decoding a sequence and re-encoding it gives
 * the same text (round trip).
 *
 * A tok borrows strings from the gguf_file it was built from: keep the file
 * open for the tokenizer's lifetime.
 */
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dify-edge-core/runtime/gguf.h"

struct tok;

#define TOK_MAX_TEXT ((size_t)1 << 28) /* bytes tok_encode takes at once (256 MiB) */

enum tok_kind { TOK_KIND_SPM = 1, TOK_KIND_BPE = 2 };

/* Build from metadata; NULL on failure with one line in err. */
struct tok *tok_new(const struct gguf_file *g, char *err, size_t errlen);
void tok_free(struct tok *t); /* NULL is a no-op */

enum tok_kind tok_kind(const struct tok *t);
int32_t tok_n_vocab(const struct tok *t);
int32_t tok_bos(const struct tok *t);   /* -1 when the vocabulary has none */
int32_t tok_eos(const struct tok *t);
bool tok_add_bos_default(const struct tok *t); /* tokenizer.ggml.add_bos_token */
/* End of generation: EOS, EOT and the like. */
bool tok_is_eog(const struct tok *t, int32_t id);
bool tok_is_control(const struct tok *t, int32_t id);
/* Id of an exact token text (e.g. "<|im_start|>"), or -1. */
int32_t tok_lookup(const struct tok *t, const char *text, size_t len);
int32_t tok_eot(const struct tok *t);   /* end of turn (metadata or by text), -1 if none */
int32_t tok_unk(const struct tok *t);   /* -1 when the vocabulary has none */
/* SPM leading-space rule in force (tokenizer.ggml.add_space_prefix, default
 * true for llama vocabularies, false for gpt2). */
bool tok_add_space_prefix(const struct tok *t);
/* tokenizer.ggml.token_type of id (1 normal, 2 unknown, 3 control, 4 user
 * defined, 5 unused, 6 byte; 0 undefined), -EINVAL when out of range.
 * Tokens llama.cpp treats as end of generation read as control (3). */
int tok_token_type(const struct tok *t, int32_t id);
/* The stored text of id (SPM: with U+2581 for spaces; BPE: byte-mapped),
 * not NUL-terminated, borrowed from the gguf_file; NULL when out of range. */
const char *tok_text(const struct tok *t, int32_t id, size_t *len);

/* Encode len bytes of text. Writes at most cap ids to out and returns the
 * number of ids the full encoding has (so a return > cap means: retry with a
 * bigger buffer), or a negative errno (-EINVAL: text is not valid UTF-8 where
 * the vocabulary needs it; -E2BIG: more than TOK_MAX_TEXT bytes; -ENOMEM).
 * add_bos prepends BOS; parse_special matches special/control token texts
 * inside the text (user-defined tokens are always matched). */
int64_t tok_encode(const struct tok *t, const char *text, size_t len,
		   bool add_bos, bool parse_special, int32_t *out, size_t cap);

/* The bytes token id stands for, when decoded after the tokens before it.
 * strip_leading drops the space of the first piece under the SPM
 * leading-space rule and does nothing where that rule is off (byte-level
 * BPE, whose leading spaces are real). Writes up to cap bytes; returns the
 * full length, or -EINVAL for an id out of range. Control and unknown
 * tokens decode to "" unless render_special is set. */
int64_t tok_piece(const struct tok *t, int32_t id, bool strip_leading,
		  bool render_special, char *buf, size_t cap);

/* Decode n ids into buf (up to cap bytes); returns the full length, or
 * -EINVAL when an id is out of range. With the SPM leading-space rule the
 * space of the first piece that has text is dropped (a leading BOS that
 * renders as nothing does not count), so decode(encode(text)) == text with
 * or without BOS. Thread-safe, like tok_encode: a tok never changes after
 * tok_new(). */
int64_t tok_decode(const struct tok *t, const int32_t *ids, size_t n,
		   bool render_special, char *buf, size_t cap);

#endif /* TOKENIZER_H */
