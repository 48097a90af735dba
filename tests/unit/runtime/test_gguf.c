/*
 * test_gguf.c: the GGUF reader and writer.
 *
 * Real files from the shared testdata are opened and spot-checked; files the
 * writer produces are read back value by value (every metadata type, nested
 * arrays, every tensor type); and a table of corruptions, each applied to a
 * valid file written in memory, must be refused with the expected problem
 * and offset. Every truncation of a valid file must be refused too.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <unistd.h>

#include <cmocka.h>

#include "dify-edge-core/runtime/gguf.h"

static const char *testdata(void)
{
	const char *d = getenv("TESTDATA");
	struct stat st;
	if (!d || !*d)
		d = "../shared/testdata";
	if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return d;
}

/* ---- real files ---- */

struct real_case {
	const char *file;
	const char *arch;        /* general.architecture, NULL: don't check */
	uint64_t n_tokens;       /* tokenizer.ggml.tokens length */
	const char *token0;      /* first token, NULL: don't check */
	int64_t min_tensors;     /* at least this many tensors (0: exactly 0) */
	const char *tensor;      /* a tensor that must exist, or NULL */
};

static const struct real_case real_cases[] = {
	{ .file = "stories260K.gguf", .arch = "llama", .n_tokens = 512, .token0 = "<unk>",
	  .min_tensors = 1, .tensor = "token_embd.weight" },
	{ .file = "llama-2-tiny-random.gguf", .arch = "llama", .n_tokens = 32000,
	  .min_tensors = 1, .tensor = "token_embd.weight" },
	{ .file = "ggml-vocab-llama-spm.gguf", .arch = "llama", .n_tokens = 32000,
	  .token0 = "<unk>", .min_tensors = 0 },
	{ .file = "ggml-vocab-gpt-2.gguf", .arch = "gpt2", .n_tokens = 50257, .token0 = "!",
	  .min_tensors = 0 },
};

/* Walk a value recursively; counts the leaves it visits. */
static uint64_t walk(const struct gguf_file *g, const struct gguf_value *v)
{
	uint64_t n = 1;
	if (v->type == GGUF_TYPE_ARRAY) {
		for (uint64_t i = 0; i < v->n; i++) {
			struct gguf_value e;
			assert_int_equal(gguf_arr_elem(g, v, i, &e), 0);
			n += walk(g, &e);
		}
		struct gguf_value e;
		assert_int_equal(gguf_arr_elem(g, v, v->n, &e), -ERANGE);
	}
	return n;
}

static void test_real_files(void **state)
{
	const char *dir = testdata();
	char path[4096], err[256];
	(void)state;
	if (!dir) {
		print_message("testdata directory absent (set TESTDATA)\n");
		skip();
	}
	for (size_t c = 0; c < sizeof(real_cases) / sizeof(real_cases[0]); c++) {
		const struct real_case *rc = &real_cases[c];
		struct gguf_file *g = NULL;
		struct gguf_open_opts o = { .sequential = c & 1 };
		const char *s;
		size_t len;
		enum gguf_type et;
		uint64_t n;
		const void *data;

		snprintf(path, sizeof(path), "%s/%s", dir, rc->file);
		err[0] = 0;
		int r = gguf_open(path, &o, &g, err, sizeof(err));
		if (r)
			print_message("%s\n", err);
		assert_int_equal(r, 0);
		assert_non_null(g);
		assert_true(gguf_version(g) == 2 || gguf_version(g) == 3);
		assert_int_equal(gguf_get_str(g, "general.architecture", &s, &len), 0);
		assert_int_equal(len, strlen(rc->arch));
		assert_memory_equal(s, rc->arch, len);
		assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data), 0);
		assert_int_equal(et, GGUF_TYPE_STRING);
		assert_int_equal(n, rc->n_tokens);
		if (rc->token0) {
			assert_int_equal(gguf_get_arr_str(g, "tokenizer.ggml.tokens", 0, &s, &len), 0);
			assert_int_equal(len, strlen(rc->token0));
			assert_memory_equal(s, rc->token0, len);
		}
		assert_int_equal(gguf_get_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len), 0);
		assert_int_equal(gguf_get_arr_str(g, "tokenizer.ggml.tokens", n, &s, &len), -ERANGE);
		uint64_t leaves = 0;
		for (int64_t k = 0; k < gguf_n_kv(g); k++) {
			struct gguf_value v;
			assert_int_equal(gguf_find_key(g, gguf_key(g, k)), k);
			assert_int_equal(gguf_kv_value(g, k, &v), 0);
			leaves += walk(g, &v);
		}
		if (rc->min_tensors)
			assert_true(gguf_n_tensors(g) >= rc->min_tensors);
		else
			assert_int_equal(gguf_n_tensors(g), 0);
		const uint8_t *base = gguf_base(g);
		for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
			const struct gguf_tensor *t = gguf_tensor(g, i);
			const uint8_t *d = t->data;
			assert_ptr_equal(gguf_find_tensor(g, t->name), t);
			assert_true(d >= base + gguf_data_offset(g));
			assert_true(d + t->nbytes <= base + gguf_size(g));
			assert_int_equal((size_t)(d - base) % gguf_alignment(g), 0);
			assert_int_equal(t->nbytes, ggml_row_size(t->type, t->ne[0]) *
						    (size_t)(t->ne[1] * t->ne[2] * t->ne[3]));
		}
		if (rc->tensor)
			assert_non_null(gguf_find_tensor(g, rc->tensor));
		assert_null(gguf_find_tensor(g, "no.such.tensor"));
		assert_int_equal(gguf_find_key(g, "no.such.key"), -1);
		print_message("%s: v%u, %lld kv (%llu values), %lld tensors, alignment %zu, data at %zu of %zu\n",
			      rc->file, gguf_version(g), (long long)gguf_n_kv(g),
			      (unsigned long long)leaves, (long long)gguf_n_tensors(g),
			      gguf_alignment(g), gguf_data_offset(g), gguf_size(g));
		gguf_close(g);
	}
}

static void test_stories_values(void **state)
{
	const char *dir = testdata();
	char path[4096], err[256];
	struct gguf_file *g = NULL;
	uint32_t u;
	const struct gguf_tensor *t;
	(void)state;
	if (!dir) {
		print_message("testdata directory absent (set TESTDATA)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
	assert_int_equal(gguf_open(path, NULL, &g, err, sizeof(err)), 0);
	assert_int_equal(gguf_get_u32(g, "llama.embedding_length", &u), 0);
	assert_int_equal(u, 64);
	assert_int_equal(gguf_get_u32(g, "llama.block_count", &u), 0);
	assert_int_equal(u, 5);
	t = gguf_find_tensor(g, "token_embd.weight");
	assert_non_null(t);
	assert_int_equal(t->type, GGML_TYPE_F32);
	assert_int_equal(t->n_dims, 2);
	assert_int_equal(t->ne[0], 64);
	assert_int_equal(t->ne[1], 512);
	assert_int_equal(t->nbytes, 64 * 512 * 4);
	gguf_close(g);
}


/* ---- writer -> reader round trip ---- */

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

/* Encoding of an array nested DEPTH deep: [[...[u32 7, u32 8]...]]; every
 * level holds one array, the innermost two u32. */
static size_t nested_enc(uint8_t *buf, int depth)
{
	uint8_t *p = buf;
	for (int d = 1; d < depth; d++) {
		p = le32(p, GGUF_TYPE_ARRAY);
		p = le64(p, 1);
	}
	p = le32(p, GGUF_TYPE_UINT32);
	p = le64(p, 2);
	p = le32(p, 7);
	p = le32(p, 8);
	return (size_t)(p - buf);
}

/* [["a", "bc"], [], ["d"]]: an array of arrays of strings. */
static size_t strs_of_strs_enc(uint8_t *buf)
{
	uint8_t *p = buf;
	p = le32(p, GGUF_TYPE_ARRAY);
	p = le64(p, 3);
	p = le32(p, GGUF_TYPE_STRING);
	p = le64(p, 2);
	p = le64(p, 1);
	*p++ = 'a';
	p = le64(p, 2);
	*p++ = 'b';
	*p++ = 'c';
	p = le32(p, GGUF_TYPE_STRING);
	p = le64(p, 0);
	p = le32(p, GGUF_TYPE_STRING);
	p = le64(p, 1);
	p = le64(p, 1);
	*p++ = 'd';
	return (size_t)(p - buf);
}

static const enum ggml_type all_ggml_types[] = {
	GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
	GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K,
	GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_K, GGML_TYPE_IQ2_XXS,
	GGML_TYPE_IQ2_XS, GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ1_S, GGML_TYPE_IQ4_NL,
	GGML_TYPE_IQ3_S, GGML_TYPE_IQ2_S, GGML_TYPE_IQ4_XS, GGML_TYPE_I8, GGML_TYPE_I16,
	GGML_TYPE_I32, GGML_TYPE_I64, GGML_TYPE_F64, GGML_TYPE_IQ1_M, GGML_TYPE_BF16,
	GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
};
#define N_GGML_TYPES (sizeof(all_ggml_types) / sizeof(all_ggml_types[0]))

static uint8_t tensor_bytes[N_GGML_TYPES][2 * 3 * 292];

static struct gguf_writer *build_full(uint32_t version, uint32_t align)
{
	static const char *const strs[] = { "", "a", "h\xc3\xa9llo", "\xf0\x9f\x98\x80" };
	static const uint8_t u8s[] = { 0, 1, 255 };
	static const int16_t i16s[] = { -32768, 0, 32767 };
	static const uint8_t bools[] = { 1, 0, 1 };
	static const double f64s[] = { -1.5, 1e300 };
	static const int64_t i64s[] = { INT64_MIN, -1, INT64_MAX };
	uint8_t enc[1024];
	struct gguf_writer *w = gguf_writer_new();
	size_t n;

	assert_non_null(w);
	assert_int_equal(gguf_writer_set_version(w, version), 0);
	assert_int_equal(gguf_writer_set_alignment(w, align), 0);
	assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
	assert_int_equal(gguf_writer_set_i32(w, "v.i32", -5), 0);
	assert_int_equal(gguf_writer_set_u64(w, "v.u64", UINT64_MAX), 0);
	assert_int_equal(gguf_writer_set_i64(w, "v.i64", INT64_MIN), 0);
	assert_int_equal(gguf_writer_set_f32(w, "v.f32", 0.25f), 0);
	assert_int_equal(gguf_writer_set_f64(w, "v.f64", -2.5), 0);
	assert_int_equal(gguf_writer_set_bool(w, "v.bool", true), 0);
	le32(enc, 0xfffe);
	assert_int_equal(gguf_writer_set_raw(w, "v.u16", GGUF_TYPE_UINT16, enc, 2), 0);
	enc[0] = 0x80;
	assert_int_equal(gguf_writer_set_raw(w, "v.i8", GGUF_TYPE_INT8, enc, 1), 0);
	assert_int_equal(gguf_writer_set_raw(w, "v.u8", GGUF_TYPE_UINT8, enc, 1), 0);
	le32(enc, 0x8000);
	assert_int_equal(gguf_writer_set_raw(w, "v.i16", GGUF_TYPE_INT16, enc, 2), 0);
	assert_int_equal(gguf_writer_set_str(w, "v.str", "h\xc3\xa9llo \xe2\x82\xac"), 0);
	assert_int_equal(gguf_writer_set_arr_str(w, "a.str", strs, 4), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, u8s, 3), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.i16", GGUF_TYPE_INT16, i16s, 3), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, bools, 3), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, f64s, 2), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, i64s, 3), 0);
	assert_int_equal(gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_FLOAT32, NULL, 0), 0);
	n = nested_enc(enc, GGUF_MAX_ARRAY_DEPTH);
	assert_int_equal(gguf_writer_set_raw(w, "a.nested", GGUF_TYPE_ARRAY, enc, n), 0);
	n = strs_of_strs_enc(enc);
	assert_int_equal(gguf_writer_set_raw(w, "a.strstr", GGUF_TYPE_ARRAY, enc, n), 0);
	for (size_t i = 0; i < N_GGML_TYPES; i++) {
		enum ggml_type t = all_ggml_types[i];
		int64_t ne[3] = { 2 * ggml_blck_size(t), 3, 1 };
		char name[64];
		for (size_t b = 0; b < sizeof(tensor_bytes[i]); b++)
			tensor_bytes[i][b] = (uint8_t)(b * 7 + i);
		snprintf(name, sizeof(name), "t.%s", ggml_type_name(t));
		assert_int_equal(gguf_writer_add_tensor(w, name, t, 1 + (uint32_t)(i % 3), ne,
							tensor_bytes[i]), 0);
	}
	return w;
}

static void check_full(const struct gguf_file *g, uint32_t version, uint32_t align)
{
	uint32_t u32;
	int32_t i32;
	uint64_t u64;
	int64_t i64;
	float f;
	bool b;
	const char *s;
	size_t len;
	struct gguf_value v, e, e2;
	enum gguf_type et;
	uint64_t n;
	const void *data;

	assert_int_equal(gguf_version(g), version);
	assert_int_equal(gguf_alignment(g), align);
	assert_int_equal(gguf_data_offset(g) % align, 0);
	assert_int_equal(gguf_get_u32(g, "general.alignment", &u32), 0);
	assert_int_equal(u32, align);
	assert_int_equal(gguf_get_u32(g, "v.u32", &u32), 0);
	assert_int_equal(u32, 4000000000u);
	assert_int_equal(gguf_get_i32(g, "v.u32", &i32), -EINVAL); /* does not fit */
	assert_int_equal(gguf_get_i64(g, "v.u32", &i64), 0);
	assert_int_equal(i64, 4000000000LL);
	assert_int_equal(gguf_get_i32(g, "v.i32", &i32), 0);
	assert_int_equal(i32, -5);
	assert_int_equal(gguf_get_u32(g, "v.i32", &u32), -EINVAL); /* negative */
	assert_int_equal(gguf_get_u64(g, "v.u64", &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(gguf_get_i64(g, "v.u64", &i64), -EINVAL);
	assert_int_equal(gguf_get_i64(g, "v.i64", &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(gguf_get_f32(g, "v.f32", &f), 0);
	assert_true(f == 0.25f);
	assert_int_equal(gguf_get_f32(g, "v.f64", &f), 0);
	assert_true(f == -2.5f);
	assert_int_equal(gguf_get_f32(g, "v.u32", &f), -EINVAL);
	assert_int_equal(gguf_get_bool(g, "v.bool", &b), 0);
	assert_true(b);
	assert_int_equal(gguf_get_bool(g, "v.u32", &b), -EINVAL);
	assert_int_equal(gguf_get_u32(g, "v.u16", &u32), 0);
	assert_int_equal(u32, 0xfffe);
	assert_int_equal(gguf_get_i32(g, "v.i8", &i32), 0);
	assert_int_equal(i32, -128);
	assert_int_equal(gguf_get_u32(g, "v.u8", &u32), 0);
	assert_int_equal(u32, 128);
	assert_int_equal(gguf_get_i32(g, "v.i16", &i32), 0);
	assert_int_equal(i32, -32768);
	assert_int_equal(gguf_get_u32(g, "missing", &u32), -ENOENT);
	assert_int_equal(gguf_get_str(g, "v.str", &s, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(s, "h\xc3\xa9llo \xe2\x82\xac", 10);
	assert_int_equal(gguf_get_str(g, "v.u32", &s, &len), -EINVAL);

	assert_int_equal(gguf_get_arr(g, "a.str", &et, &n, &data), 0);
	assert_int_equal(et, GGUF_TYPE_STRING);
	assert_int_equal(n, 4);
	assert_int_equal(gguf_get_arr_str(g, "a.str", 0, &s, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(gguf_get_arr_str(g, "a.str", 3, &s, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(s, "\xf0\x9f\x98\x80", 4);
	assert_int_equal(gguf_get_arr_str(g, "a.u8", 0, &s, &len), -EINVAL);
	assert_int_equal(gguf_get_arr(g, "a.u8", &et, &n, &data), 0);
	assert_int_equal(et, GGUF_TYPE_UINT8);
	assert_int_equal(n, 3);
	assert_memory_equal(data, "\x00\x01\xff", 3);
	assert_int_equal(gguf_get_arr(g, "a.i16", &et, &n, &data), 0);
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.i16"), &v), 0);
	assert_int_equal(gguf_arr_elem(g, &v, 0, &e), 0);
	assert_int_equal(e.type, GGUF_TYPE_INT16);
	assert_int_equal(gguf_value_i64(&e), -32768);
	assert_int_equal(gguf_arr_elem(g, &v, 2, &e), 0);
	assert_int_equal(gguf_value_i64(&e), 32767);
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.bool"), &v), 0);
	assert_int_equal(gguf_arr_elem(g, &v, 1, &e), 0);
	assert_int_equal(gguf_value_i64(&e), 0);
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.f64"), &v), 0);
	assert_int_equal(gguf_arr_elem(g, &v, 1, &e), 0);
	assert_true(gguf_value_f64(&e) == 1e300);
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.i64"), &v), 0);
	assert_int_equal(gguf_arr_elem(g, &v, 0, &e), 0);
	assert_true(gguf_value_i64(&e) == INT64_MIN);
	assert_int_equal(gguf_get_arr(g, "a.empty", &et, &n, &data), 0);
	assert_int_equal(et, GGUF_TYPE_FLOAT32);
	assert_int_equal(n, 0);

	/* nested arrays, GGUF_MAX_ARRAY_DEPTH deep */
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.nested"), &v), 0);
	for (int d = 1; d < GGUF_MAX_ARRAY_DEPTH; d++) {
		assert_int_equal(v.type, GGUF_TYPE_ARRAY);
		assert_int_equal(v.elem_type, GGUF_TYPE_ARRAY);
		assert_int_equal(v.n, 1);
		assert_int_equal(gguf_arr_elem(g, &v, 1, &e), -ERANGE);
		assert_int_equal(gguf_arr_elem(g, &v, 0, &e), 0);
		v = e;
	}
	assert_int_equal(v.elem_type, GGUF_TYPE_UINT32);
	assert_int_equal(v.n, 2);
	assert_int_equal(gguf_arr_elem(g, &v, 1, &e), 0);
	assert_int_equal(gguf_value_u64(&e), 8);

	/* [["a", "bc"], [], ["d"]] */
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "a.strstr"), &v), 0);
	assert_int_equal(v.n, 3);
	assert_int_equal(gguf_arr_elem(g, &v, 0, &e), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(gguf_arr_elem(g, &e, 1, &e2), 0);
	assert_int_equal(e2.type, GGUF_TYPE_STRING);
	assert_int_equal(e2.n, 2);
	assert_memory_equal(e2.p, "bc", 2);
	assert_int_equal(gguf_arr_elem(g, &v, 1, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(gguf_arr_elem(g, &e, 0, &e2), -ERANGE);
	assert_int_equal(gguf_arr_elem(g, &v, 2, &e), 0);
	assert_int_equal(gguf_arr_elem(g, &e, 0, &e2), 0);
	assert_int_equal(e2.n, 1);
	assert_memory_equal(e2.p, "d", 1);
	/* a scalar is not an array */
	assert_int_equal(gguf_kv_value(g, gguf_find_key(g, "v.u32"), &v), 0);
	assert_int_equal(gguf_arr_elem(g, &v, 0, &e), -EINVAL);

	assert_int_equal(gguf_n_tensors(g), (int64_t)N_GGML_TYPES);
	for (size_t i = 0; i < N_GGML_TYPES; i++) {
		enum ggml_type tt = all_ggml_types[i];
		char name[64];
		const struct gguf_tensor *t;
		snprintf(name, sizeof(name), "t.%s", ggml_type_name(tt));
		t = gguf_find_tensor(g, name);
		assert_non_null(t);
		assert_ptr_equal(t, gguf_tensor(g, (int64_t)i));
		assert_int_equal(t->type, tt);
		assert_int_equal(t->n_dims, 1 + i % 3);
		assert_int_equal(t->ne[0], 2 * ggml_blck_size(tt));
		assert_int_equal(t->ne[1], t->n_dims >= 2 ? 3 : 1);
		assert_int_equal(t->ne[2], 1);
		assert_int_equal(t->ne[3], 1);
		assert_int_equal(t->nbytes, 2 * ggml_type_size(tt) * (size_t)t->ne[1]);
		assert_int_equal(((const uint8_t *)t->data - (const uint8_t *)gguf_base(g)) % align, 0);
		assert_int_equal(t->offset % align, 0);
		assert_memory_equal(t->data, tensor_bytes[i], t->nbytes);
	}
}

struct rt_case {
	uint32_t version;
	uint32_t align;
};

static const struct rt_case rt_cases[] = {
	{ .version = 3, .align = 32 },
	{ .version = 2, .align = 32 },
	{ .version = 3, .align = 1 },
	{ .version = 3, .align = 64 },
	{ .version = 3, .align = 4096 },
};

static void test_round_trip(void **state)
{
	char err[256], path[] = "/tmp/test_gguf.XXXXXX";
	(void)state;
	for (size_t c = 0; c < sizeof(rt_cases) / sizeof(rt_cases[0]); c++) {
		struct gguf_writer *w = build_full(rt_cases[c].version, rt_cases[c].align);
		struct gguf_file *g = NULL;
		void *buf;
		size_t size;
		int fd;

		assert_int_equal(gguf_writer_write_mem(w, &buf, &size, err, sizeof(err)), 0);
		int r0 = gguf_open_mem(buf, size, "mem", &g, err, sizeof(err));
		if (r0) {
			FILE *df = fopen("/tmp/gguf_fail.bin", "wb");
			fwrite(buf, 1, size, df);
			fclose(df);
			print_message("%s\n", err);
		}
		assert_int_equal(r0, 0);
		check_full(g, rt_cases[c].version, rt_cases[c].align);
		gguf_close(g);

		/* the same through a file, and the bytes are identical */
		strcpy(path, "/tmp/test_gguf.XXXXXX");
		fd = mkstemp(path);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(gguf_writer_write(w, path, err, sizeof(err)), 0);
		struct gguf_open_opts o = { .populate = true, .mlock = c == 0 };
		int r = gguf_open(path, &o, &g, err, sizeof(err));
		if (r)
			print_message("%s\n", err);
		assert_int_equal(r, 0);
		check_full(g, rt_cases[c].version, rt_cases[c].align);
		assert_int_equal(gguf_size(g), size);
		assert_memory_equal(gguf_base(g), buf, size);
		gguf_close(g);
		unlink(path);
		free(buf);
		gguf_writer_free(w);
	}
}

static void test_writer_refuses(void **state)
{
	struct gguf_writer *w = gguf_writer_new();
	int64_t ne[2] = { 32, 2 };
	int64_t bad_ne[2] = { 31, 2 };
	int64_t neg_ne[2] = { 32, -1 };
	(void)state;
	assert_int_equal(gguf_writer_set_u32(w, "k", 1), 0);
	assert_int_equal(gguf_writer_set_u32(w, "k", 2), -EEXIST);
	assert_int_equal(gguf_writer_set_str(w, "k2", "\xc0\x80"), -EINVAL);
	assert_int_equal(gguf_writer_set_u32(w, "", 1), -EINVAL);
	assert_int_equal(gguf_writer_set_u32(w, "\xff", 1), -EINVAL);
	assert_int_equal(gguf_writer_set_arr(w, "k3", GGUF_TYPE_STRING, NULL, 0), -EINVAL);
	assert_int_equal(gguf_writer_set_alignment(w, 0), -EINVAL);
	assert_int_equal(gguf_writer_set_alignment(w, 48), -EINVAL);
	assert_int_equal(gguf_writer_set_version(w, 1), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_Q8_0, 2, ne, NULL), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_Q8_0, 2, ne, NULL), -EEXIST);
	assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 2, bad_ne, NULL), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 2, neg_ne, NULL), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 0, ne, NULL), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 5, ne, NULL), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "u", (enum ggml_type)4, 2, ne, NULL), -EINVAL);
	assert_int_equal(gguf_writer_add_tensor(w, "", GGML_TYPE_F32, 2, ne, NULL), -EINVAL);
	gguf_writer_free(w);
	gguf_writer_free(NULL);
	gguf_close(NULL);
}

static void test_type_traits(void **state)
{
	(void)state;
	assert_string_equal(ggml_type_name(GGML_TYPE_Q4_0), "q4_0");
	assert_string_equal(ggml_type_name((enum ggml_type)4), "unknown");
	assert_string_equal(ggml_type_name((enum ggml_type)1000), "unknown");
	assert_int_equal(ggml_blck_size(GGML_TYPE_Q8_0), 32);
	assert_int_equal(ggml_type_size(GGML_TYPE_Q8_0), 34);
	assert_int_equal(ggml_type_size(GGML_TYPE_Q4_K), 144);
	assert_int_equal(ggml_type_size(GGML_TYPE_Q6_K), 210);
	assert_int_equal(ggml_row_size(GGML_TYPE_Q4_0, 64), 36);
	assert_int_equal(ggml_row_size(GGML_TYPE_Q4_0, 63), 0);
	assert_int_equal(ggml_row_size(GGML_TYPE_F16, 3), 6);
	assert_string_equal(gguf_type_name(GGUF_TYPE_STRING), "str");
	assert_string_equal(gguf_type_name((enum gguf_type)99), "unknown");
}

struct utf8_case {
	const char *s;
	size_t n;
	size_t bad; /* expected result */
};

static const struct utf8_case utf8_cases[] = {
	{ .s = "plain", .n = 5, .bad = 5 },
	{ .s = "\xc3\xa9", .n = 2, .bad = 2 },
	{ .s = "\xf4\x8f\xbf\xbf", .n = 4, .bad = 4 },   /* U+10FFFF */
	{ .s = "\xed\x9f\xbf", .n = 3, .bad = 3 },       /* U+D7FF */
	{ .s = "a\xc0\x80", .n = 3, .bad = 1 },          /* overlong NUL */
	{ .s = "\xc1\xbf", .n = 2, .bad = 0 },           /* overlong */
	{ .s = "\xe0\x9f\xbf", .n = 3, .bad = 0 },       /* overlong 3-byte */
	{ .s = "\xf0\x8f\xbf\xbf", .n = 4, .bad = 0 },   /* overlong 4-byte */
	{ .s = "ab\xed\xa0\x80", .n = 5, .bad = 2 },     /* surrogate D800 */
	{ .s = "\xf4\x90\x80\x80", .n = 4, .bad = 0 },   /* U+110000 */
	{ .s = "\xf5\x80\x80\x80", .n = 4, .bad = 0 },
	{ .s = "\x80", .n = 1, .bad = 0 },               /* lone continuation */
	{ .s = "\xe2\x82", .n = 2, .bad = 0 },           /* cut short */
	{ .s = "\xe2\x28\xa1", .n = 3, .bad = 0 },       /* bad continuation */
	{ .s = "\xff", .n = 1, .bad = 0 },
};

static void test_utf8(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		size_t got = gguf_utf8_check(utf8_cases[i].s, utf8_cases[i].n);
		if (got != utf8_cases[i].bad)
			print_message("utf8 case %zu: got %zu want %zu\n", i, got, utf8_cases[i].bad);
		assert_int_equal(got, utf8_cases[i].bad);
	}
}

/* ---- malformed files ---- */

static size_t find(const uint8_t *b, size_t n, const char *s)
{
	const uint8_t *p = memmem(b, n, s, strlen(s));
	assert_non_null(p);
	return (size_t)(p - b);
}

/* The valid base: three values and two tensors, the last of which ends the
 * file exactly (64 bytes, no trailing padding), so that every truncation
 * must be refused. */
static struct gguf_writer *build_base(void)
{
	static const char *const strs[] = { "x", "yy" };
	static float f[16];
	int64_t ne_b[2] = { 32, 2 }, ne_a[2] = { 8, 2 };
	struct gguf_writer *w = gguf_writer_new();
	assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(gguf_writer_set_u32(w, "k.u32", 7), 0);
	assert_int_equal(gguf_writer_set_arr_str(w, "k.strs", strs, 2), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "tensor.bbb", GGML_TYPE_Q8_0, 2, ne_b, NULL), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "tensor.aaa", GGML_TYPE_F32, 2, ne_a, f), 0);
	return w;
}

static void raw(struct gguf_writer *w, const char *key, enum gguf_type t, const void *enc, size_t n)
{
	assert_int_equal(gguf_writer_set_raw(w, key, t, enc, n), 0);
}

/* Offsets inside the base file's tensor info of NAME. */
#define TINFO(b, n, name) (find(b, n, name) - 8)          /* the info (name length) */
#define TNDIMS(b, n, name) (find(b, n, name) + 10)        /* n_dims (names are 10 bytes) */
#define TNE(b, n, name, d) (TNDIMS(b, n, name) + 4 + 8 * (d))
#define TTYPE(b, n, name) (TNE(b, n, name, 2))            /* base tensors have 2 dims */
#define TOFF(b, n, name) (TTYPE(b, n, name) + 4)
/* Offset of the value of KEY (after its type field). */
#define VAL(b, n, key) (find(b, n, key) + strlen(key) + 4)

static size_t m_magic(uint8_t *b, size_t *n) { b[0] = 'X'; return 0; }
static size_t m_v1(uint8_t *b, size_t *n) { le32(b + 4, 1); return 4; }
static size_t m_v4(uint8_t *b, size_t *n) { le32(b + 4, 4); return 4; }
static size_t m_vbe(uint8_t *b, size_t *n) { le32(b + 4, 0x03000000); return 4; }
static size_t m_ntensors(uint8_t *b, size_t *n) { le64(b + 8, 1ULL << 62); return 8; }
static size_t m_nkv(uint8_t *b, size_t *n) { le64(b + 16, 1ULL << 62); return 16; }
static size_t m_ntensors_more(uint8_t *b, size_t *n) { le64(b + 8, 3); return SIZE_MAX; }
static size_t m_nkv_more(uint8_t *b, size_t *n) { le64(b + 16, 4); return SIZE_MAX; }
static size_t m_trunc0(uint8_t *b, size_t *n) { *n = 0; return 0; }
static size_t m_trunc3(uint8_t *b, size_t *n) { *n = 3; return 0; }
static size_t m_trunc10(uint8_t *b, size_t *n) { *n = 10; return 8; }
static size_t m_trunc_data(uint8_t *b, size_t *n) { (*n)--; return TINFO(b, *n, "tensor.aaa"); }
static size_t m_keylen(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "k.u32") - 8;
	le64(b + o, 1ULL << 63);
	return o;
}
static size_t m_key_empty(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "k.u32") - 8;
	le64(b + o, 0);
	return o;
}
static size_t m_key_utf8(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "k.u32") + 1;
	b[o] = 0xC0;
	return o;
}
static size_t m_key_nul(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "k.u32");
	b[o + 1] = 0;
	return o;
}
static void x_dupkey(struct gguf_writer *w) { assert_int_equal(gguf_writer_set_u32(w, "k.u33", 1), 0); }
static size_t m_dupkey(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "k.u33");
	b[o + 4] = '2';
	return o - 8;
}
static void x_type13(struct gguf_writer *w) { raw(w, "x.bad", (enum gguf_type)13, "\0\0\0\0", 4); }
static size_t m_type13(uint8_t *b, size_t *n) { return find(b, *n, "x.bad") + 5; }
static void x_bool2(struct gguf_writer *w) { raw(w, "x.bool", GGUF_TYPE_BOOL, "\2", 1); }
static size_t m_bool2(uint8_t *b, size_t *n) { return VAL(b, *n, "x.bool"); }
static void x_boolarr(struct gguf_writer *w)
{
	uint8_t e[14];
	le64(le32(e, GGUF_TYPE_BOOL), 2);
	e[12] = 1;
	e[13] = 3;
	raw(w, "x.bools", GGUF_TYPE_ARRAY, e, 14);
}
static size_t m_boolarr(uint8_t *b, size_t *n) { return VAL(b, *n, "x.bools") + 13; }

/* String values: the bytes after "x.s" are an 8-byte length then text. */
static void str_raw(struct gguf_writer *w, const char *s, size_t n)
{
	uint8_t e[64];
	le64(e, n);
	memcpy(e + 8, s, n);
	raw(w, "x.s", GGUF_TYPE_STRING, e, 8 + n);
}
static void x_overlong(struct gguf_writer *w) { str_raw(w, "\xc0\x80", 2); }
static void x_surrogate(struct gguf_writer *w) { str_raw(w, "a\xed\xa0\x80", 4); }
static void x_above(struct gguf_writer *w) { str_raw(w, "\xf4\x90\x80\x80", 4); }
static void x_cut(struct gguf_writer *w) { str_raw(w, "ab\xe2\x82", 4); }
static void x_cont(struct gguf_writer *w) { str_raw(w, "\x80", 1); }
static size_t m_str0(uint8_t *b, size_t *n) { return VAL(b, *n, "x.s") + 8; }
static size_t m_str1(uint8_t *b, size_t *n) { return VAL(b, *n, "x.s") + 9; }
static size_t m_str2(uint8_t *b, size_t *n) { return VAL(b, *n, "x.s") + 10; }
static void x_strlen(struct gguf_writer *w)
{
	uint8_t e[10];
	le64(e, 1ULL << 63);
	e[8] = e[9] = 'a';
	raw(w, "x.s", GGUF_TYPE_STRING, e, 10);
}
static size_t m_strlen(uint8_t *b, size_t *n) { return VAL(b, *n, "x.s"); }
static void x_arrstr_bad(struct gguf_writer *w)
{
	uint8_t e[64], *p = le64(le32(e, GGUF_TYPE_STRING), 2);
	p = le64(p, 2);
	*p++ = 'o';
	*p++ = 'k';
	p = le64(p, 1);
	*p++ = 0xff;
	raw(w, "x.as", GGUF_TYPE_ARRAY, e, (size_t)(p - e));
}
static size_t m_arrstr_bad(uint8_t *b, size_t *n) { return VAL(b, *n, "x.as") + 12 + 10 + 8; }
static void x_arr_elem13(struct gguf_writer *w)
{
	uint8_t e[12];
	le64(le32(e, 13), 0);
	raw(w, "x.a", GGUF_TYPE_ARRAY, e, 12);
}
static void x_arr_len(struct gguf_writer *w)
{
	uint8_t e[20];
	le64(le32(e, GGUF_TYPE_UINT32), 1ULL << 61);
	raw(w, "x.a", GGUF_TYPE_ARRAY, e, 20);
}
static void x_arr_len_str(struct gguf_writer *w)
{
	uint8_t e[20];
	le64(le32(e, GGUF_TYPE_STRING), 1ULL << 60);
	raw(w, "x.a", GGUF_TYPE_ARRAY, e, 20);
}
static void x_arr_len_arr(struct gguf_writer *w)
{
	uint8_t e[24];
	le64(le32(e, GGUF_TYPE_ARRAY), 2);
	le64(le32(e + 12, GGUF_TYPE_UINT8), 0);
	raw(w, "x.a", GGUF_TYPE_ARRAY, e, 24); /* second element missing */
}
static size_t m_arr0(uint8_t *b, size_t *n) { return VAL(b, *n, "x.a"); }
static size_t m_arr4(uint8_t *b, size_t *n) { return VAL(b, *n, "x.a") + 4; }
static size_t m_arr_missing(uint8_t *b, size_t *n) { return SIZE_MAX; } /* reads on into the tensor infos */
static void x_deep(struct gguf_writer *w)
{
	uint8_t e[12 * (GGUF_MAX_ARRAY_DEPTH + 2) + 8];
	raw(w, "x.a", GGUF_TYPE_ARRAY, e, nested_enc(e, GGUF_MAX_ARRAY_DEPTH + 1));
}
static size_t m_deep(uint8_t *b, size_t *n) { return VAL(b, *n, "x.a") + 12 * GGUF_MAX_ARRAY_DEPTH; }
static void x_align0(struct gguf_writer *w) { raw(w, "general.alignment", GGUF_TYPE_UINT32, "\0\0\0\0", 4); }
static void x_align48(struct gguf_writer *w) { raw(w, "general.alignment", GGUF_TYPE_UINT32, "\x30\0\0\0", 4); }
static void x_align_big(struct gguf_writer *w) { raw(w, "general.alignment", GGUF_TYPE_UINT32, "\0\0\0\x80", 4); }
static void x_align_str(struct gguf_writer *w) { assert_int_equal(gguf_writer_set_str(w, "general.alignment", "32"), 0); }
static size_t m_align(uint8_t *b, size_t *n) { return VAL(b, *n, "general.alignment"); }
static size_t m_ndims0(uint8_t *b, size_t *n)
{
	size_t o = TNDIMS(b, *n, "tensor.aaa");
	le32(b + o, 0);
	return o;
}
static size_t m_ndims5(uint8_t *b, size_t *n)
{
	size_t o = TNDIMS(b, *n, "tensor.aaa");
	le32(b + o, 5);
	return o;
}
static size_t m_ne_neg(uint8_t *b, size_t *n)
{
	size_t o = TNE(b, *n, "tensor.aaa", 1);
	le64(b + o, (uint64_t)-1);
	return o;
}
static size_t m_ne_overflow(uint8_t *b, size_t *n)
{
	size_t o = TNE(b, *n, "tensor.aaa", 0);
	le64(b + o, 1ULL << 40);
	le64(b + o + 8, 1ULL << 40);
	return o + 8;
}
static size_t m_bytes_overflow(uint8_t *b, size_t *n)
{
	size_t o = TNE(b, *n, "tensor.aaa", 0);
	le64(b + o, 1ULL << 62);
	le64(b + o + 8, 1);
	return TNDIMS(b, *n, "tensor.aaa") + 4;
}
static size_t m_blck(uint8_t *b, size_t *n)
{
	size_t o = TNE(b, *n, "tensor.bbb", 0);
	le64(b + o, 31);
	return TNDIMS(b, *n, "tensor.bbb") + 4;
}
static size_t m_ttype4(uint8_t *b, size_t *n)
{
	size_t o = TTYPE(b, *n, "tensor.aaa");
	le32(b + o, 4);
	return o;
}
static size_t m_ttype39(uint8_t *b, size_t *n)
{
	size_t o = TTYPE(b, *n, "tensor.aaa");
	le32(b + o, 39);
	return o;
}
static size_t m_toff_mis(uint8_t *b, size_t *n)
{
	le64(b + TOFF(b, *n, "tensor.aaa"), 97);
	return TINFO(b, *n, "tensor.aaa");
}
static size_t m_toff_far(uint8_t *b, size_t *n)
{
	le64(b + TOFF(b, *n, "tensor.aaa"), 1 << 20);
	return TINFO(b, *n, "tensor.aaa");
}
static size_t m_toff_wrap(uint8_t *b, size_t *n)
{
	le64(b + TOFF(b, *n, "tensor.aaa"), (uint64_t)-32);
	return TINFO(b, *n, "tensor.aaa");
}
static size_t m_overlap(uint8_t *b, size_t *n)
{
	le64(b + TOFF(b, *n, "tensor.aaa"), 64);
	return TINFO(b, *n, "tensor.aaa");
}
static size_t m_dup_tensor(uint8_t *b, size_t *n)
{
	size_t o = TINFO(b, *n, "tensor.aaa");
	b[find(b, *n, "tensor.bbb") + 7] = 'a';
	b[find(b, *n, "tensor.abb") + 8] = 'a';
	b[find(b, *n, "tensor.aab") + 9] = 'a';
	return o;
}
static size_t m_tname_utf8(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "tensor.aaa") + 3;
	b[o] = 0xff;
	return o;
}
static size_t m_tname_empty(uint8_t *b, size_t *n)
{
	size_t o = TINFO(b, *n, "tensor.aaa");
	le64(b + o, 0);
	return o;
}

static void x_ccc_empty(struct gguf_writer *w)
{
	int64_t ne[1] = { 0 };
	assert_int_equal(gguf_writer_add_tensor(w, "tensor.ccc", GGML_TYPE_F32, 1, ne, NULL), 0);
}
static size_t m_overlap_past_empty(uint8_t *b, size_t *n)
{
	/* bbb [0, 68), ccc at 32 with no bytes, aaa [64, 128): aaa overlaps bbb */
	le64(b + find(b, *n, "tensor.ccc") + 10 + 4 + 8 + 4, 32);
	le64(b + TOFF(b, *n, "tensor.aaa"), 64);
	return TINFO(b, *n, "tensor.aaa");
}
static void x_ccc_3d(struct gguf_writer *w)
{
	int64_t ne[3] = { 0, 1, 1 };
	assert_int_equal(gguf_writer_add_tensor(w, "tensor.ccc", GGML_TYPE_F32, 3, ne, NULL), 0);
}
static size_t m_zero_dim_overflow(uint8_t *b, size_t *n)
{
	size_t o = find(b, *n, "tensor.ccc") + 10 + 4; /* ne[0] */
	le64(b + o + 8, 1ULL << 40);
	le64(b + o + 16, 1ULL << 40);
	return o + 16;
}
static void x_newline_key(struct gguf_writer *w) { raw(w, "bad\nkey", (enum gguf_type)13, "", 0); }
static size_t m_newline_key(uint8_t *b, size_t *n) { return find(b, *n, "bad\nkey") + 7; }

struct bad_case {
	const char *name;
	void (*extra)(struct gguf_writer *w);      /* adds values to the base, or NULL */
	size_t (*mutate)(uint8_t *b, size_t *size); /* returns the offset expected */
	const char *expect;                         /* in the message; NULL: any */
};

static const struct bad_case bad_cases[] = {
	{ .name = "bad magic", .mutate = m_magic, .expect = "bad magic" },
	{ .name = "version 1", .mutate = m_v1, .expect = "version 1 is not supported" },
	{ .name = "version 4", .mutate = m_v4, .expect = "unsupported GGUF version 4" },
	{ .name = "big-endian", .mutate = m_vbe, .expect = "big-endian" },
	{ .name = "tensor count", .mutate = m_ntensors, .expect = "tensor count" },
	{ .name = "metadata count", .mutate = m_nkv, .expect = "metadata count" },
	{ .name = "one tensor too many", .mutate = m_ntensors_more },
	{ .name = "one value too many", .mutate = m_nkv_more },
	{ .name = "empty", .mutate = m_trunc0, .expect = "truncated: magic" },
	{ .name = "3 bytes", .mutate = m_trunc3, .expect = "truncated: magic" },
	{ .name = "10 bytes", .mutate = m_trunc10, .expect = "truncated: tensor count" },
	{ .name = "data cut", .mutate = m_trunc_data, .expect = "past the end of the file" },
	{ .name = "key length", .mutate = m_keylen, .expect = "key length" },
	{ .name = "empty key", .mutate = m_key_empty, .expect = "empty key" },
	{ .name = "key utf8", .mutate = m_key_utf8, .expect = "key is not valid UTF-8" },
	{ .name = "key nul", .mutate = m_key_nul, .expect = "key contains a NUL" },
	{ .name = "duplicate key", .extra = x_dupkey, .mutate = m_dupkey, .expect = "duplicate key 'k.u32'" },
	{ .name = "value type 13", .extra = x_type13, .mutate = m_type13, .expect = "unknown value type 13" },
	{ .name = "bool 2", .extra = x_bool2, .mutate = m_bool2, .expect = "bool value 2" },
	{ .name = "bool array 3", .extra = x_boolarr, .mutate = m_boolarr, .expect = "bool value 3" },
	{ .name = "overlong", .extra = x_overlong, .mutate = m_str0, .expect = "string is not valid UTF-8" },
	{ .name = "surrogate", .extra = x_surrogate, .mutate = m_str1, .expect = "string is not valid UTF-8" },
	{ .name = "above U+10FFFF", .extra = x_above, .mutate = m_str0, .expect = "string is not valid UTF-8" },
	{ .name = "cut sequence", .extra = x_cut, .mutate = m_str2, .expect = "string is not valid UTF-8" },
	{ .name = "lone continuation", .extra = x_cont, .mutate = m_str0, .expect = "string is not valid UTF-8" },
	{ .name = "string length", .extra = x_strlen, .mutate = m_strlen, .expect = "string length" },
	{ .name = "string array utf8", .extra = x_arrstr_bad, .mutate = m_arrstr_bad, .expect = "string is not valid UTF-8" },
	{ .name = "array elem type", .extra = x_arr_elem13, .mutate = m_arr0, .expect = "unknown array element type 13" },
	{ .name = "array length", .extra = x_arr_len, .mutate = m_arr4, .expect = "array length" },
	{ .name = "string array length", .extra = x_arr_len_str, .mutate = m_arr4, .expect = "array length" },
	{ .name = "array of arrays cut", .extra = x_arr_len_arr, .mutate = m_arr_missing },
	{ .name = "nested too deep", .extra = x_deep, .mutate = m_deep, .expect = "nested deeper" },
	{ .name = "alignment 0", .extra = x_align0, .mutate = m_align, .expect = "general.alignment 0" },
	{ .name = "alignment 48", .extra = x_align48, .mutate = m_align, .expect = "general.alignment 48" },
	{ .name = "alignment 2^31", .extra = x_align_big, .mutate = m_align, .expect = "general.alignment 2147483648" },
	{ .name = "alignment string", .extra = x_align_str, .mutate = m_align, .expect = "general.alignment has type str" },
	{ .name = "n_dims 0", .mutate = m_ndims0, .expect = "n_dims 0" },
	{ .name = "n_dims 5", .mutate = m_ndims5, .expect = "n_dims 5" },
	{ .name = "negative dim", .mutate = m_ne_neg, .expect = "negative" },
	{ .name = "element count", .mutate = m_ne_overflow, .expect = "element count overflows" },
	{ .name = "byte size", .mutate = m_bytes_overflow, .expect = "overflows" },
	{ .name = "block size", .mutate = m_blck, .expect = "not a multiple of the q8_0 block size 32" },
	{ .name = "tensor type 4", .mutate = m_ttype4, .expect = "unknown tensor type 4" },
	{ .name = "tensor type 39", .mutate = m_ttype39, .expect = "unknown tensor type 39" },
	{ .name = "misaligned", .mutate = m_toff_mis, .expect = "not a multiple of the alignment 32" },
	{ .name = "out of bounds", .mutate = m_toff_far, .expect = "past the end of the file" },
	{ .name = "offset wraps", .mutate = m_toff_wrap, .expect = "past the end of the file" },
	{ .name = "overlap", .mutate = m_overlap, .expect = "tensor 'tensor.aaa' overlaps tensor 'tensor.bbb'" },
	{ .name = "overlap past empty", .extra = x_ccc_empty, .mutate = m_overlap_past_empty,
	  .expect = "tensor 'tensor.aaa' overlaps tensor 'tensor.bbb'" },
	{ .name = "zero dim, overflow", .extra = x_ccc_3d, .mutate = m_zero_dim_overflow,
	  .expect = "tensor 'tensor.ccc': element count overflows" },
	{ .name = "newline in key", .extra = x_newline_key, .mutate = m_newline_key,
	  .expect = "key 'bad\\x0akey': unknown value type 13" },
	{ .name = "duplicate tensor", .mutate = m_dup_tensor, .expect = "duplicate tensor name 'tensor.aaa'" },
	{ .name = "tensor name utf8", .mutate = m_tname_utf8, .expect = "tensor name is not valid UTF-8" },
	{ .name = "empty tensor name", .mutate = m_tname_empty, .expect = "empty tensor name" },
};

/* Open a copy of B[0..N) in a buffer of exactly N bytes (so that ASan sees
 * any read past it). */
static int open_exact(const uint8_t *b, size_t n, struct gguf_file **g, char *err, size_t errlen)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;
	assert_non_null(copy);
	memcpy(copy, b, n);
	rc = gguf_open_mem(copy, n, "bad", g, err, errlen);
	if (!rc)
		gguf_close(*g);
	free(copy);
	return rc;
}

static void test_malformed(void **state)
{
	char err[512], want[64];
	(void)state;
	for (size_t c = 0; c < sizeof(bad_cases) / sizeof(bad_cases[0]); c++) {
		const struct bad_case *bc = &bad_cases[c];
		struct gguf_writer *w = build_base();
		struct gguf_file *g = (void *)1;
		void *buf;
		size_t size, off;
		int rc;

		if (bc->extra)
			bc->extra(w);
		assert_int_equal(gguf_writer_write_mem(w, &buf, &size, err, sizeof(err)), 0);
		/* unmutated, the base file is fine */
		if (!bc->extra && open_exact(buf, size, &g, err, sizeof(err))) {
			print_message("%s: the unmutated file is refused: %s\n", bc->name, err);
			fail();
		}
		off = bc->mutate(buf, &size);
		err[0] = 0;
		rc = open_exact(buf, size, &g, err, sizeof(err));
		print_message("%-20s -> %s\n", bc->name, err);
		assert_int_equal(rc, -EINVAL);
		assert_null(g);
		assert_non_null(strstr(err, "bad: offset "));
		assert_null(strchr(err, '\n'));
		if (bc->expect && !strstr(err, bc->expect)) {
			print_message("%s: want \"%s\"\n", bc->name, bc->expect);
			fail();
		}
		if (off != SIZE_MAX) {
			snprintf(want, sizeof(want), "bad: offset %zu: ", off);
			if (strncmp(err, want, strlen(want))) {
				print_message("%s: want offset %zu\n", bc->name, off);
				fail();
			}
		}
		free(buf);
		gguf_writer_free(w);
	}
}

/* Every proper prefix of a valid file is refused, without reading past it. */
static void test_every_truncation(void **state)
{
	struct gguf_writer *w = build_base();
	uint8_t e[512];
	char err[512];
	void *buf;
	size_t size, n;
	struct gguf_file *g;
	(void)state;
	raw(w, "x.nested", GGUF_TYPE_ARRAY, e, nested_enc(e, 3));
	raw(w, "x.strstr", GGUF_TYPE_ARRAY, e, strs_of_strs_enc(e));
	assert_int_equal(gguf_writer_set_f64(w, "x.f64", 1.0), 0);
	assert_int_equal(gguf_writer_write_mem(w, &buf, &size, err, sizeof(err)), 0);
	assert_int_equal(open_exact(buf, size, &g, err, sizeof(err)), 0);
	for (n = 0; n < size; n++) {
		err[0] = 0;
		g = (void *)1;
		if (open_exact(buf, n, &g, err, sizeof(err)) != -EINVAL) {
			print_message("prefix of %zu bytes (of %zu) accepted\n", n, size);
			fail();
		}
		assert_null(g);
		assert_non_null(strstr(err, "bad: offset "));
	}
	print_message("%zu truncations refused\n", size);
	free(buf);
	gguf_writer_free(w);
}

/* The same over the metadata and tensor infos of a real file. */
static void test_real_truncation(void **state)
{
	const char *dir = testdata();
	char path[4096], err[512];
	struct gguf_file *g = NULL;
	size_t n, end, count = 0;
	(void)state;
	if (!dir) {
		print_message("testdata directory absent (set TESTDATA)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
	assert_int_equal(gguf_open(path, NULL, &g, err, sizeof(err)), 0);
	end = gguf_data_offset(g) + 64;
	for (n = 0; n < gguf_size(g); n += n < end ? 1 : 4093) {
		struct gguf_file *t = (void *)1;
		assert_int_equal(open_exact(gguf_base(g), n, &t, err, sizeof(err)), -EINVAL);
		assert_null(t);
		count++;
	}
	print_message("%zu truncations of stories260K.gguf refused\n", count);
	gguf_close(g);
}

static void test_open_errors(void **state)
{
	char err[512], path[] = "/tmp/test_gguf.XXXXXX";
	struct gguf_file *g = (void *)1;
	int fd;
	(void)state;
	assert_int_equal(gguf_open("/nonexistent/x.gguf", NULL, &g, err, sizeof(err)), -ENOENT);
	assert_null(g);
	assert_string_equal(err, "/nonexistent/x.gguf: no such file");
	assert_int_equal(gguf_open("/tmp", NULL, &g, err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "/tmp: is a directory");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(gguf_open(path, NULL, &g, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ": offset 0: empty file"));
	/* a NULL or tiny error buffer is fine */
	assert_int_equal(gguf_open(path, NULL, &g, NULL, 0), -EINVAL);
	assert_int_equal(gguf_open(path, NULL, &g, err, 4), -EINVAL);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(gguf_open_mem("GGUX", 4, "m", &g, NULL, 0), -EINVAL);
	unlink(path);
}

/* mlock asked for and impossible: the open fails and says so. A child drops
 * CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK otherwise) and sets the limit
 * to 0. */
static void test_mlock_failure(void **state)
{
	static const uint8_t page[8192];
	char path[] = "/tmp/test_gguf.XXXXXX", err[512];
	int64_t ne[1] = { 2048 };
	struct gguf_writer *w = gguf_writer_new();
	int fd, status;
	pid_t pid;
	(void)state;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MLOCK_IS_NOOP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MLOCK_IS_NOOP 1
#endif
#endif
#ifdef MLOCK_IS_NOOP
	gguf_writer_free(w);
	print_message("AddressSanitizer and ThreadSanitizer make mlock() a no-op that succeeds\n");
	skip();
#endif
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, page), 0);
	assert_int_equal(gguf_writer_write(w, path, err, sizeof(err)), 0);
	gguf_writer_free(w);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct data[2];
		struct rlimit rl = { 0, 0 };
		struct gguf_open_opts o = { .mlock = true };
		struct gguf_file *g = NULL;
		int rc;
		if (syscall(SYS_capget, &hdr, data) < 0)
			_exit(77);
		data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
		if (syscall(SYS_capset, &hdr, data) < 0 || setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
			_exit(77);
		rc = gguf_open(path, &o, &g, err, sizeof(err));
		if (rc == 0)
			_exit(3);
		if (!strstr(err, ": mlock of ") || g)
			_exit(4);
		/* without mlock the same file opens */
		o.mlock = false;
		if (gguf_open(path, &o, &g, err, sizeof(err)))
			_exit(5);
		gguf_close(g);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		print_message("cannot drop CAP_IPC_LOCK or set RLIMIT_MEMLOCK here\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_files),
		cmocka_unit_test(test_stories_values),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_writer_refuses),
		cmocka_unit_test(test_type_traits),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_real_truncation),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_mlock_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
