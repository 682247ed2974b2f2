"""wootz-explore: explore pruned candidates of a teacher under an objective.

Assembles each configuration written by wootz-plan (from pre-trained
--blocks: "composed" mode; without them default L1 pruning; --mode=auto
decides from the first default candidates whether pre-training pays),
fine-tunes it under one protocol (step budget, evaluation every
--eval_every steps on a validation split carved from the training data,
stop at the target, a plateau or the budget) and stops at the first
candidate, in the objective's order, that meets the objective. Every
finished candidate goes to --journal (an SQLite file, or a
postgresql://user@host:port/db URL shared by workers on several machines),
so a killed run resumes and any number of workers can join.

    wootz-explore --teacher=t.keras --configs=plan.configs.json --blocks=blocks
    wootz-explore --teacher=t.keras --configs=plan.configs.json --mode=auto --plan=plan.json
"""

import os

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "The trained full model (.keras or .h5).")
flags.DEFINE_string("configs", None, "Configurations JSON from wootz-plan for this teacher.")
flags.DEFINE_string("blocks", None, "Pre-trained blocks folder (wootz-pretrain).")
flags.DEFINE_enum("mode", None, ["default", "composed", "auto"], "default: L1 pruning; "
                  "composed: --blocks; auto: default first, pre-train only if it pays "
                  "(default: composed with --blocks, else default).")
flags.DEFINE_string("plan", None, "auto mode: the plan whose blocks to pre-train (default: "
                    "planned from --configs).")
flags.DEFINE_integer("pretrain_steps", 300, "auto mode: pre-training steps.")
flags.DEFINE_string("objective", "smallest_params:alpha=0.01", "smallest_params|smallest_flops"
                    "[:alpha=A] or most_accurate:max_params=N|max_flops=N, or a JSON objective.")
flags.DEFINE_string("journal", "explore.sqlite", "Journal of finished candidates and work "
                    "claims: an SQLite file (one machine) or postgresql://user@host:port/db "
                    "(workers on several machines; password from ~/.pgpass or PGPASSWORD). "
                    "Resumes a killed run; any number of workers share it.")
cli.define_data_flags()
flags.DEFINE_integer("val_size", 4000, "Validation examples carved from the training data.")
flags.DEFINE_integer("max_steps", 600, "Fine-tuning step budget per candidate.")
flags.DEFINE_integer("eval_every", 50, "Steps between validation evaluations.")
flags.DEFINE_integer("patience", 3, "Evaluations without a new best before a plateau stop.")
flags.DEFINE_integer("batch_size", 64, "Fine-tuning batch size.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak Adam learning rate (cosine over the budget).")
flags.DEFINE_integer("seed", 0, "Seed of the splits and the fine-tuning.")
flags.DEFINE_string("report_dir", None, "Optional folder for report.md, results.json/csv, plots.")
flags.DEFINE_string("modules_json", None, "The explicit modules given to wootz-plan, if any.")
flags.DEFINE_string("worker", None, "A label for this worker in the journal (default: TF_CONFIG's "
                    "index, else none).")


def main(argv):
    cli.check_model_flag("teacher", allow_zoo=False)
    configs_path = cli.check_file("configs", "configuration file")
    if FLAGS.blocks is not None and not os.path.isdir(FLAGS.blocks):
        raise cli.UsageError(f"--blocks: folder not found: {FLAGS.blocks}")
    mode = FLAGS.mode or ("composed" if FLAGS.blocks else "default")
    if mode == "composed" and not FLAGS.blocks:
        raise cli.UsageError("--mode=composed needs --blocks")
    objective = cli.parse_objective(FLAGS.objective)
    spec, image_size = cli.check_data_flags()
    for flag, low in (("val_size", 1), ("max_steps", 0), ("eval_every", 1), ("patience", 1),
                      ("batch_size", 1), ("pretrain_steps", 1)):
        cli.check_at_least(flag, low)
    cli.check_positive_float("learning_rate")
    explicit = cli.read_modules_json(FLAGS.modules_json)
    from wootz_keras.search import Journal, describe_journal
    from wootz_keras.search.backends import is_url
    if is_url(FLAGS.journal):
        Journal(FLAGS.journal).close()          # an unreachable server fails here, in seconds
    import wootz_keras as wz
    from wootz_keras.compose import PretrainedBlocks
    from wootz_keras.planner import Plan, find_modules
    from wootz_keras.planner.config_space import load_configs
    from wootz_keras.search import write_report
    from wootz_keras.workflow.pipeline import prepare_data
    from wootz_keras.workflow.presets import Settings

    teacher, _ = cli.load_model_flag("teacher", allow_zoo=False)
    modules = find_modules(teacher, modules=explicit)
    configs = load_configs(configs_path, modules)
    if not configs:
        raise ValueError(f"--configs {configs_path} holds no configurations")
    blocks = PretrainedBlocks.load(FLAGS.blocks, modules.fingerprint()) if FLAGS.blocks else None
    protocol = wz.Protocol(max_steps=FLAGS.max_steps, eval_every=FLAGS.eval_every,
                           patience=FLAGS.patience, batch_size=FLAGS.batch_size,
                           learning_rate=FLAGS.learning_rate)
    data = prepare_data(Settings(val_size=FLAGS.val_size, train_size=None, seed=FLAGS.seed),
                        spec, model=teacher, image_size=image_size)
    print(f"exploring {len(configs)} candidate(s) of {teacher.name} ({mode} mode) for "
          f"{objective.describe()} on {data.source}; journal {describe_journal(FLAGS.journal)}",
          flush=True)
    extra = {}
    if mode == "auto":
        extra = dict(pretrain_steps=FLAGS.pretrain_steps, blocks=blocks,
                     plan=Plan.from_json(FLAGS.plan) if FLAGS.plan else None)
    result = wz.explore(teacher, configs, data.train, data.val, objective=objective,
                        blocks=blocks if mode != "auto" else extra.pop("blocks"), mode=mode,
                        journal=FLAGS.journal, protocol=protocol, test=data.test, loss=FLAGS.loss,
                        metric=FLAGS.metric, modules=modules, seed=FLAGS.seed,
                        worker=FLAGS.worker, **extra)
    print(result.message)
    if FLAGS.report_dir:
        paths = write_report(FLAGS.report_dir, result.full_accuracy, teacher.count_params(),
                             {result.mode: result}, pretrain_seconds=blocks.seconds if blocks
                             else 0.0, settings={"protocol": protocol.to_dict(),
                                                 "teacher": FLAGS.teacher, "data": spec})
        print(f"report: {paths['markdown']}")


def run():
    """Console-script entry point (wootz-explore)."""
    cli.run_tool(main, "wootz-explore", __doc__)


if __name__ == "__main__":
    run()
