/*
 * Unit tests for lib/identity/admin: the input rules (tenant names, emails), page cursors
 * (round trips, and rejection of everything the encoder cannot have produced), and the
 * decoding of statement rows, on results built client-side with libpq's PQsetvalue.
 * The SQL itself and lt_admin_bootstrap are exercised end to end by
 * tests/integration/test_admin.py and test_bootstrap.py.
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

#include "identity/admin.h"

/* ---- tenant names ---------------------------------------------------------------------- */

static void test_tenant_names(void **state)
{
    (void)state;
    char max[64];
    memset(max, 'a', 63);
    max[63] = '\0';
    assert_true(lt_admin_tenant_name_ok("demo"));
    assert_true(lt_admin_tenant_name_ok("a"));
    assert_true(lt_admin_tenant_name_ok("0"));
    assert_true(lt_admin_tenant_name_ok("acme-2-eu"));
    assert_true(lt_admin_tenant_name_ok(max));
    max[62] = '-';
    assert_true(lt_admin_tenant_name_ok(max)); /* a trailing '-' is allowed by the pattern */
    char over[65];
    memset(over, 'a', 64);
    over[64] = '\0';
    const char *bad[] = {"", "-demo", "Demo", "de mo", "de_mo", "demo.", "d\xc3\xa9mo", over};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(lt_admin_tenant_name_ok(bad[i]));
    assert_false(lt_admin_tenant_name_ok(NULL));
}

/* ---- emails ---------------------------------------------------------------------------- */

static void test_email_accepts_and_trims(void **state)
{
    (void)state;
    char out[LT_ADMIN_EMAIL_MAX + 1];
    const char *why = "unset";
    assert_int_equal(lt_admin_email_check("a@b", out, sizeof(out), &why), 0);
    assert_string_equal(out, "a@b");
    assert_null(why);
    assert_int_equal(lt_admin_email_check("  \tAdmin@Demo.Test \t", out, sizeof(out), &why), 0);
    assert_string_equal(out, "Admin@Demo.Test"); /* case kept; the store lower-cases a copy */
    assert_int_equal(lt_admin_email_check("j\xc3\xb6rg@b\xc3\xbc.test", out, sizeof(out), &why), 0);

    /* exactly 320 bytes between the trimmed blanks, then 321 */
    char in[400];
    memset(in, 'x', 322);
    in[0] = ' ';
    in[100] = '@';
    in[321] = ' ';
    in[322] = '\0';
    assert_int_equal(lt_admin_email_check(in, out, sizeof(out), &why), 0);
    assert_int_equal(strlen(out), 320);
    in[321] = 'x';
    in[322] = '\0';
    assert_int_equal(lt_admin_email_check(in, out, sizeof(out), &why), LT_EINVAL);
    assert_non_null(why);
}

static void test_email_rejects(void **state)
{
    (void)state;
    char out[LT_ADMIN_EMAIL_MAX + 1];
    const char *bad[] = {"",        "   ",     "ab",          "a@",          "@b",         "ab.test",   "a@b@c",
                         "a b@c.d", "a@b\tc",  "a@b\nc",      "a\r@b.c",     "a\x01@b.c",  "a@b\x7f",   "  @  ",
                         "a@ b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        out[0] = '\0';
        assert_int_equal(lt_admin_email_check(bad[i], out, sizeof(out), &why), LT_EINVAL);
        assert_non_null(why);
    }
    const char *why = NULL;
    assert_int_equal(lt_admin_email_check("a@b.c", out, 10, &why), LT_EINVAL); /* cap too small */
}

/* ---- cursors --------------------------------------------------------------------------- */

static void test_cursor_round_trip(void **state)
{
    (void)state;
    const char *keys[] = {
        "1795458330301118:04592357-7b00-4002-b5de-f4c5d8f42bfc",
        "0:00000000-0000-0000-0000-000000000000",
        "9223372036854775807:FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char cur[LT_ADMIN_CURSOR_MAX + 1], us[20], id[LT_ADMIN_UUID_LEN + 1], back[LT_ADMIN_KEY_MAX + 1];
        assert_int_equal(lt_admin_cursor_encode(keys[i], cur, sizeof(cur)), 0);
        assert_null(strpbrk(cur, "+/=:"));
        assert_int_equal(lt_admin_cursor_decode(cur, us, id), 0);
        snprintf(back, sizeof(back), "%s:%s", us, id);
        assert_string_equal(back, keys[i]);
    }
    char small[LT_ADMIN_CURSOR_MAX];
    assert_int_equal(lt_admin_cursor_encode(keys[0], small, sizeof(small)), LT_ERANGE);
}

static void test_cursor_rejects_garbage(void **state)
{
    (void)state;
    char cur[LT_ADMIN_CURSOR_MAX + 1], us[20], id[LT_ADMIN_UUID_LEN + 1];
    const char *bad_keys[] = {
        "",
        "12",
        ":04592357-7b00-4002-b5de-f4c5d8f42bfc",
        "-1:04592357-7b00-4002-b5de-f4c5d8f42bfc",
        "1x:04592357-7b00-4002-b5de-f4c5d8f42bfc",
        "9223372036854775808:04592357-7b00-4002-b5de-f4c5d8f42bfc", /* > int64 */
        "12345678901234567890:04592357-7b00-4002-b5de-f4c5d8f42bfc",
        "1:04592357-7b00-4002-b5de-f4c5d8f42bf",
        "1:04592357-7b00-4002-b5de-f4c5d8f42bfcc",
        "1:04592357_7b00-4002-b5de-f4c5d8f42bfc",
        "1:0459235g-7b00-4002-b5de-f4c5d8f42bfc",
        "1;04592357-7b00-4002-b5de-f4c5d8f42bfc",
    };
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        /* the encoder refuses them, and a client who encodes one by hand gets refused too */
        assert_int_equal(lt_admin_cursor_encode(bad_keys[i], cur, sizeof(cur)), LT_EINVAL);
        char b64[200];
        b64[lt_b64url_encode(b64, bad_keys[i], strlen(bad_keys[i]))] = '\0';
        if (strlen(b64) <= LT_ADMIN_CURSOR_MAX)
            assert_int_equal(lt_admin_cursor_decode(b64, us, id), LT_EINVAL);
    }
    /* not base64url at all, padded, standard alphabet, too long, empty, a NULL */
    assert_int_equal(lt_admin_cursor_encode("1:04592357-7b00-4002-b5de-f4c5d8f42bfc", cur, sizeof(cur)), 0);
    char padded[LT_ADMIN_CURSOR_MAX + 4];
    snprintf(padded, sizeof(padded), "%s=", cur);
    const char *bad[] = {"!!!!", "a", padded, "MTox+DQ1OTIzNTctN2IwMC00MDAyLWI1ZGUtZjRjNWQ4ZjQyYmZj", "",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lt_admin_cursor_decode(bad[i], us, id), LT_EINVAL);
    assert_int_equal(lt_admin_cursor_decode(NULL, us, id), LT_EINVAL);
    /* a truncated valid cursor */
    cur[strlen(cur) - 2] = '\0';
    assert_int_equal(lt_admin_cursor_decode(cur, us, id), LT_EINVAL);
}

/* ---- rows ------------------------------------------------------------------------------ */

/* A client-side result with `ncols` text columns and one row (NULL value = SQL NULL). */
static PGresult *row_of(int ncols, const char *const *values)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[4];
    char *names[] = {"a", "b", "c", "d"};
    assert_non_null(r);
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = names[i];
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, ncols, attrs), 1);
    for (int i = 0; values != NULL && i < ncols; i++)
        assert_int_equal(PQsetvalue(r, 0, i, (char *)values[i], values[i] != NULL ? (int)strlen(values[i]) : -1), 1);
    return r;
}

static void test_result_codes(void **state)
{
    (void)state;
    static const struct {
        const char *code;
        lt_admin_code_t want;
    } cases[] = {{"not_found", LT_ADMIN_NOT_FOUND}, {"conflict", LT_ADMIN_CONFLICT},
                 {"email_taken", LT_ADMIN_EMAIL_TAKEN}, {"forbidden", LT_ADMIN_FORBIDDEN},
                 {"too_large", LT_ADMIN_TOO_LARGE}};
    lt_admin_code_t code;
    const char *body = "x";

    const char *ok[] = {"ok", "{\"id\":1}"};
    PGresult *r = row_of(2, ok);
    assert_int_equal(lt_admin_result(r, &code, &body), 0);
    assert_int_equal(code, LT_ADMIN_OK);
    assert_string_equal(body, "{\"id\":1}");
    PQclear(r);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v[] = {cases[i].code, NULL};
        r = row_of(2, v);
        body = "x";
        assert_int_equal(lt_admin_result(r, &code, &body), 0);
        assert_int_equal(code, cases[i].want);
        assert_null(body);
        PQclear(r);
    }

    /* unknown code, ok without a body, NULL code, wrong shape, no row */
    const char *unknown[] = {"weird", NULL}, *nobody[] = {"ok", NULL}, *nullcode[] = {NULL, "{}"};
    const char *const *badrows[] = {unknown, nobody, nullcode};
    for (size_t i = 0; i < 3; i++) {
        r = row_of(2, badrows[i]);
        assert_int_equal(lt_admin_result(r, &code, &body), LT_EINVAL);
        PQclear(r);
    }
    const char *one[] = {"ok"};
    r = row_of(1, one);
    assert_int_equal(lt_admin_result(r, &code, &body), LT_EINVAL);
    PQclear(r);
    r = row_of(2, NULL);
    assert_int_equal(lt_admin_result(r, &code, &body), LT_EINVAL);
    PQclear(r);
    assert_int_equal(lt_admin_result(NULL, &code, &body), LT_EINVAL);
}

static void test_doc_and_page(void **state)
{
    (void)state;
    const char *doc = "x", *items = "x", *key = "x";
    const char *d[] = {"{\"id\":1}"}, *dnull[] = {NULL};
    PGresult *r = row_of(1, d);
    assert_int_equal(lt_admin_doc(r, &doc), 0);
    assert_string_equal(doc, "{\"id\":1}");
    PQclear(r);
    r = row_of(1, dnull);
    assert_int_equal(lt_admin_doc(r, &doc), 0);
    assert_null(doc);
    PQclear(r);
    r = row_of(1, NULL); /* no row at all: also nothing in scope */
    assert_int_equal(lt_admin_doc(r, &doc), 0);
    assert_null(doc);
    PQclear(r);

    const char *p[] = {"[]", "1:04592357-7b00-4002-b5de-f4c5d8f42bfc"}, *last[] = {"[1]", NULL},
               *noitems[] = {NULL, NULL};
    r = row_of(2, p);
    assert_int_equal(lt_admin_page(r, &items, &key), 0);
    assert_string_equal(items, "[]");
    assert_string_equal(key, "1:04592357-7b00-4002-b5de-f4c5d8f42bfc");
    PQclear(r);
    r = row_of(2, last);
    assert_int_equal(lt_admin_page(r, &items, &key), 0);
    assert_string_equal(items, "[1]");
    assert_null(key);
    PQclear(r);
    r = row_of(2, noitems);
    assert_int_equal(lt_admin_page(r, &items, &key), LT_EINVAL);
    PQclear(r);
}

static void test_statements_are_complete(void **state)
{
    (void)state;
    for (int i = 0; i < LT_ADMIN_NSTMTS; i++) {
        assert_non_null(lt_admin_stmts[i].name);
        assert_non_null(lt_admin_stmts[i].sql);
        /* every $n up to nparams is used, and none beyond */
        char ph[16];
        for (int n = 1; n <= lt_admin_stmts[i].nparams; n++) {
            snprintf(ph, sizeof(ph), "$%d", n);
            assert_non_null(strstr(lt_admin_stmts[i].sql, ph));
        }
        snprintf(ph, sizeof(ph), "$%d", lt_admin_stmts[i].nparams + 1);
        assert_null(strstr(lt_admin_stmts[i].sql, ph));
    }
    assert_int_equal(lt_admin_statements(), 0);
    assert_int_equal(lt_admin_statements(), LT_EEXIST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_names),
        cmocka_unit_test(test_email_accepts_and_trims),
        cmocka_unit_test(test_email_rejects),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_rejects_garbage),
        cmocka_unit_test(test_result_codes),
        cmocka_unit_test(test_doc_and_page),
        cmocka_unit_test(test_statements_are_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
