/*
 * keys: the signing keys' HTTP surface.
 *   GET  /.well-known/jwks.json     the published keys (cacheable)
 *   GET  /v1/admin/keys             every key with its state (global admins)
 *   POST /v1/admin/keys/rotate      schedule a new key: 202 with it (global admins)
 *
 * Keys belong to the whole deployment, not to a tenant, so only global admins see or
 * rotate them; a tenant admin gets 403 `forbidden`. Like every admin request, the caller's
 * session must still be live (the admin module's CALLER_LIVE statement) before anything
 * happens: an access token outlives a disabled admin by up to its lifetime.
 *
 * A rotation is generated and sealed here, on the worker (a key pair and one AES-GCM seal:
 * tens of microseconds), and stored as `next` by latch_key_add_next, which NOTIFYs every
 * instance. It starts signing key_prepublish seconds later, when a maintenance step
 * promotes it.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "identity/admin.h"
#include "identity/auth.h"

/* Keys in the admin list: every live key, then the most recent retired ones. */
#define LIST_LIMIT "100"

static const lt_config_t *cfg_of(lt_req_t *r)
{
    return lt__api_worker(r)->api->cfg;
}

static void unavailable(lt_req_t *r, const char *detail)
{
    lt_http_add_header(r, "retry-after", "1");
    lt_http_problem(r, 503, "unavailable", detail);
}

static void internal_error(lt_req_t *r, const char *what)
{
    lt_log(LT_LOG_ERROR, "api", "request %s: %s", r->request_id, what);
    lt_http_problem(r, 500, "internal_error", "The request could not be completed.");
}

/* ---- JWKS ---------------------------------------------------------------------------- */

/*
 * The JWKS is every key of the ring: next, current and previous. The Cache-Control max-age
 * (jwks_max_age) is honest because both ends of a key's life are covered by the keystore:
 * a next key is published key_prepublish >= jwks_max_age (config enforces it) before it
 * signs, so a verifier's cached copy already holds it when its first token appears; a
 * previous key stays in the ring until access_token_ttl + leeway after it stopped signing,
 * so no cached copy is missing a key whose tokens still live. A retired key may linger in
 * caches for max-age more, which only keeps verifying tokens that have expired anyway.
 *
 * Rendering is cached for the last ring seen (all workers share it; a ring is immutable,
 * and the cache holds a reference so the pointer cannot be reused by a new ring).
 */
static struct {
    pthread_mutex_t lock;
    lt_keyring_t *ring; /* reference held */
    char *text;
    size_t n;
} jwks_cache = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0};

/* Sends the JWKS of `kr`, rendering it unless cached. @return 0 or an LT_E* code. */
static int send_jwks(lt_req_t *r, lt_keyring_t *kr, const char *cache_control)
{
    int ret = 0;
    pthread_mutex_lock(&jwks_cache.lock);
    if (jwks_cache.ring != kr) {
        char *text = NULL;
        size_t n = 0;
        if ((ret = lt_keyring_jwks(kr, &text, &n)) == 0) {
            lt_keyring_unref(jwks_cache.ring);
            free(jwks_cache.text);
            jwks_cache.ring = lt_keyring_ref(kr);
            jwks_cache.text = text;
            jwks_cache.n = n;
        }
    }
    if (ret == 0) {
        lt_http_add_header(r, "cache-control", cache_control);
        lt_http_send(r, 200, "application/jwk-set+json", jwks_cache.text, jwks_cache.n); /* copies */
    }
    pthread_mutex_unlock(&jwks_cache.lock);
    return ret;
}

static int on_jwks(lt_req_t *r)
{
    const lt_config_t *cfg = cfg_of(r);
    /* The worker's ring; before the first broadcast reached it, the holder's. */
    lt_keyring_t *held = NULL, *kr = lt__api_ring(r);
    if (kr == NULL)
        kr = held = lt_keyring_holder_get(&lt__api_worker(r)->api->keys);
    char cc[48];
    snprintf(cc, sizeof(cc), "public, max-age=%d", cfg->jwks_max_age);
    int ret = kr != NULL && lt_keyring_active(kr) != NULL ? send_jwks(r, kr, cc) : LT_ESTATE;
    lt_keyring_unref(held);
    if (ret != 0) {
        lt_http_add_header(r, "cache-control", "no-store"); /* a cacheable route: say it for errors */
        unavailable(r, "No signing key is loaded yet.");
    }
    return 0;
}

/* ---- admin: who may, and is the session live ------------------------------------------ */

typedef struct {
    const lt_token_t *t;
    lt_api_query_cb next; /* runs once the session is confirmed live */
} keys_req_t;

/* A global admin's verified token, or NULL after answering 401/403. */
static const lt_token_t *global_admin(lt_req_t *r)
{
    const lt_token_t *t = lt__api_admin(r);
    if (t == NULL)
        return NULL;
    if (!lt__api_is_global_admin(t)) {
        lt_http_problem(r, 403, "forbidden", "Signing keys are managed by global admins only.");
        return NULL;
    }
    /* Tokens we issued carry these as UUIDs; anything else must not reach a cast. */
    if (t->sid == NULL || !lt_auth_uuid_ok(t->tenant) || !lt_auth_uuid_ok(t->sub) || !lt_auth_uuid_ok(t->sid)) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The access token is invalid or expired.");
        return NULL;
    }
    return t;
}

static void on_caller_checked(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    keys_req_t *k = ctx;
    const char *live;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (lt_admin_doc(res, &live) != 0) {
        internal_error(r, "session check returned an unexpected row");
        return;
    }
    if (live == NULL || strcmp(live, "t") != 0) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The session of this access token has ended.");
        return;
    }
    k->next(r, NULL, NULL, k);
}

/* Authenticates a global admin, then runs `next` (with a keys_req_t as ctx). */
static int admin_start(lt_req_t *r, lt_api_query_cb next)
{
    const lt_token_t *t = global_admin(r);
    if (t == NULL)
        return 0;
    keys_req_t *k = h2o_mem_alloc_pool(&r->req->pool, sizeof(*k));
    k->t = t;
    k->next = next;
    const char *live[] = {t->sid, t->sub, t->tenant};
    lt__api_query(r, &lt_admin_stmts[LT_ADMIN_CALLER_LIVE], live, 3, on_caller_checked, k);
    return 0;
}

/* ---- GET /v1/admin/keys ------------------------------------------------------------------- */

static void on_list_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0)) {
        internal_error(r, "key list returned an unexpected row");
        return;
    }
    lt__api_send_json_text(r, 200, PQgetvalue(res, 0, 0));
}

static void list_run(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)err;
    (void)res;
    (void)ctx;
    const char *params[] = {LIST_LIMIT};
    lt__api_query(r, lt_token_keys_stmt(LT_TOKEN_KEYS_LIST), params, 1, on_list_done, NULL);
}

static int on_list(lt_req_t *r)
{
    return admin_start(r, list_run);
}

/* ---- POST /v1/admin/keys/rotate ------------------------------------------------------------- */

static void on_rotate_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        lt_http_problem(r, 409, "conflict",
                        "A next signing key is scheduled already; rotate again once it has started signing.");
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 2 || PQgetisnull(res, 0, 0)) {
        internal_error(r, "key rotation returned an unexpected row");
        return;
    }
    lt__api_send_json_text(r, 202, PQgetvalue(res, 0, 0));
}

static void rotate_run(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const lt_config_t *cfg = cfg_of(r);
    keys_req_t *k = ctx;
    lt_token_new_key_t nk;
    char emsg[160], secs[16];
    (void)err;
    (void)res;
    lt_seal_key_t seal = {.version = (uint8_t)cfg->master_key_version};
    memcpy(seal.key, cfg->master_key, sizeof(seal.key));
    lt_token_keystore_opts_t o = {
        .seal_keys = &seal,
        .nseal_keys = 1,
        .alg = cfg->signing_alg == LT_CONFIG_ALG_EDDSA ? LT_ALG_EDDSA : LT_ALG_ES256,
    };
    int ret = lt_token_key_seal_new(&o, &nk, emsg, sizeof(emsg));
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0) {
        internal_error(r, emsg);
        return;
    }
    snprintf(secs, sizeof(secs), "%d", cfg->key_prepublish);
    const char *params[] = {nk.kid, nk.alg, nk.jwk_text, nk.sealed_hex, secs, k->t->sub, lt_req_peer(r),
                            r->request_id};
    lt__api_query(r, lt_token_keys_stmt(LT_TOKEN_KEYS_ADD_NEXT), params, 8, on_rotate_done, NULL);
    lt_token_new_key_free(&nk); /* the store copied the parameters */
}

static int on_rotate(lt_req_t *r)
{
    return admin_start(r, rotate_run);
}

int lt__api_keys_statements(void)
{
    return lt_token_keys_statements();
}

int lt__api_keys_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = lt_router_add(router, "GET", "/.well-known/jwks.json", on_jwks, LT_ROUTE_CACHEABLE);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/keys", on_list, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/keys/rotate", on_rotate, 0);
    return ret;
}
