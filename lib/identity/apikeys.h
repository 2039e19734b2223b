/*
 * apikeys: API keys, long-lived credentials of a user or an OAuth client of a tenant, and
 * the in-memory snapshot of the live ones that every hot path verifies them against.
 *
 * A key reads lt_ak_<key_id>_<secret>:
 *   key_id  16 characters of RFC 4648 base32, lower case ([a-z2-7]), 80 random bits; public:
 *           it names the key in lists, logs, audit events and rate limits;
 *   secret  43 base64url characters, 256 random bits, shown once at creation; only its
 *           SHA-256 is stored (a secret that strong needs no slow hash) and it is compared in
 *           constant time.
 * A key has a name, scopes, roles (a subset of its owner's when made; at use the caller
 * intersects them with the owner's current roles), an optional expiry, created and
 * last-used times, and may be revoked.
 *
 * Table api_keys and its functions: sql/0013_api_keys.sql. Every change there that matters
 * to the snapshot sends NOTIFY latch_api_keys; the control thread then reloads the whole
 * snapshot (lt_apikeys_load) and swaps it in, and each worker takes a reference to the new
 * one. The snapshot holds the live keys only: not revoked, not expired when loaded, owner
 * active; lt_apikeys_verify checks the expiry again at every use.
 *
 * Threading: a snapshot is immutable and refcounted (atomic): share it across threads.
 * lt_apikeys_load blocks (control thread). The rest is pure.
 */
#ifndef LT_IDENTITY_APIKEYS_H
#define LT_IDENTITY_APIKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "store/store.h"

#define LT_APIKEY_PREFIX "lt_ak_"
#define LT_APIKEY_PREFIX_LEN 6
#define LT_APIKEY_ID_LEN 16     /* base32 of 10 random bytes */
#define LT_APIKEY_SECRET_LEN 43 /* base64url of 32 random bytes */
#define LT_APIKEY_LEN (LT_APIKEY_PREFIX_LEN + LT_APIKEY_ID_LEN + 1 + LT_APIKEY_SECRET_LEN)

#define LT_APIKEY_NAME_MAX 200  /* characters */
#define LT_APIKEY_LIST_MAX 50   /* scopes, roles per key */

typedef struct lt_apikey {
    const char *key_id;    /* 16 characters */
    const char *uuid;      /* row id */
    const char *tenant_id; /* UUID text */
    int owner_is_client;   /* 0: a user's key; 1: an OAuth client's */
    const char *owner_id;  /* the user's id, or the client's client_id */
    const char *const *scopes; /* NULL-terminated */
    const char *const *roles;  /* NULL-terminated; as stored (not yet bounded by the owner's) */
    int64_t expires_at;        /* seconds since the epoch; 0: never */
    int64_t created_at;        /* seconds since the epoch */
    uint8_t secret_hash[32];
} lt_apikey_t;

/* ---- format ----------------------------------------------------------------------------- */

/**
 * A new key: the full text (shown once; wipe it), its key_id and its secret's SHA-256 as
 * hex. @return 0 or LT_EIO (no randomness).
 */
int lt_apikey_new(char key[LT_APIKEY_LEN + 1], char key_id[LT_APIKEY_ID_LEN + 1], char hash_hex[65]) LT_MUSTCHECK;

/* The key made of these random bytes (lt_apikey_new's format; tests use it directly). */
void lt_apikey_format(const uint8_t id_raw[10], const uint8_t secret_raw[32], char key[LT_APIKEY_LEN + 1]);

/**
 * Splits a presented key: exactly lt_ak_, 16 of [a-z2-7], '_', 43 canonical base64url
 * characters (the last one carrying no stray bits). Points into `s`.
 * @return 0, or LT_EINVAL for anything else (never reads past s[n)).
 */
int lt_apikey_parse(const char *s, size_t n, const char **key_id, const char **secret) LT_MUSTCHECK;

/* 1 if s[0..n) starts like an API key (the prefix): the caller should treat it as one. */
int lt_apikey_looks_like(const char *s, size_t n);

/* ---- snapshots ---------------------------------------------------------------------------- */

typedef struct lt_apikeys lt_apikeys_t;

/* An empty snapshot (one reference). @return 0 or LT_ENOMEM. */
int lt_apikeys_empty(lt_apikeys_t **out) LT_MUSTCHECK;
lt_apikeys_t *lt_apikeys_ref(lt_apikeys_t *ks);
void lt_apikeys_unref(lt_apikeys_t *ks);
size_t lt_apikeys_count(const lt_apikeys_t *ks);

/* The key with this key_id (16 characters), or NULL. O(1). */
const lt_apikey_t *lt_apikeys_find(const lt_apikeys_t *ks, const char *key_id, size_t n);

/**
 * Verifies a presented key s[0..n) at time `now` (seconds): parse, look the key_id up,
 * compare SHA-256(secret) in constant time (an unknown key_id costs the same), check the
 * expiry.
 * @return 0 (*out: the key, borrowed from `ks`), LT_EINVAL (not in the key format),
 *         LT_ENOTFOUND (unknown, wrong secret, expired: one answer for all).
 */
int lt_apikeys_verify(const lt_apikeys_t *ks, const char *s, size_t n, int64_t now, const lt_apikey_t **out) LT_MUSTCHECK;

/* 1 if the key's scopes hold `scope`. */
int lt_apikey_has_scope(const lt_apikey_t *k, const char *scope);

/* The query lt_apikeys_load runs (no parameters); lt_apikeys_from_result reads its rows. */
extern const char lt_apikeys_load_sql[];
struct pg_result;
/** @return 0, LT_EINVAL (a row of an unexpected shape), LT_ERANGE, LT_ENOMEM. */
int lt_apikeys_from_result(const struct pg_result *res, lt_apikeys_t **out) LT_MUSTCHECK;

/**
 * Loads every live key from PostgreSQL (blocking, its own connection).
 * @return 0 and a snapshot (one reference), LT_EUNAVAIL (cannot connect), LT_EIO, LT_ENOMEM.
 */
int lt_apikeys_load(const char *conninfo, lt_apikeys_t **out, char *err, size_t errlen) LT_MUSTCHECK;

/* ---- statements ----------------------------------------------------------------------------- */

/*
 * Statements of the API surfaces (lib/api/apikeys.c); lt_apikeys_statements registers them
 * (idempotent). Parameters (text; NULL = SQL NULL); lists and scopes are JSON arrays of
 * strings; expires_at an RFC 3339 time or NULL:
 *   create       scope, tenant, owner_type, owner_id, key_id, hash hex, name, scopes, roles,
 *                expires_at, actor, ip, request_id                      -> (code, body)
 *   me_create    sid, user, tenant, recent window s, password_ok t/f, key_id, hash hex,
 *                name, scopes, roles, expires_at, ip, request_id         -> (code, body)
 *   list         scope, tenant filter, owner_type, owner_id, after_us, after_id, limit
 *                                                                       -> (items, next_key)
 *   me_list      sid, user, tenant, after_us, after_id, limit -> (items, next_key) | no row
 *   get          scope, id (row id or key_id)                           -> (key | NULL)
 *   revoke       scope, id, actor, ip, request_id                       -> (code, body)
 *   me_revoke    sid, user, tenant, id, ip, request_id   -> ok | not_found | unauthorized
 *   caller_live  key row id, tenant                                     -> (bool)
 *   touch        key ids as a text[] literal ("{a,b}")                  -> (nothing)
 * Codes: ok, not_found, invalid (body: a JSON string saying why), unauthorized,
 * reauthentication_required.
 */
extern lt_store_stmt_t lt_apikeys_stmt_create, lt_apikeys_stmt_me_create, lt_apikeys_stmt_list,
    lt_apikeys_stmt_me_list, lt_apikeys_stmt_get, lt_apikeys_stmt_revoke, lt_apikeys_stmt_me_revoke,
    lt_apikeys_stmt_caller_live, lt_apikeys_stmt_touch;
int lt_apikeys_statements(void) LT_MUSTCHECK;

/**
 * Reads the (code, body) row of create/revoke: `*code` and `*body` (NULL when SQL NULL)
 * point into `res`. @return 0 or LT_EINVAL (another shape).
 */
int lt_apikeys_result(const struct pg_result *res, const char **code, const char **body) LT_MUSTCHECK;

/* ---- input rules ------------------------------------------------------------------------------ */

/* 1 if `s` is a role name as roles are named (^[a-z][a-z0-9_:.-]{0,63}$). */
int lt_apikey_role_ok(const char *s);

#endif
