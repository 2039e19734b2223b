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

/* Sends the answer lt_http_app_t.hold held (server.h); no-op when none is held. */
void lt_http_release(lt_req_t *r);

/* Serialises and sends `body` (takes the reference). */
void lt_http_send_json(lt_req_t *r, int status, json_t *body);

/* Adds a response header before sending; name and value are copied. */
void lt_http_add_header(lt_req_t *r, const char *name, const char *value);

/* A problem+json response. `errors` (may be NULL; taken) is an array of {field, message},
 * or an object whose members are added as extension members (RFC 9457 §3.2). */
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

/*
 * Streamed responses (Server-Sent Events and the like), on h2o's generator API.
 *
 * lt_http_stream_start sets the status and headers (the security headers of lt_http_send,
 * Cache-Control: no-store, X-Accel-Buffering: no) and keeps the request open; the body is
 * then written piecemeal with lt_http_stream_write (chunked on HTTP/1.1, DATA frames on
 * HTTP/2) and finished with lt_http_stream_end. The headers leave with the first write
 * (h2o 2.2 sends nothing for an empty one): write something at once if the client should
 * see the response start before there is news (an SSE comment, say).
 *
 * Flow control: h2o takes one buffer at a time; bytes written meanwhile are copied into a
 * second buffer and leave together when h2o asks for more. The two together are capped at
 * LT_HTTP_STREAM_MAX_BUFFER: a reader that falls that far behind is cut off (the stream is
 * aborted: RST_STREAM on HTTP/2, connection closed on HTTP/1.1, as soon as h2o is done with
 * the bytes it holds) and further writes fail with LT_EOVERLOAD.
 *
 * Lifetime: `on_close(r, data)` runs exactly once, when the request is released: the client
 * went away, the stream was aborted, or it ended and its last bytes left. `r` may still be
 * read inside on_close (no writes: they fail) and must not be touched after it returns.
 * When the worker begins a graceful stop every open stream is ended (lt_http_stream_end),
 * so a stop does not wait `shutdown_timeout_ms` for clients that would never leave.
 *
 * Threading: a stream lives on its request's worker thread; call everything there.
 */
#define LT_HTTP_STREAM_MAX_BUFFER (1024 * 1024)

typedef void (*lt_http_stream_fn)(lt_req_t *r, void *data);

/**
 * Starts a streamed response on a request not yet answered.
 * @return 0; LT_ESTATE when the request was answered already or the worker is stopping
 *         (nothing was sent: answer it yourself, e.g. 503); LT_ENOMEM (nothing sent).
 */
int lt_http_stream_start(lt_req_t *r, int status, const char *content_type, lt_http_stream_fn on_close,
                         void *data) LT_MUSTCHECK;

/**
 * Queues `len` bytes (copied).
 * @return 0; LT_ESTATE (not a stream, or ended/closed); LT_EOVERLOAD (the reader fell more
 *         than LT_HTTP_STREAM_MAX_BUFFER behind: the stream is being aborted).
 */
int lt_http_stream_write(lt_req_t *r, const char *data, size_t len);

/* Bytes written but not yet taken by h2o (both buffers), for callers that pace themselves. */
size_t lt_http_stream_pending(const lt_req_t *r);

/*
 * `fn(r, data)` runs whenever h2o has taken everything written so far: the moment to write
 * more of a large backlog without piling it all into the buffer. NULL to stop.
 */
void lt_http_stream_on_drain(lt_req_t *r, lt_http_stream_fn fn);

/* Ends the stream after the queued bytes; on_close follows once they are out. Idempotent. */
void lt_http_stream_end(lt_req_t *r);

/*
 * lt_http_stream_end, and on_close/on_drain will not run: for an owner that goes away
 * before the request does (worker teardown).
 */
void lt_http_stream_detach(lt_req_t *r);

#endif
