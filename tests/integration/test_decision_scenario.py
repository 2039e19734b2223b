"""The Cerbos peer's document scenario (../shared/peers/cerbos/POLICY.md) expressed as Latch
roles and policies (tests/bench/decisions), checked against the scenario's oracle.

The benchmark `tests/bench/run decisions` compares Latch with Cerbos on these policies; this
module makes sure the comparison is between equal decisions. It loads the policies the way an
operator would (roles through POST /v1/admin/roles, policy files through `latchctl policies
apply`), creates a client holding `decide`, and checks through /access/v1/evaluation(s):

  - a seeded grid of several thousand cases over principals, role sets, tenants,
    departments, documents, actions, IP addresses, request times and time zones, with the
    edge values POLICY.md names (17:59:59 and 18:00 local, 07:59:59 and 08:00, weekends and
    the day boundary in other zones, the ends of every corporate CIDR and the addresses just
    outside, archived documents, the globex share rule, the auditor on and off the network);
  - a few named cases whose answer POLICY.md states in words (so the oracle itself is
    checked on the edges that matter);
  - the benchmark bodies (the peer's bench/*.json translated by tests/bench/decisions/
    translate.py) against the allow counts of the peer's bench/expected.json, and the
    translated bodies kept in tests/bench/decisions/bodies against a fresh translation.

The oracle is reference_decide() of the peer's tools/check_cases.py, imported from
../shared at run time (skipped when that folder is absent).
"""

import datetime as dt
import importlib.util
import json
import random
import sys
import zoneinfo

import pytest

import latchtest as lt
from latchtest import strong_password as strong

PEER = lt.ROOT.parent / "shared" / "peers" / "cerbos"
DECISIONS = lt.ROOT / "tests" / "bench" / "decisions"
SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)
EVAL, EVALS = "/access/v1/evaluation", "/access/v1/evaluations"

TENANTS = ["acme", "globex", "initech"]
DEPTS = ["eng", "sales", "legal"]
ACTIONS = ["read", "write", "delete", "share"]
STATUSES = ["draft", "published", "archived"]
CLASSES = ["public", "internal", "confidential"]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]
ROLESETS = [["viewer"], ["editor"], ["admin"], ["viewer", "editor"], ["editor", "admin"], [], ["guest"]]
# The ends of each corporate range and the addresses just outside it. IPv4-mapped IPv6
# addresses are left out on purpose: Latch's ip_in matches ::ffff:10.1.2.3 against 10.0.0.0/8
# (engine.h), the oracle compares address families strictly.
IPS = [
    "10.0.0.0", "10.12.0.7", "10.255.255.255", "9.255.255.255", "11.0.0.0",
    "192.168.10.0", "192.168.10.44", "192.168.10.255", "192.168.9.255", "192.168.11.0",
    "2001:db8:1::", "2001:db8:1::9", "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
    "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "2001:db8:2::", "2001:db8:2::1",
    "203.0.113.50", "::1", "fe80::1",
]
# Local wall-clock times (date, h, m, s, µs). 2026-03-03 is a Tuesday, 2026-03-06 a Friday,
# 2026-03-07 a Saturday, 2026-03-08 a Sunday, 2026-03-09 a Monday; 2026-03-29 is the day
# Berlin moves to summer time (and New York already has, on 03-08).
TIMES = [
    ("2026-03-03", 10, 30, 0, 0), ("2026-03-03", 7, 59, 59, 0), ("2026-03-03", 8, 0, 0, 0),
    ("2026-03-03", 17, 59, 59, 0), ("2026-03-03", 17, 59, 59, 999000), ("2026-03-03", 18, 0, 0, 0),
    ("2026-03-03", 0, 0, 0, 0), ("2026-03-03", 23, 59, 59, 0),
    ("2026-03-06", 17, 59, 59, 0), ("2026-03-06", 23, 30, 0, 0), ("2026-03-07", 11, 0, 0, 0),
    ("2026-03-08", 9, 0, 0, 0), ("2026-03-09", 8, 0, 0, 0), ("2026-03-09", 7, 59, 59, 0),
    ("2026-03-29", 9, 30, 0, 0), ("2026-03-08", 17, 30, 0, 0),
]
AUDITOR = "compliance-auditor"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def oracle():
    path = PEER / "tools" / "check_cases.py"
    if not path.exists():
        pytest.skip(f"the Cerbos peer is not at {PEER}")
    return _load("check_cases", path).reference_decide


@pytest.fixture(scope="module")
def translate():
    sys.path.insert(0, str(DECISIONS))
    try:
        return _load("translate", DECISIONS / "translate.py")
    finally:
        sys.path.remove(str(DECISIONS))


def render_time(date, h, m, s, us, zone, style):
    """A local wall-clock time in `zone` as RFC 3339: in UTC ('Z'), or with the local offset."""
    y, mo, d = map(int, date.split("-"))
    local = dt.datetime(y, mo, d, h, m, s, us, tzinfo=zoneinfo.ZoneInfo(zone))
    if style == "utc":
        local = local.astimezone(dt.timezone.utc)
        text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{us // 1000:03d}" if us else "") + "Z"
        return text
    return local.isoformat(timespec="milliseconds" if us else "seconds")


def grid(seed=20261123, pairs=1100):
    """(principal, resource, action) in the peer's Cerbos shape, every action for each pair."""
    rng = random.Random(seed)
    out = []
    for i in range(pairs):
        auditor = rng.random() < 0.1
        pid = AUDITOR if auditor else f"u{rng.randrange(1, 8):02d}"
        tenant = rng.choice(TENANTS)
        zone = rng.choice(ZONES)
        date, h, m, s, us = rng.choice(TIMES)
        principal = {"id": pid, "roles": list(rng.choice(ROLESETS)), "attr": {
            "tenant": tenant, "department": rng.choice(DEPTS), "request_ip": rng.choice(IPS),
            "request_time": render_time(date, h, m, s, us, zone, rng.choice(["utc", "local"])), "tz": zone}}
        r_tenant = tenant if rng.random() < 0.7 else rng.choice(TENANTS)
        dept = principal["attr"]["department"] if rng.random() < 0.5 else rng.choice(DEPTS)
        owner = pid if rng.random() < 0.3 else f"u{rng.randrange(1, 8):02d}"
        resource = {"kind": "document", "id": f"doc-{i:05d}", "scope": r_tenant, "attr": {
            "tenant": r_tenant, "department": dept, "owner": owner, "status": rng.choice(STATUSES),
            "classification": rng.choice(CLASSES)}}
        out.extend((principal, resource, a) for a in ACTIONS)
    return out


def principal(pid="ed", roles=("editor",), tenant="acme", dept="eng", ip="10.20.0.5",
              when="2026-03-03T10:30:00+01:00", tz="Europe/Berlin"):
    return {"id": pid, "roles": list(roles), "attr": {"tenant": tenant, "department": dept, "request_ip": ip,
                                                      "request_time": when, "tz": tz}}


def document(did="doc-1", tenant="acme", dept="eng", owner="bob", status="published", cls="internal"):
    return {"kind": "document", "id": did, "scope": tenant, "attr": {
        "tenant": tenant, "department": dept, "owner": owner, "status": status, "classification": cls}}


# (why, principal, document, action, what POLICY.md says)
NAMED = [
    ("editor writes a department document at 10:30 Berlin, Tuesday", principal(), document(), "write", "allow"),
    ("... at 17:59:59 Berlin", principal(when="2026-03-03T16:59:59Z"), document(), "write", "allow"),
    ("... at 18:00:00 Berlin", principal(when="2026-03-03T17:00:00Z"), document(), "write", "deny"),
    ("... at 07:59:59 Berlin", principal(when="2026-03-03T07:59:59+01:00"), document(), "write", "deny"),
    ("... at 08:00:00 Berlin", principal(when="2026-03-03T07:00:00Z"), document(), "write", "allow"),
    ("... on Saturday", principal(when="2026-03-07T11:00:00+01:00"), document(), "write", "deny"),
    ("Friday 23:30 UTC is Saturday 08:30 in Tokyo", principal(when="2026-03-06T23:30:00Z", tz="Asia/Tokyo"),
     document(), "write", "deny"),
    ("Sunday 15:30 in zone UTC",
     principal(when="2026-03-08T15:30:00Z", tz="UTC"), document(), "write", "deny"),
    ("New York 09:00 in summer time (13:00 UTC)", principal(when="2026-03-09T13:00:00Z", tz="America/New_York"),
     document(), "write", "allow"),
    ("Friday 12:30 UTC is 07:30 in New York (still winter time)",
     principal(when="2026-03-06T12:30:00Z", tz="America/New_York"), document(), "write", "deny"),
    ("editor shares from 10.20.0.5 (no time limit)", principal(when="2026-03-03T22:30:00+01:00"), document(),
     "share", "allow"),
    ("... from 2001:db8:1:ffff:ffff:ffff:ffff:ffff (last of the /48)",
     principal(ip="2001:db8:1:ffff:ffff:ffff:ffff:ffff"), document(), "share", "allow"),
    ("... from 2001:db8:2:: (first after the /48)", principal(ip="2001:db8:2::"), document(), "share", "deny"),
    ("... from 2001:db8:0:ffff:ffff:ffff:ffff:ffff (last before the /48)",
     principal(ip="2001:db8:0:ffff:ffff:ffff:ffff:ffff"), document(), "share", "deny"),
    ("... from 192.168.11.0", principal(ip="192.168.11.0"), document(), "share", "deny"),
    ("... from 192.168.10.255", principal(ip="192.168.10.255"), document(), "share", "allow"),
    ("owner reads an archived document", principal(), document(owner="ed", status="archived"), "read", "allow"),
    ("owner may not write it", principal(), document(owner="ed", status="archived"), "write", "deny"),
    ("nor delete it", principal(), document(owner="ed", status="archived", cls="public"), "delete", "deny"),
    ("viewer reads a confidential document of its department", principal("alice", ["viewer"]),
     document(cls="confidential"), "read", "allow"),
    ("viewer reads a confidential document of another department", principal("alice", ["viewer"]),
     document(dept="sales", cls="confidential"), "read", "deny"),
    ("admin deletes from the corporate IPv6 network", principal("adam", ["admin"], dept="legal", ip="2001:db8:1::42"),
     document(), "delete", "allow"),
    ("admin deletes from outside", principal("adam", ["admin"], dept="legal", ip="203.0.113.7"),
     document(), "delete", "deny"),
    ("nothing across tenants", principal("adam", ["admin"], tenant="globex"), document(), "read", "deny"),
    ("globex: her internal document is not shared", principal("gina", ["editor"], tenant="globex"),
     document(tenant="globex", owner="gina"), "share", "deny"),
    ("globex: her public document is", principal("gina", ["editor"], tenant="globex"),
     document(tenant="globex", owner="gina", cls="public"), "share", "allow"),
    ("auditor reads anything from the corporate network", principal(AUDITOR, ["admin"], tenant="initech",
                                                                    ip="10.9.9.9"),
     document(tenant="globex", status="archived", cls="confidential", dept="legal"), "read", "allow"),
    ("auditor never writes, even its own tenant as admin", principal(AUDITOR, ["admin"], ip="10.9.9.9"),
     document(), "write", "deny"),
    ("auditor off the network reads only as its roles", principal(AUDITOR, ["admin"], ip="198.51.100.1"),
     document(tenant="globex"), "read", "deny"),
    ("... its own tenant as admin", principal(AUDITOR, ["admin"], ip="198.51.100.1"), document(), "read", "allow"),
    ("no role, no access", principal("nobody", []), document(owner="nobody"), "read", "deny"),
]


@pytest.fixture(scope="module")
def env(db_factory, tls_cert, session_tmp):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    http = d.h2c(timeout=60.0)
    try:
        pw = strong()
        d.bootstrap("docs", "admin@docs.test", pw)
        token = lt.login(http, "docs", "admin@docs.test", pw)["access_token"]
        roles = json.loads((DECISIONS / "roles.json").read_text())["roles"]
        for role in roles:
            r = http.post("/v1/admin/roles", headers=lt.bearer(token), json=role)
            assert r.status_code == 201, r.text
        p = d.latchctl("policies", "apply", str(DECISIONS / "policies"), "--tenant", "docs")
        assert p.returncode == 0, p.stdout + p.stderr
        client = lt.make_client(http, token, prefix="pep", permissions=["decide"])
        auth = lt.client_auth(client)
        probe = json.loads((DECISIONS / "bodies" / "latch_single.json").read_text())

        def ready():
            r = http.post(EVAL, headers=auth, json=probe)
            return r.status_code == 200 and r.json()["decision"] is True

        assert lt.wait_for(ready, 5.0), "the scenario's policies never reached the decision snapshot"
        yield http, auth
    finally:
        lt.shut_down(factory, http)


def batch_decisions(http, auth, bodies, chunk=100):
    """Latch decisions for a list of single-evaluation bodies, sent as batches of `chunk` items (under the 64 KiB body limit)
    (each item carries its own subject, resource, action and context)."""
    out = []
    for i in range(0, len(bodies), chunk):
        part = bodies[i:i + chunk]
        r = http.post(EVALS, headers=auth, json={"evaluations": part})
        assert r.status_code == 200, r.text
        answers = r.json()["evaluations"]
        assert len(answers) == len(part)
        out.extend("allow" if a["decision"] is True else "deny" for a in answers)
    return out


def describe(p, res, action):
    return (f"{action} by {p['id']} {p['roles']} {p['attr']} on {res['id']} scope={res['scope']} {res['attr']}")


def test_named_cases(env, oracle, translate):
    http, auth = env
    bad = []
    for why, p, res, action, says in NAMED:
        ref = oracle(p, res, action)
        assert ref == says, f"the oracle disagrees with POLICY.md on: {why}"
        r = http.post(EVAL, headers=auth, json=translate.evaluation(p, res, action))
        assert r.status_code == 200, r.text
        got = "allow" if r.json()["decision"] is True else "deny"
        if got != says:
            bad.append(f"{why}: expected {says}, got {got}")
    assert not bad, "\n".join(bad)


def test_grid_agrees_with_the_oracle(env, oracle, translate):
    http, auth = env
    cases = grid()
    want = [oracle(p, res, a) for p, res, a in cases]
    # the grid is not lopsided: both answers are common, for every action
    for action in ACTIONS:
        per = [w for (_, _, a), w in zip(cases, want) if a == action]
        assert 0.05 < per.count("allow") / len(per) < 0.95, (action, per.count("allow"), len(per))
    got = batch_decisions(http, auth, [translate.evaluation(p, res, a) for p, res, a in cases])
    bad = [f"expected {w}, got {g}: {describe(*c)}" for c, w, g in zip(cases, want, got) if w != g]
    assert not bad, f"{len(bad)} of {len(cases)} decisions disagree with reference_decide:\n" + "\n".join(bad[:25])


def test_single_evaluations_agree(env, oracle, translate):
    """A slice of the grid one request at a time (the single-evaluation endpoint)."""
    http, auth = env
    cases = grid(seed=7, pairs=120)
    bad = []
    for p, res, a in cases:
        r = http.post(EVAL, headers=auth, json=translate.evaluation(p, res, a))
        assert r.status_code == 200, r.text
        got = "allow" if r.json()["decision"] is True else "deny"
        if got != oracle(p, res, a):
            bad.append(describe(p, res, a))
    assert not bad, "\n".join(bad[:25])


def test_bench_bodies(env, oracle, translate, tmp_path):
    """The benchmark's bodies decide as the peer's bench/expected.json says, and the
    translated copies kept in the tree are what translate.py makes of the peer's bodies."""
    http, auth = env
    translate.bench(str(PEER), str(tmp_path))
    for f in sorted(tmp_path.glob("latch_*.json")):
        kept = DECISIONS / "bodies" / f.name
        assert json.loads(kept.read_text()) == json.loads(f.read_text()), f"{kept} is stale: rerun translate.py"
    expected = json.loads((tmp_path / "expected.json").read_text())
    peer_expected = json.loads((PEER / "bench" / "expected.json").read_text())
    for payload in ("single", "batch10x3"):
        assert expected[payload] == peer_expected[payload]
    for payload, want in expected.items():
        body = json.loads((tmp_path / f"latch_{payload}.json").read_text())
        if "evaluations" in body:
            r = http.post(EVALS, headers=auth, json=body)
            assert r.status_code == 200, r.text
            decisions = [e["decision"] for e in r.json()["evaluations"]]
        else:
            r = http.post(EVAL, headers=auth, json=body)
            assert r.status_code == 200, r.text
            decisions = [r.json()["decision"]]
        assert {"decisions": len(decisions), "allow": sum(d is True for d in decisions)} == want, payload
    # The peer's AuthZEN bodies translate to the same requests as its REST bodies.
    for name, twin in (("authzen_single.json", "latch_single.json"),
                       ("authzen_batch10x3.json", "latch_batch10x3.json")):
        assert translate.translate(json.loads((PEER / "bench" / name).read_text())) == \
            json.loads((tmp_path / twin).read_text())
