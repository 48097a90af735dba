/*
 * ratelimit.c: GCRA rate limiting with redis-cell's CL.THROTTLE semantics.
 *
 * The arithmetic follows redis-cell's RateLimiter::rate_limit step for step
 * (including its quirks: a request larger than the burst is refused without
 * a retry-after, and "remaining" is computed from the TTL the key would have
 * after the call). The table is a chained hash keyed by the client key,
 * guarded by one mutex: a throttle call is a hash lookup and a few integer
 * operations, far below the cost of the HTTP request it guards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/server/ratelimit.h"

#define RL_BUCKETS 4096
#define NS_PER_S 1000000000LL

struct rl_entry {
	struct rl_entry *next;
	int64_t tat;    /* theoretical arrival time, ns */
	int64_t expire; /* ns: entry means nothing after this */
	char key[];
};

struct rl {
	pthread_mutex_t mu;
	int64_t emission_ns; /* T */
	int64_t dvt_ns;      /* T * (max_burst + 1) */
	int64_t limit;
	size_t max_keys;
	size_t n_keys;
	struct rl_entry *buckets[RL_BUCKETS];
};

static uint64_t rl_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct rl *rl_new(int64_t max_burst, int64_t count, int64_t period_s,
		  size_t max_keys, char *err, size_t errlen)
{
	struct rl *r = NULL;

	if (count <= 0 || period_s <= 0 || max_burst < 0) {
		snprintf(err, errlen, "rate limit: count (%lld) and period (%lld) must be positive and max_burst (%lld) not negative",
			 (long long)count, (long long)period_s, (long long)max_burst);
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "rate limit: out of memory");
		goto out;
	}
	pthread_mutex_init(&r->mu, NULL);
	/* redis-cell: Rate::per_period computes ns / n in floating point. */
	r->emission_ns = (int64_t)((double)(period_s * NS_PER_S) / (double)count);
	if (r->emission_ns <= 0) {
		snprintf(err, errlen, "rate limit: %lld per %lld s is too fast", (long long)count,
			 (long long)period_s);
		free(r);
		r = NULL;
		goto out;
	}
	r->dvt_ns = r->emission_ns * (max_burst + 1);
	r->limit = max_burst + 1;
	r->max_keys = max_keys ? max_keys : 65536;
out:
	return r;
}

void rl_free(struct rl *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < RL_BUCKETS; i++) {
		struct rl_entry *e = r->buckets[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Drop entries that expired; if none did and we are still full, drop the
 * first one of each bucket until under the cap. Caller holds mu. */
static void rl_sweep(struct rl *r, int64_t now)
{
	for (size_t i = 0; i < RL_BUCKETS; i++) {
		struct rl_entry **pp = &r->buckets[i];
		while (*pp) {
			struct rl_entry *e = *pp;
			if (e->expire <= now) {
				*pp = e->next;
				free(e);
				r->n_keys--;
			} else {
				pp = &e->next;
			}
		}
	}
	for (size_t i = 0; i < RL_BUCKETS && r->n_keys >= r->max_keys; i++) {
		struct rl_entry *e = r->buckets[i];
		if (e) {
			r->buckets[i] = e->next;
			free(e);
			r->n_keys--;
		}
	}
}

/* Seconds with redis-cell's rounding: whole seconds, +1 if any milliseconds. */
static int64_t rl_round_s(int64_t ns)
{
	int64_t s = ns / NS_PER_S;
	int64_t sub_ms = (ns % NS_PER_S) / 1000000;
	if (sub_ms > 0)
		s++;
	return s;
}

int rl_throttle(struct rl *r, const char *key, int64_t quantity,
		int64_t now, struct rl_result *out)
{
	int err = 0;
	struct rl_entry *e;
	uint64_t b;
	int64_t increment, tat, new_tat, allow_at, diff, ttl, next;

	if (!r || !key || !out || quantity < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->limit = r->limit;
	out->retry_after_ns = -NS_PER_S;
	out->reset_after_ns = -NS_PER_S;
	increment = r->emission_ns * quantity;
	b = rl_hash(key) % RL_BUCKETS;

	pthread_mutex_lock(&r->mu);
	for (e = r->buckets[b]; e; e = e->next)
		if (!strcmp(e->key, key))
			break;
	if (e && e->expire <= now)
		tat = now; /* expired: as if absent */
	else
		tat = e ? e->tat : now;
	new_tat = now > tat ? now + increment : tat + increment;
	allow_at = new_tat - r->dvt_ns;
	diff = now - allow_at;
	if (diff < 0) {
		if (increment <= r->dvt_ns)
			out->retry_after_ns = -diff;
		out->limited = true;
		ttl = tat - now;
	} else {
		ttl = new_tat - now;
		if (!e) {
			size_t kl = strlen(key);
			if (r->n_keys >= r->max_keys)
				rl_sweep(r, now);
			e = malloc(sizeof(*e) + kl + 1);
			if (!e) {
				err = -ENOMEM;
				goto unlock;
			}
			memcpy(e->key, key, kl + 1);
			e->next = r->buckets[b];
			r->buckets[b] = e;
			r->n_keys++;
		}
		e->tat = new_tat;
		e->expire = new_tat; /* redis-cell stores the key with TTL new_tat - now */
	}
	next = r->dvt_ns - ttl;
	if (next > -r->emission_ns) {
		/* redis-cell divides whole microseconds in floating point */
		if (r->emission_ns >= 1000)
			out->remaining = (int64_t)((double)(next / 1000) / (double)(r->emission_ns / 1000));
		else
			out->remaining = (int64_t)((double)next / (double)r->emission_ns);
	}
	out->reset_after_ns = ttl;
	out->retry_after_s = rl_round_s(out->retry_after_ns);
	out->reset_after_s = rl_round_s(out->reset_after_ns);
unlock:
	pthread_mutex_unlock(&r->mu);
	return err;
}

size_t rl_keys(struct rl *r)
{
	size_t n;
	pthread_mutex_lock(&r->mu);
	n = r->n_keys;
	pthread_mutex_unlock(&r->mu);
	return n;
}
