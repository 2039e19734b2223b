/*
 * Unit tests for lib/config: the key table, every source, every kind of error, and the
 * documentation checks (README.md and deploy/latch.example.json name every key).
 *
 * The environment is always passed as an explicit envp array; the process environment is
 * only read for LATCH_SOURCE_ROOT, which meson sets. Temporary files live in /tmp.
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
#include <jansson.h>

#include "config/config.h"

/* ---- fixtures ----------------------------------------------------------------------- */

static char *cert_path, *key_path; /* readable stand-ins for the TLS files */
static uint8_t good_key[32];
static char good_key_text[48];

/* Writes `text` to a new file in /tmp. @return its malloc'ed path. */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/latch-test-config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void remove_temp(char *path)
{
    if (path == NULL)
        return;
    unlink(path);
    free(path);
}

static int group_setup(void **state)
{
    (void)state;
    cert_path = write_temp("-----BEGIN CERTIFICATE-----\n");
    key_path = write_temp("-----BEGIN PRIVATE KEY-----\n");
    for (size_t i = 0; i < sizeof(good_key); i++)
        good_key[i] = (uint8_t)(i * 7 + 3);
    lt_b64url_encode(good_key_text, good_key, sizeof(good_key));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    remove_temp(cert_path);
    remove_temp(key_path);
    return 0;
}

/* A NULL-terminated envp built from formatted "NAME=value" strings. */
typedef struct env {
    char *v[32];
    size_t n;
} env_t;

static void env_add(env_t *e, const char *fmt, ...) LT_PRINTF(2, 3);

static void env_add(env_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    assert_true(e->n + 1 < sizeof(e->v) / sizeof(e->v[0]));
    assert_true(vasprintf(&e->v[e->n++], fmt, ap) >= 0);
    e->v[e->n] = NULL;
    va_end(ap);
}

static void env_free(env_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    e->n = 0;
    e->v[0] = NULL;
}

/* The two required secrets. */
static void env_required(env_t *e)
{
    env_add(e, "LATCH_DATABASE_URL=postgresql://latch@localhost/latch");
    env_add(e, "LATCH_MASTER_KEY=%s", good_key_text);
}

static void env_tls(env_t *e)
{
    env_add(e, "LATCH_TLS_CERT=%s", cert_path);
    env_add(e, "LATCH_TLS_KEY=%s", key_path);
}

static void env_minimal(env_t *e)
{
    env_required(e);
    env_tls(e);
}

/* Loads `json` (if not NULL, through a temp file) and the environment `e`. */
static int load(const char *json, const env_t *e, lt_config_t *cfg, char *err, size_t errlen)
{
    char *path = json != NULL ? write_temp(json) : NULL;
    int ret = lt_config_load(cfg, path, e != NULL ? e->v : NULL, err, errlen);
    remove_temp(path);
    return ret;
}

/*
 * True if loading fails with `code`, a message containing `needle`, and a config left with
 * nothing to free. Prints what it got otherwise, so the caller's assert_true has context.
 */
static bool fails_with(int code, const char *json, const env_t *e, const char *needle)
{
    lt_config_t cfg;
    char err[512];
    int ret = load(json, e, &cfg, err, sizeof(err));
    bool ok = ret == code && strstr(err, needle) != NULL && cfg.listen == NULL && cfg.database_url == NULL;
    if (!ok)
        print_error("wanted %d with \"%s\"; got %d \"%s\"\n", code, needle, ret, err);
    if (ret == 0)
        lt_config_free(&cfg);
    return ok;
}

static bool loads(const char *json, const env_t *e, lt_config_t *cfg)
{
    char err[512];
    int ret = load(json, e, cfg, err, sizeof(err));
    if (ret != 0)
        print_error("load failed: %d \"%s\"\n", ret, err);
    return ret == 0;
}

static const lt_config_key_t *find(const char *name)
{
    size_t n;
    const lt_config_key_t *k = lt_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(k[i].name, name) == 0)
            return &k[i];
    }
    fail_msg("no key %s", name);
    return NULL;
}

static char *env_var_name(const char *key)
{
    char *s = NULL;
    assert_true(asprintf(&s, "LATCH_%s", key) > 0);
    for (char *p = s; *p != '\0'; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    return s;
}

static int expected_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* ---- the table ---------------------------------------------------------------------- */

static void test_key_table_is_sane(void **state)
{
    (void)state;
    size_t n = 0;
    const lt_config_key_t *k = lt_config_keys(&n);
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(k[i].name);
        assert_true(k[i].help != NULL && k[i].help[0] != '\0');
        assert_string_not_equal(lt_config_type_name(k[i].type), "unknown");
        assert_true(k[i].type != LT_CFG_ENUM || k[i].enum_values != NULL);
        assert_true(k[i].min <= k[i].max);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(k[i].name, k[j].name);
    }
    assert_true(find("log_level")->reloadable);
    assert_false(find("access_log")->reloadable);
    assert_true(find("master_key")->secret && find("database_url")->secret && find("database_owner_url")->secret);
    assert_false(find("tls_key")->secret);
    assert_null(find("master_key")->def);
    assert_null(find("database_url")->def);
}

/* ---- sources ------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    assert_true(loads(NULL, &e, &cfg));
    assert_int_equal(cfg.workers, expected_workers());
    assert_string_equal(cfg.listen, "127.0.0.1:8443");
    assert_string_equal(cfg.listen_h2c, "");
    assert_string_equal(cfg.tls_cert, cert_path);
    assert_string_equal(cfg.tls_key, key_path);
    assert_string_equal(cfg.database_url, "postgresql://latch@localhost/latch");
    assert_string_equal(cfg.database_owner_url, cfg.database_url);
    assert_int_equal(cfg.db_pool_size, 4);
    assert_int_equal(cfg.db_query_timeout_ms, 5000);
    assert_int_equal(cfg.db_connect_timeout_ms, 3000);
    assert_int_equal(cfg.db_reconnect_max_ms, 5000);
    assert_memory_equal(cfg.master_key, good_key, 32);
    assert_int_equal(cfg.max_body_bytes, 65536);
    assert_int_equal(cfg.max_request_bytes, 1048576);
    assert_int_equal(cfg.max_json_depth, 32);
    assert_false(cfg.migrate_on_start);
    assert_int_equal(cfg.log_level, LT_LOG_INFO);
    assert_string_equal(cfg.access_log, "-");
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_false(cfg.debug_endpoints);
    lt_config_free(&cfg);
    assert_null(cfg.listen);
    lt_config_free(&cfg); /* a freed config frees again harmlessly */
    env_free(&e);
}

static void test_file_values(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_required(&e);
    assert_true(loads("{\"workers\": 3, \"listen\": \"\", \"listen_h2c\": \"[::1]:8080\","
                      " \"database_owner_url\": \"postgresql://owner@db/latch\", \"db_pool_size\": 64,"
                      " \"db_query_timeout_ms\": 100, \"db_connect_timeout_ms\": 60000, \"db_reconnect_max_ms\": 250,"
                      " \"max_body_bytes\": 1024, \"max_request_bytes\": 4096, \"max_json_depth\": 512,"
                      " \"migrate_on_start\": true, \"log_level\": \"debug\", \"access_log\": \"off\","
                      " \"shutdown_timeout_ms\": 0, \"debug_endpoints\": true}",
                      &e, &cfg));
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.listen, "");
    assert_string_equal(cfg.listen_h2c, "[::1]:8080");
    assert_string_equal(cfg.database_owner_url, "postgresql://owner@db/latch");
    assert_int_equal(cfg.db_pool_size, 64);
    assert_int_equal(cfg.db_query_timeout_ms, 100);
    assert_int_equal(cfg.db_connect_timeout_ms, 60000);
    assert_int_equal(cfg.db_reconnect_max_ms, 250);
    assert_int_equal(cfg.max_body_bytes, 1024);
    assert_int_equal(cfg.max_request_bytes, 4096);
    assert_int_equal(cfg.max_json_depth, 512);
    assert_true(cfg.migrate_on_start);
    assert_int_equal(cfg.log_level, LT_LOG_DEBUG);
    assert_string_equal(cfg.access_log, "off");
    assert_int_equal(cfg.shutdown_timeout_ms, 0);
    assert_true(cfg.debug_endpoints);
    lt_config_free(&cfg);
    env_free(&e);
}

static void test_env_beats_file(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    env_add(&e, "LATCH_DB_POOL_SIZE=9");
    env_add(&e, "LATCH_LOG_LEVEL=error");
    env_add(&e, "LATCH_MIGRATE_ON_START=yes");
    env_add(&e, "LATCH_ACCESS_LOG=/var/log/latch/access.log");
    assert_true(loads("{\"db_pool_size\": 8, \"log_level\": \"warn\", \"migrate_on_start\": false,"
                      " \"access_log\": \"off\", \"max_json_depth\": 7}",
                      &e, &cfg));
    assert_int_equal(cfg.db_pool_size, 9);
    assert_int_equal(cfg.log_level, LT_LOG_ERROR);
    assert_true(cfg.migrate_on_start);
    assert_string_equal(cfg.access_log, "/var/log/latch/access.log");
    assert_int_equal(cfg.max_json_depth, 7); /* only in the file */
    lt_config_free(&cfg);
    env_free(&e);
}

static void test_env_bool_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {"true", "1", "yes", "false", "0", "no"};
    for (size_t i = 0; i < 6; i++) {
        env_t e = {0};
        lt_config_t cfg;
        env_minimal(&e);
        env_add(&e, "LATCH_DEBUG_ENDPOINTS=%s", forms[i]);
        assert_true(loads(NULL, &e, &cfg));
        assert_int_equal(cfg.debug_endpoints, i < 3);
        lt_config_free(&cfg);
        env_free(&e);
    }
    static const char *const bad[] = {"maybe", "TRUE", "", "2", "on"};
    for (size_t i = 0; i < 5; i++) {
        env_t e = {0};
        env_minimal(&e);
        env_add(&e, "LATCH_DEBUG_ENDPOINTS=%s", bad[i]);
        assert_true(fails_with(LT_EINVAL, NULL, &e, "config: LATCH_DEBUG_ENDPOINTS: expected true|false"));
        env_free(&e);
    }
}

static void test_env_int_parsing(void **state)
{
    (void)state;
    static const char *const bad[] = {"12abc", "", " 12", "12 ", "0x10", "+4", "4.0", "-", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_t e = {0};
        env_minimal(&e);
        env_add(&e, "LATCH_DB_POOL_SIZE=%s", bad[i]);
        assert_true(fails_with(LT_EINVAL, NULL, &e, "config: LATCH_DB_POOL_SIZE: expected a decimal integer"));
        env_free(&e);
    }
    env_t e = {0};
    env_minimal(&e);
    env_add(&e, "LATCH_DB_POOL_SIZE=99999999999999999999999");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "LATCH_DB_POOL_SIZE: 99999999999999999999999 is out of range 1..64"));
    env_free(&e);
    env_minimal(&e);
    env_add(&e, "LATCH_DB_POOL_SIZE=4294967300"); /* would wrap to 4 as a 32-bit int */
    assert_true(fails_with(LT_EINVAL, NULL, &e, "LATCH_DB_POOL_SIZE: 4294967300 is out of range 1..64"));
    env_free(&e);
    env_minimal(&e);
    env_add(&e, "LATCH_WORKERS=-1");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: LATCH_WORKERS: -1 is out of range 0..256"));
    env_free(&e);
}

static void test_secrets_from_files_in_json(void **state)
{
    (void)state;
    char *kf = write_temp(good_key_text), *uf = write_temp("host=db user=latch\n");
    char *key_nl = NULL, *json = NULL;
    env_t e = {0};
    lt_config_t cfg;
    /* The key file ends in newlines and spaces, as editors and `echo` leave it. */
    assert_true(asprintf(&key_nl, "%s\n \n", good_key_text) > 0);
    remove_temp(kf);
    kf = write_temp(key_nl);
    env_tls(&e);
    assert_true(asprintf(&json, "{\"master_key_file\": \"%s\", \"database_url_file\": \"%s\"}", kf, uf) > 0);
    assert_true(loads(json, &e, &cfg));
    assert_memory_equal(cfg.master_key, good_key, 32);
    assert_string_equal(cfg.database_url, "host=db user=latch");
    assert_string_equal(cfg.database_owner_url, "host=db user=latch");
    lt_config_free(&cfg);
    for (size_t i = 0; i < 32; i++)
        assert_int_equal(cfg.master_key[i], 0);
    free(json);
    free(key_nl);
    remove_temp(kf);
    remove_temp(uf);
    env_free(&e);
}

static void test_secrets_from_env_file(void **state)
{
    (void)state;
    char *kf = write_temp(good_key_text), *uf = write_temp("postgresql://env@db/latch");
    char *of = write_temp("postgresql://owner@db/latch\n");
    env_t e = {0};
    lt_config_t cfg;
    env_tls(&e);
    env_add(&e, "LATCH_MASTER_KEY_FILE=%s", kf);
    env_add(&e, "LATCH_DATABASE_URL_FILE=%s", uf);
    env_add(&e, "LATCH_DATABASE_OWNER_URL_FILE=%s", of);
    assert_true(loads(NULL, &e, &cfg));
    assert_memory_equal(cfg.master_key, good_key, 32);
    assert_string_equal(cfg.database_url, "postgresql://env@db/latch");
    assert_string_equal(cfg.database_owner_url, "postgresql://owner@db/latch");
    lt_config_free(&cfg);
    remove_temp(kf);
    remove_temp(uf);
    remove_temp(of);
    env_free(&e);
}

static void test_secret_value_and_file(void **state)
{
    (void)state;
    char *kf = write_temp(good_key_text), *json = NULL;
    env_t e = {0};
    lt_config_t cfg;

    /* Both forms in the file. */
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    assert_true(asprintf(&json, "{\"master_key\": \"%s\", \"master_key_file\": \"%s\"}", good_key_text, kf) > 0);
    assert_true(fails_with(LT_EINVAL, json, &e, "both master_key and master_key_file are set"));
    free(json);
    json = NULL;

    /* Both forms in the environment. */
    env_add(&e, "LATCH_MASTER_KEY=%s", good_key_text);
    env_add(&e, "LATCH_MASTER_KEY_FILE=%s", kf);
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: LATCH_MASTER_KEY_FILE: both master_key"));
    env_free(&e);

    /* One form per source is fine, and the environment wins. */
    uint8_t other[32];
    char other_text[48];
    for (size_t i = 0; i < 32; i++)
        other[i] = (uint8_t)(255 - i * 5);
    lt_b64url_encode(other_text, other, sizeof(other));
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    env_add(&e, "LATCH_MASTER_KEY=%s", other_text);
    assert_true(asprintf(&json, "{\"master_key_file\": \"%s\"}", kf) > 0);
    assert_true(loads(json, &e, &cfg));
    assert_memory_equal(cfg.master_key, other, 32);
    lt_config_free(&cfg);
    free(json);
    remove_temp(kf);
    env_free(&e);
}

static void test_secret_file_unreadable(void **state)
{
    (void)state;
    env_t e = {0};
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    env_add(&e, "LATCH_MASTER_KEY_FILE=/nonexistent/latch/master.key");
    assert_true(fails_with(LT_EIO, NULL, &e, "LATCH_MASTER_KEY_FILE: cannot read '/nonexistent/latch/master.key'"));
    assert_true(fails_with(LT_EIO, "{\"master_key_file\": \"/nonexistent/k\"}", &e, "key 'master_key_file'"));
    env_free(&e);
    env_minimal(&e);
    assert_true(fails_with(LT_EINVAL, "{\"master_key_file\": 5}", &e, "key 'master_key_file': expected string"));
    env_free(&e);
}

/* ---- unknown keys and wrong types --------------------------------------------------- */

static void test_unknown_key_in_file(void **state)
{
    (void)state;
    env_t e = {0};
    env_minimal(&e);
    assert_true(fails_with(LT_EINVAL, "{\"db_pool_sise\": 3}", &e, "config: key 'db_pool_sise': no such key"));
    /* Only secrets have a _file form. */
    assert_true(fails_with(LT_EINVAL, "{\"listen_file\": \"/x\"}", &e, "key 'listen_file': no such key"));
    assert_true(fails_with(LT_EINVAL, "{\"DB_POOL_SIZE\": 3}", &e, "key 'DB_POOL_SIZE'"));
    env_free(&e);
}

static void test_unknown_latch_env(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    env_add(&e, "LATCH_DB_POOL_SISE=3");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: LATCH_DB_POOL_SISE: no such key"));
    env_free(&e);

    env_minimal(&e);
    env_add(&e, "LATCH_db_pool_size=3");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "LATCH_db_pool_size"));
    env_free(&e);

    env_minimal(&e);
    env_add(&e, "LATCH_LISTEN_FILE=/x");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "LATCH_LISTEN_FILE"));
    env_free(&e);

    /* Variables for scripts and everything without the prefix are left alone. */
    env_minimal(&e);
    env_add(&e, "LATCH_CONFIG=/etc/latch/latch.json");
    env_add(&e, "LATCH_DEV_PORT=1");
    env_add(&e, "LATCH_TEST_DATABASE_URL=dbname=t");
    env_add(&e, "PATH=/usr/bin");
    env_add(&e, "LATCHY=1");
    env_add(&e, "NOEQUALS");
    assert_true(loads(NULL, &e, &cfg));
    lt_config_free(&cfg);
    env_free(&e);
}

static void test_wrong_json_types(void **state)
{
    (void)state;
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"{\"db_pool_size\": \"4\"}", "config: key 'db_pool_size': expected integer"},
        {"{\"db_pool_size\": 4.0}", "key 'db_pool_size': expected integer"},
        {"{\"db_pool_size\": null}", "key 'db_pool_size': expected integer"},
        {"{\"migrate_on_start\": 1}", "key 'migrate_on_start': expected boolean"},
        {"{\"migrate_on_start\": \"true\"}", "key 'migrate_on_start': expected boolean"},
        {"{\"listen\": 8443}", "key 'listen': expected string"},
        {"{\"log_level\": [\"info\"]}", "key 'log_level': expected string"},
        {"{\"master_key\": {}}", "key 'master_key': expected string"},
    };
    env_t e = {0};
    env_minimal(&e);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_true(fails_with(LT_EINVAL, cases[i].json, &e, cases[i].msg));
    env_free(&e);
}

static void test_enum_values(void **state)
{
    (void)state;
    env_t e = {0};
    env_minimal(&e);
    assert_true(
        fails_with(LT_EINVAL, "{\"log_level\": \"verbose\"}", &e, "'verbose' is not one of debug|info|warn|error"));
    env_add(&e, "LATCH_LOG_LEVEL=INFO");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "LATCH_LOG_LEVEL: 'INFO' is not one of"));
    env_free(&e);
}

/* ---- bounds ------------------------------------------------------------------------- */

/* Sets `name` to `value` through the environment, with room for the size cross-check. */
static int load_int(const char *name, long value, lt_config_t *cfg, char *err, size_t errlen)
{
    env_t e = {0};
    char *var = env_var_name(name);
    env_minimal(&e);
    env_add(&e, "%s=%ld", var, value);
    if (strcmp(name, "max_body_bytes") != 0)
        env_add(&e, "LATCH_MAX_BODY_BYTES=1024");
    if (strcmp(name, "max_request_bytes") != 0)
        env_add(&e, "LATCH_MAX_REQUEST_BYTES=67108864");
    /* Keys checked against each other: keep the partner out of the way. */
    if (strcmp(name, "jwks_max_age") == 0 || strcmp(name, "key_rotation_interval") == 0)
        env_add(&e, "LATCH_KEY_PREPUBLISH=%d", strcmp(name, "jwks_max_age") == 0 ? 604800 : 0);
    if (strcmp(name, "key_prepublish") == 0 || strcmp(name, "key_rotation_interval") == 0)
        env_add(&e, "LATCH_JWKS_MAX_AGE=0");
    int ret = load(NULL, &e, cfg, err, errlen);
    env_free(&e);
    free(var);
    return ret;
}

static void test_int_bounds(void **state)
{
    (void)state;
    size_t n;
    const lt_config_key_t *k = lt_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (k[i].type != LT_CFG_INT)
            continue;
        lt_config_t cfg;
        char err[512], want[160], *var = env_var_name(k[i].name);
        const long bad[] = {k[i].min - 1, k[i].max + 1}, good[] = {k[i].min, k[i].max};
        for (size_t j = 0; j < 2; j++) {
            int ret = load_int(k[i].name, bad[j], &cfg, err, sizeof(err));
            snprintf(want, sizeof(want), "config: %s: %ld is out of range %ld..%ld", var, bad[j], k[i].min, k[i].max);
            if (ret != LT_EINVAL || strcmp(err, want) != 0)
                fail_msg("%s=%ld: got %d \"%s\"", var, bad[j], ret, err);
        }
        for (size_t j = 0; j < 2; j++) {
            if (load_int(k[i].name, good[j], &cfg, err, sizeof(err)) != 0)
                fail_msg("%s=%ld: %s", var, good[j], err);
            int got = *(const int *)((const char *)&cfg + k[i].offset);
            /* workers and hasher_threads 0 are resolved to the core count */
            int resolved = good[j] == 0 && (strcmp(k[i].name, "workers") == 0 || strcmp(k[i].name, "hasher_threads") == 0);
            assert_int_equal(got, resolved ? expected_workers() : good[j]);
            lt_config_free(&cfg);
        }
        free(var);
    }
}

static void test_out_of_range_in_file(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    char err[512];
    env_minimal(&e);
    assert_int_equal(load("{\"db_pool_size\": 0}", &e, &cfg, err, sizeof(err)), LT_EINVAL);
    assert_string_equal(err, "config: key 'db_pool_size': 0 is out of range 1..64");
    assert_true(fails_with(LT_EINVAL, "{\"db_pool_size\": 65}", &e, "key 'db_pool_size': 65 is out of range 1..64"));
    assert_true(fails_with(LT_EINVAL, "{\"max_json_depth\": 9223372036854775807}", &e,
                           "key 'max_json_depth': 9223372036854775807 is out of range 1..512"));
    env_free(&e);
}

static void test_workers_zero_resolves_to_cores(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    assert_true(loads("{\"workers\": 0}", &e, &cfg));
    assert_true(cfg.workers >= 1);
    assert_int_equal(cfg.workers, expected_workers());
    lt_config_free(&cfg);
    assert_true(loads("{\"workers\": 3}", &e, &cfg));
    assert_int_equal(cfg.workers, 3);
    lt_config_free(&cfg);
    env_free(&e);
}

static void test_request_smaller_than_body(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    env_add(&e, "LATCH_MAX_BODY_BYTES=65536");
    env_add(&e, "LATCH_MAX_REQUEST_BYTES=65535");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: key 'max_request_bytes': 65535 is less than max_body_bytes"));
    env_free(&e);
    env_minimal(&e);
    assert_true(fails_with(LT_EINVAL, "{\"max_body_bytes\": 2000000}", &e, "key 'max_request_bytes'"));
    env_add(&e, "LATCH_MAX_REQUEST_BYTES=2000000");
    assert_true(loads("{\"max_body_bytes\": 2000000}", &e, &cfg)); /* equal is fine */
    lt_config_free(&cfg);
    env_free(&e);
}

/* ---- the master key and other required secrets -------------------------------------- */

static bool key_fails(const char *text, const char *needle)
{
    env_t e = {0};
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    env_add(&e, "LATCH_MASTER_KEY=%s", text);
    lt_config_t cfg;
    char err[512];
    int ret = load(NULL, &e, &cfg, err, sizeof(err));
    env_free(&e);
    /* The message names the key but must never echo its value. */
    bool ok = ret == LT_EINVAL && strstr(err, "LATCH_MASTER_KEY") != NULL && strstr(err, needle) != NULL &&
              (text[0] == '\0' || strstr(err, text) == NULL);
    if (!ok)
        print_error("key '%s': got %d \"%s\"\n", text, ret, err);
    if (ret == 0)
        lt_config_free(&cfg);
    return ok;
}

static char *encode(const uint8_t *p, size_t n)
{
    char *s = malloc(lt_b64url_enclen(n) + 1);
    assert_non_null(s);
    lt_b64url_encode(s, p, n);
    return s;
}

static void test_master_key_wrong_length(void **state)
{
    (void)state;
    char *short_key = encode(good_key, 31), *long_key = NULL;
    uint8_t bytes[33];
    memcpy(bytes, good_key, 32);
    bytes[32] = 0x5a;
    long_key = encode(bytes, 33);
    assert_true(key_fails(short_key, "must decode to exactly 32 bytes"));
    assert_true(key_fails(long_key, "must decode to exactly 32 bytes"));
    assert_true(key_fails("", "must decode to exactly 32 bytes"));
    free(short_key);
    free(long_key);

    char bad[48];
    memcpy(bad, good_key_text, sizeof(bad));
    bad[10] = '!';
    assert_true(key_fails(bad, "not valid base64"));
    bad[10] = ' ';
    assert_true(key_fails(bad, "not valid base64"));
}

static void test_master_key_weak(void **state)
{
    (void)state;
    uint8_t k[32];
    memset(k, 0, sizeof(k));
    char *s = encode(k, 32);
    assert_true(key_fails(s, "weak key"));
    free(s);

    memset(k, 0x41, sizeof(k));
    s = encode(k, 32);
    assert_true(key_fails(s, "weak key"));
    free(s);

    for (size_t i = 0; i < 32; i++)
        k[i] = (uint8_t)(i % 7 * 31); /* seven distinct values */
    s = encode(k, 32);
    assert_true(key_fails(s, "weak key"));
    free(s);

    for (size_t i = 0; i < 32; i++)
        k[i] = (uint8_t)(i % 8 * 31); /* eight is enough */
    s = encode(k, 32);
    env_t e = {0};
    lt_config_t cfg;
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    env_add(&e, "LATCH_MASTER_KEY=%s", s);
    assert_true(loads(NULL, &e, &cfg));
    assert_memory_equal(cfg.master_key, k, 32);
    lt_config_free(&cfg);
    env_free(&e);
    free(s);
}

/* `openssl rand -base64 32` writes the standard alphabet with '=' padding. */
static void test_master_key_standard_base64(void **state)
{
    (void)state;
    uint8_t k[32];
    for (size_t i = 0; i < 32; i++)
        k[i] = (uint8_t)(0xff - i * 3);
    char *s = encode(k, 32), *std = NULL;
    assert_non_null(strpbrk(s, "-_")); /* the test means something only if they differ */
    for (char *p = s; *p != '\0'; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    assert_true(asprintf(&std, "%s=", s) > 0);
    env_t e = {0};
    lt_config_t cfg;
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    env_add(&e, "LATCH_MASTER_KEY=%s", std);
    assert_true(loads(NULL, &e, &cfg));
    assert_memory_equal(cfg.master_key, k, 32);
    lt_config_free(&cfg);
    env_free(&e);
    free(s);
    free(std);
}

static void test_required_secrets_missing(void **state)
{
    (void)state;
    env_t e = {0};
    env_tls(&e);
    env_add(&e, "LATCH_DATABASE_URL=dbname=latch");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: key 'master_key': required but not set"));
    env_free(&e);

    env_tls(&e);
    env_add(&e, "LATCH_MASTER_KEY=%s", good_key_text);
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: key 'database_url': required but not set"));
    assert_true(fails_with(LT_EINVAL, "{\"database_url\": \"\"}", &e, "key 'database_url': required"));
    env_add(&e, "LATCH_DATABASE_URL=");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "key 'database_url': required"));
    env_free(&e);

    /* An empty secret file is as good as none. */
    char *empty = write_temp("\n");
    env_tls(&e);
    env_add(&e, "LATCH_MASTER_KEY=%s", good_key_text);
    env_add(&e, "LATCH_DATABASE_URL_FILE=%s", empty);
    assert_true(fails_with(LT_EINVAL, NULL, &e, "key 'database_url': required"));
    env_free(&e);
    remove_temp(empty);
}

/* ---- listeners and TLS -------------------------------------------------------------- */

static void test_tls_files_required_with_listen(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    env_required(&e);
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: key 'tls_cert': required when 'listen' is set"));
    env_add(&e, "LATCH_TLS_CERT=%s", cert_path);
    assert_true(fails_with(LT_EINVAL, NULL, &e, "config: key 'tls_key': required when 'listen' is set"));
    assert_true(
        fails_with(LT_EINVAL, "{\"tls_key\": \"/nonexistent/key.pem\"}", &e, "key 'tls_key': cannot read '/nonexistent"));
    env_free(&e);

    /* No TLS listener, no TLS files needed. */
    env_required(&e);
    env_add(&e, "LATCH_LISTEN=");
    env_add(&e, "LATCH_LISTEN_H2C=127.0.0.1:8080");
    assert_true(loads(NULL, &e, &cfg));
    assert_string_equal(cfg.listen, "");
    assert_string_equal(cfg.tls_cert, "");
    lt_config_free(&cfg);
    env_free(&e);
}

static void test_listen_format(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "localhost", "host:", ":8443", "host:0", "host:65536", "host:80x", "host:-1", "host:+80", "host:123456",
        "::1:8443", "[::1]8443", "[::1]:", "[]:80", "[zz::1]:80", "[::1:80", "ho st:80", "host:80:90",
    };
    static const char *const good[] = {"127.0.0.1:8443", "[::1]:8443", "[::]:1", "example.com:65535", "0.0.0.0:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int h2c = 0; h2c < 2; h2c++) {
            env_t e = {0};
            char want[160];
            env_minimal(&e);
            env_add(&e, "LATCH_LISTEN%s=%s", h2c ? "_H2C" : "", bad[i]);
            snprintf(want, sizeof(want), "config: key '%s': '%s' is not host:port", h2c ? "listen_h2c" : "listen", bad[i]);
            assert_true(fails_with(LT_EINVAL, NULL, &e, want));
            env_free(&e);
        }
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        env_t e = {0};
        lt_config_t cfg;
        env_minimal(&e);
        env_add(&e, "LATCH_LISTEN=%s", good[i]);
        env_add(&e, "LATCH_LISTEN_H2C=%s", good[i]);
        assert_true(loads(NULL, &e, &cfg));
        assert_string_equal(cfg.listen, good[i]);
        lt_config_free(&cfg);
        env_free(&e);
    }
}

static void test_access_log_not_empty(void **state)
{
    (void)state;
    env_t e = {0};
    env_minimal(&e);
    env_add(&e, "LATCH_ACCESS_LOG=");
    assert_true(fails_with(LT_EINVAL, NULL, &e, "key 'access_log'"));
    env_free(&e);
}

/* ---- the file itself ---------------------------------------------------------------- */

static void test_duplicate_json_keys(void **state)
{
    (void)state;
    env_t e = {0};
    env_minimal(&e);
    assert_true(fails_with(LT_EINVAL, "{\"db_pool_size\": 1, \"db_pool_size\": 2}", &e, "duplicate"));
    env_free(&e);
}

static void test_file_errors(void **state)
{
    (void)state;
    env_t e = {0};
    lt_config_t cfg;
    char err[512];
    env_minimal(&e);
    assert_true(fails_with(LT_EINVAL, "[]", &e, "the top level must be an object"));
    assert_true(fails_with(LT_EINVAL, "{\"workers\": 1,}", &e, ":1:"));
    assert_true(fails_with(LT_EINVAL, "", &e, "config: "));
    assert_int_equal(lt_config_load(&cfg, "/nonexistent/latch.json", e.v, err, sizeof(err)), LT_EIO);
    assert_non_null(strstr(err, "/nonexistent/latch.json"));
    assert_true(loads("{}", &e, &cfg));
    lt_config_free(&cfg);
    /* No error buffer is fine too. */
    assert_int_equal(lt_config_load(&cfg, "/nonexistent/latch.json", e.v, NULL, 0), LT_EIO);
    env_free(&e);
}

/* ---- documentation ------------------------------------------------------------------ */

static char *read_source_file(const char *rel)
{
    const char *root = getenv("LATCH_SOURCE_ROOT");
    char *path = NULL, *text = NULL;
    if (root == NULL)
        fail_msg("LATCH_SOURCE_ROOT is not set (meson sets it)");
    assert_true(asprintf(&path, "%s/%s", root, rel) > 0);
    if (lt_read_file(path, 1 << 20, &text, NULL) != 0)
        fail_msg("cannot read %s", path);
    free(path);
    return text;
}

/* STYLE.md 13: a key the README does not document fails the build. */
static void test_readme_documents_every_key(void **state)
{
    (void)state;
    char *readme = read_source_file("README.md"), needle[96];
    size_t n, missing = 0;
    const lt_config_key_t *k = lt_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        snprintf(needle, sizeof(needle), "`%s`", k[i].name);
        if (strstr(readme, needle) == NULL) {
            print_error("README.md does not document the configuration key `%s`\n", k[i].name);
            missing++;
        }
    }
    free(readme);
    assert_int_equal(missing, 0);
}

/*
 * The sample names every non-secret key and the _file form of every required secret, and
 * (with the secrets and TLS files supplied here) it loads.
 */
static void test_example_config_has_every_key(void **state)
{
    (void)state;
    char *text = read_source_file("deploy/latch.example.json"), name[96];
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    size_t n, missing = 0;
    const lt_config_key_t *k = lt_config_keys(&n);
    if (root == NULL)
        fail_msg("deploy/latch.example.json:%d: %s", jerr.line, jerr.text);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%s", k[i].name, k[i].secret ? "_file" : "");
        if (k[i].secret && k[i].def != NULL)
            continue;
        if (json_object_get(root, name) == NULL) {
            print_error("deploy/latch.example.json lacks \"%s\"\n", name);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    /* Its secret files do not exist here; the environment supplies the secrets instead. */
    for (size_t i = 0; i < n; i++) {
        if (k[i].secret) {
            snprintf(name, sizeof(name), "%s_file", k[i].name);
            json_object_del(root, name);
        }
    }
    char *stripped = json_dumps(root, 0);
    env_t e = {0};
    lt_config_t cfg;
    env_minimal(&e);
    assert_true(loads(stripped, &e, &cfg));
    lt_config_free(&cfg);
    env_free(&e);
    free(stripped);
    json_decref(root);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_table_is_sane),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_env_beats_file),
        cmocka_unit_test(test_env_bool_forms),
        cmocka_unit_test(test_env_int_parsing),
        cmocka_unit_test(test_secrets_from_files_in_json),
        cmocka_unit_test(test_secrets_from_env_file),
        cmocka_unit_test(test_secret_value_and_file),
        cmocka_unit_test(test_secret_file_unreadable),
        cmocka_unit_test(test_unknown_key_in_file),
        cmocka_unit_test(test_unknown_latch_env),
        cmocka_unit_test(test_wrong_json_types),
        cmocka_unit_test(test_enum_values),
        cmocka_unit_test(test_int_bounds),
        cmocka_unit_test(test_out_of_range_in_file),
        cmocka_unit_test(test_workers_zero_resolves_to_cores),
        cmocka_unit_test(test_request_smaller_than_body),
        cmocka_unit_test(test_master_key_wrong_length),
        cmocka_unit_test(test_master_key_weak),
        cmocka_unit_test(test_master_key_standard_base64),
        cmocka_unit_test(test_required_secrets_missing),
        cmocka_unit_test(test_tls_files_required_with_listen),
        cmocka_unit_test(test_listen_format),
        cmocka_unit_test(test_access_log_not_empty),
        cmocka_unit_test(test_duplicate_json_keys),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_readme_documents_every_key),
        cmocka_unit_test(test_example_config_has_every_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
