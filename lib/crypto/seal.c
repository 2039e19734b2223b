/*
 * seal: AES-256-GCM sealing of secrets at rest (see seal.h for the format).
 *
 * The version byte is authenticated too: it is fed to GCM as the first byte of the
 * additional data, ahead of the caller's aad, so a blob whose version byte is rewritten to
 * point at another master key fails the tag even if that key happened to be the same.
 *
 * Nonces are 96 random bits per seal. With one master key that bounds safe use to about
 * 2^32 seals (NIST SP 800-38D §8.3); Latch seals a handful of keys and TOTP secrets per
 * user, far below that.
 *
 * Thread-safety: pure functions; each call has its own EVP_CIPHER_CTX.
 */
#include "crypto/seal.h"

#include <limits.h>
#include <openssl/evp.h>
#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN 16

/* Runs one GCM pass. `enc` 1 seals (tag written to `tag`), 0 opens (tag checked). */
static int gcm(int enc, const uint8_t key[32], const uint8_t nonce[NONCE_LEN], uint8_t version, const void *aad,
               size_t aadlen, const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[TAG_LEN])
{
    int ret = LT_EIO, len = 0;
    uint8_t fin[16]; /* GCM's final step writes no bytes; this keeps `out` untouched when n == 0 */
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    /* EVP takes int lengths; sealed values are small, but never let a size_t wrap. */
    if (ctx == NULL || n > (size_t)INT_MAX / 2 || aadlen > (size_t)INT_MAX / 2)
        goto fail;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
        goto fail;
    if (EVP_CipherUpdate(ctx, NULL, &len, &version, 1) != 1)
        goto fail;
    if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto fail;
    if (n > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        goto fail;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto fail;
    if (EVP_CipherFinal_ex(ctx, fin, &len) != 1) {
        /* On open, a failed final is a tag mismatch: wrong key, wrong aad or tampered. */
        ret = enc ? LT_EIO : LT_EINVAL;
        goto fail;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto fail;
    ret = 0;
fail:
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

int lt_seal(const lt_seal_key_t *key, const void *aad, size_t aadlen, const void *pt, size_t n, uint8_t *out)
{
    if (key == NULL || out == NULL || (pt == NULL && n > 0) || (aad == NULL && aadlen > 0))
        return LT_EINVAL;
    out[0] = key->version;
    if (lt_random(out + 1, NONCE_LEN) != 0)
        return LT_EIO;
    int ret = gcm(1, key->key, out + 1, key->version, aad, aadlen, pt, n, out + 1 + NONCE_LEN,
                  out + 1 + NONCE_LEN + n);
    if (ret != 0)
        lt_wipe(out, n + LT_SEAL_OVERHEAD);
    return ret;
}

int lt_unseal(const lt_seal_key_t *keys, size_t nkeys, const void *aad, size_t aadlen, const uint8_t *in, size_t n,
              uint8_t *out, size_t *outlen)
{
    if (in == NULL || outlen == NULL || (aad == NULL && aadlen > 0) || (keys == NULL && nkeys > 0))
        return LT_EINVAL;
    if (n < LT_SEAL_OVERHEAD)
        return LT_EINVAL;
    const lt_seal_key_t *key = NULL;
    for (size_t i = 0; i < nkeys && key == NULL; i++)
        if (keys[i].version == in[0])
            key = &keys[i];
    if (key == NULL)
        return LT_ENOTFOUND;
    size_t ctlen = n - LT_SEAL_OVERHEAD;
    if (out == NULL && ctlen > 0)
        return LT_EINVAL;
    uint8_t tag[TAG_LEN];
    memcpy(tag, in + n - TAG_LEN, TAG_LEN);
    int ret = gcm(0, key->key, in + 1, in[0], aad, aadlen, in + 1 + NONCE_LEN, ctlen, out, tag);
    if (ret != 0) {
        /* Never hand out plaintext that failed authentication. */
        if (ctlen > 0)
            lt_wipe(out, ctlen);
        return ret;
    }
    *outlen = ctlen;
    return 0;
}
