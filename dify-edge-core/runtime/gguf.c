/*
 * gguf.c: the GGUF v2/v3 reader (the writer is gguf_write.c).
 *
 * A GGUF file is a header (magic "GGUF", version, tensor count, metadata
 * count), the metadata key/value pairs, the tensor infos (name, shape, type,
 * offset), padding up to general.alignment, and the tensor data. All
 * integers are little-endian; counts and lengths are 64-bit (v2 and v3; v1
 * used 32-bit counts and is refused).
 *
 * DESIGN
 * The whole file is mapped read-only and validated once, in gguf_open():
 * every length, count and offset is checked against the bytes that remain
 * (with overflow-checked arithmetic), before anything is read, by a cursor
 * (struct rd) that is the only code touching the mapping during the parse.
 * Counts are capped by the bytes left (each element needs at least a known
 * number of bytes), so a hostile count can never make us allocate more than
 * a small multiple of the file size. After a successful open, the accessors
 * only follow pointers that the parse has proven lie inside the mapping.
 *
 * Nothing is copied except keys and tensor names (made NUL-terminated).
 * For arrays whose elements have variable size (strings, arrays) the parse
 * records where each element starts, so element I of any array, nested or
 * not, is found in O(1) (gguf_arr_elem, gguf_get_arr_str). Keys and tensor
 * names are in open-addressing hash tables, which also detect duplicates.
 *
 * Every refusal is one line: "<file>: offset <N>: <problem>", N being the
 * byte offset of the field at fault.
 *
 * The parse functions return at the first error instead of the usual single
 * "goto out" exit: everything they allocate hangs off struct gguf_file as
 * soon as it is allocated (counts are bumped before anything can fail), so
 * they have nothing of their own to undo; finish_open() frees the whole
 * file with file_free() on any failure. A gguf_file is never written after
 * open, so any number of threads may read it at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dify-edge-core/runtime/gguf.h"

/* ---- type traits ---- */

struct ggml_traits {
	const char *name;
	int64_t blck; /* elements per block; 0: unknown type */
	size_t size;  /* bytes per block */
};

/* Block layouts as ggml defines them (ggml-common.h), QK_K = 256. */
static const struct ggml_traits ggml_traits[GGML_TYPE_COUNT] = {
	[GGML_TYPE_F32] = { .name = "f32", .blck = 1, .size = 4 },
	[GGML_TYPE_F16] = { .name = "f16", .blck = 1, .size = 2 },
	[GGML_TYPE_Q4_0] = { .name = "q4_0", .blck = 32, .size = 18 },
	[GGML_TYPE_Q4_1] = { .name = "q4_1", .blck = 32, .size = 20 },
	[GGML_TYPE_Q5_0] = { .name = "q5_0", .blck = 32, .size = 22 },
	[GGML_TYPE_Q5_1] = { .name = "q5_1", .blck = 32, .size = 24 },
	[GGML_TYPE_Q8_0] = { .name = "q8_0", .blck = 32, .size = 34 },
	[GGML_TYPE_Q8_1] = { .name = "q8_1", .blck = 32, .size = 36 },
	[GGML_TYPE_Q2_K] = { .name = "q2_K", .blck = 256, .size = 84 },
	[GGML_TYPE_Q3_K] = { .name = "q3_K", .blck = 256, .size = 110 },
	[GGML_TYPE_Q4_K] = { .name = "q4_K", .blck = 256, .size = 144 },
	[GGML_TYPE_Q5_K] = { .name = "q5_K", .blck = 256, .size = 176 },
	[GGML_TYPE_Q6_K] = { .name = "q6_K", .blck = 256, .size = 210 },
	[GGML_TYPE_Q8_K] = { .name = "q8_K", .blck = 256, .size = 292 },
	[GGML_TYPE_IQ2_XXS] = { .name = "iq2_xxs", .blck = 256, .size = 66 },
	[GGML_TYPE_IQ2_XS] = { .name = "iq2_xs", .blck = 256, .size = 74 },
	[GGML_TYPE_IQ3_XXS] = { .name = "iq3_xxs", .blck = 256, .size = 98 },
	[GGML_TYPE_IQ1_S] = { .name = "iq1_s", .blck = 256, .size = 50 },
	[GGML_TYPE_IQ4_NL] = { .name = "iq4_nl", .blck = 32, .size = 18 },
	[GGML_TYPE_IQ3_S] = { .name = "iq3_s", .blck = 256, .size = 110 },
	[GGML_TYPE_IQ2_S] = { .name = "iq2_s", .blck = 256, .size = 82 },
	[GGML_TYPE_IQ4_XS] = { .name = "iq4_xs", .blck = 256, .size = 136 },
	[GGML_TYPE_I8] = { .name = "i8", .blck = 1, .size = 1 },
	[GGML_TYPE_I16] = { .name = "i16", .blck = 1, .size = 2 },
	[GGML_TYPE_I32] = { .name = "i32", .blck = 1, .size = 4 },
	[GGML_TYPE_I64] = { .name = "i64", .blck = 1, .size = 8 },
	[GGML_TYPE_F64] = { .name = "f64", .blck = 1, .size = 8 },
	[GGML_TYPE_IQ1_M] = { .name = "iq1_m", .blck = 256, .size = 56 },
	[GGML_TYPE_BF16] = { .name = "bf16", .blck = 1, .size = 2 },
	[GGML_TYPE_TQ1_0] = { .name = "tq1_0", .blck = 256, .size = 54 },
	[GGML_TYPE_TQ2_0] = { .name = "tq2_0", .blck = 256, .size = 66 },
};

static const struct ggml_traits *traits(enum ggml_type t)
{
	if ((unsigned)t >= GGML_TYPE_COUNT || !ggml_traits[t].blck)
		return NULL;
	return &ggml_traits[t];
}

const char *ggml_type_name(enum ggml_type t)
{
	const struct ggml_traits *tr = traits(t);
	return tr ? tr->name : "unknown";
}

int64_t ggml_blck_size(enum ggml_type t)
{
	const struct ggml_traits *tr = traits(t);
	return tr ? tr->blck : 0;
}

size_t ggml_type_size(enum ggml_type t)
{
	const struct ggml_traits *tr = traits(t);
	return tr ? tr->size : 0;
}

size_t ggml_row_size(enum ggml_type t, int64_t ne0)
{
	const struct ggml_traits *tr = traits(t);
	size_t r;
	if (!tr || ne0 < 0 || ne0 % tr->blck)
		return 0;
	if (__builtin_mul_overflow((size_t)(ne0 / tr->blck), tr->size, &r))
		return 0;
	return r;
}

static const char *const gguf_type_names[GGUF_TYPE_COUNT] = {
	[GGUF_TYPE_UINT8] = "u8",     [GGUF_TYPE_INT8] = "i8",
	[GGUF_TYPE_UINT16] = "u16",   [GGUF_TYPE_INT16] = "i16",
	[GGUF_TYPE_UINT32] = "u32",   [GGUF_TYPE_INT32] = "i32",
	[GGUF_TYPE_FLOAT32] = "f32",  [GGUF_TYPE_BOOL] = "bool",
	[GGUF_TYPE_STRING] = "str",   [GGUF_TYPE_ARRAY] = "arr",
	[GGUF_TYPE_UINT64] = "u64",   [GGUF_TYPE_INT64] = "i64",
	[GGUF_TYPE_FLOAT64] = "f64",
};

const char *gguf_type_name(enum gguf_type t)
{
	if ((unsigned)t >= GGUF_TYPE_COUNT)
		return "unknown";
	return gguf_type_names[t];
}

/* Bytes of a fixed-width value type; 0 for STRING, ARRAY and unknown. */
size_t gguf_type_size(enum gguf_type t)
{
	static const uint8_t sz[GGUF_TYPE_COUNT] = {
		[GGUF_TYPE_UINT8] = 1,  [GGUF_TYPE_INT8] = 1,
		[GGUF_TYPE_UINT16] = 2, [GGUF_TYPE_INT16] = 2,
		[GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4,
		[GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
		[GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8,
		[GGUF_TYPE_FLOAT64] = 8,
	};
	if ((unsigned)t >= GGUF_TYPE_COUNT)
		return 0;
	return sz[t];
}

size_t gguf_utf8_check(const void *buf, size_t n)
{
	const uint8_t *s = buf;
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t len, k;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
		} else if (c == 0xE0) {
			len = 3;
			lo = 0xA0; /* no overlongs */
		} else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
			len = 3;
		} else if (c == 0xED) {
			len = 3;
			hi = 0x9F; /* no surrogates */
		} else if (c == 0xF0) {
			len = 4;
			lo = 0x90; /* no overlongs */
		} else if (c >= 0xF1 && c <= 0xF3) {
			len = 4;
		} else if (c == 0xF4) {
			len = 4;
			hi = 0x8F; /* <= U+10FFFF */
		} else {
			return i;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (k = 2; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

/* ---- the parsed file ---- */

/* A metadata value. For arrays: p is the first element; elems[i] is where
 * string element i starts (its length prefix); kids[i] is array element i. */
struct vnode {
	enum gguf_type type;
	enum gguf_type elem_type;
	uint64_t n;
	const uint8_t *p;
	const uint8_t **elems;
	struct vnode *kids;
};

struct gguf_kv {
	char *key;
	size_t keylen;
	struct vnode v;
};

struct htab {
	int64_t *slot; /* index + 1; 0 empty */
	size_t mask;
};

struct gguf_file {
	char *path;
	const uint8_t *base;
	size_t size;
	bool mapped;
	uint32_t version;
	size_t alignment;
	size_t data_offset;
	int64_t n_kv;
	struct gguf_kv *kv;
	struct htab kv_tab;
	int64_t n_tensors;
	struct gguf_tensor *tensors;
	uint64_t *tinfo_off; /* file offset of each tensor's info, for errors */
	struct htab t_tab;
};

/* Fewest bytes a metadata pair can take: key length, 1-byte key, type, u8. */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
/* Fewest bytes a tensor info can take: name length, 1-byte name, n_dims,
 * one dim, type, offset. */
#define MIN_TINFO_BYTES (8 + 1 + 4 + 8 + 4 + 8)

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int htab_init(struct htab *t, int64_t n)
{
	size_t cap = 16;
	while (cap < (size_t)n * 2)
		cap <<= 1;
	t->slot = calloc(cap, sizeof(*t->slot));
	t->mask = cap - 1;
	return t->slot ? 0 : -ENOMEM;
}

/* Find S in T; names(i) gives the string at index i. Returns the index or
 * -1, and in *ins the empty slot where S would go. */
typedef const char *(*name_fn)(const struct gguf_file *g, int64_t i, size_t *len);

static int64_t htab_find(const struct htab *t, const struct gguf_file *g, name_fn names,
			 const char *s, size_t n, size_t *ins)
{
	size_t h;
	if (!t->slot)
		return -1;
	h = (size_t)hash_bytes(s, n) & t->mask;
	for (;;) {
		int64_t v = t->slot[h];
		size_t len;
		const char *o;
		if (!v) {
			if (ins)
				*ins = h;
			return -1;
		}
		o = names(g, v - 1, &len);
		if (len == n && !memcmp(o, s, n))
			return v - 1;
		h = (h + 1) & t->mask;
	}
}

static const char *kv_name(const struct gguf_file *g, int64_t i, size_t *len)
{
	*len = g->kv[i].keylen;
	return g->kv[i].key;
}

static const char *t_name(const struct gguf_file *g, int64_t i, size_t *len)
{
	*len = strlen(g->tensors[i].name);
	return g->tensors[i].name;
}

/* ---- the cursor ---- */

struct rd {
	const uint8_t *b;
	size_t size;
	size_t off; /* invariant: off <= size */
	const char *name;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int bad(struct rd *r, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (!r->err || !r->errlen)
		return -EINVAL;
	n = snprintf(r->err, r->errlen, "%s: offset %zu: ", r->name, off);
	if (n >= 0 && (size_t)n < r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A name fit for a one-line message: at most ~80 bytes (cut on a UTF-8
 * boundary, "..." appended), control characters shown as \xNN. */
struct qname {
	char s[112];
};

static struct qname qn(const char *name, size_t n)
{
	struct qname q;
	size_t o = 0, i = 0, max = 80;
	if (n > max) {
		while (max > 0 && ((uint8_t)name[max] & 0xC0) == 0x80)
			max--;
	}
	for (; i < n && i < max; i++) {
		uint8_t c = (uint8_t)name[i];
		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(q.s + o, sizeof(q.s) - o, "\\x%02x", c);
		else
			q.s[o++] = (char)c;
		if (o > sizeof(q.s) - 8)
			break;
	}
	if (i < n)
		o += (size_t)snprintf(q.s + o, sizeof(q.s) - o, "...");
	q.s[o] = 0;
	return q;
}

static struct qname qs(const char *name)
{
	return qn(name, strlen(name));
}

static size_t left(const struct rd *r)
{
	return r->size - r->off;
}

static int need(struct rd *r, size_t n, const char *what)
{
	if (left(r) < n)
		return bad(r, r->off, "truncated: %s needs %zu bytes, %zu left", what, n, left(r));
	return 0;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
	int rc = need(r, 4, what);
	if (rc)
		return rc;
	*v = ld32(r->b + r->off);
	r->off += 4;
	return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
	int rc = need(r, 8, what);
	if (rc)
		return rc;
	*v = ld64(r->b + r->off);
	r->off += 8;
	return 0;
}

enum { STR_VALUE = 0, STR_NAME = 1 }; /* names: non-empty, no NUL */

static int rd_str(struct rd *r, int kind, const char *what, const uint8_t **s, size_t *len)
{
	size_t at = r->off, bad_at;
	uint64_t n;
	int rc = rd_u64(r, &n, what);
	if (rc)
		return rc;
	if (n > left(r))
		return bad(r, at, "truncated: %s length %llu exceeds the %zu bytes left", what,
			   (unsigned long long)n, left(r));
	if (kind == STR_NAME && n == 0)
		return bad(r, at, "empty %s", what);
	bad_at = gguf_utf8_check(r->b + r->off, (size_t)n);
	if (bad_at != n)
		return bad(r, r->off + bad_at, "%s is not valid UTF-8", what);
	if (kind == STR_NAME && memchr(r->b + r->off, 0, (size_t)n))
		return bad(r, r->off, "%s contains a NUL byte", what);
	*s = r->b + r->off;
	*len = (size_t)n;
	r->off += (size_t)n;
	return 0;
}

/* ---- metadata values ---- */

static void vnode_free(struct vnode *v)
{
	if (v->kids) {
		for (uint64_t i = 0; i < v->n; i++)
			vnode_free(&v->kids[i]);
		free(v->kids);
	}
	free(v->elems);
	v->kids = NULL;
	v->elems = NULL;
}

static int parse_value(struct rd *r, struct vnode *v, enum gguf_type type, int depth);

static int parse_array(struct rd *r, struct vnode *v, int depth)
{
	size_t at = r->off, esz, min;
	uint32_t et;
	uint64_t n;
	int rc;

	if (depth > GGUF_MAX_ARRAY_DEPTH)
		return bad(r, at, "arrays nested deeper than %d", GGUF_MAX_ARRAY_DEPTH);
	if ((rc = rd_u32(r, &et, "array element type")))
		return rc;
	if (et >= GGUF_TYPE_COUNT)
		return bad(r, at, "unknown array element type %u", et);
	if ((rc = rd_u64(r, &n, "array length")))
		return rc;
	esz = gguf_type_size((enum gguf_type)et);
	min = esz ? esz : et == GGUF_TYPE_STRING ? 8 : 12;
	if (n > left(r) / min)
		return bad(r, at + 4, "array length %llu of %s needs more than the %zu bytes left",
			   (unsigned long long)n, gguf_type_name((enum gguf_type)et), left(r));
	v->type = GGUF_TYPE_ARRAY;
	v->elem_type = (enum gguf_type)et;
	v->n = n;
	v->p = r->b + r->off;
	if (esz) {
		if (et == GGUF_TYPE_BOOL) {
			for (uint64_t i = 0; i < n; i++)
				if (r->b[r->off + i] > 1)
					return bad(r, r->off + i, "bool value %u is not 0 or 1",
						   r->b[r->off + i]);
		}
		r->off += (size_t)n * esz;
		return 0;
	}
	if (n == 0)
		return 0;
	if (et == GGUF_TYPE_STRING) {
		v->elems = malloc((size_t)n * sizeof(*v->elems));
		if (!v->elems)
			return -ENOMEM;
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *s;
			size_t len;
			v->elems[i] = r->b + r->off;
			if ((rc = rd_str(r, STR_VALUE, "string", &s, &len)))
				return rc;
		}
		return 0;
	}
	v->kids = calloc((size_t)n, sizeof(*v->kids));
	if (!v->kids)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		if ((rc = parse_array(r, &v->kids[i], depth + 1)))
			return rc;
	return 0;
}

static int parse_value(struct rd *r, struct vnode *v, enum gguf_type type, int depth)
{
	size_t esz = gguf_type_size(type);
	int rc;

	v->type = type;
	if (esz) {
		if ((rc = need(r, esz, gguf_type_name(type))))
			return rc;
		if (type == GGUF_TYPE_BOOL && r->b[r->off] > 1)
			return bad(r, r->off, "bool value %u is not 0 or 1", r->b[r->off]);
		v->p = r->b + r->off;
		r->off += esz;
		return 0;
	}
	if (type == GGUF_TYPE_STRING) {
		size_t len;
		if ((rc = rd_str(r, STR_VALUE, "string", &v->p, &len)))
			return rc;
		v->n = len;
		return 0;
	}
	return parse_array(r, v, depth + 1);
}

/* ---- open ---- */

static void file_free(struct gguf_file *g)
{
	if (!g)
		return;
	if (g->kv) {
		for (int64_t i = 0; i < g->n_kv; i++) {
			free(g->kv[i].key);
			vnode_free(&g->kv[i].v);
		}
		free(g->kv);
	}
	if (g->tensors) {
		for (int64_t i = 0; i < g->n_tensors; i++)
			free((char *)g->tensors[i].name);
		free(g->tensors);
	}
	free(g->tinfo_off);
	free(g->kv_tab.slot);
	free(g->t_tab.slot);
	if (g->mapped && g->base)
		munmap((void *)g->base, g->size);
	free(g->path);
	free(g);
}

static int parse_header(struct rd *r, struct gguf_file *g, uint64_t *n_tensors, uint64_t *n_kv)
{
	uint32_t magic, version;
	int rc;

	if ((rc = rd_u32(r, &magic, "magic")))
		return rc;
	if (memcmp(r->b, "GGUF", 4))
		return bad(r, 0, "bad magic %02x %02x %02x %02x (not a GGUF file)",
			   r->b[0], r->b[1], r->b[2], r->b[3]);
	if ((rc = rd_u32(r, &version, "version")))
		return rc;
	if (version != 2 && version != 3) {
		if (version == 1)
			return bad(r, 4, "GGUF version 1 is not supported (only 2 and 3)");
		if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3)
			return bad(r, 4, "big-endian GGUF is not supported");
		return bad(r, 4, "unsupported GGUF version %u (only 2 and 3)", version);
	}
	g->version = version;
	if ((rc = rd_u64(r, n_tensors, "tensor count")))
		return rc;
	if ((rc = rd_u64(r, n_kv, "metadata count")))
		return rc;
	/* Caps: each pair / info needs a minimum of bytes. */
	if (*n_kv > left(r) / MIN_KV_BYTES)
		return bad(r, 16, "metadata count %llu needs more than the %zu bytes left",
			   (unsigned long long)*n_kv, left(r));
	if (*n_tensors > left(r) / MIN_TINFO_BYTES)
		return bad(r, 8, "tensor count %llu needs more than the %zu bytes left",
			   (unsigned long long)*n_tensors, left(r));
	return 0;
}

static int parse_kvs(struct rd *r, struct gguf_file *g, uint64_t n_kv)
{
	int rc;

	g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*g->kv));
	if (!g->kv)
		return -ENOMEM;
	if ((rc = htab_init(&g->kv_tab, (int64_t)n_kv)))
		return rc;
	for (uint64_t i = 0; i < n_kv; i++) {
		struct gguf_kv *kv = &g->kv[i];
		size_t at = r->off, tat, slot = 0, len;
		const uint8_t *key;
		uint32_t type;

		if ((rc = rd_str(r, STR_NAME, "key", &key, &len)))
			return rc;
		if (htab_find(&g->kv_tab, g, kv_name, (const char *)key, len, &slot) >= 0)
			return bad(r, at, "duplicate key '%s'", qn((const char *)key, len).s);
		kv->key = malloc(len + 1);
		if (!kv->key)
			return -ENOMEM;
		memcpy(kv->key, key, len);
		kv->key[len] = 0;
		kv->keylen = len;
		g->n_kv = (int64_t)i + 1; /* owns kv->key from here */
		g->kv_tab.slot[slot] = (int64_t)i + 1;
		tat = r->off;
		if ((rc = rd_u32(r, &type, "value type")))
			return rc;
		if (type >= GGUF_TYPE_COUNT)
			return bad(r, tat, "key '%s': unknown value type %u", qs(kv->key).s, type);
		if ((rc = parse_value(r, &kv->v, (enum gguf_type)type, 0)))
			return rc;
	}
	return 0;
}

static int parse_alignment(struct rd *r, struct gguf_file *g)
{
	int64_t kid = gguf_find_key(g, "general.alignment");
	const struct vnode *v;
	size_t at;
	uint64_t a;

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (kid < 0)
		return 0;
	v = &g->kv[kid].v;
	/* where the value starts: strings and arrays begin with a header */
	at = (size_t)(v->p - r->b) - (v->type == GGUF_TYPE_STRING ? 8 : v->type == GGUF_TYPE_ARRAY ? 12 : 0);
	if (v->type != GGUF_TYPE_UINT32 && v->type != GGUF_TYPE_UINT64 &&
	    v->type != GGUF_TYPE_INT32 && v->type != GGUF_TYPE_UINT16 && v->type != GGUF_TYPE_UINT8)
		return bad(r, at, "general.alignment has type %s, not an unsigned integer",
			   gguf_type_name(v->type));
	{
		struct gguf_value gv = { .type = v->type, .p = v->p };
		a = gguf_value_u64(&gv);
		if (v->type == GGUF_TYPE_INT32 && gguf_value_i64(&gv) < 0)
			a = 0;
	}
	if (a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
		return bad(r, at, "general.alignment %llu is not a power of two in 1..%u",
			   (unsigned long long)a, GGUF_MAX_ALIGNMENT);
	g->alignment = (size_t)a;
	return 0;
}

static int parse_tensor_infos(struct rd *r, struct gguf_file *g, uint64_t n)
{
	int rc;

	g->tensors = calloc(n ? (size_t)n : 1, sizeof(*g->tensors));
	g->tinfo_off = calloc(n ? (size_t)n : 1, sizeof(*g->tinfo_off));
	if (!g->tensors || !g->tinfo_off)
		return -ENOMEM;
	if ((rc = htab_init(&g->t_tab, (int64_t)n)))
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		size_t at = r->off, slot = 0, len, dat, tat;
		const uint8_t *name;
		char *nm;
		uint32_t nd, type;
		int64_t mag = 1, nrows = 1;
		size_t row;

		if ((rc = rd_str(r, STR_NAME, "tensor name", &name, &len)))
			return rc;
		if (htab_find(&g->t_tab, g, t_name, (const char *)name, len, &slot) >= 0)
			return bad(r, at, "duplicate tensor name '%s'", qn((const char *)name, len).s);
		nm = malloc(len + 1);
		if (!nm)
			return -ENOMEM;
		memcpy(nm, name, len);
		nm[len] = 0;
		t->name = nm;
		g->n_tensors = (int64_t)i + 1; /* owns the name from here */
		g->t_tab.slot[slot] = (int64_t)i + 1;
		g->tinfo_off[i] = at;

		dat = r->off;
		if ((rc = rd_u32(r, &nd, "tensor n_dims")))
			return rc;
		if (nd < 1 || nd > GGUF_MAX_DIMS)
			return bad(r, dat, "tensor '%s': n_dims %u not in 1..%d", qs(nm).s, nd, GGUF_MAX_DIMS);
		t->n_dims = nd;
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			t->ne[d] = 1;
		for (uint32_t d = 0; d < nd; d++) {
			size_t eat = r->off;
			uint64_t ne;
			if ((rc = rd_u64(r, &ne, "tensor dimension")))
				return rc;
			if (ne > INT64_MAX)
				return bad(r, eat, "tensor '%s': dimension %u is negative (%lld)", qs(nm).s, d,
					   (long long)(int64_t)ne);
			t->ne[d] = (int64_t)ne;
			/* The product of the dimensions must fit even when one is
			 * zero: count the others as 1 (mag), so no later product
			 * of a subset (rows) can overflow either. */
			if (__builtin_mul_overflow(mag, ne ? (int64_t)ne : 1, &mag))
				return bad(r, eat, "tensor '%s': element count overflows", qs(nm).s);
			if (d > 0)
				nrows *= (int64_t)ne; /* |nrows| <= mag */
		}
		tat = r->off;
		if ((rc = rd_u32(r, &type, "tensor type")))
			return rc;
		if (!traits((enum ggml_type)type))
			return bad(r, tat, "tensor '%s': unknown tensor type %u", qs(nm).s, type);
		t->type = (enum ggml_type)type;
		if (t->ne[0] % ggml_blck_size(t->type))
			return bad(r, dat + 4, "tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld",
				   qs(nm).s, (long long)t->ne[0], ggml_type_name(t->type),
				   (long long)ggml_blck_size(t->type));
		row = ggml_row_size(t->type, t->ne[0]);
		if (t->ne[0] && !row)
			return bad(r, dat + 4, "tensor '%s': row size overflows", qs(nm).s);
		if (__builtin_mul_overflow(row, (uint64_t)nrows, &t->nbytes))
			return bad(r, dat + 4, "tensor '%s': byte size overflows", qs(nm).s);
		if ((rc = rd_u64(r, &t->offset, "tensor offset")))
			return rc;
	}
	return 0;
}

static int cmp_by_offset(const void *a, const void *b, void *arg)
{
	const struct gguf_tensor *t = arg;
	uint64_t x = t[*(const int64_t *)a].offset, y = t[*(const int64_t *)b].offset;
	return x < y ? -1 : x > y;
}

static int check_tensor_data(struct rd *r, struct gguf_file *g)
{
	int64_t *ord = NULL;
	int rc = 0;

	if (__builtin_add_overflow(r->off, g->alignment - 1, &g->data_offset)) {
		rc = bad(r, r->off, "data offset overflows");
		goto out;
	}
	g->data_offset -= g->data_offset % g->alignment;
	for (int64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		size_t at = (size_t)g->tinfo_off[i];
		uint64_t start, end;
		if (t->offset % g->alignment) {
			rc = bad(r, at, "tensor '%s': data offset %llu is not a multiple of the alignment %zu",
				 qs(t->name).s, (unsigned long long)t->offset, g->alignment);
			goto out;
		}
		if (__builtin_add_overflow((uint64_t)g->data_offset, t->offset, &start) ||
		    __builtin_add_overflow(start, (uint64_t)t->nbytes, &end) || end > g->size) {
			rc = bad(r, at, "tensor '%s': data at offset %llu + %zu bytes lies past the end of the file (%zu bytes)",
				 qs(t->name).s, (unsigned long long)t->offset, t->nbytes, g->size);
			goto out;
		}
		t->data = r->b + start;
	}
	if (g->n_tensors < 2)
		goto out;
	ord = malloc((size_t)g->n_tensors * sizeof(*ord));
	if (!ord) {
		rc = -ENOMEM;
		goto out;
	}
	for (int64_t i = 0; i < g->n_tensors; i++)
		ord[i] = i;
	qsort_r(ord, (size_t)g->n_tensors, sizeof(*ord), cmp_by_offset, g->tensors);
	/* In offset order, each tensor with bytes must start at or after the
	 * furthest end so far (zero-byte tensors occupy nothing). */
	for (int64_t i = 0, last = -1; i < g->n_tensors; i++) {
		const struct gguf_tensor *b = &g->tensors[ord[i]], *a;
		if (!b->nbytes)
			continue;
		if (last >= 0) {
			a = &g->tensors[last];
			if (a->offset + a->nbytes > b->offset) {
				rc = bad(r, (size_t)g->tinfo_off[ord[i]], "tensor '%s' overlaps tensor '%s'",
					 qs(b->name).s, qs(a->name).s);
				goto out;
			}
		}
		if (last < 0 || b->offset + b->nbytes > g->tensors[last].offset + g->tensors[last].nbytes)
			last = ord[i];
	}
out:
	free(ord);
	return rc;
}

static int parse(const uint8_t *b, size_t size, struct gguf_file *g, char *err, size_t errlen)
{
	struct rd r = { .b = b, .size = size, .name = g->path, .err = err, .errlen = errlen };
	uint64_t n_tensors, n_kv;
	int rc;

	g->base = b;
	g->size = size;
	if ((rc = parse_header(&r, g, &n_tensors, &n_kv)))
		return rc;
	if ((rc = parse_kvs(&r, g, n_kv)))
		return rc;
	if ((rc = parse_alignment(&r, g)))
		return rc;
	if ((rc = parse_tensor_infos(&r, g, n_tensors)))
		return rc;
	return check_tensor_data(&r, g);
}

static void put_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int finish_open(struct gguf_file *g, const uint8_t *b, size_t size,
		       struct gguf_file **out, char *err, size_t errlen)
{
	int rc = parse(b, size, g, err, errlen);
	if (rc == -ENOMEM)
		put_err(err, errlen, "%s: out of memory while indexing", g->path);
	if (rc) {
		file_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int gguf_open_mem(const void *buf, size_t size, const char *name,
		  struct gguf_file **out, char *err, size_t errlen)
{
	struct gguf_file *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->path = strdup(name ? name : "<memory>"))) {
		free(g);
		put_err(err, errlen, "%s: out of memory", name ? name : "<memory>");
		return -ENOMEM;
	}
	return finish_open(g, buf, size, out, err, errlen);
}

int gguf_open(const char *path, const struct gguf_open_opts *opts,
	      struct gguf_file **out, char *err, size_t errlen)
{
	static const struct gguf_open_opts defaults = { 0 };
	struct gguf_file *g = NULL;
	struct stat st;
	void *map = MAP_FAILED;
	int fd = -1, rc = 0, flags = MAP_PRIVATE;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			put_err(err, errlen, "%s: no such file", path);
		else
			put_err(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		put_err(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		put_err(err, errlen, "%s: is a directory", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		put_err(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size == 0) {
		rc = -EINVAL;
		put_err(err, errlen, "%s: offset 0: empty file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		rc = -EFBIG;
		put_err(err, errlen, "%s: file too large to map", path);
		goto out;
	}
	if (opts->populate)
		flags |= MAP_POPULATE;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, flags, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		put_err(err, errlen, "%s: mmap: %s", path, strerror(-rc));
		goto out;
	}
	/* A hint only: its failure changes nothing we promise. */
	(void)madvise(map, (size_t)st.st_size, opts->sequential ? MADV_SEQUENTIAL : MADV_WILLNEED);
	if (opts->mlock && mlock(map, (size_t)st.st_size) < 0) {
		rc = -errno;
		put_err(err, errlen, "%s: mlock of %lld bytes: %s (see ulimit -l)", path,
			(long long)st.st_size, strerror(-rc));
		goto out;
	}
	g = calloc(1, sizeof(*g));
	if (!g || !(g->path = strdup(path))) {
		rc = -ENOMEM;
		put_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	g->mapped = true;
	g->base = map;
	g->size = (size_t)st.st_size;
	map = MAP_FAILED; /* g owns it now; finish_open frees g on failure */
	rc = finish_open(g, g->base, g->size, out, err, errlen);
	g = NULL;
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	if (g) {
		free(g->path);
		free(g);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

void gguf_close(struct gguf_file *g)
{
	file_free(g);
}

/* ---- accessors ---- */

uint32_t gguf_version(const struct gguf_file *g) { return g->version; }
const char *gguf_path(const struct gguf_file *g) { return g->path; }
const void *gguf_base(const struct gguf_file *g) { return g->base; }
size_t gguf_size(const struct gguf_file *g) { return g->size; }
size_t gguf_alignment(const struct gguf_file *g) { return g->alignment; }
size_t gguf_data_offset(const struct gguf_file *g) { return g->data_offset; }
int64_t gguf_n_kv(const struct gguf_file *g) { return g->n_kv; }

int64_t gguf_find_key(const struct gguf_file *g, const char *key)
{
	return htab_find(&g->kv_tab, g, kv_name, key, strlen(key), NULL);
}

const char *gguf_key(const struct gguf_file *g, int64_t kid)
{
	if (kid < 0 || kid >= g->n_kv)
		return NULL;
	return g->kv[kid].key;
}

enum gguf_type gguf_kv_type(const struct gguf_file *g, int64_t kid)
{
	if (kid < 0 || kid >= g->n_kv)
		return GGUF_TYPE_COUNT;
	return g->kv[kid].v.type;
}

static void node_to_value(const struct vnode *v, struct gguf_value *out)
{
	out->type = v->type;
	out->elem_type = v->type == GGUF_TYPE_ARRAY ? v->elem_type : GGUF_TYPE_COUNT;
	out->n = v->type == GGUF_TYPE_ARRAY || v->type == GGUF_TYPE_STRING ? v->n : 0;
	out->p = v->p;
	out->priv = v->type == GGUF_TYPE_ARRAY ? v : NULL;
}

int gguf_kv_value(const struct gguf_file *g, int64_t kid, struct gguf_value *out)
{
	if (kid < 0 || kid >= g->n_kv)
		return -ENOENT;
	node_to_value(&g->kv[kid].v, out);
	return 0;
}

int gguf_arr_elem(const struct gguf_file *g, const struct gguf_value *arr,
		  uint64_t i, struct gguf_value *out)
{
	const struct vnode *v = arr->priv;
	size_t esz;

	(void)g;
	if (arr->type != GGUF_TYPE_ARRAY || !v)
		return -EINVAL;
	if (i >= v->n)
		return -ERANGE;
	memset(out, 0, sizeof(*out));
	out->elem_type = GGUF_TYPE_COUNT;
	esz = gguf_type_size(v->elem_type);
	if (esz) {
		out->type = v->elem_type;
		out->p = v->p + i * esz;
		return 0;
	}
	if (v->elem_type == GGUF_TYPE_STRING) {
		out->type = GGUF_TYPE_STRING;
		out->n = ld64(v->elems[i]);
		out->p = v->elems[i] + 8;
		return 0;
	}
	node_to_value(&v->kids[i], out);
	return 0;
}

int64_t gguf_value_i64(const struct gguf_value *v)
{
	const uint8_t *p = v->p;
	switch (v->type) {
	case GGUF_TYPE_UINT8: return p[0];
	case GGUF_TYPE_INT8: return (int8_t)p[0];
	case GGUF_TYPE_BOOL: return p[0] != 0;
	case GGUF_TYPE_UINT16: return (uint16_t)(p[0] | p[1] << 8);
	case GGUF_TYPE_INT16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
	case GGUF_TYPE_UINT32: return ld32(p);
	case GGUF_TYPE_INT32: return (int32_t)ld32(p);
	case GGUF_TYPE_UINT64: return (int64_t)ld64(p);
	case GGUF_TYPE_INT64: return (int64_t)ld64(p);
	case GGUF_TYPE_FLOAT32:
	case GGUF_TYPE_FLOAT64: {
		double d = gguf_value_f64(v);
		if (!(d > -9.2e18 && d < 9.2e18))
			return d > 0 ? INT64_MAX : INT64_MIN;
		return (int64_t)d;
	}
	default: return 0;
	}
}

uint64_t gguf_value_u64(const struct gguf_value *v)
{
	if (v->type == GGUF_TYPE_UINT64)
		return ld64(v->p);
	return (uint64_t)gguf_value_i64(v);
}

double gguf_value_f64(const struct gguf_value *v)
{
	if (v->type == GGUF_TYPE_FLOAT32) {
		uint32_t u = ld32(v->p);
		float f;
		memcpy(&f, &u, 4);
		return f;
	}
	if (v->type == GGUF_TYPE_FLOAT64) {
		uint64_t u = ld64(v->p);
		double d;
		memcpy(&d, &u, 8);
		return d;
	}
	if (v->type == GGUF_TYPE_UINT64)
		return (double)ld64(v->p);
	return (double)gguf_value_i64(v);
}

static bool is_int(enum gguf_type t)
{
	return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 ||
	       t == GGUF_TYPE_INT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 ||
	       t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

static bool is_signed(enum gguf_type t)
{
	return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
	       t == GGUF_TYPE_INT64;
}

static int get_value(const struct gguf_file *g, const char *key, struct gguf_value *v)
{
	int64_t kid = gguf_find_key(g, key);
	if (kid < 0)
		return -ENOENT;
	return gguf_kv_value(g, kid, v);
}

/* Integer by key into [lo, hi] (signed view) or [0, uhi] (unsigned view). */
static int get_int(const struct gguf_file *g, const char *key, bool want_signed,
		   int64_t lo, int64_t hi, uint64_t uhi, int64_t *si, uint64_t *ui)
{
	struct gguf_value v;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (!is_int(v.type))
		return -EINVAL;
	if (is_signed(v.type)) {
		int64_t x = gguf_value_i64(&v);
		if (want_signed ? (x < lo || x > hi) : (x < 0 || (uint64_t)x > uhi))
			return -EINVAL;
		if (si)
			*si = x;
		if (ui)
			*ui = (uint64_t)x;
	} else {
		uint64_t x = gguf_value_u64(&v);
		if (want_signed ? x > (uint64_t)hi : x > uhi)
			return -EINVAL;
		if (si)
			*si = (int64_t)x;
		if (ui)
			*ui = x;
	}
	return 0;
}

int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out)
{
	uint64_t x;
	int rc = get_int(g, key, false, 0, 0, UINT32_MAX, NULL, &x);
	if (!rc)
		*out = (uint32_t)x;
	return rc;
}

int gguf_get_i32(const struct gguf_file *g, const char *key, int32_t *out)
{
	int64_t x;
	int rc = get_int(g, key, true, INT32_MIN, INT32_MAX, 0, &x, NULL);
	if (!rc)
		*out = (int32_t)x;
	return rc;
}

int gguf_get_u64(const struct gguf_file *g, const char *key, uint64_t *out)
{
	return get_int(g, key, false, 0, 0, UINT64_MAX, NULL, out);
}

int gguf_get_i64(const struct gguf_file *g, const char *key, int64_t *out)
{
	return get_int(g, key, true, INT64_MIN, INT64_MAX, 0, out, NULL);
}

int gguf_get_f32(const struct gguf_file *g, const char *key, float *out)
{
	struct gguf_value v;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (v.type != GGUF_TYPE_FLOAT32 && v.type != GGUF_TYPE_FLOAT64)
		return -EINVAL;
	*out = (float)gguf_value_f64(&v);
	return 0;
}

int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out)
{
	struct gguf_value v;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (v.type != GGUF_TYPE_BOOL)
		return -EINVAL;
	*out = v.p[0] != 0;
	return 0;
}

int gguf_get_str(const struct gguf_file *g, const char *key, const char **s, size_t *len)
{
	struct gguf_value v;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (v.type != GGUF_TYPE_STRING)
		return -EINVAL;
	*s = (const char *)v.p;
	*len = (size_t)v.n;
	return 0;
}

int gguf_get_arr(const struct gguf_file *g, const char *key,
		 enum gguf_type *elem_type, uint64_t *n, const void **data)
{
	struct gguf_value v;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (v.type != GGUF_TYPE_ARRAY)
		return -EINVAL;
	if (elem_type)
		*elem_type = v.elem_type;
	if (n)
		*n = v.n;
	if (data)
		*data = v.p;
	return 0;
}

int gguf_get_arr_str(const struct gguf_file *g, const char *key, uint64_t i,
		     const char **s, size_t *len)
{
	struct gguf_value v, e;
	int rc = get_value(g, key, &v);
	if (rc)
		return rc;
	if (v.type != GGUF_TYPE_ARRAY || v.elem_type != GGUF_TYPE_STRING)
		return -EINVAL;
	if ((rc = gguf_arr_elem(g, &v, i, &e)))
		return rc;
	*s = (const char *)e.p;
	*len = (size_t)e.n;
	return 0;
}

int64_t gguf_n_tensors(const struct gguf_file *g) { return g->n_tensors; }

const struct gguf_tensor *gguf_tensor(const struct gguf_file *g, int64_t i)
{
	if (i < 0 || i >= g->n_tensors)
		return NULL;
	return &g->tensors[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name)
{
	int64_t i = htab_find(&g->t_tab, g, t_name, name, strlen(name), NULL);
	return i < 0 ? NULL : &g->tensors[i];
}
