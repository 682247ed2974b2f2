"""Leased work claims on both journal backends (SQLite file, PostgreSQL on loopback).

In-process tests drive `Journal.claim / renew / record(claim=) / release`
directly; the process tests run tests/explore_worker.py workers with the
fake (instant, deterministic) evaluator: three workers with one SIGKILLed
mid-candidate and one joining late, and a worker whose lease renewal stalls
past its lease.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import explore_worker as ew  # noqa: E402
import pg_server  # noqa: E402
from wootz_keras.search import (  # noqa: E402
    Candidate,
    ExploreResult,
    Journal,
    explore_candidates,
    parse_objective,
)

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explore_worker.py")
OBJ = "smallest_params:alpha=0.05"  # with ew.fake_evaluate: winner at position 20 of 25


@pytest.fixture(params=pg_server.BACKENDS)
def new_journal(request, tmp_path):
    """A factory of fresh journal targets (a path, or a URL of a new database)."""
    return pg_server.journal_factory(request.param, tmp_path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One worker, in process, SQLite: the answer every multi-worker run must give."""
    path = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    r = explore_candidates(ew.candidates(), ew.fake_evaluate, OBJ, ew.FAKE_FULL, path,
                           "default", progress=False)
    assert r.complete and r.winner is not None and 10 < r.winner["position"] < 24, \
        "test set-up: the fake winner should sit late, with later positions skipped"
    return r


def _cands(n=4):
    return [Candidate(i, (0.1 * i,), 100 - i, 10) for i in range(n)]


def _record(j, claim, final=0.5, met=False):
    c = Candidate(claim.index, (0.1 * claim.index,), 100 - claim.index, 10)
    return j.record(claim.mode, c, claim=claim, final_accuracy=final, seconds=0.1, met=met)


# -- the protocol, in process ------------------------------------------------------

def test_claims_follow_objective_order_and_leases(new_journal):
    target = new_journal()
    with Journal(target) as a, Journal(target) as b:
        assert a.begin("default", {"full_accuracy": 0.9}, order=[3, 1, 0, 2]) is True
        assert b.begin("default", {"full_accuracy": 0.9}, order=[3, 1, 0, 2]) is False
        with pytest.raises(ValueError, match="another candidate order"):
            b.begin("default", {"full_accuracy": 0.9}, order=[1, 3, 0, 2])
        ca = a.claim("default", "A", n=2, lease=0.5)
        cb = b.claim("default", "B", n=1, lease=30)
        assert [(c.position, c.index) for c in ca] == [(0, 3), (1, 1)]
        assert [(c.position, c.index) for c in cb] == [(2, 0)]   # live claims are skipped
        assert [u["worker"] for u in a.unfinished("default")] == ["A", "A", "B", None]
        assert a.renew(ca, lease=0.5) == ca
        time.sleep(0.7)                                          # A stalls past its lease
        taken = b.claim("default", "B", n=2, lease=30)
        assert [(c.position, c.previous) for c in taken] == [(0, "A"), (1, "A")]
        assert a.renew(ca, lease=30) == []                       # lost: renewal refused
        assert _record(a, ca[0]) is False                        # ... and recording too
        assert a.finished("default") == {}
        assert _record(b, taken[0]) is True and _record(b, taken[0]) is False
        assert list(a.finished("default")) == [3] and a.finished("default")[3]["worker"] == "B"
        # a released claim is claimable at once; finished positions never again
        b.release(taken[1:])
        again = a.claim("default", "A", n=5, lease=30)
        assert [c.position for c in again] == [1, 3]
        state = {r["position"]: r for r in a.claims("default")}
        assert state[0]["done"] and state[0]["attempts"] == 2 and not state[0]["held"]
        assert state[1]["attempts"] == 3 and state[1]["held"] and state[1]["worker"] == "A"
        assert a.integrity_check() == "ok"


def test_claims_stop_at_the_first_met_position_and_max_positions(new_journal):
    target = new_journal()
    with Journal(target) as j:
        j.begin("default", {"full_accuracy": 0.9}, order=list(range(6)))
        assert [c.position for c in j.claim("default", "A", n=9, max_positions=2)] == [0, 1]
        assert j.claim("default", "A", max_positions=2) == []
        assert [u["position"] for u in j.unfinished("default", max_positions=2)] == [0, 1]
        c2, c3, c4 = j.claim("default", "A", n=3)
        assert _record(j, c3, final=0.95, met=True)
        # nothing after the met position 3 is claimable or blocks the answer
        assert j.claim("default", "B", n=9) == []
        assert [u["position"] for u in j.unfinished("default")] == [0, 1, 2]
        assert _record(j, c4, final=0.97, met=True)               # recorded, not needed
        assert j.done_count("default") == 2 and j.done_count("default", max_positions=3) == 0


def test_explore_waits_for_live_claims_and_takes_over_expired_ones(new_journal):
    target = new_journal()
    cands = _cands(4)
    obj = parse_objective("smallest_params:alpha=0.01")
    order = [c.index for c in obj.order(cands)]
    calls = []

    def ev(c):
        calls.append(c.index)
        return {"final_accuracy": 0.5}
    r = explore_candidates(cands, ev, obj, 0.9, target, "default", progress=False,
                           max_positions=0)                      # begins the mode, claims nothing
    assert r.complete and r.tried == 0 and calls == []
    with Journal(target) as other:
        [held] = other.claim("default", "ghost", lease=0.6)      # a worker that then dies
        assert held.position == 0
        r = explore_candidates(cands, ev, obj, 0.9, target, "default", progress=False,
                               wait=False, lease=5)
        assert not r.complete and r.pending == [0] and held.index not in calls
        assert sorted(calls) == sorted(order[1:])
        r = explore_candidates(cands, ev, obj, 0.9, target, "default", progress=False,
                               lease=5, poll_interval=0.05)
        assert r.complete and calls.count(held.index) == 1 and r.evaluated == 1
        assert len(calls) == 4 and r.tried == 4 and r.winner is None
        assert _record(other, held) is False                     # the ghost comes back: refused


def test_batch_claims_and_max_positions_agree_with_one_worker(new_journal, reference):
    seen = []

    def many(cs):
        seen.append([c.index for c in cs])
        return [ew.fake_evaluate(c) for c in cs]
    target = new_journal()
    first = explore_candidates(ew.candidates(), many, OBJ, ew.FAKE_FULL, target, "default",
                               progress=False, batch_size=4, max_positions=6)
    assert first.complete and first.winner is None and first.tried == 6
    assert first.max_positions == 6 and "the first 6 of 25 positions" in first.message
    assert [len(b) for b in seen] == [4, 2]
    r = explore_candidates(ew.candidates(), many, OBJ, ew.FAKE_FULL, target, "default",
                           progress=False, batch_size=4)
    assert r.complete and r.winner["index"] == reference.winner["index"]
    assert r.reused == 6 and r.tried >= reference.tried
    flat = [i for b in seen for i in b]
    assert len(flat) == len(set(flat)), "a candidate was evaluated twice"
    with pytest.raises(ValueError, match="list of 2 result dicts"):
        explore_candidates(ew.candidates(), lambda cs: {"final_accuracy": 1}, OBJ, ew.FAKE_FULL,
                           new_journal(), "default", progress=False, batch_size=2)


def test_unreachable_journal_fails_before_evaluating(tmp_path):
    calls = []
    url = "postgresql://ann:hunter2@127.0.0.1:1/runs"
    with pytest.raises(ValueError) as e:
        explore_candidates(_cands(), lambda c: calls.append(c) or {"final_accuracy": 1.0},
                           "smallest_params", 0.9, url, "default", progress=False)
    msg = str(e.value)
    assert calls == [] and "\n" not in msg and "hunter2" not in msg
    assert "host 127.0.0.1, port 1, database runs" in msg and "cannot reach" in msg


# -- worker processes ---------------------------------------------------------------

def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _start(journal, tmp_path, label, *extra):
    log = open(tmp_path / f"worker-{label}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, WORKER, "--journal", str(journal), "--objective", OBJ, "--fake",
         "--calls", str(tmp_path / "calls.txt"), "--worker", label,
         "--out", str(tmp_path / f"result-{label}.json"), *map(str, extra)],
        env=_env(), stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _calls(tmp_path):
    path = tmp_path / "calls.txt"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]


def _until(what, predicate, procs, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if p.poll() not in (None, 0):
                p.log.seek(0)
                pytest.fail(f"a worker failed while waiting for {what}:\n{p.log.read()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _finish(procs, timeout=90):
    outs = []
    for p in procs:
        try:
            p.wait(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        p.log.seek(0)
        outs.append(p.log.read())
        p.log.close()
    return outs


def _done(journal):
    with Journal(journal) as j:
        return j.done_count("default")


def _rows(journal):
    with Journal(journal) as j:
        assert j.integrity_check() == "ok"
        return j.finished("default"), j.claims("default")


def test_three_workers_one_killed_mid_candidate_and_a_late_joiner(new_journal, tmp_path,
                                                                  reference):
    journal = new_journal()
    lease = 1.0
    common = ("--lease", lease, "--poll", 0.05, "--sleep", 0.25)
    a = _start(journal, tmp_path, "A", *common)
    b = _start(journal, tmp_path, "B", *common)
    procs = [a, b]
    try:
        _until("two finished candidates", lambda: _done(journal) >= 2, procs)
        c = _start(journal, tmp_path, "C", *common)               # joins a running exploration
        procs.append(c)
        _until("the late worker's first candidate",
               lambda: any(w == "C" for w, _ in _calls(tmp_path)), procs)
        # SIGKILL A in the middle of a candidate: right after it starts a new one
        seen = sum(1 for w, _ in _calls(tmp_path) if w == "A")
        _until("A starting a candidate",
               lambda: sum(1 for w, _ in _calls(tmp_path) if w == "A") > seen, procs)
        killed = [i for w, i in _calls(tmp_path) if w == "A"][-1]
        os.kill(a.pid, signal.SIGKILL)
        outs = _finish(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert a.returncode == -signal.SIGKILL and b.returncode == 0 and c.returncode == 0, outs
    rows, claims = _rows(journal)
    killed = int(killed)
    assert killed not in {i for i, r in rows.items() if r["worker"].startswith("A@")}
    calls = collections.Counter(int(i) for _, i in _calls(tmp_path))
    workers = {r["worker"].split("@")[0] for r in rows.values()}
    assert {"B", "C"} <= workers, "the late joiner took no work"
    for label in ("B", "C"):
        r = ExploreResult.from_dict(json.loads((tmp_path / f"result-{label}.json").read_text()))
        assert r.complete and r.winner["index"] == reference.winner["index"]
        assert r.discarded == []
    # the killed candidate was trained again by someone, after A's lease expired
    assert killed in {row["index"] for row in reference.rows}, "test set-up: kill earlier"
    assert calls[killed] == 2 and not rows[killed]["worker"].startswith("A@")
    assert next(c for c in claims if c["index"] == killed)["attempts"] == 2
    # no finished candidate was trained twice; each finished candidate is one row
    assert all(n == 1 for i, n in calls.items() if i != killed), calls
    assert set(rows) == set(calls) and set(rows) >= {row["index"] for row in reference.rows}
    assert sum(c["done"] for c in claims) == len(rows)
    assert any("took over" in out and f"#{killed}" in out for out in outs[1:])


def test_stalled_lease_renewal_loses_the_claim_cleanly(new_journal, tmp_path, reference):
    journal = new_journal()
    # A's first candidate takes 2.5 s while its heartbeat stalls for 4 s (lease 0.9 s):
    # B takes the position over, records it, and A must discard its own result.
    a = _start(journal, tmp_path, "A", "--lease", 0.9, "--poll", 0.05, "--sleep", 0.05,
               "--sleep_first", 2.5, "--stall_renewal", 4)
    try:
        _until("A's first candidate", lambda: len(_calls(tmp_path)) >= 1, [a])
        b = _start(journal, tmp_path, "B", "--lease", 0.9, "--poll", 0.05, "--sleep", 0.05)
        outs = _finish([a, b])
    finally:
        for p in (a,):
            if p.poll() is None:
                p.kill()
    assert a.returncode == 0 and b.returncode == 0, outs
    first = int(_calls(tmp_path)[0][1])
    rows, claims = _rows(journal)
    assert rows[first]["worker"].startswith("B@")
    ra = ExploreResult.from_dict(json.loads((tmp_path / "result-A.json").read_text()))
    rb = ExploreResult.from_dict(json.loads((tmp_path / "result-B.json").read_text()))
    assert ra.discarded == [first] and rb.discarded == []
    assert "lost the claim on #%d" % first in outs[0] and "result discarded" in outs[0]
    for r in (ra, rb):
        assert r.complete and r.winner["index"] == reference.winner["index"]
    calls = collections.Counter(int(i) for _, i in _calls(tmp_path))
    assert calls[first] == 2 and all(n == 1 for i, n in calls.items() if i != first)
    assert set(rows) == set(calls)
    assert next(c for c in claims if c["index"] == first)["attempts"] == 2


def test_worker_frozen_past_its_lease_loses_the_claim_cleanly(new_journal, tmp_path,
                                                              reference):
    """The whole process stalls (SIGSTOP: a paused VM, a clock that stops): heartbeat
    and training freeze together; once thawed it must not record the position that
    was taken over meanwhile."""
    journal = new_journal()
    a = _start(journal, tmp_path, "A", "--lease", 0.9, "--poll", 0.05, "--sleep", 0.05,
               "--sleep_first", 0.8)
    b = None
    try:
        _until("A's first candidate", lambda: len(_calls(tmp_path)) >= 1, [a])
        os.kill(a.pid, signal.SIGSTOP)
        first = int(_calls(tmp_path)[0][1])
        b = _start(journal, tmp_path, "B", "--lease", 0.9, "--poll", 0.05, "--sleep", 0.05)

        def taken_over():
            with Journal(journal) as j:
                row = j.finished("default").get(first)
            return row is not None and row["worker"].startswith("B@")
        _until("B recording A's frozen candidate", taken_over, [b])
        os.kill(a.pid, signal.SIGCONT)
        outs = _finish([a, b])
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
    assert a.returncode == 0 and b.returncode == 0, outs
    rows, claims = _rows(journal)
    ra = ExploreResult.from_dict(json.loads((tmp_path / "result-A.json").read_text()))
    assert ra.discarded == [first] and rows[first]["worker"].startswith("B@")
    assert "lost the claim on #%d" % first in outs[0]
    assert ra.complete and ra.winner["index"] == reference.winner["index"]
    calls = collections.Counter(int(i) for _, i in _calls(tmp_path))
    assert calls[first] == 2 and all(n == 1 for i, n in calls.items() if i != first)
    assert set(rows) == set(calls) and sum(c["done"] for c in claims) == len(rows)
