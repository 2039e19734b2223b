/*
 * metrics: HTTP request counters and latency histograms, rendered in the Prometheus text
 * format.
 *
 * Each worker owns one lt_http_metrics_t and is its only writer, so updates are plain
 * relaxed loads and stores (no lock prefix on the hot path); /metrics, on whichever worker
 * serves it, sums all workers with relaxed loads.
 */
#ifndef LT_HTTP_METRICS_H
#define LT_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define LT_METRICS_STATUS_MIN 100
#define LT_METRICS_STATUS_SLOTS 500 /* statuses 100..599 */
#define LT_METRICS_BUCKETS 16       /* finite histogram buckets, see metrics.c */

typedef struct lt_http_metrics lt_http_metrics_t;

/* `nroutes` routes plus one row for requests that matched none. */
int lt_http_metrics_create(size_t nroutes, lt_http_metrics_t **out) LT_MUSTCHECK;
void lt_http_metrics_destroy(lt_http_metrics_t **m);

/* Writer side (the owning worker only). route = -1 for unmatched. */
void lt_http_metrics_begin(lt_http_metrics_t *m);
void lt_http_metrics_end(lt_http_metrics_t *m, int route, int status, uint64_t duration_ns);

/* Readers (any thread). */
int64_t lt_http_metrics_in_flight(const lt_http_metrics_t *m);

/* Route labels, index-aligned with the metrics rows. */
typedef struct lt_metrics_route_label {
    const char *method;
    const char *pattern;
} lt_metrics_route_label_t;

/**
 * Appends the HTTP metrics of all `n` workers, summed, to `out`.
 * @return 0 or LT_ENOMEM.
 */
int lt_http_metrics_render(lt_buf_t *out, lt_http_metrics_t *const *workers, size_t n,
                           const lt_metrics_route_label_t *labels, size_t nroutes) LT_MUSTCHECK;

#endif
