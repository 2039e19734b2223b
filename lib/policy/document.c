/*
 * policy/document: reading a policy document (engine.h gives its shape).
 *
 * One pass serves both callers: lt_policy_validate collects every problem (keys it does not
 * know, wrong types, duplicate ids, and each condition's compile error with its line and
 * column) into a JSON array; the builder takes the first problem and refuses the document.
 * Both compile every condition, so what validates is exactly what loads.
 *
 * Conditions may use the document's variables; an error inside a variable is reported once,
 * at /variables/NAME, however many conditions reach it.
 */
#include "policy/engine_internal.h"
#include "policy/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROBLEMS 500 /* bounds a validation answer; one more entry says there were more */

typedef struct dctx {
    pe_arena_t *a;
    json_t *list;              /* validate: every problem; NULL when loading */
    lt_policy_problem_t *first;
    size_t n;                  /* problems found */
    bool oom;
    lt_policy_expr_t **exprs;  /* compiled so far (malloc) */
    size_t nexprs, capexprs;
    size_t src_bytes, nodes;
    const lt_policy_vars_t *vars;
} dctx_t;

static void report(dctx_t *c, const char *where, int line, int col, const char *fmt, ...) LT_PRINTF(5, 6);

static void report(dctx_t *c, const char *where_in, int line, int col, const char *fmt, ...)
{
    char msg[256], where[sizeof(((lt_policy_problem_t *)0)->where)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Both may quote a member name cut mid-character ("%.64s", where_key, the bounds above):
     * JSON needs UTF-8, and a problem must not turn into an out-of-memory 500. */
    snprintf(where, sizeof(where), "%s", where_in);
    pe_utf8_clean(where);
    pe_utf8_clean(msg);
    if (c->list != NULL) {
        size_t i;
        json_t *it;
        json_array_foreach(c->list, i, it) {
            if (strcmp(json_string_value(json_object_get(it, "where")), where) == 0 &&
                strcmp(json_string_value(json_object_get(it, "message")), msg) == 0 &&
                json_integer_value(json_object_get(it, "line")) == line &&
                json_integer_value(json_object_get(it, "column")) == col)
                return;
        }
    }
    c->n++;
    if (c->n == 1 && c->first != NULL)
        pe_problem(c->first, where, line, col, "%s", msg);
    if (c->list == NULL || c->n > MAX_PROBLEMS + 1)
        return;
    json_t *p = c->n == MAX_PROBLEMS + 1
                    ? json_pack("{s:s, s:s}", "where", "", "message", "too many problems; the rest are not listed")
                    : json_pack("{s:s, s:s}", "where", where, "message", msg);
    if (p != NULL && line > 0) {
        if (json_object_set_new(p, "line", json_integer(line)) != 0 ||
            json_object_set_new(p, "column", json_integer(col)) != 0) {
            json_decref(p);
            p = NULL;
        }
    }
    if (p == NULL || json_array_append_new(c->list, p) != 0)
        c->oom = true;
}

/* Appends a JSON-pointer-escaped `name` to `where`. */
static void where_key(char *out, size_t cap, const char *prefix, const char *name)
{
    size_t o = (size_t)snprintf(out, cap, "%s/", prefix);
    for (const char *p = name; *p != '\0' && o + 3 < cap; p++) {
        if (*p == '~' || *p == '/') {
            out[o++] = '~';
            out[o++] = *p == '~' ? '0' : '1';
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static bool id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-' || ch == '.' || ch == ':' || ch == '/' || ch == '@'))
            return false;
    }
    return true;
}

static bool type_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PE_MAX_ID)
        return false;
    if (strcmp(s, "*") == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f || ch == '*' || ch == '#' || ch == '"')
            return false;
    }
    return true;
}

static bool var_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LT_POLICY_MAX_VAR_NAME || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    /* `variables.in` would not parse: keywords cannot follow a '.' (fuzz_policy_expr). */
    static const char *const keywords[] = {"true", "false", "null", "in"};
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (strcmp(s, keywords[i]) == 0)
            return false;
    return true;
}

static void unknown_keys(dctx_t *c, const json_t *obj, const char *where, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++)
            ok = strcmp(known[i], k) == 0;
        if (!ok) {
            char w[128];
            where_key(w, sizeof(w), where, k);
            report(c, w, 0, 0, "unknown key '%.64s'", k);
        }
    }
}

static void report_compile(dctx_t *c, const char *where, const lt_policy_error_t *err)
{
    if (err->var[0] != '\0') {
        char w[128];
        where_key(w, sizeof(w), "/variables", err->var);
        report(c, w, err->line, err->col, "%s", err->msg);
    } else {
        report(c, where, err->line, err->col, "%s", err->msg);
    }
}

/* Compiles a condition; NULL when it has a problem (reported). */
static lt_policy_expr_t *compile(dctx_t *c, const char *where, const json_t *src)
{
    if (!json_is_string(src)) {
        report(c, where, 0, 0, "a condition must be a string");
        return NULL;
    }
    size_t n = json_string_length(src);
    c->src_bytes += n;
    if (c->src_bytes > PE_MAX_DOC_SOURCE) {
        report(c, where, 0, 0, "the document's conditions exceed %d bytes", PE_MAX_DOC_SOURCE);
        return NULL;
    }
    if (c->nexprs == c->capexprs) {
        size_t cap = c->capexprs ? c->capexprs * 2 : 16;
        lt_policy_expr_t **e = realloc(c->exprs, cap * sizeof(*e));
        if (e == NULL) {
            c->oom = true;
            return NULL;
        }
        c->exprs = e;
        c->capexprs = cap;
    }
    lt_policy_expr_t *e = NULL;
    lt_policy_error_t err;
    int rc = lt_policy_expr_compile(json_string_value(src), n, c->vars, &e, &err);
    if (rc == LT_ENOMEM) {
        c->oom = true;
        return NULL;
    }
    if (rc != 0) {
        report_compile(c, where, &err);
        return NULL;
    }
    c->nodes += lt_policy_expr_nodes(e);
    c->exprs[c->nexprs++] = e;
    if (c->nodes > (size_t)PE_MAX_RULES * 100) {
        report(c, where, 0, 0, "the document's conditions exceed %d compiled nodes", PE_MAX_RULES * 100);
        return NULL;
    }
    return e;
}

/* A non-empty array of non-empty strings (at most PE_MAX_LIST) copied into the arena. */
static const char **string_list(dctx_t *c, const char *where, const json_t *v, size_t *n)
{
    *n = 0;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        report(c, where, 0, 0, "must be a non-empty array of strings");
        return NULL;
    }
    if (json_array_size(v) > PE_MAX_LIST) {
        report(c, where, 0, 0, "at most %d entries", PE_MAX_LIST);
        return NULL;
    }
    const char **out = pe_alloc(c->a, json_array_size(v) * sizeof(*out));
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    bool bad = false;
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        char w[128];
        snprintf(w, sizeof(w), "%s/%zu", where, i);
        const char *s = json_string_value(it);
        if (s == NULL || s[0] == '\0' || json_string_length(it) > PE_MAX_NAME || strlen(s) != json_string_length(it)) {
            report(c, w, 0, 0, "must be a non-empty string of at most %d bytes", PE_MAX_NAME);
            bad = true;
            continue;
        }
        if ((out[(*n)++] = pe_strdup(c->a, s)) == NULL) {
            c->oom = true;
            return NULL;
        }
    }
    return bad ? NULL : out;
}

static const char *const DOC_KEYS[] = {"id", "resource_type", "description", "variables", "derived_roles", "rules",
                                       NULL};
static const char *const DERIVED_KEYS[] = {"name", "parent_roles", "when", "description", NULL};
static const char *const RULE_KEYS[] = {"id", "effect", "actions", "roles", "when", "description", NULL};

static lt_policy_var_t *load_variables(dctx_t *c, const json_t *vars, size_t *nvars)
{
    *nvars = 0;
    if (vars == NULL)
        return NULL;
    if (!json_is_object(vars)) {
        report(c, "/variables", 0, 0, "must be an object of name: condition source");
        return NULL;
    }
    if (json_object_size(vars) > PE_MAX_VARIABLES) {
        report(c, "/variables", 0, 0, "at most %d variables", PE_MAX_VARIABLES);
        return NULL;
    }
    lt_policy_var_t *items = pe_alloc(c->a, (json_object_size(vars) + 1) * sizeof(*items));
    if (items == NULL) {
        c->oom = true;
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)vars, k, v) {
        char w[128];
        where_key(w, sizeof(w), "/variables", k);
        if (!var_name_ok(k)) {
            report(c, w, 0, 0, "a variable name is [A-Za-z_][A-Za-z0-9_]*, not a keyword, at most %d bytes", LT_POLICY_MAX_VAR_NAME);
            continue;
        }
        if (!json_is_string(v)) {
            report(c, w, 0, 0, "a variable must be a string (a condition)");
            continue;
        }
        c->src_bytes += json_string_length(v);
        items[*nvars] = (lt_policy_var_t){.name = k, .src = json_string_value(v), .len = json_string_length(v)};
        (*nvars)++;
    }
    return items;
}

static void check_variables(dctx_t *c, const lt_policy_vars_t *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        lt_policy_error_t err;
        int rc = lt__var_check(vs, i, &err);
        if (rc == LT_ENOMEM) {
            c->oom = true;
            return;
        }
        if (rc != 0) {
            if (err.var[0] == '\0')
                snprintf(err.var, sizeof(err.var), "%s", vs->items[i].name);
            report_compile(c, "", &err);
        }
    }
}

static void load_derived(dctx_t *c, const json_t *list, pe_policy_t *pol)
{
    if (list == NULL)
        return;
    if (!json_is_array(list)) {
        report(c, "/derived_roles", 0, 0, "must be an array");
        return;
    }
    if (json_array_size(list) > PE_MAX_DERIVED) {
        report(c, "/derived_roles", 0, 0, "at most %d derived roles", PE_MAX_DERIVED);
        return;
    }
    pol->derived = pe_alloc(c->a, (json_array_size(list) + 1) * sizeof(*pol->derived));
    if (pol->derived == NULL) {
        c->oom = true;
        return;
    }
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        char w[128], wf[160];
        snprintf(w, sizeof(w), "/derived_roles/%zu", i);
        if (!json_is_object(d)) {
            report(c, w, 0, 0, "a derived role must be an object");
            continue;
        }
        unknown_keys(c, d, w, DERIVED_KEYS);
        pe_derived_t *dr = &pol->derived[pol->nderived];
        bool ok = true;
        const char *name = json_string_value(json_object_get(d, "name"));
        snprintf(wf, sizeof(wf), "%s/name", w);
        if (name == NULL || !pe_role_name_ok(name)) {
            report(c, wf, 0, 0, "name must be 1..64 of [a-z0-9_:.-], starting with a letter");
            ok = false;
        } else {
            for (size_t j = 0; j < pol->nderived; j++)
                if (strcmp(pol->derived[j].name, name) == 0) {
                    report(c, wf, 0, 0, "derived role '%s' is defined twice", name);
                    ok = false;
                }
        }
        const json_t *parents = json_object_get(d, "parent_roles");
        if (parents != NULL) {
            snprintf(wf, sizeof(wf), "%s/parent_roles", w);
            if ((dr->parents = string_list(c, wf, parents, &dr->nparents)) == NULL)
                ok = false;
        }
        snprintf(wf, sizeof(wf), "%s/when", w);
        const json_t *when = json_object_get(d, "when");
        if (when == NULL) {
            report(c, wf, 0, 0, "a derived role needs a condition");
            ok = false;
        } else if ((dr->when = compile(c, wf, when)) == NULL) {
            ok = false;
        }
        if (ok && (dr->name = pe_strdup(c->a, name)) != NULL)
            pol->nderived++;
        else if (ok)
            c->oom = true;
    }
}

static bool load_rule(dctx_t *c, const json_t *r, size_t i, const pe_policy_t *pol, pe_rule_t *out)
{
    char w[64], wf[96];
    snprintf(w, sizeof(w), "/rules/%zu", i);
    if (!json_is_object(r)) {
        report(c, w, 0, 0, "a rule must be an object");
        return false;
    }
    unknown_keys(c, r, w, RULE_KEYS);
    bool ok = true;
    const char *id = json_string_value(json_object_get(r, "id"));
    snprintf(wf, sizeof(wf), "%s/id", w);
    if (id == NULL || !id_ok(id, PE_MAX_NAME)) {
        report(c, wf, 0, 0, "id must be 1..%d of [A-Za-z0-9_.:/@-]", PE_MAX_NAME);
        ok = false;
    } else if ((out->id = pe_strdup(c->a, id)) == NULL) {
        c->oom = true;
        return false;
    }
    const char *effect = json_string_value(json_object_get(r, "effect"));
    snprintf(wf, sizeof(wf), "%s/effect", w);
    if (effect == NULL || (strcmp(effect, "allow") != 0 && strcmp(effect, "deny") != 0)) {
        report(c, wf, 0, 0, "effect must be \"allow\" or \"deny\"");
        ok = false;
    } else {
        out->deny = strcmp(effect, "deny") == 0;
    }
    snprintf(wf, sizeof(wf), "%s/actions", w);
    const json_t *actions = json_object_get(r, "actions");
    if (actions == NULL) {
        report(c, wf, 0, 0, "actions must be a non-empty array of strings");
        ok = false;
    } else if ((out->actions = string_list(c, wf, actions, &out->nactions)) == NULL) {
        ok = false;
    } else {
        for (size_t k = 0; k < out->nactions; k++)
            out->any_action |= strcmp(out->actions[k], "*") == 0;
    }
    const json_t *roles = json_object_get(r, "roles");
    if (roles != NULL) {
        snprintf(wf, sizeof(wf), "%s/roles", w);
        size_t n;
        const char **names = string_list(c, wf, roles, &n);
        if (names == NULL) {
            ok = false;
        } else if ((out->roles = pe_alloc(c->a, n * sizeof(*out->roles))) == NULL) {
            c->oom = true;
            return false;
        } else {
            for (size_t k = 0; k < n; k++) {
                out->roles[k].name = names[k];
                out->roles[k].derived = -1;
                for (size_t j = 0; j < pol->nderived; j++)
                    if (strcmp(pol->derived[j].name, names[k]) == 0) {
                        out->roles[k].derived = (int)j;
                        out->needs_derived = true;
                    }
            }
            out->nroles = n;
        }
    }
    const json_t *when = json_object_get(r, "when");
    if (when != NULL) {
        snprintf(wf, sizeof(wf), "%s/when", w);
        if ((out->when = compile(c, wf, when)) == NULL)
            ok = false;
    }
    const json_t *desc = json_object_get(r, "description");
    if (desc != NULL && !json_is_string(desc)) {
        snprintf(wf, sizeof(wf), "%s/description", w);
        report(c, wf, 0, 0, "description must be a string");
        ok = false;
    }
    return ok;
}

/*
 * The shared pass. `id` NULL means the document's own id, which validation does not
 * require. @return the policy, or NULL when anything was reported (or on c->oom).
 */
static pe_policy_t *read_doc(dctx_t *c, const char *id, const json_t *doc, bool need_id)
{
    if (!json_is_object(doc)) {
        report(c, "", 0, 0, "a policy must be a JSON object");
        return NULL;
    }
    unknown_keys(c, doc, "", DOC_KEYS);
    pe_policy_t *pol = pe_alloc(c->a, sizeof(*pol));
    if (pol == NULL) {
        c->oom = true;
        return NULL;
    }
    const json_t *jid = json_object_get(doc, "id");
    if (jid != NULL && (!json_is_string(jid) || !id_ok(json_string_value(jid), PE_MAX_ID)))
        report(c, "/id", 0, 0, "id must be 1..%d of [A-Za-z0-9_.:/@-]", PE_MAX_ID);
    const char *pid = id != NULL ? id : json_string_value(jid);
    if (id != NULL && !id_ok(id, PE_MAX_ID))
        report(c, "/id", 0, 0, "policy id must be 1..%d of [A-Za-z0-9_.:/@-]", PE_MAX_ID);
    if (pid == NULL && need_id)
        report(c, "/id", 0, 0, "the policy has no id");
    const char *rtype = json_string_value(json_object_get(doc, "resource_type"));
    if (rtype == NULL || !type_ok(rtype))
        report(c, "/resource_type", 0, 0, "resource_type must be a type name (no spaces, '*', '#') or \"*\"");
    const json_t *desc = json_object_get(doc, "description");
    if (desc != NULL && !json_is_string(desc))
        report(c, "/description", 0, 0, "description must be a string");
    if ((pol->id = pe_strdup(c->a, pid != NULL ? pid : "")) == NULL ||
        (pol->rtype = pe_strdup(c->a, rtype != NULL ? rtype : "")) == NULL) {
        c->oom = true;
        return NULL;
    }

    size_t nvars = 0;
    lt_policy_var_t *items = load_variables(c, json_object_get(doc, "variables"), &nvars);
    lt_policy_vars_t vs = {items, nvars};
    c->vars = &vs;
    check_variables(c, &vs);

    load_derived(c, json_object_get(doc, "derived_roles"), pol);

    const json_t *rules = json_object_get(doc, "rules");
    if (!json_is_array(rules) || json_array_size(rules) == 0) {
        report(c, "/rules", 0, 0, "rules must be a non-empty array");
    } else if (json_array_size(rules) > PE_MAX_RULES) {
        report(c, "/rules", 0, 0, "at most %d rules per document", PE_MAX_RULES);
    } else {
        size_t n = json_array_size(rules);
        pe_rule_t *tmp = pe_alloc(c->a, n * sizeof(*tmp));
        pol->rules = pe_alloc(c->a, n * sizeof(*pol->rules));
        if (tmp == NULL || pol->rules == NULL) {
            c->oom = true;
            c->vars = NULL;
            return NULL;
        }
        for (size_t i = 0; i < n && !c->oom; i++) {
            (void)load_rule(c, json_array_get(rules, i), i, pol, &tmp[i]);
            for (size_t j = 0; j < i; j++)
                if (tmp[i].id != NULL && tmp[j].id != NULL && strcmp(tmp[j].id, tmp[i].id) == 0) {
                    char w[64];
                    snprintf(w, sizeof(w), "/rules/%zu/id", i);
                    report(c, w, 0, 0, "rule id '%s' is used twice", tmp[i].id);
                }
        }
        /* deny rules first: a decision looks at every deny before any allow */
        for (int pass = 1; pass >= 0; pass--)
            for (size_t i = 0; i < n; i++)
                if ((int)tmp[i].deny == pass)
                    pol->rules[pol->nrules++] = tmp[i];
        for (size_t i = 0; i < n; i++)
            pol->ndeny += tmp[i].deny;
        for (size_t i = 0; i < pol->nrules && !c->oom; i++) {
            pe_rule_t *r = &pol->rules[i];
            size_t dn = strlen(pol->id) + 1 + (r->id != NULL ? strlen(r->id) : 0) + 1;
            char *d = pe_alloc(c->a, dn);
            if (d == NULL) {
                c->oom = true;
                break;
            }
            snprintf(d, dn, "%s#%s", pol->id, r->id != NULL ? r->id : "");
            r->deciding = d;
        }
    }
    c->vars = NULL;
    if (c->n > 0 || c->oom)
        return NULL;
    return pol;
}

static void free_exprs(dctx_t *c)
{
    for (size_t i = 0; i < c->nexprs; i++)
        lt_policy_expr_free(&c->exprs[i]);
    free(c->exprs);
    c->exprs = NULL;
    c->nexprs = 0;
}

int pe_doc_load(lt_policy_snapshot_t *s, const char *id, const json_t *doc, pe_policy_t **out,
                lt_policy_problem_t *p)
{
    dctx_t c = {.a = &s->arena, .first = p};
    *out = NULL;
    pe_policy_t *pol = read_doc(&c, id, doc, true);
    if (pol == NULL) {
        free_exprs(&c);
        if (c.oom) {
            pe_problem(p, "", 0, 0, "out of memory");
            return LT_ENOMEM;
        }
        return LT_EINVAL;
    }
    pol->exprs = pe_alloc(&s->arena, (c.nexprs ? c.nexprs : 1) * sizeof(*pol->exprs));
    if (pol->exprs == NULL) {
        free_exprs(&c);
        pe_problem(p, "", 0, 0, "out of memory");
        return LT_ENOMEM;
    }
    if (c.nexprs > 0)
        memcpy(pol->exprs, c.exprs, c.nexprs * sizeof(*pol->exprs));
    pol->nexprs = c.nexprs;
    free(c.exprs);
    *out = pol;
    return 0;
}

void pe_doc_release(pe_policy_t *pol)
{
    for (size_t i = 0; pol != NULL && i < pol->nexprs; i++)
        lt_policy_expr_free(&pol->exprs[i]);
}

json_t *lt_policy_validate(const json_t *doc)
{
    json_t *list = json_array();
    if (list == NULL)
        return NULL;
    pe_arena_t a = {0};
    dctx_t c = {.a = &a, .list = list};
    (void)read_doc(&c, NULL, doc, false);
    free_exprs(&c);
    pe_arena_free(&a);
    if (c.oom) {
        json_decref(list);
        return NULL;
    }
    return list;
}
