"""tools/export.py run as a command: exit codes, files, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from wootz_keras.zoo import plain_cnn

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "export.py")


def _run(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, TOOL, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "plain_cnn.keras"
    plain_cnn().save(path)
    return str(path)


def test_exports_all_formats_to_default_dir(saved_model, tmp_path):
    proc = _run(["--model", saved_model, "--num_verify_images", "50", "--latency_runs", "5"],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out_dir = tmp_path / "exported" / "plain_cnn"
    assert sorted(os.listdir(out_dir)) == ["manifest.json", "model.onnx", "model.tflite", "savedmodel"]
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["verify_images"] == 50
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    assert "manifest:" in proc.stdout


@pytest.mark.parametrize("args, culprit", [
    (["--formats", "tflite,coreml"], "coreml"),
    (["--quantize", "int4"], "quantize"),
])
def test_bad_flags_fail_with_one_line(saved_model, tmp_path, args, culprit):
    proc = _run(["--model", saved_model, "--out_dir", "out", *args], cwd=tmp_path)
    assert proc.returncode != 0
    assert culprit in _last_line(proc.stderr)
    assert _last_line(proc.stderr).startswith("wootz-export: error:")
    assert os.listdir(tmp_path) == []


def test_missing_model_file(tmp_path):
    proc = _run(["--model", "no_such_model.keras", "--out_dir", "out"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "no_such_model.keras" in _last_line(proc.stderr)
    assert os.listdir(tmp_path) == []


def test_unloadable_model_file(tmp_path):
    (tmp_path / "broken.keras").write_text("not a keras archive")
    proc = _run(["--model", "broken.keras", "--out_dir", "out"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "broken.keras" in _last_line(proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["broken.keras"]
