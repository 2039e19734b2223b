/*
 * fuzz_jwt: lt_token_verify (lib/token/token.c) over a fixed ring of two keys.
 *
 * The first input byte picks a mode:
 * - even: the rest is a compact token, verified as it is. A fuzzer almost never forges a
 *   signature, so this exercises the syntax checks and the header parser;
 * - odd: the rest is "<header JSON>\n<claims JSON>" (no '\n': the claims alone under a
 *   valid header), signed here with the Ed25519 key (bit 1 clear) or the ES256 key (bit 1
 *   set) and then verified. This lets the fuzzer reach the claims checks, which only ever
 *   see signed bytes.
 *
 * The keys are test keys only: Ed25519 is RFC 8032's first test vector; the P-256 key was
 * generated for this file. kids are "fuzz-ed" (active) and "fuzz-es" (retired). Verification
 * runs at NOW with the default leeway, issuer ISS and audience AUD (see below), so the
 * corpus can hold tokens that pass.
 *
 * Invariants:
 * - a token longer than LT_TOKEN_MAX or with a character outside "A-Za-z0-9-_." is never
 *   accepted;
 * - an accepted token meets every rule of token.h as checked here independently: its header
 *   names a ring key and that key's alg, typ is at+jwt; iss/aud match; the times lie within
 *   the leeway; sub, jti, tenant, client_id and scope are strings; sid, username and acr
 *   are absent or non-empty strings; roles and amr are arrays of strings, and
 *   lt_token_has_role finds each role;
 * - verification is deterministic: the same input verifies the same way twice;
 * - every failure gives a reason, and leaves the output untouched.
 *
 * FUZZ_JWT_VERBOSE=1 prints each verdict ("accepted" or the reason), to check what the
 * corpus reaches.
 */
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "crypto/keyring.h"
#include "fuzz.h"
#include "token/token.h"

#define NOW 1700000000LL
#define ISS "https://latch.test"
#define AUD "api"

static const uint8_t ed_der[] = {
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

static const uint8_t es_der[] = {
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
    0x1a, 0xe9, 0xc6, 0xaf, 0x35, 0x61, 0x2c, 0xda, 0x31, 0x8c, 0xdf, 0x9e, 0xd1, 0xf9, 0xf1, 0x85, 0xbd, 0x84,
    0xa1, 0xbb, 0x66, 0xb0, 0x02, 0x41, 0x49, 0x3f, 0x18, 0x4f, 0x25, 0x2d, 0xd9, 0x05, 0xa1, 0x44, 0x03, 0x42,
    0x00, 0x04, 0xee, 0x6a, 0xc0, 0x33, 0x05, 0x68, 0x02, 0x3c, 0xfd, 0xdc, 0x55, 0xd3, 0xde, 0xaa, 0x02, 0x19,
    0xf1, 0xee, 0xf6, 0xaf, 0xe5, 0xf0, 0x25, 0x5d, 0xd0, 0x6b, 0x8a, 0x8c, 0xfd, 0xe8, 0x66, 0x65, 0x95, 0xa0,
    0x94, 0xe1, 0x3e, 0x87, 0x1d, 0x57, 0x2f, 0x4a, 0x9e, 0xf6, 0x42, 0xb9, 0x4f, 0x21, 0x2c, 0x84, 0x00, 0x3a,
    0xfe, 0x91, 0xa6, 0xce, 0x0d, 0xfd, 0xf1, 0x75, 0x47, 0x4f, 0x02, 0x7d,
};

static const char default_header[] = "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"fuzz-ed\"}";

static lt_keyring_t *ring;
static const lt_key_t *ed_key, *es_key;
static int verbose;

static void init(void)
{
    lt_keyring_entry_t e[2] = {{NULL, 1, 0}, {NULL, 0, NOW - 100}};
    FUZZ_CHECK(lt_key_from_private_der("fuzz-ed", LT_ALG_EDDSA, ed_der, sizeof(ed_der), &e[0].key) == 0);
    FUZZ_CHECK(lt_key_from_private_der("fuzz-es", LT_ALG_ES256, es_der, sizeof(es_der), &e[1].key) == 0);
    FUZZ_CHECK(lt_keyring_create(e, 2, &ring) == 0);
    ed_key = lt_keyring_find(ring, "fuzz-ed", 7);
    es_key = lt_keyring_find(ring, "fuzz-es", 7);
    FUZZ_CHECK(ed_key != NULL && es_key != NULL);
    const char *v = getenv("FUZZ_JWT_VERBOSE");
    verbose = v != NULL && v[0] == '1';
}

static int string_array(const json_t *a)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(a))
        return 0;
    json_array_foreach (a, i, v)
        if (!json_is_string(v))
            return 0;
    return 1;
}

/* Re-checks an accepted token against token.h, without the code under test. */
static void check_accepted(const char *jwt, size_t n, const lt_token_t *t)
{
    FUZZ_CHECK(n <= LT_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", jwt[i]) != NULL &&
                   jwt[i] != '\0');
    const char *d1 = memchr(jwt, '.', n);
    FUZZ_CHECK(d1 != NULL);
    uint8_t hdrbuf[LT_TOKEN_MAX];
    long hl = lt_b64url_decode(hdrbuf, sizeof(hdrbuf), jwt, (size_t)(d1 - jwt));
    FUZZ_CHECK(hl > 0);
    json_t *hdr = json_loadb((const char *)hdrbuf, (size_t)hl, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(hdr));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *typ = json_string_value(json_object_get(hdr, "typ"));
    FUZZ_CHECK(kid != NULL && alg != NULL && typ != NULL);
    const lt_key_t *k = strcmp(kid, "fuzz-ed") == 0 ? ed_key : strcmp(kid, "fuzz-es") == 0 ? es_key : NULL;
    FUZZ_CHECK(k != NULL && strcmp(alg, lt_alg_name(lt_key_alg(k))) == 0 && strcmp(t->kid, kid) == 0);
    FUZZ_CHECK(strcasecmp(typ, "at+jwt") == 0 || strcasecmp(typ, "application/at+jwt") == 0);
    FUZZ_CHECK(json_object_get(hdr, "crit") == NULL);
    json_decref(hdr);

    const json_t *c = t->claims;
    FUZZ_CHECK(json_is_object(c));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(c, "iss")), ISS) == 0);
    const json_t *aud = json_object_get(c, "aud");
    if (json_is_string(aud)) {
        FUZZ_CHECK(strcmp(json_string_value(aud), AUD) == 0);
    } else {
        int found = 0;
        size_t i;
        const json_t *v;
        FUZZ_CHECK(string_array(aud));
        json_array_foreach (aud, i, v)
            found |= strcmp(json_string_value(v), AUD) == 0;
        FUZZ_CHECK(found);
    }
    FUZZ_CHECK(t->exp > NOW - LT_TOKEN_LEEWAY && t->nbf <= NOW + LT_TOKEN_LEEWAY && t->iat <= NOW + LT_TOKEN_LEEWAY);
    FUZZ_CHECK(json_integer_value(json_object_get(c, "exp")) == t->exp);
    FUZZ_CHECK(t->sub != NULL && t->jti != NULL && t->tenant != NULL && t->scope != NULL && t->client_id != NULL);
    FUZZ_CHECK(t->sub[0] != '\0' && t->jti[0] != '\0' && t->client_id[0] != '\0');
    FUZZ_CHECK(t->client_id == json_string_value(json_object_get(c, "client_id")));
    /* sid, username and acr: absent, or a non-empty string the token points at. */
    static const char *const opt[] = {"sid", "username", "acr"};
    const char *const got[] = {t->sid, t->username, t->acr};
    for (size_t j = 0; j < 3; j++) {
        const json_t *ov = json_object_get(c, opt[j]);
        FUZZ_CHECK(ov == NULL ? got[j] == NULL : got[j] == json_string_value(ov) && got[j][0] != '\0');
    }
    FUZZ_CHECK(string_array(t->roles) && string_array(t->amr));
    size_t i;
    const json_t *v;
    json_array_foreach (t->roles, i, v)
        FUZZ_CHECK(lt_token_has_role(t, json_string_value(v)));
}

static void verify(const char *jwt, size_t n)
{
    lt_token_verify_opts_t o = {ISS, AUD, NOW, 0};
    lt_token_t t, t2;
    memset(&t, 0, sizeof(t));
    memset(&t2, 0, sizeof(t2));
    const char *why = NULL, *why2 = NULL;
    int ret = lt_token_verify(ring, jwt, n, &o, &t, &why);
    int ret2 = lt_token_verify(ring, jwt, n, &o, &t2, &why2);
    FUZZ_CHECK(ret == ret2);
    if (verbose)
        fprintf(stderr, "fuzz_jwt: %s\n", ret == 0 ? "accepted" : why != NULL ? why : "(no reason)");
    if (ret == 0) {
        check_accepted(jwt, n, &t);
        FUZZ_CHECK(json_equal(t.claims, t2.claims));
    } else {
        FUZZ_CHECK(ret == LT_EINVAL || ret == LT_ENOMEM);
        FUZZ_CHECK(why != NULL && why2 != NULL && strcmp(why, why2) == 0);
        FUZZ_CHECK(t.claims == NULL && t.sub == NULL);
    }
    lt_token_free(&t);
    lt_token_free(&t2);
}

static void append_b64(lt_buf_t *b, const void *p, size_t n)
{
    FUZZ_CHECK(lt_buf_reserve(b, lt_b64url_enclen(n) + 1) == 0);
    b->len += lt_b64url_encode(b->base + b->len, p, n);
}

/* Signs "<header>\n<claims>" with `k` and verifies the result. */
static void sign_and_verify(const lt_key_t *k, const char *in, size_t n)
{
    const char *nl = memchr(in, '\n', n);
    const char *hdr = nl != NULL ? in : default_header, *cl = nl != NULL ? nl + 1 : in;
    size_t hlen = nl != NULL ? (size_t)(nl - in) : strlen(default_header), clen = n - (size_t)(cl - in);
    lt_buf_t b = LT_BUF_INIT;
    uint8_t sig[LT_SIG_MAX];
    size_t siglen = 0;
    append_b64(&b, hdr, hlen);
    FUZZ_CHECK(lt_buf_append(&b, ".", 1) == 0);
    append_b64(&b, cl, clen);
    FUZZ_CHECK(lt_key_sign(k, b.base, b.len, sig, &siglen) == 0 && siglen == 64);
    FUZZ_CHECK(lt_key_verify(k, b.base, b.len, sig, siglen));
    FUZZ_CHECK(lt_buf_append(&b, ".", 1) == 0);
    append_b64(&b, sig, siglen);
    char *exact = fuzz_copy(b.base, b.len);
    verify(exact, b.len);
    free(exact);
    lt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ring == NULL)
        init();
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    char *rest = fuzz_copy(data + 1, size - 1);
    if ((mode & 1) == 0)
        verify(rest, size - 1);
    else
        sign_and_verify((mode & 2) != 0 ? es_key : ed_key, rest, size - 1);
    free(rest);
    return 0;
}
