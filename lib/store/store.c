/*
 * store.c: the per-worker async PostgreSQL pool (see store.h for the contract).
 *
 * Threading: a store belongs to the worker thread whose h2o evloop drives it. Every
 * function here except lt_store_get_stats/lt_store_is_up must be called on that thread.
 * The statement registry is filled once at start-up, before any store exists, and only
 * read afterwards.
 *
 * Shape:
 *   - `struct conn` is one libpq connection. Its socket is a dup() of PQsocket() wrapped
 *     as an h2o socket with H2O_SOCKET_FLAG_DONT_READ, so h2o only tells us about
 *     readiness and libpq keeps reading its own bytes. States: DOWN (waiting for a
 *     backoff timer) -> CONNECTING (PQconnectPoll) -> PREPARING (one PQsendPrepare per
 *     registered statement) -> READY. A READY connection runs at most one command.
 *   - `lt_store_query_t` is one command: a prepared statement, or BEGIN/COMMIT/ROLLBACK
 *     of a transaction. It sits in exactly one place: the store's wait queue, its
 *     transaction's op queue, on a connection (running) or in the done list.
 *   - `lt_store_txn_t` pins one connection from BEGIN to COMMIT/ROLLBACK. Its BEGIN
 *     waits in the store's queue like a query; statements queue on the transaction.
 *
 * Completions never run on the caller's stack: complete() parks the query in the done
 * list and links a 0 ms timeout entry (`kick`); h2o runs it at the end of the current loop
 * iteration and the callbacks run from there. So a callback may call anything in this
 * file (except lt_store_close), and any function here may fail a query without
 * re-entering its caller. Connections are torn down and queries sent directly, since
 * neither runs user code.
 *
 * Timers: h2o 2.2 only has fixed-duration buckets, so the store owns one bucket per
 * distinct delay: 0 ms (kick), query_timeout_ms (every command's deadline, linked when the
 * command is queued, hence "waiting included"), connect_timeout_ms, and the backoff steps
 * 100, 200, 400, ... ms up to reconnect_max_ms.
 *
 * Ownership: the store owns every query and transaction object. A query handle is valid
 * until its callback ran or it was cancelled; a cancelled running query stays owned by its
 * connection until its result arrives, and is then dropped without touching its callback
 * data. A transaction handle is valid until its commit callback ran or it was aborted.
 */
#include "store/store.h"
#include "store/internal.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o/linklist.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>

/* Enough for every module's statements; raise it when a module needs more. */
#define MAX_STMTS 512
/* First reconnect delay; doubled per consecutive failure up to reconnect_max_ms. */
#define BACKOFF_BASE_MS 100
#define MAX_BACKOFF_STEPS 24
/*
 * While the store has no connection at all, retries are never spaced more than this, so
 * that a restarted PostgreSQL is noticed (and /readyz turns 200 again) within a few
 * seconds even with a large reconnect_max_ms. The full cap only applies while some other
 * connection is up, i.e. when one connection keeps failing (max_connections, ...).
 */
#define DOWN_RETRY_MAX_MS 2000

/* ---- statement registry --------------------------------------------------------------- */

static lt_store_stmt_t *registry[MAX_STMTS];
static size_t nregistered;
static int registry_frozen; /* set by the first lt_store_create (read from any thread) */

int lt_store_stmt_register(lt_store_stmt_t *stmts, size_t n)
{
    if (__atomic_load_n(&registry_frozen, __ATOMIC_RELAXED))
        return LT_ESTATE;
    if (n > 0 && stmts == NULL)
        return LT_EINVAL;
    if (n > MAX_STMTS - nregistered)
        return LT_ERANGE;
    /* Validate the whole batch first so a failure registers nothing. */
    for (size_t i = 0; i < n; i++) {
        if (stmts[i].name == NULL || stmts[i].name[0] == '\0' || stmts[i].sql == NULL || stmts[i].nparams < 0)
            return LT_EINVAL;
        for (size_t j = 0; j < nregistered; j++)
            if (strcmp(registry[j]->name, stmts[i].name) == 0)
                return LT_EEXIST;
        for (size_t j = 0; j < i; j++)
            if (strcmp(stmts[j].name, stmts[i].name) == 0)
                return LT_EEXIST;
    }
    for (size_t i = 0; i < n; i++) {
        stmts[i].id = (int)nregistered;
        registry[nregistered++] = &stmts[i];
    }
    return 0;
}

int lt_store_stmt_register_each(lt_store_stmt_t *const *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = lt_store_stmt_register(stmts[i], 1);
        if (ret != 0)
            return ret;
    }
    return 0;
}

static int stmt_is_registered(const lt_store_stmt_t *stmt)
{
    return stmt->id >= 0 && (size_t)stmt->id < nregistered && registry[stmt->id] == stmt;
}

/* Server-side names are short and fixed-width-ish: the registered names may exceed
 * NAMEDATALEN and would then be truncated into collisions. */
static void stmt_server_name(char *buf, size_t len, int id)
{
    snprintf(buf, len, "s%d", id);
}

/* ---- types -------------------------------------------------------------------------- */

typedef enum { Q_STMT, Q_BEGIN, Q_COMMIT, Q_ROLLBACK } qkind_t;
typedef enum { QS_NEW, QS_WAITING, QS_TXN, QS_RUNNING, QS_DONE } qstate_t;
typedef enum { C_DOWN, C_CONNECTING, C_PREPARING, C_READY } cstate_t;

struct conn;

struct lt_store_query {
    lt_store_t *s;
    qkind_t kind;
    qstate_t state;
    const lt_store_stmt_t *stmt;
    int nparams;
    const char **params; /* into the same allocation */
    lt_store_cb cb;      /* NULL: internal command, or cancelled: result is dropped */
    void *data;
    lt_store_txn_t *txn;
    struct conn *conn;    /* while running */
    h2o_linklist_t link;  /* wait queue, txn ops or done list */
    h2o_timeout_entry_t deadline;
    const char *err; /* once done */
    PGresult *res;
};

struct lt_store_txn {
    lt_store_t *s; /* NULL once the store closed under an unfinished owner */
    struct conn *conn;
    lt_store_query_t *begin;  /* while BEGIN waits in the store queue */
    lt_store_query_t *commit; /* the COMMIT until its callback ran */
    h2o_linklist_t ops;       /* queued, not yet sent */
    h2o_linklist_t all;       /* in s->txns */
    const char *failed;       /* the error that failed it */
    unsigned ending : 1;      /* commit requested */
    unsigned owner_gone : 1;  /* aborted, or the commit callback ran */
    unsigned rollback_sent : 1;
};

struct conn {
    lt_store_t *s;
    int index;
    cstate_t state;
    PGconn *pg;
    h2o_socket_t *sock;
    dev_t sock_dev; /* identity of the wrapped socket: libpq may reuse the fd number */
    ino_t sock_ino;
    PostgresPollingStatusType poll;
    size_t prep_next;
    int inflight;       /* a command was sent and its results are not all in */
    PGresult *last;     /* last result of the command in flight */
    lt_store_query_t *running;
    lt_store_txn_t *txn;
    h2o_timeout_entry_t timer; /* connect deadline or backoff */
    int failures;              /* consecutive failed attempts */
    int recycling;             /* dropped on purpose (timeout), reconnecting at once */
    int ever_up;
};

struct lt_store {
    h2o_loop_t *loop;
    char *conninfo;
    lt_store_options_t opts;
    struct conn *conns;
    int nconns;
    int navail;   /* READY or recycling connections */
    int ever_avail;
    int closing;
    h2o_linklist_t waiting;
    size_t nwaiting;
    h2o_linklist_t done;
    h2o_linklist_t txns;
    h2o_timeout_t kick_to, query_to, connect_to;
    h2o_timeout_t backoff_to[MAX_BACKOFF_STEPS];
    int nbackoff;
    h2o_timeout_entry_t kick;
    lt_store_stats_t stats; /* written here, read anywhere: relaxed atomics only */
    int avail_pub;
};

#define STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->stats.field, (n), __ATOMIC_RELAXED)
#define STAT_SET(s, field, v) __atomic_store_n(&(s)->stats.field, (v), __ATOMIC_RELAXED)

static void conn_fail(struct conn *c, const char *err, const char *why);
static void conn_start(struct conn *c);
static void txn_next(lt_store_txn_t *t);
static void dispatch(lt_store_t *s);

/* ---- small helpers -------------------------------------------------------------------- */

/* libpq messages end in "\n" and may span lines; logs want one line. */
const char *lt__store_one_line(char *buf, size_t len, const char *msg)
{
    size_t n = 0;
    for (; msg != NULL && *msg != '\0' && n + 1 < len; msg++) {
        char ch = (*msg == '\n' || *msg == '\r' || *msg == '\t') ? ' ' : *msg;
        if (ch != ' ' || (n > 0 && buf[n - 1] != ' '))
            buf[n++] = ch;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

static void on_notice(void *arg, const char *message)
{
    struct conn *c = arg;
    char line[256];
    /* Notices may quote data; keep them at debug. */
    lt_log(LT_LOG_DEBUG, "store", "conn %d: server notice: %s", c->index, lt__store_one_line(line, sizeof(line), message));
}

static void stats_publish(lt_store_t *s)
{
    int up = 0, busy = 0;
    for (int i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];
        up += c->state == C_READY;
        busy += c->running != NULL || c->txn != NULL;
    }
    STAT_SET(s, connections_up, up);
    STAT_SET(s, connections_busy, busy);
    STAT_SET(s, waiting, (int)s->nwaiting);
    __atomic_store_n(&s->avail_pub, s->navail, __ATOMIC_RELAXED);
}

static struct conn *idle_conn(lt_store_t *s)
{
    for (int i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];
        if (c->state == C_READY && c->running == NULL && c->txn == NULL)
            return c;
    }
    return NULL;
}

/* ---- queries and completion ------------------------------------------------------------ */

static void on_deadline(h2o_timeout_entry_t *e);

/* One allocation holds the query, the parameter pointers and the parameter text. */
static lt_store_query_t *query_new(lt_store_t *s, qkind_t kind, const lt_store_stmt_t *stmt, const char *const *params,
                                   int nparams, lt_store_cb cb, void *data)
{
    size_t size = sizeof(lt_store_query_t) + (size_t)nparams * sizeof(char *);
    for (int i = 0; i < nparams; i++)
        if (params[i] != NULL)
            size += strlen(params[i]) + 1;
    lt_store_query_t *q = calloc(1, size);
    if (q == NULL)
        return NULL;
    q->s = s;
    q->kind = kind;
    q->state = QS_NEW;
    q->stmt = stmt;
    q->nparams = nparams;
    q->params = (const char **)(q + 1);
    char *p = (char *)(q->params + nparams);
    for (int i = 0; i < nparams; i++) {
        if (params[i] == NULL)
            continue;
        size_t n = strlen(params[i]) + 1;
        memcpy(p, params[i], n);
        q->params[i] = p;
        p += n;
    }
    q->cb = cb;
    q->data = data;
    q->deadline.cb = on_deadline;
    h2o_timeout_link(s->loop, &s->query_to, &q->deadline);
    return q;
}

static void kick(lt_store_t *s)
{
    if (!h2o_timeout_is_linked(&s->kick))
        h2o_timeout_link(s->loop, &s->kick_to, &s->kick);
}

static int is_user_kind(const lt_store_query_t *q)
{
    return q->kind == Q_STMT || q->kind == Q_COMMIT;
}

/* Ends a query: parks it for delivery, or drops it when nobody listens. Takes `res`. */
static void complete(lt_store_query_t *q, const char *err, PGresult *res)
{
    lt_store_t *s = q->s;
    h2o_timeout_unlink(&q->deadline);
    q->conn = NULL;
    if (is_user_kind(q)) {
        STAT_ADD(s, queries, 1);
        if (err == lt_err_query)
            STAT_ADD(s, errors, 1);
    }
    if (q->cb == NULL) {
        PQclear(res);
        free(q);
        return;
    }
    q->err = err;
    q->res = res;
    q->state = QS_DONE;
    h2o_linklist_insert(&s->done, &q->link);
    kick(s);
}

static void txn_maybe_free(lt_store_txn_t *t)
{
    if (!t->owner_gone || t->conn != NULL || t->begin != NULL || t->commit != NULL)
        return;
    if (h2o_linklist_is_linked(&t->all))
        h2o_linklist_unlink(&t->all);
    free(t);
}

static void deliver(lt_store_query_t *q)
{
    lt_store_txn_t *t = q->txn;
    /* The commit callback ends the handle: free it first, the callback cannot use it. */
    if (t != NULL && t->commit == q) {
        t->commit = NULL;
        t->owner_gone = 1;
        txn_maybe_free(t);
    }
    q->cb(q->err, q->res, q->data);
    PQclear(q->res);
    free(q);
}

static void on_kick(h2o_timeout_entry_t *e)
{
    lt_store_t *s = H2O_STRUCT_FROM_MEMBER(lt_store_t, kick, e);
    while (!h2o_linklist_is_empty(&s->done)) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, s->done.next);
        h2o_linklist_unlink(&q->link);
        deliver(q);
    }
}

/* A successful status, else lt_err_query. A COMMIT answered "ROLLBACK" did not commit. */
static const char *result_err(const PGresult *r, qkind_t kind)
{
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return NULL;
    case PGRES_COMMAND_OK:
        return kind == Q_COMMIT && strcmp(PQcmdStatus((PGresult *)r), "COMMIT") != 0 ? lt_err_query : NULL;
    default:
        return lt_err_query;
    }
}

/* ---- transactions ------------------------------------------------------------------ */

/* Fails every queued op with `err` (res NULL); the connection, if any, rolls back next. */
static void txn_fail(lt_store_txn_t *t, const char *err)
{
    if (t->failed == NULL)
        t->failed = err;
    while (!h2o_linklist_is_empty(&t->ops)) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, t->ops.next);
        h2o_linklist_unlink(&q->link);
        complete(q, err, NULL);
    }
}

static void txn_release(lt_store_txn_t *t)
{
    struct conn *c = t->conn;
    c->txn = NULL;
    t->conn = NULL;
    txn_maybe_free(t);
    dispatch(c->s);
}

/* ---- connection I/O ---------------------------------------------------------------- */

static void on_readable(h2o_socket_t *sock, const char *err);
static void on_writable(h2o_socket_t *sock, const char *err);

static int flush(struct conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return -1;
    }
    if (r == 1 && !h2o_socket_is_writing(c->sock))
        h2o_socket_notify_write(c->sock, on_writable);
    return 0;
}

static int send_query(struct conn *c, lt_store_query_t *q)
{
    char name[16];
    int ok = 0;
    c->running = q;
    q->conn = c;
    q->state = QS_RUNNING;
    switch (q->kind) {
    case Q_STMT:
        stmt_server_name(name, sizeof(name), q->stmt->id);
        ok = PQsendQueryPrepared(c->pg, name, q->nparams, q->params, NULL, NULL, 0);
        break;
    case Q_BEGIN:
        ok = PQsendQuery(c->pg, "BEGIN");
        break;
    case Q_COMMIT:
        ok = PQsendQuery(c->pg, "COMMIT");
        break;
    case Q_ROLLBACK:
        ok = PQsendQuery(c->pg, "ROLLBACK");
        break;
    }
    if (!ok) {
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return -1;
    }
    c->inflight = 1;
    return flush(c);
}

/* Hands waiting work to idle connections, oldest first. */
static void dispatch(lt_store_t *s)
{
    struct conn *c;
    while (!s->closing && !h2o_linklist_is_empty(&s->waiting) && (c = idle_conn(s)) != NULL) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, s->waiting.next);
        h2o_linklist_unlink(&q->link);
        s->nwaiting--;
        if (q->kind == Q_BEGIN) {
            lt_store_txn_t *t = q->txn;
            t->begin = NULL;
            if (t->failed != NULL) { /* failed while waiting: nothing to begin */
                complete(q, t->failed, NULL);
                txn_maybe_free(t);
                continue;
            }
            t->conn = c;
            c->txn = t;
        }
        send_query(c, q);
    }
    stats_publish(s);
}

static void txn_send_rollback(lt_store_txn_t *t)
{
    struct conn *c = t->conn;
    lt_store_query_t *q = query_new(c->s, Q_ROLLBACK, NULL, NULL, 0, NULL, NULL);
    t->rollback_sent = 1;
    if (q == NULL) { /* closing the session rolls back just as well */
        conn_fail(c, lt_err_unavailable, "out of memory");
        return;
    }
    q->txn = t;
    send_query(c, q);
}

/* Sends the transaction's next command if its connection is idle. */
static void txn_next(lt_store_txn_t *t)
{
    struct conn *c = t->conn;
    if (c == NULL || c->running != NULL || t->rollback_sent)
        return;
    if (t->failed != NULL || t->owner_gone) {
        txn_send_rollback(t);
    } else if (!h2o_linklist_is_empty(&t->ops)) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, t->ops.next);
        h2o_linklist_unlink(&q->link);
        send_query(c, q);
    }
}

/* A command finished on a READY connection; `r` is its last result (owned here). */
static void command_done(struct conn *c, PGresult *r)
{
    lt_store_query_t *q = c->running;
    lt_store_txn_t *t = c->txn;
    const char *err = result_err(r, q->kind);
    c->running = NULL;
    switch (q->kind) {
    case Q_STMT:
        complete(q, err, r);
        if (t == NULL) {
            dispatch(c->s);
            return;
        }
        if (err != NULL)
            txn_fail(t, err);
        txn_next(t);
        break;
    case Q_BEGIN:
        complete(q, err, r);
        if (err != NULL)
            txn_fail(t, err);
        txn_next(t);
        break;
    case Q_COMMIT:
        /* Whatever the outcome, the server has ended the transaction. */
        complete(q, err, r);
        txn_release(t);
        break;
    case Q_ROLLBACK:
        complete(q, err, r);
        if (err != NULL) /* the session state is unknown: do not reuse it */
            conn_fail(c, lt_err_unavailable, "ROLLBACK failed");
        else
            txn_release(t);
        break;
    }
    stats_publish(c->s);
}

static void prepare_next(struct conn *c);

static void prepare_done(struct conn *c, PGresult *r)
{
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        /* Keep the connection: only this statement fails (SQLSTATE 26000) when used. */
        char line[256];
        lt_log(LT_LOG_WARN, "store", "conn %d: cannot prepare %s: %s", c->index, registry[c->prep_next]->name,
               lt__store_one_line(line, sizeof(line), PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)));
    }
    PQclear(r);
    c->prep_next++;
    prepare_next(c);
}

static void consume(struct conn *c)
{
    PGnotify *n;
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return;
    }
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    while (c->inflight && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r != NULL) {
            PQclear(c->last);
            c->last = r;
            continue;
        }
        c->inflight = 0;
        r = c->last;
        c->last = NULL;
        if (r == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
            PQclear(r);
            conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
            return;
        }
        /* May send the next command or tear the connection down: touch nothing after. */
        if (c->state == C_PREPARING)
            prepare_done(c, r);
        else
            command_done(c, r);
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
}

/* ---- connection life cycle ---------------------------------------------------------- */

/* Makes sure c->sock wraps libpq's current socket; PQconnectPoll may replace it. */
static int wrap_socket(struct conn *c)
{
    struct stat st;
    int fd = PQsocket(c->pg), dupfd;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    if (c->sock != NULL && st.st_dev == c->sock_dev && st.st_ino == c->sock_ino)
        return 0;
    if (c->sock != NULL) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    if ((dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return -1;
    /* DONT_READ: h2o must not read libpq's bytes; closing the h2o socket closes the dup. */
    c->sock = h2o_evloop_socket_create(c->s->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_dev = st.st_dev;
    c->sock_ino = st.st_ino;
    return 0;
}

/* Waits for what PQconnectPoll asked for. */
static int watch_connect(struct conn *c)
{
    if (wrap_socket(c) != 0)
        return -1;
    if (c->poll == PGRES_POLLING_READING) {
        h2o_socket_read_start(c->sock, on_readable);
    } else {
        h2o_socket_read_stop(c->sock);
        if (!h2o_socket_is_writing(c->sock))
            h2o_socket_notify_write(c->sock, on_writable);
    }
    return 0;
}

/* Tears down the libpq side; the caller decides what happens to the work. */
static void conn_close(struct conn *c)
{
    h2o_timeout_unlink(&c->timer);
    if (c->sock != NULL) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    PQclear(c->last);
    c->last = NULL;
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = C_DOWN;
    c->inflight = 0;
    c->running = NULL;
    c->txn = NULL;
}

static void fail_waiting(lt_store_t *s, const char *err)
{
    while (!h2o_linklist_is_empty(&s->waiting)) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, s->waiting.next);
        h2o_linklist_unlink(&q->link);
        s->nwaiting--;
        if (q->kind == Q_BEGIN) {
            lt_store_txn_t *t = q->txn;
            t->begin = NULL;
            complete(q, err, NULL);
            txn_fail(t, err);
            txn_maybe_free(t);
        } else {
            complete(q, err, NULL);
        }
    }
}

static void update_avail(lt_store_t *s)
{
    int n = 0;
    for (int i = 0; i < s->nconns; i++)
        n += s->conns[i].state == C_READY || s->conns[i].recycling;
    /* One line per store-level transition; the per-connection lines are the detail. */
    if (n == 0 && s->navail > 0 && !s->closing)
        lt_log(LT_LOG_WARN, "store", "no database connection left: refusing queries until one is back");
    else if (n > 0 && s->navail == 0 && s->ever_avail)
        lt_log(LT_LOG_INFO, "store", "database connection back");
    s->ever_avail |= n > 0;
    s->navail = n;
    if (n == 0 && !s->closing)
        fail_waiting(s, lt_err_unavailable);
    stats_publish(s);
}

static void on_retry(h2o_timeout_entry_t *e)
{
    struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, timer, e);
    STAT_ADD(c->s, reconnects, 1);
    conn_start(c);
}

static void schedule_retry(struct conn *c)
{
    lt_store_t *s = c->s;
    int step = c->failures < s->nbackoff ? c->failures : s->nbackoff - 1;
    if (s->navail == 0)
        while (step > 0 && s->backoff_to[step].timeout > DOWN_RETRY_MAX_MS)
            step--;
    c->failures++;
    c->timer.cb = on_retry;
    h2o_timeout_link(s->loop, &s->backoff_to[step], &c->timer);
}

/*
 * The one way a connection goes down: fails its running command and pinned transaction
 * with `err`, then reconnects: at once after a deliberate drop of a healthy connection
 * (a deadline passed), else after a backoff step.
 */
static void conn_fail(struct conn *c, const char *err, const char *why)
{
    lt_store_t *s = c->s;
    lt_store_query_t *q = c->running;
    lt_store_txn_t *t = c->txn;
    int healthy = c->state == C_READY && err == lt_err_timeout;
    char line[256];

    if (c->state == C_READY || c->failures == 0)
        lt_log(LT_LOG_WARN, "store", "conn %d: %s: %s", c->index, c->state == C_READY ? "dropped" : "connect failed",
               lt__store_one_line(line, sizeof(line), why));
    else
        lt_log(LT_LOG_DEBUG, "store", "conn %d: connect failed: %s", c->index, lt__store_one_line(line, sizeof(line), why));
    conn_close(c);
    if (q != NULL)
        complete(q, err, NULL);
    if (t != NULL) {
        t->conn = NULL;
        txn_fail(t, err);
        txn_maybe_free(t);
    }
    c->recycling = healthy;
    if (healthy) {
        STAT_ADD(s, reconnects, 1);
        conn_start(c);
        return; /* conn_start updates availability */
    }
    update_avail(s);
    schedule_retry(c);
}

static void on_connect_deadline(h2o_timeout_entry_t *e)
{
    struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, timer, e);
    conn_fail(c, lt_err_unavailable, "connect timed out");
}

static void conn_ready(struct conn *c)
{
    h2o_timeout_unlink(&c->timer);
    c->state = C_READY;
    if (c->failures > 0 || c->ever_up)
        lt_log(LT_LOG_INFO, "store", "conn %d: connected", c->index);
    c->failures = 0;
    c->recycling = 0;
    c->ever_up = 1;
    update_avail(c->s);
    dispatch(c->s);
}

static void prepare_next(struct conn *c)
{
    char name[16];
    if (c->prep_next >= nregistered) {
        conn_ready(c);
        return;
    }
    const lt_store_stmt_t *stmt = registry[c->prep_next];
    stmt_server_name(name, sizeof(name), stmt->id);
    if (!PQsendPrepare(c->pg, name, stmt->sql, stmt->nparams, NULL)) {
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return;
    }
    c->inflight = 1;
    flush(c);
}

static void connect_step(struct conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        if (wrap_socket(c) != 0) {
            conn_fail(c, lt_err_unavailable, "no socket");
            return;
        }
        c->state = C_PREPARING;
        c->prep_next = 0;
        h2o_socket_read_start(c->sock, on_readable);
        prepare_next(c);
        return;
    case PGRES_POLLING_FAILED:
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return;
    case PGRES_POLLING_READING:
        c->poll = PGRES_POLLING_READING;
        break;
    default:
        c->poll = PGRES_POLLING_WRITING;
        break;
    }
    if (watch_connect(c) != 0)
        conn_fail(c, lt_err_unavailable, "no socket");
}

static void conn_start(struct conn *c)
{
    lt_store_t *s = c->s;
    c->pg = PQconnectStart(s->conninfo);
    if (c->pg == NULL) {
        conn_fail(c, lt_err_unavailable, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, lt_err_unavailable, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    PQsetnonblocking(c->pg, 1);
    c->state = C_CONNECTING;
    c->timer.cb = on_connect_deadline;
    h2o_timeout_link(s->loop, &s->connect_to, &c->timer);
    /* libpq: before the first PQconnectPoll, act as if it had asked for writability. */
    c->poll = PGRES_POLLING_WRITING;
    if (watch_connect(c) != 0)
        conn_fail(c, lt_err_unavailable, "no socket");
    else
        update_avail(s);
}

/* One readiness event: `dir` is the libpq poll state this event satisfies while connecting;
 * once connected, reading consumes results and writing flushes the output buffer. */
static void on_io(h2o_socket_t *sock, const char *err, PostgresPollingStatusType dir, void (*io)(struct conn *))
{
    struct conn *c = sock->data;
    if (err != NULL) {
        conn_fail(c, lt_err_unavailable, err);
        return;
    }
    if (c->state == C_CONNECTING) {
        if (c->poll == dir)
            connect_step(c);
    } else if (c->state == C_PREPARING || c->state == C_READY) {
        io(c);
    }
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    on_io(sock, err, PGRES_POLLING_READING, consume);
}

static void flush_pending(struct conn *c)
{
    (void)flush(c); /* a failure has already failed the connection */
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    on_io(sock, err, PGRES_POLLING_WRITING, flush_pending);
}

/* ---- deadlines ------------------------------------------------------------------------ */

static void on_deadline(h2o_timeout_entry_t *e)
{
    lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, deadline, e);
    lt_store_t *s = q->s;
    lt_store_txn_t *t = q->txn;

    if (is_user_kind(q))
        STAT_ADD(s, timeouts, 1);
    switch (q->state) {
    case QS_WAITING:
        h2o_linklist_unlink(&q->link);
        s->nwaiting--;
        complete(q, lt_err_timeout, NULL);
        if (t != NULL) { /* a BEGIN that never got a connection */
            t->begin = NULL;
            txn_fail(t, lt_err_timeout);
            txn_maybe_free(t);
        }
        stats_publish(s);
        break;
    case QS_TXN:
        /* Unreachable in practice (the command ahead expires first); fail safe anyway. */
        if (t->conn != NULL) {
            conn_fail(t->conn, lt_err_timeout, "transaction statement timed out");
        } else {
            txn_fail(t, lt_err_timeout);
            txn_maybe_free(t);
        }
        break;
    case QS_RUNNING:
        /* A cancel request would block the loop (libpq 15): drop and reopen instead. */
        conn_fail(q->conn, lt_err_timeout, "query timed out");
        break;
    default:
        break;
    }
}

/* ---- public API ------------------------------------------------------------------------ */

static int options_valid(const lt_store_options_t *o)
{
    return o->conninfo != NULL && o->pool_size >= 1 && o->pool_size <= 1024 && o->query_timeout_ms >= 1 &&
           o->connect_timeout_ms >= 1 && o->reconnect_max_ms >= 1;
}

int lt_store_create(struct st_h2o_evloop_t *loop, const lt_store_options_t *opts, lt_store_t **out)
{
    lt_store_t *s = NULL;
    if (loop == NULL || opts == NULL || out == NULL || !options_valid(opts))
        return LT_EINVAL;
    __atomic_store_n(&registry_frozen, 1, __ATOMIC_RELAXED);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        goto fail;
    s->loop = loop;
    s->opts = *opts;
    if ((s->conninfo = strdup(opts->conninfo)) == NULL ||
        (s->conns = calloc((size_t)opts->pool_size, sizeof(*s->conns))) == NULL)
        goto fail;
    s->opts.conninfo = s->conninfo;
    s->nconns = opts->pool_size;
    h2o_linklist_init_anchor(&s->waiting);
    h2o_linklist_init_anchor(&s->done);
    h2o_linklist_init_anchor(&s->txns);
    h2o_timeout_init(loop, &s->kick_to, 0);
    h2o_timeout_init(loop, &s->query_to, (uint64_t)opts->query_timeout_ms);
    h2o_timeout_init(loop, &s->connect_to, (uint64_t)opts->connect_timeout_ms);
    for (uint64_t d = BACKOFF_BASE_MS; s->nbackoff < MAX_BACKOFF_STEPS; d *= 2) {
        int last = d >= (uint64_t)opts->reconnect_max_ms || s->nbackoff == MAX_BACKOFF_STEPS - 1;
        h2o_timeout_init(loop, &s->backoff_to[s->nbackoff++], last ? (uint64_t)opts->reconnect_max_ms : d);
        if (last)
            break;
    }
    s->kick.cb = on_kick;
    STAT_SET(s, connections, s->nconns);
    for (int i = 0; i < s->nconns; i++) {
        s->conns[i].s = s;
        s->conns[i].index = i;
        s->conns[i].state = C_DOWN;
    }
    for (int i = 0; i < s->nconns; i++)
        conn_start(&s->conns[i]);
    *out = s;
    return 0;
fail:
    if (s != NULL) {
        free(s->conns);
        free(s->conninfo);
        free(s);
    }
    return LT_ENOMEM;
}

void lt_store_close(lt_store_t **sp)
{
    lt_store_t *s = *sp;
    if (s == NULL)
        return;
    *sp = NULL;
    s->closing = 1;
    fail_waiting(s, lt_err_closed);
    for (int i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];
        lt_store_query_t *q = c->running;
        lt_store_txn_t *t = c->txn;
        conn_close(c);
        if (q != NULL)
            complete(q, lt_err_closed, NULL);
        if (t != NULL) {
            t->conn = NULL;
            txn_fail(t, lt_err_closed);
        }
    }
    /* Callbacks run here, synchronously: the loop may never run again. */
    h2o_timeout_unlink(&s->kick);
    on_kick(&s->kick);
    h2o_timeout_unlink(&s->kick);
    /* Owners still holding a transaction keep a detached handle that their abort frees. */
    while (!h2o_linklist_is_empty(&s->txns)) {
        lt_store_txn_t *t = H2O_STRUCT_FROM_MEMBER(lt_store_txn_t, all, s->txns.next);
        h2o_linklist_unlink(&t->all);
        t->s = NULL;
        if (t->owner_gone)
            free(t);
    }
    h2o_timeout_dispose(s->loop, &s->kick_to);
    h2o_timeout_dispose(s->loop, &s->query_to);
    h2o_timeout_dispose(s->loop, &s->connect_to);
    for (int i = 0; i < s->nbackoff; i++)
        h2o_timeout_dispose(s->loop, &s->backoff_to[i]);
    free(s->conns);
    free(s->conninfo);
    free(s);
}

int lt_store_query(lt_store_t *s, const lt_store_stmt_t *stmt, const char *const *params, int nparams, lt_store_cb cb,
                   void *data, lt_store_query_t **out)
{
    lt_store_query_t *q;
    struct conn *c;
    if (s == NULL || stmt == NULL || cb == NULL || nparams != stmt->nparams || (nparams > 0 && params == NULL) ||
        !stmt_is_registered(stmt))
        return LT_EINVAL;
    if (s->closing || s->navail == 0)
        return LT_EUNAVAIL;
    c = idle_conn(s);
    if (c == NULL && s->nwaiting >= s->opts.max_waiting)
        return LT_EOVERLOAD;
    if ((q = query_new(s, Q_STMT, stmt, params, nparams, cb, data)) == NULL)
        return LT_ENOMEM;
    if (out != NULL)
        *out = q;
    if (c != NULL) {
        send_query(c, q); /* a failure completes q later, through the loop */
    } else {
        q->state = QS_WAITING;
        h2o_linklist_insert(&s->waiting, &q->link);
        s->nwaiting++;
    }
    stats_publish(s);
    return 0;
}

void lt_store_cancel(lt_store_query_t *q)
{
    if (q == NULL)
        return;
    switch (q->state) {
    case QS_WAITING:
        h2o_linklist_unlink(&q->link);
        q->s->nwaiting--;
        h2o_timeout_unlink(&q->deadline);
        stats_publish(q->s);
        free(q);
        break;
    case QS_RUNNING:
        /* Its connection owns it until the result arrives; the deadline still bounds it. */
        q->cb = NULL;
        q->data = NULL;
        break;
    case QS_DONE:
        h2o_linklist_unlink(&q->link);
        PQclear(q->res);
        free(q);
        break;
    default:
        break;
    }
}

int lt_store_txn_begin(lt_store_t *s, lt_store_txn_t **out)
{
    lt_store_txn_t *t = NULL;
    lt_store_query_t *q = NULL;
    struct conn *c;
    if (s == NULL || out == NULL)
        return LT_EINVAL;
    if (s->closing || s->navail == 0)
        return LT_EUNAVAIL;
    c = idle_conn(s);
    if (c == NULL && s->nwaiting >= s->opts.max_waiting)
        return LT_EOVERLOAD;
    if ((t = calloc(1, sizeof(*t))) == NULL || (q = query_new(s, Q_BEGIN, NULL, NULL, 0, NULL, NULL)) == NULL) {
        free(t);
        return LT_ENOMEM;
    }
    t->s = s;
    h2o_linklist_init_anchor(&t->ops);
    h2o_linklist_insert(&s->txns, &t->all);
    q->txn = t;
    *out = t;
    if (c != NULL) {
        t->conn = c;
        c->txn = t;
        send_query(c, q);
    } else {
        q->state = QS_WAITING;
        h2o_linklist_insert(&s->waiting, &q->link);
        s->nwaiting++;
        t->begin = q;
    }
    stats_publish(s);
    return 0;
}

static int txn_push(lt_store_txn_t *t, qkind_t kind, const lt_store_stmt_t *stmt, const char *const *params,
                    int nparams, lt_store_cb cb, void *data)
{
    lt_store_query_t *q;
    if (t->s == NULL || t->failed != NULL || t->ending || t->owner_gone)
        return LT_ESTATE;
    if ((q = query_new(t->s, kind, stmt, params, nparams, cb, data)) == NULL)
        return LT_ENOMEM;
    q->txn = t;
    q->state = QS_TXN;
    h2o_linklist_insert(&t->ops, &q->link);
    if (kind == Q_COMMIT) {
        t->ending = 1;
        t->commit = q;
    }
    txn_next(t);
    if (t->s != NULL)
        stats_publish(t->s);
    return 0;
}

int lt_store_txn_query(lt_store_txn_t *t, const lt_store_stmt_t *stmt, const char *const *params, int nparams,
                       lt_store_cb cb, void *data)
{
    if (t == NULL || stmt == NULL || cb == NULL || nparams != stmt->nparams || (nparams > 0 && params == NULL) ||
        !stmt_is_registered(stmt))
        return LT_EINVAL;
    return txn_push(t, Q_STMT, stmt, params, nparams, cb, data);
}

int lt_store_txn_commit(lt_store_txn_t *t, lt_store_cb cb, void *data)
{
    if (t == NULL || cb == NULL)
        return LT_EINVAL;
    return txn_push(t, Q_COMMIT, NULL, NULL, 0, cb, data);
}

void lt_store_txn_abort(lt_store_txn_t *t)
{
    lt_store_t *s;
    h2o_linklist_t *node, *next;
    if (t == NULL)
        return;
    if ((s = t->s) == NULL) { /* the store closed; only the handle is left */
        free(t);
        return;
    }
    t->owner_gone = 1;
    /* No callback of this transaction may run any more. */
    while (!h2o_linklist_is_empty(&t->ops)) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, t->ops.next);
        h2o_linklist_unlink(&q->link);
        h2o_timeout_unlink(&q->deadline);
        free(q);
    }
    t->commit = NULL;
    if (t->conn != NULL && t->conn->running != NULL) {
        t->conn->running->cb = NULL;
        t->conn->running->data = NULL;
    }
    for (node = s->done.next; node != &s->done; node = next) {
        lt_store_query_t *q = H2O_STRUCT_FROM_MEMBER(lt_store_query_t, link, node);
        next = node->next;
        if (q->txn == t) {
            h2o_linklist_unlink(&q->link);
            PQclear(q->res);
            free(q);
        }
    }
    if (t->begin != NULL) { /* still waiting for a connection */
        h2o_linklist_unlink(&t->begin->link);
        s->nwaiting--;
        h2o_timeout_unlink(&t->begin->deadline);
        free(t->begin);
        t->begin = NULL;
    }
    txn_next(t); /* ROLLBACK now if the connection is idle, else after the running command */
    txn_maybe_free(t);
    stats_publish(s);
}

void lt_store_get_stats(const lt_store_t *s, lt_store_stats_t *out)
{
    out->connections = __atomic_load_n(&s->stats.connections, __ATOMIC_RELAXED);
    out->connections_up = __atomic_load_n(&s->stats.connections_up, __ATOMIC_RELAXED);
    out->connections_busy = __atomic_load_n(&s->stats.connections_busy, __ATOMIC_RELAXED);
    out->waiting = __atomic_load_n(&s->stats.waiting, __ATOMIC_RELAXED);
    out->queries = __atomic_load_n(&s->stats.queries, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&s->stats.errors, __ATOMIC_RELAXED);
    out->timeouts = __atomic_load_n(&s->stats.timeouts, __ATOMIC_RELAXED);
    out->reconnects = __atomic_load_n(&s->stats.reconnects, __ATOMIC_RELAXED);
}

int lt_store_is_up(const lt_store_t *s)
{
    return __atomic_load_n(&s->avail_pub, __ATOMIC_RELAXED) > 0;
}
