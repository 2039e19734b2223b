/*
 * mfa/recovery: one-time recovery codes, their canonical form, and their stored MAC.
 * No state; keys derived here live on the stack and are wiped before returning.
 */
#include "mfa/mfa.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* 10 symbols of 5 bits: 50 bits per code, drawn from 7 random bytes (56 bits). */
#define CODE_RANDOM_BYTES 7

static const char alphabet[] = LT_MFA_RECOVERY_ALPHABET;

_Static_assert(sizeof(alphabet) - 1 == 32, "5 bits per symbol need exactly 32 symbols");
_Static_assert(CODE_RANDOM_BYTES * 8 >= LT_MFA_RECOVERY_LEN * 5, "not enough random bits per code");

int lt_mfa_recovery_new(char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1])
{
    uint8_t rnd[LT_MFA_RECOVERY_COUNT][CODE_RANDOM_BYTES];

    if (lt_random(rnd, sizeof(rnd)) != 0) {
        for (int i = 0; i < LT_MFA_RECOVERY_COUNT; i++)
            codes[i][0] = '\0';
        return LT_EIO;
    }
    for (int i = 0; i < LT_MFA_RECOVERY_COUNT; i++) {
        uint64_t bits = 0;
        for (int j = 0; j < CODE_RANDOM_BYTES; j++)
            bits = bits << 8 | rnd[i][j];
        /* Whole 5-bit groups index a 32-symbol alphabet: every symbol equally likely. */
        for (int k = 0; k < LT_MFA_RECOVERY_LEN; k++) {
            codes[i][k] = alphabet[bits & 31];
            bits >>= 5;
        }
        codes[i][LT_MFA_RECOVERY_LEN] = '\0';
    }
    lt_wipe(rnd, sizeof(rnd));
    return 0;
}

int lt_mfa_recovery_normalize(const char *in, size_t n, char out[LT_MFA_RECOVERY_LEN + 1])
{
    size_t len = 0;

    out[0] = '\0';
    if (!in)
        return LT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == ' ' || c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        /* c != '\0': strchr would find the terminator. */
        if (c == '\0' || !strchr(alphabet, c) || len == LT_MFA_RECOVERY_LEN)
            goto fail;
        out[len++] = c;
    }
    if (len != LT_MFA_RECOVERY_LEN)
        goto fail;
    out[len] = '\0';
    return 0;
fail:
    lt_wipe(out, LT_MFA_RECOVERY_LEN + 1);
    out[0] = '\0';
    return LT_EINVAL;
}

/* Domain separation: this key is for recovery codes and nothing else. */
static const char kdf_label[] = "latch recovery codes";

int lt_mfa_recovery_hash(uint8_t key_version, const uint8_t master_key[32], const char *user_id,
                         const char code[LT_MFA_RECOVERY_LEN + 1], char hex[LT_MFA_RECOVERY_HASH_HEX_LEN + 1])
{
    uint8_t kin[sizeof(kdf_label) - 1 + 32];
    uint8_t key[32];
    uint8_t out[1 + 32];
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t outl = 0;
    int ret = LT_EIO;

    hex[0] = '\0';
    if (!master_key || !user_id || !code || strnlen(code, LT_MFA_RECOVERY_LEN + 1) != LT_MFA_RECOVERY_LEN)
        return LT_EINVAL;
    memcpy(kin, kdf_label, sizeof(kdf_label) - 1);
    memcpy(kin + sizeof(kdf_label) - 1, master_key, 32);
    if (lt_sha256(kin, sizeof(kin), key) != 0)
        goto done;

    /* user_id ":" code: a code copied between accounts yields a different MAC. */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!(mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) || !(ctx = EVP_MAC_CTX_new(mac)) ||
        EVP_MAC_init(ctx, key, sizeof(key), params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)user_id, strlen(user_id)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)":", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)code, LT_MFA_RECOVERY_LEN) != 1 ||
        EVP_MAC_final(ctx, out + 1, &outl, sizeof(out) - 1) != 1 || outl != sizeof(out) - 1)
        goto done;
    out[0] = key_version;
    lt_hex_encode(hex, out, sizeof(out));
    ret = 0;
done:
    /* The context held the derived key. */
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    lt_wipe(kin, sizeof(kin));
    lt_wipe(key, sizeof(key));
    lt_wipe(out, sizeof(out));
    return ret;
}
