/* Unit tests for lib/http/h2guard: the per-connection frame budgets (lt_h2guard_account). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/h2guard.h"

enum { DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PING = 6, WINDOW_UPDATE = 8 };

typedef struct {
    uint8_t b[9 + 64];
    size_t len;
} frame_t;

static frame_t frame(uint8_t type, uint8_t flags, uint32_t sid, const void *payload, size_t n)
{
    frame_t f = {.len = 9 + n};
    f.b[0] = (uint8_t)(n >> 16);
    f.b[1] = (uint8_t)(n >> 8);
    f.b[2] = (uint8_t)n;
    f.b[3] = type;
    f.b[4] = flags;
    f.b[5] = (uint8_t)(sid >> 24);
    f.b[6] = (uint8_t)(sid >> 16);
    f.b[7] = (uint8_t)(sid >> 8);
    f.b[8] = (uint8_t)sid;
    if (n != 0)
        memcpy(f.b + 9, payload, n);
    return f;
}

static const uint8_t BLOCK[] = {0x82, 0x86, 0x84, 0x01, 0x01, 'x'};
static const uint8_t CODE[4] = {0, 0, 0, 8};
static const uint8_t OPAQUE[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static lt_h2guard_reason_t feed(lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim, frame_t fr, uint64_t now,
                                uint64_t turn)
{
    return lt_h2guard_account(f, lim, fr.b, fr.len, now, turn);
}

static lt_h2guard_reason_t request(lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim, uint32_t sid, uint64_t now,
                                   uint64_t turn)
{
    return feed(f, lim, frame(HEADERS, 0x5, sid, BLOCK, sizeof(BLOCK)), now, turn);
}

static lt_h2guard_reason_t reset(lt_h2guard_frames_t *f, const lt_h2guard_limits_t *lim, uint32_t sid, uint64_t now,
                                 uint64_t turn)
{
    return feed(f, lim, frame(RST_STREAM, 0, sid, CODE, 4), now, turn);
}

static void test_defaults(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    assert_int_equal(lim.window_ms, 10000);
    assert_int_equal(lim.max_resets, 200);
    assert_int_equal(lim.max_pings, 100);
    assert_int_equal(lim.max_settings, 100);
    assert_int_equal(lim.max_control, 1000);
    assert_int_equal(lim.max_streams_per_turn, 200);
    assert_int_equal(lim.stall_ms, 10000);
    assert_string_equal(lt_h2guard_reason_name(LT_H2G_RAPID_RESET), "rapid_reset");
    assert_string_equal(lt_h2guard_reason_name(LT_H2G_WRITE_STALL), "write_stall");
    assert_string_equal(lt_h2guard_reason_name((lt_h2guard_reason_t)99), "unknown");
}

/* The attack as sent: HEADERS then RST_STREAM, back to back, all read in one turn. */
static void test_rapid_reset_in_one_read(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    uint32_t sid = 1;
    lt_h2guard_reason_t r = LT_H2G_OK;
    int streams = 0;
    while (r == LT_H2G_OK && streams < 10000) {
        r = request(&f, &lim, sid, 1000, 7);
        if (r == LT_H2G_OK)
            r = reset(&f, &lim, sid, 1000, 7);
        sid += 2;
        streams++;
    }
    assert_int_equal(r, LT_H2G_RAPID_RESET);
    assert_int_equal(streams, 201); /* the 201st stream of the turn */
}

/* HEADERS pipelined past the concurrency limit without resets (h2o queues them) are not a
 * reset flood; the same batch reset in the same turn is, once half of it is reset. */
static void test_pipelined_streams_without_resets(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    for (uint32_t i = 0; i < 300; i++)
        assert_int_equal(request(&f, &lim, 1 + 2 * i, 1000, 7), LT_H2G_OK);
    lt_h2guard_reason_t r = LT_H2G_OK;
    uint32_t resets = 0;
    while (r == LT_H2G_OK && resets < 300) {
        r = reset(&f, &lim, 1 + 2 * resets, 1000, 7);
        resets++;
    }
    assert_int_equal(r, LT_H2G_RAPID_RESET);
    assert_int_equal(resets, 150);
}

/* The same attack paced to one stream per loop turn: the reset budget catches it. */
static void test_rapid_reset_one_stream_per_turn(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    lt_h2guard_reason_t r = LT_H2G_OK;
    int streams = 0;
    for (uint32_t sid = 1; r == LT_H2G_OK && streams < 10000; sid += 2, streams++) {
        uint64_t now = 1000 + (uint64_t)streams; /* 1000 streams per second */
        r = request(&f, &lim, sid, now, (uint64_t)streams);
        if (r == LT_H2G_OK)
            r = reset(&f, &lim, sid, now, (uint64_t)streams);
    }
    assert_int_equal(r, LT_H2G_RAPID_RESET);
    /* resets > 200 + requests / 2 with resets == requests: the 401st */
    assert_int_equal(streams, 401);
}

/* A proxy with 100 concurrent streams per turn that cancels 2% of them: never closed. */
static void test_busy_client_with_some_cancels_is_fine(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    uint32_t sid = 1;
    for (uint64_t turn = 0; turn < 3000; turn++) { /* 300k requests over 30 s */
        uint64_t now = 1000 + turn * 10;
        for (int i = 0; i < 100; i++, sid += 2) {
            assert_int_equal(request(&f, &lim, sid, now, turn), LT_H2G_OK);
            if (i % 50 == 0)
                assert_int_equal(reset(&f, &lim, sid, now, turn), LT_H2G_OK);
        }
        /* and a connection-level WINDOW_UPDATE per turn, as clients reading bodies send */
        const uint8_t inc[4] = {0, 1, 0, 0};
        assert_int_equal(feed(&f, &lim, frame(WINDOW_UPDATE, 0, 0, inc, 4), now, turn), LT_H2G_OK);
        if (turn % 100 == 0)
            assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), now, turn), LT_H2G_OK);
    }
}

static void test_ping_flood(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 5000, (uint64_t)i), LT_H2G_OK);
    assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 5000, 100), LT_H2G_PING_FLOOD);
    assert_int_equal(lt_h2guard_estimate(&f, LT_H2G_C_PINGS, 5000, lim.window_ms), 101);
}

static void test_settings_flood_and_acks(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    const uint8_t one[6] = {0, 4, 0, 0, 0xff, 0xff};
    /* ACKs are not SETTINGS the server must apply: they go to the control budget */
    for (int i = 0; i < 500; i++)
        assert_int_equal(feed(&f, &lim, frame(SETTINGS, 0x1, 0, NULL, 0), 100, 0), LT_H2G_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(feed(&f, &lim, frame(SETTINGS, 0, 0, one, 6), 100, 0), LT_H2G_OK);
    assert_int_equal(feed(&f, &lim, frame(SETTINGS, 0, 0, one, 6), 100, 0), LT_H2G_SETTINGS_FLOOD);
}

/* Counts fade with the sliding window: what was spent comes back over the next window. */
static void test_window_slides(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 1000, 0), LT_H2G_OK);
    /* half a window later: all 100 still count */
    assert_int_equal(lt_h2guard_estimate(&f, LT_H2G_C_PINGS, 6000, lim.window_ms), 100);
    /* one and a half windows later: half of them */
    assert_int_equal(lt_h2guard_estimate(&f, LT_H2G_C_PINGS, 16000, lim.window_ms), 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 16000, 1), LT_H2G_OK);
    assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 16000, 1), LT_H2G_PING_FLOOD);
    /* two idle windows later: forgotten */
    assert_int_equal(lt_h2guard_estimate(&f, LT_H2G_C_PINGS, 60000, lim.window_ms), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 60000, 2), LT_H2G_OK);
}

static void test_control_frames(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    const uint8_t big[4] = {0, 0, 0x40, 0}, tiny[4] = {0, 0, 0, 1};
    const uint8_t prio[5] = {0, 0, 0, 0, 15};
    /* replenishing windows is never abuse */
    for (int i = 0; i < 5000; i++)
        assert_int_equal(feed(&f, &lim, frame(WINDOW_UPDATE, 0, 0, big, 4), 100, 0), LT_H2G_OK);
    /* tiny increments, PRIORITY and empty DATA are: 1000 per window */
    for (int i = 0; i < 400; i++)
        assert_int_equal(feed(&f, &lim, frame(WINDOW_UPDATE, 0, 1, tiny, 4), 100, 0), LT_H2G_OK);
    for (int i = 0; i < 400; i++)
        assert_int_equal(feed(&f, &lim, frame(PRIORITY, 0, 3, prio, 5), 100, 0), LT_H2G_OK);
    for (int i = 0; i < 200; i++)
        assert_int_equal(feed(&f, &lim, frame(DATA, 0, 1, NULL, 0), 100, 0), LT_H2G_OK);
    assert_int_equal(feed(&f, &lim, frame(DATA, 0, 1, NULL, 0), 100, 0), LT_H2G_CONTROL_FLOOD);

    /* ... plus two per request */
    lt_h2guard_frames_t g = {0};
    for (uint32_t i = 0; i < 100; i++)
        assert_int_equal(request(&g, &lim, 2 * i + 1, 100, i), LT_H2G_OK);
    for (int i = 0; i < 1200; i++)
        assert_int_equal(feed(&g, &lim, frame(PRIORITY, 0, 3, prio, 5), 100, 200), LT_H2G_OK);
    assert_int_equal(feed(&g, &lim, frame(PRIORITY, 0, 3, prio, 5), 100, 200), LT_H2G_CONTROL_FLOOD);
    /* a DATA frame with a body, or one that ends the stream, is not control */
    lt_h2guard_frames_t h = {0};
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(feed(&h, &lim, frame(DATA, 0x1, 1, NULL, 0), 100, 0), LT_H2G_OK);
        assert_int_equal(feed(&h, &lim, frame(DATA, 0, 1, "x", 1), 100, 0), LT_H2G_OK);
    }
}

static void test_zero_limits_turn_checks_off(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim = {.window_ms = 10000}; /* every limit 0 */
    lt_h2guard_frames_t f = {0};
    for (uint32_t sid = 1; sid < 20001; sid += 2) {
        assert_int_equal(request(&f, &lim, sid, 100, 0), LT_H2G_OK);
        assert_int_equal(reset(&f, &lim, sid, 100, 0), LT_H2G_OK);
        assert_int_equal(feed(&f, &lim, frame(PING, 0, 0, OPAQUE, 8), 100, 0), LT_H2G_OK);
    }
}

/* Only complete frames count: the same frame comes back whole with the next read. */
static void test_incomplete_frames_are_not_counted(void **state)
{
    (void)state;
    lt_h2guard_limits_t lim;
    lt_h2guard_limits_default(&lim);
    lt_h2guard_frames_t f = {0};
    frame_t p = frame(PING, 0, 0, OPAQUE, 8);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(lt_h2guard_account(&f, &lim, p.b, 5, 100, 0), LT_H2G_OK);
        assert_int_equal(lt_h2guard_account(&f, &lim, p.b, p.len - 1, 100, 0), LT_H2G_OK);
    }
    assert_int_equal(lt_h2guard_estimate(&f, LT_H2G_C_PINGS, 100, lim.window_ms), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rapid_reset_in_one_read),
        cmocka_unit_test(test_pipelined_streams_without_resets),
        cmocka_unit_test(test_rapid_reset_one_stream_per_turn),
        cmocka_unit_test(test_busy_client_with_some_cancels_is_fine),
        cmocka_unit_test(test_ping_flood),
        cmocka_unit_test(test_settings_flood_and_acks),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_control_frames),
        cmocka_unit_test(test_zero_limits_turn_checks_off),
        cmocka_unit_test(test_incomplete_frames_are_not_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
