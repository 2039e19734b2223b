/*
 * revset: the revocations one worker honours, held in memory (DESIGN.md, "Hot paths never
 * touch the database").
 *
 * An entry revokes either a session id (every access token with that `sid`) or one access
 * token (`jti`) until `exp` (unix seconds): the moment the last token it affects has
 * expired, after which it is dropped. Every entry carries the global sequence number that
 * PostgreSQL gave it (table revocations, sql/0006); sequence order is commit order, so a
 * feed reader that has seen N has seen everything up to N.
 *
 * Wire form, shared by the NOTIFY payload (channel latch_revocations), the control thread's
 * resync batches and the tests: one entry per line,
 *     "<seq> <sid|jti> <value> <exp> <tenant>"
 * seq a decimal uint64 > 0, value 1..LT_REV_VALUE_MAX bytes of [A-Za-z0-9_.:-], exp a
 * decimal int64, tenant a UUID (36 chars) or "-" when the entry has none. A batch is lines
 * separated by '\n' (a trailing '\n' allowed).
 *
 * Threading: one set per worker, used only on that worker's thread; no locks.
 */
#ifndef LT_TOKEN_REVSET_H
#define LT_TOKEN_REVSET_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define LT_REV_VALUE_MAX 64
#define LT_REV_TENANT_MAX 36

typedef enum { LT_REV_SID = 1, LT_REV_JTI = 2 } lt_rev_kind_t;

typedef struct lt_rev_entry {
    uint64_t seq;
    lt_rev_kind_t kind;
    int64_t exp;
    char value[LT_REV_VALUE_MAX + 1];
    char tenant[LT_REV_TENANT_MAX + 1]; /* "" when none */
} lt_rev_entry_t;

typedef struct lt_revset lt_revset_t;

/** @return 0 or LT_ENOMEM. */
int lt_revset_create(lt_revset_t **out) LT_MUSTCHECK;
void lt_revset_destroy(lt_revset_t **s);

/**
 * Adds an entry. Idempotent: an entry whose seq was already applied is ignored; a second
 * entry for the same (kind, value) keeps the later exp. An entry already expired at `now`
 * is ignored (but still advances the sequence).
 * @return 0, LT_EINVAL (bad value), LT_ENOMEM.
 */
int lt_revset_add(lt_revset_t *s, const lt_rev_entry_t *e, int64_t now) LT_MUSTCHECK;

/**
 * Parses one line of the wire form (without '\n').
 * @return 0 or LT_EINVAL.
 */
int lt_rev_parse_line(const char *line, size_t n, lt_rev_entry_t *out) LT_MUSTCHECK;

/**
 * Applies a batch in the wire form. Malformed lines are skipped and counted.
 * @return the number of malformed lines (0 on success), or LT_ENOMEM (negative).
 */
int lt_revset_apply(lt_revset_t *s, const char *batch, int64_t now);

/* 1 when (kind, value) is revoked at `now`, else 0. O(1). */
int lt_revset_has(const lt_revset_t *s, lt_rev_kind_t kind, const char *value, size_t n, int64_t now);

/* The highest sequence number applied (0 when none). */
uint64_t lt_revset_seq(const lt_revset_t *s);

/* Drops entries expired at `now`; cheap when nothing expired (call it every second or so). */
void lt_revset_prune(lt_revset_t *s, int64_t now);

/**
 * The live entries with seq > `since` in sequence order, restricted to `tenant` unless it
 * is NULL, at most `max` of them, through `fn` (return non-zero from fn to stop early).
 * O(log n + k). @return how many were passed to fn.
 */
typedef int (*lt_revset_fn)(const lt_rev_entry_t *e, void *data);
size_t lt_revset_since(const lt_revset_t *s, uint64_t since, const char *tenant, int64_t now, size_t max,
                       lt_revset_fn fn, void *data);

/* Live entries held, and the bytes they take (for /metrics). */
size_t lt_revset_count(const lt_revset_t *s);
size_t lt_revset_bytes(const lt_revset_t *s);

/* Formats an entry in the wire form (no '\n'); `out` needs LT_REV_LINE_MAX bytes. @return the length. */
#define LT_REV_LINE_MAX (20 + 1 + 3 + 1 + LT_REV_VALUE_MAX + 1 + 20 + 1 + LT_REV_TENANT_MAX + 1)
size_t lt_rev_format_line(const lt_rev_entry_t *e, char *out);

/* ---- loading from PostgreSQL (revfetch.c) ------------------------------------------- */

struct pg_conn;

/* Receives one batch: lines in the wire form joined by '\n' (no trailing '\n'). 0 = go on. */
typedef int (*lt_rev_batch_fn)(const char *batch, void *data);

/**
 * Reads the live entries with seq > `after` (latch_revocations_since, sql/0006) page by
 * page in sequence order and hands them to `fn` in batches of at most `batch_lines` lines
 * (0 = 1000). Blocking libpq on the caller's connection: never on a worker loop (the
 * control thread calls it on every (re)connect). *last_seq becomes the highest seq seen,
 * or `after` when there was none (also when a later page failed: entries up to it were
 * delivered).
 * @return 0; LT_EUNAVAIL (connection not usable), LT_EIO (query failed; `err` says why),
 *         LT_ENOMEM, or the non-zero value fn returned (reading stopped there).
 */
int lt_token_revocations_fetch(struct pg_conn *c, uint64_t after, size_t batch_lines, lt_rev_batch_fn fn, void *data,
                               uint64_t *last_seq, char *err, size_t errlen) LT_MUSTCHECK;

/** lt_token_revocations_fetch on a connection of its own to `conninfo` (closed before return). */
int lt_token_revocations_fetch_url(const char *conninfo, uint64_t after, size_t batch_lines, lt_rev_batch_fn fn,
                                   void *data, uint64_t *last_seq, char *err, size_t errlen) LT_MUSTCHECK;

#endif
