/*
 * policy/routes: the route rules of forward-auth, which turn a proxied request (method and
 * URI) into the question a decision answers (resource type, action, resource id).
 *
 * The rules document (JSON):
 *   {
 *     "case_insensitive": false,            optional: compare literal segments ignoring ASCII case
 *     "routes": [
 *       {"methods": ["GET", "HEAD"], "path": "/docs/{id}", "resource_type": "document",
 *        "action": "read", "resource_id": "id"},
 *       {"methods": ["*"], "path": "/public/ **", "public": true},   (no space: C comments)
 *       {"methods": ["POST"], "path": "/docs", "resource_type": "document", "action": "create"}
 *     ]
 *   }
 * A path pattern is "/" or '/'-separated segments: a literal, `{name}` (one whole non-empty
 * segment, captured decoded), or, last only, `**` (any rest, nothing included: "/p/" then
 * `**` matches `/p`, `/p/` and `/p/a/b`). `methods` (default ["*"]) are compared exactly; "*"
 * is any method. A route is public (`"public": true`: allowed without a credential) or
 * names resource_type and action, and optionally resource_id, one of its parameters. The
 * first route that matches wins; no route matching means deny. Unknown members are errors
 * (a misspelt member must not silently widen or narrow a rule), as are duplicate ones.
 *
 * Matching works on the decoded path, so `/%61dmin` is `/admin` for the rules exactly as it
 * is for the upstream that serves it. Paths that an upstream might read differently from
 * the rules are refused rather than matched (LT_POLICY_ROUTE_AMBIGUOUS): dot segments
 * (also encoded), an encoded '/', '\' or '%' (double encoding), a raw '\' or ';' (path
 * parameters, which some servers drop), empty segments ("//"), and control characters or
 * NUL in any form. One trailing '/' is ignored for matching (`/docs/1/` is `/docs/1`): many
 * servers treat the two alike. A query string is cut off before anything else.
 *
 * Ownership and threading: a parsed document is immutable and may be matched from any
 * number of threads; lt_policy_routes_match allocates nothing (the match holds its own
 * buffer). Free with lt_policy_routes_free.
 */
#ifndef LT_POLICY_ROUTES_H
#define LT_POLICY_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

#define LT_POLICY_ROUTES_MAX 1024         /* routes in one document */
#define LT_POLICY_ROUTES_MAX_PARAMS 8     /* parameters of one pattern */
#define LT_POLICY_ROUTES_MAX_SEGMENTS 32  /* segments of one pattern */
#define LT_POLICY_ROUTES_MAX_PATH 4096    /* bytes of a request path, query excluded */
#define LT_POLICY_ROUTES_MAX_DEPTH 256    /* segments of a request path */

typedef struct lt_policy_routes lt_policy_routes_t;

/* What a matched route asks (the compiled pattern stays private). */
typedef struct lt_policy_route {
    int index;                 /* position in "routes" */
    bool is_public;
    const char *resource_type; /* NULL for a public route */
    const char *action;        /* NULL for a public route */
    int id_param;              /* the parameter that is the resource id, -1 for none */
    int nparams;
    const char *param_names[LT_POLICY_ROUTES_MAX_PARAMS];
} lt_policy_route_t;

typedef enum {
    LT_POLICY_ROUTE_MATCHED = 0,
    LT_POLICY_ROUTE_NONE,      /* no route matches: deny */
    LT_POLICY_ROUTE_MALFORMED, /* not a request path (not '/'-rooted, bad escape, too long) */
    LT_POLICY_ROUTE_AMBIGUOUS, /* a path an upstream may read otherwise (see above): refuse */
} lt_policy_route_result_t;

typedef struct lt_policy_route_match {
    const lt_policy_route_t *route;
    const char *why; /* static reason for MALFORMED and AMBIGUOUS, for logs and problems */
    /* The decoded path (valid UTF-8, no NUL; trailing '/' kept) and the parameters' decoded
     * values, index-aligned with route->param_names; all point into buf, not terminated. */
    const char *path;
    size_t path_len;
    struct {
        const char *value;
        size_t len;
    } params[LT_POLICY_ROUTES_MAX_PARAMS];
    char buf[LT_POLICY_ROUTES_MAX_PATH + 1];
} lt_policy_route_match_t;

/**
 * Parses and checks a rules document (`text`, `len` bytes of JSON).
 * @return 0 (*out set), LT_EINVAL (`err`: where and why, e.g. "/routes/2/path: ..." or
 *         "line 3, column 7: ..."), LT_ENOMEM.
 */
int lt_policy_routes_parse(const char *text, size_t len, lt_policy_routes_t **out, char *err,
                           size_t errlen) LT_MUSTCHECK;

/**
 * Reads and parses the rules file `path`; `err` starts with the file name.
 * @return 0, LT_EIO (unreadable), LT_EINVAL, LT_ENOMEM.
 */
int lt_policy_routes_load(const char *path, lt_policy_routes_t **out, char *err, size_t errlen) LT_MUSTCHECK;

void lt_policy_routes_free(lt_policy_routes_t **rs);

size_t lt_policy_routes_count(const lt_policy_routes_t *rs);

/**
 * The first route matching `method` and the raw request URI `uri` (path and maybe a query;
 * percent-encoded as sent). Fills `m` (route NULL unless MATCHED).
 */
lt_policy_route_result_t lt_policy_routes_match(const lt_policy_routes_t *rs, const char *method, size_t method_len,
                                                const char *uri, size_t uri_len, lt_policy_route_match_t *m);

#endif
