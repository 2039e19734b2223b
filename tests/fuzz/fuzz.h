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

#endif
