"""`explore`: assemble, fine-tune and measure candidate networks under an
objective, journaled (docs/method.md steps 5-7).

The search engine (`wootz_keras.search`) decides the order and when to
stop; this module builds each candidate (`compose.Assembler`, once per
teacher) and fine-tunes it under one `training.Protocol`, the same for
default pruning and composability. Modes: "default" (L1-pruned candidates),
"composed" (pre-trained blocks where they fit), "auto" (see
`workflow.auto`).
"""

import os
import time

from wootz_keras.compose.assemble import Assembler
from wootz_keras.planner.config_space import estimate_size, module_group_rates
from wootz_keras.pruning.prune import resolve_round_to
from wootz_keras.search.exploration import explore_candidates
from wootz_keras.search.objectives import Candidate, parse_objective
from wootz_keras.training import Evaluator, Protocol, check_validation_size, fine_tune
from wootz_keras.utils.io import atomic_path
from wootz_keras.workflow.cluster import worker_from_tf_config

MODES = ("default", "composed", "auto")


def make_candidates(configs, modules, objective=None, round_to=1, runtime=None):
    """Candidates (index, rates, params, FLOPs) for configs; sizes come from
    each Config when it has them, else from the planner's estimate (for
    networks built with round_to / runtime, as `Assembler` builds them).

    objective: when it orders by latency (`objective.latency`, e.g.
    "fastest:runtime=tflite"), each candidate also gets its predicted batch-1
    latency in that runtime (`Candidate.latency_ms`, from the measured
    latency table: `wootz_keras.latency.latency_predictor`; the table's
    missing entries are measured on first use; the runtime missing is a
    RuntimeUnavailable error).

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.planner import find_modules
        >>> mods = find_modules(zoo.resnet_cifar(depth=8))
        >>> make_candidates([[0.5, 0.5, 0.5]], mods)[0].params < 78426
        True
    """
    latency = getattr(parse_objective(objective), "latency", None) if objective is not None \
        else None
    predictor = None
    if latency:
        from wootz_keras.latency import latency_predictor
        predictor = latency_predictor(latency["runtime"], latency.get("threads", 1))
    round_to = resolve_round_to(round_to, runtime)
    out = []
    for i, config in enumerate(configs):
        rates = getattr(config, "rates", config)
        params, flops = getattr(config, "params", None), getattr(config, "flops", None)
        if params is None or flops is None:
            params, flops = estimate_size(modules, rates, round_to)
        elif len(rates) != len(modules):
            raise ValueError(f"config {i} has {len(rates)} rates but the teacher has "
                             f"{len(modules)} modules")
        latency_ms = None
        if predictor is not None:
            latency_ms = predictor.predict(modules.analysis, round_to=round_to,
                                           group_rates=module_group_rates(modules, rates))
        out.append(Candidate(i, tuple(rates), params, flops, latency_ms))
    return out


class CandidateTrainer:
    """The `evaluate(candidate)` callable of an exploration: assemble one
    candidate, fine-tune it under the protocol, measure it.

    The returned dict holds init / final accuracy (validation split) and,
    for the journal row: the validation curve, the stop reason, the steps
    used, the time split (assemble, trace, train, evaluate) and, for a
    candidate that met the target, its accuracy on the test split (which no
    decision sees). With `keep_dir`, a candidate that met the target is saved
    there as `<mode>_<index>.keras` (written atomically).
    """

    def __init__(self, assembler, train, val, protocol, target, blocks=None, *, loss=None,
                 metric=None, test=None, seed=0, keep_dir=None, mode=None):
        self.assembler = assembler
        self.train = train
        self.val = val if isinstance(val, Evaluator) else Evaluator(val, metric)
        self.test = test if (test is None or isinstance(test, Evaluator)) else \
            Evaluator(test, self.val.metric, what="test data")
        self.protocol = protocol
        self.target = target
        self.blocks = blocks
        self.loss = loss
        self.seed = seed
        self.keep_dir = keep_dir
        self.mode = mode or ("default" if blocks is None else "composed")

    def __call__(self, candidate):
        t0 = time.perf_counter()
        net = self.assembler.assemble(candidate.rates, self.blocks)
        assembled = time.perf_counter() - t0
        result = fine_tune(net, self.train, self.val, self.protocol, self.target, loss=self.loss,
                           seed=self.seed + candidate.index, evaluator=self.val,
                           check_split=False)
        out = {"init_accuracy": result.init, "final_accuracy": result.final,
               "stop": result.stop, "steps": result.steps, "curve": result.curve,
               "time": {"assemble": round(assembled, 4), **result.seconds}}
        if result.stop == "met":
            if self.test is not None:
                t1 = time.perf_counter()
                out["test_accuracy"] = self.test.evaluate(net)
                out["time"]["test"] = round(time.perf_counter() - t1, 4)
            if self.keep_dir:
                out["model"] = save_candidate(net, self.keep_dir, self.mode, candidate.index)
        return out


def save_candidate(model, directory, mode, index):
    """Save a fine-tuned candidate as `<directory>/<mode>_<index>.keras`, atomically."""
    path = os.path.join(directory, f"{mode}_{index}.keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def protocol_settings(protocol, seed, val, metric_name, train=None):
    """The journal header's settings: everything a row's result depends on
    (an explorer joining with other settings is refused)."""
    out = {"protocol": protocol.to_dict(), "seed": int(seed), "val_size": len(val),
           "metric": metric_name}
    if isinstance(train, (tuple, list)) and len(train) == 2:
        count = len(train[1])
    else:
        count = getattr(train, "count", None)
        count = count if isinstance(count, int) else None
    if count is not None:
        out["train_size"] = int(count)
    return out


def explore(teacher, configs, train, val, objective="smallest_params:alpha=0.01", blocks=None,
            mode=None, journal="explore.sqlite", protocol=None, full_accuracy=None, test=None,
            loss=None, metric=None, modules=None, progress=True, seed=0, keep_dir=None,
            pretrain_steps=300, plan=None, worker=None):
    """Explore `configs` under `objective`: the first candidate, in the
    objective's order, that meets it wins.

    train: (x, y) arrays, a batched tf.data.Dataset or a PyDataset (streamed);
    val: the validation split every decision is made on (carve it from the
    training images; held in memory); test: optional test split, measured
    only for winners. mode: "default" (L1 pruning), "composed" (`blocks`:
    PretrainedBlocks) or "auto" (default pruning first; pre-trains blocks only
    when the measurements say it pays, see `workflow.auto`; `blocks` may then
    be a zero-argument callable returning PretrainedBlocks, or None to plan
    and pre-train `pretrain_steps` steps itself). protocol: a
    `training.Protocol`, the same for every mode. Every finished candidate is
    written to `journal` (an SQLite path or a postgresql:// URL), so a killed
    run resumes where it stopped and workers on several machines share the
    work (each claims the next unfinished candidate; `worker` labels this
    one in the journal). plan: auto mode's tuning blocks (None: planned from
    `configs`).

    Example:
        >>> from wootz_keras import zoo, data
        >>> import tempfile, os
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> x, y = data.load_fashion_mnist("train", limit=384)
        >>> import warnings; warnings.simplefilter("ignore")     # a tiny validation split
        >>> result = explore(teacher, [[0.5, 0.5, 0.5]], (x[:256], y[:256]), (x[256:], y[256:]),
        ...                  protocol=Protocol(max_steps=2, eval_every=2, batch_size=32),
        ...                  journal=os.path.join(tempfile.mkdtemp(), "j.sqlite"), progress=False)
        >>> result.tried
        1
    """
    mode = mode or ("default" if blocks is None else "composed")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "composed" and (blocks is None or callable(blocks)):
        raise ValueError("mode='composed' needs blocks=PretrainedBlocks (from pretrain_blocks)")
    protocol = protocol or Protocol()
    objective = parse_objective(objective)
    assembler = Assembler(teacher, modules)
    candidates = make_candidates(configs, assembler.modules, objective)
    val = val if isinstance(val, Evaluator) else Evaluator(val, metric)
    if full_accuracy is None:
        full_accuracy = val.evaluate(teacher)
    target = objective.target(full_accuracy)
    if target is not None:
        check_validation_size(len(val), target)
    if worker is None and os.environ.get("TF_CONFIG"):
        worker = str(worker_from_tf_config()[0])
    settings = protocol_settings(protocol, seed, val, getattr(val.metric, "name", "metric"), train)
    common = dict(loss=loss, test=test, seed=seed, keep_dir=keep_dir)
    if mode == "auto":
        from wootz_keras.workflow.auto import explore_auto
        return explore_auto(assembler, candidates, train, val, objective, full_accuracy,
                            journal, protocol, settings, blocks=blocks, plan=plan,
                            pretrain_steps=pretrain_steps, progress=progress, worker=worker,
                            **common)
    trainer = CandidateTrainer(assembler, train, val, protocol, target,
                               blocks if mode == "composed" else None, mode=mode, **common)
    return explore_candidates(candidates, trainer, objective, full_accuracy, journal, mode,
                              worker=worker, progress=progress, settings=settings)


def init_accuracies(assembler, configs, data, blocks=None, metric=None, progress=True):
    """Accuracy right after assembly (no fine-tuning) of every config.

    Example:
        >>> from wootz_keras import zoo, data
        >>> acc = init_accuracies(Assembler(zoo.resnet_cifar(depth=8)), [[0.5, 0.5, 0.5]],
        ...                       data.load_fashion_mnist("test", limit=64), progress=False)
        >>> len(acc)
        1
    """
    from wootz_keras.utils.progress import Progress
    ev = data if isinstance(data, Evaluator) else Evaluator(data, metric)
    bar = Progress(len(configs), f"init accuracy ({'composed' if blocks else 'default'})",
                   unit="config", verbose=progress)
    out = []
    for i, c in enumerate(configs):
        out.append(ev.evaluate(assembler.assemble(c, blocks)))
        bar.update(i + 1)
    bar.close()
    return out
