"""Importing wootz_keras.export imports no TensorFlow, tf2onnx, onnx, onnxruntime or LiteRT.

So `wootz_keras/__init__.py` can bind `export` eagerly and the package
imports on Keras's other backends without TensorFlow installed (the GPU
machines have JAX but no TF). Each check runs in a fresh interpreter with a
`sys.meta_path` finder that refuses the heavy packages and records which
module asked for them.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert")

# Runs in the child. argv: backend, comma-separated packages to block.
CHILD = r"""
import importlib, importlib.abc, json, pkgutil, sys, traceback

blocked = set(sys.argv[2].split(","))
exempt = set(filter(None, sys.argv[4].split(",")))     # the backend library's own imports
attempts = []

def importer():
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
            ("importlib", "_frozen_importlib")):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            who = importer()
            if who.partition(".")[0] in exempt:
                return None        # e.g. torch._dynamo probing for onnx: not ours to judge
            attempts.append([who, name])
            raise ImportError(f"blocked for this test: {who} imports {name}")
        return None

sys.meta_path.insert(0, Refuse())
result = {"error": None, "attempts": attempts, "heavy_globals": [], "export_error": None}
try:
    import keras
    import wootz_keras
    ex = importlib.import_module("wootz_keras.export")  # the package; wz.export is the function
    for info in pkgutil.iter_modules(ex.__path__):
        importlib.import_module(f"wootz_keras.export.{info.name}")
    result["attempts"] = list(attempts)                  # at import time only
    result["backend"] = keras.backend.backend()
    result["modules"] = sorted(m for m in sys.modules if m.startswith("wootz_keras.export"))
    heavy = tuple(sys.argv[3].split(","))
    for name in result["modules"]:                      # module-level names bound to heavy packages
        for attr, value in vars(sys.modules[name]).items():
            owner = getattr(value, "__name__", None) if type(value).__name__ == "module" else \
                getattr(value, "__module__", None)
            if isinstance(owner, str) and owner.partition(".")[0] in heavy:
                result["heavy_globals"].append(f"{name}.{attr} -> {owner}")
    result["public"] = [n for n in ("export", "ExportError", "FORMATS", "PATHS", "real_images_for",
                                    "read_manifest", "MANIFEST", "ONNX_OPSET", "VerificationError",
                                    "FP32_ATOL", "FP16_RTOL", "INT8_MIN_TOP1") if hasattr(ex, n)]
    if "tensorflow" in blocked:                          # calling it says what is missing
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        try:
            ex.export(model, "/nonexistent/never/written")
        except ImportError as e:
            result["export_error"] = str(e)
except Exception:
    result["error"] = traceback.format_exc(limit=6)
print("RESULT " + json.dumps(result))
"""


def _run_child(backend, block):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    exempt = {"jax": "jax,jaxlib", "numpy": "jax,jaxlib", "torch": "torch"}.get(backend, "")
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, ",".join(block), ",".join(HEAVY),
                           exempt],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, f"child failed (rc {proc.returncode}): {proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _check(result):
    own = [a for a in result["attempts"] if a[0].startswith("wootz_keras.export")]
    assert not own, f"wootz_keras.export imports heavy packages at import time: {own}"
    assert result["error"] is None, (
        "importing wootz_keras.export failed; the blocked imports came from "
        f"{result['attempts']} (not export's own modules):\n{result['error']}")
    assert not result["heavy_globals"], result["heavy_globals"]
    assert "wootz_keras.export.api" in result["modules"]
    assert len(result["public"]) == 12, result["public"]


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow not installed")
def test_converters_not_imported_on_tensorflow_backend():
    """TF itself comes with Keras here; tf2onnx / onnx / onnxruntime / LiteRT must not."""
    result = _run_child("tensorflow", [p for p in HEAVY if p != "tensorflow"])
    _check(result)
    assert result["backend"] == "tensorflow"


# Keras's numpy backend needs jax too (for fft).
_NEEDS = {"jax": "jax", "numpy": "jax", "torch": "torch"}


@pytest.mark.parametrize("backend", sorted(_NEEDS))
def test_imports_without_tensorflow_on_another_backend(backend):
    if importlib.util.find_spec(_NEEDS[backend]) is None:
        pytest.skip(f"Keras's {backend} backend needs {_NEEDS[backend]}, not installed here")
    result = _run_child(backend, list(HEAVY))
    _check(result)
    assert result["backend"] == backend
    assert result["export_error"] and "TensorFlow" in result["export_error"]
