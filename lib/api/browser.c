/*
 * browser: what the sign-in surface does for browser frontends (README, "Browser
 * frontends"); http/cors.c does the CORS protocol, identity/browser.c holds the data.
 *
 * CORS per tenant: the http filter echoes an Origin that *some* tenant lists (a preflight,
 * or an answer before anyone knows the tenant: a bad bearer, an unknown MFA token); the
 * handlers narrow that with lt__api_cors_tenant as soon as they know the tenant (login:
 * the tenant named in the body; bearer and refresh cookie: the session's), so an answer
 * about a tenant is readable only by that tenant's origins.
 *
 * Cookie mode (X-Latch-Mode: cookie, TLS only): the refresh token travels in
 *   __Host-latch_rt=<tenant id>.<session id>.<refresh token>; Max-Age=...; Path=/; Secure; HttpOnly; SameSite=Strict
 * and never in a body; a CSRF token, HMAC(master-derived key, tenant id, session id)
 * (identity/browser.h), in
 *   __Host-latch_csrf=<token>; Max-Age=...; Path=/; Secure; SameSite=Strict
 * (readable by the page) and in the body as csrf_token. A state change authenticated by the
 * session of that cookie must send X-CSRF-Token equal to the cookie and valid for the
 * session (double submit, bound to the session, compared in constant time): a cross-site
 * page can neither read the cookie nor, without an allowed preflight, set the header. The
 * ids ride in the refresh cookie so the check runs before any database work.
 *
 * Threading: handlers on the request's worker thread; the reload on the control thread.
 */
#include <h2o.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "http/cors.h"
#include "identity/auth.h"
#include "identity/browser.h"

#define RT_COOKIE "__Host-latch_rt"
#define CSRF_COOKIE "__Host-latch_csrf"
#define UUID_LEN 36
/* <tenant>.<session>.<refresh token> */
#define RT_COOKIE_VALUE_LEN (UUID_LEN + 1 + UUID_LEN + 1 + LT_AUTH_TOKEN_LEN)

/* ---- the origins snapshot ------------------------------------------------------------ */

static void *origins_ref(void *o)
{
    lt_browser_origins_ref(o);
    return o;
}

static void origins_unref(void *o)
{
    lt_browser_origins_unref(o);
}

/* The http filter's question: does any tenant list this origin? */
static int any_tenant(lt_req_t *r, const char *origin, size_t n)
{
    lt_api_t *api = lt__api_worker(r)->api;
    lt_browser_origins_t *o = lt_holder_get(&api->origins);
    int ok = lt_browser_origin_any(o, origin, n);
    lt_browser_origins_unref(o);
    return ok;
}

static int load(lt_api_t *api)
{
    char err[256] = "";
    lt_browser_origins_t *o = NULL;
    uint64_t asked = lt__api_settle_asked(api, LT_SETTLE_K_ORIGINS);
    int ret = lt_browser_origins_load(api->cfg->database_url, &o, err, sizeof(err));
    if (ret != 0) {
        lt_log(LT_LOG_WARN, "api", "CORS origins not loaded: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "",
               err);
        return ret;
    }
    lt_log(LT_LOG_DEBUG, "api", "CORS origins loaded: %zu", lt_browser_origins_count(o));
    lt_holder_set(&api->origins, o);
    lt__api_settle_loaded(api, LT_SETTLE_K_ORIGINS, asked);
    return 0;
}

int lt__api_origins_init(lt_api_t *api)
{
    int ret = lt_holder_init(&api->origins, origins_ref, origins_unref);
    if (ret != 0)
        return ret;
    /* Nothing allowed until the first load (the listener reloads on every reconnect). */
    if (load(api) != 0) {
        lt_browser_origins_t *none = NULL;
        if ((ret = lt_browser_origins_empty(&none)) != 0)
            return ret;
        lt_holder_set(&api->origins, none);
    }
    lt_http_cors_set_check(any_tenant);
    return 0;
}

void lt__api_origins_reload(lt_api_t *api)
{
    (void)load(api);
}

void lt__api_origins_fini(lt_api_t *api)
{
    lt_holder_dispose(&api->origins);
}

void lt__api_cors_tenant(lt_req_t *r, const char *tenant_id, const char *tenant_name)
{
    const char *origin = lt_req_cors_origin(r);
    if (origin == NULL)
        return;
    lt_browser_origins_t *o = lt_holder_get(&lt__api_worker(r)->api->origins);
    lt_http_cors_allow(r, lt_browser_origin_allowed(o, tenant_id, tenant_name, origin, strlen(origin)));
    lt_browser_origins_unref(o);
}

/* ---- cookies and CSRF ---------------------------------------------------------------- */

int lt__api_cookie_session(lt_req_t *r)
{
    const char *v;
    size_t n;
    return lt_req_cookie_mode(r) || lt_req_cookie(r, RT_COOKIE, &v, &n);
}

static void csrf_failed(lt_req_t *r)
{
    lt_http_problem(r, 403, "csrf_failed",
                    "This request is authenticated by a session cookie and needs its CSRF token in X-CSRF-Token.");
}

int lt__api_csrf_check(lt_req_t *r, const char *tenant, const char *sid)
{
    const char *cookie, *header = lt_req_header(r, "x-csrf-token");
    size_t n;
    if (header == NULL || !lt_req_cookie(r, CSRF_COOKIE, &cookie, &n) || n != strlen(header) ||
        !lt_ct_eq(cookie, header, n)) {
        csrf_failed(r);
        return -1;
    }
    lt_seal_key_t k;
    lt__api_master_key(lt__api_worker(r)->api->cfg, &k);
    int ok = lt_browser_csrf_ok(&k, tenant, sid, header, n);
    lt_wipe(&k, sizeof(k));
    if (!ok) {
        csrf_failed(r);
        return -1;
    }
    return 0;
}

/* The cookies live as long as a refresh may extend the session without activity. */
static int cookie_max_age(lt_req_t *r)
{
    const lt_config_t *cfg = lt__api_worker(r)->api->cfg;
    return cfg->session_idle_ttl < cfg->session_max_ttl ? cfg->session_idle_ttl : cfg->session_max_ttl;
}

int lt__api_cookies_set(lt_req_t *r, json_t *body, const char *tenant, const char *sid, const char *rt)
{
    char csrf[LT_BROWSER_CSRF_LEN + 1];
    lt_seal_key_t k;
    lt__api_master_key(lt__api_worker(r)->api->cfg, &k);
    int ret = lt_browser_csrf_token(&k, tenant, sid, csrf);
    lt_wipe(&k, sizeof(k));
    if (ret != 0 || strlen(tenant) != UUID_LEN || strlen(sid) != UUID_LEN || strlen(rt) != LT_AUTH_TOKEN_LEN) {
        lt__api_unavailable(r, "The session cookie cannot be made now.");
        return -1;
    }
    int age = cookie_max_age(r);
    char *v = lt__api_alloc_wiped(r, RT_COOKIE_VALUE_LEN + 128);
    snprintf(v, RT_COOKIE_VALUE_LEN + 128, RT_COOKIE "=%s.%s.%s; Max-Age=%d; Path=/; Secure; HttpOnly; SameSite=Strict",
             tenant, sid, rt, age);
    lt_http_add_header(r, "set-cookie", v);
    char c[LT_BROWSER_CSRF_LEN + 96];
    snprintf(c, sizeof(c), CSRF_COOKIE "=%s; Max-Age=%d; Path=/; Secure; SameSite=Strict", csrf, age);
    lt_http_add_header(r, "set-cookie", c);
    json_object_set_new(body, "csrf_token", json_string(csrf));
    return 0;
}

void lt__api_cookies_clear(lt_req_t *r)
{
    lt_http_add_header(r, "set-cookie", RT_COOKIE "=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict");
    lt_http_add_header(r, "set-cookie", CSRF_COOKIE "=; Max-Age=0; Path=/; Secure; SameSite=Strict");
}

int lt__api_rt_cookie(lt_req_t *r, const char **tenant, const char **sid, const char **rt)
{
    const char *v;
    size_t n;
    if (!lt_req_cookie(r, RT_COOKIE, &v, &n) || n != RT_COOKIE_VALUE_LEN || v[UUID_LEN] != '.' ||
        v[2 * UUID_LEN + 1] != '.')
        return 0;
    char *t = lt__api_alloc_wiped(r, RT_COOKIE_VALUE_LEN + 1);
    memcpy(t, v, n);
    t[UUID_LEN] = t[2 * UUID_LEN + 1] = '\0';
    if (!lt_auth_uuid_ok(t) || !lt_auth_uuid_ok(t + UUID_LEN + 1))
        return 0;
    *tenant = t;
    *sid = t + UUID_LEN + 1;
    *rt = t + 2 * UUID_LEN + 2;
    return 1;
}

/* ---- the tenant's allow-list on the admin API ------------------------------------------ */

const char *lt__api_cors_origins_in(lt_req_t *r, lt_api_in_t *in)
{
    json_t *a = lt__api_in_arr(in, "cors_origins", 0);
    json_t *v;
    size_t i;
    char field[40];
    int bad = 0;
    if (a == NULL)
        return NULL;
    if (json_array_size(a) > LT_BROWSER_ORIGINS_PER_TENANT) {
        lt__api_in_error(in, "cors_origins", "must list at most 20 origins");
        return NULL;
    }
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        const char *why = NULL;
        if (s == NULL || !lt_browser_origin_ok(s, json_string_length(v)))
            why = "must be an origin https://host[:port]: lower case, no path, no wildcard, no default port";
        for (size_t j = 0; why == NULL && j < i; j++)
            if (json_equal(json_array_get(a, j), v))
                why = "is listed twice";
        if (why != NULL) {
            snprintf(field, sizeof(field), "cors_origins[%zu]", i);
            lt__api_in_error(in, field, why);
            bad = 1;
        }
    }
    return bad ? NULL : lt__api_pool_json(r, a);
}
