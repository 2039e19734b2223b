/*
 * fuzz_forward_routes: lt_policy_routes_parse and lt_policy_routes_match (lib/policy/routes.c).
 *
 * Input: a rules document when it starts with '{' (then matched against a few fixed
 * requests); otherwise the method up to the first '\n' and the raw URI, matched against a
 * fixed document shaped like deploy/forward-auth/routes.example.json.
 *
 * Invariants:
 * - parse returns 0 or LT_EINVAL with a NUL-terminated message (non-empty on error), and a
 *   parsed document holds at most LT_POLICY_ROUTES_MAX routes;
 * - match returns one of the four results; only MATCHED sets a route, every other result
 *   says why;
 * - a matched decoded path starts with '/', is no longer than the URI's path part, holds no
 *   NUL, no "//" and no dot segment, and every parameter value is a non-empty slice of it
 *   without '/'; a public route asks nothing, another names its resource type and action.
 */
#include <string.h>

#include "fuzz.h"
#include "policy/routes.h"

static const char fixed[] =
    "{\"routes\": ["
    "{\"methods\": [\"*\"], \"path\": \"/public/**\", \"public\": true},"
    "{\"methods\": [\"GET\", \"HEAD\"], \"path\": \"/docs/{id}\", \"resource_type\": \"document\", \"action\": \"read\", "
    "\"resource_id\": \"id\"},"
    "{\"methods\": [\"PUT\"], \"path\": \"/t/{tenant}/docs/{id}/**\", \"resource_type\": \"document\", \"action\": "
    "\"edit\", \"resource_id\": \"id\"},"
    "{\"path\": \"/\", \"public\": true},"
    "{\"methods\": [\"POST\"], \"path\": \"/caf\xc3\xa9/{x}\", \"resource_type\": \"menu\", \"action\": \"order\"}"
    "]}";

static const lt_policy_routes_t *fixed_routes(void)
{
    static lt_policy_routes_t *rs;
    char err[256];
    if (rs == NULL)
        FUZZ_CHECK(lt_policy_routes_parse(fixed, strlen(fixed), &rs, err, sizeof(err)) == 0);
    return rs;
}

static void check(const lt_policy_routes_t *rs, const char *method, size_t mlen, const char *uri, size_t ulen)
{
    static lt_policy_route_match_t m;
    memset(&m, 0xa5, sizeof(m));
    lt_policy_route_result_t res = lt_policy_routes_match(rs, method, mlen, uri, ulen, &m);
    FUZZ_CHECK(res == LT_POLICY_ROUTE_MATCHED || res == LT_POLICY_ROUTE_NONE || res == LT_POLICY_ROUTE_MALFORMED ||
               res == LT_POLICY_ROUTE_AMBIGUOUS);
    if (res != LT_POLICY_ROUTE_MATCHED) {
        FUZZ_CHECK(m.route == NULL && m.why != NULL && *m.why != '\0');
        return;
    }
    const lt_policy_route_t *rt = m.route;
    const char *q = memchr(uri, '?', ulen);
    size_t plen = q != NULL ? (size_t)(q - uri) : ulen;
    FUZZ_CHECK(rt != NULL && m.path == m.buf && m.path_len >= 1 && m.path_len <= plen && m.path[0] == '/');
    FUZZ_CHECK(memchr(m.path, '\0', m.path_len) == NULL);
    for (size_t i = 0; i + 1 < m.path_len; i++)
        FUZZ_CHECK(!(m.path[i] == '/' && m.path[i + 1] == '/'));
    for (size_t i = 0; i < m.path_len; i++) {
        if (m.path[i] != '/')
            continue;
        size_t n = strcspn(m.path + i + 1, "/");
        if (i + 1 + n > m.path_len)
            n = m.path_len - i - 1;
        FUZZ_CHECK(!(n == 1 && m.path[i + 1] == '.') && !(n == 2 && m.path[i + 1] == '.' && m.path[i + 2] == '.'));
    }
    FUZZ_CHECK(rt->nparams >= 0 && rt->nparams <= LT_POLICY_ROUTES_MAX_PARAMS);
    for (int i = 0; i < rt->nparams; i++) {
        FUZZ_CHECK(m.params[i].value >= m.path && m.params[i].len > 0 &&
                   m.params[i].value + m.params[i].len <= m.path + m.path_len);
        FUZZ_CHECK(memchr(m.params[i].value, '/', m.params[i].len) == NULL);
    }
    FUZZ_CHECK(rt->is_public ? rt->resource_type == NULL && rt->action == NULL
                             : rt->resource_type != NULL && rt->action != NULL);
    FUZZ_CHECK(rt->id_param >= -1 && rt->id_param < rt->nparams);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == '{') {
        char *text = fuzz_copy(data, size), err[256];
        lt_policy_routes_t *rs = NULL;
        memset(err, 'x', sizeof(err));
        int ret = lt_policy_routes_parse(text, size, &rs, err, sizeof(err));
        FUZZ_CHECK(ret == 0 || ret == LT_EINVAL);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        if (ret != 0) {
            FUZZ_CHECK(rs == NULL && err[0] != '\0');
        } else {
            FUZZ_CHECK(lt_policy_routes_count(rs) <= LT_POLICY_ROUTES_MAX);
            static const char *const uris[] = {"/", "/a", "/a/b/c", "/docs/1?x", "/public/x/y", "/A/%41/"};
            for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++)
                check(rs, "GET", 3, uris[i], strlen(uris[i]));
        }
        lt_policy_routes_free(&rs);
        FUZZ_CHECK(rs == NULL);
        free(text);
        return 0;
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t mlen = nl != NULL ? (size_t)(nl - data) : 3;
    char *method = nl != NULL ? fuzz_copy(data, mlen) : fuzz_copy("GET", 3);
    size_t ulen = nl != NULL ? size - mlen - 1 : size;
    char *uri = fuzz_copy(nl != NULL ? nl + 1 : data, ulen);
    check(fixed_routes(), method, mlen, uri, ulen);
    free(method);
    free(uri);
    return 0;
}
