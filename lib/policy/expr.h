/*
 * policy/expr: the condition language of policy rules (DESIGN.md, "Policy").
 *
 * A small, safe, CEL-like expression language over the request document:
 *
 *   roots       subject, resource, action, context (JSON objects given at evaluation),
 *               variables.NAME (named sub-expressions given at compile time), now
 *   paths       a.b.c, a["odd key"], list[0], a[expr]
 *   literals    "str" or 'str' (escapes \" \' \\ \/ \n \r \t \b \f \uXXXX), 42, 0x2a,
 *               1.5, 1e3, true, false, null, [1, "a", x]
 *   operators   by CEL precedence, loosest first:  ?:   ||   &&
 *               == != < <= > >= in   + -   * / %   ! - (unary)   . [] () (member, call)
 *   functions   has(path)            presence of the last key of a path
 *               size(x), x.size()    code points of a string, length of a list or object
 *               s.startsWith(p), s.endsWith(p), s.contains(p); list.contains(x)
 *               list.exists(x, pred), list.all(x, pred)   (objects iterate their keys)
 *               ip_in(ip, cidr)      cidr a string "10.0.0.0/8", "2001:db8::/32", a bare
 *                                    address, or a list of those; IPv4 addresses match
 *                                    IPv4-mapped IPv6 ranges and the other way round
 *               timestamp("2024-05-01T09:00:00Z") (RFC 3339) or timestamp(unix_seconds)
 *               duration("1h30m")    units h m s ms us; an optional leading '-'
 *               hour(ts, "Europe/Paris"), weekday(ts, "Europe/Paris") (0 = Sunday);
 *                                    the zone must be a literal IANA name
 *   comments    // to the end of the line
 * Strings hold no raw newline. ".5" is a number, so a field cannot start with a digit
 * (write a["1"]).
 *
 * Variables are closed expressions over the roots (they do not see the names bound by an
 * exists/all around their use), may be of any type, and are expanded in place at compile
 * time: a compiled condition does not depend on its variables afterwards.
 *
 * Arithmetic: + - * / % over ints (overflow and division by zero give no value), doubles,
 * and timestamps/durations (ts + dur, ts - dur, ts - ts, dur + dur, dur - dur). Ints and
 * doubles compare and combine with each other numerically. There is no string
 * concatenation (evaluation never allocates).
 *
 * Semantics. Evaluation computes either a value or "no value". A missing attribute gives no
 * value, and so does any operation on a type it does not accept at run time (a string
 * compared with `<` to an int, a field of a string, an int overflow). No value propagates
 * through every operator and function, including `!` and `==`/`!=`, except:
 *   - `a && b`: false if either side is false, whatever the other is; true if both are true;
 *     otherwise no value. `||` likewise with true. Both short-circuit left to right.
 *   - `has(a.b.c)`: true if `a.b` is an object with key `c`, false otherwise (also when `a.b`
 *     itself is missing).
 *   - `x in [..]`, list.exists/all: CEL's rules (a match or a true wins over no value).
 * `==` between two values of different types is false (`1 == "1"`); an int equals a double of
 * the same value. A condition whose result is not `true` (false, no value, a non-boolean) is
 * LT_POLICY_FALSE, so `resource.owner == subject.id` is false when either is missing and
 * `!(resource.owner == subject.id)` is false too: test presence with has().
 *
 * Timestamps and durations have microsecond precision. Time zones are read from TZif
 * files under /usr/share/zoneinfo (v2+ 64-bit data and the POSIX TZ footer for later times)
 * at compile time, cached for the life of the process, and never touched by the TZ
 * environment.
 *
 * The checker rejects at compile time: unknown identifiers, functions and methods, wrong
 * arity, operators on literal types they do not accept (`"a" < true`, `1 + "a"`,
 * `!"x"`), a condition whose type is known and not boolean, invalid literal CIDRs,
 * timestamps, durations and zones, has() on something other than a path, and references to
 * unknown or cyclic variables.
 *
 * Errors carry the 1-based line and column (in code points) of the offending token (for a
 * wrong argument, of its first token) and, when it lies in a variable, that variable's name.
 *
 * Limits: LT_POLICY_MAX_SOURCE bytes of source, LT_POLICY_MAX_NESTING levels of nested
 * parentheses, brackets, calls and unary/ternary operators in one source,
 * LT_POLICY_MAX_NODES nodes and LT_POLICY_MAX_DEPTH levels in the compiled tree (variables
 * expanded in place), and LT_POLICY_MAX_STEPS evaluation steps (each node visited and each
 * list element iterated is a step); running out of steps gives LT_POLICY_ERROR.
 *
 * Cost: a typical rule (a few paths, comparisons and a literal list) evaluates in about
 * 0.2 us on one core; a path segment is one json_object_getn.
 *
 * Ownership and threads: a compiled expression is immutable and owns everything it refers to
 * (time zones live in a process-wide cache); evaluate it from any number of threads at once.
 * Evaluation neither allocates nor locks; its values point into the input document and the
 * program. Compilation takes the zone cache's mutex when it loads a zone.
 */
#ifndef LT_POLICY_EXPR_H
#define LT_POLICY_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"

#define LT_POLICY_MAX_SOURCE 4096 /* bytes of one source (condition or variable) */
#define LT_POLICY_MAX_NESTING 32  /* syntactic nesting in one source */
#define LT_POLICY_MAX_NODES 1024  /* compiled nodes, variables expanded */
#define LT_POLICY_MAX_DEPTH 128   /* compiled tree depth, variables expanded: bounds the evaluator's stack */
#define LT_POLICY_MAX_STEPS 10000 /* default evaluation budget */
#define LT_POLICY_MAX_VAR_NAME 64

typedef struct lt_policy_expr lt_policy_expr_t;

/* A named sub-expression, referred to as `variables.NAME`. */
typedef struct lt_policy_var {
    const char *name; /* [A-Za-z_][A-Za-z0-9_]*, at most LT_POLICY_MAX_VAR_NAME bytes; the document
                       * reader also refuses the keywords true, false, null, in */
    const char *src;
    size_t len;
} lt_policy_var_t;

typedef struct lt_policy_vars {
    const lt_policy_var_t *items;
    size_t n;
} lt_policy_vars_t;

/* Where and why compilation failed. */
typedef struct lt_policy_error {
    int line; /* 1-based; 0 when the error has no position (a limit on the whole source) */
    int col;  /* 1-based, in code points */
    /* "" when the position is in the condition itself, else the name of the variable whose
     * source it is in. */
    char var[LT_POLICY_MAX_VAR_NAME + 1];
    char msg[160];
} lt_policy_error_t;

typedef enum {
    LT_POLICY_FALSE = 0, /* false, no value, or not a boolean */
    LT_POLICY_TRUE = 1,
    LT_POLICY_ERROR = 2, /* the evaluation ran out of steps: callers treat it as false (deny) */
} lt_policy_result_t;

/* The document one evaluation reads. Any root may be NULL (every path under it is missing). */
typedef struct lt_policy_input {
    const json_t *subject;
    const json_t *resource;
    const json_t *action;
    const json_t *context;
    int64_t now_us;     /* the value of `now`: microseconds since the epoch */
    uint32_t max_steps; /* 0: LT_POLICY_MAX_STEPS */
} lt_policy_input_t;

/**
 * Compiles a condition. `vars` (may be NULL) are the variables it may refer to; only those
 * it reaches are parsed, so check a variable set as a whole with lt_policy_vars_check.
 * @return 0, LT_EINVAL (a syntax, type or reference error, described in `err`), LT_ERANGE
 *         (a limit; described in `err`), LT_ENOMEM.
 * @note on success `*out` is the caller's; free it with lt_policy_expr_free.
 */
int lt_policy_expr_compile(const char *src, size_t n, const lt_policy_vars_t *vars, lt_policy_expr_t **out,
                           lt_policy_error_t *err) LT_MUSTCHECK;

/**
 * Compiles every variable of a set on its own (any type), so errors and cycles are reported
 * even in variables no condition uses yet.
 * @return as lt_policy_expr_compile; `err->var` names the failing variable.
 */
int lt_policy_vars_check(const lt_policy_vars_t *vars, lt_policy_error_t *err) LT_MUSTCHECK;

/**
 * Evaluates a compiled condition against one input.
 * @return 0 with `*res` set, or LT_EINVAL (a NULL argument).
 */
int lt_policy_expr_eval(const lt_policy_expr_t *e, const lt_policy_input_t *in, lt_policy_result_t *res) LT_MUSTCHECK;

/* Frees a compiled expression and sets the pointer to NULL; a no-op on NULL. */
void lt_policy_expr_free(lt_policy_expr_t **e);

/* The number of compiled nodes (for limits in callers and for tests). */
size_t lt_policy_expr_nodes(const lt_policy_expr_t *e);

#endif
