"""The admin surface (issue 3, item 8): tenants and users under /v1/admin/, over real HTTP/2
against latchd and its own PostgreSQL.

Admins are made the way operators make them (`latchctl bootstrap`) and sign in through
/v1/auth/login; every response is checked against proto/openapi.yaml. Three tenants: "ops"
with the global admin root, "alpha" with the tenant admin alice, "beta" with the tenant
admin bob. Tests that change a user create their own, so they do not depend on each other.

Tenant isolation is the point of several tests: whatever belongs to another tenant answers
404 `not_found` exactly like something that does not exist, never 403.
"""

import json
import os
import secrets
import shutil
import subprocess
import uuid

import httpx
import pytest

import latchtest as lt
from latchtest import problem, strong_password as strong

# Cheap argon2 for the many users made here; imports below use other parameters on purpose.
SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)


def uniq(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class World(lt.AdminWorld):
    def create_user(self, token, status=201, **body):
        body.setdefault("email", f"{uniq()}@example.test")
        if "password" not in body and "password_hash" not in body:
            body["password"] = strong()
        r = self.api.call("POST", "/v1/admin/users", token=token, json=body)
        assert r.status_code == status, r.text
        return r.json(), body

    def audit(self, event, target):
        return self.sql(f"SELECT details::text FROM audit_events WHERE event = '{event}' AND target = '{target}' "
                        "ORDER BY id").splitlines()


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    api = lt.ContractApi(d, openapi)  # every response checked against the contract
    world = World(d, api)
    world.pw = {k: strong() for k in ("root", "alice", "bob", "carol")}
    ops = d.bootstrap("ops", "root@ops.test", world.pw["root"], global_admin=True, display_name="Operations")
    alpha = d.bootstrap("alpha", "alice@alpha.test", world.pw["alice"])
    beta = d.bootstrap("beta", "bob@beta.test", world.pw["bob"])
    world.ops, world.alpha, world.beta = ops["tenant_id"], alpha["tenant_id"], beta["tenant_id"]
    world.root_id, world.alice_id, world.bob_id = ops["user_id"], alpha["user_id"], beta["user_id"]
    world.root = world.login("ops", "root@ops.test", world.pw["root"])["access_token"]
    world.alice = world.login("alpha", "alice@alpha.test", world.pw["alice"])["access_token"]
    world.bob = world.login("beta", "bob@beta.test", world.pw["bob"])["access_token"]
    carol, _ = world.create_user(world.alice, email="carol@alpha.test", password=world.pw["carol"])
    world.carol_id = carol["id"]
    world.carol = world.login("alpha", "carol@alpha.test", world.pw["carol"])["access_token"]
    yield world
    lt.shut_down(factory, api.c)


# --- authentication and authorisation -----------------------------------------------------

ROUTES = [
    ("POST", "/v1/admin/tenants", "/v1/admin/tenants", {"name": "zzz"}),
    ("GET", "/v1/admin/tenants", "/v1/admin/tenants", None),
    ("GET", "/v1/admin/tenants/{id}", "/v1/admin/tenants/{tenant}", None),
    ("POST", "/v1/admin/users", "/v1/admin/users", {"email": "x@y.test", "password": "whatever-long-1"}),
    ("GET", "/v1/admin/users", "/v1/admin/users", None),
    ("GET", "/v1/admin/users/{id}", "/v1/admin/users/{user}", None),
    ("PATCH", "/v1/admin/users/{id}", "/v1/admin/users/{user}", {"attributes": {"a": 1}}),
    ("POST", "/v1/admin/users/{id}/disable", "/v1/admin/users/{user}/disable", None),
    ("POST", "/v1/admin/users/{id}/enable", "/v1/admin/users/{user}/enable", None),
    ("POST", "/v1/admin/users/{id}/unlock", "/v1/admin/users/{user}/unlock", None),
    ("POST", "/v1/admin/users/{id}/force-password-reset", "/v1/admin/users/{user}/force-password-reset", None),
    ("POST", "/v1/admin/users/{id}/end-sessions", "/v1/admin/users/{user}/end-sessions", None),
]


def _url(w, url):
    return url.format(tenant=w.alpha, user=w.alice_id)


@pytest.mark.parametrize("method,template,url,body", ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_every_route_needs_a_valid_bearer(w, method, template, url, body):
    for headers in ({}, {"authorization": "Bearer not.a.jwt"}, {"authorization": "Basic cm9vdDpyb290"},
                    {"authorization": f"Bearer {w.alice[:-4]}AAAA"}):
        r = w.api.call(method, template, _url(w, url), json=body, headers=headers)
        problem(r, 401, "invalid_token")
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,template,url,body", ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_every_route_needs_the_admin_role(w, method, template, url, body):
    r = w.api.call(method, template, _url(w, url), json=body, token=w.carol)
    problem(r, 403, "forbidden")


# --- tenants --------------------------------------------------------------------------------


def test_global_admin_creates_lists_and_gets_tenants(w):
    name = uniq("t")
    r = w.api.call("POST", "/v1/admin/tenants", token=w.root, json={"name": name, "display_name": "Tést Co"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["name"] == name and t["display_name"] == "Tést Co"
    assert w.audit("tenant.created", t["id"]) == [json.dumps({"name": name})]

    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}", token=w.root)
    assert r.status_code == 200 and r.json() == t

    r = w.api.call("POST", "/v1/admin/tenants", token=w.root, json={"name": name})
    problem(r, 409, "conflict")

    r = w.api.call("POST", "/v1/admin/tenants", token=w.root, json={"name": uniq("t")})
    assert r.status_code == 201 and r.json()["display_name"] == ""

    names = [x["name"] for x in all_pages(w, "/v1/admin/tenants", w.root, limit=200)]
    assert {"ops", "alpha", "beta", name} <= set(names)


def test_tenant_admin_cannot_create_tenants_and_sees_only_its_own(w):
    r = w.api.call("POST", "/v1/admin/tenants", token=w.alice, json={"name": uniq("t")})
    problem(r, 403, "forbidden")
    r = w.api.call("GET", "/v1/admin/tenants", token=w.alice)
    assert r.status_code == 200
    assert [t["id"] for t in r.json()["items"]] == [w.alpha] and r.json()["next_cursor"] is None
    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{w.alpha}", token=w.alice)
    assert r.status_code == 200 and r.json()["name"] == "alpha"


@pytest.mark.parametrize("tid", ["beta", "ops", str(uuid.uuid4()), "nope", "00000000-0000-0000-0000-00000000000g",
                                 "%20", "1' OR '1'='1"])
def test_other_and_missing_tenants_are_404(w, tid):
    tid = {"beta": w.beta, "ops": w.ops}.get(tid, tid)
    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{tid}", token=w.alice)
    body = problem(r, 404, "not_found")
    assert tid not in json.dumps(body)


BAD_TENANTS = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "Upper"}, "name"),
    ({"name": "-lead"}, "name"),
    ({"name": "a" * 64}, "name"),
    ({"name": "sp ace"}, "name"),
    ({"name": "ünï"}, "name"),
    ({"name": 5}, "name"),
    ({"name": None}, "name"),
    ({"name": "ok", "display_name": "x" * 201}, "display_name"),
    ({"name": "ok", "display_name": "bell\u0007"}, "display_name"),
    ({"name": "ok", "display_name": ["x"]}, "display_name"),
    ({"name": "ok", "settings": {}}, "settings"),
]


@pytest.mark.parametrize("body,field", BAD_TENANTS, ids=[json.dumps(b)[:40] for b, _ in BAD_TENANTS])
def test_bad_tenant_input_is_400(w, body, field):
    r = w.api.call("POST", "/v1/admin/tenants", token=w.root, json=body)
    problem(r, 400, "invalid_request", field)


def test_display_name_counts_characters_not_bytes(w):
    r = w.api.call("POST", "/v1/admin/tenants", token=w.root, json={"name": uniq("t"), "display_name": "é" * 200})
    assert r.status_code == 201, r.text


# --- pagination -----------------------------------------------------------------------------


def all_pages(w, path, token, limit, **query):
    items, cursor, pages = [], None, 0
    while True:
        params = dict(query, limit=limit)
        if cursor:
            params["cursor"] = cursor
        r = w.api.call("GET", path, token=token, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert pages < 1000


def test_user_pages_are_complete_stable_and_disjoint(w):
    tid = w.api.call("POST", "/v1/admin/tenants", token=w.root, json={"name": uniq("pg")}).json()["id"]
    made = [w.create_user(w.root, tenant_id=tid)[0]["id"] for _ in range(7)]
    for limit in (1, 2, 3, 7, 50):
        got = [u["id"] for u in all_pages(w, "/v1/admin/users", w.root, limit, tenant_id=tid)]
        assert got == made, f"limit {limit}"
    r = w.api.call("GET", "/v1/admin/users", token=w.root, params={"tenant_id": tid, "limit": 7})
    assert r.json()["next_cursor"] is None
    r = w.api.call("GET", "/v1/admin/users", token=w.root, params={"tenant_id": tid})
    assert len(r.json()["items"]) == 7  # default limit 50


def test_tenant_pages(w):
    every = [t["id"] for t in all_pages(w, "/v1/admin/tenants", w.root, 200)]
    assert [t["id"] for t in all_pages(w, "/v1/admin/tenants", w.root, 1)] == every
    assert len(set(every)) == len(every)


@pytest.mark.parametrize("path", ["/v1/admin/users", "/v1/admin/tenants"])
@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "-1"}, "limit"), ({"limit": "abc"}, "limit"),
    ({"limit": "1e2"}, "limit"), ({"limit": "0010"}, "limit"), ({"limit": ""}, "limit"),
    ({"cursor": "garbage!"}, "cursor"), ({"cursor": "AAAA"}, "cursor"), ({"cursor": ""}, "cursor"),
    ({"cursor": "MTox"}, "cursor"), ({"cursor": "x" * 500}, "cursor"),
    ({"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk6MDQ1OTIzNTctN2IwMC00MDAyLWI1ZGUtZjRjNWQ4ZjQyYmZj"}, "cursor"),
])
def test_bad_paging_parameters_are_400(w, path, params, field):
    r = w.api.call("GET", path, token=w.root, params=params)
    problem(r, 400, "invalid_request", field)


def test_a_cursor_made_by_hand_for_another_tenant_reveals_nothing(w):
    import base64
    key = f"0:{w.bob_id}".encode()
    cursor = base64.urlsafe_b64encode(key).decode().rstrip("=")
    r = w.api.call("GET", "/v1/admin/users", token=w.alice, params={"cursor": cursor, "limit": 200})
    assert r.status_code == 200
    assert {u["tenant"] for u in r.json()["items"]} == {"alpha"}


# --- users: create -------------------------------------------------------------------------------


def test_create_user_with_password_then_login(w):
    email = f"{uniq()}@Example.TEST"
    pw = strong()
    u, _ = w.create_user(w.alice, email=f"  {email}\t", password=pw, attributes={"dept": "eng", "level": 3},
                         roles=["admin"])
    assert u["email"] == email and u["tenant"] == "alpha" and u["tenant_id"] == w.alpha
    assert u["status"] == "active" and u["roles"] == ["admin"] and u["attributes"] == {"dept": "eng", "level": 3}
    assert u["password_reset_required"] is False
    assert w.audit("user.created", u["id"]) == [json.dumps({"roles": ["admin"], "imported": False})]
    tokens = w.login("alpha", email.lower(), pw)
    # the new admin can administer alpha at once
    r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{u['id']}", token=tokens["access_token"])
    assert r.status_code == 200 and r.json() == u
    # the hash is argon2id with the configured parameters, and never in the API
    phc = w.sql(f"SELECT phc FROM credentials WHERE user_id = '{u['id']}'")
    assert phc.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert "argon2" not in r.text


def test_email_taken_is_per_tenant_and_case_insensitive(w):
    email = f"{uniq()}@example.test"
    w.create_user(w.alice, email=email)
    r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": " " + email.upper(), "password": strong()})
    problem(r, 409, "email_taken")
    # the same address in another tenant is another user
    u, _ = w.create_user(w.bob, email=email)
    assert u["tenant"] == "beta"


def test_weak_password_names_the_field(w):
    for pw in ("short", "aaaaaaaaaaaaaaaa", "123456789012", "password12345678"):
        r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": f"{uniq()}@example.test",
                                                                       "password": pw})
        problem(r, 400, "weak_password", "password")
    email = f"{uniq()}@example.test"
    r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": email, "password": email + "1"})
    problem(r, 400, "weak_password", "password")


def argon2_cli(password, variant, m_log2=12, t=3, p=1):
    if shutil.which("argon2") is None:
        pytest.skip("the argon2 CLI (package argon2, deploy/deps) is not installed")
    out = subprocess.run(["argon2", secrets.token_hex(8), f"-{variant}", "-t", str(t), "-m", str(m_log2), "-p", str(p),
                          "-e"], input=password.encode(), capture_output=True, check=True)
    return out.stdout.decode().strip()


@pytest.mark.parametrize("variant", ["id", "i"])
def test_import_argon2_hash_then_login(w, variant):
    pw = strong()
    phc = argon2_cli(pw, variant)
    assert phc.startswith(f"$argon2{variant}$")
    email = f"{uniq()}@example.test"
    u, _ = w.create_user(w.alice, email=email, password_hash=phc)
    assert w.audit("user.created", u["id"]) == [json.dumps({"roles": [], "imported": True})]
    assert w.sql(f"SELECT phc FROM credentials WHERE user_id = '{u['id']}'") == phc
    r = w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw + "x"})
    problem(r, 401, "invalid_credentials")
    w.login("alpha", email, pw)
    # upgraded to the configured argon2id on that first login
    assert w.sql(f"SELECT phc FROM credentials WHERE user_id = '{u['id']}'").startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_import_of_a_latchctl_hash(w):
    pw = strong()
    p = w.d.latchctl("hash-password", input=pw + "\n", check=True)
    phc = p.stdout.strip()
    email = f"{uniq()}@example.test"
    w.create_user(w.alice, email=email, password_hash=phc)
    w.login("alpha", email, pw)


BAD_HASHES = [
    "$argon2d$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    "$argon2id$v=19$m=4096,t=3,p=1$$",
    "$argon2id$v=19$m=1,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$" + "A" * 600,
    "plain text",
    "",
]


@pytest.mark.parametrize("phc", BAD_HASHES, ids=range(len(BAD_HASHES)))
def test_bad_password_hash_is_400(w, phc):
    r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": f"{uniq()}@example.test",
                                                                   "password_hash": phc})
    problem(r, 400, "invalid_request", "password_hash")


BAD_USERS = [
    ({"password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@b.test"}, "password"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "password_hash": "$argon2id$x"}, "password_hash"),
    ({"email": 5, "password": "Ax9!longenough-1"}, "email"),
    ({"email": "", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "no-at.test", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@@b.test", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "@b.test", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a b@c.test", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@b\n.test", "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@" + "b" * 320, "password": "Ax9!longenough-1"}, "email"),
    ({"email": "a@b.test", "password": 12345678901234}, "password"),
    ({"email": "a@b.test", "password": "x" * 1025}, "password"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "attributes": []}, "attributes"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "attributes": "x"}, "attributes"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "roles": "admin"}, "roles"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "roles": ["root"]}, "roles"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "roles": [1]}, "roles"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "tenant_id": "alpha"}, "tenant_id"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "tenant_id": 7}, "tenant_id"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "status": "active"}, "status"),
    ({"email": "a@b.test", "password": "Ax9!longenough-1", "id": str(uuid.uuid4())}, "id"),
]


@pytest.mark.parametrize("body,field", BAD_USERS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_USERS)])
def test_bad_user_input_is_400(w, body, field):
    r = w.api.call("POST", "/v1/admin/users", token=w.alice, json=body)
    problem(r, 400, "invalid_request", field)


def test_hostile_bodies_are_4xx(w):
    cases = [
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"[]", "application/json"),
        (b'{"email": "a@b.test", "email": "c@d.test", "password": "x"}', "application/json"),
        (b'{"email": "\xff@b.test", "password": "Ax9!longenough-1"}', "application/json"),
        (b'{"email": "a@b\\u0000.test", "password": "Ax9!longenough-1"}', "application/json"),
        (json.dumps({"email": "a@b.test", "password": "p" * 50 * 1024}).encode(), "application/json"),
        (b"email=a@b.test", "application/x-www-form-urlencoded"),
        (json.dumps({"email": "a@b.test", "password": "Ax9!longenough-1"}).encode(), "text/plain"),
    ]
    for content, ctype in cases:
        r = w.api.call("POST", "/v1/admin/users", token=w.alice, content=content, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500, (content[:60], r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_tenant_admin_cannot_grant_global_admin_or_reach_other_tenants(w):
    tried = [f"{uniq()}@example.test"]
    r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": tried[0], "password": strong(),
                                                                   "roles": ["global_admin"]})
    problem(r, 403, "forbidden")
    for tid in (w.beta, str(uuid.uuid4())):
        tried.append(f"{uniq()}@example.test")
        r = w.api.call("POST", "/v1/admin/users", token=w.alice, json={"email": tried[-1], "password": strong(),
                                                                       "tenant_id": tid})
        problem(r, 404, "not_found")
    # none of the refused users exists anywhere (by address: other tests create users too)
    listed = ", ".join(f"'{e.lower()}'" for e in tried)
    assert w.sql(f"SELECT count(*) FROM users WHERE email_norm IN ({listed})") == "0"
    # naming its own tenant is fine
    u, _ = w.create_user(w.alice, tenant_id=w.alpha)
    assert u["tenant_id"] == w.alpha


def test_global_admin_creates_users_anywhere(w):
    u, _ = w.create_user(w.root, tenant_id=w.beta, roles=["admin", "global_admin", "admin"])
    assert u["tenant"] == "beta" and u["roles"] == ["admin", "global_admin"]
    u, _ = w.create_user(w.root)
    assert u["tenant"] == "ops"  # the caller's tenant by default
    r = w.api.call("POST", "/v1/admin/users", token=w.root, json={"email": f"{uniq()}@example.test",
                                                                  "password": strong(),
                                                                  "tenant_id": str(uuid.uuid4())})
    problem(r, 404, "not_found")


# --- users: read ----------------------------------------------------------------------------------


def test_get_user_and_isolation(w):
    r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{w.carol_id}", token=w.alice)
    assert r.status_code == 200 and r.json()["email"] == "carol@alpha.test" and r.json()["roles"] == []
    r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{w.carol_id}", token=w.root)
    assert r.status_code == 200
    for token, uid in ((w.bob, w.carol_id), (w.alice, w.bob_id), (w.alice, w.root_id)):
        r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{uid}", token=token)
        problem(r, 404, "not_found")


@pytest.mark.parametrize("uid", [str(uuid.uuid4()), "x", "not-a-uuid", "00000000-0000-0000-0000-00000000000g",
                                 "00000000000000000000000000000000", "%27", "a" * 300])
def test_unknown_or_malformed_user_ids_are_404(w, uid):
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {"attributes": {}}),
                                 ("POST", "/disable", None), ("POST", "/enable", None), ("POST", "/unlock", None),
                                 ("POST", "/force-password-reset", None), ("POST", "/end-sessions", None)):
        r = w.api.call(method, "/v1/admin/users/{id}" + suffix, f"/v1/admin/users/{uid}{suffix}", token=w.root,
                       json=body)
        problem(r, 404, "not_found")


def test_list_users_is_scoped_and_filters_by_email(w):
    tag = uniq("f").replace("-", "")
    emails = [f"{tag}.One@example.test", f"{tag}_two@example.test", f"{tag}%three@example.test"]
    for e in emails:
        w.create_user(w.alice, email=e)
    w.create_user(w.bob, email=f"{tag}.beta@example.test")

    def listed(token, **q):
        return sorted(u["email"] for u in all_pages(w, "/v1/admin/users", token, 200, **q))

    assert listed(w.alice, email=tag) == sorted(emails)
    assert listed(w.alice, email=f"{tag}.one".upper()) == [emails[0]]
    assert listed(w.alice, email=f"{tag}_") == [emails[1]]  # '_' is literal, not a wildcard
    assert listed(w.alice, email=f"{tag}%") == [emails[2]]  # so is '%'
    assert listed(w.alice, email="no-such-thing-at-all") == []
    assert listed(w.root, email=tag) == sorted(emails + [f"{tag}.beta@example.test"])
    assert listed(w.root, email=tag, tenant_id=w.beta) == [f"{tag}.beta@example.test"]
    assert listed(w.alice, email=tag, tenant_id=w.beta) == []  # no peeking with a filter either
    # a tenant admin's plain listing holds its tenant only
    assert {u["tenant"] for u in all_pages(w, "/v1/admin/users", w.alice, 200)} == {"alpha"}
    assert {u["tenant"] for u in all_pages(w, "/v1/admin/users", w.bob, 200)} == {"beta"}


def test_list_users_bad_filters(w):
    r = w.api.call("GET", "/v1/admin/users", token=w.root, params={"tenant_id": "beta"})
    problem(r, 400, "invalid_request", "tenant_id")
    r = w.api.call("GET", "/v1/admin/users", token=w.root, params={"email": "x" * 321})
    problem(r, 400, "invalid_request", "email")


# --- users: change --------------------------------------------------------------------------------


def test_patch_attributes_is_a_merge_patch(w):
    u, _ = w.create_user(w.alice, attributes={"a": 1, "b": {"c": 2, "d": 3}, "keep": True})
    url = f"/v1/admin/users/{u['id']}"
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice,
                   json={"attributes": {"a": None, "b": {"c": None, "e": [1, 2]}, "n": "new", "gone": None}})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"b": {"d": 3, "e": [1, 2]}, "keep": True, "n": "new"}
    assert w.audit("user.updated", u["id"]) == [json.dumps({"changed": ["a", "b", "n"]})]
    # application/merge-patch+json works too; an unchanged value is not audited
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice,
                   content=json.dumps({"attributes": {"keep": True}}),
                   headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["attributes"]["keep"] is True
    assert len(w.audit("user.updated", u["id"])) == 1
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice, json={"attributes": {}})
    assert r.status_code == 200
    # values never reach the audit log
    assert "new" not in w.sql(f"SELECT string_agg(details::text, ' ') FROM audit_events WHERE target = '{u['id']}'")


@pytest.mark.parametrize("body,field", [
    ({}, "attributes"), ({"attributes": None}, "attributes"), ({"attributes": [1]}, "attributes"),
    ({"attributes": "x"}, "attributes"), ({"attributes": {}, "email": "x@y.z"}, "email"),
])
def test_bad_patches_are_400(w, body, field):
    r = w.api.call("PATCH", "/v1/admin/users/{id}", f"/v1/admin/users/{w.carol_id}", token=w.root, json=body)
    problem(r, 400, "invalid_request", field)


def test_attributes_stay_under_64_kib(w):
    u, _ = w.create_user(w.alice)
    url = f"/v1/admin/users/{u['id']}"
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice, json={"attributes": {"a": "x" * 40000}})
    assert r.status_code == 200
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice, json={"attributes": {"b": "y" * 30000}})
    problem(r, 400, "invalid_request", "attributes")
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice, json={"attributes": {"a": None, "b": "y"}})
    assert r.status_code == 200 and r.json()["attributes"] == {"b": "y"}


def test_patch_wrong_content_type_is_415(w):
    r = w.api.call("PATCH", "/v1/admin/users/{id}", f"/v1/admin/users/{w.carol_id}", token=w.root,
                   content=b'{"attributes": {}}', headers={"content-type": "text/plain"})
    problem(r, 415, "unsupported_media_type")


def test_tenant_admin_may_not_change_a_global_admin(w):
    # a tenant admin of ops, beside the global admin root
    pw = strong()
    opsadmin, _ = w.create_user(w.root, email=f"{uniq()}@ops.test", password=pw, roles=["admin"])
    token = w.login("ops", opsadmin["email"], pw)["access_token"]
    url = f"/v1/admin/users/{w.root_id}"
    r = w.api.call("GET", "/v1/admin/users/{id}", url, token=token)
    assert r.status_code == 200  # may see it
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=token, json={"attributes": {"x": 1}})
    problem(r, 403, "forbidden")
    for action in ("disable", "enable", "unlock", "force-password-reset", "end-sessions"):
        r = w.api.call("POST", "/v1/admin/users/{id}/" + action, f"{url}/{action}", token=token)
        problem(r, 403, "forbidden")
    assert w.sql(f"SELECT status, password_reset_required FROM users WHERE id = '{w.root_id}'") == "active|f"


def test_other_tenants_users_are_404_for_every_change(w):
    url = f"/v1/admin/users/{w.bob_id}"
    r = w.api.call("PATCH", "/v1/admin/users/{id}", url, token=w.alice, json={"attributes": {"x": 1}})
    problem(r, 404, "not_found")
    for action in ("disable", "enable", "unlock", "force-password-reset", "end-sessions"):
        r = w.api.call("POST", "/v1/admin/users/{id}/" + action, f"{url}/{action}", token=w.alice)
        problem(r, 404, "not_found")
    assert w.sql(f"SELECT status, password_reset_required, attributes::text FROM users WHERE id = '{w.bob_id}'") \
        == "active|f|{}"


def new_signed_in_user(w):
    pw = strong()
    u, body = w.create_user(w.alice, password=pw)
    tokens = w.login("alpha", body["email"], pw)
    return u, body["email"], pw, tokens


def refresh(w, rt):
    return w.api.call("POST", "/v1/auth/refresh", json={"refresh_token": rt})


def test_disable_ends_sessions_and_login_then_enable(w):
    u, email, pw, tokens = new_signed_in_user(w)
    w.login("alpha", email, pw)  # a second session
    url = f"/v1/admin/users/{u['id']}"
    r = w.api.call("POST", "/v1/admin/users/{id}/disable", url + "/disable", token=w.alice)
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert w.audit("user.disabled", u["id"]) == [json.dumps({"previous_status": "active", "sessions_revoked": 2})]
    assert w.sql(f"SELECT count(*) FROM sessions WHERE user_id = '{u['id']}' AND revoked_at IS NULL") == "0"
    problem(refresh(w, tokens["refresh_token"]), 400, "invalid_grant")
    r = w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw})
    problem(r, 401, "invalid_credentials")
    r = w.api.call("POST", "/v1/admin/users/{id}/disable", url + "/disable", token=w.alice)  # idempotent
    assert r.status_code == 200 and r.json()["status"] == "disabled"

    r = w.api.call("POST", "/v1/admin/users/{id}/enable", url + "/enable", token=w.alice)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert w.audit("user.enabled", u["id"]) == [json.dumps({"previous_status": "disabled"})]
    w.login("alpha", email, pw)


def test_unlock_clears_status_and_counters(w):
    u, email, pw, _ = new_signed_in_user(w)
    norm = email.lower()
    w.sql(f"UPDATE users SET status = 'locked' WHERE id = '{u['id']}'")
    w.sql("INSERT INTO login_attempts (scope, tenant, email_norm, ip, failures, locked_until) VALUES "
          f"('source', 'alpha', '{norm}', '10.0.0.1', 5, now() + interval '1 hour'), "
          f"('account', 'alpha', '{norm}', '', 60, NULL), "
          f"('source', 'beta', '{norm}', '10.0.0.1', 5, now() + interval '1 hour'), "
          "('ip', '', '', '10.0.0.1', 3, NULL) "
          "ON CONFLICT (scope, tenant, email_norm, ip) DO UPDATE SET failures = excluded.failures, "
          "locked_until = excluded.locked_until")
    r = w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw})
    problem(r, 429, "too_many_attempts")  # the account is slowed down
    url = f"/v1/admin/users/{u['id']}/unlock"
    r = w.api.call("POST", "/v1/admin/users/{id}/unlock", url, token=w.alice)
    assert r.status_code == 200 and r.json()["status"] == "active"
    # the account row, the 10.0.0.1 source and the source of the refused attempt above
    assert w.audit("user.unlocked", u["id"]) == [json.dumps({"previous_status": "locked", "counters_cleared": 3})]
    # the other tenant's counters and the ip counter are not this account's
    assert w.sql(f"SELECT scope || ':' || tenant FROM login_attempts WHERE email_norm IN ('{norm}', '') "
                 "AND ip = '10.0.0.1' ORDER BY 1") == "ip:\nsource:beta"
    w.login("alpha", email, pw)
    # unlocking a disabled user does not enable it
    w.api.call("POST", "/v1/admin/users/{id}/disable", f"/v1/admin/users/{u['id']}/disable", token=w.alice)
    r = w.api.call("POST", "/v1/admin/users/{id}/unlock", url, token=w.alice)
    assert r.status_code == 200 and r.json()["status"] == "disabled"


def test_force_password_reset_end_to_end(w):
    u, email, pw, tokens = new_signed_in_user(w)
    before = int(w.sql("SELECT coalesce(max(id), 0) FROM outbox"))
    url = f"/v1/admin/users/{u['id']}/force-password-reset"
    r = w.api.call("POST", "/v1/admin/users/{id}/force-password-reset", url, token=w.alice)
    assert r.status_code == 200 and r.json()["password_reset_required"] is True
    assert "lt_pr_" not in r.text
    problem(refresh(w, tokens["refresh_token"]), 400, "invalid_grant")
    r = w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw})
    problem(r, 403, "password_reset_required")
    rows = w.sql(f"SELECT topic, payload::text FROM outbox WHERE id > {before} ORDER BY id").splitlines()
    assert len(rows) == 1
    topic, payload = rows[0].split("|", 1)
    payload = json.loads(payload)
    assert topic == "password_reset" and payload["user_id"] == u["id"] and payload["email"] == email
    assert set(payload) == {"user_id", "tenant_id", "tenant", "email", "token", "expires_at"}
    [details] = w.audit("user.password_reset_forced", u["id"])
    assert json.loads(details)["sessions_revoked"] == 1 and "lt_pr_" not in details
    # a second forced reset replaces the first token
    first = payload["token"]
    w.api.call("POST", "/v1/admin/users/{id}/force-password-reset", url, token=w.alice)
    second = json.loads(w.sql(f"SELECT payload::text FROM outbox WHERE id > {before} ORDER BY id DESC LIMIT 1"))
    new_pw = strong()
    r = w.api.call("POST", "/v1/auth/password-reset/confirm", json={"token": first, "new_password": new_pw})
    assert r.status_code == 400, r.text
    r = w.api.call("POST", "/v1/auth/password-reset/confirm", json={"token": second["token"], "new_password": new_pw})
    assert r.status_code in (200, 204), r.text
    w.login("alpha", email, new_pw)
    r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{u['id']}", token=w.alice)
    assert r.json()["password_reset_required"] is False


def test_end_sessions(w):
    u, email, pw, tokens = new_signed_in_user(w)
    w.login("alpha", email, pw)
    url = f"/v1/admin/users/{u['id']}/end-sessions"
    r = w.api.call("POST", "/v1/admin/users/{id}/end-sessions", url, token=w.alice)
    assert r.status_code == 200 and r.json() == {"revoked_sessions": 2}
    problem(refresh(w, tokens["refresh_token"]), 400, "invalid_grant")
    r = w.api.call("POST", "/v1/admin/users/{id}/end-sessions", url, token=w.alice)
    assert r.json() == {"revoked_sessions": 0}
    assert w.audit("session.revoked", u["id"]) == [json.dumps({"count": 2, "reason": "admin"}),
                                                   json.dumps({"count": 0, "reason": "admin"})]
    w.login("alpha", email, pw)  # the account itself is fine


def test_an_admin_token_dies_with_its_session(w):
    """A bearer token outlives its session by up to its lifetime; admin rights must not."""
    pw = strong()
    admin, body = w.create_user(w.alice, password=pw, roles=["admin"])
    first = w.login("alpha", body["email"], pw)["access_token"]
    second = w.login("alpha", body["email"], pw)["access_token"]
    r = w.api.call("GET", "/v1/admin/users", token=first)
    assert r.status_code == 200
    # ending its own sessions locks the admin out of the admin surface at once
    r = w.api.call("POST", "/v1/admin/users/{id}/end-sessions", f"/v1/admin/users/{admin['id']}/end-sessions",
                   token=first)
    assert r.json() == {"revoked_sessions": 2}
    for token in (first, second):
        r = w.api.call("GET", "/v1/admin/users", token=token)
        problem(r, 401, "invalid_token")
        assert "invalid_token" in r.headers["www-authenticate"]
    # a disabled admin's fresh token stops working too
    third = w.login("alpha", body["email"], pw)["access_token"]
    w.api.call("POST", "/v1/admin/users/{id}/disable", f"/v1/admin/users/{admin['id']}/disable", token=w.alice)
    r = w.api.call("POST", "/v1/admin/users", token=third, json={"email": f"{uniq()}@example.test",
                                                                 "password": strong()})
    problem(r, 401, "invalid_token")


def test_admin_events_name_the_actor_and_the_request(w):
    u, _ = w.create_user(w.alice)
    r = w.api.call("POST", "/v1/admin/users/{id}/enable", f"/v1/admin/users/{u['id']}/enable", token=w.alice,
                   headers={"x-request-id": "admin-test-req-1"})
    assert r.status_code == 200
    row = w.sql(f"SELECT tenant_id, actor, ip, request_id, outcome FROM audit_events WHERE event = 'user.enabled' "
                f"AND target = '{u['id']}'")
    assert row == f"{w.alpha}|{w.alice_id}|127.0.0.1|admin-test-req-1|success"


def test_requests_through_tls_too(w):
    with w.d.tls() as c:
        r = c.get("/v1/admin/users", headers=lt.bearer(w.alice), params={"limit": 1})
    assert r.status_code == 200 and r.http_version == "HTTP/2"
    w.api.openapi.check_response("GET", "/v1/admin/users", r)
