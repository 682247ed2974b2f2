"""The exploration journal: rows, headers, corruption, concurrent processes."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from wootz_keras.search import Candidate, Journal, JournalMismatchError, candidates_hash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cand(i, rate=0.5):
    return Candidate(i, (rate, 0.3), params=1000 - i, flops=2000 - i)


def _fill(path, n=3, mode="default"):
    with Journal(path) as j:
        j.begin(mode, {"full_accuracy": 0.9, "objective": {"name": "x"}})
        for i in range(n):
            j.record(mode, _cand(i), init_accuracy=0.1 * i, final_accuracy=0.5 + 0.1 * i,
                     seconds=1.0 + i, position=i, worker=i % 2, extra={"steps": 10})


def test_rows_round_trip_and_persist(tmp_path):
    path = tmp_path / "j.sqlite"
    _fill(path)
    with Journal(path) as j:
        rows = j.finished("default")
        assert sorted(rows) == [0, 1, 2] and j.finished("composed") == {}
        r = rows[2]
        assert r["rates"] == [0.5, 0.3] and r["params"] == 998 and r["flops"] == 1998
        assert r["init_accuracy"] == pytest.approx(0.2) and r["final_accuracy"] == 0.7
        assert r["seconds"] == 3.0 and r["worker"] == 0 and r["position"] == 2
        assert r["extra"] == {"steps": 10} and r["started"] <= r["finished"]
        assert r["mode"] == "default"
        # the first result of a candidate stays
        assert j.record("default", _cand(2), final_accuracy=0.0, seconds=1) is False
        assert j.finished("default")[2]["final_accuracy"] == 0.7
        assert j.record("default", _cand(3), final_accuracy=0.6, seconds=1) is True
        assert j.finished("default")[3]["init_accuracy"] is None
        assert [r["index"] for r in j.rows()] == [0, 1, 2, 3]
        assert j.integrity_check() == "ok"
        mode = j._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_record_validates(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        with pytest.raises(ValueError, match="mode"):
            j.record("fast", _cand(0), final_accuracy=0.5, seconds=1)
        with pytest.raises(ValueError, match="final_accuracy"):
            j.record("default", _cand(0), final_accuracy=float("nan"), seconds=1)
        with pytest.raises(ValueError, match="seconds"):
            j.record("default", _cand(0), final_accuracy=0.5, seconds=-1)
        assert j.finished("default") == {}


def test_headers_are_checked(tmp_path):
    path = tmp_path / "j.sqlite"
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
        with Journal(tmp_path / "other.sqlite") as k:
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


def test_directory_and_closed_journal(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        Journal(tmp_path)
    j = Journal(tmp_path / "j.sqlite")
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


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "j.sqlite"
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
    assert {r["worker"] for r in rows.values()} == {0, 1000}
