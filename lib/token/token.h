/*
 * token: access tokens (JWT, RFC 9068) issued and verified over a keyring, and the signing
 * keys' home in PostgreSQL.
 *
 * Issue: header {"alg", "typ": "at+jwt", "kid"} and claims {iss, aud, sub, sid, jti, iat,
 * nbf, exp, tenant, roles, scope, amr, acr?, auth_time}, signed with the ring's active key.
 *
 * Verify accepts a token only when all of these hold: three base64url parts of sane
 * length; the header is a JSON object with typ "at+jwt" (case-insensitive, "application/"
 * prefix allowed per RFC 9068 §4), a kid present in the ring and an alg equal to that
 * key's algorithm (so "none", HS256 and any other confusion fail); the signature verifies;
 * iss and aud equal the expected values; exp > now - leeway, nbf and iat <= now + leeway;
 * sub, jti, sid and tenant are strings. Failure reasons are short static strings for logs
 * (never the token).
 *
 * Details of "sane": the whole token at most LT_TOKEN_MAX bytes, the header part at most
 * 512 characters, the signature exactly 86 (64 bytes, both algorithms); base64url strictly
 * (no '=', '+' or '/'); header and claims JSON objects without duplicate members; a "crit"
 * header is refused (no extension is understood); iat, nbf and exp are required integers;
 * aud may be a string or an array of strings (RFC 7519 §4.1.3) that holds the expected one.
 *
 * Thread-safety: pure functions over immutable rings, safe from any thread.
 */
#ifndef LT_TOKEN_H
#define LT_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "crypto/keyring.h"
#include "crypto/seal.h"

/* Longest compact JWT accepted by verify. */
#define LT_TOKEN_MAX 8192
/* Clock leeway for exp/nbf/iat, seconds. */
#define LT_TOKEN_LEEWAY 30

typedef struct lt_token_claims {
    const char *iss, *aud, *sub, *sid, *tenant;
    const char *scope;      /* space-separated; may be "" */
    const char *acr;        /* may be NULL */
    json_t *roles;          /* array of strings (borrowed) */
    json_t *amr;            /* array of strings (borrowed) */
    int64_t auth_time;      /* unix seconds */
    int64_t now;            /* iat = nbf = now */
    int ttl;                /* exp = now + ttl */
} lt_token_claims_t;

/**
 * Issues a signed access token with a fresh random jti.
 * @param jti_out  receives the jti (NUL-terminated; at least 32 bytes), may be NULL.
 * @return 0 (*out malloc'ed, NUL-terminated), LT_ESTATE (ring without an active key),
 *         LT_EINVAL (missing claim), LT_EIO, LT_ENOMEM.
 */
int lt_token_issue(const lt_keyring_t *kr, const lt_token_claims_t *c, char **out, char *jti_out, size_t jti_cap)
    LT_MUSTCHECK;

typedef struct lt_token_verify_opts {
    const char *iss;
    const char *aud; /* NULL: any audience */
    int64_t now;     /* unix seconds; 0 means the wall clock */
    int leeway;      /* seconds; 0 means LT_TOKEN_LEEWAY; negative is refused */
} lt_token_verify_opts_t;

/*
 * A verified token: `claims` owns everything; the pointers borrow from it. `kid` is a copy,
 * because the ring that verified the token may be dropped before the token is.
 * An absent auth_time reads as 0; absent scope/roles/amr as "" and empty arrays.
 */
typedef struct lt_token {
    json_t *claims;
    const char *sub, *sid, *tenant, *jti, *scope;
    json_t *roles, *amr; /* arrays (may be empty arrays, never NULL) */
    int64_t iat, nbf, exp, auth_time;
    char kid[LT_KID_MAX + 1];
} lt_token_t;

/**
 * Verifies a compact JWS access token.
 * @param why  receives a static reason on failure (may be NULL).
 * @return 0 (*out filled; free with lt_token_free), LT_EINVAL (rejected), LT_ENOMEM.
 *         On failure *out is left untouched.
 */
int lt_token_verify(const lt_keyring_t *kr, const char *jwt, size_t n, const lt_token_verify_opts_t *o, lt_token_t *out,
                    const char **why) LT_MUSTCHECK;

void lt_token_free(lt_token_t *t);

/* 1 if the verified token's `roles` holds `role`. */
int lt_token_has_role(const lt_token_t *t, const char *role);

/* ---- signing keys in PostgreSQL (blocking; start-up and latchctl only) --------------- */

typedef struct lt_token_keystore_opts {
    const char *conninfo;
    const lt_seal_key_t *seal_keys; /* [0] seals new keys; all may open */
    size_t nseal_keys;
    lt_alg_t alg;                   /* of a key created when none is active */
    int publish_retired_s;          /* retired keys younger than this stay in the ring */
} lt_token_keystore_opts_t;

/**
 * Loads the signing keys (active + retired within publish_retired_s), creating and storing
 * an active key (sealed; audit event "key.created") when there is none. Safe against
 * several instances starting at once (at most one active key survives: the unique index).
 * `alg` only chooses the algorithm of a key created here; an existing active key of another
 * algorithm is kept. The private half is sealed with seal_keys[0] under the aad
 * "signing_key:<kid>"; the audit event (actor "system", target the kid, details {"alg"}) is
 * written by latch_audit_append in the same transaction as the insert, once per stored key.
 * @return 0 and a ring (one reference), LT_EUNAVAIL (cannot connect), LT_EINVAL (a key
 *         does not unseal: wrong master key; `err` names the kid), LT_EIO, LT_ENOMEM.
 */
int lt_token_keystore_load(const lt_token_keystore_opts_t *o, lt_keyring_t **out, char *err, size_t errlen) LT_MUSTCHECK;

#endif
