/*
 * Unit tests for lib/token/cache.c: the verified-token cache (put/get/replace/remove,
 * expiry, bounded eviction under a flood, probe-run integrity under clustered hashes,
 * stats and its memory estimate) and the introspection rendering of user and client tokens.
 *
 * jansson's allocator is replaced (before any JSON exists) by one that counts live heap,
 * so test_memory can check the cache's estimate of an entry's size against what the
 * claims JSON really holds, and print the bytes per cached token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <malloc.h>

#include "base/base.h"
#include "crypto/keyring.h"
#include "token/cache.h"
#include "token/token.h"

#define NOW 1700000000LL
#define ISS "https://latch.test"
#define AUD "api://services"
#define SUFFIX ",\"revocation_seq\":42}"

/* ---- counting allocator for jansson -------------------------------------------------- */

static size_t json_live; /* bytes, as glibc holds them: usable size + 8-byte chunk header */

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        json_live += malloc_usable_size(p) + 8;
    return p;
}

static void count_free(void *p)
{
    if (p != NULL)
        json_live -= malloc_usable_size(p) + 8;
    free(p);
}

/* ---- helpers --------------------------------------------------------------------------- */

static lt_keyring_t *make_ring(void)
{
    lt_keyring_entry_t e = {NULL, 1, 0};
    assert_int_equal(lt_key_generate(LT_ALG_EDDSA, &e.key), 0);
    lt_keyring_t *kr = NULL;
    assert_int_equal(lt_keyring_create(&e, 1, &kr), 0);
    return kr;
}

/* A login token: what /v1/auth/login issues for a user with two roles. */
static char *issue_user(const lt_keyring_t *kr)
{
    json_t *roles = json_pack("[ss]", "admin", "auditor"), *amr = json_pack("[ss]", "pwd", "otp");
    lt_token_claims_t c = {
        .iss = ISS,
        .aud = AUD,
        .sub = "6f1c2d3e-0000-4000-8000-000000000001",
        .sid = "6f1c2d3e-0000-4000-8000-000000000002",
        .tenant = "6f1c2d3e-0000-4000-8000-0000000000aa",
        .client_id = LT_TOKEN_FIRST_PARTY_CLIENT,
        .username = "ada.lovelace@example.com",
        .scope = "",
        .acr = "aal2",
        .roles = roles,
        .amr = amr,
        .auth_time = NOW - 60,
        .now = NOW,
        .ttl = 900,
    };
    char *jwt = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);
    json_decref(roles);
    json_decref(amr);
    return jwt;
}

/* A client_credentials token: no sid, auth_time, username, amr or acr. */
static char *issue_client(const lt_keyring_t *kr)
{
    json_t *roles = json_pack("[s]", "billing");
    lt_token_claims_t c = {
        .iss = ISS,
        .aud = AUD,
        .sub = "svc-billing",
        .tenant = "6f1c2d3e-0000-4000-8000-0000000000aa",
        .client_id = "svc-billing",
        .scope = "invoices:read invoices:write",
        .roles = roles,
        .now = NOW,
        .ttl = 300,
    };
    char *jwt = NULL;
    assert_int_equal(lt_token_issue(kr, &c, &jwt, NULL, 0), 0);
    json_decref(roles);
    return jwt;
}

static void verify(const lt_keyring_t *kr, const char *jwt, lt_token_t *t)
{
    lt_token_verify_opts_t o = {ISS, AUD, NOW, 0};
    const char *why = NULL;
    if (lt_token_verify(kr, jwt, strlen(jwt), &o, t, &why) != 0)
        fail_msg("rejected: %s", why);
}

/* A token as verify leaves it, without the signature work: enough for the cache. */
static void fake_token(lt_token_t *t, int64_t exp, int i)
{
    memset(t, 0, sizeof(*t));
    char jti[32];
    snprintf(jti, sizeof(jti), "jti-%d", i);
    t->claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:[s], s:[]}", "iss", ISS, "aud", AUD,
                          "sub", "user-1", "sid", "sess-1", "client_id", "latch", "jti", jti, "iat", (json_int_t)NOW,
                          "nbf", (json_int_t)NOW, "exp", (json_int_t)exp, "tenant", "acme", "roles", "admin", "amr");
    assert_non_null(t->claims);
    t->sub = json_string_value(json_object_get(t->claims, "sub"));
    t->sid = json_string_value(json_object_get(t->claims, "sid"));
    t->client_id = json_string_value(json_object_get(t->claims, "client_id"));
    t->jti = json_string_value(json_object_get(t->claims, "jti"));
    t->tenant = json_string_value(json_object_get(t->claims, "tenant"));
    t->scope = "";
    t->roles = json_object_get(t->claims, "roles");
    t->amr = json_object_get(t->claims, "amr");
    t->iat = t->nbf = NOW;
    t->exp = exp;
}

static void key_of(int i, uint8_t key[32])
{
    char s[32];
    int n = snprintf(s, sizeof(s), "tok-%d", i);
    assert_int_equal(lt_tcache_key(s, (size_t)n, key), 0);
}

/* Puts fake token `i` under key_of(i). */
static lt_tcache_entry_t *put_fake(lt_tcache_t *c, int i, int64_t exp, int64_t now)
{
    uint8_t key[32];
    lt_token_t t;
    key_of(i, key);
    fake_token(&t, exp, i);
    char *body = strdup("{\"active\":true");
    lt_tcache_entry_t *e = lt_tcache_put(c, key, &t, 7, body, strlen(body), now);
    assert_non_null(e);
    assert_null(t.claims); /* the cache owns it now */
    return e;
}

static int has(lt_tcache_t *c, int i, int64_t now)
{
    uint8_t key[32];
    key_of(i, key);
    return lt_tcache_get(c, key, now) != NULL;
}

static lt_tcache_stats_t stats(const lt_tcache_t *c)
{
    lt_tcache_stats_t s;
    lt_tcache_stats(c, &s);
    return s;
}

/* Parses rendered introspection with the caller's suffix appended. */
static json_t *parse_rendered(const char *body, size_t n)
{
    assert_int_equal(strlen(body), n);
    assert_true(n > 0 && body[n - 1] != '}');
    size_t len = n + strlen(SUFFIX);
    char *full = malloc(len + 1);
    memcpy(full, body, n);
    memcpy(full + n, SUFFIX, strlen(SUFFIX) + 1);
    json_error_t err;
    json_t *o = json_loadb(full, len, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", err.text, full);
    free(full);
    assert_int_equal(json_integer_value(json_object_get(o, "revocation_seq")), 42);
    return o;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_basic(void **state)
{
    (void)state;
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(0, &c), LT_EINVAL);
    assert_null(c);
    assert_int_equal(lt_tcache_create(8, &c), 0);
    uint8_t k1[32], k2[32];
    key_of(1, k1);
    key_of(2, k2);
    assert_memory_not_equal(k1, k2, 32);
    /* FIPS 180-2's "abc" vector: the key is plain SHA-256 of the token text. */
    uint8_t abc[32];
    assert_int_equal(lt_tcache_key("abc", 3, abc), 0);
    assert_memory_equal(abc,
                        "\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23"
                        "\xb0\x03\x61\xa3\x96\x17\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad",
                        32);
    assert_null(lt_tcache_get(c, k1, NOW));
    lt_tcache_stats_t s = stats(c);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.capacity, 8);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.misses, 1);

    lt_tcache_entry_t *e = put_fake(c, 1, NOW + 600, NOW);
    assert_memory_equal(e->key, k1, 32);
    assert_int_equal(e->expires, NOW + 600 + LT_TOKEN_LEEWAY);
    assert_int_equal(e->ring_gen, 7);
    assert_string_equal(e->body, "{\"active\":true");
    assert_int_equal(e->body_len, strlen(e->body));
    assert_ptr_equal(lt_tcache_get(c, k1, NOW), e);
    assert_string_equal(lt_tcache_get(c, k1, NOW)->token.jti, "jti-1");
    assert_null(lt_tcache_get(c, k2, NOW));
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 2);
    assert_true(s.bytes > sizeof(lt_tcache_entry_t));
    size_t one = s.bytes;

    /* Replace: same entry, new token, ring generation and body; the old ones freed (ASan). */
    lt_token_t t;
    fake_token(&t, NOW + 900, 100);
    char *body = strdup("{\"active\":true,\"x\":\"a longer body than the first one, in another malloc size class\"");
    lt_tcache_entry_t *e2 = lt_tcache_put(c, k1, &t, 8, body, strlen(body), NOW);
    assert_ptr_equal(e2, e);
    assert_int_equal(e->expires, NOW + 900 + LT_TOKEN_LEEWAY);
    assert_int_equal(e->ring_gen, 8);
    assert_string_equal(e->token.jti, "jti-100");
    assert_string_equal(e->body, body);
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_true(s.bytes > one); /* a longer jti and body */

    put_fake(c, 2, NOW + 600, NOW);
    assert_int_equal(stats(c).entries, 2);
    lt_tcache_remove(c, k1);
    assert_null(lt_tcache_get(c, k1, NOW));
    assert_non_null(lt_tcache_get(c, k2, NOW));
    lt_tcache_remove(c, k1); /* absent: no-op */
    lt_tcache_remove(c, k2);
    s = stats(c);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);

    /* Bad arguments: ownership is still taken (nothing leaks under ASan). */
    fake_token(&t, NOW + 600, 3);
    assert_null(lt_tcache_put(NULL, k1, &t, 1, strdup("x"), 1, NOW));
    assert_null(t.claims);
    memset(&t, 0, sizeof(t));
    assert_null(lt_tcache_put(c, k1, &t, 1, strdup("x"), 1, NOW));
    assert_null(lt_tcache_get(NULL, k1, NOW));
    lt_tcache_remove(NULL, k1);
    lt_tcache_stats(NULL, &s);
    assert_int_equal(s.entries, 0);

    /* Entries still in the cache are freed by destroy. */
    put_fake(c, 5, NOW + 600, NOW);
    lt_tcache_destroy(&c);
    assert_null(c);
    lt_tcache_destroy(&c);
    lt_tcache_destroy(NULL);
}

static void test_expiry(void **state)
{
    (void)state;
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(4, &c), 0);
    put_fake(c, 1, NOW + 10, NOW);
    /* Alive while verify would still accept it: until exp + leeway. */
    assert_true(has(c, 1, NOW + 10 + LT_TOKEN_LEEWAY - 1));
    assert_false(has(c, 1, NOW + 10 + LT_TOKEN_LEEWAY));
    lt_tcache_stats_t s = stats(c);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.bytes, 0);
    assert_false(has(c, 1, NOW)); /* gone, not resurrected by an earlier clock */
    lt_tcache_destroy(&c);
}

static void test_evict_prefers_expired(void **state)
{
    (void)state;
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(16, &c), 0);
    /* 8 entries expiring at NOW + 100 (+ leeway), 8 living long; then, later, 8 more. */
    for (int i = 0; i < 16; i++)
        put_fake(c, i, i % 2 == 0 ? NOW + 100 : NOW + 3600, NOW);
    assert_int_equal(stats(c).entries, 16);
    int64_t later = NOW + 1000;
    for (int i = 16; i < 24; i++) {
        put_fake(c, i, NOW + 3600, later);
        assert_true(stats(c).entries <= 16);
    }
    lt_tcache_stats_t s = stats(c);
    assert_int_equal(s.entries, 16);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.expired, 8);
    for (int i = 1; i < 24; i += i < 16 ? 2 : 1)
        if (!has(c, i, later))
            fail_msg("live entry %d evicted", i);
    lt_tcache_destroy(&c);
}

static void test_evict_soonest(void **state)
{
    (void)state;
    enum { CAP = 1000, NEW = 300 };
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(CAP, &c), 0);
    for (int i = 0; i < CAP; i++)
        put_fake(c, i, NOW + 1000 + i, NOW);
    /* None expired: each put evicts the soonest-expiring of a sample, so old entries with
     * early exp go first and the new, long-lived ones stay. */
    for (int i = 0; i < NEW; i++)
        put_fake(c, CAP + i, NOW + 1000000, NOW);
    lt_tcache_stats_t s = stats(c);
    assert_int_equal(s.entries, CAP);
    assert_int_equal(s.evictions, NEW);
    assert_int_equal(s.expired, 0);
    int new_lost = 0, old_kept = 0;
    double old_sum = 0;
    for (int i = 0; i < NEW; i++)
        new_lost += !has(c, CAP + i, NOW);
    for (int i = 0; i < CAP; i++)
        if (has(c, i, NOW)) {
            old_kept++;
            old_sum += i;
        }
    assert_true(new_lost <= 2); /* P(a sample of 8 all new) stays below 0.3^8 */
    assert_int_equal(old_kept + (NEW - new_lost), CAP);
    /* Random eviction would keep a mean index near 500; sampling pushes it well above. */
    if (old_sum / old_kept < 600)
        fail_msg("survivors' mean exp index %.0f: not evicting soonest-expiring", old_sum / old_kept);
    lt_tcache_destroy(&c);
}

static void test_flood(void **state)
{
    (void)state;
    enum { CAP = 1000, N = 100000 };
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(CAP, &c), 0);
    size_t max_bytes = 0;
    for (int i = 0; i < N; i++) {
        /* exp 1 to 10 minutes after `now`, which moves a second every 5 tokens, so entries
         * expire along the way and both eviction paths run. */
        int64_t now = NOW + i / 5;
        put_fake(c, i, now + 60 + (i * 7919) % 540, now);
        lt_tcache_stats_t s = stats(c);
        if (s.entries > CAP)
            fail_msg("%zu entries after %d puts", s.entries, i + 1);
        if (s.bytes > max_bytes)
            max_bytes = s.bytes;
    }
    /* One expiry scan may free several slots, so the cache can end just below full. */
    lt_tcache_stats_t s = stats(c);
    assert_true(s.entries <= CAP && s.entries > CAP - 100);
    assert_int_equal(s.evictions + s.expired, N - s.entries);
    assert_true(s.expired > 0 && s.evictions > 0);
    assert_true(max_bytes < (size_t)CAP * 4096);
    /* The newest token (not expired) is there. */
    assert_true(has(c, N - 1, NOW + (N - 1) / 5));
    print_message("flood: %d puts into %d: %llu evicted, %llu expired, max %zu bytes\n", N, CAP,
                  (unsigned long long)s.evictions, (unsigned long long)s.expired, max_bytes);
    lt_tcache_destroy(&c);
}

/* Keys whose first 8 bytes (the hash) collide or sit next to each other: long probe runs,
 * with removals in the middle, against a plain reference of what should be present. */
static void test_clustered_keys(void **state)
{
    (void)state;
    enum { CAP = 64, KEYS = 60, OPS = 20000 };
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(CAP, &c), 0);
    uint8_t keys[KEYS][32];
    int present[KEYS] = {0};
    for (int i = 0; i < KEYS; i++) {
        memset(keys[i], 0, 32);
        uint64_t h = (uint64_t)(i % 5) * 127; /* homes 0, 127, 126, 125, 124 of 128: runs wrap */
        memcpy(keys[i], &h, 8);
        keys[i][31] = (uint8_t)i;
    }
    uint64_t r = 88172645463325252ULL;
    for (int op = 0; op < OPS; op++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        int k = (int)(r % KEYS);
        if ((r >> 32) % 3 == 0) {
            lt_tcache_remove(c, keys[k]);
            present[k] = 0;
        } else {
            lt_token_t t;
            fake_token(&t, NOW + 600, k);
            assert_non_null(lt_tcache_put(c, keys[k], &t, 1, NULL, 0, NOW));
            present[k] = 1;
        }
        for (int i = 0; i < KEYS; i++) {
            lt_tcache_entry_t *e = lt_tcache_get(c, keys[i], NOW);
            if ((e != NULL) != present[i])
                fail_msg("op %d: key %d %s", op, i, present[i] ? "lost" : "resurrected");
            if (e != NULL)
                assert_memory_equal(e->key, keys[i], 32);
        }
    }
    lt_tcache_stats_t s = stats(c);
    int n = 0;
    for (int i = 0; i < KEYS; i++)
        n += present[i];
    assert_int_equal(s.entries, n);
    assert_int_equal(s.evictions, 0);
    lt_tcache_destroy(&c);
}

static void test_render_user(void **state)
{
    (void)state;
    lt_keyring_t *kr = make_ring();
    char *jwt = issue_user(kr), *body = NULL;
    lt_token_t t;
    verify(kr, jwt, &t);
    size_t n = 0;
    assert_int_equal(lt_token_introspection_render(&t, &body, &n), 0);
    json_t *o = parse_rendered(body, n);
    /* RFC 7662 first: active, scope, client_id, username, token_type. */
    assert_memory_equal(body, "{\"active\":true,\"scope\":\"\",\"client_id\":\"latch\",\"username\":", 57);
    assert_true(json_is_true(json_object_get(o, "active")));
    assert_string_equal(json_string_value(json_object_get(o, "scope")), "");
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "latch");
    assert_string_equal(json_string_value(json_object_get(o, "username")), "ada.lovelace@example.com");
    assert_string_equal(json_string_value(json_object_get(o, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(o, "exp")), NOW + 900);
    assert_int_equal(json_integer_value(json_object_get(o, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(o, "nbf")), NOW);
    assert_string_equal(json_string_value(json_object_get(o, "sub")), "6f1c2d3e-0000-4000-8000-000000000001");
    assert_string_equal(json_string_value(json_object_get(o, "aud")), AUD);
    assert_string_equal(json_string_value(json_object_get(o, "iss")), ISS);
    assert_string_equal(json_string_value(json_object_get(o, "jti")), t.jti);
    assert_string_equal(json_string_value(json_object_get(o, "sid")), "6f1c2d3e-0000-4000-8000-000000000002");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "6f1c2d3e-0000-4000-8000-0000000000aa");
    json_t *want_roles = json_pack("[ss]", "admin", "auditor"), *want_amr = json_pack("[ss]", "pwd", "otp");
    assert_true(json_equal(json_object_get(o, "roles"), want_roles));
    assert_true(json_equal(json_object_get(o, "amr"), want_amr));
    assert_string_equal(json_string_value(json_object_get(o, "acr")), "aal2");
    assert_int_equal(json_integer_value(json_object_get(o, "auth_time")), NOW - 60);
    assert_int_equal(json_object_size(o), 19); /* the 18 above + revocation_seq */
    json_decref(want_roles);
    json_decref(want_amr);
    json_decref(o);
    free(body);
    /* Rendering leaves the token's claims as they were (borrowed members released). */
    assert_int_equal(t.claims->refcount, 1);
    assert_int_equal(json_object_get(t.claims, "amr")->refcount, 1);
    lt_token_free(&t);
    free(jwt);

    /* aud as an array stays an array. */
    fake_token(&t, NOW + 60, 9);
    json_object_set_new(t.claims, "aud", json_pack("[ss]", AUD, "api://other"));
    assert_int_equal(lt_token_introspection_render(&t, &body, &n), 0);
    o = parse_rendered(body, n);
    assert_true(json_is_array(json_object_get(o, "aud")));
    assert_int_equal(json_array_size(json_object_get(o, "aud")), 2);
    assert_null(json_object_get(o, "amr")); /* [] in the token: nothing to say */
    assert_null(json_object_get(o, "auth_time"));
    json_decref(o);
    free(body);
    lt_token_free(&t);
    assert_int_equal(lt_token_introspection_render(NULL, &body, &n), LT_EINVAL);
    lt_keyring_unref(kr);
}

static void test_render_client(void **state)
{
    (void)state;
    lt_keyring_t *kr = make_ring();
    char *jwt = issue_client(kr), *body = NULL;
    lt_token_t t;
    verify(kr, jwt, &t);
    size_t n = 0;
    assert_int_equal(lt_token_introspection_render(&t, &body, &n), 0);
    json_t *o = parse_rendered(body, n);
    assert_true(json_is_true(json_object_get(o, "active")));
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "svc-billing");
    assert_string_equal(json_string_value(json_object_get(o, "scope")), "invoices:read invoices:write");
    assert_string_equal(json_string_value(json_object_get(o, "sub")), "svc-billing");
    assert_string_equal(json_string_value(json_object_get(o, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(o, "exp")), NOW + 300);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "roles"), 0)), "billing");
    const char *absent[] = {"username", "sid", "amr", "acr", "auth_time"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (json_object_get(o, absent[i]) != NULL)
            fail_msg("client token introspection has %s", absent[i]);
    const char *present[] = {"active", "scope", "client_id", "token_type", "exp", "iat", "nbf",
                             "sub",    "aud",   "iss",       "jti",        "tenant", "roles"};
    for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
        if (json_object_get(o, present[i]) == NULL)
            fail_msg("client token introspection lacks %s", present[i]);
    assert_int_equal(json_object_size(o), 14);
    json_decref(o);

    /* The cache keeps the rendered body with the token. */
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(4, &c), 0);
    uint8_t key[32];
    assert_int_equal(lt_tcache_key(jwt, strlen(jwt), key), 0);
    lt_tcache_entry_t *e = lt_tcache_put(c, key, &t, 3, body, n, NOW);
    assert_non_null(e);
    assert_ptr_equal(lt_tcache_get(c, key, NOW), e);
    assert_string_equal(e->token.client_id, "svc-billing");
    assert_null(e->token.sid);
    assert_int_equal(e->body_len, n);
    lt_tcache_destroy(&c);
    free(jwt);
    lt_keyring_unref(kr);
}

/* Bytes per cached user token: the cache's estimate against the counted heap. */
static void test_memory(void **state)
{
    (void)state;
    enum { N = 1000 };
    lt_keyring_t *kr = make_ring();
    char *jwt = issue_user(kr);
    lt_tcache_t *c = NULL;
    assert_int_equal(lt_tcache_create(N, &c), 0);
    size_t claims_heap = 0, body_heap = 0, body_len = 0;
    for (int i = 0; i < N; i++) {
        lt_token_t t;
        size_t before = json_live;
        verify(kr, jwt, &t);
        claims_heap += json_live - before; /* header JSON and scratch are gone again */
        char *body = NULL;
        size_t n = 0;
        assert_int_equal(lt_token_introspection_render(&t, &body, &n), 0);
        body_heap += malloc_usable_size(body) + 8;
        body_len = n;
        uint8_t key[32];
        key_of(i, key);
        assert_non_null(lt_tcache_put(c, key, &t, 1, body, n, NOW));
    }
    lt_tcache_stats_t s = stats(c);
    assert_int_equal(s.entries, N);
    size_t fixed = sizeof(lt_tcache_entry_t) + 2 * sizeof(uint32_t) + sizeof(size_t) + 2048 * 4 / N;
    double est = (double)s.bytes / N, measured = (double)(claims_heap + body_heap) / N + (double)fixed;
    print_message("tcache: %d user tokens (jwt %zu bytes, introspection body %zu bytes): estimate %.0f bytes per "
                  "entry, counted %.0f (claims JSON %.0f, body %.0f, slot+index %zu)\n",
                  N, strlen(jwt), body_len, est, measured, (double)claims_heap / N, (double)body_heap / N, fixed);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) /* sanitizers' allocators have other chunk sizes than glibc's */
    if (est < measured * 0.85 || est > measured * 1.15)
        fail_msg("estimate %.0f is off the counted %.0f by more than 15%%", est, measured);
#endif
    lt_tcache_destroy(&c);
    free(jwt);
    lt_keyring_unref(kr);
}

int main(void)
{
    json_set_alloc_funcs(count_malloc, count_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_evict_prefers_expired),
        cmocka_unit_test(test_evict_soonest),
        cmocka_unit_test(test_flood),
        cmocka_unit_test(test_clustered_keys),
        cmocka_unit_test(test_render_user),
        cmocka_unit_test(test_render_client),
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests_name("tcache", tests, NULL, NULL);
}
