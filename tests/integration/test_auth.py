"""The sign-in surface (issue 3): login, tokens, sessions, refresh, logout, password change
and reset, JWKS, and hostile input.

Everything is real: latchd on its own migrated database, HTTP/2 over h2c, users created
directly in PostgreSQL as the owner role with PHC strings from the argon2 CLI, access tokens
verified by python3-jwcrypto from the JWKS fetched over HTTP and nothing else. Every
response goes through openapi.check_response, so the contract is checked with the
behaviour. Cheap argon2 parameters (1 MiB, one pass) keep the suite fast where cost does
not matter; test_lockout.py shares the helpers defined here.
"""

import base64
import json
import os
import subprocess
import time
import uuid

import httpx
import pytest

import latchtest as lt

ISSUER = "https://auth.test"
AUDIENCE = "latch-test"
PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "Tr0ub4dor & 3 quiet violins"

# latchd settings shared by these tests: fast argon2, no per-IP limit (one address makes
# every request here), the issuer and audience the token checks expect.
FAST = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
            issuer=ISSUER, audience=AUDIENCE, password_min_length=12)


# --- helpers (also used by test_lockout.py) ---------------------------------------------------


def q(v):
    """A SQL literal (test-controlled values only)."""
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def make_phc(password, m=1024, t=1, p=1):
    """An argon2id PHC string made by the argon2 CLI (independent of latchd)."""
    salt = os.urandom(12).hex()  # the CLI takes the salt as text: 24 bytes of it
    out = subprocess.run(["argon2", salt, "-id", "-t", str(t), "-k", str(m), "-p", str(p), "-e"],
                         input=password.encode(), capture_output=True, check=True)
    phc = out.stdout.decode().strip()
    assert phc.startswith("$argon2id$"), phc
    return phc


class World:
    """The database behind one latchd, reached with psql as the owner role."""

    def __init__(self, d):
        self.d = d
        info = dict(kv.split("=", 1) for kv in d.config["database_url"].split())
        self.host, self.db = info["host"], info["dbname"]

    def sql(self, query, user="latch_owner"):
        return lt.psql(self.host, query, db=self.db, user=user)

    def tenant(self, name):
        return self.sql(f"WITH t AS (INSERT INTO tenants (name) VALUES ({q(name)}) RETURNING id) SELECT id FROM t")

    def user(self, tenant_id, email, password=PASSWORD, status="active", roles=(), reset=False, phc=None):
        """A user with a credential (unless password and phc are None); returns its id."""
        uid = self.sql(
            "WITH u AS (INSERT INTO users (tenant_id, email, email_norm, status, password_reset_required) "
            f"VALUES ({q(tenant_id)}, {q(email)}, lower(btrim({q(email)})), {q(status)}, {str(bool(reset)).lower()}) "
            "RETURNING id) SELECT id FROM u")
        phc = phc or (make_phc(password) if password is not None else None)
        if phc:
            self.sql(f"INSERT INTO credentials (user_id, tenant_id, phc) VALUES ({q(uid)}, {q(tenant_id)}, {q(phc)})")
        for role in roles:
            self.sql(f"INSERT INTO user_roles (tenant_id, user_id, role) VALUES ({q(tenant_id)}, {q(uid)}, {q(role)})")
        return uid

    def phc(self, uid):
        return self.sql(f"SELECT phc FROM credentials WHERE user_id = {q(uid)}")

    def audit_events(self, event):
        return self.sql(f"SELECT count(*) FROM audit_log WHERE event = {q(event)}")


class Api:
    """An HTTP/2 client whose every response is checked against proto/openapi.yaml."""

    def __init__(self, d, openapi, local_address=None):
        if local_address:
            transport = httpx.HTTPTransport(http1=False, http2=True, local_address=local_address)
            self.c = httpx.Client(base_url=d.h2c_url, transport=transport, timeout=20.0, trust_env=False)
        else:
            self.c = d.h2c(timeout=20.0)
        self.url = d.h2c_url
        self.openapi = openapi

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, template, url=None, token=None, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["authorization"] = f"Bearer {token}"
        r = self.c.request(method, url or template, headers=headers, **kw)
        assert r.status_code < 500 or r.status_code == 503, f"{method} {url or template}: {r.status_code} {r.text}"
        self.openapi.check_response(method, template, r)
        return r

    def burst(self, method, template, bodies, token=None):
        """One request per body, sent at once as streams of a fresh h2c connection (threads
        sharing self.c would race in httpcore: see lt.h2c_burst); each response checked."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        rs = lt.h2c_burst(self.url, [(method, template, headers, b) for b in bodies])
        for r in rs:
            assert r.status_code < 500 or r.status_code == 503, f"{method} {template}: {r.status_code} {r.text}"
            self.openapi.check_response(method, template, r)
        return rs

    def login(self, tenant, email, password=PASSWORD, **kw):
        return self.call("POST", "/v1/auth/login", json={"tenant": tenant, "email": email, "password": password}, **kw)

    def ok_login(self, tenant, email, password=PASSWORD):
        r = self.login(tenant, email, password)
        assert r.status_code == 200, r.text
        return r.json()

    def refresh(self, rt):
        return self.call("POST", "/v1/auth/refresh", json={"refresh_token": rt})

    def me(self, token):
        return self.call("GET", "/v1/me", token=token)

    def verifications(self):
        """latch_password_verifications_total from /metrics (summed over any labels)."""
        r = self.c.get("/metrics")
        assert r.status_code == 200
        found = [float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines()
                 if line.startswith("latch_password_verifications_total")]
        assert found, "latch_password_verifications_total is missing from /metrics"
        return int(sum(found))


def problem(r, status, code):
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text
    return r.json()


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def verify_access_token(api, token, alg):
    """Verifies `token` with python3-jwcrypto using only the JWKS fetched over HTTP;
    returns (header, claims)."""
    from jwcrypto import jwk, jwt

    r = api.call("GET", "/.well-known/jwks.json")
    assert r.status_code == 200
    keyset = jwk.JWKSet.from_json(r.text)
    header = b64json(token.split(".")[0])
    key = keyset.get_key(header["kid"])
    assert key is not None, "the token's kid is not in the JWKS"
    t = jwt.JWT(jwt=token, key=key, algs=[alg])  # checks the signature, exp and nbf
    header, claims = json.loads(t.header), json.loads(t.claims)
    assert header["typ"] == "at+jwt" and header["alg"] == alg
    return header, claims


@pytest.fixture
def env(latchd_factory, openapi):
    """(latchd, World, Api) with tenant "acme" and users alice (admin) and bob."""
    d = latchd_factory(**FAST)
    w = World(d)
    w.tenant_id = w.tenant("acme")
    w.alice = w.user(w.tenant_id, "Alice@Acme.test", roles=("admin",))
    w.bob = w.user(w.tenant_id, "bob@acme.test")
    with Api(d, openapi) as api:
        yield d, w, api


# --- login and tokens --------------------------------------------------------------------------


def check_token_response(api, w, body, alg, uid, roles):
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["refresh_token"].startswith("lt_rt_") and len(body["refresh_token"]) == 49
    header, claims = verify_access_token(api, body["access_token"], alg)
    assert set(claims) >= {"iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "tenant", "roles", "scope", "amr",
                           "auth_time"}
    assert claims["iss"] == ISSUER
    assert claims["aud"] in (AUDIENCE, [AUDIENCE])
    assert claims["sub"] == uid and claims["sid"] == body["session_id"] and claims["tenant"] == w.tenant_id
    assert claims["roles"] == roles and claims["scope"] == "" and claims["amr"] == ["pwd"]
    now = time.time()
    assert abs(claims["iat"] - now) < 30 and claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 600
    assert abs(claims["auth_time"] - now) < 30
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    return header, claims


def test_login_issues_tokens_verifiable_from_the_jwks_es256(env):
    d, w, api = env
    r = api.login("acme", "  ALICE@acme.test ")  # email compared case-insensitively after trimming
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    header, claims = check_token_response(api, w, body, "ES256", w.alice, ["admin"])
    # The session row the login created.
    row = w.sql(f"SELECT user_id, host(ip), amr::text, revoked_at IS NULL, "
                f"expires_at - created_at = interval '30 days', idle_expires_at - created_at = interval '7 days' "
                f"FROM sessions WHERE id = {q(body['session_id'])}")
    assert row == f"{w.alice}|127.0.0.1|{{pwd}}|t|t|t"
    assert w.audit_events("login.succeeded") == "1"
    # Two logins are two sessions with different tokens.
    again = api.ok_login("acme", "bob@acme.test")
    assert again["session_id"] != body["session_id"] and again["refresh_token"] != body["refresh_token"]
    check_token_response(api, w, again, "ES256", w.bob, [])


def test_tokens_verify_with_eddsa_keys(latchd_factory, openapi):
    d = latchd_factory(signing_alg="EdDSA", **FAST)
    w = World(d)
    w.tenant_id = w.tenant("edd")
    uid = w.user(w.tenant_id, "ed@edd.test", roles=("admin",))
    with Api(d, openapi) as api:
        keys = api.call("GET", "/.well-known/jwks.json").json()["keys"]
        assert [(k["kty"], k["crv"], k["alg"]) for k in keys] == [("OKP", "Ed25519", "EdDSA")]
        body = api.ok_login("edd", "ed@edd.test")
        check_token_response(api, w, body, "EdDSA", uid, ["admin"])
        # ...and after a refresh too.
        r = api.refresh(body["refresh_token"])
        assert r.status_code == 200
        check_token_response(api, w, r.json(), "EdDSA", uid, ["admin"])


def test_jwks_is_cacheable_and_well_formed(env):
    d, w, api = env
    r = api.call("GET", "/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/jwk-set+json"
    assert r.headers["cache-control"] == "public, max-age=300"
    keys = r.json()["keys"]
    assert len(keys) == 1
    k = keys[0]
    assert (k["kty"], k["crv"], k["alg"], k["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in k  # never the private half


def test_enumeration_resistance(env):
    """Unknown email, wrong password, unknown tenant, disabled and locked users: the same
    401 and body, and one argon2 verification each."""
    d, w, api = env
    w.user(w.tenant_id, "carol@acme.test", status="disabled")
    w.user(w.tenant_id, "dave@acme.test", status="locked")
    w.user(w.tenant_id, "erin@acme.test", password=None)  # no credential at all
    other = w.tenant("other")
    w.user(other, "alice@acme.test", password="another password entirely")
    cases = [
        ("acme", "nobody@acme.test", PASSWORD),        # unknown email
        ("acme", "alice@acme.test", PASSWORD + "x"),   # wrong password
        ("nosuch", "alice@acme.test", PASSWORD),       # unknown tenant
        ("acme", "carol@acme.test", PASSWORD),         # disabled, right password
        ("acme", "dave@acme.test", PASSWORD),          # locked by an admin, right password
        ("acme", "erin@acme.test", PASSWORD),          # no credential
        ("other", "alice@acme.test", PASSWORD),        # right password of another tenant
    ]
    bodies = set()
    for tenant, email, password in cases:
        before = api.verifications()
        r = api.login(tenant, email, password)
        body = problem(r, 401, "invalid_credentials")
        assert "retry-after" not in r.headers
        bodies.add(json.dumps(body, sort_keys=True))
        assert api.verifications() == before + 1, f"{tenant}/{email}: not exactly one verification"
    assert len(bodies) == 1, bodies
    # Audited with the reason; never the password.
    reasons = w.sql("SELECT string_agg(details->>'reason', ',' ORDER BY id) FROM audit_log WHERE event = 'login.failed'")
    assert reasons == "unknown_user,bad_password,unknown_user,disabled,locked,bad_password,bad_password"
    assert PASSWORD not in w.sql("SELECT string_agg(details::text, ' ') FROM audit_log")


def test_password_reset_required_needs_the_right_password(env):
    d, w, api = env
    w.user(w.tenant_id, "frank@acme.test", reset=True)
    problem(api.login("acme", "frank@acme.test", "wrong password here"), 401, "invalid_credentials")
    problem(api.login("acme", "frank@acme.test"), 403, "password_reset_required")
    assert w.sql("SELECT count(*) FROM sessions") == "0"


def test_rehash_on_login_when_parameters_changed(latchd_factory, openapi):
    # The stored hash has m=1024,t=1; latchd now hashes with m=2048,t=2.
    d = latchd_factory(**dict(FAST, argon2_memory_kib=2048, argon2_iterations=2))
    w = World(d)
    t = w.tenant("rh")
    uid = w.user(t, "r@rh.test")
    old = w.phc(uid)
    assert "$m=1024,t=1,p=1$" in old
    with Api(d, openapi) as api:
        problem(api.login("rh", "r@rh.test", "not the password"), 401, "invalid_credentials")
        assert w.phc(uid) == old  # a failed login upgrades nothing
        api.ok_login("rh", "r@rh.test")
        new = w.phc(uid)
        assert new != old and "$m=2048,t=2,p=1$" in new
        api.ok_login("rh", "r@rh.test")  # the upgraded hash verifies
        assert w.phc(uid) == new
    assert w.sql("SELECT details->>'rehashed' FROM audit_log WHERE event = 'login.succeeded' ORDER BY id") == "true\nfalse"


def test_login_is_503_not_500_when_the_store_is_down(latchd_factory, openapi, private_pg):
    d = latchd_factory(database_url=private_pg.database_url, **FAST)
    with Api(d, openapi) as api:
        private_pg.stop("immediate")
        r = api.login("acme", "alice@acme.test")
        assert r.status_code == 503 and r.json()["code"] in ("store_unavailable", "store_timeout"), r.text
        private_pg.start()


# --- sessions ------------------------------------------------------------------------------------


def test_me_and_sessions(env):
    d, w, api = env
    a1 = api.ok_login("acme", "alice@acme.test")
    a2 = api.ok_login("acme", "alice@acme.test")
    b1 = api.ok_login("acme", "bob@acme.test")

    r = api.me(a1["access_token"])
    assert r.status_code == 200
    me = r.json()
    assert me["id"] == w.alice and me["email"] == "Alice@Acme.test" and me["tenant"] == "acme"
    assert me["roles"] == ["admin"] and me["session_id"] == a1["session_id"] and me["status"] == "active"

    r = api.call("GET", "/v1/me/sessions", token=a2["access_token"])
    items = r.json()["items"]
    assert [s["id"] for s in items] == [a2["session_id"], a1["session_id"]]  # newest first; bob's not listed
    assert [s["current"] for s in items] == [True, False]
    assert all(s["ip"] == "127.0.0.1" and s["amr"] == ["pwd"] for s in items)
    assert items[0]["user_agent"].startswith("python-httpx/")

    # DELETE another of my sessions: it ends, with its refresh token.
    r = api.call("DELETE", "/v1/me/sessions/{id}", f"/v1/me/sessions/{a1['session_id']}", token=a2["access_token"])
    assert r.status_code == 204 and r.content == b""
    problem(api.me(a1["access_token"]), 401, "invalid_token")
    problem(api.refresh(a1["refresh_token"]), 400, "invalid_grant")
    assert [s["id"] for s in api.call("GET", "/v1/me/sessions", token=a2["access_token"]).json()["items"]] \
        == [a2["session_id"]]
    assert w.sql(f"SELECT revoked_reason FROM sessions WHERE id = {q(a1['session_id'])}") == "user"
    assert w.audit_events("session.revoked") == "1"
    # Again, someone else's, a random one, not a uuid: 404.
    for sid in (a1["session_id"], b1["session_id"], str(uuid.uuid4()), "not-a-uuid"):
        r = api.call("DELETE", "/v1/me/sessions/{id}", f"/v1/me/sessions/{sid}", token=a2["access_token"])
        problem(r, 404, "not_found")
    assert api.me(b1["access_token"]).status_code == 200

    # No token, a malformed one, a forged one.
    r = api.call("GET", "/v1/me")
    problem(r, 401, "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer")
    problem(api.me("nonsense"), 401, "invalid_token")
    h, c, s = a2["access_token"].split(".")
    claims = b64json(c)
    claims["sub"] = w.bob
    forged = h + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + s
    problem(api.me(forged), 401, "invalid_token")
    for path in ("/v1/me/sessions",):
        problem(api.call("GET", path), 401, "invalid_token")
    problem(api.call("POST", "/v1/me/logout-all"), 401, "invalid_token")
    problem(api.call("POST", "/v1/auth/logout"), 401, "invalid_token")


def test_session_keeps_a_sanitised_user_agent(env):
    d, w, api = env
    ua = b"probe/1 \xe9\xff" + b"x" * 600
    r = api.login("acme", "bob@acme.test", headers={"user-agent": ua})
    assert r.status_code == 200
    stored = w.sql(f"SELECT user_agent FROM sessions WHERE id = {q(r.json()['session_id'])}")
    assert stored == "probe/1 ??" + "x" * 502


def test_disabled_user_loses_its_sessions_at_once(env):
    d, w, api = env
    b = api.ok_login("acme", "bob@acme.test")
    w.sql(f"UPDATE users SET status = 'disabled' WHERE id = {q(w.bob)}")
    problem(api.me(b["access_token"]), 401, "invalid_token")
    problem(api.refresh(b["refresh_token"]), 400, "invalid_grant")


def test_logout_ends_the_session_and_its_refresh_tokens(env):
    d, w, api = env
    a = api.ok_login("acme", "alice@acme.test")
    other = api.ok_login("acme", "alice@acme.test")
    rotated = api.refresh(a["refresh_token"]).json()
    r = api.call("POST", "/v1/auth/logout", token=a["access_token"])
    assert r.status_code == 204
    problem(api.refresh(rotated["refresh_token"]), 400, "invalid_grant")
    problem(api.me(rotated["access_token"]), 401, "invalid_token")
    # the session's access token is revoked with it (issue 4)
    problem(api.call("POST", "/v1/auth/logout", token=a["access_token"]), 401, "invalid_token")
    assert api.me(other["access_token"]).status_code == 200  # only that session
    assert w.audit_events("session.logout") == "1"


def test_logout_all(env):
    d, w, api = env
    sessions = [api.ok_login("acme", "alice@acme.test") for _ in range(3)]
    b = api.ok_login("acme", "bob@acme.test")
    r = api.call("POST", "/v1/me/logout-all", token=sessions[0]["access_token"])
    assert r.status_code == 204
    for s in sessions:
        problem(api.me(s["access_token"]), 401, "invalid_token")
        problem(api.refresh(s["refresh_token"]), 400, "invalid_grant")
    problem(api.call("POST", "/v1/me/logout-all", token=sessions[1]["access_token"]), 401, "invalid_token")
    assert api.me(b["access_token"]).status_code == 200
    assert w.sql("SELECT details->>'sessions' FROM audit_log WHERE event = 'session.revoked'") == "3"


def test_session_idle_expiry_and_sliding(latchd_factory, openapi):
    d = latchd_factory(session_idle_ttl=2, **FAST)
    w = World(d)
    t = w.tenant("idle")
    w.user(t, "i@idle.test")
    with Api(d, openapi) as api:
        a = api.ok_login("idle", "i@idle.test")
        rt = a["refresh_token"]
        for _ in range(3):  # each refresh slides the idle expiry: 3.6 s in all, longer than 2
            time.sleep(1.2)
            r = api.refresh(rt)
            assert r.status_code == 200, r.text
            assert r.json()["session_id"] == a["session_id"]
            rt = r.json()["refresh_token"]
        access = r.json()["access_token"]
        assert api.me(access).status_code == 200
        time.sleep(2.5)  # unused past the idle timeout
        problem(api.refresh(rt), 400, "invalid_grant")
        problem(api.me(access), 401, "invalid_token")
        assert api.call("GET", "/v1/me/sessions", token=access).status_code == 401


def test_session_absolute_expiry(latchd_factory, openapi):
    d = latchd_factory(session_idle_ttl=60, session_max_ttl=3, **FAST)
    w = World(d)
    t = w.tenant("abs")
    w.user(t, "a@abs.test")
    with Api(d, openapi) as api:
        a = api.ok_login("abs", "a@abs.test")
        assert w.sql(f"SELECT expires_at = idle_expires_at FROM sessions WHERE id = {q(a['session_id'])}") == "t"
        rt = a["refresh_token"]
        time.sleep(1.5)
        r = api.refresh(rt)
        assert r.status_code == 200
        rt = r.json()["refresh_token"]
        time.sleep(2.0)  # 3.5 s since login: past the absolute lifetime despite the activity
        problem(api.refresh(rt), 400, "invalid_grant")
        problem(api.me(r.json()["access_token"]), 401, "invalid_token")


# --- refresh ---------------------------------------------------------------------------------------


def test_refresh_rotates_and_each_token_works_once(env):
    d, w, api = env
    a = api.ok_login("acme", "alice@acme.test")
    r = api.refresh(a["refresh_token"])
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    n1 = r.json()
    assert n1["session_id"] == a["session_id"] and n1["refresh_token"] != a["refresh_token"]
    check_token_response(api, w, n1, "ES256", w.alice, ["admin"])
    # a repeat within refresh_reuse_grace gets the same successor (issue 4): no fork
    assert api.refresh(a["refresh_token"]).json()["refresh_token"] == n1["refresh_token"]
    n2 = api.refresh(n1["refresh_token"]).json()
    assert n2["session_id"] == a["session_id"]
    # The family in the database: a chain of parents.
    assert w.sql(f"SELECT count(*), count(parent_id), count(used_at) FROM refresh_tokens "
                 f"WHERE session_id = {q(a['session_id'])}") == "3|2|2"
    # Roles are read afresh at refresh.
    w.sql(f"INSERT INTO user_roles (tenant_id, user_id, role) VALUES ({q(w.tenant_id)}, {q(w.alice)}, 'auditor')")
    n3 = api.refresh(n2["refresh_token"]).json()
    assert verify_access_token(api, n3["access_token"], "ES256")[1]["roles"] == ["admin", "auditor"]
    # Malformed, unknown but well-formed, a reset token, a parallel double use.
    for bad in ("", "lt_rt_short", "x" * 49, "lt_rt_" + "A" * 43, "lt_pr_" + n3["refresh_token"][6:],
                n3["refresh_token"] + "A"):
        r = api.call("POST", "/v1/auth/refresh", json={"refresh_token": bad})
        assert r.status_code == 400 and r.json()["code"] in ("invalid_grant", "invalid_request"), r.text
    results = api.burst("POST", "/v1/auth/refresh", [{"refresh_token": n3["refresh_token"]}] * 8)
    assert [r.status_code for r in results] == [200] * 8
    assert len({r.json()["refresh_token"] for r in results}) == 1


# --- password change -------------------------------------------------------------------------------


def test_password_change_ends_the_other_sessions(env):
    d, w, api = env
    mine = api.ok_login("acme", "bob@acme.test")
    other = api.ok_login("acme", "bob@acme.test")
    token = mine["access_token"]

    def change(current, new, tok=token):
        return api.call("POST", "/v1/me/password", json={"current_password": current, "new_password": new}, token=tok)

    problem(change("wrong current password", NEW_PASSWORD), 403, "invalid_credentials")
    weak = problem(change(PASSWORD, "password"), 400, "weak_password")
    assert weak["errors"][0]["field"] == "new_password"
    problem(change(PASSWORD, "x" * 1025), 400, "invalid_request")
    problem(api.call("POST", "/v1/me/password", json={"current_password": PASSWORD}, token=token), 400,
            "invalid_request")
    assert api.me(other["access_token"]).status_code == 200  # nothing changed yet

    r = change(PASSWORD, NEW_PASSWORD)
    assert r.status_code == 204, r.text
    problem(api.me(other["access_token"]), 401, "invalid_token")
    problem(api.refresh(other["refresh_token"]), 400, "invalid_grant")
    assert api.me(token).status_code == 200  # the current one stays
    assert api.refresh(mine["refresh_token"]).status_code == 200
    problem(api.login("acme", "bob@acme.test", PASSWORD), 401, "invalid_credentials")
    api.ok_login("acme", "bob@acme.test", NEW_PASSWORD)
    assert w.sql("SELECT outcome FROM audit_log WHERE event = 'password.changed' ORDER BY id") == "failure\nsuccess"
    assert PASSWORD not in w.sql("SELECT string_agg(details::text, ' ') FROM audit_log")
    # A session that has ended cannot change the password.
    problem(change(NEW_PASSWORD, PASSWORD + "!x", other["access_token"]), 401, "invalid_token")


def test_password_change_clears_reset_required(env):
    d, w, api = env
    a = api.ok_login("acme", "alice@acme.test")
    w.sql(f"UPDATE users SET password_reset_required = true WHERE id = {q(w.alice)}")
    r = api.call("POST", "/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                 token=a["access_token"])
    assert r.status_code == 204
    assert api.me(a["access_token"]).json()["password_reset_required"] is False


# --- password reset --------------------------------------------------------------------------------


def outbox(w):
    rows = w.sql("SELECT payload::text FROM outbox WHERE topic = 'password_reset' ORDER BY id")
    return [json.loads(x) for x in rows.splitlines()]


def reset_request(api, tenant, email):
    r = api.call("POST", "/v1/auth/password-reset", json={"tenant": tenant, "email": email})
    assert r.status_code == 202 and r.json() == {"status": "accepted"}, r.text
    return r


def test_password_reset_end_to_end_through_the_outbox(env):
    d, w, api = env
    sessions = [api.ok_login("acme", "alice@acme.test") for _ in range(2)]
    reset_request(api, "acme", " alice@ACME.test")
    [event] = outbox(w)
    assert event["user_id"] == w.alice and event["tenant_id"] == w.tenant_id and event["tenant"] == "acme"
    assert event["email"] == "Alice@Acme.test" and event["token"].startswith("lt_pr_")
    token = event["token"]
    # Only the hash is stored.
    assert w.sql("SELECT count(*) FROM one_time_tokens WHERE token_hash = sha256(convert_to("
                 f"{q(token)}, 'UTF8')) AND purpose = 'password_reset'") == "1"

    def confirm(tok, pw):
        return api.call("POST", "/v1/auth/password-reset/confirm", json={"token": tok, "new_password": pw})

    problem(confirm(token, "password"), 400, "weak_password")  # refused: the token stays valid
    problem(confirm(token, "p" * 50 * 1024), 400, "invalid_request")
    problem(confirm("lt_pr_" + "A" * 43, NEW_PASSWORD), 400, "invalid_token")
    problem(confirm("garbage", NEW_PASSWORD), 400, "invalid_token")
    assert confirm(token, NEW_PASSWORD).status_code == 204
    problem(confirm(token, NEW_PASSWORD + "2"), 400, "invalid_token")  # single use
    for s in sessions:  # every session ended
        problem(api.me(s["access_token"]), 401, "invalid_token")
        problem(api.refresh(s["refresh_token"]), 400, "invalid_grant")
    problem(api.login("acme", "alice@acme.test", PASSWORD), 401, "invalid_credentials")
    api.ok_login("acme", "alice@acme.test", NEW_PASSWORD)
    assert w.audit_events("password.reset") == "1"


def test_password_reset_does_not_enumerate(env):
    d, w, api = env
    w.user(w.tenant_id, "gone@acme.test", status="disabled")
    bodies = {reset_request(api, t, e).text for t, e in
              [("acme", "nobody@acme.test"), ("nosuch", "alice@acme.test"), ("acme", "gone@acme.test"),
               ("acme", "bob@acme.test")]}
    assert len(bodies) == 1
    assert [e["email"] for e in outbox(w)] == ["bob@acme.test"]  # only the real, active account


def test_password_reset_newest_token_wins_and_expiry(latchd_factory, openapi):
    d = latchd_factory(password_reset_ttl=60, **FAST)
    w = World(d)
    t = w.tenant("rs")
    w.user(t, "x@rs.test")
    with Api(d, openapi) as api:
        reset_request(api, "rs", "x@rs.test")
        reset_request(api, "rs", "x@rs.test")
        first, second = [e["token"] for e in outbox(w)]
        body = {"new_password": NEW_PASSWORD}
        r = api.call("POST", "/v1/auth/password-reset/confirm", json=dict(body, token=first))
        problem(r, 400, "invalid_token")  # superseded
        w.sql("UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")
        r = api.call("POST", "/v1/auth/password-reset/confirm", json=dict(body, token=second))
        problem(r, 400, "invalid_token")  # expired


# --- hostile input ---------------------------------------------------------------------------------

LOGIN = {"tenant": "acme", "email": "alice@acme.test", "password": PASSWORD}

BAD_BODIES = [
    ("missing password", {"tenant": "acme", "email": "alice@acme.test"}),
    ("missing everything", {}),
    ("empty strings", {"tenant": "", "email": "", "password": ""}),
    ("wrong types", {"tenant": 1, "email": ["a"], "password": {"p": 1}}),
    ("null", {"tenant": None, "email": "alice@acme.test", "password": PASSWORD}),
    ("unknown field", dict(LOGIN, remember_me=True)),
    ("oversize tenant", dict(LOGIN, tenant="a" * 64)),
    ("oversize email", dict(LOGIN, email="a" * 321)),
    ("50 KiB password", dict(LOGIN, password="p" * 50 * 1024)),
    ("1025-byte password", dict(LOGIN, password="p" * 1025)),
    ("NUL in password", dict(LOGIN, password="abc\u0000def")),
]


@pytest.mark.parametrize("name,body", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_login_rejects_bad_input_with_400(env, name, body):
    d, w, api = env
    before = api.verifications()
    r = api.call("POST", "/v1/auth/login", json=body)
    assert r.status_code == 400, r.text
    if name != "NUL in password":  # the JSON reader may refuse \u0000 itself (invalid_json)
        assert problem(r, 400, "invalid_request")["errors"], r.text
    assert api.verifications() == before  # refused before any work
    assert w.sql("SELECT count(*) FROM login_attempts") == "0"


RAW = [
    ("invalid UTF-8", b'{"tenant":"acme","email":"al\xffice@acme.test","password":"x"}', "application/json"),
    ("invalid UTF-8 in key", b'{"ten\xc3ant":"acme"}', "application/json"),
    ("not JSON", b"tenant=acme", "application/json"),
    ("truncated", b'{"tenant":"acme",', "application/json"),
    ("array", b'["acme"]', "application/json"),
    ("duplicate keys", b'{"tenant":"acme","tenant":"x","email":"a@b.c","password":"p"}', "application/json"),
    ("form", b"tenant=acme", "application/x-www-form-urlencoded"),
    ("empty", b"", "application/json"),
    ("deep", b'{"tenant":' + b"[" * 200 + b"]" * 200 + b"}", "application/json"),
    ("too large", b'{"password":"' + b"p" * 70000 + b'"}', "application/json"),
]
ENDPOINTS = ["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/password-reset", "/v1/auth/password-reset/confirm"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_bad_bodies_are_4xx_problems_never_5xx(env, path):
    d, w, api = env
    for name, raw, ctype in RAW:
        r = api.call("POST", path, content=raw, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/problem+json"), name
    for name, body in BAD_BODIES:
        if name == "missing password" and path == "/v1/auth/password-reset":
            continue  # {tenant, email} is exactly that endpoint's body
        r = api.call("POST", path, json=body)
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text}"


def test_bearer_endpoints_reject_bad_bodies(env):
    d, w, api = env
    a = api.ok_login("acme", "alice@acme.test")
    for name, raw, ctype in RAW:
        r = api.call("POST", "/v1/me/password", content=raw, headers={"content-type": ctype}, token=a["access_token"])
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text}"
    for body in ({"current_password": 1, "new_password": "x"}, {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                                "extra": 1},
                 {"current_password": "p" * 50 * 1024, "new_password": NEW_PASSWORD}):
        problem(api.call("POST", "/v1/me/password", json=body, token=a["access_token"]), 400, "invalid_request")
    assert api.me(a["access_token"]).status_code == 200
