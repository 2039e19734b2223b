/*
 * admin_common: what the admin surfaces (admin.c, admin_clients.c, keys.c) share: who the
 * caller is and its tenant scope, the session-liveness check that runs before every admin
 * statement, mapping of statement failures to problems, list paging, pool helpers.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "identity/admin.h"
#include "identity/apikeys.h"
#include "identity/auth.h"

#define LIMIT_DEFAULT "50"
#define LIMIT_MAX 200


int lt__api_user_may(lt_req_t *r, const lt_token_t *t, const char *permission)
{
    const char *colon = strrchr(permission, ':');
    if (colon == NULL || colon == permission)
        return 0;
    /* An API key acts with its effective roles only: as a subject the snapshot does not know,
     * so the owner's stored roles cannot widen it. */
    const lt_api_key_caller_t *key = lt__api_key_of_token(t);
    json_t *roles = key == NULL ? (t->roles != NULL ? json_incref(t->roles) : json_array()) : NULL;
    json_t *subject = key != NULL ? lt__api_key_subject(key)
                                  : json_pack("{s:s, s:s, s:{s:o}}", "type", "user", "id", t->sub, "properties", "roles", roles);
    json_t *resource = json_pack("{s:s#}", "type", permission, (int)(colon - permission));
    json_t *action = json_pack("{s:s}", "name", colon + 1);
    lt_policy_decision_t d = {0};
    int allow = subject != NULL && resource != NULL && action != NULL &&
                lt__api_decide(r, t->tenant, subject, action, resource, NULL, 0, &d) == 0 && d.allow;
    json_decref(subject);
    json_decref(resource);
    json_decref(action);
    return allow;
}

int lt__api_admin_caller(lt_req_t *r, lt_api_caller_t *c, const char *permission)
{
    c->key = NULL;
    int kr = lt__api_key_from_request(r, &c->key);
    if (kr == -2)
        return -1;
    if (kr == -1) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The API key is invalid, expired or revoked.");
        return -1;
    }
    c->t = kr == 1 ? &c->key->token : lt__api_bearer(r);
    if (c->t == NULL)
        return -1;
    /* Tokens we issued always carry these as UUIDs; anything else must not reach a cast. */
    if (c->key == NULL &&
        (!lt_auth_uuid_ok(c->t->tenant) || !lt_auth_uuid_ok(c->t->sub) || !lt_auth_uuid_ok(c->t->sid))) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The access token is invalid or expired.");
        return -1;
    }
    if (!lt__api_user_may(r, c->t, permission)) {
        char detail[128];
        snprintf(detail, sizeof(detail), "This operation needs the permission %s.", permission);
        lt_http_problem(r, 403, "forbidden", detail);
        return -1;
    }
    c->scope = lt__api_user_may(r, c->t, "latch:scope:global") ? NULL : c->t->tenant;
    return 0;
}


/* A copy of `s` in the request pool. */
char *lt__api_pool_strdup(lt_req_t *r, const char *s)
{
    size_t n = strlen(s);
    char *p = h2o_mem_alloc_pool(&r->req->pool, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* A JSON value serialised into the request pool; NULL only when out of memory. */
char *lt__api_pool_json(lt_req_t *r, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return NULL;
    char *p = lt__api_pool_strdup(r, s);
    free(s);
    return p;
}

void lt__api_internal_error(lt_req_t *r, const char *what)
{
    lt_log(LT_LOG_ERROR, "api", "request %s: %s", r->request_id, what);
    lt_http_problem(r, 500, "internal_error", "The request could not be completed.");
}

/*
 * A statement failed. Unique violations are races the functions could not absorb (409);
 * data exceptions, check and foreign-key violations mean input slipped past validation (400, never
 * 500 for client input); the server's transient trouble is 503; anything else is our bug
 * (500, logged).
 */
void lt__api_admin_failed(lt_req_t *r, const char *err, PGresult *res)
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
    /* 23503: a reference to something that does not exist (a tenant_id naming no tenant). */
    if (state != NULL && (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0 || strcmp(state, "23503") == 0)) {
        lt_http_problem(r, 400, "invalid_request", "The request holds a value the store does not accept.");
        return;
    }
    /* Deadlock or serialisation (40), resources (53), shutdown or cancel (57), connection
     * (08): the server's trouble, worth a retry. */
    if (state != NULL && (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                          strncmp(state, "57", 2) == 0 || strncmp(state, "08", 2) == 0)) {
        lt_http_add_header(r, "retry-after", "1");
        lt__api_store_problem(r, lt_err_unavailable);
        return;
    }
    /* The primary message only: a DETAIL may quote row values (password hashes). */
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    lt_log(LT_LOG_ERROR, "api", "request %s: admin statement failed: %s %s", r->request_id, state ? state : "-",
           msg ? msg : "-");
    lt_http_problem(r, 500, "internal_error", "The request could not be completed.");
}


/* Completion of a GET by id; ctx is the 404 detail. */
void lt__api_admin_doc_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *doc;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        lt__api_internal_error(r, "admin statement returned an unexpected row");
        return;
    }
    if (doc == NULL)
        lt_http_problem(r, 404, "not_found", ctx);
    else
        lt__api_send_json_text(r, 200, doc);
}

/* Completion of a list: {"items": [...], "next_cursor": "..." | null}. */
void lt__api_admin_page_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *items, *key;
    char cursor[LT_ADMIN_CURSOR_MAX + 1];
    lt_buf_t b = LT_BUF_INIT;
    (void)ctx;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_page(res, &items, &key) != 0 || (key != NULL && lt_admin_cursor_encode(key, cursor, sizeof(cursor)) != 0)) {
        lt__api_internal_error(r, "admin list returned an unexpected row");
        return;
    }
    int rc = lt_buf_appends(&b, "{\"items\":");
    rc = rc ? rc : lt_buf_appends(&b, items);
    rc = rc ? rc : lt_buf_appends(&b, ",\"next_cursor\":");
    rc = rc ? rc : key != NULL ? lt_buf_appendf(&b, "\"%s\"}", cursor) : lt_buf_appends(&b, "null}");
    if (rc != 0)
        lt__api_internal_error(r, "out of memory rendering a page");
    else
        lt_http_send(r, 200, "application/json", b.base, b.len);
    lt_buf_free(&b);
}


/* ---- the caller's session, then the statement ------------------------------------------ */

#define MAX_PARAMS 16

/* A statement waiting for the session check; parameters copied into the request pool. */
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
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &live) != 0) {
        lt__api_internal_error(r, "session check returned an unexpected row");
        return;
    }
    if (live == NULL || strcmp(live, "t") != 0) {
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
        lt_http_problem(r, 401, "invalid_token", "The session of this access token has ended.");
        return;
    }
    lt__api_query(r, p->stmt, (const char *const *)p->params, p->nparams, p->cb, p->ctx);
    /* The store copied them; a reset token among them has no business staying in memory. */
    for (int i = 0; i < p->nparams; i++)
        if (p->params[i] != NULL)
            lt_wipe(p->params[i], strlen(p->params[i]));
}

/* Runs `stmt` for the caller once its session is confirmed live (one query at a time per
 * request: the check, then the statement). */
void lt__api_admin_run(lt_req_t *r, const lt_api_caller_t *c, const lt_store_stmt_t *stmt, const char *const *params,
                      int nparams, lt_api_query_cb cb, void *ctx)
{
    if (nparams > MAX_PARAMS) {
        lt__api_internal_error(r, "admin statement with too many parameters");
        return;
    }
    pending_t *p = h2o_mem_alloc_pool(&r->req->pool, sizeof(*p));
    p->stmt = stmt;
    p->nparams = nparams;
    p->cb = cb;
    p->ctx = ctx;
    for (int i = 0; i < nparams; i++)
        p->params[i] = params[i] != NULL ? lt__api_pool_strdup(r, params[i]) : NULL;
    if (c->key != NULL) { /* the key still live, its owner still active */
        const char *live[] = {c->key->uuid, c->key->tenant};
        lt__api_query(r, &lt_apikeys_stmt_caller_live, live, 2, on_caller_checked, p);
        return;
    }
    const char *live[] = {c->t->sid, c->t->sub, c->t->tenant};
    lt__api_query(r, &lt_admin_stmts[LT_ADMIN_CALLER_LIVE], live, 3, on_caller_checked, p);
}

/* ---- query strings of the lists -------------------------------------------------------- */


/* limit (1..200, default 50) and cursor; problems are recorded in `q`. */
void lt__api_page_parse(lt_req_t *r, lt_api_page_t *p, lt_api_in_t *q)
{
    const char *limit = lt_req_query(r, "limit"), *cursor = lt_req_query(r, "cursor");
    memset(p, 0, sizeof(*p));
    strcpy(p->limit, LIMIT_DEFAULT);
    if (limit != NULL) {
        size_t n = strlen(limit);
        long v = n >= 1 && n <= 3 && strspn(limit, "0123456789") == n ? strtol(limit, NULL, 10) : -1;
        if (v < 1 || v > LIMIT_MAX)
            lt__api_in_error(q, "limit", "must be an integer from 1 to 200");
        else
            snprintf(p->limit, sizeof(p->limit), "%ld", v);
    }
    if (cursor != NULL) {
        if (lt_admin_cursor_decode(cursor, p->us, p->id) != 0) {
            lt__api_in_error(q, "cursor", "is not a cursor this service returned");
        } else {
            p->after_us = p->us;
            p->after_id = p->id;
        }
    }
}

