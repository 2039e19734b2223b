/*
 * test_nonce: the signed-request nonce memory (lib/token/nonce.h): first use and replay,
 * scopes kept apart, expiry, bounded capacity (refusal, not forgetting), growth, the
 * sharded large cache, and many threads racing on the same nonces.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "token/nonce.h"

#define CLIENT "lc_AAAAAAAAAAAAAAAAAAAAAA"

static int use(lt_nonce_cache_t *c, const char *scope, const char *nonce, int64_t now, int64_t expires)
{
    return lt_nonce_cache_use(c, scope, strlen(scope), nonce, strlen(nonce), now, expires);
}

static void nonce_text(char out[32], unsigned i)
{
    snprintf(out, 32, "nonce-%010u", i);
}

static void test_first_use_and_replay(void **state)
{
    (void)state;
    lt_nonce_cache_t *c = NULL;
    assert_int_equal(lt_nonce_cache_create(64, &c), 0);
    assert_int_equal(use(c, CLIENT, "aaaaaaaaaaaaaaaa", 1000, 1301), 0);
    assert_int_equal(use(c, CLIENT, "aaaaaaaaaaaaaaaa", 1000, 1301), LT_EEXIST);
    assert_int_equal(use(c, CLIENT, "aaaaaaaaaaaaaaaa", 1300, 1601), LT_EEXIST); /* a later expiry changes nothing */
    /* other nonce, other client: separate */
    assert_int_equal(use(c, CLIENT, "aaaaaaaaaaaaaaab", 1000, 1301), 0);
    assert_int_equal(use(c, "lc_BBBBBBBBBBBBBBBBBBBBBB", "aaaaaaaaaaaaaaaa", 1000, 1301), 0);
    /* the length byte keeps the (scope, nonce) split unambiguous */
    assert_int_equal(use(c, "ab", "cdefghijklmnopqrs", 1000, 1301), 0);
    assert_int_equal(use(c, "abc", "defghijklmnopqrs", 1000, 1301), 0);
    lt_nonce_stats_t st;
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, 5);
    assert_int_equal(st.capacity, 64);
    assert_true(st.bytes > 0);
    lt_nonce_cache_destroy(&c);
    assert_null(c);
    lt_nonce_cache_destroy(&c); /* NULL is fine */
}

static void test_bad_arguments(void **state)
{
    (void)state;
    lt_nonce_cache_t *c = NULL;
    char big[LT_NONCE_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(lt_nonce_cache_create(0, &c), LT_EINVAL);
    assert_null(c);
    assert_int_equal(lt_nonce_cache_create(8, &c), 0);
    assert_int_equal(use(c, "", "n", 10, 20), LT_EINVAL);
    assert_int_equal(use(c, CLIENT, "", 10, 20), LT_EINVAL);
    assert_int_equal(use(c, CLIENT, big, 10, 20), LT_EINVAL);
    assert_int_equal(use(c, big, "n", 10, 20), LT_EINVAL);
    assert_int_equal(use(c, CLIENT, "n", 10, 10), LT_EINVAL); /* already expired */
    assert_int_equal(lt_nonce_cache_use(c, NULL, 0, "n", 1, 10, 20), LT_EINVAL);
    assert_int_equal(lt_nonce_cache_use(NULL, CLIENT, 3, "n", 1, 10, 20), LT_EINVAL);
    big[LT_NONCE_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(use(c, CLIENT, big, 10, 20), 0);
    lt_nonce_cache_destroy(&c);
}

static void test_expiry(void **state)
{
    (void)state;
    lt_nonce_cache_t *c = NULL;
    assert_int_equal(lt_nonce_cache_create(16, &c), 0);
    assert_int_equal(use(c, CLIENT, "n1", 100, 200), 0);
    assert_int_equal(use(c, CLIENT, "n1", 199, 500), LT_EEXIST); /* live until now >= expires */
    assert_int_equal(use(c, CLIENT, "n1", 200, 500), 0);         /* gone: a fresh use */
    assert_int_equal(use(c, CLIENT, "n1", 499, 800), LT_EEXIST);

    /* an entry that expired behind a longer-lived head is ignored by lookups */
    assert_int_equal(use(c, CLIENT, "long", 100, 10000), 0);
    assert_int_equal(use(c, CLIENT, "short", 100, 150), 0);
    assert_int_equal(use(c, CLIENT, "short", 149, 300), LT_EEXIST);
    assert_int_equal(use(c, CLIENT, "short", 150, 300), 0);

    /* sweep drops expired heads */
    lt_nonce_stats_t st;
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, 4); /* n1 (the first one was swept), long, short twice (the first lingers) */
    lt_nonce_cache_sweep(c, 20000);
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    lt_nonce_cache_destroy(&c);
}

static void test_capacity_refuses_rather_than_forgets(void **state)
{
    (void)state;
    enum { CAP = 1000 };
    lt_nonce_cache_t *c = NULL;
    char n[32];
    assert_int_equal(lt_nonce_cache_create(CAP, &c), 0);
    for (unsigned i = 0; i < CAP; i++) {
        nonce_text(n, i);
        assert_int_equal(use(c, CLIENT, n, 10, 100 + i), 0); /* grows from 256 slots on the way */
    }
    nonce_text(n, CAP);
    assert_int_equal(use(c, CLIENT, n, 10, 500), LT_EOVERLOAD);
    lt_nonce_stats_t st;
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, CAP);
    assert_int_equal(st.full, 1);
    /* nothing was forgotten: every nonce still counts as a replay */
    for (unsigned i = 0; i < CAP; i++) {
        nonce_text(n, i);
        assert_int_equal(use(c, CLIENT, n, 10, 100), LT_EEXIST);
    }
    /* once the oldest expire (expiry 100 + i), their room is reused: at 105, six */
    for (unsigned i = 0; i < 6; i++) {
        nonce_text(n, CAP + i);
        assert_int_equal(use(c, CLIENT, n, 105, 600), 0);
    }
    nonce_text(n, CAP + 6);
    assert_int_equal(use(c, CLIENT, n, 105, 600), LT_EOVERLOAD);
    nonce_text(n, 6);
    assert_int_equal(use(c, CLIENT, n, 105, 600), LT_EEXIST); /* expiry 106 > now */
    nonce_text(n, 5);
    assert_int_equal(use(c, CLIENT, n, 105, 600), LT_EOVERLOAD); /* expired, but no room to record it again */
    lt_nonce_cache_stats(c, &st);
    assert_true(st.entries <= CAP);
    assert_true(st.bytes < CAP * 48); /* about 40 bytes a nonce */
    lt_nonce_cache_destroy(&c);
}

static void test_large_sharded(void **state)
{
    (void)state;
    enum { CAP = 200000, N = 100000 };
    lt_nonce_cache_t *c = NULL;
    char n[32];
    assert_int_equal(lt_nonce_cache_create(CAP, &c), 0);
    lt_nonce_stats_t st;
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.bytes, 0); /* nothing allocated before use */
    assert_true(st.capacity >= CAP && st.capacity < CAP + 16);
    for (unsigned i = 0; i < N; i++) {
        nonce_text(n, i);
        assert_int_equal(use(c, CLIENT, n, 1, 1000), 0);
    }
    for (unsigned i = 0; i < N; i += 7) {
        nonce_text(n, i);
        assert_int_equal(use(c, CLIENT, n, 2, 1000), LT_EEXIST);
    }
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, N);
    assert_int_equal(st.full, 0);
    lt_nonce_cache_destroy(&c);
}

/* ---- many threads ---------------------------------------------------------------------- */

enum { THREADS = 8, SHARED = 5000, OWN = 5000 };

typedef struct {
    lt_nonce_cache_t *c;
    int id;
    int wins;     /* first uses of shared nonces */
    int own_ok;   /* first uses of this thread's own nonces */
    int failures; /* anything but 0 / LT_EEXIST */
} racer_t;

static void *race(void *p)
{
    racer_t *rc = p;
    char n[32];
    for (unsigned i = 0; i < SHARED + OWN; i++) {
        if (i < SHARED)
            nonce_text(n, (i * 7919u + (unsigned)rc->id * 31u) % SHARED); /* a different order per thread */
        else
            snprintf(n, sizeof(n), "own-%d-%u", rc->id, i);
        int ret = use(rc->c, CLIENT, n, 1, 1000);
        if (ret == 0 && i < SHARED)
            rc->wins++;
        else if (ret == 0)
            rc->own_ok++;
        else if (ret != LT_EEXIST || i >= SHARED)
            rc->failures++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    lt_nonce_cache_t *c = NULL;
    pthread_t t[THREADS];
    racer_t rc[THREADS];
    assert_int_equal(lt_nonce_cache_create(100000, &c), 0); /* sharded */
    for (int i = 0; i < THREADS; i++) {
        rc[i] = (racer_t){.c = c, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, race, &rc[i]), 0);
    }
    int wins = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        wins += rc[i].wins;
        assert_int_equal(rc[i].own_ok, OWN);
        assert_int_equal(rc[i].failures, 0);
    }
    assert_int_equal(wins, SHARED); /* every shared nonce accepted exactly once */
    lt_nonce_stats_t st;
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, SHARED + THREADS * OWN);
    lt_nonce_cache_destroy(&c);

    /* a small single-shard cache under the same race, full part of the time */
    assert_int_equal(lt_nonce_cache_create(SHARED, &c), 0);
    for (int i = 0; i < THREADS; i++) {
        rc[i] = (racer_t){.c = c, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, race, &rc[i]), 0);
    }
    wins = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        wins += rc[i].wins;
    }
    lt_nonce_cache_stats(c, &st);
    assert_int_equal(st.entries, SHARED); /* full, never beyond */
    assert_true(wins <= SHARED);
    lt_nonce_cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_use_and_replay),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_capacity_refuses_rather_than_forgets),
        cmocka_unit_test(test_large_sharded),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
