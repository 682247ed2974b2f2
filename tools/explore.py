"""Explore pruned candidates of a teacher under an objective (Wootz steps 5-7).

Takes the configurations written by wootz-plan, assembles each candidate
(from pre-trained --blocks: "composed" mode; without them default L1
pruning: "default" mode), fine-tunes it on real Fashion-MNIST training
images, measures it on held-out test images, and stops at the first
candidate, in the objective's order, that meets the objective. Every
finished candidate goes to the SQLite --journal, so a killed run resumes
where it stopped, and workers (TF_CONFIG or --worker_index/--num_workers)
share it. Prints the winner, or says that no candidate met the objective
(still exit status 0: the exploration itself completed).

Objectives: smallest_params[:alpha=A], smallest_flops[:alpha=A] (the
smallest candidate within accuracy full x (1 - A)), most_accurate:max_params=N
or max_flops=N, or the JSON of an objective dict.

Examples:
    python tools/explore.py --teacher=resnet20.keras --configs=plan.configs.json \\
        --blocks=blocks --objective=smallest_params:alpha=0.01 --report_dir=report
    python tools/explore.py --teacher=resnet20.keras --configs=plan.configs.json \\
        --journal=default.sqlite --finetune_steps=300

Exits non-zero with a one-line reason on stderr on bad input or a failure.
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
flags.DEFINE_string("configs", None, "Configurations JSON written by wootz-plan "
                    "(<plan stem>.configs.json) for this teacher.")
flags.DEFINE_string("blocks", None, "Folder of blocks from wootz-pretrain (composed mode); "
                    "without it candidates start from default L1 pruning.")
flags.DEFINE_string("objective", "smallest_params:alpha=0.01",
                    "smallest_params|smallest_flops[:alpha=A] or "
                    "most_accurate:max_params=N|max_flops=N, or a JSON objective.")
flags.DEFINE_string("journal", "explore.sqlite", "SQLite journal of finished candidates "
                    "(resumes a killed run; shared by workers).")
flags.DEFINE_integer("finetune_steps", 100, "Fine-tuning steps (batches) per candidate.")
flags.DEFINE_integer("batch_size", 64, "Fine-tuning batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Fine-tuning Adam learning rate.")
flags.DEFINE_integer("train_size", 6000, "Fashion-MNIST training images for fine-tuning.")
flags.DEFINE_integer("val_size", 2000, "Fashion-MNIST test images that measure accuracy.")
flags.DEFINE_integer("seed", 0, "Seed of the data subsets and the fine-tuning.")
flags.DEFINE_string("report_dir", None, "Optional folder for the report: results.json/.csv, "
                    "report.md and PNG plots.")
flags.DEFINE_string("modules_json", None, "The explicit modules given to wootz-plan, if any "
                    "(a JSON list of lists of layer names, inline or a file).")
flags.DEFINE_integer("worker_index", None, "This worker's index (default: from TF_CONFIG, "
                     "else 0).")
flags.DEFINE_integer("num_workers", None, "Number of workers sharing --journal (default: from "
                     "TF_CONFIG, else 1).")


def _check_flags():
    teacher = common.check_file("teacher", "teacher model")
    configs = common.check_file("configs", "configuration file")
    if FLAGS.blocks is not None and not os.path.isdir(FLAGS.blocks):
        raise common.UsageError(f"--blocks: folder not found: {FLAGS.blocks}")
    from wootz_keras.search import parse_objective
    try:
        objective = parse_objective(FLAGS.objective)
    except ValueError as e:
        raise common.UsageError(f"--objective: {e}") from None
    common.check_at_least("finetune_steps", 0)
    common.check_at_least("batch_size", 1)
    common.check_at_least("train_size", 1)
    common.check_at_least("val_size", 1)
    common.check_positive_float("learning_rate")
    journal = common.require("journal")
    if os.path.isdir(journal):
        raise common.UsageError(f"--journal: {journal!r} is a folder; give a file path")
    if (FLAGS.worker_index is None) != (FLAGS.num_workers is None):
        raise common.UsageError("--worker_index and --num_workers go together")
    if FLAGS.num_workers is not None:
        common.check_at_least("num_workers", 1)
        if not 0 <= FLAGS.worker_index < FLAGS.num_workers:
            raise common.UsageError(f"--worker_index must be in [0, {FLAGS.num_workers}), got "
                                    f"{FLAGS.worker_index}")
    if FLAGS.report_dir is not None and os.path.exists(FLAGS.report_dir) and \
            not os.path.isdir(FLAGS.report_dir):
        raise common.UsageError(f"--report_dir: {FLAGS.report_dir!r} is not a folder")
    common.read_modules_json(FLAGS.modules_json)
    return teacher, configs, objective, journal


def main(argv):
    teacher_path, configs_path, objective, journal = _check_flags()
    common.quiet_tensorflow()
    import keras
    import wootz_keras as wz
    from wootz_keras.compose import PretrainedBlocks, teacher_fingerprint
    from wootz_keras.search import write_report
    from wootz_keras.workflow.runner import explore
    from wootz_keras.planner import ConfigSpace

    keras.utils.set_random_seed(FLAGS.seed)
    teacher, _ = common.load_model(teacher_path, "teacher", allow_zoo=False)
    modules = common.find_model_modules(teacher, FLAGS.modules_json)
    try:
        configs = ConfigSpace(modules, rates=(0.5,)).load(configs_path)
    except (ValueError, KeyError, TypeError) as e:
        names = None
        try:
            from wootz_keras.utils.io import read_json
            names = read_json(configs_path).get("modules")
        except (ValueError, AttributeError):
            pass
        message = e if isinstance(e, ValueError) else f"malformed: {type(e).__name__}: {e}"
        raise ValueError(f"--configs {configs_path}: " + common.explain_module_mismatch(
            message, names, FLAGS.modules_json)) from None
    if not configs:
        raise ValueError(f"--configs {configs_path} holds no configurations")
    blocks = None
    if FLAGS.blocks is not None:
        blocks = PretrainedBlocks.load(FLAGS.blocks, teacher_fingerprint(modules))

    train = common.fashion_mnist_for(teacher, "train", FLAGS.train_size, FLAGS.seed)
    val = common.fashion_mnist_for(teacher, "test", FLAGS.val_size, FLAGS.seed)
    mode = "composed" if blocks is not None else "default"
    print(f"exploring {len(configs)} candidate(s) of {teacher.name} ({mode} mode"
          f"{f', {len(blocks)} pre-trained block(s)' if blocks is not None else ''}) for "
          f"{objective.describe()}; {FLAGS.finetune_steps} fine-tuning steps each; "
          f"journal {journal}", flush=True)
    result = explore(teacher, configs, train, val, objective=objective, blocks=blocks,
                     journal=journal, finetune_steps=FLAGS.finetune_steps,
                     learning_rate=FLAGS.learning_rate, batch_size=FLAGS.batch_size,
                     worker_index=FLAGS.worker_index, num_workers=FLAGS.num_workers,
                     modules=modules, progress=True, seed=FLAGS.seed)

    teacher_params = wz.count_params(teacher)
    w = result.winner
    print(f"full model: {teacher_params:,} params, accuracy {result.full_accuracy:.4f}; "
          f"tried {result.tried} of {result.num_candidates} in {result.seconds:.1f} s")
    if w is not None and w.get("met"):
        print(f"winner: #{w['index']} rates {list(w['rates'])}: {w['params']:,} params "
              f"({w['params'] / teacher_params:.3f} of the full model), {w['flops']:,} FLOPs, "
              f"accuracy {w['init_accuracy']:.4f} after assembly -> {w['final_accuracy']:.4f} "
              "after fine-tuning")
    else:
        target = objective.describe_target(result.full_accuracy)
        print(f"no candidate met {target}" + (
            f"; fallback: #{w['index']} rates {list(w['rates'])} at accuracy "
            f"{w['final_accuracy']:.4f}" if w is not None else ""))
    if not result.complete:
        print(f"not final: other workers still own earlier position(s) {result.pending[:5]}")
    if FLAGS.report_dir:
        extra = {"teacher": teacher_path, "configs": configs_path, "blocks": FLAGS.blocks,
                 "finetune_steps": FLAGS.finetune_steps, "train_size": FLAGS.train_size,
                 "val_size": FLAGS.val_size}
        if blocks is not None:
            extra["pretrain_seconds"] = blocks.seconds
        paths = write_report(FLAGS.report_dir, result.full_accuracy, teacher_params,
                             {result.mode: result}, extra=extra)
        print(f"report: {paths['markdown']}")


def run():
    """Console-script entry point (wootz-explore)."""
    common.run_tool(main, "wootz-explore", __doc__)


if __name__ == "__main__":
    run()
