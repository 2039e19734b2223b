/*
 * keystore: the signing keys' home in PostgreSQL (table signing_keys, sql/0003_identity.sql),
 * loaded into an lt_keyring_t at start-up and by latchctl. Blocking libpq on its own
 * connection: never call it from a worker loop.
 *
 * Private halves are stored as lt_seal(PKCS#8 DER) with aad "signing_key:<kid>", so a
 * sealed blob moved to another row does not open. The public JWK is stored beside it for
 * readers that need no private key.
 *
 * Creating the first key is race-safe across instances starting at once: each inserts with
 * ON CONFLICT DO NOTHING against the partial unique index that allows one active key, and
 * then everyone re-reads, so all instances end up with the one key that won. The audit
 * event "key.created" is written in the same transaction as the insert that won, so there
 * is exactly one event per stored key.
 *
 * Secrets: the unsealed DER is wiped after parsing; error messages name the kid, never key
 * material.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/token.h"

/* Rows of one load: a few keys; more than this means something else is wrong. */
#define KEYS_MAX 64
/* Attempts at "read, none active, insert": a second round only follows a lost race. */
#define CREATE_ATTEMPTS 3

static const char sql_load[] =
    "SELECT kid, alg, private_sealed, status = 'active', coalesce(floor(extract(epoch FROM retired_at)), 0)::bigint"
    " FROM signing_keys"
    " WHERE status = 'active' OR (status = 'retired' AND retired_at > now() - make_interval(secs => $1::int))"
    " ORDER BY created_at DESC, kid";

static const char sql_insert[] =
    "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status)"
    " VALUES ($1, $2, $3::jsonb, $4::bytea, 'active')"
    " ON CONFLICT ((true)) WHERE status = 'active' DO NOTHING RETURNING kid";

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
    e->active = strcmp(PQgetvalue(r, row, 3), "t") == 0;
    e->retired_at = e->active ? 0 : strtoll(PQgetvalue(r, row, 4), NULL, 10);
done:
    if (der != NULL) {
        lt_wipe(der, sealed_len - LT_SEAL_OVERHEAD + 1);
        free(der);
    }
    PQfreemem(sealed);
    return ret;
}

/*
 * Reads the publishable keys. @return 0 with *kr (possibly without an active key: then
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
        *has_active |= entries[n].active;
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

/*
 * Generates, seals and inserts a new active key, with its audit event, in one transaction.
 * Losing the race to another instance is not an error: the caller re-reads.
 */
static int create(PGconn *c, const lt_token_keystore_opts_t *o, char *err, size_t errlen)
{
    lt_key_t *key = NULL;
    uint8_t *der = NULL, *sealed = NULL;
    size_t der_len = 0;
    char *jwk_text = NULL, *hex = NULL;
    json_t *jwk = NULL;
    PGresult *r = NULL;
    int ret, won = 0;

    if (o->nseal_keys == 0 || o->seal_keys == NULL) {
        lt_errf(err, errlen, "no master key to seal a new signing key with");
        return LT_EINVAL;
    }
    if ((ret = lt_key_generate(o->alg, &key)) != 0) {
        lt_errf(err, errlen, "generating a signing key: %s", lt_strerror(ret));
        return ret;
    }
    const char *kid = lt_key_kid(key), *algname = lt_alg_name(o->alg);
    ret = LT_ENOMEM;
    if (lt_key_private_der(key, &der, &der_len) != 0 || lt_key_public_jwk(key, &jwk) != 0 ||
        (jwk_text = json_dumps(jwk, JSON_COMPACT)) == NULL)
        goto done;
    size_t sealed_len = der_len + LT_SEAL_OVERHEAD;
    if ((sealed = malloc(sealed_len)) == NULL || (hex = malloc(2 * sealed_len + 3)) == NULL)
        goto done;
    char aad[16 + LT_KID_MAX + 1];
    int aadlen = snprintf(aad, sizeof(aad), "signing_key:%s", kid);
    if ((ret = lt_seal(&o->seal_keys[0], aad, (size_t)aadlen, der, der_len, sealed)) != 0) {
        lt_errf(err, errlen, "sealing a new signing key failed");
        goto done;
    }
    hex[0] = '\\';
    hex[1] = 'x';
    lt_hex_encode(hex + 2, sealed, sealed_len);

    ret = LT_EIO;
    if (!exec_cmd(c, "BEGIN")) {
        lt_errf(err, errlen, "storing a signing key: %s", pg_msg(c));
        goto done;
    }
    const char *ins[4] = {kid, algname, jwk_text, hex};
    r = PQexecParams(c, sql_insert, 4, NULL, ins, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lt_errf(err, errlen, "storing a signing key: %s", pg_msg(c));
        goto rollback;
    }
    won = PQntuples(r) == 1;
    if (won) {
        /* We won: record it in the same transaction, so key and event commit together. */
        char details[64];
        snprintf(details, sizeof(details), "{\"alg\":\"%s\"}", algname);
        const char *ev[8] = {NULL, "system", "key.created", kid, NULL, NULL, "success", details};
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
        lt_log(LT_LOG_INFO, "token", "created signing key %s (%s)", kid, algname);
    else
        lt_log(LT_LOG_INFO, "token", "another instance created the active signing key first");
    ret = 0;
    goto done;
rollback:
    (void)exec_cmd(c, "ROLLBACK");
done:
    PQclear(r);
    if (der != NULL) {
        lt_wipe(der, der_len);
        free(der);
    }
    free(sealed);
    free(hex);
    free(jwk_text);
    json_decref(jwk);
    lt_key_free(key);
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
