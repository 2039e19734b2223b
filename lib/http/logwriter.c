/*
 * logwriter: see logwriter.h. A mutex-protected FIFO of buffers and a condition variable;
 * submitters hold the lock only to link a node.
 */
#include "http/logwriter.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long destroy waits for the queued lines to be written. */
#define DESTROY_WAIT_S 5

struct node {
    struct node *next;
    char *data;
    size_t len;
};

struct lt_logwriter {
    int fd;
    size_t max_pending;
    pthread_t tid;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct node *head, **tail;
    size_t pending;
    int stop;
    uint64_t dropped;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the sink is gone or full: nothing better to do than lose the lines */
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg)
{
    lt_logwriter_t *lw = arg;
    pthread_mutex_lock(&lw->mutex);
    for (;;) {
        while (lw->head == NULL && !lw->stop)
            pthread_cond_wait(&lw->cond, &lw->mutex);
        if (lw->head == NULL)
            break; /* stop requested and everything written */
        struct node *batch = lw->head;
        lw->head = NULL;
        lw->tail = &lw->head;
        lw->pending = 0;
        pthread_mutex_unlock(&lw->mutex);
        while (batch != NULL) {
            struct node *n = batch;
            batch = n->next;
            write_all(lw->fd, n->data, n->len);
            free(n->data);
            free(n);
        }
        pthread_mutex_lock(&lw->mutex);
    }
    pthread_mutex_unlock(&lw->mutex);
    return NULL;
}

int lt_logwriter_create(int fd, size_t max_pending_bytes, lt_logwriter_t **out)
{
    lt_logwriter_t *lw = calloc(1, sizeof(*lw));
    if (lw == NULL) {
        close(fd);
        return LT_ENOMEM;
    }
    lw->fd = fd;
    lw->max_pending = max_pending_bytes;
    lw->tail = &lw->head;
    pthread_mutex_init(&lw->mutex, NULL);
    pthread_cond_init(&lw->cond, NULL);
    if (pthread_create(&lw->tid, NULL, writer_main, lw) != 0) {
        pthread_mutex_destroy(&lw->mutex);
        pthread_cond_destroy(&lw->cond);
        close(fd);
        free(lw);
        return LT_EIO;
    }
    *out = lw;
    return 0;
}

void lt_logwriter_submit(lt_logwriter_t *lw, lt_buf_t *buf)
{
    struct node *n = NULL;
    if (buf->len == 0)
        return;
    if ((n = malloc(sizeof(*n))) == NULL)
        goto drop;
    n->next = NULL;
    n->data = buf->base;
    n->len = buf->len;
    pthread_mutex_lock(&lw->mutex);
    if (lw->pending + n->len > lw->max_pending) {
        pthread_mutex_unlock(&lw->mutex);
        free(n);
        goto drop;
    }
    *lw->tail = n;
    lw->tail = &n->next;
    lw->pending += n->len;
    pthread_cond_signal(&lw->cond);
    pthread_mutex_unlock(&lw->mutex);
    *buf = (lt_buf_t)LT_BUF_INIT; /* the memory now belongs to the writer */
    return;
drop:
    __atomic_fetch_add(&lw->dropped, buf->len, __ATOMIC_RELAXED);
    buf->len = 0; /* keep the allocation for the next lines */
}

uint64_t lt_logwriter_dropped(const lt_logwriter_t *lw)
{
    return __atomic_load_n(&lw->dropped, __ATOMIC_RELAXED);
}

void lt_logwriter_destroy(lt_logwriter_t **plw)
{
    lt_logwriter_t *lw = *plw;
    if (lw == NULL)
        return;
    pthread_mutex_lock(&lw->mutex);
    lw->stop = 1;
    pthread_cond_signal(&lw->cond);
    pthread_mutex_unlock(&lw->mutex);
    /* A sink that stays stalled must not hold the process hostage at exit: give the last
     * lines a bounded time, then leave the thread (and its memory) to the process exit. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += DESTROY_WAIT_S;
    if (pthread_timedjoin_np(lw->tid, NULL, &deadline) != 0) {
        lt_log(LT_LOG_WARN, "http", "access log sink stalled: abandoning its last lines at exit");
        *plw = NULL;
        return;
    }
    pthread_mutex_destroy(&lw->mutex);
    pthread_cond_destroy(&lw->cond);
    close(lw->fd);
    free(lw);
    *plw = NULL;
}
