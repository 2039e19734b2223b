"""The revocation feed (issue 4, item 4): GET /v1/revocations?since=N and the Server-Sent
Events stream GET /v1/revocations/stream, against two latchd instances on one PostgreSQL.

A revocation made through instance A (a logout, or latch_revoke called directly) must reach
instance B's memory through NOTIFY, so B's feed lists it and B's open streams push it
within a second. Callers authenticate as OAuth clients (client_secret_basic) holding the
permission "revocations" or "introspect" and see their own tenant's entries only.
"""

import functools
import json
import queue
import signal
import threading
import time
import uuid

import httpx
import pytest

import latchtest as lt

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)


# Polled finely: how soon an entry arrives is what several tests here measure.
wait_for = functools.partial(lt.wait_for, step=0.02)


class World:
    pass


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    world = World()
    world.A = factory(**SETTINGS)
    # B shares A's database and master key: a second instance of one deployment.
    world.B = factory(database_url=world.A.config["database_url"], master_key=world.A.config["master_key"],
                      **SETTINGS)
    world.openapi = openapi
    world.a = world.A.h2c(timeout=30.0)
    world.b = world.B.h2c(timeout=30.0)
    world.pw = lt.strong_password()
    world.alpha = world.A.bootstrap("alpha", "alice@alpha.test", world.pw)["tenant_id"]
    world.beta = world.A.bootstrap("beta", "bob@beta.test", world.pw)["tenant_id"]
    alice = lt.login(world.a, "alpha", "alice@alpha.test", world.pw)
    bob = lt.login(world.a, "beta", "bob@beta.test", world.pw)
    world.feed = lt.make_client(world.a, alice["access_token"], "feed", permissions=["revocations"])
    world.intro = lt.make_client(world.a, alice["access_token"], "feed", permissions=["introspect"])
    world.plain = lt.make_client(world.a, alice["access_token"], "feed", permissions=["revoke"])
    world.beta_feed = lt.make_client(world.a, bob["access_token"], "feed", permissions=["revocations"])
    # B learns the clients through NOTIFY latch_clients.
    for c in (world.feed, world.intro, world.plain, world.beta_feed):
        assert wait_for(lambda c=c: world.b.get("/v1/revocations", headers=lt.client_auth(c)).status_code != 401,
                        5.0), c
    yield world
    lt.shut_down(factory, world.a, world.b)


def feed(w, client=None, d=None, **params):
    r = (d or w.b).get("/v1/revocations", params=params, headers=lt.client_auth(client or w.feed))
    return r


def sequence(w, client=None):
    r = feed(w, client)
    assert r.status_code == 200, r.text
    return r.json()["sequence"]


def login_alice(w):
    return lt.login(w.a, "alpha", "alice@alpha.test", w.pw)


def logout(w, session):
    r = w.a.post("/v1/auth/logout", headers=lt.bearer(session))
    assert r.status_code == 204, r.text


def revoke_sql(d, kind, value, tenant, seconds=3600):
    t = f"'{tenant}'::uuid" if tenant else "NULL"
    return int(lt.instance_sql(d, f"SELECT latch_revoke('{kind}', '{value}', {t}, "
                                  f"now() + interval '{seconds} seconds')"))


class SSE:
    """Reads a text/event-stream response on a thread; events arrive in `q` as dicts
    {event, id, data} (comments as {"comment": text})."""

    def __init__(self, client, url, headers, params=None):
        self.client = client
        self.q = queue.Queue()
        self.status = None
        self.headers = None
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url, headers, params), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "no response headers"

    def _run(self, url, headers, params):
        try:
            with self.client.stream("GET", url, headers=headers, params=params) as r:
                self.status, self.headers = r.status_code, r.headers
                self.body = None
                if r.status_code != 200:
                    self.body = r.read()
                self.ready.set()
                if r.status_code != 200:
                    return
                ev = {}
                for line in self._lines(r):
                    if line == "":
                        if ev:
                            self.q.put(ev)
                        ev = {}
                    elif line.startswith(":"):
                        self.q.put({"comment": line[1:].strip()})
                    else:
                        k, _, v = line.partition(":")
                        ev[k] = v[1:] if v.startswith(" ") else v
        except Exception as e:  # the test closed the client, or the server went away
            self.q.put({"error": repr(e)})
        finally:
            self.ready.set()
            self.closed.set()

    @staticmethod
    def _lines(r):
        # httpx's iter_lines holds a line back until more text arrives; events must show
        # up as soon as their blank line does.
        buf = b""
        for chunk in r.iter_raw():
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.rstrip(b"\r").decode()

    def next(self, timeout=2.0, skip_comments=True):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if skip_comments and "comment" in ev:
                continue
            return ev

    def close(self):
        self.client.close()


def open_stream(w, client=None, d=None, http1=False, **kw):
    d = d or w.B
    c = d.http1(timeout=30.0) if http1 else d.h2c(timeout=30.0)
    return SSE(c, "/v1/revocations/stream", headers={**lt.client_auth(client or w.feed), **kw.pop("headers", {})},
               params=kw or None)


def event_item(ev):
    assert ev is not None, "no event"
    assert "error" not in ev, ev
    assert ev.get("event") == "revocation", ev
    item = json.loads(ev["data"])
    assert str(item["seq"]) == ev["id"]
    return item


# --- the feed -------------------------------------------------------------------------------


def test_feed_needs_a_client(w):
    r = w.b.get("/v1/revocations")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].lower().startswith("basic")
    assert r.json()["error"] == "invalid_client"
    wrong = dict(w.feed, client_secret="lcs_" + "A" * 43)
    r = feed(w, wrong)
    assert r.status_code == 401
    assert "www-authenticate" in r.headers
    # a bearer token is not a client
    s = login_alice(w)
    r = w.b.get("/v1/revocations", headers=lt.bearer(s))
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


def test_feed_needs_the_permission(w):
    r = feed(w, w.plain)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "forbidden"
    r = w.b.get("/v1/revocations/stream", headers=lt.client_auth(w.plain))
    assert r.status_code == 403
    # "introspect" allows it too
    assert feed(w, w.intro).status_code == 200


def test_feed_shape(w):
    r = feed(w)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"sequence", "items", "more"}
    assert isinstance(body["sequence"], int) and body["sequence"] >= 0
    assert isinstance(body["items"], list) and body["more"] in (True, False)
    # The contract check applies once the fragment (/tmp/openapi-rev.yaml) is merged.
    if ("GET", "/v1/revocations") in w.openapi.operations():
        w.openapi.check_response("GET", "/v1/revocations", r)


def test_logout_on_a_reaches_b_within_a_second(w):
    s = login_alice(w)
    sid = lt.jwt_claims(s["access_token"])["sid"]
    exp = lt.jwt_claims(s["access_token"])["exp"]
    since = sequence(w)
    t0 = time.monotonic()
    logout(w, s)

    def listed():
        body = feed(w, since=since).json()
        return [i for i in body["items"] if i["type"] == "sid" and i["value"] == sid]

    items = wait_for(listed, timeout=1.0)
    elapsed = time.monotonic() - t0
    assert items, "B's feed did not show the logout's sid within 1 s"
    assert elapsed < 1.0 + 0.2
    item = items[0]
    assert item["seq"] > since
    assert item["expires_at"] >= exp  # until the session's last access token has expired
    assert set(item) == {"seq", "type", "value", "expires_at"}
    body = feed(w, since=since).json()
    assert body["sequence"] >= item["seq"]
    # and the same entry on A
    assert any(i["value"] == sid for i in feed(w, d=w.a, since=since).json()["items"])
    # B's introspection agrees
    r = w.b.post("/oauth2/introspect", data={"token": s["access_token"]}, headers=lt.client_auth(w.intro))
    assert r.status_code == 200 and r.json() == {"active": False}


def test_since_and_limit_page_through(w):
    since = sequence(w)
    seqs = [revoke_sql(w.A, "jti", f"page-{uuid.uuid4().hex}", w.alpha) for _ in range(5)]
    assert wait_for(lambda: sequence(w) >= seqs[-1], 1.0)
    r = feed(w, since=since, limit=2)
    body = r.json()
    assert [i["seq"] for i in body["items"]] == seqs[:2]
    assert body["more"] is True
    got, after = [], since
    while True:
        body = feed(w, since=after, limit=2).json()
        got += [i["seq"] for i in body["items"]]
        if not body["more"]:
            break
        after = body["items"][-1]["seq"]
    assert got == seqs
    body = feed(w, since=seqs[-1]).json()
    assert body["items"] == [] and body["more"] is False
    # far in the future: nothing, not an error
    assert feed(w, since=2**63).json()["items"] == []


def test_expired_entries_are_not_listed(w):
    since = sequence(w)
    seq = revoke_sql(w.A, "jti", f"short-{uuid.uuid4().hex}", w.alpha, seconds=1)
    assert wait_for(lambda: any(i["seq"] == seq for i in feed(w, since=since).json()["items"]), 1.0)
    time.sleep(2.1)
    assert not any(i["seq"] == seq for i in feed(w, since=since).json()["items"])


def test_tenant_filtering(w):
    since = sequence(w)
    a_seq = revoke_sql(w.A, "jti", f"alpha-{uuid.uuid4().hex}", w.alpha)
    b_seq = revoke_sql(w.A, "jti", f"beta-{uuid.uuid4().hex}", w.beta)
    n_seq = revoke_sql(w.A, "jti", f"none-{uuid.uuid4().hex}", None)
    assert wait_for(lambda: sequence(w) >= n_seq, 1.0)
    alpha = [i["seq"] for i in feed(w, since=since).json()["items"]]
    beta = [i["seq"] for i in feed(w, w.beta_feed, since=since).json()["items"]]
    assert a_seq in alpha and b_seq not in alpha and n_seq not in alpha
    assert b_seq in beta and a_seq not in beta and n_seq not in beta
    # the sequence is global: it says how far the set is, not what this tenant saw
    assert feed(w, w.beta_feed).json()["sequence"] >= n_seq


@pytest.mark.parametrize("params", [
    {"since": "abc"}, {"since": "-1"}, {"since": "1.5"}, {"since": ""}, {"since": "99999999999999999999999"},
    {"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": "-3"},
])
def test_bad_parameters(w, params):
    r = feed(w, **params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "invalid_request"
    assert [e["field"] for e in body["errors"]] == list(params)


def test_bad_stream_parameters(w):
    r = w.b.get("/v1/revocations/stream", params={"since": "x"}, headers=lt.client_auth(w.feed))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_request"
    r = w.b.get("/v1/revocations/stream", headers={**lt.client_auth(w.feed), "last-event-id": "nope"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "Last-Event-ID"
    r = w.b.get("/v1/revocations/stream")
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


# --- the stream -----------------------------------------------------------------------------


@pytest.mark.parametrize("http1", [False, True], ids=["h2c", "http1"])
def test_stream_pushes_a_logout_on_a(w, http1):
    since = sequence(w)
    st = open_stream(w, http1=http1, since=since)
    try:
        assert st.status == 200, st.body
        assert st.headers["content-type"].startswith("text/event-stream")
        assert st.headers["cache-control"] == "no-store"
        assert st.headers["x-content-type-options"] == "nosniff"
        s = login_alice(w)
        sid = lt.jwt_claims(s["access_token"])["sid"]
        t0 = time.monotonic()
        logout(w, s)
        item = None
        while item is None or item["value"] != sid:
            ev = st.next(timeout=max(0.05, 2.0 - (time.monotonic() - t0)))
            item = event_item(ev)
        assert time.monotonic() - t0 < 1.5
        assert item["type"] == "sid" and item["seq"] > since
    finally:
        st.close()


def test_stream_sends_the_backlog_then_live_entries(w):
    since = sequence(w)
    # more than one catch-up chunk (256), so the backlog is paced by the drain callback
    n = 600
    lt.instance_sql(w.A, "SELECT latch_revoke('jti', 'bulk-' || i || '-" + uuid.uuid4().hex[:8] + "', '" + w.alpha +
                    "'::uuid, now() + interval '1 hour') FROM generate_series(1, " + str(n) + ") i")
    last = wait_for(lambda: (lambda s: s if s >= since + n else 0)(sequence(w)), 2.0)
    assert last
    st = open_stream(w, since=since)
    try:
        got = []
        while len(got) < n:
            item = event_item(st.next(timeout=3.0))
            got.append(item["seq"])
        assert got == sorted(got) and len(set(got)) == n
        assert got[0] > since and got[-1] == last
        # then a live one, exactly once
        seq = revoke_sql(w.A, "jti", f"live-{uuid.uuid4().hex}", w.alpha)
        item = event_item(st.next(timeout=1.5))
        assert item["seq"] == seq
        assert st.next(timeout=0.3) is None
    finally:
        st.close()


def test_stream_last_event_id_wins_over_since(w):
    since = sequence(w)
    seqs = [revoke_sql(w.A, "jti", f"lei-{uuid.uuid4().hex}", w.alpha) for _ in range(3)]
    assert wait_for(lambda: sequence(w) >= seqs[-1], 1.0)
    st = open_stream(w, since=0, headers={"last-event-id": str(seqs[0])})
    try:
        assert [event_item(st.next())["seq"] for _ in range(2)] == seqs[1:]
        assert st.next(timeout=0.3) is None
    finally:
        st.close()
    # since alone
    st = open_stream(w, since=seqs[1])
    try:
        assert event_item(st.next())["seq"] == seqs[2]
    finally:
        st.close()


def test_stream_tenant_filtering(w):
    since = sequence(w)
    alpha = open_stream(w, since=since)
    beta = open_stream(w, w.beta_feed, since=since)
    try:
        b_seq = revoke_sql(w.A, "jti", f"beta-{uuid.uuid4().hex}", w.beta)
        revoke_sql(w.A, "jti", f"none-{uuid.uuid4().hex}", None)
        a_seq = revoke_sql(w.A, "jti", f"alpha-{uuid.uuid4().hex}", w.alpha)
        assert event_item(alpha.next(timeout=1.5))["seq"] == a_seq
        assert event_item(beta.next(timeout=1.5))["seq"] == b_seq
        assert alpha.next(timeout=0.3) is None
        assert beta.next(timeout=0.3) is None
    finally:
        alpha.close()
        beta.close()


def test_many_streams_and_clients_leaving(w):
    since = sequence(w)
    streams = [open_stream(w, since=since, http1=i % 2 == 1) for i in range(6)]
    for st in streams[:3]:
        st.close()  # these go away; the others must keep working
    seq = revoke_sql(w.A, "jti", f"many-{uuid.uuid4().hex}", w.alpha)
    try:
        for st in streams[3:]:
            assert event_item(st.next(timeout=1.5))["seq"] == seq
    finally:
        for st in streams[3:]:
            st.close()
    # the server is fine afterwards
    assert feed(w).status_code == 200


def test_graceful_stop_ends_open_streams(latchd_factory):
    # A long shutdown timeout: the stop must not wait for it because of an open stream.
    d = latchd_factory(shutdown_timeout_ms=30000, **SETTINGS)
    c = d.h2c(timeout=30.0)
    pw = lt.strong_password()
    d.bootstrap("gamma", "gina@gamma.test", pw)
    s = lt.login(c, "gamma", "gina@gamma.test", pw)
    client = lt.make_client(c, s, name="feed", permissions=["revocations"])
    assert wait_for(lambda: c.get("/v1/revocations", headers=lt.client_auth(client)).status_code == 200, 5.0)
    streams = [SSE(d.h2c(timeout=30.0), "/v1/revocations/stream", lt.client_auth(client)),
               SSE(d.http1(timeout=30.0), "/v1/revocations/stream", lt.client_auth(client))]
    for st in streams:
        assert st.status == 200
    t0 = time.monotonic()
    code = d.stop(signal.SIGTERM, timeout=20.0)
    elapsed = time.monotonic() - t0
    assert code == 0, d.stderr_text()[-2000:]
    assert elapsed < 5.0, f"the stop took {elapsed:.1f} s with open streams"
    for st in streams:
        assert st.closed.wait(5.0), "the stream did not end"
        st.close()
    c.close()


def test_a_reader_that_falls_behind_gets_everything_later(w):
    """A client that stops reading while a burst of entries comes: the server does not queue
    the burst for it (it falls back to reading the set as the client drains), does not cut
    it off, and once the client reads again it gets every entry once, in order. A client
    that keeps up meanwhile gets them all as well."""
    import socket

    n = 20000  # ~130 bytes an event: several MiB, past what a stream may queue (1 MiB)
    host, port = w.B.config["listen_h2c"].rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server backs up fast
    s.connect((host, int(port)))
    since = sequence(w)
    auth = lt.client_auth(w.feed)["authorization"]
    s.sendall(f"GET /v1/revocations/stream?since={since} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
              .encode())
    s.settimeout(5.0)
    buf = s.recv(1024)
    assert buf.startswith(b"HTTP/1.1 200"), buf
    good = open_stream(w, since=since)
    try:
        tag = uuid.uuid4().hex[:8]
        lt.instance_sql(w.A, f"SELECT latch_revoke('jti', 'flood-{tag}-' || i, '{w.alpha}'::uuid,"
                             " now() + interval '1 hour') FROM generate_series(1, {n}) i".replace("{n}", str(n)))
        seqs = []
        while len(seqs) < n:
            ev = good.next(timeout=5.0)
            assert ev is not None, f"only {len(seqs)} events"
            seqs.append(event_item(ev)["seq"])
        assert seqs == sorted(set(seqs)) and len(seqs) == n
        assert "stream reader too slow" not in w.B.stderr_text()
        # now the slow one reads (chunked HTTP/1.1: count the event ids)
        ids, end = [], time.monotonic() + 20
        while len(ids) < n and time.monotonic() < end:
            chunk = s.recv(1 << 20)
            assert chunk, "the slow stream was closed"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            ids += [int(l[4:]) for l in lines if l.startswith(b"id: ")]
        assert ids == seqs
    finally:
        s.close()
        good.close()
    assert feed(w).status_code == 200
