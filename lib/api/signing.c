/*
 * signing: optional HMAC-SHA256 request signing for OAuth clients (issue 7, item 2;
 * README "Signed requests"), and the admin routes that give a client its signing key.
 *
 * A client with a signing key may sign any request it authenticates (client_secret_basic
 * or _post, at /oauth2/token, /oauth2/introspect, /oauth2/revoke, the AuthZEN endpoints and
 * the revocation feed: every caller of lt__api_client_auth); with require_signed_requests
 * it must. The signature is checked after, and in addition to, the client's own
 * credential, so filling the nonce memory takes both the client's secret and its key:
 *
 *   Latch-Signature: keyId="<client_id>", ts=<unix seconds>, nonce="<16-64 of A-Za-z0-9_->",
 *                    sig="<base64url HMAC-SHA256, no padding>"
 *
 *   HMAC key: the signing key text ("lsk_..."), as shown once by the admin API
 *   signed text: "LATCH-HMAC-SHA256\n" METHOD "\n" PATH "\n" TS "\n" NONCE "\n" HEX
 *     METHOD  the request method as sent (upper case)
 *     PATH    the request target as sent (:path), query string included, not normalised
 *     TS      exactly the ts value of the header (decimal, no sign, no leading zero)
 *     HEX     lower-case hex SHA-256 of the request body (of nothing when there is none)
 *
 * Accepted when the HMAC matches (constant-time compare), |now - ts| <= the window
 * (request_signature_window) and the (client, nonce) pair was not seen in this process while
 * the timestamp is still acceptable (lib/token/nonce.h). A header that is present must
 * verify even when the client does not require signing. Refusals are 401 RFC 6749 errors
 * like the client authentication they extend: invalid_signature, signature_expired,
 * replayed_request, signature_required; the expected signature is never revealed, and the
 * log says only which check failed.
 *
 * Not covered: the host/authority (a client's key is its own, so a request can only be
 * replayed against another Latch instance, within the window; see the README's note on
 * per-instance nonce memory), response integrity.
 *
 * Threading: verification runs on the request's worker thread and reads the worker's
 * clients snapshot (keys unsealed at snapshot load on the control thread) and the
 * instance's nonce cache (locked per shard). Admin handlers follow admin_clients.c.
 */
#include <h2o.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "identity/admin.h"
#include "token/nonce.h"

#define SIG_HEADER "latch-signature"
#define SIG_SCHEME "LATCH-HMAC-SHA256"
#define SIG_HEADER_MAX 512 /* the four parameters need under 200 bytes */
#define NONCE_MIN 16       /* >= 96 bits when random base64url */
#define NONCE_MAX 64
#define TS_MAX_DIGITS 12 /* far beyond any clock, well inside int64 */
#define SIG_B64_LEN 43   /* 32 bytes, unpadded base64url */

int lt__api_signing_init(lt_api_t *api)
{
    int ret = lt_nonce_cache_create((size_t)api->cfg->request_signature_nonces, &api->nonces);
    if (ret != 0)
        lt_log(LT_LOG_ERROR, "api", "signed-request nonce cache: %s", lt_strerror(ret));
    return ret;
}

void lt__api_signing_fini(lt_api_t *api)
{
    lt_nonce_cache_destroy(&api->nonces);
}

/* ---- the header ------------------------------------------------------------------------ */

typedef struct {
    const char *v[4];
    size_t n[4];
} sig_params_t;

enum { P_KEYID, P_TS, P_NONCE, P_SIG };
static const char *const param_names[] = {"keyId", "ts", "nonce", "sig"};

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A character a parameter value may hold (quoted or not): visible ASCII but '"', '\', ','. */
static int value_char(char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != ',';
}

/*
 * Parses `name=value` pairs separated by commas (optional spaces or tabs around them),
 * values bare or in double quotes without escapes. Each of the four names exactly once,
 * nothing else. @return NULL, or why not (for the debug log).
 */
static const char *parse_params(const char *p, const char *end, sig_params_t *out)
{
    memset(out, 0, sizeof(*out));
    for (;;) {
        while (p < end && ows(*p))
            p++;
        const char *name = p;
        while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0 || p == end || *p != '=')
            return "malformed parameter";
        p++;
        int quoted = p < end && *p == '"';
        if (quoted)
            p++;
        const char *val = p;
        while (p < end && value_char(*p))
            p++;
        size_t vlen = (size_t)(p - val);
        if (quoted) {
            if (p == end || *p != '"')
                return "unterminated quoted value";
            p++;
        }
        int k = -1;
        for (int i = 0; i < 4 && k < 0; i++)
            if (strlen(param_names[i]) == nlen && memcmp(param_names[i], name, nlen) == 0)
                k = i;
        if (k < 0)
            return "unknown parameter";
        if (out->v[k] != NULL)
            return "repeated parameter";
        out->v[k] = val;
        out->n[k] = vlen;
        while (p < end && ows(*p))
            p++;
        if (p == end)
            break;
        if (*p != ',')
            return "malformed parameter list";
        p++;
    }
    for (int i = 0; i < 4; i++)
        if (out->v[i] == NULL)
            return "missing parameter";
    return NULL;
}

static int all_of(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return 0;
    return 1;
}

#define DIGITS "0123456789"
#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* ---- verification -------------------------------------------------------------------- */

static int refuse(lt_req_t *r, const lt_client_t *c, const char *code, const char *desc, const char *why)
{
    lt_log(LT_LOG_DEBUG, "api", "request %s: client %s: signature refused (%s): %s", r->request_id, c->id, code, why);
    lt__api_oauth_error(r, 401, code, desc);
    return -1;
}

static int invalid(lt_req_t *r, const lt_client_t *c, const char *why)
{
    return refuse(r, c, "invalid_signature", "The Latch-Signature header is missing parts or does not verify.", why);
}

/* The request's own header value and its count (a second header is refused, not merged). */
static const h2o_iovec_t *sig_header(lt_req_t *r, int *count)
{
    const h2o_iovec_t *found = NULL;
    *count = 0;
    for (ssize_t i = -1;
         (i = h2o_find_header_by_str(&r->req->headers, SIG_HEADER, sizeof(SIG_HEADER) - 1, i)) != -1;) {
        if ((*count)++ == 0)
            found = &r->req->headers.entries[i].value;
    }
    return found;
}

/* HMAC-SHA256 of the signed text of request `r` with `ts` and `nonce`, into mac. */
static int compute_mac(lt_req_t *r, const lt_client_t *c, const sig_params_t *sp, uint8_t mac[32])
{
    h2o_req_t *req = r->req;
    uint8_t body_hash[32];
    char hex[65];
    if (lt_sha256(req->entity.base != NULL ? req->entity.base : "", req->entity.base != NULL ? req->entity.len : 0,
                  body_hash) != 0)
        return LT_EIO;
    lt_hex_encode(hex, body_hash, sizeof(body_hash));
    size_t n = sizeof(SIG_SCHEME) + req->method.len + 1 + req->path.len + 1 + sp->n[P_TS] + 1 + sp->n[P_NONCE] + 1 + 64;
    char *text = h2o_mem_alloc_pool(&req->pool, n), *p = text;
#define PUT(s, len)                                                                                                    \
    do {                                                                                                               \
        memcpy(p, s, len);                                                                                             \
        p += len;                                                                                                      \
        *p++ = '\n';                                                                                                   \
    } while (0)
    PUT(SIG_SCHEME, sizeof(SIG_SCHEME) - 1);
    PUT(req->method.base, req->method.len);
    PUT(req->path.base, req->path.len);
    PUT(sp->v[P_TS], sp->n[P_TS]);
    PUT(sp->v[P_NONCE], sp->n[P_NONCE]);
#undef PUT
    memcpy(p, hex, 64);
    p += 64;
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), c->signing_key, LT_CLIENT_SIGNING_KEY_LEN, (const unsigned char *)text, (size_t)(p - text),
             mac, &maclen) == NULL ||
        maclen != 32)
        return LT_EIO;
    return 0;
}

int lt__api_signature_check(lt_req_t *r, const lt_client_t *c)
{
    lt_api_t *api = lt__api_worker(r)->api;
    sig_params_t sp;
    uint8_t want[32], got[33];
    int count;
    const h2o_iovec_t *h = sig_header(r, &count);
    if (h == NULL) {
        if (!(c->signing & LT_CLIENT_SIGN_REQUIRED))
            return 0;
        return refuse(r, c, "signature_required", "This client must sign its requests (Latch-Signature).",
                      "no header");
    }
    if (count > 1)
        return invalid(r, c, "more than one header");
    if (h->len > SIG_HEADER_MAX)
        return invalid(r, c, "header too long");
    const char *why = parse_params(h->base, h->base + h->len, &sp);
    if (why != NULL)
        return invalid(r, c, why);
    if (sp.n[P_KEYID] != strlen(c->id) || memcmp(sp.v[P_KEYID], c->id, sp.n[P_KEYID]) != 0)
        return invalid(r, c, "keyId is not the authenticated client");
    if (sp.n[P_TS] == 0 || sp.n[P_TS] > TS_MAX_DIGITS || !all_of(sp.v[P_TS], sp.n[P_TS], DIGITS) ||
        (sp.v[P_TS][0] == '0' && sp.n[P_TS] > 1))
        return invalid(r, c, "ts is not a decimal unix time");
    if (sp.n[P_NONCE] < NONCE_MIN || sp.n[P_NONCE] > NONCE_MAX || !all_of(sp.v[P_NONCE], sp.n[P_NONCE], B64URL))
        return invalid(r, c, "nonce must be 16 to 64 of A-Z a-z 0-9 - _");
    if (sp.n[P_SIG] != SIG_B64_LEN || !all_of(sp.v[P_SIG], sp.n[P_SIG], B64URL) ||
        lt_b64url_decode(got, sizeof(got), sp.v[P_SIG], sp.n[P_SIG]) != 32)
        return invalid(r, c, "sig is not 43 base64url characters");
    if (!(c->signing & LT_CLIENT_SIGN_KEY))
        return invalid(r, c, "the client has no signing key");
    if (compute_mac(r, c, &sp, want) != 0) {
        lt_log(LT_LOG_ERROR, "api", "request %s: computing a request signature failed", r->request_id);
        lt__api_oauth_error(r, 503, "temporarily_unavailable", "The signature could not be checked; retry.");
        return -1;
    }
    int match = CRYPTO_memcmp(want, got, 32) == 0;
    lt_wipe(want, sizeof(want));
    if (!match)
        return invalid(r, c, "signature mismatch");

    int64_t now = (int64_t)(lt_now_ms() / 1000), window = api->cfg->request_signature_window;
    int64_t ts = 0; /* digits only, at most 12: no overflow (the value is not NUL-terminated) */
    for (size_t i = 0; i < sp.n[P_TS]; i++)
        ts = ts * 10 + (sp.v[P_TS][i] - '0');
    if (ts < now - window || ts > now + window)
        return refuse(r, c, "signature_expired", "The signature's timestamp is outside the accepted window.",
                      ts < now ? "too old" : "in the future");
    /* Remembered while a replay would still pass the window check: until ts + window. */
    int ret = lt_nonce_cache_use(api->nonces, c->id, strlen(c->id), sp.v[P_NONCE], sp.n[P_NONCE], now, ts + window + 1);
    if (ret == LT_EEXIST) {
        lt_log(LT_LOG_INFO, "api", "request %s: client %s: replayed signed request refused", r->request_id, c->id);
        lt__api_oauth_error(r, 401, "replayed_request", "This signed request was already received.");
        return -1;
    }
    if (ret != 0) {
        /* Full of live nonces (or out of memory): accepting would forget replay protection. */
        lt_log(LT_LOG_WARN, "api", "request %s: client %s: signed request shed: nonce memory %s", r->request_id, c->id,
               lt_strerror(ret));
        lt_http_add_header(r, "retry-after", "1");
        lt__api_oauth_error(r, 503, "temporarily_unavailable", "Too many signed requests; retry shortly.");
        return -1;
    }
    return 0;
}

/* ---- admin: /v1/admin/clients/{id}/signing-key ------------------------------------------ */

typedef struct {
    const char *id;      /* the path's {id} (pool) */
    const char *require; /* "true", "false" or NULL (keep) */
    char *key;           /* the new key (wiped pool memory) once made */
    lt_api_caller_t caller;
} signing_ctx_t;

/* Sends `doc` with "signing_key" added, then wipes every copy we own. */
static void send_with_key(lt_req_t *r, const char *doc, char *key)
{
    json_t *body = lt__api_json_parse(doc);
    char *text = NULL;
    if (body == NULL || json_object_set_new(body, "signing_key", json_string(key)) != 0 ||
        (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        lt__api_internal_error(r, "rendering a client with its signing key failed");
    } else {
        lt_http_send(r, 200, "application/json", text, strlen(text));
    }
    if (text != NULL) {
        lt_wipe(text, strlen(text));
        free(text);
    }
    json_t *s = body != NULL ? json_object_get(body, "signing_key") : NULL;
    if (s != NULL)
        lt_wipe((void *)json_string_value(s), json_string_length(s));
    json_decref(body);
}

/* A (code, body) completion: 200 with the document (and the new key), 204, 404 or 409. */
static void write_done(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    signing_ctx_t *sc = ctx;
    lt_admin_code_t code;
    const char *body;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
    } else if (lt_admin_result(res, &code, &body) != 0) {
        lt__api_internal_error(r, "signing statement returned an unexpected row");
    } else if (code == LT_ADMIN_NOT_FOUND) {
        lt_http_problem(r, 404, "not_found", "No such client.");
    } else if (code == LT_ADMIN_CONFLICT) {
        lt_http_problem(r, 409, "no_signing_key", "The client has no signing key to require: create one first.");
    } else if (code != LT_ADMIN_OK) {
        lt__api_internal_error(r, "signing statement returned an unknown code");
    } else if (sc->key != NULL) {
        send_with_key(r, body, sc->key);
    } else if (r->req->method.len == 6 && memcmp(r->req->method.base, "DELETE", 6) == 0) {
        lt_http_send(r, 204, NULL, "", 0);
    } else {
        lt__api_send_json_text(r, 200, body);
    }
    if (sc->key != NULL)
        lt_wipe(sc->key, LT_CLIENT_SIGNING_KEY_LEN);
}

/* The client is in scope: make its key, sealed for its client_id, and store it. */
static void on_client_found(lt_req_t *r, const char *err, PGresult *res, void *ctx)
{
    signing_ctx_t *sc = ctx;
    const char *doc;
    char sealed[LT_CLIENT_SIGNING_SEALED_HEX_LEN + 1], client_id[LT_CLIENT_ID_LEN + 1];
    lt_seal_key_t seal;
    if (err != NULL) {
        lt__api_admin_failed(r, err, res);
        return;
    }
    if (lt_admin_doc(res, &doc) != 0) {
        lt__api_internal_error(r, "clients statement returned an unexpected row");
        return;
    }
    if (doc == NULL) {
        lt_http_problem(r, 404, "not_found", "No such client.");
        return;
    }
    json_t *j = lt__api_json_parse(doc);
    const char *cid = json_string_value(json_object_get(j, "client_id"));
    int ok = cid != NULL && strlen(cid) == LT_CLIENT_ID_LEN;
    if (ok)
        memcpy(client_id, cid, sizeof(client_id));
    json_decref(j);
    if (!ok) {
        lt__api_internal_error(r, "a client document without its client_id");
        return;
    }
    sc->key = lt__api_alloc_wiped(r, LT_CLIENT_SIGNING_KEY_LEN + 1);
    lt__api_master_key(lt__api_worker(r)->api->cfg, &seal);
    int ret = lt_client_signing_key_new(&seal, client_id, sc->key, sealed);
    lt_wipe(&seal, sizeof(seal));
    if (ret != 0) {
        lt__api_internal_error(r, "making a client signing key failed");
        return;
    }
    const char *params[] = {sc->caller.scope, sc->id, client_id, sealed, sc->require, sc->caller.t->sub,
                            lt_req_peer(r), r->request_id};
    lt__api_query(r, &lt_clients_stmt_signing_set, params, 8, write_done, sc);
}

/* The caller, {id} and an optional JSON body with require_signed_requests (required when
 * `need_flag`); NULL when answered. */
static signing_ctx_t *begin(lt_req_t *r, int need_flag)
{
    signing_ctx_t *sc = h2o_mem_alloc_pool(&r->req->pool, sizeof(*sc));
    memset(sc, 0, sizeof(*sc));
    if (lt__api_admin_caller(r, &sc->caller, "latch:clients:write") != 0 ||
        (sc->id = lt__api_client_path_id(r)) == NULL)
        return NULL;
    if (need_flag || r->req->entity.len > 0) {
        lt_api_in_t in;
        if (lt__api_body_read(r, &in) != 0)
            return NULL;
        int v = lt__api_in_bool(&in, "require_signed_requests", -2);
        if (v == -2 && need_flag)
            lt__api_in_error(&in, "require_signed_requests", "is required");
        if (lt__api_in_done(r, &in) != 0)
            return NULL;
        sc->require = v == 1 ? "true" : v == 0 ? "false" : NULL;
    }
    return sc;
}

static int on_create(lt_req_t *r)
{
    signing_ctx_t *sc = begin(r, 0);
    if (sc != NULL) {
        /* The key is sealed for the client_id, which the path may not give (a row id): look
         * the client up first, within the caller's scope. */
        const char *params[] = {sc->caller.scope, sc->id};
        lt__api_admin_run(r, &sc->caller, &lt_clients_stmt_get, params, 2, on_client_found, sc);
    }
    return 0;
}

static int on_require(lt_req_t *r)
{
    signing_ctx_t *sc = begin(r, 1);
    if (sc != NULL) {
        const char *params[] = {sc->caller.scope, sc->id, sc->require, sc->caller.t->sub, lt_req_peer(r),
                                r->request_id};
        lt__api_admin_run(r, &sc->caller, &lt_clients_stmt_signing_require, params, 6, write_done, sc);
    }
    return 0;
}

/* No body is read (any sent is ignored). */
static int on_delete(lt_req_t *r)
{
    signing_ctx_t *sc = h2o_mem_alloc_pool(&r->req->pool, sizeof(*sc));
    memset(sc, 0, sizeof(*sc));
    if (lt__api_admin_caller(r, &sc->caller, "latch:clients:write") != 0 ||
        (sc->id = lt__api_client_path_id(r)) == NULL)
        return 0;
    const char *params[] = {sc->caller.scope, sc->id, sc->caller.t->sub, lt_req_peer(r), r->request_id};
    lt__api_admin_run(r, &sc->caller, &lt_clients_stmt_signing_delete, params, 5, write_done, sc);
    return 0;
}

int lt__api_signing_routes(lt_api_t *api, lt_router_t *router)
{
    int ret;
    (void)api;
    if ((ret = lt_clients_statements()) != 0) /* idempotent; see lt__api_clients_routes */
        return ret;
    ret = lt_router_add(router, "POST", "/v1/admin/clients/{id}/signing-key", on_create, LT_API_SETTLE(LT_SETTLE_CLIENTS));
    ret = ret ? ret : lt_router_add(router, "PATCH", "/v1/admin/clients/{id}/signing-key", on_require, LT_API_SETTLE(LT_SETTLE_CLIENTS));
    ret = ret ? ret : lt_router_add(router, "DELETE", "/v1/admin/clients/{id}/signing-key", on_delete, LT_API_SETTLE(LT_SETTLE_CLIENTS));
    return ret;
}
