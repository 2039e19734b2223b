/*
 * Unit tests of the signing keys' rotation in PostgreSQL (lib/token/keystore.c, sql/0009):
 * load with states, rotate, the maintenance step (promotion, retirement, scheduled
 * rotation, instances racing), the admin list, and the migration of 0003-era rows.
 *
 * Needs PostgreSQL: runs when LATCH_TEST_DATABASE_URL is set (tests/run points it at its
 * throwaway cluster), else every test is skipped. Times are moved by SQL (activates_at,
 * retired_at in the past) rather than by sleeping.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "store/store.h"
#include "token/token.h"

static const char *base_url; /* LATCH_TEST_DATABASE_URL; NULL: no PostgreSQL */
static pgtest_db_t db;       /* the program's database, owned by that superuser */
static lt_seal_key_t mk;

static int group_setup(void **state)
{
    (void)state;
    mk.version = 3;
    for (int i = 0; i < 32; i++)
        mk.key[i] = (uint8_t)(0x40 + i);
    base_url = pgtest_group_open(&db, "keystore");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pgtest_db_close(&db, base_url);
    return 0;
}

#define SKIP_WITHOUT_PG() PGTEST_SKIP_UNLESS(db.owner != NULL)

static lt_token_keystore_opts_t opts(void)
{
    return (lt_token_keystore_opts_t){db.owner, &mk, 1, LT_ALG_ES256, 60};
}

/* A clean table with one current key (created by load). */
static void fresh(PGconn *c, char kid[LT_KID_MAX + 1])
{
    pgtest_exec(c, "DELETE FROM signing_keys");
    lt_token_keystore_opts_t o = opts();
    lt_keyring_t *kr = NULL;
    char err[256];
    assert_int_equal(lt_token_keystore_load(&o, &kr, err, sizeof(err)), 0);
    snprintf(kid, LT_KID_MAX + 1, "%s", lt_key_kid(lt_keyring_active(kr)));
    assert_int_equal(lt_keyring_count(kr), 1);
    lt_keyring_unref(kr);
}

static lt_keyring_t *load_ok(void)
{
    lt_token_keystore_opts_t o = opts();
    lt_keyring_t *kr = NULL;
    char err[256];
    int ret = lt_token_keystore_load(&o, &kr, err, sizeof(err));
    if (ret != 0)
        fail_msg("load: %d %s", ret, err);
    return kr;
}

static int state_of(const lt_keyring_t *kr, const char *kid)
{
    for (size_t i = 0; i < lt_keyring_count(kr); i++)
        if (strcmp(lt_key_kid(lt_keyring_at(kr, i)->key), kid) == 0)
            return (int)lt_keyring_at(kr, i)->state;
    return -1;
}

/* latch_keys notifications that arrive on `l` within a moment (delivery is asynchronous:
 * waits up to 2 s for `want`, or 100 ms when none is expected). */
static int notified(PGconn *l, int want)
{
    int n = 0;
    uint64_t deadline = lt_now_ms() + (want > 0 ? 2000 : 100);
    do {
        PGnotify *nt;
        assert_int_equal(PQconsumeInput(l), 1);
        while ((nt = PQnotifies(l)) != NULL) {
            if (strcmp(nt->relname, "latch_keys") == 0)
                n++;
            PQfreemem(nt);
        }
        if (want > 0 && n >= want)
            break;
        usleep(10000);
    } while (lt_now_ms() < deadline);
    return n;
}

static void test_rotate_and_promote(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    PGconn *c = pgtest_connect(db.owner);
    PGconn *l = pgtest_connect(db.owner);
    pgtest_exec(l, "LISTEN latch_keys");
    char old[LT_KID_MAX + 1], kid[LT_KID_MAX + 1], err[256], sql[512];
    fresh(c, old);
    pgtest_assert_query(c, "SELECT status FROM signing_keys", "current");
    (void)notified(l, 0);

    /* Rotate: a next key, published (in the ring, verifying) but not signing. */
    lt_token_keystore_opts_t o = opts();
    int64_t at = 0;
    char *now = pgtest_query(c, "SELECT floor(extract(epoch FROM now()))::bigint");
    assert_int_equal(lt_token_keys_rotate(&o, 30, "tester", kid, &at, err, sizeof(err)), 0);
    assert_true(at >= atoll(now) + 29 && at <= atoll(now) + 32);
    free(now);
    assert_string_not_equal(kid, old);
    assert_int_equal(notified(l, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT status || '|' || alg FROM signing_keys WHERE kid = '%s'", kid);
    pgtest_assert_query(c, sql, "next|ES256");
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws('|', actor, target, outcome, details->>'state', details->>'alg',"
             " (details->>'activates_at') IS NOT NULL) FROM audit_log WHERE event = 'key.created'"
             " ORDER BY id DESC LIMIT 1");
    char want[160];
    snprintf(want, sizeof(want), "tester|%s|success|next|ES256|t", kid);
    pgtest_assert_query(c, sql, want);

    lt_keyring_t *kr = load_ok();
    assert_string_equal(lt_key_kid(lt_keyring_active(kr)), old);
    assert_int_equal(state_of(kr, kid), LT_KEY_NEXT);
    assert_int_equal(state_of(kr, old), LT_KEY_CURRENT);
    char *jwks = NULL;
    assert_int_equal(lt_keyring_jwks(kr, &jwks, NULL), 0);
    assert_true(strstr(jwks, old) < strstr(jwks, kid)); /* current first */
    free(jwks);
    lt_keyring_unref(kr);

    /* A second rotation while one is pending: refused, nothing stored. */
    char other[LT_KID_MAX + 1] = "";
    assert_int_equal(lt_token_keys_rotate(&o, 30, "tester", other, NULL, err, sizeof(err)), LT_EEXIST);
    pgtest_assert_query(c, "SELECT count(*) FROM signing_keys", "2");
    assert_int_equal(notified(l, 0), 0);

    /* Not due yet: maintenance changes nothing. */
    int changed = -1;
    assert_int_equal(lt_token_keys_maintain(c, &o, 0, 30, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 0);
    assert_int_equal(notified(l, 0), 0);

    /* Due: the next key signs, the old one verifies as previous. */
    snprintf(sql, sizeof(sql), "UPDATE signing_keys SET activates_at = now() - interval '1 second' WHERE kid = '%s'",
             kid);
    pgtest_exec(c, sql);
    assert_int_equal(lt_token_keys_maintain(c, &o, 0, 30, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(notified(l, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT status || '|' || (retired_at IS NOT NULL) FROM signing_keys WHERE kid = '%s'",
             old);
    pgtest_assert_query(c, sql, "previous|true");
    kr = load_ok();
    assert_string_equal(lt_key_kid(lt_keyring_active(kr)), kid);
    assert_int_equal(state_of(kr, old), LT_KEY_PREVIOUS);
    lt_keyring_unref(kr);
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws('|', actor, target, details->>'previous') FROM audit_log WHERE event = 'key.activated'"
             " ORDER BY id DESC LIMIT 1");
    snprintf(want, sizeof(want), "system|%s|%s", kid, old);
    pgtest_assert_query(c, sql, want);

    /* Again: nothing to do. */
    assert_int_equal(lt_token_keys_maintain(c, &o, 0, 30, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 0);

    /* The previous key outlives its tokens (publish_retired_s = 60): then it is retired,
     * leaves the ring, and the audit says so. */
    snprintf(sql, sizeof(sql), "UPDATE signing_keys SET retired_at = now() - interval '61 seconds' WHERE kid = '%s'",
             old);
    pgtest_exec(c, sql);
    /* Even before maintenance runs, a load no longer publishes it. */
    kr = load_ok();
    assert_int_equal(state_of(kr, old), -1);
    lt_keyring_unref(kr);
    assert_int_equal(lt_token_keys_maintain(c, &o, 0, 30, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(notified(l, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT status FROM signing_keys WHERE kid = '%s'", old);
    pgtest_assert_query(c, sql, "retired");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit_log WHERE event = 'key.retired' AND target = '%s'", old);
    pgtest_assert_query(c, sql, "1");

    /* The list: current first, then retired; no private material. */
    char *list = NULL;
    assert_int_equal(lt_token_keys_list(db.owner, 100, &list, err, sizeof(err)), 0);
    json_t *doc = json_loads(list, 0, NULL);
    assert_non_null(doc);
    json_t *items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *first = json_array_get(items, 0), *second = json_array_get(items, 1);
    assert_string_equal(json_string_value(json_object_get(first, "kid")), kid);
    assert_string_equal(json_string_value(json_object_get(first, "state")), "current");
    assert_string_equal(json_string_value(json_object_get(first, "alg")), "ES256");
    assert_non_null(json_string_value(json_object_get(first, "activates_at")));
    assert_true(json_is_null(json_object_get(first, "retired_at")));
    assert_string_equal(json_string_value(json_object_get(second, "state")), "retired");
    assert_non_null(json_string_value(json_object_get(second, "retired_at")));
    assert_null(strstr(list, "sealed"));
    json_decref(doc);
    free(list);

    PQfinish(l);
    PQfinish(c);
}

static void test_rotation_due(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    PGconn *c = pgtest_connect(db.owner);
    char cur[LT_KID_MAX + 1], err[256];
    fresh(c, cur);
    lt_token_keystore_opts_t o = opts();
    o.alg = LT_ALG_EDDSA;
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(0, 0)", "f");
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(10, 2)", "f");
    /* Current for 9 s of a 10 s interval with 2 s prepublish: due (8 s). */
    pgtest_exec(c, "UPDATE signing_keys SET created_at = now() - interval '9 seconds'");
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(10, 2)", "t");
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(0, 2)", "f"); /* rotation off */
    /* An activated key counts from its activation, not its creation. */
    pgtest_exec(c, "UPDATE signing_keys SET activates_at = now() - interval '1 second'");
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(10, 2)", "f");
    pgtest_exec(c, "UPDATE signing_keys SET activates_at = now() - interval '8 seconds'");

    /* Maintenance adds the next key (actor system), once. */
    int changed = 0;
    assert_int_equal(lt_token_keys_maintain(c, &o, 10, 2, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 1);
    pgtest_assert_query(c,
                        "SELECT status || '|' || alg || '|' || (activates_at > now() + interval '1 second')"
                        " FROM signing_keys WHERE status = 'next'",
                        "next|EdDSA|true");
    pgtest_assert_query(c, "SELECT actor FROM audit_log WHERE event = 'key.created' ORDER BY id DESC LIMIT 1",
                        "system");
    pgtest_assert_query(c, "SELECT latch_keys_rotation_due(10, 2)", "f"); /* one is pending */
    assert_int_equal(lt_token_keys_maintain(c, &o, 10, 2, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 0);
    pgtest_assert_query(c, "SELECT count(*) FROM signing_keys", "2");
    PQfinish(c);
}

typedef struct maint_job {
    lt_token_keystore_opts_t o;
    int ret, changed;
    char err[256];
} maint_job_t;

static void *maint_thread(void *arg)
{
    maint_job_t *j = arg;
    PGconn *c = PQconnectdb(j->o.conninfo);
    j->ret = lt_token_keys_maintain(c, &j->o, 10, 2, &j->changed, j->err, sizeof(j->err));
    PQfinish(c);
    return NULL;
}

/* Instances run maintenance at the same moment: one promotion, one new next key. */
static void test_maintain_race(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    PGconn *c = pgtest_connect(db.owner);
    char cur[LT_KID_MAX + 1], kid[LT_KID_MAX + 1], err[256];
    fresh(c, cur);
    lt_token_keystore_opts_t o = opts();
    assert_int_equal(lt_token_keys_rotate(&o, 0, "tester", kid, NULL, err, sizeof(err)), 0);
    /* Due now (prepublish 0); and the new current will be due for rotation at once too, since
     * its interval is measured from activates_at = now: pretend it started 9 s ago. */
    pgtest_exec(c, "UPDATE signing_keys SET activates_at = now() - interval '9 seconds' WHERE status = 'next'");
    char *before = pgtest_query(c, "SELECT coalesce(max(id), 0) FROM audit_log");
    enum { N = 6 };
    maint_job_t jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].o = o;
        assert_int_equal(pthread_create(&th[i], NULL, maint_thread, &jobs[i]), 0);
    }
    int changes = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (jobs[i].ret != 0)
            fail_msg("instance %d: %d %s", i, jobs[i].ret, jobs[i].err);
        changes += jobs[i].changed;
    }
    assert_true(changes >= 1);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT status FROM signing_keys WHERE kid = '%s'", kid);
    pgtest_assert_query(c, sql, "current");
    snprintf(sql, sizeof(sql), "SELECT status FROM signing_keys WHERE kid = '%s'", cur);
    pgtest_assert_query(c, sql, "previous");
    pgtest_assert_query(c, "SELECT count(*) FROM signing_keys WHERE status = 'next'", "1");
    pgtest_assert_query(c, "SELECT count(*) FROM signing_keys WHERE status = 'current'", "1");
    /* Exactly one key.activated and one key.created among the racers. */
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(event, ',' ORDER BY event) FROM audit_log WHERE id > %s AND event LIKE 'key.%%'",
             before);
    pgtest_assert_query(c, sql, "key.activated,key.created");
    free(before);
    PQfinish(c);
}

static void test_rotate_refusals(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    PGconn *c = pgtest_connect(db.owner);
    char cur[LT_KID_MAX + 1], kid[LT_KID_MAX + 1], err[256];
    fresh(c, cur);
    /* Another master key would seal a key no instance can open: refused, nothing stored. */
    lt_seal_key_t wrong = mk;
    wrong.key[5] ^= 0x20;
    lt_token_keystore_opts_t o = opts();
    o.seal_keys = &wrong;
    assert_int_equal(lt_token_keys_rotate(&o, 10, "tester", kid, NULL, err, sizeof(err)), LT_EINVAL);
    assert_non_null(strstr(err, cur));
    pgtest_assert_query(c, "SELECT count(*) FROM signing_keys", "1");
    /* Bad arguments. */
    o = opts();
    assert_int_equal(lt_token_keys_rotate(&o, -1, "tester", kid, NULL, err, sizeof(err)), LT_EINVAL);
    assert_int_equal(lt_token_keys_rotate(&o, 1, "", kid, NULL, err, sizeof(err)), LT_EINVAL);
    assert_int_equal(lt_token_keys_maintain(c, &o, -1, 0, NULL, err, sizeof(err)), LT_EINVAL);
    /* No database. */
    char *nodb = pgtest_conninfo(base_url, NULL, "latch_no_such_db");
    o.conninfo = nodb;
    assert_int_equal(lt_token_keys_rotate(&o, 1, "tester", kid, NULL, err, sizeof(err)), LT_EUNAVAIL);
    char *list = NULL;
    assert_int_equal(lt_token_keys_list(nodb, 10, &list, err, sizeof(err)), LT_EUNAVAIL);
    free(nodb);
    /* A dead connection for maintenance. */
    nodb = pgtest_conninfo(base_url, NULL, "latch_no_such_db");
    PGconn *dead = PQconnectdb(nodb);
    free(nodb);
    o = opts();
    assert_int_equal(lt_token_keys_maintain(dead, &o, 0, 0, NULL, err, sizeof(err)), LT_EUNAVAIL);
    PQfinish(dead);
    /* The runtime role may do everything the service does. */
    char *app = pgtest_conninfo(base_url, "latch_app", db.name);
    o.conninfo = app;
    assert_int_equal(lt_token_keys_rotate(&o, 0, "tester", kid, NULL, err, sizeof(err)), 0);
    PGconn *ac = pgtest_connect(app);
    int changed = 0;
    assert_int_equal(lt_token_keys_maintain(ac, &o, 10, 2, &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(lt_token_keys_list(app, 10, &list, err, sizeof(err)), 0);
    free(list);
    PQfinish(ac);
    free(app);
    PQfinish(c);
}

/* The new-key material for the worker path: kid, alg, public JWK and a sealed blob that
 * opens under the master key with the kid's aad. */
static void test_seal_new(void **state)
{
    (void)state;
    lt_token_keystore_opts_t o = {NULL, &mk, 1, LT_ALG_EDDSA, 0};
    lt_token_new_key_t nk;
    char err[128];
    assert_int_equal(lt_token_key_seal_new(&o, &nk, err, sizeof(err)), 0);
    assert_string_equal(nk.alg, "EdDSA");
    assert_int_equal(strlen(nk.kid), 22);
    json_t *jwk = json_loads(nk.jwk_text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), nk.kid);
    assert_null(json_object_get(jwk, "d"));
    json_decref(jwk);
    assert_memory_equal(nk.sealed_hex, "\\x", 2);
    size_t hexlen = strlen(nk.sealed_hex + 2), n = hexlen / 2;
    uint8_t *sealed = malloc(n), *der = malloc(n);
    size_t dlen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int byte = 0;
        assert_int_equal(sscanf(nk.sealed_hex + 2 + 2 * i, "%2x", &byte), 1);
        sealed[i] = (uint8_t)byte;
    }
    char aad[96];
    int alen = snprintf(aad, sizeof(aad), "signing_key:%s", nk.kid);
    assert_int_equal(lt_unseal(&mk, 1, aad, (size_t)alen, sealed, n, der, &dlen), 0);
    lt_key_t *k = NULL;
    assert_int_equal(lt_key_from_private_der(nk.kid, LT_ALG_EDDSA, der, dlen, &k), 0);
    lt_key_free(k);
    free(sealed);
    free(der);
    lt_token_new_key_free(&nk);
    lt_token_new_key_free(&nk); /* idempotent */
    o.nseal_keys = 0;
    assert_int_equal(lt_token_key_seal_new(&o, &nk, err, sizeof(err)), LT_EINVAL);
}

/* Rows of the 0003 era ('active', 'retired') become 'current' and 'previous'. */
static void test_migration(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    size_t upto = 0;
    while (upto < lt_migrations_count && strcmp(lt_migrations[upto].name, "0009_keys.sql") != 0)
        upto++;
    assert_true(upto < lt_migrations_count);
    char mig[64], err[512];
    snprintf(mig, sizeof(mig), "latch_unit_keymig_%d", (int)getpid());
    pgtest_db_recreate(base_url, mig, NULL);
    char *ci = pgtest_conninfo(base_url, NULL, mig);
    int applied = 0;
    if (lt_store_migrate(ci, lt_migrations, upto, &applied, err, sizeof(err)) != 0)
        fail_msg("migrate: %s", err);
    PGconn *c = pgtest_connect(ci);
    pgtest_exec(c, "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status) VALUES"
                   " ('kid_active_1', 'ES256', '{}', '\\x00', 'active')");
    pgtest_exec(c, "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status, retired_at) VALUES"
                   " ('kid_retired_1', 'ES256', '{}', '\\x00', 'retired', now() - interval '1 hour')");
    if (lt_store_migrate(ci, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)) != 0)
        fail_msg("migrate: %s", err);
    pgtest_assert_query(c, "SELECT string_agg(kid || '=' || status, ',' ORDER BY kid) FROM signing_keys",
                        "kid_active_1=current,kid_retired_1=previous");
    /* The indexes hold: a second current or next key is refused. */
    PGresult *r = PQexec(c, "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status) VALUES"
                            " ('kid_second_1', 'ES256', '{}', '\\x00', 'current')");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    PQclear(r);
    r = PQexec(c, "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status) VALUES"
                  " ('kid_next_no_time', 'ES256', '{}', '\\x00', 'next')");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23514"); /* next needs activates_at */
    PQclear(r);
    PQfinish(c);
    pgtest_db_drop(base_url, mig);
    free(ci);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_new),
        cmocka_unit_test(test_rotate_and_promote),
        cmocka_unit_test(test_rotation_due),
        cmocka_unit_test(test_maintain_race),
        cmocka_unit_test(test_rotate_refusals),
        cmocka_unit_test(test_migration),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
