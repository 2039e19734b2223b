/*
 * nonce.c: see nonce.h. Layout of one shard:
 *
 *   entries  a ring of `cap` slots in insertion order: head is the oldest, head + count - 1
 *            the newest (indexes modulo cap); each slot holds a 128-bit key, its expiry and
 *            the next slot of its hash chain
 *   buckets  a power of two >= cap of chain heads (slot + 1, 0 = empty)
 *
 * Insertion order is not expiry order (a request's timestamp may be anywhere in the window),
 * so an entry that expired behind a younger-expiring head lingers until the head moves on;
 * lookups ignore it, and every entry expires at most two windows after it was written, so
 * the ring never holds more than two windows' worth of nonces. The ring grows by doubling
 * up to the shard's share of the capacity, rebuilt in order.
 */
#include "token/nonce.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 16
#define SALT_LEN 16
/* Small caches keep one shard, so that their capacity is exact (tests, tiny deployments);
 * from this size on the capacity is split over NSHARDS. */
#define SHARD_SPLIT_MIN 16384
#define NSHARDS 16
#define INITIAL_SLOTS 256

typedef struct {
    uint8_t key[KEY_LEN];
    int64_t expires;
    uint32_t next; /* slot + 1 of the next entry in the same bucket; 0 ends the chain */
} entry_t;

/* One cache line apart (the first member's alignment): workers hammer different shards. */
typedef struct {
    _Alignas(64) pthread_mutex_t lock;
    entry_t *e;
    uint32_t *buckets;
    uint32_t cap, max, nbuckets, head, count;
    uint64_t full;
} shard_t;

struct lt_nonce_cache {
    size_t nshards;
    uint8_t salt[SALT_LEN];
    shard_t shards[];
};

int lt_nonce_cache_create(size_t capacity, lt_nonce_cache_t **out)
{
    *out = NULL;
    if (capacity == 0 || capacity > (size_t)1 << 31)
        return LT_EINVAL;
    size_t n = capacity >= SHARD_SPLIT_MIN ? NSHARDS : 1;
    lt_nonce_cache_t *c = aligned_alloc(64, (sizeof(*c) + n * sizeof(shard_t) + 63) / 64 * 64);
    if (c == NULL)
        return LT_ENOMEM;
    memset(c, 0, sizeof(*c) + n * sizeof(shard_t));
    c->nshards = n;
    if (lt_random(c->salt, sizeof(c->salt)) != 0) {
        free(c);
        return LT_EIO;
    }
    for (size_t i = 0; i < n; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->max = (uint32_t)((capacity + n - 1) / n);
    }
    *out = c;
    return 0;
}

void lt_nonce_cache_destroy(lt_nonce_cache_t **pc)
{
    lt_nonce_cache_t *c = *pc;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nshards; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_destroy(&s->lock);
        free(s->e);
        free(s->buckets);
    }
    lt_wipe(c->salt, sizeof(c->salt));
    free(c);
    *pc = NULL;
}

static uint32_t bucket_of(const shard_t *s, const uint8_t key[KEY_LEN])
{
    uint32_t h;
    memcpy(&h, key, sizeof(h));
    return h & (s->nbuckets - 1);
}

static void link_slot(shard_t *s, uint32_t slot)
{
    uint32_t b = bucket_of(s, s->e[slot].key);
    s->e[slot].next = s->buckets[b];
    s->buckets[b] = slot + 1;
}

static void unlink_slot(shard_t *s, uint32_t slot)
{
    uint32_t *p = &s->buckets[bucket_of(s, s->e[slot].key)];
    while (*p != 0 && *p != slot + 1)
        p = &s->e[*p - 1].next;
    if (*p != 0)
        *p = s->e[slot].next;
}

static void sweep_shard(shard_t *s, int64_t now)
{
    while (s->count > 0 && s->e[s->head].expires <= now) {
        unlink_slot(s, s->head);
        s->head = s->head + 1 == s->cap ? 0 : s->head + 1;
        s->count--;
    }
}

/* Doubles the ring (up to max), keeping insertion order. @return 0 or LT_ENOMEM. */
static int grow(shard_t *s)
{
    uint32_t cap = s->cap == 0 ? INITIAL_SLOTS : s->cap * 2;
    if (cap > s->max || cap < s->cap)
        cap = s->max;
    uint32_t nb = 1;
    while (nb < cap)
        nb *= 2;
    entry_t *e = malloc((size_t)cap * sizeof(*e));
    uint32_t *buckets = calloc(nb, sizeof(*buckets));
    if (e == NULL || buckets == NULL) {
        free(e);
        free(buckets);
        return LT_ENOMEM;
    }
    for (uint32_t i = 0; i < s->count; i++)
        e[i] = s->e[(s->head + i) % s->cap];
    free(s->e);
    free(s->buckets);
    s->e = e;
    s->buckets = buckets;
    s->cap = cap;
    s->nbuckets = nb;
    s->head = 0;
    for (uint32_t i = 0; i < s->count; i++)
        link_slot(s, i);
    return 0;
}

static int live(const shard_t *s, const uint8_t key[KEY_LEN], int64_t now)
{
    if (s->nbuckets == 0)
        return 0;
    for (uint32_t i = s->buckets[bucket_of(s, key)]; i != 0; i = s->e[i - 1].next) {
        const entry_t *e = &s->e[i - 1];
        if (e->expires > now && memcmp(e->key, key, KEY_LEN) == 0)
            return 1;
    }
    return 0;
}

int lt_nonce_cache_use(lt_nonce_cache_t *c, const char *scope, size_t scope_len, const char *nonce, size_t nonce_len,
                       int64_t now, int64_t expires)
{
    uint8_t buf[SALT_LEN + 1 + LT_NONCE_SCOPE_MAX + LT_NONCE_MAX], digest[32];
    if (c == NULL || scope == NULL || nonce == NULL || scope_len == 0 || scope_len > LT_NONCE_SCOPE_MAX ||
        nonce_len == 0 || nonce_len > LT_NONCE_MAX || expires <= now)
        return LT_EINVAL;
    /* The length byte keeps ("ab", "c") and ("a", "bc") apart. */
    memcpy(buf, c->salt, SALT_LEN);
    buf[SALT_LEN] = (uint8_t)scope_len;
    memcpy(buf + SALT_LEN + 1, scope, scope_len);
    memcpy(buf + SALT_LEN + 1 + scope_len, nonce, nonce_len);
    int hashed = lt_sha256(buf, SALT_LEN + 1 + scope_len + nonce_len, digest) == 0;
    lt_wipe(buf, SALT_LEN);
    if (!hashed)
        return LT_EIO;
    /* The bucket takes bytes 0..3; the shard another byte, so the two stay independent. */
    shard_t *s = &c->shards[digest[KEY_LEN - 1] % c->nshards];
    int ret = 0;
    pthread_mutex_lock(&s->lock);
    sweep_shard(s, now);
    if (live(s, digest, now)) {
        ret = LT_EEXIST;
    } else if (s->count == s->cap && (s->cap == s->max || (ret = grow(s)) != 0)) {
        if (ret == 0) {
            ret = LT_EOVERLOAD;
            s->full++;
        }
    } else {
        uint32_t slot = (s->head + s->count) % s->cap;
        memcpy(s->e[slot].key, digest, KEY_LEN);
        s->e[slot].expires = expires;
        link_slot(s, slot);
        s->count++;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

void lt_nonce_cache_sweep(lt_nonce_cache_t *c, int64_t now)
{
    for (size_t i = 0; c != NULL && i < c->nshards; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        sweep_shard(s, now);
        pthread_mutex_unlock(&s->lock);
    }
}

void lt_nonce_cache_stats(lt_nonce_cache_t *c, lt_nonce_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; c != NULL && i < c->nshards; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        st->entries += s->count;
        st->capacity += s->max;
        st->bytes += (size_t)s->cap * sizeof(entry_t) + (size_t)s->nbuckets * sizeof(uint32_t);
        st->full += s->full;
        pthread_mutex_unlock(&s->lock);
    }
}
