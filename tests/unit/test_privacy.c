/*
 * Unit tests for the privacy helpers: masking of emails and IPs for log lines (lib/base),
 * the safety net in lt_log, the audit-query cursor and time filter (lib/identity/privacy),
 * and the digest binding an audit row's personal data to the chain (lib/audit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit/audit.h"
#include "base/base.h"
#include "identity/privacy.h"

static void test_mask_email(void **state)
{
    (void)state;
    char out[LT_MASK_MAX];
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"alice@example.com", "a***@example.com"},
        {"a@example.com", "a***@example.com"},
        {"Bob.Smith+tag@mail.example.org", "B***@mail.example.org"},
        {"x@y", "x***@y"},
        {"@example.com", "***"},
        {"alice@", "***"},
        {"no-at-sign", "***"},
        {"", "***"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = lt_mask_email(out, sizeof(out), cases[i].in);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    assert_int_equal(lt_mask_email(out, sizeof(out), NULL), 3);
    assert_string_equal(out, "***");
    /* Long domains are cut so the result always fits LT_MASK_MAX. */
    char longer[300];
    memset(longer, 'd', sizeof(longer));
    memcpy(longer, "u@", 2);
    longer[sizeof(longer) - 1] = '\0';
    assert_true(lt_mask_email(out, sizeof(out), longer) < LT_MASK_MAX);
    /* Truncation keeps a NUL. */
    char tiny[4];
    assert_int_equal(lt_mask_email(tiny, sizeof(tiny), "alice@example.com"), 3);
    assert_string_equal(tiny, "a**");
    assert_int_equal(lt_mask_email(tiny, 0, "alice@example.com"), 0);
}

static void test_mask_ip(void **state)
{
    (void)state;
    char out[LT_MASK_MAX];
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"203.0.113.9", "203.0.113.0/24"},
        {"127.0.0.1", "127.0.0.0/24"},
        {"::ffff:198.51.100.77", "198.51.100.0/24"},
        {"2001:db8:1:2::5", "2001:db8:1::/48"},
        {"::1", "::/48"},
        {"not-an-ip", "-"},
        {"203.0.113.9:443", "-"},
        {"", "-"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lt_mask_ip(out, sizeof(out), cases[i].in);
        assert_string_equal(out, cases[i].want);
    }
    lt_mask_ip(out, sizeof(out), NULL);
    assert_string_equal(out, "-");
}

static void test_mask_emails_in_text(void **state)
{
    (void)state;
    char out[256];
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"login failed for alice@example.com from x", "login failed for a***@example.com from x"},
        {"a@b.io,c.d@e.org.", "a***@b.io,c***@e.org."},
        {"<bob@mail.example.net>", "<b***@mail.example.net>"},
        {"no address here", "no address here"},
        {"user@localhost stays", "user@localhost stays"},
        {"trailing @ sign and @example.com", "trailing @ sign and @example.com"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lt_mask_emails_in(out, sizeof(out), cases[i].in);
        assert_string_equal(out, cases[i].want);
    }
}

static char seen[1024];
static void capture(lt_log_level_t level, const char *module, const char *msg, void *data)
{
    (void)level, (void)module, (void)data;
    snprintf(seen, sizeof(seen), "%s", msg);
}

static void test_log_masks_emails(void **state)
{
    (void)state;
    lt_log_set_sink(capture, NULL);
    lt_log_set_level(LT_LOG_DEBUG);
    lt_log(LT_LOG_WARN, "test", "mail to %s bounced", "carol@example.com");
    assert_string_equal(seen, "mail to c***@example.com bounced");
    lt_log(LT_LOG_WARN, "test", "plain %d", 7);
    assert_string_equal(seen, "plain 7");
    lt_log_set_sink(lt_log_sink_stderr, NULL);
}

static void test_cursor_round_trip(void **state)
{
    (void)state;
    char c[LT_PRIVACY_CURSOR_MAX + 1], id[20];
    const char *ids[] = {"1", "42", "9223372036854775807"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(lt_privacy_cursor_encode(ids[i], c, sizeof(c)), 0);
        assert_int_equal(lt_privacy_cursor_decode(c, id), 0);
        assert_string_equal(id, ids[i]);
    }
    assert_int_equal(lt_privacy_cursor_encode("0", c, sizeof(c)), LT_EINVAL);
    assert_int_equal(lt_privacy_cursor_encode("9223372036854775808", c, sizeof(c)), LT_EINVAL);
    assert_int_equal(lt_privacy_cursor_encode("12a", c, sizeof(c)), LT_EINVAL);
    assert_int_equal(lt_privacy_cursor_encode("", c, sizeof(c)), LT_EINVAL);
    assert_int_equal(lt_privacy_cursor_encode("1", c, 4), LT_ERANGE);
    /* Only what encode produced. */
    const char *bad[] = {"", "YTQy=", "YTQy+", "Yg", "YjQy", "YTAx", "YQ", "!!!", "YTQz" "YTQz" "YTQz" "YTQz" "YTQzYTQz"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lt_privacy_cursor_decode(bad[i], id), LT_EINVAL);
    /* "a42" is YTQy; a variant with the last character's spare bits set is refused. */
    assert_int_equal(lt_privacy_cursor_decode("YTQy", id), 0);
    assert_int_equal(lt_privacy_cursor_encode("4", c, sizeof(c)), 0); /* "a4" -> YTQ */
    assert_string_equal(c, "YTQ");
    assert_int_equal(lt_privacy_cursor_decode("YTR", id), LT_EINVAL);
}

static void test_time_filter(void **state)
{
    (void)state;
    const char *good[] = {"2026-01-31T12:00:00Z", "2024-02-29T00:00:00z", "2026-01-31 12:00:00.123456Z",
                          "2026-12-31T23:59:59+05:30", "0001-01-01T00:00:00-00:00"};
    const char *bad[] = {"2026-01-31", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-32T00:00:00Z",
                         "2026-01-31T24:00:00Z", "2026-01-31T12:60:00Z", "2026-01-31T12:00:60Z",
                         "2026-01-31T12:00:00", "2026-01-31T12:00:00.Z", "2026-01-31T12:00:00+5:30",
                         "2026-01-31T12:00:00Z ", "0000-01-01T00:00:00Z", "now", "", "2026-01-31T12:00:00.1234567890Z",
                         "1900-02-29T00:00:00Z"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(lt_privacy_time_ok(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lt_privacy_time_ok(bad[i]))
            fail_msg("accepted %s", bad[i]);
    }
    assert_false(lt_privacy_time_ok(NULL));
}

static void test_pii_digest(void **state)
{
    (void)state;
    uint8_t salt[32], a[32], b[32];
    memset(salt, 7, sizeof(salt));
    /* SHA-256(salt || "11:203.0.113.7," || "-,") computed independently. */
    assert_int_equal(lt_audit_pii_digest(salt, "203.0.113.7", NULL, a), 0);
    lt_buf_t buf = LT_BUF_INIT;
    assert_int_equal(lt_buf_append(&buf, salt, 32), 0);
    assert_int_equal(lt_buf_appends(&buf, "11:203.0.113.7,-,"), 0);
    assert_int_equal(lt_sha256(buf.base, buf.len, b), 0);
    lt_buf_free(&buf);
    assert_memory_equal(a, b, 32);
    /* Each input matters. */
    assert_int_equal(lt_audit_pii_digest(salt, "203.0.113.8", NULL, b), 0);
    assert_memory_not_equal(a, b, 32);
    assert_int_equal(lt_audit_pii_digest(salt, "203.0.113.7", "{}", b), 0);
    assert_memory_not_equal(a, b, 32);
    salt[0] ^= 1;
    assert_int_equal(lt_audit_pii_digest(salt, "203.0.113.7", NULL, b), 0);
    assert_memory_not_equal(a, b, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_email),
        cmocka_unit_test(test_mask_ip),
        cmocka_unit_test(test_mask_emails_in_text),
        cmocka_unit_test(test_log_masks_emails),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_time_filter),
        cmocka_unit_test(test_pii_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
