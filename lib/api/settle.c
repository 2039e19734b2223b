/*
 * settle.c: an admin write is answered once this instance serves what it wrote.
 *
 * Clients, API keys, policy (roles, subjects) and CORS origins are served from in-memory
 * snapshots that the control thread reloads on NOTIFY and hands to every worker. Without
 * more, a client created through the API could be refused for a few milliseconds by the
 * very instance that created it (a script that creates a client and then asks for a token
 * sees invalid_client now and then). So the routes that change them carry settle tags
 * (LT_API_SETTLE_*), and their 2xx answers are held until every worker of this instance
 * holds a snapshot loaded after the write committed; other instances follow within their
 * NOTIFY delay, as before.
 *
 * How, per snapshot kind: the answer is about to be sent, so the write has committed. The
 * worker takes a ticket (asked + 1) and kicks the control thread, which reads `asked`
 * before each load and, once the load is in the holder, publishes it as `done`; a load
 * that began after the ticket was taken sees the write. Each worker records the `done` it
 * read before taking the new snapshot (`adopted`); the answer goes out once every running
 * worker's `adopted` reached the ticket, or after SETTLE_MAX_MS (a reload failing, the
 * database gone): then it is sent anyway and a warning logged, the write having committed.
 *
 * Threading: tickets and kicks on workers; lt__api_settle_loaded on the control thread;
 * the held list is the worker's own (its loop and its timer).
 */
#include "api/internal.h"

#include <h2o.h>
#include <stdlib.h>

#include "http/response.h"
#include "store/store.h"

/* The longest an answer waits for the snapshots; reloads take a few ms. */
#define SETTLE_MAX_MS 1000
/* How often a worker with held answers looks at the other workers' snapshots. */
#define SETTLE_POLL_MS 2

typedef struct held {
    h2o_linklist_t link;
    lt_req_t *r;
    unsigned kinds;
    uint64_t ticket[LT_SETTLE_KINDS];
    uint64_t deadline_ms;
} held_t;

typedef struct settle_worker {
    lt_api_worker_t *w;
    h2o_evloop_t *loop;
    h2o_linklist_t held;
    h2o_timeout_t poll;
    h2o_timeout_entry_t tick;
} settle_worker_t;

static const int kind_channel[LT_SETTLE_KINDS] = {
    [LT_SETTLE_K_CLIENTS] = LT_CHANNEL_CLIENTS,
    [LT_SETTLE_K_POLICY] = LT_CHANNEL_POLICY,
    [LT_SETTLE_K_API_KEYS] = LT_CHANNEL_API_KEYS,
    [LT_SETTLE_K_ORIGINS] = LT_CHANNEL_ORIGINS,
};

void lt_api_set_listener(lt_api_t *api, lt_store_listener_t *l)
{
    __atomic_store_n(&api->listener, l, __ATOMIC_RELEASE);
}

uint64_t lt__api_settle_asked(lt_api_t *api, int kind)
{
    return __atomic_load_n(&api->settle_asked[kind], __ATOMIC_ACQUIRE);
}

void lt__api_settle_loaded(lt_api_t *api, int kind, uint64_t asked)
{
    /* only the control thread writes `done` */
    if (asked > __atomic_load_n(&api->settle_done[kind], __ATOMIC_RELAXED))
        __atomic_store_n(&api->settle_done[kind], asked, __ATOMIC_RELEASE);
}

uint64_t lt__api_settle_done(lt_api_t *api, int kind)
{
    return __atomic_load_n(&api->settle_done[kind], __ATOMIC_ACQUIRE);
}

void lt__api_settle_adopted(lt_api_worker_t *w, int kind, uint64_t done)
{
    __atomic_store_n(&w->settle_adopted[kind], done, __ATOMIC_RELEASE);
}

/* Every running worker serves a snapshot that has the write of `h`. */
static int settled(lt_api_t *api, const held_t *h)
{
    for (int k = 0; k < LT_SETTLE_KINDS; k++) {
        if (!(h->kinds & (1u << k)))
            continue;
        if (k == LT_SETTLE_K_ORIGINS) { /* workers read that holder per request */
            if (lt__api_settle_done(api, k) < h->ticket[k])
                return 0;
            continue;
        }
        for (int i = 0; i < api->nworkers; i++) {
            lt_api_worker_t *o = __atomic_load_n(&api->workers[i], __ATOMIC_ACQUIRE);
            if (o != NULL && __atomic_load_n(&o->settle_adopted[k], __ATOMIC_ACQUIRE) < h->ticket[k])
                return 0;
        }
    }
    return 1;
}

static void release(held_t *h)
{
    h2o_linklist_unlink(&h->link);
    h->r->on_cancel = NULL;
    lt_http_release(h->r);
}

void lt__api_settle_check(lt_api_worker_t *w, int force)
{
    settle_worker_t *sw = w->settle;
    if (sw == NULL)
        return;
    uint64_t now = lt_monotonic_ns() / 1000000;
    h2o_linklist_t *n = sw->held.next;
    while (n != &sw->held) {
        held_t *h = H2O_STRUCT_FROM_MEMBER(held_t, link, n);
        n = n->next;
        if (force || settled(w->api, h)) {
            release(h);
        } else if (now >= h->deadline_ms) {
            lt_log(LT_LOG_WARN, "api", "request %s: answered before this instance's snapshots (mask %x) were reloaded",
                   h->r->request_id, h->kinds);
            release(h);
        }
    }
    if (!h2o_linklist_is_empty(&sw->held) && !h2o_timeout_is_linked(&sw->tick))
        h2o_timeout_link(sw->loop, &sw->poll, &sw->tick);
}

static void on_tick(h2o_timeout_entry_t *e)
{
    settle_worker_t *sw = H2O_STRUCT_FROM_MEMBER(settle_worker_t, tick, e);
    lt__api_settle_check(sw->w, 0);
}

static void on_cancel(void *data)
{
    held_t *h = data;
    h2o_linklist_unlink(&h->link); /* the stream is gone: nothing to send */
}

int lt__api_settle_hold(void *app, lt_req_t *r, unsigned tags, void *data)
{
    lt_api_worker_t *w = app;
    lt_api_t *api = data;
    settle_worker_t *sw = w->settle;
    lt_store_listener_t *l = __atomic_load_n(&api->listener, __ATOMIC_ACQUIRE);
    unsigned kinds = tags & ((1u << LT_SETTLE_KINDS) - 1);
    if (sw == NULL || l == NULL || kinds == 0 || api->workers == NULL || r->on_cancel != NULL)
        return 0;
    held_t *h = h2o_mem_alloc_pool(&r->req->pool, sizeof(*h));
    *h = (held_t){.r = r, .kinds = kinds, .deadline_ms = lt_monotonic_ns() / 1000000 + SETTLE_MAX_MS};
    for (int k = 0; k < LT_SETTLE_KINDS; k++)
        if (kinds & (1u << k)) {
            h->ticket[k] = __atomic_add_fetch(&api->settle_asked[k], 1, __ATOMIC_ACQ_REL);
            if (lt_store_listener_kick(l, lt__api_channel_names[kind_channel[k]]) != 0)
                return 0;
        }
    h2o_linklist_insert(&sw->held, &h->link);
    r->on_cancel = on_cancel;
    r->cancel_data = h;
    if (!h2o_timeout_is_linked(&sw->tick))
        h2o_timeout_link(sw->loop, &sw->poll, &sw->tick);
    return 1;
}

int lt__api_settle_worker_init(lt_api_worker_t *w, struct st_h2o_evloop_t *loop)
{
    settle_worker_t *sw = calloc(1, sizeof(*sw));
    if (sw == NULL)
        return LT_ENOMEM;
    sw->w = w;
    sw->loop = loop;
    h2o_linklist_init_anchor(&sw->held);
    h2o_timeout_init(loop, &sw->poll, SETTLE_POLL_MS);
    sw->tick.cb = on_tick;
    w->settle = sw;
    /* `adopted` starts at 0: every ticket makes a reload that reaches every worker */
    lt_api_t *api = w->api;
    if (api->workers != NULL && w->id >= 0 && w->id < api->nworkers)
        __atomic_store_n(&api->workers[w->id], w, __ATOMIC_RELEASE);
    return 0;
}

void lt__api_settle_worker_fini(lt_api_worker_t *w)
{
    settle_worker_t *sw = w->settle;
    lt_api_t *api = w->api;
    if (api->workers != NULL && w->id >= 0 && w->id < api->nworkers)
        __atomic_store_n(&api->workers[w->id], NULL, __ATOMIC_RELEASE);
    if (sw == NULL)
        return;
    lt__api_settle_check(w, 1); /* a stopping worker sends what it still holds */
    if (h2o_timeout_is_linked(&sw->tick))
        h2o_timeout_unlink(&sw->tick);
    h2o_timeout_dispose(sw->loop, &sw->poll);
    free(sw);
    w->settle = NULL;
}
