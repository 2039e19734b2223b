/*
 * policy/check: turns the parser's AST into one the compiler can flatten.
 *
 *   - identifiers become roots, `now`, or the variable of an enclosing exists/all;
 *   - `variables.NAME` is replaced by NAME's checked AST (parsed on first use, shared by
 *     every reference; compile.c copies it at each one), with cycles refused;
 *   - calls become OP_CALL/OP_HAS/OP_EXISTS/OP_ALL with their arity checked;
 *   - literal arguments are folded: timestamp("..") and duration("..") become constants,
 *     ip_in's literal CIDRs are parsed, hour/weekday's zone is loaded;
 *   - every node gets a static type (T_DYN for anything read from the document), and an
 *     operator whose operand types are known and wrong is an error;
 *   - subtree sizes and depths are summed with variables expanded, against the limits.
 */
#include "policy/internal.h"

#include <string.h>

typedef enum { VAR_NEW, VAR_BUSY, VAR_DONE } var_state_t;

typedef struct {
    var_state_t state;
    lt__ast_t *root;
    lt__src_t src;
} var_t;

typedef struct {
    lt__arena_t *a;
    const lt__src_t *src; /* the source being checked (the condition or a variable) */
    const lt_policy_vars_t *vars;
    var_t *vs;
    lt_policy_error_t *err;
    int rc;
    struct {
        const char *s;
        size_t n;
    } scope[LT_POLICY_MAX_NESTING + 1]; /* names bound by exists/all, outermost first */
    unsigned nscope;
} checker_t;

static const char *const type_names[] = {
    [T_DYN] = "dyn",       [T_NULL] = "null", [T_BOOL] = "bool", [T_INT] = "int",         [T_DOUBLE] = "double",
    [T_STRING] = "string", [T_LIST] = "list", [T_MAP] = "map",   [T_TS] = "timestamp", [T_DUR] = "duration",
};

LT_PRINTF(5, 0) static void vfail(checker_t *c, int line, int col, int rc, const char *fmt, va_list ap)
{
    if (c->rc != 0)
        return;
    c->rc = rc;
    lt__verror(c->err, c->src, line, col, fmt, ap);
}

LT_PRINTF(4, 5) static void fail(checker_t *c, const lt__ast_t *at, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, at->line, at->col, rc, fmt, ap);
    va_end(ap);
}

/* The same at the start of `at` (an operand's leftmost token), for errors about a whole argument. */
LT_PRINTF(4, 5) static void fail_arg(checker_t *c, const lt__ast_t *at, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, at->sline, at->scol, rc, fmt, ap);
    va_end(ap);
}

static bool is_name(const lt__ast_t *n, const char *s)
{
    return n->sn == strlen(s) && memcmp(n->s, s, n->sn) == 0;
}

static bool reserved(const char *s, size_t n)
{
    static const char *const words[] = {"subject", "resource", "action", "context", "variables", "now",
                                        "true",    "false",    "null",   "in",      "has"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
            return true;
    return false;
}

static bool num(uint8_t t)
{
    return t == T_INT || t == T_DOUBLE;
}

/* Whether a value of known type `t` could be `want`; DYN could be anything. */
static bool may_be(uint8_t t, uint8_t want)
{
    return t == T_DYN || t == want;
}

static lt__ast_t *chk(checker_t *c, lt__ast_t *n);

static void leaf(lt__ast_t *n, lt__op_t op, uint8_t type)
{
    n->op = (uint8_t)op;
    n->type = type;
    n->nkids = 0;
    n->kids = NULL;
}

static bool arity(checker_t *c, const lt__ast_t *n, uint32_t got, uint32_t want, const char *name)
{
    if (got == want)
        return true;
    fail(c, n, LT_EINVAL, "%s takes %u argument%s, got %u", name, want, want == 1 ? "" : "s", got);
    return false;
}

static void need(checker_t *c, const lt__ast_t *arg, uint8_t want, const char *what)
{
    if (!may_be(arg->type, want))
        fail_arg(c, arg, LT_EINVAL, "%s must be a %s, not a %s", what, type_names[want], type_names[arg->type]);
}

static lt__ast_t *expand_var(checker_t *c, lt__ast_t *at, const char *name, size_t len)
{
    const lt_policy_vars_t *vars = c->vars;
    size_t i = 0;
    for (; vars != NULL && i < vars->n; i++)
        if (strlen(vars->items[i].name) == len && memcmp(vars->items[i].name, name, len) == 0)
            break;
    if (vars == NULL || i == vars->n) {
        fail(c, at, LT_EINVAL, "unknown variable '%.*s'", (int)len, name);
        return NULL;
    }
    var_t *v = &c->vs[i];
    if (v->state == VAR_DONE)
        return v->root;
    if (v->state == VAR_BUSY) {
        fail(c, at, LT_EINVAL, "variable '%.*s' refers to itself", (int)len, name);
        return NULL;
    }
    v->state = VAR_BUSY;
    v->src = (lt__src_t){.p = vars->items[i].src, .n = vars->items[i].len, .var = vars->items[i].name};
    if (v->src.n > LT_POLICY_MAX_SOURCE) {
        c->rc = LT_ERANGE;
        lt__error(c->err, &v->src, 0, 0, "source too long (%zu bytes, limit %d)", v->src.n, LT_POLICY_MAX_SOURCE);
        return NULL;
    }
    if (lt_utf8_count(v->src.p, v->src.n) < 0) {
        c->rc = LT_EINVAL;
        lt__error(c->err, &v->src, 0, 0, "source is not valid UTF-8");
        return NULL;
    }
    lt__ast_t *root = NULL;
    int rc = lt__parse(c->a, &v->src, &root, c->err);
    if (rc != 0) {
        c->rc = rc;
        return NULL;
    }
    /* A variable sees the roots only, never the bound names around its use. */
    const lt__src_t *saved_src = c->src;
    unsigned saved_n = c->nscope;
    __typeof__(c->scope) saved_scope;
    memcpy(saved_scope, c->scope, sizeof(saved_scope));
    c->src = &v->src;
    c->nscope = 0;
    root = chk(c, root);
    c->src = saved_src;
    c->nscope = saved_n;
    memcpy(c->scope, saved_scope, sizeof(saved_scope));
    if (root == NULL)
        return NULL;
    v->root = root;
    v->state = VAR_DONE;
    return root;
}

static lt__ast_t *chk_ident(checker_t *c, lt__ast_t *n)
{
    for (unsigned i = c->nscope; i-- > 0;)
        if (c->scope[i].n == n->sn && memcmp(c->scope[i].s, n->s, n->sn) == 0) {
            leaf(n, OP_BOUND, T_DYN);
            n->slot = (uint8_t)i;
            return n;
        }
    static const char *const roots[] = {[LT__ROOT_SUBJECT] = "subject", [LT__ROOT_RESOURCE] = "resource",
                                        [LT__ROOT_ACTION] = "action", [LT__ROOT_CONTEXT] = "context"};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
        if (is_name(n, roots[i])) {
            leaf(n, OP_ROOT, T_DYN);
            n->u.i = (int64_t)i;
            return n;
        }
    if (is_name(n, "now")) {
        leaf(n, OP_NOW, T_TS);
        return n;
    }
    if (is_name(n, "variables"))
        fail(c, n, LT_EINVAL, "'variables' must be followed by .NAME");
    else
        fail(c, n, LT_EINVAL, "unknown identifier '%.*s'", (int)n->sn, n->s);
    return NULL;
}

static lt__ast_t *chk_has(checker_t *c, lt__ast_t *n)
{
    if (!arity(c, n, n->nkids, 1, "has()"))
        return NULL;
    lt__ast_t *arg = n->kids[0];
    const char *key = NULL;
    size_t klen = 0;
    if (arg->op == OP_SELECT) {
        key = arg->s;
        klen = arg->sn;
    } else if (arg->op == OP_INDEX && arg->kids[1]->op == OP_STRING) {
        key = arg->kids[1]->s;
        klen = arg->kids[1]->sn;
    }
    if (key == NULL || (arg->kids[0]->op == OP_IDENT && is_name(arg->kids[0], "variables"))) {
        fail_arg(c, arg, LT_EINVAL, "has() takes a field selection such as has(resource.owner)");
        return NULL;
    }
    lt__ast_t *obj = chk(c, arg->kids[0]);
    if (obj == NULL)
        return NULL;
    if (!may_be(obj->type, T_MAP)) {
        fail_arg(c, obj, LT_EINVAL, "has() of a field of a %s", type_names[obj->type]);
        return NULL;
    }
    n->op = OP_HAS;
    n->type = T_BOOL;
    n->kids[0] = obj;
    n->s = key;
    n->sn = klen;
    return n;
}

/* ip_in's second argument: literal CIDRs (alone or in a literal list) are parsed now. */
static void chk_cidr_arg(checker_t *c, lt__ast_t *arg)
{
    if (arg->op == OP_STRING) {
        lt__cidr_t cidr;
        if (lt__cidr_parse(arg->s, arg->sn, &cidr) != 0) {
            fail_arg(c, arg, LT_EINVAL, "invalid CIDR \"%.*s\"", (int)(arg->sn > 60 ? 60 : arg->sn), arg->s);
            return;
        }
        arg->op = OP_CIDR;
        arg->u.cidr = cidr;
        return;
    }
    if (arg->op == OP_LIST) {
        for (uint32_t i = 0; i < arg->nkids && c->rc == 0; i++) {
            lt__ast_t *k = arg->kids[i];
            if (k->op == OP_STRING || k->op == OP_LIST)
                chk_cidr_arg(c, k);
            else
                need(c, k, T_STRING, "a CIDR");
        }
        return;
    }
    if (arg->type != T_DYN && arg->type != T_STRING && arg->type != T_LIST)
        fail_arg(c, arg, LT_EINVAL, "ip_in() takes a CIDR string or a list of them, not a %s", type_names[arg->type]);
}

static lt__ast_t *chk_fcall(checker_t *c, lt__ast_t *n)
{
    if (is_name(n, "has"))
        return chk_has(c, n);
    for (uint32_t i = 0; i < n->nkids; i++)
        if ((n->kids[i] = chk(c, n->kids[i])) == NULL)
            return NULL;
    n->op = OP_CALL;
    if (is_name(n, "size")) {
        if (!arity(c, n, n->nkids, 1, "size()"))
            return NULL;
        uint8_t t = n->kids[0]->type;
        if (t != T_DYN && t != T_STRING && t != T_LIST && t != T_MAP)
            fail_arg(c, n->kids[0], LT_EINVAL, "size() of a %s", type_names[t]);
        n->fn = LT__FN_SIZE;
        n->type = T_INT;
    } else if (is_name(n, "ip_in")) {
        if (!arity(c, n, n->nkids, 2, "ip_in()"))
            return NULL;
        need(c, n->kids[0], T_STRING, "ip_in()'s address");
        if (n->kids[0]->op == OP_STRING) {
            uint8_t ip[16];
            if (lt__ip_parse(n->kids[0]->s, n->kids[0]->sn, ip) != 0)
                fail_arg(c, n->kids[0], LT_EINVAL, "invalid IP address");
        }
        chk_cidr_arg(c, n->kids[1]);
        n->fn = LT__FN_IP_IN;
        n->type = T_BOOL;
    } else if (is_name(n, "timestamp")) {
        if (!arity(c, n, n->nkids, 1, "timestamp()"))
            return NULL;
        lt__ast_t *a = n->kids[0];
        int64_t us;
        if (a->op == OP_STRING) {
            if (lt__ts_parse(a->s, a->sn, &us) != 0) {
                fail_arg(c, a, LT_EINVAL, "invalid RFC 3339 timestamp");
                return NULL;
            }
            leaf(n, OP_TS, T_TS);
            n->u.i = us;
            return n;
        }
        if (a->op == OP_INT) {
            if (__builtin_mul_overflow(a->u.i, (int64_t)1000000, &us)) {
                fail_arg(c, a, LT_EINVAL, "timestamp out of range");
                return NULL;
            }
            leaf(n, OP_TS, T_TS);
            n->u.i = us;
            return n;
        }
        if (a->type != T_DYN && a->type != T_STRING && a->type != T_INT && a->type != T_TS)
            fail_arg(c, a, LT_EINVAL, "timestamp() of a %s", type_names[a->type]);
        n->fn = LT__FN_TIMESTAMP;
        n->type = T_TS;
    } else if (is_name(n, "duration")) {
        if (!arity(c, n, n->nkids, 1, "duration()"))
            return NULL;
        lt__ast_t *a = n->kids[0];
        if (a->op == OP_STRING) {
            int64_t us;
            if (lt__dur_parse(a->s, a->sn, &us) != 0) {
                fail_arg(c, a, LT_EINVAL, "invalid duration (expected e.g. \"1h30m\", \"90s\", \"250ms\")");
                return NULL;
            }
            leaf(n, OP_DUR, T_DUR);
            n->u.i = us;
            return n;
        }
        if (a->type != T_DYN && a->type != T_STRING && a->type != T_DUR)
            fail_arg(c, a, LT_EINVAL, "duration() of a %s", type_names[a->type]);
        n->fn = LT__FN_DURATION;
        n->type = T_DUR;
    } else if (is_name(n, "hour") || is_name(n, "weekday")) {
        bool hour = is_name(n, "hour");
        if (!arity(c, n, n->nkids, 2, hour ? "hour()" : "weekday()"))
            return NULL;
        need(c, n->kids[0], T_TS, "the first argument");
        lt__ast_t *z = n->kids[1];
        if (z->op != OP_STRING) {
            fail_arg(c, z, LT_EINVAL, "the time zone must be a string literal such as \"Europe/Paris\"");
            return NULL;
        }
        const char *why = NULL;
        if (c->rc == 0 && lt__tz_get(z->s, z->sn, &n->u.tz, &why) != 0) {
            fail_arg(c, z, LT_EINVAL, "time zone \"%.*s\": %s", (int)(z->sn > 64 ? 64 : z->sn), z->s, why);
            return NULL;
        }
        n->nkids = 1;
        n->fn = hour ? LT__FN_HOUR : LT__FN_WEEKDAY;
        n->type = T_INT;
    } else if (is_name(n, "startsWith") || is_name(n, "endsWith") || is_name(n, "contains") ||
               is_name(n, "exists") || is_name(n, "all")) {
        fail(c, n, LT_EINVAL, "'%.*s' is a method: write x.%.*s(...)", (int)n->sn, n->s, (int)n->sn, n->s);
    } else {
        fail(c, n, LT_EINVAL, "unknown function '%.*s'", (int)n->sn, n->s);
    }
    return c->rc == 0 ? n : NULL;
}

static lt__ast_t *chk_macro(checker_t *c, lt__ast_t *n, lt__op_t op)
{
    if (!arity(c, n, n->nkids - 1, 2, op == OP_EXISTS ? "exists()" : "all()"))
        return NULL;
    lt__ast_t *range = chk(c, n->kids[0]);
    if (range == NULL)
        return NULL;
    if (range->type != T_DYN && range->type != T_LIST && range->type != T_MAP) {
        fail_arg(c, range, LT_EINVAL, "%s() over a %s", op == OP_EXISTS ? "exists" : "all", type_names[range->type]);
        return NULL;
    }
    lt__ast_t *var = n->kids[1];
    if (var->op != OP_IDENT || reserved(var->s, var->sn)) {
        fail_arg(c, var, LT_EINVAL, "the first argument of %s() must be a new variable name",
             op == OP_EXISTS ? "exists" : "all");
        return NULL;
    }
    /* nesting bounds the scope: each macro is a call, which is one level */
    c->scope[c->nscope].s = var->s;
    c->scope[c->nscope].n = var->sn;
    n->slot = (uint8_t)c->nscope++;
    lt__ast_t *pred = chk(c, n->kids[2]);
    c->nscope--;
    if (pred == NULL)
        return NULL;
    need(c, pred, T_BOOL, "the predicate");
    n->op = (uint8_t)op;
    n->type = T_BOOL;
    n->kids[0] = range;
    n->kids[1] = pred;
    n->nkids = 2;
    return c->rc == 0 ? n : NULL;
}

static lt__ast_t *chk_method(checker_t *c, lt__ast_t *n)
{
    if (is_name(n, "exists"))
        return chk_macro(c, n, OP_EXISTS);
    if (is_name(n, "all"))
        return chk_macro(c, n, OP_ALL);
    for (uint32_t i = 0; i < n->nkids; i++)
        if ((n->kids[i] = chk(c, n->kids[i])) == NULL)
            return NULL;
    lt__ast_t *recv = n->kids[0];
    uint32_t nargs = n->nkids - 1;
    n->op = OP_CALL;
    n->type = T_BOOL;
    if (is_name(n, "size")) {
        if (!arity(c, n, nargs, 0, "size()"))
            return NULL;
        if (recv->type != T_DYN && recv->type != T_STRING && recv->type != T_LIST && recv->type != T_MAP)
            fail_arg(c, recv, LT_EINVAL, "size() of a %s", type_names[recv->type]);
        n->fn = LT__FN_SIZE;
        n->type = T_INT;
    } else if (is_name(n, "startsWith") || is_name(n, "endsWith")) {
        bool starts = is_name(n, "startsWith");
        if (!arity(c, n, nargs, 1, starts ? "startsWith()" : "endsWith()"))
            return NULL;
        need(c, recv, T_STRING, "the receiver");
        need(c, n->kids[1], T_STRING, "the argument");
        n->fn = starts ? LT__FN_STARTS : LT__FN_ENDS;
    } else if (is_name(n, "contains")) {
        if (!arity(c, n, nargs, 1, "contains()"))
            return NULL;
        if (recv->type != T_DYN && recv->type != T_STRING && recv->type != T_LIST)
            fail_arg(c, recv, LT_EINVAL, "contains() on a %s", type_names[recv->type]);
        if (recv->type == T_STRING)
            need(c, n->kids[1], T_STRING, "the argument");
        n->fn = LT__FN_CONTAINS;
    } else {
        fail(c, n, LT_EINVAL, "unknown method '%.*s'", (int)n->sn, n->s);
    }
    return c->rc == 0 ? n : NULL;
}

/* The result type of arithmetic on known types, or -1 if it cannot apply. */
static int arith_type(lt__op_t op, uint8_t a, uint8_t b)
{
    if (a == T_DYN || b == T_DYN) {
        uint8_t k = a == T_DYN ? b : a;
        if (k == T_DYN || num(k) || ((op == OP_ADD || op == OP_SUB) && (k == T_TS || k == T_DUR)))
            return T_DYN;
        return -1;
    }
    if (op == OP_MOD)
        return a == T_INT && b == T_INT ? T_INT : -1;
    if (num(a) && num(b))
        return a == T_INT && b == T_INT ? T_INT : T_DOUBLE;
    if (op == OP_ADD) {
        if ((a == T_TS && b == T_DUR) || (a == T_DUR && b == T_TS))
            return T_TS;
        if (a == T_DUR && b == T_DUR)
            return T_DUR;
    } else if (op == OP_SUB) {
        if (a == T_TS && b == T_DUR)
            return T_TS;
        if ((a == T_TS && b == T_TS) || (a == T_DUR && b == T_DUR))
            return T_DUR;
    }
    return -1;
}

static const char *op_text(lt__op_t op)
{
    switch (op) {
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_LT: return "<";
    case OP_LE: return "<=";
    case OP_GT: return ">";
    case OP_GE: return ">=";
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_MOD: return "%";
    default: return "?";
    }
}

static void chk_binary(checker_t *c, lt__ast_t *n)
{
    uint8_t a = n->kids[0]->type, b = n->kids[1]->type;
    lt__op_t op = n->op;
    switch (op) {
    case OP_EQ:
    case OP_NE:
        if (a != T_DYN && b != T_DYN && a != b && !(num(a) && num(b)) && a != T_NULL && b != T_NULL)
            fail(c, n, LT_EINVAL, "cannot compare a %s with a %s", type_names[a], type_names[b]);
        n->type = T_BOOL;
        return;
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        for (int i = 0; i < 2; i++) {
            uint8_t t = i == 0 ? a : b;
            if (t == T_NULL || t == T_LIST || t == T_MAP) {
                fail_arg(c, n->kids[i], LT_EINVAL, "a %s has no order", type_names[t]);
                return;
            }
        }
        if (a != T_DYN && b != T_DYN && a != b && !(num(a) && num(b)))
            fail(c, n, LT_EINVAL, "cannot compare a %s with a %s using %s", type_names[a], type_names[b], op_text(op));
        n->type = T_BOOL;
        return;
    }
    case OP_IN:
        if (b != T_DYN && b != T_LIST && b != T_MAP)
            fail_arg(c, n->kids[1], LT_EINVAL, "'in' needs a list or a map on its right, not a %s", type_names[b]);
        n->type = T_BOOL;
        return;
    default: {
        int t = arith_type(op, a, b);
        if (t < 0)
            fail(c, n, LT_EINVAL, "operator %s cannot apply to a %s and a %s", op_text(op), type_names[a],
                 type_names[b]);
        n->type = t < 0 ? T_DYN : (uint8_t)t;
        return;
    }
    }
}

static lt__ast_t *chk_node(checker_t *c, lt__ast_t *n)
{
    switch ((lt__op_t)n->op) {
    case OP_NULL: n->type = T_NULL; return n;
    case OP_BOOL: n->type = T_BOOL; return n;
    case OP_INT: n->type = T_INT; return n;
    case OP_DOUBLE: n->type = T_DOUBLE; return n;
    case OP_STRING: n->type = T_STRING; return n;
    case OP_IDENT: return chk_ident(c, n);
    case OP_FCALL: return chk_fcall(c, n);
    case OP_METHOD: return chk_method(c, n);
    case OP_SELECT:
        if (n->kids[0]->op == OP_IDENT && is_name(n->kids[0], "variables"))
            return expand_var(c, n, n->s, n->sn);
        if ((n->kids[0] = chk(c, n->kids[0])) == NULL)
            return NULL;
        if (!may_be(n->kids[0]->type, T_MAP))
            fail(c, n, LT_EINVAL, "a %s has no field '%.*s'", type_names[n->kids[0]->type], (int)n->sn, n->s);
        n->type = T_DYN;
        return c->rc == 0 ? n : NULL;
    case OP_INDEX:
        if (n->kids[0]->op == OP_IDENT && is_name(n->kids[0], "variables") && n->kids[1]->op == OP_STRING)
            return expand_var(c, n, n->kids[1]->s, n->kids[1]->sn);
        for (int i = 0; i < 2; i++)
            if ((n->kids[i] = chk(c, n->kids[i])) == NULL)
                return NULL;
        if (n->kids[0]->type != T_DYN && n->kids[0]->type != T_LIST && n->kids[0]->type != T_MAP)
            fail_arg(c, n->kids[0], LT_EINVAL, "cannot index a %s", type_names[n->kids[0]->type]);
        else if (n->kids[1]->type != T_DYN && n->kids[1]->type != T_STRING && n->kids[1]->type != T_INT)
            fail_arg(c, n->kids[1], LT_EINVAL, "an index must be a string or an int, not a %s",
                 type_names[n->kids[1]->type]);
        else if (n->kids[0]->type == T_LIST && n->kids[1]->type == T_STRING)
            fail_arg(c, n->kids[1], LT_EINVAL, "a list index must be an int, not a string");
        n->type = T_DYN;
        return c->rc == 0 ? n : NULL;
    default:
        break;
    }
    for (uint32_t i = 0; i < n->nkids; i++)
        if ((n->kids[i] = chk(c, n->kids[i])) == NULL)
            return NULL;
    switch ((lt__op_t)n->op) {
    case OP_LIST: n->type = T_LIST; break;
    case OP_NOT:
        need(c, n->kids[0], T_BOOL, "the operand of '!'");
        n->type = T_BOOL;
        break;
    case OP_NEG: {
        uint8_t t = n->kids[0]->type;
        if (t != T_DYN && !num(t) && t != T_DUR)
            fail_arg(c, n->kids[0], LT_EINVAL, "cannot negate a %s", type_names[t]);
        n->type = t;
        break;
    }
    case OP_AND:
    case OP_OR:
        for (uint32_t i = 0; i < n->nkids; i++)
            need(c, n->kids[i], T_BOOL, n->op == OP_AND ? "an operand of '&&'" : "an operand of '||'");
        n->type = T_BOOL;
        break;
    case OP_COND:
        need(c, n->kids[0], T_BOOL, "the condition of '?:'");
        n->type = n->kids[1]->type == n->kids[2]->type ? n->kids[1]->type : T_DYN;
        break;
    default: chk_binary(c, n); break;
    }
    return c->rc == 0 ? n : NULL;
}

static lt__ast_t *chk(checker_t *c, lt__ast_t *n)
{
    if (c->rc != 0)
        return NULL;
    int line = n->line, col = n->col;
    lt__ast_t *r = chk_node(c, n);
    if (r == NULL || c->rc != 0)
        return NULL;
    if (r->size != 0)
        return r; /* a variable's tree, already measured */
    uint64_t size = 1;
    uint32_t depth = 0;
    for (uint32_t i = 0; i < r->nkids; i++) {
        size += r->kids[i]->size;
        if (r->kids[i]->depth > depth)
            depth = r->kids[i]->depth;
    }
    r->depth = depth + 1;
    r->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    if (r->size > LT_POLICY_MAX_NODES || r->depth > LT_POLICY_MAX_DEPTH) {
        c->rc = LT_ERANGE;
        lt__error(c->err, c->src, line, col, "expression too %s with its variables expanded (limit %d)",
                  r->size > LT_POLICY_MAX_NODES ? "large" : "deep",
                  r->size > LT_POLICY_MAX_NODES ? LT_POLICY_MAX_NODES : LT_POLICY_MAX_DEPTH);
        return NULL;
    }
    return r;
}

static bool valid_var_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LT_POLICY_MAX_VAR_NAME || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return false;
    return true;
}

int lt__check(lt__arena_t *a, const lt__src_t *src, lt__ast_t **root, const lt_policy_vars_t *vars, bool want_bool,
              lt_policy_error_t *err)
{
    checker_t c = {.a = a, .src = src, .vars = vars, .err = err};
    int line = (*root)->line, col = (*root)->col; /* *root may become a variable's tree */
    if (vars != NULL && vars->n > 0) {
        for (size_t i = 0; i < vars->n; i++) {
            const char *name = vars->items[i].name;
            if (name == NULL || !valid_var_name(name)) {
                lt__error(err, src, 0, 0, "invalid variable name '%.64s'", name != NULL ? name : "");
                return LT_EINVAL;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(vars->items[j].name, name) == 0) {
                    lt__error(err, src, 0, 0, "variable '%s' defined twice", name);
                    return LT_EINVAL;
                }
        }
        c.vs = lt__arena_alloc(a, vars->n * sizeof(*c.vs));
        if (c.vs == NULL)
            return LT_ENOMEM;
        memset(c.vs, 0, vars->n * sizeof(*c.vs));
    }
    lt__ast_t *r = chk(&c, *root);
    if (r == NULL)
        return c.rc != 0 ? c.rc : LT_ENOMEM;
    if (want_bool && r->type != T_DYN && r->type != T_BOOL) {
        lt__error(err, src, line, col, "a condition must be a bool, not a %s", type_names[r->type]);
        return LT_EINVAL;
    }
    *root = r;
    return 0;
}
