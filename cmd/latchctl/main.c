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
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/base.h"
#include "config/config.h"
#include "crypto/hasher.h"
#include "identity/admin.h"
#include "identity/clients.h"
#include "identity/password.h"
#include "policy/files.h"
#include "store/store.h"
#include "token/token.h"

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
static int cmd_keys(ctx_t *ctx, int argc, char **argv);
static int cmd_clients(ctx_t *ctx, int argc, char **argv);
static int cmd_policies(ctx_t *ctx, int argc, char **argv);

static const command_t commands[] = {
    {"migrate", "[--status]", "apply pending database migrations (--status: list applied and pending)", cmd_migrate},
    {"audit", "verify", "check the audit log's hash chain (exit 0 intact, 1 broken or unreadable)", cmd_audit},
    {"bootstrap", "OPTIONS", "create a tenant and its first admin (--tenant, --email; password on stdin)",
     cmd_bootstrap},
    {"hash-password", "[--no-config] [--time N]", "print the argon2id PHC string of the password on stdin", cmd_hash_password},
    {"keys", "rotate|list", "rotate the signing key (a new key signs after key_prepublish), list keys", cmd_keys},
    {"clients", "create|list|delete", "manage a tenant's OAuth clients (see latchctl clients --help)", cmd_clients},
    {"policies", "apply DIR", "apply a directory of policy files, JSON or YAML (see latchctl policies --help)",
     cmd_policies},
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
               "before it was deleted or rewritten). The personal data split off the chain\n"
               "(audit_pii) is checked against the digest its row carries; rows whose personal\n"
               "data was erased (DELETE /v1/admin/users/{id}?erase=true) are intact and counted:\n"
               "\"audit chain intact: N rows (personal data erased from E)\". Errors go to\n"
               "stderr, exit 1.\n");
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
    /* The first line's shape is what scripts match; erasures are said after it. */
    if (rep.erased > 0)
        printf("audit chain intact: %llu rows (personal data erased from %llu)\n", (unsigned long long)rep.rows,
               (unsigned long long)rep.erased);
    else
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

/* ---- clients ------------------------------------------------------------------------------ */

/*
 * clients create|list|delete: OAuth clients of one tenant, as the runtime user
 * (database_url), audited with actor "latchctl". create prints the client as JSON with its
 * client_secret, the only time the secret is shown; list prints a JSON array (no secrets).
 */
static void clients_usage(FILE *out)
{
    fprintf(out, "usage: latchctl [--config PATH] clients create --tenant NAME --name TEXT\n"
                 "                --grant client_credentials[,refresh_token] [--scope S1,S2,...]\n"
                 "                [--permission introspect,revoke,revocations]\n"
                 "       latchctl [--config PATH] clients list --tenant NAME\n"
                 "       latchctl [--config PATH] clients delete --tenant NAME CLIENT_ID\n\n"
                 "create makes a confidential OAuth client in tenant NAME and prints it as JSON,\n"
                 "with client_id and client_secret: store the secret now, it is shown only once\n"
                 "(Latch keeps its SHA-256). list prints the tenant's clients as a JSON array.\n"
                 "delete removes a client (CLIENT_ID or its row id); it stops authenticating on\n"
                 "every instance at once. Exit status: 0 done, 1 error (no such tenant or\n"
                 "client, database trouble), 2 usage or invalid argument.\n");
}

/* "a,b,c" as a JSON array of strings; NULL for an empty element. */
static json_t *comma_list(const char *s)
{
    json_t *arr = json_array();
    for (const char *p = s; arr != NULL;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || json_array_append_new(arr, json_stringn(p, n)) != 0) {
            json_decref(arr);
            return NULL;
        }
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return arr;
}

static int clients_print(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (text == NULL) {
        fprintf(stderr, "latchctl: clients: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    lt_wipe(text, strlen(text)); /* create's holds the secret */
    free(text);
    return 0;
}

static int cmd_clients(ctx_t *ctx, int argc, char **argv)
{
    const char *tenant = NULL, *name = NULL, *grants = NULL, *scopes = NULL, *perms = NULL, *client = NULL, *v = NULL;
    const char *why = NULL;
    json_t *g = NULL, *s = NULL, *p = NULL, *out = NULL;
    char err[512];
    int status = 2, ret;

    if (argc < 2) {
        fprintf(stderr, "latchctl: clients: expected create, list or delete (see latchctl clients --help)\n");
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        clients_usage(stdout);
        return 0;
    }
    const char *sub = argv[1];
    int create = strcmp(sub, "create") == 0, list = strcmp(sub, "list") == 0, del = strcmp(sub, "delete") == 0;
    if (!create && !list && !del) {
        fprintf(stderr, "latchctl: clients: unknown subcommand '%s' (see latchctl clients --help)\n", sub);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            clients_usage(stdout);
            return 0;
        }
        if (opt_value(argc, argv, &i, "--tenant", &v))
            tenant = v;
        else if (create && opt_value(argc, argv, &i, "--name", &v))
            name = v;
        else if (create && opt_value(argc, argv, &i, "--grant", &v))
            grants = v;
        else if (create && opt_value(argc, argv, &i, "--scope", &v))
            scopes = v;
        else if (create && opt_value(argc, argv, &i, "--permission", &v))
            perms = v;
        else if (del && argv[i][0] != '-' && client == NULL) {
            client = v = argv[i];
        } else {
            fprintf(stderr, "latchctl: clients %s: unknown argument '%s' (see latchctl clients --help)\n", sub, argv[i]);
            return 2;
        }
        if (v == NULL) {
            fprintf(stderr, "latchctl: clients %s: %s needs a value\n", sub, argv[i]);
            return 2;
        }
    }
    if (tenant == NULL || !lt_admin_tenant_name_ok(tenant)) {
        fprintf(stderr, "latchctl: clients %s: --tenant NAME is required (1 to 63 of a-z, 0-9 and '-')\n", sub);
        return 2;
    }
    if (create) {
        if (name == NULL || grants == NULL) {
            fprintf(stderr, "latchctl: clients create: --name and --grant are required\n");
            return 2;
        }
        if ((why = lt_client_name_problem(name)) != NULL) {
            fprintf(stderr, "latchctl: clients create: --name %s\n", why);
            return 2;
        }
        g = comma_list(grants);
        s = scopes != NULL ? comma_list(scopes) : json_array();
        p = perms != NULL ? comma_list(perms) : json_array();
        if (g == NULL || lt_client_list_check(g, LT_CLIENT_LIST_GRANTS, &why) != 0) {
            fprintf(stderr, "latchctl: clients create: --grant %s\n", why != NULL ? why : "has an empty element");
            goto done;
        }
        if (s == NULL || lt_client_list_check(s, LT_CLIENT_LIST_SCOPES, &why) != 0) {
            fprintf(stderr, "latchctl: clients create: --scope %s\n", s == NULL ? "has an empty element" : why);
            goto done;
        }
        if (p == NULL || lt_client_list_check(p, LT_CLIENT_LIST_PERMISSIONS, &why) != 0) {
            fprintf(stderr, "latchctl: clients create: --permission %s\n", p == NULL ? "has an empty element" : why);
            goto done;
        }
    } else if (del && client == NULL) {
        fprintf(stderr, "latchctl: clients delete: CLIENT_ID is required\n");
        return 2;
    }
    status = 1;
    if (load_config(ctx) != 0 || runtime_url(ctx) == NULL)
        goto done;
    const char *url = ctx->cfg.database_url;
    if (create)
        ret = lt_clients_admin_create(url, tenant, name, g, s, p, "latchctl", &out, err, sizeof(err));
    else if (list)
        ret = lt_clients_admin_list(url, tenant, &out, err, sizeof(err));
    else
        ret = lt_clients_admin_delete(url, tenant, client, "latchctl", err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "latchctl: clients %s: %s\n", sub, err[0] != '\0' ? err : lt_strerror(ret));
        goto done;
    }
    if (del) {
        printf("deleted %s\n", client);
        status = 0;
    } else {
        status = clients_print(out);
    }
done:
    if (out != NULL && create) {
        json_t *sec = json_object_get(out, "client_secret");
        if (sec != NULL)
            lt_wipe((void *)json_string_value(sec), json_string_length(sec));
    }
    json_decref(out);
    json_decref(g);
    json_decref(s);
    json_decref(p);
    return status;
}

/* ---- keys ----------------------------------------------------------------------------- */

#define EXIT_KEY_PENDING 3 /* keys rotate: a next key is scheduled already; nothing changed */
#define KEYS_LIST_LIMIT 100

static void unix_rfc3339(int64_t t, char *out, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%lld", (long long)t);
}

static int keys_usage(FILE *out)
{
    fprintf(out, "usage: latchctl [--config PATH] keys rotate\n"
                 "       latchctl [--config PATH] keys list [--json]\n\n"
                 "rotate  creates a signing key of signing_alg, sealed under master_key, as the next\n"
                 "        key: published in the JWKS at once, signing key_prepublish seconds later\n"
                 "        (every latchd picks it up through NOTIFY). Prints kid=... and\n"
                 "        activates_at=... (RFC 3339). Exit 3 when a next key is scheduled already.\n"
                 "list    prints every key with its state (next, current, previous, retired) as a\n"
                 "        table, or as the JSON document of GET /v1/admin/keys with --json.\n");
    return out == stdout ? 0 : 2;
}

static int keys_rotate(ctx_t *ctx)
{
    static const uint8_t zero[32];
    char err[512], kid[LT_KID_MAX + 1], when[32];
    int64_t at = 0;
    const char *url;
    if (load_config(ctx) != 0 || (url = runtime_url(ctx)) == NULL)
        return 1;
    const lt_config_t *cfg = &ctx->cfg;
    if (lt_ct_eq(cfg->master_key, zero, sizeof(zero))) {
        fprintf(stderr, "latchctl: configuration: master_key is not set (it seals the new key)\n");
        return 1;
    }
    lt_seal_key_t seal = {.version = (uint8_t)cfg->master_key_version};
    memcpy(seal.key, cfg->master_key, sizeof(seal.key));
    lt_token_keystore_opts_t o = {
        .conninfo = url,
        .seal_keys = &seal,
        .nseal_keys = 1,
        .alg = cfg->signing_alg == LT_CONFIG_ALG_EDDSA ? LT_ALG_EDDSA : LT_ALG_ES256,
        .publish_retired_s = cfg->access_token_ttl + LT_TOKEN_LEEWAY,
    };
    int ret = lt_token_keys_rotate(&o, cfg->key_prepublish, "latchctl", kid, &at, err, sizeof(err));
    lt_wipe(&seal, sizeof(seal));
    if (ret == LT_EEXIST) {
        fprintf(stderr, "latchctl: keys rotate: %s\n", err);
        return EXIT_KEY_PENDING;
    }
    if (ret != 0) {
        fprintf(stderr, "latchctl: keys rotate: %s\n", err[0] != '\0' ? err : lt_strerror(ret));
        return 1;
    }
    unix_rfc3339(at, when, sizeof(when));
    printf("kid=%s\nalg=%s\nstate=next\nactivates_at=%s\n", kid, lt_alg_name(o.alg), when);
    return 0;
}

static const char *str_or_dash(const json_t *o, const char *name)
{
    const char *v = json_string_value(json_object_get(o, name));
    return v != NULL ? v : "-";
}

static int keys_list(ctx_t *ctx, int as_json)
{
    char err[512], *text = NULL;
    const char *url;
    if (load_config(ctx) != 0 || (url = runtime_url(ctx)) == NULL)
        return 1;
    int ret = lt_token_keys_list(url, KEYS_LIST_LIMIT, &text, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "latchctl: keys list: %s\n", err[0] != '\0' ? err : lt_strerror(ret));
        return 1;
    }
    if (as_json) {
        printf("%s\n", text);
        free(text);
        return 0;
    }
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items)) {
        json_decref(doc);
        fprintf(stderr, "latchctl: keys list: unexpected answer from the database\n");
        return 1;
    }
    printf("%-24s %-8s %-6s %-20s %-20s %s\n", "KID", "STATE", "ALG", "CREATED", "ACTIVATES", "RETIRED");
    size_t i;
    json_t *k;
    json_array_foreach (items, i, k)
        printf("%-24s %-8s %-6s %-20s %-20s %s\n", str_or_dash(k, "kid"), str_or_dash(k, "state"),
               str_or_dash(k, "alg"), str_or_dash(k, "created_at"), str_or_dash(k, "activates_at"),
               str_or_dash(k, "retired_at"));
    json_decref(doc);
    return 0;
}

static int cmd_keys(ctx_t *ctx, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return keys_usage(stdout);
    if (argc == 2 && strcmp(argv[1], "rotate") == 0)
        return keys_rotate(ctx);
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        if (argc == 2)
            return keys_list(ctx, 0);
        if (argc == 3 && strcmp(argv[2], "--json") == 0)
            return keys_list(ctx, 1);
        fprintf(stderr, "latchctl: keys list: unknown argument '%s'\n", argv[2]);
        return 2;
    }
    if (argc >= 2 && strcmp(argv[1], "rotate") == 0) {
        fprintf(stderr, "latchctl: keys rotate: unknown argument '%s'\n", argv[2]);
        return 2;
    }
    fprintf(stderr, "latchctl: keys: expected 'rotate' or 'list'\n");
    return keys_usage(stderr);
}

/* ---- policies -------------------------------------------------------------------------- */

static int policies_usage(FILE *out)
{
    fprintf(out, "usage: latchctl policies apply DIR [--tenant NAME]\n\n"
                 "Validates every *.json, *.yaml and *.yml file of DIR (one policy document each) and,\n"
                 "only if all are valid, writes them in one transaction as new versions of the\n"
                 "policies they name (\"id\", else the file name). --tenant: the tenant they belong to;\n"
                 "without it they are global. Every instance picks them up within a second.\n");
    return out == stdout ? 0 : 2;
}

static int cmd_policies(ctx_t *ctx, int argc, char **argv)
{
    const char *dir = NULL, *tenant = NULL, *v = NULL;
    char err[512] = "";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return policies_usage(argc < 2 ? stderr : stdout);
    if (strcmp(argv[1], "apply") != 0) {
        fprintf(stderr, "latchctl: policies: unknown subcommand '%s'\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        v = argv[i];
        if (opt_value(argc, argv, &i, "--tenant", &v))
            tenant = v;
        else if (argv[i][0] != '-' && dir == NULL)
            dir = argv[i];
        else {
            fprintf(stderr, "latchctl: policies apply: unknown argument '%s'\n", argv[i]);
            return 2;
        }
        if (v == NULL) {
            fprintf(stderr, "latchctl: policies apply: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (dir == NULL) {
        fprintf(stderr, "latchctl: policies apply: DIR is required\n");
        return 2;
    }
    if (tenant != NULL && !lt_admin_tenant_name_ok(tenant)) {
        fprintf(stderr, "latchctl: policies apply: --tenant is not a tenant name\n");
        return 2;
    }
    const char *url;
    if (load_config(ctx) != 0 || (url = runtime_url(ctx)) == NULL)
        return 1;
    int ret = lt_policy_apply_dir(url, dir, tenant, stdout, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "latchctl: policies apply: %s\n", err[0] != '\0' ? err : lt_strerror(ret));
        return 1;
    }
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
