"""Pre-train a plan's tuning blocks teacher-student (Wootz step 4).

Each block is the teacher's modules pruned at the block's rates; it learns
to reproduce the teacher's activation leaving its last module from the
activation entering its first (MSE), on real Fashion-MNIST training images.
One teacher forward pass feeds every block of a group (multiplexing). Runs
under a tf.distribute strategy: default (one device), mirrored (all local
GPUs) or multiworker (the cluster in TF_CONFIG; only the chief writes
--out_dir and --log_dir). Prints each block's final loss and the time.

Examples:
    python tools/pretrain.py --teacher=resnet20.keras --plan=plan.json --steps=500
    TF_CONFIG='{"cluster": {"worker": ["localhost:12345", "localhost:12346"]},
                "task": {"type": "worker", "index": 0}}' \\
        python tools/pretrain.py --teacher=t.keras --plan=plan.json --strategy=multiworker

Exits non-zero with a one-line reason on stderr on bad input.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __name__ == "__main__":  # run as a script from a checkout: make wootz_keras importable
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

if __package__:
    from . import _common as common  # noqa: E402
else:  # run as a script: tools/ is sys.path[0]
    import _common as common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "The trained full model (.keras file).")
flags.DEFINE_string("plan", None, "Plan JSON written by wootz-plan for this teacher.")
flags.DEFINE_integer("steps", 200, "Training steps per group of blocks.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (split across replicas).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of the blocks.")
flags.DEFINE_integer("train_size", 6000, "Fashion-MNIST training images to draw batches from.")
flags.DEFINE_integer("seed", 0, "Seed of the image subset and the shuffling.")
flags.DEFINE_string("out_dir", "blocks", "Folder for the pre-trained blocks (replaced as a "
                    "whole, atomically; an existing folder must hold wootz blocks).")
# absl.logging defines --log_dir (for log files, which these tools never write): take it over.
flags.DEFINE_string("log_dir", None, "Optional TensorBoard folder for the block losses.",
                    allow_override=True)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multiworker"],
                  "tf.distribute strategy; multiworker reads the cluster from TF_CONFIG.")
flags.DEFINE_string("modules_json", None, "The explicit modules given to wootz-plan, if any "
                    "(a JSON list of lists of layer names, inline or a file).")


def _check_flags():
    teacher = common.check_file("teacher", "teacher model")
    plan = common.check_file("plan", "plan")
    common.check_at_least("steps", 1)
    common.check_at_least("batch_size", 1)
    common.check_at_least("train_size", 1)
    common.check_positive_float("learning_rate")
    out_dir = common.require("out_dir")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise common.UsageError(f"--out_dir: {out_dir!r} exists and is not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and \
            not os.path.exists(os.path.join(out_dir, "blocks.json")):
        raise common.UsageError(f"--out_dir: {out_dir!r} holds other files (no blocks.json); "
                                "choose a new or a blocks folder")
    common.read_modules_json(FLAGS.modules_json)
    return teacher, plan, out_dir


def main(argv):
    teacher_path, plan_path, out_dir = _check_flags()
    chief = common.is_chief()
    common.quiet_tensorflow()
    # MultiWorkerMirroredStrategy must exist before any other TensorFlow work.
    strategy = common.make_strategy(FLAGS.strategy)
    import keras
    from wootz_keras.compose import pretrain_blocks
    from wootz_keras.compose.blocks import check_plan_matches
    from wootz_keras.planner import Plan
    from wootz_keras.utils.io import atomic_path

    plan = Plan.from_json(plan_path)
    keras.utils.set_random_seed(FLAGS.seed)
    teacher, _ = common.load_model(teacher_path, "teacher", allow_zoo=False)
    modules = common.find_model_modules(teacher, FLAGS.modules_json)
    try:
        check_plan_matches(modules, plan)
    except ValueError as e:
        raise ValueError(f"--plan {plan_path}: " +
                         common.explain_module_mismatch(e, plan.module_names, FLAGS.modules_json)
                         ) from None
    if not plan.blocks:
        raise ValueError(f"--plan {plan_path} holds no tuning blocks: nothing to pre-train "
                         "(run wootz-explore without --blocks for default pruning)")

    x, y = common.fashion_mnist_for(teacher, "train", FLAGS.train_size, FLAGS.seed,
                                    check_classes=False)
    print(f"pre-training {len(plan.blocks)} block(s) of {teacher.name} in {len(plan.groups)} "
          f"group(s): {FLAGS.steps} steps each, batch {FLAGS.batch_size}, "
          f"{strategy.num_replicas_in_sync} replica(s) ({FLAGS.strategy})", flush=True)
    blocks = pretrain_blocks(teacher, plan, (x, y), steps=FLAGS.steps, strategy=strategy,
                             learning_rate=FLAGS.learning_rate, modules=modules,
                             log_dir=FLAGS.log_dir if chief else None,
                             verbose=common.progress_verbose(), batch_size=FLAGS.batch_size,
                             seed=FLAGS.seed)

    names = modules.names
    print(common.table(
        ["block", "modules", "final MSE"],
        [[b.name, ", ".join(names[b.start:b.stop]), f"{b.final_loss:.5f}"] for b in blocks],
        align="llr"))
    print(f"time: {blocks.seconds:.1f} s for {len(blocks)} block(s) "
          f"({blocks.seconds / max(len(plan.groups), 1):.1f} s per group)")
    if not chief:
        print("not the chief worker: blocks not saved (the chief saves them)")
        return
    with atomic_path(out_dir) as tmp:
        blocks.save(tmp)
    print(f"blocks: {out_dir}")
    if FLAGS.log_dir:
        print(f"TensorBoard: {FLAGS.log_dir}")


def run():
    """Console-script entry point (wootz-pretrain)."""
    common.run_tool(main, "wootz-pretrain", __doc__)


if __name__ == "__main__":
    run()
