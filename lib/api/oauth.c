/*
 * oauth: the standard endpoints for services and OAuth clients.
 *   POST /oauth2/token                          client_credentials, refresh_token (RFC 6749)
 *   POST /oauth2/introspect                     RFC 7662, access tokens answered from memory
 *   POST /oauth2/revoke                         RFC 7009
 *   GET  /.well-known/oauth-authorization-server  RFC 8414 metadata
 *
 * Bodies are application/x-www-form-urlencoded; errors are RFC 6749 §5.2 JSON, not
 * problem+json, because that is what OAuth client libraries parse. Callers authenticate as
 * clients (client_secret_basic or client_secret_post) against the worker's in-memory
 * snapshot of clients, so introspection of an access token never waits on PostgreSQL: a
 * verified token is cached by its SHA-256 (token/cache.h) and checked against the
 * worker's revocation set on every answer.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "identity/apikeys.h"
#include "identity/auth.h"
#include "token/revoke.h"

/* Longest form value we look at (a JWT is capped at LT_TOKEN_MAX; secrets and ids are short). */
#define FORM_VALUE_MAX (LT_TOKEN_MAX + 64)
#define SCOPE_MAX 2048
#define INACTIVE "{\"active\":false}"

static const lt_config_t *cfg_of(lt_req_t *r)
{
    return lt__api_worker(r)->api->cfg;
}

static int64_t now_s(void)
{
    return (int64_t)(lt_now_ms() / 1000);
}

/* ---- errors and form bodies --------------------------------------------------------- */

void lt__api_oauth_error(lt_req_t *r, int status, const char *error, const char *description)
{
    lt_buf_t b = {0};
    int ret = lt_buf_appends(&b, "{\"error\":");
    ret = ret ? ret : lt_buf_append_json_string(&b, error, strlen(error));
    if (description != NULL) {
        ret = ret ? ret : lt_buf_appends(&b, ",\"error_description\":");
        ret = ret ? ret : lt_buf_append_json_string(&b, description, strlen(description));
    }
    ret = ret ? ret : lt_buf_appends(&b, "}");
    if (status == 401)
        lt_http_add_header(r, "www-authenticate", "Basic realm=\"latch\", charset=\"UTF-8\"");
    if (ret != 0) {
        lt_http_send(r, 500, "application/json", "{\"error\":\"server_error\"}", 24);
    } else {
        lt_http_send(r, status, "application/json", b.base, b.len);
    }
    lt_buf_free(&b);
}

/* application/x-www-form-urlencoded decoding ('+' is a space) into `out` (n+1 bytes).
 * @return the length, or -1 for a bad escape, a NUL or invalid UTF-8. */
static long form_decode(const char *in, size_t n, char *out)
{
    long len = lt_pct_decode(out, n + 1, in, n, LT_PCT_PLUS);
    return len >= 0 && lt_utf8_count(out, (size_t)len) >= 0 ? len : -1;
}

static int content_type_is_form(lt_req_t *r)
{
    const char *ct = lt_req_header(r, "content-type");
    if (ct == NULL)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

int lt__api_form_read(lt_req_t *r, lt_api_form_t *f)
{
    char err[128];
    memset(f, 0, sizeof(*f));
    if (!content_type_is_form(r)) {
        lt__api_oauth_error(r, 400, "invalid_request", "The request body must be application/x-www-form-urlencoded.");
        return -1;
    }
    h2o_iovec_t body = r->req->entity;
    /* Every decoded name and value goes into one buffer that is wiped when the request ends:
     * these bodies carry client secrets and tokens. Decoding never grows a string. */
    char *arena = lt__api_alloc_wiped(r, body.len + 2 * (LT_API_FORM_MAX + 1));
    if (lt__api_form_parse(body.base, body.len, arena, f, err, sizeof(err)) != 0) {
        lt__api_oauth_error(r, 400, "invalid_request", err);
        return -1;
    }
    return 0;
}

int lt__api_form_parse(const char *body, size_t len, char *arena, lt_api_form_t *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    const char *p = body, *end = body + len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *nend = eq != NULL ? eq : stop;
            const char *v = eq != NULL ? eq + 1 : stop;
            if ((size_t)(nend - p) > 64 || (size_t)(stop - v) > FORM_VALUE_MAX) {
                snprintf(err, errlen, "A parameter is too long.");
                return -1;
            }
            if (f->n == LT_API_FORM_MAX) {
                snprintf(err, errlen, "Too many parameters.");
                return -1;
            }
            char *name = arena;
            long nl = form_decode(p, (size_t)(nend - p), name);
            char *value = nl >= 0 ? name + nl + 1 : NULL;
            long vl = nl >= 0 ? form_decode(v, (size_t)(stop - v), value) : -1;
            if (nl < 0 || vl < 0) {
                snprintf(err, errlen, "The form body is not valid UTF-8 form encoding.");
                return -1;
            }
            arena = value + vl + 1;
            for (int i = 0; i < f->n; i++)
                if (strcmp(f->names[i], name) == 0) {
                    snprintf(err, errlen, "The parameter '%.64s' is given more than once.", name);
                    return -1;
                }
            f->names[f->n] = name;
            f->values[f->n] = value;
            f->lens[f->n] = (size_t)vl;
            f->n++;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

const char *lt__api_form_get(const lt_api_form_t *f, const char *name)
{
    for (int i = 0; f != NULL && i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

/* A required parameter, non-empty; else 400 invalid_request naming it. */
static const char *form_need(lt_req_t *r, const lt_api_form_t *f, const char *name)
{
    const char *v = lt__api_form_get(f, name);
    if (v == NULL || v[0] == '\0') {
        char msg[96];
        snprintf(msg, sizeof(msg), "The parameter '%s' is required.", name);
        lt__api_oauth_error(r, 400, "invalid_request", msg);
        return NULL;
    }
    return v;
}

/* ---- client authentication ---------------------------------------------------------- */

/* Standard base64 (RFC 4648 §4, padded) into `out` (n / 4 * 3 + 1 bytes). @return length or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    if (n == 0 || n % 4 != 0)
        return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts padding as zero bytes: take them off again. */
    if (in[n - 1] == '=')
        len--;
    if (in[n - 2] == '=')
        len--;
    out[len] = '\0';
    return len;
}

static const lt_client_t *invalid_client(lt_req_t *r, const char *why)
{
    lt_log(LT_LOG_DEBUG, "api", "request %s: client authentication failed: %s", r->request_id, why);
    lt__api_oauth_error(r, 401, "invalid_client", "Client authentication failed.");
    return NULL;
}

const lt_client_t *lt__api_client_auth(lt_req_t *r, const lt_api_form_t *f)
{
    lt_api_worker_t *w = lt__api_worker(r);
    const char *h = lt_req_header(r, "authorization");
    const char *post_id = lt__api_form_get(f, "client_id"), *post_secret = lt__api_form_get(f, "client_secret");
    const char *id, *secret;

    if (h != NULL) {
        if (post_secret != NULL) {
            lt__api_oauth_error(r, 400, "invalid_request", "Use one client authentication method, not two.");
            return NULL;
        }
        if (strncasecmp(h, "Basic ", 6) != 0)
            return invalid_client(r, "not Basic");
        const char *b = h + 6;
        while (*b == ' ')
            b++;
        size_t bn = strlen(b);
        if (bn > 2048)
            return invalid_client(r, "Basic credentials too long");
        /* The decoded pair and its two halves in one buffer wiped with the request. */
        char *plain = lt__api_alloc_wiped(r, 2 * (bn / 4 * 3 + 1));
        long n = b64_decode(b, bn, (unsigned char *)plain);
        char *colon = n > 0 ? memchr(plain, ':', (size_t)n) : NULL;
        if (colon == NULL)
            return invalid_client(r, "malformed Basic credentials");
        /* RFC 6749 §2.3.1: both halves are form-encoded before base64. */
        size_t il = (size_t)(colon - plain), sl = (size_t)n - il - 1;
        char *idbuf = plain + n + 1, *secretbuf = idbuf + il + 1;
        if (form_decode(plain, il, idbuf) < 0 || form_decode(colon + 1, sl, secretbuf) < 0)
            return invalid_client(r, "malformed Basic credentials");
        id = idbuf;
        secret = secretbuf;
        if (post_id != NULL && strcmp(post_id, id) != 0) {
            lt__api_oauth_error(r, 400, "invalid_request", "client_id differs from the authenticated client.");
            return NULL;
        }
    } else {
        if (post_id == NULL || post_secret == NULL)
            return invalid_client(r, "no client credentials");
        id = post_id;
        secret = post_secret;
    }
    const lt_client_t *c = w->clients != NULL ? lt_clients_find(w->clients, id, strlen(id)) : NULL;
    /* Same cost whether or not the client exists. */
    int ok = lt_client_check_secret(c, secret, strlen(secret));
    if (!ok || c == NULL)
        return invalid_client(r, c == NULL ? "unknown client" : "wrong secret");
    if (lt__api_signature_check(r, c) != 0) /* signing.c */
        return NULL;
    /* rate limits: this client and its tenant (429 answered: NULL like any refusal) */
    return lt__api_rl_caller(r, LT_RL_CLIENT, c->id, c->tenant_id) ? NULL : c;
}

/* The form body and the client that sent it, or NULL once an error has been answered. */
static const lt_client_t *oauth_begin(lt_req_t *r, lt_api_form_t *f)
{
    return lt__api_form_read(r, f) == 0 ? lt__api_client_auth(r, f) : NULL;
}

/* ---- POST /oauth2/token ------------------------------------------------------------- */

static void send_text_json(lt_req_t *r, int status, const char *text, size_t n)
{
    lt_http_send(r, status, "application/json", text, n);
}

/* Checks the requested scope (space-separated) against the client's; fills `granted`
 * (the request, or every scope of the client when none was asked for). */
static int scope_grant(lt_req_t *r, const lt_client_t *c, const char *req, lt_buf_t *granted)
{
    int ret = 0;
    if (req == NULL) {
        for (int i = 0; c->scopes != NULL && c->scopes[i] != NULL; i++) {
            ret = ret ? ret : (i > 0 ? lt_buf_appends(granted, " ") : 0);
            ret = ret ? ret : lt_buf_appends(granted, c->scopes[i]);
        }
        return ret != 0 ? -1 : 0;
    }
    if (strlen(req) > SCOPE_MAX) {
        lt__api_oauth_error(r, 400, "invalid_scope", "The scope parameter is too long.");
        return -1;
    }
    const char *p = req;
    int first = 1;
    while (*p != '\0') {
        size_t n = strcspn(p, " ");
        if (n > 0) {
            if (!lt_client_has_scope(c, p, n)) {
                lt__api_oauth_error(r, 400, "invalid_scope", "A requested scope is not allowed for this client.");
                return -1;
            }
            ret = ret ? ret : (!first ? lt_buf_appends(granted, " ") : 0);
            ret = ret ? ret : lt_buf_append(granted, p, n);
            first = 0;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    if (ret != 0)
        return -1;
    return 0;
}

static void client_credentials(lt_req_t *r, const lt_client_t *c, const lt_api_form_t *f)
{
    const lt_config_t *cfg = cfg_of(r);
    lt_keyring_t *kr = lt__api_ring(r);
    lt_buf_t scope = {0};
    if (scope_grant(r, c, lt__api_form_get(f, "scope"), &scope) != 0) {
        lt_buf_free(&scope);
        return;
    }
    if (lt_buf_append(&scope, "", 1) != 0) { /* NUL-terminate */
        lt_buf_free(&scope);
        lt__api_oauth_error(r, 500, "server_error", NULL);
        return;
    }
    json_t *roles = json_array();
    lt_token_claims_t claims = {
        .iss = cfg->issuer,
        .aud = cfg->audience,
        .sub = c->id,
        .client_id = c->id,
        .tenant = c->tenant_id,
        .scope = scope.base,
        .roles = roles,
        .now = now_s(),
        .ttl = cfg->access_token_ttl,
    };
    char *jwt = NULL, jti[64];
    int ret = kr != NULL ? lt_token_issue(kr, &claims, &jwt, jti, sizeof(jti)) : LT_ESTATE;
    json_decref(roles);
    if (ret != 0) {
        lt_buf_free(&scope);
        lt_log(LT_LOG_ERROR, "api", "request %s: client token not issued: %s", r->request_id, lt_strerror(ret));
        lt_http_add_header(r, "retry-after", "1");
        lt__api_oauth_error(r, 503, "temporarily_unavailable", "Access tokens cannot be issued now.");
        return;
    }
    lt_log(LT_LOG_INFO, "api", "request %s: client %s got access token %s", r->request_id, c->id, jti);
    json_t *body = json_pack("{s:s, s:s, s:i, s:s}", "access_token", jwt, "token_type", "Bearer", "expires_in",
                             cfg->access_token_ttl, "scope", scope.base);
    lt_wipe(jwt, strlen(jwt));
    free(jwt);
    lt_buf_free(&scope);
    lt_http_send_json(r, 200, body);
}

static int on_token(lt_req_t *r)
{
    lt_api_form_t f;
    if (lt__api_form_read(r, &f) != 0)
        return 0;
    const char *grant = form_need(r, &f, "grant_type");
    if (grant == NULL)
        return 0;
    const lt_client_t *c = lt__api_client_auth(r, &f);
    if (c == NULL)
        return 0;
    lt__api_cors_tenant(r, c->tenant_id, NULL); /* only the client's tenant's origins see the answer */
    if (strcmp(grant, "client_credentials") == 0) {
        if (!(c->grants & LT_GRANT_CLIENT_CREDENTIALS)) {
            lt__api_oauth_error(r, 400, "unauthorized_client", "This client may not use the client_credentials grant.");
            return 0;
        }
        client_credentials(r, c, &f);
    } else if (strcmp(grant, "refresh_token") == 0) {
        if (!(c->grants & LT_GRANT_REFRESH_TOKEN)) {
            lt__api_oauth_error(r, 400, "unauthorized_client", "This client may not use the refresh_token grant.");
            return 0;
        }
        const char *rt = form_need(r, &f, "refresh_token");
        if (rt == NULL)
            return 0;
        /* The snapshot may be swapped while the database works: keep copies. */
        char *id = h2o_mem_alloc_pool(&r->req->pool, strlen(c->id) + 1);
        char *tenant = h2o_mem_alloc_pool(&r->req->pool, strlen(c->tenant_id) + 1);
        strcpy(id, c->id);
        strcpy(tenant, c->tenant_id);
        lt__api_refresh(r, rt, id, tenant, LT_API_ERRORS_OAUTH);
    } else {
        lt__api_oauth_error(r, 400, "unsupported_grant_type", "Supported: client_credentials, refresh_token.");
    }
    return 0;
}

/* ---- access tokens from memory ------------------------------------------------------ */

int lt__api_revoked(lt_req_t *r, const lt_token_t *t)
{
    lt_api_worker_t *w = lt__api_worker(r);
    int64_t now = now_s();
    if (w->revs == NULL)
        return 0;
    if (t->sid != NULL && lt_revset_has(w->revs, LT_REV_SID, t->sid, strlen(t->sid), now))
        return 1;
    return t->jti != NULL && lt_revset_has(w->revs, LT_REV_JTI, t->jti, strlen(t->jti), now);
}

/*
 * The cached, verified entry of an access token, or NULL when the token is not valid now
 * (malformed, forged, expired, wrong issuer or audience, unknown or retired key). A hit
 * whose ring has since changed is checked again: its key must still be in the ring.
 */
static lt_tcache_entry_t *access_token_lookup(lt_req_t *r, const char *jwt, size_t n);

/*
 * Once the introspection answer is rendered, a cached token needs only what revocation,
 * tenant and ownership checks read: keeping the whole claims object would cost ~4 KB per
 * entry (jansson's per-member overhead), the slim one about a quarter of that.
 */
static int slim(lt_token_t *t)
{
    static const char *const keep[] = {"sub", "sid", "jti", "tenant", "client_id", "roles", "amr"};
    json_t *small = json_object();
    if (small == NULL)
        return LT_ENOMEM;
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        json_t *v = json_object_get(t->claims, keep[i]);
        if (v != NULL && json_object_set(small, keep[i], v) != 0) {
            json_decref(small);
            return LT_ENOMEM;
        }
    }
    json_decref(t->claims);
    t->claims = small;
    t->sub = json_string_value(json_object_get(small, "sub"));
    t->sid = json_string_value(json_object_get(small, "sid"));
    t->jti = json_string_value(json_object_get(small, "jti"));
    t->tenant = json_string_value(json_object_get(small, "tenant"));
    t->client_id = json_string_value(json_object_get(small, "client_id"));
    t->roles = json_object_get(small, "roles");
    t->amr = json_object_get(small, "amr");
    t->scope = "";
    t->username = NULL;
    t->acr = NULL;
    return 0;
}

lt_tcache_entry_t *lt__api_access_token(lt_req_t *r, const char *jwt, size_t n)
{
    lt_api_worker_t *w = lt__api_worker(r);
    lt_tcache_entry_t *e = access_token_lookup(r, jwt, n);
    if (w->tcache != NULL) {
        lt_tcache_stats_t st;
        lt_tcache_stats(w->tcache, &st);
        __atomic_store_n(&w->m_tc_entries, (uint64_t)st.entries, __ATOMIC_RELAXED);
        __atomic_store_n(&w->m_tc_bytes, (uint64_t)st.bytes, __ATOMIC_RELAXED);
        __atomic_store_n(&w->m_tc_hits, st.hits, __ATOMIC_RELAXED);
        __atomic_store_n(&w->m_tc_misses, st.misses, __ATOMIC_RELAXED);
    }
    return e;
}

static lt_tcache_entry_t *access_token_lookup(lt_req_t *r, const char *jwt, size_t n)
{
    lt_api_worker_t *w = lt__api_worker(r);
    const lt_config_t *cfg = w->api->cfg;
    int64_t now = now_s();
    uint8_t key[32];
    if (w->ring == NULL || n > LT_TOKEN_MAX || w->tcache == NULL)
        return NULL;
    if (lt_tcache_key(jwt, n, key) != 0)
        return NULL; /* fail closed: inactive */
    lt_tcache_entry_t *e = lt_tcache_get(w->tcache, key, now);
    if (e != NULL) {
        if (e->ring_gen == w->ring_gen)
            return e;
        if (lt_keyring_find(w->ring, e->token.kid, strlen(e->token.kid)) != NULL) {
            e->ring_gen = w->ring_gen;
            return e;
        }
        lt_tcache_remove(w->tcache, key);
        return NULL;
    }
    lt_token_t t;
    lt_token_verify_opts_t o = {.iss = cfg->issuer, .aud = cfg->audience, .now = now};
    const char *why = NULL;
    if (lt_token_verify(w->ring, jwt, n, &o, &t, &why) != 0) {
        lt_log(LT_LOG_DEBUG, "api", "request %s: token inactive: %s", r->request_id, why != NULL ? why : "error");
        return NULL;
    }
    char *body = NULL;
    size_t blen = 0;
    if (lt_token_introspection_render(&t, &body, &blen) != 0 || slim(&t) != 0) {
        free(body);
        lt_token_free(&t);
        return NULL;
    }
    return lt_tcache_put(w->tcache, key, &t, w->ring_gen, body, blen, now);
}

/* ---- POST /oauth2/introspect -------------------------------------------------------- */

static void send_inactive(lt_req_t *r)
{
    send_text_json(r, 200, INACTIVE, sizeof(INACTIVE) - 1);
}

static int is_refresh_token(const char *t)
{
    return strncmp(t, "lt_rt_", 6) == 0;
}

/* The stored form (hex SHA-256) of a presented refresh token; -1 when it cannot be one. */
static int refresh_hash(const char *token, char hash[LT_AUTH_HASH_HEX_LEN + 1])
{
    size_t n = strlen(token);
    return n <= 128 && lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, token, n, hash) == 0 ? 0 : -1;
}

typedef struct {
    char tenant[LT_REV_TENANT_MAX + 1];
} introspect_ctx_t;

static void refresh_introspected(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL) {
        lt_http_add_header(r, "retry-after", "1");
        lt__api_oauth_error(r, 503, "temporarily_unavailable", "The database is unavailable.");
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        send_inactive(r);
        return;
    }
    json_t *doc = lt__api_json_parse(PQgetvalue(res, 0, 0));
    if (!json_is_object(doc)) {
        json_decref(doc);
        send_inactive(r);
        return;
    }
    const lt_config_t *cfg = cfg_of(r);
    json_object_set_new(doc, "active", json_true());
    json_object_set_new(doc, "token_type", json_string("refresh_token"));
    json_object_set_new(doc, "iss", json_string(cfg->issuer));
    lt_api_worker_t *w = lt__api_worker(r);
    json_object_set_new(doc, "revocation_seq", json_integer((json_int_t)(w->revs != NULL ? lt_revset_seq(w->revs) : 0)));
    lt_http_send_json(r, 200, doc);
}

static void send_active(lt_req_t *r, const lt_tcache_entry_t *e)
{
    lt_api_worker_t *w = lt__api_worker(r);
    /* Formatted by hand: this is the hot path, and printf's machinery shows in profiles. */
    static const char head[] = ",\"revocation_seq\":";
    char tail[48], digits[24];
    uint64_t seq = w->revs != NULL ? lt_revset_seq(w->revs) : 0;
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq != 0);
    int tn = (int)sizeof(head) - 1;
    memcpy(tail, head, sizeof(head) - 1);
    while (nd > 0)
        tail[tn++] = digits[--nd];
    tail[tn++] = '}';
    char *out = h2o_mem_alloc_pool(&r->req->pool, e->body_len + (size_t)tn);
    memcpy(out, e->body, e->body_len);
    memcpy(out + e->body_len, tail, (size_t)tn);
    send_text_json(r, 200, out, e->body_len + (size_t)tn);
}

static int on_introspect(lt_req_t *r)
{
    lt_api_form_t f;
    /* The caller may also be an API key (apikeys.c). */
    const lt_client_t *c = lt__api_form_read(r, &f) == 0 ? lt__api_caller_client(r, &f) : NULL;
    if (c == NULL)
        return 0;
    if (!lt_client_has_permission(c, "introspect")) {
        lt__api_oauth_error(r, 403, "unauthorized_client", "This client may not introspect tokens.");
        return 0;
    }
    const char *token = form_need(r, &f, "token");
    if (token == NULL)
        return 0;
    /* token_type_hint only orders the search (RFC 7662 §2.1); the prefix decides here. */
    if (lt_apikey_looks_like(token, strlen(token))) {
        lt__api_key_introspect(r, c, token);
        return 0;
    }
    if (is_refresh_token(token)) {
        char hash[LT_AUTH_HASH_HEX_LEN + 1];
        if (refresh_hash(token, hash) != 0) {
            send_inactive(r);
            return 0;
        }
        introspect_ctx_t *ic = h2o_mem_alloc_pool(&r->req->pool, sizeof(*ic));
        snprintf(ic->tenant, sizeof(ic->tenant), "%s", c->tenant_id);
        const char *p[] = {hash, ic->tenant};
        (void)lt__api_query(r, &lt_auth_stmt_refresh_introspect, p, 2, refresh_introspected, ic);
        return 0;
    }
    lt_tcache_entry_t *e = lt__api_access_token(r, token, strlen(token));
    if (e == NULL || lt__api_revoked(r, &e->token) || strcmp(e->token.tenant, c->tenant_id) != 0) {
        send_inactive(r);
        return 0;
    }
    send_active(r, e);
    return 0;
}

/* ---- POST /oauth2/revoke ------------------------------------------------------------ */

static void send_revoked(lt_req_t *r)
{
    lt_http_send(r, 200, "application/json", "{}", 2);
}

static void revoke_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    lt_rev_entry_t *e = ctx;
    if (err != NULL) {
        lt_http_add_header(r, "retry-after", "1");
        lt__api_oauth_error(r, 503, "temporarily_unavailable", "The database is unavailable.");
        return;
    }
    /* Honour it on this worker at once; the NOTIFY brings it to every other one. */
    if (e != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        e->seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        lt_api_worker_t *w = lt__api_worker(r);
        if (w->revs != NULL && e->seq > 0 && lt_revset_add(w->revs, e, now_s()) != 0)
            lt_log(LT_LOG_WARN, "api", "request %s: revocation %llu not held yet (the notification brings it)",
                   r->request_id, (unsigned long long)e->seq);
    }
    send_revoked(r);
}

static int on_revoke(lt_req_t *r)
{
    lt_api_form_t f;
    const lt_client_t *c = oauth_begin(r, &f);
    if (c == NULL)
        return 0;
    lt__api_cors_tenant(r, c->tenant_id, NULL);
    const char *token = form_need(r, &f, "token");
    if (token == NULL)
        return 0;
    char *actor = h2o_mem_alloc_pool(&r->req->pool, strlen(c->id) + 8);
    sprintf(actor, "client:%s", c->id);
    if (is_refresh_token(token)) {
        char *hash = h2o_mem_alloc_pool(&r->req->pool, LT_AUTH_HASH_HEX_LEN + 1);
        if (refresh_hash(token, hash) != 0) {
            send_revoked(r); /* RFC 7009 §2.2: an invalid token is not an error */
            return 0;
        }
        char *tenant = h2o_mem_alloc_pool(&r->req->pool, strlen(c->tenant_id) + 1);
        strcpy(tenant, c->tenant_id);
        const char *p[] = {hash, tenant, actor, lt_req_peer(r), r->request_id};
        (void)lt__api_query(r, &lt_auth_stmt_refresh_revoke, p, 5, revoke_done, NULL);
        return 0;
    }
    lt_tcache_entry_t *ce = lt__api_access_token(r, token, strlen(token));
    /* Unknown, invalid, expired or another tenant's: nothing to do, and nothing to tell. */
    if (ce == NULL || strcmp(ce->token.tenant, c->tenant_id) != 0) {
        send_revoked(r);
        return 0;
    }
    const lt_token_t *t = &ce->token;
    const char *owner = t->client_id;
    if ((owner == NULL || strcmp(owner, c->id) != 0) && !lt_client_has_permission(c, "revoke")) {
        lt__api_oauth_error(r, 400, "unauthorized_client", "This client may only revoke its own tokens.");
        return 0;
    }
    lt_rev_entry_t *e = h2o_mem_alloc_pool(&r->req->pool, sizeof(*e));
    memset(e, 0, sizeof(*e));
    e->kind = LT_REV_JTI;
    e->exp = t->exp + LT_TOKEN_LEEWAY;
    snprintf(e->value, sizeof(e->value), "%s", t->jti);
    snprintf(e->tenant, sizeof(e->tenant), "%s", t->tenant);
    char *exp = h2o_mem_alloc_pool(&r->req->pool, 24);
    snprintf(exp, 24, "%lld", (long long)t->exp);
    const char *p[] = {e->value, e->tenant, exp, actor, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_token_stmt_revoke_jti, p, 6, revoke_done, e);
    return 0;
}

/* ---- RFC 8414 metadata -------------------------------------------------------------- */

static int on_metadata(lt_req_t *r)
{
    const lt_config_t *cfg = cfg_of(r);
    const char *iss = cfg->issuer;
    size_t n = strlen(iss);
    while (n > 0 && iss[n - 1] == '/')
        n--;
    char ep[5][512];
    static const char *const paths[5] = {"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke",
                                         "/.well-known/jwks.json", "/v1/revocations"};
    for (int i = 0; i < 5; i++)
        snprintf(ep[i], sizeof(ep[i]), "%.*s%s", (int)n, iss, paths[i]);
    json_t *auth = json_pack("[s,s]", "client_secret_basic", "client_secret_post");
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:[s,s], s:[], s:O, s:O, s:O, s:s}", "issuer", iss, "token_endpoint", ep[0],
        "introspection_endpoint", ep[1], "revocation_endpoint", ep[2], "jwks_uri", ep[3], "grant_types_supported",
        "client_credentials", "refresh_token",
        /* No authorization endpoint: sign-in is /v1/auth/login; RFC 8414 still wants the member. */
        "response_types_supported", "token_endpoint_auth_methods_supported", auth,
        "introspection_endpoint_auth_methods_supported", auth, "revocation_endpoint_auth_methods_supported", auth,
        "revocation_feed_endpoint", ep[4]);
    json_decref(auth);
    lt_http_add_header(r, "cache-control", "public, max-age=300");
    lt_http_send_json(r, 200, doc);
    return 0;
}

int lt__api_oauth_statements(void)
{
    return lt_token_statements();
}

int lt__api_oauth_routes(lt_api_t *api, lt_router_t *router)
{
    int ret;
    (void)api;
    ret = lt_router_add(router, "POST", "/oauth2/token", on_token, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/oauth2/introspect", on_introspect, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/oauth2/revoke", on_revoke, 0);
    ret = ret ? ret
              : lt_router_add(router, "GET", "/.well-known/oauth-authorization-server", on_metadata, LT_ROUTE_CACHEABLE);
    return ret;
}
