/* Unit tests for lib/http/response (problem documents) and lib/http/metrics (rendering). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/metrics.h"
#include "http/response.h"

static json_t *render(int status, const char *code, const char *detail, json_t *errors)
{
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_problem_render(&b, status, code, detail, errors), 0);
    json_t *doc = json_loads(b.base, 0, NULL);
    assert_non_null(doc);
    lt_buf_free(&b);
    return doc;
}

static void test_problem_fields(void **state)
{
    (void)state;
    json_t *doc = render(404, "not_found", "No such resource.", NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "urn:latch:problem:not_found");
    assert_string_equal(json_string_value(json_object_get(doc, "title")), "Not Found");
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")), "No such resource.");
    assert_string_equal(json_string_value(json_object_get(doc, "code")), "not_found");
    assert_null(json_object_get(doc, "errors"));
    json_decref(doc);
}

static void test_problem_errors(void **state)
{
    (void)state;
    json_t *errors = json_pack("[{s:s,s:s}]", "field", "email", "message", "is required");
    json_t *doc = render(400, "invalid_request", "Invalid input.", errors);
    json_t *e = json_object_get(doc, "errors");
    assert_true(json_is_array(e));
    assert_int_equal(json_array_size(e), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "field")), "email");
    json_decref(doc);
    json_decref(errors);
}

static void test_problem_escapes_detail(void **state)
{
    (void)state;
    json_t *doc = render(400, "invalid_json", "bad \"quote\" and \\ backslash\n", NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")), "bad \"quote\" and \\ backslash\n");
    json_decref(doc);
}

/* jansson's error text can end mid-character ("invalid escape near '\"\\\xef'"): still a 400. */
static void test_problem_detail_not_utf8(void **state)
{
    (void)state;
    json_t *doc = render(400, "invalid_json", "near '\"\\\xef' \xc3\xa9 \xed\xa0\x80", NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "near '\"\\\xef\xbf\xbd' \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(doc);
}

static void test_titles(void **state)
{
    (void)state;
    assert_string_equal(lt_http_status_title(413), "Content Too Large");
    assert_string_equal(lt_http_status_title(405), "Method Not Allowed");
    assert_string_equal(lt_http_status_title(503), "Service Unavailable");
    assert_string_equal(lt_http_status_title(418), "Bad Request");
}

static void test_metrics_render(void **state)
{
    (void)state;
    lt_http_metrics_t *w[2];
    lt_metrics_route_label_t labels[] = {{"GET", "/healthz"}, {"GET", "/readyz"}};
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_http_metrics_create(2, &w[0]), 0);
    assert_int_equal(lt_http_metrics_create(2, &w[1]), 0);
    for (int i = 0; i < 3; i++) {
        lt_http_metrics_begin(w[i % 2]);
        lt_http_metrics_end(w[i % 2], 0, 200, 50000); /* 50 µs */
    }
    lt_http_metrics_begin(w[1]);
    lt_http_metrics_end(w[1], -1, 404, 2000000); /* 2 ms */
    lt_http_metrics_begin(w[0]);                 /* still in flight */
    lt_http_metrics_begin(w[0]);
    lt_http_metrics_end(w[0], 1, 0, 1000); /* never answered: counted as 499 */
    assert_int_equal(lt_http_metrics_render(&b, w, 2, labels, 2), 0);
    assert_non_null(strstr(b.base, "latch_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3\n"));
    assert_non_null(strstr(b.base, "latch_http_requests_total{route=\"unmatched\",method=\"\",status=\"404\"} 1\n"));
    assert_non_null(strstr(b.base, "latch_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"499\"} 1\n"));
    assert_non_null(strstr(b.base, "latch_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.0001\"} 3\n"));
    assert_non_null(strstr(b.base, "latch_http_request_duration_seconds_bucket{route=\"unmatched\",method=\"\",le=\"0.001\"} 0\n"));
    assert_non_null(strstr(b.base, "latch_http_request_duration_seconds_bucket{route=\"unmatched\",method=\"\",le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(b.base, "latch_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 3\n"));
    assert_non_null(strstr(b.base, "latch_http_requests_in_flight 1\n"));
    lt_buf_free(&b);
    lt_http_metrics_destroy(&w[0]);
    lt_http_metrics_destroy(&w[1]);
    assert_null(w[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_fields),   cmocka_unit_test(test_problem_errors),
        cmocka_unit_test(test_problem_escapes_detail), cmocka_unit_test(test_problem_detail_not_utf8),
        cmocka_unit_test(test_titles), cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
