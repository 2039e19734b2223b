/*
 * test_server: the HTTP server's life cycle across threads (no HTTP: the requests are
 * covered by tests/integration). Workers listen on an ephemeral cleartext port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/router.h"
#include "http/server.h"

typedef struct app_state {
    int inits;      /* atomic */
    int finis;      /* atomic */
    int notes;      /* atomic: on_notify calls */
    int after_fini; /* atomic: on_notify calls on a finalised worker */
    int fail_id;    /* worker_init fails for this worker (-1: none) */
} app_state_t;

typedef struct worker_app {
    app_state_t *st;
    int finalised;
} worker_app_t;

static int app_init(int id, struct st_h2o_evloop_t *loop, void **app, void *data)
{
    app_state_t *st = data;
    (void)loop;
    if (id == st->fail_id)
        return LT_EIO;
    worker_app_t *w = calloc(1, sizeof(*w)); /* not test_calloc: cmocka's allocator is not thread-safe */
    w->st = st;
    *app = w;
    __atomic_add_fetch(&st->inits, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void app_fini(void *app, void *data)
{
    app_state_t *st = data;
    __atomic_add_fetch(&st->finis, 1, __ATOMIC_SEQ_CST);
    free(app);
}

static void app_notify(void *app, const char *channel, const char *payload, void *data)
{
    app_state_t *st = data;
    worker_app_t *w = app;
    (void)channel;
    (void)payload;
    if (w == NULL || w->st != st)
        __atomic_add_fetch(&st->after_fini, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&st->notes, 1, __ATOMIC_SEQ_CST);
}

static lt_http_server_t *server_new(app_state_t *st, int workers)
{
    lt_router_t *router = NULL;
    lt_http_server_t *s = NULL;
    char err[256];
    lt_http_app_t app = {.worker_init = app_init, .worker_fini = app_fini, .on_notify = app_notify, .data = st};
    lt_http_options_t o = {
        .workers = workers,
        .listen_h2c = "127.0.0.1:0",
        .max_body_bytes = 1024,
        .max_request_bytes = 4096,
        .max_json_depth = 8,
        .access_log = "off",
        .shutdown_timeout_ms = 1000,
    };
    assert_int_equal(lt_router_create(&router), 0);
    if (lt_http_server_create(&o, router, &app, &s, err, sizeof(err)) != 0)
        fail_msg("lt_http_server_create: %s", err);
    return s;
}

typedef struct broadcaster {
    lt_http_server_t *s;
    int stop; /* atomic */
    int sent; /* atomic */
} broadcaster_t;

static void *broadcast_main(void *arg)
{
    broadcaster_t *b = arg;
    while (!__atomic_load_n(&b->stop, __ATOMIC_SEQ_CST)) {
        lt_http_server_broadcast(b->s, "chan", "payload");
        __atomic_add_fetch(&b->sent, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/*
 * Regression: broadcasts racing the stop reached workers that had left their loop (the
 * receiver still holding messages at h2o_multithread_unregister_receiver: an assertion
 * abort; or a freed queue: use after free) and notifications reached an application whose
 * worker state was already finalised. Now they are dropped once a worker stops receiving.
 */
static void test_broadcast_during_stop(void **state)
{
    (void)state;
    app_state_t st = {.fail_id = -1};
    broadcaster_t b = {0};
    pthread_t th;
    lt_http_server_t *s = server_new(&st, 4);
    b.s = s;
    assert_int_equal(lt_http_server_start(s), 0);
    assert_int_equal(pthread_create(&th, NULL, broadcast_main, &b), 0);
    while (__atomic_load_n(&b.sent, __ATOMIC_SEQ_CST) < 100)
        usleep(1000);
    lt_http_server_stop(s); /* broadcasts keep coming during and after the stop */
    usleep(20000);
    __atomic_store_n(&b.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    assert_true(__atomic_load_n(&st.notes, __ATOMIC_SEQ_CST) > 0);
    assert_int_equal(__atomic_load_n(&st.after_fini, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(st.inits, 4);
    assert_int_equal(st.finis, 4);
    lt_http_server_broadcast(s, "chan", "late"); /* after the stop: a no-op */
    lt_http_server_destroy(&s);
    assert_null(s);
}

/* Start, stop and destroy with nothing in between, repeatedly (the stop barrier and the
 * teardown of idle workers). */
static void test_start_stop_cycles(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        app_state_t st = {.fail_id = -1};
        lt_http_server_t *s = server_new(&st, 3);
        assert_int_equal(lt_http_server_start(s), 0);
        lt_http_server_broadcast(s, "chan", "x");
        lt_http_server_stop(s);
        lt_http_server_destroy(&s);
        assert_int_equal(st.inits, 3);
        assert_int_equal(st.finis, 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_during_stop),
        cmocka_unit_test(test_start_stop_cycles),
    };
    lt_log_set_level(LT_LOG_ERROR);
    return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
