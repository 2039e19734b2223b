/*
 * Unit tests for lib/token/revset.c (the in-memory revocation set and its wire form) and
 * lib/token/revfetch.c (paging the revocation log out of PostgreSQL).
 *
 * The revfetch test needs PostgreSQL: it runs when LATCH_TEST_DATABASE_URL is set (tests/run
 * sets it) in a private database latch_unit_revset_<pid>, migrated with the migrations built
 * into the binary after sql/roles.sql, and dropped afterwards.
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

#include "base/base.h"
#include "store/store.h"
#include "token/revset.h"

#define NOW 1700000000LL
#define T1 "11111111-1111-4111-8111-111111111111"
#define T2 "22222222-2222-4222-8222-222222222222"

static const char *base_url; /* LATCH_TEST_DATABASE_URL; NULL: no PostgreSQL */
static pgtest_db_t db;       /* the program's database, owned by that superuser */

/* ---- helpers -------------------------------------------------------------------------- */

static lt_rev_entry_t entry(uint64_t seq, lt_rev_kind_t kind, const char *value, int64_t exp, const char *tenant)
{
    lt_rev_entry_t e;
    memset(&e, 0, sizeof(e));
    e.seq = seq;
    e.kind = kind;
    e.exp = exp;
    snprintf(e.value, sizeof(e.value), "%s", value);
    snprintf(e.tenant, sizeof(e.tenant), "%s", tenant != NULL ? tenant : "");
    return e;
}

static void add_ok(lt_revset_t *s, uint64_t seq, lt_rev_kind_t kind, const char *value, int64_t exp, const char *tenant)
{
    lt_rev_entry_t e = entry(seq, kind, value, exp, tenant);
    assert_int_equal(lt_revset_add(s, &e, NOW), 0);
}

static int has(const lt_revset_t *s, lt_rev_kind_t kind, const char *value, int64_t now)
{
    return lt_revset_has(s, kind, value, strlen(value), now);
}

typedef struct {
    lt_rev_entry_t got[64];
    size_t n;
    size_t stop_after; /* 0 = never */
} collect_t;

static int collect(const lt_rev_entry_t *e, void *data)
{
    collect_t *c = data;
    if (c->n < 64)
        c->got[c->n] = *e;
    c->n++;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

/* ---- wire form ------------------------------------------------------------------------ */

static void test_parse_format(void **state)
{
    (void)state;
    lt_rev_entry_t e;
    const char *line = "42 sid 5f0e1c1a-0000-4000-8000-000000000001 1700000300 " T1;
    assert_int_equal(lt_rev_parse_line(line, strlen(line), &e), 0);
    assert_int_equal(e.seq, 42);
    assert_int_equal(e.kind, LT_REV_SID);
    assert_string_equal(e.value, "5f0e1c1a-0000-4000-8000-000000000001");
    assert_int_equal(e.exp, 1700000300);
    assert_string_equal(e.tenant, T1);
    char out[LT_REV_LINE_MAX];
    size_t n = lt_rev_format_line(&e, out);
    assert_int_equal(n, strlen(line));
    assert_string_equal(out, line);

    /* No tenant, a jti, a negative exp (still a valid int64), every value character. */
    line = "18446744073709551615 jti aZ09_.:- -5 -";
    assert_int_equal(lt_rev_parse_line(line, strlen(line), &e), 0);
    assert_true(e.seq == UINT64_MAX);
    assert_int_equal(e.kind, LT_REV_JTI);
    assert_string_equal(e.value, "aZ09_.:-");
    assert_int_equal(e.exp, -5);
    assert_string_equal(e.tenant, "");
    n = lt_rev_format_line(&e, out);
    assert_string_equal(out, line);

    /* Upper-case tenants are normalised (filters compare bytes). */
    line = "1 jti x 10 AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
    assert_int_equal(lt_rev_parse_line(line, strlen(line), &e), 0);
    assert_string_equal(e.tenant, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");

    /* A value of exactly 64 bytes is fine; 65 is not. */
    char v64[65], buf[200];
    memset(v64, 'a', 64);
    v64[64] = '\0';
    snprintf(buf, sizeof(buf), "7 jti %s 10 -", v64);
    assert_int_equal(lt_rev_parse_line(buf, strlen(buf), &e), 0);
    assert_string_equal(e.value, v64);
    n = lt_rev_format_line(&e, out);
    assert_string_equal(out, buf);
    snprintf(buf, sizeof(buf), "7 jti %sa 10 -", v64);
    assert_int_equal(lt_rev_parse_line(buf, strlen(buf), &e), LT_EINVAL);

    /* Only the first n bytes count. */
    line = "3 sid abc 10 - trailing";
    assert_int_equal(lt_rev_parse_line(line, 14, &e), 0);
    assert_string_equal(e.value, "abc");
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " ",
        "1 sid abc 10",                   /* four fields */
        "1 sid abc 10 - x",               /* six */
        "1  sid abc 10 -",                /* double space */
        " 1 sid abc 10 -",                /* leading space */
        "1 sid abc 10 - ",                /* trailing space */
        "1 sid abc 10 -\r",               /* CR */
        "0 sid abc 10 -",                 /* seq 0 */
        "01 sid abc 10 -",                /* leading zero */
        "+1 sid abc 10 -",                /* sign */
        "-1 sid abc 10 -",                /* negative seq */
        "18446744073709551616 sid abc 10 -", /* seq overflow */
        "1 SID abc 10 -",                 /* kind is case-sensitive */
        "1 sids abc 10 -",
        "1 aud abc 10 -",
        "1 sid a/c 10 -",                 /* bad value character */
        "1 sid a\"c 10 -",
        "1 sid a%c 10 -",
        "1 sid  10 -",                    /* empty value (two spaces) */
        "1 sid abc 1x -",                 /* bad exp */
        "1 sid abc -0 -",
        "1 sid abc 9223372036854775808 -", /* exp overflow */
        "1 sid abc 10 --",
        "1 sid abc 10 11111111-1111-4111-8111-11111111111",   /* 35 chars */
        "1 sid abc 10 11111111-1111-4111-8111-1111111111111", /* 37 chars */
        "1 sid abc 10 11111111x1111-4111-8111-111111111111",  /* misplaced dash */
        "1 sid abc 10 1111111g-1111-4111-8111-111111111111",  /* not hex */
        "1 sid abc\n 10 -",
    };
    lt_rev_entry_t e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lt_rev_parse_line(bad[i], strlen(bad[i]), &e) != LT_EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
    }
    /* An embedded NUL. */
    const char nul[] = "1 sid a\0c 10 -";
    assert_int_equal(lt_rev_parse_line(nul, sizeof(nul) - 1, &e), LT_EINVAL);

    /* lt_revset_add validates what it is given directly too. */
    lt_revset_t *s = NULL;
    assert_int_equal(lt_revset_create(&s), 0);
    lt_rev_entry_t x = entry(1, LT_REV_SID, "a b", NOW + 10, NULL);
    assert_int_equal(lt_revset_add(s, &x, NOW), LT_EINVAL);
    x = entry(0, LT_REV_SID, "ab", NOW + 10, NULL);
    assert_int_equal(lt_revset_add(s, &x, NOW), LT_EINVAL);
    x = entry(1, (lt_rev_kind_t)3, "ab", NOW + 10, NULL);
    assert_int_equal(lt_revset_add(s, &x, NOW), LT_EINVAL);
    x = entry(1, LT_REV_SID, "", NOW + 10, NULL);
    assert_int_equal(lt_revset_add(s, &x, NOW), LT_EINVAL);
    x = entry(1, LT_REV_SID, "ab", NOW + 10, "not-a-uuid");
    assert_int_equal(lt_revset_add(s, &x, NOW), LT_EINVAL);
    assert_int_equal(lt_revset_count(s), 0);
    assert_int_equal(lt_revset_seq(s), 0);
    lt_revset_destroy(&s);
    assert_null(s);
    lt_revset_destroy(&s); /* twice is harmless */
}

/* ---- the set -------------------------------------------------------------------------- */

static void test_add_has(void **state)
{
    (void)state;
    lt_revset_t *s = NULL;
    assert_int_equal(lt_revset_create(&s), 0);
    assert_int_equal(lt_revset_seq(s), 0);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW), 0);

    add_ok(s, 1, LT_REV_SID, "s1", NOW + 100, T1);
    add_ok(s, 2, LT_REV_JTI, "j1", NOW + 50, T1);
    assert_int_equal(lt_revset_seq(s), 2);
    assert_int_equal(lt_revset_count(s), 2);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW), 1);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW), 1);
    /* kinds are separate name spaces */
    assert_int_equal(has(s, LT_REV_JTI, "s1", NOW), 0);
    assert_int_equal(has(s, LT_REV_SID, "j1", NOW), 0);
    /* prefixes and longer values are other keys */
    assert_int_equal(has(s, LT_REV_SID, "s", NOW), 0);
    assert_int_equal(lt_revset_has(s, LT_REV_SID, "s1x", 2, NOW), 1); /* n bounds the value */
    assert_int_equal(has(s, LT_REV_SID, "s1x", NOW), 0);
    assert_int_equal(lt_revset_has(s, LT_REV_SID, "", 0, NOW), 0);
    /* expiry: revoked strictly before exp */
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW + 49), 1);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW + 50), 0);

    /* Already expired on arrival: ignored, but the sequence advances. */
    add_ok(s, 3, LT_REV_JTI, "old", NOW, NULL);
    assert_int_equal(has(s, LT_REV_JTI, "old", NOW - 10), 0);
    assert_int_equal(lt_revset_count(s), 2);
    assert_int_equal(lt_revset_seq(s), 3);
    assert_true(lt_revset_bytes(s) > 0);
    lt_revset_destroy(&s);
}

static void test_idempotent_and_later_exp(void **state)
{
    (void)state;
    lt_revset_t *s = NULL;
    assert_int_equal(lt_revset_create(&s), 0);
    const char *batch = "1 sid s1 1700000100 " T1 "\n2 jti j1 1700000050 -\n";
    assert_int_equal(lt_revset_apply(s, batch, NOW), 0);
    assert_int_equal(lt_revset_apply(s, batch, NOW), 0); /* again: nothing changes */
    assert_int_equal(lt_revset_count(s), 2);
    assert_int_equal(lt_revset_seq(s), 2);
    collect_t c = {0};
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 2);

    /* A later line for the same sid with a later exp: one entry, moved to the new seq. */
    add_ok(s, 5, LT_REV_SID, "s1", NOW + 300, T1);
    assert_int_equal(lt_revset_count(s), 2);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW + 200), 1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 2);
    assert_int_equal(c.got[0].seq, 2);
    assert_int_equal(c.got[1].seq, 5);
    assert_int_equal(c.got[1].exp, NOW + 300);
    /* A reader past seq 1 sees the extension. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 2, NULL, NOW, SIZE_MAX, collect, &c), 1);
    assert_string_equal(c.got[0].value, "s1");

    /* A later line with an earlier exp keeps the later exp. */
    add_ok(s, 6, LT_REV_SID, "s1", NOW + 10, T1);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW + 200), 1);
    assert_int_equal(lt_revset_count(s), 2);
    /* Re-applying the older line changes nothing either. */
    add_ok(s, 1, LT_REV_SID, "s1", NOW + 100, T1);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW + 299), 1);
    assert_int_equal(has(s, LT_REV_SID, "s1", NOW + 300), 0);
    assert_int_equal(lt_revset_seq(s), 6);

    /* An older line (out of order) with a later exp extends in place, and prune keeps it
     * until that later exp. */
    add_ok(s, 2, LT_REV_JTI, "j1", NOW + 500, NULL);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW + 400), 1);
    lt_revset_prune(s, NOW + 60);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW + 400), 1);
    assert_int_equal(lt_revset_count(s), 2);

    /* Malformed lines are skipped and counted; good ones in the same batch apply. */
    assert_int_equal(lt_revset_apply(s, "7 jti ok1 1700001000 -\nnonsense\n8 jti bad/ 1 -\n9 jti ok2 1700001000 -",
                                     NOW),
                     2);
    assert_int_equal(has(s, LT_REV_JTI, "ok1", NOW), 1);
    assert_int_equal(has(s, LT_REV_JTI, "ok2", NOW), 1);
    assert_int_equal(lt_revset_seq(s), 9);
    assert_int_equal(lt_revset_apply(s, "", NOW), 0);
    assert_int_equal(lt_revset_apply(s, "\n", NOW), 1);
    lt_revset_destroy(&s);
}

static void test_out_of_order(void **state)
{
    (void)state;
    lt_revset_t *s = NULL;
    assert_int_equal(lt_revset_create(&s), 0);
    /* A batch out of order, and single lines out of order: since() stays in seq order. */
    assert_int_equal(lt_revset_apply(s, "5 jti e 1700001000 -\n2 jti b 1700001000 -\n9 jti i 1700001000 -", NOW), 0);
    add_ok(s, 7, LT_REV_JTI, "g", NOW + 1000, NULL);
    add_ok(s, 1, LT_REV_JTI, "a", NOW + 1000, NULL);
    add_ok(s, 8, LT_REV_JTI, "h", NOW + 1000, NULL);
    collect_t c = {0};
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 6);
    static const uint64_t want[] = {1, 2, 5, 7, 8, 9};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(c.got[i].seq, want[i]);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(has(s, LT_REV_JTI, c.got[i].value, NOW), 1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 5, NULL, NOW, SIZE_MAX, collect, &c), 3);
    assert_int_equal(c.got[0].seq, 7);
    assert_int_equal(lt_revset_seq(s), 9);
    lt_revset_destroy(&s);
}

static void test_since_filters(void **state)
{
    (void)state;
    lt_revset_t *s = NULL;
    assert_int_equal(lt_revset_create(&s), 0);
    add_ok(s, 1, LT_REV_SID, "a1", NOW + 100, T1);
    add_ok(s, 2, LT_REV_SID, "b1", NOW + 100, T2);
    add_ok(s, 3, LT_REV_JTI, "a2", NOW + 10, T1);
    add_ok(s, 4, LT_REV_JTI, "n1", NOW + 100, NULL);
    add_ok(s, 5, LT_REV_SID, "a3", NOW + 100, T1);
    add_ok(s, 6, LT_REV_SID, "b2", NOW + 100, T2);

    collect_t c = {0};
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 6);
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 0, T1, NOW, SIZE_MAX, collect, &c), 3);
    assert_string_equal(c.got[0].value, "a1");
    assert_string_equal(c.got[1].value, "a2");
    assert_string_equal(c.got[2].value, "a3");
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 1, T2, NOW, SIZE_MAX, collect, &c), 2);
    assert_string_equal(c.got[0].value, "b1");
    /* the empty tenant selects the entries without one */
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 0, "", NOW, SIZE_MAX, collect, &c), 1);
    assert_string_equal(c.got[0].value, "n1");
    /* max */
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 0, T1, NOW, 2, collect, &c), 2);
    assert_string_equal(c.got[1].value, "a2");
    assert_int_equal(lt_revset_since(s, 0, T1, NOW, 0, collect, &c), 0);
    /* expired entries are not listed even before a prune */
    memset(&c, 0, sizeof(c));
    assert_int_equal(lt_revset_since(s, 0, T1, NOW + 10, SIZE_MAX, collect, &c), 2);
    assert_string_equal(c.got[1].value, "a3");
    /* fn stops early */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 2);
    /* past the end, and an unknown tenant */
    assert_int_equal(lt_revset_since(s, 6, NULL, NOW, SIZE_MAX, collect, &c), 0);
    assert_int_equal(lt_revset_since(s, 100, NULL, NOW, SIZE_MAX, collect, &c), 0);
    assert_int_equal(lt_revset_since(s, 0, "33333333-3333-4333-8333-333333333333", NOW, SIZE_MAX, collect, &c), 0);
    lt_revset_destroy(&s);
}

static void test_prune(void **state)
{
    (void)state;
    lt_revset_t *s = NULL;
    char v[32];
    assert_int_equal(lt_revset_create(&s), 0);
    lt_revset_prune(s, NOW); /* empty */
    for (int i = 1; i <= 1000; i++) {
        snprintf(v, sizeof(v), "j%d", i);
        /* exps interleave so expired entries are spread through the sequence */
        add_ok(s, (uint64_t)i, LT_REV_JTI, v, NOW + (i % 10) + 1, i % 2 ? T1 : NULL);
    }
    assert_int_equal(lt_revset_count(s), 1000);
    size_t bytes = lt_revset_bytes(s);
    lt_revset_prune(s, NOW); /* nothing expired */
    assert_int_equal(lt_revset_count(s), 1000);
    lt_revset_prune(s, NOW + 5); /* i % 10 in 0..4 */
    assert_int_equal(lt_revset_count(s), 500);
    for (int i = 1; i <= 1000; i++) {
        snprintf(v, sizeof(v), "j%d", i);
        assert_int_equal(has(s, LT_REV_JTI, v, NOW), (i % 10) + 1 > 5);
    }
    collect_t c = {0};
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 500);
    assert_int_equal(c.got[0].seq, 5);
    /* still in order after the compaction */
    uint64_t prev = 0;
    for (size_t k = 0; k < 64; k++) {
        assert_true(c.got[k].seq > prev);
        prev = c.got[k].seq;
    }
    /* adding after a compaction works, and a re-added key gets a fresh entry */
    add_ok(s, 2000, LT_REV_JTI, "j1", NOW + 100, NULL);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW + 50), 1);
    lt_revset_prune(s, NOW + 1000);
    assert_int_equal(lt_revset_count(s), 0);
    assert_int_equal(has(s, LT_REV_JTI, "j1", NOW), 0);
    assert_int_equal(lt_revset_since(s, 0, NULL, NOW, SIZE_MAX, collect, &c), 0);
    assert_int_equal(lt_revset_seq(s), 2000);
    assert_true(lt_revset_bytes(s) <= bytes + 4096);
    /* and the set keeps working when empty */
    add_ok(s, 2001, LT_REV_SID, "again", NOW + 100, NULL);
    assert_int_equal(has(s, LT_REV_SID, "again", NOW), 1);
    lt_revset_destroy(&s);
}

/* 100k entries: a sanity check that nothing is quadratic (no timed assertion). */
static void test_many(void **state)
{
    (void)state;
    enum { N = 100000 };
    lt_revset_t *s = NULL;
    char v[40];
    assert_int_equal(lt_revset_create(&s), 0);
    uint64_t t0 = lt_monotonic_ns();
    for (int i = 1; i <= N; i++) {
        snprintf(v, sizeof(v), "%08x-0000-4000-8000-%012d", (unsigned)i * 2654435761u, i);
        add_ok(s, (uint64_t)i, i % 3 ? LT_REV_JTI : LT_REV_SID, v, NOW + 1 + (i % 600), i % 2 ? T1 : T2);
    }
    uint64_t t1 = lt_monotonic_ns();
    assert_int_equal(lt_revset_count(s), N);
    int found = 0;
    for (int i = 1; i <= N; i++) {
        snprintf(v, sizeof(v), "%08x-0000-4000-8000-%012d", (unsigned)i * 2654435761u, i);
        found += has(s, i % 3 ? LT_REV_JTI : LT_REV_SID, v, NOW);
        found += has(s, i % 3 ? LT_REV_SID : LT_REV_JTI, v, NOW); /* the other kind: absent */
    }
    uint64_t t2 = lt_monotonic_ns();
    assert_int_equal(found, N);
    collect_t c = {0};
    assert_int_equal(lt_revset_since(s, N - 1000, T1, NOW, SIZE_MAX, collect, &c), 500);
    /* prune step by step, as the worker does once a second */
    uint64_t t3 = lt_monotonic_ns();
    for (int64_t t = NOW; t <= NOW + 601; t++)
        lt_revset_prune(s, t);
    uint64_t t4 = lt_monotonic_ns();
    assert_int_equal(lt_revset_count(s), 0);
    printf("# 100k: add %.0f ns, has %.0f ns, prune all %.1f ms, %zu bytes held after\n", (double)(t1 - t0) / N,
           (double)(t2 - t1) / (2.0 * N), (double)(t4 - t3) / 1e6, lt_revset_bytes(s));
    lt_revset_destroy(&s);
}

/* ---- revfetch (PostgreSQL) ------------------------------------------------------------ */

typedef struct {
    lt_revset_t *s;
    int batches;
    size_t lines;
    int fail_at;
} fetch_t;

static int on_batch(const char *batch, void *data)
{
    fetch_t *f = data;
    f->batches++;
    size_t n = strlen(batch);
    assert_true(n > 0);
    assert_true(batch[n - 1] != '\n');
    f->lines++;
    for (size_t i = 0; i < n; i++)
        f->lines += batch[i] == '\n';
    assert_int_equal(lt_revset_apply(f->s, batch, (int64_t)(lt_now_ms() / 1000)), 0);
    return f->fail_at != 0 && f->batches == f->fail_at ? 42 : 0;
}

static void test_fetch(void **state)
{
    (void)state;
    if (db.owner == NULL)
        skip();
    PGconn *c = pgtest_connect(db.owner);
    /* 25 live entries (seq 1..25 in two tenants and none), one expired (not listed) */
    pgtest_exec(c, "SELECT latch_revoke('jti', 'j' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE '" T1
                   "'::uuid END, now() + interval '1 hour') FROM generate_series(1, 25) i");
    pgtest_exec(c, "INSERT INTO revocations (kind, value, tenant_id, expires_at) VALUES ('sid', 'gone', NULL, now() - "
                   "interval '1 second')");
    pgtest_exec(c, "SELECT latch_revoke('sid', 'live-sid', '" T2 "'::uuid, now() + interval '1 hour')");

    fetch_t f = {0};
    assert_int_equal(lt_revset_create(&f.s), 0);
    uint64_t last = 0;
    char err[256];
    assert_int_equal(lt_token_revocations_fetch(c, 0, 10, on_batch, &f, &last, err, sizeof(err)), 0);
    assert_int_equal(f.batches, 3);
    assert_int_equal(f.lines, 26);
    assert_int_equal(last, 27);
    assert_int_equal(lt_revset_count(f.s), 26);
    assert_int_equal(lt_revset_has(f.s, LT_REV_SID, "live-sid", 8, (int64_t)(lt_now_ms() / 1000)), 1);
    assert_int_equal(lt_revset_has(f.s, LT_REV_SID, "gone", 4, (int64_t)(lt_now_ms() / 1000)), 0);
    collect_t col = {0};
    assert_int_equal(lt_revset_since(f.s, 0, T2, (int64_t)(lt_now_ms() / 1000), SIZE_MAX, collect, &col), 1);

    /* From a later seq: only what follows; nothing new leaves last at `after`. */
    f.batches = 0;
    f.lines = 0;
    assert_int_equal(lt_token_revocations_fetch(c, 20, 0, on_batch, &f, &last, err, sizeof(err)), 0);
    assert_int_equal(f.batches, 1);
    assert_int_equal(f.lines, 6);
    assert_int_equal(last, 27);
    f.batches = 0;
    assert_int_equal(lt_token_revocations_fetch(c, 27, 5, on_batch, &f, &last, err, sizeof(err)), 0);
    assert_int_equal(f.batches, 0);
    assert_int_equal(last, 27);

    /* fn's non-zero answer stops the reading and comes back; last is what was delivered. */
    f.batches = 0;
    f.fail_at = 2;
    assert_int_equal(lt_token_revocations_fetch(c, 0, 10, on_batch, &f, &last, err, sizeof(err)), 42);
    assert_int_equal(last, 10);
    f.fail_at = 0;

    /* The _url variant, and a database that does not exist. */
    f.batches = 0;
    assert_int_equal(lt_token_revocations_fetch_url(db.owner, 25, 1, on_batch, &f, &last, err, sizeof(err)), 0);
    assert_int_equal(f.batches, 1); /* seq 26 is the expired one: only 27 */
    assert_int_equal(last, 27);
    char *nodb = pgtest_conninfo(base_url, NULL, "latch_no_such_db");
    assert_int_equal(lt_token_revocations_fetch_url(nodb, 0, 10, on_batch, &f, &last, err, sizeof(err)), LT_EUNAVAIL);
    assert_int_equal(last, 0);
    free(nodb);
    /* A closed connection. */
    assert_int_equal(lt_token_revocations_fetch(NULL, 3, 10, on_batch, &f, &last, err, sizeof(err)), LT_EUNAVAIL);
    assert_int_equal(last, 3);
    lt_revset_destroy(&f.s);
    PQfinish(c);
}

static int group_setup(void **state)
{
    (void)state;
    base_url = pgtest_group_open(&db, "revset");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pgtest_db_close(&db, base_url);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_add_has),
        cmocka_unit_test(test_idempotent_and_later_exp),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_since_filters),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_fetch),
    };
    enum { NPURE = 8 };
    size_t n = sizeof(tests) / sizeof(tests[0]);
    lt_log_set_level(LT_LOG_WARN);
    (void)pgtest_url_or_leave_out(tests, NPURE, &n);
    return _cmocka_run_group_tests("revset", tests, n, group_setup, group_teardown);
}
