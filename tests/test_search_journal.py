"""The exploration journal on both backends: rows, headers, corruption, refused
databases and logins, concurrent processes, and the upgrade of version-1 files."""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pg_server  # noqa: E402
from wootz_keras.search import (  # noqa: E402
    Candidate,
    Journal,
    JournalMismatchError,
    candidates_hash,
    explore_candidates,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=pg_server.BACKENDS)
def new_journal(request, tmp_path):
    """A factory of fresh journal targets (a path, or a URL of a new database)."""
    return pg_server.journal_factory(request.param, tmp_path)


@pytest.fixture
def pg():
    """The throwaway PostgreSQL server (fails with an install hint when it is missing)."""
    pg_server.journal_factory("postgresql", None)
    return pg_server.server()


def _cand(i, rate=0.5):
    return Candidate(i, (rate, 0.3), params=1000 - i, flops=2000 - i)


def _fill(path, n=3, mode="default"):
    with Journal(path) as j:
        j.begin(mode, {"full_accuracy": 0.9, "objective": {"name": "x"}})
        for i in range(n):
            j.record(mode, _cand(i), init_accuracy=0.1 * i, final_accuracy=0.5 + 0.1 * i,
                     seconds=1.0 + i, position=i, worker=i % 2, extra={"steps": 10})


def test_rows_round_trip_and_persist(new_journal):
    path = new_journal()
    _fill(path)
    with Journal(path) as j:
        rows = j.finished("default")
        assert sorted(rows) == [0, 1, 2] and j.finished("composed") == {}
        r = rows[2]
        assert r["rates"] == [0.5, 0.3] and r["params"] == 998 and r["flops"] == 1998
        assert r["init_accuracy"] == pytest.approx(0.2) and r["final_accuracy"] == 0.7
        assert r["seconds"] == 3.0 and r["worker"] == "0" and r["position"] == 2
        assert r["extra"] == {"steps": 10} and r["started"] <= r["finished"]
        assert r["mode"] == "default"
        # the first result of a candidate stays
        assert j.record("default", _cand(2), final_accuracy=0.0, seconds=1) is False
        assert j.finished("default")[2]["final_accuracy"] == 0.7
        assert j.record("default", _cand(3), final_accuracy=0.6, seconds=1) is True
        assert j.finished("default")[3]["init_accuracy"] is None
        assert [r["index"] for r in j.rows()] == [0, 1, 2, 3]
        assert j.integrity_check() == "ok"
        if j.backend == "sqlite":
            assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_record_validates(new_journal):
    with Journal(new_journal()) as j:
        with pytest.raises(ValueError, match="mode"):
            j.record("fast", _cand(0), final_accuracy=0.5, seconds=1)
        with pytest.raises(ValueError, match="final_accuracy"):
            j.record("default", _cand(0), final_accuracy=float("nan"), seconds=1)
        with pytest.raises(ValueError, match="seconds"):
            j.record("default", _cand(0), final_accuracy=0.5, seconds=-1)
        assert j.finished("default") == {}


def test_headers_are_checked(new_journal):
    path = new_journal()
    h = {"objective": {"name": "smallest_within_accuracy", "alpha": 0.01},
         "candidates": candidates_hash([_cand(0), _cand(1)]), "full_accuracy": 0.9,
         "settings": {"steps": 30, "lr": 0.001}}
    with Journal(path) as j:
        assert j.begin("default", h) is True
        assert j.begin("default", dict(h)) is False
        assert j.header("default") == h and j.header("composed") is None
        assert j.check("default", {"full_accuracy": 0.9}) is True
        with pytest.raises(JournalMismatchError, match=r"settings: journal has .*\"steps\": 30"):
            j.begin("default", dict(h, settings={"steps": 60, "lr": 0.001}))
        with pytest.raises(JournalMismatchError, match="full_accuracy"):
            j.check("default", {"full_accuracy": 0.8})
        # composed may add its own settings but must share objective/candidates/accuracy
        assert j.begin("composed", dict(h, settings={"pretrain_steps": 100})) is True
        with Journal(new_journal()) as k:
            k.begin("default", h)
            with pytest.raises(JournalMismatchError, match="candidates"):
                k.begin("composed", dict(h, candidates="0123456789abcdef"))
    assert candidates_hash([_cand(1), _cand(0)]) == candidates_hash([_cand(0), _cand(1)])
    assert candidates_hash([_cand(0)]) != candidates_hash([_cand(0, rate=0.7)])


def test_garbage_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "j.sqlite"
    data = b"this is a results table, not a database\n" * 100
    path.write_bytes(data)
    with pytest.raises(ValueError) as e:
        Journal(path)
    assert str(path) in str(e.value) and "not a wootz journal" in str(e.value)
    assert path.read_bytes() == data


def test_other_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    data = path.read_bytes()
    with pytest.raises(ValueError, match="not a wootz journal .*users") as e:
        Journal(path)
    assert str(path) in str(e.value)
    assert path.read_bytes() == data  # not even switched to WAL


def test_malformed_journal_is_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.begin("default", {"full_accuracy": 0.9})
        for i in range(300):
            j.record("default", _cand(i), final_accuracy=0.5, seconds=1,
                     extra={"pad": "x" * 200})
    size = path.stat().st_size
    assert size > 20 * 4096
    with open(path, "r+b") as f:  # smash b-tree pages, keep the file header
        for page in range(2, size // 4096, 3):
            f.seek(page * 4096)
            f.write(b"\xde\xad\xbe\xef" * 256)
    with pytest.raises(ValueError) as e:
        Journal(path)
    assert str(path) in str(e.value) and "malformed" in str(e.value)


def test_directory_and_closed_journal(tmp_path, new_journal):
    with pytest.raises(ValueError, match="directory"):
        Journal(tmp_path)
    j = Journal(new_journal())
    j.close()
    with pytest.raises(ValueError, match="closed"):
        j.finished("default")


WRITER = textwrap.dedent("""
    import sys, types
    pkg = types.ModuleType("wootz_keras")
    pkg.__path__ = [{root!r} + "/wootz_keras"]
    sys.modules["wootz_keras"] = pkg  # the journal needs no TensorFlow
    from wootz_keras.search import Candidate, Journal
    start = int(sys.argv[1])
    with Journal(sys.argv[2], timeout=60) as j:
        j.begin("default", {{"full_accuracy": 0.9}})
        for i in range(start, start + 60):
            j.record("default", Candidate(i, (0.5,), 10, 20), final_accuracy=0.5,
                     seconds=0.01, worker=start)
            j.finished("default")  # readers interleave with the other writer
""")


def test_two_processes_write_concurrently(new_journal):
    path = new_journal()
    script = WRITER.format(root=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(start), str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for start in (0, 1000)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()[-2000:]
    with Journal(path) as j:
        rows = j.finished("default")
        assert j.integrity_check() == "ok"
    assert sorted(rows) == list(range(60)) + list(range(1000, 1060))
    assert {r["worker"] for r in rows.values()} == {"0", "1000"}


# -- PostgreSQL: refused databases, logins and runs -----------------------------------

def _one_line(e, *fragments):
    msg = str(e.value)
    assert "\n" not in msg and pg_server.PASSWORD not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def test_postgres_unreachable_refused_login_and_missing_database(pg):
    place = f"host {pg.host}, port {pg.port}"
    with pytest.raises(ValueError) as e:
        Journal(pg.url("postgres", password="wrong-" + pg_server.PASSWORD))
    _one_line(e, "refused the login", place + ", database postgres")
    with pytest.raises(ValueError) as e:
        Journal(pg.url("postgres", user="nobody"))
    _one_line(e, "refused the login", "postgresql://nobody@")
    with pytest.raises(ValueError) as e:
        Journal(pg.url("no_such_db"))
    _one_line(e, "no such database", place + ", database no_such_db")
    closed = pg_server._free_port()
    with pytest.raises(ValueError) as e:
        Journal(f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{closed}/runs")
    _one_line(e, "cannot reach the server", f"host 127.0.0.1, port {closed}, database runs")
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        Journal("mysql://a@b/c")


def test_postgres_database_of_another_run_is_refused_before_training(pg, tmp_path):
    url = pg.create_database()
    cands = [Candidate(i, (0.1 * i,), 100 - i, 10) for i in range(3)]
    explore_candidates(cands, lambda c: {"final_accuracy": 0.5}, "smallest_params", 0.9, url,
                       "default", progress=False)
    calls = []
    with pytest.raises(JournalMismatchError) as e:
        explore_candidates(cands, lambda c: calls.append(c) or {"final_accuracy": 0.5},
                           "smallest_params", 0.8, url, "default", progress=False)
    db = url.rsplit("/", 1)[1]
    _one_line(e, f"postgresql://{pg.user}@{pg.host}:{pg.port}/{db}", "full_accuracy")
    assert calls == []


def test_postgres_database_of_another_program_is_refused_and_left_alone(pg):
    import psycopg
    url = pg.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ann')")
    with pytest.raises(ValueError) as e:
        Journal(url)
    _one_line(e, "not a wootz journal (it holds other tables: users)")
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        assert tables == ["users"]
    # a journal of another format, of a newer version, or with missing tables
    for sql, fragment in (
            ("UPDATE meta SET value = 'other' WHERE key = 'format'", "format 'other'"),
            ("UPDATE meta SET value = '99' WHERE key = 'version'", "version 99 is newer"),
            ("DROP TABLE results", "missing tables ['results']")):
        url = pg.create_database()
        Journal(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)
        with pytest.raises(ValueError) as e:
            Journal(url)
        _one_line(e, "journal postgresql://", fragment)


# -- SQLite journals written before claims existed ------------------------------------

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (mode TEXT PRIMARY KEY, header TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE results (mode TEXT NOT NULL, idx INTEGER NOT NULL, position INTEGER,
    rates TEXT NOT NULL, params INTEGER NOT NULL, flops INTEGER NOT NULL,
    init_accuracy REAL, final_accuracy REAL NOT NULL, seconds REAL NOT NULL,
    worker INTEGER NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL, extra TEXT,
    PRIMARY KEY (mode, idx));
INSERT INTO meta VALUES ('format', 'wootz-journal'), ('version', '1');
"""


def test_version_1_sqlite_journal_resumes_with_claims(tmp_path):
    from wootz_keras.search.exploration import _header
    from wootz_keras.search import parse_objective
    cands = [Candidate(i, (0.1 * i,), 100 - i, 10) for i in range(5)]
    obj = parse_objective("smallest_params")
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO runs VALUES ('default', ?, 'then')",
                 (json.dumps(_header(obj, cands, 0.9), sort_keys=True),))
    for pos, c in enumerate(obj.order(cands)[:2]):   # two finished under the old code
        conn.execute("INSERT INTO results VALUES ('default', ?, ?, ?, ?, ?, 0.1, 0.5, 1.0, 1, "
                     "'a', 'b', '{}')", (c.index, pos, json.dumps(list(c.rates)), c.params,
                                         c.flops))
    conn.commit()
    conn.close()
    calls = []
    r = explore_candidates(cands, lambda c: calls.append(c.index) or {"final_accuracy": 0.5},
                           obj, 0.9, path, "default", progress=False)
    assert r.complete and r.reused == 2 and r.tried == 5 and len(calls) == 3
    assert not set(calls) & {c.index for c in obj.order(cands)[:2]}
    with Journal(path) as j:
        assert j.integrity_check() == "ok" and all(c["done"] for c in j.claims("default"))
        assert j._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() == ("2",)
