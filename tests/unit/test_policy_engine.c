/*
 * Unit tests for lib/policy/engine.h: the builder's checks (role names, permissions,
 * inheritance cycles, unknown parents, tenants), permission wildcards, combining (deny wins,
 * default deny, RBAC, derived roles, per-user overrides, errors failing closed), the
 * flattened views conditions see, explanations, validation with positions, test-case runs,
 * limits, concurrent decisions, the table-driven cases of tests/data/policy (README.md
 * there gives the notation), and a micro-benchmark printed as TAP comments.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <cmocka.h>

#include "base/base.h"
#include "policy/engine.h"

/* 2024-05-06T10:00:00Z: a Monday, 12:00 in Berlin */
#define NOW_US (1714989600LL * 1000000)

/* ---- helpers ------------------------------------------------------------------------------ */

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (j == NULL)
        fail_msg("bad JSON in test: %s: %s", je.text, text);
    return j;
}

/* Reads a string array into a vector of borrowed pointers (at most 64). */
static size_t strings(const json_t *arr, const char **out)
{
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (n < 64)
            out[n++] = json_string_value(it);
    }
    return n;
}

/* Builds a snapshot from a bundle (tests/data/policy/README.md). NULL with `why` on failure. */
static lt_policy_snapshot_t *load_bundle(const json_t *bundle, char *why, size_t whylen)
{
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_snapshot_t *s = NULL;
    lt_policy_problem_t p;
    assert_non_null(b);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(bundle, "roles"), i, it) {
        const char *perms[64], *parents[64];
        size_t np = strings(json_object_get(it, "permissions"), perms);
        size_t npa = strings(json_object_get(it, "parents"), parents);
        int rc = lt_policy_builder_role(b, json_string_value(json_object_get(it, "tenant")),
                                        json_string_value(json_object_get(it, "name")), perms, np, parents, npa, &p);
        if (rc != 0) {
            snprintf(why, whylen, "role %zu: %d %s %s", i, rc, p.where, p.msg);
            goto out;
        }
    }
    json_array_foreach(json_object_get(bundle, "subjects"), i, it) {
        const char *roles[64];
        size_t nr = strings(json_object_get(it, "roles"), roles);
        int rc = lt_policy_builder_subject(b, json_string_value(json_object_get(it, "tenant")),
                                           json_string_value(json_object_get(it, "type")),
                                           json_string_value(json_object_get(it, "id")), roles, nr,
                                           json_object_get(it, "attributes"));
        if (rc != 0) {
            snprintf(why, whylen, "subject %zu: %d", i, rc);
            goto out;
        }
    }
    json_array_foreach(json_object_get(bundle, "policies"), i, it) {
        json_t *doc = json_copy(it);
        assert_non_null(doc);
        const char *tenant = json_string_value(json_object_get(it, "tenant"));
        json_object_del(doc, "tenant");
        int rc = lt_policy_builder_policy(b, tenant, NULL, doc, &p);
        json_decref(doc);
        if (rc != 0) {
            snprintf(why, whylen, "policy %zu: %d %s %d:%d %s", i, rc, p.where, p.line, p.col, p.msg);
            goto out;
        }
    }
    if (lt_policy_builder_finish(b, &s, &p) != 0)
        snprintf(why, whylen, "finish: %s %s", p.where, p.msg);
out:
    lt_policy_builder_free(b);
    return s;
}

static lt_policy_snapshot_t *bundle_text(const char *text)
{
    json_t *j = J(text);
    char why[512] = "";
    lt_policy_snapshot_t *s = load_bundle(j, why, sizeof(why));
    json_decref(j);
    if (s == NULL)
        fail_msg("bundle refused: %s", why);
    return s;
}

/* Decides and returns "allow"/"deny"/"error" with the deciding id in `deciding`. */
static const char *decide(const lt_policy_snapshot_t *s, const char *tenant, const char *subject, const char *action,
                          const char *resource, const char *context, const char **deciding)
{
    json_t *sj = J(subject), *aj = J(action), *rj = J(resource), *cj = context != NULL ? J(context) : NULL;
    lt_policy_request_t q = {.tenant = tenant, .subject = sj, .resource = rj, .action = aj, .context = cj,
                             .now_us = NOW_US};
    lt_policy_decision_t d;
    int rc = lt_policy_decide(s, &q, &d);
    json_decref(sj);
    json_decref(aj);
    json_decref(rj);
    json_decref(cj);
    if (deciding != NULL)
        *deciding = d.deciding;
    assert_null(d.explanation);
    if (rc != 0) {
        assert_int_equal(d.allow, 0);
        return "error";
    }
    return d.allow ? "allow" : "deny";
}

static void expect_decision(const lt_policy_snapshot_t *s, const char *tenant, const char *subject,
                            const char *action, const char *resource, const char *context, const char *want,
                            const char *want_deciding, const char *file, int line)
{
    const char *deciding = NULL;
    const char *got = decide(s, tenant, subject, action, resource, context, &deciding);
    if (strcmp(got, want) != 0 || (want_deciding != NULL && strcmp(deciding, want_deciding) != 0)) {
        print_error("%s:%d: %s %s %s: got %s (%s), want %s (%s)\n", file, line, subject, action, resource, got,
                    deciding, want, want_deciding != NULL ? want_deciding : "any");
        _fail(file, line);
    }
}

#define EXPECT(s, tenant, subj, act, res, ctx, want, by)                                                               \
    expect_decision((s), (tenant), (subj), (act), (res), (ctx), (want), (by), __FILE__, __LINE__)

/* ---- roles: names, permissions, inheritance ------------------------------------------------- */

static void test_role_checks(void **state)
{
    (void)state;
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_problem_t p;
    const char *ok[] = {"document:read"};
    static const char *const bad_names[] = {"", "Admin", "1x", "-x", "a b", "caf\xc3\xa9",
                                            "a23456789012345678901234567890123456789012345678901234567890abcde"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(lt_policy_builder_role(b, NULL, bad_names[i], ok, 1, NULL, 0, &p), LT_EINVAL);
        assert_string_equal(p.where, "/name");
    }
    /* 64 bytes is the longest name */
    assert_int_equal(lt_policy_builder_role(b, NULL, "a2345678901234567890123456789012345678901234567890123456789012ab",
                                            ok, 1, NULL, 0, &p),
                     0);
    static const char *const bad_perms[] = {"document", ":read", "document:", "a b:read", "doc:re*d", "**:read",
                                            "doc#x:read", ""};
    for (size_t i = 0; i < sizeof(bad_perms) / sizeof(bad_perms[0]); i++) {
        const char *pm[] = {"x:y", bad_perms[i]};
        assert_int_equal(lt_policy_builder_role(b, NULL, "r", pm, 2, NULL, 0, &p), LT_EINVAL);
        assert_string_equal(p.where, "/permissions/1");
        assert_non_null(strstr(p.msg, "resource_type:action"));
    }
    const char *good[] = {"document:read", "document:*", "*:read", "*:*", "*", "latch:users:write", "document:read"};
    assert_int_equal(lt_policy_builder_role(b, NULL, "r", good, 7, NULL, 0, &p), 0);
    assert_int_equal(lt_policy_builder_role(b, NULL, "r", good, 1, NULL, 0, &p), LT_EEXIST);
    /* the same name in tenants */
    assert_int_equal(lt_policy_builder_role(b, "t1", "r", good, 1, NULL, 0, &p), 0);
    assert_int_equal(lt_policy_builder_role(b, "t2", "r", good, 1, NULL, 0, &p), 0);
    assert_int_equal(lt_policy_builder_role(b, "t2", "r", good, 1, NULL, 0, &p), LT_EEXIST);
    const char *self[] = {"s"};
    assert_int_equal(lt_policy_builder_role(b, NULL, "s", NULL, 0, self, 1, &p), LT_EINVAL);
    const char *badparent[] = {"Nope"};
    assert_int_equal(lt_policy_builder_role(b, NULL, "s", NULL, 0, badparent, 1, &p), LT_EINVAL);
    assert_string_equal(p.where, "/parents/0");
    assert_int_equal(lt_policy_builder_role(b, "", "s", NULL, 0, NULL, 0, &p), LT_EINVAL);
    /* subjects */
    const char *roles[] = {"r", "undefined-role"};
    assert_int_equal(lt_policy_builder_subject(b, "t1", "user", "u1", roles, 2, NULL), 0);
    assert_int_equal(lt_policy_builder_subject(b, "t1", "user", "u1", roles, 2, NULL), LT_EEXIST);
    assert_int_equal(lt_policy_builder_subject(b, "t2", "user", "u1", roles, 2, NULL), 0);
    assert_int_equal(lt_policy_builder_subject(b, "t1", "client", "u1", NULL, 0, NULL), 0);
    json_t *notobj = json_string("x");
    assert_int_equal(lt_policy_builder_subject(b, "t1", "user", "u2", NULL, 0, notobj), LT_EINVAL);
    json_decref(notobj);
    assert_int_equal(lt_policy_builder_subject(b, "t1", "", "u2", NULL, 0, NULL), LT_EINVAL);
    assert_int_equal(lt_policy_builder_subject(b, "t1", "user", "", NULL, 0, NULL), LT_EINVAL);

    lt_policy_snapshot_t *s = NULL;
    assert_int_equal(lt_policy_builder_finish(b, &s, &p), 0);
    lt_policy_stats_t st;
    lt_policy_snapshot_stats(s, &st);
    assert_int_equal(st.roles, 4);
    assert_int_equal(st.subjects, 3);
    assert_int_equal(st.policies, 0);
    /* the builder is emptied */
    assert_int_equal(lt_policy_builder_role(b, NULL, "z", NULL, 0, NULL, 0, &p), LT_ESTATE);
    lt_policy_snapshot_t *s2 = NULL;
    assert_int_equal(lt_policy_builder_finish(b, &s2, &p), LT_ESTATE);
    assert_null(s2);
    lt_policy_builder_free(b);

    /* u1 has "r" (duplicates deduped) and a role name no role defines */
    EXPECT(s, "t1", "{\"type\":\"user\",\"id\":\"u1\"}", "{\"name\":\"read\"}", "{\"type\":\"document\",\"id\":\"d\"}",
           NULL, "allow", "rbac:r:document:read");
    EXPECT(s, "t1", "{\"type\":\"client\",\"id\":\"u1\"}", "{\"name\":\"read\"}",
           "{\"type\":\"document\",\"id\":\"d\"}", NULL, "deny", "default");
    EXPECT(s, "t3", "{\"type\":\"user\",\"id\":\"u1\"}", "{\"name\":\"read\"}", "{\"type\":\"document\",\"id\":\"d\"}",
           NULL, "deny", "default");
    lt_policy_snapshot_decref(s);
}

static int build_roles(const char *const *spec, size_t n, lt_policy_problem_t *p, lt_policy_snapshot_t **out)
{
    /* spec: "tenant|name|parent,parent" with "-" for global */
    lt_policy_builder_t *b = lt_policy_builder_new();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", spec[i]);
        char *tenant = buf, *name = strchr(tenant, '|');
        *name++ = '\0';
        char *plist = strchr(name, '|');
        *plist++ = '\0';
        const char *parents[16];
        size_t np = 0;
        for (char *t = strtok(plist, ","); t != NULL; t = strtok(NULL, ","))
            parents[np++] = t;
        const char *perm[] = {"x:y"};
        rc = lt_policy_builder_role(b, strcmp(tenant, "-") == 0 ? NULL : tenant, name, perm, 1, parents, np, p);
    }
    if (rc == 0)
        rc = lt_policy_builder_finish(b, out, p);
    lt_policy_builder_free(b);
    return rc;
}

static void test_inheritance(void **state)
{
    (void)state;
    lt_policy_problem_t p;
    lt_policy_snapshot_t *s = NULL;
    static const char *const cycle[] = {"-|a|b", "-|b|c", "-|c|a", "-|d|"};
    assert_int_equal(build_roles(cycle, 4, &p, &s), LT_EINVAL);
    assert_null(s);
    assert_non_null(strstr(p.msg, "cycle"));
    assert_true(strstr(p.msg, "'a'") != NULL || strstr(p.msg, "'b'") != NULL || strstr(p.msg, "'c'") != NULL);

    static const char *const tcycle[] = {"-|g|", "t1|a|b", "t1|b|a,g"};
    assert_int_equal(build_roles(tcycle, 3, &p, &s), LT_EINVAL);
    assert_non_null(strstr(p.msg, "cycle"));
    assert_non_null(strstr(p.msg, "t1"));

    static const char *const unknown[] = {"-|a|zzz"};
    assert_int_equal(build_roles(unknown, 1, &p, &s), LT_EINVAL);
    assert_non_null(strstr(p.msg, "zzz"));

    /* a tenant role inherits a global one; a global role cannot see a tenant's; a tenant
     * cannot see another tenant's */
    static const char *const tg[] = {"-|base|", "t1|r|base"};
    assert_int_equal(build_roles(tg, 2, &p, &s), 0);
    lt_policy_snapshot_decref(s);
    static const char *const gt[] = {"t1|base|", "-|r|base"};
    assert_int_equal(build_roles(gt, 2, &p, &s), LT_EINVAL);
    static const char *const tt[] = {"t1|base|", "t2|r|base"};
    assert_int_equal(build_roles(tt, 2, &p, &s), LT_EINVAL);
    assert_non_null(strstr(p.msg, "t2"));
    /* a tenant's own role of a global name shadows the global one for its children */
    static const char *const shadow[] = {"-|base|", "t1|base|", "t1|r|base", "-|x|base"};
    assert_int_equal(build_roles(shadow, 4, &p, &s), 0);
    lt_policy_snapshot_decref(s);

    /* depth: a chain of 64 levels is fine, 70 is refused (no recursion blowup) */
    for (int len = 60; len <= 70; len += 10) {
        const char *spec[80];
        char bufs[80][32];
        for (int i = 0; i < len; i++) {
            if (i + 1 < len)
                snprintf(bufs[i], sizeof(bufs[i]), "-|r%d|r%d", i, i + 1);
            else
                snprintf(bufs[i], sizeof(bufs[i]), "-|r%d|", i);
            spec[i] = bufs[i];
        }
        int rc = build_roles(spec, (size_t)len, &p, &s);
        if (len == 60) {
            assert_int_equal(rc, 0);
            lt_policy_snapshot_decref(s);
        } else {
            assert_int_equal(rc, LT_EINVAL);
            assert_non_null(strstr(p.msg, "deeper"));
        }
    }
}

static void test_wildcards(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(
        "{\"roles\":["
        "{\"name\":\"exact\",\"permissions\":[\"doc:read\"]},"
        "{\"name\":\"type\",\"permissions\":[\"doc:*\"]},"
        "{\"name\":\"action\",\"permissions\":[\"*:read\"]},"
        "{\"name\":\"all\",\"permissions\":[\"*:*\"]},"
        "{\"name\":\"star\",\"permissions\":[\"*\"]},"
        "{\"name\":\"kid\",\"permissions\":[],\"parents\":[\"exact\"]}]}");
    static const struct {
        const char *role, *type, *action, *want;
    } cases[] = {
        {"exact", "doc", "read", "rbac:exact:doc:read"}, {"exact", "doc", "write", NULL},
        {"exact", "docs", "read", NULL},                 {"exact", "do", "read", NULL},
        {"type", "doc", "write", "rbac:type:doc:*"},     {"type", "img", "write", NULL},
        {"action", "img", "read", "rbac:action:*:read"}, {"action", "img", "reads", NULL},
        {"all", "x", "y", "rbac:all:*:*"},               {"star", "x", "y", "rbac:star:*:*"},
        {"kid", "doc", "read", "rbac:exact:doc:read"},   {"kid", "doc", "write", NULL},
        {"exact", "*", "read", NULL},                    {"exact", "doc", "*", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sub[128], act[64], res[64];
        snprintf(sub, sizeof(sub), "{\"type\":\"user\",\"id\":\"u\",\"properties\":{\"roles\":[\"%s\"]}}",
                 cases[i].role);
        snprintf(act, sizeof(act), "{\"name\":\"%s\"}", cases[i].action);
        snprintf(res, sizeof(res), "{\"type\":\"%s\",\"id\":\"r\"}", cases[i].type);
        EXPECT(s, NULL, sub, act, res, NULL, cases[i].want != NULL ? "allow" : "deny",
               cases[i].want != NULL ? cases[i].want : "default");
    }
    lt_policy_snapshot_decref(s);
}

/* ---- combining ---------------------------------------------------------------------------------- */

static const char *const COMBINE =
    "{\"roles\":[{\"tenant\":\"t\",\"name\":\"editor\",\"permissions\":[\"doc:edit\",\"doc:read\"]},"
    "            {\"tenant\":\"t\",\"name\":\"member\",\"permissions\":[]}],"
    " \"subjects\":[{\"tenant\":\"t\",\"type\":\"user\",\"id\":\"ed\",\"roles\":[\"editor\"]},"
    "              {\"tenant\":\"t\",\"type\":\"user\",\"id\":\"mem\",\"roles\":[\"member\"],"
    "               \"attributes\":{\"team\":\"a\"}},"
    "              {\"tenant\":\"t\",\"type\":\"user\",\"id\":\"banned\",\"roles\":[\"editor\"]}],"
    " \"policies\":[{\"tenant\":\"t\",\"id\":\"docs\",\"resource_type\":\"doc\","
    "   \"variables\":{\"mine\":\"resource.owner == subject.id\",\"big\":\"context.big\"},"
    "   \"derived_roles\":[{\"name\":\"owner\",\"when\":\"variables.mine\"},"
    "                      {\"name\":\"teammate\",\"parent_roles\":[\"member\"],\"when\":\"resource.team == subject.team\"},"
    "                      {\"name\":\"heavy\",\"when\":\"variables.big.exists(x, variables.big.exists(y, x == -1))\"}],"
    "   \"rules\":["
    "     {\"id\":\"owner-any\",\"effect\":\"allow\",\"actions\":[\"*\"],\"roles\":[\"owner\"]},"
    "     {\"id\":\"team-read\",\"effect\":\"allow\",\"actions\":[\"read\"],\"roles\":[\"teammate\"]},"
    "     {\"id\":\"locked\",\"effect\":\"deny\",\"actions\":[\"edit\"],\"when\":\"resource.locked == true\"},"
    "     {\"id\":\"ban\",\"effect\":\"deny\",\"actions\":[\"*\"],\"when\":\"subject.id == 'banned'\"},"
    "     {\"id\":\"vip\",\"effect\":\"allow\",\"actions\":[\"publish\"],\"when\":\"subject.id == 'mem'\"},"
    "     {\"id\":\"slow-allow\",\"effect\":\"allow\",\"actions\":[\"slow\"],"
    "      \"when\":\"variables.big.exists(x, variables.big.exists(y, x == -1)) || true\"},"
    "     {\"id\":\"slow-deny\",\"effect\":\"deny\",\"actions\":[\"slowdeny\"],"
    "      \"when\":\"variables.big.exists(x, variables.big.exists(y, x == -1))\"},"
    "     {\"id\":\"heavy-allow\",\"effect\":\"allow\",\"actions\":[\"heavy\"],\"roles\":[\"heavy\"]},"
    "     {\"id\":\"heavy-deny\",\"effect\":\"deny\",\"actions\":[\"heavydeny\"],\"roles\":[\"heavy\"]},"
    "     {\"id\":\"any-slowdeny\",\"effect\":\"allow\",\"actions\":[\"slowdeny\", \"heavydeny\"]}"
    "   ]}]}";

static void test_combining(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(COMBINE);
    const char *ed = "{\"type\":\"user\",\"id\":\"ed\"}", *mem = "{\"type\":\"user\",\"id\":\"mem\"}";
    const char *banned = "{\"type\":\"user\",\"id\":\"banned\"}", *edit = "{\"name\":\"edit\"}",
               *read = "{\"name\":\"read\"}";
    /* RBAC allow; a deny rule beats it; default deny */
    EXPECT(s, "t", ed, edit, "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "allow", "rbac:editor:doc:edit");
    EXPECT(s, "t", ed, edit, "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"locked\":true}}", NULL, "deny",
           "docs#locked");
    EXPECT(s, "t", ed, "{\"name\":\"delete\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "deny", "default");
    /* derived roles: owner (no parent roles), teammate (needs member) */
    EXPECT(s, "t", mem, "{\"name\":\"delete\"}", "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"owner\":\"mem\"}}",
           NULL, "allow", "docs#owner-any");
    EXPECT(s, "t", mem, edit, "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"owner\":\"mem\",\"locked\":true}}",
           NULL, "deny", "docs#locked");
    EXPECT(s, "t", mem, read, "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"a\"}}", NULL, "allow",
           "docs#team-read");
    EXPECT(s, "t", mem, read, "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"b\"}}", NULL, "deny",
           "default");
    EXPECT(s, "t", ed, "{\"name\":\"publish\"}", "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"a\"}}",
           NULL, "deny", "default");
    /* an unknown subject with the same team but no member role is no teammate */
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"x\",\"properties\":{\"team\":\"a\"}}", read,
           "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"a\"}}", NULL, "deny", "default");
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"x\",\"properties\":{\"team\":\"a\",\"roles\":[\"member\"]}}", read,
           "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"a\"}}", NULL, "allow", "docs#team-read");
    /* per-user override both ways */
    EXPECT(s, "t", banned, read, "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "deny", "docs#ban");
    EXPECT(s, "t", banned, read, "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"owner\":\"banned\"}}", NULL,
           "deny", "docs#ban");
    EXPECT(s, "t", mem, "{\"name\":\"publish\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "allow", "docs#vip");
    /* another tenant sees none of it */
    EXPECT(s, "u", ed, edit, "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "deny", "default");
    EXPECT(s, NULL, mem, "{\"name\":\"publish\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "deny", "default");

    /* errors fail closed: a condition out of steps does not allow, and does deny */
    char big[2048] = "{\"big\":[";
    for (int i = 0; i < 200; i++)
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s%d", i ? "," : "", i);
    strcat(big, "]}");
    EXPECT(s, "t", mem, "{\"name\":\"slow\"}", "{\"type\":\"doc\",\"id\":\"1\"}", big, "deny", "default");
    EXPECT(s, "t", mem, "{\"name\":\"slow\"}", "{\"type\":\"doc\",\"id\":\"1\"}", "{\"big\":[1,2]}", "allow",
           "docs#slow-allow");
    EXPECT(s, "t", mem, "{\"name\":\"slowdeny\"}", "{\"type\":\"doc\",\"id\":\"1\"}", big, "deny", "docs#slow-deny");
    EXPECT(s, "t", mem, "{\"name\":\"slowdeny\"}", "{\"type\":\"doc\",\"id\":\"1\"}", "{\"big\":[1,2]}", "allow",
           "docs#any-slowdeny");
    /* ... also through a derived role */
    EXPECT(s, "t", mem, "{\"name\":\"heavy\"}", "{\"type\":\"doc\",\"id\":\"1\"}", big, "deny", "default");
    EXPECT(s, "t", mem, "{\"name\":\"heavydeny\"}", "{\"type\":\"doc\",\"id\":\"1\"}", big, "deny",
           "docs#heavy-deny");
    EXPECT(s, "t", mem, "{\"name\":\"heavydeny\"}", "{\"type\":\"doc\",\"id\":\"1\"}", "{\"big\":[1]}", "allow",
           "docs#any-slowdeny");

    /* malformed requests */
    EXPECT(s, "t", "{\"id\":\"ed\"}", read, "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "error", "default");
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":7}", read, "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "error", "default");
    EXPECT(s, "t", ed, "{\"nom\":\"read\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "error", "default");
    EXPECT(s, "t", ed, read, "{\"id\":\"1\"}", NULL, "error", "default");
    lt_policy_decision_t d;
    assert_int_equal(lt_policy_decide(s, NULL, &d), LT_EINVAL);
    assert_int_equal(d.allow, 0);
    lt_policy_snapshot_decref(s);
}

/* What conditions see: reserved keys, stored attributes over properties, roles, tenant. */
static void test_views(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(
        "{\"roles\":[{\"name\":\"g\",\"permissions\":[]},"
        "            {\"tenant\":\"t\",\"name\":\"child\",\"permissions\":[],\"parents\":[\"g\"]}],"
        " \"subjects\":[{\"tenant\":\"t\",\"type\":\"user\",\"id\":\"k\",\"roles\":[\"child\",\"loose\"],"
        "               \"attributes\":{\"level\":3,\"type\":\"spoof\"}},"
        "              {\"type\":\"user\",\"id\":\"glob\",\"roles\":[\"g\"]}],"
        " \"policies\":[{\"id\":\"v\",\"resource_type\":\"*\",\"rules\":["
        "   {\"id\":\"sub\",\"effect\":\"allow\",\"actions\":[\"sub\"],"
        "    \"when\":\"subject.type == 'user' && subject.id == 'k' && subject.tenant == 't' && subject.level == 3 &&"
        "            subject.roles == ['child', 'g', 'loose'] && subject.extra == 'x'\"},"
        "   {\"id\":\"unk\",\"effect\":\"allow\",\"actions\":[\"unk\"],"
        "    \"when\":\"subject.type == 'user' && subject.id == 'n' && subject.tenant == 't' &&"
        "            subject.roles == ['child', 'g', 'other'] && subject.level == 9\"},"
        "   {\"id\":\"glob\",\"effect\":\"allow\",\"actions\":[\"glob\"],"
        "    \"when\":\"subject.tenant == context.want && subject.roles == ['g']\"},"
        "   {\"id\":\"res\",\"effect\":\"allow\",\"actions\":[\"res\"],"
        "    \"when\":\"resource.type == 'doc' && resource.id == 'd1' && resource.owner == 'k' && action.name == 'res'"
        "            && action.via == 'api' && context.ip == '1.2.3.4' && now == timestamp('2024-05-06T10:00:00Z')\"},"
        "   {\"id\":\"bare\",\"effect\":\"allow\",\"actions\":[\"bare\"],"
        "    \"when\":\"resource.type == 'doc' && resource.id == 'd1' && !has(resource.owner) && action.name == 'bare'\"}"
        " ]}]}");
    /* known subject: stored attributes win over properties; reserved keys win over both */
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"k\",\"properties\":{\"level\":1,\"extra\":\"x\",\"id\":\"z\",\"roles\":[]}}",
           "{\"name\":\"sub\"}", "{\"type\":\"doc\",\"id\":\"d1\"}", NULL, "allow", "v#sub");
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"k\"}", "{\"name\":\"sub\"}", "{\"type\":\"doc\",\"id\":\"d1\"}", NULL,
           "deny", "default"); /* no extra */
    /* unknown subject: its properties, roles resolved and expanded */
    EXPECT(s, "t",
           "{\"type\":\"user\",\"id\":\"n\",\"properties\":{\"level\":9,\"roles\":[\"child\",\"other\",\"child\"],"
           "\"tenant\":\"spoof\",\"type\":\"spoof\"}}",
           "{\"name\":\"unk\"}", "{\"type\":\"doc\",\"id\":\"d1\"}", NULL, "allow", "v#unk");
    /* a global subject acts in the decision's tenant */
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"glob\"}", "{\"name\":\"glob\"}", "{\"type\":\"doc\",\"id\":\"d1\"}",
           "{\"want\":\"t\"}", "allow", "v#glob");
    EXPECT(s, "other", "{\"type\":\"user\",\"id\":\"glob\"}", "{\"name\":\"glob\"}",
           "{\"type\":\"doc\",\"id\":\"d1\"}", "{\"want\":\"other\"}", "allow", "v#glob");
    EXPECT(s, NULL, "{\"type\":\"user\",\"id\":\"glob\"}", "{\"name\":\"glob\"}", "{\"type\":\"doc\",\"id\":\"d1\"}",
           "{\"want\":null}", "allow", "v#glob");
    /* resource and action properties flattened, reserved keys winning */
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"q\"}", "{\"name\":\"res\",\"properties\":{\"via\":\"api\",\"name\":\"x\"}}",
           "{\"type\":\"doc\",\"id\":\"d1\",\"properties\":{\"owner\":\"k\",\"type\":\"spoof\",\"id\":\"spoof\"}}",
           "{\"ip\":\"1.2.3.4\"}", "allow", "v#res");
    EXPECT(s, "t", "{\"type\":\"user\",\"id\":\"q\"}", "{\"name\":\"bare\",\"properties\":{}}",
           "{\"type\":\"doc\",\"id\":\"d1\"}", NULL, "allow", "v#bare");
    lt_policy_snapshot_decref(s);
}

/* ---- explanations --------------------------------------------------------------------------------- */

static json_t *explain(const lt_policy_snapshot_t *s, const char *tenant, const char *subject, const char *action,
                       const char *resource, int *allow, const char **deciding)
{
    json_t *sj = J(subject), *aj = J(action), *rj = J(resource);
    lt_policy_request_t q = {.tenant = tenant, .subject = sj, .resource = rj, .action = aj, .now_us = NOW_US,
                             .explain = 1};
    lt_policy_decision_t d;
    assert_int_equal(lt_policy_decide(s, &q, &d), 0);
    *allow = d.allow;
    *deciding = d.deciding;
    /* the same decision without explain */
    q.explain = 0;
    lt_policy_decision_t d2;
    assert_int_equal(lt_policy_decide(s, &q, &d2), 0);
    assert_int_equal(d.allow, d2.allow);
    assert_string_equal(d.deciding, d2.deciding);
    json_decref(sj);
    json_decref(aj);
    json_decref(rj);
    assert_non_null(d.explanation);
    return d.explanation;
}

static bool list_has(const json_t *list, const char *s)
{
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(json_string_value(it), s) == 0)
            return true;
    }
    return false;
}

static void test_explanation(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(COMBINE);
    int allow;
    const char *deciding;
    /* an owner editing a locked document: denied; every match listed */
    json_t *e = explain(s, "t", "{\"type\":\"user\",\"id\":\"ed\"}", "{\"name\":\"edit\"}",
                        "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"owner\":\"ed\",\"locked\":true}}", &allow,
                        &deciding);
    assert_int_equal(allow, 0);
    assert_string_equal(json_string_value(json_object_get(e, "decision")), "deny");
    assert_string_equal(json_string_value(json_object_get(e, "deciding")), "docs#locked");
    assert_string_equal(deciding, "docs#locked");
    assert_true(list_has(json_object_get(e, "roles"), "editor"));
    assert_true(list_has(json_object_get(e, "derived_roles"), "owner"));
    assert_false(list_has(json_object_get(e, "derived_roles"), "teammate"));
    const json_t *m = json_object_get(e, "matched");
    assert_true(list_has(m, "docs#locked"));
    assert_true(list_has(m, "rbac:editor:doc:edit"));
    assert_true(list_has(m, "docs#owner-any"));
    assert_false(list_has(m, "docs#ban"));
    assert_true(list_has(json_object_get(e, "denied_by"), "docs#locked"));
    assert_int_equal(json_array_size(json_object_get(e, "denied_by")), 1);
    json_decref(e);

    /* an allow: no denied_by; RBAC decides before rules */
    e = explain(s, "t", "{\"type\":\"user\",\"id\":\"ed\"}", "{\"name\":\"edit\"}",
                "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"owner\":\"ed\"}}", &allow, &deciding);
    assert_int_equal(allow, 1);
    assert_string_equal(deciding, "rbac:editor:doc:edit");
    assert_string_equal(json_string_value(json_object_get(e, "decision")), "allow");
    assert_null(json_object_get(e, "denied_by"));
    assert_int_equal(json_array_size(json_object_get(e, "matched")), 2);
    json_decref(e);

    /* nothing matched */
    e = explain(s, "t", "{\"type\":\"user\",\"id\":\"nobody\"}", "{\"name\":\"edit\"}",
                "{\"type\":\"doc\",\"id\":\"1\"}", &allow, &deciding);
    assert_int_equal(allow, 0);
    assert_string_equal(deciding, "default");
    assert_int_equal(json_array_size(json_object_get(e, "matched")), 0);
    assert_int_equal(json_array_size(json_object_get(e, "derived_roles")), 0);
    assert_int_equal(json_array_size(json_object_get(e, "roles")), 0);
    json_decref(e);
    lt_policy_snapshot_decref(s);
}

/* ---- validation --------------------------------------------------------------------------------- */

static bool has_problem(const json_t *list, const char *where, int line, int col, const char *part)
{
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(json_string_value(json_object_get(it, "where")), where) != 0)
            continue;
        if (json_integer_value(json_object_get(it, "line")) != line ||
            json_integer_value(json_object_get(it, "column")) != col)
            continue;
        if (line == 0 && json_object_get(it, "line") != NULL)
            continue;
        if (strstr(json_string_value(json_object_get(it, "message")), part) != NULL)
            return true;
    }
    return false;
}

#define PROBLEM(list, where, line, col, part)                                                                          \
    do {                                                                                                               \
        if (!has_problem((list), (where), (line), (col), (part))) {                                                    \
            char *dump = json_dumps((list), JSON_INDENT(1));                                                           \
            fprintf(stderr, "%s\n", dump);                                                                              \
            fail_msg("no problem at %s %d:%d with '%s'", (where), (line), (col), (part));                              \
        }                                                                                                              \
    } while (0)

static void test_validate(void **state)
{
    (void)state;
    json_t *doc = J("{\"id\":\"ok\",\"resource_type\":\"doc\",\"variables\":{\"a\":\"resource.x == 1\"},"
                    "\"derived_roles\":[{\"name\":\"owner\",\"when\":\"variables.a\"}],"
                    "\"rules\":[{\"id\":\"r\",\"effect\":\"allow\",\"actions\":[\"read\"],\"roles\":[\"owner\"]}]}");
    json_t *list = lt_policy_validate(doc);
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    json_decref(doc);

    doc = J("{\"resource_type\":\"doc\",\"colour\":1,"
            "\"variables\":{\"a\":\"resource.x ==\",\"b\":\"variables.c\",\"c\":\"variables.b\",\"1bad\":\"true\",\"in\":\"true\","
            "             \"n\":5,\"good\":\"resource.y\"},"
            "\"derived_roles\":[{\"name\":\"Owner\",\"when\":\"true\"},{\"name\":\"x\",\"when\":\"true\"},"
            "                   {\"name\":\"x\",\"when\":\"true\"},{\"name\":\"y\",\"parent_roles\":[],\"colour\":1},"
            "                   7],"
            "\"rules\":["
            "  {\"id\":\"r1\",\"effect\":\"permit\",\"actions\":[\"read\"]},"
            "  {\"id\":\"r1\",\"effect\":\"allow\",\"actions\":[]},"
            "  {\"effect\":\"deny\",\"actions\":[\"a\", 3],\"roles\":\"admin\",\"when\":\"resource.a &&\\n  bogus(1)\"},"
            "  {\"id\":\"r4\",\"effect\":\"allow\",\"actions\":[\"a\"],\"when\":\"size(\\\"x\\\") + 'a' > 1\",\"extra\":0},"
            "  {\"id\":\"r5\",\"effect\":\"allow\",\"actions\":[\"a\"],\"when\":\"variables.a\"},"
            "  {\"id\":\"r6\",\"effect\":\"allow\",\"actions\":[\"a\"],\"when\":\"resource.q || variables.missing\"},"
            "  {\"id\":\"r#7\",\"effect\":\"allow\",\"actions\":[\"a\"],\"when\":5},"
            "  \"nope\""
            "]}");
    list = lt_policy_validate(doc);
    assert_non_null(list);
    PROBLEM(list, "/colour", 0, 0, "unknown key");
    PROBLEM(list, "/variables/a", 1, 14, "expected an operand");
    PROBLEM(list, "/variables/1bad", 0, 0, "variable name");
    PROBLEM(list, "/variables/in", 0, 0, "not a keyword");
    PROBLEM(list, "/variables/n", 0, 0, "must be a string");
    PROBLEM(list, "/derived_roles/0/name", 0, 0, "name must be");
    PROBLEM(list, "/derived_roles/2/name", 0, 0, "defined twice");
    PROBLEM(list, "/derived_roles/3/parent_roles", 0, 0, "non-empty array");
    PROBLEM(list, "/derived_roles/3/colour", 0, 0, "unknown key");
    PROBLEM(list, "/derived_roles/3/when", 0, 0, "needs a condition");
    PROBLEM(list, "/derived_roles/4", 0, 0, "must be an object");
    PROBLEM(list, "/rules/0/effect", 0, 0, "\"allow\" or \"deny\"");
    PROBLEM(list, "/rules/1/actions", 0, 0, "non-empty array");
    PROBLEM(list, "/rules/2/id", 0, 0, "id must be");
    PROBLEM(list, "/rules/2/actions/1", 0, 0, "non-empty string");
    PROBLEM(list, "/rules/2/roles", 0, 0, "non-empty array");
    PROBLEM(list, "/rules/2/when", 2, 3, "bogus");
    PROBLEM(list, "/rules/3/when", 1, 11, "operator +");
    PROBLEM(list, "/rules/1/id", 0, 0, "used twice");
    PROBLEM(list, "/rules/3/extra", 0, 0, "unknown key");
    PROBLEM(list, "/rules/5/when", 1, 25, "unknown variable");
    PROBLEM(list, "/rules/6/id", 0, 0, "id must be");
    PROBLEM(list, "/rules/6/when", 0, 0, "must be a string");
    PROBLEM(list, "/rules/7", 0, 0, "must be an object");
    /* the b <-> c cycle is reported at the variables */
    PROBLEM(list, "/variables/b", 1, 11, "refers to itself");
    PROBLEM(list, "/variables/c", 1, 11, "refers to itself");
    size_t i;
    json_t *it;
    /* the broken variable a is reported once, not per rule that uses it */
    size_t na = 0;
    json_array_foreach(list, i, it) {
        na += strcmp(json_string_value(json_object_get(it, "where")), "/variables/a") == 0;
    }
    assert_int_equal(na, 1);
    /* the builder refuses the same document, naming its first problem */
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_problem_t p;
    assert_int_equal(lt_policy_builder_policy(b, NULL, "x", doc, &p), LT_EINVAL);
    assert_string_equal(p.where, json_string_value(json_object_get(json_array_get(list, 0), "where")));
    json_decref(list);
    json_decref(doc);

    /* shapes */
    static const char *const bad[] = {"[]", "\"x\"", "{}", "{\"resource_type\":\"doc\",\"rules\":[]}",
                                      "{\"resource_type\":\"a b\",\"rules\":[]}",
                                      "{\"resource_type\":\"doc\",\"rules\":{}}",
                                      "{\"id\":\"a#b\",\"resource_type\":\"doc\",\"rules\":[]}",
                                      "{\"resource_type\":\"doc\",\"variables\":[],\"rules\":[]}"};
    static const char *const where[] = {"", "", "/resource_type", "/rules", "/resource_type", "/rules", "/id",
                                        "/variables"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        doc = J(bad[k]);
        list = lt_policy_validate(doc);
        assert_non_null(list);
        if (!has_problem(list, where[k], 0, 0, ""))
            fail_msg("%s: no problem at '%s'", bad[k], where[k]);
        assert_int_equal(lt_policy_builder_policy(b, NULL, "x", doc, &p), LT_EINVAL);
        json_decref(list);
        json_decref(doc);
    }
    /* the builder needs an id from somewhere; duplicate ids per tenant */
    doc = J("{\"resource_type\":\"doc\",\"rules\":[{\"id\":\"r\",\"effect\":\"allow\",\"actions\":[\"a\"]}]}");
    assert_int_equal(lt_policy_builder_policy(b, NULL, NULL, doc, &p), LT_EINVAL);
    assert_string_equal(p.where, "/id");
    assert_int_equal(lt_policy_builder_policy(b, NULL, "one", doc, &p), 0);
    assert_int_equal(lt_policy_builder_policy(b, NULL, "one", doc, &p), LT_EEXIST);
    assert_int_equal(lt_policy_builder_policy(b, "t", "one", doc, &p), 0);
    json_decref(doc);
    doc = J("{\"id\":\"two\",\"resource_type\":\"doc\",\"rules\":[{\"id\":\"r\",\"effect\":\"allow\",\"actions\":[\"a\"]}]}");
    assert_int_equal(lt_policy_builder_policy(b, NULL, NULL, doc, &p), 0);
    json_decref(doc);
    lt_policy_snapshot_t *s = NULL;
    assert_int_equal(lt_policy_builder_finish(b, &s, &p), 0);
    lt_policy_stats_t st;
    lt_policy_snapshot_stats(s, &st);
    assert_int_equal(st.policies, 3);
    assert_int_equal(st.rules, 3);
    EXPECT(s, NULL, "{\"type\":\"u\",\"id\":\"x\"}", "{\"name\":\"a\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL,
           "allow", "one#r");
    lt_policy_snapshot_decref(s);
    lt_policy_builder_free(b);
}

/* ---- limits ---------------------------------------------------------------------------------------- */

static void test_limits(void **state)
{
    (void)state;
    /* rules per document */
    json_t *rules = json_array();
    for (int i = 0; i < 1001; i++)
        json_array_append_new(rules, json_pack("{s:s+, s:s, s:[s]}", "id", "r", i == 0 ? "" : "x", "effect", "allow",
                                               "actions", "a"));
    json_t *doc = json_pack("{s:s, s:o}", "resource_type", "doc", "rules", rules);
    json_t *list = lt_policy_validate(doc);
    assert_true(has_problem(list, "/rules", 0, 0, "at most 1000"));
    json_decref(list);
    json_decref(doc);

    /* 40 policies for one type (past the decision's stack arrays), the last one allowing */
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_problem_t p;
    for (int i = 0; i < 40; i++) {
        char id[16], src[256];
        snprintf(id, sizeof(id), "p%d", i);
        snprintf(src, sizeof(src),
                 "{\"resource_type\":\"%s\",\"derived_roles\":[{\"name\":\"d\",\"when\":\"resource.n == %d\"}],"
                 "\"rules\":[{\"id\":\"r\",\"effect\":\"allow\",\"actions\":[\"a\"],\"roles\":[\"d\"]}]}",
                 i % 2 ? "doc" : "*", i);
        doc = J(src);
        assert_int_equal(lt_policy_builder_policy(b, NULL, id, doc, &p), 0);
        json_decref(doc);
    }
    /* a subject with many roles (past the stack arrays too) */
    const char *perm[] = {"doc:b"};
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        assert_int_equal(lt_policy_builder_role(b, NULL, name, perm, 1, NULL, 0, &p), 0);
    }
    lt_policy_snapshot_t *s = NULL;
    assert_int_equal(lt_policy_builder_finish(b, &s, &p), 0);
    lt_policy_builder_free(b);
    EXPECT(s, NULL, "{\"type\":\"u\",\"id\":\"x\"}", "{\"name\":\"a\"}",
           "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"n\":39}}", NULL, "allow", "p39#r");
    EXPECT(s, NULL, "{\"type\":\"u\",\"id\":\"x\"}", "{\"name\":\"a\"}",
           "{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"n\":38}}", NULL, "allow", "p38#r");
    EXPECT(s, NULL, "{\"type\":\"u\",\"id\":\"x\"}", "{\"name\":\"a\"}",
           "{\"type\":\"img\",\"id\":\"1\",\"properties\":{\"n\":39}}", NULL, "deny", "default");
    json_t *roles = json_array();
    for (int i = 0; i < 100; i++)
        json_array_append_new(roles, json_sprintf("r%d", 99 - i));
    json_t *sub = json_pack("{s:s, s:s, s:{s:o}}", "type", "u", "id", "x", "properties", "roles", roles);
    char *subtext = json_dumps(sub, 0);
    EXPECT(s, NULL, subtext, "{\"name\":\"b\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "allow", "rbac:r99:doc:b");
    free(subtext);
    /* too many roles in a request */
    json_t *many = json_object_get(json_object_get(sub, "properties"), "roles");
    for (int i = 0; i < 200; i++)
        json_array_append_new(many, json_string("zz"));
    subtext = json_dumps(sub, 0);
    EXPECT(s, NULL, subtext, "{\"name\":\"b\"}", "{\"type\":\"doc\",\"id\":\"1\"}", NULL, "error", "default");
    free(subtext);
    json_decref(sub);
    lt_policy_snapshot_decref(s);
}

/* ---- test cases --------------------------------------------------------------------------------------- */

static void test_run_cases(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(COMBINE);
    json_t *cases = J(
        "[{\"name\":\"editor edits\",\"subject\":{\"type\":\"user\",\"id\":\"ed\"},\"action\":{\"name\":\"edit\"},"
        "  \"resource\":{\"type\":\"doc\",\"id\":\"1\"},\"expected\":\"allow\"},"
        " {\"subject\":{\"type\":\"user\",\"id\":\"ed\"},\"action\":{\"name\":\"edit\"},"
        "  \"resource\":{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"locked\":true}},\"expected\":\"allow\"},"
        " {\"subject\":{\"type\":\"user\",\"id\":\"mem\"},\"action\":{\"name\":\"slow\"},"
        "  \"resource\":{\"type\":\"doc\",\"id\":\"1\"},\"context\":{\"big\":[1]},\"expected\":\"allow\"},"
        " {\"subject\":{\"type\":\"user\"},\"action\":{\"name\":\"edit\"},"
        "  \"resource\":{\"type\":\"doc\",\"id\":\"1\"},\"expected\":\"deny\"},"
        " {\"subject\":{\"type\":\"user\",\"id\":\"ed\"},\"action\":{\"name\":\"edit\"},"
        "  \"resource\":{\"type\":\"doc\",\"id\":\"1\"},\"expected\":\"maybe\"},"
        " 42]");
    json_t *r = lt_policy_run_cases(s, "t", cases, NOW_US);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "passed")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "failed")), 4);
    json_t *res = json_object_get(r, "results");
    assert_int_equal(json_array_size(res), 6);
    json_t *want = J(
        "[{\"name\":\"editor edits\",\"expected\":\"allow\",\"actual\":\"allow\",\"deciding\":\"rbac:editor:doc:edit\"},"
        " {\"index\":1,\"expected\":\"allow\",\"actual\":\"deny\",\"deciding\":\"docs#locked\"},"
        " {\"index\":2,\"expected\":\"allow\",\"actual\":\"allow\",\"deciding\":\"docs#slow-allow\"},"
        " {\"index\":3,\"expected\":\"deny\",\"actual\":\"error\",\"deciding\":null},"
        " {\"index\":4,\"expected\":\"maybe\",\"actual\":\"error\",\"deciding\":null},"
        " {\"index\":5,\"expected\":null,\"actual\":\"error\",\"deciding\":null}]");
    if (!json_equal(res, want)) {
        char *got = json_dumps(res, 0);
        fail_msg("run_cases: %s", got);
    }
    json_decref(want);
    json_decref(r);
    json_decref(cases);
    /* not an array: no cases */
    r = lt_policy_run_cases(s, "t", NULL, NOW_US);
    assert_int_equal(json_integer_value(json_object_get(r, "passed")), 0);
    json_decref(r);
    lt_policy_snapshot_decref(s);
}

/* ---- threads -------------------------------------------------------------------------------------------- */

typedef struct {
    lt_policy_snapshot_t *s;
    int bad;
} thr_t;

static void *thread_main(void *arg)
{
    thr_t *t = arg;
    json_t *sub = J("{\"type\":\"user\",\"id\":\"mem\",\"properties\":{\"x\":1}}");
    json_t *sub2 = J("{\"type\":\"user\",\"id\":\"ed\"}");
    json_t *res = J("{\"type\":\"doc\",\"id\":\"1\",\"properties\":{\"team\":\"a\"}}");
    json_t *act = J("{\"name\":\"read\"}");
    lt_policy_snapshot_incref(t->s);
    for (int i = 0; i < 20000; i++) {
        lt_policy_request_t q = {.tenant = "t", .subject = i % 2 ? sub : sub2, .resource = res, .action = act,
                                 .now_us = NOW_US, .explain = i % 7 == 0};
        lt_policy_decision_t d;
        if (lt_policy_decide(t->s, &q, &d) != 0 || !d.allow)
            t->bad++;
        json_decref(d.explanation);
    }
    lt_policy_snapshot_decref(t->s);
    json_decref(sub);
    json_decref(sub2);
    json_decref(res);
    json_decref(act);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    lt_policy_snapshot_t *s = bundle_text(COMBINE);
    pthread_t th[4];
    thr_t t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr_t){s, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].bad, 0);
    }
    lt_policy_snapshot_decref(s);
}

/* ---- table-driven cases (tests/data/policy) --------------------------------------------------------------- */

static json_t *parse_value(const char **pp)
{
    const char *p = *pp;
    if (*p == '[') {
        json_t *list = json_array();
        p++;
        while (*p != '\0' && *p != ']') {
            json_t *v = parse_value(&p);
            if (v == NULL) {
                json_decref(list);
                return NULL;
            }
            json_array_append_new(list, v);
            if (*p == '|')
                p++;
        }
        if (*p != ']') {
            json_decref(list);
            return NULL;
        }
        *pp = p + 1;
        return list;
    }
    if (*p == '"') {
        const char *q = p + 1;
        while (*q != '\0' && *q != '"')
            q += *q == '\\' && q[1] != '\0' ? 2 : 1;
        if (*q != '"')
            return NULL;
        *pp = q + 1;
        return json_loadb(p, (size_t)(q + 1 - p), JSON_DECODE_ANY, NULL);
    }
    const char *q = p;
    while (*q != '\0' && *q != ',' && *q != '}' && *q != '|' && *q != ']')
        q++;
    *pp = q;
    json_t *v = json_loadb(p, (size_t)(q - p), JSON_DECODE_ANY, NULL);
    if (v != NULL && (json_is_number(v) || json_is_boolean(v) || json_is_null(v)))
        return v;
    json_decref(v);
    return json_stringn(p, (size_t)(q - p));
}

/* `{k=v,...}` into `obj`; @return 0 or -1 */
static int parse_props(const char **pp, json_t *obj)
{
    const char *p = *pp;
    if (*p != '{')
        return -1;
    p++;
    while (*p != '}') {
        const char *eq = strchr(p, '=');
        if (eq == NULL || eq == p)
            return -1;
        /* dotted keys nest */
        json_t *at = obj;
        const char *k = p;
        for (const char *dot; (dot = memchr(k, '.', (size_t)(eq - k))) != NULL; k = dot + 1) {
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(dot - k), k);
            json_t *next = json_object_get(at, key);
            if (!json_is_object(next)) {
                next = json_object();
                json_object_set_new(at, key, next);
            }
            at = next;
        }
        char key[128];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - k), k);
        p = eq + 1;
        json_t *v = parse_value(&p);
        if (v == NULL)
            return -1;
        json_object_set_new(at, key, v);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return -1;
    }
    *pp = p + 1;
    return 0;
}

/* "type:id{props}" (split: the last ':') or, for an action, "name{props}". */
static json_t *parse_entity(const char *tok, bool action)
{
    const char *brace = strchr(tok, '{');
    size_t head = brace != NULL ? (size_t)(brace - tok) : strlen(tok);
    json_t *o = json_object();
    if (action) {
        json_object_set_new(o, "name", json_stringn(tok, head));
    } else {
        const char *colon = NULL; /* the last ':' of the head: types may hold ':' ("latch:users") */
        for (const char *c = tok; c < tok + head; c++)
            if (*c == ':')
                colon = c;
        if (colon == NULL) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "type", json_stringn(tok, (size_t)(colon - tok)));
        json_object_set_new(o, "id", json_stringn(colon + 1, head - (size_t)(colon + 1 - tok)));
    }
    if (brace != NULL) {
        json_t *props = json_object();
        const char *p = brace;
        if (parse_props(&p, props) != 0 || *p != '\0') {
            json_decref(props);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "properties", props);
    }
    return o;
}

/* Splits on blanks outside braces and quotes. @return the number of tokens. */
static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *p = line;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || (*p == '#'))
            break;
        if (n == max)
            return -1;
        tok[n++] = p;
        int depth = 0;
        bool quoted = false;
        for (; *p != '\0'; p++) {
            if (quoted) {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == '"')
                    quoted = false;
            } else if (*p == '"') {
                quoted = true;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                depth--;
            } else if ((*p == ' ' || *p == '\t') && depth == 0) {
                break;
            }
        }
        if (*p != '\0')
            *p++ = '\0';
    }
    return n;
}

static int run_eval_file(const char *dir, const char *name, size_t *ncases)
{
    char path[2048];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) - 1)
        fail_msg("path too long");
    memcpy(path + strlen(path) - 5, ".json", 6);
    json_error_t je;
    json_t *bundle = json_load_file(path, 0, &je);
    if (bundle == NULL) {
        print_error("%s:%d: %s\n", path, je.line, je.text);
        return 1;
    }
    char why[512] = "";
    lt_policy_snapshot_t *s = load_bundle(bundle, why, sizeof(why));
    json_decref(bundle);
    if (s == NULL) {
        print_error("%s: %s\n", path, why);
        return 1;
    }
    memcpy(path + strlen(path) - 5, ".eval", 6);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096], tenant[256] = "";
    bool has_tenant = false;
    int64_t now = NOW_US;
    json_t *context = NULL;
    int bad = 0, lineno = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (*p == '@') {
            char *arg = strchr(p, ' ');
            if (arg != NULL)
                while (*arg == ' ')
                    *arg++ = '\0';
            if (arg == NULL || *arg == '\0') {
                print_error("%s:%d: directive without argument\n", name, lineno);
                bad++;
            } else if (strcmp(p, "@tenant") == 0) {
                has_tenant = strcmp(arg, "-") != 0;
                snprintf(tenant, sizeof(tenant), "%s", arg);
            } else if (strcmp(p, "@now") == 0) {
                struct tm tm = {0};
                char *end = strptime(arg, "%Y-%m-%dT%H:%M:%SZ", &tm);
                if (end == NULL || *end != '\0') {
                    print_error("%s:%d: @now wants YYYY-MM-DDTHH:MM:SSZ\n", name, lineno);
                    bad++;
                } else {
                    now = (int64_t)timegm(&tm) * 1000000;
                }
            } else if (strcmp(p, "@context") == 0) {
                json_decref(context);
                context = strcmp(arg, "-") == 0 ? NULL : json_loads(arg, 0, NULL);
                if (strcmp(arg, "-") != 0 && !json_is_object(context)) {
                    print_error("%s:%d: @context wants a JSON object\n", name, lineno);
                    bad++;
                }
            } else {
                print_error("%s:%d: unknown directive %s\n", name, lineno, p);
                bad++;
            }
            continue;
        }
        char *tok[8];
        int n = tokenize(p, tok, 8);
        /* EXPECT SUBJECT ACTION RESOURCE [CONTEXT] [=> DECIDING] */
        const char *want_by = NULL;
        if (n >= 2 && strcmp(tok[n - 2], "=>") == 0) {
            want_by = tok[n - 1];
            n -= 2;
        }
        if ((n != 4 && n != 5) || (strcmp(tok[0], "allow") != 0 && strcmp(tok[0], "deny") != 0)) {
            print_error("%s:%d: malformed case\n", name, lineno);
            bad++;
            continue;
        }
        json_t *sub = parse_entity(tok[1], false), *act = parse_entity(tok[2], true),
               *res = parse_entity(tok[3], false);
        json_t *ctx = context != NULL ? json_deep_copy(context) : NULL;
        if (n == 5) {
            const char *cp = tok[4];
            if (ctx == NULL)
                ctx = json_object();
            if (parse_props(&cp, ctx) != 0 || *cp != '\0') {
                json_decref(ctx);
                ctx = NULL;
                sub = (json_decref(sub), NULL);
            }
        }
        if (sub == NULL || act == NULL || res == NULL) {
            print_error("%s:%d: malformed subject, action, resource or context\n", name, lineno);
            bad++;
        } else {
            lt_policy_request_t q = {.tenant = has_tenant ? tenant : NULL, .subject = sub, .resource = res,
                                     .action = act, .context = ctx, .now_us = now, .explain = lineno % 2};
            lt_policy_decision_t d;
            int rc = lt_policy_decide(s, &q, &d);
            const char *got = rc != 0 ? "error" : d.allow ? "allow" : "deny";
            if (strcmp(got, tok[0]) != 0 || (want_by != NULL && strcmp(d.deciding, want_by) != 0)) {
                char *ex = d.explanation != NULL ? json_dumps(d.explanation, JSON_COMPACT) : NULL;
                print_error("%s:%d: want %s%s%s, got %s by %s%s%s\n", name, lineno, tok[0], want_by ? " by " : "",
                            want_by ? want_by : "", got, d.deciding, ex ? " " : "", ex ? ex : "");
                free(ex);
                bad++;
            }
            json_decref(d.explanation);
            (*ncases)++;
        }
        json_decref(sub);
        json_decref(act);
        json_decref(res);
        json_decref(ctx);
    }
    fclose(f);
    json_decref(context);
    lt_policy_snapshot_decref(s);
    return bad;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_table_driven(void **state)
{
    (void)state;
    const char *root = getenv("LATCH_SOURCE_ROOT");
    if (root == NULL)
        fail_msg("LATCH_SOURCE_ROOT is not set (meson sets it)");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/policy", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[64];
    size_t nn = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".eval") == 0 && nn < 64)
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof(names[0]), name_cmp);
    int bad = 0;
    size_t total = 0;
    for (size_t i = 0; i < nn; i++) {
        size_t cases = 0;
        bad += run_eval_file(dir, names[i], &cases);
        printf("# %s: %zu cases\n", names[i], cases);
        total += cases;
        free(names[i]);
    }
    assert_true(nn >= 2);
    assert_true(total >= 100);
    assert_int_equal(bad, 0);
}

/* ---- micro-benchmark -------------------------------------------------------------------------------------- */

static double bench_one(const lt_policy_snapshot_t *s, const lt_policy_request_t *q, const char *want)
{
    lt_policy_decision_t d;
    assert_int_equal(lt_policy_decide(s, q, &d), 0);
    assert_string_equal(d.deciding, want);
    json_decref(d.explanation);
    uint64_t n = 0, t0 = lt_monotonic_ns(), t1;
    do {
        for (int i = 0; i < 2000; i++) {
            int rc = lt_policy_decide(s, q, &d);
            (void)rc;
            json_decref(d.explanation);
        }
        n += 2000;
        t1 = lt_monotonic_ns();
    } while (t1 - t0 < 200000000ULL);
    return (double)(t1 - t0) / (double)n;
}

static void test_bench(void **state)
{
    (void)state;
    const char *root = getenv("LATCH_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/policy/documents.json", root != NULL ? root : ".");
    json_t *bundle = json_load_file(path, 0, NULL);
    assert_non_null(bundle);
    char why[256];
    lt_policy_snapshot_t *s = load_bundle(bundle, why, sizeof(why));
    json_decref(bundle);
    assert_non_null(s);
    /* three applicable policies (documents, acme-public, the "*" maintenance one) */
    json_t *alice = J("{\"type\":\"user\",\"id\":\"alice\"}");
    json_t *zed = J("{\"type\":\"user\",\"id\":\"zed\",\"properties\":{\"roles\":[\"viewer\"],\"department\":\"eng\"}}");
    json_t *res = J("{\"type\":\"document\",\"id\":\"d2\",\"properties\":{\"tenant\":\"acme\",\"owner\":\"carol\","
                    "\"department\":\"eng\",\"classification\":\"internal\"}}");
    json_t *read = J("{\"name\":\"read\"}"), *edit = J("{\"name\":\"edit\"}");
    json_t *ctx = J("{\"ip\":\"10.20.1.2\"}");
    lt_policy_request_t q = {.tenant = "acme", .subject = alice, .resource = res, .action = read, .context = ctx,
                             .now_us = NOW_US};
    double known = bench_one(s, &q, "documents#dept-read");
    q.action = edit;
    double hours = bench_one(s, &q, "documents#dept-edit-in-hours");
    q.action = read;
    q.subject = zed;
    double unknown = bench_one(s, &q, "documents#dept-read");
    q.subject = alice;
    q.explain = 1;
    double expl = bench_one(s, &q, "documents#dept-read");
    printf("# policy_engine bench: %.0f ns/decision (known subject, read, 3 policies, explain off)\n", known);
    printf("# policy_engine bench: %.0f ns/decision (known subject, edit in business hours)\n", hours);
    printf("# policy_engine bench: %.0f ns/decision (unknown subject with properties.roles)\n", unknown);
    printf("# policy_engine bench: %.0f ns/decision (known subject, explain on)\n", expl);
    json_decref(alice);
    json_decref(zed);
    json_decref(res);
    json_decref(read);
    json_decref(edit);
    json_decref(ctx);
    lt_policy_snapshot_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_checks),  cmocka_unit_test(test_inheritance), cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_combining),    cmocka_unit_test(test_views),       cmocka_unit_test(test_explanation),
        cmocka_unit_test(test_validate),     cmocka_unit_test(test_limits),      cmocka_unit_test(test_run_cases),
        cmocka_unit_test(test_threads),      cmocka_unit_test(test_table_driven), cmocka_unit_test(test_bench),
    };
    lt_log_set_level(LT_LOG_WARN);
    return cmocka_run_group_tests_name("policy_engine", tests, NULL, NULL);
}
