/*
 * router: see router.h.
 *
 * Routes live in one array, scanned in order. The request path is split into segments once;
 * each route compares segment by segment and fails fast on the first literal mismatch,
 * which keeps a scan over a few dozen routes well under a microsecond. When several
 * patterns match, the most specific wins: literals beat parameters, compared left to right
 * (so `/v1/me/sessions` wins over `/v1/me/{x}` whatever the order of registration). Rest
 * routes (LT_ROUTE_REST) walk the raw path themselves, since the split refuses what they
 * accept (empty segments, depth), and rank below every exact match.
 */
#include "http/router.h"

#include <stdlib.h>
#include <string.h>

struct lt_router {
    lt_route_t *routes;
    size_t count, cap;
};

int lt_router_create(lt_router_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? 0 : LT_ENOMEM;
}

void lt_router_destroy(lt_router_t **r)
{
    if (*r == NULL)
        return;
    free((*r)->routes);
    free(*r);
    *r = NULL;
}

static int compile(lt_route_t *rt, const char *pattern)
{
    const char *p = pattern;
    int nparams = 0;
    if (*p != '/')
        return LT_EINVAL;
    rt->nsegs = 0;
    if (strcmp(p, "/") == 0)
        return (rt->flags & LT_ROUTE_REST) ? LT_EINVAL : 0;
    while (*p == '/') {
        const char *seg = ++p;
        while (*p != '/' && *p != '\0')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0 || rt->nsegs == LT_ROUTE_MAX_SEGMENTS)
            return LT_EINVAL;
        int is_param = seg[0] == '{';
        if (is_param) {
            if (len < 3 || seg[len - 1] != '}' || ++nparams > LT_ROUTE_MAX_PARAMS)
                return LT_EINVAL;
            seg++;
            len -= 2;
        }
        if (memchr(seg, '{', len) != NULL || memchr(seg, '}', len) != NULL)
            return LT_EINVAL;
        rt->segs[rt->nsegs].text = seg;
        rt->segs[rt->nsegs].len = len;
        rt->segs[rt->nsegs].is_param = is_param;
        rt->nsegs++;
    }
    if (*p != '\0')
        return LT_EINVAL;
    if ((rt->flags & LT_ROUTE_REST) && (rt->nsegs == 0 || !rt->segs[rt->nsegs - 1].is_param))
        return LT_EINVAL;
    return 0;
}

/* Same method and the same shape (parameter names aside): the second could never match. */
static int same_route(const lt_route_t *a, const lt_route_t *b)
{
    if (strcmp(a->method, b->method) != 0 || a->nsegs != b->nsegs ||
        (a->flags & LT_ROUTE_REST) != (b->flags & LT_ROUTE_REST))
        return 0;
    for (int i = 0; i < a->nsegs; i++) {
        if (a->segs[i].is_param != b->segs[i].is_param)
            return 0;
        if (!a->segs[i].is_param &&
            (a->segs[i].len != b->segs[i].len || memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len) != 0))
            return 0;
    }
    return 1;
}

int lt_router_add(lt_router_t *r, const char *method, const char *pattern, lt_handler_fn fn, unsigned flags)
{
    lt_route_t rt = {.method = method, .pattern = pattern, .fn = fn, .flags = flags};
    if (method == NULL || *method == '\0' || fn == NULL || compile(&rt, pattern) != 0)
        return LT_EINVAL;
    for (size_t i = 0; i < r->count; i++)
        if (same_route(&r->routes[i], &rt))
            return LT_EEXIST;
    if (r->count == r->cap) {
        size_t cap = r->cap != 0 ? r->cap * 2 : 32;
        lt_route_t *n = realloc(r->routes, cap * sizeof(*n));
        if (n == NULL)
            return LT_ENOMEM;
        r->routes = n;
        r->cap = cap;
    }
    rt.index = (int)r->count;
    r->routes[r->count++] = rt;
    return 0;
}

typedef struct {
    int n;
    struct {
        const char *p;
        size_t len;
    } s[LT_ROUTE_MAX_SEGMENTS];
} path_segs_t;

static int split(const char *path, size_t len, path_segs_t *out)
{
    size_t i = 0;
    out->n = 0;
    if (len == 0 || path[0] != '/')
        return -1;
    if (len == 1)
        return 0;
    while (i < len) {
        size_t start = ++i; /* skip '/' */
        while (i < len && path[i] != '/')
            i++;
        if (i == start || out->n == LT_ROUTE_MAX_SEGMENTS)
            return -1; /* empty segment ("//" or trailing "/"), or too deep for any route */
        out->s[out->n].p = path + start;
        out->s[out->n].len = i - start;
        out->n++;
    }
    return 0;
}

/* Specificity: one bit per segment, set for a literal, most significant first. */
static unsigned match_score(const lt_route_t *rt, const path_segs_t *ps)
{
    unsigned score = 1;
    if (rt->nsegs != ps->n)
        return 0;
    for (int i = 0; i < rt->nsegs; i++) {
        score <<= 1;
        if (rt->segs[i].is_param)
            continue;
        if (rt->segs[i].len != ps->s[i].len || memcmp(rt->segs[i].text, ps->s[i].p, ps->s[i].len) != 0)
            return 0;
        score |= 1;
    }
    return score;
}

/*
 * A rest route against the raw path: its segments but the last match one segment each,
 * then a '/' starts the rest. Same scoring as match_score (0: no match). With `m`, fills
 * the parameters, the rest included.
 */
static unsigned rest_score(const lt_route_t *rt, const char *path, size_t len, lt_route_match_t *m)
{
    unsigned score = 1;
    size_t i = 0;
    for (int s = 0; s < rt->nsegs - 1; s++) {
        if (i >= len || path[i] != '/')
            return 0;
        size_t start = ++i;
        while (i < len && path[i] != '/')
            i++;
        size_t n = i - start;
        score <<= 1;
        if (n == 0)
            return 0;
        if (rt->segs[s].is_param) {
            if (m != NULL) {
                lt_route_param_t *p = &m->params[m->nparams++];
                *p = (lt_route_param_t){rt->segs[s].text, rt->segs[s].len, path + start, n};
            }
            continue;
        }
        if (rt->segs[s].len != n || memcmp(rt->segs[s].text, path + start, n) != 0)
            return 0;
        score |= 1;
    }
    if (i >= len || path[i] != '/')
        return 0;
    if (m != NULL) {
        lt_route_param_t *p = &m->params[m->nparams++];
        *p = (lt_route_param_t){rt->segs[rt->nsegs - 1].text, rt->segs[rt->nsegs - 1].len, path + i + 1, len - i - 1};
    }
    return score << 1;
}

static int method_is(const char *route_method, const char *m, size_t mlen)
{
    return strlen(route_method) == mlen && memcmp(route_method, m, mlen) == 0;
}

static void allow_add(char *allow, size_t cap, const char *method)
{
    size_t mlen = strlen(method), len = strlen(allow);
    /* already listed? */
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen)
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
    if (len + mlen + 3 > cap)
        return;
    if (len != 0)
        memcpy(allow + len, ", ", 2), len += 2;
    memcpy(allow + len, method, mlen + 1);
}

int lt_router_match(const lt_router_t *r, const char *method, size_t method_len, const char *path, size_t path_len,
                    lt_route_match_t *m)
{
    path_segs_t ps;
    const lt_route_t *best = NULL;
    unsigned best_score = 0;
    int best_exact = 0, path_matched = 0;
    int head = method_len == 4 && memcmp(method, "HEAD", 4) == 0;

    m->route = NULL;
    m->nparams = 0;
    m->allow[0] = '\0';
    int split_ok = split(path, path_len, &ps) == 0;
    for (size_t i = 0; i < r->count; i++) {
        const lt_route_t *rt = &r->routes[i];
        int exact = !(rt->flags & LT_ROUTE_REST);
        unsigned score = exact ? (split_ok ? match_score(rt, &ps) : 0) : rest_score(rt, path, path_len, NULL);
        if (score == 0)
            continue;
        path_matched = 1;
        allow_add(m->allow, sizeof(m->allow), rt->method);
        if (strcmp(rt->method, "GET") == 0)
            allow_add(m->allow, sizeof(m->allow), "HEAD");
        if (!method_is(rt->method, method, method_len) && !(head && strcmp(rt->method, "GET") == 0))
            continue;
        if (exact > best_exact || (exact == best_exact && score > best_score))
            best = rt, best_score = score, best_exact = exact;
    }
    if (best == NULL)
        return path_matched ? LT_ESTATE : LT_ENOTFOUND;
    m->route = best;
    if (!best_exact) {
        (void)rest_score(best, path, path_len, m);
        return 0;
    }
    for (int i = 0; i < best->nsegs; i++) {
        if (!best->segs[i].is_param)
            continue;
        lt_route_param_t *p = &m->params[m->nparams++];
        p->name = best->segs[i].text;
        p->name_len = best->segs[i].len;
        p->value = ps.s[i].p;
        p->value_len = ps.s[i].len;
    }
    return 0;
}

size_t lt_router_count(const lt_router_t *r)
{
    return r->count;
}

const lt_route_t *lt_router_route(const lt_router_t *r, size_t i)
{
    return i < r->count ? &r->routes[i] : NULL;
}

long lt_router_decode(char *out, size_t cap, const char *in, size_t n)
{
    return lt_pct_decode(out, cap, in, n, LT_PCT_NO_SLASH);
}
