/*
 * response: see response.h. Runs on the request's worker thread; all memory comes from the
 * request pool unless noted.
 */
#include "http/response.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "http/router.h"

/* Header values are static strings: h2o keeps pointers, not copies. */
static const char csp[] = "default-src 'none'; frame-ancestors 'none'";
static const char hsts[] = "max-age=63072000; includeSubDomains";

const char *lt_http_status_title(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

void lt_http_add_header(lt_req_t *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    size_t nlen = strlen(name);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
    /* HTTP/2 wants lower-case field names */
    for (size_t i = 0; i < nlen; i++)
        if (n.base[i] >= 'A' && n.base[i] <= 'Z')
            n.base[i] = (char)(n.base[i] - 'A' + 'a');
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

/* Status and the headers every response carries. */
static void add_standard_headers(lt_req_t *r, int status, const char *content_type, int no_store)
{
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = lt_http_status_title(status);
    h2o_headers_t *h = &req->res.headers;
    if (content_type != NULL)
        h2o_add_header(&req->pool, h, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("x-content-type-options"), 1, NULL, H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("content-security-policy"), 1, NULL, csp, sizeof(csp) - 1);
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("referrer-policy"), 1, NULL, H2O_STRLIT("no-referrer"));
    if (no_store || r->route == NULL || !(r->route->flags & LT_ROUTE_CACHEABLE))
        h2o_add_header(&req->pool, h, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (r->tls)
        h2o_add_header(&req->pool, h, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL, hsts, sizeof(hsts) - 1);
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("x-request-id"), 1, NULL, r->request_id, strlen(r->request_id));
}

void lt_http_send(lt_req_t *r, int status, const char *content_type, const char *body, size_t len)
{
    h2o_req_t *req = r->req;
    if (r->responded) {
        lt_log(LT_LOG_ERROR, "http", "second response attempted for request %s", r->request_id);
        return;
    }
    r->responded = 1;
    add_standard_headers(r, status, content_type, 0);
    req->res.content_length = len;
    const lt_http_app_t *app = lt__http_server_app(r->server);
    unsigned tags = r->route != NULL ? r->route->flags >> LT_ROUTE_APP_SHIFT : 0;
    if (tags != 0 && status >= 200 && status < 300 && app->hold != NULL && app->hold(r->app, r, tags, app->data)) {
        r->held_body = h2o_mem_alloc_pool(&req->pool, len + 1);
        memcpy(r->held_body, body, len);
        r->held_len = len;
        r->held = 1;
        return;
    }
    h2o_send_inline(req, body, len);
}

void lt_http_release(lt_req_t *r)
{
    if (!r->held)
        return;
    r->held = 0;
    h2o_send_inline(r->req, r->held_body, r->held_len);
}

void lt_http_send_json(lt_req_t *r, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        lt_http_problem(r, 500, "internal_error", "The response could not be encoded.");
        return;
    }
    lt_http_send(r, status, "application/json", text, strlen(text));
    free(text);
}

/* Length of the well-formed UTF-8 sequence at `s` (RFC 3629), or 0. Stops at a NUL. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* overlong forms, surrogates, above U+10FFFF */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/*
 * `s` with each byte that is not part of well-formed UTF-8 replaced by U+FFFD; NULL when `s`
 * is well-formed already, or when memory ran out (then *oom = 1). Details can quote client
 * input (jansson's error text may cut a token mid-character), and jansson refuses such text.
 */
static char *utf8_scrub(const char *s, int *oom)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0, n;
    while (i < len && (n = utf8_len(p + i)) != 0)
        i += n;
    if (i == len)
        return NULL;
    char *out = malloc(3 * len + 1), *o = out;
    if (out == NULL) {
        *oom = 1;
        return NULL;
    }
    for (i = 0; i < len; i += n) {
        if ((n = utf8_len(p + i)) == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
        } else {
            memcpy(o, p + i, n);
            o += n;
        }
    }
    *o = '\0';
    return out;
}

int lt_problem_render(lt_buf_t *out, int status, const char *code, const char *detail, json_t *errors)
{
    int ret = LT_ENOMEM, oom = 0;
    char *text = NULL, *scrubbed = detail != NULL ? utf8_scrub(detail, &oom) : NULL;
    json_t *doc = NULL;
    if (oom)
        goto done;
    doc = json_pack("{s:s+, s:s, s:i, s:s, s:s}", "type", "urn:latch:problem:", code, "title",
                    lt_http_status_title(status), "status", status, "detail",
                    scrubbed != NULL ? scrubbed : detail != NULL ? detail : "", "code", code);
    if (doc == NULL)
        goto done;
    /* An object carries RFC 9457 extension members; the standard ones cannot be replaced. */
    if (json_is_object(errors) ? json_object_update_missing(doc, errors) != 0
                               : errors != NULL && json_object_set(doc, "errors", errors) != 0)
        goto done;
    if ((text = json_dumps(doc, JSON_COMPACT)) == NULL)
        goto done;
    ret = lt_buf_appends(out, text);
done:
    free(text);
    free(scrubbed);
    json_decref(doc);
    return ret;
}

void lt_http_problem_fields(lt_req_t *r, int status, const char *code, const char *detail, json_t *errors)
{
    lt_buf_t b = LT_BUF_INIT;
    if (lt_problem_render(&b, status, code, detail, errors) != 0) {
        static const char fallback[] = "{\"title\":\"Internal Server Error\",\"status\":500,\"code\":\"internal_error\"}";
        lt_http_send(r, 500, "application/problem+json", fallback, sizeof(fallback) - 1);
    } else {
        lt_http_send(r, status, "application/problem+json", b.base, b.len);
    }
    lt_buf_free(&b);
    json_decref(errors);
}

void lt_http_problem(lt_req_t *r, int status, const char *code, const char *detail)
{
    lt_http_problem_fields(r, status, code, detail, NULL);
}

static int content_type_is_json(lt_req_t *r)
{
    ssize_t i = h2o_find_header(&r->req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = r->req->headers.entries[i].value;
    size_t n = v.len;
    for (size_t k = 0; k < v.len; k++)
        if (v.base[k] == ';') {
            n = k;
            break;
        }
    while (n > 0 && v.base[n - 1] == ' ')
        n--;
    return h2o_lcstris(v.base, n, H2O_STRLIT("application/json")) ||
           (n > 5 && h2o_lcstris(v.base + n - 5, 5, H2O_STRLIT("+json")) && memchr(v.base, '/', n) != NULL);
}

int lt_http_read_json(lt_req_t *r, json_t **out)
{
    lt_http_server_t *s = r->server;
    const lt_http_options_t *o = lt_http_server_options(s);
    h2o_iovec_t body = r->req->entity;
    json_error_t jerr;
    char detail[256];

    *out = NULL;
    if (!content_type_is_json(r)) {
        lt_http_problem(r, 415, "unsupported_media_type", "The request body must be application/json.");
        return -1;
    }
    if (body.base == NULL || body.len == 0) {
        lt_http_problem(r, 400, "invalid_json", "The request body is empty.");
        return -1;
    }
    if (body.len > o->max_body_bytes) {
        lt_http_problem(r, 413, "payload_too_large", "The request body is too large.");
        return -1;
    }
    if (!lt_json_depth_ok(body.base, body.len, o->max_json_depth)) {
        snprintf(detail, sizeof(detail), "The JSON document nests deeper than %d levels.", o->max_json_depth);
        lt_http_problem(r, 400, "invalid_json", detail);
        return -1;
    }
    json_t *doc = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(detail, sizeof(detail), "Malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        lt_http_problem(r, 400, "invalid_json", detail);
        return -1;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        lt_http_problem(r, 400, "invalid_json", "The request body must be a JSON object.");
        return -1;
    }
    *out = doc;
    return 0;
}

const char *lt_req_param(lt_req_t *r, const char *name)
{
    size_t nlen = strlen(name);
    for (int i = 0; i < r->nparams; i++) {
        lt_route_param_t *p = &r->params[i];
        if (p->name_len != nlen || memcmp(p->name, name, nlen) != 0)
            continue;
        char *buf = h2o_mem_alloc_pool(&r->req->pool, p->value_len + 1);
        return lt_router_decode(buf, p->value_len + 1, p->value, p->value_len) >= 0 ? buf : NULL;
    }
    return NULL;
}

/*
 * Query strings decode '+' as space (form encoding) on top of percent escapes. An escaped
 * '/' is refused as in path parameters, as it always was here (no caller's value has one).
 */
static const char *decode_query_value(lt_req_t *r, const char *v, size_t n)
{
    char *out = h2o_mem_alloc_pool(&r->req->pool, n + 1);
    return lt_pct_decode(out, n + 1, v, n, LT_PCT_PLUS | LT_PCT_NO_SLASH) >= 0 ? out : NULL;
}

const char *lt_req_query(lt_req_t *r, const char *name)
{
    h2o_req_t *req = r->req;
    size_t nlen = strlen(name);
    if (req->query_at == SIZE_MAX)
        return NULL;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq != NULL ? eq : pair_end;
        if ((size_t)(key_end - p) == nlen && memcmp(p, name, nlen) == 0)
            return eq != NULL ? decode_query_value(r, eq + 1, (size_t)(pair_end - eq - 1)) : "";
        p = pair_end + 1;
    }
    return NULL;
}

const char *lt_req_header(lt_req_t *r, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = r->req->headers.entries[i].value;
    return h2o_strdup(&r->req->pool, v.base, v.len).base;
}

const char *lt_req_peer(lt_req_t *r)
{
    if (r->peer[0] == '\0') {
        struct sockaddr_storage ss;
        socklen_t sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
        const void *addr = NULL;
        if (sl != 0 && ss.ss_family == AF_INET)
            addr = &((struct sockaddr_in *)&ss)->sin_addr;
        else if (sl != 0 && ss.ss_family == AF_INET6)
            addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (addr == NULL || inet_ntop(ss.ss_family, addr, r->peer, sizeof(r->peer)) == NULL)
            strcpy(r->peer, "unknown");
    }
    return r->peer;
}

/* ---- streamed responses -------------------------------------------------------------- */

/*
 * One stream per request, malloc'ed (it outlives nothing but must not live in the pool: the
 * pool is being cleared when dispose runs). bufs[cur] is the buffer h2o holds while
 * `inflight`; bufs[cur ^ 1] collects what is written meanwhile. h2o's proceed callback
 * releases the held one and the two swap.
 */
typedef struct lt_http_stream {
    h2o_generator_t super;
    h2o_linklist_t link; /* the worker's open streams */
    lt_req_t *r;
    lt_buf_t bufs[2];
    int cur;
    int inflight;   /* h2o holds bufs[cur] */
    int ending;     /* end requested: the next send is the final one */
    int done;       /* the final (or error) send went out: h2o_send no more */
    int overflow;   /* the reader fell behind: abort at the next chance */
    int closed;     /* the request is going away: no writes */
    lt_http_stream_fn on_close, on_drain;
    void *data;
} lt_http_stream_t;

static void stream_flush(lt_http_stream_t *st);

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    lt_http_stream_t *st = H2O_STRUCT_FROM_MEMBER(lt_http_stream_t, super, g);
    (void)req;
    st->inflight = 0;
    st->bufs[st->cur].len = 0;
    if (st->closed || st->done)
        return;
    if (st->overflow || st->ending || st->bufs[st->cur ^ 1].len != 0) {
        stream_flush(st);
        return;
    }
    if (st->on_drain != NULL)
        st->on_drain(st->r, st->data); /* may write (and so flush) */
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
    lt_http_stream_t *st = H2O_STRUCT_FROM_MEMBER(lt_http_stream_t, super, g);
    (void)req;
    /* h2o dropped the response (client gone); the request is released right after. */
    st->closed = 1;
    st->done = 1;
}

/* Hands h2o the collected bytes, the end or the abort, if h2o holds nothing. */
static void stream_flush(lt_http_stream_t *st)
{
    if (st->inflight || st->done || st->closed)
        return;
    h2o_req_t *req = st->r->req;
    if (st->overflow) {
        st->done = 1;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return; /* st may be gone */
    }
    lt_buf_t *next = &st->bufs[st->cur ^ 1];
    if (next->len == 0 && !st->ending)
        return;
    st->cur ^= 1;
    st->inflight = 1;
    h2o_iovec_t buf = h2o_iovec_init(next->base, next->len);
    if (st->ending) {
        st->done = 1;
        h2o_send(req, &buf, next->len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
        return; /* st may be gone */
    }
    h2o_send(req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

int lt_http_stream_start(lt_req_t *r, int status, const char *content_type, lt_http_stream_fn on_close, void *data)
{
    h2o_req_t *req = r->req;
    if (r->responded || r->stream != NULL || lt__http_worker_stopping(r->worker))
        return LT_ESTATE;
    lt_http_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return LT_ENOMEM;
    st->super.proceed = stream_proceed;
    st->super.stop = stream_stop;
    st->r = r;
    st->on_close = on_close;
    st->data = data;
    r->responded = 1;
    r->stream = st;
    h2o_linklist_insert(lt__http_worker_streams(r->worker), &st->link);

    const char *ct = content_type != NULL ? h2o_strdup(&req->pool, content_type, strlen(content_type)).base : NULL;
    add_standard_headers(r, status, ct, 1);
    /* reverse proxies (nginx) would otherwise hold events back in their buffers */
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 1, NULL, H2O_STRLIT("no"));
    req->res.content_length = SIZE_MAX;
    /* The headers leave with the first bytes written: h2o 2.2 neither flushes them nor
     * calls proceed back for an empty send. */
    h2o_start_response(req, &st->super);
    return 0;
}

int lt_http_stream_write(lt_req_t *r, const char *data, size_t len)
{
    lt_http_stream_t *st = r->stream;
    if (st == NULL || st->closed || st->done || st->ending)
        return LT_ESTATE;
    if (st->overflow)
        return LT_EOVERLOAD;
    lt_buf_t *next = &st->bufs[st->cur ^ 1];
    size_t held = st->inflight ? st->bufs[st->cur].len : 0;
    if (held + next->len + len > LT_HTTP_STREAM_MAX_BUFFER || lt_buf_append(next, data, len) != 0) {
        lt_log(LT_LOG_WARN, "http", "request %s: stream reader too slow (%zu bytes behind): aborting", r->request_id,
               held + next->len + len);
        st->overflow = 1;
        next->len = 0;
        stream_flush(st);
        return LT_EOVERLOAD;
    }
    stream_flush(st);
    return 0;
}

size_t lt_http_stream_pending(const lt_req_t *r)
{
    const lt_http_stream_t *st = r->stream;
    if (st == NULL)
        return 0;
    return st->bufs[st->cur ^ 1].len + (st->inflight ? st->bufs[st->cur].len : 0);
}

void lt_http_stream_on_drain(lt_req_t *r, lt_http_stream_fn fn)
{
    if (r->stream != NULL)
        r->stream->on_drain = fn;
}

void lt_http_stream_end(lt_req_t *r)
{
    lt_http_stream_t *st = r->stream;
    if (st == NULL || st->closed || st->done || st->ending)
        return;
    st->ending = 1;
    st->on_drain = NULL;
    stream_flush(st);
}

void lt_http_stream_detach(lt_req_t *r)
{
    lt_http_stream_t *st = r->stream;
    if (st == NULL)
        return;
    st->on_close = NULL;
    st->on_drain = NULL;
    lt_http_stream_end(r);
}

void lt__http_stream_dispose(lt_req_t *r)
{
    lt_http_stream_t *st = r->stream;
    st->closed = 1;
    if (h2o_linklist_is_linked(&st->link))
        h2o_linklist_unlink(&st->link);
    if (st->on_close != NULL) {
        lt_http_stream_fn fn = st->on_close;
        st->on_close = NULL;
        fn(r, st->data);
    }
    r->stream = NULL;
    lt_buf_free(&st->bufs[0]);
    lt_buf_free(&st->bufs[1]);
    free(st);
}

void lt__http_streams_end_all(h2o_linklist_t *streams)
{
    /*
     * Move them aside first and back one at a time before ending each: ending one may
     * release others (a connection closing), which unlink themselves wherever they are.
     */
    h2o_linklist_t todo;
    h2o_linklist_init_anchor(&todo);
    h2o_linklist_insert_list(&todo, streams);
    while (!h2o_linklist_is_empty(&todo)) {
        lt_http_stream_t *st = H2O_STRUCT_FROM_MEMBER(lt_http_stream_t, link, todo.next);
        h2o_linklist_unlink(&st->link);
        h2o_linklist_insert(streams, &st->link);
        lt_http_stream_end(st->r);
    }
}
