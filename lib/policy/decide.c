/*
 * policy/decide: one decision against a snapshot, its explanation, and test-case runs.
 * The order of evaluation and the reuse of precomputed views are described in engine.c.
 *
 * Per decision this allocates only what it must: the flattened views when the caller sent
 * properties that have to be merged (a json_object each), an unknown subject's roles array,
 * and with explain the explanation. Small per-decision arrays live on the stack.
 */
#include "policy/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_POLICIES 32
#define STACK_NAMES 64

typedef struct dstate {
    const lt_policy_snapshot_t *s;
    lt_policy_input_t in;
    const char *rtype, *action;
    const char *const *names; /* effective role names */
    size_t nnames;
    const pe_policy_t **pols;
    size_t npols;
    uint64_t *dr_done, *dr_held, *dr_err; /* per policy, one bit per derived role */
    bool explain;
    json_t *matched, *denied_by, *derived; /* with explain */
    bool oom;
} dstate_t;

static bool has_name(const char *const *names, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], x) == 0)
            return true;
    return false;
}

static void explain_add(dstate_t *st, json_t *list, const char *s)
{
    if (list == NULL)
        return;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(json_string_value(it), s) == 0)
            return;
    }
    if (json_array_append_new(list, json_string(s)) != 0)
        st->oom = true;
}

/* 0 not held, 1 held, 2 its condition erred. Evaluated at most once per decision. */
static int derived(dstate_t *st, size_t pi, size_t di)
{
    uint64_t bit = 1ULL << di;
    if ((st->dr_done[pi] & bit) == 0) {
        const pe_derived_t *d = &st->pols[pi]->derived[di];
        bool parent = d->nparents == 0;
        for (size_t i = 0; i < d->nparents && !parent; i++)
            parent = has_name(st->names, st->nnames, d->parents[i]);
        lt_policy_result_t r = LT_POLICY_FALSE;
        if (parent && lt_policy_expr_eval(d->when, &st->in, &r) != 0)
            r = LT_POLICY_ERROR;
        st->dr_done[pi] |= bit;
        if (r == LT_POLICY_TRUE) {
            st->dr_held[pi] |= bit;
            explain_add(st, st->derived, d->name);
        } else if (r == LT_POLICY_ERROR) {
            st->dr_err[pi] |= bit;
        }
    }
    return (st->dr_held[pi] & bit) ? 1 : (st->dr_err[pi] & bit) ? 2 : 0;
}

static bool rule_matches(dstate_t *st, size_t pi, const pe_rule_t *r)
{
    if (!r->any_action) {
        bool ok = false;
        for (size_t i = 0; i < r->nactions && !ok; i++)
            ok = strcmp(r->actions[i], st->action) == 0;
        if (!ok)
            return false;
    }
    if (r->nroles > 0) {
        bool ok = false;
        for (size_t i = 0; i < r->nroles && !ok; i++)
            ok = has_name(st->names, st->nnames, r->roles[i].name);
        for (size_t i = 0; i < r->nroles && !ok && r->needs_derived; i++) {
            if (r->roles[i].derived < 0)
                continue;
            int h = derived(st, pi, (size_t)r->roles[i].derived);
            /* an erring condition fails closed: no allow, but a deny still applies */
            ok = h == 1 || (h == 2 && r->deny);
        }
        if (!ok)
            return false;
    }
    if (r->when == NULL)
        return true;
    lt_policy_result_t res = LT_POLICY_ERROR;
    if (lt_policy_expr_eval(r->when, &st->in, &res) != 0)
        res = LT_POLICY_ERROR;
    return res == LT_POLICY_TRUE || (res == LT_POLICY_ERROR && r->deny);
}

/* The admin API's own resource types (lt__api_admin_caller): a "*" type, in a permission or
 * a policy, never reaches them, and neither do tenant policies, so an application role such
 * as "*:*" or a tenant's catch-all document cannot grant administration. */
static bool reserved_type(const char *rtype)
{
    return strncmp(rtype, "latch:", 6) == 0;
}

static bool perm_matches(const pe_perm_t *p, const char *rtype, const char *action)
{
    return ((strcmp(p->type, "*") == 0 && !reserved_type(rtype)) || strcmp(p->type, rtype) == 0) &&
           (strcmp(p->action, "*") == 0 || strcmp(p->action, action) == 0);
}

/* The caller's `properties` when it is a non-empty object. */
static const json_t *props_of(const json_t *o)
{
    const json_t *p = json_object_get(o, "properties");
    return json_is_object(p) && json_object_size(p) > 0 ? p : NULL;
}

/* {reserved keys from `req`, over properties}: NULL on ENOMEM. */
static json_t *flatten(const json_t *props, const json_t *req, const char *k1, const char *k2)
{
    json_t *v = json_object();
    if (v == NULL || json_object_update(v, (json_t *)props) != 0)
        goto fail;
    json_t *x = json_object_get(req, k1);
    if (x != NULL && json_object_set(v, k1, x) != 0)
        goto fail;
    x = k2 != NULL ? json_object_get(req, k2) : NULL;
    if (x != NULL && json_object_set(v, k2, x) != 0)
        goto fail;
    return v;
fail:
    json_decref(v);
    return NULL;
}

/* Applicable policies in decision order: tenant type, tenant "*", global type, global "*"
 * (for a reserved type, the global type's only). */
static size_t collect(const lt_policy_snapshot_t *s, const pe_tenant_t *t, const char *rtype, const pe_policy_t **out,
                      size_t cap)
{
    const pe_vec_t *lists[4] = {0};
    size_t nl = 0, n = 0, rn = strlen(rtype);
    bool reserved = reserved_type(rtype);
    if (t != NULL && t != &s->global && !reserved) {
        lists[nl++] = pe_map_get(&t->by_type, rtype, rn);
        lists[nl++] = &t->any;
    }
    lists[nl++] = pe_map_get(&s->global.by_type, rtype, rn);
    if (!reserved)
        lists[nl++] = &s->global.any;
    for (size_t i = 0; i < nl; i++)
        for (size_t j = 0; lists[i] != NULL && j < lists[i]->n; j++) {
            if (n < cap)
                out[n] = lists[i]->items[j];
            n++;
        }
    return n;
}

int lt_policy_decide(const lt_policy_snapshot_t *s, const lt_policy_request_t *q, lt_policy_decision_t *d)
{
    if (d == NULL)
        return LT_EINVAL;
    d->allow = 0;
    d->deciding = "default";
    d->explanation = NULL;
    if (s == NULL || q == NULL)
        return LT_EINVAL;
    const char *stype = json_string_value(json_object_get(q->subject, "type"));
    const char *sid = json_string_value(json_object_get(q->subject, "id"));
    const char *rtype = json_string_value(json_object_get(q->resource, "type"));
    const char *action = json_string_value(json_object_get(q->action, "name"));
    if (stype == NULL || sid == NULL || rtype == NULL || action == NULL)
        return LT_EINVAL;

    int rc = LT_ENOMEM;
    dstate_t st = {.s = s, .rtype = rtype, .action = action, .explain = q->explain != 0};
    json_t *sview = NULL, *rview = NULL, *aview = NULL, *roles_arr = NULL, *tenant_json = NULL;
    const char *names_stack[STACK_NAMES];
    const char **names = names_stack;
    const pe_role_t *roles_stack[STACK_NAMES];
    const pe_role_t **roles = roles_stack;
    size_t nroles = 0;
    const pe_policy_t *pols_stack[STACK_POLICIES];
    uint64_t bits_stack[3 * STACK_POLICIES];
    st.pols = pols_stack;
    uint64_t *bits = bits_stack;

    /* ---- the subject */
    const pe_tenant_t *t = pe_tenant_find(s, q->tenant);
    const pe_subject_t *known = NULL;
    {
        char key[PE_MAX_ID + PE_MAX_SUBJECT_ID + 2];
        size_t tn = strlen(stype), in = strlen(sid);
        if (tn <= PE_MAX_ID && in <= PE_MAX_SUBJECT_ID) {
            memcpy(key, stype, tn + 1);
            memcpy(key + tn + 1, sid, in);
            if (t != NULL)
                known = pe_map_get(&t->subjects, key, tn + 1 + in);
            if (known == NULL && t != &s->global)
                known = pe_map_get(&s->global.subjects, key, tn + 1 + in);
        }
    }
    const json_t *sprops = props_of(q->subject);
    if (known != NULL) {
        st.names = known->names;
        st.nnames = known->nnames;
        /* a global subject acts within the decision's tenant: its view says so */
        bool retenant = known->tenant == &s->global && q->tenant != NULL;
        if (sprops == NULL && !retenant) {
            sview = known->view; /* borrowed: nothing to merge */
        } else {
            /* stored attributes and the reserved keys win over the caller's properties */
            if ((sview = json_object()) == NULL || (sprops != NULL && json_object_update(sview, (json_t *)sprops) != 0) ||
                (known->attrs != NULL && json_object_update(sview, known->attrs) != 0) ||
                json_object_update(sview, known->reserved) != 0)
                goto out;
            if (retenant && ((tenant_json = t != NULL ? json_incref(t->id_json) : json_string(q->tenant)) == NULL ||
                             json_object_set(sview, "tenant", tenant_json) != 0))
                goto out;
        }
    } else {
        const json_t *given = json_object_get(sprops, "roles");
        size_t ng = json_array_size(given);
        if (ng > PE_MAX_SUBJECT_ROLES) {
            rc = LT_EINVAL;
            goto out;
        }
        size_t cap = 0;
        for (size_t i = 0; i < ng; i++) {
            const json_t *e = json_array_get(given, i);
            const pe_role_t *r = json_is_string(e) ? pe_role_lookup(s, t, json_string_value(e), json_string_length(e))
                                                   : NULL;
            cap += r != NULL ? r->nnames : 1;
        }
        if (cap > STACK_NAMES || ng > STACK_NAMES) {
            names = malloc((cap + 1) * sizeof(*names));
            roles = malloc((ng + 1) * sizeof(*roles));
            if (names == NULL || roles == NULL)
                goto out;
        }
        if ((roles_arr = json_array()) == NULL)
            goto out;
        size_t nn = 0;
        for (size_t i = 0; i < ng; i++) {
            json_t *e = json_array_get(given, i);
            if (!json_is_string(e))
                continue;
            const pe_role_t *r = pe_role_lookup(s, t, json_string_value(e), json_string_length(e));
            if (r == NULL) {
                if (!has_name(names, nn, json_string_value(e))) {
                    names[nn++] = json_string_value(e);
                    if (json_array_append(roles_arr, e) != 0)
                        goto out;
                }
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < nroles && !dup; j++)
                dup = roles[j] == r;
            if (dup)
                continue;
            roles[nroles++] = r;
            for (size_t j = 0; j < r->nnames; j++)
                if (!has_name(names, nn, r->names[j])) {
                    names[nn++] = r->names[j];
                    if (json_array_append(roles_arr, r->roles[j]->name_json) != 0)
                        goto out;
                }
        }
        st.names = names;
        st.nnames = nn;
        if (t != NULL)
            tenant_json = json_incref(t->id_json != NULL ? t->id_json : json_null());
        else
            tenant_json = q->tenant != NULL ? json_string(q->tenant) : json_null();
        if (tenant_json == NULL || (sview = json_object()) == NULL ||
            (sprops != NULL && json_object_update(sview, (json_t *)sprops) != 0) ||
            json_object_set(sview, "type", json_object_get(q->subject, "type")) != 0 ||
            json_object_set(sview, "id", json_object_get(q->subject, "id")) != 0 ||
            json_object_set(sview, "tenant", tenant_json) != 0 || json_object_set(sview, "roles", roles_arr) != 0)
            goto out;
    }

    /* ---- resource and action: the caller's objects themselves when there is nothing to merge */
    const json_t *rprops = props_of(q->resource), *aprops = props_of(q->action);
    if (rprops != NULL && (rview = flatten(rprops, q->resource, "type", "id")) == NULL)
        goto out;
    if (aprops != NULL && (aview = flatten(aprops, q->action, "name", NULL)) == NULL)
        goto out;
    st.in = (lt_policy_input_t){
        .subject = sview,
        .resource = rview != NULL ? rview : q->resource,
        .action = aview != NULL ? aview : q->action,
        .context = q->context,
        .now_us = q->now_us,
    };

    /* ---- the applicable policies */
    size_t npols = collect(s, t, rtype, st.pols, STACK_POLICIES);
    if (npols > STACK_POLICIES) {
        st.pols = malloc(npols * sizeof(*st.pols));
        bits = malloc(3 * npols * sizeof(*bits));
        if (st.pols == NULL || bits == NULL)
            goto out;
        (void)collect(s, t, rtype, st.pols, npols);
    }
    st.npols = npols;
    memset(bits, 0, 3 * npols * sizeof(*bits));
    st.dr_done = bits;
    st.dr_held = bits + npols;
    st.dr_err = bits + 2 * npols;
    if (st.explain) {
        st.matched = json_array();
        st.derived = json_array();
        st.denied_by = json_array();
        if (st.matched == NULL || st.derived == NULL || st.denied_by == NULL)
            goto out;
        /* every derived role of the applicable policies, so the explanation is complete */
        for (size_t pi = 0; pi < npols; pi++)
            for (size_t di = 0; di < st.pols[pi]->nderived; di++)
                (void)derived(&st, pi, di);
    }

    /* ---- 1. deny rules */
    const char *deciding = NULL;
    for (size_t pi = 0; pi < npols && (deciding == NULL || st.explain); pi++) {
        const pe_policy_t *pol = st.pols[pi];
        for (size_t ri = 0; ri < pol->ndeny && (deciding == NULL || st.explain); ri++) {
            if (!rule_matches(&st, pi, &pol->rules[ri]))
                continue;
            if (deciding == NULL)
                deciding = pol->rules[ri].deciding;
            explain_add(&st, st.matched, pol->rules[ri].deciding);
            explain_add(&st, st.denied_by, pol->rules[ri].deciding);
        }
    }
    bool denied = deciding != NULL;

    /* ---- 2. RBAC permissions */
    if (!denied || st.explain) {
        const pe_perm_t *const *perms = known != NULL ? known->perms : NULL;
        size_t np = known != NULL ? known->nperms : 0;
        for (size_t i = 0; i < np && (deciding == NULL || st.explain); i++)
            if (perm_matches(perms[i], rtype, action)) {
                if (deciding == NULL)
                    deciding = perms[i]->deciding;
                explain_add(&st, st.matched, perms[i]->deciding);
            }
        for (size_t k = 0; k < nroles && (deciding == NULL || st.explain); k++)
            for (size_t i = 0; i < roles[k]->neff && (deciding == NULL || st.explain); i++)
                if (perm_matches(roles[k]->eff[i], rtype, action)) {
                    if (deciding == NULL)
                        deciding = roles[k]->eff[i]->deciding;
                    explain_add(&st, st.matched, roles[k]->eff[i]->deciding);
                }
    }

    /* ---- 3. allow rules */
    for (size_t pi = 0; pi < npols && (deciding == NULL || st.explain); pi++) {
        const pe_policy_t *pol = st.pols[pi];
        for (size_t ri = pol->ndeny; ri < pol->nrules && (deciding == NULL || st.explain); ri++) {
            if (!rule_matches(&st, pi, &pol->rules[ri]))
                continue;
            if (deciding == NULL)
                deciding = pol->rules[ri].deciding;
            explain_add(&st, st.matched, pol->rules[ri].deciding);
        }
    }
    if (st.oom)
        goto out;

    d->allow = !denied && deciding != NULL;
    d->deciding = deciding != NULL ? deciding : "default";
    if (st.explain) {
        /* a copy: the view's array may be the snapshot's, and the caller may edit what it gets */
        json_t *rl = json_copy(json_object_get(sview, "roles"));
        d->explanation = json_pack("{s:s, s:s, s:o, s:O, s:O}", "decision", d->allow ? "allow" : "deny", "deciding",
                                   d->deciding, "roles", rl != NULL ? rl : json_array(), "derived_roles", st.derived,
                                   "matched", st.matched);
        if (d->explanation == NULL ||
            (denied && json_object_set(d->explanation, "denied_by", st.denied_by) != 0)) {
            json_decref(d->explanation);
            d->explanation = NULL;
            d->allow = 0;
            d->deciding = "default";
            goto out;
        }
    }
    rc = 0;
out:
    if (rc != 0) {
        d->allow = 0;
        d->deciding = "default";
    }
    json_decref(st.matched);
    json_decref(st.derived);
    json_decref(st.denied_by);
    if (known == NULL || sview != known->view)
        json_decref(sview);
    json_decref(rview);
    json_decref(aview);
    json_decref(roles_arr);
    json_decref(tenant_json);
    if (names != names_stack)
        free(names);
    if (roles != roles_stack)
        free(roles);
    if (st.pols != pols_stack)
        free(st.pols);
    if (bits != bits_stack)
        free(bits);
    return rc;
}

/* ---- test cases ---------------------------------------------------------------------------- */

json_t *lt_policy_run_cases(const lt_policy_snapshot_t *s, const char *tenant, const json_t *cases, int64_t now_us)
{
    json_t *results = json_array();
    if (results == NULL)
        return NULL;
    size_t passed = 0, failed = 0, i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *expected = json_string_value(json_object_get(c, "expected"));
        const json_t *ctx = json_object_get(c, "context");
        const char *actual = "error", *deciding = NULL;
        lt_policy_decision_t d = {0};
        bool shape = json_is_object(c) && expected != NULL &&
                     (strcmp(expected, "allow") == 0 || strcmp(expected, "deny") == 0) &&
                     json_is_object(json_object_get(c, "subject")) && json_is_object(json_object_get(c, "resource")) &&
                     json_is_object(json_object_get(c, "action")) && (ctx == NULL || json_is_object(ctx));
        if (shape) {
            lt_policy_request_t q = {.tenant = tenant,
                                     .subject = json_object_get(c, "subject"),
                                     .resource = json_object_get(c, "resource"),
                                     .action = json_object_get(c, "action"),
                                     .context = ctx,
                                     .now_us = now_us};
            int rc = lt_policy_decide(s, &q, &d);
            if (rc == LT_ENOMEM)
                goto oom;
            if (rc == 0) {
                actual = d.allow ? "allow" : "deny";
                deciding = d.deciding;
            }
        }
        bool ok = strcmp(actual, "error") != 0 && strcmp(actual, expected) == 0;
        ok ? passed++ : failed++;
        const json_t *name = json_object_get(c, "name");
        json_t *r = json_pack("{s:O, s:s, s:s?}", "expected", expected != NULL ? json_object_get(c, "expected") : json_null(),
                              "actual", actual, "deciding", deciding);
        if (r == NULL)
            goto oom;
        if (json_object_set_new(r, json_is_string(name) ? "name" : "index",
                                json_is_string(name) ? json_incref((json_t *)name) : json_integer((json_int_t)i)) != 0 ||
            json_array_append_new(results, r) != 0) {
            json_decref(r);
            goto oom;
        }
    }
    json_t *out = json_pack("{s:I, s:I, s:o}", "passed", (json_int_t)passed, "failed", (json_int_t)failed, "results",
                            results);
    return out;
oom:
    json_decref(results);
    return NULL;
}
