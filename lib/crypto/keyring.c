/*
 * keyring: JWS keys (ES256, Ed25519) on OpenSSL 3 EVP_PKEY, and immutable reference-counted
 * rings of them (see keyring.h).
 *
 * Every key is parsed once into an EVP_PKEY and never changes afterwards. OpenSSL 3 allows
 * one EVP_PKEY to be used by several threads at once for signing and verifying as long as
 * each operation has its own EVP_MD_CTX, which every call here creates and frees.
 *
 * ES256 signatures cross the API in JWS form, R||S as two 32-byte big-endian integers
 * (RFC 7518 §3.4); OpenSSL speaks DER ECDSA-Sig-Value, so sign and verify convert. A JWS
 * signature of any other length is refused before OpenSSL sees it.
 *
 * Base64url inside JWKs is decoded strictly (no padding, no '+' or '/', exact lengths):
 * lt_b64url_decode is lenient on purpose (master keys typed by people), keys are not.
 *
 * Ownership: a ring owns its keys; lt_keyring_create takes them even on failure. A ring is
 * freed when its last reference goes; the holder keeps one reference to its current ring.
 */
#include "crypto/keyring.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* P-256 coordinates and scalars, and Ed25519 public keys: 32 bytes each. */
#define COORD_LEN 32
/* kid: 128 random bits, base64url without padding = 22 characters. */
#define KID_RANDOM_BYTES 16
/* The largest DER ECDSA-Sig-Value for P-256: SEQUENCE{INTEGER(33), INTEGER(33)} = 72. */
#define ES256_DER_MAX 72

struct lt_key {
    char kid[LT_KID_MAX + 1];
    lt_alg_t alg;
    int has_private;
    EVP_PKEY *pkey;
};

const char *lt_alg_name(lt_alg_t alg)
{
    switch (alg) {
    case LT_ALG_ES256:
        return "ES256";
    case LT_ALG_EDDSA:
        return "EdDSA";
    }
    return "unknown";
}

int lt_alg_parse(const char *name, lt_alg_t *out)
{
    /* Case-sensitive, as JWA names are (RFC 7515 §4.1.1). */
    if (name != NULL && strcmp(name, "ES256") == 0)
        *out = LT_ALG_ES256;
    else if (name != NULL && strcmp(name, "EdDSA") == 0)
        *out = LT_ALG_EDDSA;
    else
        return LT_EINVAL;
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* A kid is 1..LT_KID_MAX printable ASCII characters without space (ours are base64url). */
static int kid_ok(const char *kid)
{
    size_t n = kid != NULL ? strlen(kid) : 0;
    if (n == 0 || n > LT_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)kid[i] <= 0x20 || (unsigned char)kid[i] >= 0x7f)
            return 0;
    return 1;
}

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Decodes exactly `want` bytes of strict unpadded base64url. @return 0 or LT_EINVAL. */
static int b64url_exact(const char *s, uint8_t *out, size_t want)
{
    size_t n = strlen(s);
    if (n != lt_b64url_enclen(want))
        return LT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!b64url_char((unsigned char)s[i]))
            return LT_EINVAL;
    return lt_b64url_decode(out, want, s, n) == (long)want ? 0 : LT_EINVAL;
}

static int is_p256(EVP_PKEY *pkey)
{
    char group[64];
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) != 1)
        return 0;
    return strcmp(group, SN_X9_62_prime256v1) == 0;
}

static int pkey_matches(EVP_PKEY *pkey, lt_alg_t alg)
{
    switch (alg) {
    case LT_ALG_ES256:
        return is_p256(pkey);
    case LT_ALG_EDDSA:
        return EVP_PKEY_is_a(pkey, "ED25519");
    }
    return 0;
}

/* Wraps `pkey` (taken) in a new key. On failure frees `pkey`. */
static int key_wrap(const char *kid, lt_alg_t alg, EVP_PKEY *pkey, int has_private, lt_key_t **out)
{
    lt_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        return LT_ENOMEM;
    }
    memcpy(k->kid, kid, strlen(kid) + 1); /* kid_ok() bounded it */
    k->alg = alg;
    k->pkey = pkey;
    k->has_private = has_private;
    *out = k;
    return 0;
}

/* ---- keys -------------------------------------------------------------------------------- */

int lt_key_generate(lt_alg_t alg, lt_key_t **out)
{
    uint8_t rnd[KID_RANDOM_BYTES];
    char kid[LT_KID_MAX + 1];
    EVP_PKEY *pkey = NULL;
    if (out == NULL || (alg != LT_ALG_ES256 && alg != LT_ALG_EDDSA))
        return LT_EINVAL;
    if (lt_random(rnd, sizeof(rnd)) != 0)
        return LT_EIO;
    lt_b64url_encode(kid, rnd, sizeof(rnd));
    if (alg == LT_ALG_ES256)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", SN_X9_62_prime256v1);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pkey == NULL)
        return LT_EIO;
    return key_wrap(kid, alg, pkey, 1, out);
}

int lt_key_from_private_der(const char *kid, lt_alg_t alg, const uint8_t *der, size_t n, lt_key_t **out)
{
    if (out == NULL || der == NULL || !kid_ok(kid) || n == 0 || n > 4096)
        return LT_EINVAL;
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)n);
    if (p8 == NULL)
        return LT_EINVAL;
    /* Trailing bytes mean this is not the value we stored. */
    if (p != der + n) {
        PKCS8_PRIV_KEY_INFO_free(p8);
        return LT_EINVAL;
    }
    EVP_PKEY *pkey = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pkey == NULL)
        return LT_EINVAL;
    if (!pkey_matches(pkey, alg)) {
        EVP_PKEY_free(pkey);
        return LT_EINVAL;
    }
    return key_wrap(kid, alg, pkey, 1, out);
}

static EVP_PKEY *p256_from_xy(const uint8_t x[COORD_LEN], const uint8_t y[COORD_LEN])
{
    uint8_t point[1 + 2 * COORD_LEN];
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
    point[0] = 0x04; /* uncompressed SEC1 point */
    memcpy(point + 1, x, COORD_LEN);
    memcpy(point + 1 + COORD_LEN, y, COORD_LEN);
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto done;
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto done;
    /* fromdata already refuses points off the curve; the explicit check is cheap insurance
     * against an invalid-curve attack should that ever change. */
    if ((chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(chk) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
done:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static const char *jwk_str(const json_t *jwk, const char *name)
{
    return json_string_value(json_object_get(jwk, name));
}

int lt_key_from_public_jwk(const json_t *jwk, lt_key_t **out)
{
    uint8_t x[COORD_LEN], y[COORD_LEN];
    EVP_PKEY *pkey = NULL;
    lt_alg_t alg;
    if (out == NULL || !json_is_object(jwk))
        return LT_EINVAL;
    const char *kty = jwk_str(jwk, "kty"), *crv = jwk_str(jwk, "crv"), *kid = jwk_str(jwk, "kid");
    const char *sx = jwk_str(jwk, "x"), *sy = jwk_str(jwk, "y"), *salg = jwk_str(jwk, "alg");
    const json_t *use = json_object_get(jwk, "use");
    if (kty == NULL || crv == NULL || sx == NULL || !kid_ok(kid))
        return LT_EINVAL;
    /* A private part where a public key is expected is a mistake worth refusing. */
    if (json_object_get(jwk, "d") != NULL)
        return LT_EINVAL;
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        return LT_EINVAL;
    if (strcmp(kty, "EC") == 0 && strcmp(crv, "P-256") == 0 && sy != NULL) {
        alg = LT_ALG_ES256;
        if (b64url_exact(sx, x, COORD_LEN) != 0 || b64url_exact(sy, y, COORD_LEN) != 0)
            return LT_EINVAL;
        pkey = p256_from_xy(x, y);
    } else if (strcmp(kty, "OKP") == 0 && strcmp(crv, "Ed25519") == 0 && json_object_get(jwk, "y") == NULL) {
        alg = LT_ALG_EDDSA;
        if (b64url_exact(sx, x, COORD_LEN) != 0)
            return LT_EINVAL;
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, COORD_LEN);
    } else {
        return LT_EINVAL;
    }
    if (pkey == NULL)
        return LT_EINVAL;
    /* "alg" is optional in a JWK, but when present it must agree with the key type. */
    lt_alg_t named;
    if (json_object_get(jwk, "alg") != NULL && (lt_alg_parse(salg, &named) != 0 || named != alg)) {
        EVP_PKEY_free(pkey);
        return LT_EINVAL;
    }
    return key_wrap(kid, alg, pkey, 0, out);
}

int lt_key_private_der(const lt_key_t *k, uint8_t **der, size_t *n)
{
    if (k == NULL || der == NULL || n == NULL || !k->has_private)
        return LT_EINVAL;
    /* PKCS#8 PrivateKeyInfo for both types: i2d_PrivateKey would write SEC1 for EC keys. */
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k->pkey);
    if (p8 == NULL)
        return LT_ENOMEM;
    int len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    unsigned char *p = buf;
    if (buf == NULL || i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != len) {
        if (buf != NULL)
            lt_wipe(buf, (size_t)len);
        free(buf);
        PKCS8_PRIV_KEY_INFO_free(p8);
        return LT_ENOMEM;
    }
    PKCS8_PRIV_KEY_INFO_free(p8); /* frees (and OpenSSL clears) its copy of the secret */
    *der = buf;
    *n = (size_t)len;
    return 0;
}

static int set_b64(json_t *o, const char *name, const uint8_t *p, size_t n)
{
    char enc[2 * COORD_LEN];
    lt_b64url_encode(enc, p, n);
    return json_object_set_new(o, name, json_string(enc));
}

int lt_key_public_jwk(const lt_key_t *k, json_t **out)
{
    uint8_t x[COORD_LEN], y[COORD_LEN];
    BIGNUM *bx = NULL, *by = NULL;
    int ret = LT_ENOMEM;
    json_t *o = json_object();
    if (o == NULL)
        return LT_ENOMEM;
    if (k->alg == LT_ALG_ES256) {
        if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
            EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1 ||
            BN_bn2binpad(bx, x, COORD_LEN) != COORD_LEN || BN_bn2binpad(by, y, COORD_LEN) != COORD_LEN)
            goto fail;
        if (json_object_set_new(o, "kty", json_string("EC")) != 0 ||
            json_object_set_new(o, "crv", json_string("P-256")) != 0 || set_b64(o, "x", x, COORD_LEN) != 0 ||
            set_b64(o, "y", y, COORD_LEN) != 0)
            goto fail;
    } else {
        size_t xlen = sizeof(x);
        if (EVP_PKEY_get_raw_public_key(k->pkey, x, &xlen) != 1 || xlen != COORD_LEN)
            goto fail;
        if (json_object_set_new(o, "kty", json_string("OKP")) != 0 ||
            json_object_set_new(o, "crv", json_string("Ed25519")) != 0 || set_b64(o, "x", x, COORD_LEN) != 0)
            goto fail;
    }
    if (json_object_set_new(o, "kid", json_string(k->kid)) != 0 ||
        json_object_set_new(o, "alg", json_string(lt_alg_name(k->alg))) != 0 ||
        json_object_set_new(o, "use", json_string("sig")) != 0)
        goto fail;
    *out = o;
    o = NULL;
    ret = 0;
fail:
    BN_free(bx);
    BN_free(by);
    json_decref(o);
    return ret;
}

const char *lt_key_kid(const lt_key_t *k)
{
    return k->kid;
}

lt_alg_t lt_key_alg(const lt_key_t *k)
{
    return k->alg;
}

int lt_key_has_private(const lt_key_t *k)
{
    return k->has_private;
}

/* DER ECDSA-Sig-Value -> JWS R||S. */
static int es256_der_to_raw(const uint8_t *der, size_t derlen, uint8_t raw[2 * COORD_LEN])
{
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    int ok = 0;
    if (sig == NULL)
        return 0;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, COORD_LEN) == COORD_LEN && BN_bn2binpad(s, raw + COORD_LEN, COORD_LEN) == COORD_LEN;
    ECDSA_SIG_free(sig);
    return ok;
}

/* JWS R||S -> DER ECDSA-Sig-Value. @return DER length, or 0. */
static size_t es256_raw_to_der(const uint8_t raw[2 * COORD_LEN], uint8_t der[ES256_DER_MAX])
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, COORD_LEN, NULL), *s = BN_bin2bn(raw + COORD_LEN, COORD_LEN, NULL);
    size_t ret = 0;
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    /* set0 took r and s. */
    int len = i2d_ECDSA_SIG(sig, NULL);
    unsigned char *p = der;
    if (len > 0 && len <= ES256_DER_MAX && i2d_ECDSA_SIG(sig, &p) == len)
        ret = (size_t)len;
    ECDSA_SIG_free(sig);
    return ret;
}

int lt_key_sign(const lt_key_t *k, const void *msg, size_t n, uint8_t *sig, size_t *siglen)
{
    uint8_t der[ES256_DER_MAX];
    size_t len;
    int ret = LT_EIO;
    if (k == NULL || sig == NULL || siglen == NULL || (msg == NULL && n > 0) || !k->has_private)
        return LT_EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return LT_ENOMEM;
    if (k->alg == LT_ALG_ES256) {
        len = sizeof(der);
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
            EVP_DigestSign(ctx, der, &len, msg, n) != 1 || !es256_der_to_raw(der, len, sig))
            goto done;
        *siglen = 2 * COORD_LEN;
    } else {
        /* Ed25519 is "pure": no digest, one-shot only (RFC 8032). */
        len = LT_SIG_MAX;
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 || EVP_DigestSign(ctx, sig, &len, msg, n) != 1)
            goto done;
        *siglen = len;
    }
    ret = 0;
done:
    EVP_MD_CTX_free(ctx);
    return ret;
}

int lt_key_verify(const lt_key_t *k, const void *msg, size_t n, const uint8_t *sig, size_t siglen)
{
    uint8_t der[ES256_DER_MAX];
    int ok = 0;
    /* Both algorithms have fixed 64-byte JWS signatures (RFC 7518 §3.4, RFC 8037 §3.1). */
    if (k == NULL || sig == NULL || siglen != 64 || (msg == NULL && n > 0))
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return 0;
    if (k->alg == LT_ALG_ES256) {
        size_t derlen = es256_raw_to_der(sig, der);
        ok = derlen > 0 && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, der, derlen, msg, n) == 1;
    } else {
        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, n) == 1;
    }
    EVP_MD_CTX_free(ctx);
    return ok;
}

void lt_key_free(lt_key_t *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey); /* OpenSSL clears private material on free */
    free(k);
}

/* ---- rings ------------------------------------------------------------------------------- */

struct lt_keyring {
    int refs; /* atomic */
    size_t n;
    lt_keyring_entry_t *entries;
    const lt_key_t *active;
};

static void ring_free(lt_keyring_t *kr)
{
    for (size_t i = 0; i < kr->n; i++)
        lt_key_free(kr->entries[i].key);
    free(kr->entries);
    free(kr);
}

int lt_keyring_create(const lt_keyring_entry_t *entries, size_t n, lt_keyring_t **out)
{
    lt_keyring_t *kr = calloc(1, sizeof(*kr));
    int ret = LT_ENOMEM;
    if (kr == NULL || (n > 0 && (kr->entries = calloc(n, sizeof(*entries))) == NULL))
        goto fail;
    /* Copy first, so every key is owned by the ring and freed with it on any failure. */
    for (size_t i = 0; i < n; i++)
        kr->entries[kr->n++] = entries[i];
    ret = LT_EINVAL;
    if (out == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const lt_keyring_entry_t *e = &kr->entries[i];
        if (e->key == NULL)
            goto fail;
        if (e->state != LT_KEY_PREVIOUS && e->state != LT_KEY_CURRENT && e->state != LT_KEY_NEXT)
            goto fail;
        if (e->state == LT_KEY_CURRENT) {
            if (kr->active != NULL)
                goto fail;
            kr->active = e->key;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(kr->entries[j].key->kid, e->key->kid) == 0)
                goto fail;
    }
    kr->refs = 1;
    *out = kr;
    return 0;
fail:
    if (kr != NULL && kr->entries != NULL) {
        ring_free(kr); /* owns the copied keys */
    } else {
        for (size_t i = 0; i < n; i++)
            lt_key_free(entries[i].key);
        free(kr);
    }
    return ret;
}

lt_keyring_t *lt_keyring_ref(lt_keyring_t *kr)
{
    if (kr != NULL)
        __atomic_add_fetch(&kr->refs, 1, __ATOMIC_RELAXED);
    return kr;
}

void lt_keyring_unref(lt_keyring_t *kr)
{
    /* acq_rel: the thread that frees sees every other thread's last use of the ring. */
    if (kr != NULL && __atomic_sub_fetch(&kr->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ring_free(kr);
}

const lt_key_t *lt_keyring_active(const lt_keyring_t *kr)
{
    return kr != NULL ? kr->active : NULL;
}

const lt_key_t *lt_keyring_find(const lt_keyring_t *kr, const char *kid, size_t kidlen)
{
    /* A handful of keys: a linear scan beats any index. kids are public, no need for lt_ct_eq. */
    if (kr == NULL || kid == NULL)
        return NULL;
    for (size_t i = 0; i < kr->n; i++) {
        const lt_key_t *k = kr->entries[i].key;
        if (strlen(k->kid) == kidlen && memcmp(k->kid, kid, kidlen) == 0)
            return k;
    }
    return NULL;
}

size_t lt_keyring_count(const lt_keyring_t *kr)
{
    return kr != NULL ? kr->n : 0;
}

const lt_keyring_entry_t *lt_keyring_at(const lt_keyring_t *kr, size_t i)
{
    return kr != NULL && i < kr->n ? &kr->entries[i] : NULL;
}

const char *lt_key_state_name(lt_key_state_t s)
{
    switch (s) {
    case LT_KEY_PREVIOUS:
        return "previous";
    case LT_KEY_CURRENT:
        return "current";
    case LT_KEY_NEXT:
        return "next";
    }
    return "unknown";
}

int lt_keyring_jwks(const lt_keyring_t *kr, char **out, size_t *outlen)
{
    static const lt_key_state_t order[] = {LT_KEY_CURRENT, LT_KEY_NEXT, LT_KEY_PREVIOUS};
    json_t *doc = json_object(), *keys = json_array(), *jwk = NULL;
    int ret = LT_ENOMEM;
    if (doc == NULL || keys == NULL || json_object_set(doc, "keys", keys) != 0)
        goto fail;
    /* The current key first: clients that take the first matching key get the signing one;
     * then the key about to sign, then the ones still verifying. */
    for (size_t pass = 0; pass < sizeof(order) / sizeof(order[0]) && kr != NULL; pass++) {
        for (size_t i = 0; i < kr->n; i++) {
            const lt_keyring_entry_t *e = &kr->entries[i];
            if (e->state != order[pass])
                continue;
            if (lt_key_public_jwk(e->key, &jwk) != 0 || json_array_append_new(keys, jwk) != 0)
                goto fail;
            jwk = NULL;
        }
    }
    char *s = json_dumps(doc, JSON_COMPACT);
    if (s == NULL)
        goto fail;
    *out = s;
    if (outlen != NULL)
        *outlen = strlen(s);
    ret = 0;
fail:
    json_decref(keys);
    json_decref(doc);
    return ret;
}

/* ---- holder ------------------------------------------------------------------------------ */

/* The generic holder (base.h) speaks void *; calling the typed functions through a cast
 * function pointer would be undefined behaviour, hence these adapters. */
static void *holder_ref(void *kr)
{
    return lt_keyring_ref(kr);
}

static void holder_unref(void *kr)
{
    lt_keyring_unref(kr);
}

int lt_keyring_holder_init(lt_keyring_holder_t *h)
{
    return lt_holder_init(&h->h, holder_ref, holder_unref);
}

lt_keyring_t *lt_keyring_holder_get(lt_keyring_holder_t *h)
{
    return lt_holder_get(&h->h);
}

void lt_keyring_holder_set(lt_keyring_holder_t *h, lt_keyring_t *kr)
{
    lt_holder_set(&h->h, kr);
}

void lt_keyring_holder_dispose(lt_keyring_holder_t *h)
{
    if (h != NULL)
        lt_holder_dispose(&h->h);
}
