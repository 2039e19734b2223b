/*
 * token: JWT access tokens (RFC 9068 profile of RFC 7519/7515), issued and verified over an
 * lt_keyring_t. See token.h for the rules a token must meet.
 *
 * Verification order matters: cheap syntactic checks first (length, exactly three parts,
 * strict base64url), then the header (which picks the key, with the algorithm pinned by
 * the key, never by the token), then the signature, and only then is the payload parsed.
 * So unauthenticated input reaches jansson only as a small header, and the claims parser
 * only ever sees bytes that one of our keys signed.
 *
 * Base64url here is strict (RFC 7515 §2: no padding, URL alphabet only): lt_b64url_decode
 * also takes '+', '/' and '=', so the characters are checked first. JSON is parsed with
 * JSON_REJECT_DUPLICATES, since two "alg" or two "exp" members are a classic way to make
 * two parsers disagree about one token.
 *
 * Thread-safety: no state; rings are immutable and keys safe for concurrent use.
 */
#include "token/token.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* jti: 128 random bits, base64url without padding. */
#define JTI_RANDOM_BYTES 16
#define JTI_LEN 22
/* Our header is ~80 bytes; anything this long is not one of ours. */
#define HEADER_PART_MAX 512
/* Both algorithms sign with 64 bytes: 86 base64url characters. */
#define SIG_PART_LEN 86
/* Claims are flat apart from the roles/amr arrays. */
#define CLAIMS_MAX_DEPTH 8
/* NumericDate bounds: before year 10000, so additions of a ttl or leeway never overflow. */
#define DATE_MAX 253402300799LL

/* ---- helpers ---------------------------------------------------------------------------- */

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int b64url_strict(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!b64url_char((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Appends base64url(p[0..n)) to b. */
static int append_b64(lt_buf_t *b, const void *p, size_t n)
{
    size_t len = lt_b64url_enclen(n);
    if (lt_buf_reserve(b, len + 1) != 0)
        return LT_ENOMEM;
    lt_b64url_encode(b->base + b->len, p, n);
    b->len += len;
    return 0;
}

static int append_json_b64(lt_buf_t *b, const json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s == NULL)
        return LT_ENOMEM;
    int ret = append_b64(b, s, strlen(s));
    free(s);
    return ret;
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

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, json_string(v));
}

static int set_int(json_t *o, const char *k, int64_t v)
{
    return json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* An optional string claim: absent (NULL) or non-empty, never "" (which reads as present but says nothing). */
static int opt_str_ok(const char *v)
{
    return v == NULL || v[0] != '\0';
}

/* Sets `k` to the borrowed array `a`, or to a new empty array when `a` is NULL. */
static int set_array(json_t *o, const char *k, json_t *a)
{
    return a != NULL ? json_object_set(o, k, a) : json_object_set_new(o, k, json_array());
}

/* ---- issue ------------------------------------------------------------------------------- */

int lt_token_issue(const lt_keyring_t *kr, const lt_token_claims_t *c, char **out, char *jti_out, size_t jti_cap)
{
    uint8_t rnd[JTI_RANDOM_BYTES], sig[LT_SIG_MAX];
    char jti[JTI_LEN + 1];
    size_t siglen = 0;
    json_t *hdr = NULL, *cl = NULL;
    lt_buf_t b = LT_BUF_INIT;
    int ret = LT_EINVAL;

    if (c == NULL || out == NULL || (jti_out != NULL && jti_cap < sizeof(jti)))
        return LT_EINVAL;
    const lt_key_t *key = lt_keyring_active(kr);
    if (key == NULL || !lt_key_has_private(key))
        return LT_ESTATE;
    /* Callers from before client_id existed pass NULL: first-party (token.h). */
    const char *client_id = c->client_id != NULL ? c->client_id : LT_TOKEN_FIRST_PARTY_CLIENT;
    if (c->iss == NULL || c->aud == NULL || c->sub == NULL || c->sub[0] == '\0' || c->tenant == NULL ||
        client_id[0] == '\0' || !opt_str_ok(c->sid) || !opt_str_ok(c->username) ||
        c->ttl <= 0 || c->now < 0 || c->now > DATE_MAX - c->ttl || c->auth_time < 0 || c->auth_time > DATE_MAX ||
        (c->roles != NULL && !string_array(c->roles)) || (c->amr != NULL && !string_array(c->amr)))
        return LT_EINVAL;
    if (lt_random(rnd, sizeof(rnd)) != 0)
        return LT_EIO;
    lt_b64url_encode(jti, rnd, sizeof(rnd));

    ret = LT_ENOMEM;
    if ((hdr = json_object()) == NULL || (cl = json_object()) == NULL)
        goto done;
    if (set_str(hdr, "alg", lt_alg_name(lt_key_alg(key))) != 0 || set_str(hdr, "typ", "at+jwt") != 0 ||
        set_str(hdr, "kid", lt_key_kid(key)) != 0)
        goto done;
    /* Insertion order is serialisation order (jansson >= 2.8): RFC 9068's order, roughly. */
    if (set_str(cl, "iss", c->iss) != 0 || set_str(cl, "aud", c->aud) != 0 || set_str(cl, "sub", c->sub) != 0 ||
        (c->sid != NULL && set_str(cl, "sid", c->sid) != 0) || set_str(cl, "client_id", client_id) != 0 ||
        (c->username != NULL && set_str(cl, "username", c->username) != 0) || set_str(cl, "jti", jti) != 0 ||
        set_int(cl, "iat", c->now) != 0 || set_int(cl, "nbf", c->now) != 0 ||
        set_int(cl, "exp", c->now + c->ttl) != 0 || set_str(cl, "tenant", c->tenant) != 0 ||
        set_array(cl, "roles", c->roles) != 0 || set_str(cl, "scope", c->scope != NULL ? c->scope : "") != 0 ||
        (c->amr != NULL && json_object_set(cl, "amr", c->amr) != 0) ||
        (c->acr != NULL && c->acr[0] != '\0' && set_str(cl, "acr", c->acr) != 0) ||
        (c->auth_time != 0 && set_int(cl, "auth_time", c->auth_time) != 0))
        goto done; /* json_string() fails on invalid UTF-8 as well as on ENOMEM */

    if (append_json_b64(&b, hdr) != 0 || lt_buf_append(&b, ".", 1) != 0 || append_json_b64(&b, cl) != 0)
        goto done;
    if ((ret = lt_key_sign(key, b.base, b.len, sig, &siglen)) != 0)
        goto done;
    ret = LT_ENOMEM;
    if (lt_buf_append(&b, ".", 1) != 0 || append_b64(&b, sig, siglen) != 0)
        goto done;
    if (jti_out != NULL)
        memcpy(jti_out, jti, sizeof(jti));
    *out = b.base;
    b.base = NULL;
    ret = 0;
done:
    lt_buf_free(&b);
    json_decref(hdr);
    json_decref(cl);
    return ret;
}

/* ---- verify ------------------------------------------------------------------------------ */

#define REJECT(reason)                                                                                                 \
    do {                                                                                                               \
        reject = (reason);                                                                                             \
        goto done;                                                                                                     \
    } while (0)

/* Decodes one strict base64url part and parses it as a JSON object; NULL if it is not one. */
static json_t *part_json(const char *p, size_t n, uint8_t *scratch, size_t cap, int max_depth)
{
    long len = lt_b64url_decode(scratch, cap, p, n);
    if (len <= 0 || !lt_json_depth_ok((const char *)scratch, (size_t)len, max_depth))
        return NULL;
    json_t *o = json_loadb((const char *)scratch, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* RFC 9068 §4: "at+jwt", or the full media type; compared case-insensitively (RFC 2045). */
static int typ_ok(const char *typ)
{
    if (typ == NULL)
        return 0;
    if (strncasecmp(typ, "application/", 12) == 0)
        typ += 12;
    return strcasecmp(typ, "at+jwt") == 0;
}

/* A NumericDate we issue: an integer within [0, DATE_MAX]. */
static int get_date(const json_t *cl, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(cl, name);
    if (!json_is_integer(v))
        return 0;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i > DATE_MAX)
        return 0;
    *out = (int64_t)i;
    return 1;
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3); NULL `want` takes any. */
static int aud_ok(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *v;
    if (json_is_string(aud))
        return want == NULL || strcmp(json_string_value(aud), want) == 0;
    if (!string_array(aud) || json_array_size(aud) == 0)
        return 0;
    if (want == NULL)
        return 1;
    json_array_foreach (aud, i, v)
        if (strcmp(json_string_value(v), want) == 0)
            return 1;
    return 0;
}

/* An optional claim that is absent (*out NULL) or a non-empty string; 0 when neither. */
static int opt_str_claim(const json_t *cl, const char *name, const char **out)
{
    const json_t *v = json_object_get(cl, name);
    *out = json_string_value(v);
    return v == NULL || (*out != NULL && (*out)[0] != '\0');
}

/* A claim that is an array of strings, or absent (then set to an empty array). */
static json_t *array_claim(json_t *cl, const char *name)
{
    json_t *v = json_object_get(cl, name);
    if (v == NULL && json_object_set_new(cl, name, json_array()) == 0)
        return json_object_get(cl, name);
    return string_array(v) ? v : NULL;
}

int lt_token_verify(const lt_keyring_t *kr, const char *jwt, size_t n, const lt_token_verify_opts_t *o, lt_token_t *out,
                    const char **why)
{
    const char *reject = NULL;
    json_t *hdr = NULL, *cl = NULL;
    uint8_t *scratch = NULL, sig[LT_SIG_MAX];
    int ret = LT_EINVAL;
    lt_token_t t;
    memset(&t, 0, sizeof(t));

    if (o == NULL || o->iss == NULL || o->leeway < 0 || out == NULL)
        REJECT("bad options");
    if (jwt == NULL || n == 0)
        REJECT("empty");
    if (n > LT_TOKEN_MAX)
        REJECT("too long");

    /* header.payload.signature: exactly two dots, three non-empty strict base64url parts. */
    const char *d1 = memchr(jwt, '.', n);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - jwt)) : NULL;
    if (d2 == NULL)
        REJECT("not three parts");
    if (memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - jwt)) != NULL)
        REJECT("more than three parts");
    size_t hlen = (size_t)(d1 - jwt), plen = (size_t)(d2 - d1 - 1), slen = n - (size_t)(d2 + 1 - jwt);
    if (hlen == 0 || hlen > HEADER_PART_MAX || plen == 0 || slen != SIG_PART_LEN)
        REJECT("bad part length");
    if (!b64url_strict(jwt, hlen) || !b64url_strict(d1 + 1, plen) || !b64url_strict(d2 + 1, slen))
        REJECT("not base64url");

    /* Decoding never grows: n bytes of scratch hold any part. */
    if ((scratch = malloc(n)) == NULL) {
        ret = LT_ENOMEM;
        REJECT("out of memory");
    }

    if ((hdr = part_json(jwt, hlen, scratch, n, 2)) == NULL)
        REJECT("bad header");
    if (!typ_ok(json_string_value(json_object_get(hdr, "typ"))))
        REJECT("bad typ");
    /* We implement no extension, so a critical one can never be understood (RFC 7515 §4.1.11). */
    if (json_object_get(hdr, "crit") != NULL)
        REJECT("crit header");
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    if (kid == NULL)
        REJECT("no kid");
    const lt_key_t *key = lt_keyring_find(kr, kid, json_string_length(json_object_get(hdr, "kid")));
    if (key == NULL)
        REJECT("unknown kid");
    /* The key pins the algorithm: "none", HS256 and any other name fail here. */
    lt_alg_t alg;
    if (lt_alg_parse(json_string_value(json_object_get(hdr, "alg")), &alg) != 0 || alg != lt_key_alg(key))
        REJECT("alg mismatch");

    if (lt_b64url_decode(sig, sizeof(sig), d2 + 1, slen) != (long)sizeof(sig))
        REJECT("bad signature encoding");
    if (!lt_key_verify(key, jwt, (size_t)(d2 - jwt), sig, sizeof(sig)))
        REJECT("bad signature");

    if ((cl = part_json(d1 + 1, plen, scratch, n, CLAIMS_MAX_DEPTH)) == NULL)
        REJECT("bad claims");
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    if (iss == NULL || strcmp(iss, o->iss) != 0)
        REJECT("wrong iss");
    if (!aud_ok(json_object_get(cl, "aud"), o->aud))
        REJECT("wrong aud");

    int64_t now = o->now != 0 ? o->now : (int64_t)(lt_now_ms() / 1000);
    int64_t leeway = o->leeway != 0 ? o->leeway : LT_TOKEN_LEEWAY;
    if (!get_date(cl, "exp", &t.exp) || !get_date(cl, "iat", &t.iat) || !get_date(cl, "nbf", &t.nbf))
        REJECT("bad time claims");
    if (t.exp <= now - leeway)
        REJECT("expired");
    if (t.nbf > now + leeway)
        REJECT("not yet valid");
    if (t.iat > now + leeway)
        REJECT("issued in the future");
    if (json_object_get(cl, "auth_time") != NULL && !get_date(cl, "auth_time", &t.auth_time))
        REJECT("bad auth_time");

    t.sub = json_string_value(json_object_get(cl, "sub"));
    t.tenant = json_string_value(json_object_get(cl, "tenant"));
    t.jti = json_string_value(json_object_get(cl, "jti"));
    t.client_id = json_string_value(json_object_get(cl, "client_id"));
    if (t.sub == NULL || t.sub[0] == '\0' || t.jti == NULL || t.jti[0] == '\0' || t.tenant == NULL ||
        t.client_id == NULL || t.client_id[0] == '\0')
        REJECT("missing sub, jti, tenant or client_id");
    /* Optional, but a present one must be a usable string: a sid of 7 or "" must not read as
     * "no session" and slip past session revocation. */
    if (!opt_str_claim(cl, "sid", &t.sid) || !opt_str_claim(cl, "username", &t.username) ||
        !opt_str_claim(cl, "acr", &t.acr))
        REJECT("bad sid, username or acr");
    json_t *scope = json_object_get(cl, "scope");
    if (scope == NULL && json_object_set_new(cl, "scope", json_string("")) != 0) {
        ret = LT_ENOMEM;
        REJECT("out of memory");
    }
    if ((t.scope = json_string_value(json_object_get(cl, "scope"))) == NULL)
        REJECT("bad scope");
    if ((t.roles = array_claim(cl, "roles")) == NULL || (t.amr = array_claim(cl, "amr")) == NULL)
        REJECT("bad roles or amr");
    memcpy(t.kid, lt_key_kid(key), strlen(lt_key_kid(key)) + 1);

    t.claims = cl;
    cl = NULL;
    *out = t;
    ret = 0;
done:
    if (ret != 0 && why != NULL)
        *why = reject;
    free(scratch);
    json_decref(hdr);
    json_decref(cl);
    return ret;
}

#undef REJECT

void lt_token_free(lt_token_t *t)
{
    if (t == NULL)
        return;
    json_decref(t->claims);
    memset(t, 0, sizeof(*t));
}

int lt_token_has_role(const lt_token_t *t, const char *role)
{
    size_t i;
    const json_t *v;
    if (t == NULL || role == NULL || t->roles == NULL)
        return 0;
    json_array_foreach (t->roles, i, v)
        if (strcmp(json_string_value(v), role) == 0)
            return 1;
    return 0;
}
