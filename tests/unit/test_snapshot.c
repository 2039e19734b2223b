/*
 * Unit tests for lib/identity/snapshot.c: records indexed by id (found, missing, a prefix or
 * an extension of an id, an embedded NUL), duplicate ids refused, lists and strings in the
 * arena, and the reference count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "identity/snapshot.h"

typedef struct {
    int n;
    const char *id;
    const char *const *words;
} rec_t;

static void test_index_and_find(void **state)
{
    (void)state;
    lt_snap_t *s;
    const char *ids[] = {"aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff", "gggg", "hhhh", "iiii"};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    assert_int_equal(lt_snap_words(" x  y z "), 3);
    assert_int_equal(lt_snap_words(""), 0);
    assert_int_equal(lt_snap_new(0, n, sizeof(rec_t), offsetof(rec_t, id), n * 4, n * 16, &s), 0);
    assert_true(s->cap >= 2 * n);
    assert_null(lt_snap_find(s, "aaaa", 4)); /* empty */
    assert_null(lt_snap_find(NULL, "aaaa", 4));
    for (size_t i = 0; i < n; i++) {
        rec_t *r = &((rec_t *)s->items)[i];
        s->n = i + 1;
        r->n = (int)i;
        r->id = lt_snap_put(s, ids[i], 4);
        r->words = lt_snap_list(s, i % 2 ? "read write" : "");
        assert_int_equal(lt_snap_index(s, i), 0);
    }
    for (size_t i = 0; i < n; i++) {
        const rec_t *r = lt_snap_find(s, ids[i], 4);
        assert_non_null(r);
        assert_int_equal(r->n, (int)i);
        if (i % 2) {
            assert_string_equal(r->words[0], "read");
            assert_string_equal(r->words[1], "write");
            assert_null(r->words[2]);
        } else {
            assert_null(r->words[0]);
        }
    }
    assert_null(lt_snap_find(s, "zzzz", 4));
    assert_null(lt_snap_find(s, "aaa", 3));   /* a prefix of an id */
    assert_null(lt_snap_find(s, "aaaaa", 5)); /* an id and more */
    assert_null(lt_snap_find(s, "aa\0a", 4)); /* an embedded NUL */
    assert_int_equal(lt_snap_count(s), n);
    assert_int_equal(lt_snap_count(NULL), 0);
    lt_snap_ref(s); /* two references: the first unref leaves it, the second frees (ASan) */
    lt_snap_unref(s);
    assert_non_null(lt_snap_find(s, "iiii", 4));
    lt_snap_unref(s);
    lt_snap_ref(NULL);
    lt_snap_unref(NULL);
}

static void test_duplicate_id_refused(void **state)
{
    (void)state;
    lt_snap_t *s;
    assert_int_equal(lt_snap_new(0, 2, sizeof(rec_t), offsetof(rec_t, id), 2, 16, &s), 0);
    rec_t *r = s->items;
    s->n = 2;
    r[0].id = lt_snap_put(s, "same", 4);
    r[1].id = lt_snap_put(s, "same", 4);
    assert_int_equal(lt_snap_index(s, 0), 0);
    assert_int_equal(lt_snap_index(s, 1), LT_EINVAL);
    lt_snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_and_find),
        cmocka_unit_test(test_duplicate_id_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
