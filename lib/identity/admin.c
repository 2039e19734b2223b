/*
 * admin.c: statements of the admin surface, their row decoding, the shared input rules and
 * the blocking bootstrap (see admin.h; sql/0005_admin.sql holds the functions called here).
 *
 * The statements are thin: each calls one SQL function, so a multi-step change runs in one
 * round trip and one transaction, with its audit event. Casts live here (text parameters
 * in, typed function arguments out) so malformed text never reaches a function; the
 * handlers validate uuids and numbers before they bind them anyway, because a failed cast
 * is an error result (22P02), not an answer.
 *
 * Threading: pure helpers, safe anywhere; lt_admin_bootstrap blocks.
 */
#include "identity/admin.h"

#include "identity/auth.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

lt_store_stmt_t lt_admin_stmts[LT_ADMIN_NSTMTS] = {
    [LT_ADMIN_TENANT_CREATE] = {"admin.tenant_create",
                                "SELECT code, body FROM latch_admin_tenant_create($1, $2, $3, $4, $5)", 5, 0},
    [LT_ADMIN_TENANT_GET] = {"admin.tenant_get", "SELECT latch_admin_tenant_get($1::uuid, $2::uuid)", 2, 0},
    [LT_ADMIN_TENANT_LIST] = {"admin.tenant_list",
                              "SELECT items, next_key FROM latch_admin_tenant_list($1::uuid, $2::bigint, $3::uuid, "
                              "$4::integer)",
                              4, 0},
    /* scope, id, display_name (NULL: keep), settings patch (jsonb, NULL: none), cors_origins
     * (jsonb array replacing the list, NULL: keep), actor, ip, request_id -> the tenant, or
     * NULL when not in scope (sql/0015) */
    [LT_ADMIN_TENANT_PATCH] = {"admin.tenant_patch",
                               "SELECT latch_admin_tenant_patch($1::uuid, $2::uuid, $3, $4::jsonb, $5::jsonb, $6, $7, "
                               "$8)",
                               8, 0},
    [LT_ADMIN_USER_CREATE] = {"admin.user_create",
                              "SELECT code, body FROM latch_admin_user_create($1::uuid, $2::uuid, $3, $4, $5::jsonb, "
                              "$6::jsonb, $7::boolean, $8, $9, $10)",
                              10, 0},
    [LT_ADMIN_USER_GET] = {"admin.user_get", "SELECT latch_admin_user_get($1::uuid, $2::uuid)", 2, 0},
    [LT_ADMIN_USER_LIST] = {"admin.user_list",
                            "SELECT items, next_key FROM latch_admin_user_list($1::uuid, $2::uuid, $3, $4::bigint, "
                            "$5::uuid, $6::integer)",
                            6, 0},
    [LT_ADMIN_USER_PATCH] = {"admin.user_patch",
                             "SELECT code, body FROM latch_admin_user_patch($1::uuid, $2::uuid, $3::jsonb, $4, $5, $6)",
                             6, 0},
    [LT_ADMIN_USER_ACTION] = {"admin.user_action",
                              "SELECT code, body FROM latch_admin_user_action($1::uuid, $2::uuid, $3, $4, $5, $6)", 6,
                              0},
    [LT_ADMIN_USER_RESET] = {"admin.user_reset",
                             "SELECT code, body FROM latch_admin_user_force_reset($1::uuid, $2::uuid, "
                             "decode($3, 'hex'), $4, $5::integer, $6, $7, $8)",
                             8, 0},
    /* 0004's check that a bearer's session is live and its user active. */
    [LT_ADMIN_CALLER_LIVE] = {"admin.caller_live", "SELECT latch_caller_live($1::uuid, $2::uuid, $3::uuid)", 3, 0},
};

int lt_admin_statements(void)
{
    return lt_store_stmt_register(lt_admin_stmts, LT_ADMIN_NSTMTS);
}

/* ---- rows ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    lt_admin_code_t code;
} codes[] = {
    {"ok", LT_ADMIN_OK},
    {"not_found", LT_ADMIN_NOT_FOUND},
    {"conflict", LT_ADMIN_CONFLICT},
    {"email_taken", LT_ADMIN_EMAIL_TAKEN},
    {"forbidden", LT_ADMIN_FORBIDDEN},
    {"too_large", LT_ADMIN_TOO_LARGE},
};

int lt_admin_result(const struct pg_result *res, lt_admin_code_t *code, const char **body)
{
    PGresult *r = (PGresult *)res;
    *body = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 2 ||
        PQgetisnull(r, 0, 0))
        return LT_EINVAL;
    const char *name = PQgetvalue(r, 0, 0);
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(name, codes[i].name) != 0)
            continue;
        if (codes[i].code == LT_ADMIN_OK) {
            if (PQgetisnull(r, 0, 1))
                return LT_EINVAL;
            *body = PQgetvalue(r, 0, 1);
        }
        *code = codes[i].code;
        return 0;
    }
    return LT_EINVAL;
}

int lt_admin_doc(const struct pg_result *res, const char **doc)
{
    PGresult *r = (PGresult *)res;
    *doc = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 1 || PQntuples(r) > 1)
        return LT_EINVAL;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        *doc = PQgetvalue(r, 0, 0);
    return 0;
}

int lt_admin_page(const struct pg_result *res, const char **items, const char **next_key)
{
    PGresult *r = (PGresult *)res;
    *items = *next_key = NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 2 ||
        PQgetisnull(r, 0, 0))
        return LT_EINVAL;
    *items = PQgetvalue(r, 0, 0);
    if (!PQgetisnull(r, 0, 1))
        *next_key = PQgetvalue(r, 0, 1);
    return 0;
}

/* ---- input rules ---------------------------------------------------------------------- */

int lt_admin_tenant_name_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 1 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
        if (!ok)
            return 0;
    }
    return 1;
}

int lt_admin_email_check(const char *in, char *out, size_t cap, const char **why)
{
    static const char ws[] = " \t";
    *why = "must be an email address";
    if (in == NULL || out == NULL || cap < LT_ADMIN_EMAIL_MAX + 1)
        return LT_EINVAL;
    const char *b = in + strspn(in, ws);
    size_t n = strlen(b);
    while (n > 0 && strchr(ws, b[n - 1]) != NULL)
        n--;
    if (n < 3 || n > LT_ADMIN_EMAIL_MAX) {
        *why = "must be 3 to 320 bytes long";
        return LT_EINVAL;
    }
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        /* Any whitespace or control byte is a typo or an injection attempt, never an address
         * a mailer would accept unquoted. Bytes >= 0x80 are UTF-8 (the JSON parser checked). */
        if (c <= 0x20 || c == 0x7f) {
            *why = "must not contain whitespace or control characters";
            return LT_EINVAL;
        }
        if (c == '@') {
            if (at != NULL) {
                *why = "must contain exactly one '@'";
                return LT_EINVAL;
            }
            at = b + i;
        }
    }
    if (at == NULL) {
        *why = "must contain exactly one '@'";
        return LT_EINVAL;
    }
    if (at == b || at == b + n - 1) {
        *why = "must have a local part and a domain around the '@'";
        return LT_EINVAL;
    }
    memcpy(out, b, n);
    out[n] = '\0';
    *why = NULL;
    return 0;
}

/* "<1..19 digits>:<uuid>", value within int64 (the SQL side casts it to bigint). */
static int key_ok(const char *key, size_t n)
{
    const char *colon = memchr(key, ':', n);
    size_t digits = colon != NULL ? (size_t)(colon - key) : 0;
    if (digits < 1 || digits > 19 || n != digits + 1 + LT_ADMIN_UUID_LEN)
        return 0;
    for (size_t i = 0; i < digits; i++)
        if (key[i] < '0' || key[i] > '9')
            return 0;
    if (digits == 19 && memcmp(key, "9223372036854775807", 19) > 0)
        return 0;
    char id[LT_ADMIN_UUID_LEN + 1];
    memcpy(id, colon + 1, LT_ADMIN_UUID_LEN);
    id[LT_ADMIN_UUID_LEN] = '\0';
    return lt_auth_uuid_ok(id);
}

int lt_admin_cursor_encode(const char *key, char *out, size_t cap)
{
    size_t n = key != NULL ? strlen(key) : 0;
    if (!key_ok(key, n))
        return LT_EINVAL;
    if (cap < LT_ADMIN_CURSOR_MAX + 1)
        return LT_ERANGE;
    size_t len = lt_b64url_encode(out, key, n);
    out[len] = '\0';
    return 0;
}

int lt_admin_cursor_decode(const char *cursor, char us[20], char id[LT_ADMIN_UUID_LEN + 1])
{
    char key[LT_ADMIN_KEY_MAX + 1];
    size_t n = cursor != NULL ? strlen(cursor) : 0;
    /* Only what encode produces: unpadded base64url (the decoder alone would also take '+',
     * '/' and '=', and then two spellings would name one page). */
    if (n == 0 || n > LT_ADMIN_CURSOR_MAX || strspn(cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                            "0123456789-_") != n)
        return LT_EINVAL;
    long len = lt_b64url_decode(key, sizeof(key) - 1, cursor, n);
    if (len <= 0 || !key_ok(key, (size_t)len))
        return LT_EINVAL;
    const char *colon = memchr(key, ':', (size_t)len);
    size_t digits = (size_t)(colon - key);
    memcpy(us, key, digits);
    us[digits] = '\0';
    memcpy(id, colon + 1, LT_ADMIN_UUID_LEN);
    id[LT_ADMIN_UUID_LEN] = '\0';
    return 0;
}

/* ---- bootstrap -------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) LT_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* Server messages end with a newline; the caller adds its own. */
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

static const char bootstrap_sql[] = "SELECT o_status, o_tenant_id, o_user_id FROM latch_bootstrap($1, $2, $3, $4, "
                                    "$5::boolean, $6)";

int lt_admin_bootstrap(const char *conninfo, const lt_admin_bootstrap_t *in, char tenant_id[LT_ADMIN_UUID_LEN + 1],
                       char user_id[LT_ADMIN_UUID_LEN + 1], char *err, size_t errlen)
{
    const char *const keys[] = {"dbname", "client_encoding", "application_name", NULL};
    const char *const vals[] = {conninfo, "UTF8", "latchctl-bootstrap", NULL};
    PGconn *conn = NULL;
    PGresult *r = NULL;
    int ret = 0;

    set_err(err, errlen, "%s", "");
    tenant_id[0] = user_id[0] = '\0';
    if (conninfo == NULL || in == NULL || in->tenant == NULL || in->email == NULL || in->phc == NULL) {
        set_err(err, errlen, "invalid argument");
        return LT_EINVAL;
    }
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        set_err(err, errlen, "cannot connect to the database: %s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
        ret = LT_EUNAVAIL;
        goto done;
    }
    const char *params[6] = {in->tenant, in->display_name, in->email, in->phc, in->global ? "true" : "false",
                             in->actor != NULL ? in->actor : "latchctl"};
    r = PQexecParams(conn, bootstrap_sql, 6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* The primary message only: a constraint violation's DETAIL would quote the row,
         * password hash included. */
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        set_err(err, errlen, "bootstrap failed: %s", msg != NULL ? msg : PQerrorMessage(conn));
        ret = LT_EIO;
        goto done;
    }
    if (PQntuples(r) != 1 || PQnfields(r) != 3 || PQgetisnull(r, 0, 0) || PQgetisnull(r, 0, 1) ||
        PQgetlength(r, 0, 1) != LT_ADMIN_UUID_LEN) {
        set_err(err, errlen, "bootstrap: unexpected result shape");
        ret = LT_EIO;
        goto done;
    }
    memcpy(tenant_id, PQgetvalue(r, 0, 1), LT_ADMIN_UUID_LEN + 1);
    if (strcmp(PQgetvalue(r, 0, 0), "exists") == 0) {
        set_err(err, errlen, "tenant %s already bootstrapped", in->tenant);
        ret = LT_EEXIST;
        goto done;
    }
    if (PQgetisnull(r, 0, 2) || PQgetlength(r, 0, 2) != LT_ADMIN_UUID_LEN) {
        set_err(err, errlen, "bootstrap: unexpected result shape");
        ret = LT_EIO;
        goto done;
    }
    memcpy(user_id, PQgetvalue(r, 0, 2), LT_ADMIN_UUID_LEN + 1);
done:
    PQclear(r);
    PQfinish(conn);
    return ret;
}
