/*
 * fuzz_policy_expr: the condition language (lib/policy, expr.h): lexer, parser, checker,
 * variable expansion, compiler and evaluator.
 *
 * Input: a condition, optionally followed by variables, each introduced by a line "%%NAME":
 *
 *   variables.is_owner && resource.size > 1
 *   %%is_owner
 *   resource.owner == subject.id
 *
 * Invariants:
 * - compile answers 0 with a program, or LT_EINVAL/LT_ERANGE with no program and a message;
 *   an error's position lies inside the source it names (the condition, or the variable
 *   in err.var), at most one column past the end of its line;
 * - a program has at most LT_POLICY_MAX_NODES nodes and evaluates, against every fixed
 *   request below (nested values, lists, timestamps, addresses, a list too long for the
 *   step budget), to FALSE, TRUE or ERROR;
 * - step budgets are monotone: a result other than ERROR under a budget is the result under
 *   any larger budget (so the budget only ever cuts evaluation short);
 * - a condition that compiles without variables compiles, when the variable set checks,
 *   to the same number of nodes and the same results with it;
 * - a variable that compiles as a condition on its own gives the same results as
 *   `variables["NAME"]` (expansion in place);
 * - nothing leaks, reads past a source (each is an exactly sized heap copy) or trips UBSan.
 */
#include <stdbool.h>
#include <string.h>

#include "base/base.h"
#include "fuzz.h"
#include "policy/expr.h"

#define MAX_VARS 16

/* Budgets in increasing order; 0 is the default (LT_POLICY_MAX_STEPS). */
static const uint32_t BUDGETS[] = {1, 40, 0, 30000};
#define NBUDGETS (sizeof(BUDGETS) / sizeof(BUDGETS[0]))

static const char *const SUBJECT =
    "{\"type\":\"user\",\"id\":\"alice\",\"tenant\":\"acme\",\"roles\":[\"editor\",\"viewer\"],"
    "\"department\":\"eng\",\"level\":3,\"clearance\":2.5,\"odd key\":\"v\",\"manager\":null,"
    "\"nick\":\"\\u00e9l\\u00e9 \\ud83d\\ude00\",\"tz\":\"Europe/Paris\","
    "\"attributes\":{\"department\":\"eng\",\"groups\":[\"a\",\"b\"],\"since\":\"2020-02-29T12:00:00.5Z\"}}";
static const char *const RESOURCE =
    "{\"type\":\"document\",\"id\":\"doc1\",\"owner\":\"alice\",\"department\":\"eng\",\"tenant\":\"acme\","
    "\"classification\":\"internal\",\"tags\":[\"a\",\"b\",\"c\"],\"scores\":[1,5,9,-3,2.5],\"archived\":false,"
    "\"size\":1024,\"ratio\":0.5,\"meta\":{\"created\":\"2024-05-01T09:00:00Z\",\"ttl\":\"90m\",\"k\":\"department\","
    "\"unix\":1700000000},\"empty\":[],\"eo\":{},\"nested\":[[1,2],[3],[]],"
    "\"people\":[{\"name\":\"bob\",\"age\":40},{\"name\":\"carol\",\"age\":17,\"tags\":[\"x\"]}],"
    "\"max\":9223372036854775807,\"min\":-9223372036854775808,\"huge\":1e308,\"tiny\":-1e-308,\"zero\":0,"
    "\"nz\":-0.0,\"ts_max\":\"9999-12-31T23:59:59.999999Z\",\"ts_min\":\"0001-01-01T00:00:00Z\","
    "\"unix_max\":253402300799,\"unix_big\":9223372036854,\"durs\":[\"1h\",\"-1.5s\",\"2562047h\",\"1x\"],"
    "\"deep\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":[[[[[[true]]]]]]}}}}}}},"
    "\"nul\":\"a\\u0000b\",\"\":\"empty key\",\"1\":\"one\"}";
static const char *const ACTION = "{\"name\":\"read\",\"method\":\"GET\",\"names\":[\"read\",\"edit\"]}";
static const char *const CONTEXT =
    "{\"ip\":\"10.1.2.3\",\"ip6\":\"2001:db8:1::5\",\"mapped\":\"::ffff:10.9.9.9\",\"bad_ip\":\"10.1.2\","
    "\"zone_ip\":\"fe80::1%eth0\",\"time\":\"2024-07-15T23:30:00Z\",\"bad_time\":\"2024-02-30T00:00:00Z\","
    "\"allow\":[\"192.168.0.0/16\",\"10.0.0.0/8\",\"::/0\",1,null],\"cidr\":\"2001:db8::/32\","
    "\"bad_cidr\":\"nope\",\"n\":null,\"maintenance\":true,\"list\":[1,\"1\",1.0,true,null,[1],{\"1\":1}]}";

typedef struct req {
    json_t *subject, *resource, *action, *context;
    int64_t now_us;
} req_t;

static req_t REQS[4];
#define NREQS (sizeof(REQS) / sizeof(REQS[0]))

static json_t *load(const char *text)
{
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(v != NULL);
    return v;
}

/* The fixed requests; kept for the life of the process (reachable, so LSan is quiet). */
static void init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    json_t *s = load(SUBJECT), *r = load(RESOURCE), *a = load(ACTION), *c = load(CONTEXT);
    /* 2024-01-15T23:30:00Z, a Monday */
    REQS[0] = (req_t){s, r, a, c, 1705361400LL * 1000000};
    /* every root missing; the epoch */
    REQS[1] = (req_t){NULL, NULL, NULL, NULL, 0};
    /* the same objects in other roles, at the ends of the timestamp range */
    REQS[2] = (req_t){r, c, s, a, 253402300799999999LL};
    /* a list longer than the default budget under every root name the fuzzer may try */
    json_t *big = json_object(), *list = json_array(), *strs = json_array();
    FUZZ_CHECK(big != NULL && list != NULL && strs != NULL);
    for (int i = 0; i < 12000; i++) {
        FUZZ_CHECK(json_array_append_new(list, json_integer(i)) == 0);
        if (i < 300)
            FUZZ_CHECK(json_array_append_new(strs, json_string(i % 2 ? "10.0.0.0/8" : "2001:db8::/32")) == 0);
    }
    FUZZ_CHECK(json_object_set_new(big, "tags", list) == 0);
    FUZZ_CHECK(json_object_set_new(big, "scores", json_incref(list)) == 0);
    FUZZ_CHECK(json_object_set_new(big, "allow", strs) == 0);
    FUZZ_CHECK(json_object_set(big, "people", json_object_get(r, "people")) == 0);
    REQS[3] = (req_t){s, big, a, big, -62135596800LL * 1000000};
}

/* Results of `e` against every request under every budget, checking monotonicity. */
static void eval_all(const lt_policy_expr_t *e, lt_policy_result_t out[NREQS])
{
    for (size_t i = 0; i < NREQS; i++) {
        lt_policy_result_t last = LT_POLICY_ERROR;
        for (size_t b = 0; b < NBUDGETS; b++) {
            lt_policy_input_t in = {REQS[i].subject, REQS[i].resource, REQS[i].action, REQS[i].context,
                                    REQS[i].now_us, BUDGETS[b]};
            lt_policy_result_t r = (lt_policy_result_t)-1;
            FUZZ_CHECK(lt_policy_expr_eval(e, &in, &r) == 0);
            FUZZ_CHECK(r == LT_POLICY_FALSE || r == LT_POLICY_TRUE || r == LT_POLICY_ERROR);
            FUZZ_CHECK(last == LT_POLICY_ERROR || r == last);
            last = r;
            if (BUDGETS[b] == 0)
                out[i] = r;
        }
    }
}

/* Bytes of `s` that start a code point (exact for UTF-8, which is all compile accepts). */
static size_t code_points(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

/* An error position lies in its source: line 1..lines, column 1..(code points of line + 1). */
static void check_position(const lt_policy_error_t *err, const char *src, size_t n)
{
    if (err->line == 0) {
        FUZZ_CHECK(err->col == 0);
        return;
    }
    FUZZ_CHECK(err->line >= 1 && err->col >= 1);
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i < n && line < err->line; i++)
        if (src[i] == '\n') {
            line++;
            start = i + 1;
        }
    FUZZ_CHECK(line == err->line);
    size_t end = start;
    while (end < n && src[end] != '\n')
        end++;
    FUZZ_CHECK((size_t)err->col <= code_points(src + start, end - start) + 1);
}

/* Compiles and checks the error contract; `e` is set only on success. */
static int compile(const char *src, size_t n, const lt_policy_vars_t *vars, lt_policy_expr_t **e)
{
    lt_policy_error_t err;
    memset(&err, 0x5a, sizeof(err)); /* compile must overwrite it */
    *e = (lt_policy_expr_t *)&err;   /* and clear this on failure */
    int rc = lt_policy_expr_compile(src, n, vars, e, &err);
    if (rc == 0) {
        FUZZ_CHECK(*e != NULL);
        FUZZ_CHECK(lt_policy_expr_nodes(*e) >= 1 && lt_policy_expr_nodes(*e) <= LT_POLICY_MAX_NODES);
        return 0;
    }
    FUZZ_CHECK(*e == NULL);
    FUZZ_CHECK(rc == LT_EINVAL || rc == LT_ERANGE);
    FUZZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
    FUZZ_CHECK(memchr(err.var, '\0', sizeof(err.var)) != NULL);
    if (err.var[0] == '\0') {
        check_position(&err, src, n);
    } else {
        /* the first variable of that name (a duplicate name is an error without position) */
        bool found = false;
        for (size_t i = 0; vars != NULL && i < vars->n && !found; i++)
            if (strcmp(vars->items[i].name, err.var) == 0) {
                check_position(&err, vars->items[i].src, vars->items[i].len);
                found = true;
            }
        FUZZ_CHECK(found);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4 * LT_POLICY_MAX_SOURCE)
        return 0;
    init();
    const char *in = (const char *)data, *end = in + size;

    /* Split at each "\n%%": the condition first, then NAME\nSOURCE per variable. */
    const char *cuts[MAX_VARS + 2];
    size_t ncuts = 0;
    cuts[ncuts++] = in;
    for (const char *p = in; p + 3 <= end && ncuts < MAX_VARS + 1; p++)
        if (memcmp(p, "\n%%", 3) == 0)
            cuts[ncuts++] = p + 3;
    cuts[ncuts] = end + 3;

    size_t cond_n = (size_t)(cuts[1] - 3 - cuts[0]);
    char *cond = fuzz_copy(in, cond_n);
    lt_policy_var_t items[MAX_VARS];
    char *names[MAX_VARS], *srcs[MAX_VARS];
    size_t nvars = 0;
    for (size_t i = 1; i < ncuts; i++) {
        const char *p = cuts[i], *stop = cuts[i + 1] - 3;
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *src = nl != NULL ? nl + 1 : stop;
        names[nvars] = fuzz_strdup(p, (size_t)((nl != NULL ? nl : stop) - p));
        srcs[nvars] = fuzz_copy(src, (size_t)(stop - src));
        items[nvars] = (lt_policy_var_t){names[nvars], srcs[nvars], (size_t)(stop - src)};
        nvars++;
    }
    lt_policy_vars_t vars = {items, nvars};

    lt_policy_error_t verr;
    int vrc = lt_policy_vars_check(&vars, &verr);
    FUZZ_CHECK(vrc == 0 || vrc == LT_EINVAL || vrc == LT_ERANGE);
    FUZZ_CHECK(vrc == 0 || verr.msg[0] != '\0');

    lt_policy_expr_t *plain = NULL, *with = NULL;
    lt_policy_result_t r_plain[NREQS], r_with[NREQS];
    if (compile(cond, cond_n, NULL, &plain) == 0)
        eval_all(plain, r_plain);
    if (compile(cond, cond_n, &vars, &with) == 0)
        eval_all(with, r_with);
    if (plain != NULL && vrc == 0) {
        FUZZ_CHECK(with != NULL);
        FUZZ_CHECK(lt_policy_expr_nodes(plain) == lt_policy_expr_nodes(with));
        FUZZ_CHECK(memcmp(r_plain, r_with, sizeof(r_plain)) == 0);
    }
    lt_policy_expr_free(&plain);
    lt_policy_expr_free(&with);
    FUZZ_CHECK(plain == NULL && with == NULL);

    /* Each variable that is a closed condition on its own behaves the same by reference. */
    for (size_t i = 0; i < nvars && vrc == 0; i++) {
        lt_policy_expr_t *direct = NULL, *ref = NULL;
        if (compile(items[i].src, items[i].len, NULL, &direct) != 0)
            continue;
        char rsrc[LT_POLICY_MAX_VAR_NAME + 16];
        /* the index form: a name such as "in" or "true" is valid but a keyword after '.' */
        int rn = snprintf(rsrc, sizeof(rsrc), "variables[\"%s\"]", items[i].name);
        FUZZ_CHECK(rn > 0 && (size_t)rn < sizeof(rsrc));
        char *rcopy = fuzz_copy(rsrc, (size_t)rn);
        /* a duplicate name fails vars_check, so NAME is this variable */
        FUZZ_CHECK(compile(rcopy, (size_t)rn, &vars, &ref) == 0);
        eval_all(direct, r_plain);
        eval_all(ref, r_with);
        FUZZ_CHECK(memcmp(r_plain, r_with, sizeof(r_plain)) == 0);
        lt_policy_expr_free(&direct);
        lt_policy_expr_free(&ref);
        free(rcopy);
    }

    for (size_t i = 0; i < nvars; i++) {
        free(names[i]);
        free(srcs[i]);
    }
    free(cond);
    return 0;
}
