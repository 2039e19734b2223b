/*
 * listener.c: the LISTEN/NOTIFY control thread (see store.h).
 *
 * Threading: lt_store_listener_start/stop run on the owner's thread; everything else runs
 * on the listener's own thread, including the notify callback. The two share only the
 * `stop` flag and the `kicked` channel mask (atomics) and the wake pipe, whose write end
 * stop() and kick() (any thread) use to interrupt poll().
 *
 * The thread loops: connect (PQconnectStart/Poll, waiting in poll() on the socket and the
 * wake pipe so that stop() never waits for a slow connect), LISTEN on every channel, tell
 * the callback "(re)connected" (channel NULL), then poll() for notifications until the
 * connection breaks; then back off (100 ms doubling up to reconnect_max_ms) and start over.
 * No libpq call here waits on the server (the LISTENs too are sent and read through poll()),
 * so stop() returns promptly even when the server stalls; only libpq's host name lookup in
 * PQconnectStart can still block.
 *
 * Ownership: the listener copies the conninfo and channel names; the caller's `data` is
 * passed through untouched.
 */
#include "store/store.h"
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_BASE_MS 100
/* poll() wakes at least this often so a missed wake-up cannot hang stop(). */
#define POLL_MAX_MS 1000
/* Async connects are not bounded by libpq's connect_timeout; a blackholed host must not
 * hold the thread for the kernel's SYN retries (~2 min). Also bounds the LISTEN round trip. */
#define CONNECT_TIMEOUT_MS 10000

struct lt_store_listener {
    char *conninfo;
    char **channels;
    size_t nchannels;
    int reconnect_max_ms;
    lt_store_notify_fn fn;
    void *data;
    pthread_t thread;
    int wake[2]; /* [0] polled by the thread, [1] written by stop() and kick() */
    int stop;
    uint64_t kicked; /* bit i: deliver channels[i] locally (atomic) */
};

static int stopping(lt_store_listener_t *l)
{
    return __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE);
}

static void on_notice(void *arg, const char *message)
{
    char line[256];
    (void)arg;
    lt_log(LT_LOG_DEBUG, "store", "listener: server notice: %s", lt__store_one_line(line, sizeof(line), message));
}

/*
 * Waits until `fd` is ready for `events` (fd < 0: only sleeps), the wake pipe fires or
 * `timeout_ms` passes. @return 1 ready, 0 timed out, -1 stop requested.
 */
static int wait_fd(lt_store_listener_t *l, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = fd, .events = events}};
    int r = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    if (stopping(l))
        return -1;
    if (r > 0 && (p[0].revents & POLLIN)) {
        char drain[64]; /* kicks: their mask says what to deliver */
        while (read(l->wake[0], drain, sizeof(drain)) > 0) {
        }
    }
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    return r > 0 && fd >= 0 && p[1].revents != 0 ? 1 : 0;
}

/* Connects without ever blocking stop(). @return the connection, or NULL. */
static PGconn *connect_conn(lt_store_listener_t *l, char *why, size_t whylen)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    uint64_t deadline = lt_monotonic_ns() / 1000000 + CONNECT_TIMEOUT_MS;
    PGconn *conn = PQconnectStart(l->conninfo);
    if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
        goto fail;
    while (st != PGRES_POLLING_OK) {
        int r = wait_fd(l, PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, POLL_MAX_MS);
        if (r < 0)
            goto fail;
        if (r == 0) {
            if (lt_monotonic_ns() / 1000000 < deadline)
                continue;
            snprintf(why, whylen, "connect timed out");
            PQfinish(conn);
            return NULL;
        }
        if ((st = PQconnectPoll(conn)) == PGRES_POLLING_FAILED)
            goto fail;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
fail:
    lt__store_one_line(why, whylen, conn != NULL ? PQerrorMessage(conn) : "out of memory");
    PQfinish(conn);
    return NULL;
}

/*
 * LISTENs on every channel with one multi-statement query, sent and read without blocking so
 * that stop() never waits on an unresponsive server (a blocking PQexec would wait for TCP to
 * give up, many minutes, and SIGTERM with it). Bounded like the connect.
 * @return 0, or -1 with `why` set (stop requested: `why` is not used).
 */
static int listen_all(lt_store_listener_t *l, PGconn *conn, char *why, size_t whylen)
{
    uint64_t deadline = lt_monotonic_ns() / 1000000 + CONNECT_TIMEOUT_MS;
    lt_buf_t sql = LT_BUF_INIT;
    int ok = 1, flushing;

    for (size_t i = 0; i < l->nchannels && ok; i++) {
        char *ident = PQescapeIdentifier(conn, l->channels[i], strlen(l->channels[i]));
        ok = ident != NULL && lt_buf_appendf(&sql, "LISTEN %s;", ident) == 0;
        PQfreemem(ident);
    }
    /* (lt_buf keeps its text NUL-terminated) */
    if (!ok || PQsetnonblocking(conn, 1) != 0 || !PQsendQuery(conn, sql.base)) {
        lt__store_one_line(why, whylen, PQerrorMessage(conn)[0] != '\0' ? PQerrorMessage(conn) : "out of memory");
        lt_buf_free(&sql);
        return -1;
    }
    lt_buf_free(&sql);
    for (;;) {
        if ((flushing = PQflush(conn)) < 0)
            goto broken;
        while (!PQisBusy(conn)) {
            PGresult *r = PQgetResult(conn);
            if (r == NULL)
                return ok ? 0 : -1;
            if (PQresultStatus(r) != PGRES_COMMAND_OK && ok) {
                ok = 0;
                lt__store_one_line(why, whylen, PQresultErrorMessage(r));
            }
            PQclear(r);
        }
        int w = wait_fd(l, PQsocket(conn), flushing ? POLLIN | POLLOUT : POLLIN, POLL_MAX_MS);
        if (w < 0)
            return -1;
        if (w == 0 && lt_monotonic_ns() / 1000000 >= deadline) {
            snprintf(why, whylen, "LISTEN got no answer within %d ms", CONNECT_TIMEOUT_MS);
            return -1;
        }
        if (w > 0 && !PQconsumeInput(conn))
            goto broken;
    }
broken:
    lt__store_one_line(why, whylen, PQerrorMessage(conn));
    return -1;
}

/* Delivers notifications until the connection breaks or stop() is called. */
static void pump(lt_store_listener_t *l, PGconn *conn, char *why, size_t whylen)
{
    for (;;) {
        PGnotify *n;
        int r;
        /* First round: notifications that arrived while LISTEN ran are already buffered. */
        while ((n = PQnotifies(conn)) != NULL) {
            l->fn(n->relname, n->extra, l->data);
            PQfreemem(n);
        }
        uint64_t kicked = __atomic_exchange_n(&l->kicked, 0, __ATOMIC_ACQ_REL);
        for (size_t i = 0; i < l->nchannels && kicked != 0; i++, kicked >>= 1)
            if (kicked & 1)
                l->fn(l->channels[i], NULL, l->data);
        if (PQstatus(conn) == CONNECTION_BAD) {
            lt__store_one_line(why, whylen, PQerrorMessage(conn));
            return;
        }
        do {
            if ((r = wait_fd(l, PQsocket(conn), POLLIN, POLL_MAX_MS)) < 0)
                return;
        } while (r == 0 && __atomic_load_n(&l->kicked, __ATOMIC_ACQUIRE) == 0);
        if (r > 0 && !PQconsumeInput(conn)) {
            lt__store_one_line(why, whylen, PQerrorMessage(conn));
            return;
        }
    }
}

static void *run(void *arg)
{
    lt_store_listener_t *l = arg;
    int delay = 0, failures = 0;
    char why[256];

    while (wait_fd(l, -1, 0, delay) >= 0) {
        PGconn *conn = connect_conn(l, why, sizeof(why));
        if (conn != NULL && listen_all(l, conn, why, sizeof(why)) == 0) {
            if (failures > 0)
                lt_log(LT_LOG_INFO, "store", "listener: connected");
            failures = 0;
            delay = 0;
            l->fn(NULL, NULL, l->data);
            pump(l, conn, why, sizeof(why));
        }
        PQfinish(conn);
        if (stopping(l))
            break;
        /* Log the first failure of an outage loudly, the retries quietly. */
        if (failures++ == 0)
            lt_log(LT_LOG_WARN, "store", "listener: connection lost or failed: %s", why);
        else
            lt_log(LT_LOG_DEBUG, "store", "listener: retry %d failed: %s", failures, why);
        delay = delay == 0 ? BACKOFF_BASE_MS : delay * 2;
        if (delay > l->reconnect_max_ms)
            delay = l->reconnect_max_ms;
    }
    return NULL;
}

static void listener_free(lt_store_listener_t *l)
{
    if (l->channels != NULL)
        for (size_t i = 0; i < l->nchannels; i++)
            free(l->channels[i]);
    free(l->channels);
    free(l->conninfo);
    if (l->wake[0] >= 0)
        close(l->wake[0]);
    if (l->wake[1] >= 0)
        close(l->wake[1]);
    free(l);
}

int lt_store_listener_start(const char *conninfo, const char *const *channels, size_t nchannels, int reconnect_max_ms,
                            lt_store_notify_fn fn, void *data, lt_store_listener_t **out)
{
    lt_store_listener_t *l = NULL;
    int ret = LT_ENOMEM;

    if (conninfo == NULL || channels == NULL || nchannels == 0 || nchannels > 64 || reconnect_max_ms < 1 ||
        fn == NULL || out == NULL)
        return LT_EINVAL;
    for (size_t i = 0; i < nchannels; i++)
        if (channels[i] == NULL || channels[i][0] == '\0')
            return LT_EINVAL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return LT_ENOMEM;
    l->wake[0] = l->wake[1] = -1;
    l->reconnect_max_ms = reconnect_max_ms;
    l->fn = fn;
    l->data = data;
    if ((l->conninfo = strdup(conninfo)) == NULL || (l->channels = calloc(nchannels, sizeof(char *))) == NULL)
        goto fail;
    for (; l->nchannels < nchannels; l->nchannels++)
        if ((l->channels[l->nchannels] = strdup(channels[l->nchannels])) == NULL)
            goto fail;
    ret = LT_EIO;
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        l->wake[0] = l->wake[1] = -1;
        goto fail;
    }
    if (pthread_create(&l->thread, NULL, run, l) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    listener_free(l);
    return ret;
}

static void wake(lt_store_listener_t *l)
{
    if (write(l->wake[1], "x", 1) < 0) {
        /* the pipe is full, so a wake-up is already pending */
    }
}

int lt_store_listener_kick(lt_store_listener_t *l, const char *channel)
{
    for (size_t i = 0; l != NULL && i < l->nchannels; i++)
        if (strcmp(l->channels[i], channel) == 0) {
            __atomic_fetch_or(&l->kicked, (uint64_t)1 << i, __ATOMIC_ACQ_REL);
            wake(l);
            return 0;
        }
    return LT_EINVAL;
}

void lt_store_listener_halt(lt_store_listener_t *l)
{
    if (l == NULL || __atomic_exchange_n(&l->stop, 1, __ATOMIC_ACQ_REL))
        return;
    wake(l);
    pthread_join(l->thread, NULL);
}

void lt_store_listener_stop(lt_store_listener_t **lp)
{
    lt_store_listener_t *l = *lp;
    if (l == NULL)
        return;
    *lp = NULL;
    lt_store_listener_halt(l);
    listener_free(l);
}
