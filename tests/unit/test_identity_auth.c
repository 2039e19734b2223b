/*
 * Unit tests for lib/identity/auth: the opaque tokens (shape, randomness, SHA-256 against
 * vectors computed independently with Python's hashlib), the refusal of malformed
 * presented tokens before they could reach the database, the UUID shape check, the
 * lockout parameter texts and statement registration. The SQL functions and row decoding
 * are exercised end to end by tests/integration/test_auth.py and test_lockout.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "identity/auth.h"

/* sha256("lt_rt_" + "A" * 43) and sha256("lt_pr_a..zA..O-_"), from hashlib. */
static const char rt_all_a[] = "lt_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char rt_all_a_sha[] = "a8a253f56ca3f22f191af2e174a2d7dd1dc9d80efad74a7c1ea856e83dc9a2a2";
static const char pr_mixed[] = "lt_pr_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_";
static const char pr_mixed_sha[] = "8e5aab9aa99457cc2140643e109a691992211f17d0305c88915ca6ae8f66274b";

static void test_token_hash_vectors(void **state)
{
    (void)state;
    char hex[LT_AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(strlen(rt_all_a), LT_AUTH_TOKEN_LEN);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, rt_all_a, strlen(rt_all_a), hex), 0);
    assert_string_equal(hex, rt_all_a_sha);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, pr_mixed, strlen(pr_mixed), hex), 0);
    assert_string_equal(hex, pr_mixed_sha);
}

static void test_token_hash_refuses_malformed(void **state)
{
    (void)state;
    char hex[LT_AUTH_HASH_HEX_LEN + 1];
    char buf[LT_AUTH_TOKEN_LEN + 2];
    /* the other kind's prefix */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, rt_all_a, strlen(rt_all_a), hex), LT_EINVAL);
    assert_string_equal(hex, "");
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, pr_mixed, strlen(pr_mixed), hex), LT_EINVAL);
    /* one character short, one too many */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, rt_all_a, strlen(rt_all_a) - 1, hex), LT_EINVAL);
    memcpy(buf, rt_all_a, LT_AUTH_TOKEN_LEN);
    buf[LT_AUTH_TOKEN_LEN] = 'A';
    buf[LT_AUTH_TOKEN_LEN + 1] = '\0';
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, buf, LT_AUTH_TOKEN_LEN + 1, hex), LT_EINVAL);
    /* characters outside base64url, including standard base64's and padding */
    const char bad[] = {'+', '/', '=', '.', ' ', '\0', '\x80', '\xff'};
    for (size_t i = 0; i < sizeof(bad); i++) {
        memcpy(buf, rt_all_a, LT_AUTH_TOKEN_LEN + 1);
        buf[20] = bad[i];
        assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, buf, LT_AUTH_TOKEN_LEN, hex), LT_EINVAL);
    }
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, NULL, 0, hex), LT_EINVAL);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, "", 0, hex), LT_EINVAL);
}

static void test_token_new_shape_and_hash(void **state)
{
    (void)state;
    char a[LT_AUTH_TOKEN_LEN + 1], b[LT_AUTH_TOKEN_LEN + 1];
    char ha[LT_AUTH_HASH_HEX_LEN + 1], hb[LT_AUTH_HASH_HEX_LEN + 1], check[LT_AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, a, ha), 0);
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, b, hb), 0);
    assert_int_equal(strlen(a), LT_AUTH_TOKEN_LEN);
    assert_int_equal(strncmp(a, "lt_rt_", 6), 0);
    assert_string_not_equal(a, b); /* 256 random bits each */
    assert_string_not_equal(ha, hb);
    assert_int_equal(strlen(ha), LT_AUTH_HASH_HEX_LEN);
    /* what a client presents back hashes to what was stored */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, a, strlen(a), check), 0);
    assert_string_equal(check, ha);

    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_RESET, a, ha), 0);
    assert_int_equal(strncmp(a, "lt_pr_", 6), 0);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, a, strlen(a), check), 0);
    assert_string_equal(check, ha);
}

static void test_uuid_shape(void **state)
{
    (void)state;
    assert_true(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d10"));
    assert_true(lt_auth_uuid_ok("0B9C3C8E-7A0E-4F39-9D6B-2F3C1A7E5D10"));
    assert_false(lt_auth_uuid_ok(NULL));
    assert_false(lt_auth_uuid_ok(""));
    assert_false(lt_auth_uuid_ok("not-a-uuid"));
    assert_false(lt_auth_uuid_ok("0b9c3c8e7a0e4f399d6b2f3c1a7e5d10"));      /* no dashes */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d1"));   /* short */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d100")); /* long */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d1g"));  /* not hex */
    assert_false(lt_auth_uuid_ok("0b9c3c8e_7a0e-4f39-9d6b-2f3c1a7e5d10"));  /* wrong separator */
    assert_false(lt_auth_uuid_ok("{b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d10"));
}

static void test_limits_params(void **state)
{
    (void)state;
    lt_auth_limits_t l = {5, 900, 600, 50, 3600, 60, 0, 2147483647};
    char buf[LT_AUTH_LIMITS_NPARAMS][12];
    const char *p[LT_AUTH_LIMITS_NPARAMS];
    lt_auth_limits_params(&l, buf, p);
    const char *want[] = {"5", "900", "600", "50", "3600", "60", "0", "2147483647"};
    for (int i = 0; i < LT_AUTH_LIMITS_NPARAMS; i++)
        assert_string_equal(p[i], want[i]);
}

static void test_statements_register_once(void **state)
{
    (void)state;
    assert_int_equal(lt_auth_statements(), 0);
    assert_string_equal(lt_auth_stmt_login_begin.name, "auth.login_begin");
    assert_int_equal(lt_auth_stmt_login_begin.nparams, 3 + LT_AUTH_LIMITS_NPARAMS + 1);
    assert_int_equal(lt_auth_stmt_password_change_begin.nparams, 4 + LT_AUTH_LIMITS_NPARAMS + 1);
    assert_int_equal(lt_auth_statements(), LT_EEXIST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_hash_vectors),  cmocka_unit_test(test_token_hash_refuses_malformed),
        cmocka_unit_test(test_token_new_shape_and_hash), cmocka_unit_test(test_uuid_shape),
        cmocka_unit_test(test_limits_params),        cmocka_unit_test(test_statements_register_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
