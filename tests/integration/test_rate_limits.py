"""Rate limits (issue 7, item 3): every route group trips with a low configured limit and
answers 429 problem+json with Retry-After and the RateLimit-* headers; the IP, client, user
and tenant buckets are independent; X-Forwarded-For counts only from trusted_proxies; SIGHUP
changes limits live; latch_rate_limited_total counts trips; a sampled audit row is written.

Client addresses: every test sends from loopback addresses of its own (127.0.0.0/8 all
routes to lo), so per-IP buckets never leak between tests. The module's latchd starts
without limits (set-up logs in and creates clients), then gets its limits by SIGHUP.
"""

import json
import re
import signal
import subprocess
import time

import httpx
import pytest

import latchtest as lt

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)
FORM = {"content-type": "application/x-www-form-urlencoded"}
SLOW = 0.001  # one token per 1000 s: a bucket never refills during a test


def lim(burst):
    return {"rate": SLOW, "burst": burst}


LIMITS = {
    "defaults": False,
    "login": {"ip": lim(2), "tenant": lim(4)},
    "mfa": {"ip": lim(2)},
    "token": {"ip": lim(2)},
    "introspection": {"ip": lim(5), "client": lim(3), "tenant": lim(5)},
    "decisions": {"ip": lim(2)},
    "admin": {"ip": lim(50), "user": lim(3)},
}
PROXY = "127.0.0.2"


def client(d, addr):
    transport = httpx.HTTPTransport(http1=False, http2=True, local_address=addr)
    return httpx.Client(base_url=d.h2c_url, transport=transport, timeout=20.0, trust_env=False)


def reconfigure(d, **changes):
    """Rewrites the config file with `changes` and SIGHUPs; returns once it was applied."""
    d.config.update(changes)
    d.config_path.write_text(json.dumps(d.config, indent=2) + "\n")
    before = d.stderr_text().count("configuration reloaded")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while d.stderr_text().count("configuration reloaded") == before:
        assert time.monotonic() < deadline, lt.tail(d.stderr_text())
        time.sleep(0.05)


def limited(r, limit, kind=None):
    """`r` is the rate limiter's 429 with every header, and its problem body."""
    assert r.status_code == 429, f"{r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "rate_limited" and body["status"] == 429, body
    assert set(body) <= {"type", "title", "status", "detail", "code"}, body
    retry = int(r.headers["retry-after"])
    assert retry >= 1
    assert int(r.headers["ratelimit-limit"]) == limit
    assert r.headers["ratelimit-remaining"] == "0"
    assert int(r.headers["ratelimit-reset"]) >= retry
    if kind:
        assert f"for this {kind}" in body["detail"], body
    return body


def metric(d, group, kind):
    with d.h2c() as c:
        text = c.get("/metrics").text
    m = re.search(rf'^latch_rate_limited_total{{group="{group}",kind="{kind}"}} (\d+)$', text, re.M)
    assert m, text[-2000:]
    return int(m.group(1))


def audit_rows(d, target):
    return lt.instance_sql(d, "SELECT count(*) FROM audit_log WHERE event = 'rate_limit.tripped' "
                              f"AND target = '{target}'")


def wait_audit(d, target, want=1):
    deadline = time.monotonic() + 5
    while int(audit_rows(d, target)) < want:
        assert time.monotonic() < deadline, f"no rate_limit.tripped audit row for {target}"
        time.sleep(0.1)


class World:
    pass


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS, trusted_proxies="")
    world = World()
    world.d = d
    world.c = d.h2c(timeout=30.0)
    world.pw = lt.strong_password()
    world.alpha = d.bootstrap("alpha", "alice@alpha.test", world.pw)["tenant_id"]
    world.beta = d.bootstrap("beta", "bob@beta.test", world.pw)["tenant_id"]
    alice = world.c.post("/v1/auth/login", json={"tenant": "alpha", "email": "alice@alpha.test", "password": world.pw})
    bob = world.c.post("/v1/auth/login", json={"tenant": "beta", "email": "bob@beta.test", "password": world.pw})
    assert alice.status_code == 200 and bob.status_code == 200
    world.alice, world.bob = alice.json()["access_token"], bob.json()["access_token"]
    world.a1 = lt.make_client(world.c, world.alice, permissions=["introspect"])
    world.a2 = lt.make_client(world.c, world.alice, permissions=["introspect"])
    world.b1 = lt.make_client(world.c, world.bob, permissions=["introspect"])
    # now the limits, live
    reconfigure(d, rate_limits=LIMITS, trusted_proxies=PROXY)
    yield world
    lt.shut_down(factory, world.c)


# One representative request per group; the IP bucket is charged before the handler runs, so
# they need no credentials.
GROUPS = [
    ("login", "POST", "/v1/auth/login", {"json": {"tenant": "nope", "email": "x@y.z", "password": "p"}}),
    ("mfa", "POST", "/v1/auth/mfa/verify", {"json": {}}),
    ("token", "POST", "/oauth2/token", {"data": {"grant_type": "client_credentials"}, "headers": FORM}),
    ("introspection", "POST", "/oauth2/introspect", {"data": {"token": "x"}, "headers": FORM}),
    ("decisions", "POST", "/access/v1/evaluation", {"json": {}}),
    ("admin", "GET", "/v1/admin/users", {}),
]


@pytest.mark.parametrize("group,method,path,kw", GROUPS, ids=[g[0] for g in GROUPS])
def test_each_group_trips_per_ip(w, group, method, path, kw):
    burst = LIMITS[group]["ip"]["burst"]
    addr = f"127.0.1.{10 + [g[0] for g in GROUPS].index(group)}"
    before = metric(w.d, group, "ip")
    with client(w.d, addr) as c:
        for _ in range(burst):
            assert c.request(method, path, **kw).status_code != 429
        limited(c.request(method, path, **kw), burst, "ip")
        limited(c.request(method, path, **kw), burst, "ip")
        # ops and discovery are never limited
        for _ in range(5):
            assert c.get("/healthz").status_code == 200
            assert c.get("/.well-known/jwks.json").status_code == 200
    # another address is not limited
    with client(w.d, "127.0.1.99") as c:
        assert c.request(method, path, **kw).status_code != 429
    assert metric(w.d, group, "ip") == before + 2


def test_client_ip_and_tenant_buckets_are_independent(w):
    auth = lt.client_auth
    with client(w.d, "127.0.2.1") as c:
        for _ in range(3):
            assert c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.a1)).status_code == 200
        limited(c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.a1)), 3, "client")
    with client(w.d, "127.0.2.2") as c:
        # the client's bucket follows it to another address
        limited(c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.a1)), 3, "client")
        # a2 shares alpha's tenant bucket (5): a1 took 3 of it (refusals cost the tenant nothing)
        for _ in range(2):
            assert c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.a2)).status_code == 200
        limited(c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.a2)), 5, "tenant")
    with client(w.d, "127.0.2.3") as c:
        # another tenant's client is untouched
        for _ in range(3):
            assert c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.b1)).status_code == 200
    with client(w.d, "127.0.2.4") as c:
        # the IP bucket (5) trips before any credential is looked at
        for _ in range(5):
            assert c.post("/oauth2/introspect", data={"token": "x"}).status_code == 401
        limited(c.post("/oauth2/introspect", data={"token": "x"}, headers=auth(w.b1)), 5, "ip")
    assert metric(w.d, "introspection", "client") >= 2
    assert metric(w.d, "introspection", "tenant") >= 1


def test_user_bucket_on_bearer_calls(w):
    with client(w.d, "127.0.3.1") as c:
        h = {"authorization": f"Bearer {w.alice}"}
        for _ in range(3):
            assert c.get("/v1/admin/users", headers=h).status_code == 200
        limited(c.get("/v1/admin/users", headers=h), 3, "user")
    with client(w.d, "127.0.3.2") as c:
        limited(c.get("/v1/admin/users", headers={"authorization": f"Bearer {w.alice}"}), 3, "user")
        assert c.get("/v1/admin/users", headers={"authorization": f"Bearer {w.bob}"}).status_code == 200
        # a group without a user limit is not affected by the admin one
        assert c.get("/v1/me", headers={"authorization": f"Bearer {w.alice}"}).status_code == 200


def test_login_tenant_bucket(w):
    body = {"tenant": "beta", "email": "nobody@beta.test", "password": "wrong password here"}
    codes = []
    for i in range(2):  # the IP bucket holds 2: two addresses, four attempts
        with client(w.d, f"127.0.4.{i + 1}") as c:
            codes += [c.post("/v1/auth/login", json=body).status_code for _ in range(2)]
    assert codes == [401] * 4
    with client(w.d, "127.0.4.3") as c:
        # the same tenant spelt otherwise is the same bucket
        limited(c.post("/v1/auth/login", json=dict(body, tenant=" BETA")), 4, "tenant")
        assert c.post("/v1/auth/login", json=dict(body, tenant="alpha")).status_code == 401


def test_trusted_proxies(w):
    path, kw = "/access/v1/evaluation", {"json": {}}
    # from the trusted proxy, each X-Forwarded-For client has its own bucket
    with client(w.d, PROXY) as c:
        for _ in range(2):
            assert c.post(path, headers={"x-forwarded-for": "198.51.100.1"}, **kw).status_code != 429
        limited(c.post(path, headers={"x-forwarded-for": "203.0.113.66, 198.51.100.1"}, **kw), 2, "ip")
        assert c.post(path, headers={"x-forwarded-for": "198.51.100.2"}, **kw).status_code != 429
        # the right-most untrusted entry counts: a spoofed left part changes nothing
        limited(c.post(path, headers={"x-forwarded-for": "1.1.1.1, 198.51.100.1"}, **kw), 2, "ip")
        # malformed from the proxy: the proxy's own address (fresh bucket: 2 pass, then 429)
        for _ in range(2):
            assert c.post(path, headers={"x-forwarded-for": "not-an-ip"}, **kw).status_code != 429
        limited(c.post(path, headers={"x-forwarded-for": "198.51.100.1, junk"}, **kw), 2, "ip")
        # and no header at all: also the proxy's address
        limited(c.post(path, **kw), 2, "ip")
    # an untrusted peer's X-Forwarded-For is ignored: rotating it does not help
    with client(w.d, "127.0.5.1") as c:
        for i in range(2):
            assert c.post(path, headers={"x-forwarded-for": f"198.51.100.{10 + i}"}, **kw).status_code != 429
        limited(c.post(path, headers={"x-forwarded-for": "198.51.100.99"}, **kw), 2, "ip")
    # the audit row names the client behind the proxy, sampled once per key
    wait_audit(w.d, "ip:198.51.100.1")
    time.sleep(0.3)
    assert audit_rows(w.d, "ip:198.51.100.1") == "1"
    where = "event = 'rate_limit.tripped' AND target = 'ip:198.51.100.1'"
    row = lt.instance_sql(w.d, f"SELECT id, outcome, coalesce(ip, '') FROM audit_log WHERE {where}")
    rid, outcome, ip = row.split("|")
    assert outcome == "denied", row
    if not ip:  # personal data kept beside the chain (sql/0016_privacy.sql)
        ip = lt.instance_sql(w.d, f"SELECT ip FROM audit_pii WHERE event_id = {rid}")
    assert ip == "198.51.100.1", row


def test_audit_row_for_a_client_and_the_chain_holds(w):
    with client(w.d, "127.0.6.1") as c:
        auth = lt.client_auth(w.b1)
        n = 0
        while c.post("/oauth2/introspect", data={"token": "x"}, headers=auth).status_code != 429:
            n += 1
            assert n <= 3
    wait_audit(w.d, f"client:{w.b1['client_id']}")
    actor = lt.instance_sql(w.d, "SELECT actor FROM audit_log WHERE event = 'rate_limit.tripped' "
                                 f"AND target = 'client:{w.b1['client_id']}'")
    assert actor == w.b1["client_id"]


def test_sighup_changes_a_limit_live(latchd_factory):
    d = latchd_factory(**SETTINGS, rate_limits={"defaults": False, "decisions": {"ip": lim(2)}})
    path = "/access/v1/evaluation"
    with client(d, "127.0.7.1") as c:
        assert [c.post(path, json={}).status_code != 429 for _ in range(2)] == [True, True]
        limited(c.post(path, json={}), 2, "ip")
    reconfigure(d, rate_limits={"defaults": False, "decisions": {"ip": lim(6)}})
    with client(d, "127.0.7.2") as c:
        for _ in range(6):
            assert c.post(path, json={}).status_code != 429
        limited(c.post(path, json={}), 6, "ip")
    # a bad value is refused as a whole and the running limits stay
    reconfigure_bad = dict(d.config, rate_limits={"decisions": {"ip": {"rate": -1}}})
    d.config_path.write_text(json.dumps(reconfigure_bad) + "\n")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "rate_limits: decisions.ip.rate" not in d.stderr_text():
        assert time.monotonic() < deadline, lt.tail(d.stderr_text())
        time.sleep(0.05)
    with client(d, "127.0.7.3") as c:
        for _ in range(6):
            assert c.post(path, json={}).status_code != 429
        limited(c.post(path, json={}), 6, "ip")
    # off: nothing limited
    reconfigure(d, rate_limits={"defaults": False})
    with client(d, "127.0.7.3") as c:
        for _ in range(10):
            assert c.post(path, json={}).status_code != 429


def test_bad_rate_limits_stop_start_up(latchd_factory):
    d = latchd_factory(**SETTINGS, rate_limits={"login": {"ip": {"rate": 1, "burst": 0}}}, start=False)
    d.config_path.write_text(json.dumps(d.config) + "\n")
    r = subprocess.run([str(lt.latchd_bin()), "--config", str(d.config_path), "--check-config"],
                       capture_output=True, text=True, env=lt.child_env())
    assert r.returncode == 1 and "rate_limits: login.ip.burst" in r.stderr, r.stderr
    d.config["rate_limits"] = {"login": {"ip": {"rate": 1, "burst": 1}}}
    d.config_path.write_text(json.dumps(d.config) + "\n")
    r = subprocess.run([str(lt.latchd_bin()), "--config", str(d.config_path), "--check-config"],
                       capture_output=True, text=True, env=lt.child_env({"LATCH_TRUSTED_PROXIES": "10.0.0.0/40"}))
    assert r.returncode == 1 and "trusted_proxies" in r.stderr, r.stderr


def test_default_limits_stop_a_login_flood(latchd_factory):
    d = latchd_factory(**SETTINGS, rate_limits={})  # the built-in limits: login per IP 10/s, burst 30
    with client(d, "127.0.8.1") as c:
        # a new email each time: the per-source lockout (email + IP) stays out of the way
        # 30 at once, then 10 a second: a client faster than that meets a 429 soon after
        codes = []
        for i in range(300):
            r = c.post("/v1/auth/login", json={"tenant": "nope", "email": f"x{i}@y.z", "password": "not it at all"})
            codes.append(r.status_code)
            if r.status_code == 429:
                limited(r, 30, "ip")
                break
        assert codes[:30] == [401] * 30 and codes[-1] == 429, codes
        # the hot paths have no built-in limit
        for _ in range(60):
            assert c.post("/oauth2/introspect", data={"token": "x"}, headers=FORM).status_code == 401
