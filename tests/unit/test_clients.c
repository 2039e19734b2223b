/*
 * Unit tests for lib/identity/clients: credential format, secret checks (also for a missing
 * client), snapshots built from rows (lookup, lists, grants), the input rules, the holder,
 * and, with PostgreSQL (LATCH_TEST_DATABASE_URL), lt_clients_load and the blocking
 * administration on a freshly migrated database. The HTTP surface is
 * tests/integration/test_clients.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "identity/admin.h"
#include "identity/clients.h"
#include "pgtest.h"
#include "store/store.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void sha256_hex(const char *s, char out[65])
{
    uint8_t h[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), h, &n, EVP_sha256(), NULL), 1);
    lt_hex_encode(out, h, sizeof(h));
}

/* ---- credentials ------------------------------------------------------------------------ */

static void test_credentials_format(void **state)
{
    (void)state;
    char id[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65], want[65];
    char id2[LT_CLIENT_ID_LEN + 1], secret2[LT_CLIENT_SECRET_LEN + 1], hash2[65];
    assert_int_equal(lt_client_credentials_new(id, secret, hash), 0);
    assert_int_equal(strlen(id), LT_CLIENT_ID_LEN);
    assert_int_equal(strlen(secret), LT_CLIENT_SECRET_LEN);
    assert_memory_equal(id, "lc_", 3);
    assert_memory_equal(secret, "lcs_", 4);
    assert_int_equal(strspn(id + 3, b64url), LT_CLIENT_ID_LEN - 3);
    assert_int_equal(strspn(secret + 4, b64url), LT_CLIENT_SECRET_LEN - 4);
    sha256_hex(secret, want);
    assert_string_equal(hash, want);
    assert_int_equal(lt_client_credentials_new(id2, secret2, hash2), 0);
    assert_string_not_equal(id, id2);
    assert_string_not_equal(secret, secret2);
}

/* ---- snapshots from rows ------------------------------------------------------------------ */

typedef struct {
    const char *client_id, *id, *tenant, *name, *grants, *scopes, *perms, *secret;
} row_t;

static PGresult *rows_result(const row_t *rows, int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[8];
    char *names[] = {"client_id", "id", "tenant_id", "name", "g", "s", "p", "h"};
    assert_non_null(r);
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < 8; i++) {
        attrs[i].name = names[i];
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, 8, attrs), 1);
    for (int i = 0; i < n; i++) {
        char hash[65];
        sha256_hex(rows[i].secret, hash);
        const char *v[8] = {rows[i].client_id, rows[i].id, rows[i].tenant, rows[i].name,
                            rows[i].grants,    rows[i].scopes, rows[i].perms, hash};
        for (int f = 0; f < 8; f++)
            assert_int_equal(PQsetvalue(r, i, f, (char *)v[f], (int)strlen(v[f])), 1);
    }
    return r;
}

#define T1 "11111111-1111-1111-1111-111111111111"
#define T2 "22222222-2222-2222-2222-222222222222"

static const row_t rows[] = {
    {"lc_AAAAAAAAAAAAAAAAAAAAAA", "aaaaaaaa-0000-0000-0000-000000000001", T1, "svc a", "client_credentials",
     "read write:x", "introspect revoke", "lcs_secret-a"},
    {"lc_BBBBBBBBBBBBBBBBBBBBBB", "aaaaaaaa-0000-0000-0000-000000000002", T2, "svc b",
     "client_credentials refresh_token", "", "", "lcs_secret-b"},
    {"lc_CCCCCCCCCCCCCCCCCCCCCC", "aaaaaaaa-0000-0000-0000-000000000003", T1, "svc c", "refresh_token future_grant",
     "a/b", "revocations", "lcs_secret-c"},
};

static lt_clients_t *sample(void)
{
    lt_clients_t *cs = NULL;
    PGresult *r = rows_result(rows, 3);
    assert_int_equal(lt_clients_from_result(r, &cs), 0);
    PQclear(r); /* the snapshot copied everything */
    return cs;
}

static void test_snapshot_find(void **state)
{
    (void)state;
    lt_clients_t *cs = sample();
    assert_int_equal(lt_clients_count(cs), 3);
    for (size_t i = 0; i < 3; i++) {
        const lt_client_t *c = lt_clients_find(cs, rows[i].client_id, strlen(rows[i].client_id));
        assert_non_null(c);
        assert_string_equal(c->id, rows[i].client_id);
        assert_string_equal(c->uuid, rows[i].id);
        assert_string_equal(c->tenant_id, rows[i].tenant);
        assert_string_equal(c->name, rows[i].name);
    }
    const lt_client_t *a = lt_clients_find(cs, rows[0].client_id, LT_CLIENT_ID_LEN);
    assert_int_equal(a->grants, LT_GRANT_CLIENT_CREDENTIALS);
    assert_string_equal(a->scopes[0], "read");
    assert_string_equal(a->scopes[1], "write:x");
    assert_null(a->scopes[2]);
    assert_true(lt_client_has_scope(a, "write:x", 7));
    assert_true(lt_client_has_scope(a, "read", 4));
    assert_false(lt_client_has_scope(a, "rea", 3));
    assert_false(lt_client_has_scope(a, "write", 5));
    assert_true(lt_client_has_permission(a, "introspect"));
    assert_true(lt_client_has_permission(a, "revoke"));
    assert_false(lt_client_has_permission(a, "revocations"));

    const lt_client_t *b = lt_clients_find(cs, rows[1].client_id, LT_CLIENT_ID_LEN);
    assert_int_equal(b->grants, LT_GRANT_CLIENT_CREDENTIALS | LT_GRANT_REFRESH_TOKEN);
    assert_null(b->scopes[0]);
    assert_null(b->permissions[0]);
    assert_false(lt_client_has_permission(b, "introspect"));

    const lt_client_t *c = lt_clients_find(cs, rows[2].client_id, LT_CLIENT_ID_LEN);
    assert_int_equal(c->grants, LT_GRANT_REFRESH_TOKEN); /* an unknown grant grants nothing */

    /* misses: unknown id, wrong length, a prefix, NULL */
    assert_null(lt_clients_find(cs, "lc_DDDDDDDDDDDDDDDDDDDDDD", LT_CLIENT_ID_LEN));
    assert_null(lt_clients_find(cs, rows[0].client_id, LT_CLIENT_ID_LEN - 1));
    assert_null(lt_clients_find(cs, "lc_AAAAAAAAAAAAAAAAAAAAAAA", LT_CLIENT_ID_LEN + 1));
    assert_null(lt_clients_find(cs, NULL, 0));
    assert_null(lt_clients_find(NULL, rows[0].client_id, LT_CLIENT_ID_LEN));

    /* references: the snapshot outlives the first owner */
    lt_clients_t *again = lt_clients_ref(cs);
    lt_clients_unref(cs);
    assert_non_null(lt_clients_find(again, rows[1].client_id, LT_CLIENT_ID_LEN));
    lt_clients_unref(again);
}

static void test_snapshot_many(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char ids[N][LT_CLIENT_ID_LEN + 1];
    static row_t many[N];
    char sec[LT_CLIENT_SECRET_LEN + 1], hash[65];
    for (int i = 0; i < N; i++) {
        assert_int_equal(lt_client_credentials_new(ids[i], sec, hash), 0);
        many[i] = (row_t){ids[i], "aaaaaaaa-0000-0000-0000-000000000001", T1, "n", "client_credentials", "", "", "s"};
    }
    PGresult *r = rows_result(many, N);
    lt_clients_t *cs = NULL;
    assert_int_equal(lt_clients_from_result(r, &cs), 0);
    PQclear(r);
    assert_int_equal(lt_clients_count(cs), N);
    for (int i = 0; i < N; i++)
        assert_string_equal(lt_clients_find(cs, ids[i], LT_CLIENT_ID_LEN)->id, ids[i]);
    lt_clients_unref(cs);
}

static void test_snapshot_bad_rows(void **state)
{
    (void)state;
    lt_clients_t *cs = (lt_clients_t *)1;
    row_t bad = rows[0];
    bad.client_id = "lc_short";
    PGresult *r = rows_result(&bad, 1);
    assert_int_equal(lt_clients_from_result(r, &cs), LT_EINVAL);
    assert_null(cs);
    PQclear(r);
    /* a duplicate client_id (the table's UNIQUE makes it impossible; refuse rather than shadow) */
    row_t dup[2] = {rows[0], rows[0]};
    r = rows_result(dup, 2);
    assert_int_equal(lt_clients_from_result(r, &cs), LT_EINVAL);
    PQclear(r);
    assert_int_equal(lt_clients_from_result(NULL, &cs), LT_EINVAL);
    /* no rows: an empty snapshot */
    r = rows_result(rows, 0);
    assert_int_equal(lt_clients_from_result(r, &cs), 0);
    assert_int_equal(lt_clients_count(cs), 0);
    assert_null(lt_clients_find(cs, rows[0].client_id, LT_CLIENT_ID_LEN));
    lt_clients_unref(cs);
    PQclear(r);
    assert_int_equal(lt_clients_empty(&cs), 0);
    assert_int_equal(lt_clients_count(cs), 0);
    lt_clients_unref(cs);
}

static void test_check_secret(void **state)
{
    (void)state;
    lt_clients_t *cs = sample();
    const lt_client_t *a = lt_clients_find(cs, rows[0].client_id, LT_CLIENT_ID_LEN);
    const lt_client_t *b = lt_clients_find(cs, rows[1].client_id, LT_CLIENT_ID_LEN);
    assert_true(lt_client_check_secret(a, "lcs_secret-a", 12));
    assert_false(lt_client_check_secret(a, "lcs_secret-b", 12));
    assert_false(lt_client_check_secret(b, "lcs_secret-a", 12));
    assert_true(lt_client_check_secret(b, "lcs_secret-b", 12));
    assert_false(lt_client_check_secret(a, "lcs_secret-a", 11)); /* a prefix */
    assert_false(lt_client_check_secret(a, "lcs_secret-aa", 13));
    assert_false(lt_client_check_secret(a, "", 0));
    assert_false(lt_client_check_secret(a, NULL, 0));
    /* no client: always 0, whatever the secret */
    assert_false(lt_client_check_secret(NULL, "lcs_secret-a", 12));
    assert_false(lt_client_check_secret(NULL, "", 0));
    assert_false(lt_client_check_secret(NULL, NULL, 0));
    lt_clients_unref(cs);

    /* a real pair from lt_client_credentials_new */
    char id[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    assert_int_equal(lt_client_credentials_new(id, secret, hash), 0);
    row_t one = {id, "aaaaaaaa-0000-0000-0000-000000000009", T1, "n", "client_credentials", "", "", secret};
    PGresult *r = rows_result(&one, 1);
    assert_int_equal(lt_clients_from_result(r, &cs), 0);
    PQclear(r);
    const lt_client_t *c = lt_clients_find(cs, id, strlen(id));
    assert_true(lt_client_check_secret(c, secret, strlen(secret)));
    secret[10] ^= 1;
    assert_false(lt_client_check_secret(c, secret, strlen(secret)));
    lt_clients_unref(cs);
}

/* ---- input rules --------------------------------------------------------------------------- */

static json_t *J(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    return v;
}

static void expect_list(const char *text, lt_client_list_kind_t kind, int ok)
{
    const char *why = NULL;
    json_t *v = J(text);
    int ret = lt_client_list_check(v, kind, &why);
    if (ok && ret != 0)
        fail_msg("%s: refused (%s)", text, why);
    if (!ok && (ret != LT_EINVAL || why == NULL))
        fail_msg("%s: accepted", text);
    json_decref(v);
}

static void test_input_rules(void **state)
{
    (void)state;
    expect_list("[\"client_credentials\"]", LT_CLIENT_LIST_GRANTS, 1);
    expect_list("[\"refresh_token\", \"client_credentials\"]", LT_CLIENT_LIST_GRANTS, 1);
    expect_list("[]", LT_CLIENT_LIST_GRANTS, 0);
    expect_list("[\"password\"]", LT_CLIENT_LIST_GRANTS, 0);
    expect_list("[\"refresh_token\", \"refresh_token\"]", LT_CLIENT_LIST_GRANTS, 0);
    expect_list("[1]", LT_CLIENT_LIST_GRANTS, 0);
    expect_list("\"client_credentials\"", LT_CLIENT_LIST_GRANTS, 0);
    expect_list("[\"client_credentials\\u0000\"]", LT_CLIENT_LIST_GRANTS, 0);

    expect_list("[]", LT_CLIENT_LIST_SCOPES, 1);
    expect_list("[\"read\", \"api:write\", \"a/b.c-d_e\"]", LT_CLIENT_LIST_SCOPES, 1);
    expect_list("[\"\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[\"a b\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[\"a,b\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[\"a\\\"b\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[\"r\\u00e9ad\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[\"x\", \"x\"]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("[null]", LT_CLIENT_LIST_SCOPES, 0);
    expect_list("{}", LT_CLIENT_LIST_SCOPES, 0);

    json_t *many = json_array();
    char s[16];
    for (int i = 0; i < LT_CLIENT_SCOPES_MAX; i++) {
        snprintf(s, sizeof(s), "s%d", i);
        json_array_append_new(many, json_string(s));
    }
    const char *why;
    assert_int_equal(lt_client_list_check(many, LT_CLIENT_LIST_SCOPES, &why), 0);
    json_array_append_new(many, json_string("one-more"));
    assert_int_equal(lt_client_list_check(many, LT_CLIENT_LIST_SCOPES, &why), LT_EINVAL);
    json_decref(many);

    char tok[LT_CLIENT_SCOPE_MAX + 2];
    memset(tok, 'a', sizeof(tok));
    assert_true(lt_client_scope_ok(tok, LT_CLIENT_SCOPE_MAX));
    assert_false(lt_client_scope_ok(tok, LT_CLIENT_SCOPE_MAX + 1));
    assert_false(lt_client_scope_ok(tok, 0));

    expect_list("[\"introspect\", \"revoke\", \"revocations\"]", LT_CLIENT_LIST_PERMISSIONS, 1);
    expect_list("[]", LT_CLIENT_LIST_PERMISSIONS, 1);
    expect_list("[\"admin\"]", LT_CLIENT_LIST_PERMISSIONS, 0);
    expect_list("[\"revoke\", \"revoke\"]", LT_CLIENT_LIST_PERMISSIONS, 0);

    assert_int_equal(lt_client_grant_bit("client_credentials"), LT_GRANT_CLIENT_CREDENTIALS);
    assert_int_equal(lt_client_grant_bit("refresh_token"), LT_GRANT_REFRESH_TOKEN);
    assert_int_equal(lt_client_grant_bit("authorization_code"), 0);
    assert_int_equal(lt_client_grant_bit(NULL), 0);

    assert_null(lt_client_name_problem("Billing service"));
    assert_null(lt_client_name_problem("S\xc3\xa9rvice")); /* UTF-8 counts characters */
    assert_non_null(lt_client_name_problem(""));
    assert_non_null(lt_client_name_problem(NULL));
    assert_non_null(lt_client_name_problem("a\nb"));
    char name[2 * LT_CLIENT_NAME_MAX + 1];
    for (int i = 0; i < LT_CLIENT_NAME_MAX; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* 200 characters, 400 bytes */
    name[2 * LT_CLIENT_NAME_MAX] = '\0';
    assert_null(lt_client_name_problem(name));
    name[0] = 'x';
    name[1] = 'x'; /* 201 characters */
    assert_non_null(lt_client_name_problem(name));
}

/* ---- holder ------------------------------------------------------------------------------ */

static void test_holder(void **state)
{
    (void)state;
    lt_clients_holder_t h;
    assert_int_equal(lt_clients_holder_init(&h), 0);
    assert_null(lt_clients_holder_get(&h));
    lt_clients_t *a = sample(), *e = NULL;
    lt_clients_holder_set(&h, a); /* the holder takes this reference */
    lt_clients_t *got = lt_clients_holder_get(&h);
    assert_ptr_equal(got, a);
    assert_int_equal(lt_clients_empty(&e), 0);
    lt_clients_holder_set(&h, e); /* drops the holder's reference to a; ours keeps it alive */
    assert_non_null(lt_clients_find(got, rows[0].client_id, LT_CLIENT_ID_LEN));
    lt_clients_unref(got);
    got = lt_clients_holder_get(&h);
    assert_ptr_equal(got, e);
    assert_int_equal(lt_clients_count(got), 0);
    lt_clients_unref(got);
    lt_clients_holder_dispose(&h);
    lt_clients_holder_dispose(&h); /* twice is harmless */
}

static void test_statements(void **state)
{
    (void)state;
    assert_int_equal(lt_clients_statements(), 0);
    assert_int_equal(lt_clients_statements(), 0); /* idempotent */
    assert_true(lt_clients_stmt_create.id >= 0);
    assert_true(lt_clients_stmt_rotate_secret.id >= 0);
    assert_int_equal(lt_clients_stmt_create.nparams, 11);
}

/* ---- PostgreSQL ---------------------------------------------------------------------------- */

static const char *base_url;

typedef pgtest_db_t db_t;

static int db_setup(void **state)
{
    db_t *d = pgtest_db_new(base_url, "clients");
    PGconn *c = pgtest_connect(d->runtime);
    pgtest_exec(c, "INSERT INTO tenants (name) VALUES ('alpha'), ('beta')");
    PQfinish(c);
    *state = d;
    return 0;
}

static int db_teardown(void **state)
{
    pgtest_db_free(*state, base_url);
    *state = NULL;
    return 0;
}

static json_t *create(const db_t *d, const char *tenant, const char *name, const char *grants, const char *scopes,
                      const char *perms)
{
    char err[512];
    json_t *g = J(grants), *s = J(scopes), *p = J(perms), *out = NULL;
    int ret = lt_clients_admin_create(d->runtime, tenant, name, g, s, p, "test", &out, err, sizeof(err));
    if (ret != 0)
        fail_msg("create: %s", err);
    json_decref(g);
    json_decref(s);
    json_decref(p);
    return out;
}

static void test_load(void **state)
{
    db_t *d = *state;
    char err[512];
    lt_clients_t *cs = NULL;
    assert_int_equal(lt_clients_load(d->runtime, &cs, err, sizeof(err)), 0);
    assert_int_equal(lt_clients_count(cs), 0);
    lt_clients_unref(cs);

    json_t *a = create(d, "alpha", "svc a", "[\"client_credentials\"]", "[\"read\", \"NULL\"]", "[\"introspect\"]");
    json_t *b = create(d, "beta", "svc b", "[\"refresh_token\", \"client_credentials\"]", "[]", "[]");
    const char *aid = json_string_value(json_object_get(a, "client_id"));
    const char *asec = json_string_value(json_object_get(a, "client_secret"));
    const char *bid = json_string_value(json_object_get(b, "client_id"));
    assert_non_null(aid);
    assert_non_null(asec);
    assert_int_equal(strlen(asec), LT_CLIENT_SECRET_LEN);
    assert_null(json_object_get(a, "secret_hash"));

    assert_int_equal(lt_clients_load(d->runtime, &cs, err, sizeof(err)), 0);
    assert_int_equal(lt_clients_count(cs), 2);
    const lt_client_t *ca = lt_clients_find(cs, aid, strlen(aid));
    const lt_client_t *cb = lt_clients_find(cs, bid, strlen(bid));
    assert_non_null(ca);
    assert_non_null(cb);
    assert_string_equal(ca->tenant_id, json_string_value(json_object_get(a, "tenant_id")));
    assert_string_equal(ca->uuid, json_string_value(json_object_get(a, "id")));
    assert_string_equal(ca->name, "svc a");
    assert_int_equal(ca->grants, LT_GRANT_CLIENT_CREDENTIALS);
    assert_true(lt_client_has_scope(ca, "NULL", 4)); /* a scope spelled like SQL NULL survives */
    assert_true(lt_client_has_permission(ca, "introspect"));
    assert_int_equal(cb->grants, LT_GRANT_CLIENT_CREDENTIALS | LT_GRANT_REFRESH_TOKEN);
    assert_true(lt_client_check_secret(ca, asec, strlen(asec)));
    assert_false(lt_client_check_secret(cb, asec, strlen(asec)));
    lt_clients_unref(cs);

    /* listing is per tenant */
    json_t *list = NULL;
    assert_int_equal(lt_clients_admin_list(d->runtime, "alpha", &list, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "client_id")), aid);
    assert_null(json_object_get(json_array_get(list, 0), "client_secret"));
    json_decref(list);
    assert_int_equal(lt_clients_admin_list(d->runtime, "gamma", &list, err, sizeof(err)), LT_ENOTFOUND);

    /* a client is deleted only through its own tenant */
    assert_int_equal(lt_clients_admin_delete(d->runtime, "beta", aid, "test", err, sizeof(err)), LT_ENOTFOUND);
    assert_int_equal(lt_clients_admin_delete(d->runtime, "alpha", aid, "test", err, sizeof(err)), 0);
    assert_int_equal(lt_clients_admin_delete(d->runtime, "alpha", aid, "test", err, sizeof(err)), LT_ENOTFOUND);
    assert_int_equal(lt_clients_load(d->runtime, &cs, err, sizeof(err)), 0);
    assert_int_equal(lt_clients_count(cs), 1);
    assert_null(lt_clients_find(cs, aid, strlen(aid)));
    lt_clients_unref(cs);

    /* every write audited */
    PGconn *c = pgtest_connect(d->runtime);
    PGresult *r = PQexec(c, "SELECT string_agg(event, ',' ORDER BY id) FROM audit_log WHERE event LIKE 'client.%'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "client.created,client.created,client.deleted");
    PQclear(r);
    PQfinish(c);
    json_decref(a);
    json_decref(b);
}

static void test_admin_refusals(void **state)
{
    db_t *d = *state;
    char err[512];
    json_t *out = NULL, *g = J("[\"client_credentials\"]"), *bad = J("[\"password\"]");
    assert_int_equal(lt_clients_admin_create(d->runtime, "gamma", "x", g, NULL, NULL, "t", &out, err, sizeof(err)),
                     LT_ENOTFOUND);
    assert_int_equal(lt_clients_admin_create(d->runtime, "alpha", "x", bad, NULL, NULL, "t", &out, err, sizeof(err)),
                     LT_EINVAL);
    assert_int_equal(lt_clients_admin_create(d->runtime, "alpha", "", g, NULL, NULL, "t", &out, err, sizeof(err)),
                     LT_EINVAL);
    assert_null(out);
    json_decref(g);
    json_decref(bad);

    /* the table refuses what slipped past C: check_violation */
    PGconn *c = pgtest_connect(d->runtime);
    PGresult *r = PQexec(c, "INSERT INTO oauth_clients (tenant_id, client_id, secret_hash, name, grant_types) "
                            "SELECT id, 'lc_AAAAAAAAAAAAAAAAAAAAAA', decode(repeat('00', 32), 'hex'), 'n', "
                            "'{password}' FROM tenants WHERE name = 'alpha'");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23514");
    PQclear(r);
    PQfinish(c);
}

static void test_load_unavailable(void **state)
{
    (void)state;
    char err[512];
    lt_clients_t *cs = (lt_clients_t *)1;
    assert_int_equal(lt_clients_load("host=/nonexistent-dir-for-latch port=1 connect_timeout=1", &cs, err, sizeof(err)),
                     LT_EUNAVAIL);
    assert_null(cs);
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credentials_format),
        cmocka_unit_test(test_snapshot_find),
        cmocka_unit_test(test_snapshot_many),
        cmocka_unit_test(test_snapshot_bad_rows),
        cmocka_unit_test(test_check_secret),
        cmocka_unit_test(test_input_rules),
        cmocka_unit_test(test_holder),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_load_unavailable),
        cmocka_unit_test_setup_teardown(test_load, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_admin_refusals, db_setup, db_teardown),
    };
    enum { NPURE = 9 };
    size_t n = sizeof(tests) / sizeof(tests[0]);
    lt_log_set_level(LT_LOG_ERROR);
    base_url = pgtest_url_or_leave_out(tests, NPURE, &n);
    return _cmocka_run_group_tests("clients", tests, n, NULL, NULL);
}
