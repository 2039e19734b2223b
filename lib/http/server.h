/*
 * server: the HTTP/2 front end on libh2o-evloop.
 *
 * N worker threads, each with its own h2o evloop and context, share the listening sockets:
 * a TLS listener (ALPN h2, http/1.1 fallback) and an optional cleartext listener (HTTP/2
 * prior knowledge, HTTP/1.1, Upgrade: h2c). One h2o handler takes every request: it builds
 * the request context (lt_req_t), applies the body cap and routes.
 *
 * The application (api/) plugs in through lt_http_app_t: per-worker state is created on the
 * worker's own thread (so it may own loop-bound things such as the store pool), and
 * notifications broadcast from any thread arrive on every worker's loop through h2o
 * multithread queues.
 *
 * Graceful stop: listeners close, h2o sends GOAWAY and closes idle connections, open
 * response streams (lt_http_stream_start) are ended, in-flight requests finish (their async
 * work included) until `shutdown_timeout_ms`, then workers end.
 *
 * Threading: create/start/stop/destroy from one thread; lt_http_server_broadcast from any;
 * everything about a request runs on its worker's thread.
 */
#ifndef LT_HTTP_SERVER_H
#define LT_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "http/router.h"

struct st_h2o_req_t;
struct st_h2o_evloop_t;

typedef struct lt_http_server lt_http_server_t;
typedef struct lt_http_worker lt_http_worker_t;

/*
 * The request context. Lives in the request's pool and is released with it (after the
 * response, or when the client resets the stream).
 *
 * Async handlers: return 0 from the handler, start the work, set `on_cancel` (called if the
 * request goes away before you respond: cancel the work there so it never touches `r`
 * again), and clear it right before responding.
 */
typedef struct lt_req {
    struct st_h2o_req_t *req;
    lt_http_server_t *server;
    lt_http_worker_t *worker;
    int worker_id;
    void *app; /* the worker's application context */
    const lt_route_t *route;
    int nparams;
    lt_route_param_t params[LT_ROUTE_MAX_PARAMS];
    char request_id[72];
    char peer[64]; /* client address, numeric; filled on first lt_req_peer() */
    int tls;
    int responded;
    int held;        /* the answer waits in held_body for lt_http_release (response.h) */
    char *held_body; /* in the request pool */
    size_t held_len;
    uint64_t start_ns;
    void (*on_cancel)(void *data);
    void *cancel_data;
    struct lt_http_stream *stream; /* set by lt_http_stream_start (response.h) */
} lt_req_t;

typedef struct lt_http_app {
    /* Runs on worker `id`'s thread before it serves; *app becomes lt_req_t.app. */
    int (*worker_init)(int id, struct st_h2o_evloop_t *loop, void **app, void *data);
    /* Runs on the worker's thread after it stopped serving. */
    void (*worker_fini)(void *app, void *data);
    /* A broadcast notification, on the worker's thread. */
    void (*on_notify)(void *app, const char *channel, const char *payload, void *data);
    /* Optional. A 2xx answer of a route with application tags (flags from
     * LT_ROUTE_APP_SHIFT up; `tags` is them shifted down) is about to be sent, on the
     * worker's thread. Return 1 to hold it: it is then sent by lt_http_release, which the
     * application must call (setting r->on_cancel meanwhile, as for async work). */
    int (*hold)(void *app, lt_req_t *r, unsigned tags, void *data);
    void *data;
} lt_http_app_t;

typedef struct lt_http_options {
    int workers;
    const char *listen_tls; /* "host:port" or NULL/"" */
    const char *listen_h2c; /* "host:port" or NULL/"" */
    const char *tls_cert, *tls_key;
    size_t max_body_bytes;    /* application cap: 413 problem+json above it */
    size_t max_request_bytes; /* h2o's hard cap (HTTP/2 streams above it are reset) */
    int max_json_depth;
    const char *access_log; /* "-" stdout, "off"/NULL none, else a file path */
    int shutdown_timeout_ms;
} lt_http_options_t;

/**
 * Binds the listeners and prepares TLS. Takes ownership of `router`.
 * @return 0, LT_EINVAL (bad address, TLS files), LT_EIO (bind/listen failed), LT_ENOMEM;
 *         `err` names the cause.
 */
int lt_http_server_create(const lt_http_options_t *opts, lt_router_t *router, const lt_http_app_t *app,
                          lt_http_server_t **out, char *err, size_t errlen) LT_MUSTCHECK;

/** Starts the workers; returns once every worker_init has run. @return 0 or the first worker_init error. */
int lt_http_server_start(lt_http_server_t *s) LT_MUSTCHECK;

/* Delivers (channel, payload) to every worker's on_notify. Copies both; safe from any thread. */
void lt_http_server_broadcast(lt_http_server_t *s, const char *channel, const char *payload);

/*
 * Runs fn(data) on the calling thread while every serving worker waits between two loop
 * turns (a rendezvous through its message queue), so nothing of any request runs
 * meanwhile: fn may change state that workers read without locks (reloaded settings, the
 * TLS context). Blocks for about one loop turn of the busiest worker. Not from a worker or
 * an app callback; not concurrently with lt_http_server_stop (both belong to one thread).
 */
void lt_http_server_quiesce(lt_http_server_t *s, void (*fn)(void *data), void *data);

/**
 * Builds a TLS context from `cert` and `key` and makes every worker use it for new
 * handshakes. Connections already open keep the context they were made with (their SSL
 * objects hold references), so nothing is dropped. On failure nothing changes.
 * @return 0, LT_EINVAL (unreadable or mismatched files; `err` says which), LT_ESTATE (no
 *         TLS listener), LT_ENOMEM.
 */
int lt_http_server_reload_tls(lt_http_server_t *s, const char *cert, const char *key, char *err,
                              size_t errlen) LT_MUSTCHECK;

/* Graceful stop; blocks until every worker has ended. */
void lt_http_server_stop(lt_http_server_t *s);

void lt_http_server_destroy(lt_http_server_t **s);

int lt_http_server_worker_count(const lt_http_server_t *s);
void *lt_http_server_worker_app(const lt_http_server_t *s, int id);
const lt_router_t *lt_http_server_router(const lt_http_server_t *s);
const lt_http_options_t *lt_http_server_options(const lt_http_server_t *s);
/** Appends the HTTP metrics of all workers (Prometheus text). @return 0 or LT_ENOMEM. */
int lt_http_server_render_metrics(const lt_http_server_t *s, lt_buf_t *out) LT_MUSTCHECK;

/* Bound ports (useful when a listener was given port 0). */
int lt_http_server_port(const lt_http_server_t *s, int tls);

#endif
