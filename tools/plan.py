"""wootz-plan: the tuning blocks to pre-train for a model (Wootz steps 1-3).

Finds the model's modules (residual, inception, single-conv; or the explicit
ones of --modules_json), samples --num_configs configurations (one rate from
--rates per module), selects tuning blocks with Sequitur and the paper's
heuristic, and writes the plan (--out, for wootz-pretrain) and the
configurations (<out stem>.configs.json, for wootz-explore), atomically.

    wootz-plan --model=resnet20.keras --rates=0.3,0.5,0.7 --num_configs=64
    wootz-plan --model=resnet_cifar:depth=8 --uniform_size --out=plans/r8.json
"""

import os

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras / .h5 model or a zoo CNN (plain_cnn, resnet_cifar, "
                    "tiny_inception, tiny_mobilenet; options as name:key=value,...). Only its "
                    "structure matters here.")
flags.DEFINE_string("rates", "0.3,0.5,0.7", "Rates a module may take, comma-separated, in [0, 1).")
flags.DEFINE_integer("num_configs", 64, "Configurations to sample (all when the space is "
                     "smaller); at least 2.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_bool("uniform_size", False, "Spread the samples over estimated model size (as the "
                  "paper does) instead of uniformly over rate vectors.")
flags.DEFINE_bool("fill", False, "Also give every module slot no Sequitur block covers a "
                  "single-module block (ours; candidates are then assembled from pre-trained "
                  "pieces only).")
flags.DEFINE_string("modules_json", None, "Explicit modules: a JSON list of lists of layer names, "
                    "inline or a file. Pass the same value to wootz-pretrain and wootz-explore.")
flags.DEFINE_integer("max_group_size", 0, "Pre-train at most this many blocks together; 0 puts "
                     "all blocks in one multiplexed group.")
flags.DEFINE_string("out", "plan.json", "The plan (JSON, written atomically).")
flags.DEFINE_string("configs_out", None, "The configurations (default <out stem>.configs.json).")


def main(argv):
    cli.check_model_flag()
    rates = cli.parse_rate_list(FLAGS.rates, "rates")
    if len(set(rates)) != len(rates):
        raise cli.UsageError(f"--rates holds a rate twice: {FLAGS.rates}")
    cli.check_at_least("num_configs", 2)
    cli.check_at_least("max_group_size", 0)
    out = cli.require("out")
    configs_out = FLAGS.configs_out or os.path.splitext(out)[0] + ".configs.json"
    if os.path.abspath(out) == os.path.abspath(configs_out):
        raise cli.UsageError(f"--out and --configs_out are the same file: {out}")
    explicit = cli.read_modules_json(FLAGS.modules_json)
    from wootz_keras.planner import ConfigSpace, composable_plan, find_modules, plan_tuning_blocks

    model, _ = cli.load_model_flag()
    modules = find_modules(model, modules=explicit)
    print(f"{model.name}: {len(modules)} module(s)")
    print(modules.describe())
    space = ConfigSpace(modules, rates)
    configs = space.sample(FLAGS.num_configs, seed=FLAGS.seed, uniform_size=FLAGS.uniform_size)
    if len(configs) < 2:
        raise ValueError(f"the configuration space holds only {len(configs)} configuration(s); "
                         "nothing to plan")
    group = dict(memory_budget=FLAGS.max_group_size, block_cost=lambda b: 1) \
        if FLAGS.max_group_size else {}
    plan, dropped = composable_plan(plan_tuning_blocks(configs, module_names=modules.names,
                                                       fill=FLAGS.fill, **group), modules)
    params = [c.params for c in configs]
    print(f"configurations: {len(configs)} of {space.size:,}; params {min(params):,}.."
          f"{max(params):,} of {space.full_params:,} ({min(params) / space.full_params:.2f}.."
          f"{max(params) / space.full_params:.2f})")
    print(f"tuning blocks: {len(plan.blocks)} in {len(plan.groups)} group(s)"
          + (f" ({dropped} dropped: they touch modules whose output shape changes)"
             if dropped else ""))
    if plan.blocks:
        print(cli.table(["block", "modules", "frequency"],
                        [[b.name, ", ".join(modules.names[b.start:b.stop]), b.frequency]
                         for b in plan.blocks], align="llr"))
    cov = plan.coverage
    print(f"coverage: {cov.fraction:.1%} of module slots; {cov.blocks_per_config:.2f} block(s) "
          f"per configuration; each block reused by {cov.expected_reuse:.2f} configurations")
    space.save(configs_out, configs)
    plan.to_json(out)
    print(f"plan: {out}\nconfigurations: {configs_out}")


def run():
    """Console-script entry point (wootz-plan)."""
    cli.run_tool(main, "wootz-plan", __doc__)


if __name__ == "__main__":
    run()
