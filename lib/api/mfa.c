/*
 * mfa: second factors on the wire.
 *
 *   POST   /v1/me/mfa/totp                 {label?} -> a pending factor: secret, otpauth URI, QR
 *   POST   /v1/me/mfa/totp/{id}/confirm    {code} -> active; recovery codes (+ tokens, see below)
 *   GET    /v1/me/mfa                      the factors, never a secret
 *   DELETE /v1/me/mfa/totp/{id}            {current_password?} recent authentication needed
 *   POST   /v1/me/mfa/recovery-codes       {current_password?} new codes, the old ones die
 *   POST   /v1/auth/mfa/verify             {mfa_token, code | recovery_code} -> tokens
 *   POST   /v1/auth/step-up                {code} -> a new access token, fresh auth_time
 *   DELETE /v1/admin/users/{id}/mfa        an admin removes every factor of a user
 *
 * The two enrolment endpoints also take, as bearer, the enrolment-only token a login of a
 * tenant that requires MFA hands out (lt_mf_...); no other endpoint does (lt__api_bearer
 * only verifies JWTs). Confirming with it completes that sign-in: the answer carries the
 * tokens of a new session as well as the recovery codes.
 *
 * Every code check is "begin statement -> check in C -> finish statement": begin passes
 * the lockout gate and returns the sealed secrets; the secret is opened, the code checked
 * (liboath) and the secret wiped here; finish applies the replay rule and records the
 * outcome (sql/0010_mfa.sql). A wrong code ends with lt_mfa_stmt_failed, which audits it;
 * its gate slot stays reserved, so it counts toward the lockout.
 *
 * Flow contexts hold secrets, codes and fresh tokens: they live in lt__api_alloc_wiped
 * memory. Secrets are never logged.
 *
 * Threading: everything runs on the request's worker thread.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "identity/auth.h"
#include "mfa/factors.h"

/* Longest code accepted as input: longer is wrong, not "too long" (no field error). */
#define CODE_MAX 64
#define LABEL_MAX 64
/* Active factors a user may have. */
#define MAX_ACTIVE 5
#define OPAQUE_MAX 256

static const lt_config_t *cfg_of(lt_req_t *r)
{
    return lt__api_worker(r)->api->cfg;
}

static const char *pint(lt_req_t *r, long v)
{
    char *s = h2o_mem_alloc_pool(&r->req->pool, 24);
    snprintf(s, 24, "%ld", v);
    return s;
}

static int64_t now_s(void)
{
    return (int64_t)(lt_now_ms() / 1000);
}

/* A body that may be absent: none at all reads as {}. */
static int optional_body(lt_req_t *r, lt_api_in_t *in)
{
    if (r->req->entity.base == NULL || r->req->entity.len == 0) {
        memset(in, 0, sizeof(*in));
        return 0;
    }
    return lt__api_body_read(r, in);
}

static void invalid_code(lt_req_t *r, int attempts_left)
{
    json_t *ext = attempts_left >= 0 ? json_pack("{s:i}", "attempts_remaining", attempts_left) : NULL;
    lt_http_problem_fields(r, 400, "invalid_code", "The code is wrong, expired or already used.", ext);
}

static void invalid_mfa_token(lt_req_t *r)
{
    lt_http_problem(r, 401, "invalid_mfa_token", "The MFA token is invalid, expired, used or out of attempts.");
}

/*
 * The row of a "begin" statement: 0 when the code may be checked (b filled, outcome OK);
 * otherwise answered: the database's trouble, a row of the wrong shape, or a refusal that
 * every flow answers alike.
 */
static int begin_row(lt_req_t *r, const char *err, PGresult *res, const char *what, lt_mfa_begin_row_t *b)
{
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return -1;
    }
    if (lt_mfa_decode_begin(res, b) != 0) {
        lt__api_bad_row(r, what);
        return -1;
    }
    switch (b->outcome) {
    case LT_MFA_BEGIN_OK:
        return 0;
    case LT_MFA_BEGIN_INVALID:
        invalid_mfa_token(r);
        return -1;
    case LT_MFA_BEGIN_LOCKED:
    case LT_MFA_BEGIN_THROTTLED:
    case LT_MFA_BEGIN_IP_LIMITED:
        lt__api_too_many(r, b->outcome == LT_MFA_BEGIN_IP_LIMITED, b->retry_after);
        return -1;
    case LT_MFA_BEGIN_UNAUTHORIZED:
        lt__api_session_ended(r);
        return -1;
    case LT_MFA_BEGIN_NOT_FOUND:
        lt_http_problem(r, 404, "not_found", "No such factor.");
        return -1;
    case LT_MFA_BEGIN_CONFIRMED:
        lt_http_problem(r, 409, "already_confirmed", "The factor is already active.");
        return -1;
    case LT_MFA_BEGIN_NOT_ENROLLED:
        lt_http_problem(r, 409, "mfa_not_enrolled", "The user has no active second factor.");
        return -1;
    }
    lt__api_bad_row(r, what);
    return -1;
}

/*
 * The row of a statement ending in a session (or, for a confirmation by a signed-in
 * caller, in none): 0 with `s` filled when it went through; otherwise answered: the
 * database's trouble, a session ended meanwhile, the factor gone, or the code refused
 * after all (a replay, a used recovery code; `attempts_left` as invalid_code reports it).
 */
static int session_row(lt_req_t *r, const char *err, PGresult *res, const char *what, int attempts_left,
                       lt_auth_session_t *s)
{
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return -1;
    }
    if (lt_auth_decode_session(res, s) != 0) {
        lt__api_bad_row(r, what);
        return -1;
    }
    switch (s->status) {
    case LT_AUTH_REFRESH_OK:
        return 0;
    case LT_AUTH_SESSION_UNAUTHORIZED:
        lt__api_session_ended(r);
        return -1;
    case LT_AUTH_SESSION_NOT_FOUND:
        lt_http_problem(r, 404, "not_found", "No such pending factor.");
        return -1;
    case LT_AUTH_REFRESH_INVALID:
        invalid_code(r, attempts_left);
        return -1;
    default:
        lt__api_bad_row(r, what);
        return -1;
    }
}

/*
 * Checks `code` against the factors of a begin row with the master key. 0: matched (m);
 * LT_ENOTFOUND: a wrong code; otherwise answered (503: a secret that does not open is a
 * deployment problem, logged without the secret).
 */
static int check_code(lt_req_t *r, const char *factors, const char *code, lt_mfa_match_t *m)
{
    lt_seal_key_t key;
    lt__api_master_key(cfg_of(r), &key);
    int ret = lt_mfa_factors_check(factors, &key, 1, now_s(), cfg_of(r)->totp_window, code, strlen(code), m);
    lt_wipe(&key, sizeof(key));
    if (ret == 0 || ret == LT_ENOTFOUND)
        return ret;
    lt_log(LT_LOG_ERROR, "api", "request %s: a stored factor could not be used: %s", r->request_id, lt_strerror(ret));
    lt__api_unavailable(r, "The second factor cannot be checked now.");
    return ret;
}

/* ---- who enrols ---------------------------------------------------------------------- */

/* The enrolment endpoints' caller: a signed-in session, or an enrolment-only token. */
typedef struct {
    const char *sid, *sub, *tenant; /* the session's (NULL with an enrolment token) */
    char enroll_hash[LT_AUTH_HASH_HEX_LEN + 1];
} enrollee_t;

static const char *enroll_hash_param(const enrollee_t *e)
{
    return e->enroll_hash[0] != '\0' ? e->enroll_hash : NULL;
}

/* @return 0, or -1 after answering 401. */
static int enrollee(lt_req_t *r, enrollee_t *e)
{
    static const char prefix[] = "Bearer lt_mf_";
    const char *h = lt_req_header(r, "authorization");
    if (h != NULL && strncasecmp(h, prefix, 7) == 0 && strncmp(h + 7, prefix + 7, sizeof(prefix) - 8) == 0) {
        const char *tok = h + 7;
        if (lt_auth_token_hash(LT_AUTH_TOKEN_MFA, tok, strnlen(tok, OPAQUE_MAX), e->enroll_hash) != 0) {
            lt__api_session_ended(r);
            return -1;
        }
        return 0;
    }
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return -1;
    e->sid = t->sid;
    e->sub = t->sub;
    e->tenant = t->tenant;
    return 0;
}

/* ---- enrolment ----------------------------------------------------------------------- */

typedef struct {
    enrollee_t e;
    char factor_id[LT_MFA_UUID_LEN + 1];
    uint8_t secret[LT_MFA_SECRET_LEN];
    char b32[LT_MFA_SECRET_B32_LEN + 1];
    char sealed[LT_MFA_SEALED_HEX_LEN + 1];
} enroll_ctx_t;

static void wipe_free(char *s)
{
    if (s != NULL) {
        lt_wipe(s, strlen(s));
        free(s);
    }
}

static void enrolled(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    enroll_ctx_t *c = ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    json_t *doc = lt__api_json_parse(lt_auth_value(res));
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (status == NULL || strcmp(status, "ok") != 0) {
        if (status != NULL && strcmp(status, "unauthorized") == 0)
            lt__api_session_ended(r);
        else if (status != NULL && strcmp(status, "disabled") == 0)
            lt_http_problem(r, 403, "mfa_disabled", "Second factors are turned off for this tenant.");
        else if (status != NULL && strcmp(status, "too_many") == 0)
            lt_http_problem(r, 409, "too_many_factors", "The user has the most active factors allowed.");
        else
            lt__api_bad_row(r, "latch_mfa_totp_enroll");
        json_decref(doc);
        return;
    }
    lt_mfa_totp_params_t p = {
        .digits = (int)json_integer_value(json_object_get(doc, "digits")),
        .period = (int)json_integer_value(json_object_get(doc, "period")),
    };
    const char *alg = json_string_value(json_object_get(doc, "algorithm"));
    const char *issuer = json_string_value(json_object_get(doc, "issuer"));
    const char *email = json_string_value(json_object_get(doc, "email"));
    char *uri = NULL, *svg = NULL;
    size_t svglen = 0;
    if (alg == NULL || lt_mfa_alg_parse(alg, &p.alg) != 0 || !lt_mfa_params_ok(&p) || issuer == NULL || email == NULL ||
        (uri = lt_mfa_otpauth_uri(issuer, email, c->b32, &p)) == NULL || (svg = lt_mfa_qr_svg(uri, &svglen)) == NULL) {
        wipe_free(uri);
        json_decref(doc);
        lt__api_internal_error(r, "the otpauth URI or its QR code could not be made");
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "factor_id", c->factor_id, "secret", c->b32,
                             "otpauth_uri", uri, "qr_svg", svg, "algorithm", lt_mfa_alg_name(p.alg), "digits",
                             p.digits, "period", p.period);
    wipe_free(uri);
    wipe_free(svg);
    json_decref(doc);
    lt_http_send_json(r, 201, body);
}

static int on_totp_enroll(lt_req_t *r)
{
    lt_api_in_t in;
    enroll_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    if (enrollee(r, &c->e) != 0 || optional_body(r, &in) != 0)
        return 0;
    const char *label = lt__api_in_str(&in, "label", 0, LABEL_MAX);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    lt_seal_key_t key;
    lt__api_master_key(cfg_of(r), &key);
    int ret = lt_mfa_factor_id_new(c->factor_id) != 0 || lt_mfa_secret_new(c->secret) != 0 ||
              lt_mfa_secret_b32(c->secret, c->b32) != 0 || lt_mfa_secret_seal(&key, c->factor_id, c->secret, c->sealed) != 0;
    lt_wipe(&key, sizeof(key));
    if (ret) {
        lt__api_unavailable(r, "No randomness is available.");
        return 0;
    }
    const char *p[] = {c->e.sid,  c->e.sub,       c->e.tenant,           enroll_hash_param(&c->e), c->factor_id,
                       label,     c->sealed,      pint(r, MAX_ACTIVE),   lt_req_peer(r),           r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_enroll, p, 10, enrolled, c);
    return 0;
}

/* ---- confirmation -------------------------------------------------------------------- */

typedef struct {
    enrollee_t e;
    const char *factor_id, *code, *user_id, *tenant_id;
    char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1];
    char macs[LT_MFA_RECOVERY_ARRAY_LEN + 1];
    char rt[LT_AUTH_TOKEN_LEN + 1];
    char rt_hash[LT_AUTH_HASH_HEX_LEN + 1];
} confirm_ctx_t;

static json_t *codes_json(char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1])
{
    json_t *a = json_array();
    for (int i = 0; a != NULL && i < LT_MFA_RECOVERY_COUNT; i++)
        json_array_append_new(a, json_string(codes[i]));
    return a;
}

/* A wrong code: audited (lt_mfa_stmt_failed), then 400 invalid_code. */
typedef struct {
    int attempts_left; /* -1: not a challenge */
} failed_ctx_t;

static void failure_recorded(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    failed_ctx_t *f = ctx;
    (void)res;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else
        invalid_code(r, f->attempts_left);
}

static void code_failed(lt_req_t *r, const char *user_id, const char *tenant_id, const char *context,
                        const char *method, int attempts_left)
{
    failed_ctx_t *f = h2o_mem_alloc_pool(&r->req->pool, sizeof(*f));
    f->attempts_left = attempts_left;
    const char *p[] = {user_id, tenant_id, context, method, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_failed, p, 6, failure_recorded, f);
}

static void confirmed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    confirm_ctx_t *c = ctx;
    lt_auth_session_t s;
    if (session_row(r, err, res, "latch_mfa_factor_confirm", -1, &s) != 0)
        return;
    json_t *body;
    if (s.session_id != NULL) /* an enrolment token: the sign-in completes here */
        body = lt__api_session_token_body(r, s.user_id, s.tenant_id, &s, c->rt);
    else
        body = json_object();
    if (body == NULL)
        return;
    json_object_set_new(body, "factor_id", json_string(c->factor_id));
    json_object_set_new(body, "recovery_codes", codes_json(c->codes));
    lt_http_send_json(r, 200, body);
}

static void confirm_begun(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    confirm_ctx_t *c = ctx;
    lt_mfa_begin_row_t b;
    lt_mfa_match_t m;
    if (begin_row(r, err, res, "latch_mfa_factor_begin", &b) != 0)
        return;
    if (b.user_id == NULL) {
        lt__api_bad_row(r, "latch_mfa_factor_begin");
        return;
    }
    c->user_id = lt__api_pool_strdup(r, b.user_id);
    c->tenant_id = lt__api_pool_strdup(r, b.tenant_id);
    int ret = check_code(r, b.factors, c->code, &m);
    if (ret == LT_ENOTFOUND) {
        code_failed(r, c->user_id, c->tenant_id, "enrollment", "totp", -1);
        return;
    }
    if (ret != 0)
        return;
    lt_seal_key_t key;
    lt__api_master_key(cfg_of(r), &key);
    int bad = lt_mfa_recovery_new(c->codes) != 0 || lt_mfa_recovery_store_array(&key, c->user_id, c->codes, c->macs) != 0 ||
              (c->e.enroll_hash[0] != '\0' && lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, c->rt, c->rt_hash) != 0);
    lt_wipe(&key, sizeof(key));
    if (bad) {
        lt__api_unavailable(r, "No randomness is available.");
        return;
    }
    const lt_config_t *cfg = cfg_of(r);
    int enroll = c->e.enroll_hash[0] != '\0';
    const char *p[] = {c->e.sid,
                       c->e.sub,
                       c->e.tenant,
                       enroll_hash_param(&c->e),
                       c->factor_id,
                       pint(r, (long)m.step),
                       c->macs,
                       lt_req_peer(r),
                       lt__api_user_agent(r),
                       pint(r, cfg->session_idle_ttl),
                       pint(r, cfg->session_max_ttl),
                       pint(r, cfg->access_token_ttl),
                       enroll ? c->rt_hash : NULL,
                       r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_factor_confirm, p, 14, confirmed, c);
}

static int on_totp_confirm(lt_req_t *r)
{
    lt_api_in_t in;
    confirm_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    if (enrollee(r, &c->e) != 0)
        return 0;
    c->factor_id = lt_req_param(r, "id");
    if (!lt_auth_uuid_ok(c->factor_id)) {
        lt_http_problem(r, 404, "not_found", "No such factor.");
        return 0;
    }
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    c->code = lt__api_in_str(&in, "code", 1, CODE_MAX);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    /* An enrolment token completes a sign-in: the tokens need a signing key. */
    if (c->e.enroll_hash[0] != '\0' && !lt__api_keys_ready(r))
        return 0;
    char buf[8][12];
    const char *p[15] = {c->e.sid, c->e.sub, c->e.tenant, enroll_hash_param(&c->e), c->factor_id, lt_req_peer(r)};
    lt__api_limits_params(r, buf, p + 6);
    p[14] = r->request_id;
    (void)lt__api_query(r, &lt_mfa_stmt_factor_begin, p, 15, confirm_begun, c);
    return 0;
}

/* ---- listing ------------------------------------------------------------------------- */

static void listed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    const char *json = lt_auth_value(res);
    if (json == NULL)
        lt__api_session_ended(r);
    else
        lt__api_send_json_text(r, 200, json);
}

static int on_list(lt_req_t *r)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t != NULL) {
        const char *p[] = {t->sid, t->sub, t->tenant};
        (void)lt__api_query(r, &lt_mfa_stmt_list, p, 3, listed, NULL);
    }
    return 0;
}

/* ---- recent authentication: factor removal, new recovery codes ----------------------- */

/*
 * Both changes need the session's auth_time within recent_auth_window, or the current
 * password in the body. With a password: lt__api_reverify_password, then the change with
 * password_ok. Without: the change directly, and the SQL decides whether the
 * authentication is recent enough.
 */
typedef struct sensitive sensitive_t;
typedef void (*sensitive_run_fn)(lt_req_t *r, sensitive_t *c, int password_ok);

struct sensitive {
    const lt_token_t *t;
    const char *password;
    sensitive_run_fn run;
    const char *factor_id; /* removal */
    char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1];
    char macs[LT_MFA_RECOVERY_ARRAY_LEN + 1];
};

static void sensitive_reverified(lt_req_t *r, const char *email, void *ctx)
{
    sensitive_t *c = ctx;
    (void)email;
    c->run(r, c, 1);
}

/* Reads {current_password?} and runs `run` as the rule above says. */
static void sensitive_start(lt_req_t *r, sensitive_t *c, lt_api_in_t *in)
{
    c->password = lt__api_in_str(in, "current_password", 0, LT_PASSWORD_MAX);
    if (lt__api_in_done(r, in) != 0)
        return;
    if (c->password == NULL) {
        c->run(r, c, 0);
        return;
    }
    if (!lt__api_shed_password_work(r))
        lt__api_reverify_password(r, c->t, c->password, sensitive_reverified, c);
}

/* The text the change statements answer: ok, not_found, not_enrolled, unauthorized,
 * reauthentication_required. @return 1 for ok; else answered. */
static int sensitive_result(lt_req_t *r, const char *err, PGresult *res, const char *what)
{
    const char *v = err == NULL ? lt_auth_value(res) : NULL;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (v == NULL)
        lt__api_bad_row(r, what);
    else if (strcmp(v, "ok") == 0)
        return 1;
    else if (strcmp(v, "unauthorized") == 0)
        lt__api_session_ended(r);
    else if (strcmp(v, "reauthentication_required") == 0)
        lt_http_problem(r, 403, "reauthentication_required",
                        "This change needs a recent sign-in: step up, or send current_password.");
    else if (strcmp(v, "not_found") == 0)
        lt_http_problem(r, 404, "not_found", "No such factor.");
    else if (strcmp(v, "not_enrolled") == 0)
        lt_http_problem(r, 409, "mfa_not_enrolled", "The user has no active second factor.");
    else
        lt__api_bad_row(r, what);
    return 0;
}

static const char *recent_window(lt_req_t *r)
{
    return pint(r, cfg_of(r)->recent_auth_window);
}

static void removed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (sensitive_result(r, err, res, "latch_mfa_totp_delete"))
        lt_http_send(r, 204, NULL, "", 0);
}

static void remove_run(lt_req_t *r, sensitive_t *c, int password_ok)
{
    const char *p[] = {c->t->sid,          c->t->sub,      c->t->tenant, c->factor_id, recent_window(r),
                       password_ok ? "t" : "f", lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_totp_delete, p, 8, removed, c);
}

static int on_totp_delete(lt_req_t *r)
{
    lt_api_in_t in;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return 0;
    sensitive_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    c->t = t;
    c->run = remove_run;
    c->factor_id = lt_req_param(r, "id");
    if (!lt_auth_uuid_ok(c->factor_id)) {
        lt_http_problem(r, 404, "not_found", "No such factor.");
        return 0;
    }
    if (optional_body(r, &in) == 0)
        sensitive_start(r, c, &in);
    return 0;
}

static void regenerated(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    sensitive_t *c = ctx;
    if (sensitive_result(r, err, res, "latch_mfa_recovery_regenerate"))
        lt_http_send_json(r, 200, json_pack("{s:o}", "recovery_codes", codes_json(c->codes)));
}

static void regenerate_run(lt_req_t *r, sensitive_t *c, int password_ok)
{
    const char *p[] = {c->t->sid, c->t->sub,        c->t->tenant, c->macs, recent_window(r), password_ok ? "t" : "f",
                       lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_recovery_regenerate, p, 8, regenerated, c);
}

static int on_recovery_regenerate(lt_req_t *r)
{
    lt_api_in_t in;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return 0;
    sensitive_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    c->t = t;
    c->run = regenerate_run;
    lt_seal_key_t key;
    lt__api_master_key(cfg_of(r), &key);
    int bad = lt_mfa_recovery_new(c->codes) != 0 || lt_mfa_recovery_store_array(&key, t->sub, c->codes, c->macs) != 0;
    lt_wipe(&key, sizeof(key));
    if (bad) {
        lt__api_unavailable(r, "No randomness is available.");
        return 0;
    }
    if (optional_body(r, &in) == 0)
        sensitive_start(r, c, &in);
    return 0;
}

/* ---- the MFA challenge of a login ---------------------------------------------------- */

typedef struct {
    char hash[LT_AUTH_HASH_HEX_LEN + 1];
    const char *code;     /* TOTP, or NULL */
    const char *recovery; /* as typed, or NULL */
    const char *user_id, *tenant_id;
    int attempts_left;
    char normalized[LT_MFA_RECOVERY_LEN + 1];
    char macs[LT_MFA_RECOVERY_ARRAY_LEN + 1];
    char rt[LT_AUTH_TOKEN_LEN + 1];
    char rt_hash[LT_AUTH_HASH_HEX_LEN + 1];
} verify_ctx_t;

static void verified(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    verify_ctx_t *c = ctx;
    lt_auth_session_t s;
    if (session_row(r, err, res, "latch_mfa_challenge_complete", c->attempts_left, &s) != 0)
        return;
    if (s.session_id == NULL) {
        lt__api_bad_row(r, "latch_mfa_challenge_complete");
        return;
    }
    json_t *body = lt__api_session_token_body(r, s.user_id, s.tenant_id, &s, c->rt);
    if (body != NULL)
        lt_http_send_json(r, 200, body);
}

static void verify_begun(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    verify_ctx_t *c = ctx;
    lt_mfa_begin_row_t b;
    lt_mfa_match_t m = {{0}, 0};
    if (begin_row(r, err, res, "latch_mfa_challenge_begin", &b) != 0)
        return;
    if (b.user_id == NULL || b.tenant_id == NULL) {
        lt__api_bad_row(r, "latch_mfa_challenge_begin");
        return;
    }
    c->user_id = lt__api_pool_strdup(r, b.user_id);
    c->tenant_id = lt__api_pool_strdup(r, b.tenant_id);
    c->attempts_left = b.attempts_left;
    int ret;
    if (c->code != NULL) {
        ret = check_code(r, b.factors, c->code, &m);
        if (ret != 0 && ret != LT_ENOTFOUND)
            return;
    } else {
        lt_seal_key_t key;
        lt__api_master_key(cfg_of(r), &key);
        ret = lt_mfa_recovery_normalize(c->recovery, strlen(c->recovery), c->normalized) != 0 ? LT_ENOTFOUND
              : lt_mfa_recovery_candidates(&key, 1, c->user_id, c->normalized, c->macs) != 0 ? LT_EIO
                                                                                              : 0;
        lt_wipe(&key, sizeof(key));
        if (ret == LT_EIO) {
            lt__api_internal_error(r, "a recovery code could not be MACed");
            return;
        }
    }
    if (ret == LT_ENOTFOUND) {
        code_failed(r, c->user_id, c->tenant_id, "login", c->code != NULL ? "totp" : "recovery_code", c->attempts_left);
        return;
    }
    if (lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, c->rt, c->rt_hash) != 0) {
        lt__api_unavailable(r, "No randomness is available.");
        return;
    }
    const lt_config_t *cfg = cfg_of(r);
    const char *p[] = {c->hash,
                       c->code != NULL ? lt__api_pool_strdup(r, m.factor_id) : NULL,
                       c->code != NULL ? pint(r, (long)m.step) : NULL,
                       c->code != NULL ? NULL : c->macs,
                       lt_req_peer(r),
                       lt__api_user_agent(r),
                       pint(r, cfg->session_idle_ttl),
                       pint(r, cfg->session_max_ttl),
                       pint(r, cfg->access_token_ttl),
                       c->rt_hash,
                       r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_challenge_complete, p, 11, verified, c);
}

/* The body (free of h2o: tests/fuzz/fuzz_body_auth.c runs it). */
void lt__api_mfa_verify_in(lt_api_in_t *in, const char **token, const char **code, const char **recovery)
{
    *token = lt__api_in_str(in, "mfa_token", 1, OPAQUE_MAX);
    *code = lt__api_in_str(in, "code", 0, CODE_MAX);
    *recovery = lt__api_in_str(in, "recovery_code", 0, CODE_MAX);
    if (*token != NULL && (*code == NULL) == (*recovery == NULL))
        lt__api_in_error(in, *code != NULL ? "recovery_code" : "code", "exactly one of code and recovery_code is required");
}

static int on_verify(lt_req_t *r)
{
    lt_api_in_t in;
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    verify_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    const char *token;
    lt__api_mfa_verify_in(&in, &token, &c->code, &c->recovery);
    if (lt__api_in_done(r, &in) != 0 || !lt__api_keys_ready(r))
        return 0;
    if (lt_auth_token_hash(LT_AUTH_TOKEN_MFA, token, strlen(token), c->hash) != 0) {
        invalid_mfa_token(r);
        return 0;
    }
    char buf[8][12];
    const char *p[12] = {c->hash, lt_req_peer(r), pint(r, cfg_of(r)->mfa_challenge_attempts)};
    lt__api_limits_params(r, buf, p + 3);
    p[11] = r->request_id;
    (void)lt__api_query(r, &lt_mfa_stmt_challenge_begin, p, 12, verify_begun, c);
    return 0;
}

/* ---- step-up ------------------------------------------------------------------------- */

typedef struct {
    const lt_token_t *t;
    const char *code;
} stepup_ctx_t;

static void stepped_up(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    lt_auth_session_t s;
    (void)ctx;
    if (session_row(r, err, res, "latch_mfa_stepup", -1, &s) != 0)
        return;
    if (s.session_id == NULL) {
        lt__api_bad_row(r, "latch_mfa_stepup");
        return;
    }
    json_t *body = lt__api_session_token_body(r, s.user_id, s.tenant_id, &s, NULL);
    if (body != NULL)
        lt_http_send_json(r, 200, body);
}

static void stepup_begun(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    stepup_ctx_t *c = ctx;
    lt_mfa_begin_row_t b;
    lt_mfa_match_t m;
    if (begin_row(r, err, res, "latch_mfa_stepup_begin", &b) != 0)
        return;
    int ret = check_code(r, b.factors, c->code, &m);
    if (ret == LT_ENOTFOUND) {
        code_failed(r, c->t->sub, c->t->tenant, "step_up", "totp", -1);
        return;
    }
    if (ret != 0)
        return;
    const char *p[] = {c->t->sid,
                       c->t->sub,
                       c->t->tenant,
                       lt__api_pool_strdup(r, m.factor_id),
                       pint(r, (long)m.step),
                       pint(r, cfg_of(r)->access_token_ttl),
                       lt_req_peer(r),
                       r->request_id};
    (void)lt__api_query(r, &lt_mfa_stmt_stepup, p, 8, stepped_up, c);
}

static int on_step_up(lt_req_t *r)
{
    lt_api_in_t in;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    stepup_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    c->t = t;
    c->code = lt__api_in_str(&in, "code", 1, CODE_MAX);
    if (lt__api_in_done(r, &in) != 0 || !lt__api_keys_ready(r))
        return 0;
    char buf[8][12];
    const char *p[13] = {t->sid, t->sub, t->tenant, lt_req_peer(r)};
    lt__api_limits_params(r, buf, p + 4);
    p[12] = r->request_id;
    (void)lt__api_query(r, &lt_mfa_stmt_stepup_begin, p, 13, stepup_begun, c);
    return 0;
}

/* ---- administration ------------------------------------------------------------------ */

static void reset_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL)
        lt__api_admin_failed(r, err, res);
    else if (lt_auth_value_true(res))
        lt_http_send(r, 204, NULL, "", 0);
    else
        lt_http_problem(r, 404, "not_found", "No such user.");
}

static int on_admin_reset(lt_req_t *r)
{
    lt_api_caller_t c;
    if (lt__api_admin_caller(r, &c, "latch:users:write") != 0)
        return 0;
    const char *id = lt_req_param(r, "id");
    if (!lt_auth_uuid_ok(id)) {
        lt_http_problem(r, 404, "not_found", "No such user.");
        return 0;
    }
    const char *p[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_mfa_stmt_admin_reset, p, 5, reset_done, NULL);
    return 0;
}

int lt__api_mfa_statements(void)
{
    return lt_mfa_statements();
}

int lt__api_mfa_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = 0;
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/mfa/totp", on_totp_enroll, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/mfa/totp/{id}/confirm", on_totp_confirm, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/me/mfa/totp/{id}", on_totp_delete, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/me/mfa", on_list, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/mfa/recovery-codes", on_recovery_regenerate, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/mfa/verify", on_verify, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/step-up", on_step_up, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/users/{id}/mfa", on_admin_reset, 0);
    return ret;
}
