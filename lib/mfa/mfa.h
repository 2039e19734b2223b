/*
 * mfa: the second factor's pure parts. TOTP (RFC 6238) computed and checked by liboath,
 * secrets and their base32 form, the otpauth:// URI authenticator apps read, its QR code
 * as SVG (libqrencode gives the module matrix; the SVG is ours), and recovery codes.
 *
 * No I/O and no database here: the factor rows, replay state and challenges live in
 * PostgreSQL (sql/0010_mfa.sql, mfa/factors.c). Secrets are sealed by the caller under the
 * master key (crypto/seal.h) before they leave memory.
 *
 * Thread-safety: every function is safe from any thread (liboath is initialised once,
 * behind pthread_once).
 */
#ifndef LT_MFA_MFA_H
#define LT_MFA_MFA_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ---- TOTP ---------------------------------------------------------------------------- */

typedef enum { LT_MFA_SHA1 = 0, LT_MFA_SHA256, LT_MFA_SHA512 } lt_mfa_alg_t;

/* A factor's parameters: fixed at enrolment from the tenant's settings. */
typedef struct lt_mfa_totp_params {
    lt_mfa_alg_t alg;
    int digits; /* LT_MFA_DIGITS_MIN..MAX */
    int period; /* seconds, LT_MFA_PERIOD_MIN..MAX */
} lt_mfa_totp_params_t;

#define LT_MFA_DIGITS_MIN 6
#define LT_MFA_DIGITS_MAX 8
#define LT_MFA_PERIOD_MIN 15
#define LT_MFA_PERIOD_MAX 120
/* The widest verification window accepted (steps on each side). */
#define LT_MFA_WINDOW_MAX 5

/* 160-bit secrets (RFC 4226 §4 recommends it; what authenticator apps expect). */
#define LT_MFA_SECRET_LEN 20
/* Its base32 text (RFC 4648, upper case, no padding: 20 bytes are exactly 32 chars). */
#define LT_MFA_SECRET_B32_LEN 32

/** A fresh secret from the CSPRNG. @return 0 or LT_EIO. */
int lt_mfa_secret_new(uint8_t secret[LT_MFA_SECRET_LEN]) LT_MUSTCHECK;

/** The base32 text of a secret (liboath's encoder), NUL-terminated. @return 0 or LT_EIO. */
int lt_mfa_secret_b32(const uint8_t secret[LT_MFA_SECRET_LEN], char out[LT_MFA_SECRET_B32_LEN + 1]) LT_MUSTCHECK;

/* "SHA1", "SHA256", "SHA512": the otpauth spelling. */
const char *lt_mfa_alg_name(lt_mfa_alg_t alg);
/** Parses that spelling (exact). @return 0 or LT_EINVAL. */
int lt_mfa_alg_parse(const char *s, lt_mfa_alg_t *out) LT_MUSTCHECK;
/* 1 when digits and period are in range and alg is known. */
int lt_mfa_params_ok(const lt_mfa_totp_params_t *p);

/**
 * Checks `code` (exactly p->digits ASCII digits: liboath would infer the digit count from
 * the length, so a shorter code is refused here first) against the steps from
 * now/period - window to now/period + window. On a match *step is the matched time-step
 * counter (floor(t / period)), for the caller's replay check.
 * @return 0 (match), LT_EINVAL (malformed code or parameters), LT_ENOTFOUND (no step
 *         matched), LT_EIO (liboath failed).
 */
int lt_mfa_totp_check(const uint8_t *secret, size_t n, const lt_mfa_totp_params_t *p, int64_t now, int window,
                      const char *code, size_t codelen, int64_t *step) LT_MUSTCHECK;

/** The code of time step `step` (for tests and tools), NUL-terminated. @return 0, LT_EINVAL, LT_EIO. */
int lt_mfa_totp_code(const uint8_t *secret, size_t n, const lt_mfa_totp_params_t *p, int64_t step,
                     char out[LT_MFA_DIGITS_MAX + 1]) LT_MUSTCHECK;

/**
 * otpauth://totp/<issuer>:<account>?secret=..&issuer=..&algorithm=..&digits=..&period=..
 * (the Key Uri Format authenticator apps read), label and values percent-encoded
 * (RFC 3986 unreserved characters kept). malloc'd; NULL when out of memory or when issuer
 * or account is empty or contains ':' in the issuer.
 */
char *lt_mfa_otpauth_uri(const char *issuer, const char *account, const char *secret_b32,
                         const lt_mfa_totp_params_t *p);

/**
 * The QR code of `text` (libqrencode, 8-bit mode, error correction M) as a standalone SVG
 * document: one path of dark modules on a white background, a 4-module quiet zone, a
 * viewBox in modules and a fixed pixel size per module so a rasteriser needs no options.
 * malloc'd, NUL-terminated, *len its length; NULL on failure (text too long, no memory).
 */
char *lt_mfa_qr_svg(const char *text, size_t *len);

/* ---- recovery codes ------------------------------------------------------------------ */

#define LT_MFA_RECOVERY_COUNT 10
#define LT_MFA_RECOVERY_LEN 10
/* Unambiguous alphabet: digits 2-9 and upper-case letters without I and O (32 symbols,
 * so 50 bits per code). */
#define LT_MFA_RECOVERY_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

/** A new set of codes from the CSPRNG. @return 0 or LT_EIO (codes are then empty). */
int lt_mfa_recovery_new(char codes[LT_MFA_RECOVERY_COUNT][LT_MFA_RECOVERY_LEN + 1]) LT_MUSTCHECK;

/**
 * A code as typed into its canonical form: spaces and '-' dropped, letters upper-cased;
 * then exactly LT_MFA_RECOVERY_LEN symbols of the alphabet.
 * @return 0 or LT_EINVAL (out is then "").
 */
int lt_mfa_recovery_normalize(const char *in, size_t n, char out[LT_MFA_RECOVERY_LEN + 1]) LT_MUSTCHECK;

/*
 * Stored form of a recovery code: 50 bits is too few to store as a bare hash (a stolen
 * table could be searched offline), so codes are MACed with a key derived from the master
 * key: hex of version byte || HMAC-SHA256(K_v, user_id ":" code), where K_v =
 * SHA-256("latch recovery codes" || master key of version v). The version prefix lets a
 * reader holding several master keys compute one candidate per key.
 */
#define LT_MFA_RECOVERY_HASH_HEX_LEN 66

/** `code` is a normalised code. @return 0, LT_EINVAL (code not LT_MFA_RECOVERY_LEN characters) or LT_EIO. */
int lt_mfa_recovery_hash(uint8_t key_version, const uint8_t master_key[32], const char *user_id,
                         const char code[LT_MFA_RECOVERY_LEN + 1], char hex[LT_MFA_RECOVERY_HASH_HEX_LEN + 1]) LT_MUSTCHECK;

#endif
