/*
 * policy/internal.h: what the files of the condition language share (expr.h is the API).
 *
 *   lexer.c    source -> tokens (with line and column)
 *   parser.c   tokens -> AST (arena nodes), syntax errors with positions
 *   check.c    AST -> resolved, typed AST: identifiers, functions, variables, literal folding
 *   compile.c  typed AST -> one flat block (lt__node_t), the public compile/free
 *   vm.c       evaluation of the flat block, without allocation
 *   lit.c      RFC 3339 timestamps, durations, IP addresses and CIDRs, civil dates
 *   tz.c       TZif zones and their process-wide cache
 */
#ifndef LT_POLICY_INTERNAL_H
#define LT_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/expr.h"

/* ---- literals (lit.c) ---------------------------------------------------------------- */

/* An address range as 16 bytes of IPv6; IPv4 is kept IPv4-mapped (::ffff:a.b.c.d, prefix + 96). */
typedef struct lt__cidr {
    uint8_t addr[16];
    uint8_t prefix;
} lt__cidr_t;

/* Parses "a.b.c.d", "v6", with an optional "/prefix". Host bits are masked off. @return 0 or -1. */
int lt__cidr_parse(const char *s, size_t n, lt__cidr_t *out);
/* Parses a bare address into the same form (prefix 128). @return 0 or -1. */
int lt__ip_parse(const char *s, size_t n, uint8_t out[16]);
bool lt__cidr_match(const lt__cidr_t *c, const uint8_t ip[16]);

/* RFC 3339 date-time to microseconds since the epoch. @return 0 or -1. */
int lt__ts_parse(const char *s, size_t n, int64_t *us);
/* Go-style duration ("1h30m", "-1.5s", "250ms") to microseconds. @return 0 or -1. */
int lt__dur_parse(const char *s, size_t n, int64_t *us);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t lt__days_from_civil(int64_t y, unsigned m, unsigned d);
void lt__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
static inline int64_t lt__floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t lt__floormod(int64_t a, int64_t b)
{
    return a - lt__floordiv(a, b) * b;
}

/* ---- time zones (tz.c) --------------------------------------------------------------- */

typedef struct lt__tz lt__tz_t;

/*
 * Finds or loads a zone by IANA name. Takes the cache mutex; the zone lives as long as the
 * process. @return 0, or -1 with a reason in `why` (a static string).
 */
int lt__tz_get(const char *name, size_t n, const lt__tz_t **out, const char **why);
/* UTC offset in seconds east of UTC at unix time `t`. Lock-free, allocation-free. */
int32_t lt__tz_offset(const lt__tz_t *z, int64_t t);
/* Loads a zone from TZif bytes (tests feed crafted data). @return 0 or -1. Free with lt__tz_free. */
int lt__tz_from_tzif(const uint8_t *p, size_t n, lt__tz_t **out, const char **why);
void lt__tz_free(lt__tz_t *z);

/* ---- lexer --------------------------------------------------------------------------- */

typedef enum {
    TK_EOF,
    TK_IDENT,
    TK_INT,
    TK_DOUBLE,
    TK_STRING,
    TK_TRUE,
    TK_FALSE,
    TK_NULL,
    TK_IN,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_COMMA,
    TK_DOT,
    TK_QUESTION,
    TK_COLON,
    TK_NOT,
    TK_AND,
    TK_OR,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_PERCENT,
} lt__tok_kind_t;

typedef struct lt__tok {
    lt__tok_kind_t kind;
    int line, col;
    const char *p; /* the token's text in the source */
    size_t n;
    uint64_t ival; /* TK_INT, unsigned so that -9223372036854775808 can be negated */
    double dval;   /* TK_DOUBLE */
} lt__tok_t;

typedef struct lt__lexer {
    const char *src, *end, *cur;
    int line, col;
} lt__lexer_t;

void lt__lex_init(lt__lexer_t *lx, const char *src, size_t n);
/* The next token. @return 0, or -1 with `*why` and the position in `t` (line, col). */
int lt__lex_next(lt__lexer_t *lx, lt__tok_t *t, const char **why);
/* Decodes the body of a TK_STRING token into `out` (at least t->n bytes). @return length. */
size_t lt__lex_string(const lt__tok_t *t, char *out);
const char *lt__tok_name(lt__tok_kind_t k);

/* ---- AST and program ----------------------------------------------------------------- */

/* Static types the checker knows; DYN is anything read from the document. */
typedef enum { T_DYN, T_NULL, T_BOOL, T_INT, T_DOUBLE, T_STRING, T_LIST, T_MAP, T_TS, T_DUR } lt__type_t;

typedef enum {
    /* constants */
    OP_NULL,
    OP_BOOL,
    OP_INT,
    OP_DOUBLE,
    OP_STRING,
    OP_TS,
    OP_DUR,
    OP_CIDR, /* a literal CIDR argument of ip_in, parsed at compile time */
    OP_LIST, /* kids: the elements */
    /* references */
    OP_ROOT,  /* u.i: LT__ROOT_* */
    OP_NOW,
    OP_BOUND, /* slot: a macro's variable */
    OP_SELECT, /* kids[0].key */
    OP_INDEX,  /* kids[0][kids[1]] */
    OP_HAS,    /* key present in kids[0] */
    /* operators */
    OP_NOT,
    OP_NEG,
    OP_AND, /* n-ary */
    OP_OR,  /* n-ary */
    OP_COND,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_CALL,   /* fn: LT__FN_*, kids: receiver (if any) then arguments */
    OP_EXISTS, /* kids[0] the range, kids[1] the predicate, slot the variable */
    OP_ALL,
    /* parser output only, resolved by the checker */
    OP_IDENT,
    OP_FCALL,  /* name(args) */
    OP_METHOD, /* kids[0].name(args) */
    OP__COUNT
} lt__op_t;

enum { LT__ROOT_SUBJECT, LT__ROOT_RESOURCE, LT__ROOT_ACTION, LT__ROOT_CONTEXT };

typedef enum {
    LT__FN_SIZE,
    LT__FN_STARTS,
    LT__FN_ENDS,
    LT__FN_CONTAINS,
    LT__FN_IP_IN,
    LT__FN_TIMESTAMP,
    LT__FN_DURATION,
    LT__FN_HOUR,    /* u.tz */
    LT__FN_WEEKDAY, /* u.tz */
} lt__fn_t;

typedef struct lt__ast lt__ast_t;
struct lt__ast {
    uint8_t op;
    uint8_t type; /* lt__type_t, set by the checker */
    uint8_t fn;
    uint8_t slot;
    int line, col;   /* the node's own token (an operator, a field or method name) */
    int sline, scol; /* the leftmost token of the subtree */
    const char *s; /* identifier, field, function name, or decoded string literal */
    size_t sn;
    lt__ast_t **kids;
    uint32_t nkids;
    uint32_t size;  /* nodes in this subtree once variables are expanded */
    uint32_t depth; /* depth of this subtree once variables are expanded */
    union {
        bool b;
        int64_t i;
        double d;
        lt__cidr_t cidr;
        const lt__tz_t *tz;
    } u;
};

/* The compiled node. Kids are contiguous, so a node needs one pointer for them. */
typedef struct lt__node lt__node_t;
struct lt__node {
    uint8_t op;
    uint8_t fn;
    uint8_t slot;
    uint32_t nkids;
    const lt__node_t *kids;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            const char *p;
            size_t n;
        } s;
        lt__cidr_t cidr;
        const lt__tz_t *tz;
    } u;
};

struct lt_policy_expr {
    size_t nnodes;
    const lt__node_t *root;
    /* followed in the same allocation by the nodes and the string bytes */
};

/* A bump allocator (one compilation's AST nodes, kid arrays and decoded strings; the
 * engine's snapshot): memory is not zeroed, and is all freed at once. Start from {NULL}. */
typedef struct lt__chunk lt__chunk_t;
typedef struct lt__arena {
    lt__chunk_t *head;
} lt__arena_t;
void *lt__arena_alloc(lt__arena_t *a, size_t n);
void lt__arena_free(lt__arena_t *a);

/* Where one source is being parsed, for error reports. */
typedef struct lt__src {
    const char *p;
    size_t n;
    const char *var; /* NULL for the condition, else the variable's name */
} lt__src_t;

/*
 * Parses one source into an AST in `a`.
 * @return 0, LT_EINVAL or LT_ERANGE (err filled), LT_ENOMEM.
 */
int lt__parse(lt__arena_t *a, const lt__src_t *src, lt__ast_t **out, lt_policy_error_t *err);

/*
 * Resolves and type-checks `root` (parsed from `src`), expanding variables from `vars`
 * (parsed into `a` on first use). `want_bool`: the result must not be known non-boolean.
 * @return 0, LT_EINVAL/LT_ERANGE (err filled), LT_ENOMEM.
 */
int lt__check(lt__arena_t *a, const lt__src_t *src, lt__ast_t **root, const lt_policy_vars_t *vars, bool want_bool,
              lt_policy_error_t *err);

/*
 * Checks variable `i` of `vars` as lt_policy_vars_check checks each (so callers can report
 * every broken variable, not only the first). @return as lt_policy_vars_check.
 */
int lt__var_check(const lt_policy_vars_t *vars, size_t i, lt_policy_error_t *err);

void lt__error(lt_policy_error_t *err, const lt__src_t *src, int line, int col, const char *fmt, ...)
    LT_PRINTF(5, 6);
void lt__verror(lt_policy_error_t *err, const lt__src_t *src, int line, int col, const char *fmt, va_list ap)
    LT_PRINTF(5, 0);

#endif
