/*
 * policy/lit: the literal forms the language reads both at compile time (folding literal
 * arguments) and at evaluation (values from the document), so none of this allocates:
 * IP addresses and CIDRs, RFC 3339 timestamps, Go-style durations, and civil dates.
 */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <string.h>

/* ---- addresses ----------------------------------------------------------------------- */

int lt__ip_parse(const char *s, size_t n, uint8_t out[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n) != NULL)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(s, ':', n) != NULL)
        return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
    /* IPv4 kept IPv4-mapped, so one comparison serves both families and a dual-stack
     * listener's ::ffff:a.b.c.d peers match IPv4 ranges. */
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    return inet_pton(AF_INET, buf, out + 12) == 1 ? 0 : -1;
}

int lt__cidr_parse(const char *s, size_t n, lt__cidr_t *out)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash != NULL ? (size_t)(slash - s) : n;
    if (lt__ip_parse(s, alen, out->addr) != 0)
        return -1;
    bool v4 = memchr(s, ':', alen) == NULL;
    unsigned max = v4 ? 32 : 128, prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + n;
        if (p == end || end - p > 3 || (*p == '0' && end - p > 1))
            return -1;
        prefix = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max)
            return -1;
    }
    out->prefix = (uint8_t)(v4 ? prefix + 96 : prefix);
    for (unsigned bit = out->prefix; bit < 128; bit++)
        out->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
    return 0;
}

bool lt__cidr_match(const lt__cidr_t *c, const uint8_t ip[16])
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, ip, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFFu << (8 - rest));
    return (ip[full] & mask) == c->addr[full];
}

/* ---- civil dates (proleptic Gregorian; Howard Hinnant's algorithms) ------------------ */

int64_t lt__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = lt__floordiv(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void lt__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = lt__floordiv(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* ---- timestamps ---------------------------------------------------------------------- */

/* `k` decimal digits at p. @return the value or -1. */
static int digits(const char *p, int k)
{
    int v = 0;
    for (int i = 0; i < k; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

int lt__ts_parse(const char *s, size_t n, int64_t *us)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM): at least 20 bytes */
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    /* A leap second (60) is refused: unix time has no place for it. */
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > month_days(y, (unsigned)mo) || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || sec < 0 || sec > 59)
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t nd = 0;
        int64_t scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < 6) {
                frac += (s[i] - '0') * scale;
                scale /= 10;
            }
            nd++;
            i++;
        }
        if (nd == 0 || nd > 9)
            return -1;
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t days = lt__days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off;
    *us = secs * 1000000 + frac;
    return 0;
}

/* ---- durations ----------------------------------------------------------------------- */

int lt__dur_parse(const char *s, size_t n, int64_t *us)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    if (n - i == 1 && s[i] == '0') {
        *us = 0;
        return 0;
    }
    /* Summed in nanoseconds as unsigned, so any overflow shows as exceeding the bound. */
    const uint64_t max = (uint64_t)INT64_MAX;
    uint64_t total = 0;
    while (i < n) {
        uint64_t whole = 0, frac = 0, scale = 1;
        size_t nd = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (whole > max / 10)
                return -1;
            whole = whole * 10 + (uint64_t)(s[i++] - '0');
            nd++;
        }
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (scale < 1000000000000000000ULL) {
                    frac = frac * 10 + (uint64_t)(s[i] - '0');
                    scale *= 10;
                }
                i++;
                nd++;
            }
        }
        if (nd == 0)
            return -1;
        uint64_t unit;
        if (i + 1 < n && s[i] == 'm' && s[i + 1] == 's') {
            unit = 1000000ULL;
            i += 2;
        } else if (i + 1 < n && s[i] == 'u' && s[i + 1] == 's') {
            unit = 1000ULL;
            i += 2;
        } else if (i + 2 < n && (unsigned char)s[i] == 0xC2 && (unsigned char)s[i + 1] == 0xB5 && s[i + 2] == 's') {
            unit = 1000ULL; /* µs */
            i += 3;
        } else if (i + 1 < n && s[i] == 'n' && s[i + 1] == 's') {
            unit = 1ULL;
            i += 2;
        } else if (i < n && s[i] == 'h') {
            unit = 3600000000000ULL;
            i++;
        } else if (i < n && s[i] == 'm') {
            unit = 60000000000ULL;
            i++;
        } else if (i < n && s[i] == 's') {
            unit = 1000000000ULL;
            i++;
        } else {
            return -1;
        }
        if (whole > max / unit)
            return -1;
        uint64_t v = whole * unit;
        /* frac/scale of a unit, without overflow: unit <= 3.6e12 and frac < scale <= 1e18 */
        v += (uint64_t)((long double)frac * (long double)unit / (long double)scale);
        total += v;
        if (v > max || total > max)
            return -1;
    }
    int64_t ns = (int64_t)total;
    *us = (neg ? -ns : ns) / 1000;
    return 0;
}
