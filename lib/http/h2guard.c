/*
 * h2guard: see h2guard.h.
 *
 * What this file relies on in h2o 2.2.5 (read from its headers and sources):
 *   - lib/http2/connection.c parse_input() calls conn->_read_expect(conn, input, len,
 *     &err_desc) once per frame and consumes what it returns; a negative value other than
 *     INCOMPLETE makes it queue a GOAWAY with that error and call close_connection(). The
 *     frame handlers reassign _read_expect only from inside that call (preface -> default,
 *     default <-> continuation), so re-wrapping after each call keeps the wrapper in place.
 *   - The connection object stays alive across a _read_expect call (parse_input itself
 *     reads it afterwards), and is freed by close_connection_now() after h2o_socket_close();
 *     the socket's on_close callback runs when the socket is disposed (after a TLS
 *     close_notify, possibly later than the connection): the per-socket state therefore
 *     never points at the connection.
 *   - New connections are linked at the tail of ctx->http2._conns; h2o_http2_accept and
 *     h2o_http1_accept start from whatever input the socket already holds (lib/core/util.c
 *     relies on it after a PROXY line), and h2o_http2_accept parses it at once.
 *   - sock->bytes_written grows when a write starts; sock->_cb.write is set while a write
 *     (or a wait for writability) is pending.
 */
#include "http/h2guard.h"

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"

#define SWEEP_MS 250
/* A flagged connection is cut after this long whatever its output does. */
#define FLAGGED_MAX_MS (5 * LT_H2G_CLOSE_GRACE_MS)
/* Larger frames are errors h2o rejects itself (it never raises SETTINGS_MAX_FRAME_SIZE). */
#define MAX_FRAME_LEN 16384
/* Two per concurrent stream h2o allows: a well-behaved client cannot open more in one turn. */
#define DEFAULT_STREAMS_PER_TURN (2 * 100)
/* At most one log line per worker per this many ms about closed connections. */
#define LOG_EVERY_MS 1000

typedef ssize_t (*expect_fn)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

struct lt_h2guard {
    h2o_context_t *ctx;
    h2o_evloop_t *loop;
    lt_h2guard_limits_t lim;
    uint64_t turn;
    h2o_timeout_t sweep_timeout;
    h2o_timeout_entry_t sweep_entry;
    int timer_ready;
    uint64_t last_log_ms;
    uint64_t unlogged;
    h2o_linklist_t pending; /* sockets not handed to h2o yet (handshake, first bytes) */
    int upgrading;          /* an HTTP/2 connection waits for its socket (Upgrade: h2c) */
    h2o_socket_cb h2_on_read; /* h2o's HTTP/2 read callback, seen in start_http2 (see cut) */
    _Atomic uint64_t closed[LT_H2G_REASONS];
};

/* One per accepted socket; freed when h2o disposes the socket. */
typedef struct {
    lt_h2guard_t *g;
    /* until the handshake or the first bytes say HTTP/2 or HTTP/1.x (see lt_h2guard_accept) */
    h2o_socket_t *sock;
    h2o_accept_ctx_t *actx;
    struct timeval accepted_at;
    h2o_timeout_entry_t first_read_timeout;
    h2o_linklist_t pending; /* in lt_h2guard.pending */
    expect_fn expect; /* h2o's parser entry point this connection would have used */
    lt_h2guard_frames_t frames;
    size_t last_written;
    uint64_t stall_since; /* last time output moved or was not blocked */
    uint64_t flagged_at;
    uint8_t reason; /* lt_h2guard_reason_t, set once */
    uint8_t cut;    /* shutdown(2) done */
} conn_state_t;

static const lt_config_t *live_config;

static const char *const reason_names[LT_H2G_REASONS] = {
    "ok", "rapid_reset", "ping_flood", "settings_flood", "control_flood", "output_flood", "write_stall",
};

/* GOAWAY debug data (the peer sees it). */
static const char *const reason_texts[LT_H2G_REASONS] = {
    "",
    "too many streams reset",
    "too many PING frames",
    "too many SETTINGS frames",
    "too many control frames",
    "too much output left unread",
    "output not read",
};

/* ---- accounting (pure) -------------------------------------------------------------- */

void lt_h2guard_limits_default(lt_h2guard_limits_t *lim)
{
    lim->window_ms = 10000;
    lim->max_resets = 200;
    lim->max_pings = 100;
    lim->max_settings = 100;
    lim->max_control = 1000;
    lim->max_streams_per_turn = DEFAULT_STREAMS_PER_TURN;
    lim->stall_ms = 10000;
}

const char *lt_h2guard_reason_name(lt_h2guard_reason_t r)
{
    return (unsigned)r < LT_H2G_REASONS ? reason_names[r] : "unknown";
}

/* Moves the window forward to `now`: the current counts become the previous ones after one
 * window, and are forgotten after two. */
static void roll(lt_h2guard_frames_t *f, uint64_t now, uint64_t w)
{
    if (f->window_start == 0 || now < f->window_start) {
        memset(f->cur, 0, sizeof(f->cur));
        memset(f->prev, 0, sizeof(f->prev));
        f->window_start = now != 0 ? now : 1;
        return;
    }
    uint64_t n = (now - f->window_start) / w;
    if (n == 0)
        return;
    if (n == 1)
        memcpy(f->prev, f->cur, sizeof(f->prev));
    else
        memset(f->prev, 0, sizeof(f->prev));
    memset(f->cur, 0, sizeof(f->cur));
    f->window_start += n * w;
}

/* Sliding-window estimate: all of this window plus the part of the previous one that still
 * overlaps the last `w` ms (the usual two-bucket approximation). */
static uint32_t estimate(const lt_h2guard_frames_t *f, int c, uint64_t now, uint64_t w)
{
    uint64_t elapsed = now > f->window_start ? now - f->window_start : 0;
    if (elapsed >= w)
        return f->cur[c];
    return f->cur[c] + (uint32_t)((uint64_t)f->prev[c] * (w - elapsed) / w);
}

uint32_t lt_h2guard_estimate(const lt_h2guard_frames_t *f, int c, uint64_t now_ms, int window_ms)
{
    if (c < 0 || c >= LT_H2G_COUNTERS || window_ms <= 0 || f->window_start == 0)
        return 0;
    lt_h2guard_frames_t at = *f;
    roll(&at, now_ms, (uint64_t)window_ms);
    return estimate(&at, c, now_ms, (uint64_t)window_ms);
}

static int over(uint32_t est, int limit, uint64_t allowance)
{
    return limit > 0 && (uint64_t)est > (uint64_t)limit + allowance;
}

static void turn_roll(lt_h2guard_frames_t *f, uint64_t turn)
{
    if (f->turn != turn) {
        f->turn = turn;
        f->turn_streams = 0;
        f->turn_resets = 0;
    }
}

/*
 * More streams opened in one turn than h2o lets be open twice over, at least half of them
 * reset in that turn: the reset loop of CVE-2023-44487 as it arrives in one read. A client
 * that pipelines HEADERS beyond the concurrency limit without resetting is not this (h2o
 * queues those and stops reading; if it never reads the answers, the stall sweep ends it).
 */
static int turn_flood(const lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim)
{
    return lim->max_streams_per_turn > 0 && f->turn_streams > (uint32_t)lim->max_streams_per_turn &&
           f->turn_resets >= f->turn_streams / 2;
}

lt_h2guard_reason_t lt_h2guard_account(lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim, const uint8_t *frame,
                                       size_t len, uint64_t now_ms, uint64_t turn)
{
    if (len < 9)
        return LT_H2G_OK;
    uint32_t flen = ((uint32_t)frame[0] << 16) | ((uint32_t)frame[1] << 8) | frame[2];
    uint8_t type = frame[3], flags = frame[4];
    const uint8_t *payload = frame + 9;
    uint64_t w = lim->window_ms > 0 ? (uint64_t)lim->window_ms : 10000;
    int c = -1;

    if ((size_t)flen + 9 > len)
        return LT_H2G_OK;
    roll(f, now_ms, w);
    switch (type) {
    case 0: /* DATA: an empty one that does not end the stream carries nothing */
        if (flen == 0 && !(flags & 0x1))
            c = LT_H2G_C_CONTROL;
        break;
    case 1: /* HEADERS */
        turn_roll(f, turn);
        f->turn_streams++;
        if (turn_flood(f, lim))
            return LT_H2G_RAPID_RESET;
        c = LT_H2G_C_REQUESTS;
        if (flen == 0 && !(flags & 0x4)) /* empty, more to come: nothing but a cost */
            f->cur[LT_H2G_C_CONTROL]++;
        break;
    case 3: /* RST_STREAM */
        turn_roll(f, turn);
        f->turn_resets++;
        if (turn_flood(f, lim))
            return LT_H2G_RAPID_RESET;
        c = LT_H2G_C_RESETS;
        break;
    case 4: /* SETTINGS */
        c = flags & 0x1 ? LT_H2G_C_CONTROL : LT_H2G_C_SETTINGS;
        break;
    case 6: /* PING */
        c = flags & 0x1 ? LT_H2G_C_CONTROL : LT_H2G_C_PINGS;
        break;
    case 8: /* WINDOW_UPDATE: replenishing in earnest is normal; tiny increments are not */
        if (flen == 4) {
            uint32_t inc = (((uint32_t)payload[0] & 0x7f) << 24) | ((uint32_t)payload[1] << 16) |
                           ((uint32_t)payload[2] << 8) | payload[3];
            if (inc < 1024)
                c = LT_H2G_C_CONTROL;
        } else {
            c = LT_H2G_C_CONTROL;
        }
        break;
    case 9: /* CONTINUATION */
        if (flen == 0 && !(flags & 0x4))
            c = LT_H2G_C_CONTROL;
        break;
    default: /* PRIORITY, PUSH_PROMISE, GOAWAY, unknown types */
        c = LT_H2G_C_CONTROL;
        break;
    }
    if (c < 0)
        return LT_H2G_OK;
    if (f->cur[c] < UINT32_MAX)
        f->cur[c]++;

    uint32_t requests = estimate(f, LT_H2G_C_REQUESTS, now_ms, w);
    switch (c) {
    case LT_H2G_C_RESETS:
        return over(estimate(f, c, now_ms, w), lim->max_resets, requests / 2) ? LT_H2G_RAPID_RESET : LT_H2G_OK;
    case LT_H2G_C_PINGS:
        return over(estimate(f, c, now_ms, w), lim->max_pings, 0) ? LT_H2G_PING_FLOOD : LT_H2G_OK;
    case LT_H2G_C_SETTINGS:
        return over(estimate(f, c, now_ms, w), lim->max_settings, 0) ? LT_H2G_SETTINGS_FLOOD : LT_H2G_OK;
    case LT_H2G_C_CONTROL:
        return over(estimate(f, c, now_ms, w), lim->max_control, 2 * (uint64_t)requests) ? LT_H2G_CONTROL_FLOOD
                                                                                           : LT_H2G_OK;
    default:
        break;
    }
    /* empty HEADERS counted as control above */
    if (type == 1 && over(estimate(f, LT_H2G_C_CONTROL, now_ms, w), lim->max_control, 2 * (uint64_t)requests))
        return LT_H2G_CONTROL_FLOOD;
    return LT_H2G_OK;
}

/* ---- configuration ------------------------------------------------------------------ */

void lt_h2guard_configure(const lt_config_t *live)
{
    live_config = live;
}

static void refresh_limits(lt_h2guard_t *g)
{
    const lt_config_t *c = live_config;
    if (c == NULL)
        return;
    g->lim.window_ms = c->h2_window_ms;
    g->lim.max_resets = c->h2_max_resets;
    g->lim.max_pings = c->h2_max_pings;
    g->lim.max_settings = c->h2_max_settings;
    g->lim.max_control = c->h2_max_control;
    /* the per-turn cap is part of the reset protection: off together */
    g->lim.max_streams_per_turn = c->h2_max_resets > 0 ? DEFAULT_STREAMS_PER_TURN : 0;
    g->lim.stall_ms = c->h2_stall_ms;
}

/* ---- per-connection state ----------------------------------------------------------- */

static void on_sock_close(void *data)
{
    conn_state_t *st = data;
    if (h2o_timeout_is_linked(&st->first_read_timeout))
        h2o_timeout_unlink(&st->first_read_timeout);
    if (h2o_linklist_is_linked(&st->pending))
        h2o_linklist_unlink(&st->pending);
    free(st);
}

static conn_state_t *state_of(h2o_socket_t *sock)
{
    return sock != NULL && sock->on_close.cb == on_sock_close ? sock->on_close.data : NULL;
}

static void note_closed(lt_h2guard_t *g, lt_h2guard_reason_t reason)
{
    atomic_fetch_add_explicit(&g->closed[reason], 1, memory_order_relaxed);
    /* An attacker reconnecting in a loop must not turn this into a log flood. */
    uint64_t now = h2o_now(g->loop);
    if (g->last_log_ms != 0 && now - g->last_log_ms < LOG_EVERY_MS) {
        g->unlogged++;
        return;
    }
    if (g->unlogged != 0)
        lt_log(LT_LOG_WARN, "http", "closed an HTTP/2 connection (%s) and %llu more since the last report",
               reason_names[reason], (unsigned long long)g->unlogged);
    else
        lt_log(LT_LOG_WARN, "http", "closed an HTTP/2 connection (%s)", reason_names[reason]);
    g->last_log_ms = now;
    g->unlogged = 0;
}

static void flag(lt_h2guard_t *g, conn_state_t *st, lt_h2guard_reason_t reason)
{
    if (st->reason != LT_H2G_OK)
        return;
    st->reason = (uint8_t)reason;
    st->flagged_at = h2o_now(g->loop);
    note_closed(g, reason);
}

/*
 * Ends the connection from below h2o: both directions shut, so the pending write or the
 * next read fails and h2o closes the connection through its own error path. A connection
 * h2o neither reads (it stops at SETTINGS_MAX_CONCURRENT_STREAMS open responses) nor writes
 * (every stream waits for a window) would never notice: it is made to read again, with
 * h2o's own callback, and reads the end of the stream. SO_LINGER 0 makes the final close(2)
 * reset the connection and drop whatever the peer never read.
 */
static void cut(lt_h2guard_t *g, conn_state_t *st, h2o_socket_t *sock)
{
    int fd = h2o_socket_get_fd(sock);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (st->cut || fd < 0)
        return;
    st->cut = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    (void)shutdown(fd, SHUT_RDWR);
    if (!h2o_socket_is_reading(sock) && !h2o_socket_is_writing(sock) && g->h2_on_read != NULL)
        h2o_socket_read_start(sock, g->h2_on_read);
}

static ssize_t guarded_expect(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    conn_state_t *st = state_of(conn->sock);
    if (st == NULL || st->expect == NULL) { /* never: wrapped connections keep their socket and state */
        *err_desc = "internal error";
        return H2O_HTTP2_ERROR_INTERNAL;
    }
    lt_h2guard_t *g = st->g;
    if (len >= 9) {
        size_t flen = ((size_t)src[0] << 16) | ((size_t)src[1] << 8) | src[2];
        /* complete frames only (an incomplete one comes back whole later), and not the
         * connection preface, whose first bytes read as an impossible length */
        if (flen <= MAX_FRAME_LEN && len >= 9 + flen) {
            lt_h2guard_reason_t r = lt_h2guard_account(&st->frames, &g->lim, src, 9 + flen, h2o_now(g->loop), g->turn);
            if (r == LT_H2G_OK && conn->_write.buf != NULL && conn->_write.buf->size > LT_H2G_MAX_PENDING_OUTPUT)
                r = LT_H2G_OUTPUT_FLOOD;
            if (r != LT_H2G_OK) {
                flag(g, st, r);
                /* nothing more is parsed once h2o closes; stop reading so the input
                 * buffer cannot grow while the GOAWAY waits for the peer */
                h2o_socket_read_stop(conn->sock);
                *err_desc = reason_texts[r];
                return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
            }
        }
    }
    ssize_t ret = st->expect(conn, src, len, err_desc);
    if (conn->_read_expect != guarded_expect) {
        st->expect = conn->_read_expect;
        conn->_read_expect = guarded_expect;
    }
    return ret;
}

/* @return 1 once `conn` is guarded (now or before), 0 if it cannot be (yet). */
static int wrap(h2o_http2_conn_t *conn)
{
    if (conn->_read_expect == guarded_expect)
        return 1;
    conn_state_t *st = state_of(conn->sock); /* NULL while an Upgrade: h2c has no socket yet */
    if (st == NULL || conn->_read_expect == NULL)
        return 0;
    st->expect = conn->_read_expect;
    conn->_read_expect = guarded_expect;
    return 1;
}

/* A stream has data to send that only a flow-control window the peer withholds can release. */
static int flow_blocked(h2o_http2_conn_t *conn)
{
    if (conn->num_streams.pull.send_body + conn->num_streams.push.send_body == 0)
        return 0;
    int conn_window_shut = h2o_http2_window_get_window(&conn->_write.window) <= 0;
    const khash_t(h2o_http2_stream_t) *h = conn->streams;
    if (h == NULL || h->size > h->n_buckets)
        return 0;
    for (khint_t i = kh_begin(h); i != kh_end(h); i++) {
        if (!kh_exist(h, i))
            continue;
        h2o_http2_stream_t *stream = kh_val(h, i);
        if (stream == NULL || stream->state < H2O_HTTP2_STREAM_STATE_SEND_BODY ||
            stream->state > H2O_HTTP2_STREAM_STATE_SEND_BODY_IS_FINAL || stream->_data.size == 0)
            continue;
        if (conn_window_shut || h2o_http2_window_get_window(&stream->output_window) <= 0)
            return 1;
    }
    return 0;
}

static void check_output(lt_h2guard_t *g, h2o_http2_conn_t *conn, conn_state_t *st, uint64_t now)
{
    h2o_socket_t *sock = conn->sock;
    if (st->cut)
        return;
    int blocked = h2o_socket_is_writing(sock) || flow_blocked(conn);
    if (!blocked || sock->bytes_written != st->last_written) {
        st->last_written = sock->bytes_written;
        st->stall_since = now;
    }
    if (st->reason != LT_H2G_OK) {
        if (now - st->stall_since >= LT_H2G_CLOSE_GRACE_MS || now - st->flagged_at >= FLAGGED_MAX_MS)
            cut(g, st, sock);
        return;
    }
    if (blocked && g->lim.stall_ms > 0 && now - st->stall_since >= (uint64_t)g->lim.stall_ms) {
        flag(g, st, LT_H2G_WRITE_STALL);
        cut(g, st, sock);
    }
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    lt_h2guard_t *g = H2O_STRUCT_FROM_MEMBER(lt_h2guard_t, sweep_entry, entry);
    uint64_t now = h2o_now(g->loop);
    h2o_linklist_t *anchor = &g->ctx->http2._conns;
    for (h2o_linklist_t *node = anchor->next; node != anchor; node = node->next) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        conn_state_t *st = state_of(conn->sock);
        if (st == NULL)
            continue;
        wrap(conn);
        check_output(g, conn, st, now);
    }
    if (!h2o_linklist_is_empty(anchor))
        h2o_timeout_link(g->loop, &g->sweep_timeout, &g->sweep_entry);
}

/* ---- worker integration ------------------------------------------------------------- */

lt_h2guard_t *lt_h2guard_create(h2o_context_t *ctx)
{
    lt_h2guard_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->ctx = ctx;
    g->loop = ctx->loop;
    lt_h2guard_limits_default(&g->lim);
    refresh_limits(g);
    h2o_linklist_init_anchor(&g->pending);
    h2o_timeout_init(g->loop, &g->sweep_timeout, SWEEP_MS);
    g->sweep_entry.cb = on_sweep;
    g->timer_ready = 1;
    return g;
}

/*
 * Taking the connection before h2o does. h2o_accept() would run the TLS handshake or, in
 * cleartext, read the first bytes as HTTP/1.x, and on seeing h2 (ALPN, or the preface) make
 * an HTTP/2 connection and parse the input it already holds in the same call: an attacker's
 * first flight (a TCP window's worth: over a thousand reset streams) would be handled before
 * the connection could be guarded. So latchd does those first steps itself with h2o's own
 * functions (h2o_socket_ssl_handshake, h2o_http2_accept, h2o_http1_accept, as
 * lib/core/util.c does), and hands the socket to h2o_http2_accept with an empty input, wraps
 * the new connection, then gives the input back and lets h2o read it, as h2o itself does
 * after an Upgrade. Until then the socket is "pending": bounded by h2o's handshake or
 * first-request timeout, and closed at stop.
 */
static const uint8_t PREFACE[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void end_pending(conn_state_t *st)
{
    if (h2o_timeout_is_linked(&st->first_read_timeout))
        h2o_timeout_unlink(&st->first_read_timeout);
    if (h2o_linklist_is_linked(&st->pending))
        h2o_linklist_unlink(&st->pending);
    h2o_socket_read_stop(st->sock);
}

static void on_pending_timeout(h2o_timeout_entry_t *entry)
{
    conn_state_t *st = H2O_STRUCT_FROM_MEMBER(conn_state_t, first_read_timeout, entry);
    end_pending(st);
    h2o_socket_close(st->sock);
}

static void start_http2(lt_h2guard_t *g, h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval at)
{
    h2o_buffer_t *input = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    /* with nothing to parse, this only sets the connection up and starts reading */
    h2o_http2_accept(actx, sock, at);
    h2o_buffer_dispose(&sock->input);
    sock->input = input;
    if (sock->_cb.read != NULL)
        g->h2_on_read = sock->_cb.read;
    h2o_linklist_t *anchor = &g->ctx->http2._conns;
    if (!h2o_linklist_is_empty(anchor)) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, anchor->prev);
        if (conn->sock == sock)
            wrap(conn);
    }
    /* h2o's HTTP/2 read callback, as h2o_http2_accept calls it when input is waiting */
    if (input->size != 0 && sock->_cb.read != NULL)
        sock->_cb.read(sock, NULL);
}

static void on_first_read(h2o_socket_t *sock, const char *err)
{
    conn_state_t *st = state_of(sock);
    const uint8_t *p = (const uint8_t *)sock->input->bytes;
    size_t n = sock->input->size;

    if (err != NULL) {
        end_pending(st);
        h2o_socket_close(sock);
        return;
    }
    if (n == 0 || (n < sizeof(PREFACE) && memcmp(p, PREFACE, n) == 0))
        return; /* could still become the preface */
    end_pending(st);
    if (n >= sizeof(PREFACE) && memcmp(p, PREFACE, sizeof(PREFACE)) == 0)
        start_http2(st->g, st->actx, sock, st->accepted_at);
    else
        h2o_http1_accept(st->actx, sock, st->accepted_at);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    conn_state_t *st = state_of(sock);
    end_pending(st);
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *id = h2o_http2_alpn_protocols; id->len != 0; id++) {
        if (proto.len == id->len && memcmp(proto.base, id->base, proto.len) == 0) {
            start_http2(st->g, st->actx, sock, st->accepted_at);
            return;
        }
    }
    h2o_http1_accept(st->actx, sock, st->accepted_at);
}

void lt_h2guard_accept(lt_h2guard_t *g, h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    conn_state_t *st = NULL;
    if (g != NULL && sock->on_close.cb == NULL && !actx->expect_proxy_line && (st = calloc(1, sizeof(*st))) != NULL) {
        st->g = g;
        st->stall_since = h2o_now(g->loop);
        sock->on_close.cb = on_sock_close;
        sock->on_close.data = st;
    }
    if (st == NULL) {
        h2o_accept(actx, sock);
        return;
    }
    st->sock = sock;
    st->actx = actx;
    st->accepted_at = *h2o_get_timestamp(actx->ctx, NULL, NULL);
    st->first_read_timeout.cb = on_pending_timeout;
    h2o_linklist_insert(&g->pending, &st->pending);
    /* the deadlines h2o_accept would set: the handshake's, or the first request's */
    if (actx->ssl_ctx != NULL) {
        h2o_timeout_link(g->loop, &actx->ctx->handshake_timeout, &st->first_read_timeout);
        h2o_socket_ssl_handshake(sock, actx->ssl_ctx, NULL, on_handshake); /* may close `sock` already */
    } else {
        h2o_timeout_link(g->loop, &actx->ctx->http1.req_timeout, &st->first_read_timeout);
        h2o_socket_read_start(sock, on_first_read);
    }
}

void lt_h2guard_after_turn(lt_h2guard_t *g)
{
    if (g == NULL)
        return;
    g->turn++;
    refresh_limits(g);
    /* Newest first, until a connection that is guarded already: the cost is the number of
     * connections made in this turn, and a flood on a new connection is counted from its
     * next read on. */
    h2o_linklist_t *anchor = &g->ctx->http2._conns;
    int all = g->upgrading;
    g->upgrading = 0;
    for (h2o_linklist_t *node = anchor->prev; node != anchor; node = node->prev) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        if (conn->_read_expect == guarded_expect) {
            if (all)
                continue;
            break;
        }
        /* an Upgrade: h2c connection gets its socket once the 101 is written: look again */
        if (!wrap(conn) && conn->sock == NULL)
            g->upgrading = 1;
    }
    if (g->timer_ready && !h2o_linklist_is_empty(anchor) && !h2o_timeout_is_linked(&g->sweep_entry))
        h2o_timeout_link(g->loop, &g->sweep_timeout, &g->sweep_entry);
}

void lt_h2guard_stop(lt_h2guard_t *g)
{
    if (g == NULL || !g->timer_ready)
        return;
    /* sockets h2o never took: nobody else closes them */
    while (!h2o_linklist_is_empty(&g->pending)) {
        conn_state_t *st = H2O_STRUCT_FROM_MEMBER(conn_state_t, pending, g->pending.next);
        end_pending(st);
        h2o_socket_close(st->sock);
    }
    if (h2o_timeout_is_linked(&g->sweep_entry))
        h2o_timeout_unlink(&g->sweep_entry);
    h2o_timeout_dispose(g->loop, &g->sweep_timeout);
    g->timer_ready = 0;
}

void lt_h2guard_destroy(lt_h2guard_t **pg)
{
    free(*pg);
    *pg = NULL;
}

int lt_h2guard_render_metrics(lt_h2guard_t *const *guards, size_t n, lt_buf_t *out)
{
    int ret = lt_buf_appends(out, "# HELP latch_h2_abuse_closed_total HTTP/2 connections closed for abusing the protocol.\n"
                                  "# TYPE latch_h2_abuse_closed_total counter\n");
    for (int r = 1; r < LT_H2G_REASONS; r++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            if (guards[i] != NULL)
                sum += atomic_load_explicit(&guards[i]->closed[r], memory_order_relaxed);
        ret |= lt_buf_appendf(out, "latch_h2_abuse_closed_total{reason=\"%s\"} %llu\n", reason_names[r],
                              (unsigned long long)sum);
    }
    return ret != 0 ? LT_ENOMEM : 0;
}
