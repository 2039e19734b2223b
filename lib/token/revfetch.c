/*
 * revfetch: loads the revocation log (table revocations, sql/0006) for an instance that
 * (re)connected, in the wire form of revset.h. Blocking libpq on a caller's connection (the
 * control thread's): never call it from a worker loop.
 *
 * Pages by seq (keyset pagination through latch_revocations_since), so a large log is read
 * in bounded memory and a page never repeats or skips an entry: seq order is commit order.
 */
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/revset.h"

#define DEFAULT_BATCH 1000

static const char sql_since[] = "SELECT o_seq, o_line FROM latch_revocations_since($1::bigint, $2::integer)";

int lt_token_revocations_fetch(struct pg_conn *c, uint64_t after, size_t batch_lines, lt_rev_batch_fn fn, void *data,
                               uint64_t *last_seq, char *err, size_t errlen)
{
    lt_buf_t b = LT_BUF_INIT;
    PGresult *res = NULL;
    char p_after[24], p_limit[16];
    const char *params[2] = {p_after, p_limit};
    int ret = 0;

    *last_seq = after;
    if (errlen > 0)
        err[0] = '\0';
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "no database connection");
        return LT_EUNAVAIL;
    }
    if (batch_lines == 0)
        batch_lines = DEFAULT_BATCH;
    if (batch_lines > INT_MAX)
        batch_lines = INT_MAX;
    snprintf(p_limit, sizeof(p_limit), "%zu", batch_lines);

    for (;;) {
        /* The column is bigint: a seq above INT64_MAX cannot exist, so stop there. */
        if (after > (uint64_t)INT64_MAX)
            break;
        snprintf(p_after, sizeof(p_after), "%llu", (unsigned long long)after);
        res = PQexecParams(c, sql_since, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            lt_errf(err, errlen, "latch_revocations_since: %s", PQerrorMessage(c));
            ret = PQstatus(c) == CONNECTION_OK ? LT_EIO : LT_EUNAVAIL;
            goto done;
        }
        int rows = PQntuples(res);
        uint64_t page_last = after;
        b.len = 0;
        for (int i = 0; i < rows; i++) {
            const char *seq = PQgetvalue(res, i, 0), *line = PQgetvalue(res, i, 1);
            char *end = NULL;
            unsigned long long v = strtoull(seq, &end, 10);
            if (end == seq || *end != '\0' || v <= page_last) {
                lt_errf(err, errlen, "latch_revocations_since: rows out of order");
                ret = LT_EIO;
                goto done;
            }
            page_last = v;
            if ((b.len > 0 && lt_buf_append(&b, "\n", 1) != 0) || lt_buf_appends(&b, line) != 0) {
                ret = LT_ENOMEM;
                goto done;
            }
        }
        PQclear(res);
        res = NULL;
        if (rows == 0)
            break;
        if ((ret = fn(b.base, data)) != 0)
            goto done;
        after = page_last;
        *last_seq = after;
        if ((size_t)rows < batch_lines)
            break;
    }
done:
    PQclear(res);
    lt_buf_free(&b);
    return ret;
}

int lt_token_revocations_fetch_url(const char *conninfo, uint64_t after, size_t batch_lines, lt_rev_batch_fn fn,
                                   void *data, uint64_t *last_seq, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(conninfo);
    int ret;
    *last_seq = after;
    if (PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return LT_EUNAVAIL;
    }
    ret = lt_token_revocations_fetch(c, after, batch_lines, fn, data, last_seq, err, errlen);
    PQfinish(c);
    return ret;
}
