/*
 * admin_policy: roles, their assignment, and policy documents, for operators.
 *
 *   POST   /v1/admin/roles                  {name, description?, permissions?, parents?, tenant_id?, global?}
 *   GET    /v1/admin/roles                  the caller's tenant's roles and the global ones
 *   GET    /v1/admin/roles/{id}
 *   PATCH  /v1/admin/roles/{id}             {description?, permissions?, parents?}
 *   DELETE /v1/admin/roles/{id}
 *   GET|PUT /v1/admin/users/{id}/roles      {roles: [...]} (PUT replaces)
 *   GET|PUT /v1/admin/clients/{id}/roles    likewise, for an OAuth client (its client_id)
 *   PUT    /v1/admin/policies/{id}          {document, tenant_id?, global?} -> a new version
 *   GET    /v1/admin/policies               list; GET/DELETE /v1/admin/policies/{id}
 *   GET    /v1/admin/policies/{id}/versions
 *   POST   /v1/admin/policies/{id}/rollback {version}
 *   POST   /v1/admin/policies/validate      {document} -> {valid, errors}
 *   POST   /v1/admin/policies/test          {cases} -> {passed, failed, results}
 *
 * Where an object lives: the caller's own tenant unless the body (or, for reads, the
 * query) says `tenant_id` (global admins only, else it must be the caller's) or
 * `global: true` (global admins only). Documents are validated here (the condition
 * compiler is in C) before anything is written; the SQL refuses role cycles and unknown
 * parents. Every change reaches every instance's decision snapshot through NOTIFY.
 *
 * Threading: everything runs on the request's worker thread.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "identity/auth.h"
#include "policy/admin.h"

#define NAME_RE_MAX 64
#define DESCRIPTION_MAX 500
#define POLICY_ID_MAX 128

/* ---- small checks -------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > NAME_RE_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr("_:.-", s[i]) != NULL))
            return 0;
    return 1;
}

/* One side of a permission: "*" or 1..64 of [A-Za-z0-9_.-] (the type may also hold ':'). */
static int perm_part_ok(const char *s, size_t n, int type)
{
    if (n == 1 && s[0] == '*')
        return 1;
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-' || (type && c == ':')))
            return 0;
    }
    return 1;
}

/* Split at the last ':', as the engine splits: "latch:users:*" is any action on latch:users. */
static int permission_ok(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    const char *colon = strrchr(s, ':');
    return colon != NULL && perm_part_ok(s, (size_t)(colon - s), 1) && perm_part_ok(colon + 1, strlen(colon + 1), 0);
}

/*
 * A JSON array of distinct strings passing `ok` (borrowed from the body), or NULL when
 * absent or after recording an error in `in`. A string holding a NUL is refused: `ok`
 * and the stored text would see only its part before the NUL.
 */
static const json_t *text_list(lt_api_in_t *in, const char *field, size_t max, int (*ok)(const char *),
                               const char *why)
{
    json_t *a = lt__api_in_arr(in, field, 0);
    if (a == NULL) /* absent, or not an array (recorded) */
        return NULL;
    if (json_array_size(a) > max) {
        lt__api_in_error(in, field, "has too many items");
        return NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        if (s == NULL || strlen(s) != json_string_length(v) || !ok(s)) {
            lt__api_in_error(in, field, why);
            return NULL;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(s, json_string_value(json_array_get(a, k))) == 0) {
                lt__api_in_error(in, field, "must not repeat an item");
                return NULL;
            }
    }
    return a;
}

/* A text_list as a text[] literal (every accepted string is free of ',', '"', '{', '}' and
 * spaces, so no quoting is needed) into `b`. @return 0 or LT_ENOMEM. */
int lt__api_text_literal(const json_t *a, lt_buf_t *b)
{
    size_t i;
    json_t *v;
    int ret = lt_buf_appends(b, "{");
    json_array_foreach(a, i, v) {
        ret = ret ? ret : (i > 0 ? lt_buf_appends(b, ",") : 0);
        ret = ret ? ret : lt_buf_appends(b, json_string_value(v));
    }
    ret = ret ? ret : lt_buf_appends(b, "}");
    return ret != 0 ? LT_ENOMEM : 0;
}

/* A text_list's literal in the request pool; NULL for NULL (absent or refused). */
static const char *text_array(lt_req_t *r, const json_t *a)
{
    lt_buf_t b = LT_BUF_INIT;
    const char *out = a != NULL && lt__api_text_literal(a, &b) == 0 ? lt__api_pool_strdup(r, b.base) : NULL;
    lt_buf_free(&b);
    return out;
}

/*
 * Where the object lives: `global: true` -> NULL (global admins), `tenant_id` -> that
 * tenant (a tenant admin only its own), else the caller's tenant. *where_ok is 0 after an
 * error was recorded in `in` (or `q` for reads).
 */
static const char *placement(const lt_api_caller_t *c, lt_api_in_t *in, const char *tenant_id, int global, int *ok)
{
    *ok = 1;
    if (global) {
        if (c->scope != NULL) {
            lt__api_in_error(in, "global", "global objects need the latch:scope:global permission (global_admin)");
            *ok = 0;
        }
        return NULL;
    }
    if (tenant_id != NULL) {
        if (!lt_auth_uuid_ok(tenant_id) || (c->scope != NULL && strcmp(tenant_id, c->scope) != 0)) {
            lt__api_in_error(in, "tenant_id", "must be the id of your tenant (or any tenant for a global admin)");
            *ok = 0;
        }
        return tenant_id;
    }
    return c->t->tenant;
}

/* The (code, body) rows of the write functions. */
static void on_coded(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        lt__api_internal_error(r, "admin statement returned an unexpected row");
        return;
    }
    const char *code = PQgetvalue(res, 0, 0), *body = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
    if (strcmp(code, "ok") == 0 || strcmp(code, "created") == 0) {
        lt__api_send_json_text(r, strcmp(code, "created") == 0 ? 201 : (int)(intptr_t)ctx, body);
    } else if (strcmp(code, "not_found") == 0) {
        lt_http_problem(r, 404, "not_found", "No such object.");
    } else if (strcmp(code, "conflict") == 0) {
        lt_http_problem(r, 409, "conflict", "A role with this name exists there.");
    } else if (strcmp(code, "forbidden") == 0) {
        lt_http_problem(r, 403, "forbidden", "This object is outside your tenant.");
    } else if (strcmp(code, "builtin") == 0) {
        lt_http_problem(r, 403, "builtin_role", "The built-in roles cannot be changed or deleted.");
    } else if (strcmp(code, "invalid") == 0) {
        json_t *why = lt__api_json_parse(body);
        lt_http_problem(r, 400, "invalid_request", json_is_string(why) ? json_string_value(why) : "Not valid.");
        json_decref(why);
    } else {
        lt__api_internal_error(r, "admin statement returned an unknown code");
    }
}

static const char *path_uuid(lt_req_t *r)
{
    const char *id = lt_req_param(r, "id");
    if (!lt_auth_uuid_ok(id)) {
        lt_http_problem(r, 404, "not_found", "No such object.");
        return NULL;
    }
    return id;
}

/* ---- request bodies (free of h2o: tests/fuzz/fuzz_body_admin.c runs them) --------------- */

void lt__api_role_in(lt_api_in_t *in, const lt_api_caller_t *c, int create, lt_api_role_in_t *o)
{
    memset(o, 0, sizeof(*o));
    o->name = create ? lt__api_in_str(in, "name", 1, NAME_RE_MAX) : NULL;
    o->description = lt__api_in_str(in, "description", 0, DESCRIPTION_MAX * 4);
    o->permissions = text_list(in, "permissions", 200, permission_ok,
                               "items must be \"type:action\" with either side \"*\", or \"*\"");
    o->parents = text_list(in, "parents", 50, name_ok, "items must be role names");
    if (!create)
        return;
    const char *tenant_id = lt__api_in_str(in, "tenant_id", 0, 36);
    int global = lt__api_in_bool(in, "global", 0), ok;
    if (o->name != NULL && !name_ok(o->name))
        lt__api_in_error(in, "name", "must be 1 to 64 of a-z, 0-9, _ : . - starting with a letter");
    o->tenant = placement(c, in, tenant_id, global == 1, &ok);
}

const json_t *lt__api_subject_roles_in(lt_api_in_t *in)
{
    if (json_object_get(in->body, "roles") == NULL)
        lt__api_in_error(in, "roles", "is required");
    return text_list(in, "roles", 50, name_ok, "items must be role names");
}

void lt__api_policy_put_in(lt_api_in_t *in, const lt_api_caller_t *c, lt_api_policy_put_in_t *o)
{
    o->document = lt__api_in_obj(in, "document", 1);
    const char *tenant_id = lt__api_in_str(in, "tenant_id", 0, 36);
    int global = lt__api_in_bool(in, "global", 0), ok;
    o->tenant = placement(c, in, tenant_id, global == 1, &ok);
    o->type = o->document != NULL ? json_string_value(json_object_get(o->document, "resource_type")) : NULL;
    /* The admin API's own resource types are governed by global policies only: a tenant's
     * document could otherwise allow its admins what only global roles grant. */
    if (o->tenant != NULL && o->type != NULL && strncmp(o->type, "latch:", 6) == 0)
        lt__api_in_error(in, "document.resource_type", "latch: resource types take global policies only");
}

json_t *lt__api_policy_problems(const lt_api_policy_put_in_t *o)
{
    json_t *problems = lt_policy_validate(o->document);
    if (problems != NULL && o->type == NULL && json_array_size(problems) == 0)
        json_array_append_new(problems, json_pack("{s:s, s:s}", "where", "/resource_type", "message",
                                                  "is required: a resource type or \"*\""));
    return problems;
}

long lt__api_rollback_in(lt_api_in_t *in)
{
    json_t *v = json_object_get(in->body, "version");
    if (in->nknown < LT_API_IN_MAX_FIELDS)
        in->known[in->nknown++] = "version";
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2147483647) {
        lt__api_in_error(in, "version", "is required: a version number");
        return 0;
    }
    return (long)json_integer_value(v);
}

json_t *lt__api_policy_cases_in(lt_api_in_t *in)
{
    json_t *cases = lt__api_in_arr(in, "cases", 1);
    if (cases != NULL && json_array_size(cases) > 1000) {
        lt__api_in_error(in, "cases", "must hold at most 1000 cases");
        return NULL;
    }
    return cases;
}

/* ---- roles --------------------------------------------------------------------------- */

static int on_role_create(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    if (lt__api_admin_caller(r, &c, "latch:roles:write") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    lt_api_role_in_t o;
    lt__api_role_in(&in, &c, 1, &o);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *perms = text_array(r, o.permissions), *parents = text_array(r, o.parents);
    const char *p[] = {c.scope, o.tenant, o.name, o.description, perms, parents, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLE_CREATE], p, 9, on_coded, (void *)(intptr_t)201);
    return 0;
}

static int on_role_list(lt_req_t *r)
{
    lt_api_caller_t c;
    if (lt__api_admin_caller(r, &c, "latch:roles:read") != 0)
        return 0;
    const char *p[] = {c.scope};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLE_LIST], p, 1, lt__api_admin_doc_done, (void *)"No roles.");
    return 0;
}

static int on_role_get(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:roles:read") != 0 || (id = path_uuid(r)) == NULL)
        return 0;
    const char *p[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLE_GET], p, 2, lt__api_admin_doc_done, (void *)"No such role.");
    return 0;
}

static int on_role_patch(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:roles:write") != 0 || (id = path_uuid(r)) == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    lt_api_role_in_t o;
    lt__api_role_in(&in, &c, 0, &o);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *perms = text_array(r, o.permissions), *parents = text_array(r, o.parents);
    const char *p[] = {c.scope, id, o.description, perms, parents, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLE_PATCH], p, 8, on_coded, (void *)(intptr_t)200);
    return 0;
}

static void on_role_deleted(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    const char *v = err == NULL ? lt_auth_value(res) : NULL;
    if (err != NULL)
        lt__api_admin_failed(r, err, res);
    else if (v != NULL && strcmp(v, "ok") == 0)
        lt_http_send(r, 204, NULL, "", 0);
    else if (v != NULL && strcmp(v, "in_use") == 0)
        lt_http_problem(r, 409, "role_in_use", "Another role inherits this one: remove it from that role's parents first.");
    else if (v != NULL && strcmp(v, "builtin") == 0)
        lt_http_problem(r, 403, "builtin_role", "The built-in roles cannot be changed or deleted.");
    else
        lt_http_problem(r, 404, "not_found", "No such role.");
}

static int on_role_delete(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:roles:write") != 0 || (id = path_uuid(r)) == NULL)
        return 0;
    const char *p[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLE_DELETE], p, 5, on_role_deleted, NULL);
    return 0;
}

/* ---- role assignment ------------------------------------------------------------------ */

static int subject_roles(lt_req_t *r, const char *kind, int put)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id = lt_req_param(r, "id");
    if (lt__api_admin_caller(r, &c, put ? "latch:roles:assign" : "latch:roles:read") != 0)
        return 0;
    if (id == NULL || (strcmp(kind, "user") == 0 ? !lt_auth_uuid_ok(id) : strlen(id) != LT_CLIENT_ID_LEN)) {
        lt_http_problem(r, 404, "not_found", "No such object.");
        return 0;
    }
    if (!put) {
        const char *p[] = {c.scope, kind, id};
        lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_SUBJECT_ROLES], p, 3, lt__api_admin_doc_done,
                          (void *)"No such object.");
        return 0;
    }
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    const json_t *list = lt__api_subject_roles_in(&in);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *roles = text_array(r, list);
    const char *p[] = {c.scope, kind, id, roles != NULL ? roles : "{}", c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_SUBJECT_SET], p, 7, on_coded, (void *)(intptr_t)200);
    return 0;
}

static int on_user_roles_get(lt_req_t *r)
{
    return subject_roles(r, "user", 0);
}

static int on_user_roles_put(lt_req_t *r)
{
    return subject_roles(r, "user", 1);
}

static int on_client_roles_get(lt_req_t *r)
{
    return subject_roles(r, "client", 0);
}

static int on_client_roles_put(lt_req_t *r)
{
    return subject_roles(r, "client", 1);
}

/* ---- policies ------------------------------------------------------------------------ */

static int policy_id_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 1 || n > POLICY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '_' || c == '.' || c == '-'))))
            return 0;
    }
    return 1;
}

static const char *path_policy_id(lt_req_t *r)
{
    const char *id = lt_req_param(r, "id");
    if (!policy_id_ok(id)) {
        lt_http_problem(r, 404, "not_found", "No such policy.");
        return NULL;
    }
    return id;
}

/* 400 with every problem of a document: {field: where, message, line?, column?}. */
static void invalid_policy(lt_req_t *r, json_t *problems)
{
    json_t *errors = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p) {
        const char *where = json_string_value(json_object_get(p, "where"));
        const char *msg = json_string_value(json_object_get(p, "message"));
        json_t *e = json_pack("{s:s, s:s}", "field", where != NULL ? where : "document", "message",
                              msg != NULL ? msg : "is not valid");
        if (json_object_get(p, "line") != NULL) {
            json_object_set(e, "line", json_object_get(p, "line"));
            json_object_set(e, "column", json_object_get(p, "column"));
        }
        json_array_append_new(errors, e);
    }
    json_decref(problems);
    lt_http_problem_fields(r, 400, "invalid_policy", "The policy document is not valid.", errors);
}

static int on_policy_put(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:policies:write") != 0 || (id = path_policy_id(r)) == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    lt_api_policy_put_in_t o;
    lt__api_policy_put_in(&in, &c, &o);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    json_t *problems = lt__api_policy_problems(&o);
    if (problems == NULL) {
        lt__api_internal_error(r, "out of memory validating a policy");
        return 0;
    }
    if (json_array_size(problems) > 0) {
        invalid_policy(r, problems);
        return 0;
    }
    json_decref(problems);
    const char *text = lt__api_pool_json(r, o.document);
    const char *p[] = {c.scope, o.tenant, id, o.type, text, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_PUT], p, 8, on_coded, (void *)(intptr_t)200);
    return 0;
}

/* For reads by id: ?tenant_id= or ?global=true (global admins), else the caller's tenant. */
static int read_placement(lt_req_t *r, const lt_api_caller_t *c, const char **tenant)
{
    lt_api_in_t q = {0};
    const char *tid = lt_req_query(r, "tenant_id"), *g = lt_req_query(r, "global");
    int ok;
    *tenant = placement(c, &q, tid, g != NULL && strcmp(g, "true") == 0, &ok);
    return lt__api_in_done(r, &q);
}

static int policy_read(lt_req_t *r, int stmt, const char *what)
{
    lt_api_caller_t c;
    const char *id, *tenant;
    if (lt__api_admin_caller(r, &c, "latch:policies:read") != 0 || (id = path_policy_id(r)) == NULL || read_placement(r, &c, &tenant) != 0)
        return 0;
    const char *p[] = {c.scope, tenant, id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[stmt], p, 3, lt__api_admin_doc_done, (void *)what);
    return 0;
}

static int on_policy_get(lt_req_t *r)
{
    return policy_read(r, LT_POLICY_GET, "No such policy.");
}

static int on_policy_versions(lt_req_t *r)
{
    return policy_read(r, LT_POLICY_VERSIONS, "No such policy.");
}

static int on_policy_list(lt_req_t *r)
{
    lt_api_caller_t c;
    if (lt__api_admin_caller(r, &c, "latch:policies:read") != 0)
        return 0;
    const char *tid = lt_req_query(r, "tenant_id");
    if (tid != NULL && !lt_auth_uuid_ok(tid)) {
        lt_http_problem_fields(r, 400, "invalid_request", "The request is not valid.",
                               json_pack("[{s:s, s:s}]", "field", "tenant_id", "message", "must be a tenant id"));
        return 0;
    }
    const char *p[] = {c.scope, c.scope == NULL ? tid : NULL};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_LIST], p, 2, lt__api_admin_doc_done, (void *)"No policies.");
    return 0;
}

static int on_policy_rollback(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id, *tenant;
    char version[16];
    if (lt__api_admin_caller(r, &c, "latch:policies:write") != 0 || (id = path_policy_id(r)) == NULL || read_placement(r, &c, &tenant) != 0 ||
        lt__api_body_read(r, &in) != 0)
        return 0;
    long v = lt__api_rollback_in(&in);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    snprintf(version, sizeof(version), "%ld", v);
    const char *p[] = {c.scope, tenant, id, version, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_ROLLBACK], p, 7, on_coded, (void *)(intptr_t)200);
    return 0;
}

static void on_policy_deleted(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    if (err != NULL)
        lt__api_admin_failed(r, err, res);
    else if (lt_auth_value_true(res))
        lt_http_send(r, 204, NULL, "", 0);
    else
        lt_http_problem(r, 404, "not_found", "No such policy.");
}

static int on_policy_delete(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id, *tenant;
    if (lt__api_admin_caller(r, &c, "latch:policies:write") != 0 || (id = path_policy_id(r)) == NULL || read_placement(r, &c, &tenant) != 0)
        return 0;
    const char *p[] = {c.scope, tenant, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_policy_stmts[LT_POLICY_DELETE], p, 6, on_policy_deleted, NULL);
    return 0;
}

static int on_policy_validate(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    if (lt__api_admin_caller(r, &c, "latch:policies:read") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    json_t *doc = lt__api_in_obj(&in, "document", 1);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    json_t *problems = lt_policy_validate(doc);
    if (problems == NULL) {
        lt__api_internal_error(r, "out of memory validating a policy");
        return 0;
    }
    lt_http_send_json(r, 200, json_pack("{s:b, s:o}", "valid", json_array_size(problems) == 0, "errors", problems));
    return 0;
}

static int on_policy_test(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    if (lt__api_admin_caller(r, &c, "latch:policies:read") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    json_t *cases = lt__api_policy_cases_in(&in);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    json_t *out = lt_policy_run_cases(lt__api_worker(r)->snapshot, c.t->tenant, cases, (int64_t)lt_now_ms() * 1000);
    if (out == NULL)
        lt__api_internal_error(r, "out of memory running policy cases");
    else
        lt_http_send_json(r, 200, out);
    return 0;
}

int lt__api_policy_statements(void)
{
    return lt_policy_statements();
}

int lt__api_policy_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = 0;
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/roles", on_role_create, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/roles", on_role_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/roles/{id}", on_role_get, 0);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/admin/roles/{id}", on_role_patch, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/roles/{id}", on_role_delete, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users/{id}/roles", on_user_roles_get, 0);
    ret = ret ? ret : lt_router_add(router, "PUT", "/v1/admin/users/{id}/roles", on_user_roles_put, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/clients/{id}/roles", on_client_roles_get, 0);
    ret = ret ? ret : lt_router_add(router, "PUT", "/v1/admin/clients/{id}/roles", on_client_roles_put, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_CLIENTS));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/policies", on_policy_list, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/policies/validate", on_policy_validate, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/policies/test", on_policy_test, 0);
    ret = ret ? ret : lt_router_add(router, "PUT", "/v1/admin/policies/{id}", on_policy_put, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/policies/{id}", on_policy_get, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/policies/{id}", on_policy_delete, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/policies/{id}/versions", on_policy_versions, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/policies/{id}/rollback", on_policy_rollback, LT_API_SETTLE(LT_SETTLE_POLICY));
    return ret;
}
