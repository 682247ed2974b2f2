"""Prune a CNN's filters on real Fashion-MNIST and show what it costs and saves.

With a zoo name, trains the CNN on Fashion-MNIST first (--epochs); with a
.keras file, takes its weights as they are (unless --epochs is given). Then
prunes filters structurally (wz.prune_filters), strips the masks into a
physically smaller model (wz.strip_pruning), fine-tunes it briefly and
prints a before/after table: parameters, FLOPs and accuracy on held-out
Fashion-MNIST test images (before pruning, right after pruning, after
fine-tuning), and the size ratios.

Examples:
    python tools/prune.py                                    # plain_cnn, rate 0.5
    python tools/prune.py --model=resnet_cifar:depth=8 --rate=0.7 --criterion=l2
    python tools/prune.py --model=cnn.keras --rates=block1_conv:0.5,block3_conv:0.25 \\
        --out=cnn_pruned.keras

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
flags.DEFINE_string("model", "plain_cnn",
                    "A zoo CNN (plain_cnn, resnet_cifar, tiny_inception, tiny_mobilenet; "
                    "options as name:key=value,..., e.g. resnet_cifar:depth=8,width=8) or a "
                    "path to a .keras file.")
flags.DEFINE_float("rate", 0.5, "Fraction of the filters of every prunable group to remove, "
                   "in [0, 1).")
flags.DEFINE_string("rates", None, "Per-layer rates, layer:rate,... (producer layer names); "
                    "they override --rate for their groups. Without an explicit --rate only "
                    "these layers are pruned.")
flags.DEFINE_string("criterion", "l1", "Filter importance: l1, l2, bn_scale, taylor or random.")
flags.DEFINE_integer("round_to", 1, "Keep channel counts multiples of this.")
flags.DEFINE_integer("train_size", 6000, "Fashion-MNIST training images (train split).")
flags.DEFINE_integer("test_size", 2000, "Fashion-MNIST test images used to measure accuracy.")
flags.DEFINE_integer("epochs", 2, "Training epochs of a zoo CNN before pruning (a .keras model "
                     "is trained only when this flag is given).")
flags.DEFINE_integer("finetune_epochs", 1, "Fine-tuning epochs of the pruned model.")
flags.DEFINE_integer("batch_size", 64, "Batch size for training and fine-tuning.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate for training and fine-tuning.")
flags.DEFINE_integer("seed", 0, "Seed of the data subsets, initialisation and shuffling.")
flags.DEFINE_string("out", None, "Optional path (.keras) to save the pruned, stripped, "
                    "fine-tuned model to (written atomically).")


def _check_flags():
    common.check_model_spec(FLAGS.model, "model")
    rates = common.parse_layer_rates(FLAGS.rates) if FLAGS.rates is not None else None
    rate = FLAGS.rate if (rates is None or FLAGS["rate"].present) else None
    if rate is not None:
        common.check_rate(rate, "--rate")
    common.check_at_least("round_to", 1)
    common.check_at_least("train_size", 1)
    common.check_at_least("test_size", 1)
    common.check_at_least("epochs", 0)
    common.check_at_least("finetune_epochs", 0)
    common.check_at_least("batch_size", 1)
    common.check_positive_float("learning_rate")
    if FLAGS.out is not None and not FLAGS.out.endswith(".keras"):
        raise common.UsageError(f"--out must name a .keras file, got {FLAGS.out!r}")
    if FLAGS.out is not None and os.path.isdir(FLAGS.out):
        raise common.UsageError(f"--out: {FLAGS.out!r} is a directory")
    from wootz_keras.pruning import CRITERIA
    if FLAGS.criterion not in CRITERIA:
        raise common.UsageError(f"--criterion: unknown criterion {FLAGS.criterion!r}; choose one "
                                f"of {', '.join(CRITERIA)}")
    return rate, rates


def main(argv):
    rate, rates = _check_flags()
    common.quiet_tensorflow()
    import keras
    import wootz_keras as wz
    from wootz_keras.training import accuracy

    keras.utils.set_random_seed(FLAGS.seed)
    model, from_zoo = common.load_model(FLAGS.model, "model")
    train = common.fashion_mnist_for(model, "train", FLAGS.train_size, FLAGS.seed)
    test = common.fashion_mnist_for(model, "test", FLAGS.test_size, FLAGS.seed)
    verbose = common.progress_verbose()

    epochs = FLAGS.epochs if (from_zoo or FLAGS["epochs"].present) else 0
    if epochs:
        print(f"training {model.name} ({wz.count_params(model):,} params) for {epochs} epoch(s) "
              f"on {len(train[0]):,} Fashion-MNIST images", flush=True)
        common.compile_classifier(model, FLAGS.learning_rate)
        model.fit(*train, batch_size=FLAGS.batch_size, epochs=epochs, verbose=verbose)
    acc_before = accuracy(model, test)

    what = (f"rate {rate:g}" if rate is not None else "") + \
        (f"{' + ' if rate is not None else ''}{len(rates)} per-layer rate(s)" if rates else "")
    print(f"pruning {model.name}: {what}, criterion {FLAGS.criterion}", flush=True)
    data = train[0][:256], train[1][:256]
    pruned = wz.prune_filters(model, rate=rate, rates=rates, criterion=FLAGS.criterion,
                              round_to=FLAGS.round_to,
                              data=data if FLAGS.criterion == "taylor" else None,
                              seed=FLAGS.seed)
    small = wz.strip_pruning(pruned)
    acc_pruned = accuracy(small, test)

    if FLAGS.finetune_epochs:
        print(f"fine-tuning the pruned model for {FLAGS.finetune_epochs} epoch(s)", flush=True)
        common.compile_classifier(small, FLAGS.learning_rate)
        small.fit(*train, batch_size=FLAGS.batch_size, epochs=FLAGS.finetune_epochs,
                  verbose=verbose)
    acc_tuned = accuracy(small, test)

    p0, p1 = wz.count_params(model), wz.count_params(small)
    f0, f1 = wz.count_flops(model), wz.count_flops(small)
    print()
    print(f"{model.name} on Fashion-MNIST ({len(test[0]):,} test images)")
    print(common.table(
        ["", "params", "FLOPs", "accuracy"],
        [["before pruning", f"{p0:,}", f"{f0:,}", f"{acc_before:.4f}"],
         ["after pruning", f"{p1:,}", f"{f1:,}", f"{acc_pruned:.4f}"],
         [f"after fine-tuning ({FLAGS.finetune_epochs} ep)", f"{p1:,}", f"{f1:,}",
          f"{acc_tuned:.4f}"],
         ["ratio after/before", f"{p1 / p0:.3f}", f"{f1 / f0:.3f}",
          f"{acc_tuned / acc_before:.3f}" if acc_before else "-"]]))
    print(f"size: {p0 / p1:.2f}x fewer params, {f0 / f1:.2f}x fewer FLOPs; accuracy "
          f"{acc_tuned - acc_before:+.4f} after fine-tuning")
    if FLAGS.out:
        common.save_model_atomic(small, FLAGS.out)
        print(f"saved: {FLAGS.out}")


def run():
    """Console-script entry point (wootz-prune)."""
    common.run_tool(main, "wootz-prune", __doc__)


if __name__ == "__main__":
    run()
