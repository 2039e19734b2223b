/*
 * cache: a worker's verified access tokens (cache.h), keyed by SHA-256 of the token text.
 *
 * Layout: a pool of `capacity` entries, allocated once and never moved, so an entry pointer
 * stays valid until that entry itself is removed or evicted; free pool slots form a
 * singly-linked free list. The index is an open-addressing table of uint32 pool positions
 * (0 = empty, i + 1 = pool[i]) with linear probing, at least twice the capacity (a power
 * of two), so the load factor stays <= 0.5 and probes stay short. Deletion shifts later
 * members of the probe run back (no tombstones), which only rewrites index words: entries
 * do not move. The hash is the first 8 bytes of the SHA-256 key: uniform already, and
 * nobody can aim at a bucket without grinding SHA-256 over tokens we signed.
 *
 * Eviction when full (Redis-style approximations, bounded work per put):
 *  1. scan up to EXPIRE_SCAN pool positions from a rotating cursor, dropping expired
 *     entries; if that freed a slot, done;
 *  2. else sample EVICT_SAMPLE random pool positions (all live, as the pool is full) and
 *     evict the one expiring soonest: it would leave first anyway.
 * The pool is calloc'ed and the free list hands out positions in ascending order, so a
 * large capacity costs address space, not resident memory, until it is used.
 *
 * Threading: none; one cache per worker thread.
 */
#include "token/cache.h"

#include <stdlib.h>
#include <string.h>


/* Pool positions looked at for expired entries before one live entry is evicted. */
#define EXPIRE_SCAN 16
/* Random live entries compared when evicting: Redis's default maxmemory-samples is 5;
 * 8 finds an entry in the soonest-expiring ~12% with probability 1 - 0.88^8 = 64%. */
#define EVICT_SAMPLE 8
/* uint32 index words: far beyond any sane token_cache_size. */
#define CAPACITY_MAX (1u << 28)

struct lt_tcache {
    lt_tcache_entry_t *pool; /* [capacity] */
    uint32_t *next_free;     /* [capacity]: free list links (pool position + 1, 0 = end) */
    uint32_t free_head;      /* pool position + 1 of the first free slot, 0 = none */
    uint32_t *index;         /* [mask + 1]: pool position + 1, 0 = empty */
    size_t mask;
    size_t capacity, count, cursor;
    size_t bytes;            /* sum of entry_bytes() over live entries */
    size_t *entry_size;      /* [capacity]: entry_bytes() of each live entry */
    uint64_t rng;
    uint64_t hits, misses, evictions, expired;
};

/* ---- memory estimate ------------------------------------------------------------------ */

/*
 * Heap held by one entry, estimated rather than measured (a process-wide counting
 * allocator is not something a cache may install):
 *  - the claims JSON, by walking it with jansson 2.14's node sizes (json_t header 16,
 *    object 72 + a 2^k bucket array of 16-byte buckets, holding >= one bucket per member,
 *    min 8; member pair 56 + key; string 32 + its text; integer/real 24; array 40 + an
 *    8-slot-minimum table of pointers), each allocation rounded as glibc malloc does
 *    (8 bytes of header, 16-byte granules, 32 minimum);
 *  - the body, one allocation of body_len + 1;
 *  - the entry's share of the preallocated structures: its pool slot, free-list link,
 *    size word and the two index words per capacity (the index is >= 2x capacity).
 * tests/unit/test_tcache.c checks the JSON part against a counting allocator.
 */
static size_t alloc_cost(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static size_t pow2_at_least(size_t n, size_t min)
{
    size_t p = min;
    while (p < n)
        p <<= 1;
    return p;
}

static size_t json_bytes(const json_t *v, int depth)
{
    size_t sum = 0, i;
    const char *k;
    const json_t *m;
    if (v == NULL || depth > 64)
        return 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        /* jansson rehashes (doubles) when size reaches the bucket count. */
        sum = alloc_cost(72) + alloc_cost(16 * pow2_at_least(json_object_size(v) + 1, 8));
        json_object_foreach ((json_t *)v, k, m)
            sum += alloc_cost(56 + strlen(k) + 1) + json_bytes(m, depth + 1);
        return sum;
    case JSON_ARRAY:
        sum = alloc_cost(40) + alloc_cost(8 * pow2_at_least(json_array_size(v), 8));
        json_array_foreach (v, i, m)
            sum += json_bytes(m, depth + 1);
        return sum;
    case JSON_STRING:
        return alloc_cost(32) + alloc_cost(json_string_length(v) + 1);
    case JSON_INTEGER:
    case JSON_REAL:
        return alloc_cost(24);
    default:
        return 0; /* true, false, null: static singletons */
    }
}

static size_t entry_bytes(const lt_tcache_t *c, const lt_tcache_entry_t *e)
{
    size_t fixed = sizeof(lt_tcache_entry_t) + 2 * sizeof(uint32_t) + sizeof(size_t) +
                   (c->mask + 1) * sizeof(uint32_t) / c->capacity;
    return fixed + json_bytes(e->token.claims, 0) + (e->body != NULL ? alloc_cost(e->body_len + 1) : 0);
}

/* ---- table ----------------------------------------------------------------------------- */

static size_t home(const lt_tcache_t *c, const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & c->mask;
}

/* xorshift64*: only picks eviction candidates, so it needs speed, not secrecy. */
static uint64_t rnd(lt_tcache_t *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

/* Index slot holding `key`, or the empty slot ending its probe run (then *found = 0). */
static size_t probe(const lt_tcache_t *c, const uint8_t key[32], int *found)
{
    size_t i = home(c, key);
    for (;;) {
        uint32_t p = c->index[i];
        if (p == 0) {
            *found = 0;
            return i;
        }
        if (memcmp(c->pool[p - 1].key, key, 32) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & c->mask;
    }
}

static void entry_clear(lt_tcache_entry_t *e)
{
    lt_token_free(&e->token);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

/* Removes the entry in index slot `i`: frees it, then shifts the probe run back. */
static void remove_at(lt_tcache_t *c, size_t i)
{
    uint32_t p = c->index[i];
    c->bytes -= c->entry_size[p - 1];
    c->entry_size[p - 1] = 0;
    entry_clear(&c->pool[p - 1]);
    c->next_free[p - 1] = c->free_head;
    c->free_head = p;
    c->count--;

    /* Backward-shift deletion (Knuth 6.4 algorithm R): move a later member into the hole
     * unless its home lies cyclically in (hole, member]. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        uint32_t q = c->index[j];
        if (q == 0)
            break;
        size_t h = home(c, c->pool[q - 1].key);
        int stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            c->index[hole] = q;
            hole = j;
        }
    }
    c->index[hole] = 0;
}

/* Removes the entry at pool position `p` (it must be live). */
static void remove_pos(lt_tcache_t *c, size_t p)
{
    int found = 0;
    size_t i = probe(c, c->pool[p].key, &found);
    if (found)
        remove_at(c, i);
}

/* Frees at least one pool slot of a full cache. */
static void make_room(lt_tcache_t *c, int64_t now)
{
    int freed = 0;
    for (size_t n = 0; n < EXPIRE_SCAN && n < c->capacity; n++) {
        size_t p = c->cursor;
        c->cursor = (c->cursor + 1) % c->capacity;
        if (c->pool[p].token.claims != NULL && c->pool[p].expires <= now) {
            remove_pos(c, p);
            c->expired++;
            freed = 1;
        }
    }
    if (freed)
        return;
    size_t victim = (size_t)(rnd(c) % c->capacity);
    for (int n = 1; n < EVICT_SAMPLE; n++) {
        size_t p = (size_t)(rnd(c) % c->capacity);
        if (c->pool[p].expires < c->pool[victim].expires)
            victim = p;
    }
    remove_pos(c, victim);
    c->evictions++;
}

/* ---- API ------------------------------------------------------------------------------- */

int lt_tcache_create(size_t capacity, lt_tcache_t **out)
{
    if (out == NULL || capacity == 0 || capacity > CAPACITY_MAX)
        return LT_EINVAL;
    lt_tcache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LT_ENOMEM;
    c->capacity = capacity;
    c->mask = pow2_at_least(2 * capacity, 16) - 1;
    c->pool = calloc(capacity, sizeof(*c->pool));
    c->next_free = calloc(capacity, sizeof(*c->next_free));
    c->entry_size = calloc(capacity, sizeof(*c->entry_size));
    c->index = calloc(c->mask + 1, sizeof(*c->index));
    if (c->pool == NULL || c->next_free == NULL || c->entry_size == NULL || c->index == NULL) {
        lt_tcache_destroy(&c);
        return LT_ENOMEM;
    }
    /* Free list 0, 1, 2, ...: entries fill the pool from its start. */
    for (size_t i = 0; i + 1 < capacity; i++)
        c->next_free[i] = (uint32_t)(i + 2);
    c->free_head = 1;
    if (lt_random(&c->rng, sizeof(c->rng)) != 0 || c->rng == 0)
        c->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)c;
    *out = c;
    return 0;
}

void lt_tcache_destroy(lt_tcache_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    lt_tcache_t *c = *cp;
    if (c->pool != NULL)
        for (size_t i = 0; i < c->capacity; i++)
            entry_clear(&c->pool[i]);
    free(c->pool);
    free(c->next_free);
    free(c->entry_size);
    free(c->index);
    free(c);
    *cp = NULL;
}

int lt_tcache_key(const char *jwt, size_t n, uint8_t key[32])
{
    return lt_sha256(jwt, n, key);
}

lt_tcache_entry_t *lt_tcache_get(lt_tcache_t *c, const uint8_t key[32], int64_t now)
{
    int found = 0;
    if (c == NULL || key == NULL)
        return NULL;
    size_t i = probe(c, key, &found);
    if (!found) {
        c->misses++;
        return NULL;
    }
    lt_tcache_entry_t *e = &c->pool[c->index[i] - 1];
    if (e->expires <= now) {
        remove_at(c, i);
        c->expired++;
        c->misses++;
        return NULL;
    }
    c->hits++;
    return e;
}

lt_tcache_entry_t *lt_tcache_put(lt_tcache_t *c, const uint8_t key[32], lt_token_t *token, uint64_t ring_gen,
                                 char *body, size_t body_len, int64_t now)
{
    if (c == NULL || key == NULL || token == NULL || token->claims == NULL) {
        if (token != NULL)
            lt_token_free(token);
        free(body);
        return NULL;
    }
    int found = 0;
    size_t i = probe(c, key, &found);
    lt_tcache_entry_t *e;
    size_t p;
    if (found) {
        p = c->index[i] - 1;
        e = &c->pool[p];
        c->bytes -= c->entry_size[p];
        lt_token_free(&e->token);
        free(e->body);
    } else {
        if (c->count == c->capacity) {
            make_room(c, now);
            i = probe(c, key, &found); /* the removal may have shifted the run */
        }
        p = c->free_head - 1;
        c->free_head = c->next_free[p];
        c->next_free[p] = 0;
        c->index[i] = (uint32_t)(p + 1);
        c->count++;
        e = &c->pool[p];
        memcpy(e->key, key, 32);
    }
    e->token = *token;
    memset(token, 0, sizeof(*token)); /* ours now: the caller's lt_token_free is a no-op */
    /* exp <= DATE_MAX (token.c), so this cannot overflow. */
    e->expires = e->token.exp + LT_TOKEN_LEEWAY;
    e->ring_gen = ring_gen;
    e->body = body;
    e->body_len = body != NULL ? body_len : 0;
    c->entry_size[p] = entry_bytes(c, e);
    c->bytes += c->entry_size[p];
    return e;
}

void lt_tcache_remove(lt_tcache_t *c, const uint8_t key[32])
{
    int found = 0;
    if (c == NULL || key == NULL)
        return;
    size_t i = probe(c, key, &found);
    if (found)
        remove_at(c, i);
}

void lt_tcache_stats(const lt_tcache_t *c, lt_tcache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    out->entries = c->count;
    out->capacity = c->capacity;
    out->bytes = c->bytes;
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->expired = c->expired;
}

/* ---- introspection --------------------------------------------------------------------- */

int lt_token_introspection_render(const lt_token_t *t, char **out, size_t *n)
{
    json_t *o = NULL;
    char *s = NULL;
    int ret = LT_ENOMEM;
    if (t == NULL || t->claims == NULL || out == NULL || n == NULL)
        return LT_EINVAL;
    const json_t *cl = t->claims;
    json_t *aud = json_object_get(cl, "aud"), *iss = json_object_get(cl, "iss");
    if ((o = json_object()) == NULL)
        goto done;
    /* RFC 7662 §2.2 members first, then ours; insertion order is output order. */
    if (json_object_set_new(o, "active", json_true()) != 0 ||
        json_object_set_new(o, "scope", json_string(t->scope != NULL ? t->scope : "")) != 0 ||
        json_object_set_new(o, "client_id", json_string(t->client_id != NULL ? t->client_id : "")) != 0 ||
        (t->username != NULL && json_object_set_new(o, "username", json_string(t->username)) != 0) ||
        json_object_set_new(o, "token_type", json_string("Bearer")) != 0 ||
        json_object_set_new(o, "exp", json_integer((json_int_t)t->exp)) != 0 ||
        json_object_set_new(o, "iat", json_integer((json_int_t)t->iat)) != 0 ||
        json_object_set_new(o, "nbf", json_integer((json_int_t)t->nbf)) != 0 ||
        json_object_set_new(o, "sub", json_string(t->sub != NULL ? t->sub : "")) != 0 ||
        (aud != NULL && json_object_set(o, "aud", aud) != 0) || (iss != NULL && json_object_set(o, "iss", iss) != 0) ||
        json_object_set_new(o, "jti", json_string(t->jti != NULL ? t->jti : "")) != 0 ||
        (t->sid != NULL && json_object_set_new(o, "sid", json_string(t->sid)) != 0) ||
        json_object_set_new(o, "tenant", json_string(t->tenant != NULL ? t->tenant : "")) != 0 ||
        json_object_set_new(o, "roles", t->roles != NULL ? json_incref(t->roles) : json_array()) != 0 ||
        /* verify turns an absent amr into []: an empty one says nothing, so it is left out
         * (client_credentials tokens have none). */
        (json_array_size(t->amr) > 0 && json_object_set(o, "amr", t->amr) != 0) ||
        (t->acr != NULL && json_object_set_new(o, "acr", json_string(t->acr)) != 0) ||
        (t->auth_time != 0 && json_object_set_new(o, "auth_time", json_integer((json_int_t)t->auth_time)) != 0))
        goto done;
    if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
        goto done;
    size_t len = strlen(s);
    if (len < 2 || s[len - 1] != '}') { /* cannot happen for a non-empty object */
        ret = LT_EINVAL;
        goto done;
    }
    s[len - 1] = '\0';
    *out = s;
    *n = len - 1;
    s = NULL;
    ret = 0;
done:
    free(s);
    json_decref(o);
    return ret;
}
