/*
 * admin_privacy: privacy and incident response (proto/openapi.yaml, tags admin and me).
 *
 *   GET    /v1/admin/users/{id}/export     everything held about a user     latch:users:read
 *   GET    /v1/me/export                   the same, for the bearer itself
 *   DELETE /v1/admin/users/{id}?erase=true erase the user's personal data    latch:users:erase
 *   POST   /v1/admin/users/{id}/lock       end every session, revoke every  latch:users:lock
 *                                          API key, lock, force a reset
 *   GET    /v1/admin/audit                 the audit trail, newest first    latch:audit:read
 *
 * The built-in admin role holds latch:users:* and latch:audit:read, so it may do all of
 * this in its tenant; a custom role can be given export, lock or erase on their own.
 * DELETE without erase=true is refused (400): the only deletion of a user is the erasure,
 * which is irreversible, so a client must say so explicitly.
 *
 * Each request is one statement of identity/privacy (sql/0016_privacy.sql: one round trip,
 * one transaction), after the admin caller checks of admin_common.c. Scoping is as in
 * admin.c: outside the caller's tenant reads as 404.
 *
 * Threading: handlers run on the request's worker thread; state lives in the request pool.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "identity/admin.h"
#include "identity/auth.h"
#include "identity/privacy.h"

#define AUDIT_LIMIT_DEFAULT 50
#define FILTER_MAX 200 /* bytes of an actor/target/user filter: ids, "latchctl", "system" */

/* The path's {id}, or NULL after answering 404 (malformed ids are simply not found). */
static const char *path_id(lt_req_t *r)
{
    const char *id = lt_req_param(r, "id");
    if (id == NULL || !lt_auth_uuid_ok(id)) {
        lt_http_problem(r, 404, "not_found", "No such user.");
        return NULL;
    }
    return id;
}

/* ---- export ------------------------------------------------------------------------------ */

/* Personal data: no cache may keep it (routes are registered without LT_ROUTE_CACHEABLE,
 * so lt_http_send says no-store). */
static void send_export(lt_req_t *r, const char *doc)
{
    lt__api_send_json_text(r, 200, doc);
}

static void on_export_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *doc;
    (void)ctx;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        lt__api_internal_error(r, "export returned an unexpected row");
        return;
    }
    if (doc == NULL)
        lt_http_problem(r, 404, "not_found", "No such user.");
    else
        send_export(r, doc);
}

static int on_user_export(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:read") != 0 || (id = path_id(r)) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_privacy_stmts[LT_PRIVACY_EXPORT], params, 2, on_export_done, NULL);
    return 0;
}

static void on_me_export_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *doc;
    (void)ctx;
    if (err != NULL) {
        lt__api_store_problem(r, err);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        lt__api_internal_error(r, "export returned an unexpected row");
        return;
    }
    if (doc == NULL)
        lt__api_session_ended(r);
    else
        send_export(r, doc);
}

static int on_me_export(lt_req_t *r)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return 0;
    const char *params[] = {t->sid, t->sub, t->tenant};
    (void)lt__api_query(r, &lt_privacy_stmts[LT_PRIVACY_ME_EXPORT], params, 3, on_me_export_done, NULL);
    return 0;
}

/* ---- lock and erase ------------------------------------------------------------------------ */

static void on_action_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    lt_admin_code_t code;
    const char *body;
    (void)ctx;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_result(res, &code, &body) != 0) {
        lt__api_internal_error(r, "privacy statement returned an unexpected row");
        return;
    }
    switch (code) {
    case LT_ADMIN_OK:
        lt__api_send_json_text(r, 200, body);
        return;
    case LT_ADMIN_NOT_FOUND:
        lt_http_problem(r, 404, "not_found", "No such user.");
        return;
    case LT_ADMIN_FORBIDDEN:
        lt_http_problem(r, 403, "forbidden", "Only a global admin may change a global admin.");
        return;
    case LT_ADMIN_CONFLICT:
        lt_http_problem(r, 409, "conflict", "An admin cannot erase itself.");
        return;
    default:
        break;
    }
    lt__api_internal_error(r, "privacy statement returned an unknown code");
}

static int on_user_lock(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:lock") != 0 || (id = path_id(r)) == NULL)
        return 0;
    const char *params[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_privacy_stmts[LT_PRIVACY_LOCK], params, 5, on_action_done, NULL);
    return 0;
}

static int on_user_delete(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:erase") != 0)
        return 0;
    const char *erase = lt_req_query(r, "erase");
    if (erase == NULL || strcmp(erase, "true") != 0) {
        lt_http_problem_fields(r, 400, "invalid_request",
                               "Deleting a user erases its personal data for good; pass erase=true to confirm.",
                               json_pack("[{s:s, s:s}]", "field", "erase", "message", "must be true"));
        return 0;
    }
    if ((id = path_id(r)) == NULL)
        return 0;
    const char *params[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_privacy_stmts[LT_PRIVACY_ERASE], params, 5, on_action_done, NULL);
    return 0;
}

/* ---- the audit query ------------------------------------------------------------------------- */

static void on_audit_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *items, *key;
    char cursor[LT_PRIVACY_CURSOR_MAX + 1];
    lt_buf_t b = LT_BUF_INIT;
    (void)ctx;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_page(res, &items, &key) != 0 || (key != NULL && lt_privacy_cursor_encode(key, cursor, sizeof(cursor)) != 0)) {
        lt__api_internal_error(r, "audit query returned an unexpected row");
        return;
    }
    int rc = lt_buf_appends(&b, "{\"items\":");
    rc = rc ? rc : lt_buf_appends(&b, items);
    rc = rc ? rc : lt_buf_appends(&b, ",\"next_cursor\":");
    rc = rc ? rc : key != NULL ? lt_buf_appendf(&b, "\"%s\"}", cursor) : lt_buf_appends(&b, "null}");
    if (rc != 0) {
        lt__api_internal_error(r, "out of memory rendering a page");
    } else {
        lt_http_send(r, 200, "application/json", b.base, b.len);
    }
    lt_buf_free(&b);
}

/* A text filter: NULL when absent or empty; an error is recorded when it is too long or
 * holds control characters. */
static const char *text_filter(lt_req_t *r, lt_api_in_t *q, const char *name, size_t max)
{
    const char *v = lt_req_query(r, name);
    if (v == NULL || v[0] == '\0')
        return NULL;
    if (strlen(v) > max) {
        lt__api_in_error(q, name, max == FILTER_MAX ? "must be at most 200 bytes" : "must be at most 100 bytes");
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            lt__api_in_error(q, name, "must not contain control characters");
            return NULL;
        }
    }
    return v;
}

static const char *time_filter(lt_req_t *r, lt_api_in_t *q, const char *name)
{
    const char *v = lt_req_query(r, name);
    if (v == NULL || v[0] == '\0')
        return NULL;
    if (!lt_privacy_time_ok(v)) {
        lt__api_in_error(q, name, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z");
        return NULL;
    }
    return v;
}

static int on_audit_query(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    char before[20], limit[8];
    const char *after = NULL;
    if (lt__api_admin_caller(r, &c, "latch:audit:read") != 0)
        return 0;
    const char *tenant_id = lt_req_query(r, "tenant_id");
    if (tenant_id != NULL && tenant_id[0] == '\0')
        tenant_id = NULL;
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&q, "tenant_id", "must be a UUID");
    const char *actor = text_filter(r, &q, "actor", FILTER_MAX);
    const char *target = text_filter(r, &q, "target", FILTER_MAX);
    const char *subject = text_filter(r, &q, "subject", FILTER_MAX);
    const char *user = text_filter(r, &q, "user", FILTER_MAX);
    const char *event = text_filter(r, &q, "event", 100);
    const char *from = time_filter(r, &q, "from"), *to = time_filter(r, &q, "to");
    if (subject != NULL && target != NULL && strcmp(subject, target) != 0)
        lt__api_in_error(&q, "subject", "is another name of target; give one of them");
    if (target == NULL)
        target = subject;

    snprintf(limit, sizeof(limit), "%d", AUDIT_LIMIT_DEFAULT);
    const char *l = lt_req_query(r, "limit"), *cursor = lt_req_query(r, "cursor");
    if (l != NULL) {
        size_t n = strlen(l);
        long v = n >= 1 && n <= 3 && strspn(l, "0123456789") == n ? strtol(l, NULL, 10) : -1;
        if (v < 1 || v > LT_PRIVACY_AUDIT_LIMIT_MAX)
            lt__api_in_error(&q, "limit", "must be an integer from 1 to 500");
        else
            snprintf(limit, sizeof(limit), "%ld", v);
    }
    if (cursor != NULL) {
        if (lt_privacy_cursor_decode(cursor, before) != 0)
            lt__api_in_error(&q, "cursor", "is not a cursor this service returned");
        else
            after = before;
    }
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, tenant_id, actor, target, user, event, from, to, after, limit};
    lt__api_admin_run(r, &c, &lt_privacy_stmts[LT_PRIVACY_AUDIT_QUERY], params, 10, on_audit_done, NULL);
    return 0;
}

/* ---- registration ---------------------------------------------------------------------------- */

int lt__api_privacy_statements(void)
{
    return lt_privacy_statements();
}

int lt__api_privacy_routes(lt_api_t *api, lt_router_t *router)
{
    int ret = 0;
    (void)api;
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users/{id}/export", on_user_export, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/me/export", on_me_export, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/users/{id}", on_user_delete, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/lock", on_user_lock, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/audit", on_audit_query, 0);
    return ret;
}
