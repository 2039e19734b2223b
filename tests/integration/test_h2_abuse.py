"""HTTP/2 abuse (issue 7, item 7): Debian's h2o 2.2.5 has no Rapid Reset (CVE-2023-44487) fix,
so latchd accounts HTTP/2 frames per connection itself (lib/http/h2guard.h). These tests attack
it with raw HTTP/2 clients (frames built by hand, python3-h2 for the well-behaved victims):

  1. a connection opening and resetting streams at full speed (and an attacker that reconnects
     each time it is closed), over h2c and over TLS;
  2. PING and SETTINGS floods;
  3. a client that opens streams and never reads (socket not read; or flow-control window
     never opened);
  4. a heavy but well-behaved client (many concurrent streams, everything read): never closed.

The server runs one worker, so attacker and victims share its event loop (the worst case).
Victims are measured with a minimal python3-h2 client (sequential GET /healthz and POST
/oauth2/introspect), in blocks alternating between "beside an idle CPU burner" (the baseline)
and "beside the attacker", both processes niced alike, so that the only difference is the
attack traffic and load drifting in from other jobs hits both. Their p99 under attack must
stay within max(3 x baseline, baseline + FLOOR_MS); a measurement that misses it is taken once
more before the test fails. Every test prints one line of numbers (pytest -s).
"""

import json
import multiprocessing
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import pytest

import latchtest as lt

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
ENHANCE_YOUR_CALM = 0xB

FAST = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
            password_min_length=12)
# One worker: the attacker's connection and the victims' share the loop. A short stall
# timeout keeps test 3 quick.
CONFIG = dict(workers=1, h2_stall_ms=2000, **FAST)


def report(name, **numbers):
    print(f"\n[h2_abuse] {name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()), flush=True)


# --- raw frames ---------------------------------------------------------------------------------


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes((ftype, flags)) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def header_block(path, method=b"\x82", scheme="http"):
    """HPACK without the dynamic table, so one block can be sent any number of times:
    indexed :method (0x82 GET) and :scheme, literal-without-indexing :path and :authority."""
    def literal(name_index, value):
        return bytes((name_index, len(value))) + value.encode()
    return (method + (b"\x86" if scheme == "http" else b"\x87") + literal(4, path) + literal(1, "localhost"))


class FrameReader:
    """Splits a received byte stream into frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            out.append((self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                        self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]
        return out


def connect(target, rcvbuf=None, timeout=5.0):
    """A TCP (or TLS, ALPN h2) connection to target = (host, port, tls, cafile)."""
    host, port, tls, cafile = target
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "h2"
    return s


def target_of(d, tls=False):
    u = urllib.parse.urlsplit(d.https_url if tls else d.h2c_url)
    return (u.hostname, u.port, tls, str(d.cert) if tls else None)


# --- a well-behaved client (python3-h2) --------------------------------------------------------


class Victim:
    def __init__(self, target):
        self.sock = connect(target)
        self.scheme = "https" if target[2] else "http"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def request(self, method, path, headers=(), body=None):
        """(status, body, seconds)."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", self.scheme), (":authority", "localhost"), (":path", path)]
        hdrs += list(headers)
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        t0 = time.perf_counter()
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status, data, done = None, b"", False
        while not done:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("victim connection closed")
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id == sid:
                        data += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise ConnectionError(f"victim got {ev}")
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
        return status, data, time.perf_counter() - t0

    def close(self):
        self.sock.close()


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


class World:
    """A tenant with a service client that may introspect, and a token to introspect."""

    def __init__(self, d):
        c = d.h2c(timeout=20.0)
        pw = lt.strong_password()
        tenant = f"t{os.urandom(4).hex()}"
        d.bootstrap(tenant, "admin@h2.test", pw)
        self.token = lt.login(c, tenant, "admin@h2.test", pw)["access_token"]
        svc = lt.make_client(c, self.token, prefix="svc", permissions=["introspect"])
        self.auth = lt.client_auth(svc)
        self.body = urllib.parse.urlencode({"token": self.token}).encode()
        c.close()


def measure(target, world, n):
    """Latencies (ms) of n sequential GET /healthz and n POST /oauth2/introspect on one
    connection."""
    v = Victim(target)
    try:
        hz, intro = [], []
        for _ in range(n):
            st, _, t = v.request("GET", "/healthz")
            assert st == 200
            hz.append(t)
            st, body, t = v.request("POST", "/oauth2/introspect",
                                    [("authorization", world.auth["authorization"]),
                                     ("content-type", "application/x-www-form-urlencoded")], world.body)
            assert st == 200 and b'"active":true' in body.replace(b" ", b""), body[:200]
            intro.append(t)
        return [t * 1000 for t in hz], [t * 1000 for t in intro]
    finally:
        v.close()


# The absolute floor of the victims' bound. latchd lets an attacking connection run at most
# about two loop turns of at most 200 streams each before it closes it, and a victim request
# that arrives meanwhile waits for that callback: about 0.5 ms in an optimised build, a few ms
# under ASan/UBSan. With sub-millisecond baselines, 3x alone would be tighter than that
# bounded stall (and than the scheduling noise of a shared 2-core machine). Under ASan the
# attacker reconnects hundreds of times per measurement, each time a few-ms stall: 10 ms
# (since the test clients set TCP_NODELAY the ASan baselines are ~0.6 ms instead of ~3 ms,
# which had hidden that in the old 6 ms floor; tests/run failed once at 7.1 ms). Likewise
# the optimised build: 3 ms (was 2; its baselines fell from ~1.5-3.7 ms to ~0.6 ms and a
# SETTINGS flood once measured 2.84 ms). Unguarded, the same attacks reach 12-27 ms.
FLOOR_MS = 10.0 if lt.SANITIZED else 3.0


def within(base, attack):
    """The victims' bound: 3x the baseline, or the baseline plus FLOOR_MS if that is more."""
    return attack <= max(3 * base, base + FLOOR_MS)


# --- attackers (each in its own process) -------------------------------------------------------


def _rapid_reset_blob(first_sid, n, block):
    parts = []
    for sid in range(first_sid, first_sid + 2 * n, 2):
        parts.append(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
        parts.append(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))  # CANCEL
    return b"".join(parts)


def _attack_conn(target, kind, stop, stats):
    """One attacking connection at full speed until the server closes it or `stop` is set.
    Adds to `stats`: connections, closed, goaway (ENHANCE_YOUR_CALM seen), time to close."""
    t0 = time.monotonic()
    try:
        s = connect(target)
    except OSError:
        stats["connect_errors"] += 1
        time.sleep(0.01)
        return
    stats["connections"] += 1
    reader = FrameReader()
    block = header_block("/healthz", scheme="https" if target[2] else "http")
    sid = 1
    closed = False
    try:
        s.sendall(PREFACE + settings())
        s.setblocking(False) if not target[2] else s.settimeout(0.5)
        while not stop.is_set() and not closed:
            if kind == "reset":
                chunk = _rapid_reset_blob(sid, 500, block)
                sid += 1000
                stats["streams"] += 500
            elif kind == "ping":
                chunk = frame(PING, 0, 0, b"12345678") * 500
            else:  # settings
                chunk = settings((4, 65535)) * 500
            view = memoryview(chunk)
            while view and not stop.is_set():
                try:
                    view = view[s.send(view):]
                except (BlockingIOError, ssl.SSLWantWriteError, socket.timeout):
                    pass
                # drain what the server sends, looking for its GOAWAY or EOF
                while True:
                    r, _, _ = select.select([s], [], [], 0)
                    if not r and not (target[2] and s.pending()):
                        break
                    try:
                        data = s.recv(1 << 20)
                    except (BlockingIOError, ssl.SSLWantReadError, socket.timeout):
                        break
                    if not data:
                        closed = True
                        break
                    for ftype, _, _, payload in reader.feed(data):
                        if ftype == GOAWAY and int.from_bytes(payload[4:8], "big") == ENHANCE_YOUR_CALM:
                            stats["goaway"] += 1
                if closed:
                    break
                if view:
                    select.select([s], [s], [], 0.01)
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
        try:  # what arrived before the reset is still readable: look for the GOAWAY
            s.setblocking(False)
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                for ftype, _, _, payload in reader.feed(data):
                    if ftype == GOAWAY and int.from_bytes(payload[4:8], "big") == ENHANCE_YOUR_CALM:
                        stats["goaway"] += 1
        except (OSError, ssl.SSLError):
            pass
    finally:
        s.close()
    if closed:
        stats["closed"] += 1
        stats["close_s"] = max(stats["close_s"], time.monotonic() - t0)


def attacker(target, kind, reconnect, stop, out):
    # Niced, like the CPU burner the baselines are measured with: the victims' client shares
    # this machine, and what is measured is the server, not the client host's scheduler.
    os.nice(10)
    stats = dict(connections=0, closed=0, goaway=0, streams=0, close_s=0.0, connect_errors=0)
    if kind == "idle":  # the control: the same CPU use, no traffic
        while not stop.is_set():
            pass
    else:
        while not stop.is_set():
            _attack_conn(target, kind, stop, stats)
            if not reconnect:
                break
    out.send(stats)


class Attack:
    """An attacker process (kind "reset", "ping", "settings"; "idle" burns CPU only) until
    result() or `seconds`."""

    def __init__(self, target, kind, reconnect=True, seconds=20.0):
        ctx = multiprocessing.get_context("fork")
        self.rx, tx = ctx.Pipe(duplex=False)
        self.stop = ctx.Event()
        self.proc = ctx.Process(target=attacker, args=(target, kind, reconnect, self.stop, tx), daemon=True)
        self.proc.start()
        self.deadline = time.monotonic() + seconds

    def result(self, wait=False):
        """Stops the attacker (at once, or with `wait` when it ends on its own) and returns its stats."""
        if not wait:
            self.stop.set()
        ready = self.rx.poll(max(0.0, self.deadline - time.monotonic()) + 5)
        self.stop.set()
        assert ready or self.rx.poll(10), "the attacker did not finish"
        stats = self.rx.recv()
        self.proc.join(5)
        return stats


def metric(d, reason):
    with lt.http1_client(d.h2c_url, timeout=5.0) as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith(f'latch_h2_abuse_closed_total{{reason="{reason}"}}'):
                return int(float(line.split()[-1]))
    return None


def attacked_p99(target, world, kind, rounds=5, n=80):
    """Victims' p99s (ms) without and with the attack: `rounds` times a block of `n`
    samples beside an idle CPU burner, then a block beside the attacker, pooled per
    condition so that load from other jobs drifting over time hits both alike."""
    base, hit = ([], []), ([], [])
    total = {}
    for _ in range(rounds):
        burner = Attack(target, "idle")
        time.sleep(0.1)
        for acc, samples in zip(base, measure(target, world, n)):
            acc.extend(samples)
        burner.result()
        attack = Attack(target, kind)
        time.sleep(0.2)  # let it get going
        for acc, samples in zip(hit, measure(target, world, n)):
            acc.extend(samples)
        for k, v in attack.result().items():
            total[k] = max(total.get(k, 0), v) if k == "close_s" else total.get(k, 0) + v
    return (p99(base[0]), p99(base[1])), (p99(hit[0]), p99(hit[1])), total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(db_factory, tls_cert, session_tmp):
    """One latchd for the module (stopped with SIGTERM at the end, which must exit 0 with no
    sanitizer report), and its World."""
    f = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = f(**CONFIG)
    yield d, World(d)
    problems = f.cleanup()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def healthz_served(d):
    """GET /healthz requests the server has handled (any status; reset ones count as 499)."""
    with lt.http1_client(d.h2c_url, timeout=5.0) as c:
        return sum(int(float(line.split()[-1])) for line in c.get("/metrics").text.splitlines()
                   if line.startswith('latch_http_requests_total{route="/healthz"'))


def victims_p99(target, world, kind):
    """attacked_p99, measured once more if the first try misses the bound (a burst of load
    from other jobs during one condition only). Returns (base, hit, stats, tries)."""
    for tries in (1, 2):
        base, hit, stats = attacked_p99(target, world, kind)
        if within(base[0], hit[0]) and within(base[1], hit[1]):
            break
    return base, hit, stats, tries


def check_victims(name, base, hit, **numbers):
    report(name, healthz_p99_ms=f"{base[0]:.2f}->{hit[0]:.2f}", introspect_p99_ms=f"{base[1]:.2f}->{hit[1]:.2f}",
           **numbers)
    assert within(base[0], hit[0]), f"{name}: /healthz p99 {base[0]:.2f} ms -> {hit[0]:.2f} ms under attack"
    assert within(base[1], hit[1]), f"{name}: introspection p99 {base[1]:.2f} ms -> {hit[1]:.2f} ms under attack"


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_rapid_reset_is_closed_and_victims_keep_their_latency(guarded, tls):
    d, world = guarded
    target = target_of(d, tls)
    before = metric(d, "rapid_reset")

    # one connection resetting every stream it opens, at full speed: closed within seconds
    single = Attack(target, "reset", reconnect=False, seconds=10.0).result(wait=True)
    assert single["connections"] == 1 and single["closed"] == 1, single
    assert single["close_s"] < 5.0, single

    # an attacker that reconnects each time it is closed, while victims are measured
    served = healthz_served(d)
    base, hit, stats, tries = victims_p99(target, world, "reset")
    served = healthz_served(d) - served
    check_victims(f"rapid_reset {'tls' if tls else 'h2c'}", base, hit, single_close_s=f"{single['close_s']:.3f}",
                  single_goaway=single["goaway"], attack_conns=stats["connections"], attack_closed=stats["closed"],
                  streams_sent=stats["streams"], served_per_conn=served // max(1, stats["connections"]), tries=tries)
    assert stats["closed"] >= stats["connections"] - 5, stats  # all but the ones stopped by the test (5 rounds)
    assert metric(d, "rapid_reset") > before
    assert d.responsive()


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_ping_and_settings_floods_are_closed(guarded, kind):
    d, world = guarded
    target = target_of(d)
    before = metric(d, f"{kind}_flood")
    single = Attack(target, kind, reconnect=False, seconds=10.0).result(wait=True)
    assert single["closed"] == 1 and single["close_s"] < 5.0, single
    assert single["goaway"] == 1, single
    base, hit, stats, tries = victims_p99(target, world, kind)
    check_victims(f"{kind}_flood", base, hit, single_close_s=f"{single['close_s']:.3f}",
                  attack_conns=stats["connections"], attack_closed=stats["closed"], tries=tries)
    assert metric(d, f"{kind}_flood") > before


def _streams_never_read(target, window0, batches=20):
    """Opens 100 streams of GET /metrics at a time without reading the socket (window0:
    reading everything but never opening a flow-control window). Returns the socket.
    More than one batch exceeds SETTINGS_MAX_CONCURRENT_STREAMS (100): h2o queues the
    excess and stops reading; only the stall sweep may close such a connection."""
    s = connect(target, rcvbuf=None if window0 else 4096)
    if window0:
        s.sendall(PREFACE + settings((4, 0)))  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    else:  # flow control wide open: only the socket holds the output back
        s.sendall(PREFACE + settings((4, 0x7FFFFFFF)) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
    block = header_block("/metrics")
    s.setblocking(False)
    sid = 1
    for _ in range(batches):
        batch = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, i, block) for i in range(sid, sid + 200, 2))
        sid += 200
        try:
            s.send(batch)
        except (BlockingIOError, OSError):
            break
        if window0:  # read what comes (headers, empty-window stalls), never a WINDOW_UPDATE
            try:
                while s.recv(1 << 20):
                    pass
            except (BlockingIOError, OSError):
                pass
        time.sleep(0.05)
    return s


@pytest.mark.parametrize("window0", [False, True], ids=["socket_not_read", "window_never_opened"])
def test_client_that_never_reads_is_closed_and_memory_is_bounded(guarded, window0):
    """Two waves of 5 connections, each opening streams of GET /metrics (tens of KB each)
    100 at a time and never reading: each wave is closed after the stall timeout (2 s here),
    and the second wave leaves the process no bigger than the first did."""
    d, world = guarded
    target = target_of(d)
    before = metric(d, "write_stall")
    rss = [rss_kib(d.pid)]
    took = []
    for wave in range(2):
        socks = [_streams_never_read(target, window0) for _ in range(5)]
        t0 = time.monotonic()

        def all_closed():
            for s in socks:
                try:
                    while True:
                        data = s.recv(1 << 20)
                        if not data:
                            break
                        if not window0:
                            return False  # still being served: not closed yet
                except BlockingIOError:
                    return False
                except OSError:
                    pass
            return True

        closed = lt.wait_for(all_closed, 10.0, step=0.2)
        took.append(time.monotonic() - t0)
        for s in socks:
            s.close()
        assert closed, f"wave {wave}: a connection that never reads was not closed"
        time.sleep(0.3)
        rss.append(rss_kib(d.pid))
    hz, intro = (p99(x) for x in measure(target, world, 50))
    report("never_reads" + ("_window0" if window0 else ""), closed_after_s="/".join(f"{t:.2f}" for t in took),
           rss_kib="->".join(map(str, rss)), healthz_p99_ms=f"{hz:.2f}", introspect_p99_ms=f"{intro:.2f}")
    reasons = {r: metric(d, r) for r in ("write_stall", "output_flood", "control_flood", "rapid_reset")}
    assert reasons["write_stall"] >= before + 10, f"closed for other reasons: {reasons} (write_stall was {before})"
    if not lt.SANITIZED:  # ASan's quarantine keeps freed memory resident for a while
        assert rss[2] - rss[1] < 8 * 1024, f"RSS kept growing: {rss} KiB"
    assert d.responsive()


def test_heavy_well_behaved_client_is_not_closed(guarded):
    """100 concurrent streams at a time, everything read, a few PINGs and cancels as a real
    client makes: served to the end, nothing counted as abuse."""
    d, world = guarded
    target = target_of(d)
    before = {r: metric(d, r) for r in ("rapid_reset", "ping_flood", "settings_flood", "control_flood",
                                         "output_flood", "write_stall")}
    v = Victim(target)
    conn, sock = v.conn, v.sock
    done = 0
    total = 6000
    t0 = time.monotonic()
    open_ids = set()
    sent = 0
    cancels = pings = 0
    while done < total:
        while len(open_ids) < 100 and sent < total:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                                    (":path", "/healthz")], end_stream=True)
            open_ids.add(sid)
            sent += 1
            if sent % 500 == 0:  # a client cancelling now and then
                conn.reset_stream(sid)
                open_ids.discard(sid)
                done += 1
                cancels += 1
            if sent % 1000 == 0:
                conn.ping(os.urandom(8))
                pings += 1
        sock.sendall(conn.data_to_send())
        data = sock.recv(1 << 20)
        assert data, "the well-behaved client was disconnected"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in open_ids:
                    open_ids.discard(ev.stream_id)
                    done += 1
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                if ev.stream_id in open_ids:
                    open_ids.discard(ev.stream_id)
                    done += 1
            elif isinstance(ev, h2.events.ConnectionTerminated):
                pytest.fail(f"the well-behaved client got GOAWAY: {ev}")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    took = time.monotonic() - t0
    # still open: one more request on the same connection
    st, _, _ = v.request("GET", "/healthz")
    v.close()
    report("heavy_client", requests=total, seconds=f"{took:.2f}", rps=int(total / took), cancels=cancels,
           pings=pings)
    assert st == 200
    for r, n in before.items():
        assert metric(d, r) == n, f"{r} counted for a well-behaved client"


@pytest.mark.skipif(not os.path.exists("/usr/bin/h2load"), reason="h2load (nghttp2-client) is not installed")
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_h2load_is_not_closed(guarded, tls):
    """h2load: 4 connections x 100 concurrent streams, 40000 requests, everything read."""
    d, _ = guarded
    url = (d.https_url if tls else d.h2c_url) + "/healthz"
    before = {r: metric(d, r) for r in ("rapid_reset", "ping_flood", "settings_flood", "control_flood",
                                         "output_flood", "write_stall")}
    p = subprocess.run(["nice", "-n", "5", "/usr/bin/h2load", "-n", "40000", "-c", "4", "-m", "100", url],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    rps = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    report(f"h2load {'tls' if tls else 'h2c'}", result=m.group(0) if m else out[-300:],
           rps=rps.group(1) if rps else "?")
    assert p.returncode == 0 and m, out + p.stderr
    assert int(m.group(4)) == 40000 and int(m.group(5)) == 0 and int(m.group(6)) == 0, out
    for r, n in before.items():
        assert metric(d, r) == n, f"{r} counted for h2load"


def _pings_survive(target, n):
    """True when a connection that sends n PINGs in one flight is still served afterwards."""
    s = connect(target)
    try:
        s.sendall(PREFACE + settings() + frame(PING, 0, 0, b"12345678") * n +
                  frame(HEADERS, END_STREAM | END_HEADERS, 1, header_block("/healthz")))
        reader, deadline = FrameReader(), time.monotonic() + 5
        while time.monotonic() < deadline:
            data = s.recv(1 << 16)
            if not data:
                return False
            for ftype, flags, sid, payload in reader.feed(data):
                if ftype == GOAWAY:
                    return False
                if ftype == DATA and sid == 1 and flags & END_STREAM:
                    return True
        return False
    except OSError:
        return False
    finally:
        s.close()


def test_budgets_follow_sighup(guarded):
    """h2_* keys are reloadable: a lower PING budget applies to the next connection."""
    d, _ = guarded
    target = target_of(d)
    assert _pings_survive(target, 20)

    def reload(**keys):
        d.config.update(keys)
        d.config_path.write_text(json.dumps(d.config, indent=2) + "\n")
        seen = len(d.log_records())
        d.send_signal(signal.SIGHUP)
        assert lt.wait_for(lambda: any("h2_max_pings" in r.get("msg", "") for r in d.log_records()[seen:]), 10), \
            lt.tail(d.stderr_text())

    reload(h2_max_pings=10)
    try:
        assert not _pings_survive(target, 20)
        assert _pings_survive(target, 5)
    finally:
        reload(h2_max_pings=100)
    assert _pings_survive(target, 20)


@pytest.mark.skipif(os.environ.get("LATCH_H2_ABUSE_UNGUARDED") != "1",
                    reason="a measurement for the record (LATCH_H2_ABUSE_UNGUARDED=1): the same attacks with every budget off")
@pytest.mark.parametrize("kind", ["reset", "ping"])
def test_unguarded_for_comparison(latchd_factory, kind):
    d = latchd_factory(**dict(CONFIG, h2_max_resets=0, h2_max_pings=0, h2_max_settings=0, h2_max_control=0,
                              h2_stall_ms=0))
    world = World(d)
    target = target_of(d)
    base, hit, stats = attacked_p99(target, world, kind, rounds=1)
    report(f"UNGUARDED {kind}", attack_conns=stats["connections"], attack_closed=stats["closed"],
           healthz_p99_ms=f"{base[0]:.2f}->{hit[0]:.2f}", introspect_p99_ms=f"{base[1]:.2f}->{hit[1]:.2f}",
           rss_kib=rss_kib(d.pid))
