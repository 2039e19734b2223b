/*
 * admin (identity): the statements behind the admin REST surface and `latchctl bootstrap`,
 * the decoding of their rows, and the input rules they share (email, tenant name, uuid,
 * page cursors).
 *
 * The SQL is sql/0005_admin.sql. Every statement that serves an admin request takes the
 * caller's scope as its first parameter: the tenant id it administers, or NULL for a
 * global admin; rows outside the scope read as missing. Write statements return one row
 * (code, body): LT_ADMIN_OK with the response document (JSON text), or another code that
 * the handler maps to a problem. List statements return (items, next_key): a JSON array and
 * the keyset page key to continue after (NULL on the last page), which clients see only
 * wrapped as an opaque cursor (lt_admin_cursor_encode).
 *
 * Parameters (text format; NULL = SQL NULL):
 *   TENANT_CREATE  name, display_name, actor, ip, request_id              -> (code, body)
 *   TENANT_GET     scope, id                                              -> (tenant|NULL)
 *   TENANT_LIST    scope, after_us, after_id, limit                       -> (items, next_key)
 *   USER_CREATE    scope, tenant_id, email, phc, attributes (JSON object), roles (JSON
 *                  array), imported (true|false), actor, ip, request_id   -> (code, body)
 *   USER_GET       scope, id                                              -> (user|NULL)
 *   USER_LIST      scope, tenant_id, email filter, after_us, after_id, limit -> (items, next_key)
 *   USER_PATCH     scope, id, merge patch (JSON object), actor, ip, request_id -> (code, body)
 *   USER_ACTION    scope, id, action ("disable", "enable", "unlock", "end_sessions"), actor,
 *                  ip, request_id                                         -> (code, body)
 *   CALLER_LIVE    session id, user id, tenant id (the bearer's sid, sub, tenant) -> (bool)
 *   USER_RESET     scope, id, token hash (64 hex), token, ttl seconds, actor, ip, request_id
 *                                                                         -> (code, body)
 *                  (token and hash from lt_auth_token_new(LT_AUTH_TOKEN_RESET): the reset
 *                  confirm of identity/auth accepts it like a self-service one)
 *
 * UUID syntax is checked with lt_auth_uuid_ok (identity/auth.h) before binding.
 *
 * Threading: the statement table is registered once at start-up; the helpers are pure and
 * safe anywhere. lt_admin_bootstrap blocks (latchctl only, never on a loop).
 */
#ifndef LT_IDENTITY_ADMIN_H
#define LT_IDENTITY_ADMIN_H

#include <stddef.h>

#include "base/base.h"
#include "store/store.h"

struct pg_result;

typedef enum {
    LT_ADMIN_TENANT_CREATE,
    LT_ADMIN_TENANT_GET,
    LT_ADMIN_TENANT_LIST,
    LT_ADMIN_TENANT_PATCH,
    LT_ADMIN_USER_CREATE,
    LT_ADMIN_USER_GET,
    LT_ADMIN_USER_LIST,
    LT_ADMIN_USER_PATCH,
    LT_ADMIN_USER_ACTION,
    LT_ADMIN_USER_RESET,
    LT_ADMIN_CALLER_LIVE,
    LT_ADMIN_NSTMTS
} lt_admin_stmt_id_t;

/* The statements, indexed by lt_admin_stmt_id_t. */
extern lt_store_stmt_t lt_admin_stmts[LT_ADMIN_NSTMTS];

/** Registers lt_admin_stmts (all or nothing). @return as lt_store_stmt_register. */
int lt_admin_statements(void) LT_MUSTCHECK;

/* Outcome of a write statement (the `code` column). */
typedef enum {
    LT_ADMIN_OK,
    LT_ADMIN_NOT_FOUND,   /* no such object in the caller's scope */
    LT_ADMIN_CONFLICT,    /* the tenant name exists */
    LT_ADMIN_EMAIL_TAKEN, /* the email exists in that tenant */
    LT_ADMIN_FORBIDDEN,   /* a tenant admin tried to change a global admin */
    LT_ADMIN_TOO_LARGE,   /* the patched attributes would exceed their size cap */
} lt_admin_code_t;

/**
 * Reads the (code, body) row of a write statement. `*body` (NULL unless LT_ADMIN_OK)
 * points into `res`.
 * @return 0, or LT_EINVAL when the result does not have that shape.
 */
int lt_admin_result(const struct pg_result *res, lt_admin_code_t *code, const char **body) LT_MUSTCHECK;

/**
 * Reads the single value of a GET statement: `*doc` is the JSON text, NULL when nothing is
 * in scope. @return 0 or LT_EINVAL (unexpected shape).
 */
int lt_admin_doc(const struct pg_result *res, const char **doc) LT_MUSTCHECK;

/**
 * Reads the (items, next_key) row of a list statement; pointers into `res`, next_key NULL
 * on the last page. @return 0 or LT_EINVAL.
 */
int lt_admin_page(const struct pg_result *res, const char **items, const char **next_key) LT_MUSTCHECK;

/* ---- input rules ---------------------------------------------------------------------- */

#define LT_ADMIN_EMAIL_MAX 320
#define LT_ADMIN_UUID_LEN 36
/* Page key "<us>:<uuid>": at most 19 digits + ':' + 36. */
#define LT_ADMIN_KEY_MAX 56
/* Opaque cursor: base64url of a page key. */
#define LT_ADMIN_CURSOR_MAX 76

/* 1 if `s` is a tenant name: ^[a-z0-9][a-z0-9-]{0,62}$. */
int lt_admin_tenant_name_ok(const char *s);

/**
 * Validates an email address as users and admins give it: ASCII spaces and tabs around it
 * are trimmed; the rest must be 3..320 bytes without whitespace or control characters, with
 * exactly one '@' between a non-empty local part and a non-empty domain. The trimmed text
 * goes to `out` (`cap` >= LT_ADMIN_EMAIL_MAX + 1). Case is kept (the store compares a
 * lower-cased copy).
 * @param why  receives a static, user-facing reason on failure.
 * @return 0 or LT_EINVAL.
 */
int lt_admin_email_check(const char *in, char *out, size_t cap, const char **why) LT_MUSTCHECK;

/**
 * Wraps a page key into a cursor (base64url). @return 0, LT_EINVAL (not a page key),
 * LT_ERANGE (`cap` < LT_ADMIN_CURSOR_MAX + 1).
 */
int lt_admin_cursor_encode(const char *key, char *out, size_t cap) LT_MUSTCHECK;

/**
 * Unwraps a cursor from a client into its parts: microseconds (decimal, no sign) and id.
 * @return 0, or LT_EINVAL for anything that lt_admin_cursor_encode did not produce.
 */
int lt_admin_cursor_decode(const char *cursor, char us[20], char id[LT_ADMIN_UUID_LEN + 1]) LT_MUSTCHECK;

/* ---- bootstrap (latchctl) --------------------------------------------------------------- */

typedef struct lt_admin_bootstrap {
    const char *tenant;       /* tenant name (lt_admin_tenant_name_ok) */
    const char *display_name; /* may be NULL */
    const char *email;        /* checked with lt_admin_email_check */
    const char *phc;          /* the admin's password hash */
    int global;               /* also grant 'global_admin' */
    const char *actor;        /* audit actor, e.g. "latchctl" */
} lt_admin_bootstrap_t;

/**
 * Creates the tenant (unless it exists without users) and its first admin, with the audit
 * events tenant.created and user.created, in one transaction over a blocking connection.
 * The ids are written as text (37 bytes each).
 * @return 0; LT_EEXIST when the tenant already has users (nothing changed; tenant_id is
 *         still filled); LT_EUNAVAIL (cannot connect); LT_EIO (the statement failed; `err`
 *         has the server's message); LT_EINVAL.
 */
int lt_admin_bootstrap(const char *conninfo, const lt_admin_bootstrap_t *in, char tenant_id[LT_ADMIN_UUID_LEN + 1],
                       char user_id[LT_ADMIN_UUID_LEN + 1], char *err, size_t errlen) LT_MUSTCHECK;

#endif
