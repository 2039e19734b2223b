/*
 * mfa/factors.c: statements, rows, sealed secrets and code checks of second factors (see
 * factors.h; sql/0010_mfa.sql holds the functions and their reasoning).
 *
 * Statement parameters are listed next to each statement; the limits are the eight of
 * lt_auth_limits_params (threshold, window, duration, acct_threshold, acct_window,
 * acct_max_delay, ip_limit, ip_window). Statements ending in a session return the shape
 * of identity/auth's session rows (lt_auth_decode_session): status, session_id, user_id,
 * tenant_id, email, roles, amr, acr, auth_time, and a NULL in place of a sealed successor.
 */
#include "mfa/factors.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_ROW "o_status, o_session_id, o_user_id, o_tenant_id, o_email, o_roles, o_amr, o_acr, o_auth_time, NULL::text"

/* sid, user_id, tenant_id, enroll_hash (NULL: the session), factor_id, label, sealed hex,
 * max active factors, ip, request_id -> jsonb {status, email, issuer, algorithm, digits, period} */
lt_store_stmt_t lt_mfa_stmt_enroll = {
    .name = "mfa.enroll",
    .sql = "SELECT latch_mfa_totp_enroll($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    .nparams = 10,
};
/* sid, user_id, tenant_id, enroll_hash, factor_id, ip, <8 limits>, request_id */
lt_store_stmt_t lt_mfa_stmt_factor_begin = {
    .name = "mfa.factor_begin",
    .sql = "SELECT o_outcome, o_retry_after, o_user_id, o_tenant_id, NULL::integer, o_factor"
           " FROM latch_mfa_factor_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    .nparams = 15,
};
/* sid, user_id, tenant_id, enroll_hash, factor_id, step, recovery MACs (text[]), ip,
 * user_agent, idle_ttl, max_ttl, access_ttl, rt_hash, request_id -> session row */
lt_store_stmt_t lt_mfa_stmt_factor_confirm = {
    .name = "mfa.factor_confirm",
    .sql = "SELECT " SESSION_ROW
           " FROM latch_mfa_factor_confirm($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    .nparams = 14,
};
/* challenge hash, ip, max attempts, <8 limits>, request_id */
lt_store_stmt_t lt_mfa_stmt_challenge_begin = {
    .name = "mfa.challenge_begin",
    .sql = "SELECT o_outcome, o_retry_after, o_user_id, o_tenant_id, o_attempts_left, o_factors"
           " FROM latch_mfa_challenge_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    .nparams = 12,
};
/* challenge hash, factor_id (NULL: recovery code), step, recovery MACs (text[], NULL for
 * TOTP), ip, user_agent, idle_ttl, max_ttl, access_ttl, rt_hash, request_id -> session row */
lt_store_stmt_t lt_mfa_stmt_challenge_complete = {
    .name = "mfa.challenge_complete",
    .sql = "SELECT " SESSION_ROW " FROM latch_mfa_challenge_complete($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    .nparams = 11,
};
/* user_id, tenant_id, context (login, step_up, enrollment), method, ip, request_id */
lt_store_stmt_t lt_mfa_stmt_failed = {
    .name = "mfa.failed",
    .sql = "SELECT latch_mfa_failed($1, $2, $3, $4, $5, $6)",
    .nparams = 6,
};
/* sid, user_id, tenant_id, ip, <8 limits>, request_id */
lt_store_stmt_t lt_mfa_stmt_stepup_begin = {
    .name = "mfa.stepup_begin",
    .sql = "SELECT o_outcome, o_retry_after, NULL::uuid, NULL::uuid, NULL::integer, o_factors"
           " FROM latch_mfa_stepup_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    .nparams = 13,
};
/* sid, user_id, tenant_id, factor_id, step, access_ttl, ip, request_id -> session row */
lt_store_stmt_t lt_mfa_stmt_stepup = {
    .name = "mfa.stepup",
    .sql = "SELECT " SESSION_ROW " FROM latch_mfa_stepup($1, $2, $3, $4, $5, $6, $7, $8)",
    .nparams = 8,
};
/* sid, user_id, tenant_id -> jsonb or NULL */
lt_store_stmt_t lt_mfa_stmt_list = {
    .name = "mfa.list",
    .sql = "SELECT latch_mfa_list($1, $2, $3)",
    .nparams = 3,
};
/* sid, user_id, tenant_id, factor_id, recent window, password_ok, ip, request_id -> text */
lt_store_stmt_t lt_mfa_stmt_totp_delete = {
    .name = "mfa.totp_delete",
    .sql = "SELECT latch_mfa_totp_delete($1, $2, $3, $4, $5, $6, $7, $8)",
    .nparams = 8,
};
/* sid, user_id, tenant_id, recovery MACs (text[]), recent window, password_ok, ip,
 * request_id -> text */
lt_store_stmt_t lt_mfa_stmt_recovery_regenerate = {
    .name = "mfa.recovery_regenerate",
    .sql = "SELECT latch_mfa_recovery_regenerate($1, $2, $3, $4, $5, $6, $7, $8)",
    .nparams = 8,
};
/* scope (NULL: global admin), user id, actor, ip, request_id -> boolean */
lt_store_stmt_t lt_mfa_stmt_admin_reset = {
    .name = "mfa.admin_reset",
    .sql = "SELECT latch_admin_user_mfa_reset($1, $2, $3, $4, $5)",
    .nparams = 5,
};

int lt_mfa_statements(void)
{
    lt_store_stmt_t *const stmts[] = {
        &lt_mfa_stmt_enroll,      &lt_mfa_stmt_factor_begin,   &lt_mfa_stmt_factor_confirm,
        &lt_mfa_stmt_challenge_begin, &lt_mfa_stmt_challenge_complete, &lt_mfa_stmt_failed,
        &lt_mfa_stmt_stepup_begin, &lt_mfa_stmt_stepup,        &lt_mfa_stmt_list,
        &lt_mfa_stmt_totp_delete, &lt_mfa_stmt_recovery_regenerate, &lt_mfa_stmt_admin_reset,
    };
    return lt_store_stmt_register_each(stmts, sizeof(stmts) / sizeof(stmts[0]));
}

/* ---- rows ---------------------------------------------------------------------------- */

static const char *col(const PGresult *res, int c)
{
    return PQgetisnull(res, 0, c) ? NULL : PQgetvalue(res, 0, c);
}

static int parse_outcome(const char *s, lt_mfa_begin_t *out)
{
    static const struct {
        const char *name;
        lt_mfa_begin_t outcome;
    } names[] = {
        {"ok", LT_MFA_BEGIN_OK},
        {"invalid", LT_MFA_BEGIN_INVALID},
        {"unauthorized", LT_MFA_BEGIN_UNAUTHORIZED},
        {"not_found", LT_MFA_BEGIN_NOT_FOUND},
        {"already_confirmed", LT_MFA_BEGIN_CONFIRMED},
        {"not_enrolled", LT_MFA_BEGIN_NOT_ENROLLED},
        {"locked", LT_MFA_BEGIN_LOCKED},
        {"throttled", LT_MFA_BEGIN_THROTTLED},
        {"ip_limited", LT_MFA_BEGIN_IP_LIMITED},
    };
    for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].outcome;
            return 0;
        }
    }
    return LT_EINVAL;
}

int lt_mfa_decode_begin(const struct pg_result *res, lt_mfa_begin_row_t *out)
{
    memset(out, 0, sizeof(*out));
    if (res == NULL || PQnfields(res) != 6 || PQntuples(res) != 1 || parse_outcome(col(res, 0), &out->outcome) != 0)
        return LT_EINVAL;
    const char *ra = col(res, 1), *left = col(res, 4);
    out->retry_after = ra != NULL ? atoi(ra) : 0;
    out->user_id = col(res, 2);
    out->tenant_id = col(res, 3);
    out->attempts_left = left != NULL ? atoi(left) : 0;
    out->factors = col(res, 5);
    if (out->outcome == LT_MFA_BEGIN_OK && out->factors == NULL)
        return LT_EINVAL;
    if (out->outcome >= LT_MFA_BEGIN_LOCKED && out->retry_after < 1)
        out->retry_after = 1;
    return 0;
}

/* ---- secrets ------------------------------------------------------------------------- */

#define SECRET_AAD "totp_secret:"
#define SEALED_LEN (LT_MFA_SECRET_LEN + LT_SEAL_OVERHEAD)

int lt_mfa_factor_id_new(char out[LT_MFA_UUID_LEN + 1])
{
    uint8_t b[16];
    char hex[33];
    out[0] = '\0';
    if (lt_random(b, sizeof(b)) != 0)
        return LT_EIO;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    lt_hex_encode(hex, b, sizeof(b));
    snprintf(out, LT_MFA_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}

static int secret_aad(const char *factor_id, char aad[sizeof(SECRET_AAD) + LT_MFA_UUID_LEN])
{
    if (factor_id == NULL || strlen(factor_id) != LT_MFA_UUID_LEN)
        return LT_EINVAL;
    memcpy(aad, SECRET_AAD, sizeof(SECRET_AAD) - 1);
    memcpy(aad + sizeof(SECRET_AAD) - 1, factor_id, LT_MFA_UUID_LEN + 1);
    return 0;
}

int lt_mfa_secret_seal(const lt_seal_key_t *key, const char *factor_id, const uint8_t secret[LT_MFA_SECRET_LEN],
                       char out[LT_MFA_SEALED_HEX_LEN + 1])
{
    char aad[sizeof(SECRET_AAD) + LT_MFA_UUID_LEN];
    uint8_t sealed[SEALED_LEN];
    out[0] = '\0';
    if (secret_aad(factor_id, aad) != 0 || lt_seal(key, aad, strlen(aad), secret, LT_MFA_SECRET_LEN, sealed) != 0)
        return LT_EIO;
    lt_hex_encode(out, sealed, sizeof(sealed));
    return 0;
}

/* Opens the hex `sealed` of factor `id` into secret (cap bytes). @return length or <0. */
static long secret_open(const lt_seal_key_t *keys, size_t nkeys, const char *id, const char *hex, uint8_t *secret,
                        size_t cap)
{
    char aad[sizeof(SECRET_AAD) + LT_MFA_UUID_LEN];
    uint8_t sealed[LT_SEAL_OVERHEAD + 64];
    size_t hl = hex != NULL ? strlen(hex) : 0, n = hl / 2, len = 0;
    if (secret_aad(id, aad) != 0 || hl % 2 != 0 || n <= LT_SEAL_OVERHEAD || n > sizeof(sealed) ||
        n - LT_SEAL_OVERHEAD > cap)
        return LT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = lt_hex_digit(hex[2 * i]), lo = lt_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return LT_EINVAL;
        sealed[i] = (uint8_t)(hi << 4 | lo);
    }
    int ret = lt_unseal(keys, nkeys, aad, strlen(aad), sealed, n, secret, &len);
    return ret != 0 ? ret : (long)len;
}

static int factor_params(const json_t *f, lt_mfa_totp_params_t *p)
{
    const char *alg = json_string_value(json_object_get(f, "algorithm"));
    json_t *d = json_object_get(f, "digits"), *per = json_object_get(f, "period");
    if (alg == NULL || lt_mfa_alg_parse(alg, &p->alg) != 0 || !json_is_integer(d) || !json_is_integer(per))
        return LT_EINVAL;
    p->digits = (int)json_integer_value(d);
    p->period = (int)json_integer_value(per);
    return lt_mfa_params_ok(p) ? 0 : LT_EINVAL;
}

/* One factor: 0 match, LT_ENOTFOUND no match or a code this factor cannot take, else error. */
static int check_one(const json_t *f, const lt_seal_key_t *keys, size_t nkeys, int64_t now, int window,
                     const char *code, size_t n, lt_mfa_match_t *m)
{
    lt_mfa_totp_params_t p;
    const char *id = json_string_value(json_object_get(f, "id"));
    const char *sealed = json_string_value(json_object_get(f, "sealed"));
    uint8_t secret[64];
    if (!json_is_object(f) || id == NULL || factor_params(f, &p) != 0)
        return LT_EINVAL;
    if (n != (size_t)p.digits)
        return LT_ENOTFOUND; /* another factor may have this many digits */
    long len = secret_open(keys, nkeys, id, sealed, secret, sizeof(secret));
    if (len < 0)
        return LT_EINVAL;
    int64_t step = 0;
    int ret = lt_mfa_totp_check(secret, (size_t)len, &p, now, window, code, n, &step);
    lt_wipe(secret, sizeof(secret));
    if (ret == LT_EINVAL)
        return LT_ENOTFOUND; /* a malformed code (non-digits) is just a wrong code */
    if (ret != 0)
        return ret;
    snprintf(m->factor_id, sizeof(m->factor_id), "%s", id);
    m->step = step;
    return 0;
}

int lt_mfa_factors_check(const char *factors, const lt_seal_key_t *keys, size_t nkeys, int64_t now, int window,
                         const char *code, size_t n, lt_mfa_match_t *m)
{
    memset(m, 0, sizeof(*m));
    json_t *doc = factors != NULL ? json_loads(factors, 0, NULL) : NULL;
    if (doc == NULL)
        return LT_EINVAL;
    int ret = LT_ENOTFOUND;
    if (json_is_array(doc)) {
        size_t i;
        json_t *f;
        /* Every factor is tried even after an error, so one broken row does not lock the
         * user out of the others; an error is reported only when nothing matched. */
        int err = 0;
        json_array_foreach(doc, i, f) {
            int r = check_one(f, keys, nkeys, now, window, code, n, m);
            if (r == 0) {
                ret = 0;
                break;
            }
            if (r != LT_ENOTFOUND)
                err = r;
        }
        if (ret != 0 && err != 0)
            ret = err;
    } else {
        ret = check_one(doc, keys, nkeys, now, window, code, n, m);
    }
    json_decref(doc);
    return ret;
}

/* ---- recovery-code arrays ------------------------------------------------------------ */

/* Appends one element to the text[] literal being built in out[0..*at) (after its '{'). */
static int array_append(char *out, size_t *at, const char *hex)
{
    size_t k = strlen(hex);
    if (*at + k + 2 > LT_MFA_RECOVERY_ARRAY_LEN)
        return LT_ERANGE;
    if (*at > 1)
        out[(*at)++] = ',';
    memcpy(out + *at, hex, k);
    *at += k;
    return 0;
}

int lt_mfa_recovery_store_array(const lt_seal_key_t *key, const char *user_id,
                                char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1],
                                char out[LT_MFA_RECOVERY_ARRAY_LEN + 1])
{
    char hex[LT_MFA_RECOVERY_HASH_HEX_LEN + 1];
    size_t at = 1;
    out[0] = '{';
    for (int i = 0; i < LT_MFA_RECOVERY_COUNT; i++) {
        if (lt_mfa_recovery_hash(key->version, key->key, user_id, codes[i], hex) != 0 ||
            array_append(out, &at, hex) != 0) {
            out[0] = '\0';
            return LT_EIO;
        }
    }
    out[at++] = '}';
    out[at] = '\0';
    return 0;
}

int lt_mfa_recovery_candidates(const lt_seal_key_t *keys, size_t nkeys, const char *user_id,
                               const char code[LT_MFA_RECOVERY_LEN + 1], char out[LT_MFA_RECOVERY_ARRAY_LEN + 1])
{
    char hex[LT_MFA_RECOVERY_HASH_HEX_LEN + 1];
    size_t at = 1;
    out[0] = '\0';
    if (nkeys == 0 || nkeys > LT_MFA_RECOVERY_COUNT)
        return LT_EINVAL;
    out[0] = '{';
    for (size_t i = 0; i < nkeys; i++) {
        if (lt_mfa_recovery_hash(keys[i].version, keys[i].key, user_id, code, hex) != 0 ||
            array_append(out, &at, hex) != 0) {
            out[0] = '\0';
            return LT_EIO;
        }
    }
    out[at++] = '}';
    out[at] = '\0';
    return 0;
}
