/*
 * Unit tests for lib/identity/auth: the opaque tokens (shape, randomness, SHA-256 against
 * vectors computed independently with Python's hashlib), the refusal of malformed
 * presented tokens before they could reach the database, the UUID shape check, the
 * lockout parameter texts, statement registration and the sealed refresh successors.
 *
 * With LATCH_TEST_DATABASE_URL (a superuser; tests/run sets it) the refresh functions of
 * sql/0007 run against a fresh migrated database per test, called as the runtime role
 * through the very statements latchd prepares, rows read with lt_auth_decode_session:
 * rotation, the grace window's repeat, reuse detection (session ended, audit event,
 * revocation row), tenant scoping, introspection, revocation, the maintenance clear, and
 * presentations racing on separate connections. The rest of the sign-in SQL is exercised
 * end to end by tests/integration/test_auth.py and test_lockout.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"

#include <pthread.h>

#include "identity/auth.h"
#include "store/store.h"

/* sha256("lt_rt_" + "A" * 43) and sha256("lt_pr_a..zA..O-_"), from hashlib. */
static const char rt_all_a[] = "lt_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char rt_all_a_sha[] = "a8a253f56ca3f22f191af2e174a2d7dd1dc9d80efad74a7c1ea856e83dc9a2a2";
static const char pr_mixed[] = "lt_pr_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_";
static const char pr_mixed_sha[] = "8e5aab9aa99457cc2140643e109a691992211f17d0305c88915ca6ae8f66274b";

static void test_token_hash_vectors(void **state)
{
    (void)state;
    char hex[LT_AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(strlen(rt_all_a), LT_AUTH_TOKEN_LEN);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, rt_all_a, strlen(rt_all_a), hex), 0);
    assert_string_equal(hex, rt_all_a_sha);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, pr_mixed, strlen(pr_mixed), hex), 0);
    assert_string_equal(hex, pr_mixed_sha);
}

static void test_token_hash_refuses_malformed(void **state)
{
    (void)state;
    char hex[LT_AUTH_HASH_HEX_LEN + 1];
    char buf[LT_AUTH_TOKEN_LEN + 2];
    /* the other kind's prefix */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, rt_all_a, strlen(rt_all_a), hex), LT_EINVAL);
    assert_string_equal(hex, "");
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, pr_mixed, strlen(pr_mixed), hex), LT_EINVAL);
    /* one character short, one too many */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, rt_all_a, strlen(rt_all_a) - 1, hex), LT_EINVAL);
    memcpy(buf, rt_all_a, LT_AUTH_TOKEN_LEN);
    buf[LT_AUTH_TOKEN_LEN] = 'A';
    buf[LT_AUTH_TOKEN_LEN + 1] = '\0';
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, buf, LT_AUTH_TOKEN_LEN + 1, hex), LT_EINVAL);
    /* characters outside base64url, including standard base64's and padding */
    const char bad[] = {'+', '/', '=', '.', ' ', '\0', '\x80', '\xff'};
    for (size_t i = 0; i < sizeof(bad); i++) {
        memcpy(buf, rt_all_a, LT_AUTH_TOKEN_LEN + 1);
        buf[20] = bad[i];
        assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, buf, LT_AUTH_TOKEN_LEN, hex), LT_EINVAL);
    }
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, NULL, 0, hex), LT_EINVAL);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, "", 0, hex), LT_EINVAL);
}

static void test_token_new_shape_and_hash(void **state)
{
    (void)state;
    char a[LT_AUTH_TOKEN_LEN + 1], b[LT_AUTH_TOKEN_LEN + 1];
    char ha[LT_AUTH_HASH_HEX_LEN + 1], hb[LT_AUTH_HASH_HEX_LEN + 1], check[LT_AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, a, ha), 0);
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, b, hb), 0);
    assert_int_equal(strlen(a), LT_AUTH_TOKEN_LEN);
    assert_int_equal(strncmp(a, "lt_rt_", 6), 0);
    assert_string_not_equal(a, b); /* 256 random bits each */
    assert_string_not_equal(ha, hb);
    assert_int_equal(strlen(ha), LT_AUTH_HASH_HEX_LEN);
    /* what a client presents back hashes to what was stored */
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, a, strlen(a), check), 0);
    assert_string_equal(check, ha);

    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_RESET, a, ha), 0);
    assert_int_equal(strncmp(a, "lt_pr_", 6), 0);
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_RESET, a, strlen(a), check), 0);
    assert_string_equal(check, ha);
}

static void test_uuid_shape(void **state)
{
    (void)state;
    assert_true(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d10"));
    assert_true(lt_auth_uuid_ok("0B9C3C8E-7A0E-4F39-9D6B-2F3C1A7E5D10"));
    assert_false(lt_auth_uuid_ok(NULL));
    assert_false(lt_auth_uuid_ok(""));
    assert_false(lt_auth_uuid_ok("not-a-uuid"));
    assert_false(lt_auth_uuid_ok("0b9c3c8e7a0e4f399d6b2f3c1a7e5d10"));      /* no dashes */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d1"));   /* short */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d100")); /* long */
    assert_false(lt_auth_uuid_ok("0b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d1g"));  /* not hex */
    assert_false(lt_auth_uuid_ok("0b9c3c8e_7a0e-4f39-9d6b-2f3c1a7e5d10"));  /* wrong separator */
    assert_false(lt_auth_uuid_ok("{b9c3c8e-7a0e-4f39-9d6b-2f3c1a7e5d10"));
}

static void test_limits_params(void **state)
{
    (void)state;
    lt_auth_limits_t l = {5, 900, 600, 50, 3600, 60, 0, 2147483647};
    char buf[LT_AUTH_LIMITS_NPARAMS][12];
    const char *p[LT_AUTH_LIMITS_NPARAMS];
    lt_auth_limits_params(&l, buf, p);
    const char *want[] = {"5", "900", "600", "50", "3600", "60", "0", "2147483647"};
    for (int i = 0; i < LT_AUTH_LIMITS_NPARAMS; i++)
        assert_string_equal(p[i], want[i]);
}

static void test_statements_register_once(void **state)
{
    (void)state;
    assert_int_equal(lt_auth_statements(), 0);
    assert_string_equal(lt_auth_stmt_login_begin.name, "auth.login_begin");
    assert_int_equal(lt_auth_stmt_login_begin.nparams, 3 + LT_AUTH_LIMITS_NPARAMS + 1);
    assert_int_equal(lt_auth_stmt_password_change_begin.nparams, 4 + LT_AUTH_LIMITS_NPARAMS + 1);
    assert_int_equal(lt_auth_statements(), LT_EEXIST);
}

/* ---- sealed successors ------------------------------------------------------------------ */

static const lt_seal_key_t seal_key = {7, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};

static void test_successor_seal_round_trip(void **state)
{
    (void)state;
    char rt[LT_AUTH_TOKEN_LEN + 1], h[LT_AUTH_HASH_HEX_LEN + 1], parent[LT_AUTH_HASH_HEX_LEN + 1];
    char sealed[LT_AUTH_SEALED_HEX_LEN + 1], back[LT_AUTH_TOKEN_LEN + 1];
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, rt, h), 0);
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, back, parent), 0);
    assert_int_equal(lt_auth_successor_seal(&seal_key, parent, rt, sealed), 0);
    assert_int_equal(strlen(sealed), LT_AUTH_SEALED_HEX_LEN);
    assert_null(strstr(sealed, rt + LT_AUTH_TOKEN_PREFIX_LEN)); /* not the plaintext */
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, sealed, back), 0);
    assert_string_equal(back, rt);

    /* another parent (the aad), another key version, tampering, bad hex, wrong length */
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, h, sealed, back), LT_EINVAL);
    assert_string_equal(back, "");
    lt_seal_key_t other = seal_key;
    other.version = 8;
    assert_int_equal(lt_auth_successor_open(&other, 1, parent, sealed, back), LT_ENOTFOUND);
    other = seal_key;
    other.key[0] ^= 1;
    assert_int_equal(lt_auth_successor_open(&other, 1, parent, sealed, back), LT_EINVAL);
    char bad[LT_AUTH_SEALED_HEX_LEN + 1];
    memcpy(bad, sealed, sizeof(bad));
    bad[40] = bad[40] == '0' ? '1' : '0';
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, bad, back), LT_EINVAL);
    memcpy(bad, sealed, sizeof(bad));
    bad[10] = 'g';
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, bad, back), LT_EINVAL);
    bad[LT_AUTH_SEALED_HEX_LEN - 2] = '\0';
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, bad, back), LT_EINVAL);
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, NULL, back), LT_EINVAL);
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, "abc", sealed, back), LT_EINVAL);
    /* a sealed reset token is not a refresh successor */
    char pr[LT_AUTH_TOKEN_LEN + 1], prh[LT_AUTH_HASH_HEX_LEN + 1];
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_RESET, pr, prh), 0);
    assert_int_equal(lt_auth_successor_seal(&seal_key, parent, pr, sealed), 0);
    assert_int_equal(lt_auth_successor_open(&seal_key, 1, parent, sealed, back), LT_EINVAL);
    assert_int_equal(lt_auth_successor_seal(&seal_key, parent, "lt_rt_short", sealed), LT_EIO);
}

/* ---- PostgreSQL fixtures ------------------------------------------------------------------ */

static const char *base_url; /* LATCH_TEST_DATABASE_URL: a superuser */

typedef struct db {
    pgtest_db_t *pg;
    char tenant[40], other_tenant[40], user[40];
} db_t;

/* One value of a one-row query with text parameters, copied into `out`. */
static void query1(PGconn *c, char *out, size_t cap, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s (%d rows)", sql, PQerrorMessage(c), PQntuples(r));
    snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void assert_q(PGconn *c, const char *want, const char *sql, int n, const char *const *p)
{
    char v[512];
    query1(c, v, sizeof(v), sql, n, p);
    if (strcmp(v, want) != 0)
        fail_msg("%s: got '%s', want '%s'", sql, v, want);
}

static int db_setup(void **state)
{
    char role[40];
    db_t *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->pg = pgtest_db_new(base_url, "rt");
    PGconn *c = pgtest_connect(d->pg->owner);
    query1(c, d->tenant, sizeof(d->tenant), "INSERT INTO tenants (name) VALUES ('acme') RETURNING id", 0, NULL);
    query1(c, d->other_tenant, sizeof(d->other_tenant), "INSERT INTO tenants (name) VALUES ('other') RETURNING id",
           0, NULL);
    const char *p[] = {d->tenant};
    query1(c, d->user, sizeof(d->user),
           "INSERT INTO users (tenant_id, email, email_norm, status) VALUES ($1, 'Alice@Acme.test', 'alice@acme.test',"
           " 'active') RETURNING id",
           1, p);
    const char *p2[] = {d->tenant, d->user};
    query1(c, role, sizeof(role),
           "INSERT INTO user_roles (tenant_id, user_id, role) VALUES ($1, $2, 'admin') RETURNING role", 2, p2);
    PQfinish(c);
    *state = d;
    return 0;
}

static int db_teardown(void **state)
{
    db_t *d = *state;
    if (d == NULL)
        return 0;
    pgtest_db_free(d->pg, base_url);
    free(d);
    *state = NULL;
    return 0;
}

/* A refresh token as the client holds it and as the database knows it. */
typedef struct rt {
    char token[LT_AUTH_TOKEN_LEN + 1];
    char hash[LT_AUTH_HASH_HEX_LEN + 1];
} rt_t;

/* A login through lt_auth_stmt_login_succeed: the session id, and its first token in *rt. */
static void login(PGconn *c, const db_t *d, rt_t *rt, char sid[40])
{
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, rt->token, rt->hash), 0);
    const char *p[] = {d->user, d->tenant, "acme", "alice@acme.test", "203.0.113.7", "test", "3600", "86400", "600",
                       rt->hash, NULL, NULL, "req-login", rt->hash, "300", "900"};
    PGresult *r = PQexecParams(c, lt_auth_stmt_login_succeed.sql, 16, NULL, p, NULL, NULL, 0);
    lt_auth_session_t s;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("login: %s", PQerrorMessage(c));
    assert_int_equal(lt_auth_decode_session(r, &s), 0);
    assert_int_equal(s.status, LT_AUTH_REFRESH_OK);
    assert_string_equal(s.email, "Alice@Acme.test");
    assert_string_equal(s.roles, "[\"admin\"]");
    snprintf(sid, 40, "%s", s.session_id);
    PQclear(r);
    const char *q[] = {sid};
    assert_q(c, "t", "SELECT access_expires_at BETWEEN now() + interval '599 s' AND now() + interval '601 s'"
                     " FROM sessions WHERE id = $1", 1, q);
}

/* What one presentation came to. */
typedef struct outcome {
    lt_auth_refresh_t status;
    char sid[40];
    char sealed_sent[LT_AUTH_SEALED_HEX_LEN + 1];
    char successor[LT_AUTH_TOKEN_LEN + 1]; /* the token the client gets: new or repeated */
    char err[256];
} outcome_t;

/* Presents `old` with a fresh candidate successor, as lt__api_refresh does. */
static int present(PGconn *c, const rt_t *old, int grace, const char *tenant, outcome_t *o)
{
    rt_t next;
    char g[12];
    memset(o, 0, sizeof(*o));
    snprintf(g, sizeof(g), "%d", grace);
    if (lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, next.token, next.hash) != 0 ||
        lt_auth_successor_seal(&seal_key, old->hash, next.token, o->sealed_sent) != 0) {
        snprintf(o->err, sizeof(o->err), "token/seal");
        return -1;
    }
    const char *p[] = {old->hash, next.hash, o->sealed_sent, "3600", "600", g, tenant, "203.0.113.7", "req-rt"};
    PGresult *r = PQexecParams(c, lt_auth_stmt_refresh.sql, 9, NULL, p, NULL, NULL, 0);
    lt_auth_session_t s;
    int ret = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(o->err, sizeof(o->err), "%s", PQerrorMessage(c));
    } else if (lt_auth_decode_session(r, &s) != 0) {
        snprintf(o->err, sizeof(o->err), "decode");
    } else {
        o->status = s.status;
        snprintf(o->sid, sizeof(o->sid), "%s", s.session_id != NULL ? s.session_id : "");
        ret = 0;
        if (s.status == LT_AUTH_REFRESH_OK) {
            memcpy(o->successor, next.token, sizeof(o->successor));
            if (s.user_id == NULL || s.tenant_id == NULL || s.email == NULL || s.amr == NULL)
                ret = -1;
        } else if (s.status == LT_AUTH_REFRESH_REPEAT) {
            if (lt_auth_successor_open(&seal_key, 1, old->hash, s.successor_sealed, o->successor) != 0) {
                snprintf(o->err, sizeof(o->err), "sealed successor does not open");
                ret = -1;
            }
        }
    }
    PQclear(r);
    return ret;
}

static outcome_t present_ok(PGconn *c, const rt_t *old, int grace, const char *tenant)
{
    outcome_t o;
    if (present(c, old, grace, tenant, &o) != 0)
        fail_msg("refresh: %s", o.err);
    return o;
}

/* The client's view of the token it was handed. */
static rt_t as_rt(const outcome_t *o)
{
    rt_t t;
    memcpy(t.token, o->successor, sizeof(t.token));
    assert_int_equal(lt_auth_token_hash(LT_AUTH_TOKEN_REFRESH, t.token, strlen(t.token), t.hash), 0);
    return t;
}

#define SKIP_WITHOUT_PG()                                                                                              \
    do {                                                                                                               \
        if (base_url == NULL)                                                                                          \
            skip();                                                                                                    \
    } while (0)

/* ---- PostgreSQL tests --------------------------------------------------------------------- */

static void test_rotate_then_repeat_within_grace(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);

    outcome_t a = present_ok(c, &rt0, 10, NULL);
    assert_int_equal(a.status, LT_AUTH_REFRESH_OK);
    assert_string_equal(a.sid, sid);
    const char *ph[] = {rt0.hash};
    /* the parent holds the successor's id and exactly the sealed blob that was sent */
    assert_q(c, "true|true", "SELECT (used_at IS NOT NULL) || '|' || (successor_id = (SELECT id FROM refresh_tokens r"
                       " WHERE r.parent_id = t.id)) FROM refresh_tokens t WHERE token_hash = decode($1, 'hex')", 1, ph);
    assert_q(c, a.sealed_sent, "SELECT encode(successor_sealed, 'hex') FROM refresh_tokens"
                               " WHERE token_hash = decode($1, 'hex')", 1, ph);

    /* a repeat within the window: the same successor, no new token in the family */
    outcome_t b = present_ok(c, &rt0, 10, NULL);
    assert_int_equal(b.status, LT_AUTH_REFRESH_REPEAT);
    assert_string_equal(b.sid, sid);
    assert_string_equal(b.successor, a.successor);
    outcome_t b2 = present_ok(c, &rt0, 10, d->tenant);
    assert_int_equal(b2.status, LT_AUTH_REFRESH_REPEAT);
    assert_string_equal(b2.successor, a.successor);
    const char *ps[] = {sid};
    assert_q(c, "2", "SELECT count(*) FROM refresh_tokens WHERE session_id = $1", 1, ps);

    /* the successor rotates normally, and then its parent is an ancestor: reuse */
    rt_t rt1 = as_rt(&a);
    outcome_t e = present_ok(c, &rt1, 10, NULL);
    assert_int_equal(e.status, LT_AUTH_REFRESH_OK);
    assert_string_not_equal(e.successor, a.successor);
    assert_q(c, "3|2|2", "SELECT count(*) || '|' || count(parent_id) || '|' || count(used_at) FROM refresh_tokens"
                         " WHERE session_id = $1", 1, ps);
    assert_q(c, "0", "SELECT count(*) FROM audit_log WHERE event = 'refresh_token.reuse_detected'", 0, NULL);
    PQfinish(c);
}

/* Checks that session `sid` ended for reuse: tokens revoked, audit event, revocation. */
static void assert_reuse_ended(PGconn *c, const char *sid, const char *presented_hash)
{
    const char *ps[] = {sid};
    assert_q(c, "refresh_token_reuse", "SELECT revoked_reason FROM sessions WHERE id = $1 AND revoked_at IS NOT NULL",
             1, ps);
    assert_q(c, "0", "SELECT count(*) FROM refresh_tokens WHERE session_id = $1 AND used_at IS NULL"
                     " AND revoked_at IS NULL", 1, ps);
    assert_q(c, "0", "SELECT count(*) FROM refresh_tokens WHERE session_id = $1 AND successor_sealed IS NOT NULL", 1,
             ps);
    const char *pp[] = {sid, presented_hash};
    assert_q(c, "1|denied|true", "SELECT count(*) || '|' || min(outcome) || '|' || bool_and((details->>'refresh_token_id')::uuid"
                              " = (SELECT id FROM refresh_tokens WHERE token_hash = decode($2, 'hex')))"
                              " FROM audit_log WHERE event = 'refresh_token.reuse_detected' AND target = $1",
             2, pp);
    assert_q(c, "1", "SELECT count(*) FROM revocations WHERE kind = 'sid' AND value = $1 AND expires_at > now()", 1, ps);
}

static void test_reuse_after_grace_ends_the_session(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);
    outcome_t a = present_ok(c, &rt0, 10, NULL);
    assert_int_equal(a.status, LT_AUTH_REFRESH_OK);
    const char *ph[] = {rt0.hash};
    pgtest_exec(c, "BEGIN");
    PGresult *r = PQexecParams(c, "UPDATE refresh_tokens SET used_at = used_at - interval '11 seconds'"
                                  " WHERE token_hash = decode($1, 'hex')", 1, NULL, ph, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    pgtest_exec(c, "COMMIT");

    outcome_t b = present_ok(c, &rt0, 10, NULL);
    assert_int_equal(b.status, LT_AUTH_REFRESH_REUSE);
    assert_string_equal(b.sid, sid);
    assert_reuse_ended(c, sid, rt0.hash);
    /* every token of the family is dead now, the successor included; nothing more audited */
    rt_t rt1 = as_rt(&a);
    assert_int_equal(present_ok(c, &rt1, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    assert_int_equal(present_ok(c, &rt0, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    assert_q(c, "1", "SELECT count(*) FROM audit_log WHERE event = 'refresh_token.reuse_detected'", 0, NULL);
    PQfinish(c);
}

static void test_older_ancestor_is_reuse(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);
    outcome_t a = present_ok(c, &rt0, 10, NULL);
    rt_t rt1 = as_rt(&a);
    assert_int_equal(present_ok(c, &rt1, 10, NULL).status, LT_AUTH_REFRESH_OK);
    /* rt0 is within its window, but its successor rt1 was used: not a harmless race */
    outcome_t b = present_ok(c, &rt0, 10, NULL);
    assert_int_equal(b.status, LT_AUTH_REFRESH_REUSE);
    assert_reuse_ended(c, sid, rt0.hash);
    PQfinish(c);
}

static void test_grace_zero_is_reuse_at_once(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);
    assert_int_equal(present_ok(c, &rt0, 0, NULL).status, LT_AUTH_REFRESH_OK);
    assert_int_equal(present_ok(c, &rt0, 0, NULL).status, LT_AUTH_REFRESH_REUSE);
    assert_reuse_ended(c, sid, rt0.hash);
    PQfinish(c);
}

static void test_wrong_tenant_and_invalid_do_not_consume(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0, unknown;
    char sid[40];
    login(c, d, &rt0, sid);
    const char *ph[] = {rt0.hash};
    outcome_t o = present_ok(c, &rt0, 10, d->other_tenant);
    assert_int_equal(o.status, LT_AUTH_REFRESH_INVALID);
    assert_string_equal(o.sid, "");
    assert_q(c, "true|1", "SELECT bool_and(used_at IS NULL) || '|' || count(*) FROM refresh_tokens"
                       " WHERE session_id = (SELECT session_id FROM refresh_tokens WHERE token_hash = decode($1, 'hex'))",
             1, ph);
    assert_int_equal(lt_auth_token_new(LT_AUTH_TOKEN_REFRESH, unknown.token, unknown.hash), 0);
    assert_int_equal(present_ok(c, &unknown, 10, NULL).status, LT_AUTH_REFRESH_INVALID);

    /* expired: refused and left alone */
    pgtest_exec(c, "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'");
    assert_int_equal(present_ok(c, &rt0, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    pgtest_exec(c, "UPDATE refresh_tokens SET expires_at = now() + interval '1 hour'");
    /* a user no longer active, then a session past its idle expiry */
    pgtest_exec(c, "UPDATE users SET status = 'disabled'");
    assert_int_equal(present_ok(c, &rt0, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    pgtest_exec(c, "UPDATE users SET status = 'active'");
    pgtest_exec(c, "UPDATE sessions SET idle_expires_at = now() - interval '1 second'");
    assert_int_equal(present_ok(c, &rt0, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    pgtest_exec(c, "UPDATE sessions SET idle_expires_at = now() + interval '1 hour'");
    assert_q(c, "0", "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL", 0, NULL);
    assert_q(c, "0", "SELECT count(*) FROM audit_log WHERE event = 'refresh_token.reuse_detected'", 0, NULL);

    /* the right tenant (or none) still rotates it */
    outcome_t ok = present_ok(c, &rt0, 10, d->tenant);
    assert_int_equal(ok.status, LT_AUTH_REFRESH_OK);
    /* and a wrong-tenant repeat is invalid, not a repeat and not reuse */
    assert_int_equal(present_ok(c, &rt0, 10, d->other_tenant).status, LT_AUTH_REFRESH_INVALID);
    assert_q(c, "t", "SELECT revoked_at IS NULL FROM sessions", 0, NULL);
    PQfinish(c);
}

static void test_introspect_and_revoke(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40], want[512], v[512];
    login(c, d, &rt0, sid);
    const char *p[] = {rt0.hash, d->tenant};
    query1(c, v, sizeof(v), lt_auth_stmt_refresh_introspect.sql, 2, p);
    snprintf(want, sizeof(want), "{\"sid\": \"%s\", \"sub\": \"%s\", \"amr\": [\"pwd\"], \"roles\": [\"admin\"], "
             "\"scope\": \"\", \"tenant\": \"%s\", \"username\": \"Alice@Acme.test\"}", sid, d->user, d->tenant);
    const char *pv[] = {v, want};
    /* the fixed members as given; exp/iat/auth_time plausible numbers */
    assert_q(c, "t", "SELECT ($1::jsonb - 'exp' - 'iat' - 'auth_time') = $2::jsonb", 2, pv);
    assert_q(c, "t", "SELECT ($1::jsonb->>'exp')::bigint - extract(epoch FROM now()) BETWEEN 3590 AND 3610"
                     " AND abs(($1::jsonb->>'iat')::bigint - extract(epoch FROM now())) < 5"
                     " AND abs(($1::jsonb->>'auth_time')::bigint - ($1::jsonb->>'iat')::bigint) <= 1",
             1, pv);
    const char *po[] = {rt0.hash, d->other_tenant};
    assert_q(c, "NULL", lt_auth_stmt_refresh_introspect.sql, 2, po);

    /* after rotation the parent is inactive and the successor active */
    outcome_t a = present_ok(c, &rt0, 10, NULL);
    rt_t rt1 = as_rt(&a);
    assert_q(c, "NULL", lt_auth_stmt_refresh_introspect.sql, 2, p);
    const char *p1[] = {rt1.hash, NULL};
    query1(c, v, sizeof(v), lt_auth_stmt_refresh_introspect.sql, 2, p1);
    assert_non_null(strstr(v, sid));

    /* revoke: another tenant's client cannot; the used parent ends the whole session */
    const char *rv_other[] = {rt0.hash, d->other_tenant, "client:x", "203.0.113.7", "req-rv"};
    assert_q(c, "f", lt_auth_stmt_refresh_revoke.sql, 5, rv_other);
    const char *rv[] = {rt0.hash, d->tenant, "client:x", "203.0.113.7", "req-rv"};
    assert_q(c, "t", lt_auth_stmt_refresh_revoke.sql, 5, rv);
    const char *ps[] = {sid};
    assert_q(c, "revoked", "SELECT revoked_reason FROM sessions WHERE id = $1", 1, ps);
    assert_q(c, "1|client:x|refresh_token", "SELECT count(*) || '|' || min(actor) || '|' || min(details->>'type')"
                                            " FROM audit_log WHERE event = 'token.revoked' AND target = $1", 1, ps);
    assert_q(c, "1", "SELECT count(*) FROM revocations WHERE kind = 'sid' AND value = $1", 1, ps);
    assert_q(c, "NULL", lt_auth_stmt_refresh_introspect.sql, 2, p1);
    assert_int_equal(present_ok(c, &rt1, 10, NULL).status, LT_AUTH_REFRESH_INVALID);
    /* again, and unknown: false, nothing more audited */
    assert_q(c, "f", lt_auth_stmt_refresh_revoke.sql, 5, rv);
    assert_q(c, "1", "SELECT count(*) FROM audit_log WHERE event = 'token.revoked'", 0, NULL);
    PQfinish(c);
}

static void test_maintain_clears_after_the_window(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40], err[256];
    login(c, d, &rt0, sid);
    assert_int_equal(present_ok(c, &rt0, 10, NULL).status, LT_AUTH_REFRESH_OK);
    pgtest_exec(c,
                "INSERT INTO revocations (kind, value, expires_at) VALUES ('jti', 'old', now() - interval '1 hour')");
    assert_int_equal(lt_auth_maintain(c, 10, err, sizeof(err)), 0);
    assert_q(c, "1", "SELECT count(*) FROM refresh_tokens WHERE successor_sealed IS NOT NULL", 0, NULL);
    assert_q(c, "0", "SELECT count(*) FROM revocations", 0, NULL);
    pgtest_exec(c, "UPDATE refresh_tokens SET used_at = used_at - interval '11 seconds' WHERE used_at IS NOT NULL");
    assert_int_equal(lt_auth_maintain(c, 10, err, sizeof(err)), 0);
    assert_q(c, "0", "SELECT count(*) FROM refresh_tokens WHERE successor_sealed IS NOT NULL", 0, NULL);
    PQfinish(c);

    /* a broken connection is reported, not crashed on */
    PGconn *bad = PQconnectdb("host=/nonexistent-dir dbname=x connect_timeout=1");
    assert_int_not_equal(lt_auth_maintain(bad, 10, err, sizeof(err)), 0);
    assert_true(err[0] != '\0');
    PQfinish(bad);
}

/* ---- presentations racing on separate connections ------------------------------------------ */

#define RACERS 16

typedef struct racer {
    const db_t *d;
    const rt_t *rt;
    int grace;
    pthread_barrier_t *go;
    outcome_t o;
    int failed;
} racer_t;

static void *race(void *arg)
{
    racer_t *x = arg;
    PGconn *c = PQconnectdb(x->d->pg->runtime);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(x->o.err, sizeof(x->o.err), "connect: %s", PQerrorMessage(c));
        x->failed = 1;
        pthread_barrier_wait(x->go);
    } else {
        pthread_barrier_wait(x->go);
        x->failed = present(c, x->rt, x->grace, NULL, &x->o) != 0;
    }
    PQfinish(c);
    return NULL;
}

static void run_race(const db_t *d, const rt_t *rt, int grace, racer_t *x)
{
    pthread_t t[RACERS];
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        x[i] = (racer_t){.d = d, .rt = rt, .grace = grace, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACERS; i++)
        if (x[i].failed)
            fail_msg("racer %d: %s", i, x[i].o.err); /* a serialization failure would land here */
}

static void test_concurrent_presentations_one_family_line(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);
    racer_t x[RACERS];
    run_race(d, &rt0, 10, x);
    int rotated = 0, repeat = 0, winner = -1;
    for (int i = 0; i < RACERS; i++) {
        if (x[i].o.status == LT_AUTH_REFRESH_OK) {
            rotated++;
            winner = i;
        } else if (x[i].o.status == LT_AUTH_REFRESH_REPEAT) {
            repeat++;
        }
    }
    assert_int_equal(rotated, 1);
    assert_int_equal(repeat, RACERS - 1);
    for (int i = 0; i < RACERS; i++)
        assert_string_equal(x[i].o.successor, x[winner].o.successor);
    const char *ps[] = {sid};
    assert_q(c, "2", "SELECT count(*) FROM refresh_tokens WHERE session_id = $1", 1, ps);

    /* the successor, raced in turn, rotates once more; still one line */
    rt_t rt1 = as_rt(&x[winner].o);
    run_race(d, &rt1, 10, x);
    rotated = 0;
    for (int i = 0; i < RACERS; i++)
        rotated += x[i].o.status == LT_AUTH_REFRESH_OK;
    assert_int_equal(rotated, 1);
    assert_q(c, "3|2|0", "SELECT count(*) || '|' || count(DISTINCT parent_id) || '|' ||"
                         " (SELECT count(*) FROM (SELECT parent_id FROM refresh_tokens WHERE session_id = $1"
                         " AND parent_id IS NOT NULL GROUP BY parent_id HAVING count(*) > 1) f)"
                         " FROM refresh_tokens WHERE session_id = $1", 1, ps);
    assert_q(c, "t", "SELECT revoked_at IS NULL FROM sessions WHERE id = $1", 1, ps);
    PQfinish(c);
}

static void test_concurrent_presentations_grace_zero(void **state)
{
    SKIP_WITHOUT_PG();
    db_t *d = *state;
    PGconn *c = pgtest_connect(d->pg->runtime);
    rt_t rt0;
    char sid[40];
    login(c, d, &rt0, sid);
    racer_t x[RACERS];
    run_race(d, &rt0, 0, x);
    int n[4] = {0};
    for (int i = 0; i < RACERS; i++)
        n[x[i].o.status]++;
    /* one rotates, the next one after it is reuse and ends the session, the rest are late */
    assert_int_equal(n[LT_AUTH_REFRESH_OK], 1);
    assert_int_equal(n[LT_AUTH_REFRESH_REPEAT], 0);
    assert_int_equal(n[LT_AUTH_REFRESH_REUSE], 1);
    assert_int_equal(n[LT_AUTH_REFRESH_INVALID], RACERS - 2);
    assert_reuse_ended(c, sid, rt0.hash);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_hash_vectors),
        cmocka_unit_test(test_token_hash_refuses_malformed),
        cmocka_unit_test(test_token_new_shape_and_hash),
        cmocka_unit_test(test_uuid_shape),
        cmocka_unit_test(test_limits_params),
        cmocka_unit_test(test_statements_register_once),
        cmocka_unit_test(test_successor_seal_round_trip),
        /* PostgreSQL from here (NPURE) */
        cmocka_unit_test_setup_teardown(test_rotate_then_repeat_within_grace, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_after_grace_ends_the_session, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_older_ancestor_is_reuse, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_grace_zero_is_reuse_at_once, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_tenant_and_invalid_do_not_consume, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_introspect_and_revoke, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_maintain_clears_after_the_window, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_presentations_one_family_line, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_presentations_grace_zero, db_setup, db_teardown),
    };
    enum { NPURE = 7 };
    size_t n = sizeof(tests) / sizeof(tests[0]);
    lt_log_set_level(LT_LOG_ERROR); /* "applied <file>" for every fresh database */
    base_url = pgtest_url_or_leave_out(tests, NPURE, &n);
    return _cmocka_run_group_tests("identity_auth", tests, n, NULL, NULL);
}
