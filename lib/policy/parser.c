/*
 * policy/parser: recursive descent over the CEL grammar (precedence in expr.h), building
 * an AST in the compilation's arena. The first error stops the parse; its position is the
 * offending token's.
 *
 * Chains of && and || become one n-ary node each, so a long list of alternatives stays
 * shallow for the evaluator. A unary minus directly on a number literal is folded, which is
 * how -9223372036854775808 is written.
 */
#include "policy/internal.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    lt__arena_t *a;
    const lt__src_t *src;
    lt__lexer_t lx;
    lt__tok_t tok; /* the current token */
    int nesting;
    int rc; /* the first error, 0 while none */
    lt_policy_error_t *err;
} parser_t;

LT_PRINTF(3, 4) static void fail_at(parser_t *p, const lt__tok_t *t, const char *fmt, ...)
{
    if (p->rc != 0)
        return;
    p->rc = LT_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    lt__verror(p->err, p->src, t->line, t->col, fmt, ap);
    va_end(ap);
}

static void next(parser_t *p)
{
    const char *why = NULL;
    if (p->rc != 0)
        return;
    if (lt__lex_next(&p->lx, &p->tok, &why) != 0)
        fail_at(p, &p->tok, "%s", why);
}

static bool accept(parser_t *p, lt__tok_kind_t k)
{
    if (p->rc != 0 || p->tok.kind != k)
        return false;
    next(p);
    return true;
}

static void expect(parser_t *p, lt__tok_kind_t k, const char *context)
{
    if (p->rc != 0)
        return;
    if (p->tok.kind != k) {
        fail_at(p, &p->tok, "expected %s %s, found %s", lt__tok_name(k), context, lt__tok_name(p->tok.kind));
        return;
    }
    next(p);
}

static lt__ast_t *node(parser_t *p, lt__op_t op, const lt__tok_t *at)
{
    lt__ast_t *n = lt__arena_alloc(p->a, sizeof(*n));
    if (n == NULL) {
        p->rc = p->rc != 0 ? p->rc : LT_ENOMEM;
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->op = (uint8_t)op;
    n->line = n->sline = at->line;
    n->col = n->scol = at->col;
    return n;
}

/* A growable kid list; arrays outgrown stay in the arena (bounded by twice the final size). */
typedef struct {
    lt__ast_t **v;
    uint32_t n, cap;
} kids_t;

static void push(parser_t *p, kids_t *k, lt__ast_t *x)
{
    if (p->rc != 0)
        return;
    if (k->n == k->cap) {
        uint32_t cap = k->cap == 0 ? 4 : k->cap * 2;
        lt__ast_t **v = lt__arena_alloc(p->a, cap * sizeof(*v));
        if (v == NULL) {
            p->rc = LT_ENOMEM;
            return;
        }
        if (k->n > 0)
            memcpy(v, k->v, k->n * sizeof(*v));
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = x;
}

static lt__ast_t *with_kids(parser_t *p, lt__ast_t *n, lt__ast_t *a, lt__ast_t *b)
{
    if (n == NULL || p->rc != 0)
        return NULL;
    kids_t k = {0};
    push(p, &k, a);
    if (b != NULL)
        push(p, &k, b);
    n->kids = k.v;
    n->nkids = k.n;
    if (a->sline < n->sline || (a->sline == n->sline && a->scol < n->scol)) { /* a left operand */
        n->sline = a->sline;
        n->scol = a->scol;
    }
    return p->rc == 0 ? n : NULL;
}

static lt__ast_t *parse_expr(parser_t *p);

static bool enter(parser_t *p)
{
    if (++p->nesting > LT_POLICY_MAX_NESTING) {
        fail_at(p, &p->tok, "expression nested too deeply (limit %d)", LT_POLICY_MAX_NESTING);
        if (p->rc == LT_EINVAL)
            p->rc = LT_ERANGE;
        return false;
    }
    return true;
}

/* Arguments or list elements up to `close`, the opening token already consumed. */
static void parse_items(parser_t *p, kids_t *k, lt__tok_kind_t close, const char *what)
{
    if (accept(p, close))
        return;
    for (;;) {
        lt__ast_t *x = parse_expr(p);
        if (x == NULL)
            return;
        push(p, k, x);
        if (accept(p, TK_COMMA)) {
            if (accept(p, close)) /* a trailing comma, as CEL allows */
                return;
            continue;
        }
        expect(p, close, what);
        return;
    }
}

static lt__ast_t *parse_primary(parser_t *p)
{
    lt__tok_t t = p->tok;
    lt__ast_t *n = NULL;
    switch (t.kind) {
    case TK_INT:
        if (t.ival > (uint64_t)INT64_MAX) {
            fail_at(p, &t, "integer literal out of range");
            return NULL;
        }
        if ((n = node(p, OP_INT, &t)) != NULL)
            n->u.i = (int64_t)t.ival;
        next(p);
        return n;
    case TK_DOUBLE:
        if ((n = node(p, OP_DOUBLE, &t)) != NULL)
            n->u.d = t.dval;
        next(p);
        return n;
    case TK_STRING: {
        if ((n = node(p, OP_STRING, &t)) == NULL)
            return NULL;
        char *s = lt__arena_alloc(p->a, t.n + 1);
        if (s == NULL) {
            p->rc = LT_ENOMEM;
            return NULL;
        }
        n->sn = lt__lex_string(&t, s);
        s[n->sn] = '\0';
        n->s = s;
        next(p);
        return n;
    }
    case TK_TRUE:
    case TK_FALSE:
        if ((n = node(p, OP_BOOL, &t)) != NULL)
            n->u.b = t.kind == TK_TRUE;
        next(p);
        return n;
    case TK_NULL:
        n = node(p, OP_NULL, &t);
        next(p);
        return n;
    case TK_LPAREN:
        next(p);
        n = parse_expr(p);
        expect(p, TK_RPAREN, "to close '('");
        return p->rc == 0 ? n : NULL;
    case TK_LBRACKET: {
        if (!enter(p))
            return NULL;
        next(p);
        kids_t k = {0};
        parse_items(p, &k, TK_RBRACKET, "after a list element");
        p->nesting--;
        if (p->rc != 0 || (n = node(p, OP_LIST, &t)) == NULL)
            return NULL;
        n->kids = k.v;
        n->nkids = k.n;
        return n;
    }
    case TK_IDENT:
        next(p);
        if (p->tok.kind == TK_LPAREN) {
            if (!enter(p))
                return NULL;
            next(p);
            kids_t k = {0};
            parse_items(p, &k, TK_RPAREN, "after an argument");
            p->nesting--;
            if (p->rc != 0 || (n = node(p, OP_FCALL, &t)) == NULL)
                return NULL;
            n->kids = k.v;
            n->nkids = k.n;
        } else if ((n = node(p, OP_IDENT, &t)) == NULL) {
            return NULL;
        }
        n->s = t.p;
        n->sn = t.n;
        return n;
    case TK_EOF:
        fail_at(p, &t, "unexpected end of input, expected an operand");
        return NULL;
    default:
        fail_at(p, &t, "unexpected %s, expected an operand", lt__tok_name(t.kind));
        return NULL;
    }
}

static lt__ast_t *parse_member(parser_t *p)
{
    lt__ast_t *n = parse_primary(p);
    while (n != NULL && p->rc == 0) {
        lt__tok_t t = p->tok;
        if (accept(p, TK_DOT)) {
            lt__tok_t name = p->tok;
            if (name.kind != TK_IDENT) {
                fail_at(p, &name, "expected a field or method name after '.', found %s", lt__tok_name(name.kind));
                return NULL;
            }
            next(p);
            if (p->tok.kind == TK_LPAREN) {
                if (!enter(p))
                    return NULL;
                next(p);
                kids_t k = {0};
                push(p, &k, n);
                parse_items(p, &k, TK_RPAREN, "after an argument");
                p->nesting--;
                lt__ast_t *m = node(p, OP_METHOD, &name);
                if (p->rc != 0 || m == NULL)
                    return NULL;
                m->kids = k.v;
                m->nkids = k.n;
                m->s = name.p;
                m->sn = name.n;
                m->sline = n->sline;
                m->scol = n->scol;
                n = m;
            } else {
                lt__ast_t *s = with_kids(p, node(p, OP_SELECT, &name), n, NULL);
                if (s == NULL)
                    return NULL;
                s->s = name.p;
                s->sn = name.n;
                n = s;
            }
        } else if (accept(p, TK_LBRACKET)) {
            if (!enter(p))
                return NULL;
            lt__ast_t *idx = parse_expr(p);
            expect(p, TK_RBRACKET, "to close '['");
            p->nesting--;
            n = with_kids(p, node(p, OP_INDEX, &t), n, idx);
        } else {
            break;
        }
    }
    return p->rc == 0 ? n : NULL;
}

static lt__ast_t *parse_unary(parser_t *p)
{
    lt__tok_t t = p->tok;
    if (t.kind != TK_NOT && t.kind != TK_MINUS)
        return parse_member(p);
    if (!enter(p))
        return NULL;
    next(p);
    lt__ast_t *n;
    if (t.kind == TK_MINUS && (p->tok.kind == TK_INT || p->tok.kind == TK_DOUBLE)) {
        /* Fold the literal here: -9223372036854775808 has no positive counterpart. */
        lt__tok_t lit = p->tok;
        if (lit.kind == TK_INT && lit.ival > (uint64_t)INT64_MAX + 1) {
            fail_at(p, &lit, "integer literal out of range");
            return NULL;
        }
        n = node(p, lit.kind == TK_INT ? OP_INT : OP_DOUBLE, &t);
        if (n == NULL)
            return NULL;
        if (lit.kind == TK_INT)
            n->u.i = lit.ival == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)lit.ival;
        else
            n->u.d = -lit.dval;
        next(p); /* so a member of a negative literal (-1.x) is a syntax error */
    } else {
        lt__ast_t *x = parse_unary(p);
        n = with_kids(p, node(p, t.kind == TK_NOT ? OP_NOT : OP_NEG, &t), x, NULL);
    }
    p->nesting--;
    return p->rc == 0 ? n : NULL;
}

static lt__ast_t *parse_mul(parser_t *p)
{
    lt__ast_t *n = parse_unary(p);
    while (n != NULL) {
        lt__tok_t t = p->tok;
        lt__op_t op = t.kind == TK_STAR ? OP_MUL : t.kind == TK_SLASH ? OP_DIV : t.kind == TK_PERCENT ? OP_MOD : OP__COUNT;
        if (op == OP__COUNT)
            break;
        next(p);
        lt__ast_t *r = parse_unary(p);
        n = with_kids(p, node(p, op, &t), n, r);
    }
    return n;
}

static lt__ast_t *parse_add(parser_t *p)
{
    lt__ast_t *n = parse_mul(p);
    while (n != NULL) {
        lt__tok_t t = p->tok;
        lt__op_t op = t.kind == TK_PLUS ? OP_ADD : t.kind == TK_MINUS ? OP_SUB : OP__COUNT;
        if (op == OP__COUNT)
            break;
        next(p);
        lt__ast_t *r = parse_mul(p);
        n = with_kids(p, node(p, op, &t), n, r);
    }
    return n;
}

static lt__ast_t *parse_rel(parser_t *p)
{
    lt__ast_t *n = parse_add(p);
    while (n != NULL) {
        lt__tok_t t = p->tok;
        lt__op_t op;
        switch (t.kind) {
        case TK_EQ: op = OP_EQ; break;
        case TK_NE: op = OP_NE; break;
        case TK_LT: op = OP_LT; break;
        case TK_LE: op = OP_LE; break;
        case TK_GT: op = OP_GT; break;
        case TK_GE: op = OP_GE; break;
        case TK_IN: op = OP_IN; break;
        default: return n;
        }
        next(p);
        lt__ast_t *r = parse_add(p);
        n = with_kids(p, node(p, op, &t), n, r);
    }
    return n;
}

/* One n-ary node for a chain of `tk`, built from operands parsed by `sub`. */
static lt__ast_t *parse_chain(parser_t *p, lt__tok_kind_t tk, lt__op_t op, lt__ast_t *(*sub)(parser_t *))
{
    lt__tok_t first = p->tok;
    lt__ast_t *n = sub(p);
    if (n == NULL || p->tok.kind != tk)
        return n;
    kids_t k = {0};
    push(p, &k, n);
    while (accept(p, tk)) {
        lt__ast_t *r = sub(p);
        if (r == NULL)
            return NULL;
        push(p, &k, r);
    }
    lt__ast_t *c = node(p, op, &first);
    if (p->rc != 0 || c == NULL)
        return NULL;
    c->kids = k.v;
    c->nkids = k.n;
    return c;
}

static lt__ast_t *parse_and(parser_t *p)
{
    return parse_chain(p, TK_AND, OP_AND, parse_rel);
}

static lt__ast_t *parse_or(parser_t *p)
{
    return parse_chain(p, TK_OR, OP_OR, parse_and);
}

static lt__ast_t *parse_expr(parser_t *p)
{
    if (!enter(p))
        return NULL;
    lt__ast_t *n = parse_or(p);
    lt__tok_t t = p->tok;
    if (n != NULL && accept(p, TK_QUESTION)) {
        lt__ast_t *a = parse_or(p);
        expect(p, TK_COLON, "in a conditional");
        lt__ast_t *b = parse_expr(p);
        lt__ast_t *c = with_kids(p, node(p, OP_COND, &t), n, a);
        if (c != NULL) {
            kids_t k = {c->kids, c->nkids, c->nkids};
            push(p, &k, b);
            c->kids = k.v;
            c->nkids = k.n;
        }
        n = c;
    }
    p->nesting--;
    return p->rc == 0 ? n : NULL;
}

int lt__parse(lt__arena_t *a, const lt__src_t *src, lt__ast_t **out, lt_policy_error_t *err)
{
    parser_t p = {.a = a, .src = src, .err = err};
    lt__lex_init(&p.lx, src->p, src->n);
    next(&p);
    lt__ast_t *n = p.rc == 0 ? parse_expr(&p) : NULL;
    if (p.rc == 0 && p.tok.kind != TK_EOF)
        fail_at(&p, &p.tok, "unexpected %s after the end of the expression", lt__tok_name(p.tok.kind));
    if (p.rc != 0)
        return p.rc;
    *out = n;
    return 0;
}
