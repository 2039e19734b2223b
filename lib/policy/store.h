/*
 * policy/store: the snapshot's side of the database. Loads every role, policy document
 * and known subject (sql/0011_policy.sql) in one read-only transaction and builds a
 * snapshot from them (policy/engine.h).
 *
 * A row the engine refuses (which validation on write should have made impossible, e.g. a
 * document written by an older binary) is skipped and logged with its id: one bad row must
 * not freeze every decision on the previous snapshot.
 *
 * Threading: blocking; for the control thread and start-up, never a worker loop.
 */
#ifndef LT_POLICY_STORE_H
#define LT_POLICY_STORE_H

#include <stddef.h>

#include "base/base.h"
#include "policy/engine.h"

/**
 * Builds a snapshot from the database at `conninfo`.
 * @return 0 (*out holds one reference), LT_EUNAVAIL (cannot connect), LT_EIO (a query
 *         failed; `err` says why), LT_ENOMEM, LT_EINVAL (the roles as a whole are
 *         inconsistent, e.g. a cycle; `err` names it).
 */
int lt_policy_load(const char *conninfo, lt_policy_snapshot_t **out, char *err, size_t errlen) LT_MUSTCHECK;

/** An empty snapshot (nothing allowed): before the first load succeeds. */
int lt_policy_empty(lt_policy_snapshot_t **out) LT_MUSTCHECK;

#endif
