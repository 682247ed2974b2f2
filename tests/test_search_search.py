"""Exploration search: order, early termination, resume, SIGKILL, workers.

The evaluate callable is real: a NumPy MLP trained on the scikit-learn
digits, pruned by the candidate's rates and fine-tuned (tests/explore_worker.py).
Tests that touch the journal run on both backends (SQLite, PostgreSQL).
"""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import explore_worker as ew  # noqa: E402
import pg_server  # noqa: E402
from wootz_keras.search import (  # noqa: E402
    Candidate,
    ExploreResult,
    FastestWithinAccuracy,
    Journal,
    JournalMismatchError,
    MostAccurateWithinBudget,
    SmallestWithinAccuracy,
    explore_candidates,
    objective_from_dict,
    parse_objective,
    register_objective,
    summarize,
    wait_for_others,
)

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explore_worker.py")
OBJ = "smallest_params:alpha=0.02"


@pytest.fixture(params=pg_server.BACKENDS)
def new_journal(request, tmp_path):
    """A factory of fresh journal targets (a path, or a URL of a new database)."""
    return pg_server.journal_factory(request.param, tmp_path)


@pytest.fixture(scope="module")
def full():
    return ew.teacher()[1]


@pytest.fixture(scope="module")
def cands():
    return ew.candidates()


class Counting:
    """Wrap ew.evaluate and remember which candidates were evaluated."""

    def __init__(self, mode="default", fail_after=None):
        self.calls = []
        self.mode = mode
        self.fail_after = fail_after

    def __call__(self, c):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls.append(c.index)
        return ew.evaluate(c, self.mode)


def brute_force_first_met(ordered, objective, full, mode="default"):
    for pos, c in enumerate(ordered):
        if objective.is_met(ew.evaluate(c, mode), full):
            return pos, c
    return None, None


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return env


# -- objectives ----------------------------------------------------------------

def test_smallest_orders_smallest_first(cands):
    for size, other in (("params", "flops"), ("flops", "params")):
        ordered = SmallestWithinAccuracy(0.01, size=size).order(reversed(cands))
        keys = [(getattr(c, size), getattr(c, other), c.index) for c in ordered]
        assert keys == sorted(keys) and len(ordered) == len(cands)


def test_most_accurate_orders_budget_largest_first(cands):
    obj = MostAccurateWithinBudget(max_params=3000)
    ordered = obj.order(cands)
    assert ordered and all(c.params <= 3000 for c in ordered)
    assert {c.index for c in ordered} == {c.index for c in cands if c.params <= 3000}
    assert [c.params for c in ordered] == sorted((c.params for c in ordered), reverse=True)
    by_flops = MostAccurateWithinBudget(max_flops=4000).order(cands)
    assert [c.flops for c in by_flops] == sorted((c.flops for c in by_flops), reverse=True)
    assert all(c.flops <= 4000 for c in by_flops)


def test_parse_objective_round_trips():
    for text in ("smallest_params:alpha=0.01", "smallest_flops:alpha=-0.02",
                 "smallest:size=flops,alpha=0.08", "most_accurate:max_params=50000",
                 "most_accurate:max_flops=2e6,early_stop=false",
                 '{"name": "smallest_within_accuracy", "alpha": 0.03}'):
        obj = parse_objective(text)
        assert objective_from_dict(json.loads(json.dumps(obj.to_dict()))) == obj
        assert isinstance(obj.describe(), str)
    assert parse_objective("smallest_flops").size == "flops"
    assert parse_objective("most_accurate:max_flops=2e6").max_flops == 2_000_000


BAD_OBJECTIVES = [
    ("biggest:alpha=0.1", "biggest"),
    ("smallest_params:alpha=abc", "alpha='abc'"),
    ("smallest_params:beta=1", "beta"),
    ("smallest_params:alpha", "'alpha'"),
    ("smallest_params:alpha=1.5", "alpha"),
    ("smallest_params:size=flops", "size"),
    ("smallest:size=bytes", "bytes"),
    ("most_accurate:max_params=-5", "max_params"),
    ("most_accurate:max_params=10.5", "max_params"),
    ("most_accurate:early_stop=maybe", "early_stop"),
    ("{not json", "not valid JSON"),
    ("", "non-empty"),
]


def test_parse_objective_rejects_bad_input():
    for text, fragment in BAD_OBJECTIVES:
        with pytest.raises(ValueError) as e:
            parse_objective(text)
        assert fragment in str(e.value), (text, str(e.value))


def test_objective_from_dict_rejects_unknown():
    with pytest.raises(ValueError, match="nope"):
        objective_from_dict({"name": "nope"})
    with pytest.raises(ValueError, match="gamma"):
        objective_from_dict({"name": "smallest_within_accuracy", "gamma": 1})


def test_fastest_objective_orders_by_predicted_latency(cands):
    obj = parse_objective("fastest:runtime=onnxruntime,alpha=0.01")
    assert isinstance(obj, FastestWithinAccuracy) and obj.latency == {"runtime": "onnxruntime",
                                                                       "threads": 1}
    assert parse_objective("fastest").runtime == "tflite"
    assert parse_objective("fastest:threads=2").threads == 2
    assert objective_from_dict(json.loads(json.dumps(obj.to_dict()))) == obj
    timed = [Candidate(c.index, c.rates, c.params, c.flops, latency_ms=1.0 + (c.index * 7) % 5)
             for c in cands]
    ordered = obj.order(reversed(timed))
    keys = [(c.latency_ms, c.flops, c.params, c.index) for c in ordered]
    assert keys == sorted(keys) and len(ordered) == len(cands)
    assert obj.target(0.9) == pytest.approx(0.891)
    with pytest.raises(ValueError, match="no latency_ms.*make_candidates"):
        obj.order(cands)
    for text, fragment in (("fastest:runtime=tensorrt", "runtime"),
                           ("fastest:threads=0", "threads"), ("fastest:threads=1.5", "threads"),
                           ("fastest:size=params", "size")):
        with pytest.raises(ValueError, match=fragment):
            parse_objective(text)
    # objectives that need no latency ignore it
    assert [c.index for c in SmallestWithinAccuracy().order(timed)] == \
        [c.index for c in SmallestWithinAccuracy().order(cands)]


def test_candidate_latency_round_trips_and_joins_the_hash():
    from wootz_keras.search import candidates_hash
    plain = Candidate(0, (0.3,), 10, 20)
    timed = Candidate(0, (0.3,), 10, 20, 0.5)
    assert plain.latency_ms is None and "latency_ms" not in plain.to_dict()
    assert Candidate.from_dict(timed.to_dict()) == timed
    assert Candidate.from_dict(plain.to_dict()) == plain
    assert candidates_hash([plain]) != candidates_hash([timed])
    assert candidates_hash([timed]) != candidates_hash([Candidate(0, (0.3,), 10, 20, 0.6)])
    for bad in (0.0, -1.0, float("nan"), "fast", True):
        with pytest.raises(ValueError, match="latency_ms"):
            Candidate(0, (0.3,), 10, 20, bad)


def test_register_objective_adds_a_parsable_objective():
    class LeastFlops(SmallestWithinAccuracy):
        name = "least_flops_test"

    register_objective("least_flops_test", LeastFlops, {"alpha": float, "size": str},
                       fixed={"size": "flops"})
    obj = parse_objective("least_flops_test:alpha=0.05")
    assert type(obj) is LeastFlops and obj.size == "flops" and obj.alpha == 0.05
    assert objective_from_dict(obj.to_dict()) == obj
    register_objective("least_flops_test", LeastFlops, {"alpha": float, "size": str},
                       fixed={"size": "flops"})                  # the same again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_objective("smallest", LeastFlops, {"alpha": float, "size": str})
    with pytest.raises(ValueError, match="size"):
        parse_objective("least_flops_test:size=params")         # fixed by the name

    class Impostor(SmallestWithinAccuracy):
        name = "smallest_within_accuracy"
    for args, fragment in ((("x", Impostor, {"alpha": float}), "already taken"),
                           (("Bad Name", LeastFlops, {}), "lower-case"),
                           (("y", dict, {}), "subclass Objective"),
                           (("y", LeastFlops, {"alpha": complex}), "keys must be"),
                           (("y", LeastFlops, {"alpha": float}), "already registered with keys")):
        with pytest.raises(ValueError, match=fragment):
            register_objective(*args)


def test_candidate_validation():
    with pytest.raises(ValueError, match="rate"):
        Candidate(0, (1.2,), 10, 10)
    with pytest.raises(ValueError, match="params"):
        Candidate(0, (0.2,), -1, 10)
    with pytest.raises(ValueError, match="duplicate candidate index 3"):
        SmallestWithinAccuracy().order([Candidate(3, (0.1,), 1, 1), Candidate(3, (0.2,), 2, 2)])


# -- search --------------------------------------------------------------------

def test_early_termination_finds_first_met_smallest(new_journal, full, cands):
    obj = parse_objective(OBJ)
    ordered = obj.order(cands)
    pos, expected = brute_force_first_met(ordered, obj, full)
    assert pos is not None and pos >= 3, "test set-up: the winner should not be first"
    ev = Counting()
    r = explore_candidates(cands, ev, obj, full, new_journal(), "default", progress=False)
    assert r.winner["index"] == expected.index and r.winner["position"] == pos
    assert r.complete and r.pending == []
    assert ev.calls == [c.index for c in ordered[:pos + 1]]  # smallest first, then stop
    assert r.tried == r.evaluated == pos + 1 and r.reused == 0
    assert r.seconds > 0 and abs(r.seconds - sum(x["seconds"] for x in r.rows)) < 1e-9
    assert all(not x["met"] for x in r.rows[:-1]) and r.rows[-1]["met"]
    assert r.winner["final_accuracy"] >= full * 0.98
    assert "meets accuracy >=" in r.message
    assert ExploreResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_most_accurate_stops_at_full_accuracy(tmp_path, full, cands):
    obj = MostAccurateWithinBudget(max_params=5000)
    ordered = obj.order(cands)
    pos, expected = brute_force_first_met(ordered, obj, full)
    assert pos is not None, "test set-up: some candidate within 5000 params reaches full accuracy"
    ev = Counting()
    r = explore_candidates(cands, ev, obj, full, tmp_path / "j.sqlite", "default",
                           progress=False)
    assert r.winner["index"] == expected.index and r.tried == pos + 1 < len(ordered)
    assert ev.calls == [c.index for c in ordered[:pos + 1]]


@pytest.mark.parametrize("early_stop", [True, False])
def test_most_accurate_tries_all_when_none_reaches_full(tmp_path, full, cands, early_stop):
    obj = MostAccurateWithinBudget(max_params=3000, early_stop=early_stop)
    ordered = obj.order(cands)
    accs = [ew.evaluate(c)["final_accuracy"] for c in ordered]
    assert max(accs) < full, "test set-up: nothing within 3000 params reaches full accuracy"
    best = max(accs)
    expected = [c for c, a in zip(ordered, accs) if a == best][-1]  # tie -> smaller
    r = explore_candidates(cands, ew.evaluate, obj, full, tmp_path / "j.sqlite", "default",
                           progress=False)
    assert r.tried == len(ordered) and r.complete
    assert r.winner["index"] == expected.index
    assert "the most accurate is" in r.message


def test_unmeetable_objective_gives_no_winner(tmp_path, full, cands):
    r = explore_candidates(cands, ew.evaluate, "smallest_params:alpha=-0.1", full,
                           tmp_path / "j.sqlite", "default", progress=False)
    assert r.winner is None and r.complete and r.tried == len(cands)
    assert r.message.startswith(f"default: no candidate met accuracy >= {full * 1.1:.4f} "
                                f"(full {full:.4g} x (1 + 0.1)); best was #")
    best = max(r.rows, key=lambda x: x["final_accuracy"])
    assert f"at {best['final_accuracy']:.4f}" in r.message


def test_resume_after_crash_does_not_repeat(tmp_path, new_journal, full, cands):
    path = new_journal()
    ref = explore_candidates(cands, ew.evaluate, OBJ, full, tmp_path / "ref.sqlite",
                             "default", progress=False)
    crashing = Counting(fail_after=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        explore_candidates(cands, crashing, OBJ, full, path, "default", progress=False)
    with Journal(path) as j:
        assert sorted(j.finished("default")) == sorted(crashing.calls)
    ev = Counting()
    r = explore_candidates(cands, ev, OBJ, full, path, "default", progress=False)
    assert not set(ev.calls) & set(crashing.calls)
    assert r.reused == 4 and r.evaluated == len(ev.calls) == ref.tried - 4
    assert r.winner["index"] == ref.winner["index"] and r.tried == ref.tried
    again = Counting()
    r2 = explore_candidates(cands, again, OBJ, full, path, "default", progress=False)
    assert again.calls == [] and r2.winner["index"] == ref.winner["index"]


def test_resume_with_other_settings_is_refused(new_journal, full, cands):
    path = new_journal()
    explore_candidates(cands[:5], ew.evaluate, OBJ, full, path, "default",
                       progress=False, settings={"steps": 30})
    for kwargs, fragment in (
            (dict(objective="smallest_params:alpha=0.05"), "objective"),
            (dict(full_accuracy=0.5), "full_accuracy"),
            (dict(candidates=cands[:6]), "candidates"),
            (dict(settings={"steps": 60}), "settings")):
        args = dict(candidates=cands[:5], evaluate=ew.evaluate, objective=OBJ,
                    full_accuracy=full, journal=path, mode="default", progress=False,
                    settings={"steps": 30})
        args.update(kwargs)
        with pytest.raises(JournalMismatchError, match=fragment) as e:
            explore_candidates(**args)
        assert str(path).replace(":" + pg_server.PASSWORD, "") in str(e.value)
    # the composed mode must agree on what both modes share
    with pytest.raises(JournalMismatchError, match="full_accuracy"):
        explore_candidates(cands[:5], ew.evaluate, OBJ, 0.5, path, "composed", progress=False)


def test_workers_in_threads_agree_with_one_worker(tmp_path, full, cands):
    ref = explore_candidates(cands, ew.evaluate, OBJ, full, tmp_path / "ref.sqlite",
                             "default", progress=False)
    path = tmp_path / "shared.sqlite"
    evs = [Counting() for _ in range(3)]
    results = [None] * 3

    def run(k):
        results[k] = explore_candidates(cands, evs[k], OBJ, full, path, "default", worker=k,
                                        progress=False, poll_interval=0.05)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for r in results:
        assert r is not None and r.complete and r.winner["index"] == ref.winner["index"]
        assert r.worker.split("@")[0] == str(results.index(r)) and not r.discarded
    calls = [i for ev in evs for i in ev.calls]
    assert len(calls) == len(set(calls)), "a candidate was evaluated twice"
    assert set(calls) >= {row["index"] for row in ref.rows}
    final = summarize(cands, OBJ, full, path, "default")
    assert final.complete and final.winner["index"] == ref.winner["index"]
    # a watcher that explores nothing sees the same final answer
    waited = wait_for_others(cands, OBJ, full, path, "default", timeout=1, poll_interval=0.05)
    assert waited.complete and waited.winner["index"] == ref.winner["index"]


def test_bad_evaluate_result_records_nothing(tmp_path, full, cands):
    path = tmp_path / "j.sqlite"
    with pytest.raises(ValueError, match="final_accuracy"):
        explore_candidates(cands, lambda c: 0.9, OBJ, full, path, "default", progress=False)
    for kwargs, fragment in ((dict(batch_size=0), "batch_size"), (dict(lease=-1), "lease"),
                             (dict(max_positions=-2), "max_positions")):
        with pytest.raises(ValueError, match=fragment):
            explore_candidates(cands, ew.evaluate, OBJ, full, path, "default", progress=False,
                               **kwargs)
    with pytest.raises(ValueError, match="mode"):
        explore_candidates(cands, ew.evaluate, OBJ, full, path, "fast", progress=False)
    with Journal(path) as j:
        assert j.finished("default") == {}
        # the failed candidate's claim was released: claimable again at once
        assert all(not c["held"] for c in j.claims("default"))


def test_extra_keys_are_kept_and_progress_is_shown(tmp_path, full, cands, capsys):
    def ev(c):
        return dict(ew.evaluate(c), steps=ew.FINE_TUNE_STEPS)
    r = explore_candidates(cands, ev, OBJ, full, tmp_path / "j.sqlite", "composed")
    out = capsys.readouterr().out
    assert "candidate" in out and "final" in out and r.message in out
    assert all(row["extra"] == {"steps": ew.FINE_TUNE_STEPS} for row in r.rows)


# -- processes -------------------------------------------------------------------

def _worker(journal, calls, *extra):
    return subprocess.Popen(
        [sys.executable, WORKER, "--journal", str(journal), "--objective", OBJ,
         "--calls", str(calls), *map(str, extra)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _done(journal):
    with Journal(journal) as j:
        return len(j.finished("default"))


def _read_calls(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(map(int, line.split())) for line in f if line.strip()]


def test_sigkill_mid_exploration_then_resume(tmp_path, new_journal, full, cands):
    ref = explore_candidates(cands, ew.evaluate, OBJ, full, tmp_path / "ref.sqlite",
                             "default", progress=False)
    journal, calls = new_journal(), tmp_path / "calls.txt"
    proc = _worker(journal, calls, "--sleep", 0.4, "--lease", 1)
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never finished a candidate"
            if _calls_started(calls) and _done(journal) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with Journal(journal) as j:
        assert j.integrity_check() == "ok"
        done = set(j.finished("default"))
    started = {i for _, i in _read_calls(calls)}
    assert 2 <= len(done) < ref.tried and done <= started

    ev = Counting()
    with Journal(journal) as j:  # the dead worker's claim: leased for 1 s more at most
        held = [c for c in j.claims("default") if c["worker"] and not c["done"]]
        assert len(held) == 1 and held[0]["index"] not in done
    r = explore_candidates(cands, ev, OBJ, full, journal, "default", progress=False)
    assert not set(ev.calls) & done, "a finished candidate was evaluated again"
    assert set(ev.calls) | done == {row["index"] for row in ref.rows}
    assert r.winner["index"] == ref.winner["index"] and r.tried == ref.tried
    assert r.reused == len(done)
    with Journal(journal) as j:
        assert j.integrity_check() == "ok"
        state = {c["index"]: c for c in j.claims("default")}
    if held[0]["index"] in ev.calls:  # taken over once the lease ran out
        assert state[held[0]["index"]]["attempts"] == 2


def _calls_started(path):
    return bool(_read_calls(path))


def test_two_worker_processes_share_a_journal(tmp_path, new_journal, full, cands):
    ref = explore_candidates(cands, ew.evaluate, OBJ, full, tmp_path / "ref.sqlite",
                             "default", progress=False)
    journal, calls = new_journal(), tmp_path / "calls.txt"
    procs = [_worker(journal, calls, "--sleep", 0.1, "--worker", i, "--lease", 5,
                     "--barrier", tmp_path / "barrier", "--barrier_n", 2,
                     "--out", tmp_path / f"r{i}.json") for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out.decode()[-2000:]
    results = [ExploreResult.from_dict(json.load(open(tmp_path / f"r{i}.json")))
               for i in range(2)]
    for r in results:
        assert r.complete and r.winner["index"] == ref.winner["index"]
    counts = collections.Counter(i for _, i in _read_calls(calls))
    assert counts and max(counts.values()) == 1, "a candidate was evaluated twice"
    workers = collections.Counter(w for w, _ in _read_calls(calls))
    assert workers[0] >= 1 and workers[1] >= 1
    with Journal(journal) as j:
        rows = j.finished("default")
        assert j.integrity_check() == "ok"
    assert {row["worker"].split("@")[0] for row in rows.values()} == {"0", "1"}
    assert set(rows) >= {row["index"] for row in ref.rows}
    assert set(rows) == {int(i) for _, i in _read_calls(calls)}
