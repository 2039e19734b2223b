/*
 * Unit tests for lib/crypto/hasher: hashing and verification through the pool on a real
 * h2o evloop (argon2id, the dummy hash, rehash on outdated parameters, argon2i imports),
 * the strict PHC parser, the bounded queue, cancellation in each job state, port teardown
 * with work in flight, and the check function. Real argon2, with tiny parameters
 * (m=1024, t=1) except where the default parameters are the point.
 *
 * Determinism: a check function ("gate") holds the single hasher thread inside a hash job
 * until the test opens it, so queue contents at each step are known, not raced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>
#include <cmocka.h>
#include <h2o.h>
#include <pthread.h>

#include "crypto/hasher.h"
#include "identity/password.h"

static const lt_hasher_params_t tiny = {1024, 1, 1};
static const lt_hasher_params_t defaults = {19456, 2, 1};
#define TINY_PREFIX "$argon2id$v=19$m=1024,t=1,p=1$"
#define DEFAULT_PREFIX "$argon2id$v=19$m=19456,t=2,p=1$"

/* ---- fixtures ----------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int open;
    int entered;
} gate_t;

/*
 * The test check function, by context: "gate" blocks until the gate opens, "reject"
 * refuses with a reason, anything else passes.
 */
static int test_check(const char *password, size_t n, const char *context, char *reason, size_t cap, void *data)
{
    gate_t *g = data;
    if (strcmp(context, "gate") == 0) {
        pthread_mutex_lock(&g->mutex);
        g->entered++;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
            pthread_cond_wait(&g->cond, &g->mutex);
        pthread_mutex_unlock(&g->mutex);
        return 0;
    }
    if (strcmp(context, "reject") == 0) {
        snprintf(reason, cap, "Refused by the test.");
        return 1;
    }
    return 0;
}

static void gate_wait_entered(gate_t *g, int n)
{
    pthread_mutex_lock(&g->mutex);
    while (g->entered < n)
        pthread_cond_wait(&g->cond, &g->mutex);
    pthread_mutex_unlock(&g->mutex);
}

static void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->mutex);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mutex);
}

typedef struct {
    h2o_evloop_t *loop;
    lt_hasher_t *h;
    lt_hasher_port_t *port;
    gate_t gate;
} env_t;

static void env_init(env_t *e, lt_hasher_params_t params, int threads, size_t queue_max)
{
    lt_hasher_options_t o = {.params = params, .threads = threads, .queue_max = queue_max, .check = test_check,
                             .check_data = &e->gate};
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->gate.mutex, NULL);
    pthread_cond_init(&e->gate.cond, NULL);
    e->loop = h2o_evloop_create();
    assert_int_equal(lt_hasher_create(&o, &e->h), 0);
    assert_int_equal(lt_hasher_port_create(e->h, e->loop, &e->port), 0);
}

static void env_fini(env_t *e)
{
    gate_open(&e->gate); /* a test that failed half-way must not leave a thread stuck */
    lt_hasher_port_destroy(&e->port);
    assert_null(e->port);
    lt_hasher_destroy(&e->h);
    assert_null(e->h);
    h2o_evloop_run(e->loop, 0); /* releases the port's closed queue socket */
    h2o_evloop_destroy(e->loop);
    pthread_cond_destroy(&e->gate.cond);
    pthread_mutex_destroy(&e->gate.mutex);
}

/* What a callback saw, copied out (res's strings live only during the callback). */
typedef struct {
    int called;
    int err, match, needs_rehash, rejected;
    int has_phc;
    char phc[LT_PHC_MAX + 1];
    char reason[256];
} outcome_t;

static void on_done(const lt_hasher_result_t *res, void *data)
{
    outcome_t *o = data;
    o->called++;
    o->err = res->err;
    o->match = res->match;
    o->needs_rehash = res->needs_rehash;
    o->rejected = res->rejected;
    o->has_phc = res->phc != NULL;
    snprintf(o->phc, sizeof(o->phc), "%s", res->phc != NULL ? res->phc : "");
    snprintf(o->reason, sizeof(o->reason), "%s", res->reason != NULL ? res->reason : "");
}

/* Runs the loop until `*count` reaches `want` (10 s at most). */
static void run_until(env_t *e, const int *count, int want)
{
    uint64_t deadline = lt_monotonic_ns() + 10ull * 1000000000ull;
    while (*count < want && lt_monotonic_ns() < deadline)
        h2o_evloop_run(e->loop, 10);
    assert_int_equal(*count, want);
}

static void run_for_ms(env_t *e, int ms)
{
    uint64_t end = lt_monotonic_ns() + (uint64_t)ms * 1000000ull;
    while (lt_monotonic_ns() < end)
        h2o_evloop_run(e->loop, 5);
}

static lt_hasher_stats_t stats(env_t *e)
{
    lt_hasher_stats_t s;
    lt_hasher_get_stats(e->h, &s);
    return s;
}

/* Waits (without running the loop) until the pool has run `verifications` and is idle, so
 * a finished job's result waits, undelivered, in the port's receiver. */
static void wait_idle_after(env_t *e, uint64_t verifications)
{
    uint64_t deadline = lt_monotonic_ns() + 10ull * 1000000000ull;
    lt_hasher_stats_t s = stats(e);
    while ((s.verifications < verifications || s.busy != 0 || s.queued != 0) && lt_monotonic_ns() < deadline) {
        usleep(1000);
        s = stats(e);
    }
    assert_true(s.verifications >= verifications && s.busy == 0 && s.queued == 0);
    usleep(5000); /* the thread hands the result over right after busy drops, under the lock */
}

static void hash_async(env_t *e, const char *pw, size_t n, const char *ctx, outcome_t *o)
{
    int before = o->called;
    assert_int_equal(lt_hasher_hash(e->port, pw, n, ctx, on_done, o, NULL), 0);
    run_until(e, &o->called, before + 1);
}

static void verify_async(env_t *e, const char *phc, const char *pw, size_t n, int rehash, outcome_t *o)
{
    int before = o->called;
    assert_int_equal(lt_hasher_verify(e->port, phc, pw, n, rehash, on_done, o, NULL), 0);
    run_until(e, &o->called, before + 1);
}

/* ---- hash and verify ---------------------------------------------------------------- */

static void test_hash_then_verify(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char phc[LT_PHC_MAX + 1];
    env_init(&e, tiny, 2, 16);

    hash_async(&e, "correct horse battery staple", 28, NULL, &o);
    assert_int_equal(o.err, 0);
    assert_false(o.rejected);
    assert_true(o.has_phc);
    assert_int_equal(strncmp(o.phc, TINY_PREFIX, strlen(TINY_PREFIX)), 0);
    assert_int_equal(lt_password_phc_check(o.phc), 0);
    assert_false(lt_password_needs_rehash(o.phc, &tiny));
    assert_true(lt_password_needs_rehash(o.phc, &defaults));
    /* 16-byte salt (22 base64 characters) and 32-byte hash (43) */
    const char *salt = o.phc + strlen(TINY_PREFIX), *dollar = strchr(salt, '$');
    assert_non_null(dollar);
    assert_int_equal(dollar - salt, 22);
    assert_int_equal(strlen(dollar + 1), 43);
    strcpy(phc, o.phc);

    verify_async(&e, phc, "correct horse battery staple", 28, 1, &o);
    assert_int_equal(o.err, 0);
    assert_true(o.match);
    assert_false(o.needs_rehash);
    assert_false(o.has_phc);

    verify_async(&e, phc, "correct horse battery stapler", 29, 1, &o);
    assert_int_equal(o.err, 0);
    assert_false(o.match);
    verify_async(&e, phc, "", 0, 0, &o);
    assert_false(o.match);

    /* the blocking helper agrees */
    assert_int_equal(lt_password_verify(phc, "correct horse battery staple", 28), 1);
    assert_int_equal(lt_password_verify(phc, "Correct horse battery staple", 28), 0);

    /* two hashes of one password differ (random salt) and both verify */
    hash_async(&e, "correct horse battery staple", 28, NULL, &o);
    assert_string_not_equal(o.phc, phc);
    assert_int_equal(lt_password_verify(o.phc, "correct horse battery staple", 28), 1);

    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.verifications, 3);
    assert_int_equal(s.hashes, 2);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.threads, 2);
    assert_int_equal(s.queue_max, 16);
    env_fini(&e);
}

/* Passwords are byte strings: a NUL inside is part of the password, not its end. */
static void test_password_with_nul_bytes(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char phc[LT_PHC_MAX + 1];
    env_init(&e, tiny, 1, 4);
    hash_async(&e, "ab\0cd", 5, NULL, &o);
    assert_int_equal(o.err, 0);
    strcpy(phc, o.phc);
    verify_async(&e, phc, "ab\0cd", 5, 0, &o);
    assert_true(o.match);
    verify_async(&e, phc, "ab", 2, 0, &o);
    assert_false(o.match);
    verify_async(&e, phc, "ab\0ce", 5, 0, &o);
    assert_false(o.match);
    env_fini(&e);
}

static void test_dummy_verify_never_matches_and_counts(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    env_init(&e, tiny, 1, 4);
    verify_async(&e, NULL, "whatever", 8, 1, &o);
    assert_int_equal(o.err, 0);
    assert_false(o.match);
    assert_false(o.needs_rehash);
    assert_false(o.has_phc);
    verify_async(&e, NULL, "", 0, 0, &o);
    assert_false(o.match);
    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.verifications, 2);
    assert_int_equal(s.hashes, 0);
    env_fini(&e);
}

static void test_rehash_when_params_differ(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char *old = NULL;
    const lt_hasher_params_t older = {2048, 1, 1};
    env_init(&e, tiny, 1, 4);
    assert_int_equal(lt_password_hash(&older, "hunter2hunter2", 14, &old), 0);
    assert_true(lt_password_needs_rehash(old, &tiny));
    assert_false(lt_password_needs_rehash(old, &older));

    /* reported without `rehash`, but no new hash computed */
    verify_async(&e, old, "hunter2hunter2", 14, 0, &o);
    assert_true(o.match);
    assert_true(o.needs_rehash);
    assert_false(o.has_phc);

    verify_async(&e, old, "hunter2hunter2", 14, 1, &o);
    assert_true(o.match);
    assert_true(o.needs_rehash);
    assert_true(o.has_phc);
    assert_int_equal(strncmp(o.phc, TINY_PREFIX, strlen(TINY_PREFIX)), 0);
    assert_false(lt_password_needs_rehash(o.phc, &tiny));
    assert_int_equal(lt_password_verify(o.phc, "hunter2hunter2", 14), 1);
    assert_int_equal(stats(&e).hashes, 1);

    /* a wrong password never gets a rehash */
    verify_async(&e, old, "hunter3hunter3", 14, 1, &o);
    assert_false(o.match);
    assert_false(o.needs_rehash);
    assert_false(o.has_phc);
    free(old);
    env_fini(&e);
}

/* The production parameters, once; prints the cost (never asserted: machines differ). */
static void test_default_params(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char *phc = NULL;
    uint64_t t0 = lt_monotonic_ns();
    assert_int_equal(lt_password_hash(&defaults, "correct horse battery staple", 28, &phc), 0);
    uint64_t t1 = lt_monotonic_ns();
    assert_int_equal(lt_password_verify(phc, "correct horse battery staple", 28), 1);
    uint64_t t2 = lt_monotonic_ns();
    fprintf(stderr, "# argon2id m=19456,t=2,p=1: hash %.1f ms, verify %.1f ms\n", (double)(t1 - t0) / 1e6,
            (double)(t2 - t1) / 1e6);
    assert_int_equal(strncmp(phc, DEFAULT_PREFIX, strlen(DEFAULT_PREFIX)), 0);
    assert_false(lt_password_needs_rehash(phc, &defaults));

    env_init(&e, defaults, 1, 4);
    verify_async(&e, phc, "correct horse battery staple", 28, 1, &o);
    assert_true(o.match);
    assert_false(o.needs_rehash);
    verify_async(&e, NULL, "correct horse battery staple", 28, 1, &o); /* dummy at the same cost */
    assert_false(o.match);
    free(phc);
    env_fini(&e);
}

/* A libargon2 encoding of `pw` with type/version chosen here (the import formats). */
static void encode(argon2_type type, uint32_t version, uint32_t m, const char *pw, char *out, size_t cap)
{
    const uint8_t salt[16] = "saltsaltsaltsalt";
    assert_int_equal(argon2_hash(1, m, 1, pw, strlen(pw), salt, sizeof(salt), NULL, 32, out, cap, type, version),
                     ARGON2_OK);
}

static void test_argon2i_import(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char v19[LT_PHC_MAX + 1], v16[LT_PHC_MAX + 1], nov[LT_PHC_MAX + 1];
    /* from the argon2 CLI: echo -n password | argon2 somesalt12345678 -i -m 10 -t 1 -p 1 -e */
    static const char cli[] = "$argon2i$v=19$m=1024,t=1,p=1$c29tZXNhbHQxMjM0NTY3OA$xeiYSBvIm5IPwOYHYY2l4s3wlYFXb8GxilN+vwwN43M";

    encode(Argon2_i, ARGON2_VERSION_13, 1024, "imported pass", v19, sizeof(v19));
    encode(Argon2_i, ARGON2_VERSION_10, 1024, "imported pass", v16, sizeof(v16));
    assert_int_equal(strncmp(v16, "$argon2i$v=16$", 14), 0);
    /* the same hash without its v= field: libargon2 reads it as version 1.0 */
    snprintf(nov, sizeof(nov), "$argon2i$%s", v16 + 14);

    assert_int_equal(lt_password_phc_check(cli), 0);
    assert_int_equal(lt_password_phc_check(v19), 0);
    assert_int_equal(lt_password_phc_check(v16), 0);
    assert_int_equal(lt_password_phc_check(nov), 0);
    assert_int_equal(lt_password_verify(cli, "password", 8), 1);
    assert_int_equal(lt_password_verify(cli, "passwore", 8), 0);
    assert_int_equal(lt_password_verify(nov, "imported pass", 13), 1);
    /* argon2i is outdated even with the pool's exact m/t/p */
    assert_true(lt_password_needs_rehash(cli, &tiny));

    env_init(&e, tiny, 1, 8);
    const char *all[] = {cli, v19, v16, nov};
    const char *pws[] = {"password", "imported pass", "imported pass", "imported pass"};
    for (int i = 0; i < 4; i++) {
        verify_async(&e, all[i], pws[i], strlen(pws[i]), 1, &o);
        assert_int_equal(o.err, 0);
        assert_true(o.match);
        assert_true(o.needs_rehash);
        assert_true(o.has_phc);
        assert_int_equal(strncmp(o.phc, TINY_PREFIX, strlen(TINY_PREFIX)), 0);
        assert_int_equal(lt_password_verify(o.phc, pws[i], strlen(pws[i])), 1);
        verify_async(&e, all[i], "wrong", 5, 1, &o);
        assert_false(o.match);
    }
    env_fini(&e);
}

/* ---- the PHC parser ----------------------------------------------------------------- */

static void test_phc_check_rejects(void **state)
{
    (void)state;
    char d[LT_PHC_MAX + 1], good[LT_PHC_MAX + 1], buf[2 * LT_PHC_MAX];
    encode(Argon2_d, ARGON2_VERSION_13, 1024, "pw", d, sizeof(d));
    encode(Argon2_id, ARGON2_VERSION_13, 1024, "pw", good, sizeof(good));
    assert_int_equal(lt_password_phc_check(good), 0);
    assert_int_equal(lt_password_verify(good, "pw", 2), 1);
    /* libargon2 itself verifies the argon2d hash; we refuse it */
    assert_int_equal(argon2d_verify(d, "pw", 2), ARGON2_OK);
    assert_int_equal(lt_password_phc_check(d), LT_EINVAL);
    assert_int_equal(lt_password_verify(d, "pw", 2), LT_EINVAL);
    assert_true(lt_password_needs_rehash(d, &tiny));

    const char *tail = strchr(good + 1, '$');            /* "$v=19$m=..." */
    const char *salthash = strstr(good, "p=1$") + 3;     /* "$salt$hash" */
    static const char *bad[] = {
        "",
        "hello",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
        "$argon2id$v=19$m=1024,t=1,p=1$$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* salt of 6 bytes, hash of 8 bytes */
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNh$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAA",
        /* parameters out of range or malformed */
        "$argon2id$v=19$m=4194305,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=99999999999999999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=7,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=8,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=65,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=65$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=01024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=-1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$t=1,m=1024,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=1,keyid=abc$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* versions: argon2id is 1.3 only */
        "$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2i$v=18$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* base64: padding, base64url characters, non-zero trailing bits, length 4k+1 */
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdB$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$",
        "$argon2ID$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        " $argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lt_password_phc_check(bad[i]) != LT_EINVAL)
            fail_msg("accepted bad PHC #%zu: %s", i, bad[i]);
        assert_int_equal(lt_password_verify(bad[i], "pw", 2), LT_EINVAL);
        assert_true(lt_password_needs_rehash(bad[i], &tiny));
    }
    assert_int_equal(lt_password_phc_check(NULL), LT_EINVAL);

    /* the good hash, truncated anywhere, is refused */
    size_t n = strlen(good);
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(buf, good, cut);
        buf[cut] = '\0';
        /* cutting the hash down to >= 16 bytes still parses; anything shorter may not */
        if (cut < (size_t)(salthash - good) + 1 + 22 + 1 + 22)
            assert_int_equal(lt_password_phc_check(buf), LT_EINVAL);
    }
    /* the type swapped for argon2d, and longer than LT_PHC_MAX */
    snprintf(buf, sizeof(buf), "$argon2d%s", tail);
    assert_int_equal(lt_password_phc_check(buf), LT_EINVAL);
    snprintf(buf, sizeof(buf), "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$");
    size_t len = strlen(buf);
    memset(buf + len, 'A', LT_PHC_MAX + 8 - len);
    buf[LT_PHC_MAX + 8] = '\0';
    assert_int_equal(lt_password_phc_check(buf), LT_EINVAL);
}

/* The limits themselves are accepted (bounds are inclusive), without running argon2. */
static void test_phc_check_bounds_inclusive(void **state)
{
    (void)state;
    assert_int_equal(lt_password_phc_check("$argon2id$v=19$m=4194304,t=64,p=64$c2FsdHNhbHRzYWx0c2FsdA$"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                     0);
    assert_int_equal(lt_password_phc_check("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"), 0);
}

static void test_verify_malformed_through_pool(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    char huge[LT_PHC_MAX + 64];
    env_init(&e, tiny, 1, 4);
    verify_async(&e, "$argon2d$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                 "pw", 2, 1, &o);
    assert_int_equal(o.err, LT_EINVAL);
    assert_false(o.match);
    memset(huge, '$', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    verify_async(&e, huge, "pw", 2, 1, &o);
    assert_int_equal(o.err, LT_EINVAL);
    assert_int_equal(stats(&e).verifications, 0); /* argon2 never ran */
    env_fini(&e);
}

/* ---- argument checks ---------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    env_t e;
    char *phc = (char *)1;
    char big[LT_PASSWORD_MAX + 1];
    lt_hasher_t *h = (lt_hasher_t *)1;
    lt_hasher_job_t *job = (lt_hasher_job_t *)1;
    lt_hasher_options_t o = {.params = tiny, .threads = 0, .queue_max = 1};
    memset(big, 'a', sizeof(big));

    assert_int_equal(lt_hasher_create(&o, &h), LT_EINVAL);
    assert_null(h);
    o.threads = 1;
    o.queue_max = 0;
    assert_int_equal(lt_hasher_create(&o, &h), LT_EINVAL);
    o.queue_max = 1;
    o.params.m_kib = 4;
    assert_int_equal(lt_hasher_create(&o, &h), LT_EINVAL);

    assert_int_equal(lt_password_hash(&tiny, big, sizeof(big), &phc), LT_EINVAL);
    assert_int_equal(lt_password_hash(&o.params, "pw", 2, &phc), LT_EINVAL);
    assert_int_equal(lt_password_hash(&tiny, big, LT_PASSWORD_MAX, &phc), 0); /* exactly the maximum */
    assert_int_equal(lt_password_verify(phc, big, LT_PASSWORD_MAX), 1);
    assert_int_equal(lt_password_verify(phc, big, sizeof(big)), LT_EINVAL);
    free(phc);

    env_init(&e, tiny, 1, 4);
    assert_int_equal(lt_hasher_hash(e.port, big, sizeof(big), NULL, on_done, NULL, &job), LT_EINVAL);
    assert_null(job);
    assert_int_equal(lt_hasher_verify(e.port, NULL, big, sizeof(big), 0, on_done, NULL, NULL), LT_EINVAL);
    env_fini(&e);
}

/* ---- queue, cancellation, teardown -------------------------------------------------- */

static void test_overload(void **state)
{
    (void)state;
    env_t e;
    outcome_t a = {0}, b = {0}, c = {0}, d = {0};
    lt_hasher_job_t *job = (lt_hasher_job_t *)1;
    env_init(&e, tiny, 1, 2);

    assert_int_equal(lt_hasher_hash(e.port, "aaaa", 4, "gate", on_done, &a, NULL), 0);
    gate_wait_entered(&e.gate, 1); /* the only thread is busy with `a` */
    assert_int_equal(lt_hasher_verify(e.port, NULL, "b", 1, 0, on_done, &b, NULL), 0);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "c", 1, 0, on_done, &c, NULL), 0);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "d", 1, 0, on_done, &d, &job), LT_EOVERLOAD);
    assert_null(job);
    assert_int_equal(lt_hasher_hash(e.port, "d", 1, NULL, on_done, &d, NULL), LT_EOVERLOAD);
    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.queued, 2);
    assert_int_equal(s.busy, 1);
    assert_int_equal(s.rejected, 2);

    gate_open(&e.gate);
    run_until(&e, &c.called, 1);
    assert_int_equal(a.called, 1);
    assert_int_equal(b.called, 1);
    assert_int_equal(d.called, 0);
    s = stats(&e);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.hashes, 1);
    assert_int_equal(s.verifications, 2);

    /* room again */
    verify_async(&e, NULL, "e", 1, 0, &d);
    env_fini(&e);
}

static void test_cancel_before_start(void **state)
{
    (void)state;
    env_t e;
    outcome_t a = {0}, b = {0}, c = {0};
    lt_hasher_job_t *jb = NULL;
    env_init(&e, tiny, 1, 4);

    assert_int_equal(lt_hasher_hash(e.port, "aaaa", 4, "gate", on_done, &a, NULL), 0);
    gate_wait_entered(&e.gate, 1);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "b", 1, 0, on_done, &b, &jb), 0);
    assert_non_null(jb);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "c", 1, 0, on_done, &c, NULL), 0);
    assert_int_equal(stats(&e).queued, 2);
    lt_hasher_cancel(jb);
    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.queued, 1);
    assert_int_equal(s.dropped, 1);

    gate_open(&e.gate);
    run_until(&e, &c.called, 1); /* FIFO: c ran after where b was */
    run_for_ms(&e, 20);
    assert_int_equal(a.called, 1);
    assert_int_equal(b.called, 0);
    s = stats(&e);
    assert_int_equal(s.verifications, 1); /* b was never hashed */
    assert_int_equal(s.dropped, 1);
    env_fini(&e);
}

static void test_cancel_while_running(void **state)
{
    (void)state;
    env_t e;
    outcome_t a = {0}, c = {0};
    lt_hasher_job_t *ja = NULL;
    env_init(&e, tiny, 1, 4);

    assert_int_equal(lt_hasher_hash(e.port, "aaaa", 4, "gate", on_done, &a, &ja), 0);
    gate_wait_entered(&e.gate, 1);
    lt_hasher_cancel(ja); /* running: finishes, then is discarded */
    assert_int_equal(lt_hasher_verify(e.port, NULL, "c", 1, 0, on_done, &c, NULL), 0);
    gate_open(&e.gate);
    run_until(&e, &c.called, 1);
    run_for_ms(&e, 20);
    assert_int_equal(a.called, 0);
    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.hashes, 1); /* it did run */
    assert_int_equal(s.dropped, 0);
    env_fini(&e);
}

/* Finished, its result waiting in the port's receiver, cancelled before the loop ran. */
static void test_cancel_after_finish_before_callback(void **state)
{
    (void)state;
    env_t e;
    outcome_t a = {0}, b = {0};
    lt_hasher_job_t *ja = NULL;
    env_init(&e, tiny, 1, 4);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "a", 1, 0, on_done, &a, &ja), 0);
    wait_idle_after(&e, 1);
    lt_hasher_cancel(ja);
    verify_async(&e, NULL, "b", 1, 0, &b);
    run_for_ms(&e, 20);
    assert_int_equal(a.called, 0);
    assert_int_equal(b.called, 1);
    env_fini(&e);
}

/* A callback cancels a job whose result came in the same batch. */
typedef struct {
    outcome_t o;
    lt_hasher_job_t **other;
} canceller_t;

static void on_done_cancel_other(const lt_hasher_result_t *res, void *data)
{
    canceller_t *c = data;
    on_done(res, &c->o);
    if (*c->other != NULL) {
        lt_hasher_cancel(*c->other);
        *c->other = NULL;
    }
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    env_t e;
    outcome_t b = {0};
    lt_hasher_job_t *jb = NULL;
    canceller_t a = {.other = &jb};
    env_init(&e, tiny, 1, 4);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "a", 1, 0, on_done_cancel_other, &a, NULL), 0);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "b", 1, 0, on_done, &b, &jb), 0);
    wait_idle_after(&e, 2); /* both results wait: one dispatch batch */
    run_until(&e, &a.o.called, 1);
    run_for_ms(&e, 20);
    assert_int_equal(b.called, 0);
    env_fini(&e);
}

static void test_port_destroy_with_jobs_pending(void **state)
{
    (void)state;
    env_t e;
    outcome_t x = {0}, a = {0}, b = {0}, c = {0};
    env_init(&e, tiny, 1, 4);

    /* x: finished, result undelivered; a: running; b, c: queued */
    assert_int_equal(lt_hasher_verify(e.port, NULL, "x", 1, 0, on_done, &x, NULL), 0);
    wait_idle_after(&e, 1);
    assert_int_equal(lt_hasher_hash(e.port, "aaaa", 4, "gate", on_done, &a, NULL), 0);
    gate_wait_entered(&e.gate, 1);
    assert_int_equal(lt_hasher_verify(e.port, NULL, "b", 1, 0, on_done, &b, NULL), 0);
    assert_int_equal(lt_hasher_hash(e.port, "cccc", 4, NULL, on_done, &c, NULL), 0);

    lt_hasher_port_destroy(&e.port);
    assert_null(e.port);
    lt_hasher_stats_t s = stats(&e);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.queued, 0);
    gate_open(&e.gate); /* a completes on its thread and is freed there */
    run_for_ms(&e, 30);

    /* a new port on the same loop works */
    assert_int_equal(lt_hasher_port_create(e.h, e.loop, &e.port), 0);
    verify_async(&e, NULL, "y", 1, 0, &b);
    assert_int_equal(x.called + a.called + c.called, 0);
    assert_int_equal(b.called, 1);
    s = stats(&e);
    assert_int_equal(s.hashes, 1); /* a */
    assert_int_equal(s.verifications, 2); /* x, y */
    env_fini(&e);
}

/* Destroying the pool right after the port, with a job still running. */
static void test_destroy_while_running(void **state)
{
    (void)state;
    env_t e;
    outcome_t a = {0};
    env_init(&e, tiny, 2, 4);
    assert_int_equal(lt_hasher_hash(e.port, "aaaa", 4, "gate", on_done, &a, NULL), 0);
    gate_wait_entered(&e.gate, 1);
    lt_hasher_port_destroy(&e.port);
    env_fini(&e); /* opens the gate, then joins */
    assert_int_equal(a.called, 0);
}

/* Two worker loops on two threads share the pool: each gets its own results, on its own
 * thread, while it cancels some of its jobs (queued, running or done, as it happens). */
typedef struct {
    lt_hasher_t *h;
    pthread_t self;
    int done, wrong_thread, errors;
} worker_t;

typedef struct {
    worker_t *w;
    lt_hasher_job_t *job;
    int called;
} slot_t;

static void on_worker_done(const lt_hasher_result_t *res, void *data)
{
    slot_t *slot = data;
    worker_t *w = slot->w;
    slot->called++;
    w->done++;
    if (!pthread_equal(pthread_self(), w->self))
        w->wrong_thread++;
    if (res->err != 0 || res->match)
        w->errors++;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    h2o_evloop_t *loop = h2o_evloop_create();
    lt_hasher_port_t *port = NULL;
    slot_t slots[40];
    int expected = 0, cancelled = 0;
    w->self = pthread_self();
    if (lt_hasher_port_create(w->h, loop, &port) != 0) {
        w->errors++;
        return NULL;
    }
    for (int i = 0; i < 40; i++) {
        slots[i] = (slot_t){.w = w};
        if (lt_hasher_verify(port, NULL, "pw", 2, 0, on_worker_done, &slots[i], &slots[i].job) == 0)
            expected++;
        if (i % 3 == 2) {
            h2o_evloop_run(loop, 0); /* some results may come in first */
            /* a handle is valid until its callback ran */
            if (slots[i - 1].job != NULL && !slots[i - 1].called) {
                lt_hasher_cancel(slots[i - 1].job);
                expected--;
                cancelled++;
            }
        }
    }
    uint64_t deadline = lt_monotonic_ns() + 20ull * 1000000000ull;
    while (w->done < expected && lt_monotonic_ns() < deadline)
        h2o_evloop_run(loop, 10);
    /* and nothing more arrives (a cancelled job's callback would) */
    uint64_t end = lt_monotonic_ns() + 20ull * 1000000ull;
    while (lt_monotonic_ns() < end)
        h2o_evloop_run(loop, 5);
    if (w->done != expected || cancelled == 0)
        w->errors++;
    for (int i = 0; i < 40; i++)
        if (slots[i].called > 1)
            w->errors++;
    lt_hasher_port_destroy(&port);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
    return NULL;
}

static void test_two_ports_on_two_threads(void **state)
{
    (void)state;
    lt_hasher_options_t o = {.params = tiny, .threads = 2, .queue_max = 64};
    lt_hasher_t *h = NULL;
    worker_t w[2] = {{0}, {0}};
    pthread_t t[2];
    assert_int_equal(lt_hasher_create(&o, &h), 0);
    for (int i = 0; i < 2; i++) {
        w[i].h = h;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].wrong_thread, 0);
        assert_true(w[i].done > 0);
    }
    lt_hasher_destroy(&h);
}

/* ---- the check function ------------------------------------------------------------- */

static void test_check_function(void **state)
{
    (void)state;
    env_t e;
    outcome_t o = {0};
    env_init(&e, tiny, 1, 4);
    hash_async(&e, "anything", 8, "reject", &o);
    assert_int_equal(o.err, 0);
    assert_true(o.rejected);
    assert_false(o.has_phc);
    assert_string_equal(o.reason, "Refused by the test.");
    assert_int_equal(stats(&e).hashes, 0);

    hash_async(&e, "anything", 8, "ok", &o);
    assert_false(o.rejected);
    assert_true(o.has_phc);
    /* without a context the check does not run */
    hash_async(&e, "anything", 8, NULL, &o);
    assert_false(o.rejected);
    assert_true(o.has_phc);
    assert_int_equal(stats(&e).hashes, 2);
    env_fini(&e);
}

/* The real password policy as the pool's check function. */
static void test_policy_as_check(void **state)
{
    (void)state;
    lt_password_policy_t *policy = NULL;
    lt_hasher_t *h = NULL;
    lt_hasher_port_t *port = NULL;
    outcome_t o = {0};
    env_t e = {0};
    assert_int_equal(lt_password_policy_create(12, &policy), 0);
    lt_hasher_options_t opts = {.params = tiny, .threads = 1, .queue_max = 4, .check = lt_password_policy_hasher_check,
                                .check_data = policy};
    e.loop = h2o_evloop_create();
    assert_int_equal(lt_hasher_create(&opts, &h), 0);
    assert_int_equal(lt_hasher_port_create(h, e.loop, &port), 0);
    e.h = h;
    e.port = port;

    hash_async(&e, "password123456", 14, "jane.doe@example.com", &o);
    assert_true(o.rejected);
    assert_true(strlen(o.reason) > 0);
    hash_async(&e, "Jane.Doe-is-my-login!", 21, "jane.doe@example.com", &o);
    assert_true(o.rejected);
    hash_async(&e, "Violet kettles hum at dawn 42", 29, "jane.doe@example.com", &o);
    assert_false(o.rejected);
    assert_true(o.has_phc);

    lt_hasher_port_destroy(&e.port);
    lt_hasher_destroy(&e.h);
    h2o_evloop_run(e.loop, 0);
    h2o_evloop_destroy(e.loop);
    lt_password_policy_destroy(&policy);
    assert_null(policy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_then_verify),
        cmocka_unit_test(test_password_with_nul_bytes),
        cmocka_unit_test(test_dummy_verify_never_matches_and_counts),
        cmocka_unit_test(test_rehash_when_params_differ),
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_argon2i_import),
        cmocka_unit_test(test_phc_check_rejects),
        cmocka_unit_test(test_phc_check_bounds_inclusive),
        cmocka_unit_test(test_verify_malformed_through_pool),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_cancel_before_start),
        cmocka_unit_test(test_cancel_while_running),
        cmocka_unit_test(test_cancel_after_finish_before_callback),
        cmocka_unit_test(test_cancel_from_callback),
        cmocka_unit_test(test_port_destroy_with_jobs_pending),
        cmocka_unit_test(test_destroy_while_running),
        cmocka_unit_test(test_two_ports_on_two_threads),
        cmocka_unit_test(test_check_function),
        cmocka_unit_test(test_policy_as_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
