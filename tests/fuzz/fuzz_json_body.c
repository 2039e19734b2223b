/*
 * fuzz_json_body: the body half of lt_http_read_json (lib/http/response.c) without h2o,
 * that is lt_json_depth_ok (lib/base/base.c) then jansson's json_loadb, and the problem
 * document it answers with (lt_problem_render).
 *
 * Invariants:
 * - for a body jansson parses, lt_json_depth_ok(.., 32) is true exactly when the document
 *   nests at most 32 deep, so the cheap pre-scan neither lets a deep document through nor
 *   refuses a shallow one;
 * - a parsed document dumps, and the dump parses back to an equal document;
 * - the problem documents lt_http_read_json would send render and parse as JSON with the
 *   status and code given, and so does one whose detail is the input (up to its first NUL);
 *   the detail comes back as given when it is UTF-8 (else with U+FFFD for bad bytes).
 */
#include <string.h>

#include "base/base.h"
#include "fuzz.h"
#include "http/response.h"

#define MAX_DEPTH 32           /* the max_json_depth default */
#define MAX_BODY (64 * 1024)   /* the max_body_bytes default */

/* Nesting depth of arrays and objects; a scalar is 0. */
static int depth(const json_t *v)
{
    int max = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = depth(json_array_get(v, i));
            max = d > max ? d : max;
        }
    } else if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child) {
            int d = depth(child);
            max = d > max ? d : max;
        }
    } else {
        return 0;
    }
    return max + 1;
}

/* Renders a 400 invalid_json problem and checks that it parses as one. */
static void check_problem(const char *detail)
{
    lt_buf_t b = LT_BUF_INIT;
    FUZZ_CHECK(lt_problem_render(&b, 400, "invalid_json", detail, NULL) == 0);
    json_t *doc = json_loadb(b.base, b.len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(doc != NULL);
    FUZZ_CHECK(json_integer_value(json_object_get(doc, "status")) == 400);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(doc, "code")), "invalid_json") == 0);
    const char *got = json_string_value(json_object_get(doc, "detail"));
    json_t *utf8 = json_string(detail); /* NULL when jansson finds `detail` is not UTF-8 */
    FUZZ_CHECK(got != NULL && (utf8 == NULL || strcmp(got, detail) == 0));
    json_decref(utf8);
    json_decref(doc);
    lt_buf_free(&b);
}

static void check_parsed(json_t *doc, int depth_ok)
{
    FUZZ_CHECK(depth_ok == (depth(doc) <= MAX_DEPTH));
    char *text = json_dumps(doc, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    json_t *again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(again != NULL && json_equal(doc, again));
    json_decref(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > MAX_BODY) /* lt_http_read_json answers these before parsing */
        return 0;
    char *body = fuzz_copy(data, size), detail[256];
    json_error_t jerr;
    int depth_ok = lt_json_depth_ok(body, size, MAX_DEPTH);
    /* lt_http_read_json parses only when depth_ok; parse anyway to check the pre-scan. */
    json_t *doc = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);

    if (!depth_ok) {
        snprintf(detail, sizeof(detail), "The JSON document nests deeper than %d levels.", MAX_DEPTH);
        check_problem(detail);
    } else if (doc == NULL) {
        snprintf(detail, sizeof(detail), "Malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        check_problem(detail);
    }
    if (doc != NULL)
        check_parsed(doc, depth_ok);
    json_decref(doc);

    char *text = fuzz_strdup(data, size);
    check_problem(text);
    free(text);
    free(body);
    return 0;
}
