/*
 * admin: the operators' REST surface over tenants and users (proto/openapi.yaml, tag admin).
 *
 *   POST /v1/admin/tenants                       create (global admins only)
 *   GET  /v1/admin/tenants[?limit&cursor]        list (a tenant admin sees its own)
 *   GET  /v1/admin/tenants/{id}
 *   POST /v1/admin/users                         create (password hashed here, or an
 *                                                imported argon2id/argon2i PHC)
 *   GET  /v1/admin/users[?email&tenant_id&limit&cursor]
 *   GET  /v1/admin/users/{id}
 *   PATCH /v1/admin/users/{id}                   attributes, JSON Merge Patch (RFC 7396)
 *   POST /v1/admin/users/{id}/disable | enable | unlock | force-password-reset | end-sessions
 *
 * Every request needs a bearer access token with role `admin` or `global_admin`
 * (lt__api_admin). A tenant admin's queries are scoped to the tenant of its token; a global
 * admin's are not. Anything outside the scope answers 404 `not_found` exactly like a
 * missing object, never 403, so an admin cannot probe other tenants. 403 is kept for
 * what the caller can see but may not do (create a tenant, grant global_admin, change a
 * global admin).
 *
 * Flow per request: authenticate, validate everything that can be checked without the
 * database (UUID syntax included: a failed cast would be an error, not a 404), confirm the
 * caller's session is still live (an access token outlives a disabled user, ended sessions
 * and a forced reset by up to its lifetime; admin rights must not), then one statement of
 * identity/admin. User creation with a password runs the hasher job (with the policy)
 * before that. The SQL functions return the response documents ready-made.
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

#define LIMIT_DEFAULT "50"
#define LIMIT_MAX 200
#define DISPLAY_NAME_MAX 200 /* characters; the column's CHECK */

/* Who is calling: the verified token and the tenant its queries are confined to. */
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

/* The path's {id}, or NULL after answering 404 (malformed ids are simply not found). */
static const char *path_id(lt_req_t *r, const char *what)
{
    const char *id = lt_req_param(r, "id");
    if (id == NULL || !lt_auth_uuid_ok(id)) {
        lt_http_problem(r, 404, "not_found", what);
        return NULL;
    }
    return id;
}

/* A copy of `s` in the request pool. */
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

/*
 * A statement failed. Unique violations are races the functions could not absorb (409);
 * data exceptions and check violations mean input slipped past validation (400, never
 * 500 for client input); the server's transient trouble is 503; anything else is our bug
 * (500, logged).
 */
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

/* Completion of a write statement; ctx is the success status (200 or 201). */
static void on_write_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    lt_admin_code_t code;
    const char *body;
    if (err != NULL) {
        query_failed(r, err, res);
        return;
    }
    if (lt_admin_result(res, &code, &body) != 0) {
        internal_error(r, "admin statement returned an unexpected row");
        return;
    }
    switch (code) {
    case LT_ADMIN_OK:
        lt__api_send_json_text(r, (int)(intptr_t)ctx, body);
        return;
    case LT_ADMIN_NOT_FOUND:
        lt_http_problem(r, 404, "not_found", "No such object.");
        return;
    case LT_ADMIN_CONFLICT:
        lt_http_problem(r, 409, "conflict", "A tenant with this name exists.");
        return;
    case LT_ADMIN_EMAIL_TAKEN:
        lt_http_problem(r, 409, "email_taken", "A user with this email exists in the tenant.");
        return;
    case LT_ADMIN_FORBIDDEN:
        lt_http_problem(r, 403, "forbidden", "Only a global admin may change a global admin.");
        return;
    case LT_ADMIN_TOO_LARGE:
        lt_http_problem_fields(r, 400, "invalid_request", "The request has invalid fields.",
                               json_pack("[{s:s, s:s}]", "field", "attributes", "message",
                                         "would make the attributes larger than 64 KiB"));
        return;
    }
    internal_error(r, "admin statement returned an unknown code");
}

/* Completion of a GET by id; ctx is the 404 detail. */
static void on_doc_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    const char *doc;
    if (err != NULL) {
        query_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        internal_error(r, "admin statement returned an unexpected row");
        return;
    }
    if (doc == NULL)
        lt_http_problem(r, 404, "not_found", ctx);
    else
        lt__api_send_json_text(r, 200, doc);
}

/* Completion of a list: {"items": [...], "next_cursor": "..." | null}. */
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
        internal_error(r, "admin list returned an unexpected row");
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

#define MAX_PARAMS 10

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
    /* The store copied them; a reset token among them has no business staying in memory. */
    for (int i = 0; i < p->nparams; i++)
        if (p->params[i] != NULL)
            lt_wipe(p->params[i], strlen(p->params[i]));
}

/* Runs `stmt` for the caller once its session is confirmed live (one query at a time per
 * request: the check, then the statement). */
static void admin_run(lt_req_t *r, const caller_t *c, const lt_store_stmt_t *stmt, const char *const *params,
                      int nparams, lt_api_query_cb cb, void *ctx)
{
    if (nparams > MAX_PARAMS) {
        internal_error(r, "admin statement with too many parameters");
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

/* ---- query strings of the lists -------------------------------------------------------- */

typedef struct {
    char us[20];
    char id[LT_ADMIN_UUID_LEN + 1];
    const char *after_us, *after_id; /* NULL on the first page */
    char limit[8];
} page_t;

/* limit (1..200, default 50) and cursor; problems are recorded in `q`. */
static void page_parse(lt_req_t *r, page_t *p, lt_api_in_t *q)
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

/* ---- tenants ------------------------------------------------------------------------- */

/* Up to DISPLAY_NAME_MAX characters (UTF-8 code points; the parser checked the encoding)
 * and no control characters. */
static const char *display_name_problem(const char *s)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return "must not contain control characters";
        if ((*p & 0xc0) != 0x80)
            chars++;
    }
    return chars > DISPLAY_NAME_MAX ? "must be at most 200 characters" : NULL;
}

static int on_tenant_create(lt_req_t *r)
{
    caller_t c;
    lt_api_in_t in;
    if (caller_get(r, &c) != 0)
        return 0;
    if (c.scope != NULL) {
        lt_http_problem(r, 403, "forbidden", "Creating tenants needs the global_admin role.");
        return 0;
    }
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    const char *name = lt__api_in_str(&in, "name", 1, 63);
    const char *display = lt__api_in_str(&in, "display_name", 0, DISPLAY_NAME_MAX * 4);
    const char *why;
    if (name != NULL && !lt_admin_tenant_name_ok(name))
        lt__api_in_error(&in, "name", "must be 1 to 63 of a-z, 0-9 and '-', not starting with '-'");
    if (display != NULL && (why = display_name_problem(display)) != NULL)
        lt__api_in_error(&in, "display_name", why);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *params[] = {name, display, c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_CREATE], params, 5, on_write_done, (void *)(intptr_t)201);
    return 0;
}

static int on_tenant_list(lt_req_t *r)
{
    caller_t c;
    page_t p;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    if (caller_get(r, &c) != 0)
        return 0;
    page_parse(r, &p, &q);
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, p.after_us, p.after_id, p.limit};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_LIST], params, 4, on_page_done, NULL);
    return 0;
}

static int on_tenant_get(lt_req_t *r)
{
    caller_t c;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r, "No such tenant.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_GET], params, 2, on_doc_done, (void *)"No such tenant.");
    return 0;
}

/* ---- users: create -------------------------------------------------------------------- */

typedef struct {
    caller_t c;
    const char *tenant_id;
    char email[LT_ADMIN_EMAIL_MAX + 1];
    const char *attributes; /* JSON text, or NULL */
    const char *roles;      /* JSON array text */
} user_create_t;

static void user_create_run(lt_req_t *r, user_create_t *u, const char *phc, int imported)
{
    const char *params[] = {u->c.scope, u->tenant_id, u->email, phc, u->attributes, u->roles,
                            imported ? "true" : "false", u->c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &u->c, &lt_admin_stmts[LT_ADMIN_USER_CREATE], params, 10, on_write_done, (void *)(intptr_t)201);
}

static void on_user_hashed(lt_req_t *r, const lt_hasher_result_t *res, void *ctx)
{
    if (res->rejected) {
        lt_http_problem_fields(r, 400, "weak_password", "The password does not meet the password policy.",
                               json_pack("[{s:s, s:s}]", "field", "password", "message",
                                         res->reason != NULL ? res->reason : "is too weak"));
        return;
    }
    if (res->err != 0 || res->phc == NULL) {
        internal_error(r, "hashing a new user's password failed");
        return;
    }
    user_create_run(r, ctx, res->phc, 0);
}

/* roles: an array of built-in role names; NULL after recording an error. */
static json_t *roles_parse(lt_api_in_t *in)
{
    json_t *v = lt__api_in_arr(in, "roles", 0), *e;
    size_t i;
    if (v == NULL) /* absent (no roles) or not an array (error recorded) */
        return json_object_get(in->body, "roles") == NULL ? json_array() : NULL;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        if (s == NULL || (strcmp(s, "admin") != 0 && strcmp(s, "global_admin") != 0)) {
            lt__api_in_error(in, "roles", "may hold only the built-in roles \"admin\" and \"global_admin\"");
            return NULL;
        }
    }
    return json_incref(v);
}

static int roles_have(const json_t *roles, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(roles, i, e)
    {
        if (strcmp(json_string_value(e), name) == 0)
            return 1;
    }
    return 0;
}

static int on_user_create(lt_req_t *r)
{
    lt_api_in_t in;
    const char *why;
    json_t *roles = NULL;
    user_create_t *u = h2o_mem_alloc_pool(&r->req->pool, sizeof(*u));
    memset(u, 0, sizeof(*u));
    if (caller_get(r, &u->c) != 0 || lt__api_body_read(r, &in) != 0)
        return 0;

    const char *email = lt__api_in_str(&in, "email", 1, 1024);
    const char *password = lt__api_in_str(&in, "password", 0, LT_PASSWORD_MAX);
    const char *phc = lt__api_in_str(&in, "password_hash", 0, LT_PHC_MAX);
    json_t *attributes = lt__api_in_obj(&in, "attributes", 0);
    const char *tenant_id = lt__api_in_str(&in, "tenant_id", 0, 64);
    roles = roles_parse(&in);
    if (email != NULL && lt_admin_email_check(email, u->email, sizeof(u->email), &why) != 0)
        lt__api_in_error(&in, "email", why);
    int has_password = json_object_get(in.body, "password") != NULL;
    int has_phc = json_object_get(in.body, "password_hash") != NULL;
    if (has_password && has_phc)
        lt__api_in_error(&in, "password_hash", "give either password or password_hash, not both");
    else if (!has_password && !has_phc)
        lt__api_in_error(&in, "password", "one of password or password_hash is required");
    if (phc != NULL && lt_password_phc_check(phc) != 0)
        lt__api_in_error(&in, "password_hash", "must be an argon2id or argon2i PHC string with sane parameters");
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&in, "tenant_id", "must be a UUID");
    if (lt__api_in_done(r, &in) != 0)
        goto done;

    if (u->c.scope != NULL && roles_have(roles, "global_admin")) {
        lt_http_problem(r, 403, "forbidden", "Only a global admin may grant global_admin.");
        goto done;
    }
    u->tenant_id = tenant_id != NULL ? tenant_id : u->c.t->tenant;
    u->roles = pool_json(r, roles);
    u->attributes = attributes != NULL ? pool_json(r, attributes) : NULL;
    if (u->roles == NULL || (attributes != NULL && u->attributes == NULL)) {
        internal_error(r, "out of memory serialising a new user");
        goto done;
    }
    if (phc != NULL)
        user_create_run(r, u, phc, 1);
    else
        lt__api_password_hash(r, "password", password, strlen(password), u->email, on_user_hashed, u);
done:
    json_decref(roles);
    return 0;
}

/* ---- users: read ----------------------------------------------------------------------- */

static int on_user_list(lt_req_t *r)
{
    caller_t c;
    page_t p;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    if (caller_get(r, &c) != 0)
        return 0;
    page_parse(r, &p, &q);
    const char *email = lt_req_query(r, "email"), *tenant_id = lt_req_query(r, "tenant_id");
    if (email != NULL && strlen(email) > LT_ADMIN_EMAIL_MAX)
        lt__api_in_error(&q, "email", "must be at most 320 bytes");
    if (email != NULL && email[0] == '\0')
        email = NULL;
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&q, "tenant_id", "must be a UUID");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, tenant_id, email, p.after_us, p.after_id, p.limit};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_LIST], params, 6, on_page_done, NULL);
    return 0;
}

static int on_user_get(lt_req_t *r)
{
    caller_t c;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_GET], params, 2, on_doc_done, (void *)"No such user.");
    return 0;
}

/* ---- users: change ------------------------------------------------------------------- */

static int on_user_patch(lt_req_t *r)
{
    caller_t c;
    lt_api_in_t in;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r, "No such user.")) == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    json_t *attributes = lt__api_in_obj(&in, "attributes", 1);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *patch = pool_json(r, attributes);
    if (patch == NULL) {
        internal_error(r, "out of memory serialising a patch");
        return 0;
    }
    const char *params[] = {c.scope, id, patch, c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_PATCH], params, 6, on_write_done, (void *)(intptr_t)200);
    return 0;
}

/* The account actions: no body is read (any sent is ignored). */
static int user_action(lt_req_t *r, const char *action)
{
    caller_t c;
    const char *id;
    if (caller_get(r, &c) != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id, action, c.t->sub, lt_req_peer(r), r->request_id};
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_ACTION], params, 6, on_write_done, (void *)(intptr_t)200);
    return 0;
}

static int on_user_disable(lt_req_t *r)
{
    return user_action(r, "disable");
}

static int on_user_enable(lt_req_t *r)
{
    return user_action(r, "enable");
}

static int on_user_unlock(lt_req_t *r)
{
    return user_action(r, "unlock");
}

static int on_user_end_sessions(lt_req_t *r)
{
    return user_action(r, "end_sessions");
}

static int on_user_force_reset(lt_req_t *r)
{
    caller_t c;
    const char *id;
    char token[LT_AUTH_TOKEN_LEN + 1], hash[LT_AUTH_HASH_HEX_LEN + 1], ttl[16];
    if (caller_get(r, &c) != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    if (lt_auth_token_new(LT_AUTH_TOKEN_RESET, token, hash) != 0) {
        internal_error(r, "no randomness for a reset token");
        return 0;
    }
    snprintf(ttl, sizeof(ttl), "%d", lt__api_worker(r)->api->cfg->password_reset_ttl);
    const char *params[] = {c.scope, id, hash, token, ttl, c.t->sub, lt_req_peer(r), r->request_id};
    /* admin_run copies the parameters (and wipes its copies once the store has taken them);
     * the token leaves only through the outbox. */
    admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_RESET], params, 8, on_write_done, (void *)(intptr_t)200);
    lt_wipe(token, sizeof(token));
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

int lt__api_admin_statements(void)
{
    return lt_admin_statements();
}

int lt__api_admin_routes(lt_api_t *api, lt_router_t *router)
{
    int ret = 0;
    (void)api;
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/tenants", on_tenant_create, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/tenants", on_tenant_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/tenants/{id}", on_tenant_get, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users", on_user_create, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users", on_user_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users/{id}", on_user_get, 0);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/admin/users/{id}", on_user_patch, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/disable", on_user_disable, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/enable", on_user_enable, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/unlock", on_user_unlock, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/force-password-reset", on_user_force_reset, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/end-sessions", on_user_end_sessions, 0);
    return ret;
}
