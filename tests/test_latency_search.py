"""Latency in the search: candidates with predicted latency, the fastest objective end to end.

The latency table is real onnxruntime, measured with tiny settings into a
temporary cache folder; the assertions never depend on who is faster.
"""

import keras
import pytest

from wootz_keras import data, zoo
from wootz_keras.compose import Assembler
from wootz_keras.latency import CACHE_ENV, ChannelPolicy, LatencyTable
from wootz_keras.planner import find_modules
from wootz_keras.planner.config_space import module_group_rates
from wootz_keras.training import Protocol
from wootz_keras.workflow.runner import explore, make_candidates

TINY = dict(runs=2, warmup=0, rounds=1)
CONFIGS = [[0.3, 0.3, 0.3], [0.7, 0.7, 0.7], [0.5, 0.3, 0.7]]


@pytest.fixture
def tiny_tables(monkeypatch, tmp_path):
    """Route the shared tables to a temporary folder, measured with tiny settings."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    import wootz_keras.latency as latency
    real = latency.latency_predictor
    monkeypatch.setattr(latency, "latency_predictor",
                        lambda runtime, threads=1: real(runtime, threads, **TINY))
    return tmp_path


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(0)
    return zoo.resnet_cifar(depth=8, width=8)


def test_candidates_get_predicted_latency_only_when_asked(tiny_tables, teacher):
    modules = find_modules(teacher)
    plain = make_candidates(CONFIGS, modules)
    assert all(c.latency_ms is None for c in plain)
    timed = make_candidates(CONFIGS, modules, objective="fastest:runtime=onnxruntime")
    assert [c.params for c in timed] == [c.params for c in plain]
    import wootz_keras.latency as latency
    predictor = latency.latency_predictor("onnxruntime")        # the shared, cached table
    for c in timed:
        assert c.latency_ms == pytest.approx(predictor.predict(
            modules.analysis, group_rates=module_group_rates(modules, c.rates)))
    assert (tiny_tables / "latency").is_dir()


def test_candidates_built_with_auto_rounding(tiny_tables, teacher, tmp_path):
    modules = find_modules(teacher)
    table = LatencyTable("onnxruntime", cache=tmp_path / "fake",
                         measure=lambda shape, cin, cout: 1e-3 * (1 + -(-cout // 16)))
    policy = ChannelPolicy(table)
    cands = make_candidates(CONFIGS, modules, objective="smallest_params", round_to=policy)
    nets = [Assembler(teacher, modules, round_to=policy).assemble(c.rates) for c in cands]
    assert [c.params for c in cands] == [n.count_params() for n in nets]
    with pytest.raises(ValueError, match="needs runtime"):
        make_candidates(CONFIGS, modules, round_to="auto")


def test_explore_fastest_runs_in_latency_order(tiny_tables, teacher, tmp_path):
    x, y = data.load_fashion_mnist("train", limit=320, seed=0)
    result = explore(teacher, CONFIGS, (x[:256], y[:256]), (x[256:], y[256:]),
                     objective="fastest:runtime=onnxruntime,alpha=0.5",
                     protocol=Protocol(max_steps=2, eval_every=2, batch_size=32),
                     journal=str(tmp_path / "j.sqlite"), full_accuracy=0.2, progress=False)
    assert result.objective["name"] == "fastest_within_accuracy"
    # the table is cached: the same predictions again
    cands = make_candidates(CONFIGS, find_modules(teacher),
                            objective="fastest:runtime=onnxruntime,alpha=0.5")
    fastest = min(cands, key=lambda c: (c.latency_ms, c.flops, c.params, c.index))
    assert result.rows and result.rows[0]["position"] == 0
    assert result.rows[0]["index"] == fastest.index
    assert result.rows[0]["extra"]["predicted_latency_ms"] == pytest.approx(fastest.latency_ms)
    assert result.rows[0]["extra"]["latency_runtime"] == "onnxruntime"


def test_exported_winner_has_its_measured_latency_in_journal_and_report(tmp_path):
    from wootz_keras.search import Journal
    from wootz_keras.search.objectives import Candidate
    from wootz_keras.search.report import _markdown
    from wootz_keras.workflow.pipeline import export_winner
    keras.utils.set_random_seed(0)
    net = zoo.resnet_cifar(depth=8, width=4, input_shape=(28, 28, 1))
    net.save(tmp_path / "winner.keras")
    journal = str(tmp_path / "j.sqlite")
    extra = {"model": str(tmp_path / "winner.keras"), "test_accuracy": 0.5,
             "predicted_latency_ms": 0.2, "latency_runtime": "onnxruntime"}
    with Journal(journal) as j:
        j.begin("default", {"full_accuracy": 0.9}, order=[4])
        j.record("default", Candidate(4, (0.5,), 10, 20), final_accuracy=0.9, seconds=1.0,
                 extra=extra)
        winner = j.finished("default")[4]
    d = data.load_data("fashion_mnist", train_limit=32, test_limit=32, seed=0)
    out = export_winner(winner, str(tmp_path / "export"), d, ("onnx",), log=lambda m: None,
                        journal=journal)
    measured = out["measured_latency_ms"]["onnx"]
    assert measured > 0
    assert out["latency_error"] == pytest.approx((0.2 - measured) / measured)
    with Journal(journal) as j:
        row = j.finished("default")[4]
    assert row["extra"]["measured_latency_ms"] == {"onnx": measured}
    assert row["extra"]["predicted_latency_ms"] == 0.2          # the rest is kept
    text = _markdown({"full_accuracy": 0.9, "teacher_params": 100, "modes": {},
                      "export": out}, None)
    assert f"onnx {measured:.3f} ms" in text and "Predicted latency in onnxruntime" in text
