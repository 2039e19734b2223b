/*
 * hasher.c: argon2 on a thread pool (see hasher.h for the contract).
 *
 * Shape:
 *   - `lt_hasher_t` owns `threads` pthreads and one FIFO of jobs (h->fifo), guarded by
 *     h->mutex with h->cond to wake the threads. Submit refuses with LT_EOVERLOAD when
 *     `queue_max` jobs wait; running jobs do not count.
 *   - `lt_hasher_port_t` belongs to one worker loop. It owns an h2o multithread queue on
 *     that loop with one receiver: a hasher thread hands a finished job to the receiver,
 *     and the loop runs the job's callback on its own thread.
 *   - `lt_hasher_job_t` is one request, in one allocation with its copies of the password,
 *     the stored PHC string and the context. States (under h->mutex):
 *       QUEUED   in h->fifo and in port->jobs;
 *       RUNNING  taken by a hasher thread, still in port->jobs;
 *       DONE     handed to the port's receiver (h2o owns the link until dispatch).
 *
 * Cancellation and who frees a job (exactly one party, once):
 *   - QUEUED, cancelled (lt_hasher_cancel or port destroy, on the port's thread): unlinked
 *     and freed right there, without hashing; counted in `dropped`.
 *   - RUNNING, cancelled: marked; the hasher thread frees it when argon2 returns, and never
 *     hands it to the port.
 *   - DONE: the port frees it after dispatch (or without dispatch if it was marked
 *     cancelled meanwhile, or when the port is destroyed with results still waiting).
 *   - Jobs still queued when the hasher is destroyed are freed by lt_hasher_destroy.
 * A hasher thread hands a job to the receiver while it holds h->mutex. So once port destroy
 * has marked the port's jobs under that mutex, no send to its receiver is under way or can
 * start: the queue (and its eventfd, whose number the kernel may reuse) can go at once.
 *
 * Secrets: a job's password copy is wiped by the hasher thread as soon as argon2 (and the
 * check function) are done with it, and again when the job is freed (jobs dropped unrun).
 *
 * Stats: relaxed atomics; several threads write each counter, so increments are atomic
 * read-modify-writes (not LT_COUNTER_ADD, which assumes one writer).
 */
#include "crypto/hasher.h"

#include <argon2.h>
#include <assert.h>
#include <h2o/multithread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SALT_LEN 16
#define HASH_LEN 32
/* The dummy hash's password: 256 random bits nobody knows, discarded at once. */
#define DUMMY_PASSWORD_LEN 32
#define REASON_MAX 256
/* More threads than this is a configuration mistake, not a bigger machine. */
#define THREADS_MAX 256

/* Import bounds (hasher.h, lt_password_phc_check). m >= 8 * p is libargon2's own minimum
 * (2 * ARGON2_SYNC_POINTS blocks per lane); the upper bounds keep a hostile or mistaken
 * import from costing gigabytes or minutes per login. */
#define PHC_M_MIN 8
#define PHC_M_MAX 4194304
#define PHC_TP_MAX 64
#define PHC_SALT_MIN 8
#define PHC_HASH_MIN 16

#define STAT_INC(h, field) __atomic_fetch_add(&(h)->field, 1, __ATOMIC_RELAXED)

enum job_kind { JOB_VERIFY, JOB_HASH };
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct lt_hasher {
    lt_hasher_params_t params;
    int nthreads;
    size_t queue_max;
    lt_hasher_check_fn check;
    void *check_data;
    char *dummy_phc; /* read-only once threads run */

    pthread_mutex_t mutex;
    pthread_cond_t cond;
    h2o_linklist_t fifo; /* QUEUED jobs, oldest first */
    int stopping;
    pthread_t *tids;
    int nstarted;

    /* stats (relaxed atomics); nqueued is also only changed under mutex */
    size_t nqueued;
    int busy;
    uint64_t verifications, hashes, rejected, dropped;
};

struct lt_hasher_port {
    lt_hasher_t *h;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_linklist_t jobs; /* QUEUED and RUNNING jobs of this port, under h->mutex */
    int dispatching;     /* on_results is running (port thread only) */
};

struct lt_hasher_job {
    h2o_multithread_message_t msg; /* on the port's receiver once DONE */
    h2o_linklist_t qlink;          /* in h->fifo while QUEUED */
    h2o_linklist_t plink;          /* in port->jobs while QUEUED or RUNNING */
    lt_hasher_port_t *port;
    enum job_kind kind;
    enum job_state state; /* under h->mutex */
    int cancelled;        /* under h->mutex until DONE, then the port's thread only */
    int rehash;
    int phc_bad;          /* verify: the stored hash was too long to copy */
    char *password;       /* n bytes + NUL, inside this allocation; wiped */
    size_t n;
    char *phc_in;         /* verify: the stored hash; NULL for the dummy */
    char *context;        /* hash: for the check function; may be NULL */
    lt_hasher_cb cb;
    void *data;
    lt_hasher_result_t res;
    char reason[REASON_MAX];
    char phc_out[LT_PHC_MAX + 1];
};

/* ---- PHC strings -------------------------------------------------------------------- */

typedef struct {
    argon2_type type;
    uint32_t version;
    uint32_t m, t, p;
    size_t saltlen, hashlen;
} phc_t;

static int params_ok(const lt_hasher_params_t *p)
{
    return p->p >= 1 && p->p <= PHC_TP_MAX && p->t >= 1 && p->t <= PHC_TP_MAX && p->m_kib >= PHC_M_MIN &&
           p->m_kib <= PHC_M_MAX && p->m_kib >= 8 * p->p;
}

/* Decimal without sign or leading zeros, at most `max`. */
static const char *parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    const char *start = s;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9')
        return NULL;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return NULL;
        s++;
    }
    if (s == start)
        return NULL;
    *out = (uint32_t)v;
    return s;
}

static const char *expect(const char *s, const char *lit)
{
    size_t n = strlen(lit);
    return strncmp(s, lit, n) == 0 ? s + n : NULL;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * PHC's base64: standard alphabet, no padding, unused trailing bits zero (as libargon2's
 * decoder demands). @return the decoded length, or -1.
 */
static long b64_len(const char *s, size_t n)
{
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (b64_value(s[i]) < 0)
            return -1;
    if (n % 4 == 2 && (b64_value(s[n - 1]) & 0x0f) != 0)
        return -1;
    if (n % 4 == 3 && (b64_value(s[n - 1]) & 0x03) != 0)
        return -1;
    return (long)(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
}

/* `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (or argon2i, see hasher.h). @return 0 or LT_EINVAL. */
static int phc_parse(const char *phc, phc_t *out)
{
    const char *s, *salt, *dollar;
    long saltlen, hashlen;

    if (phc == NULL || strnlen(phc, LT_PHC_MAX + 1) > LT_PHC_MAX)
        return LT_EINVAL;
    if ((s = expect(phc, "$argon2id$")) != NULL)
        out->type = Argon2_id;
    else if ((s = expect(phc, "$argon2i$")) != NULL)
        out->type = Argon2_i;
    else
        return LT_EINVAL; /* argon2d (no side-channel resistance), anything else */
    if (s[0] == 'v' && s[1] == '=') {
        if ((s = parse_u32(s + 2, 0xff, &out->version)) == NULL || (s = expect(s, "$")) == NULL)
            return LT_EINVAL;
    } else {
        out->version = ARGON2_VERSION_10; /* libargon2 reads a missing v= as 1.0 */
    }
    /* argon2id only ever existed as 1.3; argon2i hashes from older systems may be 1.0 */
    if (out->version != ARGON2_VERSION_13 && !(out->type == Argon2_i && out->version == ARGON2_VERSION_10))
        return LT_EINVAL;
    if ((s = expect(s, "m=")) == NULL || (s = parse_u32(s, PHC_M_MAX, &out->m)) == NULL ||
        (s = expect(s, ",t=")) == NULL || (s = parse_u32(s, PHC_TP_MAX, &out->t)) == NULL ||
        (s = expect(s, ",p=")) == NULL || (s = parse_u32(s, PHC_TP_MAX, &out->p)) == NULL ||
        (s = expect(s, "$")) == NULL)
        return LT_EINVAL;
    if (out->m < PHC_M_MIN || out->t < 1 || out->p < 1 || out->m < 8 * out->p)
        return LT_EINVAL;
    salt = s;
    if ((dollar = strchr(salt, '$')) == NULL)
        return LT_EINVAL;
    saltlen = b64_len(salt, (size_t)(dollar - salt));
    hashlen = b64_len(dollar + 1, strlen(dollar + 1));
    if (saltlen < PHC_SALT_MIN || hashlen < PHC_HASH_MIN)
        return LT_EINVAL;
    out->saltlen = (size_t)saltlen;
    out->hashlen = (size_t)hashlen;
    return 0;
}

int lt_password_phc_check(const char *phc)
{
    phc_t ph;
    return phc_parse(phc, &ph);
}

int lt_password_needs_rehash(const char *phc, const lt_hasher_params_t *params)
{
    phc_t ph;
    if (phc_parse(phc, &ph) != 0)
        return 1;
    return ph.type != Argon2_id || ph.m != params->m_kib || ph.t != params->t || ph.p != params->p;
}

/* ---- blocking primitives ------------------------------------------------------------ */

static int map_argon2_error(int rc)
{
    switch (rc) {
    case ARGON2_MEMORY_ALLOCATION_ERROR:
        return LT_ENOMEM;
    case ARGON2_THREAD_FAIL:
        return LT_EIO;
    default:
        return LT_EINVAL;
    }
}

/* Hashes into `out` (cap >= LT_PHC_MAX + 1). Parameters already validated. */
static int hash_encoded(const lt_hasher_params_t *params, const char *password, size_t n, char *out, size_t cap)
{
    uint8_t salt[SALT_LEN];
    int rc;
    if (lt_random(salt, sizeof(salt)) != 0)
        return LT_EIO;
    /* hash == NULL: libargon2 only writes the encoded form */
    rc = argon2_hash(params->t, params->m_kib, params->p, password, n, salt, sizeof(salt), NULL, HASH_LEN, out, cap,
                     Argon2_id, ARGON2_VERSION_13);
    return rc == ARGON2_OK ? 0 : map_argon2_error(rc);
}

int lt_password_hash(const lt_hasher_params_t *params, const char *password, size_t n, char **out)
{
    char buf[LT_PHC_MAX + 1];
    int ret;
    if (params == NULL || out == NULL || !params_ok(params) || n > LT_PASSWORD_MAX || (password == NULL && n > 0))
        return LT_EINVAL;
    *out = NULL;
    if ((ret = hash_encoded(params, password != NULL ? password : "", n, buf, sizeof(buf))) != 0)
        return ret;
    if ((*out = strdup(buf)) == NULL)
        return LT_ENOMEM;
    return 0;
}

int lt_password_verify(const char *phc, const char *password, size_t n)
{
    phc_t ph;
    int rc;
    if (phc_parse(phc, &ph) != 0 || n > LT_PASSWORD_MAX || (password == NULL && n > 0))
        return LT_EINVAL;
    if (password == NULL)
        password = "";
    /* libargon2 compares the hashes in constant time */
    rc = ph.type == Argon2_id ? argon2id_verify(phc, password, n) : argon2i_verify(phc, password, n);
    if (rc == ARGON2_OK)
        return 1;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return 0;
    return map_argon2_error(rc);
}

/* ---- jobs --------------------------------------------------------------------------- */

static void job_free(lt_hasher_job_t *j)
{
    lt_wipe(j->password, j->n);
    free(j);
}

static void run_verify(lt_hasher_t *h, lt_hasher_job_t *j)
{
    const char *phc = j->phc_in != NULL ? j->phc_in : h->dummy_phc;
    int ret = j->phc_bad ? LT_EINVAL : lt_password_verify(phc, j->password, j->n);
    if (ret < 0) {
        j->res.err = ret;
        return;
    }
    STAT_INC(h, verifications);
    if (j->phc_in == NULL)
        return; /* the dummy never matches */
    j->res.match = ret;
    if (ret == 1 && lt_password_needs_rehash(phc, &h->params)) {
        j->res.needs_rehash = 1;
        /* A failed upgrade leaves res.phc NULL; the login itself still succeeds. */
        if (j->rehash && hash_encoded(&h->params, j->password, j->n, j->phc_out, sizeof(j->phc_out)) == 0) {
            STAT_INC(h, hashes);
            j->res.phc = j->phc_out;
        }
    }
}

static void run_hash(lt_hasher_t *h, lt_hasher_job_t *j)
{
    int ret;
    if (j->context != NULL && h->check != NULL) {
        j->reason[0] = '\0';
        if (h->check(j->password, j->n, j->context, j->reason, sizeof(j->reason), h->check_data) != 0) {
            j->res.rejected = 1;
            j->res.reason = j->reason[0] != '\0' ? j->reason : "The password is not acceptable.";
            return;
        }
    }
    if ((ret = hash_encoded(&h->params, j->password, j->n, j->phc_out, sizeof(j->phc_out))) != 0) {
        j->res.err = ret;
        return;
    }
    STAT_INC(h, hashes);
    j->res.phc = j->phc_out;
}

/* Added to the hasher threads' nice value. */
#define LT_HASHER_NICE 10

static void *hasher_main(void *arg)
{
    lt_hasher_t *h = arg;
    /* Below the event loops in priority (Linux: nice applies per thread): on a machine with
     * as many hasher threads as cores, a login flood must not delay the loops' wakeups, so
     * introspection and health checks keep their latency while passwords wait their turn. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), LT_HASHER_NICE) != 0)
        lt_log(LT_LOG_DEBUG, "hasher", "could not lower the hasher thread's priority");
    pthread_mutex_lock(&h->mutex);
    for (;;) {
        while (!h->stopping && h2o_linklist_is_empty(&h->fifo))
            pthread_cond_wait(&h->cond, &h->mutex);
        if (h->stopping)
            break;
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, qlink, h->fifo.next);
        h2o_linklist_unlink(&j->qlink);
        __atomic_store_n(&h->nqueued, h->nqueued - 1, __ATOMIC_RELAXED);
        j->state = JOB_RUNNING;
        __atomic_fetch_add(&h->busy, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&h->mutex);

        if (j->kind == JOB_VERIFY)
            run_verify(h, j);
        else
            run_hash(h, j);
        lt_wipe(j->password, j->n);

        pthread_mutex_lock(&h->mutex);
        __atomic_fetch_sub(&h->busy, 1, __ATOMIC_RELAXED);
        if (j->cancelled) {
            pthread_mutex_unlock(&h->mutex);
            job_free(j);
            pthread_mutex_lock(&h->mutex);
            continue;
        }
        j->state = JOB_DONE;
        h2o_linklist_unlink(&j->plink);
        /* under h->mutex: see the file comment on port destroy */
        h2o_multithread_send_message(&j->port->receiver, &j->msg);
    }
    pthread_mutex_unlock(&h->mutex);
    return NULL;
}

/* On the port's loop: run the callbacks of finished jobs. */
static void on_results(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    lt_hasher_port_t *p = H2O_STRUCT_FROM_MEMBER(lt_hasher_port_t, receiver, receiver);
    p->dispatching = 1;
    while (!h2o_linklist_is_empty(messages)) {
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, msg.link, messages->next);
        h2o_linklist_unlink(&j->msg.link);
        /* a callback earlier in this batch may have cancelled a later job */
        if (!j->cancelled)
            j->cb(&j->res, j->data);
        job_free(j);
    }
    p->dispatching = 0;
}

static int submit(lt_hasher_port_t *p, enum job_kind kind, const char *phc, const char *password, size_t n, int rehash,
                  const char *context, lt_hasher_cb cb, void *data, lt_hasher_job_t **out)
{
    lt_hasher_t *h;
    lt_hasher_job_t *j;
    size_t phclen = 0, ctxlen = 0;
    int phc_bad = 0;
    char *tail;

    if (out != NULL)
        *out = NULL;
    if (p == NULL || cb == NULL || n > LT_PASSWORD_MAX || (password == NULL && n > 0))
        return LT_EINVAL;
    h = p->h;
    if (phc != NULL && (phclen = strnlen(phc, LT_PHC_MAX + 1)) > LT_PHC_MAX) {
        phc_bad = 1; /* reported as a malformed hash in the callback, like any other */
        phclen = 0;
    }
    if (context != NULL)
        ctxlen = strlen(context);
    if ((j = calloc(1, sizeof(*j) + n + 1 + phclen + 1 + ctxlen + 1)) == NULL)
        return LT_ENOMEM;
    tail = (char *)(j + 1);
    j->password = tail;
    if (n > 0)
        memcpy(j->password, password, n);
    j->n = n;
    tail += n + 1;
    if (phc != NULL) {
        j->phc_in = tail;
        memcpy(j->phc_in, phc, phclen);
        tail += phclen + 1;
    }
    if (context != NULL) {
        j->context = tail;
        memcpy(j->context, context, ctxlen);
    }
    j->port = p;
    j->kind = kind;
    j->rehash = rehash;
    j->phc_bad = phc_bad;
    j->cb = cb;
    j->data = data;

    pthread_mutex_lock(&h->mutex);
    if (h->nqueued >= h->queue_max) {
        pthread_mutex_unlock(&h->mutex);
        STAT_INC(h, rejected);
        job_free(j);
        return LT_EOVERLOAD;
    }
    j->state = JOB_QUEUED;
    h2o_linklist_insert(&h->fifo, &j->qlink);
    h2o_linklist_insert(&p->jobs, &j->plink);
    __atomic_store_n(&h->nqueued, h->nqueued + 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mutex);
    if (out != NULL)
        *out = j;
    return 0;
}

int lt_hasher_verify(lt_hasher_port_t *p, const char *phc, const char *password, size_t n, int rehash, lt_hasher_cb cb,
                     void *data, lt_hasher_job_t **job)
{
    return submit(p, JOB_VERIFY, phc, password, n, rehash, NULL, cb, data, job);
}

int lt_hasher_hash(lt_hasher_port_t *p, const char *password, size_t n, const char *context, lt_hasher_cb cb, void *data,
                   lt_hasher_job_t **job)
{
    return submit(p, JOB_HASH, NULL, password, n, 0, context, cb, data, job);
}

void lt_hasher_cancel(lt_hasher_job_t *j)
{
    lt_hasher_t *h;
    int drop = 0;
    if (j == NULL)
        return;
    h = j->port->h;
    pthread_mutex_lock(&h->mutex);
    switch (j->state) {
    case JOB_QUEUED:
        h2o_linklist_unlink(&j->qlink);
        h2o_linklist_unlink(&j->plink);
        __atomic_store_n(&h->nqueued, h->nqueued - 1, __ATOMIC_RELAXED);
        drop = 1;
        break;
    case JOB_RUNNING:
        h2o_linklist_unlink(&j->plink); /* the hasher thread frees it */
        j->cancelled = 1;
        break;
    case JOB_DONE:
        j->cancelled = 1; /* on_results frees it */
        break;
    }
    pthread_mutex_unlock(&h->mutex);
    if (drop) {
        STAT_INC(h, dropped);
        job_free(j);
    }
}

/* ---- ports -------------------------------------------------------------------------- */

int lt_hasher_port_create(lt_hasher_t *h, struct st_h2o_evloop_t *loop, lt_hasher_port_t **out)
{
    lt_hasher_port_t *p;
    if (h == NULL || loop == NULL || out == NULL)
        return LT_EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return LT_ENOMEM;
    p->h = h;
    h2o_linklist_init_anchor(&p->jobs);
    p->queue = h2o_multithread_create_queue(loop); /* h2o aborts rather than fail */
    h2o_multithread_register_receiver(p->queue, &p->receiver, on_results);
    *out = p;
    return 0;
}

void lt_hasher_port_destroy(lt_hasher_port_t **pp)
{
    lt_hasher_port_t *p = *pp;
    lt_hasher_t *h;
    h2o_linklist_t drop;
    uint64_t ndropped = 0;

    if (p == NULL)
        return;
    *pp = NULL;
    /* on_results would go on walking this port's messages and h2o its queue */
    assert(!p->dispatching && "lt_hasher_port_destroy from inside the port's callback");
    h = p->h;
    h2o_linklist_init_anchor(&drop);
    pthread_mutex_lock(&h->mutex);
    while (!h2o_linklist_is_empty(&p->jobs)) {
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, plink, p->jobs.next);
        h2o_linklist_unlink(&j->plink);
        if (j->state == JOB_QUEUED) {
            h2o_linklist_unlink(&j->qlink);
            __atomic_store_n(&h->nqueued, h->nqueued - 1, __ATOMIC_RELAXED);
            h2o_linklist_insert(&drop, &j->qlink);
            ndropped++;
        } else {
            j->cancelled = 1; /* RUNNING: the hasher thread frees it */
        }
    }
    pthread_mutex_unlock(&h->mutex);
    while (!h2o_linklist_is_empty(&drop)) {
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, qlink, drop.next);
        h2o_linklist_unlink(&j->qlink);
        job_free(j);
    }
    if (ndropped > 0)
        __atomic_fetch_add(&h->dropped, ndropped, __ATOMIC_RELAXED);
    /*
     * Results already handed over wait in the receiver; nothing is sent to it any more
     * (every send happens under h->mutex, for jobs not cancelled). h2o asserts the receiver
     * is empty when it is unregistered.
     */
    while (!h2o_linklist_is_empty(&p->receiver._messages)) {
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, msg.link, p->receiver._messages.next);
        h2o_linklist_unlink(&j->msg.link);
        job_free(j);
    }
    h2o_multithread_unregister_receiver(p->queue, &p->receiver);
    h2o_multithread_destroy_queue(p->queue);
    /* h2o 2.2's evloop flavour of h2o_multithread_destroy_queue closes the queue's socket
     * (released on the loop's next turn) but never frees the queue itself */
    free(p->queue);
    free(p);
}

/* ---- the pool ----------------------------------------------------------------------- */

static void stop_threads(lt_hasher_t *h)
{
    pthread_mutex_lock(&h->mutex);
    h->stopping = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mutex);
    for (int i = 0; i < h->nstarted; i++)
        pthread_join(h->tids[i], NULL);
    h->nstarted = 0;
}

int lt_hasher_create(const lt_hasher_options_t *o, lt_hasher_t **out)
{
    lt_hasher_t *h = NULL;
    uint8_t pw[DUMMY_PASSWORD_LEN];
    int ret = LT_EINVAL;

    if (out == NULL)
        return LT_EINVAL;
    *out = NULL;
    if (o == NULL || !params_ok(&o->params) || o->threads < 1 || o->threads > THREADS_MAX || o->queue_max < 1)
        return LT_EINVAL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return LT_ENOMEM;
    h->params = o->params;
    h->nthreads = o->threads;
    h->queue_max = o->queue_max;
    h->check = o->check;
    h->check_data = o->check_data;
    h2o_linklist_init_anchor(&h->fifo);
    pthread_mutex_init(&h->mutex, NULL);
    pthread_cond_init(&h->cond, NULL);

    if ((ret = lt_random(pw, sizeof(pw))) != 0)
        goto fail;
    ret = lt_password_hash(&h->params, (const char *)pw, sizeof(pw), &h->dummy_phc);
    lt_wipe(pw, sizeof(pw));
    if (ret != 0)
        goto fail;
    if ((h->tids = calloc((size_t)h->nthreads, sizeof(*h->tids))) == NULL) {
        ret = LT_ENOMEM;
        goto fail;
    }
    for (; h->nstarted < h->nthreads; h->nstarted++) {
        if (pthread_create(&h->tids[h->nstarted], NULL, hasher_main, h) != 0) {
            ret = LT_EIO;
            goto fail;
        }
    }
    *out = h;
    return 0;
fail:
    lt_hasher_destroy(&h);
    return ret;
}

void lt_hasher_destroy(lt_hasher_t **ph)
{
    lt_hasher_t *h = *ph;
    if (h == NULL)
        return;
    *ph = NULL;
    stop_threads(h);
    /* Queued jobs left (their ports should be gone already: see hasher.h). */
    while (!h2o_linklist_is_empty(&h->fifo)) {
        lt_hasher_job_t *j = H2O_STRUCT_FROM_MEMBER(lt_hasher_job_t, qlink, h->fifo.next);
        h2o_linklist_unlink(&j->qlink);
        h2o_linklist_unlink(&j->plink);
        job_free(j);
    }
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mutex);
    free(h->dummy_phc);
    free(h->tids);
    free(h);
}

void lt_hasher_get_stats(const lt_hasher_t *h, lt_hasher_stats_t *out)
{
    out->verifications = __atomic_load_n(&h->verifications, __ATOMIC_RELAXED);
    out->hashes = __atomic_load_n(&h->hashes, __ATOMIC_RELAXED);
    out->rejected = __atomic_load_n(&h->rejected, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&h->dropped, __ATOMIC_RELAXED);
    out->queued = (int)__atomic_load_n(&h->nqueued, __ATOMIC_RELAXED);
    out->busy = __atomic_load_n(&h->busy, __ATOMIC_RELAXED);
    out->threads = h->nthreads;
    out->queue_max = h->queue_max;
}
