"""wootz-prune: prune a CNN's filters on real data and show what it costs and saves.

With a zoo name, trains the CNN on --data first (--epochs); with a .keras /
.h5 file, takes its weights as they are (unless --epochs is given). Prunes
filters structurally (wz.prune_filters), strips the masks into a physically
smaller model (wz.strip_pruning), fine-tunes it briefly and prints params,
FLOPs and accuracy on the test split before pruning, right after, and after
fine-tuning.

    wootz-prune                                   # plain_cnn on Fashion-MNIST, rate 0.5
    wootz-prune --model=resnet_cifar:depth=8 --rate=0.7 --criterion=l2
    wootz-prune --model=cnn.keras --rates=block1_conv:0.5 --out=cnn_pruned.keras
"""

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "plain_cnn", "A zoo CNN (plain_cnn, resnet_cifar, tiny_inception, "
                    "tiny_mobilenet; options as name:key=value,...) or a .keras / .h5 file.")
cli.define_data_flags()
flags.DEFINE_float("rate", 0.5, "Fraction of the filters of every prunable group to remove.")
flags.DEFINE_string("rates", None, "Per-layer rates, layer:rate,... (producer layer names); "
                    "without an explicit --rate only these layers are pruned.")
flags.DEFINE_string("criterion", "l1", "Filter importance (wz.importance registry name).")
flags.DEFINE_string("round_to", "1", "Keep channel counts multiples of this, or 'auto': per layer "
                    "the count --runtime runs fastest (measured latency table, cached).")
flags.DEFINE_enum("runtime", None, ["tflite", "onnxruntime"], "Runtime whose latency picks the "
                  "channel counts with --round_to=auto.")
flags.DEFINE_integer("train_size", 6000, "Training examples used.")
flags.DEFINE_integer("test_size", 2000, "Test examples that measure accuracy.")
flags.DEFINE_integer("epochs", 2, "Training epochs of a zoo CNN before pruning (a model file is "
                     "trained only when this flag is given).")
flags.DEFINE_integer("finetune_epochs", 1, "Fine-tuning epochs of the pruned model.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the data subsets, initialisation and shuffling.")
flags.DEFINE_string("out", None, "Save the pruned, stripped, fine-tuned model here (.keras).")


def _round_to_flag():
    text = FLAGS.round_to.strip().lower()
    if text == "auto":
        if FLAGS.runtime is None:
            raise cli.UsageError("--round_to=auto needs --runtime=tflite or --runtime=onnxruntime")
        return "auto"
    if FLAGS.runtime is not None:
        raise cli.UsageError(f"--runtime is only used with --round_to=auto, got --round_to="
                             f"{FLAGS.round_to!r}")
    if not text.isdigit() or int(text) < 1:
        raise cli.UsageError(f"--round_to must be a positive integer or 'auto', got "
                             f"{FLAGS.round_to!r}")
    return int(text)


def main(argv):
    spec, image_size = cli.check_data_flags()
    cli.check_model_flag()
    rates = cli.parse_layer_rates(FLAGS.rates) if FLAGS.rates is not None else None
    rate = FLAGS.rate if (rates is None or FLAGS["rate"].present) else None
    if rate is not None:
        from wootz_keras.utils.rates import check_rate
        try:
            check_rate(rate, "--rate")
        except ValueError as e:
            raise cli.UsageError(str(e)) from None
    round_to = _round_to_flag()
    for flag, low in (("train_size", 1), ("test_size", 1), ("epochs", 0),
                      ("finetune_epochs", 0), ("batch_size", 1)):
        cli.check_at_least(flag, low)
    if FLAGS.out is not None and not FLAGS.out.endswith(".keras"):
        raise cli.UsageError(f"--out must name a .keras file, got {FLAGS.out!r}")
    from wootz_keras.pruning import importance
    try:
        criterion = importance.get(FLAGS.criterion)
    except ValueError as e:
        raise cli.UsageError(f"--criterion: {e}") from None
    import keras
    import wootz_keras as wz
    from wootz_keras import zoo
    from wootz_keras.data import load_data, load_data_for, training_spec
    keras.utils.set_random_seed(FLAGS.seed)
    limits = dict(seed=FLAGS.seed, train_limit=FLAGS.train_size, test_limit=FLAGS.test_size,
                  test_fraction=FLAGS.test_fraction)
    shape = None
    if zoo.is_spec(FLAGS.model):
        shape = load_data(spec, image_size=image_size, **limits)
    model, from_zoo = cli.load_model_flag(
        **({"input_shape": shape.image_shape, "num_classes": shape.num_classes} if shape else {}))
    data = shape or load_data_for(model, spec, image_size=image_size, **limits)
    ts = training_spec(model, FLAGS.loss, FLAGS.metric, label_format=data.label_format)
    train = data.train.batches(FLAGS.batch_size, shuffle=True, seed=FLAGS.seed)
    test = data.test.numpy()

    def measure(m):
        return wz.evaluate(m, test, ts.new_metric())

    epochs = FLAGS.epochs if (from_zoo or FLAGS["epochs"].present) else 0
    if epochs:
        print(f"training {model.name} for {epochs} epoch(s) on {data.source}", flush=True)
        ts.compile(model, keras.optimizers.Adam(FLAGS.learning_rate))
        model.fit(train, epochs=epochs, verbose=cli.progress_verbose(), shuffle=False)
    before = measure(model)
    pruned = wz.prune_filters(model, rate=rate, rates=rates, criterion=criterion,
                              round_to=round_to, runtime=FLAGS.runtime, data=data.train.numpy(256))
    small = wz.strip_pruning(pruned)
    after = measure(small)
    if FLAGS.finetune_epochs:
        print(f"fine-tuning the pruned model for {FLAGS.finetune_epochs} epoch(s)", flush=True)
        ts.compile(small, keras.optimizers.Adam(FLAGS.learning_rate))
        small.fit(train, epochs=FLAGS.finetune_epochs, verbose=cli.progress_verbose(),
                  shuffle=False)
    tuned = measure(small)
    p0, p1 = wz.count_params(model), wz.count_params(small)
    f0, f1 = wz.count_flops(model), wz.count_flops(small)
    print(f"\n{model.name} on {data.source}, {ts.metric_name} on {len(test[1]):,} test examples")
    print(cli.table(["", "params", "FLOPs", ts.metric_name],
                    [["before pruning", f"{p0:,}", f"{f0:,}", f"{before:.4f}"],
                     ["after pruning", f"{p1:,}", f"{f1:,}", f"{after:.4f}"],
                     [f"after fine-tuning ({FLAGS.finetune_epochs} ep)", f"{p1:,}", f"{f1:,}",
                      f"{tuned:.4f}"]]))
    print(f"size: {p0 / p1:.2f}x fewer params, {f0 / f1:.2f}x fewer FLOPs; {ts.metric_name} "
          f"{tuned - before:+.4f} after fine-tuning")
    if FLAGS.out:
        from wootz_keras.utils.io import atomic_path
        with atomic_path(FLAGS.out) as tmp:
            small.save(tmp)
        print(f"saved: {FLAGS.out}")


def run():
    """Console-script entry point (wootz-prune)."""
    cli.run_tool(main, "wootz-prune", __doc__)


if __name__ == "__main__":
    run()
