/*
 * policy_micro: the in-process cost of one decision of the Cerbos peer's document scenario
 * (tests/bench/decisions), through lt_policy_decide on a snapshot built from the same roles
 * and policy files latchd is given by `tests/bench/run decisions`.
 *
 *   policy_micro [--dir DIR] [--iters N] [--rounds R] [--decide-only]
 *
 * DIR (default: tests/bench/decisions of the source tree) holds roles.json, policies/ and
 * bodies/ (the translated benchmark bodies). For each body it checks the decisions against
 * bodies/expected.json first, then times R rounds of N passes over the body's decisions and
 * prints the median ns/decision: decide alone (the request objects are prepared once, as
 * the HTTP handler has them after parsing), and parse + decide (json_loads of the whole
 * body, then every decision, as an AuthZEN request costs without HTTP). --decide-only skips
 * the second (for profiling the engine alone with perf).
 *
 * Not a meson test: it prints numbers and fails only when a decision is wrong.
 * Threading: single-threaded.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/base.h"
#include "policy/engine.h"
#include "policy/files.h"

#ifndef LT_SOURCE_ROOT
#define LT_SOURCE_ROOT "."
#endif

#define TENANT "bench"
#define MAX_ITEMS 64
#define MAX_ROUNDS 51

/* 2026-03-03T10:00:00Z: conditions never read `now` here (the scenario passes its time). */
#define NOW_US (1772532000LL * 1000000)

typedef struct body {
    const char *name; /* file name in bodies/, also the key in expected.json minus "latch_" */
    char *text;
    size_t len;
    json_t *doc;
    lt_policy_request_t q[MAX_ITEMS];
    size_t n;
} body_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = (size_t)n;
out:
    if (f != NULL)
        fclose(f);
    return buf;
}

static size_t strings(const json_t *arr, const char **out, size_t max)
{
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (n < max && json_is_string(it))
            out[n++] = json_string_value(it);
    }
    return n;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The bench tenant's roles and every policy file of DIR/policies, as latchd loads them. */
static lt_policy_snapshot_t *load_snapshot(const char *dir)
{
    char path[4096], err[512];
    lt_policy_builder_t *b = lt_policy_builder_new();
    lt_policy_snapshot_t *s = NULL;
    lt_policy_problem_t p;
    json_error_t je;
    json_t *roles = NULL;
    DIR *d = NULL;
    if (b == NULL)
        goto fail;
    snprintf(path, sizeof(path), "%s/roles.json", dir);
    if ((roles = json_load_file(path, 0, &je)) == NULL) {
        fprintf(stderr, "%s: %d:%d %s\n", path, je.line, je.column, je.text);
        goto fail;
    }
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(roles, "roles"), i, it) {
        const char *perms[16], *parents[16];
        size_t np = strings(json_object_get(it, "permissions"), perms, 16);
        size_t npa = strings(json_object_get(it, "parents"), parents, 16);
        if (lt_policy_builder_role(b, TENANT, json_string_value(json_object_get(it, "name")), perms, np, parents, npa,
                                   &p) != 0) {
            fprintf(stderr, "%s: role %zu: %s %s\n", path, i, p.where, p.msg);
            goto fail;
        }
    }
    snprintf(path, sizeof(path), "%s/policies", dir);
    if ((d = opendir(path)) == NULL) {
        perror(path);
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".yaml") && !has_suffix(e->d_name, ".yml") && !has_suffix(e->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/policies/%s", dir, e->d_name);
        json_t *doc = lt_policy_file_read(path, err, sizeof(err));
        if (doc == NULL) {
            fprintf(stderr, "%s: %s\n", path, err);
            goto fail;
        }
        const char *id = json_string_value(json_object_get(doc, "id"));
        int rc = lt_policy_builder_policy(b, TENANT, id, doc, &p);
        json_decref(doc);
        if (rc != 0) {
            fprintf(stderr, "%s: %s %d:%d %s\n", path, p.where, p.line, p.col, p.msg);
            goto fail;
        }
    }
    if (lt_policy_builder_finish(b, &s, &p) != 0) {
        fprintf(stderr, "snapshot: %s %s\n", p.where, p.msg);
        s = NULL;
    }
fail:
    if (d != NULL)
        closedir(d);
    json_decref(roles);
    lt_policy_builder_free(b);
    return s;
}

/* The decisions of one AuthZEN body (evaluation, or evaluations with defaults replaced whole
 * per item, as lib/api/access.c does), pointing into `doc`. */
static size_t requests_of(const json_t *doc, lt_policy_request_t *q, size_t max)
{
    const json_t *subject = json_object_get(doc, "subject"), *action = json_object_get(doc, "action"),
                 *resource = json_object_get(doc, "resource"), *context = json_object_get(doc, "context");
    const json_t *items = json_object_get(doc, "evaluations");
    if (!json_is_array(items)) {
        q[0] = (lt_policy_request_t){TENANT, subject, resource, action, context, NOW_US, 0};
        return 1;
    }
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (n == max)
            break;
        const json_t *s = json_object_get(it, "subject"), *a = json_object_get(it, "action"),
                     *r = json_object_get(it, "resource"), *c = json_object_get(it, "context");
        q[n++] = (lt_policy_request_t){TENANT, s ? s : subject, r ? r : resource, a ? a : action, c ? c : context,
                                       NOW_US, 0};
    }
    return n;
}

/* Decides every request once; -1 on an engine error, else the number allowed. */
static int decide_all(const lt_policy_snapshot_t *s, const lt_policy_request_t *q, size_t n)
{
    int allows = 0;
    for (size_t i = 0; i < n; i++) {
        lt_policy_decision_t d = {0};
        if (lt_policy_decide(s, &q[i], &d) != 0)
            return -1;
        allows += d.allow != 0;
    }
    return allows;
}

static double median_round(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* ns per decision, median of `rounds` rounds of `iters` passes over the prepared requests. */
static double time_decide(const lt_policy_snapshot_t *s, const body_t *b, long iters, int rounds)
{
    double per[MAX_ROUNDS];
    volatile int sink = 0;
    for (int r = 0; r < rounds; r++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < iters; i++)
            sink += decide_all(s, b->q, b->n);
        per[r] = (double)(now_ns() - t0) / ((double)iters * (double)b->n);
    }
    (void)sink;
    return median_round(per, (size_t)rounds);
}

/* ns per decision including json_loads of the body text and the JSON's release. */
static double time_parse_decide(const lt_policy_snapshot_t *s, const body_t *b, long iters, int rounds)
{
    double per[MAX_ROUNDS];
    volatile int sink = 0;
    lt_policy_request_t q[MAX_ITEMS];
    for (int r = 0; r < rounds; r++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            json_t *doc = json_loadb(b->text, b->len, 0, NULL);
            size_t n = requests_of(doc, q, MAX_ITEMS);
            sink += decide_all(s, q, n);
            json_decref(doc);
        }
        per[r] = (double)(now_ns() - t0) / ((double)iters * (double)b->n);
    }
    (void)sink;
    return median_round(per, (size_t)rounds);
}

static void usage(void)
{
    fprintf(stderr, "usage: policy_micro [--dir DIR] [--iters N] [--rounds R] [--decide-only]\n");
}

int main(int argc, char **argv)
{
    const char *dir = LT_SOURCE_ROOT "/tests/bench/decisions";
    long iters = 100000;
    int rounds = 7, rc = 1, decide_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--decide-only") == 0)
            decide_only = 1;
        else {
            usage();
            return 2;
        }
    }
    if (iters < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        usage();
        return 2;
    }

    body_t bodies[] = {{.name = "single"}, {.name = "batch10"}, {.name = "batch10x3"}};
    const size_t nbodies = sizeof(bodies) / sizeof(bodies[0]);
    char path[4096];
    json_error_t je;
    json_t *expected = NULL;
    lt_policy_snapshot_t *s = load_snapshot(dir);
    if (s == NULL)
        goto out;
    snprintf(path, sizeof(path), "%s/bodies/expected.json", dir);
    if ((expected = json_load_file(path, 0, &je)) == NULL) {
        fprintf(stderr, "%s: %s\n", path, je.text);
        goto out;
    }
    lt_policy_stats_t st;
    lt_policy_snapshot_stats(s, &st);
    printf("policy_micro: %s: %zu roles, %zu policies, %zu rules; %ld iterations x %d rounds, median\n", dir,
           st.roles, st.policies, st.rules, iters, rounds);

    for (size_t k = 0; k < nbodies; k++) {
        body_t *b = &bodies[k];
        snprintf(path, sizeof(path), "%s/bodies/latch_%s.json", dir, b->name);
        if ((b->text = slurp(path, &b->len)) == NULL || (b->doc = json_loadb(b->text, b->len, 0, &je)) == NULL) {
            fprintf(stderr, "%s: cannot read\n", path);
            goto out;
        }
        b->n = requests_of(b->doc, b->q, MAX_ITEMS);
        const json_t *want = json_object_get(expected, b->name);
        int allows = decide_all(s, b->q, b->n);
        if (allows < 0 || (json_int_t)b->n != json_integer_value(json_object_get(want, "decisions")) ||
            allows != json_integer_value(json_object_get(want, "allow"))) {
            fprintf(stderr, "%s: %zu decisions, %d allowed; expected %d and %d\n", b->name, b->n, allows,
                    (int)json_integer_value(json_object_get(want, "decisions")),
                    (int)json_integer_value(json_object_get(want, "allow")));
            goto out;
        }
        /* Batches hold more decisions per pass: keep every body's run about as long. */
        long it = iters / (long)b->n > 0 ? iters / (long)b->n : 1;
        double dec = time_decide(s, b, it, rounds);
        double full = decide_only ? 0 : time_parse_decide(s, b, it, rounds);
        printf("%-10s %2zu decisions (%2d allow): decide %7.0f ns/decision", b->name, b->n, allows, dec);
        if (!decide_only)
            printf("   parse+decide %7.0f ns/decision   (%.1f us per body)", full, full * (double)b->n / 1000.0);
        printf("\n");
    }
    rc = 0;
out:
    for (size_t k = 0; k < nbodies; k++) {
        json_decref(bodies[k].doc);
        free(bodies[k].text);
    }
    json_decref(expected);
    if (s != NULL)
        lt_policy_snapshot_decref(s);
    return rc;
}
