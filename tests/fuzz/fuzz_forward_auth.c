/*
 * fuzz_forward_auth: the request headers of /v1/forward-auth (lib/api/forward_auth.c):
 * the original request's URI and method from Envoy's own request, X-Forwarded-Uri/-Method
 * (Traefik) and X-Original-URI/-Method (nginx) (lt__api_fa_original), the credential cookie
 * (lt__api_fa_cookie), then the route rules (lt_policy_routes_match, lib/policy/routes.c)
 * as the handler applies them.
 *
 * Input: a flags byte, then lines. Flag bit 0: Envoy (the first two lines are this
 * request's own method and path); the other lines are headers "name: value" (the name
 * lower-cased as h2o gives it; known names as h2o's tokens, as the cookie lookup needs).
 *
 * Invariants:
 * - the original request is refused exactly when one of the four headers appears twice, or
 *   two present sources of the URI (or of the method) differ, or a fact has no source;
 *   otherwise the URI and method are the sources' (all equal) and the refusal says why;
 * - a found cookie is the value after "latch_at=" (quotes stripped) inside one Cookie header,
 *   without ';';
 * - route matching of the result answers one of its four results; a match has a decoded
 *   path starting with '/' without "//" and names a route.
 */
#include <string.h>

#include "api/bodies.h"
#include "fuzz.h"
#include "policy/routes.h"

#define MAX_HEADERS 64

static const char rules[] =
    "{\"routes\": ["
    "{\"methods\": [\"*\"], \"path\": \"/public/**\", \"public\": true},"
    "{\"methods\": [\"GET\", \"HEAD\"], \"path\": \"/docs/{id}\", \"resource_type\": \"document\", \"action\": \"read\", "
    "\"resource_id\": \"id\"},"
    "{\"methods\": [\"PUT\"], \"path\": \"/t/{tenant}/docs/{id}/**\", \"resource_type\": \"document\", \"action\": "
    "\"edit\", \"resource_id\": \"id\"},"
    "{\"path\": \"/\", \"public\": true}"
    "]}";

static lt_policy_routes_t *routes;

/* Occurrences of header `name` and the last value. */
static int count(const h2o_headers_t *h, const char *name, lt_api_text_t *v)
{
    int n = 0;
    for (size_t i = 0; i < h->size; i++)
        if (h->entries[i].name->len == strlen(name) && memcmp(h->entries[i].name->base, name, strlen(name)) == 0) {
            n++;
            v->p = h->entries[i].value.base;
            v->n = h->entries[i].value.len;
        }
    return n;
}

static int same(lt_api_text_t a, lt_api_text_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* The expected merge of one fact: 1 ok (*out), 0 absent, -1 refused. */
static int expect(const h2o_headers_t *h, lt_api_text_t own, const char *h1, const char *h2, lt_api_text_t *out)
{
    lt_api_text_t v1 = {0}, v2 = {0};
    int k1 = count(h, h1, &v1), k2 = count(h, h2, &v2);
    if (k1 > 1 || k2 > 1)
        return -1;
    lt_api_text_t srcs[3];
    int n = 0;
    if (own.p != NULL)
        srcs[n++] = own;
    if (k1)
        srcs[n++] = v1;
    if (k2)
        srcs[n++] = v2;
    for (int i = 1; i < n; i++)
        if (!same(srcs[0], srcs[i]))
            return -1;
    if (n == 0)
        return 0;
    *out = srcs[0];
    return 1;
}

static void check_cookie(const h2o_headers_t *h)
{
    lt_api_text_t v = {0};
    if (!lt__api_fa_cookie(h, "latch_at", &v))
        return;
    int inside = 0;
    for (size_t i = 0; i < h->size && !inside; i++) {
        const h2o_iovec_t *val = &h->entries[i].value;
        inside = h->entries[i].name == &H2O_TOKEN_COOKIE->buf && v.p >= val->base && v.p + v.n <= val->base + val->len;
        if (inside) {
            const char *start = v.p - (v.p > val->base && v.p[-1] == '"' ? 1 : 0) - 9;
            FUZZ_CHECK(start >= val->base && memcmp(start, "latch_at=", 9) == 0);
        }
    }
    FUZZ_CHECK(inside && memchr(v.p, ';', v.n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (routes == NULL) {
        char err[256];
        FUZZ_CHECK(lt_policy_routes_parse(rules, strlen(rules), &routes, err, sizeof(err)) == 0);
    }
    if (size < 1)
        return 0;
    char *text = fuzz_copy(data + 1, size - 1);
    const char *p = text, *end = text + size - 1;
    int envoy = data[0] & 1;
    lt_api_text_t own_uri = {0}, own_method = {0};
    h2o_header_t entries[MAX_HEADERS];
    h2o_iovec_t names[MAX_HEADERS];
    char namebuf[MAX_HEADERS][64];
    h2o_headers_t h = {entries, 0, MAX_HEADERS};
    for (int line = 0; p < end && h.size < MAX_HEADERS; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl != NULL ? nl : end;
        if (envoy && line < 2) {
            lt_api_text_t *t = line == 0 ? &own_method : &own_uri;
            t->p = p;
            t->n = (size_t)(stop - p);
        } else {
            const char *colon = memchr(p, ':', (size_t)(stop - p));
            size_t nlen = colon != NULL ? (size_t)(colon - p) : 0;
            if (colon != NULL && nlen > 0 && nlen < sizeof(namebuf[0])) {
                for (size_t i = 0; i < nlen; i++)
                    namebuf[h.size][i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
                const char *v = colon + 1;
                while (v < stop && *v == ' ')
                    v++;
                const h2o_token_t *tok = h2o_lookup_token(namebuf[h.size], nlen);
                names[h.size] = h2o_iovec_init(namebuf[h.size], nlen);
                entries[h.size].name = tok != NULL ? (h2o_iovec_t *)&tok->buf : &names[h.size];
                entries[h.size].orig_name = NULL;
                entries[h.size].value = h2o_iovec_init(v, (size_t)(stop - v));
                h.size++;
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }

    lt_api_text_t uri = {0}, method = {0}, eu = {0}, em = {0};
    const char *why = NULL;
    int ret = lt__api_fa_original(&h, own_uri, own_method, &uri, &method, &why);
    int ku = expect(&h, own_uri, "x-forwarded-uri", "x-original-uri", &eu);
    int km = expect(&h, own_method, "x-forwarded-method", "x-original-method", &em);
    int want_ok = ku == 1 && km == 1;
    FUZZ_CHECK((ret == 0) == want_ok);
    check_cookie(&h);
    if (ret != 0) {
        FUZZ_CHECK(ret == -1 && why != NULL && why[0] != '\0');
        free(text);
        return 0;
    }
    FUZZ_CHECK(uri.p != NULL && method.p != NULL && same(uri, eu) && same(method, em));

    static lt_policy_route_match_t m;
    lt_policy_route_result_t res = lt_policy_routes_match(routes, method.p, method.n, uri.p, uri.n, &m);
    FUZZ_CHECK(res == LT_POLICY_ROUTE_MATCHED || res == LT_POLICY_ROUTE_NONE || res == LT_POLICY_ROUTE_MALFORMED ||
               res == LT_POLICY_ROUTE_AMBIGUOUS);
    if (res == LT_POLICY_ROUTE_MATCHED) {
        FUZZ_CHECK(m.route != NULL && m.path_len >= 1 && m.path[0] == '/');
        for (size_t i = 0; i + 1 < m.path_len; i++)
            FUZZ_CHECK(!(m.path[i] == '/' && m.path[i + 1] == '/'));
        FUZZ_CHECK(m.route->is_public || (m.route->resource_type != NULL && m.route->action != NULL));
    } else {
        FUZZ_CHECK(m.route == NULL && m.why != NULL);
    }
    free(text);
    return 0;
}
