/*
 * privacy (identity): the statements behind the data export of a user, erasure, the
 * incident-response lock, and the audit query (sql/0016_privacy.sql), plus the audit
 * query's cursor and time-filter input rules.
 *
 * Rows are read with identity/admin.h's decoders: EXPORT and ME_EXPORT return one document
 * (lt_admin_doc; NULL when out of scope / the session is not live), LOCK and ERASE one
 * (code, body) row (lt_admin_result), AUDIT_QUERY (items, next_key) (lt_admin_page), where
 * next_key is the last id of the page, wrapped for clients by lt_privacy_cursor_encode.
 *
 * Parameters (text; NULL = SQL NULL):
 *   EXPORT       scope, id                                             -> (document|NULL)
 *   ME_EXPORT    session id, user id, tenant id (the bearer's)         -> (document|NULL)
 *   LOCK         scope, id, actor, ip, request_id                      -> (code, body)
 *   ERASE        scope, id, actor, ip, request_id                      -> (code, body)
 *                ('conflict': the caller tried to erase itself)
 *   AUDIT_QUERY  scope, tenant_id, actor, target, user, event, from, to (RFC 3339),
 *                before id, limit                                      -> (items, next_key)
 *
 * Threading: the statement table is registered once at start-up; the helpers are pure.
 */
#ifndef LT_IDENTITY_PRIVACY_H
#define LT_IDENTITY_PRIVACY_H

#include <stddef.h>

#include "base/base.h"
#include "store/store.h"

typedef enum {
    LT_PRIVACY_EXPORT,
    LT_PRIVACY_ME_EXPORT,
    LT_PRIVACY_LOCK,
    LT_PRIVACY_ERASE,
    LT_PRIVACY_AUDIT_QUERY,
    LT_PRIVACY_NSTMTS
} lt_privacy_stmt_id_t;

/* The statements, indexed by lt_privacy_stmt_id_t. */
extern lt_store_stmt_t lt_privacy_stmts[LT_PRIVACY_NSTMTS];

/** Registers lt_privacy_stmts (all or nothing). @return as lt_store_stmt_register. */
int lt_privacy_statements(void) LT_MUSTCHECK;

/* An audit cursor: base64url of "a<id>", id 1..19 digits. */
#define LT_PRIVACY_CURSOR_MAX 28
#define LT_PRIVACY_AUDIT_LIMIT_MAX 500

/**
 * Wraps the last id of a page (decimal) into a cursor. @return 0, LT_EINVAL (not an id),
 * LT_ERANGE (`cap` < LT_PRIVACY_CURSOR_MAX + 1).
 */
int lt_privacy_cursor_encode(const char *id, char *out, size_t cap) LT_MUSTCHECK;

/**
 * Unwraps a cursor from a client into the id (decimal) to continue before.
 * @return 0, or LT_EINVAL for anything lt_privacy_cursor_encode did not produce.
 */
int lt_privacy_cursor_decode(const char *cursor, char id[20]) LT_MUSTCHECK;

/**
 * 1 when `s` is an RFC 3339 date-time PostgreSQL reads as that instant:
 * YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 't'/'z' and ' ' for 'T' accepted, fields in
 * range (days by month, leap years; no leap second).
 */
int lt_privacy_time_ok(const char *s);

#endif
