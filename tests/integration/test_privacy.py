"""Privacy and incident response (issue 7, item 5): the data export of a user (admin and
self-service) holds every section and no secret; erasure removes the user's personal data
from every table while the audit chain stays intact with only ids left; the lock ends every
session on every instance within a second, revokes API keys and forces a reset; the audit
query filters, pages without duplicates or gaps, and keeps tenant admins in their tenant;
access-log lines carry a masked client network only."""

import hashlib
import json
import secrets
import subprocess
import time
import uuid

import pytest

import latchtest as lt
from latchtest import problem

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)


class World(lt.AdminWorld):
    def create_user(self, email=None, token=None, tenant_id=None):
        email = email or f"u-{uuid.uuid4().hex[:10]}@alpha.test"
        pw = lt.strong_password()
        body = {"email": email, "password": pw}
        if tenant_id:
            body["tenant_id"] = tenant_id
        r = self.api.call("POST", "/v1/admin/users", token=token or self.alice, json=body)
        assert r.status_code == 201, r.text
        return r.json(), email, pw

    def verify(self):
        cfg = self.d.workdir / "verify.json"
        cfg.write_text(json.dumps({"database_url": self.d.config["database_url"],
                                   "master_key": lt.random_master_key(), "listen": ""}))
        return subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), "audit", "verify"],
                              capture_output=True, text=True, env=lt.child_env(), timeout=60)

    def api_key_row(self, user):
        """An API key of `user` written straight into the table (the API-key endpoints are
        another part of the issue); returns (key_id, secret_hash hex)."""
        key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(16))
        digest = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        self.sql(f"INSERT INTO api_keys (tenant_id, key_id, secret_hash, owner_user_id, name) VALUES "
                 f"('{user['tenant_id']}', '{key_id}', decode('{digest}', 'hex'), '{user['id']}', 'ci')")
        return key_id, digest

    def introspect(self, client, token):
        r = client.post("/oauth2/introspect", data={"token": token}, headers=lt.client_auth(self.intro))
        assert r.status_code == 200, r.text
        return r.json()["active"]


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    A = factory(**SETTINGS)
    # B shares A's database and master key: a second instance of one deployment.
    B = factory(database_url=A.config["database_url"], master_key=A.config["master_key"], **SETTINGS)
    api = lt.ContractApi(A, openapi)
    world = World(A, api)
    world.B = B
    world.b = B.h2c(timeout=30.0)
    world.pw = {k: lt.strong_password() for k in ("root", "alice", "bob")}
    ops = A.bootstrap("ops", "root@ops.test", world.pw["root"], global_admin=True)
    alpha = A.bootstrap("alpha", "alice@alpha.test", world.pw["alice"])
    beta = A.bootstrap("beta", "bob@beta.test", world.pw["bob"])
    world.ops, world.alpha, world.beta = ops["tenant_id"], alpha["tenant_id"], beta["tenant_id"]
    world.alice_id, world.bob_id = alpha["user_id"], beta["user_id"]
    world.root = world.login("ops", "root@ops.test", world.pw["root"])["access_token"]
    world.alice = world.login("alpha", "alice@alpha.test", world.pw["alice"])["access_token"]
    world.bob = world.login("beta", "bob@beta.test", world.pw["bob"])["access_token"]
    world.intro = lt.make_client(api.c, world.alice, "intro", permissions=["introspect"])
    assert lt.wait_for(lambda: world.b.post("/oauth2/introspect", data={"token": "x"},
                                            headers=lt.client_auth(world.intro)).status_code == 200, 5.0)
    yield world
    lt.shut_down(factory, api.c, world.b)


def secrets_of(w, user_id):
    """Every secret the database holds about the user, as the text an export could leak."""
    rows = w.sql(f"""
        SELECT phc FROM credentials WHERE user_id = '{user_id}'
        UNION ALL SELECT encode(t.token_hash, 'hex') FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                  WHERE s.user_id = '{user_id}'
        UNION ALL SELECT encode(t.token_hash, 'base64') FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                  WHERE s.user_id = '{user_id}'
        UNION ALL SELECT encode(secret_sealed, 'hex') FROM mfa_factors WHERE user_id = '{user_id}'
        UNION ALL SELECT encode(code_hash, 'hex') FROM recovery_codes WHERE user_id = '{user_id}'
        UNION ALL SELECT encode(token_hash, 'hex') FROM one_time_tokens WHERE user_id = '{user_id}'
        UNION ALL SELECT encode(secret_hash, 'hex') FROM api_keys WHERE owner_user_id = '{user_id}'
        UNION ALL SELECT payload->>'token' FROM outbox WHERE payload->>'user_id' = '{user_id}'""")
    return [s for s in rows.splitlines() if s]


def test_export_has_every_section_and_no_secret(w):
    u, email, pw = w.create_user()
    s1 = w.login("alpha", email, pw)
    w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": "wrong-" + pw})
    s2 = w.login("alpha", email, pw)
    r = w.api.call("POST", "/v1/auth/refresh", json={"refresh_token": s2["refresh_token"]})
    assert r.status_code == 200, r.text
    rotated = r.json()
    r = w.api.call("POST", "/v1/me/mfa/totp", token=s1["access_token"], json={})
    assert r.status_code == 201, r.text
    totp_secret = r.json()["secret"]
    w.api.call("POST", "/v1/auth/password-reset", json={"tenant": "alpha", "email": email})
    key_id, key_hash = w.api_key_row(u)
    held = secrets_of(w, u["id"])
    assert len(held) >= 6  # phc, 3 refresh hashes (x2 encodings), factor, reset token hash, key, outbox token

    r = w.api.call("GET", "/v1/admin/users/{id}/export", f"/v1/admin/users/{u['id']}/export", token=w.alice)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert doc["user"]["id"] == u["id"] and doc["user"]["email"] == email
    assert doc["credential"]["type"] == "password"
    assert len(doc["sessions"]) == 2 and all(s["ip"] == "127.0.0.1" for s in doc["sessions"])
    assert {s["id"] for s in doc["sessions"]} == {s1["session_id"], s2["session_id"]}
    fams = {f["session_id"]: f["tokens"] for f in doc["refresh_token_families"]}
    assert sorted(t["status"] for t in fams[s2["session_id"]]) == ["active", "rotated"]
    assert [f["type"] for f in doc["mfa_factors"]] == ["totp"] and doc["mfa_factors"][0]["confirmed_at"] is None
    assert [k["key_id"] for k in doc["api_keys"]] == [key_id]
    assert [o["purpose"] for o in doc["one_time_tokens"]] == ["password_reset"]
    assert [m["topic"] for m in doc["messages"]] == ["password_reset"]
    assert any(a["scope"] == "account" and a["failures"] >= 1 for a in doc["login_attempts"])
    events = {e["event"] for e in doc["audit_events"]}
    assert {"user.created", "login.succeeded", "login.failed", "mfa.enrollment_started",
            "password.reset_requested"} <= events
    failed = [e for e in doc["audit_events"] if e["event"] == "login.failed"][0]
    assert failed["ip"] == "127.0.0.1" and failed["details"]["email"] == email.lower()

    text = r.text
    for s in held + [totp_secret, s1["refresh_token"], rotated["refresh_token"], s2["refresh_token"], key_hash,
                     s1["access_token"]]:
        assert s not in text, f"a secret leaked into the export: {s[:12]}..."
    for word in ("phc", "argon2", "token_hash", "secret_hash", "secret_sealed", "code_hash", "pii_digest"):
        assert word not in text


def test_export_scope_and_errors(w):
    u, _, _ = w.create_user()
    url = f"/v1/admin/users/{u['id']}/export"
    problem(w.api.call("GET", "/v1/admin/users/{id}/export", url, token=w.bob), 404, "not_found")
    assert w.api.call("GET", "/v1/admin/users/{id}/export", url, token=w.root).status_code == 200
    problem(w.api.call("GET", "/v1/admin/users/{id}/export", url), 401, "invalid_token")
    problem(w.api.call("GET", "/v1/admin/users/{id}/export", "/v1/admin/users/nope/export", token=w.alice), 404,
            "not_found")
    # a plain user may not export others
    _, email, pw = w.create_user()
    plain = w.login("alpha", email, pw)["access_token"]
    problem(w.api.call("GET", "/v1/admin/users/{id}/export", url, token=plain), 403, "forbidden")


def test_me_export_is_the_bearers_own(w):
    u, email, pw = w.create_user()
    s = w.login("alpha", email, pw)
    r = w.api.call("GET", "/v1/me/export", token=s["access_token"])
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert doc["user"]["id"] == u["id"] and [x["id"] for x in doc["sessions"]] == [s["session_id"]]
    assert "alice@alpha.test" not in r.text
    r = w.api.call("GET", "/v1/me/export", token=w.alice)
    assert r.json()["user"]["id"] == w.alice_id
    assert w.api.call("POST", "/v1/auth/logout", token=s["access_token"],
                      json={"refresh_token": s["refresh_token"]}).status_code in (200, 204)
    problem(w.api.call("GET", "/v1/me/export", token=s["access_token"]), 401, "invalid_token")
    problem(w.api.call("GET", "/v1/me/export"), 401, "invalid_token")


def tables_holding(w, needle):
    """The public tables (and audit side table) whose row text contains `needle`."""
    names = w.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    return [t for t in names
            if w.sql(f"SELECT count(*) FROM {t} x WHERE x::text ILIKE '%{needle}%'") != "0"]


def test_erase_removes_personal_data_and_keeps_the_chain(w):
    u, email, pw = w.create_user(email=f"Erin-{uuid.uuid4().hex[:8]}@Alpha.test")
    uid = u["id"]
    s = w.login("alpha", email, pw)
    w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": "bad-" + pw})
    w.api.call("PATCH", "/v1/admin/users/{id}", f"/v1/admin/users/{uid}", token=w.alice,
               json={"attributes": {"phone": "+1 555 0100", "nick": "erin"}})
    w.api.call("POST", "/v1/auth/password-reset", json={"tenant": "alpha", "email": email})
    key_id, _ = w.api_key_row(u)
    assert w.introspect(w.b, s["access_token"]) is True
    assert tables_holding(w, email.lower()), "the setup should have stored the email"
    url = f"/v1/admin/users/{uid}"

    # Without erase=true nothing happens.
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", url, token=w.alice), 400, "invalid_request", "erase")
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", url + "?erase=yes", token=w.alice), 400, "invalid_request")
    assert w.sql(f"SELECT count(*) FROM users WHERE id = '{uid}'") == "1"
    # Another tenant's admin sees no such user; an admin cannot erase itself.
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", url + "?erase=true", token=w.bob), 404, "not_found")
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", f"/v1/admin/users/{w.alice_id}?erase=true", token=w.alice),
            409, "conflict")

    r = w.api.call("DELETE", "/v1/admin/users/{id}", url + "?erase=true", token=w.alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["erased"] is True and body["sessions_revoked"] == 1 and body["api_keys_revoked"] == 1
    assert body["audit_records_erased"] >= 3 and body["legacy_audit_rows"] == 0

    problem(w.api.call("GET", "/v1/admin/users/{id}", url, token=w.alice), 404, "not_found")
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", url + "?erase=true", token=w.alice), 404, "not_found")
    assert lt.wait_for(lambda: w.introspect(w.b, s["access_token"]) is False, 1.0)

    # The email, the attribute values and the user's API key are nowhere in the database.
    for needle in (email.lower(), "555 0100", key_id):
        assert tables_holding(w, needle) == [], needle
    # (A later attempt at the address is new data about whoever makes it.)
    problem(w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw}), 401,
            "invalid_credentials")
    # The chain still verifies, with the erasures counted; its rows keep the bare id.
    p = w.verify()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("audit chain intact: ") and "personal data erased from" in p.stdout
    events = w.sql(f"SELECT string_agg(DISTINCT event, ',' ORDER BY event) FROM audit_log WHERE target = '{uid}'")
    assert {"user.created", "user.updated", "login.succeeded", "user.erased"} <= set(events.split(","))
    assert w.sql(f"SELECT count(*) FROM audit_events WHERE target = '{uid}' AND erased") != "0"
    assert w.sql(f"SELECT count(*) FROM audit_log WHERE ip IS NOT NULL AND id > "
                 f"(SELECT min(id) FROM audit_log WHERE target = '{uid}')") == "0"
    # The admin's own IP on the erasure event is the admin's, and stays.
    r = w.api.call("GET", "/v1/admin/audit", url=f"/v1/admin/audit?target={uid}&event=user.erased", token=w.alice)
    [ev] = r.json()["items"]
    assert ev["actor"] == w.alice_id and ev["ip"] == "127.0.0.1" and ev["erased"] is False


def test_runtime_role_cannot_change_the_audit_log(w):
    for priv in ("UPDATE", "DELETE", "TRUNCATE"):
        assert w.sql(f"SELECT has_table_privilege('latch_runtime', 'audit_log', '{priv}')") == "f"
    assert w.sql("SELECT has_table_privilege('latch_runtime', 'audit_pii', 'UPDATE')") == "f"
    assert w.sql("SELECT has_table_privilege('latch_runtime', 'audit_pii', 'DELETE')") == "t"


def test_verify_checks_the_personal_data_it_still_has(tmp_path, make_db):
    db = make_db()
    for i in range(4):
        db.sql(f"SELECT latch_audit_append(NULL, 'u{i}', 'login.failed', NULL, '203.0.113.{i}', 'r{i}', 'failure',"
               f" '{{\"email\": \"p{i}@example.com\", \"n\": {i}}}')", user="latch_app")
    cfg = tmp_path / "v.json"
    cfg.write_text(json.dumps({"database_url": db.url, "master_key": lt.random_master_key(), "listen": ""}))

    def verify():
        return subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), "audit", "verify"],
                              capture_output=True, text=True, env=lt.child_env(), timeout=60)

    assert db.sql("SELECT count(*) FROM audit_log WHERE ip IS NULL AND NOT details ? 'email'") == "4"
    assert verify().stdout.strip() == "audit chain intact: 4 rows"
    db.sql("DELETE FROM audit_pii WHERE event_id = 2", user="latch_app")
    p = verify()
    assert p.returncode == 0 and p.stdout.strip() == "audit chain intact: 4 rows (personal data erased from 1)"
    db.sql("UPDATE audit_pii SET ip = '198.51.100.1' WHERE event_id = 3", user="latch_owner")
    p = verify()
    assert p.returncode == 1 and p.stdout.startswith("audit chain broken at row 3: personal data")


def test_lock_ends_everything_in_one_step(w):
    u, email, pw = w.create_user()
    s1, s2 = w.login("alpha", email, pw), w.login("alpha", email, pw)
    key_id, _ = w.api_key_row(u)
    # A real key too, when the API-key endpoints are there (item 1 of the issue).
    r = w.api.c.post("/v1/me/api-keys", json={"name": "lock-test"}, headers=lt.bearer(s1))
    real_key = r.json().get("api_key") if r.status_code == 201 else None
    if real_key:
        assert lt.wait_for(lambda: w.introspect(w.b, real_key) is True, 2.0)
    for s in (s1, s2):
        assert w.introspect(w.b, s["access_token"]) is True
    url = f"/v1/admin/users/{u['id']}/lock"
    problem(w.api.call("POST", "/v1/admin/users/{id}/lock", url, token=w.bob), 404, "not_found")

    t0 = time.monotonic()
    r = w.api.call("POST", "/v1/admin/users/{id}/lock", url, token=w.alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sessions_revoked"] == 2 and body["api_keys_revoked"] == (2 if real_key else 1)
    assert body["user"]["status"] == "locked" and body["user"]["password_reset_required"] is True
    assert lt.wait_for(lambda: not w.introspect(w.b, s1["access_token"]) and
                       not w.introspect(w.b, s2["access_token"]), 1.0, step=0.02)
    if real_key:
        assert lt.wait_for(lambda: not w.introspect(w.b, real_key), 1.0, step=0.02)
    assert time.monotonic() - t0 < 1.2
    for s in (s1, s2):
        r = w.b.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
        assert r.status_code in (400, 401), r.text
    assert w.sql(f"SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_id = '{key_id}'") == "t"
    r = w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw})
    assert r.status_code in (401, 403), r.text
    # Idempotent; each request is on the record.
    r = w.api.call("POST", "/v1/admin/users/{id}/lock", url, token=w.alice)
    assert r.status_code == 200 and r.json()["sessions_revoked"] == 0 and r.json()["api_keys_revoked"] == 0
    assert w.sql(f"SELECT count(*) FROM audit_log WHERE event = 'user.locked' AND target = '{u['id']}'") == "2"
    # Unlocking is not enough: the password must be reset first.
    r = w.api.call("POST", "/v1/admin/users/{id}/unlock", f"/v1/admin/users/{u['id']}/unlock", token=w.alice)
    assert r.status_code == 200 and r.json()["status"] == "active"
    problem(w.api.call("POST", "/v1/auth/login", json={"tenant": "alpha", "email": email, "password": pw}), 403,
            "password_reset_required")


def test_lock_needs_the_right_and_spares_global_admins_from_tenant_admins(w):
    _, email, pw = w.create_user()
    plain = w.login("alpha", email, pw)["access_token"]
    problem(w.api.call("POST", "/v1/admin/users/{id}/lock", f"/v1/admin/users/{w.alice_id}/lock", token=plain), 403,
            "forbidden")
    g, _, _ = w.create_user(email=f"g-{uuid.uuid4().hex[:8]}@alpha.test", token=w.root, tenant_id=w.alpha)
    w.sql(f"INSERT INTO user_roles (tenant_id, user_id, role) VALUES ('{w.alpha}', '{g['id']}', 'global_admin')")
    problem(w.api.call("POST", "/v1/admin/users/{id}/lock", f"/v1/admin/users/{g['id']}/lock", token=w.alice), 403,
            "forbidden")
    problem(w.api.call("DELETE", "/v1/admin/users/{id}", f"/v1/admin/users/{g['id']}?erase=true", token=w.alice),
            403, "forbidden")


def audit(w, token, **q):
    r = w.api.call("GET", "/v1/admin/audit", url="/v1/admin/audit", token=token, params=q)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def test_audit_query_pages_without_duplicates_or_gaps(w):
    u, _, _ = w.create_user()
    for i in range(11):
        r = w.api.call("PATCH", "/v1/admin/users/{id}", f"/v1/admin/users/{u['id']}", token=w.alice,
                       json={"attributes": {"i": i}})
        assert r.status_code == 200
    want = w.sql(f"SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM audit_log WHERE target = '{u['id']}'")
    want = want.split(",")
    assert len(want) == 12  # user.created + 11 updates
    got, cursor, pages = [], None, 0
    while True:
        q = {"target": u["id"], "limit": 5}
        if cursor:
            q["cursor"] = cursor
        page = audit(w, w.alice, **q)
        got += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == want and pages == 3
    # subject is target's other name; user is actor-or-target
    assert [e["id"] for e in audit(w, w.alice, subject=u["id"], limit=500)["items"]] == want
    assert [e["id"] for e in audit(w, w.alice, user=u["id"], limit=500)["items"]] == want
    # event filters: exact and prefix
    ups = audit(w, w.alice, target=u["id"], event="user.updated", limit=500)["items"]
    assert len(ups) == 11 and all(e["event"] == "user.updated" and e["actor"] == w.alice_id for e in ups)
    assert len(audit(w, w.alice, target=u["id"], event="user.*", limit=500)["items"]) == 12
    assert audit(w, w.alice, target=u["id"], event="user.", limit=500)["items"] == []
    assert len(audit(w, w.alice, target=u["id"], actor=w.alice_id, limit=500)["items"]) == 12
    # time window: [from, to)
    at = [e["at"] for e in audit(w, w.alice, target=u["id"], limit=500)["items"]]
    assert len(audit(w, w.alice, target=u["id"], **{"from": at[5]})["items"]) >= 6
    assert audit(w, w.alice, target=u["id"], **{"from": "2999-01-01T00:00:00Z"})["items"] == []
    assert audit(w, w.alice, target=u["id"], to="2000-01-01T00:00:00Z")["items"] == []
    assert len(audit(w, w.alice, target=u["id"], to="2999-01-01T00:00:00+02:00", limit=500)["items"]) == 12


def test_audit_query_tenant_scope(w):
    u, _, _ = w.create_user()
    # a beta admin sees beta only: not alpha's events, not by id, not by asking for alpha
    assert audit(w, w.bob, target=u["id"])["items"] == []
    assert audit(w, w.bob, tenant_id=w.alpha)["items"] == []
    items = audit(w, w.bob, limit=500)["items"]
    assert items and all(e["tenant_id"] == w.beta for e in items)
    # alpha's admin sees its own; the global admin sees it and may narrow to a tenant
    assert len(audit(w, w.alice, target=u["id"])["items"]) == 1
    assert len(audit(w, w.root, target=u["id"])["items"]) == 1
    items = audit(w, w.root, tenant_id=w.beta, limit=500)["items"]
    assert items and all(e["tenant_id"] == w.beta for e in items)
    assert any(e["tenant_id"] is None for e in audit(w, w.root, limit=500)["items"]) or True
    # a plain user may not read the trail
    _, email, pw = w.create_user()
    plain = w.login("alpha", email, pw)["access_token"]
    problem(w.api.call("GET", "/v1/admin/audit", token=plain), 403, "forbidden")
    problem(w.api.call("GET", "/v1/admin/audit"), 401, "invalid_token")


@pytest.mark.parametrize("q,field", [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "x"}, "limit"),
    ({"cursor": "nope!"}, "cursor"), ({"cursor": "YTQ="}, "cursor"), ({"tenant_id": "alpha"}, "tenant_id"),
    ({"from": "yesterday"}, "from"), ({"to": "2026-02-30T00:00:00Z"}, "to"), ({"actor": "a" * 201}, "actor"),
    ({"event": "e" * 101}, "event"), ({"target": "a", "subject": "b"}, "subject"),
])
def test_audit_query_refuses_bad_input(w, q, field):
    r = w.api.call("GET", "/v1/admin/audit", url="/v1/admin/audit", token=w.alice, params=q)
    problem(r, 400, "invalid_request", field)


def test_access_log_masks_the_client(w):
    rid = f"priv-{uuid.uuid4().hex[:8]}"
    w.api.call("POST", "/v1/auth/login", headers={"x-request-id": rid},
               json={"tenant": "alpha", "email": "nobody-here@alpha.test", "password": "x" * 12})

    def logged():
        return [r for r in w.d.access_log_records() if r.get("request_id") == rid]

    assert lt.wait_for(lambda: logged(), 5.0)
    [rec] = logged()
    assert rec["client"] == "127.0.0.0/24"
    text = "\n".join(w.d.access_log_lines()) + w.d.stderr_text() + w.d.stdout_text()
    assert "127.0.0.1" not in "\n".join(w.d.access_log_lines())
    assert "nobody-here@alpha.test" not in text
    # the audit trail keeps the whole IP and the email (erasable, not masked)
    [ev] = audit(w, w.alice, event="login.failed", limit=1)["items"]
    assert ev["request_id"] == rid and ev["ip"] == "127.0.0.1" and ev["details"]["email"] == "nobody-here@alpha.test"
