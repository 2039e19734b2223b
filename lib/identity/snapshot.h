/*
 * snapshot: the layout shared by the clients and API-key snapshots (identity-internal).
 *
 * A snapshot is built once from one query and never changed: one block of fixed-size
 * records, an open-addressing index of them by their id (linear probing, at most half full),
 * pointer arrays for NULL-terminated lists, and one arena holding every string. Readers on
 * any thread share it through an atomic reference count. Ids are random and chosen by Latch,
 * so the index needs no defence against chosen collisions; a lookup of an attacker's string
 * only probes. Records hold secret-derived hashes: they are wiped when freed.
 *
 * A module embeds lt_snap_t as the first member of its own opaque snapshot type.
 */
#ifndef LT_IDENTITY_SNAPSHOT_H
#define LT_IDENTITY_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct lt_snap {
    int refs;
    size_t n;        /* records filled so far: count a record before it may fail, so it is wiped */
    size_t cap;      /* index slots: a power of two >= 2 * records */
    size_t size;     /* bytes of a record */
    size_t id_off;   /* offset of the record's `const char *` id */
    void *items;     /* the records */
    uint32_t *slots; /* record index + 1, 0 = empty */
    const char **pp; /* the next free list pointer */
    char *at;        /* the next free arena byte */
    const char **ptrs;
    char *arena;
} lt_snap_t;

/**
 * A snapshot in a block of `outer` bytes (>= sizeof(lt_snap_t): the module's type, whose
 * first member is the lt_snap_t) with room for `n` records of `size` bytes whose id pointer
 * sits at `id_off`, `nptrs` list pointers (each list's words + 1) and `bytes` of strings
 * (each string's length + 1). refs = 1. @return 0 or LT_ENOMEM.
 */
int lt_snap_new(size_t outer, size_t n, size_t size, size_t id_off, size_t nptrs, size_t bytes,
                lt_snap_t **out) LT_MUSTCHECK;
/* Wipes the records and frees the whole block (a failed load; otherwise lt_snap_unref). */
void lt_snap_free(lt_snap_t *s);
/* NULL is allowed by these. */
void lt_snap_ref(lt_snap_t *s);
void lt_snap_unref(lt_snap_t *s);
size_t lt_snap_count(const lt_snap_t *s);

/* Copies (str, n) into the arena, NUL-terminated. */
const char *lt_snap_put(lt_snap_t *s, const char *str, size_t n);
/* Splits a space-separated list into the arena and the pointer arrays (NULL-terminated). */
const char *const *lt_snap_list(lt_snap_t *s, const char *spaced);
/* Words of a space-separated list (for sizing). */
size_t lt_snap_words(const char *spaced);

/** Indexes record `i` (its id already set). @return 0 or LT_EINVAL: the id is there already. */
int lt_snap_index(lt_snap_t *s, size_t i) LT_MUSTCHECK;
/* The record with id (id, n) or NULL. */
const void *lt_snap_find(const lt_snap_t *s, const char *id, size_t n);

#endif
