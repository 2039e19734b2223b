/*
 * http internals shared by server.c and response.c (lt__ prefix: not for other modules).
 */
#ifndef LT_HTTP_INTERNAL_H
#define LT_HTTP_INTERNAL_H

#include <h2o.h>

#include "http/server.h"

/* The worker's open response streams (response.c links and unlinks them). */
h2o_linklist_t *lt__http_worker_streams(lt_http_worker_t *w);

/* The application's hooks (lt_http_server_create's `app`). */
const lt_http_app_t *lt__http_server_app(const lt_http_server_t *s);

/* 1 once the worker began its graceful stop. */
int lt__http_worker_stopping(const lt_http_worker_t *w);

/* The request of a stream is being released (server.c's dispose): runs on_close, frees. */
void lt__http_stream_dispose(lt_req_t *r);

/* Ends every stream of the list (server.c calls it when the worker starts stopping). */
void lt__http_streams_end_all(h2o_linklist_t *streams);

#endif
