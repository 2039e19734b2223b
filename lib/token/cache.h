/*
 * cache: a worker's verified access tokens, keyed by the SHA-256 of the compact JWT, so a
 * repeated introspection or bearer check costs a hash and a lookup instead of a signature
 * verification (DESIGN.md, "Hot paths never touch the database").
 *
 * An entry holds the verified token (lt_token_t), the keyring generation it was verified
 * under, and its introspection response rendered once (lt_token_introspection_render).
 * It lives until the token's exp (plus leeway) passes; when the cache is full, expired
 * entries go first, else the entry expiring soonest among a small sample is evicted, so
 * a flood of distinct tokens cannot grow memory past `capacity`.
 *
 * A hit is only a hint of validity: callers still check revocation (revset) and that the
 * ring generation has not changed (a changed ring: look the kid up again; a retired key's
 * tokens are then dropped).
 *
 * Threading: one cache per worker, used only on that worker's thread.
 */
#ifndef LT_TOKEN_CACHE_H
#define LT_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "token/token.h"

typedef struct lt_tcache lt_tcache_t;

typedef struct lt_tcache_entry {
    uint8_t key[32];     /* SHA-256 of the token text */
    int64_t expires;     /* token exp + LT_TOKEN_LEEWAY: gone after this */
    uint64_t ring_gen;   /* generation of the ring that verified it */
    lt_token_t token;    /* owned by the cache */
    char *body;          /* introspection JSON without its closing '}' (owned) */
    size_t body_len;
} lt_tcache_entry_t;

/** @return 0, LT_EINVAL (capacity 0), LT_ENOMEM. */
int lt_tcache_create(size_t capacity, lt_tcache_t **out) LT_MUSTCHECK;
void lt_tcache_destroy(lt_tcache_t **c);

/* SHA-256 of `jwt` into key. @return 0, or LT_EIO (then the token must not be looked up:
 * a failed hash must never match another token's entry). */
int lt_tcache_key(const char *jwt, size_t n, uint8_t key[32]) LT_MUSTCHECK;

/* The live entry for `key`, or NULL (an expired one is removed). Valid until the next put/remove. */
lt_tcache_entry_t *lt_tcache_get(lt_tcache_t *c, const uint8_t key[32], int64_t now);

/**
 * Inserts (or replaces) the entry for `key`, taking ownership of `token`'s claims and of
 * `body` (malloc'ed) also on failure (they are freed then). Evicts as described above.
 * @return the entry, or NULL on LT_ENOMEM.
 */
lt_tcache_entry_t *lt_tcache_put(lt_tcache_t *c, const uint8_t key[32], lt_token_t *token, uint64_t ring_gen,
                                 char *body, size_t body_len, int64_t now);

void lt_tcache_remove(lt_tcache_t *c, const uint8_t key[32]);

typedef struct lt_tcache_stats {
    size_t entries, capacity;
    size_t bytes;        /* heap held by entries (claims JSON, body, slots) */
    uint64_t hits, misses, evictions, expired;
} lt_tcache_stats_t;

void lt_tcache_stats(const lt_tcache_t *c, lt_tcache_stats_t *out);

/**
 * The RFC 7662 response of a live access token, rendered once per verified token:
 * {"active":true,"scope","client_id","username"?,"token_type":"Bearer","exp","iat","nbf",
 *  "sub","aud","iss","jti","sid"?,"tenant","roles","amr","acr"?,"auth_time"?}
 * taken from the token's claims (aud as given: string or array), WITHOUT the closing '}'
 * so the caller can append ,"revocation_seq":N}. Absent optional claims are omitted.
 * @return 0 (*out malloc'ed, NUL-terminated, *n its length) or LT_ENOMEM.
 */
int lt_token_introspection_render(const lt_token_t *t, char **out, size_t *n) LT_MUSTCHECK;

#endif
