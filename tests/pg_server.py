"""A throwaway PostgreSQL server for the tests and benchmarks (loopback only).

`server()` starts one cluster per process from the installed binaries
(Debian: `apt-get install -y postgresql`, binaries in
/usr/lib/postgresql/<version>/bin) in a temporary folder on a free port,
and stops it when the process exits. Logins over TCP need a password
(scram-sha-256), so the tests can check that a refused login is reported
without the password.

    srv = server()
    url = srv.create_database()      # postgresql://wootz:...@127.0.0.1:PORT/wootz_t1

Environment:
    WOOTZ_POSTGRES_URL=postgresql://user:pw@host:port/db   use that server instead
        (the user must be allowed to CREATE DATABASE)
    WOOTZ_SKIP_POSTGRES=1   skip the PostgreSQL tests (they FAIL when the
        server binaries are missing and this is not set)
"""

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading

USER = "wootz"
PASSWORD = "wootz-test-secret"
_lock = threading.Lock()
_server = None
_counter = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def skip_requested():
    return os.environ.get("WOOTZ_SKIP_POSTGRES", "").strip().lower() in ("1", "true", "yes")


def find_bindir():
    """The folder holding initdb / pg_ctl / postgres, newest version first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: [int(x) for x in p.split("/")[-2].split(".")
                                       if x.isdigit()], reverse=True)
    for d in candidates:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        "/usr/lib/postgresql/*/bin or on PATH: install them (Debian: apt-get install -y "
        "postgresql) or set WOOTZ_SKIP_POSTGRES=1 to skip the PostgreSQL tests")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running cluster (or an external server from WOOTZ_POSTGRES_URL)."""

    def __init__(self, durable=False):
        """`durable=False` (the tests): fsync and synchronous commit off, for speed;
        True (benchmarks): PostgreSQL's default durability settings."""
        self.dir = None
        self.external = os.environ.get("WOOTZ_POSTGRES_URL")
        if self.external:
            from psycopg.conninfo import conninfo_to_dict
            info = conninfo_to_dict(self.external)
            self.host, self.port = info.get("host", "127.0.0.1"), int(info.get("port", 5432))
            self.user, self.password = info.get("user", USER), info.get("password", "")
            self.admin_db = info.get("dbname", "postgres")
            return
        self.bindir = find_bindir()
        self.host, self.port = "127.0.0.1", _free_port()
        self.user, self.password, self.admin_db = USER, PASSWORD, "postgres"
        self.dir = tempfile.mkdtemp(prefix="wootz-pg-")
        self.data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if as_postgres:
            try:
                pg = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, but there is no 'postgres' user to run the server as "
                    "(the Debian package postgresql creates it)") from None
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        self._run(as_postgres, [os.path.join(self.bindir, "initdb"), "-D", self.data, "-U",
                                USER, "--pwfile", pwfile, "--auth-local=trust",
                                "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(as_postgres, [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-o",
                                opts, "-l", os.path.join(self.dir, "log"), "-w", "start"])
        self._as_postgres = as_postgres
        atexit.register(self.stop)

    def _run(self, as_postgres, argv):
        if as_postgres:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=self.dir, timeout=120)
        if out.returncode != 0:
            log = ""
            logfile = os.path.join(self.dir, "log")
            if os.path.exists(logfile):
                log = open(logfile).read()[-2000:]
            raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n"
                               f"{out.stdout[-2000:]}\n{log}")

    def url(self, dbname, user=None, password=None):
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def create_database(self, prefix="wootz_t"):
        """A new empty database; returns its URL."""
        import psycopg
        name = f"{prefix}{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(self.admin_db), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        if self.dir is None:
            return
        try:
            self._run(self._as_postgres, [os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                          "-m", "immediate", "-w", "stop"])
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def server():
    """The process's server, started on first use (raises PostgresUnavailable)."""
    global _server
    with _lock:
        if isinstance(_server, Exception):
            raise _server
        if _server is None:
            try:
                _server = Server()
            except Exception as e:  # remember: do not retry initdb for every test
                _server = e
                raise
        return _server


BACKENDS = ("sqlite", "postgresql")


def journal_factory(kind, tmp_path):
    """A function returning a fresh, empty journal target (path or URL) of `kind`.

    For "postgresql" it skips the test only when WOOTZ_SKIP_POSTGRES=1; a
    missing server FAILS the test with the install hint.
    """
    import pytest

    if kind == "sqlite":
        counter = itertools.count(1)
        return lambda: str(tmp_path / f"journal{next(counter)}.sqlite")
    if skip_requested():
        pytest.skip("WOOTZ_SKIP_POSTGRES=1: PostgreSQL journal tests skipped")
    try:
        srv = server()
    except PostgresUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"could not start a throwaway PostgreSQL server: {e}", pytrace=False)
    return srv.create_database
