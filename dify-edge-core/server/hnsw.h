/*
 * hnsw.h: an in-memory approximate nearest-neighbour index for cosine
 * similarity: Hierarchical Navigable Small World graphs (Malkov & Yashunin,
 * 2016/2018).
 *
 * Vectors are copied and L2-normalized on insert, so the distance is
 * 1 - dot(a, b) and the reported score is the cosine similarity. Each vector
 * carries a caller's 64-bit label (the KB uses the chunk id). Deletion marks a
 * node deleted: it still routes searches but never appears in results (the KB
 * rebuilds the index from SQLite at start, which drops the tombstones).
 *
 * Parameters: M (links per node on upper layers; 2*M on layer 0),
 * ef_construction (candidate list while inserting), ef_search (candidate list
 * while searching, >= k). Searches may run concurrently with each other;
 * inserts and deletes take the index exclusively (a reader-writer lock).
 */
#ifndef SERVER_HNSW_H
#define SERVER_HNSW_H

#include <stddef.h>
#include <stdint.h>

struct hnsw;

struct hnsw_params {
	int M;               /* default 16 */
	int ef_construction; /* default 128 */
	int ef_search;       /* default 64 */
	uint64_t seed;       /* level generator; default 42 */
};
void hnsw_params_default(struct hnsw_params *p);

struct hnsw_hit {
	int64_t label;
	float score; /* cosine similarity, 1 = same direction */
};

/* NULL on bad parameters (dim < 1, M < 2, ef < 1) or out of memory. */
struct hnsw *hnsw_new(int dim, const struct hnsw_params *p);
void hnsw_free(struct hnsw *h); /* NULL is a no-op */

int hnsw_dim(const struct hnsw *h);
/* Live (not deleted) vectors. */
size_t hnsw_count(struct hnsw *h);
/* Bytes held by vectors and links (for /metrics and stats). */
size_t hnsw_mem_bytes(struct hnsw *h);

/* Insert v[dim] under label. -EEXIST when the label is live, -EINVAL for a
 * zero or non-finite vector, -ENOMEM. */
int hnsw_add(struct hnsw *h, int64_t label, const float *v);
/* Mark label deleted; -ENOENT when absent. */
int hnsw_delete(struct hnsw *h, int64_t label);

/* The k nearest live vectors to q, best first, into out[k]; returns how many
 * (<= k). ef <= 0 uses the index's ef_search; the search uses max(ef, k). */
int hnsw_search(struct hnsw *h, const float *q, int k, int ef, struct hnsw_hit *out);

/* Exact top-k by scanning every live vector (tests, benchmarks, tiny sets). */
int hnsw_brute_force(struct hnsw *h, const float *q, int k, struct hnsw_hit *out);

/* Cosine similarity of two vectors (exposed for tests). */
float hnsw_cosine(const float *a, const float *b, int dim);

/* Internal: the AVX2+FMA dot product (hnsw_avx2.c, x86-64 only); hnsw.c
 * calls it only when the CPU has both. */
float hnsw_dot_avx2(const float *a, const float *b, int dim);

#endif
