"""`latchctl policies apply DIR` (issue 6, item 2): a directory of JSON and YAML policy files is
validated as a whole and written in one transaction, or not at all; every instance then decides
with it. Runs against a real latchd and its PostgreSQL.
"""

import json
import time

import pytest

import latchtest as lt
from latchtest import strong_password as strong

SETTINGS = dict(argon2_memory_kib=1024, argon2_iterations=1, argon2_parallelism=1, login_ip_limit=0)

YAML_DOC = """\
# documents in YAML: the same shape as JSON
resource_type: document
derived_roles:
  - name: owner
    when: resource.owner == subject.id
rules:
  - id: owner-edit
    effect: allow
    actions: [read, edit]
    roles: [owner]
  - id: archived
    effect: deny
    actions: ["*"]
    when: resource.archived == true
"""

JSON_DOC = {"id": "reports", "resource_type": "report",
            "rules": [{"id": "analysts-read", "effect": "allow", "actions": ["read"], "roles": ["analyst"]}]}


@pytest.fixture(scope="module")
def env(db_factory, tls_cert, session_tmp):
    factory = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = factory(**SETTINGS)
    d.bootstrap("files", "root@files.test", strong(), global_admin=True)
    http = d.h2c(timeout=30.0)
    yield d, http
    lt.shut_down(factory, http)


def evaluate(http, client, resource, action="read", subject=None):
    body = {"subject": subject or {"type": "user", "id": "u1", "properties": {"roles": ["analyst"]}},
            "action": {"name": action}, "resource": resource}
    r = http.post("/access/v1/evaluation", json=body, auth=(client["client_id"], client["client_secret"]))
    assert r.status_code == 200, r.text
    return r.json()["decision"]


def decides(http, client, resource, action, subject, want, timeout=2.0):
    deadline = time.monotonic() + timeout
    while True:
        got = evaluate(http, client, resource, action, subject)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_apply_is_all_or_nothing_then_decides(env, tmp_path):
    d, http = env
    # A client holding `decide`, made with latchctl.
    p = d.latchctl("clients", "create", "--tenant", "files", "--name", "pep", "--grant", "client_credentials",
                   "--permission", "decide", check=True)
    client = json.loads(p.stdout)
    assert client["client_id"].startswith("lc_") and client["client_secret"].startswith("lcs_"), p.stdout

    (tmp_path / "documents.yaml").write_text(YAML_DOC)
    (tmp_path / "reports.json").write_text(json.dumps(JSON_DOC))
    (tmp_path / "broken.json").write_text(json.dumps(
        {"resource_type": "thing", "rules": [{"id": "x", "effect": "allow", "actions": ["read"],
                                              "when": "subject.id ==\n  nosuchfn(1)"}]}))
    (tmp_path / "notes.txt").write_text("ignored: not a policy file")

    p = d.latchctl("policies", "apply", str(tmp_path), "--tenant", "files")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "broken.json" in p.stdout and "2:" in p.stdout, p.stdout  # where, with line:column
    assert "nothing applied" in p.stderr
    assert lt.instance_sql(d, "SELECT count(*) FROM policies") == "0"

    (tmp_path / "broken.json").unlink()
    p = d.latchctl("policies", "apply", str(tmp_path), "--tenant", "files")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "policy documents version 1" in p.stdout and "policy reports version 1" in p.stdout, p.stdout
    assert lt.instance_sql(d, "SELECT string_agg(id || ':' || version, ',' ORDER BY id) FROM policies") == \
        "documents:1,reports:1"

    report = {"type": "report", "id": "r1"}
    assert decides(http, client, report, "read", None, True) is True
    mine = {"type": "document", "id": "d1", "properties": {"owner": "u1"}}
    assert decides(http, client, mine, "edit", {"type": "user", "id": "u1"}, True) is True
    archived = {"type": "document", "id": "d2", "properties": {"owner": "u1", "archived": True}}
    assert evaluate(http, client, archived, "read", {"type": "user", "id": "u1"}) is False

    # Applying again makes new versions; a YAML syntax error names its line.
    p = d.latchctl("policies", "apply", str(tmp_path), "--tenant", "files", check=True)
    assert "version 2" in p.stdout
    (tmp_path / "bad.yaml").write_text("resource_type: x\nrules: [\n")
    p = d.latchctl("policies", "apply", str(tmp_path), "--tenant", "files")
    assert p.returncode == 1 and "bad.yaml: line" in p.stdout, p.stdout + p.stderr


def test_apply_usage_errors(env, tmp_path):
    d, *_ = env
    assert d.latchctl("policies").returncode == 2
    assert d.latchctl("policies", "apply").returncode == 2
    assert d.latchctl("policies", "apply", str(tmp_path), "--tenant", "Not A Name").returncode == 2
    p = d.latchctl("policies", "apply", str(tmp_path), "--tenant", "nosuchtenant")
    assert p.returncode == 1 and "no tenant" in p.stderr, p.stderr
