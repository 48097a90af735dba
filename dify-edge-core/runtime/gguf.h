/*
 * gguf.h: read GGUF v2/v3 model files through a read-only memory mapping,
 * and write them (gguf_writer_*).
 *
 * The reader validates the whole header, every metadata value (nested arrays
 * included) and every tensor info when the file is opened, so that nothing
 * after gguf_open() can read outside the mapping. Strings, arrays and tensor
 * data handed out point into the mapping (zero copy) and stay valid until
 * gguf_close(); they are NOT NUL-terminated unless said otherwise.
 * Multi-byte values in the mapping may be unaligned: read them through the
 * accessors, or memcpy.
 *
 * A gguf_file is immutable once open: any number of threads may read it.
 *
 * Errors: functions return 0 or a negative errno value; those that take
 * (err, errlen) write one line naming the file, the byte offset and the
 * problem, e.g. "model.gguf: offset 24: tensor count 2^62 overflows".
 */
#ifndef GGUF_H
#define GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Metadata value types, as numbered by the GGUF specification. */
enum gguf_type {
	GGUF_TYPE_UINT8 = 0,
	GGUF_TYPE_INT8 = 1,
	GGUF_TYPE_UINT16 = 2,
	GGUF_TYPE_INT16 = 3,
	GGUF_TYPE_UINT32 = 4,
	GGUF_TYPE_INT32 = 5,
	GGUF_TYPE_FLOAT32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_UINT64 = 10,
	GGUF_TYPE_INT64 = 11,
	GGUF_TYPE_FLOAT64 = 12,
	GGUF_TYPE_COUNT,
};

/* Tensor types, as numbered by ggml. The reader knows the block layout of
 * every type below (so it can bound-check any real file); compute supports
 * F32, F16, Q8_0 and Q4_0 (see kernels.h). */
enum ggml_type {
	GGML_TYPE_F32 = 0,
	GGML_TYPE_F16 = 1,
	GGML_TYPE_Q4_0 = 2,
	GGML_TYPE_Q4_1 = 3,
	GGML_TYPE_Q5_0 = 6,
	GGML_TYPE_Q5_1 = 7,
	GGML_TYPE_Q8_0 = 8,
	GGML_TYPE_Q8_1 = 9,
	GGML_TYPE_Q2_K = 10,
	GGML_TYPE_Q3_K = 11,
	GGML_TYPE_Q4_K = 12,
	GGML_TYPE_Q5_K = 13,
	GGML_TYPE_Q6_K = 14,
	GGML_TYPE_Q8_K = 15,
	GGML_TYPE_IQ2_XXS = 16,
	GGML_TYPE_IQ2_XS = 17,
	GGML_TYPE_IQ3_XXS = 18,
	GGML_TYPE_IQ1_S = 19,
	GGML_TYPE_IQ4_NL = 20,
	GGML_TYPE_IQ3_S = 21,
	GGML_TYPE_IQ2_S = 22,
	GGML_TYPE_IQ4_XS = 23,
	GGML_TYPE_I8 = 24,
	GGML_TYPE_I16 = 25,
	GGML_TYPE_I32 = 26,
	GGML_TYPE_I64 = 27,
	GGML_TYPE_F64 = 28,
	GGML_TYPE_IQ1_M = 29,
	GGML_TYPE_BF16 = 30,
	GGML_TYPE_TQ1_0 = 34,
	GGML_TYPE_TQ2_0 = 35,
	GGML_TYPE_COUNT = 39,
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 30)  /* general.alignment above this is refused */
#define GGUF_MAX_ARRAY_DEPTH 16        /* arrays of arrays nest at most this deep */

/* Type traits. Unknown types: name "unknown", block size 0, size 0. */
const char *ggml_type_name(enum ggml_type t);
int64_t ggml_blck_size(enum ggml_type t);     /* elements per block */
size_t ggml_type_size(enum ggml_type t);      /* bytes per block */
/* Bytes of one row of ne0 elements; 0 when ne0 is not a multiple of the block. */
size_t ggml_row_size(enum ggml_type t, int64_t ne0);
const char *gguf_type_name(enum gguf_type t);
/* Bytes of a fixed-width metadata type; 0 for STRING, ARRAY and unknown. */
size_t gguf_type_size(enum gguf_type t);
/* Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF):
 * returns N when BUF[0..N) is valid, else the index of the first bad byte. */
size_t gguf_utf8_check(const void *buf, size_t n);

struct gguf_file;

struct gguf_open_opts {
	bool mlock;     /* lock the mapping in memory (best effort, see gguf_open) */
	bool populate;  /* MAP_POPULATE: fault every page in at open */
	bool sequential;/* madvise(MADV_SEQUENTIAL) instead of MADV_WILLNEED */
};

/* Open and validate PATH. opts may be NULL. On success *out owns the mapping
 * and the fd is closed. On failure *out is NULL and err holds one line:
 * -ENOENT "no such file", -EISDIR "is a directory", -EINVAL for an empty or
 * malformed file ("<path>: offset <N>: <problem>"), -ENOMEM, or the errno of
 * open/mmap. madvise is a hint (its failure is ignored); mlock, when asked
 * for, must succeed: its failure is returned (-ENOMEM/-EPERM/-EAGAIN). */
int gguf_open(const char *path, const struct gguf_open_opts *opts,
	      struct gguf_file **out, char *err, size_t errlen);
/* Same over a caller-owned buffer (fuzzing, tests); NAME is used in errors.
 * The buffer must outlive the gguf_file. */
int gguf_open_mem(const void *buf, size_t size, const char *name,
		  struct gguf_file **out, char *err, size_t errlen);
void gguf_close(struct gguf_file *g); /* NULL is a no-op */

uint32_t gguf_version(const struct gguf_file *g);
const char *gguf_path(const struct gguf_file *g);
const void *gguf_base(const struct gguf_file *g);  /* start of the mapping */
size_t gguf_size(const struct gguf_file *g);        /* bytes mapped */
size_t gguf_alignment(const struct gguf_file *g);
size_t gguf_data_offset(const struct gguf_file *g); /* start of tensor data */

/* ---- metadata ---- */
int64_t gguf_n_kv(const struct gguf_file *g);
/* Index of KEY, or -1. Keys are unique (duplicates are refused at open). */
int64_t gguf_find_key(const struct gguf_file *g, const char *key);
const char *gguf_key(const struct gguf_file *g, int64_t kid); /* NUL-terminated */
enum gguf_type gguf_kv_type(const struct gguf_file *g, int64_t kid);

/* Scalars by key. 0 on success; -ENOENT when absent; -EINVAL when the stored
 * type cannot represent the result (integers convert when the value fits,
 * floats read FLOAT32 or FLOAT64). */
int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out);
int gguf_get_i32(const struct gguf_file *g, const char *key, int32_t *out);
int gguf_get_u64(const struct gguf_file *g, const char *key, uint64_t *out);
int gguf_get_i64(const struct gguf_file *g, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf_file *g, const char *key, float *out);
int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out);
/* A string (valid UTF-8, not NUL-terminated) by key. */
int gguf_get_str(const struct gguf_file *g, const char *key,
		 const char **s, size_t *len);

/* A generic view of any value, for walking nested arrays (gguf info).
 * Scalars: p is the value's bytes, n = 0. STRING: p the bytes, n their count.
 * ARRAY: p the first element's encoding, n the element count. elem_type is
 * GGUF_TYPE_COUNT for anything but an ARRAY. Views stay valid until
 * gguf_close(). gguf_arr_elem returns -EINVAL for a non-array, -ERANGE for
 * I >= n. */
struct gguf_value {
	enum gguf_type type;
	enum gguf_type elem_type; /* ARRAY only */
	uint64_t n;               /* ARRAY: elements; STRING: bytes */
	const uint8_t *p;         /* encoded value in the mapping */
	const void *priv;         /* reader's index, do not touch */
};
int gguf_kv_value(const struct gguf_file *g, int64_t kid, struct gguf_value *out);
/* Element I of an ARRAY value (any element type, arrays of arrays too). */
int gguf_arr_elem(const struct gguf_file *g, const struct gguf_value *arr,
		  uint64_t i, struct gguf_value *out);
/* Scalar reads of a value (integers of any width widen; bools are 0/1). */
int64_t gguf_value_i64(const struct gguf_value *v);
uint64_t gguf_value_u64(const struct gguf_value *v);
double gguf_value_f64(const struct gguf_value *v);

/* Arrays by key. For fixed-width element types, *data points at n packed
 * little-endian elements in the mapping (possibly unaligned); for STRING and
 * ARRAY elements it points at the first element's encoding (use
 * gguf_arr_elem / gguf_get_arr_str to reach element I). */
int gguf_get_arr(const struct gguf_file *g, const char *key,
		 enum gguf_type *elem_type, uint64_t *n, const void **data);
/* String I of a string array (O(1) after open). */
int gguf_get_arr_str(const struct gguf_file *g, const char *key, uint64_t i,
		     const char **s, size_t *len);

/* ---- tensors ---- */
struct gguf_tensor {
	const char *name;           /* NUL-terminated, owned by the gguf_file */
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS];  /* elements per dim, ne[0] contiguous; unused dims 1 */
	enum ggml_type type;
	uint64_t offset;            /* from gguf_data_offset() */
	size_t nbytes;
	const void *data;           /* read-only, in the mapping, aligned */
};
int64_t gguf_n_tensors(const struct gguf_file *g);
const struct gguf_tensor *gguf_tensor(const struct gguf_file *g, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name);

/* ---- writer ----
 * Collects metadata and tensors, then writes a GGUF v3 file in one pass.
 * Tensor data passed to gguf_writer_add_tensor() is borrowed (not copied)
 * until gguf_writer_write() returns. Keys must be unique (-EEXIST). */
struct gguf_writer;
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t align);
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Array of fixed-width elements (n packed values of elem_type). */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key,
			enum gguf_type elem_type, const void *data, size_t n);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
			    const char *const *strs, size_t n);
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name,
			   enum ggml_type type, uint32_t n_dims,
			   const int64_t *ne, const void *data);
int gguf_writer_write(struct gguf_writer *w, const char *path,
		      char *err, size_t errlen);

/* Extensions (tests, tools). */
int gguf_writer_set_version(struct gguf_writer *w, uint32_t version); /* 2 or 3 */
int gguf_writer_set_i64(struct gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v);
/* A value of TYPE given by its encoding (LEN bytes, exactly as it appears in
 * a file after the type field): nested arrays, or deliberately malformed
 * values for tests. Not validated. */
int gguf_writer_set_raw(struct gguf_writer *w, const char *key, enum gguf_type type,
			const void *enc, size_t len);
/* Write the file into a malloc'd buffer (*buf, *size; caller frees). */
int gguf_writer_write_mem(struct gguf_writer *w, void **buf, size_t *size,
			  char *err, size_t errlen);

#endif /* GGUF_H */
