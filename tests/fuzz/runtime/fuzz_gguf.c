/*
 * fuzz_gguf.c: libFuzzer target for the GGUF reader.
 *
 * Opens the input with gguf_open_mem() over an exact-size buffer (libFuzzer
 * hands us one, so ASan sees any read past it), and when the reader accepts
 * it, uses everything the reader promised is safe: every key looked up
 * again, every metadata value walked recursively (gguf_kv_value and
 * gguf_arr_elem, nested arrays included, strings' first and last bytes
 * read), the typed getters, and the first and last byte of every tensor's
 * data. A crash, an ASan/UBSan report or a leak is a finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dify-edge-core/runtime/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk(const struct gguf_file *g, const struct gguf_value *v, int depth)
{
	struct gguf_value e;

	if (depth > GGUF_MAX_ARRAY_DEPTH + 1)
		__builtin_trap(); /* the reader let a deeper array through */
	switch (v->type) {
	case GGUF_TYPE_STRING:
		if (v->n)
			sink += v->p[0] + v->p[v->n - 1];
		if (gguf_utf8_check(v->p, (size_t)v->n) != v->n)
			__builtin_trap(); /* accepted a string that is not UTF-8 */
		break;
	case GGUF_TYPE_ARRAY:
		for (uint64_t i = 0; i < v->n; i++) {
			if (gguf_arr_elem(g, v, i, &e))
				__builtin_trap();
			walk(g, &e, depth + 1);
		}
		if (gguf_arr_elem(g, v, v->n, &e) == 0)
			__builtin_trap();
		break;
	default:
		sink += (uint64_t)gguf_value_i64(v) + gguf_value_u64(v);
		sink += (uint64_t)(gguf_value_f64(v) != 0.0);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_file *g = NULL;
	char err[256];

	if (gguf_open_mem(data, size, "fuzz", &g, err, sizeof(err)) < 0) {
		if (g || !strstr(err, "fuzz: ") || !memchr(err, 0, sizeof(err)))
			__builtin_trap();
		return 0;
	}
	for (int64_t k = 0; k < gguf_n_kv(g); k++) {
		const char *key = gguf_key(g, k);
		struct gguf_value v;
		uint32_t u32;
		uint64_t u64;
		int64_t i64;
		int32_t i32;
		float f;
		bool b;
		const char *s;
		size_t len;
		enum gguf_type et;
		uint64_t n;
		const void *p;

		if (gguf_find_key(g, key) != k || gguf_kv_value(g, k, &v))
			__builtin_trap();
		walk(g, &v, 0);
		sink += (uint64_t)gguf_get_u32(g, key, &u32) + (uint64_t)gguf_get_u64(g, key, &u64) +
			(uint64_t)gguf_get_i64(g, key, &i64) + (uint64_t)gguf_get_i32(g, key, &i32) +
			(uint64_t)gguf_get_f32(g, key, &f) + (uint64_t)gguf_get_bool(g, key, &b) +
			(uint64_t)gguf_get_str(g, key, &s, &len);
		if (gguf_get_arr(g, key, &et, &n, &p) == 0 && et == GGUF_TYPE_STRING && n)
			if (gguf_get_arr_str(g, key, n - 1, &s, &len) == 0 && len)
				sink += (uint8_t)s[len - 1];
	}
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		const uint8_t *d = t->data;
		if (gguf_find_tensor(g, t->name) != t)
			__builtin_trap();
		if ((size_t)(d - (const uint8_t *)gguf_base(g)) % gguf_alignment(g))
			__builtin_trap();
		if (t->nbytes)
			sink += d[0] + d[t->nbytes - 1];
	}
	gguf_close(g);
	return 0;
}
