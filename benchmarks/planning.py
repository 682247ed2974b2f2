"""Planning time of `plan_tuning_blocks` as the number of configs grows.

Random configs (seeded) over --modules modules with rates drawn from
--rates; prints one row per size, then the time ratios between consecutive
sizes (10x more configs should cost about 10x the time).

    python benchmarks/planning.py --sizes=1000,10000,100000
"""

import os
import random
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from wootz_keras.planner.tuning_blocks import plan_tuning_blocks  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000", "10000", "100000"], "Numbers of configs to plan.")
flags.DEFINE_integer("modules", 16, "Modules per config.")
flags.DEFINE_list("rates", ["0.3", "0.5", "0.7"], "Rates a module may take.")
flags.DEFINE_integer("seed", 0, "Random seed for the configs.")
flags.DEFINE_integer("repeats", 3, "Timed runs per size; the best is reported.")


def random_configs(n, modules, rates, seed):
    """`n` seeded random configs, each one rate per module."""
    rng = random.Random(seed)
    return [[rng.choice(rates) for _ in range(modules)] for _ in range(n)]


def time_plan(configs, repeats):
    """Best wall and CPU seconds of `repeats` plans of `configs`, last plan."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = plan_tuning_blocks(configs)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, plan


def main(argv):
    del argv
    sizes = [int(s) for s in FLAGS.sizes]
    rates = [float(r) for r in FLAGS.rates]
    print(f"{'configs':>8} {'modules':>7} {'wall_s':>7} {'cpu_s':>7} {'us/config':>9} "
          f"{'blocks':>6} {'coverage':>8} {'blocks/cfg':>10} {'reuse':>8}")
    times = []
    for n in sizes:
        configs = random_configs(n, FLAGS.modules, rates, FLAGS.seed)
        wall, cpu, plan = time_plan(configs, FLAGS.repeats)
        times.append((wall, cpu))
        cov = plan.coverage
        print(f"{n:>8} {FLAGS.modules:>7} {wall:>7.3f} {cpu:>7.3f} {1e6 * wall / n:>9.1f} "
              f"{len(plan.blocks):>6} {cov.fraction:>8.3f} {cov.blocks_per_config:>10.2f} "
              f"{cov.expected_reuse:>8.1f}")
    for (n0, t0), (n1, t1) in zip(zip(sizes, times), zip(sizes[1:], times[1:])):
        print(f"time ratio {n1}/{n0} configs ({n1 / n0:g}x): "
              f"wall {t1[0] / t0[0]:.2f}, cpu {t1[1] / t0[1]:.2f}")


if __name__ == "__main__":
    app.run(main)
