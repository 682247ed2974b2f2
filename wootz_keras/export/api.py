"""`export()`: write SavedModel / TFLite / ONNX, verify each in its runtime, keep only what passes.

The SavedModel is written first (into a scratch folder) and both TFLite and
ONNX are converted from it. TensorFlow, tf2onnx, onnx and onnxruntime are
imported only when `export()` runs.
"""

import dataclasses
import gc
import logging
import os
import shutil
import tempfile

import keras
import numpy as np

from wootz_keras.export.data import as_images, model_input_shape, synthetic_images
from wootz_keras.export.manifest import manifest_header, model_cost, write_manifest
from wootz_keras.export.onnx_export import (
    COLLECT_ABOVE_BYTES,
    ONNX_OPSET,
    OnnxRunner,
    check_onnx_size,
    savedmodel_to_onnx,
)
from wootz_keras.export.quiet import quiet_converters
from wootz_keras.export.savedmodel import SIGNATURE, SavedModelRunner, write_savedmodel
from wootz_keras.export.tflite import MAX_REPRESENTATIVE, TFLiteRunner, convert_tflite
from wootz_keras.export.verify import check_parity, median_latency_ms, predict_in_batches
from wootz_keras.utils.io import atomic_path

log = logging.getLogger("wootz_keras.export")

FORMATS = ("savedmodel", "tflite", "onnx")
PATHS = {"savedmodel": "savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}
QUANTIZE = (None, "float16", "int8")


class ExportError(RuntimeError):
    """Some formats failed to convert or verify.

    `failed` maps each failed format to its error string; `manifest` is the
    manifest (also written to `manifest_path` when at least one format
    succeeded), so callers can still use the formats that passed.
    """

    def __init__(self, failed, manifest=None, manifest_path=None):
        self.failed = dict(failed)
        self.manifest = manifest
        self.manifest_path = manifest_path
        details = "; ".join(f"{fmt}: {err}" for fmt, err in self.failed.items())
        super().__init__(f"export failed: {details}")


def normalize_formats(formats):
    """Validated tuple of format names from a list or a comma string.

    Example:
        >>> normalize_formats("onnx, tflite")
        ('onnx', 'tflite')
    """
    if isinstance(formats, str):
        formats = formats.split(",")
    names = []
    for f in formats:
        name = str(f).strip().lower()
        if name not in FORMATS:
            raise ValueError(f"unknown format {f!r} in formats (choose from {', '.join(FORMATS)})")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"formats is empty (choose from {', '.join(FORMATS)})")
    return tuple(names)


def normalize_quantize(quantize, formats=FORMATS):
    """None, "float16" or "int8" ("none" means None); ValueError otherwise.

    Example:
        >>> normalize_quantize("none") is None
        True
    """
    if isinstance(quantize, str) and quantize.lower() == "none":
        quantize = None
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be None, 'float16' or 'int8', got {quantize!r}")
    if quantize and "tflite" not in formats:
        raise ValueError(f"quantize={quantize!r} applies to the 'tflite' format only, "
                         f"which is not in formats {list(formats)}")
    return quantize


def _require_tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise ImportError("wootz_keras.export needs TensorFlow to write SavedModel, TFLite and "
                          f"ONNX files (pip install tensorflow tf2onnx onnxruntime): {e}") from e


def _strip_if_pruned(model):
    """Strip pruning wrappers (with a notice); return (model, stripped)."""
    from wootz_keras.pruning import is_pruned, strip_pruning
    if not is_pruned(model):
        return model, False
    log.warning("model %r still carries pruning wrappers: exporting "
                "wootz_keras.pruning.strip_pruning(model) instead", model.name)
    return strip_pruning(model), True


def _one_line(err, limit=500):
    text = " ".join(str(err).split()) or "(no message)"
    text = f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


@dataclasses.dataclass
class _Job:
    model: keras.Model
    verify: np.ndarray
    reference: np.ndarray
    quantize: str
    representative: np.ndarray
    staged_savedmodel: str
    savedmodel_error: str
    latency_runs: int
    num_threads: int

    def measure(self, runner, precision):
        """Parity on the verification images, then batch-1 latency."""
        got = predict_in_batches(runner.predict, self.verify)
        entry = check_parity(got, self.reference, precision)
        entry["latency_ms"] = round(median_latency_ms(
            runner.latency_fn(self.verify[:1]), runs=self.latency_runs,
            warmup=max(3, self.latency_runs // 10)), 4)
        entry["latency_runs"] = self.latency_runs
        entry["runtime"] = runner.runtime
        entry["threads"] = runner.threads
        return entry

    def need_savedmodel(self):
        if self.staged_savedmodel is None:
            raise RuntimeError(f"the SavedModel could not be written: {self.savedmodel_error}")
        return self.staged_savedmodel


def _export_savedmodel(job, final):
    staged = job.need_savedmodel()
    with atomic_path(final) as tmp:
        shutil.copytree(staged, tmp)
        entry = job.measure(SavedModelRunner(tmp), "float32")
    entry.update(precision="float32", signature=SIGNATURE)
    return entry


def _export_tflite(job, final):
    flatbuffer = convert_tflite(job.need_savedmodel(), job.quantize, job.representative)
    precision = job.quantize or "float32"
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        runner = TFLiteRunner(tmp, num_threads=job.num_threads)
        entry = job.measure(runner, precision)
        entry.update(runner.quantization())
        entry["input_dtype"] = runner.input_dtype
    entry["precision"] = precision
    if job.quantize == "int8":
        entry["calibration_images"] = int(len(job.representative))
    return entry


def _export_onnx(job, final):
    check_onnx_size(job.model)
    staged = job.need_savedmodel()
    with atomic_path(final) as tmp:
        savedmodel_to_onnx(staged, tmp, opset=ONNX_OPSET)
        runner = OnnxRunner(tmp, num_threads=job.num_threads)
        entry = job.measure(runner, "float32")
    entry.update(precision="float32", opset=ONNX_OPSET, input_name=runner.input_name,
                 input_shape=runner.input_shape)
    return entry


_EXPORTERS = {"savedmodel": _export_savedmodel, "tflite": _export_tflite, "onnx": _export_onnx}


def export(model, out_dir, formats=FORMATS, quantize=None, representative_data=None,
           verify_data=None, *, latency_runs=50, num_threads=1):
    """Export `model` to SavedModel, TFLite and/or ONNX, each verified in its runtime.

    Writes into `out_dir`: `savedmodel/`, `model.tflite`, `model.onnx` (those
    asked for in `formats`) and `manifest.json`. The SavedModel is written
    first; TFLite and ONNX are converted from its serving signature (so
    Functional, Sequential, nested and .h5-loaded models all convert). Each
    file is written to a temporary path, checked in its own runtime
    (SavedModel reloaded with tf.saved_model.load; .tflite in the LiteRT
    interpreter; .onnx through onnx.checker and onnxruntime's
    CPUExecutionProvider) against Keras on `verify_data`, timed at batch 1 on
    CPU (median of `latency_runs` runs after warm-up, `num_threads` threads
    for TFLite and onnxruntime), and only then moved into place. A model
    still carrying pruning wrappers is stripped first, with a logged notice.
    Converter output is kept off the console (see `wootz_keras.export.quiet`).

    Args:
        model: single-input, single-output `keras.Model` with a float32 input.
        out_dir: destination folder (created if needed).
        formats: any of "savedmodel", "tflite", "onnx" (a list or a comma string).
        quantize: None, "float16" or "int8"; applies to the TFLite file only
            (SavedModel and ONNX stay float32). "int8" is full-integer with
            int8 input/output tensors (see `wootz_keras.export.tflite`).
        representative_data: real images for int8 calibration (array or
            tf.data.Dataset); required for quantize="int8".
        verify_data: real images, shaped like the model input, to check
            parity on (recommended). Without them float parity is checked on
            32 seeded synthetic uniform [0, 1) images, with a logged notice
            and "verify_data": "synthetic, 32 seeded images" in the manifest;
            quantize="int8" needs real ones. Tolerances: float32 max abs diff
            <= 1e-4 x max(1, max |output|); float16 <= 1e-2 x max(1, max
            |output|); int8 top-1 agreement >= 98%.
        latency_runs: timed batch-1 runs per format.
        num_threads: threads for the TFLite interpreter and onnxruntime.

    Returns:
        The manifest dict (also written to `out_dir/manifest.json`).

    Raises:
        ValueError: bad arguments, naming the culprit; nothing is written.
        ExportError: some formats failed (their files are absent and their
            manifest status holds the error); the others are in place and in
            the manifest, which is written whenever at least one succeeded
            (and always into an `out_dir` that already existed).

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> from wootz_keras.data import load_fashion_mnist
        >>> x, _ = load_fashion_mnist("test", limit=50)
        >>> manifest = export(plain_cnn(), "/tmp/wz_doc_export", formats=("onnx",), verify_data=x)
        >>> manifest["formats"]["onnx"]["status"], manifest["verify_data"]
        ('ok', 'given, 50 images')
    """
    formats = normalize_formats(formats)
    quantize = normalize_quantize(quantize, formats)
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir {out_dir!r} exists and is not a directory")
    _require_tensorflow()
    given = model
    model, stripped = _strip_if_pruned(model)
    shape = model_input_shape(model)
    synthetic = verify_data is None
    if synthetic and quantize == "int8":
        raise ValueError("verify_data: quantize='int8' is verified by top-1 agreement, which "
                         "needs real images shaped (N, " + ", ".join(map(str, shape)) + ")")
    verify = synthetic_images(shape) if synthetic else as_images(verify_data, "verify_data", shape)
    representative = None
    if quantize == "int8":
        representative = as_images(representative_data, "representative_data", shape,
                                   limit=MAX_REPRESENTATIVE)
        if len(verify) < 100:
            log.warning("only %d verification images: int8 top-1 agreement is coarse", len(verify))
    elif representative_data is not None:
        log.info("representative_data is only used for quantize='int8'; ignored")
    if latency_runs < 1:
        raise ValueError(f"latency_runs must be >= 1, got {latency_runs}")
    if synthetic:
        log.warning("no verify_data given: checking parity on %d seeded synthetic images; "
                    "pass real images (verify_data=) for a meaningful check", len(verify))

    # The reference is the model as given (masked, if it was pruned): the files
    # must reproduce what the caller handed in. Direct calls rather than
    # model.predict: no per-model tf.function retracing.
    with quiet_converters():  # the first TensorFlow op logs device probing natively
        reference = predict_in_batches(lambda b: np.asarray(given(b, training=False)), verify, 64)
    params, flops = model_cost(model)
    manifest = manifest_header(model, params=params, flops=flops, stripped=stripped,
                               quantize=quantize, verify_images=int(len(verify)),
                               synthetic_verify=synthetic)
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    failed = {}
    with tempfile.TemporaryDirectory(prefix="wz_export_") as scratch:
        staged, staged_error = os.path.join(scratch, "savedmodel"), None
        try:
            with quiet_converters():
                write_savedmodel(model, staged)
        except Exception as e:  # recorded against every format: all come from it
            staged, staged_error = None, _one_line(e)
        big = 4 * model.count_params() >= COLLECT_ABOVE_BYTES
        job = _Job(model, verify, reference, quantize, representative, staged, staged_error,
                   latency_runs, num_threads)
        for fmt in formats:
            final = os.path.join(out_dir, PATHS[fmt])
            try:
                with quiet_converters():
                    entry = _EXPORTERS[fmt](job, final)
            except Exception as e:
                log.warning("export to %s failed: %s", fmt, _one_line(e),
                            exc_info=log.isEnabledFor(logging.DEBUG))
                _remove(final)  # a stale file from an earlier export would contradict the manifest
                failed[fmt] = _one_line(e)
                manifest["formats"][fmt] = {"path": None, "status": f"error: {failed[fmt]}"}
                continue
            finally:
                if big:  # loaded SavedModels / converters keep weight copies in cycles
                    gc.collect()
            entry = {"path": PATHS[fmt], "bytes": _bytes(final), **entry, "status": "ok"}
            manifest["formats"][fmt] = entry
            log.info("exported %s -> %s", fmt, final)

    manifest_path = None
    if len(failed) < len(formats) or not created:
        # Written whenever something succeeded, and always into a folder that
        # existed before (so an older manifest never outlives its files).
        manifest_path = write_manifest(out_dir, manifest)
    else:
        try:
            os.rmdir(out_dir)
        except OSError:
            pass
    if failed:
        raise ExportError(failed, manifest, manifest_path)
    return manifest
