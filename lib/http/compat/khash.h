/*
 * compat/khash.h: just enough of klib's khash for <h2o/http2_internal.h> to compile.
 *
 * Debian's libh2o-evloop-dev installs http2_internal.h, which includes "khash.h" from h2o's
 * bundled klib, but not khash.h itself. h2guard.c needs the real h2o_http2_conn_t and
 * h2o_http2_stream_t layouts (read-only: stream counters, windows, the write buffers), so
 * this header declares the hash table type with klib's memory layout (four 32-bit counters,
 * then the flags, keys and values arrays: unchanged in klib since 2011) and lookups written
 * as plain scans of the buckets, which are correct whatever klib's hash function is.
 * Nothing here ever modifies a table.
 *
 * Only the library build puts this directory on the include path (lib/meson.build).
 */
#ifndef LT_HTTP_COMPAT_KHASH_H
#define LT_HTTP_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

/* Bucket i is live unless its 2-bit flag says empty (2) or deleted (1). */
#define lt_kh__flag(flags, i) (((flags)[(i) >> 4] >> (((i)&0xfU) << 1)) & 3U)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                            \
    typedef struct kh_##name##_s {                                                                                     \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                              \
        khint32_t *flags;                                                                                              \
        khint64_t *keys;                                                                                               \
        khval_t *vals;                                                                                                 \
    } kh_##name##_t;                                                                                                   \
    static inline khint_t lt_kh_get_##name(const kh_##name##_t *h, khint64_t key)                                      \
    {                                                                                                                  \
        for (khint_t i = 0; h != NULL && i < h->n_buckets; i++)                                                        \
            if (lt_kh__flag(h->flags, i) == 0 && h->keys[i] == key)                                                    \
                return i;                                                                                              \
        return h != NULL ? h->n_buckets : 0;                                                                           \
    }

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) lt_kh_get_##name(h, k)
#define kh_begin(h) ((khint_t)0)
#define kh_end(h) ((h)->n_buckets)
#define kh_exist(h, x) (lt_kh__flag((h)->flags, (x)) == 0)
#define kh_val(h, x) ((h)->vals[x])
#define kh_size(h) ((h)->size)

#endif
