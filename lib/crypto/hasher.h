/*
 * hasher: argon2id password hashing off the event loops.
 *
 * A pool of threads runs argon2 jobs from one bounded FIFO. Workers submit through a port
 * (lt_hasher_port_t, one per worker loop) and get the result back on their own loop via an
 * h2o multithread queue, so neither side ever blocks on the other. When the FIFO holds
 * `queue_max` jobs, submit fails at once with LT_EOVERLOAD (the caller answers 503
 * `overloaded` with Retry-After): load sheds instead of queueing without bound. A job may
 * be cancelled (its client went away): if it has not started it is dropped without
 * hashing; either way its callback never runs.
 *
 * PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, salt 16 random bytes, hash
 * 32 bytes) are produced by libargon2's encoder. Verification accepts argon2id and
 * argon2i (imported from other systems); `needs_rehash` is set when a verified hash's
 * type or parameters differ from the pool's, so login can upgrade it.
 *
 * Dummy verification: a NULL `phc` verifies against a hash made at start-up with the pool's
 * parameters, so an unknown user costs exactly what a real one does; it never matches.
 *
 * Passwords handed to the pool are copied and wiped after use.
 *
 * Threading: create/destroy on the main thread; a port is created, used and destroyed on
 * its worker's thread only. Stats readable from any thread.
 */
#ifndef LT_CRYPTO_HASHER_H
#define LT_CRYPTO_HASHER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct st_h2o_evloop_t;

/* Longest password accepted anywhere (bytes). */
#define LT_PASSWORD_MAX 1024
/* Longest PHC string we store or accept. */
#define LT_PHC_MAX 512

typedef struct lt_hasher_params {
    uint32_t m_kib; /* memory cost */
    uint32_t t;     /* passes */
    uint32_t p;     /* lanes */
} lt_hasher_params_t;

typedef struct lt_hasher lt_hasher_t;
typedef struct lt_hasher_port lt_hasher_port_t;
typedef struct lt_hasher_job lt_hasher_job_t;

/*
 * Runs on a hasher thread before a hash job (when the job has a `context`), e.g. the
 * password policy. Returns 0 to go on, or nonzero with a user-facing reason in `reason`.
 */
typedef int (*lt_hasher_check_fn)(const char *password, size_t n, const char *context, char *reason, size_t cap,
                                  void *data);

typedef struct lt_hasher_options {
    lt_hasher_params_t params;
    int threads;            /* >= 1 */
    size_t queue_max;       /* >= 1 */
    lt_hasher_check_fn check; /* may be NULL */
    void *check_data;
} lt_hasher_options_t;

/** Starts the threads and makes the dummy hash. @return 0, LT_EINVAL, LT_ENOMEM, LT_EIO. */
int lt_hasher_create(const lt_hasher_options_t *o, lt_hasher_t **out) LT_MUSTCHECK;
/* Stops the threads (jobs still queued are dropped; their ports must be gone already). */
void lt_hasher_destroy(lt_hasher_t **h);

/** A port on `loop` (the calling worker's). @return 0, LT_ENOMEM. */
int lt_hasher_port_create(lt_hasher_t *h, struct st_h2o_evloop_t *loop, lt_hasher_port_t **out) LT_MUSTCHECK;
/* Cancels the port's outstanding jobs (no callback runs) and frees it. Not from inside one of
 * this port's callbacks (h2o is still dispatching on the port's queue then). */
void lt_hasher_port_destroy(lt_hasher_port_t **p);

typedef struct lt_hasher_result {
    int err;            /* 0, or LT_EINVAL (malformed stored hash), LT_ENOMEM, LT_EIO */
    int match;          /* verify: the password matched */
    int needs_rehash;   /* verify: matched, and the hash's type or parameters are outdated */
    int rejected;       /* hash: the check function refused the password; see `reason` */
    const char *reason; /* valid during the callback */
    const char *phc;    /* hash, or verify with rehash: the new PHC string; valid during the callback
                           (NULL after a match if computing the upgraded hash failed) */
} lt_hasher_result_t;

typedef void (*lt_hasher_cb)(const lt_hasher_result_t *res, void *data);

/**
 * Verifies `password` against `phc` (NULL: the dummy hash). With `rehash` set and a match
 * whose parameters are outdated, the job also computes the new hash (res->phc).
 * @param job  receives a handle for lt_hasher_cancel, valid until `cb` runs; may be NULL.
 * @return 0 (cb runs later on the port's loop), LT_EOVERLOAD (queue full), LT_EINVAL
 *         (password longer than LT_PASSWORD_MAX), LT_ENOMEM.
 */
int lt_hasher_verify(lt_hasher_port_t *p, const char *phc, const char *password, size_t n, int rehash, lt_hasher_cb cb,
                     void *data, lt_hasher_job_t **job) LT_MUSTCHECK;

/**
 * Hashes `password` with the pool's parameters. With `context` (may be NULL; e.g. the
 * user's email; "" runs the check without one) the pool's check function runs first, on the
 * hasher thread.
 * @return as lt_hasher_verify.
 */
int lt_hasher_hash(lt_hasher_port_t *p, const char *password, size_t n, const char *context, lt_hasher_cb cb, void *data,
                   lt_hasher_job_t **job) LT_MUSTCHECK;

/* The callback will not run. Only on the port's thread, before the callback ran. */
void lt_hasher_cancel(lt_hasher_job_t *job);

typedef struct lt_hasher_stats {
    uint64_t verifications; /* argon2 verifications run (dummy ones included) */
    uint64_t hashes;        /* hashes computed */
    uint64_t rejected;      /* submits refused: queue full */
    uint64_t dropped;       /* cancelled before they ran */
    int queued;             /* waiting now */
    int busy;               /* threads hashing now */
    int threads;
    size_t queue_max;
} lt_hasher_stats_t;

void lt_hasher_get_stats(const lt_hasher_t *h, lt_hasher_stats_t *out);

/* ---- blocking helpers (latchctl, start-up, tests) ------------------------------------ */

/** @return 0 (*out malloc'ed PHC), LT_EINVAL, LT_ENOMEM, LT_EIO. */
int lt_password_hash(const lt_hasher_params_t *params, const char *password, size_t n, char **out) LT_MUSTCHECK;
/** @return 1 match, 0 no match, LT_EINVAL malformed phc (or password too long), LT_ENOMEM, LT_EIO. */
int lt_password_verify(const char *phc, const char *password, size_t n);
/**
 * Checks a PHC string offered for import: argon2id or argon2i, version 19 (or 16),
 * parameters within sane bounds (m 8..4194304 KiB, t 1..64, p 1..64), salt >= 8 bytes,
 * hash >= 16 bytes, length <= LT_PHC_MAX. @return 0 or LT_EINVAL.
 */
int lt_password_phc_check(const char *phc) LT_MUSTCHECK;
/* 1 if `phc` is not argon2id with exactly `params`. */
int lt_password_needs_rehash(const char *phc, const lt_hasher_params_t *params);

#endif
