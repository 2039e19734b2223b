"""Forward-auth (issue 6, item 6): /v1/forward-auth for nginx auth_request, Traefik ForwardAuth
and Envoy ext_authz, against a real latchd and PostgreSQL, then Debian's nginx end to end.

The world (tenant acme, admin alice):
  roles   reader (document:read), writer (document:create, inherits reader)
  users   ann (writer), bob (reader), carl (no role)
  client  svc (client_credentials, role reader)
  policy  `documents`: deny every action on the document "classified", and deny reads
          from 203.0.113.9 (proves the context's ip reaches conditions)
  rules   GET/HEAD /docs/{id} -> document read (id), POST /docs -> document create,
          DELETE /docs/{id} -> document delete, anything under /public -> public
One latchd (forward_auth_cookie "latch_at") is shared by the module; the nginx test puts
nginx (auth_request) in front of a small Python upstream that reports what it received.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import httpx
import pytest

import latchtest as lt
from latchtest import strong_password as strong

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)

FA = "/v1/forward-auth"
COOKIE = "latch_at"

RULES = {
    "routes": [
        {"methods": ["GET", "HEAD"], "path": "/docs/{id}", "resource_type": "document", "action": "read",
         "resource_id": "id"},
        {"methods": ["POST"], "path": "/docs", "resource_type": "document", "action": "create"},
        {"methods": ["DELETE"], "path": "/docs/{id}", "resource_type": "document", "action": "delete",
         "resource_id": "id"},
        {"methods": ["*"], "path": "/public/**", "public": True},
    ]
}

DOCUMENTS = {
    "resource_type": "document",
    "rules": [
        {"id": "classified", "effect": "deny", "actions": ["*"], "when": 'resource.id == "classified"'},
        {"id": "blocked-ip", "effect": "deny", "actions": ["read"], "when": 'context.ip == "203.0.113.9"'},
    ],
}


class World(lt.AdminWorld):
    def fa(self, method="GET", uri=None, orig_method=None, token=None, headers=None, style="nginx", path=FA):
        """One forward-auth call as a proxy of `style` makes it for the original request
        (orig_method, uri)."""
        h = dict(headers or {})
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        if style == "nginx":
            if uri is not None:
                h["x-original-uri"] = uri
            if orig_method is not None:
                h["x-original-method"] = orig_method
        elif style == "traefik":
            if uri is not None:
                h["x-forwarded-uri"] = uri
            if orig_method is not None:
                h["x-forwarded-method"] = orig_method
        r = self.c.request(method, path, headers=h)
        assert r.status_code < 500, r.text
        # checked against proto/openapi.yaml once it documents the operation
        template = FA if path.split("?")[0] == FA else FA + "/{path}"
        check = "get" if method == "HEAD" else method.lower()
        if check in self.api.openapi.doc.get("paths", {}).get(template, {}):
            self.api.openapi.check_response(check.upper(), template, r)
        return r


def tokens(w, email, password):
    return w.login("acme", email, password)


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    world = None
    try:
        world = _setup(factory, session_tmp, openapi)
        yield world
    finally:
        lt.shut_down(factory, *([world.api.c, world.c] if world is not None else []))


def _setup(factory, tmp, openapi):
    rules = tmp / f"fa-rules-{uuid.uuid4().hex[:8]}.json"
    rules.write_text(json.dumps(RULES, indent=2))
    A = factory(forward_auth_rules=str(rules), forward_auth_cookie=COOKIE, **SETTINGS)
    world = World(A, lt.ContractApi(A, openapi, documented_only=True))
    world.factory, world.rules_path = factory, rules
    world.c = A.h2c(timeout=30.0)
    pw = {k: strong() for k in ("alice", "ann", "bob", "carl")}
    world.pw = pw
    acme = A.bootstrap("acme", "alice@acme.test", pw["alice"])
    world.tenant = acme["tenant_id"]
    world.alice = world.login("acme", "alice@acme.test", pw["alice"])["access_token"]
    api = world.api

    def call(method, tmpl, url=None, status=(200, 201), **kw):
        r = api.call(method, tmpl, url=url, token=world.alice, **kw)
        assert r.status_code in status, r.text
        return r.json() if r.content else None

    call("POST", "/v1/admin/roles", json={"name": "reader", "permissions": ["document:read"]})
    call("POST", "/v1/admin/roles", json={"name": "writer", "permissions": ["document:create"], "parents": ["reader"]})
    ids = {}
    for name in ("ann", "bob", "carl"):
        ids[name] = call("POST", "/v1/admin/users", json={"email": f"{name}@acme.test", "password": pw[name]})["id"]
    world.ids = ids
    call("PUT", "/v1/admin/users/{id}/roles", url=f"/v1/admin/users/{ids['ann']}/roles", json={"roles": ["writer"]})
    call("PUT", "/v1/admin/users/{id}/roles", url=f"/v1/admin/users/{ids['bob']}/roles", json={"roles": ["reader"]})
    call("PUT", "/v1/admin/policies/{id}", url="/v1/admin/policies/documents", json={"document": DOCUMENTS})
    world.svc = lt.make_client(world.api.c, world.alice, prefix="svc")
    call("PUT", "/v1/admin/clients/{id}/roles", url=f"/v1/admin/clients/{world.svc['client_id']}/roles",
         json={"roles": ["reader"]})
    world.ann = tokens(world, "ann@acme.test", pw["ann"])["access_token"]
    world.bob = tokens(world, "bob@acme.test", pw["bob"])["access_token"]
    world.carl = tokens(world, "carl@acme.test", pw["carl"])["access_token"]
    r = world.c.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=lt.client_auth(world.svc))
    assert r.status_code == 200, r.text
    world.svc_token = r.json()["access_token"]

    # Every write above reaches the snapshot through NOTIFY: wait for the last ones.
    def ready():
        a = world.fa(uri="/docs/1", orig_method="GET", token=world.svc_token).status_code == 200
        b = world.fa(uri="/docs/classified", orig_method="GET", token=world.ann).status_code == 403
        c = world.fa(uri="/docs", orig_method="POST", token=world.ann).status_code == 200
        return a and b and c

    assert lt.wait_for(ready, 5.0), "roles, assignments and the policy never reached the snapshot"
    return world


def problem(r, status, code):
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["code"] == code, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def allowed(r, subject=None):
    assert r.status_code == 200, r.text
    assert r.content == b""
    assert r.headers["cache-control"] == "no-store"
    if subject is not None:
        assert r.headers["x-latch-subject"] == subject
    return r.headers


# --- decisions -------------------------------------------------------------------------------


def test_allowed_with_identity_headers(w):
    h = allowed(w.fa(uri="/docs/42", orig_method="GET", token=w.ann), w.ids["ann"])
    assert h["x-latch-tenant"] == w.tenant
    assert h["x-latch-subject-type"] == "user"
    assert sorted(h["x-latch-roles"].split(",")) == ["reader", "writer"]  # effective: inherited too
    h = allowed(w.fa(uri="/docs/42?download=1", orig_method="GET", token=w.bob), w.ids["bob"])
    assert h["x-latch-roles"] == "reader"
    allowed(w.fa(uri="/docs", orig_method="POST", token=w.ann), w.ids["ann"])


def test_no_credential_is_401(w):
    r = w.fa(uri="/docs/1", orig_method="GET")
    problem(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == 'Bearer realm="latch"'
    # another scheme (meant for the upstream) is no credential of ours
    r = w.fa(uri="/docs/1", orig_method="GET", headers={"authorization": "Basic dXNlcjpwYXNz"})
    problem(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == 'Bearer realm="latch"'


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "tampered", "expired-key"])
def test_bad_credential_is_401_invalid_token(w, token):
    if token == "tampered":
        head, claims, sig = w.ann.split(".")
        token = f"{head}.{claims}.{sig[:-4]}AAAA"
    elif token == "expired-key":
        head, _, sig = w.ann.split(".")
        token = f"{head}.eyJzdWIiOiJ4In0.{sig}"
    r = w.fa(uri="/docs/1", orig_method="GET", token=token)
    problem(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == 'Bearer realm="latch", error="invalid_token"'


def test_logged_out_token_is_401(w):
    s = tokens(w, "ann@acme.test", w.pw["ann"])
    allowed(w.fa(uri="/docs/1", orig_method="GET", token=s["access_token"]), w.ids["ann"])
    r = w.c.post("/v1/auth/logout", headers=lt.bearer(s))
    assert r.status_code == 204, r.text
    # every worker learns of it through NOTIFY (the test's requests may land on any of them)
    assert lt.wait_for(lambda: all(w.fa(uri="/docs/1", orig_method="GET", token=s["access_token"]).status_code == 401
                                   for _ in range(4)), 2.0)
    r = w.fa(uri="/docs/1", orig_method="GET", token=s["access_token"])
    problem(r, 401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # the other sessions of the same user are untouched
    allowed(w.fa(uri="/docs/1", orig_method="GET", token=w.ann), w.ids["ann"])


def test_denied_is_403(w):
    problem(w.fa(uri="/docs/1", orig_method="GET", token=w.carl), 403, "forbidden")  # no role
    problem(w.fa(uri="/docs", orig_method="POST", token=w.bob), 403, "forbidden")  # reader may not create
    problem(w.fa(uri="/docs/1", orig_method="DELETE", token=w.ann), 403, "forbidden")  # nobody may delete
    problem(w.fa(uri="/docs/classified", orig_method="GET", token=w.ann), 403, "forbidden")  # ABAC deny on the id
    problem(w.fa(uri="/docs/%63lassified", orig_method="GET", token=w.ann), 403, "forbidden")  # decoded id


def test_context_reaches_conditions(w):
    ip = {"x-real-ip": "203.0.113.9"}
    problem(w.fa(uri="/docs/1", orig_method="GET", token=w.ann, headers=ip), 403, "forbidden")
    problem(w.fa(uri="/docs/1", orig_method="GET", token=w.ann, headers={"x-forwarded-for": "203.0.113.9, 10.0.0.1"}),
            403, "forbidden")
    allowed(w.fa(uri="/docs/1", orig_method="GET", token=w.ann, headers={"x-forwarded-for": "10.0.0.1, 203.0.113.9"}))
    # the deny is on reads only
    allowed(w.fa(uri="/docs", orig_method="POST", token=w.ann, headers=ip))


def test_unmatched_route_is_403(w):
    for method, uri in [("GET", "/admin"), ("GET", "/docs"), ("PUT", "/docs/1"), ("GET", "/docs/1/2"), ("GET", "/")]:
        problem(w.fa(uri=uri, orig_method=method, token=w.ann), 403, "forbidden")
        problem(w.fa(uri=uri, orig_method=method), 403, "forbidden")  # no credential: still 403, nothing to ask


def test_public_route(w):
    h = allowed(w.fa(uri="/public/css/site.css", orig_method="GET"))
    assert "x-latch-subject" not in h
    allowed(w.fa(uri="/public", orig_method="PROPFIND"))
    # a valid credential still identifies; a bad one does not make a public route fail
    h = allowed(w.fa(uri="/public/x", orig_method="GET", token=w.bob), w.ids["bob"])
    assert h["x-latch-roles"] == "reader"
    h = allowed(w.fa(uri="/public/x", orig_method="GET", token="garbage"))
    assert "x-latch-subject" not in h


def test_client_credentials_subject(w):
    h = allowed(w.fa(uri="/docs/1", orig_method="GET", token=w.svc_token))
    assert h["x-latch-subject-type"] == "client"
    assert h["x-latch-subject"] == lt.jwt_claims(w.svc_token)["sub"]
    assert h["x-latch-roles"] == "reader"
    assert h["x-latch-tenant"] == w.tenant
    problem(w.fa(uri="/docs", orig_method="POST", token=w.svc_token), 403, "forbidden")


def test_cookie_credential(w):
    allowed(w.fa(uri="/docs/1", orig_method="GET", headers={"cookie": f"theme=dark; {COOKIE}={w.ann}"}), w.ids["ann"])
    allowed(w.fa(uri="/docs/1", orig_method="GET", headers={"cookie": f'{COOKIE}="{w.bob}"'}), w.ids["bob"])
    r = w.fa(uri="/docs/1", orig_method="GET", headers={"cookie": f"{COOKIE}=garbage"})
    problem(r, 401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # another cookie's name is not ours; a bearer wins over the cookie
    problem(w.fa(uri="/docs/1", orig_method="GET", headers={"cookie": f"x{COOKIE}={w.ann}"}), 401, "invalid_token")
    allowed(w.fa(uri="/docs/1", orig_method="GET", token=w.bob, headers={"cookie": f"{COOKIE}={w.ann}"}), w.ids["bob"])


# --- each proxy's way of describing the original request ------------------------------------------


def test_nginx_headers(w):
    allowed(w.fa(uri="/docs/7", orig_method="GET", token=w.ann, style="nginx"), w.ids["ann"])
    allowed(w.fa(uri="/docs", orig_method="POST", token=w.ann, style="nginx"), w.ids["ann"])


def test_traefik_headers(w):
    allowed(w.fa(uri="/docs/7?x=1", orig_method="GET", token=w.ann, style="traefik"), w.ids["ann"])
    allowed(w.fa(uri="/docs", orig_method="POST", token=w.ann, style="traefik"), w.ids["ann"])
    problem(w.fa(uri="/docs", orig_method="POST", token=w.bob, style="traefik"), 403, "forbidden")


def test_envoy_prefix(w):
    def envoy(method, path, **kw):
        return w.fa(method=method, path=FA + path, style="envoy", **kw)

    allowed(envoy("GET", "/docs/7?x=1", token=w.ann), w.ids["ann"])
    allowed(envoy("HEAD", "/docs/7", token=w.ann), w.ids["ann"])
    allowed(envoy("POST", "/docs", token=w.ann), w.ids["ann"])
    problem(envoy("POST", "/docs", token=w.bob), 403, "forbidden")
    problem(envoy("DELETE", "/docs/1", token=w.ann), 403, "forbidden")
    allowed(envoy("OPTIONS", "/public/", token=None))
    allowed(envoy("PUT", "/public/a/b/", token=None))
    problem(envoy("PUT", "/public/a//b/", token=None), 403, "forbidden")  # taken raw, then checked
    problem(envoy("GET", "/", token=w.ann), 403, "forbidden")
    problem(envoy("GET", "/docs/7"), 401, "invalid_token")
    # the bare prefix with nothing describing the request
    problem(w.fa(method="GET", path=FA), 400, "invalid_request")


def test_conflicting_or_missing_descriptions_are_400(w):
    cases = [
        # a client-added X-Forwarded-Uri that the proxy passed on next to its own X-Original-URI
        {"x-original-uri": "/docs/1", "x-forwarded-uri": "/public/x", "x-original-method": "GET"},
        {"x-original-uri": "/docs/1", "x-original-method": "GET", "x-forwarded-method": "POST"},
        # no method (an nginx subrequest is always GET: its own method says nothing)
        {"x-original-uri": "/docs/1"},
        # no URI
        {"x-forwarded-method": "GET"},
    ]
    for h in cases:
        problem(w.fa(token=w.ann, headers=h, style="none"), 400, "invalid_request")
    # Envoy: the path is the original; headers that disagree with it are forged
    problem(w.fa(method="GET", path=FA + "/docs/1", token=w.ann, headers={"x-forwarded-uri": "/public/x"},
                 style="none"), 400, "invalid_request")
    problem(w.fa(method="GET", path=FA + "/docs", token=w.ann, headers={"x-original-method": "POST"}, style="none"),
            400, "invalid_request")
    # agreeing sources are fine
    allowed(w.fa(method="GET", path=FA + "/docs/1", token=w.ann, style="none",
                 headers={"x-forwarded-uri": "/docs/1", "x-forwarded-method": "GET"}))
    # a header given twice
    r = w.c.request("GET", FA, headers=[("authorization", f"Bearer {w.ann}"), ("x-original-method", "GET"),
                                        ("x-original-uri", "/docs/1"), ("x-original-uri", "/public/x")])
    problem(r, 400, "invalid_request")


BYPASSES = [
    "/public/../docs/1", "/public/%2e%2e/docs/1", "/public/%2E%2E/docs/1", "/public/.%2e/docs/1",
    "/public/..%2Fdocs/1", "/public%2F..%2Fdocs%2F1", "/public/..%5Cdocs/1", "/public/..\\docs/1",
    "/public/./../docs/1", "/public/x/../../docs/1", "//public/../docs/1", "/public;/../docs/1",
    "/public/%252e%252e/docs/1", "/docs/1%00", "/public/%00/../docs",
]


@pytest.mark.parametrize("uri", BYPASSES)
def test_dot_segment_bypass_is_refused(w, uri):
    """A path the rules would call public but an upstream may resolve to /docs/1: refused
    (403) with and without a credential, in every header style."""
    for token in (None, w.carl):
        for style in ("nginx", "traefik"):
            r = w.fa(uri=uri, orig_method="GET", token=token, style=style)
            assert r.status_code == 403, f"{style} {uri}: {r.status_code} {r.text}"
            problem(r, 403, "forbidden")


def raw_get(hostport, target, headers=()):
    """GET `target` exactly as given over HTTP/1.1 (httpx would normalise "..");
    returns the status code."""
    host, port = hostport.rsplit(":", 1)
    head = f"GET {target} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    with socket.create_connection((host, int(port)), 10) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_dot_segment_bypass_envoy(w):
    latch = w.d.h2c_url.split("://", 1)[1]
    for uri in BYPASSES:
        status = raw_get(latch, FA + uri, [("authorization", f"Bearer {w.carl}")])
        assert status == 403, f"envoy {uri}: {status}"
    assert raw_get(latch, FA + "/docs/1", [("authorization", f"Bearer {w.ann}")]) == 200


def test_malformed_uri_is_400(w):
    for uri in ["docs/1", "http://evil/docs/1", "/docs/%zz", "/docs/a b", "/docs/1#x", "/docs/%ff"]:
        problem(w.fa(uri=uri, orig_method="GET", token=w.ann), 400, "invalid_request")


def test_methods_and_contract_shape(w):
    # every method a proxy may use for the check itself
    for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        r = w.fa(method=m, uri="/docs/1", orig_method="GET", token=w.ann)
        assert r.status_code == 200, (m, r.text)
    r = w.fa(method="TRACE", uri="/docs/1", orig_method="GET", token=w.ann)
    assert r.status_code == 405


def test_metrics_count_outcomes(w):
    w.fa(uri="/nowhere", orig_method="GET")
    text = w.c.get("/metrics").text
    counts = {}
    for line in text.splitlines():
        if line.startswith("latch_forward_auth_total{"):
            label = line.split('outcome="')[1].split('"')[0]
            counts[label] = int(line.rsplit(" ", 1)[1])
    assert set(counts) == {"allowed", "public", "unauthenticated", "denied", "no_route", "refused", "off"}, text
    assert counts["allowed"] > 0 and counts["no_route"] > 0 and counts["denied"] > 0


# --- configuration --------------------------------------------------------------------------------


def test_disabled_without_rules_and_cookie_off(w):
    d = w.factory(database_url=w.d.config["database_url"], master_key=w.d.config["master_key"], **SETTINGS)
    with d.h2c() as c:
        r = c.get(FA, headers={"x-original-uri": "/public/x", "x-original-method": "GET"})
        problem(r, 404, "not_found")
    d.stop()


def test_bad_rules_file_stops_latchd(w, session_tmp):
    bad = session_tmp / f"fa-bad-{uuid.uuid4().hex[:8]}.json"
    bad.write_text(json.dumps({"routes": [RULES["routes"][0], {"path": "docs", "public": True}]}))
    missing = session_tmp / "no-such-rules.json"
    for rules, message in [(bad, f"{bad}: /routes/1/path: must start with '/'"), (missing, f"{missing}: No such file")]:
        d = w.factory(start=False, database_url=w.d.config["database_url"], master_key=w.d.config["master_key"],
                      forward_auth_rules=str(rules), **SETTINGS)
        d.start(wait=False)
        rc = d.proc.wait(15)
        d.stop()
        assert rc != 0
        assert message in d.stderr_text(), d.stderr_text()


def test_bad_cookie_name_is_a_config_error(w, tmp_path):
    cfg = dict(w.d.config, forward_auth_cookie="bad name;")
    path = tmp_path / "latch.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([str(lt.latchd_bin()), "--config", str(path), "--check-config"], capture_output=True,
                       text=True, env=lt.child_env())
    assert p.returncode != 0
    assert "forward_auth_cookie" in p.stderr


# --- nginx end to end -----------------------------------------------------------------------------


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it received: method, path and the X-Latch-* headers."""

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        seen = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-latch-")}
        out = json.dumps({"method": self.command, "path": self.path, "headers": seen,
                          "all_latch": self.headers.get_all("x-latch-subject") or [], "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


NGINX_CONF = """
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{site}
}}
"""


def nginx_site(listen, latch, upstream):
    """deploy/forward-auth/nginx.conf's server block with the addresses of this test."""
    text = (lt.ROOT / "deploy" / "forward-auth" / "nginx.conf").read_text()
    site = text.split("# --- site ---", 1)[1]
    return (site.replace("127.0.0.1:8080", listen).replace("127.0.0.1:8081", latch)
            .replace("127.0.0.1:9000", upstream))


@pytest.fixture(scope="module")
def nginx(w, session_tmp):
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if exe is None:
        pytest.fail("nginx is not installed: run deploy/deps (it installs Debian's nginx-light)", pytrace=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    d = session_tmp / f"nginx-{uuid.uuid4().hex[:8]}"
    (d / "tmp").mkdir(parents=True)
    port = lt.free_port()
    latch = w.d.h2c_url.split("://", 1)[1]
    conf = NGINX_CONF.format(dir=d, user="user root root;" if os.geteuid() == 0 else "",
                             site=nginx_site(f"127.0.0.1:{port}", latch, f"127.0.0.1:{srv.server_address[1]}"))
    (d / "nginx.conf").write_text(conf)
    p = subprocess.Popen([exe, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf"), "-g",
                          "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up():
            if p.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        lt.wait_for(up, 10.0)
        if p.poll() is not None:
            log = (d / "error.log").read_text() if (d / "error.log").exists() else ""
            pytest.fail(f"nginx did not start: {p.stdout.read().decode()}\n{log}", pytrace=False)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as c:
            yield c
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        srv.shutdown()


def test_nginx_allowed_and_identity_reaches_upstream(w, nginx):
    r = nginx.get("/docs/42", headers={"authorization": f"Bearer {w.ann}", "x-latch-subject": "forged-admin",
                                       "x-latch-roles": "admin", "x-latch-tenant": "other"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["path"] == "/docs/42"
    assert seen["headers"]["x-latch-subject"] == w.ids["ann"]
    assert seen["all_latch"] == [w.ids["ann"]], "a client-sent X-Latch-Subject reached the upstream"
    assert seen["headers"]["x-latch-tenant"] == w.tenant
    assert sorted(seen["headers"]["x-latch-roles"].split(",")) == ["reader", "writer"]
    # the method travels in X-Original-Method: POST /docs is create
    r = nginx.post("/docs", headers={"authorization": f"Bearer {w.ann}"}, json={"title": "t"})
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "POST" and r.json()["body"] == '{"title": "t"}'
    # cookie credential through nginx
    r = nginx.get("/docs/1", headers={"cookie": f"{COOKIE}={w.bob}"})
    assert r.status_code == 200 and r.json()["headers"]["x-latch-subject"] == w.ids["bob"]


def test_nginx_401(w, nginx):
    r = nginx.get("/docs/42")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="latch"'
    r = nginx.get("/docs/42", headers={"authorization": "Bearer garbage"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_nginx_403(w, nginx):
    assert nginx.get("/docs/42", headers={"authorization": f"Bearer {w.carl}"}).status_code == 403
    assert nginx.post("/docs", headers={"authorization": f"Bearer {w.bob}"}).status_code == 403
    assert nginx.get("/admin", headers={"authorization": f"Bearer {w.ann}"}).status_code == 403
    # a forged description of the request does not move the decision
    r = nginx.get("/docs/42", headers={"x-forwarded-uri": "/public/x", "x-original-uri": "/public/x",
                                       "x-forwarded-method": "GET"})
    assert r.status_code == 401, r.text


def test_nginx_public_and_forged_identity(w, nginx):
    r = nginx.get("/public/app.css", headers={"x-latch-subject": "forged-admin"})
    assert r.status_code == 200, r.text
    assert r.json()["all_latch"] == [], "a client-sent X-Latch-Subject reached the upstream"


def test_nginx_dot_segments(w, nginx):
    """nginx resolves /public/../docs/1 to /docs/1 for its locations but forwards the raw URI
    the upstream may resolve itself; latchd refuses it instead of calling it public."""
    site = str(nginx.base_url).split("://", 1)[1].rstrip("/")
    for raw in ["/public/../docs/1", "/public/%2e%2e/docs/1", "/public/..%2Fdocs/1", "/public/x/../../docs/1"]:
        assert raw_get(site, raw) == 403, raw
    assert raw_get(site, "/public/x") == 200
