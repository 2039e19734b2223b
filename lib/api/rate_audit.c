/*
 * rate_audit: the api's side of rate limits (http/ratelimit.h): the `rate_limit.tripped`
 * audit event, and the per-caller charges shared by the surfaces that learn who calls.
 *
 * The audit row is queued on the worker's store and forgotten: the 429 has already been
 * answered, nothing waits for the write, and a store that is down or full only costs the
 * (sampled) event, logged at warn. The limiter already sampled it (one per group, kind and
 * key per minute, LT_RL_AUDIT_PER_SECOND in all), so the advisory lock of the audit chain
 * never becomes a flood's amplifier.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "audit/audit.h"
#include "http/ratelimit.h"
#include "identity/auth.h"

static void audit_written(const char *err, struct pg_result *res, void *data)
{
    (void)res;
    (void)data;
    if (err != NULL)
        lt_log(LT_LOG_WARN, "api", "rate_limit.tripped audit event not written: %s", err);
}

void lt__api_rl_audit(lt_req_t *r, const lt_rl_trip_t *t, void *data)
{
    (void)data;
    lt_api_worker_t *w = lt__api_worker(r);
    char id[160], target[192], details[192];
    if (w == NULL || w->store == NULL)
        return;
    size_t n = t->idlen < sizeof(id) - 1 ? t->idlen : sizeof(id) - 1;
    memcpy(id, t->id, n);
    id[n] = '\0';
    snprintf(target, sizeof(target), "%s:%s", lt_rl_kind_name(t->kind), id);
    snprintf(details, sizeof(details), "{\"group\":\"%s\",\"kind\":\"%s\",\"rate\":%g,\"burst\":%u,\"retry_after\":%u}",
             lt_rl_group_name(t->group), lt_rl_kind_name(t->kind), t->rate, t->burst, t->retry_after);
    const char *p[8] = {
        t->kind == LT_RL_TENANT && lt_auth_uuid_ok(id) ? id : NULL,
        t->kind == LT_RL_USER || t->kind == LT_RL_CLIENT ? id : NULL,
        "rate_limit.tripped",
        target,
        lt_req_client_ip(r),
        r->request_id,
        "denied",
        details,
    };
    int ret = lt_store_query(w->store, &lt_audit_stmt_append, p, 8, audit_written, NULL, NULL);
    if (ret != 0)
        lt_log(LT_LOG_WARN, "api", "rate_limit.tripped audit event not queued: %s", lt_strerror(ret));
}

int lt__api_rl_caller(lt_req_t *r, lt_rl_kind_t kind, const char *id, const char *tenant)
{
    if (id != NULL && lt_http_ratelimit(r, kind, id, strlen(id)) != 0)
        return 1;
    return tenant != NULL && lt_http_ratelimit(r, LT_RL_TENANT, tenant, strlen(tenant)) != 0;
}

int lt__api_rl_tenant_name(lt_req_t *r, const char *name)
{
    /* Names compare trimmed and case-folded (as the SQL looks them up): "Acme" and "ACME "
     * are one tenant and must share a bucket. */
    char folded[128];
    size_t n = 0;
    while (*name == ' ' || *name == '\t')
        name++;
    for (; *name != '\0' && n < sizeof(folded); name++)
        folded[n++] = (char)tolower((unsigned char)*name);
    while (n > 0 && (folded[n - 1] == ' ' || folded[n - 1] == '\t'))
        n--;
    return n > 0 && lt_http_ratelimit(r, LT_RL_TENANT, folded, n) != 0;
}
