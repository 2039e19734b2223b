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
#include "store/store.h"

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

/* Runs `sql`, which must succeed (a command, or a query whose rows are ignored). */
static inline void pgtest_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%.200s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* The one value of a one-row query ("NULL" for SQL NULL), malloc'ed. */
static inline char *pgtest_query(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    char *v = strdup(PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    assert_non_null(v);
    PQclear(r);
    return v;
}

static inline void pgtest_assert_query(PGconn *c, const char *sql, const char *want)
{
    char *v = pgtest_query(c, sql);
    if (strcmp(v, want) != 0)
        fail_msg("%s: got '%s', want '%s'", sql, v, want);
    free(v);
}

/* Drops database `name` of the cluster of `base_url` (a superuser), sessions still in it too. */
static inline void pgtest_db_drop(const char *base_url, const char *name)
{
    char sql[160];
    PGconn *c = pgtest_connect(base_url);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pgtest_exec(c, sql);
    PQfinish(c);
}

/*
 * Database `name` made afresh and empty in the cluster of `base_url` (a superuser), owned by
 * role `owner` (NULL: that superuser). sql/roles.sql runs first so that `owner` and the roles
 * the migrations grant to exist; a copy left by a crashed earlier run is dropped.
 */
static inline void pgtest_db_recreate(const char *base_url, const char *name, const char *owner)
{
    char sql[200];
    PGconn *c = pgtest_connect(base_url);
    pgtest_run_roles_sql(c);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pgtest_exec(c, sql);
    if (owner != NULL)
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", name, owner);
    else
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    pgtest_exec(c, sql);
    PQfinish(c);
}

/*
 * pgtest_db_recreate, then every built-in migration applied as `owner` (as `latchctl
 * migrate` does it when `owner` is latch_owner). @return the conninfo of `owner` (NULL: the
 * superuser) for the new database, malloc'ed.
 */
static inline char *pgtest_db_create(const char *base_url, const char *name, const char *owner)
{
    char err[512];
    int applied = 0;
    pgtest_db_recreate(base_url, name, owner);
    char *conninfo = pgtest_conninfo(base_url, owner, name);
    assert_non_null(conninfo);
    if (lt_store_migrate(conninfo, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)) != 0)
        fail_msg("migrate %s: %s", name, err);
    return conninfo;
}

/*
 * A throwaway database made for a whole test program (pgtest_group_open) or for one test
 * (pgtest_db_new), so that programs and tests running at once on one cluster do not meet.
 */
typedef struct pgtest_db {
    char name[64];
    char *owner;   /* conninfo as the role that owns and migrated it; NULL: not made */
    char *runtime; /* conninfo as latch_app, the runtime role */
} pgtest_db_t;

/* `d->name` made and migrated by pgtest_db_create as `owner` (NULL: the superuser). */
static inline void pgtest_db_open(pgtest_db_t *d, const char *base_url, const char *owner)
{
    d->owner = pgtest_db_create(base_url, d->name, owner);
    d->runtime = pgtest_conninfo(base_url, "latch_app", d->name);
    assert_non_null(d->runtime);
}

/* Drops the database of `d` if it was made; `d` may be used again. */
static inline void pgtest_db_close(pgtest_db_t *d, const char *base_url)
{
    if (d->owner == NULL)
        return;
    pgtest_db_drop(base_url, d->name);
    free(d->owner);
    free(d->runtime);
    d->owner = d->runtime = NULL;
}

/*
 * For a per-test setup: a new latch_<what>_<pid>_<n>, owned by latch_owner and migrated as it,
 * exactly as `latchctl migrate` does it. Freed with pgtest_db_free.
 */
static inline pgtest_db_t *pgtest_db_new(const char *base_url, const char *what)
{
    static int seq; /* one per test program: the pid keeps programs apart */
    pgtest_db_t *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    snprintf(d->name, sizeof(d->name), "latch_%s_%d_%d", what, (int)getpid(), ++seq);
    pgtest_db_open(d, base_url, "latch_owner");
    return d;
}

/* For a per-test teardown: drops and frees what pgtest_db_new made (NULL: nothing). */
static inline void pgtest_db_free(pgtest_db_t *d, const char *base_url)
{
    if (d == NULL)
        return;
    pgtest_db_close(d, base_url);
    free(d);
}

/*
 * For a group setup: LATCH_TEST_DATABASE_URL, and with it `d` made as latch_unit_<what>_<pid>
 * and migrated as the superuser; NULL when the variable is unset or empty, `d` then left
 * unmade. pgtest_db_close(d, url) in the group teardown.
 */
static inline const char *pgtest_group_open(pgtest_db_t *d, const char *what)
{
    const char *url = getenv("LATCH_TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        return NULL;
    snprintf(d->name, sizeof(d->name), "latch_unit_%s_%d", what, (int)getpid());
    pgtest_db_open(d, url, NULL);
    return url;
}

/* Ends the current test as skipped unless `ready` (its database was made). */
#define PGTEST_SKIP_UNLESS(ready)                                                                                      \
    do {                                                                                                               \
        if (!(ready)) {                                                                                                \
            print_message("LATCH_TEST_DATABASE_URL not set: skipped\n");                                               \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

/*
 * For main: LATCH_TEST_DATABASE_URL, or NULL when it is unset or empty. Then the cases that
 * need PostgreSQL, tests[npure] onwards, are left out of the *n to run and named in a TAP
 * comment instead: cmocka's TAP "# SKIP" counts as a failure in meson.
 */
static inline const char *pgtest_url_or_leave_out(const struct CMUnitTest *tests, size_t npure, size_t *n)
{
    const char *url = getenv("LATCH_TEST_DATABASE_URL");
    if (url != NULL && url[0] != '\0')
        return url;
    printf("# LATCH_TEST_DATABASE_URL not set: skipping %zu PostgreSQL tests:", *n - npure);
    for (size_t i = npure; i < *n; i++)
        printf(" %s", tests[i].name);
    printf("\n");
    fflush(stdout);
    *n = npure;
    return NULL;
}

#endif
