/*
 * ratelimit: see ratelimit.h for the contract and the choice of one shared table.
 *
 * GCRA: a bucket is one number, its "theoretical arrival time" (tat): the moment the bucket
 * would be full again. With interval T = 1/rate and tolerance tau = (burst - 1) * T, a
 * request at `now` is admitted when max(tat, now) - now <= tau, and then tat = max(tat, now)
 * + T. That is exactly a token bucket of `burst` tokens refilled one per T, without a
 * floating-point refill or a second field, so an update is a compare and a store.
 *
 * Keys are hashed with SipHash-1-3 under a random per-process key (group and kind folded in):
 * clients choose their IPs and ids, and must not be able to aim at one set. The 64-bit hash
 * is also the stored identity (a false match needs a collision inside one set of a secret
 * keyed hash).
 */
#include "http/ratelimit.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/response.h"

#define NS_PER_S 1000000000ull
#define WAYS 6
#define DEFAULT_MAX_ENTRIES 100000
#define MIN_MAX_ENTRIES 64
#define MAX_MAX_ENTRIES 16777216
#define MAX_RATE 1e9
#define MIN_RATE 0.001
#define MAX_BURST 1000000u
#define AUDIT_INTERVAL_S 60

static const char *const group_names[LT_RL_GROUPS] = {"none", "login", "mfa", "token", "introspection", "decisions",
                                                      "admin"};
static const char *const kind_names[LT_RL_KINDS] = {"ip", "user", "client", "tenant"};

/*
 * Built-in limits (README "Rate limits" explains them): generous enough that a person, a
 * script or a busy service never meets them, tight enough to stop a flood before it reaches
 * argon2id or the database. Introspection and decisions are memory-only hot paths whose
 * normal callers (resource servers, proxies) legitimately send tens of thousands per second
 * from one address: they have no built-in limit; set one per client if wanted.
 */
static const struct {
    lt_rl_group_t group;
    lt_rl_kind_t kind;
    double rate;
    uint32_t burst;
} builtin[] = {
    {LT_RL_GROUP_LOGIN, LT_RL_IP, 10, 30},     {LT_RL_GROUP_LOGIN, LT_RL_TENANT, 200, 400},
    {LT_RL_GROUP_MFA, LT_RL_IP, 10, 30},       {LT_RL_GROUP_MFA, LT_RL_USER, 5, 20},
    {LT_RL_GROUP_TOKEN, LT_RL_IP, 100, 200},   {LT_RL_GROUP_TOKEN, LT_RL_CLIENT, 200, 400},
    {LT_RL_GROUP_ADMIN, LT_RL_IP, 100, 200},   {LT_RL_GROUP_ADMIN, LT_RL_USER, 50, 100},
};

const char *lt_rl_group_name(lt_rl_group_t g)
{
    return (unsigned)g < LT_RL_GROUPS ? group_names[g] : "none";
}

const char *lt_rl_kind_name(lt_rl_kind_t k)
{
    return (unsigned)k < LT_RL_KINDS ? kind_names[k] : "unknown";
}

/* ---- SipHash-1-3 ----------------------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                           \
    do {                                                                                                                   \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                                          \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                                             \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                                             \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                                          \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-1-3 of the 8-byte little-endian word `prefix` followed by (p, n). */
static uint64_t siphash13(const uint64_t k[2], uint64_t prefix, const void *p, size_t n)
{
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;
    const uint8_t *in = p;
    size_t total = n + 8;
    v3 ^= prefix;
    SIPROUND;
    v0 ^= prefix;
    for (; n >= 8; in += 8, n -= 8) {
        uint64_t m = le64(in);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)total << 56;
    for (size_t i = 0; i < n; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ------------------------------------------------------------------------- */

/* Two cache lines: the lock and sampling marks with the hashes, then the arrival times. */
typedef struct {
    uint32_t lock;
    uint32_t audited[WAYS]; /* second (table clock) + 1 of the last sampled trip; 0 = never */
    uint64_t fp[WAYS];      /* key hash, 0 = free */
    uint64_t tat[WAYS];
} __attribute__((aligned(64))) rl_set_t;

struct lt_rl_table {
    rl_set_t *sets;
    size_t nsets;
    uint64_t key[2];
    uint64_t evictions;
    uint64_t id; /* unique per process: a worker's leases name their table by it */
};

static uint64_t table_ids;

int lt_rl_limit_set(lt_rl_limit_t *l, double rate, uint32_t burst)
{
    if (!(rate >= MIN_RATE && rate <= MAX_RATE) || burst < 1 || burst > MAX_BURST)
        return LT_EINVAL;
    uint64_t t = (uint64_t)((double)NS_PER_S / rate + 0.5); /* rounded; libm not needed */
    l->interval_ns = t > 0 ? t : 1;
    l->tolerance_ns = (uint64_t)(burst - 1) * l->interval_ns;
    l->burst = burst;
    l->rate = rate;
    return 0;
}

int lt_rl_table_create(size_t max_entries, lt_rl_table_t **out)
{
    lt_rl_table_t *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (t == NULL)
        return LT_ENOMEM;
    t->nsets = (max_entries + WAYS - 1) / WAYS;
    if (t->nsets == 0)
        t->nsets = 1;
    t->sets = aligned_alloc(64, t->nsets * sizeof(rl_set_t));
    if (t->sets == NULL || lt_random(t->key, sizeof(t->key)) != 0) {
        free(t->sets);
        free(t);
        return LT_ENOMEM;
    }
    memset(t->sets, 0, t->nsets * sizeof(rl_set_t));
    t->id = __atomic_add_fetch(&table_ids, 1, __ATOMIC_RELAXED);
    *out = t;
    return 0;
}

void lt_rl_table_destroy(lt_rl_table_t **pt)
{
    lt_rl_table_t *t = *pt;
    if (t == NULL)
        return;
    free(t->sets);
    lt_wipe(t->key, sizeof(t->key));
    free(t);
    *pt = NULL;
}

size_t lt_rl_table_capacity(const lt_rl_table_t *t)
{
    return t->nsets * WAYS;
}

size_t lt_rl_table_used(const lt_rl_table_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsets; i++)
        for (int w = 0; w < WAYS; w++)
            n += __atomic_load_n(&t->sets[i].fp[w], __ATOMIC_RELAXED) != 0;
    return n;
}

uint64_t lt_rl_table_evictions(const lt_rl_table_t *t)
{
    return __atomic_load_n(&t->evictions, __ATOMIC_RELAXED);
}

static void set_lock(rl_set_t *s)
{
    for (unsigned spins = 0; __atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE) != 0;) {
        while (__atomic_load_n(&s->lock, __ATOMIC_RELAXED) != 0) {
            /* The holder runs a few dozen instructions, unless it was preempted: then let
             * it run rather than burn the rest of our slice. */
            if (++spins % 128 == 0)
                sched_yield();
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}

static void set_unlock(rl_set_t *s)
{
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

static uint32_t ceil_s(uint64_t ns)
{
    uint64_t s = (ns + NS_PER_S - 1) / NS_PER_S;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/*
 * Takes up to `want` tokens of bucket `fp` at `now` (0: the clock, read under the lock),
 * after giving back `refund` tokens of `refund_interval_ns` each that a lease of this key
 * did not spend. v->granted says how many were taken: all of them when they fit, else as
 * many as fit (a lease shrinks near the limit), 0 when refused.
 */
static void charge_fp(lt_rl_table_t *t, const lt_rl_limit_t *lim, uint64_t fp, uint64_t now, uint32_t want,
                      uint32_t refund, uint64_t refund_interval_ns, lt_rl_verdict_t *v)
{
    /* Multiply-shift maps the hash onto any set count without a modulo. */
    rl_set_t *s = &t->sets[(size_t)(((unsigned __int128)fp * t->nsets) >> 64)];
    int slot = -1;
    set_lock(s);
    /* Read under the lock, so charges of one set see time in lock order: a worker preempted
     * between reading the clock and taking the lock would otherwise charge "in the past" and
     * see debt that is not there (tripping limits whose tolerance is short). */
    if (now == 0)
        now = lt_monotonic_ns();
    for (int w = 0; w < WAYS; w++) {
        if (s->fp[w] == fp) {
            slot = w;
            break;
        }
    }
    if (slot < 0) {
        /* A free way, else an idle bucket (full again: forgetting it loses nothing), else
         * the one closest to full. */
        uint64_t best = UINT64_MAX;
        for (int w = 0; w < WAYS; w++) {
            uint64_t score = s->fp[w] == 0 ? 0 : s->tat[w] <= now ? 1 : s->tat[w];
            if (score < best) {
                best = score;
                slot = w;
            }
        }
        if (best > 1)
            __atomic_fetch_add(&t->evictions, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fp[slot], fp, __ATOMIC_RELAXED);
        s->tat[slot] = 0;
        s->audited[slot] = 0;
    } else if (refund > 0 && s->tat[slot] > now) {
        /* Charges only ever add to tat, so taking the unspent part off is exact, except that
         * the bucket cannot be fuller than full. */
        uint64_t back = (uint64_t)refund * refund_interval_ns;
        s->tat[slot] = s->tat[slot] - now > back ? s->tat[slot] - back : now;
    }
    uint64_t tat = s->tat[slot] > now ? s->tat[slot] : now;
    uint64_t debt = tat - now;
    v->limit = lim->burst;
    v->audit = 0;
    if (debt > lim->tolerance_ns) {
        uint32_t sec = (uint32_t)(now / NS_PER_S) + 1;
        v->allowed = 0;
        v->granted = 0;
        v->remaining = 0;
        v->retry_after = ceil_s(debt - lim->tolerance_ns);
        if (v->retry_after == 0)
            v->retry_after = 1;
        v->reset = ceil_s(debt);
        if (s->audited[slot] == 0 || sec - s->audited[slot] >= AUDIT_INTERVAL_S) {
            s->audited[slot] = sec;
            v->audit = 1;
        }
    } else {
        /* tokens that fit: the request itself plus what tolerance is left */
        uint64_t fit = (lim->tolerance_ns - debt) / lim->interval_ns + 1;
        uint32_t n = want < 1 ? 1 : want;
        if (n > fit)
            n = (uint32_t)fit;
        s->tat[slot] = tat + (uint64_t)n * lim->interval_ns;
        debt += (uint64_t)n * lim->interval_ns;
        v->allowed = 1;
        v->granted = n;
        v->remaining = (uint32_t)((lim->tolerance_ns + lim->interval_ns - debt) / lim->interval_ns);
        v->retry_after = 0;
        v->reset = ceil_s(debt);
    }
    set_unlock(s);
}

/*
 * Leases. Every worker charging a busy key's bucket in the shared table makes that set's
 * cache line bounce between cores on every request (a resource server sends all its
 * introspections from one IP, one client and one tenant: three bounces per request). For a
 * key that proves busy, a worker instead takes a few tokens at once and spends them locally
 * for at most LEASE_NS, doubling the lease while it runs dry early and shrinking it to what
 * was spent when it expires; what a lease did not spend goes back to the bucket with the
 * next charge of that key. Leased tokens are taken from the shared bucket before they are
 * spent, so no more than the limit is ever admitted; a lease never exceeds what refills in
 * LEASE_NS nor an eighth of the burst, so limits below 1000/s or with a burst under 16
 * never lease and stay exact per request.
 */
#define LEASE_NS 2000000ull
#define LEASE_SLOTS 64
#define LEASE_MAX 1024u

typedef struct {
    uint64_t fp, table_id, interval_ns, expires_ns;
    const lt_rl_limit_t *lim; /* identity only: a reload's new snapshot starts new leases */
    uint32_t size, left;
} rl_lease_t;

static _Thread_local rl_lease_t leases[LEASE_SLOTS];

static uint32_t lease_max(const lt_rl_limit_t *lim)
{
    uint64_t m = LEASE_NS / lim->interval_ns, by_burst = lim->burst / 8;
    if (m > by_burst)
        m = by_burst;
    return m > LEASE_MAX ? LEASE_MAX : (uint32_t)m;
}

static void charge_leased(lt_rl_table_t *t, const lt_rl_limit_t *lim, uint64_t fp, uint64_t now_ns,
                          lt_rl_verdict_t *v)
{
    uint32_t max = lease_max(lim);
    if (max < 2) {
        charge_fp(t, lim, fp, now_ns, 1, 0, 0, v);
        return;
    }
    rl_lease_t *l = &leases[fp % LEASE_SLOTS];
    uint64_t now = now_ns != 0 ? now_ns : lt_monotonic_ns();
    int same = l->fp == fp && l->table_id == t->id && l->lim == lim;
    if (same && l->left > 0 && now < l->expires_ns) {
        l->left--;
        memset(v, 0, sizeof(*v));
        v->allowed = 1;
        v->granted = 1;
        v->limit = lim->burst;
        v->remaining = l->left; /* at least: the lease's own */
        return;
    }
    uint32_t want = 1, refund = 0;
    if (same) {
        uint32_t spent = l->size - l->left;
        want = now < l->expires_ns ? l->size * 2 : spent; /* ran dry early, or its demand */
        want = want < 1 ? 1 : want > max ? max : want;
        refund = l->left;
    } else if (l->left > 0 && l->table_id == t->id) {
        /* another key shares the slot: give its rest back first (rare) */
        rl_set_t *s = &t->sets[(size_t)(((unsigned __int128)l->fp * t->nsets) >> 64)];
        set_lock(s);
        for (int w = 0; w < WAYS; w++) {
            if (s->fp[w] == l->fp && s->tat[w] > now) {
                uint64_t back = (uint64_t)l->left * l->interval_ns;
                s->tat[w] = s->tat[w] - now > back ? s->tat[w] - back : now;
            }
        }
        set_unlock(s);
    }
    charge_fp(t, lim, fp, now_ns, want, refund, l->interval_ns, v);
    *l = (rl_lease_t){.fp = fp, .table_id = t->id, .interval_ns = lim->interval_ns, .expires_ns = now + LEASE_NS,
                      .lim = lim, .size = v->granted, .left = v->granted > 0 ? v->granted - 1 : 0};
}

static uint64_t key_fp(const lt_rl_table_t *t, uint64_t prefix, const void *key, size_t keylen)
{
    uint64_t fp = siphash13(t->key, prefix, key, keylen);
    return fp != 0 ? fp : 1;
}

void lt_rl_table_charge(lt_rl_table_t *t, const lt_rl_limit_t *lim, const void *key, size_t keylen, uint64_t now_ns,
                        lt_rl_verdict_t *v)
{
    charge_fp(t, lim, key_fp(t, 0, key, keylen), now_ns, 1, 0, 0, v);
}

void lt_rl_table_charge_leased(lt_rl_table_t *t, const lt_rl_limit_t *lim, const void *key, size_t keylen,
                               uint64_t now_ns, lt_rl_verdict_t *v)
{
    charge_leased(t, lim, key_fp(t, 0, key, keylen), now_ns, v);
}

/* ---- addresses ------------------------------------------------------------------------- */

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void addr_from_v6(lt_rl_addr_t *a, const uint8_t b[16])
{
    memset(a, 0, sizeof(*a));
    if (memcmp(b, v4mapped, 12) == 0) {
        a->family = AF_INET;
        memcpy(a->bytes, b + 12, 4);
    } else {
        a->family = AF_INET6;
        memcpy(a->bytes, b, 16);
    }
}

int lt_rl_addr_parse(const char *s, size_t n, lt_rl_addr_t *out)
{
    char buf[INET6_ADDRSTRLEN];
    uint8_t b[16];
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
        s++, n -= 2;
    if (n == 0 || n >= sizeof(buf))
        return LT_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, b) == 1) {
        out->family = AF_INET;
        memcpy(out->bytes, b, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, b) == 1) {
        addr_from_v6(out, b);
        return 0;
    }
    return LT_EINVAL;
}

static int in_cidr(const lt_rl_addr_t *a, const lt_rl_cidr_t *c)
{
    if (a->family != c->net.family)
        return 0;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a->bytes, c->net.bytes, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->bytes[full] & mask) == (c->net.bytes[full] & mask);
}

static int in_cidrs(const lt_rl_addr_t *a, const lt_rl_cidr_t *c, int n)
{
    for (int i = 0; i < n; i++)
        if (in_cidr(a, &c[i]))
            return 1;
    return 0;
}

int lt_rl_cidrs_parse(const char *s, lt_rl_cidr_t *out, int cap, char *err, size_t errlen)
{
    int n = 0;
    while (*s != '\0') {
        size_t skip = strspn(s, ", \t\n");
        s += skip;
        size_t len = strcspn(s, ", \t\n");
        if (len == 0)
            break;
        const char *slash = memchr(s, '/', len);
        size_t alen = slash != NULL ? (size_t)(slash - s) : len;
        lt_rl_cidr_t c;
        if (n >= cap) {
            lt_errf(err, errlen, "trusted_proxies: more than %d entries", cap);
            return LT_EINVAL;
        }
        if (lt_rl_addr_parse(s, alen, &c.net) != 0) {
            lt_errf(err, errlen, "trusted_proxies: '%.*s' is not an IP address or CIDR", (int)(len > 64 ? 64 : len), s);
            return LT_EINVAL;
        }
        int max = c.net.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (slash != NULL) {
            char num[8];
            size_t nl = len - alen - 1;
            char *end;
            if (nl == 0 || nl >= sizeof(num) || strspn(slash + 1, "0123456789") < nl) {
                lt_errf(err, errlen, "trusted_proxies: '%.*s' has a bad prefix length", (int)(len > 64 ? 64 : len), s);
                return LT_EINVAL;
            }
            memcpy(num, slash + 1, nl);
            num[nl] = '\0';
            long bits = strtol(num, &end, 10);
            /* ::ffff:a.b.c.d/104 names the IPv4 net a.b.c.d/8 */
            if (c.net.family == AF_INET && memchr(s, ':', alen) != NULL)
                bits -= 96;
            if (bits < 0 || bits > max) {
                lt_errf(err, errlen, "trusted_proxies: '%.*s' has a prefix length out of 0..%d",
                        (int)(len > 64 ? 64 : len), s, max);
                return LT_EINVAL;
            }
            c.bits = (int)bits;
        }
        /* host bits cleared, so a match is a plain prefix compare */
        for (int i = 0; i < 16; i++) {
            int keep = c.bits - 8 * i;
            c.net.bytes[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        }
        out[n++] = c;
        s += len;
    }
    return n;
}

void lt_rl_client_addr(const lt_rl_addr_t *peer, const char *xff, size_t xfflen, const lt_rl_cidr_t *cidrs, int ncidrs,
                       lt_rl_addr_t *out)
{
    lt_rl_addr_t a, last;
    int have = 0;
    *out = *peer;
    if (xff == NULL || ncidrs == 0 || !in_cidrs(peer, cidrs, ncidrs))
        return;
    const char *end = xff + xfflen;
    for (;;) {
        const char *p = end;
        while (p > xff && p[-1] != ',')
            p--;
        if (lt_rl_addr_parse(p, (size_t)(end - p), &a) != 0)
            return; /* a proxy we trust sent garbage: the peer is all we know */
        if (!in_cidrs(&a, cidrs, ncidrs)) {
            *out = a;
            return;
        }
        last = a;
        have = 1;
        if (p == xff)
            break;
        end = p - 1;
    }
    if (have)
        *out = last;
}

/* ---- configuration --------------------------------------------------------------------- */

typedef struct rl_conf {
    lt_rl_limit_t lim[LT_RL_GROUPS][LT_RL_KINDS];
    int ncidrs;
    lt_rl_cidr_t cidrs[LT_RL_MAX_PROXIES];
    size_t max_entries;
    char *text_limits, *text_proxies;
    struct rl_conf *retired_next;
} rl_conf_t;

struct lt_rl {
    rl_conf_t *conf;    /* current snapshot; atomic pointer (acquire/release) */
    rl_conf_t *retired; /* replaced snapshots, freed with the limiter */
    lt_rl_table_t *table;
    size_t nroutes;
    uint8_t *route_group;
    uint64_t tripped[LT_RL_GROUPS][LT_RL_KINDS];
    uint64_t audit_window; /* second << 16 | audits in it */
    lt_rl_audit_fn audit;
    void *audit_data;
};

static void conf_free(rl_conf_t *c)
{
    if (c == NULL)
        return;
    free(c->text_limits);
    free(c->text_proxies);
    free(c);
}

static int parse_kind(json_t *v, lt_rl_limit_t *l, const char *path, char *err, size_t errlen)
{
    if (json_is_null(v) || json_is_false(v)) {
        memset(l, 0, sizeof(*l));
        return 0;
    }
    if (!json_is_object(v)) {
        lt_errf(err, errlen, "rate_limits: %s: expected {\"rate\": N, \"burst\": M}, null or false", path);
        return LT_EINVAL;
    }
    const char *key;
    json_t *m;
    json_object_foreach(v, key, m)
    {
        if (strcmp(key, "rate") != 0 && strcmp(key, "burst") != 0) {
            lt_errf(err, errlen, "rate_limits: %s.%.32s: no such member (rate, burst)", path, key);
            return LT_EINVAL;
        }
    }
    json_t *rate = json_object_get(v, "rate"), *burst = json_object_get(v, "burst");
    if (!json_is_number(rate) || json_number_value(rate) < MIN_RATE || json_number_value(rate) > MAX_RATE) {
        lt_errf(err, errlen, "rate_limits: %s.rate: required, a number of requests per second in 0.001..1e9", path);
        return LT_EINVAL;
    }
    double r = json_number_value(rate);
    json_int_t b = (json_int_t)r + ((double)(json_int_t)r < r); /* burst defaults to ceil(rate) */
    if (burst != NULL) {
        if (!json_is_integer(burst) || json_integer_value(burst) < 1 || json_integer_value(burst) > MAX_BURST) {
            lt_errf(err, errlen, "rate_limits: %s.burst: an integer in 1..%u", path, MAX_BURST);
            return LT_EINVAL;
        }
        b = json_integer_value(burst);
    }
    if (b < 1)
        b = 1;
    if (b > MAX_BURST)
        b = MAX_BURST;
    return lt_rl_limit_set(l, r, (uint32_t)b) == 0 ? 0 : LT_EINVAL;
}

static int parse_conf(const char *limits, const char *proxies, rl_conf_t **out, char *err, size_t errlen)
{
    rl_conf_t *c = calloc(1, sizeof(*c));
    json_t *root = NULL;
    json_error_t jerr;
    int ret = LT_EINVAL;
    *out = NULL;
    if (c == NULL)
        return LT_ENOMEM;
    if (limits == NULL || *limits == '\0')
        limits = "{}";
    if (proxies == NULL)
        proxies = "";
    c->max_entries = DEFAULT_MAX_ENTRIES;
    root = json_loads(limits, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        lt_errf(err, errlen, "rate_limits: must be a JSON object%s%s", root == NULL ? ": " : "", root == NULL ? jerr.text : "");
        goto done;
    }
    json_t *defaults = json_object_get(root, "defaults");
    if (defaults != NULL && !json_is_boolean(defaults)) {
        lt_errf(err, errlen, "rate_limits: defaults: expected true or false");
        goto done;
    }
    if (defaults == NULL || json_is_true(defaults))
        for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
            if (lt_rl_limit_set(&c->lim[builtin[i].group][builtin[i].kind], builtin[i].rate, builtin[i].burst) != 0)
                goto done;
    const char *gname;
    json_t *gv;
    json_object_foreach(root, gname, gv)
    {
        if (strcmp(gname, "defaults") == 0)
            continue;
        if (strcmp(gname, "max_entries") == 0) {
            if (!json_is_integer(gv) || json_integer_value(gv) < MIN_MAX_ENTRIES ||
                json_integer_value(gv) > MAX_MAX_ENTRIES) {
                lt_errf(err, errlen, "rate_limits: max_entries: an integer in %d..%d", MIN_MAX_ENTRIES, MAX_MAX_ENTRIES);
                goto done;
            }
            c->max_entries = (size_t)json_integer_value(gv);
            continue;
        }
        int g = 0;
        for (int i = 1; i < LT_RL_GROUPS && g == 0; i++)
            if (strcmp(gname, group_names[i]) == 0)
                g = i;
        if (g == 0) {
            lt_errf(err, errlen,
                    "rate_limits: %.32s: no such member (login, mfa, token, introspection, decisions, admin, defaults, "
                    "max_entries)",
                    gname);
            goto done;
        }
        if (!json_is_object(gv)) {
            lt_errf(err, errlen, "rate_limits: %s: expected an object of ip, user, client, tenant", gname);
            goto done;
        }
        const char *kname;
        json_t *kv;
        json_object_foreach(gv, kname, kv)
        {
            int k = -1;
            for (int i = 0; i < LT_RL_KINDS && k < 0; i++)
                if (strcmp(kname, kind_names[i]) == 0)
                    k = i;
            char path[64];
            snprintf(path, sizeof(path), "%s.%.32s", gname, kname);
            if (k < 0) {
                lt_errf(err, errlen, "rate_limits: %s: no such member (ip, user, client, tenant)", path);
                goto done;
            }
            if (parse_kind(kv, &c->lim[g][k], path, err, errlen) != 0)
                goto done;
        }
    }
    if ((c->ncidrs = lt_rl_cidrs_parse(proxies, c->cidrs, LT_RL_MAX_PROXIES, err, errlen)) < 0)
        goto done;
    if ((c->text_limits = strdup(limits)) == NULL || (c->text_proxies = strdup(proxies)) == NULL) {
        ret = LT_ENOMEM;
        goto done;
    }
    *out = c;
    c = NULL;
    ret = 0;
done:
    json_decref(root);
    conf_free(c);
    return ret;
}

int lt_http_ratelimit_check(const char *rate_limits, const char *trusted_proxies, char *err, size_t errlen)
{
    rl_conf_t *c;
    int ret = parse_conf(rate_limits, trusted_proxies, &c, err, errlen);
    conf_free(c);
    return ret;
}

int lt_http_ratelimit_configure(lt_http_server_t *s, const char *rate_limits, const char *trusted_proxies, char *err,
                                size_t errlen)
{
    lt_rl_t *rl = lt__http_server_rl(s);
    rl_conf_t *c, *old = __atomic_load_n(&rl->conf, __ATOMIC_ACQUIRE);
    int ret = parse_conf(rate_limits, trusted_proxies, &c, err, errlen);
    if (ret != 0)
        return ret;
    if (old != NULL && strcmp(old->text_limits, c->text_limits) == 0 && strcmp(old->text_proxies, c->text_proxies) == 0) {
        conf_free(c);
        return 0;
    }
    if (rl->table == NULL) {
        if (lt_rl_table_create(c->max_entries, &rl->table) != 0) {
            lt_errf(err, errlen, "rate_limits: out of memory for %zu buckets", c->max_entries);
            conf_free(c);
            return LT_ENOMEM;
        }
    } else if (c->max_entries != old->max_entries) {
        lt_log(LT_LOG_WARN, "http", "rate_limits: max_entries changes on restart only (keeping %zu)",
               old->max_entries);
        c->max_entries = old->max_entries;
    }
    __atomic_store_n(&rl->conf, c, __ATOMIC_RELEASE);
    if (old != NULL) {
        /* a worker may still read it: kept until the limiter goes */
        old->retired_next = rl->retired;
        rl->retired = old;
    }
    return 0;
}

void lt_http_ratelimit_set_audit(lt_http_server_t *s, lt_rl_audit_fn fn, void *data)
{
    lt_rl_t *rl = lt__http_server_rl(s);
    rl->audit = fn;
    rl->audit_data = data;
}

/* ---- routes ---------------------------------------------------------------------------- */

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int is_or_under(const char *s, const char *p)
{
    size_t n = strlen(p);
    return strncmp(s, p, n) == 0 && (s[n] == '\0' || s[n] == '/');
}

lt_rl_group_t lt_rl_classify(const char *pattern)
{
    if (is_or_under(pattern, "/v1/admin"))
        return LT_RL_GROUP_ADMIN;
    if (strcmp(pattern, "/v1/auth/login") == 0 || is_or_under(pattern, "/v1/auth/password-reset") ||
        strcmp(pattern, "/v1/me/password") == 0)
        return LT_RL_GROUP_LOGIN;
    if (is_or_under(pattern, "/v1/auth/mfa") || is_or_under(pattern, "/v1/auth/step-up") ||
        is_or_under(pattern, "/v1/me/mfa"))
        return LT_RL_GROUP_MFA;
    if (strcmp(pattern, "/oauth2/token") == 0 || strcmp(pattern, "/oauth2/revoke") == 0 ||
        strcmp(pattern, "/v1/auth/refresh") == 0 || strcmp(pattern, "/v1/auth/logout") == 0)
        return LT_RL_GROUP_TOKEN;
    if (strcmp(pattern, "/oauth2/introspect") == 0)
        return LT_RL_GROUP_INTROSPECTION;
    if (has_prefix(pattern, "/access/v1/") || is_or_under(pattern, "/v1/forward-auth"))
        return LT_RL_GROUP_DECISIONS;
    return LT_RL_GROUP_NONE;
}

int lt__http_rl_create(const lt_router_t *router, lt_rl_t **out)
{
    lt_rl_t *rl = calloc(1, sizeof(*rl));
    *out = NULL;
    if (rl == NULL)
        return LT_ENOMEM;
    rl->nroutes = lt_router_count(router);
    if ((rl->route_group = calloc(rl->nroutes + 1, 1)) == NULL) {
        free(rl);
        return LT_ENOMEM;
    }
    for (size_t i = 0; i < rl->nroutes; i++)
        rl->route_group[i] = (uint8_t)lt_rl_classify(lt_router_route(router, i)->pattern);
    *out = rl;
    return 0;
}

void lt__http_rl_destroy(lt_rl_t **prl)
{
    lt_rl_t *rl = *prl;
    if (rl == NULL)
        return;
    conf_free(rl->conf);
    while (rl->retired != NULL) {
        rl_conf_t *next = rl->retired->retired_next;
        conf_free(rl->retired);
        rl->retired = next;
    }
    lt_rl_table_destroy(&rl->table);
    free(rl->route_group);
    free(rl);
    *prl = NULL;
}

/* ---- requests -------------------------------------------------------------------------- */

static lt_rl_group_t req_group(const lt_rl_t *rl, const lt_req_t *r)
{
    if (r->route == NULL || r->route->index < 0 || (size_t)r->route->index >= rl->nroutes)
        return LT_RL_GROUP_NONE;
    return (lt_rl_group_t)rl->route_group[r->route->index];
}

static int peer_addr(lt_req_t *r, lt_rl_addr_t *a)
{
    struct sockaddr_storage ss;
    socklen_t sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    memset(a, 0, sizeof(*a));
    if (sl != 0 && ss.ss_family == AF_INET) {
        a->family = AF_INET;
        memcpy(a->bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    if (sl != 0 && ss.ss_family == AF_INET6) {
        addr_from_v6(a, (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_addr);
        return 0;
    }
    return -1;
}

/* The client address by the rules of `c`; -1 when the peer has none (a unix socket). */
static int client_addr(lt_req_t *r, const rl_conf_t *c, lt_rl_addr_t *out)
{
    lt_rl_addr_t peer;
    if (peer_addr(r, &peer) != 0)
        return -1;
    if (c == NULL || c->ncidrs == 0 || !in_cidrs(&peer, c->cidrs, c->ncidrs)) {
        *out = peer;
        return 0;
    }
    /* X-Forwarded-For may come as several fields: one list, in order (RFC 9110 §5.3). */
    const h2o_headers_t *h = &r->req->headers;
    size_t total = 0;
    ssize_t i;
    for (i = -1; (i = h2o_find_header(h, H2O_TOKEN_X_FORWARDED_FOR, i)) >= 0;)
        total += h->entries[i].value.len + 1;
    if (total == 0) {
        *out = peer;
        return 0;
    }
    char *xff = h2o_mem_alloc_pool(&r->req->pool, total), *p = xff;
    for (i = -1; (i = h2o_find_header(h, H2O_TOKEN_X_FORWARDED_FOR, i)) >= 0;) {
        if (p != xff)
            *p++ = ',';
        memcpy(p, h->entries[i].value.base, h->entries[i].value.len);
        p += h->entries[i].value.len;
    }
    lt_rl_client_addr(&peer, xff, (size_t)(p - xff), c->cidrs, c->ncidrs, out);
    return 0;
}

const char *lt_req_client_ip(lt_req_t *r)
{
    lt_rl_t *rl = lt__http_server_rl(r->server);
    const rl_conf_t *c = rl != NULL ? __atomic_load_n(&rl->conf, __ATOMIC_ACQUIRE) : NULL;
    lt_rl_addr_t a, peer;
    if (c == NULL || c->ncidrs == 0 || client_addr(r, c, &a) != 0 || peer_addr(r, &peer) != 0 ||
        memcmp(&a, &peer, sizeof(a)) == 0)
        return lt_req_peer(r);
    char *s = h2o_mem_alloc_pool(&r->req->pool, INET6_ADDRSTRLEN);
    if (inet_ntop(a.family, a.bytes, s, INET6_ADDRSTRLEN) == NULL)
        return lt_req_peer(r);
    return s;
}

static void answer_429(lt_req_t *r, lt_rl_group_t g, lt_rl_kind_t k, const lt_rl_verdict_t *v)
{
    char num[16], detail[160];
    snprintf(num, sizeof(num), "%u", v->retry_after);
    lt_http_add_header(r, "retry-after", num);
    snprintf(num, sizeof(num), "%u", v->limit);
    lt_http_add_header(r, "ratelimit-limit", num);
    lt_http_add_header(r, "ratelimit-remaining", "0");
    snprintf(num, sizeof(num), "%u", v->reset);
    lt_http_add_header(r, "ratelimit-reset", num);
    snprintf(detail, sizeof(detail), "Too many %s requests for this %s; retry in %u s.", group_names[g], kind_names[k],
             v->retry_after);
    lt_http_problem(r, 429, "rate_limited", detail);
}

/* One more audit event this second, unless LT_RL_AUDIT_PER_SECOND were written already. */
static int audit_budget(lt_rl_t *rl, uint64_t now_ns)
{
    uint64_t sec = now_ns / NS_PER_S, cur = __atomic_load_n(&rl->audit_window, __ATOMIC_RELAXED), next;
    do {
        next = (cur >> 16) == sec ? cur + 1 : sec << 16 | 1;
        if ((next & 0xffff) > LT_RL_AUDIT_PER_SECOND)
            return 0;
    } while (!__atomic_compare_exchange_n(&rl->audit_window, &cur, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return 1;
}

static void tripped(lt_rl_t *rl, lt_req_t *r, lt_rl_group_t g, lt_rl_kind_t k, const lt_rl_limit_t *lim,
                    const char *id, size_t idlen, const lt_rl_verdict_t *v)
{
    __atomic_fetch_add(&rl->tripped[g][k], 1, __ATOMIC_RELAXED);
    answer_429(r, g, k, v);
    if (!v->audit || !audit_budget(rl, lt_monotonic_ns()))
        return;
    lt_log(LT_LOG_INFO, "http", "request %s: rate limit tripped: %s per %s (%g/s, burst %u)", r->request_id,
           group_names[g], kind_names[k], lim->rate, lim->burst);
    if (rl->audit != NULL) {
        if (id == NULL) { /* the IP: as text only now that it is needed */
            id = lt_req_client_ip(r);
            idlen = strlen(id);
        }
        lt_rl_trip_t t = {.group = g, .kind = k, .id = id, .idlen = idlen, .rate = lim->rate, .burst = lim->burst,
                          .retry_after = v->retry_after};
        rl->audit(r, &t, rl->audit_data);
    }
}

/* The limit of (r's group, kind) or NULL when there is none; `c` and `g` filled. */
static const lt_rl_limit_t *limit_of(lt_rl_t *rl, lt_req_t *r, lt_rl_kind_t kind, const rl_conf_t **c,
                                     lt_rl_group_t *g)
{
    if (rl == NULL || (unsigned)kind >= LT_RL_KINDS || (*g = req_group(rl, r)) == LT_RL_GROUP_NONE)
        return NULL;
    *c = __atomic_load_n(&rl->conf, __ATOMIC_ACQUIRE);
    if (*c == NULL || (*c)->lim[*g][kind].interval_ns == 0)
        return NULL;
    return &(*c)->lim[*g][kind];
}

int lt_http_ratelimit(lt_req_t *r, lt_rl_kind_t kind, const char *id, size_t idlen)
{
    lt_rl_t *rl = lt__http_server_rl(r->server);
    const rl_conf_t *c;
    lt_rl_group_t g;
    const lt_rl_limit_t *lim = limit_of(rl, r, kind, &c, &g);
    if (lim == NULL || id == NULL || idlen == 0)
        return 0;
    if (kind == LT_RL_IP) /* the same bucket as the server's charge: the address, not its spelling */
        return lt__http_rl_charge_ip(r);
    lt_rl_verdict_t v;
    charge_leased(rl->table, lim, key_fp(rl->table, (uint64_t)g << 8 | (uint64_t)kind, id, idlen), 0, &v);
    if (v.allowed)
        return 0;
    tripped(rl, r, g, kind, lim, id, idlen, &v);
    return 1;
}

int lt__http_rl_charge_ip(lt_req_t *r)
{
    lt_rl_t *rl = lt__http_server_rl(r->server);
    const rl_conf_t *c;
    lt_rl_group_t g;
    const lt_rl_limit_t *lim = limit_of(rl, r, LT_RL_IP, &c, &g);
    lt_rl_addr_t a;
    if (lim == NULL || client_addr(r, c, &a) != 0)
        return 0;
    /* One host of IPv6 owns a /64: keying by it stops a client from rotating addresses. */
    size_t n = a.family == AF_INET ? 4 : 8;
    lt_rl_verdict_t v;
    uint64_t prefix = (uint64_t)g << 8 | (uint64_t)LT_RL_IP | (uint64_t)(a.family == AF_INET ? 4 : 6) << 16;
    charge_leased(rl->table, lim, key_fp(rl->table, prefix, a.bytes, n), 0, &v);
    if (v.allowed)
        return 0;
    tripped(rl, r, g, LT_RL_IP, lim, NULL, 0, &v);
    return 1;
}

int lt__http_rl_metrics(const lt_rl_t *rl, lt_buf_t *out)
{
    int ret = lt_buf_appends(out, "# HELP latch_rate_limited_total Requests refused (429) by a rate limit, by route "
                                  "group and key kind.\n"
                                  "# TYPE latch_rate_limited_total counter\n");
    for (int g = 1; g < LT_RL_GROUPS; g++)
        for (int k = 0; k < LT_RL_KINDS; k++)
            ret |= lt_buf_appendf(out, "latch_rate_limited_total{group=\"%s\",kind=\"%s\"} %llu\n", group_names[g],
                                  kind_names[k],
                                  (unsigned long long)__atomic_load_n(&rl->tripped[g][k], __ATOMIC_RELAXED));
    if (rl->table != NULL)
        ret |= lt_buf_appendf(out,
                              "# HELP latch_rate_limit_buckets Rate-limit buckets in memory.\n"
                              "# TYPE latch_rate_limit_buckets gauge\n"
                              "latch_rate_limit_buckets %zu\n"
                              "# HELP latch_rate_limit_bucket_capacity Rate-limit buckets at most (max_entries).\n"
                              "# TYPE latch_rate_limit_bucket_capacity gauge\n"
                              "latch_rate_limit_bucket_capacity %zu\n"
                              "# HELP latch_rate_limit_evictions_total Buckets with debt evicted to make room.\n"
                              "# TYPE latch_rate_limit_evictions_total counter\n"
                              "latch_rate_limit_evictions_total %llu\n",
                              lt_rl_table_used(rl->table), lt_rl_table_capacity(rl->table),
                              (unsigned long long)lt_rl_table_evictions(rl->table));
    return ret == 0 ? 0 : LT_ENOMEM;
}
