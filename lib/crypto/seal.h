/*
 * seal: secrets at rest (private signing keys, later TOTP secrets) under the master key.
 *
 * Format of a sealed value: version (1 byte) || nonce (12 bytes, random) || ciphertext ||
 * GCM tag (16 bytes), AES-256-GCM. The version byte names the master key that sealed it,
 * so the master key can rotate: a reader holds the current key and, during a rotation,
 * the previous ones. `aad` binds a value to its place (e.g. "signing_key:<kid>") so a
 * sealed blob copied into another row does not open there. The version byte is
 * authenticated as well (GCM additional data = version || aad), so relabelling a blob to
 * another key version fails like any other tampering.
 *
 * Nonces are random; with one master key that is safe for about 2^32 seals (NIST SP
 * 800-38D), far beyond what Latch seals.
 *
 * Thread-safety: pure functions, safe from any thread.
 */
#ifndef LT_CRYPTO_SEAL_H
#define LT_CRYPTO_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define LT_SEAL_OVERHEAD (1 + 12 + 16)

typedef struct lt_seal_key {
    uint8_t version;
    uint8_t key[32];
} lt_seal_key_t;

/**
 * Seals `n` bytes of `pt`. `out` needs n + LT_SEAL_OVERHEAD bytes.
 * @return 0, LT_EIO (RNG or cipher failure).
 */
int lt_seal(const lt_seal_key_t *key, const void *aad, size_t aadlen, const void *pt, size_t n, uint8_t *out) LT_MUSTCHECK;

/**
 * Opens a sealed value with whichever of `keys` has its version. `out` needs
 * n - LT_SEAL_OVERHEAD bytes; *outlen receives the plaintext length. On failure `out` is
 * wiped: no unauthenticated plaintext is ever handed out.
 * @return 0, LT_ENOTFOUND (no key of that version), LT_EINVAL (too short, or the tag does
 *         not verify: wrong key, wrong aad or tampered).
 */
int lt_unseal(const lt_seal_key_t *keys, size_t nkeys, const void *aad, size_t aadlen, const uint8_t *in, size_t n,
              uint8_t *out, size_t *outlen) LT_MUSTCHECK;

#endif
