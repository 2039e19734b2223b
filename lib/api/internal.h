/*
 * api internals shared by the handler files (lt__ prefix: not for other modules).
 */
#ifndef LT_API_INTERNAL_H
#define LT_API_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "crypto/hasher.h"
#include "crypto/keyring.h"
#include "http/ratelimit.h"
#include "http/response.h"
#include "identity/admin.h"
#include "identity/clients.h"
#include "identity/password.h"
#include "policy/engine.h"
#include "store/store.h"
#include "token/cache.h"
#include "token/revset.h"
#include "token/token.h"

struct pg_result;
struct lt_policy_routes;

/* forward_auth.c: outcomes counted per worker, index-aligned with its metric labels. */
enum {
    LT_FA_ALLOWED = 0,     /* 200 after a decision */
    LT_FA_PUBLIC,          /* 200 on a public route */
    LT_FA_UNAUTHENTICATED, /* 401: no credential, or a bad one */
    LT_FA_DENIED,          /* 403: the decision said no */
    LT_FA_NO_ROUTE,        /* 403: no route rule matched */
    LT_FA_REFUSED,         /* 400/403: a malformed, ambiguous or conflicting original request */
    LT_FA_OFF,             /* 404: forward_auth_rules is not set */
    LT_FA_OUTCOMES
};

/* Notification channels (LISTEN), index-aligned with lt__api_channel_names. */
enum {
    LT_CHANNEL_TEST = 0,
    LT_CHANNEL_REVOCATIONS,
    LT_CHANNEL_KEYS,
    LT_CHANNEL_CLIENTS,
    LT_CHANNEL_POLICY,
    LT_CHANNEL_API_KEYS, /* live API keys (apikeys.c) */
    LT_CHANNEL_ORIGINS, /* tenants' CORS origins (browser.c) */
    LT_CHANNEL_COUNT
};
extern const char *const lt__api_channel_names[LT_CHANNEL_COUNT];

/*
 * What the control thread broadcasts to the workers (lt_http_server_broadcast) after it has
 * applied a notification or a resync to the shared state:
 *   LT_BC_REVOCATIONS  payload: a batch in revset wire form (lines), to apply and push to
 *                      the worker's SSE streams
 *   LT_BC_REV_SYNCED   payload: decimal seq; the worker's set is complete up to it (/readyz
 *                      stays 503 until a worker has seen this once)
 *   LT_BC_KEYS         the keyring holder has a new ring: take a reference, bump ring_gen
 *   LT_BC_CLIENTS      the clients holder has a new snapshot: take a reference
 *   LT_BC_POLICY       the decisions holder has a new policy snapshot: take a reference
 */
/*
 * Snapshot kinds an admin write can change (settle.c). A route tagged LT_API_SETTLE(mask)
 * holds its 2xx answer until every worker of this instance serves the write.
 */
enum { LT_SETTLE_K_CLIENTS, LT_SETTLE_K_POLICY, LT_SETTLE_K_API_KEYS, LT_SETTLE_K_ORIGINS, LT_SETTLE_KINDS };
#define LT_SETTLE_CLIENTS (1u << LT_SETTLE_K_CLIENTS) /* clients (and the policy's client subjects) */
#define LT_SETTLE_POLICY (1u << LT_SETTLE_K_POLICY)   /* roles, policies, subjects' roles and attributes */
#define LT_SETTLE_API_KEYS (1u << LT_SETTLE_K_API_KEYS)
#define LT_SETTLE_ORIGINS (1u << LT_SETTLE_K_ORIGINS) /* tenants' CORS origins */
#define LT_API_SETTLE(mask) ((unsigned)(mask) << LT_ROUTE_APP_SHIFT)

#define LT_BC_REVOCATIONS "latch_revocations"
#define LT_BC_REV_SYNCED "latch.revocations.synced"
#define LT_BC_KEYS "latch.keys"
#define LT_BC_CLIENTS "latch.clients"
#define LT_BC_POLICY "latch.policy"
#define LT_BC_API_KEYS "latch.api_keys" /* the API keys holder has a new snapshot */

struct lt_api {
    const lt_config_t *cfg;
    lt_http_server_t *server;
    lt_keyring_holder_t keys;     /* signing keys; swapped by the control thread later */
    lt_hasher_t *hasher;          /* argon2id pool shared by every worker */
    lt_password_policy_t *policy; /* runs on the hasher threads */
    lt_clients_holder_t clients;  /* OAuth clients; swapped by the control thread */
    lt_holder_t decisions;        /* policy snapshot (lt_policy_snapshot_t); likewise */
    pthread_mutex_t rev_lock;     /* orders revocation broadcasts: control vs maintenance thread */
    uint64_t rev_seq;             /* highest revocation seq broadcast (under rev_lock) */
    int rev_resync;               /* a resync failed: the maintenance thread retries (atomic) */
    void *maint;                  /* maintenance thread (api.c) */
    struct lt_policy_routes *fa_routes; /* forward-auth route rules, immutable; NULL: off */
    lt_holder_t apikeys;                /* live API keys (lt_apikeys_t); the control thread swaps */
    lt_holder_t origins;                /* tenants' CORS origins (browser.c); control thread swaps */
    struct lt_nonce_cache *nonces;      /* nonces of signed requests (signing.c), per instance */
    /* settle.c: read-your-writes of the snapshots on this instance */
    struct lt_store_listener *listener;      /* kicked for reloads (atomic; NULL: do not hold) */
    uint64_t settle_asked[LT_SETTLE_KINDS];  /* tickets given (atomic) */
    uint64_t settle_done[LT_SETTLE_KINDS];   /* `asked` read before the newest load in the holder */
    struct lt_api_worker **workers;          /* by id (atomic slots; NULL: not serving) */
    int nworkers;
};

typedef struct lt_api_worker {
    lt_api_t *api;
    int id;
    lt_store_t *store;
    lt_hasher_port_t *hasher;
    uint64_t notifications[LT_CHANNEL_COUNT]; /* single writer: this worker */
    uint64_t resyncs;                         /* listener (re)connects seen */
    lt_keyring_t *ring;                       /* this worker's reference (LT_BC_KEYS) */
    uint64_t ring_gen;                        /* bumped on every ring swap */
    lt_clients_t *clients;                    /* this worker's reference (LT_BC_CLIENTS) */
    lt_policy_snapshot_t *snapshot;           /* this worker's reference (LT_BC_POLICY) */
    struct lt_apikeys *apikeys;               /* this worker's reference (LT_BC_API_KEYS) */
    void *ak_usage;                           /* API keys used since the last flush (apikeys.c) */
    lt_tcache_t *tcache;                      /* verified access tokens */
    lt_revset_t *revs;                        /* revoked sids and jtis */
    int revs_synced;                          /* saw LT_BC_REV_SYNCED at least once */
    void *streams;                            /* revocation SSE streams (revocations.c) */
    char *jwks;                               /* the ring's JWKS rendered (keys.c) */
    size_t jwks_len;
    uint64_t jwks_gen;                        /* ring_gen it was rendered for */
    /* Copies for /metrics, which runs on any worker (relaxed atomics; writer: this worker). */
    uint64_t m_tc_entries, m_tc_bytes, m_tc_hits, m_tc_misses, m_rev_entries, m_rev_seq;
    uint64_t m_fa[LT_FA_OUTCOMES]; /* forward-auth outcomes (forward_auth.c) */
    uint64_t settle_adopted[LT_SETTLE_KINDS]; /* settle_done read before taking each snapshot (atomic) */
    void *settle;                             /* held answers (settle.c) */
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
/* lt__api_in_done without answering (no h2o: tests/fuzz): unknown fields recorded, then 0
 * when no error was, else -1 with in->errors (owned by `in`, release with json_decref). */
int lt__api_in_finish(lt_api_in_t *in) LT_MUSTCHECK;

/*
 * Bearer authentication (RFC 6750): verifies `Authorization: Bearer <access token>` against
 * the keyring (memory only). On failure answers 401 `invalid_token` with
 * WWW-Authenticate and returns NULL. The token lives until the request ends.
 */
const lt_token_t *lt__api_bearer(lt_req_t *r);

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

/* `size` zeroed bytes in the request pool, wiped when the request ends however it ends
 * (answered, failed, or reset by the client): for flow contexts holding tokens or secrets. */
void *lt__api_alloc_wiped(lt_req_t *r, size_t size);

/* A JSON value (the text of a jsonb column, say) parsed; NULL on malformed input. */
json_t *lt__api_json_parse(const char *text);

/* Sends a JSON document given as text (e.g. built by PostgreSQL) with `status`. */
void lt__api_send_json_text(lt_req_t *r, int status, const char *text);

/* ---- tokens in memory (api.c) -------------------------------------------------------- */

/* The worker's current keyring (NULL before keys load): no lock, no reference to drop. */
static inline lt_keyring_t *lt__api_ring(lt_req_t *r)
{
    return lt__api_worker(r)->ring;
}

/* The signing keystore's options from the configuration; `seal` (wipe it after use) holds
 * the master key o->seal_keys points to. */
void lt__api_keystore_opts(const lt_api_t *api, lt_token_keystore_opts_t *o, lt_seal_key_t *seal);
/* The master key of the configuration as a seal key (wipe it after use). */
void lt__api_master_key(const lt_config_t *cfg, lt_seal_key_t *k);

/* 1 when the token's session (sid) or the token itself (jti) is revoked, from memory. */
int lt__api_revoked(lt_req_t *r, const lt_token_t *t);

/* ---- OAuth (oauth.c) ---------------------------------------------------------------- */

/*
 * An application/x-www-form-urlencoded body (RFC 6749 §3.2 style): parsed into the request
 * pool; a parameter given twice, a body that is not form-encoded or not UTF-8 is answered
 * 400 invalid_request (OAuth error JSON) by lt__api_form_read.
 */
#define LT_API_FORM_MAX 16
typedef struct lt_api_form {
    int n;
    const char *names[LT_API_FORM_MAX], *values[LT_API_FORM_MAX];
    size_t lens[LT_API_FORM_MAX];
} lt_api_form_t;
/** @return 0, or -1 when an error has been sent. */
int lt__api_form_read(lt_req_t *r, lt_api_form_t *f) LT_MUSTCHECK;
/* The value of `name`, NULL when absent. */
const char *lt__api_form_get(const lt_api_form_t *f, const char *name);

/* An RFC 6749 §5.2 error: {"error", "error_description"} with Cache-Control: no-store
 * (401 also carries WWW-Authenticate: Basic realm="latch"). */
void lt__api_oauth_error(lt_req_t *r, int status, const char *error, const char *description);

/*
 * Client authentication (client_secret_basic or client_secret_post with `f`, which may be
 * NULL for requests without a form body): the client, or NULL after answering 401
 * invalid_client. Using both methods at once is refused (400 invalid_request). The client
 * borrows from the worker's snapshot: valid until the handler returns, not across async
 * work (copy what you need into the request pool).
 */
const lt_client_t *lt__api_client_auth(lt_req_t *r, const lt_api_form_t *f);

/* ---- refresh rotation (auth.c), shared by /v1/auth/refresh and /oauth2/token -------- */

typedef enum { LT_API_ERRORS_PROBLEM, LT_API_ERRORS_OAUTH } lt_api_errors_t;
/*
 * Rotates the refresh token `token` and answers the request itself: 200 with the token
 * response, or invalid_grant (problem+json or RFC 6749 §5.2 per `style`). With a client
 * (`client_id`, `client_tenant` copied into the request pool, else both NULL) the
 * session must belong to the client's tenant and the access token's client_id is the
 * client's.
 */
void lt__api_refresh(lt_req_t *r, const char *token, const char *client_id, const char *client_tenant,
                     lt_api_errors_t style);

/* ---- sign-in helpers (auth.c), shared with mfa.c ------------------------------------- */

struct lt_auth_session;
/*
 * The first-party token response body for session `s` of user `sub` in tenant `tenant`:
 * {access_token, token_type, expires_in, refresh_token (when rt is not NULL), session_id}.
 * NULL after answering 503 when no access token can be issued.
 */
json_t *lt__api_session_token_body(lt_req_t *r, const char *sub, const char *tenant,
                                   const struct lt_auth_session *s, const char *rt);
/* The eight lockout/rate-limit parameters of the gate statements (lt_auth_limits_params). */
void lt__api_limits_params(lt_req_t *r, char buf[8][12], const char *out[8]);
/* The User-Agent as a session keeps it (printable ASCII, bounded), or NULL. */
const char *lt__api_user_agent(lt_req_t *r);
/* 429 for a refusal of the lockout gate, with Retry-After. */
void lt__api_too_many(lt_req_t *r, int ip_limited, int retry_after);
/* 401 invalid_token: the bearer verified but its session has ended. */
void lt__api_session_ended(lt_req_t *r);
/* 503 unavailable with Retry-After: 1. */
void lt__api_unavailable(lt_req_t *r, const char *detail);
/* A row without the shape its SQL function promises (a deployment mismatch): logged, 503. */
void lt__api_bad_row(lt_req_t *r, const char *what);
/* A password job that failed for a reason other than a malformed stored hash: 503. */
void lt__api_hasher_failed(lt_req_t *r, int err);
/* 1 when a signing key is loaded; else 0 after answering 503. */
int lt__api_keys_ready(lt_req_t *r);
/*
 * Verifies the bearer's current password again (password change, MFA changes without a
 * recent sign-in): lockout gate, argon2, audit of a wrong one with 403
 * invalid_credentials; `ok` runs with the user's email once it matched.
 */
typedef void (*lt_api_reverified_cb)(lt_req_t *r, const char *email, void *ctx);
void lt__api_reverify_password(lt_req_t *r, const lt_token_t *t, const char *password, lt_api_reverified_cb ok,
                               void *ctx);
/* lt__api_bearer plus well-formed sid/sub/tenant (else 401 session ended). */
const lt_token_t *lt__api_me_bearer(lt_req_t *r);

/* oauth.c: a verified access token from the worker's token cache (verifying and caching it
 * on a miss; the signature, iss/aud and times, not revocation), or NULL. The entry lives in
 * the cache: use it before the handler returns. */
lt_tcache_entry_t *lt__api_access_token(lt_req_t *r, const char *jwt, size_t n);

/* ---- admin_common.c: what the admin surfaces share ---------------------------------- */

/* Who is calling: the verified token and the tenant its queries are confined to. */
typedef struct {
    const lt_token_t *t;
    const char *scope; /* the caller's tenant id, NULL when it holds latch:scope:global */
    const struct lt_api_key_caller *key; /* an API key authenticated the caller (t is its view) */
} lt_api_caller_t;

typedef struct {
    char us[20];
    char id[LT_ADMIN_UUID_LEN + 1];
    const char *after_us, *after_id; /* NULL on the first page */
    char limit[8];
} lt_api_page_t;

/*
 * The admin API eats its own cooking: the bearer (a signed-in user) must be allowed
 * `permission` ("latch:users:write": the action after the last ':' on the resource type
 * before it) by the worker's policy snapshot, exactly as a decision about it would be made
 * (the user's stored roles win; a user the snapshot does not know yet has its token's
 * roles). Its scope is its tenant, or NULL when it is also allowed latch:scope:global.
 * @return 0, or -1 when a 401/403 has been sent.
 */
int lt__api_admin_caller(lt_req_t *r, lt_api_caller_t *c, const char *permission);
/* 1 when the snapshot allows `t`'s user `permission` (see lt__api_admin_caller). */
int lt__api_user_may(lt_req_t *r, const lt_token_t *t, const char *permission);
/* Runs `stmt` (at most 16 parameters, copied and wiped afterwards) once the caller's
 * session is confirmed live: an access token outlives a disabled admin and ended sessions,
 * admin rights must not. */
void lt__api_admin_run(lt_req_t *r, const lt_api_caller_t *c, const lt_store_stmt_t *stmt, const char *const *params,
                       int nparams, lt_api_query_cb cb, void *ctx);
/* A failed admin statement: 409 unique violation, 400 data exception or CHECK, 503 the
 * server's transient trouble, else 500 (logged, primary message only). */
void lt__api_admin_failed(lt_req_t *r, const char *err, struct pg_result *res);
/* Completions: a document (404 with ctx as detail when NULL), a page {items, next_cursor}. */
void lt__api_admin_doc_done(lt_req_t *r, const char *err, struct pg_result *res, void *ctx);
void lt__api_admin_page_done(lt_req_t *r, const char *err, struct pg_result *res, void *ctx);
/* limit (1..200, default 50) and cursor of a list; problems are recorded in `q`. */
void lt__api_page_parse(lt_req_t *r, lt_api_page_t *p, lt_api_in_t *q);
/* 500 internal_error, logging `what` with the request id. */
void lt__api_internal_error(lt_req_t *r, const char *what);
/* Copies into the request pool (NULL from pool_json only when out of memory). */
char *lt__api_pool_strdup(lt_req_t *r, const char *s);
char *lt__api_pool_json(lt_req_t *r, const json_t *v);

/* ---- browser frontends (browser.c): CORS per tenant, cookie mode, CSRF -------------- */

/* The origins snapshot: holder, first load (an empty one while the database is away) and
 * the http CORS check; reload on NOTIFY latch_origins or a reconnect (control thread). */
int lt__api_origins_init(lt_api_t *api) LT_MUSTCHECK;
void lt__api_origins_reload(lt_api_t *api);
void lt__api_origins_fini(lt_api_t *api);
/* Narrows the CORS headers to the request's tenant (by id, or by name when id is NULL). */
void lt__api_cors_tenant(lt_req_t *r, const char *tenant_id, const char *tenant_name);
/* 1 when a state change is authenticated by the refresh cookie's session: cookie mode, or
 * the __Host-latch_rt cookie came along (browsers send it on their own). */
int lt__api_cookie_session(lt_req_t *r);
/* The CSRF double-submit check for session (tenant, sid): X-CSRF-Token present, equal to
 * the __Host-latch_csrf cookie and the session's token. @return 0, or -1 after 403 csrf_failed. */
int lt__api_csrf_check(lt_req_t *r, const char *tenant, const char *sid) LT_MUSTCHECK;
/* Cookie mode: Set-Cookie for the refresh token `rt` of session (tenant, sid) and its CSRF
 * token, which also goes into `body` as csrf_token. @return 0, or -1 after answering 503. */
int lt__api_cookies_set(lt_req_t *r, json_t *body, const char *tenant, const char *sid, const char *rt) LT_MUSTCHECK;
/* Set-Cookie clearing both cookies (Max-Age=0). */
void lt__api_cookies_clear(lt_req_t *r);
/* The __Host-latch_rt cookie taken apart: tenant and session ids (checked UUIDs) and the
 * refresh token (pool copies). @return 1, or 0 when absent or malformed. */
int lt__api_rt_cookie(lt_req_t *r, const char **tenant, const char **sid, const char **rt);
/* PATCH /v1/admin/tenants/{id}: the optional `cors_origins` array checked (errors recorded
 * in `in` as cors_origins[i]); its JSON text in the request pool, or NULL (absent, invalid). */
const char *lt__api_cors_origins_in(lt_req_t *r, lt_api_in_t *in);

/* ---- route registration per surface ------------------------------------------------ */
int lt__api_ops_routes(lt_api_t *api, lt_router_t *router);
int lt__api_ops_statements(void);
int lt__api_auth_routes(lt_api_t *api, lt_router_t *router);
int lt__api_auth_statements(void);
int lt__api_admin_routes(lt_api_t *api, lt_router_t *router);
int lt__api_admin_statements(void);
/* admin_privacy.c (export, erase, lock, audit query); called by the two above. */
int lt__api_privacy_routes(lt_api_t *api, lt_router_t *router);
int lt__api_privacy_statements(void);
int lt__api_oauth_routes(lt_api_t *api, lt_router_t *router);
int lt__api_oauth_statements(void);
int lt__api_keys_routes(lt_api_t *api, lt_router_t *router);
int lt__api_keys_statements(void);
int lt__api_clients_routes(lt_api_t *api, lt_router_t *router);
int lt__api_revocations_routes(lt_api_t *api, lt_router_t *router);
int lt__api_mfa_routes(lt_api_t *api, lt_router_t *router);
/* access.c: one decision by the worker's policy snapshot, now, in `tenant` (borrowed
 * objects; lt_policy_decide's contract). */
int lt__api_decide(lt_req_t *r, const char *tenant, const json_t *subject, const json_t *action,
                   const json_t *resource, const json_t *context, int explain, lt_policy_decision_t *d);
int lt__api_access_routes(lt_api_t *api, lt_router_t *router);
int lt__api_policy_routes(lt_api_t *api, lt_router_t *router);
int lt__api_policy_statements(void);
int lt__api_mfa_statements(void);
/* forward_auth.c: loads forward_auth_rules at start (logs the file, route and member of a
 * problem; LT_EINVAL/LT_EIO then stop latchd), frees them at the end, registers the routes,
 * appends latch_forward_auth_total to /metrics. */
int lt__api_forward_auth_init(lt_api_t *api) LT_MUSTCHECK;
void lt__api_forward_auth_fini(lt_api_t *api);
int lt__api_forward_auth_routes(lt_api_t *api, lt_router_t *router);
int lt__api_forward_auth_metrics(lt_api_t *api, lt_buf_t *b) LT_MUSTCHECK;
/* rate_audit.c: the `rate_limit.tripped` audit hook (lt_api_set_server installs it); the
 * caller's buckets: `id` of `kind` (may be NULL) then `tenant` (may be NULL), and a tenant
 * given by name (login). Each returns 1 once a 429 has been answered, else 0. */
void lt__api_rl_audit(lt_req_t *r, const lt_rl_trip_t *t, void *data);
int lt__api_rl_caller(lt_req_t *r, lt_rl_kind_t kind, const char *id, const char *tenant);
int lt__api_rl_tenant_name(lt_req_t *r, const char *name);
/* revocations.c: per-worker SSE streams. */
int lt__api_streams_init(lt_api_worker_t *w) LT_MUSTCHECK;
void lt__api_streams_push(lt_api_worker_t *w); /* after new entries reached w->revs */
void lt__api_streams_close(lt_api_worker_t *w);                    /* worker teardown: end them all */

/* ---- apikeys.c: API keys as the caller's credential ------------------------------------ */

/*
 * A verified API key, copied into the request pool (valid until the request ends, across
 * async work). `token` is the admin API's view of it: sub the owner (user id or client_id),
 * tenant, roles the effective roles (the key's roles its owner still holds), sid NULL;
 * lt__api_key_of_token recognises it.
 */
typedef struct lt_api_key_caller {
    lt_token_t token;
    const char *key_id, *uuid, *tenant, *owner_id;
    int owner_is_client;
    const char *scope;  /* the key's scopes, space-separated */
    json_t *roles;      /* effective roles (array, owned by the pool) */
    int64_t expires_at; /* 0: never */
    int64_t created_at;
    const char *const *permissions; /* client permissions it carries (NULL-terminated) */
} lt_api_key_caller_t;

/*
 * The request's API key, from `Authorization: Bearer lt_ak_...` or `X-API-Key: lt_ak_...`
 * (an X-API-Key not in that form is not ours and is ignored), verified from the worker's
 * snapshot; on success its use is noted for the batched last_used write and the rate limit
 * of the key is charged.
 * @return 1 (*out set), 0 (none presented), -1 (a key was presented but is malformed,
 *         unknown, revoked or expired, or given twice: nothing answered), -2 (answered: 429).
 */
int lt__api_key_from_request(lt_req_t *r, const lt_api_key_caller_t **out);
/* The key behind a token view made by lt__api_key_from_request, else NULL. */
const lt_api_key_caller_t *lt__api_key_of_token(const lt_token_t *t);
/* The AuthZEN subject a key acts as: {type: "api_key", id: key_id, properties: {roles:
 * effective roles, owner_type, owner_id, scopes}} (a new reference; NULL: out of memory). */
json_t *lt__api_key_subject(const lt_api_key_caller_t *k);
/* lt__api_client_auth, or an API key as the caller (its permissions: the owning client's, or
 * for a user's key the scopes "introspect"/"decide"); answers as lt__api_client_auth does. */
const lt_client_t *lt__api_caller_client(lt_req_t *r, const lt_api_form_t *f);
/* /oauth2/introspect of an API key `token` for caller `c` (its tenant only). */
void lt__api_key_introspect(lt_req_t *r, const lt_client_t *c, const char *token);
/* Start-up: the first load (an empty snapshot while the database is away), statements. */
int lt__api_apikeys_init(lt_api_t *api) LT_MUSTCHECK;
/* Control thread: reload and broadcast LT_BC_API_KEYS. */
void lt__api_apikeys_reload(lt_api_t *api);
void lt__api_apikeys_fini(lt_api_t *api);
/* Worker: take the snapshot and start the last_used flush timer; fini after the store closed. */
int lt__api_apikeys_worker_init(lt_api_worker_t *w, struct st_h2o_evloop_t *loop) LT_MUSTCHECK;
void lt__api_apikeys_worker_notify(lt_api_worker_t *w);
void lt__api_apikeys_worker_fini(lt_api_worker_t *w);
int lt__api_apikeys_routes(lt_api_t *api, lt_router_t *router);
/* latch_api_key_last_used_flushes_total and friends for /metrics. */
int lt__api_apikeys_metrics(lt_api_t *api, lt_buf_t *b) LT_MUSTCHECK;

/* ---- signed requests (signing.c) ------------------------------------------------------ */

/* The nonce cache (request_signature_nonces). @return 0 or an LT_E* code (logged). */
int lt__api_signing_init(lt_api_t *api) LT_MUSTCHECK;
void lt__api_signing_fini(lt_api_t *api);
/* POST/PATCH/DELETE /v1/admin/clients/{id}/signing-key. */
int lt__api_signing_routes(lt_api_t *api, lt_router_t *router);
/*
 * The Latch-Signature check of a request authenticated as client `c` (called by
 * lt__api_client_auth once the client's credential verified; any other way of
 * authenticating as a client must call it too): nothing to do when unsigned and not
 * required, else the signature must verify, be inside request_signature_window and not be
 * a replay. @return 0, or -1 after answering (401 invalid_signature, signature_expired,
 * replayed_request, signature_required; 503 when the nonce memory is full).
 */
int lt__api_signature_check(lt_req_t *r, const lt_client_t *c) LT_MUSTCHECK;
/* admin_clients.c: the path's {id} (row UUID or client_id), or NULL after answering 404. */
const char *lt__api_client_path_id(lt_req_t *r);

/* ---- settle.c: answers of admin writes wait for this instance's snapshots -------------- */

/* Control thread, around each load of a kind's snapshot: `asked` before it, `loaded`
 * with that value once the load is in the holder (before the broadcast). */
uint64_t lt__api_settle_asked(lt_api_t *api, int kind);
void lt__api_settle_loaded(lt_api_t *api, int kind, uint64_t asked);
uint64_t lt__api_settle_done(lt_api_t *api, int kind);
/* Worker, on taking a kind's snapshot: the `done` it read before taking it. */
void lt__api_settle_adopted(lt_api_worker_t *w, int kind, uint64_t done);
/* Sends the held answers that are settled (all of them when `force`). */
void lt__api_settle_check(lt_api_worker_t *w, int force);
/* lt_http_app_t.hold. */
int lt__api_settle_hold(void *app, lt_req_t *r, unsigned tags, void *data);
int lt__api_settle_worker_init(lt_api_worker_t *w, struct st_h2o_evloop_t *loop) LT_MUSTCHECK;
void lt__api_settle_worker_fini(lt_api_worker_t *w);

#endif
