/*
 * policy/vm: evaluates a compiled condition (see expr.h for the semantics).
 *
 * A recursive walk over the flat node block; the recursion is bounded by the compiled
 * depth (LT_POLICY_MAX_DEPTH). Values are small structs on the stack that point into the
 * input document (jansson values, which stay alive and unchanged for the call) or into the
 * program (literals), so nothing is allocated. V_NONE is "no value" (a missing attribute or
 * a type mismatch) and propagates as expr.h says. Running out of steps sets `abort`, after
 * which every node yields V_NONE at once and the result is LT_POLICY_ERROR.
 */
#include "policy/internal.h"

#include <string.h>

typedef enum { V_NONE, V_NULL, V_BOOL, V_INT, V_DOUBLE, V_STRING, V_JLIST, V_LLIST, V_MAP, V_TS, V_DUR, V_CIDR } vtype_t;

typedef struct {
    uint8_t t;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            const char *p;
            size_t n;
        } s;
        const json_t *j;      /* V_JLIST, V_MAP */
        const lt__node_t *ln; /* V_LLIST: the OP_LIST node */
        const lt__cidr_t *cidr;
    } u;
} value_t;

typedef struct {
    const lt_policy_input_t *in;
    uint64_t steps, max_steps;
    bool abort;
    uint64_t live; /* slots bound by a macro in progress */
    value_t slots[LT_POLICY_MAX_NESTING + 1];
} vm_t;

static void eval(vm_t *vm, const lt__node_t *n, value_t *out);

static bool step(vm_t *vm)
{
    if (++vm->steps > vm->max_steps)
        vm->abort = true;
    return !vm->abort;
}

static void from_json(const json_t *j, value_t *v)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v->t = V_MAP;
        v->u.j = j;
        break;
    case JSON_ARRAY:
        v->t = V_JLIST;
        v->u.j = j;
        break;
    case JSON_STRING:
        v->t = V_STRING;
        v->u.s.p = json_string_value(j);
        v->u.s.n = json_string_length(j);
        break;
    case JSON_INTEGER:
        v->t = V_INT;
        v->u.i = (int64_t)json_integer_value(j);
        break;
    case JSON_REAL:
        v->t = V_DOUBLE;
        v->u.d = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->t = V_BOOL;
        v->u.b = json_is_true(j);
        break;
    default: v->t = V_NULL; break;
    }
}

static const json_t *root_json(const vm_t *vm, const lt__node_t *n)
{
    const lt_policy_input_t *in = vm->in;
    switch (n->u.i) {
    case LT__ROOT_SUBJECT: return in->subject;
    case LT__ROOT_RESOURCE: return in->resource;
    case LT__ROOT_ACTION: return in->action;
    default: return in->context;
    }
}

/*
 * The JSON value a path (selects over a root or any other operand) reaches, or NULL.
 * Paths are most of what conditions read, so they get this small-framed walk instead of
 * a full eval per segment.
 */
static const json_t *path_json(vm_t *vm, const lt__node_t *n)
{
    if (n->op != OP_ROOT && n->op != OP_SELECT) {
        value_t v;
        eval(vm, n, &v);
        return v.t == V_MAP || v.t == V_JLIST ? v.u.j : NULL;
    }
    if (!step(vm))
        return NULL;
    if (n->op == OP_ROOT)
        return root_json(vm, n);
    const json_t *o = path_json(vm, &n->kids[0]);
    return json_is_object(o) ? json_object_getn(o, n->u.s.p, n->u.s.n) : NULL;
}

static void from_json_or_none(const json_t *j, value_t *v)
{
    if (j == NULL)
        v->t = V_NONE;
    else
        from_json(j, v);
}

/* ---- lists --------------------------------------------------------------------------- */

static size_t list_len(const value_t *l)
{
    return l->t == V_JLIST ? json_array_size(l->u.j) : l->u.ln->nkids;
}

static void list_at(vm_t *vm, const value_t *l, size_t i, value_t *out)
{
    if (l->t == V_JLIST)
        from_json(json_array_get(l->u.j, i), out);
    else
        eval(vm, &l->u.ln->kids[i], out);
}

static bool is_list(const value_t *v)
{
    return v->t == V_JLIST || v->t == V_LLIST;
}

/* ---- equality and order ------------------------------------------------------------- */

/* 1 equal, 0 not, -1 no value. Values of different types are unequal (ints and doubles
 * compare numerically). */
static int equal(vm_t *vm, const value_t *a, const value_t *b)
{
    if (a->t == V_NONE || b->t == V_NONE)
        return -1;
    if (a->t == V_INT && b->t == V_DOUBLE)
        return (double)a->u.i == b->u.d;
    if (a->t == V_DOUBLE && b->t == V_INT)
        return a->u.d == (double)b->u.i;
    if (is_list(a) && is_list(b)) {
        if (a->t == V_JLIST && b->t == V_JLIST)
            return json_equal(a->u.j, b->u.j);
        size_t n = list_len(a);
        if (n != list_len(b))
            return 0;
        int r = 1;
        for (size_t i = 0; i < n && step(vm); i++) {
            value_t x, y;
            list_at(vm, a, i, &x);
            list_at(vm, b, i, &y);
            int e = equal(vm, &x, &y);
            if (e == 0)
                return 0;
            if (e < 0)
                r = -1;
        }
        return vm->abort ? -1 : r;
    }
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case V_NULL: return 1;
    case V_BOOL: return a->u.b == b->u.b;
    case V_INT:
    case V_TS:
    case V_DUR: return a->u.i == b->u.i;
    case V_DOUBLE: return a->u.d == b->u.d;
    case V_STRING: return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case V_MAP: return json_equal(a->u.j, b->u.j);
    default: return 0;
    }
}

/* Sets *c to -1/0/1. @return false if the two have no order. */
static bool compare(const value_t *a, const value_t *b, int *c)
{
    if ((a->t == V_INT || a->t == V_DOUBLE) && (b->t == V_INT || b->t == V_DOUBLE)) {
        if (a->t == V_INT && b->t == V_INT) {
            *c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
            return true;
        }
        double x = a->t == V_INT ? (double)a->u.i : a->u.d, y = b->t == V_INT ? (double)b->u.i : b->u.d;
        if (x != x || y != y)
            return false; /* NaN */
        *c = (x > y) - (x < y);
        return true;
    }
    if (a->t != b->t)
        return false;
    switch (a->t) {
    case V_BOOL: *c = (int)a->u.b - (int)b->u.b; return true;
    case V_TS:
    case V_DUR: *c = (a->u.i > b->u.i) - (a->u.i < b->u.i); return true;
    case V_STRING: {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int r = memcmp(a->u.s.p, b->u.s.p, n);
        *c = r != 0 ? (r > 0) - (r < 0) : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
        return true;
    }
    default: return false;
    }
}

static void set_bool(value_t *v, bool b)
{
    v->t = V_BOOL;
    v->u.b = b;
}

/* `x in list` and list.contains(x): a match wins; else no value if an element had none. */
static void list_contains(vm_t *vm, const value_t *list, const value_t *x, value_t *out)
{
    size_t n = list_len(list);
    bool none = false;
    for (size_t i = 0; i < n && step(vm); i++) {
        value_t e;
        list_at(vm, list, i, &e);
        int r = equal(vm, x, &e);
        if (r == 1) {
            set_bool(out, true);
            return;
        }
        none |= r < 0;
    }
    if (none || vm->abort)
        out->t = V_NONE;
    else
        set_bool(out, false);
}

/* ---- functions ----------------------------------------------------------------------- */

static bool ip_in_one(vm_t *vm, const uint8_t ip[16], const value_t *c, int *found)
{
    lt__cidr_t tmp;
    const lt__cidr_t *cidr = NULL;
    if (c->t == V_CIDR) {
        cidr = c->u.cidr;
    } else if (c->t == V_STRING) {
        if (lt__cidr_parse(c->u.s.p, c->u.s.n, &tmp) != 0)
            return false;
        cidr = &tmp;
    } else if (is_list(c)) {
        size_t n = list_len(c);
        for (size_t i = 0; i < n && step(vm) && *found == 0; i++) {
            value_t e;
            list_at(vm, c, i, &e);
            if (e.t == V_STRING || e.t == V_CIDR)
                (void)ip_in_one(vm, ip, &e, found);
        }
        return true;
    } else {
        return false;
    }
    if (lt__cidr_match(cidr, ip))
        *found = 1;
    return true;
}

static void call(vm_t *vm, const lt__node_t *n, value_t *out)
{
    value_t a, b;
    out->t = V_NONE;
    eval(vm, &n->kids[0], &a);
    if (a.t == V_NONE)
        return;
    switch ((lt__fn_t)n->fn) {
    case LT__FN_SIZE:
        if (a.t == V_STRING) {
            long cp = lt_utf8_count(a.u.s.p, a.u.s.n);
            if (cp >= 0) {
                out->t = V_INT;
                out->u.i = cp;
            }
        } else if (is_list(&a)) {
            out->t = V_INT;
            out->u.i = (int64_t)list_len(&a);
        } else if (a.t == V_MAP) {
            out->t = V_INT;
            out->u.i = (int64_t)json_object_size(a.u.j);
        }
        return;
    case LT__FN_STARTS:
    case LT__FN_ENDS:
        eval(vm, &n->kids[1], &b);
        if (a.t != V_STRING || b.t != V_STRING)
            return;
        if (b.u.s.n > a.u.s.n)
            set_bool(out, false);
        else if (n->fn == LT__FN_STARTS)
            set_bool(out, memcmp(a.u.s.p, b.u.s.p, b.u.s.n) == 0);
        else
            set_bool(out, memcmp(a.u.s.p + a.u.s.n - b.u.s.n, b.u.s.p, b.u.s.n) == 0);
        return;
    case LT__FN_CONTAINS:
        eval(vm, &n->kids[1], &b);
        if (a.t == V_STRING && b.t == V_STRING)
            set_bool(out, b.u.s.n == 0 || memmem(a.u.s.p, a.u.s.n, b.u.s.p, b.u.s.n) != NULL);
        else if (is_list(&a) && b.t != V_NONE)
            list_contains(vm, &a, &b, out);
        return;
    case LT__FN_IP_IN: {
        uint8_t ip[16];
        if (a.t != V_STRING || lt__ip_parse(a.u.s.p, a.u.s.n, ip) != 0)
            return;
        eval(vm, &n->kids[1], &b);
        int found = 0;
        if (ip_in_one(vm, ip, &b, &found) && !vm->abort)
            set_bool(out, found != 0);
        return;
    }
    case LT__FN_TIMESTAMP:
        if (a.t == V_TS) {
            *out = a;
        } else if (a.t == V_STRING) {
            if (lt__ts_parse(a.u.s.p, a.u.s.n, &out->u.i) == 0)
                out->t = V_TS;
        } else if (a.t == V_INT && !__builtin_mul_overflow(a.u.i, (int64_t)1000000, &out->u.i)) {
            out->t = V_TS;
        }
        return;
    case LT__FN_DURATION:
        if (a.t == V_DUR)
            *out = a;
        else if (a.t == V_STRING && lt__dur_parse(a.u.s.p, a.u.s.n, &out->u.i) == 0)
            out->t = V_DUR;
        return;
    case LT__FN_HOUR:
    case LT__FN_WEEKDAY: {
        if (a.t != V_TS)
            return;
        int64_t t = lt__floordiv(a.u.i, 1000000);
        int64_t local = t + lt__tz_offset(n->u.tz, t);
        out->t = V_INT;
        out->u.i = n->fn == LT__FN_HOUR ? lt__floormod(local, 86400) / 3600
                                        : lt__floormod(lt__floordiv(local, 86400) + 4, 7); /* 1970-01-01: Thursday */
        return;
    }
    }
}

/* ---- arithmetic ---------------------------------------------------------------------- */

static void arith(lt__op_t op, const value_t *a, const value_t *b, value_t *out)
{
    out->t = V_NONE;
    if (a->t == V_INT && b->t == V_INT) {
        int64_t x = a->u.i, y = b->u.i, r = 0;
        bool ovf = false;
        switch (op) {
        case OP_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
        case OP_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
        case OP_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
        case OP_DIV:
        case OP_MOD:
            if (y == 0 || (x == INT64_MIN && y == -1))
                return;
            r = op == OP_DIV ? x / y : x % y;
            break;
        default: return;
        }
        if (!ovf) {
            out->t = V_INT;
            out->u.i = r;
        }
        return;
    }
    if ((a->t == V_INT || a->t == V_DOUBLE) && (b->t == V_INT || b->t == V_DOUBLE)) {
        double x = a->t == V_INT ? (double)a->u.i : a->u.d, y = b->t == V_INT ? (double)b->u.i : b->u.d;
        out->t = V_DOUBLE;
        switch (op) {
        case OP_ADD: out->u.d = x + y; break;
        case OP_SUB: out->u.d = x - y; break;
        case OP_MUL: out->u.d = x * y; break;
        case OP_DIV: out->u.d = x / y; break;
        default: out->t = V_NONE; break;
        }
        return;
    }
    /* timestamps and durations */
    uint8_t rt;
    int64_t r;
    bool ovf;
    if (op == OP_ADD && ((a->t == V_TS && b->t == V_DUR) || (a->t == V_DUR && b->t == V_TS)))
        rt = V_TS, ovf = __builtin_add_overflow(a->u.i, b->u.i, &r);
    else if (op == OP_ADD && a->t == V_DUR && b->t == V_DUR)
        rt = V_DUR, ovf = __builtin_add_overflow(a->u.i, b->u.i, &r);
    else if (op == OP_SUB && a->t == V_TS && b->t == V_DUR)
        rt = V_TS, ovf = __builtin_sub_overflow(a->u.i, b->u.i, &r);
    else if (op == OP_SUB && ((a->t == V_TS && b->t == V_TS) || (a->t == V_DUR && b->t == V_DUR)))
        rt = V_DUR, ovf = __builtin_sub_overflow(a->u.i, b->u.i, &r);
    else
        return;
    if (!ovf) {
        out->t = rt;
        out->u.i = r;
    }
}

/* ---- macros -------------------------------------------------------------------------- */

/* exists: true if any element's predicate is true; else no value if any had none; else
 * false. all: false if any is false; else no value if any had none; else true. */
static void macro(vm_t *vm, const lt__node_t *n, value_t *out)
{
    value_t range;
    out->t = V_NONE;
    eval(vm, &n->kids[0], &range);
    bool want = n->op == OP_EXISTS;
    size_t len;
    void *iter = NULL;
    if (is_list(&range))
        len = list_len(&range);
    else if (range.t == V_MAP)
        len = json_object_size(range.u.j), iter = json_object_iter((json_t *)range.u.j);
    else
        return;
    /* A variable expanded inside another macro's predicate may reuse this slot: keep the
     * outer binding and put it back. */
    uint64_t bit = (uint64_t)1 << n->slot;
    bool outer = (vm->live & bit) != 0;
    value_t saved = {.t = V_NONE};
    if (outer)
        saved = vm->slots[n->slot];
    vm->live |= bit;
    bool none = false, hit = false;
    for (size_t i = 0; i < len && step(vm); i++) {
        value_t *x = &vm->slots[n->slot];
        if (range.t == V_MAP) {
            x->t = V_STRING;
            x->u.s.p = json_object_iter_key(iter);
            x->u.s.n = json_object_iter_key_len(iter);
            iter = json_object_iter_next((json_t *)range.u.j, iter);
        } else {
            list_at(vm, &range, i, x);
        }
        value_t p;
        eval(vm, &n->kids[1], &p);
        if (p.t == V_BOOL && p.u.b == want) {
            hit = true;
            break;
        }
        none |= p.t != V_BOOL;
    }
    if (outer)
        vm->slots[n->slot] = saved;
    else
        vm->live &= ~bit;
    if (vm->abort)
        return;
    if (hit)
        set_bool(out, want);
    else if (!none)
        set_bool(out, !want);
}

/* ---- the walk ------------------------------------------------------------------------ */

static void eval(vm_t *vm, const lt__node_t *n, value_t *out)
{
    out->t = V_NONE;
    if (!step(vm))
        return;
    switch ((lt__op_t)n->op) {
    case OP_NULL: out->t = V_NULL; return;
    case OP_BOOL: set_bool(out, n->u.b); return;
    case OP_INT:
        out->t = V_INT;
        out->u.i = n->u.i;
        return;
    case OP_DOUBLE:
        out->t = V_DOUBLE;
        out->u.d = n->u.d;
        return;
    case OP_STRING:
        out->t = V_STRING;
        out->u.s.p = n->u.s.p;
        out->u.s.n = n->u.s.n;
        return;
    case OP_TS:
    case OP_DUR:
        out->t = n->op == OP_TS ? V_TS : V_DUR;
        out->u.i = n->u.i;
        return;
    case OP_CIDR:
        out->t = V_CIDR;
        out->u.cidr = &n->u.cidr;
        return;
    case OP_LIST:
        out->t = V_LLIST;
        out->u.ln = n;
        return;
    case OP_ROOT: from_json_or_none(root_json(vm, n), out); return;
    case OP_NOW:
        out->t = V_TS;
        out->u.i = vm->in->now_us;
        return;
    case OP_BOUND: *out = vm->slots[n->slot]; return;
    case OP_SELECT: {
        const json_t *o = path_json(vm, &n->kids[0]);
        if (json_is_object(o))
            from_json_or_none(json_object_getn(o, n->u.s.p, n->u.s.n), out);
        return;
    }
    case OP_HAS: {
        const json_t *o = path_json(vm, &n->kids[0]);
        if (!vm->abort)
            set_bool(out, json_is_object(o) && json_object_getn(o, n->u.s.p, n->u.s.n) != NULL);
        return;
    }
    case OP_INDEX: {
        value_t o, k;
        eval(vm, &n->kids[0], &o);
        eval(vm, &n->kids[1], &k);
        if (o.t == V_MAP && k.t == V_STRING)
            from_json_or_none(json_object_getn(o.u.j, k.u.s.p, k.u.s.n), out);
        else if (is_list(&o) && k.t == V_INT && k.u.i >= 0 && (uint64_t)k.u.i < list_len(&o))
            list_at(vm, &o, (size_t)k.u.i, out);
        return;
    }
    case OP_NOT: {
        value_t x;
        eval(vm, &n->kids[0], &x);
        if (x.t == V_BOOL)
            set_bool(out, !x.u.b);
        return;
    }
    case OP_NEG: {
        value_t x;
        eval(vm, &n->kids[0], &x);
        if (x.t == V_DOUBLE) {
            out->t = V_DOUBLE;
            out->u.d = -x.u.d;
        } else if ((x.t == V_INT || x.t == V_DUR) && x.u.i != INT64_MIN) {
            out->t = x.t;
            out->u.i = -x.u.i;
        }
        return;
    }
    case OP_AND:
    case OP_OR: {
        /* The deciding value (false for &&, true for ||) wins wherever it is; otherwise
         * any operand without a boolean value makes the whole one valueless. */
        bool decisive = n->op == OP_OR, none = false;
        for (uint32_t i = 0; i < n->nkids; i++) {
            value_t x;
            eval(vm, &n->kids[i], &x);
            if (x.t == V_BOOL && x.u.b == decisive) {
                set_bool(out, decisive);
                return;
            }
            none |= x.t != V_BOOL;
        }
        if (!none && !vm->abort)
            set_bool(out, !decisive);
        return;
    }
    case OP_COND: {
        value_t c;
        eval(vm, &n->kids[0], &c);
        if (c.t == V_BOOL)
            eval(vm, &n->kids[c.u.b ? 1 : 2], out);
        return;
    }
    case OP_EQ:
    case OP_NE: {
        value_t a, b;
        eval(vm, &n->kids[0], &a);
        eval(vm, &n->kids[1], &b);
        int r = equal(vm, &a, &b);
        if (r >= 0 && !vm->abort)
            set_bool(out, (r == 1) == (n->op == OP_EQ));
        return;
    }
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        value_t a, b;
        int c;
        eval(vm, &n->kids[0], &a);
        eval(vm, &n->kids[1], &b);
        if (!compare(&a, &b, &c))
            return;
        set_bool(out, n->op == OP_LT ? c < 0 : n->op == OP_LE ? c <= 0 : n->op == OP_GT ? c > 0 : c >= 0);
        return;
    }
    case OP_IN: {
        value_t x, r;
        eval(vm, &n->kids[0], &x);
        if (x.t == V_NONE)
            return;
        eval(vm, &n->kids[1], &r);
        if (is_list(&r))
            list_contains(vm, &r, &x, out);
        else if (r.t == V_MAP && x.t == V_STRING)
            set_bool(out, json_object_getn(r.u.j, x.u.s.p, x.u.s.n) != NULL);
        return;
    }
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MOD: {
        value_t a, b;
        eval(vm, &n->kids[0], &a);
        eval(vm, &n->kids[1], &b);
        arith((lt__op_t)n->op, &a, &b, out);
        return;
    }
    case OP_CALL: call(vm, n, out); return;
    case OP_EXISTS:
    case OP_ALL: macro(vm, n, out); return;
    default: return; /* parser-only ops never reach a program */
    }
}

int lt_policy_expr_eval(const lt_policy_expr_t *e, const lt_policy_input_t *in, lt_policy_result_t *res)
{
    if (e == NULL || in == NULL || res == NULL)
        return LT_EINVAL;
    vm_t vm;
    vm.in = in;
    vm.steps = 0;
    vm.max_steps = in->max_steps != 0 ? in->max_steps : LT_POLICY_MAX_STEPS;
    vm.abort = false;
    vm.live = 0;
    value_t v;
    eval(&vm, e->root, &v);
    if (vm.abort)
        *res = LT_POLICY_ERROR;
    else
        *res = v.t == V_BOOL && v.u.b ? LT_POLICY_TRUE : LT_POLICY_FALSE;
    return 0;
}
