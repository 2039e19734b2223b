/*
 * fuzz_body_admin: the JSON bodies of the admin API (lib/api/admin.c, admin_clients.c,
 * admin_policy.c) as their handlers validate them (api/bodies.h), and what the handlers
 * then build from them without a database: text[] literals, policy problems, test cases
 * run against a snapshot of tests/data/policy/documents.json.
 *
 * Input: one selector byte, then the body. Selector % 10:
 *   0 POST  /v1/admin/tenants            {name, display_name?}
 *   1 PATCH /v1/admin/tenants/{id}       {display_name?, settings?}
 *   2 POST  /v1/admin/users              {email, password | password_hash, attributes?, tenant_id?, roles?}
 *   3 POST  /v1/admin/clients            {name, grant_types, scopes?, permissions?, tenant_id?}
 *   4 POST  /v1/admin/roles              {name, description?, permissions?, parents?, tenant_id?, global?}
 *   5 PATCH /v1/admin/roles/{id}         {description?, permissions?, parents?}
 *   6 PUT   /v1/admin/users/{id}/roles   {roles}
 *   7 PUT   /v1/admin/policies/{id}      {document, tenant_id?, global?}
 *   8 POST  /v1/admin/policies/{id}/rollback  {version}
 *   9 POST  /v1/admin/policies/test      {cases}
 * Selector bit 4: the caller is a tenant admin (scope: its tenant) rather than a global one.
 *
 * Invariants:
 * - validation passes (lt__api_in_finish) exactly when no error was recorded; errors are
 *   well-formed; a passing body holds only the endpoint's fields;
 * - what passes obeys the documented rules, checked here independently: tenant names
 *   ^[a-z0-9][a-z0-9-]{0,62}$, display names without control characters, known tenant
 *   settings only, emails trimmed with one '@', exactly one of password and password_hash,
 *   built-in user roles only, UUID tenant ids, role names ^[a-z][a-z0-9_:.-]{0,63}$;
 * - role name lists render as a text[] literal that splits back into exactly the items
 *   (no item can smuggle ',', '"', '{', '}', a backslash or a space into it);
 * - a tenant admin's roles and policies land in its own tenant, never global, and no tenant
 *   policy governs a latch: resource type;
 * - policy problems are an array of {where, message[, line, column]}; test-case runs answer.
 */
#include <string.h>

#include "api/bodies.h"
#include "fuzz.h"
#include "identity/admin.h"
#include "identity/auth.h"
#include "identity/password.h"
#include "snapshot.h"

#define TENANT "11111111-2222-3333-4444-555555555555"
#define NOW_US (1715000000LL * 1000000)

static lt_policy_snapshot_t *snap;

static int is_uuid(const char *s)
{
    return s == NULL || lt_auth_uuid_ok(s);
}

static int no_controls(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int role_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && s[0] >= 'a' && s[0] <= 'z' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_:.-") == n;
}

/* A list of strings renders as "{a,b}" and splits back into the same items. */
static void check_literal(const json_t *a)
{
    if (a == NULL)
        return;
    lt_buf_t b = LT_BUF_INIT;
    FUZZ_CHECK(lt__api_text_literal(a, &b) == 0 && lt_buf_append(&b, "", 1) == 0);
    const char *s = b.base;
    size_t n = strlen(s);
    FUZZ_CHECK(n >= 2 && s[0] == '{' && s[n - 1] == '}');
    size_t i, start = 1, k = 0;
    for (i = 1; i < n; i++) {
        if (s[i] != ',' && s[i] != '}')
            continue;
        const char *item = json_string_value(json_array_get(a, k));
        FUZZ_CHECK(item != NULL || (k == 0 && i == 1 && json_array_size(a) == 0));
        if (item != NULL) {
            FUZZ_CHECK(strlen(item) == i - start && memcmp(item, s + start, i - start) == 0);
            FUZZ_CHECK(strpbrk(item, ",\"{}\\ ") == NULL && item[0] != '\0');
            k++;
        }
        start = i + 1;
    }
    FUZZ_CHECK(k == json_array_size(a));
    lt_buf_free(&b);
}

static void check_settings(const json_t *settings)
{
    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)settings, key, v) {
        if (json_is_null(v))
            continue;
        if (strcmp(key, "mfa") == 0 || strcmp(key, "totp_algorithm") == 0 || strcmp(key, "totp_issuer") == 0)
            FUZZ_CHECK(json_is_string(v));
        else if (strcmp(key, "totp_digits") == 0)
            FUZZ_CHECK(json_integer_value(v) >= 6 && json_integer_value(v) <= 8);
        else if (strcmp(key, "totp_period") == 0)
            FUZZ_CHECK(json_integer_value(v) >= 15 && json_integer_value(v) <= 120);
        else
            FUZZ_CHECK(!"an unknown setting passed");
    }
}

static void check_email(const char *e)
{
    size_t n = strlen(e);
    const char *at = strchr(e, '@');
    FUZZ_CHECK(n >= 3 && n <= LT_ADMIN_EMAIL_MAX && at != NULL && at > e && at[1] != '\0' && strchr(at + 1, '@') == NULL);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)e[i] > 0x20 && e[i] != 0x7f);
}

static void check_problems(const json_t *problems)
{
    size_t i;
    const json_t *p;
    FUZZ_CHECK(json_is_array(problems));
    json_array_foreach (problems, i, p) {
        FUZZ_CHECK(json_string_value(json_object_get(p, "where")) != NULL);
        FUZZ_CHECK(json_string_value(json_object_get(p, "message")) != NULL);
        FUZZ_CHECK((json_object_get(p, "line") != NULL) == (json_object_get(p, "column") != NULL));
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
    lt_token_t tok;
    memset(&tok, 0, sizeof(tok));
    tok.sub = "99999999-8888-7777-6666-555555555555";
    tok.tenant = TENANT;
    int scoped = (data[0] >> 4) & 1;
    lt_api_caller_t caller = {&tok, scoped ? TENANT : NULL};
    lt_api_in_t in;
    memset(&in, 0, sizeof(in));
    in.body = body;

    const char *s1 = NULL, *s2 = NULL;
    json_t *owned = NULL, *patch = NULL, *cases = NULL;
    const json_t *list = NULL;
    char email[LT_ADMIN_EMAIL_MAX + 1];
    lt_api_user_in_t user;
    lt_api_client_in_t client = {0};
    lt_api_role_in_t role;
    lt_api_policy_put_in_t pol = {0};
    long version = 0;
    int sel = (data[0] & 15) % 10;
    switch (sel) {
    case 0:
        lt__api_tenant_create_in(&in, &s1, &s2);
        break;
    case 1:
        patch = lt__api_tenant_patch_in(&in, &s2);
        break;
    case 2:
        owned = lt__api_user_create_in(&in, &user, email, sizeof(email));
        break;
    case 3:
        lt__api_client_create_in(&in, &client);
        break;
    case 4:
    case 5:
        lt__api_role_in(&in, &caller, sel == 4, &role);
        break;
    case 6:
        list = lt__api_subject_roles_in(&in);
        break;
    case 7:
        lt__api_policy_put_in(&in, &caller, &pol);
        break;
    case 8:
        version = lt__api_rollback_in(&in);
        break;
    default:
        cases = lt__api_policy_cases_in(&in);
        break;
    }
    int had_errors = in.errors != NULL;
    if (lt__api_in_finish(&in) != 0) {
        fuzz_check_errors(in.errors);
        json_decref(in.errors);
        goto done;
    }
    FUZZ_CHECK(!had_errors);
    switch (sel) {
    case 0: {
        static const char *const known[] = {"name", "display_name", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && s1 != NULL);
        FUZZ_CHECK(s1[0] != '-' && strlen(s1) <= 63 && strspn(s1, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(s1));
        FUZZ_CHECK(s2 == NULL || no_controls(s2));
        break;
    }
    case 1: {
        static const char *const known[] = {"display_name", "settings", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        FUZZ_CHECK(s2 == NULL || no_controls(s2));
        FUZZ_CHECK((patch != NULL) == (json_object_get(body, "settings") != NULL));
        if (patch != NULL)
            check_settings(patch);
        break;
    }
    case 2: {
        static const char *const known[] = {"email", "password", "password_hash", "attributes", "tenant_id", "roles",
                                            NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && user.email != NULL);
        check_email(email);
        FUZZ_CHECK((user.password != NULL) != (user.password_hash != NULL));
        FUZZ_CHECK(is_uuid(user.tenant_id) && json_is_array(owned));
        size_t i;
        const json_t *v;
        json_array_foreach (owned, i, v) {
            const char *r = json_string_value(v);
            FUZZ_CHECK(r != NULL && (strcmp(r, "admin") == 0 || strcmp(r, "global_admin") == 0));
        }
        break;
    }
    case 3: {
        static const char *const known[] = {"name", "grant_types", "scopes", "permissions", "tenant_id", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && client.name != NULL && is_uuid(client.tenant_id));
        FUZZ_CHECK(json_array_size(client.grants) > 0 && json_is_array(client.scopes) && json_is_array(client.perms));
        break;
    }
    case 4:
    case 5: {
        static const char *const known_c[] = {"name", "description", "permissions", "parents", "tenant_id", "global",
                                              NULL};
        static const char *const known_p[] = {"description", "permissions", "parents", NULL};
        FUZZ_CHECK(fuzz_only_known(body, sel == 4 ? known_c : known_p));
        FUZZ_CHECK(sel == 5 || (role.name != NULL && role_name(role.name)));
        FUZZ_CHECK(sel == 5 || !scoped || (role.tenant != NULL && strcmp(role.tenant, TENANT) == 0));
        check_literal(role.permissions);
        check_literal(role.parents);
        size_t i;
        const json_t *v;
        json_array_foreach (role.parents, i, v)
            FUZZ_CHECK(role_name(json_string_value(v)));
        break;
    }
    case 6: {
        static const char *const known[] = {"roles", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && list != NULL);
        check_literal(list);
        size_t i;
        const json_t *v;
        json_array_foreach (list, i, v)
            FUZZ_CHECK(role_name(json_string_value(v)));
        break;
    }
    case 7: {
        static const char *const known[] = {"document", "tenant_id", "global", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && json_is_object(pol.document));
        FUZZ_CHECK(!scoped || (pol.tenant != NULL && strcmp(pol.tenant, TENANT) == 0));
        FUZZ_CHECK(pol.tenant == NULL || pol.type == NULL || strncmp(pol.type, "latch:", 6) != 0);
        json_t *problems = lt__api_policy_problems(&pol);
        check_problems(problems);
        FUZZ_CHECK(pol.type != NULL || json_array_size(problems) > 0);
        json_decref(problems);
        break;
    }
    case 8: {
        static const char *const known[] = {"version", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && version >= 1 && version <= 2147483647L);
        break;
    }
    default: {
        static const char *const known[] = {"cases", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known) && json_array_size(cases) <= 1000);
        json_t *out = lt_policy_run_cases(snap, "acme", cases, NOW_US);
        FUZZ_CHECK(json_is_object(out));
        json_decref(out);
        break;
    }
    }
done:
    json_decref(owned);
    json_decref(client.grants);
    json_decref(client.scopes);
    json_decref(client.perms);
    json_decref(body);
    return 0;
}
