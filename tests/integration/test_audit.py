"""The hash-chained audit log: rows appended through latch_audit_append as the runtime role
form a chain that `latchctl audit verify` checks; a row changed or deleted by the owner is
named; the runtime role can neither change nor delete rows."""

import json
import subprocess
import threading

import pytest

import latchtest as lt

APPEND = ("SELECT latch_audit_append({tenant}, {actor}, {event}, NULL, '203.0.113.9', 'req-{i}', "
          "{outcome}, {details})")


def verify(tmp_path, db):
    """`latchctl audit verify` with only the runtime user's URL: reading is all it needs."""
    cfg = tmp_path / "audit.json"
    cfg.write_text(json.dumps({"database_url": db.url, "master_key": lt.random_master_key(), "listen": ""}))
    p = subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), "audit", "verify"],
                       capture_output=True, text=True, env=lt.child_env(), timeout=60)
    if lt.SANITIZED:
        reports = lt.sanitizer_reports(p.stderr)
        assert not reports, "\n\n".join(reports)
    return p


def append_rows(db, n, start=0):
    """Appends n events as latch_app; returns their ids."""
    ids = []
    for i in range(start, start + n):
        tenant = "NULL" if i % 2 else "'7b0c9a2e-0000-4000-8000-00000000000%d'" % (i % 10)
        actor = "NULL" if i % 3 == 0 else f"'user-{i}@example.com'"
        outcome = ("'success'", "'failure'", "'denied'")[i % 3]
        details = "NULL" if i % 4 == 0 else "'{\"attempt\": %d, \"why\": \"bad \\\"password\\\"\"}'" % i
        ids.append(int(db.sql(APPEND.format(tenant=tenant, actor=actor, event="'login.failed'", i=i,
                                            outcome=outcome, details=details), user="latch_app")))
    return ids


def test_empty_chain_is_intact(tmp_path, make_db):
    db = make_db()
    p = verify(tmp_path, db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "audit chain intact: 0 rows"


def test_appended_rows_verify(tmp_path, make_db):
    db = make_db()
    ids = append_rows(db, 7)
    assert ids == list(range(1, 8))
    # Multi-byte text and details with unicode: lengths are bytes on both sides.
    db.sql("SELECT latch_audit_append(NULL, 'Zoë Ångström', 'user.created', 'user:日本', NULL, NULL, "
           "'success', '{\"name\": \"Zoë\", \"emoji\": \"\\ud83d\\ude00\"}')", user="latch_app")
    p = verify(tmp_path, db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "audit chain intact: 8 rows"


def test_concurrent_appenders_form_one_chain(tmp_path, make_db):
    db = make_db()
    errors = []

    def run(k):
        try:
            # One psql session per thread, each append its own transaction (a multi-statement
            # string would otherwise run as one).
            sql = " ".join("BEGIN; " + APPEND.format(tenant="NULL", actor=f"'t{k}'", event="'token.refreshed'",
                                                     i=i, outcome="'success'", details="NULL") + "; COMMIT;"
                           for i in range(25))
            db.sql(sql, user="latch_app")
        except RuntimeError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    p = verify(tmp_path, db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "audit chain intact: 100 rows"
    assert db.sql("SELECT count(DISTINCT prev_hash) FROM audit_log") == "100"


def test_changed_row_is_named(tmp_path, make_db):
    db = make_db()
    append_rows(db, 5)
    db.sql("UPDATE audit_log SET actor = 'someone-else' WHERE id = 3", user="latch_owner")
    p = verify(tmp_path, db)
    assert p.returncode == 1
    assert p.stdout.strip().startswith("audit chain broken at row 3: "), p.stdout + p.stderr
    assert "hash" in p.stdout


def test_deleted_row_names_the_next(tmp_path, make_db):
    db = make_db()
    append_rows(db, 5)
    db.sql("DELETE FROM audit_log WHERE id = 2", user="latch_owner")
    p = verify(tmp_path, db)
    assert p.returncode == 1
    assert p.stdout.strip().startswith("audit chain broken at row 3: "), p.stdout + p.stderr
    assert "link" in p.stdout


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET event = 'login.succeeded' WHERE id = 1",
    "DELETE FROM audit_log WHERE id = 1",
    "TRUNCATE audit_log",
])
def test_runtime_role_cannot_change_rows(tmp_path, make_db, statement):
    db = make_db()
    append_rows(db, 2)
    with pytest.raises(RuntimeError, match="permission denied"):
        db.sql(statement, user="latch_app")
    p = verify(tmp_path, db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "audit chain intact: 2 rows"


def test_verify_unreachable_database_fails_cleanly(tmp_path):
    class Nowhere:
        url = "host=/nonexistent user=latch_app dbname=latch"

    p = verify(tmp_path, Nowhere)
    assert p.returncode == 1
    assert "latchctl: audit verify:" in p.stderr
    assert p.stdout == ""


def test_audit_usage(tmp_path):
    p = subprocess.run([str(lt.latchctl_bin()), "audit"], capture_output=True, text=True, env=lt.child_env(),
                       timeout=30)
    assert p.returncode == 2
    p = subprocess.run([str(lt.latchctl_bin()), "audit", "--help"], capture_output=True, text=True,
                       env=lt.child_env(), timeout=30)
    assert p.returncode == 0
    assert "audit chain intact" in p.stdout and "audit chain broken at row" in p.stdout
