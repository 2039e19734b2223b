/*
 * access: decisions for other services, in the shape of the OpenID AuthZEN Authorization
 * API 1.0.
 *
 *   POST /access/v1/evaluation               {subject, action, resource, context?} -> {decision}
 *   POST /access/v1/evaluations              defaults + evaluations[] + options -> {evaluations}
 *   GET  /.well-known/authzen-configuration  PDP metadata
 *
 * Callers are OAuth clients holding the `decide` permission (client_secret_basic); a
 * decision is made within the client's tenant and sees that tenant's roles, policies and
 * subjects plus the global ones. Everything is answered from the worker's policy snapshot:
 * no database, no lock, no blocking.
 *
 * Shapes follow the specification: a deny is 200 {"decision": false}; 400 is for a payload
 * that is not a valid request (problem+json naming the member); unknown members are
 * ignored. In a batch, items inherit the top-level subject/action/resource/context as
 * whole objects; an item that is not valid is answered in place with decision false and
 * an error under its context (execute_all), so the answer has the request's length and
 * order. deny_on_first_deny and permit_on_first_permit stop after the first deny or permit
 * and answer the items evaluated so far. `options.explain: true` (a Latch extension; unknown
 * options are ignored by other PDPs) puts each decision's explanation under its context.
 *
 * Threading: everything runs on the request's worker thread.
 */
#include <h2o.h>
#include <stdio.h>
#include <string.h>

#include "api/bodies.h"
#include "api/internal.h"

/* Items in one batch: beyond it, 400. */
#define MAX_EVALUATIONS 1000

static int object_or_absent(const json_t *v)
{
    return v == NULL || json_is_object(v);
}

/* Why an AuthZEN request (after defaults) is not valid, or NULL. `field` names the member. */
static const char *invalid_member(const json_t *subject, const json_t *action, const json_t *resource,
                                  const json_t *context, const char **field)
{
    *field = "subject";
    if (!json_is_object(subject))
        return "is required and must be an object";
    if (!json_is_string(json_object_get(subject, "type")) || !json_is_string(json_object_get(subject, "id"))) {
        *field = "subject";
        return "must have string members type and id";
    }
    if (!object_or_absent(json_object_get(subject, "properties"))) {
        *field = "subject.properties";
        return "must be an object";
    }
    *field = "action";
    if (!json_is_object(action))
        return "is required and must be an object";
    if (!json_is_string(json_object_get(action, "name")))
        return "must have a string member name";
    if (!object_or_absent(json_object_get(action, "properties"))) {
        *field = "action.properties";
        return "must be an object";
    }
    *field = "resource";
    if (!json_is_object(resource))
        return "is required and must be an object";
    if (!json_is_string(json_object_get(resource, "type")) || !json_is_string(json_object_get(resource, "id")))
        return "must have string members type and id";
    if (!object_or_absent(json_object_get(resource, "properties"))) {
        *field = "resource.properties";
        return "must be an object";
    }
    *field = "context";
    if (!object_or_absent(context))
        return "must be an object";
    return NULL;
}

static void bad_request(lt_req_t *r, const char *field, const char *why)
{
    lt_http_problem_fields(r, 400, "invalid_request", "The evaluation request is not valid.",
                           json_pack("[{s:s, s:s}]", "field", field, "message", why));
}

/* The calling client, if it may ask for decisions; else answered (401/403). Returns its
 * tenant id in the request pool. */
static const char *decider_tenant(lt_req_t *r)
{
    const lt_client_t *c = lt__api_caller_client(r, NULL); /* a client, or an API key */
    if (c == NULL)
        return NULL;
    if (!lt_client_has_permission(c, "decide")) {
        lt_http_problem(r, 403, "forbidden", "This client may not ask for decisions (it needs the decide permission).");
        return NULL;
    }
    return lt__api_pool_strdup(r, c->tenant_id);
}

static int explain_wanted(const json_t *body)
{
    return json_is_true(json_object_get(json_object_get(body, "options"), "explain"));
}

static int decide_at(const lt_policy_snapshot_t *snap, int64_t now_us, const char *tenant, const json_t *subject,
                     const json_t *action, const json_t *resource, const json_t *context, int explain,
                     lt_policy_decision_t *d)
{
    lt_policy_request_t q = {
        .tenant = tenant,
        .subject = subject,
        .resource = resource,
        .action = action,
        .context = context,
        .now_us = now_us,
        .explain = explain,
    };
    return lt_policy_decide(snap, &q, d);
}

int lt__api_decide(lt_req_t *r, const char *tenant, const json_t *subject, const json_t *action,
                   const json_t *resource, const json_t *context, int explain, lt_policy_decision_t *d)
{
    return decide_at(lt__api_worker(r)->snapshot, (int64_t)lt_now_ms() * 1000, tenant, subject, action, resource,
                     context, explain, d);
}

/* One decision as the response item: {decision[, context: {explanation}]}. NULL on ENOMEM. */
static json_t *decide_one(const lt_policy_snapshot_t *snap, int64_t now_us, const char *tenant, const json_t *subject,
                          const json_t *action, const json_t *resource, const json_t *context, int explain)
{
    lt_policy_decision_t d = {0};
    int ret = decide_at(snap, now_us, tenant, subject, action, resource, context, explain, &d);
    if (ret == LT_ENOMEM) {
        json_decref(d.explanation);
        return NULL;
    }
    json_t *item = json_pack("{s:b}", "decision", ret == 0 && d.allow);
    if (item != NULL && d.explanation != NULL)
        json_object_set_new(item, "context", json_pack("{s:o}", "explanation", d.explanation));
    else
        json_decref(d.explanation);
    return item;
}

static int evaluation(const lt_policy_snapshot_t *snap, const char *tenant, const json_t *body, int64_t now_us,
                      json_t **out, const char **field, const char **why)
{
    const json_t *subject = json_object_get(body, "subject"), *action = json_object_get(body, "action"),
                 *resource = json_object_get(body, "resource"), *context = json_object_get(body, "context");
    if ((*why = invalid_member(subject, action, resource, context, field)) != NULL)
        return LT_EINVAL;
    *out = decide_one(snap, now_us, tenant, subject, action, resource, context, explain_wanted(body));
    return *out != NULL ? 0 : LT_ENOMEM;
}

typedef enum { EXECUTE_ALL, DENY_ON_FIRST_DENY, PERMIT_ON_FIRST_PERMIT } semantic_t;

/* The member of an item, else the top-level default. */
static const json_t *member(const json_t *item, const json_t *body, const char *name)
{
    const json_t *v = json_object_get(item, name);
    return v != NULL ? v : json_object_get(body, name);
}

static int evaluations(const lt_policy_snapshot_t *snap, const char *tenant, const json_t *body, int64_t now_us,
                       json_t **result, const char **field_out, const char **why_out)
{
    const json_t *items = json_object_get(body, "evaluations"), *options = json_object_get(body, "options");
    const char *sem = json_string_value(json_object_get(options, "evaluations_semantic"));
    semantic_t semantic = EXECUTE_ALL;
    const char *field = NULL, *why = NULL;
    if (items != NULL && !json_is_array(items))
        field = "evaluations", why = "must be an array";
    else if (json_array_size(items) > MAX_EVALUATIONS)
        field = "evaluations", why = "must hold at most 1000 items";
    else if (!object_or_absent(options))
        field = "options", why = "must be an object";
    else if (sem != NULL && strcmp(sem, "deny_on_first_deny") == 0)
        semantic = DENY_ON_FIRST_DENY;
    else if (sem != NULL && strcmp(sem, "permit_on_first_permit") == 0)
        semantic = PERMIT_ON_FIRST_PERMIT;
    else if (json_object_get(options, "evaluations_semantic") != NULL && (sem == NULL || strcmp(sem, "execute_all") != 0))
        field = "options.evaluations_semantic", why = "must be execute_all, deny_on_first_deny or permit_on_first_permit";
    if (why != NULL) {
        *field_out = field, *why_out = why;
        return LT_EINVAL;
    }
    int explain = explain_wanted(body);
    json_t *out = json_array();
    size_t n = json_array_size(items);
    if (n == 0) { /* no evaluations: behaves as a single evaluation of the defaults */
        const json_t *s = json_object_get(body, "subject"), *a = json_object_get(body, "action"),
                     *res = json_object_get(body, "resource"), *c = json_object_get(body, "context");
        if ((why = invalid_member(s, a, res, c, &field)) != NULL) {
            *field_out = field, *why_out = why;
            json_decref(out);
            return LT_EINVAL;
        }
        if (out != NULL && json_array_append_new(out, decide_one(snap, now_us, tenant, s, a, res, c, explain)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    for (size_t i = 0; i < n && out != NULL; i++) {
        const json_t *item = json_array_get(items, i);
        json_t *answer;
        if (!json_is_object(item)) {
            answer = json_pack("{s:b, s:{s:{s:s, s:s}}}", "decision", 0, "context", "error", "status", "400", "message",
                               "an evaluation must be an object");
        } else {
            const json_t *s = member(item, body, "subject"), *a = member(item, body, "action"),
                         *res = member(item, body, "resource"), *c = member(item, body, "context");
            if ((why = invalid_member(s, a, res, c, &field)) != NULL) {
                char msg[160];
                snprintf(msg, sizeof(msg), "%s %s", field, why);
                answer = json_pack("{s:b, s:{s:{s:s, s:s}}}", "decision", 0, "context", "error", "status", "400",
                                   "message", msg);
            } else {
                answer = decide_one(snap, now_us, tenant, s, a, res, c, explain);
            }
        }
        if (answer == NULL) {
            json_decref(out);
            out = NULL;
            break;
        }
        int allow = json_is_true(json_object_get(answer, "decision"));
        json_array_append_new(out, answer);
        if ((semantic == DENY_ON_FIRST_DENY && !allow) || (semantic == PERMIT_ON_FIRST_PERMIT && allow))
            break;
    }
    *result = out != NULL ? json_pack("{s:o}", "evaluations", out) : NULL;
    return *result != NULL ? 0 : LT_ENOMEM;
}

int lt__api_authzen(const lt_policy_snapshot_t *snap, const char *tenant, const json_t *body, int batch, int64_t now_us,
                    json_t **out, const char **field, const char **why)
{
    *out = NULL;
    *field = *why = NULL;
    int ret = batch ? evaluations(snap, tenant, body, now_us, out, field, why)
                    : evaluation(snap, tenant, body, now_us, out, field, why);
    if (ret != LT_EINVAL)
        *field = *why = NULL; /* invalid_member names each member it looks at */
    return ret;
}

static int answer(lt_req_t *r, int batch)
{
    const char *tenant = decider_tenant(r), *field, *why;
    json_t *body = NULL, *out;
    if (tenant == NULL || lt_http_read_json(r, &body) != 0)
        return 0;
    int ret = lt__api_authzen(lt__api_worker(r)->snapshot, tenant, body, batch, (int64_t)lt_now_ms() * 1000, &out,
                              &field, &why);
    json_decref(body);
    if (ret == LT_EINVAL)
        bad_request(r, field, why);
    else if (ret != 0)
        lt__api_internal_error(r, "out of memory deciding");
    else
        lt_http_send_json(r, 200, out);
    return 0;
}

static int on_evaluation(lt_req_t *r)
{
    return answer(r, 0);
}

static int on_evaluations(lt_req_t *r)
{
    return answer(r, 1);
}

static int on_configuration(lt_req_t *r)
{
    const char *iss = lt__api_worker(r)->api->cfg->issuer;
    char eval[512], evals[512];
    snprintf(eval, sizeof(eval), "%s/access/v1/evaluation", iss);
    snprintf(evals, sizeof(evals), "%s/access/v1/evaluations", iss);
    lt_http_send_json(r, 200,
                      json_pack("{s:s, s:s, s:s}", "policy_decision_point", iss, "access_evaluation_endpoint", eval,
                                "access_evaluations_endpoint", evals));
    return 0;
}

int lt__api_access_routes(lt_api_t *api, lt_router_t *router)
{
    (void)api;
    int ret = 0;
    ret = ret ? ret : lt_router_add(router, "POST", "/access/v1/evaluation", on_evaluation, 0);
    ret = ret ? ret : lt_router_add(router, "POST", "/access/v1/evaluations", on_evaluations, 0);
    ret = ret ? ret : lt_router_add(router, "GET", "/.well-known/authzen-configuration", on_configuration, 0);
    return ret;
}
