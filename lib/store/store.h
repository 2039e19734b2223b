/*
 * store: PostgreSQL access.
 *
 * 1. The async pool (lt_store_t). One per worker thread, driven from that worker's h2o
 *    evloop and never touched from another thread (stats excepted). It keeps up to
 *    `pool_size` libpq connections, connected without blocking (PQconnectStart/Poll on the
 *    loop), each running one query (or one pinned transaction) at a time with
 *    PQsendQueryPrepared. Every registered statement is prepared once per connection
 *    right after connect. Queries wait in a bounded FIFO while all connections are busy.
 *    Each query has a deadline (`query_timeout_ms`, waiting time included); a query that
 *    passes it completes with lt_err_timeout and its connection is dropped and reopened
 *    (a cancel request would block the loop in libpq 15). A lost connection is reopened
 *    with exponential backoff up to `reconnect_max_ms`; while no connection is up, new
 *    queries are refused at once (LT_EUNAVAIL) so callers answer 503 quickly.
 *
 * 2. The listener (lt_store_listener_t). A control thread with one blocking libpq
 *    connection that LISTENs on given channels and hands each notification to a callback on
 *    that thread (the caller fans it out to workers). It reconnects with backoff and
 *    reports each (re)connect with channel == NULL so the caller can resync state it may
 *    have missed.
 *
 * 3. Migrations (blocking; for latchctl and latchd before the workers start).
 *
 * Callbacks: `err` is NULL on success, else one of lt_err_unavailable, lt_err_timeout,
 * lt_err_query (then `res` is the error result: read SQLSTATE with PQresultErrorField) or
 * lt_err_closed. `res` is owned by the store and valid only during the callback; it is
 * NULL for every error but lt_err_query, and also for lt_err_query on a transaction
 * statement that was skipped because an earlier statement of the same transaction failed
 * (skipped statements complete with the error of the one that failed).
 * Callbacks run from the loop, never from inside a call into the store (lt_store_close
 * excepted), so they may call any store function except lt_store_close.
 */
#ifndef LT_STORE_H
#define LT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct st_h2o_evloop_t;
struct pg_result;
struct pg_conn;

typedef struct lt_store lt_store_t;
typedef struct lt_store_query lt_store_query_t;
typedef struct lt_store_txn lt_store_txn_t;
typedef struct lt_store_listener lt_store_listener_t;

typedef void (*lt_store_cb)(const char *err, struct pg_result *res, void *data);

/*
 * A prepared statement. Define them as static objects in the module that owns the SQL and
 * register them once at start-up, before any store is created. Parameters and results use
 * the text format.
 */
typedef struct lt_store_stmt {
    const char *name; /* unique, e.g. "identity.user_by_email" */
    const char *sql;
    int nparams;
    int id; /* set by lt_store_stmt_register */
} lt_store_stmt_t;

/**
 * Registers statements (not thread-safe: call at start-up). All or nothing: on an error
 * none of `stmts` is registered. The array must outlive every store.
 * @return 0, LT_ERANGE when the table (512) would overflow, LT_EEXIST for a duplicate
 *         name, LT_EINVAL for a statement without name or SQL, LT_ESTATE once a store
 *         has been created (its connections could not know the statement).
 */
int lt_store_stmt_register(lt_store_stmt_t *stmts, size_t n) LT_MUSTCHECK;

/**
 * Registers statements that are separate objects (a module's header exposes each by name):
 * lt_store_stmt_register for each of `stmts` in turn, stopping at the first failure (which
 * is fatal to start-up, so the ones before it staying registered does not matter).
 * @return as lt_store_stmt_register.
 */
int lt_store_stmt_register_each(lt_store_stmt_t *const *stmts, size_t n) LT_MUSTCHECK;

typedef struct lt_store_options {
    const char *conninfo;
    int pool_size;          /* connections, >= 1 */
    int query_timeout_ms;   /* deadline per query, waiting included */
    int connect_timeout_ms; /* deadline per connection attempt */
    int reconnect_max_ms;   /* backoff cap (100 ms doubling); while no connection at all
                               is up, retries are at most ~2 s apart regardless */
    size_t max_waiting;     /* bounded wait queue; beyond it LT_EOVERLOAD */
} lt_store_options_t;

/**
 * Connections start opening at once, without blocking (but a host name in `conninfo` is
 * resolved synchronously by libpq: prefer hostaddr or a unix socket when that matters).
 * Queries are refused with LT_EUNAVAIL until the first connection is up.
 * @return 0, LT_EINVAL, LT_ENOMEM.
 */
int lt_store_create(struct st_h2o_evloop_t *loop, const lt_store_options_t *opts, lt_store_t **out) LT_MUSTCHECK;

/*
 * Fails every pending query with lt_err_closed (their callbacks run inside this call),
 * closes the connections, disposes the timers, sets *s = NULL. Not from a store callback.
 * A transaction whose owner has not ended it stays a detached handle: lt_store_txn_abort
 * frees it. The loop frees the closed sockets on its next run (or h2o_evloop_destroy).
 */
void lt_store_close(lt_store_t **s);

/**
 * Queues a prepared statement. On 0, `cb` runs exactly once, later, from the loop (never
 * from inside this call), unless the query is cancelled first. `params` are text values
 * (NULL = SQL NULL); the store copies them.
 * @param out  may be NULL; else receives a handle for lt_store_cancel, valid until `cb` runs.
 * @return 0, LT_EUNAVAIL (no live connection), LT_EOVERLOAD (wait queue full), LT_EINVAL.
 */
int lt_store_query(lt_store_t *s, const lt_store_stmt_t *stmt, const char *const *params, int nparams, lt_store_cb cb,
                   void *data, lt_store_query_t **out) LT_MUSTCHECK;

/* The callback will not run and `data` is not touched again. A query already sent
 * completes on the server and is discarded. Only for handles from lt_store_query. */
void lt_store_cancel(lt_store_query_t *q);

/**
 * Starts a transaction pinned to one connection (acquired when one is free). Queue
 * statements with lt_store_txn_query; they run in order after BEGIN. End it with exactly one
 * of lt_store_txn_commit or lt_store_txn_abort.
 * @return 0, LT_EUNAVAIL, LT_EOVERLOAD.
 */
int lt_store_txn_begin(lt_store_t *s, lt_store_txn_t **out) LT_MUSTCHECK;

/** Queues a statement in the transaction; `cb` as for lt_store_query. @return 0, LT_ESTATE after a failure or end. */
int lt_store_txn_query(lt_store_txn_t *t, const lt_store_stmt_t *stmt, const char *const *params, int nparams,
                       lt_store_cb cb, void *data) LT_MUSTCHECK;

/** COMMITs; `cb` gets the outcome; the handle is gone once `cb` has run. @return 0 or LT_ESTATE. */
int lt_store_txn_commit(lt_store_txn_t *t, lt_store_cb cb, void *data) LT_MUSTCHECK;

/* ROLLBACK (if begun) and release; no callback of this transaction runs afterwards. Also
 * valid after lt_store_txn_commit as long as the commit callback has not run yet (it then
 * will not run; whether the COMMIT already reached the server is unknown). */
void lt_store_txn_abort(lt_store_txn_t *t);

/* Counters, readable from any thread (relaxed). */
typedef struct lt_store_stats {
    int connections;      /* configured */
    int connections_up;   /* connected and ready */
    int connections_busy; /* running a query or pinned by a transaction */
    int waiting;          /* queries in the wait queue */
    uint64_t queries;     /* completed, any outcome */
    uint64_t errors;      /* completed with lt_err_query */
    uint64_t timeouts;    /* deadlines passed (waiting or running) */
    uint64_t reconnects;  /* connection attempts after the first one */
} lt_store_stats_t;

void lt_store_get_stats(const lt_store_t *s, lt_store_stats_t *out);

/* 1 when at least one connection is up or being replaced after a deadline (a hint;
 * /readyz runs a real query). */
int lt_store_is_up(const lt_store_t *s);

/* ---- listener ----------------------------------------------------------------------- */

/* Runs on the listener thread. channel == NULL: (re)connected, resync. payload == NULL: a
 * local kick (lt_store_listener_kick), not a notification from the server. */
typedef void (*lt_store_notify_fn)(const char *channel, const char *payload, void *data);

/** Starts the control thread. `channels` are copied. @return 0, LT_EINVAL, LT_ENOMEM, LT_EIO. */
int lt_store_listener_start(const char *conninfo, const char *const *channels, size_t nchannels, int reconnect_max_ms,
                            lt_store_notify_fn fn, void *data, lt_store_listener_t **out) LT_MUSTCHECK;

/**
 * Has the control thread call back for `channel` (one of its channels) with payload NULL,
 * as soon as it is connected and between notifications: kicks given before one delivery
 * coalesce into it. Any thread, also after lt_store_listener_halt (then nothing happens).
 * @return 0, or LT_EINVAL for a channel it does not listen on.
 */
int lt_store_listener_kick(lt_store_listener_t *l, const char *channel);

/* Stops and joins the thread but keeps the object, so that kicks stay harmless until
 * lt_store_listener_stop frees it. */
void lt_store_listener_halt(lt_store_listener_t *l);

/* Stops and joins the thread (if still running) and frees it; sets *l = NULL. */
void lt_store_listener_stop(lt_store_listener_t **l);

/* ---- migrations --------------------------------------------------------------------- */

typedef struct lt_migration {
    const char *name; /* file name, e.g. "0001_init.sql" */
    const char *sql;
    size_t len;
} lt_migration_t;

/*
 * Blocking one-off connections, for threads that are not worker loops (the control and
 * maintenance threads, latchctl): connects with client_encoding UTF8 and the given
 * application_name. NULL on failure, `err` saying why (never a password: libpq's message).
 */
struct pg_conn *lt_store_connect_blocking(const char *conninfo, const char *app, char *err, size_t errlen);
/* `what`: the primary message of a failed query (a DETAIL may quote row values). */
void lt_store_query_error(const struct pg_result *r, const struct pg_conn *conn, const char *what, char *err,
                          size_t errlen);

/* The migrations compiled into this binary from sql/, in order. */
extern const lt_migration_t lt_migrations[];
extern const size_t lt_migrations_count;

/**
 * Applies pending migrations in order, blocking: takes a session advisory lock, creates
 * `schema_migrations (name, checksum, applied_at)` if needed, checks the SHA-256 of every
 * applied file against the given text (a mismatch is an error naming the file), and runs each
 * pending file in its own transaction, recording it. An applied migration this binary does
 * not know is logged as a warning only (a newer binary migrated first: rolling upgrade).
 * Logs "applied <name>" at info for each file. `applied` (may be NULL) receives how many
 * were applied, also on failure.
 * @return 0, LT_EUNAVAIL (cannot connect), LT_EINVAL (checksum mismatch), LT_EIO (a
 *         migration failed; `err` names the file and has the server's message), LT_ENOMEM.
 */
int lt_store_migrate(const char *conninfo, const lt_migration_t *m, size_t n, int *applied, char *err,
                     size_t errlen) LT_MUSTCHECK;

typedef enum {
    LT_MIGRATION_APPLIED,  /* applied, checksum matches */
    LT_MIGRATION_PENDING,  /* not applied yet */
    LT_MIGRATION_MODIFIED, /* applied, but the file changed since */
    LT_MIGRATION_UNKNOWN   /* applied, but not in this binary */
} lt_migration_state_t;

/* `applied_at` is the server's text timestamp, NULL when pending. */
typedef void (*lt_migration_status_fn)(const char *name, lt_migration_state_t state, const char *applied_at,
                                       void *data);

/**
 * Reports every migration, read-only and without the lock: the binary's in order, then
 * applied ones it does not know.
 * @return 0, LT_EUNAVAIL (cannot connect), LT_EIO (`err` says why), LT_EINVAL, LT_ENOMEM.
 */
int lt_store_migrate_status(const char *conninfo, const lt_migration_t *m, size_t n, lt_migration_status_fn fn,
                            void *data, char *err, size_t errlen) LT_MUSTCHECK;

#endif
