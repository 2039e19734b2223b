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

#include "audit/audit.h"
#include "base/base.h"
#include "config/config.h"
#include "crypto/hasher.h"
#include "identity/admin.h"
#include "identity/password.h"
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
static int cmd_audit(ctx_t *ctx, int argc, char **argv);
static int cmd_bootstrap(ctx_t *ctx, int argc, char **argv);
static int cmd_hash_password(ctx_t *ctx, int argc, char **argv);

static const command_t commands[] = {
    {"migrate", "[--status]", "apply pending database migrations (--status: list applied and pending)", cmd_migrate},
    {"audit", "verify", "check the audit log's hash chain (exit 0 intact, 1 broken or unreadable)", cmd_audit},
    {"bootstrap", "OPTIONS", "create a tenant and its first admin (--tenant, --email; password on stdin)",
     cmd_bootstrap},
    {"hash-password", "[--no-config] [--time N]", "print the argon2id PHC string of the password on stdin", cmd_hash_password},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: latchctl [--config PATH] COMMAND [ARGS...]\n"
                 "       latchctl --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-13s %-12s %s\n", commands[i].name, commands[i].usage, commands[i].summary);
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
/* database_url, or NULL after saying it is missing (tools may load a config without it). */
static const char *runtime_url(ctx_t *ctx)
{
    const char *url = ctx->cfg.database_url;
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "latchctl: configuration: database_url is not set\n");
        return NULL;
    }
    return url;
}

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

/* ---- audit ------------------------------------------------------------------------- */

/*
 * audit verify: recomputes every hash of the audit chain, reading as database_url's user
 * (SELECT is all it needs). The verdict is the command's result, so both outcomes go to
 * stdout: "audit chain intact: N rows" (exit 0) or "audit chain broken at row ID: REASON"
 * (exit 1). When the chain cannot be read at all, the error goes to stderr (exit 1).
 */
static int cmd_audit(ctx_t *ctx, int argc, char **argv)
{
    char err[512];
    lt_audit_report_t rep;
    const char *url;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: latchctl [--config PATH] audit verify\n\n"
               "Walks the audit log in id order as the runtime user (database_url) and checks\n"
               "that every row links to the one before it and still has the hash it was written\n"
               "with. Prints \"audit chain intact: N rows\" and exits 0, or prints\n"
               "\"audit chain broken at row ID: REASON\" and exits 1, naming the first row whose\n"
               "hash no longer matches (it was changed) or whose link does not hold (the row\n"
               "before it was deleted or rewritten). Errors go to stderr, exit 1.\n");
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "latchctl: audit: expected 'verify' (see latchctl audit --help)\n");
        return 2;
    }
    if (argc > 2) {
        fprintf(stderr, "latchctl: audit verify: unknown argument '%s'\n", argv[2]);
        return 2;
    }
    if (load_config(ctx) != 0 || (url = runtime_url(ctx)) == NULL)
        return 1;
    if (lt_audit_verify(url, &rep, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchctl: audit verify: %s\n", err);
        return 1;
    }
    if (rep.first_bad >= 0) {
        printf("audit chain broken at row %lld: %s\n", (long long)rep.first_bad, rep.reason);
        return 1;
    }
    printf("audit chain intact: %llu rows\n", (unsigned long long)rep.rows);
    return 0;
}

/* ---- bootstrap, hash-password ----------------------------------------------------------- */

/* Exit statuses beyond 0/1/2, so scripts (deploy/dev/up) can tell these cases apart. */
#define EXIT_BOOTSTRAPPED 3 /* bootstrap: the tenant has users already; nothing changed */
#define EXIT_POLICY 4       /* bootstrap: the password policy refused the password */

typedef struct secret {
    char *p;
    size_t n, cap;
} secret_t;

static void secret_free(secret_t *s)
{
    if (s->p != NULL)
        lt_wipe(s->p, s->cap);
    free(s->p);
    memset(s, 0, sizeof(*s));
}

/*
 * The password is the first line of standard input without its line end (LF or CRLF), so
 * `printf '%s\n' "$pw" | latchctl ...` and a typed line both work. It is never echoed
 * back, logged or put on a command line.
 */
static int read_password(const char *cmd, secret_t *s)
{
    memset(s, 0, sizeof(*s));
    ssize_t n = getline(&s->p, &s->cap, stdin);
    if (n < 0) {
        secret_free(s);
        fprintf(stderr, "latchctl: %s: no password on standard input\n", cmd);
        return -1;
    }
    while (n > 0 && (s->p[n - 1] == '\n' || s->p[n - 1] == '\r'))
        s->p[--n] = '\0';
    s->n = (size_t)n;
    if (s->n == 0 || s->n > LT_PASSWORD_MAX || strlen(s->p) != s->n) {
        fprintf(stderr, "latchctl: %s: the password must be 1 to %d bytes on the first line of standard input\n", cmd,
                LT_PASSWORD_MAX);
        secret_free(s);
        return -1;
    }
    return 0;
}

static lt_hasher_params_t argon2_params(const lt_config_t *cfg)
{
    lt_hasher_params_t p = {(uint32_t)cfg->argon2_memory_kib, (uint32_t)cfg->argon2_iterations,
                            (uint32_t)cfg->argon2_parallelism};
    return p;
}

/* `--name VALUE` or `--name=VALUE` at argv[*i]; advances *i past a separate value. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *out = NULL;
        return 1;
    }
    *out = argv[++*i];
    return 1;
}

static int cmd_bootstrap(ctx_t *ctx, int argc, char **argv)
{
    const char *tenant = NULL, *email_in = NULL, *display = NULL;
    char email[LT_ADMIN_EMAIL_MAX + 1], reason[256], err[512];
    char tenant_id[LT_ADMIN_UUID_LEN + 1], user_id[LT_ADMIN_UUID_LEN + 1];
    const char *why = NULL, *v = NULL;
    int global = 0, status = 1, ret;
    secret_t pw = {0};
    char *phc = NULL;
    lt_password_policy_t *policy = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: latchctl [--config PATH] bootstrap --tenant NAME --email EMAIL [--global]\n"
                   "                [--display-name TEXT] < password\n\n"
                   "Creates tenant NAME (unless it exists without users) and its first admin, with\n"
                   "role admin (and global_admin with --global), in one transaction as the runtime\n"
                   "user (database_url). The password is the first line of standard input; it must\n"
                   "pass the password policy and is stored as an argon2id hash with the configured\n"
                   "parameters. Prints tenant_id=... and user_id=... lines.\n\n"
                   "exit status: 0 created, 1 error, 2 usage or invalid argument, 3 the tenant\n"
                   "already has users (nothing changed), 4 the password policy refused the password\n");
            return 0;
        }
        if (strcmp(argv[i], "--global") == 0) {
            global = 1;
            continue;
        }
        if (opt_value(argc, argv, &i, "--tenant", &v))
            tenant = v;
        else if (opt_value(argc, argv, &i, "--email", &v))
            email_in = v;
        else if (opt_value(argc, argv, &i, "--display-name", &v))
            display = v;
        else {
            fprintf(stderr, "latchctl: bootstrap: unknown argument '%s' (see latchctl bootstrap --help)\n", argv[i]);
            return 2;
        }
        if (v == NULL) {
            fprintf(stderr, "latchctl: bootstrap: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (tenant == NULL || email_in == NULL) {
        fprintf(stderr, "latchctl: bootstrap: --tenant and --email are required (see latchctl bootstrap --help)\n");
        return 2;
    }
    if (!lt_admin_tenant_name_ok(tenant)) {
        fprintf(stderr, "latchctl: bootstrap: tenant name '%s' must be 1 to 63 of a-z, 0-9 and '-', not starting "
                        "with '-'\n", tenant);
        return 2;
    }
    if (lt_admin_email_check(email_in, email, sizeof(email), &why) != 0) {
        fprintf(stderr, "latchctl: bootstrap: --email %s\n", why);
        return 2;
    }
    if (load_config(ctx) != 0 || runtime_url(ctx) == NULL)
        return 1;
    if (read_password("bootstrap", &pw) != 0)
        return 1;
    if ((ret = lt_password_policy_create(ctx->cfg.password_min_length, &policy)) != 0) {
        fprintf(stderr, "latchctl: bootstrap: cannot load the password policy: %s\n", lt_strerror(ret));
        goto done;
    }
    if (lt_password_policy_check(policy, pw.p, pw.n, email, reason, sizeof(reason)) != 0) {
        fprintf(stderr, "latchctl: bootstrap: password refused by the policy: %s\n", reason);
        status = EXIT_POLICY;
        goto done;
    }
    lt_hasher_params_t params = argon2_params(&ctx->cfg);
    if ((ret = lt_password_hash(&params, pw.p, pw.n, &phc)) != 0) {
        fprintf(stderr, "latchctl: bootstrap: hashing the password failed: %s\n", lt_strerror(ret));
        goto done;
    }
    secret_free(&pw);
    lt_admin_bootstrap_t in = {
        .tenant = tenant, .display_name = display, .email = email, .phc = phc, .global = global, .actor = "latchctl"};
    ret = lt_admin_bootstrap(ctx->cfg.database_url, &in, tenant_id, user_id, err, sizeof(err));
    if (ret == LT_EEXIST) {
        fprintf(stderr, "latchctl: bootstrap: tenant %s already bootstrapped (it has users; nothing changed)\n", tenant);
        status = EXIT_BOOTSTRAPPED;
        goto done;
    }
    if (ret != 0) {
        fprintf(stderr, "latchctl: bootstrap: %s\n", err);
        goto done;
    }
    printf("tenant_id=%s\nuser_id=%s\n", tenant_id, user_id);
    status = 0;
done:
    secret_free(&pw);
    lt_password_policy_destroy(&policy);
    if (phc != NULL)
        lt_wipe(phc, strlen(phc));
    free(phc);
    return status;
}

/*
 * hash-password needs only the argon2 parameters: from the same sources as latchd's
 * (defaults, --config or LATCH_CONFIG, LATCH_ARGON2_*), or with --no-config the defaults.
 */
static int load_config_for_hashing(ctx_t *ctx, int no_config)
{
    char err[512];
    const char *path = no_config ? NULL : ctx->config_path != NULL ? ctx->config_path : getenv("LATCH_CONFIG");
    if (path != NULL && path[0] == '\0')
        path = NULL;
    if (lt_config_load_ex(&ctx->cfg, path, no_config ? NULL : environ, LT_CONFIG_CLIENT, err, sizeof(err)) != 0) {
        fprintf(stderr, "latchctl: configuration: %s\n", err);
        return -1;
    }
    ctx->cfg_loaded = 1;
    return 0;
}

static int cmd_hash_password(ctx_t *ctx, int argc, char **argv)
{
    int no_config = 0, timing = 0, ret;
    secret_t pw;
    char *phc = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: latchctl [--config PATH] hash-password [--no-config] [--time N] < password\n\n"
                   "Prints the argon2id PHC string of the first line of standard input, made with\n"
                   "the configured argon2_* parameters (--no-config: the built-in defaults). Needs\n"
                   "no database. The password policy is not applied: the result is meant for\n"
                   "password_hash imports and test fixtures. --time N also hashes N more times and\n"
                   "prints the median milliseconds of one hash to stderr (what the hasher pays per\n"
                   "login; tests/bench uses it).\n");
            return 0;
        }
        if (strcmp(argv[i], "--time") == 0 && i + 1 < argc) {
            timing = atoi(argv[++i]);
            if (timing < 1 || timing > 1000) {
                fprintf(stderr, "latchctl: hash-password: --time takes 1..1000\n");
                return 2;
            }
            continue;
        }
        if (strcmp(argv[i], "--no-config") != 0) {
            fprintf(stderr, "latchctl: hash-password: unknown argument '%s'\n", argv[i]);
            return 2;
        }
        no_config = 1;
    }
    if (load_config_for_hashing(ctx, no_config) != 0 || read_password("hash-password", &pw) != 0)
        return 1;
    lt_hasher_params_t params = argon2_params(&ctx->cfg);
    ret = lt_password_hash(&params, pw.p, pw.n, &phc);
    double ms[1000];
    for (int i = 0; ret == 0 && i < timing; i++) {
        char *again = NULL;
        uint64_t t0 = lt_monotonic_ns();
        ret = lt_password_hash(&params, pw.p, pw.n, &again);
        ms[i] = (double)(lt_monotonic_ns() - t0) / 1e6;
        free(again);
    }
    secret_free(&pw);
    if (ret != 0) {
        fprintf(stderr, "latchctl: hash-password: hashing failed: %s\n", lt_strerror(ret));
        free(phc);
        return 1;
    }
    if (timing > 0) {
        for (int i = 1; i < timing; i++) /* insertion sort: N is small */
            for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
                double t = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = t;
            }
        fprintf(stderr, "%.3f\n", ms[timing / 2]);
    }
    printf("%s\n", phc);
    free(phc);
    return 0;
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
