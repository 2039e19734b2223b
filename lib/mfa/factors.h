/*
 * mfa/factors: the stored side of second factors. The prepared statements that call the
 * functions of sql/0010_mfa.sql (enrolment, confirmation, MFA challenges, step-up, the
 * recent-authentication rule, admin reset), the decoding of their rows, and what turns the
 * rows into a decision in C: sealing a new secret for its row, opening the sealed secrets
 * a "begin" statement returns and checking a code against them, and the recovery-code
 * MACs in the array form the statements take.
 *
 * The SQL functions carry the reasoning (replay rule, lockout, lock order); each
 * statement's comment lists its parameters, all text, NULL meaning SQL NULL. Decoded
 * strings borrow from the PGresult.
 *
 * Thread-safety: statements are registered once at start-up (lt_mfa_statements); the
 * rest is pure and safe on any thread.
 */
#ifndef LT_MFA_FACTORS_H
#define LT_MFA_FACTORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "crypto/seal.h"
#include "mfa/mfa.h"
#include "store/store.h"

struct pg_result;

/* ---- statements ---------------------------------------------------------------------- */

extern lt_store_stmt_t lt_mfa_stmt_enroll;
extern lt_store_stmt_t lt_mfa_stmt_factor_begin;
extern lt_store_stmt_t lt_mfa_stmt_factor_confirm;
extern lt_store_stmt_t lt_mfa_stmt_challenge_begin;
extern lt_store_stmt_t lt_mfa_stmt_challenge_complete;
extern lt_store_stmt_t lt_mfa_stmt_failed;
extern lt_store_stmt_t lt_mfa_stmt_stepup_begin;
extern lt_store_stmt_t lt_mfa_stmt_stepup;
extern lt_store_stmt_t lt_mfa_stmt_list;
extern lt_store_stmt_t lt_mfa_stmt_totp_delete;
extern lt_store_stmt_t lt_mfa_stmt_recovery_regenerate;
extern lt_store_stmt_t lt_mfa_stmt_admin_reset;

/** Registers every statement above. @return as lt_store_stmt_register. */
int lt_mfa_statements(void) LT_MUSTCHECK;

/* ---- rows ---------------------------------------------------------------------------- */

/* What a "begin" statement decided. */
typedef enum {
    LT_MFA_BEGIN_OK = 0,
    LT_MFA_BEGIN_INVALID,       /* challenge unknown, used, expired or spent */
    LT_MFA_BEGIN_UNAUTHORIZED,  /* the caller's session (or enrolment token) is not live */
    LT_MFA_BEGIN_NOT_FOUND,     /* no such factor of the caller */
    LT_MFA_BEGIN_CONFIRMED,     /* the factor is already active */
    LT_MFA_BEGIN_NOT_ENROLLED,  /* step-up without an active factor */
    LT_MFA_BEGIN_LOCKED,        /* the lockout gate refused: 429 too_many_attempts */
    LT_MFA_BEGIN_THROTTLED,     /* likewise, the account is slowed */
    LT_MFA_BEGIN_IP_LIMITED     /* the client address is over its limit: 429 rate_limited */
} lt_mfa_begin_t;

typedef struct lt_mfa_begin_row {
    lt_mfa_begin_t outcome;
    int retry_after;           /* seconds, >= 1 when the gate refused */
    const char *user_id;       /* OK (challenge, factor begin) */
    const char *tenant_id;     /* OK (challenge, factor begin) */
    int attempts_left;         /* challenge begin: attempts left after this one */
    const char *factors;       /* OK: JSON (array, or one object) for lt_mfa_factors_check */
} lt_mfa_begin_row_t;

/**
 * Decodes the row of lt_mfa_stmt_challenge_begin, lt_mfa_stmt_factor_begin or
 * lt_mfa_stmt_stepup_begin (the three select one shape; columns a statement has no value
 * for are NULL).
 * @return 0 or LT_EINVAL (not the expected shape).
 */
int lt_mfa_decode_begin(const struct pg_result *res, lt_mfa_begin_row_t *out) LT_MUSTCHECK;

/* ---- secrets and codes --------------------------------------------------------------- */

#define LT_MFA_UUID_LEN 36
/* Hex text of a sealed secret, as lt_mfa_stmt_enroll takes it. */
#define LT_MFA_SEALED_HEX_LEN (2 * (LT_MFA_SECRET_LEN + LT_SEAL_OVERHEAD))

/** A random (version 4) UUID for a new factor: the row id and the seal's aad. @return 0 or LT_EIO. */
int lt_mfa_factor_id_new(char out[LT_MFA_UUID_LEN + 1]) LT_MUSTCHECK;

/** Seals a secret for factor `factor_id` (aad "totp_secret:<id>"). @return 0 or LT_EIO. */
int lt_mfa_secret_seal(const lt_seal_key_t *key, const char *factor_id, const uint8_t secret[LT_MFA_SECRET_LEN],
                       char out[LT_MFA_SEALED_HEX_LEN + 1]) LT_MUSTCHECK;

/* Which factor a code matched, and the time step it matched (for the replay rule). */
typedef struct lt_mfa_match {
    char factor_id[LT_MFA_UUID_LEN + 1];
    int64_t step;
} lt_mfa_match_t;

/**
 * Checks `code` against every factor of `factors` (the JSON a begin statement returned:
 * [{id, sealed, algorithm, digits, period}] or one such object) at unix time `now` with
 * `window` steps each side. Each secret is opened with `keys`, used and wiped.
 * @return 0 (m filled), LT_ENOTFOUND (no factor matched, or the code has a shape no
 *         factor takes), LT_EINVAL (the JSON or a sealed secret is malformed or does not
 *         open: a deployment problem), LT_EIO.
 */
int lt_mfa_factors_check(const char *factors, const lt_seal_key_t *keys, size_t nkeys, int64_t now, int window,
                         const char *code, size_t n, lt_mfa_match_t *m) LT_MUSTCHECK;

/* A PostgreSQL text[] literal of recovery-code MACs: "{h1,h2,...}". */
#define LT_MFA_RECOVERY_ARRAY_LEN (2 + LT_MFA_RECOVERY_COUNT * (LT_MFA_RECOVERY_HASH_HEX_LEN + 1))

/** The MACs of a new set of codes under `key`, for storing. @return 0 or LT_EIO. */
int lt_mfa_recovery_store_array(const lt_seal_key_t *key, const char *user_id,
                                char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1],
                                char out[LT_MFA_RECOVERY_ARRAY_LEN + 1]) LT_MUSTCHECK;

/** One presented code's MAC under each of `keys` (at most LT_MFA_RECOVERY_COUNT), for
 * matching whichever master key version stored it. @return 0, LT_EINVAL (too many keys), LT_EIO. */
int lt_mfa_recovery_candidates(const lt_seal_key_t *keys, size_t nkeys, const char *user_id,
                               const char code[LT_MFA_RECOVERY_LEN + 1],
                               char out[LT_MFA_RECOVERY_ARRAY_LEN + 1]) LT_MUSTCHECK;

#endif
