/*
 * policy/lexer: the tokens of the condition language (see expr.h for the syntax).
 *
 * Columns count code points, so an editor shows the same column as the error; the source
 * must be UTF-8 (compile.c checks that before lexing). String tokens keep their raw text;
 * lt__lex_string decodes them once the parser wants the value, so the lexer validates
 * escapes but needs no buffer.
 */
#include "policy/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void lt__lex_init(lt__lexer_t *lx, const char *src, size_t n)
{
    lx->src = src;
    lx->cur = src;
    lx->end = src + n;
    lx->line = 1;
    lx->col = 1;
}

/* Steps over one byte, keeping line and column. */
static void adv(lt__lexer_t *lx)
{
    unsigned char c = (unsigned char)*lx->cur++;
    if (c == '\n') {
        lx->line++;
        lx->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        lx->col++;
    }
}

static int peekc(const lt__lexer_t *lx, size_t k)
{
    return lx->cur + k < lx->end ? (unsigned char)lx->cur[k] : -1;
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static const struct {
    const char *word;
    lt__tok_kind_t kind;
} keywords[] = {{"true", TK_TRUE}, {"false", TK_FALSE}, {"null", TK_NULL}, {"in", TK_IN}};

static int lex_number(lt__lexer_t *lx, lt__tok_t *t, const char **why)
{
    const char *s = lx->cur;
    bool is_double = false;
    if (peekc(lx, 0) == '0' && (peekc(lx, 1) == 'x' || peekc(lx, 1) == 'X')) {
        adv(lx);
        adv(lx);
        uint64_t v = 0;
        size_t nd = 0;
        while (lx->cur < lx->end && lt_hex_digit(*lx->cur) >= 0) {
            if (v > (UINT64_MAX >> 4)) {
                *why = "integer literal out of range";
                return -1;
            }
            v = (v << 4) | (uint64_t)lt_hex_digit(*lx->cur);
            adv(lx);
            nd++;
        }
        if (nd == 0) {
            *why = "hexadecimal literal without digits";
            return -1;
        }
        t->kind = TK_INT;
        t->ival = v;
        goto done;
    }
    while (is_digit(peekc(lx, 0)))
        adv(lx);
    if (peekc(lx, 0) == '.' && is_digit(peekc(lx, 1))) {
        is_double = true;
        adv(lx);
        while (is_digit(peekc(lx, 0)))
            adv(lx);
    }
    if (peekc(lx, 0) == 'e' || peekc(lx, 0) == 'E') {
        size_t k = 1;
        if (peekc(lx, k) == '+' || peekc(lx, k) == '-')
            k++;
        if (!is_digit(peekc(lx, k))) {
            *why = "malformed exponent";
            return -1;
        }
        is_double = true;
        while (k-- > 0)
            adv(lx);
        while (is_digit(peekc(lx, 0)))
            adv(lx);
    }
    size_t n = (size_t)(lx->cur - s);
    char buf[64];
    if (n >= sizeof(buf)) {
        *why = "number literal too long";
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (is_double) {
        /* strtod reads '.' as the decimal point in the "C" locale, which latchd never leaves. */
        errno = 0;
        t->dval = strtod(buf, NULL);
        if (errno == ERANGE && (t->dval > 1 || t->dval < -1)) {
            *why = "double literal out of range";
            return -1;
        }
        t->kind = TK_DOUBLE;
    } else {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned)(buf[i] - '0');
            if (v > (UINT64_MAX - d) / 10) {
                *why = "integer literal out of range";
                return -1;
            }
            v = v * 10 + d;
        }
        t->kind = TK_INT;
        t->ival = v;
    }
done:
    if (is_ident_start(peekc(lx, 0)) || is_digit(peekc(lx, 0))) {
        *why = "malformed number";
        return -1;
    }
    t->n = (size_t)(lx->cur - s);
    return 0;
}

static int lex_string(lt__lexer_t *lx, lt__tok_t *t, const char **why)
{
    int q = peekc(lx, 0);
    adv(lx);
    for (;;) {
        int c = peekc(lx, 0);
        if (c < 0 || c == '\n') {
            *why = "unterminated string";
            return -1;
        }
        if (c == q) {
            adv(lx);
            break;
        }
        if (c == '\\') {
            int e = peekc(lx, 1);
            t->line = lx->line; /* an escape error points at the escape */
            t->col = lx->col;
            switch (e) {
            case '"': case '\'': case '\\': case '/': case 'n': case 'r': case 't': case 'b': case 'f':
                adv(lx);
                adv(lx);
                continue;
            case 'u': {
                for (size_t k = 2; k < 6; k++)
                    if (peekc(lx, k) < 0 || lt_hex_digit((char)peekc(lx, k)) < 0) {
                        *why = "\\u needs four hex digits";
                        return -1;
                    }
                unsigned cp = 0;
                for (size_t k = 2; k < 6; k++)
                    cp = (cp << 4) | (unsigned)lt_hex_digit((char)peekc(lx, k));
                /* Surrogates cannot be encoded as UTF-8, and the language has no use for pairs. */
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    *why = "\\u escape of a surrogate";
                    return -1;
                }
                if (cp == 0) {
                    *why = "\\u0000 is not allowed in a string";
                    return -1;
                }
                for (int k = 0; k < 6; k++)
                    adv(lx);
                continue;
            }
            default:
                *why = "unknown escape sequence";
                return -1;
            }
        }
        adv(lx);
    }
    t->kind = TK_STRING;
    return 0;
}

int lt__lex_next(lt__lexer_t *lx, lt__tok_t *t, const char **why)
{
    memset(t, 0, sizeof(*t));
    for (;;) {
        int c = peekc(lx, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            adv(lx);
        } else if (c == '/' && peekc(lx, 1) == '/') {
            while (lx->cur < lx->end && *lx->cur != '\n')
                adv(lx);
        } else {
            break;
        }
    }
    t->line = lx->line;
    t->col = lx->col;
    t->p = lx->cur;
    if (lx->cur >= lx->end) {
        t->kind = TK_EOF;
        return 0;
    }
    int c = peekc(lx, 0), c1 = peekc(lx, 1);
    if (is_ident_start(c)) {
        while (is_ident_start(peekc(lx, 0)) || is_digit(peekc(lx, 0)))
            adv(lx);
        t->n = (size_t)(lx->cur - t->p);
        t->kind = TK_IDENT;
        for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
            if (strlen(keywords[i].word) == t->n && memcmp(keywords[i].word, t->p, t->n) == 0)
                t->kind = keywords[i].kind;
        return 0;
    }
    if (is_digit(c) || (c == '.' && is_digit(c1))) {
        return lex_number(lx, t, why);
    }
    if (c == '"' || c == '\'') {
        int line = t->line, col = t->col;
        if (lex_string(lx, t, why) != 0) {
            if (strcmp(*why, "unterminated string") == 0) {
                t->line = line;
                t->col = col;
            }
            return -1;
        }
        t->line = line;
        t->col = col;
        t->n = (size_t)(lx->cur - t->p);
        return 0;
    }
    lt__tok_kind_t k;
    size_t len = 1;
    switch (c) {
    case '(': k = TK_LPAREN; break;
    case ')': k = TK_RPAREN; break;
    case '[': k = TK_LBRACKET; break;
    case ']': k = TK_RBRACKET; break;
    case ',': k = TK_COMMA; break;
    case '.': k = TK_DOT; break;
    case '?': k = TK_QUESTION; break;
    case ':': k = TK_COLON; break;
    case '+': k = TK_PLUS; break;
    case '-': k = TK_MINUS; break;
    case '*': k = TK_STAR; break;
    case '/': k = TK_SLASH; break;
    case '%': k = TK_PERCENT; break;
    case '!':
        k = c1 == '=' ? TK_NE : TK_NOT;
        len = c1 == '=' ? 2 : 1;
        break;
    case '<':
        k = c1 == '=' ? TK_LE : TK_LT;
        len = c1 == '=' ? 2 : 1;
        break;
    case '>':
        k = c1 == '=' ? TK_GE : TK_GT;
        len = c1 == '=' ? 2 : 1;
        break;
    case '=':
        if (c1 != '=') {
            *why = "unexpected '=' (did you mean '=='?)";
            return -1;
        }
        k = TK_EQ;
        len = 2;
        break;
    case '&':
        if (c1 != '&') {
            *why = "unexpected '&' (did you mean '&&'?)";
            return -1;
        }
        k = TK_AND;
        len = 2;
        break;
    case '|':
        if (c1 != '|') {
            *why = "unexpected '|' (did you mean '||'?)";
            return -1;
        }
        k = TK_OR;
        len = 2;
        break;
    default:
        *why = "unexpected character";
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        adv(lx);
    t->kind = k;
    t->n = len;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

size_t lt__lex_string(const lt__tok_t *t, char *out)
{
    const char *p = t->p + 1, *end = t->p + t->n - 1;
    size_t o = 0;
    while (p < end) {
        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++)
                cp = (cp << 4) | (unsigned)lt_hex_digit(p[k]);
            p += 4;
            o += put_utf8(out + o, cp); /* at most 3 bytes for the 6 bytes of "\uXXXX" */
            break;
        }
        default: out[o++] = e; break;
        }
    }
    return o;
}

const char *lt__tok_name(lt__tok_kind_t k)
{
    static const char *const names[] = {
        [TK_EOF] = "end of input", [TK_IDENT] = "identifier", [TK_INT] = "integer", [TK_DOUBLE] = "number",
        [TK_STRING] = "string",    [TK_TRUE] = "'true'",      [TK_FALSE] = "'false'", [TK_NULL] = "'null'",
        [TK_IN] = "'in'",          [TK_LPAREN] = "'('",       [TK_RPAREN] = "')'",    [TK_LBRACKET] = "'['",
        [TK_RBRACKET] = "']'",     [TK_COMMA] = "','",        [TK_DOT] = "'.'",       [TK_QUESTION] = "'?'",
        [TK_COLON] = "':'",        [TK_NOT] = "'!'",          [TK_AND] = "'&&'",      [TK_OR] = "'||'",
        [TK_EQ] = "'=='",          [TK_NE] = "'!='",          [TK_LT] = "'<'",        [TK_LE] = "'<='",
        [TK_GT] = "'>'",           [TK_GE] = "'>='",          [TK_PLUS] = "'+'",      [TK_MINUS] = "'-'",
        [TK_STAR] = "'*'",         [TK_SLASH] = "'/'",        [TK_PERCENT] = "'%'",
    };
    return names[k];
}
