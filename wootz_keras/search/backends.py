"""Where a journal lives: an SQLite file (embedded default) or a PostgreSQL database.

A backend opens connections, runs the journal's SQL (written once, with `?`
placeholders), wraps transactions and turns driver errors into one-line
ValueErrors that name the journal -- for PostgreSQL its host, port and
database, never the password. The journal (journal.py) holds the schema and
every query; a backend only supplies what differs between the two databases:

    now_sql      the database clock in epoch seconds (leases are judged by
                 one clock: the server's for PostgreSQL, the machine's for SQLite)
    lock_rows    the row-locking suffix of a claim query (FOR UPDATE SKIP LOCKED)
    transaction  BEGIN IMMEDIATE (SQLite: one writer at a time) or BEGIN

`open_backend(target)` takes a path or a postgresql:// URL.

Example:
    >>> import tempfile, os
    >>> b = open_backend(os.path.join(tempfile.mkdtemp(), "j.sqlite"))
    >>> b.name, b.where.endswith("j.sqlite'")
    ('sqlite', True)
    >>> describe_url("postgresql://ann:secret@db.lab:5433/runs")
    'postgresql://ann@db.lab:5433/runs'
"""

import contextlib
import getpass
import os
import sqlite3
import time

_SQLITE_MAGIC = b"SQLite format 3\x00"
URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_PG_PORT = 5432
#: Seconds to wait for a PostgreSQL server before giving up (unless the URL sets one).
CONNECT_TIMEOUT = 10


def is_url(target):
    """True when `target` is a database URL rather than a file path."""
    return isinstance(target, str) and "://" in target


def _pg_parts(url):
    """(user, host, port, dbname, params) of a postgresql URL, defaults filled in."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError(
            f"journal {describe_url(url, parse=False)}: PostgreSQL journals need psycopg 3: "
            "pip install 'psycopg[binary]'") from None
    try:
        info = conninfo_to_dict(url)
    except Exception as e:  # noqa: BLE001 - psycopg raises ProgrammingError on bad URLs
        raise ValueError(f"journal {describe_url(url, parse=False)}: not a valid "
                         f"PostgreSQL URL ({_first_line(e)})") from None
    user = info.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    host = info.get("host") or os.environ.get("PGHOST") or "localhost"
    port = info.get("port") or os.environ.get("PGPORT") or DEFAULT_PG_PORT
    dbname = info.get("dbname") or os.environ.get("PGDATABASE") or user
    return user, host, int(str(port).split(",")[0]), dbname, info


def describe_url(url, parse=True):
    """The URL as shown in messages: user, host, port and database, never the password."""
    if parse:
        try:
            user, host, port, dbname, _ = _pg_parts(url)
            return f"postgresql://{user}@{host}:{port}/{dbname}"
        except ValueError:
            pass
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        auth, _, hostport = netloc.rpartition("@")
        netloc = auth.split(":")[0] + "@" + hostport
    return f"{scheme}://{netloc}{slash}{path.split('?')[0]}"


def describe_journal(target):
    """How to show a journal target in logs: the path, or the URL without its password.

    Example:
        >>> describe_journal("postgresql://ann:secret@db.lab/runs")
        'postgresql://ann@db.lab:5432/runs'
        >>> describe_journal("explore.sqlite")
        'explore.sqlite'
    """
    if isinstance(target, str) and is_url(target):
        return describe_url(target) if target.startswith(URL_SCHEMES) else \
            describe_url(target, parse=False)
    return os.fspath(target) if not hasattr(target, "where") else target.path


def _first_line(e):
    return " ".join(str(e).strip().splitlines()[0].split()) if str(e).strip() else type(e).__name__


class SQLiteBackend:
    """A journal in one SQLite file: WAL mode, `BEGIN IMMEDIATE` writes, busy timeout.

    Every worker must be on the machine that holds the file (SQLite's locks
    are not reliable on network file systems).
    """

    name = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    lock_rows = ""
    errors = (sqlite3.DatabaseError,)
    retry = ()  # BEGIN IMMEDIATE waits (busy timeout) instead of failing

    def __init__(self, path, timeout=60.0):
        self.path = os.fspath(path)
        self.where = repr(self.path)
        self.timeout = float(timeout)

    def fail(self, why):
        raise ValueError(f"journal {self.where}: {why}") from None

    def connect(self, check=False):
        """A new connection; with `check`, refuse files that are not sound SQLite databases."""
        path = self.path
        if os.path.isdir(path):
            raise ValueError(f"journal path {path!r} is a directory")
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if check and exists:
            with open(path, "rb") as f:
                if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                    self.fail("not a wootz journal (not an SQLite database)")
        if not exists:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        conn = None
        try:
            conn = sqlite3.connect(path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if check and exists:
                result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
                if result != ["ok"]:
                    conn.close()
                    self.fail(f"database disk image is malformed ({'; '.join(result[:3])})")
            return conn
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            self.fail(self._message(e))

    @staticmethod
    def _message(e):
        msg = str(e)
        if "file is not a database" in msg:
            return "not a wootz journal (file is not a database)"
        return msg

    def prepare(self, conn):
        """Switch to WAL (persistent in the file) and full syncs; after the table check,
        so another program's database is never touched. The switch needs an exclusive
        lock that the busy handler does not wait for: retry until `timeout`."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous = FULL")

    def execute(self, conn, sql, args=()):
        return conn.execute(sql, args)

    def executemany(self, conn, sql, rows):
        conn.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self, conn, exclusive=False):
        conn.execute("BEGIN IMMEDIATE")  # one writer at a time: exclusive already
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def tables(self, conn):
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def integrity_check(self, conn):
        return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))

    def message(self, e):
        return self._message(e)


class PostgresBackend:
    """A journal in a PostgreSQL database (psycopg 3), shared by workers on any machines.

    One journal per database (or per schema, with `?options=-csearch_path%3Dname`
    in the URL). Claims lock rows with `SELECT ... FOR UPDATE SKIP LOCKED`.
    """

    name = "postgresql"
    now_sql = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    lock_rows = " FOR UPDATE SKIP LOCKED"
    _LOCK_KEY = 0x776F6F747A  # "wootz": serialises schema creation and mode headers

    def __init__(self, url, timeout=60.0):
        user, host, port, dbname, info = _pg_parts(url)
        import psycopg
        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        # transactions the server aborted to resolve a conflict: run them again
        self.retry = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        self.url = url
        self.user, self.host, self.port, self.dbname = user, host, port, dbname
        self.path = self.where = f"postgresql://{user}@{host}:{port}/{dbname}"
        self.timeout = float(timeout)
        self._kwargs = {"autocommit": True, "application_name": "wootz_keras"}
        if "connect_timeout" not in info:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT

    def _place(self):
        return f"host {self.host}, port {self.port}, database {self.dbname}"

    def fail(self, why):
        raise ValueError(f"journal {self.where}: {why}") from None

    def connect(self, check=False):
        try:
            conn = self._psycopg.connect(self.url, **self._kwargs)
        except self._psycopg.Error as e:
            raise ValueError(self._connect_message(e)) from None
        try:
            conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
        except self._psycopg.Error as e:
            conn.close()
            self.fail(self.message(e))
        return conn

    def _connect_message(self, e):
        text = " ".join(str(e).split())
        low = text.lower()
        detail = text.rsplit("failed:", 1)[-1].replace("FATAL:", "").strip(" :") or text
        detail = detail.split(" Is the server running")[0].strip()
        password = self._password()
        if password:
            detail = detail.replace(password, "***")
        if ("password authentication failed" in low or "role" in low and "does not exist" in low
                or "no pg_hba.conf entry" in low or "authentication" in low
                or "no password supplied" in low):
            what = "the server refused the login"
        elif "database" in low and "does not exist" in low:
            what = "no such database on the server"
        elif ("refused" in low or "resolve host" in low or "translate host" in low
              or "timeout" in low or "no route" in low or "unreachable" in low
              or "could not connect" in low):
            what = "cannot reach the server"
        else:
            what = "cannot connect"
        return f"journal {self.where}: {what} ({self._place()}): {detail}"

    def _password(self):
        try:
            return _pg_parts(self.url)[4].get("password") or ""
        except ValueError:
            return ""

    def prepare(self, conn):
        pass

    def execute(self, conn, sql, args=()):
        return conn.execute(sql.replace("?", "%s"), tuple(args))

    def executemany(self, conn, sql, rows):
        with conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])

    @contextlib.contextmanager
    def transaction(self, conn, exclusive=False):
        with conn.transaction():
            if exclusive:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK_KEY,))
            yield

    def tables(self, conn):
        return {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()")}

    def integrity_check(self, conn):
        conn.execute("SELECT 1")
        return "ok"

    def message(self, e):
        msg = _first_line(e)
        if isinstance(e, self._psycopg.OperationalError):
            return f"lost the connection ({self._place()}): {msg}"
        return msg


def open_backend(target, timeout=60.0):
    """The backend for a path (SQLite) or a postgresql:// URL."""
    if isinstance(target, str) and is_url(target):
        if target.startswith(URL_SCHEMES):
            return PostgresBackend(target, timeout)
        raise ValueError(f"journal {describe_url(target, parse=False)}: unsupported URL scheme "
                         f"(give a file path for SQLite or a postgresql://user@host:port/db URL)")
    return SQLiteBackend(target, timeout)
