/*
 * fuzz_authzen: the AuthZEN bodies of POST /access/v1/evaluation and /evaluations
 * (lt__api_authzen, lib/api/access.c): member checks, batch defaults and semantics, and
 * the decisions themselves, from a snapshot of tests/data/policy/documents.json (roles
 * with inheritance, subjects with attributes, policies with conditions).
 *
 * Input: one selector byte, then the body. Bit 0: batch (/evaluations); bit 1: the deciding
 * client's tenant is "globex" rather than "acme".
 *
 * Invariants:
 * - the answer is 0 with a document, or LT_EINVAL with a member named and a reason; never
 *   anything else (no memory failure here);
 * - /evaluation answers {decision: bool[, context: {explanation}]}, with the explanation
 *   exactly when options.explain is true, and its decision ("allow"/"deny") the same;
 * - /evaluations answers {evaluations: [...]}: with no items, one answer; with items, one
 *   per item in order under execute_all, and under deny_on_first_deny (permit_on_first_permit)
 *   every answer but the last allows (denies) and the answers stop at the first that
 *   denies (allows); each answer is {decision[, context]}; an item refused in place denies
 *   with context.error {status: "400", message};
 * - the same body answers the same way twice (the decision is a function of the snapshot,
 *   the tenant, the body and the clock).
 */
#include <string.h>

#include "api/bodies.h"
#include "fuzz.h"
#include "snapshot.h"

#define NOW_US (1715000000LL * 1000000)

static lt_policy_snapshot_t *snap;

static void check_answer(const json_t *a, int explain, int *allow)
{
    FUZZ_CHECK(json_is_object(a) && json_is_boolean(json_object_get(a, "decision")));
    *allow = json_is_true(json_object_get(a, "decision"));
    const json_t *ctx = json_object_get(a, "context");
    FUZZ_CHECK(json_object_size(a) == (ctx != NULL ? 2u : 1u));
    if (ctx == NULL) {
        FUZZ_CHECK(!explain);
        return;
    }
    const json_t *err = json_object_get(ctx, "error"), *ex = json_object_get(ctx, "explanation");
    FUZZ_CHECK(json_object_size(ctx) == 1 && (err != NULL) != (ex != NULL));
    if (err != NULL) {
        FUZZ_CHECK(!*allow && strcmp(json_string_value(json_object_get(err, "status")), "400") == 0);
        FUZZ_CHECK(json_string_value(json_object_get(err, "message")) != NULL);
    } else {
        FUZZ_CHECK(explain && json_is_object(ex));
        const char *d = json_string_value(json_object_get(ex, "decision"));
        FUZZ_CHECK(d != NULL && strcmp(d, *allow ? "allow" : "deny") == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (snap == NULL)
        snap = fuzz_snapshot_load("documents");
    if (size < 1)
        return 0;
    json_t *body = fuzz_json_object(data + 1, size - 1);
    if (body == NULL)
        return 0;
    int batch = data[0] & 1;
    const char *tenant = (data[0] & 2) ? "globex" : "acme";
    json_t *out = NULL, *again = NULL;
    const char *field = NULL, *why = NULL, *field2 = NULL, *why2 = NULL;
    int ret = lt__api_authzen(snap, tenant, body, batch, NOW_US, &out, &field, &why);
    int ret2 = lt__api_authzen(snap, tenant, body, batch, NOW_US, &again, &field2, &why2);
    FUZZ_CHECK(ret == ret2);
    if (ret != 0) {
        FUZZ_CHECK(ret == LT_EINVAL && out == NULL && field != NULL && why != NULL);
        FUZZ_CHECK(strcmp(field, field2) == 0 && strcmp(why, why2) == 0);
        json_decref(body);
        return 0;
    }
    FUZZ_CHECK(out != NULL && field == NULL && why == NULL && json_equal(out, again));
    int explain = json_is_true(json_object_get(json_object_get(body, "options"), "explain")), allow;
    if (!batch) {
        check_answer(out, explain, &allow);
        FUZZ_CHECK(json_object_get(json_object_get(out, "context"), "error") == NULL);
    } else {
        const json_t *items = json_object_get(body, "evaluations"), *list = json_object_get(out, "evaluations");
        const char *sem = json_string_value(json_object_get(json_object_get(body, "options"), "evaluations_semantic"));
        int stop_on = sem == NULL || strcmp(sem, "execute_all") == 0 ? -1 : strcmp(sem, "deny_on_first_deny") == 0 ? 0 : 1;
        size_t n = json_array_size(items), got = json_array_size(list);
        FUZZ_CHECK(json_object_size(out) == 1 && json_is_array(list));
        FUZZ_CHECK(n <= 1000 && (n == 0 ? got == 1 : got >= 1 && got <= n));
        if (stop_on < 0)
            FUZZ_CHECK(n == 0 || got == n);
        for (size_t i = 0; i < got; i++) {
            check_answer(json_array_get(list, i), explain, &allow);
            if (stop_on >= 0 && n > 0 && i + 1 < got)
                FUZZ_CHECK(allow != stop_on);
            if (stop_on >= 0 && n > 0 && i + 1 == got && got < n)
                FUZZ_CHECK(allow == stop_on);
        }
    }
    json_decref(out);
    json_decref(again);
    json_decref(body);
    return 0;
}
