/*
 * policy/tz: IANA time zones for hour() and weekday(), read from TZif files (RFC 8536)
 * under /usr/share/zoneinfo.
 *
 * Only the v2+ 64-bit block is used (a v1-only file is refused), plus the POSIX TZ string of
 * the footer for instants after the last transition (slim TZif files stop at the last rule
 * change; fat ones at 2037). Files with leap-second records ("right/" zones) are refused:
 * their times are not unix times.
 *
 * Loaded zones are kept for the life of the process in a list guarded by a mutex, taken only
 * at compile time (lt__tz_get). A zone is immutable once published, so evaluation reads it
 * without a lock. The TZ environment and libc's localtime are never used: setenv/tzset are
 * not thread-safe.
 */
#include "policy/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 64
#define TZ_FILE_MAX (256 * 1024)

/* One POSIX TZ rule date: Jn, n or Mm.w.d, plus the local time of the change. */
typedef struct {
    char kind; /* 'J', 'D' (zero-based day), 'M' */
    int m, w, d;
    int n;
    int32_t time; /* seconds after local midnight; may be negative or beyond 24h */
} rule_date_t;

struct lt__tz {
    struct lt__tz *next; /* the cache list */
    char name[TZ_NAME_MAX + 1];
    size_t n;       /* transitions */
    int64_t *times; /* unix times, ascending */
    int32_t *offs;  /* UTC offset from times[i] on */
    int32_t first;  /* offset before the first transition (time type 0) */
    bool has_rule;  /* the footer rule applies after the last transition */
    bool has_dst;
    int32_t std_off, dst_off; /* seconds east of UTC */
    rule_date_t start, end;
};

/* ---- the POSIX TZ footer --------------------------------------------------------------- */

static bool skip_name(const char **p, const char *end)
{
    const char *s = *p;
    if (s < end && *s == '<') {
        const char *q = memchr(s, '>', (size_t)(end - s));
        if (q == NULL || q - s < 4)
            return false;
        *p = q + 1;
        return true;
    }
    while (s < end && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        s++;
    if (s - *p < 3)
        return false;
    *p = s;
    return true;
}

/* [+-]hh[:mm[:ss]] with hours up to `maxh`. */
static bool parse_hms(const char **p, const char *end, int maxh, int32_t *out)
{
    const char *s = *p;
    int sign = 1;
    if (s < end && (*s == '+' || *s == '-'))
        sign = *s++ == '-' ? -1 : 1;
    int32_t part[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (s >= end || *s != ':')
                break;
            s++;
        }
        int nd = 0, v = 0;
        while (s < end && *s >= '0' && *s <= '9' && nd < 3) {
            v = v * 10 + (*s++ - '0');
            nd++;
        }
        if (nd == 0 || (i == 0 ? v > maxh : v > 59))
            return false;
        part[i] = v;
    }
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    *p = s;
    return true;
}

static bool parse_int(const char **p, const char *end, int lo, int hi, int *out)
{
    const char *s = *p;
    int v = 0, nd = 0;
    while (s < end && *s >= '0' && *s <= '9' && nd < 4) {
        v = v * 10 + (*s++ - '0');
        nd++;
    }
    if (nd == 0 || v < lo || v > hi)
        return false;
    *out = v;
    *p = s;
    return true;
}

static bool parse_rule_date(const char **p, const char *end, rule_date_t *r)
{
    const char *s = *p;
    if (s < end && *s == 'M') {
        s++;
        r->kind = 'M';
        if (!parse_int(&s, end, 1, 12, &r->m) || s >= end || *s++ != '.' || !parse_int(&s, end, 1, 5, &r->w) ||
            s >= end || *s++ != '.' || !parse_int(&s, end, 0, 6, &r->d))
            return false;
    } else if (s < end && *s == 'J') {
        s++;
        r->kind = 'J';
        if (!parse_int(&s, end, 1, 365, &r->n))
            return false;
    } else {
        r->kind = 'D';
        if (!parse_int(&s, end, 0, 365, &r->n))
            return false;
    }
    r->time = 7200; /* 02:00 unless given */
    if (s < end && *s == '/') {
        s++;
        if (!parse_hms(&s, end, 167, &r->time))
            return false;
    }
    *p = s;
    return true;
}

static bool parse_footer(lt__tz_t *z, const char *s, const char *end)
{
    if (s == end)
        return true; /* no rule: the last transition's offset holds */
    int32_t off;
    if (!skip_name(&s, end) || !parse_hms(&s, end, 24, &off))
        return false;
    z->std_off = -off; /* POSIX offsets count west */
    z->has_rule = true;
    if (s == end)
        return true;
    if (!skip_name(&s, end))
        return false;
    z->has_dst = true;
    z->dst_off = z->std_off + 3600;
    if (s < end && *s != ',') {
        if (!parse_hms(&s, end, 24, &off))
            return false;
        z->dst_off = -off;
    }
    /* A zone with a DST name but no dates would follow the "posixrules" default; TZif
     * footers always give the dates. */
    if (s >= end || *s++ != ',' || !parse_rule_date(&s, end, &z->start) || s >= end || *s++ != ',' ||
        !parse_rule_date(&s, end, &z->end))
        return false;
    return s == end;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The unix day of a rule date in year y. */
static int64_t rule_day(const rule_date_t *r, int64_t y)
{
    int64_t jan1 = lt__days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J': return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60 ? 1 : 0);
    case 'D': return jan1 + r->n;
    default: break;
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t first = lt__days_from_civil(y, (unsigned)r->m, 1);
    int len = mdays[r->m - 1] + (r->m == 2 && is_leap(y) ? 1 : 0);
    int wd = (int)lt__floormod(first + 4, 7); /* 1970-01-01 was a Thursday */
    int64_t day = first + (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
    while (day >= first + len)
        day -= 7;
    return day;
}

static int32_t rule_offset(const lt__tz_t *z, int64_t t)
{
    if (!z->has_dst)
        return z->std_off;
    int64_t y;
    unsigned m, d;
    lt__civil_from_days(lt__floordiv(t + z->std_off, 86400), &y, &m, &d);
    int64_t start = rule_day(&z->start, y) * 86400 + z->start.time - z->std_off;
    int64_t end = rule_day(&z->end, y) * 86400 + z->end.time - z->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? z->dst_off : z->std_off;
}

int32_t lt__tz_offset(const lt__tz_t *z, int64_t t)
{
    if (z->n == 0 || t < z->times[0])
        return z->n == 0 && z->has_rule ? rule_offset(z, t) : z->first;
    if (t >= z->times[z->n - 1] && z->has_rule)
        return rule_offset(z, t);
    size_t lo = 0, hi = z->n; /* the last transition at or before t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offs[lo];
}

/* ---- TZif ------------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
    uint32_t isut, isstd, leap, time, type, chars;
} counts_t;

static bool header(const uint8_t *p, size_t n, counts_t *c)
{
    if (n < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    /* bounds that keep the size sums below from overflowing, far above any real zone */
    return c->time < 100000 && c->type >= 1 && c->type <= 256 && c->chars < 100000 && c->leap < 100000 &&
           c->isut <= c->type && c->isstd <= c->type;
}

int lt__tz_from_tzif(const uint8_t *p, size_t n, lt__tz_t **out, const char **why)
{
    counts_t c;
    *why = "not a TZif file";
    if (!header(p, n, &c))
        return -1;
    if (p[4] < '2') {
        *why = "TZif version 1 is not supported";
        return -1;
    }
    size_t v1 = (size_t)c.time * 5 + (size_t)c.type * 6 + c.chars + (size_t)c.leap * 8 + c.isstd + c.isut;
    if (44 + v1 > n || !header(p + 44 + v1, n - 44 - v1, &c))
        return -1;
    if (c.leap != 0) {
        *why = "zones with leap seconds are not supported";
        return -1;
    }
    const uint8_t *b = p + 44 + v1 + 44, *end = p + n;
    size_t v2 = (size_t)c.time * 9 + (size_t)c.type * 6 + c.chars + c.isstd + c.isut;
    if ((size_t)(end - b) < v2 + 2)
        return -1;
    const uint8_t *times = b, *idx = b + (size_t)c.time * 8, *types = idx + c.time;
    const uint8_t *foot = b + v2;
    if (*foot != '\n')
        return -1;
    const uint8_t *fend = memchr(foot + 1, '\n', (size_t)(end - foot - 1));
    if (fend == NULL)
        return -1;

    size_t sz = sizeof(lt__tz_t) + (size_t)c.time * (sizeof(int64_t) + sizeof(int32_t));
    lt__tz_t *z = calloc(1, sz);
    if (z == NULL) {
        *why = "out of memory";
        return -1;
    }
    z->times = (int64_t *)(z + 1);
    z->offs = (int32_t *)(z->times + c.time);
    z->n = c.time;
    for (uint32_t i = 0; i < c.time; i++) {
        z->times[i] = be64(times + (size_t)i * 8);
        if (idx[i] >= c.type || (i > 0 && z->times[i] <= z->times[i - 1]))
            goto bad;
        z->offs[i] = (int32_t)be32(types + (size_t)idx[i] * 6);
    }
    z->first = (int32_t)be32(types);
    if (!parse_footer(z, (const char *)foot + 1, (const char *)fend)) {
        *why = "unsupported TZ rule in the TZif footer";
        free(z);
        return -1;
    }
    *out = z;
    return 0;
bad:
    free(z);
    return -1;
}

void lt__tz_free(lt__tz_t *z)
{
    free(z);
}

/* ---- the cache ------------------------------------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static lt__tz_t *cache; /* guarded by cache_lock; zones are never freed */

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > TZ_NAME_MAX || s[0] == '/' || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '/' ||
              ch == '_' || ch == '-' || ch == '+' || ch == '.'))
            return false;
        if (ch == '.' && i + 1 < n && s[i + 1] == '.')
            return false; /* no way out of the zone directory */
        if (ch == '/' && i + 1 < n && s[i + 1] == '.')
            return false;
    }
    return true;
}

int lt__tz_get(const char *name, size_t n, const lt__tz_t **out, const char **why)
{
    if (!valid_name(name, n)) {
        *why = "not a valid zone name";
        return -1;
    }
    int rc = -1;
    char *data = NULL;
    size_t len = 0;
    pthread_mutex_lock(&cache_lock);
    for (lt__tz_t *z = cache; z != NULL; z = z->next)
        if (strlen(z->name) == n && memcmp(z->name, name, n) == 0) {
            *out = z;
            rc = 0;
            goto done;
        }
    char path[sizeof(TZ_DIR) + TZ_NAME_MAX + 2];
    snprintf(path, sizeof(path), "%s/%.*s", TZ_DIR, (int)n, name);
    /* Reading under the lock is fine: compilation is rare and off the hot paths. */
    if (lt_read_file(path, TZ_FILE_MAX, &data, &len) != 0) {
        *why = "unknown time zone";
        goto done;
    }
    lt__tz_t *z = NULL;
    if (lt__tz_from_tzif((const uint8_t *)data, len, &z, why) != 0)
        goto done;
    memcpy(z->name, name, n);
    z->next = cache;
    cache = z;
    *out = z;
    rc = 0;
done:
    pthread_mutex_unlock(&cache_lock);
    free(data);
    return rc;
}
