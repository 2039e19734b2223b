/*
 * Unit tests for lib/base: encodings (RFC 4648 vectors, hex digits, percent decoding and its
 * flags, strict UTF-8 counting), the buffer and its JSON string escaping, the JSON depth
 * scan, constant-time comparison, the holder's reference handling, log levels and the log
 * macro, and lt_read_file's size limit. Temporary files live in /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"

/* ---- base64url ---------------------------------------------------------------------- */

/* RFC 4648 §10, written without padding as base64url is. */
static const struct {
    const char *plain, *enc;
} rfc4648[] = {
    {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void test_b64url_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *plain = rfc4648[i].plain, *enc = rfc4648[i].enc;
        char out[16], dec[16];
        assert_int_equal(lt_b64url_enclen(strlen(plain)), strlen(enc));
        assert_int_equal(lt_b64url_encode(out, plain, strlen(plain)), strlen(enc));
        assert_string_equal(out, enc);
        assert_int_equal(lt_b64url_decode(dec, sizeof(dec), enc, strlen(enc)), (long)strlen(plain));
        assert_memory_equal(dec, plain, strlen(plain));
    }
}

static void test_b64url_round_trips(void **state)
{
    (void)state;
    uint8_t in[70], back[70];
    char enc[100];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t len = lt_b64url_encode(enc, in, n);
        assert_int_equal(len, lt_b64url_enclen(n));
        assert_int_equal(strlen(enc), len);
        assert_null(strpbrk(enc, "+/="));
        assert_int_equal(lt_b64url_decode(back, sizeof(back), enc, len), (long)n);
        assert_memory_equal(back, in, n);
    }
}

static void test_b64url_alphabets_and_padding(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    uint8_t out[8];
    char enc[8];
    lt_b64url_encode(enc, bytes, 3);
    assert_string_equal(enc, "-_-_");
    /* Standard base64 spells the same bytes with '+' and '/'. */
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "+/+/", 4), 3);
    assert_memory_equal(out, bytes, 3);
    /* Padding is optional. */
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zg==", 4), 1);
    assert_int_equal(out[0], 'f');
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zm8=", 4), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zm9vYg==", 8), 4);
    assert_memory_equal(out, "foob", 4);
}

static void test_b64url_rejects_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zm9v!", "Zm 9v", "Zm9v\n", "Zm=9v", "=Zm9", "Z", "Zm9vY", "Zm9vY===", "Zg.", "Zm8\x80",
    };
    uint8_t out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lt_b64url_decode(out, sizeof(out), bad[i], strlen(bad[i])) != LT_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* The length given counts, not a NUL: an embedded NUL is a bad character. */
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zm\0v", 4), LT_EINVAL);
}

/* One value, one spelling: unused low bits of the last character must be zero. */
static void test_b64url_rejects_noncanonical_bits(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zg", 2), 1);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zh", 2), LT_EINVAL);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zv", 2), LT_EINVAL);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zm8", 3), 2);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zm9", 3), LT_EINVAL);
    assert_int_equal(lt_b64url_decode(out, sizeof(out), "Zh==", 4), LT_EINVAL);
}

static void test_b64url_erange_when_cap_small(void **state)
{
    (void)state;
    uint8_t out[6];
    assert_int_equal(lt_b64url_decode(out, 5, "Zm9vYmFy", 8), LT_ERANGE);
    assert_int_equal(lt_b64url_decode(out, 6, "Zm9vYmFy", 8), 6);
    assert_int_equal(lt_b64url_decode(out, 0, "Zg", 2), LT_ERANGE);
    assert_int_equal(lt_b64url_decode(NULL, 0, "", 0), 0);
}

/* ---- hex, comparison, wiping, randomness -------------------------------------------- */

static void test_hex(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[13];
    lt_hex_encode(out, in, sizeof(in));
    assert_string_equal(out, "00017f80abff");
    lt_hex_encode(out, in, 0);
    assert_string_equal(out, "");
}

static void test_hex_digit(void **state)
{
    (void)state;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        assert_int_equal(lt_hex_digit(digits[i]), i);
        assert_int_equal(lt_hex_digit((char)(digits[i] >= 'a' ? digits[i] - 'a' + 'A' : digits[i])), i);
    }
    /* The neighbours of each range, and bytes above 0x7f (negative as a signed char). */
    static const char bad[] = {'/', ':', '@', 'G', '`', 'g', ' ', '\0', '%', '+', (char)0x80, (char)0xff};
    for (size_t i = 0; i < sizeof(bad); i++)
        assert_int_equal(lt_hex_digit(bad[i]), -1);
}

/* ---- percent decoding ---------------------------------------------------------------- */

static void test_pct_decode_escapes(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(lt_pct_decode(out, sizeof(out), "", 0, 0), 0);
    assert_string_equal(out, "");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "plain", 5, 0), 5);
    assert_string_equal(out, "plain");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a%20b%41%6a%6A", 14, 0), 6);
    assert_string_equal(out, "a bAjj");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "%C3%A9", 6, 0), 2); /* bytes, not characters */
    assert_string_equal(out, "\xc3\xa9");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "%25%2541", 8, 0), 4); /* decoded once only */
    assert_string_equal(out, "%%41");
    /* Only `n` bytes are read: the escape cut by it is incomplete. */
    assert_int_equal(lt_pct_decode(out, sizeof(out), "ab%41", 4, 0), LT_EINVAL);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "ab%41", 2, 0), 2);
    assert_string_equal(out, "ab");
}

static void test_pct_decode_rejects(void **state)
{
    (void)state;
    char out[32];
    static const char *const bad[] = {"%", "%2", "a%", "%zz", "%2g", "%g2", "% 20", "%+20", "%-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(lt_pct_decode(out, sizeof(out), bad[i], strlen(bad[i]), 0), LT_EINVAL);
        assert_int_equal(lt_pct_decode(out, sizeof(out), bad[i], strlen(bad[i]), LT_PCT_PLUS | LT_PCT_NO_SLASH),
                         LT_EINVAL);
    }
    /* A NUL, escaped or raw, whatever the flags: the result is a C string. */
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a%00", 4, 0), LT_EINVAL);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a\0b", 3, 0), LT_EINVAL);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a\0b", 3, LT_PCT_PLUS), LT_EINVAL);
}

static void test_pct_decode_flags(void **state)
{
    (void)state;
    char out[32];
    /* '+': literal by default, a space under LT_PCT_PLUS; an escaped '+' is always '+'. */
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a+b%2B", 6, 0), 4);
    assert_string_equal(out, "a+b+");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a+b%2B", 6, LT_PCT_PLUS), 4);
    assert_string_equal(out, "a b+");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "+%20+", 5, LT_PCT_PLUS), 3);
    assert_string_equal(out, "   ");
    /* '/': an escaped one is refused only under LT_PCT_NO_SLASH; a raw one always passes. */
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a%2Fb", 5, 0), 3);
    assert_string_equal(out, "a/b");
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a%2fb", 5, LT_PCT_NO_SLASH), LT_EINVAL);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a%2Fb", 5, LT_PCT_NO_SLASH | LT_PCT_PLUS), LT_EINVAL);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "a/b", 3, LT_PCT_NO_SLASH), 3);
    assert_string_equal(out, "a/b");
}

static void test_pct_decode_room(void **state)
{
    (void)state;
    char out[8];
    /* Exactly length + 1 bytes are needed, the NUL included. */
    assert_int_equal(lt_pct_decode(out, 4, "abc", 3, 0), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(lt_pct_decode(out, 3, "abc", 3, 0), LT_ERANGE);
    assert_int_equal(lt_pct_decode(out, 4, "%61%62%63", 9, 0), 3); /* room is for the output */
    assert_string_equal(out, "abc");
    assert_int_equal(lt_pct_decode(out, 1, "", 0, 0), 0);
    assert_string_equal(out, "");
    assert_int_equal(lt_pct_decode(out, 0, "", 0, 0), LT_ERANGE);
    assert_int_equal(lt_pct_decode(NULL, 0, "a", 1, 0), LT_ERANGE); /* writes nothing */
    /* Errors come in input order: room runs out before the bad escape is reached. */
    assert_int_equal(lt_pct_decode(out, 2, "ab%zz", 5, 0), LT_ERANGE);
    assert_int_equal(lt_pct_decode(out, sizeof(out), "ab%zz", 5, 0), LT_EINVAL);
}

/* ---- UTF-8 -------------------------------------------------------------------------- */

static void test_utf8_count_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long count;
    } ok[] = {
        {"", 0},
        {"ascii", 5},
        {"\x7f", 1},
        {"\xc2\x80", 1},                 /* U+0080, the smallest two-byte form */
        {"\xdf\xbf", 1},                 /* U+07FF */
        {"\xe0\xa0\x80", 1},             /* U+0800, the smallest three-byte form */
        {"\xed\x9f\xbf", 1},             /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", 1},             /* U+E000, just above them */
        {"\xef\xbf\xbf", 1},             /* U+FFFF */
        {"\xf0\x90\x80\x80", 1},         /* U+10000, the smallest four-byte form */
        {"\xf4\x8f\xbf\xbf", 1},         /* U+10FFFF, the last code point */
        {"caf\xc3\xa9 \xe2\x82\xac", 6}, /* "café €" */
        {"\xf0\x9f\x8c\xb8\xf0\x9f\x8d\x80", 2},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(lt_utf8_count(ok[i].s, strlen(ok[i].s)), ok[i].count);
    /* NUL is a code point like any other here (callers refuse it if they must). */
    assert_int_equal(lt_utf8_count("a\0b", 3), 3);
    /* Only `n` bytes are read. */
    assert_int_equal(lt_utf8_count("ab\xff", 2), 2);
    assert_int_equal(lt_utf8_count(NULL, 0), 0);
}

static void test_utf8_count_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x80",             /* a continuation byte without a lead */
        "a\xbf",            /* the same after ASCII */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong U+007F */
        "\xe0\x80\xaf",     /* overlong '/' in three bytes */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* a lead byte beyond U+10FFFF */
        "\xf8\x88\x80\x80\x80", /* five-byte forms are gone */
        "\xfe",
        "\xff",
        "\xc3",             /* truncated at the end */
        "\xe2\x82",
        "\xf0\x9f\x8c",
        "\xc3(",            /* a lead followed by a non-continuation */
        "\xe2\x28\xa1",
        "\xe2\x82\x28",
        "\xf0\x9f\x8c\x28",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lt_utf8_count(bad[i], strlen(bad[i])), -1);
    /* A valid sequence cut by `n` is truncated too. */
    assert_int_equal(lt_utf8_count("\xe2\x82\xac", 2), -1);
}

/* ---- holder ------------------------------------------------------------------------- */

/* A counted object; `freed` records the last release so the test can see when it happened. */
typedef struct counted {
    int refs;
    int *freed;
} counted_t;

static void *counted_ref(void *p)
{
    counted_t *c = p;
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

static void counted_unref(void *p)
{
    counted_t *c = p;
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        (*c->freed)++;
        free(c);
    }
}

static counted_t *counted_new(int *freed)
{
    counted_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    c->refs = 1;
    c->freed = freed;
    return c;
}

static void test_holder(void **state)
{
    (void)state;
    int freed = 0;
    lt_holder_t h;
    assert_int_equal(lt_holder_init(&h, counted_ref, counted_unref), 0);
    assert_null(lt_holder_get(&h)); /* empty until set */

    counted_t *a = counted_new(&freed);
    lt_holder_set(&h, a); /* takes our reference */
    counted_t *got = lt_holder_get(&h);
    assert_ptr_equal(got, a);
    assert_int_equal(a->refs, 2);

    lt_holder_set(&h, counted_new(&freed)); /* drops the holder's reference to a; ours keeps it */
    assert_int_equal(freed, 0);
    assert_int_equal(a->refs, 1);
    counted_unref(got);
    assert_int_equal(freed, 1);

    lt_holder_set(&h, NULL); /* empties it, releasing the second object */
    assert_int_equal(freed, 2);
    assert_null(lt_holder_get(&h));

    lt_holder_set(&h, counted_new(&freed));
    lt_holder_dispose(&h); /* releases what it holds */
    assert_int_equal(freed, 3);
    assert_null(h.lock);
    lt_holder_dispose(&h); /* idempotent */
    lt_holder_dispose(NULL);
    assert_int_equal(freed, 3);
}

static void test_ct_eq(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (size_t i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)i;
    assert_int_equal(lt_ct_eq(a, b, 32), 1);
    b[31] ^= 1;
    assert_int_equal(lt_ct_eq(a, b, 32), 0);
    b[31] ^= 1;
    b[0] ^= 0x80;
    assert_int_equal(lt_ct_eq(a, b, 32), 0);
    assert_int_equal(lt_ct_eq(a, b, 0), 1);
}

static void test_wipe_and_random(void **state)
{
    (void)state;
    uint8_t a[32], b[32], zero[32] = {0};
    assert_int_equal(lt_random(a, sizeof(a)), 0);
    assert_int_equal(lt_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(lt_random(a, 0), 0);
    lt_wipe(a, sizeof(a));
    assert_memory_equal(a, zero, sizeof(a));
}

static void test_strerror_and_clocks(void **state)
{
    (void)state;
    assert_string_equal(lt_strerror(LT_OK), "ok");
    for (int c = LT_EINVAL; c >= LT_EOVERLOAD; c--)
        assert_string_not_equal(lt_strerror(c), "unknown error");
    assert_string_equal(lt_strerror(-99), "unknown error");
    assert_true(lt_now_ms() > UINT64_C(1577836800000)); /* after 2020-01-01 */
    uint64_t t0 = lt_monotonic_ns();
    assert_true(lt_monotonic_ns() >= t0);
}

/* ---- buffer ------------------------------------------------------------------------- */

static void test_buf_append(void **state)
{
    (void)state;
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_buf_append(&b, "ab", 2), 0);
    assert_int_equal(lt_buf_appends(&b, "cd"), 0);
    assert_int_equal(lt_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.base, "abcd");
    /* Grows past the first allocation and stays NUL-terminated. */
    char big[1000];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 5; i++)
        assert_int_equal(lt_buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(b.len, 5004);
    assert_true(b.cap > b.len);
    assert_int_equal(b.base[b.len], '\0');
    assert_int_equal(strlen(b.base), 5004);
    lt_buf_free(&b);
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_buf_appendf(void **state)
{
    (void)state;
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_buf_appendf(&b, "%s", ""), 0);
    assert_non_null(b.base);
    assert_string_equal(b.base, "");
    assert_int_equal(lt_buf_appendf(&b, "%d-%s-%03u", -7, "x", 5u), 0);
    assert_string_equal(b.base, "-7-x-005");
    /* Longer than the first allocation. */
    assert_int_equal(lt_buf_appendf(&b, "%600s|", "y"), 0);
    assert_int_equal(b.len, 8 + 601);
    assert_int_equal(b.base[b.len - 1], '|');
    assert_int_equal(b.base[b.len - 2], 'y');
    assert_int_equal(b.base[b.len], '\0');
    lt_buf_free(&b);
}

static void assert_json_string(const char *in, size_t n, const char *want)
{
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_buf_append_json_string(&b, in, n), 0);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.base, want);
    lt_buf_free(&b);
}

static void test_buf_json_string(void **state)
{
    (void)state;
    assert_json_string("", 0, "\"\"");
    assert_json_string("plain", 5, "\"plain\"");
    assert_json_string("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    assert_json_string("\n\r\t", 3, "\"\\n\\r\\t\"");
    assert_json_string("\x01\x1f\b\f", 4, "\"\\u0001\\u001f\\u0008\\u000c\"");
    assert_json_string("a\0b", 3, "\"a\\u0000b\"");
    assert_json_string("/", 1, "\"/\"");
    /* UTF-8 passes through byte for byte. */
    assert_json_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* Appends after existing content, and escapes grow the buffer past its reservation. */
    lt_buf_t b = LT_BUF_INIT;
    char ctl[300];
    memset(ctl, 0x02, sizeof(ctl));
    assert_int_equal(lt_buf_appends(&b, "x="), 0);
    assert_int_equal(lt_buf_append_json_string(&b, ctl, sizeof(ctl)), 0);
    assert_int_equal(b.len, 2 + 2 + 6 * sizeof(ctl));
    assert_memory_equal(b.base, "x=\"\\u0002", 9);
    assert_string_equal(b.base + b.len - 7, "\\u0002\"");
    lt_buf_free(&b);
}

/* ---- JSON depth --------------------------------------------------------------------- */

static int depth_ok(const char *s, int max)
{
    return lt_json_depth_ok(s, strlen(s), max);
}

static void test_json_depth(void **state)
{
    (void)state;
    assert_int_equal(depth_ok("", 1), 1);
    assert_int_equal(depth_ok("42", 0), 1);
    assert_int_equal(depth_ok("{}", 1), 1);
    assert_int_equal(depth_ok("{}", 0), 0);
    /* Exactly at the limit passes; one more fails. */
    assert_int_equal(depth_ok("[[[1]]]", 3), 1);
    assert_int_equal(depth_ok("[[[1]]]", 2), 0);
    assert_int_equal(depth_ok("{\"a\":[{\"b\":[]}]}", 4), 1);
    assert_int_equal(depth_ok("{\"a\":[{\"b\":[]}]}", 3), 0);
    /* Siblings do not add up. */
    assert_int_equal(depth_ok("[[],[],{},[[]]]", 3), 1);
    assert_int_equal(depth_ok("[[],[],{},[[]]]", 2), 0);
    /* Brackets inside strings do not count, nor do escaped quotes end a string. */
    assert_int_equal(depth_ok("{\"k\":\"[[[[{{{{\"}", 1), 1);
    assert_int_equal(depth_ok("[\"\\\"[[[[\"]", 1), 1);
    assert_int_equal(depth_ok("[\"\\\\\",[[]]]", 2), 0); /* "\\" ends the string */
    assert_int_equal(depth_ok("[\"\\\\\",[[]]]", 3), 1);
    /* The length given bounds the scan. */
    assert_int_equal(lt_json_depth_ok("[[[[", 2, 2), 1);
    /* Deep input is refused whatever follows. */
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = '\0';
    assert_int_equal(depth_ok(deep, 1000), 1);
    assert_int_equal(depth_ok(deep, 999), 0);
}

/* ---- logging ------------------------------------------------------------------------ */

static void test_log_level_parse(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        lt_log_level_t l = (lt_log_level_t)-1;
        assert_int_equal(lt_log_level_parse(names[i], &l), 0);
        assert_int_equal(l, i);
        assert_string_equal(lt_log_level_name(l), names[i]);
    }
    static const char *const bad[] = {"", "INFO", "warning", "err", "info ", "trace"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lt_log_level_t l = LT_LOG_INFO;
        assert_int_equal(lt_log_level_parse(bad[i], &l), LT_EINVAL);
        assert_int_equal(l, LT_LOG_INFO);
    }
    assert_string_equal(lt_log_level_name((lt_log_level_t)7), "unknown");
}

static int evaluated;
static char last_msg[128];

static int count_evaluation(void)
{
    return ++evaluated;
}

static void capture_sink(lt_log_level_t level, const char *module, const char *msg, void *data)
{
    (void)level;
    (void)data;
    snprintf(last_msg, sizeof(last_msg), "%s:%s", module, msg);
}

static void test_log_macro_skips_arguments_below_level(void **state)
{
    (void)state;
    lt_log_level_t saved = lt_log_get_level();
    lt_log_set_sink(capture_sink, NULL);
    lt_log_set_level(LT_LOG_WARN);
    evaluated = 0;
    last_msg[0] = '\0';
    lt_log(LT_LOG_INFO, "test", "n=%d", count_evaluation());
    assert_int_equal(evaluated, 0);
    assert_string_equal(last_msg, "");
    lt_log(LT_LOG_ERROR, "test", "n=%d", count_evaluation());
    assert_int_equal(evaluated, 1);
    assert_string_equal(last_msg, "test:n=1");
    lt_log_set_sink(NULL, NULL); /* back to the stderr sink */
    lt_log_set_level(saved);
}

/* ---- lt_read_file ------------------------------------------------------------------- */

static char *temp_file_of(size_t n)
{
    char *path = strdup("/tmp/latch-test-base-XXXXXX"), *data = malloc(n + 1);
    assert_non_null(path);
    assert_non_null(data);
    memset(data, 'z', n);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    free(data);
    return path;
}

/* Reads a file of `size` bytes with limit `max`; expects `want`. */
static void check_read(size_t size, size_t max, int want)
{
    char *path = temp_file_of(size), *buf = (char *)1;
    size_t len = 12345;
    int ret = lt_read_file(path, max, &buf, &len);
    if (ret != want)
        fail_msg("size %zu, max %zu: got %d, wanted %d", size, max, ret, want);
    if (ret == 0) {
        assert_int_equal(len, size);
        assert_int_equal(buf[len], '\0');
        assert_true(size == 0 || (buf[0] == 'z' && buf[size - 1] == 'z'));
    } else {
        assert_null(buf);
    }
    free(buf);
    unlink(path);
    free(path);
}

static void test_read_file_limits(void **state)
{
    (void)state;
    check_read(0, 0, 0);
    check_read(10, 10, 0);
    check_read(10, 9, LT_ERANGE);
    check_read(4096, 4096, 0); /* the first allocation, exactly */
    check_read(4096, 4095, LT_ERANGE);
    check_read(5000, 5000, 0);
    check_read(5000, 4999, LT_ERANGE);
    check_read(100000, 100000, 0);
    check_read(100000, 65536, LT_ERANGE);
    check_read(5000, SIZE_MAX, 0); /* "no limit" must not wrap around */
}

static void test_read_file_errors(void **state)
{
    (void)state;
    char *buf = (char *)1;
    assert_int_equal(lt_read_file("/nonexistent/latch", 100, &buf, NULL), LT_EIO);
    assert_null(buf);
    assert_int_equal(lt_read_file("/tmp", 100, &buf, NULL), LT_EIO); /* a directory */
    assert_null(buf);
    char *path = temp_file_of(3);
    assert_int_equal(lt_read_file(path, 100, &buf, NULL), 0); /* outlen is optional */
    assert_string_equal(buf, "zzz");
    free(buf);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_round_trips),
        cmocka_unit_test(test_b64url_alphabets_and_padding),
        cmocka_unit_test(test_b64url_rejects_bad_input),
        cmocka_unit_test(test_b64url_rejects_noncanonical_bits),
        cmocka_unit_test(test_b64url_erange_when_cap_small),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_hex_digit),
        cmocka_unit_test(test_pct_decode_escapes),
        cmocka_unit_test(test_pct_decode_rejects),
        cmocka_unit_test(test_pct_decode_flags),
        cmocka_unit_test(test_pct_decode_room),
        cmocka_unit_test(test_utf8_count_valid),
        cmocka_unit_test(test_utf8_count_invalid),
        cmocka_unit_test(test_holder),
        cmocka_unit_test(test_ct_eq),
        cmocka_unit_test(test_wipe_and_random),
        cmocka_unit_test(test_strerror_and_clocks),
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_appendf),
        cmocka_unit_test(test_buf_json_string),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_macro_skips_arguments_below_level),
        cmocka_unit_test(test_read_file_limits),
        cmocka_unit_test(test_read_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
