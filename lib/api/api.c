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
#include "audit/audit.h"

const char *const lt__api_channel_names[LT_CHANNEL_COUNT] = {
    [LT_CHANNEL_TEST] = "latch_test", /* proves the fan-out; carries nothing */
};

/*
 * Loads the signing keys (creating the first one) into the holder. Blocking: runs on the
 * main thread at start and on the listener's control thread after it (re)connects, so a
 * latchd started while PostgreSQL is down begins signing once it is back.
 */
static int load_keys(lt_api_t *api)
{
    const lt_config_t *cfg = api->cfg;
    lt_seal_key_t seal = {.version = (uint8_t)cfg->master_key_version};
    memcpy(seal.key, cfg->master_key, sizeof(seal.key));
    lt_token_keystore_opts_t o = {
        .conninfo = cfg->database_url,
        .seal_keys = &seal,
        .nseal_keys = 1,
        .alg = cfg->signing_alg == LT_CONFIG_ALG_EDDSA ? LT_ALG_EDDSA : LT_ALG_ES256,
        /* A retired key must verify every token it signed until those expire. */
        .publish_retired_s = cfg->access_token_ttl + LT_TOKEN_LEEWAY,
    };
    char err[256] = "";
    lt_keyring_t *kr = NULL;
    int ret = lt_token_keystore_load(&o, &kr, err, sizeof(err));
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0) {
        lt_log(ret == LT_EUNAVAIL ? LT_LOG_WARN : LT_LOG_ERROR, "api", "signing keys not loaded: %s%s%s",
               lt_strerror(ret), err[0] != '\0' ? ": " : "", err);
        return ret;
    }
    lt_keyring_holder_set(&api->keys, kr);
    lt_log(LT_LOG_INFO, "api", "signing keys loaded (active kid %s)",
           lt_keyring_active(kr) != NULL ? lt_key_kid(lt_keyring_active(kr)) : "none");
    return 0;
}

int lt_api_create(const lt_config_t *cfg, lt_api_t **out)
{
    int ret;
    lt_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return LT_ENOMEM;
    api->cfg = cfg;
    if ((ret = lt_keyring_holder_init(&api->keys)) != 0) {
        free(api);
        return ret;
    }
    if ((ret = lt__api_ops_statements()) != 0 || (ret = lt_audit_statements()) != 0 ||
        (ret = lt__api_auth_statements()) != 0 || (ret = lt__api_admin_statements()) != 0)
        goto fail;
    if ((ret = lt_password_policy_create(cfg->password_min_length, &api->policy)) != 0) {
        lt_log(LT_LOG_ERROR, "api", "password policy: %s", lt_strerror(ret));
        goto fail;
    }
    lt_hasher_options_t ho = {
        .params = {.m_kib = (uint32_t)cfg->argon2_memory_kib,
                   .t = (uint32_t)cfg->argon2_iterations,
                   .p = (uint32_t)cfg->argon2_parallelism},
        .threads = cfg->hasher_threads,
        .queue_max = (size_t)cfg->hasher_queue,
        .check = lt_password_policy_hasher_check,
        .check_data = api->policy,
    };
    if ((ret = lt_hasher_create(&ho, &api->hasher)) != 0) {
        lt_log(LT_LOG_ERROR, "api", "password hasher: %s", lt_strerror(ret));
        goto fail;
    }
    /* A database that is down or not migrated yet is not fatal: logins answer 503 until
     * the keys load (the listener retries whenever it (re)connects). A master key that
     * opens no stored key is fatal: nothing could ever be signed or verified. */
    ret = load_keys(api);
    if (ret == LT_EINVAL)
        goto fail;
    *out = api;
    return 0;
fail:
    lt_api_destroy(&api);
    return ret;
}

int lt_api_register_routes(lt_api_t *api, lt_router_t *router)
{
    int ret;
    if ((ret = lt__api_ops_routes(api, router)) != 0 || (ret = lt__api_auth_routes(api, router)) != 0 ||
        (ret = lt__api_admin_routes(api, router)) != 0 || (ret = lt__api_keys_routes(api, router)) != 0)
        return ret;
    return 0;
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
    if ((ret = lt_hasher_port_create(api->hasher, loop, &w->hasher)) != 0) {
        lt_store_close(&w->store);
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
    lt_hasher_port_destroy(&w->hasher);
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
    if (channel == NULL) {
        /* (Re)connected: load the signing keys if start-up could not. */
        lt_keyring_t *kr = lt_keyring_holder_get(&api->keys);
        int have = kr != NULL && lt_keyring_active(kr) != NULL;
        if (kr != NULL)
            lt_keyring_unref(kr);
        if (!have)
            (void)load_keys(api);
    }
    if (api->server != NULL)
        lt_http_server_broadcast(api->server, channel, payload);
}

void lt_api_destroy(lt_api_t **pa)
{
    lt_api_t *api = *pa;
    if (api == NULL)
        return;
    lt_hasher_destroy(&api->hasher);
    lt_password_policy_destroy(&api->policy);
    lt_keyring_holder_dispose(&api->keys);
    free(api);
    *pa = NULL;
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
