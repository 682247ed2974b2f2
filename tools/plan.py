"""Plan the tuning blocks to pre-train for a model (Wootz steps 1-3).

Finds the model's modules (residual, inception, single-conv; or the explicit
ones of --modules_json), samples --num_configs pruning configurations (one
rate from --rates per module), and selects the tuning blocks with Sequitur
and the paper's heuristic. Writes the plan (--out, for wootz-pretrain) and
the sampled configurations beside it (<out stem>.configs.json, for
wootz-explore), both atomically, and prints the modules, the prunable layers
no module owns and why, the blocks, their coverage and expected reuse.

Examples:
    python tools/plan.py --model=resnet20.keras --rates=0.3,0.5,0.7 --num_configs=64
    python tools/plan.py --model=resnet_cifar:depth=8 --uniform_size --out=plans/r8.json
    python tools/plan.py --model=cnn.keras --modules_json='[["conv1","bn1"],["conv2"]]'

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
flags.DEFINE_string("model", None, "Path to a .keras model, or a zoo CNN (plain_cnn, "
                    "resnet_cifar, tiny_inception, tiny_mobilenet; options as "
                    "name:key=value,...). Only its structure matters here.")
flags.DEFINE_string("rates", "0.3,0.5,0.7", "Pruning rates a module may take, comma-separated, "
                    "each in [0, 1).")
flags.DEFINE_integer("num_configs", 64, "Configurations to sample (all of them when the space "
                     "is smaller). At least 2.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_bool("uniform_size", False, "Spread the samples evenly over estimated model size "
                  "(as the paper does) instead of uniformly over rate vectors.")
flags.DEFINE_string("modules_json", None, "Explicit modules instead of the found ones: a JSON "
                    "list of lists of layer names, inline or a path to a JSON file. Pass the "
                    "same value to wootz-pretrain and wootz-explore.")
flags.DEFINE_integer("max_group_size", 0, "Pre-train at most this many blocks together (one "
                     "multiplexed model per group); 0 puts all blocks in one group.")
flags.DEFINE_string("out", "plan.json", "Where to write the plan (JSON, atomically).")
flags.DEFINE_string("configs_out", None, "Where to write the sampled configurations "
                    "(default: <out stem>.configs.json beside --out).")


def configs_path(out):
    stem = out[:-len(".json")] if out.endswith(".json") else out
    return f"{stem}.configs.json"


def _check_flags():
    model = common.check_model_spec(FLAGS.model, "model")
    rates = common.parse_rate_list(FLAGS.rates, "rates")
    if len(set(rates)) != len(rates):
        raise common.UsageError(f"--rates holds a rate twice: {FLAGS.rates}")
    common.check_at_least("num_configs", 2)
    common.check_at_least("max_group_size", 0)
    out = common.require("out")
    configs_out = FLAGS.configs_out or configs_path(out)
    if os.path.abspath(out) == os.path.abspath(configs_out):
        raise common.UsageError(f"--out and --configs_out are the same file: {out}")
    for flag, path in (("out", out), ("configs_out", configs_out)):
        if os.path.isdir(path):
            raise common.UsageError(f"--{flag}: {path!r} is a directory")
    common.read_modules_json(FLAGS.modules_json)  # syntax check before loading anything
    return model, rates, out, configs_out


def main(argv):
    model_spec, rates, out, configs_out = _check_flags()
    common.quiet_tensorflow()
    from wootz_keras.planner import ConfigSpace, composable_plan, plan_tuning_blocks

    model, _ = common.load_model(model_spec, "model")
    modules = common.find_model_modules(model, FLAGS.modules_json)
    print(f"{model.name}: {len(modules)} module(s)")
    for m in modules:
        note = "" if m.composable else "  (output shape changes: default pruning only)"
        print(f"  {m.index:3d} {m.name:32s} {m.kind:9s} prunes {', '.join(m.prunable_layers)}"
              f"{note}")
    if modules.unassigned:
        print(f"unassigned prunable layers ({len(modules.unassigned)}), kept whole:")
        for name, why in modules.unassigned:
            print(f"  {name}: {why}")

    space = ConfigSpace(modules, rates)
    configs = space.sample(FLAGS.num_configs, seed=FLAGS.seed, uniform_size=FLAGS.uniform_size)
    if len(configs) < 2:
        raise ValueError(f"the configuration space holds only {len(configs)} configuration(s) "
                         f"({len(modules)} module(s) x {len(rates)} rate(s)); nothing to plan")
    kwargs = {}
    if FLAGS.max_group_size:
        kwargs = dict(memory_budget=FLAGS.max_group_size, block_cost=lambda b: 1)
    plan = plan_tuning_blocks(configs, module_names=modules.names, **kwargs)
    plan, dropped = composable_plan(plan, modules)

    params = [c.params for c in configs]
    print(f"configurations: {len(configs)} sampled of {space.size:,} "
          f"({'uniform over size' if FLAGS.uniform_size else 'uniform over rates'}, "
          f"seed {FLAGS.seed}); params {min(params):,}..{max(params):,} "
          f"of {space.full_params:,} ({min(params) / space.full_params:.2f}.."
          f"{max(params) / space.full_params:.2f})")
    print(f"tuning blocks: {len(plan.blocks)} in {len(plan.groups)} group(s)")
    if dropped:
        print(f"  ({dropped} more block(s) dropped: they cover, or follow, a module whose "
              "output shape changes when pruned; those modules take default pruning)")
    if plan.blocks:
        print(common.table(
            ["block", "modules", "frequency"],
            [[b.name, ", ".join(modules.names[b.start:b.stop]), b.frequency]
             for b in plan.blocks], align="llr"))
    cov = plan.coverage
    print(f"coverage: {cov.fraction:.1%} of module slots; {cov.blocks_per_config:.2f} "
          f"block(s) per configuration; expected reuse {cov.expected_reuse:.2f} "
          "configurations per block")

    space.save(configs_out, configs)
    plan.to_json(out)
    print(f"plan: {out}")
    print(f"configurations: {configs_out}")


def run():
    """Console-script entry point (wootz-plan)."""
    common.run_tool(main, "wootz-plan", __doc__)


if __name__ == "__main__":
    run()
