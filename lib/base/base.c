/*
 * base: see base.h. Everything here is leaf code with no dependencies but libc, pthreads
 * (the holder's mutex) and OpenSSL's RNG/CRYPTO_memcmp.
 */
#include "base/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char lt_err_unavailable[] = "store unavailable";
const char lt_err_timeout[] = "timed out";
const char lt_err_query[] = "query failed";
const char lt_err_overload[] = "overloaded";
const char lt_err_closed[] = "closed";

const char *lt_strerror(int code)
{
    switch (code) {
    case LT_OK:
        return "ok";
    case LT_EINVAL:
        return "invalid argument";
    case LT_ENOMEM:
        return "out of memory";
    case LT_EIO:
        return "I/O error";
    case LT_ENOTFOUND:
        return "not found";
    case LT_ERANGE:
        return "out of range";
    case LT_ESTATE:
        return "invalid state";
    case LT_EUNAVAIL:
        return "unavailable";
    case LT_ETIMEDOUT:
        return "timed out";
    case LT_EEXIST:
        return "already exists";
    case LT_EOVERLOAD:
        return "overloaded";
    default:
        return "unknown error";
    }
}

/* ---- logging ------------------------------------------------------------------------ */

static int log_level = LT_LOG_INFO;
static lt_log_sink_fn log_sink = lt_log_sink_stderr;
static void *log_sink_data;

void lt_log_set_sink(lt_log_sink_fn fn, void *data)
{
    log_sink = fn != NULL ? fn : lt_log_sink_stderr;
    log_sink_data = data;
}

void lt_log_set_level(lt_log_level_t level)
{
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

lt_log_level_t lt_log_get_level(void)
{
    return (lt_log_level_t)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int lt_log_level_parse(const char *name, lt_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (lt_log_level_t)i;
            return 0;
        }
    }
    return LT_EINVAL;
}

const char *lt_log_level_name(lt_log_level_t level)
{
    return (unsigned)level < 4 ? level_names[level] : "unknown";
}

void lt__log(lt_log_level_t level, const char *module, const char *fmt, ...)
{
    char msg[1024], masked[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A safety net: no call site should log an email, but a server message or a value
     * quoted in an error might; it never reaches the sink whole. */
    if (strchr(msg, '@') != NULL) {
        lt_mask_emails_in(masked, sizeof(masked), msg);
        log_sink(level, module, masked, log_sink_data);
        return;
    }
    log_sink(level, module, msg, log_sink_data);
}

/* ---- personal data in logs ------------------------------------------------------------ */

/* Appends `s` (n bytes) to out[*len] within cap, keeping room for the NUL. */
static void mask_put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (cap == 0)
        return;
    size_t room = cap - 1 - *len;
    if (n > room)
        n = room;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

static int email_local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._%+-!#$&'*/=?^`{|}~", c) != NULL;
}

static int email_domain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* The masked form of local@domain (domain as given, at most 48 bytes). */
static void mask_one(char *out, size_t cap, size_t *len, const char *local, const char *domain, size_t dn)
{
    mask_put(out, cap, len, local, 1);
    mask_put(out, cap, len, "***@", 4);
    mask_put(out, cap, len, domain, dn > 48 ? 48 : dn);
}

size_t lt_mask_email(char *out, size_t cap, const char *email)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    const char *at = email != NULL ? strrchr(email, '@') : NULL;
    if (at == NULL || at == email || at[1] == '\0') {
        mask_put(out, cap, &len, "***", 3);
        return len;
    }
    mask_one(out, cap, &len, email, at + 1, strlen(at + 1));
    return len;
}

size_t lt_mask_emails_in(char *out, size_t cap, const char *in)
{
    size_t len = 0, n = strlen(in), i = 0, copied = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    while (i < n) {
        if (in[i] != '@') {
            i++;
            continue;
        }
        size_t ls = i, de = i + 1;
        while (ls > copied && email_local_char(in[ls - 1]))
            ls--;
        while (de < n && email_domain_char(in[de]))
            de++;
        /* A domain with a dot inside it (not only at its end), and a local part. */
        const char *dot = memchr(in + i + 1, '.', de - i - 1);
        while (de > i + 1 && in[de - 1] == '.')
            de--;
        if (ls == i || dot == NULL || dot >= in + de - 1) {
            i++;
            continue;
        }
        mask_put(out, cap, &len, in + copied, ls - copied);
        mask_one(out, cap, &len, in + ls, in + i + 1, de - i - 1);
        copied = i = de;
    }
    mask_put(out, cap, &len, in + copied, n - copied);
    return len;
}

size_t lt_mask_ip(char *out, size_t cap, const char *ip)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (ip != NULL && inet_pton(AF_INET, ip, a) == 1) {
        snprintf(text, sizeof(text), "%u.%u.%u.0/24", a[0], a[1], a[2]);
    } else if (ip != NULL && inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, sizeof(mapped)) == 0) {
            snprintf(text, sizeof(text), "%u.%u.%u.0/24", a[12], a[13], a[14]);
        } else {
            memset(a + 6, 0, 10);
            if (inet_ntop(AF_INET6, a, text, sizeof(text)) == NULL)
                strcpy(text, "-");
            else
                strcat(text, "/48");
        }
    } else {
        strcpy(text, "-");
    }
    mask_put(out, cap, &len, text, strlen(text));
    return len;
}

void lt_log_sink_stderr(lt_log_level_t level, const char *module, const char *msg, void *data)
{
    (void)data;
    lt_buf_t b = LT_BUF_INIT;
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (lt_buf_appendf(&b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":", when, ts.tv_nsec / 1000000,
                       lt_log_level_name(level)) != 0 ||
        lt_buf_append_json_string(&b, module, strlen(module)) != 0 || lt_buf_appends(&b, ",\"msg\":") != 0 ||
        lt_buf_append_json_string(&b, msg, strlen(msg)) != 0 || lt_buf_appends(&b, "}\n") != 0)
        goto done;
    /* One write(2) per line keeps lines from different threads whole. */
    if (write(STDERR_FILENO, b.base, b.len) < 0) {
        /* nowhere left to report it */
    }
done:
    lt_buf_free(&b);
}

/* ---- buffer ------------------------------------------------------------------------- */

int lt_buf_reserve(lt_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap != 0 ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            return LT_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->base, cap);
    if (p == NULL)
        return LT_ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

int lt_buf_append(lt_buf_t *b, const void *p, size_t n)
{
    int ret = lt_buf_reserve(b, n);
    if (ret != 0)
        return ret;
    if (n != 0)
        memcpy(b->base + b->len, p, n);
    b->len += n;
    b->base[b->len] = '\0';
    return 0;
}

int lt_buf_appends(lt_buf_t *b, const char *s)
{
    return lt_buf_append(b, s, strlen(s));
}

int lt_buf_appendf(lt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    /* Format once into the spare room; only a line longer than that is formatted twice. */
    int ret = lt_buf_reserve(b, 256);
    if (ret != 0)
        return ret;
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->base + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return LT_EINVAL;
    if ((size_t)n >= room) {
        if ((ret = lt_buf_reserve(b, (size_t)n)) != 0) {
            b->base[b->len] = '\0';
            return ret;
        }
        va_start(ap, fmt);
        vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

int lt_buf_append_json_string(lt_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int ret = lt_buf_append(b, "\"", 1);
    size_t run = 0; /* start of the pending run of characters that need no escape */
    for (size_t i = 0; i < n && ret == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen;
        if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"':
        case '\\':
            esc[0] = '\\', esc[1] = (char)c, elen = 2;
            break;
        case '\n':
            esc[0] = '\\', esc[1] = 'n', elen = 2;
            break;
        case '\r':
            esc[0] = '\\', esc[1] = 'r', elen = 2;
            break;
        case '\t':
            esc[0] = '\\', esc[1] = 't', elen = 2;
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if ((ret = lt_buf_append(b, s + run, i - run)) == 0)
            ret = lt_buf_append(b, esc, elen);
        run = i + 1;
    }
    if (ret == 0)
        ret = lt_buf_append(b, s + run, n - run);
    return ret != 0 ? ret : lt_buf_append(b, "\"", 1);
}

void lt_buf_free(lt_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

/* ---- encodings ---------------------------------------------------------------------- */

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t lt_b64url_encode(char *out, const void *in, size_t n)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_chars[v >> 18];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_chars[v >> 18];
        out[o++] = b64url_chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_chars[v >> 18];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

long lt_b64url_decode(void *out, size_t cap, const char *in, size_t n)
{
    unsigned char *o = out;
    size_t olen = 0;
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return LT_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return LT_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (olen >= cap)
                return LT_ERANGE;
            o[olen++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero (canonical encoding), so one value has one spelling. */
    if (acc != 0)
        return LT_EINVAL;
    return (long)olen;
}

void lt_hex_encode(char *out, const void *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The next `c` at or after `from`, or `end`; `*at` caches the answer until it is passed, so
 * a long value is scanned once per byte value however many escapes it holds. */
static const char *next_of(const char **at, char c, const char *from, const char *end)
{
    if (*at < from) {
        const char *p = memchr(from, c, (size_t)(end - from));
        *at = p != NULL ? p : end;
    }
    return *at;
}

long lt_pct_decode(char *out, size_t cap, const char *in, size_t n, unsigned flags)
{
    const char *end = in + n, *p = in, *pct = NULL, *plus = NULL, *nul = NULL;
    size_t o = 0;
    if (cap == 0)
        return LT_ERANGE;
    while (p < end) {
        /* Plain bytes are copied in runs (memchr is vectorised: a JWT is one long run). */
        const char *stop = next_of(&pct, '%', p, end), *z = next_of(&nul, '\0', p, end);
        if (z < stop)
            stop = z;
        if (flags & LT_PCT_PLUS) {
            const char *q = next_of(&plus, '+', p, end);
            if (q < stop)
                stop = q;
        }
        if (stop > p) {
            size_t run = (size_t)(stop - p);
            if (o + run >= cap)
                return LT_ERANGE;
            memcpy(out + o, p, run);
            o += run;
            p = stop;
            continue;
        }
        char c = *p;
        if (c == '%') {
            int hi, lo;
            if (end - p < 3 || (hi = lt_hex_digit(p[1])) < 0 || (lo = lt_hex_digit(p[2])) < 0)
                return LT_EINVAL;
            c = (char)(hi << 4 | lo);
            p += 2;
            if (c == '/' && (flags & LT_PCT_NO_SLASH))
                return LT_EINVAL;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0') /* escaped or raw: the value is used as a C string */
            return LT_EINVAL;
        if (o + 1 >= cap)
            return LT_ERANGE;
        out[o++] = c;
        p++;
    }
    out[o] = '\0';
    return (long)o;
}

long lt_utf8_count(const void *s, size_t n)
{
    const unsigned char *p = s;
    long count = 0;
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time: tokens and most text are nothing else. */
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                count += 8;
                continue;
            }
        }
        unsigned char c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return -1; /* a continuation byte without a lead, or 0xf8..0xff */
        }
        if (n - i < len)
            return -1;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* `min` catches overlong forms: each length has a smallest code point it may carry. */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += len;
        count++;
    }
    return count;
}

/* ---- randomness, secrets, time ------------------------------------------------------ */

int lt_random(void *p, size_t n)
{
    if (n > INT32_MAX)
        return LT_EINVAL;
    return RAND_bytes(p, (int)n) == 1 ? 0 : LT_EIO;
}

int lt_ct_eq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void lt_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

uint64_t lt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t lt_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lt_json_depth_ok(const char *p, size_t n, int max_depth)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return 0;
            break;
        case ']':
        case '}':
            if (--depth < 0)
                return 0; /* unbalanced: not JSON, refuse early */
            break;
        }
    }
    return 1;
}

void lt_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    for (size_t n = strlen(err); n > 0 && err[n - 1] == ' '; n--)
        err[n - 1] = '\0';
}

int lt_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
    int fd = -1, ret = LT_EIO;
    char *buf = NULL;
    size_t len = 0, cap = 4096;
    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        goto fail;
    if ((buf = malloc(cap + 1)) == NULL) {
        ret = LT_ENOMEM;
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max) { /* not cap >= max + 1: that wraps for max = SIZE_MAX */
                ret = LT_ERANGE;
                goto fail;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                ret = LT_ENOMEM;
                goto fail;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > max) {
        ret = LT_ERANGE;
        goto fail;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    if (outlen != NULL)
        *outlen = len;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return ret;
}

/* ---- holder ------------------------------------------------------------------------- */

int lt_holder_init(lt_holder_t *h, void *(*ref)(void *), void (*unref)(void *))
{
    pthread_mutex_t *m = malloc(sizeof(*m));
    if (m == NULL)
        return LT_ENOMEM;
    if (pthread_mutex_init(m, NULL) != 0) {
        free(m);
        return LT_EIO;
    }
    h->obj = NULL;
    h->lock = m;
    h->ref = ref;
    h->unref = unref;
    return 0;
}

void *lt_holder_get(lt_holder_t *h)
{
    pthread_mutex_lock(h->lock);
    void *obj = h->obj != NULL ? h->ref(h->obj) : NULL;
    pthread_mutex_unlock(h->lock);
    return obj;
}

void lt_holder_set(lt_holder_t *h, void *obj)
{
    pthread_mutex_lock(h->lock);
    void *old = h->obj;
    h->obj = obj;
    pthread_mutex_unlock(h->lock);
    /* Outside the lock: freeing the old version (keys, a large snapshot) should not stall readers. */
    if (old != NULL)
        h->unref(old);
}

void lt_holder_dispose(lt_holder_t *h)
{
    if (h == NULL || h->lock == NULL)
        return;
    if (h->obj != NULL)
        h->unref(h->obj);
    h->obj = NULL;
    pthread_mutex_destroy(h->lock);
    free(h->lock);
    h->lock = NULL;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int lt_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    pthread_once(&sha256_once, sha256_fetch);
    /* Held for the life of the process (OpenSSL frees providers at exit). */
    const EVP_MD *md = sha256_md != NULL ? sha256_md : EVP_sha256();
    return EVP_Digest(p, n, out, &len, md, NULL) == 1 && len == 32 ? 0 : LT_EIO;
}
