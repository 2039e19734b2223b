/*
 * latchd: the Latch server. main(), signals and wiring; nothing else.
 *
 * Start-up: load and validate the configuration (any error names the key and exits 1),
 * optionally migrate, build the router from the api, start the HTTP workers, then the
 * LISTEN control thread whose notifications fan out to the workers. The main thread then
 * only waits for signals: SIGHUP reloads the reloadable keys, SIGTERM/SIGINT stop
 * gracefully (exit 0).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "base/base.h"
#include "config/config.h"
#include "http/ratelimit.h"
#include "http/router.h"
#include "http/server.h"
#include "store/store.h"

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f, "usage: latchd [--config PATH] [--check-config] [--version]\n"
               "  --config PATH    configuration file (JSON); default: $LATCH_CONFIG\n"
               "  --check-config   validate the configuration and exit (0 = valid)\n"
               "  --version        print the version and exit\n"
               "Every key may also be set as LATCH_<KEY> in the environment; see README.md.\n");
}

static const char *config_path(const char *arg)
{
    if (arg != NULL)
        return arg;
    const char *env = getenv("LATCH_CONFIG");
    return env != NULL && *env != '\0' ? env : NULL;
}

typedef struct {
    lt_config_t *live, *fresh;
    char changed[1024], fixed[1024];
} reload_t;

/* Runs while every worker is paused (lt_http_server_quiesce): workers read `live` unlocked. */
static void reload_apply(void *data)
{
    reload_t *r = data;
    lt_config_apply_reloadable(r->live, r->fresh, r->changed, sizeof(r->changed), r->fixed, sizeof(r->fixed));
}

/*
 * SIGHUP: re-read the configuration and apply what may change without a restart. The TLS
 * certificate and key are re-read even when their paths did not change (a renewed
 * certificate is usually written over the old files); new handshakes use them, open
 * connections keep theirs. Anything wrong (a file that no longer validates, a certificate
 * that does not load or match its key) refuses the whole reload: nothing changes.
 */
static void reload(const char *path, lt_config_t *live, lt_http_server_t *server)
{
    reload_t r = {.live = live};
    lt_config_t fresh;
    char err[512];
    int tls = 0;
    if (lt_config_load(&fresh, path, environ, err, sizeof(err)) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "reload refused, configuration unchanged: %s", err);
        return;
    }
    if (lt_http_ratelimit_check(fresh.rate_limits, fresh.trusted_proxies, err, sizeof(err)) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "reload refused, configuration unchanged: %s", err);
        lt_config_free(&fresh);
        return;
    }
    /* `listen` itself needs a restart; with the TLS listener off there is nothing to reload */
    if (live->listen[0] != '\0' && fresh.listen[0] != '\0') {
        if (lt_http_server_reload_tls(server, fresh.tls_cert, fresh.tls_key, err, sizeof(err)) != 0) {
            lt_log(LT_LOG_ERROR, "latchd", "reload refused, configuration and certificate unchanged: %s", err);
            lt_config_free(&fresh);
            return;
        }
        tls = 1;
    }
    r.fresh = &fresh;
    lt_http_server_quiesce(server, reload_apply, &r);
    /* checked above; swapped atomically, so outside the pause */
    if (lt_http_ratelimit_configure(server, live->rate_limits, live->trusted_proxies, err, sizeof(err)) != 0)
        lt_log(LT_LOG_ERROR, "latchd", "rate limits unchanged: %s", err);
    lt_log(LT_LOG_INFO, "latchd", "configuration reloaded%s; keys applied: %s%s%s",
           tls ? ", TLS certificate re-read" : "", r.changed[0] != '\0' ? r.changed : "none",
           r.fixed[0] != '\0' ? "; changed but only applied at restart: " : "", r.fixed);
    /* after the line above, so it shows even when the new level hides info */
    lt_log_set_level((lt_log_level_t)live->log_level);
    lt_config_free(&fresh);
}

static int run(const char *path, lt_config_t *cfg)
{
    lt_api_t *api = NULL;
    lt_router_t *router = NULL;
    lt_http_server_t *server = NULL;
    lt_store_listener_t *listener = NULL;
    lt_http_app_t app;
    char err[512];
    int ret = 1, sig = 0;
    sigset_t sigs;

    /* Workers inherit this mask: signals are taken only by sigwait below. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->migrate_on_start) {
        int applied = 0;
        if (lt_store_migrate(cfg->database_owner_url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)) !=
            0) {
            lt_log(LT_LOG_ERROR, "latchd", "migration failed: %s", err);
            goto done;
        }
        lt_log(LT_LOG_INFO, "latchd", "migrations: %d applied", applied);
    }
    if (lt_api_create(cfg, &api) != 0 || lt_router_create(&router) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "start-up failed: out of memory or duplicate statement");
        goto done;
    }
    if (lt_api_register_routes(api, router) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "start-up failed: route table");
        goto done;
    }
    lt_api_http_app(api, &app);
    lt_http_options_t hopts = {
        .workers = cfg->workers,
        .listen_tls = cfg->listen,
        .listen_h2c = cfg->listen_h2c,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        .max_body_bytes = (size_t)cfg->max_body_bytes,
        .max_request_bytes = (size_t)cfg->max_request_bytes,
        .max_json_depth = cfg->max_json_depth,
        .access_log = cfg->access_log,
        .shutdown_timeout_ms = cfg->shutdown_timeout_ms,
    };
    int rc = lt_http_server_create(&hopts, router, &app, &server, err, sizeof(err));
    router = NULL; /* owned by the server now, even on failure */
    if (rc != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "%s", err);
        goto done;
    }
    lt_api_set_server(api, server);
    if (lt_http_ratelimit_configure(server, cfg->rate_limits, cfg->trusted_proxies, err, sizeof(err)) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "%s", err);
        goto done;
    }
    if (lt_http_server_start(server) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "a worker failed to start");
        goto done;
    }
    size_t nchannels;
    const char *const *channels = lt_api_channels(&nchannels);
    if (lt_store_listener_start(cfg->database_url, channels, nchannels, cfg->db_reconnect_max_ms, lt_api_on_notify, api,
                                &listener) != 0) {
        lt_log(LT_LOG_ERROR, "latchd", "cannot start the notification listener");
        goto done;
    }
    lt_api_set_listener(api, listener);
    lt_log(LT_LOG_INFO, "latchd", "serving: tls=%s (port %d) h2c=%s (port %d), %d workers",
           cfg->listen[0] != '\0' ? cfg->listen : "off", lt_http_server_port(server, 1),
           cfg->listen_h2c[0] != '\0' ? cfg->listen_h2c : "off", lt_http_server_port(server, 0),
           lt_http_server_worker_count(server));

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(path, cfg, server);
            continue;
        }
        break;
    }
    lt_log(LT_LOG_INFO, "latchd", "%s received: stopping (in-flight requests get up to %d ms)", strsignal(sig),
           cfg->shutdown_timeout_ms);
    ret = 0;
done:
    /* The listener first: its thread broadcasts into the workers, which stop next. (The
     * server drops broadcasts to ending workers anyway; this keeps notifications flowing to
     * every worker for as long as it serves.) Halted, not freed: workers may still kick it
     * (api/settle.c), which is then harmless. */
    lt_store_listener_halt(listener);
    if (server != NULL)
        lt_http_server_stop(server);
    lt_http_server_destroy(&server);
    lt_store_listener_stop(&listener);
    lt_router_destroy(&router);
    lt_api_destroy(&api);
    if (ret == 0)
        lt_log(LT_LOG_INFO, "latchd", "stopped");
    return ret;
}

int main(int argc, char **argv)
{
    const char *path_arg = NULL;
    int check = 0;
    char err[512];
    lt_config_t cfg;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path_arg = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path_arg = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("latchd %s\n", LATCH_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "latchd: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const char *path = config_path(path_arg);
    if (lt_config_load(&cfg, path, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchd: %s\n", err);
        return 1;
    }
    if (lt_http_ratelimit_check(cfg.rate_limits, cfg.trusted_proxies, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchd: config: %s\n", err);
        lt_config_free(&cfg);
        return 1;
    }
    if (check) {
        printf("latchd: configuration is valid%s%s\n", path != NULL ? ": " : "", path != NULL ? path : "");
        lt_config_free(&cfg);
        return 0;
    }
    lt_log_set_level((lt_log_level_t)cfg.log_level);
    int ret = run(path, &cfg);
    lt_config_free(&cfg);
    return ret;
}
