"""MFA (issue 5): TOTP enrolment and its QR code, the validation window and replay rule,
MFA-gated login with TOTP or a recovery code, the challenge's limits, step-up and recent
authentication, tenant policy (off/optional/required) and the enrolment-only token,
administration, and secrets at rest.

Codes are computed independently of latchd: by python3-pyotp and by `oathtool` (Debian's
oath-toolkit). The QR code is rendered to PNG by `rsvg-convert` and read back by `zbarimg`.
Everything goes through lt.ContractApi, so each response is also checked against
proto/openapi.yaml.

A factor accepts each time step at most once, in increasing order (a code whose step is not
newer than the last accepted one is a replay), within +-1 step of now. Factor.code() picks
the oldest step still usable and waits for the next step when all three are used; tests
that need a precise sequence of steps first wait until the current step has room
(wait_for_room) and then name the steps themselves.

Most tests share one latchd (module scope) and make their own tenants and users, so the
lockout (counted per tenant, email and address) of one never reaches another; its
lockout_threshold is high so the wrong codes tests send on purpose never lock anyone. The
lockout itself and recent_auth_window get instances of their own.
"""

import base64
import datetime
import hashlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import uuid

import pyotp
import pytest

import latchtest as lt
from latchtest import problem, strong_password as strong
from test_auth import verify_access_token

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12, lockout_threshold=1000)

MFA_AMR = ["pwd", "otp", "mfa"]
RECOVERY_AMR = ["pwd", "mfa"]
ACR_MFA = "urn:latch:acr:mfa"
RECOVERY_CODE = re.compile(r"^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{10}$")
BASE32_SECRET = re.compile(r"^[A-Z2-7]{32}$")
DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
DEFAULT_SETTINGS = {"mfa": "optional", "totp_algorithm": "SHA1", "totp_digits": 6, "totp_period": 30}


def uniq(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def q(v):
    """A SQL literal (test-controlled values only)."""
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def claims(token):
    return lt.jwt_claims(token["access_token"] if isinstance(token, dict) else token)


def timestamp(s):
    """An RFC 3339 date-time of the API as unix seconds."""
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def wait_for_room(period, need):
    """Returns once the current time step has at least `need` seconds left (waiting for the
    next one if necessary), so a sequence of codes named by step stays in one step."""
    left = period - time.time() % period
    if left < need:
        time.sleep(left + 0.2)


def oathtool(secret, t, algorithm="SHA1", digits=6, period=30):
    """The code of the time step containing unix time `t`, by oathtool."""
    if not shutil.which("oathtool"):
        pytest.skip("oathtool (Debian package oathtool) is not installed")
    mode = "--totp" if algorithm == "SHA1" else f"--totp={algorithm.lower()}"
    p = subprocess.run(["oathtool", mode, "-b", "-d", str(digits), "-s", f"{period}s", "-N", f"@{int(t)}", secret],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


class Factor:
    """A TOTP factor as enrolment answered it, with the codes an authenticator would show."""

    def __init__(self, enrolment):
        self.id = enrolment["factor_id"]
        self.secret = enrolment["secret"]
        self.algorithm = enrolment["algorithm"]
        self.digits = enrolment["digits"]
        self.period = enrolment["period"]
        self.uri = enrolment["otpauth_uri"]
        self.last = None  # the last step a code was handed out for
        self.recovery_codes = None

    def totp(self):
        return pyotp.TOTP(self.secret, digits=self.digits, digest=DIGESTS[self.algorithm], interval=self.period)

    def at(self, step):
        """The code of time step `step` (pyotp)."""
        return self.totp().generate_otp(step)

    def step(self):
        return int(time.time() // self.period)

    def now(self):
        """The current step's code, not marked as used (for answers that must not depend on it)."""
        return self.at(self.step())

    def code(self):
        """A code latchd must accept now: the oldest step of the window newer than the last
        one handed out (the previous step only while more than 3 s of the current one are
        left). Marks that step as used."""
        while True:
            now = time.time()
            cur = int(now // self.period)
            left = (cur + 1) * self.period - now
            for s in ([cur - 1] if left > 3 else []) + [cur, cur + 1]:
                if self.last is None or s > self.last:
                    self.last = s
                    return self.at(s)
            time.sleep(left + 0.2)

    def wrong(self):
        """A well-formed code of no step near now."""
        near = {self.at(self.step() + k) for k in range(-4, 5)}
        for i in range(10 ** self.digits):
            c = str((i * 7919 + 13) % 10 ** self.digits).zfill(self.digits)
            if c not in near:
                return c


class User:
    def __init__(self, body, tenant, password):
        self.id = body["id"]
        self.email = body["email"]
        self.tenant = tenant  # the tenant's name
        self.tenant_id = body["tenant_id"]
        self.password = password


class World(lt.AdminWorld):
    """A latchd with a global admin (root, tenant "ops") and helpers for the MFA surface."""

    # --- tenants and users ---------------------------------------------------------------

    def tenant(self, settings=None, display_name=None):
        body = {"name": uniq("t")}
        if display_name is not None:
            body["display_name"] = display_name
        r = self.api.call("POST", "/v1/admin/tenants", token=self.root, json=body)
        assert r.status_code == 201, r.text
        t = r.json()
        if settings:
            t = self.patch_tenant(t["id"], {"settings": settings})
        return t

    def patch_tenant(self, tid, body, token=None, status=200):
        r = self.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{tid}", token=token or self.root,
                          json=body)
        assert r.status_code == status, r.text
        return r.json()

    def user(self, tenant, roles=(), email=None):
        password = strong()
        body = {"email": email or f"{uniq()}@example.test", "password": password, "tenant_id": tenant["id"],
                "roles": list(roles)}
        r = self.api.call("POST", "/v1/admin/users", token=self.root, json=body)
        assert r.status_code == 201, r.text
        return User(r.json(), tenant["name"], password)

    # --- signing in ----------------------------------------------------------------------

    def login_raw(self, u, password=None):
        return self.api.call("POST", "/v1/auth/login",
                             json={"tenant": u.tenant, "email": u.email, "password": password or u.password})

    def tokens(self, u):
        """A password-only login: the token response."""
        r = self.login_raw(u)
        assert r.status_code == 200 and "access_token" in r.json(), r.text
        return r.json()

    def challenge(self, u):
        """A login that must ask for MFA: its mfa_token."""
        r = self.login_raw(u)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body.get("mfa_required") is True and "access_token" not in body, body
        return body["mfa_token"]

    def verify(self, mfa_token, code=None, recovery_code=None, body=None):
        if body is None:
            body = {"mfa_token": mfa_token}
            if code is not None:
                body["code"] = code
            if recovery_code is not None:
                body["recovery_code"] = recovery_code
        return self.api.call("POST", "/v1/auth/mfa/verify", json=body)

    def mfa_tokens(self, u, f):
        """A full MFA login with a TOTP code: the token response."""
        r = self.verify(self.challenge(u), code=f.code())
        assert r.status_code == 200, r.text
        return r.json()

    def step_up(self, token, code):
        return self.api.call("POST", "/v1/auth/step-up", token=bearer_value(token), json={"code": code})

    # --- factors -------------------------------------------------------------------------

    def enrol_raw(self, token, body=None):
        return self.api.call("POST", "/v1/me/mfa/totp", token=bearer_value(token), json={} if body is None else body)

    def enrol(self, token, label=None):
        r = self.enrol_raw(token, {} if label is None else {"label": label})
        assert r.status_code == 201, r.text
        return Factor(r.json())

    def confirm(self, token, factor, code):
        fid = factor.id if isinstance(factor, Factor) else factor
        return self.api.call("POST", "/v1/me/mfa/totp/{id}/confirm", f"/v1/me/mfa/totp/{fid}/confirm",
                             token=bearer_value(token), json={"code": code})

    def enrolled(self, u, token=None):
        """A confirmed factor of `u` (enrolled with `token`, else with a fresh login's), its
        recovery codes in .recovery_codes."""
        token = token or self.tokens(u)
        f = self.enrol(token)
        r = self.confirm(token, f, f.code())
        assert r.status_code == 200, r.text
        f.recovery_codes = r.json()["recovery_codes"]
        return f

    def my_mfa(self, token):
        r = self.api.call("GET", "/v1/me/mfa", token=bearer_value(token))
        assert r.status_code == 200, r.text
        return r.json()

    def delete_factor(self, token, fid, body=None):
        kw = {} if body is None else {"json": body}
        return self.api.call("DELETE", "/v1/me/mfa/totp/{id}", f"/v1/me/mfa/totp/{fid}", token=bearer_value(token),
                             **kw)

    def regenerate(self, token, body=None):
        kw = {} if body is None else {"json": body}
        return self.api.call("POST", "/v1/me/mfa/recovery-codes", token=bearer_value(token), **kw)

    def sessions(self, token):
        r = self.api.call("GET", "/v1/me/sessions", token=bearer_value(token))
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def current_session(self, token):
        [s] = [s for s in self.sessions(token) if s["current"]]
        return s

    def audit_count(self, event, uid):
        return int(self.sql(f"SELECT count(*) FROM audit_log WHERE event = {q(event)} "
                            f"AND (actor = {q(uid)} OR target = {q(uid)})"))


def bearer_value(token):
    return token["access_token"] if isinstance(token, dict) else token


def make_world(d, openapi):
    w = World(d, lt.ContractApi(d, openapi))
    w.root_pw = strong()
    ops = d.bootstrap("ops", "root@ops.test", w.root_pw, global_admin=True)
    w.root_id = ops["user_id"]
    w.root = w.login("ops", "root@ops.test", w.root_pw)["access_token"]
    return w


@pytest.fixture(scope="module")
def w(db_factory, tls_cert, session_tmp, openapi):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    world = make_world(factory(**SETTINGS), openapi)
    world.acme = world.tenant(display_name="Acme Corp")  # mfa optional (the default)
    yield world
    lt.shut_down(factory, world.api.c)


@pytest.fixture
def own_world(latchd_factory, openapi):
    """own_world(**config) -> a World on a latchd of the test's own."""
    made = []

    def make(**cfg):
        world = make_world(latchd_factory(**dict(SETTINGS, **cfg)), openapi)
        made.append(world)
        return world

    yield make
    for world in made:
        world.api.c.close()


def check_mfa_tokens(w, body, u, amr=MFA_AMR, after=None):
    """A token response of a completed MFA login; returns the verified claims."""
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "session_id"}, body
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("lt_rt_")
    _, c = verify_access_token(w.api, body["access_token"], "ES256")
    assert c["sub"] == u.id and c["sid"] == body["session_id"] and c["tenant"] == u.tenant_id
    assert c["amr"] == amr and c["acr"] == ACR_MFA
    now = time.time()
    assert abs(c["auth_time"] - now) < 30
    if after is not None:
        assert c["auth_time"] >= int(after), "auth_time is older than the MFA that just completed"
    return c


# --- tenant settings --------------------------------------------------------------------------


def test_tenant_settings_defaults_and_patch(w):
    t = w.tenant()
    assert t["settings"] == dict(DEFAULT_SETTINGS, totp_issuer=t["name"])  # no display_name: the name
    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}", token=w.root)
    assert r.status_code == 200 and r.json()["settings"] == t["settings"]

    t = w.patch_tenant(t["id"], {"display_name": "Widgets Ltd"})
    assert t["display_name"] == "Widgets Ltd" and t["settings"]["totp_issuer"] == "Widgets Ltd"
    t = w.patch_tenant(t["id"], {"settings": {"totp_digits": 8, "totp_algorithm": "SHA512"}})
    t = w.patch_tenant(t["id"], {"settings": {"mfa": "required", "totp_period": 45, "totp_issuer": "Widgets SSO"}})
    assert t["settings"] == {"mfa": "required", "totp_algorithm": "SHA512", "totp_digits": 8, "totp_period": 45,
                             "totp_issuer": "Widgets SSO"}  # a patch leaves the other settings alone
    r = w.api.call("GET", "/v1/admin/tenants", token=w.root, params={"limit": 200})
    assert [x["settings"] for x in r.json()["items"] if x["id"] == t["id"]] == [t["settings"]]

    # A tenant admin may change its own tenant, not another (404, as if it did not exist);
    # a user without the admin role may not (403).
    admin = w.user(t, roles=["admin"])
    plain = w.user(t)
    # mfa required: these users have no factor yet; set it back so they can sign in.
    w.patch_tenant(t["id"], {"settings": {"mfa": "optional"}})
    at, pt = w.tokens(admin), w.tokens(plain)
    got = w.patch_tenant(t["id"], {"settings": {"totp_period": 60}}, token=at["access_token"])
    assert got["settings"]["totp_period"] == 60
    r = w.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{w.acme['id']}",
                   token=at["access_token"], json={"settings": {"mfa": "off"}})
    problem(r, 404, "not_found")
    r = w.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}",
                   token=pt["access_token"], json={"settings": {"mfa": "off"}})
    problem(r, 403, "forbidden")
    for tid in (str(uuid.uuid4()), "not-a-uuid"):
        r = w.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{tid}", token=w.root,
                       json={"settings": {"mfa": "off"}})
        problem(r, 404, "not_found")
    r = w.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}",
                   json={"settings": {"mfa": "off"}})
    problem(r, 401, "invalid_token")
    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{w.acme['id']}", token=w.root)
    assert r.json()["settings"]["mfa"] == "optional"


BAD_SETTINGS = [
    ({"settings": {"mfa": "sometimes"}}, "settings.mfa"),
    ({"settings": {"totp_algorithm": "MD5"}}, "settings.totp_algorithm"),
    ({"settings": {"totp_digits": 5}}, "settings.totp_digits"),
    ({"settings": {"totp_digits": 9}}, "settings.totp_digits"),
    ({"settings": {"totp_digits": "6"}}, "settings.totp_digits"),
    ({"settings": {"totp_period": 14}}, "settings.totp_period"),
    ({"settings": {"totp_period": 121}}, "settings.totp_period"),
    ({"settings": {"totp_issuer": ""}}, "settings.totp_issuer"),
    ({"settings": {"totp_issuer": "Acme:Corp"}}, "settings.totp_issuer"),
    ({"settings": {"totp_issuer": "x" * 65}}, "settings.totp_issuer"),
    ({"settings": "required"}, "settings"),
    ({"display_name": 5}, "display_name"),
    ({"display_name": "x" * 201}, "display_name"),
    ({"settings": {"bogus": 1}}, ()),
    ({"name": "renamed"}, ()),
]


@pytest.mark.parametrize("body,field", BAD_SETTINGS, ids=[json.dumps(b)[:48] for b, _ in BAD_SETTINGS])
def test_bad_tenant_patches_are_400(w, body, field):
    t = w.tenant()
    r = w.api.call("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}", token=w.root, json=body)
    problem(r, 400, "invalid_request", field)
    r = w.api.call("GET", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}", token=w.root)
    assert r.json() == t  # nothing changed


# --- enrolment --------------------------------------------------------------------------------


def test_enrolment_gives_a_secret_uri_and_codes_that_match(w):
    u = w.user(w.acme, email=f"{uniq('a+b')}@acme.test")  # '+' and '@' must be percent-encoded
    tok = w.tokens(u)
    r = w.enrol_raw(tok, {"label": "phone"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"factor_id", "secret", "otpauth_uri", "qr_svg", "algorithm", "digits", "period"}
    assert (body["algorithm"], body["digits"], body["period"]) == ("SHA1", 6, 30)
    secret = body["secret"]
    assert BASE32_SECRET.match(secret) and len(base64.b32decode(secret)) == 20  # 160 bits

    uri = body["otpauth_uri"]
    parts = urllib.parse.urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(parts.path) == f"/Acme Corp:{u.email}"
    assert "@" not in parts.path and "+" not in parts.path and " " not in uri
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query == {"secret": secret, "issuer": "Acme Corp", "algorithm": "SHA1", "digits": "6", "period": "30"}

    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.issuer, parsed.name) == (secret, "Acme Corp", u.email)
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")
    f = Factor(body)
    now = time.time()
    for t in (now - 30, now, now + 30, 1700000000):
        assert parsed.at(t) == f.totp().at(t) == oathtool(secret, t)

    # Pending: listed without its secret; login still needs no second factor, step-up has
    # nothing to check against.
    mine = w.my_mfa(tok)
    assert secret not in json.dumps(mine)
    [item] = mine["factors"]
    assert item["id"] == f.id and item["status"] == "pending" and item["label"] == "phone"
    assert mine["recovery_codes_remaining"] == 0
    assert "access_token" in w.login_raw(u).json()
    problem(w.step_up(tok, f.now()), 409, "mfa_not_enrolled")
    # The parsed URI's current code confirms the factor.
    r = w.confirm(tok, f, parsed.now())
    assert r.status_code == 200, r.text


# Not '&', '+' or '%' in these: pyotp.parse_uri unquotes the whole URI before it splits the
# query, so it misreads an issuer that holds one even when the URI encodes it correctly.
@pytest.mark.parametrize("display_name", ["Acme: Corp", "Café Zoë", "é" * 200],
                         ids=["colon", "non-ascii", "200 characters"])
def test_issuer_from_any_display_name(w, display_name, tmp_path):
    """The default issuer is the display name, which may hold what an issuer may not (':')
    or be longer than a set one (64): enrolment still works and apps still read the URI."""
    t = w.tenant(display_name=display_name)
    u = w.user(t)
    r = w.enrol_raw(w.tokens(u))
    assert r.status_code == 201, r.text
    body = r.json()
    issuer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(body["otpauth_uri"]).query))["issuer"]
    assert issuer and ":" not in issuer
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert (parsed.secret, parsed.name, parsed.issuer) == (body["secret"], u.email, issuer)
    assert parsed.now() == Factor(body).now()
    assert read_qr(body["qr_svg"], tmp_path) == body["otpauth_uri"]


def read_qr(svg, tmp_path):
    """The text of the QR code in `svg`: rendered by rsvg-convert, read by zbarimg."""
    missing = [t for t in ("rsvg-convert", "zbarimg") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages librsvg2-bin, zbar-tools): "
                    "cannot render and read the QR code")
    (tmp_path / "qr.svg").write_text(svg)
    p = subprocess.run(["rsvg-convert", "-o", str(tmp_path / "qr.png"), str(tmp_path / "qr.svg")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"zbarimg found no code (exit {p.returncode}): {p.stderr}"
    return p.stdout.rstrip("\n")


def test_qr_svg_decodes_to_the_otpauth_uri(w, tmp_path):
    u = w.user(w.acme)
    r = w.enrol_raw(w.tokens(u))
    assert r.status_code == 201, r.text
    body = r.json()
    svg = body["qr_svg"]
    assert "<svg" in svg and "</svg>" in svg and body["secret"] not in svg.replace(body["otpauth_uri"], "")
    assert read_qr(svg, tmp_path) == body["otpauth_uri"]


def test_codes_of_pyotp_and_oathtool_the_window_and_replay(w):
    """Within one time step T: codes of T-2 and T+2 are refused, T-1 confirms the factor, a
    replay of it is refused, oathtool's code of T completes a login, T+1 steps up, and a
    replay of T+1 or the older T is refused."""
    u = w.user(w.acme)
    tok = w.tokens(u)
    f = w.enrol(tok)
    wait_for_room(f.period, 15)
    t = f.step()
    code = {k: f.at(t + k) for k in range(-2, 3)}
    for k in (-2, 2):
        if code[k] not in (code[-1], code[0], code[1]):  # 1 in 10^6: a collision is not a refusal
            problem(w.confirm(tok, f, code[k]), 400, "invalid_code")
    r = w.confirm(tok, f, code[-1])  # the previous step
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10 and all(RECOVERY_CODE.match(c) for c in codes), codes

    mfa_token = w.challenge(u)
    problem(w.verify(mfa_token, code=code[-1]), 400, "invalid_code")  # replay
    by_oathtool = oathtool(f.secret, t * f.period + 1)
    assert by_oathtool == code[0]
    r = w.verify(mfa_token, code=by_oathtool)  # the current step
    assert r.status_code == 200, r.text
    session = r.json()
    problem(w.verify(mfa_token, code=code[1]), 401, "invalid_mfa_token")  # the challenge is used up

    r = w.step_up(session, code[1])  # the next step
    assert r.status_code == 200, r.text
    problem(w.step_up(session, code[1]), 400, "invalid_code")  # replay
    problem(w.step_up(session, code[0]), 400, "invalid_code")  # not newer than the last accepted
    assert f.step() == t, "the sequence crossed a time-step boundary: its expectations do not hold"


def test_confirm_refuses_bad_codes_and_unknown_factors(w):
    u, other = w.user(w.acme), w.user(w.acme)
    tok, other_tok = w.tokens(u), w.tokens(other)
    f = w.enrol(tok)
    good = f.now()
    for bad in (f.wrong(), good[:5], good + "0", "12345a", " " + good[1:], "\uff11" * 6):
        problem(w.confirm(tok, f, bad), 400, "invalid_code")
    for bad in ("", "1" * 4096):  # not a code at all: either answer is fair
        r = w.confirm(tok, f, bad)
        assert r.status_code == 400 and r.json()["code"] in ("invalid_code", "invalid_request"), r.text
    r = w.api.call("POST", "/v1/me/mfa/totp/{id}/confirm", f"/v1/me/mfa/totp/{f.id}/confirm", token=tok["access_token"],
                   json={})
    problem(r, 400, "invalid_request")
    # Someone else's factor, an unknown one, a malformed id: 404, as if it did not exist.
    for fid in (f.id, str(uuid.uuid4()), "nope"):
        problem(w.confirm(other_tok, fid, good), 404, "not_found")
    assert w.my_mfa(tok)["factors"][0]["status"] == "pending"
    r = w.confirm(tok, f, f.code())
    assert r.status_code == 200, r.text
    problem(w.confirm(tok, f, f.code()), 409, "already_confirmed")
    # Labels: up to 64 characters.
    problem(w.enrol_raw(tok, {"label": "x" * 65}), 400, "invalid_request", "label")
    problem(w.enrol_raw(tok, {"label": 5}), 400, "invalid_request", "label")
    assert w.enrol_raw(tok, {"label": "x" * 64}).status_code == 201


def test_enrolment_needs_an_access_token(w):
    u = w.user(w.acme)
    f = w.enrolled(u)
    mfa_token = w.challenge(u)
    for token in (None, "nonsense", mfa_token, "lt_mf_" + "A" * 43):
        r = w.api.call("POST", "/v1/me/mfa/totp", token=token, json={})
        problem(r, 401, "invalid_token")
        problem(w.api.call("GET", "/v1/me/mfa", token=token), 401, "invalid_token")
        r = w.api.call("POST", "/v1/me/mfa/totp/{id}/confirm", f"/v1/me/mfa/totp/{f.id}/confirm", token=token,
                       json={"code": f.now()})
        problem(r, 401, "invalid_token")
    # The challenge was not spent by being shown as a bearer.
    assert w.verify(mfa_token, code=f.code()).status_code == 200


def test_sha256_eight_digits_sixty_seconds(w):
    t = w.tenant(settings={"totp_algorithm": "SHA256", "totp_digits": 8, "totp_period": 60})
    u = w.user(t)
    tok = w.tokens(u)
    r = w.enrol_raw(tok)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["algorithm"], body["digits"], body["period"]) == ("SHA256", 8, 60)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(body["otpauth_uri"]).query))
    assert (query["algorithm"], query["digits"], query["period"], query["issuer"]) == ("SHA256", "8", "60", t["name"])
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (8, 60, "sha256")
    f = Factor(body)
    assert parsed.now() == f.now() and len(f.now()) == 8

    wait_for_room(f.period, 15)
    step = f.step()
    code8 = f.at(step)
    assert oathtool(f.secret, step * 60 + 1, "SHA256", 8, 60) == code8
    # The 6-digit code of the same HMAC is the last 6 digits of the 8-digit one: liboath would
    # take it if the length were not checked.
    problem(w.confirm(tok, f, code8[2:]), 400, "invalid_code")
    sha1 = pyotp.TOTP(f.secret, digits=8, digest=hashlib.sha1, interval=60).at(step * 60)
    if sha1 != code8:
        problem(w.confirm(tok, f, sha1), 400, "invalid_code")  # the wrong algorithm
    f.last = step
    r = w.confirm(tok, f, code8)  # refusals did not use up the step
    assert r.status_code == 200, r.text

    # The factor keeps its parameters when the tenant's change.
    w.patch_tenant(t["id"], {"settings": {"totp_algorithm": "SHA1", "totp_digits": 6, "totp_period": 30}})
    [item] = w.my_mfa(tok)["factors"]
    assert (item["algorithm"], item["digits"], item["period"], item["status"]) == ("SHA256", 8, 60, "active")
    mfa_token = w.challenge(u)
    f.last = step + 1
    r = w.verify(mfa_token, code=oathtool(f.secret, (step + 1) * 60 + 1, "SHA256", 8, 60))
    assert r.status_code == 200, r.text


def test_too_many_factors(w):
    u = w.user(w.acme)
    tok = w.tokens(u)
    for _ in range(5):
        w.enrolled(u, tok)
    assert [x["status"] for x in w.my_mfa(tok)["factors"]] == ["active"] * 5
    problem(w.enrol_raw(tok), 409, "too_many_factors")


# --- login with MFA ---------------------------------------------------------------------------


def test_full_login_with_totp(w):
    u = w.user(w.acme)
    before = w.tokens(u)  # a password-only session, from before the factor
    f = w.enrolled(u, before)
    assert w.current_session(before)["mfa_method"] is None

    r = w.login_raw(u)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"mfa_required", "mfa_token", "methods", "expires_in"}, body
    assert body["mfa_required"] is True and body["methods"] == ["totp", "recovery_code"]
    assert body["expires_in"] == 300 and body["mfa_token"].startswith("lt_mf_")
    assert r.headers["cache-control"] == "no-store"
    started = time.time()
    r = w.verify(body["mfa_token"], code=f.code())
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    tokens = r.json()
    c = check_mfa_tokens(w, tokens, u, after=started - 1)

    s = w.current_session(tokens)
    assert s["id"] == tokens["session_id"] and s["amr"] == MFA_AMR and s["mfa_method"] == "totp"
    assert abs(timestamp(s["auth_time"]) - c["auth_time"]) < 1.5
    assert [x["mfa_method"] for x in w.sessions(tokens) if x["id"] == before["session_id"]] == [None]
    me = w.api.call("GET", "/v1/me", token=tokens["access_token"]).json()
    assert me["id"] == u.id and me["mfa_enrolled"] is True and me["session_id"] == tokens["session_id"]
    # A refresh keeps what the session was authenticated with.
    r = w.api.call("POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    rc = claims(r.json())
    assert rc["amr"] == MFA_AMR and rc["acr"] == ACR_MFA and rc["auth_time"] == c["auth_time"]
    assert w.sql(f"SELECT amr::text FROM sessions WHERE id = {q(tokens['session_id'])}") == "{pwd,otp,mfa}"


def test_login_with_a_recovery_code(w):
    u = w.user(w.acme)
    f = w.enrolled(u)
    codes = f.recovery_codes
    audited = w.audit_count("mfa.recovery_code_used", u.id)

    typed = codes[0][:5].lower() + "-" + codes[0][5:].lower()  # case and a '-' do not matter
    r = w.verify(w.challenge(u), recovery_code=typed)
    assert r.status_code == 200, r.text
    tokens = r.json()
    check_mfa_tokens(w, tokens, u, amr=RECOVERY_AMR)
    s = w.current_session(tokens)
    assert s["mfa_method"] == "recovery_code" and s["amr"] == RECOVERY_AMR
    assert w.audit_count("mfa.recovery_code_used", u.id) == audited + 1
    assert w.my_mfa(tokens)["recovery_codes_remaining"] == 9

    # Single use, however it is typed.
    mfa_token = w.challenge(u)
    for again in (codes[0], typed, codes[0].lower()):
        body = problem(w.verify(mfa_token, recovery_code=again), 400, "invalid_code")
        assert isinstance(body["attempts_remaining"], int)
    problem(w.verify(w.challenge(u), recovery_code="23456789AB" if "23456789AB" not in codes else "3456789ABC"),
            400, "invalid_code")
    problem(w.verify(w.challenge(u), recovery_code="not a code"), 400, "invalid_code")
    spaced = " ".join([codes[1][:5].lower(), codes[1][5:]])
    r = w.verify(w.challenge(u), recovery_code=spaced)
    assert r.status_code == 200, r.text
    assert w.my_mfa(r.json())["recovery_codes_remaining"] == 8
    assert w.audit_count("mfa.recovery_code_used", u.id) == audited + 2
    # A recovery code does not count as a TOTP code.
    problem(w.verify(w.challenge(u), code=codes[2]), 400, "invalid_code")


def test_verify_input_errors(w):
    u = w.user(w.acme)
    f = w.enrolled(u)
    mfa_token = w.challenge(u)
    for body in ({"mfa_token": mfa_token, "code": f.now(), "recovery_code": f.recovery_codes[0]},
                 {"mfa_token": mfa_token},
                 {"code": f.now()},
                 {"mfa_token": mfa_token, "code": 123456},
                 {"mfa_token": mfa_token, "code": f.now(), "extra": 1}):
        problem(w.verify(None, body=body), 400, "invalid_request")
    for token in ("lt_mf_" + "A" * 43, "lt_rt_" + "A" * 43, mfa_token + "A", "nonsense", ""):
        r = w.verify(token, code=f.now())
        assert (r.status_code, r.json()["code"]) in ((401, "invalid_mfa_token"), (400, "invalid_request")), r.text
    problem(w.verify("lt_mf_" + "B" * 43, code=f.now()), 401, "invalid_mfa_token")
    r = w.verify(mfa_token, code=f.code())  # none of that spent the challenge
    assert r.status_code == 200, r.text


def test_a_challenge_allows_five_attempts(w):
    u = w.user(w.acme)
    f = w.enrolled(u)
    mfa_token = w.challenge(u)
    for left in (4, 3, 2, 1, 0):
        body = problem(w.verify(mfa_token, code=f.wrong()), 400, "invalid_code")
        assert body["attempts_remaining"] == left
    problem(w.verify(mfa_token, code=f.now()), 401, "invalid_mfa_token")  # the 6th: whatever the code
    problem(w.verify(mfa_token, recovery_code=f.recovery_codes[0]), 401, "invalid_mfa_token")
    assert w.my_mfa(w.verify(w.challenge(u), code=f.code()).json())["recovery_codes_remaining"] == 10


def test_a_challenge_expires_and_is_single_use(w):
    u = w.user(w.acme)
    f = w.enrolled(u)
    mfa_token = w.challenge(u)
    n = w.sql("WITH x AS (UPDATE one_time_tokens SET expires_at = now() - interval '1 second' "
              f"WHERE user_id = {q(u.id)} AND purpose = 'mfa_challenge' AND used_at IS NULL RETURNING 1) "
              "SELECT count(*) FROM x")
    assert n == "1", "expected the challenge as one row of one_time_tokens with purpose 'mfa_challenge'"
    problem(w.verify(mfa_token, code=f.now()), 401, "invalid_mfa_token")

    mfa_token = w.challenge(u)
    r = w.verify(mfa_token, code=f.code())
    assert r.status_code == 200, r.text
    problem(w.verify(mfa_token, code=f.code()), 401, "invalid_mfa_token")
    problem(w.verify(mfa_token, recovery_code=f.recovery_codes[0]), 401, "invalid_mfa_token")
    # A challenge is bound to its user: another user's code does not complete it.
    other = w.user(w.acme)
    g = w.enrolled(other)
    mfa_token = w.challenge(u)
    problem(w.verify(mfa_token, code=g.now()), 400, "invalid_code")
    problem(w.verify(mfa_token, recovery_code=g.recovery_codes[0]), 400, "invalid_code")


def test_wrong_codes_count_toward_the_lockout(own_world):
    w = own_world(lockout_threshold=3, lockout_window=60, lockout_duration=60)
    t = w.tenant()
    u = w.user(t)
    f = w.enrolled(u)
    mfa_token = w.challenge(u)
    for _ in range(3):
        problem(w.verify(mfa_token, code=f.wrong()), 400, "invalid_code")
    r = w.verify(mfa_token, code=f.now())
    problem(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) >= 1
    problem(w.login_raw(u), 429, "too_many_attempts")

    # ...and so do wrong codes at confirmation.
    v = w.user(t)
    tok = w.tokens(v)
    g = w.enrol(tok)
    for _ in range(3):
        problem(w.confirm(tok, g, g.wrong()), 400, "invalid_code")
    r = w.confirm(tok, g, g.now())
    problem(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) >= 1
    problem(w.login_raw(v), 429, "too_many_attempts")


def test_challenge_settings_are_configurable(own_world):
    w = own_world(mfa_challenge_ttl=1, mfa_enrollment_ttl=1, mfa_challenge_attempts=2, totp_window=0)
    t = w.tenant()
    u = w.user(t)
    tok = w.tokens(u)
    f = w.enrol(tok)
    # totp_window 0: only the current step.
    wait_for_room(f.period, 5)
    step = f.step()
    for k in (-1, 1):
        if f.at(step + k) != f.at(step):
            problem(w.confirm(tok, f, f.at(step + k)), 400, "invalid_code")
    f.last = step
    assert w.confirm(tok, f, f.at(step)).status_code == 200

    r = w.login_raw(u)
    assert r.json()["expires_in"] == 1
    mfa_token = r.json()["mfa_token"]
    assert problem(w.verify(mfa_token, code=f.wrong()), 400, "invalid_code")["attempts_remaining"] == 1
    assert problem(w.verify(mfa_token, code=f.wrong()), 400, "invalid_code")["attempts_remaining"] == 0
    problem(w.verify(mfa_token, code=f.now()), 401, "invalid_mfa_token")
    mfa_token = w.challenge(u)
    time.sleep(1.5)
    problem(w.verify(mfa_token, code=f.now()), 401, "invalid_mfa_token")

    w.patch_tenant(t["id"], {"settings": {"mfa": "required"}})
    r = w.login_raw(w.user(t))
    assert r.json()["expires_in"] == 1
    time.sleep(1.5)
    problem(w.enrol_raw(r.json()["enrollment_token"]), 401, "invalid_token")


# --- step-up and recent authentication --------------------------------------------------------


def test_step_up_raises_auth_time_and_amr(w):
    u = w.user(w.acme)
    pw = w.tokens(u)
    c0 = claims(pw)
    assert c0["amr"] == ["pwd"]
    problem(w.step_up(pw, "123456"), 409, "mfa_not_enrolled")
    f = w.enrolled(u, pw)

    time.sleep(1.1)
    code = f.code()
    r = w.step_up(pw, code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "session_id"}, body
    assert body["session_id"] == pw["session_id"] and body["token_type"] == "Bearer"
    _, c1 = verify_access_token(w.api, body["access_token"], "ES256")
    assert c1["sid"] == c0["sid"] and c1["sub"] == u.id
    assert c1["auth_time"] > c0["auth_time"]
    assert c1["amr"] == MFA_AMR and c1["acr"] == ACR_MFA
    problem(w.step_up(body, code), 400, "invalid_code")  # replay
    problem(w.step_up(body, f.wrong()), 400, "invalid_code")
    problem(w.step_up(body, f.recovery_codes[0]), 400, "invalid_code")

    # The session moved with it: its listing and later refreshes carry the new auth_time.
    s = w.current_session(body)
    assert abs(timestamp(s["auth_time"]) - c1["auth_time"]) < 1.5
    r = w.api.call("POST", "/v1/auth/refresh", json={"refresh_token": pw["refresh_token"]})
    assert r.status_code == 200, r.text
    assert claims(r.json())["auth_time"] == c1["auth_time"]

    problem(w.api.call("POST", "/v1/auth/step-up", json={"code": f.now()}), 401, "invalid_token")
    problem(w.api.call("POST", "/v1/auth/step-up", token=body["access_token"], json={}), 400, "invalid_request")


def age_session(w, sid, seconds=3600):
    w.sql(f"UPDATE sessions SET auth_time = now() - interval '{int(seconds)} seconds' WHERE id = {q(sid)}")


def test_recent_authentication_guards_factor_removal_and_new_codes(w):
    u = w.user(w.acme)
    tok = w.tokens(u)
    f = w.enrolled(u, tok)
    age_session(w, tok["session_id"])

    problem(w.delete_factor(tok, f.id), 403, "reauthentication_required")
    problem(w.regenerate(tok), 403, "reauthentication_required")
    problem(w.delete_factor(tok, f.id, {"current_password": "not the password at all"}), 403, "invalid_credentials")
    problem(w.regenerate(tok, {"current_password": "not the password at all"}), 403, "invalid_credentials")
    assert [x["status"] for x in w.my_mfa(tok)["factors"]] == ["active"]

    r = w.regenerate(tok, {"current_password": u.password})
    assert r.status_code == 200, r.text
    fresh = r.json()["recovery_codes"]
    assert len(fresh) == 10 and all(RECOVERY_CODE.match(c) for c in fresh)

    # A step-up makes the session recent again.
    r = w.step_up(tok, f.code())
    assert r.status_code == 200, r.text
    stepped = r.json()
    r = w.regenerate(stepped)
    assert r.status_code == 200, r.text
    r = w.delete_factor(stepped, f.id)
    assert r.status_code == 204, r.text

    # With the password instead of a recent sign-in.
    g = w.enrolled(u, stepped)
    age_session(w, tok["session_id"])
    problem(w.delete_factor(stepped, g.id), 403, "reauthentication_required")
    r = w.delete_factor(stepped, g.id, {"current_password": u.password})
    assert r.status_code == 204, r.text


def test_recent_auth_window_is_configurable(own_world):
    w = own_world(recent_auth_window=3)
    u = w.user(w.tenant())
    tok = w.tokens(u)
    f = w.enrolled(u, tok)
    assert w.regenerate(tok).status_code == 200
    time.sleep(3.5)
    problem(w.regenerate(tok), 403, "reauthentication_required")
    r = w.step_up(tok, f.code())
    assert r.status_code == 200, r.text
    assert w.regenerate(r.json()).status_code == 200


# --- factors and recovery codes ---------------------------------------------------------------


def test_factor_listing_regeneration_and_removal(w):
    u = w.user(w.acme)
    tok = w.tokens(u)
    assert w.my_mfa(tok) == {"factors": [], "recovery_codes_remaining": 0}
    f = w.enrol(tok, label="phone")
    mine = w.my_mfa(tok)
    [item] = mine["factors"]
    assert set(item) == {"id", "type", "label", "status", "algorithm", "digits", "period", "created_at",
                         "confirmed_at", "last_used_at"}
    assert (item["id"], item["type"], item["label"], item["status"]) == (f.id, "totp", "phone", "pending")
    assert (item["algorithm"], item["digits"], item["period"]) == ("SHA1", 6, 30)
    assert item["confirmed_at"] is None and item["last_used_at"] is None
    problem(w.regenerate(tok), 409, "mfa_not_enrolled")  # a pending factor is not enrolled

    r = w.confirm(tok, f, f.code())
    assert r.status_code == 200, r.text
    first = r.json()["recovery_codes"]
    mine = w.my_mfa(tok)
    assert mine["factors"][0]["status"] == "active" and mine["factors"][0]["confirmed_at"] is not None
    assert mine["recovery_codes_remaining"] == 10
    assert f.secret not in json.dumps(mine)

    r = w.regenerate(tok)
    assert r.status_code == 200, r.text
    second = r.json()["recovery_codes"]
    assert len(second) == 10 and not set(first) & set(second)
    problem(w.verify(w.challenge(u), recovery_code=first[0]), 400, "invalid_code")  # the old ones died
    r = w.verify(w.challenge(u), recovery_code=second[0])
    assert r.status_code == 200, r.text
    assert w.my_mfa(tok)["recovery_codes_remaining"] == 9

    # Removing the only active factor takes the recovery codes with it.
    assert w.delete_factor(tok, f.id).status_code == 204
    assert w.my_mfa(tok) == {"factors": [], "recovery_codes_remaining": 0}
    assert "access_token" in w.login_raw(u).json()
    for fid in (f.id, str(uuid.uuid4()), "nope"):
        problem(w.delete_factor(tok, fid), 404, "not_found")
    # Another user's factor: 404 too.
    other = w.user(w.acme)
    g = w.enrolled(other)
    problem(w.delete_factor(tok, g.id), 404, "not_found")


# --- tenant policy ------------------------------------------------------------------------------


def test_required_tenant_enrolment_token(w):
    t = w.tenant(settings={"mfa": "required"})
    u = w.user(t, roles=["admin"])  # an admin, so 401 (not 403) shows the token is refused
    r = w.login_raw(u)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"mfa_enrollment_required", "enrollment_token", "expires_in"}, body
    assert body["mfa_enrollment_required"] is True and body["expires_in"] == 900
    et = body["enrollment_token"]
    assert et.startswith("lt_mf_")

    refused = [
        ("GET", "/v1/me", "/v1/me", None),
        ("GET", "/v1/me/mfa", "/v1/me/mfa", None),
        ("GET", "/v1/me/sessions", "/v1/me/sessions", None),
        ("POST", "/v1/auth/step-up", "/v1/auth/step-up", {"code": "123456"}),
        ("POST", "/v1/me/mfa/recovery-codes", "/v1/me/mfa/recovery-codes", {"current_password": u.password}),
        ("POST", "/v1/me/password", "/v1/me/password", {"current_password": u.password, "new_password": strong()}),
        ("GET", "/v1/admin/users", "/v1/admin/users", None),
        ("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{u.id}", None),
        ("DELETE", "/v1/admin/users/{id}/mfa", f"/v1/admin/users/{u.id}/mfa", None),
        ("PATCH", "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{t['id']}", {"settings": {"mfa": "off"}}),
        ("POST", "/v1/me/logout-all", "/v1/me/logout-all", None),
        ("POST", "/v1/auth/logout", "/v1/auth/logout", None),
    ]
    for method, template, url, body in refused:
        kw = {} if body is None else {"json": body}
        r = w.api.call(method, template, url, token=et, **kw)
        problem(r, 401, "invalid_token")
    problem(w.verify(et, code="123456"), 401, "invalid_mfa_token")  # not a challenge either

    f = w.enrol(et)
    problem(w.confirm(et, f, f.wrong()), 400, "invalid_code")
    problem(w.delete_factor(et, f.id, {"current_password": u.password}), 401, "invalid_token")
    started = time.time()
    r = w.confirm(et, f, f.code())
    assert r.status_code == 200, r.text
    done = r.json()
    assert set(done) == {"factor_id", "recovery_codes", "access_token", "token_type", "expires_in", "refresh_token",
                         "session_id"}, done
    assert done["factor_id"] == f.id and len(done["recovery_codes"]) == 10
    tokens = {k: done[k] for k in ("access_token", "token_type", "expires_in", "refresh_token", "session_id")}
    check_mfa_tokens(w, tokens, u, after=started - 1)
    assert w.current_session(tokens)["mfa_method"] == "totp"
    me = w.api.call("GET", "/v1/me", token=tokens["access_token"]).json()
    assert me["mfa_enrolled"] is True
    # The enrolment token is used up.
    problem(w.enrol_raw(et), 401, "invalid_token")

    # From now on login asks for the factor.
    r = w.verify(w.challenge(u), code=f.code())
    assert r.status_code == 200, r.text
    # The admin token of that login works on the admin surface.
    r = w.api.call("GET", "/v1/admin/users/{id}", f"/v1/admin/users/{u.id}", token=r.json()["access_token"])
    assert r.status_code == 200 and r.json()["mfa_enrolled"] is True

    # An expired enrolment token is refused.
    v = w.user(t)
    et = w.login_raw(v).json()["enrollment_token"]
    n = w.sql("WITH x AS (UPDATE one_time_tokens SET expires_at = now() - interval '1 second' "
              f"WHERE user_id = {q(v.id)} AND purpose LIKE 'mfa%' AND used_at IS NULL RETURNING 1) "
              "SELECT count(*) FROM x")
    assert n == "1", "expected the enrolment token as one row of one_time_tokens"
    problem(w.enrol_raw(et), 401, "invalid_token")


def test_off_tenant_never_asks_and_refuses_enrolment(w):
    t = w.tenant()
    u, v = w.user(t), w.user(t)
    f = w.enrolled(u)
    w.challenge(u)  # optional: the factor is asked for
    w.patch_tenant(t["id"], {"settings": {"mfa": "off"}})
    r = w.login_raw(u)
    assert r.status_code == 200 and "access_token" in r.json(), r.text
    tokens = r.json()
    assert claims(tokens)["amr"] == ["pwd"]
    problem(w.enrol_raw(tokens), 403, "mfa_disabled")
    problem(w.enrol_raw(w.tokens(v)), 403, "mfa_disabled")
    w.patch_tenant(t["id"], {"settings": {"mfa": "optional"}})
    assert w.verify(w.challenge(u), code=f.code()).status_code == 200


# --- administration -----------------------------------------------------------------------------


def test_admin_resets_a_users_mfa(w):
    t = w.tenant()
    admin = w.user(t, roles=["admin"])
    u = w.user(t)
    at = w.tokens(admin)["access_token"]
    url = f"/v1/admin/users/{u.id}"

    def admin_view():
        r = w.api.call("GET", "/v1/admin/users/{id}", url, token=at)
        assert r.status_code == 200, r.text
        return r

    assert admin_view().json()["mfa_enrolled"] is False
    tok = w.tokens(u)
    assert w.api.call("GET", "/v1/me", token=tok["access_token"]).json()["mfa_enrolled"] is False
    f = w.enrolled(u, tok)
    r = admin_view()
    assert r.json()["mfa_enrolled"] is True and f.secret not in r.text
    r = w.api.call("GET", "/v1/admin/users", token=at, params={"limit": 200})
    assert {x["id"]: x["mfa_enrolled"] for x in r.json()["items"]} == {admin.id: False, u.id: True}
    assert f.secret not in r.text
    r = w.api.call("GET", "/v1/me", token=tok["access_token"])
    assert r.json()["mfa_enrolled"] is True and f.secret not in r.text

    # Only an admin of the user's tenant (or a global one); elsewhere 404, without the role 403.
    other_admin = w.user(w.tenant(), roles=["admin"])
    r = w.api.call("DELETE", "/v1/admin/users/{id}/mfa", url + "/mfa", token=w.tokens(other_admin)["access_token"])
    problem(r, 404, "not_found")
    r = w.api.call("DELETE", "/v1/admin/users/{id}/mfa", url + "/mfa", token=tok["access_token"])
    problem(r, 403, "forbidden")
    for uid in (str(uuid.uuid4()), "nope"):
        r = w.api.call("DELETE", "/v1/admin/users/{id}/mfa", f"/v1/admin/users/{uid}/mfa", token=at)
        problem(r, 404, "not_found")
    problem(w.api.call("DELETE", "/v1/admin/users/{id}/mfa", url + "/mfa"), 401, "invalid_token")
    w.challenge(u)  # still enrolled

    audited = w.audit_count("mfa.reset", u.id)
    r = w.api.call("DELETE", "/v1/admin/users/{id}/mfa", url + "/mfa", token=at)
    assert r.status_code == 204 and r.content == b"", r.text
    assert w.audit_count("mfa.reset", u.id) == audited + 1
    assert admin_view().json()["mfa_enrolled"] is False
    fresh = w.tokens(u)  # no second factor any more
    assert w.my_mfa(fresh) == {"factors": [], "recovery_codes_remaining": 0}
    # The old recovery codes went with the factor: they do not complete a later login.
    w.enrolled(u, fresh)
    problem(w.verify(w.challenge(u), recovery_code=f.recovery_codes[0]), 400, "invalid_code")
    # A global admin may reset too.
    r = w.api.call("DELETE", "/v1/admin/users/{id}/mfa", url + "/mfa", token=w.root)
    assert r.status_code == 204, r.text
    again = w.login_raw(u).json()
    assert "access_token" in again
    assert w.my_mfa(again) == {"factors": [], "recovery_codes_remaining": 0}


# --- secrets at rest ------------------------------------------------------------------------------


def all_rows_as_owner(w):
    """Every row of every table of latchd's database, as JSON text, read as the owner role."""
    info = dict(kv.split("=", 1) for kv in w.d.config["database_url"].split())

    def sql(query):
        return lt.psql(info["host"], query, db=info["dbname"], user="latch_owner")

    tables = sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    assert "mfa_factors" in tables, tables
    dump = {t: sql(f'SELECT coalesce(string_agg(row_to_json(x)::text, E\'\\n\'), \'\') FROM "{t}" x')
            for t in tables}
    return sql, dump


def test_no_plaintext_secret_or_recovery_code_is_stored_or_logged(w):
    u = w.user(w.acme)
    tok = w.tokens(u)
    f = w.enrolled(u, tok)
    pending = w.enrol(tok)  # a pending factor's secret is sealed too
    sql, dump = all_rows_as_owner(w)

    rows = sql(f"SELECT row_to_json(f)::text FROM mfa_factors f WHERE user_id = {q(u.id)}").splitlines()
    assert len(rows) == 2, rows
    for secret in (f.secret, pending.secret):
        raw = base64.b32decode(secret)
        needles = [secret, secret.lower(), raw.hex(), base64.b64encode(raw).decode().rstrip("="),
                   base64.urlsafe_b64encode(raw).decode().rstrip("=")]
        for row in rows:
            for n in needles:
                assert n.lower() not in row.lower(), f"the factor row holds the secret in the clear ({n}): {row}"
        for table, text in dump.items():
            for n in needles:
                assert n.lower() not in text.lower(), f"table {table} holds a TOTP secret in the clear"
    for code in f.recovery_codes:
        for table, text in dump.items():
            assert code not in text.upper(), f"table {table} holds a recovery code in the clear"
    logs = w.d.stderr_text() + "\n".join(w.d.access_log_lines()) + w.d.stdout_text()
    for n in [f.secret, pending.secret, *f.recovery_codes]:
        assert n not in logs, "a secret reached latchd's logs"
