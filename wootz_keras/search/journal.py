"""The exploration journal: one SQLite file that survives crashes and is shared.

Each finished candidate is one row, written in its own transaction only
after the candidate is complete, so a crash (even SIGKILL) loses at most the
candidate in flight. Several processes (workers) may share the file: it runs
in WAL mode, writes take `BEGIN IMMEDIATE`, and readers wait on a busy
timeout instead of failing.

Each mode ("default", "composed") has a header: the settings its rows were
produced under (objective, candidate-list hash, full accuracy, fine-tuning
settings). Resuming a mode with other settings is refused, and so are
modes whose objective / candidates / full accuracy disagree with each other.

Example:
    >>> import tempfile, os
    >>> from wootz_keras.search.objectives import Candidate
    >>> path = os.path.join(tempfile.mkdtemp(), "journal.sqlite")
    >>> with Journal(path) as j:
    ...     j.begin("default", {"full_accuracy": 0.9})
    ...     j.record("default", Candidate(0, (0.5,), 10, 20), position=0,
    ...              init_accuracy=0.1, final_accuracy=0.8, seconds=1.5)
    ...     sorted(j.finished("default"))
    True
    True
    [0]
"""

import datetime
import hashlib
import json
import math
import numbers
import os
import sqlite3
import time

FORMAT = "wootz-journal"
VERSION = 1
MODES = ("default", "composed")
#: Header keys that must agree across the modes of one journal.
SHARED_KEYS = ("objective", "candidates", "full_accuracy")
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    mode TEXT PRIMARY KEY,
    header TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    mode TEXT NOT NULL,
    idx INTEGER NOT NULL,
    position INTEGER,
    rates TEXT NOT NULL,
    params INTEGER NOT NULL,
    flops INTEGER NOT NULL,
    init_accuracy REAL,
    final_accuracy REAL NOT NULL,
    seconds REAL NOT NULL,
    worker INTEGER NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    extra TEXT,
    PRIMARY KEY (mode, idx)
);
"""

_COLUMNS = ("mode", "idx", "position", "rates", "params", "flops", "init_accuracy",
            "final_accuracy", "seconds", "worker", "started", "finished", "extra")


def now():
    """The current UTC time as an ISO 8601 string (milliseconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def candidates_hash(candidates):
    """A stable hash of a candidate list (indices, rates, sizes), order-independent.

    Example:
        >>> from wootz_keras.search.objectives import Candidate
        >>> h = candidates_hash([Candidate(0, (0.3,), 5, 9)])
        >>> len(h)
        16
    """
    items = sorted((c.index, [round(r, 12) for r in c.rates], c.params, c.flops)
                   for c in candidates)
    text = json.dumps(items, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _normalise(obj):
    """JSON round trip, so stored and given headers compare alike."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _same(a, b, tol=1e-9):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return a == b or abs(float(a) - float(b)) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    return a == b


def _differences(stored, given, keys=None):
    keys = sorted(set(stored) | set(given)) if keys is None else keys
    out = []
    for k in keys:
        if k not in stored and k not in given:
            continue
        if not _same(stored.get(k), given.get(k)):
            out.append(f"{k}: journal has {json.dumps(stored.get(k), sort_keys=True)}, "
                       f"now {json.dumps(given.get(k), sort_keys=True)}")
    return out


class JournalMismatchError(ValueError):
    """The journal was started with other settings than the ones given now."""


class Journal:
    """A crash-safe, multi-process SQLite journal of finished candidates.

    `Journal(path)` creates the file if it does not exist. An existing file
    that is not a wootz journal, or is damaged, raises ValueError naming the
    file; it is never recreated or overwritten. `timeout` is how long (s) a
    writer waits for another process's lock.

    Rows are dicts: mode, index, position, rates (list), params, flops,
    init_accuracy (or None), final_accuracy, seconds, worker, started,
    finished (ISO 8601 UTC) and extra (a dict from the evaluate callable).

    Example:
        >>> import tempfile, os
        >>> j = Journal(os.path.join(tempfile.mkdtemp(), "j.sqlite"))
        >>> j.finished("composed")
        {}
        >>> j.close()
    """

    def __init__(self, path, timeout=60.0):
        self.path = os.fspath(path)
        self.timeout = float(timeout)
        self._conn = None
        self._open()

    # -- opening --------------------------------------------------------
    def _fail(self, why):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        raise ValueError(f"journal {self.path!r}: {why}") from None

    def _open(self):
        path = self.path
        if os.path.isdir(path):
            raise ValueError(f"journal path {path!r} is a directory")
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if exists:
            with open(path, "rb") as f:
                magic = f.read(len(_SQLITE_MAGIC))
            if magic != _SQLITE_MAGIC:
                self._fail("not a wootz journal (not an SQLite database)")
        else:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
        try:
            self._conn = sqlite3.connect(path, timeout=self.timeout, isolation_level=None)
            self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if exists:
                check = [r[0] for r in self._conn.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:
                    self._fail(f"database disk image is malformed ({'; '.join(check[:3])})")
            self._check_tables()  # before WAL: never touch another program's database
            self._use_wal()
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                tables = self._check_tables()
                if not tables:
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        self._conn.execute(stmt)
                    self._conn.execute("INSERT INTO meta VALUES ('format', ?), ('version', ?)",
                                       (FORMAT, str(VERSION)))
                meta = dict(self._conn.execute("SELECT key, value FROM meta"))
                if meta.get("format") != FORMAT:
                    raise ValueError("not a wootz journal (format "
                                     f"{meta.get('format')!r})")
                if int(meta.get("version", -1)) > VERSION:
                    raise ValueError(f"journal version {meta.get('version')} is newer than "
                                     f"this wootz_keras understands ({VERSION})")
                missing = {"runs", "results"} - tables if tables else set()
                if missing:
                    raise ValueError(f"not a wootz journal (missing tables {sorted(missing)})")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except ValueError as e:
            self._fail(str(e))
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "file is not a database" in msg:
                msg = "not a wootz journal (file is not a database)"
            self._fail(msg)

    def _use_wal(self):
        """Switch to WAL mode (persistent in the file). The switch needs an
        exclusive lock that SQLite's busy handler does not wait for, so two
        processes opening a new journal at once retry until `timeout`."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check_tables(self):
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise ValueError("not a wootz journal (it holds other tables: "
                             f"{', '.join(sorted(tables))})")
        return tables

    # -- plumbing ---------------------------------------------------------
    def _conn_or_fail(self):
        if self._conn is None:
            raise ValueError(f"journal {self.path!r} is closed")
        return self._conn

    def _write(self, fn):
        conn = self._conn_or_fail()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise ValueError(f"journal {self.path!r}: {e}") from None
        try:
            out = fn(conn)
            conn.execute("COMMIT")
            return out
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _read(self, sql, args=()):
        try:
            return self._conn_or_fail().execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"journal {self.path!r}: {e}") from None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Journal({self.path!r})"

    # -- headers ----------------------------------------------------------
    def headers(self):
        """{mode: header dict} for every mode begun in this journal."""
        return {m: json.loads(h) for m, h in self._read("SELECT mode, header FROM runs")}

    def header(self, mode):
        """The header a mode was begun with, or None."""
        return self.headers().get(_check_mode(mode))

    def check(self, mode, header):
        """Raise `JournalMismatchError` if `mode`'s stored header differs on `header`'s keys.

        Read-only. Returns True if the mode has a header, False if not begun.
        """
        mode = _check_mode(mode)
        header = _normalise(dict(header))
        stored = self.header(mode)
        if stored is None:
            return False
        diffs = _differences(stored, header, sorted(header))
        if diffs:
            raise JournalMismatchError(
                f"journal {self.path!r} holds mode {mode!r} with other settings: "
                + "; ".join(diffs))
        return True

    def begin(self, mode, header):
        """Start `mode` with `header`, or check that it matches the stored one.

        Returns True when the mode is new, False when resuming. A different
        header -- or a `SHARED_KEYS` value that disagrees with another mode --
        raises `JournalMismatchError` (a ValueError) listing what differs.
        """
        mode = _check_mode(mode)
        header = _normalise(dict(header))

        def fn(conn):
            stored = {m: json.loads(h) for m, h in conn.execute("SELECT mode, header FROM runs")}
            if mode in stored:
                diffs = _differences(stored[mode], header)
                if diffs:
                    raise JournalMismatchError(
                        f"journal {self.path!r} was started for mode {mode!r} with other "
                        f"settings; resume with the same settings or use a new journal file. "
                        + "; ".join(diffs))
                return False
            for other, h in stored.items():
                diffs = _differences(h, header, [k for k in SHARED_KEYS if k in h or k in header])
                if diffs:
                    raise JournalMismatchError(
                        f"journal {self.path!r}: mode {mode!r} disagrees with mode {other!r} "
                        "on settings both modes must share; " + "; ".join(diffs))
            conn.execute("INSERT INTO runs VALUES (?, ?, ?)",
                         (mode, json.dumps(header, sort_keys=True), now()))
            return True

        return self._write(fn)

    # -- results -----------------------------------------------------------
    def record(self, mode, candidate, *, final_accuracy, init_accuracy=None, seconds,
               position=None, worker=0, started=None, finished=None, extra=None):
        """Store one finished candidate; returns False if it was already there.

        The first row for (mode, candidate) stays: a candidate evaluated
        twice (two workers racing on a resume) keeps its first result.
        """
        mode = _check_mode(mode)
        final_accuracy = _accuracy("final_accuracy", final_accuracy)
        init_accuracy = None if init_accuracy is None else _accuracy("init_accuracy",
                                                                     init_accuracy)
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
        finished = finished or now()
        started = started or finished
        row = (mode, candidate.index, position, json.dumps(list(candidate.rates)),
               candidate.params, candidate.flops, init_accuracy, final_accuracy, seconds,
               int(worker), started, finished,
               json.dumps(_normalise(extra or {}), sort_keys=True))

        def fn(conn):
            cur = conn.execute(f"INSERT OR IGNORE INTO results ({', '.join(_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
            return cur.rowcount == 1

        return self._write(fn)

    def rows(self, mode=None):
        """All finished rows (of one mode, or all), in the order they finished."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results"
        args = ()
        if mode is not None:
            sql += " WHERE mode = ?"
            args = (_check_mode(mode),)
        sql += " ORDER BY finished, rowid"
        return [_row_dict(r) for r in self._read(sql, args)]

    def finished(self, mode):
        """{candidate index: row} of the finished candidates of `mode`."""
        return {r["index"]: r for r in self.rows(mode)}

    def integrity_check(self):
        """SQLite's `PRAGMA integrity_check` result: "ok" when the file is sound."""
        return "; ".join(r[0] for r in self._read("PRAGMA integrity_check"))


def _row_dict(r):
    d = dict(zip(_COLUMNS, r))
    d["index"] = d.pop("idx")
    d["rates"] = json.loads(d["rates"])
    d["extra"] = json.loads(d["extra"]) if d["extra"] else {}
    return d


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _accuracy(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v
