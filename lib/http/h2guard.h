/*
 * h2guard: per-connection HTTP/2 abuse accounting for h2o 2.2.5.
 *
 * Debian's h2o 2.2.5 has none of upstream's HTTP/2 denial-of-service fixes. The one that
 * matters most is Rapid Reset (CVE-2023-44487): a stream the client resets stops counting
 * against SETTINGS_MAX_CONCURRENT_STREAMS, so one connection can make h2o run an unbounded
 * number of requests inside a single read callback, and every other connection of that
 * worker waits. PING and SETTINGS floods (CVE-2019-9512/9515) make h2o queue an ACK per
 * frame, without bound when the peer does not read, and a peer that never reads (or never
 * opens its flow-control window) holds its streams and buffers forever: h2o 2.2's idle
 * timeout does not run while a stream is open.
 *
 * How: every accepted socket gets a small state (freed by the socket's on_close, the hook
 * h2o's own server uses). latchd runs the first steps of h2o_accept itself (the TLS
 * handshake and ALPN, or the cleartext preface check) so that it can hand the socket to
 * h2o_http2_accept and wrap the new connection before h2o parses a single frame (Upgrade:
 * h2c connections are caught at the end of the loop turn, and a periodic sweep catches any
 * left). The connection's frame-parser entry point (`_read_expect`) is wrapped: the wrapper
 * sees each complete frame before h2o handles it, counts it, and over a budget returns
 * ENHANCE_YOUR_CALM instead of handling it, which is h2o's own path for a connection error:
 * GOAWAY, then close. It also stops reading, so a peer that keeps sending cannot grow the
 * input buffer while the GOAWAY waits. The sweep closes connections whose output has not
 * moved for `stall_ms` while blocked (socket not writable, or a stream with data waiting
 * for a flow-control window): shutdown(2) with SO_LINGER 0, so h2o's own write path fails
 * and tears the connection down (h2o's objects are never freed under it). HTTP/1.x
 * connections are left alone.
 *
 * Budgets (lt_h2guard_limits_t; config keys h2_*, reloadable): per connection, over a
 * sliding window of `window_ms`:
 *   - streams opened in one loop turn: more than twice SETTINGS_MAX_CONCURRENT_STREAMS with
 *     at least half of them reset in the same turn: rapid_reset (a client pipelining past
 *     the concurrency limit without resets is left to h2o's queue and the stall sweep);
 *   - RST_STREAM frames: more than max_resets + half the requests: rapid_reset (a proxy
 *     that cancels some requests stays far below; a reset loop resets every stream);
 *   - PING and SETTINGS frames (not ACKs): more than max_pings / max_settings;
 *   - other control frames (PRIORITY, WINDOW_UPDATE below 1 KiB, empty DATA, HEADERS or
 *     CONTINUATION without an end flag, ACKs, unknown types): more than max_control + two
 *     per request;
 *   - output queued by h2o but not yet written above LT_H2G_MAX_PENDING_OUTPUT.
 * A limit of 0 turns its check off.
 *
 * Threading: one guard per worker, used only on that worker's thread, except
 * lt_h2guard_render_metrics (any thread; counters are atomics) and lt_h2guard_configure
 * (before the workers start, or while they are paused: lt_http_server_quiesce).
 */
#ifndef LT_HTTP_H2GUARD_H
#define LT_HTTP_H2GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct st_h2o_context_t;
struct st_h2o_accept_ctx_t;
struct st_h2o_socket_t;
struct lt_config;

typedef struct lt_h2guard lt_h2guard_t;

/* Output h2o has queued for a connection but not handed to the socket, beyond which the
 * connection is closed. h2o itself stops producing DATA at 512 KiB; only control replies
 * (ACKs, RST_STREAM) to a peer that does not read get this far. */
#define LT_H2G_MAX_PENDING_OUTPUT (4u << 20)
/* A connection closed for abuse that still has not flushed its GOAWAY after this long is
 * cut (its peer does not read). */
#define LT_H2G_CLOSE_GRACE_MS 1000

typedef struct lt_h2guard_limits {
    int window_ms;   /* the sliding window of the budgets */
    int max_resets;  /* RST_STREAM frames per window (plus half the requests); 0: no limit */
    int max_pings;   /* PING frames per window; 0: no limit */
    int max_settings; /* SETTINGS frames per window; 0: no limit */
    int max_control; /* other control frames per window (plus two per request); 0: no limit */
    int max_streams_per_turn; /* streams opened in one loop turn; 0: no limit */
    int stall_ms;    /* blocked output that has not moved this long closes the connection; 0: never */
} lt_h2guard_limits_t;

typedef enum {
    LT_H2G_OK = 0,
    LT_H2G_RAPID_RESET,
    LT_H2G_PING_FLOOD,
    LT_H2G_SETTINGS_FLOOD,
    LT_H2G_CONTROL_FLOOD,
    LT_H2G_OUTPUT_FLOOD,
    LT_H2G_WRITE_STALL,
    LT_H2G_REASONS
} lt_h2guard_reason_t;

enum { LT_H2G_C_RESETS, LT_H2G_C_PINGS, LT_H2G_C_SETTINGS, LT_H2G_C_CONTROL, LT_H2G_C_REQUESTS, LT_H2G_COUNTERS };

/* Frame accounting of one connection: counts of the current and the previous window. */
typedef struct lt_h2guard_frames {
    uint64_t window_start; /* ms; 0: nothing counted yet */
    uint32_t cur[LT_H2G_COUNTERS];
    uint32_t prev[LT_H2G_COUNTERS];
    uint64_t turn;         /* the loop turn turn_streams counts */
    uint32_t turn_streams; /* HEADERS frames opening a stream in that turn */
    uint32_t turn_resets;  /* RST_STREAM frames in that turn */
} lt_h2guard_frames_t;

/* The defaults of the config keys (window 10 s, 200 resets, 100 PINGs, 100 SETTINGS, 1000
 * control frames, 200 streams per turn, 10 s stall). */
void lt_h2guard_limits_default(lt_h2guard_limits_t *lim);

/**
 * Counts one complete frame (`frame`: its 9-byte header and payload, `len` bytes) received
 * at `now_ms` during loop turn `turn`. Pure: the unit tests drive it directly.
 * @return LT_H2G_OK, or the budget the frame went over.
 */
lt_h2guard_reason_t lt_h2guard_account(lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim, const uint8_t *frame,
                                       size_t len, uint64_t now_ms, uint64_t turn);

/** The sliding-window estimate of counter `c` at `now_ms` (for tests and diagnostics). */
uint32_t lt_h2guard_estimate(const lt_h2guard_frames_t *f, int c, uint64_t now_ms, int window_ms);

/* "rapid_reset", "ping_flood", ... (the metric's reason label). */
const char *lt_h2guard_reason_name(lt_h2guard_reason_t r);

/*
 * The live configuration the guards read their limits from (h2_* keys), at the start of
 * each loop turn; NULL: the defaults. Process-wide; `live` must outlive the servers.
 */
void lt_h2guard_configure(const struct lt_config *live);

/* The guard of the worker that owns `ctx`, created on that worker's thread. NULL: out of
 * memory (every function below accepts NULL and then does nothing but accept). */
lt_h2guard_t *lt_h2guard_create(struct st_h2o_context_t *ctx);

/* Hands a freshly accepted socket to h2o (h2o_accept), with its state attached first. */
void lt_h2guard_accept(lt_h2guard_t *g, struct st_h2o_accept_ctx_t *actx, struct st_h2o_socket_t *sock);

/* Runs after every turn of the worker's loop: guards the HTTP/2 connections h2o made. */
void lt_h2guard_after_turn(lt_h2guard_t *g);

/* On the worker's thread before its loop is destroyed: stops the sweep timer. */
void lt_h2guard_stop(lt_h2guard_t *g);

/* Frees the guard once no worker runs (sockets still open keep their own state). */
void lt_h2guard_destroy(lt_h2guard_t **g);

/** Appends latch_h2_abuse_closed_total{reason} summed over `n` guards. @return 0 or LT_ENOMEM. */
int lt_h2guard_render_metrics(lt_h2guard_t *const *guards, size_t n, lt_buf_t *out) LT_MUSTCHECK;

#endif
