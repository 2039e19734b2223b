/*
 * Unit tests for lib/policy (the condition language): lexer and parser errors with their
 * positions, the checker, every operator and function, the missing-attribute semantics,
 * limits, variables, time zones (checked against glibc's own reading of the same TZif
 * files), IPv4/IPv6 CIDRs, and a micro-benchmark printed as a TAP comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <cmocka.h>

#include "base/base.h"
#include "policy/expr.h"
#include "policy/internal.h"

/* 2024-01-15T23:30:00Z, a Monday */
#define NOW_US (1705361400LL * 1000000)

static const char *const DOC_SUBJECT =
    "{\"id\":\"alice\",\"roles\":[\"editor\",\"viewer\"],\"tenant\":\"t1\","
    "\"attributes\":{\"department\":\"eng\",\"level\":3,\"clearance\":2.5,\"odd key\":\"v\",\"manager\":null,"
    "\"nick\":\"\\u00e9l\\u00e9\"}}";
static const char *const DOC_RESOURCE =
    "{\"id\":\"doc1\",\"owner\":\"alice\",\"department\":\"eng\",\"classification\":\"internal\","
    "\"tags\":[\"a\",\"b\",\"c\"],\"scores\":[1,5,9],\"archived\":false,\"size\":1024,\"ratio\":0.5,"
    "\"meta\":{\"created\":\"2024-05-01T09:00:00Z\",\"ttl\":\"90m\",\"k\":\"department\"},\"empty\":[],"
    "\"nested\":[[1,2],[3]],\"people\":[{\"name\":\"bob\",\"age\":40},{\"name\":\"carol\",\"age\":17}],"
    "\"created_unix\":1700000000}";
static const char *const DOC_ACTION = "{\"name\":\"read\"}";
static const char *const DOC_CONTEXT =
    "{\"ip\":\"10.1.2.3\",\"ip6\":\"2001:db8:1::5\",\"mapped\":\"::ffff:10.9.9.9\",\"bad_ip\":\"10.1.2\","
    "\"time\":\"2024-07-15T23:30:00Z\",\"allow\":[\"192.168.0.0/16\",\"10.0.0.0/8\"],\"cidr\":\"2001:db8::/32\","
    "\"bad_cidr\":\"nope\",\"n\":null}";

static json_t *subject, *resource, *action, *context;

static lt_policy_input_t input(void)
{
    lt_policy_input_t in = {subject, resource, action, context, NOW_US, 0};
    return in;
}

/* ---- helpers -------------------------------------------------------------------------- */

static lt_policy_result_t run_vars(const char *src, const lt_policy_vars_t *vars, const lt_policy_input_t *in,
                                   const char *file, int line)
{
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    int rc = lt_policy_expr_compile(src, strlen(src), vars, &e, &err);
    if (rc != 0) {
        print_error("%s:%d: compile failed (%d) for `%s`: %d:%d %s%s%s\n", file, line, rc, src, err.line, err.col,
                    err.var, err.var[0] ? ": " : "", err.msg);
        _fail(file, line);
    }
    lt_policy_result_t r = LT_POLICY_ERROR;
    if (lt_policy_expr_eval(e, in, &r) != 0)
        _fail(file, line);
    lt_policy_expr_free(&e);
    assert_null(e);
    return r;
}

static void expect_res(const char *src, lt_policy_result_t want, const char *file, int line)
{
    lt_policy_input_t in = input();
    lt_policy_result_t got = run_vars(src, NULL, &in, file, line);
    if (got != want) {
        print_error("%s:%d: `%s` gave %d, want %d\n", file, line, src, got, want);
        _fail(file, line);
    }
}

#define T(src) expect_res((src), LT_POLICY_TRUE, __FILE__, __LINE__)
#define F(src) expect_res((src), LT_POLICY_FALSE, __FILE__, __LINE__)

static void expect_err(const char *src, const lt_policy_vars_t *vars, int want_rc, int line, int col,
                       const char *var, const char *msg_part, const char *file, int at)
{
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    int rc = lt_policy_expr_compile(src, strlen(src), vars, &e, &err);
    if (rc != want_rc || err.line != line || err.col != col || strcmp(err.var, var) != 0 ||
        strstr(err.msg, msg_part) == NULL) {
        print_error("%s:%d: `%s`: got rc %d at %d:%d [%s] \"%s\"; want rc %d at %d:%d [%s] containing \"%s\"\n",
                    file, at, src, rc, err.line, err.col, err.var, err.msg, want_rc, line, col, var, msg_part);
        lt_policy_expr_free(&e);
        _fail(file, at);
    }
    if (want_rc == 0)
        lt_policy_expr_free(&e);
    assert_null(e);
}

/* A compile error at line:col whose message contains `part`. */
#define E(src, line, col, part) expect_err((src), NULL, LT_EINVAL, (line), (col), "", (part), __FILE__, __LINE__)

/* ---- literals and operators ----------------------------------------------------------- */

static void test_literals(void **state)
{
    (void)state;
    T("true");
    F("false");
    T("1 == 1");
    T("0x2A == 42");
    T("-5 == 0 - 5");
    T("-9223372036854775808 < 0");
    T("9223372036854775807 > 0");
    T("1.5 == 1.5");
    T("1e3 == 1000");
    T(".5 == 0.5");
    T("2.5E-1 == 0.25");
    T("\"a\\\"b\" == 'a\"b'");
    T("'it\\'s' == \"it's\"");
    T("\"\\u00e9\" == \"é\"");
    T("\"tab\\there\" != \"tab here\"");
    T("\"\\\\\" == '\\\\'");
    T("null == null");
    T("[1, \"a\", true] == [1, \"a\", true]");
    T("[1, 2,] == [1, 2]");
    T("[] == []");
    F("[1, 2] == [2, 1]");
    T("size([]) == 0");
    T("// a comment\n true // another");
}

static void test_operators(void **state)
{
    (void)state;
    /* equality */
    T("1 == 1.0");
    T("1 != 2");
    F("resource.size == \"1024\" || resource.size == true"); /* different types at run time: unequal */
    T("\"abc\" == \"abc\"");
    F("\"abc\" == \"abd\"");
    T("true != false");
    /* order */
    T("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3");
    F("2 < 1");
    T("1 < 1.5 && 1.5 < 2");
    T("\"a\" < \"b\" && \"ab\" > \"a\" && \"b\" >= \"b\"");
    T("false < true");
    /* logic */
    T("true && true");
    F("true && false");
    T("false || true");
    F("false || false");
    T("!false");
    F("!true");
    T("!!true");
    /* in */
    T("\"b\" in [\"a\", \"b\"]");
    F("\"z\" in [\"a\", \"b\"]");
    T("2 in [1, 2.0]");
    T("\"owner\" in resource");
    F("\"nobody\" in resource");
    T("\"b\" in resource.tags");
    T("[1, 2] in resource.nested || [3] in resource.nested");
    /* conditional */
    T("true ? true : false");
    F("false ? true : false");
    T("(1 > 2 ? \"x\" : \"y\") == \"y\"");
    T("resource.archived ? false : true");
    /* arithmetic */
    T("1 + 2 == 3");
    T("5 - 7 == -2");
    T("6 * 7 == 42");
    T("7 / 2 == 3");
    T("-7 / 2 == -3");
    T("7 % 4 == 3");
    T("1.5 + 1 == 2.5");
    T("1 / 2.0 == 0.5");
    T("-resource.size == -1024");
    T("-(1.5) == -1.5");
    F("9223372036854775807 + 1 > 0 || 9223372036854775807 + 1 <= 0"); /* overflow: no value */
    F("1 / 0 == 0 || 1 / 0 != 0");
    F("1 % 0 == 0 || 1 % 0 != 0");
    F("-9223372036854775808 / -1 != 0 || -9223372036854775808 / -1 == 0");
    F("-(-9223372036854775808) != 0 || -(-9223372036854775808) == 0");
}

static void test_precedence(void **state)
{
    (void)state;
    T("true || false && false");  /* && binds tighter */
    F("(true || false) && false");
    T("!false && true");
    F("!(false || true)");
    T("!true || true");
    T("1 + 2 * 3 == 7");
    T("(1 + 2) * 3 == 9");
    T("10 - 2 - 3 == 5"); /* left-associative */
    T("12 / 2 / 3 == 2");
    T("-2 * 3 == -6");
    T("2 + 3 in [5]");
    T("1 < 2 == true"); /* relations are left-associative at one level */
    T("false ? false : true ? true : false");
    T("true ? 1 == 1 : false");
    T("false && true || true");
    T("resource.tags.size() + 1 == 4");
    T("!resource.archived && resource.size > 1000");
}

/* ---- paths and missing attributes --------------------------------------------------- */

static void test_paths(void **state)
{
    (void)state;
    T("resource.owner == subject.id");
    T("subject.attributes.department == resource.department");
    T("subject.attributes[\"odd key\"] == \"v\"");
    T("resource[\"owner\"] == \"alice\"");
    T("resource.tags[1] == \"b\"");
    T("resource.nested[0][1] == 2");
    T("[10, 20, 30][2] == 30");
    T("subject.attributes[resource.meta.k] == \"eng\""); /* a dynamic key */
    T("resource.people[1].name == \"carol\"");
    T("action.name == \"read\"");
    T("context.ip == \"10.1.2.3\"");
    T("resource.ratio == 0.5");
    T("subject.attributes.level == 3 && subject.attributes.clearance > 2");
    T("subject.attributes.manager == null");
    F("resource.tags[3] == \"d\" || resource.tags[3] != \"d\"");
    F("resource.tags[-1] == \"c\" || resource.tags[-1] != \"c\"");
}

static void test_missing(void **state)
{
    (void)state;
    F("resource.missing == \"x\"");
    F("resource.missing != \"x\"");
    F("!(resource.missing == \"x\")");
    F("resource.missing == resource.also_missing"); /* two missing values are not equal */
    F("resource.missing.deeper == 1");
    F("resource.missing < 3");
    F("!(resource.missing < 3)");
    F("resource.missing in [1, 2]");
    F("!(resource.missing in [1, 2])");
    F("\"x\" in resource.missing");
    F("resource.missing.startsWith(\"a\")");
    F("size(resource.missing) == 0");
    F("resource.missing ? true : true");
    F("resource.missing");
    F("!resource.missing");
    T("resource.missing == \"x\" || true");
    T("true || resource.missing == \"x\"");
    F("resource.missing == \"x\" && false");
    F("false && resource.missing == \"x\"");
    F("resource.missing == \"x\" && true");
    F("resource.missing == \"x\" || false");
    F("!(resource.missing == \"x\" || false)");
    /* has() is how presence is tested */
    T("has(resource.owner)");
    F("has(resource.missing)");
    F("has(resource.missing.deeper)");
    T("has(subject.attributes.manager)"); /* present, even though null */
    T("has(subject.attributes[\"odd key\"])");
    F("has(resource.owner.x)"); /* a field of a string */
    T("!has(resource.missing)");
    T("!has(resource.missing) || resource.missing == 1");
    /* runtime type mismatches give no value */
    F("resource.owner < 3");
    F("!(resource.owner < 3)");
    F("resource.owner + 1 == 2");
    F("resource.owner.x == 1");
    F("resource.size.startsWith(\"1\")");
    F("resource.size == \"1024\"");
    T("resource.size != \"1024\""); /* different types: unequal (CEL) */
    F("resource.owner"); /* not a bool */
    /* a NULL root: every path below is missing */
    lt_policy_input_t in = input();
    in.context = NULL;
    assert_int_equal(run_vars("context.ip == \"10.1.2.3\"", NULL, &in, __FILE__, __LINE__), LT_POLICY_FALSE);
    assert_int_equal(run_vars("!has(context.ip)", NULL, &in, __FILE__, __LINE__), LT_POLICY_TRUE);
}

/* ---- functions ------------------------------------------------------------------------ */

static void test_strings_and_sizes(void **state)
{
    (void)state;
    T("size(\"abc\") == 3");
    T("\"abc\".size() == 3");
    T("size(\"é€😀\") == 3"); /* code points */
    T("subject.attributes.nick.size() == 3");
    T("size(resource.tags) == 3");
    T("resource.tags.size() == 3");
    T("size([1, [2, 3]]) == 2");
    T("size(subject.attributes) == 6");
    T("size(resource.empty) == 0");
    T("resource.owner.startsWith(\"ali\")");
    F("resource.owner.startsWith(\"alice!\")");
    T("resource.owner.startsWith(\"\")");
    T("resource.owner.endsWith(\"ice\")");
    F("resource.owner.endsWith(\"al\")");
    T("resource.owner.contains(\"lic\")");
    F("resource.owner.contains(\"bob\")");
    T("resource.owner.contains(\"\")");
    T("resource.tags.contains(\"c\")");
    F("resource.tags.contains(\"z\")");
    T("resource.scores.contains(5.0)");
    T("[1, 2].contains(2)");
    T("\"abc\".startsWith(\"ab\") && \"abc\".endsWith(\"bc\") && \"abc\".contains(\"b\")");
}

static void test_exists_all(void **state)
{
    (void)state;
    T("resource.tags.exists(t, t == \"b\")");
    F("resource.tags.exists(t, t == \"z\")");
    T("resource.tags.all(t, t.size() == 1)");
    F("resource.tags.all(t, t == \"a\")");
    F("resource.empty.exists(x, true)");
    T("resource.empty.all(x, false)");
    T("resource.scores.all(s, s > 0) && resource.scores.exists(s, s > 8)");
    T("[1, 2, 3].exists(x, x == 2)");
    T("resource.people.exists(p, p.name == \"carol\" && p.age < 18)");
    F("resource.people.all(p, p.age >= 18)");
    T("resource.nested.exists(l, l.exists(x, x == 3))");                 /* nested */
    T("resource.nested.all(l, l.all(x, x > 0)) && resource.tags.exists(x, resource.scores.exists(x, x == 9))");
    T("resource.nested.exists(x, x.exists(y, y == 2) && x.size() == 2)"); /* inner does not clobber outer */
    T("resource.meta.exists(k, k == \"ttl\")");                           /* objects iterate keys */
    T("resource.meta.all(k, k.size() > 0)");
    /* a predicate without value on some elements: a true still wins for exists, a false for all */
    T("resource.people.exists(p, p.missing == 1 || p.age == 40)");
    T("resource.people.exists(p, p.age == 40 && true)");
    F("resource.people.exists(p, p.missing == 1)");
    F("!resource.people.exists(p, p.missing == 1)");
    F("resource.people.all(p, p.missing == 1)");
    T("!resource.people.all(p, p.missing == 1 && p.age == 40)"); /* carol: false wins */
    F("resource.missing.exists(x, true)");
    F("resource.owner.exists(x, true)");
    /* a binding shadows nothing but may reuse a name in a sibling */
    T("resource.tags.exists(x, x == \"a\") && resource.scores.exists(x, x == 1)");
}

static void test_ip_in(void **state)
{
    (void)state;
    T("ip_in(context.ip, \"10.0.0.0/8\")");
    F("ip_in(context.ip, \"10.2.0.0/16\")");
    T("ip_in(context.ip, \"10.1.2.3\")");
    T("ip_in(context.ip, \"10.1.2.3/32\")");
    T("ip_in(context.ip, \"0.0.0.0/0\")");
    T("ip_in(context.ip, \"10.1.2.0/23\")");
    F("ip_in(context.ip, \"10.1.4.0/23\")");
    T("ip_in(context.ip, \"10.9.9.9/8\")"); /* host bits masked off */
    T("ip_in(context.ip6, \"2001:db8::/32\")");
    F("ip_in(context.ip6, \"2001:db9::/32\")");
    T("ip_in(context.ip6, \"2001:db8:1::/48\")");
    F("ip_in(context.ip6, \"2001:db8:2::/48\")");
    T("ip_in(context.ip6, \"2001:db8:1::5/128\")");
    F("ip_in(context.ip6, \"2001:db8:1::6/127\")");
    T("ip_in(context.ip6, \"2001:db8:1::4/126\")");
    T("ip_in(context.ip6, \"::/0\")");
    F("ip_in(context.ip, \"2001:db8::/32\")");
    F("ip_in(context.ip6, \"10.0.0.0/8\")");
    /* IPv4-mapped IPv6 both ways */
    T("ip_in(context.mapped, \"10.0.0.0/8\")");
    T("ip_in(context.ip, \"::ffff:10.0.0.0/104\")");
    F("ip_in(context.ip, \"::ffff:11.0.0.0/104\")");
    T("ip_in(\"::ffff:192.168.1.1\", \"192.168.0.0/16\")");
    /* lists, literal and from the document */
    T("ip_in(context.ip, [\"192.168.0.0/16\", \"10.0.0.0/8\"])");
    F("ip_in(context.ip, [\"192.168.0.0/16\", \"172.16.0.0/12\"])");
    T("ip_in(context.ip6, [\"10.0.0.0/8\", \"2001:db8::/32\"])");
    T("ip_in(context.ip, context.allow)");
    F("ip_in(\"172.16.0.1\", context.allow)");
    T("ip_in(context.ip6, context.cidr)"); /* parsed at run time */
    T("ip_in(context.ip, [context.cidr, \"10.0.0.0/8\"])");
    /* bad run-time input: no value */
    F("ip_in(context.ip, context.bad_cidr)");
    F("!ip_in(context.ip, context.bad_cidr)");
    F("ip_in(context.bad_ip, \"10.0.0.0/8\")");
    F("!ip_in(context.bad_ip, \"10.0.0.0/8\")");
    F("ip_in(context.missing, \"10.0.0.0/8\")");
    F("ip_in(resource.size, \"10.0.0.0/8\")");

    /* the parser itself, for edge forms */
    lt__cidr_t c;
    assert_int_equal(lt__cidr_parse("10.0.0.0/08", 11, &c), -1);
    assert_int_equal(lt__cidr_parse("10.0.0.0/", 9, &c), -1);
    assert_int_equal(lt__cidr_parse("10.0.0.0/33", 11, &c), -1);
    assert_int_equal(lt__cidr_parse("::/129", 6, &c), -1);
    assert_int_equal(lt__cidr_parse("1.2.3.4.5", 9, &c), -1);
    assert_int_equal(lt__cidr_parse("fe80::1%eth0", 12, &c), -1);
    assert_int_equal(lt__cidr_parse("::/0", 4, &c), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(lt__cidr_parse("1.2.3.4/0", 9, &c), 0);
    assert_int_equal(c.prefix, 96);
}

static void test_time(void **state)
{
    (void)state;
    T("timestamp(\"2024-01-15T23:30:00Z\") == now");
    T("timestamp(\"2024-01-16T00:30:00+01:00\") == now");
    T("timestamp(\"2024-01-15T18:30:00-05:00\") == now");
    T("timestamp(\"2024-01-15t23:30:00.000000z\") == now");
    T("timestamp(\"2024-01-15T23:30:00.5Z\") > now");
    T("timestamp(\"2024-01-15T23:30:00.5Z\") - now == duration(\"500ms\")");
    T("now > timestamp(\"2024-01-01T00:00:00Z\") && now < timestamp(\"2025-01-01T00:00:00Z\")");
    T("timestamp(resource.meta.created) > now");
    T("timestamp(resource.meta.created) == timestamp(\"2024-05-01T09:00:00Z\")");
    T("timestamp(resource.created_unix) == timestamp(\"2023-11-14T22:13:20Z\")");
    T("timestamp(1700000000) == timestamp(\"2023-11-14T22:13:20Z\")");
    T("timestamp(\"1970-01-01T00:00:00Z\") == timestamp(0)");
    T("timestamp(\"1969-12-31T23:59:59Z\") == timestamp(-1)");
    T("timestamp(\"2024-02-29T00:00:00Z\") + duration(\"24h\") == timestamp(\"2024-03-01T00:00:00Z\")");
    T("now - duration(\"1h30m\") == timestamp(\"2024-01-15T22:00:00Z\")");
    T("now + duration(\"-1h30m\") == timestamp(\"2024-01-15T22:00:00Z\")");
    T("duration(\"1h30m\") + now == timestamp(\"2024-01-16T01:00:00Z\")");
    T("timestamp(\"2024-01-16T00:00:00Z\") - now == duration(\"30m\")");
    T("duration(\"1h\") == duration(\"60m\") && duration(\"1h\") == duration(\"3600s\")");
    T("duration(\"1.5h\") == duration(\"90m\")");
    T("duration(\"1s\") == duration(\"1000ms\") && duration(\"1ms\") == duration(\"1000us\")");
    T("duration(\"2µs\") == duration(\"2000ns\")");
    T("duration(\"0\") < duration(\"1ns\") || duration(\"0\") == duration(\"1ns\")"); /* microsecond precision */
    T("duration(\"1h\") - duration(\"30m\") == duration(\"30m\")");
    T("-duration(\"1h\") < duration(\"0\")");
    T("duration(resource.meta.ttl) == duration(\"1h30m\")");
    T("now - timestamp(\"2024-01-15T00:00:00Z\") < duration(\"24h\")");
    F("timestamp(context.bad_ip) < now || timestamp(context.bad_ip) >= now");
    F("timestamp(resource.owner) == now");
    F("duration(resource.owner) == duration(\"1h\")");
    F("timestamp(resource.tags) == now");
    /* parsers */
    int64_t us;
    assert_int_equal(lt__ts_parse("2024-02-30T00:00:00Z", 20, &us), -1);
    assert_int_equal(lt__ts_parse("2023-02-29T00:00:00Z", 20, &us), -1);
    assert_int_equal(lt__ts_parse("2024-01-01T24:00:00Z", 20, &us), -1);
    assert_int_equal(lt__ts_parse("2024-01-01T00:00:60Z", 20, &us), -1);
    assert_int_equal(lt__ts_parse("2024-01-01T00:00:00", 19, &us), -1);
    assert_int_equal(lt__ts_parse("2024-01-01T00:00:00.Z", 21, &us), -1);
    assert_int_equal(lt__ts_parse("2024-01-01T00:00:00+0100", 24, &us), -1);
    assert_int_equal(lt__ts_parse("0001-01-01T00:00:00Z", 20, &us), 0);
    assert_int_equal(lt__ts_parse("9999-12-31T23:59:59.999999Z", 27, &us), 0);
    assert_int_equal(lt__ts_parse("2000-01-01T00:00:00.123456789Z", 30, &us), 0);
    assert_int_equal(us, 946684800123456LL);
    assert_int_equal(lt__dur_parse("", 0, &us), -1);
    assert_int_equal(lt__dur_parse("1", 1, &us), -1);
    assert_int_equal(lt__dur_parse("h", 1, &us), -1);
    assert_int_equal(lt__dur_parse("1d", 2, &us), -1);
    assert_int_equal(lt__dur_parse("9999999999h", 11, &us), -1);
    assert_int_equal(lt__dur_parse("1h1m1s1ms1us", 12, &us), 0);
    assert_int_equal(us, 3661001001LL);
    assert_int_equal(lt__dur_parse("-.5s", 4, &us), 0);
    assert_int_equal(us, -500000);
}

static void test_time_zones(void **state)
{
    (void)state;
    /* now = 2024-01-15T23:30:00Z, Monday; context.time = 2024-07-15T23:30:00Z, Monday */
    T("hour(now, \"UTC\") == 23 && weekday(now, \"UTC\") == 1");
    T("hour(now, \"Europe/Paris\") == 0");      /* CET, UTC+1: past midnight */
    T("weekday(now, \"Europe/Paris\") == 2");   /* ... so already Tuesday */
    T("hour(timestamp(context.time), \"Europe/Paris\") == 1"); /* CEST, UTC+2 in July */
    T("weekday(timestamp(context.time), \"Europe/Paris\") == 2");
    T("hour(now, \"America/New_York\") == 18 && weekday(now, \"America/New_York\") == 1");
    T("hour(timestamp(context.time), \"America/New_York\") == 19");
    T("hour(now, \"Asia/Kolkata\") == 5 && weekday(now, \"Asia/Kolkata\") == 2"); /* UTC+5:30 */
    T("hour(now, \"Australia/Sydney\") == 10 && hour(timestamp(context.time), \"Australia/Sydney\") == 9");
    /* the DST switches of 2024 in Paris (31 March, 27 October at 01:00 UTC) */
    T("hour(timestamp(\"2024-03-31T00:59:59Z\"), \"Europe/Paris\") == 1");
    T("hour(timestamp(\"2024-03-31T01:00:00Z\"), \"Europe/Paris\") == 3");
    T("hour(timestamp(\"2024-10-27T00:59:59Z\"), \"Europe/Paris\") == 2");
    T("hour(timestamp(\"2024-10-27T01:00:00Z\"), \"Europe/Paris\") == 2");
    T("hour(timestamp(\"2024-03-10T06:59:59Z\"), \"America/New_York\") == 1");
    T("hour(timestamp(\"2024-03-10T07:00:00Z\"), \"America/New_York\") == 3");
    /* beyond the last transition in the file: the footer's rule */
    T("hour(timestamp(\"2100-01-15T00:00:00Z\"), \"Europe/Paris\") == 1");
    T("hour(timestamp(\"2100-07-15T00:00:00Z\"), \"Europe/Paris\") == 2");
    T("hour(timestamp(\"2100-07-15T00:00:00Z\"), \"America/New_York\") == 20");
    T("hour(timestamp(\"2100-01-15T00:00:00Z\"), \"Australia/Sydney\") == 11");
    T("weekday(timestamp(\"2100-01-15T00:00:00Z\"), \"Europe/Paris\") == 5");
    /* before the first transition: local mean time (Paris +0:09:21) */
    T("hour(timestamp(\"1850-01-01T12:00:00Z\"), \"Europe/Paris\") == 12");
    T("hour(timestamp(\"1850-01-01T12:00:00Z\"), \"America/New_York\") == 7");
    /* business hours, a typical rule */
    T("hour(now, \"America/New_York\") >= 9 && hour(now, \"America/New_York\") < 19 && "
      "weekday(now, \"America/New_York\") in [1, 2, 3, 4, 5]");
    /* weekday across midnight and before 1970 */
    T("weekday(timestamp(\"2024-01-14T23:59:59Z\"), \"UTC\") == 0");
    T("weekday(timestamp(\"2024-01-15T00:00:00Z\"), \"UTC\") == 1");
    T("weekday(timestamp(\"1969-12-31T12:00:00Z\"), \"UTC\") == 3");
    T("hour(timestamp(\"1969-12-31T23:00:00Z\"), \"UTC\") == 23");
    F("hour(context.time, \"UTC\") == 23"); /* a string is not a timestamp */
    F("hour(resource.missing, \"UTC\") == 23");
}

/* Every hour from 1900 to 2150 (sampled) against glibc's reading of the same files. */
static void test_time_zones_vs_libc(void **state)
{
    (void)state;
    static const char *const zones[] = {"Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
                                        "America/Santiago", "Australia/Lord_Howe", "Europe/Dublin", "Pacific/Chatham",
                                        "America/St_Johns", "Africa/Casablanca", "UTC"};
    const char *old = getenv("TZ");
    char *saved = old != NULL ? strdup(old) : NULL;
    for (size_t zi = 0; zi < sizeof(zones) / sizeof(zones[0]); zi++) {
        const lt__tz_t *z = NULL;
        const char *why = NULL;
        assert_int_equal(lt__tz_get(zones[zi], strlen(zones[zi]), &z, &why), 0);
        setenv("TZ", zones[zi], 1);
        tzset();
        size_t mismatches = 0;
        /* 7 days + 1 hour + 17 s steps walk through every hour of the week over the years */
        for (int64_t t = -2208988800LL; t < 5680281600LL; t += 7 * 86400 + 3600 + 17) {
            time_t tt = (time_t)t;
            struct tm tm;
            assert_non_null(localtime_r(&tt, &tm));
            int32_t off = lt__tz_offset(z, t);
            if (off != tm.tm_gmtoff && mismatches++ < 5)
                print_error("%s at %lld: %d, libc %ld\n", zones[zi], (long long)t, off, tm.tm_gmtoff);
        }
        assert_int_equal(mismatches, 0);
    }
    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

static void test_tzif_bad(void **state)
{
    (void)state;
    lt__tz_t *z = NULL;
    const char *why = NULL;
    uint8_t buf[200] = "TZif2";
    assert_int_equal(lt__tz_from_tzif((const uint8_t *)"nope", 4, &z, &why), -1);
    assert_int_equal(lt__tz_from_tzif(buf, sizeof(buf), &z, &why), -1); /* zero type count */
    uint8_t v1[44] = "TZif";
    v1[39] = 1; /* one type */
    assert_int_equal(lt__tz_from_tzif(v1, sizeof(v1), &z, &why), -1);
    assert_non_null(strstr(why, "version 1"));

    /* A real file, truncated at every length, never parses past its end. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lt_read_file("/usr/share/zoneinfo/Europe/Paris", 1 << 20, &data, &len), 0);
    for (size_t n = 0; n < len; n += (n < 100 ? 1 : 37)) {
        uint8_t *copy = malloc(n + 1);
        assert_non_null(copy);
        memcpy(copy, data, n);
        if (lt__tz_from_tzif(copy, n, &z, &why) == 0)
            lt__tz_free(z);
        free(copy);
    }
    assert_int_equal(lt__tz_from_tzif((const uint8_t *)data, len, &z, &why), 0);
    assert_int_equal(lt__tz_offset(z, 1705361400), 3600);
    lt__tz_free(z);
    free(data);

    const lt__tz_t *cz = NULL;
    assert_int_equal(lt__tz_get("../etc/passwd", 13, &cz, &why), -1);
    assert_int_equal(lt__tz_get("/etc/localtime", 14, &cz, &why), -1);
    assert_int_equal(lt__tz_get("Europe/./Paris", 14, &cz, &why), -1);
    assert_int_equal(lt__tz_get("Europe", 6, &cz, &why), -1);
    assert_int_equal(lt__tz_get("Mars/Olympus", 12, &cz, &why), -1);
    assert_int_equal(lt__tz_get("Europe/Paris", 12, &cz, &why), 0);
    const lt__tz_t *again = NULL;
    assert_int_equal(lt__tz_get("Europe/Paris", 12, &again, &why), 0);
    assert_ptr_equal(cz, again); /* cached */
}

static void *compile_zone(void *arg)
{
    const char *src = arg;
    for (int i = 0; i < 50; i++) {
        lt_policy_expr_t *e = NULL;
        lt_policy_error_t err;
        if (lt_policy_expr_compile(src, strlen(src), NULL, &e, &err) != 0)
            return (void *)1;
        lt_policy_input_t in = input();
        lt_policy_result_t r;
        if (lt_policy_expr_eval(e, &in, &r) != 0 || r != LT_POLICY_TRUE)
            return (void *)1;
        lt_policy_expr_free(&e);
    }
    return NULL;
}

static void test_zone_cache_threads(void **state)
{
    (void)state;
    static const char *const srcs[] = {
        "hour(now, \"Asia/Tokyo\") == 8",
        "hour(now, \"Asia/Tokyo\") == 8 && weekday(now, \"Asia/Tokyo\") == 2",
        "hour(now, \"America/Los_Angeles\") == 15",
        "hour(now, \"Europe/London\") == 23",
    };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, compile_zone, (void *)srcs[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_null(r);
    }
}

/* ---- errors --------------------------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
    (void)state;
    E("resource.owner ==", 1, 18, "unexpected end of input");
    E("resource.owner = subject.id", 1, 16, "did you mean '=='");
    E("a & b", 1, 3, "did you mean '&&'");
    E("a | b", 1, 3, "did you mean '||'");
    E("resource.owner == subject.id &&\n  (subject.level > 2 ||\n   )", 3, 4, "unexpected ')'");
    E("\n\n   \"unterminated", 3, 4, "unterminated string");
    E("\"bad \\q escape\"", 1, 6, "unknown escape");
    E("\"\\u12\"", 1, 2, "four hex digits");
    E("\"\\ud800\"", 1, 2, "surrogate");
    E("1 + * 2", 1, 5, "unexpected '*'");
    E("(1 == 1", 1, 8, "expected ')'");
    E("[1, 2", 1, 6, "expected ']'");
    E("f(1, 2", 1, 7, "expected ')'");
    E("resource.", 1, 10, "expected a field or method name");
    E("resource.1", 1, 9, "after the end of the expression"); /* ".1" is a number */
    E("true false", 1, 6, "after the end of the expression");
    E("1 ? 2", 1, 6, "expected ':'");
    E("#", 1, 1, "unexpected character");
    E("\"é\" == \"é\" @", 1, 12, "unexpected character"); /* columns count code points */
    E("12abc == 1", 1, 1, "malformed number");
    E("1e == 1", 1, 1, "malformed exponent");
    E("99999999999999999999 == 1", 1, 1, "out of range");
    E("9223372036854775808 == 1", 1, 1, "out of range");
    E("-9223372036854775809 == 1", 1, 2, "out of range");
    E("0x == 1", 1, 1, "without digits");
    E("", 1, 1, "unexpected end of input");
    E("   // only a comment", 1, 21, "unexpected end of input");
    E("resource.x ==\n\t\t", 2, 3, "unexpected end of input");
    /* not UTF-8 */
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    assert_int_equal(lt_policy_expr_compile("\"\xff\" == 1", 8, NULL, &e, &err), LT_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_int_equal(lt_policy_expr_compile("a\0b", 3, NULL, &e, &err), LT_EINVAL);
}

static void test_check_errors(void **state)
{
    (void)state;
    E("foo(1)", 1, 1, "unknown function 'foo'");
    E("resource.x && bar()", 1, 15, "unknown function 'bar'");
    E("resource.owner.frobnicate()", 1, 16, "unknown method 'frobnicate'");
    E("startsWith(resource.owner, \"a\")", 1, 1, "is a method");
    E("resource.owner.startsWith(\"a\", \"b\")", 1, 16, "takes 1 argument, got 2");
    E("size()", 1, 1, "takes 1 argument, got 0");
    E("resource.tags.size(1) == 1", 1, 15, "takes 0 arguments, got 1");
    E("ip_in(context.ip)", 1, 1, "takes 2 arguments, got 1");
    E("hour(now) == 1", 1, 1, "takes 2 arguments");
    E("resource.tags.exists(t)", 1, 15, "takes 2 arguments, got 1");
    E("resource.tags.exists(\"t\", true)", 1, 22, "new variable name");
    E("resource.tags.exists(resource, true)", 1, 22, "new variable name");
    E("unknown.x == 1", 1, 1, "unknown identifier 'unknown'");
    E("resource.tags.exists(t, u == 1)", 1, 25, "unknown identifier 'u'");
    E("resource.tags.exists(t, true) && t == 1", 1, 34, "unknown identifier 't'"); /* out of scope */
    E("variables == 1", 1, 1, "'variables' must be followed by .NAME");
    E("variables.nope", 1, 11, "unknown variable 'nope'");
    E("\"a\" < true", 1, 5, "cannot compare a string with a bool");
    E("1 == \"1\"", 1, 3, "cannot compare a int with a string");
    E("now == 1", 1, 5, "cannot compare a timestamp with a int");
    E("[1] < [2]", 1, 1, "a list has no order");
    E("resource.x < null", 1, 14, "a null has no order");
    E("1 + \"a\" == 2", 1, 3, "operator + cannot apply to a int and a string");
    E("resource.x + \"a\" == 2", 1, 12, "cannot apply to a dyn and a string");
    E("1.5 % 2 == 1", 1, 5, "operator %");
    E("now + now > now", 1, 5, "operator + cannot apply to a timestamp and a timestamp");
    E("duration(\"1h\") - now > now", 1, 16, "operator -");
    E("!\"x\"", 1, 2, "the operand of '!' must be a bool, not a string");
    E("-\"x\" == 1", 1, 2, "cannot negate a string");
    E("true && 1", 1, 9, "an operand of '&&' must be a bool");
    E("1 || true", 1, 1, "an operand of '||' must be a bool");
    E("\"x\" ? true : false", 1, 1, "the condition of '?:' must be a bool");
    E("1", 1, 1, "a condition must be a bool, not a int");
    E("\"yes\"", 1, 1, "a condition must be a bool, not a string");
    E("1 + 2", 1, 3, "a condition must be a bool");
    E("1 in 2", 1, 6, "'in' needs a list or a map");
    E("\"a\".b == 1", 1, 5, "a string has no field 'b'");
    E("[1][\"a\"] == 1", 1, 5, "a list index must be an int");
    E("resource[true] == 1", 1, 10, "an index must be a string or an int, not a bool");
    E("\"abc\"[0] == \"a\"", 1, 1, "cannot index a string");
    E("size(1) == 1", 1, 6, "size() of a int");
    E("1.size() == 1", 1, 1, "size() of a int");
    E("true.contains(1)", 1, 1, "contains() on a bool");
    E("\"abc\".contains(1)", 1, 16, "the argument must be a string");
    E("\"abc\".startsWith(1)", 1, 18, "the argument must be a string");
    E("1.endsWith(\"a\")", 1, 1, "the receiver must be a string");
    E("1.exists(x, true)", 1, 1, "exists() over a int");
    E("resource.tags.all(x, 1)", 1, 22, "the predicate must be a bool");
    E("has(resource)", 1, 5, "has() takes a field selection");
    E("has(1)", 1, 5, "has() takes a field selection");
    E("has(resource.a, resource.b)", 1, 1, "takes 1 argument, got 2");
    E("has(\"a\".b)", 1, 5, "has() of a field of a string");
    E("ip_in(1, \"10.0.0.0/8\")", 1, 7, "address must be a string, not a int");
    E("ip_in(\"10.0.0.1\", 1)", 1, 19, "a CIDR string or a list");
    E("ip_in(\"10.0.0.256\", \"10.0.0.0/8\")", 1, 7, "invalid IP address");
    E("ip_in(context.ip, \"x\")", 1, 19, "invalid CIDR \"x\"");
    E("ip_in(context.ip, \"10.0.0.0/33\")", 1, 19, "invalid CIDR");
    E("ip_in(context.ip, \"2001:db8::/129\")", 1, 19, "invalid CIDR");
    E("ip_in(context.ip, [\"10.0.0.0/8\", \"fe80::/10\", \"10.0.0.0.0/8\"])", 1, 47, "invalid CIDR");
    E("ip_in(context.ip, [\"10.0.0.0/8\", 1])", 1, 34, "a CIDR must be a string");
    E("timestamp(\"2024-13-01T00:00:00Z\") < now", 1, 11, "invalid RFC 3339 timestamp");
    E("timestamp(\"yesterday\") < now", 1, 11, "invalid RFC 3339");
    E("timestamp(true) < now", 1, 11, "timestamp() of a bool");
    E("timestamp(9223372036854775807) < now", 1, 11, "out of range");
    E("duration(\"1y\") > duration(\"1h\")", 1, 10, "invalid duration");
    E("duration(\"\") > duration(\"1h\")", 1, 10, "invalid duration");
    E("duration(1) > duration(\"1h\")", 1, 10, "duration() of a int");
    E("hour(now, \"Mars/Olympus\") == 1", 1, 11, "unknown time zone");
    E("hour(now, \"../../etc/passwd\") == 1", 1, 11, "not a valid zone name");
    E("hour(now, subject.tz) == 1", 1, 11, "must be a string literal");
    E("weekday(\"2024-01-01T00:00:00Z\", \"UTC\") == 1", 1, 9, "the first argument must be a timestamp");
    E("hour(now, \"right/UTC\") == 1", 1, 11, "leap seconds");
    E("resource.x ==\n  foo(1)", 2, 3, "unknown function");
}

static void test_limits(void **state)
{
    (void)state;
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    /* source length */
    char *big = malloc(LT_POLICY_MAX_SOURCE + 2);
    assert_non_null(big);
    memset(big, ' ', LT_POLICY_MAX_SOURCE + 1);
    memcpy(big, "true", 4);
    assert_int_equal(lt_policy_expr_compile(big, LT_POLICY_MAX_SOURCE, NULL, &e, &err), 0);
    lt_policy_expr_free(&e);
    assert_int_equal(lt_policy_expr_compile(big, LT_POLICY_MAX_SOURCE + 1, NULL, &e, &err), LT_ERANGE);
    assert_int_equal(err.line, 0);
    assert_non_null(strstr(err.msg, "too long"));
    assert_null(e);

    /* nesting: 31 parentheses inside the top level pass, 32 do not */
    char src[512];
    int n = 0;
    for (int i = 0; i < LT_POLICY_MAX_NESTING - 1; i++)
        src[n++] = '(';
    n += snprintf(src + n, sizeof(src) - (size_t)n, "true");
    for (int i = 0; i < LT_POLICY_MAX_NESTING - 1; i++)
        src[n++] = ')';
    assert_int_equal(lt_policy_expr_compile(src, (size_t)n, NULL, &e, &err), 0);
    lt_policy_expr_free(&e);
    n = 0;
    for (int i = 0; i < LT_POLICY_MAX_NESTING; i++)
        src[n++] = '(';
    n += snprintf(src + n, sizeof(src) - (size_t)n, "true");
    for (int i = 0; i < LT_POLICY_MAX_NESTING; i++)
        src[n++] = ')';
    assert_int_equal(lt_policy_expr_compile(src, (size_t)n, NULL, &e, &err), LT_ERANGE);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.col, LT_POLICY_MAX_NESTING + 1);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    /* the same through unary operators and lists */
    memset(src, '!', 200);
    memcpy(src + 200, "true", 5);
    assert_int_equal(lt_policy_expr_compile(src, 204, NULL, &e, &err), LT_ERANGE);
    n = 0;
    for (int i = 0; i < 40; i++)
        src[n++] = '[';
    for (int i = 0; i < 40; i++)
        src[n++] = ']';
    assert_int_equal(lt_policy_expr_compile(src, (size_t)n, NULL, &e, &err), LT_ERANGE);
    /* a long select chain is not nesting, but the tree depth limit still holds */
    n = snprintf(src, sizeof(src), "resource");
    for (int i = 0; i < LT_POLICY_MAX_DEPTH + 1; i++)
        n += snprintf(src + n, sizeof(src) - (size_t)n, ".a");
    n += snprintf(src + n, sizeof(src) - (size_t)n, " == 1");
    assert_int_equal(lt_policy_expr_compile(src, (size_t)n, NULL, &e, &err), LT_ERANGE);
    assert_non_null(strstr(err.msg, "too deep"));

    /* node count: a 1500-element list fits the source limit but not the node limit */
    n = snprintf(big, LT_POLICY_MAX_SOURCE, "1 in [");
    for (int i = 0; i < 1500; i++)
        n += snprintf(big + n, LT_POLICY_MAX_SOURCE - (size_t)n, "1,");
    big[n++] = ']';
    assert_int_equal(lt_policy_expr_compile(big, (size_t)n, NULL, &e, &err), LT_ERANGE);
    assert_non_null(strstr(err.msg, "too large"));
    free(big);

    /* a long && chain is one n-ary node: not deep */
    char chain[4096];
    n = snprintf(chain, sizeof(chain), "true");
    for (int i = 0; i < 300; i++)
        n += snprintf(chain + n, sizeof(chain) - (size_t)n, " && true");
    assert_int_equal(lt_policy_expr_compile(chain, (size_t)n, NULL, &e, &err), 0);
    lt_policy_input_t in = input();
    lt_policy_result_t r;
    assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
    assert_int_equal(r, LT_POLICY_TRUE);
    lt_policy_expr_free(&e);

    /* evaluation steps */
    json_t *res = json_object();
    json_t *list = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(list, json_integer(i));
    json_object_set_new(res, "big", list);
    in.resource = res;
    static const char *const heavy[] = {
        "resource.big.exists(x, x == -1)",
        "resource.big.all(x, x >= 0)",
        "-1 in resource.big",
        "resource.big.contains(-1)",
        "resource.big.exists(x, resource.big.exists(y, x == y + 1))",
        "ip_in(\"10.0.0.1\", resource.big)",
    };
    for (size_t i = 0; i < sizeof(heavy) / sizeof(heavy[0]); i++) {
        assert_int_equal(lt_policy_expr_compile(heavy[i], strlen(heavy[i]), NULL, &e, &err), 0);
        assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
        if (r != LT_POLICY_ERROR) {
            print_error("`%s` gave %d, want ERROR\n", heavy[i], r);
            fail();
        }
        lt_policy_expr_free(&e);
    }
    /* within the budget: an early hit, or a small budget raised */
    assert_int_equal(lt_policy_expr_compile("resource.big.exists(x, x == 10)", 31, NULL, &e, &err), 0);
    assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
    assert_int_equal(r, LT_POLICY_TRUE);
    in.max_steps = 20;
    assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
    assert_int_equal(r, LT_POLICY_ERROR);
    lt_policy_expr_free(&e);
    assert_int_equal(lt_policy_expr_compile("resource.big.all(x, x >= 0)", 27, NULL, &e, &err), 0);
    in.max_steps = 200000;
    assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
    assert_int_equal(r, LT_POLICY_TRUE);
    lt_policy_expr_free(&e);
    json_decref(res);
}

/* ---- variables ------------------------------------------------------------------------ */

static void test_variables(void **state)
{
    (void)state;
    const lt_policy_var_t items[] = {
        {"is_owner", "resource.owner == subject.id", 28},
        {"same_dept", "subject.attributes.department == resource.department", 52},
        {"visible", "variables.is_owner || (variables.same_dept && resource.classification in [\"public\", "
                    "\"internal\"])", 0},
        {"has_a", "resource.tags.exists(t, t == \"a\")", 0},
        {"dept", "subject.attributes.department", 0},
        {"office_hours", "hour(now, \"Europe/Paris\") >= 9 && hour(now, \"Europe/Paris\") < 18", 0},
    };
    lt_policy_var_t v[sizeof(items) / sizeof(items[0])];
    memcpy(v, items, sizeof(items));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        v[i].len = strlen(v[i].src);
    lt_policy_vars_t vars = {v, sizeof(v) / sizeof(v[0])};
    lt_policy_input_t in = input();
#define TV(src) assert_int_equal(run_vars((src), &vars, &in, __FILE__, __LINE__), LT_POLICY_TRUE)
#define FV(src) assert_int_equal(run_vars((src), &vars, &in, __FILE__, __LINE__), LT_POLICY_FALSE)
    TV("variables.is_owner");
    TV("variables.visible");
    TV("variables[\"visible\"] && variables.is_owner");
    TV("variables.dept == \"eng\"");
    TV("variables.dept.startsWith(\"e\")");
    FV("variables.office_hours"); /* 00:30 in Paris */
    TV("!variables.office_hours");
    /* a variable with a macro inside another macro's predicate, the same slot reused */
    TV("resource.scores.exists(s, variables.has_a && s == 5)");
    TV("resource.scores.exists(s, variables.has_a && s == 9)");
    TV("resource.tags.all(t, variables.has_a && t.size() == 1)");
    assert_int_equal(lt_policy_vars_check(&vars, NULL), 0);

    /* errors inside a variable carry its name and a position in its source */
    lt_policy_var_t bad[] = {
        {"ok", "true", 4},
        {"broken", "resource.owner ==\n  == 1", 24},
    };
    lt_policy_vars_t bv = {bad, 2};
    expect_err("variables.ok && variables.broken", &bv, LT_EINVAL, 2, 3, "broken", "unexpected '=='", __FILE__,
               __LINE__);
    expect_err("variables.ok", &bv, 0, 0, 0, "", "", __FILE__, __LINE__); /* unreferenced: not parsed */
    lt_policy_error_t err;
    assert_int_equal(lt_policy_vars_check(&bv, &err), LT_EINVAL);
    assert_string_equal(err.var, "broken");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 3);

    lt_policy_var_t typed[] = {{"t", "1 + \"a\"", 7}};
    lt_policy_vars_t tv = {typed, 1};
    expect_err("variables.t == 1", &tv, LT_EINVAL, 1, 3, "t", "operator +", __FILE__, __LINE__);
    lt_policy_var_t num[] = {{"n", "1 + 2", 5}};
    lt_policy_vars_t nv = {num, 1};
    expect_err("variables.n", &nv, LT_EINVAL, 1, 11, "", "a condition must be a bool, not a int", __FILE__,
               __LINE__);
    assert_int_equal(lt_policy_vars_check(&nv, &err), 0); /* a variable may be of any type */

    /* cycles */
    lt_policy_var_t cyc[] = {
        {"a", "variables.b && true", 19},
        {"b", "resource.x == 1 ||\n variables.a", 31},
        {"self", "!variables.self", 15},
        {"free", "true", 4},
    };
    lt_policy_vars_t cv = {cyc, 4};
    expect_err("variables.a", &cv, LT_EINVAL, 2, 12, "b", "variable 'a' refers to itself", __FILE__, __LINE__);
    expect_err("variables.self", &cv, LT_EINVAL, 1, 12, "self", "refers to itself", __FILE__, __LINE__);
    expect_err("variables.free", &cv, 0, 0, 0, "", "", __FILE__, __LINE__);
    assert_int_equal(lt_policy_vars_check(&cv, &err), LT_EINVAL);
    assert_non_null(strstr(err.msg, "refers to itself"));

    /* a variable cannot see the bound names around its use */
    lt_policy_var_t scope[] = {{"uses_t", "t == \"a\"", 8}};
    lt_policy_vars_t sv = {scope, 1};
    expect_err("resource.tags.exists(t, variables.uses_t)", &sv, LT_EINVAL, 1, 1, "uses_t", "unknown identifier 't'",
               __FILE__, __LINE__);

    /* names */
    lt_policy_var_t names[] = {{"1bad", "true", 4}};
    lt_policy_vars_t nmv = {names, 1};
    expect_err("true", &nmv, LT_EINVAL, 0, 0, "", "invalid variable name", __FILE__, __LINE__);
    assert_int_equal(lt_policy_vars_check(&nmv, &err), LT_EINVAL);
    lt_policy_var_t dup[] = {{"x", "true", 4}, {"x", "false", 5}};
    lt_policy_vars_t dv = {dup, 2};
    expect_err("true", &dv, LT_EINVAL, 0, 0, "", "defined twice", __FILE__, __LINE__);

    /* expansion blow-up: each level doubles the previous one */
    char srcs[12][64];
    lt_policy_var_t grow[12];
    for (int i = 0; i < 12; i++) {
        if (i == 0)
            snprintf(srcs[i], sizeof(srcs[i]), "resource.size > 1");
        else
            snprintf(srcs[i], sizeof(srcs[i]), "variables.v%d && !variables.v%d", i - 1, i - 1);
        grow[i].src = srcs[i];
        grow[i].len = strlen(srcs[i]);
    }
    static const char *const gnames[] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11"};
    for (int i = 0; i < 12; i++)
        grow[i].name = gnames[i];
    lt_policy_vars_t gv = {grow, 12};
    lt_policy_expr_t *e = NULL;
    assert_int_equal(lt_policy_expr_compile("variables.v4", 12, &gv, &e, &err), 0);
    assert_true(lt_policy_expr_nodes(e) > 50);
    lt_policy_expr_free(&e);
    assert_int_equal(lt_policy_expr_compile("variables.v11", 13, &gv, &e, &err), LT_ERANGE);
    assert_non_null(strstr(err.msg, "too large"));
    /* depth through a chain of variables, each well within the nesting limit */
    char dsrc[8][128];
    lt_policy_var_t deep[8];
    static const char *const dnames[] = {"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"};
    for (int i = 0; i < 8; i++) {
        int k = 0;
        for (int j = 0; j < 20; j++)
            dsrc[i][k++] = '!';
        snprintf(dsrc[i] + k, sizeof(dsrc[i]) - (size_t)k, i == 0 ? "true" : "variables.d%d", i - 1);
        deep[i] = (lt_policy_var_t){dnames[i], dsrc[i], strlen(dsrc[i])};
    }
    lt_policy_vars_t dpv = {deep, 8};
    assert_int_equal(lt_policy_expr_compile("variables.d4", 12, &dpv, &e, &err), 0);
    lt_policy_expr_free(&e);
    assert_int_equal(lt_policy_expr_compile("variables.d7", 12, &dpv, &e, &err), LT_ERANGE);
    assert_non_null(strstr(err.msg, "too deep"));
#undef TV
#undef FV
}

static void test_api(void **state)
{
    (void)state;
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    lt_policy_result_t r;
    lt_policy_input_t in = input();
    assert_int_equal(lt_policy_expr_compile("true", 4, NULL, NULL, &err), LT_EINVAL);
    assert_int_equal(lt_policy_expr_compile(NULL, 4, NULL, &e, &err), LT_EINVAL);
    assert_int_equal(lt_policy_expr_compile("true", 4, NULL, &e, NULL), 0); /* err optional */
    assert_int_equal(lt_policy_expr_nodes(e), 1);
    assert_int_equal(lt_policy_expr_eval(NULL, &in, &r), LT_EINVAL);
    assert_int_equal(lt_policy_expr_eval(e, NULL, &r), LT_EINVAL);
    assert_int_equal(lt_policy_expr_eval(e, &in, NULL), LT_EINVAL);
    lt_policy_expr_free(&e);
    lt_policy_expr_free(&e);
    lt_policy_expr_free(NULL);
    assert_int_equal(lt_policy_expr_compile("x ==", 4, NULL, &e, NULL), LT_EINVAL);
    assert_int_equal(lt_policy_vars_check(NULL, &err), 0);
    /* an expression is independent of its source once compiled */
    char *src = strdup("resource.owner == \"alice\" && \"b\" in resource.tags");
    assert_int_equal(lt_policy_expr_compile(src, strlen(src), NULL, &e, &err), 0);
    memset(src, 'x', strlen(src));
    free(src);
    assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
    assert_int_equal(r, LT_POLICY_TRUE);
    lt_policy_expr_free(&e);
}

/* ---- robustness ------------------------------------------------------------------------ */

/* Random mutations of valid conditions: compile must fail cleanly or give a program that
 * evaluates within its budget (run under ASan/UBSan, this is a small in-tree fuzzer). */
static void test_mutations(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        ("resource.owner == subject.id || (subject.attributes.department == resource.department && "
         "resource.classification in [\"public\",\"internal\"])"),
        "ip_in(context.ip, [\"10.0.0.0/8\", \"2001:db8::/32\"]) && hour(now, \"UTC\") < 18",
        "resource.people.exists(p, p.age > 18 && p.name.startsWith('b')) ? size(resource.tags) == 3 : false",
        "timestamp(resource.meta.created) - now < duration(\"1h30m\") && !has(resource.missing)",
        "resource.nested[0][1] + 2 * -3 % 4 / 1.5 >= 0 && resource.tags.all(t, t in ['a', 'b', 'c'])",
    };
    static const char alphabet[] = "()[].,!?:&|=<>+-*/%\"'\\ 0123456789abcxyz_eE\n";
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    char buf[512];
    lt_policy_input_t in = input();
    size_t compiled = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % (sizeof(seeds) / sizeof(seeds[0]))];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rng % 4);
        for (int k = 0; k < edits; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = (size_t)(rng >> 8) % (n + 1);
            char ch = alphabet[(rng >> 40) % (sizeof(alphabet) - 1)];
            switch (rng % 3) {
            case 0: /* replace */
                if (pos < n)
                    buf[pos] = ch;
                break;
            case 1: /* insert */
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = ch;
                    n++;
                }
                break;
            default: /* delete */
                if (pos < n) {
                    memmove(buf + pos, buf + pos + 1, n - pos - 1);
                    n--;
                }
                break;
            }
        }
        lt_policy_expr_t *e = NULL;
        lt_policy_error_t err;
        int rc = lt_policy_expr_compile(buf, n, NULL, &e, &err);
        if (rc != 0) {
            assert_null(e);
            assert_true(rc == LT_EINVAL || rc == LT_ERANGE);
            assert_true(err.msg[0] != '\0');
            continue;
        }
        compiled++;
        lt_policy_result_t r;
        assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
        assert_true(r == LT_POLICY_TRUE || r == LT_POLICY_FALSE || r == LT_POLICY_ERROR);
        lt_policy_expr_free(&e);
    }
    printf("# policy_expr mutations: %zu of 20000 compiled\n", compiled);
}

/* ---- micro-benchmark ------------------------------------------------------------------ */

static void test_bench(void **state)
{
    (void)state;
    static const char *const rules[] = {
        ("resource.owner == subject.id || (subject.attributes.department == resource.department && "
         "resource.classification in [\"public\",\"internal\"])"),
        ("subject.attributes.department == resource.department && resource.classification in "
         "[\"public\",\"internal\"] && !resource.archived && ip_in(context.ip, [\"10.0.0.0/8\", \"192.168.0.0/16\"]) && "
         "hour(now, \"Europe/Paris\") < 20"),
    };
    static const char *const names[] = {"owner-or-department", "department+ip+hours"};
    json_t *sub = json_pack("{s:s, s:{s:s}}", "id", "bob", "attributes", "department", "eng");
    lt_policy_input_t in = input();
    in.subject = sub; /* not the owner: the evaluation goes through the whole rule */
    for (size_t k = 0; k < sizeof(rules) / sizeof(rules[0]); k++) {
        lt_policy_expr_t *e = NULL;
        lt_policy_error_t err;
        assert_int_equal(lt_policy_expr_compile(rules[k], strlen(rules[k]), NULL, &e, &err), 0);
        lt_policy_result_t r;
        assert_int_equal(lt_policy_expr_eval(e, &in, &r), 0);
        assert_int_equal(r, LT_POLICY_TRUE);
        uint64_t n = 0, t0 = lt_monotonic_ns(), t1;
        do {
            for (int i = 0; i < 10000; i++) {
                int rc = lt_policy_expr_eval(e, &in, &r);
                (void)rc;
            }
            n += 10000;
            t1 = lt_monotonic_ns();
        } while (t1 - t0 < 200000000ULL);
        printf("# policy_expr bench %s: %.1f ns/eval (%zu nodes, %llu evals)\n", names[k], (double)(t1 - t0) / n,
               lt_policy_expr_nodes(e), (unsigned long long)n);
        lt_policy_expr_free(&e);
    }
    json_decref(sub);
}

static int group_setup(void **state)
{
    (void)state;
    json_error_t je;
    subject = json_loads(DOC_SUBJECT, 0, &je);
    resource = json_loads(DOC_RESOURCE, 0, &je);
    action = json_loads(DOC_ACTION, 0, &je);
    context = json_loads(DOC_CONTEXT, 0, &je);
    return subject != NULL && resource != NULL && action != NULL && context != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(subject);
    json_decref(resource);
    json_decref(action);
    json_decref(context);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),       cmocka_unit_test(test_operators),
        cmocka_unit_test(test_precedence),     cmocka_unit_test(test_paths),
        cmocka_unit_test(test_missing),        cmocka_unit_test(test_strings_and_sizes),
        cmocka_unit_test(test_exists_all),     cmocka_unit_test(test_ip_in),
        cmocka_unit_test(test_time),           cmocka_unit_test(test_time_zones),
        cmocka_unit_test(test_time_zones_vs_libc), cmocka_unit_test(test_tzif_bad),
        cmocka_unit_test(test_zone_cache_threads), cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_check_errors),   cmocka_unit_test(test_limits),
        cmocka_unit_test(test_variables),      cmocka_unit_test(test_api),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_bench),
    };
    lt_log_set_level(LT_LOG_WARN);
    return cmocka_run_group_tests_name("policy_expr", tests, group_setup, group_teardown);
}
