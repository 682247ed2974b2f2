"""The exploration journal: finished candidates and leased work claims.

One schema and one set of queries for both places a journal can live
(backends.py): an SQLite file (the embedded default; workers on one machine)
or a PostgreSQL database (`postgresql://user@host:port/db`; workers anywhere).

Tables:
    meta     format and schema version
    runs     one header per mode: the settings its rows were produced under
             (objective, candidate-list hash, full accuracy, fine-tuning
             settings). Resuming a mode with other settings is refused, and
             so are modes whose objective / candidates / full accuracy
             disagree with each other.
    results  one row per finished candidate, PRIMARY KEY (mode, idx): a
             candidate is recorded at most once, whatever the workers do.
    claims   the work list of a mode: one row per ordered position (objective
             order), with done / met flags and the current claim (worker,
             token, lease expiry in the database's clock, attempts).

Claims. `claim()` takes the first unfinished positions in objective order
whose claim is free or expired, before the first met position (and before
`max_positions`), and leases them: PostgreSQL locks the candidate rows with
`SELECT ... FOR UPDATE SKIP LOCKED`, SQLite writes under `BEGIN IMMEDIATE`.
`renew()` extends a lease and `record(..., claim=c)` stores a result only if
`c` is still held (compare-and-set on its token, in the same transaction that
marks the position done). A lease that expired stays valid until another
worker takes the position over; from then on the old holder can neither
renew nor record it. So a finished candidate is never claimed again and every
finished candidate is recorded exactly once; a dead worker's position is
taken over once its lease expires.

Each write is one transaction, so a crash (even SIGKILL) loses at most the
candidates in flight.

Example:
    >>> import tempfile, os
    >>> from wootz_keras.search.objectives import Candidate
    >>> path = os.path.join(tempfile.mkdtemp(), "journal.sqlite")
    >>> with Journal(path) as j:
    ...     j.begin("default", {"full_accuracy": 0.9}, order=[7, 3])
    ...     [c] = j.claim("default", worker="w0")
    ...     (c.position, c.index)
    ...     j.record("default", Candidate(7, (0.5,), 10, 20), claim=c,
    ...              init_accuracy=0.1, final_accuracy=0.8, seconds=1.5)
    ...     sorted(j.finished("default")), [u["index"] for u in j.unfinished("default")]
    True
    (0, 7)
    True
    ([7], [3])
"""

import dataclasses
import datetime
import hashlib
import json
import math
import numbers
import secrets
import time

from wootz_keras.search.backends import open_backend

FORMAT = "wootz-journal"
VERSION = 2
MODES = ("default", "composed")
#: Header keys that must agree across the modes of one journal.
SHARED_KEYS = ("objective", "candidates", "full_accuracy")
#: A lease that is not renewed for this long (s) may be taken over by another worker.
DEFAULT_LEASE = 60.0
_NO_LIMIT = 2 ** 31 - 1

_TABLES = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "runs": """CREATE TABLE IF NOT EXISTS runs (
        mode TEXT PRIMARY KEY,
        header TEXT NOT NULL,
        created TEXT NOT NULL)""",
    "results": """CREATE TABLE IF NOT EXISTS results (
        mode TEXT NOT NULL,
        idx BIGINT NOT NULL,
        position INTEGER,
        rates TEXT NOT NULL,
        params BIGINT NOT NULL,
        flops BIGINT NOT NULL,
        init_accuracy DOUBLE PRECISION,
        final_accuracy DOUBLE PRECISION NOT NULL,
        seconds DOUBLE PRECISION NOT NULL,
        worker TEXT NOT NULL,
        started TEXT NOT NULL,
        finished TEXT NOT NULL,
        extra TEXT,
        PRIMARY KEY (mode, idx))""",
    "claims": """CREATE TABLE IF NOT EXISTS claims (
        mode TEXT NOT NULL,
        position INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        met INTEGER,
        worker TEXT,
        token TEXT,
        expires DOUBLE PRECISION,
        claimed TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (mode, position),
        UNIQUE (mode, idx))""",
}

_COLUMNS = ("mode", "idx", "position", "rates", "params", "flops", "init_accuracy",
            "final_accuracy", "seconds", "worker", "started", "finished", "extra")


def now():
    """The current UTC time as an ISO 8601 string (milliseconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def candidates_hash(candidates):
    """A stable hash of a candidate list (indices, rates, sizes, predicted
    latency), order-independent.

    Example:
        >>> from wootz_keras.search.objectives import Candidate
        >>> h = candidates_hash([Candidate(0, (0.3,), 5, 9)])
        >>> len(h)
        16
    """
    # a predicted latency (latency objectives order by it) joins the hash when
    # present; candidates without one hash as they always did
    items = sorted((c.index, [round(r, 12) for r in c.rates], c.params, c.flops)
                   + (() if c.latency_ms is None else (round(c.latency_ms, 6),))
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


class _Refused(ValueError):
    """Opening found something that is not (this version of) a wootz journal."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A leased position: hold it while evaluating, then `Journal.record(..., claim=)`.

    `previous` names the worker whose expired lease this claim took over (or None).
    """

    mode: str
    position: int
    index: int
    token: str
    worker: str
    previous: object = None


class Journal:
    """A crash-safe journal of finished candidates and work claims, shared by workers.

    `Journal(target)`: `target` is a file path (SQLite, created if missing) or
    a `postgresql://user[:password]@host:port/db` URL (psycopg 3; the
    database must exist, the tables are created on first use). A file or
    database that is not a wootz journal, or is damaged, raises ValueError
    naming it (for PostgreSQL: host, port and database, never the password);
    it is never recreated or overwritten. So does a server that cannot be
    reached or refuses the login. `timeout` is how long (s) a writer waits
    for another process's lock.

    Rows are dicts: mode, index, position, rates (list), params, flops,
    init_accuracy (or None), final_accuracy, seconds, worker (the id of the
    worker that recorded it), started, finished (ISO 8601 UTC) and extra (a
    dict from the evaluate callable).

    Example:
        >>> import tempfile, os
        >>> j = Journal(os.path.join(tempfile.mkdtemp(), "j.sqlite"))
        >>> j.backend, j.finished("composed")
        ('sqlite', {})
        >>> j.close()
    """

    def __init__(self, path, timeout=60.0):
        self._db = open_backend(path, timeout)
        self.path = self._db.path      # the file, or the URL without the password
        self.where = self._db.where    # how messages name the journal
        self.backend = self._db.name   # "sqlite" or "postgresql"
        self.timeout = float(timeout)
        self._conn = None
        self._open()

    # -- opening --------------------------------------------------------
    def _fail(self, why):
        self.close()
        raise ValueError(f"journal {self.where}: {why}") from None

    def _open(self):
        db = self._db
        self._conn = db.connect(check=True)
        try:
            self._check_tables()  # before anything is written: never touch another database
            db.prepare(self._conn)
            with db.transaction(self._conn, exclusive=True):
                tables = self._check_tables()
                if not tables:
                    for sql in _TABLES.values():
                        db.execute(self._conn, sql)
                    db.execute(self._conn, "INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)",
                               ("format", FORMAT, "version", str(VERSION)))
                meta = dict(db.execute(self._conn, "SELECT key, value FROM meta").fetchall())
                if meta.get("format") != FORMAT:
                    raise _Refused(f"not a wootz journal (format {meta.get('format')!r})")
                try:
                    version = int(meta.get("version", -1))
                except ValueError:
                    raise _Refused(f"not a wootz journal (version {meta.get('version')!r})") \
                        from None
                if version > VERSION:
                    raise _Refused(f"journal version {version} is newer than this wootz_keras "
                                   f"understands ({VERSION})")
                missing = {"runs", "results"} - tables if tables else set()
                if missing:
                    raise _Refused(f"not a wootz journal (missing tables {sorted(missing)})")
                if tables and version < VERSION:  # version 1: no claims yet
                    db.execute(self._conn, _TABLES["claims"])
                    db.execute(self._conn, "UPDATE meta SET value = ? WHERE key = 'version'",
                               (str(VERSION),))
        except _Refused as e:
            self._fail(str(e))
        except db.errors as e:
            self._fail(db.message(e))

    def _check_tables(self):
        tables = self._db.tables(self._conn)
        if tables and "meta" not in tables:
            raise _Refused("not a wootz journal (it holds other tables: "
                           f"{', '.join(sorted(tables))})")
        return tables

    def clone(self):
        """Another connection to the same journal (for a second thread, e.g. a heartbeat)."""
        other = Journal.__new__(Journal)
        other._db, other.path, other.where = self._db, self.path, self.where
        other.backend, other.timeout = self.backend, self.timeout
        other._conn = self._db.connect()
        return other

    # -- plumbing ---------------------------------------------------------
    def _conn_or_fail(self):
        if self._conn is None:
            raise ValueError(f"journal {self.where} is closed")
        return self._conn

    def _write(self, fn, exclusive=False, attempts=5):
        """Run `fn(conn)` in one transaction (again if the server aborted it in a deadlock)."""
        conn = self._conn_or_fail()
        for attempt in range(attempts):
            try:
                with self._db.transaction(conn, exclusive=exclusive):
                    return fn(conn)
            except self._db.retry:
                if attempt == attempts - 1:
                    raise ValueError(f"journal {self.where}: a transaction kept conflicting "
                                     f"with other workers ({attempts} tries)") from None
                time.sleep(0.01 * (attempt + 1))
            except self._db.errors as e:
                raise ValueError(f"journal {self.where}: {self._db.message(e)}") from None

    def _exec(self, conn, sql, args=()):
        return self._db.execute(conn, sql.replace("{NOW}", self._db.now_sql), args)

    def _read(self, sql, args=()):
        try:
            return self._exec(self._conn_or_fail(), sql, args).fetchall()
        except self._db.errors as e:
            raise ValueError(f"journal {self.where}: {self._db.message(e)}") from None

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
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
                f"journal {self.where} holds mode {mode!r} with other settings: "
                + "; ".join(diffs))
        return True

    def begin(self, mode, header, order=None):
        """Start `mode` with `header`, or check that it matches the stored one.

        `order`: the candidate indices in objective order; it makes the mode's
        positions claimable (`claim`). Given again on a resume, it must be
        the stored order. Returns True when the mode is new, False when
        resuming. A different header -- or a `SHARED_KEYS` value that
        disagrees with another mode -- raises `JournalMismatchError` (a
        ValueError) listing what differs.
        """
        mode = _check_mode(mode)
        header = _normalise(dict(header))
        if order is not None:
            order = [_index(i) for i in order]
            if len(set(order)) != len(order):
                raise ValueError("order has duplicate candidate indices")

        def fn(conn):
            stored = {m: json.loads(h) for m, h in
                      self._exec(conn, "SELECT mode, header FROM runs").fetchall()}
            new = mode not in stored
            if not new:
                diffs = _differences(stored[mode], header)
                if diffs:
                    raise JournalMismatchError(
                        f"journal {self.where} was started for mode {mode!r} with other "
                        f"settings; resume with the same settings or use a new journal. "
                        + "; ".join(diffs))
            else:
                for other, h in stored.items():
                    diffs = _differences(h, header,
                                         [k for k in SHARED_KEYS if k in h or k in header])
                    if diffs:
                        raise JournalMismatchError(
                            f"journal {self.where}: mode {mode!r} disagrees with mode "
                            f"{other!r} on settings both modes must share; " + "; ".join(diffs))
                self._exec(conn, "INSERT INTO runs (mode, header, created) VALUES (?, ?, ?)",
                           (mode, json.dumps(header, sort_keys=True), now()))
            if order is not None:
                self._store_order(conn, mode, order)
            return new

        return self._write(fn, exclusive=True)

    def _store_order(self, conn, mode, order):
        stored = dict(self._exec(conn, "SELECT position, idx FROM claims WHERE mode = ?",
                                 (mode,)).fetchall())
        if stored:
            if stored != dict(enumerate(order)):
                raise JournalMismatchError(
                    f"journal {self.where}: mode {mode!r} was started with another candidate "
                    "order; resume with the same objective and candidates")
        else:
            self._db.executemany(
                conn, "INSERT INTO claims (mode, position, idx, done, attempts) "
                      "VALUES (?, ?, ?, 0, 0)", [(mode, p, i) for p, i in enumerate(order)])
        # rows recorded without claims (journals of version 1, plain record() calls)
        self._exec(conn, "UPDATE claims SET done = 1 WHERE mode = ? AND done = 0 AND idx IN "
                         "(SELECT idx FROM results WHERE mode = ?)", (mode, mode))

    # -- claims -------------------------------------------------------------
    def claim(self, mode, worker, n=1, lease=DEFAULT_LEASE, max_positions=None):
        """Lease up to `n` positions of `mode` for `worker` (an id string); a list of `Claim`s.

        The first unfinished positions in objective order that nobody holds
        (never claimed, released, or whose lease expired), before the first
        met position and before `max_positions`. An empty list means nothing
        is claimable now: see `unfinished` for what is left and who holds it.
        """
        mode = _check_mode(mode)
        n = _positive_int("n", n)
        lease = _lease(lease)
        limit = _limit(max_positions)
        token = secrets.token_hex(8)
        stamp = now()

        def fn(conn):
            free = self._exec(
                conn, "SELECT position, idx, worker, token FROM claims WHERE mode = ? AND done = 0 "
                      "AND position < ? AND (token IS NULL OR expires <= {NOW}) AND position < "
                      "COALESCE((SELECT MIN(m.position) FROM claims m WHERE m.mode = ? AND "
                      "m.met = 1), ?) ORDER BY position LIMIT ?" + self._db.lock_rows,
                (mode, limit, mode, _NO_LIMIT, n)).fetchall()
            got = []
            for pos, idx, old_worker, old_token in free:
                cur = self._exec(
                    conn, "UPDATE claims SET worker = ?, token = ?, expires = {NOW} + ?, "
                          "claimed = ?, attempts = attempts + 1 WHERE mode = ? AND position = ? "
                          "AND done = 0 AND (token IS NULL OR expires <= {NOW})",
                    (str(worker), token, lease, stamp, mode, pos))
                if cur.rowcount == 1:
                    got.append(Claim(mode, int(pos), int(idx), token, str(worker),
                                     old_worker if old_token is not None else None))
            return got

        return self._write(fn)

    def renew(self, claims, lease=DEFAULT_LEASE):
        """Extend the leases of `claims`; returns the ones still held (the rest were lost)."""
        lease = _lease(lease)
        claims = list(claims)
        if not claims:
            return []

        def fn(conn):
            return [c for c in claims if self._exec(
                conn, "UPDATE claims SET expires = {NOW} + ? WHERE mode = ? AND position = ? "
                      "AND token = ? AND done = 0", (lease, c.mode, c.position, c.token)
            ).rowcount == 1]

        return self._write(fn)

    def release(self, claims):
        """Give claims back unfinished (e.g. evaluate() failed): claimable at once."""
        claims = list(claims)
        if not claims:
            return

        def fn(conn):
            for c in claims:
                self._exec(conn, "UPDATE claims SET token = NULL, expires = NULL WHERE mode = ? "
                                 "AND position = ? AND token = ? AND done = 0",
                           (c.mode, c.position, c.token))

        self._write(fn)

    def mark_met(self, mode, indices):
        """Flag finished candidates that meet the objective: claims stop before them."""
        mode = _check_mode(mode)
        indices = [_index(i) for i in indices]
        if not indices:
            return

        def fn(conn):
            self._db.executemany(conn, "UPDATE claims SET met = 1 WHERE mode = ? AND idx = ? AND "
                                       "(met IS NULL OR met = 0)", [(mode, i) for i in indices])

        self._write(fn)

    def unfinished(self, mode, max_positions=None):
        """The positions that still block a final answer, in order.

        Unfinished positions before the first met position (and before
        `max_positions`); each a dict: position, index, worker (the holder of
        a live claim, else None), lease_left (s until that lease expires).
        Empty when the answer for `mode` is final.
        """
        mode = _check_mode(mode)
        rows = self._read(
            "SELECT position, idx, worker, token, expires - {NOW} FROM claims WHERE mode = ? "
            "AND done = 0 AND position < ? AND position < COALESCE((SELECT MIN(m.position) FROM "
            "claims m WHERE m.mode = ? AND m.met = 1), ?) ORDER BY position",
            (mode, _limit(max_positions), mode, _NO_LIMIT))
        out = []
        for pos, idx, worker, token, left in rows:
            live = token is not None and left is not None and left > 0
            out.append({"position": int(pos), "index": int(idx),
                        "worker": worker if live else None,
                        "lease_left": float(left) if live else 0.0})
        return out

    def claims(self, mode):
        """Every position of `mode` with its claim state (dicts, in position order)."""
        mode = _check_mode(mode)
        rows = self._read("SELECT position, idx, done, met, worker, token, expires - {NOW}, "
                          "claimed, attempts FROM claims WHERE mode = ? ORDER BY position", (mode,))
        return [{"position": int(p), "index": int(i), "done": bool(d), "met": bool(m),
                 "worker": w, "held": t is not None and not d and left is not None and left > 0,
                 "lease_left": float(left) if left is not None else None, "claimed": c,
                 "attempts": int(a)}
                for p, i, d, m, w, t, left, c, a in rows]

    def done_count(self, mode, max_positions=None):
        """How many positions (before `max_positions`) of `mode` are finished."""
        return int(self._read("SELECT COUNT(*) FROM claims WHERE mode = ? AND done = 1 AND "
                              "position < ?", (_check_mode(mode), _limit(max_positions)))[0][0])

    # -- results -----------------------------------------------------------
    def record(self, mode, candidate, *, final_accuracy, init_accuracy=None, seconds,
               position=None, worker="0", started=None, finished=None, extra=None,
               claim=None, met=None):
        """Store one finished candidate; returns True if this call stored it.

        With `claim`: only while that claim is held (compare-and-set on its
        token, in the transaction that marks the position done); False means
        the claim was lost -- its lease expired and another worker took the
        position over -- and nothing was written. Without: the first row for
        (mode, candidate) stays, a second call returns False. `met` (bool)
        flags a result that meets the objective, so claims stop before it.
        """
        mode = _check_mode(mode)
        final_accuracy = _accuracy("final_accuracy", final_accuracy)
        init_accuracy = None if init_accuracy is None else _accuracy("init_accuracy",
                                                                     init_accuracy)
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
        if claim is not None:
            if claim.mode != mode or claim.index != candidate.index:
                raise ValueError(f"claim {claim} is not for candidate #{candidate.index} of "
                                 f"mode {mode!r}")
            position, worker = claim.position, claim.worker
        finished = finished or now()
        started = started or finished
        met = None if met is None else int(bool(met))
        row = (mode, candidate.index, position, json.dumps(list(candidate.rates)),
               candidate.params, candidate.flops, init_accuracy, final_accuracy, seconds,
               str(worker), started, finished,
               json.dumps(_normalise(extra or {}), sort_keys=True))

        def fn(conn):
            if claim is not None:
                held = self._exec(conn, "UPDATE claims SET done = 1, met = ?, expires = NULL "
                                        "WHERE mode = ? AND position = ? AND token = ? AND "
                                        "done = 0",
                                  (met, mode, claim.position, claim.token)).rowcount == 1
                if not held:
                    return False
            cur = self._exec(conn, f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES "
                                   f"({', '.join('?' * len(_COLUMNS))}) ON CONFLICT DO NOTHING",
                             row)
            stored = cur.rowcount == 1
            if stored and claim is None:
                self._exec(conn, "UPDATE claims SET done = 1, met = ?, expires = NULL "
                                 "WHERE mode = ? AND idx = ?", (met, mode, candidate.index))
            return stored

        return self._write(fn)

    def annotate(self, mode, index, **fields):
        """Merge JSON-able `fields` into the `extra` of the finished row of
        candidate `index` (e.g. the winner's measured latency once exported);
        returns the row's new `extra`. ValueError if no such row.

        Example:
            >>> import tempfile, os
            >>> from wootz_keras.search.objectives import Candidate
            >>> with Journal(os.path.join(tempfile.mkdtemp(), "j.sqlite")) as j:
            ...     _ = j.begin("default", {"full_accuracy": 0.9}, order=[3])
            ...     _ = j.record("default", Candidate(3, (0.5,), 10, 20), final_accuracy=0.9,
            ...                  seconds=1.0)
            ...     j.annotate("default", 3, measured_latency_ms=0.42)
            {'measured_latency_ms': 0.42}
        """
        mode = _check_mode(mode)
        fields = _normalise(fields)

        def fn(conn):
            found = self._exec(conn, "SELECT extra FROM results WHERE mode = ? AND idx = ?",
                               (mode, int(index))).fetchone()
            if found is None:
                raise ValueError(f"journal {self.where}: no finished row for candidate "
                                 f"#{index} of mode {mode!r}")
            extra = {**(json.loads(found[0]) if found[0] else {}), **fields}
            self._exec(conn, "UPDATE results SET extra = ? WHERE mode = ? AND idx = ?",
                       (json.dumps(extra, sort_keys=True), mode, int(index)))
            return extra

        return self._write(fn)

    def rows(self, mode=None):
        """All finished rows (of one mode, or all), in the order they finished."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results"
        args = ()
        if mode is not None:
            sql += " WHERE mode = ?"
            args = (_check_mode(mode),)
        sql += " ORDER BY finished, mode, idx"
        return [_row_dict(r) for r in self._read(sql, args)]

    def finished(self, mode):
        """{candidate index: row} of the finished candidates of `mode`."""
        return {r["index"]: r for r in self.rows(mode)}

    def integrity_check(self):
        """"ok" when the database is sound (SQLite's integrity_check) and every
        recorded candidate is marked done in its work list."""
        try:
            found = self._db.integrity_check(self._conn_or_fail())
        except self._db.errors as e:
            raise ValueError(f"journal {self.where}: {self._db.message(e)}") from None
        if found != "ok":
            return found
        bad = self._read("SELECT r.mode, r.idx FROM results r JOIN claims c ON c.mode = r.mode "
                         "AND c.idx = r.idx WHERE c.done = 0")
        if bad:
            return f"recorded but not marked done: {sorted(bad)[:10]}"
        return "ok"


def _row_dict(r):
    d = dict(zip(_COLUMNS, r))
    d["index"] = d.pop("idx")
    d["rates"] = json.loads(d["rates"])
    d["extra"] = json.loads(d["extra"]) if d["extra"] else {}
    d["worker"] = str(d["worker"])
    return d


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _index(i):
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise ValueError(f"candidate indices must be ints, got {i!r}")
    return int(i)


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def _lease(lease):
    if (isinstance(lease, bool) or not isinstance(lease, numbers.Real)
            or not math.isfinite(lease) or lease <= 0):
        raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
    return float(lease)


def _limit(max_positions):
    if max_positions is None:
        return _NO_LIMIT
    if (isinstance(max_positions, bool) or not isinstance(max_positions, numbers.Integral)
            or max_positions < 0):
        raise ValueError(f"max_positions must be a non-negative int or None, got "
                         f"{max_positions!r}")
    return min(int(max_positions), _NO_LIMIT)


def _accuracy(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v
