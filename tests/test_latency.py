"""Latency tables: runtimes, shape classes, measurement, the on-disk cache.

Measurements use tiny settings (a few runs) and assert plumbing, never who
is faster: timings on a shared machine are not stable.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest

from wootz_keras import zoo
from wootz_keras.graph import LayerGraph
from wootz_keras.latency import (
    RuntimeUnavailable,
    LatencyTable,
    LayerShape,
    cache_dir,
    check_runtime,
    latency_table,
    layer_latency_ms,
    layer_points,
    model_latency_ms,
)
from wootz_keras.latency import runtimes
from wootz_keras.latency.table import CACHE_ENV

L = keras.layers
TINY = dict(runs=2, warmup=0, rounds=1)
CONV = LayerShape("conv", (3, 3), (1, 1), (1, 1), "same", (8, 8))


def test_runtime_names():
    assert check_runtime("tflite") == "tflite"
    assert check_runtime("ORT") == "onnxruntime"
    for bad in ("tensorrt", "", None, 3):
        with pytest.raises(ValueError, match="runtime must be one of"):
            check_runtime(bad)


def test_missing_runtime_is_a_clear_error(monkeypatch, tmp_path):
    runtimes.runtime_version.cache_clear()
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)     # import fails
    try:
        with pytest.raises(RuntimeUnavailable, match="pip install ai-edge-litert"):
            LatencyTable("tflite", cache=tmp_path)
        with pytest.raises(RuntimeUnavailable, match="ai-edge-litert"):
            layer_latency_ms("tflite", CONV, 2, 2, **TINY)
    finally:
        runtimes.runtime_version.cache_clear()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    try:
        with pytest.raises(RuntimeUnavailable, match="onnxruntime"):
            LatencyTable("onnxruntime", cache=tmp_path)
    finally:
        runtimes.runtime_version.cache_clear()


def test_shape_classes_and_points():
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="c")(inputs)
    x = L.DepthwiseConv2D(3, padding="valid", depth_multiplier=2, name="dw")(x)
    x = L.SeparableConv2D(6, 3, padding="same", name="sep")(x)
    x = L.Conv2D(4, 1, groups=2, name="grouped")(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(5, name="fc")(x)
    graph = LayerGraph(keras.Model(inputs, outputs))
    calls = {c.core.name: c for c in graph.calls}
    assert [(s.key, i, o) for s, i, o in layer_points(calls["c"], 3, 8)] == \
        [("conv-k3x3-s2x2-d1x1-same-12x12", 3, 8)]
    assert [(s.key, i, o) for s, i, o in layer_points(calls["dw"], 8, 16)] == \
        [("depthwise-k3x3-s1x1-d1x1-valid-6x6-m2", 8, 16)]
    sep = layer_points(calls["sep"], 16, 6)
    assert [(s.key, i, o) for s, i, o in sep] == [
        ("depthwise-k3x3-s1x1-d1x1-same-4x4-m1", 16, 16), ("conv-k1x1-s1x1-d1x1-valid-4x4", 16, 6)]
    assert layer_points(calls["grouped"], 6, 4) == []            # not modelled
    assert [(s.key, i, o) for s, i, o in layer_points(calls["fc"], 4, 5)] == [("dense-p1", 4, 5)]
    with pytest.raises(ValueError, match="depthwise"):
        LayerShape("depthwise", (3, 3), spatial=(4, 4), depth_multiplier=2).check_counts(4, 4)
    with pytest.raises(ValueError, match="kind"):
        LayerShape("pool")


@pytest.mark.parametrize("runtime", ["onnxruntime", "tflite"])
def test_every_layer_kind_measures_in_both_runtimes(runtime):
    shapes = [(CONV, 3, 5), (LayerShape("conv", (3, 3), (2, 2), (1, 1), "valid", (9, 7)), 4, 3),
              (LayerShape("depthwise", (3, 3), (1, 1), (1, 1), "same", (8, 8)), 6, 6),
              (LayerShape("depthwise", (3, 3), (2, 2), (1, 1), "same", (8, 8),
                          depth_multiplier=2), 3, 6),
              (LayerShape("conv", (3, 3), (1, 1), (2, 2), "same", (8, 8)), 2, 2),
              (LayerShape("dense", positions=1), 7, 3), (LayerShape("dense", positions=4), 5, 2)]
    for shape, cin, cout in shapes:
        ms = layer_latency_ms(runtime, shape, cin, cout, **TINY)
        assert np.isfinite(ms) and ms > 0, (shape.key, ms)


def test_cache_file_is_written_once_and_reused(tmp_path):
    table = LatencyTable("onnxruntime", cache=tmp_path, **TINY)
    assert table.path.startswith(str(tmp_path))
    name = os.path.basename(table.path)
    assert name.startswith("onnxruntime-onnxruntime-") and "-t1-" in name
    ms = table.lookup([(CONV, 2, 3), (CONV, 2, 4), (CONV, 2, 3)])
    assert table.measured == 2 and ms[0] == ms[2]
    assert sorted(os.listdir(tmp_path)) == [name]                # atomic: no temporaries left
    doc = json.load(open(table.path))
    assert doc["format"] == "wootz_keras.latency_table" and doc["threads"] == 1
    assert doc["runtime_version"] == table.runtime_version and doc["cpu"] == table.cpu
    assert len(doc["entries"]) == 2

    again = LatencyTable("onnxruntime", cache=tmp_path, **TINY)
    assert again.lookup([(CONV, 2, 3), (CONV, 2, 4)]) == ms[:2]
    assert again.measured == 0 and again.hits == 2 and (CONV, 2, 4) in again


def test_two_writers_merge(tmp_path):
    a = LatencyTable("onnxruntime", cache=tmp_path, measure=lambda s, i, o: 1.0)
    b = LatencyTable("onnxruntime", cache=tmp_path, measure=lambda s, i, o: 2.0)
    a.ms(CONV, 1, 1)
    b.ms(CONV, 1, 2)
    merged = LatencyTable("onnxruntime", cache=tmp_path)
    assert (CONV, 1, 1) in merged and (CONV, 1, 2) in merged
    assert merged.ms(CONV, 1, 1) == 1.0 and merged.ms(CONV, 1, 2) == 2.0 and merged.measured == 0


def test_threads_are_part_of_the_key(tmp_path):
    one = LatencyTable("onnxruntime", threads=1, cache=tmp_path, measure=lambda s, i, o: 1.0)
    two = LatencyTable("onnxruntime", threads=2, cache=tmp_path, measure=lambda s, i, o: 1.0)
    assert one.path != two.path and "-t2-" in two.path


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == str(tmp_path / "c" / "latency")
    table = latency_table("onnxruntime", **TINY)
    assert table.folder == str(tmp_path / "c" / "latency")
    assert latency_table("onnxruntime", **TINY) is table             # shared in the process
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == str(tmp_path / "xdg" / "wootz_keras" / "latency")


def test_foreign_or_mismatched_files_are_refused(tmp_path):
    table = LatencyTable("onnxruntime", cache=tmp_path, measure=lambda s, i, o: 1.0)
    table.ms(CONV, 1, 1)
    doc = json.load(open(table.path))
    doc["runtime_version"] = "onnxruntime 0.0.1"
    json.dump(doc, open(table.path, "w"))
    with pytest.raises(ValueError, match="measured with 'onnxruntime 0.0.1'"):
        LatencyTable("onnxruntime", cache=tmp_path)
    open(table.path, "w").write("{broken")
    with pytest.raises(ValueError, match="latency table"):
        LatencyTable("onnxruntime", cache=tmp_path)


def test_bad_settings_and_measurements(tmp_path):
    for bad in (dict(runs=0), dict(rounds=0), dict(warmup=-1), dict(runs=1.5)):
        with pytest.raises(ValueError):
            LatencyTable("onnxruntime", cache=tmp_path, **bad)
    with pytest.raises(ValueError, match="threads"):
        LatencyTable("onnxruntime", threads=0, cache=tmp_path)
    with pytest.raises(ValueError, match="measure"):
        LatencyTable("onnxruntime", cache=tmp_path, measure=3)
    table = LatencyTable("onnxruntime", cache=tmp_path, measure=lambda s, i, o: 0.0)
    with pytest.raises(ValueError, match="latency of conv"):
        table.ms(CONV, 1, 1)


def test_model_latency_in_both_runtimes():
    model = zoo.plain_cnn(input_shape=(8, 8, 1), width=4)
    for runtime in ("onnxruntime", "tflite"):
        assert model_latency_ms(model, runtime, **TINY) > 0
