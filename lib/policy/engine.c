/*
 * policy/engine: snapshots of roles, subjects and policy documents, and decisions against
 * them (engine.h is the contract; document.c reads policy documents).
 *
 * Layout. A snapshot owns one arena (every struct, string, vector and hash table of the
 * snapshot lives in it and goes in one free), the compiled conditions, and the JSON values
 * it keeps (stored attributes, precomputed subject views). Each tenant, and the global
 * scope, has hash tables of its roles (by name), subjects (by "type\0id") and policies (by
 * resource type, plus the "*" list). The builder fills a snapshot in place; finish resolves
 * role inheritance once (each role's closure of names and effective permissions, deduped)
 * and each known subject's effective roles, permissions and condition view, so a decision
 * about a known subject reads precomputed data only.
 *
 * A decision: find the subject (known in the tenant, then global; else roles from the
 * caller's properties.roles), build the flattened views conditions read (borrowing the
 * caller's objects or the precomputed view when no properties need merging), then
 *   1. deny rules of every applicable policy (tenant type, tenant "*", global type, global
 *      "*", in that order): the first that matches decides;
 *   2. RBAC permissions of the effective roles: the first that matches decides allow;
 *   3. allow rules in the same policy order: the first that matches decides allow;
 *   4. otherwise "default" deny.
 * Without explain each step stops at the first match; with explain every rule and derived
 * role of the applicable policies is evaluated so the explanation is complete (the deciding
 * id is the same either way). Derived roles are evaluated lazily, at most once per policy
 * per decision, and only when a rule whose action matches names one.
 *
 * Threads: the builder is single-threaded; a finished snapshot is never written again.
 * Decisions read shared JSON values (json_object_get) and may take references to them
 * (json_object_update), which jansson 2.14 does with atomic reference counts.
 */
#include "policy/engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena, vectors, maps -------------------------------------------------------------- */

void *pe_alloc(pe_arena_t *a, size_t n)
{
    void *p = lt__arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void pe_arena_free(pe_arena_t *a)
{
    lt__arena_free(a);
}

char *pe_strndup(pe_arena_t *a, const char *s, size_t n)
{
    char *p = pe_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pe_strdup(pe_arena_t *a, const char *s)
{
    return pe_strndup(a, s, strlen(s));
}

/* Vectors grow by doubling inside the arena; the old block is left behind (at most as much
 * again as the final size). */
int pe_vec_push(pe_arena_t *a, pe_vec_t *v, void *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap != 0 ? v->cap * 2 : 4;
        void **items = pe_alloc(a, cap * sizeof(*items));
        if (items == NULL)
            return LT_ENOMEM;
        if (v->n != 0)
            memcpy(items, v->items, v->n * sizeof(*items));
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = x;
    return 0;
}

/* FNV-1a: keys are names an administrator wrote; requests only look them up. */
static uint64_t hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void *pe_map_get(const pe_map_t *m, const char *k, size_t n)
{
    if (m->cap == 0)
        return NULL;
    uint64_t h = hash(k, n);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const pe_slot_t *sl = &m->slots[i];
        if (sl->k == NULL)
            return NULL;
        if (sl->h == h && sl->n == n && memcmp(sl->k, k, n) == 0)
            return sl->v;
    }
}

/* `k` must live as long as the map (in the arena). */
int pe_map_put(pe_arena_t *a, pe_map_t *m, const char *k, size_t n, void *v)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap != 0 ? m->cap * 2 : 8;
        pe_slot_t *slots = pe_alloc(a, cap * sizeof(*slots));
        if (slots == NULL)
            return LT_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].k == NULL)
                continue;
            size_t j = m->slots[i].h & (cap - 1);
            while (slots[j].k != NULL)
                j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        m->slots = slots;
        m->cap = cap;
    }
    uint64_t h = hash(k, n);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].k != NULL)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = (pe_slot_t){.k = k, .n = n, .h = h, .v = v};
    m->n++;
    return 0;
}

/* ---- names and problems ------------------------------------------------------------------ */

void pe_utf8_clean(char *s)
{
    char *out = s;
    for (const char *p = s; *p != '\0';) {
        unsigned char c = (unsigned char)*p;
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0, have = 0;
        while (have < len && p[have] != '\0')
            have++;
        if (len != 0 && have == len && lt_utf8_count(p, len) == 1) {
            memmove(out, p, len);
            out += len;
            p += len;
        } else {
            p++;
        }
    }
    *out = '\0';
}

void pe_problem(lt_policy_problem_t *p, const char *where, int line, int col, const char *fmt, ...)
{
    if (p == NULL)
        return;
    snprintf(p->where, sizeof(p->where), "%s", where);
    pe_utf8_clean(p->where);
    p->line = line;
    p->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
    pe_utf8_clean(p->msg);
}

static void clear_problem(lt_policy_problem_t *p)
{
    if (p != NULL)
        memset(p, 0, sizeof(*p));
}

bool pe_role_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PE_MAX_ROLE_NAME || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* A permission side: "*" or printable ASCII without spaces, quotes or '#'. */
static bool perm_side_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    if (n == 1 && s[0] == '*')
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '#' || c == '*')
            return false;
    }
    return true;
}

/* ---- snapshot lifetime -------------------------------------------------------------------- */

static lt_policy_snapshot_t *snapshot_new(void)
{
    lt_policy_snapshot_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    return s;
}

static void snapshot_free(lt_policy_snapshot_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->exprs.n; i++) {
        lt_policy_expr_t *e = s->exprs.items[i];
        lt_policy_expr_free(&e);
    }
    for (size_t i = 0; i < s->jsons.n; i++)
        json_decref(s->jsons.items[i]);
    pe_arena_free(&s->arena);
    free(s);
}

void lt_policy_snapshot_incref(lt_policy_snapshot_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void lt_policy_snapshot_decref(lt_policy_snapshot_t *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

void lt_policy_snapshot_stats(const lt_policy_snapshot_t *s, lt_policy_stats_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (s != NULL)
        *out = s->stats;
}

/* Keeps a JSON reference for the snapshot's life. */
int pe_keep_json(lt_policy_snapshot_t *s, json_t *j)
{
    if (pe_vec_push(&s->arena, &s->jsons, j) != 0) {
        json_decref(j);
        return LT_ENOMEM;
    }
    return 0;
}

/* ---- tenants ----------------------------------------------------------------------------- */

const pe_tenant_t *pe_tenant_find(const lt_policy_snapshot_t *s, const char *id)
{
    if (id == NULL)
        return &s->global;
    return pe_map_get(&s->tenants, id, strlen(id));
}

pe_tenant_t *pe_tenant_get(lt_policy_snapshot_t *s, const char *id, int *rc)
{
    *rc = 0;
    if (id == NULL)
        return &s->global;
    size_t n = strlen(id);
    if (n == 0 || n > PE_MAX_ID) {
        *rc = LT_EINVAL;
        return NULL;
    }
    pe_tenant_t *t = pe_map_get(&s->tenants, id, n);
    if (t != NULL)
        return t;
    t = pe_alloc(&s->arena, sizeof(*t));
    char *k = t != NULL ? pe_strndup(&s->arena, id, n) : NULL;
    if (k == NULL || pe_map_put(&s->arena, &s->tenants, k, n, t) != 0) {
        *rc = LT_ENOMEM;
        return NULL;
    }
    t->id = k;
    t->id_json = json_string(k);
    if (t->id_json == NULL || pe_keep_json(s, t->id_json) != 0 || pe_vec_push(&s->arena, &s->tenant_list, t) != 0) {
        *rc = LT_ENOMEM;
        return NULL;
    }
    return t;
}

/* A role by name as seen from tenant `t`: its own first, then the global one. */
const pe_role_t *pe_role_lookup(const lt_policy_snapshot_t *s, const pe_tenant_t *t, const char *name, size_t n)
{
    const pe_role_t *r = t != NULL ? pe_map_get(&t->roles, name, n) : NULL;
    if (r == NULL && t != &s->global)
        r = pe_map_get(&s->global.roles, name, n);
    return r;
}

/* ---- builder ------------------------------------------------------------------------------- */

struct lt_policy_builder {
    lt_policy_snapshot_t *s;
};

lt_policy_builder_t *lt_policy_builder_new(void)
{
    lt_policy_builder_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->s = snapshot_new();
    if (b->s == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

void lt_policy_builder_free(lt_policy_builder_t *b)
{
    if (b == NULL)
        return;
    snapshot_free(b->s);
    free(b);
}

int lt_policy_builder_role(lt_policy_builder_t *b, const char *tenant, const char *name, const char *const *perms,
                           size_t nperms, const char *const *parents, size_t nparents, lt_policy_problem_t *p)
{
    clear_problem(p);
    if (b == NULL || b->s == NULL || name == NULL || (nperms > 0 && perms == NULL) ||
        (nparents > 0 && parents == NULL)) {
        pe_problem(p, "", 0, 0, "invalid arguments");
        return b != NULL && b->s == NULL ? LT_ESTATE : LT_EINVAL;
    }
    lt_policy_snapshot_t *s = b->s;
    if (!pe_role_name_ok(name)) {
        pe_problem(p, "/name", 0, 0, "role name must be 1..64 of [a-z0-9_:.-], starting with a letter");
        return LT_EINVAL;
    }
    if (nperms > PE_MAX_ROLE_PERMS || nparents > PE_MAX_ROLE_PARENTS) {
        pe_problem(p, nperms > PE_MAX_ROLE_PERMS ? "/permissions" : "/parents", 0, 0, "too many entries (at most %d)",
                   nperms > PE_MAX_ROLE_PERMS ? PE_MAX_ROLE_PERMS : PE_MAX_ROLE_PARENTS);
        return LT_EINVAL;
    }
    for (size_t i = 0; i < nperms; i++) {
        const char *pm = perms[i];
        char where[32];
        snprintf(where, sizeof(where), "/permissions/%zu", i);
        if (pm == NULL) {
            pe_problem(p, where, 0, 0, "permission must be a string");
            return LT_EINVAL;
        }
        const char *colon = strrchr(pm, ':');
        bool ok = strcmp(pm, "*") == 0 ||
                  (colon != NULL && perm_side_ok(pm, (size_t)(colon - pm)) && perm_side_ok(colon + 1, strlen(colon + 1)));
        if (!ok) {
            pe_problem(p, where, 0, 0, "permission '%.64s' is not resource_type:action (either side may be *)", pm);
            return LT_EINVAL;
        }
    }
    for (size_t i = 0; i < nparents; i++) {
        if (parents[i] == NULL || !pe_role_name_ok(parents[i])) {
            char where[32];
            snprintf(where, sizeof(where), "/parents/%zu", i);
            pe_problem(p, where, 0, 0, "parent must be a role name");
            return LT_EINVAL;
        }
        if (strcmp(parents[i], name) == 0) {
            char where[32];
            snprintf(where, sizeof(where), "/parents/%zu", i);
            pe_problem(p, where, 0, 0, "role '%s' cannot inherit itself", name);
            return LT_EINVAL;
        }
    }
    int rc;
    pe_tenant_t *t = pe_tenant_get(s, tenant, &rc);
    if (t == NULL) {
        pe_problem(p, "/tenant", 0, 0, rc == LT_EINVAL ? "invalid tenant id" : "out of memory");
        return rc;
    }
    size_t nn = strlen(name);
    if (pe_map_get(&t->roles, name, nn) != NULL) {
        pe_problem(p, "/name", 0, 0, "role '%s' already exists", name);
        return LT_EEXIST;
    }
    pe_arena_t *a = &s->arena;
    pe_role_t *r = pe_alloc(a, sizeof(*r));
    if (r == NULL || (r->name = pe_strndup(a, name, nn)) == NULL)
        goto oom;
    r->tenant = t;
    r->perms = pe_alloc(a, (nperms ? nperms : 1) * sizeof(*r->perms));
    r->parents = pe_alloc(a, (nparents ? nparents : 1) * sizeof(*r->parents));
    if (r->perms == NULL || r->parents == NULL)
        goto oom;
    for (size_t i = 0; i < nperms; i++) {
        /* "*" alone is "*:*"; the split is at the last ':' so "latch:users:write" is the
         * action "write" on the type "latch:users". */
        const char *pm = strcmp(perms[i], "*") == 0 ? "*:*" : perms[i];
        bool dup = false;
        for (size_t j = 0; j < r->nperms && !dup; j++)
            dup = strcmp(r->perms[j].text, pm) == 0;
        if (dup)
            continue;
        pe_perm_t *pp = &r->perms[r->nperms];
        const char *colon = strrchr(pm, ':');
        if ((pp->text = pe_strdup(a, pm)) == NULL || (pp->type = pe_strndup(a, pm, (size_t)(colon - pm))) == NULL ||
            (pp->action = pe_strdup(a, colon + 1)) == NULL)
            goto oom;
        size_t dn = 6 + nn + strlen(pm) + 1;
        char *d = pe_alloc(a, dn);
        if (d == NULL)
            goto oom;
        snprintf(d, dn, "rbac:%s:%s", r->name, pm);
        pp->deciding = d;
        r->nperms++;
    }
    for (size_t i = 0; i < nparents; i++) {
        bool dup = false;
        for (size_t j = 0; j < r->nparents && !dup; j++)
            dup = strcmp(r->parents[j], parents[i]) == 0;
        if (!dup && (r->parents[r->nparents++] = pe_strdup(a, parents[i])) == NULL)
            goto oom;
    }
    if ((r->name_json = json_string(r->name)) == NULL || pe_keep_json(s, r->name_json) != 0)
        goto oom;
    if (pe_map_put(a, &t->roles, r->name, nn, r) != 0 || pe_vec_push(a, &t->role_list, r) != 0)
        goto oom;
    s->stats.roles++;
    return 0;
oom:
    pe_problem(p, "", 0, 0, "out of memory");
    return LT_ENOMEM;
}

int lt_policy_builder_subject(lt_policy_builder_t *b, const char *tenant, const char *type, const char *id,
                              const char *const *roles, size_t nroles, const json_t *attributes)
{
    if (b == NULL || b->s == NULL)
        return b == NULL ? LT_EINVAL : LT_ESTATE;
    if (type == NULL || id == NULL || type[0] == '\0' || id[0] == '\0' || strlen(type) > PE_MAX_ID ||
        strlen(id) > PE_MAX_SUBJECT_ID || (nroles > 0 && roles == NULL) || nroles > PE_MAX_SUBJECT_ROLES ||
        (attributes != NULL && !json_is_object(attributes)))
        return LT_EINVAL;
    for (size_t i = 0; i < nroles; i++)
        if (roles[i] == NULL || roles[i][0] == '\0' || strlen(roles[i]) > PE_MAX_NAME)
            return LT_EINVAL;
    lt_policy_snapshot_t *s = b->s;
    pe_arena_t *a = &s->arena;
    int rc;
    pe_tenant_t *t = pe_tenant_get(s, tenant, &rc);
    if (t == NULL)
        return rc;
    size_t tn = strlen(type), in = strlen(id);
    char *key = pe_alloc(a, tn + 1 + in + 1);
    if (key == NULL)
        return LT_ENOMEM;
    memcpy(key, type, tn + 1);
    memcpy(key + tn + 1, id, in + 1);
    if (pe_map_get(&t->subjects, key, tn + 1 + in) != NULL)
        return LT_EEXIST;
    pe_subject_t *sb = pe_alloc(a, sizeof(*sb));
    if (sb == NULL)
        return LT_ENOMEM;
    sb->type = key;
    sb->id = key + tn + 1;
    sb->tenant = t;
    sb->assigned = pe_alloc(a, (nroles ? nroles : 1) * sizeof(*sb->assigned));
    if (sb->assigned == NULL)
        return LT_ENOMEM;
    for (size_t i = 0; i < nroles; i++)
        if ((sb->assigned[sb->nassigned++] = pe_strdup(a, roles[i])) == NULL)
            return LT_ENOMEM;
    if (attributes != NULL) {
        /* A deep copy: the caller's object may change after this call, and the snapshot
         * shares these values across threads. */
        if ((sb->attrs = json_deep_copy(attributes)) == NULL || pe_keep_json(s, sb->attrs) != 0)
            return LT_ENOMEM;
    }
    if (pe_map_put(a, &t->subjects, key, tn + 1 + in, sb) != 0 || pe_vec_push(a, &t->subject_list, sb) != 0)
        return LT_ENOMEM;
    s->stats.subjects++;
    return 0;
}

int lt_policy_builder_policy(lt_policy_builder_t *b, const char *tenant, const char *id, const json_t *doc,
                             lt_policy_problem_t *p)
{
    clear_problem(p);
    if (b == NULL || b->s == NULL || doc == NULL) {
        pe_problem(p, "", 0, 0, "invalid arguments");
        return b != NULL && b->s == NULL ? LT_ESTATE : LT_EINVAL;
    }
    lt_policy_snapshot_t *s = b->s;
    int rc;
    pe_tenant_t *t = pe_tenant_get(s, tenant, &rc);
    if (t == NULL) {
        pe_problem(p, "/tenant", 0, 0, rc == LT_EINVAL ? "invalid tenant id" : "out of memory");
        return rc;
    }
    pe_policy_t *pol = NULL;
    rc = pe_doc_load(s, id, doc, &pol, p);
    if (rc != 0)
        return rc;
    size_t idn = strlen(pol->id);
    if (pe_map_get(&t->policy_ids, pol->id, idn) != NULL) {
        pe_doc_release(pol);
        pe_problem(p, "/id", 0, 0, "policy '%s' already exists", pol->id);
        return LT_EEXIST;
    }
    pe_arena_t *a = &s->arena;
    /* The compiled conditions become the snapshot's first, so that whatever fails below
     * never leaves a reachable policy without its conditions. */
    for (size_t i = 0; i < pol->nexprs; i++) {
        if (pe_vec_push(a, &s->exprs, pol->exprs[i]) != 0) {
            for (size_t j = i; j < pol->nexprs; j++)
                lt_policy_expr_free(&pol->exprs[j]);
            goto oom;
        }
    }
    if (pe_map_put(a, &t->policy_ids, pol->id, idn, pol) != 0)
        goto oom;
    if (strcmp(pol->rtype, "*") == 0) {
        if (pe_vec_push(a, &t->any, pol) != 0)
            goto oom;
    } else {
        size_t tn = strlen(pol->rtype);
        pe_vec_t *list = pe_map_get(&t->by_type, pol->rtype, tn);
        if (list == NULL) {
            if ((list = pe_alloc(a, sizeof(*list))) == NULL || pe_map_put(a, &t->by_type, pol->rtype, tn, list) != 0)
                goto oom;
        }
        if (pe_vec_push(a, list, pol) != 0)
            goto oom;
    }
    s->stats.policies++;
    s->stats.rules += pol->nrules;
    return 0;
oom:
    /* A policy whose conditions failed to move is not in any list (lists come after). */
    pe_problem(p, "", 0, 0, "out of memory");
    return LT_ENOMEM;
}

/* ---- finish: role inheritance ---------------------------------------------------------------- */

static bool names_has(const char *const *names, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] == x || strcmp(names[i], x) == 0)
            return true;
    return false;
}

/*
 * Depth-first over parents with the usual three colours; the recursion depth is bounded by
 * PE_MAX_INHERIT_DEPTH, so a long chain is refused rather than exhausting the stack.
 */
static int resolve_role(lt_policy_snapshot_t *s, pe_role_t *r, int depth, lt_policy_problem_t *p)
{
    if (r->mark == 2)
        return 0;
    if (r->mark == 1) {
        pe_problem(p, "/parents", 0, 0, "role inheritance cycle through '%s'%s%s", r->name,
                   r->tenant->id != NULL ? " in tenant " : "", r->tenant->id != NULL ? r->tenant->id : "");
        return LT_EINVAL;
    }
    if (depth > PE_MAX_INHERIT_DEPTH) {
        pe_problem(p, "/parents", 0, 0, "role inheritance deeper than %d levels at '%s'", PE_MAX_INHERIT_DEPTH,
                   r->name);
        return LT_EINVAL;
    }
    r->mark = 1;
    pe_arena_t *a = &s->arena;
    const pe_role_t **pr = pe_alloc(a, (r->nparents ? r->nparents : 1) * sizeof(*pr));
    if (pr == NULL)
        return LT_ENOMEM;
    size_t nnames = 1, nperms = r->nperms;
    for (size_t i = 0; i < r->nparents; i++) {
        pe_role_t *parent = (pe_role_t *)pe_role_lookup(s, r->tenant, r->parents[i], strlen(r->parents[i]));
        if (parent == NULL) {
            pe_problem(p, "/parents", 0, 0, "role '%s'%s%s inherits '%s', which no role defines", r->name,
                       r->tenant->id != NULL ? " in tenant " : "", r->tenant->id != NULL ? r->tenant->id : "",
                       r->parents[i]);
            return LT_EINVAL;
        }
        int rc = resolve_role(s, parent, depth + 1, p);
        if (rc != 0)
            return rc;
        pr[i] = parent;
        nnames += parent->nnames;
        nperms += parent->neff;
    }
    r->names = pe_alloc(a, nnames * sizeof(*r->names));
    r->eff = pe_alloc(a, (nperms ? nperms : 1) * sizeof(*r->eff));
    r->roles = pe_alloc(a, nnames * sizeof(*r->roles));
    if (r->names == NULL || r->eff == NULL || r->roles == NULL)
        return LT_ENOMEM;
    r->names[r->nnames] = r->name;
    r->roles[r->nnames++] = r;
    for (size_t i = 0; i < r->nperms; i++)
        r->eff[r->neff++] = &r->perms[i];
    for (size_t i = 0; i < r->nparents; i++) {
        for (size_t j = 0; j < pr[i]->nnames; j++)
            if (!names_has(r->names, r->nnames, pr[i]->names[j])) {
                r->names[r->nnames] = pr[i]->names[j];
                r->roles[r->nnames++] = pr[i]->roles[j];
            }
        for (size_t j = 0; j < pr[i]->neff; j++) {
            bool dup = false;
            for (size_t k = 0; k < r->neff && !dup; k++)
                dup = strcmp(r->eff[k]->text, pr[i]->eff[j]->text) == 0;
            if (!dup)
                r->eff[r->neff++] = pr[i]->eff[j];
        }
    }
    r->mark = 2;
    return 0;
}

/* A known subject's effective roles, permissions and the view conditions read. */
static int resolve_subject(lt_policy_snapshot_t *s, pe_subject_t *sb)
{
    pe_arena_t *a = &s->arena;
    size_t nnames = 0, nperms = 0;
    for (size_t i = 0; i < sb->nassigned; i++) {
        const pe_role_t *r = pe_role_lookup(s, sb->tenant, sb->assigned[i], strlen(sb->assigned[i]));
        nnames += r != NULL ? r->nnames : 1;
        nperms += r != NULL ? r->neff : 0;
    }
    sb->names = pe_alloc(a, (nnames ? nnames : 1) * sizeof(*sb->names));
    sb->name_json = pe_alloc(a, (nnames ? nnames : 1) * sizeof(*sb->name_json));
    sb->perms = pe_alloc(a, (nperms ? nperms : 1) * sizeof(*sb->perms));
    if (sb->names == NULL || sb->perms == NULL || sb->name_json == NULL)
        return LT_ENOMEM;
    json_t *roles = json_array();
    if (roles == NULL || pe_keep_json(s, roles) != 0)
        return LT_ENOMEM;
    for (size_t i = 0; i < sb->nassigned; i++) {
        const pe_role_t *r = pe_role_lookup(s, sb->tenant, sb->assigned[i], strlen(sb->assigned[i]));
        if (r == NULL) {
            if (!names_has(sb->names, sb->nnames, sb->assigned[i])) {
                json_t *js = json_string(sb->assigned[i]);
                if (js == NULL || json_array_append_new(roles, js) != 0)
                    return LT_ENOMEM;
                sb->names[sb->nnames++] = sb->assigned[i];
            }
            continue;
        }
        for (size_t j = 0; j < r->nnames; j++)
            if (!names_has(sb->names, sb->nnames, r->names[j])) {
                sb->names[sb->nnames++] = r->names[j];
                if (json_array_append(roles, r->roles[j]->name_json) != 0)
                    return LT_ENOMEM;
            }
        for (size_t j = 0; j < r->neff; j++) {
            bool dup = false;
            for (size_t k = 0; k < sb->nperms && !dup; k++)
                dup = strcmp(sb->perms[k]->text, r->eff[j]->text) == 0;
            if (!dup)
                sb->perms[sb->nperms++] = r->eff[j];
        }
    }
    /* reserved: {type, id, tenant, roles}; view: attributes overlaid with reserved */
    sb->reserved = json_pack("{s:s, s:s, s:O, s:O}", "type", sb->type, "id", sb->id, "tenant",
                             sb->tenant->id_json != NULL ? sb->tenant->id_json : json_null(), "roles", roles);
    if (sb->reserved == NULL || pe_keep_json(s, sb->reserved) != 0)
        return LT_ENOMEM;
    sb->view = sb->attrs != NULL ? json_copy(sb->attrs) : json_object();
    if (sb->view == NULL || pe_keep_json(s, sb->view) != 0 || json_object_update(sb->view, sb->reserved) != 0)
        return LT_ENOMEM;
    return 0;
}

int lt_policy_builder_finish(lt_policy_builder_t *b, lt_policy_snapshot_t **out, lt_policy_problem_t *p)
{
    clear_problem(p);
    if (out != NULL)
        *out = NULL;
    if (b == NULL || out == NULL || b->s == NULL) {
        pe_problem(p, "", 0, 0, "invalid arguments");
        return b != NULL && b->s == NULL ? LT_ESTATE : LT_EINVAL;
    }
    lt_policy_snapshot_t *s = b->s;
    b->s = NULL;
    int rc = 0;
    /* global first (tenant roles may inherit global ones), then each tenant */
    for (size_t ti = 0; ti <= s->tenant_list.n && rc == 0; ti++) {
        pe_tenant_t *t = ti == 0 ? &s->global : s->tenant_list.items[ti - 1];
        for (size_t i = 0; i < t->role_list.n && rc == 0; i++)
            rc = resolve_role(s, t->role_list.items[i], 0, p);
    }
    for (size_t ti = 0; ti <= s->tenant_list.n && rc == 0; ti++) {
        pe_tenant_t *t = ti == 0 ? &s->global : s->tenant_list.items[ti - 1];
        for (size_t i = 0; i < t->subject_list.n && rc == 0; i++)
            rc = resolve_subject(s, t->subject_list.items[i]);
    }
    if (rc != 0) {
        if (rc == LT_ENOMEM)
            pe_problem(p, "", 0, 0, "out of memory");
        snapshot_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- forward-auth's identity headers --------------------------------------------------- */

size_t lt_policy_subject_roles(const lt_policy_snapshot_t *s, const char *tenant, const char *type, const char *id,
                               const char **out, size_t max)
{
    char key[PE_MAX_ID + PE_MAX_SUBJECT_ID + 2];
    size_t tn = type != NULL ? strlen(type) : PE_MAX_ID + 1, in = id != NULL ? strlen(id) : 0;
    if (s == NULL || tn > PE_MAX_ID || in > PE_MAX_SUBJECT_ID)
        return 0;
    memcpy(key, type, tn + 1);
    memcpy(key + tn + 1, id, in);
    /* the same lookup as a decision's: the tenant's subjects, then the global ones */
    const pe_tenant_t *t = pe_tenant_find(s, tenant);
    const pe_subject_t *sb = t != NULL ? pe_map_get(&t->subjects, key, tn + 1 + in) : NULL;
    if (sb == NULL && t != &s->global)
        sb = pe_map_get(&s->global.subjects, key, tn + 1 + in);
    size_t n = 0;
    for (size_t i = 0; sb != NULL && i < sb->nnames && n < max; i++)
        out[n++] = sb->names[i];
    return n;
}
