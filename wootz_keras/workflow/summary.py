"""The few lines a run ends with: what it found, what the numbers mean, what next.

Every number comes from the run's figures (`search.figures.summary`), the
same computation report.md and results.json print.
"""

import os

#: How to run an exported winner; the README carries the same lines (tested).
USE_EXPORTED = '''\
import numpy as np, onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from wootz_keras.data import load_fashion_mnist
images = load_fashion_mnist("test", limit=8)[0]          # your images, shaped like the model input
onnx = ort.InferenceSession("{dir}/model.onnx", providers=["CPUExecutionProvider"])
scores = onnx.run(None, {{onnx.get_inputs()[0].name: images}})[0]
tflite = Interpreter(model_path="{dir}/model.tflite")
tflite.resize_tensor_input(tflite.get_input_details()[0]["index"], images.shape)
tflite.allocate_tensors()
tflite.set_tensor(tflite.get_input_details()[0]["index"], images)
tflite.invoke()
assert np.allclose(tflite.get_tensor(tflite.get_output_details()[0]["index"]), scores, atol=1e-4)
print(scores.argmax(-1))                                  # predicted classes'''


def _winner_text(m, teacher_params):
    if m.get("winner_index") is None:
        return "no winner"
    what = "winner" if m["winner_met"] else "no candidate met the target; most accurate"
    test = m.get("winner_test_accuracy")
    return (f"{what} #{m['winner_index']}: {m['winner_params']:,} params "
            f"({m['winner_params'] / teacher_params:.1%} of the teacher), validation "
            f"{m['winner_val_accuracy']:.4f}" + (f", test {test:.4f}" if test is not None else ""))


def _why_not(figures):
    """One sentence on why composability did not pay off, or None."""
    m = figures["modes"]
    d, a = m.get("default"), m.get("auto")
    if d is None or a is None:
        return None
    decision = a.get("decision") or {}
    if not decision.get("pretrain"):
        return ("composability had nothing to save here: default pruning met the target "
                f"with its candidate at position {decision.get('default_positions', 1) - 1}, so "
                "auto never paid for pre-training")
    if figures.get("speedup_auto") is not None and figures["speedup_auto"] < 1:
        return (f"composability did not pay off here: pre-training ({a['pretrain_seconds']:.0f} s) "
                f"cost more than the fine-tuning it saved (default pruning needed "
                f"{d['total_seconds']:.0f} s in all)")
    return None


def closing_summary(figures, out_dir, export_dir=None):
    """The text a run ends with (see the module docstring).

    Example:
        >>> f = {"full_accuracy": 0.9, "teacher_params": 100, "objective": "smallest params",
        ...      "target": 0.89, "modes": {}, "metric": "accuracy"}
        >>> print(closing_summary(f, "runs/x").splitlines()[0])
        == wootz run finished ==
    """
    m = figures["modes"]
    tp = figures["teacher_params"]
    lines = ["== wootz run finished ==",
             f"teacher: {tp:,} params, validation {figures.get('metric', 'accuracy')} "
             f"{figures['full_accuracy']:.4f}",
             f"objective: {figures.get('objective')} (target {figures.get('target') or 0:.4f})"]
    for mode, title in (("auto", "auto mode"), ("composed", "composability"),
                        ("default", "default pruning (side by side)")):
        if mode not in m:
            continue
        f = m[mode]
        extra = (f" + {f['pretrain_seconds']:.0f} s pre-training = {f['total_seconds']:.0f} s"
                 if f["pretrain_seconds"] else "")
        lines.append(f"{title}: {_winner_text(f, tp)}; {f['tried']} candidates fine-tuned in "
                     f"{f['fine_tune_seconds']:.0f} s{extra}")
        if mode == "auto" and f.get("decision"):
            lines.append(f"  auto decided: {f['decision']['reason']}")
    for key, title in (("speedup_auto", "auto"), ("speedup", "composability")):
        if figures.get(key) is not None:
            lines.append(f"speedup of {title} over default pruning: {figures[key]:.2f}x "
                         f"(default pruning's time / {title}'s time, pre-training included, "
                         "both under one fine-tuning protocol)")
    why = _why_not(figures)
    if why:
        lines.append(why + ".")
    lines.append(f"run folder: {out_dir} (report.md, results.json, results.csv, plots; rerun "
                 "the same command to resume)")
    if export_dir and figures.get("export"):
        lines.append(f"exported winner: {export_dir} (savedmodel/, model.tflite, model.onnx, "
                     "manifest.json with parity and latency)")
        lines.append("next: run it on a phone or board runtime, e.g. in Python:")
        lines += ["    " + line for line in USE_EXPORTED.format(dir=export_dir).splitlines()]
    elif export_dir:
        lines.append(f"nothing exported to {export_dir}: no candidate met the objective")
    return "\n".join(lines)


def use_exported_snippet(export_dir):
    """The Python lines that run an exported winner from `export_dir`."""
    return USE_EXPORTED.format(dir=os.fspath(export_dir))
