/*
 * privacy.c: statements of sql/0016_privacy.sql and the audit query's input rules (see
 * privacy.h).
 */
#include "identity/privacy.h"

#include <string.h>

lt_store_stmt_t lt_privacy_stmts[LT_PRIVACY_NSTMTS] = {
    [LT_PRIVACY_EXPORT] = {"privacy.export", "SELECT latch_privacy_export($1::uuid, $2::uuid)", 2, 0},
    [LT_PRIVACY_ME_EXPORT] = {"privacy.me_export", "SELECT latch_privacy_me_export($1::uuid, $2::uuid, $3::uuid)", 3,
                              0},
    [LT_PRIVACY_LOCK] = {"privacy.lock", "SELECT code, body FROM latch_privacy_lock($1::uuid, $2::uuid, $3, $4, $5)",
                         5, 0},
    [LT_PRIVACY_ERASE] = {"privacy.erase",
                          "SELECT code, body FROM latch_privacy_erase($1::uuid, $2::uuid, $3, $4, $5)", 5, 0},
    [LT_PRIVACY_AUDIT_QUERY] = {"privacy.audit_query",
                                "SELECT items, next_key FROM latch_audit_query($1::uuid, $2::uuid, $3, $4, $5, $6,"
                                " $7::timestamptz, $8::timestamptz, $9::bigint, $10::integer)",
                                10, 0},
};

int lt_privacy_statements(void)
{
    return lt_store_stmt_register(lt_privacy_stmts, LT_PRIVACY_NSTMTS);
}

/* 1..19 decimal digits without a leading zero, below 2^63. */
static int id_ok(const char *s, size_t n)
{
    if (n < 1 || n > 19 || s[0] == '0' || strspn(s, "0123456789") < n)
        return 0;
    return n < 19 || memcmp(s, "9223372036854775807", 19) <= 0;
}

int lt_privacy_cursor_encode(const char *id, char *out, size_t cap)
{
    char key[21];
    size_t n = id != NULL ? strlen(id) : 0;
    if (!id_ok(id, n))
        return LT_EINVAL;
    if (cap < LT_PRIVACY_CURSOR_MAX + 1)
        return LT_ERANGE;
    key[0] = 'a';
    memcpy(key + 1, id, n);
    size_t len = lt_b64url_encode(out, key, n + 1);
    out[len] = '\0';
    return 0;
}

int lt_privacy_cursor_decode(const char *cursor, char id[20])
{
    char key[24];
    size_t n = cursor != NULL ? strlen(cursor) : 0;
    /* Only what encode produces: unpadded base64url, so one page has one spelling. */
    if (n == 0 || n > LT_PRIVACY_CURSOR_MAX ||
        strspn(cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n)
        return LT_EINVAL;
    long len = lt_b64url_decode(key, sizeof(key) - 1, cursor, n);
    if (len < 2 || key[0] != 'a' || !id_ok(key + 1, (size_t)len - 1))
        return LT_EINVAL;
    memcpy(id, key + 1, (size_t)len - 1);
    id[len - 1] = '\0';
    /* A second spelling of the same bytes (trailing bits set) is not ours either. */
    char again[LT_PRIVACY_CURSOR_MAX + 1];
    if (lt_privacy_cursor_encode(id, again, sizeof(again)) != 0 || strcmp(again, cursor) != 0)
        return LT_EINVAL;
    return 0;
}

/* `n` digits at `s` as a number, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int lt_privacy_time_ok(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 20 || n > 40)
        return 0;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 1 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':' || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        size_t f = strspn(p + 1, "0123456789");
        if (f < 1 || f > 9)
            return 0;
        p += 1 + f;
    }
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0')
        return 1;
    if ((p[0] != '+' && p[0] != '-') || strlen(p) != 6 || p[3] != ':')
        return 0;
    int oh = digits(p + 1, 2), om = digits(p + 4, 2);
    return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}
