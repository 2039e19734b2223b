/*
 * clients: OAuth 2.0 confidential clients (RFC 6749 §2.1) per tenant, and the in-memory
 * snapshot of them that authenticates callers of the /oauth2 endpoints without a database round trip.
 *
 * A client has a public id ("lc_" + 22 base64url chars, 128 random bits) and a secret
 * ("lcs_" + 43 base64url chars, 256 random bits) shown once at creation; only the secret's
 * SHA-256 is stored (a 256-bit random secret needs no slow hash), and it is compared in
 * constant time. Also: name, allowed grant types (client_credentials, refresh_token),
 * scopes it may request, and service permissions (e.g. "introspect", "revoke",
 * "revocations"; the policy issue maps them onto roles).
 *
 * Table oauth_clients and its functions: sql/0008_clients.sql. Every change there sends
 * NOTIFY latch_clients; the control thread then reloads the whole snapshot
 * (lt_clients_load) and swaps it in (lt_clients_holder_t), and each worker takes a
 * reference to the new one.
 *
 * Threading: a snapshot is immutable and refcounted (atomic): share it across threads.
 * lt_clients_load blocks (control thread, latchctl).
 */
#ifndef LT_IDENTITY_CLIENTS_H
#define LT_IDENTITY_CLIENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "crypto/seal.h"
#include "store/store.h"

#define LT_CLIENT_ID_LEN 25     /* "lc_" + 22 */
#define LT_CLIENT_SECRET_LEN 47 /* "lcs_" + 43 */
/* Request signing (sql/0014, lib/api/signing.c): the HMAC-SHA256 key is this text itself,
 * "lsk_" + 43 base64url characters (256 random bits), stored sealed under the master key. */
#define LT_CLIENT_SIGNING_KEY_LEN 47
#define LT_CLIENT_SIGNING_SEALED_HEX_LEN (2 * (LT_SEAL_OVERHEAD + LT_CLIENT_SIGNING_KEY_LEN))

enum {
    LT_CLIENT_SIGN_KEY = 1u << 0,      /* signing_key holds the client's key */
    LT_CLIENT_SIGN_REQUIRED = 1u << 1, /* every request of the client must be signed */
};

enum { LT_GRANT_CLIENT_CREDENTIALS = 1u << 0, LT_GRANT_REFRESH_TOKEN = 1u << 1 };

typedef struct lt_client {
    const char *id;        /* client_id */
    const char *uuid;      /* row id */
    const char *tenant_id; /* UUID text */
    const char *name;
    unsigned grants;       /* LT_GRANT_* bits */
    const char *const *scopes; /* NULL-terminated */
    const char *const *permissions; /* NULL-terminated */
    uint8_t secret_hash[32];
    unsigned signing;                                /* LT_CLIENT_SIGN_* bits */
    char signing_key[LT_CLIENT_SIGNING_KEY_LEN + 1]; /* with LT_CLIENT_SIGN_KEY; wiped with the snapshot */
} lt_client_t;

typedef struct lt_clients lt_clients_t;

/* An empty snapshot (one reference). @return 0 or LT_ENOMEM. */
int lt_clients_empty(lt_clients_t **out) LT_MUSTCHECK;
lt_clients_t *lt_clients_ref(lt_clients_t *cs);
void lt_clients_unref(lt_clients_t *cs);
size_t lt_clients_count(const lt_clients_t *cs);

/* The live (not deleted) client with this client_id, or NULL. O(1). */
const lt_client_t *lt_clients_find(const lt_clients_t *cs, const char *client_id, size_t n);

/*
 * Client authentication: 1 when `secret` is the client's (SHA-256, constant-time compare),
 * else 0. Costs the same whether or not the client exists (pass NULL: a dummy compare runs).
 */
int lt_client_check_secret(const lt_client_t *c, const char *secret, size_t n);

int lt_client_has_permission(const lt_client_t *c, const char *perm);
int lt_client_has_scope(const lt_client_t *c, const char *scope, size_t n);

/**
 * Loads every live client from PostgreSQL (blocking, its own connection).
 * @return 0 and a snapshot (one reference), LT_EUNAVAIL (cannot connect), LT_EIO, LT_ENOMEM.
 */
int lt_clients_load(const char *conninfo, lt_clients_t **out, char *err, size_t errlen) LT_MUSTCHECK;
/**
 * lt_clients_load that also opens the clients' signing keys with `keys` (the master key and
 * any previous ones). A key that does not open (another master key, a tampered row) is
 * logged and left out: the client's signed requests then fail, and if it requires
 * signatures every request of it does (fail closed). lt_clients_load opens none.
 */
int lt_clients_load_keyed(const char *conninfo, const lt_seal_key_t *keys, size_t nkeys, lt_clients_t **out, char *err,
                          size_t errlen) LT_MUSTCHECK;

/*
 * Holds the current snapshot for readers on many threads: base's lt_holder_t typed for
 * snapshots, as lt_keyring_holder_t is for rings.
 */
typedef struct lt_clients_holder {
    lt_holder_t h; /* private */
} lt_clients_holder_t;
/** @return 0, LT_ENOMEM, LT_EIO. The holder starts empty. */
int lt_clients_holder_init(lt_clients_holder_t *h) LT_MUSTCHECK;
/* A new reference (drop it with lt_clients_unref), or NULL while none was set. */
lt_clients_t *lt_clients_holder_get(lt_clients_holder_t *h);
/* Takes the caller's reference (NULL allowed) and drops the old snapshot's. */
void lt_clients_holder_set(lt_clients_holder_t *h, lt_clients_t *cs);
/* Idempotent. No get/set may run concurrently. */
void lt_clients_holder_dispose(lt_clients_holder_t *h);

/* A new client id and secret with the secret's SHA-256 as hex (65 bytes). @return 0 or LT_EIO. */
int lt_client_credentials_new(char id[LT_CLIENT_ID_LEN + 1], char secret[LT_CLIENT_SECRET_LEN + 1],
                              char hash_hex[65]) LT_MUSTCHECK;

/*
 * Statements of the admin surface (lib/api/admin_clients.c); lt_clients_statements registers
 * them (idempotent: a second call does nothing). Parameters (text; NULL = SQL NULL):
 *   create         scope, tenant_id, client_id, secret hash (64 hex), name, grant_types,
 *                  scopes, permissions (each a JSON array of strings), actor, ip,
 *                  request_id                                   -> (code, body)
 *   list           scope, tenant_id filter, after_us, after_id, limit -> (items, next_key)
 *   get            scope, id (row uuid or client_id)            -> (client|NULL)
 *   delete         scope, id, actor, ip, request_id             -> (code, body)
 *   rotate_secret  scope, id, secret hash (64 hex), actor, ip, request_id -> (code, body)
 * Rows decode with lt_admin_result / lt_admin_doc / lt_admin_page (identity/admin.h); codes
 * are "ok" and "not_found". scope is the caller's tenant id, NULL for a global admin.
 */
extern lt_store_stmt_t lt_clients_stmt_create, lt_clients_stmt_list, lt_clients_stmt_get, lt_clients_stmt_delete,
    lt_clients_stmt_rotate_secret;
/*
 * Request signing (sql/0014_request_signing.sql), same conventions; codes "ok", "not_found",
 * and "conflict" (require without a key):
 *   signing_set      scope, id, client_id the key was sealed for, sealed key (hex),
 *                    require ("true"/"false", NULL = keep), actor, ip, request_id
 *   signing_delete   scope, id, actor, ip, request_id
 *   signing_require  scope, id, require ("true"/"false"), actor, ip, request_id
 */
extern lt_store_stmt_t lt_clients_stmt_signing_set, lt_clients_stmt_signing_delete, lt_clients_stmt_signing_require;

/**
 * A new signing key for client `client_id` and its sealed form (hex) under `key`, bound to
 * the client (additional data "client_signing_key:<client_id>").
 * @return 0, LT_EINVAL (client_id malformed), LT_EIO (no randomness, cipher failure).
 */
int lt_client_signing_key_new(const lt_seal_key_t *key, const char *client_id,
                              char secret[LT_CLIENT_SIGNING_KEY_LEN + 1],
                              char sealed_hex[LT_CLIENT_SIGNING_SEALED_HEX_LEN + 1]) LT_MUSTCHECK;
int lt_clients_statements(void) LT_MUSTCHECK;

/* ---- input rules (shared by the admin surface and latchctl) ------------------------- */

#define LT_CLIENT_NAME_MAX 200  /* characters */
#define LT_CLIENT_SCOPES_MAX 50 /* scopes per client */
#define LT_CLIENT_SCOPE_MAX 64  /* bytes per scope token */

/* The LT_GRANT_* bit of a grant type name ("client_credentials", "refresh_token"), else 0. */
unsigned lt_client_grant_bit(const char *s);
/* 1 if `s` is a permission Latch knows ("introspect", "revoke", "revocations", "decide"). */
int lt_client_permission_ok(const char *s);
/* 1 if s[0..n) is a scope token: 1..64 of A-Z a-z 0-9 _ . : / - */
int lt_client_scope_ok(const char *s, size_t n);
/* NULL if `s` is a good client name (1..200 characters, no control characters), else a
 * static user-facing reason. */
const char *lt_client_name_problem(const char *s);

typedef enum { LT_CLIENT_LIST_GRANTS, LT_CLIENT_LIST_SCOPES, LT_CLIENT_LIST_PERMISSIONS } lt_client_list_kind_t;
/**
 * Checks a JSON array given for a client's grant_types (non-empty), scopes (at most 50) or
 * permissions: strings of the kind's values, no duplicates.
 * @return 0, or LT_EINVAL with a static user-facing reason in *why.
 */
int lt_client_list_check(const json_t *arr, lt_client_list_kind_t kind, const char **why) LT_MUSTCHECK;

/* ---- snapshots from rows --------------------------------------------------------------- */

/* The query lt_clients_load runs (no parameters); lt_clients_from_result reads its rows. */
extern const char lt_clients_load_sql[];
struct pg_result;
/** Builds a snapshot from the rows of lt_clients_load_sql. @return 0, LT_EINVAL (a row has
 *  an unexpected shape), LT_ENOMEM. */
int lt_clients_from_result(const struct pg_result *res, lt_clients_t **out) LT_MUSTCHECK;
/** The same, opening the signing keys of the two signing columns (see lt_clients_load_keyed);
 *  rows of the eight base columns alone give clients without signing. */
int lt_clients_from_result_keyed(const struct pg_result *res, const lt_seal_key_t *keys, size_t nkeys,
                                 lt_clients_t **out) LT_MUSTCHECK;

/* ---- blocking administration (latchctl) ------------------------------------------------- */

/**
 * Creates a client in tenant `tenant` (its name) over a blocking connection, audited as
 * `actor` with no ip/request id. grant_types, scopes, permissions: JSON arrays checked with
 * lt_client_list_check (scopes and permissions may be NULL: none).
 * @return 0 and *out = the client document plus "client_secret" (the only time it is
 *         shown; the caller wipes and frees it); LT_ENOTFOUND (no such tenant); LT_EINVAL;
 *         LT_EUNAVAIL (cannot connect); LT_EIO (`err` says why); LT_ENOMEM.
 */
int lt_clients_admin_create(const char *conninfo, const char *tenant, const char *name, const json_t *grant_types,
                            const json_t *scopes, const json_t *permissions, const char *actor, json_t **out,
                            char *err, size_t errlen) LT_MUSTCHECK;
/** Every client of tenant `tenant` (a JSON array, oldest first). Errors as above. */
int lt_clients_admin_list(const char *conninfo, const char *tenant, json_t **out, char *err,
                          size_t errlen) LT_MUSTCHECK;
/** Deletes client `client` (client_id or row id) of tenant `tenant`. @return 0,
 *  LT_ENOTFOUND (no such tenant or client in it), or as above. */
int lt_clients_admin_delete(const char *conninfo, const char *tenant, const char *client, const char *actor,
                            char *err, size_t errlen) LT_MUSTCHECK;

#endif
