"""`latchctl bootstrap`, `latchctl hash-password` and the admin seeding of deploy/dev/up
(latch_seed_admin in deploy/lib/common.sh), run as operators run them: real processes against
a migrated database, then a real login over HTTP/2 with what they made.

Exit statuses under test (latchctl bootstrap --help): 0 created, 1 error, 2 usage or invalid
argument, 3 the tenant already has users (nothing changed), 4 the policy refused the password.
"""

import concurrent.futures
import json
import os
import re
import secrets
import stat
import subprocess

import pytest

import latchtest as lt

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0,
                password_min_length=12)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def strong():
    return "Ax9!" + secrets.token_urlsafe(15)


def sql(d, query):
    info = dict(kv.split("=", 1) for kv in d.config["database_url"].split())
    return lt.psql(info["host"], query, db=info["dbname"], user="postgres")


def bootstrap(d, *args, password=None, stdin=None):
    return d.latchctl("bootstrap", *args, input=stdin if stdin is not None else password + "\n")


def login(d, openapi, tenant, email, password):
    with d.h2c() as c:
        r = c.post("/v1/auth/login", json={"tenant": tenant, "email": email, "password": password})
        openapi.check_response("POST", "/v1/auth/login", r)
    return r


def admin_get(d, openapi, token, template, url):
    with d.h2c() as c:
        r = c.get(url, headers=lt.bearer(token))
        openapi.check_response("GET", template, r)
    return r


@pytest.fixture
def d(latchd_factory):
    return latchd_factory(**SETTINGS)


# --- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_creates_tenant_and_admin(d, openapi):
    pw = strong()
    p = bootstrap(d, "--tenant", "acme", "--email", " Boss@Acme.test ", "--display-name", "Acme Inc", password=pw)
    assert p.returncode == 0, p.stderr
    out = dict(line.split("=", 1) for line in p.stdout.splitlines())
    assert set(out) == {"tenant_id", "user_id"} and all(UUID.match(v) for v in out.values())
    assert pw not in p.stdout + p.stderr

    r = login(d, openapi, "acme", "boss@acme.test", pw)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = admin_get(d, openapi, token, "/v1/admin/users/{id}", f"/v1/admin/users/{out['user_id']}")
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["email"] == "Boss@Acme.test" and u["roles"] == ["admin"] and u["status"] == "active"
    assert u["tenant_id"] == out["tenant_id"] and u["tenant"] == "acme"
    r = admin_get(d, openapi, token, "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{out['tenant_id']}")
    assert r.json()["display_name"] == "Acme Inc"

    assert sql(d, "SELECT event || ' ' || actor || ' ' || target FROM audit_log WHERE actor = 'latchctl' "
                  "ORDER BY id") == "\n".join([
        f"tenant.created latchctl {out['tenant_id']}",
        f"user.created latchctl {out['user_id']}"])
    # hashed with the configured parameters
    assert sql(d, f"SELECT phc FROM credentials WHERE user_id = '{out['user_id']}'").startswith(
        "$argon2id$v=19$m=1024,t=1,p=1$")
    p = d.latchctl("audit", "verify")
    assert p.returncode == 0 and "intact" in p.stdout, p.stdout + p.stderr


def test_bootstrap_global_admin(d, openapi):
    pw = strong()
    out = d.bootstrap("ops", "root@ops.test", pw, global_admin=True)
    token = login(d, openapi, "ops", "root@ops.test", pw).json()["access_token"]
    r = admin_get(d, openapi, token, "/v1/admin/users/{id}", f"/v1/admin/users/{out['user_id']}")
    assert r.json()["roles"] == ["admin", "global_admin"]
    # a global admin sees other tenants
    other = d.bootstrap("other", "x@other.test", strong())
    r = admin_get(d, openapi, token, "/v1/admin/tenants/{id}", f"/v1/admin/tenants/{other['tenant_id']}")
    assert r.status_code == 200


def test_bootstrap_again_exits_3_and_changes_nothing(d):
    d.bootstrap("acme", "boss@acme.test", strong())
    before = sql(d, "SELECT count(*) FROM users") + "/" + sql(d, "SELECT count(*) FROM audit_log")
    for email in ("boss@acme.test", "someone-else@acme.test"):
        p = bootstrap(d, "--tenant", "acme", "--email", email, "--global", password=strong())
        assert p.returncode == 3, p.stderr
        assert "tenant acme already bootstrapped" in p.stderr and p.stdout == ""
    assert sql(d, "SELECT count(*) FROM users") + "/" + sql(d, "SELECT count(*) FROM audit_log") == before


def test_bootstrap_gives_an_empty_tenant_its_first_admin(d, openapi):
    root_pw = strong()
    d.bootstrap("ops", "root@ops.test", root_pw, global_admin=True)
    token = login(d, openapi, "ops", "root@ops.test", root_pw).json()["access_token"]
    with d.h2c() as c:
        r = c.post("/v1/admin/tenants", json={"name": "fresh"}, headers=lt.bearer(token))
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    pw = strong()
    out = d.bootstrap("fresh", "first@fresh.test", pw)
    assert out["tenant_id"] == tid
    assert sql(d, "SELECT count(*) FROM audit_log WHERE event = 'tenant.created' AND target = '" + tid + "'") == "1"
    assert login(d, openapi, "fresh", "first@fresh.test", pw).status_code == 200


@pytest.mark.parametrize("password,reason", [
    ("short", "at least 12 characters"),
    ("aaaaaaaaaaaaaaaa", "palindrome"),
    ("boss@acme.test1", "similar"),
])
def test_bootstrap_applies_the_password_policy(d, password, reason):
    p = bootstrap(d, "--tenant", "acme", "--email", "boss@acme.test", password=password)
    assert p.returncode == 4, p.stderr
    assert "refused by the policy" in p.stderr and reason in p.stderr
    assert password not in p.stderr
    assert sql(d, "SELECT count(*) FROM tenants") == "0"


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n", "x" * 1025 + "\n"], ids=["eof", "empty", "crlf", "long"])
def test_bootstrap_needs_a_password_line(d, stdin):
    p = bootstrap(d, "--tenant", "acme", "--email", "boss@acme.test", stdin=stdin)
    assert p.returncode == 1, p.stderr
    assert "password" in p.stderr
    assert sql(d, "SELECT count(*) FROM tenants") == "0"


def test_bootstrap_takes_the_first_line_without_its_line_end(d, openapi):
    pw = strong()
    p = bootstrap(d, "--tenant", "acme", "--email", "boss@acme.test", stdin=pw + "\r\nsecond line\n")
    assert p.returncode == 0, p.stderr
    assert login(d, openapi, "acme", "boss@acme.test", pw).status_code == 200


@pytest.mark.parametrize("args", [
    [],
    ["--tenant", "acme"],
    ["--email", "a@b.test"],
    ["--tenant", "Acme", "--email", "a@b.test"],
    ["--tenant", "-acme", "--email", "a@b.test"],
    ["--tenant", "acme", "--email", "not-an-email"],
    ["--tenant", "acme", "--email", "a@b@c"],
    ["--tenant", "acme", "--email", "a@b.test", "--bogus"],
    ["--tenant", "acme", "--email"],
    ["--tenant=acme", "--email=a@b.test", "extra"],
], ids=lambda a: " ".join(a) or "none")
def test_bootstrap_usage_errors_exit_2(d, args):
    p = bootstrap(d, *args, password=strong())
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("latchctl: ")
    assert sql(d, "SELECT count(*) FROM tenants") == "0"


def test_bootstrap_equals_syntax_and_help(d, openapi):
    pw = strong()
    p = bootstrap(d, "--tenant=acme", "--email=boss@acme.test", "--display-name=Acme", password=pw)
    assert p.returncode == 0, p.stderr
    p = d.latchctl("bootstrap", "--help")
    assert p.returncode == 0 and "exit status" in p.stdout
    assert "bootstrap" in d.latchctl("--help").stdout and "hash-password" in d.latchctl("--help").stdout


def test_bootstrap_reports_an_unreachable_database(tmp_path):
    cfg = tmp_path / "latch.json"
    cfg.write_text(json.dumps({"listen": "", "database_url": f"host={tmp_path} user=latch_app dbname=nope",
                               "master_key": lt.random_master_key()}))
    p = subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), "bootstrap", "--tenant", "acme", "--email",
                        "a@b.test"], input=strong() + "\n", capture_output=True, text=True, env=lt.child_env())
    assert p.returncode == 1 and "cannot connect" in p.stderr
    cfg.write_text(json.dumps({"listen": "", "master_key": lt.random_master_key()}))
    p = subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), "bootstrap", "--tenant", "acme", "--email",
                        "a@b.test"], input=strong() + "\n", capture_output=True, text=True, env=lt.child_env())
    assert p.returncode == 1 and "database_url" in p.stderr


def test_parallel_bootstraps_make_one_admin(d):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: bootstrap(d, "--tenant", "race", "--email", f"admin{i}@race.test",
                                                  password=strong()), range(8)))
    codes = sorted(p.returncode for p in results)
    assert codes == [0] + [3] * 7, [(p.returncode, p.stderr) for p in results if p.returncode != 3]
    assert sql(d, "SELECT count(*) FROM users") == "1"
    assert sql(d, "SELECT count(*) FROM tenants") == "1"


# --- hash-password -----------------------------------------------------------------------------


def run_ctl(*args, input=None, env=None):
    return subprocess.run([str(lt.latchctl_bin()), *args], input=input, capture_output=True, text=True,
                          env=lt.child_env(env))


PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


def test_hash_password_needs_no_configuration():
    p = run_ctl("hash-password", input="some password\n")
    assert p.returncode == 0, p.stderr
    m = PHC.match(p.stdout.strip())
    assert m and m.groups() == ("19456", "2", "1"), p.stdout
    # fresh salt each time
    assert run_ctl("hash-password", input="some password\n").stdout != p.stdout


def test_hash_password_uses_the_configured_parameters(d):
    p = d.latchctl("hash-password", input="some password\n")
    assert p.returncode == 0, p.stderr
    assert PHC.match(p.stdout.strip()).groups() == ("1024", "1", "1")
    p = d.latchctl("hash-password", "--no-config", input="some password\n")
    assert PHC.match(p.stdout.strip()).groups() == ("19456", "2", "1")
    p = run_ctl("hash-password", input="pw\n", env={"LATCH_ARGON2_ITERATIONS": "3", "LATCH_ARGON2_MEMORY_KIB": "2048"})
    assert PHC.match(p.stdout.strip()).groups() == ("2048", "3", "1")


def test_hash_password_refusals():
    assert run_ctl("hash-password", input="").returncode == 1
    assert run_ctl("hash-password", input="\n").returncode == 1
    assert run_ctl("hash-password", "--bogus", input="pw\n").returncode == 2
    p = run_ctl("hash-password", input="pw\n", env={"LATCH_ARGON2_ITERATIONS": "0"})
    assert p.returncode == 1 and "argon2_iterations" in p.stderr.lower()


# --- deploy/dev/up seeding -------------------------------------------------------------------


def seed(d, save, env=None, extra=""):
    """latch_seed_admin from deploy/lib/common.sh against d's database (d's TLS URL printed)."""
    d.config_path.write_text(json.dumps(d.config, indent=2) + "\n")
    script = (f"set -euo pipefail; source {lt.ROOT}/deploy/lib/common.sh; {extra}\n"
              f'latch_seed_admin "$@"')
    return subprocess.run(["bash", "-c", script, "seed", str(lt.latchctl_bin()), str(d.config_path), "demo",
                           "admin@demo.test", str(save), d.https_url], capture_output=True, text=True,
                          env=lt.child_env(env), timeout=120)


def shown_password(out):
    m = re.search(r"^  password: (\S+)   \(saved in ", out, re.M)
    assert m, out
    return m.group(1)


def test_seed_generates_saves_and_shows_again(d, openapi, tmp_path):
    save = tmp_path / "dev" / "admin-password"
    p = seed(d, save)
    assert p.returncode == 0, p.stderr
    assert "seeded tenant demo with global admin admin@demo.test" in p.stdout
    pw = shown_password(p.stdout)
    assert len(pw) == 20 and re.fullmatch(r"[A-Za-z0-9_-]+", pw)
    assert save.read_text() == pw + "\n"
    assert stat.S_IMODE(os.stat(save).st_mode) == 0o600
    r = login(d, openapi, "demo", "admin@demo.test", pw)
    assert r.status_code == 200, r.text
    assert json.loads(sql(d, "SELECT latch_user_json(u)::text FROM users u"))["roles"] == ["admin", "global_admin"]

    # the printed example is a working command
    [curl] = [line.split("log in:", 1)[1].strip() for line in p.stdout.splitlines() if "log in:" in line]
    c = subprocess.run(["bash", "-c", curl + " -s -o /dev/stdout -w '\n%{http_code}'"], capture_output=True, text=True)
    assert c.stdout.rstrip().endswith("200"), c.stdout + c.stderr
    assert json.loads(c.stdout.rsplit("\n", 1)[0])["token_type"] == "Bearer"

    # again: nothing changes, the same password is shown
    p = seed(d, save)
    assert p.returncode == 0, p.stderr
    assert "already has its admin admin@demo.test" in p.stdout
    assert shown_password(p.stdout) == pw
    assert sql(d, "SELECT count(*) FROM users") == "1"
    assert login(d, openapi, "demo", "admin@demo.test", pw).status_code == 200


def test_seed_uses_the_given_password(d, openapi, tmp_path):
    save = tmp_path / "admin-password"
    save.write_text("stale-from-an-older-database\n")
    pw = strong() + "'\"$"  # not shell- or JSON-safe: must not be echoed into the example
    p = seed(d, save, env={"LATCH_DEV_ADMIN_PASSWORD": pw})
    assert p.returncode == 0, p.stderr
    assert pw not in p.stdout and "from LATCH_DEV_ADMIN_PASSWORD" in p.stdout and '"password":"<password>"' in p.stdout
    assert not save.exists()
    assert login(d, openapi, "demo", "admin@demo.test", pw).status_code == 200
    # a different one later does not change the existing admin
    p = seed(d, save, env={"LATCH_DEV_ADMIN_PASSWORD": strong()})
    assert p.returncode == 0 and "does not change an existing admin" in p.stdout
    assert login(d, openapi, "demo", "admin@demo.test", pw).status_code == 200


def test_seed_refuses_a_weak_given_password(d, tmp_path):
    p = seed(d, tmp_path / "admin-password", env={"LATCH_DEV_ADMIN_PASSWORD": "short"})
    assert p.returncode == 4
    assert "refused by the policy" in p.stderr
    assert sql(d, "SELECT count(*) FROM users") == "0"


def test_seed_retries_when_a_generated_password_is_refused(d, openapi, tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")
    # The first "generated" password is weak; the helper must make another one.
    stub = (f'latch_gen_password() {{ local n; n=$(<{counter}); echo $((n + 1)) >{counter}; '
            f'if ((n == 0)); then echo aaaaaaaaaaaaaaaa; else echo Zq3-{secrets.token_urlsafe(12)}; fi; }}')
    save = tmp_path / "admin-password"
    p = seed(d, save, extra=stub)
    assert p.returncode == 0, p.stderr
    assert counter.read_text().strip() == "2"
    pw = shown_password(p.stdout)
    assert pw.startswith("Zq3-") and save.read_text().strip() == pw
    assert login(d, openapi, "demo", "admin@demo.test", pw).status_code == 200
