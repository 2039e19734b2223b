"""OAuth clients (issue 4, item 2): /v1/admin/clients and `latchctl clients`, over real HTTP/2
against latchd and its own PostgreSQL.

Admins are made with `latchctl bootstrap` and sign in through /v1/auth/login, as in
test_admin.py: "ops" with the global admin root, "alpha" with the tenant admin alice, "beta"
with the tenant admin bob, and carol, a plain user of alpha. Responses are checked against
proto/openapi.yaml once it declares the clients paths.

What matters here: the secret is shown exactly once (201 of create, 200 of a rotation) and
only its SHA-256 is stored; validation answers 400 invalid_request naming each bad field;
another tenant's clients answer 404 exactly like missing ones; every change is audited.
"""

import hashlib
import json
import re
import uuid

import pytest

import latchtest as lt
from latchtest import problem, strong_password as strong

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)

CLIENT_ID = re.compile(r"^lc_[A-Za-z0-9_-]{22}$")
CLIENT_SECRET = re.compile(r"^lcs_[A-Za-z0-9_-]{43}$")
TEMPLATE_ITEM = "/v1/admin/clients/{id}"


class World(lt.AdminWorld):
    def create(self, token, status=201, **body):
        body.setdefault("name", f"svc-{uuid.uuid4().hex[:8]}")
        body.setdefault("grant_types", ["client_credentials"])
        r = self.api.call("POST", "/v1/admin/clients", token=token, json=body)
        assert r.status_code == status, r.text
        return r.json()

    def get(self, token, ident):
        return self.api.call("GET", TEMPLATE_ITEM, url=f"/v1/admin/clients/{ident}", token=token)

    def audit(self, event, target):
        return self.sql(f"SELECT actor || ' ' || coalesce(details::text, '') FROM audit_log "
                        f"WHERE event = '{event}' AND target = '{target}' ORDER BY id").splitlines()


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    # The contract is checked where it covers the path.
    api = lt.ContractApi(d, openapi, documented_only=True)
    world = World(d, api)
    pw = {k: strong() for k in ("root", "alice", "bob", "carol")}
    ops = d.bootstrap("ops", "root@ops.test", pw["root"], global_admin=True)
    alpha = d.bootstrap("alpha", "alice@alpha.test", pw["alice"])
    beta = d.bootstrap("beta", "bob@beta.test", pw["bob"])
    world.ops, world.alpha, world.beta = ops["tenant_id"], alpha["tenant_id"], beta["tenant_id"]
    world.alice_id = alpha["user_id"]
    world.root = world.login("ops", "root@ops.test", pw["root"])["access_token"]
    world.alice = world.login("alpha", "alice@alpha.test", pw["alice"])["access_token"]
    world.bob = world.login("beta", "bob@beta.test", pw["bob"])["access_token"]
    r = api.call("POST", "/v1/admin/users", token=world.alice,
                 json={"email": "carol@alpha.test", "password": pw["carol"]})
    assert r.status_code == 201, r.text
    world.carol = world.login("alpha", "carol@alpha.test", pw["carol"])["access_token"]
    yield world
    lt.shut_down(factory, api.c)


# --- create, read, secret shown once ----------------------------------------------------------


def test_create_shows_secret_once(w):
    body = w.create(w.alice, name="Billing", grant_types=["client_credentials", "refresh_token"],
                    scopes=["billing:read", "billing/write"], permissions=["introspect", "revocations"])
    assert CLIENT_ID.match(body["client_id"]), body
    assert CLIENT_SECRET.match(body["client_secret"]), body
    assert body["tenant_id"] == w.alpha
    assert body["name"] == "Billing"
    assert body["grant_types"] == ["client_credentials", "refresh_token"]
    assert body["scopes"] == ["billing:read", "billing/write"]
    assert body["permissions"] == ["introspect", "revocations"]
    uuid.UUID(body["id"])
    assert body["created_at"].endswith("Z")
    assert "secret_hash" not in body

    # only the SHA-256 is stored
    stored = w.sql(f"SELECT encode(secret_hash, 'hex') FROM oauth_clients WHERE client_id = '{body['client_id']}'")
    assert stored == hashlib.sha256(body["client_secret"].encode()).hexdigest()

    # never again: not by id, not by client_id, not in a list
    for ident in (body["id"], body["client_id"]):
        r = w.get(w.alice, ident)
        assert r.status_code == 200, r.text
        got = r.json()
        assert "client_secret" not in got and "secret_hash" not in got
        assert got["client_id"] == body["client_id"]
        assert r.headers.get("cache-control") == "no-store"
    r = w.api.call("GET", "/v1/admin/clients", token=w.alice)
    assert r.status_code == 200
    assert body["client_secret"] not in r.text
    assert body["client_id"] in [c["client_id"] for c in r.json()["items"]]

    events = w.audit("client.created", body["client_id"])
    assert len(events) == 1 and events[0].startswith(w.alice_id)
    assert body["client_secret"] not in w.sql("SELECT string_agg(coalesce(details::text, ''), ' ') FROM audit_log")


def test_create_response_not_cached(w):
    r = w.api.call("POST", "/v1/admin/clients", token=w.alice,
                   json={"name": "nc", "grant_types": ["client_credentials"]})
    assert r.status_code == 201, r.text
    assert r.headers.get("cache-control") == "no-store"
    assert r.json()["scopes"] == [] and r.json()["permissions"] == []


def test_rotate_secret(w):
    body = w.create(w.alice)
    r = w.api.call("POST", "/v1/admin/clients/{id}/secret", url=f"/v1/admin/clients/{body['id']}/secret",
                   token=w.alice)
    assert r.status_code == 200, r.text
    new = r.json()
    assert CLIENT_SECRET.match(new["client_secret"])
    assert new["client_secret"] != body["client_secret"]
    assert new["client_id"] == body["client_id"]
    assert r.headers.get("cache-control") == "no-store"
    stored = w.sql(f"SELECT encode(secret_hash, 'hex') FROM oauth_clients WHERE id = '{body['id']}'")
    assert stored == hashlib.sha256(new["client_secret"].encode()).hexdigest()
    assert "client_secret" not in w.get(w.alice, body["id"]).json()
    assert len(w.audit("client.secret_rotated", body["client_id"])) == 1
    # by client_id too
    r = w.api.call("POST", "/v1/admin/clients/{id}/secret", url=f"/v1/admin/clients/{body['client_id']}/secret",
                   token=w.alice)
    assert r.status_code == 200


def test_delete(w):
    body = w.create(w.alice)
    r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{body['id']}", token=w.alice)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert w.get(w.alice, body["id"]).status_code == 404
    r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{body['id']}", token=w.alice)
    problem(r, 404, "not_found")
    assert w.sql(f"SELECT count(*) FROM oauth_clients WHERE id = '{body['id']}'") == "0"
    events = w.audit("client.deleted", body["client_id"])
    assert len(events) == 1 and events[0].startswith(w.alice_id)
    # by client_id
    other = w.create(w.alice)
    r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{other['client_id']}", token=w.alice)
    assert r.status_code == 204


def test_unknown_and_malformed_ids(w):
    for ident in (str(uuid.uuid4()), "lc_" + "A" * 22, "nope", "lc_short", "x" * 300, "%00"):
        problem(w.get(w.alice, ident), 404, "not_found")
        r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{ident}", token=w.alice)
        problem(r, 404, "not_found")
        r = w.api.call("POST", "/v1/admin/clients/{id}/secret", url=f"/v1/admin/clients/{ident}/secret",
                       token=w.alice)
        problem(r, 404, "not_found")


def test_paging(w):
    for _ in range(3):
        w.create(w.bob)
    seen, cursor = [], None
    for _ in range(10):
        url = "/v1/admin/clients?limit=1" + (f"&cursor={cursor}" if cursor else "")
        r = w.api.call("GET", "/v1/admin/clients", url=url, token=w.bob)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 1
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = w.api.call("GET", "/v1/admin/clients", url="/v1/admin/clients?limit=200", token=w.bob).json()
    assert seen == [c["id"] for c in everything["items"]]
    assert len(seen) >= 3 and len(set(seen)) == len(seen)
    for bad in ("limit=0", "limit=201", "limit=x", "cursor=abc", "tenant_id=nope"):
        r = w.api.call("GET", "/v1/admin/clients", url=f"/v1/admin/clients?{bad}", token=w.bob)
        problem(r, 400, "invalid_request", [bad.split("=")[0]])


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body, fields", [
    ({}, ["name", "grant_types"]),
    ({"name": "x"}, ["grant_types"]),
    ({"name": "", "grant_types": ["client_credentials"]}, ["name"]),
    ({"name": "x" * 201, "grant_types": ["client_credentials"]}, ["name"]),
    ({"name": "a\nb", "grant_types": ["client_credentials"]}, ["name"]),
    ({"name": 5, "grant_types": ["client_credentials"]}, ["name"]),
    ({"name": "x", "grant_types": []}, ["grant_types"]),
    ({"name": "x", "grant_types": "client_credentials"}, ["grant_types"]),
    ({"name": "x", "grant_types": ["password"]}, ["grant_types"]),
    ({"name": "x", "grant_types": ["authorization_code"]}, ["grant_types"]),
    ({"name": "x", "grant_types": ["client_credentials", "client_credentials"]}, ["grant_types"]),
    ({"name": "x", "grant_types": [None]}, ["grant_types"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": ["a b"]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": [""]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": ["r\u00e9ad"]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": ["a" * 65]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": ["a", "a"]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": [f"s{i}" for i in range(51)]}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "scopes": "read"}, ["scopes"]),
    ({"name": "x", "grant_types": ["client_credentials"], "permissions": ["admin"]}, ["permissions"]),
    ({"name": "x", "grant_types": ["client_credentials"], "permissions": ["revoke", "revoke"]}, ["permissions"]),
    ({"name": "x", "grant_types": ["client_credentials"], "permissions": {}}, ["permissions"]),
    ({"name": "x", "grant_types": ["client_credentials"], "tenant_id": "beta"}, ["tenant_id"]),
    ({"name": "x", "grant_types": ["client_credentials"], "client_secret": "mine"}, ["client_secret"]),
    ({"name": "", "grant_types": [], "scopes": ["a b"], "permissions": ["x"]},
     ["name", "grant_types", "scopes", "permissions"]),
])
def test_validation(w, body, fields):
    r = w.api.call("POST", "/v1/admin/clients", token=w.alice, json=body)
    problem(r, 400, "invalid_request", fields)


def test_limits_accepted(w):
    body = w.create(w.alice, name="\u00e9" * 200, scopes=[f"s{i}" for i in range(50)],
                    permissions=["introspect", "revoke", "revocations"])
    assert len(body["name"]) == 200 and len(body["scopes"]) == 50
    body = w.create(w.alice, scopes=["a" * 64, "NULL", "x.y:z/w-v_u"])
    assert body["scopes"] == ["a" * 64, "NULL", "x.y:z/w-v_u"]


def test_bad_bodies(w):
    r = w.api.call("POST", "/v1/admin/clients", token=w.alice, content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = w.api.call("POST", "/v1/admin/clients", token=w.alice, content=b"name=x",
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = w.api.call("POST", "/v1/admin/clients", token=w.alice, json=["x"])
    assert r.status_code == 400


# --- authorisation and tenant isolation ----------------------------------------------------------


def test_needs_admin(w):
    r = w.api.call("GET", "/v1/admin/clients")
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    r = w.api.call("POST", "/v1/admin/clients", token=w.carol, json={"name": "x", "grant_types": ["client_credentials"]})
    problem(r, 403, "forbidden")
    r = w.api.call("GET", "/v1/admin/clients", token=w.carol)
    problem(r, 403, "forbidden")
    r = w.api.call("GET", "/v1/admin/clients", token="garbage")
    assert r.status_code == 401


def test_tenant_isolation(w):
    a = w.create(w.alice)
    for ident in (a["id"], a["client_id"]):
        problem(w.get(w.bob, ident), 404, "not_found")
        r = w.api.call("POST", "/v1/admin/clients/{id}/secret", url=f"/v1/admin/clients/{ident}/secret", token=w.bob)
        problem(r, 404, "not_found")
        r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{ident}", token=w.bob)
        problem(r, 404, "not_found")
    # still there, secret unchanged
    assert w.get(w.alice, a["id"]).status_code == 200
    stored = w.sql(f"SELECT encode(secret_hash, 'hex') FROM oauth_clients WHERE id = '{a['id']}'")
    assert stored == hashlib.sha256(a["client_secret"].encode()).hexdigest()
    # bob's list holds only beta's, even when asking for alpha's
    for url in ("/v1/admin/clients?limit=200", f"/v1/admin/clients?limit=200&tenant_id={w.alpha}"):
        items = w.api.call("GET", "/v1/admin/clients", url=url, token=w.bob).json()["items"]
        assert a["id"] not in [c["id"] for c in items]
        assert all(c["tenant_id"] == w.beta for c in items)
    # a tenant admin cannot create in another tenant (404 like a missing tenant)
    r = w.api.call("POST", "/v1/admin/clients", token=w.bob,
                   json={"name": "x", "grant_types": ["client_credentials"], "tenant_id": w.alpha})
    problem(r, 404, "not_found")
    # naming its own tenant is fine
    body = w.create(w.bob, tenant_id=w.beta)
    assert body["tenant_id"] == w.beta


def test_global_admin(w):
    a = w.create(w.alice)
    assert w.get(w.root, a["id"]).status_code == 200
    body = w.create(w.root, tenant_id=w.beta)
    assert body["tenant_id"] == w.beta
    assert w.get(w.bob, body["id"]).status_code == 200
    items = w.api.call("GET", "/v1/admin/clients", url=f"/v1/admin/clients?limit=200&tenant_id={w.beta}",
                       token=w.root).json()["items"]
    assert body["id"] in [c["id"] for c in items] and all(c["tenant_id"] == w.beta for c in items)
    r = w.api.call("POST", "/v1/admin/clients", token=w.root,
                   json={"name": "x", "grant_types": ["client_credentials"], "tenant_id": str(uuid.uuid4())})
    problem(r, 404, "not_found")
    r = w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{body['id']}", token=w.root)
    assert r.status_code == 204
    # its own tenant when none is named
    assert w.create(w.root)["tenant_id"] == w.ops


# --- latchctl ----------------------------------------------------------------------------------


def test_latchctl_clients(w):
    p = w.d.latchctl("clients", "create", "--tenant", "alpha", "--name", "cli svc", "--grant",
                     "client_credentials,refresh_token", "--scope", "a,b:c", "--permission", "introspect")
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert CLIENT_ID.match(body["client_id"]) and CLIENT_SECRET.match(body["client_secret"])
    assert body["tenant_id"] == w.alpha
    assert body["grant_types"] == ["client_credentials", "refresh_token"]
    assert body["scopes"] == ["a", "b:c"] and body["permissions"] == ["introspect"]
    stored = w.sql(f"SELECT encode(secret_hash, 'hex') FROM oauth_clients WHERE client_id = '{body['client_id']}'")
    assert stored == hashlib.sha256(body["client_secret"].encode()).hexdigest()
    assert w.audit("client.created", body["client_id"])[0].startswith("latchctl ")

    # visible to the tenant's admin, without the secret
    r = w.get(w.alice, body["client_id"])
    assert r.status_code == 200 and "client_secret" not in r.json()

    p = w.d.latchctl("clients", "list", "--tenant", "alpha")
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)
    assert body["client_id"] in [c["client_id"] for c in listed]
    assert "client_secret" not in p.stdout and "secret_hash" not in p.stdout
    assert all(c["tenant_id"] == w.alpha for c in listed)

    # not through another tenant
    p = w.d.latchctl("clients", "delete", "--tenant", "beta", body["client_id"])
    assert p.returncode == 1 and "no client" in p.stderr
    p = w.d.latchctl("clients", "delete", "--tenant", "alpha", body["client_id"])
    assert p.returncode == 0, p.stderr
    assert w.get(w.alice, body["client_id"]).status_code == 404
    assert w.audit("client.deleted", body["client_id"])[0].startswith("latchctl ")
    p = w.d.latchctl("clients", "delete", "--tenant", "alpha", body["client_id"])
    assert p.returncode == 1


@pytest.mark.parametrize("args, status", [
    (["clients"], 2),
    (["clients", "frob"], 2),
    (["clients", "create", "--tenant", "alpha", "--name", "x"], 2),
    (["clients", "create", "--tenant", "alpha", "--grant", "client_credentials"], 2),
    (["clients", "create", "--tenant", "alpha", "--name", "x", "--grant", "password"], 2),
    (["clients", "create", "--tenant", "alpha", "--name", "x", "--grant", "client_credentials", "--scope", "a,,b"], 2),
    (["clients", "create", "--tenant", "alpha", "--name", "x", "--grant", "client_credentials", "--permission", "x"], 2),
    (["clients", "create", "--tenant", "Bad_Name", "--name", "x", "--grant", "client_credentials"], 2),
    (["clients", "create", "--tenant", "nosuch", "--name", "x", "--grant", "client_credentials"], 1),
    (["clients", "list"], 2),
    (["clients", "list", "--tenant", "nosuch"], 1),
    (["clients", "delete", "--tenant", "alpha"], 2),
    (["clients", "delete", "--tenant", "alpha", "lc_" + "Z" * 22], 1),
])
def test_latchctl_refusals(w, args, status):
    p = w.d.latchctl(*args)
    assert p.returncode == status, p.stdout + p.stderr
    assert p.stderr.startswith("latchctl:")
    assert "lcs_" not in p.stdout


def test_latchctl_help(w):
    p = w.d.latchctl("clients", "--help")
    assert p.returncode == 0 and "clients create" in p.stdout
    p = w.d.latchctl("--help")
    assert "clients" in p.stdout


# --- the snapshot every instance authenticates from (needs /oauth2/token) ------------------------


def _token(w, cid, secret):
    return w.api.c.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))


def test_snapshot_follows_changes(w):
    body = w.create(w.alice, scopes=["s1"])
    cid, secret = body["client_id"], body["client_secret"]
    first = _token(w, cid, secret)
    if first.status_code == 404:
        pytest.skip("POST /oauth2/token is not routed in this build")
    # a new client authenticates within a second (NOTIFY latch_clients -> reload)
    assert lt.wait_for(lambda: _token(w, cid, secret).status_code == 200, 1.5), _token(w, cid, secret).text
    assert _token(w, cid, "lcs_" + "A" * 43).status_code == 401
    # rotation: the old secret stops working, the new one works
    r = w.api.call("POST", "/v1/admin/clients/{id}/secret", url=f"/v1/admin/clients/{cid}/secret", token=w.alice)
    new = r.json()["client_secret"]
    assert lt.wait_for(lambda: _token(w, cid, new).status_code == 200, 1.5)
    assert _token(w, cid, secret).status_code == 401
    # deletion: it stops authenticating
    w.api.call("DELETE", TEMPLATE_ITEM, url=f"/v1/admin/clients/{cid}", token=w.alice)
    assert lt.wait_for(lambda: _token(w, cid, new).status_code == 401, 1.5)
