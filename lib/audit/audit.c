/*
 * audit.c: the canonical form and hash of audit rows, the append statement, and chain
 * verification (see audit.h; sql/0002_audit.sql is the other half of the contract).
 *
 * The canonical bytes must match latch_audit_canonical in SQL exactly. Both sides work on
 * the text PostgreSQL prints for each value, as UTF-8: the SQL side converts every field
 * with convert_to(v, 'UTF8'), and lt_audit_verify asks for client_encoding UTF8, so the
 * lengths below (strlen, bytes) and the SQL ones (octet_length of the UTF-8 bytes) agree
 * for any text, including non-ASCII.
 *
 * Threading: lt_audit_canonical and lt_audit_hash are pure and safe anywhere.
 * lt_audit_verify opens its own blocking connection (latchctl, tests): never on a loop.
 */
#include "audit/audit.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_store_stmt_t lt_audit_stmt_append = {
    "audit.append",
    "SELECT latch_audit_append($1::uuid, $2, $3, $4, $5, $6, $7, $8::jsonb)",
    8,
    0,
};

int lt_audit_statements(void)
{
    return lt_store_stmt_register(&lt_audit_stmt_append, 1);
}

/* ---- canonical form and hash ------------------------------------------------------------ */

static int append_field(lt_buf_t *out, const char *v)
{
    if (v == NULL)
        return lt_buf_append(out, "-,", 2);
    size_t n = strlen(v);
    int rc = lt_buf_appendf(out, "%zu:", n);
    if (rc == 0)
        rc = lt_buf_append(out, v, n);
    if (rc == 0)
        rc = lt_buf_append(out, ",", 1);
    return rc;
}

int lt_audit_canonical(lt_buf_t *out, const lt_audit_row_t *row)
{
    /* The order is the contract (audit.h, latch_audit_canonical in SQL). */
    const char *const fields[] = {row->id,     row->at_us, row->tenant_id,  row->actor,   row->event,
                                  row->target, row->ip,    row->request_id, row->outcome, row->details};
    size_t old = out->len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(fields) / sizeof(fields[0]); i++)
        rc = append_field(out, fields[i]);
    if (rc != 0) {
        /* All or nothing: a partial form must not be mistaken for a whole one. */
        out->len = old;
        if (out->base != NULL)
            out->base[old] = '\0';
        return LT_ENOMEM;
    }
    return 0;
}

void lt_audit_hash(const uint8_t prev[32], const void *canonical, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /*
     * The signature has no error path: SHA-256 in OpenSSL fails only when it cannot
     * allocate. Then `out` is all zeros, which no stored hash equals (it would need a
     * SHA-256 preimage), so a verifier reports a mismatch rather than passing a row.
     */
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, prev, 32) != 1 ||
        (n > 0 && EVP_DigestUpdate(ctx, canonical, n) != 1) || EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != 32)
        memset(out, 0, 32);
    EVP_MD_CTX_free(ctx);
}

/* ---- verification ----------------------------------------------------------------------- */

/* The columns as the SQL function hashed them; the order matches col_* below. */
/* The columns as the SQL function hashed them; the order matches col_* below. The side row
 * of personal data (sql/0016_privacy.sql) comes along: its digest is checked against the one
 * in the chained details while it exists. */
static const char verify_sql[] =
    "SELECT a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.tenant_id, a.actor, a.event, a.target, a.ip,"
    " a.request_id, a.outcome, a.details::text, encode(a.prev_hash, 'hex'), encode(a.hash, 'hex'),"
    " a.details->>'pii_digest', p.event_id IS NOT NULL, encode(p.salt, 'hex'), p.ip, p.details::text"
    " FROM audit_log a LEFT JOIN audit_pii p ON p.event_id = a.id ORDER BY a.id";
/* Before 0016 there is no side table: the chain alone. */
static const char verify_sql_legacy[] =
    "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, tenant_id, actor, event, target, ip, request_id,"
    " outcome, details::text, encode(prev_hash, 'hex'), encode(hash, 'hex'), NULL, false, NULL, NULL, NULL"
    " FROM audit_log ORDER BY id";
enum { col_id, col_at_us, col_tenant_id, col_actor, col_event, col_target, col_ip, col_request_id, col_outcome,
       col_details, col_prev_hash, col_hash, col_pii_digest, col_pii_present, col_pii_salt, col_pii_ip,
       col_pii_details, ncols };

int lt_audit_pii_digest(const uint8_t salt[32], const char *ip, const char *details, uint8_t out[32])
{
    lt_buf_t b = LT_BUF_INIT;
    int rc = append_field(&b, ip);
    rc = rc ? rc : append_field(&b, details);
    if (rc != 0) {
        lt_buf_free(&b);
        return LT_ENOMEM;
    }
    /* SHA-256(salt || fields): lt_audit_hash is exactly that shape. */
    lt_audit_hash(salt, b.base, b.len, out);
    lt_buf_free(&b);
    return 0;
}

/* Decodes exactly 32 bytes of hex. @return 0, or -1 for anything else. */
static int hex32(const char *s, uint8_t out[32])
{
    if (s == NULL || strlen(s) != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = lt_hex_digit(s[2 * i]), lo = lt_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char *value(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

static void mark_bad(lt_audit_report_t *rep, const char *id, const char *reason)
{
    rep->first_bad = id != NULL ? strtoll(id, NULL, 10) : 0;
    snprintf(rep->reason, sizeof(rep->reason), "%s", reason);
}

/*
 * The personal data of a row (sql/0016_privacy.sql): a side row must be bound by the digest
 * in the chained details and match it; a digest without its side row is an erasure.
 * @return 1 (holds), 0 (first broken row, `rep` says why), LT_ENOMEM.
 */
static int check_pii(const PGresult *r, lt_audit_report_t *rep)
{
    uint8_t want[32], salt[32], got[32];
    const char *id = value(r, col_id), *digest = value(r, col_pii_digest), *present = value(r, col_pii_present);
    int has_side = present != NULL && strcmp(present, "t") == 0;
    if (!has_side) {
        if (digest != NULL)
            rep->erased++;
        return 1;
    }
    if (digest == NULL || hex32(digest, want) != 0 || hex32(value(r, col_pii_salt), salt) != 0) {
        mark_bad(rep, id, "personal data row not bound to the chain");
        return 0;
    }
    if (lt_audit_pii_digest(salt, value(r, col_pii_ip), value(r, col_pii_details), got) != 0)
        return LT_ENOMEM;
    if (memcmp(got, want, 32) != 0) {
        mark_bad(rep, id, "personal data does not match its digest (it was changed)");
        return 0;
    }
    rep->pii_rows++;
    return 1;
}

/*
 * Checks one row against the previous row's hash (`prev`, updated to this row's stored
 * hash). @return 1 if the row holds, 0 if it is the first broken one (`rep` says why),
 * LT_ENOMEM.
 */
static int check_row(const PGresult *r, uint8_t prev[32], lt_buf_t *canon, lt_audit_report_t *rep)
{
    uint8_t stored_prev[32], stored[32], computed[32];
    const char *id = value(r, col_id);
    lt_audit_row_t row = {
        .id = id,
        .at_us = value(r, col_at_us),
        .tenant_id = value(r, col_tenant_id),
        .actor = value(r, col_actor),
        .event = value(r, col_event),
        .target = value(r, col_target),
        .ip = value(r, col_ip),
        .request_id = value(r, col_request_id),
        .outcome = value(r, col_outcome),
        .details = value(r, col_details),
    };
    /* The table's CHECKs make these impossible, unless the owner dropped them. */
    if (hex32(value(r, col_prev_hash), stored_prev) != 0 || hex32(value(r, col_hash), stored) != 0) {
        mark_bad(rep, id, "prev_hash or hash is not 32 bytes");
        return 0;
    }
    /* A row deleted or rewritten before this one shows here: the link no longer holds. */
    if (memcmp(stored_prev, prev, 32) != 0) {
        mark_bad(rep, id, "prev_hash does not link to the previous row");
        return 0;
    }
    canon->len = 0;
    if (lt_audit_canonical(canon, &row) != 0)
        return LT_ENOMEM;
    lt_audit_hash(prev, canon->base, canon->len, computed);
    if (memcmp(computed, stored, 32) != 0) {
        mark_bad(rep, id, "hash mismatch (the row was changed)");
        return 0;
    }
    memcpy(prev, stored, 32);
    return check_pii(r, rep);
}

int lt_audit_verify(const char *conninfo, lt_audit_report_t *rep, char *err, size_t errlen)
{
    /* UTF-8 is what the SQL side hashed (convert_to(v, 'UTF8')), whatever the server's
     * encoding; the later keyword overrides one given in `conninfo`. */
    const char *const keys[] = {"dbname", "client_encoding", "application_name", NULL};
    const char *const vals[] = {conninfo, "UTF8", "latch-audit-verify", NULL};
    uint8_t prev[32] = {0};
    lt_buf_t canon = LT_BUF_INIT;
    PGconn *conn = NULL;
    PGresult *r = NULL;
    int ret = 0;

    if (rep == NULL || conninfo == NULL) {
        lt_errf(err, errlen, "invalid argument");
        return LT_EINVAL;
    }
    memset(rep, 0, sizeof(*rep));
    rep->first_bad = -1;
    lt_errf(err, errlen, "%s", "");

    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect to the database: %s",
                conn != NULL ? PQerrorMessage(conn) : "out of memory");
        ret = LT_EUNAVAIL;
        goto done;
    }
    /*
     * One statement, one snapshot: ids are drawn under the append lock, which is released
     * only after the commit is visible, so any snapshot holds a gap-free prefix of the
     * committed chain. Single-row mode keeps memory constant however long the chain is.
     */
    r = PQexec(conn, "SELECT to_regclass('audit_pii') IS NOT NULL");
    int has_pii = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (PQsendQuery(conn, has_pii ? verify_sql : verify_sql_legacy) != 1 || PQsetSingleRowMode(conn) != 1) {
        lt_errf(err, errlen, "cannot query audit_log: %s", PQerrorMessage(conn));
        ret = LT_EIO;
        goto done;
    }
    while ((r = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        int ok = 1;
        if (st == PGRES_SINGLE_TUPLE && PQnfields(r) != ncols) {
            lt_errf(err, errlen, "unexpected result shape from audit_log");
            ok = LT_EIO;
        } else if (st == PGRES_SINGLE_TUPLE) {
            rep->rows++;
            if ((ok = check_row(r, prev, &canon, rep)) < 0)
                lt_errf(err, errlen, "%s", lt_strerror(ok));
        } else if (st != PGRES_TUPLES_OK) {
            lt_errf(err, errlen, "cannot read audit_log: %s", PQresultErrorMessage(r));
            ok = LT_EIO;
        }
        PQclear(r);
        if (ok <= 0) {
            /* Found (or failed): PQfinish below drops the rest of the stream with the
             * connection, so a break near the start of a long chain is reported at once. */
            ret = ok < 0 ? ok : 0;
            break;
        }
    }

done:
    if (ret != 0)
        rep->first_bad = -1;
    lt_buf_free(&canon);
    PQfinish(conn);
    return ret;
}
