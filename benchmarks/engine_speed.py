"""Pruning engine speed, measured in one run.

1. Time to strip ResNet50 (keras.applications, weights=None, 224x224): from a
   masked model (prune_filters(rate=0.5)) to a physically smaller one; also
   reports the time of prune_filters itself. Goal: strip < 10 s on 2 CPU cores.
2. Training step-time ratio of a masked model (PruneWrappers multiplying
   outputs by a mask) vs the same architecture unwrapped, same batch size,
   same real Fashion-MNIST batches: median of `train_on_batch` over
   --steps steps after --warmup steps, the models interleaved so that
   machine noise hits them alike. Goal: ratio <= 1.15. A second unwrapped
   copy is timed too: its ratio to the first ("noise") shows how far the
   machine's load alone moves a ratio (other jobs share these 2 cores).
   Models: zoo resnet_cifar(depth=20) on 28x28x1 and (unless
   --noresnet50_train) ResNet50 at --resnet50_size.

    python benchmarks/engine_speed.py --json=/tmp/engine_speed.json
"""

import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Training batch size (both models).")
flags.DEFINE_integer("steps", 30, "Timed training steps per model.")
flags.DEFINE_integer("warmup", 5, "Untimed training steps per model first.")
flags.DEFINE_integer("strip_size", 224, "ResNet50 input size for the strip timing.")
flags.DEFINE_boolean("resnet50_train", True, "Also time ResNet50 training steps.")
flags.DEFINE_integer("resnet50_size", 64, "ResNet50 input size for the training ratio.")
flags.DEFINE_integer("resnet50_batch_size", 16, "ResNet50 training batch size.")
flags.DEFINE_float("rate", 0.5, "Pruning rate of the masked models.")
flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
FLAGS = flags.FLAGS


def strip_timing(size, rate):
    import keras

    import wootz_keras as wz
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    t = time.perf_counter()
    pruned = wz.prune_filters(model, rate=rate)
    prune_s = time.perf_counter() - t
    t = time.perf_counter()
    stripped = wz.strip_pruning(pruned)
    strip_s = time.perf_counter() - t
    out = dict(size=size, prune_s=round(prune_s, 2), strip_s=round(strip_s, 2),
               params_before=model.count_params(), params_after=stripped.count_params())
    keras.backend.clear_session()
    return out


def _step_times(models, x, y, steps, warmup):
    """Median train_on_batch seconds per model, steps interleaved."""
    times = [[] for _ in models]
    for m in models:
        for _ in range(warmup):
            m.train_on_batch(x, y)
    for _ in range(steps):
        for i, m in enumerate(models):
            t = time.perf_counter()
            m.train_on_batch(x, y)
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def train_ratio(name, make_model, x, y, rate, steps, warmup):
    import keras

    import wootz_keras as wz
    plain = make_model()
    masked = wz.prune_filters(plain, rate=rate)
    twin = make_model()
    wrappers = [l for l in masked._flatten_layers(include_self=False)
                if isinstance(l, wz.PruneWrapper)]
    for m in (plain, masked, twin):
        m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    t_plain, t_masked, t_twin = _step_times([plain, masked, twin], x, y, steps, warmup)
    keras.backend.clear_session()
    return dict(model=name, batch_size=len(x), input_shape=list(x.shape[1:]),
                wrappers=len(wrappers), multiplying=sum(w.mask_output for w in wrappers),
                plain_step_ms=round(1e3 * t_plain, 2), masked_step_ms=round(1e3 * t_masked, 2),
                ratio=round(t_masked / t_plain, 3), noise=round(t_twin / t_plain, 3))


def main(argv):
    if len(argv) > 1:
        sys.exit(f"engine_speed: error: unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.steps < 1 or FLAGS.warmup < 0 or FLAGS.batch_size < 1:
        sys.exit("engine_speed: error: need --steps >= 1, --warmup >= 0, --batch_size >= 1")
    warnings.simplefilter("ignore")
    import keras
    import numpy as np

    from wootz_keras import zoo
    from wootz_keras.data import load_fashion_mnist, representative_images
    from wootz_keras.utils.io import write_json

    figures = {}
    figures["strip_resnet50"] = s = strip_timing(FLAGS.strip_size, FLAGS.rate)
    print(f"ResNet50 {s['size']}x{s['size']}: prune_filters {s['prune_s']:.2f} s, "
          f"strip_pruning {s['strip_s']:.2f} s (goal < 10 s), params "
          f"{s['params_before']:,} -> {s['params_after']:,}", flush=True)

    x, y = load_fashion_mnist("train", limit=max(FLAGS.batch_size, FLAGS.resnet50_batch_size),
                              seed=0)
    keras.utils.set_random_seed(0)
    runs = [train_ratio("resnet_cifar(depth=20)", lambda: zoo.resnet_cifar(depth=20),
                        x[:FLAGS.batch_size], y[:FLAGS.batch_size], FLAGS.rate,
                        FLAGS.steps, FLAGS.warmup)]
    if FLAGS.resnet50_train:
        size = FLAGS.resnet50_size
        xb = representative_images(x[:FLAGS.resnet50_batch_size], FLAGS.resnet50_batch_size,
                                   size=(size, size), channels=3) * 255.0
        idx = np.random.default_rng(0).permutation(FLAGS.resnet50_batch_size)  # same as above
        yb = y[:FLAGS.resnet50_batch_size][idx]
        runs.append(train_ratio(
            f"ResNet50 {size}x{size}",
            lambda: keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                                classes=10),
            keras.applications.resnet.preprocess_input(xb), yb, FLAGS.rate,
            max(FLAGS.steps // 3, 3), min(FLAGS.warmup, 3)))
    figures["train_step"] = runs
    for r in runs:
        print(f"{r['model']}: batch {r['batch_size']}, {r['wrappers']} wrappers "
              f"({r['multiplying']} multiply), step {r['plain_step_ms']:.1f} ms plain vs "
              f"{r['masked_step_ms']:.1f} ms masked: ratio {r['ratio']:.3f} (goal <= 1.15); "
              f"unwrapped twin vs plain (noise): {r['noise']:.3f}", flush=True)
    if FLAGS.json:
        write_json(FLAGS.json, figures)


if __name__ == "__main__":
    app.run(main)
