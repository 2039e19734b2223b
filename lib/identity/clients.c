/*
 * clients.c: OAuth client snapshots, secret checks, credentials, the statements of the
 * admin surface and the blocking administration for latchctl (see clients.h; the SQL is
 * sql/0008_clients.sql).
 *
 * A snapshot is an lt_snap_t (snapshot.h) of lt_client_t indexed by client_id, the scope
 * and permission lists and every string in its arena; the holder swaps whole snapshots.
 *
 * Threading: snapshots and the pure helpers are safe anywhere; the holder locks; the
 * *_load and lt_clients_admin_* functions block (control thread, latchctl).
 */
#include "identity/clients.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "identity/admin.h"
#include "identity/snapshot.h"

#define ID_RANDOM_BYTES 16     /* 128 bits -> 22 base64url characters */
#define SECRET_RANDOM_BYTES 32 /* 256 bits -> 43 base64url characters */

struct lt_clients {
    lt_snap_t s; /* of lt_client_t by client_id */
};

/* ---- snapshots ------------------------------------------------------------------------- */

static void clients_free(lt_clients_t *cs)
{
    lt_snap_free((lt_snap_t *)cs);
}

static int clients_alloc(size_t n, size_t nptrs, size_t bytes, lt_clients_t **out)
{
    lt_snap_t *s;
    int ret = lt_snap_new(sizeof(lt_clients_t), n, sizeof(lt_client_t), offsetof(lt_client_t, id), nptrs, bytes, &s);
    *out = (lt_clients_t *)s;
    return ret;
}

int lt_clients_empty(lt_clients_t **out)
{
    return clients_alloc(0, 0, 0, out);
}

lt_clients_t *lt_clients_ref(lt_clients_t *cs)
{
    lt_snap_ref((lt_snap_t *)cs);
    return cs;
}

void lt_clients_unref(lt_clients_t *cs)
{
    lt_snap_unref((lt_snap_t *)cs);
}

size_t lt_clients_count(const lt_clients_t *cs)
{
    return lt_snap_count((const lt_snap_t *)cs);
}

const lt_client_t *lt_clients_find(const lt_clients_t *cs, const char *client_id, size_t n)
{
    return n == LT_CLIENT_ID_LEN ? lt_snap_find((const lt_snap_t *)cs, client_id, n) : NULL;
}

/* ---- secrets and credentials --------------------------------------------------------- */

int lt_client_check_secret(const lt_client_t *c, const char *secret, size_t n)
{
    /* Stands in for a missing client so that an unknown id costs the same hash and compare
     * as a wrong secret: response times do not tell which client ids exist. */
    static const uint8_t dummy[32] = {0x6c, 0x61, 0x74, 0x63, 0x68, 0x2d, 0x64, 0x75, 0x6d, 0x6d, 0x79};
    uint8_t h[32];
    int ok = secret != NULL && lt_sha256(secret, n, h) == 0;
    if (!ok)
        memset(h, 0xff, sizeof(h));
    int eq = CRYPTO_memcmp(h, c != NULL ? c->secret_hash : dummy, sizeof(h)) == 0;
    lt_wipe(h, sizeof(h));
    return ok && eq && c != NULL;
}

int lt_client_has_permission(const lt_client_t *c, const char *perm)
{
    if (c == NULL || perm == NULL || c->permissions == NULL)
        return 0;
    for (const char *const *p = c->permissions; *p != NULL; p++)
        if (strcmp(*p, perm) == 0)
            return 1;
    return 0;
}

int lt_client_has_scope(const lt_client_t *c, const char *scope, size_t n)
{
    if (c == NULL || scope == NULL || c->scopes == NULL)
        return 0;
    for (const char *const *p = c->scopes; *p != NULL; p++)
        if (strlen(*p) == n && memcmp(*p, scope, n) == 0)
            return 1;
    return 0;
}

int lt_client_credentials_new(char id[LT_CLIENT_ID_LEN + 1], char secret[LT_CLIENT_SECRET_LEN + 1],
                              char hash_hex[65])
{
    uint8_t rid[ID_RANDOM_BYTES], rsec[SECRET_RANDOM_BYTES], h[32];
    int ret = 0;
    if (lt_random(rid, sizeof(rid)) != 0 || lt_random(rsec, sizeof(rsec)) != 0) {
        ret = LT_EIO;
        goto done;
    }
    memcpy(id, "lc_", 3);
    id[3 + lt_b64url_encode(id + 3, rid, sizeof(rid))] = '\0';
    memcpy(secret, "lcs_", 4);
    secret[4 + lt_b64url_encode(secret + 4, rsec, sizeof(rsec))] = '\0';
    if (lt_sha256(secret, LT_CLIENT_SECRET_LEN, h) != 0) {
        ret = LT_EIO;
        goto done;
    }
    lt_hex_encode(hash_hex, h, sizeof(h));
done:
    if (ret != 0) {
        id[0] = secret[0] = hash_hex[0] = '\0';
    }
    lt_wipe(rsec, sizeof(rsec));
    lt_wipe(h, sizeof(h));
    return ret;
}

/* ---- input rules ------------------------------------------------------------------------- */

static const char *const grant_names[] = {"client_credentials", "refresh_token"};
static const unsigned grant_bits[] = {LT_GRANT_CLIENT_CREDENTIALS, LT_GRANT_REFRESH_TOKEN};
static const char *const permission_names[] = {"introspect", "revoke", "revocations", "decide"};

unsigned lt_client_grant_bit(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(grant_names) / sizeof(grant_names[0]); i++)
        if (strcmp(s, grant_names[i]) == 0)
            return grant_bits[i];
    return 0;
}

int lt_client_permission_ok(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(permission_names) / sizeof(permission_names[0]); i++)
        if (strcmp(s, permission_names[i]) == 0)
            return 1;
    return 0;
}

int lt_client_scope_ok(const char *s, size_t n)
{
    if (s == NULL || n < 1 || n > LT_CLIENT_SCOPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '/' || c == '-'))
            return 0;
    }
    return 1;
}

const char *lt_client_name_problem(const char *s)
{
    size_t chars = 0;
    if (s == NULL || s[0] == '\0')
        return "must not be empty";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return "must not contain control characters";
        if ((*p & 0xc0) != 0x80)
            chars++;
    }
    return chars > LT_CLIENT_NAME_MAX ? "must be at most 200 characters" : NULL;
}

int lt_client_list_check(const json_t *arr, lt_client_list_kind_t kind, const char **why)
{
    size_t i, j;
    json_t *e;
    *why = "must be an array of strings";
    if (!json_is_array(arr))
        return LT_EINVAL;
    if (kind == LT_CLIENT_LIST_GRANTS && json_array_size(arr) == 0) {
        *why = "must name at least one grant type";
        return LT_EINVAL;
    }
    if (kind == LT_CLIENT_LIST_SCOPES && json_array_size(arr) > LT_CLIENT_SCOPES_MAX) {
        *why = "must hold at most 50 scopes";
        return LT_EINVAL;
    }
    json_array_foreach(arr, i, e)
    {
        const char *s = json_string_value(e);
        if (s == NULL || strlen(s) != json_string_length(e)) {
            *why = "must be an array of strings";
            return LT_EINVAL;
        }
        switch (kind) {
        case LT_CLIENT_LIST_GRANTS:
            if (lt_client_grant_bit(s) == 0) {
                *why = "may hold only \"client_credentials\" and \"refresh_token\"";
                return LT_EINVAL;
            }
            break;
        case LT_CLIENT_LIST_SCOPES:
            if (!lt_client_scope_ok(s, json_string_length(e))) {
                *why = "must hold scope tokens of 1 to 64 of A-Z a-z 0-9 _ . : / -";
                return LT_EINVAL;
            }
            break;
        case LT_CLIENT_LIST_PERMISSIONS:
            if (!lt_client_permission_ok(s)) {
                *why = "may hold only \"introspect\", \"revoke\", \"revocations\" and \"decide\"";
                return LT_EINVAL;
            }
            break;
        }
        for (j = 0; j < i; j++)
            if (json_equal(json_array_get(arr, j), e)) {
                *why = "must not repeat a value";
                return LT_EINVAL;
            }
    }
    *why = NULL;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Lists go out space-separated: the CHECKs keep spaces (and quoting) out of every element. */
const char lt_clients_load_sql[] = "SELECT c.client_id, c.id, c.tenant_id, c.name, array_to_string(c.grant_types, ' '), "
                                   "array_to_string(c.scopes, ' '), array_to_string(c.permissions, ' '), "
                                   "encode(c.secret_hash, 'hex'), encode(c.signing_key_sealed, 'hex'), "
                                   "c.require_signed_requests FROM oauth_clients c";
/* NCOLS base columns, never NULL; then the two of request signing (0014), the key NULL when
 * the client has none. */
enum { COL_CLIENT_ID, COL_ID, COL_TENANT, COL_NAME, COL_GRANTS, COL_SCOPES, COL_PERMS, COL_HASH, NCOLS };
enum { COL_SIGNING_KEY = NCOLS, COL_SIGNING_REQUIRED, NCOLS_SIGNING };

#define SIGNING_PREFIX "lsk_"
#define SIGNING_AAD "client_signing_key:"

static int hex_nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Opens a client's sealed signing key (hex) into c->signing_key. @return 0 or <0 (not opened). */
static int signing_open(lt_client_t *c, const char *hex, const lt_seal_key_t *keys, size_t nkeys)
{
    uint8_t sealed[LT_SEAL_OVERHEAD + LT_CLIENT_SIGNING_KEY_LEN];
    char aad[sizeof(SIGNING_AAD) + LT_CLIENT_ID_LEN];
    size_t len = 0;
    if (keys == NULL || nkeys == 0)
        return LT_ENOTFOUND;
    if (strlen(hex) != LT_CLIENT_SIGNING_SEALED_HEX_LEN)
        return LT_EINVAL;
    for (size_t k = 0; k < sizeof(sealed); k++) {
        int hi = hex_nibble(hex[2 * k]), lo = hex_nibble(hex[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return LT_EINVAL;
        sealed[k] = (uint8_t)(hi << 4 | lo);
    }
    snprintf(aad, sizeof(aad), "%s%s", SIGNING_AAD, c->id);
    int ret = lt_unseal(keys, nkeys, aad, strlen(aad), sealed, sizeof(sealed), (uint8_t *)c->signing_key, &len);
    if (ret == 0 && (len != LT_CLIENT_SIGNING_KEY_LEN || memcmp(c->signing_key, SIGNING_PREFIX, 4) != 0))
        ret = LT_EINVAL;
    if (ret != 0)
        lt_wipe(c->signing_key, sizeof(c->signing_key));
    c->signing_key[LT_CLIENT_SIGNING_KEY_LEN] = '\0';
    return ret;
}

int lt_clients_from_result(const struct pg_result *res, lt_clients_t **out)
{
    return lt_clients_from_result_keyed(res, NULL, 0, out);
}

int lt_clients_from_result_keyed(const struct pg_result *res, const lt_seal_key_t *keys, size_t nkeys,
                                 lt_clients_t **out)
{
    PGresult *r = (PGresult *)res;
    lt_clients_t *cs = NULL;
    size_t nptrs = 0, bytes = 0;
    int ret;
    *out = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || (PQnfields(r) != NCOLS && PQnfields(r) != NCOLS_SIGNING))
        return LT_EINVAL;
    int signing = PQnfields(r) == NCOLS_SIGNING;
    size_t n = (size_t)PQntuples(r);
    if (n > UINT32_MAX / 4)
        return LT_ERANGE;
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < NCOLS; f++) {
            if (PQgetisnull(r, (int)i, f))
                return LT_EINVAL;
            bytes += (size_t)PQgetlength(r, (int)i, f) + 1;
        }
        if (PQgetlength(r, (int)i, COL_CLIENT_ID) != LT_CLIENT_ID_LEN || PQgetlength(r, (int)i, COL_HASH) != 64)
            return LT_EINVAL;
        nptrs += lt_snap_words(PQgetvalue(r, (int)i, COL_SCOPES)) + 1;
        nptrs += lt_snap_words(PQgetvalue(r, (int)i, COL_PERMS)) + 1;
    }
    if ((ret = clients_alloc(n, nptrs, bytes, &cs)) != 0)
        return ret;
    lt_snap_t *s = &cs->s;
    for (size_t i = 0; i < n; i++) {
        lt_client_t *c = &((lt_client_t *)s->items)[i];
        int row = (int)i;
        s->n = i + 1; /* counted before a failure too, so the wipe covers this client */
#define PUT(col) lt_snap_put(s, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col))
        c->id = PUT(COL_CLIENT_ID);
        c->uuid = PUT(COL_ID);
        c->tenant_id = PUT(COL_TENANT);
        c->name = PUT(COL_NAME);
#undef PUT
        c->scopes = lt_snap_list(s, PQgetvalue(r, row, COL_SCOPES));
        c->permissions = lt_snap_list(s, PQgetvalue(r, row, COL_PERMS));
        const char *g = PQgetvalue(r, row, COL_GRANTS);
        for (const char *p = g; *p != '\0';) {
            p += strspn(p, " ");
            size_t len = strcspn(p, " ");
            if (len == 0)
                break;
            char word[32];
            if (len < sizeof(word)) {
                memcpy(word, p, len);
                word[len] = '\0';
                c->grants |= lt_client_grant_bit(word); /* unknown (newer) grants grant nothing */
            }
            p += len;
        }
        const char *hex = PQgetvalue(r, row, COL_HASH);
        for (int k = 0; k < 32; k++) {
            int hi = hex_nibble(hex[2 * k]), lo = hex_nibble(hex[2 * k + 1]);
            if (hi < 0 || lo < 0) {
                clients_free(cs);
                return LT_EINVAL;
            }
            c->secret_hash[k] = (uint8_t)(hi << 4 | lo);
        }
        if (signing && PQgetvalue(r, row, COL_SIGNING_REQUIRED)[0] == 't')
            c->signing |= LT_CLIENT_SIGN_REQUIRED;
        if (signing && !PQgetisnull(r, row, COL_SIGNING_KEY)) {
            int sret = signing_open(c, PQgetvalue(r, row, COL_SIGNING_KEY), keys, nkeys);
            if (sret == 0)
                c->signing |= LT_CLIENT_SIGN_KEY;
            else if (keys != NULL)
                lt_log(LT_LOG_WARN, "clients", "client %s: its signing key does not open (%s); its signed requests "
                       "fail", c->id, lt_strerror(sret));
        }
        if (lt_snap_index(s, i) != 0) {
            clients_free(cs);
            return LT_EINVAL;
        }
    }
    *out = cs;
    return 0;
}

/* A blocking connection as the runtime user, or NULL after filling `err`. */
int lt_clients_load(const char *conninfo, lt_clients_t **out, char *err, size_t errlen)
{
    return lt_clients_load_keyed(conninfo, NULL, 0, out, err, errlen);
}

int lt_clients_load_keyed(const char *conninfo, const lt_seal_key_t *keys, size_t nkeys, lt_clients_t **out, char *err,
                          size_t errlen)
{
    PGresult *r = NULL;
    int ret;
    lt_errf(err, errlen, "%s", "");
    *out = NULL;
    if (conninfo == NULL)
        return LT_EINVAL;
    PGconn *conn = lt_store_connect_blocking(conninfo, "latch-clients", err, errlen);
    if (conn == NULL)
        return LT_EUNAVAIL;
    r = PQexecParams(conn, lt_clients_load_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_store_query_error(r, conn, "loading clients", err, errlen);
        ret = LT_EIO;
        goto done;
    }
    ret = lt_clients_from_result_keyed(r, keys, nkeys, out);
    if (ret == LT_EINVAL) {
        lt_errf(err, errlen, "loading clients: unexpected row shape");
        ret = LT_EIO;
    }
done:
    PQclear(r);
    PQfinish(conn);
    return ret;
}

/* ---- holder -------------------------------------------------------------------------- */

/* The generic holder (base.h) speaks void *; calling the typed functions through a cast
 * function pointer would be undefined behaviour, hence these adapters. */
static void *holder_ref(void *cs)
{
    return lt_clients_ref(cs);
}

static void holder_unref(void *cs)
{
    lt_clients_unref(cs);
}

int lt_clients_holder_init(lt_clients_holder_t *h)
{
    return lt_holder_init(&h->h, holder_ref, holder_unref);
}

lt_clients_t *lt_clients_holder_get(lt_clients_holder_t *h)
{
    return lt_holder_get(&h->h);
}

void lt_clients_holder_set(lt_clients_holder_t *h, lt_clients_t *cs)
{
    lt_holder_set(&h->h, cs);
}

void lt_clients_holder_dispose(lt_clients_holder_t *h)
{
    if (h != NULL)
        lt_holder_dispose(&h->h);
}

/* ---- statements ------------------------------------------------------------------------ */

#define TEXT_ARRAY(n) "latch_client_text_array($" #n "::jsonb)"

lt_store_stmt_t lt_clients_stmt_create = {
    "clients.create",
    "SELECT code, body FROM latch_client_create($1::uuid, $2::uuid, $3, $4, $5, " TEXT_ARRAY(6) ", " TEXT_ARRAY(
        7) ", " TEXT_ARRAY(8) ", $9, $10, $11)",
    11, -1};
lt_store_stmt_t lt_clients_stmt_list = {
    "clients.list",
    "SELECT items, next_key FROM latch_client_list($1::uuid, $2::uuid, $3::bigint, $4::uuid, $5::integer)", 5, -1};
lt_store_stmt_t lt_clients_stmt_get = {"clients.get", "SELECT latch_client_get($1::uuid, $2)", 2, -1};
lt_store_stmt_t lt_clients_stmt_delete = {"clients.delete",
                                          "SELECT code, body FROM latch_client_delete($1::uuid, $2, $3, $4, $5)", 5, -1};
lt_store_stmt_t lt_clients_stmt_rotate_secret = {
    "clients.rotate_secret", "SELECT code, body FROM latch_client_rotate_secret($1::uuid, $2, $3, $4, $5, $6)", 6, -1};

lt_store_stmt_t lt_clients_stmt_signing_set = {
    "clients.signing_set",
    "SELECT code, body FROM latch_client_signing_key_set($1::uuid, $2, $3, $4, $5::boolean, $6, $7, $8)", 8, -1};
lt_store_stmt_t lt_clients_stmt_signing_delete = {
    "clients.signing_delete", "SELECT code, body FROM latch_client_signing_key_delete($1::uuid, $2, $3, $4, $5)", 5,
    -1};
lt_store_stmt_t lt_clients_stmt_signing_require = {
    "clients.signing_require",
    "SELECT code, body FROM latch_client_signing_require($1::uuid, $2, $3::boolean, $4, $5, $6)", 6, -1};

int lt_client_signing_key_new(const lt_seal_key_t *key, const char *client_id,
                              char secret[LT_CLIENT_SIGNING_KEY_LEN + 1],
                              char sealed_hex[LT_CLIENT_SIGNING_SEALED_HEX_LEN + 1])
{
    uint8_t raw[SECRET_RANDOM_BYTES], sealed[LT_SEAL_OVERHEAD + LT_CLIENT_SIGNING_KEY_LEN];
    char aad[sizeof(SIGNING_AAD) + LT_CLIENT_ID_LEN];
    int ret = 0;
    secret[0] = sealed_hex[0] = '\0';
    if (key == NULL || client_id == NULL || strlen(client_id) != LT_CLIENT_ID_LEN)
        return LT_EINVAL;
    if (lt_random(raw, sizeof(raw)) != 0) {
        ret = LT_EIO;
        goto done;
    }
    memcpy(secret, SIGNING_PREFIX, 4);
    secret[4 + lt_b64url_encode(secret + 4, raw, sizeof(raw))] = '\0';
    snprintf(aad, sizeof(aad), "%s%s", SIGNING_AAD, client_id);
    if (lt_seal(key, aad, strlen(aad), secret, LT_CLIENT_SIGNING_KEY_LEN, sealed) != 0) {
        ret = LT_EIO;
        goto done;
    }
    lt_hex_encode(sealed_hex, sealed, sizeof(sealed));
done:
    if (ret != 0)
        lt_wipe(secret, LT_CLIENT_SIGNING_KEY_LEN + 1);
    lt_wipe(raw, sizeof(raw));
    return ret;
}

int lt_clients_statements(void)
{
    lt_store_stmt_t *all[] = {&lt_clients_stmt_create,         &lt_clients_stmt_list,
                              &lt_clients_stmt_get,            &lt_clients_stmt_delete,
                              &lt_clients_stmt_rotate_secret,  &lt_clients_stmt_signing_set,
                              &lt_clients_stmt_signing_delete, &lt_clients_stmt_signing_require};
    static int registered; /* start-up only, one thread: see lt_store_stmt_register */
    if (registered)
        return 0;
    int ret = lt_store_stmt_register_each(all, sizeof(all) / sizeof(all[0]));
    registered = ret == 0;
    return ret;
}

/* ---- blocking administration (latchctl) --------------------------------------------------- */

/* The tenant's id (37 bytes) by name. @return 0, LT_ENOTFOUND, LT_EIO. */
static int tenant_id_of(PGconn *conn, const char *tenant, char id[LT_ADMIN_UUID_LEN + 1], char *err, size_t errlen)
{
    const char *params[] = {tenant};
    PGresult *r = PQexecParams(conn, "SELECT id FROM tenants WHERE name = $1", 1, NULL, params, NULL, NULL, 0);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_store_query_error(r, conn, "looking up the tenant", err, errlen);
        ret = LT_EIO;
    } else if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != LT_ADMIN_UUID_LEN) {
        lt_errf(err, errlen, "no tenant named %s", tenant);
        ret = LT_ENOTFOUND;
    } else {
        memcpy(id, PQgetvalue(r, 0, 0), LT_ADMIN_UUID_LEN + 1);
    }
    PQclear(r);
    return ret;
}

/* Runs a (code, body) statement; *body is the parsed document on "ok". */
static int run_write(PGconn *conn, const char *sql, int nparams, const char *const *params, const char *what,
                     json_t **body, char *err, size_t errlen)
{
    lt_admin_code_t code;
    const char *doc;
    int ret = 0;
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    *body = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_store_query_error(r, conn, what, err, errlen);
        ret = LT_EIO;
    } else if (lt_admin_result(r, &code, &doc) != 0) {
        lt_errf(err, errlen, "%s: unexpected result shape", what);
        ret = LT_EIO;
    } else if (code == LT_ADMIN_NOT_FOUND) {
        lt_errf(err, errlen, "%s: not found", what);
        ret = LT_ENOTFOUND;
    } else if (code != LT_ADMIN_OK || (*body = json_loads(doc, 0, NULL)) == NULL) {
        lt_errf(err, errlen, "%s: unexpected result", what);
        ret = LT_EIO;
    }
    PQclear(r);
    return ret;
}

int lt_clients_admin_create(const char *conninfo, const char *tenant, const char *name, const json_t *grant_types,
                            const json_t *scopes, const json_t *permissions, const char *actor, json_t **out,
                            char *err, size_t errlen)
{
    char tid[LT_ADMIN_UUID_LEN + 1], id[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    char *g = NULL, *s = NULL, *p = NULL;
    const char *why;
    PGconn *conn = NULL;
    json_t *doc = NULL;
    int ret;

    lt_errf(err, errlen, "%s", "");
    *out = NULL;
    if (conninfo == NULL || tenant == NULL || name == NULL || grant_types == NULL) {
        lt_errf(err, errlen, "invalid argument");
        return LT_EINVAL;
    }
    if ((why = lt_client_name_problem(name)) != NULL || lt_client_list_check(grant_types, LT_CLIENT_LIST_GRANTS, &why) ||
        (scopes != NULL && lt_client_list_check(scopes, LT_CLIENT_LIST_SCOPES, &why)) ||
        (permissions != NULL && lt_client_list_check(permissions, LT_CLIENT_LIST_PERMISSIONS, &why))) {
        lt_errf(err, errlen, "invalid client: %s", why);
        return LT_EINVAL;
    }
    g = json_dumps(grant_types, JSON_COMPACT);
    s = scopes != NULL ? json_dumps(scopes, JSON_COMPACT) : strdup("[]");
    p = permissions != NULL ? json_dumps(permissions, JSON_COMPACT) : strdup("[]");
    if (g == NULL || s == NULL || p == NULL) {
        ret = LT_ENOMEM;
        goto done;
    }
    if ((conn = lt_store_connect_blocking(conninfo, "latchctl-clients", err, errlen)) == NULL) {
        ret = LT_EUNAVAIL;
        goto done;
    }
    if ((ret = tenant_id_of(conn, tenant, tid, err, errlen)) != 0)
        goto done;
    if ((ret = lt_client_credentials_new(id, secret, hash)) != 0) {
        lt_errf(err, errlen, "no randomness for the client's credentials");
        goto done;
    }
    const char *params[] = {NULL, tid, id, hash, name, g, s, p, actor != NULL ? actor : "latchctl", NULL, NULL};
    if ((ret = run_write(conn, lt_clients_stmt_create.sql, 11, params, "creating the client", &doc, err, errlen)) != 0)
        goto done;
    if (json_object_set_new(doc, "client_secret", json_string(secret)) != 0) {
        ret = LT_ENOMEM;
        goto done;
    }
    *out = doc;
    doc = NULL;
done:
    lt_wipe(secret, sizeof(secret));
    json_decref(doc);
    free(g);
    free(s);
    free(p);
    PQfinish(conn);
    return ret;
}

int lt_clients_admin_list(const char *conninfo, const char *tenant, json_t **out, char *err, size_t errlen)
{
    char tid[LT_ADMIN_UUID_LEN + 1];
    PGresult *r = NULL;
    int ret;
    lt_errf(err, errlen, "%s", "");
    *out = NULL;
    if (conninfo == NULL || tenant == NULL)
        return LT_EINVAL;
    PGconn *conn = lt_store_connect_blocking(conninfo, "latchctl-clients", err, errlen);
    if (conn == NULL)
        return LT_EUNAVAIL;
    if ((ret = tenant_id_of(conn, tenant, tid, err, errlen)) != 0)
        goto done;
    const char *params[] = {tid};
    r = PQexecParams(conn,
                     "SELECT coalesce(jsonb_agg(latch_client_json(c) ORDER BY c.created_at, c.id), '[]') "
                     "FROM oauth_clients c WHERE c.tenant_id = $1::uuid",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        lt_store_query_error(r, conn, "listing clients", err, errlen);
        ret = LT_EIO;
        goto done;
    }
    if ((*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL)) == NULL)
        ret = LT_ENOMEM;
done:
    PQclear(r);
    PQfinish(conn);
    return ret;
}

int lt_clients_admin_delete(const char *conninfo, const char *tenant, const char *client, const char *actor,
                            char *err, size_t errlen)
{
    char tid[LT_ADMIN_UUID_LEN + 1];
    json_t *doc = NULL;
    int ret;
    lt_errf(err, errlen, "%s", "");
    if (conninfo == NULL || tenant == NULL || client == NULL)
        return LT_EINVAL;
    PGconn *conn = lt_store_connect_blocking(conninfo, "latchctl-clients", err, errlen);
    if (conn == NULL)
        return LT_EUNAVAIL;
    if ((ret = tenant_id_of(conn, tenant, tid, err, errlen)) != 0)
        goto done;
    const char *params[] = {tid, client, actor != NULL ? actor : "latchctl", NULL, NULL};
    ret = run_write(conn, lt_clients_stmt_delete.sql, 5, params, "deleting the client", &doc, err, errlen);
    if (ret == LT_ENOTFOUND)
        lt_errf(err, errlen, "no client %s in tenant %s", client, tenant);
done:
    json_decref(doc);
    PQfinish(conn);
    return ret;
}
