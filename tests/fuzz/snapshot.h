/*
 * snapshot: a policy snapshot for the fuzz targets that decide (fuzz_authzen,
 * fuzz_body_admin), built from a bundle of tests/data/policy (roles, subjects, policies:
 * the same the table-driven engine tests use), so decisions meet real rules, conditions and
 * role inheritance. LT_SOURCE_ROOT comes from tests/fuzz/meson.build.
 */
#ifndef LT_FUZZ_SNAPSHOT_H
#define LT_FUZZ_SNAPSHOT_H

#include "fuzz.h"
#include "policy/engine.h"

static const char *fuzz_str_or_null(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The strings of array member `k` of `o` (borrowed), in `out` (cap entries); the count. */
static size_t fuzz_strings(const json_t *o, const char *k, const char **out, size_t cap)
{
    size_t i, n = 0;
    const json_t *v;
    json_array_foreach (json_object_get(o, k), i, v)
        if (n < cap)
            out[n++] = json_string_value(v);
    return n;
}

static lt_policy_snapshot_t *fuzz_snapshot_load(const char *bundle)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/policy/%s.json", LT_SOURCE_ROOT, bundle);
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(doc != NULL);
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_problem_t p;
    const char *a[64], *c[64];
    size_t i;
    const json_t *e;
    FUZZ_CHECK(b != NULL);
    json_array_foreach (json_object_get(doc, "roles"), i, e) {
        size_t na = fuzz_strings(e, "permissions", a, 64), nc = fuzz_strings(e, "parents", c, 64);
        FUZZ_CHECK(lt_policy_builder_role(b, fuzz_str_or_null(e, "tenant"), fuzz_str_or_null(e, "name"), a, na, c, nc,
                                          &p) == 0);
    }
    json_array_foreach (json_object_get(doc, "subjects"), i, e) {
        size_t na = fuzz_strings(e, "roles", a, 64);
        FUZZ_CHECK(lt_policy_builder_subject(b, fuzz_str_or_null(e, "tenant"), fuzz_str_or_null(e, "type"),
                                             fuzz_str_or_null(e, "id"), a, na, json_object_get(e, "attributes")) == 0);
    }
    json_array_foreach (json_object_get(doc, "policies"), i, e) {
        json_t *pol = json_copy((json_t *)e);
        const char *tenant = fuzz_str_or_null(e, "tenant");
        json_object_del(pol, "tenant");
        FUZZ_CHECK(lt_policy_builder_policy(b, tenant, fuzz_str_or_null(e, "id"), pol, &p) == 0);
        json_decref(pol);
    }
    lt_policy_snapshot_t *s = NULL;
    FUZZ_CHECK(lt_policy_builder_finish(b, &s, &p) == 0 && s != NULL);
    lt_policy_builder_free(b);
    json_decref(doc);
    return s;
}

#endif
