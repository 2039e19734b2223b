#include "token/revoke.h"

lt_store_stmt_t lt_token_stmt_revoke_jti = {
    "token.revoke_jti", "SELECT latch_access_token_revoke($1, $2::uuid, $3::bigint, $4, $5, $6)", 6, 0};

int lt_token_statements(void)
{
    return lt_store_stmt_register(&lt_token_stmt_revoke_jti, 1);
}
