/*
 * bodies: the validation of request bodies and request headers, taken out of the handlers
 * so it runs without h2o. The handlers call these; tests/fuzz runs them directly
 * (fuzz_body_*, fuzz_authzen, fuzz_form, fuzz_forward_auth).
 *
 * The body functions take a parsed JSON object in `in` (lt__api_body_read's), read their
 * fields with lt__api_in_*, record every problem in `in`, and fill their output with values
 * borrowed from in->body. The handler then calls lt__api_in_done (lt__api_in_finish without
 * a request): only when it passes is the output meaningful.
 */
#ifndef LT_API_BODIES_H
#define LT_API_BODIES_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "api/internal.h"

/* ---- auth.c --------------------------------------------------------------------------- */

/* POST /v1/auth/login: {tenant, email, password}. */
void lt__api_login_in(lt_api_in_t *in, const char **tenant, const char **email, const char **password);
/* POST /v1/auth/password: {current_password, new_password}. */
void lt__api_password_change_in(lt_api_in_t *in, const char **current, const char **next);
/* POST /v1/auth/password-reset: {tenant, email}. */
void lt__api_reset_request_in(lt_api_in_t *in, const char **tenant, const char **email);
/* POST /v1/auth/password-reset/confirm: {token, new_password}. */
void lt__api_reset_confirm_in(lt_api_in_t *in, const char **token, const char **password);

/* ---- mfa.c ---------------------------------------------------------------------------- */

/* POST /v1/auth/mfa/verify: {mfa_token, code | recovery_code}. */
void lt__api_mfa_verify_in(lt_api_in_t *in, const char **token, const char **code, const char **recovery);

/* ---- access.c ------------------------------------------------------------------------- */

/*
 * The answer to an AuthZEN body (`batch`: POST /access/v1/evaluations, else /evaluation)
 * from `snap` in `tenant` at `now_us`. @return 0 with *out the response document (caller's);
 * LT_EINVAL with *field and *why naming the member (a 400); LT_ENOMEM.
 */
int lt__api_authzen(const lt_policy_snapshot_t *snap, const char *tenant, const json_t *body, int batch, int64_t now_us,
                    json_t **out, const char **field, const char **why);

/* ---- oauth.c -------------------------------------------------------------------------- */

/*
 * An application/x-www-form-urlencoded body (`len` bytes at `body`) into `f`, the decoded
 * names and values NUL-terminated in `arena` (len + 2 * (LT_API_FORM_MAX + 1) bytes).
 * @return 0, or -1 with `err` (an invalid_request description) set.
 */
int lt__api_form_parse(const char *body, size_t len, char *arena, lt_api_form_t *f, char *err, size_t errlen);

/* ---- admin.c, admin_clients.c --------------------------------------------------------- */

void lt__api_tenant_create_in(lt_api_in_t *in, const char **name, const char **display);
/* @return the settings patch when given and valid, else NULL. */
json_t *lt__api_tenant_patch_in(lt_api_in_t *in, const char **display);

typedef struct {
    const char *email, *password, *password_hash, *tenant_id;
    json_t *attributes;
} lt_api_user_in_t;
/* POST /v1/admin/users; the normalised email goes to `email` (cap bytes). @return the
 * roles (a new reference: json_decref it), NULL after an error. */
json_t *lt__api_user_create_in(lt_api_in_t *in, lt_api_user_in_t *o, char *email, size_t cap);

typedef struct {
    const char *name, *tenant_id;
    json_t *grants, *scopes, *perms; /* new references (NULL after an error): json_decref them */
} lt_api_client_in_t;
void lt__api_client_create_in(lt_api_in_t *in, lt_api_client_in_t *o);

/* ---- admin_policy.c ------------------------------------------------------------------- */

typedef struct {
    const char *name, *description;
    const json_t *permissions, *parents; /* distinct valid strings; NULL when absent */
    const char *tenant;                  /* where it goes (create); NULL: global */
} lt_api_role_in_t;
/* POST (`create`) or PATCH /v1/admin/roles for caller `c`. */
void lt__api_role_in(lt_api_in_t *in, const lt_api_caller_t *c, int create, lt_api_role_in_t *o);
/* PUT /v1/admin/{users,clients}/{id}/roles: the role names. */
const json_t *lt__api_subject_roles_in(lt_api_in_t *in);
/* A string list as a PostgreSQL text[] literal appended to `b`. @return 0 or LT_ENOMEM. */
int lt__api_text_literal(const json_t *a, lt_buf_t *b);

typedef struct {
    json_t *document;
    const char *tenant, *type;
} lt_api_policy_put_in_t;
void lt__api_policy_put_in(lt_api_in_t *in, const lt_api_caller_t *c, lt_api_policy_put_in_t *o);
/* The document's problems as PUT answers them (empty: valid); NULL on ENOMEM. */
json_t *lt__api_policy_problems(const lt_api_policy_put_in_t *o);
/* POST /v1/admin/policies/{id}/rollback: the version (0 after an error). */
long lt__api_rollback_in(lt_api_in_t *in);
/* POST /v1/admin/policies/test: the cases (NULL after an error). */
json_t *lt__api_policy_cases_in(lt_api_in_t *in);

/* ---- forward_auth.c ------------------------------------------------------------------- */

typedef struct {
    const char *p;
    size_t n;
} lt_api_text_t;

/*
 * The original request's URI and method from the request's headers (X-Forwarded-Uri,
 * X-Original-URI, X-Forwarded-Method, X-Original-Method) and, behind Envoy, this request's
 * own (p NULL when absent). @return 0 (both set), or -1 with a static `why` (a 400).
 */
int lt__api_fa_original(const h2o_headers_t *h, lt_api_text_t own_uri, lt_api_text_t own_method,
                        lt_api_text_t *uri, lt_api_text_t *method, const char **why);
/* The first cookie `name` in the Cookie headers: 1 (value in *out), else 0. */
int lt__api_fa_cookie(const h2o_headers_t *h, const char *name, lt_api_text_t *out);

#endif
