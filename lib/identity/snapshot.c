/*
 * snapshot.c: see snapshot.h.
 */
#include "identity/snapshot.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *id_of(const lt_snap_t *s, size_t i)
{
    const char *rec = (const char *)s->items + i * s->size;
    const char *id;
    memcpy(&id, rec + s->id_off, sizeof(id));
    return id;
}

int lt_snap_new(size_t outer, size_t n, size_t size, size_t id_off, size_t nptrs, size_t bytes, lt_snap_t **out)
{
    lt_snap_t *s = calloc(1, outer > sizeof(*s) ? outer : sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return LT_ENOMEM;
    s->refs = 1;
    s->size = size;
    s->id_off = id_off;
    s->cap = 8;
    while (s->cap < 2 * n)
        s->cap *= 2;
    s->items = calloc(n > 0 ? n : 1, size);
    s->slots = calloc(s->cap, sizeof(*s->slots));
    s->ptrs = calloc(nptrs > 0 ? nptrs : 1, sizeof(*s->ptrs));
    s->arena = malloc(bytes > 0 ? bytes : 1);
    if (s->items == NULL || s->slots == NULL || s->ptrs == NULL || s->arena == NULL) {
        lt_snap_free(s);
        return LT_ENOMEM;
    }
    s->pp = s->ptrs;
    s->at = s->arena;
    *out = s;
    return 0;
}

void lt_snap_free(lt_snap_t *s)
{
    if (s == NULL)
        return;
    if (s->items != NULL) /* the hashes are secret-derived: no copies left behind */
        lt_wipe(s->items, s->n * s->size);
    free(s->items);
    free(s->slots);
    free(s->ptrs);
    free(s->arena);
    free(s);
}

void lt_snap_ref(lt_snap_t *s)
{
    if (s != NULL)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void lt_snap_unref(lt_snap_t *s)
{
    if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        lt_snap_free(s);
}

size_t lt_snap_count(const lt_snap_t *s)
{
    return s != NULL ? s->n : 0;
}

const char *lt_snap_put(lt_snap_t *s, const char *str, size_t n)
{
    char *p = s->at;
    memcpy(p, str, n);
    p[n] = '\0';
    s->at += n + 1;
    return p;
}

size_t lt_snap_words(const char *spaced)
{
    size_t n = 0;
    for (const char *p = spaced; *p != '\0';) {
        p += strspn(p, " ");
        if (*p == '\0')
            break;
        n++;
        p += strcspn(p, " ");
    }
    return n;
}

const char *const *lt_snap_list(lt_snap_t *s, const char *spaced)
{
    const char **list = s->pp;
    size_t k = 0;
    for (const char *p = spaced; *p != '\0';) {
        p += strspn(p, " ");
        if (*p == '\0')
            break;
        size_t n = strcspn(p, " ");
        list[k++] = lt_snap_put(s, p, n);
        p += n;
    }
    list[k] = NULL;
    s->pp = list + k + 1;
    return list;
}

int lt_snap_index(lt_snap_t *s, size_t i)
{
    const char *id = id_of(s, i);
    size_t mask = s->cap - 1, k = (size_t)hash_id(id, strlen(id)) & mask;
    for (; s->slots[k] != 0; k = (k + 1) & mask)
        if (strcmp(id_of(s, s->slots[k] - 1), id) == 0) /* UNIQUE in the table */
            return LT_EINVAL;
    s->slots[k] = (uint32_t)i + 1;
    return 0;
}

const void *lt_snap_find(const lt_snap_t *s, const char *id, size_t n)
{
    if (s == NULL || id == NULL || s->n == 0)
        return NULL;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)hash_id(id, n) & mask;; i = (i + 1) & mask) {
        uint32_t slot = s->slots[i];
        if (slot == 0)
            return NULL;
        const char *have = id_of(s, slot - 1);
        if (strnlen(have, n + 1) == n && memcmp(have, id, n) == 0)
            return (const char *)s->items + (size_t)(slot - 1) * s->size;
    }
}
