/*
 * revset: see revset.h.
 *
 * Three structures over one slot array:
 *   - `ents`: every entry in sequence order (appended as they come; an out-of-order seq,
 *     possible only around a resync, is inserted in place). A slot whose entry expired or
 *     was superseded is marked dead (kind 0) and keeps its seq, so the array stays sorted
 *     and lt_revset_since can binary-search it. Dead slots are squeezed out once they are
 *     as many as the live ones, which keeps that O(1) amortised per removal.
 *   - `tab`: open addressing (linear probing) from (kind, value) to slot, for the O(1)
 *     lookup on the introspection path. Keyed with a per-set random seed so nobody can
 *     aim colliding values at it.
 *   - `heap`: a min-heap of (exp, slot), so prune knows in O(1) whether anything expired
 *     and drops expired entries in O(k log n). Nodes for dead slots or stale exps are
 *     discarded or re-pushed as they reach the top.
 * Compaction and in-place inserts move slots, so they rebuild `tab` and `heap` (O(n),
 * rare or amortised).
 *
 * A (kind, value) has one entry: a later line for it merges into {max seq, max exp}. When
 * the seq grows the entry moves to the end, so feed readers past the old seq see the new
 * expiry.
 */
#include "token/revset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAB_EMPTY 0u
#define TAB_TOMB UINT32_MAX
#define MIN_TAB 64

typedef struct {
    int64_t exp;
    uint32_t slot;
} heap_node_t;

struct lt_revset {
    lt_rev_entry_t *ents; /* sequence order; kind 0 = dead */
    size_t nents, capents;
    size_t live;
    uint32_t *tab; /* slot + 1, TAB_EMPTY or TAB_TOMB */
    size_t captab, tabused; /* tabused counts live keys and tombstones */
    heap_node_t *heap;
    size_t nheap, capheap;
    uint64_t seq;
    uint64_t seed;
};

/* ---- hashing ------------------------------------------------------------------------- */

static uint64_t hash_key(const lt_revset_t *s, lt_rev_kind_t kind, const char *v, size_t n)
{
    /* FNV-1a over a seeded state, finished with a 64-bit mixer (splitmix64's). */
    uint64_t h = 0xcbf29ce484222325ull ^ s->seed ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)v[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static int key_eq(const lt_rev_entry_t *e, lt_rev_kind_t kind, const char *v, size_t n)
{
    return e->kind == kind && strncmp(e->value, v, n) == 0 && e->value[n] == '\0';
}

/* The tab index holding (kind, value), or SIZE_MAX. */
static size_t tab_find(const lt_revset_t *s, lt_rev_kind_t kind, const char *v, size_t n)
{
    if (s->captab == 0)
        return SIZE_MAX;
    size_t mask = s->captab - 1;
    for (size_t i = hash_key(s, kind, v, n) & mask;; i = (i + 1) & mask) {
        uint32_t t = s->tab[i];
        if (t == TAB_EMPTY)
            return SIZE_MAX;
        if (t != TAB_TOMB && key_eq(&s->ents[t - 1], kind, v, n))
            return i;
    }
}

/* Inserts slot (its key absent); the table has room (see tab_rebuild). */
static void tab_put(lt_revset_t *s, uint32_t slot)
{
    const lt_rev_entry_t *e = &s->ents[slot];
    size_t mask = s->captab - 1;
    size_t i = hash_key(s, e->kind, e->value, strlen(e->value)) & mask;
    while (s->tab[i] != TAB_EMPTY && s->tab[i] != TAB_TOMB)
        i = (i + 1) & mask;
    if (s->tab[i] == TAB_EMPTY)
        s->tabused++;
    s->tab[i] = slot + 1;
}

/* Rebuilds the table for the live entries, sized for `want` live keys at load <= 1/2. */
static int tab_rebuild(lt_revset_t *s, size_t want)
{
    size_t cap = MIN_TAB;
    while (cap < want * 2)
        cap *= 2;
    uint32_t *tab = calloc(cap, sizeof(*tab));
    if (tab == NULL)
        return LT_ENOMEM;
    free(s->tab);
    s->tab = tab;
    s->captab = cap;
    s->tabused = 0;
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i].kind != 0)
            tab_put(s, (uint32_t)i);
    return 0;
}

/* Room for one more key: grows (or clears tombstones) above load 1/2. */
static int tab_reserve(lt_revset_t *s)
{
    if (s->captab != 0 && (s->tabused + 1) * 2 <= s->captab)
        return 0;
    return tab_rebuild(s, s->live + 1 > s->captab / 4 ? s->live + 1 : s->captab / 4);
}

/* ---- heap ---------------------------------------------------------------------------- */

static void heap_up(heap_node_t *h, size_t i)
{
    heap_node_t x = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].exp <= x.exp)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static void heap_down(heap_node_t *h, size_t n, size_t i)
{
    heap_node_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1].exp < h[c].exp)
            c++;
        if (x.exp <= h[c].exp)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static int heap_push(lt_revset_t *s, int64_t exp, uint32_t slot)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap != 0 ? s->capheap * 2 : 64;
        heap_node_t *h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL)
            return LT_ENOMEM;
        s->heap = h;
        s->capheap = cap;
    }
    s->heap[s->nheap] = (heap_node_t){exp, slot};
    heap_up(s->heap, s->nheap++);
    return 0;
}

static void heap_pop(lt_revset_t *s)
{
    s->heap[0] = s->heap[--s->nheap];
    if (s->nheap > 0)
        heap_down(s->heap, s->nheap, 0);
}

/* Rebuilds the heap from the live entries (capacity already >= live). */
static void heap_rebuild(lt_revset_t *s)
{
    s->nheap = 0;
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i].kind != 0)
            s->heap[s->nheap++] = (heap_node_t){s->ents[i].exp, (uint32_t)i};
    for (size_t i = s->nheap / 2; i-- > 0;)
        heap_down(s->heap, s->nheap, i);
}

/* ---- slots --------------------------------------------------------------------------- */

static int ents_reserve(lt_revset_t *s, size_t extra)
{
    if (s->nents + extra <= s->capents)
        return 0;
    size_t cap = s->capents != 0 ? s->capents * 2 : 64;
    while (cap < s->nents + extra)
        cap *= 2;
    if (cap > UINT32_MAX - 1)
        return LT_ENOMEM;
    lt_rev_entry_t *e = realloc(s->ents, cap * sizeof(*e));
    if (e == NULL)
        return LT_ENOMEM;
    s->ents = e;
    s->capents = cap;
    return 0;
}

/* Squeezes dead slots out and re-indexes; the caller checked it is worth it. */
static void compact(lt_revset_t *s)
{
    size_t j = 0;
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i].kind != 0)
            s->ents[j++] = s->ents[i];
    s->nents = j;
    /* Give memory back after a wave of expiries (the arrays only ever doubled). */
    if (s->capents > 256 && s->nents * 4 < s->capents) {
        size_t cap = s->nents * 2 > 64 ? s->nents * 2 : 64;
        lt_rev_entry_t *e = realloc(s->ents, cap * sizeof(*e));
        if (e != NULL) {
            s->ents = e;
            s->capents = cap;
        }
    }
    if (s->capheap > 256 && s->live * 4 < s->capheap) {
        size_t cap = s->live * 2 > 64 ? s->live * 2 : 64;
        heap_node_t *h = realloc(s->heap, cap * sizeof(*h));
        if (h != NULL) {
            s->heap = h;
            s->capheap = cap;
        }
    }
    /* Both rebuilds fit in memory already held (live <= previous sizes), but the table may
     * be re-allocated smaller; on failure keep the old (larger) one by rebuilding in place. */
    if (tab_rebuild(s, s->live) != 0) {
        memset(s->tab, 0, s->captab * sizeof(*s->tab));
        s->tabused = 0;
        for (size_t i = 0; i < s->nents; i++)
            tab_put(s, (uint32_t)i);
    }
    heap_rebuild(s);
}

static void maybe_compact(lt_revset_t *s)
{
    size_t dead = s->nents - s->live;
    if (dead >= 64 && dead >= s->live)
        compact(s);
}

/* Marks a slot dead and drops its key from the table (tombstone). */
static void kill_slot(lt_revset_t *s, size_t tabi, size_t slot)
{
    s->tab[tabi] = TAB_TOMB;
    s->ents[slot].kind = 0;
    s->live--;
}

/* The first slot with seq > since. */
static size_t first_after(const lt_revset_t *s, uint64_t since)
{
    size_t lo = 0, hi = s->nents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ents[mid].seq <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int heap_reserve(lt_revset_t *s, size_t extra)
{
    if (s->nheap + extra <= s->capheap)
        return 0;
    size_t cap = s->capheap != 0 ? s->capheap * 2 : 64;
    while (cap < s->nheap + extra)
        cap *= 2;
    heap_node_t *h = realloc(s->heap, cap * sizeof(*h));
    if (h == NULL)
        return LT_ENOMEM;
    s->heap = h;
    s->capheap = cap;
    return 0;
}

/* Stores a new live entry at its place in sequence order (its key is absent). */
static int insert_entry(lt_revset_t *s, const lt_rev_entry_t *e)
{
    int ret;
    /* Everything reserved first, so nothing below fails half-way. The heap needs room for
     * a full rebuild too (live + 1 <= nents + 1 <= capents). */
    if ((ret = ents_reserve(s, 1)) != 0 || (ret = tab_reserve(s)) != 0 || (ret = heap_reserve(s, 1)) != 0)
        return ret;
    size_t at = first_after(s, e->seq);
    if (at == s->nents) {
        s->ents[s->nents++] = *e;
        s->live++;
        tab_put(s, (uint32_t)at);
        s->heap[s->nheap] = (heap_node_t){e->exp, (uint32_t)at};
        heap_up(s->heap, s->nheap++);
        return 0;
    }
    /* Out of order (only around a resync): shift the tail and re-index in place. */
    if (s->capheap < s->live + 1 && (ret = heap_reserve(s, s->live + 1 - s->nheap)) != 0)
        return ret;
    memmove(&s->ents[at + 1], &s->ents[at], (s->nents - at) * sizeof(*s->ents));
    s->ents[at] = *e;
    s->nents++;
    s->live++;
    memset(s->tab, 0, s->captab * sizeof(*s->tab));
    s->tabused = 0;
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i].kind != 0)
            tab_put(s, (uint32_t)i);
    heap_rebuild(s);
    return 0;
}

/* ---- public -------------------------------------------------------------------------- */

int lt_revset_create(lt_revset_t **out)
{
    lt_revset_t *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return LT_ENOMEM;
    if (lt_random(&s->seed, sizeof(s->seed)) != 0)
        s->seed = (uint64_t)(uintptr_t)s ^ lt_monotonic_ns();
    *out = s;
    return 0;
}

void lt_revset_destroy(lt_revset_t **ps)
{
    lt_revset_t *s = *ps;
    if (s == NULL)
        return;
    free(s->ents);
    free(s->tab);
    free(s->heap);
    free(s);
    *ps = NULL;
}

static int value_ok(const char *v, size_t n)
{
    if (n == 0 || n > LT_REV_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int tenant_ok(const char *t, size_t n)
{
    if (n == 0)
        return 1;
    if (n != LT_REV_TENANT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (t[i] != '-')
                return 0;
        } else if (!is_hex(t[i])) {
            return 0;
        }
    }
    return 1;
}

int lt_revset_add(lt_revset_t *s, const lt_rev_entry_t *e, int64_t now)
{
    size_t n = strnlen(e->value, sizeof(e->value));
    if (e->seq == 0 || (e->kind != LT_REV_SID && e->kind != LT_REV_JTI) || n > LT_REV_VALUE_MAX ||
        !value_ok(e->value, n) || !tenant_ok(e->tenant, strnlen(e->tenant, sizeof(e->tenant))) ||
        e->tenant[LT_REV_TENANT_MAX] != '\0')
        return LT_EINVAL;
    if (e->seq > s->seq)
        s->seq = e->seq;
    if (e->exp <= now)
        return 0;

    size_t ti = tab_find(s, e->kind, e->value, n);
    if (ti == SIZE_MAX)
        return insert_entry(s, e);

    size_t slot = s->tab[ti] - 1;
    lt_rev_entry_t *cur = &s->ents[slot];
    if (e->seq <= cur->seq) {
        /* an older (or the same) line: at most it extends the expiry in place */
        if (e->exp > cur->exp) {
            cur->exp = e->exp;
            return heap_push(s, cur->exp, (uint32_t)slot);
        }
        return 0;
    }
    /* A newer line: the merged entry moves to the new seq so feed readers past the old
     * one learn the (possibly longer) expiry. */
    lt_rev_entry_t merged = *e;
    if (cur->exp > merged.exp)
        merged.exp = cur->exp;
    /* Reserve before dropping the old slot: a failure must not lose the revocation. Once
     * reserved, insert_entry allocates nothing (a tombstone leaves tabused unchanged). */
    int ret;
    if ((ret = ents_reserve(s, 1)) != 0 || (ret = tab_reserve(s)) != 0 || (ret = heap_reserve(s, 1)) != 0)
        return ret;
    ti = tab_find(s, e->kind, e->value, n); /* tab_reserve may have rebuilt the table */
    kill_slot(s, ti, slot);
    ret = insert_entry(s, &merged);
    maybe_compact(s);
    return ret;
}

/* Parses a decimal unsigned number of at most 20 digits without a sign or leading zeros. */
static int parse_u64(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_i64(const char *p, size_t n, int64_t *out)
{
    uint64_t v;
    int neg = n > 0 && p[0] == '-';
    if (parse_u64(p + neg, n - (size_t)neg, &v) != 0 || v > (uint64_t)INT64_MAX)
        return -1;
    if (neg && v == 0)
        return -1; /* "-0" */
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int lt_rev_parse_line(const char *line, size_t n, lt_rev_entry_t *out)
{
    const char *f[5];
    size_t fl[5];
    size_t nf = 0, start = 0;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == ' ') {
            if (nf == 5)
                return LT_EINVAL;
            f[nf] = line + start;
            fl[nf] = i - start;
            nf++;
            start = i + 1;
        } else if (line[i] == '\0') {
            return LT_EINVAL;
        }
    }
    if (nf != 5)
        return LT_EINVAL;
    if (parse_u64(f[0], fl[0], &out->seq) != 0 || out->seq == 0)
        return LT_EINVAL;
    if (fl[1] == 3 && memcmp(f[1], "sid", 3) == 0)
        out->kind = LT_REV_SID;
    else if (fl[1] == 3 && memcmp(f[1], "jti", 3) == 0)
        out->kind = LT_REV_JTI;
    else
        return LT_EINVAL;
    if (!value_ok(f[2], fl[2]))
        return LT_EINVAL;
    memcpy(out->value, f[2], fl[2]);
    if (parse_i64(f[3], fl[3], &out->exp) != 0)
        return LT_EINVAL;
    if (!(fl[4] == 1 && f[4][0] == '-')) {
        if (fl[4] != LT_REV_TENANT_MAX || !tenant_ok(f[4], fl[4]))
            return LT_EINVAL;
        /* PostgreSQL prints lower case; normalise so tenant filters compare bytes */
        for (size_t i = 0; i < fl[4]; i++) {
            char c = f[4][i];
            out->tenant[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
        }
    }
    return 0;
}

static int cmp_seq(const void *a, const void *b)
{
    const lt_rev_entry_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int lt_revset_apply(lt_revset_t *s, const char *batch, int64_t now)
{
    lt_rev_entry_t one, *many = NULL;
    size_t nlines = 0, nmany = 0;
    int bad = 0, ret = 0, sorted = 1;
    uint64_t prev = 0;

    for (const char *p = batch; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        nlines++;
        p = nl != NULL ? nl + 1 : p + strlen(p);
    }
    /* A batch parsed whole and sorted by seq: an out-of-order line would otherwise cost a
     * re-index each (resync batches are large). */
    if (nlines > 1 && (many = malloc(nlines * sizeof(*many))) == NULL)
        return LT_ENOMEM;
    for (const char *p = batch; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        lt_rev_entry_t *e = many != NULL ? &many[nmany] : &one;
        if (lt_rev_parse_line(p, len, e) != 0) {
            bad++;
        } else {
            if (e->seq < prev)
                sorted = 0;
            prev = e->seq;
            nmany++;
        }
        p = nl != NULL ? nl + 1 : p + len;
    }
    if (many != NULL && !sorted)
        qsort(many, nmany, sizeof(*many), cmp_seq);
    for (size_t i = 0; i < nmany && ret == 0; i++)
        ret = lt_revset_add(s, many != NULL ? &many[i] : &one, now);
    free(many);
    if (ret == LT_ENOMEM)
        return LT_ENOMEM;
    return bad;
}

int lt_revset_has(const lt_revset_t *s, lt_rev_kind_t kind, const char *value, size_t n, int64_t now)
{
    if (n == 0 || n > LT_REV_VALUE_MAX)
        return 0;
    size_t ti = tab_find(s, kind, value, n);
    return ti != SIZE_MAX && s->ents[s->tab[ti] - 1].exp > now;
}

uint64_t lt_revset_seq(const lt_revset_t *s)
{
    return s->seq;
}

void lt_revset_prune(lt_revset_t *s, int64_t now)
{
    int removed = 0;
    while (s->nheap > 0 && s->heap[0].exp <= now) {
        heap_node_t top = s->heap[0];
        heap_pop(s);
        lt_rev_entry_t *e = &s->ents[top.slot];
        if (e->kind == 0 || e->exp != top.exp)
            continue; /* dead slot, or a stale node of an extended entry (its newer node stays) */
        size_t ti = tab_find(s, e->kind, e->value, strlen(e->value));
        if (ti != SIZE_MAX)
            kill_slot(s, ti, top.slot);
        removed = 1;
    }
    if (removed) {
        maybe_compact(s);
        if (s->live == 0) {
            s->nents = 0;
            s->nheap = 0;
            memset(s->tab, 0, s->captab * sizeof(*s->tab));
            s->tabused = 0;
        }
    }
}

size_t lt_revset_since(const lt_revset_t *s, uint64_t since, const char *tenant, int64_t now, size_t max,
                       lt_revset_fn fn, void *data)
{
    size_t n = 0;
    for (size_t i = first_after(s, since); i < s->nents && n < max; i++) {
        const lt_rev_entry_t *e = &s->ents[i];
        if (e->kind == 0 || e->exp <= now)
            continue;
        if (tenant != NULL && strcmp(e->tenant, tenant) != 0)
            continue;
        n++;
        if (fn(e, data) != 0)
            break;
    }
    return n;
}

size_t lt_revset_count(const lt_revset_t *s)
{
    return s->live;
}

size_t lt_revset_bytes(const lt_revset_t *s)
{
    return sizeof(*s) + s->capents * sizeof(*s->ents) + s->captab * sizeof(*s->tab) + s->capheap * sizeof(*s->heap);
}

size_t lt_rev_format_line(const lt_rev_entry_t *e, char *out)
{
    int n = snprintf(out, LT_REV_LINE_MAX, "%llu %s %s %lld %s", (unsigned long long)e->seq,
                     e->kind == LT_REV_SID ? "sid" : "jti", e->value, (long long)e->exp,
                     e->tenant[0] != '\0' ? e->tenant : "-");
    return n < 0 ? 0 : (size_t)n >= LT_REV_LINE_MAX ? LT_REV_LINE_MAX - 1 : (size_t)n;
}
