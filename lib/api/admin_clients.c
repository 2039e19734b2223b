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

#include "api/bodies.h"
#include "api/internal.h"
#include "identity/admin.h"
#include "identity/auth.h"
#include "identity/clients.h"


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

const char *lt__api_client_path_id(lt_req_t *r)
{
    return path_id(r);
}

/* ---- completions ------------------------------------------------------------------------ */

/* A new secret's copy in the request pool, wiped when the request ends however it ends
 * (answered, failed, or reset by the client before the statement returned). */
static char *pool_secret(lt_req_t *r, const char *secret)
{
    char *p = lt__api_alloc_wiped(r, LT_CLIENT_SECRET_LEN + 1);
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
        lt__api_internal_error(r, "rendering a client with its secret failed");
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
        lt__api_admin_failed(r, err, res);
        goto wipe;
    }
    if (lt_admin_result(res, &code, &body) != 0) {
        lt__api_internal_error(r, "clients statement returned an unexpected row");
        goto wipe;
    }
    if (code == LT_ADMIN_NOT_FOUND) {
        lt_http_problem(r, 404, "not_found", "No such client.");
        goto wipe;
    }
    if (code != LT_ADMIN_OK) {
        lt__api_internal_error(r, "clients statement returned an unknown code");
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

void lt__api_client_create_in(lt_api_in_t *in, lt_api_client_in_t *o)
{
    const char *why;
    o->name = lt__api_in_str(in, "name", 1, LT_CLIENT_NAME_MAX * 4);
    o->tenant_id = lt__api_in_str(in, "tenant_id", 0, 64);
    o->grants = list_field(in, "grant_types", LT_CLIENT_LIST_GRANTS, 1);
    o->scopes = list_field(in, "scopes", LT_CLIENT_LIST_SCOPES, 0);
    o->perms = list_field(in, "permissions", LT_CLIENT_LIST_PERMISSIONS, 0);
    if (o->name != NULL && (why = lt_client_name_problem(o->name)) != NULL)
        lt__api_in_error(in, "name", why);
    if (o->tenant_id != NULL && !lt_auth_uuid_ok(o->tenant_id))
        lt__api_in_error(in, "tenant_id", "must be a UUID");
}

static int on_create(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    lt_api_client_in_t o = {0};
    char id[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    if (lt__api_admin_caller(r, &c, "latch:clients:write") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    lt__api_client_create_in(&in, &o);
    json_t *grants = o.grants, *scopes = o.scopes, *perms = o.perms;
    const char *name = o.name, *tenant_id = o.tenant_id;
    if (lt__api_in_done(r, &in) != 0)
        goto done;
    const char *g = lt__api_pool_json(r, grants), *s = lt__api_pool_json(r, scopes), *p = lt__api_pool_json(r, perms);
    if (g == NULL || s == NULL || p == NULL) {
        lt__api_internal_error(r, "out of memory serialising a new client");
        goto done;
    }
    if (lt_client_credentials_new(id, secret, hash) != 0) {
        lt__api_internal_error(r, "no randomness for a client's credentials");
        goto done;
    }
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 201;
    w->secret = pool_secret(r, secret);
    lt_wipe(secret, sizeof(secret));
    /* A tenant admin naming another tenant meets the scope check in SQL: 404. */
    const char *params[] = {c.scope, tenant_id != NULL ? tenant_id : c.t->tenant, id, hash, name, g, s, p,
                            c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_clients_stmt_create, params, 11, on_write_done, w);
done:
    json_decref(grants);
    json_decref(scopes);
    json_decref(perms);
    return 0;
}

static int on_list(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    lt_api_page_t page;
    if (lt__api_admin_caller(r, &c, "latch:clients:read") != 0)
        return 0;
    lt__api_page_parse(r, &page, &q);
    const char *tenant_id = lt_req_query(r, "tenant_id");
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&q, "tenant_id", "must be a UUID");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, tenant_id, page.after_us, page.after_id, page.limit};
    lt__api_admin_run(r, &c, &lt_clients_stmt_list, params, 5, lt__api_admin_page_done, NULL);
    return 0;
}

static int on_get(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:clients:read") != 0 || (id = path_id(r)) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_clients_stmt_get, params, 2, lt__api_admin_doc_done, (void *)"No such client.");
    return 0;
}

static int on_delete(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:clients:write") != 0 || (id = path_id(r)) == NULL)
        return 0;
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 204;
    w->secret = NULL;
    const char *params[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_clients_stmt_delete, params, 5, on_write_done, w);
    return 0;
}

/* No body is read (any sent is ignored), as for the user actions. */
static int on_rotate_secret(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    char cid[LT_CLIENT_ID_LEN + 1], secret[LT_CLIENT_SECRET_LEN + 1], hash[65];
    if (lt__api_admin_caller(r, &c, "latch:clients:write") != 0 || (id = path_id(r)) == NULL)
        return 0;
    /* Only the secret is used; the fresh id goes unused. */
    if (lt_client_credentials_new(cid, secret, hash) != 0) {
        lt__api_internal_error(r, "no randomness for a client's secret");
        return 0;
    }
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->status = 200;
    w->secret = pool_secret(r, secret);
    lt_wipe(secret, sizeof(secret));
    const char *params[] = {c.scope, id, hash, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_clients_stmt_rotate_secret, params, 6, on_write_done, w);
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
    ret = lt_router_add(router, "POST", "/v1/admin/clients", on_create, LT_API_SETTLE(LT_SETTLE_CLIENTS | LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/clients", on_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/clients/{id}", on_get, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/clients/{id}", on_delete, LT_API_SETTLE(LT_SETTLE_CLIENTS | LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/clients/{id}/secret", on_rotate_secret, LT_API_SETTLE(LT_SETTLE_CLIENTS));
    return ret;
}
