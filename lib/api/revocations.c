/*
 * revocations: the revocation feed for gateways and resource servers that verify JWTs
 * themselves (DESIGN.md, "Tokens").
 *   GET /v1/revocations?since=N[&limit=M]   the live entries after N, and the sequence
 *   GET /v1/revocations/stream[?since=N]    the same as Server-Sent Events, then live ones
 *
 * Both answer from the worker's revocation set (w->revs), never from the database: the
 * control thread keeps it complete (resync on every (re)connect, then NOTIFY), and until
 * it has been synced once they answer 503 `not_ready`. Callers authenticate as an OAuth
 * client (client_secret_basic) holding the permission "revocations" or "introspect", and
 * see only their own tenant's entries.
 *
 * Streams: per worker, a list of open streams (w->streams), all on the worker's thread.
 * A new stream first catches up from the set, a chunk at a time, paced by the HTTP layer's
 * drain callback so a large backlog never piles up in the send buffer; live batches
 * (lt__api_streams_push, after worker_notify applied them to the set) go to the streams
 * that have caught up, and streams still catching up find them in the set; a stream whose
 * reader lags (LAG_BYTES unsent) is switched back to catching up. `sent` (the highest seq
 * written) keeps an entry from going out twice. A comment line every 15 s keeps proxies
 * and clients from timing the connection out.
 *
 * A stream's request can be released in the middle of our own code (a write that aborts a
 * slow reader may reset the HTTP/2 stream at once), so on_close only unlinks and marks it;
 * the memory is freed once no entry point of this file is running (`busy`).
 */
#include <h2o.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define FEED_LIMIT_MAX 1000
/* Backlog entries written per drain: ~200 bytes each, well under the stream's buffer cap. */
#define CATCHUP_CHUNK 256
#define KEEPALIVE_MS 15000
/*
 * A stream with this much unsent goes back to catching up from the set instead of queueing
 * more live events: a burst (a tenant's sessions ended at once) or a slow reader then costs
 * bounded memory and no disconnect, and the reader still gets every entry, in order. The
 * HTTP layer's hard cap (LT_HTTP_STREAM_MAX_BUFFER) is never reached this way.
 */
#define LAG_BYTES (256 * 1024)
/* Open streams per worker; more are refused with 503 (each holds buffers and a socket). */
#define STREAMS_MAX 1024

typedef struct streams streams_t;

typedef struct rev_stream {
    h2o_linklist_t link; /* in streams.list, or streams.dead once closed */
    streams_t *owner;
    lt_req_t *r; /* NULL once the request was released */
    uint64_t sent; /* highest seq written */
    uint64_t seen; /* highest seq looked at, any tenant: where the next read of the set starts */
    int catching_up;
    char tenant[LT_REV_TENANT_MAX + 1];
} rev_stream_t;

struct streams {
    lt_api_worker_t *w;
    h2o_linklist_t list, dead;
    size_t count;
    int busy;
    h2o_loop_t *loop; /* set with the first stream (the worker's loop) */
    h2o_timeout_t keepalive;
    h2o_timeout_entry_t keepalive_entry;
};

static int64_t now_s(void)
{
    return (int64_t)(lt_now_ms() / 1000);
}

/* ---- shared ------------------------------------------------------------------------- */

/* The calling client when it may read the feed; NULL after answering 401/403. */
static const lt_client_t *authorize(lt_req_t *r)
{
    const lt_client_t *c = lt__api_client_auth(r, NULL);
    if (c == NULL)
        return NULL;
    if (c->tenant_id == NULL ||
        (!lt_client_has_permission(c, "revocations") && !lt_client_has_permission(c, "introspect"))) {
        lt_http_problem(r, 403, "forbidden", "Reading revocations needs the 'revocations' or 'introspect' permission.");
        return NULL;
    }
    return c;
}

/* A decimal sequence number: digits only, within uint64. @return 0 or -1. */
static int parse_seq(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void not_ready(lt_req_t *r)
{
    lt_http_add_header(r, "retry-after", "1");
    lt_http_problem(r, 503, "not_ready", "The revocation set is still loading.");
}

/* {"seq":N,"type":"sid","value":"...","expires_at":N} */
static int append_item(lt_buf_t *b, const lt_rev_entry_t *e)
{
    int ret = lt_buf_appendf(b, "{\"seq\":%" PRIu64 ",\"type\":\"%s\",\"value\":", e->seq,
                             e->kind == LT_REV_SID ? "sid" : "jti");
    ret = ret ? ret : lt_buf_append_json_string(b, e->value, strlen(e->value));
    ret = ret ? ret : lt_buf_appendf(b, ",\"expires_at\":%" PRId64 "}", e->exp);
    return ret;
}

/* ---- GET /v1/revocations ------------------------------------------------------------ */

typedef struct {
    lt_buf_t *b;
    size_t n, limit;
    int more, err;
} feed_t;

static int feed_item(const lt_rev_entry_t *e, void *data)
{
    feed_t *f = data;
    if (f->n == f->limit) {
        f->more = 1;
        return 1;
    }
    f->err |= (f->n > 0 ? lt_buf_append(f->b, ",", 1) : 0) | append_item(f->b, e);
    f->n++;
    return f->err != 0;
}

static int on_feed(lt_req_t *r)
{
    lt_api_worker_t *w = lt__api_worker(r);
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    uint64_t since = 0, limit = FEED_LIMIT_MAX;
    const lt_client_t *c = authorize(r);
    if (c == NULL)
        return 0;
    const char *s = lt_req_query(r, "since"), *l = lt_req_query(r, "limit");
    if (s != NULL && parse_seq(s, &since) != 0)
        lt__api_in_error(&q, "since", "must be a sequence number (a non-negative integer)");
    if (l != NULL && (parse_seq(l, &limit) != 0 || limit < 1 || limit > FEED_LIMIT_MAX))
        lt__api_in_error(&q, "limit", "must be an integer from 1 to 1000");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    if (!w->revs_synced) {
        not_ready(r);
        return 0;
    }

    lt_buf_t b = LT_BUF_INIT;
    feed_t f = {.b = &b, .limit = (size_t)limit};
    /* One more than the page, to learn whether there is more. */
    int ret = lt_buf_appendf(&b, "{\"sequence\":%" PRIu64 ",\"items\":[", lt_revset_seq(w->revs));
    if (ret == 0) {
        lt_revset_since(w->revs, since, c->tenant_id, now_s(), f.limit + 1, feed_item, &f);
        ret = f.err ? LT_ENOMEM : lt_buf_appendf(&b, "],\"more\":%s}", f.more ? "true" : "false");
    }
    if (ret != 0)
        lt_http_problem(r, 500, "internal_error", "The response could not be built.");
    else
        lt_http_send(r, 200, "application/json", b.base, b.len);
    lt_buf_free(&b);
    return 0;
}

/* ---- streams ------------------------------------------------------------------------- */

static void reap(streams_t *ss)
{
    if (ss->busy != 0)
        return;
    while (!h2o_linklist_is_empty(&ss->dead)) {
        rev_stream_t *st = H2O_STRUCT_FROM_MEMBER(rev_stream_t, link, ss->dead.next);
        h2o_linklist_unlink(&st->link);
        free(st);
    }
}

static void stream_on_close(lt_req_t *r, void *data)
{
    rev_stream_t *st = data;
    streams_t *ss = st->owner;
    (void)r;
    st->r = NULL;
    h2o_linklist_unlink(&st->link);
    h2o_linklist_insert(&ss->dead, &st->link);
    ss->count--;
    if (h2o_linklist_is_empty(&ss->list) && h2o_timeout_is_linked(&ss->keepalive_entry))
        h2o_timeout_unlink(&ss->keepalive_entry);
    reap(ss);
}

/* Writes one event; 0, or -1 when the stream is gone or going. */
static int write_event(rev_stream_t *st, const lt_rev_entry_t *e)
{
    char head[64];
    lt_buf_t b = LT_BUF_INIT;
    int n = snprintf(head, sizeof(head), "event: revocation\nid: %" PRIu64 "\ndata: ", e->seq);
    int ret = lt_buf_append(&b, head, (size_t)n);
    ret = ret ? ret : append_item(&b, e);
    ret = ret ? ret : lt_buf_append(&b, "\n\n", 2);
    if (ret == 0 && st->r != NULL)
        ret = lt_http_stream_write(st->r, b.base, b.len);
    lt_buf_free(&b);
    if (ret != 0 || st->r == NULL)
        return -1;
    st->sent = e->seq;
    return 0;
}

typedef struct {
    rev_stream_t *st;
    int failed;
} catchup_t;

static int catchup_item(const lt_rev_entry_t *e, void *data)
{
    catchup_t *cu = data;
    cu->st->seen = e->seq;
    if (strcmp(e->tenant, cu->st->tenant) != 0)
        return 0;
    if (write_event(cu->st, e) != 0) {
        cu->failed = 1;
        return 1;
    }
    return 0;
}

static void stream_drain(lt_req_t *r, void *data);

/* Back to reading the set, from `seen`, as the reader drains. */
static void fall_back(rev_stream_t *st)
{
    st->catching_up = 1;
    lt_http_stream_on_drain(st->r, stream_drain);
}

/* Writes this tenant's entries the set holds after `seen`, looking at one chunk of entries
 * at most (other tenants' count too: with `seen` advancing past them, a busy neighbour
 * costs each read once, not on every push). @return the entries looked at, or -1 when
 * the stream went. */
static long send_chunk(rev_stream_t *st)
{
    catchup_t cu = {st, 0};
    size_t n = lt_revset_since(st->owner->w->revs, st->seen, NULL, now_s(), CATCHUP_CHUNK, catchup_item, &cu);
    return cu.failed || st->r == NULL ? -1 : (long)n;
}

/* The next chunk of the backlog; caught up once a chunk comes back short. */
static void catch_up(rev_stream_t *st)
{
    long n = send_chunk(st);
    if (n >= 0 && n < CATCHUP_CHUNK) {
        st->catching_up = 0;
        lt_http_stream_on_drain(st->r, NULL);
    }
}

static void stream_drain(lt_req_t *r, void *data)
{
    rev_stream_t *st = data;
    streams_t *ss = st->owner;
    (void)r;
    ss->busy++;
    if (st->catching_up && st->r != NULL)
        catch_up(st);
    ss->busy--;
    reap(ss);
}

/*
 * Runs `fn` on every open stream. They are set aside and put back one by one because a
 * write may end streams (and free them, once `busy` drops back to 0).
 */
static void each_stream(streams_t *ss, void (*fn)(rev_stream_t *st))
{
    h2o_linklist_t aside;
    h2o_linklist_init_anchor(&aside);
    h2o_linklist_insert_list(&aside, &ss->list);
    ss->busy++;
    while (!h2o_linklist_is_empty(&aside)) {
        rev_stream_t *st = H2O_STRUCT_FROM_MEMBER(rev_stream_t, link, aside.next);
        h2o_linklist_unlink(&st->link);
        h2o_linklist_insert(&ss->list, &st->link);
        if (st->r != NULL)
            fn(st);
    }
    ss->busy--;
    reap(ss);
}

static void keepalive_one(rev_stream_t *st)
{
    static const char ka[] = ": keepalive\n\n";
    /* a stream with bytes still unsent shows the connection is alive anyway */
    if (lt_http_stream_pending(st->r) == 0)
        (void)lt_http_stream_write(st->r, ka, sizeof(ka) - 1);
}

static void on_keepalive(h2o_timeout_entry_t *entry)
{
    streams_t *ss = H2O_STRUCT_FROM_MEMBER(streams_t, keepalive_entry, entry);
    each_stream(ss, keepalive_one);
    if (!h2o_linklist_is_empty(&ss->list) && !h2o_timeout_is_linked(&ss->keepalive_entry))
        h2o_timeout_link(ss->loop, &ss->keepalive, &ss->keepalive_entry);
}

/*
 * New entries reached the worker's set: each stream reads what follows its `seen` there
 * (one chunk at most; a reader that lags, or a larger burst, continues as it drains).
 */
static void push_one(rev_stream_t *st)
{
    if (st->catching_up)
        return; /* it reads the set as it drains, which holds the new entries already */
    if (lt_http_stream_pending(st->r) >= LAG_BYTES) {
        fall_back(st);
        return;
    }
    if (send_chunk(st) == CATCHUP_CHUNK)
        fall_back(st);
}

static int on_stream(lt_req_t *r)
{
    lt_api_worker_t *w = lt__api_worker(r);
    streams_t *ss = w->streams;
    lt_api_in_t q = {0};
    uint64_t since = 0;
    const lt_client_t *c = authorize(r);
    if (c == NULL)
        return 0;
    /* An EventSource reconnecting repeats its URL and names the last event it saw: that wins. */
    const char *last = lt_req_header(r, "last-event-id");
    const char *s = lt_req_query(r, "since");
    if (last != NULL && parse_seq(last, &since) != 0)
        lt__api_in_error(&q, "Last-Event-ID", "must be a sequence number (a non-negative integer)");
    else if (last == NULL && s != NULL && parse_seq(s, &since) != 0)
        lt__api_in_error(&q, "since", "must be a sequence number (a non-negative integer)");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    if (!w->revs_synced) {
        not_ready(r);
        return 0;
    }
    if (ss == NULL || ss->count >= STREAMS_MAX) {
        lt_http_add_header(r, "retry-after", "5");
        lt_http_problem(r, 503, "overloaded", "Too many open revocation streams.");
        return 0;
    }
    rev_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        lt_http_problem(r, 500, "internal_error", "The stream could not be opened.");
        return 0;
    }
    st->owner = ss;
    st->r = r;
    st->sent = since;
    st->seen = since;
    st->catching_up = 1;
    snprintf(st->tenant, sizeof(st->tenant), "%s", c->tenant_id);
    int ret = lt_http_stream_start(r, 200, "text/event-stream", stream_on_close, st);
    if (ret != 0) {
        free(st);
        if (ret == LT_ESTATE) {
            lt_http_add_header(r, "retry-after", "1");
            lt_http_problem(r, 503, "shutting_down", "The server is shutting down.");
        } else {
            lt_http_problem(r, 500, "internal_error", "The stream could not be opened.");
        }
        return 0;
    }
    h2o_linklist_insert(&ss->list, &st->link);
    ss->count++;
    /* The headers go out with this comment at once; the backlog follows on the drain. */
    lt_http_stream_on_drain(r, stream_drain);
    static const char hello[] = ": ok\n\n";
    (void)lt_http_stream_write(r, hello, sizeof(hello) - 1);
    if (ss->loop == NULL) {
        ss->loop = r->req->conn->ctx->loop;
        h2o_timeout_init(ss->loop, &ss->keepalive, KEEPALIVE_MS);
    }
    if (!h2o_timeout_is_linked(&ss->keepalive_entry))
        h2o_timeout_link(ss->loop, &ss->keepalive, &ss->keepalive_entry);
    return 0;
}

int lt__api_streams_init(lt_api_worker_t *w)
{
    streams_t *ss = calloc(1, sizeof(*ss));
    if (ss == NULL)
        return LT_ENOMEM;
    ss->w = w;
    h2o_linklist_init_anchor(&ss->list);
    h2o_linklist_init_anchor(&ss->dead);
    ss->keepalive_entry.cb = on_keepalive;
    w->streams = ss;
    return 0;
}

void lt__api_streams_push(lt_api_worker_t *w)
{
    streams_t *ss = w->streams;
    if (ss != NULL && !h2o_linklist_is_empty(&ss->list))
        each_stream(ss, push_one);
}

void lt__api_streams_close(lt_api_worker_t *w)
{
    streams_t *ss = w->streams;
    if (ss == NULL)
        return;
    ss->busy++;
    while (!h2o_linklist_is_empty(&ss->list)) {
        rev_stream_t *st = H2O_STRUCT_FROM_MEMBER(rev_stream_t, link, ss->list.next);
        h2o_linklist_unlink(&st->link);
        ss->count--;
        if (st->r != NULL)
            lt_http_stream_detach(st->r); /* ends it; on_close will not run */
        free(st);
    }
    ss->busy--;
    reap(ss);
    if (ss->loop != NULL) {
        if (h2o_timeout_is_linked(&ss->keepalive_entry))
            h2o_timeout_unlink(&ss->keepalive_entry);
        h2o_timeout_dispose(ss->loop, &ss->keepalive);
    }
    free(ss);
    w->streams = NULL;
}

int lt__api_revocations_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = lt_router_add(router, "GET", "/v1/revocations", on_feed, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/revocations/stream", on_stream, 0);
    return ret;
}
