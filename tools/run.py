"""wootz-run: the whole Wootz pipeline, end to end, resumable.

Without --model it trains the preset's ResNet teacher on --data; with
--model (a trained .keras or .h5 classifier) it prunes that model. Then it
samples configurations, plans tuning blocks, explores in auto mode (default
pruning first; tuning blocks are pre-trained only when the measurements say
it pays) with default pruning side by side, writes the report and exports
the winner to SavedModel / TFLite / ONNX. Rerun the same command to resume.

    wootz-run --scale=small
    wootz-run --model=teacher.keras --data=images/ --out_dir=runs/mine --export_dir=exported/mine
"""

import os

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("scale", "small", ["tiny", "small", "full"], "Budgets: tiny (a minute, "
                  "tests), small (2 CPU cores), full (a GPU).")
flags.DEFINE_string("model", None, "Your trained classifier (.keras or .h5); default: train "
                    "the preset's ResNet teacher on --data.")
cli.define_data_flags()
flags.DEFINE_string("out_dir", None, "Run folder (default runs/<scale>); rerun to resume.")
flags.DEFINE_string("export_dir", None, "Where the winner is exported (default "
                    "exported/wootz_<scale>_winner); empty to skip the export.")
flags.DEFINE_string("objective", None, "e.g. smallest_params:alpha=0.01 or "
                    "most_accurate:max_params=50000 (default: the preset's).")
flags.DEFINE_enum("mode", None, ["auto", "composed", "default"], "Main exploration mode "
                  "(default: the preset's, auto).")
flags.DEFINE_bool("compare_default", True, "Also explore with default pruning (the speedup).")
flags.DEFINE_integer("num_configs", None, "Override: candidate configurations.")
flags.DEFINE_integer("pretrain_steps", None, "Override: block pre-training steps.")
flags.DEFINE_integer("max_steps", None, "Override: fine-tuning step budget per candidate.")
flags.DEFINE_integer("train_size", None, "Override: training examples used.")
flags.DEFINE_integer("val_size", None, "Override: validation examples carved from training.")
flags.DEFINE_string("journal", None, "Journal of the explorations: an SQLite file (default "
                    "<out_dir>/journal.sqlite) or postgresql://user@host:port/db, shared by "
                    "wootz-run on several machines (docs/multi_machine.md).")
flags.DEFINE_enum("stop_after", None, ["plan"], "Stop once the teacher, configurations and plan "
                  "are written (to pre-train the blocks on several machines).")
flags.DEFINE_string("json", None, "Also write the run's figures to this JSON file.")


def settings_from_flags():
    from wootz_keras.workflow.presets import SCALES
    names = ("objective", "mode", "num_configs", "pretrain_steps", "max_steps", "train_size",
             "val_size")
    changes = {n: getattr(FLAGS, n) for n in names if getattr(FLAGS, n) is not None}
    for n in ("num_configs", "pretrain_steps", "max_steps", "train_size", "val_size"):
        if n in changes and changes[n] < 1:
            raise cli.UsageError(f"--{n} must be >= 1, got {changes[n]}")
    if "objective" in changes:
        cli.parse_objective(changes["objective"])
    return SCALES[FLAGS.scale].replace(compare_default=FLAGS.compare_default, **changes)


def main(argv):
    settings = settings_from_flags()
    spec, image_size = cli.check_data_flags()
    if FLAGS.model:
        cli.check_model_flag(allow_zoo=False)
    out_dir = FLAGS.out_dir or os.path.join("runs", FLAGS.scale)
    export_dir = FLAGS.export_dir
    if export_dir is None:
        export_dir = os.path.join("exported", f"wootz_{FLAGS.scale}_winner")
    if FLAGS.journal:
        from wootz_keras.search import Journal
        from wootz_keras.search.backends import is_url
        if is_url(FLAGS.journal):
            Journal(FLAGS.journal).close()      # an unreachable server fails here, in seconds
    from wootz_keras.utils.io import write_json
    from wootz_keras.workflow.pipeline import prepare_data, run_pipeline
    from wootz_keras.workflow.summary import closing_summary
    model = cli.load_model_flag(allow_zoo=False)[0] if FLAGS.model else None
    data = prepare_data(settings, spec, model=model, image_size=image_size)
    figures = run_pipeline(settings, out_dir, export_dir or None, teacher=model, data=data,
                           loss=FLAGS.loss, metric=FLAGS.metric, journal=FLAGS.journal,
                           stop_after=FLAGS.stop_after)
    if FLAGS.stop_after:
        return
    print(closing_summary(figures, out_dir, export_dir or None))
    if FLAGS.json:
        write_json(FLAGS.json, figures, default=str)


def run():
    """Console-script entry point (wootz-run)."""
    cli.run_tool(main, "wootz-run", __doc__)


if __name__ == "__main__":
    run()
