/*
 * policy/engine: decisions. RBAC (roles granting `resource_type:action` permissions with
 * `*` wildcards, inheriting other roles) and ABAC policy documents (rules with conditions
 * in the language of policy/expr.h, derived roles, shared variables), combined: an explicit
 * deny wins; otherwise any matching allow (an RBAC permission, or an allow rule) allows;
 * otherwise deny.
 *
 * Everything a decision reads is one immutable snapshot, built once by a builder from rows
 * the caller loaded (the store layer, not this module, talks to PostgreSQL) and shared by
 * reference count: workers take a reference, decide without locks or database trips, and
 * drop it; a new snapshot replaces the old one atomically (lt_holder_t in base).
 *
 * Tenancy: roles, policies and subjects belong to a tenant (a tenant id string) or are
 * global (tenant NULL). A decision is made within one tenant and sees that tenant's
 * objects plus the global ones, never another tenant's.
 *
 * The request as conditions see it (AuthZEN Authorization API 1.0 names, flattened so
 * policies stay short):
 *   subject   {type, id, tenant, roles: [effective role names], <property>: ...}
 *   resource  {type, id, <property>: ...}
 *   action    {name, <property>: ...}
 *   context   the request's context object as given
 * The reserved keys win over properties of the same name; subject.tenant is the decision's
 * tenant (null when it has none). For a subject known to the snapshot (a Latch user or
 * client, by type and id within the tenant, else among the global subjects), its stored
 * roles and attributes win over what the caller sent; for an unknown subject the caller's
 * `properties.roles` (array of strings) are its roles, resolved in the tenant then globally.
 *
 * Policy document (JSON; one resource type each):
 *   {
 *     "id": "documents",                       optional here: the store names documents
 *     "resource_type": "document",             "*" applies to every type
 *     "variables": {"is_owner": "resource.owner == subject.id"},
 *     "derived_roles": [{"name": "owner", "parent_roles": ["user"], "when": "variables.is_owner"}],
 *     "rules": [{"id": "owner-edit", "effect": "allow", "actions": ["read", "edit"],
 *                "roles": ["owner"], "when": "!resource.archived"}]
 *   }
 * A derived role is granted when the subject has one of its parent_roles (any role when
 * absent) and its condition holds. A rule matches when the action is in `actions` ("*"
 * matches any), the subject has one of `roles` (effective or derived; any subject when
 * absent) and `when` holds (absent: always). A condition that errs (step limit) makes an
 * allow rule not match and a deny rule match: errors fail closed.
 *
 * Order, which fixes `deciding`: deny rules of the applicable policies (the tenant's for the
 * resource type, the tenant's "*", the global type, the global "*"; each in document order),
 * then the effective roles' RBAC permissions, then allow rules in the same policy order; the
 * first match decides.
 *
 * Reserved resource types: those starting "latch:" are the admin API's own (latchd asks
 * "may this user do latch:users:write?"). A "*" type, in a permission or a policy, does not
 * cover them, and only global policies written for exactly that type apply.
 *
 * Thread-safety: a builder belongs to one thread; a finished snapshot is immutable and
 * safe from any number of threads.
 */
#ifndef LT_POLICY_ENGINE_H
#define LT_POLICY_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "policy/expr.h"

typedef struct lt_policy_snapshot lt_policy_snapshot_t;
typedef struct lt_policy_builder lt_policy_builder_t;

/* A problem in a role or a policy document: where (JSON pointer-ish path such as
 * "/rules/2/when"), and for conditions the line and column inside that string. */
typedef struct lt_policy_problem {
    char where[128];
    int line, col; /* 0 when not about a position inside a condition */
    char msg[256];
} lt_policy_problem_t;

/* ---- building a snapshot ------------------------------------------------------------- */

/** @return a new builder, or NULL when out of memory. */
lt_policy_builder_t *lt_policy_builder_new(void);
void lt_policy_builder_free(lt_policy_builder_t *b);

/**
 * A role: `name` (1..64 of [a-z0-9_:.-], starting with a letter) in `tenant` (NULL:
 * global), granting `perms` ("type:action", either side "*"; one '*' alone means "*:*";
 * split at the last ':', so "latch:users:write" is the action "write" on "latch:users")
 * and inheriting `parents` (names resolved in the same tenant first, then global).
 * @return 0, LT_EINVAL (malformed; `p` says why), LT_EEXIST (the name is taken in that
 *         tenant), LT_ENOMEM.
 */
int lt_policy_builder_role(lt_policy_builder_t *b, const char *tenant, const char *name, const char *const *perms,
                           size_t nperms, const char *const *parents, size_t nparents, lt_policy_problem_t *p) LT_MUSTCHECK;

/**
 * A policy document `doc` (see above) named `id` in `tenant` (NULL: global). Every
 * condition is compiled here; a document with any problem is refused whole.
 * @return 0, LT_EINVAL (`p` says where and why), LT_EEXIST (id taken in that tenant), LT_ENOMEM.
 */
int lt_policy_builder_policy(lt_policy_builder_t *b, const char *tenant, const char *id, const json_t *doc,
                             lt_policy_problem_t *p) LT_MUSTCHECK;

/**
 * A subject the snapshot knows (Latch users: type "user", id the user id; OAuth clients:
 * type "client", id the client_id) with its directly assigned roles and stored attributes
 * (an object, may be NULL). Role names that no role defines are kept: they still match
 * `roles` of rules and derived roles, they just grant no permission.
 * @return 0, LT_EINVAL, LT_EEXIST, LT_ENOMEM.
 */
int lt_policy_builder_subject(lt_policy_builder_t *b, const char *tenant, const char *type, const char *id,
                              const char *const *roles, size_t nroles, const json_t *attributes) LT_MUSTCHECK;

/**
 * Resolves role inheritance (a cycle is refused, `p` naming a role on it, as is a parent
 * that no role defines) and turns the builder's content into a snapshot with one
 * reference. The builder is emptied either way (free it after).
 * @return 0, LT_EINVAL, LT_ENOMEM.
 */
int lt_policy_builder_finish(lt_policy_builder_t *b, lt_policy_snapshot_t **out, lt_policy_problem_t *p) LT_MUSTCHECK;

/**
 * Validates one document without building anything (for /v1/admin/policies/validate):
 * every problem found, not just the first, as an array of {where, line?, column?, message}
 * (a new reference; empty when valid). NULL when out of memory.
 */
json_t *lt_policy_validate(const json_t *doc);

void lt_policy_snapshot_incref(lt_policy_snapshot_t *s);
void lt_policy_snapshot_decref(lt_policy_snapshot_t *s);

/* Counts for metrics and logs. */
typedef struct lt_policy_stats {
    size_t roles, policies, rules, subjects;
} lt_policy_stats_t;
void lt_policy_snapshot_stats(const lt_policy_snapshot_t *s, lt_policy_stats_t *out);

/* ---- deciding ------------------------------------------------------------------------ */

/*
 * One question, in AuthZEN shape. subject/resource/action are the request's objects
 * ({type, id, properties?}, {type, id, properties?}, {name, properties?}); context may be
 * NULL. All are borrowed for the call.
 */
typedef struct lt_policy_request {
    const char *tenant; /* the caller's tenant: what the decision may see */
    const json_t *subject, *resource, *action, *context;
    int64_t now_us;     /* wall clock, microseconds since the epoch (conditions' `now`) */
    int explain;        /* fill lt_policy_decision_t.explanation */
} lt_policy_request_t;

typedef struct lt_policy_decision {
    int allow;
    /* What decided: a rule id ("<policy id>#<rule id>"), "rbac:<role>:<permission>", or
     * "default" (nothing matched). Points into the snapshot: valid while it is held. */
    const char *deciding;
    /* With explain: {decision, deciding, roles, derived_roles, matched: [...], denied_by?}
     * (a new reference for the caller); else NULL. roles: the subject's effective roles;
     * derived_roles: those that held (all of the applicable policies are evaluated);
     * matched: every deny rule, RBAC permission and allow rule that matched, as deciding ids;
     * denied_by: the matching deny rule ids, present only when a deny decided. */
    json_t *explanation;
} lt_policy_decision_t;

/**
 * Decides `q` against snapshot `s`.
 * @return 0 (d filled), LT_EINVAL (the request lacks subject.type/id, resource.type or
 *         action.name as strings; d says deny), LT_ENOMEM.
 */
int lt_policy_decide(const lt_policy_snapshot_t *s, const lt_policy_request_t *q, lt_policy_decision_t *d) LT_MUSTCHECK;

/**
 * Runs test cases against a snapshot (for /v1/admin/policies/test): `cases` is an array of
 * {name?, subject, resource, action, context?, expected: "allow"|"deny"}; the result is
 * {passed, failed, results: [{name|index, expected, actual, deciding}]} (new reference),
 * NULL when out of memory. Cases with a malformed shape count as failed with actual "error".
 */
json_t *lt_policy_run_cases(const lt_policy_snapshot_t *s, const char *tenant, const json_t *cases, int64_t now_us);

/**
 * The effective roles (assigned and inherited, as decisions see them) of a subject the
 * snapshot knows, looked up like a decision's subject: in `tenant`, then among the global
 * subjects. Fills at most `max` names, which point into the snapshot (valid while it is
 * held). An unknown subject has none.
 * @return the number of names written.
 */
size_t lt_policy_subject_roles(const lt_policy_snapshot_t *s, const char *tenant, const char *type, const char *id,
                               const char **out, size_t max);

#endif
