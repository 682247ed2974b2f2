"""wootz-run: the end-to-end Wootz pipeline on Fashion-MNIST.

Trains (or loads) a CIFAR-style ResNet teacher, plans tuning blocks over
sampled configurations, pre-trains them teacher-student, explores the
candidates side by side with default pruning, writes a report and exports
the winner to SavedModel / TFLite / ONNX. Resumes a killed run.

    wootz-run --scale=small --out_dir=runs/small
"""

import dataclasses
import json
import os
import sys

if __name__ == "__main__":  # run as a script from a checkout: make wootz_keras importable
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_enum("scale", "small", ["tiny", "small", "full"], "Preset sizes (tiny: seconds, "
                  "small: ~20 min on 2 CPU cores, full: a GPU).")
flags.DEFINE_string("out_dir", None, "Run folder (default runs/<scale>); rerun to resume.")
flags.DEFINE_string("export_dir", None, "Where the winner is exported (default "
                    "exported/wootz_<scale>_winner); empty to skip export.")
flags.DEFINE_string("objective", None, "Objective, e.g. smallest_params:alpha=0.01 or "
                    "most_accurate:max_params=50000 (default: the preset's).")
flags.DEFINE_integer("num_configs", None, "Override: candidate configurations.")
flags.DEFINE_integer("pretrain_steps", None, "Override: block pre-training steps.")
flags.DEFINE_integer("finetune_steps", None, "Override: fine-tuning steps per candidate.")
flags.DEFINE_integer("train_size", None, "Override: training images used.")
flags.DEFINE_integer("teacher_epochs", None, "Override: teacher training epochs.")
flags.DEFINE_bool("compare_default", True, "Also explore with default pruning (for the speedup).")
flags.DEFINE_string("json", None, "Also write the run's figures to this JSON file.")
FLAGS = flags.FLAGS


def settings_from_flags():
    from wootz_keras.workflow.pipeline import SCALES
    overrides = {name: getattr(FLAGS, name) for name in
                 ("objective", "num_configs", "pretrain_steps", "finetune_steps", "train_size",
                  "teacher_epochs") if getattr(FLAGS, name) is not None}
    overrides["compare_default"] = FLAGS.compare_default
    return dataclasses.replace(SCALES[FLAGS.scale], **overrides)


def main(argv):
    del argv
    from wootz_keras.workflow.pipeline import run_pipeline
    from wootz_keras.utils.io import write_json
    out_dir = FLAGS.out_dir or os.path.join("runs", FLAGS.scale)
    export_dir = FLAGS.export_dir
    if export_dir is None:
        export_dir = os.path.join("exported", f"wootz_{FLAGS.scale}_winner")
    try:
        figures = run_pipeline(settings_from_flags(), out_dir, export_dir or None)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in figures.items() if not isinstance(v, (dict, list))}, indent=2,
                     default=str))
    print(f"report: {os.path.join(out_dir, 'report.md')}")
    if FLAGS.json:
        write_json(FLAGS.json, figures, default=str)
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
