/*
 * cors: cross-origin calls from browser sign-in frontends (the Fetch standard's CORS).
 *
 * Scope: /v1/auth/..., /v1/me, /v1/me/..., /oauth2/token and /oauth2/revoke. Elsewhere
 * nothing here applies (no CORS headers: browsers refuse cross-origin reads).
 *
 * Which origins are allowed is the application's business (a per-tenant allow-list): it
 * installs a check with lt_http_cors_set_check. The server runs lt_http_cors_filter on
 * every request before routing:
 *   - a preflight (OPTIONS with Origin and Access-Control-Request-Method) on a path in
 *     scope is answered here: 204 with Access-Control-Allow-Origin (the exact origin, never
 *     '*'), -Allow-Credentials: true, -Allow-Methods, -Allow-Headers, -Max-Age and Vary:
 *     Origin when the check allows the origin, else 403 problem `cors_origin_denied` with
 *     no CORS header. A preflight carries no credentials, so it cannot know the tenant: the
 *     check says whether *some* tenant lists the origin;
 *   - X-Latch-Mode (cookie mode of the sign-in surface) is refused over cleartext: 400
 *     `cookie_mode_requires_tls` (the `__Host-` cookies require Secure), and any value but
 *     `cookie` or `bearer` is 400 `invalid_request`;
 *   - an actual request with Origin gets Vary: Origin, and the CORS response headers when
 *     the check allows the origin. The application narrows that to the request's tenant
 *     once it knows it (lt_http_cors_allow), so the final answer echoes the origin only if
 *     that tenant lists it.
 *
 * Threading: set the check before the server starts; everything else on the request's
 * worker thread.
 */
#ifndef LT_HTTP_CORS_H
#define LT_HTTP_CORS_H

#include <stddef.h>

#include "http/server.h"

/* 1 if the origin (n bytes, not NUL-terminated) may call with credentials at all. */
typedef int (*lt_http_cors_check_fn)(lt_req_t *r, const char *origin, size_t n);

/* Installs the check (process-wide; NULL: no origin is allowed). */
void lt_http_cors_set_check(lt_http_cors_check_fn fn);

/* 1 if `path` (n bytes, no query) is in scope. */
int lt_http_cors_scoped(const char *path, size_t n);

/**
 * The server's hook, before routing.
 * @return 1 when `r` has been answered (a preflight, a refused X-Latch-Mode), else 0.
 */
int lt_http_cors_filter(lt_req_t *r);

/* The request's Origin when its path is in scope, else NULL (in the request pool). */
const char *lt_req_cors_origin(lt_req_t *r);

/* Sets (allow) or removes the CORS response headers of `r` (before it is answered). */
void lt_http_cors_allow(lt_req_t *r, int allow);

/* 1 if the request asked for cookie mode (X-Latch-Mode: cookie, which the filter has
 * already confined to TLS and to the paths in scope). */
int lt_req_cookie_mode(lt_req_t *r);

/**
 * The first cookie `name` in the request's Cookie headers (HTTP/2 may split them), without
 * surrounding quotes.
 * @return 1 with *value and *n pointing into the request, or 0 when absent.
 */
int lt_req_cookie(lt_req_t *r, const char *name, const char **value, size_t *n);

#endif
