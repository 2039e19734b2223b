"""Refresh rotation under concurrency (issue 4, RFC 9700 §4.14.2): one family line per
session, a grace window in which a repeat presentation gets the already-issued successor,
and reuse detection that ends the session everywhere.

Real latchd over HTTP/2 (h2c), many streams on one connection at once; the database is read
as the owner role for what the HTTP surface does not show (families, audit events, the
revocation log).
"""

import asyncio
import json
import time

import httpx
import pytest

import latchtest as lt
from test_auth import FAST, Api, World, problem, q, verify_access_token

N = 50


def world(latchd_factory, openapi, **config):
    d = latchd_factory(**{**FAST, **config})
    w = World(d)
    w.tenant_id = w.tenant("acme")
    w.alice = w.user(w.tenant_id, "Alice@Acme.test", roles=("admin",))
    return d, w, Api(d, openapi)


async def _refresh_many(url, rt, n):
    """n presentations of `rt` at once, as streams of one HTTP/2 connection."""
    async with httpx.AsyncClient(base_url=url, http1=False, http2=True, trust_env=False, timeout=30.0) as c:
        await c.get("/healthz")  # one connection, open before the burst
        return await asyncio.gather(*(c.post("/v1/auth/refresh", json={"refresh_token": rt}) for _ in range(n)))


def refresh_many(d, rt, n=N):
    return asyncio.run(_refresh_many(d.h2c_url, rt, n))


def family(w, sid):
    """(tokens, used, distinct parents) of a session's refresh tokens."""
    row = w.sql(f"SELECT count(*), count(used_at), count(DISTINCT parent_id) FROM refresh_tokens "
                f"WHERE session_id = {q(sid)}")
    return tuple(int(x) for x in row.split("|"))


def reuse_events(w, sid):
    return int(w.sql(f"SELECT count(*) FROM audit_log WHERE event = 'refresh_token.reuse_detected' "
                     f"AND target = {q(sid)}"))


def test_concurrent_refreshes_get_the_same_successor(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        rs = refresh_many(d, a["refresh_token"])
        assert [r.status_code for r in rs] == [200] * N, [(r.status_code, r.text) for r in rs if r.status_code != 200]
        for r in rs[:3]:
            openapi.check_response("POST", "/v1/auth/refresh", r)
        bodies = [r.json() for r in rs]
        successors = {b["refresh_token"] for b in bodies}
        assert len(successors) == 1, "the family forked"
        (rt1,) = successors
        assert rt1 != a["refresh_token"]
        assert {b["session_id"] for b in bodies} == {a["session_id"]}
        # Each answer carries its own new access token, and each is valid.
        assert len({b["access_token"] for b in bodies}) == N
        _, claims = verify_access_token(api, bodies[-1]["access_token"], "ES256")
        assert claims["client_id"] == "latch" and claims["username"] == "Alice@Acme.test"
        assert claims["sid"] == a["session_id"] and claims["sub"] == w.alice
        assert api.me(bodies[0]["access_token"]).status_code == 200
        # One line: the login token and its one successor.
        assert family(w, a["session_id"]) == (2, 1, 1)
        assert reuse_events(w, a["session_id"]) == 0
        # The successor then rotates normally (and its own repeat within the window is fine too).
        r = api.refresh(rt1)
        assert r.status_code == 200, r.text
        rt2 = r.json()["refresh_token"]
        assert rt2 not in (rt1, a["refresh_token"])
        assert api.refresh(rt1).json()["refresh_token"] == rt2
        assert family(w, a["session_id"]) == (3, 2, 2)
        # The login token is now an ancestor whose successor was used: reuse.
        problem(api.refresh(a["refresh_token"]), 400, "invalid_grant")
        assert reuse_events(w, a["session_id"]) == 1
        problem(api.refresh(rt2), 400, "invalid_grant")


def test_grace_zero_lets_exactly_one_through(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi, refresh_reuse_grace=0)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        rs = refresh_many(d, a["refresh_token"])
        codes = sorted(r.status_code for r in rs)
        assert codes == [200] + [400] * (N - 1), codes
        for r in rs:
            if r.status_code == 400:
                assert r.json()["code"] == "invalid_grant"
        # Whoever came second was reuse: the session is over, the winner's successor too.
        (winner,) = [r.json() for r in rs if r.status_code == 200]
        assert reuse_events(w, a["session_id"]) == 1
        problem(api.refresh(winner["refresh_token"]), 400, "invalid_grant")
        assert api.me(winner["access_token"]).status_code == 401


def test_presentation_after_the_window_revokes_the_session(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi, refresh_reuse_grace=1)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        other = api.ok_login("acme", "alice@acme.test")  # another session: untouched
        r1 = api.refresh(a["refresh_token"])
        assert r1.status_code == 200
        n1 = r1.json()
        # Within the window: the same successor.
        assert api.refresh(a["refresh_token"]).json()["refresh_token"] == n1["refresh_token"]
        assert api.me(n1["access_token"]).status_code == 200
        time.sleep(1.5)
        problem(api.refresh(a["refresh_token"]), 400, "invalid_grant")
        sid = a["session_id"]
        # The whole session ended: its access tokens and its other refresh tokens.
        for token in (a["access_token"], n1["access_token"]):
            r = api.me(token)
            assert r.status_code == 401, r.text
        problem(api.refresh(n1["refresh_token"]), 400, "invalid_grant")
        assert w.sql(f"SELECT revoked_reason FROM sessions WHERE id = {q(sid)}") == "refresh_token_reuse"
        assert w.sql(f"SELECT count(*) FROM revocations WHERE kind = 'sid' AND value = {q(sid)}") == "1"
        row = w.sql("SELECT target, outcome, details->>'refresh_token_id' FROM audit_log "
                    "WHERE event = 'refresh_token.reuse_detected'")
        target, outcome, rt_id = row.split("|")
        assert target == sid and outcome == "denied"
        assert w.sql(f"SELECT session_id FROM refresh_tokens WHERE id = {q(rt_id)}") == sid
        # Nothing else was touched.
        assert api.me(other["access_token"]).status_code == 200
        assert api.refresh(other["refresh_token"]).status_code == 200
        # Logged with the session id, at warn, never with a token.
        deadline = time.time() + 5
        while "reuse" not in d.stderr_text() and time.time() < deadline:
            time.sleep(0.1)
        err = d.stderr_text()
        lines = [json.loads(x) for x in err.splitlines() if "reuse" in x and x.startswith("{")]
        assert any(x["level"] == "warn" and sid in x["msg"] for x in lines), err[-2000:]
        for secret in (a["refresh_token"], n1["refresh_token"], a["refresh_token"][6:]):
            assert secret not in err


def test_sealed_successors_are_cleared_after_the_window(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi, refresh_reuse_grace=1)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        assert api.refresh(a["refresh_token"]).status_code == 200
        assert w.sql("SELECT count(*) FROM refresh_tokens WHERE successor_sealed IS NOT NULL") == "1"
        # The maintenance thread clears it every 10 s at most once the window has passed.
        deadline = time.time() + 20
        while time.time() < deadline:
            if w.sql("SELECT count(*) FROM refresh_tokens WHERE successor_sealed IS NOT NULL") == "0":
                break
            time.sleep(0.5)
        else:
            pytest.fail("the sealed successor outlived its window by 20 s")
        # The plaintext successor never reaches the table.
        rt = w.sql("SELECT string_agg(encode(coalesce(successor_sealed, ''), 'escape'), '') FROM refresh_tokens")
        assert "lt_rt_" not in rt


def test_bad_presentations_are_invalid_grant(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        for bad in ("", "lt_rt_short", "x" * 49, "lt_rt_" + "A" * 43, "lt_pr_" + a["refresh_token"][6:],
                    a["refresh_token"] + "A", "lt_rt_" + "\u00e9" * 43):
            r = api.call("POST", "/v1/auth/refresh", json={"refresh_token": bad})
            assert r.status_code == 400 and r.json()["code"] in ("invalid_grant", "invalid_request"), r.text
        # None of them consumed or ended anything.
        assert family(w, a["session_id"]) == (1, 0, 0)
        assert api.refresh(a["refresh_token"]).status_code == 200


def _oauth_client(api, admin_token):
    """A confidential client of the admin's tenant (POST /v1/admin/clients), or None when the
    admin endpoint is not there yet."""
    return lt.make_client(api.c, admin_token, missing_ok=True, name="svc",
                          grant_types=["refresh_token", "client_credentials"], permissions=["introspect"])


def test_oauth_refresh_grant_rotation_and_reuse(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi, refresh_reuse_grace=1)
    with api:
        a = api.ok_login("acme", "alice@acme.test")
        client = _oauth_client(api, a["access_token"])
        if client is None:
            pytest.skip("/v1/admin/clients is not available")
        auth = (client["client_id"], client["client_secret"])
        form = {"grant_type": "refresh_token", "refresh_token": a["refresh_token"]}
        r = api.c.post("/oauth2/token", data=form, auth=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
        assert body["token_type"] == "Bearer" and body["scope"] == ""
        header, claims = verify_access_token(api, body["access_token"], "ES256")
        assert claims["client_id"] == client["client_id"] and claims["sid"] == a["session_id"]
        # A repeat within the window: the same successor.
        r2 = api.c.post("/oauth2/token", data=form, auth=auth)
        assert r2.status_code == 200 and r2.json()["refresh_token"] == body["refresh_token"]
        # Introspection of the live successor and the used parent, if the endpoint is there.
        ri = api.c.post("/oauth2/introspect", data={"token": body["refresh_token"]}, auth=auth)
        if ri.status_code != 404:
            assert ri.status_code == 200, ri.text
            doc = ri.json()
            assert doc["active"] is True and doc["sid"] == a["session_id"] and doc["sub"] == w.alice
            assert doc["username"] == "Alice@Acme.test"
            ri = api.c.post("/oauth2/introspect", data={"token": a["refresh_token"]}, auth=auth)
            assert ri.json() == {"active": False}
        time.sleep(1.5)
        r3 = api.c.post("/oauth2/token", data=form, auth=auth)
        assert r3.status_code == 400 and r3.json()["error"] == "invalid_grant", r3.text
        assert r3.headers["content-type"].startswith("application/json")
        assert reuse_events(w, a["session_id"]) == 1
        r4 = api.c.post("/oauth2/token", data={"grant_type": "refresh_token",
                                                "refresh_token": body["refresh_token"]}, auth=auth)
        assert r4.status_code == 400 and r4.json()["error"] == "invalid_grant"
        ri = api.c.post("/oauth2/introspect", data={"token": body["access_token"]}, auth=auth)
        if ri.status_code != 404:
            deadline = time.time() + 2
            while ri.json() != {"active": False} and time.time() < deadline:
                time.sleep(0.1)
                ri = api.c.post("/oauth2/introspect", data={"token": body["access_token"]}, auth=auth)
            assert ri.json() == {"active": False}


def test_oauth_refresh_of_another_tenants_session_is_invalid_and_harmless(latchd_factory, openapi):
    d, w, api = world(latchd_factory, openapi)
    with api:
        other_tid = w.tenant("other")
        w.user(other_tid, "admin@other.test", roles=("admin",))
        a = api.ok_login("acme", "alice@acme.test")
        o = api.ok_login("other", "admin@other.test")
        client = _oauth_client(api, o["access_token"])
        if client is None:
            pytest.skip("/v1/admin/clients is not available")
        r = api.c.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": a["refresh_token"]},
                       auth=(client["client_id"], client["client_secret"]))
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        # Not consumed: its owner still rotates it, and no reuse was recorded.
        assert api.refresh(a["refresh_token"]).status_code == 200
        assert reuse_events(w, a["session_id"]) == 0
