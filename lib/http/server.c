/*
 * server: see server.h.
 *
 * Layout: one h2o_globalconf_t (read-only once workers run) with one host, one path "/"
 * and one handler (on_req) that does our own routing. Each worker thread owns an evloop, an
 * h2o_context_t, accept contexts for the TLS and cleartext listeners (listening sockets of
 * its own in the listener's SO_REUSEPORT group, so the kernel spreads connections across
 * the workers; see reuse_listener), a multithread receiver for broadcasts and stop, metrics
 * and an access-log buffer.
 *
 * Request lifetime: on_req allocates the lt_req_t as a shared entry of the request pool
 * whose dispose callback runs when h2o frees the request, after a normal response and after
 * a reset stream alike. Dispose cancels outstanding async work (r->on_cancel), records
 * metrics and writes the access-log line, so every request is counted exactly once.
 *
 * Stop: a worker leaves its loop when nothing is in flight and its connections closed (or
 * lingered), or at the deadline. It then stops taking messages (`receiving`, under the
 * server mutex, which every sender holds), waits until all workers left their loops, and
 * only then finalises the application (worker_fini) and tears down h2o. Requests that h2o
 * still reads during the teardown get a 503 without reaching the application (`finished`).
 */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/cors.h"
#include "http/h2guard.h"
#include "http/internal.h"
#include "http/logwriter.h"
#include "http/metrics.h"
#include "http/ratelimit.h"
#include "http/response.h"

#define ACCESS_LOG_FLUSH_BYTES (32 * 1024)
#define ACCESS_LOG_FLUSH_MS 200
/* Lines queued for the writer beyond this are dropped (and counted), never waited for. */
#define ACCESS_LOG_MAX_PENDING (8 * 1024 * 1024)
/* Once no request is in flight, idle connections get this long to close after GOAWAY. */
#define STOP_LINGER_MS 1000

enum { LISTEN_TLS = 0, LISTEN_H2C = 1 };

typedef struct {
    h2o_multithread_message_t super;
    int stop;
    uint64_t pause; /* lt_http_server_quiesce generation; 0: not a pause */
    char *channel;
    char *payload;
} worker_msg_t;

struct lt_http_worker {
    lt_http_server_t *server;
    int id;
    pthread_t tid;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept[2];
    h2o_socket_t *listen_sock[2];
    h2o_multithread_receiver_t receiver;
    lt_http_metrics_t *metrics;
    lt_h2guard_t *h2guard; /* HTTP/2 abuse accounting (h2guard.h) */
    void *app;
    int init_ret;
    uint64_t seq; /* request ids */
    /* Under server->mutex: the receiver accepts messages (set once the worker is ready to
     * serve, cleared once it has left its loop). Senders check it under the same lock, so
     * no message can reach a receiver that is being unregistered or whose queue is freed. */
    int receiving;
    /* Set on the worker's thread once it has left its loop, before worker_fini: from then on
     * neither requests nor notifications reach the application (its state is being freed). */
    int finished;
    h2o_linklist_t streams; /* open response streams (response.c) */
    /* graceful stop */
    int stopping;
    uint64_t stop_deadline_ms;
    uint64_t idle_since_ms;
    int disposed;
    /* access log */
    lt_buf_t log;
    h2o_timeout_t log_timeout;
    h2o_timeout_entry_t log_entry;
    time_t log_sec;
    char log_sec_str[24];
};

struct lt_http_server {
    lt_http_options_t opts;
    char *opt_strings[5];
    lt_router_t *router;
    lt_metrics_route_label_t *labels;
    lt_rl_t *rl; /* rate limits (ratelimit.c) */
    lt_http_app_t app;
    h2o_globalconf_t globalconf;
    SSL_CTX *ssl_ctx;
    int listen_fd[2];
    int port[2];
    lt_logwriter_t *access_log; /* NULL when off */
    char instance[9]; /* random prefix of generated request ids */
    int nworkers;
    lt_http_worker_t *workers;
    lt_http_metrics_t **worker_metrics;
    lt_h2guard_t **h2guards; /* the workers' guards, for /metrics */
    int started;
    /* start-up rendezvous */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int ready_count;
    int stopped_count;
    /* lt_http_server_quiesce rendezvous (under mutex) */
    uint64_t pause_gen, pause_released;
    int pause_arrived;
};

typedef struct {
    h2o_handler_t super;
    lt_http_server_t *server;
} root_handler_t;

/* ---- access log --------------------------------------------------------------------- */

/* Hands the worker's lines to the writer thread: the loop never waits on the log sink. */
static void access_log_flush(lt_http_worker_t *w)
{
    if (w->server->access_log != NULL)
        lt_logwriter_submit(w->server->access_log, &w->log);
}

static void on_log_timeout(h2o_timeout_entry_t *entry)
{
    lt_http_worker_t *w = H2O_STRUCT_FROM_MEMBER(lt_http_worker_t, log_entry, entry);
    access_log_flush(w);
}

static const char *proto_name(const h2o_req_t *req)
{
    return req->version >= 0x200 ? "HTTP/2" : req->version == 0x101 ? "HTTP/1.1" : "HTTP/1.0";
}

static void access_log_write(lt_http_worker_t *w, lt_req_t *r, int status, uint64_t dur_ns)
{
    h2o_req_t *req = r->req;
    struct timespec ts;
    int ret = 0;
    if (w->server->access_log == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != w->log_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(w->log_sec_str, sizeof(w->log_sec_str), "%Y-%m-%dT%H:%M:%S", &tm);
        w->log_sec = ts.tv_sec;
    }
    ret |= lt_buf_appendf(&w->log, "{\"time\":\"%s.%03ldZ\",\"request_id\":", w->log_sec_str, ts.tv_nsec / 1000000);
    ret |= lt_buf_append_json_string(&w->log, r->request_id, strlen(r->request_id));
    ret |= lt_buf_appends(&w->log, ",\"method\":");
    ret |= lt_buf_append_json_string(&w->log, req->method.base, req->method.len);
    /* The client's network, never its address: access logs are kept and shipped more
     * widely than the audit trail (base.h, lt_mask_ip). */
    char client[LT_MASK_MAX];
    lt_mask_ip(client, sizeof(client), lt_req_peer(r));
    ret |= lt_buf_appendf(&w->log, ",\"client\":\"%s\"", client);
    ret |= lt_buf_appendf(&w->log, ",\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu,\"proto\":\"%s\",\"tls\":%s}\n",
                          r->route != NULL ? r->route->pattern : "unmatched", status, (double)dur_ns / 1e6,
                          req->bytes_sent, proto_name(req), r->tls ? "true" : "false");
    if (ret != 0) {
        w->log.len = 0;
        return;
    }
    if (w->log.len >= ACCESS_LOG_FLUSH_BYTES || w->stopping)
        access_log_flush(w);
    else if (!h2o_timeout_is_linked(&w->log_entry))
        h2o_timeout_link(w->loop, &w->log_timeout, &w->log_entry);
}

/* ---- requests ----------------------------------------------------------------------- */

static int request_id_ok(const char *p, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

static void set_request_id(lt_req_t *r, lt_http_worker_t *w)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = r->req->headers.entries[i].value;
        if (request_id_ok(v.base, v.len)) {
            memcpy(r->request_id, v.base, v.len);
            r->request_id[v.len] = '\0';
            return;
        }
    }
    /* instance prefix + worker + sequence: unique per process, cheap, no syscall */
    snprintf(r->request_id, sizeof(r->request_id), "%s%02x%012llx", w->server->instance, (unsigned)w->id & 0xff,
             (unsigned long long)++w->seq);
}

static void on_req_dispose(void *p)
{
    lt_req_t *r = p;
    lt_http_worker_t *w = r->worker;
    if (r->stream != NULL)
        lt__http_stream_dispose(r);
    if (r->on_cancel != NULL) {
        void (*cb)(void *) = r->on_cancel;
        r->on_cancel = NULL;
        cb(r->cancel_data);
    }
    uint64_t dur = lt_monotonic_ns() - r->start_ns;
    int status = r->responded && !r->held ? r->req->res.status : 499; /* held: never sent */
    lt_http_metrics_end(w->metrics, r->route != NULL ? r->route->index : -1, status, dur);
    access_log_write(w, r, status, dur);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    lt_http_server_t *s = ((root_handler_t *)self)->server;
    lt_http_worker_t *w = H2O_STRUCT_FROM_MEMBER(lt_http_worker_t, ctx, req->conn->ctx);
    lt_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_req_dispose);
    lt_route_match_t m;

    memset(r, 0, sizeof(*r));
    r->req = req;
    r->server = s;
    r->worker = w;
    r->worker_id = w->id;
    r->app = w->app;
    r->tls = req->scheme == &H2O_URL_SCHEME_HTTPS;
    r->start_ns = lt_monotonic_ns();
    set_request_id(r, w);
    lt_http_metrics_begin(w->metrics);

    /*
     * A request read after the worker left its loop must not reach the application: its
     * per-worker state is finalised or being finalised, and handlers such as /metrics read
     * every worker's state. Such requests come from idle keep-alive HTTP/1.1 connections
     * (h2o 2.2 does not close them on shutdown) or HTTP/2 streams opened before the final
     * GOAWAY, read by the loop turns of the teardown.
     */
    if (w->finished) {
        lt_http_problem(r, 503, "shutting_down", "The server is shutting down.");
        return 0;
    }
    /* CORS preflights never reach the router (which would answer 405 to OPTIONS). */
    if (lt_http_cors_filter(r))
        return 0;

    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    switch (lt_router_match(s->router, req->method.base, req->method.len, req->path.base, plen, &m)) {
    case 0:
        break;
    case LT_ESTATE:
        lt_http_add_header(r, "allow", m.allow);
        lt_http_problem(r, 405, "method_not_allowed", "This resource does not support the request method.");
        return 0;
    default:
        lt_http_problem(r, 404, "not_found", "No such resource.");
        return 0;
    }
    r->route = m.route;
    r->nparams = m.nparams;
    memcpy(r->params, m.params, sizeof(m.params[0]) * (size_t)m.nparams);
    if (req->entity.base != NULL && req->entity.len > s->opts.max_body_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "The request body exceeds %zu bytes.", s->opts.max_body_bytes);
        lt_http_problem(r, 413, "payload_too_large", detail);
        return 0;
    }
    /* the client IP's bucket of the route's group, before any work for it */
    if (lt__http_rl_charge_ip(r) != 0)
        return 0;
    int ret = m.route->fn(r);
    /* Neither answered nor waiting for async work (which must set on_cancel): nothing will
     * ever answer, and the stream would hang until the client gives up (and hold a graceful
     * stop until its deadline). */
    if (!r->responded && r->on_cancel == NULL) {
        if (ret == 0)
            lt_log(LT_LOG_ERROR, "http", "request %s: handler for %s returned without answering", r->request_id,
                   m.route->pattern);
        lt_http_problem(r, 500, "internal_error", "The request could not be processed.");
    }
    return 0;
}

/* ---- listeners and TLS -------------------------------------------------------------- */

static int open_listener(const char *addr, int *fd_out, int *port_out, char *err, size_t errlen)
{
    char host[256], port[16];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int fd = -1, on = 1;

    if (colon == NULL || colon == addr || strlen(colon + 1) >= sizeof(port) || (size_t)(colon - addr) >= sizeof(host))
        goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    strcpy(port, colon + 1);
    if (host[0] == '[') { /* [::1]:8443 */
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            goto bad;
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        goto bad;
    /* Bound before SO_REUSEPORT is set, so that a port another process holds (another latchd
     * too, which would otherwise share it silently and take half the connections) is refused
     * with EADDRINUSE; set before listen(), so the workers' sockets (reuse_listener) join it. */
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    *fd_out = fd;
    return 0;
bad:
    snprintf(err, errlen, "bad listen address '%s' (want host:port)", addr);
    if (ai != NULL)
        freeaddrinfo(ai);
    return LT_EINVAL;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return LT_EIO;
}

/* A server context for `cert` and `key` (ALPN h2, http/1.1); NULL with `err` set. */
static SSL_CTX *build_tls_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2 suites allowed by RFC 9113 §9.2.2 (ephemeral key exchange, AEAD) */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls_cert: cannot load certificate chain from %s", cert);
        goto fail_quiet;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls_key: cannot load a private key matching tls_cert from %s", key);
        goto fail_quiet;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
fail:
    snprintf(err, errlen, "TLS set-up failed");
fail_quiet:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static int setup_tls(lt_http_server_t *s, char *err, size_t errlen)
{
    s->ssl_ctx = build_tls_ctx(s->opts.tls_cert, s->opts.tls_key, err, errlen);
    return s->ssl_ctx != NULL ? 0 : LT_EINVAL;
}

/*
 * Another listening socket on `fd`'s address, in its SO_REUSEPORT group, or -1. Each worker
 * but the first listens on one of its own: the kernel then spreads new connections across
 * the workers by their 4-tuple hash. With one socket polled by every worker, whichever woke
 * first took a whole burst of keep-alive connections and kept them (measured: 32 h2load
 * connections all on one of two workers in half the runs, and half the throughput).
 */
static int reuse_listener(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int on = 1, nfd = -1;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        (nfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -1;
    if (setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(nfd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(nfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 || bind(nfd, (struct sockaddr *)&ss, sl) != 0 ||
        listen(nfd, SOMAXCONN) != 0) {
        close(nfd);
        return -1;
    }
    return nfd;
}

/* ---- workers ------------------------------------------------------------------------ */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    lt_http_worker_t *w = listener->data;
    h2o_accept_ctx_t *actx = listener == w->listen_sock[LISTEN_TLS] ? &w->accept[LISTEN_TLS] : &w->accept[LISTEN_H2C];
    if (err != NULL)
        return;
    /* a few per wake-up, so one worker does not starve its own connections */
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        lt_h2guard_accept(w->h2guard, actx, sock);
    }
}

static void close_listeners(lt_http_worker_t *w)
{
    for (int i = 0; i < 2; i++) {
        if (w->listen_sock[i] != NULL) {
            h2o_socket_read_stop(w->listen_sock[i]);
            h2o_socket_close(w->listen_sock[i]);
            w->listen_sock[i] = NULL;
        }
    }
}

static void begin_stop(lt_http_worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    w->stop_deadline_ms = h2o_now(w->loop) + (uint64_t)w->server->opts.shutdown_timeout_ms;
    close_listeners(w);
    /* Streams (SSE) never finish on their own: end them now, so the stop waits only for
     * their last bytes, not for the deadline. */
    lt__http_streams_end_all(&w->streams);
    h2o_context_request_shutdown(&w->ctx);
}

h2o_linklist_t *lt__http_worker_streams(lt_http_worker_t *w)
{
    return &w->streams;
}

const lt_http_app_t *lt__http_server_app(const lt_http_server_t *s)
{
    return &s->app;
}

int lt__http_worker_stopping(const lt_http_worker_t *w)
{
    return w->stopping;
}

/* Waits, between two loop turns, until the quiesce of generation `gen` has run its function. */
static void pause_here(lt_http_worker_t *w, uint64_t gen)
{
    lt_http_server_t *s = w->server;
    pthread_mutex_lock(&s->mutex);
    s->pause_arrived++;
    pthread_cond_broadcast(&s->cond);
    while (s->pause_released < gen)
        pthread_cond_wait(&s->cond, &s->mutex);
    pthread_mutex_unlock(&s->mutex);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    lt_http_worker_t *w = H2O_STRUCT_FROM_MEMBER(lt_http_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        worker_msg_t *msg = H2O_STRUCT_FROM_MEMBER(worker_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->pause != 0)
            pause_here(w, msg->pause);
        else if (msg->stop)
            begin_stop(w);
        else if (!w->finished && w->server->app.on_notify != NULL) /* no app state after fini */
            w->server->app.on_notify(w->app, msg->channel, msg->payload, w->server->app.data);
        free(msg->channel);
        free(msg->payload);
        free(msg);
    }
}

static int connections_open(lt_http_worker_t *w)
{
    return !h2o_linklist_is_empty(&w->ctx.http1._conns) || !h2o_linklist_is_empty(&w->ctx.http2._conns);
}

/* Whether the stopping worker may end now: nothing in flight and connections closed (or lingered). */
static int stop_done(lt_http_worker_t *w)
{
    uint64_t now = h2o_now(w->loop);
    if (now >= w->stop_deadline_ms)
        return 1;
    if (lt_http_metrics_in_flight(w->metrics) != 0) {
        w->idle_since_ms = 0;
        return 0;
    }
    if (!connections_open(w))
        return 1;
    if (w->idle_since_ms == 0)
        w->idle_since_ms = now;
    return now - w->idle_since_ms >= STOP_LINGER_MS;
}

/* h2o_context_dispose asserts that none of the context's timeout buckets holds an entry. */
static int context_timers_idle(h2o_context_t *ctx)
{
    h2o_timeout_t *buckets[] = {&ctx->zero_timeout,        &ctx->one_sec_timeout,        &ctx->hundred_ms_timeout,
                                &ctx->handshake_timeout,   &ctx->http1.req_timeout,      &ctx->http2.idle_timeout,
                                &ctx->http2.graceful_shutdown_timeout, &ctx->proxy.io_timeout};
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++)
        if (!h2o_linklist_is_empty(&buckets[i]->_entries))
            return 0;
    return 1;
}

static void worker_signal_ready(lt_http_worker_t *w, int ret)
{
    lt_http_server_t *s = w->server;
    pthread_mutex_lock(&s->mutex);
    w->init_ret = ret;
    w->receiving = ret == 0; /* a worker that failed never runs its loop to drain messages */
    s->ready_count++;
    if (ret != 0)
        s->stopped_count++; /* it will never serve; nobody waits for it to stop */
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mutex);
}

static void *worker_main(void *arg)
{
    lt_http_worker_t *w = arg;
    lt_http_server_t *s = w->server;
    int ret;

    w->loop = h2o_evloop_create();
    h2o_linklist_init_anchor(&w->streams);
    h2o_context_init(&w->ctx, w->loop, &s->globalconf);
    w->h2guard = s->h2guards[w->id] = lt_h2guard_create(&w->ctx);
    h2o_multithread_register_receiver(w->ctx.queue, &w->receiver, on_messages);
    h2o_timeout_init(w->loop, &w->log_timeout, ACCESS_LOG_FLUSH_MS);
    w->log_entry.cb = on_log_timeout;
    for (int i = 0; i < 2; i++) {
        w->accept[i].ctx = &w->ctx;
        w->accept[i].hosts = s->globalconf.hosts;
        w->accept[i].ssl_ctx = i == LISTEN_TLS ? s->ssl_ctx : NULL;
        if (s->listen_fd[i] < 0)
            continue;
        /* The first worker takes the server's own socket (it must be accepted from: it is
         * in the group too), the others sockets of their own. */
        int fd = w->id == 0 ? dup(s->listen_fd[i]) : reuse_listener(s->listen_fd[i]);
        if (fd < 0) {
            worker_signal_ready(w, LT_EIO);
            return NULL;
        }
        w->listen_sock[i] = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        w->listen_sock[i]->data = w;
    }
    ret = s->app.worker_init != NULL ? s->app.worker_init(w->id, w->loop, &w->app, s->app.data) : 0;
    worker_signal_ready(w, ret);
    if (ret != 0)
        return NULL;
    /* Accept only once everybody is ready, so no request meets a half-built worker. */
    pthread_mutex_lock(&s->mutex);
    while (s->ready_count < s->nworkers)
        pthread_cond_wait(&s->cond, &s->mutex);
    int all_ok = 1;
    for (int i = 0; i < s->nworkers; i++)
        all_ok &= s->workers[i].init_ret == 0;
    pthread_mutex_unlock(&s->mutex);
    if (all_ok) {
        for (int i = 0; i < 2; i++)
            if (w->listen_sock[i] != NULL)
                h2o_socket_read_start(w->listen_sock[i], on_accept);
    } else {
        begin_stop(w);
    }

    for (;;) {
        h2o_evloop_run(w->loop, w->stopping ? 50 : INT32_MAX);
        lt_h2guard_after_turn(w->h2guard);
        if (w->stopping && stop_done(w))
            break;
    }

    close_listeners(w);
    /* Another worker may still be serving /metrics, which reads every worker's app state:
     * finalise only once all workers have left their loops. Stop taking messages first. */
    pthread_mutex_lock(&s->mutex);
    w->receiving = 0;
    s->stopped_count++;
    pthread_cond_broadcast(&s->cond);
    while (s->stopped_count < s->nworkers)
        pthread_cond_wait(&s->cond, &s->mutex);
    pthread_mutex_unlock(&s->mutex);
    w->finished = 1;
    if (s->app.worker_fini != NULL)
        s->app.worker_fini(w->app, s->app.data);
    w->app = NULL;
    h2o_timeout_unlink(&w->log_entry);
    access_log_flush(w);
    h2o_timeout_dispose(w->loop, &w->log_timeout);
    lt_h2guard_stop(w->h2guard);
    /* Let the loop release closed sockets and the app's last callbacks run. */
    h2o_evloop_run(w->loop, 0);
    /*
     * Messages sent before `receiving` was cleared may still sit in the receiver if the turn
     * above did not reach the queue's eventfd (h2o handles a bounded number of events per
     * turn); h2o_multithread_unregister_receiver asserts that none is left. Nobody sends any
     * more (see `receiving`) and the queue only dispatches on this thread, so drain directly.
     */
    on_messages(&w->receiver, &w->receiver._messages);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->receiver);
    /* the GOAWAY re-send timer of h2o's graceful shutdown outlives the last connection */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    if (!connections_open(w) && context_timers_idle(&w->ctx)) {
        h2o_multithread_queue_t *queue = w->ctx.queue;
        h2o_context_dispose(&w->ctx);
        /* h2o 2.2's evloop flavour of h2o_multithread_destroy_queue closes the queue's
         * socket but never frees the queue itself */
        free(queue);
        h2o_evloop_run(w->loop, 0); /* release the sockets closed above */
        h2o_evloop_destroy(w->loop);
        w->disposed = 1;
    }
    /* else: connections outlived the deadline; the process is about to exit and closes them */
    return NULL;
}

/* ---- public API --------------------------------------------------------------------- */

static char *dup_opt(lt_http_server_t *s, int slot, const char *v)
{
    if (v == NULL || *v == '\0')
        return NULL;
    s->opt_strings[slot] = strdup(v);
    return s->opt_strings[slot];
}

int lt_http_server_create(const lt_http_options_t *opts, lt_router_t *router, const lt_http_app_t *app,
                          lt_http_server_t **out, char *err, size_t errlen)
{
    lt_http_server_t *s = calloc(1, sizeof(*s));
    unsigned char rnd[4];
    int ret = LT_ENOMEM;
    size_t nroutes = lt_router_count(router);

    *out = NULL;
    if (s == NULL) {
        lt_router_destroy(&router);
        snprintf(err, errlen, "out of memory");
        return LT_ENOMEM;
    }
    s->router = router;
    s->listen_fd[0] = s->listen_fd[1] = -1;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->opts = *opts;
    s->opts.listen_tls = dup_opt(s, 0, opts->listen_tls);
    s->opts.listen_h2c = dup_opt(s, 1, opts->listen_h2c);
    s->opts.tls_cert = dup_opt(s, 2, opts->tls_cert);
    s->opts.tls_key = dup_opt(s, 3, opts->tls_key);
    s->opts.access_log = dup_opt(s, 4, opts->access_log);
    if (app != NULL)
        s->app = *app;
    s->nworkers = opts->workers > 0 ? opts->workers : 1;
    if (lt_random(rnd, sizeof(rnd)) != 0) {
        snprintf(err, errlen, "no randomness");
        ret = LT_EIO;
        goto fail;
    }
    lt_hex_encode(s->instance, rnd, sizeof(rnd));

    if ((s->labels = calloc(nroutes + 1, sizeof(*s->labels))) == NULL)
        goto fail_nomem;
    for (size_t i = 0; i < nroutes; i++) {
        const lt_route_t *rt = lt_router_route(router, i);
        s->labels[i].method = rt->method;
        s->labels[i].pattern = rt->pattern;
    }
    if (lt__http_rl_create(router, &s->rl) != 0)
        goto fail_nomem;

    if (s->opts.listen_tls == NULL && s->opts.listen_h2c == NULL) {
        snprintf(err, errlen, "no listener configured (listen, listen_h2c)");
        ret = LT_EINVAL;
        goto fail;
    }
    if (s->opts.listen_tls != NULL) {
        if ((ret = setup_tls(s, err, errlen)) != 0 ||
            (ret = open_listener(s->opts.listen_tls, &s->listen_fd[LISTEN_TLS], &s->port[LISTEN_TLS], err, errlen)) != 0)
            goto fail;
    }
    if (s->opts.listen_h2c != NULL &&
        (ret = open_listener(s->opts.listen_h2c, &s->listen_fd[LISTEN_H2C], &s->port[LISTEN_H2C], err, errlen)) != 0)
        goto fail;

    if (s->opts.access_log != NULL && strcmp(s->opts.access_log, "off") != 0) {
        int fd = strcmp(s->opts.access_log, "-") == 0
                     ? dup(STDOUT_FILENO)
                     : open(s->opts.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            snprintf(err, errlen, "access_log: cannot open %s: %s", s->opts.access_log, strerror(errno));
            ret = LT_EIO;
            goto fail;
        }
        if ((ret = lt_logwriter_create(fd, ACCESS_LOG_MAX_PENDING, &s->access_log)) != 0) {
            snprintf(err, errlen, "access_log: cannot start the writer thread");
            goto fail;
        }
    }

    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("latch"));
    s->globalconf.max_request_entity_size = opts->max_request_bytes;
    h2o_hostconf_t *host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    root_handler_t *handler = (root_handler_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = s;

    if ((s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers))) == NULL ||
        (s->worker_metrics = calloc((size_t)s->nworkers, sizeof(*s->worker_metrics))) == NULL ||
        (s->h2guards = calloc((size_t)s->nworkers, sizeof(*s->h2guards))) == NULL)
        goto fail_nomem;
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].server = s;
        s->workers[i].id = i;
        if (lt_http_metrics_create(nroutes, &s->workers[i].metrics) != 0)
            goto fail_nomem;
        s->worker_metrics[i] = s->workers[i].metrics;
    }
    *out = s;
    return 0;
fail_nomem:
    snprintf(err, errlen, "out of memory");
    ret = LT_ENOMEM;
fail:
    lt_http_server_destroy(&s);
    return ret;
}

int lt_http_server_start(lt_http_server_t *s)
{
    int ret = 0;
    for (int i = 0; i < s->nworkers; i++)
        h2o_multithread_create_thread(&s->workers[i].tid, NULL, worker_main, &s->workers[i]);
    s->started = 1;
    pthread_mutex_lock(&s->mutex);
    while (s->ready_count < s->nworkers)
        pthread_cond_wait(&s->cond, &s->mutex);
    for (int i = 0; i < s->nworkers && ret == 0; i++)
        ret = s->workers[i].init_ret;
    pthread_mutex_unlock(&s->mutex);
    return ret;
}

/* Under s->mutex, and only to a worker whose `receiving` is set. */
static void send_msg(lt_http_worker_t *w, int stop, const char *channel, const char *payload)
{
    worker_msg_t *msg = calloc(1, sizeof(*msg));
    if (msg == NULL)
        return;
    msg->stop = stop;
    msg->channel = channel != NULL ? strdup(channel) : NULL;
    msg->payload = payload != NULL ? strdup(payload) : NULL;
    h2o_multithread_send_message(&w->receiver, &msg->super);
}

void lt_http_server_broadcast(lt_http_server_t *s, const char *channel, const char *payload)
{
    /* Workers that are not running yet, or are ending, are skipped (see `receiving`). */
    pthread_mutex_lock(&s->mutex);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].receiving)
            send_msg(&s->workers[i], 0, channel, payload);
    pthread_mutex_unlock(&s->mutex);
}

void lt_http_server_quiesce(lt_http_server_t *s, void (*fn)(void *data), void *data)
{
    pthread_mutex_lock(&s->mutex);
    if (!s->started) {
        fn(data);
        pthread_mutex_unlock(&s->mutex);
        return;
    }
    uint64_t gen = ++s->pause_gen;
    int n = 0;
    s->pause_arrived = 0;
    /* A worker that no longer receives has left its loop: it runs nothing of the app. */
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].receiving) {
            worker_msg_t *msg = calloc(1, sizeof(*msg));
            if (msg == NULL)
                continue; /* not paused: fn must not run */
            msg->pause = gen;
            h2o_multithread_send_message(&s->workers[i].receiver, &msg->super);
            n++;
        }
    }
    while (s->pause_arrived < n)
        pthread_cond_wait(&s->cond, &s->mutex);
    fn(data);
    s->pause_released = gen;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mutex);
}

typedef struct {
    lt_http_server_t *s;
    SSL_CTX *ctx;
    char *cert, *key;
} tls_swap_t;

static void tls_swap(void *data)
{
    tls_swap_t *t = data;
    lt_http_server_t *s = t->s;
    for (int i = 0; i < s->nworkers; i++)
        s->workers[i].accept[LISTEN_TLS].ssl_ctx = t->ctx;
    /* hand the old ones back to the caller, which frees them outside the pause */
    SSL_CTX *old = s->ssl_ctx;
    char *oc = s->opt_strings[2], *ok = s->opt_strings[3];
    s->ssl_ctx = t->ctx;
    s->opts.tls_cert = s->opt_strings[2] = t->cert;
    s->opts.tls_key = s->opt_strings[3] = t->key;
    t->ctx = old;
    t->cert = oc;
    t->key = ok;
}

int lt_http_server_reload_tls(lt_http_server_t *s, const char *cert, const char *key, char *err, size_t errlen)
{
    if (s->ssl_ctx == NULL) {
        snprintf(err, errlen, "no TLS listener");
        return LT_ESTATE;
    }
    tls_swap_t t = {.s = s};
    if ((t.ctx = build_tls_ctx(cert, key, err, errlen)) == NULL)
        return LT_EINVAL;
    if ((t.cert = strdup(cert)) == NULL || (t.key = strdup(key)) == NULL) {
        free(t.cert);
        SSL_CTX_free(t.ctx);
        snprintf(err, errlen, "out of memory");
        return LT_ENOMEM;
    }
    lt_http_server_quiesce(s, tls_swap, &t);
    /* Connections made with the old context hold references of their own (SSL_new). */
    SSL_CTX_free(t.ctx);
    free(t.cert);
    free(t.key);
    return 0;
}

void lt_http_server_stop(lt_http_server_t *s)
{
    if (!s->started)
        return;
    /* A worker may already be ending on its own (another worker failed to start): it then
     * no longer receives, and its queue may be gone. */
    pthread_mutex_lock(&s->mutex);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].receiving)
            send_msg(&s->workers[i], 1, NULL, NULL);
    pthread_mutex_unlock(&s->mutex);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].tid, NULL);
    s->started = 0;
}

void lt_http_server_destroy(lt_http_server_t **ps)
{
    lt_http_server_t *s = *ps;
    int clean = 1;
    if (s == NULL)
        return;
    lt_http_server_stop(s);
    for (int i = 0; s->workers != NULL && i < s->nworkers; i++) {
        lt_buf_free(&s->workers[i].log);
        lt_http_metrics_destroy(&s->workers[i].metrics);
        if (s->workers[i].loop != NULL && !s->workers[i].disposed)
            clean = 0;
    }
    for (int i = 0; i < 2; i++)
        if (s->listen_fd[i] >= 0)
            close(s->listen_fd[i]);
    lt_logwriter_destroy(&s->access_log); /* workers are gone: this writes their last lines */
    if (!clean) {
        /* A worker could not dispose its context (connections outlived the deadline): keep
         * what they reference alive until exit rather than free memory still in use. */
        *ps = NULL;
        return;
    }
    if (s->globalconf.hosts != NULL)
        h2o_config_dispose(&s->globalconf);
    if (s->ssl_ctx != NULL)
        SSL_CTX_free(s->ssl_ctx);
    lt_router_destroy(&s->router);
    free(s->labels);
    lt__http_rl_destroy(&s->rl);
    free(s->workers);
    free(s->worker_metrics);
    for (int i = 0; s->h2guards != NULL && i < s->nworkers; i++)
        lt_h2guard_destroy(&s->h2guards[i]);
    free(s->h2guards);
    for (int i = 0; i < 5; i++)
        free(s->opt_strings[i]);
    pthread_mutex_destroy(&s->mutex);
    pthread_cond_destroy(&s->cond);
    free(s);
    *ps = NULL;
}

int lt_http_server_worker_count(const lt_http_server_t *s)
{
    return s->nworkers;
}

void *lt_http_server_worker_app(const lt_http_server_t *s, int id)
{
    return id >= 0 && id < s->nworkers ? s->workers[id].app : NULL;
}

const lt_router_t *lt_http_server_router(const lt_http_server_t *s)
{
    return s->router;
}

const lt_http_options_t *lt_http_server_options(const lt_http_server_t *s)
{
    return &s->opts;
}

lt_rl_t *lt__http_server_rl(const lt_http_server_t *s)
{
    return s->rl;
}

int lt_http_server_port(const lt_http_server_t *s, int tls)
{
    return s->port[tls ? LISTEN_TLS : LISTEN_H2C];
}

int lt_http_server_render_metrics(const lt_http_server_t *s, lt_buf_t *out)
{
    if (lt_http_metrics_render(out, s->worker_metrics, (size_t)s->nworkers, s->labels, lt_router_count(s->router)) != 0 ||
        lt__http_rl_metrics(s->rl, out) != 0 ||
        lt_h2guard_render_metrics(s->h2guards, (size_t)s->nworkers, out) != 0)
        return LT_ENOMEM;
    return lt_buf_appendf(out,
                          "# HELP latch_access_log_dropped_bytes_total Access-log bytes dropped because the sink was too slow.\n"
                          "# TYPE latch_access_log_dropped_bytes_total counter\n"
                          "latch_access_log_dropped_bytes_total %llu\n",
                          (unsigned long long)(s->access_log != NULL ? lt_logwriter_dropped(s->access_log) : 0));
}
