/*
 * Unit tests for lib/crypto seal and keyring: AES-256-GCM sealing (round trips, wrong key,
 * wrong aad, tampering anywhere, version handling), JWS keys for ES256 and Ed25519
 * (generate, sign, verify, PKCS#8 round trip, public JWK round trip, RFC known answers,
 * malformed JWKs), rings (find, active, JWKS cutoff, ownership on failure) and the holder
 * under two threads. All with real OpenSSL; nothing is mocked.
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

#include "base/base.h"
#include "crypto/keyring.h"
#include "crypto/seal.h"

/* ---- seal --------------------------------------------------------------------------- */

static lt_seal_key_t seal_key(uint8_t version, uint8_t fill)
{
    lt_seal_key_t k;
    k.version = version;
    for (size_t i = 0; i < sizeof(k.key); i++)
        k.key[i] = (uint8_t)(fill + i * 7);
    return k;
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    lt_seal_key_t k = seal_key(1, 0x11);
    static const char aad[] = "signing_key:abc";
    uint8_t pt[300], sealed[300 + LT_SEAL_OVERHEAD], sealed2[300 + LT_SEAL_OVERHEAD], back[300];
    for (size_t i = 0; i < sizeof(pt); i++)
        pt[i] = (uint8_t)(i * 13 + 5);
    const size_t sizes[] = {0, 1, 15, 16, 17, 121, 300};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s], outlen = 9999;
        assert_int_equal(lt_seal(&k, aad, strlen(aad), pt, n, sealed), 0);
        assert_int_equal(sealed[0], 1);
        assert_int_equal(lt_unseal(&k, 1, aad, strlen(aad), sealed, n + LT_SEAL_OVERHEAD, back, &outlen), 0);
        assert_int_equal(outlen, n);
        assert_memory_equal(back, pt, n);
        /* A fresh random nonce every time: the same plaintext never seals the same way. */
        assert_int_equal(lt_seal(&k, aad, strlen(aad), pt, n, sealed2), 0);
        assert_memory_not_equal(sealed + 1, sealed2 + 1, 12);
    }
    /* Ciphertext is not the plaintext. */
    assert_int_equal(lt_seal(&k, NULL, 0, pt, 64, sealed), 0);
    assert_memory_not_equal(sealed + 13, pt, 64);
    size_t outlen = 0;
    assert_int_equal(lt_unseal(&k, 1, NULL, 0, sealed, 64 + LT_SEAL_OVERHEAD, back, &outlen), 0);
    assert_int_equal(outlen, 64);
}

static void test_seal_wrong_key_aad_tamper(void **state)
{
    (void)state;
    lt_seal_key_t k = seal_key(3, 0x20), other = seal_key(3, 0x21);
    static const char aad[] = "signing_key:one";
    static const char pt[] = "PKCS#8 would be here";
    const size_t n = sizeof(pt), total = n + LT_SEAL_OVERHEAD;
    uint8_t sealed[sizeof(pt) + LT_SEAL_OVERHEAD], copy[sizeof(sealed)], back[sizeof(pt)];
    size_t outlen = 0;
    assert_int_equal(lt_seal(&k, aad, strlen(aad), pt, n, sealed), 0);

    /* Same version, different key. */
    assert_int_equal(lt_unseal(&other, 1, aad, strlen(aad), sealed, total, back, &outlen), LT_EINVAL);
    /* Same key, the blob moved to another row. */
    assert_int_equal(lt_unseal(&k, 1, "signing_key:two", 15, sealed, total, back, &outlen), LT_EINVAL);
    assert_int_equal(lt_unseal(&k, 1, NULL, 0, sealed, total, back, &outlen), LT_EINVAL);
    /* Any flipped bit after the version byte (nonce, ciphertext, tag) fails the tag. */
    for (size_t i = 1; i < total; i++) {
        memcpy(copy, sealed, total);
        copy[i] ^= 0x01;
        memset(back, 0xAA, sizeof(back));
        assert_int_equal(lt_unseal(&k, 1, aad, strlen(aad), copy, total, back, &outlen), LT_EINVAL);
        /* Nothing unauthenticated is handed out. */
        for (size_t j = 0; j < n; j++)
            assert_int_equal(back[j], 0);
    }
    /* Truncated. */
    assert_int_equal(lt_unseal(&k, 1, aad, strlen(aad), sealed, total - 1, back, &outlen), LT_EINVAL);
    assert_int_equal(lt_unseal(&k, 1, aad, strlen(aad), sealed, LT_SEAL_OVERHEAD - 1, back, &outlen), LT_EINVAL);
    /* Still opens untouched. */
    assert_int_equal(lt_unseal(&k, 1, aad, strlen(aad), sealed, total, back, &outlen), 0);
    assert_memory_equal(back, pt, n);
}

static void test_seal_versions(void **state)
{
    (void)state;
    lt_seal_key_t old = seal_key(1, 0x40), cur = seal_key(2, 0x50);
    lt_seal_key_t both[2] = {cur, old};
    uint8_t a[8 + LT_SEAL_OVERHEAD], b[8 + LT_SEAL_OVERHEAD], back[8];
    size_t outlen = 0;
    assert_int_equal(lt_seal(&old, "x", 1, "12345678", 8, a), 0);
    assert_int_equal(lt_seal(&cur, "x", 1, "abcdefgh", 8, b), 0);
    /* During a rotation the reader holds both and opens either. */
    assert_int_equal(lt_unseal(both, 2, "x", 1, a, sizeof(a), back, &outlen), 0);
    assert_memory_equal(back, "12345678", 8);
    assert_int_equal(lt_unseal(both, 2, "x", 1, b, sizeof(b), back, &outlen), 0);
    assert_memory_equal(back, "abcdefgh", 8);
    /* Unknown version. */
    assert_int_equal(lt_unseal(&cur, 1, "x", 1, a, sizeof(a), back, &outlen), LT_ENOTFOUND);
    a[0] = 9;
    assert_int_equal(lt_unseal(both, 2, "x", 1, a, sizeof(a), back, &outlen), LT_ENOTFOUND);
    /* The version byte is authenticated: relabelling a blob to another key fails, even
     * when that key is the same bytes under another version. */
    lt_seal_key_t same_bytes[2] = {old, old};
    same_bytes[1].version = 7;
    a[0] = 1;
    assert_int_equal(lt_unseal(same_bytes, 2, "x", 1, a, sizeof(a), back, &outlen), 0);
    a[0] = 7;
    assert_int_equal(lt_unseal(same_bytes, 2, "x", 1, a, sizeof(a), back, &outlen), LT_EINVAL);
}

/* ---- keys --------------------------------------------------------------------------- */

static const lt_alg_t algs[] = {LT_ALG_ES256, LT_ALG_EDDSA};

static void test_alg_names(void **state)
{
    (void)state;
    lt_alg_t a;
    assert_int_equal(lt_alg_parse("ES256", &a), 0);
    assert_int_equal(a, LT_ALG_ES256);
    assert_int_equal(lt_alg_parse("EdDSA", &a), 0);
    assert_int_equal(a, LT_ALG_EDDSA);
    assert_string_equal(lt_alg_name(LT_ALG_ES256), "ES256");
    assert_string_equal(lt_alg_name(LT_ALG_EDDSA), "EdDSA");
    const char *bad[] = {"none", "None", "HS256", "RS256", "es256", "EDDSA", "ES384", "", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lt_alg_parse(bad[i], &a), LT_EINVAL);
}

static void test_key_generate_sign_verify(void **state)
{
    (void)state;
    static const char msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";
    for (size_t a = 0; a < 2; a++) {
        lt_key_t *k = NULL, *k2 = NULL;
        uint8_t sig[LT_SIG_MAX], bad[LT_SIG_MAX];
        size_t siglen = 0;
        assert_int_equal(lt_key_generate(algs[a], &k), 0);
        assert_int_equal(lt_key_generate(algs[a], &k2), 0);
        assert_int_equal(lt_key_alg(k), algs[a]);
        assert_true(lt_key_has_private(k));
        /* kid: 22 base64url characters, different per key. */
        assert_int_equal(strlen(lt_key_kid(k)), 22);
        assert_int_equal(strspn(lt_key_kid(k), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22);
        assert_string_not_equal(lt_key_kid(k), lt_key_kid(k2));

        assert_int_equal(lt_key_sign(k, msg, strlen(msg), sig, &siglen), 0);
        assert_int_equal(siglen, 64); /* ES256: raw R||S, not DER */
        assert_true(lt_key_verify(k, msg, strlen(msg), sig, siglen));
        /* Another message, another key, a flipped bit, a wrong length: all fail. */
        assert_false(lt_key_verify(k, msg, strlen(msg) - 1, sig, siglen));
        assert_false(lt_key_verify(k2, msg, strlen(msg), sig, siglen));
        for (size_t i = 0; i < siglen; i += 7) {
            memcpy(bad, sig, siglen);
            bad[i] ^= 0x80;
            assert_false(lt_key_verify(k, msg, strlen(msg), bad, siglen));
        }
        assert_false(lt_key_verify(k, msg, strlen(msg), sig, siglen - 1));
        memset(bad, 0, sizeof(bad));
        assert_false(lt_key_verify(k, msg, strlen(msg), bad, 64)); /* r = s = 0 */
        memset(bad, 0xff, sizeof(bad));
        assert_false(lt_key_verify(k, msg, strlen(msg), bad, 64)); /* r, s >= n */
        /* Many signatures, so R or S with leading zero bytes (1 in 128 each) get padded. */
        for (int i = 0; i < 300; i++) {
            char m[32];
            snprintf(m, sizeof(m), "message %d", i);
            assert_int_equal(lt_key_sign(k, m, strlen(m), sig, &siglen), 0);
            assert_int_equal(siglen, 64);
            assert_true(lt_key_verify(k, m, strlen(m), sig, siglen));
        }
        lt_key_free(k);
        lt_key_free(k2);
    }
}

static void test_key_der_round_trip(void **state)
{
    (void)state;
    static const char msg[] = "payload";
    for (size_t a = 0; a < 2; a++) {
        lt_key_t *k = NULL, *back = NULL, *x = NULL;
        uint8_t *der = NULL, sig[LT_SIG_MAX];
        size_t n = 0, siglen = 0;
        json_t *j1 = NULL, *j2 = NULL;
        assert_int_equal(lt_key_generate(algs[a], &k), 0);
        assert_int_equal(lt_key_private_der(k, &der, &n), 0);
        assert_true(n > 40 && der[0] == 0x30); /* a DER SEQUENCE */
        assert_int_equal(lt_key_from_private_der(lt_key_kid(k), algs[a], der, n, &back), 0);
        assert_string_equal(lt_key_kid(back), lt_key_kid(k));
        assert_true(lt_key_has_private(back));
        /* Same key: same public JWK, and each verifies the other's signatures. */
        assert_int_equal(lt_key_public_jwk(k, &j1), 0);
        assert_int_equal(lt_key_public_jwk(back, &j2), 0);
        assert_true(json_equal(j1, j2));
        assert_int_equal(lt_key_sign(back, msg, strlen(msg), sig, &siglen), 0);
        assert_true(lt_key_verify(k, msg, strlen(msg), sig, siglen));
        /* Wrong algorithm, trailing bytes, truncation, garbage, bad kid. */
        assert_int_equal(lt_key_from_private_der("kid", algs[1 - a], der, n, &x), LT_EINVAL);
        assert_int_equal(lt_key_from_private_der("kid", algs[a], der, n - 1, &x), LT_EINVAL);
        uint8_t *longer = malloc(n + 1);
        memcpy(longer, der, n);
        longer[n] = 0;
        assert_int_equal(lt_key_from_private_der("kid", algs[a], longer, n + 1, &x), LT_EINVAL);
        free(longer);
        assert_int_equal(lt_key_from_private_der("kid", algs[a], (const uint8_t *)"\x30\x03\x02\x01\x00", 5, &x),
                         LT_EINVAL);
        assert_int_equal(lt_key_from_private_der("", algs[a], der, n, &x), LT_EINVAL);
        assert_int_equal(lt_key_from_private_der("a b", algs[a], der, n, &x), LT_EINVAL);
        assert_null(x);
        lt_wipe(der, n);
        free(der);
        json_decref(j1);
        json_decref(j2);
        lt_key_free(k);
        lt_key_free(back);
    }
}

static void test_key_jwk_round_trip(void **state)
{
    (void)state;
    static const char msg[] = "header.claims";
    for (size_t a = 0; a < 2; a++) {
        lt_key_t *k = NULL, *pub = NULL, *other = NULL;
        json_t *jwk = NULL, *jwk2 = NULL;
        uint8_t sig[LT_SIG_MAX], *der = NULL;
        size_t siglen = 0, n = 0;
        assert_int_equal(lt_key_generate(algs[a], &k), 0);
        assert_int_equal(lt_key_generate(algs[a], &other), 0);
        assert_int_equal(lt_key_public_jwk(k, &jwk), 0);
        assert_string_equal(json_string_value(json_object_get(jwk, "kid")), lt_key_kid(k));
        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), lt_alg_name(algs[a]));
        assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
        assert_null(json_object_get(jwk, "d"));
        assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
        if (algs[a] == LT_ALG_ES256) {
            assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
            assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
            assert_int_equal(strlen(json_string_value(json_object_get(jwk, "y"))), 43);
        } else {
            assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "OKP");
            assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
            assert_null(json_object_get(jwk, "y"));
        }
        assert_int_equal(lt_key_from_public_jwk(jwk, &pub), 0);
        assert_false(lt_key_has_private(pub));
        assert_int_equal(lt_key_alg(pub), algs[a]);
        assert_string_equal(lt_key_kid(pub), lt_key_kid(k));
        assert_int_equal(lt_key_public_jwk(pub, &jwk2), 0);
        assert_true(json_equal(jwk, jwk2));
        /* The imported key verifies the original's signatures, and nothing else. */
        assert_int_equal(lt_key_sign(k, msg, strlen(msg), sig, &siglen), 0);
        assert_true(lt_key_verify(pub, msg, strlen(msg), sig, siglen));
        assert_int_equal(lt_key_sign(other, msg, strlen(msg), sig, &siglen), 0);
        assert_false(lt_key_verify(pub, msg, strlen(msg), sig, siglen));
        /* A public key cannot sign or export a private half. */
        assert_int_equal(lt_key_sign(pub, msg, strlen(msg), sig, &siglen), LT_EINVAL);
        assert_int_equal(lt_key_private_der(pub, &der, &n), LT_EINVAL);
        json_decref(jwk);
        json_decref(jwk2);
        lt_key_free(k);
        lt_key_free(pub);
        lt_key_free(other);
    }
}

static int jwk_rejected(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    lt_key_t *k = NULL;
    if (j == NULL)
        fail_msg("test JWK does not parse: %s", e.text);
    int ret = lt_key_from_public_jwk(j, &k);
    json_decref(j);
    lt_key_free(k);
    return ret == LT_EINVAL && k == NULL;
}

/* RFC 7515 A.3 (ES256) and RFC 8037 A.4 (Ed25519): published keys and signatures. */
#define RFC7515_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define RFC7515_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
#define RFC8037_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
/* JWK openings, so the cases below fit on a line. */
#define EC_K "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\","
#define EC_XY "\"x\":\"" RFC7515_X "\",\"y\":\"" RFC7515_Y "\"}"
#define OKP_K "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\","

static void verify_known(const char *jwk_text, const char *jws)
{
    json_t *j = json_loads(jwk_text, 0, NULL);
    lt_key_t *k = NULL;
    uint8_t sig[LT_SIG_MAX];
    assert_non_null(j);
    assert_int_equal(lt_key_from_public_jwk(j, &k), 0);
    const char *dot = strrchr(jws, '.');
    assert_int_equal(lt_b64url_decode(sig, sizeof(sig), dot + 1, strlen(dot + 1)), 64);
    assert_true(lt_key_verify(k, jws, (size_t)(dot - jws), sig, 64));
    assert_false(lt_key_verify(k, jws, (size_t)(dot - jws) - 1, sig, 64));
    json_decref(j);
    lt_key_free(k);
}

static void test_key_known_answers(void **state)
{
    (void)state;
    verify_known(EC_K EC_XY, "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
                             "LmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8IS"
                             "lSApmWQxfKTUJqPP3-Kg6NU1Q");
    verify_known(OKP_K "\"x\":\"" RFC8037_X "\"}",
                 "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AI"
                 "bQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
}

static void test_key_jwk_rejects(void **state)
{
    (void)state;
    /* The good ones, as controls. */
    assert_false(jwk_rejected(EC_K "\"alg\":\"ES256\",\"use\":\"sig\"," EC_XY));
    assert_false(jwk_rejected("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" RFC8037_X "\"}"));
    const char *bad[] = {
        "[]",
        "{}",
        /* no kid, empty kid, kid with a space */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"\",\"x\":\"" RFC8037_X "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a b\",\"x\":\"" RFC8037_X "\"}",
        /* alg disagreeing with the key, or naming none/HS256 */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"alg\":\"ES256\",\"x\":\"" RFC8037_X "\"}",
        EC_K "\"alg\":\"none\"," EC_XY,
        EC_K "\"alg\":\"HS256\"," EC_XY,
        /* use other than sig */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"use\":\"enc\",\"x\":\"" RFC8037_X "\"}",
        /* a private part */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"d\":\"" RFC8037_X "\",\"x\":\"" RFC8037_X "\"}",
        /* other curves and types */
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"k\",\"x\":\"" RFC7515_X "\",\"y\":\"" RFC7515_Y "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"k\",\"x\":\"" RFC8037_X "\"}",
        "{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        "{\"kty\":\"oct\",\"kid\":\"k\",\"k\":\"" RFC8037_X "\"}",
        /* EC without y, OKP with y */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"x\":\"" RFC7515_X "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" RFC8037_X "\",\"y\":\"" RFC7515_Y "\"}",
        /* padding, standard alphabet, wrong lengths */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" RFC8037_X "=\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"x\":\"AAAA\",\"y\":\"" RFC7515_Y "\"}",
        /* a point off the curve (y of another point) */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"x\":\"" RFC7515_X "\",\"y\":\"" RFC7515_X "\"}",
        /* wrong member types */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":7,\"x\":\"" RFC8037_X "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (!jwk_rejected(bad[i]))
            fail_msg("accepted bad JWK #%zu: %s", i, bad[i]);
}

/* ---- rings -------------------------------------------------------------------------- */

static lt_key_t *gen(lt_alg_t alg)
{
    lt_key_t *k = NULL;
    assert_int_equal(lt_key_generate(alg, &k), 0);
    return k;
}

static void test_keyring_find_active_jwks(void **state)
{
    (void)state;
    /* Ring order: previous, current, next, previous. */
    lt_keyring_entry_t e[4] = {
        {gen(LT_ALG_EDDSA), LT_KEY_PREVIOUS, 100},
        {gen(LT_ALG_ES256), LT_KEY_CURRENT, 0},
        {gen(LT_ALG_EDDSA), LT_KEY_NEXT, 0},
        {gen(LT_ALG_ES256), LT_KEY_PREVIOUS, 200},
    };
    char kids[4][LT_KID_MAX + 1];
    for (int i = 0; i < 4; i++)
        strcpy(kids[i], lt_key_kid(e[i].key));
    lt_keyring_t *kr = NULL;
    assert_int_equal(lt_keyring_create(e, 4, &kr), 0);
    assert_non_null(lt_keyring_active(kr));
    assert_string_equal(lt_key_kid(lt_keyring_active(kr)), kids[1]);
    /* Every state verifies: find() sees them all. */
    for (int i = 0; i < 4; i++) {
        const lt_key_t *k = lt_keyring_find(kr, kids[i], strlen(kids[i]));
        assert_non_null(k);
        assert_string_equal(lt_key_kid(k), kids[i]);
    }
    assert_int_equal(lt_keyring_count(kr), 4);
    assert_int_equal(lt_keyring_at(kr, 2)->state, LT_KEY_NEXT);
    assert_int_equal(lt_keyring_at(kr, 3)->retired_at, 200);
    assert_null(lt_keyring_at(kr, 4));
    assert_int_equal(lt_keyring_count(NULL), 0);
    assert_string_equal(lt_key_state_name(LT_KEY_NEXT), "next");
    assert_string_equal(lt_key_state_name(LT_KEY_CURRENT), "current");
    assert_string_equal(lt_key_state_name(LT_KEY_PREVIOUS), "previous");
    /* Not a prefix, not a longer string, not an unknown kid. */
    assert_null(lt_keyring_find(kr, kids[0], strlen(kids[0]) - 1));
    char longer[LT_KID_MAX + 2];
    snprintf(longer, sizeof(longer), "%sx", kids[0]);
    assert_null(lt_keyring_find(kr, longer, strlen(longer)));
    assert_null(lt_keyring_find(kr, "nope", 4));

    /* JWKS: every key; the current one first, then next, then previous in ring order. */
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(lt_keyring_jwks(kr, &doc, &len), 0);
    assert_int_equal(strlen(doc), len);
    assert_null(strchr(doc, ' ')); /* compact */
    assert_null(strstr(doc, "\"d\""));
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(j);
    json_t *keys = json_object_get(j, "keys");
    assert_int_equal(json_array_size(keys), 4);
    const int want[4] = {1, 2, 0, 3};
    for (int i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(keys, (size_t)i), "kid")), kids[want[i]]);
    /* Every published key imports and matches the ring's key. */
    size_t i;
    json_t *jwk;
    json_array_foreach (keys, i, jwk) {
        lt_key_t *pub = NULL;
        assert_int_equal(lt_key_from_public_jwk(jwk, &pub), 0);
        const lt_key_t *k = lt_keyring_find(kr, lt_key_kid(pub), strlen(lt_key_kid(pub)));
        assert_non_null(k);
        uint8_t sig[LT_SIG_MAX];
        size_t siglen = 0;
        assert_int_equal(lt_key_sign(k, "m", 1, sig, &siglen), 0);
        assert_true(lt_key_verify(pub, "m", 1, sig, siglen));
        lt_key_free(pub);
    }
    json_decref(j);
    free(doc);

    /* A ring without a current key (only next): verifies, publishes, does not sign. */
    lt_keyring_t *nr = NULL;
    lt_keyring_entry_t only_next = {gen(LT_ALG_ES256), LT_KEY_NEXT, 0};
    assert_int_equal(lt_keyring_create(&only_next, 1, &nr), 0);
    assert_null(lt_keyring_active(nr));
    assert_non_null(lt_keyring_find(nr, lt_key_kid(only_next.key), strlen(lt_key_kid(only_next.key))));
    assert_int_equal(lt_keyring_jwks(nr, &doc, NULL), 0);
    assert_non_null(strstr(doc, lt_key_kid(only_next.key)));
    free(doc);
    lt_keyring_unref(nr);

    /* References: the ring lives until the last one goes. */
    assert_ptr_equal(lt_keyring_ref(kr), kr);
    lt_keyring_unref(kr);
    assert_non_null(lt_keyring_active(kr));
    lt_keyring_unref(kr);
    lt_keyring_unref(NULL);
}

static void test_keyring_create_rejects(void **state)
{
    (void)state;
    lt_keyring_t *kr = NULL;
    /* Two current keys; ownership passes anyway (ASan/LSan would see a leak). */
    lt_keyring_entry_t two[2] = {{gen(LT_ALG_ES256), LT_KEY_CURRENT, 0}, {gen(LT_ALG_EDDSA), LT_KEY_CURRENT, 0}};
    assert_int_equal(lt_keyring_create(two, 2, &kr), LT_EINVAL);
    assert_null(kr);
    /* Two next keys are fine for the ring (the database allows one; the ring does not care). */
    lt_keyring_entry_t nexts[2] = {{gen(LT_ALG_ES256), LT_KEY_NEXT, 0}, {gen(LT_ALG_EDDSA), LT_KEY_NEXT, 0}};
    assert_int_equal(lt_keyring_create(nexts, 2, &kr), 0);
    lt_keyring_unref(kr);
    kr = NULL;
    /* An unknown state. */
    lt_keyring_entry_t odd[1] = {{gen(LT_ALG_ES256), (lt_key_state_t)7, 0}};
    assert_int_equal(lt_keyring_create(odd, 1, &kr), LT_EINVAL);
    assert_null(kr);
    /* Duplicate kid. */
    lt_key_t *a = gen(LT_ALG_ES256), *b = NULL;
    uint8_t *der = NULL;
    size_t n = 0;
    assert_int_equal(lt_key_private_der(a, &der, &n), 0);
    assert_int_equal(lt_key_from_private_der(lt_key_kid(a), LT_ALG_ES256, der, n, &b), 0);
    free(der);
    lt_keyring_entry_t dup[2] = {{a, 1, 0}, {b, 0, 5}};
    assert_int_equal(lt_keyring_create(dup, 2, &kr), LT_EINVAL);
    assert_null(kr);
    /* A NULL key. */
    lt_keyring_entry_t nul[2] = {{gen(LT_ALG_ES256), 1, 0}, {NULL, 0, 0}};
    assert_int_equal(lt_keyring_create(nul, 2, &kr), LT_EINVAL);
    /* An empty ring is valid: no active key, empty JWKS. */
    assert_int_equal(lt_keyring_create(NULL, 0, &kr), 0);
    assert_null(lt_keyring_active(kr));
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(lt_keyring_jwks(kr, &doc, &len), 0);
    assert_string_equal(doc, "{\"keys\":[]}");
    free(doc);
    lt_keyring_unref(kr);
}

/* ---- holder ------------------------------------------------------------------------- */

typedef struct holder_test {
    lt_keyring_holder_t h;
    int stop;      /* atomic */
    int reads;     /* by the reader */
    int changes;   /* times the reader saw another ring */
    int failures;  /* by the reader */
} holder_test_t;

static lt_keyring_t *one_key_ring(void)
{
    lt_keyring_entry_t e = {gen(LT_ALG_EDDSA), 1, 0};
    lt_keyring_t *kr = NULL;
    assert_int_equal(lt_keyring_create(&e, 1, &kr), 0);
    return kr;
}

static void *holder_reader(void *arg)
{
    holder_test_t *t = arg;
    const lt_keyring_t *last = NULL;
    while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
        lt_keyring_t *kr = lt_keyring_holder_get(&t->h);
        const lt_key_t *k = lt_keyring_active(kr);
        uint8_t sig[LT_SIG_MAX];
        size_t siglen = 0;
        /* Use the ring after the writer may have swapped it out: our reference keeps it. */
        if (k == NULL || lt_key_sign(k, "x", 1, sig, &siglen) != 0 || !lt_key_verify(k, "x", 1, sig, siglen))
            t->failures++;
        if (kr != last)
            t->changes++;
        last = kr;
        t->reads++;
        lt_keyring_unref(kr);
    }
    return NULL;
}

static void test_keyring_holder_threads(void **state)
{
    (void)state;
    holder_test_t t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(lt_keyring_holder_init(&t.h), 0);
    assert_null(lt_keyring_holder_get(&t.h));
    lt_keyring_holder_set(&t.h, one_key_ring());
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, holder_reader, &t), 0);
    /* Rings are built outside and swapped in while the reader signs with the old ones. */
    for (int i = 0; i < 200; i++)
        lt_keyring_holder_set(&t.h, one_key_ring());
    __atomic_store_n(&t.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.failures, 0);
    assert_true(t.reads > 0);
    assert_true(t.changes >= 1);
    /* get returns a reference of its own that outlives a set. */
    lt_keyring_t *mine = lt_keyring_holder_get(&t.h);
    lt_keyring_holder_set(&t.h, NULL);
    assert_null(lt_keyring_holder_get(&t.h));
    assert_non_null(lt_keyring_active(mine));
    lt_keyring_unref(mine);
    lt_keyring_holder_set(&t.h, one_key_ring());
    lt_keyring_holder_dispose(&t.h);
    lt_keyring_holder_dispose(&t.h); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_wrong_key_aad_tamper),
        cmocka_unit_test(test_seal_versions),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_key_generate_sign_verify),
        cmocka_unit_test(test_key_der_round_trip),
        cmocka_unit_test(test_key_jwk_round_trip),
        cmocka_unit_test(test_key_known_answers),
        cmocka_unit_test(test_key_jwk_rejects),
        cmocka_unit_test(test_keyring_find_active_jwks),
        cmocka_unit_test(test_keyring_create_rejects),
        cmocka_unit_test(test_keyring_holder_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
