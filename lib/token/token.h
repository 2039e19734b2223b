/*
 * token: access tokens (JWT, RFC 9068) issued and verified over a keyring, and the signing
 * keys' home in PostgreSQL.
 *
 * Issue: header {"alg", "typ": "at+jwt", "kid"} and claims {iss, aud, sub, sid?, jti, iat,
 * nbf, exp, tenant, roles, scope, amr?, acr?, auth_time?, client_id, username?}, signed with
 * the ring's active key. client_credentials tokens carry no sid, auth_time or username.
 *
 * Verify accepts a token only when all of these hold: three base64url parts of sane
 * length; the header is a JSON object with typ "at+jwt" (case-insensitive, "application/"
 * prefix allowed per RFC 9068 §4), a kid present in the ring and an alg equal to that
 * key's algorithm (so "none", HS256 and any other confusion fail); the signature verifies;
 * iss and aud equal the expected values; exp > now - leeway, nbf and iat <= now + leeway;
 * sub, jti and client_id (RFC 9068 §2.2) are non-empty strings and tenant a string; sid,
 * username and acr are absent or non-empty strings (client_credentials tokens have no sid).
 * Failure reasons are short static strings for logs (never the token).
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
/* client_id of the tokens /v1/auth/login and /v1/auth/refresh issue (no registered client). */
#define LT_TOKEN_FIRST_PARTY_CLIENT "latch"

typedef struct lt_token_claims {
    const char *iss, *aud, *sub, *tenant;
    const char *sid;        /* NULL: no sid claim (client_credentials tokens) */
    const char *client_id;  /* required, non-empty (see lt_token_issue for NULL) */
    const char *username;   /* NULL: no username claim */
    const char *scope;      /* space-separated; may be "" */
    const char *acr;        /* NULL or "": no acr claim */
    json_t *roles;          /* array of strings (borrowed); NULL: [] */
    json_t *amr;            /* array of strings (borrowed); NULL: no amr claim */
    int64_t auth_time;      /* unix seconds; 0: no auth_time claim */
    int64_t now;            /* iat = nbf = now */
    int ttl;                /* exp = now + ttl */
} lt_token_claims_t;

/**
 * Issues a signed access token with a fresh random jti.
 * @param jti_out  receives the jti (NUL-terminated; at least 32 bytes), may be NULL.
 * @note A NULL client_id is read as LT_TOKEN_FIRST_PARTY_CLIENT for now (callers written
 *       before client_id existed); an empty client_id, sid or username is LT_EINVAL.
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
 * An absent auth_time reads as 0; absent scope/roles/amr as "" and empty arrays (amr is
 * then added to `claims` too); absent sid/username/acr as NULL.
 */
typedef struct lt_token {
    json_t *claims;
    const char *sub, *sid, *tenant, *jti, *scope;
    const char *client_id, *username, *acr;
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

/* ---- signing keys in PostgreSQL (keystore.c) ------------------------------------------ */

/*
 * Keys rotate next -> current -> previous -> retired (sql/0009_keys.sql, lt_key_state_t).
 * The blocking functions (load, rotate, maintain) are for start-up, the control and
 * maintenance threads and latchctl: never a worker loop. The worker path of a rotation is
 * lt_token_key_seal_new plus the statement LT_TOKEN_KEYS_ADD_NEXT.
 */
struct pg_conn;
struct lt_store_stmt;

typedef struct lt_token_keystore_opts {
    const char *conninfo;
    const lt_seal_key_t *seal_keys; /* [0] seals new keys; all may open */
    size_t nseal_keys;
    lt_alg_t alg;                   /* of keys created here (first key, rotations) */
    int publish_retired_s;          /* a previous key stays published this long after it
                                       stopped signing: access_token_ttl + leeway */
} lt_token_keystore_opts_t;

/**
 * Loads the signing keys (next, current, and previous ones that stopped signing within
 * publish_retired_s), creating and storing a current key (sealed; audit event
 * "key.created") when there is none. Safe against several instances starting at once (at
 * most one current key survives: the unique index). `alg` only chooses the algorithm of a
 * key created here; an existing current key of another algorithm is kept. The private half
 * is sealed with seal_keys[0] under the aad "signing_key:<kid>"; the audit event (actor
 * "system", target the kid, details {"alg"}) is written by latch_audit_append in the same
 * transaction as the insert, once per stored key.
 * @return 0 and a ring (one reference), LT_EUNAVAIL (cannot connect), LT_EINVAL (a key
 *         does not unseal: wrong master key; `err` names the kid), LT_EIO, LT_ENOMEM.
 */
int lt_token_keystore_load(const lt_token_keystore_opts_t *o, lt_keyring_t **out, char *err, size_t errlen) LT_MUSTCHECK;

/**
 * Starts a rotation (latchctl keys rotate): generates a key of o->alg, seals it like the
 * first key and stores it as `next`, to start signing `prepublish_s` seconds from now by
 * the database's clock (audit "key.created" by `actor`, NOTIFY latch_keys). Refuses when
 * the configured master key cannot open the keys already stored (a key sealed under
 * another master key would leave every instance unable to sign once it activates).
 * @param kid_out       LT_KID_MAX + 1 bytes; may be NULL.
 * @param activates_at  unix seconds; may be NULL.
 * @return 0, LT_EEXIST (a next key is pending already), LT_EUNAVAIL, LT_EINVAL (wrong master
 *         key, bad options), LT_EIO, LT_ENOMEM.
 */
int lt_token_keys_rotate(const lt_token_keystore_opts_t *o, int prepublish_s, const char *actor, char *kid_out,
                         int64_t *activates_at, char *err, size_t errlen) LT_MUSTCHECK;

/**
 * One maintenance step on the blocking connection `c` (o->conninfo is not used): promotes
 * a due next key, retires previous keys older than o->publish_retired_s and, when
 * rotation_interval_s > 0 and the current key has signed for rotation_interval_s -
 * prepublish_s, adds a next key (actor "system"; another instance doing it first is not an
 * error). Every change NOTIFYs latch_keys, so each instance reloads its ring from that.
 * @param changed  may be NULL; 1 when this call changed anything.
 * @return 0, LT_EUNAVAIL (the connection is bad: reconnect), LT_EIO, LT_EINVAL, LT_ENOMEM.
 */
int lt_token_keys_maintain(struct pg_conn *c, const lt_token_keystore_opts_t *o, int rotation_interval_s,
                           int prepublish_s, int *changed, char *err, size_t errlen) LT_MUSTCHECK;

/**
 * Every key as the admin list shows it (latchctl keys list): the JSON text {"items": [{kid,
 * alg, state, created_at, activates_at, retired_at}, ...]}, next first, then current,
 * previous, and the most recent retired keys (at most `limit` in all). Blocking.
 * @return 0 (*json malloc'ed), LT_EUNAVAIL, LT_EIO, LT_ENOMEM.
 */
int lt_token_keys_list(const char *conninfo, int limit, char **json, char *err, size_t errlen) LT_MUSTCHECK;

/*
 * A new key of o->alg ready for LT_TOKEN_KEYS_ADD_NEXT: the text parameters kid, alg,
 * public JWK (compact JSON) and the sealed private half as bytea hex ("\x..."). The private
 * key itself is gone once this returns.
 */
typedef struct lt_token_new_key {
    char kid[LT_KID_MAX + 1];
    const char *alg;  /* static */
    char *jwk_text;   /* malloc'ed */
    char *sealed_hex; /* malloc'ed */
} lt_token_new_key_t;

/** @return 0, LT_EINVAL (no seal key), LT_EIO, LT_ENOMEM; on failure nothing to free. */
int lt_token_key_seal_new(const lt_token_keystore_opts_t *o, lt_token_new_key_t *out, char *err,
                          size_t errlen) LT_MUSTCHECK;
void lt_token_new_key_free(lt_token_new_key_t *k);

/*
 * Statements for the worker path (lib/api/keys.c), text parameters:
 *   ADD_NEXT  kid, alg, public JWK, sealed hex, prepublish seconds, actor, ip, request_id
 *             -> no row when a next key exists, else one row (body jsonb {kid, alg, state,
 *             created_at, activates_at, retired_at}, activates_at unix seconds)
 *   LIST      limit -> one row: {"items": [key, ...]}
 */
typedef enum { LT_TOKEN_KEYS_ADD_NEXT, LT_TOKEN_KEYS_LIST, LT_TOKEN_KEYS_NSTMTS } lt_token_keys_stmt_id_t;
const struct lt_store_stmt *lt_token_keys_stmt(lt_token_keys_stmt_id_t id);
/** Registers them (once, at start-up). @return as lt_store_stmt_register. */
int lt_token_keys_statements(void) LT_MUSTCHECK;

#endif
