"""Multiplexed block pre-training vs one run per block (docs/method.md step 4).

The same K tuning blocks of a CIFAR-style ResNet are pre-trained
teacher-student on the same real Fashion-MNIST batches, for the same number
of steps each, in two ways:

  (a) multiplexed: ONE `pretrain_blocks` call on a plan with K blocks in one
      group -- one frozen-teacher forward pass per batch feeds all K students;
  (b) separate: K `pretrain_blocks` calls, each on a one-block plan -- the
      teacher runs once per batch per block.

Timing, stated fairly:
  * Before anything is timed, one untimed 1-step run of a 1-block plan warms
    the process (TensorFlow runtime, oneDNN kernels, tf.data). Neither mode
    pays that process-level start-up.
  * The headline ("total") is the time of the `pretrain_blocks` call(s)
    themselves, so graph building (cloning the teacher, building the
    students, tracing the training step) IS included in both -- once in (a),
    K times in (b), as a user pays it.
  * "steady state" excludes graph building from both: each mode is also run
    with 2 x --steps, and (t(2S) - t(S)) / S is the marginal time per step.
  * Both wall time and process CPU time (all threads) are reported, each the
    best of --repeats runs with the two modes interleaved: on a shared,
    loaded machine wall time is noisy, CPU time measures the work done.

Both modes train each block on the same batches from the same initial
weights, and the blocks do not share variables, so the final per-block
losses agree closely; their largest relative difference is printed as a
check that both did the same work.

    python benchmarks/multiplexing.py                      # K=8, ResNet-20, 30 steps
    python benchmarks/multiplexing.py --depth=8 --width=8 --steps=10 --repeats=1   # smoke
    python benchmarks/multiplexing.py --blocks=16 --steps=200 --json=mux.json
"""

import json
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_integer("blocks", 8, "Number of tuning blocks K (>= 2; the goal is stated for 8).")
flags.DEFINE_integer("steps", 30, "Pre-training steps, the same for every block in both modes.")
flags.DEFINE_integer("batch_size", 64, "Batch size (real Fashion-MNIST training images).")
flags.DEFINE_integer("depth", 20, "ResNet depth (6n+2): 8 -> 3 modules, 20 -> 9 modules.")
flags.DEFINE_integer("width", 16, "ResNet base width (filters of the first stage).")
flags.DEFINE_integer("max_len", 2, "Longest block, in modules.")
flags.DEFINE_list("rates", ["0.3", "0.5", "0.7"], "Rates a block's modules may take.")
flags.DEFINE_integer("images", 2048, "Fashion-MNIST training images to draw batches from.")
flags.DEFINE_integer("seed", 0, "Seed of the block choice, the teacher and the batches.")
flags.DEFINE_boolean("steady", True, "Also run 2 x --steps to measure steady-state "
                     "seconds per step (excludes graph building).")
flags.DEFINE_integer("repeats", 2, "Timed runs per mode and step count; the best is "
                     "reported (this machine may be shared).")
flags.DEFINE_integer("threads", 0, "TensorFlow intra/inter-op threads (0 = TensorFlow's "
                     "default); 1 steadies CPU timings on a shared machine.")
flags.DEFINE_string("json", None, "Write the measurements to this JSON file.")


def choose_blocks(num_modules, k, rates, max_len, seed):
    """K distinct (start, rates) blocks, seeded, spread over lengths 1..max_len."""
    pool = []
    for length in range(1, max_len + 1):
        for start in range(num_modules - length + 1):
            combos = [()]
            for _ in range(length):
                combos = [c + (r,) for c in combos for r in rates]
            pool += [(start, c) for c in combos]
    if k > len(pool):
        raise ValueError(f"only {len(pool)} distinct blocks of at most {max_len} modules exist "
                         f"for {num_modules} modules and rates {rates}; lower --blocks or raise "
                         "--depth / --max_len")
    random.Random(seed).shuffle(pool)
    return sorted(pool[:k], key=lambda b: (b[0], len(b[1]), b[1]))


def make_plan(specs, module_names):
    """A Plan holding `specs` as its blocks, all in one training group."""
    from wootz_keras.planner.tuning_blocks import Block, Plan
    blocks = [Block(i, start, tuple(rates), 2) for i, (start, rates) in enumerate(specs)]
    configs = []
    for start, rates in specs:
        config = [0.0] * len(module_names)
        config[start:start + len(rates)] = rates
        configs.append(config)
    return Plan(configs, blocks, [[i] for i in range(len(blocks))],
                [list(range(len(blocks)))], module_names=module_names)


def run_mode(teacher, modules, specs, make_dataset, steps, separate):
    """(wall s, process CPU s, {block name: final loss}) of pre-training `specs`.

    Every `pretrain_blocks` call gets a fresh, identically seeded dataset, so
    every block sees the same batches in both modes."""
    from wootz_keras.compose import pretrain_blocks
    plans = ([make_plan([s], modules.names) for s in specs] if separate
             else [make_plan(specs, modules.names)])
    losses = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for plan in plans:
        result = pretrain_blocks(teacher, plan, make_dataset(), steps=steps, modules=modules,
                                 verbose=0)
        losses.update({b.name: result.final_loss(b) for b in result})
    return time.perf_counter() - wall, time.process_time() - cpu, losses


def main(argv):
    del argv
    import keras
    import numpy as np
    from wootz_keras import data, zoo
    from wootz_keras.planner import find_modules

    if FLAGS.blocks < 2 or FLAGS.steps < 1 or FLAGS.repeats < 1:
        raise app.UsageError("--blocks must be >= 2, --steps and --repeats >= 1")
    if FLAGS.threads:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    keras.utils.set_random_seed(FLAGS.seed)
    teacher = zoo.resnet_cifar(depth=FLAGS.depth, width=FLAGS.width)
    modules = find_modules(teacher)
    try:
        specs = choose_blocks(len(modules), FLAGS.blocks, tuple(float(r) for r in FLAGS.rates),
                              FLAGS.max_len, FLAGS.seed)
    except ValueError as e:
        raise app.UsageError(str(e))
    x, y = data.load_fashion_mnist("train", limit=FLAGS.images, seed=FLAGS.seed)

    def dataset():
        return data.as_dataset(x, y, FLAGS.batch_size, seed=FLAGS.seed)

    names = [f"m{s}-{s + len(r) - 1}@" + ",".join(f"{v:g}" for v in r) for s, r in specs]
    print(f"teacher resnet{FLAGS.depth} width {FLAGS.width} ({teacher.count_params():,} params, "
          f"{len(modules)} modules); {len(specs)} blocks: {' '.join(names)}")
    print(f"{FLAGS.steps} steps per block, batch {FLAGS.batch_size}, {len(x)} real "
          f"Fashion-MNIST images; keras {keras.__version__}, backend {keras.backend.backend()}; "
          f"best of {FLAGS.repeats}, modes interleaved")

    run_mode(teacher, modules, specs[:1], dataset, 1, separate=False)   # untimed warm-up

    modes = (("multiplexed", False), ("separate", True))
    counts = [FLAGS.steps] + ([2 * FLAGS.steps] if FLAGS.steady else [])
    best = {(m, n): [float("inf"), float("inf")] for m, _ in modes for n in counts}
    losses = {}
    for _ in range(FLAGS.repeats):
        for n in counts:
            for mode, separate in modes:
                wall, cpu, losses[mode] = run_mode(teacher, modules, specs, dataset, n, separate)
                b = best[(mode, n)]
                b[0], b[1] = min(b[0], wall), min(b[1], cpu)
                print(f"  {mode:>11} {n:4d} steps: {wall:7.2f} s wall, {cpu:7.2f} s CPU",
                      flush=True)

    out = {"blocks": names, "steps": FLAGS.steps, "batch_size": FLAGS.batch_size,
           "depth": FLAGS.depth, "width": FLAGS.width, "images": len(x),
           "teacher_params": teacher.count_params(), "modules": len(modules),
           "repeats": FLAGS.repeats, "threads": FLAGS.threads,
           "backend": keras.backend.backend()}
    print(f"{'':>11} {'wall_s':>8} {'cpu_s':>8}   (best of {FLAGS.repeats}, {FLAGS.steps} steps, "
          "graph building included)")
    for mode, _ in modes:
        wall, cpu = best[(mode, FLAGS.steps)]
        out[f"{mode}_wall_s"], out[f"{mode}_cpu_s"] = wall, cpu
        print(f"{mode:>11} {wall:8.2f} {cpu:8.2f}")
    for kind in ("wall", "cpu"):
        out[f"total_ratio_{kind}"] = out[f"separate_{kind}_s"] / out[f"multiplexed_{kind}_s"]
    line = (f"speedup of multiplexing, {len(specs)} blocks: {out['total_ratio_wall']:.2f}x wall, "
            f"{out['total_ratio_cpu']:.2f}x CPU (graph building included in both)")
    if FLAGS.steady:
        for mode, _ in modes:
            for k, kind in enumerate(("wall", "cpu")):
                out[f"{mode}_{kind}_s_per_step"] = (
                    best[(mode, 2 * FLAGS.steps)][k] - best[(mode, FLAGS.steps)][k]) / FLAGS.steps
            print(f"{mode:>11}: {1e3 * out[f'{mode}_wall_s_per_step']:.1f} ms wall, "
                  f"{1e3 * out[f'{mode}_cpu_s_per_step']:.1f} ms CPU per step of all "
                  f"{len(specs)} blocks (steady state: t({2 * FLAGS.steps}) - t({FLAGS.steps}))")
        for kind in ("wall", "cpu"):
            mux, sep = (out[f"{m}_{kind}_s_per_step"] for m, _ in modes)
            out[f"steady_ratio_{kind}"] = sep / mux if mux > 0 and sep > 0 else None
        fmt = lambda r: "n/a (too noisy)" if r is None else f"{r:.2f}x"  # noqa: E731
        line += (f"; steady state {fmt(out['steady_ratio_wall'])} wall, "
                 f"{fmt(out['steady_ratio_cpu'])} CPU")
    diffs = [abs(losses["multiplexed"][n] - losses["separate"][n]) /
             max(abs(losses["separate"][n]), 1e-12) for n in names]
    out["final_losses"] = {n: [losses["multiplexed"][n], losses["separate"][n]] for n in names}
    out["max_loss_rel_diff"] = float(np.max(diffs))
    print(f"final block losses agree between modes to {out['max_loss_rel_diff']:.2e} (relative)")
    print(line + " (goal >= 3x)")
    if FLAGS.json:
        tmp = FLAGS.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2)
        os.replace(tmp, FLAGS.json)


if __name__ == "__main__":
    app.run(main)
