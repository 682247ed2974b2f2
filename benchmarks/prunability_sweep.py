"""Prunability sweep over every keras.applications architecture.

For each architecture constructor found in `keras.applications` (weights=None,
include_top=True, classes=10, logits out), at `--input_size` or the smallest
size the architecture accepts: prune_filters(rate), strip_pruning, then
compare the masked and the stripped model on real Fashion-MNIST test images
(resized, tiled to 3 channels, scaled to [0, 255] and passed through the
family's own `preprocess_input`). BatchNorm gamma / beta, biases and
LayerScales are randomised and BatchNorm statistics set from real images
(before and again after masking, as fine-tuning would), so that a wrongly
kept or removed channel shows in the output.
Records parameters and FLOPs before/after, prunable / total dependency
groups, parity (max |masked - stripped| over max |masked|), time and a
status: "ok", "parity fail", "parity untested" (output independent of the
image or of the pruning), "no reduction", or the error (which names the
layer the engine could not handle). A float32 parity failure is redone in
float64 ("ok (float64 ...)" when round-off, amplified by the untrained net,
was the cause).

    python benchmarks/prunability_sweep.py --markdown=/tmp/sweep.md --json=/tmp/sweep.json
    python benchmarks/prunability_sweep.py --models=ResNet50,MobileNetV3Small --input_size=32

A family (one keras.applications module, e.g. `efficientnet`) passes when all
its architectures are "ok". Results are rewritten atomically after every
model, so an interrupted sweep leaves its finished rows behind.

Run time of the full sweep on the 2-core / 24 GiB CPU box: about 7 to 12
minutes (see `main`; the Markdown output states it for each run).
"""

import collections
import gc
import inspect
import os
import re
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("models", "all", "Comma-separated architecture names "
                    "(e.g. ResNet50,MobileNetV2) or 'all'.")
flags.DEFINE_integer("input_size", 64, "Square input size; an architecture that needs more "
                     "(Xception: 71, InceptionV3 / InceptionResNetV2: 75) gets its minimum.")
flags.DEFINE_float("rate", 0.5, "Pruning rate given to every prunable group.")
flags.DEFINE_integer("images", 8, "Real Fashion-MNIST test images used for the parity check.")
flags.DEFINE_float("tolerance", 1e-4, "Largest relative parity error counted as ok.")
flags.DEFINE_string("markdown", None, "Write the results table (Markdown) to this path.")
flags.DEFINE_string("json", None, "Write the results (JSON) to this path.")
flags.DEFINE_boolean("list", False, "Only list the architectures found, with their family.")
FLAGS = flags.FLAGS

_MIN_SIZE = re.compile(r"at least (\d+)x(\d+)")


def architectures():
    """{name: (family, constructor)} for every keras.applications architecture,
    found by walking the package (a function exported twice, e.g. ResNet50 in
    `resnet` and `resnet50`, appears once, under its defining module), plus
    the sweep's own grouped-convolution model (EXTRA)."""
    import keras
    found = {}
    for name in sorted(dir(keras.applications)):
        fn = getattr(keras.applications, name)
        if not (name[:1].isupper() and inspect.isfunction(fn)):
            continue
        params = inspect.signature(fn).parameters
        if not {"weights", "input_shape", "include_top"} <= set(params):
            continue
        found[name] = (fn.__module__.rsplit(".", 1)[-1], fn)
    found.update(EXTRA)
    return found


def resnext50(input_shape, weights=None, include_top=True, classes=10,
              classifier_activation=None, cardinality=32, width=4):
    """ResNeXt-50 (32x4d), the sweep's grouped-convolution model (keras.applications
    has none): bottlenecks whose 3x3 convolution has `cardinality` groups."""
    import keras
    from keras import layers as L
    if weights is not None or not include_top:
        raise ValueError("resnext50 is built untrained with its top (weights=None)")
    inp = keras.Input(input_shape)
    y = L.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    y = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(y))
    y = L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(y)
    for s, blocks in enumerate((3, 4, 6, 3)):
        inner, out = cardinality * width * 2 ** s, 256 * 2 ** s
        for b in range(blocks):
            n, stride = f"stage{s + 1}_block{b + 1}", 2 if b == 0 and s > 0 else 1
            z = L.Conv2D(inner, 1, use_bias=False, name=f"{n}_conv1")(y)
            z = L.ReLU()(L.BatchNormalization(name=f"{n}_bn1")(z))
            z = L.Conv2D(inner, 3, strides=stride, padding="same", groups=cardinality,
                         use_bias=False, name=f"{n}_conv2")(z)
            z = L.ReLU()(L.BatchNormalization(name=f"{n}_bn2")(z))
            z = L.Conv2D(out, 1, use_bias=False, name=f"{n}_conv3")(z)
            z = L.BatchNormalization(name=f"{n}_bn3")(z)
            if b == 0:
                y = L.Conv2D(out, 1, strides=stride, use_bias=False, name=f"{n}_proj")(y)
                y = L.BatchNormalization(name=f"{n}_proj_bn")(y)
            y = L.ReLU(name=f"{n}_out")(L.Add(name=f"{n}_add")([z, y]))
    y = L.GlobalAveragePooling2D(name="avg_pool")(y)
    out = L.Dense(classes, activation=classifier_activation, name="predictions")(y)
    return keras.Model(inp, out, name="resnext50_32x4d")


# models of the sweep beyond keras.applications: {name: (family, constructor)}
EXTRA = {"ResNeXt50_32x4d": ("resnext (grouped conv)", resnext50)}


def build(fn, size):
    """(model, input size): at `size`, or at the minimum the constructor names."""
    params = inspect.signature(fn).parameters
    kwargs = dict(weights=None, include_top=True, classes=10)
    if "classifier_activation" in params:
        kwargs["classifier_activation"] = None      # compare logits, not saturated softmax
    try:
        return fn(input_shape=(size, size, 3), **kwargs), size
    except ValueError as e:
        m = _MIN_SIZE.search(str(e))
        if not m:
            raise
        size = max(size, int(m.group(1)), int(m.group(2)))
        return fn(input_shape=(size, size, 3), **kwargs), size


def real_images(size, count, preprocess, seed=3):
    from wootz_keras.data import load_fashion_mnist, representative_images
    x, _ = load_fashion_mnist("test", limit=max(count, 64), seed=seed)
    images = representative_images(x, count, size=(size, size), channels=3, seed=seed) * 255.0
    return preprocess(images.copy()) if preprocess is not None else images


def _short(message, limit=400):
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[:limit - 3] + "..."


def sweep_one(name, family, fn, size, rate=0.5, images=8, tolerance=1e-4, dtype="float32"):
    """One row of the sweep (a dict). Never raises: errors become the status.
    `dtype` is Keras's floatx while the model is built and run."""
    import keras
    import numpy as np

    import wootz_keras as wz
    from wootz_keras.testing import calibrate, randomise
    from wootz_keras.graph.dependency import ChannelAnalysis

    row = dict(model=name, family=family, input_size=size, params_before=None,
               params_after=None, params_ratio=None, flops_before=None, flops_after=None,
               flops_ratio=None, prunable_groups=None, total_groups=None, parity=None,
               output_scale=None, input_effect=None, pruning_effect=None, seconds=None,
               analysis_s=None, prune_s=None, strip_s=None, status="error", fixed_reasons={},
               warnings=[])
    start = time.perf_counter()
    stage = "build"
    floatx = keras.config.floatx()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            keras.config.set_floatx(dtype)
            keras.utils.set_random_seed(0)
            model, size = build(fn, size)
            preprocess = None if name in EXTRA else \
                getattr(sys.modules.get(fn.__module__), "preprocess_input", None)
            calibration = real_images(size, 16, preprocess, seed=4).astype(dtype)
            randomise(model, calibration)
            row["input_size"] = size
            row["params_before"] = int(model.count_params())
            row["flops_before"] = int(wz.count_flops(model))
            stage = "analysis"
            t = time.perf_counter()
            groups = ChannelAnalysis(model).groups
            row["analysis_s"] = round(time.perf_counter() - t, 2)
            row["prunable_groups"] = sum(g.prunable for g in groups)
            row["total_groups"] = len(groups)
            reasons = collections.Counter(_short(g.reason, 160) for g in groups if not g.prunable)
            row["fixed_reasons"] = dict(reasons.most_common(5))
            stage = "prune_filters"
            t = time.perf_counter()
            pruned = wz.prune_filters(model, rate=rate)
            row["prune_s"] = round(time.perf_counter() - t, 2)
            calibrate(pruned, calibration)      # strip_pruning must carry these statistics
            stage = "strip_pruning"
            t = time.perf_counter()
            stripped = wz.strip_pruning(pruned)
            row["strip_s"] = round(time.perf_counter() - t, 2)
            stage = "parity"
            x = real_images(size, images, preprocess).astype(dtype)
            a = keras.ops.convert_to_numpy(pruned(x, training=False)).astype(np.float64)
            b = keras.ops.convert_to_numpy(stripped(x, training=False)).astype(np.float64)
            if a.shape != b.shape:
                raise ValueError(f"masked output {a.shape} != stripped output {b.shape}")
            scale = float(np.abs(a).max())
            row["output_scale"] = scale
            # how much the output depends on the image, and on the pruning: were
            # either ~0, a parity of ~0 would prove nothing
            row["input_effect"] = float(a.std(axis=0).max() / scale) if scale > 0 else 0.0
            full = keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float64)
            row["pruning_effect"] = float(np.abs(full - a).max() / scale) if scale > 0 else 0.0
            diff = float(np.abs(a - b).max())
            row["parity"] = diff / scale if scale > 0 else diff
            row["params_after"] = int(stripped.count_params())
            row["flops_after"] = int(wz.count_flops(stripped))
            row["params_ratio"] = round(row["params_after"] / row["params_before"], 4)
            row["flops_ratio"] = round(row["flops_after"] / max(row["flops_before"], 1), 4)
        row["warnings"] = sorted({_short(w.message, 200) for w in caught
                                  if "pruning boundary" in str(w.message)})[:5]
        if not np.isfinite(row["parity"]) or row["parity"] > tolerance:
            row["status"] = "parity fail"
        elif row["input_effect"] < tolerance or row["pruning_effect"] < 100 * tolerance:
            row["status"] = "parity untested: the output hardly depends on the input or pruning"
        elif row["params_after"] >= row["params_before"]:
            reason = next(iter(row["fixed_reasons"]), "no prunable group")
            row["status"] = f"no reduction: {reason}"
        else:
            row["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - every failure is a result of the sweep
        row["status"] = _short(f"error in {stage}: {type(e).__name__}: {e}")
    finally:
        row["seconds"] = round(time.perf_counter() - start, 1)
        keras.config.set_floatx(floatx)
        keras.backend.clear_session()
        gc.collect()
    return row


def recheck_float64(row, name, family, fn):
    """A float32 parity failure may be round-off, amplified by an untrained,
    BatchNorm-recalibrated net (EfficientNetV2L's logits reach 3e4): redo the
    model in float64. The engine is exact if float64 parity is ~1e8 times
    smaller; the row then reads "ok (float64 ...)", with both figures."""
    again = sweep_one(name, family, fn, row["input_size"], FLAGS.rate, FLAGS.images,
                      FLAGS.tolerance, dtype="float64")
    row["parity_float64"] = again["parity"]
    row["seconds"] = round(row["seconds"] + again["seconds"], 1)
    if again["status"] == "ok":
        row["status"] = (f"ok (float64 parity {again['parity']:.1e}; float32 "
                         f"{row['parity']:.1e} is round-off amplified by the untrained net)")
    else:
        row["status"] = f"parity fail (float64: {again['status']})"


def _num(v, fmt="{:,}"):
    return "-" if v is None else fmt.format(v)


def family_summary(rows):
    """{family: {"ok": bool, "models": n, "failed": [names]}}."""
    out = {}
    for r in rows:
        f = out.setdefault(r["family"], {"ok": True, "models": 0, "failed": []})
        f["models"] += 1
        if not r["status"].startswith("ok"):
            f["ok"] = False
            f["failed"].append(r["model"])
    return out


def markdown(rows, config, elapsed):
    fams = family_summary(rows)
    ok_f = sum(f["ok"] for f in fams.values())
    ok_m = sum(r["status"].startswith("ok") for r in rows)
    lines = [
        "# Prunability sweep: keras.applications (+ a grouped-convolution ResNeXt)",
        "",
        f"rate={config['rate']}, input {config['input_size']}px (or the architecture's minimum), "
        f"weights=None, classes=10, logits; BatchNorm gamma/beta, biases and LayerScales "
        f"randomised, BatchNorm statistics set from 16 real images (again after masking); parity = "
        f"max|masked - stripped| / max|masked| on {config['images']} other real Fashion-MNIST "
        f"test images, ok if <= {config['tolerance']:g} (and the output visibly depends on the "
        f"image and on the pruning: see input_effect / pruning_effect in the JSON).",
        "",
        f"**Families ok: {ok_f}/{len(fams)} ({100.0 * ok_f / max(len(fams), 1):.0f}%); "
        f"architectures ok: {ok_m}/{len(rows)}; elapsed {elapsed:.0f} s.**",
        "",
        "| model | family | input | params before | params after | ratio | FLOPs before "
        "| FLOPs after | prunable/total groups | parity | time (s) | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        groups = "-" if r["total_groups"] is None else f"{r['prunable_groups']}/{r['total_groups']}"
        lines.append(
            f"| {r['model']} | {r['family']} | {r['input_size']} | {_num(r['params_before'])} "
            f"| {_num(r['params_after'])} | {_num(r['params_ratio'], '{:.3f}')} "
            f"| {_num(r['flops_before'])} | {_num(r['flops_after'])} | {groups} "
            f"| {_num(r['parity'], '{:.1e}')} | {r['seconds']} | {r['status'].replace('|', '/')} |")
    lines += ["", "Per family (architectures ok / total): " + ", ".join(
        f"{fam} {info['models'] - len(info['failed'])}/{info['models']}"
        for fam, info in sorted(fams.items())) + "."]
    failed = {k: v for k, v in fams.items() if not v["ok"]}
    if failed:
        lines += ["", "Families that fail:", ""]
        for fam, info in failed.items():
            for name in info["failed"]:
                r = next(r for r in rows if r["model"] == name)
                lines.append(f"- {fam} / {name}: {r['status']}")
    return "\n".join(lines) + "\n"


def _print_row(r):
    groups = "-" if r["total_groups"] is None else f"{r['prunable_groups']}/{r['total_groups']}"
    print(f"{r['model']:20s} {r['family']:20s} {r['input_size']:4d}px "
          f"params {_num(r['params_before']):>12s} -> {_num(r['params_after']):>12s} "
          f"groups {groups:>8s} parity {_num(r['parity'], '{:.1e}'):>8s} "
          f"{r['seconds']:7.1f}s  {r['status']}", flush=True)


def main(argv):
    """Full sweep (all 40 keras.applications architectures + ResNeXt-50,
    --input_size=64) on the 2-core / 24 GiB CPU box: 435 s for the 40 before
    this engine opened ConvNeXt's residual width (its rows now prune 4x more,
    and take longer); 738 s for the 41 with other jobs sharing the cores,
    float64 rechecks included; peak memory 5 GiB (ConvNeXtXLarge, 348M parameters)."""
    if len(argv) > 1:
        sys.exit(f"prunability_sweep: error: unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.input_size < 1 or FLAGS.images < 1 or not 0.0 <= FLAGS.rate < 1.0:
        sys.exit("prunability_sweep: error: need --input_size >= 1, --images >= 1, 0 <= --rate < 1")
    from wootz_keras.utils.io import write_json, write_text
    archs = architectures()
    if FLAGS.list:
        for name, (family, _) in archs.items():
            print(f"{name:24s} {family}")
        return
    if FLAGS.models.strip().lower() == "all":
        names = list(archs)
    else:
        names = [n.strip() for n in FLAGS.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in archs]
        if unknown:
            sys.exit(f"prunability_sweep: error: unknown architectures {unknown}; "
                     f"choose from {sorted(archs)}")
    config = dict(rate=FLAGS.rate, input_size=FLAGS.input_size, images=FLAGS.images,
                  tolerance=FLAGS.tolerance)
    rows, start = [], time.perf_counter()
    for name in names:
        family, fn = archs[name]
        row = sweep_one(name, family, fn, FLAGS.input_size, FLAGS.rate, FLAGS.images,
                        FLAGS.tolerance)
        if row["status"] == "parity fail":
            recheck_float64(row, name, family, fn)
        rows.append(row)
        _print_row(rows[-1])
        elapsed = time.perf_counter() - start
        if FLAGS.json:
            fams = family_summary(rows)
            write_json(FLAGS.json, dict(
                config=config, elapsed_s=round(elapsed, 1), rows=rows, families=fams,
                summary=dict(families_ok=sum(f["ok"] for f in fams.values()),
                             families=len(fams),
                             models_ok=sum(r["status"].startswith("ok") for r in rows),
                             models=len(rows), complete=len(rows) == len(names))))
        if FLAGS.markdown:
            write_text(FLAGS.markdown, markdown(rows, config, elapsed))
    elapsed = time.perf_counter() - start
    print()
    print(markdown(rows, config, elapsed))


if __name__ == "__main__":
    app.run(main)
