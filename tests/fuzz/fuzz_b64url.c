/*
 * fuzz_b64url: lt_b64url_encode and lt_b64url_decode (lib/base/base.c).
 *
 * The input is used twice: as bytes to encode, and as text to decode.
 *
 * Invariants:
 * - encode writes lt_b64url_enclen(n) characters of the base64url alphabet and a NUL, and
 *   decode(encode(x)) == x, needing exactly |x| bytes of room (one fewer is LT_ERANGE);
 * - decode accepts only canonical text: when it succeeds, encoding what it decoded gives
 *   the input with trailing '=' removed and '+', '/' spelled '-', '_'; so one value has one
 *   spelling, apart from the alphabet and the padding.
 */
#include <string.h>

#include "base/base.h"
#include "fuzz.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void round_trip(const uint8_t *data, size_t size)
{
    size_t elen = lt_b64url_enclen(size);
    char *enc = malloc(elen + 1);
    uint8_t *dec = malloc(size != 0 ? size : 1);
    FUZZ_CHECK(enc != NULL && dec != NULL);
    FUZZ_CHECK(lt_b64url_encode(enc, data, size) == elen);
    FUZZ_CHECK(enc[elen] == '\0' && strspn(enc, alphabet) == elen);
    FUZZ_CHECK(lt_b64url_decode(dec, size, enc, elen) == (long)size);
    FUZZ_CHECK(size == 0 || memcmp(dec, data, size) == 0);
    if (size > 0)
        FUZZ_CHECK(lt_b64url_decode(dec, size - 1, enc, elen) == LT_ERANGE);
    free(enc);
    free(dec);
}

static void canonical(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    uint8_t *dec = malloc(size != 0 ? size : 1); /* decoding never grows */
    FUZZ_CHECK(dec != NULL);
    long n = lt_b64url_decode(dec, size, text, size);
    FUZZ_CHECK(n == LT_EINVAL || (n >= 0 && (size_t)n <= size));
    if (n >= 0) {
        size_t tlen = size;
        while (tlen > 0 && text[tlen - 1] == '=')
            tlen--;
        char *enc = malloc(lt_b64url_enclen((size_t)n) + 1);
        FUZZ_CHECK(enc != NULL);
        FUZZ_CHECK(lt_b64url_encode(enc, dec, (size_t)n) == tlen);
        for (size_t i = 0; i < tlen; i++) {
            char c = text[i] == '+' ? '-' : text[i] == '/' ? '_' : text[i];
            FUZZ_CHECK(enc[i] == c);
        }
        free(enc);
    }
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    round_trip(data, size);
    canonical(data, size);
    return 0;
}
