/*
 * Unit tests for lib/token: access tokens issued and verified over real keyrings (ES256 and
 * EdDSA), and every rejection rule of token.h, with tokens forged here by signing chosen
 * header and claims JSON with real keys (or HMAC, for the algorithm-confusion case).
 *
 * The keystore test needs PostgreSQL: it runs when LATCH_TEST_DATABASE_URL is set (tests/run
 * sets it) in a private database latch_unit_token_<pid>, migrated with the migrations built
 * into the binary after sql/roles.sql (found via LATCH_SOURCE_ROOT), and dropped afterwards.
 * The user in the URL must be allowed to create databases and roles (a superuser in the
 * throwaway cluster of tests/run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgtest.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include "base/base.h"
#include "crypto/keyring.h"
#include "crypto/seal.h"
#include "store/store.h"
#include "token/token.h"

#define NOW 1700000000LL
#define ISS "https://latch.test"
#define AUD "api://services"

/* ---- helpers -------------------------------------------------------------------------- */

/* A ring whose active key is `alg`, plus a retired key of the other algorithm. */
static lt_keyring_t *make_ring(lt_alg_t alg, const lt_key_t **active, const lt_key_t **retired)
{
    lt_keyring_entry_t e[2] = {{NULL, 1, 0}, {NULL, 0, NOW - 100}};
    assert_int_equal(lt_key_generate(alg, &e[0].key), 0);
    assert_int_equal(lt_key_generate(alg == LT_ALG_ES256 ? LT_ALG_EDDSA : LT_ALG_ES256, &e[1].key), 0);
    lt_keyring_t *kr = NULL;
    assert_int_equal(lt_keyring_create(e, 2, &kr), 0);
    if (active != NULL)
        *active = lt_keyring_active(kr);
    if (retired != NULL)
        *retired = lt_keyring_find(kr, lt_key_kid(e[1].key), strlen(lt_key_kid(e[1].key)));
    return kr;
}

static lt_token_claims_t std_claims(json_t *roles, json_t *amr)
{
    lt_token_claims_t c = {
        .iss = ISS,
        .aud = AUD,
        .sub = "6f1c2d3e-0000-4000-8000-000000000001",
        .sid = "6f1c2d3e-0000-4000-8000-000000000002",
        .tenant = "acme",
        .client_id = LT_TOKEN_FIRST_PARTY_CLIENT,
        .username = "ada@example.com",
        .scope = "openid profile",
        .acr = "aal1",
        .roles = roles,
        .amr = amr,
        .auth_time = NOW - 60,
        .now = NOW,
        .ttl = 600,
    };
    return c;
}

static lt_token_verify_opts_t opts_at(int64_t now)
{
    lt_token_verify_opts_t o = {ISS, AUD, now, 0};
    return o;
}

static void append_b64(lt_buf_t *b, const void *p, size_t n)
{
    assert_int_equal(lt_buf_reserve(b, lt_b64url_enclen(n) + 1), 0);
    b->len += lt_b64url_encode(b->base + b->len, p, n);
}

/* base64url(hdr) "." base64url(claims) "." base64url(signature by `k`). */
static char *forge(const lt_key_t *k, const char *hdr, const char *claims)
{
    lt_buf_t b = LT_BUF_INIT;
    uint8_t sig[LT_SIG_MAX];
    size_t siglen = 0;
    append_b64(&b, hdr, strlen(hdr));
    assert_int_equal(lt_buf_append(&b, ".", 1), 0);
    append_b64(&b, claims, strlen(claims));
    assert_int_equal(lt_key_sign(k, b.base, b.len, sig, &siglen), 0);
    assert_int_equal(lt_buf_append(&b, ".", 1), 0);
    append_b64(&b, sig, siglen);
    return b.base;
}

/* The same, signed with HMAC-SHA256 under `secret`: the classic algorithm-confusion forgery. */
static char *forge_hs256(const char *secret, const char *hdr, const char *claims)
{
    lt_buf_t b = LT_BUF_INIT;
    uint8_t mac[32];
    unsigned maclen = 0;
    append_b64(&b, hdr, strlen(hdr));
    assert_int_equal(lt_buf_append(&b, ".", 1), 0);
    append_b64(&b, claims, strlen(claims));
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)b.base, b.len, mac, &maclen));
    assert_int_equal(lt_buf_append(&b, ".", 1), 0);
    append_b64(&b, mac, maclen);
    return b.base;
}

/* The claims a valid token carries, as compact JSON; `edit` changes them first. */
static char *claims_text(void (*edit)(json_t *))
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:[s], s:s, s:[s], s:I}", "iss", ISS,
                          "aud", AUD, "sub", "user-1", "sid", "sess-1", "client_id", "latch", "jti", "jti-1", "iat",
                          (json_int_t)NOW, "nbf", (json_int_t)NOW, "exp", (json_int_t)(NOW + 600), "tenant", "acme",
                          "roles", "admin", "scope", "", "amr", "pwd", "auth_time", (json_int_t)NOW);
    assert_non_null(c);
    if (edit != NULL)
        edit(c);
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

static char *header_text(const char *alg, const char *typ, const char *kid)
{
    json_t *h = json_object();
    if (alg != NULL)
        json_object_set_new(h, "alg", json_string(alg));
    if (typ != NULL)
        json_object_set_new(h, "typ", json_string(typ));
    if (kid != NULL)
        json_object_set_new(h, "kid", json_string(kid));
    char *s = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return s;
}

/* Verifies at NOW; @return the result, and the reason in *why. */
static int verify_at(const lt_keyring_t *kr, const char *jwt, int64_t now, const char **why)
{
    lt_token_verify_opts_t o = opts_at(now);
    lt_token_t t;
    memset(&t, 0, sizeof(t));
    *why = NULL;
    int ret = lt_token_verify(kr, jwt, strlen(jwt), &o, &t, why);
    if (ret == 0) {
        assert_non_null(t.claims);
        lt_token_free(&t);
    } else {
        assert_null(t.claims); /* untouched on failure */
        assert_non_null(*why);
    }
    return ret;
}

#define ASSERT_REJECTED(kr, jwt, reason)                                                                               \
    do {                                                                                                               \
        const char *why_;                                                                                              \
        assert_int_equal(verify_at((kr), (jwt), NOW, &why_), LT_EINVAL);                                               \
        if ((reason) != NULL)                                                                                          \
            assert_string_equal(why_, (reason));                                                                       \
    } while (0)

#define ASSERT_ACCEPTED(kr, jwt)                                                                                       \
    do {                                                                                                               \
        const char *why_;                                                                                              \
        int r_ = verify_at((kr), (jwt), NOW, &why_);                                                                   \
        if (r_ != 0)                                                                                                   \
            fail_msg("rejected: %s", why_);                                                                            \
    } while (0)

/* ---- issue + verify ------------------------------------------------------------------- */

static void round_trip(lt_alg_t alg)
{
    const lt_key_t *active = NULL;
    lt_keyring_t *kr = make_ring(alg, &active, NULL);
    json_t *roles = json_pack("[ss]", "admin", "auditor"), *amr = json_pack("[ss]", "pwd", "otp");
    lt_token_claims_t c = std_claims(roles, amr);
    char *jwt = NULL, jti[32];
    assert_int_equal(lt_token_issue(kr, &c, &jwt, jti, sizeof(jti)), 0);
    assert_int_equal(strlen(jti), 22);

    /* The header is exactly what RFC 9068 asks for, compact. */
    char hdr[256];
    const char *dot = strchr(jwt, '.');
    long hn = lt_b64url_decode(hdr, sizeof(hdr) - 1, jwt, (size_t)(dot - jwt));
    assert_true(hn > 0);
    hdr[hn] = '\0';
    char want[160];
    snprintf(want, sizeof(want), "{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", lt_alg_name(alg),
             lt_key_kid(active));
    assert_string_equal(hdr, want);
    assert_null(strpbrk(jwt, "=+/ "));

    lt_token_verify_opts_t o = opts_at(NOW + 10);
    lt_token_t t;
    const char *why = NULL;
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), 0);
    assert_string_equal(t.sub, c.sub);
    assert_string_equal(t.sid, c.sid);
    assert_string_equal(t.tenant, "acme");
    assert_string_equal(t.jti, jti);
    assert_string_equal(t.scope, "openid profile");
    assert_string_equal(t.kid, lt_key_kid(active));
    assert_int_equal(t.iat, NOW);
    assert_int_equal(t.nbf, NOW);
    assert_int_equal(t.exp, NOW + 600);
    assert_int_equal(t.auth_time, NOW - 60);
    assert_true(json_equal(t.roles, roles));
    assert_true(json_equal(t.amr, amr));
    assert_string_equal(json_string_value(json_object_get(t.claims, "acr")), "aal1");
    assert_string_equal(t.acr, "aal1");
    assert_string_equal(t.client_id, "latch");
    assert_string_equal(json_string_value(json_object_get(t.claims, "client_id")), "latch");
    assert_string_equal(t.username, "ada@example.com");
    assert_string_equal(json_string_value(json_object_get(t.claims, "username")), "ada@example.com");
    assert_string_equal(json_string_value(json_object_get(t.claims, "aud")), AUD);
    assert_true(lt_token_has_role(&t, "admin"));
    assert_true(lt_token_has_role(&t, "auditor"));
    assert_false(lt_token_has_role(&t, "adm"));
    lt_token_free(&t);
    assert_null(t.claims);

    /* Every token gets its own jti. */
    char *jwt2 = NULL, jti2[32];
    assert_int_equal(lt_token_issue(kr, &c, &jwt2, jti2, sizeof(jti2)), 0);
    assert_string_not_equal(jti, jti2);

    /* Any audience when none is expected; a clock of 0 means now (the token is long expired). */
    o.aud = NULL;
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), 0);
    lt_token_free(&t);
    o.now = 0;
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), LT_EINVAL);
    assert_string_equal(why, "expired");

    /* A verifier holding only the published JWKS accepts it too. */
    char *jwks = NULL;
    size_t jlen = 0;
    assert_int_equal(lt_keyring_jwks(kr, &jwks, &jlen), 0);
    json_t *doc = json_loads(jwks, 0, NULL);
    lt_keyring_entry_t pub = {NULL, 1, 0};
    assert_int_equal(lt_key_from_public_jwk(json_array_get(json_object_get(doc, "keys"), 0), &pub.key), 0);
    lt_keyring_t *pubring = NULL;
    assert_int_equal(lt_keyring_create(&pub, 1, &pubring), 0);
    ASSERT_ACCEPTED(pubring, jwt);
    /* ... and cannot issue with it. */
    char *nope = NULL;
    assert_int_equal(lt_token_issue(pubring, &c, &nope, NULL, 0), LT_ESTATE);

    lt_keyring_unref(pubring);
    json_decref(doc);
    free(jwks);
    free(jwt);
    free(jwt2);
    json_decref(roles);
    json_decref(amr);
    lt_keyring_unref(kr);
}

static void test_round_trip_es256(void **state)
{
    (void)state;
    round_trip(LT_ALG_ES256);
}

static void test_round_trip_eddsa(void **state)
{
    (void)state;
    round_trip(LT_ALG_EDDSA);
}

static void test_issue_errors_and_defaults(void **state)
{
    (void)state;
    lt_keyring_t *kr = make_ring(LT_ALG_ES256, NULL, NULL), *empty = NULL;
    lt_token_claims_t c = std_claims(NULL, NULL);
    char *jwt = NULL, small[8];
    assert_int_equal(lt_keyring_create(NULL, 0, &empty), 0);
    assert_int_equal(lt_token_issue(empty, &c, &jwt, NULL, 0), LT_ESTATE);
    assert_int_equal(lt_token_issue(kr, &c, &jwt, small, sizeof(small)), LT_EINVAL);
    c.sub = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    c = std_claims(NULL, NULL);
    c.ttl = 0;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    c = std_claims(NULL, NULL);
    json_t *bad_roles = json_pack("[si]", "admin", 3);
    c.roles = bad_roles;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    json_decref(bad_roles);
    c = std_claims(NULL, NULL);
    c.client_id = "";
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    c = std_claims(NULL, NULL);
    c.sid = "";
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    c = std_claims(NULL, NULL);
    c.username = "";
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), LT_EINVAL);
    assert_null(jwt);

    /* No roles/amr/scope/acr: empty arrays and "" in the token, no acr claim. */
    c = std_claims(NULL, NULL);
    c.scope = NULL;
    c.acr = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);
    lt_token_verify_opts_t o = opts_at(NOW);
    lt_token_t t;
    const char *why = NULL;
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), 0);
    assert_string_equal(t.scope, "");
    assert_int_equal(json_array_size(t.roles), 0);
    assert_int_equal(json_array_size(t.amr), 0);
    assert_null(json_object_get(t.claims, "acr"));
    assert_false(lt_token_has_role(&t, "admin"));
    assert_null(t.acr);
    lt_token_free(&t);
    lt_token_free(&t); /* idempotent */
    free(jwt);

    /* A NULL client_id is first-party (callers from before client_id); acr "" is no acr. */
    c = std_claims(NULL, NULL);
    c.client_id = NULL;
    c.acr = "";
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), 0);
    assert_string_equal(t.client_id, LT_TOKEN_FIRST_PARTY_CLIENT);
    assert_null(json_object_get(t.claims, "acr"));
    lt_token_free(&t);
    free(jwt);
    lt_keyring_unref(empty);
    lt_keyring_unref(kr);
}

/* client_credentials: no sid, auth_time, username or amr claims, and it verifies. */
static void test_client_token(void **state)
{
    (void)state;
    lt_keyring_t *kr = make_ring(LT_ALG_EDDSA, NULL, NULL);
    json_t *roles = json_pack("[s]", "billing");
    lt_token_claims_t c = {
        .iss = ISS,
        .aud = AUD,
        .sub = "svc-billing",
        .tenant = "6f1c2d3e-0000-4000-8000-0000000000aa",
        .client_id = "svc-billing",
        .scope = "invoices:read",
        .roles = roles,
        .now = NOW,
        .ttl = 300,
    };
    char *jwt = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);

    /* The payload as issued: no sid/auth_time/username/amr/acr members at all. */
    const char *d1 = strchr(jwt, '.'), *d2 = strrchr(jwt, '.');
    char payload[1024];
    long pn = lt_b64url_decode(payload, sizeof(payload) - 1, d1 + 1, (size_t)(d2 - d1 - 1));
    assert_true(pn > 0);
    json_t *raw = json_loadb(payload, (size_t)pn, 0, NULL);
    assert_non_null(raw);
    const char *absent[] = {"sid", "auth_time", "username", "amr", "acr"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (json_object_get(raw, absent[i]) != NULL)
            fail_msg("client token has %s", absent[i]);
    assert_string_equal(json_string_value(json_object_get(raw, "client_id")), "svc-billing");
    json_decref(raw);

    lt_token_verify_opts_t o = opts_at(NOW);
    lt_token_t t;
    const char *why = NULL;
    if (lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why) != 0)
        fail_msg("client token rejected: %s", why);
    assert_null(t.sid);
    assert_null(t.username);
    assert_null(t.acr);
    assert_string_equal(t.client_id, "svc-billing");
    assert_int_equal(t.auth_time, 0);
    assert_int_equal(json_array_size(t.amr), 0);
    assert_true(lt_token_has_role(&t, "billing"));
    lt_token_free(&t);
    free(jwt);
    json_decref(roles);
    lt_keyring_unref(kr);
}

/* ---- rejections ---------------------------------------------------------------------- */

static void test_reject_header(void **state)
{
    (void)state;
    const lt_key_t *es = NULL, *ed = NULL;
    lt_keyring_t *kr = make_ring(LT_ALG_ES256, &es, &ed);
    const char *kid = lt_key_kid(es);
    char *cl = claims_text(NULL), *h, *jwt;

    /* Controls: the forging helper makes tokens that pass. */
    h = header_text("ES256", "at+jwt", kid);
    jwt = forge(es, h, cl);
    ASSERT_ACCEPTED(kr, jwt);
    free(jwt);
    free(h);
    /* RFC 9068 §4: the full media type, in any case. */
    const char *typs_ok[] = {"application/at+jwt", "AT+JWT", "Application/At+Jwt"};
    for (size_t i = 0; i < 3; i++) {
        h = header_text("ES256", typs_ok[i], kid);
        jwt = forge(es, h, cl);
        ASSERT_ACCEPTED(kr, jwt);
        free(jwt);
        free(h);
    }
    /* A retired key still verifies with its own algorithm. */
    h = header_text("EdDSA", "at+jwt", lt_key_kid(ed));
    jwt = forge(ed, h, cl);
    ASSERT_ACCEPTED(kr, jwt);
    free(jwt);
    free(h);

    /* typ: an ID token or plain JWT is not an access token; missing typ is refused. */
    const char *typs_bad[] = {"JWT", "jwt", "application/jwt", "at+jwt ", "application/", "xapplication/at+jwt"};
    for (size_t i = 0; i < sizeof(typs_bad) / sizeof(typs_bad[0]); i++) {
        h = header_text("ES256", typs_bad[i], kid);
        jwt = forge(es, h, cl);
        ASSERT_REJECTED(kr, jwt, "bad typ");
        free(jwt);
        free(h);
    }
    h = header_text("ES256", NULL, kid);
    jwt = forge(es, h, cl);
    ASSERT_REJECTED(kr, jwt, "bad typ");
    free(jwt);
    free(h);
    jwt = forge(es, "{\"alg\":\"ES256\",\"typ\":7,\"kid\":\"x\"}", cl);
    ASSERT_REJECTED(kr, jwt, "bad typ");
    free(jwt);

    /* alg none: with an empty signature, and with a real one. */
    h = header_text("none", "at+jwt", kid);
    jwt = forge(es, h, cl);
    ASSERT_REJECTED(kr, jwt, "alg mismatch");
    *(strrchr(jwt, '.') + 1) = '\0';
    ASSERT_REJECTED(kr, jwt, "bad part length");
    free(jwt);
    free(h);
    /* No alg at all. */
    h = header_text(NULL, "at+jwt", kid);
    jwt = forge(es, h, cl);
    ASSERT_REJECTED(kr, jwt, "alg mismatch");
    free(jwt);
    free(h);

    /* HS256 keyed with the ES256 key's public JWK (algorithm confusion). */
    json_t *jwk = NULL;
    assert_int_equal(lt_key_public_jwk(es, &jwk), 0);
    char *pubtext = json_dumps(jwk, JSON_COMPACT);
    h = header_text("HS256", "at+jwt", kid);
    jwt = forge_hs256(pubtext, h, cl);
    ASSERT_REJECTED(kr, jwt, NULL);
    free(jwt);
    /* ... even padded to a 64-byte "signature" so the length check is not what stops it. */
    jwt = forge(ed, h, cl);
    ASSERT_REJECTED(kr, jwt, "alg mismatch");
    free(jwt);
    free(h);
    free(pubtext);
    json_decref(jwk);

    /* EdDSA claimed for the ES256 key, signed by an Ed25519 key (the retired one). */
    h = header_text("EdDSA", "at+jwt", kid);
    jwt = forge(ed, h, cl);
    ASSERT_REJECTED(kr, jwt, "alg mismatch");
    free(jwt);
    free(h);
    /* ES256 claimed for the EdDSA key. */
    h = header_text("ES256", "at+jwt", lt_key_kid(ed));
    jwt = forge(es, h, cl);
    ASSERT_REJECTED(kr, jwt, "alg mismatch");
    free(jwt);
    free(h);

    /* Unknown kid (a key not in the ring), missing kid, kid of the wrong type. */
    lt_key_t *stranger = NULL;
    assert_int_equal(lt_key_generate(LT_ALG_ES256, &stranger), 0);
    h = header_text("ES256", "at+jwt", lt_key_kid(stranger));
    jwt = forge(stranger, h, cl);
    ASSERT_REJECTED(kr, jwt, "unknown kid");
    free(jwt);
    free(h);
    /* A stranger's signature under our kid. */
    h = header_text("ES256", "at+jwt", kid);
    jwt = forge(stranger, h, cl);
    ASSERT_REJECTED(kr, jwt, "bad signature");
    free(jwt);
    free(h);
    lt_key_free(stranger);
    h = header_text("ES256", "at+jwt", NULL);
    jwt = forge(es, h, cl);
    ASSERT_REJECTED(kr, jwt, "no kid");
    free(jwt);
    free(h);

    /* Duplicate members: the second alg must not win (nor the first). */
    char dup[256];
    snprintf(dup, sizeof(dup), "{\"alg\":\"none\",\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", kid);
    jwt = forge(es, dup, cl);
    ASSERT_REJECTED(kr, jwt, "bad header");
    free(jwt);
    /* crit names an extension we cannot understand. */
    snprintf(dup, sizeof(dup), "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", kid);
    jwt = forge(es, dup, cl);
    ASSERT_REJECTED(kr, jwt, "crit header");
    free(jwt);
    /* Not an object; not JSON. */
    jwt = forge(es, "[\"ES256\"]", cl);
    ASSERT_REJECTED(kr, jwt, "bad header");
    free(jwt);
    jwt = forge(es, "{\"alg\":\"ES256\"", cl);
    ASSERT_REJECTED(kr, jwt, "bad header");
    free(jwt);

    free(cl);
    lt_keyring_unref(kr);
}

static void test_reject_encoding(void **state)
{
    (void)state;
    const lt_key_t *es = NULL;
    lt_keyring_t *kr = make_ring(LT_ALG_ES256, &es, NULL);
    lt_token_claims_t c = std_claims(NULL, NULL);
    char *jwt = NULL, buf[LT_TOKEN_MAX + 64];
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);
    size_t n = strlen(jwt);
    char *d1 = strchr(jwt, '.'), *d2 = strrchr(jwt, '.');
    ASSERT_ACCEPTED(kr, jwt);

    /* Four parts, two parts, one part. */
    snprintf(buf, sizeof(buf), "%s.", jwt);
    ASSERT_REJECTED(kr, buf, "more than three parts");
    snprintf(buf, sizeof(buf), "%s.%s", jwt, d2 + 1);
    ASSERT_REJECTED(kr, buf, "more than three parts");
    snprintf(buf, sizeof(buf), "%.*s", (int)(d2 - jwt), jwt);
    ASSERT_REJECTED(kr, buf, "not three parts");
    snprintf(buf, sizeof(buf), "%.*s", (int)(d1 - jwt), jwt);
    ASSERT_REJECTED(kr, buf, "not three parts");
    /* Empty parts. */
    snprintf(buf, sizeof(buf), "%s", d1);
    ASSERT_REJECTED(kr, buf, "bad part length");
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(d1 - jwt), jwt, d2);
    ASSERT_REJECTED(kr, buf, "bad part length");

    /* Padding anywhere, and the standard alphabet. */
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(d1 - jwt), jwt, d1);
    ASSERT_REJECTED(kr, buf, "not base64url");
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(d2 - jwt), jwt, d2);
    ASSERT_REJECTED(kr, buf, "not base64url");
    snprintf(buf, sizeof(buf), "%s==", jwt);
    ASSERT_REJECTED(kr, buf, "bad part length");
    /* The signature's characters spelled in standard base64: same bytes, still refused. */
    snprintf(buf, sizeof(buf), "%s", jwt);
    int swapped = 0;
    for (char *p = buf + (d2 - jwt) + 1; *p != '\0'; p++) {
        if (*p == '-' || *p == '_') {
            *p = *p == '-' ? '+' : '/';
            swapped = 1;
        }
    }
    if (!swapped) /* no '-' or '_' in this signature: put a '+' in */
        buf[n - 2] = '+';
    ASSERT_REJECTED(kr, buf, "not base64url");
    snprintf(buf, sizeof(buf), "%s", jwt);
    buf[3] = ' ';
    ASSERT_REJECTED(kr, buf, "not base64url");

    /* Tampering: one payload character, one signature character. */
    snprintf(buf, sizeof(buf), "%s", jwt);
    char *pc = buf + (d1 - jwt) + 5;
    *pc = *pc == 'A' ? 'B' : 'A';
    ASSERT_REJECTED(kr, buf, NULL);
    snprintf(buf, sizeof(buf), "%s", jwt);
    pc = buf + (d2 - jwt) + 10;
    *pc = *pc == 'A' ? 'B' : 'A';
    ASSERT_REJECTED(kr, buf, "bad signature");
    /* A signature of the same length whose last character has non-zero spare bits. */
    snprintf(buf, sizeof(buf), "%s", jwt);
    buf[n - 1] = 'B' + (buf[n - 1] == 'B');
    ASSERT_REJECTED(kr, buf, NULL);

    /* Oversize: a token over LT_TOKEN_MAX, whatever it holds. */
    char *big = malloc(LT_TOKEN_MAX + 2);
    memset(big, 'A', LT_TOKEN_MAX + 1);
    big[LT_TOKEN_MAX + 1] = '\0';
    memcpy(big, jwt, (size_t)(d1 - jwt + 1));
    ASSERT_REJECTED(kr, big, "too long");
    free(big);
    /* ... and a validly signed one whose claims make it too long. */
    lt_buf_t scope = LT_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lt_buf_appends(&scope, "scope:x "), 0);
    c.scope = scope.base;
    char *huge = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &huge, NULL, 0), 0);
    assert_true(strlen(huge) > LT_TOKEN_MAX);
    ASSERT_REJECTED(kr, huge, "too long");
    free(huge);
    lt_buf_free(&scope);

    /* Empty and NULL input, missing options. */
    lt_token_t t;
    const char *why = NULL;
    lt_token_verify_opts_t o = opts_at(NOW);
    assert_int_equal(lt_token_verify(kr, "", 0, &o, &t, &why), LT_EINVAL);
    assert_int_equal(lt_token_verify(kr, NULL, 5, &o, &t, &why), LT_EINVAL);
    o.iss = NULL;
    assert_int_equal(lt_token_verify(kr, jwt, n, &o, &t, &why), LT_EINVAL);
    assert_string_equal(why, "bad options");
    o = opts_at(NOW);
    o.leeway = -1;
    assert_int_equal(lt_token_verify(kr, jwt, n, &o, &t, &why), LT_EINVAL);
    /* Only `n` bytes count: the same token inside a longer buffer. */
    o = opts_at(NOW);
    snprintf(buf, sizeof(buf), "%sXYZ", jwt);
    assert_int_equal(lt_token_verify(kr, buf, n, &o, &t, &why), 0);
    lt_token_free(&t);

    free(jwt);
    lt_keyring_unref(kr);
}

/* Claim edits for test_reject_claims. */
static void set_exp_past(json_t *c)
{
    json_object_set_new(c, "exp", json_integer(NOW - LT_TOKEN_LEEWAY));
}
static void set_exp_in_leeway(json_t *c)
{
    json_object_set_new(c, "exp", json_integer(NOW - LT_TOKEN_LEEWAY + 1));
}
static void set_nbf_future(json_t *c)
{
    json_object_set_new(c, "nbf", json_integer(NOW + LT_TOKEN_LEEWAY + 1));
}
static void set_nbf_in_leeway(json_t *c)
{
    json_object_set_new(c, "nbf", json_integer(NOW + LT_TOKEN_LEEWAY));
}
static void set_iat_future(json_t *c)
{
    json_object_set_new(c, "iat", json_integer(NOW + LT_TOKEN_LEEWAY + 1));
}
static void set_iss_wrong(json_t *c)
{
    json_object_set_new(c, "iss", json_string(ISS "/other"));
}
static void set_aud_wrong(json_t *c)
{
    json_object_set_new(c, "aud", json_string("api://elsewhere"));
}
static void set_aud_array_with(json_t *c)
{
    json_object_set_new(c, "aud", json_pack("[ss]", "api://elsewhere", AUD));
}
static void set_aud_array_without(json_t *c)
{
    json_object_set_new(c, "aud", json_pack("[ss]", "api://elsewhere", "x"));
}
static void del_aud(json_t *c)
{
    json_object_del(c, "aud");
}
static void del_exp(json_t *c)
{
    json_object_del(c, "exp");
}
static void del_nbf(json_t *c)
{
    json_object_del(c, "nbf");
}
static void set_exp_string(json_t *c)
{
    json_object_set_new(c, "exp", json_string("1700000600"));
}
static void set_exp_real(json_t *c)
{
    json_object_set_new(c, "exp", json_real((double)NOW + 600.5));
}
static void set_exp_huge(json_t *c)
{
    json_object_set_new(c, "exp", json_integer(INT64_MAX));
}
static void del_sub(json_t *c)
{
    json_object_del(c, "sub");
}
static void del_jti(json_t *c)
{
    json_object_del(c, "jti");
}
static void del_sid(json_t *c)
{
    json_object_del(c, "sid");
}
static void set_sid_int(json_t *c)
{
    json_object_set_new(c, "sid", json_integer(7));
}
static void set_sid_empty(json_t *c)
{
    json_object_set_new(c, "sid", json_string(""));
}
static void set_sid_null(json_t *c)
{
    json_object_set_new(c, "sid", json_null());
}
static void del_client_id(json_t *c)
{
    json_object_del(c, "client_id");
}
static void set_client_id_empty(json_t *c)
{
    json_object_set_new(c, "client_id", json_string(""));
}
static void set_client_id_array(json_t *c)
{
    json_object_set_new(c, "client_id", json_pack("[s]", "latch"));
}
static void set_username_int(json_t *c)
{
    json_object_set_new(c, "username", json_integer(1));
}
static void set_acr_empty(json_t *c)
{
    json_object_set_new(c, "acr", json_string(""));
}
/* A client_credentials token: no sid, auth_time, username or amr. */
static void client_token(json_t *c)
{
    json_object_del(c, "sid");
    json_object_del(c, "auth_time");
    json_object_del(c, "amr");
    json_object_set_new(c, "client_id", json_string("svc-billing"));
}
static void set_tenant_int(json_t *c)
{
    json_object_set_new(c, "tenant", json_integer(4));
}
static void set_roles_string(json_t *c)
{
    json_object_set_new(c, "roles", json_string("admin"));
}
static void set_roles_mixed(json_t *c)
{
    json_object_set_new(c, "roles", json_pack("[si]", "admin", 1));
}
static void set_scope_array(json_t *c)
{
    json_object_set_new(c, "scope", json_pack("[s]", "a"));
}
static void del_optional(json_t *c)
{
    json_object_del(c, "roles");
    json_object_del(c, "amr");
    json_object_del(c, "scope");
    json_object_del(c, "auth_time");
}

static void test_reject_claims(void **state)
{
    (void)state;
    const lt_key_t *ed = NULL;
    lt_keyring_t *kr = make_ring(LT_ALG_EDDSA, &ed, NULL);
    char *h = header_text("EdDSA", "at+jwt", lt_key_kid(ed));
    static const struct {
        void (*edit)(json_t *);
        const char *why; /* NULL: accepted */
    } cases[] = {
        {set_exp_past, "expired"},
        {set_exp_in_leeway, NULL},
        {set_nbf_future, "not yet valid"},
        {set_nbf_in_leeway, NULL},
        {set_iat_future, "issued in the future"},
        {set_iss_wrong, "wrong iss"},
        {set_aud_wrong, "wrong aud"},
        {set_aud_array_with, NULL},
        {set_aud_array_without, "wrong aud"},
        {del_aud, "wrong aud"},
        {del_exp, "bad time claims"},
        {del_nbf, "bad time claims"},
        {set_exp_string, "bad time claims"},
        {set_exp_real, "bad time claims"},
        {set_exp_huge, "bad time claims"},
        {del_sub, "missing sub, jti, tenant or client_id"},
        {del_jti, "missing sub, jti, tenant or client_id"},
        {del_sid, NULL},
        {set_sid_int, "bad sid, username or acr"},
        {set_sid_empty, "bad sid, username or acr"},
        {set_sid_null, "bad sid, username or acr"},
        {del_client_id, "missing sub, jti, tenant or client_id"},
        {set_client_id_empty, "missing sub, jti, tenant or client_id"},
        {set_client_id_array, "missing sub, jti, tenant or client_id"},
        {set_username_int, "bad sid, username or acr"},
        {set_acr_empty, "bad sid, username or acr"},
        {client_token, NULL},
        {set_tenant_int, "missing sub, jti, tenant or client_id"},
        {set_roles_string, "bad roles or amr"},
        {set_roles_mixed, "bad roles or amr"},
        {set_scope_array, "bad scope"},
        {del_optional, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cl = claims_text(cases[i].edit), *jwt = forge(ed, h, cl);
        const char *why = NULL;
        int ret = verify_at(kr, jwt, NOW, &why);
        if (cases[i].why == NULL && ret != 0)
            fail_msg("case %zu rejected: %s", i, why);
        if (cases[i].why != NULL && (ret != LT_EINVAL || strcmp(why, cases[i].why) != 0))
            fail_msg("case %zu: want \"%s\", got %d \"%s\"", i, cases[i].why, ret, why != NULL ? why : "");
        free(jwt);
        free(cl);
    }

    /* Duplicate claims, a non-object payload, and the issuer's own leeway setting. */
    char *jwt = forge(ed, h, "{\"sub\":\"a\",\"sub\":\"b\"}");
    ASSERT_REJECTED(kr, jwt, "bad claims");
    free(jwt);
    jwt = forge(ed, h, "[1,2]");
    ASSERT_REJECTED(kr, jwt, "bad claims");
    free(jwt);
    jwt = forge(ed, h, "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}");
    ASSERT_REJECTED(kr, jwt, "bad claims");
    free(jwt);
    char *cl = claims_text(NULL);
    jwt = forge(ed, h, cl);
    lt_token_verify_opts_t o = opts_at(NOW + 600 + 5);
    lt_token_t t;
    const char *why = NULL;
    o.leeway = 10; /* expired 5 s ago: inside 10 s of leeway */
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), 0);
    lt_token_free(&t);
    o.leeway = 5;
    assert_int_equal(lt_token_verify(kr, jwt, strlen(jwt), &o, &t, &why), LT_EINVAL);
    assert_string_equal(why, "expired");
    free(jwt);
    free(cl);
    free(h);
    lt_keyring_unref(kr);
}

/* ---- keystore (PostgreSQL) ------------------------------------------------------------ */

static const char *base_url; /* LATCH_TEST_DATABASE_URL; NULL: no PostgreSQL */
static pgtest_db_t db;       /* the program's database, owned by that superuser */

static int group_setup(void **state)
{
    (void)state;
    base_url = pgtest_group_open(&db, "token");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pgtest_db_close(&db, base_url);
    return 0;
}

#define SKIP_WITHOUT_PG() PGTEST_SKIP_UNLESS(db.owner != NULL)

typedef struct load_job {
    lt_token_keystore_opts_t o;
    lt_keyring_t *kr;
    int ret;
    char err[256];
} load_job_t;

static void *load_thread(void *arg)
{
    load_job_t *j = arg;
    j->ret = lt_token_keystore_load(&j->o, &j->kr, j->err, sizeof(j->err));
    return NULL;
}

static void test_keystore(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    lt_seal_key_t mk[2] = {{2, {0}}, {1, {0}}};
    for (int i = 0; i < 32; i++) {
        mk[0].key[i] = (uint8_t)(0xA0 + i);
        mk[1].key[i] = (uint8_t)(0x10 + i);
    }
    PGconn *c = pgtest_connect(db.owner);
    pgtest_exec(c, "DELETE FROM signing_keys");
    char *events_before = pgtest_query(c, "SELECT count(*) FROM audit_log WHERE event = 'key.created'");

    /* Four instances start at once on an empty table: one key is created, all load it. */
    enum { N = 4 };
    load_job_t jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].o = (lt_token_keystore_opts_t){db.owner, mk, 2, LT_ALG_ES256, 3600};
        assert_int_equal(pthread_create(&th[i], NULL, load_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        if (jobs[i].ret != 0)
            fail_msg("instance %d: %d %s", i, jobs[i].ret, jobs[i].err);
        assert_non_null(lt_keyring_active(jobs[i].kr));
        assert_string_equal(lt_key_kid(lt_keyring_active(jobs[i].kr)), lt_key_kid(lt_keyring_active(jobs[0].kr)));
        assert_int_equal(lt_key_alg(lt_keyring_active(jobs[i].kr)), LT_ALG_ES256);
    }
    char *count = pgtest_query(c, "SELECT count(*) FROM signing_keys");
    assert_string_equal(count, "1");
    free(count);
    char *events = pgtest_query(c, "SELECT count(*) FROM audit_log WHERE event = 'key.created'");
    assert_int_equal(atoi(events), atoi(events_before) + 1);
    free(events);
    free(events_before);
    char *ev = pgtest_query(c, "SELECT concat_ws('|', tenant_id, actor, target, ip, request_id, outcome, details::text)"
                               " FROM audit_log WHERE event = 'key.created' ORDER BY id DESC LIMIT 1");
    char want[200];
    snprintf(want, sizeof(want), "system|%s|success|{\"alg\": \"ES256\"}", lt_key_kid(lt_keyring_active(jobs[0].kr)));
    assert_string_equal(ev, want);
    free(ev);
    /* The stored public JWK is the key's; the private half is sealed under version 2. */
    char *row = pgtest_query(c, "SELECT public_jwk->>'kid' || '|' || (public_jwk->>'kty') || '|' || alg || '|'"
                                " || get_byte(private_sealed, 0) FROM signing_keys");
    snprintf(want, sizeof(want), "%s|EC|ES256|2", lt_key_kid(lt_keyring_active(jobs[0].kr)));
    assert_string_equal(row, want);
    free(row);

    /* A token issued by one instance verifies on another. */
    lt_token_claims_t cl = std_claims(NULL, NULL);
    char *jwt = NULL;
    assert_int_equal(lt_token_issue(jobs[1].kr, &cl, &jwt, NULL, 0), 0);
    ASSERT_ACCEPTED(jobs[2].kr, jwt);
    free(jwt);
    char kid1[LT_KID_MAX + 1];
    snprintf(kid1, sizeof(kid1), "%s", lt_key_kid(lt_keyring_active(jobs[0].kr)));
    for (int i = 0; i < N; i++)
        lt_keyring_unref(jobs[i].kr);

    /* Rotation by hand: the key becomes previous; the next load creates an EdDSA key and
     * still publishes the previous one while it is young, and not once it is old. */
    pgtest_exec(c, "UPDATE signing_keys SET status = 'previous', retired_at = now()");
    lt_token_keystore_opts_t o = {db.owner, mk, 2, LT_ALG_EDDSA, 3600};
    lt_keyring_t *kr = NULL;
    char err[256];
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), 0);
    assert_int_equal(lt_key_alg(lt_keyring_active(kr)), LT_ALG_EDDSA);
    assert_string_not_equal(lt_key_kid(lt_keyring_active(kr)), kid1);
    assert_non_null(lt_keyring_find(kr, kid1, strlen(kid1)));
    lt_keyring_unref(kr);
    pgtest_exec(c, "UPDATE signing_keys SET retired_at = now() - interval '2 hours' WHERE status = 'previous'");
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), 0);
    assert_null(lt_keyring_find(kr, kid1, strlen(kid1)));
    char kid2[LT_KID_MAX + 1];
    snprintf(kid2, sizeof(kid2), "%s", lt_key_kid(lt_keyring_active(kr)));
    lt_keyring_unref(kr);

    /* Only the old master key (version 1): the key sealed under version 2 cannot open. */
    o.seal_keys = &mk[1];
    o.nseal_keys = 1;
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), LT_EINVAL);
    assert_non_null(strstr(err, kid2));
    /* The right version but the wrong bytes: named by kid, and no key material in the text. */
    lt_seal_key_t wrong = mk[0];
    wrong.key[0] ^= 1;
    o.seal_keys = &wrong;
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), LT_EINVAL);
    assert_non_null(strstr(err, kid2));
    assert_non_null(strstr(err, "does not unseal"));
    /* A sealed blob moved to another row (another kid in the aad) does not open either. */
    o.seal_keys = mk;
    o.nseal_keys = 2;
    pgtest_exec(c, "UPDATE signing_keys SET private_sealed = (SELECT private_sealed FROM signing_keys WHERE status ="
                   " 'previous' LIMIT 1) WHERE status = 'current'");
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), LT_EINVAL);
    assert_non_null(strstr(err, kid2));

    /* No database. */
    char *nodb = pgtest_conninfo(base_url, NULL, "latch_no_such_db");
    o.conninfo = nodb;
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), LT_EUNAVAIL);
    free(nodb);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_es256),
        cmocka_unit_test(test_round_trip_eddsa),
        cmocka_unit_test(test_issue_errors_and_defaults),
        cmocka_unit_test(test_client_token),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_encoding),
        cmocka_unit_test(test_reject_claims),
        cmocka_unit_test(test_keystore),
    };
    enum { NPURE = 7 };
    size_t n = sizeof(tests) / sizeof(tests[0]);
    lt_log_set_level(LT_LOG_WARN); /* "applied <file>", "created signing key ..." */
    (void)pgtest_url_or_leave_out(tests, NPURE, &n);
    return _cmocka_run_group_tests("token", tests, n, group_setup, group_teardown);
}
