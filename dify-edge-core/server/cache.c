/*
 * cache.c: LRU + TTL cache.
 *
 * DESIGN
 * A chained hash table (power-of-two buckets, 2 per entry of capacity) finds
 * entries by a 64-bit FNV-1a hash plus a full key compare; a doubly linked
 * list orders them from most (head) to least (tail) recently used. One mutex
 * guards both; every operation is O(1) expected. Each entry is one
 * allocation holding key and value.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dify-edge-core/server/cache.h"

struct cache_entry {
	struct cache_entry *hnext;        /* hash chain */
	struct cache_entry *prev, *next;  /* LRU list */
	uint64_t hash;
	int64_t born;                     /* ns */
	size_t klen, vlen;
	char data[];                      /* key bytes, then value bytes + NUL */
};

struct cache {
	pthread_mutex_t mu;
	size_t capacity, n, nbuckets;
	int64_t ttl;
	cache_clock_fn clock;
	void *clock_arg;
	struct cache_entry **buckets;
	struct cache_entry *head, *tail;
	struct cache_stats st;
};

static int64_t cache_mono(void *arg)
{
	struct timespec ts;
	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t cache_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

struct cache *cache_new(size_t capacity, int64_t ttl_ns, cache_clock_fn clock, void *clock_arg)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	c->capacity = capacity;
	c->ttl = ttl_ns;
	c->clock = clock ? clock : cache_mono;
	c->clock_arg = clock_arg;
	c->nbuckets = 16;
	while (c->nbuckets < capacity * 2)
		c->nbuckets <<= 1;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	return c;
}

static void lru_unlink(struct cache *c, struct cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct cache *c, struct cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

/* Remove e from the table and the list and free it. */
static void cache_drop(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	lru_unlink(c, e);
	c->n--;
	free(e);
}

static struct cache_entry *cache_find(struct cache *c, uint64_t h, const void *key, size_t klen)
{
	struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)];
	for (; e; e = e->hnext)
		if (e->hash == h && e->klen == klen && !memcmp(e->data, key, klen))
			return e;
	return NULL;
}

void cache_clear(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	while (c->head)
		cache_drop(c, c->head);
	c->st.clears++;
	pthread_mutex_unlock(&c->mu);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	while (c->head)
		cache_drop(c, c->head);
	free(c->buckets);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int cache_get(struct cache *c, const void *key, size_t klen, char **val, size_t *len)
{
	int ret = 0;
	uint64_t h = cache_hash(key, klen);
	struct cache_entry *e;

	*val = NULL;
	*len = 0;
	pthread_mutex_lock(&c->mu);
	e = c->capacity ? cache_find(c, h, key, klen) : NULL;
	if (e && c->clock(c->clock_arg) - e->born >= c->ttl) {
		cache_drop(c, e);
		c->st.expired++;
		e = NULL;
	}
	if (!e) {
		c->st.misses++;
		goto out;
	}
	*val = malloc(e->vlen + 1);
	if (!*val) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(*val, e->data + e->klen, e->vlen + 1);
	*len = e->vlen;
	lru_unlink(c, e);
	lru_push_front(c, e);
	c->st.hits++;
	ret = 1;
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

int cache_put(struct cache *c, const void *key, size_t klen, const void *val, size_t len)
{
	int ret = 0;
	uint64_t h = cache_hash(key, klen);
	struct cache_entry *e, *old;

	if (!c->capacity)
		return 0;
	e = malloc(sizeof(*e) + klen + len + 1);
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->klen = klen;
	e->vlen = len;
	memcpy(e->data, key, klen);
	memcpy(e->data + klen, val, len);
	e->data[klen + len] = 0;
	e->prev = e->next = e->hnext = NULL;

	pthread_mutex_lock(&c->mu);
	e->born = c->clock(c->clock_arg);
	old = cache_find(c, h, key, klen);
	if (old)
		cache_drop(c, old);
	while (c->n >= c->capacity && c->tail) {
		cache_drop(c, c->tail);
		c->st.evictions++;
	}
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	lru_push_front(c, e);
	c->n++;
	pthread_mutex_unlock(&c->mu);
	return ret;
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	out->entries = c->n;
	out->capacity = c->capacity;
	pthread_mutex_unlock(&c->mu);
}
