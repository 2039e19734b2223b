/*
 * common: what every handler file needs and should not re-invent: JSON body fields with
 * collected validation errors, bearer authentication, and password jobs bound to a
 * request's lifetime.
 *
 * Everything here runs on the request's worker thread. Objects tied to a request live in
 * its pool (h2o_mem_alloc_shared with a dispose callback), so they end with it whether it
 * was answered or reset by the client.
 */
#include <h2o.h>
#include <string.h>

#include "api/internal.h"

/* ---- request bodies ----------------------------------------------------------------- */

typedef struct {
    json_t *json;
} pooled_json_t;

/* Top-level strings may be passwords: overwrite them before jansson frees them. */
static void pooled_json_dispose(void *p)
{
    pooled_json_t *pj = p;
    const char *key;
    json_t *v;
    json_object_foreach(pj->json, key, v)
    {
        if (json_is_string(v))
            lt_wipe((void *)json_string_value(v), json_string_length(v));
    }
    json_decref(pj->json);
}

int lt__api_body_read(lt_req_t *r, lt_api_in_t *in)
{
    json_t *body;
    memset(in, 0, sizeof(*in));
    if (lt_http_read_json(r, &body) != 0)
        return -1;
    pooled_json_t *pj = h2o_mem_alloc_shared(&r->req->pool, sizeof(*pj), pooled_json_dispose);
    pj->json = body;
    in->body = body;
    return 0;
}

void lt__api_in_error(lt_api_in_t *in, const char *field, const char *message)
{
    if (in->errors == NULL)
        in->errors = json_array();
    json_array_append_new(in->errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

static json_t *in_get(lt_api_in_t *in, const char *name, int required)
{
    if (in->nknown < LT_API_IN_MAX_FIELDS)
        in->known[in->nknown++] = name;
    json_t *v = in->body != NULL ? json_object_get(in->body, name) : NULL;
    if (v == NULL && required)
        lt__api_in_error(in, name, "is required");
    return v;
}

const char *lt__api_in_str(lt_api_in_t *in, const char *name, int required, size_t maxlen)
{
    json_t *v = in_get(in, name, required);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        lt__api_in_error(in, name, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n) {
        lt__api_in_error(in, name, "must not contain NUL characters");
        return NULL;
    }
    if (n > maxlen) {
        char msg[64];
        snprintf(msg, sizeof(msg), "must be at most %zu bytes", maxlen);
        lt__api_in_error(in, name, msg);
        return NULL;
    }
    if (required && n == 0) {
        lt__api_in_error(in, name, "must not be empty");
        return NULL;
    }
    return s;
}

json_t *lt__api_in_obj(lt_api_in_t *in, const char *name, int required)
{
    json_t *v = in_get(in, name, required);
    if (v == NULL)
        return NULL;
    if (!json_is_object(v)) {
        lt__api_in_error(in, name, "must be an object");
        return NULL;
    }
    return v;
}

json_t *lt__api_in_arr(lt_api_in_t *in, const char *name, int required)
{
    json_t *v = in_get(in, name, required);
    if (v == NULL)
        return NULL;
    if (!json_is_array(v)) {
        lt__api_in_error(in, name, "must be an array");
        return NULL;
    }
    return v;
}

int lt__api_in_bool(lt_api_in_t *in, const char *name, int def)
{
    json_t *v = in_get(in, name, 0);
    if (v == NULL)
        return def;
    if (!json_is_boolean(v)) {
        lt__api_in_error(in, name, "must be a boolean");
        return -1;
    }
    return json_is_true(v);
}

int lt__api_in_finish(lt_api_in_t *in)
{
    const char *key;
    json_t *v;
    if (in->body != NULL) {
        json_object_foreach(in->body, key, v)
        {
            int known = 0;
            for (int i = 0; i < in->nknown && !known; i++)
                known = strcmp(in->known[i], key) == 0;
            if (!known)
                lt__api_in_error(in, key, "is not a known field");
        }
    }
    if (in->errors == NULL || json_array_size(in->errors) == 0) {
        json_decref(in->errors);
        in->errors = NULL;
        return 0;
    }
    return -1;
}

int lt__api_in_done(lt_req_t *r, lt_api_in_t *in)
{
    if (lt__api_in_finish(in) == 0)
        return 0;
    lt_http_problem_fields(r, 400, "invalid_request", "The request has invalid fields.", in->errors);
    in->errors = NULL;
    return -1;
}

/* ---- bearer tokens ------------------------------------------------------------------ */

static void pooled_token_dispose(void *p)
{
    lt_token_free(p);
}

static void unauthorized(lt_req_t *r, const char *desc)
{
    if (desc == NULL)
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\"");
    else
        lt_http_add_header(r, "www-authenticate", "Bearer realm=\"latch\", error=\"invalid_token\"");
    lt_http_problem(r, 401, "invalid_token", desc != NULL ? desc : "A bearer access token is required.");
}

const lt_token_t *lt__api_bearer(lt_req_t *r)
{
    lt_api_t *api = lt__api_worker(r)->api;
    const char *h = lt_req_header(r, "authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(r, NULL);
        return NULL;
    }
    const char *jwt = h + 7;
    while (*jwt == ' ')
        jwt++;
    lt_token_t *t = h2o_mem_alloc_shared(&r->req->pool, sizeof(*t), pooled_token_dispose);
    memset(t, 0, sizeof(*t));
    lt_token_verify_opts_t o = {.iss = api->cfg->issuer, .aud = api->cfg->audience, .now = (int64_t)(lt_now_ms() / 1000)};
    const char *why = NULL;
    lt_keyring_t *kr = lt__api_ring(r);
    int ret = kr != NULL ? lt_token_verify(kr, jwt, strlen(jwt), &o, t, &why) : LT_ESTATE;
    if (ret != 0) {
        memset(t, 0, sizeof(*t));
        lt_log(LT_LOG_DEBUG, "api", "request %s: bearer token rejected: %s", r->request_id, why != NULL ? why : "error");
        unauthorized(r, "The access token is invalid or expired.");
        return NULL;
    }
    /* These surfaces act for a signed-in user: a service's own token (no session) has no
     * place here, and a revoked session or token is refused without a database trip. */
    if (t->sid == NULL || lt__api_revoked(r, t)) {
        lt_log(LT_LOG_DEBUG, "api", "request %s: bearer token %s refused: %s", r->request_id, t->jti,
               t->sid == NULL ? "no session" : "revoked");
        unauthorized(r, "The access token is invalid or expired.");
        return NULL;
    }
    /* rate limits: this user and its tenant (429 answered: NULL like any refusal) */
    if (lt__api_rl_caller(r, LT_RL_USER, t->sub, t->tenant))
        return NULL;
    return t;
}

/* ---- password jobs ------------------------------------------------------------------ */

typedef struct {
    lt_req_t *r;
    lt_hasher_job_t *job;
    lt_api_hash_cb cb;
    void *ctx;
} bound_job_t;

static void job_cancel(void *data)
{
    bound_job_t *bj = data;
    lt_hasher_cancel(bj->job);
}

static void job_done(const lt_hasher_result_t *res, void *data)
{
    bound_job_t *bj = data;
    bj->r->on_cancel = NULL;
    bj->cb(bj->r, res, bj->ctx);
}

static void overloaded(lt_req_t *r)
{
    lt_http_add_header(r, "retry-after", "1");
    lt_http_problem(r, 503, "overloaded", "Too many password operations are waiting; retry shortly.");
}

int lt__api_shed_password_work(lt_req_t *r)
{
    lt_hasher_stats_t st;
    lt_hasher_get_stats(lt__api_worker(r)->api->hasher, &st);
    if ((size_t)st.queued < st.queue_max)
        return 0;
    overloaded(r);
    return 1;
}

static int job_submitted(lt_req_t *r, bound_job_t *bj, int ret)
{
    if (ret != 0) {
        if (ret == LT_EOVERLOAD) {
            overloaded(r);
        } else if (ret == LT_EINVAL) {
            lt_http_problem(r, 400, "invalid_request", "The password is too long.");
        } else {
            lt_http_problem(r, 503, "unavailable", "The password service is unavailable.");
        }
        return -1;
    }
    r->on_cancel = job_cancel;
    r->cancel_data = bj;
    return 0;
}

static bound_job_t *job_new(lt_req_t *r, lt_api_hash_cb cb, void *ctx)
{
    if (r->on_cancel != NULL) {
        lt_log(LT_LOG_ERROR, "api", "request %s: async work is already in flight", r->request_id);
        return NULL;
    }
    bound_job_t *bj = h2o_mem_alloc_pool(&r->req->pool, sizeof(*bj));
    bj->r = r;
    bj->job = NULL;
    bj->cb = cb;
    bj->ctx = ctx;
    return bj;
}

int lt__api_password_verify(lt_req_t *r, const char *phc, const char *password, size_t n, int rehash, lt_api_hash_cb cb,
                            void *ctx)
{
    bound_job_t *bj = job_new(r, cb, ctx);
    if (bj == NULL)
        return -1;
    int ret = lt_hasher_verify(lt__api_worker(r)->hasher, phc, password, n, rehash, job_done, bj, &bj->job);
    return job_submitted(r, bj, ret);
}

int lt__api_password_hash(lt_req_t *r, const char *field, const char *password, size_t n, const char *email,
                          lt_api_hash_cb cb, void *ctx)
{
    char reason[256];
    if (lt_password_policy_quick(lt__api_worker(r)->api->policy, password, n, reason, sizeof(reason)) != 0) {
        lt_http_problem_fields(r, 400, "weak_password", "The new password does not meet the password policy.",
                               json_pack("[{s:s, s:s}]", "field", field, "message", reason));
        return -1;
    }
    bound_job_t *bj = job_new(r, cb, ctx);
    if (bj == NULL)
        return -1;
    /* The context string makes the pool run the full policy first, off the loop. */
    int ret = lt_hasher_hash(lt__api_worker(r)->hasher, password, n, email != NULL ? email : "", job_done, bj, &bj->job);
    return job_submitted(r, bj, ret);
}

/* ---- JSON helpers ------------------------------------------------------------------- */

json_t *lt__api_json_parse(const char *text)
{
    if (text == NULL)
        return NULL;
    return json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

void lt__api_send_json_text(lt_req_t *r, int status, const char *text)
{
    lt_http_send(r, status, "application/json", text, strlen(text));
}

/* ---- secrets in the request pool ------------------------------------------------------ */

typedef struct {
    size_t size;
    _Alignas(max_align_t) unsigned char data[];
} wiped_box_t;

static void wiped_box_dispose(void *p)
{
    wiped_box_t *b = p;
    lt_wipe(b->data, b->size);
}

void *lt__api_alloc_wiped(lt_req_t *r, size_t size)
{
    wiped_box_t *b = h2o_mem_alloc_shared(&r->req->pool, sizeof(*b) + size, wiped_box_dispose);
    b->size = size;
    memset(b->data, 0, size);
    return b->data;
}

void lt__api_master_key(const lt_config_t *cfg, lt_seal_key_t *k)
{
    k->version = (uint8_t)cfg->master_key_version;
    memcpy(k->key, cfg->master_key, sizeof(k->key));
}
