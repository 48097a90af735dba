/*
 * gguf_write.c: the GGUF writer (the reader is gguf.c).
 *
 * The writer collects metadata values (each kept already encoded, as the
 * bytes that follow its type field in the file) and tensor descriptions
 * (borrowing the caller's data), then emits the file in one pass:
 * header, metadata, tensor infos, padding to the alignment, and each
 * tensor's data padded to the alignment. Tensor offsets are assigned in the
 * order tensors were added. Output goes through a small sink that is either
 * a FILE or a growing memory buffer (tests and fuzz seeds use the latter).
 *
 * The writer refuses what a reader would refuse where it can tell (duplicate
 * keys or tensor names, bad shapes, unknown types, invalid UTF-8), except
 * through gguf_writer_set_raw(), which exists to write anything at all.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dify-edge-core/runtime/gguf.h"

struct wkv {
	char *key;
	enum gguf_type type;
	uint8_t *enc; /* encoded value, len bytes */
	size_t len;
};

struct wtensor {
	char *name;
	enum ggml_type type;
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	const void *data; /* borrowed; NULL writes zeros */
	size_t nbytes;
	uint64_t offset;
};

struct gguf_writer {
	uint32_t version;
	uint32_t align;
	struct wkv *kv;
	size_t n_kv, cap_kv;
	struct wtensor *t;
	size_t n_t, cap_t;
};

struct gguf_writer *gguf_writer_new(void)
{
	struct gguf_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->version = 3;
	w->align = GGUF_DEFAULT_ALIGNMENT;
	return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_kv; i++) {
		free(w->kv[i].key);
		free(w->kv[i].enc);
	}
	for (size_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->kv);
	free(w->t);
	free(w);
}

int gguf_writer_set_version(struct gguf_writer *w, uint32_t version)
{
	if (version != 2 && version != 3)
		return -EINVAL;
	w->version = version;
	return 0;
}

static struct wkv *find_kv(struct gguf_writer *w, const char *key)
{
	for (size_t i = 0; i < w->n_kv; i++)
		if (!strcmp(w->kv[i].key, key))
			return &w->kv[i];
	return NULL;
}

/* Takes ownership of enc (freed on failure). */
static int add_kv(struct gguf_writer *w, const char *key, enum gguf_type type,
		  uint8_t *enc, size_t len)
{
	struct wkv *kv;
	int rc = 0;

	if (!key || !*key || gguf_utf8_check(key, strlen(key)) != strlen(key)) {
		rc = -EINVAL;
		goto out;
	}
	if (find_kv(w, key)) {
		rc = -EEXIST;
		goto out;
	}
	if (w->n_kv == w->cap_kv) {
		size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
		struct wkv *n = realloc(w->kv, cap * sizeof(*n));
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		w->kv = n;
		w->cap_kv = cap;
	}
	kv = &w->kv[w->n_kv];
	kv->key = strdup(key);
	if (!kv->key) {
		rc = -ENOMEM;
		goto out;
	}
	kv->type = type;
	kv->enc = enc;
	kv->len = len;
	w->n_kv++;
	enc = NULL;
out:
	free(enc);
	return rc;
}

static void st32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void st64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int add_scalar(struct gguf_writer *w, const char *key, enum gguf_type type,
		      uint64_t bits)
{
	size_t n = gguf_type_size(type);
	uint8_t *enc = malloc(n);
	if (!enc)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		enc[i] = (uint8_t)(bits >> (8 * i));
	return add_kv(w, key, type, enc, n);
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t align)
{
	struct wkv *kv;
	if (!align || (align & (align - 1)) || align > GGUF_MAX_ALIGNMENT)
		return -EINVAL;
	w->align = align;
	kv = find_kv(w, "general.alignment");
	if (kv) {
		if (kv->type != GGUF_TYPE_UINT32 || kv->len != 4)
			return -EINVAL;
		st32(kv->enc, align);
		return 0;
	}
	return add_scalar(w, "general.alignment", GGUF_TYPE_UINT32, align);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	if (key && !strcmp(key, "general.alignment") && !find_kv(w, key))
		return gguf_writer_set_alignment(w, v);
	return add_scalar(w, key, GGUF_TYPE_UINT32, v);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return add_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	return add_scalar(w, key, GGUF_TYPE_UINT64, v);
}

int gguf_writer_set_i64(struct gguf_writer *w, const char *key, int64_t v)
{
	return add_scalar(w, key, GGUF_TYPE_INT64, (uint64_t)v);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	return add_scalar(w, key, GGUF_TYPE_FLOAT32, u);
}

int gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	return add_scalar(w, key, GGUF_TYPE_FLOAT64, u);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
	return add_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
	size_t n = strlen(v);
	uint8_t *enc;
	if (gguf_utf8_check(v, n) != n)
		return -EINVAL;
	enc = malloc(8 + n);
	if (!enc)
		return -ENOMEM;
	st64(enc, n);
	memcpy(enc + 8, v, n);
	return add_kv(w, key, GGUF_TYPE_STRING, enc, 8 + n);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key,
			enum gguf_type elem_type, const void *data, size_t n)
{
	size_t esz = gguf_type_size(elem_type), bytes;
	uint8_t *enc;
	if (!esz || __builtin_mul_overflow(esz, n, &bytes) || bytes > SIZE_MAX - 12)
		return -EINVAL;
	enc = malloc(12 + bytes);
	if (!enc)
		return -ENOMEM;
	st32(enc, elem_type);
	st64(enc + 4, n);
	/* Elements are little-endian in the file; this host is too (x86-64,
	 * arm64 Linux), so the caller's packed array is copied as is. */
	if (bytes)
		memcpy(enc + 12, data, bytes);
	return add_kv(w, key, GGUF_TYPE_ARRAY, enc, 12 + bytes);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
			    const char *const *strs, size_t n)
{
	size_t total = 12, off;
	uint8_t *enc;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(strs[i]);
		if (gguf_utf8_check(strs[i], l) != l)
			return -EINVAL;
		if (__builtin_add_overflow(total, 8 + l, &total))
			return -EINVAL;
	}
	enc = malloc(total);
	if (!enc)
		return -ENOMEM;
	st32(enc, GGUF_TYPE_STRING);
	st64(enc + 4, n);
	off = 12;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(strs[i]);
		st64(enc + off, l);
		memcpy(enc + off + 8, strs[i], l);
		off += 8 + l;
	}
	return add_kv(w, key, GGUF_TYPE_ARRAY, enc, total);
}

int gguf_writer_set_raw(struct gguf_writer *w, const char *key, enum gguf_type type,
			const void *enc, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, enc, len);
	return add_kv(w, key, type, copy, len);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name,
			   enum ggml_type type, uint32_t n_dims,
			   const int64_t *ne, const void *data)
{
	struct wtensor *t;
	size_t row, nbytes;
	int64_t rows = 1;

	if (!name || !*name || gguf_utf8_check(name, strlen(name)) != strlen(name))
		return -EINVAL;
	if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ggml_blck_size(type))
		return -EINVAL;
	for (uint32_t d = 0; d < n_dims; d++) {
		if (ne[d] < 0)
			return -EINVAL;
		if (d > 0 && __builtin_mul_overflow(rows, ne[d], &rows))
			return -EOVERFLOW;
	}
	row = ggml_row_size(type, ne[0]);
	if (ne[0] % ggml_blck_size(type) || (ne[0] && !row))
		return -EINVAL;
	if (__builtin_mul_overflow(row, (size_t)rows, &nbytes))
		return -EOVERFLOW;
	for (size_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return -EEXIST;
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? w->cap_t * 2 : 16;
		struct wtensor *n = realloc(w->t, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->t = n;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	t->type = type;
	t->n_dims = n_dims;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
	t->data = data;
	t->nbytes = nbytes;
	w->n_t++;
	return 0;
}

/* ---- output ---- */

struct sink {
	FILE *f;
	uint8_t *buf;
	size_t len, cap;
	int err; /* first error, negative errno */
};

static void put(struct sink *s, const void *p, size_t n)
{
	if (s->err || !n)
		return;
	if (s->f) {
		if (fwrite(p, 1, n, s->f) != n)
			s->err = errno ? -errno : -EIO;
		return;
	}
	if (s->cap - s->len < n) {
		size_t cap = s->cap ? s->cap : 4096;
		uint8_t *nb;
		while (cap - s->len < n) {
			if (cap > SIZE_MAX / 2) {
				s->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		nb = realloc(s->buf, cap);
		if (!nb) {
			s->err = -ENOMEM;
			return;
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void put32(struct sink *s, uint32_t v)
{
	uint8_t b[4];
	st32(b, v);
	put(s, b, 4);
}

static void put64(struct sink *s, uint64_t v)
{
	uint8_t b[8];
	st64(b, v);
	put(s, b, 8);
}

static void put_str(struct sink *s, const char *str)
{
	size_t n = strlen(str);
	put64(s, n);
	put(s, str, n);
}

static void put_zeros(struct sink *s, uint64_t n)
{
	static const uint8_t z[4096];
	while (n && !s->err) {
		size_t k = n < sizeof(z) ? (size_t)n : sizeof(z);
		put(s, z, k);
		n -= k;
	}
}

static int emit(struct gguf_writer *w, struct sink *s, char *err, size_t errlen, const char *what)
{
	uint64_t off = 0, pos = 0;

	for (size_t i = 0; i < w->n_t; i++) {
		w->t[i].offset = off;
		if (__builtin_add_overflow(off, (uint64_t)w->t[i].nbytes + w->align - 1, &off)) {
			snprintf(err, errlen, "%s: tensor data too large", what);
			return -EOVERFLOW;
		}
		off -= off % w->align;
	}
	put(s, "GGUF", 4);
	put32(s, w->version);
	put64(s, w->n_t);
	put64(s, w->n_kv);
	pos = 24;
	for (size_t i = 0; i < w->n_kv; i++) {
		put_str(s, w->kv[i].key);
		put32(s, w->kv[i].type);
		put(s, w->kv[i].enc, w->kv[i].len);
		pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].len;
	}
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		put_str(s, t->name);
		put32(s, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			put64(s, (uint64_t)t->ne[d]);
		put32(s, t->type);
		put64(s, t->offset);
		pos += 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
	}
	/* A file without tensors ends here, as llama.cpp's vocab files do. */
	if (w->n_t) {
		put_zeros(s, (w->align - pos % w->align) % w->align);
		pos = 0;
		for (size_t i = 0; i < w->n_t; i++) {
			const struct wtensor *t = &w->t[i];
			put_zeros(s, t->offset - pos);
			if (t->data)
				put(s, t->data, t->nbytes);
			else
				put_zeros(s, t->nbytes);
			pos = t->offset + t->nbytes;
		}
		put_zeros(s, off - pos);
	}
	if (s->err)
		snprintf(err, errlen, "%s: write: %s", what, strerror(-s->err));
	return s->err;
}

int gguf_writer_write_mem(struct gguf_writer *w, void **buf, size_t *size,
			  char *err, size_t errlen)
{
	struct sink s = { 0 };
	char dummy[8];
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	*buf = NULL;
	*size = 0;
	rc = emit(w, &s, err, errlen, "<memory>");
	if (rc) {
		free(s.buf);
		return rc;
	}
	*buf = s.buf;
	*size = s.len;
	return 0;
}

int gguf_writer_write(struct gguf_writer *w, const char *path,
		      char *err, size_t errlen)
{
	struct sink s = { 0 };
	char dummy[8];
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	s.f = fopen(path, "wbe");
	if (!s.f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	setvbuf(s.f, NULL, _IOFBF, 1 << 20);
	rc = emit(w, &s, err, errlen, path);
	if (fclose(s.f) != 0 && !rc) {
		rc = -errno;
		snprintf(err, errlen, "%s: write: %s", path, strerror(-rc));
	}
	if (rc)
		unlink(path);
	return rc;
}
