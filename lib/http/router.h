/*
 * router: method + path-pattern routing with named parameters.
 *
 * Patterns are absolute paths whose segments are literals or `{name}` parameters, e.g.
 * `/v1/admin/users/{id}`. A parameter matches exactly one non-empty segment. Matching is on
 * the raw path (before percent-decoding, query excluded): literals compare byte for byte, so
 * `/a%2Fb` never matches `/a/b`. HEAD is served by GET routes.
 *
 * A route added with LT_ROUTE_REST ends in a parameter that takes the rest of the path:
 * everything after the '/' before it, '/' and empty segments included, possibly nothing
 * (`/v1/forward-auth/{path}` matches `/v1/forward-auth/`, `/v1/forward-auth/a//b/`). Such a
 * route is split only up to that '/', so it also matches paths that are too deep or have
 * empty segments, which no other route does. An exact match always beats a rest match.
 *
 * Outcomes: a route (with captured parameters), "no such path" (404) or "path exists but
 * not for this method" (405, with the Allow list).
 *
 * Ownership and threading: build the router at start-up (not thread-safe), then treat it as
 * immutable; lt_router_match may run on every worker at once. It does not depend on h2o.
 */
#ifndef LT_HTTP_ROUTER_H
#define LT_HTTP_ROUTER_H

#include <stddef.h>

#include "base/base.h"

#define LT_ROUTE_MAX_PARAMS 8
#define LT_ROUTE_MAX_SEGMENTS 16

struct lt_req;
typedef int (*lt_handler_fn)(struct lt_req *r);

/* Route flags. */
enum {
    LT_ROUTE_CACHEABLE = 1, /* the handler sets its own Cache-Control; default is no-store */
    LT_ROUTE_REST = 2,      /* the last segment is a parameter taking the rest of the path */
};
/* Flag bits from here up are the application's own tags: lib/http only hands them to
 * lt_http_app_t.hold with the route's successful answers. */
#define LT_ROUTE_APP_SHIFT 16

typedef struct lt_route {
    const char *method;
    const char *pattern;
    lt_handler_fn fn;
    unsigned flags;
    int index; /* 0..count-1, for per-route metrics */
    /* compiled pattern */
    int nsegs;
    struct {
        const char *text; /* literal text, or the parameter name */
        size_t len;
        int is_param;
    } segs[LT_ROUTE_MAX_SEGMENTS];
} lt_route_t;

typedef struct lt_route_param {
    const char *name;
    size_t name_len;
    const char *value; /* points into the matched path, not decoded */
    size_t value_len;
} lt_route_param_t;

typedef struct lt_route_match {
    const lt_route_t *route;
    int nparams;
    lt_route_param_t params[LT_ROUTE_MAX_PARAMS];
    char allow[96]; /* on 405: "GET, HEAD, POST" */
} lt_route_match_t;

typedef struct lt_router lt_router_t;

/** @return 0 or LT_ENOMEM. */
int lt_router_create(lt_router_t **out) LT_MUSTCHECK;
void lt_router_destroy(lt_router_t **r);

/**
 * Adds a route. `method`, `pattern` must outlive the router (string literals).
 * @return 0, LT_EINVAL (pattern not absolute, empty or malformed `{}`, too many segments or
 *         parameters, LT_ROUTE_REST without a final parameter), LT_EEXIST (same method and an equivalent pattern), LT_ENOMEM.
 */
int lt_router_add(lt_router_t *r, const char *method, const char *pattern, lt_handler_fn fn, unsigned flags) LT_MUSTCHECK;

/**
 * Matches a request. `path` excludes the query string.
 * @return 0 (m->route set), LT_ENOTFOUND (404) or LT_ESTATE (405; m->allow filled).
 */
int lt_router_match(const lt_router_t *r, const char *method, size_t method_len, const char *path, size_t path_len,
                    lt_route_match_t *m) LT_MUSTCHECK;

size_t lt_router_count(const lt_router_t *r);
const lt_route_t *lt_router_route(const lt_router_t *r, size_t i);

/**
 * Percent-decodes a path segment into `out` (cap bytes incl. NUL): lt_pct_decode with
 * LT_PCT_NO_SLASH, so a decoded segment never holds a '/'.
 * @return the decoded length, LT_EINVAL (bad escape, NUL or '/' decoded), LT_ERANGE.
 */
long lt_router_decode(char *out, size_t cap, const char *in, size_t n) LT_MUSTCHECK;

#endif
