/*
 * policy/admin: the prepared statements behind /v1/admin/roles, /v1/admin/policies and
 * the role assignments of users and clients (sql/0011_policy.sql holds the functions, the
 * scoping rules and the cycle check). Parameters are text, NULL meaning SQL NULL; arrays
 * are PostgreSQL text[] literals, JSON is text.
 */
#ifndef LT_POLICY_ADMIN_H
#define LT_POLICY_ADMIN_H

#include "store/store.h"

enum {
    LT_POLICY_ROLE_CREATE,    /* scope, tenant, name, description, permissions[], parents[], actor, ip, rid -> (code, body) */
    LT_POLICY_ROLE_GET,       /* scope, id -> jsonb */
    LT_POLICY_ROLE_LIST,      /* scope -> jsonb {items, next_cursor} */
    LT_POLICY_ROLE_PATCH,     /* scope, id, description, permissions[], parents[], actor, ip, rid -> (code, body) */
    LT_POLICY_ROLE_DELETE,    /* scope, id, actor, ip, rid -> text */
    LT_POLICY_SUBJECT_ROLES,  /* scope, kind (user|client), id -> jsonb {roles} */
    LT_POLICY_SUBJECT_SET,    /* scope, kind, id, roles[], actor, ip, rid -> (code, body) */
    LT_POLICY_PUT,            /* scope, tenant, id, resource_type, document, actor, ip, rid -> (code, body) */
    LT_POLICY_GET,            /* scope, tenant, id -> jsonb */
    LT_POLICY_LIST,           /* scope, tenant -> jsonb {items, next_cursor} */
    LT_POLICY_VERSIONS,       /* scope, tenant, id -> jsonb {items} */
    LT_POLICY_ROLLBACK,       /* scope, tenant, id, version, actor, ip, rid -> (code, body) */
    LT_POLICY_DELETE,         /* scope, tenant, id, actor, ip, rid -> boolean */
    LT_POLICY_NSTMTS
};

extern lt_store_stmt_t lt_policy_stmts[LT_POLICY_NSTMTS];

/** @return as lt_store_stmt_register. */
int lt_policy_statements(void) LT_MUSTCHECK;

#endif
