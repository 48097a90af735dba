/*
 * tokenizer.c: the vocabulary of a GGUF file's tokenizer.ggml.* metadata and
 * the public tokenizer API: special tokens, encoding entry point, pieces and
 * decoding. The two encoders live in tokenizer_spm.c and tokenizer_bpe.c.
 *
 * DESIGN
 * tok_new() reads the token texts straight out of the mapping (they are
 * borrowed, not copied), their scores and types, and builds once:
 *  - an open-addressing hash map from token text to id (the encoders' only
 *    lookup, so encoding costs a hash per candidate merge);
 *  - the special-token list (control, user-defined and unknown tokens,
 *    longest text first) that splits text before the encoder sees it, as
 *    llama.cpp's tokenizer_st_partition does: control and unknown tokens
 *    only when the caller asks (parse_special), user-defined ones always;
 *  - the end-of-generation set: tokenizer.ggml.eos/eot/eom_token_id and
 *    the tokens whose text llama.cpp treats as such (<|im_end|>,
 *    <|endoftext|>, <|eot_id|>, ...), which are also typed control;
 *  - per kind: SPM byte-fallback ids (<0xXX>), BPE merges keyed by the id
 *    pair and the compiled pre-tokenizer.
 * Nothing changes after tok_new(), so a tok is safe to share between
 * threads; each tok_encode() call allocates its own scratch buffers.
 *
 * Decoding follows llama.cpp's token_to_piece(): SPM pieces turn U+2581
 * back into spaces and byte tokens into their byte; BPE pieces map each
 * character back through the inverse of GPT-2's bytes_to_unicode; control
 * and unknown tokens decode to nothing unless render_special. Unlike
 * llama.cpp, tok_decode() drops the SPM leading space from the first piece
 * that has text (so a leading BOS does not keep it), which makes
 * decode(encode(text)) == text with and without BOS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/tokenizer.h"
#include "dify-edge-core/runtime/tokenizer_internal.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* Token texts llama.cpp treats as end of generation whatever their type. */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
	"<|endoftext|>", "<|eom_id|>", "<EOT>",
};

/* tokenizer.ggml.pre values and the rule each one means (llama.cpp's names). */
static const struct {
	const char *name;
	enum tok_pre pre;
} pre_names[] = {
	{ .name = "gpt-2", .pre = TOK_PRE_GPT2 },
	{ .name = "gpt2", .pre = TOK_PRE_GPT2 },
	{ .name = "phi-2", .pre = TOK_PRE_GPT2 },
	{ .name = "roberta-bpe", .pre = TOK_PRE_GPT2 },
	{ .name = "mpt", .pre = TOK_PRE_GPT2 },
	{ .name = "olmo", .pre = TOK_PRE_GPT2 },
	{ .name = "jais", .pre = TOK_PRE_GPT2 },
	{ .name = "qwen2", .pre = TOK_PRE_QWEN2 },
	{ .name = "stablelm2", .pre = TOK_PRE_QWEN2 },
	{ .name = "megrez", .pre = TOK_PRE_QWEN2 },
	{ .name = "llama3", .pre = TOK_PRE_LLAMA3 },
	{ .name = "llama-v3", .pre = TOK_PRE_LLAMA3 },
	{ .name = "llama-bpe", .pre = TOK_PRE_LLAMA3 },
	{ .name = "falcon3", .pre = TOK_PRE_LLAMA3 },
	{ .name = "dbrx", .pre = TOK_PRE_LLAMA3 },
	{ .name = "smaug-bpe", .pre = TOK_PRE_LLAMA3 },
};

/* ---------------------------------------------------------------- helpers */

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

int tok_ids_push(struct tok_ids *ids, int32_t id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		int32_t *v = realloc(ids->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

size_t tok_utf8_len(unsigned char c)
{
	static const uint8_t lens[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	return lens[c >> 4];
}

bool tok_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 2; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

int32_t tok_map_find(const struct tok *t, const char *s, size_t len)
{
	if (len == 0)
		return -1;
	size_t i = hash_bytes(s, len) & t->map_mask;
	for (;;) {
		int32_t id = t->map[i];
		if (id < 0)
			return -1;
		const struct tok_token *k = &t->tokens[id];
		if (k->len == len && !memcmp(k->s, s, len))
			return id;
		i = (i + 1) & t->map_mask;
	}
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

/* Later duplicates replace earlier ones (llama.cpp: token_to_id[text] = i).
 * Empty texts are not entered: no text encodes to them. */
static int build_map(struct tok *t)
{
	size_t slots = pow2_at_least((size_t)t->n_vocab * 2);
	t->map = malloc(slots * sizeof(*t->map));
	if (!t->map)
		return -ENOMEM;
	memset(t->map, 0xff, slots * sizeof(*t->map));
	t->map_mask = slots - 1;
	for (int32_t id = 0; id < t->n_vocab; id++) {
		const struct tok_token *k = &t->tokens[id];
		if (!k->len)
			continue;
		size_t i = hash_bytes(k->s, k->len) & t->map_mask;
		while (t->map[i] >= 0) {
			const struct tok_token *o = &t->tokens[t->map[i]];
			if (o->len == k->len && !memcmp(o->s, k->s, k->len))
				break;
			i = (i + 1) & t->map_mask;
		}
		t->map[i] = id;
	}
	return 0;
}

/* An id from metadata: absent -> dflt; out of range -> dflt (llama.cpp
 * ignores such ids too; files use 0xffffffff for "none"). */
static int32_t meta_id(const struct gguf_file *g, const char *key, int32_t n_vocab, int32_t dflt)
{
	uint32_t v;
	if (gguf_get_u32(g, key, &v) < 0) {
		int64_t s;
		if (gguf_get_i64(g, key, &s) < 0 || s < 0 || s >= n_vocab)
			return dflt;
		return (int32_t)s;
	}
	return v < (uint32_t)n_vocab ? (int32_t)v : dflt;
}

static uint8_t attr_of_type(int32_t type)
{
	switch (type) {
	case 1: return TOK_ATTR_NORMAL;
	case 2: return TOK_ATTR_UNKNOWN;
	case 3: return TOK_ATTR_CONTROL;
	case 4: return TOK_ATTR_USER_DEFINED;
	case 5: return TOK_ATTR_UNUSED;
	case 6: return TOK_ATTR_BYTE;
	default: return TOK_ATTR_UNDEFINED;
	}
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* Special tokens sort longest first, then by id. */
struct len_id {
	uint32_t len;
	int32_t id;
};

static int cmp_special(const void *a, const void *b)
{
	const struct len_id *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

static int add_eog(struct tok *t, int32_t id)
{
	if (id < 0)
		return 0;
	for (size_t i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return 0;
	int32_t *v = realloc(t->eog, (t->n_eog + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->eog = v;
	t->eog[t->n_eog++] = id;
	return 0;
}

static int build_special(struct tok *t)
{
	int rc;
	/* EOT by text when the metadata names none (llama.cpp's auto-detection):
	 * the lowest id among the end-of-turn texts. */
	for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++) {
		int32_t id = tok_map_find(t, eog_texts[i], strlen(eog_texts[i]));
		if (id < 0)
			continue;
		t->tokens[id].attr = TOK_ATTR_CONTROL; /* as llama.cpp overrides it */
		if ((rc = add_eog(t, id)) < 0)
			return rc;
		if (strcmp(eog_texts[i], "<|eom_id|>") != 0 && t->eot < 0)
			t->eot = id;
	}
	if ((rc = add_eog(t, t->eos)) < 0 || (rc = add_eog(t, t->eot)) < 0 ||
	    (rc = add_eog(t, t->eom)) < 0)
		return rc;
	if (t->n_eog)
		qsort(t->eog, t->n_eog, sizeof(*t->eog), cmp_i32);

	size_t n = 0;
	for (int32_t id = 0; id < t->n_vocab; id++)
		if (t->tokens[id].len && (t->tokens[id].attr &
		    (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)))
			n++;
	if (n) {
		struct len_id *v = malloc(n * sizeof(*v));
		t->special = malloc(n * sizeof(*t->special));
		if (!v || !t->special) {
			free(v);
			return -ENOMEM;
		}
		for (int32_t id = 0; id < t->n_vocab; id++)
			if (t->tokens[id].len && (t->tokens[id].attr &
			    (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)))
				v[t->n_special++] = (struct len_id){ .len = t->tokens[id].len, .id = id };
		qsort(v, t->n_special, sizeof(*v), cmp_special);
		for (size_t i = 0; i < t->n_special; i++)
			t->special[i] = v[i].id;
		free(v);
	}
	return 0;
}

static void build_spm_bytes(struct tok *t)
{
	static const char hex[] = "0123456789ABCDEF";
	for (int b = 0; b < 256; b++) {
		char buf[6] = { '<', '0', 'x', hex[b >> 4], hex[b & 15], '>' };
		int32_t id = tok_map_find(t, buf, sizeof(buf));
		if (id < 0) {
			char c = (char)b;
			id = tok_map_find(t, &c, 1);
		}
		t->byte_tok[b] = id;
	}
}

/* Merges "left right" (split at the first space after the first byte, as
 * llama.cpp does); the first of duplicates wins. Merges whose halves or
 * result are not tokens can never apply to id-keyed symbols: skipped. */
static int build_merges(struct tok *t, const struct gguf_file *g, char *err, size_t errlen)
{
	enum gguf_type et;
	uint64_t n = 0;
	const void *data;
	int rc = gguf_get_arr(g, KEY_MERGES, &et, &n, &data);
	if (rc == -ENOENT) {
		n = 0;
	} else if (rc < 0 || et != GGUF_TYPE_STRING) {
		snprintf(err, errlen, "%s: %s: not an array of strings", gguf_path(g), KEY_MERGES);
		return -EINVAL;
	}
	if (n > INT32_MAX) {
		snprintf(err, errlen, "%s: %s: %llu merges is too many", gguf_path(g), KEY_MERGES,
			 (unsigned long long)n);
		return -EINVAL;
	}
	size_t slots = pow2_at_least((size_t)n * 2);
	t->merges = malloc(slots * sizeof(*t->merges));
	if (!t->merges)
		return -ENOMEM;
	for (size_t i = 0; i < slots; i++)
		t->merges[i].rank = -1;
	t->merges_mask = slots - 1;

	char *cat = NULL;
	size_t catcap = 0;
	rc = 0;
	for (uint64_t r = 0; r < n; r++) {
		const char *s;
		size_t len;
		if ((rc = gguf_get_arr_str(g, KEY_MERGES, r, &s, &len)) < 0) {
			snprintf(err, errlen, "%s: %s[%llu]: unreadable", gguf_path(g), KEY_MERGES,
				 (unsigned long long)r);
			goto out;
		}
		const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp)
			continue;
		size_t ll = (size_t)(sp - s), rl = len - ll - 1;
		int32_t l = tok_map_find(t, s, ll), rr = tok_map_find(t, sp + 1, rl);
		if (l < 0 || rr < 0)
			continue;
		if (ll + rl > catcap) {
			catcap = (ll + rl) * 2;
			char *c = realloc(cat, catcap);
			if (!c) {
				rc = -ENOMEM;
				goto out;
			}
			cat = c;
		}
		memcpy(cat, s, ll);
		memcpy(cat + ll, sp + 1, rl);
		int32_t res = tok_map_find(t, cat, ll + rl);
		if (res < 0)
			continue;
		uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)rr;
		size_t i = tok_hash_u64(key) & t->merges_mask;
		while (t->merges[i].rank >= 0 && t->merges[i].key != key)
			i = (i + 1) & t->merges_mask;
		if (t->merges[i].rank >= 0)
			continue; /* duplicate: the first rank stays */
		t->merges[i] = (struct tok_merge){ .key = key, .rank = (int32_t)r, .result = res };
	}
out:
	free(cat);
	return rc;
}

/* ------------------------------------------------------------------ API */

struct tok *tok_new(const struct gguf_file *g, char *err, size_t errlen)
{
	struct tok *t = NULL;
	const char *path = gguf_path(g);
	const char *model;
	size_t model_len;
	int rc;

	if (errlen)
		err[0] = '\0';
	rc = gguf_get_str(g, KEY_MODEL, &model, &model_len);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s: no tokenizer (%s missing)", path, KEY_MODEL);
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s: not a string", path, KEY_MODEL);
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	if (model_len == 5 && !memcmp(model, "llama", 5)) {
		t->kind = TOK_KIND_SPM;
	} else if (model_len == 4 && !memcmp(model, "gpt2", 4)) {
		t->kind = TOK_KIND_BPE;
	} else {
		snprintf(err, errlen, "%s: %s: unsupported tokenizer '%.*s' (llama and gpt2 are)",
			 path, KEY_MODEL, (int)(model_len > 64 ? 64 : model_len), model);
		goto fail;
	}

	enum gguf_type et;
	uint64_t n;
	const void *data;
	rc = gguf_get_arr(g, KEY_TOKENS, &et, &n, &data);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s: no tokenizer (%s missing)", path, KEY_TOKENS);
		goto fail;
	}
	if (rc < 0 || et != GGUF_TYPE_STRING) {
		snprintf(err, errlen, "%s: %s: not an array of strings", path, KEY_TOKENS);
		goto fail;
	}
	if (n == 0 || n > INT32_MAX) {
		snprintf(err, errlen, "%s: %s: %llu tokens", path, KEY_TOKENS, (unsigned long long)n);
		goto fail;
	}
	t->n_vocab = (int32_t)n;
	t->tokens = calloc(n, sizeof(*t->tokens));
	if (!t->tokens)
		goto nomem;
	for (uint64_t i = 0; i < n; i++) {
		const char *s;
		size_t len;
		if (gguf_get_arr_str(g, KEY_TOKENS, i, &s, &len) < 0 || len > UINT32_MAX) {
			snprintf(err, errlen, "%s: %s[%llu]: unreadable", path, KEY_TOKENS,
				 (unsigned long long)i);
			goto fail;
		}
		t->tokens[i] = (struct tok_token){ .s = s, .len = (uint32_t)len, .attr = TOK_ATTR_NORMAL };
	}

	uint64_t m;
	rc = gguf_get_arr(g, KEY_SCORES, &et, &m, &data);
	if (rc == 0) {
		if (et != GGUF_TYPE_FLOAT32 || m != n) {
			snprintf(err, errlen, "%s: %s: want %llu float32 values", path, KEY_SCORES,
				 (unsigned long long)n);
			goto fail;
		}
		for (uint64_t i = 0; i < n; i++)
			memcpy(&t->tokens[i].score, (const char *)data + 4 * i, 4);
	} else if (rc != -ENOENT) {
		snprintf(err, errlen, "%s: %s: unreadable", path, KEY_SCORES);
		goto fail;
	}
	rc = gguf_get_arr(g, KEY_TYPES, &et, &m, &data);
	if (rc == 0) {
		if ((et != GGUF_TYPE_INT32 && et != GGUF_TYPE_UINT32) || m != n) {
			snprintf(err, errlen, "%s: %s: want %llu int32 values", path, KEY_TYPES,
				 (unsigned long long)n);
			goto fail;
		}
		for (uint64_t i = 0; i < n; i++) {
			int32_t ty;
			memcpy(&ty, (const char *)data + 4 * i, 4);
			t->tokens[i].attr = attr_of_type(ty);
		}
	} else if (rc != -ENOENT) {
		snprintf(err, errlen, "%s: %s: unreadable", path, KEY_TYPES);
		goto fail;
	}

	if (build_map(t) < 0)
		goto nomem;

	/* llama.cpp's defaults: SPM bos 1, eos 2, unk 0; BPE none. */
	bool spm = t->kind == TOK_KIND_SPM;
	t->bos = meta_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, spm && n > 1 ? 1 : -1);
	t->eos = meta_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, spm && n > 2 ? 2 : -1);
	t->unk = meta_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, spm ? 0 : -1);
	t->eot = meta_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, -1);
	t->eom = meta_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, -1);
	t->add_bos = spm;
	t->add_space_prefix = spm;
	if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos) == -EINVAL ||
	    gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix) == -EINVAL) {
		snprintf(err, errlen, "%s: tokenizer.ggml.add_bos_token/add_space_prefix: not a bool", path);
		goto fail;
	}
	if (t->bos < 0)
		t->add_bos = false;

	if (build_special(t) < 0)
		goto nomem;

	if (spm) {
		build_spm_bytes(t);
		t->spm_chunks = tok_spm_chunks_ok(t);
	} else {
		const char *pre = "gpt-2";
		size_t pre_len = 5;
		rc = gguf_get_str(g, KEY_PRE, &pre, &pre_len);
		if (rc < 0 && rc != -ENOENT) {
			snprintf(err, errlen, "%s: %s: not a string", path, KEY_PRE);
			goto fail;
		}
		if (rc == -ENOENT || (pre_len == 7 && !memcmp(pre, "default", 7))) {
			pre = "gpt-2";
			pre_len = 5;
		}
		size_t k;
		for (k = 0; k < sizeof(pre_names) / sizeof(pre_names[0]); k++)
			if (strlen(pre_names[k].name) == pre_len && !memcmp(pre_names[k].name, pre, pre_len))
				break;
		if (k == sizeof(pre_names) / sizeof(pre_names[0])) {
			snprintf(err, errlen, "%s: %s: unsupported pre-tokenizer '%.*s' (gpt-2, qwen2, llama3 and their aliases are)",
				 path, KEY_PRE, (int)(pre_len > 64 ? 64 : pre_len), pre);
			goto fail;
		}
		t->pre = pre_names[k].pre;
		if ((rc = build_merges(t, g, err, errlen)) < 0) {
			if (rc == -ENOMEM)
				goto nomem;
			goto fail;
		}
		if (tok_bpe_init(t, err, errlen) < 0)
			goto fail;
	}
	goto out;

nomem:
	snprintf(err, errlen, "%s: tokenizer: out of memory", path);
fail:
	tok_free(t);
	t = NULL;
out:
	return t;
}

void tok_free(struct tok *t)
{
	if (!t)
		return;
	tok_bpe_free(t);
	free(t->merges);
	free(t->special);
	free(t->eog);
	free(t->map);
	free(t->tokens);
	free(t);
}

enum tok_kind tok_kind(const struct tok *t) { return t->kind; }
int32_t tok_n_vocab(const struct tok *t) { return t->n_vocab; }
int32_t tok_bos(const struct tok *t) { return t->bos; }
int32_t tok_eos(const struct tok *t) { return t->eos; }
int32_t tok_eot(const struct tok *t) { return t->eot; }
int32_t tok_unk(const struct tok *t) { return t->unk; }
bool tok_add_bos_default(const struct tok *t) { return t->add_bos; }
bool tok_add_space_prefix(const struct tok *t) { return t->add_space_prefix; }

bool tok_is_eog(const struct tok *t, int32_t id)
{
	if (id < 0 || !t->n_eog)
		return false;
	return bsearch(&id, t->eog, t->n_eog, sizeof(*t->eog), cmp_i32) != NULL;
}

bool tok_is_control(const struct tok *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->tokens[id].attr & TOK_ATTR_CONTROL);
}

int tok_token_type(const struct tok *t, int32_t id)
{
	if (id < 0 || id >= t->n_vocab)
		return -EINVAL;
	switch (t->tokens[id].attr) {
	case TOK_ATTR_NORMAL: return 1;
	case TOK_ATTR_UNKNOWN: return 2;
	case TOK_ATTR_CONTROL: return 3;
	case TOK_ATTR_USER_DEFINED: return 4;
	case TOK_ATTR_UNUSED: return 5;
	case TOK_ATTR_BYTE: return 6;
	default: return 0;
	}
}

const char *tok_text(const struct tok *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return NULL;
	*len = t->tokens[id].len;
	return t->tokens[id].s;
}

int32_t tok_lookup(const struct tok *t, const char *text, size_t len)
{
	return tok_map_find(t, text, len);
}

/* A piece of the text: raw bytes [off, off+len), or one special token. */
struct frag {
	size_t off, len;
	int32_t id; /* -1: raw text */
};

struct frags {
	struct frag *v;
	size_t n, cap;
};

static int frags_push(struct frags *f, struct frag x)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct frag *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = x;
	return 0;
}

/* Split the raw fragments at every occurrence of each special token, longest
 * tokens first (llama.cpp's tokenizer_st_partition, without the per-model
 * lstrip/rstrip attributes). */
static int partition(const struct tok *t, const char *text, size_t len, bool parse_special,
		     struct frags *f)
{
	struct frags tmp = { 0 };
	int rc = frags_push(f, (struct frag){ .off = 0, .len = len, .id = -1 });
	for (size_t si = 0; rc == 0 && si < t->n_special; si++) {
		int32_t sid = t->special[si];
		const struct tok_token *st = &t->tokens[sid];
		if (!parse_special && (st->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
			continue;
		bool found = false;
		for (size_t i = 0; i < f->n && !found; i++)
			found = f->v[i].id < 0 && f->v[i].len >= st->len &&
				memmem(text + f->v[i].off, f->v[i].len, st->s, st->len);
		if (!found)
			continue;
		tmp.n = 0;
		for (size_t i = 0; rc == 0 && i < f->n; i++) {
			struct frag x = f->v[i];
			if (x.id >= 0) {
				rc = frags_push(&tmp, x);
				continue;
			}
			size_t off = x.off, end = x.off + x.len;
			while (rc == 0 && off < end) {
				const char *p = end - off >= st->len ?
					memmem(text + off, end - off, st->s, st->len) : NULL;
				if (!p) {
					rc = frags_push(&tmp, (struct frag){ .off = off, .len = end - off, .id = -1 });
					break;
				}
				size_t at = (size_t)(p - text);
				if (at > off)
					rc = frags_push(&tmp, (struct frag){ .off = off, .len = at - off, .id = -1 });
				if (rc == 0)
					rc = frags_push(&tmp, (struct frag){ .off = at, .len = st->len, .id = sid });
				off = at + st->len;
			}
		}
		struct frags sw = *f;
		*f = tmp;
		tmp = sw;
	}
	free(tmp.v);
	return rc;
}

int64_t tok_encode(const struct tok *t, const char *text, size_t len,
		   bool add_bos, bool parse_special, int32_t *out, size_t cap)
{
	struct tok_ids ids = { 0 };
	struct frags f = { 0 };
	int64_t ret;
	int rc = 0;

	if (!text && len) {
		ret = -EINVAL;
		goto out;
	}
	if (len > TOK_MAX_TEXT) { /* symbol indices and offsets are 32-bit */
		ret = -E2BIG;
		goto out;
	}
	if (t->kind == TOK_KIND_BPE && !tok_utf8_valid(text, len)) {
		ret = -EINVAL;
		goto out;
	}
	if (add_bos && t->bos >= 0 && (rc = tok_ids_push(&ids, t->bos)) < 0)
		goto fail;
	if (len && (rc = partition(t, text, len, parse_special, &f)) < 0)
		goto fail;

	bool prev_special = true; /* SPM: the first text fragment gets the space */
	for (size_t i = 0; i < f.n; i++) {
		const struct frag *x = &f.v[i];
		if (x->id >= 0) {
			rc = tok_ids_push(&ids, x->id);
			prev_special = true;
		} else if (t->kind == TOK_KIND_SPM) {
			rc = tok_spm_encode(t, text + x->off, x->len,
					    t->add_space_prefix && prev_special, &ids);
			prev_special = false;
		} else {
			rc = tok_bpe_encode(t, text + x->off, x->len, &ids);
		}
		if (rc < 0)
			goto fail;
	}
	if (out && cap && ids.n)
		memcpy(out, ids.v, (ids.n < cap ? ids.n : cap) * sizeof(*out));
	ret = (int64_t)ids.n;
	goto out;
fail:
	ret = rc;
out:
	free(ids.v);
	free(f.v);
	return ret;
}

/* Copy src to buf as far as it fits; the full length is what counts. */
static int64_t put(char *buf, size_t cap, size_t at, const char *src, size_t n)
{
	if (at < cap)
		memcpy(buf + at, src, (cap - at < n ? cap - at : n));
	return (int64_t)n;
}

/* Piece of id with up to one leading space dropped (strip). */
static int64_t piece(const struct tok *t, int32_t id, bool strip, bool render_special,
		     char *buf, size_t cap)
{
	if (id < 0 || id >= t->n_vocab)
		return -EINVAL;
	const struct tok_token *k = &t->tokens[id];
	if (!render_special && (k->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
		return 0;
	if (k->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
		size_t skip = strip && k->len && k->s[0] == ' ';
		return put(buf, cap, 0, k->s + skip, k->len - skip);
	}
	size_t n = 0;
	if (t->kind == TOK_KIND_SPM) {
		if (k->attr & TOK_ATTR_BYTE) {
			/* "<0xXX>" */
			if (k->len != 6)
				return 0;
			unsigned v = 0;
			for (int i = 3; i < 5; i++) {
				char c = k->s[i];
				v = v * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' :
					c >= 'A' && c <= 'F' ? c - 'A' + 10 :
					c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0);
			}
			if (strip && v == ' ')
				return 0;
			char c = (char)v;
			return put(buf, cap, 0, &c, 1);
		}
		if (!(k->attr & TOK_ATTR_NORMAL))
			return 0;
		size_t i = 0;
		while (i < k->len) {
			if (k->len - i >= 3 && !memcmp(k->s + i, "\xe2\x96\x81", 3)) {
				if (!(strip && i == 0))
					n += put(buf, cap, n, " ", 1);
				i += 3;
			} else {
				if (strip && i == 0 && k->s[0] == ' ')
					i++;
				size_t j = i;
				while (j < k->len && !(k->len - j >= 3 && !memcmp(k->s + j, "\xe2\x96\x81", 3)))
					j++;
				n += put(buf, cap, n, k->s + i, j - i);
				i = j;
			}
		}
		return (int64_t)n;
	}
	/* BPE: each character back to its byte; characters outside the map
	 * are copied as they are. */
	if (!(k->attr & TOK_ATTR_NORMAL))
		return 0;
	const unsigned char *s = (const unsigned char *)k->s;
	size_t i = 0;
	bool first = true;
	while (i < k->len) {
		size_t cl = tok_utf8_len(s[i]);
		if (cl > k->len - i)
			cl = k->len - i;
		uint32_t cp = s[i];
		if (cl == 2)
			cp = (uint32_t)(s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f);
		else if (cl > 2)
			cp = 0xffffffff;
		int b = cl <= 2 ? tok_bpe_char_byte(cp) : -1;
		if (b >= 0) {
			if (!(strip && first && b == ' ')) {
				char c = (char)b;
				n += put(buf, cap, n, &c, 1);
			}
		} else {
			n += put(buf, cap, n, k->s + i, cl);
		}
		first = false;
		i += cl;
	}
	return (int64_t)n;
}

int64_t tok_piece(const struct tok *t, int32_t id, bool strip_leading,
		  bool render_special, char *buf, size_t cap)
{
	return piece(t, id, strip_leading && t->add_space_prefix, render_special, buf, cap);
}

int64_t tok_decode(const struct tok *t, const int32_t *ids, size_t n,
		   bool render_special, char *buf, size_t cap)
{
	int64_t total = 0;
	bool strip = t->add_space_prefix;
	for (size_t i = 0; i < n; i++) {
		size_t at = (size_t)total;
		int64_t r = piece(t, ids[i], strip, render_special,
				  at < cap ? buf + at : NULL, at < cap ? cap - at : 0);
		if (r < 0) {
			total = r;
			break;
		}
		if (r > 0 || !(t->tokens[ids[i]].attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
			strip = false;
		total += r;
	}
	return total;
}
