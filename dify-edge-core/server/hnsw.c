/*
 * hnsw.c: Hierarchical Navigable Small World index.
 *
 * DESIGN
 * Node i has a level drawn as floor(-ln(U) / ln(M)). Its layer-0 links live
 * in one flat array (links0: 1 + 2M int32 per node, a count then ids) and its
 * upper-layer links in a per-node array (level blocks of 1 + M). Insertion
 * descends greedily from the entry point to the node's level, then on each
 * layer below runs a beam search (ef_construction), picks neighbours with the
 * "heuristic" of the paper (algorithm 4: keep a candidate only if it is closer
 * to the new node than to every neighbour already kept), links both ways,
 * and shrinks an overfull neighbour list with the same heuristic. Search is
 * the same descent followed by a beam search of width max(ef, k) on layer 0.
 *
 * Distances are 1 - dot on normalized vectors. The dot product is
 * hnsw_dot_avx2 (hnsw_avx2.c: four 8-float FMA accumulators) when the CPU
 * has AVX2 and FMA, chosen once by hnsw_new with __builtin_cpu_supports, else
 * a portable loop on GCC/Clang vector extensions (SSE on baseline x86-64,
 * NEON on arm64). The beam search gathers a node's unvisited neighbours
 * first and prefetches each one's vector while the previous distance is
 * computed: past a few tens of thousands of 384-d vectors they live in DRAM.
 *
 * This follows hnswlib (hnswalg.h) step for step -- mult 1/ln(M), maxM0 =
 * 2M, greedy ef=1 descent, searchBaseLayer's stopping rule,
 * getNeighborsByHeuristic2 (keep all when there are at most M candidates),
 * mutuallyConnectNewElement's re-pruning of full lists -- and measures the
 * same recall as hnswlib on the same data (docs/benchmarks-server.md).
 *
 * Each search allocates its own visited bitmap (n/8 bytes), so searches run
 * concurrently under the read lock.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/server/hnsw.h"

#define HNSW_MAX_LEVEL 16
#define HNSW_MAX_M 256
#define HNSW_MAX_M0 (2 * HNSW_MAX_M)
#define HNSW_PREFETCH_BYTES 512

typedef float hnsw_v8 __attribute__((vector_size(32)));
typedef float (*hnsw_dot_fn)(const float *a, const float *b, int dim);

struct hnsw {
	pthread_rwlock_t lock;
	int dim, M, M0, efc, efs;
	hnsw_dot_fn dot;    /* AVX2+FMA or portable, picked by hnsw_new */
	double mL;
	uint64_t rng;
	size_t n, cap, n_deleted;
	float *vecs;        /* cap * dim */
	int64_t *labels;    /* cap */
	uint8_t *deleted;   /* cap */
	uint8_t *levels;    /* cap */
	int32_t *links0;    /* cap * (1 + M0) */
	int32_t **linksu;   /* cap: levels[i] * (1 + M), NULL when level 0 */
	int32_t entry;      /* -1 when empty */
	int maxlevel;
	/* label -> node, open addressing; slots hold node + 1 (0 empty) */
	int32_t *map;
	size_t map_cap;
	uint8_t *visited;   /* insert-time bitmap (under the write lock) */
	size_t visited_cap;
};

struct hnsw_cand {
	float d;
	int32_t id;
};

/* A binary heap of candidates: max-heap when max is set, else min-heap. */
struct hnsw_heap {
	struct hnsw_cand *a;
	size_t n, cap;
	bool max;
};

static bool heap_before(const struct hnsw_heap *h, struct hnsw_cand x, struct hnsw_cand y)
{
	return h->max ? x.d > y.d : x.d < y.d;
}

static int heap_push(struct hnsw_heap *h, float d, int32_t id)
{
	size_t i;
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		struct hnsw_cand *na = realloc(h->a, nc * sizeof(*na));
		if (!na)
			return -ENOMEM;
		h->a = na;
		h->cap = nc;
	}
	i = h->n++;
	h->a[i] = (struct hnsw_cand){ .d = d, .id = id };
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_before(h, h->a[i], h->a[p]))
			break;
		struct hnsw_cand t = h->a[p];
		h->a[p] = h->a[i];
		h->a[i] = t;
		i = p;
	}
	return 0;
}

static struct hnsw_cand heap_pop(struct hnsw_heap *h)
{
	struct hnsw_cand top = h->a[0];
	size_t i = 0;
	h->a[0] = h->a[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && heap_before(h, h->a[l], h->a[m]))
			m = l;
		if (r < h->n && heap_before(h, h->a[r], h->a[m]))
			m = r;
		if (m == i)
			break;
		struct hnsw_cand t = h->a[m];
		h->a[m] = h->a[i];
		h->a[i] = t;
		i = m;
	}
	return top;
}

/* The portable dot product: GCC/Clang vector extensions, 16 floats per step
 * in two accumulators (SSE on baseline x86-64, NEON on arm64). */
static float dot_portable(const float *a, const float *b, int dim)
{
	hnsw_v8 acc0 = { 0 }, acc1 = { 0 };
	int i = 0;
	float s = 0;
	for (; i + 16 <= dim; i += 16) {
		hnsw_v8 x0, y0, x1, y1;
		memcpy(&x0, a + i, sizeof(x0));
		memcpy(&y0, b + i, sizeof(y0));
		memcpy(&x1, a + i + 8, sizeof(x1));
		memcpy(&y1, b + i + 8, sizeof(y1));
		acc0 += x0 * y0;
		acc1 += x1 * y1;
	}
	acc0 += acc1;
	for (int j = 0; j < 8; j++)
		s += acc0[j];
	for (; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

static hnsw_dot_fn pick_dot(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return hnsw_dot_avx2;
#endif
	return dot_portable;
}

float hnsw_cosine(const float *a, const float *b, int dim)
{
	double na = 0, nb = 0, ab = 0;
	for (int i = 0; i < dim; i++) {
		na += (double)a[i] * a[i];
		nb += (double)b[i] * b[i];
		ab += (double)a[i] * b[i];
	}
	if (na == 0 || nb == 0)
		return 0;
	return (float)(ab / sqrt(na * nb));
}

void hnsw_params_default(struct hnsw_params *p)
{
	p->M = 16;
	p->ef_construction = 128;
	p->ef_search = 64;
	p->seed = 42;
}

struct hnsw *hnsw_new(int dim, const struct hnsw_params *p)
{
	struct hnsw_params def;
	struct hnsw *h;

	if (!p) {
		hnsw_params_default(&def);
		p = &def;
	}
	if (dim < 1 || p->M < 2 || p->M > HNSW_MAX_M || p->ef_construction < 1 || p->ef_search < 1)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	pthread_rwlock_init(&h->lock, NULL);
	h->dim = dim;
	h->M = p->M;
	h->M0 = 2 * p->M;
	h->efc = p->ef_construction;
	h->efs = p->ef_search;
	h->mL = 1.0 / log((double)p->M);
	h->dot = pick_dot();
	h->rng = p->seed ? p->seed : 42;
	h->entry = -1;
	return h;
}

void hnsw_free(struct hnsw *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->linksu[i]);
	free(h->vecs);
	free(h->labels);
	free(h->deleted);
	free(h->levels);
	free(h->links0);
	free(h->linksu);
	free(h->map);
	free(h->visited);
	pthread_rwlock_destroy(&h->lock);
	free(h);
}

int hnsw_dim(const struct hnsw *h)
{
	return h->dim;
}

size_t hnsw_count(struct hnsw *h)
{
	size_t n;
	pthread_rwlock_rdlock(&h->lock);
	n = h->n - h->n_deleted;
	pthread_rwlock_unlock(&h->lock);
	return n;
}

size_t hnsw_mem_bytes(struct hnsw *h)
{
	size_t b;
	pthread_rwlock_rdlock(&h->lock);
	b = h->cap * ((size_t)h->dim * sizeof(float) + sizeof(int64_t) + 2 +
		      (size_t)(1 + h->M0) * sizeof(int32_t) + sizeof(int32_t *));
	for (size_t i = 0; i < h->n; i++)
		b += (size_t)h->levels[i] * (size_t)(1 + h->M) * sizeof(int32_t);
	b += h->map_cap * sizeof(int32_t);
	pthread_rwlock_unlock(&h->lock);
	return b;
}

/* ---- label map ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Slot of label (holding it, or the empty slot where it would go). */
static size_t map_slot(const struct hnsw *h, int64_t label)
{
	size_t mask = h->map_cap - 1, i = mix64((uint64_t)label) & mask;
	while (h->map[i] && h->labels[h->map[i] - 1] != label)
		i = (i + 1) & mask;
	return i;
}

static int map_grow(struct hnsw *h)
{
	size_t nc = h->map_cap ? h->map_cap * 2 : 1024;
	int32_t *old = h->map;
	size_t oc = h->map_cap;
	h->map = calloc(nc, sizeof(*h->map));
	if (!h->map) {
		h->map = old;
		return -ENOMEM;
	}
	h->map_cap = nc;
	for (size_t i = 0; i < oc; i++)
		if (old[i])
			h->map[map_slot(h, h->labels[old[i] - 1])] = old[i];
	free(old);
	return 0;
}

/* ---- graph ---- */

static inline const float *vec(const struct hnsw *h, int32_t i)
{
	return h->vecs + (size_t)i * (size_t)h->dim;
}

static inline int32_t *links(const struct hnsw *h, int32_t i, int level)
{
	if (level == 0)
		return h->links0 + (size_t)i * (size_t)(1 + h->M0);
	return h->linksu[i] + (size_t)(level - 1) * (size_t)(1 + h->M);
}

static inline float dist(const struct hnsw *h, const float *q, int32_t i)
{
	return 1.0f - h->dot(q, vec(h, i), h->dim);
}

static int grow(struct hnsw *h)
{
	size_t nc = h->cap ? h->cap * 2 : 256;
	void *p;
#define GROW(field, per)                                                    \
	do {                                                                \
		p = realloc(h->field, nc * (per) * sizeof(*h->field));      \
		if (!p)                                                     \
			return -ENOMEM;                                     \
		h->field = p;                                               \
	} while (0)
	GROW(vecs, (size_t)h->dim);
	GROW(labels, 1);
	GROW(deleted, 1);
	GROW(levels, 1);
	GROW(links0, (size_t)(1 + h->M0));
	GROW(linksu, 1);
#undef GROW
	h->cap = nc;
	return 0;
}

/* Prefetch the first lines of node i's vector (the hardware prefetcher
 * follows the rest of a sequential read). */
static inline void prefetch_vec(const struct hnsw *h, int32_t i)
{
	const char *p = (const char *)vec(h, i);
	size_t bytes = (size_t)h->dim * sizeof(float);
	if (bytes > HNSW_PREFETCH_BYTES)
		bytes = HNSW_PREFETCH_BYTES;
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch(p + o, 0, 3);
}

static int32_t greedy(const struct hnsw *h, const float *q, int32_t cur, int top, int bottom)
{
	float cd = dist(h, q, cur);
	for (int l = top; l >= bottom; l--) {
		bool changed = true;
		while (changed) {
			changed = false;
			const int32_t *ln = links(h, cur, l);
			for (int32_t j = 0; j < ln[0]; j++) {
				float d = dist(h, q, ln[1 + j]);
				if (d < cd) {
					cd = d;
					cur = ln[1 + j];
					changed = true;
				}
			}
		}
	}
	return cur;
}

/* Beam search on one layer; leaves the best ef in res (a max-heap). */
static int search_layer(const struct hnsw *h, const float *q, int32_t ep, int ef, int level,
			uint8_t *visited, struct hnsw_heap *res)
{
	struct hnsw_heap cand = { .max = false };
	int err = 0;
	float d = dist(h, q, ep);

	res->n = 0;
	res->max = true;
	visited[ep >> 3] |= (uint8_t)(1u << (ep & 7));
	if ((err = heap_push(&cand, d, ep)) || (err = heap_push(res, d, ep)))
		goto out;
	while (cand.n) {
		struct hnsw_cand c = heap_pop(&cand);
		if (c.d > res->a[0].d && res->n >= (size_t)ef)
			break;
		const int32_t *ln = links(h, c.id, level);
		int32_t todo[1 + HNSW_MAX_M0];
		int nt = 0;
		/* Unvisited neighbours first, then their distances with the
		 * next vector prefetched: at 100k x 384 the vectors (150 MB)
		 * live in DRAM and a miss per neighbour dominates. */
		for (int32_t j = 0; j < ln[0]; j++) {
			int32_t nb = ln[1 + j];
			if (visited[nb >> 3] & (1u << (nb & 7)))
				continue;
			visited[nb >> 3] |= (uint8_t)(1u << (nb & 7));
			todo[nt++] = nb;
		}
		if (nt)
			prefetch_vec(h, todo[0]);
		for (int j = 0; j < nt; j++) {
			int32_t nb = todo[j];
			if (j + 1 < nt)
				prefetch_vec(h, todo[j + 1]);
			float dn = dist(h, q, nb);
			if (res->n < (size_t)ef || dn < res->a[0].d) {
				if ((err = heap_push(&cand, dn, nb)) || (err = heap_push(res, dn, nb)))
					goto out;
				if (res->n > (size_t)ef)
					heap_pop(res);
			}
		}
	}
out:
	free(cand.a);
	return err;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct hnsw_cand *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Heuristic neighbour selection: c[0..n) (any order) -> at most m kept, in
 * place, closest first; returns how many. */
static int select_neighbors(const struct hnsw *h, struct hnsw_cand *c, int n, int m)
{
	int kept = 0;
	qsort(c, (size_t)n, sizeof(*c), cand_cmp);
	if (n <= m) /* as hnswlib: nothing to choose between, keep all */
		return n;
	for (int i = 0; i < n && kept < m; i++) {
		bool good = true;
		for (int j = 0; j < kept; j++) {
			if (1.0f - h->dot(vec(h, c[i].id), vec(h, c[j].id), h->dim) < c[i].d) {
				good = false;
				break;
			}
		}
		if (good)
			c[kept++] = c[i];
	}
	return kept;
}

static int level_draw(struct hnsw *h)
{
	/* xorshift64*, uniform in (0, 1] */
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	double u = (double)((h->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
	int l = (int)(-log(1.0 - u) * h->mL);
	return l > HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : l;
}

/* Link node to its neighbour nb at level; shrink nb's list if full. */
static int link_back(struct hnsw *h, int32_t nb, int32_t node, int level)
{
	int32_t *ln = links(h, nb, level);
	int mmax = level ? h->M : h->M0;
	struct hnsw_cand *c;
	int n;

	for (int32_t j = 0; j < ln[0]; j++)
		if (ln[1 + j] == node)
			return 0;
	if (ln[0] < mmax) {
		ln[1 + ln[0]++] = node;
		return 0;
	}
	c = malloc((size_t)(mmax + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (int j = 0; j < mmax; j++)
		c[j] = (struct hnsw_cand){ .d = 1.0f - h->dot(vec(h, nb), vec(h, ln[1 + j]), h->dim), .id = ln[1 + j] };
	c[mmax] = (struct hnsw_cand){ .d = 1.0f - h->dot(vec(h, nb), vec(h, node), h->dim), .id = node };
	n = select_neighbors(h, c, mmax + 1, mmax);
	ln[0] = n;
	for (int j = 0; j < n; j++)
		ln[1 + j] = c[j].id;
	free(c);
	return 0;
}

int hnsw_add(struct hnsw *h, int64_t label, const float *v)
{
	int err = 0, level;
	int32_t id, cur;
	double norm = 0;
	struct hnsw_heap res = { .max = true };
	struct hnsw_cand *c = NULL;
	size_t slot;

	for (int i = 0; i < h->dim; i++)
		norm += (double)v[i] * v[i];
	if (!(norm > 0) || !isfinite(norm))
		return -EINVAL;
	norm = sqrt(norm);

	pthread_rwlock_wrlock(&h->lock);
	if ((h->n + 1) * 2 > h->map_cap && (err = map_grow(h)))
		goto out;
	slot = map_slot(h, label);
	if (h->map[slot]) {
		int32_t old = h->map[slot] - 1;
		if (!h->deleted[old]) {
			err = -EEXIST;
			goto out;
		}
	}
	if (h->n == h->cap && (err = grow(h)))
		goto out;
	if (h->visited_cap < (h->cap + 7) / 8) {
		free(h->visited);
		h->visited_cap = (h->cap + 7) / 8;
		h->visited = malloc(h->visited_cap);
		if (!h->visited) {
			h->visited_cap = 0;
			err = -ENOMEM;
			goto out;
		}
	}
	id = (int32_t)h->n;
	level = level_draw(h);
	for (int i = 0; i < h->dim; i++)
		h->vecs[(size_t)id * (size_t)h->dim + (size_t)i] = (float)(v[i] / norm);
	h->labels[id] = label;
	h->deleted[id] = 0;
	h->levels[id] = (uint8_t)level;
	links(h, id, 0)[0] = 0;
	h->linksu[id] = NULL;
	if (level) {
		h->linksu[id] = calloc((size_t)level * (size_t)(1 + h->M), sizeof(int32_t));
		if (!h->linksu[id]) {
			err = -ENOMEM;
			goto out;
		}
	}
	h->n++;
	h->map[slot] = id + 1; /* a deleted node of the same label is superseded */

	if (h->entry < 0) {
		h->entry = id;
		h->maxlevel = level;
		goto out;
	}
	c = malloc((size_t)(h->efc > h->M0 ? h->efc : h->M0) * sizeof(*c) + sizeof(*c));
	if (!c) {
		err = -ENOMEM;
		goto out;
	}
	cur = h->entry;
	if (h->maxlevel > level)
		cur = greedy(h, vec(h, id), cur, h->maxlevel, level + 1);
	for (int l = level < h->maxlevel ? level : h->maxlevel; l >= 0; l--) {
		int n;
		memset(h->visited, 0, (h->n + 7) / 8);
		if ((err = search_layer(h, vec(h, id), cur, h->efc, l, h->visited, &res)))
			goto out;
		n = (int)res.n;
		memcpy(c, res.a, (size_t)n * sizeof(*c));
		n = select_neighbors(h, c, n, h->M);
		int32_t *ln = links(h, id, l);
		ln[0] = n;
		for (int j = 0; j < n; j++)
			ln[1 + j] = c[j].id;
		for (int j = 0; j < n; j++)
			if ((err = link_back(h, c[j].id, id, l)))
				goto out;
		cur = c[0].id;
	}
	if (level > h->maxlevel) {
		h->maxlevel = level;
		h->entry = id;
	}
out:
	pthread_rwlock_unlock(&h->lock);
	free(res.a);
	free(c);
	return err;
}

int hnsw_delete(struct hnsw *h, int64_t label)
{
	int err = -ENOENT;
	pthread_rwlock_wrlock(&h->lock);
	if (h->map_cap) {
		size_t slot = map_slot(h, label);
		if (h->map[slot] && !h->deleted[h->map[slot] - 1]) {
			h->deleted[h->map[slot] - 1] = 1;
			h->n_deleted++;
			err = 0;
		}
	}
	pthread_rwlock_unlock(&h->lock);
	return err;
}

static int hit_cmp(const void *a, const void *b)
{
	const struct hnsw_hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->label < y->label ? -1 : x->label > y->label;
}

int hnsw_search(struct hnsw *h, const float *q, int k, int ef, struct hnsw_hit *out)
{
	struct hnsw_heap res = { .max = true };
	uint8_t *visited = NULL;
	float *qn = NULL;
	double norm = 0;
	int n = 0;

	if (k <= 0)
		return 0;
	if (ef <= 0)
		ef = h->efs;
	if (ef < k)
		ef = k;
	qn = malloc((size_t)h->dim * sizeof(float));
	if (!qn)
		return -ENOMEM;
	for (int i = 0; i < h->dim; i++)
		norm += (double)q[i] * q[i];
	norm = norm > 0 ? sqrt(norm) : 1;
	for (int i = 0; i < h->dim; i++)
		qn[i] = (float)(q[i] / norm);

	pthread_rwlock_rdlock(&h->lock);
	if (h->entry < 0)
		goto unlock;
	visited = calloc((h->n + 7) / 8 + 1, 1);
	if (!visited) {
		n = -ENOMEM;
		goto unlock;
	}
	int32_t cur = greedy(h, qn, h->entry, h->maxlevel, 1);
	/* With tombstones, widen the beam so k live results survive. */
	int ef2 = ef + (h->n_deleted ? (int)(h->n_deleted < 4096 ? h->n_deleted : 4096) : 0);
	if ((n = search_layer(h, qn, cur, ef2, 0, visited, &res)))
		goto unlock;
	for (size_t i = 0; i < res.n; i++) {
		int32_t id = res.a[i].id;
		if (h->deleted[id])
			continue;
		res.a[n++] = res.a[i];
	}
	qsort(res.a, (size_t)n, sizeof(*res.a), cand_cmp);
	if (n > k)
		n = k;
	for (int i = 0; i < n; i++) {
		out[i].label = h->labels[res.a[i].id];
		out[i].score = 1.0f - res.a[i].d;
	}
unlock:
	pthread_rwlock_unlock(&h->lock);
	free(visited);
	free(res.a);
	free(qn);
	return n;
}

int hnsw_brute_force(struct hnsw *h, const float *q, int k, struct hnsw_hit *out)
{
	struct hnsw_heap res = { .max = true }; /* by distance: worst on top */
	float *qn;
	double norm = 0;
	int n = 0;

	if (k <= 0)
		return 0;
	qn = malloc((size_t)h->dim * sizeof(float));
	if (!qn)
		return -ENOMEM;
	for (int i = 0; i < h->dim; i++)
		norm += (double)q[i] * q[i];
	norm = norm > 0 ? sqrt(norm) : 1;
	for (int i = 0; i < h->dim; i++)
		qn[i] = (float)(q[i] / norm);
	pthread_rwlock_rdlock(&h->lock);
	for (size_t i = 0; i < h->n; i++) {
		if (h->deleted[i])
			continue;
		float d = dist(h, qn, (int32_t)i);
		if (res.n < (size_t)k || d < res.a[0].d) {
			if (heap_push(&res, d, (int32_t)i)) {
				n = -ENOMEM;
				goto unlock;
			}
			if (res.n > (size_t)k)
				heap_pop(&res);
		}
	}
	n = (int)res.n;
	for (int i = 0; i < n; i++) {
		out[i].label = h->labels[res.a[i].id];
		out[i].score = 1.0f - res.a[i].d;
	}
	qsort(out, (size_t)n, sizeof(*out), hit_cmp);
unlock:
	pthread_rwlock_unlock(&h->lock);
	free(res.a);
	free(qn);
	return n;
}
