"""Exploration reports: JSON, CSV, Markdown and PNG plots from real explorations."""

import csv
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import explore_worker as ew  # noqa: E402
from wootz_keras.search import ExploreResult, explore_candidates, write_report  # noqa: E402
from wootz_keras.search.report import CSV_COLUMNS, FILES  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorations(tmp_path_factory):
    """A default and a composed exploration of the same 25 real candidates."""
    full = ew.teacher()[1]
    cands = ew.candidates()
    path = tmp_path_factory.mktemp("journal") / "journal.sqlite"
    results = {mode: explore_candidates(cands, lambda c, m=mode: ew.evaluate(c, m),
                                        "smallest_params:alpha=0.05", full, path, mode,
                                        progress=False)
               for mode in ("default", "composed")}
    return full, results


def _check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, path


def test_report_files(tmp_path, explorations):
    full, results = explorations
    out = tmp_path / "report"
    paths = write_report(out, full, ew.teacher_params(), results, pretrain_seconds=0.25,
                         settings={"fine_tune_steps": ew.FINE_TUNE_STEPS,
                                   "settings": {"lr": ew.FINE_TUNE_LR}})
    assert set(paths) == set(FILES)
    for key, name in FILES.items():
        assert paths[key] == os.path.join(str(out), name) and os.path.getsize(paths[key]) > 0
        if name.endswith(".png"):
            _check_png(paths[key])
    assert sorted(os.listdir(out)) == sorted(FILES.values())  # no temporaries left

    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    for mode, r in results.items():
        mine = [x for x in rows if x["mode"] == mode]
        assert len(mine) == r.tried
        winners = [x for x in mine if x["winner"] == "1"]
        assert [int(w["index"]) for w in winners] == [r.winner["index"]]
        assert [int(x["position"]) for x in mine] == sorted(int(x["position"]) for x in mine)

    data = json.load(open(paths["json"]))
    figures = data["figures"]
    d, c = figures["modes"]["default"], figures["modes"]["composed"]
    expected = results["default"].seconds / (results["composed"].seconds + 0.25)
    assert figures["speedup"] == pytest.approx(expected, rel=1e-3)
    assert c["total_seconds"] == pytest.approx(results["composed"].seconds + 0.25, rel=1e-3)
    assert d["winner_params_ratio"] == pytest.approx(
        results["default"].winner["params"] / ew.teacher_params(), rel=1e-3)
    assert data["settings"]["fine_tune_steps"] == ew.FINE_TUNE_STEPS
    back = ExploreResult.from_dict(data["results"]["composed"])
    assert back.winner == results["composed"].winner and back.tried == results["composed"].tried

    md = open(paths["markdown"]).read()
    assert "| mode | tried |" in md and "**Speedup**" in md
    assert f"{figures['speedup']:.2f}x" in md
    assert "| default | " in md and "| composed | " in md
    assert f"| settings.lr | {ew.FINE_TUNE_LR} |" in md
    for name in FILES.values():
        if name.endswith(".png"):
            assert f"({name})" in md


def test_report_from_dicts_and_without_winner(tmp_path, explorations):
    full, results = explorations
    cands = ew.candidates()
    none = explore_candidates(cands, ew.evaluate, "smallest_params:alpha=-0.1", full,
                              tmp_path / "j.sqlite", "default", progress=False)
    assert none.winner is None
    paths = write_report(tmp_path / "r", full, ew.teacher_params(),
                         {"default": none.to_dict()})
    for key in ("accuracy_vs_size", "accuracy_distributions", "timeline"):
        _check_png(paths[key])
    md = open(paths["markdown"]).read()
    assert "no candidate met" in md and "needs both" in md
    with open(paths["csv"]) as f:
        assert len(list(csv.DictReader(f))) == none.tried
    # rewriting replaces the files atomically
    paths2 = write_report(tmp_path / "r", full, ew.teacher_params(), results)
    assert json.load(open(paths2["json"]))["figures"]["speedup"] is not None
