/*
 * ratelimit.h: per-client rate limiting with the generic cell rate algorithm
 * (GCRA), with the semantics of redis-cell's CL.THROTTLE command.
 *
 * A limiter is configured like "CL.THROTTLE key max_burst count period":
 * `count` actions per `period` seconds, with bursts of up to max_burst + 1
 * actions. rl_throttle() applies `quantity` actions for a key at time `now`
 * (nanoseconds on any monotonic clock; the caller passes it so that tests can
 * drive the clock) and reports exactly what redis-cell replies: limited or
 * not, the limit (max_burst + 1), the remaining actions, retry-after and
 * reset-after (as durations in ns, and as whole seconds rounded up the way
 * redis-cell rounds them, with -1 for "no retry needed").
 *
 * DESIGN
 * For every key we store one number, the theoretical arrival time (TAT).
 * The emission interval T = period/count; the delay variation tolerance
 * DVT = T * (max_burst + 1). A request of quantity q is allowed when
 * now >= max(TAT, now) + T*q - DVT, and then TAT becomes max(TAT, now) + T*q.
 * Keys whose TAT lies in the past carry no information and are swept when
 * the table passes max_keys, so memory stays bounded by active clients.
 */
#ifndef SERVER_RATELIMIT_H
#define SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rl;

struct rl_result {
	bool limited;
	int64_t limit;          /* max_burst + 1  (X-RateLimit-Limit) */
	int64_t remaining;      /* X-RateLimit-Remaining */
	int64_t retry_after_ns; /* -1 s (i.e. -1e9) when allowed */
	int64_t reset_after_ns;
	int64_t retry_after_s;  /* redis-cell rounding: up to the next second; -1 when allowed */
	int64_t reset_after_s;  /* X-RateLimit-Reset */
};

/* count actions per period_s seconds, bursts of max_burst + 1. NULL with err
 * set when count or period is not positive or max_burst is negative. */
struct rl *rl_new(int64_t max_burst, int64_t count, int64_t period_s,
		  size_t max_keys, char *err, size_t errlen);
void rl_free(struct rl *r); /* NULL is a no-op */

/* Apply quantity (0 peeks) for key at now_ns. Thread-safe. 0 or -errno. */
int rl_throttle(struct rl *r, const char *key, int64_t quantity,
		int64_t now_ns, struct rl_result *out);
/* Number of keys currently stored. */
size_t rl_keys(struct rl *r);

#endif
