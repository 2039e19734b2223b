"""Browser sign-in frontends (issue 7, item 4): cookie mode of the sign-in surface (the
refresh token in a __Host- cookie, a CSRF double-submit token bound to the session), and
the per-tenant CORS allow-list (preflights, and which answers echo which origin).

latchd on its own database, HTTP/2 over TLS (the cookies are Secure); cookies are read from
Set-Cookie and sent by hand, so what latchd sets is checked exactly rather than through a
cookie jar's interpretation. Every answer of a documented operation goes through the
contract check.
"""

import uuid

import pytest

import latchtest as lt
from test_auth import FAST, PASSWORD, World, problem

APP = "https://app.acme.test"
GLOBEX_APP = "https://app.globex.test:8443"
EVIL = "https://evil.test"
COOKIE = {"x-latch-mode": "cookie"}


class Browser:
    """An HTTP/2 client over TLS that keeps no cookies of its own."""

    def __init__(self, d, openapi, tls=True):
        self.c = d.tls(timeout=20.0) if tls else d.h2c(timeout=20.0)
        self.openapi = openapi

    def close(self):
        self.c.close()

    def call(self, method, template, url=None, token=None, cookies=None, csrf=None, origin=None, check=True, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["authorization"] = f"Bearer {token}"
        if cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if csrf is not None:
            headers["x-csrf-token"] = csrf
        if origin:
            headers["origin"] = origin
        self.c.cookies.clear()
        r = self.c.request(method, url or template, headers=headers, **kw)
        self.c.cookies.clear()
        assert r.status_code < 500 or r.status_code == 503, f"{method} {url or template}: {r.status_code} {r.text}"
        assert r.headers.get("access-control-allow-origin") != "*"
        if check:
            self.openapi.check_response(method, template, r)
        return r

    def login(self, tenant="acme", email="bob@acme.test", cookie=True, password=PASSWORD, **kw):
        headers = dict(COOKIE) if cookie else {}
        headers.update(kw.pop("headers", {}))
        return self.call("POST", "/v1/auth/login", json={"tenant": tenant, "email": email, "password": password},
                         headers=headers, **kw)


def set_cookies(r):
    """{name: (value, {attribute: value-or-True})} of every Set-Cookie of `r`."""
    out = {}
    for line in r.headers.get_list("set-cookie"):
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            attrs[k] = v if eq else True
        assert name not in out, f"{name} set twice"
        out[name] = (value, attrs)
    return out


def jar(r):
    """The cookies a browser would hold after `r` (set ones only)."""
    return {k: v for k, (v, a) in set_cookies(r).items() if a.get("Max-Age") != "0"}


@pytest.fixture
def env(latchd_factory, openapi):
    """(latchd, World, Browser): tenants acme (origin APP) and globex (GLOBEX_APP), users
    alice (acme admin), bob (acme) and carol (globex)."""
    d = latchd_factory(session_idle_ttl=1800, session_max_ttl=7200, **FAST)
    w = World(d)
    w.tenant_id = w.tenant("acme")
    w.globex_id = w.tenant("globex")
    w.alice = w.user(w.tenant_id, "alice@acme.test", roles=("admin",))
    w.bob = w.user(w.tenant_id, "bob@acme.test")
    w.carol = w.user(w.globex_id, "carol@globex.test")
    w.sql(f"UPDATE tenants SET cors_origins = ARRAY['{APP}'] WHERE name = 'acme'")
    w.sql(f"UPDATE tenants SET cors_origins = ARRAY['{GLOBEX_APP}'] WHERE name = 'globex'")
    b = Browser(d, openapi)
    # The snapshot follows the NOTIFY; wait until this instance has it.
    assert lt.wait_for(lambda: preflight(b, "/v1/auth/login", GLOBEX_APP).status_code == 204)
    yield d, w, b
    b.close()


def preflight(b, path, origin, method="POST", headers="content-type, x-latch-mode, x-csrf-token"):
    return b.call("OPTIONS", path, origin=origin, check=False,
                  headers={"access-control-request-method": method, "access-control-request-headers": headers})


# --- cookie mode -------------------------------------------------------------------------------


def test_cookie_login_sets_both_cookies_and_no_refresh_token_in_the_body(env):
    d, w, b = env
    r = b.login()
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body
    assert set(body) == {"access_token", "token_type", "expires_in", "session_id", "csrf_token"}
    sc = set_cookies(r)
    assert set(sc) == {"__Host-latch_rt", "__Host-latch_csrf"}
    rt, rt_attrs = sc["__Host-latch_rt"]
    assert rt_attrs == {"Max-Age": "1800", "Path": "/", "Secure": True, "HttpOnly": True, "SameSite": "Strict"}
    tenant, sid, token = rt.split(".")
    assert tenant == w.tenant_id and sid == body["session_id"]
    assert token.startswith("lt_rt_") and len(token) == 49
    csrf, csrf_attrs = sc["__Host-latch_csrf"]
    assert csrf_attrs == {"Max-Age": "1800", "Path": "/", "Secure": True, "SameSite": "Strict"}  # not HttpOnly
    assert csrf == body["csrf_token"] and len(csrf) == 43
    assert token not in r.text
    # The access token is an ordinary bearer.
    me = b.call("GET", "/v1/me", token=body["access_token"])
    assert me.status_code == 200 and me.json()["session_id"] == sid


def test_refresh_from_the_cookie_with_csrf_rotates_the_cookie(env):
    d, w, b = env
    r = b.login()
    cookies = jar(r)
    csrf = r.json()["csrf_token"]
    r2 = b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=cookies, csrf=csrf, json={})
    assert r2.status_code == 200, r2.text
    body = r2.json()
    assert "refresh_token" not in body and body["csrf_token"] == csrf  # bound to the session, not the token
    new = jar(r2)
    assert set(new) == {"__Host-latch_rt", "__Host-latch_csrf"}
    assert new["__Host-latch_rt"] != cookies["__Host-latch_rt"]
    assert new["__Host-latch_rt"].split(".")[:2] == cookies["__Host-latch_rt"].split(".")[:2]
    assert b.call("GET", "/v1/me", token=body["access_token"]).status_code == 200
    # The successor works in turn, with no body at all.
    r3 = b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=new, csrf=csrf)
    assert r3.status_code == 200, r3.text
    assert jar(r3)["__Host-latch_rt"] not in (new["__Host-latch_rt"], cookies["__Host-latch_rt"])


@pytest.mark.parametrize("case", ["missing", "wrong", "mismatch", "no_cookie", "other_session"])
def test_refresh_from_the_cookie_without_the_right_csrf_token_is_403(env, case):
    d, w, b = env
    r = b.login()
    cookies = jar(r)
    csrf = r.json()["csrf_token"]
    other = b.login().json()["csrf_token"]  # a valid token of another session of the same user
    sent, header = dict(cookies), csrf
    if case == "missing":
        header = None
    elif case == "wrong":
        header = "A" * 43
        sent["__Host-latch_csrf"] = header
    elif case == "mismatch":
        header = csrf[:-1] + ("A" if csrf[-1] != "A" else "B")
    elif case == "no_cookie":
        del sent["__Host-latch_csrf"]
    elif case == "other_session":
        header = other
        sent["__Host-latch_csrf"] = other
    r2 = b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=sent, csrf=header, json={})
    problem(r2, 403, "csrf_failed")
    assert "set-cookie" not in r2.headers
    # Nothing rotated: the cookie still works with its token.
    assert b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=cookies, csrf=csrf).status_code == 200


def test_refresh_with_a_missing_or_bad_cookie_is_invalid_grant_and_clears_it(env):
    d, w, b = env
    r = b.call("POST", "/v1/auth/refresh", headers=COOKIE, json={})
    problem(r, 400, "invalid_grant")
    assert {k: a["Max-Age"] for k, (v, a) in set_cookies(r).items()} == {"__Host-latch_rt": "0",
                                                                          "__Host-latch_csrf": "0"}
    login = b.login()
    cookies, csrf = jar(login), login.json()["csrf_token"]
    tenant, sid, token = cookies["__Host-latch_rt"].split(".")
    # The token of the cookie but another session id: the CSRF token no longer fits.
    forged = dict(cookies, **{"__Host-latch_rt": f"{tenant}.{uuid.uuid4()}.{token}"})
    problem(b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=forged, csrf=csrf), 403, "csrf_failed")
    # An unknown token with the right ids and CSRF token.
    unknown = dict(cookies, **{"__Host-latch_rt": f"{tenant}.{sid}.lt_rt_{'A' * 43}"})
    problem(b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=unknown, csrf=csrf), 400, "invalid_grant")


def test_logout_needs_csrf_and_clears_both_cookies(env):
    d, w, b = env
    r = b.login()
    cookies, body = jar(r), r.json()
    at, csrf = body["access_token"], body["csrf_token"]
    problem(b.call("POST", "/v1/auth/logout", token=at, cookies=cookies), 403, "csrf_failed")
    assert b.call("GET", "/v1/me", token=at).status_code == 200  # still signed in
    out = b.call("POST", "/v1/auth/logout", token=at, cookies=cookies, csrf=csrf)
    assert out.status_code == 204
    sc = set_cookies(out)
    assert sc["__Host-latch_rt"] == ("", {"Max-Age": "0", "Path": "/", "Secure": True, "HttpOnly": True,
                                          "SameSite": "Strict"})
    assert sc["__Host-latch_csrf"] == ("", {"Max-Age": "0", "Path": "/", "Secure": True, "SameSite": "Strict"})
    problem(b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=cookies, csrf=csrf), 400, "invalid_grant")
    assert lt.wait_for(lambda: b.call("GET", "/v1/me", token=at).status_code == 401)


def test_logout_by_the_cookie_alone_ends_the_session(env):
    d, w, b = env
    r = b.login()
    cookies, body = jar(r), r.json()
    problem(b.call("POST", "/v1/auth/logout", cookies=cookies), 403, "csrf_failed")
    out = b.call("POST", "/v1/auth/logout", cookies=cookies, csrf=body["csrf_token"])
    assert out.status_code == 204
    assert {a["Max-Age"] for v, a in set_cookies(out).values()} == {"0"}
    assert lt.wait_for(lambda: b.call("GET", "/v1/me", token=body["access_token"]).status_code == 401)
    assert w.sql(f"SELECT revoked_at IS NOT NULL FROM sessions WHERE id = '{body['session_id']}'") == "t"


def test_me_state_changes_with_the_cookie_need_csrf_reads_do_not(env):
    d, w, b = env
    r = b.login()
    cookies, body = jar(r), r.json()
    at, csrf = body["access_token"], body["csrf_token"]
    assert b.call("GET", "/v1/me", token=at, cookies=cookies).status_code == 200
    assert b.call("GET", "/v1/me/sessions", token=at, cookies=cookies).status_code == 200
    other = b.login(cookie=False).json()
    url = f"/v1/me/sessions/{other['session_id']}"
    problem(b.call("DELETE", "/v1/me/sessions/{id}", url=url, token=at, cookies=cookies), 403, "csrf_failed")
    ok = b.call("DELETE", "/v1/me/sessions/{id}", url=url, token=at, cookies=cookies, csrf=csrf)
    assert ok.status_code == 204 and "set-cookie" not in ok.headers  # not the caller's own session
    problem(b.call("POST", "/v1/me/password", token=at, cookies=cookies,
                   json={"current_password": PASSWORD, "new_password": lt.strong_password()}), 403, "csrf_failed")
    problem(b.call("POST", "/v1/me/mfa/totp", token=at, cookies=cookies, json={}), 403, "csrf_failed")
    problem(b.call("POST", "/v1/me/logout-all", token=at, cookies=cookies, csrf="x" * 43), 403, "csrf_failed")
    out = b.call("POST", "/v1/me/logout-all", token=at, cookies=cookies, csrf=csrf)
    assert out.status_code == 204
    assert {a["Max-Age"] for v, a in set_cookies(out).values()} == {"0"}


def test_bearer_mode_is_unchanged(env):
    d, w, b = env
    r = b.login(cookie=False, origin=APP)
    assert r.status_code == 200
    body = r.json()
    assert body["refresh_token"].startswith("lt_rt_") and "csrf_token" not in body
    assert "set-cookie" not in r.headers
    r2 = b.call("POST", "/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r2.status_code == 200 and "set-cookie" not in r2.headers and "refresh_token" in r2.json()
    # No cookie, no CSRF needed.
    assert b.call("POST", "/v1/auth/logout", token=r2.json()["access_token"]).status_code == 204
    # X-Latch-Mode: bearer is the default said out loud.
    r3 = b.login(headers={"x-latch-mode": "bearer"})
    assert r3.status_code == 200 and "refresh_token" in r3.json()


def test_mfa_verify_completes_a_cookie_mode_sign_in(env):
    import hashlib
    import hmac
    import struct
    import time

    d, w, b = env
    r = b.login(cookie=False)
    at = r.json()["access_token"]
    enrol = b.call("POST", "/v1/me/mfa/totp", token=at, json={})
    assert enrol.status_code == 201, enrol.text
    secret = enrol.json()["secret"]
    key = __import__("base64").b32decode(secret + "=" * (-len(secret) % 8))

    def code(step):
        mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
        o = mac[-1] & 15
        return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)

    step = int(time.time()) // 30
    fid = enrol.json()["factor_id"]
    conf = b.call("POST", "/v1/me/mfa/totp/{id}/confirm", url=f"/v1/me/mfa/totp/{fid}/confirm", token=at,
                  json={"code": code(step)})
    assert conf.status_code == 200, conf.text
    chal = b.login()
    assert chal.status_code == 200 and chal.json()["mfa_required"] and "set-cookie" not in chal.headers
    v = b.call("POST", "/v1/auth/mfa/verify", headers=COOKIE, origin=APP,
               json={"mfa_token": chal.json()["mfa_token"], "code": code(step + 1)})
    assert v.status_code == 200, v.text
    assert "refresh_token" not in v.json() and set(jar(v)) == {"__Host-latch_rt", "__Host-latch_csrf"}
    assert v.headers["access-control-allow-origin"] == APP


def test_cookie_mode_is_refused_over_cleartext(env, openapi):
    d, w, b = env
    h2c = Browser(d, openapi, tls=False)
    try:
        r = h2c.login()
        problem(r, 400, "cookie_mode_requires_tls")
        assert "set-cookie" not in r.headers
        problem(h2c.call("POST", "/v1/auth/refresh", headers=COOKIE, json={}), 400, "cookie_mode_requires_tls")
        assert h2c.login(cookie=False).status_code == 200  # bearer mode works there
    finally:
        h2c.close()
    problem(b.login(headers={"x-latch-mode": "jar"}), 400, "invalid_request")


# --- CORS --------------------------------------------------------------------------------------


ALLOW_HEADERS = "Content-Type, Authorization, X-CSRF-Token, X-Latch-Mode, X-Request-ID"


@pytest.mark.parametrize("path", ["/v1/auth/login", "/v1/auth/refresh", "/v1/me", "/v1/me/sessions/x",
                                  "/oauth2/token", "/oauth2/revoke"])
def test_preflight_of_an_allowed_origin(env, path):
    d, w, b = env
    r = preflight(b, path, APP)
    assert r.status_code == 204, r.text
    h = r.headers
    assert h["access-control-allow-origin"] == APP
    assert h["access-control-allow-credentials"] == "true"
    assert h["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE"
    assert h["access-control-allow-headers"] == ALLOW_HEADERS
    assert h["access-control-max-age"] == "600"
    assert h["vary"] == "Origin"
    assert not r.content


@pytest.mark.parametrize("origin", [EVIL, "null", APP + "/", "http://app.acme.test", "https://APP.acme.test",
                                    "https://app.acme.test:443", "*"])
def test_preflight_of_another_origin_is_403_without_cors_headers(env, origin):
    d, w, b = env
    r = preflight(b, "/v1/auth/login", origin)
    problem(r, 403, "cors_origin_denied")
    assert not [k for k in r.headers if k.startswith("access-control-")]


def test_preflight_outside_the_scope_is_not_answered(env):
    d, w, b = env
    r = preflight(b, "/v1/admin/users", APP)
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
    r = preflight(b, "/oauth2/introspect", APP)
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers


def acao(r):
    return r.headers.get("access-control-allow-origin")


def test_actual_answers_echo_only_the_tenants_own_origins(env):
    d, w, b = env
    r = b.login(origin=APP)
    assert r.status_code == 200 and acao(r) == APP
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in r.headers["access-control-expose-headers"]
    assert r.headers["vary"] == "Origin"
    cookies, body = jar(r), r.json()
    # Another tenant's origin: not echoed, whatever the outcome.
    assert acao(b.login(origin=GLOBEX_APP)) is None
    assert acao(b.login(origin=EVIL)) is None
    bad = b.login(origin=APP, password="wrong")
    assert bad.status_code == 401 and acao(bad) == APP  # the frontend may read its errors
    globex = b.login(tenant="globex", email="carol@globex.test", origin=APP)
    assert globex.status_code == 200 and acao(globex) is None
    assert acao(b.login(tenant="globex", email="carol@globex.test", origin=GLOBEX_APP)) == GLOBEX_APP
    # Bearer: the session's tenant decides.
    at = body["access_token"]
    assert acao(b.call("GET", "/v1/me", token=at, origin=APP)) == APP
    assert acao(b.call("GET", "/v1/me", token=at, origin=GLOBEX_APP)) is None
    # Refresh cookie: likewise.
    csrf = body["csrf_token"]
    r2 = b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=cookies, csrf=csrf, origin=GLOBEX_APP)
    assert r2.status_code == 200 and acao(r2) is None
    r3 = b.call("POST", "/v1/auth/refresh", headers=COOKIE, cookies=jar(r2), csrf=csrf, origin=APP)
    assert r3.status_code == 200 and acao(r3) == APP
    # No Origin, no CORS headers; outside the scope never.
    assert acao(b.login()) is None and "vary" not in b.login().headers
    assert acao(b.call("GET", "/.well-known/jwks.json", origin=APP)) is None


def test_allow_list_through_the_admin_api(env):
    d, w, b = env
    admin = b.login(email="alice@acme.test", cookie=False).json()["access_token"]
    url = f"/v1/admin/tenants/{w.tenant_id}"
    t = "/v1/admin/tenants/{id}"
    assert b.call("GET", t, url=url, token=admin).json()["cors_origins"] == [APP]
    new = ["https://login.acme.test", "https://10.0.0.7:9443"]
    r = b.call("PATCH", t, url=url, token=admin, json={"cors_origins": new})
    assert r.status_code == 200, r.text
    assert r.json()["cors_origins"] == new
    assert b.call("GET", t, url=url, token=admin).json()["cors_origins"] == new
    assert lt.wait_for(lambda: preflight(b, "/v1/auth/login", APP).status_code == 403)
    assert preflight(b, "/v1/auth/login", new[1]).status_code == 204
    assert acao(b.login(origin=new[0])) == new[0]
    # Other settings leave the list alone; [] empties it.
    assert b.call("PATCH", t, url=url, token=admin, json={"display_name": "Acme"}).json()["cors_origins"] == new
    assert b.call("PATCH", t, url=url, token=admin, json={"cors_origins": []}).json()["cors_origins"] == []
    assert lt.wait_for(lambda: preflight(b, "/v1/auth/login", new[0]).status_code == 403)
    assert w.audit_events("tenant.updated") == "3"


@pytest.mark.parametrize("bad", ["*", "https://*.acme.test", "http://app.acme.test", "https://app.acme.test/",
                                 "https://app.acme.test/login", "https://APP.acme.test", "https://app.acme.test:443",
                                 "https://app.acme.test:0", "https://app.acme.test:65536", "https://user@acme.test",
                                 "https://-a.test", "https://a..test", "https://a.test.", "https://[::1]:8443",
                                 "app.acme.test", "", 7])
def test_bad_origins_are_400_naming_the_item(env, bad):
    d, w, b = env
    admin = b.login(email="alice@acme.test", cookie=False).json()["access_token"]
    r = b.call("PATCH", "/v1/admin/tenants/{id}", url=f"/v1/admin/tenants/{w.tenant_id}", token=admin,
               json={"cors_origins": [APP, bad]})
    p = problem(r, 400, "invalid_request")
    assert [e["field"] for e in p["errors"]] == ["cors_origins[1]"], p


def test_duplicates_and_too_many_origins_are_400(env):
    d, w, b = env
    admin = b.login(email="alice@acme.test", cookie=False).json()["access_token"]
    url = f"/v1/admin/tenants/{w.tenant_id}"
    p = problem(b.call("PATCH", "/v1/admin/tenants/{id}", url=url, token=admin, json={"cors_origins": [APP, APP]}),
                400, "invalid_request")
    assert p["errors"][0]["field"] == "cors_origins[1]"
    many = [f"https://a{i}.acme.test" for i in range(21)]
    problem(b.call("PATCH", "/v1/admin/tenants/{id}", url=url, token=admin, json={"cors_origins": many}),
            400, "invalid_request")
    problem(b.call("PATCH", "/v1/admin/tenants/{id}", url=url, token=admin, json={"cors_origins": APP}),
            400, "invalid_request")
    # The database refuses what the API would, from any writer.
    with pytest.raises(RuntimeError, match="tenants_cors_origins_check"):
        w.sql(f"UPDATE tenants SET cors_origins = ARRAY['https://x.test/'] WHERE id = '{w.tenant_id}'")
