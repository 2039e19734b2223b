/*
 * pgtest: PostgreSQL helpers shared by the unit tests that need a database (they read
 * LATCH_TEST_DATABASE_URL, which tests/run points at its throwaway cluster).
 *
 * Include after <cmocka.h>: failures end the current test through cmocka.
 */
#ifndef LT_TESTS_PGTEST_H
#define LT_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

/*
 * `url` rebuilt as a conninfo string for database `db` and, when `user` is not NULL, that
 * user (its password dropped: the roles of roles.sql use local trust in the test cluster).
 * malloc'ed; NULL when `url` does not parse.
 */
static inline char *pgtest_conninfo(const char *url, const char *user, const char *db)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    lt_buf_t b = LT_BUF_INIT;
    if (opts == NULL) {
        PQfreemem(errmsg);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || strcmp(o->keyword, "dbname") == 0 ||
            (user != NULL && (strcmp(o->keyword, "user") == 0 || strcmp(o->keyword, "password") == 0)))
            continue;
        assert_int_equal(lt_buf_appendf(&b, "%s='", o->keyword), 0);
        for (const char *p = o->val; *p != '\0'; p++) {
            if (*p == '\'' || *p == '\\')
                assert_int_equal(lt_buf_append(&b, "\\", 1), 0);
            assert_int_equal(lt_buf_append(&b, p, 1), 0);
        }
        assert_int_equal(lt_buf_append(&b, "' ", 2), 0);
    }
    if (user != NULL)
        assert_int_equal(lt_buf_appendf(&b, "user='%s' ", user), 0);
    assert_int_equal(lt_buf_appendf(&b, "dbname='%s'", db), 0);
    PQconninfoFree(opts);
    return b.base;
}

static inline void pgtest_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* A blocking connection (UTF8, notices such as "does not exist, skipping" silenced). */
static inline PGconn *pgtest_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, pgtest_quiet, NULL);
    assert_int_equal(PQsetClientEncoding(c, "UTF8"), 0);
    return c;
}

/* Runs sql/roles.sql (idempotent) as the connected superuser. */
static inline void pgtest_run_roles_sql(PGconn *c)
{
    const char *root = getenv("LATCH_SOURCE_ROOT");
    char path[1024], *sql = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/sql/roles.sql", root != NULL ? root : ".");
    assert_int_equal(lt_read_file(path, 1 << 20, &sql, &len), 0);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        /* Another test program may be creating the same roles right now: retry once. */
        PQclear(r);
        usleep(200000);
        r = PQexec(c, sql);
    }
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    free(sql);
}

#endif
