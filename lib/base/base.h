/*
 * base: the small things every module uses.
 *
 * Error codes, async error strings, the level-gated log macro with an injected sink, a
 * growable byte buffer, base64url, hex and percent decoding, UTF-8 validation, secure random
 * bytes, constant-time comparison, clocks, and a holder that swaps reference-counted
 * objects under readers. No module state apart from the log level and sink, which are set
 * once at start (the level may change on reload; it is read with relaxed atomics).
 *
 * Thread-safety: every function here is safe to call from any thread, except as the holder
 * section says.
 */
#ifndef LT_BASE_H
#define LT_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define LT_MUSTCHECK __attribute__((warn_unused_result))
#define LT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LT_EXPORT __attribute__((visibility("default")))

/* Negative error codes; 0 is success. */
enum {
    LT_OK = 0,
    LT_EINVAL = -1,    /* invalid argument or input */
    LT_ENOMEM = -2,    /* out of memory */
    LT_EIO = -3,       /* I/O or system call failed */
    LT_ENOTFOUND = -4, /* no such thing */
    LT_ERANGE = -5,    /* value out of range or too large */
    LT_ESTATE = -6,    /* call not valid in the current state */
    LT_EUNAVAIL = -7,  /* a dependency (the database) is unavailable */
    LT_ETIMEDOUT = -8, /* deadline passed */
    LT_EEXIST = -9,    /* already exists */
    LT_EOVERLOAD = -10 /* a bounded queue is full */
};

/** @return a static description of an LT_E* code. */
const char *lt_strerror(int code);

/*
 * Errors passed to async completions (`const char *err`, NULL = success). Compare by
 * pointer against these, as h2o does with its socket errors.
 */
extern const char lt_err_unavailable[]; /* the store has no live connection */
extern const char lt_err_timeout[];     /* the per-query deadline passed */
extern const char lt_err_query[];       /* the database answered with an error */
extern const char lt_err_overload[];    /* a bounded queue is full */
extern const char lt_err_closed[];      /* the owner is shutting down */

/*
 * Counters with one writer thread and readers on others (metrics): relaxed atomics, and no
 * locked read-modify-write on the writer's hot path.
 */
#define LT_COUNTER_ADD(var, n) __atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define LT_COUNTER_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

/* ---- logging ------------------------------------------------------------------------ */

typedef enum { LT_LOG_DEBUG = 0, LT_LOG_INFO = 1, LT_LOG_WARN = 2, LT_LOG_ERROR = 3 } lt_log_level_t;

/* A sink receives one formatted message; lib/ never writes to a stream itself. */
typedef void (*lt_log_sink_fn)(lt_log_level_t level, const char *module, const char *msg, void *data);

void lt_log_set_sink(lt_log_sink_fn fn, void *data);
void lt_log_set_level(lt_log_level_t level);
lt_log_level_t lt_log_get_level(void);
/** @return 0, or LT_EINVAL for a name other than debug|info|warn|error. */
int lt_log_level_parse(const char *name, lt_log_level_t *out) LT_MUSTCHECK;
const char *lt_log_level_name(lt_log_level_t level);

void lt__log(lt_log_level_t level, const char *module, const char *fmt, ...) LT_PRINTF(3, 4);

/* Arguments are not evaluated below the current level. Never pass secrets. */
#define lt_log(level, module, ...)                                                                                         \
    do {                                                                                                                   \
        if ((level) >= lt_log_get_level())                                                                                 \
            lt__log((level), (module), __VA_ARGS__);                                                                       \
    } while (0)

/* The default sink: one JSON object per line on stderr {"time","level","module","msg"}. */
void lt_log_sink_stderr(lt_log_level_t level, const char *module, const char *msg, void *data);

/* ---- buffer ------------------------------------------------------------------------- */

/* A growable byte buffer, always NUL-terminated after `len` bytes once anything was added. */
typedef struct lt_buf {
    char *base;
    size_t len;
    size_t cap;
} lt_buf_t;

#define LT_BUF_INIT {NULL, 0, 0}

int lt_buf_reserve(lt_buf_t *b, size_t extra) LT_MUSTCHECK;
int lt_buf_append(lt_buf_t *b, const void *p, size_t n) LT_MUSTCHECK;
int lt_buf_appends(lt_buf_t *b, const char *s) LT_MUSTCHECK;
int lt_buf_appendf(lt_buf_t *b, const char *fmt, ...) LT_PRINTF(2, 3) LT_MUSTCHECK;
/* Appends `s` as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
int lt_buf_append_json_string(lt_buf_t *b, const char *s, size_t n) LT_MUSTCHECK;
void lt_buf_free(lt_buf_t *b);

/* ---- encodings ---------------------------------------------------------------------- */

/* Unpadded base64url (RFC 4648 §5). `out` needs lt_b64url_enclen(n) + 1 bytes. */
static inline size_t lt_b64url_enclen(size_t n)
{
    return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}
size_t lt_b64url_encode(char *out, const void *in, size_t n);
/**
 * Decodes unpadded base64url; also accepts standard base64 characters and '=' padding so a
 * key written by `openssl rand -base64 32` reads as well.
 * @return decoded length, or LT_EINVAL on a bad character or length, LT_ERANGE if `cap`
 *         is too small.
 */
long lt_b64url_decode(void *out, size_t cap, const char *in, size_t n) LT_MUSTCHECK;

/* Lower-case hex; `out` needs 2n + 1 bytes. */
void lt_hex_encode(char *out, const void *in, size_t n);

/* The value of one hex digit (either case): 0..15, or -1 for any other character. */
static inline int lt_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* lt_pct_decode flags. */
enum {
    LT_PCT_PLUS = 1,     /* a raw '+' decodes to a space (form encoding; "%2B" stays '+') */
    LT_PCT_NO_SLASH = 2, /* refuse an escaped '/' (a path segment must not grow one) */
};

/**
 * Percent-decodes `in` (n bytes) into `out` (cap bytes including the NUL). The result is
 * used as a C string, so a NUL, raw or escaped, is refused.
 * @return the decoded length (out NUL-terminated), LT_EINVAL (a '%' not followed by two
 *         hex digits, a NUL, or an escaped '/' under LT_PCT_NO_SLASH), LT_ERANGE (out of room).
 */
long lt_pct_decode(char *out, size_t cap, const char *in, size_t n, unsigned flags) LT_MUSTCHECK;

/**
 * Counts the code points of strict UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequence.
 * @return the number of code points, or -1 if `s` is not such UTF-8.
 */
long lt_utf8_count(const void *s, size_t n);

/* ---- personal data in logs ------------------------------------------------------------ */

/*
 * Log lines (lt_log, the access log) never carry a whole email address or client IP: they
 * are masked with these (the audit trail keeps them whole, erasably). Output is always
 * NUL-terminated and truncated to `cap`; `cap` >= LT_MASK_MAX always holds the whole result.
 */
#define LT_MASK_MAX 64
/* "alice@example.com" -> "a***@example.com" (domain kept, at most 48 bytes of it); anything
 * without a local part and a domain -> "***". @return the length written. */
size_t lt_mask_email(char *out, size_t cap, const char *email);
/* IPv4 -> its /24 ("203.0.113.9" -> "203.0.113.0/24"), IPv6 -> its /48
 * ("2001:db8:1:2::5" -> "2001:db8:1::/48"), an IPv4-mapped IPv6 as IPv4; anything
 * else -> "-". @return the length written. */
size_t lt_mask_ip(char *out, size_t cap, const char *ip);
/* Copies `in` to `out` with every email-shaped token (local@domain.tld) masked as
 * lt_mask_email does: what lt__log does to every message. @return the length written. */
size_t lt_mask_emails_in(char *out, size_t cap, const char *in);

/* ---- randomness, secrets, time ------------------------------------------------------ */

/** Fills `p` from the OpenSSL CSPRNG. @return 0, or LT_EIO. */
int lt_random(void *p, size_t n) LT_MUSTCHECK;

/* SHA-256 of `n` bytes into `out` (32 bytes), with the digest fetched from the provider
 * once per process: OpenSSL 3's implicit fetch takes a lock on every call. @return 0 or LT_EIO. */
int lt_sha256(const void *p, size_t n, uint8_t out[32]) LT_MUSTCHECK;

/** Constant-time equality of two buffers of the same length; 1 if equal. */
int lt_ct_eq(const void *a, const void *b, size_t n);

/* Overwrites memory in a way the compiler cannot drop. */
void lt_wipe(void *p, size_t n);

uint64_t lt_now_ms(void);      /* wall clock, ms since the epoch */
uint64_t lt_monotonic_ns(void); /* monotonic clock, ns */

/**
 * Scans JSON text for the maximum nesting depth of arrays and objects (strings skipped),
 * so a hostile body is refused before a recursive parser sees it.
 * @return 1 if the depth is within `max_depth`, 0 if not.
 */
int lt_json_depth_ok(const char *p, size_t n, int max_depth);

/*
 * Formats an error message into a caller's buffer as one line: newlines (libpq messages
 * end with one) become spaces and trailing spaces go. Does nothing when errlen is 0.
 */
void lt_errf(char *err, size_t errlen, const char *fmt, ...) LT_PRINTF(3, 4);

/* Reads a whole file (at most `max` bytes). @return 0, LT_EIO, LT_ERANGE or LT_ENOMEM. */
int lt_read_file(const char *path, size_t max, char **out, size_t *outlen) LT_MUSTCHECK;

/* ---- holder ------------------------------------------------------------------------- */

/*
 * Holds the current version of a reference-counted object (a key ring, a client snapshot)
 * for readers on many threads while one thread swaps in new versions. The object type
 * supplies `ref` (take a reference, returning the object) and `unref` (drop one); neither
 * is called with NULL. Typed modules wrap this in their own holder type.
 *
 * Thread-safety: get and set may run concurrently from any threads; init and dispose may not
 * run concurrently with anything.
 */
typedef struct lt_holder {
    void *obj;  /* guarded by `lock`; NULL while empty */
    void *lock; /* private (a heap pthread mutex, so this header needs no pthread.h) */
    void *(*ref)(void *);
    void (*unref)(void *);
} lt_holder_t;

/** @return 0, LT_ENOMEM, LT_EIO. The holder starts empty: get() returns NULL until set(). */
int lt_holder_init(lt_holder_t *h, void *(*ref)(void *), void (*unref)(void *)) LT_MUSTCHECK;
/* A new reference to the held object (drop it with the type's unref), or NULL while empty. */
void *lt_holder_get(lt_holder_t *h);
/* Takes the caller's reference to `obj` (NULL empties the holder) and drops the old one. */
void lt_holder_set(lt_holder_t *h, void *obj);
/* Drops the held object and the lock; idempotent (and a no-op on NULL). */
void lt_holder_dispose(lt_holder_t *h);

#endif
