/* Unit tests for lib/http/router: pattern compilation, matching, precedence, 404/405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static int h_a(struct lt_req *r)
{
    (void)r;
    return 0;
}
static int h_b(struct lt_req *r)
{
    (void)r;
    return 1;
}

static int match(lt_router_t *rt, const char *method, const char *path, lt_route_match_t *m)
{
    return lt_router_match(rt, method, strlen(method), path, strlen(path), m);
}

static int setup(void **state)
{
    lt_router_t *rt;
    assert_int_equal(lt_router_create(&rt), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/healthz", h_a, 0), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/v1/admin/users/{id}", h_a, 0), 0);
    assert_int_equal(lt_router_add(rt, "PATCH", "/v1/admin/users/{id}", h_b, 0), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/v1/me/{x}", h_a, 0), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/v1/me/sessions", h_b, 0), 0);
    assert_int_equal(lt_router_add(rt, "DELETE", "/v1/me/sessions/{sid}", h_a, 0), 0);
    assert_int_equal(lt_router_add(rt, "POST", "/v1/t/{tenant}/u/{user}", h_a, 0), 0);
    *state = rt;
    return 0;
}

static int teardown(void **state)
{
    lt_router_t *rt = *state;
    lt_router_destroy(&rt);
    assert_null(rt);
    return 0;
}

static void test_literal(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "GET", "/healthz", &m), 0);
    assert_string_equal(m.route->pattern, "/healthz");
    assert_int_equal(m.nparams, 0);
}

static void test_params(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "POST", "/v1/t/acme/u/42", &m), 0);
    assert_int_equal(m.nparams, 2);
    assert_int_equal(m.params[0].name_len, 6);
    assert_memory_equal(m.params[0].name, "tenant", 6);
    assert_int_equal(m.params[0].value_len, 4);
    assert_memory_equal(m.params[0].value, "acme", 4);
    assert_memory_equal(m.params[1].value, "42", 2);
}

static void test_method_selects_route(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "PATCH", "/v1/admin/users/7", &m), 0);
    assert_ptr_equal(m.route->fn, h_b);
    assert_int_equal(match(*state, "GET", "/v1/admin/users/7", &m), 0);
    assert_ptr_equal(m.route->fn, h_a);
}

static void test_literal_beats_param(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "GET", "/v1/me/sessions", &m), 0);
    assert_string_equal(m.route->pattern, "/v1/me/sessions");
    assert_int_equal(match(*state, "GET", "/v1/me/other", &m), 0);
    assert_string_equal(m.route->pattern, "/v1/me/{x}");
}

static void test_not_found(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "GET", "/nope", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "/healthz/", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "//healthz", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "/v1/admin/users/", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "healthz", &m), LT_ENOTFOUND);
    assert_int_equal(match(*state, "GET", "/v1/admin/users/1/2", &m), LT_ENOTFOUND);
}

static void test_method_not_allowed(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "POST", "/healthz", &m), LT_ESTATE);
    assert_string_equal(m.allow, "GET, HEAD");
    assert_int_equal(match(*state, "DELETE", "/v1/admin/users/9", &m), LT_ESTATE);
    assert_string_equal(m.allow, "GET, HEAD, PATCH");
}

static void test_head_uses_get(void **state)
{
    lt_route_match_t m;
    assert_int_equal(match(*state, "HEAD", "/healthz", &m), 0);
    assert_string_equal(m.route->method, "GET");
}

static void test_bad_patterns(void **state)
{
    lt_router_t *rt = *state;
    assert_int_equal(lt_router_add(rt, "GET", "healthz", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/a//b", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/a/{}", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/a/{x", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/a/x}", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/a/", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/healthz", h_b, 0), LT_EEXIST);
    assert_int_equal(lt_router_add(rt, "GET", "/v1/admin/users/{other}", h_b, 0), LT_EEXIST);
    assert_int_equal(lt_router_add(rt, "", "/x", h_a, 0), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/x", NULL, 0), LT_EINVAL);
}

static void test_index_and_count(void **state)
{
    lt_router_t *rt = *state;
    assert_int_equal(lt_router_count(rt), 7);
    for (size_t i = 0; i < lt_router_count(rt); i++)
        assert_int_equal(lt_router_route(rt, i)->index, (int)i);
    assert_null(lt_router_route(rt, 7));
}

static void test_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(lt_router_decode(out, sizeof(out), "a%20b", 5), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(lt_router_decode(out, sizeof(out), "%41%62", 6), 2);
    assert_string_equal(out, "Ab");
    assert_int_equal(lt_router_decode(out, sizeof(out), "%2", 2), LT_EINVAL);
    assert_int_equal(lt_router_decode(out, sizeof(out), "%zz", 3), LT_EINVAL);
    assert_int_equal(lt_router_decode(out, sizeof(out), "a%00", 4), LT_EINVAL);
    assert_int_equal(lt_router_decode(out, sizeof(out), "a\0b", 3), LT_EINVAL); /* a raw NUL too */
    assert_int_equal(lt_router_decode(out, sizeof(out), "a%2Fb", 5), LT_EINVAL);
    assert_int_equal(lt_router_decode(out, 3, "abc", 3), LT_ERANGE);
    assert_int_equal(lt_router_decode(out, 4, "abc", 3), 3);
}

/* LT_ROUTE_REST: the final parameter takes the rest, '/' and empty segments included. */
static void test_rest(void **state)
{
    lt_router_t *rt = *state;
    lt_route_match_t m;
    assert_int_equal(lt_router_add(rt, "GET", "/fa", h_a, 0), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/fa/{path}", h_b, LT_ROUTE_REST), 0);
    assert_int_equal(lt_router_add(rt, "POST", "/fa/{path}", h_b, LT_ROUTE_REST), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/t/{tenant}/f/{rest}", h_b, LT_ROUTE_REST), 0);
    assert_int_equal(lt_router_add(rt, "GET", "/fa/exact", h_a, 0), 0);

    assert_int_equal(match(rt, "GET", "/fa", &m), 0);
    assert_string_equal(m.route->pattern, "/fa");
    assert_int_equal(m.nparams, 0);
    const char *const rests[] = {"", "docs", "docs/1", "a//b/", "..", "x/", "%2F", "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"};
    for (size_t i = 0; i < sizeof(rests) / sizeof(rests[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/fa/%s", rests[i]);
        assert_int_equal(match(rt, "GET", path, &m), 0);
        assert_string_equal(m.route->pattern, "/fa/{path}");
        assert_int_equal(m.nparams, 1);
        assert_int_equal(m.params[0].name_len, 4);
        assert_memory_equal(m.params[0].name, "path", 4);
        assert_int_equal(m.params[0].value_len, strlen(rests[i]));
        assert_memory_equal(m.params[0].value, rests[i], strlen(rests[i]));
    }
    /* an exact route wins over the rest route, whatever the order */
    assert_int_equal(match(rt, "GET", "/fa/exact", &m), 0);
    assert_string_equal(m.route->pattern, "/fa/exact");
    assert_int_equal(match(rt, "GET", "/fa/exact/more", &m), 0);
    assert_string_equal(m.route->pattern, "/fa/{path}");
    /* HEAD through GET, other methods 405 with the rest routes' methods */
    assert_int_equal(match(rt, "HEAD", "/fa/x", &m), 0);
    assert_int_equal(match(rt, "PUT", "/fa/x", &m), LT_ESTATE);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    /* parameters before the rest */
    assert_int_equal(match(rt, "GET", "/t/acme/f/a/b", &m), 0);
    assert_int_equal(m.nparams, 2);
    assert_memory_equal(m.params[0].value, "acme", 4);
    assert_int_equal(m.params[1].value_len, 3);
    assert_memory_equal(m.params[1].value, "a/b", 3);
    assert_int_equal(match(rt, "GET", "/t//f/a", &m), LT_ENOTFOUND);
    assert_int_equal(match(rt, "GET", "/t/acme/f", &m), LT_ENOTFOUND);
    /* the prefix must be whole segments */
    assert_int_equal(match(rt, "GET", "/fax", &m), LT_ENOTFOUND);
    assert_int_equal(match(rt, "GET", "/fa%2Fx", &m), LT_ENOTFOUND);
    assert_int_equal(match(rt, "GET", "//fa/x", &m), LT_ENOTFOUND);
    /* the other routes are unchanged */
    assert_int_equal(match(rt, "GET", "/healthz/", &m), LT_ENOTFOUND);
    assert_int_equal(match(rt, "GET", "/v1/me/sessions", &m), 0);
    assert_string_equal(m.route->pattern, "/v1/me/sessions");
    /* malformed: the last segment must be a parameter; rest and exact are distinct shapes */
    assert_int_equal(lt_router_add(rt, "GET", "/fb", h_a, LT_ROUTE_REST), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/", h_a, LT_ROUTE_REST), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/fb/{x}/y", h_a, LT_ROUTE_REST), LT_EINVAL);
    assert_int_equal(lt_router_add(rt, "GET", "/fa/{other}", h_a, LT_ROUTE_REST), LT_EEXIST);
    assert_int_equal(lt_router_add(rt, "GET", "/fa/{other}", h_a, 0), 0);
    assert_int_equal(match(rt, "GET", "/fa/one", &m), 0);
    assert_string_equal(m.route->pattern, "/fa/{other}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_selects_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_beats_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_uses_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_and_count, setup, teardown),
        cmocka_unit_test(test_decode),
        cmocka_unit_test_setup_teardown(test_rest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
