/*
 * test_store: the store module.
 *
 * Pure tests (statement registry) always run. Tests that need PostgreSQL run when
 * LATCH_TEST_DATABASE_URL is set (tests/run sets it) and are skipped otherwise. They work in
 * a private database latch_unit_<pid> created by the group setup and dropped by the
 * teardown, so parallel test programs on the same cluster do not collide; the migration
 * test uses a second fresh one. pgtest_db_recreate makes both and runs sql/roles.sql (found
 * via LATCH_SOURCE_ROOT) first, which creates Latch's roles in the cluster if they are
 * missing (the migrations grant to them). The user in the URL must be allowed to create
 * databases and roles and to terminate backends (a superuser in the throwaway cluster of
 * tests/run).
 *
 * Each async test owns an h2o evloop and drives it with h2o_evloop_run(loop, 10) until a
 * flag is set or a deadline passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pgtest.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o/socket.h>

#include "base/base.h"
#include "store/store.h"

/* ---- fixtures ------------------------------------------------------------------------- */

static lt_store_stmt_t stmts[] = {
    {"unit.add_one", "SELECT $1::int + 1", 1, 0},
    {"unit.sleep", "SELECT pg_sleep($1::float8)", 1, 0},
    {"unit.insert", "INSERT INTO t_store_unit (v) VALUES ($1::int)", 1, 0},
    {"unit.count", "SELECT count(*) FROM t_store_unit WHERE v = $1::int", 1, 0},
    {"unit.divide", "SELECT 1 / $1::int", 1, 0},
};
#define ST_ADD_ONE (&stmts[0])
#define ST_SLEEP (&stmts[1])
#define ST_INSERT (&stmts[2])
#define ST_COUNT (&stmts[3])
#define ST_DIVIDE (&stmts[4])

static const char *base_url; /* LATCH_TEST_DATABASE_URL */
static char dbname[64];      /* latch_unit_<pid> */
static char *unit_conninfo;  /* base_url with dbname replaced */

#define SKIP_WITHOUT_PG() PGTEST_SKIP_UNLESS(unit_conninfo != NULL)

static int group_setup(void **state)
{
    (void)state;
    /* Registration must precede every store; the pure tests below only add failures. */
    if (lt_store_stmt_register(stmts, sizeof(stmts) / sizeof(stmts[0])) != 0)
        return -1;
    base_url = getenv("LATCH_TEST_DATABASE_URL");
    if (base_url == NULL || base_url[0] == '\0')
        return 0;
    snprintf(dbname, sizeof(dbname), "latch_unit_%d", (int)getpid());
    pgtest_db_recreate(base_url, dbname, NULL);
    unit_conninfo = pgtest_conninfo(base_url, NULL, dbname);
    PGconn *c = pgtest_connect(unit_conninfo);
    pgtest_exec(c, "CREATE TABLE t_store_unit (v int NOT NULL)");
    PQfinish(c);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (unit_conninfo != NULL) {
        pgtest_db_drop(base_url, dbname);
        free(unit_conninfo);
        unit_conninfo = NULL;
    }
    return 0;
}

/* ---- loop helpers --------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return lt_monotonic_ns() / 1000000;
}

/* Runs the loop until *flag becomes non-zero; @return 1 if it did within `ms`. */
static int run_until(h2o_loop_t *loop, volatile int *flag, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (!*flag && now_ms() < end)
        h2o_evloop_run(loop, 10);
    return *flag != 0;
}

static void run_for(h2o_loop_t *loop, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end)
        h2o_evloop_run(loop, 10);
}

typedef struct env {
    h2o_loop_t *loop;
    lt_store_t *store;
    int up;
} env_t;

static lt_store_options_t default_opts(void)
{
    lt_store_options_t o = {unit_conninfo, 2, 5000, 3000, 5000, 16};
    return o;
}

static void env_open(env_t *e, const lt_store_options_t *o)
{
    e->loop = h2o_evloop_create();
    assert_int_equal(lt_store_create(e->loop, o, &e->store), 0);
    uint64_t end = now_ms() + 5000;
    while (!lt_store_is_up(e->store) && now_ms() < end)
        h2o_evloop_run(e->loop, 10);
    e->up = lt_store_is_up(e->store);
}

/* Waits until every configured connection is up, so tests know the pool shape. */
static void env_wait_all_up(env_t *e)
{
    lt_store_stats_t st;
    uint64_t end = now_ms() + 5000;
    do {
        h2o_evloop_run(e->loop, 10);
        lt_store_get_stats(e->store, &st);
    } while (st.connections_up < st.connections && now_ms() < end);
    assert_int_equal(st.connections_up, st.connections);
}

static void env_close(env_t *e)
{
    lt_store_close(&e->store);
    assert_null(e->store);
    h2o_evloop_run(e->loop, 0); /* frees the closed sockets */
    h2o_evloop_destroy(e->loop);
}

/* One completion, recorded. */
typedef struct result {
    volatile int done;
    int calls;
    int submitted; /* set right after the submitting call returned */
    int early;     /* the callback ran before that: re-entrancy bug */
    const char *err;
    char value[64];
    char sqlstate[8];
    int res_null;
} result_t;

static void on_result(const char *err, PGresult *res, void *data)
{
    result_t *r = data;
    r->calls++;
    r->early |= !r->submitted;
    r->err = err;
    r->res_null = res == NULL;
    if (res != NULL && err == NULL && PQntuples(res) > 0 && PQnfields(res) > 0)
        snprintf(r->value, sizeof(r->value), "%s", PQgetvalue(res, 0, 0));
    if (res != NULL && err == lt_err_query) {
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", s != NULL ? s : "");
    }
    r->done = 1;
}

static void on_never(const char *err, PGresult *res, void *data)
{
    (void)err;
    (void)res;
    (void)data;
    fail_msg("a cancelled callback ran");
}

static int query1(env_t *e, const lt_store_stmt_t *st, const char *arg, result_t *r, lt_store_query_t **q)
{
    const char *params[1] = {arg};
    memset(r, 0, sizeof(*r));
    int ret = lt_store_query(e->store, st, params, 1, on_result, r, q);
    r->submitted = 1;
    return ret;
}

static const char *count_of(env_t *e, const char *v)
{
    static result_t r;
    assert_int_equal(query1(e, ST_COUNT, v, &r, NULL), 0);
    assert_true(run_until(e->loop, &r.done, 5000));
    assert_null(r.err);
    return r.value;
}

/* ---- pure tests ---------------------------------------------------------------------- */

static void test_register_limits(void **state)
{
    (void)state;
    static lt_store_stmt_t many[513];
    for (size_t i = 0; i < 513; i++)
        many[i] = (lt_store_stmt_t){"unit.many", "SELECT 1", 0, 0};
    /* Too many at once: refused as a whole. */
    assert_int_equal(lt_store_stmt_register(many, 513), LT_ERANGE);

    lt_store_stmt_t bad[] = {{"unit.nosql", NULL, 0, 0}};
    assert_int_equal(lt_store_stmt_register(bad, 1), LT_EINVAL);
    lt_store_stmt_t noname[] = {{NULL, "SELECT 1", 0, 0}};
    assert_int_equal(lt_store_stmt_register(noname, 1), LT_EINVAL);
}

static void test_register_duplicates(void **state)
{
    (void)state;
    lt_store_stmt_t again[] = {{"unit.add_one", "SELECT 2", 0, 0}};
    assert_int_equal(lt_store_stmt_register(again, 1), LT_EEXIST);
    lt_store_stmt_t twice[] = {{"unit.twice", "SELECT 1", 0, 0}, {"unit.twice", "SELECT 2", 0, 0}};
    assert_int_equal(lt_store_stmt_register(twice, 2), LT_EEXIST);
    assert_int_equal(stmts[0].id, 0);
    assert_int_equal(stmts[4].id, 4);
}

static void test_query_rejects_bad_arguments(void **state)
{
    (void)state;
    env_t e = {0};
    lt_store_options_t o = {"host=/nonexistent-latch-dir dbname=x", 1, 1000, 1000, 1000, 4};
    lt_store_stmt_t unregistered = {"unit.unregistered", "SELECT 1", 0, -1};
    const char *params[1] = {"1"};
    result_t r = {0};

    lt_store_options_t bad = o;
    bad.pool_size = 0;
    e.loop = h2o_evloop_create();
    assert_int_equal(lt_store_create(e.loop, &bad, &e.store), LT_EINVAL);
    /* A store that can never connect refuses work at once and closes cleanly. */
    assert_int_equal(lt_store_create(e.loop, &o, &e.store), 0);
    run_for(e.loop, 300);
    assert_false(lt_store_is_up(e.store));
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, params, 1, on_result, &r, NULL), LT_EUNAVAIL);
    lt_store_txn_t *t = NULL;
    assert_int_equal(lt_store_txn_begin(e.store, &t), LT_EUNAVAIL);
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, params, 0, on_result, &r, NULL), LT_EINVAL);
    assert_int_equal(lt_store_query(e.store, &unregistered, NULL, 0, on_result, &r, NULL), LT_EINVAL);
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, params, 1, NULL, &r, NULL), LT_EINVAL);
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.connections_up, 0);
    assert_true(st.reconnects >= 1);
    assert_int_equal(r.calls, 0);
    env_close(&e);
    /* Registration is closed once a store exists. */
    lt_store_stmt_t late[] = {{"unit.late", "SELECT 1", 0, 0}};
    assert_int_equal(lt_store_stmt_register(late, 1), LT_ESTATE);
}

/* ---- PostgreSQL tests ------------------------------------------------------------------ */

static void test_query(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t r, n;
    env_open(&e, &o);
    assert_true(e.up);

    assert_int_equal(query1(&e, ST_ADD_ONE, "41", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 5000));
    assert_int_equal(r.early, 0);
    assert_null(r.err);
    assert_string_equal(r.value, "42");

    /* SQL NULL parameter */
    const char *params[1] = {NULL};
    memset(&n, 0, sizeof(n));
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, params, 1, on_result, &n, NULL), 0);
    n.submitted = 1;
    assert_true(run_until(e.loop, &n.done, 5000));
    assert_null(n.err);
    assert_string_equal(n.value, "");

    /* Many at once: more than the pool, fewer than pool + wait queue. */
    result_t many[12];
    char arg[12][16];
    for (int i = 0; i < 12; i++) {
        snprintf(arg[i], sizeof(arg[i]), "%d", i);
        assert_int_equal(query1(&e, ST_ADD_ONE, arg[i], &many[i], NULL), 0);
    }
    for (int i = 0; i < 12; i++) {
        char want[16];
        assert_true(run_until(e.loop, &many[i].done, 5000));
        snprintf(want, sizeof(want), "%d", i + 1);
        assert_string_equal(many[i].value, want);
        assert_int_equal(many[i].early, 0);
    }
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_true(st.queries >= 14);
    assert_int_equal(st.waiting, 0);
    env_close(&e);
}

static void test_query_error(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t r;
    env_open(&e, &o);
    assert_int_equal(query1(&e, ST_DIVIDE, "0", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 5000));
    assert_ptr_equal(r.err, lt_err_query);
    assert_string_equal(r.sqlstate, "22012");
    /* The connection stays usable. */
    assert_int_equal(query1(&e, ST_DIVIDE, "1", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 5000));
    assert_null(r.err);
    assert_string_equal(r.value, "1");
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_true(st.errors >= 1);
    env_close(&e);
}

/* Records the begin-insert-commit sequence. */
static void test_txn_commit(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t ins = {0}, com = {0};
    const char *params[1] = {"7"};
    lt_store_txn_t *t = NULL;
    env_open(&e, &o);
    assert_int_equal(lt_store_txn_begin(e.store, &t), 0);
    assert_int_equal(lt_store_txn_query(t, ST_INSERT, params, 1, on_result, &ins), 0);
    assert_int_equal(lt_store_txn_commit(t, on_result, &com), 0);
    ins.submitted = com.submitted = 1;
    /* A committing transaction takes no more statements. */
    assert_true(run_until(e.loop, &com.done, 5000));
    assert_int_equal(ins.calls, 1);
    assert_null(ins.err);
    assert_null(com.err);
    assert_int_equal(com.early, 0);
    assert_string_equal(count_of(&e, "7"), "1");
    env_close(&e);
}

static void test_txn_abort(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t ins = {0};
    const char *params[1] = {"8"};
    lt_store_txn_t *t = NULL;
    env_open(&e, &o);
    assert_int_equal(lt_store_txn_begin(e.store, &t), 0);
    assert_int_equal(lt_store_txn_query(t, ST_INSERT, params, 1, on_result, &ins), 0);
    ins.submitted = 1;
    assert_true(run_until(e.loop, &ins.done, 5000));
    assert_null(ins.err);
    lt_store_txn_abort(t);
    assert_string_equal(count_of(&e, "8"), "0");

    /* Abort with work still queued: no callback of it runs. */
    assert_int_equal(lt_store_txn_begin(e.store, &t), 0);
    assert_int_equal(lt_store_txn_query(t, ST_INSERT, params, 1, on_never, NULL), 0);
    assert_int_equal(lt_store_txn_commit(t, on_never, NULL), 0);
    lt_store_txn_abort(t);
    run_for(e.loop, 100);

    /* Connections are all released again. */
    env_wait_all_up(&e);
    lt_store_stats_t st;
    uint64_t end = now_ms() + 2000;
    do {
        h2o_evloop_run(e.loop, 10);
        lt_store_get_stats(e.store, &st);
    } while (st.connections_busy != 0 && now_ms() < end);
    assert_int_equal(st.connections_busy, 0);
    env_close(&e);
}

static void test_txn_failure(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t bad = {0}, behind = {0};
    const char *zero[1] = {"0"}, *nine[1] = {"9"};
    lt_store_txn_t *t = NULL;
    env_open(&e, &o);
    assert_int_equal(lt_store_txn_begin(e.store, &t), 0);
    assert_int_equal(lt_store_txn_query(t, ST_DIVIDE, zero, 1, on_result, &bad), 0);
    assert_int_equal(lt_store_txn_query(t, ST_INSERT, nine, 1, on_result, &behind), 0);
    bad.submitted = behind.submitted = 1;
    assert_true(run_until(e.loop, &behind.done, 5000));
    assert_ptr_equal(bad.err, lt_err_query);
    assert_string_equal(bad.sqlstate, "22012");
    /* Queued behind the failure: same error, no result. */
    assert_ptr_equal(behind.err, lt_err_query);
    assert_int_equal(behind.res_null, 1);
    assert_int_equal(lt_store_txn_query(t, ST_INSERT, nine, 1, on_result, &behind), LT_ESTATE);
    assert_int_equal(lt_store_txn_commit(t, on_result, &behind), LT_ESTATE);
    lt_store_txn_abort(t);
    assert_string_equal(count_of(&e, "9"), "0");
    env_close(&e);
}

static void test_timeout(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t r, w;
    o.pool_size = 1;
    o.query_timeout_ms = 200;
    env_open(&e, &o);
    uint64_t start = now_ms();
    assert_int_equal(query1(&e, ST_SLEEP, "5", &r, NULL), 0);
    assert_int_equal(query1(&e, ST_SLEEP, "5", &w, NULL), 0); /* waits, then expires waiting */
    assert_true(run_until(e.loop, &r.done, 3000));
    assert_ptr_equal(r.err, lt_err_timeout);
    assert_true(now_ms() - start < 1500);
    assert_true(run_until(e.loop, &w.done, 3000));
    assert_ptr_equal(w.err, lt_err_timeout);
    /* The connection was replaced and works. */
    env_wait_all_up(&e);
    assert_int_equal(query1(&e, ST_ADD_ONE, "1", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 3000));
    assert_null(r.err);
    assert_string_equal(r.value, "2");
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_true(st.timeouts >= 2);
    assert_true(st.reconnects >= 1);
    env_close(&e);
}

static void test_cancel(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    lt_store_query_t *running = NULL, *waiting = NULL;
    const char *sleep_p[1] = {"0.2"}, *one[1] = {"1"};
    result_t r;
    o.pool_size = 1;
    env_open(&e, &o);
    assert_int_equal(lt_store_query(e.store, ST_SLEEP, sleep_p, 1, on_never, NULL, &running), 0);
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, one, 1, on_never, NULL, &waiting), 0);
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_int_equal(st.waiting, 1);
    lt_store_cancel(waiting);
    lt_store_cancel(running);
    lt_store_get_stats(e.store, &st);
    assert_int_equal(st.waiting, 0);
    /* The next query runs after the discarded one on the same connection. */
    assert_int_equal(query1(&e, ST_ADD_ONE, "1", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 3000));
    assert_string_equal(r.value, "2");

    /* Cancelled right after it was sent. */
    lt_store_query_t *q = NULL;
    assert_int_equal(lt_store_query(e.store, ST_ADD_ONE, one, 1, on_never, NULL, &q), 0);
    lt_store_cancel(q);
    run_for(e.loop, 100);
    env_close(&e);
}

static void test_overload(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t s, w1, w2, x;
    lt_store_txn_t *t = NULL;
    o.pool_size = 1;
    o.max_waiting = 2;
    env_open(&e, &o);
    assert_int_equal(query1(&e, ST_SLEEP, "0.1", &s, NULL), 0);
    assert_int_equal(query1(&e, ST_ADD_ONE, "1", &w1, NULL), 0);
    assert_int_equal(query1(&e, ST_ADD_ONE, "2", &w2, NULL), 0);
    assert_int_equal(query1(&e, ST_ADD_ONE, "3", &x, NULL), LT_EOVERLOAD);
    assert_int_equal(lt_store_txn_begin(e.store, &t), LT_EOVERLOAD);
    assert_true(run_until(e.loop, &w2.done, 3000));
    assert_true(s.done && w1.done);
    assert_null(s.err);
    assert_string_equal(w1.value, "2");
    assert_string_equal(w2.value, "3");
    assert_int_equal(x.calls, 0);
    env_close(&e);
}

static void test_connection_loss(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t r;
    char sql[256];
    env_open(&e, &o);
    env_wait_all_up(&e);
    assert_int_equal(query1(&e, ST_SLEEP, "3", &r, NULL), 0);
    run_for(e.loop, 100);
    PGconn *c = pgtest_connect(base_url);
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()",
             dbname);
    pgtest_exec(c, sql);
    PQfinish(c);
    assert_true(run_until(e.loop, &r.done, 3000));
    assert_ptr_equal(r.err, lt_err_unavailable);
    /* Reconnects within the first backoff steps. */
    env_wait_all_up(&e);
    assert_int_equal(query1(&e, ST_ADD_ONE, "5", &r, NULL), 0);
    assert_true(run_until(e.loop, &r.done, 3000));
    assert_string_equal(r.value, "6");
    lt_store_stats_t st;
    lt_store_get_stats(e.store, &st);
    assert_true(st.reconnects >= 2);
    env_close(&e);
}

static void on_closed(const char *err, PGresult *res, void *data)
{
    result_t *r = data;
    (void)res;
    r->calls++;
    r->err = err;
    r->done = 1;
}

static void test_close_fails_pending(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    env_t e = {0};
    lt_store_options_t o = default_opts();
    result_t a = {0}, b = {0}, ta = {0};
    const char *p[1] = {"2"};
    lt_store_txn_t *t = NULL, *idle = NULL;
    o.pool_size = 1;
    env_open(&e, &o);
    assert_int_equal(lt_store_query(e.store, ST_SLEEP, p, 1, on_closed, &a, NULL), 0);
    assert_int_equal(lt_store_query(e.store, ST_SLEEP, p, 1, on_closed, &b, NULL), 0);
    assert_int_equal(lt_store_txn_begin(e.store, &t), 0);
    assert_int_equal(lt_store_txn_query(t, ST_SLEEP, p, 1, on_closed, &ta), 0);
    assert_int_equal(lt_store_txn_begin(e.store, &idle), 0);
    run_for(e.loop, 50);
    lt_store_close(&e.store);
    assert_int_equal(a.calls, 1);
    assert_ptr_equal(a.err, lt_err_closed);
    assert_int_equal(b.calls, 1);
    assert_ptr_equal(b.err, lt_err_closed);
    assert_int_equal(ta.calls, 1);
    assert_ptr_equal(ta.err, lt_err_closed);
    /* Detached handles stay valid until their owners end them. */
    assert_int_equal(lt_store_txn_query(t, ST_SLEEP, p, 1, on_closed, &ta), LT_ESTATE);
    lt_store_txn_abort(t);
    lt_store_txn_abort(idle);
    h2o_evloop_run(e.loop, 0);
    h2o_evloop_destroy(e.loop);
}

/* ---- migrations ------------------------------------------------------------------------- */

static void count_status(const char *name, lt_migration_state_t st, const char *at, void *data)
{
    int *counts = data;
    (void)name;
    (void)at;
    counts[st]++;
}

static void test_migrate(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    char db[80], err[512];
    int applied = -1, counts[4] = {0};
    snprintf(db, sizeof(db), "latch_unit_mig_%d", (int)getpid());
    pgtest_db_recreate(base_url, db, NULL);
    char *url = pgtest_conninfo(base_url, NULL, db);

    assert_true(lt_migrations_count >= 1);
    assert_int_equal(lt_store_migrate_status(url, lt_migrations, lt_migrations_count, count_status, counts, err,
                                             sizeof(err)),
                     0);
    assert_int_equal(counts[LT_MIGRATION_PENDING], (int)lt_migrations_count);

    assert_int_equal(lt_store_migrate(url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, (int)lt_migrations_count);
    assert_int_equal(lt_store_migrate(url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);

    /* The runtime role can read the history but not change it. */
    PGconn *c = pgtest_connect(url);
    PGresult *r = PQexec(c, "SELECT has_table_privilege('latch_runtime', 'schema_migrations', 'SELECT'),"
                            " has_table_privilege('latch_runtime', 'schema_migrations', 'INSERT')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 0, 1), "f");
    PQclear(r);

    /* A failing file is rolled back as a whole and named in the error. */
    lt_migration_t more[2] = {lt_migrations[0], {"9998_broken.sql", "CREATE TABLE t_ok (a int); SELECT nope;", 39}};
    more[1].len = strlen(more[1].sql);
    assert_int_equal(lt_store_migrate(url, more, 2, &applied, err, sizeof(err)), LT_EIO);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err, "9998_broken.sql"));
    assert_non_null(strstr(err, "nope"));
    r = PQexec(c, "SELECT to_regclass('t_ok') IS NULL, count(*) FROM schema_migrations WHERE name = '9998_broken.sql'");
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 0, 1), "0");
    PQclear(r);

    /* An applied migration unknown to this binary is only a warning. */
    pgtest_exec(c, "INSERT INTO schema_migrations (name, checksum) VALUES ('9999_future.sql', 'x')");
    assert_int_equal(lt_store_migrate(url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)), 0);
    memset(counts, 0, sizeof(counts));
    assert_int_equal(lt_store_migrate_status(url, lt_migrations, lt_migrations_count, count_status, counts, err,
                                             sizeof(err)),
                     0);
    assert_int_equal(counts[LT_MIGRATION_APPLIED], (int)lt_migrations_count);
    assert_int_equal(counts[LT_MIGRATION_UNKNOWN], 1);

    /* A file changed after it was applied is refused, by name. */
    pgtest_exec(c, "UPDATE schema_migrations SET checksum = 'tampered' WHERE name = '0001_init.sql'");
    assert_int_equal(lt_store_migrate(url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)), LT_EINVAL);
    assert_non_null(strstr(err, "0001_init.sql"));
    PQfinish(c);

    /* No database there. */
    char *nodb = pgtest_conninfo(base_url, NULL, "latch_unit_does_not_exist");
    assert_int_equal(lt_store_migrate(nodb, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)),
                     LT_EUNAVAIL);
    free(nodb);
    free(url);
    pgtest_db_drop(base_url, db);
}

/* ---- listener ---------------------------------------------------------------------------- */

typedef struct heard {
    int connects;
    int got;
    char channel[64];
    char payload[64];
} heard_t;

static void on_notify(const char *channel, const char *payload, void *data)
{
    heard_t *h = data;
    if (channel == NULL) {
        __atomic_add_fetch(&h->connects, 1, __ATOMIC_SEQ_CST);
        return;
    }
    snprintf(h->channel, sizeof(h->channel), "%s", channel);
    snprintf(h->payload, sizeof(h->payload), "%s", payload != NULL ? payload : "(kick)");
    __atomic_store_n(&h->got, 1, __ATOMIC_SEQ_CST);
}

static int wait_atomic(int *v, int at_least, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (__atomic_load_n(v, __ATOMIC_SEQ_CST) < at_least && now_ms() < end)
        usleep(10000);
    return __atomic_load_n(v, __ATOMIC_SEQ_CST) >= at_least;
}

static void test_listener(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    heard_t h;
    char sql[256];
    const char *channels[] = {"latch unit \"chan\"", "other"};
    lt_store_listener_t *l = NULL;
    memset(&h, 0, sizeof(h));
    assert_int_equal(lt_store_listener_start(unit_conninfo, channels, 2, 1000, on_notify, &h, &l), 0);
    assert_true(wait_atomic(&h.connects, 1, 5000));

    PGconn *c = pgtest_connect(unit_conninfo);
    pgtest_exec(c, "SELECT pg_notify('latch unit \"chan\"', 'hello')");
    assert_true(wait_atomic(&h.got, 1, 5000));
    assert_string_equal(h.channel, "latch unit \"chan\"");
    assert_string_equal(h.payload, "hello");

    /* A lost connection is reopened and announced again. */
    pgtest_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE backend_type = 'client backend' AND query LIKE 'LISTEN%'"
                   " AND datname = current_database() AND pid <> pg_backend_pid()");
    assert_true(wait_atomic(&h.connects, 2, 5000));
    __atomic_store_n(&h.got, 0, __ATOMIC_SEQ_CST);
    snprintf(sql, sizeof(sql), "SELECT pg_notify('other', 'again')");
    pgtest_exec(c, sql);
    assert_true(wait_atomic(&h.got, 1, 5000));
    assert_string_equal(h.payload, "again");

    /* A kick is delivered on the control thread with payload NULL, without the server. */
    __atomic_store_n(&h.got, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(lt_store_listener_kick(l, "other"), 0);
    assert_true(wait_atomic(&h.got, 1, 5000));
    assert_string_equal(h.channel, "other");
    assert_string_equal(h.payload, "(kick)");
    assert_int_equal(lt_store_listener_kick(l, "not ours"), LT_EINVAL);
    PQfinish(c);
    /* Halted, the object still takes kicks (nothing happens) until it is freed. */
    lt_store_listener_halt(l);
    __atomic_store_n(&h.got, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(lt_store_listener_kick(l, "other"), 0);
    usleep(50000);
    assert_int_equal(__atomic_load_n(&h.got, __ATOMIC_SEQ_CST), 0);
    lt_store_listener_stop(&l);
    assert_null(l);

    /* Bad arguments. */
    assert_int_equal(lt_store_listener_start(unit_conninfo, channels, 0, 1000, on_notify, &h, &l), LT_EINVAL);
}

/*
 * A fake PostgreSQL server for the listener: accepts one connection, answers the startup
 * packet with AuthenticationOk and ReadyForQuery, then never answers a query (a server that
 * stalls, or a network partition after connect). It gives up after 5 s so that a regression
 * fails the test instead of hanging it.
 */
typedef struct stall_server {
    int lfd;
    int port;
    int got_query; /* atomic: the first query arrived */
    pthread_t thread;
} stall_server_t;

static int read_full(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void *stall_server_main(void *arg)
{
    stall_server_t *ss = arg;
    static const unsigned char hello[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
    unsigned char buf[4096];
    uint64_t end = now_ms() + 5000;
    int fd = accept(ss->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (read_full(fd, buf, 4) == 0) {
        uint32_t len = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) | ((uint32_t)buf[2] << 8) | buf[3];
        if (len >= 8 && len <= sizeof(buf) && read_full(fd, buf + 4, len - 4) == 0 &&
            write(fd, hello, sizeof(hello)) == (ssize_t)sizeof(hello)) {
            while (now_ms() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 50) <= 0)
                    continue;
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                    break; /* the client closed */
                if (buf[0] == 'Q')
                    __atomic_store_n(&ss->got_query, 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    close(fd);
    return NULL;
}

static void stall_server_start(stall_server_t *ss)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    memset(ss, 0, sizeof(*ss));
    ss->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ss->lfd >= 0);
    assert_int_equal(bind(ss->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ss->lfd, 4), 0);
    assert_int_equal(getsockname(ss->lfd, (struct sockaddr *)&sa, &sl), 0);
    ss->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&ss->thread, NULL, stall_server_main, ss), 0);
}

/* Regression: LISTEN ran as a blocking PQexec, so stop() (and SIGTERM) waited as long as the
 * server did not answer. */
static void test_listener_stop_while_server_stalls(void **state)
{
    (void)state;
    stall_server_t ss;
    heard_t h;
    char conninfo[160];
    const char *channels[] = {"stalled"};
    lt_store_listener_t *l = NULL;
    memset(&h, 0, sizeof(h));
    stall_server_start(&ss);
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=latch dbname=latch sslmode=disable gssencmode=disable", ss.port);
    assert_int_equal(lt_store_listener_start(conninfo, channels, 1, 1000, on_notify, &h, &l), 0);
    assert_true(wait_atomic(&ss.got_query, 1, 4000)); /* LISTEN sent, never answered */
    uint64_t t0 = now_ms();
    lt_store_listener_stop(&l);
    uint64_t took = now_ms() - t0;
    assert_null(l);
    assert_true(took < 2000);
    assert_int_equal(__atomic_load_n(&h.connects, __ATOMIC_SEQ_CST), 0); /* never "listening" */
    pthread_join(ss.thread, NULL);
    close(ss.lfd);
}

int main(void)
{
    /* The pure tests first: the PostgreSQL ones follow from index NPURE. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_limits),
        cmocka_unit_test(test_register_duplicates),
        cmocka_unit_test(test_query_rejects_bad_arguments),
        cmocka_unit_test(test_listener_stop_while_server_stalls),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_query_error),
        cmocka_unit_test(test_txn_commit),
        cmocka_unit_test(test_txn_abort),
        cmocka_unit_test(test_txn_failure),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_connection_loss),
        cmocka_unit_test(test_close_fails_pending),
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_listener),
    };
    enum { NPURE = 4 };
    size_t n = sizeof(tests) / sizeof(tests[0]);
    lt_log_set_level(LT_LOG_ERROR); /* expected connection failures would flood the output */
    (void)pgtest_url_or_leave_out(tests, NPURE, &n);
    return _cmocka_run_group_tests("store", tests, n, group_setup, group_teardown);
}
