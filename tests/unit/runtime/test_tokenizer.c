/*
 * test_tokenizer.c: the SPM and byte-level BPE tokenizers.
 *
 * Real vocabularies from the shared testdata: every case of llama.cpp's
 * ggml-vocab-llama-spm and ggml-vocab-gpt-2 vectors must come out exactly
 * (no BOS, no special-token parsing, the SPM leading space added), and
 * decode back to the input; stories260K's 512-token vocabulary must encode
 * "Once upon a time" as the ids the model itself generates for it.
 *
 * Small vocabularies written with the GGUF writer pin the rules one at a
 * time, in tables: merge order by score (and the leftmost pair on ties),
 * byte fallback and unk, the leading-space rule and add_space_prefix,
 * special tokens (control only with parse_special, user-defined always),
 * the EOG set, BPE merge ranks, and the gpt-2 / qwen2 / llama3 pre-tokenizer
 * splits (checked word by word through tok_bpe_split).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dify-edge-core/runtime/gguf.h"
#include "dify-edge-core/runtime/tokenizer.h"
#include "dify-edge-core/runtime/tokenizer_internal.h"

static const char *testdata(void)
{
	static const char *const dirs[] = { NULL, "../shared/testdata", "/work/shared/testdata" };
	struct stat st;
	const char *env = getenv("TESTDATA");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		const char *d = i == 0 ? env : dirs[i];
		if (d && *d && stat(d, &st) == 0 && S_ISDIR(st.st_mode))
			return d;
	}
	return NULL;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	size_t r;
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *b = realloc(buf, cap * 2 + 1);
			if (!b) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* ---------------------------------------------------------- real vectors */

#define SEP "\n__ggml_vocab_test__\n"

struct vectors {
	char *inp, *out;
	size_t n;
	const char *text[128];
	size_t text_len[128];
	const char *ids[128]; /* the expected line, NUL-terminated in out */
};

/* .inp: inputs each followed by SEP; .out: one line of ids per input. */
static int load_vectors(const char *dir, const char *name, struct vectors *v)
{
	char path[4096];
	size_t ilen, olen;
	memset(v, 0, sizeof(*v));
	snprintf(path, sizeof(path), "%s/%s.inp", dir, name);
	v->inp = read_file(path, &ilen);
	snprintf(path, sizeof(path), "%s/%s.out", dir, name);
	v->out = read_file(path, &olen);
	if (!v->inp || !v->out)
		return -1;
	const char *p = v->inp, *end = v->inp + ilen;
	while (p < end && v->n < 128) {
		const char *s = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
		if (!s)
			break;
		v->text[v->n] = p;
		v->text_len[v->n] = (size_t)(s - p);
		v->n++;
		p = s + strlen(SEP);
	}
	size_t k = 0;
	char *q = v->out;
	while (k < v->n && *q) {
		char *nl = strchr(q, '\n');
		if (nl)
			*nl = '\0';
		v->ids[k++] = q;
		if (!nl)
			break;
		q = nl + 1;
	}
	return k == v->n ? 0 : -1;
}

static void free_vectors(struct vectors *v)
{
	free(v->inp);
	free(v->out);
}

static void ids_to_str(const int32_t *ids, int64_t n, char *buf, size_t cap)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int64_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, " %d", ids[i]);
}

struct open_tok {
	struct gguf_file *g;
	struct tok *t;
};

static bool open_real(const char *file, struct open_tok *o)
{
	const char *dir = testdata();
	char path[4096], err[512];
	if (!dir) {
		print_message("testdata directory absent (set TESTDATA): skipping %s\n", file);
		return false;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (access(path, R_OK) != 0) {
		print_message("%s absent: skipping\n", path);
		return false;
	}
	assert_int_equal(gguf_open(path, NULL, &o->g, err, sizeof(err)), 0);
	o->t = tok_new(o->g, err, sizeof(err));
	if (!o->t)
		fail_msg("tok_new(%s): %s", file, err);
	return true;
}

static void close_tok(struct open_tok *o)
{
	tok_free(o->t);
	gguf_close(o->g);
}

static void check_vectors(const char *file, enum tok_kind kind, int32_t n_vocab)
{
	struct open_tok o;
	struct vectors v;
	char name[256], got[16384];
	int32_t ids[4096];
	char dec[16384];
	int bad = 0, rt = 0;

	if (!open_real(file, &o)) {
		skip();
		return;
	}
	assert_int_equal(tok_kind(o.t), kind);
	assert_int_equal(tok_n_vocab(o.t), n_vocab);
	snprintf(name, sizeof(name), "%s", file);
	if (load_vectors(testdata(), name, &v) < 0) {
		free_vectors(&v);
		close_tok(&o);
		fail_msg("%s.inp/.out: unreadable or not matching", file);
	}
	assert_int_equal(v.n, 46);
	for (size_t i = 0; i < v.n; i++) {
		int64_t n = tok_encode(o.t, v.text[i], v.text_len[i], false, false, ids, 4096);
		assert_true(n >= 0 && n <= 4096);
		ids_to_str(ids, n, got, sizeof(got));
		if (strcmp(got, v.ids[i]) != 0) {
			print_message("%s case %zu (%zu bytes): got '%s' want '%s'\n", file, i,
				      v.text_len[i], got, v.ids[i]);
			bad++;
		}
		/* the buffer-too-small protocol: the full count, nothing past cap */
		if (n > 1) {
			int32_t small[2] = { -7, -7 };
			assert_int_equal(tok_encode(o.t, v.text[i], v.text_len[i], false, false, small, 1), n);
			assert_int_equal(small[0], ids[0]);
			assert_int_equal(small[1], -7);
		}
		int64_t d = tok_decode(o.t, ids, (size_t)n, false, dec, sizeof(dec));
		if (d != (int64_t)v.text_len[i] || memcmp(dec, v.text[i], v.text_len[i]) != 0) {
			print_message("%s case %zu: decode does not round-trip ('%.*s')\n", file, i,
				      (int)(d > 0 && d < (int64_t)sizeof(dec) ? d : 0), dec);
			rt++;
		}
	}
	print_message("%s: %zu cases, %d mismatches, %d round-trip failures\n", file, v.n, bad, rt);
	free_vectors(&v);
	close_tok(&o);
	assert_int_equal(bad, 0);
	assert_int_equal(rt, 0);
}

static void test_vectors_llama_spm(void **state)
{
	(void)state;
	check_vectors("ggml-vocab-llama-spm.gguf", TOK_KIND_SPM, 32000);
}

static void test_vectors_gpt2(void **state)
{
	(void)state;
	check_vectors("ggml-vocab-gpt-2.gguf", TOK_KIND_BPE, 50257);
}

/* stories260K: the first four ids it generates from BOS are its text "Once
 * upon a time" (stories260K.greedy200.txt); the encoder must agree. */
static void test_stories260k(void **state)
{
	struct open_tok o;
	int32_t ids[16];
	char buf[64];
	(void)state;
	if (!open_real("stories260K.gguf", &o)) {
		skip();
		return;
	}
	assert_int_equal(tok_kind(o.t), TOK_KIND_SPM);
	assert_int_equal(tok_n_vocab(o.t), 512);
	assert_int_equal(tok_bos(o.t), 1);
	assert_int_equal(tok_eos(o.t), 2);
	assert_true(tok_is_eog(o.t, 2));
	assert_false(tok_is_eog(o.t, 1));
	assert_true(tok_is_control(o.t, 1));
	assert_true(tok_add_bos_default(o.t));
	assert_int_equal(tok_encode(o.t, "Once upon a time", 16, true, false, ids, 16), 5);
	static const int32_t want[] = { 1, 403, 407, 261, 378 };
	assert_memory_equal(ids, want, sizeof(want));
	/* BOS renders as nothing and the leading space goes */
	int64_t n = tok_decode(o.t, ids, 5, false, buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_memory_equal(buf, "Once upon a time", 16);
	/* a rendered BOS is the first piece with text: the space stays (as in
	 * llama.cpp) */
	n = tok_decode(o.t, ids, 5, true, buf, sizeof(buf));
	assert_int_equal(n, 20);
	assert_memory_equal(buf, "<s> Once upon a time", 20);
	/* pieces: the leading space only when asked to keep it */
	assert_int_equal(tok_piece(o.t, 403, false, false, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, " Once", 5);
	assert_int_equal(tok_piece(o.t, 403, true, false, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "Once", 4);
	assert_int_equal(tok_piece(o.t, 1, false, false, buf, sizeof(buf)), 0);
	assert_int_equal(tok_piece(o.t, 512, false, false, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_piece(o.t, -1, false, false, buf, sizeof(buf)), -EINVAL);
	/* byte token 13 is <0x0A> */
	assert_int_equal(tok_piece(o.t, 13, false, false, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '\n');
	close_tok(&o);
}

/* -------------------------------------------------- written vocabularies */

struct vb {
	const char *strs[1024];
	float scores[1024];
	int32_t types[1024];
	char owned[300][8]; /* <0xXX> and byte-char texts */
	size_t n, n_owned;
	const char *merges[64];
	size_t n_merges;
	bool short_scores; /* write one score less than tokens */
};

static int32_t vb_add(struct vb *b, const char *s, float score, int32_t type)
{
	b->strs[b->n] = s;
	b->scores[b->n] = score;
	b->types[b->n] = type;
	return (int32_t)b->n++;
}

static void vb_add_bytes_spm(struct vb *b)
{
	for (int i = 0; i < 256; i++) {
		char *s = b->owned[b->n_owned++];
		snprintf(s, 8, "<0x%02X>", i);
		vb_add(b, s, 0, 6);
	}
}

static void vb_add_bytes_bpe(struct vb *b)
{
	for (int i = 0; i < 256; i++) {
		char *s = b->owned[b->n_owned++];
		size_t n = tok_bpe_byte_char((uint8_t)i, s);
		s[n] = '\0';
		vb_add(b, s, 0, 1);
	}
}

typedef void (*vb_extra_fn)(struct gguf_writer *w);

/* Write the vocabulary to a temporary GGUF file and open its tokenizer. */
static struct tok *vb_open(const struct vb *b, const char *model, const char *pre,
			   vb_extra_fn extra, struct gguf_file **g, char *err, size_t errlen)
{
	char path[] = "/tmp/test_tokenizer.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct gguf_writer *w = gguf_writer_new();
	assert_non_null(w);
	assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	if (model)
		assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", model), 0);
	if (pre)
		assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), 0);
	assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", b->strs, b->n), 0);
	assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32,
					     b->scores, b->n - b->short_scores), 0);
	assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
					     b->types, b->n), 0);
	if (b->n_merges)
		assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", b->merges,
							 b->n_merges), 0);
	if (extra)
		extra(w);
	char werr[256];
	assert_int_equal(gguf_writer_write(w, path, werr, sizeof(werr)), 0);
	gguf_writer_free(w);
	assert_int_equal(gguf_open(path, NULL, g, werr, sizeof(werr)), 0);
	unlink(path);
	return tok_new(*g, err, errlen);
}

/* Split "a b c" into token ids by text (the test vocabularies have no token
 * with an ASCII space); -2 for a text not in the vocabulary. */
static size_t want_ids(const struct tok *t, const char *spec, int32_t *out, size_t cap)
{
	size_t n = 0;
	const char *p = spec;
	while (*p && n < cap) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		int32_t id = tok_lookup(t, p, len);
		out[n++] = id >= 0 ? id : -2;
		p += len + (e != NULL);
	}
	return n;
}

static void expect_encoding(const struct tok *t, const char *label, const char *text,
			    bool bos, bool special, const char *spec)
{
	int32_t got[128], want[128];
	int64_t n = tok_encode(t, text, strlen(text), bos, special, got, 128);
	size_t m = want_ids(t, spec, want, 128);
	char gs[1024], ws[1024];
	ids_to_str(got, n, gs, sizeof(gs));
	ids_to_str(want, (int64_t)m, ws, sizeof(ws));
	if (n != (int64_t)m || memcmp(got, want, m * sizeof(*got)) != 0)
		fail_msg("%s: '%s': got [%s] want [%s] (%s)", label, text, gs, ws, spec);
}

/* SPM vocabularies: <unk> <s> </s>, the 256 byte tokens (unless nobytes),
 * then "▁", "a", "b", "c", "▁a" (score sa), "ab" (score sb), "▁b", the
 * user-defined "<tool>", and "<|im_end|>" typed normal (made control+EOG);
 * SPM_CROSS adds "a▁" (score 0, the best). */
enum spm_variant { SPM_A_FIRST, SPM_AB_FIRST, SPM_TIE, SPM_NOBYTES, SPM_CROSS };

static void build_spm(struct vb *b, enum spm_variant var)
{
	memset(b, 0, sizeof(*b));
	vb_add(b, "<unk>", 0, 2);
	vb_add(b, "<s>", 0, 3);
	vb_add(b, "</s>", 0, 3);
	if (var != SPM_NOBYTES)
		vb_add_bytes_spm(b);
	vb_add(b, "\xe2\x96\x81", -5, 1);
	vb_add(b, "a", -5, 1);
	vb_add(b, "b", -5, 1);
	vb_add(b, "c", -5, 1);
	vb_add(b, "\xe2\x96\x81" "a", var == SPM_AB_FIRST ? -2.0f : -1.0f, 1);
	vb_add(b, "ab", var == SPM_A_FIRST ? -2.0f : -1.0f, 1);
	vb_add(b, "\xe2\x96\x81" "b", -1.5f, 1);
	vb_add(b, "<tool>", 0, 4);
	vb_add(b, "<|im_end|>", 0, 1);
	if (var == SPM_CROSS) /* a token across a word boundary: no per-word merging */
		vb_add(b, "a" "\xe2\x96\x81", 0, 1);
}

static void extra_no_prefix(struct gguf_writer *w)
{
	assert_int_equal(gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false), 0);
}

#define U "\xe2\x96\x81" /* ▁ */

struct enc_case {
	enum spm_variant var;
	bool no_prefix;
	const char *text;
	bool bos, special;
	const char *want;     /* token texts joined by ' ' */
	bool round_trip;      /* decode gives the text back */
};

static const struct enc_case spm_cases[] = {
	{ .var = SPM_A_FIRST, .text = "ab", .want = U "a b", .round_trip = true },
	{ .var = SPM_AB_FIRST, .text = "ab", .want = U " ab", .round_trip = true },
	{ .var = SPM_TIE, .text = "ab", .want = U "a b", .round_trip = true },
	{ .var = SPM_A_FIRST, .text = "", .want = "", .round_trip = true },
	{ .var = SPM_A_FIRST, .text = "", .bos = true, .want = "<s>", .round_trip = true },
	{ .var = SPM_A_FIRST, .text = " ", .want = U " " U, .round_trip = true },
	{ .var = SPM_A_FIRST, .text = "b b", .bos = true, .want = "<s> " U "b " U "b", .round_trip = true },
	/* byte fallback: é is not a token, nor is 's' */
	{ .var = SPM_A_FIRST, .text = "c \xc3\xa9", .want = U " c " U " <0xC3> <0xA9>", .round_trip = true },
	{ .var = SPM_A_FIRST, .text = "a<s>b", .want = U "a <0x3C> <0x73> <0x3E> b", .round_trip = true },
	/* invalid UTF-8 is bytes too */
	{ .var = SPM_A_FIRST, .text = "\xff" "a", .want = U " <0xFF> <0x61>", .round_trip = true },
	/* no byte tokens: one unk per character */
	{ .var = SPM_NOBYTES, .text = "a\xc3\xa9" "b", .want = U "a <unk> b" },
	/* control tokens only with parse_special; text after one gets the space */
	{ .var = SPM_A_FIRST, .text = "a<s>b", .bos = true, .special = true, .want = "<s> " U "a <s> " U "b" },
	{ .var = SPM_A_FIRST, .text = "<s>", .special = true, .want = "<s>" },
	{ .var = SPM_A_FIRST, .text = "a<|im_end|>", .special = true, .want = U "a <|im_end|>" },
	/* user-defined tokens are split out always */
	{ .var = SPM_A_FIRST, .text = "a<tool>b", .want = U "a <tool> " U "b" },
	/* a vocabulary with a token across words is merged as one piece */
	{ .var = SPM_CROSS, .text = "a b", .want = U " a" U " b", .round_trip = true },
	{ .var = SPM_A_FIRST, .text = "a b", .want = U "a " U "b", .round_trip = true },
	/* add_space_prefix = false */
	{ .var = SPM_A_FIRST, .no_prefix = true, .text = "ab", .want = "ab", .round_trip = true },
	{ .var = SPM_A_FIRST, .no_prefix = true, .text = " ab", .want = U "a b", .round_trip = true },
};

static void test_spm_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(spm_cases) / sizeof(spm_cases[0]); i++) {
		const struct enc_case *c = &spm_cases[i];
		struct vb b;
		struct gguf_file *g = NULL;
		char err[256], label[64], dec[256];
		build_spm(&b, c->var);
		struct tok *t = vb_open(&b, "llama", NULL, c->no_prefix ? extra_no_prefix : NULL,
					&g, err, sizeof(err));
		if (!t)
			fail_msg("tok_new: %s", err);
		snprintf(label, sizeof(label), "spm case %zu", i);
		expect_encoding(t, label, c->text, c->bos, c->special, c->want);
		if (c->round_trip) {
			int32_t ids[128];
			int64_t n = tok_encode(t, c->text, strlen(c->text), c->bos, false, ids, 128);
			int64_t d = tok_decode(t, ids, (size_t)n, false, dec, sizeof(dec));
			if (d != (int64_t)strlen(c->text) || memcmp(dec, c->text, (size_t)d) != 0)
				fail_msg("%s: decode gives '%.*s'", label, (int)(d > 0 ? d : 0), dec);
		}
		tok_free(t);
		gguf_close(g);
	}
}

static void test_spm_special_tokens(void **state)
{
	struct vb b;
	struct gguf_file *g = NULL;
	char err[256], buf[64];
	(void)state;
	build_spm(&b, SPM_A_FIRST);
	struct tok *t = vb_open(&b, "llama", NULL, NULL, &g, err, sizeof(err));
	assert_non_null(t);
	int32_t im_end = tok_lookup(t, "<|im_end|>", 10);
	int32_t tool = tok_lookup(t, "<tool>", 6);
	assert_true(im_end > 0 && tool > 0);
	/* llama.cpp's defaults for SPM: unk 0, bos 1, eos 2 */
	assert_int_equal(tok_unk(t), 0);
	assert_int_equal(tok_bos(t), 1);
	assert_int_equal(tok_eos(t), 2);
	assert_true(tok_is_eog(t, 2));
	assert_true(tok_is_eog(t, im_end));   /* by its text */
	assert_true(tok_is_control(t, im_end)); /* and typed control */
	assert_int_equal(tok_token_type(t, im_end), 3);
	assert_int_equal(tok_eot(t), im_end);
	assert_false(tok_is_eog(t, tool));
	assert_false(tok_is_eog(t, -1));
	assert_int_equal(tok_token_type(t, tool), 4);
	assert_int_equal(tok_token_type(t, 3), 6);
	assert_int_equal(tok_token_type(t, 99999), -EINVAL);
	assert_int_equal(tok_lookup(t, "nope", 4), -1);
	assert_int_equal(tok_lookup(t, "", 0), -1);
	/* control pieces are empty unless rendered; user-defined always show */
	assert_int_equal(tok_piece(t, im_end, false, false, buf, sizeof(buf)), 0);
	assert_int_equal(tok_piece(t, im_end, false, true, buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "<|im_end|>", 10);
	assert_int_equal(tok_piece(t, tool, false, false, buf, sizeof(buf)), 6);
	/* a short buffer gets what fits; the full length comes back */
	assert_int_equal(tok_piece(t, tool, false, false, buf, 3), 6);
	assert_memory_equal(buf, "<to", 3);
	/* decode: the strip goes to the first piece with text */
	int32_t ids[] = { 1, tok_lookup(t, U "a", 4), im_end };
	assert_int_equal(tok_decode(t, ids, 3, false, buf, sizeof(buf)), 1);
	assert_memory_equal(buf, "a", 1);
	assert_int_equal(tok_decode(t, ids, 3, true, buf, sizeof(buf)), 15);
	assert_memory_equal(buf, "<s> a<|im_end|>", 15);
	int32_t bad[] = { 1, 70000 };
	assert_int_equal(tok_decode(t, bad, 2, false, buf, sizeof(buf)), -EINVAL);
	tok_free(t);
	gguf_close(g);
}

/* BPE vocabularies: the 256 byte characters (id = byte), then merge results. */
static void build_bpe(struct vb *b, bool swap_ranks)
{
	memset(b, 0, sizeof(*b));
	vb_add_bytes_bpe(b);
	vb_add(b, "12", 0, 1);
	vb_add(b, "'S", 0, 1);
	vb_add(b, "ab", 0, 1);
	vb_add(b, "bc", 0, 1);
	vb_add(b, "\xc4\xa0" "a", 0, 1); /* Ġa */
	vb_add(b, "123", 0, 1);
	vb_add(b, "<|endoftext|>", 0, 3);
	vb_add(b, "<|im_end|>", 0, 3);
	vb_add(b, "<|im_start|>", 0, 3);
	b->merges[b->n_merges++] = "1 2";
	b->merges[b->n_merges++] = "' S";
	b->merges[b->n_merges++] = swap_ranks ? "b c" : "a b";
	b->merges[b->n_merges++] = swap_ranks ? "a b" : "b c";
	b->merges[b->n_merges++] = "\xc4\xa0 a";
	b->merges[b->n_merges++] = "12 3";
	b->merges[b->n_merges++] = "x y";       /* halves not both tokens: ignored */
}

struct bpe_case {
	const char *pre;
	bool swap;
	const char *text;
	bool special;
	const char *want;
};

static const struct bpe_case bpe_cases[] = {
	{ .pre = "gpt-2", .text = "12", .want = "12" },
	{ .pre = "qwen2", .text = "12", .want = "1 2" },
	{ .pre = "llama-bpe", .text = "1234", .want = "123 4" },
	{ .pre = "gpt-2", .text = "'S", .want = "' S" },
	{ .pre = "qwen2", .text = "'S", .want = "'S" },
	{ .pre = "gpt-2", .text = "abc", .want = "ab c" },
	{ .pre = "gpt-2", .swap = true, .text = "abc", .want = "a bc" },
	{ .pre = "gpt-2", .text = " a", .want = "\xc4\xa0" "a" },
	{ .pre = "gpt-2", .text = "a\n", .want = "a \xc4\x8a" },
	{ .pre = NULL, .text = "12", .want = "12" }, /* no pre: gpt-2 */
	{ .pre = "qwen2", .text = "a<|im_end|>", .special = true, .want = "a <|im_end|>" },
	{ .pre = "qwen2", .text = "<|im_start|>", .special = false,
	  .want = "< | i m _ s t a r t | >" },
};

static void test_bpe_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bpe_cases) / sizeof(bpe_cases[0]); i++) {
		const struct bpe_case *c = &bpe_cases[i];
		struct vb b;
		struct gguf_file *g = NULL;
		char err[256], label[64], dec[256];
		int32_t ids[128];
		build_bpe(&b, c->swap);
		struct tok *t = vb_open(&b, "gpt2", c->pre, NULL, &g, err, sizeof(err));
		if (!t)
			fail_msg("tok_new: %s", err);
		snprintf(label, sizeof(label), "bpe case %zu (%s)", i, c->pre ? c->pre : "no pre");
		expect_encoding(t, label, c->text, false, c->special, c->want);
		int64_t n = tok_encode(t, c->text, strlen(c->text), false, c->special, ids, 128);
		int64_t d = tok_decode(t, ids, (size_t)n, true, dec, sizeof(dec));
		if (d != (int64_t)strlen(c->text) || memcmp(dec, c->text, (size_t)d) != 0)
			fail_msg("%s: decode gives '%.*s'", label, (int)(d > 0 ? d : 0), dec);
		tok_free(t);
		gguf_close(g);
	}
}

static void test_bpe_bytes_and_errors(void **state)
{
	struct vb b;
	struct gguf_file *g = NULL;
	char err[256], text[512], dec[1024];
	int32_t ids[1024];
	(void)state;
	build_bpe(&b, false);
	struct tok *t = vb_open(&b, "gpt2", "qwen2", NULL, &g, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(tok_kind(t), TOK_KIND_BPE);
	assert_false(tok_add_space_prefix(t));
	assert_false(tok_add_bos_default(t));
	assert_int_equal(tok_bos(t), -1);
	/* <|endoftext|> and <|im_end|> end generation by their text */
	assert_true(tok_is_eog(t, tok_lookup(t, "<|endoftext|>", 13)));
	assert_true(tok_is_eog(t, tok_lookup(t, "<|im_end|>", 10)));
	assert_false(tok_is_eog(t, tok_lookup(t, "<|im_start|>", 12)));
	/* the byte map is a bijection: every byte round-trips alone */
	for (int i = 0; i < 256; i++) {
		char c[2];
		size_t n = tok_bpe_byte_char((uint8_t)i, c);
		uint32_t cp = n == 1 ? (unsigned char)c[0] :
			(uint32_t)((unsigned char)c[0] & 0x1f) << 6 | ((unsigned char)c[1] & 0x3f);
		assert_int_equal(tok_bpe_char_byte(cp), i);
		char one[8];
		assert_int_equal(tok_piece(t, i, false, false, one, sizeof(one)), 1);
		assert_int_equal((unsigned char)one[0], i);
	}
	/* strip_leading is the SPM rule: a BPE space is text */
	char sp[8];
	assert_int_equal(tok_piece(t, tok_lookup(t, "\xc4\xa0" "a", 3), true, false, sp, sizeof(sp)), 2);
	assert_memory_equal(sp, " a", 2);
	assert_int_equal(tok_bpe_char_byte(0x144), -1);
	assert_int_equal(tok_bpe_char_byte(0x20), -1); /* space is mapped to U+0120 */
	/* all of ASCII and some multi-byte text round-trips */
	size_t n = 0;
	for (int i = 1; i < 128; i++)
		text[n++] = (char)i;
	memcpy(text + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	n += 9;
	int64_t k = tok_encode(t, text, n, false, false, ids, 1024);
	assert_true(k > 0);
	assert_int_equal(tok_decode(t, ids, (size_t)k, false, dec, sizeof(dec)), (int64_t)n);
	assert_memory_equal(dec, text, n);
	/* invalid UTF-8: refused */
	static const char *const bad[] = { "\xff", "a\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tok_encode(t, bad[i], strlen(bad[i]), false, false, ids, 16), -EINVAL);
	tok_free(t);
	gguf_close(g);
}

/* ------------------------------------------------ pre-tokenizer splits */

struct split_case {
	const char *pre;
	const char *text;
	const char *want; /* words joined by '|' */
};

static const struct split_case split_cases[] = {
	{ "gpt-2", "I'm 12 abc\n\nok", "I|'m| 12| abc|\n|\n|ok" },
	{ "qwen2", "I'm 12 abc\n\nok", "I|'m| |1|2| abc|\n\n|ok" },
	{ "gpt-2", "Hello   world", "Hello|  | world" },
	{ "qwen2", "Hello   world", "Hello|  | world" },
	{ "gpt-2", "x.\n\ny", "x|.|\n|\n|y" },
	{ "qwen2", "x.\n\ny", "x|.\n\n|y" },
	{ "gpt-2", "\xc2\xbfQu\xc3\xa9?", "\xc2\xbf|Qu\xc3\xa9|?" },
	{ "qwen2", "\xc2\xbfQu\xc3\xa9?", "\xc2\xbfQu\xc3\xa9|?" },
	{ "gpt-2", "\xd9\xa3\xd9\xa4", "\xd9\xa3\xd9\xa4" },          /* Arabic-Indic digits */
	{ "qwen2", "\xd9\xa3\xd9\xa4", "\xd9\xa3|\xd9\xa4" },
	{ "gpt-2", "'RE 're", "'|RE| '|re" },
	{ "qwen2", "'RE 're", "'RE| '|re" },
	{ "llama3", "12345 x", "123|45| x" },
	{ "gpt-2", "a\xc2\xa0" "b", "a|\xc2\xa0|b" },                  /* NBSP is whitespace */
	{ "gpt-2", "  ", "  " },
	{ "qwen2", "a  \n b", "a|  \n| b" },
	{ "gpt-2", "\t\tx", "\t|\t|x" },
	{ "qwen2", "\t\tx", "\t|\tx" },
	{ "gpt-2", "\xe4\xbd\xa0\xe5\xa5\xbd world", "\xe4\xbd\xa0\xe5\xa5\xbd| world" },
};

struct split_acc {
	const char *text;
	char buf[512];
	size_t n, words;
};

static int split_cb(void *arg, size_t off, size_t len)
{
	struct split_acc *a = arg;
	if (a->words++)
		a->buf[a->n++] = '|';
	memcpy(a->buf + a->n, a->text + off, len);
	a->n += len;
	a->buf[a->n] = '\0';
	return 0;
}

static void test_pre_splits(void **state)
{
	struct vb b;
	(void)state;
	build_bpe(&b, false);
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		struct gguf_file *g = NULL;
		char err[256];
		struct tok *t = vb_open(&b, "gpt2", c->pre, NULL, &g, err, sizeof(err));
		if (!t)
			fail_msg("tok_new: %s", err);
		struct split_acc a = { .text = c->text };
		assert_int_equal(tok_bpe_split(t, c->text, strlen(c->text), split_cb, &a), 0);
		if (strcmp(a.buf, c->want) != 0)
			fail_msg("split %zu (%s) of '%s': got '%s' want '%s'", i, c->pre, c->text,
				 a.buf, c->want);
		tok_free(t);
		gguf_close(g);
	}
}

/* A 1 MiB run of spaces before a letter: \s+(?!\S) backtracks once at the
 * end; the split must still cover the text (and stay linear). */
static void test_long_whitespace(void **state)
{
	struct vb b;
	struct gguf_file *g = NULL;
	char err[256];
	(void)state;
	build_bpe(&b, false);
	struct tok *t = vb_open(&b, "gpt2", "gpt-2", NULL, &g, err, sizeof(err));
	assert_non_null(t);
	size_t n = 1 << 20;
	char *text = malloc(n + 1);
	assert_non_null(text);
	memset(text, ' ', n);
	text[n - 1] = 'x';
	int32_t *ids = malloc((n + 1) * sizeof(*ids));
	assert_non_null(ids);
	/* words: n-2 spaces (one token each), then " x" (two tokens) */
	assert_int_equal(tok_encode(t, text, n, false, false, ids, n + 1), (int64_t)n);
	free(ids);
	free(text);
	tok_free(t);
	gguf_close(g);
}

/* ------------------------------------------------------------ threads */

struct par_arg {
	const struct tok *t;
	const char *text;
	size_t len;
	const int32_t *want;
	int64_t n_want;
	int bad;
};

static void *par_worker(void *p)
{
	struct par_arg *a = p;
	int32_t *ids = malloc((size_t)(a->n_want + 1) * sizeof(*ids));
	for (int r = 0; ids && r < 20; r++) {
		int64_t n = tok_encode(a->t, a->text, a->len, r & 1, false, ids, (size_t)a->n_want + 1);
		size_t off = r & 1;
		if (n != a->n_want + (int64_t)off ||
		    memcmp(ids + off, a->want, (size_t)a->n_want * sizeof(*ids)) != 0)
			a->bad++;
	}
	free(ids);
	return NULL;
}

/* One tok shared by four threads encoding at once gives each the same ids
 * as a lone call (run under TSan too: make SANITIZE=thread). */
static void test_concurrent(void **state)
{
	static const char *const files[] = { "ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf" };
	(void)state;
	for (size_t f = 0; f < 2; f++) {
		struct open_tok o;
		if (!open_real(files[f], &o)) {
			skip();
			return;
		}
		static const char text[] = "Hello, y'all! How are you \xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3 "
			"\t 3333 ------======= I've been 'told he's there\n\n";
		int32_t want[256];
		int64_t n = tok_encode(o.t, text, sizeof(text) - 1, false, false, want, 256);
		assert_true(n > 10 && n < 256);
		pthread_t th[4];
		struct par_arg a[4];
		for (int i = 0; i < 4; i++) {
			a[i] = (struct par_arg){ .t = o.t, .text = text, .len = sizeof(text) - 1,
						 .want = want, .n_want = n };
			assert_int_equal(pthread_create(&th[i], NULL, par_worker, &a[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(a[i].bad, 0);
		}
		close_tok(&o);
	}
}

/* --------------------------------------------------------------- errors */

struct err_case {
	const char *model;
	const char *pre;
	bool short_scores;
	const char *want; /* substring of the message */
};

static const struct err_case err_cases[] = {
	{ .model = NULL, .want = "no tokenizer (tokenizer.ggml.model missing)" },
	{ .model = "bert", .want = "unsupported tokenizer 'bert'" },
	{ .model = "gpt2", .pre = "klingon", .want = "unsupported pre-tokenizer 'klingon'" },
	{ .model = "gpt2", .short_scores = true, .want = "tokenizer.ggml.scores: want 265 float32 values" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		struct vb b;
		struct gguf_file *g = NULL;
		char err[256] = "";
		build_bpe(&b, false);
		b.short_scores = err_cases[i].short_scores;
		struct tok *t = vb_open(&b, err_cases[i].model, err_cases[i].pre, NULL,
					&g, err, sizeof(err));
		assert_null(t);
		if (!strstr(err, err_cases[i].want))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err, err_cases[i].want);
		assert_non_null(strstr(err, "/tmp/test_tokenizer.")); /* names the file */
		gguf_close(g);
	}
	tok_free(NULL);
}

/* Load time and encoding speed on a server-sized prompt (256 KiB), printed,
 * not asserted: sanitizer builds are many times slower. */
static void test_speed(void **state)
{
	struct open_tok o;
	(void)state;
	static const char *const files[] = { "ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf" };
	for (size_t f = 0; f < 2; f++) {
		struct timespec l0, l1;
		clock_gettime(CLOCK_MONOTONIC, &l0);
		if (!open_real(files[f], &o)) {
			skip();
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &l1);
		static const char para[] = "The quick brown fox jumps over the lazy dog; "
			"Gr\xc3\xbc\xc3\x9f" "e, \xe4\xbd\xa0\xe5\xa5\xbd, 12345 tokens/s!\n";
		size_t n = 0, cap = 256 * 1024;
		char *text = malloc(cap);
		assert_non_null(text);
		while (n + sizeof(para) < cap) {
			memcpy(text + n, para, sizeof(para) - 1);
			n += sizeof(para) - 1;
		}
		int32_t *ids = malloc(n * sizeof(*ids));
		assert_non_null(ids);
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int64_t k = tok_encode(o.t, text, n, false, false, ids, n);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
		assert_true(k > 0 && (size_t)k < n);
		double ls = (double)(l1.tv_sec - l0.tv_sec) + (double)(l1.tv_nsec - l0.tv_nsec) * 1e-9;
		print_message("%s: open + tok_new %.1f ms; %zu bytes -> %lld tokens in %.1f ms (%.1f MB/s)\n",
			      files[f], ls * 1e3, n, (long long)k, s * 1e3, (double)n / s / 1e6);
		free(ids);
		free(text);
		close_tok(&o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_llama_spm),
		cmocka_unit_test(test_vectors_gpt2),
		cmocka_unit_test(test_stories260k),
		cmocka_unit_test(test_spm_rules),
		cmocka_unit_test(test_spm_special_tokens),
		cmocka_unit_test(test_bpe_rules),
		cmocka_unit_test(test_bpe_bytes_and_errors),
		cmocka_unit_test(test_pre_splits),
		cmocka_unit_test(test_long_whitespace),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
