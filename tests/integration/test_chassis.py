"""Issue 2, the chassis: HTTP/2 on both listeners, routing errors, body limits, security
headers, request ids, readiness across a database outage, graceful stop, metrics,
notification fan-out, access log and configuration checks."""

import json
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

import latchtest as lt

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


def assert_problem(openapi, r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    openapi.validate(body, "Problem")
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:latch:problem:{code}"
    return body


def assert_security_headers(r, tls):
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, f"{name} on {r.request.url}"
    assert r.headers.get("cache-control") == "no-store"
    if tls:
        assert r.headers.get("strict-transport-security", "").startswith("max-age=")
    else:
        assert "strict-transport-security" not in r.headers
    assert r.headers.get("x-request-id")


# --- protocols --------------------------------------------------------------------------------


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)


def test_curl_tls_alpn_negotiates_h2(latchd):
    p = curl("--http2", "--cacert", str(latchd.cert), "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             latchd.https_url + "/healthz")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2 200"


def test_curl_h2c_prior_knowledge(latchd):
    p = curl("--http2-prior-knowledge", "-i", latchd.h2c_url + "/healthz")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("HTTP/2 200")
    assert json.loads(p.stdout.split("\n\n", 1)[1]) == {"status": "ok"}  # text mode folds CRLF


def test_curl_h2c_upgrade(latchd):
    p = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", latchd.h2c_url + "/healthz")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2 200"


def test_http1_on_cleartext_listener(latchd, openapi):
    with latchd.http1() as c:
        r = c.get("/healthz")
    assert r.http_version == "HTTP/1.1"
    assert r.status_code == 200
    openapi.validate(r.json(), "Health")


def test_many_streams_on_one_connection(latchd):
    with latchd.h2c() as c:
        for _ in range(200):
            assert c.get("/healthz").status_code == 200


# --- routing errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["h2c", "tls", "http1"])
def test_unknown_path_is_404_problem(latchd, openapi, client):
    with getattr(latchd, client)() as c:
        r = c.get("/no/such/thing")
    assert_problem(openapi, r, 404, "not_found")
    assert_security_headers(r, tls=client == "tls")


def test_trailing_slash_and_query_do_not_confuse_routing(latchd, openapi):
    with latchd.h2c() as c:
        assert_problem(openapi, c.get("/healthz/"), 404, "not_found")
        assert c.get("/healthz?x=1").status_code == 200
        assert_problem(openapi, c.get("/healthz%2F"), 404, "not_found")


def test_wrong_method_is_405_with_allow(latchd, openapi):
    with latchd.h2c() as c:
        r = c.post("/healthz", content=b"")
        assert_problem(openapi, r, 405, "method_not_allowed")
        assert r.headers["allow"] == "GET, HEAD"
        r = c.delete("/debug/echo")
        assert_problem(openapi, r, 405, "method_not_allowed")
        assert r.headers["allow"] == "POST"


def test_head_is_served_by_get(latchd):
    with latchd.h2c() as c:
        r = c.head("/healthz")
    assert r.status_code == 200
    assert r.content == b""


# --- JSON bodies ------------------------------------------------------------------------------


def test_json_echo_roundtrip(latchd, openapi):
    doc = {"a": [1, 2, {"b": "ü €"}], "n": None}
    with latchd.h2c() as c:
        r = c.post("/debug/echo", json=doc)
    assert r.status_code == 200
    assert r.json() == {"echo": doc}


@pytest.mark.parametrize("body,detail", [
    (b"{", "Malformed JSON"),
    (b"", "empty"),
    (b"[1,2]", "JSON object"),
    (b'"str"', None),
    (b'{"a":1,"a":2}', "duplicate"),
    (b'{"a":"\xff\xfe"}', None),          # invalid UTF-8
    (b'{"a":"\\u0000"}', None),           # NUL inside a string
    (b"{" * 40 + b"}" * 40, "nests deeper"),
    (b'{"a":1} trailing', None),
])
def test_bad_json_is_400_problem(latchd, openapi, body, detail):
    with latchd.h2c() as c:
        r = c.post("/debug/echo", content=body, headers={"content-type": "application/json"})
    problem = assert_problem(openapi, r, 400, "invalid_json")
    if detail:
        assert detail in problem["detail"]


def test_wrong_content_type_is_415(latchd, openapi):
    with latchd.h2c() as c:
        r = c.post("/debug/echo", content=b'{"a":1}', headers={"content-type": "text/plain"})
        assert_problem(openapi, r, 415, "unsupported_media_type")
        r = c.post("/debug/echo", content=b'{"a":1}')
        assert_problem(openapi, r, 415, "unsupported_media_type")
        r = c.post("/debug/echo", content=b'{"a":1}', headers={"content-type": "application/json; charset=utf-8"})
        assert r.status_code == 200


@pytest.mark.parametrize("client", ["h2c", "tls", "http1"])
def test_200k_body_is_413_problem(latchd, openapi, client):
    body = json.dumps({"pad": "x" * (200 * 1024)}).encode()
    with getattr(latchd, client)() as c:
        r = c.post("/debug/echo", content=body, headers={"content-type": "application/json"})
    assert r.http_version == ("HTTP/1.1" if client == "http1" else "HTTP/2")
    assert_problem(openapi, r, 413, "payload_too_large")


def test_body_over_hard_cap_does_not_hurt_the_server(latchd):
    """Past max_request_bytes h2o resets the HTTP/2 stream (or answers 413 on HTTP/1.1);
    either way latchd stays up and keeps serving."""
    body = b"x" * (2 * 1024 * 1024)
    with latchd.h2c() as c:
        try:
            r = c.post("/debug/echo", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 413
        except httpx.HTTPError:
            pass
    with latchd.http1() as c:
        try:  # h2o answers 413 and closes, possibly while the client is still writing
            r = c.post("/debug/echo", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 413
        except httpx.HTTPError:
            pass
    with latchd.h2c() as c:
        assert c.get("/healthz").status_code == 200
    assert latchd.running


def test_bad_query_parameter_is_validation_problem(latchd, openapi):
    with latchd.h2c() as c:
        for q in ("", "?ms=", "?ms=abc", "?ms=-1", "?ms=60001", "?ms=1x"):
            r = c.get("/debug/sleep" + q)
            body = assert_problem(openapi, r, 400, "invalid_request")
            assert body["errors"] == [{"field": "ms", "message": "must be an integer from 0 to 60000"}]


# --- headers and request ids ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/nope"])
def test_security_headers_everywhere(latchd, path):
    with latchd.tls() as c:
        assert_security_headers(c.get(path), tls=True)
    with latchd.h2c() as c:
        assert_security_headers(c.get(path), tls=False)


def test_request_id_echoed(latchd):
    with latchd.h2c() as c:
        r = c.get("/healthz", headers={"x-request-id": "abc-123_x.y:z"})
        assert r.headers["x-request-id"] == "abc-123_x.y:z"
        r = c.get("/nope", headers={"x-request-id": "trace-42"})
        assert r.headers["x-request-id"] == "trace-42"


def test_request_id_generated_when_absent_or_insane(latchd):
    with latchd.h2c() as c:
        a = c.get("/healthz").headers["x-request-id"]
        b = c.get("/healthz").headers["x-request-id"]
        bad = c.get("/healthz", headers={"x-request-id": "x" * 65}).headers["x-request-id"]
        evil = c.get("/healthz", headers={"x-request-id": "a\"b<c>"}).headers["x-request-id"]
    assert a != b
    assert re.fullmatch(r"[0-9a-f]{22}", a)
    assert re.fullmatch(r"[0-9a-f]{22}", bad)
    assert re.fullmatch(r"[0-9a-f]{22}", evil)


def test_server_header_does_not_leak_version(latchd):
    with latchd.h2c() as c:
        r = c.get("/healthz")
    assert "2.2" not in r.headers.get("server", "")


# --- readiness and the store ------------------------------------------------------------------


def wait_status(client, path, status, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.get(path).status_code
        except httpx.HTTPError as e:
            last = repr(e)
        if last == status:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not become {status} within {timeout} s (last: {last})")


def test_readyz_follows_database_outage(private_pg, latchd_factory, openapi):
    d = latchd_factory(database_url=private_pg.database_url)
    with d.h2c() as c:
        r = c.get("/readyz")
        assert r.status_code == 200
        openapi.validate(r.json(), "Ready")

        t0 = time.monotonic()
        private_pg.stop("fast")
        t_down = wait_status(c, "/readyz", 503, timeout=5)
        assert t_down - t0 < 5
        assert_problem(openapi, c.get("/readyz"), 503, "store_unavailable")
        assert c.get("/healthz").status_code == 200  # alive all along

        time.sleep(1.0)  # let the pool back off a few times
        t1 = time.monotonic()
        private_pg.start()
        t_up = wait_status(c, "/readyz", 200, timeout=5)
        assert t_up - t1 < 5
    assert d.running
    with d.h2c() as c:
        metrics = c.get("/metrics").text
    assert re.search(r"^latch_store_reconnects_total [1-9]", metrics, re.M)


def test_queries_fail_fast_while_database_is_down(private_pg, latchd_factory, openapi):
    d = latchd_factory(database_url=private_pg.database_url, debug_endpoints=True)
    private_pg.stop("fast")
    with d.h2c() as c:
        wait_status(c, "/readyz", 503, timeout=5)
        t = time.monotonic()
        r = c.get("/debug/sleep?ms=0")
        assert time.monotonic() - t < 1.0
        assert_problem(openapi, r, 503, "store_unavailable")
    private_pg.start()


def test_query_timeout_is_503(latchd_factory, openapi):
    d = latchd_factory(debug_endpoints=True, db_query_timeout_ms=300, workers=1)
    with d.h2c() as c:
        r = c.get("/debug/sleep?ms=3000")
        assert_problem(openapi, r, 503, "store_timeout")
        # the pool replaces the connection and keeps serving
        assert c.get("/debug/sleep?ms=10").status_code == 200
        assert wait_status(c, "/readyz", 200, timeout=5)


def test_concurrent_slow_queries_share_the_pool(latchd_factory):
    d = latchd_factory(debug_endpoints=True, workers=1, db_pool_size=2)
    results = []

    def one():
        with d.h2c() as c:
            results.append(c.get("/debug/sleep?ms=300").status_code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t
    assert results == [200] * 6
    assert elapsed >= 0.85  # 6 queries of 300 ms on 2 connections: 3 rounds
    assert elapsed < 5


# --- graceful stop ----------------------------------------------------------------------------


def test_sigterm_lets_inflight_request_finish(latchd_factory):
    """The in-flight stream completes after the graceful GOAWAY. curl, because Debian's
    httpcore (0.16) fails every open stream on any GOAWAY, even the graceful one."""
    d = latchd_factory(debug_endpoints=True, shutdown_timeout_ms=10000)
    out = {}

    def slow():
        p = curl("--http2-prior-knowledge", "-w", "\n%{http_code}", d.h2c_url + "/debug/sleep?ms=1500")
        body, _, code = p.stdout.rpartition("\n")
        out["status"] = int(code) if code.isdigit() else None
        out["body"] = json.loads(body) if body else None
        out["stderr"] = p.stderr

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.5)  # the request is in flight, holding a database connection
    t = time.monotonic()
    d.signal(signal.SIGTERM)
    time.sleep(0.2)
    # no longer accepting
    with pytest.raises(httpx.HTTPError):
        with lt.h2c_client(d.h2c_url, timeout=1) as c2:
            c2.get("/healthz")
    th.join(15)
    assert out.get("status") == 200, out
    assert out["body"] == {"slept": True}
    rc = d.stop(timeout=15)
    assert rc == 0
    assert time.monotonic() - t < 8
    assert any(rec.get("msg") == "stopped" for rec in d.log_records())


def test_sigterm_deadline_bounds_the_wait(latchd_factory):
    d = latchd_factory(debug_endpoints=True, shutdown_timeout_ms=500, workers=1)

    def slow():
        with d.h2c(timeout=15) as c:
            try:
                c.get("/debug/sleep?ms=5000")
            except httpx.HTTPError:
                pass

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.4)
    t = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t < 3
    th.join(10)


def test_sigint_stops_with_exit_0(latchd_factory):
    d = latchd_factory(workers=1)
    assert d.stop(signal.SIGINT) == 0


# --- metrics, notifications, access log --------------------------------------------------------


def metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_exposition(latchd):
    with latchd.h2c() as c:
        c.get("/healthz")
        c.get("/nope")
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    t = r.text
    assert metric(t, "latch_http_requests_total", '{route="/healthz",method="GET",status="200"}') >= 1
    assert metric(t, "latch_http_requests_total", '{route="unmatched",method="",status="404"}') >= 1
    assert metric(t, "latch_http_request_duration_seconds_count", '{route="/healthz",method="GET"}') >= 1
    assert metric(t, "latch_http_requests_in_flight") >= 1  # this request
    assert metric(t, "latch_store_connections", '{state="configured"}') == 2 * 4
    assert metric(t, "latch_store_connections", '{state="up"}') >= 1
    assert metric(t, "latch_store_waiting_queries") == 0
    assert metric(t, "latch_workers") == 2
    # every sample line is well-formed
    for line in t.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_][a-z0-9_]*(\{[^}]*\})? [0-9.e+-]+', line), line


def test_notify_reaches_every_worker(latchd_factory, pg):
    d = latchd_factory(workers=2)
    db = d.config["database_url"].split("dbname=")[1]

    def received():
        with d.h2c() as c:
            return metric(c.get("/metrics").text, "latch_notifications_received_total", '{channel="latch_test"}')

    # the listener connects asynchronously; resync counter tells us when it listens
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with d.h2c() as c:
            if metric(c.get("/metrics").text, "latch_notification_resyncs_total") >= 2:
                break
        time.sleep(0.05)
    before = received()
    pg.sql("NOTIFY latch_test, 'hello'", db=db)
    pg.sql("NOTIFY latch_test, 'again'", db=db)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and received() < before + 4:
        time.sleep(0.05)
    assert received() == before + 4  # 2 notifications x 2 workers


def test_access_log_lines(latchd_factory):
    d = latchd_factory(workers=1)
    with d.h2c() as c:
        c.get("/healthz?token=SECRETTOKEN", headers={"x-request-id": "log-check-1"})
        c.get("/nope/SECRETPATH")
    d.stop()
    recs = [r for r in d.access_log_records() if r.get("request_id") == "log-check-1"]
    assert len(recs) == 1
    rec = recs[0]
    assert set(rec) >= {"time", "request_id", "method", "route", "status", "duration_ms", "bytes", "proto"}
    assert rec["method"] == "GET" and rec["route"] == "/healthz" and rec["status"] == 200
    assert rec["proto"] == "HTTP/2"
    assert rec["bytes"] == len(b'{"status":"ok"}')
    text = "\n".join(d.access_log_lines())
    assert "SECRETTOKEN" not in text and "SECRETPATH" not in text
    assert any(r["route"] == "unmatched" and r["status"] == 404 for r in d.access_log_records())


# --- configuration ------------------------------------------------------------------------------


def check_config(tmp_path, config, env=None):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(config))
    return subprocess.run([str(lt.latchd_bin()), "--check-config", "--config", str(p)],
                          capture_output=True, text=True, env=lt.child_env(env))


def base_config(tls_cert):
    return {"database_url": "host=/nonexistent dbname=x", "master_key": lt.random_master_key(),
            "tls_cert": str(tls_cert[0]), "tls_key": str(tls_cert[1])}


def test_check_config_accepts_valid(tmp_path, tls_cert):
    p = check_config(tmp_path, base_config(tls_cert))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("change,needle", [
    ({"wokers": 2}, "wokers"),
    ({"workers": "2"}, "workers"),
    ({"db_pool_size": 0}, "db_pool_size"),
    ({"master_key": "c2hvcnQ="}, "master_key"),
    ({"master_key": None}, "master_key"),
    ({"database_url": None}, "database_url"),
    ({"listen": "nonsense"}, "listen"),
    ({"max_body_bytes": 2000000, "max_request_bytes": 1048576}, "max_request_bytes"),
    ({"log_level": "loud"}, "log_level"),
])
def test_check_config_names_the_bad_key(tmp_path, tls_cert, change, needle):
    cfg = base_config(tls_cert)
    for k, v in change.items():
        if v is None:
            cfg.pop(k)
        else:
            cfg[k] = v
    p = check_config(tmp_path, cfg)
    assert p.returncode != 0
    assert needle in p.stderr
    assert cfg.get("master_key", "§") not in p.stderr  # never echo a secret


def test_check_config_env_override_and_unknown_env(tmp_path, tls_cert):
    p = check_config(tmp_path, base_config(tls_cert), env={"LATCH_DB_POOL_SIZE": "99"})
    assert p.returncode != 0 and "LATCH_DB_POOL_SIZE" in p.stderr
    p = check_config(tmp_path, base_config(tls_cert), env={"LATCH_NOT_A_KEY": "1"})
    assert p.returncode != 0 and "LATCH_NOT_A_KEY" in p.stderr


def test_latchd_refuses_to_start_on_bad_config(tmp_path, tls_cert):
    cfg = base_config(tls_cert)
    cfg["bogus"] = 1
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    r = subprocess.run([str(lt.latchd_bin()), "--config", str(p)], capture_output=True, text=True,
                       env=lt.child_env(), timeout=10)
    assert r.returncode != 0
    assert "bogus" in r.stderr


def test_sighup_reload_applies_log_level(latchd_factory):
    d = latchd_factory(workers=1, log_level="info")
    d.config["log_level"] = "warn"
    d.config_path.write_text(json.dumps(d.config))
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if any("reloaded" in r.get("msg", "") for r in d.log_records()):
            break
        time.sleep(0.05)
    assert any("reloaded" in r.get("msg", "") for r in d.log_records())
    # a broken file is refused, the process keeps running
    d.config_path.write_text("{not json")
    d.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert d.running


def test_latchd_refuses_a_port_another_process_listens_on(latchd, tmp_path):
    """Each worker listens on its own SO_REUSEPORT socket; the first one binds before taking
    SO_REUSEPORT, so a second latchd on the same port fails loudly instead of silently
    taking part of the first one's connections."""
    cfg = dict(latchd.config, listen=f"127.0.0.1:{lt.free_port()}")
    p = tmp_path / "second.json"
    p.write_text(json.dumps(cfg))
    r = subprocess.run([str(lt.latchd_bin()), "--config", str(p)], capture_output=True, text=True,
                       env=lt.child_env(), timeout=20)
    assert r.returncode != 0
    assert f"cannot listen on {cfg['listen_h2c']}" in r.stderr and "in use" in r.stderr, r.stderr[-2000:]
    assert latchd.responsive()
