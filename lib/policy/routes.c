/*
 * policy/routes.c: forward-auth route rules (see routes.h).
 *
 * A document compiles into an array of routes, each with its methods and its pattern split
 * into segments. Matching decodes the request path once into the match's buffer, checking
 * every segment on the way (the refusals of routes.h), then scans the routes in order:
 * a route fails on its first differing segment, so a scan over hundreds of routes costs
 * little more than the decoding.
 *
 * Memory: everything a document holds is malloc'ed at parse time and freed with it.
 */
#include "policy/routes.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest pattern, and longest resource type, action or parameter name, in bytes. */
#define MAX_PATTERN 1024
#define MAX_NAME 128
#define MAX_PARAM_NAME 64
#define MAX_METHODS 16
#define MAX_METHOD_LEN 32
/* A rules file is written by hand: a megabyte is far more than any real one. */
#define MAX_FILE (1024 * 1024)

typedef struct seg {
    char *text; /* literal text (NULL for a parameter) */
    size_t len;
    int param; /* parameter index, -1 for a literal */
} seg_t;

typedef struct route {
    lt_policy_route_t pub;
    bool any_method;
    char *methods[MAX_METHODS];
    size_t nmethods;
    seg_t segs[LT_POLICY_ROUTES_MAX_SEGMENTS];
    int nsegs; /* `**` excluded */
    bool rest; /* ends in `**` */
} route_t;

struct lt_policy_routes {
    route_t *routes;
    size_t n;
    bool fold_case;
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...) LT_PRINTF(4, 5);
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    if (errlen != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ret;
}

static void route_free(route_t *r)
{
    free((char *)r->pub.resource_type);
    free((char *)r->pub.action);
    for (int i = 0; i < r->pub.nparams; i++)
        free((char *)r->pub.param_names[i]);
    for (size_t i = 0; i < r->nmethods; i++)
        free(r->methods[i]);
    for (int i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
}

void lt_policy_routes_free(lt_policy_routes_t **prs)
{
    lt_policy_routes_t *rs = *prs;
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++)
        route_free(&rs->routes[i]);
    free(rs->routes);
    free(rs);
    *prs = NULL;
}

size_t lt_policy_routes_count(const lt_policy_routes_t *rs)
{
    return rs != NULL ? rs->n : 0;
}

/* ---- parsing ------------------------------------------------------------------------- */

/* RFC 9110 token characters: what a method may be made of. */
static bool tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool param_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_PARAM_NAME || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return false;
    return true;
}

/* A literal segment as the decoded request path may hold it (why not, or NULL). */
static const char *literal_problem(const char *s, size_t n)
{
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "dot segments are not allowed";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f)
            return "control characters and spaces are not allowed";
        if (strchr("%?#;\\{}*", c) != NULL)
            return "'%', '?', '#', ';', '\\', '{', '}' and '*' are not allowed in a literal segment (write it decoded)";
    }
    if (lt_utf8_count(s, n) < 0)
        return "not UTF-8";
    return NULL;
}

static int compile_path(route_t *r, const char *p, const char *where, char *err, size_t errlen)
{
    size_t plen = strlen(p);
    if (plen == 0 || p[0] != '/')
        return fail(err, errlen, LT_EINVAL, "%s: must start with '/'", where);
    if (plen > MAX_PATTERN)
        return fail(err, errlen, LT_EINVAL, "%s: longer than %d bytes", where, MAX_PATTERN);
    if (plen == 1)
        return 0; /* "/": the root only */
    const char *s = p;
    while (*s == '/') {
        const char *seg = ++s;
        while (*s != '/' && *s != '\0')
            s++;
        size_t n = (size_t)(s - seg);
        if (n == 0)
            return fail(err, errlen, LT_EINVAL, "%s: empty segment (no \"//\" and no trailing '/')", where);
        if (r->rest)
            return fail(err, errlen, LT_EINVAL, "%s: \"**\" must be the last segment", where);
        if (n == 2 && seg[0] == '*' && seg[1] == '*') {
            r->rest = true;
            continue;
        }
        if (r->nsegs == LT_POLICY_ROUTES_MAX_SEGMENTS)
            return fail(err, errlen, LT_EINVAL, "%s: more than %d segments", where, LT_POLICY_ROUTES_MAX_SEGMENTS);
        seg_t *sg = &r->segs[r->nsegs];
        if (seg[0] == '{') {
            if (seg[n - 1] != '}' || !param_name_ok(seg + 1, n - 2))
                return fail(err, errlen, LT_EINVAL,
                            "%s: a parameter is a whole segment {name}, name [A-Za-z_][A-Za-z0-9_]* (at most %d)", where,
                            MAX_PARAM_NAME);
            if (r->pub.nparams == LT_POLICY_ROUTES_MAX_PARAMS)
                return fail(err, errlen, LT_EINVAL, "%s: more than %d parameters", where, LT_POLICY_ROUTES_MAX_PARAMS);
            for (int i = 0; i < r->pub.nparams; i++)
                if (strlen(r->pub.param_names[i]) == n - 2 && memcmp(r->pub.param_names[i], seg + 1, n - 2) == 0)
                    return fail(err, errlen, LT_EINVAL, "%s: parameter {%.*s} appears twice", where, (int)(n - 2),
                                seg + 1);
            char *name = strndup(seg + 1, n - 2);
            if (name == NULL)
                return LT_ENOMEM;
            sg->param = r->pub.nparams;
            r->pub.param_names[r->pub.nparams++] = name;
        } else {
            const char *why = literal_problem(seg, n);
            if (why != NULL)
                return fail(err, errlen, LT_EINVAL, "%s: segment \"%.*s\": %s", where, (int)(n > 64 ? 64 : n), seg, why);
            if ((sg->text = strndup(seg, n)) == NULL)
                return LT_ENOMEM;
            sg->len = n;
            sg->param = -1;
        }
        r->nsegs++;
    }
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || lt_utf8_count(s, n) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int compile_methods(route_t *r, const json_t *v, const char *where, char *err, size_t errlen)
{
    if (v == NULL) {
        r->any_method = true;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_METHODS)
        return fail(err, errlen, LT_EINVAL, "%s: must be an array of 1 to %d methods", where, MAX_METHODS);
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m)
    {
        const char *s = json_string_value(m);
        size_t n = s != NULL ? json_string_length(m) : 0;
        bool ok = n > 0 && n <= MAX_METHOD_LEN;
        for (size_t k = 0; ok && k < n; k++)
            ok = tchar((unsigned char)s[k]);
        if (!ok)
            return fail(err, errlen, LT_EINVAL, "%s/%zu: must be an HTTP method (a token) or \"*\"", where, i);
        if (strcmp(s, "*") == 0) {
            r->any_method = true;
            continue;
        }
        if ((r->methods[r->nmethods] = strdup(s)) == NULL)
            return LT_ENOMEM;
        r->nmethods++;
    }
    return 0;
}

static const char *const route_members[] = {"methods", "path", "public", "resource_type", "action", "resource_id",
                                             "description", NULL};

static int compile_route(route_t *r, const json_t *o, size_t idx, char *err, size_t errlen)
{
    char where[64];
    int ret;
    r->pub.index = (int)idx;
    r->pub.id_param = -1;
    if (!json_is_object(o))
        return fail(err, errlen, LT_EINVAL, "/routes/%zu: must be an object", idx);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        bool known = false;
        for (size_t i = 0; route_members[i] != NULL && !known; i++)
            known = strcmp(route_members[i], key) == 0;
        if (!known)
            return fail(err, errlen, LT_EINVAL, "/routes/%zu/%.64s: unknown member", idx, key);
    }
    snprintf(where, sizeof(where), "/routes/%zu/methods", idx);
    if ((ret = compile_methods(r, json_object_get(o, "methods"), where, err, errlen)) != 0)
        return ret;
    const json_t *path = json_object_get(o, "path");
    snprintf(where, sizeof(where), "/routes/%zu/path", idx);
    if (!json_is_string(path))
        return fail(err, errlen, LT_EINVAL, "%s: required, a string", where);
    if ((ret = compile_path(r, json_string_value(path), where, err, errlen)) != 0)
        return ret;
    const json_t *pub = json_object_get(o, "public");
    if (pub != NULL && !json_is_boolean(pub))
        return fail(err, errlen, LT_EINVAL, "/routes/%zu/public: must be true or false", idx);
    r->pub.is_public = json_is_true(pub);
    const json_t *rtype = json_object_get(o, "resource_type"), *action = json_object_get(o, "action"),
                 *rid = json_object_get(o, "resource_id"), *desc = json_object_get(o, "description");
    if (desc != NULL && !json_is_string(desc))
        return fail(err, errlen, LT_EINVAL, "/routes/%zu/description: must be a string", idx);
    if (r->pub.is_public) {
        const char *extra = rtype != NULL ? "resource_type" : action != NULL ? "action" : rid != NULL ? "resource_id" : NULL;
        if (extra != NULL)
            return fail(err, errlen, LT_EINVAL, "/routes/%zu/%s: a public route asks no decision", idx, extra);
        return 0;
    }
    const char *rt = json_string_value(rtype), *ac = json_string_value(action);
    if (rt == NULL || !name_ok(rt))
        return fail(err, errlen, LT_EINVAL, "/routes/%zu/resource_type: required (unless public), 1 to %d bytes of text",
                    idx, MAX_NAME);
    if (ac == NULL || !name_ok(ac))
        return fail(err, errlen, LT_EINVAL, "/routes/%zu/action: required (unless public), 1 to %d bytes of text", idx,
                    MAX_NAME);
    if (rid != NULL) {
        const char *name = json_string_value(rid);
        for (int i = 0; name != NULL && i < r->pub.nparams && r->pub.id_param < 0; i++)
            if (strcmp(r->pub.param_names[i], name) == 0)
                r->pub.id_param = i;
        if (r->pub.id_param < 0)
            return fail(err, errlen, LT_EINVAL, "/routes/%zu/resource_id: must name a parameter of the path", idx);
    }
    if ((r->pub.resource_type = strdup(rt)) == NULL || (r->pub.action = strdup(ac)) == NULL)
        return LT_ENOMEM;
    return 0;
}

int lt_policy_routes_parse(const char *text, size_t len, lt_policy_routes_t **out, char *err, size_t errlen)
{
    json_error_t je;
    lt_policy_routes_t *rs = NULL;
    int ret = LT_EINVAL;
    *out = NULL;
    if (errlen != 0)
        err[0] = '\0';
    /* without JSON_ALLOW_NUL, jansson refuses "\u0000": every string here is a C string */
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return fail(err, errlen, LT_EINVAL, "line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(doc)) {
        ret = fail(err, errlen, LT_EINVAL, "/: must be an object {\"routes\": [...]}");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "routes") != 0 && strcmp(key, "case_insensitive") != 0 && strcmp(key, "description") != 0) {
            ret = fail(err, errlen, LT_EINVAL, "/%.64s: unknown member", key);
            goto done;
        }
    }
    const json_t *routes = json_object_get(doc, "routes"), *fold = json_object_get(doc, "case_insensitive");
    if (!json_is_array(routes) || json_array_size(routes) > LT_POLICY_ROUTES_MAX) {
        ret = fail(err, errlen, LT_EINVAL, "/routes: required, an array of at most %d routes", LT_POLICY_ROUTES_MAX);
        goto done;
    }
    if (fold != NULL && !json_is_boolean(fold)) {
        ret = fail(err, errlen, LT_EINVAL, "/case_insensitive: must be true or false");
        goto done;
    }
    if ((rs = calloc(1, sizeof(*rs))) == NULL ||
        (json_array_size(routes) > 0 && (rs->routes = calloc(json_array_size(routes), sizeof(route_t))) == NULL)) {
        ret = LT_ENOMEM;
        goto done;
    }
    rs->fold_case = json_is_true(fold);
    for (size_t i = 0; i < json_array_size(routes); i++) {
        ret = compile_route(&rs->routes[i], json_array_get(routes, i), i, err, errlen);
        rs->n = i + 1; /* freed with the document, also when half-compiled */
        if (ret != 0) {
            if (ret == LT_ENOMEM)
                fail(err, errlen, ret, "out of memory");
            goto done;
        }
    }
    *out = rs;
    rs = NULL;
    ret = 0;
done:
    lt_policy_routes_free(&rs);
    json_decref(doc);
    return ret;
}

int lt_policy_routes_load(const char *path, lt_policy_routes_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(err, errlen, LT_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return fail(err, errlen, LT_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_FILE) {
        free(buf);
        return fail(err, errlen, bad ? LT_EIO : LT_EINVAL, "%s: %s", path, bad ? "read error" : "larger than 1 MiB");
    }
    char why[384];
    int ret = lt_policy_routes_parse(buf, n, out, why, sizeof(why));
    free(buf);
    if (ret != 0)
        fail(err, errlen, ret, "%s: %s", path, why);
    return ret;
}

/* ---- matching ------------------------------------------------------------------------ */

typedef struct path_segs {
    int n;
    struct {
        size_t off, len; /* into m->buf */
    } s[LT_POLICY_ROUTES_MAX_DEPTH];
} path_segs_t;

static lt_policy_route_result_t refuse(lt_policy_route_match_t *m, lt_policy_route_result_t res, const char *why)
{
    m->why = why;
    return res;
}

/* Decodes and checks the path part of `uri` into m->buf and `ps` (the refusals of routes.h). */
static lt_policy_route_result_t decode(const char *uri, size_t uri_len, lt_policy_route_match_t *m, path_segs_t *ps)
{
    const char *q = memchr(uri, '?', uri_len);
    size_t end = q != NULL ? (size_t)(q - uri) : uri_len, i = 0, o = 0;
    ps->n = 0;
    if (end == 0 || uri[0] != '/')
        return refuse(m, LT_POLICY_ROUTE_MALFORMED, "the URI is not an absolute path");
    if (end > LT_POLICY_ROUTES_MAX_PATH)
        return refuse(m, LT_POLICY_ROUTE_MALFORMED, "the path is too long");
    while (i < end) {
        i++; /* the '/' */
        m->buf[o++] = '/';
        size_t start = o;
        while (i < end && uri[i] != '/') {
            unsigned char c = (unsigned char)uri[i];
            if (c == '%') {
                int hi = i + 2 < end ? lt_hex_digit(uri[i + 1]) : -1, lo = hi >= 0 ? lt_hex_digit(uri[i + 2]) : -1;
                if (lo < 0)
                    return refuse(m, LT_POLICY_ROUTE_MALFORMED, "a '%' not followed by two hex digits");
                c = (unsigned char)(hi << 4 | lo);
                if (c == '/' || c == '\\')
                    return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "an encoded '/' or '\\'");
                if (c == '%')
                    return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "an encoded '%' (double encoding)");
                if (c < 0x20 || c == 0x7f)
                    return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "an encoded control character or NUL");
                i += 3;
            } else {
                if (c == '\\')
                    return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "a '\\'");
                if (c == ';')
                    return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "a ';' (path parameters)");
                if (c < 0x21 || c == 0x7f || c == '#')
                    return refuse(m, LT_POLICY_ROUTE_MALFORMED, "a raw space, control character or '#'");
                i++;
            }
            m->buf[o++] = (char)c;
        }
        size_t n = o - start;
        if (n == 0) {
            if (i == end) /* a trailing '/' (or the root): not a segment */
                break;
            return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "an empty segment (\"//\")");
        }
        if ((n == 1 && m->buf[start] == '.') || (n == 2 && m->buf[start] == '.' && m->buf[start + 1] == '.'))
            return refuse(m, LT_POLICY_ROUTE_AMBIGUOUS, "a dot segment");
        if (ps->n == LT_POLICY_ROUTES_MAX_DEPTH)
            return refuse(m, LT_POLICY_ROUTE_MALFORMED, "the path has too many segments");
        ps->s[ps->n].off = start;
        ps->s[ps->n].len = n;
        ps->n++;
    }
    if (lt_utf8_count(m->buf, o) < 0)
        return refuse(m, LT_POLICY_ROUTE_MALFORMED, "the decoded path is not UTF-8");
    m->buf[o] = '\0';
    m->path = m->buf;
    m->path_len = o;
    return LT_POLICY_ROUTE_MATCHED;
}

static bool same_text(const char *a, const char *b, size_t n, bool fold)
{
    if (!fold)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

static bool method_ok(const route_t *r, const char *method, size_t n)
{
    if (r->any_method)
        return true;
    for (size_t i = 0; i < r->nmethods; i++)
        if (strlen(r->methods[i]) == n && memcmp(r->methods[i], method, n) == 0)
            return true;
    return false;
}

lt_policy_route_result_t lt_policy_routes_match(const lt_policy_routes_t *rs, const char *method, size_t method_len,
                                                const char *uri, size_t uri_len, lt_policy_route_match_t *m)
{
    path_segs_t ps;
    m->route = NULL;
    m->why = NULL;
    m->path = NULL;
    m->path_len = 0;
    if (rs == NULL || method == NULL || uri == NULL)
        return refuse(m, LT_POLICY_ROUTE_MALFORMED, "nothing to match");
    lt_policy_route_result_t res = decode(uri, uri_len, m, &ps);
    if (res != LT_POLICY_ROUTE_MATCHED)
        return res;
    for (size_t k = 0; k < rs->n; k++) {
        const route_t *r = &rs->routes[k];
        if (r->rest ? ps.n < r->nsegs : ps.n != r->nsegs)
            continue;
        if (!method_ok(r, method, method_len))
            continue;
        int i = 0;
        for (; i < r->nsegs; i++) {
            const seg_t *sg = &r->segs[i];
            const char *v = m->buf + ps.s[i].off;
            if (sg->param >= 0) {
                m->params[sg->param].value = v;
                m->params[sg->param].len = ps.s[i].len;
            } else if (sg->len != ps.s[i].len || !same_text(sg->text, v, sg->len, rs->fold_case)) {
                break;
            }
        }
        if (i == r->nsegs) {
            m->route = &r->pub;
            return LT_POLICY_ROUTE_MATCHED;
        }
    }
    return refuse(m, LT_POLICY_ROUTE_NONE, "no route matches");
}
