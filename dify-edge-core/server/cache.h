/*
 * cache.h: a response cache: LRU with a time to live, for embeddings and
 * knowledge-base queries (requests whose answer is a pure function of the
 * request body, the model and the KB contents).
 *
 * Keys and values are byte strings; the cache copies both. An entry older
 * than the TTL is a miss (and is dropped); when the cache holds `capacity`
 * entries, putting a new one evicts the least recently used. The caller makes
 * the key include everything the answer depends on (route, body, model id);
 * cache_clear() invalidates everything (the KB or the model changed).
 * The clock is injectable so that tests can move time.
 */
#ifndef SERVER_CACHE_H
#define SERVER_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;
typedef int64_t (*cache_clock_fn)(void *arg); /* nanoseconds, monotonic */

/* capacity 0: the cache is disabled (every get misses, put does nothing).
 * clock NULL: CLOCK_MONOTONIC. */
struct cache *cache_new(size_t capacity, int64_t ttl_ns, cache_clock_fn clock, void *clock_arg);
void cache_free(struct cache *c); /* NULL is a no-op */

/* On a hit: *val is a malloc'd copy (NUL-terminated, caller frees), *len
 * its length, returns 1. A miss returns 0. -ENOMEM on allocation failure. */
int cache_get(struct cache *c, const void *key, size_t klen, char **val, size_t *len);
int cache_put(struct cache *c, const void *key, size_t klen, const void *val, size_t len);
void cache_clear(struct cache *c);

struct cache_stats {
	uint64_t hits, misses, evictions, expired, clears;
	size_t entries, capacity;
};
void cache_stats(struct cache *c, struct cache_stats *out);

#endif
