"""Pruning engine speed, measured in one run.

1. ResNet50 (keras.applications, weights=None, 224x224) pruned by 50% (L1):
   `prune_compact` (analysis + scores + selection + rebuild) and
   `prune_filters` + `strip_pruning`, best of --repeats after a warm-up
   call; with torch and torch-pruning importable, Torch-Pruning 1.6 on the
   same architecture written in torch (its DependencyGraph build +
   MagnitudePruner step, L1, fc ignored, torch threads = --torch_threads),
   printed side by side with the parameter fractions both keep. Torch is an
   optional comparison, never a dependency of the package:
       pip install torch==2.13.0 && pip install --no-deps torch-pruning
   Goal: neither of our paths slower than Torch-Pruning.
2. Training step-time ratio of a masked model (PruneWrappers multiplying
   outputs by a mask) vs the same architecture unwrapped, same batch size,
   same real Fashion-MNIST batches: median of `train_on_batch` over
   --steps steps after --warmup steps, the models interleaved so that
   machine noise hits them alike. Goal: ratio <= 1.15. A second unwrapped
   copy is timed too: its ratio to the first ("noise") shows how far the
   machine's load alone moves a ratio (other jobs share these 2 cores).
   Models: zoo resnet_cifar(depth=20) on 28x28x1 and (unless
   --noresnet50_train) ResNet50 at --resnet50_size.

    flock -x /tmp/wootz_cpu.lock python benchmarks/engine_speed.py --json=/tmp/engine_speed.json
    python benchmarks/engine_speed.py --notrain      # the pruning timings only
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
flags.DEFINE_integer("repeats", 3, "Timed repetitions of each pruning path (best is reported).")
flags.DEFINE_integer("torch_threads", 2, "torch.set_num_threads for Torch-Pruning.")
flags.DEFINE_boolean("train", True, "Also measure the training step-time ratios.")
FLAGS = flags.FLAGS


def _best(fn, repeats):
    """(best seconds, last result) of `repeats` calls after one warm-up call."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def keras_timing(size, rate, repeats):
    import keras

    import wootz_keras as wz
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    compact_s, compact = _best(lambda: wz.prune_compact(model, rate=rate), repeats)
    prune_s, pruned = _best(lambda: wz.prune_filters(model, rate=rate), repeats)
    strip_s, stripped = _best(lambda: wz.strip_pruning(pruned), repeats)
    from wootz_keras.graph import ChannelAnalysis
    analysis_s, analysis = _best(lambda: ChannelAnalysis(model), repeats)
    reuse_s, _ = _best(lambda: wz.prune_compact(analysis, rate=rate), repeats)
    clone_s, _ = _best(lambda: keras.models.clone_model(model), repeats)
    floor = construction_floor(compact, repeats)
    before = model.count_params()
    out = dict(size=size, compact_s=round(compact_s, 3), prune_s=round(prune_s, 3),
               strip_s=round(strip_s, 3), filters_strip_s=round(prune_s + strip_s, 3),
               analysis_s=round(analysis_s, 3), compact_from_analysis_s=round(reuse_s, 3),
               keras_clone_model_s=round(clone_s, 3), **floor,
               params_before=before, params_after=compact.count_params(),
               kept=round(compact.count_params() / before, 3),
               kept_strip=round(stripped.count_params() / before, 3))
    keras.backend.clear_session()
    return out


def construction_floor(small, repeats):
    """What building `small` (the pruned network) costs through Keras's own
    layer API when nothing else is done: every layer made from its config and
    built straight from its final arrays (no random initialisation, no copy
    afterwards), then called on symbolic inputs into a Model. No rebuild that
    hands Keras new layers can be cheaper; `keras.models.clone_model` of the
    same small model is printed beside it."""
    import keras

    from wootz_keras.pruning.rebuild import _call_with_presets, copy_config
    layers = [l for l in small.layers if not isinstance(l, keras.layers.InputLayer)]
    arrays = {id(l): l.get_weights() for l in layers}
    shapes = [keras.tree.map_structure(lambda t: t.shape, l.input) for l in layers]

    def make_and_build():
        out = []
        for layer, shape in zip(layers, shapes):
            new = copy_config(layer)
            if layer.weights:       # the engine's own build-from-arrays, outside a rebuild
                presets = {id(new): arrays[id(layer)]}
                _call_with_presets(new, presets, lambda: new.build(shape))
                assert presets[id(new)] is None, f"{layer.name} was not built from its arrays"
            out.append(new)
        return out

    def symbolic_calls():
        x = keras.Input(batch_shape=small.inputs[0].shape)
        return keras.Model(x, small._run_through_graph([x], operation_fn=lambda op: op))
    build_s, built = _best(make_and_build, repeats)
    assert all(len(b.weights) == len(l.weights) for b, l in zip(built, layers))
    calls_s, _ = _best(symbolic_calls, repeats)
    small_clone_s, _ = _best(lambda: keras.models.clone_model(small), repeats)
    return dict(floor_build_s=round(build_s, 3), floor_calls_s=round(calls_s, 3),
                floor_s=round(build_s + calls_s, 3), keras_clone_small_s=round(small_clone_s, 3))


def _torch_resnet50():
    """torchvision's ResNet-50 (v1.5: stride on the 3x3 conv), written out."""
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet50(nn.Module):
        def __init__(self, classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            stages, cin = [], 64
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                layers = []
                for i in range(blocks):
                    layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                    cin = width * 4
                stages.append(nn.Sequential(*layers))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(cin, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet50()


def torch_pruning_timing(size, rate, repeats, threads):
    """Torch-Pruning on the torch ResNet-50, or None if torch / torch_pruning are absent."""
    try:
        import torch
        import torch_pruning as tp
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    example = torch.randn(1, 3, size, size)

    def prune():
        model = _torch_resnet50().eval()
        before = sum(p.numel() for p in model.parameters())
        t = time.perf_counter()
        pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=rate, ignored_layers=[model.fc])
        pruner.step()
        seconds = time.perf_counter() - t
        return seconds, before, sum(p.numel() for p in model.parameters())
    runs = [prune() for _ in range(repeats + 1)][1:]
    best = min(r[0] for r in runs)
    _, before, after = runs[-1]
    # parameters the way Keras counts them: BatchNorm running statistics included
    return dict(version=tp.__version__, torch=torch.__version__, threads=threads,
                seconds=round(best, 3), params_before=before, params_after=after,
                kept=round(after / before, 3))


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
    figures["resnet50_prune"] = k = keras_timing(FLAGS.strip_size, FLAGS.rate, FLAGS.repeats)
    figures["torch_pruning"] = tp = torch_pruning_timing(FLAGS.strip_size, FLAGS.rate,
                                                         FLAGS.repeats, FLAGS.torch_threads)
    print(f"ResNet50 {k['size']}x{k['size']} pruned by {FLAGS.rate:.0%} (L1), best of "
          f"{FLAGS.repeats}:")
    print(f"  wootz prune_compact                   {k['compact_s']:6.3f} s   keeps "
          f"{k['kept']:.3f} of {k['params_before']:,} params")
    print(f"  wootz prune_filters + strip_pruning   {k['filters_strip_s']:6.3f} s   "
          f"({k['prune_s']:.3f} + {k['strip_s']:.3f}), keeps {k['kept_strip']:.3f}")
    print(f"  (ChannelAnalysis alone {k['analysis_s']:.3f} s; prune_compact from a built analysis "
          f"with cached scores {k['compact_from_analysis_s']:.3f} s; keras.models.clone_model of "
          f"the unpruned model, for scale, {k['keras_clone_model_s']:.3f} s)")
    print(f"  Keras construction floor of the pruned network: {k['floor_s']:.3f} s (its "
          f"{k['floor_build_s']:.3f} s of layers made and built from their final arrays + "
          f"{k['floor_calls_s']:.3f} s of symbolic calls); keras.models.clone_model of the "
          f"pruned network {k['keras_clone_small_s']:.3f} s")
    if tp is None:
        print("  Torch-Pruning: not installed (pip install torch==2.13.0 && "
              "pip install --no-deps torch-pruning)")
    else:
        print(f"  Torch-Pruning {tp['version']} (torch {tp['torch']}, {tp['threads']} threads) "
              f"{tp['seconds']:6.3f} s   keeps {tp['kept']:.3f} of {tp['params_before']:,} params")
        print(f"  ratio to Torch-Pruning: prune_compact {k['compact_s'] / tp['seconds']:.2f}, "
              f"prune_filters + strip {k['filters_strip_s'] / tp['seconds']:.2f}, "
              f"the Keras construction floor {k['floor_s'] / tp['seconds']:.2f}", flush=True)
    if not FLAGS.train:
        if FLAGS.json:
            write_json(FLAGS.json, figures)
        return
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
