/*
 * admin_clients: the operators' REST surface over OAuth clients (proto/openapi.yaml, tag
 * admin).
 *
 *   POST   /v1/admin/clients                 create: 201 with client_id and client_secret
 *                                            (the only time the secret is shown)
 *   GET    /v1/admin/clients[?tenant_id&limit&cursor]
 *   GET    /v1/admin/clients/{id}            id: the row id (UUID) or the client_id
 *   DELETE /v1/admin/clients/{id}            204
 *   POST   /v1/admin/clients/{id}/secret     a new secret (the old one stops working)
 *
 * Authorisation is admin.c's for users: a bearer access token with role `admin` or
 * `global_admin`, the caller's session confirmed live before the statement runs, a tenant
 * admin's statements scoped to its tenant and a global admin's not (it may name another
 * tenant with `tenant_id`, as for users). Anything outside the scope answers 404 exactly
 * like a missing client.
 *
 * Secrets: made here (lt_client_credentials_new), only their SHA-256 goes to the store; the
 * plaintext lives in the request pool until the response is rendered and is wiped then.
 * Responses carry Cache-Control: no-store (the default of every non-cacheable route).
 *
 * Threading: handlers run on the request's worker thread; per-request state lives in the
 * request pool.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "identity/admin.h"
#include "identity/auth.h"
#include "identity/clients.h"

#define LIMIT_DEFAULT "50"
#define LIMIT_MAX 200
#define MAX_PARAMS 12

typedef struct {
    const lt_token_t *t;
    const char *scope; /* the caller's tenant id, NULL for a global admin */
} caller_t;

/** @return 0, or -1 when a 401/403 has been sent. */
static int caller_get(lt_req_t *r, caller_t *c)
{
    c->t = lt__api_admin(r);
    if (c->t == NULL)
        return -1;
    /* Tokens we issued always carry these as UUIDs; anything else must not reach a cast. */
    if (!lt_auth_uuid_ok(c->t->tenant) || !lt_auth_uuid_ok(c->t->sub) || !lt_auth_uuid_ok(c->t->sid)) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The access token is invalid or expired.");
        return -1;
    }
    c->scope = lt__api_is_global_admin(c->t) ? NULL : c->t->tenant;
    return 0;
}

/* A client id of the right shape ("lc_" + 22 base64url). */
static int client_id_ok(const char *s)
{
    return s != NULL && strlen(s) == LT_CLIENT_ID_LEN && strncmp(s, "lc_", 3) == 0 &&
           strspn(s + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == LT_CLIENT_ID_LEN - 3;
}

/* The path's {id} (row UUID or client_id), or NULL after answering 404. */
static const char *path_id(lt_req_t *r)
{
    const char *id = lt_req_param(r, "id");
    if (id == NULL || !(lt_auth_uuid_ok(id) || client_id_ok(id))) {
        lt_http_problem(r, 404, "not_found", "No such client.");
        return NULL;
    }
    return id;
}

static char *pool_strdup(lt_req_t *r, const char *s)
{
    size_t n = strlen(s);
    char *p = h2o_mem_alloc_pool(&r->req->pool, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* A JSON value serialised into the request pool; NULL only when out of memory. */
static char *pool_json(lt_req_t *r, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return NULL;
    char *p = pool_strdup(r, s);
    free(s);
    return p;
}

static void internal_error(lt_req_t *r, const char *what)
{
    lt_log(LT_LOG_ERROR, "api", "request %s: %s", r->request_id, what);
    lt_http_problem(r, 500, "internal_error", "The request could not be completed.");
}

/* As admin.c: 409 for unique violations, 400 for data exceptions and CHECKs (input that
 * slipped past validation), 503 for the server's transient trouble, 500 (logged) else. */
static void query_failed(lt_req_t *r, const char *err, PGresult *res)
{
    if (err != lt_err_query || res == NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "23505") == 0) {
        lt_http_problem(r, 409, "conflict", "The object exists already.");
        return;
    }
    if (state != NULL && (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0)) {
        lt_http_problem(r, 400, "invalid_request", "The request holds a value the store does not accept.");
        return;
    }
    if (state != NULL && (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                          strncmp(state, "57", 2) == 0 || strncmp(state, "08", 2) == 0)) {
        lt_http_add_header(r, "retry-after", "1");
        lt__api_store_problem(r, lt_err_unavailable);
        return;
    }
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    lt_log(LT_LOG_ERROR, "api", "request %s: clients statement failed: %s %s", r->request_id, state ? state : "-",
           msg ? msg : "-");
    lt_http_problem(r, 500, "internal_error", "The request could not be completed.");
}

/* ---- completions ------------------------------------------------------------------------ */

/* A new secret's copy in the request pool, wiped when the request ends however it ends
 * (answered, failed, or reset by the client before the statement returned). */
static void secret_dispose(void *p)
{
    lt_wipe(p, LT_CLIENT_SECRET_LEN + 1);
}

static char *pool_secret(lt_req_t *r, const char *secret)
{
    char *p = h2o_mem_alloc_shared(&r->req->pool, LT_CLIENT_SECRET_LEN + 1, secret_dispose);
    memcpy(p, secret, LT_CLIENT_SECRET_LEN + 1);
    return p;
}

/* What a write answers on "ok". */
typedef struct {
    int status;   /* 200, 201 or 204 (no body) */
    char *secret; /* added as client_secret (pool; wiped once rendered), or NULL */
} write_t;

static void send_with_secret(lt_req_t *r, int status, const char *doc, char *secret)
{
    json_t *body = lt__api_json_parse(doc);
    char *text = NULL;
    if (body == NULL || json_object_set_new(body, "client_secret", json_string(secret)) != 0 ||
        (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        internal_error(r, "rendering a client with its secret failed");
    } else {
        lt_http_send(r, status, "application/json", text, strlen(text));
    }
    /* lt_http_send copied the body into the pool, which h2o frees without wiping; what we
     * own goes now. */
    if (text != NULL) {
        lt_wipe(text, strlen(text));
        free(text);
    }
    json_t *s = body != NULL ? json_object_get(body, "client_secret") : NULL;
    if (s != NULL)
        lt_wipe((void *)json_string_value(s), json_string_length(s));
    json_decref(body);
    lt_wipe(secret, strlen(secret));
}

static void on_write_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    write_t *w = ctx;
    lt_admin_code_t code;
    const char *body;
    if (err != NULL) {
        query_failed(r, err, res);
        goto wipe;
    }
    if (lt_admin_result(res, &code, &body) != 0) {
        internal_error(r, "clients statement returned an unexpected row");
        goto wipe;
    }
    if (code == LT_ADMIN_NOT_FOUND) {
        lt_http_problem(r, 404, "not_found", "No such client.");
        goto wipe;
    }
    if (code != LT_ADMIN_OK) {
        internal_error(r, "clients statement returned an unknown code");
        goto wipe;
    }
    if (w->status == 204)
        lt_http_send(r, 204, NULL, "", 0);
    else if (w->secret != NULL)
        send_with_secret(r, w->status, body, w->secret);
    else
        lt__api_send_json_text(r, w->status, body);
    return;
wipe:
    if (w->secret != NULL)
        lt_wipe(w->secret, strlen(w->secret));
}

static void on_doc_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *doc;
    (void)ctx;
    if (err != NULL) {
        query_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        internal_error(r, "clients statement returned an unexpected row");
        return;
    }
    if (doc == NULL)
        lt_http_problem(r, 404, "not_found", "No such client.");
    else
        lt__api_send_json_text(r, 200, doc);
}

/* {"items": [...], "next_cursor": "..." | null}, as the other admin lists. */
static void on_page_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *items, *key;
    char cursor[LT_ADMIN_CURSOR_MAX + 1];
    lt_buf_t b = LT_BUF_INIT;
    (void)ctx;
    if (err != NULL) {
        query_failed(r, err, res);
        return;
    }
    if (lt_admin_page(res, &items, &key) != 0 || (key != NULL && lt_admin_cursor_encode(key, cursor, sizeof(cursor)) != 0)) {
        internal_error(r, "clients list returned an unexpected row");
        return;
    }
    int rc = lt_buf_appends(&b, "{\"items\":");
    rc = rc ? rc : lt_buf_appends(&b, items);
    rc = rc ? rc : lt_buf_appends(&b, ",\"next_cursor\":");
    rc = rc ? rc : key != NULL ? lt_buf_appendf(&b, "\"%s\"}", cursor) : lt_buf_appends(&b, "null}");
    if (rc != 0)
        internal_error(r, "out of memory rendering a page");
    else
        lt_http_send(r, 200, "application/json", b.base, b.len);
    lt_buf_free(&b);
}

/* ---- the caller's session, then the statement ------------------------------------------ */

typedef struct {
    const lt_store_stmt_t *stmt;
    char *params[MAX_PARAMS];
    int nparams;
    lt_api_query_cb cb;
    void *ctx;
} pending_t;

static void on_caller_checked(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    pending_t *p = ctx;
    const char *live;
    if (err != NULL) {
        query_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &live) != 0) {
        internal_error(r, "session check returned an unexpected row");
        return;
    }
    if (live == NULL || strcmp(live, "t") != 0) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The session of this access token has ended.");
        return;
    }
    lt__api_query(r, p->stmt, (const char *const *)p->params, p->nparams, p->cb, p->ctx);
}

/* Runs `stmt` once the caller's session is confirmed live (an access token outlives a
 * disabled admin and ended sessions; admin rights must not). */
static void admin_run(lt_req_t *r, const caller_t *c, const lt_store_stmt_t *stmt, const char *const *params,
                      int nparams, lt_api_query_cb cb, void *ctx)
{
    if (nparams > MAX_PARAMS) {
        internal_error(r, "clients statement with too many parameters");
        return;
    }
    pending_t *p = h2o_mem_alloc_pool(&r->req->pool, sizeof(*p));
    p->stmt = stmt;
    p->nparams = nparams;
    p->cb = cb;
    p->ctx = ctx;
    for (int i = 0; i < nparams; i++)
        p->params[i] = params[i] != NULL ? pool_strdup(r, params[i]) : NULL;
    const char *live[] = {c->t->sid, c->t->sub, c->t->tenant};
    lt__api_query(r, &lt_admin_stmts[LT_ADMIN_CALLER_LIVE], live, 3, on_caller_checked, p);
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* A client's list field: the array (default [] when optional and absent), or NULL after
 * recording an error. */
static json_t *list_field(lt_api_in_t *in, const char *name, lt_client_list_kind_t kind, int required)
{
    const char *why;
    json_t *v = lt__api_in_arr(in, name, required);
    if (v == NULL)
        return !required && json_object_get(in->body, name) == NULL ? json_array() : NULL;
    if (lt_client_list_check(v, kind, &why) != 0) {
        lt__api_in_error(in, name, why);
        return NULL;
    }
    return json_incref(v);
}

static int on_create(lt_req_t *r)
{
    caller_t c;
    lt_api_in_t in;
    const char *why;
    json_t *grants = NULL, *scopes = NULL, *perms = NULL;
    char id[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    if (caller_get(r, &c) != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    const char *name = lt__api_in_str(&in, "name", 1, LT_CLIENT_NAME_MAX * 4);
    const char *tenant_id = lt__api_in_str(&in, "tenant_id", 0, 64);
    grants = list_field(&in, "grant_types", LT_CLIENT_LIST_GRANTS, 1);
    scopes = list_field(&in, "scopes", LT_CLIENT_LIST_SCOPES, 0);
    perms = list_field(&in, "permissions", LT_CLIENT_LIST_PERMISSIONS, 0);
    if (name != NULL && (why = lt_client_name_problem(name)) != NULL)
        lt__api_in_error(&in, "name", why);
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&in, "tenant_id", "must be a UUID");
    if (lt__api_in_done(r, &in) != 0)
        goto done;
    const char *g = pool_json(r, grants), *s = pool_json(r, scopes), *p = pool_json(r, perms);
    if (g == NULL || s == NULL || p == NULL) {
        internal_error(r, "out of memory serialising a new client");
        goto done;
    }
    if (lt_client_credentials_new(id, secret, hash) != 0) {
        internal_error(r, "no randomness for a client's credentials");
        goto done;
    }
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 201;
    w->secret = pool_secret(r, secret);
    lt_wipe(secret, sizeof(secret));
    /* A tenant admin naming another tenant meets the scope check in SQL: 404. */
    const char *params[] = {c.scope, tenant_id != NULL ? tenant_id : c.t->tenant, id, hash, name, g, s, p,
                            c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_clients_stmt_create, params, 11, on_write_done, w);
done:
    json_decref(grants);
    json_decref(scopes);
    json_decref(perms);
    return 0;
}

static int on_list(lt_req_t *r)
{
    caller_t c;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    char us[20], after_id[LT_ADMIN_UUID_LEN + 1], limit_buf[8];
    const char *after_us = NULL, *after = NULL;
    if (caller_get(r, &c) != 0)
        return 0;
    const char *limit = lt_req_query(r, "limit"), *cursor = lt_req_query(r, "cursor");
    const char *tenant_id = lt_req_query(r, "tenant_id");
    strcpy(limit_buf, LIMIT_DEFAULT);
    if (limit != NULL) {
        size_t n = strlen(limit);
        long v = n >= 1 && n <= 3 && strspn(limit, "0123456789") == n ? strtol(limit, NULL, 10) : -1;
        if (v < 1 || v > LIMIT_MAX)
            lt__api_in_error(&q, "limit", "must be an integer from 1 to 200");
        else
            snprintf(limit_buf, sizeof(limit_buf), "%ld", v);
    }
    if (cursor != NULL) {
        if (lt_admin_cursor_decode(cursor, us, after_id) != 0) {
            lt__api_in_error(&q, "cursor", "is not a cursor this service returned");
        } else {
            after_us = us;
            after = after_id;
        }
    }
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&q, "tenant_id", "must be a UUID");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, tenant_id, after_us, after, limit_buf};
    admin_run(r, &c, &lt_clients_stmt_list, params, 5, on_page_done, NULL);
    return 0;
}

static int on_get(lt_req_t *r)
{
    caller_t c;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r)) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    admin_run(r, &c, &lt_clients_stmt_get, params, 2, on_doc_done, NULL);
    return 0;
}

static int on_delete(lt_req_t *r)
{
    caller_t c;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r)) == NULL)
        return 0;
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 204;
    w->secret = NULL;
    const char *params[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_clients_stmt_delete, params, 5, on_write_done, w);
    return 0;
}

/* No body is read (any sent is ignored), as for the user actions. */
static int on_rotate_secret(lt_req_t *r)
{
    caller_t c;
    const char *id;
    char cid[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    if (caller_get(r, &c) != 0 || (id = path_id(r)) == NULL)
        return 0;
    /* Only the secret is used; the fresh id goes unused. */
    if (lt_client_credentials_new(cid, secret, hash) != 0) {
        internal_error(r, "no randomness for a client's secret");
        return 0;
    }
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 200;
    w->secret = pool_secret(r, secret);
    lt_wipe(secret, sizeof(secret));
    const char *params[] = {c.scope, id, hash, c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_clients_stmt_rotate_secret, params, 6, on_write_done, w);
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

int lt__api_clients_routes(lt_api_t *api, lt_router_t *router)
{
    int ret;
    (void)api;
    /* The statements are registered here rather than beside lt__api_admin_statements (which
     * would need internal.h to grow a declaration): routes are registered at start-up, before
     * any worker creates its store, which is all lt_store_stmt_register asks for.
     * lt_clients_statements is idempotent, so an earlier call from api.c is harmless. */
    if ((ret = lt_clients_statements()) != 0)
        return ret;
    ret = lt_router_add(router, "POST", "/v1/admin/clients", on_create, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/clients", on_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/clients/{id}", on_get, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/clients/{id}", on_delete, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/clients/{id}/secret", on_rotate_secret, 0);
    return ret;
}
