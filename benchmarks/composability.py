"""Default pruning vs composability, side by side in one process.

Prints the median accuracy right after assembly (init vs init+), after the
same fine-tuning (final vs final+), candidates tried, wall time of each
exploration (pre-training included for composability), the speedup and the
winners' sizes.

    python benchmarks/composability.py --scale=small --json=/tmp/composability.json
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("scale", "small", ["tiny", "small", "full"], "Preset sizes.")
flags.DEFINE_string("out_dir", None, "Run folder (default runs/bench_<scale>); resumes.")
flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
FLAGS = flags.FLAGS

KEYS = ("speedup", "init_median", "init_plus_median", "final_median", "final_plus_median",
        "default_tried", "composed_tried", "default_seconds", "composed_seconds",
        "pretrain_seconds", "winner_params_ratio", "default_winner_params_ratio",
        "full_accuracy", "num_configs", "num_blocks")


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main(argv):
    del argv
    from wootz_keras.workflow.pipeline import SCALES, run_pipeline
    from wootz_keras.utils.io import write_json
    out_dir = FLAGS.out_dir or os.path.join("runs", f"bench_{FLAGS.scale}")
    figures = run_pipeline(SCALES[FLAGS.scale], out_dir, export_dir=None)
    print(f"\ncomposability benchmark, scale={FLAGS.scale}")
    for key in KEYS:
        print(f"  {key:28s} {_fmt(figures.get(key))}")
    sweep = figures.get("alpha_sweep") or []
    if sweep:
        print("\n  alpha  target   default tried/s      composed tried/s (+pretrain)  speedup  "
              "winner params default/composed")
    for row in sweep:
        print(f"  {row['alpha']:.2f}   {row['target']:.4f}  {row['default_tried']:4d} "
              f"{row['default_seconds']:8.1f}s   {row['composed_tried']:4d} "
              f"{row['composed_seconds']:8.1f}s + {figures['pretrain_seconds']:.0f}s   "
              f"{row['speedup']:6.2f}x   {row['default_winner_params']} / "
              f"{row['composed_winner_params']}")
    print(f"  default:  {figures.get('default_message')}")
    print(f"  composed: {figures.get('composed_message')}")
    if FLAGS.json:
        write_json(FLAGS.json, {**{k: figures.get(k) for k in KEYS},
                                "alpha_sweep": figures.get("alpha_sweep")}, default=str)


if __name__ == "__main__":
    app.run(main)
