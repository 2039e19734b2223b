/*
 * policy/engine_internal.h: what the engine's files share (engine.h is the API).
 *
 *   engine.c    arena, vectors, maps; snapshots, the builder, role inheritance
 *   document.c  policy documents: validation with every problem, loading with compilation
 *   decide.c    decisions, explanations, test cases
 */
#ifndef LT_POLICY_ENGINE_INTERNAL_H
#define LT_POLICY_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/engine.h"
#include "policy/internal.h"

/* Limits: documents and roles come from administrators, but a snapshot is rebuilt on every
 * change and decisions walk these lists, so each is bounded. */
#define PE_MAX_ROLE_NAME 64
#define PE_MAX_NAME 128          /* rule ids, role names in rules, actions */
#define PE_MAX_ID 128            /* policy ids, tenant ids, resource and subject types */
#define PE_MAX_SUBJECT_ID 256
#define PE_MAX_RULES 1000        /* rules per document */
#define PE_MAX_DERIVED 64        /* derived roles per document: one bit each per decision */
#define PE_MAX_VARIABLES 64
#define PE_MAX_LIST 64           /* actions, roles or parent_roles of one rule or derived role */
#define PE_MAX_DOC_SOURCE (256 * 1024) /* condition and variable source bytes per document */
#define PE_MAX_ROLE_PERMS 1000
#define PE_MAX_ROLE_PARENTS 64
#define PE_MAX_SUBJECT_ROLES 256
#define PE_MAX_INHERIT_DEPTH 64

/* The engine's allocations share the condition compiler's bump allocator. */
typedef lt__arena_t pe_arena_t;

void *pe_alloc(pe_arena_t *a, size_t n); /* zeroed */
void pe_arena_free(pe_arena_t *a);
char *pe_strndup(pe_arena_t *a, const char *s, size_t n);
char *pe_strdup(pe_arena_t *a, const char *s);

typedef struct pe_vec {
    void **items;
    size_t n, cap;
} pe_vec_t;
int pe_vec_push(pe_arena_t *a, pe_vec_t *v, void *x);

typedef struct pe_slot {
    const char *k;
    size_t n;
    uint64_t h;
    void *v;
} pe_slot_t;
typedef struct pe_map {
    pe_slot_t *slots;
    size_t cap, n;
} pe_map_t;
void *pe_map_get(const pe_map_t *m, const char *k, size_t n);
int pe_map_put(pe_arena_t *a, pe_map_t *m, const char *k, size_t n, void *v);

/* ---- the model ----------------------------------------------------------------------- */

typedef struct pe_perm {
    const char *type, *action;
    const char *text;     /* "type:action" */
    const char *deciding; /* "rbac:<role that holds it>:<text>" */
} pe_perm_t;

typedef struct pe_tenant pe_tenant_t;
typedef struct pe_role pe_role_t;
struct pe_role {
    const char *name;
    pe_tenant_t *tenant;
    json_t *name_json;
    pe_perm_t *perms; /* its own */
    size_t nperms;
    const char **parents;
    size_t nparents;
    int mark; /* resolution: 0 new, 1 in progress, 2 done */
    /* resolved at finish */
    const pe_perm_t **eff; /* own and inherited, deduped by text */
    size_t neff;
    const char **names; /* itself and every ancestor */
    const pe_role_t **roles; /* the same, as roles */
    size_t nnames;
};

typedef struct pe_subject {
    const char *type, *id;
    pe_tenant_t *tenant;
    const char **assigned;
    size_t nassigned;
    json_t *attrs; /* may be NULL */
    /* resolved at finish */
    const char **names; /* effective role names (assigned names no role defines included) */
    size_t nnames;
    json_t **name_json;
    const pe_perm_t **perms;
    size_t nperms;
    json_t *reserved; /* {type, id, tenant, roles} */
    json_t *view;     /* attributes overlaid with reserved */
} pe_subject_t;

typedef struct pe_derived {
    const char *name;
    const char **parents; /* any role when none */
    size_t nparents;
    lt_policy_expr_t *when;
} pe_derived_t;

typedef struct pe_rule_role {
    const char *name;
    int derived; /* index into the policy's derived roles, or -1 */
} pe_rule_role_t;

typedef struct pe_rule {
    const char *id;
    const char *deciding; /* "<policy id>#<rule id>" */
    bool deny;
    bool any_action;
    const char **actions;
    size_t nactions;
    pe_rule_role_t *roles; /* any subject when nroles == 0 */
    size_t nroles;
    bool needs_derived;
    lt_policy_expr_t *when; /* NULL: always */
} pe_rule_t;

typedef struct pe_policy {
    const char *id;
    const char *rtype;
    pe_derived_t *derived;
    size_t nderived;
    pe_rule_t *rules; /* deny rules first, then allow rules, each in document order */
    size_t nrules, ndeny;
    lt_policy_expr_t **exprs; /* every compiled condition, for ownership */
    size_t nexprs;
} pe_policy_t;

struct pe_tenant {
    const char *id; /* NULL: global */
    json_t *id_json;
    pe_map_t roles;    /* name -> pe_role_t */
    pe_map_t subjects; /* "type\0id" -> pe_subject_t */
    pe_map_t by_type;  /* resource type -> pe_vec_t of pe_policy_t */
    pe_vec_t any;      /* policies for every type */
    pe_map_t policy_ids;
    pe_vec_t role_list, subject_list;
};

struct lt_policy_snapshot {
    atomic_int refs;
    pe_arena_t arena;
    pe_tenant_t global;
    pe_map_t tenants; /* id -> pe_tenant_t */
    pe_vec_t tenant_list;
    pe_vec_t exprs; /* owned conditions */
    pe_vec_t jsons; /* owned references */
    lt_policy_stats_t stats;
};

void pe_problem(lt_policy_problem_t *p, const char *where, int line, int col, const char *fmt, ...)
    LT_PRINTF(5, 6);
/* Drops the bytes of UTF-8 sequences that a bounded snprintf ("%.64s", a full buffer) cut
 * short anywhere in `s`: problems quote document text and become JSON strings, which must
 * be UTF-8. */
void pe_utf8_clean(char *s);
bool pe_role_name_ok(const char *s);
int pe_keep_json(lt_policy_snapshot_t *s, json_t *j);
const pe_tenant_t *pe_tenant_find(const lt_policy_snapshot_t *s, const char *id);
pe_tenant_t *pe_tenant_get(lt_policy_snapshot_t *s, const char *id, int *rc);
const pe_role_t *pe_role_lookup(const lt_policy_snapshot_t *s, const pe_tenant_t *t, const char *name, size_t n);

/*
 * Reads, checks and compiles a document into the snapshot's arena (`id` wins over the
 * document's own "id"). On success the compiled conditions are listed in the policy and are
 * still the caller's to hand over or free (pe_doc_release).
 * @return 0, LT_EINVAL (`p`: the first problem), LT_ENOMEM.
 */
int pe_doc_load(lt_policy_snapshot_t *s, const char *id, const json_t *doc, pe_policy_t **out,
                lt_policy_problem_t *p);
/* Frees a loaded policy's conditions (its arena memory stays until the snapshot goes). */
void pe_doc_release(pe_policy_t *pol);

#endif
