/*
 * nonce: the memory of nonces already used by signed requests (lib/api/signing.c), so that
 * a signed request replayed inside its clock window is refused.
 *
 * A nonce is remembered per scope (the client id) until a time the caller gives: the end of
 * the window in which its request's timestamp is accepted (ts + window). After that the
 * window check alone refuses a replay, so the entry may go. Entries are keyed by a salted
 * SHA-256 of (scope, nonce) truncated to 128 bits: fixed-size entries, and a key that an
 * attacker cannot steer into one hash bucket (the salt is random per cache).
 *
 * Memory is bounded: at most `capacity` entries, grown on demand (nothing is allocated
 * until the first nonce arrives). Entries sit in insertion order in a ring per shard, and
 * every insertion first drops expired entries from the ring's head. When the ring is full
 * of live entries the insertion is refused (LT_EOVERLOAD) rather than forgetting a live
 * nonce, which would reopen a replay: callers refuse the request then. Only requests whose
 * signature verified reach the cache, so filling it needs a client's signing key.
 *
 * The memory is per process: a replay sent to another instance within the window is not
 * caught (documented in README, "Signed requests").
 *
 * Threading: every function may be called from any thread; shards (16 for a large cache)
 * each have a mutex, so workers rarely wait for each other.
 */
#ifndef LT_TOKEN_NONCE_H
#define LT_TOKEN_NONCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define LT_NONCE_SCOPE_MAX 255 /* bytes of a scope (client id) */
#define LT_NONCE_MAX 255       /* bytes of a nonce */

typedef struct lt_nonce_cache lt_nonce_cache_t;

/**
 * A cache remembering at most `capacity` nonces at once.
 * @return 0, LT_EINVAL (capacity 0 or above 2^31), LT_ENOMEM, LT_EIO (no randomness).
 */
int lt_nonce_cache_create(size_t capacity, lt_nonce_cache_t **out) LT_MUSTCHECK;

/* Frees the cache and sets *c to NULL. NULL is fine. No call may run concurrently. */
void lt_nonce_cache_destroy(lt_nonce_cache_t **c);

/**
 * Records the use of `nonce` in `scope` until `expires` (unix seconds; the entry is gone
 * once now >= expires), `now` being the caller's clock.
 * @return 0 (first use within its lifetime: now recorded), LT_EEXIST (used before and not
 *         yet expired: a replay), LT_EOVERLOAD (full of live nonces: not recorded),
 *         LT_EINVAL (scope or nonce empty or too long, expires <= now), LT_ENOMEM, LT_EIO
 *         (hashing failed).
 */
int lt_nonce_cache_use(lt_nonce_cache_t *c, const char *scope, size_t scope_len, const char *nonce, size_t nonce_len,
                       int64_t now, int64_t expires) LT_MUSTCHECK;

/* Drops expired entries from the head of every shard (insertions do this for their own
 * shard; a periodic call returns the memory of idle shards' slots for reuse sooner). */
void lt_nonce_cache_sweep(lt_nonce_cache_t *c, int64_t now);

typedef struct lt_nonce_stats {
    size_t entries;  /* held, expired ones not yet swept included */
    size_t capacity; /* most entries ever held */
    size_t bytes;    /* allocated for entries and buckets */
    uint64_t full;   /* insertions refused with LT_EOVERLOAD since creation */
} lt_nonce_stats_t;

void lt_nonce_cache_stats(lt_nonce_cache_t *c, lt_nonce_stats_t *st);

#endif
