/*
 * ratelimit: per-instance token buckets, configured per route group.
 *
 * Every route belongs to one group (login, mfa, token, introspection, decisions, admin, or
 * none: ops, discovery and the plain /v1/me reads are never limited), decided once from its
 * pattern when the server is created (lt_rl_classify). A request is charged to the bucket of
 * its client IP (by the server, before the handler runs) and, once a handler knows who is
 * calling, to the buckets of that user, client or API key and tenant (lt_http_ratelimit).
 * Buckets live in memory per instance: limits are per instance (DESIGN.md, Scale-out).
 *
 * A tripped limit answers 429 problem+json `rate_limited` with Retry-After,
 * RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
 * (draft-ietf-httpapi-ratelimit-headers: Limit is the burst, Reset the seconds until the
 * bucket is full again), counts latch_rate_limited_total{group,kind} and, sampled (one per
 * group, kind and key per minute, and at most LT_RL_AUDIT_PER_SECOND in all), hands the trip
 * to the audit hook, which writes `rate_limit.tripped` without the request waiting for it.
 *
 * Buckets are GCRA cells (one "theoretical arrival time" per key, equivalent to a token
 * bucket of `burst` tokens refilled at `rate` per second) in one table shared by all workers:
 * a client's connections land on any worker (SO_REUSEPORT hashing), so per-worker buckets
 * would have to split every limit by the worker count and would then be wrong for a client
 * on one connection. The table is set-associative (fixed sets of a few ways, each set
 * behind its own spinlock held for a few dozen instructions): memory is fixed at
 * `max_entries`, a lookup touches one or two cache lines, and a full set evicts an idle
 * bucket first, else the one closest to full, so spraying keys cannot grow memory.
 * IPv6 clients are keyed by their /64 (one host owns a whole /64). A worker charges a busy
 * key of a fast limit (1000/s or more, burst 16 or more) through a short lease of tokens
 * taken from the shared bucket at once (ratelimit.c, Leases), so the hot paths do not bounce
 * a shared cache line per request; slower limits are charged exactly, request by request.
 *
 * Configuration (config keys rate_limits and trusted_proxies, both reloadable) is an
 * immutable snapshot swapped atomically; replaced snapshots are kept until the server is
 * destroyed (a few hundred bytes per SIGHUP that changed them).
 *
 * Threading: lt_http_ratelimit and lt_req_client_ip on the request's worker thread;
 * lt_http_ratelimit_configure from any one thread at a time (start-up, SIGHUP); the lt_rl_*
 * table functions from any thread.
 */
#ifndef LT_HTTP_RATELIMIT_H
#define LT_HTTP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

typedef enum {
    LT_RL_GROUP_NONE = 0, /* not limited */
    LT_RL_GROUP_LOGIN,
    LT_RL_GROUP_MFA,
    LT_RL_GROUP_TOKEN,
    LT_RL_GROUP_INTROSPECTION,
    LT_RL_GROUP_DECISIONS,
    LT_RL_GROUP_ADMIN,
    LT_RL_GROUPS
} lt_rl_group_t;

typedef enum {
    LT_RL_IP = 0,  /* the client IP (lt_req_client_ip) */
    LT_RL_USER,    /* a user id */
    LT_RL_CLIENT,  /* an OAuth client_id or an API key id */
    LT_RL_TENANT,  /* a tenant id */
    LT_RL_KINDS
} lt_rl_kind_t;

/* Audit events written per second at most, whatever trips. */
#define LT_RL_AUDIT_PER_SECOND 10
/* trusted_proxies entries at most. */
#define LT_RL_MAX_PROXIES 64

/**
 * Charges one request of `r`'s route group to the (kind, id) bucket.
 * @return 0: go on (also when no limit is configured for the group and kind);
 *         1: the limit tripped and `r` has been answered with 429 (the handler must return
 *            without answering again).
 */
int lt_http_ratelimit(lt_req_t *r, lt_rl_kind_t kind, const char *id, size_t idlen);

/**
 * The client's IP address, numeric: the socket peer, or the right-most X-Forwarded-For entry
 * not in trusted_proxies when the peer itself is a trusted proxy. Lives as long as `r`.
 */
const char *lt_req_client_ip(lt_req_t *r);

/* ---- wiring (server.c, latchd, api) ---------------------------------------------------- */

typedef struct lt_rl lt_rl_t;

/**
 * Applies the configuration values `rate_limits` (JSON object text, see README) and
 * `trusted_proxies` (CIDRs separated by commas or spaces). The first call also sizes the
 * bucket table (`max_entries`; later changes need a restart and are logged). Until the
 * first call nothing is limited.
 * @return 0, LT_EINVAL (`err` names the member at fault; the previous settings stay),
 *         LT_ENOMEM.
 */
int lt_http_ratelimit_configure(lt_http_server_t *s, const char *rate_limits, const char *trusted_proxies, char *err,
                                size_t errlen) LT_MUSTCHECK;

/** Validates both values without applying them (--check-config). @return 0 or LT_EINVAL. */
int lt_http_ratelimit_check(const char *rate_limits, const char *trusted_proxies, char *err, size_t errlen) LT_MUSTCHECK;

/* What tripped, for the audit hook. `id` is the key as text (the IP for LT_RL_IP). */
typedef struct lt_rl_trip {
    lt_rl_group_t group;
    lt_rl_kind_t kind;
    const char *id;
    size_t idlen;
    double rate;
    uint32_t burst;
    uint32_t retry_after;
} lt_rl_trip_t;

/*
 * Runs on the request's worker thread right after a sampled trip was answered (r is still
 * alive; r->app is the worker's application state). It must not block: queue the write.
 */
typedef void (*lt_rl_audit_fn)(lt_req_t *r, const lt_rl_trip_t *trip, void *data);
void lt_http_ratelimit_set_audit(lt_http_server_t *s, lt_rl_audit_fn fn, void *data);

const char *lt_rl_group_name(lt_rl_group_t g);
const char *lt_rl_kind_name(lt_rl_kind_t k);

/* The group of a route pattern ("/v1/auth/login" -> LT_RL_GROUP_LOGIN). */
lt_rl_group_t lt_rl_classify(const char *pattern);

/* server.c: the server's limiter (route groups, buckets, counters). */
int lt__http_rl_create(const lt_router_t *router, lt_rl_t **out) LT_MUSTCHECK;
void lt__http_rl_destroy(lt_rl_t **rl);
lt_rl_t *lt__http_server_rl(const lt_http_server_t *s);
/* The IP charge of on_req: as lt_http_ratelimit(r, LT_RL_IP, client ip). */
int lt__http_rl_charge_ip(lt_req_t *r);
/* Appends latch_rate_limited_total and latch_rate_limit_* gauges. @return 0 or LT_ENOMEM. */
int lt__http_rl_metrics(const lt_rl_t *rl, lt_buf_t *out) LT_MUSTCHECK;

/* ---- the bucket table (pure; exposed for tests) ---------------------------------------- */

typedef struct lt_rl_limit {
    uint64_t interval_ns;  /* 1e9 / rate; 0 = no limit */
    uint64_t tolerance_ns; /* (burst - 1) * interval */
    uint32_t burst;
    double rate;
} lt_rl_limit_t;

/** rate in (0, 1e9] per second, burst 1..1e6. @return 0 or LT_EINVAL. */
int lt_rl_limit_set(lt_rl_limit_t *l, double rate, uint32_t burst) LT_MUSTCHECK;

typedef struct lt_rl_verdict {
    int allowed;
    uint32_t limit;       /* RateLimit-Limit: the burst */
    uint32_t remaining;   /* RateLimit-Remaining: whole tokens left */
    uint32_t reset;       /* RateLimit-Reset: seconds until the bucket is full (0: it is) */
    uint32_t retry_after; /* when refused: seconds until one token is back, >= 1 */
    uint32_t granted;     /* tokens taken from the bucket (a lease takes several), 0 = refused */
    int audit;            /* refused, and this key was not sampled in the last minute */
} lt_rl_verdict_t;

typedef struct lt_rl_table lt_rl_table_t;

/** A table of about `max_entries` buckets (at least one set). @return 0 or LT_ENOMEM. */
int lt_rl_table_create(size_t max_entries, lt_rl_table_t **out) LT_MUSTCHECK;
void lt_rl_table_destroy(lt_rl_table_t **t);
size_t lt_rl_table_capacity(const lt_rl_table_t *t);
/* Buckets in use (a scan: for metrics and tests). */
size_t lt_rl_table_used(const lt_rl_table_t *t);
/* Buckets evicted while still holding debt (their client got a fresh burst). */
uint64_t lt_rl_table_evictions(const lt_rl_table_t *t);

/**
 * Charges one request of `key` (any bytes; keyed-hashed) against `lim` at `now_ns` (a
 * monotonic clock; 0: lt_monotonic_ns(), read under the set's lock). `v` says whether it is
 * allowed and the header values.
 */
void lt_rl_table_charge(lt_rl_table_t *t, const lt_rl_limit_t *lim, const void *key, size_t keylen, uint64_t now_ns,
                        lt_rl_verdict_t *v);

/**
 * The workers' charge: as lt_rl_table_charge, through the calling thread's leases (see
 * ratelimit.c) for limits fast enough to lease, so a busy key's bucket is touched once per
 * lease instead of once per request. On a leased admission only `allowed`, `granted` and
 * `limit` are meaningful.
 */
void lt_rl_table_charge_leased(lt_rl_table_t *t, const lt_rl_limit_t *lim, const void *key, size_t keylen,
                               uint64_t now_ns, lt_rl_verdict_t *v);

/* ---- client addresses (pure; exposed for tests) ---------------------------------------- */

typedef struct lt_rl_addr {
    int family; /* AF_INET or AF_INET6 (IPv4-mapped IPv6 becomes AF_INET) */
    uint8_t bytes[16];
} lt_rl_addr_t;

typedef struct lt_rl_cidr {
    lt_rl_addr_t net;
    int bits;
} lt_rl_cidr_t;

/** Parses "a.b.c.d", an IPv6 address or "[v6]" (surrounding blanks allowed). @return 0 or LT_EINVAL. */
int lt_rl_addr_parse(const char *s, size_t n, lt_rl_addr_t *out) LT_MUSTCHECK;

/** Parses a trusted_proxies value into at most `cap` CIDRs. @return the count or LT_EINVAL (`err`). */
int lt_rl_cidrs_parse(const char *s, lt_rl_cidr_t *out, int cap, char *err, size_t errlen) LT_MUSTCHECK;

/*
 * The client address for a request from `peer` carrying X-Forwarded-For `xff` (the header
 * values joined with ",", NULL when absent): `peer` unless it is in `cidrs`, else the
 * right-most entry not in `cidrs` (the left-most when all are); `peer` when an entry that
 * had to be read is malformed.
 */
void lt_rl_client_addr(const lt_rl_addr_t *peer, const char *xff, size_t xfflen, const lt_rl_cidr_t *cidrs, int ncidrs,
                       lt_rl_addr_t *out);

#endif
