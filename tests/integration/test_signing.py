"""Signed requests (issue 7, item 2): HMAC-SHA256 request signing per OAuth client, over real
HTTP/2 against latchd and its own PostgreSQL.

An admin gives a client a signing key (POST /v1/admin/clients/{id}/signing-key, shown once,
stored sealed under the master key) and may require signatures (PATCH ...). A signed request
carries Latch-Signature (tests/integration/latchsign.py makes it); it is checked after the
client's own credential wherever a client authenticates: /oauth2/token, /oauth2/introspect,
/oauth2/revoke, the AuthZEN endpoints and the revocation feed.

What matters: a valid signature passes; any change to method, path, body, timestamp or nonce
fails with the right 401 code and never reveals the expected signature; a replay to the same
instance within the window is refused; a client that requires signing refuses unsigned
requests; clients without a key are unaffected unless they send a header; rotation retires
the old key; the key is never returned again and is not stored in clear.
"""

import base64
import json
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import latchsign
import latchtest as lt
from latchtest import problem, strong_password as strong

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)
SIGNING = "/v1/admin/clients/{id}/signing-key"
CLIENT = "/v1/admin/clients/{id}"
FORM = "application/x-www-form-urlencoded"
EVAL = "/access/v1/evaluation"
EVAL_BODY = {"subject": {"type": "user", "id": "u1"}, "action": {"name": "read"},
             "resource": {"type": "document", "id": "d1"}}


class World(lt.AdminWorld):
    def client(self, **body):
        body.setdefault("grant_types", ["client_credentials"])
        body.setdefault("permissions", ["introspect", "revoke", "revocations", "decide"])
        return lt.make_client(self.api.c, self.alice, **body)

    def enable(self, client, status=200, **body):
        kw = {"json": body} if body else {}
        r = self.api.call("POST", SIGNING, url=SIGNING.format(id=client["client_id"]), token=self.alice, **kw)
        assert r.status_code == status, r.text
        return r.json()

    def require(self, client, flag, status=200):
        r = self.api.call("PATCH", SIGNING, url=SIGNING.format(id=client["client_id"]), token=self.alice,
                          json={"require_signed_requests": flag})
        assert r.status_code == status, r.text
        return r

    def send(self, client, method, path, body=b"", key=None, sign=True, ctype=FORM, sig_path=None, sig_method=None,
             sig_body=None, headers=None, **hkw):
        """One request authenticated as `client` (client_secret_basic), signed with `key`
        (default: the client's) over what is sent unless sig_* say otherwise."""
        h = dict(lt.client_auth(client))
        if body:
            h["content-type"] = ctype
        if sign:
            h["latch-signature"] = latchsign.header(
                client["client_id"], key or client["signing_key"], sig_method or method, sig_path or path,
                body if sig_body is None else sig_body, **hkw)
        h.update(headers or {})
        return self.api.c.request(method, path, content=body or None, headers=h)

    def introspect(self, client, token=None, **kw):
        body = urllib.parse.urlencode({"token": token or self.alice}).encode()
        r = self.send(client, "POST", "/oauth2/introspect", body, **kw)
        self.api.openapi.check_response("POST", "/oauth2/introspect", r)
        return r

    def evaluate(self, client, **kw):
        r = self.send(client, "POST", EVAL, json.dumps(EVAL_BODY).encode(), ctype="application/json", **kw)
        self.api.openapi.check_response("POST", EVAL, r)
        return r

    def audit(self, event, target):
        return self.sql(f"SELECT coalesce(details::text, '') FROM audit_log WHERE event = '{event}' "
                        f"AND target = '{target}' ORDER BY id").splitlines()


def oauth_error(r, code):
    assert r.status_code == 401, f"expected 401 {code}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == code, r.text
    assert r.headers.get("cache-control") == "no-store"
    return r.json()


def with_key(client, body):
    c = dict(client)
    c["signing_key"] = body["signing_key"]
    return c


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    api = lt.ContractApi(d, openapi)
    world = World(d, api)
    pw = strong()
    boot = d.bootstrap("alpha", "alice@alpha.test", pw)
    world.alpha = boot["tenant_id"]
    world.alice = world.login("alpha", "alice@alpha.test", pw)["access_token"]
    yield world
    lt.shut_down(factory, api.c)


@pytest.fixture
def signer(w):
    """A fresh client with a signing key (not required), already known to latchd's memory."""
    c = w.client()
    c = with_key(c, w.enable(c))
    assert lt.wait_for(lambda: w.introspect(c).status_code == 200), "the signing key never reached memory"
    return c


# --- the admin side ----------------------------------------------------------------------------


def test_key_shown_once_sealed_at_rest_and_audited(w):
    c = w.client()
    body = w.enable(c)
    key = body["signing_key"]
    assert key.startswith("lsk_") and len(key) == 47
    assert body["signing_key_set"] is True and body["require_signed_requests"] is False
    assert body["signing_key_created_at"].endswith("Z")
    assert "client_secret" not in body

    # never again: GET by either id, the list, the audit trail
    for ident in (c["id"], c["client_id"]):
        r = w.api.call("GET", CLIENT, url=CLIENT.format(id=ident), token=w.alice)
        assert r.status_code == 200
        got = r.json()
        assert "signing_key" not in got and key not in r.text
        assert got["signing_key_set"] is True and got["require_signed_requests"] is False
    r = w.api.call("GET", "/v1/admin/clients", token=w.alice)
    assert r.status_code == 200 and key not in r.text
    assert key not in w.sql("SELECT string_agg(coalesce(details::text, ''), ' ') FROM audit_log")
    details = w.audit("client.signing_key_created", c["client_id"])
    assert len(details) == 1
    assert {k: json.loads(details[0]).get(k) for k in ("id", "require_signed_requests")} == {
        "id": c["id"], "require_signed_requests": False}

    # at rest: sealed (AES-256-GCM under the master key, bound to the client), never the key
    hexed = w.sql(f"SELECT encode(signing_key_sealed, 'hex') FROM oauth_clients WHERE client_id = '{c['client_id']}'")
    sealed = bytes.fromhex(hexed)
    assert len(sealed) == 1 + 12 + 47 + 16
    assert key.encode() not in sealed and key.encode().hex() not in hexed
    master = base64.b64decode(w.d.config["master_key"])
    version = sealed[0]
    aad = bytes([version]) + f"client_signing_key:{c['client_id']}".encode()
    assert AESGCM(master).decrypt(sealed[1:13], sealed[13:], aad) == key.encode()
    with pytest.raises(Exception):  # another client's binding does not open it
        AESGCM(master).decrypt(sealed[1:13], sealed[13:], bytes([version]) + b"client_signing_key:lc_x")


def test_admin_validation_and_scope(w):
    c = w.client()
    # require without a key: 409
    r = w.require(c, True, status=409)
    problem(r, 409, "no_signing_key")
    # bad bodies
    r = w.api.call("PATCH", SIGNING, url=SIGNING.format(id=c["client_id"]), token=w.alice, json={})
    problem(r, 400, "invalid_request", "require_signed_requests")
    r = w.api.call("PATCH", SIGNING, url=SIGNING.format(id=c["client_id"]), token=w.alice,
                   json={"require_signed_requests": "yes"})
    problem(r, 400, "invalid_request", "require_signed_requests")
    r = w.api.call("POST", SIGNING, url=SIGNING.format(id=c["client_id"]), token=w.alice, json={"bogus": 1})
    problem(r, 400, "invalid_request", "bogus")
    # unknown and malformed ids: 404
    for ident in ("lc_" + "Z" * 22, "00000000-0000-0000-0000-000000000000", "nope"):
        for method in ("POST", "DELETE"):
            r = w.api.call(method, SIGNING, url=SIGNING.format(id=ident), token=w.alice)
            problem(r, 404, "not_found")
    # no bearer: 401
    r = w.api.call("POST", SIGNING, url=SIGNING.format(id=c["client_id"]))
    assert r.status_code == 401
    # by row id works too, with require set at creation
    body = w.enable(c | {"client_id": c["id"]}, require_signed_requests=True)
    assert body["require_signed_requests"] is True and body["client_id"] == c["client_id"]
    # deleting an absent key twice: 204 both times, audited once
    for _ in range(2):
        r = w.api.call("DELETE", SIGNING, url=SIGNING.format(id=c["client_id"]), token=w.alice)
        assert r.status_code == 204, r.text
    assert len(w.audit("client.signing_key_deleted", c["client_id"])) == 1
    got = w.api.call("GET", CLIENT, url=CLIENT.format(id=c["client_id"]), token=w.alice).json()
    assert got["signing_key_set"] is False and got["require_signed_requests"] is False
    assert got["signing_key_created_at"] is None


# --- verification --------------------------------------------------------------------------------


def test_valid_signature_on_introspect_evaluation_token_revoke_and_feed(w, signer):
    r = w.introspect(signer)
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    r = w.evaluate(signer)
    assert r.status_code == 200 and "decision" in r.json(), r.text
    body = b"grant_type=client_credentials"
    r = w.send(signer, "POST", "/oauth2/token", body)
    assert r.status_code == 200 and r.json()["access_token"], r.text
    r = w.send(signer, "POST", "/oauth2/revoke", urllib.parse.urlencode({"token": r.json()["access_token"]}).encode())
    assert r.status_code == 200, r.text
    r = w.send(signer, "GET", "/v1/revocations?since=0")  # a query string, no body
    assert r.status_code == 200, r.text
    # a window-edge timestamp inside the window still passes
    r = w.introspect(signer, ts=int(time.time()) - 250)
    assert r.status_code == 200, r.text
    r = w.introspect(signer, ts=int(time.time()) + 250)
    assert r.status_code == 200, r.text


def test_tampering_is_refused(w, signer):
    real = urllib.parse.urlencode({"token": w.alice}).encode()
    cases = {
        "body": dict(sig_body=real + b"&x=1"),
        "path": dict(sig_path="/oauth2/introspect?x=1"),
        "method": dict(sig_method="PUT"),
        "method case": dict(sig_method="post"),
        "other key": dict(key="lsk_" + "A" * 43),
    }
    for name, kw in cases.items():
        ts, nonce = int(time.time()), latchsign.new_nonce()
        r = w.introspect(signer, ts=ts, nonce=nonce, **kw)
        oauth_error(r, "invalid_signature")
        # the signature the server computed for what was sent is never revealed
        assert latchsign.sign(signer["signing_key"], "POST", "/oauth2/introspect", ts, nonce, real) not in r.text, name
    # a timestamp other than the signed one
    now = int(time.time())
    good = latchsign.header(signer["client_id"], signer["signing_key"], "POST", "/oauth2/introspect", real, ts=now)
    r = w.introspect(signer, sign=False, headers={"latch-signature": good.replace(f"ts={now}", f"ts={now - 1}")})
    oauth_error(r, "invalid_signature")
    # the evaluation body tampered
    r = w.evaluate(signer, sig_body=json.dumps(EVAL_BODY | {"context": {}}).encode())
    oauth_error(r, "invalid_signature")


def test_timestamp_window_both_sides(w, signer):
    now = int(time.time())
    oauth_error(w.introspect(signer, ts=now - 400), "signature_expired")
    oauth_error(w.introspect(signer, ts=now + 400), "signature_expired")
    oauth_error(w.evaluate(signer, ts=now - 10_000), "signature_expired")
    oauth_error(w.introspect(signer, ts=0), "signature_expired")


def test_replay_on_the_same_instance(w, signer):
    nonce = latchsign.new_nonce()
    ts = int(time.time())
    r = w.introspect(signer, ts=ts, nonce=nonce)
    assert r.status_code == 200, r.text
    oauth_error(w.introspect(signer, ts=ts, nonce=nonce), "replayed_request")
    # the same nonce with another timestamp, or on another endpoint, is a replay too
    oauth_error(w.introspect(signer, ts=ts - 1, nonce=nonce), "replayed_request")
    oauth_error(w.evaluate(signer, nonce=nonce), "replayed_request")
    # a refused request does not burn its nonce: a bad signature never reaches the memory
    n2 = latchsign.new_nonce()
    oauth_error(w.introspect(signer, nonce=n2, sig_path="/elsewhere"), "invalid_signature")
    assert w.introspect(signer, nonce=n2).status_code == 200
    # nonces are per client
    other = w.client()
    other = with_key(other, w.enable(other))
    assert lt.wait_for(lambda: w.introspect(other).status_code == 200)
    n3 = latchsign.new_nonce()
    assert w.introspect(signer, nonce=n3).status_code == 200
    assert w.introspect(other, nonce=n3).status_code == 200


def test_malformed_headers(w, signer):
    now = int(time.time())
    good = latchsign.header(signer["client_id"], signer["signing_key"], "POST", "/oauth2/introspect", b"", ts=now)
    cid, key = signer["client_id"], signer["signing_key"]
    sig = latchsign.sign(key, "POST", "/oauth2/introspect", now, "n" * 16)
    bad = [
        "",
        "garbage",
        good + ", extra=1",
        good + f', ts={now}',
        f'keyId="{cid}", ts={now}, nonce="{"n" * 16}"',                          # no sig
        f'keyId="{cid}", ts={now}, nonce="{"n" * 15}", sig="{sig}"',             # nonce too short
        f'keyId="{cid}", ts={now}, nonce="{"n" * 65}", sig="{sig}"',             # nonce too long
        f'keyId="{cid}", ts={now}, nonce="{"n" * 15}!", sig="{sig}"',            # nonce character
        f'keyId="{cid}", ts=+{now}, nonce="{"n" * 16}", sig="{sig}"',            # signed ts
        f'keyId="{cid}", ts=0{now}, nonce="{"n" * 16}", sig="{sig}"',            # leading zero
        f'keyId="{cid}", ts={now}, nonce="{"n" * 16}", sig="{sig}="',            # padded
        f'keyId="{cid}", ts={now}, nonce="{"n" * 16}", sig="{sig[:-1]}"',        # short
        f'keyId="{cid}", ts={now}, nonce="{"n" * 16}", sig="{sig}',              # unterminated
        f'keyId="lc_{"B" * 22}", ts={now}, nonce="{"n" * 16}", sig="{sig}"',     # another client
        f'keyid="{cid}", ts={now}, nonce="{"n" * 16}", sig="{sig}"',             # names are case-sensitive
        "x" * 600,
    ]
    for value in bad:
        r = w.introspect(signer, sign=False, headers={"latch-signature": value})
        oauth_error(r, "invalid_signature")
    # two headers: refused, not merged
    h = dict(lt.client_auth(signer), **{"content-type": FORM})
    body = urllib.parse.urlencode({"token": w.alice}).encode()
    hdrs = list(h.items()) + [("latch-signature", latchsign.header(cid, key, "POST", "/oauth2/introspect", body))] * 2
    r = w.api.c.post("/oauth2/introspect", content=body, headers=hdrs)
    oauth_error(r, "invalid_signature")
    # unquoted values and spacing variants are fine
    n = latchsign.new_nonce()
    s = latchsign.sign(key, "POST", "/oauth2/introspect", now, n, body)
    r = w.introspect(signer, sign=False, headers={"latch-signature": f'sig={s},nonce={n} ,\tts={now},  keyId={cid}'})
    assert r.status_code == 200, r.text


def test_credential_still_checked(w, signer):
    """The signature is in addition to the client's own credential, never instead of it."""
    body = urllib.parse.urlencode({"token": w.alice}).encode()
    hdr = latchsign.header(signer["client_id"], signer["signing_key"], "POST", "/oauth2/introspect", body)
    r = w.api.c.post("/oauth2/introspect", content=body, headers={
        "content-type": FORM, "latch-signature": hdr,
        "authorization": lt.basic_auth(signer["client_id"], "lcs_" + "x" * 43)})
    oauth_error(r, "invalid_client")
    r = w.api.c.post("/oauth2/introspect", content=body, headers={"content-type": FORM, "latch-signature": hdr})
    oauth_error(r, "invalid_client")


def test_unsigned_clients_unaffected(w, signer):
    plain = w.client()
    r = w.introspect(plain, sign=False)
    assert r.status_code == 200 and r.json()["active"] is True
    assert w.evaluate(plain, sign=False).status_code == 200
    # a client with a key that does not require signing may still send unsigned requests
    assert w.introspect(signer, sign=False).status_code == 200
    # but a header that is sent must verify, even when nothing requires it
    oauth_error(w.introspect(plain, key="lsk_" + "A" * 43), "invalid_signature")


def test_required_signing(w, signer):
    w.require(signer, True)
    assert lt.wait_for(lambda: w.introspect(signer, sign=False).status_code == 401), "never required"
    oauth_error(w.introspect(signer, sign=False), "signature_required")
    oauth_error(w.evaluate(signer, sign=False), "signature_required")
    r = w.send(signer, "POST", "/oauth2/token", b"grant_type=client_credentials", sign=False)
    oauth_error(r, "signature_required")
    r = w.send(signer, "GET", "/v1/revocations?since=0", sign=False)
    oauth_error(r, "signature_required")
    assert w.introspect(signer).status_code == 200
    assert w.evaluate(signer).status_code == 200
    details = w.audit("client.signing_requirement_changed", signer["client_id"])
    assert [json.loads(x)["require_signed_requests"] for x in details] == [True]
    # a repeat changes nothing and audits nothing
    w.require(signer, True)
    assert len(w.audit("client.signing_requirement_changed", signer["client_id"])) == 1
    w.require(signer, False)
    assert lt.wait_for(lambda: w.introspect(signer, sign=False).status_code == 200), "never relaxed"


def test_rotation_and_removal(w, signer):
    w.require(signer, True)
    body = w.enable(signer)
    assert body["require_signed_requests"] is True  # kept across a rotation
    assert body["signing_key"] != signer["signing_key"]
    new = with_key(signer, body)
    assert lt.wait_for(lambda: w.introspect(new).status_code == 200), "the new key never reached memory"
    oauth_error(w.introspect(signer), "invalid_signature")  # the old key
    assert len(w.audit("client.signing_key_rotated", signer["client_id"])) == 1
    # rotation may change the requirement too
    body = w.enable(new, require_signed_requests=False)
    assert body["require_signed_requests"] is False
    newer = with_key(signer, body)
    assert lt.wait_for(lambda: w.introspect(newer, sign=False).status_code == 200)
    # removal: back to unsigned; a signature sent anyway is refused
    r = w.api.call("DELETE", SIGNING, url=SIGNING.format(id=signer["client_id"]), token=w.alice)
    assert r.status_code == 204
    assert lt.wait_for(lambda: w.introspect(newer).status_code == 401), "the removal never reached memory"
    oauth_error(w.introspect(newer), "invalid_signature")
    assert w.introspect(newer, sign=False).status_code == 200
    cid = signer["client_id"]
    assert w.sql(f"SELECT signing_key_sealed IS NULL FROM oauth_clients WHERE client_id = '{cid}'") == "t"


def test_shell_recipe_matches_the_signer():
    """The README's openssl recipe computes the same signature as latchsign (and the server)."""
    import subprocess

    key, ts, nonce, body = "lsk_" + "k" * 43, 1700000000, "n0nce-n0nce-n0nce", "token=abc&x=%20y"
    script = (
        'HASH=$(printf \'%s\' "$BODY" | openssl dgst -sha256 -r | cut -d\' \' -f1)\n'
        "printf 'LATCH-HMAC-SHA256\\nPOST\\n/oauth2/introspect\\n%s\\n%s\\n%s' \"$TS\" \"$NONCE\" \"$HASH\" "
        '| openssl dgst -sha256 -mac HMAC -macopt "key:$KEY" -binary | openssl base64 -A '
        "| tr '+/' '-_' | tr -d '='\n"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "KEY": key, "TS": str(ts), "NONCE": nonce, "BODY": body})
    assert out.stdout.strip() == latchsign.sign(key, "POST", "/oauth2/introspect", ts, nonce, body.encode())
