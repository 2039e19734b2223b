/*
 * fuzz_policy_doc: policy documents, roles and decisions (lib/policy, engine.h), fed the
 * way the admin API feeds them: a JSON body read with the API's depth limit and jansson
 * flags (lt_http_read_json), then lt_policy_validate and the snapshot builder.
 *
 * Input: either one policy document, built with a fixed set of roles and subjects, or a
 * bundle in the shape of tests/data/policy/NAME.json, whose roles (with their permissions
 * and parents, so cycles and dangling parents), subjects and policies are all fuzzed:
 *
 *   {"roles":    [{"tenant"?, "name", "permissions": [..], "parents": [..]}],
 *    "subjects": [{"tenant"?, "type", "id", "roles": [..], "attributes": {..}}],
 *    "policies": [{"tenant"?, <a policy document>}],
 *    "requests": [{"tenant"?, "subject", "resource", "action", "context"?}],
 *    "cases":    [<lt_policy_run_cases cases>], "tenant": <for the cases>}
 *
 * Invariants:
 * - lt_policy_validate answers an array of {where, message, line?, column?} (line and
 *   column positive, together), and it is empty exactly when the builder accepts the same
 *   document; when the builder refuses it, its problem is the first one validation lists;
 * - the builder answers 0, LT_EINVAL (with a message) or LT_EEXIST, never accepts what
 *   validation refuses, and finish fails only because of roles (without them it succeeds);
 * - the snapshot's counts are what the builder accepted;
 * - a decision answers 0, or LT_EINVAL (deny) exactly for a request without the string
 *   members it needs; it is the same with and without explain, and the explanation agrees
 *   with it (allow: the deciding id matched; a deny rule: it is in denied_by; "default":
 *   nothing matched); lt_policy_subject_roles gives a known subject the explanation's roles;
 * - test-case runs count every case once;
 * - nothing leaks or trips ASan/UBSan.
 */
#include <stdbool.h>
#include <string.h>

#include "base/base.h"
#include "fuzz.h"
#include "policy/engine.h"

#define MAX_DEPTH 32          /* the max_json_depth default */
#define MAX_BODY (1 << 20)    /* max_body_bytes may be raised from its 64 KiB default */
#define MAX_LIST 1100         /* entries of a role's permissions or parents passed on (limits are 1000, 64) */
#define MAX_DECISIONS 24      /* generated decisions per input, so one input stays fast */
#define MAX_RULE_DECISIONS 4  /* of them, rules of one document aimed at */
#define MAX_REQUESTS 8        /* decisions from the bundle's "requests" */
#define NOW_US (1715000000LL * 1000000)

static const char *const FIXED_ROLES =
    "[{\"name\": \"viewer\", \"permissions\": [\"document:read\"]},"
    " {\"name\": \"editor\", \"permissions\": [\"document:edit\", \"report:*\"], \"parents\": [\"viewer\"]},"
    " {\"name\": \"admin\", \"permissions\": [\"*\"]},"
    " {\"name\": \"auditor\", \"permissions\": [\"*:read\", \"latch:users:read\"]},"
    " {\"tenant\": \"acme\", \"name\": \"editor\", \"permissions\": [\"document:share\"], \"parents\": [\"viewer\"]},"
    " {\"tenant\": \"acme\", \"name\": \"owner\", \"permissions\": [], \"parents\": [\"editor\", \"auditor\"]}]";
static const char *const FIXED_SUBJECTS =
    "[{\"tenant\": \"acme\", \"type\": \"user\", \"id\": \"alice\", \"roles\": [\"editor\", \"ghost\"],"
    "  \"attributes\": {\"department\": \"eng\", \"clearance\": 2, \"roles\": \"spoofed\"}},"
    " {\"type\": \"user\", \"id\": \"root\", \"roles\": [\"admin\"]},"
    " {\"type\": \"client\", \"id\": \"bot\", \"roles\": [\"auditor\"], \"attributes\": {}}]";
/* properties every generated request carries, so conditions find something */
static const char *const SUBJECT_PROPS =
    "{\"department\": \"eng\", \"clearance\": 3, \"tenant\": \"spoofed\", \"groups\": [\"a\", \"b\"],"
    " \"since\": \"2020-02-29T12:00:00Z\"}";
static const char *const RESOURCE_PROPS =
    "{\"owner\": \"alice\", \"tenant\": \"acme\", \"department\": \"eng\", \"classification\": \"secret\","
    " \"archived\": true, \"tags\": [\"a\", \"b\"], \"size\": 1024, \"meta\": {\"created\": \"2024-05-01T09:00:00Z\"},"
    " \"type\": \"spoofed\"}";
static const char *const CONTEXT =
    "{\"ip\": \"10.20.1.2\", \"time\": \"2024-05-06T07:00:00Z\", \"maintenance\": false, \"n\": null,"
    " \"allow\": [\"10.0.0.0/8\", \"2001:db8::/32\"]}";

static json_t *fixed(const char *text)
{
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(v != NULL);
    return v;
}

/* A JSON string member, or NULL. */
static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Up to `cap` entries of an array as C strings (NULL for a non-string); n = 0 for a non-array. */
static const char **strings(const json_t *arr, size_t cap, size_t *n)
{
    *n = json_array_size(arr) < cap ? json_array_size(arr) : cap;
    const char **out = calloc(*n + 1, sizeof(*out));
    FUZZ_CHECK(out != NULL);
    for (size_t i = 0; i < *n; i++)
        out[i] = json_string_value(json_array_get(arr, i));
    return out;
}

static void check_problem(int rc, const lt_policy_problem_t *p)
{
    FUZZ_CHECK(rc == 0 || rc == LT_EINVAL || rc == LT_EEXIST);
    FUZZ_CHECK(memchr(p->where, '\0', sizeof(p->where)) != NULL && memchr(p->msg, '\0', sizeof(p->msg)) != NULL);
    FUZZ_CHECK(rc == 0 || p->msg[0] != '\0');
    FUZZ_CHECK(p->line >= 0 && p->col >= 0);
}

/* ---- building ------------------------------------------------------------------------ */

typedef struct counts {
    size_t roles, subjects, policies, rules;
} counts_t;

static void add_roles(lt_policy_builder_t *b, const json_t *roles, counts_t *n)
{
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) {
        size_t np, npar;
        const char **perms = strings(json_object_get(r, "permissions"), MAX_LIST, &np);
        const char **parents = strings(json_object_get(r, "parents"), MAX_LIST, &npar);
        lt_policy_problem_t p;
        int rc = lt_policy_builder_role(b, str(r, "tenant"), str(r, "name"), perms, np, parents, npar, &p);
        check_problem(rc, &p);
        n->roles += rc == 0;
        free(perms);
        free(parents);
    }
}

static void add_subjects(lt_policy_builder_t *b, const json_t *subjects, counts_t *n)
{
    size_t i;
    json_t *sb;
    json_array_foreach(subjects, i, sb) {
        size_t nr;
        const char **roles = strings(json_object_get(sb, "roles"), 300, &nr);
        int rc = lt_policy_builder_subject(b, str(sb, "tenant"), str(sb, "type"), str(sb, "id"), roles, nr,
                                           json_object_get(sb, "attributes"));
        FUZZ_CHECK(rc == 0 || rc == LT_EINVAL || rc == LT_EEXIST);
        n->subjects += rc == 0;
        free(roles);
    }
}

/* Validation and the builder agree on `doc`; the first problem is the builder's. */
static bool check_validate(const json_t *doc)
{
    json_t *v = lt_policy_validate(doc);
    FUZZ_CHECK(json_is_array(v));
    FUZZ_CHECK(json_array_size(v) <= 501);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        FUZZ_CHECK(json_is_object(it) && json_is_string(json_object_get(it, "where")) &&
                   json_is_string(json_object_get(it, "message")) && json_string_length(json_object_get(it, "message")) > 0);
        const json_t *line = json_object_get(it, "line"), *col = json_object_get(it, "column");
        FUZZ_CHECK((line == NULL) == (col == NULL));
        FUZZ_CHECK(line == NULL || (json_integer_value(line) > 0 && json_integer_value(col) > 0));
        FUZZ_CHECK(json_object_size(it) == (line != NULL ? 4 : 2));
    }
    bool valid = json_array_size(v) == 0;

    lt_policy_builder_t *b = lt_policy_builder_new();
    FUZZ_CHECK(b != NULL);
    lt_policy_problem_t p;
    int rc = lt_policy_builder_policy(b, NULL, "fuzz-check", doc, &p);
    check_problem(rc, &p);
    FUZZ_CHECK(rc != LT_EEXIST);
    FUZZ_CHECK((rc == 0) == valid);
    if (rc != 0) {
        const json_t *first = json_array_get(v, 0);
        FUZZ_CHECK(strcmp(p.where, str(first, "where")) == 0);
        FUZZ_CHECK(strcmp(p.msg, str(first, "message")) == 0);
        FUZZ_CHECK(p.line == (int)json_integer_value(json_object_get(first, "line")));
        FUZZ_CHECK(p.col == (int)json_integer_value(json_object_get(first, "column")));
    }
    lt_policy_builder_free(b);
    json_decref(v);
    return valid;
}

/* Policies as loaded: (tenant, doc without "tenant") pairs, for the builds and for requests. */
typedef struct pol {
    const char *tenant;
    json_t *doc;
    bool valid;
} pol_t;

static void add_policies(lt_policy_builder_t *b, pol_t *pols, size_t npols, counts_t *n)
{
    for (size_t i = 0; i < npols; i++) {
        char id[32];
        snprintf(id, sizeof(id), "fuzz-%zu", i);
        const json_t *own = json_object_get(pols[i].doc, "id");
        lt_policy_problem_t p;
        /* the document's own id when it has one (NULL id), so both ways of naming are used */
        int rc = lt_policy_builder_policy(b, pols[i].tenant, json_is_string(own) ? NULL : id, pols[i].doc, &p);
        check_problem(rc, &p);
        FUZZ_CHECK(rc != 0 || pols[i].valid);
        if (pols[i].valid && (pols[i].tenant == NULL || (pols[i].tenant[0] != '\0' && strlen(pols[i].tenant) <= 128)))
            FUZZ_CHECK(rc == 0 || rc == LT_EEXIST);
        if (rc == 0) {
            n->policies++;
            n->rules += json_array_size(json_object_get(pols[i].doc, "rules"));
        }
    }
}

/*
 * A snapshot of everything; when the roles do not resolve (a cycle, a missing parent, too
 * deep), finish must say so and the same content without roles must build.
 */
static lt_policy_snapshot_t *build(const json_t *roles, const json_t *subjects, pol_t *pols, size_t npols)
{
    for (int with_roles = 1; with_roles >= 0; with_roles--) {
        counts_t n = {0};
        lt_policy_builder_t *b = lt_policy_builder_new();
        FUZZ_CHECK(b != NULL);
        if (with_roles)
            add_roles(b, roles, &n);
        add_subjects(b, subjects, &n);
        add_policies(b, pols, npols, &n);
        lt_policy_snapshot_t *s = NULL;
        lt_policy_problem_t p;
        int rc = lt_policy_builder_finish(b, &s, &p);
        lt_policy_builder_free(b);
        check_problem(rc, &p);
        FUZZ_CHECK(rc == 0 || rc == LT_EINVAL);
        FUZZ_CHECK((rc == 0) == (s != NULL));
        FUZZ_CHECK(rc == 0 || with_roles);
        if (rc != 0)
            continue;
        lt_policy_stats_t st;
        lt_policy_snapshot_stats(s, &st);
        FUZZ_CHECK(st.roles == n.roles && st.subjects == n.subjects && st.policies == n.policies &&
                   st.rules == n.rules);
        return s;
    }
    FUZZ_CHECK(!"unreachable");
    return NULL;
}

/* ---- deciding ------------------------------------------------------------------------ */

static bool in_list(const json_t *arr, const char *s)
{
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (json_is_string(it) && strcmp(json_string_value(it), s) == 0)
            return true;
    }
    return false;
}

static void decide(const lt_policy_snapshot_t *s, const char *tenant, const json_t *subject, const json_t *resource,
                   const json_t *action, const json_t *context)
{
    lt_policy_request_t q = {tenant, subject, resource, action, context, NOW_US, 0};
    lt_policy_decision_t d, e;
    int rc = lt_policy_decide(s, &q, &d);
    bool shape = str(subject, "type") != NULL && str(subject, "id") != NULL && str(resource, "type") != NULL &&
                 str(action, "name") != NULL;
    /* LT_EINVAL also for an unknown subject claiming more than 256 roles */
    FUZZ_CHECK(rc == 0 || rc == LT_EINVAL);
    FUZZ_CHECK(shape || rc == LT_EINVAL);
    FUZZ_CHECK(d.deciding != NULL && d.explanation == NULL);
    FUZZ_CHECK(rc == 0 || (!d.allow && strcmp(d.deciding, "default") == 0));
    FUZZ_CHECK(!d.allow || strcmp(d.deciding, "default") != 0);

    q.explain = 1;
    FUZZ_CHECK(lt_policy_decide(s, &q, &e) == rc);
    FUZZ_CHECK(e.allow == d.allow && strcmp(e.deciding, d.deciding) == 0);
    if (rc != 0) {
        FUZZ_CHECK(e.explanation == NULL);
        return;
    }
    const json_t *x = e.explanation, *matched = json_object_get(x, "matched"), *denied = json_object_get(x, "denied_by");
    FUZZ_CHECK(json_is_object(x));
    FUZZ_CHECK(strcmp(str(x, "decision"), d.allow ? "allow" : "deny") == 0);
    FUZZ_CHECK(strcmp(str(x, "deciding"), d.deciding) == 0);
    FUZZ_CHECK(json_is_array(json_object_get(x, "roles")) && json_is_array(json_object_get(x, "derived_roles")) &&
               json_is_array(matched));
    /* forward-auth's roles are the explanation's, for a subject the snapshot knows */
    const char *names[64];
    size_t n = lt_policy_subject_roles(s, tenant, str(subject, "type"), str(subject, "id"), names, 64);
    const json_t *roles = json_object_get(x, "roles");
    FUZZ_CHECK(n <= 64 && n <= json_array_size(roles));
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(strcmp(names[i], json_string_value(json_array_get(roles, i))) == 0);
    if (strcmp(d.deciding, "default") == 0) {
        FUZZ_CHECK(!d.allow && json_array_size(matched) == 0 && denied == NULL);
    } else {
        FUZZ_CHECK(in_list(matched, d.deciding));
        FUZZ_CHECK(d.allow ? denied == NULL : in_list(denied, d.deciding));
    }
    json_decref(e.explanation);
}

/* Requests aimed at what a document's rules name: its type, each rule's first action, a
 * known subject and an unknown one holding every role the document mentions. */
static void decide_for(const lt_policy_snapshot_t *s, const pol_t *pol, size_t *budget)
{
    const char *rtype = str(pol->doc, "resource_type");
    if (rtype == NULL || strcmp(rtype, "*") == 0)
        rtype = "document";
    json_t *mentioned = json_array();
    FUZZ_CHECK(mentioned != NULL);
    const json_t *lists[] = {json_object_get(pol->doc, "rules"), json_object_get(pol->doc, "derived_roles")};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *it;
        json_array_foreach(lists[l], i, it) {
            const json_t *names = json_object_get(it, l == 0 ? "roles" : "parent_roles");
            size_t j;
            json_t *name;
            json_array_foreach(names, j, name) {
                if (json_array_size(mentioned) < 64 && json_is_string(name))
                    json_array_append(mentioned, name);
            }
        }
    }
    json_t *sprops = fixed(SUBJECT_PROPS), *context = fixed(CONTEXT);
    json_object_set_new(sprops, "roles", mentioned);
    json_t *known = json_pack("{s:s, s:s}", "type", "user", "id", "alice");
    json_t *unknown = json_pack("{s:s, s:s, s:o}", "type", "user", "id", "zed", "properties", sprops);
    json_t *resource = json_pack("{s:s, s:s, s:o}", "type", rtype, "id", "d1", "properties", fixed(RESOURCE_PROPS));
    FUZZ_CHECK(known != NULL && unknown != NULL && resource != NULL);

    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(pol->doc, "rules"), i, rule) {
        if (*budget < 2 || i >= MAX_RULE_DECISIONS)
            break;
        const char *act = json_string_value(json_array_get(json_object_get(rule, "actions"), 0));
        json_t *action = json_pack("{s:s}", "name", act != NULL && strcmp(act, "*") != 0 ? act : "read");
        FUZZ_CHECK(action != NULL);
        /* alice is known in acme; a global document applies there too */
        decide(s, pol->tenant != NULL ? pol->tenant : "acme", known, resource, action, context);
        decide(s, pol->tenant, unknown, resource, action, NULL);
        *budget -= 2;
        json_decref(action);
    }
    json_decref(known);
    json_decref(unknown);
    json_decref(resource);
    json_decref(context);
}

static void run_cases(const lt_policy_snapshot_t *s, const json_t *bundle)
{
    const json_t *cases = json_object_get(bundle, "cases");
    if (!json_is_array(cases))
        return;
    json_t *out = lt_policy_run_cases(s, str(bundle, "tenant"), cases, NOW_US);
    FUZZ_CHECK(out != NULL);
    json_int_t passed = json_integer_value(json_object_get(out, "passed")),
               failed = json_integer_value(json_object_get(out, "failed"));
    FUZZ_CHECK(passed >= 0 && failed >= 0 && (size_t)(passed + failed) == json_array_size(cases));
    FUZZ_CHECK(json_array_size(json_object_get(out, "results")) == json_array_size(cases));
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > MAX_BODY)
        return 0;
    char *body = fuzz_copy(data, size);
    json_t *doc = NULL;
    /* what lt_http_read_json does before a handler sees the body */
    if (lt_json_depth_ok(body, size, MAX_DEPTH))
        doc = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    if (doc == NULL)
        return 0;

    bool bundle = json_is_object(doc) && (json_object_get(doc, "policies") != NULL ||
                                          json_object_get(doc, "roles") != NULL ||
                                          json_object_get(doc, "subjects") != NULL);
    json_t *roles = bundle ? json_incref(json_object_get(doc, "roles")) : fixed(FIXED_ROLES);
    json_t *subjects = bundle ? json_incref(json_object_get(doc, "subjects")) : fixed(FIXED_SUBJECTS);
    const json_t *list = bundle ? json_object_get(doc, "policies") : NULL;
    /* a lone document is loaded twice: globally and in tenant acme */
    size_t npols = bundle ? json_array_size(list) : 2;
    pol_t *pols = calloc(npols + 1, sizeof(*pols));
    FUZZ_CHECK(pols != NULL);
    for (size_t i = 0; i < npols; i++) {
        const json_t *entry = bundle ? json_array_get(list, i) : doc;
        /* the table-driven tests' convention: "tenant" is not part of the document */
        pols[i].tenant = bundle ? str(entry, "tenant") : i == 1 ? "acme" : NULL;
        pols[i].doc = json_is_object(entry) ? json_copy((json_t *)entry) : json_incref((json_t *)entry);
        if (bundle && json_is_object(pols[i].doc))
            json_object_del(pols[i].doc, "tenant");
        pols[i].valid = check_validate(pols[i].doc);
    }

    lt_policy_snapshot_t *s = build(roles, subjects, pols, npols);

    size_t budget = MAX_DECISIONS;
    for (size_t i = 0; i < npols && budget >= 2; i++)
        if (pols[i].valid)
            decide_for(s, &pols[i], &budget);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "requests"), i, r) {
        if (i >= MAX_REQUESTS)
            break;
        const json_t *ctx = json_object_get(r, "context");
        decide(s, str(r, "tenant"), json_object_get(r, "subject"), json_object_get(r, "resource"),
               json_object_get(r, "action"), json_is_object(ctx) ? ctx : NULL);
    }
    run_cases(s, doc);

    lt_policy_snapshot_decref(s);
    for (size_t k = 0; k < npols; k++)
        json_decref(pols[k].doc);
    free(pols);
    json_decref(roles);
    json_decref(subjects);
    json_decref(doc);
    return 0;
}
