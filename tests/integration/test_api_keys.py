"""API keys (issue 7, item 1): /v1/admin/api-keys and /v1/me/api-keys, and keys as the caller's
credential at introspection, decisions, forward-auth and the admin API, over real HTTP/2
against two latchd instances on one PostgreSQL.

The world (tenant acme, admin alice; tenant beta, admin bob):
  roles   reader (document:read), writer (document:create, inherits reader)
  users   ann (writer), carl (no role)
  client  svc (permissions introspect, decide; role reader), mute (no permission)
  rules   GET /docs/{id} -> document read, POST /docs -> document create

What matters: the key is shown once and only SHA-256(secret) is stored; a key never does
more than its owner (roles subset at creation, intersected with the owner's current roles
at use); a revocation is refused on both instances within a second; last_used_at is
written in batches; bad keys are 401 without detail; a key acts in its tenant only.
"""

import hashlib
import json
import re
import time
import uuid

import pytest

import latchtest as lt
from latchtest import problem, strong_password as strong

FLUSH_MS = 400
SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12, api_key_last_used_flush_ms=FLUSH_MS)
KEY = re.compile(r"^lt_ak_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$")
KEYS = "/v1/admin/api-keys"
KEY_ITEM = "/v1/admin/api-keys/{id}"
ME_KEYS = "/v1/me/api-keys"
ME_KEY_ITEM = "/v1/me/api-keys/{id}"
FA = "/v1/forward-auth"

RULES = {"routes": [
    {"methods": ["GET"], "path": "/docs/{id}", "resource_type": "document", "action": "read", "resource_id": "id"},
    {"methods": ["POST"], "path": "/docs", "resource_type": "document", "action": "create"},
]}


class World(lt.AdminWorld):
    def create(self, token, status=201, **body):
        body.setdefault("name", f"key-{uuid.uuid4().hex[:8]}")
        r = self.api.call("POST", KEYS, token=token, json=body)
        assert r.status_code == status, r.text
        return r.json()

    def introspect(self, headers, token, d=None):
        c = self.cB if d == "B" else self.c
        return c.post("/oauth2/introspect", data={"token": token}, headers=headers)

    def fa(self, key, uri="/docs/1", method="GET", header="authorization"):
        h = {"x-original-uri": uri, "x-original-method": method}
        h[header] = f"Bearer {key}" if header == "authorization" else key
        r = self.c.get(FA, headers=h)
        assert r.status_code < 500, r.text
        return r

    def evaluation(self, headers, subject="ann"):
        body = {"subject": {"type": "user", "id": self.ids[subject]}, "action": {"name": "read"},
                "resource": {"type": "document", "id": "1"}}
        return self.c.post("/access/v1/evaluation", json=body, headers=headers)

    def set_roles(self, uid, roles):
        r = self.api.call("PUT", "/v1/admin/users/{id}/roles", url=f"/v1/admin/users/{uid}/roles", token=self.alice,
                          json={"roles": roles})
        assert r.status_code == 200, r.text


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def xkey(key):
    return {"x-api-key": key}


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    rules = session_tmp / f"ak-rules-{uuid.uuid4().hex[:8]}.json"
    rules.write_text(json.dumps(RULES))
    A = factory(forward_auth_rules=str(rules), **SETTINGS)
    B = factory(database_url=A.config["database_url"], master_key=A.config["master_key"],
                forward_auth_rules=str(rules), **SETTINGS)
    api = lt.ContractApi(A, openapi, documented_only=True)
    world = World(A, api)
    world.c, world.cB = A.h2c(timeout=30.0), B.h2c(timeout=30.0)
    pw = {k: strong() for k in ("alice", "bob", "ann", "carl")}
    world.pw = pw
    acme = A.bootstrap("acme", "alice@acme.test", pw["alice"])
    beta = A.bootstrap("beta", "bob@beta.test", pw["bob"])
    world.acme, world.beta = acme["tenant_id"], beta["tenant_id"]
    world.alice_id = acme["user_id"]
    world.bob_id = beta["user_id"]
    world.alice = world.login("acme", "alice@acme.test", pw["alice"])["access_token"]
    world.bob = world.login("beta", "bob@beta.test", pw["bob"])["access_token"]

    def call(method, tmpl, url=None, token=None, **kw):
        r = api.call(method, tmpl, url=url, token=token or world.alice, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    call("POST", "/v1/admin/roles", json={"name": "reader", "permissions": ["document:read"]})
    call("POST", "/v1/admin/roles", json={"name": "writer", "permissions": ["document:create"], "parents": ["reader"]})
    world.ids = {}
    for name in ("ann", "carl"):
        world.ids[name] = call("POST", "/v1/admin/users",
                               json={"email": f"{name}@acme.test", "password": pw[name]})["id"]
    world.set_roles(world.ids["ann"], ["writer"])
    world.svc = lt.make_client(api.c, world.alice, prefix="svc", permissions=["introspect", "decide"])
    world.mute = lt.make_client(api.c, world.alice, prefix="mute")
    call("PUT", "/v1/admin/clients/{id}/roles", url=f"/v1/admin/clients/{world.svc['client_id']}/roles",
         json={"roles": ["reader"]})
    world.bsvc = lt.make_client(api.c, world.bob, prefix="bsvc", permissions=["introspect"])
    world.ann = world.login("acme", "ann@acme.test", pw["ann"])["access_token"]
    yield world
    lt.shut_down(factory, api.c, world.c, world.cB)


def wait_key(w, key, d=None):
    """A new key reaches the snapshot through NOTIFY: waits until `d` (A or B) accepts it."""
    c = w.cB if d == "B" else w.c
    ok = lt.wait_for(lambda: c.get("/v1/admin/api-keys", headers=bearer(key)).status_code != 401, 2.0)
    assert ok, "the key never reached the snapshot"


# --- create, shown once, list, get --------------------------------------------------------------


def test_create_user_key_shown_once(w):
    body = w.create(w.alice, user_id=w.ids["ann"], name="ann's reader", scopes=["introspect", "reports:read"],
                    roles=["reader"])
    m = KEY.match(body["api_key"])
    assert m, body
    assert body["key_id"] == m.group(1)
    assert body["owner_type"] == "user" and body["owner_id"] == w.ids["ann"]
    assert body["tenant_id"] == w.acme
    assert body["scopes"] == ["introspect", "reports:read"] and body["roles"] == ["reader"]
    assert body["expires_at"] is None and body["last_used_at"] is None and body["revoked_at"] is None
    assert body["created_at"].endswith("Z")
    uuid.UUID(body["id"])
    # only SHA-256(secret) is stored
    stored = w.sql(f"SELECT encode(secret_hash, 'hex') FROM api_keys WHERE key_id = '{m.group(1)}'")
    assert stored == hashlib.sha256(m.group(2).encode()).hexdigest()
    # never again: not by id, not by key_id, not in lists, not in the audit
    for ident in (body["id"], body["key_id"]):
        r = w.api.call("GET", KEY_ITEM, url=f"{KEYS}/{ident}", token=w.alice)
        assert r.status_code == 200, r.text
        assert "api_key" not in r.json() and m.group(2) not in r.text
        assert r.json()["key_id"] == body["key_id"]
    r = w.api.call("GET", KEYS, token=w.alice)
    assert r.status_code == 200 and m.group(2) not in r.text
    assert body["key_id"] in [k["key_id"] for k in r.json()["items"]]
    r = w.api.call("GET", KEYS, url=f"{KEYS}?user_id={w.ids['ann']}", token=w.alice)
    assert {k["owner_id"] for k in r.json()["items"]} == {w.ids["ann"]}
    events = w.sql(f"SELECT actor FROM audit_log WHERE event = 'api_key.created' AND target = '{body['key_id']}'")
    assert events == w.alice_id
    assert m.group(2) not in w.sql("SELECT string_agg(coalesce(details::text, ''), ' ') FROM audit_log")


def test_create_client_key(w):
    body = w.create(w.alice, client_id=w.svc["client_id"], roles=["reader"])
    assert body["owner_type"] == "client" and body["owner_id"] == w.svc["client_id"]
    r = w.api.call("GET", KEYS, url=f"{KEYS}?client_id={w.svc['client_id']}", token=w.alice)
    assert [k["key_id"] for k in r.json()["items"]] == [body["key_id"]]


def test_create_validation(w):
    problem(w.api.call("POST", KEYS, token=w.alice, json={"name": "x"}), 400, "invalid_request", "user_id")
    problem(w.api.call("POST", KEYS, token=w.alice, json={"name": "x", "user_id": w.ids["ann"],
                                                          "client_id": w.svc["client_id"]}), 400, "invalid_request")
    problem(w.api.call("POST", KEYS, token=w.alice, json={"user_id": w.ids["ann"], "name": "x", "roles": ["Bad Role"],
                                                          "scopes": ["has space"], "expires_at": "tomorrow",
                                                          "extra": 1}),
            400, "invalid_request", ("roles", "scopes", "expires_at", "extra"))
    # roles must be held by the owner (carl has none; ann holds reader through writer)
    problem(w.api.call("POST", KEYS, token=w.alice, json={"user_id": w.ids["carl"], "name": "x", "roles": ["reader"]}),
            400, "invalid_request", "roles")
    w.create(w.alice, user_id=w.ids["ann"], roles=["writer", "reader"])
    problem(w.api.call("POST", KEYS, token=w.alice, json={"user_id": w.ids["ann"], "name": "x",
                                                          "expires_at": "2001-01-01T00:00:00Z"}),
            400, "invalid_request", "expires_at")
    # an owner of another tenant, or none at all: 404
    for body in ({"user_id": str(uuid.uuid4())}, {"client_id": w.bsvc["client_id"]},
                 {"user_id": w.ids["ann"], "tenant_id": w.beta}):
        r = w.api.call("POST", KEYS, token=w.alice, json={"name": "x", **body})
        problem(r, 404, "not_found")


def test_admin_permission_needed(w):
    problem(w.api.call("GET", KEYS, token=w.ann), 403, "forbidden")
    problem(w.api.call("POST", KEYS, token=w.ann, json={"name": "x", "user_id": w.ids["ann"]}), 403, "forbidden")


# --- bad keys ----------------------------------------------------------------------------------


BAD = ["lt_ak_", "lt_ak_short", "lt_ak_" + "a" * 16 + "_" + "A" * 42 + "B",
       "lt_ak_" + "A" * 16 + "_" + "A" * 43, "lt_ak_" + "a" * 16 + "_" + "A" * 43 + "x"]


@pytest.mark.parametrize("bad", BAD + ["unknown"])
def test_bad_keys_are_401_without_detail(w, bad):
    if bad == "unknown":
        bad = "lt_ak_" + "a" * 16 + "_" + "A" * 43
    for headers in (bearer(bad), xkey(bad)):
        r = w.c.get(KEYS, headers=headers)
        body = problem(r, 401, "invalid_token")
        assert body["detail"] == "The API key is invalid, expired or revoked."
        r = w.introspect(headers, w.ann)
        assert r.status_code == 401 and r.json() == {"error": "invalid_client",
                                                      "error_description": "Client authentication failed."}
        r = w.evaluation(headers)
        assert r.status_code == 401
    r = w.fa(bad)
    assert r.status_code == 401 and r.headers["www-authenticate"].endswith('error="invalid_token"')


def test_two_keys_at_once_refused(w):
    k = w.create(w.alice, client_id=w.svc["client_id"])["api_key"]
    wait_key(w, k)
    other = w.create(w.alice, client_id=w.svc["client_id"])["api_key"]
    wait_key(w, other)
    assert w.introspect({**bearer(k), **xkey(other)}, w.ann).status_code == 401
    # an X-API-Key that is not ours is ignored
    assert w.introspect({**bearer(k), "x-api-key": "upstream-key"}, w.ann).status_code == 200


# --- introspection and decisions with a key as the caller -----------------------------------------


def test_introspection_caller(w):
    ck = w.create(w.alice, client_id=w.svc["client_id"])["api_key"]
    uk = w.create(w.alice, user_id=w.ids["ann"], scopes=["introspect"])["api_key"]
    nk = w.create(w.alice, user_id=w.ids["ann"], scopes=["other"])["api_key"]
    mk = w.create(w.alice, client_id=w.mute["client_id"])["api_key"]
    for k in (ck, uk, nk, mk):
        wait_key(w, k)
    for headers in (bearer(ck), xkey(ck), bearer(uk), xkey(uk)):
        r = w.introspect(headers, w.ann)
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        assert r.json()["sub"] == w.ids["ann"]
    for k in (nk, mk):
        r = w.introspect(bearer(k), w.ann)
        assert r.status_code == 403 and r.json()["error"] == "unauthorized_client"
    # another tenant's token is inactive for acme's key (and acme's for beta's client)
    bob_tok = w.bob
    assert w.introspect(bearer(ck), bob_tok).json() == {"active": False}
    # a key cannot be used at /oauth2/token
    r = w.c.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=bearer(ck))
    assert r.status_code == 401


def test_decisions_caller(w):
    ck = w.create(w.alice, client_id=w.svc["client_id"])["api_key"]
    uk = w.create(w.alice, user_id=w.ids["ann"], scopes=["decide"])["api_key"]
    nk = w.create(w.alice, user_id=w.ids["ann"], scopes=["introspect"])["api_key"]
    for k in (ck, uk, nk):
        wait_key(w, k)
    for headers in (bearer(ck), xkey(ck), bearer(uk), xkey(uk)):
        r = w.evaluation(headers)
        assert r.status_code == 200 and r.json()["decision"] is True, r.text
        assert w.evaluation(headers, subject="carl").json()["decision"] is False
    r = w.evaluation(bearer(nk))
    assert r.status_code == 403


def test_introspect_a_key(w):
    body = w.create(w.alice, user_id=w.ids["ann"], scopes=["a", "b"], roles=["reader"], expires_in=3600)
    cbody = w.create(w.alice, client_id=w.svc["client_id"], roles=["reader"])
    caller = w.create(w.alice, client_id=w.svc["client_id"])["api_key"]
    wait_key(w, caller)
    wait_key(w, body["api_key"])
    r = w.introspect(lt.client_auth(w.svc), body["api_key"])
    got = r.json()
    assert got["active"] is True and got["token_type"] == "api_key", got
    assert got["sub"] == w.ids["ann"] and got["tenant"] == w.acme and "client_id" not in got
    assert got["scope"] == "a b" and got["roles"] == ["reader"] and got["key_id"] == body["key_id"]
    assert abs(got["exp"] - (time.time() + 3600)) < 60 and got["iat"] <= time.time() + 1
    got = w.introspect(bearer(caller), cbody["api_key"]).json()
    assert got["active"] is True and got["client_id"] == w.svc["client_id"] and got["sub"] == w.svc["client_id"]
    assert "exp" not in got
    # another tenant's caller sees nothing; a wrong secret, an unknown key: inactive
    assert w.introspect(lt.client_auth(w.bsvc), body["api_key"]).json() == {"active": False}
    m = KEY.match(body["api_key"])
    assert w.introspect(lt.client_auth(w.svc), f"lt_ak_{m.group(1)}_{'A' * 43}").json() == {"active": False}
    assert w.introspect(lt.client_auth(w.svc), "lt_ak_nonsense").json() == {"active": False}
    # revoked: inactive
    r = w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{body['id']}", token=w.alice)
    assert r.status_code == 204
    assert lt.wait_for(lambda: w.introspect(lt.client_auth(w.svc), body["api_key"]).json() == {"active": False}, 1.5)


# --- forward-auth and the admin API: the owner, bounded ----------------------------------------------


def test_forward_auth_key_bounded_by_its_roles(w):
    reader = w.create(w.alice, user_id=w.ids["ann"], roles=["reader"])
    writer = w.create(w.alice, user_id=w.ids["ann"], roles=["writer"])
    wait_key(w, writer["api_key"])
    wait_key(w, reader["api_key"])
    for header in ("authorization", "x-api-key"):
        r = w.fa(reader["api_key"], header=header)
        assert r.status_code == 200, r.text
        assert r.headers["x-latch-subject"] == w.ids["ann"] and r.headers["x-latch-subject-type"] == "user"
        assert r.headers["x-latch-tenant"] == w.acme and r.headers["x-latch-roles"] == "reader"
        assert r.headers["x-latch-api-key"] == reader["key_id"]
        # ann may create, her reader key may not
        assert w.fa(reader["api_key"], uri="/docs", method="POST", header=header).status_code == 403
        assert w.fa(writer["api_key"], uri="/docs", method="POST", header=header).status_code == 200
    # a key with no roles does nothing
    none = w.create(w.alice, user_id=w.ids["ann"])["api_key"]
    wait_key(w, none)
    assert w.fa(none).status_code == 403


def test_effective_roles_follow_the_owner(w):
    writer = w.create(w.alice, user_id=w.ids["ann"], roles=["writer"])["api_key"]
    wait_key(w, writer)
    assert w.fa(writer, uri="/docs", method="POST").status_code == 200
    w.set_roles(w.ids["ann"], ["reader"])
    try:
        # the owner lost writer: so did the key, within a second, on both instances
        assert lt.wait_for(lambda: w.fa(writer, uri="/docs", method="POST").status_code == 403, 1.5)
        assert w.fa(writer).status_code == 403  # its only role (writer) is not the owner's any more
        got = w.introspect(lt.client_auth(w.svc), writer).json()
        assert got["active"] is True and got["roles"] == []
    finally:
        w.set_roles(w.ids["ann"], ["writer"])
    assert lt.wait_for(lambda: w.fa(writer, uri="/docs", method="POST").status_code == 200, 1.5)


def test_admin_api_with_a_key(w):
    admin_key = w.create(w.alice, user_id=w.alice_id, roles=["admin"])
    plain_key = w.create(w.alice, user_id=w.alice_id)
    wait_key(w, admin_key["api_key"])
    for headers in (bearer(admin_key["api_key"]), xkey(admin_key["api_key"])):
        r = w.c.get("/v1/admin/users", headers=headers)
        assert r.status_code == 200, r.text
        assert {u["tenant_id"] for u in r.json()["items"]} == {w.acme}
    # the key acts as its owner: writes are audited as alice
    r = w.c.post(KEYS, json={"name": "by-key", "user_id": w.ids["ann"]}, headers=bearer(admin_key["api_key"]))
    assert r.status_code == 201, r.text
    assert w.sql(f"SELECT actor FROM audit_log WHERE event = 'api_key.created' "
                 f"AND target = '{r.json()['key_id']}'") == w.alice_id
    # a key without admin: 403, though its owner is an admin
    problem(w.c.get("/v1/admin/users", headers=bearer(plain_key["api_key"])), 403, "forbidden")
    # tenant isolation: acme's key cannot reach beta
    bk = w.create(w.bob, user_id=w.bob_id, roles=["admin"])
    problem(w.c.get(f"{KEYS}/{bk['id']}", headers=bearer(admin_key["api_key"])), 404, "not_found")
    r = w.c.post(KEYS, json={"name": "x", "user_id": bk["owner_id"], "tenant_id": w.beta},
                 headers=bearer(admin_key["api_key"]))
    problem(r, 404, "not_found")
    wait_key(w, bk["api_key"])
    r = w.c.get("/v1/admin/users", headers=bearer(bk["api_key"]))
    assert {u["tenant_id"] for u in r.json()["items"]} == {w.beta}
    # a client's key acts as the client (its roles: reader grants no admin permission)
    ck = w.create(w.alice, client_id=w.svc["client_id"], roles=["reader"])["api_key"]
    wait_key(w, ck)
    problem(w.c.get("/v1/admin/users", headers=bearer(ck)), 403, "forbidden")


def test_owner_disabled_key_stops(w):
    uid = w.api.call("POST", "/v1/admin/users", token=w.alice,
                     json={"email": f"d-{uuid.uuid4().hex[:6]}@acme.test", "password": strong()}).json()["id"]
    w.set_roles(uid, ["reader"])
    k = w.create(w.alice, user_id=uid, roles=["reader"])["api_key"]
    assert lt.wait_for(lambda: w.fa(k).status_code == 200, 2.0)
    r = w.api.call("POST", "/v1/admin/users/{id}/disable", url=f"/v1/admin/users/{uid}/disable", token=w.alice)
    assert r.status_code in (200, 204), r.text
    assert lt.wait_for(lambda: w.fa(k).status_code == 401, 1.5)


# --- revocation on both instances, expiry ------------------------------------------------------------


def test_revocation_reaches_both_instances(w):
    body = w.create(w.alice, client_id=w.svc["client_id"])
    k = body["api_key"]
    wait_key(w, k)
    wait_key(w, k, "B")
    assert w.introspect(bearer(k), w.ann).status_code == 200
    assert w.introspect(bearer(k), w.ann, "B").status_code == 200
    r = w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{body['key_id']}", token=w.alice)
    assert r.status_code == 204, r.text
    t0 = time.monotonic()
    assert lt.wait_for(lambda: w.introspect(bearer(k), w.ann).status_code == 401 and
                       w.introspect(bearer(k), w.ann, "B").status_code == 401, 1.0, step=0.02)
    assert time.monotonic() - t0 < 1.0
    got = w.api.call("GET", KEY_ITEM, url=f"{KEYS}/{body['id']}", token=w.alice).json()
    assert got["revoked_at"] is not None
    assert w.sql(f"SELECT count(*) FROM audit_log WHERE event = 'api_key.revoked' AND target = '{body['key_id']}'") == "1"
    # idempotent, without a second audit event; unknown ids 404
    assert w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{body['key_id']}", token=w.alice).status_code == 204
    assert w.sql(f"SELECT count(*) FROM audit_log WHERE event = 'api_key.revoked' AND target = '{body['key_id']}'") == "1"
    problem(w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{'a' * 16}", token=w.alice), 404, "not_found")
    problem(w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/nonsense", token=w.alice), 404, "not_found")
    # beta's admin cannot see or revoke acme's keys
    problem(w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{body['id']}", token=w.bob), 404, "not_found")


def test_bulk_revocation_by_sql(w):
    """What the lock of a user does (privacy): one UPDATE and a NOTIFY."""
    uid = w.ids["carl"]
    keys = [w.create(w.alice, user_id=uid)["api_key"] for _ in range(2)]
    for k in keys:
        wait_key(w, k)
    w.sql(f"UPDATE api_keys SET revoked_at = now() WHERE owner_user_id = '{uid}' AND revoked_at IS NULL; "
          "NOTIFY latch_api_keys")
    for k in keys:
        assert lt.wait_for(lambda: w.c.get(KEYS, headers=bearer(k)).status_code == 401 and
                           w.cB.get(KEYS, headers=bearer(k)).status_code == 401, 1.0)


def test_expiry(w):
    body = w.create(w.alice, client_id=w.svc["client_id"], expires_in=2)
    k = body["api_key"]
    wait_key(w, k)
    assert w.introspect(bearer(k), w.ann).status_code == 200
    time.sleep(2.2)
    assert lt.wait_for(lambda: w.introspect(bearer(k), w.ann).status_code == 401, 1.0)
    assert w.introspect(lt.client_auth(w.svc), k).json() == {"active": False}


# --- last use, batched ------------------------------------------------------------------------------


def test_last_used_is_batched(w):
    body = w.create(w.alice, client_id=w.svc["client_id"])
    k = body["api_key"]
    wait_key(w, k)
    # The test counts UPDATE statements on api_keys with a statement trigger of its own.
    w.sql("CREATE TABLE IF NOT EXISTS ak_test_updates (n int); "
          "CREATE OR REPLACE FUNCTION ak_test_count() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS "
          "$$ BEGIN INSERT INTO ak_test_updates VALUES (1); RETURN NULL; END $$; "
          "DROP TRIGGER IF EXISTS ak_test_count ON api_keys; "
          "CREATE TRIGGER ak_test_count AFTER UPDATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION ak_test_count()")
    try:
        time.sleep(3 * FLUSH_MS / 1000)  # earlier uses flushed
        w.sql("DELETE FROM ak_test_updates")
        w.sql(f"UPDATE api_keys SET last_used_at = NULL WHERE key_id = '{body['key_id']}'")
        w.sql("DELETE FROM ak_test_updates")
        for i in range(100):
            r = w.introspect(bearer(k) if i % 2 else xkey(k), w.ann)
            assert r.status_code == 200
        seen = lt.wait_for(lambda: w.sql(f"SELECT last_used_at IS NOT NULL FROM api_keys "
                                         f"WHERE key_id = '{body['key_id']}'") == "t", 3 * FLUSH_MS / 1000 + 1)
        assert seen, "last_used_at never written"
        time.sleep(3 * FLUSH_MS / 1000)
        updates = int(w.sql("SELECT count(*) FROM ak_test_updates"))
        # one statement per worker and flush at most: 2 workers, the 100 uses took a few flushes
        assert 1 <= updates <= 20, updates
    finally:
        w.sql("DROP TRIGGER IF EXISTS ak_test_count ON api_keys; DROP FUNCTION IF EXISTS ak_test_count(); "
              "DROP TABLE IF EXISTS ak_test_updates")
    got = w.api.call("GET", KEY_ITEM, url=f"{KEYS}/{body['id']}", token=w.alice).json()
    assert got["last_used_at"] is not None


# --- /v1/me/api-keys ---------------------------------------------------------------------------------


def test_me_keys(w):
    tok = w.login("acme", "ann@acme.test", w.pw["ann"])
    at = tok["access_token"]
    r = w.api.call("POST", ME_KEYS, token=at, json={"name": "mine", "roles": ["reader"], "scopes": ["decide"]})
    assert r.status_code == 201, r.text
    mine = r.json()
    assert KEY.match(mine["api_key"]) and mine["owner_id"] == w.ids["ann"]
    # roles beyond the caller's: refused
    problem(w.api.call("POST", ME_KEYS, token=at, json={"name": "x", "roles": ["admin"]}), 400, "invalid_request",
            "roles")
    r = w.api.call("GET", ME_KEYS, token=at)
    assert r.status_code == 200
    items = r.json()["items"]
    assert mine["key_id"] in [k["key_id"] for k in items] and mine["api_key"] not in r.text
    assert {k["owner_id"] for k in items} == {w.ids["ann"]}
    # someone else's key is not found
    other = w.create(w.alice, user_id=w.alice_id)
    problem(w.api.call("DELETE", ME_KEY_ITEM, url=f"{ME_KEYS}/{other['id']}", token=at), 404, "not_found")
    r = w.api.call("DELETE", ME_KEY_ITEM, url=f"{ME_KEYS}/{mine['id']}", token=at)
    assert r.status_code == 204
    got = w.api.call("GET", KEY_ITEM, url=f"{KEYS}/{mine['id']}", token=w.alice).json()
    assert got["revoked_at"] is not None
    # an old sign-in needs the password again
    w.sql(f"UPDATE sessions SET auth_time = now() - interval '1 day' WHERE id = '{tok['session_id']}'")
    problem(w.api.call("POST", ME_KEYS, token=at, json={"name": "late"}), 403, "reauthentication_required")
    problem(w.api.call("POST", ME_KEYS, token=at, json={"name": "late", "current_password": "wrong-password-1"}),
            403, "invalid_credentials")
    r = w.api.call("POST", ME_KEYS, token=at, json={"name": "late", "current_password": w.pw["ann"]})
    assert r.status_code == 201, r.text
    # an API key is no session: /v1/me refuses it
    assert w.c.get(ME_KEYS, headers=bearer(r.json()["api_key"])).status_code == 401


def test_writes_are_served_by_this_instance_once_answered(w):
    """Read-your-writes on the instance that took the write (lib/api/settle.c): once a
    create or revoke is answered, every worker of that instance serves it, with no wait
    for NOTIFY; each use below goes on a new connection, so on either worker."""
    for _ in range(10):
        body = w.create(w.alice, client_id=w.svc["client_id"])
        with w.d.h2c(timeout=10.0) as fresh:
            r = fresh.post("/oauth2/introspect", data={"token": w.ann}, headers=bearer(body["api_key"]))
            assert r.status_code == 200 and r.json()["active"] is True, r.text
        r = w.api.call("DELETE", KEY_ITEM, url=f"{KEYS}/{body['key_id']}", token=w.alice)
        assert r.status_code == 204, r.text
        with w.d.h2c(timeout=10.0) as fresh:
            r = fresh.post("/oauth2/introspect", data={"token": w.ann}, headers=bearer(body["api_key"]))
            assert r.status_code == 401, r.text
    for _ in range(5):
        client = lt.make_client(w.api.c, w.alice, prefix="fresh", permissions=["introspect"])
        with w.d.h2c(timeout=10.0) as fresh:
            r = fresh.post("/oauth2/introspect", data={"token": w.ann}, headers=lt.client_auth(client))
            assert r.status_code == 200 and r.json()["active"] is True, r.text
