/*
 * cors: see cors.h.
 */
#include "http/cors.h"

#include <h2o.h>
#include <string.h>
#include <strings.h>

#include "http/response.h"

/* Written once before the workers start, read-only afterwards. */
static lt_http_cors_check_fn check_fn;

static const char allow_methods[] = "GET, POST, PUT, PATCH, DELETE";
static const char allow_headers[] = "Content-Type, Authorization, X-CSRF-Token, X-Latch-Mode, X-Request-ID";
/* What a frontend may read of an answer besides the CORS-safelisted headers. */
static const char expose_headers[] =
    "X-Request-ID, Retry-After, WWW-Authenticate, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset";
/* Browsers cap this themselves (Chromium: 2 h); ten minutes keeps allow-list changes prompt. */
static const char max_age[] = "600";

void lt_http_cors_set_check(lt_http_cors_check_fn fn)
{
    check_fn = fn;
}

static int has_prefix(const char *p, size_t n, const char *prefix)
{
    size_t l = strlen(prefix);
    return n >= l && memcmp(p, prefix, l) == 0;
}

static int equals(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

int lt_http_cors_scoped(const char *path, size_t n)
{
    return has_prefix(path, n, "/v1/auth/") || equals(path, n, "/v1/me") || has_prefix(path, n, "/v1/me/") ||
           equals(path, n, "/oauth2/token") || equals(path, n, "/oauth2/revoke");
}

static int scoped(lt_req_t *r)
{
    const h2o_req_t *req = r->req;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return lt_http_cors_scoped(req->path.base, plen);
}

/* The first value of header `name` (lower case), not copied; 0 when absent. */
static int header(lt_req_t *r, const char *name, h2o_iovec_t *out)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);
    if (i < 0)
        return 0;
    *out = r->req->headers.entries[i].value;
    return 1;
}

static int allowed(lt_req_t *r, h2o_iovec_t origin)
{
    return check_fn != NULL && origin.len > 0 && check_fn(r, origin.base, origin.len);
}

static void set_header(lt_req_t *r, const char *name, const char *value, size_t vlen)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);
    h2o_set_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, v.base, v.len, 1);
}

static void delete_header(lt_req_t *r, const char *name)
{
    ssize_t i;
    while ((i = h2o_find_header_by_str(&r->req->res.headers, name, strlen(name), -1)) >= 0)
        h2o_delete_header(&r->req->res.headers, i);
}

static void preflight(lt_req_t *r, h2o_iovec_t origin)
{
    if (!allowed(r, origin)) {
        lt_http_problem(r, 403, "cors_origin_denied", "This origin may not call this service from a browser.");
        return;
    }
    set_header(r, "access-control-allow-origin", origin.base, origin.len);
    set_header(r, "access-control-allow-credentials", "true", 4);
    set_header(r, "access-control-allow-methods", allow_methods, sizeof(allow_methods) - 1);
    set_header(r, "access-control-allow-headers", allow_headers, sizeof(allow_headers) - 1);
    set_header(r, "access-control-max-age", max_age, sizeof(max_age) - 1);
    set_header(r, "vary", "Origin", 6);
    lt_http_send(r, 204, NULL, "", 0);
}

int lt_http_cors_filter(lt_req_t *r)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t origin = {NULL, 0}, v;
    if (!scoped(r))
        return 0;
    int has_origin = header(r, "origin", &origin);
    if (has_origin && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) >= 0) {
        preflight(r, origin);
        return 1;
    }
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-latch-mode"), -1);
    if (i >= 0) {
        v = req->headers.entries[i].value;
        int cookie = h2o_lcstris(v.base, v.len, H2O_STRLIT("cookie"));
        if (!cookie && !h2o_lcstris(v.base, v.len, H2O_STRLIT("bearer"))) {
            lt_http_problem(r, 400, "invalid_request", "X-Latch-Mode must be cookie or bearer.");
            return 1;
        }
        if (cookie && !r->tls) {
            lt_http_problem(r, 400, "cookie_mode_requires_tls",
                            "Cookie mode needs the TLS listener: its __Host- cookies are Secure.");
            return 1;
        }
    }
    if (has_origin) {
        set_header(r, "vary", "Origin", 6);
        lt_http_cors_allow(r, allowed(r, origin));
    }
    return 0;
}

const char *lt_req_cors_origin(lt_req_t *r)
{
    h2o_iovec_t origin;
    if (!scoped(r) || !header(r, "origin", &origin) || origin.len == 0)
        return NULL;
    return h2o_strdup(&r->req->pool, origin.base, origin.len).base;
}

void lt_http_cors_allow(lt_req_t *r, int allow)
{
    h2o_iovec_t origin;
    if (allow && scoped(r) && header(r, "origin", &origin) && origin.len > 0) {
        set_header(r, "access-control-allow-origin", origin.base, origin.len);
        set_header(r, "access-control-allow-credentials", "true", 4);
        set_header(r, "access-control-expose-headers", expose_headers, sizeof(expose_headers) - 1);
    } else {
        delete_header(r, "access-control-allow-origin");
        delete_header(r, "access-control-allow-credentials");
        delete_header(r, "access-control-expose-headers");
    }
}

int lt_req_cookie_mode(lt_req_t *r)
{
    h2o_iovec_t v;
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-latch-mode"), -1);
    if (i < 0 || !r->tls || !scoped(r))
        return 0;
    v = r->req->headers.entries[i].value;
    return h2o_lcstris(v.base, v.len, H2O_STRLIT("cookie"));
}

int lt_req_cookie(lt_req_t *r, const char *name, const char **value, size_t *n)
{
    size_t nlen = strlen(name);
    const h2o_headers_t *h = &r->req->headers;
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
            const char *vb = eq + 1, *ve = p;
            while (ve > vb && ve[-1] == ' ')
                ve--;
            if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"')
                vb++, ve--;
            *value = vb;
            *n = (size_t)(ve - vb);
            return 1;
        }
    }
    return 0;
}
