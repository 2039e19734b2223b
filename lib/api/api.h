/*
 * api: the HTTP handlers and the glue that gives them per-worker state.
 *
 * lt_api_t holds what every worker shares (the configuration, the server for metrics);
 * each worker gets its own state (its store pool, notification counters) created on the
 * worker's thread through the lt_http_app_t hooks. Handlers never write SQL: they call
 * domain modules (and, for the chassis' own probes, statements registered here).
 *
 * Threading: create, register and destroy on the main thread; handlers run on workers;
 * lt_api_on_notify runs on the store listener's control thread and only broadcasts.
 */
#ifndef LT_API_H
#define LT_API_H

#include <stddef.h>

#include "base/base.h"
#include "config/config.h"
#include "http/router.h"
#include "http/server.h"
#include "store/store.h"

typedef struct lt_api lt_api_t;

/** Registers the prepared statements of every surface. `cfg` must outlive the api. @return 0, LT_ENOMEM, or a registration error. */
int lt_api_create(const lt_config_t *cfg, lt_api_t **out) LT_MUSTCHECK;

/** Adds every route. @return 0 or a router error. */
int lt_api_register_routes(lt_api_t *api, lt_router_t *router) LT_MUSTCHECK;

/* The hooks for lt_http_server_create. */
void lt_api_http_app(lt_api_t *api, lt_http_app_t *out);

/* The notification listener (started after the server); admin writes kick it for the
 * reloads their answers wait for (api/settle.c). Keep it allocated until the server is
 * destroyed (lt_store_listener_halt, then lt_store_listener_stop). */
void lt_api_set_listener(lt_api_t *api, lt_store_listener_t *listener);

/* Tell the api which server it runs in (for /metrics across workers). */
void lt_api_set_server(lt_api_t *api, lt_http_server_t *server);

/* The NOTIFY channels the control thread must LISTEN on. */
const char *const *lt_api_channels(size_t *count);

/* lt_store_notify_fn for the listener: fans each notification out to every worker. `data` is the lt_api_t. */
void lt_api_on_notify(const char *channel, const char *payload, void *data);

void lt_api_destroy(lt_api_t **api);

#endif
