/*
 * policy/admin.c: statements of the policy and role administration (see admin.h).
 */
#include "policy/admin.h"

lt_store_stmt_t lt_policy_stmts[LT_POLICY_NSTMTS] = {
    [LT_POLICY_ROLE_CREATE] = {"policy.role_create",
                               "SELECT code, body FROM latch_admin_role_create($1::uuid, $2::uuid, $3, $4, $5::text[],"
                               " $6::text[], $7, $8, $9)",
                               9, 0},
    [LT_POLICY_ROLE_GET] = {"policy.role_get", "SELECT latch_admin_role_get($1::uuid, $2::uuid)", 2, 0},
    [LT_POLICY_ROLE_LIST] = {"policy.role_list", "SELECT latch_admin_role_list($1::uuid)", 1, 0},
    [LT_POLICY_ROLE_PATCH] = {"policy.role_patch",
                              "SELECT code, body FROM latch_admin_role_patch($1::uuid, $2::uuid, $3, $4::text[],"
                              " $5::text[], $6, $7, $8)",
                              8, 0},
    [LT_POLICY_ROLE_DELETE] = {"policy.role_delete", "SELECT latch_admin_role_delete($1::uuid, $2::uuid, $3, $4, $5)",
                               5, 0},
    [LT_POLICY_SUBJECT_ROLES] = {"policy.subject_roles", "SELECT latch_admin_subject_roles($1::uuid, $2, $3)", 3, 0},
    [LT_POLICY_SUBJECT_SET] = {"policy.subject_roles_set",
                               "SELECT code, body FROM latch_admin_subject_roles_set($1::uuid, $2, $3, $4::text[], $5,"
                               " $6, $7)",
                               7, 0},
    [LT_POLICY_PUT] = {"policy.put",
                       "SELECT code, body FROM latch_admin_policy_put($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6, $7, $8)",
                       8, 0},
    [LT_POLICY_GET] = {"policy.get", "SELECT latch_admin_policy_get($1::uuid, $2::uuid, $3)", 3, 0},
    [LT_POLICY_LIST] = {"policy.list", "SELECT latch_admin_policy_list($1::uuid, $2::uuid)", 2, 0},
    [LT_POLICY_VERSIONS] = {"policy.versions", "SELECT latch_admin_policy_versions($1::uuid, $2::uuid, $3)", 3, 0},
    [LT_POLICY_ROLLBACK] = {"policy.rollback",
                            "SELECT code, body FROM latch_admin_policy_rollback($1::uuid, $2::uuid, $3, $4::integer,"
                            " $5, $6, $7)",
                            7, 0},
    [LT_POLICY_DELETE] = {"policy.delete", "SELECT latch_admin_policy_delete($1::uuid, $2::uuid, $3, $4, $5, $6)", 6, 0},
};

int lt_policy_statements(void)
{
    return lt_store_stmt_register(lt_policy_stmts, LT_POLICY_NSTMTS);
}
