/*
 * api internals shared by the handler files (lt__ prefix: not for other modules).
 */
#ifndef LT_API_INTERNAL_H
#define LT_API_INTERNAL_H

#include <stdint.h>

#include "api/api.h"
#include "http/response.h"
#include "store/store.h"

struct pg_result;

/* Notification channels, index-aligned with lt__api_channel_names. */
enum { LT_CHANNEL_TEST = 0, LT_CHANNEL_COUNT };
extern const char *const lt__api_channel_names[LT_CHANNEL_COUNT];

struct lt_api {
    const lt_config_t *cfg;
    lt_http_server_t *server;
};

typedef struct lt_api_worker {
    lt_api_t *api;
    int id;
    lt_store_t *store;
    uint64_t notifications[LT_CHANNEL_COUNT]; /* single writer: this worker */
    uint64_t resyncs;                         /* listener (re)connects seen */
} lt_api_worker_t;

static inline lt_api_worker_t *lt__api_worker(lt_req_t *r)
{
    return r->app;
}

/* Completion of lt__api_query: runs only if the request is still alive. */
typedef void (*lt_api_query_cb)(lt_req_t *r, const char *err, struct pg_result *res, void *ctx);

/**
 * Runs a statement on the worker's store for request `r`, cancelling it if the request goes
 * away. On failure to queue, a 503 problem has been sent.
 * @return 0 (cb will run) or -1 (answered).
 */
int lt__api_query(lt_req_t *r, const lt_store_stmt_t *stmt, const char *const *params, int nparams, lt_api_query_cb cb,
                  void *ctx);

/* Answers a store failure (err from a callback) with the right problem. */
void lt__api_store_problem(lt_req_t *r, const char *err);

/* Route registration per surface. */
int lt__api_ops_routes(lt_api_t *api, lt_router_t *router);
int lt__api_ops_statements(void);

#endif
