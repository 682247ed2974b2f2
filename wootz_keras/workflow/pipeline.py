"""The end-to-end Wootz pipeline as public, resumable stages.

    data -> teacher -> configurations -> plan -> exploration (auto, with
    default pruning side by side) -> medians -> report -> export

Each stage leaves its result in the run folder (teacher.keras,
teacher_curve.json, configs.json, plan.json, blocks/, journal.sqlite,
init.json, medians.json, figures.json, report.md, ...), written atomically,
so a killed run resumes where it stopped; each stage is a function a user
can call on its own. `run_pipeline` chains them.

Example (the tiny preset takes about a minute on 2 CPU cores):
    >>> import tempfile
    >>> from wootz_keras.workflow.presets import SCALES
    >>> figures = run_pipeline(SCALES["tiny"], tempfile.mkdtemp())  # doctest: +SKIP
"""

import dataclasses
import os
import time

import keras
import numpy as np

from wootz_keras import zoo
from wootz_keras.compose.assemble import Assembler
from wootz_keras.compose.blocks import PretrainedBlocks
from wootz_keras.compose.pretrain import pretrain_blocks
from wootz_keras.planner.config_space import ConfigSpace
from wootz_keras.planner.modules import find_modules
from wootz_keras.planner.tuning_blocks import Plan, composable_plan, plan_tuning_blocks
from wootz_keras.search.objectives import parse_objective
from wootz_keras.search.figures import summary
from wootz_keras.search.report import write_report
from wootz_keras.training import Evaluator, fine_tune
from wootz_keras.utils.io import atomic_path, read_json, write_json
from wootz_keras.workflow.runner import explore, init_accuracies


class RunLog:
    """Timestamped progress lines of one run: ``[wootz   12.3s] message``."""

    def __init__(self, verbose=True):
        self.started = time.perf_counter()
        self.verbose = verbose

    def __call__(self, message):
        if self.verbose:
            print(f"[wootz {time.perf_counter() - self.started:7.1f}s] {message}", flush=True)


@dataclasses.dataclass
class RunData:
    """The three splits of a run: `train` (fine-tuning, pre-training, the
    teacher), `val` (carved from the training images: every decision) and
    `test` (never seen by a decision: winners, medians, init accuracy),
    each a `wootz_keras.data.Split`, plus what the images are."""
    train: object
    val: object
    test: object
    source: str
    image_shape: tuple
    num_classes: int
    label_format: str = "sparse"


def prepare_data(settings, spec="fashion_mnist", model=None, image_size=None):
    """The splits of a run from a data spec (see `wootz_keras.data.load_data`):
    the validation split (`settings.val_size`, seeded) is carved from the
    training part; `settings.train_size` / `test_size` limit the rest.
    With `model`, the images are sized to its input and checked against it.

    Example:
        >>> from wootz_keras.workflow.presets import SCALES
        >>> d = prepare_data(SCALES["tiny"])
        >>> d.val.count, d.test.count, d.image_shape
        (400, 500, (28, 28, 1))
    """
    from wootz_keras.data import load_data, load_data_for, split_off, subset
    kwargs = dict(seed=settings.seed, test_limit=settings.test_size)
    if model is not None:
        dataset = load_data_for(model, spec, image_size=image_size, **kwargs)
    else:
        dataset = load_data(spec, image_size=image_size, **kwargs)
    if dataset.train.count is not None and dataset.train.count <= settings.val_size:
        raise ValueError(f"--data {spec}: {dataset.train.count} training examples cannot give a "
                         f"validation split of {settings.val_size} and leave any to train on")
    rest, val = split_off(dataset.train, settings.val_size, seed=settings.seed)
    train = subset(rest, settings.train_size, seed=settings.seed) if settings.train_size else rest
    source = (f"{dataset.source}: {train.count:,} training, {val.count:,} validation (carved "
              f"from training), {dataset.test.count:,} test examples")
    return RunData(train, val, dataset.test, source, tuple(dataset.image_shape),
                   int(dataset.num_classes), dataset.label_format)


def train_teacher(settings, data, path, log=print):
    """The teacher: loaded from `path`, or a zoo ResNet trained on `data.train`
    (cosine schedule, validated on `data.val`) and saved there with its
    training curve (`<path stem>_curve.json`).

    Returns (teacher, curve) where curve lists per-epoch train/val accuracy.
    """
    curve_path = os.path.splitext(path)[0] + "_curve.json"
    if os.path.exists(path):
        log(f"teacher: loading {path}")
        curve = read_json(curve_path, "teacher curve") if os.path.exists(curve_path) else []
        return keras.models.load_model(path), curve
    n = data.train.count
    log(f"teacher: training ResNet-{settings.depth} (width {settings.width}) for "
        f"{settings.teacher_epochs} epochs on {n:,} images")
    keras.utils.set_random_seed(settings.seed)
    teacher = zoo.resnet_cifar(settings.depth, input_shape=data.image_shape, width=settings.width,
                               num_classes=data.num_classes)
    steps = int(np.ceil(n / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.teacher_learning_rate,
                                                      steps * settings.teacher_epochs)
    loss = ("sparse_categorical_crossentropy" if data.label_format == "sparse"
            else "categorical_crossentropy")
    teacher.compile(keras.optimizers.Adam(schedule), loss, metrics=["accuracy"])
    history = teacher.fit(data.train.batches(settings.batch_size, shuffle=True, seed=settings.seed),
                          epochs=settings.teacher_epochs, validation_data=data.val.numpy(),
                          verbose=2, shuffle=False)
    curve = [{"epoch": i + 1, "train_accuracy": round(float(a), 4),
              "val_accuracy": round(float(v), 4)}
             for i, (a, v) in enumerate(zip(history.history["accuracy"],
                                            history.history["val_accuracy"]))]
    with atomic_path(path) as tmp:
        teacher.save(tmp)
    write_json(curve_path, curve)
    return teacher, curve


def sample_configs(modules, settings, path):
    """`settings.num_configs` configurations spread over model size (cached)."""
    space = ConfigSpace(modules, rates=settings.rates)
    if os.path.exists(path):
        return space.load(path)
    configs = space.sample(settings.num_configs, seed=settings.seed,
                           uniform_size=settings.uniform_size)
    space.save(path, configs)
    return configs


def plan_blocks(configs, modules, path, log=print, fill=True):
    """The tuning blocks of `configs` (Sequitur + the paper's selection, and
    single-module blocks for the slots left uncovered when `fill`), cached."""
    if os.path.exists(path):
        plan = Plan.from_json(path)
        if [list(c) for c in plan.configs] != [list(c.rates) for c in configs]:
            raise ValueError(f"{path!r} was planned for other configurations; remove it")
        return plan
    plan, dropped = composable_plan(plan_tuning_blocks(configs, module_names=modules.names,
                                                       fill=fill), modules)
    if dropped:
        log(f"plan: {dropped} blocks dropped (they touch modules whose output shape changes)")
    plan.to_json(path)
    return plan


def pretrain(teacher, plan, modules, settings, data, directory, log=print):
    """Pre-trained blocks of `plan`, loaded from `directory` or trained and saved there."""
    if os.path.exists(os.path.join(directory, "blocks.json")):
        log(f"blocks: loading {directory}")
        return PretrainedBlocks.load(directory, modules.fingerprint())
    log(f"blocks: pre-training {len(plan.blocks)} tuning blocks for {settings.pretrain_steps} "
        "steps, multiplexed on one teacher pass")
    tf_backend = keras.backend.backend() == "tensorflow"
    blocks = pretrain_blocks(teacher, plan, data.train, steps=settings.pretrain_steps,
                             modules=modules, learning_rate=settings.pretrain_learning_rate,
                             batch_size=settings.batch_size, seed=settings.seed,
                             log_dir=(os.path.join(os.path.dirname(directory), "tensorboard")
                                      if tf_backend else None))
    with atomic_path(directory) as tmp:
        blocks.save(tmp)
    log(f"blocks: pre-trained in {blocks.seconds:.1f} s")
    return blocks


def spread(n, k):
    """`k` indices spread evenly over range(n).

    Example:
        >>> spread(10, 4).tolist()
        [0, 3, 6, 9]
    """
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def measure_init(assembler, configs, blocks, data, settings, path, log=print, metric=None):
    """Accuracy right after assembly of every config, both modes, on the
    first `settings.init_size` test images (cached in `path`)."""
    if os.path.exists(path):
        return read_json(path, "init accuracies file")
    ev = Evaluator(data.test.numpy(settings.init_size), metric, what="test data")
    log(f"init accuracy right after assembly: {len(configs)} configs, both modes")
    out = {"over": f"all {len(configs)} configs, {len(ev):,} test images, right after assembly",
           "default": init_accuracies(assembler, configs, ev, None),
           "composed": init_accuracies(assembler, configs, ev, blocks)}
    write_json(path, out)
    return out


def measure_medians(assembler, configs, blocks, data, settings, path, log=print, loss=None,
                    metric=None):
    """Final accuracy (test split) of `settings.medians_sample` configs spread
    over size, fine-tuned in both modes under the protocol without a target
    (to a plateau or the budget), cached in `path`."""
    if os.path.exists(path):
        return read_json(path, "medians file")
    order = sorted(range(len(configs)), key=lambda i: configs[i].params)
    picked = [order[i] for i in spread(len(order), settings.medians_sample)]
    val, test = Evaluator(data.val, metric), Evaluator(data.test, metric, what="test data")
    out = {"indices": [int(i) for i in picked],
           "over": (f"{len(picked)} configs spread over size, fine-tuned without a target "
                    f"(plateau or {settings.protocol.max_steps} steps), {len(test):,} test images"),
           "default": [], "composed": []}
    for mode, b in (("default", None), ("composed", blocks)):
        log(f"medians: fine-tuning {len(picked)} configs ({mode}) without a target")
        for i in picked:
            net = assembler.assemble(configs[i], b)
            fine_tune(net, data.train, val, settings.protocol, None, loss=loss,
                      seed=settings.seed + int(i))
            out[mode].append(test.evaluate(net))
    write_json(path, out)
    return out


def explore_all(teacher, assembler, configs, blocks_fn, data, settings, out_dir, full_accuracy,
                log=print, composed=False, loss=None, metric=None, journal=None):
    """The explorations of a run, all in one journal: `settings.mode` first,
    then default pruning side by side (`settings.compare_default`), and the
    composed mode on its own when `composed` (the benchmark's figures).

    Every mode shares the journal's rows: default rows auto made are the
    default exploration's first rows, composed rows likewise.
    """
    journal = journal_path(out_dir, journal)
    val = Evaluator(data.val, metric)
    test = Evaluator(data.test, val.metric, what="test data")
    common = dict(objective=settings.objective, journal=journal, protocol=settings.protocol,
                  full_accuracy=full_accuracy, test=test, modules=assembler.modules,
                  seed=settings.seed, keep_dir=os.path.join(out_dir, "candidates"), loss=loss)
    results = {}
    main = settings.mode
    log(f"exploring ({main} mode) for {parse_objective(settings.objective).describe()}")
    if main == "auto":
        results["auto"] = explore(teacher, configs, data.train, val, mode="auto",
                                  blocks=blocks_fn, pretrain_steps=settings.pretrain_steps,
                                  **common)
        log(f"auto: {results['auto'].decision['reason']}")
    elif main == "composed":
        results["composed"] = explore(teacher, configs, data.train, val, mode="composed",
                                      blocks=blocks_fn(), **common)
    if settings.compare_default or main == "default":
        log("exploring with default pruning (side by side)")
        results["default"] = explore(teacher, configs, data.train, val, mode="default",
                                     **common)
    if composed and "composed" not in results:
        log("exploring with composability (pre-trained blocks)")
        results["composed"] = explore(teacher, configs, data.train, val, mode="composed",
                                      blocks=blocks_fn(), **common)
    return results


def journal_path(out_dir, journal=None):
    """The run's journal: `journal` (a path or postgresql:// URL) if given,
    else `<out_dir>/journal.sqlite`."""
    return journal or os.path.join(out_dir, "journal.sqlite")


def run_pipeline(settings, out_dir, export_dir=None, export_formats=("savedmodel", "tflite",
                                                                     "onnx"),
                 teacher=None, data=None, loss=None, metric=None, composed=False, log=None,
                 journal=None, stop_after=None):
    """Run the whole pipeline; returns the run's figures (as in figures.json).

    teacher: the user's trained Keras model (None: train the preset's
    ResNet on `data`); data: a `RunData` (None: Fashion-MNIST, see
    `prepare_data`); loss / metric: how candidates are fine-tuned and
    judged (None: the teacher's compiled ones, else cross-entropy and
    accuracy, see `wootz_keras.data.training_spec`); composed: also explore
    the composed mode on its own (the benchmark does); journal: an SQLite
    path or postgresql:// URL (default `<out_dir>/journal.sqlite`; machines
    sharing a URL share the exploration, see docs/multi_machine.md);
    stop_after="plan" stops once the teacher, configurations and plan are on
    disk. See the module docstring for the stages and the files they leave.
    """
    from wootz_keras.data import training_spec
    log = log or RunLog()
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "settings.json"), settings.to_dict())
    data = data or prepare_data(settings, model=teacher)
    log(f"data: {data.source}")
    curve = []
    if teacher is None:
        teacher, curve = train_teacher(settings, data, os.path.join(out_dir, "teacher.keras"),
                                       log)
    spec = training_spec(teacher, loss, metric, label_format=data.label_format)
    loss, metric = spec.loss, spec.metric
    full_accuracy = Evaluator(data.val, metric).evaluate(teacher)
    modules = find_modules(teacher)
    assembler = Assembler(teacher, modules)
    log(f"teacher: {teacher.count_params():,} params, validation {spec.metric_name} "
        f"{full_accuracy:.4f}, {len(modules)} modules")
    configs = sample_configs(modules, settings, os.path.join(out_dir, "configs.json"))
    plan = plan_blocks(configs, modules, os.path.join(out_dir, "plan.json"), log, settings.fill)
    cov = plan.coverage
    log(f"plan: {len(configs)} configs, {len(plan.blocks)} tuning blocks covering "
        f"{cov.fraction:.1%} of module slots, {cov.blocks_per_config:.2f} per config")
    if stop_after == "plan":
        log(f"stopped after planning: {out_dir} holds the teacher, configs.json and plan.json")
        return {"run_dir": out_dir, "stopped_after": "plan"}
    blocks_dir = os.path.join(out_dir, "blocks")
    cache = {}

    def blocks_fn():
        if "blocks" not in cache:
            cache["blocks"] = pretrain(teacher, plan, modules, settings, data, blocks_dir, log)
        return cache["blocks"]

    results = explore_all(teacher, assembler, configs, blocks_fn, data, settings, out_dir,
                          full_accuracy, log, composed=composed, loss=loss, metric=metric,
                          journal=journal)
    init = medians = None
    if "blocks" in cache:
        blocks = cache["blocks"]
        init = measure_init(assembler, configs, blocks, data, settings,
                            os.path.join(out_dir, "init.json"), log, metric=metric)
        if settings.compare_default and settings.medians_sample:
            medians = measure_medians(assembler, configs, blocks, data, settings,
                                      os.path.join(out_dir, "medians.json"), log, loss=loss,
                                      metric=metric)
    pretrain_seconds = cache["blocks"].seconds if "blocks" in cache else 0.0
    figures = summary(full_accuracy, teacher.count_params(), results,
                      pretrain_seconds=pretrain_seconds, init=init, medians=medians,
                      teacher_curve=curve)
    figures["metric"] = spec.metric_name
    winner = _main_winner(results, settings)
    if export_dir and winner is not None and winner.get("extra", {}).get("model"):
        figures["export"] = export_winner(winner, export_dir, data, export_formats, log,
                                          journal=journal_path(out_dir, journal))
    write_report(out_dir, full_accuracy, teacher.count_params(), results,
                 settings=settings.to_dict(), figures=figures)
    figures["run_dir"] = out_dir
    write_json(os.path.join(out_dir, "figures.json"), figures)
    return figures


def _main_winner(results, settings):
    main = results.get(settings.mode) or next(iter(results.values()))
    winner = main.winner
    return winner if winner is not None and winner.get("met") else None


def export_winner(winner, export_dir, data, formats, log=print, journal=None):
    """Export the winning candidate (saved when it met the target, so it is
    not fine-tuned again) and verify it on real test images. Its measured
    batch-1 latency per format (from the manifest) joins the figures and,
    with `journal`, the winner's journal row; a latency objective's
    prediction stands next to it (`predicted_latency_ms`, `latency_error`)."""
    from wootz_keras.export import export
    from wootz_keras.latency.runtimes import EXPORT_FORMATS
    net = keras.models.load_model(winner["extra"]["model"])
    log(f"exporting the winner #{winner['index']} (test accuracy "
        f"{winner['extra'].get('test_accuracy', float('nan')):.4f}) to {export_dir}")
    manifest = export(net, export_dir, formats=formats, verify_data=data.test.images(200))
    entries = manifest.get("formats", {})
    measured = {fmt: e["latency_ms"] for fmt, e in entries.items()
                if isinstance(e.get("latency_ms"), (int, float))}
    out = {"dir": export_dir, "formats": sorted(entries), "winner_index": winner["index"],
           "measured_latency_ms": measured}
    predicted = winner["extra"].get("predicted_latency_ms")
    runtime = winner["extra"].get("latency_runtime")
    fmt = EXPORT_FORMATS.get(runtime)
    if predicted is not None and fmt in measured:
        real = measured[fmt]
        out.update(runtime=runtime, predicted_latency_ms=predicted,
                   latency_error=(predicted - real) / real)
        log(f"winner latency in {runtime}: measured {real:.3f} ms, predicted {predicted:.3f} ms "
            f"({out['latency_error']:+.0%})")
    if journal is not None and measured:
        from wootz_keras.search import Journal
        with Journal(journal) as j:
            j.annotate(winner["mode"], winner["index"], measured_latency_ms=measured)
    return out
