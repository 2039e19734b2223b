/*
 * apikeys: API keys (identity/apikeys.h) on the HTTP surfaces.
 *
 *   POST   /v1/admin/api-keys          create for a user (user_id) or a client (client_id) of a
 *                                      tenant: 201 with api_key, the only time it is shown
 *   GET    /v1/admin/api-keys[?tenant_id&user_id&client_id&limit&cursor]
 *   GET    /v1/admin/api-keys/{id}     id: the row id (UUID) or the key_id
 *   DELETE /v1/admin/api-keys/{id}     revoke: 204
 *   POST   /v1/me/api-keys             the signed-in user's own key; needs a sign-in within
 *                                      recent_auth_window or {"current_password"}
 *   GET    /v1/me/api-keys[?limit&cursor]
 *   DELETE /v1/me/api-keys/{id}
 * The admin routes need latch:api_keys:read / latch:api_keys:write (the built-in admin role
 * holds both), decided by the policy engine like every admin permission.
 *
 * As a credential, `Authorization: Bearer lt_ak_...` or `X-API-Key: lt_ak_...`:
 *   - /oauth2/introspect and /access/v1/evaluation(s): the key is the caller, in its tenant.
 *     A client's key carries its client's permissions; a user's key may introspect or decide
 *     when its scopes hold "introspect" or "decide".
 *   - forward-auth and the admin API: the key acts as its owner with its effective roles
 *     (the key's roles that its owner holds now, from the policy snapshot), so a key never
 *     exceeds its owner. Decisions see the subject {type: "api_key", id: key_id, roles,
 *     owner_type, owner_id, scopes}; the owner's stored roles never widen it.
 * Keys are verified from the worker's snapshot (no database), refreshed on NOTIFY
 * latch_api_keys, so a revocation reaches every instance within the notification delay.
 *
 * Last use: each worker notes the key ids it verified in a small set and writes them in
 * one UPDATE ... FROM unnest() every api_key_last_used_flush_ms (a set that fills up drops
 * further ids until the flush: last_used_at is a hint, never a per-request write).
 *
 * Threading: handlers and the flush run on the worker's thread; the snapshot holder is
 * shared (locked inside lt_holder_t) and swapped by the control thread.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "http/ratelimit.h"
#include "identity/admin.h"
#include "identity/apikeys.h"
#include "identity/auth.h"

#define USAGE_MAX 4096        /* distinct keys noted per worker between flushes */
#define USAGE_SLOTS 8192      /* hash set slots: a power of two, at most half full */
#define MAX_OWNER_ROLES 256
#define EXPIRES_IN_MAX 315360000 /* ten years, seconds */

/* The token views' acr: pointer identity marks a view as an API key's (lt__api_key_of_token). */
static const char key_acr[] = "api_key";
static const char *const permission_names[] = {"introspect", "decide", "revoke", "revocations"};
#define NPERMS (sizeof(permission_names) / sizeof(permission_names[0]))

static lt_apikeys_t *snapshot_of(lt_req_t *r)
{
    return lt__api_worker(r)->apikeys;
}

/* ---- last use, batched per worker --------------------------------------------------------- */

typedef struct {
    lt_api_worker_t *w;
    h2o_loop_t *loop;
    h2o_timeout_t to;
    h2o_timeout_entry_t tick;
    size_t n;
    char ids[USAGE_MAX][LT_APIKEY_ID_LEN];
    uint16_t slots[USAGE_SLOTS]; /* index + 1 into ids, 0 = empty */
    int in_flight;
    uint64_t m_uses, m_flushes, m_dropped; /* relaxed atomics, read by /metrics on any worker */
} usage_t;

static void usage_note(lt_api_worker_t *w, const char *key_id)
{
    usage_t *u = w->ak_usage;
    if (u == NULL)
        return;
    LT_COUNTER_ADD(u->m_uses, 1);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < LT_APIKEY_ID_LEN; i++)
        h = (h ^ (unsigned char)key_id[i]) * 1099511628211ull;
    for (size_t s = (size_t)h & (USAGE_SLOTS - 1);; s = (s + 1) & (USAGE_SLOTS - 1)) {
        if (u->slots[s] == 0) {
            if (u->n >= USAGE_MAX) {
                LT_COUNTER_ADD(u->m_dropped, 1);
                return;
            }
            memcpy(u->ids[u->n], key_id, LT_APIKEY_ID_LEN);
            u->slots[s] = (uint16_t)(++u->n);
            return;
        }
        if (memcmp(u->ids[u->slots[s] - 1], key_id, LT_APIKEY_ID_LEN) == 0)
            return;
    }
}

static void flush_done(const char *err, PGresult *res, void *data)
{
    usage_t *u = data;
    (void)res;
    u->in_flight = 0;
    if (err != NULL && err != lt_err_closed)
        lt_log(LT_LOG_DEBUG, "api", "worker %d: API key last-use times not written: %s", u->w->id, err);
}

static void flush_tick(h2o_timeout_entry_t *e)
{
    usage_t *u = H2O_STRUCT_FROM_MEMBER(usage_t, tick, e);
    if (u->n > 0 && !u->in_flight) {
        /* A text[] literal: key ids are [a-z2-7], nothing to quote. */
        char *lit = malloc(u->n * (LT_APIKEY_ID_LEN + 1) + 2);
        if (lit != NULL) {
            char *p = lit;
            *p++ = '{';
            for (size_t i = 0; i < u->n; i++) {
                if (i > 0)
                    *p++ = ',';
                memcpy(p, u->ids[i], LT_APIKEY_ID_LEN);
                p += LT_APIKEY_ID_LEN;
            }
            *p++ = '}';
            *p = '\0';
            const char *params[] = {lit};
            if (lt_store_query(u->w->store, &lt_apikeys_stmt_touch, params, 1, flush_done, u, NULL) == 0) {
                u->in_flight = 1;
                LT_COUNTER_ADD(u->m_flushes, 1);
                u->n = 0;
                memset(u->slots, 0, sizeof(u->slots));
            }
            free(lit);
        }
    }
    h2o_timeout_link(u->loop, &u->to, &u->tick);
}

/* ---- the snapshot ------------------------------------------------------------------------- */

static void *holder_ref(void *ks)
{
    return lt_apikeys_ref(ks);
}

static void holder_unref(void *ks)
{
    lt_apikeys_unref(ks);
}

static int load(lt_api_t *api)
{
    char err[256] = "";
    lt_apikeys_t *ks = NULL;
    uint64_t asked = lt__api_settle_asked(api, LT_SETTLE_K_API_KEYS);
    int ret = lt_apikeys_load(api->cfg->database_url, &ks, err, sizeof(err));
    if (ret != 0) {
        lt_log(LT_LOG_WARN, "api", "API keys not loaded: %s%s%s", lt_strerror(ret), err[0] != '\0' ? ": " : "", err);
        return ret;
    }
    lt_log(LT_LOG_DEBUG, "api", "API keys loaded: %zu", lt_apikeys_count(ks));
    lt_holder_set(&api->apikeys, ks);
    lt__api_settle_loaded(api, LT_SETTLE_K_API_KEYS, asked);
    return 0;
}

int lt__api_apikeys_init(lt_api_t *api)
{
    int ret;
    if ((ret = lt_apikeys_statements()) != 0 || (ret = lt_holder_init(&api->apikeys, holder_ref, holder_unref)) != 0)
        return ret;
    if (load(api) != 0) {
        lt_apikeys_t *none = NULL;
        if ((ret = lt_apikeys_empty(&none)) != 0)
            return ret;
        lt_holder_set(&api->apikeys, none);
    }
    return 0;
}

void lt__api_apikeys_reload(lt_api_t *api)
{
    if (load(api) == 0 && api->server != NULL)
        lt_http_server_broadcast(api->server, LT_BC_API_KEYS, "");
}

void lt__api_apikeys_fini(lt_api_t *api)
{
    lt_holder_dispose(&api->apikeys);
}

int lt__api_apikeys_worker_init(lt_api_worker_t *w, struct st_h2o_evloop_t *loop)
{
    usage_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return LT_ENOMEM;
    u->w = w;
    u->loop = loop;
    u->tick.cb = flush_tick;
    h2o_timeout_init(loop, &u->to, (uint64_t)w->api->cfg->api_key_last_used_flush_ms);
    h2o_timeout_link(loop, &u->to, &u->tick);
    w->ak_usage = u;
    w->apikeys = lt_holder_get(&w->api->apikeys);
    return 0;
}

void lt__api_apikeys_worker_notify(lt_api_worker_t *w)
{
    uint64_t done = lt__api_settle_done(w->api, LT_SETTLE_K_API_KEYS);
    lt_apikeys_t *ks = lt_holder_get(&w->api->apikeys);
    if (ks == NULL)
        return;
    if (w->apikeys != NULL)
        lt_apikeys_unref(w->apikeys);
    w->apikeys = ks;
    lt__api_settle_adopted(w, LT_SETTLE_K_API_KEYS, done);
}

void lt__api_apikeys_worker_fini(lt_api_worker_t *w)
{
    usage_t *u = w->ak_usage;
    if (u != NULL) {
        if (h2o_timeout_is_linked(&u->tick))
            h2o_timeout_unlink(&u->tick);
        h2o_timeout_dispose(u->loop, &u->to);
        free(u);
        w->ak_usage = NULL;
    }
    if (w->apikeys != NULL)
        lt_apikeys_unref(w->apikeys);
    w->apikeys = NULL;
}

int lt__api_apikeys_metrics(lt_api_t *api, lt_buf_t *b)
{
    uint64_t uses = 0, flushes = 0, dropped = 0;
    int n = api->server != NULL ? lt_http_server_worker_count(api->server) : 0, ret = 0;
    for (int i = 0; i < n; i++) {
        lt_api_worker_t *w = lt_http_server_worker_app(api->server, i);
        usage_t *u = w != NULL ? w->ak_usage : NULL;
        if (u == NULL)
            continue;
        uses += LT_COUNTER_GET(u->m_uses);
        flushes += LT_COUNTER_GET(u->m_flushes);
        dropped += LT_COUNTER_GET(u->m_dropped);
    }
    lt_apikeys_t *ks = lt_holder_get(&api->apikeys);
    ret |= lt_buf_appendf(b,
                          "# HELP latch_api_keys_live API keys in this instance's snapshot.\n"
                          "# TYPE latch_api_keys_live gauge\nlatch_api_keys_live %zu\n"
                          "# HELP latch_api_key_uses_total Requests authenticated by an API key.\n"
                          "# TYPE latch_api_key_uses_total counter\nlatch_api_key_uses_total %llu\n"
                          "# HELP latch_api_key_last_used_flushes_total Batched last-use writes sent.\n"
                          "# TYPE latch_api_key_last_used_flushes_total counter\n"
                          "latch_api_key_last_used_flushes_total %llu\n"
                          "# HELP latch_api_key_last_used_dropped_total Uses not noted (the batch was full).\n"
                          "# TYPE latch_api_key_last_used_dropped_total counter\n"
                          "latch_api_key_last_used_dropped_total %llu\n",
                          lt_apikeys_count(ks), (unsigned long long)uses, (unsigned long long)flushes,
                          (unsigned long long)dropped);
    lt_apikeys_unref(ks);
    return ret;
}

/* ---- the key as a credential -------------------------------------------------------------- */

typedef struct {
    json_t *j;
} pooled_json_t;

static void pooled_json_dispose(void *p)
{
    json_decref(((pooled_json_t *)p)->j);
}

/* Ties a new reference to the request pool; returns it (borrowed from then on). */
static json_t *pool_own(lt_req_t *r, json_t *j)
{
    if (j == NULL)
        return NULL;
    pooled_json_t *pj = h2o_mem_alloc_shared(&r->req->pool, sizeof(*pj), pooled_json_dispose);
    pj->j = j;
    return j;
}

const lt_api_key_caller_t *lt__api_key_of_token(const lt_token_t *t)
{
    /* The view is the first member of lt_api_key_caller_t. */
    return t != NULL && t->acr == key_acr ? (const lt_api_key_caller_t *)(const void *)t : NULL;
}

/* The value after "Bearer " (spaces skipped), or NULL. */
static const char *bearer_value(const char *h)
{
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

/* The key's roles its owner holds now (the owner's effective roles from the policy snapshot;
 * an owner the snapshot does not know, a disabled user say, holds none). */
static json_t *effective_roles(lt_req_t *r, const lt_apikey_t *k)
{
    const char *held[MAX_OWNER_ROLES];
    lt_api_worker_t *w = lt__api_worker(r);
    size_t n = w->snapshot != NULL ? lt_policy_subject_roles(w->snapshot, k->tenant_id, k->owner_is_client ? "client" : "user",
                                                             k->owner_id, held, MAX_OWNER_ROLES)
                                   : 0;
    json_t *out = json_array();
    for (const char *const *p = k->roles; out != NULL && *p != NULL; p++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(held[i], *p) == 0) {
                json_array_append_new(out, json_string(*p));
                break;
            }
    return out;
}

static char *joined(lt_req_t *r, const char *const *list)
{
    size_t n = 1;
    for (const char *const *p = list; *p != NULL; p++)
        n += strlen(*p) + 1;
    char *s = h2o_mem_alloc_pool(&r->req->pool, n), *at = s;
    for (const char *const *p = list; *p != NULL; p++) {
        if (at != s)
            *at++ = ' ';
        size_t k = strlen(*p);
        memcpy(at, *p, k);
        at += k;
    }
    *at = '\0';
    return s;
}

/* The caller view of verified key `k`, in the request pool. NULL when out of memory. */
static const lt_api_key_caller_t *caller_of(lt_req_t *r, const lt_apikey_t *k)
{
    lt_api_key_caller_t *c = h2o_mem_alloc_pool(&r->req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->key_id = lt__api_pool_strdup(r, k->key_id);
    c->uuid = lt__api_pool_strdup(r, k->uuid);
    c->tenant = lt__api_pool_strdup(r, k->tenant_id);
    c->owner_id = lt__api_pool_strdup(r, k->owner_id);
    c->owner_is_client = k->owner_is_client;
    c->scope = joined(r, k->scopes);
    c->expires_at = k->expires_at;
    c->created_at = k->created_at;
    c->roles = pool_own(r, effective_roles(r, k));
    json_t *amr = pool_own(r, json_pack("[s]", "api_key"));
    if (c->roles == NULL || amr == NULL)
        return NULL;
    /* Permissions: a client's key has its client's; a user's key those its scopes name. */
    const char **perms = h2o_mem_alloc_pool(&r->req->pool, (NPERMS + 1) * sizeof(*perms));
    size_t np = 0;
    const lt_client_t *owner = NULL;
    if (k->owner_is_client) {
        lt_clients_t *cs = lt__api_worker(r)->clients;
        owner = cs != NULL ? lt_clients_find(cs, k->owner_id, strlen(k->owner_id)) : NULL;
    }
    for (size_t i = 0; i < NPERMS; i++)
        if (k->owner_is_client ? lt_client_has_permission(owner, permission_names[i])
                               : lt_apikey_has_scope(k, permission_names[i]))
            perms[np++] = permission_names[i];
    perms[np] = NULL;
    c->permissions = perms;
    lt_token_t *t = &c->token;
    t->sub = c->owner_id;
    t->tenant = c->tenant;
    t->jti = c->key_id;
    t->scope = c->scope;
    t->client_id = k->owner_is_client ? c->owner_id : NULL;
    t->acr = key_acr;
    t->roles = c->roles;
    t->amr = amr;
    t->iat = t->nbf = t->auth_time = k->created_at;
    t->exp = k->expires_at;
    return c;
}

int lt__api_key_from_request(lt_req_t *r, const lt_api_key_caller_t **out)
{
    const h2o_headers_t *hs = &r->req->headers;
    const char *auth = bearer_value(lt_req_header(r, "authorization"));
    const char *given = NULL;
    size_t n = 0;
    int found = 0, twice = 0;
    *out = NULL;
    if (auth != NULL && lt_apikey_looks_like(auth, strlen(auth))) {
        given = auth;
        n = strlen(auth);
        found++;
    }
    for (ssize_t i = -1; (i = h2o_find_header_by_str(hs, H2O_STRLIT("x-api-key"), i)) >= 0;) {
        const h2o_iovec_t *v = &hs->entries[i].value;
        if (!lt_apikey_looks_like(v->base, v->len))
            continue; /* not ours (an upstream's key, say) */
        if (found++ > 0) {
            twice = 1;
            break;
        }
        given = v->base;
        n = v->len;
    }
    if (found == 0)
        return 0;
    const lt_apikey_t *k = NULL;
    int64_t now = (int64_t)(lt_now_ms() / 1000);
    if (twice || lt_apikeys_verify(snapshot_of(r), given, n, now, &k) != 0) {
        lt_log(LT_LOG_DEBUG, "api", "request %s: API key refused: %s", r->request_id,
               twice ? "given twice" : "malformed, unknown, revoked or expired");
        return -1;
    }
    const lt_api_key_caller_t *c = caller_of(r, k);
    if (c == NULL)
        return -1;
    if (lt_http_ratelimit(r, LT_RL_CLIENT, c->key_id, LT_APIKEY_ID_LEN) != 0)
        return -2;
    usage_note(lt__api_worker(r), c->key_id);
    *out = c;
    return 1;
}

json_t *lt__api_key_subject(const lt_api_key_caller_t *k)
{
    json_t *scopes = json_array();
    for (const char *p = k->scope; scopes != NULL && *p != '\0';) {
        size_t len = strcspn(p, " ");
        json_array_append_new(scopes, json_stringn(p, len));
        p += len;
        p += strspn(p, " ");
    }
    return json_pack("{s:s, s:s, s:{s:O, s:s, s:s, s:o?}}", "type", "api_key", "id", k->key_id, "properties", "roles",
                     k->roles, "owner_type", k->owner_is_client ? "client" : "user", "owner_id", k->owner_id, "scopes",
                     scopes);
}

const lt_client_t *lt__api_caller_client(lt_req_t *r, const lt_api_form_t *f)
{
    const lt_api_key_caller_t *k;
    int kr = lt__api_key_from_request(r, &k);
    if (kr == 0)
        return lt__api_client_auth(r, f);
    if (kr == -2)
        return NULL;
    if (kr < 0) {
        lt__api_oauth_error(r, 401, "invalid_client", "Client authentication failed.");
        return NULL;
    }
    if (lt__api_form_get(f, "client_secret") != NULL) {
        lt__api_oauth_error(r, 400, "invalid_request", "Use one client authentication method, not two.");
        return NULL;
    }
    if (k->owner_is_client) {
        /* a client that must sign its requests signs them with its keys too, or a key would
         * be a way around require_signed_requests */
        const lt_clients_t *cs = lt__api_worker(r)->clients;
        const lt_client_t *owner = cs != NULL ? lt_clients_find(cs, k->owner_id, strlen(k->owner_id)) : NULL;
        if (owner != NULL && lt__api_signature_check(r, owner) != 0)
            return NULL;
    }
    lt_client_t *c = h2o_mem_alloc_pool(&r->req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->id = k->owner_is_client ? k->owner_id : k->key_id;
    c->uuid = k->uuid;
    c->tenant_id = k->tenant;
    c->name = k->key_id;
    c->permissions = k->permissions;
    static const char *const none[] = {NULL};
    c->scopes = none;
    return c;
}

void lt__api_key_introspect(lt_req_t *r, const lt_client_t *c, const char *token)
{
    const lt_apikey_t *k = NULL;
    int64_t now = (int64_t)(lt_now_ms() / 1000);
    /* RFC 7662 §2.2: anything not active, or another tenant's, is just inactive. */
    if (lt_apikeys_verify(snapshot_of(r), token, strlen(token), now, &k) != 0 || strcmp(k->tenant_id, c->tenant_id) != 0) {
        lt_http_send(r, 200, "application/json", "{\"active\":false}", 16);
        return;
    }
    json_t *body = json_pack("{s:b, s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:s}", "active", 1, "token_type", "api_key",
                             "sub", k->owner_id, "tenant", k->tenant_id, "scope", joined(r, k->scopes), "roles",
                             effective_roles(r, k), "key_id", k->key_id, "iat", (json_int_t)k->created_at, "iss",
                             lt__api_worker(r)->api->cfg->issuer);
    if (body != NULL && k->owner_is_client)
        json_object_set_new(body, "client_id", json_string(k->owner_id));
    if (body != NULL && k->expires_at != 0)
        json_object_set_new(body, "exp", json_integer((json_int_t)k->expires_at));
    if (body == NULL) {
        lt__api_oauth_error(r, 500, "server_error", NULL);
        return;
    }
    lt_http_send_json(r, 200, body);
}

/* ---- input ------------------------------------------------------------------------------------ */

typedef struct {
    const char *name, *scopes, *roles, *expires_at;
} key_in_t;

static int roles_check(const json_t *arr, const char **why)
{
    size_t i, j;
    json_t *e;
    if (json_array_size(arr) > LT_APIKEY_LIST_MAX) {
        *why = "must hold at most 50 roles";
        return -1;
    }
    json_array_foreach(arr, i, e)
    {
        if (!json_is_string(e) || !lt_apikey_role_ok(json_string_value(e)) ||
            strlen(json_string_value(e)) != json_string_length(e)) {
            *why = "must hold role names (a-z, 0-9, _ : . -, starting with a letter, at most 64)";
            return -1;
        }
        for (j = 0; j < i; j++)
            if (json_equal(json_array_get(arr, j), e)) {
                *why = "must not repeat a value";
                return -1;
            }
    }
    return 0;
}

/* An RFC 3339 date-time with a zone, the shape PostgreSQL then parses; not the calendar. */
static int rfc3339_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; shape[i] != '\0'; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : (shape[i] == 'T' ? (s[i] != 'T' && s[i] != 't') : s[i] != shape[i]))
            return 0;
    if (s[i] == '.') {
        size_t k = ++i;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == k || i - k > 9)
            return 0;
    }
    if (s[i] == 'Z' || s[i] == 'z')
        return s[i + 1] == '\0';
    if ((s[i] == '+' || s[i] == '-') && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' && s[i + 2] <= '9' &&
        s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9' && s[i + 5] >= '0' && s[i + 5] <= '9')
        return s[i + 6] == '\0';
    return 0;
}

/* The fields every create shares; errors recorded in `in`. */
static void key_fields(lt_req_t *r, lt_api_in_t *in, key_in_t *o)
{
    const char *why;
    memset(o, 0, sizeof(*o));
    o->name = lt__api_in_str(in, "name", 1, LT_APIKEY_NAME_MAX * 4);
    if (o->name != NULL && (why = lt_client_name_problem(o->name)) != NULL)
        lt__api_in_error(in, "name", why);
    json_t *scopes = lt__api_in_arr(in, "scopes", 0), *roles = lt__api_in_arr(in, "roles", 0);
    if (scopes != NULL && lt_client_list_check(scopes, LT_CLIENT_LIST_SCOPES, &why) != 0)
        lt__api_in_error(in, "scopes", why);
    else
        o->scopes = scopes != NULL ? lt__api_pool_json(r, scopes) : "[]";
    if (roles != NULL && roles_check(roles, &why) != 0)
        lt__api_in_error(in, "roles", why);
    else
        o->roles = roles != NULL ? lt__api_pool_json(r, roles) : "[]";
    const char *at = lt__api_in_str(in, "expires_at", 0, 64);
    json_t *ein = json_object_get(in->body, "expires_in");
    if (in->nknown < LT_API_IN_MAX_FIELDS)
        in->known[in->nknown++] = "expires_in";
    if (at != NULL && ein != NULL) {
        lt__api_in_error(in, "expires_in", "give expires_at or expires_in, not both");
    } else if (at != NULL) {
        if (!rfc3339_ok(at))
            lt__api_in_error(in, "expires_at", "must be an RFC 3339 date-time with a time zone");
        else
            o->expires_at = at;
    } else if (ein != NULL) {
        json_int_t s = json_is_integer(ein) ? json_integer_value(ein) : -1;
        if (s < 1 || s > EXPIRES_IN_MAX) {
            lt__api_in_error(in, "expires_in", "must be an integer from 1 to 315360000 (seconds)");
        } else {
            time_t t = (time_t)(lt_now_ms() / 1000) + (time_t)s;
            struct tm tm;
            char *buf = h2o_mem_alloc_pool(&r->req->pool, 32);
            gmtime_r(&t, &tm);
            strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
            o->expires_at = buf;
        }
    }
}

/* The new key's text in the request pool, wiped when the request ends however it ends. */
typedef struct {
    char key[LT_APIKEY_LEN + 1];
    char key_id[LT_APIKEY_ID_LEN + 1];
    char hash[65];
} new_key_t;

static new_key_t *new_key(lt_req_t *r)
{
    new_key_t *nk = lt__api_alloc_wiped(r, sizeof(*nk));
    if (lt_apikey_new(nk->key, nk->key_id, nk->hash) != 0) {
        lt__api_unavailable(r, "No randomness is available.");
        return NULL;
    }
    return nk;
}

/* ---- completions ------------------------------------------------------------------------------ */

static void send_with_key(lt_req_t *r, const char *doc, char *key)
{
    json_t *body = lt__api_json_parse(doc);
    char *text = NULL;
    if (body == NULL || json_object_set_new(body, "api_key", json_string(key)) != 0 ||
        (text = json_dumps(body, JSON_COMPACT)) == NULL)
        lt__api_internal_error(r, "rendering an API key failed");
    else
        lt_http_send(r, 201, "application/json", text, strlen(text));
    if (text != NULL) {
        lt_wipe(text, strlen(text));
        free(text);
    }
    json_t *s = body != NULL ? json_object_get(body, "api_key") : NULL;
    if (s != NULL)
        lt_wipe((void *)json_string_value(s), json_string_length(s));
    json_decref(body);
}

typedef struct {
    new_key_t *nk; /* create: the key to show; NULL for a revocation (204) */
    const lt_token_t *t;
    key_in_t in;
    const char *password;
} write_t;

static void write_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    write_t *w = ctx;
    const char *code, *body;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_apikeys_result(res, &code, &body) != 0) {
        lt__api_internal_error(r, "API key statement returned an unexpected row");
    } else if (strcmp(code, "ok") == 0 && body != NULL) {
        if (w->nk != NULL)
            send_with_key(r, body, w->nk->key);
        else
            lt_http_send(r, 204, NULL, "", 0);
    } else if (strcmp(code, "not_found") == 0) {
        lt_http_problem(r, 404, "not_found", w->nk != NULL ? "No such owner in that tenant." : "No such API key.");
    } else if (strcmp(code, "invalid") == 0) {
        json_t *why = lt__api_json_parse(body);
        const char *msg = json_is_string(why) ? json_string_value(why) : "is not accepted";
        const char *field = strstr(msg, "expires") != NULL ? "expires_at" : "roles";
        lt_http_problem_fields(r, 400, "invalid_request", "The request has invalid fields.",
                               json_pack("[{s:s, s:s}]", "field", field, "message", msg));
        json_decref(why);
    } else if (strcmp(code, "unauthorized") == 0) {
        lt__api_session_ended(r);
    } else if (strcmp(code, "reauthentication_required") == 0) {
        lt_http_problem(r, 403, "reauthentication_required",
                        "A new API key needs a recent sign-in: step up, or send current_password.");
    } else {
        lt__api_internal_error(r, "API key statement returned an unknown code");
    }
}

/* ---- admin handlers ---------------------------------------------------------------------------- */

static int key_id_ok(const char *s)
{
    return s != NULL && strlen(s) == LT_APIKEY_ID_LEN && strspn(s, "abcdefghijklmnopqrstuvwxyz234567") == LT_APIKEY_ID_LEN;
}

static const char *path_id(lt_req_t *r)
{
    const char *id = lt_req_param(r, "id");
    if (id == NULL || !(lt_auth_uuid_ok(id) || key_id_ok(id))) {
        lt_http_problem(r, 404, "not_found", "No such API key.");
        return NULL;
    }
    return id;
}

/* A client id of the right shape ("lc_" + 22 base64url). */
static int client_id_ok(const char *s)
{
    return s != NULL && strlen(s) == LT_CLIENT_ID_LEN && strncmp(s, "lc_", 3) == 0 &&
           strspn(s + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == LT_CLIENT_ID_LEN - 3;
}

static int on_admin_create(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t in;
    if (lt__api_admin_caller(r, &c, "latch:api_keys:write") != 0 || lt__api_body_read(r, &in) != 0)
        return 0;
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    memset(w, 0, sizeof(*w));
    const char *tenant_id = lt__api_in_str(&in, "tenant_id", 0, 64);
    const char *user_id = lt__api_in_str(&in, "user_id", 0, 64), *client_id = lt__api_in_str(&in, "client_id", 0, 64);
    key_fields(r, &in, &w->in);
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&in, "tenant_id", "must be a UUID");
    if ((user_id == NULL) == (client_id == NULL))
        lt__api_in_error(&in, user_id == NULL ? "user_id" : "client_id", "name exactly one owner: user_id or client_id");
    else if (user_id != NULL && !lt_auth_uuid_ok(user_id))
        lt__api_in_error(&in, "user_id", "must be a UUID");
    else if (client_id != NULL && !(client_id_ok(client_id) || lt_auth_uuid_ok(client_id)))
        lt__api_in_error(&in, "client_id", "must be a client_id or a client's id");
    if (lt__api_in_done(r, &in) != 0)
        return 0;
    if ((w->nk = new_key(r)) == NULL)
        return 0;
    /* A tenant admin naming another tenant meets the scope check in SQL: 404. */
    const char *p[] = {c.scope,          tenant_id != NULL ? tenant_id : c.t->tenant,
                       user_id != NULL ? "user" : "client",
                       user_id != NULL ? user_id : client_id,
                       w->nk->key_id,    w->nk->hash,
                       w->in.name,       w->in.scopes,
                       w->in.roles,      w->in.expires_at,
                       c.t->sub,         lt_req_peer(r),
                       r->request_id};
    lt__api_admin_run(r, &c, &lt_apikeys_stmt_create, p, 13, write_done, w);
    return 0;
}

static int on_admin_list(lt_req_t *r)
{
    lt_api_caller_t c;
    lt_api_in_t q = {0};
    lt_api_page_t page;
    if (lt__api_admin_caller(r, &c, "latch:api_keys:read") != 0)
        return 0;
    lt__api_page_parse(r, &page, &q);
    const char *tenant_id = lt_req_query(r, "tenant_id"), *user_id = lt_req_query(r, "user_id"),
               *client_id = lt_req_query(r, "client_id");
    if (tenant_id != NULL && !lt_auth_uuid_ok(tenant_id))
        lt__api_in_error(&q, "tenant_id", "must be a UUID");
    if (user_id != NULL && client_id != NULL)
        lt__api_in_error(&q, "client_id", "filter by user_id or client_id, not both");
    else if (user_id != NULL && !lt_auth_uuid_ok(user_id))
        lt__api_in_error(&q, "user_id", "must be a UUID");
    else if (client_id != NULL && !(client_id_ok(client_id) || lt_auth_uuid_ok(client_id)))
        lt__api_in_error(&q, "client_id", "must be a client_id or a client's id");
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *p[] = {c.scope,
                       tenant_id,
                       user_id != NULL ? "user" : client_id != NULL ? "client" : NULL,
                       user_id != NULL ? user_id : client_id,
                       page.after_us,
                       page.after_id,
                       page.limit};
    lt__api_admin_run(r, &c, &lt_apikeys_stmt_list, p, 7, lt__api_admin_page_done, NULL);
    return 0;
}

static int on_admin_get(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:api_keys:read") != 0 || (id = path_id(r)) == NULL)
        return 0;
    const char *p[] = {c.scope, id};
    lt__api_admin_run(r, &c, &lt_apikeys_stmt_get, p, 2, lt__api_admin_doc_done, (void *)"No such API key.");
    return 0;
}

static int on_admin_revoke(lt_req_t *r)
{
    lt_api_caller_t c;
    const char *id;
    if (lt__api_admin_caller(r, &c, "latch:api_keys:write") != 0 || (id = path_id(r)) == NULL)
        return 0;
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    memset(w, 0, sizeof(*w));
    const char *p[] = {c.scope, id, c.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &c, &lt_apikeys_stmt_revoke, p, 5, write_done, w);
    return 0;
}

/* ---- /v1/me handlers ---------------------------------------------------------------------------- */

static void me_create_run(lt_req_t *r, write_t *w, int password_ok)
{
    char window[16];
    snprintf(window, sizeof(window), "%d", lt__api_worker(r)->api->cfg->recent_auth_window);
    const lt_token_t *t = w->t;
    const char *p[] = {t->sid,       t->sub,          t->tenant,    window,          password_ok ? "t" : "f",
                       w->nk->key_id, w->nk->hash,    w->in.name,   w->in.scopes,    w->in.roles,
                       w->in.expires_at, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_apikeys_stmt_me_create, p, 13, write_done, w);
}

static void me_reverified(lt_req_t *r, const char *email, void *ctx)
{
    (void)email;
    me_create_run(r, ctx, 1);
}

static int on_me_create(lt_req_t *r)
{
    lt_api_in_t in;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL || lt__api_body_read(r, &in) != 0)
        return 0;
    write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->t = t;
    key_fields(r, &in, &w->in);
    w->password = lt__api_in_str(&in, "current_password", 0, LT_PASSWORD_MAX);
    if (lt__api_in_done(r, &in) != 0 || (w->nk = new_key(r)) == NULL)
        return 0;
    if (w->password == NULL)
        me_create_run(r, w, 0);
    else if (!lt__api_shed_password_work(r))
        lt__api_reverify_password(r, t, w->password, me_reverified, w);
    return 0;
}

static void me_listed(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    if (err == NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0) {
        lt__api_session_ended(r);
        return;
    }
    lt__api_admin_page_done(r, err, res, ctx);
}

static int on_me_list(lt_req_t *r)
{
    lt_api_in_t q = {0};
    lt_api_page_t page;
    const lt_token_t *t = lt__api_me_bearer(r);
    if (t == NULL)
        return 0;
    lt__api_page_parse(r, &page, &q);
    if (lt__api_in_done(r, &q) != 0)
        return 0;
    const char *p[] = {t->sid, t->sub, t->tenant, page.after_us, page.after_id, page.limit};
    (void)lt__api_query(r, &lt_apikeys_stmt_me_list, p, 6, me_listed, NULL);
    return 0;
}

static void me_revoked(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    (void)ctx;
    const char *v = err == NULL ? lt_auth_value(res) : NULL;
    if (err != NULL)
        lt__api_store_problem(r, err);
    else if (v == NULL)
        lt__api_bad_row(r, "latch_api_key_me_revoke");
    else if (strcmp(v, "ok") == 0)
        lt_http_send(r, 204, NULL, "", 0);
    else if (strcmp(v, "not_found") == 0)
        lt_http_problem(r, 404, "not_found", "No such API key.");
    else if (strcmp(v, "unauthorized") == 0)
        lt__api_session_ended(r);
    else
        lt__api_bad_row(r, "latch_api_key_me_revoke");
}

static int on_me_revoke(lt_req_t *r)
{
    const lt_token_t *t = lt__api_me_bearer(r);
    const char *id;
    if (t == NULL || (id = path_id(r)) == NULL)
        return 0;
    const char *p[] = {t->sid, t->sub, t->tenant, id, lt_req_peer(r), r->request_id};
    (void)lt__api_query(r, &lt_apikeys_stmt_me_revoke, p, 6, me_revoked, NULL);
    return 0;
}

int lt__api_apikeys_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = lt_router_add(router, "POST", "/v1/admin/api-keys", on_admin_create, LT_API_SETTLE(LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/api-keys", on_admin_list, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/admin/api-keys/{id}", on_admin_get, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/api-keys/{id}", on_admin_revoke, LT_API_SETTLE(LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "POST", "/v1/me/api-keys", on_me_create, LT_API_SETTLE(LT_SETTLE_API_KEYS));
    ret = ret ? ret : lt_router_add(router, "GET", "/v1/me/api-keys", on_me_list, 0);
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/me/api-keys/{id}", on_me_revoke, LT_API_SETTLE(LT_SETTLE_API_KEYS));
    return ret;
}
