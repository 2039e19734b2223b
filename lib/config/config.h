/*
 * config: load and validate latchd's configuration.
 *
 * One table (config.c, `keys[]`) defines every key: name, type, bounds, default, whether it
 * is a secret (then `<key>_file` may name a file holding it) and whether it is reloadable.
 * Sources, later ones winning: defaults, the JSON file, `LATCH_<KEY>` environment variables
 * (and `LATCH_<KEY>_FILE` for secrets). Unknown keys, wrong types, out-of-range values and
 * missing or weak secrets are errors whose message names the key.
 *
 * Ownership: lt_config_t owns its strings; free with lt_config_free(). A loaded config is
 * immutable and may be read from any thread.
 */
#ifndef LT_CONFIG_H
#define LT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum {
    LT_CFG_INT,    /* JSON integer; env decimal */
    LT_CFG_BOOL,   /* JSON true/false; env true|false|1|0|yes|no */
    LT_CFG_STRING, /* JSON string */
    LT_CFG_ENUM,   /* JSON string from a fixed list */
    LT_CFG_KEY32   /* secret: base64/base64url text decoding to exactly 32 bytes */
} lt_config_type_t;

/* signing_alg values, index-aligned with the key table's list. */
typedef enum { LT_CONFIG_ALG_ES256 = 0, LT_CONFIG_ALG_EDDSA = 1 } lt_config_alg_t;

typedef struct lt_config {
    int workers; /* 0 = number of cores; resolved by lt_config_load */
    char *listen;
    char *listen_h2c;
    char *tls_cert;
    char *tls_key;
    char *database_url;
    char *database_owner_url;
    int db_pool_size;
    int db_query_timeout_ms;
    int db_connect_timeout_ms;
    int db_reconnect_max_ms;
    uint8_t master_key[32];
    int max_body_bytes;
    int max_request_bytes;
    int max_json_depth;
    bool migrate_on_start;
    int log_level; /* lt_log_level_t */
    char *access_log;
    int shutdown_timeout_ms;
    bool debug_endpoints;
    char *issuer;
    char *audience;
    int signing_alg; /* lt_config_alg_t */
    int master_key_version;
    int access_token_ttl;
    int jwks_max_age;
    int session_idle_ttl;
    int session_max_ttl;
    int password_reset_ttl;
    int password_min_length;
    int argon2_memory_kib;
    int argon2_iterations;
    int argon2_parallelism;
    int hasher_threads;
    int hasher_queue;
    int lockout_threshold;
    int lockout_window;
    int lockout_duration;
    int lockout_account_threshold;
    int lockout_account_window;
    int lockout_account_max_delay;
    int login_ip_limit;
    int login_ip_window;
    int refresh_reuse_grace;
    int key_prepublish;
    int key_rotation_interval;
    int token_cache_size;
    int maintenance_interval_ms;
    int totp_window;
    int mfa_challenge_ttl;
    int mfa_challenge_attempts;
    int mfa_enrollment_ttl;
    int recent_auth_window;
    int api_key_last_used_flush_ms;
    char *forward_auth_rules;  /* path of the route rules file; "" = forward-auth off */
    char *forward_auth_cookie; /* cookie holding an access token; "" = bearer only */
    int request_signature_window; /* seconds either side of now a signed request's ts may be */
    int request_signature_nonces; /* nonces of signed requests remembered per instance */
    char *rate_limits;     /* JSON object text (lib/http/ratelimit.h); "{}" = built-in limits */
    char *trusted_proxies; /* CIDRs whose X-Forwarded-For is believed; "" = none */
    int h2_window_ms;    /* HTTP/2 abuse budgets (lib/http/h2guard.h), per connection per window */
    int h2_max_resets;   /* RST_STREAM frames (plus half the requests); 0 = unguarded */
    int h2_max_pings;    /* PING frames; 0 = no limit */
    int h2_max_settings; /* SETTINGS frames; 0 = no limit */
    int h2_max_control;  /* other control frames (plus two per request); 0 = no limit */
    int h2_stall_ms;     /* blocked output unmoved this long closes the connection; 0 = never */
} lt_config_t;

/* One row of the key table, exposed for documentation checks and --help. */
typedef struct lt_config_key {
    const char *name;
    lt_config_type_t type;
    long min, max;          /* INT bounds */
    const char *def;        /* default as text; NULL = required (no default) */
    const char *const *enum_values;
    bool secret;            /* also readable from <name>_file */
    bool reloadable;        /* applied on SIGHUP without a restart */
    size_t offset;          /* into lt_config_t */
    const char *help;
} lt_config_key_t;

/** The key table. */
const lt_config_key_t *lt_config_keys(size_t *count);

/** @return a static name for `t` ("integer", "boolean", ...), for documentation. */
const char *lt_config_type_name(lt_config_type_t t);

/**
 * Loads defaults, then `path` (may be NULL), then the environment `envp` (NULL-terminated,
 * "NAME=value" strings as in `environ`; may be NULL), then validates.
 * On failure `err` holds a message naming the key, and `cfg` holds nothing to free.
 * On success every string field is non-NULL and `workers` and `hasher_threads` are at least 1.
 * @return 0, LT_EINVAL (bad key or value), LT_EIO (unreadable file), LT_ENOMEM.
 */
int lt_config_load(lt_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen) LT_MUSTCHECK;

/* Flags for lt_config_load_ex. */
enum {
    LT_CONFIG_CLIENT = 1, /* for tools (latchctl): skip checks that only the server needs (TLS files) and
                             let required secrets be absent ("" / all zero bytes): each command
                             checks the ones it uses */
};

/** lt_config_load with flags. */
int lt_config_load_ex(lt_config_t *cfg, const char *path, char *const *envp, unsigned flags, char *err,
                      size_t errlen) LT_MUSTCHECK;

/*
 * SIGHUP: copies every reloadable key whose value differs from `fresh` into `live` (strings
 * are swapped, so lt_config_free(fresh) releases the old values). `changed` receives the
 * names applied, `fixed` the names that differ but need a restart (comma-separated, cut to
 * the buffer). Nothing may read `live` meanwhile (latchd runs it under
 * lt_http_server_quiesce). Key-spanning rules were checked when `fresh` was loaded.
 */
void lt_config_apply_reloadable(lt_config_t *live, lt_config_t *fresh, char *changed, size_t changed_len, char *fixed,
                                size_t fixed_len);

void lt_config_free(lt_config_t *cfg);

#endif
