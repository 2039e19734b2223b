/* Unit tests for lib/policy/routes: the forward-auth route rules (parsing with the place of
 * every problem, matching, parameters, methods, the rest segment, first match, and the
 * paths refused because an upstream could read them otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/routes.h"

static const char doc[] = "{\"routes\": ["
                          /* 0 */ "{\"methods\": [\"GET\", \"HEAD\"], \"path\": \"/docs/{id}\", \"resource_type\": "
                          "\"document\", \"action\": \"read\", \"resource_id\": \"id\"},"
                          /* 1 */ "{\"methods\": [\"*\"], \"path\": \"/public/**\", \"public\": true},"
                          /* 2 */ "{\"methods\": [\"POST\"], \"path\": \"/docs\", \"resource_type\": \"document\", "
                          "\"action\": \"create\"},"
                          /* 3 */ "{\"methods\": [\"PUT\"], \"path\": \"/t/{tenant}/docs/{id}\", \"resource_type\": "
                          "\"document\", \"action\": \"edit\", \"resource_id\": \"id\"},"
                          /* 4 */ "{\"path\": \"/docs/special\", \"resource_type\": \"special\", \"action\": \"any\"},"
                          /* 5 */ "{\"methods\": [\"GET\"], \"path\": \"/files/{bucket}/**\", \"resource_type\": "
                          "\"bucket\", \"action\": \"read\", \"resource_id\": \"bucket\"},"
                          /* 6 */ "{\"methods\": [\"GET\"], \"path\": \"/\", \"public\": true},"
                          /* 7 */ "{\"methods\": [\"GET\"], \"path\": \"/caf\xc3\xa9\", \"resource_type\": \"menu\", "
                          "\"action\": \"read\", \"description\": \"non-ASCII literal\"}"
                          "]}";

static int setup(void **state)
{
    char err[256];
    lt_policy_routes_t *rs = NULL;
    int ret = lt_policy_routes_parse(doc, strlen(doc), &rs, err, sizeof(err));
    if (ret != 0)
        fprintf(stderr, "parse: %s\n", err);
    assert_int_equal(ret, 0);
    assert_int_equal(lt_policy_routes_count(rs), 8);
    *state = rs;
    return 0;
}

static int teardown(void **state)
{
    lt_policy_routes_t *rs = *state;
    lt_policy_routes_free(&rs);
    assert_null(rs);
    return 0;
}

static lt_policy_route_match_t m; /* 4 KB: not on the test's stack every time */

static lt_policy_route_result_t match(void **state, const char *method, const char *uri)
{
    return lt_policy_routes_match(*state, method, strlen(method), uri, strlen(uri), &m);
}

/* The matched route's index, or -1 (asserting the result). */
static int route_of(void **state, const char *method, const char *uri)
{
    lt_policy_route_result_t res = match(state, method, uri);
    if (res == LT_POLICY_ROUTE_NONE)
        return -1;
    if (res != LT_POLICY_ROUTE_MATCHED)
        fail_msg("%s %s: result %d (%s)", method, uri, (int)res, m.why != NULL ? m.why : "");
    return m.route->index;
}

static void assert_param(int i, const char *value)
{
    assert_int_equal(m.params[i].len, strlen(value));
    assert_memory_equal(m.params[i].value, value, strlen(value));
}

static void test_match_and_params(void **state)
{
    assert_int_equal(route_of(state, "GET", "/docs/42"), 0);
    assert_false(m.route->is_public);
    assert_string_equal(m.route->resource_type, "document");
    assert_string_equal(m.route->action, "read");
    assert_int_equal(m.route->id_param, 0);
    assert_int_equal(m.route->nparams, 1);
    assert_string_equal(m.route->param_names[0], "id");
    assert_param(0, "42");
    assert_int_equal(m.path_len, 8);
    assert_memory_equal(m.path, "/docs/42", 8);

    assert_int_equal(route_of(state, "PUT", "/t/acme/docs/7"), 3);
    assert_int_equal(m.route->nparams, 2);
    assert_string_equal(m.route->param_names[0], "tenant");
    assert_param(0, "acme");
    assert_param(1, "7");
    assert_int_equal(m.route->id_param, 1);

    /* parameters are decoded, the query is cut off */
    assert_int_equal(route_of(state, "GET", "/docs/a%20b%C3%A9?x=/../&y=%2F"), 0);
    assert_param(0, "a b\xc3\xa9");
    assert_int_equal(m.path_len, strlen("/docs/a b\xc3\xa9"));
    /* literals compare decoded too: %61 is 'a' for the upstream and for the rules */
    assert_int_equal(route_of(state, "POST", "/%64ocs"), 2);
    assert_int_equal(route_of(state, "GET", "/caf%C3%A9"), 7);
    assert_int_equal(route_of(state, "GET", "/caf\xc3\xa9"), 7);
    /* the root */
    assert_int_equal(route_of(state, "GET", "/"), 6);
    assert_int_equal(route_of(state, "GET", "/?q=1"), 6);
    assert_null(m.route->resource_type);
}

static void test_methods(void **state)
{
    assert_int_equal(route_of(state, "HEAD", "/docs/1"), 0);
    assert_int_equal(route_of(state, "POST", "/docs/1"), -1); /* no POST route on /docs/{id} */
    assert_int_equal(route_of(state, "get", "/docs/1"), -1);  /* methods are case-sensitive */
    assert_int_equal(route_of(state, "GET", "/docs"), -1);
    assert_int_equal(route_of(state, "PROPFIND", "/public/x"), 1); /* "*" */
    assert_int_equal(route_of(state, "DELETE", "/docs/special"), 4); /* no methods: any */
}

static void test_rest_and_first_match(void **state)
{
    assert_int_equal(route_of(state, "GET", "/public"), 1);
    assert_int_equal(route_of(state, "GET", "/public/"), 1);
    assert_int_equal(route_of(state, "GET", "/public/a/b/c.css"), 1);
    assert_true(m.route->is_public);
    assert_int_equal(route_of(state, "GET", "/publicity"), -1);
    assert_int_equal(route_of(state, "GET", "/files/b1/x/y"), 5);
    assert_param(0, "b1");
    assert_int_equal(route_of(state, "GET", "/files/b1"), 5);
    assert_int_equal(route_of(state, "GET", "/files"), -1);
    /* /docs/special: route 0 ({id}) comes first and wins for GET; DELETE falls to route 4 */
    assert_int_equal(route_of(state, "GET", "/docs/special"), 0);
    assert_param(0, "special");
    assert_int_equal(route_of(state, "DELETE", "/docs/special"), 4);
    /* one trailing '/' is the same path; the decoded path keeps it */
    assert_int_equal(route_of(state, "GET", "/docs/42/"), 0);
    assert_param(0, "42");
    assert_int_equal(m.path_len, 9);
    assert_int_equal(route_of(state, "GET", "/docs/42/x"), -1);
    /* case matters unless the document says otherwise */
    assert_int_equal(route_of(state, "GET", "/DOCS/1"), -1);
}

static void test_case_insensitive(void **state)
{
    (void)state;
    const char *text = "{\"case_insensitive\": true, \"routes\": [{\"path\": \"/Admin/**\", \"resource_type\": \"admin\", "
                       "\"action\": \"use\"}, {\"path\": \"/**\", \"public\": true}]}";
    char err[256];
    lt_policy_routes_t *rs = NULL;
    assert_int_equal(lt_policy_routes_parse(text, strlen(text), &rs, err, sizeof(err)), 0);
    void *st = rs;
    assert_int_equal(route_of(&st, "GET", "/admin/x"), 0);
    assert_int_equal(route_of(&st, "GET", "/ADMIN/x"), 0);
    assert_int_equal(route_of(&st, "GET", "/%41dmin"), 0);
    assert_int_equal(route_of(&st, "GET", "/other"), 1);
    lt_policy_routes_free(&rs);
}

/* Every way to make the upstream see another path than the rules do is refused. */
static void test_hostile_paths(void **state)
{
    static const char *const ambiguous[] = {
        "/public/../docs/1", "/public/%2e%2e/docs/1", "/public/%2E./docs/1", "/public/.%2e/docs/1",
        "/docs/./1",         "/./docs/1",             "/docs/%2e",           "/public/..",
        "/docs%2F1",         "/docs%2f1",             "/docs/1%5C..",        "/docs\\1",
        "/public/a\\..\\..", "/docs//1",              "//docs/1",            "/docs/%00",
        "/docs/1%0a",        "/docs/%2561",           "/docs;x=1/1",         "/public/a;/../docs",
        "/docs/1%7f",
    };
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        lt_policy_route_result_t res = match(state, "GET", ambiguous[i]);
        if (res != LT_POLICY_ROUTE_AMBIGUOUS)
            fail_msg("%s: result %d, expected AMBIGUOUS", ambiguous[i], (int)res);
        assert_null(m.route);
        assert_non_null(m.why);
    }
    static const char *const malformed[] = {
        "", "docs/1", "*", "http://evil/docs/1", "?/docs/1", "/docs/%", "/docs/%4", "/docs/%zz",
        "/docs/a b", "/docs/1#frag", "/docs/\x01", "/docs/\xc3", "/docs/%C3", "/docs/%ff",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        lt_policy_route_result_t res = match(state, "GET", malformed[i]);
        if (res != LT_POLICY_ROUTE_MALFORMED)
            fail_msg("\"%s\": result %d, expected MALFORMED", malformed[i], (int)res);
        assert_null(m.route);
    }
    /* a raw NUL inside the given length */
    assert_int_equal(lt_policy_routes_match(*state, "GET", 3, "/docs/\0x", 8, &m), LT_POLICY_ROUTE_MALFORMED);
    /* too long, too deep */
    size_t n = LT_POLICY_ROUTES_MAX_PATH + 2;
    char *big = malloc(n + 1);
    assert_non_null(big);
    big[0] = '/';
    memset(big + 1, 'a', n - 1);
    big[n] = '\0';
    assert_int_equal(match(state, "GET", big), LT_POLICY_ROUTE_MALFORMED);
    for (size_t i = 0; i + 1 < n; i += 2)
        big[i] = '/', big[i + 1] = 'a';
    big[n - 1] = 'a';
    big[LT_POLICY_ROUTES_MAX_DEPTH * 2 + 2] = '\0';
    assert_int_equal(match(state, "GET", big), LT_POLICY_ROUTE_MALFORMED);
    big[LT_POLICY_ROUTES_MAX_DEPTH * 2] = '\0';
    assert_int_equal(match(state, "GET", big), LT_POLICY_ROUTE_NONE);
    free(big);
    /* neither the query nor a harmless encoding is refused */
    assert_int_equal(match(state, "GET", "/docs/1?next=../../x%2F%00"), LT_POLICY_ROUTE_MATCHED);
    assert_int_equal(match(state, "GET", "/docs/...."), LT_POLICY_ROUTE_MATCHED);
    assert_int_equal(match(state, "GET", "/docs/.hidden"), LT_POLICY_ROUTE_MATCHED);
    assert_int_equal(match(state, "GET", "/docs/%3B"), LT_POLICY_ROUTE_MATCHED);
    assert_param(0, ";");
}

/* Each bad document, and the start of its message (where, then why). */
static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"", "line 1, column 0:"},
        {"{\"routes\": [}", "line 1, column 13:"},
        {"{\"routes\": [],\n \"routes\": []}", "line 2, column"},
        {"[]", "/: must be an object"},
        {"{}", "/routes: required"},
        {"{\"routes\": {}}", "/routes: required"},
        {"{\"routes\": [], \"extra\": 1}", "/extra: unknown member"},
        {"{\"routes\": [], \"case_insensitive\": 1}", "/case_insensitive: must be true or false"},
        {"{\"routes\": [1]}", "/routes/0: must be an object"},
        {"{\"routes\": [{\"path\": \"/a\", \"public\": true}, {\"pth\": \"/a\"}]}", "/routes/1/pth: unknown member"},
        {"{\"routes\": [{\"public\": true}]}", "/routes/0/path: required"},
        {"{\"routes\": [{\"path\": \"a\", \"public\": true}]}", "/routes/0/path: must start with '/'"},
        {"{\"routes\": [{\"path\": \"/a//b\", \"public\": true}]}", "/routes/0/path: empty segment"},
        {"{\"routes\": [{\"path\": \"/a/\", \"public\": true}]}", "/routes/0/path: empty segment"},
        {"{\"routes\": [{\"path\": \"/a/**/b\", \"public\": true}]}", "/routes/0/path: \"**\" must be the last"},
        {"{\"routes\": [{\"path\": \"/a/*\", \"public\": true}]}", "/routes/0/path: segment \"*\""},
        {"{\"routes\": [{\"path\": \"/a/../b\", \"public\": true}]}", "/routes/0/path: segment \"..\": dot"},
        {"{\"routes\": [{\"path\": \"/a%2Fb\", \"public\": true}]}", "/routes/0/path: segment \"a%2Fb\""},
        {"{\"routes\": [{\"path\": \"/a b\", \"public\": true}]}", "/routes/0/path: segment \"a b\""},
        {"{\"routes\": [{\"path\": \"/{}\", \"public\": true}]}", "/routes/0/path: a parameter"},
        {"{\"routes\": [{\"path\": \"/{1x}\", \"public\": true}]}", "/routes/0/path: a parameter"},
        {"{\"routes\": [{\"path\": \"/x{id}\", \"public\": true}]}", "/routes/0/path: segment \"x{id}\""},
        {"{\"routes\": [{\"path\": \"/{id}.json\", \"public\": true}]}", "/routes/0/path: a parameter"},
        {"{\"routes\": [{\"path\": \"/{a}/{a}\", \"public\": true}]}", "/routes/0/path: parameter {a} appears twice"},
        {"{\"routes\": [{\"path\": \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\", \"public\": true}]}",
         "/routes/0/path: more than 8 parameters"},
        {"{\"routes\": [{\"path\": \"/a\\u0000b\", \"public\": true}]}", "line 1, column 32:"},
        {"{\"routes\": [{\"path\": \"/a\", \"methods\": []}]}", "/routes/0/methods: must be an array"},
        {"{\"routes\": [{\"path\": \"/a\", \"methods\": \"GET\"}]}", "/routes/0/methods: must be an array"},
        {"{\"routes\": [{\"path\": \"/a\", \"methods\": [\"GET\", \"BAD METHOD\"]}]}", "/routes/0/methods/1: must be"},
        {"{\"routes\": [{\"path\": \"/a\", \"methods\": [\"GET\", 3]}]}", "/routes/0/methods/1: must be"},
        {"{\"routes\": [{\"path\": \"/a\", \"public\": \"yes\"}]}", "/routes/0/public: must be true or false"},
        {"{\"routes\": [{\"path\": \"/a\", \"public\": true, \"action\": \"read\"}]}",
         "/routes/0/action: a public route asks no decision"},
        {"{\"routes\": [{\"path\": \"/a\"}]}", "/routes/0/resource_type: required"},
        {"{\"routes\": [{\"path\": \"/a\", \"resource_type\": \"\", \"action\": \"x\"}]}",
         "/routes/0/resource_type: required"},
        {"{\"routes\": [{\"path\": \"/a\", \"resource_type\": \"d\"}]}", "/routes/0/action: required"},
        {"{\"routes\": [{\"path\": \"/a\", \"resource_type\": \"d\", \"action\": \"r\\n\"}]}", "/routes/0/action: required"},
        {"{\"routes\": [{\"path\": \"/a/{x}\", \"resource_type\": \"d\", \"action\": \"r\", \"resource_id\": \"id\"}]}",
         "/routes/0/resource_id: must name a parameter"},
        {"{\"routes\": [{\"path\": \"/a\", \"resource_type\": \"d\", \"action\": \"r\", \"description\": 1}]}",
         "/routes/0/description: must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        lt_policy_routes_t *rs = (lt_policy_routes_t *)&err; /* must be reset to NULL */
        int ret = lt_policy_routes_parse(cases[i].text, strlen(cases[i].text), &rs, err, sizeof(err));
        if (ret != LT_EINVAL || strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu (%s): ret %d, err \"%s\", expected \"%s...\"", i, cases[i].text, ret, err, cases[i].err);
        assert_null(rs);
    }
}

static void test_empty_and_limits(void **state)
{
    (void)state;
    char err[256];
    lt_policy_routes_t *rs = NULL;
    assert_int_equal(lt_policy_routes_parse("{\"routes\": []}", 14, &rs, err, sizeof(err)), 0);
    void *st = rs;
    assert_int_equal(route_of(&st, "GET", "/anything"), -1); /* default deny */
    lt_policy_routes_free(&rs);
    /* LT_POLICY_ROUTES_MAX routes are fine, one more is not */
    size_t cap = 64 * (LT_POLICY_ROUTES_MAX + 2);
    char *text = malloc(cap);
    assert_non_null(text);
    for (int extra = 0; extra < 2; extra++) {
        size_t len = (size_t)snprintf(text, cap, "{\"routes\": [");
        for (int i = 0; i < LT_POLICY_ROUTES_MAX + extra; i++)
            len += (size_t)snprintf(text + len, cap - len, "%s{\"path\": \"/r%d\", \"public\": true}", i ? "," : "", i);
        len += (size_t)snprintf(text + len, cap - len, "]}");
        int ret = lt_policy_routes_parse(text, len, &rs, err, sizeof(err));
        assert_int_equal(ret, extra ? LT_EINVAL : 0);
        if (ret == 0) {
            st = rs;
            assert_int_equal(route_of(&st, "GET", "/r1023"), 1023);
            lt_policy_routes_free(&rs);
        }
    }
    free(text);
}

static void test_load(void **state)
{
    (void)state;
    char path[] = "/tmp/latch-routes-XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "{\"routes\": [\n  {\"path\": \"/ok\", \"public\": true},\n  {\"path\": \"/x\", \"action\": 1}\n]}";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    lt_policy_routes_t *rs = NULL;
    assert_int_equal(lt_policy_routes_load(path, &rs, err, sizeof(err)), LT_EINVAL);
    assert_null(rs);
    char want[128];
    snprintf(want, sizeof(want), "%s: /routes/1/resource_type: required", path);
    assert_memory_equal(err, want, strlen(want));
    unlink(path);
    assert_int_equal(lt_policy_routes_load(path, &rs, err, sizeof(err)), LT_EIO);
    assert_non_null(strstr(err, path));
    assert_null(rs);
}

/* The example shipped in deploy/ is a valid document that means what its comments say. */
static void test_deploy_example(void **state)
{
    (void)state;
    const char *root = getenv("LATCH_SOURCE_ROOT");
    char path[1024], err[512];
    snprintf(path, sizeof(path), "%s/deploy/forward-auth/routes.example.json", root != NULL ? root : ".");
    lt_policy_routes_t *rs = NULL;
    int ret = lt_policy_routes_load(path, &rs, err, sizeof(err));
    if (ret != 0)
        fail_msg("%s", err);
    void *st = rs;
    assert_int_equal(route_of(&st, "GET", "/public/app.css"), 0);
    assert_int_equal(route_of(&st, "PUT", "/docs/9"), 5);
    assert_string_equal(m.route->action, "edit");
    assert_param(0, "9");
    assert_int_equal(route_of(&st, "GET", "/docs/9/attachments/a/b.pdf"), 7);
    assert_int_equal(route_of(&st, "GET", "/elsewhere"), -1);
    lt_policy_routes_free(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_match_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_and_first_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_paths, setup, teardown),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_empty_and_limits),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_deploy_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
