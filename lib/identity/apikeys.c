/*
 * apikeys.c: API key format, snapshots of the live keys, verification, and the statements
 * of the API surfaces (see apikeys.h; the SQL is sql/0013_api_keys.sql).
 *
 * A snapshot is an lt_snap_t (snapshot.h) of lt_apikey_t indexed by key id, the scope and
 * role lists and every string in its arena.
 *
 * Threading: snapshots and the pure helpers are safe anywhere; lt_apikeys_load blocks.
 */
#include "identity/apikeys.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "identity/snapshot.h"

#define ID_RANDOM_BYTES 10     /* 80 bits -> 16 base32 characters */
#define SECRET_RANDOM_BYTES 32 /* 256 bits -> 43 base64url characters */

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

struct lt_apikeys {
    lt_snap_t s; /* of lt_apikey_t by key_id */
};

/* ---- format ------------------------------------------------------------------------------ */

void lt_apikey_format(const uint8_t id_raw[ID_RANDOM_BYTES], const uint8_t secret_raw[SECRET_RANDOM_BYTES],
                      char key[LT_APIKEY_LEN + 1])
{
    char *p = key;
    memcpy(p, LT_APIKEY_PREFIX, LT_APIKEY_PREFIX_LEN);
    p += LT_APIKEY_PREFIX_LEN;
    /* 10 bytes are exactly 16 groups of 5 bits: no padding, no partial group. */
    for (int g = 0; g < 2; g++) {
        const uint8_t *b = id_raw + 5 * g;
        uint64_t v = (uint64_t)b[0] << 32 | (uint64_t)b[1] << 24 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 8 | b[4];
        for (int i = 7; i >= 0; i--)
            *p++ = b32[(v >> (5 * i)) & 31];
    }
    *p++ = '_';
    p += lt_b64url_encode(p, secret_raw, SECRET_RANDOM_BYTES);
    *p = '\0';
}

int lt_apikey_new(char key[LT_APIKEY_LEN + 1], char key_id[LT_APIKEY_ID_LEN + 1], char hash_hex[65])
{
    uint8_t rid[ID_RANDOM_BYTES], rsec[SECRET_RANDOM_BYTES], h[32];
    int ret = 0;
    if (lt_random(rid, sizeof(rid)) != 0 || lt_random(rsec, sizeof(rsec)) != 0) {
        ret = LT_EIO;
        goto done;
    }
    lt_apikey_format(rid, rsec, key);
    memcpy(key_id, key + LT_APIKEY_PREFIX_LEN, LT_APIKEY_ID_LEN);
    key_id[LT_APIKEY_ID_LEN] = '\0';
    if (lt_sha256(key + LT_APIKEY_LEN - LT_APIKEY_SECRET_LEN, LT_APIKEY_SECRET_LEN, h) != 0) {
        ret = LT_EIO;
        goto done;
    }
    lt_hex_encode(hash_hex, h, sizeof(h));
done:
    if (ret != 0) {
        lt_wipe(key, LT_APIKEY_LEN + 1);
        key_id[0] = hash_hex[0] = '\0';
    }
    lt_wipe(rsec, sizeof(rsec));
    lt_wipe(h, sizeof(h));
    return ret;
}

static int b64url_index(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

int lt_apikey_looks_like(const char *s, size_t n)
{
    return s != NULL && n >= LT_APIKEY_PREFIX_LEN && memcmp(s, LT_APIKEY_PREFIX, LT_APIKEY_PREFIX_LEN) == 0;
}

int lt_apikey_parse(const char *s, size_t n, const char **key_id, const char **secret)
{
    if (s == NULL || n != LT_APIKEY_LEN || !lt_apikey_looks_like(s, n))
        return LT_EINVAL;
    const char *id = s + LT_APIKEY_PREFIX_LEN, *sec = id + LT_APIKEY_ID_LEN + 1;
    for (size_t i = 0; i < LT_APIKEY_ID_LEN; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '2' && id[i] <= '7')))
            return LT_EINVAL;
    if (id[LT_APIKEY_ID_LEN] != '_')
        return LT_EINVAL;
    int last = 0;
    for (size_t i = 0; i < LT_APIKEY_SECRET_LEN; i++)
        if ((last = b64url_index(sec[i])) < 0)
            return LT_EINVAL;
    /* 43 characters carry 258 bits for 256: the last one's two low bits must be zero, so
     * every secret has exactly one spelling. */
    if ((last & 3) != 0)
        return LT_EINVAL;
    if (key_id != NULL)
        *key_id = id;
    if (secret != NULL)
        *secret = sec;
    return 0;
}

int lt_apikey_role_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 1 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_:.-") == n;
}

/* ---- snapshots ------------------------------------------------------------------------------ */

static void keys_free(lt_apikeys_t *ks)
{
    lt_snap_free((lt_snap_t *)ks);
}

static int keys_alloc(size_t n, size_t nptrs, size_t bytes, lt_apikeys_t **out)
{
    lt_snap_t *s;
    int ret = lt_snap_new(sizeof(lt_apikeys_t), n, sizeof(lt_apikey_t), offsetof(lt_apikey_t, key_id), nptrs, bytes, &s);
    *out = (lt_apikeys_t *)s;
    return ret;
}

int lt_apikeys_empty(lt_apikeys_t **out)
{
    return keys_alloc(0, 0, 0, out);
}

lt_apikeys_t *lt_apikeys_ref(lt_apikeys_t *ks)
{
    lt_snap_ref((lt_snap_t *)ks);
    return ks;
}

void lt_apikeys_unref(lt_apikeys_t *ks)
{
    lt_snap_unref((lt_snap_t *)ks);
}

size_t lt_apikeys_count(const lt_apikeys_t *ks)
{
    return lt_snap_count((const lt_snap_t *)ks);
}

const lt_apikey_t *lt_apikeys_find(const lt_apikeys_t *ks, const char *key_id, size_t n)
{
    return n == LT_APIKEY_ID_LEN ? lt_snap_find((const lt_snap_t *)ks, key_id, n) : NULL;
}

int lt_apikeys_verify(const lt_apikeys_t *ks, const char *s, size_t n, int64_t now, const lt_apikey_t **out)
{
    /* Stands in for an unknown key id so that it costs the same hash and compare as a wrong
     * secret: response times do not tell which key ids exist. */
    static const uint8_t dummy[32] = {0x6c, 0x61, 0x74, 0x63, 0x68, 0x2d, 0x61, 0x6b};
    const char *id, *secret;
    uint8_t h[32];
    *out = NULL;
    if (lt_apikey_parse(s, n, &id, &secret) != 0)
        return LT_EINVAL;
    const lt_apikey_t *k = lt_apikeys_find(ks, id, LT_APIKEY_ID_LEN);
    int ok = lt_sha256(secret, LT_APIKEY_SECRET_LEN, h) == 0;
    if (!ok)
        memset(h, 0xff, sizeof(h));
    int eq = CRYPTO_memcmp(h, k != NULL ? k->secret_hash : dummy, sizeof(h)) == 0;
    lt_wipe(h, sizeof(h));
    if (!ok || !eq || k == NULL || (k->expires_at != 0 && now >= k->expires_at))
        return LT_ENOTFOUND;
    *out = k;
    return 0;
}

int lt_apikey_has_scope(const lt_apikey_t *k, const char *scope)
{
    if (k == NULL || scope == NULL || k->scopes == NULL)
        return 0;
    for (const char *const *p = k->scopes; *p != NULL; p++)
        if (strcmp(*p, scope) == 0)
            return 1;
    return 0;
}

/* ---- loading --------------------------------------------------------------------------------- */

/* Lists go out space-separated: the table's CHECKs keep spaces out of every element. Times
 * are whole seconds, the expiry rounded down (a key never outlives its stored expiry). */
const char lt_apikeys_load_sql[] =
    "SELECT k.key_id, k.id, k.tenant_id, CASE WHEN k.owner_user_id IS NULL THEN 'c' ELSE 'u' END, "
    "coalesce(k.owner_user_id::text, c.client_id), array_to_string(k.scopes, ' '), array_to_string(k.roles, ' '), "
    "coalesce(floor(extract(epoch FROM k.expires_at))::bigint, 0), floor(extract(epoch FROM k.created_at))::bigint, "
    "encode(k.secret_hash, 'hex') "
    "FROM api_keys k LEFT JOIN users u ON u.id = k.owner_user_id LEFT JOIN oauth_clients c ON c.id = k.owner_client_id "
    "WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) "
    "AND (k.owner_user_id IS NULL OR u.status = 'active') AND (k.owner_client_id IS NULL OR c.id IS NOT NULL)";
enum { COL_KEY_ID, COL_ID, COL_TENANT, COL_OWNER_KIND, COL_OWNER, COL_SCOPES, COL_ROLES, COL_EXP, COL_CREATED, COL_HASH, NCOLS };

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

int lt_apikeys_from_result(const struct pg_result *res, lt_apikeys_t **out)
{
    PGresult *r = (PGresult *)res;
    lt_apikeys_t *ks = NULL;
    size_t nptrs = 0, bytes = 0;
    int ret;
    *out = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != NCOLS)
        return LT_EINVAL;
    size_t n = (size_t)PQntuples(r);
    if (n > UINT32_MAX / 4)
        return LT_ERANGE;
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < NCOLS; f++) {
            if (PQgetisnull(r, (int)i, f))
                return LT_EINVAL;
            bytes += (size_t)PQgetlength(r, (int)i, f) + 1;
        }
        if (PQgetlength(r, (int)i, COL_KEY_ID) != LT_APIKEY_ID_LEN || PQgetlength(r, (int)i, COL_HASH) != 64)
            return LT_EINVAL;
        nptrs += lt_snap_words(PQgetvalue(r, (int)i, COL_SCOPES)) + 1;
        nptrs += lt_snap_words(PQgetvalue(r, (int)i, COL_ROLES)) + 1;
    }
    if ((ret = keys_alloc(n, nptrs, bytes, &ks)) != 0)
        return ret;
    lt_snap_t *s = &ks->s;
    for (size_t i = 0; i < n; i++) {
        lt_apikey_t *k = &((lt_apikey_t *)s->items)[i];
        int row = (int)i;
        s->n = i + 1; /* counted before a failure too, so the wipe covers this key */
#define PUT(col) lt_snap_put(s, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col))
        k->key_id = PUT(COL_KEY_ID);
        k->uuid = PUT(COL_ID);
        k->tenant_id = PUT(COL_TENANT);
        k->owner_is_client = PQgetvalue(r, row, COL_OWNER_KIND)[0] == 'c';
        k->owner_id = PUT(COL_OWNER);
#undef PUT
        k->scopes = lt_snap_list(s, PQgetvalue(r, row, COL_SCOPES));
        k->roles = lt_snap_list(s, PQgetvalue(r, row, COL_ROLES));
        const char *hex = PQgetvalue(r, row, COL_HASH);
        int bad = parse_i64(PQgetvalue(r, row, COL_EXP), &k->expires_at) != 0 ||
                  parse_i64(PQgetvalue(r, row, COL_CREATED), &k->created_at) != 0;
        for (int b = 0; b < 32 && !bad; b++) {
            int hi = lt_hex_digit(hex[2 * b]), lo = lt_hex_digit(hex[2 * b + 1]);
            bad = hi < 0 || lo < 0;
            k->secret_hash[b] = (uint8_t)(hi << 4 | lo);
        }
        if (bad || lt_snap_index(s, i) != 0) {
            keys_free(ks);
            return LT_EINVAL;
        }
    }
    *out = ks;
    return 0;
}

int lt_apikeys_load(const char *conninfo, lt_apikeys_t **out, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int ret;
    lt_errf(err, errlen, "%s", "");
    *out = NULL;
    if (conninfo == NULL)
        return LT_EINVAL;
    PGconn *conn = lt_store_connect_blocking(conninfo, "latch-apikeys", err, errlen);
    if (conn == NULL)
        return LT_EUNAVAIL;
    r = PQexecParams(conn, lt_apikeys_load_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_store_query_error(r, conn, "loading API keys", err, errlen);
        ret = LT_EIO;
        goto done;
    }
    ret = lt_apikeys_from_result(r, out);
    if (ret == LT_EINVAL) {
        lt_errf(err, errlen, "loading API keys: unexpected row shape");
        ret = LT_EIO;
    }
done:
    PQclear(r);
    PQfinish(conn);
    return ret;
}

/* ---- statements ------------------------------------------------------------------------------ */

#define TEXT_ARRAY(n) "latch_client_text_array($" #n "::jsonb)"

lt_store_stmt_t lt_apikeys_stmt_create = {
    "apikeys.create",
    "SELECT code, body FROM latch_api_key_create($1::uuid, $2::uuid, $3, $4, $5, $6, $7, " TEXT_ARRAY(8) ", " TEXT_ARRAY(
        9) ", $10::timestamptz, $11, $12, $13)",
    13, -1};
lt_store_stmt_t lt_apikeys_stmt_me_create = {
    "apikeys.me_create",
    "SELECT code, body FROM latch_api_key_me_create($1::uuid, $2::uuid, $3::uuid, $4::integer, $5::boolean, $6, $7, $8, "
    TEXT_ARRAY(9) ", " TEXT_ARRAY(10) ", $11::timestamptz, $12, $13)",
    13, -1};
lt_store_stmt_t lt_apikeys_stmt_list = {
    "apikeys.list",
    "SELECT items, next_key FROM latch_api_key_list($1::uuid, $2::uuid, $3, $4, $5::bigint, $6::uuid, $7::integer)", 7,
    -1};
lt_store_stmt_t lt_apikeys_stmt_me_list = {
    "apikeys.me_list",
    "SELECT items, next_key FROM latch_api_key_me_list($1::uuid, $2::uuid, $3::uuid, $4::bigint, $5::uuid, $6::integer)",
    6, -1};
lt_store_stmt_t lt_apikeys_stmt_get = {"apikeys.get", "SELECT latch_api_key_get($1::uuid, $2)", 2, -1};
lt_store_stmt_t lt_apikeys_stmt_revoke = {"apikeys.revoke",
                                          "SELECT code, body FROM latch_api_key_revoke($1::uuid, $2, $3, $4, $5)", 5, -1};
lt_store_stmt_t lt_apikeys_stmt_me_revoke = {
    "apikeys.me_revoke", "SELECT latch_api_key_me_revoke($1::uuid, $2::uuid, $3::uuid, $4, $5, $6)", 6, -1};
lt_store_stmt_t lt_apikeys_stmt_caller_live = {"apikeys.caller_live",
                                               "SELECT latch_api_key_caller_live($1::uuid, $2::uuid)", 2, -1};
/* One statement for every key a worker saw used since its last flush. */
lt_store_stmt_t lt_apikeys_stmt_touch = {
    "apikeys.touch",
    "UPDATE api_keys k SET last_used_at = now() FROM unnest($1::text[]) AS u(key_id) WHERE k.key_id = u.key_id", 1, -1};

int lt_apikeys_statements(void)
{
    lt_store_stmt_t *all[] = {&lt_apikeys_stmt_create,  &lt_apikeys_stmt_me_create, &lt_apikeys_stmt_list,
                              &lt_apikeys_stmt_me_list, &lt_apikeys_stmt_get,       &lt_apikeys_stmt_revoke,
                              &lt_apikeys_stmt_me_revoke, &lt_apikeys_stmt_caller_live, &lt_apikeys_stmt_touch};
    static int registered; /* start-up only, one thread: see lt_store_stmt_register */
    if (registered)
        return 0;
    int ret = lt_store_stmt_register_each(all, sizeof(all) / sizeof(all[0]));
    registered = ret == 0;
    return ret;
}

int lt_apikeys_result(const struct pg_result *res, const char **code, const char **body)
{
    PGresult *r = (PGresult *)res;
    *code = *body = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 2 ||
        PQgetisnull(r, 0, 0))
        return LT_EINVAL;
    *code = PQgetvalue(r, 0, 0);
    if (!PQgetisnull(r, 0, 1))
        *body = PQgetvalue(r, 0, 1);
    return 0;
}
