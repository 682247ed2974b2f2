"""The end-to-end Wootz pipeline on real data: teacher, plan, pre-train,
explore (default pruning side by side with composability), report, export.

Every phase leaves its result on disk (teacher.keras, configs.json,
plan.json, blocks/, journal.sqlite, medians.json), so a run that is killed
resumes where it stopped.
"""

import dataclasses
import os
import statistics
import time

import keras
import numpy as np

from wootz_keras import data as wz_data
from wootz_keras import zoo
from wootz_keras.compose.assemble import assemble
from wootz_keras.compose.blocks import PretrainedBlocks
from wootz_keras.compose.pretrain import pretrain_blocks, teacher_fingerprint
from wootz_keras.search.report import write_report
from wootz_keras.training import accuracy, finetune
from wootz_keras.workflow.runner import explore, init_accuracies
from wootz_keras.planner.config_space import ConfigSpace
from wootz_keras.planner.modules import find_modules
from wootz_keras.planner.tuning_blocks import Plan, composable_plan, plan_tuning_blocks
from wootz_keras.utils.io import atomic_path, read_json, write_json


@dataclasses.dataclass
class Settings:
    """Everything one pipeline run depends on."""
    depth: int = 14                  # CIFAR-style ResNet teacher
    width: int = 16
    train_size: int = 10_000         # Fashion-MNIST training images used
    val_size: int = 2_000            # held-out test images used for accuracy
    teacher_epochs: int = 4
    rates: tuple = (0.3, 0.5, 0.7)
    num_configs: int = 32
    uniform_size: bool = True
    seed: int = 0
    pretrain_steps: int = 300
    finetune_steps: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    objective: str = "smallest_params:alpha=0.01"
    compare_default: bool = True
    medians_sample: int = 6          # configs fine-tuned in both modes for final medians
    init_sample: int = None          # configs assembled for init medians (None: all)


SCALES = {
    "tiny": Settings(depth=8, width=8, train_size=2_000, val_size=500, teacher_epochs=2,
                     num_configs=8, pretrain_steps=40, finetune_steps=10, medians_sample=2,
                     objective="smallest_params:alpha=0.1"),
    # 60-step fine-tuning cannot reach 99% of the teacher here; 3% is within
    # the paper's alpha range (-2% .. 8%). The alpha sweep reports the others.
    "small": Settings(objective="smallest_params:alpha=0.03"),
    "full": Settings(depth=20, width=16, train_size=60_000, val_size=10_000, teacher_epochs=10,
                     num_configs=256, pretrain_steps=1_500, finetune_steps=200, batch_size=128,
                     medians_sample=12, init_sample=64),
}


_STARTED = time.perf_counter()


def _log(msg):
    print(f"[wootz {time.perf_counter() - _STARTED:7.1f}s] {msg}", flush=True)


def load_teacher(path, settings, train, val):
    """Load the teacher from `path`, or train a zoo ResNet and save it there."""
    if os.path.exists(path):
        _log(f"teacher: loading {path}")
        return keras.models.load_model(path)
    _log(f"teacher: training ResNet-{settings.depth} on {len(train[1])} Fashion-MNIST images")
    keras.utils.set_random_seed(settings.seed)
    teacher = zoo.resnet_cifar(settings.depth, input_shape=train[0].shape[1:], width=settings.width)
    steps = len(train[1]) // settings.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps * settings.teacher_epochs)
    teacher.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    teacher.fit(*train, batch_size=settings.batch_size, epochs=settings.teacher_epochs,
                validation_data=val, verbose=2)
    with atomic_path(path) as tmp:
        teacher.save(tmp)
    return teacher


def _configs(space, settings, path):
    if os.path.exists(path):
        return space.load(path)
    configs = space.sample(settings.num_configs, seed=settings.seed,
                           uniform_size=settings.uniform_size)
    space.save(path, configs)
    return configs


def _plan(configs, modules, path):
    if os.path.exists(path):
        plan = Plan.from_json(path)
        if [list(c) for c in plan.configs] != [list(c.rates) for c in configs]:
            raise ValueError(f"{path!r} was planned for other configurations; remove it")
        return plan
    plan, dropped = composable_plan(plan_tuning_blocks(configs, module_names=modules.names),
                                    modules)
    if dropped:
        _log(f"plan: {dropped} blocks dropped (they touch modules that change shape)")
    plan.to_json(path)
    return plan


def _blocks(teacher, plan, modules, settings, train, directory):
    fingerprint = teacher_fingerprint(modules)
    if os.path.exists(os.path.join(directory, "blocks.json")):
        _log(f"blocks: loading {directory}")
        return PretrainedBlocks.load(directory, fingerprint)
    _log(f"blocks: pre-training {len(plan.blocks)} tuning blocks, {settings.pretrain_steps} "
         "steps, multiplexed on one teacher pass")
    tf_backend = keras.backend.backend() == "tensorflow"
    blocks = pretrain_blocks(teacher, plan, train, steps=settings.pretrain_steps, modules=modules,
                             learning_rate=settings.learning_rate, batch_size=settings.batch_size,
                             seed=settings.seed,
                             log_dir=(os.path.join(os.path.dirname(directory), "tensorboard")
                                      if tf_backend else None))
    blocks.save(directory)
    return blocks


def _init_accuracies(teacher, configs, blocks, modules, settings, val, path):
    """Accuracy right after assembly of a sample of configs, both modes."""
    if os.path.exists(path):
        saved = read_json(path, "init accuracies file")
        return saved["default"], saved["composed"]
    sample = _spread(len(configs), settings.init_sample or len(configs))
    picked = [configs[i] for i in sample]
    _log(f"init accuracy right after assembly, {len(sample)} configs: default pruning")
    init = init_accuracies(teacher, picked, val, None, modules)
    _log("init accuracy right after assembly: with pre-trained blocks")
    init_plus = init_accuracies(teacher, picked, val, blocks, modules)
    write_json(path, {"indices": [int(i) for i in sample], "default": init, "composed": init_plus})
    return init, init_plus


def _spread(n, k):
    """`k` indices spread evenly over range(n) (configs are sorted by nothing
    in particular, so this is a fixed, size-diverse sample)."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def _final_medians(teacher, configs, blocks, modules, settings, train, val, path):
    """Final accuracy of the same sample of configs fine-tuned in both modes."""
    if os.path.exists(path):
        return read_json(path, "medians file")
    picked = _spread(len(configs), settings.medians_sample)
    out = {"indices": picked.tolist(), "default": [], "composed": []}
    for mode, b in (("default", None), ("composed", blocks)):
        _log(f"final medians: fine-tuning {len(picked)} configs ({mode})")
        for i in picked:
            net = assemble(teacher, configs[i], b, modules)
            finetune(net, train, settings.finetune_steps, settings.learning_rate,
                     settings.batch_size, settings.seed + int(i))
            out[mode].append(accuracy(net, val))
    out["indices"] = [int(i) for i in out["indices"]]
    write_json(path, out)
    return out


def run_pipeline(settings, out_dir, export_dir=None, export_formats=("savedmodel", "tflite", "onnx")):
    """Run the whole pipeline; returns the figures of the run as a dict.

    Example:
        >>> import tempfile
        >>> figures = run_pipeline(SCALES["tiny"], tempfile.mkdtemp())  # doctest: +SKIP
    """
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "settings.json"), dataclasses.asdict(settings))
    train = wz_data.load_fashion_mnist("train", limit=settings.train_size, seed=settings.seed)
    val = wz_data.load_fashion_mnist("test", limit=settings.val_size, seed=settings.seed)
    teacher = load_teacher(os.path.join(out_dir, "teacher.keras"), settings, train, val)
    full_accuracy = accuracy(teacher, val)
    modules = find_modules(teacher)
    _log(f"teacher: accuracy {full_accuracy:.4f}, {teacher.count_params():,} params, "
         f"{len(modules)} modules")
    space = ConfigSpace(modules, rates=settings.rates)
    configs = _configs(space, settings, os.path.join(out_dir, "configs.json"))
    plan = _plan(configs, modules, os.path.join(out_dir, "plan.json"))
    cov = plan.coverage
    _log(f"plan: {len(configs)} configs, {len(plan.blocks)} tuning blocks, coverage {cov}")
    pretrain_started = time.perf_counter()
    blocks = _blocks(teacher, plan, modules, settings, train, os.path.join(out_dir, "blocks"))
    pretrain_seconds = blocks.seconds or (time.perf_counter() - pretrain_started)

    init, init_plus = _init_accuracies(teacher, configs, blocks, modules, settings, val,
                                       os.path.join(out_dir, "init.json"))

    journal = os.path.join(out_dir, "journal.sqlite")
    common = dict(objective=settings.objective, journal=journal,
                  finetune_steps=settings.finetune_steps, learning_rate=settings.learning_rate,
                  batch_size=settings.batch_size, full_accuracy=full_accuracy, modules=modules,
                  seed=settings.seed)
    results = {}
    if settings.compare_default:
        _log("exploring with default pruning")
        results["default"] = explore(teacher, configs, train, val, blocks=None, **common)
    _log("exploring with composability (pre-trained blocks)")
    results["composed"] = explore(teacher, configs, train, val, blocks=blocks, **common)
    medians = _final_medians(teacher, configs, blocks, modules, settings, train, val,
                             os.path.join(out_dir, "medians.json")) if settings.compare_default else None

    figures = _figures(settings, teacher, full_accuracy, results, init, init_plus, medians,
                       pretrain_seconds, plan)
    write_report(out_dir, full_accuracy, teacher.count_params(), results,
                 extra={"pretrain_seconds": pretrain_seconds, "figures": figures,
                        "settings": dataclasses.asdict(settings)})
    write_json(os.path.join(out_dir, "figures.json"), figures)
    winner = results["composed"].winner
    if export_dir and winner is not None:
        figures["export"] = _export_winner(teacher, winner, blocks, modules, settings, train, val,
                                           export_dir, export_formats)
    return figures


def _figures(settings, teacher, full_accuracy, results, init, init_plus, medians,
             pretrain_seconds, plan):
    def median(values):
        return float(statistics.median(values)) if values else None

    composed = results["composed"]
    default = results.get("default")
    composed_seconds = composed.seconds + pretrain_seconds
    out = {
        "full_accuracy": full_accuracy,
        "teacher_params": teacher.count_params(),
        "num_configs": results["composed"].num_candidates,
        "init_sample": len(init),
        "num_blocks": len(plan.blocks),
        "init_median": median(init),
        "init_plus_median": median(init_plus),
        "composed_tried": composed.tried,
        "composed_seconds": composed_seconds,
        "pretrain_seconds": pretrain_seconds,
        "composed_winner": composed.winner,
        "composed_message": composed.message,
        "winner_params_ratio": (composed.winner["params"] / teacher.count_params()
                                if composed.winner else None),
    }
    if default is not None:
        out.update({
            "default_tried": default.tried,
            "default_seconds": default.seconds,
            "default_winner": default.winner,
            "default_message": default.message,
            "default_winner_params_ratio": (default.winner["params"] / teacher.count_params()
                                            if default.winner else None),
            "speedup": default.seconds / composed_seconds if composed_seconds else None,
            "final_median": median(medians["default"]),
            "final_plus_median": median(medians["composed"]),
            "alpha_sweep": alpha_sweep(results, full_accuracy, pretrain_seconds),
        })
    return out


def alpha_sweep(results, full_accuracy, pretrain_seconds, alphas=(0.01, 0.02, 0.03, 0.05, 0.08)):
    """Winners, candidates tried and speedup for looser accuracy targets,
    read from the finished rows of each mode.

    Candidates are visited smallest first and each one's result is
    deterministic, so the exploration for a looser target stops at the first
    row that meets it: exactly the run a fresh exploration would make. Only
    alphas at least as loose as the run's own are answerable (the run tried
    everything before its own stop); tighter ones are left out.
    """
    rows = {m: sorted(r.rows, key=lambda row: row["position"]) for m, r in results.items()}
    out = []
    for alpha in alphas:
        target = full_accuracy * (1 - alpha)
        line = {"alpha": alpha, "target": target}
        for mode, mode_rows in rows.items():
            n = results[mode].num_candidates
            hit = next((k for k, row in enumerate(mode_rows)
                        if row["position"] == k and row["final_accuracy"] >= target - 1e-9), None)
            if hit is None and len(mode_rows) < n:
                line = None
                break
            used = mode_rows[:hit + 1] if hit is not None else mode_rows
            line[f"{mode}_tried"] = len(used)
            line[f"{mode}_seconds"] = sum(row["seconds"] for row in used)
            line[f"{mode}_winner_params"] = mode_rows[hit]["params"] if hit is not None else None
        if line is None:
            continue
        if "default_seconds" in line:
            line["speedup"] = line["default_seconds"] / (line["composed_seconds"] + pretrain_seconds)
        out.append(line)
    return out


def _export_winner(teacher, winner, blocks, modules, settings, train, val, export_dir, formats):
    from wootz_keras.export import export
    net = assemble(teacher, winner["rates"], blocks, modules)
    finetune(net, train, settings.finetune_steps, settings.learning_rate, settings.batch_size,
             settings.seed + int(winner["index"]))
    _log(f"exporting the winner (accuracy {accuracy(net, val):.4f}) to {export_dir}")
    images = val[0][:200]
    manifest = export(net, export_dir, formats=formats, verify_data=images)
    return {"dir": export_dir, "formats": sorted(manifest.get("formats", {}))}
