/*
 * fuzz_body_auth: the JSON bodies of the sign-in family (lib/api/auth.c, mfa.c) as their
 * handlers validate them (api/bodies.h), then what the handlers do next with the fields
 * without a database: the opaque tokens are hashed (lt_auth_token_hash) as the handlers
 * hash them before their lookup.
 *
 * Input: one selector byte, then the body. Selector % 5:
 *   0 POST /v1/auth/login                    {tenant, email, password}
 *   1 POST /v1/auth/password                 {current_password, new_password}
 *   2 POST /v1/auth/password-reset           {tenant, email}
 *   3 POST /v1/auth/password-reset/confirm   {token, new_password}
 *   4 POST /v1/auth/mfa/verify               {mfa_token, code | recovery_code}
 *
 * Invariants:
 * - validation passes (lt__api_in_finish) exactly when it recorded no error; the errors
 *   are well-formed {field, message} and render as a problem document;
 * - a passing body holds only the endpoint's fields, and every field taken is the body's
 *   own string, non-empty when required, within its limit and without NUL;
 * - mfa/verify passes only with exactly one of code and recovery_code;
 * - token hashing answers 0 or LT_EINVAL, and 0 gives 64 hex digits.
 */
#include <string.h>

#include "api/bodies.h"
#include "fuzz.h"
#include "http/response.h"
#include "identity/auth.h"
#include "identity/password.h"

#define TENANT_MAX 63   /* auth.c */
#define EMAIL_MAX 320   /* auth.c */
#define OPAQUE_MAX 256  /* auth.c, mfa.c */
#define CODE_MAX 64     /* mfa.c */

static void check_hash(lt_auth_token_kind_t kind, const char *token)
{
    char hash[LT_AUTH_HASH_HEX_LEN + 1];
    memset(hash, 'x', sizeof(hash));
    int ret = lt_auth_token_hash(kind, token, strlen(token), hash);
    FUZZ_CHECK(ret == 0 || ret == LT_EINVAL);
    if (ret == 0) {
        FUZZ_CHECK(strlen(hash) == LT_AUTH_HASH_HEX_LEN);
        FUZZ_CHECK(strspn(hash, "0123456789abcdef") == LT_AUTH_HASH_HEX_LEN);
    }
}

static void check_problem(const json_t *errors)
{
    lt_buf_t b = LT_BUF_INIT;
    FUZZ_CHECK(lt_problem_render(&b, 400, "invalid_request", "The request has invalid fields.", (json_t *)errors) == 0);
    json_t *doc = json_loadb(b.base, b.len, 0, NULL);
    FUZZ_CHECK(json_is_object(doc) && json_equal(json_object_get(doc, "errors"), errors));
    json_decref(doc);
    lt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_t *body = fuzz_json_object(data + 1, size - 1);
    if (body == NULL)
        return 0;
    lt_api_in_t in;
    memset(&in, 0, sizeof(in));
    in.body = body;
    const char *a = NULL, *b = NULL, *c = NULL;
    int sel = data[0] % 5;
    switch (sel) {
    case 0:
        lt__api_login_in(&in, &a, &b, &c);
        break;
    case 1:
        lt__api_password_change_in(&in, &a, &b);
        break;
    case 2:
        lt__api_reset_request_in(&in, &a, &b);
        break;
    case 3:
        lt__api_reset_confirm_in(&in, &a, &b);
        break;
    default:
        lt__api_mfa_verify_in(&in, &a, &b, &c);
        break;
    }
    int had_errors = in.errors != NULL;
    int ok = lt__api_in_finish(&in) == 0;
    if (!ok) {
        fuzz_check_errors(in.errors);
        check_problem(in.errors);
        json_decref(in.errors);
        json_decref(body);
        return 0;
    }
    FUZZ_CHECK(!had_errors && in.errors == NULL);
    switch (sel) {
    case 0: {
        static const char *const known[] = {"tenant", "email", "password", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        fuzz_check_str(body, "tenant", a, 1, TENANT_MAX);
        fuzz_check_str(body, "email", b, 1, EMAIL_MAX);
        fuzz_check_str(body, "password", c, 1, LT_PASSWORD_MAX);
        break;
    }
    case 1: {
        static const char *const known[] = {"current_password", "new_password", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        fuzz_check_str(body, "current_password", a, 1, LT_PASSWORD_MAX);
        fuzz_check_str(body, "new_password", b, 1, LT_PASSWORD_MAX);
        break;
    }
    case 2: {
        static const char *const known[] = {"tenant", "email", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        fuzz_check_str(body, "tenant", a, 1, TENANT_MAX);
        fuzz_check_str(body, "email", b, 1, EMAIL_MAX);
        break;
    }
    case 3: {
        static const char *const known[] = {"token", "new_password", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        fuzz_check_str(body, "token", a, 1, OPAQUE_MAX);
        fuzz_check_str(body, "new_password", b, 1, LT_PASSWORD_MAX);
        check_hash(LT_AUTH_TOKEN_RESET, a);
        break;
    }
    default: {
        static const char *const known[] = {"mfa_token", "code", "recovery_code", NULL};
        FUZZ_CHECK(fuzz_only_known(body, known));
        fuzz_check_str(body, "mfa_token", a, 1, OPAQUE_MAX);
        fuzz_check_str(body, "code", b, 0, CODE_MAX);
        fuzz_check_str(body, "recovery_code", c, 0, CODE_MAX);
        FUZZ_CHECK((b == NULL) != (c == NULL));
        check_hash(LT_AUTH_TOKEN_MFA, a);
        break;
    }
    }
    json_decref(body);
    return 0;
}
