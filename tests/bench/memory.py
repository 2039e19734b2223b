#!/usr/bin/python3
"""Memory per 100k sessions and per 100k cached tokens (tests/bench/run memory).

    memory.py URL LATCHD_PID PSQL_CONNINFO CLIENT_JSON LOGIN_JSON N OUT_JSON

Sessions: N sessions with one refresh token each are inserted for the bench user (the rows
a login writes), and PostgreSQL's size of the two tables with their indexes is read before
and after. Then all N are ended through latch_sessions_end, as logout-all would: each becomes
a revocation that every latchd worker holds in memory until its access tokens expire; the
growth of latchd's resident set is that cost.

Cached tokens: N access tokens are minted through /oauth2/token (client_credentials) and each
is introspected once, so every worker's verified-token cache holds its share; reported are
latch_token_cache_bytes and the resident-set growth.

Requests go over one HTTP/2 connection per worker-sized group with up to 100 streams in
flight (python3-h2), so the client is not the bottleneck of a run of a few minutes.
"""
import base64
import json
import socket
import subprocess
import sys
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.settings


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def h2_run(host, port, reqs, window=100):
    """reqs: list of (method, path, headers, body bytes). Returns [(status, body bytes)]."""
    sock = socket.create_connection((host, port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    conn.increment_flow_control_window(1 << 30)
    sock.sendall(conn.data_to_send())
    out = [None] * len(reqs)
    stream_of, bodies, status = {}, {}, {}
    nxt, done = 0, 0
    while done < len(reqs):
        while nxt < len(reqs) and len(stream_of) < window:
            method, path, headers, body = reqs[nxt]
            sid = conn.get_next_available_stream_id()
            hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", host)] + headers
            if body:
                hdrs.append(("content-length", str(len(body))))
            conn.send_headers(sid, hdrs, end_stream=not body)
            if body:
                conn.send_data(sid, body, end_stream=True)
            stream_of[sid] = nxt
            bodies[sid] = []
            nxt += 1
        sock.sendall(conn.data_to_send())
        data = sock.recv(1 << 20)
        if not data:
            raise RuntimeError("connection closed")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id].append(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                i = stream_of.pop(ev.stream_id)
                out[i] = (status.pop(ev.stream_id, 0), b"".join(bodies.pop(ev.stream_id)))
                done += 1
            elif isinstance(ev, h2.events.StreamReset):
                raise RuntimeError(f"stream reset: {ev.error_code}")
        sock.sendall(conn.data_to_send())
    sock.close()
    return out


def metric(host, port, name):
    ((st, body),) = h2_run(host, port, [("GET", "/metrics", [], b"")])
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"metric {name} not found")


def psql(conninfo, sql):
    p = subprocess.run(["psql", conninfo, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"psql: {p.stderr.strip()}")
    return p.stdout.strip()


def vacuum(conninfo):
    for t in ("sessions", "refresh_tokens"):
        psql(conninfo, f"VACUUM ANALYZE {t}")


def main():
    url, pid, conninfo, client_json, login_json, n, out = sys.argv[1:8]
    n, pid = int(n), int(pid)
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port
    client = json.load(open(client_json))
    login = json.load(open(login_json))
    result = {"n": n}

    # --- sessions ---
    size_sql = ("SELECT pg_total_relation_size('sessions') + pg_total_relation_size('refresh_tokens')")
    vacuum(conninfo)
    before = int(psql(conninfo, size_sql))
    psql(conninfo, f"""
        WITH u AS (SELECT u.id, u.tenant_id FROM users u JOIN tenants t ON t.id = u.tenant_id
                   WHERE t.name = '{login["tenant"]}' AND u.email_norm = '{login["email"]}'),
        s AS (INSERT INTO sessions (tenant_id, user_id, idle_expires_at, expires_at, ip, user_agent, amr,
                                    auth_time, access_expires_at)
              SELECT u.tenant_id, u.id, now() + interval '1 day', now() + interval '30 days',
                     '203.0.113.7', 'Mozilla/5.0 (X11; Linux x86_64) bench', ARRAY['pwd'], now(),
                     now() + interval '1 hour'
              FROM u, generate_series(1, {n})
              RETURNING id, tenant_id)
        INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, expires_at)
        SELECT sha256(convert_to(s.id::text, 'UTF8')), s.id, s.tenant_id, now() + interval '30 days' FROM s""")
    vacuum(conninfo)
    after = int(psql(conninfo, size_sql))
    result["pg_bytes_per_100k_sessions"] = round((after - before) * 100000 / n)

    rev0 = metric(host, port, "latch_revocations")
    rss0 = rss_bytes(pid)
    psql(conninfo, "SELECT latch_sessions_end(array_agg(id), 'bench') FROM sessions "
                   "WHERE user_agent LIKE '%bench' AND revoked_at IS NULL")
    deadline = time.time() + 60
    while metric(host, port, "latch_revocations") < rev0 + n and time.time() < deadline:
        time.sleep(0.5)
    rev1 = metric(host, port, "latch_revocations")
    time.sleep(1)
    rss1 = rss_bytes(pid)
    result["revocations_held_per_worker"] = int(rev1 - rev0)
    result["latchd_rss_bytes_per_100k_revoked_sessions"] = round((rss1 - rss0) * 100000 / n)

    # --- cached tokens ---
    cred = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    auth = [("authorization", "Basic " + cred), ("content-type", "application/x-www-form-urlencoded")]
    t0 = time.time()
    minted = h2_run(host, port, [("POST", "/oauth2/token", auth, b"grant_type=client_credentials")] * n)
    toks = [json.loads(b)["access_token"] for st, b in minted if st == 200]
    if len(toks) != n:
        raise RuntimeError(f"minted {len(toks)} of {n}")
    result["mint_s"] = round(time.time() - t0, 1)
    cache0 = metric(host, port, "latch_token_cache_bytes")
    ent0 = metric(host, port, "latch_token_cache_entries")
    rss2 = rss_bytes(pid)
    reqs = [("POST", "/oauth2/introspect", auth, ("token=" + urllib.parse.quote(t)).encode()) for t in toks]
    # two connections: the kernel spreads them over the workers (SO_REUSEPORT)
    half = n // 2
    answers = h2_run(host, port, reqs[:half]) + h2_run(host, port, reqs[half:])
    active = sum(1 for st, b in answers if st == 200 and json.loads(b).get("active") is True)
    if active != n:
        raise RuntimeError(f"{active} of {n} introspections active")
    time.sleep(1)
    cache1 = metric(host, port, "latch_token_cache_bytes")
    ent1 = metric(host, port, "latch_token_cache_entries")
    rss3 = rss_bytes(pid)
    result["cached_tokens"] = int(ent1 - ent0)
    result["token_bytes"] = len(toks[0])
    result["cache_bytes_per_100k_tokens"] = round((cache1 - cache0) * 100000 / max(ent1 - ent0, 1))
    result["latchd_rss_bytes_per_100k_tokens"] = round((rss3 - rss2) * 100000 / max(ent1 - ent0, 1))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
