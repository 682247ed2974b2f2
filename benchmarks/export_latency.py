"""Does structured pruning pay off on edge runtimes? Latency vs FLOPs, in one run.

For each width of a zoo ResNet, prunes it at --rate twice: with plain
rounding (`prune_compact(model, rate=...)`) and with latency-aware rounding
for each runtime (`round_to="auto", runtime=...`: per group, the channel
count the runtime runs fastest, from its measured latency table). Exports
the full and the pruned models with `wootz_keras.export.export` (TFLite fp32
and ONNX, each verified on real Fashion-MNIST images), then times them at
batch 1 on CPU in the LiteRT interpreter and onnxruntime, alternating the
models in several rounds so that machine noise hits all alike. Prints, per
width x runtime x rounding, the FLOPs reduction (full / pruned), the latency
speedup (full / pruned) and the fraction of the FLOPs reduction the speedup
reaches (goal: >= 0.8). Weights need no training: latency does not depend
on their values.

--predict N also checks the latency predictor (`wootz_keras.latency`, the
sum of table entries over the layers) against real exports: N sampled
per-module rate vectors per width (plus uniform 0.3 / 0.5 / 0.7), each with
and without auto rounding, and prints the median and worst relative error
and the rank correlation. --sweep prints one layer's measured latency over
its output-channel count (the staircase the rounding follows).

Run it alone on the machine (`flock -x /tmp/wootz_cpu.lock ...` here); the
latency tables it fills are cached (~/.cache/wootz_keras/latency or
$WOOTZ_CACHE), so later runs only export and time.

    python benchmarks/export_latency.py                           # widths 16 and 32, both runtimes
    python benchmarks/export_latency.py --widths 16 --runtimes tflite --predict 8
    python benchmarks/export_latency.py --sweep --widths 16
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 20, "ResNet depth (6n+2).")
flags.DEFINE_list("widths", ["16", "32"], "Filters in the first stage (16 is the paper's "
                  "ResNet; 32 keeps pruned layers wide enough to fill SIMD lanes).")
flags.DEFINE_integer("image_size", 32, "Input height and width.")
flags.DEFINE_integer("channels", 3, "Input channels (Fashion-MNIST is tiled to match).")
flags.DEFINE_float("rate", 0.5, "Filter pruning rate.")
flags.DEFINE_list("runtimes", ["onnxruntime", "tflite"], "Runtimes to time.")
flags.DEFINE_list("rounding", ["none", "auto"], "Channel rounding: none (the rate's count), "
                  "auto (latency-aware, per runtime) and/or per_channel (the alternative rule: "
                  "lowest latency per kept channel in the same window).")
flags.DEFINE_integer("runs", 100, "Timed batch-1 runs per round.")
flags.DEFINE_integer("rounds", 5, "Alternating timing rounds (median taken).")
flags.DEFINE_integer("threads", 1, "Threads for onnxruntime and the TFLite interpreter.")
flags.DEFINE_integer("verify_images", 100, "Real images used to verify each export.")
flags.DEFINE_integer("predict", 0, "Sampled configurations per width for the prediction "
                     "error study (0: skip it).")
flags.DEFINE_bool("compare", True, "Time full vs pruned models (the main table).")
flags.DEFINE_bool("sweep", False, "Print one 3x3 layer's latency over 1..2w output channels.")
flags.DEFINE_bool("explain", True, "Print each group's requested and chosen channel count.")
flags.DEFINE_string("json", None, "Write every measured figure to this JSON file.")
flags.DEFINE_string("replay", None, "Print the tables of a --json file of an earlier run "
                    "(no measuring).")
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


def per_channel_policy(runtime, threads=1):
    """The alternative rule, for comparison: in the same window, the count with
    the lowest latency per kept channel (not the default: it keeps channels
    that cost latency)."""
    from wootz_keras.latency import ChannelPolicy, latency_table

    class PerChannel(ChannelPolicy):
        def choose(self, costs):
            return min(costs, key=lambda c: (costs[c] / c, -c))
    return PerChannel(latency_table(runtime, threads))


RUNNERS = {"onnxruntime": ("onnx", "model.onnx"), "tflite": ("tflite", "model.tflite")}


def _runner(runtime, path, threads):
    from wootz_keras.export.onnx_export import OnnxRunner
    from wootz_keras.export.tflite import TFLiteRunner
    return (OnnxRunner if runtime == "onnxruntime" else TFLiteRunner)(path, num_threads=threads)


def variants(full, rate, runtimes, rounding, threads=1):
    """{name: (model, runtimes it is timed in)}: the full model, the plainly
    pruned one (every runtime) and one auto-rounded model per runtime."""
    from wootz_keras.graph import ChannelAnalysis
    from wootz_keras.latency import channel_policy
    from wootz_keras.pruning import prune_compact

    analysis = ChannelAnalysis(full)
    out = {"full": (full, list(runtimes))}
    if "none" in rounding:
        out["none"] = (prune_compact(analysis, rate=rate), list(runtimes))
    if "auto" in rounding:
        for rt in runtimes:
            policy = channel_policy(rt, threads)
            out[f"auto-{rt}"] = (prune_compact(analysis, rate=rate, round_to=policy), [rt])
    if "per_channel" in rounding:
        for rt in runtimes:
            policy = per_channel_policy(rt, threads)
            out[f"per_channel-{rt}"] = (prune_compact(analysis, rate=rate, round_to=policy), [rt])
    return out


def time_variants(models, x, out_dir, runs=100, rounds=5, threads=1):
    """Export every model (verified on `x`) to the formats of its runtimes and
    time each runtime's models in alternating rounds: {runtime: {name: ms}}."""
    from wootz_keras.export import export

    folders = {}
    for name, (model, rts) in models.items():
        folder = os.path.join(out_dir, name)
        export(model, folder, formats=tuple(RUNNERS[rt][0] for rt in rts), verify_data=x,
               latency_runs=5, num_threads=threads)
        folders[name] = folder
    out = {}
    for rt in sorted({rt for _, rts in models.values() for rt in rts}):
        runners = {name: _runner(rt, os.path.join(folders[name], RUNNERS[rt][1]), threads)
                   for name, (_, rts) in models.items() if rt in rts}
        out[rt] = interleaved_latency_ms(runners, x, runs=runs, rounds=rounds)
    return out


def rows_for(width, models, ms):
    """One row per runtime x rounding: sizes, latency and the ratios to the full model."""
    from wootz_keras.graph.cost import count_flops
    full = models["full"][0]
    flops_full = count_flops(full)
    rows = []
    for rt, by_name in ms.items():
        for name, value in by_name.items():
            if name == "full":
                continue
            model = models[name][0]
            flops = count_flops(model)
            reduction = flops_full / flops
            speedup = by_name["full"] / value
            rows.append({"width": width, "runtime": rt, "rounding": name.rsplit("-", 1)[0],
                         "params": model.count_params(), "mflops": flops / 1e6,
                         "full_params": full.count_params(), "full_mflops": flops_full / 1e6,
                         "full_ms": by_name["full"], "ms": value, "flops_reduction": reduction,
                         "speedup": speedup, "fraction": speedup / reduction})
    return rows


def print_rows(rows, threads):
    print(f"\nbatch 1, CPU, {threads} thread(s); ratios are full / pruned; "
          f"fraction = latency speedup / FLOPs reduction (goal >= {GOAL})")
    print(f"| width | runtime | rounding | params | MFLOPs | full ms | pruned ms | "
          f"FLOPs ratio | latency ratio | fraction |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    order = {"none": 0, "auto": 1, "per_channel": 2}
    for r in sorted(rows, key=lambda r: (r["width"], r["runtime"], order[r["rounding"]])):
        print(f"| {r['width']} | {r['runtime']} | {r['rounding']} | {r['params']:,} | "
              f"{r['mflops']:.2f} | {r['full_ms']:.3f} | {r['ms']:.3f} | "
              f"{r['flops_reduction']:.2f}x | {r['speedup']:.2f}x | {r['fraction']:.2f} |")


def print_explain(width, full, rate, runtimes, threads):
    from wootz_keras.graph import ChannelAnalysis
    from wootz_keras.latency import channel_policy
    analysis = ChannelAnalysis(full)
    rates = {g.id: rate for g in analysis.groups if g.prunable}
    for rt in runtimes:
        rows = channel_policy(rt, threads).explain(analysis, rates)
        text = ", ".join(f"{r['producers'][0]} {r['size']}: {r['requested']}->{r['kept']}"
                         for r in rows)
        print(f"width {width}, {rt} auto rounding at rate {rate}: {text}")


def prediction_study(width, full, runtimes, n, threads, runs, rounds, seed=1):
    """Predicted vs exported latency of sampled pruned variants: one row each.
    All variants of a runtime are exported first, then timed in interleaved
    rounds (machine noise hits all alike)."""
    import numpy as np

    from wootz_keras.graph.cost import count_flops
    from wootz_keras.latency import latency_predictor
    from wootz_keras.latency.measure import model_runner, time_many
    from wootz_keras.planner import ConfigSpace, find_modules
    from wootz_keras.planner.config_space import module_group_rates
    from wootz_keras.pruning import prune_compact

    modules = find_modules(full)
    space = ConfigSpace(modules, rates=(0.3, 0.5, 0.7))
    configs = [(r,) * len(modules) for r in (0.3, 0.5, 0.7)]
    configs += [c.rates for c in space.sample(n, seed=seed) if c.rates not in configs]
    x1 = np.random.default_rng(0).standard_normal((1, *full.inputs[0].shape[1:])).astype("float32")
    rows = []
    for rt in runtimes:
        predictor = latency_predictor(rt, threads)
        found, fns = [], []
        with tempfile.TemporaryDirectory(prefix="wz_predict_") as folder:
            for i, rates in enumerate(configs):
                group_rates = module_group_rates(modules, rates)
                for rounding in ("none", "auto"):
                    round_to = predictor.policy if rounding == "auto" else 1
                    net = prune_compact(modules.analysis, group_rates=group_rates,
                                        round_to=round_to)
                    predicted = predictor.predict(modules.analysis, group_rates=group_rates,
                                                  round_to=round_to)
                    sub = os.path.join(folder, f"{i}_{rounding}")
                    os.makedirs(sub)
                    fns.append(model_runner(net, rt, threads, sub).latency_fn(x1))
                    found.append({"width": width, "runtime": rt, "config": i,
                                  "rates": list(rates), "rounding": rounding,
                                  "mflops": count_flops(net) / 1e6, "predicted_ms": predicted})
            measured = time_many(fns, runs=runs, warmup=10, rounds=rounds)
        for row, ms in zip(found, measured):
            rows.append(dict(row, measured_ms=ms, error=row["predicted_ms"] / ms - 1))
    return rows


def print_prediction(rows):
    import numpy as np
    from scipy.stats import spearmanr
    print("\nprediction (sum of table entries) vs exported latency, relative error "
          "= predicted / measured - 1")
    print("| width | runtime | variants | median abs error | worst abs error | mean error | "
          "Spearman rank corr. |")
    print("|---|---|---|---|---|---|---|")
    groups = {}
    for r in rows:
        groups.setdefault((r["width"], r["runtime"]), []).append(r)
    for rt in sorted({r["runtime"] for r in rows}):
        groups.setdefault(("all", rt), []).extend(r for r in rows if r["runtime"] == rt)
    for (width, rt), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        err = np.array([r["error"] for r in rs])
        rho = spearmanr([r["predicted_ms"] for r in rs], [r["measured_ms"] for r in rs])[0]
        print(f"| {width} | {rt} | {len(rs)} | {np.median(np.abs(err)):.1%} | "
              f"{np.max(np.abs(err)):.1%} | {np.mean(err):+.1%} | {rho:.3f} |")


def print_rounding_effect(rows):
    """Per width x runtime, over the prediction study's configurations: what
    latency-aware rounding did to the measured latency and the FLOPs."""
    import numpy as np
    pairs = {}
    for r in rows:
        pairs.setdefault((r["width"], r["runtime"], r["config"]), {})[r["rounding"]] = r
    print("\nlatency-aware rounding on the same configurations (exported, measured): "
          "ratios none / auto (> 1: auto is faster / has fewer FLOPs)")
    print("| width | runtime | configs | changed | median latency ratio | range | "
          "median FLOPs ratio |")
    print("|---|---|---|---|---|---|---|")
    groups = {}
    for (width, rt, _), p in pairs.items():
        if "none" in p and "auto" in p:
            groups.setdefault((width, rt), []).append(p)
    for (width, rt), ps in sorted(groups.items()):
        lat = np.array([p["none"]["measured_ms"] / p["auto"]["measured_ms"] for p in ps])
        flops = np.array([p["none"]["mflops"] / p["auto"]["mflops"] for p in ps])
        changed = sum(abs(f - 1) > 1e-9 for f in flops)
        print(f"| {width} | {rt} | {len(ps)} | {changed} | {np.median(lat):.3f}x | "
              f"{lat.min():.3f}-{lat.max():.3f}x | {np.median(flops):.3f}x |")


def print_results(results, depth, shape, rate, threads):
    print(f"\nResNet-{depth} {shape}, rate {rate}")
    if results["rows"]:
        print_rows(results["rows"], threads)
    if results["prediction"]:
        print_prediction(results["prediction"])
        print_rounding_effect(results["prediction"])


def print_sweep(width, runtimes, threads, image_size):
    from wootz_keras.latency import LayerShape, latency_table
    shape = LayerShape("conv", (3, 3), (1, 1), (1, 1), "same", (image_size, image_size))
    counts = list(range(1, 2 * width + 1))
    for rt in runtimes:
        table = latency_table(rt, threads)
        out_ms = table.lookup([(shape, width, c) for c in counts])
        in_ms = table.lookup([(shape, c, width) for c in counts])
        print(f"\n{rt}: 3x3 conv at {image_size}x{image_size}, microseconds")
        print("| channels | " + " | ".join(map(str, counts)) + " |")
        print("|---|" + "---|" * len(counts))
        print(f"| out ({width} in) | " + " | ".join(f"{1e3 * v:.0f}" for v in out_ms) + " |")
        print(f"| in ({width} out) | " + " | ".join(f"{1e3 * v:.0f}" for v in in_ms) + " |")


def main(argv):
    del argv
    if FLAGS.replay:
        from wootz_keras.utils.io import read_json
        results = read_json(FLAGS.replay, what="--replay")
        st = results["settings"]
        print_results(results, st["depth"], (st["image_size"],) * 2 + (st["channels"],),
                      st["rate"], st["threads"])
        return
    import keras

    from wootz_keras.export import real_images_for
    from wootz_keras.latency import check_runtime
    from wootz_keras.zoo import resnet_cifar

    runtimes = [check_runtime(r) for r in FLAGS.runtimes]
    rounding = [r.strip().lower() for r in FLAGS.rounding]
    if not set(rounding) <= {"none", "auto", "per_channel"} or not rounding:
        sys.exit(f"export_latency: --rounding takes none, auto, per_channel; got {FLAGS.rounding}")
    shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    results = {"settings": {k: FLAGS[k].value for k in (
        "depth", "widths", "image_size", "channels", "rate", "runtimes", "rounding", "runs",
        "rounds", "threads", "predict")}, "rows": [], "prediction": []}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="wz_bench_") as scratch:
        out_dir = FLAGS.out_dir or scratch
        for width in (int(w) for w in FLAGS.widths):
            keras.utils.set_random_seed(0)
            full = resnet_cifar(depth=FLAGS.depth, input_shape=shape, width=width)
            if FLAGS.sweep:
                print_sweep(width, runtimes, FLAGS.threads, FLAGS.image_size)
            if FLAGS.compare:
                models = variants(full, FLAGS.rate, runtimes, rounding, FLAGS.threads)
                if FLAGS.explain and "auto" in rounding:
                    print_explain(width, full, FLAGS.rate, runtimes, FLAGS.threads)
                x = real_images_for(full, count=FLAGS.verify_images)
                ms = time_variants(models, x, os.path.join(out_dir, f"w{width}"), FLAGS.runs,
                                   FLAGS.rounds, FLAGS.threads)
                results["rows"].extend(rows_for(width, models, ms))
            if FLAGS.predict:
                results["prediction"].extend(prediction_study(
                    width, full, runtimes, FLAGS.predict, FLAGS.threads,
                    runs=max(10, FLAGS.runs // 2), rounds=FLAGS.rounds))
    print_results(results, FLAGS.depth, shape, FLAGS.rate, FLAGS.threads)
    print(f"\n({time.time() - started:.0f} s)")
    if FLAGS.json:
        from wootz_keras.utils.io import write_json
        write_json(FLAGS.json, results)
        print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
