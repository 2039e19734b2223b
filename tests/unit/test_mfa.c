/*
 * Unit tests for lib/mfa's pure parts: TOTP against the RFC 6238 Appendix B vectors for
 * each hash, the verification window and the reported step, code-shape checks, base32,
 * the otpauth URI text, the QR SVG's shape (decoding it is an integration test), and
 * recovery codes: generation, normalisation, and the stored MAC against a vector computed
 * independently (Python hmac/hashlib).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mfa/mfa.h"

/* ---- TOTP --------------------------------------------------------------------------- */

/* RFC 6238 Appendix B seeds: the ASCII digits repeated to the hash's output size. */
static const char seed_sha1[] = "12345678901234567890";
static const char seed_sha256[] = "12345678901234567890123456789012";
static const char seed_sha512[] = "1234567890123456789012345678901234567890123456789012345678901234";

static const struct {
    int64_t t;
    const char *sha1, *sha256, *sha512;
} rfc6238[] = {
    {59, "94287082", "46119246", "90693936"},
    {1111111109, "07081804", "68084774", "25091201"},
    {1111111111, "14050471", "67062674", "99943326"},
    {1234567890, "89005924", "91819424", "93441116"},
    {2000000000, "69279037", "90698825", "38618901"},
    {20000000000, "65353130", "77737706", "47863826"},
};

static void check_vector(lt_mfa_alg_t alg, const char *seed, int64_t t, const char *want)
{
    lt_mfa_totp_params_t p = {alg, 8, 30};
    char code[LT_MFA_DIGITS_MAX + 1];
    int64_t step = -1;
    assert_int_equal(lt_mfa_totp_code((const uint8_t *)seed, strlen(seed), &p, t / 30, code), 0);
    assert_string_equal(code, want);
    assert_int_equal(lt_mfa_totp_check((const uint8_t *)seed, strlen(seed), &p, t, 0, want, 8, &step), 0);
    assert_int_equal(step, t / 30);
}

static void test_totp_rfc6238_vectors(void **state)
{
    (void)state;
    assert_int_equal(strlen(seed_sha1), 20);
    assert_int_equal(strlen(seed_sha256), 32);
    assert_int_equal(strlen(seed_sha512), 64);
    for (size_t i = 0; i < sizeof(rfc6238) / sizeof(rfc6238[0]); i++) {
        check_vector(LT_MFA_SHA1, seed_sha1, rfc6238[i].t, rfc6238[i].sha1);
        check_vector(LT_MFA_SHA256, seed_sha256, rfc6238[i].t, rfc6238[i].sha256);
        check_vector(LT_MFA_SHA512, seed_sha512, rfc6238[i].t, rfc6238[i].sha512);
    }
}

/* A shorter code is the last digits of the 8-digit one (RFC 4226 §5.3: mod 10^digits). */
static void test_totp_fewer_digits(void **state)
{
    (void)state;
    lt_mfa_totp_params_t p = {LT_MFA_SHA1, 6, 30};
    char code[LT_MFA_DIGITS_MAX + 1];
    assert_int_equal(lt_mfa_totp_code((const uint8_t *)seed_sha1, 20, &p, 1111111109 / 30, code), 0);
    assert_string_equal(code, "081804");
    p.digits = 7;
    assert_int_equal(lt_mfa_totp_code((const uint8_t *)seed_sha1, 20, &p, 1111111109 / 30, code), 0);
    assert_string_equal(code, "7081804");
}

static void test_totp_window(void **state)
{
    (void)state;
    const uint8_t *secret = (const uint8_t *)seed_sha1;
    lt_mfa_totp_params_t p = {LT_MFA_SHA256, 6, 30};
    const int64_t now = 1700000015, s = now / 30;
    char code[LT_MFA_DIGITS_MAX + 1];
    int64_t step;

    for (int window = 0; window <= LT_MFA_WINDOW_MAX; window++) {
        for (int d = -(window + 1); d <= window + 1; d++) {
            assert_int_equal(lt_mfa_totp_code(secret, 20, &p, s + d, code), 0);
            step = -1;
            int rc = lt_mfa_totp_check(secret, 20, &p, now, window, code, 6, &step);
            if (d >= -window && d <= window) {
                assert_int_equal(rc, 0);
                assert_int_equal(step, s + d);
            } else {
                assert_int_equal(rc, LT_ENOTFOUND);
                assert_int_equal(step, -1);
            }
        }
    }
    /* The step boundary: the last second of a step still sees that step. */
    assert_int_equal(lt_mfa_totp_code(secret, 20, &p, s, code), 0);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p, s * 30 + 29, 0, code, 6, &step), 0);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p, s * 30 + 30, 0, code, 6, &step), LT_ENOTFOUND);
    /* step may be NULL. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p, now, 0, code, 6, NULL), 0);
    /* Another period moves the steps. */
    p.period = 60;
    assert_int_equal(lt_mfa_totp_code(secret, 20, &p, now / 60, code), 0);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p, now, 0, code, 6, &step), 0);
    assert_int_equal(step, now / 60);
    /* Wrong secret, wrong algorithm. */
    assert_int_equal(lt_mfa_totp_check((const uint8_t *)seed_sha256 + 1, 20, &p, now, 1, code, 6, &step), LT_ENOTFOUND);
    p.alg = LT_MFA_SHA1;
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p, now, 1, code, 6, &step), LT_ENOTFOUND);
}

/* Near the epoch the window has fewer steps behind now (liboath's counters would wrap). */
static void test_totp_near_epoch(void **state)
{
    (void)state;
    lt_mfa_totp_params_t p = {LT_MFA_SHA1, 6, 30};
    char code[LT_MFA_DIGITS_MAX + 1];
    int64_t step = -1;
    assert_int_equal(lt_mfa_totp_code((const uint8_t *)seed_sha1, 20, &p, 0, code), 0);
    assert_int_equal(lt_mfa_totp_check((const uint8_t *)seed_sha1, 20, &p, 10, 5, code, 6, &step), 0);
    assert_int_equal(step, 0);
    assert_int_equal(lt_mfa_totp_code((const uint8_t *)seed_sha1, 20, &p, 1, code), 0);
    assert_int_equal(lt_mfa_totp_check((const uint8_t *)seed_sha1, 20, &p, 10, 1, code, 6, &step), 0);
    assert_int_equal(step, 1);
}

static void test_totp_code_shape(void **state)
{
    (void)state;
    const uint8_t *secret = (const uint8_t *)seed_sha1;
    lt_mfa_totp_params_t p6 = {LT_MFA_SHA1, 6, 30}, p8 = {LT_MFA_SHA1, 8, 30};
    const int64_t now = 1111111109;
    int64_t step = -1;

    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "081804", 6, &step), 0);
    /* Too short or too long, even when the digits themselves would match. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "81804", 5, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "0081804", 7, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "7081804", 7, &step), LT_EINVAL);
    /* An 8-digit factor refuses the correct 6-digit code (liboath alone would accept it). */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p8, now, 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p8, now, 1, "07081804", 8, &step), 0);
    /* Non-digits. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "08180a", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "08 804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "-81804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "08180\xd9", 6, &step), LT_EINVAL);
    /* The length counts, not a NUL: an embedded NUL is a non-digit. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "08180\0", 6, &step), LT_EINVAL);
    /* codelen governs: the first 6 of a longer string are the code. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "081804xyz", 6, &step), 0);
    /* Wrong but well-formed. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, "081805", 6, &step), LT_ENOTFOUND);
    /* Bad parameters. */
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, -1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, LT_MFA_WINDOW_MAX + 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, -1, 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 0, &p6, now, 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(NULL, 20, &p6, now, 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, NULL, now, 1, "081804", 6, &step), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_check(secret, 20, &p6, now, 1, NULL, 6, &step), LT_EINVAL);
    lt_mfa_totp_params_t bad = {LT_MFA_SHA1, 5, 30};
    assert_int_equal(lt_mfa_totp_check(secret, 20, &bad, now, 1, "81804", 5, &step), LT_EINVAL);
    char code[LT_MFA_DIGITS_MAX + 1];
    assert_int_equal(lt_mfa_totp_code(secret, 20, &bad, 1, code), LT_EINVAL);
    assert_string_equal(code, "");
    assert_int_equal(lt_mfa_totp_code(secret, 20, &p6, -1, code), LT_EINVAL);
    assert_int_equal(lt_mfa_totp_code(secret, 20, &p6, INT64_MAX / 10, code), LT_EINVAL);
    /* Refusals leave *step alone. */
    assert_int_equal(step, 1111111109 / 30);
}

static void test_params_and_alg_names(void **state)
{
    (void)state;
    lt_mfa_alg_t alg = LT_MFA_SHA1;
    assert_string_equal(lt_mfa_alg_name(LT_MFA_SHA1), "SHA1");
    assert_string_equal(lt_mfa_alg_name(LT_MFA_SHA256), "SHA256");
    assert_string_equal(lt_mfa_alg_name(LT_MFA_SHA512), "SHA512");
    assert_null(lt_mfa_alg_name((lt_mfa_alg_t)3));
    assert_int_equal(lt_mfa_alg_parse("SHA512", &alg), 0);
    assert_int_equal(alg, LT_MFA_SHA512);
    assert_int_equal(lt_mfa_alg_parse("SHA256", &alg), 0);
    assert_int_equal(alg, LT_MFA_SHA256);
    assert_int_equal(lt_mfa_alg_parse("SHA1", &alg), 0);
    assert_int_equal(alg, LT_MFA_SHA1);
    const char *bad_names[] = {"sha1", "SHA-1", "SHA384", "SHA1 ", "", "MD5"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(lt_mfa_alg_parse(bad_names[i], &alg), LT_EINVAL);
    assert_int_equal(lt_mfa_alg_parse(NULL, &alg), LT_EINVAL);
    assert_int_equal(alg, LT_MFA_SHA1);

    lt_mfa_totp_params_t p = {LT_MFA_SHA1, 6, 30};
    assert_true(lt_mfa_params_ok(&p));
    p.digits = 5;
    assert_false(lt_mfa_params_ok(&p));
    p.digits = 9;
    assert_false(lt_mfa_params_ok(&p));
    p.digits = 8;
    p.period = 14;
    assert_false(lt_mfa_params_ok(&p));
    p.period = 121;
    assert_false(lt_mfa_params_ok(&p));
    p.period = 15;
    assert_true(lt_mfa_params_ok(&p));
    p.period = 120;
    p.alg = LT_MFA_SHA512;
    assert_true(lt_mfa_params_ok(&p));
    p.alg = (lt_mfa_alg_t)7;
    assert_false(lt_mfa_params_ok(&p));
    assert_false(lt_mfa_params_ok(NULL));
}

/* ---- secrets and base32 ------------------------------------------------------------- */

static void test_secret_and_base32(void **state)
{
    (void)state;
    char b32[LT_MFA_SECRET_B32_LEN + 1];
    /* RFC 6238's SHA1 seed, as authenticator test pages show it. */
    assert_int_equal(lt_mfa_secret_b32((const uint8_t *)seed_sha1, b32), 0);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    const uint8_t zero[LT_MFA_SECRET_LEN] = {0};
    assert_int_equal(lt_mfa_secret_b32(zero, b32), 0);
    assert_string_equal(b32, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    uint8_t ff[LT_MFA_SECRET_LEN];
    memset(ff, 0xff, sizeof(ff));
    assert_int_equal(lt_mfa_secret_b32(ff, b32), 0);
    assert_string_equal(b32, "77777777777777777777777777777777");

    uint8_t a[LT_MFA_SECRET_LEN], b[LT_MFA_SECRET_LEN];
    assert_int_equal(lt_mfa_secret_new(a), 0);
    assert_int_equal(lt_mfa_secret_new(b), 0);
    assert_memory_not_equal(a, b, LT_MFA_SECRET_LEN);
    assert_int_equal(lt_mfa_secret_b32(a, b32), 0);
    assert_int_equal(strlen(b32), LT_MFA_SECRET_B32_LEN);
    assert_int_equal(strspn(b32, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), LT_MFA_SECRET_B32_LEN);
}

/* ---- otpauth URI -------------------------------------------------------------------- */

static void test_otpauth_uri(void **state)
{
    (void)state;
    lt_mfa_totp_params_t p = {LT_MFA_SHA256, 8, 60};
    char *uri = lt_mfa_otpauth_uri("Acme & Co/\xc3\x89t\xc3\xa9", "alice+mfa@example.com",
                                   "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", &p);
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/Acme%20%26%20Co%2F%C3%89t%C3%A9:alice%2Bmfa%40example.com"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20%26%20Co%2F%C3%89t%C3%A9"
                             "&algorithm=SHA256&digits=8&period=60");
    free(uri);

    /* Unreserved characters pass; the account's ':' (the label separator) is escaped. */
    lt_mfa_totp_params_t d = {LT_MFA_SHA1, 6, 30};
    uri = lt_mfa_otpauth_uri("Latch-1.0_x~", "bob:o'neil?#=&", "AAAA", &d);
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/Latch-1.0_x~:bob%3Ao%27neil%3F%23%3D%26"
                             "?secret=AAAA&issuer=Latch-1.0_x~&algorithm=SHA1&digits=6&period=30");
    free(uri);

    assert_null(lt_mfa_otpauth_uri("", "a@example.com", "AAAA", &d));
    assert_null(lt_mfa_otpauth_uri("Acme", "", "AAAA", &d));
    assert_null(lt_mfa_otpauth_uri("Acme:Corp", "a@example.com", "AAAA", &d));
    assert_null(lt_mfa_otpauth_uri("Acme", "a@example.com", "", &d));
    assert_null(lt_mfa_otpauth_uri(NULL, "a@example.com", "AAAA", &d));
    assert_null(lt_mfa_otpauth_uri("Acme", NULL, "AAAA", &d));
    assert_null(lt_mfa_otpauth_uri("Acme", "a@example.com", NULL, &d));
    assert_null(lt_mfa_otpauth_uri("Acme", "a@example.com", "AAAA", NULL));
    lt_mfa_totp_params_t bad = {LT_MFA_SHA1, 6, 10};
    assert_null(lt_mfa_otpauth_uri("Acme", "a@example.com", "AAAA", &bad));
}

/* ---- QR SVG ------------------------------------------------------------------------- */

/* The side in modules from the viewBox; checks width/height agree with 8 px a module. */
static int svg_side(const char *svg)
{
    int vx = -1, vy = -1, vw = 0, vh = 0, w = 0, h = 0;
    const char *v = strstr(svg, "viewBox=\"");
    assert_non_null(v);
    assert_int_equal(sscanf(v, "viewBox=\"%d %d %d %d\" width=\"%d\" height=\"%d\"", &vx, &vy, &vw, &vh, &w, &h), 6);
    assert_int_equal(vx, 0);
    assert_int_equal(vy, 0);
    assert_int_equal(vw, vh);
    assert_int_equal(w, h);
    assert_int_equal(w, vw * 8);
    return vw;
}

static void test_qr_svg(void **state)
{
    (void)state;
    static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" ";
    size_t len = 0;
    const char *text = "otpauth://totp/Acme:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme"
                       "&algorithm=SHA1&digits=6&period=30";
    char *svg = lt_mfa_qr_svg(text, &len);
    assert_non_null(svg);
    assert_int_equal(strlen(svg), len);
    assert_memory_equal(svg, head, sizeof(head) - 1);
    /* A QR code's side is 17 + 4 * version modules, plus the quiet zone on both sides. */
    int side = svg_side(svg);
    assert_int_equal((side - 8 - 17) % 4, 0);
    assert_true(side - 8 >= 21);
    assert_non_null(strstr(svg, "<rect width=\""));
    const char *path = strstr(svg, "<path fill=\"#000\" d=\"M");
    assert_non_null(path);
    /* One path only. */
    assert_null(strstr(path + 1, "<path"));
    /* The finder pattern's top row: 7 dark modules from the quiet zone's corner. */
    assert_non_null(strstr(path, "d=\"M4 4h7v1h-7z"));
    assert_string_equal(svg + len - 7, "</svg>\n");
    free(svg);

    /* Version 1 for a short text: 21 modules. */
    svg = lt_mfa_qr_svg("hi", &len);
    assert_non_null(svg);
    assert_int_equal(svg_side(svg), 21 + 8);
    free(svg);

    /* Beyond what a version 40-M symbol holds in 8-bit mode (2331 bytes). */
    char *big = malloc(3000);
    assert_non_null(big);
    memset(big, 'a', 2999);
    big[2999] = '\0';
    assert_null(lt_mfa_qr_svg(big, &len));
    free(big);
    assert_null(lt_mfa_qr_svg(NULL, &len));
}

/* ---- recovery codes ----------------------------------------------------------------- */

static void test_recovery_new(void **state)
{
    (void)state;
    char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1];
    int seen[256] = {0};

    for (int round = 0; round < 100; round++) {
        assert_int_equal(lt_mfa_recovery_new(codes), 0);
        for (int i = 0; i < LT_MFA_RECOVERY_COUNT; i++) {
            assert_int_equal(strlen(codes[i]), LT_MFA_RECOVERY_LEN);
            assert_int_equal(strspn(codes[i], LT_MFA_RECOVERY_ALPHABET), LT_MFA_RECOVERY_LEN);
            for (int j = 0; j < i; j++)
                assert_string_not_equal(codes[i], codes[j]);
            for (int k = 0; k < LT_MFA_RECOVERY_LEN; k++)
                seen[(unsigned char)codes[i][k]]++;
            /* A fresh code is already in canonical form. */
            char norm[LT_MFA_RECOVERY_LEN + 1];
            assert_int_equal(lt_mfa_recovery_normalize(codes[i], LT_MFA_RECOVERY_LEN, norm), 0);
            assert_string_equal(norm, codes[i]);
        }
    }
    /* 10,000 symbols: each of the 32 is expected ~312 times; a missing one means lost bits. */
    for (const char *c = LT_MFA_RECOVERY_ALPHABET; *c; c++)
        assert_true(seen[(unsigned char)*c] > 150);
}

static void test_recovery_normalize(void **state)
{
    (void)state;
    char out[LT_MFA_RECOVERY_LEN + 1];
    static const struct {
        const char *in, *want;
    } good[] = {
        {"ABCDEFGH23", "ABCDEFGH23"},          {"abcdefgh23", "ABCDEFGH23"},      {"abcde-fgh23", "ABCDEFGH23"},
        {"ABCDE FGH23", "ABCDEFGH23"},         {" abcde - fgh23 ", "ABCDEFGH23"}, {"zyxwv-utsrq", "ZYXWVUTSRQ"},
        {"a-b-c-d-e-f-g-h-2-3", "ABCDEFGH23"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(lt_mfa_recovery_normalize(good[i].in, strlen(good[i].in), out), 0);
        assert_string_equal(out, good[i].want);
    }
    static const char *const refused[] = {
        "",           "ABCDEFGH2",    "ABCDEFGH234", "ABCDEFGHO3", "ABCDEFGHI3", "ABCDEFGH03", "ABCDEFGH13",
        "abcdefgho3", "abcdefghi3",   "ABCDEFGH2_",  "ABCDEFGH2\t3", "ABCDEFGH2.3", "\303\204BCDEFGH23",
        "----------", "ABCDEFGH2+3",  "98765-43zz",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(lt_mfa_recovery_normalize(refused[i], strlen(refused[i]), out), LT_EINVAL);
        assert_string_equal(out, "");
    }
    /* n governs: a NUL inside is refused, and bytes past n are ignored. */
    assert_int_equal(lt_mfa_recovery_normalize("ABCDE\0GH23", 10, out), LT_EINVAL);
    assert_int_equal(lt_mfa_recovery_normalize("ABCDEFGH23XYZ", 10, out), 0);
    assert_string_equal(out, "ABCDEFGH23");
    assert_int_equal(lt_mfa_recovery_normalize(NULL, 0, out), LT_EINVAL);
}

static void test_recovery_hash(void **state)
{
    (void)state;
    uint8_t mk[32], mk2[32];
    for (int i = 0; i < 32; i++) {
        mk[i] = (uint8_t)i;
        mk2[i] = (uint8_t)i;
    }
    mk2[31] ^= 1;
    char h1[LT_MFA_RECOVERY_HASH_HEX_LEN + 1], h2[LT_MFA_RECOVERY_HASH_HEX_LEN + 1];

    /* "01" + hmac.new(sha256(b"latch recovery codes" + bytes(range(32))).digest(),
     *                 b"user-1:ABCDEFGH23", sha256).hexdigest() */
    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-1", "ABCDEFGH23", h1), 0);
    assert_string_equal(h1, "0104338328f095ba5dca99c87ba7cae8d8f82f167dabd289a8659bd114c3b22a24");
    assert_int_equal(strlen(h1), LT_MFA_RECOVERY_HASH_HEX_LEN);

    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-1", "ABCDEFGH23", h2), 0);
    assert_string_equal(h1, h2);
    /* Another user, key, code or version: another stored form. */
    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-2", "ABCDEFGH23", h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(lt_mfa_recovery_hash(1, mk2, "user-1", "ABCDEFGH23", h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-1", "ABCDEFGH24", h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(lt_mfa_recovery_hash(2, mk, "user-1", "ABCDEFGH23", h2), 0);
    assert_string_not_equal(h1, h2);
    assert_memory_equal(h2, "02", 2);
    /* The version names the key; it is not mixed into the MAC itself. */
    assert_string_equal(h1 + 2, h2 + 2);
    assert_int_equal(lt_mfa_recovery_hash(255, mk, "", "ABCDEFGH23", h2), 0);
    assert_memory_equal(h2, "ff", 2);
    assert_int_equal(strspn(h2, "0123456789abcdef"), LT_MFA_RECOVERY_HASH_HEX_LEN);

    const char short_code[LT_MFA_RECOVERY_LEN + 1] = "ABCDEFGH2";
    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-1", short_code, h2), LT_EINVAL);
    assert_int_equal(lt_mfa_recovery_hash(1, mk, "user-1", "ABCDEFGH234", h2), LT_EINVAL);
    assert_int_equal(lt_mfa_recovery_hash(1, mk, NULL, "ABCDEFGH23", h2), LT_EINVAL);
    assert_int_equal(lt_mfa_recovery_hash(1, NULL, "user-1", "ABCDEFGH23", h2), LT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_rfc6238_vectors),
        cmocka_unit_test(test_totp_fewer_digits),
        cmocka_unit_test(test_totp_window),
        cmocka_unit_test(test_totp_near_epoch),
        cmocka_unit_test(test_totp_code_shape),
        cmocka_unit_test(test_params_and_alg_names),
        cmocka_unit_test(test_secret_and_base32),
        cmocka_unit_test(test_otpauth_uri),
        cmocka_unit_test(test_qr_svg),
        cmocka_unit_test(test_recovery_new),
        cmocka_unit_test(test_recovery_normalize),
        cmocka_unit_test(test_recovery_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
