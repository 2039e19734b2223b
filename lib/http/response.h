/*
 * response: reading requests and writing responses for handlers.
 *
 * Every response leaves through lt_http_send, which adds the security headers
 * (nosniff, CSP with frame-ancestors 'none', no-referrer, HSTS on TLS, Cache-Control:
 * no-store unless the route is LT_ROUTE_CACHEABLE) and echoes the request id. Errors are
 * RFC 9457 problem+json with a stable `code`, and `errors: [{field, message}]` for invalid
 * input; nothing internal goes into them.
 *
 * Threading: call on the request's worker thread only.
 */
#ifndef LT_HTTP_RESPONSE_H
#define LT_HTTP_RESPONSE_H

#include <jansson.h>
#include <stddef.h>

#include "base/base.h"
#include "http/server.h"

/* Body bytes are copied into the request pool. */
void lt_http_send(lt_req_t *r, int status, const char *content_type, const char *body, size_t len);

/* Serialises and sends `body` (takes the reference). */
void lt_http_send_json(lt_req_t *r, int status, json_t *body);

/* Adds a response header before sending; name and value are copied. */
void lt_http_add_header(lt_req_t *r, const char *name, const char *value);

/* A problem+json response. `errors` (may be NULL) is an array of {field, message}; taken. */
void lt_http_problem(lt_req_t *r, int status, const char *code, const char *detail);
void lt_http_problem_fields(lt_req_t *r, int status, const char *code, const char *detail, json_t *errors);

/**
 * Renders a problem document (pure; used by lt_http_problem and tests).
 * @return 0 or LT_ENOMEM.
 */
int lt_problem_render(lt_buf_t *out, int status, const char *code, const char *detail, json_t *errors) LT_MUSTCHECK;

/* The reason phrase for a status, used as the problem `title`. */
const char *lt_http_status_title(int status);

/**
 * Parses the request body as a JSON object, enforcing the content type, the size cap and
 * the depth cap. On failure a problem response has been sent.
 * @return 0 (*out holds a new reference) or -1.
 */
int lt_http_read_json(lt_req_t *r, json_t **out) LT_MUSTCHECK;

/* The percent-decoded value of route parameter `name`, in the request pool; NULL if absent or undecodable. */
const char *lt_req_param(lt_req_t *r, const char *name);

/**
 * The decoded value of query parameter `name` (first occurrence), in the request pool.
 * @return NULL when absent or malformed.
 */
const char *lt_req_query(lt_req_t *r, const char *name);

/* The client's numeric address (from the socket). */
const char *lt_req_peer(lt_req_t *r);

/* A request header's value, NUL-terminated in the request pool, or NULL. */
const char *lt_req_header(lt_req_t *r, const char *name);

#endif
