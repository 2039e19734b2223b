"""Smoke tests: the harness itself (fixtures, clients, teardown) and the ops endpoints."""

import signal

import latchtest as lt


def test_healthz_h2c(latchd):
    with latchd.h2c() as c:
        r = c.get("/healthz")
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"


def test_healthz_tls_alpn_h2(latchd):
    with latchd.tls() as c:
        r = c.get("/healthz")
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"  # ALPN picked h2


def test_healthz_tls_http1_fallback(latchd):
    with latchd.http1(tls=True) as c:
        r = c.get("/healthz")
    assert r.status_code == 200
    assert r.http_version == "HTTP/1.1"


def test_readyz_with_database(latchd):
    with latchd.h2c() as c:
        r = c.get("/readyz")
    assert r.status_code == 200


def test_factory_instance_stops_cleanly(latchd_factory):
    d = latchd_factory(workers=1, listen="")
    assert d.https_url is None
    with d.h2c() as c:
        assert c.get("/healthz").status_code == 200
    assert d.stop(signal.SIGTERM) == 0
    assert not d.running
    if lt.SANITIZED:
        assert d.new_sanitizer_reports() == []


def test_factory_restart_same_config(latchd_factory):
    d = latchd_factory(workers=1)
    assert d.stop() == 0
    d.start()
    with d.tls() as c:
        assert c.get("/healthz").status_code == 200
