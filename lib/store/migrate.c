/*
 * migrate.c: the schema migration runner (see store.h).
 *
 * Blocking libpq on the caller's thread: latchctl, or latchd before its workers start.
 * Never call it from an event loop.
 *
 * Protocol, safe with several instances starting at once:
 *   1. pg_advisory_lock(MIGRATE_LOCK_KEY): one runner at a time per database; the others
 *      wait and then find nothing left to do. It is a session lock, released explicitly
 *      at the end and implicitly if the runner dies.
 *   2. CREATE TABLE IF NOT EXISTS schema_migrations.
 *   3. Every applied row is checked against the binary: a file that changed after it was
 *      applied is an error (the database no longer matches the source); a row the binary
 *      does not know is only a warning, since during a rolling upgrade an older binary
 *      meets the schema of a newer one.
 *   4. Each pending file runs in its own transaction together with its schema_migrations
 *      row, so a failed file leaves no trace and is retried by the next run. Files must
 *      therefore not contain transaction control or statements that cannot run inside a
 *      transaction block (CREATE INDEX CONCURRENTLY, ...).
 *
 * Checksums are the lower-case hex SHA-256 of the exact embedded bytes.
 */
#include "store/store.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fixed bigint naming this lock: the bytes of "latchmig". Other tools must not reuse it. */
#define MIGRATE_LOCK_KEY "7809651199139735911"

#define SUM_HEX_LEN 64

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    /* "relation already exists, skipping" and friends: not worth the operator's time. */
    lt_log(LT_LOG_DEBUG, "store", "migrate: server notice: %s", message);
}

static int sha256_hex(const char *p, size_t n, char out[SUM_HEX_LEN + 1])
{
    uint8_t md[32];
    if (lt_sha256(p, n, md) != 0)
        return LT_EIO;
    lt_hex_encode(out, md, sizeof(md));
    return 0;
}

static const char *server_message(const PGresult *r, PGconn *conn)
{
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return msg != NULL ? msg : PQerrorMessage(conn);
}

static PGconn *open_conn(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        /* libpq's message names host and user, never the password. */
        lt_errf(err, errlen, "cannot connect to the database: %s",
                conn != NULL ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

/* Runs a statement expected to succeed; `what` names it in the error. */
static int exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params, const char *what,
                       char *err, size_t errlen, PGresult **out)
{
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        lt_errf(err, errlen, "%s: %s", what, server_message(r, conn));
        PQclear(r);
        return LT_EIO;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return 0;
}

static int exec_simple(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    return exec_params(conn, sql, 0, NULL, what, err, errlen, NULL);
}

static long find_migration(const lt_migration_t *m, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return (long)i;
    return -1;
}

static int checksums(const lt_migration_t *m, size_t n, char (*sums)[SUM_HEX_LEN + 1], char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        /* The text goes to PQexec as a C string: an embedded NUL would cut it short. */
        if (m[i].name == NULL || m[i].sql == NULL || strlen(m[i].sql) != m[i].len) {
            lt_errf(err, errlen, "migration %zu is malformed", i);
            return LT_EINVAL;
        }
        if (sha256_hex(m[i].sql, m[i].len, sums[i]) != 0) {
            lt_errf(err, errlen, "cannot hash %s", m[i].name);
            return LT_EIO;
        }
    }
    return 0;
}

/* Compares schema_migrations with the binary; marks what is applied. */
static int check_applied(PGconn *conn, const lt_migration_t *m, size_t n, char (*sums)[SUM_HEX_LEN + 1],
                         unsigned char *done, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int ret = exec_params(conn, "SELECT name, checksum FROM schema_migrations ORDER BY name", 0, NULL,
                          "reading schema_migrations", err, errlen, &r);
    if (ret != 0)
        return ret;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *name = PQgetvalue(r, row, 0);
        long i = find_migration(m, n, name);
        if (i < 0) {
            lt_log(LT_LOG_WARN, "store", "applied migration %s is unknown to this binary (a newer schema?)", name);
            continue;
        }
        if (strcmp(PQgetvalue(r, row, 1), sums[i]) != 0) {
            lt_errf(err, errlen, "migration %s was changed after it was applied (checksum mismatch)", name);
            ret = LT_EINVAL;
            break;
        }
        done[i] = 1;
    }
    PQclear(r);
    return ret;
}

static int apply_one(PGconn *conn, const lt_migration_t *m, const char *sum, char *err, size_t errlen)
{
    const char *params[2] = {m->name, sum};
    PGresult *r;
    ExecStatusType st;

    if (exec_simple(conn, "BEGIN", "BEGIN", err, errlen) != 0)
        return LT_EIO;
    r = PQexec(conn, m->sql);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        lt_errf(err, errlen, "migration %s failed: %s", m->name, server_message(r, conn));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    if (exec_params(conn, "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", 2, params,
                    "recording the migration", err, errlen, NULL) != 0 ||
        exec_simple(conn, "COMMIT", "COMMIT", err, errlen) != 0)
        goto fail;
    lt_log(LT_LOG_INFO, "store", "applied %s", m->name);
    return 0;
fail:
    PQclear(PQexec(conn, "ROLLBACK"));
    return LT_EIO;
}

/* Shared start of migrate and status: the checksums of the compiled-in files, then a
 * connection. On failure *sums may be set (the caller frees it) and *conn is NULL. */
static int prepare(const char *conninfo, const lt_migration_t *m, size_t n, char (**sums)[SUM_HEX_LEN + 1],
                   PGconn **conn, char *err, size_t errlen)
{
    int ret;
    if ((*sums = calloc(n + 1, sizeof(**sums))) == NULL)
        return LT_ENOMEM;
    if ((ret = checksums(m, n, *sums, err, errlen)) != 0)
        return ret;
    if ((*conn = open_conn(conninfo, err, errlen)) == NULL)
        return LT_EUNAVAIL;
    return 0;
}

int lt_store_migrate(const char *conninfo, const lt_migration_t *m, size_t n, int *applied, char *err, size_t errlen)
{
    PGconn *conn = NULL;
    char(*sums)[SUM_HEX_LEN + 1] = NULL;
    unsigned char *done = NULL;
    const char *key = MIGRATE_LOCK_KEY;
    int ret = LT_EINVAL, locked = 0, count = 0;

    if (applied != NULL)
        *applied = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (conninfo == NULL || (n > 0 && m == NULL)) {
        lt_errf(err, errlen, "invalid arguments");
        return LT_EINVAL;
    }
    ret = LT_ENOMEM;
    if ((done = calloc(n + 1, 1)) == NULL || (ret = prepare(conninfo, m, n, &sums, &conn, err, errlen)) != 0)
        goto fail;
    ret = LT_EIO;
    if (exec_params(conn, "SELECT pg_advisory_lock($1::bigint)", 1, &key, "taking the migration lock", err, errlen,
                    NULL) != 0)
        goto fail;
    locked = 1;
    if (exec_simple(conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name text PRIMARY KEY,"
                    " checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    "creating schema_migrations", err, errlen) != 0)
        goto fail;
    if ((ret = check_applied(conn, m, n, sums, done, err, errlen)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        if ((ret = apply_one(conn, &m[i], sums[i], err, errlen)) != 0)
            goto fail;
        count++;
    }
    ret = 0;
fail:
    if (locked) {
        char ignored[8];
        if (exec_params(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, &key, "unlock", ignored, sizeof(ignored),
                        NULL) != 0) {
            /* the session ends below, which releases the lock anyway */
        }
    }
    PQfinish(conn);
    free(sums);
    free(done);
    if (applied != NULL)
        *applied = count;
    return ret;
}

int lt_store_migrate_status(const char *conninfo, const lt_migration_t *m, size_t n, lt_migration_status_fn fn,
                            void *data, char *err, size_t errlen)
{
    PGconn *conn = NULL;
    PGresult *r = NULL, *exists = NULL;
    char(*sums)[SUM_HEX_LEN + 1] = NULL;
    int ret = LT_EINVAL, rows = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (conninfo == NULL || (n > 0 && m == NULL) || fn == NULL) {
        lt_errf(err, errlen, "invalid arguments");
        return LT_EINVAL;
    }
    if ((ret = prepare(conninfo, m, n, &sums, &conn, err, errlen)) != 0)
        goto fail;
    ret = LT_EIO;
    /* Read-only: a database never migrated simply has everything pending. */
    if (exec_simple(conn, "SET default_transaction_read_only = on", "read-only", err, errlen) != 0 ||
        exec_params(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, "looking up schema_migrations",
                    err, errlen, &exists) != 0)
        goto fail;
    if (strcmp(PQgetvalue(exists, 0, 0), "t") == 0) {
        if (exec_params(conn, "SELECT name, checksum, applied_at::text FROM schema_migrations ORDER BY name", 0, NULL,
                        "reading schema_migrations", err, errlen, &r) != 0)
            goto fail;
        rows = PQntuples(r);
    }
    for (size_t i = 0; i < n; i++) {
        lt_migration_state_t st = LT_MIGRATION_PENDING;
        const char *at = NULL;
        for (int row = 0; row < rows; row++) {
            if (strcmp(PQgetvalue(r, row, 0), m[i].name) != 0)
                continue;
            st = strcmp(PQgetvalue(r, row, 1), sums[i]) == 0 ? LT_MIGRATION_APPLIED : LT_MIGRATION_MODIFIED;
            at = PQgetvalue(r, row, 2);
        }
        fn(m[i].name, st, at, data);
    }
    for (int row = 0; row < rows; row++)
        if (find_migration(m, n, PQgetvalue(r, row, 0)) < 0)
            fn(PQgetvalue(r, row, 0), LT_MIGRATION_UNKNOWN, PQgetvalue(r, row, 2), data);
    ret = 0;
fail:
    PQclear(r);
    PQclear(exists);
    PQfinish(conn);
    free(sums);
    return ret;
}

struct pg_conn *lt_store_connect_blocking(const char *conninfo, const char *app, char *err, size_t errlen)
{
    const char *const keys[] = {"dbname", "client_encoding", "application_name", NULL};
    const char *const vals[] = {conninfo, "UTF8", app, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect to the database: %s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void lt_store_query_error(const struct pg_result *r, const struct pg_conn *conn, const char *what, char *err,
                          size_t errlen)
{
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    lt_errf(err, errlen, "%s: %s", what, msg != NULL ? msg : PQerrorMessage(conn));
}
