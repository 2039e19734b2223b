/*
 * Unit tests for lib/identity/password: the policy's own checks (byte and code-point
 * length, NUL bytes, strict UTF-8, similarity to the email) and libpwquality's (cracklib
 * dictionary, too simple, palindromes), the reasons given, the lt_hasher_check_fn adapter,
 * and concurrent use (the libpwquality calls are serialised inside).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "crypto/hasher.h"
#include "identity/password.h"

static const char email[] = "jane.doe@example.com";

static lt_password_policy_t *policy_new(void)
{
    lt_password_policy_t *p = NULL;
    assert_int_equal(lt_password_policy_create(12, &p), 0);
    assert_non_null(p);
    return p;
}

/* Expects a refusal whose reason contains `needle`. */
static void refused(lt_password_policy_t *p, const char *pw, size_t n, const char *mail, const char *needle)
{
    char reason[256] = "";
    int ret = lt_password_policy_check(p, pw, n, mail, reason, sizeof(reason));
    if (ret != LT_EINVAL || strstr(reason, needle) == NULL)
        fail_msg("password #%zu bytes: ret %d, reason '%s', wanted '%s'", n, ret, reason, needle);
}

static void accepted(lt_password_policy_t *p, const char *pw, const char *mail)
{
    char reason[256] = "";
    int ret = lt_password_policy_check(p, pw, strlen(pw), mail, reason, sizeof(reason));
    if (ret != 0)
        fail_msg("refused a good password: %s", reason);
}

static void test_create_destroy(void **state)
{
    (void)state;
    lt_password_policy_t *p = (lt_password_policy_t *)1;
    assert_int_equal(lt_password_policy_create(0, &p), LT_EINVAL);
    assert_null(p);
    p = policy_new();
    lt_password_policy_destroy(&p);
    assert_null(p);
    lt_password_policy_destroy(&p); /* NULL is fine */
}

static void test_length(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    char reason[256];
    char big[LT_PASSWORD_MAX + 1];

    refused(p, "Ab1!xyzQ", 8, NULL, "at least 12 characters");
    refused(p, "", 0, NULL, "at least 12 characters");
    assert_int_equal(lt_password_policy_quick(p, "Ab1!xyzQ", 8, reason, sizeof(reason)), LT_EINVAL);

    /* 1025 bytes: too long, whatever they are */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + (i * 7) % 26);
    refused(p, big, sizeof(big), NULL, "at most 1024 bytes");
    assert_int_equal(lt_password_policy_quick(p, big, sizeof(big), reason, sizeof(reason)), LT_EINVAL);
    assert_int_equal(lt_password_policy_quick(p, big, LT_PASSWORD_MAX, reason, sizeof(reason)), 0);

    /* a reason is cut to the caller's buffer, always terminated */
    char tiny[8];
    assert_int_equal(lt_password_policy_quick(p, "short", 5, tiny, sizeof(tiny)), LT_EINVAL);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    lt_password_policy_destroy(&p);
}

/* Length counts code points, not bytes. */
static void test_code_points(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    char reason[256];
    /* 12 two-byte letters (24 bytes): long enough */
    static const char twelve[] = "\xc3\x84\xc3\x96\xc3\x9c\xc3\xa4\xc3\xb6\xc3\xbc"
                                 "\xc3\x9f\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab\xc3\xaf";
    /* 11 of them (22 bytes): too short, though more than 12 bytes */
    static const char eleven[] = "\xc3\x84\xc3\x96\xc3\x9c\xc3\xa4\xc3\xb6\xc3\xbc"
                                 "\xc3\x9f\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab";
    /* 12 mixed: 3- and 4-byte code points (CJK, emoji) */
    static const char mixed[] = "\xe6\x98\xa5\xe7\x9c\xa0\xe4\xb8\x8d\xe8\xa6\xba\xe6\x99\x93"
                                "\xf0\x9f\x8c\xb8\xf0\x9f\x8d\x80"
                                "\xe5\xa4\x84\xe5\xa4\x84\xe9\x97\xbb\xe5\x95\xbc\xe9\xb3\xa5";
    assert_int_equal(lt_password_policy_quick(p, twelve, strlen(twelve), reason, sizeof(reason)), 0);
    accepted(p, twelve, email);
    refused(p, eleven, strlen(eleven), NULL, "at least 12 characters");
    assert_int_equal(lt_password_policy_quick(p, mixed, strlen(mixed), reason, sizeof(reason)), 0);
    lt_password_policy_destroy(&p);
}

static void test_nul_and_invalid_utf8(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    char reason[256];
    static const char with_nul[] = "correct\0horse battery staple";
    refused(p, with_nul, sizeof(with_nul) - 1, NULL, "NUL");
    assert_int_equal(lt_password_policy_quick(p, with_nul, sizeof(with_nul) - 1, reason, sizeof(reason)), LT_EINVAL);

    static const char *const bad[] = {
        "valid start \xff then junk",     /* never valid in UTF-8 */
        "latin-1 caf\xe9 au lait!",       /* a lone lead byte */
        "overlong slash \xc0\xaf here",   /* overlong '/' */
        "overlong \xe0\x80\xaf three",    /* overlong '/' in 3 bytes */
        "surrogate \xed\xa0\x80 half",    /* U+D800 */
        "beyond \xf4\x90\x80\x80 max",    /* U+110000 */
        "stray continuation \x80 byte",
        "truncated at the end \xe2\x82", /* incomplete € */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(p, bad[i], strlen(bad[i]), NULL, "UTF-8");
    /* a 4-byte maximum is fine */
    accepted(p, "max code point \xf4\x8f\xbf\xbf ok, Violet 42", NULL);
    lt_password_policy_destroy(&p);
}

static void test_dictionary_and_simple(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    refused(p, "administrator1", 14, email, "dictionary");
    /* cracklib lets these through; the letters-only check and max sequence/repeat do not */
    refused(p, "password1221", 12, email, "dictionary word with digits or symbols");
    refused(p, "P@ssw0rd-2020", 13, email, "dictionary word with digits or symbols");
    refused(p, "password123456", 14, email, "monotonic sequence");
    refused(p, "Xk9pQ!!!!mZ2", 12, email, "same characters consecutively");
    refused(p, "abcabcabcabcabc", 15, NULL, "DIFFERENT characters");
    refused(p, "aaaaaaaaaaaaaaaa", 16, NULL, "palindrome");
    refused(p, "1122334455667", 13, NULL, "simplistic");
    lt_password_policy_destroy(&p);
}

static void test_similar_to_email(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    /* the whole address, a word of its local part (any case, either direction) */
    refused(p, "my jane.doe@example.com!", 24, email, "similar to your email");
    refused(p, "JaneLovesKettles42", 18, email, "similar to your email");
    refused(p, "Kettles-enaj-42-zq", 18, email, "similar to your email");
    /* the same passwords are fine for someone else */
    accepted(p, "JaneLovesKettles42", "bob@example.com");
    lt_password_policy_destroy(&p);
}

static void test_good_passphrase(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    accepted(p, "Violet kettles hum at dawn 42", email);
    accepted(p, "Violet kettles hum at dawn 42", NULL);
    accepted(p, "Violet kettles hum at dawn 42", "");
    accepted(p, "Tq7#vL2!pZ9@wR4$", email);
    lt_password_policy_destroy(&p);
}

static void test_hasher_check_adapter(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    char reason[256] = "";
    static const char good[] = "Violet kettles hum at dawn 42";
    assert_int_equal(lt_password_policy_hasher_check(good, strlen(good), email, reason, sizeof(reason), p), 0);
    assert_int_not_equal(lt_password_policy_hasher_check("administrator1", 14, email, reason, sizeof(reason), p), 0);
    assert_non_null(strstr(reason, "dictionary"));
    assert_int_not_equal(lt_password_policy_hasher_check("short", 5, "", reason, sizeof(reason), p), 0);
    assert_non_null(strstr(reason, "at least 12"));
    lt_password_policy_destroy(&p);
}

/* Several threads at once (as the hasher threads do): results stay right. */
typedef struct {
    lt_password_policy_t *p;
    int errors;
} worker_t;

static void *check_worker(void *arg)
{
    worker_t *w = arg;
    char reason[256];
    for (int i = 0; i < 25; i++) {
        if (lt_password_policy_check(w->p, "Violet kettles hum at dawn 42", 29, email, reason, sizeof(reason)) != 0)
            w->errors++;
        if (lt_password_policy_check(w->p, "password123456", 14, email, reason, sizeof(reason)) != LT_EINVAL)
            w->errors++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    lt_password_policy_t *p = policy_new();
    lt_password_policy_t *p2 = policy_new(); /* two policies share cracklib's globals */
    pthread_t t[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){.p = i % 2 ? p2 : p};
        assert_int_equal(pthread_create(&t[i], NULL, check_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    lt_password_policy_destroy(&p);
    lt_password_policy_destroy(&p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_destroy),
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_code_points),
        cmocka_unit_test(test_nul_and_invalid_utf8),
        cmocka_unit_test(test_dictionary_and_simple),
        cmocka_unit_test(test_similar_to_email),
        cmocka_unit_test(test_good_passphrase),
        cmocka_unit_test(test_hasher_check_adapter),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
