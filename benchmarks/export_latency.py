"""Does structured pruning pay off on edge runtimes? Latency vs FLOPs, in one run.

Prunes a zoo ResNet with `wootz_keras.pruning.prune_filters(model, rate=...)`,
strips it (`strip_pruning`), exports both the full and the pruned model with
`wootz_keras.export.export` (TFLite fp32 and ONNX, each verified on real
Fashion-MNIST images), then times both at batch 1 on CPU in onnxruntime and
the LiteRT interpreter, alternating full and pruned in several rounds so that
machine noise hits both alike. Prints the FLOPs reduction (full / pruned,
from `wootz_keras.graph.cost.count_flops`) next to each runtime's latency
speedup; the goal is speedup >= 0.8 x FLOPs reduction. Weights need no
training: latency does not depend on their values.

    python benchmarks/export_latency.py                    # ResNet-20 (width 32), 32x32x3, rate 0.5
    python benchmarks/export_latency.py --depth 32 --image_size 64 --threads 2
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 20, "ResNet depth (6n+2).")
flags.DEFINE_integer("width", 32, "Filters in the first stage (16 is the paper's ResNet; "
                     "32 keeps pruned layers wide enough to fill SIMD lanes).")
flags.DEFINE_integer("image_size", 32, "Input height and width.")
flags.DEFINE_integer("channels", 3, "Input channels (Fashion-MNIST is tiled to match).")
flags.DEFINE_float("rate", 0.5, "Filter pruning rate.")
flags.DEFINE_integer("runs", 100, "Timed batch-1 runs per round.")
flags.DEFINE_integer("rounds", 5, "Alternating full/pruned timing rounds (median taken).")
flags.DEFINE_integer("threads", 1, "Threads for onnxruntime and the TFLite interpreter.")
flags.DEFINE_integer("verify_images", 100, "Real images used to verify each export.")
flags.DEFINE_string("out_dir", None, "Keep the exported files here (default: a temp dir).")

GOAL = 0.8


def interleaved_latency_ms(runners, x, runs=100, rounds=5):
    """Median batch-1 latency of each runner, measured in alternating rounds.

    Example:
        >>> class R:
        ...     def latency_fn(self, x1): return lambda: None
        >>> len(interleaved_latency_ms({"a": R(), "b": R()}, [[0.0]], runs=2, rounds=2))
        2
    """
    import numpy as np

    from wootz_keras.export.verify import median_latency_ms

    fns = {name: r.latency_fn(np.asarray(x[:1])) for name, r in runners.items()}
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_latency_ms(fn, runs=runs, warmup=max(3, runs // 10)))
    return {name: float(np.median(s)) for name, s in samples.items()}


def compare(full, pruned, flops_full, flops_pruned, out_dir, runs=100, rounds=5, threads=1,
            verify_images=100):
    """Export both models (verified) and time them in onnxruntime and TFLite.

    Returns {"flops_reduction": r, "<runtime>": {"full_ms", "pruned_ms", "speedup",
    "ratio_to_flops"}} with ratio_to_flops = speedup / flops_reduction.
    """
    from wootz_keras.export import export, real_images_for
    from wootz_keras.export.onnx_export import OnnxRunner
    from wootz_keras.export.tflite import TFLiteRunner

    x = real_images_for(full, count=verify_images)
    files = {}
    for tag, model in (("full", full), ("pruned", pruned)):
        folder = os.path.join(out_dir, tag)
        export(model, folder, formats=("tflite", "onnx"), verify_data=x,
               latency_runs=5, num_threads=threads)
        files[tag] = folder
    reduction = flops_full / flops_pruned
    result = {"flops_reduction": reduction}
    for runtime, make, fname in (("onnxruntime", OnnxRunner, "model.onnx"),
                                 ("tflite", TFLiteRunner, "model.tflite")):
        runners = {tag: make(os.path.join(folder, fname), num_threads=threads)
                   for tag, folder in files.items()}
        ms = interleaved_latency_ms(runners, x, runs=runs, rounds=rounds)
        speedup = ms["full"] / ms["pruned"]
        result[runtime] = {"full_ms": ms["full"], "pruned_ms": ms["pruned"],
                           "speedup": speedup, "ratio_to_flops": speedup / reduction}
    return result


def report(name, full, pruned, flops_full, flops_pruned, result, threads):
    """Print the comparison table."""
    print(f"\n{name}: full vs pruned+stripped, batch 1, CPU, {threads} thread(s)")
    print(f"{'':<8}{'params':>10}{'MFLOPs':>10}{'onnxruntime ms':>16}{'tflite ms':>12}")
    for tag, model, flops in (("full", full, flops_full), ("pruned", pruned, flops_pruned)):
        print(f"{tag:<8}{model.count_params():>10,}{flops / 1e6:>10.2f}"
              f"{result['onnxruntime'][f'{tag}_ms']:>16.3f}{result['tflite'][f'{tag}_ms']:>12.3f}")
    reduction = result["flops_reduction"]
    print(f"FLOPs reduction (full/pruned): {reduction:.2f}x")
    for runtime in ("onnxruntime", "tflite"):
        r = result[runtime]
        verdict = "meets" if r["ratio_to_flops"] >= GOAL else "MISSES"
        print(f"{runtime:<12} latency speedup {r['speedup']:.2f}x = "
              f"{r['ratio_to_flops']:.2f} x FLOPs reduction ({verdict} the {GOAL} goal)")


def main(argv):
    del argv
    import keras

    import wootz_keras.pruning as pruning
    from wootz_keras.zoo import resnet_cifar

    missing = [f"wootz_keras.pruning.{n}" for n in ("prune_filters", "strip_pruning")
               if not hasattr(pruning, n)]
    try:
        from wootz_keras.graph.cost import count_flops
    except ImportError:
        missing.append("wootz_keras.graph.cost.count_flops")
    if missing:
        sys.exit(f"export_latency: needs {', '.join(missing)}, not available in this checkout")

    keras.utils.set_random_seed(0)
    shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    full = resnet_cifar(depth=FLAGS.depth, input_shape=shape, width=FLAGS.width)
    pruned = pruning.strip_pruning(pruning.prune_filters(full, rate=FLAGS.rate))
    flops_full, flops_pruned = count_flops(full), count_flops(pruned)

    with tempfile.TemporaryDirectory(prefix="wz_bench_") as scratch:
        out_dir = FLAGS.out_dir or scratch
        result = compare(full, pruned, flops_full, flops_pruned, out_dir, runs=FLAGS.runs,
                         rounds=FLAGS.rounds, threads=FLAGS.threads,
                         verify_images=FLAGS.verify_images)
    report(f"{full.name} {shape}, rate {FLAGS.rate}", full, pruned, flops_full, flops_pruned,
           result, FLAGS.threads)


if __name__ == "__main__":
    app.run(main)
