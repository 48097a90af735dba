/*
 * tokenizer_bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"), the
 * algorithm of llama.cpp's llm_tokenizer_bpe with GPT-2's byte mapping.
 *
 * DESIGN
 * 1. Pre-tokenizer: a regular expression chosen by tokenizer.ggml.pre cuts
 *    the text into words; text between matches (none of these patterns
 *    leaves any) would be a word of its own. The patterns are the Hugging
 *    Face ones and run on PCRE2 in UTF + UCP mode, so \p{L} and \p{N} follow
 *    the Unicode tables of the system's PCRE2. \s and \S are spelled out as
 *    the Unicode White_Space set, which is what the reference tokenizers
 *    (and llama.cpp's unicode tables) use; PCRE2's own \s would also take
 *    U+180E. The pattern is JIT-compiled when PCRE2 can; a match that runs
 *    out of JIT stack is redone by the interpreter (defensive: these
 *    patterns repeat single classes, which the JIT does without stack;
 *    1 MiB of spaces matches fine).
 * 2. Each word is a list of symbols, one per byte, whose token is the
 *    byte's bytes_to_unicode character (GPT-2: printable Latin-1 bytes stand
 *    for themselves, the other 68 bytes for U+0100..U+0143).
 * 3. Merges: a min-heap of neighbouring pairs keyed by merge rank (ties: the
 *    leftmost pair); pairs are looked up by their two token ids in a hash of
 *    tokenizer.ggml.merges built at load. A popped pair whose symbols have
 *    changed since it was pushed is dropped. The llama3 rule (ignore_merges)
 *    takes a whole word that is a token as it is.
 * 4. Each final symbol is a token; a byte whose character is not in the
 *    vocabulary becomes unk, or nothing where there is no unk (llama.cpp
 *    drops it too).
 * Text must be valid UTF-8 (tok_encode checks before calling in here).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/tokenizer_internal.h"

/* The Unicode White_Space set, as the body of a character class. */
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static const char *const pre_patterns[] = {
	/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	[TOK_PRE_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
		"|[" WS "]+(?![^" WS "])|[" WS "]+",
	/* (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
	 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
	[TOK_PRE_QWEN2] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
		"|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
		"|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+",
	/* as qwen2 with \p{N}{1,3} */
	[TOK_PRE_LLAMA3] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
		"|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
		"|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+",
};

struct tok_bpe {
	pcre2_code *re;
};

/* ------------------------------------------------------- byte mapping */

static bool byte_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

static uint32_t byte_cp(uint8_t b)
{
	if (byte_printable(b))
		return b;
	if (b <= 0x20)
		return 256 + b;
	if (b <= 0xa0)
		return 256 + 33 + (b - 0x7f);
	return 256 + 67; /* 0xad */
}

size_t tok_bpe_byte_char(uint8_t b, char out[2])
{
	uint32_t cp = byte_cp(b);
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

int tok_bpe_char_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_printable(cp) ? (int)cp : -1;
	if (cp < 256 + 33)
		return (int)(cp - 256);
	if (cp < 256 + 67)
		return (int)(0x7f + (cp - 256 - 33));
	if (cp == 256 + 67)
		return 0xad;
	return -1;
}

/* ---------------------------------------------------------------- init */

int tok_bpe_init(struct tok *t, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE eo;
	t->bpe = calloc(1, sizeof(*t->bpe));
	if (!t->bpe) {
		snprintf(err, errlen, "tokenizer: out of memory");
		return -ENOMEM;
	}
	t->bpe->re = pcre2_compile((PCRE2_SPTR)pre_patterns[t->pre], PCRE2_ZERO_TERMINATED,
				   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	if (!t->bpe->re) {
		PCRE2_UCHAR msg[128];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "tokenizer: pre-tokenizer pattern, offset %zu: %s",
			 (size_t)eo, (const char *)msg);
		return -EINVAL;
	}
	/* Best effort: without JIT (no executable memory) the interpreter runs. */
	(void)pcre2_jit_compile(t->bpe->re, PCRE2_JIT_COMPLETE);

	for (int b = 0; b < 256; b++) {
		char c[2];
		size_t n = tok_bpe_byte_char((uint8_t)b, c);
		t->byte_tok[b] = tok_map_find(t, c, n);
	}
	return 0;
}

void tok_bpe_free(struct tok *t)
{
	if (!t->bpe)
		return;
	pcre2_code_free(t->bpe->re);
	free(t->bpe);
	t->bpe = NULL;
}

/* ------------------------------------------------------------- split */

int tok_bpe_split(const struct tok *t, const char *text, size_t len,
		  int (*fn)(void *arg, size_t off, size_t len), void *arg)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->bpe->re, NULL);
	int rc = 0;
	size_t pos = 0;

	if (!md)
		return -ENOMEM;
	while (pos < len) {
		int m = pcre2_match(t->bpe->re, (PCRE2_SPTR)text, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
		if (m == PCRE2_ERROR_JIT_STACKLIMIT)
			m = pcre2_match(t->bpe->re, (PCRE2_SPTR)text, len, pos,
					PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
		if (m == PCRE2_ERROR_NOMATCH) {
			rc = fn(arg, pos, len - pos);
			break;
		}
		if (m < 0) {
			rc = m == PCRE2_ERROR_NOMEMORY || m == PCRE2_ERROR_HEAPLIMIT ? -ENOMEM : -EINVAL;
			break;
		}
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t s = ov[0], e = ov[1];
		if (s > pos && (rc = fn(arg, pos, s - pos)) != 0)
			break;
		if (e <= s) { /* an empty match: step over one character */
			e = s + tok_utf8_len((unsigned char)text[s]);
			if (e > len)
				e = len;
		}
		if ((rc = fn(arg, s, e - s)) != 0)
			break;
		pos = e;
	}
	pcre2_match_data_free(md);
	return rc;
}

/* ------------------------------------------------------------- merges */

struct bsym {
	int32_t prev, next;
	int32_t id;        /* token of the symbol's bytes, -1: none */
	uint32_t n;        /* bytes; 0: merged away */
};

struct bpair {
	int32_t rank;
	int32_t left, right;
	int32_t lid, rid;  /* the ids when pushed */
	int32_t result;
};

static bool pair_before(const struct bpair *a, const struct bpair *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

TOK_HEAP_DEFINE(bheap, struct bpair, pair_before)

static const struct tok_merge *merge_find(const struct tok *t, int32_t l, int32_t r)
{
	uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
	size_t i = tok_hash_u64(key) & t->merges_mask;
	for (;;) {
		const struct tok_merge *m = &t->merges[i];
		if (m->rank < 0)
			return NULL;
		if (m->key == key)
			return m;
		i = (i + 1) & t->merges_mask;
	}
}

struct enc {
	const struct tok *t;
	const char *text;
	struct tok_ids *out;
	struct bsym *s;
	size_t scap;
	struct bheap h;
	char *mapped;        /* llama3: the word's mapped text */
	size_t mcap;
};

static int add_pair(struct enc *e, int32_t left, int32_t right)
{
	if (left < 0 || right < 0 || e->s[left].id < 0 || e->s[right].id < 0)
		return 0;
	const struct tok_merge *m = merge_find(e->t, e->s[left].id, e->s[right].id);
	if (!m)
		return 0;
	return bheap_push(&e->h, (struct bpair){ .rank = m->rank, .left = left, .right = right,
						 .lid = e->s[left].id, .rid = e->s[right].id,
						 .result = m->result });
}

/* llama3's ignore_merges: the whole word, when it is one token. */
static int32_t whole_word(struct enc *e, const char *w, size_t n)
{
	if (n * 2 > e->mcap) {
		size_t cap = n * 2 > 256 ? n * 2 : 256;
		char *m = realloc(e->mapped, cap);
		if (!m)
			return -ENOMEM;
		e->mapped = m;
		e->mcap = cap;
	}
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		o += tok_bpe_byte_char((uint8_t)w[i], e->mapped + o);
	int32_t id = tok_map_find(e->t, e->mapped, o);
	return id;
}

static int encode_word(void *arg, size_t off, size_t n)
{
	struct enc *e = arg;
	const struct tok *t = e->t;
	const char *w = e->text + off;
	int rc;

	if (n == 0)
		return 0;
	if (t->pre == TOK_PRE_LLAMA3) {
		int32_t id = whole_word(e, w, n);
		if (id < -1)
			return id;
		if (id >= 0)
			return tok_ids_push(e->out, id);
	}
	if (n > e->scap) {
		size_t cap = n > 256 ? n : 256;
		struct bsym *s = realloc(e->s, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		e->s = s;
		e->scap = cap;
	}
	int32_t ns = (int32_t)n;
	for (int32_t i = 0; i < ns; i++)
		e->s[i] = (struct bsym){ .prev = i - 1, .next = i + 1 == ns ? -1 : i + 1,
					 .id = t->byte_tok[(unsigned char)w[i]], .n = 1 };
	e->h.n = 0;
	for (int32_t i = 1; i < ns; i++)
		if ((rc = add_pair(e, i - 1, i)) < 0)
			return rc;
	while (e->h.n) {
		struct bpair p = bheap_pop(&e->h);
		struct bsym *l = &e->s[p.left], *r = &e->s[p.right];
		if (l->n == 0 || r->n == 0 || l->id != p.lid || r->id != p.rid || l->next != p.right)
			continue;
		l->id = p.result;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->s[r->next].prev = p.left;
		if ((rc = add_pair(e, l->prev, p.left)) < 0 || (rc = add_pair(e, p.left, l->next)) < 0)
			return rc;
	}
	for (int32_t i = 0; i != -1; i = e->s[i].next) {
		int32_t id = e->s[i].id >= 0 ? e->s[i].id : t->unk;
		if (id >= 0 && (rc = tok_ids_push(e->out, id)) < 0)
			return rc;
	}
	return 0;
}

int tok_bpe_encode(const struct tok *t, const char *text, size_t len, struct tok_ids *out)
{
	struct enc e = { .t = t, .text = text, .out = out };
	int rc = tok_bpe_split(t, text, len, encode_word, &e);
	free(e.s);
	free(e.h.v);
	free(e.mapped);
	return rc;
}
