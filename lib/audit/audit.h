/*
 * audit: the hash-chained audit log.
 *
 * Rows are appended only through the SQL function latch_audit_append (sql/0002_audit.sql),
 * which domain SQL functions call in the same transaction as the change they record, and
 * which C code reaches through lt_audit_stmt_append. The function serialises appenders
 * with a transaction-scoped advisory lock, so writers on any number of latchd instances
 * form one chain: each row's prev_hash is the hash of the row before it (by id), and
 *
 *     hash = SHA-256(prev_hash || canonical(row))
 *
 * where canonical() is the byte string lt_audit_canonical builds (and the SQL function
 * builds identically): every field as "<byte length>:<bytes>," (NULL as "-,") in the
 * order id, at (unix microseconds), tenant_id, actor, event, target, ip, request_id,
 * outcome, details (jsonb text as PostgreSQL prints it). The first row's prev_hash is 32
 * zero bytes. The runtime role may only INSERT and SELECT the table.
 *
 * Personal data (the client IP, emails in details) never enters a chained row from
 * migration 0016 on: it sits in the side table audit_pii, bound to the row by a salted
 * digest in details.pii_digest, so erasing it (DELETE of the side row) leaves the chain
 * intact (sql/0016_privacy.sql).
 *
 * Event names are "<noun>.<verb>" ("login.succeeded", "login.failed", "login.locked_out",
 * "session.revoked", "password.changed", "password.reset", "user.created", ...);
 * outcome is "success", "failure" or "denied". Details never hold secrets.
 *
 * Threading: pure functions are safe anywhere; lt_audit_verify blocks (latchctl, tests).
 */
#ifndef LT_AUDIT_H
#define LT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "store/store.h"

/* Text columns of one row as PostgreSQL returns them; NULL = SQL NULL. */
typedef struct lt_audit_row {
    const char *id, *at_us, *tenant_id, *actor, *event, *target, *ip, *request_id, *outcome, *details;
} lt_audit_row_t;

/** Appends the canonical form of `row` to `out`. @return 0 or LT_ENOMEM. */
int lt_audit_canonical(lt_buf_t *out, const lt_audit_row_t *row) LT_MUSTCHECK;

/* hash = SHA-256(prev || canonical). */
void lt_audit_hash(const uint8_t prev[32], const void *canonical, size_t n, uint8_t out[32]);

/*
 * latch_audit_append as a registered statement, 8 text parameters: tenant_id (uuid or
 * NULL), actor, event, target, ip, request_id, outcome, details (JSON object text or
 * NULL). Returns one row: the new id.
 */
extern lt_store_stmt_t lt_audit_stmt_append;
/** Registers lt_audit_stmt_append. @return as lt_store_stmt_register. */
int lt_audit_statements(void) LT_MUSTCHECK;

typedef struct lt_audit_report {
    uint64_t rows;      /* rows checked */
    uint64_t pii_rows;  /* rows whose personal data (audit_pii) is present and matches its digest */
    uint64_t erased;    /* rows whose personal data has been erased (digest without side row) */
    int64_t first_bad;  /* id of the first broken row, or -1 when the chain is intact */
    char reason[160];   /* why first_bad is broken ("hash mismatch", "prev_hash does not link") */
} lt_audit_report_t;

/**
 * The digest binding a row's personal data (sql/0016_privacy.sql, audit_pii) to the chain:
 * SHA-256(salt || field(ip) || field(details)), fields canonical as above (NULL as "-,").
 * @return 0 or LT_ENOMEM.
 */
int lt_audit_pii_digest(const uint8_t salt[32], const char *ip, const char *details, uint8_t out[32]) LT_MUSTCHECK;

/**
 * Walks the whole chain in id order (streaming, constant memory) and recomputes every hash,
 * and the digest of every row's personal data still present (audit_pii, from migration
 * 0016 on); a row whose personal data was erased counts in `erased` and is intact.
 * @return 0 (report filled; check first_bad), LT_EUNAVAIL (cannot connect), LT_EIO
 *         (query failed; `err` says why), LT_ENOMEM.
 */
int lt_audit_verify(const char *conninfo, lt_audit_report_t *rep, char *err, size_t errlen) LT_MUSTCHECK;

#endif
