/*
 * policy/compile: the public compile and free, and the flattening of a checked AST into one
 * allocation:
 *
 *   [struct lt_policy_expr][lt__node_t x nnodes][string bytes]
 *
 * Nodes are laid out breadth-wise per parent (a node's kids are contiguous), so a node
 * carries one pointer to its kids. A variable's AST, shared by its references, is copied at
 * each. Strings (field names, literals) are copied behind the nodes, NUL-terminated.
 *
 * Parsing and checking allocate from an arena freed before compile returns.
 */
#include "policy/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena --------------------------------------------------------------------------- */

struct lt__chunk {
    struct lt__chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *lt__arena_alloc(lt__arena_t *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (n == 0)
        n = sizeof(max_align_t);
    if (a->head == NULL || a->head->cap - a->head->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        lt__chunk_t *c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

void lt__arena_free(lt__arena_t *a)
{
    while (a->head != NULL) {
        lt__chunk_t *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ---- errors -------------------------------------------------------------------------- */

void lt__verror(lt_policy_error_t *err, const lt__src_t *src, int line, int col, const char *fmt, va_list ap)
{
    if (err == NULL)
        return;
    err->line = line;
    err->col = col;
    snprintf(err->var, sizeof(err->var), "%s", src != NULL && src->var != NULL ? src->var : "");
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

void lt__error(lt_policy_error_t *err, const lt__src_t *src, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lt__verror(err, src, line, col, fmt, ap);
    va_end(ap);
}

/* ---- flattening ------------------------------------------------------------------------ */

typedef struct {
    lt__node_t *nodes;
    size_t next; /* the next free node */
    char *strs;
    size_t soff;
} flat_t;

static size_t str_bytes(const lt__ast_t *n)
{
    size_t total = 0;
    if (n->op == OP_STRING || n->op == OP_SELECT || n->op == OP_HAS)
        total += n->sn + 1;
    for (uint32_t i = 0; i < n->nkids; i++)
        total += str_bytes(n->kids[i]);
    return total;
}

/* Fills `out` from `n`; its kids go to the next free slots. */
static void flatten(flat_t *f, const lt__ast_t *n, lt__node_t *out)
{
    out->op = n->op;
    out->fn = n->fn;
    out->slot = n->slot;
    out->nkids = n->nkids;
    switch ((lt__op_t)n->op) {
    case OP_BOOL: out->u.b = n->u.b; break;
    case OP_INT:
    case OP_TS:
    case OP_DUR:
    case OP_ROOT: out->u.i = n->u.i; break;
    case OP_DOUBLE: out->u.d = n->u.d; break;
    case OP_CIDR: out->u.cidr = n->u.cidr; break;
    case OP_STRING:
    case OP_SELECT:
    case OP_HAS:
        memcpy(f->strs + f->soff, n->s, n->sn);
        f->strs[f->soff + n->sn] = '\0';
        out->u.s.p = f->strs + f->soff;
        out->u.s.n = n->sn;
        f->soff += n->sn + 1;
        break;
    case OP_CALL:
        if (n->fn == LT__FN_HOUR || n->fn == LT__FN_WEEKDAY)
            out->u.tz = n->u.tz;
        break;
    default: break;
    }
    if (n->nkids == 0) {
        out->kids = NULL;
        return;
    }
    lt__node_t *kids = f->nodes + f->next;
    f->next += n->nkids;
    out->kids = kids;
    for (uint32_t i = 0; i < n->nkids; i++)
        flatten(f, n->kids[i], &kids[i]);
}

static int build(const lt__ast_t *root, lt_policy_expr_t **out)
{
    size_t nn = root->size, sb = str_bytes(root);
    size_t hdr = (sizeof(lt_policy_expr_t) + _Alignof(lt__node_t) - 1) & ~(_Alignof(lt__node_t) - 1);
    lt_policy_expr_t *e = malloc(hdr + nn * sizeof(lt__node_t) + sb);
    if (e == NULL)
        return LT_ENOMEM;
    flat_t f = {.nodes = (lt__node_t *)((char *)e + hdr), .next = 1, .strs = (char *)e + hdr + nn * sizeof(lt__node_t)};
    flatten(&f, root, &f.nodes[0]);
    e->nnodes = nn;
    e->root = &f.nodes[0];
    *out = e;
    return 0;
}

/* ---- API -------------------------------------------------------------------------------- */

static int compile(const lt__src_t *src, const lt_policy_vars_t *vars, bool want_bool, lt_policy_expr_t **out,
                   lt_policy_error_t *err)
{
    lt__arena_t a = {NULL};
    lt__ast_t *root = NULL;
    int rc;
    if (src->n > LT_POLICY_MAX_SOURCE) {
        lt__error(err, src, 0, 0, "source too long (%zu bytes, limit %d)", src->n, LT_POLICY_MAX_SOURCE);
        return LT_ERANGE;
    }
    if (lt_utf8_count(src->p, src->n) < 0) {
        lt__error(err, src, 0, 0, "source is not valid UTF-8");
        return LT_EINVAL;
    }
    if ((rc = lt__parse(&a, src, &root, err)) != 0)
        goto done;
    if ((rc = lt__check(&a, src, &root, vars, want_bool, err)) != 0)
        goto done;
    rc = out != NULL ? build(root, out) : 0;
done:
    if (rc == LT_ENOMEM)
        lt__error(err, src, 0, 0, "out of memory");
    lt__arena_free(&a);
    return rc;
}

int lt_policy_expr_compile(const char *src, size_t n, const lt_policy_vars_t *vars, lt_policy_expr_t **out,
                           lt_policy_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if ((src == NULL && n > 0) || out == NULL)
        return LT_EINVAL;
    *out = NULL;
    lt__src_t s = {.p = src != NULL ? src : "", .n = n};
    return compile(&s, vars, true, out, err);
}

int lt__var_check(const lt_policy_vars_t *vars, size_t i, lt_policy_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (vars == NULL || i >= vars->n)
        return LT_EINVAL;
    /* `variables.NAME` as the condition: the checker validates names, parses NAME and
     * everything it reaches, and catches cycles through it. */
    char ref[LT_POLICY_MAX_VAR_NAME + 16];
    const char *name = vars->items[i].name != NULL ? vars->items[i].name : "";
    int len = snprintf(ref, sizeof(ref), "variables[\"%s\"]", name);
    if (len < 0 || (size_t)len >= sizeof(ref) || strpbrk(name, "\"\\") != NULL) {
        lt__error(err, NULL, 0, 0, "invalid variable name '%.64s'", name);
        return LT_EINVAL;
    }
    lt__src_t s = {.p = ref, .n = (size_t)len};
    return compile(&s, vars, false, NULL, err);
}

int lt_policy_vars_check(const lt_policy_vars_t *vars, lt_policy_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (vars == NULL)
        return 0;
    for (size_t i = 0; i < vars->n; i++) {
        int rc = lt__var_check(vars, i, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void lt_policy_expr_free(lt_policy_expr_t **e)
{
    if (e == NULL || *e == NULL)
        return;
    free(*e);
    *e = NULL;
}

size_t lt_policy_expr_nodes(const lt_policy_expr_t *e)
{
    return e != NULL ? e->nnodes : 0;
}
