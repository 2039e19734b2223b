/*
 * browser.c: tenants' CORS origins in memory, the origin rule, CSRF tokens (browser.h).
 *
 * The snapshot is one allocation: an array of (origin, tenant id, tenant name) entries
 * sorted by origin, the strings behind it. A lookup is a binary search for the origin,
 * then a scan of the (few) tenants listing it. Tenants and origins are small in number;
 * the snapshot is rebuilt whole on every change.
 */
#include "identity/browser.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* ---- the origin rule ----------------------------------------------------------------- */

static int ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int lt_browser_origin_ok(const char *s, size_t n)
{
    static const char scheme[] = "https://";
    const size_t sl = sizeof(scheme) - 1;
    if (s == NULL || n <= sl || n > LT_BROWSER_ORIGIN_MAX || memcmp(s, scheme, sl) != 0)
        return 0;
    const char *p = s + sl, *end = s + n;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon != NULL ? colon : end;
    if (host_end == p || (size_t)(host_end - p) > 253)
        return 0;
    /* Labels of 1..63 LDH characters, neither starting nor ending with '-'. */
    for (const char *l = p; l < host_end;) {
        const char *dot = memchr(l, '.', (size_t)(host_end - l));
        const char *le = dot != NULL ? dot : host_end;
        size_t ll = (size_t)(le - l);
        if (ll == 0 || ll > 63 || l[0] == '-' || le[-1] == '-')
            return 0;
        for (const char *c = l; c < le; c++)
            if (!ldh(*c))
                return 0;
        l = dot != NULL ? dot + 1 : host_end;
        if (dot != NULL && l == host_end) /* a trailing dot */
            return 0;
    }
    if (colon != NULL) {
        const char *d = colon + 1;
        size_t dl = (size_t)(end - d);
        if (dl == 0 || dl > 5 || d[0] == '0')
            return 0;
        long port = 0;
        for (size_t i = 0; i < dl; i++) {
            if (d[i] < '0' || d[i] > '9')
                return 0;
            port = port * 10 + (d[i] - '0');
        }
        if (port > 65535 || port == 443)
            return 0;
    }
    return 1;
}

/* ---- the snapshot -------------------------------------------------------------------- */

typedef struct {
    const char *origin, *tenant_id, *tenant_name;
    size_t origin_len;
} entry_t;

struct lt_browser_origins {
    atomic_int refs;
    size_t n;
    entry_t *entries; /* sorted by origin (bytes, then length) */
};

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    size_t n = x->origin_len < y->origin_len ? x->origin_len : y->origin_len;
    int c = memcmp(x->origin, y->origin, n);
    return c != 0 ? c : (x->origin_len > y->origin_len) - (x->origin_len < y->origin_len);
}

int lt_browser_origins_empty(lt_browser_origins_t **out)
{
    lt_browser_origins_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return LT_ENOMEM;
    atomic_init(&o->refs, 1);
    *out = o;
    return 0;
}

void lt_browser_origins_ref(lt_browser_origins_t *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void lt_browser_origins_unref(lt_browser_origins_t *o)
{
    if (o != NULL && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        free(o);
}

size_t lt_browser_origins_count(const lt_browser_origins_t *o)
{
    return o != NULL ? o->n : 0;
}

/* Index of the first entry for `origin`, or o->n when there is none. */
static size_t find_first(const lt_browser_origins_t *o, const char *origin, size_t n)
{
    entry_t key = {.origin = origin, .origin_len = n};
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entry_cmp(&o->entries[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < o->n && entry_cmp(&o->entries[lo], &key) == 0 ? lo : o->n;
}

int lt_browser_origin_any(const lt_browser_origins_t *o, const char *origin, size_t n)
{
    return o != NULL && origin != NULL && find_first(o, origin, n) < o->n;
}

int lt_browser_origin_allowed(const lt_browser_origins_t *o, const char *tenant_id, const char *tenant_name,
                              const char *origin, size_t n)
{
    if (o == NULL || origin == NULL || (tenant_id == NULL && tenant_name == NULL))
        return 0;
    entry_t key = {.origin = origin, .origin_len = n};
    for (size_t i = find_first(o, origin, n); i < o->n && entry_cmp(&o->entries[i], &key) == 0; i++) {
        const entry_t *e = &o->entries[i];
        if (tenant_id != NULL ? strcmp(e->tenant_id, tenant_id) == 0 : strcmp(e->tenant_name, tenant_name) == 0)
            return 1;
    }
    return 0;
}

static const char load_sql[] = "SELECT o_tenant_id::text, o_tenant_name, o_origin FROM latch_origins()";

int lt_browser_origins_load(const char *conninfo, lt_browser_origins_t **out, char *err, size_t errlen)
{
    lt_errf(err, errlen, "%s", "");
    *out = NULL;
    PGconn *conn = lt_store_connect_blocking(conninfo, "latch-origins", err, errlen);
    if (conn == NULL)
        return LT_EUNAVAIL;
    PGresult *r = PQexecParams(conn, load_sql, 0, NULL, NULL, NULL, NULL, 0);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 3) {
        lt_store_query_error(r, conn, "loading CORS origins", err, errlen);
        ret = LT_EIO;
        goto done;
    }
    size_t rows = (size_t)PQntuples(r), bytes = 0;
    for (size_t i = 0; i < rows; i++)
        for (int f = 0; f < 3; f++)
            bytes += (size_t)PQgetlength(r, (int)i, f) + 1;
    /* One block: the header, the entries, then their strings. */
    lt_browser_origins_t *o = calloc(1, sizeof(*o) + rows * sizeof(entry_t) + bytes);
    if (o == NULL) {
        ret = LT_ENOMEM;
        goto done;
    }
    atomic_init(&o->refs, 1);
    o->entries = (entry_t *)(o + 1);
    char *at = (char *)(o->entries + rows);
    for (size_t i = 0; i < rows; i++) {
        const char *v[3];
        for (int f = 0; f < 3; f++) {
            size_t len = (size_t)PQgetlength(r, (int)i, f);
            memcpy(at, PQgetvalue(r, (int)i, f), len);
            at[len] = '\0';
            v[f] = at;
            at += len + 1;
        }
        /* A row that breaks the rule (written around the API and its CHECK) allows nothing. */
        if (!lt_browser_origin_ok(v[2], strlen(v[2])))
            continue;
        o->entries[o->n++] = (entry_t){.tenant_id = v[0], .tenant_name = v[1], .origin = v[2], .origin_len = strlen(v[2])};
    }
    qsort(o->entries, o->n, sizeof(entry_t), entry_cmp);
    *out = o;
done:
    PQclear(r);
    PQfinish(conn);
    return ret;
}

/* ---- CSRF tokens --------------------------------------------------------------------- */

/* Domain separation: this key signs CSRF tokens and nothing else. */
static const char kdf_label[] = "latch csrf v1";

static int csrf_mac(const lt_seal_key_t *master, const char *tenant_id, const char *session_id, uint8_t mac[32])
{
    uint8_t key[32];
    unsigned kl = 0, ml = 0;
    size_t tl = strlen(tenant_id), sl = strlen(session_id);
    int ret = LT_EIO;
    char *msg = malloc(tl + sl + 2);
    if (msg == NULL)
        return LT_ENOMEM;
    /* "tenant\nsession": ids hold no newline, so the pair reads back one way only. */
    memcpy(msg, tenant_id, tl);
    msg[tl] = '\n';
    memcpy(msg + tl + 1, session_id, sl + 1);
    if (HMAC(EVP_sha256(), master->key, sizeof(master->key), (const unsigned char *)kdf_label, sizeof(kdf_label) - 1,
             key, &kl) != NULL &&
        kl == sizeof(key) &&
        HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)msg, tl + sl + 1, mac, &ml) != NULL && ml == 32)
        ret = 0;
    lt_wipe(key, sizeof(key));
    free(msg);
    return ret;
}

int lt_browser_csrf_token(const lt_seal_key_t *master, const char *tenant_id, const char *session_id,
                          char out[LT_BROWSER_CSRF_LEN + 1])
{
    uint8_t mac[32];
    out[0] = '\0';
    if (tenant_id == NULL || session_id == NULL)
        return LT_EINVAL;
    int ret = csrf_mac(master, tenant_id, session_id, mac);
    if (ret == 0)
        out[lt_b64url_encode(out, mac, sizeof(mac))] = '\0';
    lt_wipe(mac, sizeof(mac));
    return ret;
}

int lt_browser_csrf_ok(const lt_seal_key_t *master, const char *tenant_id, const char *session_id, const char *token,
                       size_t n)
{
    char want[LT_BROWSER_CSRF_LEN + 1];
    if (token == NULL || n != LT_BROWSER_CSRF_LEN || lt_browser_csrf_token(master, tenant_id, session_id, want) != 0)
        return 0;
    int ok = lt_ct_eq(want, token, LT_BROWSER_CSRF_LEN);
    lt_wipe(want, sizeof(want));
    return ok;
}
