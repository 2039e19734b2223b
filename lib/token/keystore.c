/*
 * keystore: the signing keys' home in PostgreSQL (table signing_keys, sql/0003_identity.sql
 * and sql/0009_keys.sql), loaded into an lt_keyring_t at start-up, on NOTIFY latch_keys and by
 * latchctl, and moved along next -> current -> previous -> retired by the maintenance step.
 * Blocking libpq on its own connection: never call the blocking functions from a worker loop.
 *
 * Private halves are stored as lt_seal(PKCS#8 DER) with aad "signing_key:<kid>", so a
 * sealed blob moved to another row does not open. The public JWK is stored beside it for
 * readers that need no private key.
 *
 * Creating the first key is race-safe across instances starting at once: each inserts with
 * ON CONFLICT DO NOTHING against the partial unique index that allows one current key, and
 * then everyone re-reads, so all instances end up with the one key that won. The audit
 * event "key.created" is written in the same transaction as the insert that won, so there
 * is exactly one event per stored key. Rotations (a new next key) and state changes go
 * through the SQL functions of 0009, which serialise on an advisory lock, NOTIFY and audit.
 *
 * Secrets: the unsealed DER is wiped after parsing; error messages name the kid, never key
 * material.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "token/token.h"

/* Rows of one load: a few keys; more than this means something else is wrong. */
#define KEYS_MAX 64
/* Attempts at "read, no current key, insert": a second round only follows a lost race. */
#define CREATE_ATTEMPTS 3

/* A previous key is loaded only while it may still verify a live token, also when no
 * maintenance step has retired it yet. */
static const char sql_load[] =
    "SELECT kid, alg, private_sealed, status, coalesce(floor(extract(epoch FROM retired_at)), 0)::bigint"
    " FROM signing_keys"
    " WHERE status IN ('next', 'current')"
    "    OR (status = 'previous' AND retired_at > now() - make_interval(secs => $1::int))"
    " ORDER BY created_at DESC, kid";

static const char sql_insert[] =
    "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status)"
    " VALUES ($1, $2, $3::jsonb, $4::bytea, 'current')"
    " ON CONFLICT ((true)) WHERE status = 'current' DO NOTHING RETURNING kid";

static const char sql_add_next[] =
    "SELECT o_body, o_activates_at FROM latch_key_add_next($1, $2, $3::jsonb, $4::bytea, $5::int, $6, $7, $8)";
static const char sql_advance[] = "SELECT latch_keys_advance($1::int)";
static const char sql_due[] = "SELECT latch_keys_rotation_due($1::int, $2::int)";
static const char sql_list[] = "SELECT latch_keys_list($1::int)";

static lt_store_stmt_t keys_stmts[LT_TOKEN_KEYS_NSTMTS] = {
    [LT_TOKEN_KEYS_ADD_NEXT] = {"token.keys_add_next", sql_add_next, 8, 0},
    [LT_TOKEN_KEYS_LIST] = {"token.keys_list", sql_list, 1, 0},
};

const struct lt_store_stmt *lt_token_keys_stmt(lt_token_keys_stmt_id_t id)
{
    return (int)id >= 0 && id < LT_TOKEN_KEYS_NSTMTS ? &keys_stmts[id] : NULL;
}

int lt_token_keys_statements(void)
{
    return lt_store_stmt_register(keys_stmts, LT_TOKEN_KEYS_NSTMTS);
}

static const char sql_audit[] = "SELECT latch_audit_append($1::uuid,$2,$3,$4,$5,$6,$7,$8::jsonb)";

/* The server's message, first line only: enough to act on, no multi-line detail. */
static const char *pg_msg(PGconn *c)
{
    static __thread char line[256];
    const char *m = PQerrorMessage(c);
    size_t n = strcspn(m, "\n");
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    memcpy(line, m, n);
    line[n] = '\0';
    return line;
}

static int exec_cmd(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Builds a key from one row of sql_load. */
static int row_key(PGresult *r, int row, const lt_token_keystore_opts_t *o, lt_keyring_entry_t *e, char *err,
                   size_t errlen)
{
    const char *kid = PQgetvalue(r, row, 0), *algname = PQgetvalue(r, row, 1);
    size_t sealed_len = 0, der_len = 0;
    uint8_t *der = NULL;
    lt_alg_t alg;
    int ret;

    if (lt_alg_parse(algname, &alg) != 0) {
        lt_errf(err, errlen, "signing key %s has unknown alg %s", kid, algname);
        return LT_EINVAL;
    }
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 2), &sealed_len);
    if (sealed == NULL)
        return LT_ENOMEM;
    if (sealed_len < LT_SEAL_OVERHEAD) {
        lt_errf(err, errlen, "signing key %s: sealed value too short", kid);
        ret = LT_EINVAL;
        goto done;
    }
    if ((der = malloc(sealed_len - LT_SEAL_OVERHEAD + 1)) == NULL) {
        ret = LT_ENOMEM;
        goto done;
    }
    char aad[16 + LT_KID_MAX + 1];
    int aadlen = snprintf(aad, sizeof(aad), "signing_key:%s", kid);
    if (aadlen < 0 || (size_t)aadlen >= sizeof(aad)) {
        lt_errf(err, errlen, "signing key %s: kid too long", kid);
        ret = LT_EINVAL;
        goto done;
    }
    ret = lt_unseal(o->seal_keys, o->nseal_keys, aad, (size_t)aadlen, sealed, sealed_len, der, &der_len);
    if (ret == LT_ENOTFOUND) {
        lt_errf(err, errlen, "signing key %s is sealed with master key version %u, which is not configured", kid,
                (unsigned)sealed[0]);
        ret = LT_EINVAL;
        goto done;
    }
    if (ret != 0) {
        lt_errf(err, errlen, "signing key %s does not unseal (wrong master key?)", kid);
        ret = LT_EINVAL;
        goto done;
    }
    if ((ret = lt_key_from_private_der(kid, alg, der, der_len, &e->key)) != 0) {
        if (ret == LT_EINVAL)
            lt_errf(err, errlen, "signing key %s is not a valid %s key", kid, algname);
        goto done;
    }
    const char *status = PQgetvalue(r, row, 3);
    e->state = strcmp(status, "current") == 0 ? LT_KEY_CURRENT
               : strcmp(status, "next") == 0  ? LT_KEY_NEXT
                                              : LT_KEY_PREVIOUS;
    e->retired_at = e->state == LT_KEY_PREVIOUS ? strtoll(PQgetvalue(r, row, 4), NULL, 10) : 0;
done:
    if (der != NULL) {
        lt_wipe(der, sealed_len - LT_SEAL_OVERHEAD + 1);
        free(der);
    }
    PQfreemem(sealed);
    return ret;
}

/*
 * Reads the publishable keys. @return 0 with *kr (possibly without a current key: then
 * *has_active is 0), or an error.
 */
static int load(PGconn *c, const lt_token_keystore_opts_t *o, lt_keyring_t **kr, int *has_active, char *err,
                size_t errlen)
{
    lt_keyring_entry_t entries[KEYS_MAX];
    char secs[16];
    const char *params[1] = {secs};
    int n = 0, ret = 0;
    snprintf(secs, sizeof(secs), "%d", o->publish_retired_s > 0 ? o->publish_retired_s : 0);
    PGresult *r = PQexecParams(c, sql_load, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_errf(err, errlen, "loading signing keys: %s", pg_msg(c));
        PQclear(r);
        return LT_EIO;
    }
    int rows = PQntuples(r);
    if (rows > KEYS_MAX) {
        lt_errf(err, errlen, "too many signing keys to publish; retire fewer or shorten the window");
        PQclear(r);
        return LT_ERANGE;
    }
    *has_active = 0;
    for (; n < rows; n++) {
        memset(&entries[n], 0, sizeof(entries[n]));
        if ((ret = row_key(r, n, o, &entries[n], err, errlen)) != 0)
            break;
        *has_active |= entries[n].state == LT_KEY_CURRENT;
    }
    PQclear(r);
    if (ret != 0) {
        for (int i = 0; i < n; i++)
            lt_key_free(entries[i].key);
        return ret;
    }
    if ((ret = lt_keyring_create(entries, (size_t)n, kr)) != 0)
        lt_errf(err, errlen, "building the keyring: %s", lt_strerror(ret));
    return ret;
}

void lt_token_new_key_free(lt_token_new_key_t *k)
{
    if (k == NULL)
        return;
    free(k->jwk_text);
    free(k->sealed_hex);
    k->jwk_text = k->sealed_hex = NULL;
}

int lt_token_key_seal_new(const lt_token_keystore_opts_t *o, lt_token_new_key_t *out, char *err, size_t errlen)
{
    lt_key_t *key = NULL;
    uint8_t *der = NULL, *sealed = NULL;
    size_t der_len = 0, sealed_len = 0;
    json_t *jwk = NULL;
    int ret;

    if (o == NULL || out == NULL)
        return LT_EINVAL;
    memset(out, 0, sizeof(*out));
    if (o->nseal_keys == 0 || o->seal_keys == NULL) {
        lt_errf(err, errlen, "no master key to seal a new signing key with");
        return LT_EINVAL;
    }
    if ((ret = lt_key_generate(o->alg, &key)) != 0) {
        lt_errf(err, errlen, "generating a signing key: %s", lt_strerror(ret));
        return ret;
    }
    snprintf(out->kid, sizeof(out->kid), "%s", lt_key_kid(key));
    out->alg = lt_alg_name(o->alg);
    ret = LT_ENOMEM;
    if (lt_key_private_der(key, &der, &der_len) != 0 || lt_key_public_jwk(key, &jwk) != 0 ||
        (out->jwk_text = json_dumps(jwk, JSON_COMPACT)) == NULL)
        goto done;
    sealed_len = der_len + LT_SEAL_OVERHEAD;
    if ((sealed = malloc(sealed_len)) == NULL || (out->sealed_hex = malloc(2 * sealed_len + 3)) == NULL)
        goto done;
    char aad[16 + LT_KID_MAX + 1];
    int aadlen = snprintf(aad, sizeof(aad), "signing_key:%s", out->kid);
    if ((ret = lt_seal(&o->seal_keys[0], aad, (size_t)aadlen, der, der_len, sealed)) != 0) {
        lt_errf(err, errlen, "sealing a new signing key failed");
        goto done;
    }
    out->sealed_hex[0] = '\\';
    out->sealed_hex[1] = 'x';
    lt_hex_encode(out->sealed_hex + 2, sealed, sealed_len);
    ret = 0;
done:
    if (der != NULL) {
        lt_wipe(der, der_len);
        free(der);
    }
    free(sealed);
    json_decref(jwk);
    lt_key_free(key);
    if (ret != 0)
        lt_token_new_key_free(out);
    return ret;
}

/*
 * Generates, seals and inserts a new current key, with its audit event, in one transaction.
 * Losing the race to another instance is not an error: the caller re-reads.
 */
static int create(PGconn *c, const lt_token_keystore_opts_t *o, char *err, size_t errlen)
{
    lt_token_new_key_t nk;
    PGresult *r = NULL;
    int ret, won = 0;

    if ((ret = lt_token_key_seal_new(o, &nk, err, errlen)) != 0)
        return ret;
    ret = LT_EIO;
    if (!exec_cmd(c, "BEGIN")) {
        lt_errf(err, errlen, "storing a signing key: %s", pg_msg(c));
        goto done;
    }
    const char *ins[4] = {nk.kid, nk.alg, nk.jwk_text, nk.sealed_hex};
    r = PQexecParams(c, sql_insert, 4, NULL, ins, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_errf(err, errlen, "storing a signing key: %s", pg_msg(c));
        goto rollback;
    }
    won = PQntuples(r) == 1;
    if (won) {
        /* We won: record it in the same transaction, so key and event commit together. */
        char details[64];
        snprintf(details, sizeof(details), "{\"alg\":\"%s\"}", nk.alg);
        const char *ev[8] = {NULL, "system", "key.created", nk.kid, NULL, NULL, "success", details};
        PQclear(r);
        r = PQexecParams(c, sql_audit, 8, NULL, ev, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            lt_errf(err, errlen, "auditing a new signing key: %s", pg_msg(c));
            goto rollback;
        }
    }
    if (!exec_cmd(c, "COMMIT")) {
        lt_errf(err, errlen, "storing a signing key: %s", pg_msg(c));
        goto done;
    }
    if (won)
        lt_log(LT_LOG_INFO, "token", "created signing key %s (%s)", nk.kid, nk.alg);
    else
        lt_log(LT_LOG_INFO, "token", "another instance created the current signing key first");
    ret = 0;
    goto done;
rollback:
    (void)exec_cmd(c, "ROLLBACK");
done:
    PQclear(r);
    lt_token_new_key_free(&nk);
    return ret;
}

/*
 * Stores `nk` as the next key (latch_key_add_next). @return 0 (*added 1, or 0 when a next
 * key exists already), LT_EIO.
 */
static int add_next(PGconn *c, const lt_token_new_key_t *nk, int prepublish_s, const char *actor, int *added,
                    int64_t *activates_at, char *err, size_t errlen)
{
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", prepublish_s);
    const char *params[8] = {nk->kid, nk->alg, nk->jwk_text, nk->sealed_hex, secs, actor, NULL, NULL};
    PGresult *r = PQexecParams(c, sql_add_next, 8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_errf(err, errlen, "storing the next signing key: %s", pg_msg(c));
        PQclear(r);
        return LT_EIO;
    }
    *added = PQntuples(r) == 1;
    if (*added && activates_at != NULL)
        *activates_at = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return 0;
}

/* A one-value query's boolean. @return 1, 0, or -1 (err set). */
static int query_bool(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int ret = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1)
        ret = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    else
        lt_errf(err, errlen, "signing key maintenance: %s", pg_msg(c));
    PQclear(r);
    return ret;
}

int lt_token_keys_maintain(PGconn *c, const lt_token_keystore_opts_t *o, int rotation_interval_s, int prepublish_s,
                           int *changed, char *err, size_t errlen)
{
    char keep[16], interval[16], pre[16];
    int did = 0, ret = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (changed != NULL)
        *changed = 0;
    if (c == NULL || o == NULL || rotation_interval_s < 0 || prepublish_s < 0)
        return LT_EINVAL;
    if (PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "signing key maintenance: no connection");
        return LT_EUNAVAIL;
    }
    snprintf(keep, sizeof(keep), "%d", o->publish_retired_s > 0 ? o->publish_retired_s : 0);
    const char *p1[1] = {keep};
    int adv = query_bool(c, sql_advance, 1, p1, err, errlen);
    if (adv < 0)
        return PQstatus(c) == CONNECTION_OK ? LT_EIO : LT_EUNAVAIL;
    did |= adv;
    if (rotation_interval_s > 0) {
        snprintf(interval, sizeof(interval), "%d", rotation_interval_s);
        snprintf(pre, sizeof(pre), "%d", prepublish_s);
        const char *p2[2] = {interval, pre};
        int due = query_bool(c, sql_due, 2, p2, err, errlen);
        if (due < 0)
            return PQstatus(c) == CONNECTION_OK ? LT_EIO : LT_EUNAVAIL;
        if (due) {
            lt_token_new_key_t nk;
            int added = 0;
            int64_t at = 0;
            if ((ret = lt_token_key_seal_new(o, &nk, err, errlen)) != 0)
                goto out;
            ret = add_next(c, &nk, prepublish_s, "system", &added, &at, err, errlen);
            if (ret == 0 && added)
                lt_log(LT_LOG_INFO, "token", "scheduled rotation: signing key %s (%s) signs from %lld", nk.kid,
                       nk.alg, (long long)at);
            /* !added: another instance added the next key between our check and insert. */
            did |= added;
            lt_token_new_key_free(&nk);
            if (ret != 0 && PQstatus(c) != CONNECTION_OK)
                ret = LT_EUNAVAIL;
        }
    }
out:
    if (changed != NULL)
        *changed = did;
    return ret;
}

int lt_token_keystore_load(const lt_token_keystore_opts_t *o, lt_keyring_t **out, char *err, size_t errlen)
{
    lt_keyring_t *kr = NULL;
    int has_active = 0, ret = LT_EINVAL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (o == NULL || o->conninfo == NULL || out == NULL || (o->seal_keys == NULL && o->nseal_keys > 0))
        return LT_EINVAL;
    PGconn *c = PQconnectdb(o->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect: %s", pg_msg(c));
        PQfinish(c);
        return LT_EUNAVAIL;
    }
    for (int attempt = 0;; attempt++) {
        if ((ret = load(c, o, &kr, &has_active, err, errlen)) != 0 || has_active)
            goto done;
        lt_keyring_unref(kr);
        kr = NULL;
        if (attempt == CREATE_ATTEMPTS) {
            lt_errf(err, errlen, "no active signing key after %d attempts to create one", CREATE_ATTEMPTS);
            ret = LT_EIO;
            goto done;
        }
        if ((ret = create(c, o, err, errlen)) != 0)
            goto done;
    }
done:
    PQfinish(c);
    if (ret != 0) {
        lt_keyring_unref(kr);
        return ret;
    }
    lt_log(LT_LOG_INFO, "token", "signing keys loaded, active kid %s", lt_key_kid(lt_keyring_active(kr)));
    *out = kr;
    return 0;
}

int lt_token_keys_rotate(const lt_token_keystore_opts_t *o, int prepublish_s, const char *actor, char *kid_out,
                         int64_t *activates_at, char *err, size_t errlen)
{
    lt_keyring_t *kr = NULL;
    lt_token_new_key_t nk;
    int has_current = 0, added = 0, ret;
    int64_t at = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (o == NULL || o->conninfo == NULL || prepublish_s < 0 || actor == NULL || actor[0] == '\0')
        return LT_EINVAL;
    PGconn *c = PQconnectdb(o->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect: %s", pg_msg(c));
        PQfinish(c);
        return LT_EUNAVAIL;
    }
    /* Opening the stored keys proves this master key is the one the instances use. */
    if ((ret = load(c, o, &kr, &has_current, err, errlen)) != 0)
        goto done;
    lt_keyring_unref(kr);
    if ((ret = lt_token_key_seal_new(o, &nk, err, errlen)) != 0)
        goto done;
    ret = add_next(c, &nk, prepublish_s, actor, &added, &at, err, errlen);
    if (ret == 0 && !added) {
        lt_errf(err, errlen, "a next signing key is already scheduled");
        ret = LT_EEXIST;
    }
    if (ret == 0) {
        if (kid_out != NULL)
            snprintf(kid_out, LT_KID_MAX + 1, "%s", nk.kid);
        if (activates_at != NULL)
            *activates_at = at;
    }
    lt_token_new_key_free(&nk);
done:
    PQfinish(c);
    return ret;
}

int lt_token_keys_list(const char *conninfo, int limit, char **json, char *err, size_t errlen)
{
    char lim[16];
    int ret = LT_EIO;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (conninfo == NULL || json == NULL || limit < 1)
        return LT_EINVAL;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        lt_errf(err, errlen, "cannot connect: %s", pg_msg(c));
        PQfinish(c);
        return LT_EUNAVAIL;
    }
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[1] = {lim};
    PGresult *r = PQexecParams(c, sql_list, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        lt_errf(err, errlen, "listing signing keys: %s", pg_msg(c));
    } else if ((*json = strdup(PQgetvalue(r, 0, 0))) == NULL) {
        ret = LT_ENOMEM;
    } else {
        ret = 0;
    }
    PQclear(r);
    PQfinish(c);
    return ret;
}
