/* Unit tests for lib/http/logwriter: order, completeness, and dropping instead of blocking. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/logwriter.h"

static void submit_line(lt_logwriter_t *lw, int i)
{
    lt_buf_t b = LT_BUF_INIT;
    assert_int_equal(lt_buf_appendf(&b, "line %06d\n", i), 0);
    lt_logwriter_submit(lw, &b);
    assert_int_equal(b.len, 0);
    lt_buf_free(&b);
}

static void test_writes_everything_in_order(void **state)
{
    (void)state;
    char path[] = "/tmp/latch-logwriter-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    lt_logwriter_t *lw;
    assert_int_equal(lt_logwriter_create(dup(fd), 1 << 20, &lw), 0);
    for (int i = 0; i < 5000; i++)
        submit_line(lw, i);
    lt_logwriter_destroy(&lw);
    assert_null(lw);

    FILE *f = fdopen(fd, "r");
    assert_non_null(f);
    rewind(f);
    char line[64];
    int i = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char want[64];
        snprintf(want, sizeof(want), "line %06d\n", i++);
        assert_string_equal(line, want);
    }
    assert_int_equal(i, 5000);
    fclose(f);
    unlink(path);
}

static void test_stalled_sink_drops_instead_of_blocking(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    lt_logwriter_t *lw;
    /* nobody reads the pipe: the writer thread blocks once the pipe buffer is full */
    assert_int_equal(lt_logwriter_create(p[1], 64 * 1024, &lw), 0);
    lt_buf_t b = LT_BUF_INIT;
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    for (int i = 0; i < 200; i++) { /* 800 KiB: far more than pipe + queue hold */
        assert_int_equal(lt_buf_append(&b, chunk, sizeof(chunk)), 0);
        lt_logwriter_submit(lw, &b); /* must return: this test hangs if it blocks */
        assert_int_equal(b.len, 0);
    }
    lt_buf_free(&b);
    assert_true(lt_logwriter_dropped(lw) > 0);
    assert_int_equal(lt_logwriter_dropped(lw) % sizeof(chunk), 0); /* whole buffers only */
    /* drain the pipe so the writer can finish */
    int flags = fcntl(p[0], F_GETFL);
    assert_int_equal(fcntl(p[0], F_SETFL, flags | O_NONBLOCK), 0);
    size_t got = 0;
    for (int idle = 0; idle < 200;) {
        ssize_t n = read(p[0], chunk, sizeof(chunk));
        if (n > 0) {
            got += (size_t)n;
            idle = 0;
        } else {
            usleep(1000);
            idle++;
        }
    }
    uint64_t dropped = lt_logwriter_dropped(lw);
    lt_logwriter_destroy(&lw);
    ssize_t n;
    while ((n = read(p[0], chunk, sizeof(chunk))) > 0)
        got += (size_t)n;
    assert_int_equal(got + dropped, 200 * sizeof(chunk));
    close(p[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_everything_in_order),
        cmocka_unit_test(test_stalled_sink_drops_instead_of_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
