"""wootz-pretrain: pre-train a plan's tuning blocks teacher-student (Wootz step 4).

One frozen-teacher forward pass per batch feeds every student block of a
group (the multiplexing model); each student learns to reproduce the
teacher's activation at its block's output. Runs under a tf.distribute
strategy: --strategy=multiworker spans machines (cluster from TF_CONFIG);
the chief saves the blocks (atomically) to --out_dir.

    wootz-pretrain --teacher=resnet20.keras --plan=plan.json --steps=300 --out_dir=blocks
"""

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "The trained full model (.keras or .h5).")
flags.DEFINE_string("plan", None, "Plan JSON written by wootz-plan for this teacher.")
cli.define_data_flags()
flags.DEFINE_integer("steps", 300, "Pre-training steps per group.")
flags.DEFINE_integer("batch_size", 64, "Batch size (per step, over all replicas).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the splits and the shuffling.")
flags.DEFINE_string("out_dir", "blocks", "Folder for the blocks (replaced as a whole, "
                    "atomically; an existing folder must hold wootz blocks).")
# absl.logging defines --log_dir (for log files these tools never write): take it over.
flags.DEFINE_string("log_dir", None, "Optional TensorBoard folder for the block losses.",
                    allow_override=True)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multiworker"],
                  "tf.distribute strategy; multiworker reads the cluster from TF_CONFIG.")
flags.DEFINE_string("modules_json", None, "The explicit modules given to wootz-plan, if any.")


def main(argv):
    cli.check_model_flag("teacher", allow_zoo=False)
    plan_path = cli.check_file("plan", "plan")
    spec, image_size = cli.check_data_flags()
    for flag in ("steps", "batch_size"):
        cli.check_at_least(flag, 1)
    cli.check_positive_float("learning_rate")
    out_dir = cli.check_new_dir("out_dir", marker="blocks.json")
    explicit = cli.read_modules_json(FLAGS.modules_json)
    from wootz_keras.workflow.cluster import is_chief, make_strategy
    strategy = make_strategy(FLAGS.strategy)    # before any other TensorFlow work
    from wootz_keras.compose import check_plan_matches, pretrain_blocks
    from wootz_keras.data import load_data_for
    from wootz_keras.planner import Plan, find_modules
    from wootz_keras.utils.io import atomic_path

    plan = Plan.from_json(plan_path)
    teacher, _ = cli.load_model_flag("teacher", allow_zoo=False)
    modules = find_modules(teacher, modules=explicit)
    try:
        check_plan_matches(modules, plan)
    except ValueError as e:
        raise ValueError(f"--plan {plan_path}: {e}") from None
    if not plan.blocks:
        raise ValueError(f"--plan {plan_path} holds no tuning blocks: nothing to pre-train")
    data = load_data_for(teacher, spec, image_size=image_size, test_fraction=FLAGS.test_fraction,
                         seed=FLAGS.seed)
    print(f"pre-training {len(plan.blocks)} block(s) of {teacher.name} in {len(plan.groups)} "
          f"group(s) on {data.source}: {FLAGS.steps} steps, batch {FLAGS.batch_size}, "
          f"{strategy.num_replicas_in_sync} replica(s) ({FLAGS.strategy})", flush=True)
    blocks = pretrain_blocks(teacher, plan, data.train.batches(FLAGS.batch_size, shuffle=True,
                                                               seed=FLAGS.seed),
                             steps=FLAGS.steps, strategy=strategy,
                             learning_rate=FLAGS.learning_rate, modules=modules,
                             log_dir=FLAGS.log_dir if is_chief() else None,
                             batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    print(cli.table(["block", "modules", "final MSE"],
                    [[b.name, ", ".join(modules.names[b.start:b.stop]),
                      f"{blocks.final_loss(b):.5f}"] for b in blocks], align="llr"))
    print(f"time: {blocks.seconds:.1f} s for {len(blocks)} block(s)")
    if not is_chief():
        print("not the chief worker: blocks not saved (the chief saves them)")
        return
    with atomic_path(out_dir) as tmp:
        blocks.save(tmp)
    print(f"blocks: {out_dir}" + (f"\nTensorBoard: {FLAGS.log_dir}" if FLAGS.log_dir else ""))


def run():
    """Console-script entry point (wootz-pretrain)."""
    cli.run_tool(main, "wootz-pretrain", __doc__)


if __name__ == "__main__":
    run()
