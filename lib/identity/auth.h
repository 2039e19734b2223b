/*
 * identity/auth: the sign-in flows' side of the database: the prepared statements that call
 * the functions of sql/0004_auth.sql and sql/0007_tokens.sql (login and lockout, sessions,
 * refresh rotation with reuse detection, refresh-token introspection and revocation,
 * password change and reset), the decoding of their rows, the opaque tokens whose SHA-256
 * those functions store (refresh tokens, password-reset tokens), and the sealing of the
 * successor a rotation keeps for its grace window.
 *
 * The SQL functions carry the reasoning (lockout ordering, lock order, what is audited);
 * each statement's comment in auth.c lists its parameters. Every parameter is text and
 * NULL means SQL NULL. Decoded strings borrow from the PGresult: copy what must outlive
 * the store callback.
 *
 * No password is verified here (STYLE.md 15): the handler runs the hasher between the
 * statements of a flow.
 *
 * Threading: the statements are registered once at start-up (lt_auth_statements); the
 * other functions are pure and safe on any thread.
 */
#ifndef LT_IDENTITY_AUTH_H
#define LT_IDENTITY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "crypto/seal.h"
#include "store/store.h"

struct pg_conn;
struct pg_result;

/* ---- opaque tokens ------------------------------------------------------------------- */

/* "lt_rt_" / "lt_pr_" / "lt_mf_" + base64url of 32 random bytes (256 bits). */
#define LT_AUTH_TOKEN_PREFIX_LEN 6
#define LT_AUTH_TOKEN_LEN (LT_AUTH_TOKEN_PREFIX_LEN + 43)
/* Lower-case hex of the token's SHA-256, as the statements take it. */
#define LT_AUTH_HASH_HEX_LEN 64

typedef enum {
    LT_AUTH_TOKEN_REFRESH = 0, /* lt_rt_ */
    LT_AUTH_TOKEN_RESET = 1,   /* lt_pr_ */
    LT_AUTH_TOKEN_MFA = 2      /* lt_mf_: an MFA challenge or an enrolment-only token */
} lt_auth_token_kind_t;

/**
 * A new random token of `kind` and the hex SHA-256 of its text.
 * @return 0, or LT_EIO (no randomness; both outputs are then empty strings).
 */
int lt_auth_token_new(lt_auth_token_kind_t kind, char token[LT_AUTH_TOKEN_LEN + 1],
                      char hash_hex[LT_AUTH_HASH_HEX_LEN + 1]) LT_MUSTCHECK;

/**
 * The hex SHA-256 of a token presented by a client, after checking its shape (the prefix
 * of `kind`, then exactly 43 base64url characters), so malformed input never reaches the
 * database.
 * @return 0, or LT_EINVAL (malformed; `hash_hex` is then an empty string).
 */
int lt_auth_token_hash(lt_auth_token_kind_t kind, const char *token, size_t n,
                       char hash_hex[LT_AUTH_HASH_HEX_LEN + 1]) LT_MUSTCHECK;

/* 1 if `s` is a UUID in its canonical text form (8-4-4-4-12 hex digits), else 0. */
int lt_auth_uuid_ok(const char *s);

/*
 * The successor of a rotated refresh token is kept for the grace window (sql/0007) sealed
 * under the master key, bound to its parent by the aad "refresh_successor:<parent hash
 * hex>" so a blob copied onto another row does not open. Hex text, as the refresh
 * statement takes and returns it.
 */
#define LT_AUTH_SEALED_HEX_LEN (2 * (LT_AUTH_TOKEN_LEN + LT_SEAL_OVERHEAD))

/** Seals `token` (LT_AUTH_TOKEN_LEN chars) for the parent `parent_hash`. @return 0 or LT_EIO. */
int lt_auth_successor_seal(const lt_seal_key_t *key, const char *parent_hash, const char *token,
                           char out[LT_AUTH_SEALED_HEX_LEN + 1]) LT_MUSTCHECK;

/**
 * Opens what lt_auth_successor_seal made into `token`, checking it is a refresh token.
 * @return 0, LT_EINVAL (malformed, tampered, another parent's, not a refresh token) or
 *         LT_ENOTFOUND (sealed under a master key version not in `keys`); `token` is then "".
 */
int lt_auth_successor_open(const lt_seal_key_t *keys, size_t nkeys, const char *parent_hash, const char *hex,
                           char token[LT_AUTH_TOKEN_LEN + 1]) LT_MUSTCHECK;

/* ---- statements ---------------------------------------------------------------------- */

extern lt_store_stmt_t lt_auth_stmt_login_begin;
extern lt_store_stmt_t lt_auth_stmt_login_fail;
extern lt_store_stmt_t lt_auth_stmt_login_succeed;
extern lt_store_stmt_t lt_auth_stmt_refresh;
extern lt_store_stmt_t lt_auth_stmt_refresh_introspect;
extern lt_store_stmt_t lt_auth_stmt_refresh_revoke;
extern lt_store_stmt_t lt_auth_stmt_me;
extern lt_store_stmt_t lt_auth_stmt_session_list;
extern lt_store_stmt_t lt_auth_stmt_session_revoke;
extern lt_store_stmt_t lt_auth_stmt_logout;
extern lt_store_stmt_t lt_auth_stmt_logout_all;
extern lt_store_stmt_t lt_auth_stmt_password_change_begin;
extern lt_store_stmt_t lt_auth_stmt_password_change_failed;
extern lt_store_stmt_t lt_auth_stmt_password_change;
extern lt_store_stmt_t lt_auth_stmt_reset_request;
extern lt_store_stmt_t lt_auth_stmt_reset_peek;
extern lt_store_stmt_t lt_auth_stmt_reset_confirm;

/** Registers every statement above. @return as lt_store_stmt_register. */
int lt_auth_statements(void) LT_MUSTCHECK;

/**
 * Housekeeping for the maintenance thread, blocking on its own connection `c`: drops the
 * sealed successors whose grace window (`grace_s`) has passed and prunes the revocation
 * log (latch_refresh_clear_successors).
 * @return 0, LT_EUNAVAIL (connection lost) or LT_EIO (the query failed; `err` says why).
 */
int lt_auth_maintain(struct pg_conn *c, int grace_s, char *err, size_t errlen) LT_MUSTCHECK;

/*
 * The lockout and rate-limit settings, in the order the gate statements take them as
 * parameters (see lt_auth_limits_params).
 */
typedef struct lt_auth_limits {
    int threshold, window, duration;               /* per source (tenant, email, ip) */
    int acct_threshold, acct_window, acct_max_delay; /* per account, across sources */
    int ip_limit, ip_window;                       /* per client address; ip_limit 0 = off */
} lt_auth_limits_t;

#define LT_AUTH_LIMITS_NPARAMS 8
/* Formats `l` into `buf` and points `out[0..7]` at the texts. */
void lt_auth_limits_params(const lt_auth_limits_t *l, char buf[LT_AUTH_LIMITS_NPARAMS][12],
                           const char *out[LT_AUTH_LIMITS_NPARAMS]);

/* ---- rows ---------------------------------------------------------------------------- */

/* What the lockout gate decided about an attempt. */
typedef enum {
    LT_AUTH_GATE_OK = 0,       /* go on: verify the password (the slot is reserved) */
    LT_AUTH_GATE_LOCKED,       /* the source is locked out: 429 too_many_attempts */
    LT_AUTH_GATE_THROTTLED,    /* the account is slowed: 429 too_many_attempts */
    LT_AUTH_GATE_IP_LIMITED,   /* the client address is over its limit: 429 rate_limited */
    LT_AUTH_GATE_UNAUTHORIZED  /* password change: the caller's session is not live */
} lt_auth_gate_t;

/* lt_auth_stmt_login_begin's row. The account fields are NULL for an unknown tenant or
 * email, and whenever gate is not OK; phc is also NULL for a user without a credential. */
typedef struct lt_auth_login {
    lt_auth_gate_t gate;
    int retry_after; /* seconds, >= 1 when refused */
    const char *user_id, *tenant_id, *status, *phc;
    int reset_required;
} lt_auth_login_t;

/** @return 0, or LT_EINVAL (not the expected row shape). */
int lt_auth_decode_login(const struct pg_result *res, lt_auth_login_t *out) LT_MUSTCHECK;

/* What a refresh presentation came to (sql/0007, latch_refresh). Login is always OK. */
typedef enum {
    LT_AUTH_REFRESH_OK = 0,  /* rotated: answer with the new token */
    LT_AUTH_REFRESH_REPEAT,  /* within the grace window: answer with the sealed successor */
    LT_AUTH_REFRESH_REUSE,   /* reuse detected: the session has ended; invalid_grant */
    LT_AUTH_REFRESH_INVALID, /* anything else wrong; invalid_grant */
    /* Login (sql/0010): the password matched but no session yet. */
    LT_AUTH_LOGIN_MFA_REQUIRED,    /* a second factor is due: the MFA token is a challenge */
    LT_AUTH_LOGIN_ENROLL_REQUIRED, /* the tenant requires MFA: the MFA token is enrolment-only */
    /* The MFA statements that end in a session (mfa/factors.h) also answer: */
    LT_AUTH_SESSION_UNAUTHORIZED,  /* the caller's session or enrolment token is not live */
    LT_AUTH_SESSION_NOT_FOUND      /* the factor is gone or no longer pending */
} lt_auth_refresh_t;

/* A session as login and refresh return it: what an access token needs. */
typedef struct lt_auth_session {
    lt_auth_refresh_t status;
    const char *session_id;          /* NULL when INVALID */
    const char *user_id, *tenant_id; /* refresh only (login knows them); else NULL */
    const char *email;               /* the `username` claim */
    const char *roles;               /* JSON array text */
    const char *amr;                 /* JSON array text; login: NULL (it is ["pwd"]) */
    const char *acr;                 /* may be NULL */
    int64_t auth_time;               /* unix seconds */
    const char *successor_sealed;    /* REPEAT: hex, for lt_auth_successor_open */
} lt_auth_session_t;

/**
 * Decodes the row of lt_auth_stmt_login_succeed, lt_auth_stmt_refresh or the MFA
 * statements ending in a session. The session fields are checked only for OK and REPEAT;
 * OK may come without any (session_id NULL) from an MFA confirmation by a signed-in caller.
 * @return 0, LT_ENOTFOUND (login: no row, the user is no longer active), LT_EINVAL
 *         (unexpected shape).
 */
int lt_auth_decode_session(const struct pg_result *res, lt_auth_session_t *out) LT_MUSTCHECK;

/* lt_auth_stmt_password_change_begin's row. phc NULL: no credential. */
typedef struct lt_auth_pwchange {
    lt_auth_gate_t gate;
    int retry_after;
    const char *phc, *email;
} lt_auth_pwchange_t;

/** @return 0 or LT_EINVAL. */
int lt_auth_decode_pwchange(const struct pg_result *res, lt_auth_pwchange_t *out) LT_MUSTCHECK;

/* The single value of a one-column, one-row result (NULL when SQL NULL or no row). */
const char *lt_auth_value(const struct pg_result *res);

/* That value read as a boolean ("t"): 1, else 0. */
int lt_auth_value_true(const struct pg_result *res);

#endif
