"""Faults (issue 7, item 7): PostgreSQL stopped under load, latchd SIGKILLed in a refresh
storm, one of two instances on one database killed, and a graceful SIGTERM under load.

Each test starts what it breaks (its own cluster, its own latchd instances) and keeps the
load small and bounded (a few client threads for a few seconds) so that it means the same on
a busy 2-core machine. Every test prints one line of numbers (`pytest -s` shows them).
"""

import hashlib
import json
import signal
import socket
import struct
import threading
import time
import uuid
from collections import Counter

import httpx
import hpack
import pytest

import latchtest as lt
from latchtest import strong_password as strong

FAST = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
            password_min_length=12)

RULES = {"routes": [{"methods": ["GET"], "path": "/docs/{id}", "resource_type": "document", "action": "read",
                     "resource_id": "id"}]}


def report(name, **numbers):
    print(f"\n[faults] {name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()), flush=True)


def sha256_hex(token):
    return hashlib.sha256(token.encode()).hexdigest()


# --- a world on one instance: a tenant, an admin, a reader user, a service client -----------------


class World:
    """Built through the HTTP API of `d` (any instance on the database)."""

    def __init__(self, d):
        self.d = d
        self.c = d.h2c(timeout=20.0)
        self.pw = strong()
        self.tenant = f"t{uuid.uuid4().hex[:8]}"
        self.tenant_id = d.bootstrap(self.tenant, "admin@f.test", self.pw)["tenant_id"]
        self.admin = self.login("admin@f.test")["access_token"]
        self.call("POST", "/v1/admin/roles", json={"name": "reader", "permissions": ["document:read"]})
        self.user_pw = strong()
        uid = self.call("POST", "/v1/admin/users", json={"email": "ann@f.test", "password": self.user_pw})["id"]
        self.call("PUT", f"/v1/admin/users/{uid}/roles", json={"roles": ["reader"]})
        self.svc = lt.make_client(self.c, self.admin, prefix="svc", permissions=["introspect", "decide", "revoke"])
        self.call("PUT", f"/v1/admin/clients/{self.svc['client_id']}/roles", json={"roles": ["reader"]})
        self.ann = self.login("ann@f.test", self.user_pw)
        self.wait_snapshot()

    def call(self, method, url, **kw):
        r = self.c.request(method, url, headers=lt.bearer(self.admin), **kw)
        assert r.status_code in (200, 201, 204), f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def login(self, email, password=None, client=None):
        return lt.login(client or self.c, self.tenant, email, password or self.pw)

    def wait_snapshot(self):
        """The roles and clients reach every worker's snapshot through NOTIFY."""
        def ok():
            return all(hot_call(self, self.c, op)[0] == 200 for op in HOT_OPS for _ in range(4))
        assert lt.wait_for(ok, 10.0), "the world never reached the snapshots"

    def sql(self, query):
        return lt.instance_sql(self.d, query)


HOT_OPS = ("introspect", "decide", "forward_auth")


def hot_call(w, c, op):
    """One call of a memory-only path; (status, problem code or None)."""
    if op == "introspect":
        r = c.post("/oauth2/introspect", data={"token": w.ann["access_token"]}, headers=lt.client_auth(w.svc))
        ok = r.status_code == 200 and r.json().get("active") is True
    elif op == "decide":
        r = c.post("/access/v1/evaluation", headers=lt.client_auth(w.svc),
                   json={"subject": {"type": "user", "id": "ann", "properties": {"roles": ["reader"]}},
                         "action": {"name": "read"}, "resource": {"type": "document", "id": "d1"}})
        ok = r.status_code == 200 and "decision" in r.json()
    else:
        r = c.get("/v1/forward-auth", headers={**lt.bearer(w.ann), "x-original-method": "GET",
                                                "x-original-uri": "/docs/42"})
        ok = r.status_code == 200
    return (r.status_code if ok else -r.status_code), None


class HotLoad:
    """`n` threads, each with its own HTTP/2 connection to `d`, cycling through the
    memory-only paths until stopped; every answer is timestamped."""

    def __init__(self, w, d, n=3):
        self.w, self.d = w, d
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.results = []  # (monotonic time, op, status or repr(exception))
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i):
        with self.d.h2c(timeout=10.0) as c:
            k = i
            while not self.stop_ev.is_set():
                op = HOT_OPS[k % len(HOT_OPS)]
                k += 1
                try:
                    status, _ = hot_call(self.w, c, op)
                except Exception as e:  # noqa: BLE001 - every failure is the finding
                    status = repr(e)
                with self.lock:
                    self.results.append((time.monotonic(), op, status))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)

    def between(self, t0, t1):
        with self.lock:
            return [r for r in self.results if t0 <= r[0] < t1]

    @staticmethod
    def failures(rows):
        return [r for r in rows if r[2] != 200]


# --- 1. PostgreSQL stopped under load ----------------------------------------------------------------


def write_attempts(w, c):
    """Login, refresh and an admin write once each: [(what, status, problem code)]."""
    out = []
    r = c.post("/v1/auth/login", json={"tenant": w.tenant, "email": "ann@f.test", "password": w.user_pw})
    out.append(("login", r))
    r = c.post("/v1/auth/refresh", json={"refresh_token": w.ann["refresh_token"]})
    out.append(("refresh", r))
    r = c.post("/v1/admin/users", json={"email": f"u{uuid.uuid4().hex[:6]}@f.test", "password": strong()},
               headers=lt.bearer(w.admin))
    out.append(("admin_create", r))
    res = []
    for what, r in out:
        code = r.json().get("code") if r.headers.get("content-type", "").startswith("application/problem+json") else None
        res.append((what, r.status_code, code))
    return res


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_outage_under_load(mode, private_pg, latchd_factory, session_tmp, openapi):
    rules = session_tmp / f"fa-{uuid.uuid4().hex[:8]}.json"
    rules.write_text(json.dumps(RULES))
    d = latchd_factory(database_url=private_pg.database_url, forward_auth_rules=str(rules),
                       db_reconnect_max_ms=500, **FAST)
    w = World(d)
    c = d.h2c(timeout=10.0)
    with HotLoad(w, d, n=3) as load:
        time.sleep(1.0)
        t_stop = time.monotonic()
        private_pg.stop(mode)
        t_down = time.monotonic()

        # readiness goes 503 store_unavailable; liveness stays 200
        def not_ready():
            r = c.get("/readyz")
            return r if r.status_code == 503 else None
        r = lt.wait_for(not_ready, 5.0)
        assert r, "/readyz stayed 200 with the database down"
        assert r.json()["code"] == "store_unavailable"
        openapi.check_response("GET", "/readyz", r)
        assert c.get("/healthz").status_code == 200

        # writes: 503 store_unavailable, fast, never 500, never a hang
        writes = []
        for _ in range(5):
            t = time.monotonic()
            got = write_attempts(w, c)
            elapsed = time.monotonic() - t
            writes += got
            assert elapsed < 3.0, f"writes took {elapsed:.2f} s with the database down: {got}"
            time.sleep(0.2)
        bad = [x for x in writes if (x[1], x[2]) != (503, "store_unavailable")]
        assert not bad, f"writes with the database down answered {bad}"
        r = c.post("/v1/auth/login", json={"tenant": w.tenant, "email": "ann@f.test", "password": w.user_pw})
        openapi.check_response("POST", "/v1/auth/login", r)
        time.sleep(1.0)  # more outage under load

        t_restart = time.monotonic()
        private_pg.start()

        # writes succeed again without restarting latchd
        def login_ok():
            r = c.post("/v1/auth/login", json={"tenant": w.tenant, "email": "ann@f.test", "password": w.user_pw})
            return r.status_code == 200
        assert lt.wait_for(login_ok, 15.0, step=0.1), "logins did not recover within 15 s"
        t_recovered = time.monotonic()
        with lt.h2c_client(d.h2c_url) as c2:
            got = write_attempts(w, c2)
        assert got[0][1] == 200 and got[2][1] == 201, f"writes after recovery: {got}"
        fresh = lt.login(c, w.tenant, "ann@f.test", w.user_pw)
        r = c.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        assert r.status_code == 200, r.text
        assert lt.wait_for(lambda: c.get("/readyz").status_code == 200, 5.0)
        time.sleep(0.5)
    c.close()

    before = load.between(0, t_stop)
    during = load.between(t_down, t_restart)
    after = load.between(t_recovered, float("inf"))
    fails = HotLoad.failures(load.results)
    report(f"database outage ({mode})", hot_before=len(before), hot_during_outage=len(during),
           outage_s=f"{t_restart - t_down:.1f}", hot_after=len(after), hot_failures=len(fails),
           writes_during=len(writes), writes_503=sum(1 for x in writes if x[1] == 503),
           recovery_s=f"{t_recovered - t_restart:.2f}")
    assert len(during) >= 20, f"too few hot-path answers during the outage: {len(during)}"
    assert not fails, f"{len(fails)} hot-path failures, first: {fails[:5]}"
    assert t_recovered - t_restart < 10
    assert d.running


# --- 2. SIGKILL in a refresh storm ---------------------------------------------------------------


def test_sigkill_in_a_refresh_storm_leaves_no_half_rotated_family(latchd_factory):
    grace = 120  # the killed rotations are repeated after the restart, inside this window
    d = latchd_factory(refresh_reuse_grace=grace, **FAST)
    w_tenant = f"t{uuid.uuid4().hex[:8]}"
    pw = strong()
    d.bootstrap(w_tenant, "admin@f.test", pw)
    nclients = 8
    c0 = d.h2c(timeout=20.0)
    sessions = [lt.login(c0, w_tenant, "admin@f.test", pw) for _ in range(nclients)]
    c0.close()

    held = [s["refresh_token"] for s in sessions]   # each client's latest token
    received = [[s["refresh_token"]] for s in sessions]  # every refresh token each client got
    stats = Counter()
    stop = threading.Event()

    def client(i):
        with d.h2c(timeout=5.0) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/auth/refresh", json={"refresh_token": held[i]})
                except httpx.HTTPError:
                    stats["transport_errors"] += 1
                    return
                if r.status_code == 200:
                    rt = r.json()["refresh_token"]
                    held[i] = rt
                    received[i].append(rt)
                    stats["rotations"] += 1
                else:
                    stats[f"status_{r.status_code}"] += 1
                    return

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    rotations_at_kill = stats["rotations"]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for t in threads:
        t.join(10)
    assert all(not t.is_alive() for t in threads)
    assert rotations_at_kill > 10, f"the storm did not get going: {stats}"
    assert set(stats) <= {"rotations", "transport_errors"}, f"refreshes failed before the kill: {stats}"

    sql = lambda q: lt.instance_sql(d, q)  # noqa: E731

    # 1. Every token a client received is in the database.
    all_received = [rt for lst in received for rt in lst]
    hashes = ",".join(f"'\\x{sha256_hex(rt)}'::bytea" for rt in all_received)
    known = int(sql(f"SELECT count(*) FROM refresh_tokens WHERE token_hash IN ({hashes})"))
    assert known == len(all_received), f"{len(all_received) - known} received tokens unknown to the database"

    # 2. No family is half-rotated: one chain per session, every link complete.
    fam = f"session_id IN (SELECT session_id FROM refresh_tokens WHERE token_hash IN ({hashes}))"
    checks = {
        # at most one current (unused, unrevoked) token per family
        "families with two current tokens": f"""SELECT count(*) FROM (SELECT session_id FROM refresh_tokens
            WHERE {fam} AND used_at IS NULL AND revoked_at IS NULL GROUP BY session_id HAVING count(*) > 1) x""",
        # every live family has exactly one current token
        "families without a current token": f"""SELECT count(*) FROM (SELECT session_id FROM refresh_tokens
            WHERE {fam} GROUP BY session_id HAVING count(*) FILTER (WHERE used_at IS NULL) <> 1) x""",
        # a used token names its successor, which exists, has it as parent, and was issued when it was used
        "used tokens without a consistent successor": f"""SELECT count(*) FROM refresh_tokens p
            LEFT JOIN refresh_tokens s ON s.id = p.successor_id
            WHERE p.{fam} AND p.used_at IS NOT NULL
              AND (s.id IS NULL OR s.parent_id <> p.id OR s.session_id <> p.session_id OR s.issued_at <> p.used_at)""",
        # a token with a parent: the parent is used and points back at it (no fork)
        "children of an unused or other parent": f"""SELECT count(*) FROM refresh_tokens s
            JOIN refresh_tokens p ON p.id = s.parent_id
            WHERE s.{fam} AND (p.used_at IS NULL OR p.successor_id <> s.id)""",
        # one chain: n tokens, n - 1 of them with a parent, all parents distinct, one root
        "forked or broken chains": f"""SELECT count(*) FROM (SELECT session_id FROM refresh_tokens WHERE {fam}
            GROUP BY session_id HAVING count(parent_id) <> count(*) - 1
                OR count(DISTINCT parent_id) <> count(*) - 1) x""",
    }
    bad = {k: int(sql(q)) for k, q in checks.items()}
    assert not any(bad.values()), bad
    # the database holds at most one token per family that its client never received (the
    # rotation committed, the answer died with the process)
    extra = int(sql(f"SELECT count(*) FROM refresh_tokens WHERE {fam}")) - len(all_received)
    assert 0 <= extra <= nclients, extra

    # 3. Restarted, every client's token works: a current one rotates; one whose rotation
    # committed unseen gets that same successor back (grace window); each successor then
    # rotates exactly once.
    d.start()
    outcomes = Counter()
    with d.h2c(timeout=10.0) as c:
        for i in range(nclients):
            h = f"'\\x{sha256_hex(held[i])}'"
            succ_known = sql(f"SELECT encode(s.token_hash, 'hex') FROM refresh_tokens p "
                             f"JOIN refresh_tokens s ON s.id = p.successor_id WHERE p.token_hash = {h}")
            r = c.post("/v1/auth/refresh", json={"refresh_token": held[i]})
            assert r.status_code == 200, f"client {i}: {r.status_code} {r.text}"
            succ = r.json()["refresh_token"]
            if succ_known:  # rotated by the killed process: the same successor comes back
                assert sha256_hex(succ) == succ_known
                outcomes["repeat"] += 1
            else:
                outcomes["rotated"] += 1
            r2 = c.post("/v1/auth/refresh", json={"refresh_token": succ})
            assert r2.status_code == 200, f"client {i} successor: {r2.status_code} {r2.text}"
    bad = {k: int(sql(q)) for k, q in checks.items()}
    assert not any(bad.values()), bad
    assert outcomes["repeat"] == extra
    report("sigkill refresh storm", clients=nclients, rotations_before_kill=stats["rotations"],
           transport_errors=stats["transport_errors"], tokens_received=len(all_received),
           committed_but_unseen=extra, after_restart_rotated=outcomes["rotated"],
           after_restart_repeat=outcomes["repeat"], invariant_violations=sum(bad.values()))


# --- 3. Two instances, one killed --------------------------------------------------------------------


def test_two_instances_one_killed(latchd_factory, session_tmp):
    rules = session_tmp / f"fa-{uuid.uuid4().hex[:8]}.json"
    rules.write_text(json.dumps(RULES))
    a = latchd_factory(forward_auth_rules=str(rules), **FAST)
    b = latchd_factory(database_url=a.config["database_url"], master_key=a.config["master_key"],
                       forward_auth_rules=str(rules), **FAST)
    w = World(a)  # everything issued by instance A
    wb = World.__new__(World)
    wb.__dict__.update(w.__dict__)
    wb.d, wb.c = b, b.h2c(timeout=20.0)
    wb.wait_snapshot()  # B answers for A's tokens and clients

    with HotLoad(wb, b, n=3) as load:
        time.sleep(1.0)
        t_kill = time.monotonic()
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(0.5)
        # B logs in, revokes and introspects what A issued
        mine = lt.login(wb.c, w.tenant, "ann@f.test", w.user_pw)
        r = wb.c.post("/oauth2/introspect", data={"token": mine["access_token"]}, headers=lt.client_auth(w.svc))
        assert r.status_code == 200 and r.json()["active"] is True
        other = w.login("ann@f.test", w.user_pw, client=wb.c)  # a session to revoke
        r = wb.c.post("/oauth2/revoke", data={"token": other["refresh_token"]}, headers=lt.client_auth(w.svc))
        assert r.status_code == 200, r.text

        def revoked():
            r = wb.c.post("/oauth2/introspect", data={"token": other["access_token"]}, headers=lt.client_auth(w.svc))
            return r.status_code == 200 and r.json()["active"] is False
        assert lt.wait_for(revoked, 5.0), "a revocation on B did not reach B's introspection"
        r = wb.c.post("/v1/auth/refresh", json={"refresh_token": w.ann["refresh_token"]})
        assert r.status_code == 200, r.text  # a session A created, rotated by B
        time.sleep(1.0)
    after = load.between(t_kill, float("inf"))
    fails = HotLoad.failures(load.results)
    report("two instances, one killed", hot_total=len(load.results), hot_after_kill=len(after),
           hot_failures=len(fails))
    assert len(after) >= 20
    assert not fails, fails[:5]
    wb.c.close()


# --- 4. Graceful SIGTERM under load --------------------------------------------------------------


class RawH2:
    """A minimal HTTP/2 client over cleartext that, unlike python-h2 4.1 (which closes the
    connection state on any GOAWAY), keeps reading the answers of streams the server
    accepted after a graceful GOAWAY. Stream outcomes: status code, or 'reset:N'."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.authority = f"{host}:{port}"
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.next_id = 1
        self.buf = b""
        self.open = {}      # stream id -> status (None until the headers came)
        self.outcome = {}   # stream id -> final status or "reset:<code>"
        self.goaway = None  # lowest last-stream-id of the GOAWAYs received
        self.closed = False
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0, b""))

    @staticmethod
    def frame(ftype, flags, sid, payload):
        return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload

    def request(self, method, path, body=None, headers=()):
        sid = self.next_id
        self.next_id += 2
        hdrs = [(":method", method), (":scheme", "http"), (":authority", self.authority), (":path", path),
                *headers]
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        block = self.enc.encode(hdrs)
        out = self.frame(1, 0x4 | (0x1 if body is None else 0), sid, block)
        if body is not None:
            out += self.frame(0, 0x1, sid, body)
        self.open[sid] = None
        self.sock.sendall(out)
        return sid

    def pump(self):
        """Reads once and handles every whole frame; False once the connection ended."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        while len(self.buf) >= 9:
            n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
            if len(self.buf) < 9 + n:
                break
            ftype, flags, sid = self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            self.on_frame(ftype, flags, sid, payload)
        return True

    def finish(self, sid, outcome):
        if sid in self.open:
            del self.open[sid]
            self.outcome[sid] = outcome

    def on_frame(self, ftype, flags, sid, payload):
        out = b""
        if ftype == 0:  # DATA: give the window back
            if payload:
                out += self.frame(8, 0, 0, struct.pack(">I", len(payload)))
            if flags & 0x1:
                self.finish(sid, self.open.get(sid))
        elif ftype == 1:  # HEADERS (h2o sends neither padding nor priority)
            status = dict(self.dec.decode(payload)).get(":status")
            if sid in self.open:
                self.open[sid] = int(status) if status else None
            if flags & 0x1:
                self.finish(sid, self.open.get(sid))
        elif ftype == 3:  # RST_STREAM
            self.finish(sid, f"reset:{struct.unpack('>I', payload)[0]}")
        elif ftype == 4 and not flags & 0x1:  # SETTINGS: acknowledge
            out += self.frame(4, 0x1, 0, b"")
        elif ftype == 6 and not flags & 0x1:  # PING: answer
            out += self.frame(6, 0x1, 0, payload)
        elif ftype == 7:  # GOAWAY
            last = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            self.goaway = last if self.goaway is None else min(self.goaway, last)
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_graceful_sigterm_under_load_drops_no_accepted_request(latchd_factory):
    d = latchd_factory(debug_endpoints=True, shutdown_timeout_ms=5000, workers=2)
    host, _, port = d.config["listen_h2c"].rpartition(":")
    port = int(port)
    per_conn_inflight = 8
    lock = threading.Lock()
    totals = Counter()
    failures = []
    sigterm_sent = threading.Event()

    def conn_worker(i):
        try:
            h = RawH2(host, port)
        except OSError:
            with lock:
                totals["connect_refused"] += 1
            return
        k = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            while h.goaway is None and not h.closed and len(h.open) < per_conn_inflight:
                k += 1
                try:
                    if k % 16 == 0:  # a slow one, holding a database connection
                        h.request("GET", "/debug/sleep?ms=300")
                    elif k % 3 == 0:
                        h.request("POST", "/debug/echo", body=b'{"n":%d}' % k,
                                  headers=[("content-type", "application/json")])
                    else:
                        h.request("GET", "/healthz")
                except OSError:
                    h.closed = True
                    break
            if not h.pump():
                break
            if h.goaway is not None and not h.open:
                break
        h.close()
        last = h.goaway if h.goaway is not None else -1
        with lock:
            for sid, out in h.outcome.items():
                if out == 200:
                    totals["answered"] += 1
                elif isinstance(out, str) and out == "reset:7":  # REFUSED_STREAM: never processed
                    totals["refused_stream"] += 1
                else:
                    failures.append((i, sid, out, "goaway", last))
            for sid in h.open:  # never answered
                if h.goaway is not None and sid > last:
                    totals["after_goaway_not_accepted"] += 1
                else:
                    failures.append((i, sid, "unanswered", "goaway", last, "sigterm", sigterm_sent.is_set()))
            totals["connections"] += 1

    threads = [threading.Thread(target=conn_worker, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    with lock:
        pass
    t0 = time.monotonic()
    sigterm_sent.set()
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(15)
    except Exception:  # noqa: BLE001
        rc = None
    t_exit = time.monotonic() - t0
    for t in threads:
        t.join(15)
    # new connections after the close are refused: that is not a dropped request
    try:
        socket.create_connection((host, port), timeout=2).close()
        refused_after = False
    except OSError:
        refused_after = True
    rc = d.stop()  # bookkeeping (already exited)
    report("graceful sigterm", answered=totals["answered"], failures=len(failures),
           not_accepted_after_goaway=totals["after_goaway_not_accepted"], refused_stream=totals["refused_stream"],
           exit_code=rc, exit_s=f"{t_exit:.2f}")
    assert rc == 0
    assert t_exit < 5.0 + 2.0, f"latchd took {t_exit:.1f} s to exit (shutdown_timeout_ms 5000)"
    assert refused_after
    assert totals["answered"] > 30, totals
    assert not failures, failures[:10]
    assert totals["refused_stream"] == 0, totals
