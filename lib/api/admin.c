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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/bodies.h"
#include "api/internal.h"
#include "identity/admin.h"
#include "identity/auth.h"
#include "mfa/mfa.h"

#define DISPLAY_NAME_MAX 200 /* characters; the column's CHECK */

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

/* Completion of a write statement; ctx is the success status (200 or 201). */
static void on_write_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    lt_admin_code_t code;
    const char *body;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_result(res, &code, &body) != 0) {
        lt__api_internal_error(r, "admin statement returned an unexpected row");
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
    lt__api_internal_error(r, "admin statement returned an unknown code");
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

/* ---- request bodies (free of h2o: tests/fuzz/fuzz_body_admin.c runs them) ------------- */

void lt__api_tenant_create_in(lt_api_in_t *in, const char **name, const char **display)
{
    const char *why;
    *name = lt__api_in_str(in, "name", 1, 63);
    *display = lt__api_in_str(in, "display_name", 0, DISPLAY_NAME_MAX * 4);
    if (*name != NULL && !lt_admin_tenant_name_ok(*name))
        lt__api_in_error(in, "name", "must be 1 to 63 of a-z, 0-9 and '-', not starting with '-'");
    if (*display != NULL && (why = display_name_problem(*display)) != NULL)
        lt__api_in_error(in, "display_name", why);
}

static int on_tenant_create(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    if (lt__api_admin_caller(r, &c, "latch:tenants:create") != 0)
        return 0;
    if (c.scope != NULL) { /* a privileged permission: only global roles grant it */
        lt_http_problem(r, 403, "forbidden", "Creating tenants needs the global_admin role.");
        return 0;
    }
    if (lt__api_body_read(r, &in) != 0)
        return 0;
    const char *name, *display;
    lt__api_tenant_create_in(&in, &name, &display);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *params[] = {name, display, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_CREATE], params, 5, on_write_done, (void *)(intptr_t)201);
    return 0;
}

static int on_tenant_list(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_page_t p;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    if (lt__api_admin_caller(r, &c, "latch:tenants:read") != 0)
        return 0;
    lt__api_page_parse(r, &p, &q);
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *params[] = {c.scope, p.after_us, p.after_id, p.limit};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_LIST], params, 4, lt__api_admin_page_done, NULL);
    return 0;
}

static int on_tenant_get(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:tenants:read") != 0 || (id = path_id(r, "No such tenant.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_GET], params, 2, lt__api_admin_doc_done, (void *)"No such tenant.");
    return 0;
}

static int known_setting(const char *key)
{
    static const char *const known[] = {"mfa", "totp_algorithm", "totp_digits", "totp_period", "totp_issuer"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(key, known[i]) == 0)
            return 1;
    return 0;
}

/*
 * Validates a tenant settings patch: only the known keys, each a valid value or null (back
 * to the default). Problems are recorded as settings.<key>. @return 0, or -1 after
 * recording an error.
 */
static int settings_check(lt_api_in_t *in, json_t *settings)
{
    static const char *const mfa_modes[] = {"off", "optional", "required"};
    const char *key;
    json_t *v;
    char field[64];
    int bad = 0;
    json_object_foreach(settings, key, v) {
        const char *why = NULL;
        const char *str = json_string_value(v);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        lt_mfa_alg_t alg;
        if (!known_setting(key))
            why = "is not a known setting";
        else if (json_is_null(v))
            why = NULL; /* back to the default */
        else if (strcmp(key, "mfa") == 0)
            why = str != NULL && (strcmp(str, mfa_modes[0]) == 0 || strcmp(str, mfa_modes[1]) == 0 ||
                                  strcmp(str, mfa_modes[2]) == 0)
                      ? NULL
                      : "must be off, optional or required";
        else if (strcmp(key, "totp_algorithm") == 0)
            why = str != NULL && lt_mfa_alg_parse(str, &alg) == 0 ? NULL : "must be SHA1, SHA256 or SHA512";
        else if (strcmp(key, "totp_digits") == 0)
            why = n >= LT_MFA_DIGITS_MIN && n <= LT_MFA_DIGITS_MAX ? NULL : "must be an integer from 6 to 8";
        else if (strcmp(key, "totp_period") == 0)
            why = n >= LT_MFA_PERIOD_MIN && n <= LT_MFA_PERIOD_MAX ? NULL : "must be an integer from 15 to 120 (seconds)";
        else if (strcmp(key, "totp_issuer") == 0)
            why = str == NULL || str[0] == '\0' || strchr(str, ':') != NULL || display_name_problem(str) != NULL ||
                          lt_utf8_count(str, strlen(str)) > 64
                      ? "must be 1 to 64 characters without ':' or control characters"
                      : NULL;
        if (why != NULL) {
            snprintf(field, sizeof(field), "settings.%.50s", key);
            lt__api_in_error(in, field, why);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

json_t *lt__api_tenant_patch_in(lt_api_in_t *in, const char **display)
{
    const char *why;
    *display = lt__api_in_str(in, "display_name", 0, DISPLAY_NAME_MAX * 4);
    json_t *settings = lt__api_in_obj(in, "settings", 0);
    if (*display != NULL && (why = display_name_problem(*display)) != NULL)
        lt__api_in_error(in, "display_name", why);
    return settings != NULL && settings_check(in, settings) == 0 ? settings : NULL;
}

static int on_tenant_patch(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:tenants:write") != 0 || (id = path_id(r, "No such tenant.")) == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    const char *display, *patch = NULL;
    json_t *settings = lt__api_tenant_patch_in(&in, &display);
    const char *origins = lt__api_cors_origins_in(r, &in); /* browser.c */
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    if (settings != NULL && (patch = lt__api_pool_json(r, settings)) == NULL) {
        lt__api_internal_error(r, "out of memory serialising a patch");
        return 0;
    }
    const char *params[] = {c.scope, id, display, patch, origins, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_TENANT_PATCH], params, 8, lt__api_admin_doc_done,
                      (void *)"No such tenant.");
    return 0;
}

/* ---- users: create -------------------------------------------------------------------- */

typedef struct {
    lt_api_caller_t c;
    const char *tenant_id;
    char email[LT_ADMIN_EMAIL_MAX + 1];
    const char *attributes; /* JSON text, or NULL */
    const char *roles;      /* JSON array text */
} user_create_t;

static void user_create_run(lt_req_t *r, user_create_t *u, const char *phc, int imported)
{
    const char *params[] = {u->c.scope, u->tenant_id, u->email, phc, u->attributes, u->roles,
                            imported ? "true" : "false", u->c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &u->c, &lt_admin_stmts[LT_ADMIN_USER_CREATE], params, 10, on_write_done, (void *)(intptr_t)201);
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
        lt__api_internal_error(r, "hashing a new user's password failed");
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

json_t *lt__api_user_create_in(lt_api_in_t *in, lt_api_user_in_t *o, char *email, size_t cap)
{
    const char *why;
    o->email = lt__api_in_str(in, "email", 1, 1024);
    o->password = lt__api_in_str(in, "password", 0, LT_PASSWORD_MAX);
    o->password_hash = lt__api_in_str(in, "password_hash", 0, LT_PHC_MAX);
    o->attributes = lt__api_in_obj(in, "attributes", 0);
    o->tenant_id = lt__api_in_str(in, "tenant_id", 0, 64);
    json_t *roles = roles_parse(in);
    email[0] = '\0';
    if (o->email != NULL && lt_admin_email_check(o->email, email, cap, &why) != 0)
        lt__api_in_error(in, "email", why);
    int has_password = json_object_get(in->body, "password") != NULL;
    int has_phc = json_object_get(in->body, "password_hash") != NULL;
    if (has_password && has_phc)
        lt__api_in_error(in, "password_hash", "give either password or password_hash, not both");
    else if (!has_password && !has_phc)
        lt__api_in_error(in, "password", "one of password or password_hash is required");
    if (o->password_hash != NULL && lt_password_phc_check(o->password_hash) != 0)
        lt__api_in_error(in, "password_hash", "must be an argon2id or argon2i PHC string with sane parameters");
    if (o->tenant_id != NULL && !lt_auth_uuid_ok(o->tenant_id))
        lt__api_in_error(in, "tenant_id", "must be a UUID");
    return roles;
}

static int on_user_create(lt_req_t *r)
{
    lt_api_in_t in;
    json_t *roles = NULL;
    user_create_t *u = h2o_mem_alloc_pool(&r->req->pool, sizeof(*u));
    memset(u, 0, sizeof(*u));
    if (lt__api_admin_caller(r, &u->c, "latch:users:write") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;

    lt_api_user_in_t o;
    roles = lt__api_user_create_in(&in, &o, u->email, sizeof(u->email));
    const char *password = o.password, *phc = o.password_hash, *tenant_id = o.tenant_id;
    json_t *attributes = o.attributes;
    if (lt__api_in_done(r, &in) != 0)
        goto done;

    if (json_array_size(roles) > 0 && !lt__api_user_may(r, u->c.t, "latch:roles:assign")) {
        lt_http_problem(r, 403, "forbidden", "Creating a user with roles needs the permission latch:roles:assign.");
        goto done;
    }
    if (u->c.scope != NULL && roles_have(roles, "global_admin")) {
        lt_http_problem(r, 403, "forbidden", "Only a global admin may grant global_admin.");
        goto done;
    }
    u->tenant_id = tenant_id != NULL ? tenant_id : u->c.t->tenant;
    u->roles = lt__api_pool_json(r, roles);
    u->attributes = attributes != NULL ? lt__api_pool_json(r, attributes) : NULL;
    if (u->roles == NULL || (attributes != NULL && u->attributes == NULL)) {
        lt__api_internal_error(r, "out of memory serialising a new user");
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
    lt_api_caller_t c;
    lt_api_page_t p;
    lt_api_in_t q = {0}; /* query parameters: errors only, no body */
    if (lt__api_admin_caller(r, &c, "latch:users:read") != 0)
        return 0;
    lt__api_page_parse(r, &p, &q);
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
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_LIST], params, 6, lt__api_admin_page_done, NULL);
    return 0;
}

static int on_user_get(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:read") != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_GET], params, 2, lt__api_admin_doc_done, (void *)"No such user.");
    return 0;
}

/* ---- users: change ------------------------------------------------------------------- */

static int on_user_patch(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:write") != 0 || (id = path_id(r, "No such user.")) == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    json_t *attributes = lt__api_in_obj(&in, "attributes", 1);
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    const char *patch = lt__api_pool_json(r, attributes);
    if (patch == NULL) {
        lt__api_internal_error(r, "out of memory serialising a patch");
        return 0;
    }
    const char *params[] = {c.scope, id, patch, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_PATCH], params, 6, on_write_done, (void *)(intptr_t)200);
    return 0;
}

/* The account actions: no body is read (any sent is ignored). */
static int user_action(lt_req_t *r, const char *action)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:users:write") != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    const char *params[] = {c.scope, id, action, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_ACTION], params, 6, on_write_done, (void *)(intptr_t)200);
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
    lt_api_caller_t c;
    const char *id;
    char token[LT_AUTH_TOKEN_LEN + 1], hash[LT_AUTH_HASH_HEX_LEN + 1], ttl[16];
    if (lt__api_admin_caller(r, &c, "latch:users:write") != 0 || (id = path_id(r, "No such user.")) == NULL)
        return 0;
    if (lt_auth_token_new(LT_AUTH_TOKEN_RESET, token, hash) != 0) {
        lt__api_internal_error(r, "no randomness for a reset token");
        return 0;
    }
    snprintf(ttl, sizeof(ttl), "%d", lt__api_worker(r)->api->cfg->password_reset_ttl);
    const char *params[] = {c.scope, id, hash, token, ttl, c.t->sub, lt_req_peer(r), r->request_id};
    /* lt__api_admin_run copies the parameters (and wipes its copies once the store has taken them);
     * the token leaves only through the outbox. */
    lt__api_admin_run(r, &c, &lt_admin_stmts[LT_ADMIN_USER_RESET], params, 8, on_write_done, (void *)(intptr_t)200);
    lt_wipe(token, sizeof(token));
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

int lt__api_admin_statements(void)
{
    int ret = lt_admin_statements();
    return ret ? ret : lt__api_privacy_statements();
}

int lt__api_admin_routes(lt_api_t *api, lt_router_t *router)
{
    int ret = 0;
    (void)api;
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/tenants", on_tenant_create, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_ORIGINS));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/tenants", on_tenant_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/tenants/{id}", on_tenant_get, 0);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/admin/tenants/{id}", on_tenant_patch, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_ORIGINS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users", on_user_create, LT_API_SETTLE(LT_SETTLE_POLICY));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users", on_user_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/users/{id}", on_user_get, 0);
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/admin/users/{id}", on_user_patch, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/disable", on_user_disable, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/enable", on_user_enable, LT_API_SETTLE(LT_SETTLE_POLICY | LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/unlock", on_user_unlock, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/force-password-reset", on_user_force_reset, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/admin/users/{id}/end-sessions", on_user_end_sessions, 0);
    ret = ret ? ret : lt__api_privacy_routes(api, router); /* admin_privacy.c */
    return ret;
}
