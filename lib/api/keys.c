/*
 * keys: the signing keys' HTTP surface.
 *   GET  /.well-known/jwks.json     the published keys (cacheable)
 */
#include <stdio.h>
#include <stdlib.h>

#include "api/internal.h"

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
 * The active key and keys retired less than a token lifetime (plus the verifiers' clock
 * leeway) ago: every unexpired token stays verifiable. Rendered per request: a ring holds
 * a handful of keys, and which retired keys are still published changes with the clock.
 */
static int on_jwks(lt_req_t *r)
{
    const lt_config_t *cfg = cfg_of(r);
    lt_keyring_t *kr = lt_keyring_holder_get(&lt__api_worker(r)->api->keys);
    char *text = NULL;
    size_t n = 0;
    int64_t since = (int64_t)(lt_now_ms() / 1000) - cfg->access_token_ttl - LT_TOKEN_LEEWAY;
    int ret = kr != NULL ? lt_keyring_jwks(kr, since, &text, &n) : LT_ESTATE;
    if (kr != NULL)
        lt_keyring_unref(kr);
    if (ret != 0) {
        lt_http_add_header(r, "cache-control", "no-store"); /* a cacheable route: say it for errors */
        unavailable(r, "No signing key is loaded yet.");
        return 0;
    }
    char cc[48];
    snprintf(cc, sizeof(cc), "public, max-age=%d", cfg->jwks_max_age);
    lt_http_add_header(r, "cache-control", cc);
    lt_http_send(r, 200, "application/jwk-set+json", text, n);
    free(text);
    return 0;
}

int lt__api_keys_statements(void)
{
    return 0;
}

int lt__api_keys_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    return lt_router_add(router, "GET", "/.well-known/jwks.json", on_jwks, LT_ROUTE_CACHEABLE);
}
