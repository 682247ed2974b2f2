"""Export sweep: every keras.applications architecture, pruned, in every format.

For each architecture of benchmarks/prunability_sweep.py (same constructors,
weights=None, classes=10, logits, same input sizes, same real Fashion-MNIST
images through the family's `preprocess_input`, BatchNorm / bias / LayerScale
randomised and BatchNorm statistics set from real images, with
`wootz_keras.testing`), plus four small models of the other kinds (a
Sequential CNN fresh, reloaded from .keras and from legacy .h5, and a nested
Functional model with a MobileNetV2 sub-model and a Sequential head):

1. prune at `--rate` (wz.prune_filters), recalibrate BatchNorm, wz.strip_pruning;
2. export the stripped model with `wootz_keras.export.export` to SavedModel,
   TFLite fp32 and ONNX (each verified by the exporter in its own runtime);
3. parity per format, relative: max |runtime - Keras| / max |Keras| on the real
   images, ok if <= `--tolerance`. Above it (or when the exporter's own
   check rejected the file) the file is rebuilt with the same library steps
   and compared with a float64 copy of the model (same weights): "ok
   (float64 ...)" when its error against float64 is at most 10x Keras's own
   float32 error (float32 round-off, amplified by the untrained net, is the
   cause), else "parity fail";
4. convert the unpruned model too (TFLite, ONNX; same steps, parity not
   checked: it is only timed) and time both at batch 1,
   `--threads` thread(s), full and pruned alternating over
   `--latency_rounds` rounds, while holding the EXCLUSIVE CPU lock
   (`--cpu_lock`, nobody else computing); conversion and parity run under the
   shared lock. Prints the pruned / full latency ratio per runtime next to the
   FLOPs ratio.

The script takes the CPU lock itself: run it WITHOUT `flock`:

    python benchmarks/export_sweep.py --markdown=benchmarks/results/export_sweep.md \\
        --json=benchmarks/results/export_sweep.json
    python benchmarks/export_sweep.py --models=ResNet50,SequentialCNN --nolatency

Every failure is a one-line error (the exporter's, naming the op or layer).
Results are rewritten atomically after every model. Run time of the full
sweep on the 2-core CPU box: see the Markdown output.
"""

import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from absl import app, flags  # noqa: E402

# Its architecture list, builder, images and flags (--models, --input_size,
# --rate, --images, --tolerance, --markdown, --json, --list) are reused as is.
import prunability_sweep as ps  # noqa: E402

flags.DEFINE_boolean("extras", True, "Also sweep the Sequential (fresh, .keras, .h5) and nested "
                     "models (names: " + ", ".join(("SequentialCNN", "SequentialCNN_keras",
                                                    "SequentialCNN_h5", "NestedMobileNetV2")) + ").")
flags.DEFINE_boolean("latency", True, "Time the full and pruned TFLite / ONNX files.")
flags.DEFINE_integer("threads", 1, "Threads for the TFLite interpreter and onnxruntime.")
flags.DEFINE_integer("latency_rounds", 3, "Alternating full / pruned timing rounds (median taken).")
flags.DEFINE_float("latency_seconds", 0.5, "Timed seconds per file per round (sets the run count).")
flags.DEFINE_integer("max_latency_runs", 200, "At most this many timed runs per file per round.")
flags.DEFINE_string("cpu_lock", "/tmp/wootz_cpu.lock", "flock file: shared while converting, "
                    "exclusive while timing ('' = no locking).")
flags.DEFINE_string("work_dir", None, "Keep the exported files here (default: deleted per model).")
flags.DEFINE_boolean("resume", False, "Keep the finished rows of --json and sweep the rest.")
flags.DEFINE_float("max_rss_gb", 16.0, "Stop a model's conversion past this resident memory.")
flags.DEFINE_float("min_free_gb", 1.0, "Stop a model's conversion when the machine has less "
                   "memory available than this (before the kernel's OOM killer picks a victim).")
flags.DEFINE_string("child_row", None, "Internal: convert the one model of --models in this "
                    "process and write its row to this JSON file.")
flags.DEFINE_string("child_full", None, "Internal: convert the unpruned SavedModel in this "
                    "folder to TFLite and ONNX (state in its state.json).")
FLAGS = flags.FLAGS

FORMATS = ("savedmodel", "tflite", "onnx")
LATENCY_RUNTIMES = (("tflite", "model.tflite"), ("onnxruntime", "model.onnx"))
ROUNDOFF_FACTOR = 10.0


# -- the models -------------------------------------------------------------

def _sequential_cnn(size):
    import keras
    L = keras.layers
    return keras.Sequential([
        keras.Input((size, size, 3)),
        L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
        L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(10)], name="sequential_cnn")


def _reloaded(suffix):
    def build(size):
        import keras
        with tempfile.TemporaryDirectory(prefix="wz_sweep_") as scratch:
            path = os.path.join(scratch, f"model{suffix}")
            _sequential_cnn(size).save(path)
            return keras.models.load_model(path, compile=False)
    return build


def _nested_mobilenet_v2(size):
    import keras
    L = keras.layers
    base = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None,
                                          input_shape=(size, size, 3))
    head = keras.Sequential([L.Dense(32), L.ReLU(), L.Dense(10)], name="head")
    x = keras.Input((size, size, 3), name="image")
    y = L.Rescaling(1 / 127.5, offset=-1.0)(x)
    return keras.Model(x, head(L.GlobalAveragePooling2D()(base(y))), name="nested_mobilenet_v2")


EXTRAS = {"SequentialCNN": ("extras", _sequential_cnn),
          "SequentialCNN_keras": ("extras", _reloaded(".keras")),
          "SequentialCNN_h5": ("extras", _reloaded(".h5")),
          "NestedMobileNetV2": ("extras", _nested_mobilenet_v2)}


def catalogue(extras=True):
    """{name: (family, build(size) -> (model, size), preprocess or None)}."""
    out = {}
    for name, (family, fn) in ps.architectures().items():
        preprocess = getattr(sys.modules.get(fn.__module__), "preprocess_input", None)
        out[name] = (family, lambda size, fn=fn: ps.build(fn, size), preprocess)
    if extras:
        for name, (family, fn) in EXTRAS.items():
            out[name] = (family, lambda size, fn=fn: (fn(size), size), None)
    return out


def kind(model):
    """"Sequential", "Functional", or "Functional (nested)"."""
    import keras
    nested = any(isinstance(l, keras.Model) for l in model.layers)
    return type(model).__name__ + (" (nested)" if nested else "")


# -- locking, float64 twin, files without the exporter's verdict --------------

@contextlib.contextmanager
def cpu_lock(exclusive, wait=True):
    """Hold `--cpu_lock` shared (computing) or exclusive (timing); yields
    False instead of waiting when `wait` is False and the lock is busy."""
    if not FLAGS.cpu_lock:
        yield True
        return
    import fcntl
    with open(FLAGS.cpu_lock, "a") as f:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(f, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _float64_config(obj):
    if isinstance(obj, dict):
        if obj.get("class_name") == "DTypePolicy" and isinstance(obj.get("config"), dict):
            return {**obj, "config": {**obj["config"], "name": "float64"}}
        return {k: "float64" if k == "dtype" and v == "float32" else _float64_config(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float64_config(v) for v in obj]
    return obj


def float64_twin(model):
    """The same network (config and weights) computing in float64."""
    import numpy as np
    twin = type(model).from_config(_float64_config(model.get_config()))
    twin.set_weights([np.asarray(w).astype(v.dtype)
                      for w, v in zip(model.get_weights(), twin.weights)])
    return twin


def unverified_files(model, folder, formats, progress=None):
    """Write `formats` with the exporter's own steps but without its parity
    verdict (for the float64 re-check, and for timing the unpruned model),
    from `model` or from the SavedModel `folder`/savedmodel already there.
    `progress(format)` is called before each. Returns {format: path or one-line error}."""
    from wootz_keras.export.api import PATHS, _one_line
    from wootz_keras.export.onnx_export import savedmodel_to_onnx
    from wootz_keras.export.quiet import quiet_converters
    from wootz_keras.export.savedmodel import write_savedmodel
    from wootz_keras.export.tflite import convert_tflite

    os.makedirs(folder, exist_ok=True)
    staged = os.path.join(folder, PATHS["savedmodel"])
    out = {}
    with quiet_converters():
        if not os.path.isdir(staged):
            write_savedmodel(model, staged)
        for fmt in formats:
            path = os.path.join(folder, PATHS[fmt])
            if progress:
                progress(fmt)
            try:
                if fmt == "tflite":
                    with open(path, "wb") as f:
                        f.write(convert_tflite(staged))
                elif fmt == "onnx":
                    savedmodel_to_onnx(staged, path)
                out[fmt] = path
            except Exception as e:  # noqa: BLE001
                out[fmt] = _one_line(e)
    return out


def runner_for(fmt, path, threads=1):
    from wootz_keras.export.onnx_export import OnnxRunner
    from wootz_keras.export.savedmodel import SavedModelRunner
    from wootz_keras.export.tflite import TFLiteRunner
    if fmt == "savedmodel":
        return SavedModelRunner(path)
    if fmt == "tflite":
        return TFLiteRunner(path, num_threads=threads)
    return OnnxRunner(path, num_threads=threads)


# -- one architecture -------------------------------------------------------

def _export(model, folder, formats, x):
    """The manifest of wootz_keras.export.export, failed formats included."""
    from wootz_keras.export import ExportError, export
    try:
        return export(model, folder, formats=formats, verify_data=x, latency_runs=3)
    except ExportError as e:
        return e.manifest


def _recheck_float64(model, x, ref32, fmt, path, scale, tol):
    """Status after comparing the file and Keras float32 with float64 Keras."""
    import numpy as np
    from wootz_keras.export.verify import predict_in_batches
    got = predict_in_batches(runner_for(fmt, path).predict, x, 16).astype(np.float64)
    truth = np.asarray(float64_twin(model)(x.astype(np.float64), training=False), np.float64)
    t_scale = float(np.abs(truth).max()) or 1.0
    err_rt = float(np.abs(got - truth).max() / t_scale)
    err_k = float(np.abs(ref32 - truth).max() / t_scale)
    diff = float(np.abs(got - ref32).max() / scale)
    fields = dict(parity=diff, parity_vs_float64=err_rt, keras_float32_vs_float64=err_k)
    if err_rt <= max(tol, ROUNDOFF_FACTOR * err_k):
        fields["status"] = (f"ok (float64: {fmt} error {err_rt:.1e}, Keras float32's own "
                            f"{err_k:.1e}; the float32 difference {diff:.1e} is round-off)")
    else:
        fields["status"] = (f"parity fail: {diff:.1e} (float64: {fmt} error {err_rt:.1e} vs "
                            f"Keras float32's {err_k:.1e})")
    return fields


def convert_one(name, family, build, preprocess, size, work, rate=0.5, images=8, tolerance=1e-4,
                progress=None):
    """Build, prune, strip, export and check one model; never raises.
    `progress(row)` is called as each stage starts (row["stage"]) and at the end."""
    import keras
    import numpy as np

    import wootz_keras as wz
    from wootz_keras.testing import calibrate, randomise

    row = dict(model=name, family=family, kind=None, input_size=size, params_before=None,
               params_after=None, flops_before=None, flops_after=None, flops_ratio=None,
               output_scale=None, formats={}, full={}, status="error", seconds=None, stage=None)
    start = time.perf_counter()

    def enter(stage):
        row["stage"] = stage
        row["seconds"] = round(time.perf_counter() - start, 1)
        if progress:
            progress(row)

    try:
        enter("build")
        keras.utils.set_random_seed(0)
        model, size = build(size)
        row.update(input_size=size, kind=kind(model))
        calibration = ps.real_images(size, 16, preprocess, seed=4).astype("float32")
        randomise(model, calibration)
        row["params_before"] = int(model.count_params())
        row["flops_before"] = int(wz.count_flops(model))
        enter("prune_filters / strip_pruning")
        pruned = wz.prune_filters(model, rate=rate)
        calibrate(pruned, calibration)
        stripped = wz.strip_pruning(pruned)
        del pruned  # the masked model holds a second full-size copy of the weights
        gc.collect()
        row["params_after"] = int(stripped.count_params())
        row["flops_after"] = int(wz.count_flops(stripped))
        row["flops_ratio"] = round(row["flops_after"] / max(row["flops_before"], 1), 4)
        x = ps.real_images(size, images, preprocess).astype("float32")
        ref = np.asarray(stripped(x, training=False), np.float64)
        scale = float(np.abs(ref).max()) or 1.0
        row["output_scale"] = scale
        row["prune_s"] = round(time.perf_counter() - start, 1)

        enter("unpruned SavedModel (for latency)")
        from wootz_keras.export.quiet import quiet_converters
        from wootz_keras.export.savedmodel import write_savedmodel
        try:
            with quiet_converters():  # converted to TFLite / ONNX by convert_unpruned
                write_savedmodel(model, os.path.join(work, "full", "savedmodel"))
        except Exception as e:  # noqa: BLE001 - only the timing needs it
            message = ps._short(f"error in {row['stage']}: {type(e).__name__}: {e}")
            row["full"] = {fmt: message for fmt in ("tflite", "onnx")}
        del model  # not needed any more: keep the pruned export's peak memory down
        gc.collect()

        enter("export (pruned)")
        t = time.perf_counter()
        manifest = _export(stripped, os.path.join(work, "pruned"), FORMATS, x)
        for fmt in FORMATS:
            entry = manifest["formats"][fmt]
            cell = {"exporter": entry["status"], "manifest_latency_ms": entry.get("latency_ms"),
                    "bytes": entry.get("bytes")}
            if entry["status"] == "ok":
                cell["parity"] = entry["max_abs_diff"] / scale
                cell["status"] = "ok" if cell["parity"] <= tolerance else "recheck"
            elif "VerificationError" in entry["status"] and "max abs diff" in entry["status"]:
                cell["status"] = "recheck"
            else:
                cell["status"] = entry["status"].removeprefix("error: ")
            row["formats"][fmt] = cell
        for fmt, cell in row["formats"].items():
            if cell["status"] != "recheck":
                continue
            enter(f"float64 re-check ({fmt})")
            if cell["exporter"] == "ok":
                path = os.path.join(work, "pruned", manifest["formats"][fmt]["path"])
            else:
                made = unverified_files(stripped, os.path.join(work, "recheck"), [fmt])
                path = made.get(fmt, os.path.join(work, "recheck", "savedmodel"))
            if os.path.exists(path):
                cell.update(_recheck_float64(stripped, x, ref, fmt, path, scale, tolerance))
            else:
                cell["status"] = path  # the conversion's one-line error
        shutil.rmtree(os.path.join(work, "recheck"), ignore_errors=True)
        shutil.rmtree(os.path.join(work, "pruned", "savedmodel"), ignore_errors=True)
        ok = [row["formats"][f]["status"].startswith("ok") for f in FORMATS]
        row["status"] = "ok" if all(ok) else f"{sum(ok)}/{len(FORMATS)} formats ok"
        row["export_s"] = round(time.perf_counter() - t, 1)
        del stripped
        gc.collect()

    except Exception as e:  # noqa: BLE001 - every failure is a result of the sweep
        message = ps._short(f"error in {row['stage']}: {type(e).__name__}: {e}")
        if row["stage"].startswith("unpruned"):
            row["full"] = {fmt: message for fmt in ("tflite", "onnx")}
        else:
            row["status"] = message
    finally:
        row["seconds"] = round(time.perf_counter() - start, 1)
        row["stage"] = "done"
        keras.backend.clear_session()
        gc.collect()
        if progress:
            progress(row)
    return row


def _rss_gb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def _available_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2 ** 20
    return float("inf")


def run_watched(args):
    """Run this script with `args` in a fresh interpreter (all memory returned
    afterwards), stopped before the machine runs out of memory (MemAvailable <
    --min_free_gb) or past --max_rss_gb. Returns (peak RSS GB, reason stopped or None, rc)."""
    import subprocess

    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args])
    peak, reason = 0.0, None
    while child.poll() is None:
        rss = _rss_gb(child.pid)
        peak = max(peak, rss)
        if rss > FLAGS.max_rss_gb:
            reason = f"stopped at {rss:.1f} GB RSS (the sweep's limit is {FLAGS.max_rss_gb:g} GB)"
        elif _available_gb() < FLAGS.min_free_gb:
            reason = (f"stopped at {rss:.1f} GB RSS: the machine was out of memory "
                      f"(< {FLAGS.min_free_gb:g} GB available)")
        if reason:
            child.kill()
            child.wait()
            break
        time.sleep(0.25)
    return round(peak, 2), reason, child.returncode


def convert_unpruned(folder, progress):
    """Child: the unpruned model's TFLite and ONNX files from `folder`/savedmodel."""
    state = {"stage": "start", "full": {}}

    def enter(fmt):
        state["stage"] = f"unpruned {fmt}"
        progress(state)
    t = time.perf_counter()
    made = unverified_files(None, folder, ("tflite", "onnx"), progress=enter)
    state["full"] = {fmt: "ok" if os.path.exists(p) else p for fmt, p in made.items()}
    state["full_files_s"] = round(time.perf_counter() - t, 1)
    shutil.rmtree(os.path.join(folder, "savedmodel"), ignore_errors=True)
    state["stage"] = "done"
    progress(state)


def convert_in_child(name, family, work):
    """`convert_one` in a watched child (see `run_watched`), then
    `convert_unpruned` in another; a stopped stage gets a one-line error."""
    import json

    row_path = os.path.join(work, "row.json")
    peak, reason, rc = run_watched([
        f"--models={name}", f"--child_row={row_path}", f"--input_size={FLAGS.input_size}",
        f"--rate={FLAGS.rate}", f"--images={FLAGS.images}", f"--tolerance={FLAGS.tolerance}",
        "--extras" if FLAGS.extras else "--noextras"])
    try:
        with open(row_path) as f:
            row = json.load(f)
    except (OSError, ValueError):
        row = dict(model=name, family=family, kind=None, input_size=FLAGS.input_size,
                   params_before=None, params_after=None, flops_before=None, flops_after=None,
                   flops_ratio=None, formats={}, full={}, seconds=None, stage="start")
    row["peak_rss_gb"] = peak
    if row.get("stage") != "done":
        why = reason or f"the conversion process died (exit code {rc})"
        message = f"error in {row['stage']}: {why}"
        if str(row["stage"]).startswith("unpruned"):
            row["full"] = {fmt: message for fmt in ("tflite", "onnx")}
        else:
            for fmt in FORMATS:
                row["formats"].setdefault(fmt, {"status": message})
            row["status"] = message
        row["stage"] = "done"
    full = os.path.join(work, "full")
    if os.path.isdir(os.path.join(full, "savedmodel")) and not row["full"]:
        state_path = os.path.join(full, "state.json")
        peak, reason, rc = run_watched([f"--child_full={full}"])
        try:
            with open(state_path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {"stage": "unpruned tflite", "full": {}}
        row["full"] = state["full"]
        row["full_files_s"] = state.get("full_files_s")
        row["peak_rss_gb_unpruned"] = peak
        if state["stage"] != "done":
            why = reason or f"the conversion process died (exit code {rc})"
            stopped = state["stage"].split()[-1]
            for fmt in ("tflite", "onnx"):
                if fmt not in row["full"]:
                    row["full"][fmt] = (f"error in unpruned {fmt}: {why}" if fmt == stopped
                                        else "not attempted")
        shutil.rmtree(os.path.join(full, "savedmodel"), ignore_errors=True)
    return row


def time_one(row, work, preprocess=None, threads=1, rounds=3, seconds=0.5, max_runs=200):
    """Batch-1 latency of full vs pruned, per runtime, full and pruned alternating."""
    import numpy as np

    from wootz_keras.export.verify import median_latency_ms

    x1 = ps.real_images(row["input_size"], 1, preprocess).astype("float32")
    row["latency"] = {}
    for runtime, fname in LATENCY_RUNTIMES:
        fmt = "tflite" if runtime == "tflite" else "onnx"
        paths = {tag: os.path.join(work, tag, fname) for tag in ("full", "pruned")}
        if not all(os.path.exists(p) for p in paths.values()):
            row["latency"][runtime] = None
            continue
        try:
            fns = {tag: runner_for(fmt, p, threads).latency_fn(x1) for tag, p in paths.items()}
            runs = {}
            for tag, fn in fns.items():
                for _ in range(3):
                    fn()
                t = time.perf_counter()
                fn()
                runs[tag] = int(min(max_runs, max(5, seconds / max(time.perf_counter() - t, 1e-6))))
            samples = {tag: [] for tag in fns}
            for _ in range(rounds):
                for tag, fn in fns.items():
                    samples[tag].append(median_latency_ms(fn, runs=runs[tag], warmup=2))
            ms = {tag: float(np.median(s)) for tag, s in samples.items()}
            row["latency"][runtime] = dict(full_ms=round(ms["full"], 4),
                                           pruned_ms=round(ms["pruned"], 4),
                                           ratio=round(ms["pruned"] / ms["full"], 4),
                                           runs=runs, rounds=rounds)
        except Exception as e:  # noqa: BLE001
            row["latency"][runtime] = {"error": ps._short(f"{type(e).__name__}: {e}", 200)}


# -- reporting --------------------------------------------------------------

def versions():
    import keras
    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    from wootz_keras.export.tflite import _interpreter_class
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "tflite": _interpreter_class()[1]}


def _cell(c):
    if c is None:
        return "-"
    s = c["status"]
    if s == "ok":
        return f"ok {c['parity']:.0e}"
    if s.startswith("ok (float64"):
        return f"ok* {c['parity']:.0e}"
    return "FAIL"


def _lat(row, runtime):
    lat = (row.get("latency") or {}).get(runtime)
    if not lat:
        return "-", "-"
    if "error" in lat:
        return "error", "-"
    return f"{lat['pruned_ms']:.2f} / {lat['full_ms']:.2f}", f"{lat['ratio']:.2f}"


def markdown(rows, config, elapsed, vers):
    n_ok = sum(r["status"] == "ok" for r in rows)
    per_format = {f: sum(r["formats"].get(f, {}).get("status", "").startswith("ok") for r in rows)
                  for f in FORMATS}
    lines = [
        "# Export sweep: keras.applications (+ Sequential / nested / reloaded models), pruned",
        "",
        f"Each model: weights=None, classes=10, logits, input {config['input_size']}px (or the "
        f"architecture's minimum); BatchNorm / biases / LayerScales randomised, BatchNorm "
        f"statistics from real images; `wz.prune_filters(rate={config['rate']})`, BatchNorm "
        f"recalibrated, `wz.strip_pruning`; then `wootz_keras.export.export` to SavedModel, "
        f"TFLite fp32 and ONNX (opset 18, converted from the SavedModel). Parity = max|runtime - "
        f"Keras| / max|Keras| on {config['images']} real Fashion-MNIST test images, ok if <= "
        f"{config['tolerance']:g}; `ok*` = above it, but the file's error against a float64 "
        f"copy of the model is at most {ROUNDOFF_FACTOR:g}x Keras float32's own (round-off of "
        f"the untrained net; both figures in the failure list / JSON).",
        "",
        f"Latency: batch 1, {config['threads']} thread(s), CPU, "
        f"{'median of ' + str(config['latency_rounds']) + ' rounds alternating full and pruned, each the median of ~' + str(config['latency_seconds']) + ' s of runs, ' if config['latency'] else 'not measured; '}"
        f"measured while holding the exclusive CPU lock (no other job computing); conversion "
        f"and parity under the shared lock. Runtimes: {vers['tflite']}; onnxruntime "
        f"{vers['onnxruntime']} (CPUExecutionProvider); TensorFlow {vers['tensorflow']}, Keras "
        f"{vers['keras']}, tf2onnx {vers['tf2onnx']}. Columns: pruned / unpruned ms, and their "
        f"ratio next to the FLOPs ratio (pruned / unpruned).",
        "",
        f"**Models ok in every format: {n_ok}/{len(rows)} (SavedModel {per_format['savedmodel']}, "
        f"TFLite {per_format['tflite']}, ONNX {per_format['onnx']}).** Time on the 2-core CPU "
        f"box (shared with other jobs): conversion + parity "
        f"{sum(r['seconds'] or 0 for r in rows) / 60:.0f} min, latency "
        f"{sum(r.get('latency_s') or 0 for r in rows) / 60:.0f} min, waiting for the exclusive "
        f"lock {sum(r.get('latency_wait_s') or 0 for r in rows) / 60:.0f} min; elapsed "
        f"{elapsed / 60:.0f} min (this run).",
        "",
        "| model | family | kind | input | params pruned / full | FLOPs ratio | SavedModel | "
        "TFLite fp32 | ONNX | TFLite ms | TFLite ratio | ORT ms | ORT ratio | time (s) |",
        "|---|---|---|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = "-" if r["params_after"] is None else \
            f"{r['params_after'] / 1e6:.2f}M / {r['params_before'] / 1e6:.2f}M"
        flops = "-" if r["flops_ratio"] is None else f"{r['flops_ratio']:.2f}"
        tl, tr = _lat(r, "tflite")
        ol, orr = _lat(r, "onnxruntime")
        cells = [_cell(r["formats"].get(f)) for f in FORMATS]
        lines.append(f"| {r['model']} | {r['family']} | {r['kind'] or '-'} | {r['input_size']} "
                     f"| {params} | {flops} | {' | '.join(cells)} | {tl} | {tr} | {ol} | {orr} "
                     f"| {r['seconds']} |")
    notes = []
    for r in rows:
        if not r["formats"]:
            notes.append(f"- {r['model']}: {r['status']}")
        for f, c in r["formats"].items():
            if c["status"] != "ok":
                notes.append(f"- {r['model']} / {f}: {c['status']}")
        for f, s in r["full"].items():
            if s != "ok":
                notes.append(f"- {r['model']} / unpruned {f} (for timing): {s}")
        for runtime in ("tflite", "onnxruntime"):
            lat = (r.get("latency") or {}).get(runtime)
            if lat and "error" in lat:
                notes.append(f"- {r['model']} / {runtime} latency: {lat['error']}")
    if notes:
        lines += ["", "Failures and float64 re-checks (one line each):", "", *notes]
    return "\n".join(lines) + "\n"


def _print_row(r):
    cells = "  ".join(f"{f}={_cell(r['formats'].get(f))}" for f in FORMATS)
    lat = "  ".join(f"{rt} {_lat(r, rt)[1]}" for rt in ("tflite", "onnxruntime"))
    flops = "-" if r["flops_ratio"] is None else f"{r['flops_ratio']:.2f}"
    print(f"{r['model']:20s} {r['input_size']:4d}px  {cells}  latency ratio: {lat}  "
          f"FLOPs ratio {flops}  {r['seconds']:6.1f}s  {r['status']}", flush=True)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"export_sweep: error: unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.input_size < 1 or FLAGS.images < 1 or not 0.0 <= FLAGS.rate < 1.0:
        sys.exit("export_sweep: error: need --input_size >= 1, --images >= 1, 0 <= --rate < 1")
    import logging
    logging.getLogger("wootz_keras").setLevel(logging.WARNING)  # absl would show INFO
    from wootz_keras.utils.io import write_json, write_text
    models = catalogue(FLAGS.extras)
    if FLAGS.list:
        for name, (family, _, _) in models.items():
            print(f"{name:24s} {family}")
        return
    if FLAGS.models.strip().lower() == "all":
        names = list(models)
    else:
        names = [n.strip() for n in FLAGS.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in models]
        if unknown:
            sys.exit(f"export_sweep: error: unknown models {unknown}; choose from {sorted(models)}")
    config = dict(rate=FLAGS.rate, input_size=FLAGS.input_size, images=FLAGS.images,
                  tolerance=FLAGS.tolerance, threads=FLAGS.threads, latency=FLAGS.latency,
                  latency_rounds=FLAGS.latency_rounds, latency_seconds=FLAGS.latency_seconds,
                  cpu_lock=FLAGS.cpu_lock or None)
    if FLAGS.child_full:
        convert_unpruned(FLAGS.child_full,
                         lambda state: write_json(os.path.join(FLAGS.child_full, "state.json"),
                                                  state))
        return
    if FLAGS.child_row:
        (name,) = names
        family, build, preprocess = models[name]
        work = os.path.dirname(os.path.abspath(FLAGS.child_row))
        convert_one(name, family, build, preprocess, FLAGS.input_size, work, FLAGS.rate,
                    FLAGS.images, FLAGS.tolerance,
                    progress=lambda row: write_json(FLAGS.child_row, row))
        return
    with cpu_lock(exclusive=False):
        vers = versions()
    rows, deferred, start = [], [], time.perf_counter()
    if FLAGS.resume and FLAGS.json and os.path.exists(FLAGS.json):
        from wootz_keras.utils.io import read_json
        done = {r["model"]: r for r in read_json(FLAGS.json, what="sweep results")["rows"]
                if r["model"] in names and (r.get("latency") or not FLAGS.latency
                                            or not r["formats"])}
        rows = [done[n] for n in names if n in done]
        names_left = [n for n in names if n not in done]
        print(f"resuming: {len(rows)} models done, {len(names_left)} to go", flush=True)
    else:
        names_left = names

    def save():
        elapsed = time.perf_counter() - start
        summary = dict(models_ok=sum(r["status"] == "ok" for r in rows), models=len(rows),
                       complete=len(rows) == len(names) and not deferred)
        if FLAGS.json:
            write_json(FLAGS.json, dict(config=config, versions=vers, elapsed_s=round(elapsed, 1),
                                        summary=summary, rows=rows))
        if FLAGS.markdown:
            write_text(FLAGS.markdown, markdown(rows, config, elapsed, vers))

    def timed(row, work, preprocess, wait):
        """Time `row` under the exclusive lock; False if `wait` is False and it is busy."""
        t = time.perf_counter()
        with cpu_lock(exclusive=True, wait=wait) as held:
            if not held:
                return False
            row["latency_wait_s"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            time_one(row, work, preprocess, FLAGS.threads, FLAGS.latency_rounds,
                     FLAGS.latency_seconds, FLAGS.max_latency_runs)
        row["latency_s"] = round(time.perf_counter() - t, 1)
        return True

    def cleanup(work, keep=()):
        if FLAGS.work_dir:
            return
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            return
        for root, dirs, files in os.walk(work, topdown=False):  # keep only the timed files
            for f in files:
                if f not in keep:
                    os.remove(os.path.join(root, f))
            for d in dirs:
                if not os.listdir(os.path.join(root, d)):
                    os.rmdir(os.path.join(root, d))

    for name in names_left:
        family, build, preprocess = models[name]
        work = os.path.join(FLAGS.work_dir, name) if FLAGS.work_dir else \
            tempfile.mkdtemp(prefix=f"wz_sweep_{name}_")
        os.makedirs(work, exist_ok=True)
        with cpu_lock(exclusive=False):
            row = convert_in_child(name, family, work)
        rows.append(row)
        if FLAGS.latency and row["formats"] and not timed(row, work, preprocess, wait=False):
            # others are computing: time it at the end rather than wait now
            deferred.append((row, work, preprocess))
            cleanup(work, keep=[f for _, f in LATENCY_RUNTIMES])
            print(f"{name}: CPU busy, latency deferred to the end", flush=True)
        else:
            cleanup(work)
            _print_row(row)
        save()
    for row, work, preprocess in deferred:
        timed(row, work, preprocess, wait=True)
        cleanup(work)
        _print_row(row)
        save()
    print()
    print(markdown(rows, config, time.perf_counter() - start, vers))


if __name__ == "__main__":
    app.run(main)
