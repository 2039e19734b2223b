/*
 * fuzz: what the fuzz targets share.
 *
 * Each tests/fuzz/fuzz_<name>.c defines the libFuzzer entry point below. It is called by
 * libFuzzer (-Dfuzzing_engine=libfuzzer) or by replay.c, which runs the checked-in corpus.
 * A broken invariant aborts, which both drivers report as a crash.
 */
#ifndef LT_FUZZ_H
#define LT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                                   \
    do {                                                                                                                   \
        if (!(cond)) {                                                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                  \
            abort();                                                                                                       \
        }                                                                                                                  \
    } while (0)

/* A heap copy of exactly `n` bytes, no terminator, so ASan catches a read past the end. */
static inline char *fuzz_copy(const void *p, size_t n)
{
    char *s = malloc(n != 0 ? n : 1);
    FUZZ_CHECK(s != NULL);
    if (n != 0)
        memcpy(s, p, n);
    return s;
}

/* A NUL-terminated heap copy (it ends at the first NUL byte of the input, if any). */
static inline char *fuzz_strdup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    if (n != 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/*
 * The request-body half of lt_http_read_json (lib/http/response.c), for targets that start
 * where a handler gets its body: the default depth limit, then jansson with the same flag;
 * only an object goes on (as lt_http_read_json answers anything else with 400). fuzz_json_body
 * checks that pre-scan itself. NULL when the API would have refused the body.
 */
#include <jansson.h>

#include "base/base.h"

static inline json_t *fuzz_json_object(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 64 * 1024 || !lt_json_depth_ok((const char *)data, size, 32))
        return NULL;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Validation errors as lt__api_in_* record them: a non-empty array of {field, message},
 * both non-empty strings and nothing else. */
static inline void fuzz_check_errors(const json_t *errors)
{
    size_t i;
    const json_t *e;
    FUZZ_CHECK(json_is_array(errors) && json_array_size(errors) > 0);
    json_array_foreach (errors, i, e) {
        const char *f = json_string_value(json_object_get(e, "field"));
        const char *m = json_string_value(json_object_get(e, "message"));
        FUZZ_CHECK(json_is_object(e) && json_object_size(e) == 2 && f != NULL && m != NULL && m[0] != '\0');
    }
}

/* 1 when every member of `body` is one of the NULL-terminated `known`. */
static inline int fuzz_only_known(const json_t *body, const char *const *known)
{
    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)body, key, v) {
        int ok = 0;
        for (size_t i = 0; known[i] != NULL && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

/* A string field as accepted: NULL, or at most `max` bytes, no NUL, and equal to the body's
 * member `name` (borrowed from it); non-empty when `required`. */
static inline void fuzz_check_str(const json_t *body, const char *name, const char *got, int required, size_t max)
{
    const json_t *v = json_object_get(body, name);
    if (got == NULL) {
        FUZZ_CHECK(!required && v == NULL);
        return;
    }
    FUZZ_CHECK(got == json_string_value(v) && strlen(got) == json_string_length(v) && strlen(got) <= max);
    FUZZ_CHECK(!required || got[0] != '\0');
}

#endif
