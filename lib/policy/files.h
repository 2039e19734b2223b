/*
 * policy/files: policy documents kept as files (a repository of policies applied by
 * `latchctl policies apply DIR`). A file holds one document, in JSON (*.json) or YAML
 * (*.yaml, *.yml; YAML 1.1 read with libyaml into the same JSON shape: plain scalars that
 * look like integers, floats, booleans or null become those, everything else a string).
 *
 * Applying is all or nothing: every file is read and validated first (problems printed
 * with file, place and line:column), and only when all are valid are they written, in one
 * transaction, each as a new version of the policy named by its "id" (else the file name
 * without its extension).
 *
 * Threading: blocking; for latchctl.
 */
#ifndef LT_POLICY_FILES_H
#define LT_POLICY_FILES_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "base/base.h"

/** Reads one file into a JSON value (new reference), or NULL with `err` naming line:column. */
json_t *lt_policy_file_read(const char *path, char *err, size_t errlen);

/**
 * Applies every policy file of `dir` to the database at `conninfo`, for tenant `tenant`
 * (a tenant name; NULL: global policies). Progress and problems go to `out`.
 * @return 0, LT_EINVAL (a file is not valid: nothing was written), LT_ENOTFOUND (no such
 *         tenant), LT_EUNAVAIL, LT_EIO (`err` says why), LT_ENOMEM.
 */
int lt_policy_apply_dir(const char *conninfo, const char *dir, const char *tenant, FILE *out, char *err,
                        size_t errlen) LT_MUSTCHECK;

#endif
