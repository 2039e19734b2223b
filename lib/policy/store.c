/*
 * policy/store.c: loading the policy snapshot (see store.h).
 */
#include "policy/store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* Elements of a text[] in text form ("{a,b}"; role names and permissions never need quoting,
 * the CHECKs in sql/0011 see to that). Returns how many, pointing into `buf`. */
static size_t text_array(char *buf, const char **out, size_t cap)
{
    size_t n = 0;
    char *p = buf;
    if (*p == '{')
        p++;
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '}')
        p[--len] = '\0';
    while (*p != '\0' && n < cap) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p == '"') { /* defensive: a quoted element */
            p++;
            size_t k = strlen(p);
            if (k > 0 && p[k - 1] == '"')
                p[k - 1] = '\0';
        }
        out[n++] = p;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}

#define MAX_LIST 256

static PGresult *query(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_store_query_error(r, c, "loading policies", err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static void add_roles(lt_policy_builder_t *b, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *perms[MAX_LIST], *parents[MAX_LIST];
        char *pbuf = strdup(PQgetvalue(r, i, 2)), *qbuf = strdup(PQgetvalue(r, i, 3));
        lt_policy_problem_t p;
        if (pbuf != NULL && qbuf != NULL) {
            size_t np = text_array(pbuf, perms, MAX_LIST), nq = text_array(qbuf, parents, MAX_LIST);
            if (lt_policy_builder_role(b, col(r, i, 0), PQgetvalue(r, i, 1), perms, np, parents, nq, &p) != 0)
                lt_log(LT_LOG_WARN, "policy", "role %s skipped: %s: %s", PQgetvalue(r, i, 1), p.where, p.msg);
        }
        free(pbuf);
        free(qbuf);
    }
}

static void add_documents(lt_policy_builder_t *b, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *doc = json_loads(PQgetvalue(r, i, 2), 0, NULL);
        lt_policy_problem_t p;
        if (doc == NULL || lt_policy_builder_policy(b, col(r, i, 0), PQgetvalue(r, i, 1), doc, &p) != 0)
            lt_log(LT_LOG_WARN, "policy", "policy %s skipped: %s: %s", PQgetvalue(r, i, 1),
                   doc == NULL ? "document" : p.where, doc == NULL ? "not JSON" : p.msg);
        json_decref(doc);
    }
}

static void add_subjects(lt_policy_builder_t *b, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *roles[MAX_LIST];
        char *buf = strdup(PQgetvalue(r, i, 3));
        json_t *attrs = json_loads(PQgetvalue(r, i, 4), 0, NULL);
        if (buf != NULL) {
            size_t n = text_array(buf, roles, MAX_LIST);
            if (lt_policy_builder_subject(b, col(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), roles, n, attrs) != 0)
                lt_log(LT_LOG_WARN, "policy", "subject %s:%s skipped", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        }
        free(buf);
        json_decref(attrs);
    }
}

int lt_policy_load(const char *conninfo, lt_policy_snapshot_t **out, char *err, size_t errlen)
{
    PGresult *roles = NULL, *docs = NULL, *subjects = NULL;
    lt_policy_builder_t *b = NULL;
    int ret = LT_EIO;
    *out = NULL;
    lt_errf(err, errlen, "%s", "");
    PGconn *c = lt_store_connect_blocking(conninfo, "latch-policy", err, errlen);
    if (c == NULL)
        return LT_EUNAVAIL;
    /* One snapshot of the database: a role and the policy naming it are seen together. */
    PGresult *t = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    int began = PQresultStatus(t) == PGRES_COMMAND_OK;
    PQclear(t);
    if (!began) {
        lt_store_query_error(NULL, c, "loading policies", err, errlen);
        goto done;
    }
    if ((roles = query(c, "SELECT * FROM latch_policy_roles()", err, errlen)) == NULL ||
        (docs = query(c, "SELECT * FROM latch_policy_documents()", err, errlen)) == NULL ||
        (subjects = query(c, "SELECT * FROM latch_policy_subjects()", err, errlen)) == NULL)
        goto done;
    PQclear(PQexec(c, "COMMIT"));
    if ((b = lt_policy_builder_new()) == NULL) {
        ret = LT_ENOMEM;
        goto done;
    }
    add_roles(b, roles);
    add_documents(b, docs);
    add_subjects(b, subjects);
    lt_policy_problem_t p;
    ret = lt_policy_builder_finish(b, out, &p);
    if (ret == LT_EINVAL)
        lt_errf(err, errlen, "roles refused: %s: %s", p.where, p.msg);
done:
    lt_policy_builder_free(b);
    PQclear(roles);
    PQclear(docs);
    PQclear(subjects);
    PQfinish(c);
    return ret;
}

int lt_policy_empty(lt_policy_snapshot_t **out)
{
    lt_policy_problem_t p;
    lt_policy_builder_t *b = lt_policy_builder_new();
    if (b == NULL)
        return LT_ENOMEM;
    int ret = lt_policy_builder_finish(b, out, &p);
    lt_policy_builder_free(b);
    return ret;
}
