/*
 * forward_auth: decisions for reverse proxies that ask before they forward a request.
 *
 *   GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS /v1/forward-auth          nginx auth_request, Traefik ForwardAuth
 *   GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS /v1/forward-auth/{path}   Envoy ext_authz (HTTP service, path_prefix)
 *
 * The original request. Envoy sends it as this request itself, its path appended to
 * /v1/forward-auth: then that path and this method are the original ones. nginx and Traefik
 * call /v1/forward-auth and describe it in headers: the URI in X-Forwarded-Uri (Traefik) or
 * X-Original-URI (our nginx example), the method in X-Forwarded-Method or X-Original-Method
 * (an nginx subrequest is always a GET, so the method header is required there). Any
 * source present must agree with the others and appear once: a client may add headers a
 * proxy passes on, and a forged X-Forwarded-Uri that the proxy did not overwrite must not
 * move the decision to another path; disagreement is a 400.
 *
 * Then: the route rules (policy/routes.h, file forward_auth_rules) map method and path to
 * a route; no route is 403. A public route answers 200 at once. Otherwise the credential,
 * `Authorization: Bearer <access token>` or the forward_auth_cookie cookie, is verified as
 * introspection does it (keyring, iss/aud/exp, revocation set; no database): none is 401,
 * a bad one 401 with error="invalid_token". The decision (tenant: the token's) is asked
 * of the worker's policy snapshot with subject {type: "user" (a session's token) or
 * "client" (client_credentials), id}, resource {type, id: the route's parameter, properties:
 * every parameter}, action {name} and context {method, path, host, ip}. Allowed: 200 with
 * X-Latch-Subject, X-Latch-Subject-Type, X-Latch-Tenant, X-Latch-Roles (the subject's
 * effective roles, comma-separated); denied: 403. An API key (`Authorization: Bearer lt_ak_...`
 * or `X-API-Key`) is taken before an access token: its subject is the key itself with its
 * effective roles (apikeys.c), the headers name its owner and X-Latch-Api-Key its key_id.
 *
 * Answers are 200 with an empty body, or problem+json; all no-store. Every outcome is
 * counted per worker (latch_forward_auth_total). Everything runs on the request's worker,
 * from memory.
 */
#include <arpa/inet.h>
#include <h2o.h>
#include <stdio.h>
#include <string.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "policy/routes.h"

/* X-Latch-Roles stays below common proxy header limits (nginx: 4-8 KB per line). */
#define ROLES_HEADER_MAX 2048
#define MAX_ROLES 256

static const char *const outcome_names[LT_FA_OUTCOMES] = {
    [LT_FA_ALLOWED] = "allowed", [LT_FA_PUBLIC] = "public",     [LT_FA_UNAUTHENTICATED] = "unauthenticated",
    [LT_FA_DENIED] = "denied",   [LT_FA_NO_ROUTE] = "no_route", [LT_FA_REFUSED] = "refused",
    [LT_FA_OFF] = "off",
};

static void count(lt_req_t *r, int outcome)
{
    LT_COUNTER_ADD(lt__api_worker(r)->m_fa[outcome], 1);
}

/* ---- start-up ------------------------------------------------------------------------ */

int lt__api_forward_auth_init(lt_api_t *api)
{
    const char *file = api->cfg->forward_auth_rules;
    if (file == NULL || *file == '\0')
        return 0;
    char err[512];
    int ret = lt_policy_routes_load(file, &api->fa_routes, err, sizeof(err));
    if (ret != 0) {
        lt_log(LT_LOG_ERROR, "api", "forward_auth_rules: %s", err);
        return ret;
    }
    lt_log(LT_LOG_INFO, "api", "forward-auth: %zu route rules from %s", lt_policy_routes_count(api->fa_routes), file);
    return 0;
}

void lt__api_forward_auth_fini(lt_api_t *api)
{
    lt_policy_routes_free(&api->fa_routes);
}

int lt__api_forward_auth_metrics(lt_api_t *api, lt_buf_t *b)
{
    uint64_t sum[LT_FA_OUTCOMES] = {0};
    int n = api->server != NULL ? lt_http_server_worker_count(api->server) : 0, ret = 0;
    for (int i = 0; i < n; i++) {
        lt_api_worker_t *w = lt_http_server_worker_app(api->server, i);
        for (int k = 0; w != NULL && k < LT_FA_OUTCOMES; k++)
            sum[k] += LT_COUNTER_GET(w->m_fa[k]);
    }
    ret |= lt_buf_appends(b, "# HELP latch_forward_auth_total Forward-auth answers, by outcome.\n"
                             "# TYPE latch_forward_auth_total counter\n");
    for (int k = 0; k < LT_FA_OUTCOMES; k++)
        ret |= lt_buf_appendf(b, "latch_forward_auth_total{outcome=\"%s\"} %llu\n", outcome_names[k],
                              (unsigned long long)sum[k]);
    return ret;
}

/* ---- the original request ------------------------------------------------------------ */

typedef lt_api_text_t text_t;

/* The value of header `name` in `h`: 0 absent, 1 present (v set), -1 given more than once. */
static int header_once(const h2o_headers_t *h, const char *name, text_t *v)
{
    ssize_t i = h2o_find_header_by_str(h, name, strlen(name), -1);
    if (i < 0)
        return 0;
    if (h2o_find_header_by_str(h, name, strlen(name), i) >= 0)
        return -1;
    v->p = h->entries[i].value.base;
    v->n = h->entries[i].value.len;
    return 1;
}

static int one_header(lt_req_t *r, const char *name, text_t *v)
{
    return header_once(&r->req->headers, name, v);
}

static int same(text_t a, text_t b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/*
 * Merges the sources of one fact (see the top): `own` (may be absent: n == 0 and p NULL)
 * and two headers. @return 0 (`out` set; p NULL when no source had it) or -1 (`why`).
 */
static int merge(const h2o_headers_t *h, text_t own, const char *h1, const char *h2, text_t *out, const char **why)
{
    text_t v[2];
    int k[2] = {header_once(h, h1, &v[0]), header_once(h, h2, &v[1])};
    *out = own;
    for (int i = 0; i < 2; i++) {
        if (k[i] < 0) {
            *why = "a header describing the original request appears more than once";
            return -1;
        }
        if (k[i] == 0)
            continue;
        if (out->p != NULL && !same(*out, v[i])) {
            *why = "the headers describing the original request disagree";
            return -1;
        }
        *out = v[i];
    }
    return 0;
}

int lt__api_fa_original(const h2o_headers_t *h, text_t own_uri, text_t own_method, text_t *uri, text_t *method,
                        const char **why)
{
    if (merge(h, own_uri, "x-forwarded-uri", "x-original-uri", uri, why) != 0 ||
        merge(h, own_method, "x-forwarded-method", "x-original-method", method, why) != 0)
        return -1;
    if (uri->p == NULL || method->p == NULL) {
        *why = uri->p == NULL ? "no original URI (X-Forwarded-Uri or X-Original-URI)"
                              : "no original method (X-Forwarded-Method or X-Original-Method)";
        return -1;
    }
    return 0;
}

/* ---- the credential ------------------------------------------------------------------ */

/*
 * The access token `jwt` verified, from the worker's token cache when it was seen before
 * (a hit whose ring changed since is checked again: its key must still be there), else
 * verified and cached with its introspection answer, so /oauth2/introspect shares the entry.
 * NULL when not valid now.
 */
static const lt_token_t *verified(lt_req_t *r, const char *jwt, size_t n)
{
    lt_tcache_entry_t *e = n > 0 ? lt__api_access_token(r, jwt, n) : NULL;
    return e != NULL ? &e->token : NULL;
}

static int find_cookie(lt_req_t *r, const char *name, text_t *out)
{
    return lt__api_fa_cookie(&r->req->headers, name, out);
}

int lt__api_fa_cookie(const h2o_headers_t *h, const char *name, text_t *out)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(h, H2O_TOKEN_COOKIE, i)) >= 0;) {
        const char *p = h->entries[i].value.base, *end = p + h->entries[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *pair = p;
            while (p < end && *p != ';')
                p++;
            const char *eq = memchr(pair, '=', (size_t)(p - pair));
            if (eq == NULL || (size_t)(eq - pair) != nlen || memcmp(pair, name, nlen) != 0)
                continue;
            const char *v = eq + 1, *ve = p;
            while (ve > v && ve[-1] == ' ')
                ve--;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
                v++, ve--;
            out->p = v;
            out->n = (size_t)(ve - v);
            return 1;
        }
    }
    return 0;
}

typedef enum { CRED_NONE, CRED_BAD, CRED_OK } cred_t;

/* The request's credential: a bearer access token, else the configured cookie's. */
static cred_t credential(lt_req_t *r, const lt_token_t **out)
{
    const char *cookie = lt__api_worker(r)->api->cfg->forward_auth_cookie;
    text_t v = {0};
    *out = NULL;
    int k = one_header(r, "authorization", &v);
    if (k < 0)
        return CRED_BAD;
    if (k > 0 && v.n >= 7 && strncasecmp(v.p, "Bearer ", 7) == 0) {
        v.p += 7, v.n -= 7;
        while (v.n > 0 && *v.p == ' ')
            v.p++, v.n--;
    } else if (cookie == NULL || *cookie == '\0' || !find_cookie(r, cookie, &v)) {
        return CRED_NONE; /* another scheme (Basic for the upstream, say) is not ours to judge */
    }
    const lt_token_t *t = verified(r, v.p, v.n);
    if (t == NULL || lt__api_revoked(r, t))
        return CRED_BAD;
    *out = t;
    return CRED_OK;
}

/* ---- answers ------------------------------------------------------------------------- */

static void unauthenticated(lt_req_t *r, int bad)
{
    count(r, LT_FA_UNAUTHENTICATED);
    lt_http_add_header(r, "www-authenticate",
                       bad ? "Bearer realm=\"latch\", error=\"invalid_token\"" : "Bearer realm=\"latch\"");
    lt_http_problem(r, 401, "invalid_token",
                    bad ? "The access token is invalid, expired or revoked." : "An access token is required.");
}

static void refused(lt_req_t *r, int status, const char *why)
{
    char detail[160];
    count(r, LT_FA_REFUSED);
    snprintf(detail, sizeof(detail), "The original request is refused: %s.", why);
    lt_http_problem(r, status, status == 400 ? "invalid_request" : "forbidden", detail);
}

/* A header value we emit: printable ASCII only, so nothing can split or smuggle a header. */
static int header_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* The identity headers of API key `k`: its owner, and the key's roles the owner holds. */
static void key_headers(lt_req_t *r, const lt_api_key_caller_t *k)
{
    char *roles = h2o_mem_alloc_pool(&r->req->pool, ROLES_HEADER_MAX);
    size_t len = 0, i;
    json_t *e;
    roles[0] = '\0';
    json_array_foreach(k->roles, i, e)
    {
        const char *name = json_string_value(e);
        size_t n = name != NULL ? strlen(name) : 0;
        if (n == 0 || strchr(name, ',') != NULL || !header_safe(name) || len + n + 2 > ROLES_HEADER_MAX)
            continue;
        if (len != 0)
            roles[len++] = ',';
        memcpy(roles + len, name, n + 1);
        len += n;
    }
    if (!header_safe(k->owner_id))
        return;
    lt_http_add_header(r, "x-latch-subject", k->owner_id);
    lt_http_add_header(r, "x-latch-subject-type", k->owner_is_client ? "client" : "user");
    lt_http_add_header(r, "x-latch-tenant", k->tenant);
    lt_http_add_header(r, "x-latch-roles", roles);
    lt_http_add_header(r, "x-latch-api-key", k->key_id);
}

/* 200 with the identity headers of `t` or `key` (both NULL: a public route without a valid
 * credential). */
static void allow(lt_req_t *r, const lt_token_t *t, const lt_api_key_caller_t *key, int outcome)
{
    count(r, outcome);
    if (key != NULL)
        key_headers(r, key);
    if (key == NULL && t != NULL && header_safe(t->sub) && header_safe(t->tenant)) {
        int client = t->sid == NULL;
        const char *names[MAX_ROLES];
        size_t n = lt_policy_subject_roles(lt__api_worker(r)->snapshot, t->tenant, client ? "client" : "user",
                                           client ? t->client_id : t->sub, names, MAX_ROLES);
        char *roles = h2o_mem_alloc_pool(&r->req->pool, ROLES_HEADER_MAX);
        size_t len = 0;
        roles[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            size_t k = strlen(names[i]);
            /* names are [a-z0-9_:.-] when a role defines them; a stray assigned name is skipped */
            if (k == 0 || strchr(names[i], ',') != NULL || !header_safe(names[i]) || len + k + 2 > ROLES_HEADER_MAX)
                continue;
            if (len != 0)
                roles[len++] = ',';
            memcpy(roles + len, names[i], k + 1);
            len += k;
        }
        lt_http_add_header(r, "x-latch-subject", t->sub);
        lt_http_add_header(r, "x-latch-subject-type", client ? "client" : "user");
        lt_http_add_header(r, "x-latch-tenant", t->tenant);
        lt_http_add_header(r, "x-latch-roles", roles);
    }
    lt_http_send(r, 200, NULL, "", 0);
}

/* ---- the decision -------------------------------------------------------------------- */

/* A string member from (p, n), left out when it is not UTF-8. */
static void set_text(json_t *o, const char *key, const char *p, size_t n)
{
    json_t *v = p != NULL ? json_stringn(p, n) : NULL;
    if (v != NULL)
        json_object_set_new(o, key, v);
}

/* The client's address as the proxy reports it (X-Real-IP, else the first X-Forwarded-For
 * entry), when it is an IP address; else the peer's. */
static const char *client_ip(lt_req_t *r, char *buf, size_t cap)
{
    text_t v;
    int k = one_header(r, "x-real-ip", &v);
    if (k <= 0 && one_header(r, "x-forwarded-for", &v) > 0) {
        const char *comma = memchr(v.p, ',', v.n);
        if (comma != NULL)
            v.n = (size_t)(comma - v.p);
        k = 1;
    }
    while (k > 0 && v.n > 0 && *v.p == ' ')
        v.p++, v.n--;
    while (k > 0 && v.n > 0 && v.p[v.n - 1] == ' ')
        v.n--;
    unsigned char addr[16];
    if (k > 0 && v.n < cap) {
        memcpy(buf, v.p, v.n);
        buf[v.n] = '\0';
        if (inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1)
            return buf;
    }
    return lt_req_peer(r);
}

static void decide(lt_req_t *r, const lt_token_t *t, const lt_api_key_caller_t *k, const lt_policy_route_match_t *m,
                   text_t method)
{
    const lt_policy_route_t *rt = m->route;
    int client = k == NULL && t->sid == NULL;
    const char *tenant = k != NULL ? k->tenant : t->tenant;
    /* A key is its own subject (its effective roles), never its owner with the owner's roles. */
    json_t *subject = k != NULL ? lt__api_key_subject(k)
                                : json_pack("{s:s, s:s}", "type", client ? "client" : "user", "id",
                                            client ? t->client_id : t->sub);
    json_t *props = json_object(), *resource = json_pack("{s:s}", "type", rt->resource_type);
    json_t *action = json_pack("{s:s}", "name", rt->action), *context = json_object();
    int ok = subject != NULL && props != NULL && resource != NULL && action != NULL && context != NULL;
    for (int i = 0; ok && i < rt->nparams; i++)
        set_text(props, rt->param_names[i], m->params[i].value, m->params[i].len);
    if (ok && rt->id_param >= 0)
        set_text(resource, "id", m->params[rt->id_param].value, m->params[rt->id_param].len);
    if (ok) {
        json_object_set(resource, "properties", props);
        text_t host = {r->req->authority.base, r->req->authority.len};
        if (one_header(r, "x-forwarded-host", &host) < 0)
            host = (text_t){0};
        char ipbuf[64];
        const char *ip = client_ip(r, ipbuf, sizeof(ipbuf));
        set_text(context, "method", method.p, method.n);
        set_text(context, "path", m->path, m->path_len);
        set_text(context, "host", host.p, host.n);
        set_text(context, "ip", ip, strlen(ip));
    }
    lt_policy_decision_t d = {0};
    int ret = ok ? lt__api_decide(r, tenant, subject, action, resource, context, 0, &d) : LT_ENOMEM;
    json_decref(subject);
    json_decref(props);
    json_decref(resource);
    json_decref(action);
    json_decref(context);
    json_decref(d.explanation);
    if (ret == LT_ENOMEM) {
        lt__api_internal_error(r, "out of memory deciding");
        return;
    }
    if (ret == 0 && d.allow) {
        allow(r, t, k, LT_FA_ALLOWED);
        return;
    }
    lt_log(LT_LOG_DEBUG, "api", "request %s: forward-auth route %d denied (%s)", r->request_id, rt->index,
           ret == 0 ? d.deciding : "invalid request");
    count(r, LT_FA_DENIED);
    lt_http_problem(r, 403, "forbidden", "The policy does not allow this request.");
}

static int on_forward_auth(lt_req_t *r)
{
    const lt_policy_routes_t *rules = lt__api_worker(r)->api->fa_routes;
    if (rules == NULL) {
        count(r, LT_FA_OFF);
        lt_http_problem(r, 404, "not_found", "Forward-auth is not configured (forward_auth_rules).");
        return 0;
    }
    /* Envoy: the original path follows the prefix (the rest parameter; its query follows it
     * in the raw path), and this request's method is the original one. */
    text_t own_uri = {0}, own_method = {0}, uri, method;
    const char *why = NULL;
    int envoy = r->nparams == 1;
    if (envoy) {
        own_uri.p = r->params[0].value - 1; /* from the '/' before the rest */
        own_uri.n = (size_t)(r->req->path.base + r->req->path.len - own_uri.p);
        own_method = (text_t){r->req->method.base, r->req->method.len};
    }
    if (lt__api_fa_original(&r->req->headers, own_uri, own_method, &uri, &method, &why) != 0) {
        refused(r, 400, why);
        return 0;
    }
    lt_policy_route_match_t m;
    switch (lt_policy_routes_match(rules, method.p, method.n, uri.p, uri.n, &m)) {
    case LT_POLICY_ROUTE_MATCHED:
        break;
    case LT_POLICY_ROUTE_NONE:
        count(r, LT_FA_NO_ROUTE);
        lt_http_problem(r, 403, "forbidden", "No route rule covers this request.");
        return 0;
    case LT_POLICY_ROUTE_MALFORMED:
        refused(r, 400, m.why);
        return 0;
    default:
        refused(r, 403, m.why);
        return 0;
    }
    const lt_token_t *t = NULL;
    const lt_api_key_caller_t *k = NULL;
    int kr = lt__api_key_from_request(r, &k); /* an API key before an access token; charged to its limit */
    if (kr == -2)
        return 0;
    cred_t c = kr == 1 ? CRED_OK : kr == -1 ? CRED_BAD : credential(r, &t);
    /* rate limits: the credential's user (or client) and tenant */
    if (c == CRED_OK && t != NULL && lt__api_rl_caller(r, t->sid != NULL ? LT_RL_USER : LT_RL_CLIENT,
                                          t->sid != NULL ? t->sub : t->client_id, t->tenant))
        return 0;
    if (m.route->is_public) {
        allow(r, t, k, LT_FA_PUBLIC); /* identity headers when a valid credential came along */
        return 0;
    }
    if (c != CRED_OK) {
        unauthenticated(r, c == CRED_BAD);
        return 0;
    }
    decide(r, t, k, &m, method);
    return 0;
}

int lt__api_forward_auth_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = 0;
    /* Explicit methods (HEAD comes with GET): what proxies send. Others are 405, which every
     * proxy treats as a refusal. */
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "PUT", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "OPTIONS", "/v1/forward-auth", on_forward_auth, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    ret = ret ? ret : lt_router_add(router, "PUT", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    ret = ret ? ret : lt_router_add(router, "OPTIONS", "/v1/forward-auth/{path}", on_forward_auth, LT_ROUTE_REST);
    return ret;
}
