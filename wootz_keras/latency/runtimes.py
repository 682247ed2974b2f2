"""The edge runtimes latency is measured in, and the machine it is measured on.

Two runtimes, both on CPU at batch 1:

* ``"tflite"``: the LiteRT interpreter from the ``ai-edge-litert`` package
  (XNNPACK, as `wootz_keras.export` runs .tflite files). Single layers are
  converted with TensorFlow's TFLite converter.
* ``"onnxruntime"``: onnxruntime's CPUExecutionProvider (MLAS), as
  `wootz_keras.export` runs .onnx files. Single layers are written directly
  as ONNX graphs (Conv / Gemm + Relu, NCHW: what tf2onnx makes of a Keras
  layer once its layout transposes are folded away).

A runtime whose package is missing is a `RuntimeUnavailable` error naming
the package to install -- never a silent switch to another interpreter (a
latency measured in ``tf.lite.Interpreter`` would describe another runtime).
"""

import functools
import os
import platform
import re

RUNTIMES = ("tflite", "onnxruntime")
#: the export format (`wz.export` / manifest name) each runtime runs
EXPORT_FORMATS = {"tflite": "tflite", "onnxruntime": "onnx"}
_ALIASES = {"tflite": "tflite", "litert": "tflite", "onnxruntime": "onnxruntime",
            "onnx": "onnxruntime", "ort": "onnxruntime"}


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for cannot be imported on this machine."""


def check_runtime(runtime):
    """The canonical name of a runtime ("tflite" or "onnxruntime").

    Example:
        >>> check_runtime("ONNX")
        'onnxruntime'
    """
    name = _ALIASES.get(str(runtime).strip().lower()) if isinstance(runtime, str) else None
    if name is None:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return name


def check_threads(threads):
    """A positive thread count."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


@functools.lru_cache(maxsize=None)
def runtime_version(runtime):
    """"<package> <version>" of the runtime; RuntimeUnavailable if it is missing.

    Example:
        >>> runtime_version("onnxruntime").startswith("onnxruntime ")
        True
    """
    runtime = check_runtime(runtime)
    if runtime == "tflite":
        try:
            import ai_edge_litert  # noqa: F401
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        except ImportError as e:
            raise RuntimeUnavailable(
                "runtime 'tflite' needs the LiteRT interpreter (pip install ai-edge-litert); "
                f"it cannot be imported here: {e}") from None
        from importlib.metadata import PackageNotFoundError, version
        try:
            return f"ai_edge_litert {version('ai-edge-litert')}"
        except PackageNotFoundError:  # pragma: no cover - installed without metadata
            return f"ai_edge_litert {getattr(ai_edge_litert, '__version__', 'unknown')}"
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        raise RuntimeUnavailable(
            "runtime 'onnxruntime' needs the onnx and onnxruntime packages (pip install onnx "
            f"onnxruntime); they cannot be imported here: {e}") from None
    return f"onnxruntime {onnxruntime.__version__}"


@functools.lru_cache(maxsize=None)
def cpu_model():
    """The CPU's model name (from /proc/cpuinfo, else `platform`), and its core count.

    Example:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    name = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown-cpu"
    return f"{name} ({os.cpu_count()} cores)"


def slug(text):
    """`text` reduced to a file-name-safe slug.

    Example:
        >>> slug("AMD EPYC (2 cores)")
        'amd-epyc-2-cores'
    """
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "x"
