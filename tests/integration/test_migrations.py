"""Issue 2, migrations and roles: `latchctl migrate` applies the compiled-in sql/ files in
order, once, under an advisory lock, with checksums; latchd can migrate on start; the
runtime role has only the grants it needs."""

import json
import subprocess
import threading

import pytest

import latchtest as lt


def latchctl(tmp_path, db, *args):
    cfg = tmp_path / "ctl.json"
    cfg.write_text(json.dumps({"database_url": db.url, "database_owner_url": db.owner_url,
                               "master_key": lt.random_master_key(), "listen": ""}))
    return subprocess.run([str(lt.latchctl_bin()), "--config", str(cfg), *args],
                          capture_output=True, text=True, env=lt.child_env(), timeout=60)


def migration_files():
    return sorted(p.name for p in (lt.ROOT / "sql").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def test_migrate_applies_once(tmp_path, make_db):
    db = make_db(migrated=False)
    files = migration_files()
    p = latchctl(tmp_path, db, "migrate")
    assert p.returncode == 0, p.stderr
    for f in files:
        assert f"applied {f}" in p.stdout
    rows = db.sql("SELECT name || ' ' || length(checksum) FROM schema_migrations ORDER BY name").splitlines()
    assert rows == [f"{f} 64" for f in files]

    p = latchctl(tmp_path, db, "migrate")
    assert p.returncode == 0, p.stderr
    assert "up to date" in p.stdout
    assert db.sql("SELECT count(*) FROM schema_migrations") == str(len(files))

    p = latchctl(tmp_path, db, "migrate", "--status")
    assert p.returncode == 0, p.stderr
    assert f"{len(files)} applied, 0 pending" in p.stdout


def test_status_lists_pending_before_migrating(tmp_path, make_db):
    db = make_db(migrated=False)
    p = latchctl(tmp_path, db, "migrate", "--status")
    assert p.returncode == 0, p.stderr
    assert f"0 applied, {len(migration_files())} pending" in p.stdout


def test_changed_checksum_is_an_error_naming_the_file(tmp_path, make_db):
    db = make_db(migrated=True)
    first = migration_files()[0]
    db.sql(f"UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE name = '{first}'", user="latch_owner")
    p = latchctl(tmp_path, db, "migrate")
    assert p.returncode == 1
    assert first in p.stderr and "checksum" in p.stderr
    p = latchctl(tmp_path, db, "migrate", "--status")
    assert p.returncode == 1
    assert "MODIFIED" in p.stdout


def test_concurrent_migrations_apply_each_file_once(tmp_path, make_db):
    db = make_db(migrated=False)
    results = []

    def run(i):
        d = tmp_path / f"c{i}"
        d.mkdir()
        results.append(latchctl(d, db, "migrate"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.returncode for p in results] == [0] * 4, [p.stderr for p in results]
    applied = sum(p.stdout.count("applied 0") for p in results)  # "applied 0001_..." lines
    assert applied == len(migration_files())
    assert db.sql("SELECT count(*) FROM schema_migrations") == str(len(migration_files()))


def test_migrate_unreachable_database_fails_cleanly(tmp_path):
    class Nowhere:
        url = "host=/nonexistent user=latch_app dbname=latch"
        owner_url = "host=/nonexistent user=latch_owner dbname=latch"

    p = latchctl(tmp_path, Nowhere, "migrate")
    assert p.returncode == 1
    assert "latchctl: migrate:" in p.stderr


@pytest.mark.parametrize("statement", [
    "INSERT INTO schema_migrations (name, checksum) VALUES ('9999_x.sql', 'x')",
    "DELETE FROM schema_migrations",
    "CREATE TABLE intruder (id int)",
])
def test_runtime_role_cannot_change_schema(make_db, statement):
    db = make_db(migrated=True)
    with pytest.raises(RuntimeError, match="permission denied"):
        db.sql(statement, user="latch_app")
    assert db.sql("SELECT count(*) FROM schema_migrations", user="latch_app") == str(len(migration_files()))


def test_latchd_migrates_on_start(make_db, latchd_factory):
    db = make_db(migrated=False)
    d = latchd_factory(database_url=db.url, database_owner_url=db.owner_url, migrate_on_start=True)
    with d.h2c() as c:
        assert c.get("/readyz").status_code == 200
    assert db.sql("SELECT count(*) FROM schema_migrations") == str(len(migration_files()))
    assert any("migrations: " in r.get("msg", "") for r in d.log_records())


def test_latchd_without_migrate_on_start_leaves_schema_alone(make_db, latchd_factory):
    db = make_db(migrated=False)
    d = latchd_factory(database_url=db.url, database_owner_url=db.owner_url, start=False)
    d.start(ready=False)
    assert db.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'") == "0"
    # Not ready: without the schema there are no revocations to load, and introspection
    # must not answer before it has them.
    with d.h2c() as c:
        assert c.get("/readyz").status_code == 503
