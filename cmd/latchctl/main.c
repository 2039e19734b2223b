/*
 * latchctl: the admin command line.
 *
 *   latchctl [--config PATH] COMMAND [ARGS...]
 *
 * Each command is one row of `commands[]` (name, usage, summary, handler); a new command
 * (bootstrap, keys, audit verify, ...) is a handler plus a row. Handlers get argv starting
 * at the command name and return the process exit status: 0 success, 1 failure, 2 usage.
 * The configuration is loaded only by commands that need it, the same way latchd loads it
 * (defaults, then the file from --config or LATCH_CONFIG, then LATCH_* variables).
 *
 * Output: results on stdout, errors on stderr prefixed "latchctl:". Library log lines go
 * through a plain-text sink (info to stdout, warnings and errors to stderr). Connection
 * strings are never printed: they may hold a password.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "config/config.h"
#include "store/store.h"

#ifndef LATCH_VERSION
#define LATCH_VERSION "0.1.0"
#endif

extern char **environ;

typedef struct ctx {
    const char *config_path;
    lt_config_t cfg;
    int cfg_loaded;
} ctx_t;

typedef struct command {
    const char *name;
    const char *usage; /* arguments after the name */
    const char *summary;
    int (*run)(ctx_t *ctx, int argc, char **argv);
} command_t;

static int cmd_migrate(ctx_t *ctx, int argc, char **argv);

static const command_t commands[] = {
    {"migrate", "[--status]", "apply pending database migrations (--status: list applied and pending)", cmd_migrate},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: latchctl [--config PATH] COMMAND [ARGS...]\n"
                 "       latchctl --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %-12s %s\n", commands[i].name, commands[i].usage, commands[i].summary);
    fprintf(out, "\nThe configuration comes from --config PATH (or $LATCH_CONFIG) and LATCH_* variables.\n");
}

static void cli_log_sink(lt_log_level_t level, const char *module, const char *msg, void *data)
{
    (void)module;
    (void)data;
    if (level >= LT_LOG_WARN)
        fprintf(stderr, "latchctl: %s: %s\n", level == LT_LOG_WARN ? "warning" : "error", msg);
    else
        fprintf(stdout, "%s\n", msg);
}

static int load_config(ctx_t *ctx)
{
    char err[512];
    const char *path = ctx->config_path != NULL ? ctx->config_path : getenv("LATCH_CONFIG");
    if (path != NULL && path[0] == '\0')
        path = NULL;
    if (lt_config_load_ex(&ctx->cfg, path, environ, LT_CONFIG_CLIENT, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchctl: configuration: %s\n", err);
        return -1;
    }
    ctx->cfg_loaded = 1;
    return 0;
}

/* The migrations run as the owner role; database_owner_url defaults to database_url. */
static const char *owner_url(ctx_t *ctx)
{
    const char *url = ctx->cfg.database_owner_url;
    if (url == NULL || url[0] == '\0')
        url = ctx->cfg.database_url;
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "latchctl: configuration: database_owner_url (or database_url) is not set\n");
        return NULL;
    }
    return url;
}

/* ---- migrate ----------------------------------------------------------------------- */

typedef struct status_counts {
    int applied, pending, modified, unknown;
} status_counts_t;

static void print_status(const char *name, lt_migration_state_t state, const char *applied_at, void *data)
{
    status_counts_t *n = data;
    const char *label = "pending";
    switch (state) {
    case LT_MIGRATION_APPLIED:
        label = "applied";
        n->applied++;
        break;
    case LT_MIGRATION_PENDING:
        n->pending++;
        break;
    case LT_MIGRATION_MODIFIED:
        label = "MODIFIED";
        n->modified++;
        break;
    case LT_MIGRATION_UNKNOWN:
        label = "unknown";
        n->unknown++;
        break;
    }
    printf("%-40s %-8s %s\n", name, label, applied_at != NULL ? applied_at : "");
}

static int migrate_status(const char *url)
{
    char err[512];
    status_counts_t n = {0, 0, 0, 0};
    if (lt_store_migrate_status(url, lt_migrations, lt_migrations_count, print_status, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchctl: migrate: %s\n", err);
        return 1;
    }
    printf("%d applied, %d pending", n.applied, n.pending);
    if (n.unknown > 0)
        printf(", %d unknown to this binary (a newer schema?)", n.unknown);
    if (n.modified > 0)
        printf(", %d MODIFIED after being applied", n.modified);
    printf("\n");
    return n.modified > 0 ? 1 : 0;
}

static int migrate_apply(const char *url)
{
    char err[512];
    int applied = 0;
    if (lt_store_migrate(url, lt_migrations, lt_migrations_count, &applied, err, sizeof(err)) != 0) {
        if (applied > 0)
            printf("applied %d migration(s) before the failure\n", applied);
        fprintf(stderr, "latchctl: migrate: %s\n", err);
        return 1;
    }
    if (applied == 0)
        printf("database is up to date (%zu migration(s))\n", lt_migrations_count);
    else
        printf("applied %d migration(s); %zu in total\n", applied, lt_migrations_count);
    return 0;
}

static int cmd_migrate(ctx_t *ctx, int argc, char **argv)
{
    int status = 0;
    const char *url;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0) {
            status = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: latchctl [--config PATH] migrate [--status]\n\n"
                   "Applies the migrations built into this binary, in order, as the owner role\n"
                   "(database_owner_url). --status lists them without changing anything.\n");
            return 0;
        } else {
            fprintf(stderr, "latchctl: migrate: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (load_config(ctx) != 0 || (url = owner_url(ctx)) == NULL)
        return 1;
    lt_log_set_sink(cli_log_sink, NULL);
    lt_log_set_level(LT_LOG_INFO); /* "applied <file>" lines are the point of the command */
    return status ? migrate_status(url) : migrate_apply(url);
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    ctx_t ctx;
    int i, ret = 2;

    memset(&ctx, 0, sizeof(ctx));
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("latchctl %s\n", LATCH_VERSION);
            return 0;
        } else if (strcmp(a, "--config") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "latchctl: --config needs a path\n");
                return 2;
            }
            ctx.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctx.config_path = a + 9;
        } else {
            fprintf(stderr, "latchctl: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < NCOMMANDS; c++)
        if (strcmp(argv[i], commands[c].name) == 0) {
            ret = commands[c].run(&ctx, argc - i, argv + i);
            goto done;
        }
    fprintf(stderr, "latchctl: unknown command '%s' (see latchctl --help)\n", argv[i]);
done:
    fflush(stdout);
    if (ctx.cfg_loaded)
        lt_config_free(&ctx.cfg);
    return ret;
}
