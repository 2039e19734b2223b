/*
 * auth: the surface login frontends drive.
 *
 *   POST   /v1/auth/login                   {tenant, email, password} -> tokens
 *   POST   /v1/auth/refresh                 {refresh_token} -> tokens (rotated)
 *   POST   /v1/auth/logout                  ends the bearer's session
 *   POST   /v1/auth/password-reset          {tenant, email} -> 202 whatever the account
 *   POST   /v1/auth/password-reset/confirm  {token, new_password}
 *   GET    /v1/me                           the bearer's user + session_id
 *   GET    /v1/me/sessions                  the user's live sessions
 *   DELETE /v1/me/sessions/{id}             ends one of them
 *   POST   /v1/me/logout-all                ends all of them
 *   POST   /v1/me/password                  {current_password, new_password}
 *
 * Each flow is a chain of at most one async step at a time: parse input -> query ->
 * hasher job -> query -> respond. Its state is a small ctx struct in the request pool,
 * wiped when the request ends (it holds fresh refresh/reset tokens). The SQL and its
 * reasoning (lockout ordering, atomic consumption of tokens) live in sql/0004_auth.sql,
 * sql/0007_tokens.sql and lib/identity/auth.c; this file only orchestrates and answers.
 *
 * Refresh (lt__api_refresh, also behind grant_type=refresh_token of /oauth2/token): a
 * repeat presentation within refresh_reuse_grace is answered with the successor already
 * issued (kept sealed under the master key for that window), never a second one; any
 * other presentation of a used token ends the session (reuse) and, like every other
 * failure, answers invalid_grant. Access tokens name the client (LT_TOKEN_FIRST_PARTY_CLIENT
 * for the /v1/auth endpoints) and carry the user's email as `username`.
 *
 * Login answers the same 401 `invalid_credentials` with the same body for an unknown
 * tenant, an unknown email, a disabled or locked user and a wrong password, after exactly
 * one argon2 verification each (a dummy hash when there is no stored one), so neither the
 * answer nor its cost tells them apart. Only a correct password of an active user whose
 * password must be reset gets a different answer: 403 `password_reset_required` (no
 * session is created; the user goes through the password reset).
 *
 * Cookie mode (X-Latch-Mode: cookie, browser.c has the scheme): the refresh token of login,
 * MFA verification and refresh goes into the __Host-latch_rt cookie instead of the body,
 * with a CSRF token; refresh then reads the cookie, and every state change of a session
 * that came with the cookie (logout, /v1/me/... through lt__api_me_bearer) needs
 * X-CSRF-Token. Answers about a tenant carry CORS headers only for that tenant's origins.
 *
 * Threading: everything runs on the request's worker thread.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "http/cors.h"
#include "identity/auth.h"

/* Longest accepted tenant name and email (sql/0003: tenant names, users.email). */
#define TENANT_MAX 63
#define EMAIL_MAX 320
/* Sessions keep at most this much of the User-Agent (sessions.user_agent). */
#define USER_AGENT_MAX 512
/* Opaque tokens are LT_AUTH_TOKEN_LEN; a little slack so a near miss is "invalid", not "too long". */
#define OPAQUE_MAX 256

/* ---- small helpers ------------------------------------------------------------------- */

/* A copy of `s` in the request pool (NULL stays NULL): PGresult values die with the callback. */
static const char *pstr(lt_req_t *r, const char *s)
{
    return s != NULL ? h2o_strdup(&r->req->pool, s, SIZE_MAX).base : NULL;
}

static const char *pint(lt_req_t *r, long v)
{
    char *s = h2o_mem_alloc_pool(&r->req->pool, 24);
    snprintf(s, 24, "%ld", v);
    return s;
}

static const lt_config_t *cfg_of(lt_req_t *r)
{
    return lt__api_worker(r)->api->cfg;
}

void lt__api_limits_params(lt_req_t *r, char buf[LT_AUTH_LIMITS_NPARAMS][12], const char *out[LT_AUTH_LIMITS_NPARAMS])
{
    const lt_config_t *cfg = cfg_of(r);
    lt_auth_limits_t l = {
        .threshold = cfg->lockout_threshold,
        .window = cfg->lockout_window,
        .duration = cfg->lockout_duration,
        .acct_threshold = cfg->lockout_account_threshold,
        .acct_window = cfg->lockout_account_window,
        .acct_max_delay = cfg->lockout_account_max_delay,
        .ip_limit = cfg->login_ip_limit,
        .ip_window = cfg->login_ip_window,
    };
    lt_auth_limits_params(&l, buf, out);
}

/* The User-Agent as a session keeps it: printable ASCII only (the header may carry any
 * bytes, the column is UTF-8 text), at most USER_AGENT_MAX bytes. */
const char *lt__api_user_agent(lt_req_t *r)
{
    const char *ua = lt_req_header(r, "user-agent");
    if (ua == NULL)
        return NULL;
    size_t n = strnlen(ua, USER_AGENT_MAX);
    char *out = h2o_mem_alloc_pool(&r->req->pool, n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = ua[i] >= 0x20 && ua[i] < 0x7f ? ua[i] : '?';
    out[n] = '\0';
    return out;
}

static void send_no_content(lt_req_t *r, int status)
{
    lt_http_send(r, status, NULL, "", 0);
}

void lt__api_too_many(lt_req_t *r, int ip_limited, int retry_after)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", retry_after > 0 ? retry_after : 1);
    lt_http_add_header(r, "retry-after", v);
    if (ip_limited)
        lt_http_problem(r, 429, "rate_limited", "Too many sign-in attempts from this address; retry later.");
    else
        lt_http_problem(r, 429, "too_many_attempts", "Too many sign-in attempts; retry later.");
}

static void invalid_credentials(lt_req_t *r)
{
    lt_http_problem(r, 401, "invalid_credentials", "The tenant, email or password is wrong.");
}

void lt__api_session_ended(lt_req_t *r)
{
    lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
    lt_http_problem(r, 401, "invalid_token", "The session has ended.");
}

void lt__api_unavailable(lt_req_t *r, const char *detail)
{
    lt_http_add_header(r, "retry-after", "1");
    lt_http_problem(r, 503, "unavailable", detail);
}

void lt__api_bad_row(lt_req_t *r, const char *what)
{
    lt_log(LT_LOG_ERROR, "api", "request %s: unexpected result from %s", r->request_id, what);
    lt__api_store_problem(r, lt_err_unavailable);
}

void lt__api_hasher_failed(lt_req_t *r, int err)
{
    lt_log(LT_LOG_ERROR, "api", "request %s: password job failed: %s", r->request_id, lt_strerror(err));
    lt__api_unavailable(r, "The password service is unavailable.");
}

static void weak_password(lt_req_t *r, const char *field, const char *reason)
{
    lt_http_problem_fields(r, 400, "weak_password", "The new password does not meet the password policy.",
                           json_pack("[{s:s, s:s}]", "field", field, "message", reason != NULL ? reason : "is too weak"));
}

/* 1 when a signing key is loaded; else answers 503 (checked before work is done that a
 * token response would then throw away). */
int lt__api_keys_ready(lt_req_t *r)
{
    lt_keyring_t *kr = lt__api_ring(r);
    if (kr != NULL && lt_keyring_active(kr) != NULL)
        return 1;
    lt__api_unavailable(r, "No signing key is loaded yet.");
    return 0;
}

/* How a token response is shaped, and for whom the access token is. */
typedef struct {
    const char *client_id;  /* the access token's client_id */
    lt_api_errors_t style;  /* PROBLEM: first-party shape (session_id); OAUTH: RFC 6749 §5.1 */
} token_out_t;

/*
 * The body of a token response: a new access token for session `s` of user `sub` in
 * tenant `tenant`, and the refresh token `rt` already stored for it (NULL: none, as for
 * step-up). NULL after answering 503 when no token can be issued.
 */
static json_t *token_body(lt_req_t *r, const char *sub, const char *tenant, const lt_auth_session_t *s,
                          const char *rt, const token_out_t *o)
{
    const lt_config_t *cfg = cfg_of(r);
    json_t *roles = lt__api_json_parse(s->roles);
    json_t *amr = s->amr != NULL ? lt__api_json_parse(s->amr) : json_pack("[s]", "pwd");
    lt_keyring_t *kr = lt__api_ring(r);
    char *jwt = NULL;
    int ret = LT_ESTATE;
    if (kr != NULL && json_is_array(roles) && json_is_array(amr)) {
        lt_token_claims_t c = {
            .iss = cfg->issuer,
            .aud = cfg->audience,
            .sub = sub,
            .sid = s->session_id,
            .tenant = tenant,
            .client_id = o->client_id,
            .username = s->email != NULL && s->email[0] != '\0' ? s->email : NULL,
            .scope = "",
            .acr = s->acr,
            .roles = roles,
            .amr = amr,
            .auth_time = s->auth_time,
            .now = (int64_t)(lt_now_ms() / 1000),
            .ttl = cfg->access_token_ttl,
        };
        ret = lt_token_issue(kr, &c, &jwt, NULL, 0);
    }
    json_decref(roles);
    json_decref(amr);
    if (ret != 0) {
        lt_log(LT_LOG_ERROR, "api", "request %s: access token not issued: %s", r->request_id, lt_strerror(ret));
        if (o->style == LT_API_ERRORS_OAUTH) {
            lt_http_add_header(r, "retry-after", "1");
            lt__api_oauth_error(r, 503, "temporarily_unavailable", "Access tokens cannot be issued now.");
        } else {
            lt__api_unavailable(r, "Access tokens cannot be issued now.");
        }
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:s, s:i}", "access_token", jwt, "token_type", "Bearer", "expires_in",
                             cfg->access_token_ttl);
    lt__api_cors_tenant(r, tenant, NULL);
    /* Cookie mode keeps the refresh token out of reach of the page's scripts. */
    int cookies = rt != NULL && o->style == LT_API_ERRORS_PROBLEM && lt_req_cookie_mode(r);
    if (body != NULL && cookies && lt__api_cookies_set(r, body, tenant, s->session_id, rt) != 0) {
        json_decref(body);
        lt_wipe(jwt, strlen(jwt));
        free(jwt);
        return NULL;
    }
    if (body != NULL && rt != NULL && !cookies)
        json_object_set_new(body, "refresh_token", json_string(rt));
    if (body != NULL)
        json_object_set_new(body, o->style == LT_API_ERRORS_OAUTH ? "scope" : "session_id",
                            json_string(o->style == LT_API_ERRORS_OAUTH ? "" : s->session_id));
    lt_wipe(jwt, strlen(jwt));
    free(jwt);
    if (body == NULL)
        lt__api_internal_error(r, "out of memory building a token response");
    return body;
}

static void send_tokens(lt_req_t *r, const char *sub, const char *tenant, const lt_auth_session_t *s, const char *rt,
                        const token_out_t *o)
{
    json_t *body = token_body(r, sub, tenant, s, rt, o);
    if (body != NULL)
        lt_http_send_json(r, 200, body);
}

static const token_out_t first_party = {LT_TOKEN_FIRST_PARTY_CLIENT, LT_API_ERRORS_PROBLEM};

json_t *lt__api_session_token_body(lt_req_t *r, const char *sub, const char *tenant, const lt_auth_session_t *s,
                                   const char *rt)
{
    return token_body(r, sub, tenant, s, rt, &first_party);
}

/* ---- login --------------------------------------------------------------------------- */

typedef struct {
    const char *tenant, *email, *password;
    size_t pwlen;
    const char *user_id, *tenant_id, *status, *phc, *new_phc, *reason;
    int reset_required;
    char rt[LT_AUTH_TOKEN_LEN + 1];
    char rt_hash[LT_AUTH_HASH_HEX_LEN + 1];
    char mfa[LT_AUTH_TOKEN_LEN + 1]; /* becomes a challenge or an enrolment token, if MFA is due */
    char mfa_hash[LT_AUTH_HASH_HEX_LEN + 1];
} login_ctx_t;

static void login_verified(lt_req_t *r, const lt_hasher_result_t *res, void *ctx);
static void login_failed(lt_req_t *r, const char *err, PGresult *res, void *ctx);
static void login_succeeded(lt_req_t *r, const char *err, PGresult *res, void *ctx);


static void login_begun(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    login_ctx_t *c = ctx;
    lt_auth_login_t row;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (lt_auth_decode_login(res, &row) != 0) {
        lt__api_bad_row(r, "latch_login_begin");
        return;
    }
    if (row.gate != LT_AUTH_GATE_OK) {
        lt__api_too_many(r, row.gate == LT_AUTH_GATE_IP_LIMITED, row.retry_after);
        return;
    }
    c->user_id = pstr(r, row.user_id);
    c->tenant_id = pstr(r, row.tenant_id);
    c->status = pstr(r, row.status);
    c->phc = pstr(r, row.phc);
    c->reset_required = row.reset_required;
    /* Always exactly one verification: against the dummy hash when there is no stored one. */
    (void)lt__api_password_verify(r, c->phc, c->password, c->pwlen, 1, login_verified, c);
}

static void login_verified(lt_req_t *r, const lt_hasher_result_t *res, void *ctx)
{
    login_ctx_t *c = ctx;
    if (res->err != 0 && res->err != LT_EINVAL) {
        lt__api_hasher_failed(r, res->err);
        return;
    }
    if (res->err == LT_EINVAL && c->phc != NULL)
        lt_log(LT_LOG_WARN, "api", "request %s: user %s has a malformed stored password hash", r->request_id, c->user_id);
    int match = res->err == 0 && res->match && c->phc != NULL;
    c->reason = c->user_id == NULL                  ? "unknown_user"
                : !match                            ? "bad_password"
                : strcmp(c->status, "active") != 0  ? c->status /* disabled, locked */
                : c->reset_required                 ? "password_reset_required"
                                                    : NULL;
    const char *ip = lt_req_peer(r);
    if (c->reason != NULL) {
        const char *p[] = {c->tenant, c->email, c->user_id, c->tenant_id, ip, r->request_id, c->reason};
        (void)lt__api_query(r, &lt_auth_stmt_login_fail, p, 7, login_failed, c);
        return;
    }
    if (res->needs_rehash && res->phc != NULL)
        c->new_phc = pstr(r, res->phc);
    if (lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, c->rt, c->rt_hash) != 0 ||
        lt_auth_token_new(LT_AUTH_TOKEN_MFA, c->mfa, c->mfa_hash) != 0) {
        lt__api_unavailable(r, "No randomness is available.");
        return;
    }
    const lt_config_t *cfg = cfg_of(r);
    const char *p[] = {c->user_id,
                       c->tenant_id,
                       c->tenant,
                       c->email,
                       ip,
                       lt__api_user_agent(r),
                       pint(r, cfg->session_idle_ttl),
                       pint(r, cfg->session_max_ttl),
                       pint(r, cfg->access_token_ttl),
                       c->rt_hash,
                       c->phc,
                       c->new_phc,
                       r->request_id,
                       c->mfa_hash,
                       pint(r, cfg->mfa_challenge_ttl),
                       pint(r, cfg->mfa_enrollment_ttl)};
    (void)lt__api_query(r, &lt_auth_stmt_login_succeed, p, 16, login_succeeded, c);
}

static void login_failed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    login_ctx_t *c = ctx;
    (void)res;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (strcmp(c->reason, "password_reset_required") == 0)
        lt_http_problem(r, 403, "password_reset_required",
                        "The password is correct but must be changed: use the password reset.");
    else
        invalid_credentials(r);
}

static void login_succeeded(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    login_ctx_t *c = ctx;
    lt_auth_session_t s;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    int ret = lt_auth_decode_session(res, &s);
    if (ret == LT_ENOTFOUND) { /* disabled between the two steps */
        invalid_credentials(r);
        return;
    }
    if (ret != 0 || (s.status == LT_AUTH_REFRESH_OK && s.session_id == NULL)) {
        lt__api_bad_row(r, "latch_login_succeed");
        return;
    }
    const lt_config_t *cfg = cfg_of(r);
    if (s.status == LT_AUTH_LOGIN_MFA_REQUIRED) {
        lt_http_send_json(r, 200, json_pack("{s:b, s:s, s:[ss], s:i}", "mfa_required", 1, "mfa_token", c->mfa,
                                            "methods", "totp", "recovery_code", "expires_in", cfg->mfa_challenge_ttl));
        return;
    }
    if (s.status == LT_AUTH_LOGIN_ENROLL_REQUIRED) {
        lt_http_send_json(r, 200, json_pack("{s:b, s:s, s:i}", "mfa_enrollment_required", 1, "enrollment_token",
                                            c->mfa, "expires_in", cfg->mfa_enrollment_ttl));
        return;
    }
    if (s.status != LT_AUTH_REFRESH_OK) {
        lt__api_bad_row(r, "latch_login_succeed");
        return;
    }
    send_tokens(r, c->user_id, c->tenant_id, &s, c->rt, &first_party);
}

/* The bodies (free of h2o: tests/fuzz/fuzz_body_auth.c runs them). */
void lt__api_login_in(lt_api_in_t *in, const char **tenant, const char **email, const char **password)
{
    *tenant = lt__api_in_str(in, "tenant", 1, TENANT_MAX);
    *email = lt__api_in_str(in, "email", 1, EMAIL_MAX);
    *password = lt__api_in_str(in, "password", 1, LT_PASSWORD_MAX);
}

void lt__api_password_change_in(lt_api_in_t *in, const char **current, const char **next)
{
    *current = lt__api_in_str(in, "current_password", 1, LT_PASSWORD_MAX);
    *next = lt__api_in_str(in, "new_password", 1, LT_PASSWORD_MAX);
}

void lt__api_reset_request_in(lt_api_in_t *in, const char **tenant, const char **email)
{
    *tenant = lt__api_in_str(in, "tenant", 1, TENANT_MAX);
    *email = lt__api_in_str(in, "email", 1, EMAIL_MAX);
}

void lt__api_reset_confirm_in(lt_api_in_t *in, const char **token, const char **password)
{
    *token = lt__api_in_str(in, "token", 1, OPAQUE_MAX);
    *password = lt__api_in_str(in, "new_password", 1, LT_PASSWORD_MAX);
}

static int on_login(lt_req_t *r)
{
    lt_api_in_t in;
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    login_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    lt__api_login_in(&in, &c->tenant, &c->email, &c->password);
    if (c->tenant != NULL)
        lt__api_cors_tenant(r, NULL, c->tenant);
    /* the tenant's login bucket (the user's failures are the lockout's business) */
    if (lt__api_in_done(r, &in) != 0 || lt__api_rl_tenant_name(r, c->tenant) || !lt__api_keys_ready(r) ||
        lt__api_shed_password_work(r))
        return 0;
    c->pwlen = strlen(c->password);
    char buf[LT_AUTH_LIMITS_NPARAMS][12];
    const char *p[12] = {c->tenant, c->email, lt_req_peer(r)};
    lt__api_limits_params(r, buf, p + 3);
    p[11] = r->request_id;
    (void)lt__api_query(r, &lt_auth_stmt_login_begin, p, 12, login_begun, c);
    return 0;
}

/* ---- refresh ------------------------------------------------------------------------- */

/*
 * One presentation of a refresh token (sql/0007 latch_refresh has the reasoning). The new
 * token is made and sealed before the query: if the presented one turns out unused, it
 * becomes the successor and its sealed copy answers repeats within the grace window.
 */
typedef struct {
    token_out_t out;
    const char *cookie_sid; /* refresh from the cookie: the session it names */
    char old_hash[LT_AUTH_HASH_HEX_LEN + 1];
    char rt[LT_AUTH_TOKEN_LEN + 1];
    char rt_hash[LT_AUTH_HASH_HEX_LEN + 1];
    char sealed[LT_AUTH_SEALED_HEX_LEN + 1];
} refresh_ctx_t;

static void invalid_grant(lt_req_t *r, lt_api_errors_t style)
{
    static const char why[] = "The refresh token is invalid, expired or already used.";
    /* A refresh cookie that no longer works is of no use to the browser. */
    if (style == LT_API_ERRORS_PROBLEM && lt_req_cookie_mode(r))
        lt__api_cookies_clear(r);
    if (style == LT_API_ERRORS_OAUTH)
        lt__api_oauth_error(r, 400, "invalid_grant", why);
    else
        lt_http_problem(r, 400, "invalid_grant", why);
}

static void refresh_unavailable(lt_req_t *r, lt_api_errors_t style, const char *detail)
{
    if (style == LT_API_ERRORS_OAUTH) {
        lt_http_add_header(r, "retry-after", "1");
        lt__api_oauth_error(r, 503, "temporarily_unavailable", detail);
    } else {
        lt__api_unavailable(r, detail);
    }
}

static void refreshed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    refresh_ctx_t *c = ctx;
    lt_auth_session_t s;
    if (err != NULL) {
        if (c->out.style == LT_API_ERRORS_OAUTH)
            refresh_unavailable(r, c->out.style, "The database is unavailable.");
        else
            lt__api_store_problem(r, err);
        return;
    }
    if (lt_auth_decode_session(res, &s) != 0 ||
        ((s.status == LT_AUTH_REFRESH_OK || s.status == LT_AUTH_REFRESH_REPEAT) &&
         (s.user_id == NULL || s.tenant_id == NULL))) {
        lt_log(LT_LOG_ERROR, "api", "request %s: unexpected result from latch_refresh", r->request_id);
        refresh_unavailable(r, c->out.style, "The database answered unexpectedly.");
        return;
    }
    /* The ids in the cookie were checked (CSRF) before the rotation; they must be its session's. */
    if ((s.status == LT_AUTH_REFRESH_OK || s.status == LT_AUTH_REFRESH_REPEAT) && c->cookie_sid != NULL &&
        (s.session_id == NULL || strcmp(s.session_id, c->cookie_sid) != 0)) {
        lt_log(LT_LOG_WARN, "api", "request %s: refresh cookie names another session than its token", r->request_id);
        invalid_grant(r, c->out.style);
        return;
    }
    switch (s.status) {
    case LT_AUTH_REFRESH_OK:
        send_tokens(r, s.user_id, s.tenant_id, &s, c->rt, &c->out);
        break;
    case LT_AUTH_REFRESH_REPEAT: {
        /* The successor issued moments ago, not a new one: the family never forks. */
        lt_seal_key_t k;
        lt__api_master_key(cfg_of(r), &k);
        int ret = lt_auth_successor_open(&k, 1, c->old_hash, s.successor_sealed, c->rt);
        lt_wipe(&k, sizeof(k));
        if (ret != 0) {
            /* Sealed under another master key version (a rotation within the window), or
             * damaged: refuse this repeat; the family stays as it is. */
            lt_log(LT_LOG_WARN, "api", "request %s: session %s: sealed refresh successor does not open: %s",
                   r->request_id, s.session_id, lt_strerror(ret));
            invalid_grant(r, c->out.style);
            break;
        }
        send_tokens(r, s.user_id, s.tenant_id, &s, c->rt, &c->out);
        break;
    }
    case LT_AUTH_REFRESH_REUSE:
        lt_log(LT_LOG_WARN, "api", "request %s: refresh token reuse detected: session %s ended", r->request_id,
               s.session_id != NULL ? s.session_id : "?");
        invalid_grant(r, c->out.style);
        break;
    default:
        invalid_grant(r, c->out.style);
        break;
    }
    /* The plaintext tokens are no longer needed (the context is wiped at the end too). */
    lt_wipe(c->rt, sizeof(c->rt));
}

static void refresh_run(lt_req_t *r, const char *token, const char *client_id, const char *client_tenant,
                        lt_api_errors_t style, const char *cookie_sid)
{
    const lt_config_t *cfg = cfg_of(r);
    refresh_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    c->out.client_id = client_id != NULL ? client_id : LT_TOKEN_FIRST_PARTY_CLIENT;
    c->out.style = style;
    c->cookie_sid = cookie_sid;
    if (client_tenant != NULL)
        lt__api_cors_tenant(r, client_tenant, NULL);
    if (token == NULL || lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, token, strnlen(token, OPAQUE_MAX), c->old_hash) != 0 ||
        (client_tenant != NULL && !lt_auth_uuid_ok(client_tenant))) {
        invalid_grant(r, style);
        return;
    }
    lt_keyring_t *kr = lt__api_ring(r);
    if (kr == NULL || lt_keyring_active(kr) == NULL) {
        refresh_unavailable(r, style, "No signing key is loaded yet.");
        return;
    }
    lt_seal_key_t k;
    lt__api_master_key(cfg, &k);
    int ret = lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, c->rt, c->rt_hash);
    ret = ret ? ret : lt_auth_successor_seal(&k, c->old_hash, c->rt, c->sealed);
    lt_wipe(&k, sizeof(k));
    if (ret != 0) {
        refresh_unavailable(r, style, "No randomness is available.");
        return;
    }
    const char *p[] = {c->old_hash,
                       c->rt_hash,
                       c->sealed,
                       pint(r, cfg->session_idle_ttl),
                       pint(r, cfg->access_token_ttl),
                       pint(r, cfg->refresh_reuse_grace),
                       client_tenant,
                       lt_req_peer(r),
                       r->request_id};
    (void)lt__api_query(r, &lt_auth_stmt_refresh, p, 9, refreshed, c);
}

void lt__api_refresh(lt_req_t *r, const char *token, const char *client_id, const char *client_tenant,
                     lt_api_errors_t style)
{
    refresh_run(r, token, client_id, client_tenant, style, NULL);
}

/*
 * Cookie mode: the refresh token comes from __Host-latch_rt (any body is ignored), the CSRF
 * check runs before the rotation, and the answer sets the successor's cookie.
 */
static int refresh_from_cookie(lt_req_t *r)
{
    const char *tenant, *sid, *rt;
    if (!lt__api_rt_cookie(r, &tenant, &sid, &rt)) {
        invalid_grant(r, LT_API_ERRORS_PROBLEM);
        return 0;
    }
    lt__api_cors_tenant(r, tenant, NULL);
    if (lt__api_csrf_check(r, tenant, sid) != 0)
        return 0;
    /* The tenant doubles as the "client's tenant": the session must be one of its own. */
    refresh_run(r, rt, NULL, tenant, LT_API_ERRORS_PROBLEM, sid);
    return 0;
}

static int on_refresh(lt_req_t *r)
{
    lt_api_in_t in;
    if (lt_req_cookie_mode(r))
        return refresh_from_cookie(r);
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    const char *token = lt__api_in_str(&in, "refresh_token", 1, OPAQUE_MAX);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    lt__api_refresh(r, token, NULL, NULL, LT_API_ERRORS_PROBLEM);
    return 0;
}

/* ---- the bearer's own session and account -------------------------------------------- */

/*
 * lt__api_bearer plus the shape of the ids the /v1/me statements take (our own tokens
 * always pass; anything else must not turn into a database error).
 */
const lt_token_t *lt__api_me_bearer(lt_req_t *r)
{
    const lt_token_t *t = lt__api_bearer(r);
    if (t == NULL)
        return NULL;
    if (!lt_auth_uuid_ok(t->sid) || !lt_auth_uuid_ok(t->sub) || !lt_auth_uuid_ok(t->tenant)) {
        lt__api_session_ended(r);
        return NULL;
    }
    lt__api_cors_tenant(r, t->tenant, NULL);
    /* A browser sends the session cookie on its own, so a state change needs the CSRF
     * token too whenever it comes (reads change nothing). */
    const h2o_iovec_t m = r->req->method;
    int safe = h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("HEAD"));
    if (!safe && lt__api_cookie_session(r) && lt__api_csrf_check(r, t->tenant, t->sid) != 0)
        return NULL;
    return t;
}

/* Sends the JSON text the statement built, or 401 when it returned NULL (session ended). */
static void json_or_ended(lt_req_t *r, const char *err, PGresult *res, void *ctx)
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

static int me_query(lt_req_t *r, const lt_store_stmt_t *stmt)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t != NULL) {
        const char *p[] = {t->sid, t->sub, t->tenant};
        (void)lt__api_query(r, stmt, p, 3, json_or_ended, NULL);
    }
    return 0;
}

static int on_me(lt_req_t *r)
{
    return me_query(r, &lt_auth_stmt_me);
}

static int on_sessions(lt_req_t *r)
{
    return me_query(r, &lt_auth_stmt_session_list);
}

static void session_revoked(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *v = err == NULL ? lt_auth_value(res) : NULL;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (v != NULL && strcmp(v, "ok") == 0) {
        if (ctx != NULL) /* the caller's own session, signed in with cookies */
            lt__api_cookies_clear(r);
        send_no_content(r, 204);
    }
    else if (v != NULL && strcmp(v, "not_found") == 0)
        lt_http_problem(r, 404, "not_found", "No such session.");
    else
        lt__api_session_ended(r);
}

static int on_session_delete(lt_req_t *r)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return 0;
    const char *id = lt_req_param(r, "id");
    if (!lt_auth_uuid_ok(id)) {
        lt_http_problem(r, 404, "not_found", "No such session.");
        return 0;
    }
    const char *p[] = {t->sid, t->sub, t->tenant, id, lt_req_peer(r), r->request_id};
    int own = strcmp(id, t->sid) == 0 && lt__api_cookie_session(r);
    (void)lt__api_query(r, &lt_auth_stmt_session_revoke, p, 6, session_revoked, own ? (void *)r : NULL);
    return 0;
}

/* Logout is idempotent: an already ended session is not an error. Cookies go with it. */
static void logged_out(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    (void)res;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (lt__api_cookie_session(r))
        lt__api_cookies_clear(r);
    send_no_content(r, 204);
}

/* Runs a statement taking (sid, user_id, tenant_id, ip, request_id) for the bearer. */
static int bearer_session_call(lt_req_t *r, const lt_store_stmt_t *stmt, lt_api_query_cb cb)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t != NULL) {
        const char *p[] = {t->sid, t->sub, t->tenant, lt_req_peer(r), r->request_id};
        (void)lt__api_query(r, stmt, p, 5, cb, NULL);
    }
    return 0;
}

/*
 * Logout by the refresh cookie alone (a reloaded page that has no access token yet): the
 * CSRF token of the cookie's session, then the refresh token's session ends as RFC 7009
 * revocation ends it. A cookie that no longer works is cleared all the same.
 */
static int cookie_logout(lt_req_t *r)
{
    const char *tenant, *sid, *rt;
    if (!lt__api_rt_cookie(r, &tenant, &sid, &rt)) {
        lt__api_cookies_clear(r);
        send_no_content(r, 204);
        return 0;
    }
    lt__api_cors_tenant(r, tenant, NULL);
    if (lt__api_csrf_check(r, tenant, sid) != 0)
        return 0;
    char *hash = h2o_mem_alloc_pool(&r->req->pool, LT_AUTH_HASH_HEX_LEN + 1);
    if (lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, rt, strlen(rt), hash) != 0) {
        lt__api_cookies_clear(r);
        send_no_content(r, 204);
        return 0;
    }
    char *actor = h2o_mem_alloc_pool(&r->req->pool, strlen(sid) + 9);
    sprintf(actor, "session:%s", sid);
    const char *p[] = {hash, tenant, actor, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_auth_stmt_refresh_revoke, p, 5, logged_out, NULL);
    return 0;
}

static int on_logout(lt_req_t *r)
{
    const char *v;
    size_t n;
    if (lt_req_header(r, "authorization") == NULL && lt_req_cookie(r, "__Host-latch_rt", &v, &n))
        return cookie_logout(r);
    return bearer_session_call(r, &lt_auth_stmt_logout, logged_out);
}

static void logged_out_all(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    const char *v = err == NULL ? lt_auth_value(res) : NULL;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (v == NULL || v[0] == '-')
        lt__api_session_ended(r);
    else {
        if (lt__api_cookie_session(r)) /* the caller's own session ended too */
            lt__api_cookies_clear(r);
        send_no_content(r, 204);
    }
}

static int on_logout_all(lt_req_t *r)
{
    return bearer_session_call(r, &lt_auth_stmt_logout_all, logged_out_all);
}

/* ---- the bearer's current password, verified again ----------------------------------- */

/*
 * The password-change gate (the session is live; lockout and rate limits as for logins;
 * the stored hash) -> argon2 on the hasher -> `ok`, or, for a wrong password, the audit of
 * latch_password_change_failed (its gate slot stays reserved: it counts as a failure) and
 * 403 invalid_credentials.
 */
typedef struct {
    const lt_token_t *t;
    const char *password, *phc, *email;
    lt_api_reverified_cb ok;
    void *ctx;
} reverify_t;

static void reverify_refused(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)res;
    (void)ctx;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else
        lt_http_problem(r, 403, "invalid_credentials", "The current password is wrong.");
}

static void reverify_checked(lt_req_t *r, const lt_hasher_result_t *res, void *ctx)
{
    reverify_t *v = ctx;
    if (res->err != 0 && res->err != LT_EINVAL) {
        lt__api_hasher_failed(r, res->err);
        return;
    }
    if (res->err != 0 || !res->match || v->phc == NULL) {
        const char *p[] = {v->t->sub, v->t->tenant, lt_req_peer(r), r->request_id};
        (void)lt__api_query(r, &lt_auth_stmt_password_change_failed, p, 4, reverify_refused, v);
        return;
    }
    v->ok(r, v->email, v->ctx);
}

static void reverify_begun(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    reverify_t *v = ctx;
    lt_auth_pwchange_t row;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (lt_auth_decode_pwchange(res, &row) != 0) {
        lt__api_bad_row(r, "latch_password_change_begin");
        return;
    }
    if (row.gate == LT_AUTH_GATE_UNAUTHORIZED) {
        lt__api_session_ended(r);
        return;
    }
    if (row.gate != LT_AUTH_GATE_OK) {
        lt__api_too_many(r, row.gate == LT_AUTH_GATE_IP_LIMITED, row.retry_after);
        return;
    }
    v->phc = pstr(r, row.phc);
    v->email = pstr(r, row.email);
    (void)lt__api_password_verify(r, v->phc, v->password, strlen(v->password), 0, reverify_checked, v);
}

void lt__api_reverify_password(lt_req_t *r, const lt_token_t *t, const char *password, lt_api_reverified_cb ok,
                               void *ctx)
{
    reverify_t *v = lt__api_alloc_wiped(r, sizeof(*v));
    *v = (reverify_t){.t = t, .password = password, .ok = ok, .ctx = ctx};
    char buf[LT_AUTH_LIMITS_NPARAMS][12];
    const char *p[13] = {t->sid, t->sub, t->tenant, lt_req_peer(r)};
    lt__api_limits_params(r, buf, p + 4);
    p[12] = r->request_id;
    (void)lt__api_query(r, &lt_auth_stmt_password_change_begin, p, 13, reverify_begun, v);
}

/* ---- password change ----------------------------------------------------------------- */

typedef struct {
    const lt_token_t *t;
    const char *current, *next;
} pwchange_ctx_t;

static void pwchange_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (lt_auth_value_true(res))
        send_no_content(r, 204);
    else
        lt__api_session_ended(r);
}

static void pwchange_hashed(lt_req_t *r, const lt_hasher_result_t *res, void *ctx)
{
    pwchange_ctx_t *c = ctx;
    if (res->rejected) {
        weak_password(r, "new_password", res->reason);
        return;
    }
    if (res->err != 0 || res->phc == NULL) {
        lt__api_hasher_failed(r, res->err != 0 ? res->err : LT_EIO);
        return;
    }
    const char *p[] = {c->t->sid, c->t->sub, c->t->tenant, res->phc, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_auth_stmt_password_change, p, 6, pwchange_done, c);
}

/* The current password is right: the new one goes through the policy (email for its similarity check). */
static void pwchange_reverified(lt_req_t *r, const char *email, void *ctx)
{
    pwchange_ctx_t *c = ctx;
    (void)lt__api_password_hash(r, "new_password", c->next, strlen(c->next), email, pwchange_hashed, c);
}

static int on_password_change(lt_req_t *r)
{
    lt_api_in_t in;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    pwchange_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    c->t = t;
    lt__api_password_change_in(&in, &c->current, &c->next);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    lt__api_reverify_password(r, t, c->current, pwchange_reverified, c);
    return 0;
}

/* ---- password reset ------------------------------------------------------------------ */

typedef struct {
    const char *password;
    char token[LT_AUTH_TOKEN_LEN + 1];
    char hash[LT_AUTH_HASH_HEX_LEN + 1];
} reset_ctx_t;

static void reset_requested(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    static const char accepted[] = "{\"status\":\"accepted\"}";
    (void)res;
    (void)ctx;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else
        lt__api_send_json_text(r, 202, accepted);
}

/*
 * Always 202, whether the account exists or not. The token is made and hashed here either
 * way, and the SQL function does comparable work for both (it audits unknown accounts),
 * so neither the answer nor its shape tells accounts apart.
 */
static int on_reset_request(lt_req_t *r)
{
    lt_api_in_t in;
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    const char *tenant, *email;
    lt__api_reset_request_in(&in, &tenant, &email);
    if (tenant != NULL)
        lt__api_cors_tenant(r, NULL, tenant);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    reset_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    if (lt_auth_token_new(LT_AUTH_TOKEN_RESET, c->token, c->hash) != 0) {
        lt__api_unavailable(r, "No randomness is available.");
        return 0;
    }
    const char *p[] = {tenant,          email, c->token, c->hash, pint(r, cfg_of(r)->password_reset_ttl),
                       lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_auth_stmt_reset_request, p, 7, reset_requested, c);
    return 0;
}

static void invalid_reset_token(lt_req_t *r)
{
    lt_http_problem(r, 400, "invalid_token", "The password reset token is invalid, expired or already used.");
}

static void reset_hashed(lt_req_t *r, const lt_hasher_result_t *res, void *ctx);

static void reset_peeked(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    reset_ctx_t *c = ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    const char *email = lt_auth_value(res);
    if (email == NULL) {
        invalid_reset_token(r);
        return;
    }
    (void)lt__api_password_hash(r, "new_password", c->password, strlen(c->password), pstr(r, email), reset_hashed, c);
}

static void reset_confirmed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (lt_auth_value_true(res))
        send_no_content(r, 204);
    else
        invalid_reset_token(r); /* used or expired since the peek */
}

static void reset_hashed(lt_req_t *r, const lt_hasher_result_t *res, void *ctx)
{
    reset_ctx_t *c = ctx;
    if (res->rejected) {
        weak_password(r, "new_password", res->reason);
        return;
    }
    if (res->err != 0 || res->phc == NULL) {
        lt__api_hasher_failed(r, res->err != 0 ? res->err : LT_EIO);
        return;
    }
    const char *p[] = {c->hash, res->phc, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_auth_stmt_reset_confirm, p, 4, reset_confirmed, c);
}

static int on_reset_confirm(lt_req_t *r)
{
    lt_api_in_t in;
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    reset_ctx_t *c = lt__api_alloc_wiped(r, sizeof(*c));
    const char *token;
    lt__api_reset_confirm_in(&in, &token, &c->password);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    if (lt_auth_token_hash(LT_AUTH_TOKEN_RESET, token, strlen(token), c->hash) != 0) {
        invalid_reset_token(r);
        return 0;
    }
    const char *p[] = {c->hash};
    (void)lt__api_query(r, &lt_auth_stmt_reset_peek, p, 1, reset_peeked, c);
    return 0;
}


/* ---- registration -------------------------------------------------------------------- */

int lt__api_auth_statements(void)
{
    return lt_auth_statements();
}

int lt__api_auth_routes(lt_api_t *api, lt_router_t *router)
{
    int ret = 0;
    (void)api;
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/login", on_login, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/refresh", on_refresh, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/logout", on_logout, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/password-reset", on_reset_request, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/auth/password-reset/confirm", on_reset_confirm, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/me", on_me, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/me/sessions", on_sessions, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/me/sessions/{id}", on_session_delete, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/logout-all", on_logout_all, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/password", on_password_change, 0);
    return ret;
}
