/*
 * revoke: the statement that revokes one access token by jti (POST /oauth2/revoke), in the
 * token module because the revocation log is the token module's (sql/0006).
 */
#ifndef LT_TOKEN_REVOKE_H
#define LT_TOKEN_REVOKE_H

#include "store/store.h"

/* latch_access_token_revoke(jti, tenant uuid, exp unix, actor, ip, request_id) -> seq or NULL. */
extern lt_store_stmt_t lt_token_stmt_revoke_jti;

/** Registers the token module's statements. @return as lt_store_stmt_register. */
int lt_token_statements(void) LT_MUSTCHECK;

#endif
