"""Helpers for the Latch integration tests (conftest.py turns them into fixtures).

Runs under Debian's /usr/bin/python3 with python3-httpx (0.23), python3-h2, python3-yaml and
python3-jsonschema. Everything is real: private PostgreSQL clusters made with initdb/pg_ctl,
databases migrated by `latchctl migrate`, latchd started as a process on free ports and talked
to over HTTP/2 (h2c prior knowledge, and TLS with ALPN h2).

Environment (set by tests/run; every one is optional when pytest is run by hand):
  LATCH_BIN_DIR           where latchd/latchd and latchctl/latchctl are (default build/cmd)
  LATCH_SOURCE_ROOT       the repository (default: two levels above this file)
  LATCH_TEST_PGHOST       socket directory of a running cluster with the Latch roles
  LATCH_TEST_DATABASE_URL superuser conninfo for that cluster
  LATCH_TEST_TMPDIR       where to put temporary files; pids of running latchd processes are
                          kept in its pids/ so tests/run can kill what a crashed pytest left
  LATCH_TEST_SANITIZED    "1": the binaries are ASan/UBSan builds; their stderr is checked
"""

import base64
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import httpcore.backends.sync

ROOT = Path(os.environ.get("LATCH_SOURCE_ROOT") or Path(__file__).resolve().parents[2])
BIN_DIR = Path(os.environ.get("LATCH_BIN_DIR") or ROOT / "build" / "cmd")
SANITIZED = os.environ.get("LATCH_TEST_SANITIZED") == "1"
TMP_BASE = os.environ.get("LATCH_TEST_TMPDIR") or None  # None: tempfile's default (/tmp)
PSQL = "/usr/bin/psql" if os.path.exists("/usr/bin/psql") else "psql"

# The three roles sql/roles.sql creates.
LATCH_ROLES = ("latch_owner", "latch_runtime", "latch_app")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def _pg_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def _bin(name):
    # build/cmd/NAME/NAME is the documented place; build/cmd/NAME is where meson puts an
    # executable declared in cmd/meson.build itself.
    nested = BIN_DIR / name / name
    return nested if nested.is_file() or not (BIN_DIR / name).is_file() else BIN_DIR / name


def latchd_bin():
    return _bin("latchd")


def latchctl_bin():
    return _bin("latchctl")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mkdtemp(prefix):
    """A temporary directory under LATCH_TEST_TMPDIR (or /tmp)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=TMP_BASE))


def random_master_key():
    return base64.b64encode(os.urandom(32)).decode()


def child_env(extra=None):
    """The environment for latchd and latchctl: ours without any LATCH_* variable (latchd
    rejects LATCH_ names that are not config keys, and LATCH_BIN_DIR, LATCH_SOURCE_ROOT are
    not), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCH_")}
    env.update(extra or {})
    return env


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


# --- PostgreSQL -----------------------------------------------------------------------------


def as_pg_owner(cmd):
    """initdb and postgres refuse to run as root: as root, run them as the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + [str(c) for c in cmd]
    return [str(c) for c in cmd]


def psql(host, sql, db="postgres", user="postgres", check=True):
    """Runs `sql` with psql -Atc (unaligned, tuples only); returns stdout without the final
    newline. Raises RuntimeError with psql's message when it fails and `check` is true."""
    p = subprocess.run([PSQL, "-X", "-h", str(host), "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1",
                        "-Atc", sql], capture_output=True, text=True, env=child_env())
    if check and p.returncode != 0:
        raise RuntimeError(f"psql -d {db} -U {user} failed ({p.returncode}): {sql}\n{p.stderr}")
    return p.stdout.rstrip("\n")


def psql_file(host, path, db="postgres", user="postgres"):
    p = subprocess.run([PSQL, "-X", "-q", "-h", str(host), "-U", user, "-d", db,
                        "-v", "ON_ERROR_STOP=1", "-f", str(path)],
                       capture_output=True, text=True, env=child_env())
    if p.returncode != 0:
        raise RuntimeError(f"psql -f {path} failed ({p.returncode}):\n{p.stderr}")


def conninfo(host, user, db):
    return f"host={host} user={user} dbname={db}"


def ensure_roles(host):
    """Runs sql/roles.sql unless the cluster already has the Latch roles."""
    names = ",".join(f"'{r}'" for r in LATCH_ROLES)
    if psql(host, f"SELECT count(*) FROM pg_roles WHERE rolname IN ({names})") == str(len(LATCH_ROLES)):
        return
    psql_file(host, ROOT / "sql" / "roles.sql")


_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ident(name):
    if not _IDENT.match(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return name


class Cluster:
    """A private PostgreSQL cluster: data in HOME/data, the unix socket in HOME (no TCP)."""

    def __init__(self, home):
        self.home = Path(home)
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        sock = self.home / ".s.PGSQL.5432"
        if len(str(sock)) > 107:
            raise ValueError(f"socket path too long for a unix socket: {sock}")

    @classmethod
    def create(cls, prefix="lpg-"):
        """initdb into a new temporary directory (not started)."""
        c = cls(mkdtemp(prefix))
        c.initdb()
        return c

    @property
    def host(self):
        return str(self.home)

    def _run(self, cmd, what):
        p = subprocess.run(as_pg_owner(cmd), capture_output=True, text=True, env=child_env())
        if p.returncode != 0:
            raise RuntimeError(f"{what} failed ({p.returncode}):\n{p.stdout}{p.stderr}\n"
                               f"--- {self.log} ---\n{self.log_tail()}")
        return p

    def initdb(self):
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        os.chmod(self.home, 0o700)
        self._run([PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C", "--no-sync", "--no-instructions"], "initdb")

    def start(self):
        opts = (f"-k {self.home} -c listen_addresses= -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", opts,
                   "start"], "pg_ctl start")

    def stop(self, mode="fast"):
        """Stops the cluster if it runs (mode: smart, fast or immediate)."""
        if self.running:
            self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                      "pg_ctl stop")

    @property
    def running(self):
        p = subprocess.run(as_pg_owner([PG_BIN / "pg_ctl", "-D", self.data, "status"]),
                           capture_output=True, env=child_env())
        return p.returncode == 0

    def remove(self):
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, lines=30):
        try:
            return tail(self.log.read_text(errors="replace"), lines)
        except OSError:
            return "(no server log)"

    def sql(self, query, db="postgres", user="postgres"):
        return psql(self.host, query, db=db, user=user)

    def conninfo(self, user, db):
        return conninfo(self.host, user, db)


# --- databases ------------------------------------------------------------------------------


class Database:
    """A database owned by latch_owner: `url` is latchd's conninfo (latch_app), `owner_url`
    the one migrations use."""

    def __init__(self, host, name):
        self.host = str(host)
        self.name = name
        self.url = conninfo(host, "latch_app", name)
        self.owner_url = conninfo(host, "latch_owner", name)
        self.superuser_url = conninfo(host, "postgres", name)

    def sql(self, query, user="postgres"):
        """Runs SQL in this database (as the superuser by default); returns psql -At output."""
        return psql(self.host, query, db=self.name, user=user)

    def __repr__(self):
        return f"Database({self.name!r} on {self.host})"


def migrate(db, workdir=None):
    """`latchctl migrate` on `db` with a minimal config file."""
    workdir = Path(workdir or mkdtemp("migrate-"))
    cfg = workdir / f"migrate-{db.name}.json"
    cfg.write_text(json.dumps({"listen": "", "database_url": db.url, "database_owner_url": db.owner_url,
                               "master_key": random_master_key()}))
    p = subprocess.run([str(latchctl_bin()), "--config", str(cfg), "migrate"], capture_output=True,
                       text=True, env=child_env(), timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"latchctl migrate on {db.name} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def create_database(host, name, migrated=True, workdir=None):
    """A fresh database NAME owned by latch_owner (dropped first if it exists), roles ensured,
    migrated unless `migrated` is false."""
    ident(name)
    ensure_roles(host)
    psql(host, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(host, f"CREATE DATABASE {name} OWNER latch_owner")
    db = Database(host, name)
    if migrated:
        migrate(db, workdir)
    return db


def drop_database(host, name):
    psql(host, f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)", check=False)


class DbFactory:
    """Creates uniquely named databases in one cluster and drops them in cleanup()."""

    _seq = itertools.count(1)

    def __init__(self, host, workdir):
        self.host = str(host)
        self.workdir = Path(workdir)
        self.created = []

    def __call__(self, name=None, migrated=True):
        if name is None:
            name = f"t{os.getpid()}_{next(self._seq)}"
        db = create_database(self.host, ident(name), migrated=migrated, workdir=self.workdir)
        self.created.append(db)
        return db

    def cleanup(self):
        while self.created:
            drop_database(self.host, self.created.pop().name)


# --- TLS ------------------------------------------------------------------------------------


def make_tls_cert(directory):
    """A self-signed EC P-256 certificate for localhost and 127.0.0.1: (cert, key) paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


# --- HTTP clients ---------------------------------------------------------------------------


def _nodelay(connect_tcp):
    """Debian's httpcore (0.16) leaves Nagle on and writes an HTTP/2 request's HEADERS and
    DATA frames apart, so every request with a body waited for latchd's delayed ACK (~40 ms
    on loopback) before its body left. Clients worth testing against (curl, Go, Envoy)
    set TCP_NODELAY; so do these."""
    def connect(self, *args, **kw):
        stream = connect_tcp(self, *args, **kw)
        stream.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return stream
    return connect


httpcore.backends.sync.SyncBackend.connect_tcp = _nodelay(httpcore.backends.sync.SyncBackend.connect_tcp)


def _client(base_url, verify, http1, http2, kw):
    kw.setdefault("timeout", 10.0)
    kw.setdefault("trust_env", False)  # no proxies from the environment
    return httpx.Client(base_url=base_url or "", verify=verify, http1=http1, http2=http2, **kw)


def h2c_client(base_url="", **kw):
    """HTTP/2 over cleartext by prior knowledge (no HTTP/1.1 at all)."""
    return _client(base_url, False, False, True, kw)


def tls_client(base_url="", cert=None, **kw):
    """HTTPS offering ALPN h2 and http/1.1, trusting `cert` (a PEM path)."""
    return _client(base_url, str(cert) if cert else True, True, True, kw)


def http1_client(base_url="", cert=None, **kw):
    """HTTP/1.1 only, over http:// or https:// (trusting `cert`)."""
    return _client(base_url, str(cert) if cert else True, True, False, kw)


def h2c_burst(base_url, requests, timeout=20.0):
    """Sends `requests` ((method, path, headers, json body or None) each) as concurrent streams
    of one h2c connection, all in one write, and returns their httpx.Responses in order.

    For parallel requests on one connection. Debian's httpcore (0.16) takes a stream id and
    sends the HEADERS without one lock around both, so threads sharing an HTTP/2 client now
    and then send stream 11 before stream 9, and the server rightly ends the connection
    (RFC 9113, 5.1.1)."""
    import h2.config
    import h2.connection
    import h2.events

    host, _, port = base_url.rpartition("//")[2].rstrip("/").rpartition(":")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sids = []
    for method, path, headers, body in requests:
        data = json.dumps(body).encode() if body is not None else b""
        hdrs = [(":method", method), (":scheme", "http"), (":authority", f"{host}:{port}"), (":path", path)]
        hdrs += [(k.lower(), v) for k, v in (headers or {}).items()]
        if body is not None:
            hdrs += [("content-type", "application/json"), ("content-length", str(len(data)))]
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            conn.send_data(sid, data, end_stream=True)
        sids.append(sid)
    got = {sid: {"headers": None, "body": b""} for sid in sids}
    ended = set()
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        while len(ended) < len(sids):
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = sock.recv(65536)
            assert data, f"the connection closed with {len(sids) - len(ended)} streams unanswered"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    got[ev.stream_id]["headers"] = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    got[ev.stream_id]["body"] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended.add(ev.stream_id)
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise AssertionError(f"the server ended the burst: {ev}")
            sock.sendall(conn.data_to_send())
    out = []
    for sid, (method, path, _, _) in zip(sids, requests):
        hdrs = got[sid]["headers"]
        status = int(dict(hdrs)[":status"])
        plain = [(k, v) for k, v in hdrs if not k.startswith(":")]
        out.append(httpx.Response(status, headers=plain, content=got[sid]["body"],
                                  request=httpx.Request(method, base_url.rstrip("/") + path)))
    return out


# --- latchd ---------------------------------------------------------------------------------


def sanitizer_reports(text):
    """The sanitizer reports in a stderr text: one excerpt per report."""
    lines = text.splitlines()
    reports = []
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            reports.append("\n".join(lines[max(0, i - 2):i + 30]))
    return reports


def _url(scheme, listen):
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("[::]",):
        host = "[::1]"
    return f"{scheme}://{host}:{port}"


class Latchd:
    """One latchd process with its config file, stdout/stderr/access-log files in `workdir`.

    Attributes: config (dict), config_path, workdir, h2c_url / https_url (None when that
    listener is off), cert, proc, pid."""

    def __init__(self, workdir, config, cert=None, env=None):
        self.workdir = Path(workdir)
        self.config = dict(config)
        self.cert = cert
        self.env = dict(env or {})
        self.config_path = self.workdir / "latch.json"
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.proc = None
        self.stopped = False  # stop() was called for the current process
        self.timed_out = False  # stop() had to SIGKILL it
        self.stderr_checked = 0  # bytes of stderr already scanned for sanitizer reports
        self.h2c_url = _url("http", self.config.get("listen_h2c", ""))
        self.https_url = _url("https", self.config.get("listen", "127.0.0.1:8443"))
        self._files = []
        self._pidfile = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def access_log_path(self):
        p = self.config.get("access_log", "-")
        return self.stdout_path if p == "-" else None if p == "off" else Path(p)

    def start(self, timeout=10.0, wait=True, ready=True):
        """Starts the process (again, after stop(), with the same config) and waits until GET
        /healthz answers and, with `ready`, until GET /readyz does too (the store connects
        asynchronously after the listeners open). Fails the test with the stderr tail if not."""
        import pytest

        assert not self.running, "latchd is already running"
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self._files = [out, err]
        self.proc = subprocess.Popen([str(latchd_bin()), "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     env=child_env(self.env))
        self.stopped = self.timed_out = False
        if TMP_BASE:
            piddir = Path(TMP_BASE) / "pids"
            piddir.mkdir(exist_ok=True)
            self._pidfile = piddir / f"latchd.{self.proc.pid}"
            self._pidfile.write_text(_start_time(self.proc.pid) + "\n")
        if wait:
            problem = self.wait_healthy(timeout, ready=ready)
            if problem:
                self.stop(signal.SIGKILL, timeout=5)
                pytest.fail(f"latchd {problem}\n--- stderr ({self.stderr_path}) ---\n"
                            f"{tail(self.stderr_text())}", pytrace=False)
        return self

    def wait_healthy(self, timeout=10.0, ready=False):
        """None once GET /healthz (and with `ready`, then GET /readyz) answers 200, else why not."""
        base = self.h2c_url or self.https_url
        deadline = time.monotonic() + timeout
        last = "no listener configured"
        healthy = False
        with http1_client(base, cert=self.cert, timeout=1.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return f"exited with {self.proc.returncode} during start-up"
                path = "/readyz" if healthy else "/healthz"
                try:
                    r = c.get(path)
                    if r.status_code == 200:
                        if path == "/readyz" or not ready:
                            return None
                        healthy = True
                        continue
                    last = f"GET {path}: {r.status_code}"
                except httpx.HTTPError as e:
                    last = f"GET {path}: {type(e).__name__}: {e}"
                time.sleep(0.05)
        return f"did not become {'ready' if ready else 'healthy'} within {timeout:g} s (last: {last})"

    def responsive(self, timeout=2.0):
        """True when the process runs and answers GET /healthz (a quick liveness probe)."""
        if not self.running:
            return False
        try:
            with http1_client(self.h2c_url or self.https_url, cert=self.cert, timeout=timeout) as c:
                return c.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends `sig` and waits up to `timeout` s for the exit (then SIGKILL). Returns the
        exit code (negative: killed by that signal); None if it was never started."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.timed_out = True
        for f in self._files:
            f.close()
        self._files = []
        if self._pidfile:
            self._pidfile.unlink(missing_ok=True)
        return self.proc.returncode

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def new_sanitizer_reports(self):
        """Sanitizer reports in the stderr written since the last call."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self.stderr_checked)
                data = f.read()
        except FileNotFoundError:
            return []
        self.stderr_checked += len(data)
        return sanitizer_reports(data.decode(errors="replace"))

    def stdout_text(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self):
        """latchd's JSON log lines (stderr), parsed; lines that are not JSON are skipped
        (sanitizer reports, for one)."""
        return _json_lines(self.stderr_text())

    def access_log_lines(self):
        """The access log as a list of lines (without newlines); [] when it is off."""
        p = self.access_log_path
        if p is None or not p.exists():
            return []
        text = p.read_text(errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    def access_log_records(self):
        """The access log lines parsed as JSON (raises ValueError naming a bad line)."""
        out = []
        for line in self.access_log_lines():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"access log line is not JSON: {line!r}") from e
        return out

    def h2c(self, **kw):
        assert self.h2c_url, "listen_h2c is off"
        return h2c_client(self.h2c_url, **kw)

    def tls(self, **kw):
        assert self.https_url, "listen is off"
        return tls_client(self.https_url, cert=self.cert, **kw)

    def http1(self, tls=False, **kw):
        base = self.https_url if tls else self.h2c_url
        assert base, "that listener is off"
        return http1_client(base, cert=self.cert, **kw)

    def latchctl(self, *args, input=None, env=None, check=False):
        """Runs `latchctl --config <this latchd's config> ARGS...` (so it uses the same
        database and settings); returns the CompletedProcess (text). `check` raises on a
        non-zero exit."""
        # Atomically (tests run latchctl from several threads at once), and only when changed.
        text = json.dumps(self.config, indent=2) + "\n"
        if not self.config_path.exists() or self.config_path.read_text() != text:
            with tempfile.NamedTemporaryFile("w", dir=self.workdir, suffix=".tmp", delete=False) as f:
                f.write(text)
            os.replace(f.name, self.config_path)
        p = subprocess.run([str(latchctl_bin()), "--config", str(self.config_path), *map(str, args)],
                           input=input, capture_output=True, text=True, env=child_env(env), timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"latchctl {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def bootstrap(self, tenant, email, password, global_admin=False, display_name=None):
        """`latchctl bootstrap` against this latchd's database: creates the tenant (unless it
        exists without users) and an admin. Returns {"tenant_id": ..., "user_id": ...};
        raises RuntimeError when latchctl fails (exit 3: already bootstrapped)."""
        args = ["bootstrap", "--tenant", tenant, "--email", email]
        if global_admin:
            args.append("--global")
        if display_name is not None:
            args += ["--display-name", display_name]
        p = self.latchctl(*args, input=password + "\n", check=True)
        return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)

    def send_signal(self, sig):
        """Sends `sig` without waiting (SIGHUP to reload; stop() to end it)."""
        self.proc.send_signal(sig)

    signal = send_signal  # defined after every use of the signal module in the class body

    def problems_at_teardown(self):
        """Stops the process if it runs; returns what is wrong: a non-zero exit after SIGTERM,
        an exit nobody asked for, sanitizer reports (when LATCH_TEST_SANITIZED=1)."""
        problems = []
        if self.proc is not None:
            if self.running:
                rc = self.stop(signal.SIGTERM)
                if self.timed_out:
                    problems.append("latchd did not exit within 15 s of SIGTERM (killed)")
                elif rc != 0:
                    problems.append(f"latchd exited with {rc} after SIGTERM")
            elif not self.stopped:
                problems.append(f"latchd exited by itself during the test with {self.proc.returncode}")
                self.stop()
        if SANITIZED:
            for report in self.new_sanitizer_reports():
                problems.append(f"sanitizer report in latchd's stderr ({self.stderr_path}):\n{report}")
        if problems and not any("sanitizer report" in p for p in problems):
            problems.append(f"--- stderr tail ({self.stderr_path}) ---\n{tail(self.stderr_text())}")
        return problems


def _start_time(pid):
    """Field 22 of /proc/PID/stat: with the pid, it names one process (pids are reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class LatchdFactory:
    """latchd_factory(**config_overrides) -> a started Latchd.

    Defaults: 2 workers, TLS and h2c listeners on free ports, a fresh migrated database
    (unless database_url is given), a random master key, the access log in a file, log_level
    info. Keyword `env` (dict) adds environment variables; `start=False` returns it unstarted."""

    def __init__(self, db_factory, cert, key, workdir):
        self.db_factory = db_factory
        self.cert, self.key = cert, key
        self.workdir = Path(workdir)
        self.instances = []

    def __call__(self, env=None, start=True, timeout=10.0, **overrides):
        workdir = Path(tempfile.mkdtemp(prefix="latchd-", dir=self.workdir))
        config = {
            "workers": 2,
            "listen": f"127.0.0.1:{free_port()}",
            "listen_h2c": f"127.0.0.1:{free_port()}",
            "tls_cert": str(self.cert),
            "tls_key": str(self.key),
            "master_key": random_master_key(),
            "access_log": str(workdir / "access.log"),
            "log_level": "info",
            # Suites send bursts from one address; only test_rate_limits.py sets limits.
            "rate_limits": {"defaults": False},
        }
        if "database_url" not in overrides:
            db = self.db_factory()
            config["database_url"] = db.url
        config.update(overrides)
        if "master_key_file" in overrides:
            config.pop("master_key", None)
        d = Latchd(workdir, config, cert=self.cert, env=env)
        self.instances.append(d)
        if start:
            d.start(timeout=timeout)
        return d

    def cleanup(self):
        """Stops every instance; returns the problems found (see Latchd.problems_at_teardown)."""
        problems = []
        for d in self.instances:
            problems += d.problems_at_teardown()
        self.instances = []
        return problems


# --- signing in -------------------------------------------------------------------------------


def bearer(token):
    """Headers for a request authenticated with an access token (a string or a login result)."""
    if isinstance(token, dict):
        token = token["access_token"]
    return {"authorization": f"Bearer {token}"}


def login(client, tenant, email, password):
    """POST /v1/auth/login; returns the token response (access_token, refresh_token, ...).
    Fails with the answer when it is not 200."""
    r = client.post("/v1/auth/login", json={"tenant": tenant, "email": email, "password": password})
    assert r.status_code == 200, f"login of {email} in {tenant} failed: {r.status_code} {r.text}"
    return r.json()


# --- OpenAPI --------------------------------------------------------------------------------


class OpenAPI:
    """proto/openapi.yaml with JSON Schema validation of bodies against its components."""

    def __init__(self, path):
        import yaml
        from jsonschema import Draft202012Validator, RefResolver

        self.path = Path(path)
        with open(self.path) as f:
            self.doc = yaml.safe_load(f)
        self._validator_cls = Draft202012Validator
        self._resolver = RefResolver(base_uri=self.path.as_uri(), referrer=self.doc)
        self._format_checker = Draft202012Validator.FORMAT_CHECKER

    def schema(self, name):
        try:
            return self.doc["components"]["schemas"][name]
        except KeyError:
            raise KeyError(f"no schema {name!r} in {self.path} components/schemas") from None

    def errors(self, instance, schema_name):
        """Messages for every way `instance` breaks the named schema ([] when it is valid)."""
        self.schema(schema_name)  # a clear error for an unknown name
        v = self._validator_cls({"$ref": f"#/components/schemas/{schema_name}"}, resolver=self._resolver,
                                format_checker=self._format_checker)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]

    def validate(self, instance, schema_name):
        """Raises AssertionError listing every violation of the named schema."""
        errs = self.errors(instance, schema_name)
        if errs:
            raise AssertionError(f"response does not match {schema_name}:\n  " + "\n  ".join(errs)
                                 + f"\ninstance: {json.dumps(instance)[:2000]}")

    def _deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"only local refs are supported: {ref}"
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def operations(self):
        """Every (METHOD, path template) the contract documents."""
        methods = ("get", "put", "post", "delete", "patch", "head", "options")
        return {(m.upper(), path) for path, item in self.doc.get("paths", {}).items() for m in item if m in methods}

    def check_response(self, method, path, response):
        """Asserts `response` (httpx) is one the contract declares for METHOD path: a documented
        status, a declared media type, and a JSON body valid against its schema."""
        op = self.doc["paths"].get(path, {}).get(method.lower())
        assert op is not None, f"{method} {path} is not in {self.path}"
        declared = op.get("responses", {})
        spec = declared.get(str(response.status_code)) or declared.get("default")
        assert spec is not None, (f"{method} {path} answered {response.status_code}, which the contract does not "
                                  f"declare (declared: {sorted(declared)})")
        spec = self._deref(spec)
        content = spec.get("content", {})
        if not content:
            assert not response.content, f"{method} {path} {response.status_code}: no body is declared"
            return
        ctype = response.headers.get("content-type", "").split(";")[0].strip()
        assert ctype in content, f"{method} {path} {response.status_code}: content-type {ctype!r} not in {sorted(content)}"
        schema = content[ctype].get("schema")
        if schema is None or not (ctype == "application/json" or ctype.endswith("+json")):
            return
        v = self._validator_cls(schema, resolver=self._resolver, format_checker=self._format_checker)
        errs = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(response.json())]
        if errs:
            raise AssertionError(f"{method} {path} {response.status_code} body breaks the contract:\n  "
                                 + "\n  ".join(errs) + f"\nbody: {response.text[:2000]}")


# --- helpers of the tests of the OAuth, key, revocation, client and admin surfaces ------------


def strong_password():
    """A password the policy accepts (random, mixed classes). cracklib calls a password
    "too simplistic/systematic" when too many neighbouring characters are adjacent in
    ASCII (ab, 98, ...); random text has a few now and then, so such draws are redone."""
    while True:
        pw = "Ax9!" + secrets.token_urlsafe(15)
        if not any(abs(ord(a) - ord(b)) <= 1 for a, b in zip(pw, pw[1:])):
            return pw


def wait_for(pred, timeout=5.0, step=0.05):
    """Calls pred() every `step` seconds until it returns something true, and returns that;
    after `timeout` seconds, its last answer (false)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def basic_auth(client_id, secret):
    """The Authorization value of client_secret_basic for an OAuth client."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def client_auth(client):
    """Headers authenticating as `client` (a POST /v1/admin/clients answer) with
    client_secret_basic."""
    return {"authorization": basic_auth(client["client_id"], client["client_secret"])}


def _jwt_part(token, i):
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_header(token):
    """The JOSE header of a JWT, decoded without verifying anything."""
    return _jwt_part(token, 0)


def jwt_claims(token):
    """The claims of a JWT, decoded without verifying anything."""
    return _jwt_part(token, 1)


def instance_sql(d, query):
    """Runs SQL as the superuser in the database of latchd instance `d` (its database_url);
    returns psql -At output."""
    info = dict(kv.split("=", 1) for kv in d.config["database_url"].split())
    return psql(info["host"], query, db=info["dbname"], user="postgres")


def make_client(http, token, prefix="svc", missing_ok=False, **body):
    """An OAuth client made through POST /v1/admin/clients with an admin's access token:
    `body` over the defaults (a random name starting with `prefix`, grant client_credentials,
    no scopes, no permissions). Returns the 201 answer, secret included; None when
    `missing_ok` and the server has no such endpoint (404)."""
    body.setdefault("name", f"{prefix}-{uuid.uuid4().hex[:8]}")
    body.setdefault("grant_types", ["client_credentials"])
    body.setdefault("scopes", [])
    body.setdefault("permissions", [])
    r = http.post("/v1/admin/clients", json=body, headers=bearer(token))
    if missing_ok and r.status_code == 404:
        return None
    assert r.status_code == 201, r.text
    return r.json()


class ContractApi:
    """An HTTP/2 client of latchd instance `d` whose every response is never a 500 and is
    checked against the contract: for every path, or with `documented_only` only for the
    paths and methods the contract already has."""

    def __init__(self, d, openapi, documented_only=False):
        self.c = d.h2c(timeout=30.0)
        self.openapi = openapi
        self.documented_only = documented_only

    def call(self, method, template, url=None, token=None, **kw):
        """`method` on `url` (default: the path `template` itself, as the contract names it),
        with a bearer `token` when given."""
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        r = self.c.request(method, url or template, headers=headers, **kw)
        assert r.status_code < 500, f"{method} {url or template}: {r.status_code} {r.text}"
        if not self.documented_only or method.lower() in self.openapi.doc.get("paths", {}).get(template, {}):
            self.openapi.check_response(method, template, r)
        return r


def problem(r, status, code, fields=()):
    """Asserts `r` is a problem+json answer with this status and code whose errors name every
    field of `fields` (one name, or several); returns its body."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code, r.text
    got = [e["field"] for e in body.get("errors", [])]
    for f in (fields,) if isinstance(fields, str) else fields:
        assert f in got, r.text
    return body


class AdminWorld:
    """A latchd instance `d`, a ContractApi `api` on it, and its database as the superuser."""

    def __init__(self, d, api):
        self.d = d
        self.api = api

    def sql(self, query):
        return instance_sql(self.d, query)

    def login(self, tenant, email, password):
        """POST /v1/auth/login through the api; the token response."""
        r = self.api.call("POST", "/v1/auth/login", json={"tenant": tenant, "email": email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()


def shut_down(factory, *clients):
    """For a module fixture's teardown: closes `clients`, stops what LatchdFactory `factory`
    started and fails with whatever the instances left (a bad exit, sanitizer reports)."""
    import pytest  # here, not at the top: nothing else in this module needs pytest

    for c in clients:
        c.close()
    problems = factory.cleanup()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
