/*
 * model_random.c: random-weight llama / qwen2 GGUF files (see model_random.h).
 *
 * Every tensor is generated as f32 rows from the seeded PRNG, then converted
 * to its storage type row by row; all tensor buffers stay alive until
 * gguf_writer_write() (the writer borrows them) and are freed after it.
 * The vocabulary strings live in one arena.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/model_random.h"
#include "dify-edge-core/runtime/sampler.h"

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

void model_random_defaults(struct model_random_spec *s)
{
	*s = (struct model_random_spec){
		.arch = MODEL_ARCH_LLAMA,
		.type = GGML_TYPE_Q8_0,
		.n_layer = 2, .n_embd = 64, .n_ff = 192, .n_head = 4, .n_head_kv = 2,
		.n_ctx = 256, .n_vocab = 512,
		.tied = false,
		.seed = 1,
	};
}

static const struct {
	const char *name;
	int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx, n_vocab;
	bool tied;
} presets[] = {
	{ .name = "tiny", .n_layer = 2, .n_embd = 64, .n_ff = 192, .n_head = 4, .n_head_kv = 2,
	  .n_ctx = 256, .n_vocab = 512, .tied = false },
	/* Qwen2-0.5B's shape (it ties its embeddings) */
	{ .name = "qwen2-0.5b", .n_layer = 24, .n_embd = 896, .n_ff = 4864, .n_head = 14,
	  .n_head_kv = 2, .n_ctx = 32768, .n_vocab = 151936, .tied = true },
};

int model_random_parse_dims(struct model_random_spec *s, const char *dims,
			    char *err, size_t errlen)
{
	char buf[512];
	if (strlen(dims) >= sizeof(buf))
		return fail(err, errlen, -EINVAL, "dims: spec too long");
	strcpy(buf, dims);
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq) {
			size_t i = 0, n = sizeof(presets) / sizeof(presets[0]);
			while (i < n && strcmp(presets[i].name, item))
				i++;
			if (i == n)
				return fail(err, errlen, -EINVAL,
					    "dims: unknown preset '%s' (presets: tiny, qwen2-0.5b)", item);
			s->n_layer = presets[i].n_layer;
			s->n_embd = presets[i].n_embd;
			s->n_ff = presets[i].n_ff;
			s->n_head = presets[i].n_head;
			s->n_head_kv = presets[i].n_head_kv;
			s->n_ctx = presets[i].n_ctx;
			s->n_vocab = presets[i].n_vocab;
			s->tied = presets[i].tied;
			continue;
		}
		*eq = 0;
		const char *key = item, *val = eq + 1;
		char *end = NULL;
		errno = 0;
		long long v = strtoll(val, &end, 10);
		if (errno || end == val || *end || v < 0 || v > (1LL << 31))
			return fail(err, errlen, -EINVAL, "dims: bad value '%s' for %s", val, key);
		const struct {
			const char *key;
			int64_t *dst;
		} keys[] = {
			{ "layers", &s->n_layer }, { "embd", &s->n_embd }, { "ff", &s->n_ff },
			{ "heads", &s->n_head }, { "kv_heads", &s->n_head_kv }, { "ctx", &s->n_ctx },
			{ "vocab", &s->n_vocab },
		};
		size_t i = 0, n = sizeof(keys) / sizeof(keys[0]);
		while (i < n && strcmp(keys[i].key, key))
			i++;
		if (i < n)
			*keys[i].dst = v;
		else if (!strcmp(key, "tied"))
			s->tied = v != 0;
		else
			return fail(err, errlen, -EINVAL,
				    "dims: unknown key '%s' (keys: layers, embd, ff, heads, kv_heads, ctx, vocab, tied)",
				    key);
	}
	return 0;
}

int model_random_parse_type(const char *name, enum ggml_type *out)
{
	for (int t = 0; t < GGML_TYPE_COUNT; t++) {
		if (ggml_blck_size((enum ggml_type)t) == 0)
			continue;
		if (!strcasecmp(ggml_type_name((enum ggml_type)t), name)) {
			*out = (enum ggml_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---------------------------------------------------------------- vocabulary */

static const char *const words[] = {
	"the", "a", "and", "to", "of", "in", "was", "he", "she", "it", "is", "that",
	"for", "on", "with", "they", "you", "his", "her", "at", "be", "this", "had",
	"have", "one", "day", "there", "were", "said", "big", "little", "time", "once",
	"upon", "girl", "boy", "play", "happy", "saw", "went", "friend", "mom", "dad",
	"dog", "cat", "tree", "sun", "ball", "park", "wanted", "loved", "named", "not",
	"what", "so", "but", "can", "all", "we", "from", "by", "up", "out", "do", "go",
	"hello", "world", "model", "edge", "token", "run", "fast", "small", "data",
	"Once", "The", "She", "He", "They", "One", "Lily", "Tom", "It", "I",
};

struct vocab {
	char *arena;
	size_t used, cap;
	const char **text;
	float *score;
	int32_t *type;
	int64_t n, cap_n;
	/* open addressing set of texts, for uniqueness */
	int64_t *slots;
	size_t nslots;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* Add TEXT unless present or the vocabulary is full; 1 when added. */
static int vocab_add(struct vocab *v, const char *text, float score, int32_t type)
{
	if (v->n >= v->cap_n)
		return 0;
	size_t i = fnv(text) & (v->nslots - 1);
	while (v->slots[i] >= 0) {
		if (!strcmp(v->text[v->slots[i]], text))
			return 0;
		i = (i + 1) & (v->nslots - 1);
	}
	size_t len = strlen(text) + 1;
	if (v->used + len > v->cap)
		return 0; /* sized generously below; cannot happen */
	char *dst = v->arena + v->used;
	memcpy(dst, text, len);
	v->used += len;
	v->slots[i] = v->n;
	v->text[v->n] = dst;
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
	return 1;
}

static int vocab_build(struct vocab *v, int64_t n_vocab)
{
	static const char sp[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */
	char buf[64];

	v->cap_n = n_vocab;
	v->cap = (size_t)n_vocab * 24 + 4096;
	v->nslots = 1;
	while (v->nslots < (size_t)n_vocab * 2)
		v->nslots <<= 1;
	v->arena = malloc(v->cap);
	v->text = malloc((size_t)n_vocab * sizeof(*v->text));
	v->score = malloc((size_t)n_vocab * sizeof(*v->score));
	v->type = malloc((size_t)n_vocab * sizeof(*v->type));
	v->slots = malloc(v->nslots * sizeof(*v->slots));
	if (!v->arena || !v->text || !v->score || !v->type || !v->slots)
		return -ENOMEM;
	for (size_t i = 0; i < v->nslots; i++)
		v->slots[i] = -1;

	vocab_add(v, "<unk>", 0, 2);
	vocab_add(v, "<s>", 0, 3);
	vocab_add(v, "</s>", 0, 3);
	for (int b = 0; b < 256; b++) {
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		vocab_add(v, buf, 0, 6);
	}
	float score = -1;
	vocab_add(v, sp, score--, 1);
	for (int c = 33; c < 127; c++) {
		snprintf(buf, sizeof(buf), "%c", c);
		vocab_add(v, buf, score--, 1);
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			snprintf(buf, sizeof(buf), "%s%c", sp, c);
			vocab_add(v, buf, score--, 1);
		}
	}
	/* words, each after its prefixes: SentencePiece merges adjacent pieces
	 * only into pieces that exist, so "▁time" is reachable as ▁t+i, ▁ti+m,
	 * ▁tim+e */
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t wl = strlen(words[i]);
		for (size_t k = 2; k <= wl; k++) {
			snprintf(buf, sizeof(buf), "%s%.*s", sp, (int)k, words[i]);
			vocab_add(v, buf, score--, 1);
			snprintf(buf, sizeof(buf), "%.*s", (int)k, words[i]);
			vocab_add(v, buf, score--, 1);
		}
	}
	/* letter pairs, triples, quads: with and without the space mark */
	for (int len = 2; len <= 4 && v->n < n_vocab; len++) {
		long combos = 1;
		for (int i = 0; i < len; i++)
			combos *= 26;
		for (long c = 0; c < combos && v->n < n_vocab; c++) {
			char w[8];
			long x = c;
			for (int i = len - 1; i >= 0; i--) {
				w[i] = (char)('a' + x % 26);
				x /= 26;
			}
			w[len] = 0;
			vocab_add(v, w, score--, 1);
			snprintf(buf, sizeof(buf), "%s%s", sp, w);
			vocab_add(v, buf, score--, 1);
		}
	}
	/* beyond 26^4 pieces: numbered filler, never produced by the encoder's
	 * merges of ordinary text */
	for (long i = 0; v->n < n_vocab; i++) {
		snprintf(buf, sizeof(buf), "<extra_%ld>", i);
		vocab_add(v, buf, score--, 4);
	}
	return 0;
}

static void vocab_free(struct vocab *v)
{
	free(v->arena);
	free(v->text);
	free(v->score);
	free(v->type);
	free(v->slots);
}

/* ---------------------------------------------------------------- tensors */

struct wtensor {
	char name[64];
	enum ggml_type type;
	int64_t ne[2];
	uint32_t n_dims;
	void *data;
};

static float urand(struct sampler_rng *r, float a)
{
	return (float)((sampler_rng_uniform(r) * 2.0 - 1.0) * a);
}

/* kind: 0 matrix, 1 norm, 2 bias */
static int gen_tensor(struct wtensor *t, const struct model_random_spec *s, int kind,
		      struct sampler_rng *rng, float *row)
{
	enum ggml_type type = kind == 0 ? s->type : GGML_TYPE_F32;
	for (int i = 0; i < s->n_override; i++)
		if (!strcmp(s->override[i].name, t->name))
			type = s->override[i].type;
	t->type = type;
	int64_t k = t->ne[0], rows = t->n_dims == 2 ? t->ne[1] : 1;
	size_t rs = ggml_row_size(type, k);
	if (rs == 0)
		return -EINVAL;
	t->data = malloc(rs * (size_t)rows);
	if (!t->data)
		return -ENOMEM;
	bool can_convert = type == GGML_TYPE_F32 || kern_type_supported(type);
	float a = kind == 0 ? (float)sqrt(3.0 / (double)k) : 0.1f;
	for (int64_t r = 0; r < rows; r++) {
		char *dst = (char *)t->data + rs * (size_t)r;
		if (!can_convert) {
			for (size_t b = 0; b < rs; b++)
				dst[b] = (char)(sampler_rng_next(rng) >> 56);
			continue;
		}
		for (int64_t i = 0; i < k; i++)
			row[i] = (kind == 1 ? 1.0f : 0.0f) + urand(rng, a);
		if (type == GGML_TYPE_F32)
			memcpy(dst, row, (size_t)k * sizeof(float));
		else
			kern_quantize_row(type, row, dst, k);
	}
	return 0;
}

int model_random_write(const struct model_random_spec *s, const char *path,
		       char *err, size_t errlen)
{
	struct gguf_writer *w = NULL;
	struct wtensor *ts = NULL;
	struct vocab voc = { 0 };
	float *row = NULL;
	int64_t nt = 0;
	int rc;
	char key[128];

	kern_init();
	const char *aname = s->arch_name ? s->arch_name : model_arch_name(s->arch);
	if (s->arch != MODEL_ARCH_LLAMA && s->arch != MODEL_ARCH_QWEN2) {
		rc = fail(err, errlen, -EINVAL, "write-random: unknown architecture");
		goto out;
	}
	if (!kern_type_supported(s->type)) {
		rc = fail(err, errlen, -EINVAL, "write-random: type %s not supported (f32, f16, q8_0, q4_0)",
			  ggml_type_name(s->type));
		goto out;
	}
	if (s->n_layer < 1 || s->n_embd < 1 || s->n_ff < 1 || s->n_head < 1 || s->n_head_kv < 1 ||
	    s->n_ctx < 1 || s->n_vocab < 1) {
		rc = fail(err, errlen, -EINVAL, "write-random: every dimension must be at least 1");
		goto out;
	}
	if (s->n_embd % s->n_head || s->n_head % s->n_head_kv || (s->n_embd / s->n_head) % 2) {
		rc = fail(err, errlen, -EINVAL,
			  "write-random: embd=%lld must be a multiple of heads=%lld (even head size), heads a multiple of kv_heads=%lld",
			  (long long)s->n_embd, (long long)s->n_head, (long long)s->n_head_kv);
		goto out;
	}
	int64_t blk = ggml_blck_size(s->type);
	if (s->n_embd % blk || s->n_ff % blk) {
		rc = fail(err, errlen, -EINVAL, "write-random: embd=%lld and ff=%lld must be multiples of %lld (the %s block)",
			  (long long)s->n_embd, (long long)s->n_ff, (long long)blk, ggml_type_name(s->type));
		goto out;
	}
	if (s->n_vocab < 260) {
		rc = fail(err, errlen, -EINVAL, "write-random: vocab=%lld is too small (at least 260: 3 special + 256 bytes + 1)",
			  (long long)s->n_vocab);
		goto out;
	}

	w = gguf_writer_new();
	if (!w || vocab_build(&voc, s->n_vocab) < 0) {
		rc = fail(err, errlen, -ENOMEM, "write-random: out of memory");
		goto out;
	}
	int64_t hd = s->n_embd / s->n_head;
	bool qwen = s->arch == MODEL_ARCH_QWEN2;
#define SETK(suffix) (snprintf(key, sizeof(key), "%s.%s", aname, suffix), key)
	if ((rc = gguf_writer_set_str(w, "general.architecture", aname)) < 0 ||
	    (rc = gguf_writer_set_str(w, "general.name", "dify-edge random")) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("context_length"), (uint32_t)s->n_ctx)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("embedding_length"), (uint32_t)s->n_embd)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("block_count"), (uint32_t)s->n_layer)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("feed_forward_length"), (uint32_t)s->n_ff)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("attention.head_count"), (uint32_t)s->n_head)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("attention.head_count_kv"), (uint32_t)s->n_head_kv)) < 0 ||
	    (rc = gguf_writer_set_f32(w, SETK("attention.layer_norm_rms_epsilon"), qwen ? 1e-6f : 1e-5f)) < 0 ||
	    (rc = gguf_writer_set_f32(w, SETK("rope.freq_base"), qwen ? 1000000.0f : 10000.0f)) < 0 ||
	    (rc = gguf_writer_set_u32(w, SETK("rope.dimension_count"), (uint32_t)hd)) < 0 ||
	    (rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) < 0 ||
	    (rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", voc.text, (size_t)voc.n)) < 0 ||
	    (rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, voc.score, (size_t)voc.n)) < 0 ||
	    (rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, voc.type, (size_t)voc.n)) < 0 ||
	    (rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) < 0 ||
	    (rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) < 0 ||
	    (rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) < 0 ||
	    (rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) < 0 ||
	    (rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)) < 0) {
		fail(err, errlen, rc, "write-random: metadata: %s", strerror(-rc));
		goto out;
	}
#undef SETK

	int64_t E = s->n_embd, Eq = s->n_head * hd, Ekv = s->n_head_kv * hd, F = s->n_ff;
	int64_t max_t = 3 + s->n_layer * 12;
	ts = calloc((size_t)max_t, sizeof(*ts));
	int64_t kmax = E > F ? E : F;
	row = malloc((size_t)kmax * sizeof(float));
	if (!ts || !row) {
		rc = fail(err, errlen, -ENOMEM, "write-random: out of memory");
		goto out;
	}
	struct sampler_rng rng;
	sampler_rng_seed(&rng, s->seed);
	/* name, ne0, ne1 (0: vector), kind */
	struct spec_t {
		const char *fmt; /* the name; per layer without "blk.N." */
		int64_t ne0, ne1;
		int kind;
	};
	const struct spec_t top[] = {
		{ "token_embd.weight", E, s->n_vocab, 0 },
		{ "output_norm.weight", E, 0, 1 },
		{ "output.weight", E, s->n_vocab, 0 },
	};
	const struct spec_t per_layer[] = {
		{ "attn_norm.weight", E, 0, 1 },
		{ "attn_q.weight", E, Eq, 0 },
		{ "attn_k.weight", E, Ekv, 0 },
		{ "attn_v.weight", E, Ekv, 0 },
		{ "attn_q.bias", Eq, 0, 2 },
		{ "attn_k.bias", Ekv, 0, 2 },
		{ "attn_v.bias", Ekv, 0, 2 },
		{ "attn_output.weight", Eq, E, 0 },
		{ "ffn_norm.weight", E, 0, 1 },
		{ "ffn_gate.weight", E, F, 0 },
		{ "ffn_up.weight", E, F, 0 },
		{ "ffn_down.weight", F, E, 0 },
	};
	for (int64_t l = -1; l < s->n_layer; l++) {
		const struct spec_t *list = l < 0 ? top : per_layer;
		size_t nl = l < 0 ? sizeof(top) / sizeof(top[0]) : sizeof(per_layer) / sizeof(per_layer[0]);
		for (size_t i = 0; i < nl; i++) {
			if (l < 0 && i == 2 && s->tied)
				continue;
			if (list[i].kind == 2 && !qwen)
				continue;
			struct wtensor *t = &ts[nt];
			if (l < 0)
				snprintf(t->name, sizeof(t->name), "%s", list[i].fmt);
			else
				snprintf(t->name, sizeof(t->name), "blk.%lld.%s", (long long)l, list[i].fmt);
			t->ne[0] = list[i].ne0;
			t->ne[1] = list[i].ne1 ? list[i].ne1 : 1;
			t->n_dims = list[i].ne1 ? 2 : 1;
			if ((rc = gen_tensor(t, s, list[i].kind, &rng, row)) < 0) {
				fail(err, errlen, rc, "write-random: %s: %s", t->name,
				     rc == -EINVAL ? "row not a multiple of the type's block" : "out of memory");
				goto out;
			}
			nt++;
			if ((rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data)) < 0) {
				fail(err, errlen, rc, "write-random: tensor %s: %s", t->name, strerror(-rc));
				goto out;
			}
		}
	}
	rc = gguf_writer_write(w, path, err, errlen);
out:
	gguf_writer_free(w);
	for (int64_t i = 0; i < nt; i++)
		free(ts[i].data);
	free(ts);
	free(row);
	vocab_free(&voc);
	return rc;
}
