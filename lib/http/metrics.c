/*
 * metrics: see metrics.h.
 *
 * Layout per worker: a [routes+1][500] table of counts by exact status and a
 * [routes+1][buckets+1] histogram with a duration sum. 500 slots per route cost 4 KiB each,
 * which buys a branch-free index on the hot path and exact status labels.
 */
#include "http/metrics.h"

#include <stdlib.h>

/* Upper bounds in microseconds: 100 µs to 10 s, roughly 1-2.5-5 per decade. */
static const uint64_t bucket_us[LT_METRICS_BUCKETS] = {100,    250,    500,     1000,    2500,    5000,
                                                       10000,  25000,  50000,   100000,  250000,  500000,
                                                       1000000, 2500000, 5000000, 10000000};

struct lt_http_metrics {
    size_t rows;
    int64_t in_flight;
    uint64_t *status;  /* rows * LT_METRICS_STATUS_SLOTS */
    uint64_t *buckets; /* rows * (LT_METRICS_BUCKETS + 1), non-cumulative; last = +Inf */
    uint64_t *sum_ns;  /* rows */
};

int lt_http_metrics_create(size_t nroutes, lt_http_metrics_t **out)
{
    lt_http_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto fail;
    m->rows = nroutes + 1;
    m->status = calloc(m->rows * LT_METRICS_STATUS_SLOTS, sizeof(uint64_t));
    m->buckets = calloc(m->rows * (LT_METRICS_BUCKETS + 1), sizeof(uint64_t));
    m->sum_ns = calloc(m->rows, sizeof(uint64_t));
    if (m->status == NULL || m->buckets == NULL || m->sum_ns == NULL)
        goto fail;
    *out = m;
    return 0;
fail:
    lt_http_metrics_destroy(&m);
    return LT_ENOMEM;
}

void lt_http_metrics_destroy(lt_http_metrics_t **pm)
{
    lt_http_metrics_t *m = *pm;
    if (m == NULL)
        return;
    free(m->status);
    free(m->buckets);
    free(m->sum_ns);
    free(m);
    *pm = NULL;
}

void lt_http_metrics_begin(lt_http_metrics_t *m)
{
    LT_COUNTER_ADD(m->in_flight, 1);
}

void lt_http_metrics_end(lt_http_metrics_t *m, int route, int status, uint64_t duration_ns)
{
    size_t row = route < 0 || (size_t)route >= m->rows - 1 ? m->rows - 1 : (size_t)route;
    if (status < LT_METRICS_STATUS_MIN || status >= LT_METRICS_STATUS_MIN + LT_METRICS_STATUS_SLOTS)
        status = 499; /* no response was sent: the client went away first */
    LT_COUNTER_ADD(m->in_flight, -1);
    LT_COUNTER_ADD(m->status[row * LT_METRICS_STATUS_SLOTS + (size_t)(status - LT_METRICS_STATUS_MIN)], 1);
    uint64_t us = duration_ns / 1000;
    size_t b = 0;
    while (b < LT_METRICS_BUCKETS && us > bucket_us[b])
        b++;
    LT_COUNTER_ADD(m->buckets[row * (LT_METRICS_BUCKETS + 1) + b], 1);
    LT_COUNTER_ADD(m->sum_ns[row], duration_ns);
}

int64_t lt_http_metrics_in_flight(const lt_http_metrics_t *m)
{
    return LT_COUNTER_GET(m->in_flight);
}

static void route_label(const lt_metrics_route_label_t *labels, size_t nroutes, size_t row, const char **method,
                        const char **pattern)
{
    if (row < nroutes) {
        *method = labels[row].method;
        *pattern = labels[row].pattern;
    } else {
        *method = "";
        *pattern = "unmatched";
    }
}

int lt_http_metrics_render(lt_buf_t *out, lt_http_metrics_t *const *workers, size_t n,
                           const lt_metrics_route_label_t *labels, size_t nroutes)
{
    size_t rows = nroutes + 1;
    int ret = 0;
    int64_t in_flight = 0;

    ret |= lt_buf_appends(out, "# HELP latch_http_requests_total HTTP requests by route, method and status.\n"
                               "# TYPE latch_http_requests_total counter\n");
    for (size_t row = 0; row < rows; row++) {
        const char *method, *pattern;
        route_label(labels, nroutes, row, &method, &pattern);
        for (size_t s = 0; s < LT_METRICS_STATUS_SLOTS; s++) {
            uint64_t v = 0;
            for (size_t w = 0; w < n; w++)
                v += LT_COUNTER_GET(workers[w]->status[row * LT_METRICS_STATUS_SLOTS + s]);
            if (v != 0)
                ret |= lt_buf_appendf(out, "latch_http_requests_total{route=\"%s\",method=\"%s\",status=\"%zu\"} %llu\n",
                                      pattern, method, s + LT_METRICS_STATUS_MIN, (unsigned long long)v);
        }
    }

    ret |= lt_buf_appends(out, "# HELP latch_http_request_duration_seconds Time from routing to the end of the response.\n"
                               "# TYPE latch_http_request_duration_seconds histogram\n");
    for (size_t row = 0; row < rows; row++) {
        const char *method, *pattern;
        uint64_t cumulative = 0, sum_ns = 0;
        route_label(labels, nroutes, row, &method, &pattern);
        for (size_t w = 0; w < n; w++)
            sum_ns += LT_COUNTER_GET(workers[w]->sum_ns[row]);
        uint64_t counts[LT_METRICS_BUCKETS + 1] = {0};
        for (size_t b = 0; b <= LT_METRICS_BUCKETS; b++)
            for (size_t w = 0; w < n; w++)
                counts[b] += LT_COUNTER_GET(workers[w]->buckets[row * (LT_METRICS_BUCKETS + 1) + b]);
        uint64_t total = 0;
        for (size_t b = 0; b <= LT_METRICS_BUCKETS; b++)
            total += counts[b];
        if (total == 0)
            continue;
        for (size_t b = 0; b < LT_METRICS_BUCKETS; b++) {
            cumulative += counts[b];
            ret |= lt_buf_appendf(out, "latch_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %llu\n",
                                  pattern, method, (double)bucket_us[b] / 1e6, (unsigned long long)cumulative);
        }
        ret |= lt_buf_appendf(out,
                              "latch_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %llu\n"
                              "latch_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
                              "latch_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                              pattern, method, (unsigned long long)total, pattern, method, (double)sum_ns / 1e9, pattern,
                              method, (unsigned long long)total);
    }

    for (size_t w = 0; w < n; w++)
        in_flight += lt_http_metrics_in_flight(workers[w]);
    ret |= lt_buf_appendf(out,
                          "# HELP latch_http_requests_in_flight Requests being handled.\n"
                          "# TYPE latch_http_requests_in_flight gauge\n"
                          "latch_http_requests_in_flight %lld\n",
                          (long long)in_flight);
    return ret == 0 ? 0 : LT_ENOMEM;
}
