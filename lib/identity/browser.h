/*
 * identity/browser: what browser sign-in frontends need from the domain.
 *
 *   - The CORS allow-lists of the tenants (tenants.cors_origins, sql/0015_browser.sql) as
 *     an immutable, reference-counted snapshot: loaded with one blocking query at start-up
 *     and by the control thread on NOTIFY latch_origins, read by any worker.
 *   - The rule an origin must follow to be stored (lt_browser_origin_ok).
 *   - The CSRF token of a cookie-mode session: HMAC-SHA256 over (tenant id, session id)
 *     under a key derived from the master key, so it is checked without a database trip
 *     and nothing is stored. It changes when the master key does (its holders sign in
 *     again, as with a lost cookie).
 *
 * Threading: the snapshot is immutable once built; ref/unref and the lookups are safe from
 * any thread. lt_browser_origins_load blocks (start-up, control thread only).
 */
#ifndef LT_IDENTITY_BROWSER_H
#define LT_IDENTITY_BROWSER_H

#include <stddef.h>

#include "base/base.h"
#include "crypto/seal.h"

/* The longest origin stored: "https://" + a 253-byte host name + ":65535". */
#define LT_BROWSER_ORIGIN_MAX 270
/* Origins one tenant may list. */
#define LT_BROWSER_ORIGINS_PER_TENANT 20

/*
 * 1 if `s` (n bytes) is an origin as a browser sends it in `Origin` for a page served over
 * HTTPS: "https://" + a lower-case DNS name or IPv4 address + an optional ":port" (1..65535,
 * no leading zero, never the default 443, which browsers leave out). No path, no trailing
 * '/', no userinfo, no wildcard. IPv6 literals are not accepted.
 */
int lt_browser_origin_ok(const char *s, size_t n);

typedef struct lt_browser_origins lt_browser_origins_t;

/** Loads every tenant's origins. @return 0, LT_EUNAVAIL (no connection), LT_EIO, LT_ENOMEM. */
int lt_browser_origins_load(const char *conninfo, lt_browser_origins_t **out, char *err, size_t errlen) LT_MUSTCHECK;
/** An empty snapshot (nothing allowed). @return 0 or LT_ENOMEM. */
int lt_browser_origins_empty(lt_browser_origins_t **out) LT_MUSTCHECK;
void lt_browser_origins_ref(lt_browser_origins_t *o);
void lt_browser_origins_unref(lt_browser_origins_t *o);
size_t lt_browser_origins_count(const lt_browser_origins_t *o);

/* 1 if some tenant lists `origin` (n bytes). */
int lt_browser_origin_any(const lt_browser_origins_t *o, const char *origin, size_t n);
/* 1 if the tenant with id `tenant_id` (or, when it is NULL, name `tenant_name`) lists it. */
int lt_browser_origin_allowed(const lt_browser_origins_t *o, const char *tenant_id, const char *tenant_name,
                              const char *origin, size_t n);

/* The CSRF token: unpadded base64url of 32 bytes. */
#define LT_BROWSER_CSRF_LEN 43

/** The session's CSRF token. @return 0 or LT_EIO. */
int lt_browser_csrf_token(const lt_seal_key_t *master, const char *tenant_id, const char *session_id,
                          char out[LT_BROWSER_CSRF_LEN + 1]) LT_MUSTCHECK;
/* 1 if `token` (n bytes) is the session's CSRF token (constant time). */
int lt_browser_csrf_ok(const lt_seal_key_t *master, const char *tenant_id, const char *session_id, const char *token,
                       size_t n);

#endif
