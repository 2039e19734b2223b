/*
 * mfa/totp: TOTP secrets, their base32 text, code checks and generation (liboath), and the
 * otpauth:// URI.
 *
 * liboath is initialised once per process behind pthread_once and never torn down:
 * oath_done() would pull the library out from under other threads still checking codes.
 * After oath_init() the functions used here keep no shared state, so any thread may call
 * them concurrently.
 */
#include "mfa/mfa.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_init_rc = OATH_OK;

static void oath_init_once(void)
{
    oath_init_rc = oath_init();
}

static int oath_ready(void)
{
    if (pthread_once(&oath_once, oath_init_once) != 0)
        return 0;
    return oath_init_rc == OATH_OK;
}

int lt_mfa_secret_new(uint8_t secret[LT_MFA_SECRET_LEN])
{
    return lt_random(secret, LT_MFA_SECRET_LEN) == 0 ? 0 : LT_EIO;
}

int lt_mfa_secret_b32(const uint8_t secret[LT_MFA_SECRET_LEN], char out[LT_MFA_SECRET_B32_LEN + 1])
{
    char *enc = NULL;
    size_t enclen = 0;
    int ret = LT_EIO;

    out[0] = '\0';
    if (!oath_ready())
        return LT_EIO;
    if (oath_base32_encode((const char *)secret, LT_MFA_SECRET_LEN, &enc, &enclen) != OATH_OK)
        goto done;
    /* 20 bytes are 160 bits, a whole number of 40-bit groups: no padding to strip. */
    if (enclen != LT_MFA_SECRET_B32_LEN)
        goto done;
    memcpy(out, enc, LT_MFA_SECRET_B32_LEN);
    out[LT_MFA_SECRET_B32_LEN] = '\0';
    ret = 0;
done:
    if (enc) {
        lt_wipe(enc, enclen);
        free(enc);
    }
    return ret;
}

static const char *const alg_names[] = {"SHA1", "SHA256", "SHA512"};

const char *lt_mfa_alg_name(lt_mfa_alg_t alg)
{
    if ((unsigned)alg >= sizeof(alg_names) / sizeof(alg_names[0]))
        return NULL;
    return alg_names[alg];
}

int lt_mfa_alg_parse(const char *s, lt_mfa_alg_t *out)
{
    if (!s)
        return LT_EINVAL;
    for (unsigned i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (strcmp(s, alg_names[i]) == 0) {
            *out = (lt_mfa_alg_t)i;
            return 0;
        }
    }
    return LT_EINVAL;
}

int lt_mfa_params_ok(const lt_mfa_totp_params_t *p)
{
    return p && lt_mfa_alg_name(p->alg) != NULL && p->digits >= LT_MFA_DIGITS_MIN && p->digits <= LT_MFA_DIGITS_MAX &&
           p->period >= LT_MFA_PERIOD_MIN && p->period <= LT_MFA_PERIOD_MAX;
}

static int oath_flags(lt_mfa_alg_t alg)
{
    switch (alg) {
    case LT_MFA_SHA256:
        return OATH_TOTP_HMAC_SHA256;
    case LT_MFA_SHA512:
        return OATH_TOTP_HMAC_SHA512;
    default:
        return 0;
    }
}

/*
 * liboath's own validate compares codes with strcmp, which stops at the first differing
 * digit; this one takes the same time whatever the candidate. `handle` is the caller's
 * code, already known to be exactly as long as the candidates liboath generates.
 */
typedef struct {
    const char *code;
    size_t len;
} code_ref_t;

static int code_cmp(void *handle, const char *candidate)
{
    const code_ref_t *ref = handle;
    if (strlen(candidate) != ref->len)
        return 1;
    return CRYPTO_memcmp(ref->code, candidate, ref->len) == 0 ? 0 : 1;
}

int lt_mfa_totp_check(const uint8_t *secret, size_t n, const lt_mfa_totp_params_t *p, int64_t now, int window,
                      const char *code, size_t codelen, int64_t *step)
{
    if (!secret || n == 0 || !lt_mfa_params_ok(p) || now < 0 || window < 0 || window > LT_MFA_WINDOW_MAX || !code)
        return LT_EINVAL;
    /* Malformed is LT_EINVAL, not a mismatch. (liboath's plain validate would also infer the
     * digit count from the code's length, taking 6 digits for an 8-digit factor.) */
    if (codelen != (size_t)p->digits)
        return LT_EINVAL;
    for (size_t i = 0; i < codelen; i++)
        if (code[i] < '0' || code[i] > '9')
            return LT_EINVAL;
    if (!oath_ready())
        return LT_EIO;

    code_ref_t ref = {code, codelen};
    int pos = 0;
    uint64_t counter = 0;
    int rc = oath_totp_validate4_callback((const char *)secret, n, (time_t)now, (unsigned)p->period, 0,
                                          (unsigned)p->digits, (size_t)window, &pos, &counter, oath_flags(p->alg),
                                          code_cmp, &ref);
    if (rc == OATH_INVALID_OTP)
        return LT_ENOTFOUND;
    if (rc < 0)
        return LT_EIO;
    /* Near the epoch liboath's "now - window" counters wrap around; they are no real step. */
    if (counter > (uint64_t)INT64_MAX)
        return LT_ENOTFOUND;
    if (step)
        *step = (int64_t)counter;
    return 0;
}

int lt_mfa_totp_code(const uint8_t *secret, size_t n, const lt_mfa_totp_params_t *p, int64_t step,
                     char out[LT_MFA_DIGITS_MAX + 1])
{
    out[0] = '\0';
    if (!secret || n == 0 || !lt_mfa_params_ok(p) || step < 0 || step > INT64_MAX / p->period)
        return LT_EINVAL;
    if (!oath_ready())
        return LT_EIO;
    char buf[LT_MFA_DIGITS_MAX + 2];
    int rc = oath_totp_generate2((const char *)secret, n, (time_t)(step * p->period), (unsigned)p->period, 0,
                                 (unsigned)p->digits, oath_flags(p->alg), buf);
    if (rc != OATH_OK || strlen(buf) != (size_t)p->digits) {
        lt_wipe(buf, sizeof(buf));
        return LT_EIO;
    }
    memcpy(out, buf, (size_t)p->digits + 1);
    lt_wipe(buf, sizeof(buf));
    return 0;
}

/* RFC 3986 §2.3: the unreserved characters pass, every other byte is %XX. */
static int append_pct(lt_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        int unreserved = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                         *c == '-' || *c == '.' || *c == '_' || *c == '~';
        if (unreserved) {
            if (lt_buf_append(b, c, 1) != 0)
                return LT_ENOMEM;
        } else {
            char esc[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            if (lt_buf_append(b, esc, 3) != 0)
                return LT_ENOMEM;
        }
    }
    return 0;
}

char *lt_mfa_otpauth_uri(const char *issuer, const char *account, const char *secret_b32,
                         const lt_mfa_totp_params_t *p)
{
    lt_buf_t b = LT_BUF_INIT;

    /* The label's first ':' separates issuer from account (Key Uri Format). */
    if (!issuer || !account || !secret_b32 || !*issuer || !*account || !*secret_b32 || strchr(issuer, ':') ||
        !lt_mfa_params_ok(p))
        return NULL;
    /* Room for the worst case up front, so no realloc leaves a copy of the secret behind
     * (the 256 is lt_buf_appendf's own reservation for the tail). */
    size_t worst = 3 * (2 * strlen(issuer) + strlen(account) + strlen(secret_b32)) + 64 + 256;
    if (lt_buf_reserve(&b, worst) != 0)
        goto fail;
    if (lt_buf_appends(&b, "otpauth://totp/") != 0 || append_pct(&b, issuer) != 0 || lt_buf_appends(&b, ":") != 0 ||
        append_pct(&b, account) != 0 || lt_buf_appends(&b, "?secret=") != 0 || append_pct(&b, secret_b32) != 0 ||
        lt_buf_appends(&b, "&issuer=") != 0 || append_pct(&b, issuer) != 0 ||
        lt_buf_appendf(&b, "&algorithm=%s&digits=%d&period=%d", lt_mfa_alg_name(p->alg), p->digits, p->period) != 0)
        goto fail;
    return b.base;
fail:
    /* The buffer held the secret. */
    if (b.base)
        lt_wipe(b.base, b.cap);
    lt_buf_free(&b);
    return NULL;
}
