/*
 * api: wiring between the HTTP framework, the store and the handler files.
 *
 * Each worker's state (lt_api_worker_t) is created on that worker's thread, so the store
 * pool it owns is bound to the right event loop. Notifications arrive on the listener's
 * control thread and are re-posted to every worker; a worker only touches its own state.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

const char *const lt__api_channel_names[LT_CHANNEL_COUNT] = {
    [LT_CHANNEL_TEST] = "latch_test", /* proves the fan-out; carries nothing */
};

int lt_api_create(const lt_config_t *cfg, lt_api_t **out)
{
    int ret;
    lt_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return LT_ENOMEM;
    api->cfg = cfg;
    if ((ret = lt__api_ops_statements()) != 0) {
        free(api);
        return ret;
    }
    *out = api;
    return 0;
}

int lt_api_register_routes(lt_api_t *api, lt_router_t *router)
{
    return lt__api_ops_routes(api, router);
}

static int worker_init(int id, struct st_h2o_evloop_t *loop, void **app, void *data)
{
    lt_api_t *api = data;
    const lt_config_t *cfg = api->cfg;
    lt_api_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return LT_ENOMEM;
    w->api = api;
    w->id = id;
    lt_store_options_t so = {
        .conninfo = cfg->database_url,
        .pool_size = cfg->db_pool_size,
        .query_timeout_ms = cfg->db_query_timeout_ms,
        .connect_timeout_ms = cfg->db_connect_timeout_ms,
        .reconnect_max_ms = cfg->db_reconnect_max_ms,
        .max_waiting = 4096,
    };
    int ret = lt_store_create(loop, &so, &w->store);
    if (ret != 0) {
        free(w);
        return ret;
    }
    *app = w;
    return 0;
}

static void worker_fini(void *app, void *data)
{
    lt_api_worker_t *w = app;
    (void)data;
    if (w == NULL)
        return;
    lt_store_close(&w->store);
    free(w);
}

static void worker_notify(void *app, const char *channel, const char *payload, void *data)
{
    lt_api_worker_t *w = app;
    (void)payload;
    (void)data;
    if (channel == NULL) {
        LT_COUNTER_ADD(w->resyncs, 1);
        return;
    }
    for (int i = 0; i < LT_CHANNEL_COUNT; i++)
        if (strcmp(channel, lt__api_channel_names[i]) == 0)
            LT_COUNTER_ADD(w->notifications[i], 1);
}

void lt_api_http_app(lt_api_t *api, lt_http_app_t *out)
{
    out->worker_init = worker_init;
    out->worker_fini = worker_fini;
    out->on_notify = worker_notify;
    out->data = api;
}

void lt_api_set_server(lt_api_t *api, lt_http_server_t *server)
{
    api->server = server;
}

const char *const *lt_api_channels(size_t *count)
{
    *count = LT_CHANNEL_COUNT;
    return lt__api_channel_names;
}

void lt_api_on_notify(const char *channel, const char *payload, void *data)
{
    lt_api_t *api = data;
    if (api->server != NULL)
        lt_http_server_broadcast(api->server, channel, payload);
}

void lt_api_destroy(lt_api_t **api)
{
    free(*api);
    *api = NULL;
}

/* ---- store calls bound to a request ------------------------------------------------- */

typedef struct {
    lt_req_t *r;
    lt_store_query_t *q;
    lt_api_query_cb cb;
    void *ctx;
} bound_query_t;

static void bound_cancel(void *data)
{
    bound_query_t *bq = data;
    lt_store_cancel(bq->q);
}

static void bound_done(const char *err, PGresult *res, void *data)
{
    bound_query_t *bq = data;
    bq->r->on_cancel = NULL;
    bq->cb(bq->r, err, res, bq->ctx);
}

void lt__api_store_problem(lt_req_t *r, const char *err)
{
    if (err == lt_err_timeout)
        lt_http_problem(r, 503, "store_timeout", "The database did not answer in time.");
    else if (err == lt_err_overload)
        lt_http_problem(r, 503, "overloaded", "Too many requests are waiting for the database.");
    else
        lt_http_problem(r, 503, "store_unavailable", "The database is unavailable.");
}

int lt__api_query(lt_req_t *r, const lt_store_stmt_t *stmt, const char *const *params, int nparams, lt_api_query_cb cb,
                  void *ctx)
{
    lt_api_worker_t *w = lt__api_worker(r);
    if (r->on_cancel != NULL) {
        /* One outstanding query per request: a second one would replace the first's cancel
         * hook, and the first's callback could then run on a freed request. That callback
         * answers the request. */
        lt_log(LT_LOG_ERROR, "api", "request %s: a query is already in flight", r->request_id);
        return -1;
    }
    bound_query_t *bq = h2o_mem_alloc_pool(&r->req->pool, sizeof(*bq));
    bq->r = r;
    bq->cb = cb;
    bq->ctx = ctx;
    int ret = lt_store_query(w->store, stmt, params, nparams, bound_done, bq, &bq->q);
    if (ret != 0) {
        lt__api_store_problem(r, ret == LT_EOVERLOAD ? lt_err_overload : lt_err_unavailable);
        return -1;
    }
    r->on_cancel = bound_cancel;
    r->cancel_data = bq;
    return 0;
}
