/*
 * api internals shared by the handler files (lt__ prefix: not for other modules).
 */
#ifndef LT_API_INTERNAL_H
#define LT_API_INTERNAL_H

#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "crypto/hasher.h"
#include "crypto/keyring.h"
#include "http/response.h"
#include "identity/password.h"
#include "store/store.h"
#include "token/token.h"

struct pg_result;

/* Notification channels, index-aligned with lt__api_channel_names. */
enum { LT_CHANNEL_TEST = 0, LT_CHANNEL_COUNT };
extern const char *const lt__api_channel_names[LT_CHANNEL_COUNT];

struct lt_api {
    const lt_config_t *cfg;
    lt_http_server_t *server;
    lt_keyring_holder_t keys;     /* signing keys; swapped by the control thread later */
    lt_hasher_t *hasher;          /* argon2id pool shared by every worker */
    lt_password_policy_t *policy; /* runs on the hasher threads */
};

typedef struct lt_api_worker {
    lt_api_t *api;
    int id;
    lt_store_t *store;
    lt_hasher_port_t *hasher;
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

/* ---- common.c: what every surface needs ---------------------------------------------- */

/*
 * Request bodies. lt__api_body_read parses the JSON object body (answering 415/400/413
 * itself) and ties it to the request pool: string pointers taken from it stay valid until
 * the request ends, and its top-level string values are wiped then (passwords).
 * lt__api_in_* read one field each, recording a {field, message} error for a missing
 * required field, a wrong type or a string over `maxlen` bytes (or holding a NUL);
 * lt__api_in_done answers 400 `invalid_request` with every error collected, also naming
 * fields the endpoint does not know. A zeroed lt_api_in_t (no body) collects errors of
 * query parameters the same way.
 */
#define LT_API_IN_MAX_FIELDS 16
typedef struct lt_api_in {
    json_t *body; /* borrowed from the pool */
    json_t *errors;
    const char *known[LT_API_IN_MAX_FIELDS];
    int nknown;
} lt_api_in_t;

/** @return 0, or -1 when a problem has been sent. */
int lt__api_body_read(lt_req_t *r, lt_api_in_t *in) LT_MUSTCHECK;
/* A string field; NULL when absent (then an error if required) or invalid (error). */
const char *lt__api_in_str(lt_api_in_t *in, const char *name, int required, size_t maxlen);
/* An object field (borrowed); NULL when absent or invalid. */
json_t *lt__api_in_obj(lt_api_in_t *in, const char *name, int required);
/* An array field (borrowed); NULL when absent or not an array. */
json_t *lt__api_in_arr(lt_api_in_t *in, const char *name, int required);
/* A boolean field: 0/1, or `def` when absent; -1 (error recorded) when not a boolean. */
int lt__api_in_bool(lt_api_in_t *in, const char *name, int def);
/* Records a custom error for a field. */
void lt__api_in_error(lt_api_in_t *in, const char *field, const char *message);
/** @return 0 when the input is valid, else -1 after answering 400 invalid_request. */
int lt__api_in_done(lt_req_t *r, lt_api_in_t *in) LT_MUSTCHECK;

/*
 * Bearer authentication (RFC 6750): verifies `Authorization: Bearer <access token>` against
 * the keyring (memory only). On failure answers 401 `invalid_token` with
 * WWW-Authenticate and returns NULL. The token lives until the request ends.
 */
const lt_token_t *lt__api_bearer(lt_req_t *r);
/* lt__api_bearer, then requires role `admin` or `global_admin` (403 `forbidden`). */
const lt_token_t *lt__api_admin(lt_req_t *r);
int lt__api_is_global_admin(const lt_token_t *t);

/*
 * Password jobs bound to a request: cancelled (and dropped if not started) when the
 * request goes away. When the pool is full a 503 `overloaded` with Retry-After has been
 * sent and -1 is returned. Like lt__api_query, one outstanding job or query per request.
 */
typedef void (*lt_api_hash_cb)(lt_req_t *r, const lt_hasher_result_t *res, void *ctx);
int lt__api_password_verify(lt_req_t *r, const char *phc, const char *password, size_t n, int rehash, lt_api_hash_cb cb,
                            void *ctx);
/*
 * Hashes a new password after the policy: the cheap checks (length, UTF-8) here, answering
 * 400 `weak_password` naming `field`; the full check on the hasher thread, whose refusal
 * arrives as res->rejected with res->reason (the caller answers 400 `weak_password`).
 * `email` feeds the similarity check.
 */
int lt__api_password_hash(lt_req_t *r, const char *field, const char *password, size_t n, const char *email,
                          lt_api_hash_cb cb, void *ctx);

/*
 * Sheds a request that will need the hasher while its queue is full, before it costs a
 * database round trip: answers 503 `overloaded` with Retry-After and returns 1. The check
 * is a hint (the queue may fill meanwhile; submit still refuses then).
 */
int lt__api_shed_password_work(lt_req_t *r);

/* A JSON value (the text of a jsonb column, say) parsed; NULL on malformed input. */
json_t *lt__api_json_parse(const char *text);

/* Sends a JSON document given as text (e.g. built by PostgreSQL) with `status`. */
void lt__api_send_json_text(lt_req_t *r, int status, const char *text);

/* ---- route registration per surface ------------------------------------------------ */
int lt__api_ops_routes(lt_api_t *api, lt_router_t *router);
int lt__api_ops_statements(void);
int lt__api_auth_routes(lt_api_t *api, lt_router_t *router);
int lt__api_auth_statements(void);
int lt__api_admin_routes(lt_api_t *api, lt_router_t *router);
int lt__api_admin_statements(void);

#endif
