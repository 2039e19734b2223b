/*
 * keys: the signing keys' HTTP surface.
 *   GET  /.well-known/jwks.json     the published keys (cacheable)
 *   GET  /v1/admin/keys             every key with its state (global admins)
 *   POST /v1/admin/keys/rotate      schedule a new key: 202 with it (global admins)
 *
 * Keys belong to the whole deployment, not to a tenant, so only global admins see or
 * rotate them; a tenant admin gets 403 `forbidden`. Like every admin request, the
 * statement runs only once the caller's session is confirmed live (lt__api_admin_run).
 *
 * A rotation is generated and sealed here, on the worker (a key pair and one AES-GCM seal:
 * tens of microseconds), and stored as `next` by latch_key_add_next, which NOTIFYs every
 * instance. It starts signing key_prepublish seconds later, when a maintenance step
 * promotes it.
 */
#include <h2o.h>
#include <libpq-fe.h>
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
 * Rendered once per ring on each worker (w->jwks, keyed by ring_gen): the ring changes
 * only through the LT_BC_KEYS broadcast, so no lock is needed.
 */
static int send_jwks(lt_req_t *r, const char *cache_control)
{
    lt_api_worker_t *w = lt__api_worker(r);
    if (w->jwks == NULL || w->jwks_gen != w->ring_gen) {
        char *text = NULL;
        size_t n = 0;
        int ret = lt_keyring_jwks(w->ring, &text, &n);
        if (ret != 0)
            return ret;
        free(w->jwks);
        w->jwks = text;
        w->jwks_len = n;
        w->jwks_gen = w->ring_gen;
    }
    lt_http_add_header(r, "cache-control", cache_control);
    lt_http_send(r, 200, "application/jwk-set+json", w->jwks, w->jwks_len); /* copies */
    return 0;
}

static int on_jwks(lt_req_t *r)
{
    const lt_config_t *cfg = cfg_of(r);
    lt_keyring_t *kr = lt__api_ring(r);
    char cc[48];
    snprintf(cc, sizeof(cc), "public, max-age=%d", cfg->jwks_max_age);
    if (kr == NULL || lt_keyring_active(kr) == NULL || send_jwks(r, cc) != 0) {
        lt_http_add_header(r, "cache-control", "no-store"); /* a cacheable route: say it for errors */
        unavailable(r, "No signing key is loaded yet.");
    }
    return 0;
}

/* ---- GET /v1/admin/keys (latch:keys:read; latch:keys:* is granted by global roles only) --- */

static void on_list_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0)) {
        lt__api_internal_error(r, "key list returned an unexpected row");
        return;
    }
    lt__api_send_json_text(r, 200, PQgetvalue(res, 0, 0));
}

static int on_list(lt_req_t *r)
{
    lt_api_caller_t c;
    if (lt__api_admin_caller(r, &c, "latch:keys:read") != 0)
        return 0;
    const char *params[] = {LIST_LIMIT};
    lt__api_admin_run(r, &c, lt_token_keys_stmt(LT_TOKEN_KEYS_LIST), params, 1, on_list_done, NULL);
    return 0;
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
        lt__api_internal_error(r, "key rotation returned an unexpected row");
        return;
    }
    lt__api_send_json_text(r, 202, PQgetvalue(res, 0, 0));
}

/* The key is made before the session check: a few tens of microseconds, and the check
 * then runs right before the statement that stores it. */
static int on_rotate(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_token_keystore_opts_t o;
    lt_seal_key_t seal;
    lt_token_new_key_t nk;
    char emsg[160], secs[16];
    if (lt__api_admin_caller(r, &c, "latch:keys:write") != 0)
        return 0;
    lt__api_keystore_opts(lt__api_worker(r)->api, &o, &seal);
    int ret = lt_token_key_seal_new(&o, &nk, emsg, sizeof(emsg));
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0) {
        lt__api_internal_error(r, emsg);
        return 0;
    }
    snprintf(secs, sizeof(secs), "%d", cfg_of(r)->key_prepublish);
    const char *params[] = {nk.kid, nk.alg, nk.jwk_text, nk.sealed_hex, secs, c.t->sub, lt_req_peer(r),
                            r->request_id};
    lt__api_admin_run(r, &c, lt_token_keys_stmt(LT_TOKEN_KEYS_ADD_NEXT), params, 8, on_rotate_done, NULL);
    lt_token_new_key_free(&nk); /* admin_run copied the parameters */
    return 0;
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
