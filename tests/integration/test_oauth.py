"""The OAuth surface (issue 4, items 2, 3, 4, 6): /oauth2/token, /oauth2/introspect,
/oauth2/revoke and the RFC 8414 metadata, over real HTTP/2 against latchd and its own
PostgreSQL, with hand-built requests per the RFCs and with python3-authlib as a third-party
client.

Forged tokens: the test puts a signing key of its own into the database the way latchd
stores keys (PKCS#8 sealed with AES-256-GCM under the master key it gave latchd), as a
verify-only ("previous") key, and announces it with NOTIFY latch_keys. That lets it sign
tokens with any claims (expired, not yet valid, wrong issuer or audience) whose signature
latchd accepts, so each claim check is tested on its own.
"""

import base64
import json
import os
import secrets
import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwcrypto import jwk, jwt as jjwt

import latchtest as lt

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)
FORM = {"content-type": "application/x-www-form-urlencoded"}


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class World:
    pass


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    world = World()
    world.d, world.openapi = d, openapi
    world.c = d.h2c(timeout=30.0)
    world.pw = lt.strong_password()
    boot = d.bootstrap("alpha", "alice@alpha.test", world.pw)
    world.alpha = boot["tenant_id"]
    world.alice_id = boot["user_id"]
    d.bootstrap("beta", "bob@beta.test", world.pw)
    r = world.c.post("/v1/auth/login", json={"tenant": "alpha", "email": "alice@alpha.test", "password": world.pw})
    assert r.status_code == 200, r.text
    world.alice = r.json()
    r = world.c.post("/v1/auth/login", json={"tenant": "beta", "email": "bob@beta.test", "password": world.pw})
    assert r.status_code == 200, r.text
    world.bob = r.json()
    tok = world.alice["access_token"]
    world.svc = lt.make_client(world.c, tok, grant_types=["client_credentials", "refresh_token"],
                               scopes=["read", "write"], permissions=["introspect", "revoke"])
    world.plain = lt.make_client(world.c, tok, grant_types=["client_credentials"], scopes=["read"])
    world.beta_svc = lt.make_client(world.c, world.bob["access_token"], permissions=["introspect"])
    world.forge = Forger(d)
    yield world
    lt.shut_down(factory, world.c)


class Forger:
    """A P-256 key of the test's own, stored in latchd's database as a verify-only key."""

    def __init__(self, d):
        self.d = d
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "test-" + secrets.token_hex(8)
        der = self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        master = base64.b64decode(d.config["master_key"])
        version = int(d.config.get("master_key_version", 1))
        nonce = os.urandom(12)
        aad = bytes([version]) + f"signing_key:{self.kid}".encode()
        sealed = bytes([version]) + nonce + AESGCM(master).encrypt(nonce, der, aad)
        pub = jwk.JWK.from_pyca(self.key.public_key())
        self.public_jwk = json.loads(pub.export_public())
        self.public_jwk.update(kid=self.kid, alg="ES256", use="sig")
        lt.instance_sql(d, "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status, retired_at) "
                           f"VALUES ('{self.kid}', 'ES256', '{json.dumps(self.public_jwk)}'::jsonb, "
                           f"'\\x{sealed.hex()}'::bytea, 'previous', now()); NOTIFY latch_keys")
        self.cfg = d.config

    def claims(self, tenant, **over):
        now = int(time.time())
        c = {"iss": self.cfg.get("issuer", "https://127.0.0.1:8443"), "aud": self.cfg.get("audience", "latch"),
             "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "jti": secrets.token_urlsafe(16), "iat": now,
             "nbf": now, "exp": now + 300, "tenant": tenant, "client_id": "latch", "scope": "", "roles": [],
             "amr": ["pwd"], "auth_time": now}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def sign(self, claims, header=None, alg="ES256"):
        h = {"alg": alg, "typ": "at+jwt", "kid": self.kid}
        h.update(header or {})
        signing_input = (b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(claims).encode())).encode()
        if alg == "ES256":
            der = self.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            rr, ss = decode_dss_signature(der)
            sig = rr.to_bytes(32, "big") + ss.to_bytes(32, "big")
        elif alg == "HS256":  # keyed with the public key: the algorithm-confusion attack
            pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
            mac = hmac.HMAC(pem, hashes.SHA256())
            mac.update(signing_input)
            sig = mac.finalize()
        else:
            sig = b""
        return signing_input.decode() + "." + b64u(sig)


def introspect(w, token, client=None, check=True, **extra):
    client = client or w.svc
    data = {"token": token, **extra}
    r = w.c.post("/oauth2/introspect", data=data, headers=lt.client_auth(client))
    if check:
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        w.openapi.check_response("POST", "/oauth2/introspect", r)
    return r


def token_cc(w, client, **data):
    data.setdefault("grant_type", "client_credentials")
    return w.c.post("/oauth2/token", data=data, headers=lt.client_auth(client))


def oauth_error(r, status, error):
    assert r.status_code == status, f"expected {status} {error}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == error, body
    if status == 401:
        assert r.headers["www-authenticate"].lower().startswith("basic"), r.headers
    return body


# --- metadata ------------------------------------------------------------------------------


def test_metadata(w):
    r = w.c.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    m = r.json()
    iss = w.d.config.get("issuer", "https://127.0.0.1:8443").rstrip("/")
    assert m["issuer"] == w.d.config.get("issuer", "https://127.0.0.1:8443")
    assert m["token_endpoint"] == iss + "/oauth2/token"
    assert m["introspection_endpoint"] == iss + "/oauth2/introspect"
    assert m["revocation_endpoint"] == iss + "/oauth2/revoke"
    assert m["jwks_uri"] == iss + "/.well-known/jwks.json"
    assert set(m["grant_types_supported"]) == {"client_credentials", "refresh_token"}
    for k in ("token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
              "revocation_endpoint_auth_methods_supported"):
        assert set(m[k]) == {"client_secret_basic", "client_secret_post"}
    w.openapi.check_response("GET", "/.well-known/oauth-authorization-server", r)


# --- client_credentials ---------------------------------------------------------------------


def jwks_verify(w, token):
    r = w.c.get("/.well-known/jwks.json")
    keys = jwk.JWKSet.from_json(r.text)
    t = jjwt.JWT(jwt=token, key=keys, algs=["ES256", "EdDSA"])
    return json.loads(t.header), json.loads(t.claims)


def test_client_credentials_basic_and_post(w):
    r = token_cc(w, w.svc)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    w.openapi.check_response("POST", "/oauth2/token", r)
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and "refresh_token" not in body
    assert set(body["scope"].split()) == {"read", "write"}
    header, claims = jwks_verify(w, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == w.svc["client_id"] == claims["client_id"]
    assert claims["tenant"] == w.alpha and "sid" not in claims
    # client_secret_post
    r = w.c.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": w.plain["client_id"],
                                        "client_secret": w.plain["client_secret"], "scope": "read"})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"


def test_client_credentials_scopes(w):
    r = token_cc(w, w.svc, scope="read")
    assert r.status_code == 200 and r.json()["scope"] == "read"
    oauth_error(token_cc(w, w.svc, scope="read admin"), 400, "invalid_scope")
    oauth_error(token_cc(w, w.plain, scope="write"), 400, "invalid_scope")


def test_grant_errors(w):
    oauth_error(token_cc(w, w.svc, grant_type="password"), 400, "unsupported_grant_type")
    oauth_error(token_cc(w, w.plain, grant_type="refresh_token", refresh_token="lt_rt_x"), 400, "unauthorized_client")
    r = w.c.post("/oauth2/token", data={"client_id": w.svc["client_id"]}, headers=lt.client_auth(w.svc))
    oauth_error(r, 400, "invalid_request")


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_bad_client_credentials(w, path):
    data = {"grant_type": "client_credentials", "token": "x"}
    cid, sec = w.svc["client_id"], w.svc["client_secret"]
    for headers in ({}, {"authorization": lt.basic_auth(cid, sec[:-1] + ("A" if sec[-1] != "A" else "B"))},
                    {"authorization": lt.basic_auth("lc_" + "A" * 22, sec)}, {"authorization": "Bearer " + sec},
                    {"authorization": "Basic !!!notbase64"}, {"authorization": "Basic " + base64.b64encode(b"nocolon").decode()}):
        oauth_error(w.c.post(path, data=data, headers=headers), 401, "invalid_client")
    # client_secret_post with a wrong secret
    oauth_error(w.c.post(path, data={**data, "client_id": cid, "client_secret": "lcs_" + "x" * 43}), 401,
                "invalid_client")
    # two methods at once
    oauth_error(w.c.post(path, data={**data, "client_id": cid, "client_secret": sec},
                         headers={"authorization": lt.basic_auth(cid, sec)}), 400, "invalid_request")


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_bad_bodies(w, path):
    auth = lt.client_auth(w.svc)
    # JSON instead of a form
    r = w.c.post(path, json={"grant_type": "client_credentials", "token": "x"}, headers=auth)
    oauth_error(r, 400, "invalid_request")
    # duplicate parameters (RFC 6749 §3.2)
    r = w.c.post(path, content=b"grant_type=client_credentials&token=a&token=b&grant_type=client_credentials",
                 headers={**auth, **FORM})
    oauth_error(r, 400, "invalid_request")
    # missing parameter
    r = w.c.post(path, content=b"", headers={**auth, **FORM})
    oauth_error(r, 400, "invalid_request")
    # bad escapes and invalid UTF-8
    for body in (b"token=%zz&grant_type=x", b"token=%ff%fe&grant_type=x", b"token=a%00b&grant_type=x"):
        oauth_error(w.c.post(path, content=body, headers={**auth, **FORM}), 400, "invalid_request")


def test_oversize_token(w):
    # over the longest JWT accepted: simply not a live token
    assert introspect(w, "e" * 8193).json() == {"active": False}
    # far over it: refused as a parameter before any work
    auth = lt.client_auth(w.svc)
    for path in ("/oauth2/introspect", "/oauth2/revoke", "/oauth2/token"):
        r = w.c.post(path, data={"token": "x" * 9000, "grant_type": "refresh_token", "refresh_token": "y" * 9000},
                     headers=auth)
        oauth_error(r, 400, "invalid_request")
    # beyond the body cap: 413 (HTTP/2 streams may be reset by h2o instead), never a 500
    try:
        r = w.c.post("/oauth2/introspect", data={"token": "x" * 200_000}, headers=auth)
        assert r.status_code == 413, r.text
    except httpx.HTTPError:
        pass


# --- introspection -------------------------------------------------------------------------

ACCESS_FIELDS = {"active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf", "sub", "aud", "iss",
                 "jti", "sid", "tenant", "roles", "amr", "auth_time"}


def test_introspect_user_access_token(w):
    body = introspect(w, w.alice["access_token"]).json()
    assert ACCESS_FIELDS <= set(body), body
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["sub"] == w.alice_id and body["username"] == "alice@alpha.test"
    assert body["sid"] == w.alice["session_id"] and body["tenant"] == w.alpha
    assert body["client_id"] == "latch" and body["amr"] == ["pwd"]
    assert isinstance(body["revocation_seq"], int)
    # a second time comes from the cache: same answer
    again = introspect(w, w.alice["access_token"]).json()
    assert {k: v for k, v in again.items() if k != "revocation_seq"} == \
        {k: v for k, v in body.items() if k != "revocation_seq"}


def test_introspect_client_token(w):
    tok = token_cc(w, w.plain).json()["access_token"]
    body = introspect(w, tok, token_type_hint="access_token").json()
    assert body["active"] is True and body["sub"] == w.plain["client_id"] == body["client_id"]
    assert "sid" not in body and "username" not in body


def test_introspect_refresh_token(w):
    body = introspect(w, w.alice["refresh_token"], token_type_hint="refresh_token").json()
    assert body["active"] is True, body
    assert body["sid"] == w.alice["session_id"] and body["sub"] == w.alice_id
    assert body["username"] == "alice@alpha.test" and body["tenant"] == w.alpha
    assert body["exp"] > time.time()


def test_introspect_other_tenant_is_inactive(w):
    # beta's client cannot see alpha's tokens, of any kind
    assert introspect(w, w.alice["access_token"], client=w.beta_svc).json() == {"active": False}
    assert introspect(w, w.alice["refresh_token"], client=w.beta_svc).json() == {"active": False}


def test_introspect_needs_permission(w):
    r = introspect(w, w.alice["access_token"], client=w.plain, check=False)
    assert r.status_code == 403 and r.json()["error"] == "unauthorized_client"


def test_introspect_garbage(w):
    for t in ("", "garbage", "a.b.c", "lt_rt_" + "A" * 43, "lt_rt_", "e30.e30.", "x" * 100 + "." + "y" * 100,
              "\u00e9\u00e9.\u00e9.\u00e9", w.alice["access_token"] + "x", w.alice["access_token"][:-2]):
        if t == "":
            r = introspect(w, t, check=False)
            assert r.status_code == 400
            continue
        assert introspect(w, t).json() == {"active": False}, t


def wait_forged_key(w):
    tok = w.forge.sign(w.forge.claims(w.alpha))
    assert lt.wait_for(lambda: introspect(w, tok).json()["active"]), "forged key not picked up via NOTIFY"
    return tok


def test_introspect_forged_claims(w):
    f = w.forge
    wait_forged_key(w)
    now = int(time.time())
    good = f.sign(f.claims(w.alpha))
    assert introspect(w, good).json()["active"] is True
    bad = {
        "expired": f.sign(f.claims(w.alpha, iat=now - 600, nbf=now - 600, exp=now - 120)),
        "not yet valid": f.sign(f.claims(w.alpha, nbf=now + 600, iat=now, exp=now + 900)),
        "issued in the future": f.sign(f.claims(w.alpha, iat=now + 600, nbf=now, exp=now + 900)),
        "wrong iss": f.sign(f.claims(w.alpha, iss="https://evil.example")),
        "wrong aud": f.sign(f.claims(w.alpha, aud="someone-else")),
        "no exp": f.sign(f.claims(w.alpha, exp=None)),
        "wrong typ": f.sign(f.claims(w.alpha), header={"typ": "JWT"}),
        "alg none": f.sign(f.claims(w.alpha), header={"alg": "none"}, alg="none"),
        "alg none, no kid": f.sign(f.claims(w.alpha), header={"alg": "none", "kid": None}, alg="none"),
        "HS256 keyed with the public key": f.sign(f.claims(w.alpha), header={"alg": "HS256"}, alg="HS256"),
        "unknown kid": f.sign(f.claims(w.alpha), header={"kid": "not-in-the-jwks"}),
        "crit": f.sign(f.claims(w.alpha), header={"crit": ["exp"]}),
        "other tenant": f.sign(f.claims(str(uuid.uuid4()))),
    }
    for why, tok in bad.items():
        assert introspect(w, tok).json() == {"active": False}, why


def test_retired_key_tokens_become_inactive(w):
    f = Forger(w.d)
    tok = f.sign(f.claims(w.alpha))
    assert lt.wait_for(lambda: introspect(w, tok).json()["active"])
    lt.instance_sql(w.d, f"UPDATE signing_keys SET status = 'retired' WHERE kid = '{f.kid}'; NOTIFY latch_keys")
    assert lt.wait_for(lambda: introspect(w, tok).json() == {"active": False}), "cached token of a retired key"


# --- revocation ----------------------------------------------------------------------------


def revoke(w, token, client=None, **extra):
    client = client or w.svc
    return w.c.post("/oauth2/revoke", data={"token": token, **extra}, headers=lt.client_auth(client))


def fresh_login(w, tenant="alpha", email="alice@alpha.test"):
    r = w.c.post("/v1/auth/login", json={"tenant": tenant, "email": email, "password": w.pw})
    assert r.status_code == 200, r.text
    return r.json()


def test_revoke_access_token_by_jti(w):
    s = fresh_login(w)
    assert introspect(w, s["access_token"]).json()["active"] is True
    r = revoke(w, s["access_token"], token_type_hint="access_token")
    assert r.status_code == 200, r.text
    w.openapi.check_response("POST", "/oauth2/revoke", r)
    assert lt.wait_for(lambda: introspect(w, s["access_token"]).json() == {"active": False}, timeout=1.0)
    # the bearer is refused on the user surface too
    assert lt.wait_for(lambda: w.c.get("/v1/me", headers={"authorization": "Bearer " + s["access_token"]}).status_code
                       == 401, timeout=1.0)
    # the session itself lives on: its refresh token still works
    assert introspect(w, s["refresh_token"]).json()["active"] is True
    rows = lt.instance_sql(w.d, "SELECT count(*) FROM audit_log WHERE event = 'token.revoked'")
    assert int(rows) >= 1


def test_revoke_refresh_token_ends_session(w):
    s = fresh_login(w)
    r = revoke(w, s["refresh_token"])
    assert r.status_code == 200
    assert introspect(w, s["refresh_token"]).json() == {"active": False}
    assert lt.wait_for(lambda: introspect(w, s["access_token"]).json() == {"active": False}, timeout=1.0)
    r = w.c.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
    assert r.status_code == 400


def test_revoke_unknown_tokens_is_200(w):
    for t in ("garbage", "lt_rt_" + "B" * 43, w.forge.sign(w.forge.claims(w.alpha, iss="https://x"))):
        r = revoke(w, t)
        assert r.status_code == 200, (t, r.text)


def test_revoke_other_tenant_has_no_effect(w):
    s = fresh_login(w, "beta", "bob@beta.test")
    assert revoke(w, s["access_token"]).status_code == 200
    assert revoke(w, s["refresh_token"]).status_code == 200
    time.sleep(0.3)
    assert introspect(w, s["access_token"], client=w.beta_svc).json()["active"] is True
    assert introspect(w, s["refresh_token"], client=w.beta_svc).json()["active"] is True


def test_revoke_needs_permission_for_others_tokens(w):
    s = fresh_login(w)
    r = revoke(w, s["access_token"], client=w.plain)
    oauth_error(r, 400, "unauthorized_client")
    # but its own token it may revoke
    own = token_cc(w, w.plain).json()["access_token"]
    assert revoke(w, own, client=w.plain).status_code == 200
    assert lt.wait_for(lambda: introspect(w, own).json() == {"active": False}, timeout=1.0)


def test_logout_revokes_access_token(w):
    s = fresh_login(w)
    assert introspect(w, s["access_token"]).json()["active"] is True
    r = w.c.post("/v1/auth/logout", headers={"authorization": "Bearer " + s["access_token"]})
    assert r.status_code == 204, r.text
    assert lt.wait_for(lambda: introspect(w, s["access_token"]).json() == {"active": False}, timeout=1.0)


# --- a third-party client -----------------------------------------------------------------


def test_authlib_client(w):
    from authlib.integrations.httpx_client import OAuth2Client

    base = w.d.h2c_url
    with OAuth2Client(w.svc["client_id"], w.svc["client_secret"], scope="read",
                      token_endpoint_auth_method="client_secret_basic", base_url=base) as oc:
        tok = oc.fetch_token(base + "/oauth2/token", grant_type="client_credentials")
        assert tok["token_type"] == "Bearer" and tok["scope"] == "read"
        r = oc.introspect_token(base + "/oauth2/introspect", token=tok["access_token"])
        assert r.status_code == 200 and r.json()["active"] is True
        # refresh a user's session through the OAuth endpoint
        s = fresh_login(w)
        new = oc.refresh_token(base + "/oauth2/token", refresh_token=s["refresh_token"])
        assert new["refresh_token"] != s["refresh_token"] and new["token_type"] == "Bearer"
        _, claims = jwks_verify(w, new["access_token"])
        assert claims["client_id"] == w.svc["client_id"] and claims["sid"] == s["session_id"]
        r = oc.revoke_token(base + "/oauth2/revoke", token=new["refresh_token"], token_type_hint="refresh_token")
        assert r.status_code == 200
        r = oc.introspect_token(base + "/oauth2/introspect", token=new["refresh_token"])
        assert r.json() == {"active": False}
    with OAuth2Client(w.plain["client_id"], w.plain["client_secret"],
                      token_endpoint_auth_method="client_secret_post") as oc:
        tok = oc.fetch_token(base + "/oauth2/token", grant_type="client_credentials")
        assert tok["scope"] == "read"


def test_refresh_grant_other_tenant_client(w):
    s = fresh_login(w, "beta", "bob@beta.test")
    r = w.c.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": s["refresh_token"]},
                 headers=lt.client_auth(w.svc))
    oauth_error(r, 400, "invalid_grant")
    # not consumed: its own refresh still works
    r = w.c.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
    assert r.status_code == 200, r.text
