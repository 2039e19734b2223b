/*
 * Unit tests for lib/identity/apikeys: the key format (base32 key id, base64url secret),
 * strict parsing of presented keys, snapshots built from rows, verification (secret,
 * unknown ids, expiry) and the role-name rule. The HTTP surfaces are
 * tests/integration/test_api_keys.py.
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

#include "identity/apikeys.h"

static void sha256_hex(const char *s, size_t n, char out[65])
{
    uint8_t h[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(s, n, h, &len, EVP_sha256(), NULL), 1);
    lt_hex_encode(out, h, sizeof(h));
}

/* ---- format ------------------------------------------------------------------------------- */

static void test_format_known_bytes(void **state)
{
    (void)state;
    uint8_t id[10], secret[32];
    char key[LT_APIKEY_LEN + 1];
    memset(id, 0, sizeof(id));
    memset(secret, 0, sizeof(secret));
    lt_apikey_format(id, secret, key);
    assert_string_equal(key, "lt_ak_aaaaaaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    /* RFC 4648 base32 (lower-cased): Python base64.b32encode(b"foobarbaz!"); 10 bytes use every bit */
    memcpy(id, "foobarbaz!", 10);
    memset(secret, 0xff, sizeof(secret));
    lt_apikey_format(id, secret, key);
    assert_int_equal(strlen(key), LT_APIKEY_LEN);
    assert_memory_equal(key, "lt_ak_mzxw6ytbojrgc6rb_", 23);
    /* 0xff.. in base64url: '_' everywhere but the last, whose two low bits are padding */
    assert_string_equal(key + 23, "__________________________________________8");
}

static void test_new_keys(void **state)
{
    (void)state;
    char key[LT_APIKEY_LEN + 1], id[LT_APIKEY_ID_LEN + 1], hash[65], want[65];
    char key2[LT_APIKEY_LEN + 1], id2[LT_APIKEY_ID_LEN + 1], hash2[65];
    const char *pid, *psec;
    assert_int_equal(lt_apikey_new(key, id, hash), 0);
    assert_int_equal(lt_apikey_new(key2, id2, hash2), 0);
    assert_int_equal(strlen(key), LT_APIKEY_LEN);
    assert_int_equal(strlen(id), LT_APIKEY_ID_LEN);
    assert_string_not_equal(key, key2);
    assert_string_not_equal(id, id2);
    assert_int_equal(lt_apikey_parse(key, strlen(key), &pid, &psec), 0);
    assert_memory_equal(pid, id, LT_APIKEY_ID_LEN);
    assert_ptr_equal(psec, key + 23);
    /* only the secret's SHA-256 is kept */
    sha256_hex(psec, LT_APIKEY_SECRET_LEN, want);
    assert_string_equal(hash, want);
    assert_int_equal(strspn(id, "abcdefghijklmnopqrstuvwxyz234567"), LT_APIKEY_ID_LEN);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    char good[LT_APIKEY_LEN + 1], bad[LT_APIKEY_LEN + 8], id[LT_APIKEY_ID_LEN + 1], hash[65];
    assert_int_equal(lt_apikey_new(good, id, hash), 0);
    assert_int_equal(lt_apikey_parse(good, strlen(good), NULL, NULL), 0);
    static const struct {
        int at;
        char c;
    } flips[] = {
        {0, 'L'},  /* prefix */
        {5, '-'},  /* prefix separator */
        {6, 'A'},  /* upper case is not in the id alphabet */
        {10, '1'}, /* nor 0, 1, 8, 9 */
        {21, '8'},
        {22, '-'}, /* the separator */
        {23, '='}, /* padding */
        {30, '+'}, /* standard base64, not url-safe */
        {40, '/'},
        {65, 'B'}, /* last character with stray low bits: not canonical */
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(bad, good, sizeof(good));
        bad[flips[i].at] = flips[i].c;
        assert_int_equal(lt_apikey_parse(bad, strlen(bad), NULL, NULL), LT_EINVAL);
    }
    /* length: one short, one long, empty, just the prefix, embedded NUL */
    assert_int_equal(lt_apikey_parse(good, strlen(good) - 1, NULL, NULL), LT_EINVAL);
    memcpy(bad, good, sizeof(good));
    strcat(bad, "A");
    assert_int_equal(lt_apikey_parse(bad, strlen(bad), NULL, NULL), LT_EINVAL);
    assert_int_equal(lt_apikey_parse("", 0, NULL, NULL), LT_EINVAL);
    assert_int_equal(lt_apikey_parse("lt_ak_", 6, NULL, NULL), LT_EINVAL);
    assert_int_equal(lt_apikey_parse(NULL, 66, NULL, NULL), LT_EINVAL);
    memcpy(bad, good, sizeof(good));
    bad[40] = '\0';
    assert_int_equal(lt_apikey_parse(bad, LT_APIKEY_LEN, NULL, NULL), LT_EINVAL);
    /* a refresh token or client secret is not a key */
    assert_false(lt_apikey_looks_like("lt_rt_abc", 9));
    assert_true(lt_apikey_looks_like("lt_ak_x", 7));
    assert_false(lt_apikey_looks_like("lt_a", 4));
}

/* ---- snapshots and verification ----------------------------------------------------------------- */

typedef struct {
    const char *key; /* the full key text */
    const char *kind, *owner, *scopes, *roles, *exp;
} row_t;

#define T1 "11111111-1111-1111-1111-111111111111"
#define U1 "aaaaaaaa-0000-0000-0000-000000000001"

static PGresult *rows_result(const row_t *rows, int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[10];
    char *names[] = {"key_id", "id", "tenant_id", "kind", "owner", "scopes", "roles", "exp", "created", "hash"};
    assert_non_null(r);
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < 10; i++) {
        attrs[i].name = names[i];
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, 10, attrs), 1);
    for (int i = 0; i < n; i++) {
        char hash[65], kid[LT_APIKEY_ID_LEN + 1], uuid[37];
        sha256_hex(rows[i].key + 23, LT_APIKEY_SECRET_LEN, hash);
        memcpy(kid, rows[i].key + 6, LT_APIKEY_ID_LEN);
        kid[LT_APIKEY_ID_LEN] = '\0';
        snprintf(uuid, sizeof(uuid), "bbbbbbbb-0000-0000-0000-%012d", i);
        const char *v[10] = {kid, uuid, T1, rows[i].kind, rows[i].owner, rows[i].scopes, rows[i].roles, rows[i].exp,
                             "1700000000", hash};
        for (int f = 0; f < 10; f++)
            assert_int_equal(PQsetvalue(r, i, f, (char *)v[f], (int)strlen(v[f])), 1);
    }
    return r;
}

static void test_snapshot_verify(void **state)
{
    (void)state;
    char k1[LT_APIKEY_LEN + 1], k2[LT_APIKEY_LEN + 1], k3[LT_APIKEY_LEN + 1], id[17], h[65];
    assert_int_equal(lt_apikey_new(k1, id, h), 0);
    assert_int_equal(lt_apikey_new(k2, id, h), 0);
    assert_int_equal(lt_apikey_new(k3, id, h), 0); /* never loaded */
    const row_t rows[] = {
        {k1, "u", U1, "introspect read:x", "viewer editor", "0"},
        {k2, "c", "lc_AAAAAAAAAAAAAAAAAAAAAA", "", "", "1800000000"},
    };
    PGresult *res = rows_result(rows, 2);
    lt_apikeys_t *ks = NULL;
    assert_int_equal(lt_apikeys_from_result(res, &ks), 0);
    PQclear(res);
    assert_int_equal(lt_apikeys_count(ks), 2);

    const lt_apikey_t *k = NULL;
    assert_int_equal(lt_apikeys_verify(ks, k1, strlen(k1), 1750000000, &k), 0);
    assert_non_null(k);
    assert_false(k->owner_is_client);
    assert_string_equal(k->owner_id, U1);
    assert_string_equal(k->tenant_id, T1);
    assert_int_equal(k->expires_at, 0);
    assert_int_equal(k->created_at, 1700000000);
    assert_true(lt_apikey_has_scope(k, "introspect"));
    assert_true(lt_apikey_has_scope(k, "read:x"));
    assert_false(lt_apikey_has_scope(k, "decide"));
    assert_string_equal(k->roles[0], "viewer");
    assert_string_equal(k->roles[1], "editor");
    assert_null(k->roles[2]);

    /* a client's key, before and at its expiry */
    assert_int_equal(lt_apikeys_verify(ks, k2, strlen(k2), 1799999999, &k), 0);
    assert_true(k->owner_is_client);
    assert_null(k->scopes[0]);
    assert_int_equal(lt_apikeys_verify(ks, k2, strlen(k2), 1800000000, &k), LT_ENOTFOUND);
    assert_null(k);

    /* unknown id, wrong secret (same id), malformed: never a key */
    assert_int_equal(lt_apikeys_verify(ks, k3, strlen(k3), 1750000000, &k), LT_ENOTFOUND);
    char wrong[LT_APIKEY_LEN + 1];
    memcpy(wrong, k1, sizeof(wrong));
    memcpy(wrong + 23, k3 + 23, LT_APIKEY_SECRET_LEN);
    assert_int_equal(lt_apikeys_verify(ks, wrong, strlen(wrong), 1750000000, &k), LT_ENOTFOUND);
    assert_int_equal(lt_apikeys_verify(ks, "lt_ak_nope", 10, 1750000000, &k), LT_EINVAL);
    assert_int_equal(lt_apikeys_verify(ks, k1, strlen(k1) - 1, 1750000000, &k), LT_EINVAL);

    /* lookups by id */
    assert_non_null(lt_apikeys_find(ks, k1 + 6, LT_APIKEY_ID_LEN));
    assert_null(lt_apikeys_find(ks, k3 + 6, LT_APIKEY_ID_LEN));
    assert_null(lt_apikeys_find(ks, k1 + 6, 5));

    /* references */
    assert_ptr_equal(lt_apikeys_ref(ks), ks);
    lt_apikeys_unref(ks);
    lt_apikeys_unref(ks);

    lt_apikeys_t *none = NULL;
    assert_int_equal(lt_apikeys_empty(&none), 0);
    assert_int_equal(lt_apikeys_count(none), 0);
    assert_int_equal(lt_apikeys_verify(none, k1, strlen(k1), 1750000000, &k), LT_ENOTFOUND);
    lt_apikeys_unref(none);
}

static void test_snapshot_bad_rows(void **state)
{
    (void)state;
    char k1[LT_APIKEY_LEN + 1], id[17], h[65];
    assert_int_equal(lt_apikey_new(k1, id, h), 0);
    lt_apikeys_t *ks = NULL;
    /* the same key twice (UNIQUE in the table) */
    const row_t dup[] = {{k1, "u", U1, "", "", "0"}, {k1, "u", U1, "", "", "0"}};
    PGresult *res = rows_result(dup, 2);
    assert_int_equal(lt_apikeys_from_result(res, &ks), LT_EINVAL);
    assert_null(ks);
    PQclear(res);
    /* a time that is not a number */
    const row_t badexp[] = {{k1, "u", U1, "", "", "soon"}};
    res = rows_result(badexp, 1);
    assert_int_equal(lt_apikeys_from_result(res, &ks), LT_EINVAL);
    PQclear(res);
    assert_int_equal(lt_apikeys_from_result(NULL, &ks), LT_EINVAL);
}

static void test_role_names(void **state)
{
    (void)state;
    assert_true(lt_apikey_role_ok("admin"));
    assert_true(lt_apikey_role_ok("billing:reader.v2-x_y"));
    assert_false(lt_apikey_role_ok(""));
    assert_false(lt_apikey_role_ok("Admin"));
    assert_false(lt_apikey_role_ok("1role"));
    assert_false(lt_apikey_role_ok("a b"));
    assert_false(lt_apikey_role_ok(NULL));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(lt_apikey_role_ok(long_name));
    long_name[64] = '\0';
    assert_true(lt_apikey_role_ok(long_name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_bytes), cmocka_unit_test(test_new_keys),
        cmocka_unit_test(test_parse_rejects),      cmocka_unit_test(test_snapshot_verify),
        cmocka_unit_test(test_snapshot_bad_rows),  cmocka_unit_test(test_role_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
