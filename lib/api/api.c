/*
 * api: wiring between the HTTP framework, the store and the handler files.
 *
 * Each worker's state (lt_api_worker_t) is created on that worker's thread, so the store
 * pool it owns is bound to the right event loop. Notifications arrive on the listener's
 * control thread and are re-posted to every worker; a worker only touches its own state.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "http/h2guard.h"
#include "audit/audit.h"
#include "identity/auth.h"
#include "policy/store.h"

const char *const lt__api_channel_names[LT_CHANNEL_COUNT] = {
    [LT_CHANNEL_TEST] = "latch_test", /* proves the fan-out; carries nothing */
    [LT_CHANNEL_REVOCATIONS] = "latch_revocations",
    [LT_CHANNEL_KEYS] = "latch_keys",
    [LT_CHANNEL_CLIENTS] = "latch_clients",
    [LT_CHANNEL_POLICY] = "latch_policy",
    [LT_CHANNEL_API_KEYS] = "latch_api_keys",
    [LT_CHANNEL_ORIGINS] = "latch_origins",
};

/* Revocation lines per broadcast when an instance catches up. */
#define RESYNC_BATCH 512
/* Successor tokens and expired revocations are cleaned up this often, ms. */
#define CLEANUP_EVERY_MS 10000

/*
 * Loads the signing keys (creating the first one) into the holder. Blocking: runs on the
 * main thread at start and on the listener's control thread after it (re)connects, so a
 * latchd started while PostgreSQL is down begins signing once it is back.
 */
void lt__api_keystore_opts(const lt_api_t *api, lt_token_keystore_opts_t *o, lt_seal_key_t *seal)
{
    const lt_config_t *cfg = api->cfg;
    lt__api_master_key(cfg, seal);
    *o = (lt_token_keystore_opts_t){
        .conninfo = cfg->database_url,
        .seal_keys = seal,
        .nseal_keys = 1,
        .alg = cfg->signing_alg == LT_CONFIG_ALG_EDDSA ? LT_ALG_EDDSA : LT_ALG_ES256,
        /* A key that stopped signing must verify every token it signed until those expire. */
        .publish_retired_s = cfg->access_token_ttl + LT_TOKEN_LEEWAY,
    };
}

static int load_keys(lt_api_t *api)
{
    lt_seal_key_t seal;
    lt_token_keystore_opts_t o;
    lt__api_keystore_opts(api, &o, &seal);
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

/* lt_holder_t speaks void *: typed adapters rather than casting function pointers. */
static void *snapshot_ref(void *s)
{
    lt_policy_snapshot_incref(s);
    return s;
}

static void snapshot_unref(void *s)
{
    lt_policy_snapshot_decref(s);
}

/* Loads the policy snapshot into the holder (blocking: start-up and control thread). */
static int load_policies(lt_api_t *api)
{
    char err[256];
    lt_policy_snapshot_t *s = NULL;
    uint64_t asked = lt__api_settle_asked(api, LT_SETTLE_K_POLICY);
    int ret = lt_policy_load(api->cfg->database_url, &s, err, sizeof(err));
    if (ret != 0) {
        lt_log(LT_LOG_WARN, "api", "policies not loaded: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "", err);
        return ret;
    }
    lt_policy_stats_t st;
    lt_policy_snapshot_stats(s, &st);
    lt_log(LT_LOG_DEBUG, "api", "policy snapshot: %zu roles, %zu policies, %zu subjects", st.roles, st.policies,
           st.subjects);
    lt_holder_set(&api->decisions, s);
    lt__api_settle_loaded(api, LT_SETTLE_K_POLICY, asked);
    return 0;
}

/* Loads the OAuth clients into the holder (blocking: start-up and control thread). */
static int load_clients(lt_api_t *api)
{
    char err[256] = "";
    lt_clients_t *cs = NULL;
    lt_seal_key_t seal; /* opens the clients' signing keys (sql/0014) */
    uint64_t asked = lt__api_settle_asked(api, LT_SETTLE_K_CLIENTS);
    lt__api_master_key(api->cfg, &seal);
    int ret = lt_clients_load_keyed(api->cfg->database_url, &seal, 1, &cs, err, sizeof(err));
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0) {
        lt_log(LT_LOG_WARN, "api", "OAuth clients not loaded: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "",
               err);
        return ret;
    }
    lt_log(LT_LOG_DEBUG, "api", "OAuth clients loaded: %zu", lt_clients_count(cs));
    lt_clients_holder_set(&api->clients, cs);
    lt__api_settle_loaded(api, LT_SETTLE_K_CLIENTS, asked);
    return 0;
}

/* ---- maintenance thread ------------------------------------------------------------- */

/*
 * Periodic work that must happen even when no request comes: promoting and retiring
 * signing keys (and automatic rotation), dropping sealed refresh successors once their
 * grace window has passed, pruning expired revocations. Every instance runs it; the SQL
 * takes locks, so instances do not step on each other. Blocking libpq on its own
 * connection, off the workers' loops.
 */
typedef struct maint {
    lt_api_t *api;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop; /* guarded by lock */
} maint_t;

static void resync_revocations(lt_api_t *api);

static void maint_tick(lt_api_t *api, PGconn **conn, uint64_t *last_cleanup)
{
    const lt_config_t *cfg = api->cfg;
    char err[256] = "";
    if (*conn == NULL || PQstatus(*conn) != CONNECTION_OK) {
        if (*conn != NULL)
            PQfinish(*conn);
        *conn = PQconnectdb(cfg->database_url);
        if (PQstatus(*conn) != CONNECTION_OK) {
            PQfinish(*conn);
            *conn = NULL;
            return;
        }
    }
    lt_seal_key_t seal;
    lt_token_keystore_opts_t o;
    lt__api_keystore_opts(api, &o, &seal);
    int changed = 0;
    int ret = lt_token_keys_maintain(*conn, &o, cfg->key_rotation_interval, cfg->key_prepublish, &changed, err,
                                     sizeof(err));
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0)
        lt_log(LT_LOG_WARN, "api", "key maintenance: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "", err);
    if (__atomic_load_n(&api->rev_resync, __ATOMIC_ACQUIRE) && api->server != NULL)
        resync_revocations(api);
    uint64_t now = lt_monotonic_ns() / 1000000;
    if (now - *last_cleanup >= CLEANUP_EVERY_MS) {
        *last_cleanup = now;
        err[0] = '\0';
        if ((ret = lt_auth_maintain(*conn, cfg->refresh_reuse_grace, err, sizeof(err))) != 0)
            lt_log(LT_LOG_WARN, "api", "token clean-up: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "", err);
    }
}

static void *maint_main(void *arg)
{
    maint_t *m = arg;
    PGconn *conn = NULL;
    uint64_t last_cleanup = 0;
    int interval = m->api->cfg->maintenance_interval_ms;
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        pthread_mutex_unlock(&m->lock);
        maint_tick(m->api, &conn, &last_cleanup);
        pthread_mutex_lock(&m->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += interval / 1000;
        ts.tv_nsec += (long)(interval % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    if (conn != NULL)
        PQfinish(conn);
    return NULL;
}

static int maint_start(lt_api_t *api)
{
    maint_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return LT_ENOMEM;
    m->api = api;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    if (pthread_create(&m->thread, NULL, maint_main, m) != 0) {
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return LT_EIO;
    }
    api->maint = m;
    return 0;
}

static void maint_stop(lt_api_t *api)
{
    maint_t *m = api->maint;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
    api->maint = NULL;
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
    pthread_mutex_init(&api->rev_lock, NULL);
    if ((ret = lt_clients_holder_init(&api->clients)) != 0) {
        lt_keyring_holder_dispose(&api->keys);
        free(api);
        return ret;
    }
    if ((ret = lt_holder_init(&api->decisions, snapshot_ref, snapshot_unref)) != 0) {
        lt_clients_holder_dispose(&api->clients);
        lt_keyring_holder_dispose(&api->keys);
        free(api);
        return ret;
    }
    if ((ret = lt__api_ops_statements()) != 0 || (ret = lt_audit_statements()) != 0 ||
        (ret = lt__api_auth_statements()) != 0 || (ret = lt__api_admin_statements()) != 0 ||
        (ret = lt__api_oauth_statements()) != 0 || (ret = lt__api_keys_statements()) != 0 ||
        (ret = lt__api_mfa_statements()) != 0 || (ret = lt__api_policy_statements()) != 0)
        goto fail;
    if ((ret = lt__api_forward_auth_init(api)) != 0)
        goto fail;
    if ((ret = lt__api_apikeys_init(api)) != 0) /* an empty set while the database is away */
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
    /* Clients come again with every listener (re)connect; an empty set until then. */
    if (load_clients(api) != 0) {
        lt_clients_t *none = NULL;
        if ((ret = lt_clients_empty(&none)) != 0)
            goto fail;
        lt_clients_holder_set(&api->clients, none);
    }
    /* Decisions likewise: an empty snapshot (everything denied) until the first load. */
    if (load_policies(api) != 0) {
        lt_policy_snapshot_t *none = NULL;
        if ((ret = lt_policy_empty(&none)) != 0)
            goto fail;
        lt_holder_set(&api->decisions, none);
    }
    if ((ret = lt__api_origins_init(api)) != 0)
        goto fail;
    if ((ret = lt__api_signing_init(api)) != 0)
        goto fail;
    if ((ret = maint_start(api)) != 0)
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
    if ((ret = lt__api_ops_routes(api, router)) != 0 || (ret = lt__api_apikeys_routes(api, router)) != 0 ||
        (ret = lt__api_auth_routes(api, router)) != 0 ||
        (ret = lt__api_admin_routes(api, router)) != 0 || (ret = lt__api_keys_routes(api, router)) != 0 ||
        (ret = lt__api_oauth_routes(api, router)) != 0 || (ret = lt__api_clients_routes(api, router)) != 0 ||
        (ret = lt__api_revocations_routes(api, router)) != 0 || (ret = lt__api_mfa_routes(api, router)) != 0 ||
        (ret = lt__api_access_routes(api, router)) != 0 || (ret = lt__api_policy_routes(api, router)) != 0 ||
        (ret = lt__api_forward_auth_routes(api, router)) != 0 || (ret = lt__api_signing_routes(api, router)) != 0)
        return ret;
    return 0;
}

static void worker_free(lt_api_worker_t *w)
{
    lt__api_settle_worker_fini(w);
    lt__api_streams_close(w);
    lt_hasher_port_destroy(&w->hasher);
    lt_store_close(&w->store);
    lt__api_apikeys_worker_fini(w); /* after the store: a flush in flight has been failed */
    lt_tcache_destroy(&w->tcache);
    lt_revset_destroy(&w->revs);
    if (w->ring != NULL)
        lt_keyring_unref(w->ring);
    if (w->clients != NULL)
        lt_clients_unref(w->clients);
    if (w->snapshot != NULL)
        lt_policy_snapshot_decref(w->snapshot);
    free(w->jwks);
    free(w);
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
    if ((ret = lt_hasher_port_create(api->hasher, loop, &w->hasher)) != 0 ||
        (ret = lt_tcache_create((size_t)cfg->token_cache_size, &w->tcache)) != 0 ||
        (ret = lt_revset_create(&w->revs)) != 0 || (ret = lt__api_streams_init(w)) != 0) {
        worker_free(w);
        return ret;
    }
    w->ring = lt_keyring_holder_get(&api->keys);
    w->clients = lt_clients_holder_get(&api->clients);
    w->snapshot = lt_holder_get(&api->decisions);
    if ((ret = lt__api_apikeys_worker_init(w, loop)) != 0 || (ret = lt__api_settle_worker_init(w, loop)) != 0) {
        worker_free(w);
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
    worker_free(w);
}

static void worker_notify(void *app, const char *channel, const char *payload, void *data)
{
    lt_api_worker_t *w = app;
    lt_api_t *api = data;
    if (channel == NULL) {
        LT_COUNTER_ADD(w->resyncs, 1);
        return;
    }
    for (int i = 0; i < LT_CHANNEL_COUNT; i++)
        if (strcmp(channel, lt__api_channel_names[i]) == 0)
            LT_COUNTER_ADD(w->notifications[i], 1);
    int64_t now = (int64_t)(lt_now_ms() / 1000);
    if (strcmp(channel, LT_BC_REVOCATIONS) == 0) {
        int bad = lt_revset_apply(w->revs, payload, now);
        if (bad < 0)
            lt_log(LT_LOG_ERROR, "api", "worker %d: revocations not applied: %s", w->id, lt_strerror(-bad));
        else if (bad > 0)
            lt_log(LT_LOG_WARN, "api", "worker %d: %d malformed revocation lines skipped", w->id, bad);
        lt_revset_prune(w->revs, now);
        __atomic_store_n(&w->m_rev_entries, (uint64_t)lt_revset_count(w->revs), __ATOMIC_RELAXED);
        __atomic_store_n(&w->m_rev_seq, lt_revset_seq(w->revs), __ATOMIC_RELAXED);
        lt__api_streams_push(w);
    } else if (strcmp(channel, LT_BC_REV_SYNCED) == 0) {
        w->revs_synced = 1;
    } else if (strcmp(channel, LT_BC_KEYS) == 0) {
        lt_keyring_t *kr = lt_keyring_holder_get(&api->keys);
        if (w->ring != NULL)
            lt_keyring_unref(w->ring);
        w->ring = kr;
        w->ring_gen++;
    } else if (strcmp(channel, LT_BC_CLIENTS) == 0) {
        uint64_t done = lt__api_settle_done(api, LT_SETTLE_K_CLIENTS); /* before the get: a lower bound */
        lt_clients_t *cs = lt_clients_holder_get(&api->clients);
        if (cs != NULL) {
            if (w->clients != NULL)
                lt_clients_unref(w->clients);
            w->clients = cs;
            lt__api_settle_adopted(w, LT_SETTLE_K_CLIENTS, done);
        }
        lt__api_settle_check(w, 0);
    } else if (strcmp(channel, LT_BC_API_KEYS) == 0) {
        lt__api_apikeys_worker_notify(w);
        lt__api_settle_check(w, 0);
    } else if (strcmp(channel, LT_BC_POLICY) == 0) {
        uint64_t done = lt__api_settle_done(api, LT_SETTLE_K_POLICY);
        lt_policy_snapshot_t *ps = lt_holder_get(&api->decisions);
        if (ps != NULL) {
            if (w->snapshot != NULL)
                lt_policy_snapshot_decref(w->snapshot);
            w->snapshot = ps;
            lt__api_settle_adopted(w, LT_SETTLE_K_POLICY, done);
        }
        lt__api_settle_check(w, 0);
    }
}

void lt_api_http_app(lt_api_t *api, lt_http_app_t *out)
{
    out->worker_init = worker_init;
    out->worker_fini = worker_fini;
    out->on_notify = worker_notify;
    out->hold = lt__api_settle_hold;
    out->data = api;
}

void lt_api_set_server(lt_api_t *api, lt_http_server_t *server)
{
    api->server = server;
    /* workers register here for settle.c (their count is fixed from now on) */
    int n = lt_http_server_worker_count(server);
    free(api->workers);
    api->workers = n > 0 ? calloc((size_t)n, sizeof(*api->workers)) : NULL;
    api->nworkers = api->workers != NULL ? n : 0;
    lt_http_ratelimit_set_audit(server, lt__api_rl_audit, api);
    /* the HTTP/2 abuse budgets follow the live configuration (h2_* keys, reloadable) */
    lt_h2guard_configure(api->cfg);
}

const char *const *lt_api_channels(size_t *count)
{
    *count = LT_CHANNEL_COUNT;
    return lt__api_channel_names;
}

typedef struct {
    lt_api_t *api;
    size_t lines;
} resync_t;

static int resync_batch(const char *batch, void *data)
{
    resync_t *rs = data;
    lt_http_server_broadcast(rs->api->server, LT_BC_REVOCATIONS, batch);
    for (const char *p = batch; *p != '\0'; p++)
        rs->lines += *p == '\n';
    rs->lines++;
    return 0;
}

/*
 * The revocations this instance may have missed (all of them at start-up), then "synced":
 * a worker reports ready only after that. Runs with LISTEN already active, so anything
 * committed meanwhile also arrives as a notification (applying twice is harmless).
 */
static void resync_revocations_locked(lt_api_t *api);

/* The control thread and the maintenance thread (retrying a failed resync) both get here. */
static void resync_revocations(lt_api_t *api)
{
    pthread_mutex_lock(&api->rev_lock);
    resync_revocations_locked(api);
    pthread_mutex_unlock(&api->rev_lock);
}

static void resync_revocations_locked(lt_api_t *api)
{
    char err[256] = "";
    PGconn *c = PQconnectdb(api->cfg->database_url);
    uint64_t last = api->rev_seq;
    resync_t rs = {.api = api};
    int ret = PQstatus(c) == CONNECTION_OK ? lt_token_revocations_fetch(c, api->rev_seq, RESYNC_BATCH, resync_batch,
                                                                          &rs, &last, err, sizeof(err))
                                           : LT_EUNAVAIL;
    PQfinish(c);
    if (ret != 0) {
        lt_log(LT_LOG_WARN, "api", "revocations not reloaded (retrying): %s%s%s", lt_strerror(ret),
               err[0] != '\0' ? ": " : "", err);
        __atomic_store_n(&api->rev_resync, 1, __ATOMIC_RELEASE);
        return;
    }
    __atomic_store_n(&api->rev_resync, 0, __ATOMIC_RELEASE);
    if (last > api->rev_seq)
        api->rev_seq = last;
    char seq[24];
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)api->rev_seq);
    lt_http_server_broadcast(api->server, LT_BC_REV_SYNCED, seq);
    lt_log(LT_LOG_INFO, "api", "revocations in memory up to seq %s (%zu reloaded)", seq, rs.lines);
}

void lt_api_on_notify(const char *channel, const char *payload, void *data)
{
    lt_api_t *api = data;
    if (api->server == NULL)
        return;
    if (channel == NULL) {
        /* (Re)connected: anything may have changed while we were not listening. */
        lt_http_server_broadcast(api->server, NULL, NULL);
        if (load_keys(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_KEYS, "");
        if (load_clients(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_CLIENTS, "");
        if (load_policies(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_POLICY, "");
        lt__api_origins_reload(api);
        lt__api_apikeys_reload(api);
        resync_revocations(api);
        return;
    }
    if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_REVOCATIONS]) == 0) {
        uint64_t seq = strtoull(payload, NULL, 10);
        pthread_mutex_lock(&api->rev_lock);
        if (seq > api->rev_seq)
            api->rev_seq = seq;
        lt_http_server_broadcast(api->server, LT_BC_REVOCATIONS, payload);
        pthread_mutex_unlock(&api->rev_lock);
        return;
    }
    if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_KEYS]) == 0) {
        if (load_keys(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_KEYS, "");
    } else if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_CLIENTS]) == 0) {
        if (load_clients(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_CLIENTS, "");
        /* Clients are subjects of decisions too. */
        if (load_policies(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_POLICY, "");
    } else if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_API_KEYS]) == 0) {
        lt__api_apikeys_reload(api);
    } else if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_POLICY]) == 0) {
        if (load_policies(api) == 0)
            lt_http_server_broadcast(api->server, LT_BC_POLICY, "");
    } else if (strcmp(channel, lt__api_channel_names[LT_CHANNEL_ORIGINS]) == 0) {
        lt__api_origins_reload(api); /* workers read the holder per request: nothing to broadcast */
    }
    if (payload != NULL) /* a kick of settle.c is no notification */
        lt_http_server_broadcast(api->server, channel, payload);
}

void lt_api_destroy(lt_api_t **pa)
{
    lt_api_t *api = *pa;
    if (api == NULL)
        return;
    maint_stop(api);
    lt_hasher_destroy(&api->hasher);
    lt_password_policy_destroy(&api->policy);
    lt_keyring_holder_dispose(&api->keys);
    lt_clients_holder_dispose(&api->clients);
    lt_holder_dispose(&api->decisions);
    lt__api_forward_auth_fini(api);
    lt__api_apikeys_fini(api);
    lt__api_origins_fini(api);
    lt__api_signing_fini(api);
    pthread_mutex_destroy(&api->rev_lock);
    free(api->workers);
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
