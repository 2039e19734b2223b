/*
 * store internals shared by store.c, listener.c and migrate.c (lt__ prefix: not for other
 * modules).
 */
#ifndef LT_STORE_INTERNAL_H
#define LT_STORE_INTERNAL_H

#include <stddef.h>

/* libpq messages end in "\n" and may span lines; logs want one line. Returns `buf`. */
const char *lt__store_one_line(char *buf, size_t len, const char *msg);

#endif
