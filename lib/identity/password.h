/*
 * password: the password policy.
 *
 * A password is acceptable when it is valid UTF-8, at least `min_length` characters
 * (code points), at most LT_PASSWORD_MAX bytes, and libpwquality finds no fault with it
 * (dictionary words via cracklib, too simple, too few character classes, palindromes,
 * too similar to the user's email or its local part). The reason comes back as a
 * user-facing sentence for the problem's `errors[]`.
 *
 * Threading: lt_password_policy_check may run on any thread (the hasher threads run it);
 * libpwquality/cracklib calls are serialised inside because cracklib keeps global state.
 * Dictionary lookups read files, which is why this runs on hasher threads, not on loops.
 */
#ifndef LT_IDENTITY_PASSWORD_H
#define LT_IDENTITY_PASSWORD_H

#include <stddef.h>

#include "base/base.h"

typedef struct lt_password_policy lt_password_policy_t;

/**
 * @return 0, LT_EINVAL (min_length outside 1..LT_PASSWORD_MAX), LT_ENOMEM, LT_EIO (libpwquality
 *         could not load its settings or cracklib its dictionary).
 */
int lt_password_policy_create(int min_length, lt_password_policy_t **out) LT_MUSTCHECK;
void lt_password_policy_destroy(lt_password_policy_t **p);

/**
 * Length and UTF-8 checks only (cheap; fine on a loop, before a job is queued).
 * @return 0 or LT_EINVAL with `reason` filled.
 */
int lt_password_policy_quick(const lt_password_policy_t *p, const char *password, size_t n, char *reason, size_t cap)
    LT_MUSTCHECK;

/**
 * Every check. `email` may be NULL.
 * @return 0 or LT_EINVAL with `reason` filled; LT_ENOMEM (reason filled too).
 */
int lt_password_policy_check(const lt_password_policy_t *p, const char *password, size_t n, const char *email,
                             char *reason, size_t cap) LT_MUSTCHECK;

/* An lt_hasher_check_fn over lt_password_policy_check (`data` is the policy, `context` the email). */
int lt_password_policy_hasher_check(const char *password, size_t n, const char *context, char *reason, size_t cap,
                                    void *data);

#endif
