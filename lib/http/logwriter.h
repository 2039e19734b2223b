/*
 * logwriter: writes log lines to a file descriptor from a thread of its own.
 *
 * Workers must never block on a slow log sink (a stalled stdout pipe, a busy journald, a
 * full disk). They hand whole buffers of lines to the writer, which queues them up to a
 * byte bound and writes them in order; past the bound a buffer is dropped and counted
 * instead of waiting. One writer serialises all workers, so lines never interleave.
 *
 * Threading: lt_logwriter_submit and lt_logwriter_dropped from any thread; create and
 * destroy from one thread, after/before every submitter.
 */
#ifndef LT_HTTP_LOGWRITER_H
#define LT_HTTP_LOGWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct lt_logwriter lt_logwriter_t;

/** Starts the writer thread; takes ownership of `fd`. @return 0, LT_ENOMEM or LT_EIO. */
int lt_logwriter_create(int fd, size_t max_pending_bytes, lt_logwriter_t **out) LT_MUSTCHECK;

/* Takes the contents of `buf` (leaving it empty); never waits for I/O. */
void lt_logwriter_submit(lt_logwriter_t *lw, lt_buf_t *buf);

/* Bytes dropped because the queue was over its bound. */
uint64_t lt_logwriter_dropped(const lt_logwriter_t *lw);

/* Writes what is queued (waiting at most a few seconds for a stalled sink), stops the
 * thread, closes the fd; sets *lw = NULL. */
void lt_logwriter_destroy(lt_logwriter_t **lw);

#endif
