/*
 * fuzz_router: lt_router_match and lt_router_decode (lib/http/router.c).
 *
 * Input: the method up to the first '\n', then the path; no '\n' means the whole input is
 * the path of a GET. The router holds a fixed table shaped like latchd's routes.
 *
 * Invariants:
 * - match returns 0, LT_ENOTFOUND or LT_ESTATE, and only 0 sets a route;
 * - a match's route serves the method (HEAD by GET), has as many parameters as its pattern
 *   (at most LT_ROUTE_MAX_PARAMS), each a non-empty slice of the path without '/', and
 *   pattern literals plus parameter values rebuild the path byte for byte;
 * - on 405 the Allow list is NUL-terminated inside `allow`, not empty, and does not name
 *   the request method;
 * - decode writes within `cap`, returns a length no longer than its input, never yields a
 *   NUL or '/', and needs exactly length + 1 bytes of room.
 */
#include <string.h>

#include "fuzz.h"
#include "http/router.h"

static const struct {
    const char *method, *pattern;
} routes[] = {
    {"GET", "/"},
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/metrics"},
    {"POST", "/v1/auth/login"},
    {"GET", "/v1/me"},
    {"GET", "/v1/me/sessions"},
    {"GET", "/v1/me/{facet}"},
    {"DELETE", "/v1/me/sessions/{sid}"},
    {"GET", "/v1/admin/users"},
    {"POST", "/v1/admin/users"},
    {"GET", "/v1/admin/users/{id}"},
    {"PATCH", "/v1/admin/users/{id}"},
    {"DELETE", "/v1/admin/users/{id}"},
    {"PUT", "/v1/admin/users/{id}/roles/{role}"},
    {"GET", "/v1/orgs/{org}/members/{member}/grants/{grant}"},
};

static int handler(struct lt_req *r)
{
    (void)r;
    return 0;
}

static const lt_router_t *router(void)
{
    static lt_router_t *r;
    if (r == NULL) {
        FUZZ_CHECK(lt_router_create(&r) == 0);
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
            FUZZ_CHECK(lt_router_add(r, routes[i].method, routes[i].pattern, handler, 0) == 0);
    }
    return r;
}

/* Is `method` one of the ", "-separated names in `allow`? */
static int allow_lists(const char *allow, const char *method, size_t mlen)
{
    for (const char *p = allow; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == mlen && memcmp(p, method, n) == 0)
            return 1;
        p += n;
        p += strspn(p, ", ");
    }
    return 0;
}

static void check_decode(const lt_route_param_t *p)
{
    size_t cap = p->value_len + 1;
    char *out = malloc(cap); /* exactly `cap` bytes, as lt_req_param allocates */
    FUZZ_CHECK(out != NULL);
    long n = lt_router_decode(out, cap, p->value, p->value_len);
    FUZZ_CHECK(n == LT_EINVAL || (n >= 0 && (size_t)n <= p->value_len));
    if (n >= 0) {
        FUZZ_CHECK(out[n] == '\0' && strlen(out) == (size_t)n && memchr(out, '/', (size_t)n) == NULL);
        /* The room it needs is exactly n + 1 bytes. */
        FUZZ_CHECK(lt_router_decode(out, (size_t)n + 1, p->value, p->value_len) == n);
        FUZZ_CHECK(lt_router_decode(out, (size_t)n, p->value, p->value_len) == LT_ERANGE);
    }
    free(out);
}

static void check_match(const lt_route_match_t *m, const char *method, size_t mlen, const char *path, size_t plen)
{
    const lt_route_t *rt = m->route;
    int head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    FUZZ_CHECK(rt != NULL && lt_router_route(router(), (size_t)rt->index) == rt);
    FUZZ_CHECK((strlen(rt->method) == mlen && memcmp(rt->method, method, mlen) == 0) ||
               (head && strcmp(rt->method, "GET") == 0));
    FUZZ_CHECK(m->nparams >= 0 && m->nparams <= LT_ROUTE_MAX_PARAMS);

    /* Rebuild the path from the pattern, taking each parameter in turn. */
    size_t off = 0;
    int k = 0;
    for (int i = 0; i < rt->nsegs; i++) {
        const char *text = rt->segs[i].text;
        size_t len = rt->segs[i].len;
        FUZZ_CHECK(off < plen && path[off] == '/');
        off++;
        if (rt->segs[i].is_param) {
            const lt_route_param_t *p = &m->params[k++];
            FUZZ_CHECK(k <= m->nparams);
            FUZZ_CHECK(p->name == text && p->name_len == len);
            FUZZ_CHECK(p->value == path + off && p->value_len > 0 && p->value_len <= plen - off);
            FUZZ_CHECK(memchr(p->value, '/', p->value_len) == NULL);
            check_decode(p);
            text = p->value;
            len = p->value_len;
        }
        FUZZ_CHECK(len <= plen - off && memcmp(path + off, text, len) == 0);
        off += len;
    }
    FUZZ_CHECK(k == m->nparams);
    FUZZ_CHECK(rt->nsegs == 0 ? plen == 1 && path[0] == '/' : off == plen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t mlen = nl != NULL ? (size_t)(nl - data) : 3;
    char *method = nl != NULL ? fuzz_copy(data, mlen) : fuzz_copy("GET", 3);
    size_t plen = nl != NULL ? size - mlen - 1 : size;
    char *path = fuzz_copy(nl != NULL ? nl + 1 : data, plen);
    lt_route_match_t m;

    memset(&m, 0xa5, sizeof(m)); /* match must set what it returns, whatever was there */
    int ret = lt_router_match(router(), method, mlen, path, plen, &m);
    FUZZ_CHECK(ret == 0 || ret == LT_ENOTFOUND || ret == LT_ESTATE);
    if (ret == 0) {
        check_match(&m, method, mlen, path, plen);
    } else {
        FUZZ_CHECK(m.route == NULL && m.nparams == 0);
        FUZZ_CHECK(memchr(m.allow, '\0', sizeof(m.allow)) != NULL);
        FUZZ_CHECK(ret == LT_ESTATE ? m.allow[0] != '\0' && !allow_lists(m.allow, method, mlen) : m.allow[0] == '\0');
    }
    free(method);
    free(path);
    return 0;
}
