/*
 * keyring: JWS signing keys on OpenSSL EVP, parsed once and shared.
 *
 * A key (lt_key_t) is an EVP_PKEY with its kid and algorithm. ES256 signatures are the
 * raw 64-byte R||S form JWS requires (RFC 7518 §3.4), converted from and to OpenSSL's DER
 * ECDSA-Sig-Value; EdDSA is Ed25519 (RFC 8037). The algorithm is fixed per key: a
 * verifier never takes it from a token.
 *
 * A keyring (lt_keyring_t) is an immutable set of keys: the current one (signs) and every
 * key that may verify (next, current, previous; see lt_key_state_t). It is reference-counted so the
 * control thread can build a new ring and swap it in (lt_keyring_holder_t) while workers
 * keep using the old one until they drop it.
 *
 * Thread-safety: keys and rings are immutable after construction and safe to share;
 * sign/verify may run on any thread at once (each call uses its own EVP_MD_CTX).
 */
#ifndef LT_CRYPTO_KEYRING_H
#define LT_CRYPTO_KEYRING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum { LT_ALG_ES256 = 1, LT_ALG_EDDSA = 2 } lt_alg_t;

/* "ES256" / "EdDSA". */
const char *lt_alg_name(lt_alg_t alg);
/** @return 0 and *out, or LT_EINVAL for any other name (including "none"). */
int lt_alg_parse(const char *name, lt_alg_t *out) LT_MUSTCHECK;

typedef struct lt_key lt_key_t;

/* Largest raw signature of any supported algorithm (ES256: 64, Ed25519: 64). */
#define LT_SIG_MAX 64
/* Generated kids are 22 base64url chars of 128 random bits; a kid read from storage or a
 * JWK may be 1..LT_KID_MAX printable ASCII characters without space. */
#define LT_KID_MAX 64

/** A new random key pair with a random kid. @return 0, LT_EIO, LT_ENOMEM. */
int lt_key_generate(lt_alg_t alg, lt_key_t **out) LT_MUSTCHECK;

/**
 * A key from its private half in PKCS#8 DER (as stored, after lt_unseal). The whole input
 * must be one PrivateKeyInfo (no trailing bytes); ES256 keys must be on P-256.
 * @return 0, LT_EINVAL (not a key of `alg`, or a bad kid), LT_ENOMEM.
 */
int lt_key_from_private_der(const char *kid, lt_alg_t alg, const uint8_t *der, size_t n, lt_key_t **out) LT_MUSTCHECK;

/**
 * A verify-only key from a public JWK (as published; for tests and foreign keys): kty EC
 * with crv P-256, x and y, or kty OKP with crv Ed25519 and x; kid required. Coordinates are
 * strict base64url of exactly 32 bytes; an EC point must lie on the curve. Refused: a JWK
 * with a private part ("d"), "use" other than "sig", or an "alg" that is not the key's.
 * @return 0, LT_EINVAL, LT_ENOMEM.
 */
int lt_key_from_public_jwk(const json_t *jwk, lt_key_t **out) LT_MUSTCHECK;

/** The private half as PKCS#8 DER (malloc'ed; wipe and free it). @return 0, LT_EINVAL (public-only key), LT_ENOMEM. */
int lt_key_private_der(const lt_key_t *k, uint8_t **der, size_t *n) LT_MUSTCHECK;

/** The public JWK {kty, crv, x[, y], kid, alg, use: "sig"}. @return 0 and a new reference, or LT_ENOMEM. */
int lt_key_public_jwk(const lt_key_t *k, json_t **out) LT_MUSTCHECK;

const char *lt_key_kid(const lt_key_t *k);
lt_alg_t lt_key_alg(const lt_key_t *k);
int lt_key_has_private(const lt_key_t *k);

/**
 * Signs `msg` in JWS form (ES256: R||S, 64 bytes; EdDSA: 64 bytes); `sig` needs LT_SIG_MAX
 * bytes. @return 0, LT_EINVAL (public-only key), LT_ENOMEM, LT_EIO.
 */
int lt_key_sign(const lt_key_t *k, const void *msg, size_t n, uint8_t *sig, size_t *siglen) LT_MUSTCHECK;

/* @return 1 if `sig` (JWS form, exactly 64 bytes) is a valid signature of `msg` under `k`, else 0. */
int lt_key_verify(const lt_key_t *k, const void *msg, size_t n, const uint8_t *sig, size_t siglen);

void lt_key_free(lt_key_t *k);

/* ---- rings ---------------------------------------------------------------------------- */

typedef struct lt_keyring lt_keyring_t;

/*
 * Where a key is in its rotation (sql/0009_keys.sql): next (published, verifies, does not
 * sign yet) -> current (signs) -> previous (published, verifies only) -> retired (not in
 * any ring). A next key verifies too: another instance may have promoted it a moment
 * before this one reloads. The values are chosen so that the older positional initialiser
 * {key, active, retired_at} keeps its meaning (1: current, 0: previous).
 */
typedef enum { LT_KEY_PREVIOUS = 0, LT_KEY_CURRENT = 1, LT_KEY_NEXT = 2 } lt_key_state_t;

/* "previous" / "current" / "next". */
const char *lt_key_state_name(lt_key_state_t s);

typedef struct lt_keyring_entry {
    lt_key_t *key;          /* the ring takes ownership */
    lt_key_state_t state;   /* at most one entry is current; it signs */
    int64_t retired_at;     /* previous: unix seconds it stopped signing (informational); else 0 */
} lt_keyring_entry_t;

/**
 * A ring from `n` entries (ownership of every key passes to the ring, also on failure).
 * `n` may be 0 (a ring with no key). A current key without its private half is allowed
 * (a verify-only ring); lt_token_issue then answers LT_ESTATE.
 * @return 0 (one reference), LT_EINVAL (two current keys, an unknown state, duplicate kid,
 *         NULL key), LT_ENOMEM.
 */
int lt_keyring_create(const lt_keyring_entry_t *entries, size_t n, lt_keyring_t **out) LT_MUSTCHECK;

lt_keyring_t *lt_keyring_ref(lt_keyring_t *kr);
void lt_keyring_unref(lt_keyring_t *kr);

/* The current (signing) key, or NULL if the ring has none. */
const lt_key_t *lt_keyring_active(const lt_keyring_t *kr);
/* The key with `kid` (in any state: every key of a ring verifies), or NULL. */
const lt_key_t *lt_keyring_find(const lt_keyring_t *kr, const char *kid, size_t kidlen);
/* The number of keys, and entry `i` in ring order (NULL when out of range). */
size_t lt_keyring_count(const lt_keyring_t *kr);
const lt_keyring_entry_t *lt_keyring_at(const lt_keyring_t *kr, size_t i);

/**
 * The JWKS document {"keys": [...]}, compact: every key of the ring, the current key first
 * (clients that take the first usable key get the signing one), then next keys, then
 * previous keys, each group in ring order. Which keys a ring holds is the keystore's
 * decision (a previous key stays until its last token has expired). Build it once per
 * ring and cache it: it is not cheap to render per request.
 * @return 0 (*out malloc'ed, NUL-terminated; *outlen may be NULL), LT_ENOMEM.
 */
int lt_keyring_jwks(const lt_keyring_t *kr, char **out, size_t *outlen) LT_MUSTCHECK;

/*
 * Holds the current ring for readers on many threads: base's lt_holder_t, typed for rings
 * (wrapped in a struct so a clients holder cannot be passed by mistake). get() returns a
 * new reference (drop it with lt_keyring_unref), or NULL while no ring was set; set() swaps
 * in a new ring (taking the caller's reference; NULL allowed) and drops the holder's
 * reference to the old one outside the lock.
 */
typedef struct lt_keyring_holder {
    lt_holder_t h; /* private */
} lt_keyring_holder_t;

/** @return 0, LT_ENOMEM, LT_EIO. The holder starts empty: get() returns NULL until set(). */
int lt_keyring_holder_init(lt_keyring_holder_t *h) LT_MUSTCHECK;
lt_keyring_t *lt_keyring_holder_get(lt_keyring_holder_t *h);
void lt_keyring_holder_set(lt_keyring_holder_t *h, lt_keyring_t *kr);
/* Drops the held ring and the lock; idempotent. No get/set may run concurrently. */
void lt_keyring_holder_dispose(lt_keyring_holder_t *h);

#endif
