/*
 * fuzz_form: the application/x-www-form-urlencoded bodies of /oauth2/token, /introspect
 * and /revoke (lt__api_form_parse, lib/api/oauth.c), into an arena of exactly the size
 * lt__api_form_read gives it, so ASan sees any write past it.
 *
 * Input: the body.
 *
 * Invariants:
 * - parse answers 0, or -1 with a non-empty description;
 * - a parsed form has at most LT_API_FORM_MAX parameters with distinct names, each name
 *   and value NUL-terminated inside the arena, valid UTF-8, without NUL, lens[i] the value's
 *   length, and lt__api_form_get finds each value by its name;
 * - the parameters are the body's non-empty '&'-separated pieces in order, and encoding
 *   them again (RFC 3986 unreserved kept, everything else %XX) parses back to the same form;
 * - parsing is deterministic.
 */
#include <string.h>

#include "api/bodies.h"
#include "fuzz.h"

#define ARENA(len) ((len) + 2 * (LT_API_FORM_MAX + 1))

static int parse(const char *body, size_t len, char **arena, lt_api_form_t *f, char *err, size_t errlen)
{
    *arena = malloc(ARENA(len));
    FUZZ_CHECK(*arena != NULL);
    err[0] = '\0';
    return lt__api_form_parse(body, len, *arena, f, err, errlen);
}

static void encode(lt_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c) != NULL) {
            FUZZ_CHECK(lt_buf_append(b, (const char *)&c, 1) == 0);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            FUZZ_CHECK(lt_buf_append(b, e, 3) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char *arena, *arena2, err[128], err2[128];
    lt_api_form_t f, f2;
    int ret = parse(body, size, &arena, &f, err, sizeof(err));
    int ret2 = parse(body, size, &arena2, &f2, err2, sizeof(err2));
    FUZZ_CHECK(ret == ret2);
    if (ret != 0) {
        FUZZ_CHECK(ret == -1 && err[0] != '\0' && strcmp(err, err2) == 0);
        free(arena);
        free(arena2);
        return 0;
    }
    FUZZ_CHECK(f.n >= 0 && f.n <= LT_API_FORM_MAX && f.n == f2.n);
    size_t pieces = 0;
    for (size_t i = 0, start = 0; i <= size; i++)
        if (i == size || body[i] == '&') {
            pieces += i > start;
            start = i + 1;
        }
    FUZZ_CHECK((size_t)f.n == pieces);
    lt_buf_t again = LT_BUF_INIT;
    for (int i = 0; i < f.n; i++) {
        const char *name = f.names[i], *value = f.values[i];
        FUZZ_CHECK(name >= arena && name < arena + ARENA(size) && value >= arena && value < arena + ARENA(size));
        size_t nl = strlen(name), vl = strlen(value);
        FUZZ_CHECK(name + nl < arena + ARENA(size) && value + vl < arena + ARENA(size));
        FUZZ_CHECK(vl == f.lens[i] && nl <= 64);
        FUZZ_CHECK(lt_utf8_count(name, nl) >= 0 && lt_utf8_count(value, vl) >= 0);
        FUZZ_CHECK(lt__api_form_get(&f, name) == value);
        FUZZ_CHECK(strcmp(name, f2.names[i]) == 0 && strcmp(value, f2.values[i]) == 0);
        for (int k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(f.names[k], name) != 0);
        if (i > 0)
            FUZZ_CHECK(lt_buf_append(&again, "&", 1) == 0);
        encode(&again, name, nl);
        FUZZ_CHECK(lt_buf_append(&again, "=", 1) == 0);
        encode(&again, value, vl);
    }
    /* Re-encoded names may pass the 64-byte raw limit (3 bytes per escaped byte): only
     * compare when every encoded name stayed within it. */
    char *arena3, err3[128];
    lt_api_form_t f3;
    char *copy = fuzz_copy(again.base != NULL ? again.base : "", again.len);
    int ret3 = parse(copy, again.len, &arena3, &f3, err3, sizeof(err3));
    if (ret3 == 0) {
        FUZZ_CHECK(f3.n == f.n);
        for (int i = 0; i < f.n; i++)
            FUZZ_CHECK(strcmp(f3.names[i], f.names[i]) == 0 && strcmp(f3.values[i], f.values[i]) == 0 &&
                       f3.lens[i] == f.lens[i]);
    } else {
        FUZZ_CHECK(strstr(err3, "too long") != NULL);
    }
    free(copy);
    free(arena3);
    lt_buf_free(&again);
    free(arena);
    free(arena2);
    return 0;
}
