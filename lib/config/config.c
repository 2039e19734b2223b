/*
 * config: the key table and the loader; config.h states the contract.
 *
 * Design: every key is one row of `keys[]`, built by a per-type macro whose first argument
 * is the lt_config_t field, so the key's name is the field's name and a row cannot point
 * at a field of the wrong C type (FIELD() refuses to compile). Every source ends in the
 * same two setters: set_text() for defaults, environment values and secret files, and
 * set_json() for values from the JSON file. That keeps parsing and bounds in one place.
 * Code names individual keys only in validate(), for rules that span keys.
 *
 * Sources, later ones overwriting earlier ones: the row defaults, the JSON file, then the
 * environment. `seen[]` is reset per source to catch a value and its `_file` form given
 * together in one source, which is ambiguous; across sources the later one simply wins.
 *
 * Threading: lt_config_load() uses no global state (the environment comes in as `envp`),
 * so it may run on any thread, and tests may run it in parallel.
 *
 * Ownership: lt_config_t owns its malloc'ed strings. Secret strings and the master key are
 * wiped before they are freed or replaced, and so is every buffer a secret file was read
 * into. Error messages name keys and paths, never a secret's value. A secret written
 * inline in the JSON file does pass through jansson's and stdio's buffers unwiped, which
 * is one more reason the README recommends `<key>_file`.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Offset of field `f` of lt_config_t; does not compile unless `f` has C type `T`. */
#define FIELD(f, T)                                                                                                        \
    (offsetof(lt_config_t, f) +                                                                                            \
     0 * sizeof(char[__builtin_types_compatible_p(__typeof__(((lt_config_t *)0)->f), T) ? 1 : -1]))

#define K_INT(f, lo, hi, def, reload, help) {#f, LT_CFG_INT, lo, hi, def, NULL, false, reload, FIELD(f, int), help}
#define K_BOOL(f, def, reload, help) {#f, LT_CFG_BOOL, 0, 1, def, NULL, false, reload, FIELD(f, bool), help}
#define K_STR(f, def, secret, reload, help) {#f, LT_CFG_STRING, 0, 0, def, NULL, secret, reload, FIELD(f, char *), help}
#define K_ENUM(f, vals, def, reload, help) {#f, LT_CFG_ENUM, 0, 0, def, vals, false, reload, FIELD(f, int), help}
#define K_KEY32(f, reload, help) {#f, LT_CFG_KEY32, 0, 0, NULL, NULL, true, reload, FIELD(f, uint8_t[32]), help}

/* Upper bound of `workers`, also the cap when it is resolved from the CPU count. */
#define MAX_WORKERS 256
/* Secret files hold a key or a conninfo string; anything bigger is the wrong file. */
#define SECRET_FILE_MAX 65536
/*
 * A random 32-byte key has about 30 distinct byte values; fewer than 8 happens by chance
 * with probability below 1e-20, so it only catches hand-made keys ("AAAA...", "abab...").
 */
#define KEY_MIN_DISTINCT 8

/* Order matches lt_log_level_t, so the stored index is the level. */
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
/* Order matches lt_config_alg_t. */
static const char *const signing_algs[] = {"ES256", "EdDSA", NULL};

/* Keep the README's "Configuration" table in step; a unit test checks every name is there. */
static const lt_config_key_t keys[] = {
    K_INT(workers, 0, MAX_WORKERS, "0", false, "worker threads, each with its own event loop; 0 = one per online CPU"),
    K_STR(listen, "127.0.0.1:8443", false, false, "TLS listener as host:port ([::1]:8443 for IPv6); empty disables it"),
    K_STR(listen_h2c, "", false, false, "cleartext HTTP/2 (prior knowledge) listener as host:port; empty disables it"),
    K_STR(tls_cert, "", false, true, "PEM certificate chain file; required when listen is set"),
    K_STR(tls_key, "", false, true, "PEM private key file; required when listen is set"),
    K_STR(database_url, NULL, true, false, "PostgreSQL conninfo or postgresql:// URI the service connects with"),
    K_STR(database_owner_url, "", true, false, "conninfo for migrations (schema owner); empty = database_url"),
    K_INT(db_pool_size, 1, 64, "4", false, "database connections per worker"),
    K_INT(db_query_timeout_ms, 100, 600000, "5000", false, "deadline of one database query"),
    K_INT(db_connect_timeout_ms, 100, 60000, "3000", false, "deadline for opening a database connection"),
    K_INT(db_reconnect_max_ms, 100, 60000, "5000", false, "longest back-off between database reconnect attempts"),
    K_KEY32(master_key, false, "32 random bytes as base64 or base64url text (openssl rand -base64 32)"),
    K_INT(max_body_bytes, 1024, 16777216, "65536", false, "largest request body accepted"),
    K_INT(max_request_bytes, 4096, 67108864, "1048576", false, "largest request, headers and body; >= max_body_bytes"),
    K_INT(max_json_depth, 1, 512, "32", false, "deepest nesting of arrays and objects accepted in a JSON body"),
    K_BOOL(migrate_on_start, "false", false, "apply pending database migrations at start, as database_owner_url"),
    K_ENUM(log_level, log_levels, "info", true, "least severe log level written"),
    K_STR(access_log, "-", false, false, "access log: - = stdout, off = none, else a file path"),
    K_INT(shutdown_timeout_ms, 0, 600000, "10000", false, "how long a graceful shutdown waits for requests in flight"),
    K_BOOL(debug_endpoints, "false", false, "enable diagnostic routes; never in production"),
    K_STR(issuer, "https://127.0.0.1:8443", false, false, "the iss of every token: this service's public https URL"),
    K_STR(audience, "latch", false, false, "the aud of access tokens issued at login"),
    K_ENUM(signing_alg, signing_algs, "ES256", false, "algorithm of newly created signing keys: ES256 or EdDSA"),
    K_INT(master_key_version, 1, 255, "1", false, "version byte written with every value sealed under master_key"),
    K_INT(access_token_ttl, 1, 86400, "600", false, "access token lifetime, seconds"),
    K_INT(jwks_max_age, 0, 86400, "300", false, "Cache-Control max-age of the JWKS, seconds"),
    K_INT(session_idle_ttl, 1, 31536000, "604800", true, "a session unused this long ends, seconds"),
    K_INT(session_max_ttl, 1, 31536000, "2592000", true, "absolute session lifetime, seconds"),
    K_INT(password_reset_ttl, 60, 86400, "1800", true, "lifetime of a password reset token, seconds"),
    K_INT(password_min_length, 8, 1024, "12", false, "shortest password accepted, characters"),
    K_INT(argon2_memory_kib, 1024, 4194304, "19456", false, "argon2id memory cost of new hashes, KiB"),
    K_INT(argon2_iterations, 1, 64, "2", false, "argon2id time cost of new hashes"),
    K_INT(argon2_parallelism, 1, 64, "1", false, "argon2id lanes of new hashes"),
    K_INT(hasher_threads, 0, 256, "0", false, "password hasher threads; 0 = one per online CPU"),
    K_INT(hasher_queue, 1, 100000, "128", false, "password jobs that may wait; beyond it logins get 503 overloaded"),
    K_INT(lockout_threshold, 1, 1000, "5", true, "failed logins from one source (email + client IP) before it is locked out"),
    K_INT(lockout_window, 1, 86400, "900", true, "window in which source failures are counted, seconds"),
    K_INT(lockout_duration, 1, 86400, "900", true, "how long a locked-out source gets 429, seconds"),
    K_INT(lockout_account_threshold, 1, 1000000, "50", true, "failures of an account from all sources per window before logins to it are slowed"),
    K_INT(lockout_account_window, 1, 604800, "3600", true, "window of the account-wide failure count, seconds"),
    K_INT(lockout_account_max_delay, 1, 3600, "60", true, "longest gap forced between attempts on a slowed account, seconds"),
    K_INT(login_ip_limit, 0, 1000000, "100", true, "login attempts per client IP per login_ip_window; 0 = no limit"),
    K_INT(login_ip_window, 1, 86400, "60", true, "window of the per-IP login limit, seconds"),
    K_INT(refresh_reuse_grace, 0, 300, "10", false, "a repeat of a just-rotated refresh token this soon returns its successor instead of counting as reuse, seconds"),
    K_INT(key_prepublish, 0, 604800, "3600", false, "a rotated-in signing key is published this long before it signs, seconds (at least jwks_max_age)"),
    K_INT(key_rotation_interval, 0, 31536000, "0", false, "rotate the signing key automatically this often, seconds; 0 = only on request"),
    K_INT(token_cache_size, 16, 16777216, "16384", false, "verified access tokens cached per worker for introspection"),
    K_INT(maintenance_interval_ms, 100, 60000, "1000", false, "how often key promotion and clean-up run, milliseconds"),
    K_INT(totp_window, 0, 5, "1", true, "TOTP time steps accepted on each side of now"),
    K_INT(mfa_challenge_ttl, 1, 3600, "300", true, "lifetime of the MFA challenge a login gets before its second factor, seconds"),
    K_INT(mfa_challenge_attempts, 1, 20, "5", true, "codes that may be tried against one MFA challenge"),
    K_INT(mfa_enrollment_ttl, 1, 86400, "900", true, "lifetime of the enrolment-only token of tenants that require MFA, seconds"),
    K_INT(recent_auth_window, 1, 86400, "300", true, "removing a factor or regenerating recovery codes needs an authentication this recent (or the password), seconds"),
    K_INT(api_key_last_used_flush_ms, 100, 60000, "5000", false, "each worker writes the last-use times of the API keys it saw used this often, in one statement, milliseconds"),
    K_STR(forward_auth_rules, "", false, false, "JSON file of forward-auth route rules (deploy/forward-auth/routes.example.json); empty = /v1/forward-auth answers 404"),
    K_STR(forward_auth_cookie, "", false, false, "name of a cookie forward-auth reads an access token from when there is no bearer; empty = bearer only"),
    K_INT(request_signature_window, 1, 3600, "300", false, "signed requests: largest accepted gap between a signature's ts and this server's clock, either way, seconds"),
    K_INT(request_signature_nonces, 1024, 100000000, "1000000", false, "signed requests: most nonces remembered per instance (about 40 bytes each, allocated as used); beyond it signed requests get 503"),
    K_STR(rate_limits, "{}", false, true, "rate limits per route group and key kind, a JSON object (README, Rate limits); {} = the built-in limits"),
    K_STR(trusted_proxies, "", false, true, "proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client; empty = none"),
    K_INT(h2_window_ms, 1000, 600000, "10000", true, "HTTP/2 abuse budgets: the sliding window the h2_max_* counts are per (per connection), milliseconds"),
    K_INT(h2_max_resets, 0, 1000000, "200", true, "HTTP/2 streams a client may reset per h2_window_ms on one connection, beyond half its requests (Rapid Reset, CVE-2023-44487); over it: GOAWAY ENHANCE_YOUR_CALM and close; 0 = off (also the per-turn stream cap)"),
    K_INT(h2_max_pings, 0, 1000000, "100", true, "HTTP/2 PING frames a client may send per h2_window_ms on one connection; 0 = no limit"),
    K_INT(h2_max_settings, 0, 1000000, "100", true, "HTTP/2 SETTINGS frames a client may send per h2_window_ms on one connection; 0 = no limit"),
    K_INT(h2_max_control, 0, 10000000, "1000", true, "other HTTP/2 control frames (PRIORITY, tiny WINDOW_UPDATE, empty DATA/CONTINUATION, unknown) per h2_window_ms on one connection, plus two per request; 0 = no limit"),
    K_INT(h2_stall_ms, 0, 3600000, "10000", true, "an HTTP/2 connection whose output is blocked (peer not reading, or withholding flow-control window) and has not moved for this long is closed, milliseconds; 0 = never"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

enum { SEEN_VALUE = 1, SEEN_FILE = 2 };

typedef struct load {
    lt_config_t *cfg;
    char *err;
    size_t errlen;
    unsigned flags; /* LT_CONFIG_* */
    bool given[NKEYS];         /* set by some source, not by a default */
    unsigned char seen[NKEYS]; /* SEEN_* bits from the current source */
} load_t;

const lt_config_key_t *lt_config_keys(size_t *count)
{
    if (count != NULL)
        *count = NKEYS;
    return keys;
}

const char *lt_config_type_name(lt_config_type_t t)
{
    switch (t) {
    case LT_CFG_INT:
        return "integer";
    case LT_CFG_BOOL:
        return "boolean";
    case LT_CFG_STRING:
        return "string";
    case LT_CFG_ENUM:
        return "enum";
    case LT_CFG_KEY32:
        return "key32";
    }
    return "unknown";
}

static int failf(load_t *ld, int code, const char *where, const char *fmt, ...) LT_PRINTF(4, 5);

/* Writes "config: <where>: <message>" into the caller's buffer and returns `code`. */
static int failf(load_t *ld, int code, const char *where, const char *fmt, ...)
{
    if (ld->errlen == 0)
        return code;
    int n = snprintf(ld->err, ld->errlen, "config: %s%s", where != NULL ? where : "", where != NULL ? ": " : "");
    if (n < 0 || (size_t)n >= ld->errlen)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

static void *field(const load_t *ld, const lt_config_key_t *k)
{
    return (char *)ld->cfg + k->offset;
}

static void free_string(char *s, bool secret)
{
    if (s != NULL && secret)
        lt_wipe(s, strlen(s));
    free(s);
}

/* "LATCH_" + the upper-cased key name. */
static void env_name(char *out, size_t n, const char *key)
{
    int o = snprintf(out, n, "LATCH_");
    for (const char *p = key; *p != '\0' && (size_t)o + 1 < n; p++)
        out[o++] = (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

static bool same_name(const char *key, const char *s, size_t n, bool upper)
{
    for (size_t i = 0; i < n; i++) {
        char c = upper ? (char)toupper((unsigned char)key[i]) : key[i];
        if (key[i] == '\0' || s[i] != c)
            return false;
    }
    return true;
}

/*
 * Finds the row for `name` (`len` bytes, upper case when it comes from the environment).
 * For a secret, "<name>_file" finds the same row with *file set. @return index or -1.
 */
static int find_key(const char *name, size_t len, bool upper, bool *file)
{
    for (size_t i = 0; i < NKEYS; i++) {
        size_t kl = strlen(keys[i].name);
        if (len < kl || !same_name(keys[i].name, name, kl, upper))
            continue;
        *file = len > kl;
        if (len == kl || (keys[i].secret && len == kl + 5 && same_name("_file", name + kl, 5, upper)))
            return (int)i;
    }
    return -1;
}

/* Decimal only: an optional '-' and digits (strtoll alone takes spaces, '+', "0x", junk). */
static int parse_decimal(const char *s, long long *out)
{
    const char *digits = s + (*s == '-');
    if (*digits == '\0' || digits[strspn(digits, "0123456789")] != '\0')
        return LT_EINVAL;
    errno = 0;
    *out = strtoll(s, NULL, 10);
    return errno == ERANGE ? LT_ERANGE : 0;
}

static int set_int(load_t *ld, const lt_config_key_t *k, const char *where, long long v)
{
    if (v < k->min || v > k->max)
        return failf(ld, LT_EINVAL, where, "%lld is out of range %ld..%ld", v, k->min, k->max);
    *(int *)field(ld, k) = (int)v;
    return 0;
}

static int set_int_text(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    long long v;
    int ret = parse_decimal(text, &v);
    if (ret == LT_EINVAL)
        return failf(ld, LT_EINVAL, where, "expected a decimal integer");
    if (ret == LT_ERANGE)
        return failf(ld, LT_EINVAL, where, "%.32s is out of range %ld..%ld", text, k->min, k->max);
    return set_int(ld, k, where, v);
}

static int set_bool_text(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *(bool *)field(ld, k) = strcmp(text, yes[i]) == 0;
            return 0;
        }
    }
    return failf(ld, LT_EINVAL, where, "expected true|false|1|0|yes|no");
}

static int set_string(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    char **slot = field(ld, k);
    char *copy = strdup(text);
    if (copy == NULL)
        return failf(ld, LT_ENOMEM, where, "out of memory");
    free_string(*slot, k->secret);
    *slot = copy;
    return 0;
}

static int set_enum(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    char list[160];
    size_t o = 0;
    for (int i = 0; k->enum_values[i] != NULL; i++) {
        if (strcmp(text, k->enum_values[i]) == 0) {
            *(int *)field(ld, k) = i;
            return 0;
        }
        int n = snprintf(list + o, sizeof(list) - o, "%s%s", i > 0 ? "|" : "", k->enum_values[i]);
        o = n < 0 || (size_t)n >= sizeof(list) - o ? sizeof(list) - 1 : o + (size_t)n;
    }
    list[o] = '\0';
    return failf(ld, LT_EINVAL, where, "'%.64s' is not one of %s", text, list);
}

static int distinct_bytes(const uint8_t *p, size_t n)
{
    bool seen[256] = {false};
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        count += !seen[p[i]];
        seen[p[i]] = true;
    }
    lt_wipe(seen, sizeof(seen)); /* says which byte values the key holds */
    return count;
}

/* The value never appears in a message, not even its decoded length. */
static int set_key32(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    uint8_t key[32];
    int ret = 0;
    long n = lt_b64url_decode(key, sizeof(key), text, strlen(text));
    if (n == LT_EINVAL) {
        ret = failf(ld, LT_EINVAL, where, "not valid base64 or base64url text");
        goto done;
    }
    if (n != (long)sizeof(key)) {
        ret = failf(ld, LT_EINVAL, where, "must decode to exactly 32 bytes");
        goto done;
    }
    if (distinct_bytes(key, sizeof(key)) < KEY_MIN_DISTINCT) {
        ret = failf(ld, LT_EINVAL, where, "weak key (fewer than %d distinct byte values); use 32 random bytes",
                    KEY_MIN_DISTINCT);
        goto done;
    }
    memcpy(field(ld, k), key, sizeof(key));
done:
    lt_wipe(key, sizeof(key));
    return ret;
}

static int set_text(load_t *ld, const lt_config_key_t *k, const char *where, const char *text)
{
    switch (k->type) {
    case LT_CFG_INT:
        return set_int_text(ld, k, where, text);
    case LT_CFG_BOOL:
        return set_bool_text(ld, k, where, text);
    case LT_CFG_STRING:
        return set_string(ld, k, where, text);
    case LT_CFG_ENUM:
        return set_enum(ld, k, where, text);
    case LT_CFG_KEY32:
        return set_key32(ld, k, where, text);
    }
    return failf(ld, LT_EINVAL, where, "bad type in the key table");
}

/* JSON types must match: "4" is not an integer and 1 is not a boolean. */
static int set_json(load_t *ld, const lt_config_key_t *k, const char *where, const json_t *v)
{
    if (k->type == LT_CFG_INT) {
        if (!json_is_integer(v))
            return failf(ld, LT_EINVAL, where, "expected integer");
        return set_int(ld, k, where, json_integer_value(v));
    }
    if (k->type == LT_CFG_BOOL) {
        if (!json_is_boolean(v))
            return failf(ld, LT_EINVAL, where, "expected boolean");
        *(bool *)field(ld, k) = json_is_true(v);
        return 0;
    }
    /* A string key whose default is an object (rate_limits) holds that JSON: the file may
     * give the object itself, kept as its compact text. */
    if (k->type == LT_CFG_STRING && k->def != NULL && k->def[0] == '{' && json_is_object(v)) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        if (text == NULL)
            return failf(ld, LT_ENOMEM, where, "out of memory");
        int ret = set_text(ld, k, where, text);
        free(text);
        return ret;
    }
    if (!json_is_string(v))
        return failf(ld, LT_EINVAL, where, "expected string");
    return set_text(ld, k, where, json_string_value(v));
}

/* A secret from a file; trailing whitespace (an editor's final newline) is not part of it. */
static int set_from_file(load_t *ld, const lt_config_key_t *k, const char *where, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int ret = lt_read_file(path, SECRET_FILE_MAX, &buf, &len);
    int saved = errno;
    if (ret == LT_ENOMEM)
        return failf(ld, LT_ENOMEM, where, "out of memory");
    if (ret == LT_ERANGE)
        return failf(ld, LT_EINVAL, where, "'%s' is larger than %d bytes", path, SECRET_FILE_MAX);
    if (ret != 0)
        return failf(ld, LT_EIO, where, "cannot read '%s': %s", path, strerror(saved));
    size_t all = len;
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        buf[--len] = '\0';
    if (strlen(buf) != len)
        ret = failf(ld, LT_EINVAL, where, "'%s' contains a NUL byte", path);
    else
        ret = set_text(ld, k, where, buf);
    lt_wipe(buf, all);
    free(buf);
    return ret;
}

/* Records that the current source gave row `i`; a value and its _file form conflict. */
static int mark(load_t *ld, size_t i, bool file, const char *where)
{
    unsigned char bit = file ? SEEN_FILE : SEEN_VALUE;
    if (ld->seen[i] != 0 && ld->seen[i] != bit)
        return failf(ld, LT_EINVAL, where, "both %s and %s_file are set; use one", keys[i].name, keys[i].name);
    ld->seen[i] |= bit;
    ld->given[i] = true;
    return 0;
}

static int load_defaults(load_t *ld)
{
    char where[96];
    int ret;
    for (size_t i = 0; i < NKEYS; i++) {
        const lt_config_key_t *k = &keys[i];
        snprintf(where, sizeof(where), "default of key '%s'", k->name);
        /* A required string still starts as "", so every string field is non-NULL. */
        const char *def = k->def != NULL ? k->def : k->type == LT_CFG_STRING ? "" : NULL;
        if (def != NULL && (ret = set_text(ld, k, where, def)) != 0)
            return ret;
    }
    return 0;
}

static int load_file(load_t *ld, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *name;
    char where[96];
    int ret = 0;
    if (root == NULL && json_error_code(&jerr) == json_error_cannot_open_file)
        return failf(ld, LT_EIO, NULL, "%s", jerr.text);
    if (root == NULL)
        return failf(ld, LT_EINVAL, NULL, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        ret = failf(ld, LT_EINVAL, NULL, "%s: the top level must be an object", path);
        goto done;
    }
    memset(ld->seen, 0, sizeof(ld->seen));
    json_object_foreach(root, name, v) {
        bool file = false;
        snprintf(where, sizeof(where), "key '%.64s'", name);
        int i = find_key(name, strlen(name), false, &file);
        if (i < 0) {
            ret = failf(ld, LT_EINVAL, where, "no such key");
            goto done;
        }
        if ((ret = mark(ld, (size_t)i, file, where)) != 0)
            goto done;
        if (file && !json_is_string(v))
            ret = failf(ld, LT_EINVAL, where, "expected string");
        else if (file)
            ret = set_from_file(ld, &keys[i], where, json_string_value(v));
        else
            ret = set_json(ld, &keys[i], where, v);
        if (ret != 0)
            goto done;
    }
done:
    json_decref(root);
    return ret;
}

/* LATCH_CONFIG names the file; LATCH_DEV_* and LATCH_TEST_* belong to scripts and tests. */
static bool env_ignored(const char *name, size_t len)
{
    return (len == 12 && memcmp(name, "LATCH_CONFIG", 12) == 0) || strncmp(name, "LATCH_DEV_", 10) == 0 ||
           strncmp(name, "LATCH_TEST_", 11) == 0;
}

static int load_env(load_t *ld, char *const *envp)
{
    char where[96];
    int ret;
    memset(ld->seen, 0, sizeof(ld->seen));
    for (; envp != NULL && *envp != NULL; envp++) {
        const char *var = *envp, *eq = strchr(var, '=');
        if (eq == NULL || strncmp(var, "LATCH_", 6) != 0 || env_ignored(var, (size_t)(eq - var)))
            continue;
        bool file = false;
        snprintf(where, sizeof(where), "%.*s", (int)(eq - var), var);
        /* Any other LATCH_ variable is most likely a typo that would silently do nothing. */
        int i = find_key(var + 6, (size_t)(eq - var - 6), true, &file);
        if (i < 0)
            return failf(ld, LT_EINVAL, where, "no such key (LATCH_DEV_* and LATCH_TEST_* are free for scripts)");
        if ((ret = mark(ld, (size_t)i, file, where)) != 0)
            return ret;
        ret = file ? set_from_file(ld, &keys[i], where, eq + 1) : set_text(ld, &keys[i], where, eq + 1);
        if (ret != 0)
            return ret;
    }
    return 0;
}

/* "host:port" or "[ipv6]:port", port 1..65535. */
static bool valid_listen(const char *s)
{
    const char *colon;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        char host[INET6_ADDRSTRLEN];
        struct in6_addr addr;
        size_t hl = close != NULL ? (size_t)(close - s - 1) : 0;
        if (close == NULL || close[1] != ':' || hl == 0 || hl >= sizeof(host))
            return false;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET6, host, &addr) != 1)
            return false;
        colon = close + 1;
    } else {
        static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
        colon = strchr(s, ':');
        if (colon == NULL || colon == s || strspn(s, host_chars) != (size_t)(colon - s))
            return false;
    }
    const char *port = colon + 1;
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl)
        return false;
    long p = strtol(port, NULL, 10);
    return p >= 1 && p <= 65535;
}

static int check_listen(load_t *ld, const char *name, const char *value)
{
    char where[64];
    if (*value == '\0' || valid_listen(value))
        return 0;
    snprintf(where, sizeof(where), "key '%s'", name);
    return failf(ld, LT_EINVAL, where, "'%.128s' is not host:port with port 1..65535 (IPv6 as [::1]:8443)", value);
}

static int check_tls_file(load_t *ld, const char *name, const char *path)
{
    char where[64];
    snprintf(where, sizeof(where), "key '%s'", name);
    if (*path == '\0')
        return failf(ld, LT_EINVAL, where, "required when 'listen' is set");
    if (access(path, R_OK) != 0)
        return failf(ld, LT_EINVAL, where, "cannot read '%s': %s", path, strerror(errno));
    return 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* -1 where the count is unknown (some sandboxes): one worker still serves. */
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

/* Required keys, rules that span keys, formats, and values derived from others. */
/* "" (off) or an RFC 6265 cookie-name: a token of at most 64 characters. */
static bool cookie_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return false;
    }
    return true;
}

static int validate(load_t *ld)
{
    lt_config_t *c = ld->cfg;
    char where[96], env[64];
    int ret;
    for (size_t i = 0; i < NKEYS; i++) {
        const lt_config_key_t *k = &keys[i];
        bool empty = k->type == LT_CFG_STRING && **(char **)field(ld, k) == '\0';
        if (k->def != NULL || (ld->given[i] && !empty))
            continue;
        /* Tools need secrets only for some commands (the database for migrate, bootstrap,
         * audit; nothing for hash-password): those commands check what they use. An absent
         * secret string reads as "", an absent key as all zero bytes. */
        if ((ld->flags & LT_CONFIG_CLIENT) && k->secret) {
            char **str = field(ld, k);
            if (k->type == LT_CFG_STRING && *str == NULL && (*str = strdup("")) == NULL)
                return failf(ld, LT_ENOMEM, NULL, "out of memory");
            continue;
        }
        snprintf(where, sizeof(where), "key '%s'", k->name);
        env_name(env, sizeof(env), k->name);
        if (k->secret)
            return failf(ld, LT_EINVAL, where, "required but not set (file: %s or %s_file; environment: %s or %s_FILE)",
                         k->name, k->name, env, env);
        return failf(ld, LT_EINVAL, where, "required but not set (file: %s; environment: %s)", k->name, env);
    }
    if ((ret = check_listen(ld, "listen", c->listen)) != 0 || (ret = check_listen(ld, "listen_h2c", c->listen_h2c)) != 0)
        return ret;
    if (*c->listen != '\0' && !(ld->flags & LT_CONFIG_CLIENT) &&
        ((ret = check_tls_file(ld, "tls_cert", c->tls_cert)) != 0 || (ret = check_tls_file(ld, "tls_key", c->tls_key)) != 0))
        return ret;
    if (c->max_request_bytes < c->max_body_bytes)
        return failf(ld, LT_EINVAL, "key 'max_request_bytes'", "%d is less than max_body_bytes (%d)", c->max_request_bytes,
                     c->max_body_bytes);
    if (*c->access_log == '\0')
        return failf(ld, LT_EINVAL, "key 'access_log'", "empty; use - for stdout or off for none");
    if (c->workers == 0)
        c->workers = online_cpus();
    if (c->hasher_threads == 0)
        c->hasher_threads = online_cpus();
    if (strncmp(c->issuer, "https://", 8) != 0 && strncmp(c->issuer, "http://", 7) != 0)
        return failf(ld, LT_EINVAL, "key 'issuer'", "must be an https:// (or, for development, http://) URL");
    if (*c->audience == '\0')
        return failf(ld, LT_EINVAL, "key 'audience'", "empty");
    if (c->key_prepublish < c->jwks_max_age)
        return failf(ld, LT_EINVAL, "key 'key_prepublish'",
                     "%d is less than jwks_max_age (%d): caches could miss a key that already signs", c->key_prepublish,
                     c->jwks_max_age);
    if (c->key_rotation_interval != 0 && c->key_rotation_interval <= c->key_prepublish)
        return failf(ld, LT_EINVAL, "key 'key_rotation_interval'", "%d must exceed key_prepublish (%d)",
                     c->key_rotation_interval, c->key_prepublish);
    if (!cookie_name_ok(c->forward_auth_cookie))
        return failf(ld, LT_EINVAL, "key 'forward_auth_cookie'", "not a cookie name (RFC 6265 token characters)");
    if (*c->database_owner_url == '\0') {
        char *copy = strdup(c->database_url);
        if (copy == NULL)
            return failf(ld, LT_ENOMEM, "key 'database_owner_url'", "out of memory");
        free(c->database_owner_url);
        c->database_owner_url = copy;
    }
    return 0;
}

int lt_config_load(lt_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    return lt_config_load_ex(cfg, path, envp, 0, err, errlen);
}

int lt_config_load_ex(lt_config_t *cfg, const char *path, char *const *envp, unsigned flags, char *err, size_t errlen)
{
    if (cfg == NULL || (err == NULL && errlen != 0))
        return LT_EINVAL;
    load_t ld = {.cfg = cfg, .err = err, .errlen = errlen, .flags = flags};
    int ret;
    memset(cfg, 0, sizeof(*cfg));
    if (errlen != 0)
        err[0] = '\0';
    if ((ret = load_defaults(&ld)) != 0 || (path != NULL && (ret = load_file(&ld, path)) != 0) ||
        (ret = load_env(&ld, envp)) != 0 || (ret = validate(&ld)) != 0)
        goto fail;
    return 0;
fail:
    lt_config_free(cfg);
    return ret;
}

/* Appends ", name" (or "name") to a bounded list. */
static void list_add(char *list, size_t n, const char *name)
{
    if (n == 0)
        return;
    size_t used = strlen(list);
    snprintf(list + used, n - used, "%s%s", used != 0 ? ", " : "", name);
}

void lt_config_apply_reloadable(lt_config_t *live, lt_config_t *fresh, char *changed, size_t changed_len, char *fixed,
                                size_t fixed_len)
{
    if (changed_len != 0)
        changed[0] = '\0';
    if (fixed_len != 0)
        fixed[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const lt_config_key_t *k = &keys[i];
        void *a = (char *)live + k->offset, *b = (char *)fresh + k->offset;
        bool same;
        switch (k->type) {
        case LT_CFG_STRING:
            same = strcmp(*(char **)a, *(char **)b) == 0;
            break;
        case LT_CFG_BOOL:
            same = *(bool *)a == *(bool *)b;
            break;
        case LT_CFG_KEY32:
            same = lt_ct_eq(a, b, 32);
            break;
        default:
            same = *(int *)a == *(int *)b;
            break;
        }
        if (same)
            continue;
        if (!k->reloadable) {
            list_add(fixed, fixed_len, k->name);
            continue;
        }
        list_add(changed, changed_len, k->name);
        if (k->type == LT_CFG_STRING) { /* swapped: freeing `fresh` frees the old value */
            char *t = *(char **)a;
            *(char **)a = *(char **)b;
            *(char **)b = t;
        } else if (k->type == LT_CFG_BOOL) {
            *(bool *)a = *(bool *)b;
        } else if (k->type != LT_CFG_KEY32) {
            *(int *)a = *(int *)b;
        }
    }
}

void lt_config_free(lt_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        void *p = (char *)cfg + keys[i].offset;
        if (keys[i].type == LT_CFG_STRING)
            free_string(*(char **)p, keys[i].secret);
        else if (keys[i].type == LT_CFG_KEY32)
            lt_wipe(p, 32);
    }
    memset(cfg, 0, sizeof(*cfg));
}
