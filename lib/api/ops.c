/*
 * ops: the surface for orchestrators and Prometheus.
 *
 *   GET /healthz   the process is alive and its loop turns (no I/O: a hot path)
 *   GET /readyz    the store answers a query now (503 otherwise)
 *   GET /metrics   Prometheus text: HTTP, store and notification metrics of all workers
 *   GET /debug/sleep?ms=N   (debug_endpoints only) holds a store connection N ms with
 *                  pg_sleep: a real slow request for graceful-stop and timeout tests
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

static lt_store_stmt_t stmt_ping = {.name = "ops.ping", .sql = "SELECT 1", .nparams = 0};
static lt_store_stmt_t stmt_sleep = {.name = "ops.sleep", .sql = "SELECT pg_sleep($1::float8 / 1000)", .nparams = 1};

int lt__api_ops_statements(void)
{
    lt_store_stmt_t *stmts[] = {&stmt_ping, &stmt_sleep};
    return lt_store_stmt_register_each(stmts, sizeof(stmts) / sizeof(stmts[0]));
}

static int on_healthz(lt_req_t *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    lt_http_send(r, 200, "application/json", body, sizeof(body) - 1);
    return 0;
}

/* A store call whose success is answered with a fixed JSON body (ctx). */
static void on_fixed_reply(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *body = ctx;
    (void)res;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    lt_http_send(r, 200, "application/json", body, strlen(body));
}

static int on_readyz(lt_req_t *r)
{
    if (!lt_store_is_up(lt__api_worker(r)->store)) {
        lt__api_store_problem(r, lt_err_unavailable);
        return 0;
    }
    /* Introspection would call a revoked token active until the revocations are loaded. */
    if (!lt__api_worker(r)->revs_synced) {
        lt_http_add_header(r, "retry-after", "1");
        lt_http_problem(r, 503, "not_ready", "Revocations are not loaded from the database yet.");
        return 0;
    }
    lt__api_query(r, &stmt_ping, NULL, 0, on_fixed_reply, (void *)"{\"status\":\"ready\"}");
    return 0;
}

static int render_store_metrics(lt_api_t *api, lt_buf_t *b)
{
    int n = lt_http_server_worker_count(api->server), ret = 0;
    lt_store_stats_t sum = {0};
    uint64_t notes[LT_CHANNEL_COUNT] = {0}, resyncs = 0;
    uint64_t tc_entries = 0, tc_bytes = 0, tc_hits = 0, tc_misses = 0, rev_entries = 0, rev_seq = 0;
    for (int i = 0; i < n; i++) {
        lt_api_worker_t *w = lt_http_server_worker_app(api->server, i);
        lt_store_stats_t st;
        if (w == NULL)
            continue;
        lt_store_get_stats(w->store, &st);
        sum.connections += st.connections;
        sum.connections_up += st.connections_up;
        sum.connections_busy += st.connections_busy;
        sum.waiting += st.waiting;
        sum.queries += st.queries;
        sum.errors += st.errors;
        sum.timeouts += st.timeouts;
        sum.reconnects += st.reconnects;
        for (int c = 0; c < LT_CHANNEL_COUNT; c++)
            notes[c] += LT_COUNTER_GET(w->notifications[c]);
        resyncs += LT_COUNTER_GET(w->resyncs);
        tc_entries += __atomic_load_n(&w->m_tc_entries, __ATOMIC_RELAXED);
        tc_bytes += __atomic_load_n(&w->m_tc_bytes, __ATOMIC_RELAXED);
        tc_hits += __atomic_load_n(&w->m_tc_hits, __ATOMIC_RELAXED);
        tc_misses += __atomic_load_n(&w->m_tc_misses, __ATOMIC_RELAXED);
        uint64_t re = __atomic_load_n(&w->m_rev_entries, __ATOMIC_RELAXED);
        uint64_t rs = __atomic_load_n(&w->m_rev_seq, __ATOMIC_RELAXED);
        rev_entries = re > rev_entries ? re : rev_entries;
        rev_seq = rs > rev_seq ? rs : rev_seq;
    }
    ret |= lt_buf_appendf(b,
                          "# HELP latch_token_cache_entries Verified access tokens cached, all workers.\n"
                          "# TYPE latch_token_cache_entries gauge\n"
                          "latch_token_cache_entries %llu\n"
                          "# HELP latch_token_cache_bytes Heap held by the verified-token caches.\n"
                          "# TYPE latch_token_cache_bytes gauge\n"
                          "latch_token_cache_bytes %llu\n"
                          "# HELP latch_token_cache_lookups_total Verified-token cache lookups, by result.\n"
                          "# TYPE latch_token_cache_lookups_total counter\n"
                          "latch_token_cache_lookups_total{result=\"hit\"} %llu\n"
                          "latch_token_cache_lookups_total{result=\"miss\"} %llu\n"
                          "# HELP latch_revocations Live revocations held in memory (per worker, the largest).\n"
                          "# TYPE latch_revocations gauge\n"
                          "latch_revocations %llu\n"
                          "# HELP latch_revocation_sequence Highest revocation sequence number applied.\n"
                          "# TYPE latch_revocation_sequence gauge\n"
                          "latch_revocation_sequence %llu\n",
                          (unsigned long long)tc_entries, (unsigned long long)tc_bytes, (unsigned long long)tc_hits,
                          (unsigned long long)tc_misses, (unsigned long long)rev_entries, (unsigned long long)rev_seq);
    ret |= lt_buf_appendf(b,
                          "# HELP latch_store_connections Database connections of all workers' pools by state.\n"
                          "# TYPE latch_store_connections gauge\n"
                          "latch_store_connections{state=\"configured\"} %d\n"
                          "latch_store_connections{state=\"up\"} %d\n"
                          "latch_store_connections{state=\"busy\"} %d\n"
                          "# HELP latch_store_waiting_queries Queries waiting for a free connection.\n"
                          "# TYPE latch_store_waiting_queries gauge\n"
                          "latch_store_waiting_queries %d\n"
                          "# HELP latch_store_queries_total Queries completed, by outcome.\n"
                          "# TYPE latch_store_queries_total counter\n"
                          "latch_store_queries_total{outcome=\"ok\"} %llu\n"
                          "latch_store_queries_total{outcome=\"error\"} %llu\n"
                          "latch_store_queries_total{outcome=\"timeout\"} %llu\n"
                          "# HELP latch_store_reconnects_total Connection attempts after a loss.\n"
                          "# TYPE latch_store_reconnects_total counter\n"
                          "latch_store_reconnects_total %llu\n",
                          sum.connections, sum.connections_up, sum.connections_busy, sum.waiting,
                          (unsigned long long)(sum.queries - sum.errors - sum.timeouts), (unsigned long long)sum.errors,
                          (unsigned long long)sum.timeouts, (unsigned long long)sum.reconnects);
    ret |= lt_buf_appends(b, "# HELP latch_notifications_received_total Notifications delivered to workers, by channel.\n"
                             "# TYPE latch_notifications_received_total counter\n");
    for (int c = 0; c < LT_CHANNEL_COUNT; c++)
        ret |= lt_buf_appendf(b, "latch_notifications_received_total{channel=\"%s\"} %llu\n", lt__api_channel_names[c],
                              (unsigned long long)notes[c]);
    ret |= lt_buf_appendf(b,
                          "# HELP latch_notification_resyncs_total Listener (re)connects seen by workers.\n"
                          "# TYPE latch_notification_resyncs_total counter\n"
                          "latch_notification_resyncs_total %llu\n"
                          "# HELP latch_workers Worker threads.\n"
                          "# TYPE latch_workers gauge\n"
                          "latch_workers %d\n",
                          (unsigned long long)resyncs, n);
    lt_hasher_stats_t hs;
    lt_hasher_get_stats(api->hasher, &hs);
    ret |= lt_buf_appendf(b,
                          "# HELP latch_password_verifications_total argon2 verifications run (dummy ones for unknown users included).\n"
                          "# TYPE latch_password_verifications_total counter\n"
                          "latch_password_verifications_total %llu\n"
                          "# HELP latch_password_hashes_total argon2 hashes computed for new passwords and rehashes.\n"
                          "# TYPE latch_password_hashes_total counter\n"
                          "latch_password_hashes_total %llu\n"
                          "# HELP latch_password_jobs_refused_total Password jobs refused because the hasher queue was full.\n"
                          "# TYPE latch_password_jobs_refused_total counter\n"
                          "latch_password_jobs_refused_total %llu\n"
                          "# HELP latch_password_jobs_dropped_total Password jobs dropped because their client went away.\n"
                          "# TYPE latch_password_jobs_dropped_total counter\n"
                          "latch_password_jobs_dropped_total %llu\n"
                          "# HELP latch_hasher_jobs Password jobs by state, and the pool's limits.\n"
                          "# TYPE latch_hasher_jobs gauge\n"
                          "latch_hasher_jobs{state=\"queued\"} %d\n"
                          "latch_hasher_jobs{state=\"running\"} %d\n"
                          "latch_hasher_jobs{state=\"queue_max\"} %zu\n"
                          "# HELP latch_hasher_threads Password hasher threads.\n"
                          "# TYPE latch_hasher_threads gauge\n"
                          "latch_hasher_threads %d\n",
                          (unsigned long long)hs.verifications, (unsigned long long)hs.hashes,
                          (unsigned long long)hs.rejected, (unsigned long long)hs.dropped, hs.queued, hs.busy, hs.queue_max,
                          hs.threads);
    return ret;
}

static int on_metrics(lt_req_t *r)
{
    lt_api_t *api = lt__api_worker(r)->api;
    lt_buf_t b = LT_BUF_INIT;
    if (lt_http_server_render_metrics(api->server, &b) != 0 || render_store_metrics(api, &b) != 0 ||
        lt__api_forward_auth_metrics(api, &b) != 0 || lt__api_apikeys_metrics(api, &b) != 0) {
        lt_buf_free(&b);
        lt_http_problem(r, 500, "internal_error", "Metrics could not be rendered.");
        return 0;
    }
    lt_http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.base, b.len);
    lt_buf_free(&b);
    return 0;
}

static int on_debug_sleep(lt_req_t *r)
{
    const char *ms = lt_req_query(r, "ms");
    char *end = NULL;
    long v = ms != NULL ? strtol(ms, &end, 10) : -1;
    if (ms == NULL || *ms == '\0' || *end != '\0' || v < 0 || v > 60000) {
        json_t *errors = json_pack("[{s:s, s:s}]", "field", "ms", "message", "must be an integer from 0 to 60000");
        lt_http_problem_fields(r, 400, "invalid_request", "The query is invalid.", errors);
        return 0;
    }
    const char *params[] = {ms};
    lt__api_query(r, &stmt_sleep, params, 1, on_fixed_reply, (void *)"{\"slept\":true}");
    return 0;
}

static int on_debug_echo(lt_req_t *r)
{
    json_t *body;
    if (lt_http_read_json(r, &body) != 0)
        return 0;
    lt_http_send_json(r, 200, json_pack("{s:o}", "echo", body));
    return 0;
}

int lt__api_ops_routes(lt_api_t *api, lt_router_t *router)
{
    int ret = 0;
    ret = ret ? ret : lt_router_add(router, "GET", "/healthz", on_healthz, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/readyz", on_readyz, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/metrics", on_metrics, 0);
    if (api->cfg->debug_endpoints)
        ret = ret ? ret : lt_router_add(router, "GET", "/debug/sleep", on_debug_sleep, 0);
    if (api->cfg->debug_endpoints)
        ret = ret ? ret : lt_router_add(router, "POST", "/debug/echo", on_debug_echo, 0);
    return ret;
}
