"""Signing key rotation (issue 4, item 5): next -> current -> previous -> retired, over real
HTTP/2 against two latchd instances sharing one PostgreSQL.

Times are shrunk so the whole life of a key fits in a test: key_prepublish 2 s (a rotated-in
key signs 2 s after it is published), jwks_max_age 1 s, access_token_ttl 3 s (a previous key
stays published for 3 s + 30 s of clock leeway after it stopped signing), maintenance every
200 ms. python3-jwcrypto plays the resource server that verifies tokens from the JWKS.

Needs the integration of the lead: the maintenance thread (promotion, retirement, automatic
rotation), the reload on NOTIFY latch_keys, /oauth2/introspect, and POST /v1/admin/clients.
"""

import json
import re
import time
from datetime import datetime, timezone

import pytest
from jwcrypto import jwk, jwt as jjwt

import latchtest as lt

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                access_token_ttl=3, jwks_max_age=1, key_prepublish=2, maintenance_interval_ms=200)
LEEWAY = 30  # LT_TOKEN_LEEWAY: previous keys stay published access_token_ttl + this
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def kid_of(token):
    return lt.jwt_header(token)["kid"]


def ts(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class World:
    def sql(self, query):
        return lt.instance_sql(self.a, query)

    def contract(self, method, path, r):
        """Checks against proto/openapi.yaml once the path is in it."""
        if path in self.openapi.doc["paths"]:
            self.openapi.check_response(method, path, r)

    def login(self, client=None, tenant="ops", email="root@ops.test"):
        c = client or self.ca
        r = c.post("/v1/auth/login", json={"tenant": tenant, "email": email, "password": self.pw})
        assert r.status_code == 200, r.text
        return r.json()

    def fresh_admin(self):
        return self.login()["access_token"]

    def jwks(self, client):
        r = client.get("/.well-known/jwks.json")
        assert r.status_code == 200, r.text
        return r

    def jwks_kids(self, client):
        return [k["kid"] for k in self.jwks(client).json()["keys"]]

    def verify(self, token, client):
        """Verifies like a resource server: signature from the JWKS, then the claims."""
        keys = jwk.JWKSet.from_json(self.jwks(client).text)
        t = jjwt.JWT(jwt=token, key=keys, algs=["ES256", "EdDSA"],
                     check_claims={"exp": None, "iss": self.a.config.get("issuer", "https://127.0.0.1:8443")})
        return json.loads(t.claims)

    def keys(self, token=None):
        r = self.ca.get("/v1/admin/keys", headers=lt.bearer(token or self.fresh_admin()))
        assert r.status_code == 200, r.text
        self.contract("GET", "/v1/admin/keys", r)
        return {k["kid"]: k for k in r.json()["items"]}

    def rotate(self, token=None, client=None):
        return (client or self.ca).post("/v1/admin/keys/rotate", headers=lt.bearer(token or self.fresh_admin()))

    def introspect(self, token):
        r = self.ca.post("/oauth2/introspect", data={"token": token},
                         auth=(self.svc["client_id"], self.svc["client_secret"]))
        assert r.status_code == 200, r.text
        return r.json()

    def settle(self):
        """Waits until no rotation is pending (a next key from an earlier test has activated)."""
        assert lt.wait_for(lambda: self.sql("SELECT count(*) FROM signing_keys WHERE status = 'next'") == "0",
                           timeout=10), "a next key did not activate"
        current = self.sql("SELECT kid FROM signing_keys WHERE status = 'current'")
        # Both instances sign with it (their rings reloaded through NOTIFY).
        assert lt.wait_for(lambda: kid_of(self.login(self.ca)["access_token"]) == current
                           and kid_of(self.login(self.cb)["access_token"]) == current, timeout=5)
        return current


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    world = World()
    world.openapi = openapi
    world.a = factory(**SETTINGS)
    # The second instance: same database and master key, its own ports.
    world.b = factory(database_url=world.a.config["database_url"], master_key=world.a.config["master_key"], **SETTINGS)
    world.ca, world.cb = world.a.h2c(timeout=30.0), world.b.h2c(timeout=30.0)
    world.pw = lt.strong_password()
    world.a.bootstrap("ops", "root@ops.test", world.pw, global_admin=True)
    world.a.bootstrap("alpha", "alice@alpha.test", world.pw)
    root = world.fresh_admin()
    world.svc = lt.make_client(world.ca, root, name="rs", permissions=["introspect"])
    yield world
    lt.shut_down(factory, world.ca, world.cb)


def test_jwks_document_and_cache_control(w):
    for c in (w.ca, w.cb):
        r = w.jwks(c)
        assert r.headers["content-type"].startswith("application/jwk-set+json")
        assert r.headers["cache-control"] == "public, max-age=1"
        w.contract("GET", "/.well-known/jwks.json", r)
        keys = r.json()["keys"]
        assert keys and all("d" not in k for k in keys)
        current = w.sql("SELECT kid FROM signing_keys WHERE status = 'current'")
        assert keys[0]["kid"] == current  # the signing key first


def test_admin_only(w):
    alice = w.login(tenant="alpha", email="alice@alpha.test")["access_token"]
    for method, path in (("POST", "/v1/admin/keys/rotate"), ("GET", "/v1/admin/keys")):
        r = w.ca.request(method, path, headers=lt.bearer(alice))
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"
        w.contract(method, path, r)
        r = w.ca.request(method, path)
        assert r.status_code == 401, r.text
        r = w.ca.request(method, path, headers=lt.bearer("not-a-token"))
        assert r.status_code == 401, r.text
    assert w.sql("SELECT count(*) FROM signing_keys WHERE status = 'next'") == "0"


def test_rotation_through_the_api(w):
    """Published everywhere at once, signs after key_prepublish, old key verifies until its
    last token expired, then leaves the JWKS and its tokens stop introspecting as active."""
    old = w.settle()
    before = w.login()
    assert kid_of(before["access_token"]) == old
    assert w.verify(before["access_token"], w.cb)["sub"]

    audit_from = w.sql("SELECT coalesce(max(id), 0) FROM audit_log")
    t0 = time.time()
    r = w.rotate(before["access_token"])
    assert r.status_code == 202, r.text
    w.contract("POST", "/v1/admin/keys/rotate", r)
    k = r.json()
    new = k["kid"]
    assert k["state"] == "next" and new != old
    assert RFC3339.match(k["activates_at"]), k
    assert abs(ts(k["activates_at"]) - (t0 + SETTINGS["key_prepublish"])) <= 2, k
    # One pending rotation at a time.
    r = w.rotate(before["access_token"])
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "conflict"
    w.contract("POST", "/v1/admin/keys/rotate", r)

    # Published by both instances within ~2 s (NOTIFY), behind the current key; not signing.
    assert lt.wait_for(lambda: new in w.jwks_kids(w.cb), timeout=2.0), "second instance did not publish the next key"
    assert lt.wait_for(lambda: new in w.jwks_kids(w.ca), timeout=2.0)
    assert w.jwks_kids(w.cb)[0] == old
    listed = w.keys()
    assert listed[new]["state"] == "next" and listed[old]["state"] == "current"
    assert listed[new]["activates_at"] == k["activates_at"]
    early = w.login(w.cb)
    if time.time() < ts(k["activates_at"]) - 0.5:
        assert kid_of(early["access_token"]) == old, "the next key signed before activates_at"

    # It signs from activates_at on (maintenance every 200 ms, then a NOTIFY reload).
    after = lt.wait_for(lambda: (lambda t: t if kid_of(t["access_token"]) == new else None)(w.login(w.cb)), timeout=6.0)
    assert after, "the next key never started signing"
    assert time.time() >= ts(k["activates_at"]) - 1
    claims = w.verify(after["access_token"], w.ca)  # jwcrypto with the JWKS, after the rotation
    assert claims["sub"] == before_sub(before)
    assert w.introspect(after["access_token"])["active"] is True
    listed = w.keys()
    assert listed[new]["state"] == "current" and listed[old]["state"] == "previous"
    assert listed[old]["retired_at"] is not None
    # The old key still verifies what it signed, and stays published (first the new one).
    kids = w.jwks_kids(w.ca)
    assert kids[0] == new and old in kids
    assert w.verify(before["access_token"], w.cb)["sub"]

    # Until its last token (ttl 3 s + 30 s leeway) has expired: then it leaves both JWKS.
    gone_by = ts(listed[old]["retired_at"]) + SETTINGS["access_token_ttl"] + LEEWAY
    assert lt.wait_for(lambda: old not in w.jwks_kids(w.ca) and old not in w.jwks_kids(w.cb),
                       timeout=gone_by - time.time() + 6, step=0.5), "the previous key was never unpublished"
    assert time.time() >= gone_by - 2, "the previous key left the JWKS while its tokens could live"
    assert w.keys()[old]["state"] == "retired"
    assert w.introspect(before["access_token"]) == {"active": False}
    events = w.sql(f"SELECT string_agg(event || ':' || actor, ',' ORDER BY id) FROM audit_log "
                   f"WHERE target IN ('{old}', '{new}') AND event LIKE 'key.%' AND id > {audit_from}")
    assert events.split(",") == ["key.created:" + before_sub(before), "key.activated:system",
                                 "key.retired:system"], events


def before_sub(login_result):
    return lt.jwt_claims(login_result["access_token"])["sub"]


def test_retired_key_tokens_introspect_inactive(w):
    """A token still inside its lifetime, signed by a key that is retired (by hand here, as
    an operator would after a key compromise), introspects inactive on both instances."""
    w.settle()
    tok = w.login()["access_token"]
    kid = kid_of(tok)
    assert w.introspect(tok)["active"] is True
    r = w.rotate()
    assert r.status_code == 202, r.text
    new = w.settle()
    assert new == r.json()["kid"]
    assert w.introspect(tok)["active"] is True  # previous: still verifies
    w.sql(f"UPDATE signing_keys SET status = 'retired' WHERE kid = '{kid}'; NOTIFY latch_keys")
    assert lt.wait_for(lambda: w.introspect(tok) == {"active": False}, timeout=2.0), "a retired key's token is active"
    assert lt.wait_for(lambda: kid not in w.jwks_kids(w.cb), timeout=2.0)


def test_rotation_through_latchctl(w):
    w.settle()
    p = w.a.latchctl("keys", "rotate")
    assert p.returncode == 0, p.stderr
    out = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    kid = out["kid"]
    assert out["state"] == "next" and RFC3339.match(out["activates_at"]), p.stdout
    assert lt.wait_for(lambda: kid in w.jwks_kids(w.cb), timeout=2.0), "latchctl's key not published via NOTIFY"
    again = w.a.latchctl("keys", "rotate")
    assert again.returncode == 3, again.stdout + again.stderr
    assert "already" in again.stderr

    table = w.a.latchctl("keys", "list")
    assert table.returncode == 0, table.stderr
    row = [line for line in table.stdout.splitlines() if line.startswith(kid)]
    assert row and row[0].split()[1] == "next", table.stdout
    doc = json.loads(w.a.latchctl("keys", "list", "--json", check=True).stdout)
    states = [k["state"] for k in doc["items"]]
    assert states[0] == "next" and states.count("current") == 1, states
    assert "private" not in json.dumps(doc) and "sealed" not in json.dumps(doc)
    assert w.sql(f"SELECT actor FROM audit_log WHERE event = 'key.created' AND target = '{kid}'") == "latchctl"
    # It signs after key_prepublish, verified by jwcrypto from the other instance's JWKS.
    tok = lt.wait_for(lambda: (lambda t: t if kid_of(t) == kid else None)(w.login(w.cb)["access_token"]), timeout=6.0)
    assert tok, "latchctl's key never started signing"
    assert w.verify(tok, w.ca)["sub"]

    # Usage errors.
    assert w.a.latchctl("keys").returncode == 2
    assert w.a.latchctl("keys", "list", "--yaml").returncode == 2
    assert w.a.latchctl("keys", "rotate", "now").returncode == 2


def test_latchctl_refuses_another_master_key(w):
    w.settle()
    env = {"LATCH_MASTER_KEY": lt.random_master_key()}
    p = w.a.latchctl("keys", "rotate", env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "unseal" in p.stderr or "master key" in p.stderr, p.stderr
    assert w.sql("SELECT count(*) FROM signing_keys WHERE status = 'next'") == "0"


def test_automatic_rotation(latchd_factory):
    """key_rotation_interval 4 s with key_prepublish 2 s: a new key every ~4 s, each
    published 2 s before it signs, added by the system."""
    d = latchd_factory(key_rotation_interval=4, **SETTINGS)
    pw = lt.strong_password()
    d.bootstrap("ops", "root@ops.test", pw, global_admin=True)
    signed, published = {}, {}  # kid -> when first seen signing / in the JWKS
    with d.h2c(timeout=30.0) as c:
        end = time.monotonic() + 14
        while time.monotonic() < end and len(signed) < 3:
            now = time.monotonic()
            for k in c.get("/.well-known/jwks.json").json()["keys"]:
                published.setdefault(k["kid"], now)
            r = c.post("/v1/auth/login", json={"tenant": "ops", "email": "root@ops.test", "password": pw})
            assert r.status_code == 200, r.text
            signed.setdefault(kid_of(r.json()["access_token"]), time.monotonic())
            time.sleep(0.1)
    assert len(signed) >= 3, f"signing kids seen in 14 s: {list(signed)}"
    # Every rotated-in key was published about key_prepublish before it signed.
    for kid in list(signed)[1:]:
        assert kid in published and signed[kid] - published[kid] >= 1.0, (kid, signed, published)
    actors = lt.instance_sql(d, "SELECT string_agg(DISTINCT actor, ',') FROM audit_log WHERE event = 'key.created'"
                                " AND details->>'state' = 'next'")
    assert actors == "system"
