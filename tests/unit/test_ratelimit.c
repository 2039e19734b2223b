/*
 * Unit tests for lib/http/ratelimit.c: the GCRA bucket math (refill, burst, the header
 * values), the bounded table (cap, eviction order, sampling), route classification, the
 * rate_limits and trusted_proxies parsers and the X-Forwarded-For rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>

#include "http/ratelimit.h"

#define S 1000000000ull
#define T0 (1000 * S) /* any positive monotonic time */

static void charge(lt_rl_table_t *t, const lt_rl_limit_t *l, const char *key, uint64_t now, lt_rl_verdict_t *v)
{
    lt_rl_table_charge(t, l, key, strlen(key), now, v);
}

static void test_limit_bounds(void **state)
{
    (void)state;
    lt_rl_limit_t l;
    assert_int_equal(lt_rl_limit_set(&l, 0, 1), LT_EINVAL);
    assert_int_equal(lt_rl_limit_set(&l, -1, 1), LT_EINVAL);
    assert_int_equal(lt_rl_limit_set(&l, 2e9, 1), LT_EINVAL);
    assert_int_equal(lt_rl_limit_set(&l, 10, 0), LT_EINVAL);
    assert_int_equal(lt_rl_limit_set(&l, 10, 1000001), LT_EINVAL);
    assert_int_equal(lt_rl_limit_set(&l, 10, 30), 0);
    assert_int_equal(l.interval_ns, S / 10);
    assert_int_equal(l.tolerance_ns, 29 * (S / 10));
    assert_int_equal(lt_rl_limit_set(&l, 1e9, 1000000), 0);
    assert_int_equal(l.interval_ns, 1);
    assert_int_equal(lt_rl_limit_set(&l, 0.001, 1000000), 0);
    assert_int_equal(l.interval_ns, 1000 * S);
}

/* A fresh bucket takes `burst` at once, then one per interval. */
static void test_burst_and_refill(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 10, 30), 0);
    for (uint32_t i = 0; i < 30; i++) {
        charge(t, &l, "10.0.0.1", T0, &v);
        assert_true(v.allowed);
        assert_int_equal(v.limit, 30);
        assert_int_equal(v.remaining, 29 - i);
        /* the bucket is full again (i + 1) tenths of a second later, rounded up */
        assert_int_equal(v.reset, (i + 1 + 9) / 10);
    }
    charge(t, &l, "10.0.0.1", T0, &v);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after, 1); /* 100 ms, rounded up */
    assert_int_equal(v.reset, 3);
    /* a refused request costs nothing: 99 ms later still refused, 100 ms later one passes */
    charge(t, &l, "10.0.0.1", T0 + S / 10 - 1000000, &v);
    assert_false(v.allowed);
    charge(t, &l, "10.0.0.1", T0 + S / 10, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 0);
    charge(t, &l, "10.0.0.1", T0 + S / 10, &v);
    assert_false(v.allowed);
    /* after a long pause the bucket holds `burst`, never more */
    charge(t, &l, "10.0.0.1", T0 + 100 * S, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 29);
    /* another key has its own bucket */
    charge(t, &l, "10.0.0.2", T0 + S / 10, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 29);
    lt_rl_table_destroy(&t);
    assert_null(t);
}

/* Slow limits: Retry-After counts whole seconds up, never 0; Reset >= Retry-After. */
static void test_retry_after(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 0.5, 1), 0); /* one per 2 s */
    charge(t, &l, "k", T0, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.reset, 2);
    charge(t, &l, "k", T0, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after, 2);
    assert_int_equal(v.reset, 2);
    charge(t, &l, "k", T0 + 1500000000ull, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after, 1);
    assert_int_equal(v.reset, 1);
    charge(t, &l, "k", T0 + 2 * S - 1, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after, 1); /* 1 ns away: still a whole second, never 0 */
    charge(t, &l, "k", T0 + 2 * S, &v);
    assert_true(v.allowed);

    /* burst 5 at 1/s: the sixth waits 1 s, the bucket is full 6 s after the fifth */
    assert_int_equal(lt_rl_limit_set(&l, 1, 5), 0);
    for (int i = 0; i < 5; i++) {
        charge(t, &l, "b", T0, &v);
        assert_true(v.allowed);
    }
    assert_int_equal(v.reset, 5);
    charge(t, &l, "b", T0, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after, 1);
    assert_int_equal(v.reset, 5);
    lt_rl_table_destroy(&t);
}

/* Memory is capped whatever the number of keys; idle buckets go before indebted ones. */
static void test_cap_and_eviction(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t slow, fast;
    lt_rl_verdict_t v;
    char key[32];
    assert_int_equal(lt_rl_table_create(64, &t), 0);
    size_t cap = lt_rl_table_capacity(t);
    assert_true(cap >= 64 && cap < 64 + 8);
    assert_int_equal(lt_rl_limit_set(&slow, 0.001, 1), 0);
    assert_int_equal(lt_rl_limit_set(&fast, 1, 1), 0);

    /* a spray of 100k keys with debt: the table never grows, evictions are counted */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "spray-%d", i);
        charge(t, &slow, key, T0, &v);
        assert_true(v.allowed);
    }
    assert_true(lt_rl_table_used(t) <= cap);
    assert_true(lt_rl_table_evictions(t) >= 100000 - cap);
    lt_rl_table_destroy(&t);

    /* one set: six keys fill it; once they are idle a seventh evicts nobody's debt */
    assert_int_equal(lt_rl_table_create(6, &t), 0);
    assert_int_equal(lt_rl_table_capacity(t), 6);
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        charge(t, &fast, key, T0, &v);
    }
    assert_int_equal(lt_rl_table_used(t), 6);
    charge(t, &fast, "k6", T0 + 10 * S, &v);
    assert_int_equal(lt_rl_table_evictions(t), 0);
    /* now every bucket has debt: the next newcomer evicts the one closest to full */
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        charge(t, &fast, key, T0 + 20 * S + (uint64_t)i, &v);
    }
    uint64_t ev = lt_rl_table_evictions(t);
    charge(t, &fast, "late", T0 + 20 * S + 100, &v);
    assert_int_equal(lt_rl_table_evictions(t), ev + 1);
    /* n0 (closest to full) was evicted: it comes back with a fresh bucket; n5 is still limited */
    charge(t, &fast, "n5", T0 + 20 * S + 200, &v);
    assert_false(v.allowed);
    charge(t, &fast, "n0", T0 + 20 * S + 300, &v);
    assert_true(v.allowed);
    lt_rl_table_destroy(&t);
}

/* A refused key is sampled for audit at most once a minute. */
static void test_audit_sampling(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    assert_int_equal(lt_rl_table_create(100, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 0.001, 1), 0);
    charge(t, &l, "a", T0, &v);
    assert_true(v.allowed);
    assert_false(v.audit);
    charge(t, &l, "a", T0 + 1, &v);
    assert_false(v.allowed);
    assert_true(v.audit);
    for (int i = 2; i < 50; i++) {
        charge(t, &l, "a", T0 + (uint64_t)i * S, &v);
        assert_false(v.allowed);
        assert_false(v.audit);
    }
    charge(t, &l, "b", T0, &v);
    charge(t, &l, "b", T0, &v);
    assert_true(v.audit); /* another key is sampled on its own */
    charge(t, &l, "a", T0 + 61 * S, &v);
    assert_false(v.allowed);
    assert_true(v.audit);
    lt_rl_table_destroy(&t);
}

static void charge_leased(lt_rl_table_t *t, const lt_rl_limit_t *l, const char *key, uint64_t now, lt_rl_verdict_t *v)
{
    lt_rl_table_charge_leased(t, l, key, strlen(key), now, v);
}

/* A limit too slow or too small to lease is charged exactly as without leases. */
static void test_lease_exact_for_slow_limits(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 999, 100000), 0); /* under 1000/s */
    for (int i = 0; i < 100; i++) {
        charge_leased(t, &l, "a", T0, &v);
        assert_true(v.allowed);
        assert_int_equal(v.granted, 1);
        assert_int_equal(v.remaining, 99999 - i);
    }
    assert_int_equal(lt_rl_limit_set(&l, 1e6, 15), 0); /* burst under 16 */
    for (int i = 0; i < 15; i++) {
        charge_leased(t, &l, "b", T0, &v);
        assert_true(v.allowed);
        assert_int_equal(v.granted, 1);
    }
    charge_leased(t, &l, "b", T0, &v);
    assert_false(v.allowed);
    lt_rl_table_destroy(&t);
}

/* Leases grow for a busy key but never admit more than the burst at one instant. */
static void test_lease_never_exceeds(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    uint32_t allowed = 0, biggest = 0;
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 1e6, 100000), 0);
    for (int i = 0; i < 200000; i++) {
        charge_leased(t, &l, "busy", T0, &v);
        if (v.allowed)
            allowed++;
        if (v.granted > biggest)
            biggest = v.granted;
    }
    assert_int_equal(allowed, 100000);
    assert_int_equal(biggest, 1024); /* LEASE_MAX: the lease grew to its cap */
    /* the shared bucket agrees: nothing left */
    charge(t, &l, "busy", T0, &v);
    assert_false(v.allowed);
    lt_rl_table_destroy(&t);
}

/* What an expired lease did not spend goes back to the bucket with the key's next charge. */
static void test_lease_refund(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    lt_rl_verdict_t v;
    const uint64_t T1 = T0 + 2000000 + 1; /* just past the 2 ms a lease lives */
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 1e4, 100000), 0); /* interval 100 us, leases up to 20 */
    /* 25 requests at T0: leases of 1, 2, 4, 8 and 16, 10 of the last spent, 6 not */
    for (int i = 0; i < 25; i++) {
        charge_leased(t, &l, "k", T0, &v);
        assert_true(v.allowed);
    }
    assert_int_equal(v.granted, 1);
    /* expired: 6 back, a new lease of what was spent (10) */
    charge_leased(t, &l, "k", T1, &v);
    assert_true(v.allowed);
    assert_int_equal(v.granted, 10);
    /* debt at T1: 31 taken - 6 back + 10 = 35 tokens of 100 us, less the 2 ms refilled; one
     * more exact charge: 16 tokens of debt, tolerance is 100000 */
    charge(t, &l, "k", T1, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 100000 - 16);
    lt_rl_table_destroy(&t);
}

typedef struct {
    lt_rl_table_t *t;
    const lt_rl_limit_t *l;
    uint32_t allowed;
} lease_worker_t;

static void *lease_worker(void *arg)
{
    lease_worker_t *w = arg;
    lt_rl_verdict_t v;
    /* until refused: a refusal comes only with the thread's own lease spent, so neither
     * thread can stop holding tokens the other was denied */
    for (int i = 0; i < 1000000; i++) {
        charge_leased(w->t, w->l, "shared", T0, &v);
        if (!v.allowed)
            break;
        w->allowed++;
    }
    return NULL;
}

/* Two threads with leases of their own on one key share one burst, to the token. */
static void test_lease_two_threads(void **state)
{
    (void)state;
    lt_rl_table_t *t;
    lt_rl_limit_t l;
    pthread_t th[2];
    lease_worker_t w[2];
    assert_int_equal(lt_rl_table_create(1000, &t), 0);
    assert_int_equal(lt_rl_limit_set(&l, 1e6, 200000), 0);
    for (int i = 0; i < 2; i++) {
        w[i] = (lease_worker_t){.t = t, .l = &l};
        assert_int_equal(pthread_create(&th[i], NULL, lease_worker, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[0].allowed + w[1].allowed, 200000);
    lt_rl_table_destroy(&t);
}

static void test_classify(void **state)
{
    (void)state;
    static const struct {
        const char *pattern;
        lt_rl_group_t g;
    } cases[] = {
        {"/v1/auth/login", LT_RL_GROUP_LOGIN},
        {"/v1/auth/password-reset", LT_RL_GROUP_LOGIN},
        {"/v1/auth/password-reset/confirm", LT_RL_GROUP_LOGIN},
        {"/v1/me/password", LT_RL_GROUP_LOGIN},
        {"/v1/auth/mfa/verify", LT_RL_GROUP_MFA},
        {"/v1/auth/step-up", LT_RL_GROUP_MFA},
        {"/v1/me/mfa", LT_RL_GROUP_MFA},
        {"/v1/me/mfa/totp/{id}/confirm", LT_RL_GROUP_MFA},
        {"/oauth2/token", LT_RL_GROUP_TOKEN},
        {"/oauth2/revoke", LT_RL_GROUP_TOKEN},
        {"/v1/auth/refresh", LT_RL_GROUP_TOKEN},
        {"/v1/auth/logout", LT_RL_GROUP_TOKEN},
        {"/oauth2/introspect", LT_RL_GROUP_INTROSPECTION},
        {"/access/v1/evaluation", LT_RL_GROUP_DECISIONS},
        {"/access/v1/evaluations", LT_RL_GROUP_DECISIONS},
        {"/v1/forward-auth", LT_RL_GROUP_DECISIONS},
        {"/v1/forward-auth/{path}", LT_RL_GROUP_DECISIONS},
        {"/v1/admin/users/{id}", LT_RL_GROUP_ADMIN},
        {"/v1/admin/users/{id}/mfa", LT_RL_GROUP_ADMIN},
        {"/v1/admin/keys/rotate", LT_RL_GROUP_ADMIN},
        {"/healthz", LT_RL_GROUP_NONE},
        {"/readyz", LT_RL_GROUP_NONE},
        {"/metrics", LT_RL_GROUP_NONE},
        {"/.well-known/jwks.json", LT_RL_GROUP_NONE},
        {"/.well-known/authzen-configuration", LT_RL_GROUP_NONE},
        {"/v1/me", LT_RL_GROUP_NONE},
        {"/v1/me/sessions", LT_RL_GROUP_NONE},
        {"/v1/administrator", LT_RL_GROUP_NONE},
        {"/v1/auth/login2", LT_RL_GROUP_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (lt_rl_classify(cases[i].pattern) != cases[i].g)
            fail_msg("%s: got %s", cases[i].pattern, lt_rl_group_name(lt_rl_classify(cases[i].pattern)));
}

static void test_config_parse(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(lt_http_ratelimit_check("{}", "", err, sizeof(err)), 0);
    assert_int_equal(lt_http_ratelimit_check("", NULL, err, sizeof(err)), 0);
    assert_int_equal(lt_http_ratelimit_check("{\"defaults\":false,\"max_entries\":1024,\"login\":{\"ip\":{\"rate\":1,"
                                             "\"burst\":2},\"tenant\":null},\"introspection\":{\"client\":{\"rate\":"
                                             "0.5}},\"admin\":{\"user\":false}}",
                                             "10.0.0.0/8, 192.168.1.1 ::1 fd00::/8", err, sizeof(err)),
                     0);
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"[]", "rate_limits: must be a JSON object"},
        {"{", "rate_limits: must be a JSON object: "},
        {"{\"logins\":{}}", "rate_limits: logins: no such member"},
        {"{\"login\":{\"ipv4\":null}}", "rate_limits: login.ipv4: no such member"},
        {"{\"login\":{\"ip\":{\"rate\":0}}}", "rate_limits: login.ip.rate: required"},
        {"{\"login\":{\"ip\":{\"burst\":3}}}", "rate_limits: login.ip.rate: required"},
        {"{\"login\":{\"ip\":{\"rate\":1,\"burst\":0}}}", "rate_limits: login.ip.burst: an integer"},
        {"{\"login\":{\"ip\":{\"rate\":1,\"window\":3}}}", "rate_limits: login.ip.window: no such member"},
        {"{\"login\":{\"ip\":5}}", "rate_limits: login.ip: expected"},
        {"{\"login\":[]}", "rate_limits: login: expected an object"},
        {"{\"defaults\":1}", "rate_limits: defaults: expected true or false"},
        {"{\"max_entries\":10}", "rate_limits: max_entries: an integer"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ret = lt_http_ratelimit_check(bad[i].json, "", err, sizeof(err));
        if (ret != LT_EINVAL || strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("%s: got %d \"%s\"", bad[i].json, ret, err);
    }
    static const char *const bad_proxies[] = {"10.0.0.0/33", "foo", "10.0.0.1/", "::1/129", "1.2.3.4:80", "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof(bad_proxies) / sizeof(bad_proxies[0]); i++) {
        int ret = lt_http_ratelimit_check("{}", bad_proxies[i], err, sizeof(err));
        if (ret != LT_EINVAL || strncmp(err, "trusted_proxies: ", 17) != 0)
            fail_msg("%s: got %d \"%s\"", bad_proxies[i], ret, err);
    }
}

static lt_rl_addr_t addr(const char *s)
{
    lt_rl_addr_t a;
    assert_int_equal(lt_rl_addr_parse(s, strlen(s), &a), 0);
    return a;
}

static void assert_client(const lt_rl_cidr_t *c, int n, const char *peer, const char *xff, const char *want)
{
    lt_rl_addr_t p = addr(peer), out, w = addr(want);
    lt_rl_client_addr(&p, xff, xff != NULL ? strlen(xff) : 0, c, n, &out);
    if (memcmp(&out, &w, sizeof(w)) != 0) {
        char got[64];
        inet_ntop(out.family, out.bytes, got, sizeof(got));
        fail_msg("peer %s xff \"%s\": got %s, want %s", peer, xff != NULL ? xff : "(none)", got, want);
    }
}

static void test_addresses(void **state)
{
    (void)state;
    lt_rl_addr_t a;
    char err[128];
    assert_int_equal(lt_rl_addr_parse(" 1.2.3.4 ", 9, &a), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(lt_rl_addr_parse("[2001:db8::1]", 13, &a), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(lt_rl_addr_parse("::ffff:10.1.2.3", 15, &a), 0);
    assert_int_equal(a.family, AF_INET); /* mapped addresses are IPv4 */
    assert_int_equal(a.bytes[0], 10);
    assert_int_equal(lt_rl_addr_parse("1.2.3.4:80", 10, &a), LT_EINVAL);
    assert_int_equal(lt_rl_addr_parse("", 0, &a), LT_EINVAL);
    assert_int_equal(lt_rl_addr_parse("unknown", 7, &a), LT_EINVAL);

    lt_rl_cidr_t c[8];
    int n = lt_rl_cidrs_parse("10.0.0.0/8, 192.168.1.7 fd00::/8,::ffff:172.16.0.0/108", c, 8, err, sizeof(err));
    assert_int_equal(n, 4);
    assert_int_equal(c[1].bits, 32);
    assert_int_equal(c[3].net.family, AF_INET);
    assert_int_equal(c[3].bits, 12);
    assert_int_equal(lt_rl_cidrs_parse("10.0.0.1/8", c, 8, err, sizeof(err)), 1);
    assert_int_equal(c[0].net.bytes[3], 0); /* host bits cleared */
    assert_int_equal(lt_rl_cidrs_parse("1.1.1.1,2.2.2.2", c, 1, err, sizeof(err)), LT_EINVAL);
    assert_int_equal(lt_rl_cidrs_parse("", c, 8, err, sizeof(err)), 0);

    n = lt_rl_cidrs_parse("10.0.0.0/8, fd00::/8", c, 8, err, sizeof(err));
    assert_int_equal(n, 2);
    /* an untrusted peer: its X-Forwarded-For is ignored */
    assert_client(c, n, "203.0.113.9", "1.2.3.4", "203.0.113.9");
    /* no proxies configured: same */
    assert_client(c, 0, "10.0.0.1", "1.2.3.4", "10.0.0.1");
    /* a trusted peer without the header */
    assert_client(c, n, "10.0.0.1", NULL, "10.0.0.1");
    /* the right-most entry that is not a trusted proxy */
    assert_client(c, n, "10.0.0.1", "1.2.3.4", "1.2.3.4");
    assert_client(c, n, "10.0.0.1", "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4");
    assert_client(c, n, "fd00::5", "2001:db8::7,10.1.1.1", "2001:db8::7");
    assert_client(c, n, "::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4");
    /* a spoofed left part is never reached, malformed or not */
    assert_client(c, n, "10.0.0.1", "garbage, 1.2.3.4", "1.2.3.4");
    /* malformed where it had to be read: the peer */
    assert_client(c, n, "10.0.0.1", "1.2.3.4, garbage", "10.0.0.1");
    assert_client(c, n, "10.0.0.1", "1.2.3.4,", "10.0.0.1");
    assert_client(c, n, "10.0.0.1", "", "10.0.0.1");
    assert_client(c, n, "10.0.0.1", "1.2.3.4:5678", "10.0.0.1");
    /* all trusted: the left-most */
    assert_client(c, n, "10.0.0.1", "10.0.0.7, 10.0.0.8", "10.0.0.7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_bounds),     cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_retry_after),      cmocka_unit_test(test_cap_and_eviction),
        cmocka_unit_test(test_audit_sampling),   cmocka_unit_test(test_classify),
        cmocka_unit_test(test_config_parse),     cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_lease_exact_for_slow_limits), cmocka_unit_test(test_lease_never_exceeds),
        cmocka_unit_test(test_lease_refund),     cmocka_unit_test(test_lease_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
