"""Fixtures for the Latch integration tests. The machinery is in latchtest.py.

  pg              (session) the throwaway cluster of tests/run (LATCH_TEST_PGHOST), or one
                  started here when pytest runs on its own; .host, .url, .sql(query, db=...)
  make_db         make_db(name=None, migrated=True) -> Database: fresh, owned by latch_owner,
                  migrated with `latchctl migrate`; dropped after the test
  tls_cert        (session) (cert_path, key_path): self-signed P-256 for localhost/127.0.0.1
  latchd_factory  latchd_factory(env=None, start=True, **config_overrides) -> Latchd; each
                  instance is stopped after the test, which fails unless it exits 0 on
                  SIGTERM and (LATCH_TEST_SANITIZED=1) its stderr has no sanitizer report
  latchd          one latchd shared by the session (debug_endpoints on); checked after
                  every test that uses it, restarted if a test killed it
  private_pg      a cluster of the test's own (start()/stop() freely), with roles, database
                  "latch" migrated: .database_url, .owner_url, .db; removed after the test
  openapi         (session) proto/openapi.yaml: .validate(json, "SchemaName"), .schema(name)

HTTP clients: latchd.h2c(), latchd.tls(), latchd.http1(tls=False), or h2c_client(url),
tls_client(url, cert), http1_client(url, cert) from latchtest.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import latchtest as lt


def _keep():
    return os.environ.get("LATCH_TEST_KEEP") == "1"


@pytest.fixture(scope="session")
def session_tmp():
    """A directory for this session's files (under LATCH_TEST_TMPDIR when tests/run set it)."""
    d = lt.mkdtemp("latch-it-")
    os.chmod(d, 0o755)  # private clusters live below it; the postgres user must get through
    yield d
    if not _keep():
        shutil.rmtree(d, ignore_errors=True)


class PgInfo:
    def __init__(self, host, cluster=None):
        self.host = str(host)
        self.cluster = cluster  # set when this session started the cluster itself
        self.url = lt.conninfo(self.host, "postgres", "postgres")

    def sql(self, query, db="postgres", user="postgres"):
        return lt.psql(self.host, query, db=db, user=user)

    def conninfo(self, user, db):
        return lt.conninfo(self.host, user, db)


@pytest.fixture(scope="session")
def pg(session_tmp):
    host = os.environ.get("LATCH_TEST_PGHOST")
    cluster = None
    if not host:
        cluster = lt.Cluster(session_tmp / "pg")
        cluster.home.mkdir()
        cluster.initdb()
        cluster.start()
        host = cluster.host
    try:
        lt.ensure_roles(host)
        yield PgInfo(host, cluster)
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def db_factory(pg, session_tmp):
    f = lt.DbFactory(pg.host, session_tmp)
    yield f
    f.cleanup()


@pytest.fixture
def make_db(pg, session_tmp):
    f = lt.DbFactory(pg.host, session_tmp)
    yield f
    f.cleanup()


@pytest.fixture(scope="session")
def tls_cert(session_tmp):
    return lt.make_tls_cert(session_tmp / "tls")


def _fail_on(problems):
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def latchd_factory(make_db, tls_cert, session_tmp):
    f = lt.LatchdFactory(make_db, *tls_cert, session_tmp)
    yield f
    _fail_on(f.cleanup())


@pytest.fixture(scope="session")
def _session_latchd(db_factory, tls_cert, session_tmp):
    f = lt.LatchdFactory(db_factory, *tls_cert, session_tmp)
    d = f(debug_endpoints=True)
    yield d
    # pytest reports this at the last test of the session; say whose problem it is.
    problems = f.cleanup()
    if problems:
        _fail_on(["[the session-wide latchd fixture, at the end of the session]"] + problems)


@pytest.fixture
def latchd(_session_latchd):
    d = _session_latchd
    if not d.running:  # a previous test stopped or crashed it (and was blamed for that)
        d.start()
    yield d
    problems = []
    if not d.stopped and not d.responsive():
        # It may still be writing a sanitizer report: give it time to finish and exit.
        try:
            d.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        rc = d.stop(signal.SIGKILL)  # acknowledged: not reported again at session end
        problems.append(f"the shared latchd stopped answering during this test (exit {rc})\n"
                        f"--- stderr tail ---\n{lt.tail(d.stderr_text())}")
    if lt.SANITIZED:
        problems += [f"sanitizer report in the shared latchd's stderr ({d.stderr_path}):\n{r}"
                     for r in d.new_sanitizer_reports()]
    _fail_on(problems)


class PrivatePg(lt.Cluster):
    """A cluster of one test's own, with roles and a migrated database "latch"."""

    def setup(self):
        self.start()
        lt.ensure_roles(self.host)
        self.db = lt.create_database(self.host, "latch", workdir=self.home.parent)
        self.database_url = self.db.url
        self.owner_url = self.db.owner_url
        self.sockdir = self.host
        return self


@pytest.fixture
def private_pg(session_tmp):
    home = Path(tempfile.mkdtemp(prefix="pg-", dir=session_tmp))
    c = PrivatePg(home)
    try:
        c.initdb()
        yield c.setup()
    finally:
        if _keep():
            c.stop("immediate")
        else:
            c.remove()


@pytest.fixture(scope="session")
def openapi():
    path = lt.ROOT / "proto" / "openapi.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing", pytrace=False)
    return lt.OpenAPI(path)
