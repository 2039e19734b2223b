/*
 * identity/auth.c: statements, row decoding and opaque tokens of the sign-in flows (see
 * auth.h; sql/0004_auth.sql holds the functions and their reasoning).
 *
 * Statement parameters are listed next to each statement. Parameters the functions
 * declare as uuid or integer are passed as text and typed by the function's signature.
 */
#include "identity/auth.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- opaque tokens ------------------------------------------------------------------- */

static const char *const prefixes[] = {[LT_AUTH_TOKEN_REFRESH] = "lt_rt_", [LT_AUTH_TOKEN_RESET] = "lt_pr_",
                                      [LT_AUTH_TOKEN_MFA] = "lt_mf_"};

static int sha256_hex(const char *s, size_t n, char hex[LT_AUTH_HASH_HEX_LEN + 1])
{
    uint8_t md[32];
    if (lt_sha256(s, n, md) != 0)
        return LT_EIO;
    lt_hex_encode(hex, md, sizeof(md));
    return 0;
}

int lt_auth_token_new(lt_auth_token_kind_t kind, char token[LT_AUTH_TOKEN_LEN + 1],
                      char hash_hex[LT_AUTH_HASH_HEX_LEN + 1])
{
    unsigned char raw[32];
    token[0] = hash_hex[0] = '\0';
    if (lt_random(raw, sizeof(raw)) != 0)
        return LT_EIO;
    memcpy(token, prefixes[kind], LT_AUTH_TOKEN_PREFIX_LEN);
    size_t n = lt_b64url_encode(token + LT_AUTH_TOKEN_PREFIX_LEN, raw, sizeof(raw));
    token[LT_AUTH_TOKEN_PREFIX_LEN + n] = '\0';
    lt_wipe(raw, sizeof(raw));
    if (sha256_hex(token, LT_AUTH_TOKEN_LEN, hash_hex) != 0) {
        lt_wipe(token, LT_AUTH_TOKEN_LEN);
        token[0] = '\0';
        return LT_EIO;
    }
    return 0;
}

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int lt_auth_token_hash(lt_auth_token_kind_t kind, const char *token, size_t n, char hash_hex[LT_AUTH_HASH_HEX_LEN + 1])
{
    hash_hex[0] = '\0';
    if (token == NULL || n != LT_AUTH_TOKEN_LEN || memcmp(token, prefixes[kind], LT_AUTH_TOKEN_PREFIX_LEN) != 0)
        return LT_EINVAL;
    for (size_t i = LT_AUTH_TOKEN_PREFIX_LEN; i < n; i++)
        if (!b64url_char((unsigned char)token[i]))
            return LT_EINVAL;
    return sha256_hex(token, n, hash_hex) == 0 ? 0 : LT_EINVAL;
}

int lt_auth_uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        unsigned char c = (unsigned char)s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* ---- sealed successors --------------------------------------------------------------- */

#define SUCCESSOR_AAD "refresh_successor:"
#define SEALED_LEN (LT_AUTH_TOKEN_LEN + LT_SEAL_OVERHEAD)

static int successor_aad(const char *parent_hash, char aad[sizeof(SUCCESSOR_AAD) + LT_AUTH_HASH_HEX_LEN])
{
    if (parent_hash == NULL || strlen(parent_hash) != LT_AUTH_HASH_HEX_LEN)
        return LT_EINVAL;
    memcpy(aad, SUCCESSOR_AAD, sizeof(SUCCESSOR_AAD) - 1);
    memcpy(aad + sizeof(SUCCESSOR_AAD) - 1, parent_hash, LT_AUTH_HASH_HEX_LEN + 1);
    return 0;
}

static int hex_nibble(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int lt_auth_successor_seal(const lt_seal_key_t *key, const char *parent_hash, const char *token,
                           char out[LT_AUTH_SEALED_HEX_LEN + 1])
{
    char aad[sizeof(SUCCESSOR_AAD) + LT_AUTH_HASH_HEX_LEN];
    uint8_t sealed[SEALED_LEN];
    out[0] = '\0';
    if (key == NULL || token == NULL || strlen(token) != LT_AUTH_TOKEN_LEN || successor_aad(parent_hash, aad) != 0)
        return LT_EIO;
    if (lt_seal(key, aad, strlen(aad), token, LT_AUTH_TOKEN_LEN, sealed) != 0)
        return LT_EIO;
    lt_hex_encode(out, sealed, sizeof(sealed));
    return 0;
}

int lt_auth_successor_open(const lt_seal_key_t *keys, size_t nkeys, const char *parent_hash, const char *hex,
                           char token[LT_AUTH_TOKEN_LEN + 1])
{
    char aad[sizeof(SUCCESSOR_AAD) + LT_AUTH_HASH_HEX_LEN];
    uint8_t sealed[SEALED_LEN];
    char check[LT_AUTH_HASH_HEX_LEN + 1];
    size_t n = 0;
    token[0] = '\0';
    if (hex == NULL || strlen(hex) != LT_AUTH_SEALED_HEX_LEN || successor_aad(parent_hash, aad) != 0)
        return LT_EINVAL;
    for (size_t i = 0; i < SEALED_LEN; i++) {
        int hi = hex_nibble((unsigned char)hex[2 * i]), lo = hex_nibble((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return LT_EINVAL;
        sealed[i] = (uint8_t)(hi << 4 | lo);
    }
    int ret = lt_unseal(keys, nkeys, aad, strlen(aad), sealed, sizeof(sealed), (uint8_t *)token, &n);
    if (ret != 0)
        return ret == LT_ENOTFOUND ? LT_ENOTFOUND : LT_EINVAL;
    token[n] = '\0';
    if (n != LT_AUTH_TOKEN_LEN || lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, token, n, check) != 0) {
        lt_wipe(token, LT_AUTH_TOKEN_LEN + 1);
        token[0] = '\0';
        return LT_EINVAL;
    }
    return 0;
}

/* ---- statements ---------------------------------------------------------------------- */

#define LIMITS "$4, $5, $6, $7, $8, $9, $10, $11"

/* tenant, email, ip, <8 limits>, request_id */
lt_store_stmt_t lt_auth_stmt_login_begin = {
    .name = "auth.login_begin",
    .sql = "SELECT o_outcome, o_retry_after, o_user_id, o_tenant_id, o_status, o_phc, o_reset_required"
           " FROM latch_login_begin($1, $2, $3, " LIMITS ", $12)",
    .nparams = 12,
};
/* tenant, email, user_id, tenant_id, ip, request_id, reason */
lt_store_stmt_t lt_auth_stmt_login_fail = {
    .name = "auth.login_fail",
    .sql = "SELECT latch_login_fail($1, $2, $3, $4, $5, $6, $7)",
    .nparams = 7,
};
/* Login and refresh rows share one shape (lt_auth_decode_session). */
#define SESSION_COLS "o_session_id, o_user_id, o_tenant_id, o_email, o_roles, o_amr, o_acr, o_auth_time"

/* user_id, tenant_id, tenant, email, ip, user_agent, idle_ttl, max_ttl, access_ttl, rt_hash,
 * old_phc, new_phc (NULL: no upgrade), request_id, mfa token hash, challenge ttl, enrolment
 * ttl. Status 'rotated' (a session), 'mfa_required' or 'enrollment_required' (sql/0010). */
lt_store_stmt_t lt_auth_stmt_login_succeed = {
    .name = "auth.login_succeed",
    .sql = "SELECT CASE o_status WHEN 'ok' THEN 'rotated' ELSE o_status END, o_session_id, NULL::uuid, NULL::uuid,"
           " o_email, o_roles, NULL::jsonb, NULL::text, o_auth_time, NULL::text"
           " FROM latch_login_succeed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    .nparams = 16,
};
/* rt_hash, new_hash, new_sealed (hex), idle_ttl, access_ttl, grace, tenant_id (NULL: any),
 * ip, request_id */
lt_store_stmt_t lt_auth_stmt_refresh = {
    .name = "auth.refresh",
    .sql = "SELECT o_status, " SESSION_COLS ", encode(o_successor_sealed, 'hex')"
           " FROM latch_refresh($1, $2, decode($3, 'hex'), $4, $5, $6, $7, $8, $9)",
    .nparams = 9,
};
/* token_hash, tenant_id (NULL: any) -> jsonb or NULL */
lt_store_stmt_t lt_auth_stmt_refresh_introspect = {
    .name = "auth.refresh_introspect",
    .sql = "SELECT latch_refresh_token_introspect($1, $2)",
    .nparams = 2,
};
/* token_hash, tenant_id (NULL: any), actor, ip, request_id -> boolean */
lt_store_stmt_t lt_auth_stmt_refresh_revoke = {
    .name = "auth.refresh_revoke",
    .sql = "SELECT latch_refresh_token_revoke($1, $2, $3, $4, $5)",
    .nparams = 5,
};
/* The bearer's session_id, user_id, tenant_id start every /v1/me statement. */
lt_store_stmt_t lt_auth_stmt_me = {
    .name = "auth.me",
    .sql = "SELECT latch_me($1, $2, $3)",
    .nparams = 3,
};
lt_store_stmt_t lt_auth_stmt_session_list = {
    .name = "auth.session_list",
    .sql = "SELECT latch_session_list($1, $2, $3)",
    .nparams = 3,
};
/* sid, user_id, tenant_id, target session id, ip, request_id */
lt_store_stmt_t lt_auth_stmt_session_revoke = {
    .name = "auth.session_revoke",
    .sql = "SELECT latch_session_revoke($1, $2, $3, $4, $5, $6)",
    .nparams = 6,
};
/* sid, user_id, tenant_id, ip, request_id */
lt_store_stmt_t lt_auth_stmt_logout = {
    .name = "auth.logout",
    .sql = "SELECT latch_logout($1, $2, $3, $4, $5)",
    .nparams = 5,
};
lt_store_stmt_t lt_auth_stmt_logout_all = {
    .name = "auth.logout_all",
    .sql = "SELECT latch_logout_all($1, $2, $3, $4, $5)",
    .nparams = 5,
};
/* sid, user_id, tenant_id, ip, <8 limits>, request_id */
lt_store_stmt_t lt_auth_stmt_password_change_begin = {
    .name = "auth.password_change_begin",
    .sql = "SELECT o_outcome, o_retry_after, o_phc, o_email"
           " FROM latch_password_change_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    .nparams = 13,
};
/* user_id, tenant_id, ip, request_id */
lt_store_stmt_t lt_auth_stmt_password_change_failed = {
    .name = "auth.password_change_failed",
    .sql = "SELECT latch_password_change_failed($1, $2, $3, $4)",
    .nparams = 4,
};
/* sid, user_id, tenant_id, phc, ip, request_id */
lt_store_stmt_t lt_auth_stmt_password_change = {
    .name = "auth.password_change",
    .sql = "SELECT latch_password_change($1, $2, $3, $4, $5, $6)",
    .nparams = 6,
};
/* tenant, email, token, token_hash, ttl, ip, request_id */
lt_store_stmt_t lt_auth_stmt_reset_request = {
    .name = "auth.reset_request",
    .sql = "SELECT latch_password_reset_request($1, $2, $3, $4, $5, $6, $7)",
    .nparams = 7,
};
/* token_hash */
lt_store_stmt_t lt_auth_stmt_reset_peek = {
    .name = "auth.reset_peek",
    .sql = "SELECT latch_password_reset_peek($1)",
    .nparams = 1,
};
/* token_hash, phc, ip, request_id */
lt_store_stmt_t lt_auth_stmt_reset_confirm = {
    .name = "auth.reset_confirm",
    .sql = "SELECT latch_password_reset_confirm($1, $2, $3, $4)",
    .nparams = 4,
};

int lt_auth_statements(void)
{
    lt_store_stmt_t *const stmts[] = {
        &lt_auth_stmt_login_begin,       &lt_auth_stmt_login_fail,     &lt_auth_stmt_login_succeed,
        &lt_auth_stmt_refresh,           &lt_auth_stmt_me,             &lt_auth_stmt_session_list,
        &lt_auth_stmt_session_revoke,    &lt_auth_stmt_logout,         &lt_auth_stmt_logout_all,
        &lt_auth_stmt_password_change_begin, &lt_auth_stmt_password_change_failed, &lt_auth_stmt_password_change,
        &lt_auth_stmt_reset_request,     &lt_auth_stmt_reset_peek,     &lt_auth_stmt_reset_confirm,
        &lt_auth_stmt_refresh_introspect, &lt_auth_stmt_refresh_revoke,
    };
    return lt_store_stmt_register_each(stmts, sizeof(stmts) / sizeof(stmts[0]));
}

int lt_auth_maintain(struct pg_conn *c, int grace_s, char *err, size_t errlen)
{
    char grace[12];
    const char *p[] = {grace};
    snprintf(grace, sizeof(grace), "%d", grace_s < 0 ? 0 : grace_s);
    PGresult *res = PQexecParams(c, "SELECT latch_refresh_clear_successors($1)", 1, NULL, p, NULL, NULL, 0);
    int ret = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ret = PQstatus(c) != CONNECTION_OK ? LT_EUNAVAIL : LT_EIO;
        lt_errf(err, errlen, "latch_refresh_clear_successors: %s", PQerrorMessage(c));
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
        lt_log(LT_LOG_DEBUG, "auth", "cleared %s sealed refresh successors", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return ret;
}

void lt_auth_limits_params(const lt_auth_limits_t *l, char buf[LT_AUTH_LIMITS_NPARAMS][12],
                           const char *out[LT_AUTH_LIMITS_NPARAMS])
{
    const int v[LT_AUTH_LIMITS_NPARAMS] = {l->threshold,      l->window,   l->duration, l->acct_threshold,
                                           l->acct_window,    l->acct_max_delay, l->ip_limit, l->ip_window};
    for (int i = 0; i < LT_AUTH_LIMITS_NPARAMS; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%d", v[i]);
        out[i] = buf[i];
    }
}

/* ---- rows ---------------------------------------------------------------------------- */

static const char *col(const PGresult *res, int c)
{
    return PQgetisnull(res, 0, c) ? NULL : PQgetvalue(res, 0, c);
}

static int parse_gate(const char *s, lt_auth_gate_t *out)
{
    static const struct {
        const char *name;
        lt_auth_gate_t gate;
    } names[] = {{"ok", LT_AUTH_GATE_OK},
                 {"locked", LT_AUTH_GATE_LOCKED},
                 {"throttled", LT_AUTH_GATE_THROTTLED},
                 {"ip_limited", LT_AUTH_GATE_IP_LIMITED},
                 {"unauthorized", LT_AUTH_GATE_UNAUTHORIZED}};
    for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].gate;
            return 0;
        }
    }
    return LT_EINVAL;
}

static int parse_retry(const char *s)
{
    long v = s != NULL ? strtol(s, NULL, 10) : 0;
    return v < 1 ? 1 : v > 86400 * 7 ? 86400 * 7 : (int)v;
}

int lt_auth_decode_login(const struct pg_result *res, lt_auth_login_t *out)
{
    memset(out, 0, sizeof(*out));
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 7 || parse_gate(col(res, 0), &out->gate) != 0)
        return LT_EINVAL;
    if (out->gate != LT_AUTH_GATE_OK) {
        out->retry_after = parse_retry(col(res, 1));
        return 0;
    }
    out->user_id = col(res, 2);
    out->tenant_id = col(res, 3);
    out->status = col(res, 4);
    out->phc = col(res, 5);
    const char *rr = col(res, 6);
    out->reset_required = rr != NULL && rr[0] == 't';
    if (out->user_id != NULL && (out->tenant_id == NULL || out->status == NULL))
        return LT_EINVAL;
    return 0;
}

static int parse_refresh(const char *s, lt_auth_refresh_t *out)
{
    static const struct {
        const char *name;
        lt_auth_refresh_t status;
    } names[] = {{"rotated", LT_AUTH_REFRESH_OK},
                 {"repeat", LT_AUTH_REFRESH_REPEAT},
                 {"reuse", LT_AUTH_REFRESH_REUSE},
                 {"invalid", LT_AUTH_REFRESH_INVALID},
                 {"mfa_required", LT_AUTH_LOGIN_MFA_REQUIRED},
                 {"enrollment_required", LT_AUTH_LOGIN_ENROLL_REQUIRED},
                 {"unauthorized", LT_AUTH_SESSION_UNAUTHORIZED},
                 {"not_found", LT_AUTH_SESSION_NOT_FOUND}};
    for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].status;
            return 0;
        }
    }
    return LT_EINVAL;
}

int lt_auth_decode_session(const struct pg_result *res, lt_auth_session_t *out)
{
    memset(out, 0, sizeof(*out));
    if (res == NULL || PQnfields(res) != 10)
        return LT_EINVAL;
    if (PQntuples(res) == 0)
        return LT_ENOTFOUND;
    if (PQntuples(res) != 1 || parse_refresh(col(res, 0), &out->status) != 0)
        return LT_EINVAL;
    out->session_id = col(res, 1);
    out->user_id = col(res, 2);
    out->tenant_id = col(res, 3);
    out->email = col(res, 4);
    out->roles = col(res, 5);
    out->amr = col(res, 6);
    out->acr = col(res, 7);
    const char *at = col(res, 8);
    out->successor_sealed = col(res, 9);
    if (out->status != LT_AUTH_REFRESH_OK && out->status != LT_AUTH_REFRESH_REPEAT)
        return 0;
    /* OK without any session field: a factor confirmed by a caller who has a session already. */
    if (out->status == LT_AUTH_REFRESH_OK && out->session_id == NULL && out->roles == NULL && at == NULL)
        return 0;
    if (out->session_id == NULL || out->roles == NULL || at == NULL ||
        (out->status == LT_AUTH_REFRESH_REPEAT && out->successor_sealed == NULL))
        return LT_EINVAL;
    out->auth_time = strtoll(at, NULL, 10);
    return 0;
}

int lt_auth_decode_pwchange(const struct pg_result *res, lt_auth_pwchange_t *out)
{
    memset(out, 0, sizeof(*out));
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 4 || parse_gate(col(res, 0), &out->gate) != 0)
        return LT_EINVAL;
    if (out->gate != LT_AUTH_GATE_OK) {
        out->retry_after = parse_retry(col(res, 1));
        return 0;
    }
    out->phc = col(res, 2);
    out->email = col(res, 3);
    return out->email != NULL ? 0 : LT_EINVAL;
}

const char *lt_auth_value(const struct pg_result *res)
{
    if (res == NULL || PQntuples(res) < 1 || PQnfields(res) < 1)
        return NULL;
    return col(res, 0);
}

int lt_auth_value_true(const struct pg_result *res)
{
    const char *v = lt_auth_value(res);
    return v != NULL && v[0] == 't';
}
