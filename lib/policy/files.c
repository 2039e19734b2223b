/*
 * policy/files.c: policy documents from files (see files.h).
 */
#include "policy/files.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "policy/engine.h"
#include "store/store.h"

#define MAX_FILE (1 << 20)
#define MAX_FILES 1000
#define YAML_MAX_DEPTH 64

/* ---- YAML -> JSON ---------------------------------------------------------------------- */

static int plain_is(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* A plain scalar typed as YAML 1.1's core types do (quoted scalars are always strings). */
static json_t *yaml_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (plain_is(s, nulls))
        return json_null();
    if (plain_is(s, trues))
        return json_true();
    if (plain_is(s, falses))
        return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (len > 0 && *end == '\0' && errno == 0)
        return json_integer(i);
    errno = 0;
    double d = strtod(s, &end);
    if (len > 0 && *end == '\0' && errno == 0 && strspn(s, "+-0123456789.eE") == len)
        return json_real(d);
    return json_stringn(s, len);
}

static json_t *yaml_node(yaml_document_t *doc, yaml_node_t *n, int depth, char *err, size_t errlen)
{
    if (n == NULL || depth > YAML_MAX_DEPTH) {
        lt_errf(err, errlen, "nested too deeply");
        return NULL;
    }
    json_t *out = NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return yaml_scalar(n);
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; out != NULL && it < n->data.sequence.items.top; it++) {
            json_t *v = yaml_node(doc, yaml_document_get_node(doc, *it), depth + 1, err, errlen);
            if (v == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, v);
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; out != NULL && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                lt_errf(err, errlen, "line %zu: keys must be strings", k != NULL ? k->start_mark.line + 1 : 0);
                json_decref(out);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            if (json_object_get(out, key) != NULL) {
                lt_errf(err, errlen, "line %zu, column %zu: duplicate key \"%s\"", k->start_mark.line + 1,
                        k->start_mark.column + 1, key);
                json_decref(out);
                return NULL;
            }
            json_t *v = yaml_node(doc, yaml_document_get_node(doc, p->value), depth + 1, err, errlen);
            if (v == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, key, v);
        }
        return out;
    default:
        lt_errf(err, errlen, "an empty document");
        return NULL;
    }
}

static json_t *yaml_read(const char *text, size_t n, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *out = NULL;
    if (!yaml_parser_initialize(&parser)) {
        lt_errf(err, errlen, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) {
        lt_errf(err, errlen, "line %zu, column %zu: %s", parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                parser.problem != NULL ? parser.problem : "not YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL)
        lt_errf(err, errlen, "an empty document");
    else
        out = yaml_node(&doc, root, 0, err, errlen);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}

/* ---- files ----------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

json_t *lt_policy_file_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        lt_errf(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf != NULL ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > MAX_FILE) {
        lt_errf(err, errlen, buf == NULL ? "out of memory" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    json_t *doc = NULL;
    if (ends_with(path, ".json")) {
        json_error_t je;
        doc = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
        if (doc == NULL)
            lt_errf(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
    } else {
        doc = yaml_read(buf, n, err, errlen);
    }
    free(buf);
    if (doc != NULL && !json_is_object(doc)) {
        lt_errf(err, errlen, "a policy document must be an object");
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

static int policy_file(const struct dirent *e)
{
    return e->d_name[0] != '.' &&
           (ends_with(e->d_name, ".json") || ends_with(e->d_name, ".yaml") || ends_with(e->d_name, ".yml"));
}

/* The file name without its extension: the policy id when the document names none. */
static void stem(const char *name, char *out, size_t cap)
{
    size_t n = strnlen(name, cap - 1);
    memcpy(out, name, n);
    out[n] = '\0';
    char *dot = strrchr(out, '.');
    if (dot != NULL)
        *dot = '\0';
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

int lt_policy_apply_dir(const char *conninfo, const char *dir, const char *tenant, FILE *out, char *err,
                        size_t errlen)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, policy_file, alphasort);
    if (n < 0) {
        lt_errf(err, errlen, "%s: %s", dir, strerror(errno));
        return LT_EIO;
    }
    json_t **docs = calloc((size_t)(n > 0 ? n : 1), sizeof(*docs));
    char(*ids)[129] = calloc((size_t)(n > 0 ? n : 1), sizeof(*ids));
    int ret = docs == NULL || ids == NULL ? LT_ENOMEM : n > MAX_FILES ? LT_EINVAL : 0, bad = 0;
    PGconn *c = NULL;
    for (int i = 0; ret == 0 && i < n; i++) {
        char path[4096], why[256] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        docs[i] = lt_policy_file_read(path, why, sizeof(why));
        if (docs[i] == NULL) {
            fprintf(out, "%s: %s\n", names[i]->d_name, why);
            bad = 1;
            continue;
        }
        const char *id = json_string_value(json_object_get(docs[i], "id"));
        if (id != NULL)
            snprintf(ids[i], sizeof(ids[i]), "%s", id);
        else
            stem(names[i]->d_name, ids[i], sizeof(ids[i]));
        json_t *problems = lt_policy_validate(docs[i]);
        size_t k;
        json_t *p;
        json_array_foreach(problems, k, p) {
            json_t *line = json_object_get(p, "line");
            if (line != NULL)
                fprintf(out, "%s: %s %lld:%lld: %s\n", names[i]->d_name, json_string_value(json_object_get(p, "where")),
                        (long long)json_integer_value(line), (long long)json_integer_value(json_object_get(p, "column")),
                        json_string_value(json_object_get(p, "message")));
            else
                fprintf(out, "%s: %s: %s\n", names[i]->d_name, json_string_value(json_object_get(p, "where")),
                        json_string_value(json_object_get(p, "message")));
            bad = 1;
        }
        if (problems == NULL || !json_is_string(json_object_get(docs[i], "resource_type"))) {
            fprintf(out, "%s: /resource_type: is required\n", names[i]->d_name);
            bad = 1;
        }
        json_decref(problems);
    }
    if (ret == 0 && bad) {
        lt_errf(err, errlen, "invalid policy files: nothing applied");
        ret = LT_EINVAL;
    }
    if (ret == 0 && (c = lt_store_connect_blocking(conninfo, "latchctl-policies", err, errlen)) == NULL)
        ret = LT_EUNAVAIL;
    char tenant_id[40] = "";
    if (ret == 0 && tenant != NULL) {
        const char *p[] = {tenant};
        PGresult *r = PQexecParams(c, "SELECT id FROM tenants WHERE name = $1", 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            lt_store_query_error(r, c, "looking up the tenant", err, errlen);
            ret = LT_EIO;
        } else if (PQntuples(r) != 1) {
            lt_errf(err, errlen, "no tenant %s", tenant);
            ret = LT_ENOTFOUND;
        } else {
            snprintf(tenant_id, sizeof(tenant_id), "%s", PQgetvalue(r, 0, 0));
        }
        PQclear(r);
    }
    if (ret == 0 && !exec_ok(c, "BEGIN")) {
        lt_store_query_error(NULL, c, "starting a transaction", err, errlen);
        ret = LT_EIO;
    }
    for (int i = 0; ret == 0 && i < n; i++) {
        char *text = json_dumps(docs[i], JSON_COMPACT);
        const char *p[] = {tenant != NULL ? tenant_id : NULL, ids[i],
                           json_string_value(json_object_get(docs[i], "resource_type")), text};
        PGresult *r = text == NULL ? NULL
                                   : PQexecParams(c,
                                                  "SELECT code, body->>'version' FROM latch_admin_policy_put(NULL,"
                                                  " $1::uuid, $2, $3, $4::jsonb, 'latchctl', NULL, NULL)",
                                                  4, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            lt_store_query_error(r, c, names[i]->d_name, err, errlen);
            ret = LT_EIO;
        } else {
            fprintf(out, "%s: policy %s version %s\n", names[i]->d_name, ids[i], PQgetvalue(r, 0, 1));
        }
        PQclear(r);
        free(text);
    }
    if (c != NULL && !exec_ok(c, ret == 0 ? "COMMIT" : "ROLLBACK") && ret == 0) {
        lt_store_query_error(NULL, c, "committing", err, errlen);
        ret = LT_EIO;
    }
    PQfinish(c);
    for (int i = 0; i < n; i++) {
        if (docs != NULL)
            json_decref(docs[i]);
        free(names[i]);
    }
    free(names);
    free(docs);
    free(ids);
    return ret;
}
